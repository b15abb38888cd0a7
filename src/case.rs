//! Case codes: the study's own code for a film (a sticker on the film sleeve, a study card),
//! attached to its record so that the study can join the unit's results with its case report
//! forms without the unit ever knowing who the patient is.
//!
//! The config says whether a code is `off` (the default), `optional` or `required`, and which
//! codes are valid (`case_code_pattern`, a regular expression that must match the whole code).
//! A code is checked here before it reaches a record; a refusal says why without repeating the
//! code. The code travels with the record (the results log, `classify --json`, the upload API,
//! the MQTT message, the DICOM patient ID) and is never written into the service's log.

use serde::{Deserialize, Serialize};

/// Whether films carry a case code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// No case codes (the default).
    #[default]
    Off,
    /// A code may be given.
    Optional,
    /// No analysis without a valid code.
    Required,
}

/// The default pattern: 3 to 32 letters, digits, `_` and `-`, starting with a letter or digit.
pub const DEFAULT_PATTERN: &str = "[A-Za-z0-9][A-Za-z0-9_-]{2,31}";

/// The longest code accepted whatever the pattern (a DICOM patient ID holds 64 characters).
pub const MAX_LEN: usize = 64;

/// Why a code was refused. The messages never contain the code: it may be mistyped patient data.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    /// Required, but none given.
    #[error("a case code is required for every film")]
    Missing,
    /// Given while codes are off.
    #[error("case codes are off in this unit's config (case_code = \"off\")")]
    Off,
    /// Longer than [`MAX_LEN`].
    #[error("the case code is longer than {MAX_LEN} characters")]
    TooLong,
    /// Not plain printable ASCII.
    #[error("the case code may hold printable ASCII characters only")]
    NotPrintable,
    /// Does not match the pattern.
    #[error("the case code does not have the study's form ({0})")]
    NoMatch(String),
}

/// The config's case-code rule, ready to check codes.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Off, optional or required.
    pub mode: Mode,
    pattern: regex_lite::Regex,
    /// The pattern as written, for messages.
    pub pattern_text: String,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new(Mode::Off, DEFAULT_PATTERN).expect("the default pattern is valid")
    }
}

impl Policy {
    /// `pattern` must match a whole code (it is anchored here).
    pub fn new(mode: Mode, pattern: &str) -> anyhow::Result<Policy> {
        let anchored = format!("^(?:{pattern})$");
        let re = regex_lite::Regex::new(&anchored)
            .map_err(|e| anyhow::anyhow!("case_code_pattern is not a valid expression: {e}"))?;
        Ok(Policy {
            mode,
            pattern: re,
            pattern_text: pattern.to_string(),
        })
    }

    /// Check `given` (surrounding spaces ignored; empty is none) against the rule: the code to
    /// record, `None` when there is none and none is required.
    pub fn check(&self, given: Option<&str>) -> Result<Option<String>, CaseError> {
        let code = given.map(str::trim).filter(|c| !c.is_empty());
        let Some(code) = code else {
            return match self.mode {
                Mode::Required => Err(CaseError::Missing),
                _ => Ok(None),
            };
        };
        if self.mode == Mode::Off {
            return Err(CaseError::Off);
        }
        if code.len() > MAX_LEN {
            return Err(CaseError::TooLong);
        }
        if !code.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(CaseError::NotPrintable);
        }
        if !self.pattern.is_match(code) {
            return Err(CaseError::NoMatch(self.pattern_text.clone()));
        }
        Ok(Some(code.to_string()))
    }
}

/// A code being typed on the kiosk's keyboard or keypad, or read from a barcode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    text: String,
    /// Read from a barcode (shown as such) rather than typed.
    pub scanned: bool,
}

impl Entry {
    /// Add a typed character (printable ASCII; anything else, or past [`MAX_LEN`], is ignored).
    pub fn push(&mut self, c: char) {
        if self.scanned {
            // Typing over a scanned code starts a new one.
            self.clear();
        }
        if (c.is_ascii_graphic() || c == ' ') && self.text.len() < MAX_LEN {
            self.text.push(c);
        }
    }

    /// Remove the last character.
    pub fn erase(&mut self) {
        self.text.pop();
        self.scanned = false;
    }

    /// Forget the code.
    pub fn clear(&mut self) {
        self.text.clear();
        self.scanned = false;
    }

    /// Take a scanned code (already checked against the policy).
    pub fn set_scanned(&mut self, code: &str) {
        self.text = code.chars().take(MAX_LEN).collect();
        self.scanned = true;
    }

    /// The code so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether nothing was typed or scanned.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_checked_against_mode_and_pattern_without_echoing_them() {
        let off = Policy::default();
        assert_eq!(off.check(None), Ok(None));
        assert_eq!(off.check(Some("  ")), Ok(None));
        assert_eq!(off.check(Some("ABC-1")), Err(CaseError::Off));

        let opt = Policy::new(Mode::Optional, DEFAULT_PATTERN).unwrap();
        assert_eq!(opt.check(None), Ok(None));
        assert_eq!(opt.check(Some(" ABC-12 ")), Ok(Some("ABC-12".into())));
        assert!(matches!(opt.check(Some("AB")), Err(CaseError::NoMatch(_))));
        // the pattern must match the whole code, not a part of it
        assert!(opt.check(Some("ABC-12; DOE^JANE")).is_err());
        assert_eq!(opt.check(Some("ABC\u{e9}1")), Err(CaseError::NotPrintable));
        assert_eq!(
            opt.check(Some("A\n\u{1b}[2J")),
            Err(CaseError::NotPrintable)
        );
        assert_eq!(opt.check(Some(&"A".repeat(65))), Err(CaseError::TooLong));

        let req = Policy::new(Mode::Required, r"S\d{2}-\d{4}").unwrap();
        assert_eq!(req.check(None), Err(CaseError::Missing));
        assert_eq!(req.check(Some("S01-0042")), Ok(Some("S01-0042".into())));
        let e = req.check(Some("S01-42")).unwrap_err().to_string();
        assert!(!e.contains("S01-42") && e.contains(r"S\d{2}-\d{4}"), "{e}");
        assert!(Policy::new(Mode::Required, "(").is_err());
    }

    #[test]
    fn an_entry_is_typed_erased_and_replaced_by_a_scan() {
        let mut e = Entry::default();
        for c in "AB-1\u{7}2".chars() {
            e.push(c);
        }
        assert_eq!(e.text(), "AB-12");
        e.erase();
        assert_eq!(e.text(), "AB-1");
        e.set_scanned("S01-0042");
        assert!(e.scanned);
        e.push('7');
        assert_eq!((e.text(), e.scanned), ("7", false));
    }
}
