//! What leaves the unit: one JSON message per record, built from the stored record by keeping
//! only what a study needs and nothing that could name a patient or a file.
//!
//! Kept: the result, probabilities, logits, decision, quality warnings, the model (with the
//! site profile), the study's case code if the film has one, the notice, when and how the film
//! was taken. Dropped: the record's `path` and
//! `heatmap` (names on this unit), the input's SHA-256 (a fingerprint of a file that may carry a
//! patient's name) and the kept picture's name. Error texts lose any word with a `/` in it (a
//! path the decoder quoted).

use anyhow::{Context, Result};
use serde_json::{Map, Value};

/// The `schema` field of every result message; a consumer checks it before reading further.
pub const SCHEMA: &str = "cxr-edge/result/v1";

/// Who sends: the site and device levels of the topic.
#[derive(Clone, Debug)]
pub struct Sender {
    /// The study site.
    pub site: String,
    /// This unit.
    pub device: String,
}

impl Sender {
    /// The id of record `name` across the whole network: the same on every resend, so a
    /// destination (or a subscriber) that sees it twice knows it is the same record.
    pub fn record_id(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.site, self.device)
    }
}

const KEPT: &[&str] = &[
    "time",
    "source",
    "input",
    "film_corners",
    "label",
    "result",
    "probs",
    "logits",
    "decision",
    "quality",
    "model",
    "case_code",
    "notice",
    "elapsed_ms",
];

/// The message for the stored record `body` named `name`.
pub fn result_message(from: &Sender, name: &str, body: &str) -> Result<Value> {
    let stored: Map<String, Value> =
        serde_json::from_str(body).with_context(|| format!("record {name} does not parse"))?;
    let mut m = Map::new();
    m.insert("schema".into(), SCHEMA.into());
    m.insert("id".into(), from.record_id(name).into());
    m.insert("site".into(), from.site.clone().into());
    m.insert("device".into(), from.device.clone().into());
    m.insert("record".into(), name.into());
    for k in KEPT {
        if let Some(v) = stored.get(*k) {
            m.insert((*k).into(), v.clone());
        }
    }
    if let Some(Value::String(e)) = stored.get("error") {
        m.insert("error".into(), without_paths(e).into());
    } else {
        m.insert("error".into(), Value::Null);
    }
    Ok(Value::Object(m))
}

/// `e` with every word that holds a `/` replaced by `<path>`.
pub fn without_paths(e: &str) -> String {
    e.split(' ')
        .map(|w| if w.contains('/') { "<path>" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_the_result_and_drop_names() {
        let body = serde_json::json!({
            "time": "2026-12-03T10:00:00Z", "source": "inbox",
            "input_sha256": "ab".repeat(32), "image": "x.png",
            "path": "inbox:20261203T100000Z-abababababab", "heatmap": "/var/lib/x.png",
            "label": "normal", "probs": {"normal": 0.9}, "quality": [],
            "model": {"sha256": "00"}, "notice": crate::NOTICE, "case_code": "S01-0042",
            "error": "cannot decode /var/lib/cxr-edge/inbox/DOE^JOHN.dcm: truncated",
        })
        .to_string();
        let from = Sender {
            site: "s".into(),
            device: "d".into(),
        };
        let m = result_message(&from, "20261203T100000Z-abababababab", &body).unwrap();
        assert_eq!(m["schema"], SCHEMA);
        assert_eq!(m["id"], "s/d/20261203T100000Z-abababababab");
        assert_eq!(m["label"], "normal");
        assert_eq!(m["notice"], crate::NOTICE);
        assert_eq!(m["error"], "cannot decode <path> truncated");
        assert_eq!(m["case_code"], "S01-0042");
        let text = m.to_string();
        for gone in [
            "input_sha256",
            "abababababababab",
            "x.png",
            "heatmap",
            "DOE",
            "\"path\"",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert!(result_message(&from, "n", "{").is_err());
    }
}
