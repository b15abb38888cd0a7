//! The `cxr-edge run` configuration file (TOML). Every field has a default, so an empty file
//! (or none) gives a working kiosk: the bundled sample films, screens written as PNG files.
//!
//! ```toml
//! source = "camera:/dev/v4l/by-id/usb-Cam-video-index0"
//!                      # or "frames:DIR" (images played as a camera), "dir:DIR" (a watch
//!                      # folder of image files), "samples", or "auto" (the default: the first
//!                      # camera if there is one, else the samples)
//! display = "drm"          # an HDMI/DSI screen through DRM/KMS: the first /dev/dri/card* with
//!                          # a screen connected, its preferred mode; or "drm:/dev/dri/card1",
//!                          # "drm:/dev/dri/card0?mode=1280x720" (the error lists the modes on
//!                          # offer). Needs the console, not a desktop, on that screen.
//!                          # Or "fb:/dev/fb0" (framebuffer; the console is switched to graphics
//!                          # mode while it is in use), "png:DIR",
//!                          # "spi:st7789:/dev/spidev0.0?dc=GPIO24&reset=GPIO25&bl=GPIO18", "none", or "auto"
//!                          # (the default: DRM if a card has a screen connected, else
//!                          # /dev/fb0 if present, else PNG files in ./cxr-edge-screen)
//! screen_size = "800x480"  # PNG output only; DRM, panels and framebuffers know their size
//! poll_ms = 1000           # watch folder
//! input = "digital"        # watch folder: or "film-photo", "auto"
//! camera_size = "1280x720"
//! mains_hz = 50            # camera: stops the flicker bands of fluorescent light boxes
//! exposure = "auto"        # camera: or a fixed time in the camera's units, e.g. 250
//! focus = "locked"         # camera: "auto", "locked" (autofocus off) or a lens position
//! auto_capture = true      # analyse as soon as a film is held still
//! steady_frames = 5
//! memory_mb = 256          # peak memory of one analysis; bigger pictures are refused
//! language = "en"          # the screens' and `classify`'s words: "en", "fr", "es" or "pt"
//!                          # (records stay English; the upload page follows the browser)
//! case_code = "off"        # the study's code per film: "off", "optional" or "required"
//! case_code_pattern = "[A-Za-z0-9][A-Za-z0-9_-]{2,31}"   # what a valid code looks like (the
//!                          # whole code must match); never written to the service's log
//!
//! [buttons]
//! lines = "capture=GPIO17,next=GPIO27,back=GPIO22"   # line names, found on any GPIO chip;
//!                          # or numbers, offsets on `chip`: "capture=17,next=27,back=22"
//! chip = "/dev/gpiochip0"  # the chip of lines given by number (the default)
//! controller = "pinctrl-rp1"  # the board's GPIO controller (chip label): lines on another
//!                          # are refused; also checked for an SPI panel's lines. "": no check
//! active_low = true        # buttons to GND, pull-ups on
//! keyboard = true          # also read c / n / b (+ Enter) from stdin
//! evdev = true             # USB keyboards, keypads, foot pedals, touch screens (/dev/input)
//! keys = "capture=ENTER+KPENTER+SPACE+C, next=RIGHT+N+PAGEDOWN+KPPLUS+KP6, back=LEFT+B+PAGEUP+KPMINUS+KP4"
//!                          # (the default) Linux key names, KEY_ optional, or key codes
//!
//! [model]
//! manifest = "/usr/share/cxr-edge/models/cxr-net.toml"
//! variant = "int8"
//! site_profile = "/etc/cxr-edge/site-profile.toml"  # from `cxr-edge calibrate` (the default
//!                          # when that file exists); "shipped": the manifest's own calibration
//!
//! [storage]
//! dir = "/var/lib/cxr-edge/results"
//! keep_images = true
//! keep_days = 0            # remove records (once sent) and done/ originals older than this
//! max_disk_mb = 0          # keep results + done/ under this; oldest first, unsent last
//!
//! [serve]                  # `cxr-edge serve`, the upload page
//! listen = "127.0.0.1:8080"  # another address needs `token`
//! token = ""               # access token (16+ characters); required when set
//! max_upload_mb = 32
//! max_megapixels = 36
//! queue = 4                # uploads waiting for the model; more get 503 + Retry-After
//! client_timeout_s = 30    # a client silent this long is dropped
//!
//! [sync]                   # forwarding the results log (see `config/sync.rs`)
//! site = "clinic-a"
//! mqtt = "mqtt://broker.lan:1883"
//!
//! [updates]                # signed model bundles (see `config/updates.rs`)
//! folder = "/var/lib/cxr-edge/updates"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::capture::controls::{CameraControls, Exposure, Focus, MainsHz};
pub use crate::display::DisplaySpec;
use crate::input::evdev::KeyMap;

