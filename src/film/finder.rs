//! The film finder: where is the film in a camera frame?
//!
//! Classical, no model: the frame is shrunk to ~160 px, segmented at a sweep of grey-level
//! thresholds in both polarities (a back-lit film is darker than its light box, a front-lit one
//! brighter than a dark table), and every large connected region becomes a candidate
//! (`candidates.rs`: holes filled, quad fitted robustly, a hand or arm opened off). A candidate
//! is kept only if it really is a quadrilateral region with film-like texture (median band-pass
//! level, so a finger or a clip on an empty light box does not count) and a visible edge. Among
//! nested candidates the film alone wins over the film plus whatever touches it (the light box
//! around it, a hand and arm reaching out of the frame, a vignetted corner). When the sweep saw
//! a light box, the edge stage (`edges.rs`) also looks for the film's four straight sides on it
//! at twice the resolution; it overrules the sweep where the two disagree and the sweep did not
//! pick a darker region around the edges' film (it took the box, part of the film, or refused).
//! The chosen quad's corners are finally refined to sub-pixel precision on the full-resolution
//! image. A film region that runs into the frame border is a cut-off film, never a guessed quad.

use crate::pixels::resize_area;
use crate::pixels::Frame;

use super::candidates::{candidates, largest_light_box, Candidate, Work};
use super::edges;
use super::filters::{box_blur, quantile};
use super::geometry::Quad;
use super::geometry::{
    angles_within, dist, in_quad, offset_quad, scale_about_centroid, share_inside, signed_area,
};

/// Why no film quad can be given. Each variant needs a different action from the person at the
/// camera, so callers must match on it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FindError {
    /// No region in the frame passes as a film.
    #[error("no film found in the camera frame")]
    NoFilm,
    /// The film region runs into the frame border.
    #[error("the film is cut off by the edge of the camera frame")]
    CutOff,
    /// A film was found, but it covers less than [`FinderConfig::min_area_frac`] of the frame.
    #[error("the film covers only {:.0}% of the camera frame", area_frac * 100.0)]
    TooSmall {
        /// Share of the frame the film covers.
        area_frac: f32,
    },
}

/// Sizes and thresholds the film finder works with.
#[derive(Clone, Debug)]
pub struct FinderConfig {
    /// Longest side of the working image used for segmentation.
    pub work_side: usize,
    /// Below this share of the frame the film is found but reported as too small.
    pub min_area_frac: f32,
    /// Smallest region (share of the frame) considered at all.
    pub detect_area_frac: f32,
    /// Smallest overlap (IoU) between a region and its fitted quad for a film fully in view.
    pub min_iou: f32,
    /// Smallest mean band-pass texture inside a film (grey levels at working scale); an empty
    /// light box or a blank sheet is smoother than any chest film.
    pub min_texture: f32,
    /// Smallest median grey-level step across the film's sides.
    pub min_edge_contrast: f32,
}

impl Default for FinderConfig {
    fn default() -> Self {
        FinderConfig {
            work_side: 160,
            min_area_frac: 0.10,
            detect_area_frac: 0.012,
            min_iou: 0.88,
            min_texture: 0.5,
            min_edge_contrast: 12.0,
        }
    }
}

/// A film located in a camera frame.
#[derive(Clone, Debug, PartialEq)]
pub struct FoundFilm {
    /// TL, TR, BR, BL in frame pixel coordinates (continuous: the image spans `[0, w] x [0, h]`).
    pub corners: Quad,
    /// Share of the frame the film covers.
    pub area_frac: f32,
    /// How well the quad is supported, in `[0, 1]`: the overlap between the segmented region
    /// and the fitted quad, or, for a film found by its edges on a light box, the share of its
    /// weakest side that shows the step up to the box.
    pub fit: f32,
}

/// Find the film in `frame` with the default [`FinderConfig`].
pub fn find_film(frame: &Frame) -> Result<FoundFilm, FindError> {
    find_film_with(frame, &FinderConfig::default())
}

