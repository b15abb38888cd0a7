//! The `cxr-edge run` configuration file (TOML). Every field has a default, so an empty file
//! (or none) gives a working kiosk: the bundled sample films, screens written as PNG files.
//!
//! ```toml
//! source = "dir:/var/lib/cxr-edge/inbox"   # or "samples"
//! display = "png:/var/lib/cxr-edge/screen" # or "fb:/dev/fb0", or "none"
//! screen_size = "800x480"
//! poll_ms = 1000
//! input = "digital"                       # or "film-photo", "auto"
//!
//! [model]
//! manifest = "/usr/share/cxr-edge/models/cxr-net.toml"
//! variant = "int8"
//!
//! [storage]
//! dir = "/var/lib/cxr-edge/results"
//! keep_images = true
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The board service's configuration file (installed by the package).
pub const SYSTEM_CONFIG: &str = "/etc/cxr-edge/config.toml";

/// Where films come from.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// The sample films built into the binary, each analysed once.
    Samples,
    /// A watch folder: every image file that appears (and stops growing) is analysed once, then
    /// moved to `done/` or, if it could not be analysed, to `failed/` beside a `.error.txt`.
    Inbox(PathBuf),
}

/// Where screens go.
#[derive(Clone, Debug, PartialEq)]
pub enum DisplaySpec {
    /// The current screen as `screen.png` in this folder (replaced atomically).
    Png(PathBuf),
    /// A Linux framebuffer device such as `/dev/fb0` (its own size and pixel format).
    Framebuffer(PathBuf),
    None,
}

impl SourceSpec {
    pub fn parse(s: &str) -> Result<SourceSpec> {
        match s.split_once(':') {
            _ if s == "samples" => Ok(SourceSpec::Samples),
            Some(("dir", p)) if !p.is_empty() => Ok(SourceSpec::Inbox(PathBuf::from(p))),
            _ => bail!("unknown source '{s}': this build reads 'samples' or 'dir:PATH'"),
        }
    }
}

impl DisplaySpec {
    pub fn parse(s: &str) -> Result<DisplaySpec> {
        match s.split_once(':') {
            _ if s == "none" => Ok(DisplaySpec::None),
            Some(("png", p)) if !p.is_empty() => Ok(DisplaySpec::Png(PathBuf::from(p))),
            Some(("fb", p)) if !p.is_empty() => Ok(DisplaySpec::Framebuffer(PathBuf::from(p))),
            _ => bail!(
                "unknown display '{s}': this build draws on 'png:DIR', 'fb:/dev/fbN' or 'none'"
            ),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Model manifest; default: the usual search ($CXR_EDGE_MODEL, ./models, installed models).
    pub manifest: Option<PathBuf>,
    /// Variant from the manifest (int8, f32); default: the manifest's choice.
    pub variant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// Results log: one JSON file per analysed film.
    #[serde(default = "default_storage")]
    pub dir: PathBuf,
    /// Keep the heatmap picture of each film next to its record.
    #[serde(default = "yes")]
    pub keep_images: bool,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            dir: default_storage(),
            keep_images: true,
        }
    }
}

fn default_storage() -> PathBuf {
    PathBuf::from("cxr-edge-results")
}
fn yes() -> bool {
    true
}
fn default_source() -> String {
    "samples".into()
}
fn default_display() -> String {
    "png:cxr-edge-screen".into()
}
fn default_poll() -> u64 {
    1000
}
fn default_screen_size() -> String {
    "800x480".into()
}

/// `WIDTHxHEIGHT`, each 64 ..= 4096.
pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    let parsed = s
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((w, h)) if (64..=4096).contains(&w) && (64..=4096).contains(&h) => Ok((w, h)),
        _ => bail!("screen size '{s}' is not WIDTHxHEIGHT with sides 64 to 4096, e.g. 800x480"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_source")]
    source: String,
    #[serde(default = "default_display")]
    display: String,
    #[serde(default = "default_poll")]
    poll_ms: u64,
    #[serde(default = "default_screen_size")]
    screen_size: String,
    #[serde(default)]
    input: crate::app::analyse::InputMode,
    #[serde(default)]
    model: ModelSection,
    #[serde(default)]
    storage: StorageSection,
}

