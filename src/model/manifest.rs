//! The model manifest: models are data, and this TOML file is the contract between the training
//! pipeline (`models/train/`) and the device. Everything the Rust side needs to reproduce the
//! training-time preprocessing and to turn logits into an honest answer is written there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::preprocess::Preprocess;

/// The preprocessing of the shipped model (see [`super::preprocess`], which also implements
/// the others in [`Preprocess::IDS`]).
pub const PREPROCESS_ID: &str = "cxr-area-v1";

/// A model's manifest, as read from its TOML file and validated.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Model name (e.g. `cxr-net`), recorded with each result.
    pub name: String,
    /// Model version string, recorded with each result.
    pub version: String,
    /// Optional free-text notice from the training pipeline.
    #[serde(default)]
    pub notice: Option<String>,
    /// Class labels, in the order of the model's logits.
    pub labels: Vec<String>,
    /// Key in `variants` used when none is asked for.
    pub default_variant: String,
    /// The model input tensor and its preprocessing.
    pub input: InputSpec,
    /// Names of the model's output tensors.
    pub outputs: OutputSpec,
    /// Calibration applied to the logits before softmax.
    pub calibration: Calibration,
    /// Operating point per label, on calibrated probabilities in [0, 1].
    pub thresholds: BTreeMap<String, f32>,
    /// Model files by variant name (e.g. `int8`, `f32`).
    pub variants: BTreeMap<String, Variant>,
    /// Directory the manifest was read from; variant files are relative to it.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// The model's input tensor and the preprocessing it was trained with.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Name of the input tensor in the model file.
    pub name: String,
    /// Input width in pixels.
    pub width: usize,
    /// Input height in pixels.
    pub height: usize,
    /// Number of channels; only 1 (gray) is supported.
    pub channels: usize,
    /// Tensor layout; only `NCHW` is supported.
    pub layout: String,
    /// Preprocessing id; one of [`Preprocess::IDS`].
    pub preprocess: String,
    /// Mean subtracted from pixel values scaled to [0, 1].
    pub mean: f32,
    /// Standard deviation the centred pixel values are divided by.
    pub std: f32,
}

/// Names of the model's output tensors.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Name of the per-label logits output.
    pub logits: String,
    /// Name of the class activation map output.
    pub cam: String,
    /// Give the map at twice the rows and columns, from the same weights (`dense.rs`): the
    /// logits stay exactly the shipped network's. Off unless the manifest asks.
    #[serde(default)]
    pub dense_cam: bool,
}

/// Probability calibration fitted at training time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Softmax temperature: probabilities are `softmax(logits / temperature)`.
    pub temperature: f32,
}

/// One model file of the manifest, e.g. the int8 or f32 build.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Model file path, relative to the manifest's directory.
    pub file: String,
    /// Expected SHA-256 of the file, as 64 hex digits.
    pub sha256: String,
}