/// Find the film in `frame` with the given tuning.
pub fn find_film_with(frame: &Frame, cfg: &FinderConfig) -> Result<FoundFilm, FindError> {
    if frame.width < 16 || frame.height < 16 {
        return Err(FindError::NoFilm);
    }
    let s = (frame.width.max(frame.height) as f32 / cfg.work_side as f32).max(1.0);
    let (ww, wh) = (
        (frame.width as f32 / s).round() as usize,
        (frame.height as f32 / s).round() as usize,
    );
    let img = box_blur(&resize_area(frame, ww, wh), 1);
    let local = box_blur(&img, 4);
    let band: Vec<f32> = img
        .data
        .iter()
        .zip(&local.data)
        .map(|(a, b)| (a - b).abs())
        .collect();
    // The smoothest fifth of the frame shows the noise floor (light box, room or film
    // background); film texture must clearly exceed it, whatever the camera's noise.
    let mut b: Vec<f32> = band.clone();
    let noise_floor = quantile(&mut b, 0.2);
    let work = Work {
        w: ww,
        h: wh,
        img,
        band,
        noise_floor,
    };

    let cands = candidates(&work, cfg.detect_area_frac);
    let best = select(&work, &cands, cfg);
    let (fx, fy) = (
        frame.width as f32 / ww as f32,
        frame.height as f32 / wh as f32,
    );
    let n = (ww * wh) as f32;
    let to_frame = |q: &Quad| q.map(|p| [p[0] * fx, p[1] * fy]);
    // The film's straight edges on the light box, where the sweep took the box, part of the
    // film or nothing (module notes of `edges.rs`).
    let on_box = largest_light_box(&cands, n, 0.6)
        .and_then(|b| edges::film_on_light_box(frame, &to_frame(&b.quad)))
        .map(|(q, support)| (q.map(|p| [p[0] / fx, p[1] / fy]), support))
        .filter(|(e, _)| best.is_none_or(|b| !sweep_agrees(b, e)));
    let (quad, area, fit, scale) = match (on_box, best) {
        (Some((e, support)), _) => (e, signed_area(&e), support, 0.5 * fx.max(fy)),
        (None, Some(b)) if b.cut => return Err(FindError::CutOff),
        (None, Some(b)) => (b.quad, b.area, b.iou, fx.max(fy)),
        (None, None) => return Err(FindError::NoFilm),
    };
    let area_frac = area / n;
    if area_frac < cfg.min_area_frac {
        return Err(FindError::TooSmall { area_frac });
    }
    let coarse = to_frame(&quad);
    let corners = super::refine::refine_corners(frame, &coarse, scale);
    // The refined quad must still be a sane film inside the frame; otherwise keep the coarse one.
    let inside = |q: &Quad| {
        q.iter().all(|p| {
            p[0] >= -1.0
                && p[1] >= -1.0
                && p[0] <= frame.width as f32 + 1.0
                && p[1] <= frame.height as f32 + 1.0
        })
    };
    let corners = if angles_within(&corners, 30.0, 150.0) && inside(&corners) {
        corners
    } else {
        coarse
    };
    let area_frac = signed_area(&corners) / (frame.width * frame.height) as f32;
    Ok(FoundFilm {
        corners,
        area_frac,
        fit,
    })
}

/// The sweep's choice is the film the edge stage found (a whole film, every corner close), or a
/// darker region around it, which the edges alone must not overrule (a film with a bright
/// border of its own, whose inner edge is a step up too).
fn sweep_agrees(b: &Candidate, e: &Quad) -> bool {
    if b.cut {
        return false;
    }
    let diag = dist(e[0], e[2]).max(dist(e[1], e[3]));
    (0..4).all(|i| dist(b.quad[i], e[i]) < 0.04 * diag)
        || (!b.bright
            && b.area > signed_area(e)
            && share_inside(e, &scale_about_centroid(&b.quad, 1.05)) >= 0.95)
}

