//! Plain-language quality warnings. A warning never blocks a result: it tells the reader why
//! the result may be less trustworthy than usual.

use serde::{Deserialize, Serialize};

use crate::pixels::Frame;

/// What a warning is about. On the wire (records, the upload API, the JSON schema) each is its
/// snake_case name, e.g. `low_contrast`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// A digital film smaller than 200 pixels on a side.
    LowResolution,
    /// An aspect ratio no chest film has.
    UnusualShape,
    /// Most pixels within a few grey levels.
    LowContrast,
    /// Too dark to see lung detail.
    Underexposed,
    /// Too bright, burned out.
    Overexposed,
    /// Blocking: no film in a camera photo.
    NoFilm,
    /// Blocking: the film is cut by the edge of the photo.
    FilmCutOff,
    /// Blocking: the film fills too little of the photo.
    FilmTooSmall,
    /// The photographed film was a negative and was inverted back.
    Inverted,
    /// The photo is blurred.
    Blurred,
    /// A glare spot over the lungs.
    GlareOverLungs,
    /// The model says this is not a frontal chest film; no result about the lungs is given.
    /// Added by the analysis (see `model::not_chest`), the one place that decides it.
    NotChestXray,
}

impl Code {
    /// A photo with this warning got no result: the film could not be found or used.
    pub fn is_blocking(self) -> bool {
        matches!(self, Code::NoFilm | Code::FilmCutOff | Code::FilmTooSmall)
    }

    /// The code as written in records (`low_contrast`).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::LowResolution => "low_resolution",
            Code::UnusualShape => "unusual_shape",
            Code::LowContrast => "low_contrast",
            Code::Underexposed => "underexposed",
            Code::Overexposed => "overexposed",
            Code::NoFilm => "no_film",
            Code::FilmCutOff => "film_cut_off",
            Code::FilmTooSmall => "film_too_small",
            Code::Inverted => "inverted",
            Code::Blurred => "blurred",
            Code::GlareOverLungs => "glare_over_lungs",
            Code::NotChestXray => "not_chest_xray",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One quality warning: a code for machines and a sentence for a person.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Warning {
    /// Stable machine-readable code, e.g. `low_contrast`.
    pub code: Code,
    /// A sentence for a person.
    pub message: String,
}

impl Warning {
    /// A warning with its sentence.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Warning {
            code,
            message: message.into(),
        }
    }
}

/// Smallest side below which detail is lost (training films are 224-320 px).
const MIN_GOOD_SIDE: usize = 200;

/// Quality warnings for a digital film image.
pub fn assess(frame: &Frame) -> Vec<Warning> {
    let mut out = Vec::new();
    let (w, h) = (frame.width, frame.height);
    if w.min(h) < MIN_GOOD_SIDE {
        out.push(Warning::new(
            Code::LowResolution,
            format!("Image is only {w}x{h} pixels; fine detail may be lost (200 or more per side is better)."),
        ));
    }
    let aspect = w as f32 / h as f32;
    if !(0.6..=1.67).contains(&aspect) {
        out.push(Warning::new(
            Code::UnusualShape,
            format!("Image is {w}x{h}, an unusual shape for a chest film; it is squashed to a square for the model."),
        ));
    }
    let mut hist = [0u64; 256];
    for &v in &frame.data {
        hist[v.clamp(0.0, 255.0) as usize] += 1;
    }
    let n = frame.data.len().max(1) as f64;
    let pct = |q: f64| {
        let target = (q * n) as u64;
        let mut acc = 0;
        for (i, &c) in hist.iter().enumerate() {
            acc += c;
            if acc > target {
                return i;
            }
        }
        255
    };
    let (p1, p50, p99) = (pct(0.01), pct(0.5), pct(0.99));
    let dark = hist[..8].iter().sum::<u64>() as f64 / n;
    let bright = hist[248..].iter().sum::<u64>() as f64 / n;
    if p99 - p1 < 60 {
        out.push(Warning::new(
            Code::LowContrast,
            format!("Low contrast (most pixels within {} grey levels); the film may be washed out or the exposure flat.", p99 - p1),
        ));
    }
    if p50 < 35 || dark > 0.6 {
        out.push(Warning::new(
            Code::Underexposed,
            "Image is very dark; lung detail may be hidden.",
        ));
    }
    if p50 > 220 || bright > 0.4 {
        out.push(Warning::new(
            Code::Overexposed,
            "Image is very bright or saturated; lung detail may be burned out.",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize, lo: f32, hi: f32) -> Frame {
        let data = (0..w * h)
            .map(|i| lo + (hi - lo) * ((i % w) as f32 / (w - 1) as f32))
            .collect();
        Frame::new(w, h, data)
    }

    #[test]
    fn a_good_image_has_no_warnings() {
        assert!(assess(&gradient(300, 300, 10.0, 240.0)).is_empty());
    }

    #[test]
    fn each_problem_is_named() {
        let codes = |f: &Frame| assess(f).into_iter().map(|w| w.code).collect::<Vec<_>>();
        assert_eq!(
            codes(&gradient(100, 300, 10.0, 240.0)),
            vec![Code::LowResolution, Code::UnusualShape]
        );
        assert_eq!(
            codes(&gradient(300, 300, 100.0, 130.0)),
            vec![Code::LowContrast]
        );
        assert!(codes(&gradient(300, 300, 0.0, 40.0)).contains(&Code::Underexposed));
        assert!(codes(&gradient(300, 300, 215.0, 255.0)).contains(&Code::Overexposed));
    }
}