mod sync;
mod updates;
pub use sync::{check_topic_level, ArchiveUrl, BrokerUrl, SyncSection};
pub use updates::{locate_model, UpdatesSection};

/// The board service's configuration file (installed by the package).
pub const SYSTEM_CONFIG: &str = "/etc/cxr-edge/config.toml";

/// Where films come from.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// A camera (V4L2 device path, index, or /dev/v4l/by-id name): live preview, film found
    /// and analysed when held still.
    Camera(String),
    /// Image or raw frame files played as a camera, in a loop (demos, tests).
    Frames(PathBuf),
    /// The sample films built into the binary, each analysed once.
    Samples,
    /// A watch folder: every image file that appears (and stops growing) is analysed once, then
    /// moved to `done/` or, if it could not be analysed, to `failed/` beside a `.error.txt`.
    Inbox(PathBuf),
    /// The first camera if there is one when the service starts, else the samples. Parsing
    /// never looks at the hardware; [`SourceSpec::resolve`] does, when the source is opened.
    Auto,
}

impl SourceSpec {
    /// `auto` made concrete: the first camera this build can use, else the samples. Any other
    /// spec is itself.
    pub fn resolve(self) -> SourceSpec {
        match self {
            SourceSpec::Auto => crate::capture::first_camera()
                .map(SourceSpec::Camera)
                .unwrap_or(SourceSpec::Samples),
            s => s,
        }
    }

    /// `camera:DEVICE`, `frames:DIR`, `dir:DIR`, `samples`, `auto`, or a bare folder of frames.
    pub fn parse(s: &str) -> Result<SourceSpec> {
        match s.split_once(':') {
            _ if s == "samples" => Ok(SourceSpec::Samples),
            _ if s == "auto" => Ok(SourceSpec::Auto),
            Some(("dir", p)) if !p.is_empty() => Ok(SourceSpec::Inbox(PathBuf::from(p))),
            Some(("frames", p)) if !p.is_empty() => Ok(SourceSpec::Frames(PathBuf::from(p))),
            Some(("camera", d)) if !d.is_empty() => Ok(SourceSpec::Camera(d.to_string())),
            // A bare directory: frames played as a camera (`run --source DIR --script ...`).
            None if Path::new(s).is_dir() => Ok(SourceSpec::Frames(PathBuf::from(s))),
            _ => bail!(
                "unknown source '{s}': use 'camera:DEVICE', 'frames:DIR', 'dir:DIR' (watch folder), 'samples' or 'auto'"
            ),
        }
    }
}

/// GPIO buttons, input devices and the keyboard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonsSection {
    /// GPIO character device of the button lines given by number.
    #[serde(default = "default_chip")]
    pub chip: PathBuf,
    /// `capture=GPIO17,next=GPIO27,back=GPIO22` (line names, on any chip) or
    /// `capture=17,...` (offsets on `chip`); empty: no GPIO buttons.
    #[serde(default)]
    pub lines: String,
    /// The label of the board's GPIO controller (`pinctrl-rp1`): button and SPI panel lines
    /// found on a chip with another label are refused. Empty: no check.
    #[serde(default)]
    pub controller: String,
    /// Buttons pull the line to ground when pressed (with pull-ups), the usual wiring.
    #[serde(default = "yes")]
    pub active_low: bool,
    /// Also take c / n / b (then Enter) from standard input.
    #[serde(default = "yes")]
    pub keyboard: bool,
    /// Also take presses from `/dev/input`: USB keyboards, numeric keypads, foot pedals,
    /// presentation clickers (through `keys`) and taps on a touch screen's on-screen buttons.
    #[serde(default = "yes")]
    pub evdev: bool,
    /// Which keys press which button: `capture=ENTER+SPACE, next=RIGHT, back=LEFT` (see
    /// [`crate::input::evdev::keys`]); empty or absent: [`crate::input::evdev::keys::DEFAULT_KEYS`].
    #[serde(default, deserialize_with = "key_map")]
    pub keys: KeyMap,
}

