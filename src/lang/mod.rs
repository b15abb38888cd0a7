//! The operator's language: every word the device screens, the upload page and the command
//! line's result lines show a person comes from one [`Texts`] table per [`Language`]. A table is
//! a struct, so a string missing in one language is a compile error, not an English word left
//! on a French screen.
//!
//! Records, JSON answers and log lines stay in English (labels and codes are for machines, and
//! a record must read the same wherever it is opened). Records are written with the English
//! table, so in English a screen shows the record's own sentences (they may carry a measurement,
//! e.g. the blur score); other languages rebuild the words from the record's label, flags and
//! warning codes ([`Texts::speaks_records`]).
//!
//! The lowest layer: it uses no other module of the crate, so any module may name its words.

mod en;
mod es;
mod fr;
mod pt;

use std::borrow::Cow;
use std::fmt;

/// A language of the screens, the page and the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Language {
    /// English (the records' language).
    #[default]
    En,
    /// French.
    Fr,
    /// Spanish.
    Es,
    /// Portuguese (Brazil and Portugal alike: the words chosen read well in both).
    Pt,
}

impl Language {
    /// Every language, in the order the config's error message lists them.
    pub const ALL: [Language; 4] = [Language::En, Language::Fr, Language::Es, Language::Pt];

    /// The ISO 639-1 code, as written in the config and in `lang=` (`fr`).
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Fr => "fr",
            Language::Es => "es",
            Language::Pt => "pt",
        }
    }

    /// This language's words.
    pub fn texts(self) -> &'static Texts {
        match self {
            Language::En => &en::TEXTS,
            Language::Fr => &fr::TEXTS,
            Language::Es => &es::TEXTS,
            Language::Pt => &pt::TEXTS,
        }
    }

    /// A language tag (`fr`, `FR`, `pt-BR`, `es_MX`): its primary subtag, if it is one of ours.
    pub fn from_tag(tag: &str) -> Option<Language> {
        let primary = tag.trim().split(['-', '_']).next()?;
        Language::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(primary))
    }

    /// The config's `language = "..."`: exactly one of the codes, with the choices in the error.
    pub fn parse(s: &str) -> Result<Language, UnknownLanguage> {
        Language::ALL
            .into_iter()
            .find(|l| l.code() == s.trim())
            .ok_or_else(|| UnknownLanguage(s.to_string()))
    }

    /// The language a browser asks for in `Accept-Language` (`fr-CH, fr;q=0.9, en;q=0.8`): the
    /// one of ours with the highest weight, the first listed among equals; English when the
    /// header names none of ours (or is absent).
    pub fn from_accept_language(header: &str) -> Language {
        let mut best: Option<(Language, f32)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(-1.0);
            // q=0 means "not this one"; an item whose weight is not a number 0..=1 is ignored.
            if !(q > 0.0 && q <= 1.0) {
                continue;
            }
            if let Some(l) = Language::from_tag(tag) {
                if best.is_none_or(|(_, bq)| q > bq) {
                    best = Some((l, q));
                }
            }
        }
        best.map_or(Language::En, |(l, _)| l)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A `language` that is not one of [`Language::ALL`].
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownLanguage(pub String);

impl fmt::Display for UnknownLanguage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes: Vec<String> = Language::ALL
            .iter()
            .map(|l| format!("\"{}\"", l.code()))
            .collect();
        write!(
            f,
            "language = \"{}\": use one of {} (English, French, Spanish, Portuguese)",
            self.0,
            codes.join(", ")
        )
    }
}

impl std::error::Error for UnknownLanguage {}

