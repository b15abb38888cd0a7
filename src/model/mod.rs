//! The model: its manifest, the shared preprocessing, inference and the calibrated answer.

pub mod bundle;
pub mod dense;
mod engine;
pub mod fit;
pub mod manifest;
pub mod preprocess;
pub mod profile;
pub mod qconv;
pub mod requant;

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub use engine::{Cam, Engine, RawOutput};
pub use manifest::Manifest;
pub use profile::{ProfileChoice, ProfileId, SiteProfile};

use crate::lang::Language;
use crate::pixels::Frame;

/// A ready-to-run classifier: manifest, chosen variant and optimised network.
pub struct Classifier {
    /// The validated manifest the classifier was loaded from.
    pub manifest: Manifest,
    /// Name of the variant in use (e.g. `int8`).
    pub variant: String,
    /// Full SHA-256 of the variant's model file, lowercase hex.
    pub sha256: String,
    /// The calibration in use: `shipped`, or the site profile whose temperature and operating
    /// points replaced the manifest's (see [`Classifier::use_profile`]).
    pub profile: ProfileId,
    engine: Engine,
}

/// Identifies the model behind a result, as printed in every output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelId {
    /// Model name from the manifest.
    pub name: String,
    /// Model version from the manifest.
    pub version: String,
    /// Name of the variant that produced the result.
    pub variant: String,
    /// First 12 hex digits of the model file's sha256.
    pub sha256: String,
    /// The calibration the result was scored with (`shipped` in records older than profiles).
    #[serde(default)]
    pub profile: ProfileId,
}

impl Classifier {
    /// Load the manifest at `path`, verify the variant's file, build the network.
    pub fn load(path: &Path, variant: Option<&str>) -> Result<Classifier> {
        let manifest = Manifest::load(path)?;
        let (name, v) = manifest.variant(variant)?;
        let (name, v) = (name.to_string(), v.clone());
        let bytes = manifest.read_verified(&v)?;
        let engine = Engine::load(&manifest, &bytes).with_context(|| {
            format!(
                "cannot load model {} ({name}) from {}",
                manifest.name,
                manifest.dir.join(&v.file).display()
            )
        })?;
        Ok(Classifier {
            sha256: v.sha256.to_ascii_lowercase(),
            variant: name,
            profile: ProfileId::shipped(),
            manifest,
            engine,
        })
    }

    /// Use `choice`'s calibration from now on. A site profile must have been fitted for this
    /// very model file (its sha256) and labels, else this fails and nothing changes: a profile
    /// for another model is never silently applied.
    pub fn use_profile(&mut self, choice: &ProfileChoice) -> Result<()> {
        let path = match choice {
            ProfileChoice::Shipped => return Ok(()),
            ProfileChoice::File(p) => p,
        };
        let (p, file_sha) = SiteProfile::load(path)?;
        p.check_fits(&self.manifest, &self.variant, &self.sha256)
            .with_context(|| format!("site profile {} is refused", path.display()))?;
        p.apply(&mut self.manifest);
        self.profile = ProfileId {
            name: p.name.clone(),
            sha256: Some(file_sha[..12].to_string()),
        };
        Ok(())
    }

    /// [`Classifier::load`], then [`Classifier::use_profile`]: what every face calls.
    pub fn load_with_profile(
        path: &Path,
        variant: Option<&str>,
        profile: &ProfileChoice,
    ) -> Result<Classifier> {
        let mut clf = Classifier::load(path, variant)?;
        clf.use_profile(profile)?;
        Ok(clf)
    }

    /// The identity to record with each result.
    pub fn id(&self) -> ModelId {
        ModelId {
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            variant: self.variant.clone(),
            sha256: self.sha256[..12].to_string(),
            profile: self.profile.clone(),
        }
    }

    /// The exact tensor the network sees for this frame.
    pub fn preprocess(&self, frame: &Frame) -> Vec<f32> {
        let i = &self.manifest.input;
        // validate() accepted only implemented ids, so the fallback is never taken
        let kind = preprocess::Preprocess::from_id(&i.preprocess)
            .unwrap_or(preprocess::Preprocess::AreaV1);
        preprocess::preprocess_with(kind, frame, i.width, i.height, i.mean, i.std)
    }

    /// Run the network on an already preprocessed tensor and calibrate its output.
    pub fn run_tensor(&self, tensor: &[f32]) -> Result<Prediction> {
        let raw = self.engine.run(tensor)?;
        Ok(Prediction::from_raw(&self.manifest, raw))
    }

    /// Preprocess `frame`, run the network and calibrate its output.
    pub fn classify(&self, frame: &Frame) -> Result<Prediction> {
        self.run_tensor(&self.preprocess(frame))
    }
}