fn key_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<KeyMap, D::Error> {
    let spec = String::deserialize(d)?;
    if spec.trim().is_empty() {
        return Ok(KeyMap::default());
    }
    KeyMap::parse(&spec).map_err(|e| serde::de::Error::custom(format!("{e:#}")))
}

impl Default for ButtonsSection {
    fn default() -> Self {
        ButtonsSection {
            chip: default_chip(),
            lines: String::new(),
            controller: String::new(),
            active_low: true,
            keyboard: true,
            evdev: true,
            keys: KeyMap::default(),
        }
    }
}

fn default_chip() -> PathBuf {
    PathBuf::from("/dev/gpiochip0")
}

impl ButtonsSection {
    /// The expected GPIO controller label, None when there is no check.
    pub fn controller(&self) -> Option<&str> {
        Some(self.controller.trim()).filter(|c| !c.is_empty())
    }
}

/// `display` with the board's GPIO controller filled in for an SPI panel whose spec has no
/// `gpio=` key of its own.
pub fn with_gpio_controller(display: DisplaySpec, buttons: &ButtonsSection) -> DisplaySpec {
    match display {
        #[cfg(feature = "spi-panel")]
        DisplaySpec::Spi(mut spi) => {
            if spi.gpio_controller.is_none() {
                spi.gpio_controller = buttons.controller().map(String::from);
            }
            DisplaySpec::Spi(spi)
        }
        other => {
            let _ = buttons;
            other
        }
    }
}

fn default_case_pattern() -> String {
    crate::case::DEFAULT_PATTERN.to_string()
}

/// `[model]`: which model `run` and `serve` load.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Model manifest; default: the usual search ($CXR_EDGE_MODEL, ./models, installed models).
    pub manifest: Option<PathBuf>,
    /// Variant from the manifest (int8, f32); default: the manifest's choice.
    pub variant: Option<String>,
    /// Site profile (`cxr-edge calibrate`) whose temperature and operating points replace the
    /// manifest's, or `shipped`; default: /etc/cxr-edge/site-profile.toml when it exists.
    pub site_profile: Option<String>,
}

impl ModelSection {
    /// The calibration `run`, `serve` and `classify` use (an option given on the command line
    /// wins over this).
    pub fn profile(&self, option: Option<&str>) -> crate::model::ProfileChoice {
        crate::model::ProfileChoice::from_setting(option.or(self.site_profile.as_deref()))
    }
}

/// `[storage]`: where results are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// Results log: the folder of `results.sqlite` (one record per analysed film) and the kept
    /// pictures.
    #[serde(default = "default_storage")]
    pub dir: PathBuf,
    /// Keep the heatmap picture of each film next to its record.
    #[serde(default = "yes")]
    pub keep_images: bool,
    /// Records (once every sync destination has them) and the watch folder's `done/`
    /// originals older than this many days are removed; 0 keeps them (README "Retention").
    #[serde(default)]
    pub keep_days: u32,
    /// The storage folder and `done/` together stay under this many MiB, oldest removed
    /// first, records not yet sent last; 0: no limit.
    #[serde(default)]
    pub max_disk_mb: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            dir: default_storage(),
            keep_images: true,
            keep_days: 0,
            max_disk_mb: 0,
        }
    }
}

/// `cxr-edge serve`: the upload page and JSON API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// Address to listen on, `IP:PORT`; default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Access token; empty means none. Listening beyond loopback needs one.
    #[serde(default)]
    pub token: String,
    /// Largest upload accepted, in MiB (1 ..= 512).
    #[serde(default = "default_upload_mb")]
    pub max_upload_mb: u64,
    /// Largest decoded image accepted, in megapixels (1 ..= 256).
    #[serde(default = "default_megapixels")]
    pub max_megapixels: u64,
    /// Uploads that may wait for the model (1 ..= 64); more are refused with 503.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Seconds a silent client is kept before it is dropped (1 ..= 600).
    #[serde(default = "default_client_timeout")]
    pub client_timeout_s: u64,
    /// Names clients may use for this server besides its IP addresses and `localhost` (e.g.
    /// `cxr-unit-7.local`); a request with any other `Host` is refused (DNS rebinding).
    #[serde(default)]
    pub hosts: Vec<String>,
}