/// Pick the film among the candidates, or none.
fn select<'a>(work: &Work, cands: &'a [Candidate], cfg: &FinderConfig) -> Option<&'a Candidate> {
    let n = (work.w * work.h) as f32;
    let valid: Vec<&Candidate> = cands
        .iter()
        .filter(|c| {
            let (w_, h_) = (
                0.5 * (dist(c.quad[0], c.quad[1]) + dist(c.quad[3], c.quad[2])),
                0.5 * (dist(c.quad[0], c.quad[3]) + dist(c.quad[1], c.quad[2])),
            );
            let aspect = w_ / h_.max(1e-3);
            // Four strong sides are a film even when part of it is as bright as the light box
            // beside it, so that the region covers the quad less well.
            let min_iou = if c.cut {
                cfg.min_iou - 0.13
            } else if strong_sides(c, cfg) {
                cfg.min_iou - 0.08
            } else {
                cfg.min_iou
            };
            c.iou >= min_iou
                && angles_within(&c.quad, 35.0, 145.0)
                && (0.35..=2.8).contains(&aspect)
                // Brighter than its surroundings: a front-lit film, or an empty light box in a
                // darker room (whose vignetting and lamp pattern have some texture of their own).
                // A front-lit film on a dark surface is as smooth as that but has the grey-level
                // spread of dark lungs and bright bones.
                && c.texture
                    >= (if c.bright && c.spread < 15.0 { 1.6 } else { 1.0 } * cfg.min_texture)
                        .max(if c.bright { 4.0 } else { 3.0 } * work.noise_floor)
                && c.spread >= 12.0
                && c.contrast >= cfg.min_edge_contrast
                && c.area <= 0.92 * n
        })
        .collect();
    // A region that is the film plus smooth surroundings (a light box seen whole, or the film
    // merged with a vignetted corner of it) is itself a textured quad: drop any candidate that
    // holds a smaller valid one with nothing but smooth background between them.
    let keep: Vec<&Candidate> = valid
        .iter()
        .copied()
        .filter(|a| !valid.iter().any(|b| film_within(work, cfg, a, b)))
        .collect();
    // RUST_LOG=cxr_edge::film=trace lists every candidate with its measures, for finder work on
    // a frame that goes wrong (`examples/finder_photosim2.rs --only NAME`).
    if tracing::enabled!(tracing::Level::TRACE) {
        for c in cands {
            let state = if keep.iter().any(|k| std::ptr::eq(*k, c)) {
                "kept"
            } else if valid.iter().any(|k| std::ptr::eq(*k, c)) {
                "holds a film"
            } else {
                "invalid"
            };
            tracing::trace!(
                "{state}: quad {:?} area {:.0} iou {:.2} cut {} bright {} texture {:.1} spread {:.0} contrast {:.0} min_side {:.0}",
                c.quad.map(|p| [p[0].round(), p[1].round()]),
                c.area, c.iou, c.cut, c.bright, c.texture, c.spread, c.contrast, c.min_side
            );
        }
        tracing::trace!("noise floor {:.2}", work.noise_floor);
    }
    let largest = keep
        .iter()
        .copied()
        .max_by(|a, b| a.area.total_cmp(&b.area))?;
    // A light box (or table) region holding a film of the other polarity that the frame cuts
    // and no whole one: the film is cut off, however whole the region around it looks (blur and
    // vignetting can make it stop just short of the frame border). The cut film's edge must be
    // about as clear as the region's: a faint cut region may be the bright lower part of a whole
    // film merged with the light box below it.
    let grown = scale_about_centroid(&largest.quad, 1.05);
    if !largest.cut {
        let held = |c: &&Candidate| {
            c.bright != largest.bright
                && c.area >= 0.25 * largest.area
                && share_inside(&c.quad, &grown) >= 0.75
        };
        let cut_film = keep
            .iter()
            .copied()
            .filter(|c| c.cut && c.contrast >= 0.5 * largest.contrast)
            .find(held);
        if cut_film.is_some() && !keep.iter().filter(|c| !c.cut).any(held) {
            return cut_film;
        }
    }
    let diag = dist(largest.quad[0], largest.quad[2]);
    // Neighbouring thresholds see the same film slightly differently: take the best-fitting,
    // and of quads that fit about as well the one whose weakest side is the clearest step (a
    // threshold that lets a finger or glare eat into a side leaves that side weaker).
    // A hand on the film can also tilt a quad (film plus palm) away from the film's own while
    // covering about the same area: quads of nearly the same size over the same place are
    // rivals too.
    let score = |c: &Candidate| c.iou + 0.25 * c.min_side / c.contrast.max(1e-3);
    keep.into_iter()
        .filter(|c| {
            (0..4).all(|i| dist(c.quad[i], largest.quad[i]) < 0.08 * diag)
                || (!largest.cut
                    && !c.cut
                    && c.bright == largest.bright
                    && c.area >= 0.9 * largest.area
                    && share_inside(&c.quad, &grown) >= 0.9)
        })
        .max_by(|a, b| score(a).total_cmp(&score(b)))
}

/// Every side a clear step, none much weaker than the others.
fn strong_sides(c: &Candidate, cfg: &FinderConfig) -> bool {
    c.min_side >= 0.5 * c.contrast && c.contrast >= 3.0 * cfg.min_edge_contrast
}

