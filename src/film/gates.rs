//! Quality gates for camera photos of films.
//!
//! Two kinds: *blocking* gates (no film, film cut off, film too small) mean there is nothing fit
//! to classify, so no classification is made; *warnings* (blur, exposure, glare, inverted film)
//! accompany a result and say why it may be less trustworthy. Both reuse [`Warning`] with
//! stable codes so the CLI and logs can match on them.

use crate::pixels::resize_area;
use crate::pixels::Frame;

use super::filters::{box_blur, quantile};
use super::finder::{find_film, FindError};
use super::geometry::Quad;
use super::quality::{Code, Warning};
use super::rectify::{natural_size, rectify, stretch_levels};

/// Longest side of the rectified film; the model input is far smaller, and the camera rarely
/// resolves more.
pub const MAX_RECTIFIED_SIDE: usize = 512;

/// Blur score (see [`blur_score`]) above which a film is called blurred.
pub const BLUR_LIMIT: f32 = 0.55;

/// Share of the central film area that may be saturated before glare is reported.
pub const GLARE_LIMIT: f32 = 0.004;

/// A photo that cannot be classified, with the reason for a person.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", reason.message)]
pub struct Blocked {
    /// What the finder reported.
    pub error: FindError,
    /// The reason in plain language; its message is the error text.
    pub reason: Warning,
}

/// A film found in a photo, ready for the model.
#[derive(Clone, Debug)]
pub struct PhotoReport {
    /// TL, TR, BR, BL in the camera frame.
    pub corners: Quad,
    /// The rectified film, inverted back if it was a negative and stretched to the full grey
    /// range (what the model should see).
    pub film: Frame,
    /// Non-blocking problems, in a fixed order: inverted, blurred, exposure, glare.
    pub warnings: Vec<Warning>,
    /// Whether the film was a negative and was inverted back.
    pub inverted: bool,
}

/// The plain-language blocking reason for a finder error.
pub fn blocking_reason(e: &FindError) -> Warning {
    match e {
        FindError::NoFilm => Warning::new(Code::NoFilm, "No film found in the camera picture; place the whole film on the light box, facing the camera."),
        FindError::CutOff => Warning::new(Code::FilmCutOff, "The film is cut off by the edge of the picture; move the camera back so that all four corners are visible."),
        FindError::TooSmall { area_frac } => Warning::new(
            Code::FilmTooSmall,
            format!("The film fills only {:.0}% of the picture; move the camera closer so that the film fills most of it.", area_frac * 100.0),
        ),
    }
}

/// Find, rectify and check the film in a camera photo.
pub fn check_photo(frame: &Frame) -> Result<PhotoReport, Blocked> {
    let found = find_film(frame).map_err(|error| Blocked {
        reason: blocking_reason(&error),
        error,
    })?;
    check_photo_at(frame, found.corners)
}

/// [`check_photo`] with the film's corners already found in this very frame (the live preview
/// finds them to tell whether the film is still), so the finder does not run twice.
pub fn check_photo_at(frame: &Frame, corners: Quad) -> Result<PhotoReport, Blocked> {
    let (nw, nh) = natural_size(&corners);
    let s = (MAX_RECTIFIED_SIDE as f32 / nw.max(nh) as f32).min(1.0);
    let (w, h) = (
        ((nw as f32 * s).round() as usize).max(8),
        ((nh as f32 * s).round() as usize).max(8),
    );
    let raw = rectify(frame, &corners, w, h).ok_or_else(|| Blocked {
        reason: blocking_reason(&FindError::NoFilm),
        error: FindError::NoFilm,
    })?;

    let mut warnings = Vec::new();
    let inverted = looks_inverted(&raw);
    if inverted {
        warnings.push(Warning::new(Code::Inverted, "The film looks like a negative (dark bones, bright lungs); it was inverted back before analysis."));
    }
    let upright = if inverted {
        Frame::new(
            raw.width,
            raw.height,
            raw.data.iter().map(|v| 255.0 - v).collect(),
        )
    } else {
        raw.clone()
    };
    warnings.extend(film_warnings(&upright));
    Ok(PhotoReport {
        corners,
        film: stretch_levels(&upright),
        warnings,
        inverted,
    })
}