impl Default for ServeSection {
    fn default() -> Self {
        toml::from_str("").expect("defaults are valid")
    }
}

impl ServeSection {
    fn check(&self) -> Result<()> {
        if !(1..=512).contains(&self.max_upload_mb) {
            bail!(
                "serve.max_upload_mb = {} is outside 1 ..= 512",
                self.max_upload_mb
            );
        }
        if !(1..=256).contains(&self.max_megapixels) {
            bail!(
                "serve.max_megapixels = {} is outside 1 ..= 256",
                self.max_megapixels
            );
        }
        if !(1..=64).contains(&self.queue) {
            bail!("serve.queue = {} is outside 1 ..= 64", self.queue);
        }
        if !(1..=600).contains(&self.client_timeout_s) {
            bail!(
                "serve.client_timeout_s = {} is outside 1 ..= 600",
                self.client_timeout_s
            );
        }
        if !self.token.is_empty() && self.token.trim().chars().count() < 16 {
            bail!("serve.token is too short to be safe: use at least 16 characters (e.g. the output of `openssl rand -hex 16`)");
        }
        Ok(())
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_upload_mb() -> u64 {
    32
}
fn default_megapixels() -> u64 {
    // CR/DX films are 5-16 megapixels; a 36 MP upload still fits, and decoding one costs
    // about 5 bytes a pixel.
    36
}
fn default_queue() -> usize {
    4
}
fn default_client_timeout() -> u64 {
    30
}

fn default_storage() -> PathBuf {
    PathBuf::from("cxr-edge-results")
}
fn yes() -> bool {
    true
}
fn default_source() -> String {
    "auto".into()
}
fn default_display() -> String {
    "auto".into()
}
fn default_camera_size() -> String {
    "1280x720".into()
}
fn default_steady() -> usize {
    5
}

fn default_memory_mb() -> u64 {
    crate::capture::DEFAULT_MEMORY_BUDGET >> 20
}
fn default_poll() -> u64 {
    1000
}
fn default_screen_size() -> String {
    "800x480".into()
}

/// `WIDTHxHEIGHT` as two numbers, if it is that.
fn wxh(s: &str) -> Option<(u32, u32)> {
    s.split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)))
}

/// A screen size, `WIDTHxHEIGHT`, each 64 ..= 4096.
pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    match wxh(s) {
        Some((w, h)) if (64..=4096).contains(&w) && (64..=4096).contains(&h) => Ok((w, h)),
        _ => bail!("screen size '{s}' is not WIDTHxHEIGHT with sides 64 to 4096, e.g. 800x480"),
    }
}