/// True when `b` is the film and `a` the film plus something around or attached to it, so that
/// `a` must give way.
fn film_within(work: &Work, cfg: &FinderConfig, a: &Candidate, b: &Candidate) -> bool {
    // No rule lets a quad under a tenth of the region stand for the film in it (a glare spot or a
    // clip on a faint film is far smaller than any film in its light box); tested before the
    // overlap is measured, as every pair of candidates comes here.
    if b.cut || b.area < 0.1 * a.area {
        return false;
    }
    let share = share_inside(&b.quad, &scale_about_centroid(&a.quad, 1.05));
    // A region cut by the frame of the opposite polarity around a film-like quad is the
    // background around it (a light box running out of view, or the part of it an arm cuts
    // off), not a second film: when it holds the whole quad, even if a hand on the film weakens
    // one of its sides; when it only overlaps it, if the quad has four strong sides.
    if a.cut
        && a.bright != b.bright
        && b.area >= 0.25 * a.area
        && ((share >= 0.95 && b.iou >= cfg.min_iou - 0.03)
            || (share >= 0.3
                && b.iou >= cfg.min_iou
                && strong_sides(b, cfg)
                // The part of the region beside the quad is plain background, not the rest of
                // a film cut by the frame (whose bright lungs and the box below them can make
                // such a quad).
                && ring_measures(work, a, b).is_some_and(|r| r.texture < 0.5 * b.texture)))
    {
        return true;
    }
    // A quad let in on its strong sides alone (a loose fit) is not enough to overrule a region
    // cut by the frame: that could be a part of a cut-off film.
    if b.min_side < 0.35 * b.contrast || (a.cut && b.iou < cfg.min_iou) {
        return false;
    }
    let b_strong = strong_sides(b, cfg);
    // One side with hardly any step: where a hand, a glare patch or a clip joins the film to its
    // surroundings.
    let a_weak = a.min_side < 0.3 * a.contrast;
    // A closer-fitting quad with clearly stronger sides is the film without the clip or finger
    // that made the larger region loose.
    let b_better = b_strong
        && !a.cut
        && b.iou >= a.iou + 0.05
        && b.min_side / b.contrast >= a.min_side / a.contrast.max(1e-3) + 0.2;
    // A region cut by the frame with faint sides, holding much of a well-fitted film with four
    // strong sides: the film merged with a dark room or table beside the light box.
    if a.cut
        && b_strong
        && b.iou >= cfg.min_iou
        && share >= 0.5
        && a.contrast < 0.5 * b.contrast
        && b.area >= 0.6 * a.area
    {
        return true;
    }
    // A cut-off region may be the film plus a thin strip to the border, and a region with a weak
    // side the film plus a small attachment, when the film has four strong sides.
    let max_area = if b_better {
        0.99
    } else if (a.cut || a_weak) && b_strong {
        0.97
    } else {
        0.85
    };
    // Inside; mostly inside is enough for a region cut by the frame (a light box running out of
    // view: its fitted quad can clip a corner of the film) or a loose one.
    let inside = share >= 0.9
        && (a.cut || b_better || {
            let loose = scale_about_centroid(&a.quad, 1.15);
            b.quad.iter().all(|&p| in_quad(&loose, p))
        });
    b.area < max_area * a.area
        && inside
        && (ring_is_background(work, a, b)
            // The film plus an attachment (an arm on the light box, a vignetted corner) fits a
            // quad worse than the film alone.
            || (b.area >= 0.5 * a.area && b.iou >= a.iou + 0.03)
            // A cut-off region around a whole film with four clear sides is the film plus
            // whatever touches it (a hand and arm, the light box running out of the frame), not
            // a cut-off film.
            || (a.cut && b_strong && b.area >= 0.25 * a.area)
            || (a_weak && b_strong && b.area >= 0.5 * a.area)
            || (b_better && b.area >= 0.8 * a.area))
}

/// True when the ring between an outer and an inner quad is plain background: smooth (median
/// texture, as a clip, a hand or a glare spot on the light box is textured but small) and of
/// nearly one brightness compared with the step to the inner quad. The rest of a film around a
/// lung field is neither.
fn ring_is_background(work: &Work, outer: &Candidate, inner: &Candidate) -> bool {
    // No measurable ring: the two quads are the same object at different thresholds.
    ring_measures(work, outer, inner)
        .is_some_and(|r| r.texture < 0.5 * inner.texture && r.spread < 0.5 * r.step)
}

/// The ring between an outer and an inner quad: its median band-pass level, its grey-level
/// spread (10th to 90th percentile) and the step between its median and the inner quad's.
struct Ring {
    texture: f32,
    spread: f32,
    step: f32,
}

fn ring_measures(work: &Work, outer: &Candidate, inner: &Candidate) -> Option<Ring> {
    // Keep clear of both edges by more than the band-pass reach (box radius 4 plus 1).
    let o = offset_quad(&outer.quad, -6.0);
    let i = offset_quad(&inner.quad, 6.0);
    let core = offset_quad(&inner.quad, -6.0);
    let (mut band, mut ring, mut inside) = (Vec::new(), Vec::new(), Vec::new());
    for y in 0..work.h {
        for x in 0..work.w {
            let p = [x as f32 + 0.5, y as f32 + 0.5];
            let k = y * work.w + x;
            if in_quad(&o, p) && !in_quad(&i, p) {
                band.push(work.band[k]);
                ring.push(work.img.data[k]);
            } else if in_quad(&core, p) {
                inside.push(work.img.data[k]);
            }
        }
    }
    if ring.len() < 8 || inside.is_empty() {
        return None;
    }
    Some(Ring {
        texture: quantile(&mut band, 0.5),
        spread: quantile(&mut ring, 0.9) - quantile(&mut ring, 0.1),
        step: (quantile(&mut ring, 0.5) - quantile(&mut inside, 0.5)).abs(),
    })
}