/// Warnings for a rectified (not yet stretched) film from a camera: blur, exposure, glare.
pub fn film_warnings(film: &Frame) -> Vec<Warning> {
    let mut out = Vec::new();
    let b = blur_score(film);
    if b > BLUR_LIMIT {
        out.push(Warning::new(Code::Blurred, format!("The photo is blurred (focus or camera shake, score {b:.2}); hold the camera still and let it focus.")));
    }
    let mut v = film.data.clone();
    let (p50, p99) = (quantile(&mut v, 0.5), quantile(&mut v, 0.99));
    let saturated =
        film.data.iter().filter(|&&x| x >= 250.0).count() as f32 / film.data.len().max(1) as f32;
    if p99 < 60.0 || p50 < 15.0 {
        out.push(Warning::new(
            Code::Underexposed,
            "The photo is very dark; turn on the light box or let the camera expose longer.",
        ));
    }
    if saturated > 0.05 || p50 > 200.0 {
        out.push(Warning::new(
            Code::Overexposed,
            "The photo is too bright and parts of the film are burned out; reduce the exposure.",
        ));
    }
    let g = glare_fraction(film);
    if g > GLARE_LIMIT && saturated < 0.3 {
        out.push(Warning::new(Code::GlareOverLungs, "A glare spot covers part of the lungs; tilt the camera or turn off the room light above the film."));
    }
    out
}

/// Blur as the share of fine grey-level variation that a 9-pixel mean filter does not remove
/// (Crété-Roffet et al. 2007, "The blur effect"): near 0 for a crisp film, near 1 for a blurred
/// one. Independent of contrast; measured at a fixed 256 px so it does not depend on the
/// camera's resolution. The larger of the horizontal and vertical values is used, so camera
/// shake in either direction counts.
pub fn blur_score(film: &Frame) -> f32 {
    let s = 256.0 / film.width.max(film.height) as f32;
    let (w, h) = (
        ((film.width as f32 * s).round() as usize).max(16),
        ((film.height as f32 * s).round() as usize).max(16),
    );
    let f = resize_area(film, w, h);
    // 9-pixel mean (edges clamped) as a running sum: one add and one subtract per pixel. The
    // vertical one runs over whole rows, which keeps memory access sequential.
    let mean9 = |horizontal: bool| -> Vec<f32> {
        let mut out = vec![0f32; w * h];
        let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
        if horizontal {
            for y in 0..h {
                let row = &f.data[y * w..(y + 1) * w];
                let mut a: f64 = (-4..=4).map(|k| row[clamp(k, w)] as f64).sum();
                out[y * w] = (a / 9.0) as f32;
                for x in 1..w {
                    a +=
                        row[clamp(x as isize + 4, w)] as f64 - row[clamp(x as isize - 5, w)] as f64;
                    out[y * w + x] = (a / 9.0) as f32;
                }
            }
        } else {
            let row = |y: isize| &f.data[clamp(y, h) * w..(clamp(y, h) + 1) * w];
            let mut acc = vec![0f64; w];
            for k in -4..=4 {
                for (a, &v) in acc.iter_mut().zip(row(k)) {
                    *a += v as f64;
                }
            }
            for y in 0..h {
                if y > 0 {
                    let (add, sub) = (row(y as isize + 4), row(y as isize - 5));
                    for ((a, &p), &m) in acc.iter_mut().zip(add).zip(sub) {
                        *a += p as f64 - m as f64;
                    }
                }
                for (o, &a) in out[y * w..(y + 1) * w].iter_mut().zip(&acc) {
                    *o = (a / 9.0) as f32;
                }
            }
        }
        out
    };
    let mut worst = 0f32;
    for horizontal in [true, false] {
        let b = mean9(horizontal);
        let (mut sf, mut sv) = (0f64, 0f64);
        // A margin keeps the film's own border (and the rectifier's edge) out of the measure.
        let (mx, my) = (w / 10, h / 10);
        for y in my.max(1)..h - my {
            for x in mx.max(1)..w - mx {
                let (i, j) = (
                    y * w + x,
                    if horizontal {
                        y * w + x - 1
                    } else {
                        (y - 1) * w + x
                    },
                );
                let df = (f.data[i] - f.data[j]).abs();
                let db = (b[i] - b[j]).abs();
                sf += df as f64;
                sv += (df - db).max(0.0) as f64;
            }
        }
        if sf > 0.0 {
            worst = worst.max(((sf - sv) / sf) as f32);
        }
    }
    worst
}