impl<'de> serde::Deserialize<'de> for Language {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Language::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Every word of one language. Sentences end with their full stop; titles and labels have none.
pub struct Texts {
    /// Which language this is.
    pub language: Language,
    /// The research-use notice without a final full stop, its two halves joined by " - " (the
    /// banner breaks the line there on small panels): "Research use only - not a diagnosis".
    pub notice: &'static str,
    /// The result in words.
    pub classes: ClassWords,
    /// What the operating points say ([`Texts::summary`]).
    pub summary: SummaryWords,
    /// One sentence per quality warning code.
    pub quality: QualityWords,
    /// The device screens' own words.
    pub screen: ScreenWords,
    /// The hints of the camera kiosk and the watch folder.
    pub hints: HintWords,
    /// The command line's result table and summary.
    pub cli: CliWords,
    /// The upload page.
    pub page: PageWords,
}

/// Class words: the result's title, and the short names beside the probability bars.
pub struct ClassWords {
    /// Top label `covid`.
    pub covid: &'static str,
    /// Top label `pneumonia`.
    pub pneumonia: &'static str,
    /// Top label `normal`.
    pub normal: &'static str,
    /// Top label `other`, or `other` over its operating point.
    pub other: &'static str,
    /// Top label `normal` with both findings over their operating points.
    pub possible_both: &'static str,
    /// Top label `normal` with `covid` over its operating point.
    pub possible_covid: &'static str,
    /// Top label `normal` with `pneumonia` over its operating point.
    pub possible_pneumonia: &'static str,
    /// Short names of the labels beside the bars (at most 9 characters: the bar's label column
    /// is 10 wide): covid, pneumonia, normal, other.
    pub short: [&'static str; 4],
}

/// The operating-point sentence.
pub struct SummaryWords {
    /// Findings over their operating points, given the list of their class words.
    pub above: fn(&str) -> String,
    /// `other` over its operating point.
    pub not_chest: &'static str,
    /// Only `normal` over its operating point.
    pub normal: &'static str,
    /// No class over its operating point.
    pub indeterminate: &'static str,
}

/// One sentence per `film::Code`, without the measurement some English records add.
pub struct QualityWords {
    /// `low_resolution`.
    pub low_resolution: &'static str,
    /// `unusual_shape`.
    pub unusual_shape: &'static str,
    /// `low_contrast`.
    pub low_contrast: &'static str,
    /// `underexposed`.
    pub underexposed: &'static str,
    /// `overexposed`.
    pub overexposed: &'static str,
    /// `no_film`.
    pub no_film: &'static str,
    /// `film_cut_off`.
    pub film_cut_off: &'static str,
    /// `film_too_small`.
    pub film_too_small: &'static str,
    /// `inverted`.
    pub inverted: &'static str,
    /// `blurred`.
    pub blurred: &'static str,
    /// `glare_over_lungs`.
    pub glare_over_lungs: &'static str,
    /// `not_chest_xray`.
    pub not_chest_xray: &'static str,
}

/// A problem screen's heading and what to do about it.
pub struct ProblemWords {
    /// A few words.
    pub title: &'static str,
    /// One or two sentences.
    pub advice: &'static str,
}

/// The device screens' fixed words.
pub struct ScreenWords {
    /// Title of the waiting screen.
    pub ready: &'static str,
    /// Title of the analysing screen (also the page's status while it uploads).
    pub analysing: &'static str,
    /// Under it.
    pub analysing_hint: &'static str,
    /// Title of a result without result words.
    pub result: &'static str,
    /// Before the class words under the heatmap: "Map: COVID-19 pattern 64%".
    pub map: &'static str,
    /// The on-screen buttons, left to right: Back, Capture, Next.
    pub buttons: [&'static str; 3],
    /// No picture from the camera.
    pub no_camera: ProblemWords,
    /// No usable film in the camera's view.
    pub no_film: ProblemWords,
    /// Not a frontal chest X-ray.
    pub not_chest: ProblemWords,
    /// The model could not be loaded.
    pub model_failed: ProblemWords,
    /// The image could not be read or analysed.
    pub bad_image: ProblemWords,
    /// Capture without the case code the study requires (or with one of another form).
    pub case_code: ProblemWords,
}

/// Hints on the camera kiosk's preview and the watch folder's waiting screen.
pub struct HintWords {
    /// A film is seen but moves.
    pub moving: &'static str,
    /// A film is seen and still for `still` of the `need` frames.
    pub steadying: fn(usize, usize) -> String,
    /// Still long enough; the analysis starts.
    pub ready: &'static str,
    /// The analysis runs beside the preview.
    pub busy: &'static str,
    /// Still, and auto-capture is off.
    pub press_capture: &'static str,
    /// This film was analysed already.
    pub analysed: &'static str,
    /// No frame from the camera yet.
    pub waiting_for_camera: &'static str,
    /// Capture pressed before the first frame.
    pub no_picture_yet: &'static str,
    /// The camera has been silent for this many seconds.
    pub camera_silent: fn(f32) -> String,
    /// The watch folder's waiting hint, given the folder.
    pub copy_into: fn(&str) -> String,
    /// The watch folder cannot be read, given why.
    pub inbox_unavailable: fn(&str) -> String,
    /// Before the case code on the preview and the result: "Case: S01-0042".
    pub case_code: &'static str,
    /// After it while none is typed yet.
    pub case_hint: &'static str,
    /// After a code read from a barcode.
    pub case_scanned: &'static str,
}

/// `cxr-edge classify`'s table and summary.
pub struct CliWords {
    /// Column heading.
    pub file: &'static str,
    /// Column heading.
    pub result: &'static str,
    /// Column heading.
    pub notes: &'static str,
    /// "model" in the line naming the model.
    pub model: &'static str,
    /// Note: these labels are over their operating points (followed by the labels).
    pub above: &'static str,
    /// Note: no label over its operating point.
    pub indeterminate: &'static str,
    /// Before an error message.
    pub error: &'static str,
    /// "12 inputs".
    pub inputs: fn(usize) -> String,
    /// "2 failed".
    pub failed: fn(usize) -> String,
}

/// The upload page's words (its result words come from the shared tables).
pub struct PageWords {
    /// The page's heading.
    pub heading: &'static str,
    /// What to do, before the notice.
    pub intro: &'static str,
    /// Label of the image kind choice.
    pub image_kind: &'static str,
    /// The image kind choices: auto, digital, film-photo.
    pub kinds: [&'static str; 3],
    /// Label of the token field.
    pub token: &'static str,
    /// Label of the case-code field (shown when the unit takes case codes).
    pub case_code: &'static str,
    /// The upload button.
    pub analyse: &'static str,
    /// Caption of the analysed film.
    pub film: &'static str,
    /// Caption of the heatmap.
    pub heatmap: &'static str,
    /// Before the server's health status when the model is not running.
    pub model_down: &'static str,
    /// Before the error when the server does not answer.
    pub no_answer: &'static str,
    /// Upload pressed without a file.
    pub pick_first: &'static str,
    /// An analysis came back.
    pub done: &'static str,
    /// The image was refused with a reason.
    pub not_analysed: &'static str,
    /// Before the seconds to wait when the server is busy ("retry in").
    pub retry_in: &'static str,
    /// Before the error when the upload failed.
    pub upload_failed: &'static str,
}

/// The labels [`ClassWords::short`] names, in its order.
pub const LABELS: [&str; 4] = ["covid", "pneumonia", "normal", "other"];

/// The warning codes [`Texts::quality`] knows, as records write them (`film::Code`).
pub const CODES: [&str; 12] = [
    "low_resolution",
    "unusual_shape",
    "low_contrast",
    "underexposed",
    "overexposed",
    "no_film",
    "film_cut_off",
    "film_too_small",
    "inverted",
    "blurred",
    "glare_over_lungs",
    "not_chest_xray",
];

impl Texts {
    /// Records are in this language (English): their own sentences can be shown as they are.
    pub fn speaks_records(&self) -> bool {
        self.language == Language::En
    }

