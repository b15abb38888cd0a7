//! The record of one analysed film: what every face prints (`classify` rows and JSON, the
//! upload API), what the results log keeps and what the screens show. It sits beside the
//! stages, below everything that writes or shows it, so `store`, `ui` and `serve` read the same
//! type and never decide anything about a film again.
//!
//! The record names its input only by a display name (a path for `classify`, `<source>:<log
//! name>` in the results log); no patient data goes in.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::film::{Code, Quad, Warning};
use crate::model::{Decision, ModelId};

/// How the image that was analysed had been taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// A digital film (an export, a scan): the whole image is the film.
    Digital,
    /// A camera photo of a film on a light box, found and straightened before the model.
    FilmPhoto,
}

/// The JSON record of one input (also the row of the table).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// What the input was called: a path, or `<source>:<name>` in the results log.
    pub path: String,
    /// How the image was taken (`null` if it could not be read).
    pub input: Option<InputKind>,
    /// Where the film was found in a photo: TL, TR, BR, BL corners in image pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub film_corners: Option<Quad>,
    /// A manifest label, or `null` when the input failed.
    pub label: Option<String>,
    /// The label in words (`other` reads "not a chest X-ray").
    pub result: Option<String>,
    /// Calibrated probability per label, in manifest order.
    pub probs: Option<serde_json::Map<String, serde_json::Value>>,
    /// The network's raw logits per label, before any temperature: what `cxr-edge calibrate`
    /// refits a site's calibration from (absent in records written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logits: Option<serde_json::Map<String, serde_json::Value>>,
    /// What the operating points say, when there is a result.
    pub decision: Option<Decision>,
    /// Quality warnings, and the blocking reason when a photo got no result.
    pub quality: Vec<Warning>,
    /// The model that produced (or would have produced) the result.
    pub model: ModelId,
    /// Where the heatmap picture was written (`classify --heatmap`), or its address (`serve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heatmap: Option<String>,
    /// Why there is no result, for a person.
    pub error: Option<String>,
    /// The study's case code for this film ([`crate::case`]), when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_code: Option<String>,
    /// Always [`crate::NOTICE`] on a new record.
    pub notice: Cow<'static, str>,
    /// Time taken by the analysis, in milliseconds.
    pub elapsed_ms: f64,
}

impl Record {
    /// An empty record for `path`: no result yet, the notice already on it.
    pub fn new(path: &str, model: ModelId) -> Record {
        Record {
            path: path.to_string(),
            input: None,
            film_corners: None,
            label: None,
            result: None,
            probs: None,
            logits: None,
            decision: None,
            quality: Vec::new(),
            model,
            heatmap: None,
            error: None,
            case_code: None,
            notice: Cow::Borrowed(crate::NOTICE),
            elapsed_ms: 0.0,
        }
    }

    /// "Not a chest X-ray": decided once, by the analysis, which then adds the
    /// `not_chest_xray` warning; screens, tables and the upload page read it from there.
    pub fn not_chest(&self) -> bool {
        self.error.is_none() && self.has(Code::NotChestXray)
    }

    /// Whether the photo got no result because of a blocking gate (no film, cut off, too small).
    pub fn blocked(&self) -> bool {
        self.quality.iter().any(|w| w.code.is_blocking())
    }

    /// Whether a warning with `code` is on the record.
    pub fn has(&self, code: Code) -> bool {
        self.quality.iter().any(|w| w.code == code)
    }

    /// The results-log name of a record written there (`inbox:<name>` gives `<name>`).
    pub fn log_name(&self) -> Option<&str> {
        self.path.split_once(':').map(|(_, n)| n)
    }

    /// One line for a terminal or the journal: the input, the result in words and the notice,
    /// or why it failed.
    pub fn summary_line(&self) -> String {
        match (&self.result, &self.error) {
            (_, Some(e)) => format!("{}  failed: {e}", self.path),
            (Some(r), None) => format!("{}  {r}  ({})", self.path, crate::NOTICE),
            (None, None) => self.path.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelId {
        ModelId {
            name: "m".into(),
            version: "1".into(),
            variant: "int8".into(),
            sha256: "0".repeat(12),
            profile: Default::default(),
        }
    }

    #[test]
    fn a_record_reads_back_as_it_was_written() {
        let mut r = Record::new("inbox:20261130T235959Z-abababababab", model());
        r.input = Some(InputKind::FilmPhoto);
        r.quality
            .push(Warning::new(Code::NotChestXray, "not a chest film"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["input"], "film-photo");
        assert_eq!(json["quality"][0]["code"], "not_chest_xray");
        assert_eq!(json["notice"], crate::NOTICE);
        let back: Record = serde_json::from_value(json).unwrap();
        assert!(back.not_chest());
        assert_eq!(back.log_name(), Some("20261130T235959Z-abababababab"));
        assert_eq!(back.input, Some(InputKind::FilmPhoto));
    }
}