/// Share of the central film area (where the lungs and heart are) that is saturated.
pub fn glare_fraction(film: &Frame) -> f32 {
    let (w, h) = (film.width, film.height);
    let (x0, x1, y0, y1) = (w * 15 / 100, w * 85 / 100, h * 15 / 100, h * 85 / 100);
    let mut n = 0usize;
    let mut hot = 0usize;
    for y in y0..y1 {
        for x in x0..x1 {
            n += 1;
            hot += (film.data[y * w + x] >= 245.0) as usize;
        }
    }
    hot as f32 / n.max(1) as f32
}

/// Signed evidence that a chest film is shown the usual way round (bright mediastinum and
/// spine between dark lungs), in grey levels of the range-stretched film: the mean of the
/// central column minus the mean of both lung fields. Negative means a negative image.
pub fn upright_score(film: &Frame) -> f32 {
    let f = stretch_levels(&resize_area(film, 64, 64));
    let mean = |xs: std::ops::Range<usize>, ys: std::ops::Range<usize>| {
        let (mut a, mut n) = (0f32, 0usize);
        for y in ys {
            for x in xs.clone() {
                a += f.data[y * 64 + x];
                n += 1;
            }
        }
        a / n.max(1) as f32
    };
    let centre = mean(27..37, 16..48);
    let lungs = 0.5 * (mean(11..22, 16..42) + mean(42..53, 16..42));
    centre - lungs
}

/// True when the film appears to be a negative (see [`upright_score`]).
pub fn looks_inverted(film: &Frame) -> bool {
    upright_score(film) < 0.0
}

/// Decide whether an image is already a bare digital film (the whole image is the film) rather
/// than a camera photo of a film, for `--input auto`.
///
/// A photo either shows a film with surroundings around it (the finder locates a quad well
/// inside the frame, or reports it cut off or small), or shows a light box: large areas that
/// are bright and flat. A bare film has neither.
pub fn auto_is_bare_film(frame: &Frame) -> bool {
    let found = find_film(frame);
    let quad = found
        .as_ref()
        .ok()
        .filter(|f| f.area_frac < 0.9)
        .map(|f| f.corners);
    let st = flat_shares(frame, quad.as_ref());
    match found {
        // A quad inside a bare film (a letterboxed image, say) has film all around it; a film
        // in a photo has plain surroundings.
        Ok(_) if quad.is_some() => st.outside_flat < 0.5,
        Ok(_) => true,
        Err(_) => !(st.bright_flat >= 0.4 && st.ring_bright_flat >= 0.6),
    }
}

struct FlatShares {
    /// Bright and featureless (a light box), over the whole image.
    bright_flat: f32,
    /// The same over the outer ring (a tenth of each side).
    ring_bright_flat: f32,
    /// Featureless at any brightness, outside the given quad.
    outside_flat: f32,
}