    /// The class words for a model label; an unknown label is shown as it is.
    pub fn label<'a>(&self, label: &'a str) -> &'a str {
        match label {
            "covid" => self.classes.covid,
            "pneumonia" => self.classes.pneumonia,
            "normal" => self.classes.normal,
            "other" => self.classes.other,
            l => l,
        }
    }

    /// The short name of a label beside its bar; an unknown label is shown as it is.
    pub fn short_label<'a>(&self, label: &'a str) -> &'a str {
        LABELS
            .iter()
            .position(|l| *l == label)
            .map_or(label, |i| self.classes.short[i])
    }

    /// The result in words for the top `label` and the labels over their operating points
    /// (`flags`); see `model::result_words`, which is this in English.
    pub fn result<'a>(&self, label: &'a str, flags: &[String]) -> &'a str {
        let flagged = |l: &str| flags.iter().any(|f| f == l);
        if label == "other" || flagged("other") {
            return self.classes.other;
        }
        if label == "normal" {
            match (flagged("covid"), flagged("pneumonia")) {
                (true, true) => return self.classes.possible_both,
                (true, false) => return self.classes.possible_covid,
                (false, true) => return self.classes.possible_pneumonia,
                (false, false) => {}
            }
        }
        self.label(label)
    }

    /// The operating-point sentence for the labels over their operating points; see
    /// `model::decide`, which writes this in English into every record.
    pub fn summary(&self, flags: &[String]) -> String {
        if flags.iter().any(|l| l == "other") {
            return self.summary.not_chest.to_string();
        }
        let findings: Vec<&str> = flags
            .iter()
            .filter(|l| *l != "normal")
            .map(|l| self.label(l))
            .collect();
        if !findings.is_empty() {
            (self.summary.above)(&findings.join(", "))
        } else if flags.iter().any(|l| l == "normal") {
            self.summary.normal.to_string()
        } else {
            self.summary.indeterminate.to_string()
        }
    }

    /// The sentence for a quality warning code as records write it (`low_contrast`); `None`
    /// for a code this table does not know (a newer record).
    pub fn quality(&self, code: &str) -> Option<&'static str> {
        let q = &self.quality;
        Some(match code {
            "low_resolution" => q.low_resolution,
            "unusual_shape" => q.unusual_shape,
            "low_contrast" => q.low_contrast,
            "underexposed" => q.underexposed,
            "overexposed" => q.overexposed,
            "no_film" => q.no_film,
            "film_cut_off" => q.film_cut_off,
            "film_too_small" => q.film_too_small,
            "inverted" => q.inverted,
            "blurred" => q.blurred,
            "glare_over_lungs" => q.glare_over_lungs,
            "not_chest_xray" => q.not_chest_xray,
            _ => return None,
        })
    }

    /// A warning as shown: the record's own sentence in English, else this table's sentence
    /// for its code (the record's when the code is unknown here).
    pub fn warning<'a>(&self, code: &str, message: &'a str) -> &'a str {
        match self.quality(code) {
            Some(words) if !self.speaks_records() => words,
            _ => message,
        }
    }
}

/// `text` with every character outside ISO-8859-1 (what the screens' fonts draw) as `?`, and
/// control characters (line breaks, tabs) as spaces. File names and error messages reach the
/// screens too, and they may be in any script.
pub fn latin1(text: &str) -> Cow<'_, str> {
    let drawable = |c: char| matches!(c, ' '..='~' | '\u{a0}'..='\u{ff}');
    if text.chars().all(drawable) {
        return Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| match c {
            c if drawable(c) => c,
            c if c.is_control() || c.is_whitespace() => ' ',
            _ => '?',
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests;