impl Manifest {
    /// Read and validate a manifest. Errors name the file and the field at fault.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read model manifest {}", path.display()))?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        Manifest::parse(&text, dir)
            .with_context(|| format!("model manifest {} is not usable", path.display()))
    }

    /// Parse and validate a manifest's text; `dir` is where its variant files are looked for
    /// (the manifest's own directory when read by [`Manifest::load`]). Nothing is read from disk.
    pub fn parse(text: &str, dir: &Path) -> Result<Manifest> {
        let mut m: Manifest =
            toml::from_str(text).context("not valid TOML for a model manifest")?;
        m.dir = dir.to_path_buf();
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<()> {
        ensure!(!self.labels.is_empty(), "`labels` is empty");
        for (i, l) in self.labels.iter().enumerate() {
            ensure!(!self.labels[..i].contains(l), "label `{l}` appears twice");
            let t = self
                .thresholds
                .get(l)
                .with_context(|| format!("no threshold for label `{l}`"))?;
            ensure!(
                (0.0..=1.0).contains(t),
                "threshold for `{l}` is {t}, outside [0, 1]"
            );
        }
        for k in self.thresholds.keys() {
            ensure!(self.labels.contains(k), "threshold for unknown label `{k}`");
        }
        let i = &self.input;
        ensure!(
            i.channels == 1,
            "input.channels is {}, only 1 (gray) is supported",
            i.channels
        );
        ensure!(
            i.layout == "NCHW",
            "input.layout is {}, only NCHW is supported",
            i.layout
        );
        ensure!(
            Preprocess::from_id(&i.preprocess).is_some(),
            "input.preprocess is {:?}, this build implements {} only",
            i.preprocess,
            Preprocess::IDS.map(|id| format!("`{id}`")).join(", ")
        );
        ensure!(
            (16..=2048).contains(&i.width) && (16..=2048).contains(&i.height),
            "input size {}x{} is out of range",
            i.width,
            i.height
        );
        ensure!(i.std.is_finite() && i.std > 0.0, "input.std must be > 0");
        ensure!(i.mean.is_finite(), "input.mean must be finite");
        let t = self.calibration.temperature;
        ensure!(
            t.is_finite() && t > 0.0,
            "calibration.temperature must be > 0 (is {t})"
        );
        ensure!(
            self.variants.contains_key(&self.default_variant),
            "default_variant `{}` is not among the variants ({})",
            self.default_variant,
            self.variants.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        for (name, v) in &self.variants {
            ensure!(
                v.sha256.len() == 64 && v.sha256.chars().all(|c| c.is_ascii_hexdigit()),
                "variant `{name}`: sha256 must be 64 hex digits"
            );
        }
        Ok(())
    }

    /// Position of `label` in [`Manifest::labels`], if it is one.
    pub fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    /// The variant to use: the one asked for, or the manifest's default.
    pub fn variant(&self, name: Option<&str>) -> Result<(&str, &Variant)> {
        let name = name.unwrap_or(&self.default_variant);
        match self.variants.get_key_value(name) {
            Some((k, v)) => Ok((k.as_str(), v)),
            None => bail!(
                "model {} has no variant `{name}` (available: {})",
                self.name,
                self.variants.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Read a variant's file and check it against the manifest's sha256.
    pub fn read_verified(&self, variant: &Variant) -> Result<Vec<u8>> {
        let path = self.dir.join(&variant.file);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read model file {}", path.display()))?;
        let got = sha256_hex(&bytes);
        if !got.eq_ignore_ascii_case(&variant.sha256) {
            bail!(
                "model file {} does not match its manifest (sha256 {} expected, {} found): \
                 the file is corrupt or was replaced; reinstall the model or point --model at a \
                 matching manifest",
                path.display(),
                &variant.sha256[..12],
                &got[..12]
            );
        }
        Ok(bytes)
    }
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `bytes` as lowercase hex (a digest computed elsewhere, e.g. over a stream).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a manifest may be looked for when none is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// `$CXR_EDGE_MODEL`, `./models`, the installed models, and the checkout the binary was
    /// built from: what a person at a terminal expects.
    Anywhere,
    /// `$CXR_EDGE_MODEL` and the installed models only. A service, and a command that rewrites
    /// a config file, must not take a manifest that someone planted in the working directory or
    /// in a build folder (`/tmp/...` on the build machine) and that would then name the model
    /// and the variant written into `/etc`.
    Installed,
}

impl Search {
    /// `Installed` when running under systemd (it sets `INVOCATION_ID` for every unit), else
    /// `Anywhere`.
    pub fn for_this_process() -> Search {
        if std::env::var_os("INVOCATION_ID").is_some() {
            Search::Installed
        } else {
            Search::Anywhere
        }
    }
}

/// Where to look for the default manifest when `--model` is not given, in order.
pub fn default_manifest_candidates() -> Vec<PathBuf> {
    manifest_candidates(Search::Anywhere)
}

/// The places `search` allows, in order.
pub fn manifest_candidates(search: Search) -> Vec<PathBuf> {
    let anywhere = search == Search::Anywhere;
    let mut c = Vec::new();
    if let Some(p) = std::env::var_os("CXR_EDGE_MODEL") {
        c.push(PathBuf::from(p));
    }
    if anywhere {
        c.push(PathBuf::from("models/cxr-net.toml"));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(bin) = exe.parent() {
            c.push(bin.join("../share/cxr-edge/models/cxr-net.toml"));
        }
    }
    c.push(PathBuf::from("/usr/share/cxr-edge/models/cxr-net.toml"));
    if anywhere {
        // A binary built from a checkout (cargo run, cargo test) finds the checkout's models.
        c.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cxr-net.toml"));
    }
    c
}

/// `explicit` if given, else the first manifest found in the default places.
pub fn locate_manifest(explicit: Option<&Path>) -> Result<PathBuf> {
    locate_manifest_in(explicit, Search::Anywhere)
}

/// `explicit` if given, else the first manifest found where `search` allows.
pub fn locate_manifest_in(explicit: Option<&Path>, search: Search) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let candidates = manifest_candidates(search);
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    bail!(
        "no model manifest found; looked in {} (use --model PATH or set CXR_EDGE_MODEL)",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service or a config rewrite never takes `./models` or the build folder (a planted
    /// manifest there named the variant that `bench --choose --write-config` wrote into /etc).
    #[test]
    fn installed_search_skips_the_working_and_build_folders() {
        let installed = manifest_candidates(Search::Installed);
        let env = std::env::var_os("CXR_EDGE_MODEL").map(PathBuf::from);
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cxr-net.toml");
        for p in installed.iter().filter(|p| Some(*p) != env.as_ref()) {
            assert!(p.is_absolute() && *p != checkout, "{p:?} in {installed:?}");
        }
        let anywhere = manifest_candidates(Search::Anywhere);
        assert!(anywhere.contains(&PathBuf::from("models/cxr-net.toml")));
        assert!(anywhere.len() > installed.len());
    }
}
