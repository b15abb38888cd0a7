//! Plain-language quality warnings. A warning never blocks a result: it tells the reader why
//! the result may be less trustworthy than usual.

use serde::Serialize;

use crate::capture::Frame;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Warning {
    /// Stable machine-readable code, e.g. `low_contrast`.
    pub code: &'static str,
    /// A sentence for a person.
    pub message: String,
}

impl Warning {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
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
            "low_resolution",
            format!("Image is only {w}x{h} pixels; fine detail may be lost (200 or more per side is better)."),
        ));
    }
    let aspect = w as f32 / h as f32;
    if !(0.6..=1.67).contains(&aspect) {
        out.push(Warning::new(
            "unusual_shape",
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
            "low_contrast",
            format!("Low contrast (most pixels within {} grey levels); the film may be washed out or the exposure flat.", p99 - p1),
        ));
    }
    if p50 < 35 || dark > 0.6 {
        out.push(Warning::new(
            "underexposed",
            "Image is very dark; lung detail may be hidden.",
        ));
    }
    if p50 > 220 || bright > 0.4 {
        out.push(Warning::new(
            "overexposed",
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
            vec!["low_resolution", "unusual_shape"]
        );
        assert_eq!(
            codes(&gradient(300, 300, 100.0, 130.0)),
            vec!["low_contrast"]
        );
        assert!(codes(&gradient(300, 300, 0.0, 40.0)).contains(&"underexposed"));
        assert!(codes(&gradient(300, 300, 215.0, 255.0)).contains(&"overexposed"));
    }
}