/// A camera frame size, `WIDTHxHEIGHT`: width 160 ..= 8192, height 120 ..= 8192.
pub fn parse_frame_size(s: &str) -> Result<(u32, u32)> {
    match wxh(s) {
        Some((w, h)) if (160..=8192).contains(&w) && (120..=8192).contains(&h) => Ok((w, h)),
        _ => bail!("camera size '{s}' is not WIDTHxHEIGHT, e.g. 1280x720"),
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
    input: crate::analysis::InputMode,
    #[serde(default = "default_camera_size")]
    camera_size: String,
    #[serde(default)]
    mains_hz: Option<MainsHz>,
    #[serde(default)]
    exposure: Option<Exposure>,
    #[serde(default)]
    focus: Option<Focus>,
    #[serde(default = "yes")]
    auto_capture: bool,
    #[serde(default = "default_steady")]
    steady_frames: usize,
    #[serde(default = "default_memory_mb")]
    memory_mb: u64,
    #[serde(default)]
    language: crate::lang::Language,
    #[serde(default)]
    case_code: crate::case::Mode,
    #[serde(default = "default_case_pattern")]
    case_code_pattern: String,
    #[serde(default)]
    model: ModelSection,
    #[serde(default)]
    storage: StorageSection,
    #[serde(default)]
    buttons: ButtonsSection,
    #[serde(default)]
    serve: ServeSection,
    #[serde(default)]
    sync: SyncSection,
    #[serde(default)]
    updates: UpdatesSection,
}

/// The whole configuration file, checked and with defaults filled in.
#[derive(Debug)]
pub struct Config {
    /// Where films come from (camera, frames, watch folder, samples or auto).
    pub source: SourceSpec,
    /// Where screens are shown (framebuffer, SPI panel, PNG files, none or auto).
    pub display: DisplaySpec,
    /// Width and height of the screen in pixels (the PNG display draws at this size).
    pub screen_size: (u32, u32),
    /// How often the watch folder is looked at, in milliseconds (100 ..= 60000).
    pub poll_ms: u64,
    /// Whether arriving images are digital films, camera photos of films, or either.
    pub input: crate::analysis::InputMode,
    /// Frame size asked of the camera.
    pub camera_size: (u32, u32),
    /// Camera controls set at open and after every reconnect: `mains_hz`, `exposure`, `focus`.
    pub camera_controls: CameraControls,
    /// Analyse as soon as a film is held still; otherwise wait for the capture button.
    pub auto_capture: bool,
    /// Frames in a row in which the film must be found and still (1 ..= 100).
    pub steady_frames: usize,
    /// Peak memory of one analysis in MiB (32 ..= 4096): the file, the decoder's buffer and
    /// the grey frame; a picture that needs more is refused before it is decoded.
    pub memory_mb: u64,
    /// The language of the screens and of `classify`'s words (records stay English).
    pub language: crate::lang::Language,
    /// Case codes (`case_code`, `case_code_pattern`): off, optional or required, and their form.
    pub case: crate::case::Policy,
    /// The `[model]` table.
    pub model: ModelSection,
    /// The `[storage]` table.
    pub storage: StorageSection,
    /// The `[buttons]` table.
    pub buttons: ButtonsSection,
    /// The `[serve]` table.
    pub serve: ServeSection,
    /// The `[sync]` table: where records are forwarded, if anywhere.
    pub sync: SyncSection,
    /// The `[updates]` table: signed model bundles.
    pub updates: UpdatesSection,
}

/// A TOML error by line and column, without the line itself: the config holds the serve token,
/// and the parser's own message quotes the offending line, which would then reach the journal.
fn toml_error(e: &toml::de::Error, text: &str) -> anyhow::Error {
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            anyhow::anyhow!("line {line}, column {column}: {}", e.message())
        }
        None => anyhow::anyhow!("{}", e.message()),
    }
}

impl Config {
    /// Parse and check a config file's text; an empty text gives the defaults.
    pub fn parse(text: &str) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(&e, text))?;
        if !(100..=60_000).contains(&raw.poll_ms) {
            bail!("poll_ms = {} is outside 100 ..= 60000", raw.poll_ms);
        }
        Ok(Config {
            source: SourceSpec::parse(&raw.source)?,
            display: with_gpio_controller(DisplaySpec::parse(&raw.display)?, &raw.buttons),
            screen_size: parse_size(&raw.screen_size)?,
            poll_ms: raw.poll_ms,
            input: raw.input,
            camera_size: parse_frame_size(&raw.camera_size)?,
            camera_controls: CameraControls {
                mains_hz: raw.mains_hz,
                exposure: raw.exposure,
                focus: raw.focus,
            },
            auto_capture: raw.auto_capture,
            steady_frames: match raw.steady_frames {
                n @ 1..=100 => n,
                n => bail!("steady_frames = {n} is outside 1 ..= 100"),
            },
            memory_mb: match raw.memory_mb {
                n @ 32..=4096 => n,
                n => bail!("memory_mb = {n} is outside 32 ..= 4096"),
            },
            language: raw.language,
            case: crate::case::Policy::new(raw.case_code, &raw.case_code_pattern)?,
            model: raw.model,
            storage: raw.storage,
            buttons: raw.buttons,
            serve: {
                raw.serve.check()?;
                raw.serve
            },
            updates: {
                raw.updates.check(&raw.sync)?;
                raw.updates
            },
            sync: {
                raw.sync.check()?;
                raw.sync
            },
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

    /// Read and parse the config file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("bad config {}", path.display()))
    }
}

impl Config {
    /// The decoding limits of one analysis under this config.
    pub fn limits(&self) -> crate::capture::Limits {
        crate::capture::Limits {
            memory_budget: self.memory_mb << 20,
            ..crate::capture::Limits::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::parse("").expect("defaults are valid")
    }
}

#[cfg(test)]
mod tests;