/// What the operating points chosen on the validation split say about one image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Decision {
    /// Labels whose calibrated probability reaches their operating point.
    pub flags: Vec<String>,
    /// One plain sentence, safe to show to someone who is not a radiologist.
    pub summary: String,
}

impl Decision {
    /// Whether `label` reached its operating point.
    pub fn flagged(&self, label: &str) -> bool {
        self.flags.iter().any(|f| f == label)
    }
}

/// "Not a chest X-ray": the top label is `other`, or `other` reached its operating point.
pub fn not_chest(label: &str, decision: &Decision) -> bool {
    label == "other" || decision.flagged("other")
}

/// The calibrated result for one image.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// Raw logits, in manifest label order.
    pub logits: Vec<f32>,
    /// softmax(logits / temperature), in manifest label order.
    pub probs: Vec<f32>,
    /// Index of the most probable label.
    pub top: usize,
    /// What the operating points say about the image.
    pub decision: Decision,
    /// Class activation maps from the network.
    pub cam: Cam,
}

/// Words for a label in records (English; screens in other languages use
/// [`crate::lang::Texts::label`]). The label `other` means "not a chest film".
pub fn label_words(label: &str) -> &str {
    Language::En.texts().label(label)
}

/// Softmax of `logits / temperature`, computed in f64 for stability.
pub fn softmax_t(logits: &[f32], temperature: f32) -> Vec<f32> {
    let scaled: Vec<f64> = logits
        .iter()
        .map(|&l| l as f64 / temperature as f64)
        .collect();
    let max = scaled.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scaled.iter().map(|&s| (s - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|&e| (e / sum) as f32).collect()
}

impl Prediction {
    /// Calibrate raw network output with the manifest's temperature and thresholds.
    pub fn from_raw(m: &Manifest, raw: RawOutput) -> Prediction {
        let probs = softmax_t(&raw.logits, m.calibration.temperature);
        let top = probs
            .iter()
            .enumerate()
            .fold(0, |best, (i, &p)| if p > probs[best] { i } else { best });
        let decision = decide(m, &probs);
        Prediction {
            logits: raw.logits,
            probs,
            top,
            decision,
            cam: raw.cam,
        }
    }

    /// The most probable label's name.
    pub fn label<'m>(&self, m: &'m Manifest) -> &'m str {
        &m.labels[self.top]
    }
}

/// Apply the operating points. "Not a chest X-ray" overrides everything: a result about lungs
/// on an image that is probably not a chest film would be worse than no result.
pub fn decide(m: &Manifest, probs: &[f32]) -> Decision {
    let flagged: Vec<String> = m
        .labels
        .iter()
        .zip(probs)
        .filter(|(l, p)| **p >= m.thresholds[*l])
        .map(|(l, _)| l.clone())
        .collect();
    // "other" alone: the other flags say nothing about an image that is not a chest film.
    let flags = if flagged.iter().any(|l| l == "other") {
        vec!["other".to_string()]
    } else {
        flagged
    };
    Decision {
        summary: Language::En.texts().summary(&flags),
        flags,
    }
}

/// The result in words for the top `label` and the operating-point `decision`. The label stays
/// the most probable class, but the words never contradict the flags shown beside them: an
/// image that reaches the `other` operating point reads "not a chest X-ray", and a `normal` top
/// label with a finding above its (sensitivity-first) operating point reads "possible ..."
/// instead of "no pneumonia pattern".
///
/// In English, as records keep it; [`crate::lang::Texts::result`] is the same in any language.
pub fn result_words(label: &str, decision: &Decision) -> String {
    Language::En
        .texts()
        .result(label, &decision.flags)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(flags: &[&str]) -> Decision {
        Decision {
            flags: flags.iter().map(|f| f.to_string()).collect(),
            summary: String::new(),
        }
    }

    #[test]
    fn result_words_never_contradict_the_flags() {
        for (label, flags, words) in [
            ("normal", &["normal"][..], "no pneumonia pattern"),
            (
                "normal",
                &["pneumonia", "normal"],
                "possible pneumonia pattern",
            ),
            ("normal", &["covid"], "possible COVID-19 pattern"),
            (
                "normal",
                &["covid", "pneumonia"],
                "possible COVID-19/pneumonia",
            ),
            (
                "pneumonia",
                &["pneumonia", "normal"],
                "non-COVID pneumonia pattern",
            ),
            ("covid", &["other"], "not a chest X-ray"),
            ("other", &[], "not a chest X-ray"),
            ("normal", &[], "no pneumonia pattern"),
        ] {
            assert_eq!(
                result_words(label, &decision(flags)),
                words,
                "{label} {flags:?}"
            );
        }
    }
}
