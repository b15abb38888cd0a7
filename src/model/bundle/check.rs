//! The bundle's own check: before a unit switches to a new model it loads every variant and
//! runs it on the sample films compiled into the program; each answer must be the one the
//! coordinator's machine wrote into `expected.json` when it signed the bundle.
//!
//! This catches what a signature cannot: a model file tract cannot load or runs differently on
//! this board (another kernel family, a missing operator), a manifest whose preprocessing or
//! calibration does not match the network, a variant left out of the test. The tolerance is on
//! calibrated probabilities; the int8 and f32 files answer within ~1e-3 of themselves across
//! x86 and the ARM kernel families (tests/arm.rs), so a difference of 0.02 is a different
//! model, not rounding.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use crate::capture::{decode_image, samples, Limits};
use crate::model::manifest::sha256_hex;
use crate::model::Classifier;

/// The largest difference in any calibrated probability that still counts as the same answer.
pub const DEFAULT_TOLERANCE: f32 = 0.02;
/// Fewest sample films a variant must be checked on.
const MIN_SAMPLES: usize = 3;

/// `expected.json`: what each variant answered on the sample films when the bundle was signed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// Largest allowed difference per probability.
    pub tolerance: f32,
    /// One entry per variant and sample film.
    pub answers: Vec<Answer>,
}

/// One variant's answer on one sample film.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The variant (as in the manifest).
    pub variant: String,
    /// The sample film's name (as compiled into the program).
    pub sample: String,
    /// sha256 of the sample film's file: a program whose sample differs skips it.
    pub sample_sha256: String,
    /// Calibrated probabilities, in the manifest's label order.
    pub probs: Vec<f32>,
}

/// Run every variant of the manifest at `manifest` on the bundled samples (what the signer
/// does to write `expected.json`).
pub fn measure(manifest: &Path) -> Result<Expected> {
    let m = crate::model::Manifest::load(manifest)?;
    let mut answers = Vec::new();
    for variant in m.variants.keys() {
        let clf = Classifier::load(manifest, Some(variant))?;
        for s in samples::all() {
            let frame = match decode_image(s.bytes, &Limits::default()) {
                Ok(f) => f,
                Err(_) => continue, // test pictures that are not films (e.g. odd formats)
            };
            let p = clf.classify(&frame)?;
            answers.push(Answer {
                variant: variant.clone(),
                sample: s.name.to_string(),
                sample_sha256: sha256_hex(s.bytes),
                probs: p.probs,
            });
        }
    }
    Ok(Expected {
        tolerance: DEFAULT_TOLERANCE,
        answers,
    })
}

/// Check the manifest at `manifest` against `expected`: every variant must load and answer
/// within the tolerance on at least [`MIN_SAMPLES`] of the samples this program carries.
/// Returns the number of answers compared.
pub fn verify(manifest: &Path, expected: &Expected) -> Result<usize> {
    let tol = expected.tolerance;
    ensure!(
        tol.is_finite() && (0.0..=0.1).contains(&tol),
        "expected.json's tolerance {tol} is outside 0 ..= 0.1"
    );
    let m = crate::model::Manifest::load(manifest)?;
    let mut compared = 0;
    for variant in m.variants.keys() {
        let clf = Classifier::load(manifest, Some(variant))
            .with_context(|| format!("variant {variant} does not load"))?;
        let mut n = 0;
        for a in expected.answers.iter().filter(|a| &a.variant == variant) {
            let Some(s) = samples::all().iter().find(|s| s.name == a.sample) else {
                continue;
            };
            if sha256_hex(s.bytes) != a.sample_sha256 {
                continue;
            }
            let frame = decode_image(s.bytes, &Limits::default())
                .with_context(|| format!("sample {}", s.name))?;
            let got = clf.classify(&frame)?.probs;
            ensure!(
                got.len() == a.probs.len(),
                "variant {variant} on {}: {} probabilities, {} expected",
                s.name,
                got.len(),
                a.probs.len()
            );
            let worst =
                got.iter()
                    .zip(&a.probs)
                    .map(|(g, e)| (g - e).abs())
                    .fold(0.0f32, |a, d| {
                        if a.is_nan() || d.is_nan() {
                            f32::NAN
                        } else {
                            a.max(d)
                        }
                    });
            // NaN (a broken network) is not within any tolerance.
            if worst.is_nan() || worst > tol {
                bail!(
                    "variant {variant} on sample {}: a probability differs by {worst:.4} from \
                     what the signer measured (tolerance {tol})",
                    s.name
                );
            }
            n += 1;
        }
        ensure!(
            n >= MIN_SAMPLES,
            "variant {variant} could be checked on {n} sample films of this program, fewer \
             than {MIN_SAMPLES} (expected.json is for other samples or lacks the variant)"
        );
        compared += n;
    }
    Ok(compared)
}