/// Shares of featureless pixels at ~160 px. A film can have smooth bright parts (mediastinum,
/// abdomen) but they do not surround it.
fn flat_shares(frame: &Frame, quad: Option<&Quad>) -> FlatShares {
    let s = (frame.width.max(frame.height) as f32 / 160.0).max(1.0);
    let (w, h) = (
        ((frame.width as f32 / s).round() as usize).max(1),
        ((frame.height as f32 / s).round() as usize).max(1),
    );
    let (fx, fy) = (
        frame.width as f32 / w as f32,
        frame.height as f32 / h as f32,
    );
    let img = box_blur(&resize_area(frame, w, h), 1);
    let local = box_blur(&img, 4);
    let (mut all, mut ring, mut ring_n, mut out, mut out_n) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let flat = (img.data[i] - local.data[i]).abs() < 3.0;
            let bright_flat = flat && img.data[i] >= 140.0;
            all += bright_flat as usize;
            if x < w / 10 || y < h / 10 || x >= w - w / 10 || y >= h - h / 10 {
                ring_n += 1;
                ring += bright_flat as usize;
            }
            if let Some(q) = quad {
                let p = [(x as f32 + 0.5) * fx, (y as f32 + 0.5) * fy];
                if !super::geometry::in_quad(q, p) {
                    out_n += 1;
                    out += flat as usize;
                }
            }
        }
    }
    FlatShares {
        bright_flat: all as f32 / (w * h) as f32,
        ring_bright_flat: ring as f32 / ring_n.max(1) as f32,
        outside_flat: out as f32 / out_n.max(1) as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::film::filters::gaussian_blur;

    /// A cartoon chest: dark lungs either side of a bright mediastinum, ribs for texture.
    fn chest(w: usize, h: usize) -> Frame {
        let data = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 / w as f32, (i / w) as f32 / h as f32);
                let body = ((x - 0.5) / 0.45).powi(2) + ((y - 0.55) / 0.55).powi(2) < 1.0;
                let lung = ((x - 0.5).abs() - 0.2).abs() < 0.12 && (0.2..0.7).contains(&y);
                let rib = if ((y * 40.0).sin()).abs() > 0.8 {
                    40.0
                } else {
                    0.0
                };
                if !body {
                    15.0
                } else if lung {
                    60.0 + rib
                } else {
                    190.0
                }
            })
            .collect();
        Frame::new(w, h, data)
    }

    #[test]
    fn inverted_chest_is_detected() {
        let c = chest(200, 240);
        assert!(!looks_inverted(&c));
        assert!(looks_inverted(&Frame::new(
            200,
            240,
            c.data.iter().map(|v| 255.0 - v).collect()
        )));
    }

    #[test]
    fn blur_raises_the_score_and_the_warning() {
        let c = chest(256, 256);
        let sharp = blur_score(&c);
        let soft = blur_score(&gaussian_blur(&c, 4.0));
        assert!(
            sharp < BLUR_LIMIT && soft > BLUR_LIMIT,
            "sharp {sharp}, soft {soft}"
        );
        assert!(film_warnings(&gaussian_blur(&c, 4.0))
            .iter()
            .any(|w| w.code == Code::Blurred));
    }

    #[test]
    fn exposure_and_glare_warnings() {
        let c = chest(256, 256);
        let codes = |f: &Frame| {
            film_warnings(f)
                .into_iter()
                .map(|w| w.code)
                .collect::<Vec<_>>()
        };
        assert!(codes(&c).is_empty(), "{:?}", codes(&c));
        let dark = Frame::new(256, 256, c.data.iter().map(|v| v * 0.2).collect());
        assert!(codes(&dark).contains(&Code::Underexposed));
        let bright = Frame::new(
            256,
            256,
            c.data.iter().map(|v| (v * 3.0).min(255.0)).collect(),
        );
        assert!(codes(&bright).contains(&Code::Overexposed));
        let mut glare = c.clone();
        for y in 90..120 {
            for x in 60..100 {
                glare.data[y * 256 + x] = 255.0;
            }
        }
        assert_eq!(codes(&glare), vec![Code::GlareOverLungs]);
    }

    #[test]
    fn blocking_reasons_have_stable_codes() {
        assert_eq!(blocking_reason(&FindError::NoFilm).code, Code::NoFilm);
        assert_eq!(blocking_reason(&FindError::CutOff).code, Code::FilmCutOff);
        let small = blocking_reason(&FindError::TooSmall { area_frac: 0.05 });
        assert_eq!(small.code, Code::FilmTooSmall);
        assert!(small.message.contains("5%"));
        for e in [
            FindError::NoFilm,
            FindError::CutOff,
            FindError::TooSmall { area_frac: 0.05 },
        ] {
            assert!(blocking_reason(&e).code.is_blocking());
        }
        assert!(!Code::Blurred.is_blocking() && !Code::NotChestXray.is_blocking());
    }

    #[test]
    fn an_empty_light_box_is_a_photo_not_a_film() {
        let lb = Frame::new(
            320,
            240,
            (0..320 * 240)
                .map(|i| 220.0 + (i % 7) as f32 * 0.3)
                .collect(),
        );
        assert!(!auto_is_bare_film(&lb));
        assert_eq!(check_photo(&lb).unwrap_err().reason.code, Code::NoFilm);
    }

    #[test]
    fn known_corners_give_the_same_film_as_finding_them() {
        use crate::film::simulate::{simulate, Placement, SimOptions};
        let sim = simulate(
            &chest(300, 360),
            &SimOptions::new(640, 480, 0.3, Placement::Inside, 7),
        );
        let found = check_photo(&sim.frame).expect("film found");
        let at = check_photo_at(&sim.frame, found.corners).expect("same corners");
        assert_eq!(
            (at.film.width, at.film.height),
            (found.film.width, found.film.height)
        );
        assert_eq!(at.film.data, found.film.data);
        assert_eq!(at.warnings, found.warnings);
        // Corners that make no quadrilateral cannot be straightened: blocked, not guessed.
        let flat = [[10.0, 10.0], [200.0, 10.0], [400.0, 10.0], [600.0, 10.0]];
        assert_eq!(
            check_photo_at(&sim.frame, flat).unwrap_err().reason.code,
            Code::NoFilm
        );
    }
}