#[derive(Debug)]
pub struct Config {
    pub source: SourceSpec,
    pub display: DisplaySpec,
    /// Width and height of the screen in pixels (the PNG display draws at this size).
    pub screen_size: (u32, u32),
    /// How often the watch folder is looked at, in milliseconds (100 ..= 60000).
    pub poll_ms: u64,
    /// Whether arriving images are digital films, camera photos of films, or either.
    pub input: crate::app::analyse::InputMode,
    pub model: ModelSection,
    pub storage: StorageSection,
}

impl Config {
    pub fn parse(text: &str) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text)?;
        if !(100..=60_000).contains(&raw.poll_ms) {
            bail!("poll_ms = {} is outside 100 ..= 60000", raw.poll_ms);
        }
        Ok(Config {
            source: SourceSpec::parse(&raw.source)?,
            display: DisplaySpec::parse(&raw.display)?,
            screen_size: parse_size(&raw.screen_size)?,
            poll_ms: raw.poll_ms,
            input: raw.input,
            model: raw.model,
            storage: raw.storage,
        })
    }

    /// The config `run` and `history` use: `explicit` if given, else [`SYSTEM_CONFIG`] when it
    /// exists, else the built-in defaults.
    pub fn find(explicit: Option<&Path>) -> Result<Config> {
        match explicit {
            Some(p) => Config::load(p),
            None if Path::new(SYSTEM_CONFIG).exists() => Config::load(Path::new(SYSTEM_CONFIG)),
            None => Ok(Config::default()),
        }
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("bad config {}", path.display()))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::parse("").expect("defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_sample_kiosk() {
        let c = Config::default();
        assert_eq!(c.source, SourceSpec::Samples);
        assert_eq!(c.display, DisplaySpec::Png("cxr-edge-screen".into()));
        assert!(c.storage.keep_images);
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let e = Config::parse("source = \"camera:/dev/video0\"").unwrap_err();
        assert!(
            format!("{e:#}").contains("'samples' or 'dir:PATH'"),
            "{e:#}"
        );
        assert_eq!(
            Config::parse("display = \"fb:/dev/fb1\"").unwrap().display,
            DisplaySpec::Framebuffer("/dev/fb1".into())
        );
        let e = Config::parse("display = \"spi:/dev/spidev0.0\"").unwrap_err();
        assert!(format!("{e:#}").contains("'fb:/dev/fbN'"), "{e:#}");
        assert!(Config::parse("poll_ms = 5").is_err());
        assert!(Config::parse("screen_size = \"800by480\"").is_err());
        assert!(Config::parse("screen_size = \"10x10\"").is_err());
        assert_eq!(
            Config::parse("screen_size = \"240x240\"")
                .unwrap()
                .screen_size,
            (240, 240)
        );
        let e = Config::parse("[storage]\ndirectory = \"x\"").unwrap_err();
        assert!(format!("{e:#}").contains("unknown field"), "{e:#}");
    }

    /// The board profiles shipped in board/ and in the package must stay loadable.
    #[test]
    fn every_board_profile_parses() {
        let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
        let mut n = 0;
        for e in std::fs::read_dir(&boards).unwrap() {
            let p = e.unwrap().path().join("config.toml");
            if p.exists() {
                let c = Config::load(&p).unwrap_or_else(|e| panic!("{e:#}"));
                assert!(matches!(c.source, SourceSpec::Inbox(_)), "{}", p.display());
                assert!(c.storage.dir.is_absolute(), "{}", p.display());
                n += 1;
            }
        }
        assert!(n >= 3, "expected rpi4, rpi5 and jetson profiles, found {n}");
    }
}
