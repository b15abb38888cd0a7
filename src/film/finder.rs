//! The film finder: where is the film in a camera frame?
//!
//! Classical, no model: the frame is shrunk to ~160 px, segmented at a sweep of grey-level
//! thresholds in both polarities (a back-lit film is darker than its light box, a front-lit one
//! brighter than a dark table), and every large connected region becomes a candidate. A
//! candidate's holes are filled (bones and mediastinum are as bright as the light box), a
//! quadrilateral is fitted (largest quad on the convex hull, then each side re-fitted robustly
//! to the region's boundary so that a glare bite or a finger does not pull it), and it is kept
//! only if it really is a quadrilateral region with film-like texture and a visible edge. The
//! chosen quad's corners are finally refined to sub-pixel precision on the full-resolution
//! image. A region that runs into the frame border is a cut-off film, never a guessed quad.

use crate::capture::Frame;
use crate::model::preprocess::resize_area;

use super::filters::{box_blur, quantile};
use super::geometry::{
    angles_within, centroid, convex_hull, corners_from_sides, dist, in_quad, max_area_quad,
    offset_quad, order_corners, scale_about_centroid, signed_area, Line, Pt,
};
use super::rectify::{sample_bilinear, Quad};

/// Why no film quad can be given. Each variant needs a different action from the person at the
/// camera, so callers must match on it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FindError {
    #[error("no film found in the camera frame")]
    NoFilm,
    #[error("the film is cut off by the edge of the camera frame")]
    CutOff,
    #[error("the film covers only {:.0}% of the camera frame", area_frac * 100.0)]
    TooSmall { area_frac: f32 },
}

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
            min_texture: 1.2,
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
    /// Overlap between the segmented region and the fitted quad, in `[0, 1]`.
    pub fit: f32,
}

pub fn find_film(frame: &Frame) -> Result<FoundFilm, FindError> {
    find_film_with(frame, &FinderConfig::default())
}

/// One quad hypothesis at working scale.
#[derive(Clone, Debug)]
struct Candidate {
    quad: Quad,
    iou: f32,
    area: f32,
    /// Part of the region (near the quad) lies on the frame border, or a corner is outside.
    cut: bool,
    texture: f32,
    contrast: f32,
    spread: f32,
}

struct Work {
    w: usize,
    h: usize,
    img: Frame,
    /// |image - local mean|: structure at the scale of ribs and vessels, none on a light box.
    band: Vec<f32>,
    noise_floor: f32,
}

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

    let cands = candidates(&work, cfg);
    let best = select(&work, &cands, cfg).ok_or(FindError::NoFilm)?;
    if best.cut {
        return Err(FindError::CutOff);
    }
    let n = (ww * wh) as f32;
    let area_frac = best.area / n;
    if area_frac < cfg.min_area_frac {
        return Err(FindError::TooSmall { area_frac });
    }
    let (fx, fy) = (
        frame.width as f32 / ww as f32,
        frame.height as f32 / wh as f32,
    );
    let coarse = best.quad.map(|p| [p[0] * fx, p[1] * fy]);
    let corners = super::refine::refine_corners(frame, &coarse, fx.max(fy));
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
        fit: best.iou,
    })
}

/// Every quad-like region at every threshold of the sweep, in both polarities.
fn candidates(work: &Work, cfg: &FinderConfig) -> Vec<Candidate> {
    let (w, h) = (work.w, work.h);
    let n = w * h;
    let mut sorted = work.img.data.clone();
    let lo = quantile(&mut sorted, 0.01);
    let hi = quantile(&mut sorted, 0.99);
    let min_px = (cfg.detect_area_frac * n as f32) as usize;
    let mut seen: Vec<(usize, usize, usize, usize, usize)> = Vec::new();
    let mut out = Vec::new();
    const STEPS: usize = 16;
    for k in 1..STEPS {
        let t = lo + (hi - lo) * k as f32 / STEPS as f32;
        for dark in [true, false] {
            let mask: Vec<bool> = work
                .img
                .data
                .iter()
                .map(|&v| if dark { v < t } else { v > t })
                .collect();
            for comp in components(&mask, w, h, min_px) {
                let filled = fill_holes(&comp, w, h);
                let key = signature(&filled, w, h);
                // Neighbouring thresholds often give the same region; fit it once.
                if key.0 > n * 92 / 100 || seen.contains(&key) {
                    continue;
                }
                seen.push(key);
                if let Some(c) = fit_region(work, &filled) {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// Area and bounding box of a region, as a cheap identity.
fn signature(m: &[bool], w: usize, h: usize) -> (usize, usize, usize, usize, usize) {
    let (mut a, mut x0, mut y0, mut x1, mut y1) = (0, w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if m[y * w + x] {
                a += 1;
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    // Quantise the area so that a few noisy pixels do not make a "new" region.
    (a / 8, x0, y0, x1, y1)
}

/// 4-connected components of `mask` with at least `min_px` pixels, as pixel-index lists.
fn components(mask: &[bool], w: usize, h: usize, min_px: usize) -> Vec<Vec<usize>> {
    let mut label = vec![false; mask.len()];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || label[start] {
            continue;
        }
        let mut comp = Vec::new();
        label[start] = true;
        stack.push(start);
        while let Some(i) = stack.pop() {
            comp.push(i);
            let (x, y) = (i % w, i / w);
            let mut visit = |j: usize| {
                if mask[j] && !label[j] {
                    label[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        if comp.len() >= min_px {
            out.push(comp);
        }
    }
    out
}

/// The region with every enclosed hole filled: whatever the outside cannot reach.
fn fill_holes(comp: &[usize], w: usize, h: usize) -> Vec<bool> {
    let mut inside = vec![false; w * h];
    for &i in comp {
        inside[i] = true;
    }
    let mut outside = vec![false; w * h];
    let mut stack: Vec<usize> = (0..w)
        .flat_map(|x| [x, (h - 1) * w + x])
        .chain((0..h).flat_map(|y| [y * w, y * w + w - 1]))
        .filter(|&i| !inside[i])
        .collect();
    for &i in &stack {
        outside[i] = true;
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        let nb = [
            (x > 0).then(|| i - 1),
            (x + 1 < w).then(|| i + 1),
            (y > 0).then(|| i - w),
            (y + 1 < h).then(|| i + w),
        ];
        for j in nb.into_iter().flatten() {
            if !inside[j] && !outside[j] {
                outside[j] = true;
                stack.push(j);
            }
        }
    }
    outside.into_iter().map(|o| !o).collect()
}

/// Fit a quad to a filled region and measure how film-like it is.
fn fit_region(work: &Work, filled: &[bool]) -> Option<Candidate> {
    let (w, h) = (work.w, work.h);
    let (mut quad, mut iou) = fit_quad(filled, w, h)?;
    let mut region = filled.to_vec();
    if iou < 0.92 {
        // A hand, an arm or a clip attached to the film: open the region with a window wider
        // than a finger but much narrower than the film, and try again.
        let area = filled.iter().filter(|&&b| b).count() as f32;
        let r = (0.06 * area.sqrt()).round().max(2.0) as usize;
        let opened = dilate(&erode(filled, w, h, r), w, h, r);
        // The opening may split off bits; keep only the largest piece.
        if let Some(main) = components(&opened, w, h, 1)
            .into_iter()
            .max_by_key(|c| c.len())
        {
            let main = fill_holes(&main, w, h);
            if let Some((q2, iou2)) = fit_quad(&main, w, h) {
                if iou2 > iou + 0.02 {
                    (quad, iou, region) = (q2, iou2, main);
                }
            }
        }
    }
    let area = signed_area(&quad);
    if area < 16.0 {
        return None;
    }
    // Cut off: a corner beyond the frame, or region pixels on the border right at the quad
    // (an arm reaching the border away from the film does not count).
    let grown = scale_about_centroid(&quad, 1.0 + 3.0 / area.sqrt());
    let corner_out = quad
        .iter()
        .any(|p| p[0] < -1.0 || p[1] < -1.0 || p[0] > w as f32 + 1.0 || p[1] > h as f32 + 1.0);
    // Hits per frame side: left, right, top, bottom.
    let (mut hits, mut near) = ([0usize; 4], [0usize; 4]);
    for y in 0..h {
        for x in 0..w {
            let sides = [x == 0, x + 1 == w, y == 0, y + 1 == h];
            if sides.iter().any(|&b| b) && region[y * w + x] {
                let close = in_quad(&grown, [x as f32 + 0.5, y as f32 + 0.5]);
                for (k, &on) in sides.iter().enumerate() {
                    hits[k] += on as usize;
                    near[k] += (on && close) as usize;
                }
            }
        }
    }
    // A region running out of the frame on three or four sides is the scene around the film
    // (the light box, the room), not a film that needs moving.
    if hits.iter().filter(|&&n| n >= 3).count() >= 3 {
        return None;
    }
    let touched = near.iter().filter(|&&n| n >= 3).count();
    let cut = corner_out || touched > 0;

    let inner = scale_about_centroid(&quad, 0.85);
    let (mut tex, mut cnt) = (0f32, 0usize);
    for y in 0..h {
        for x in 0..w {
            if in_quad(&inner, [x as f32 + 0.5, y as f32 + 0.5]) {
                tex += work.band[y * w + x];
                cnt += 1;
            }
        }
    }
    let texture = tex / cnt.max(1) as f32;
    // Grey-level spread inside: a film has dark lungs and bright bones; an empty light box or a
    // blank sheet is one brightness give or take its vignetting.
    let mut vals: Vec<f32> = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if in_quad(&inner, [x as f32 + 0.5, y as f32 + 0.5]) {
                vals.push(work.img.data[y * w + x]);
            }
        }
    }
    let spread = quantile(&mut vals, 0.9) - quantile(&mut vals, 0.1);
    let contrast = edge_contrast(&work.img, &quad);
    Some(Candidate {
        quad,
        iou,
        area,
        cut,
        texture,
        contrast,
        spread,
    })
}

/// Largest hull quad, then each side re-fitted to the region boundary, and the IoU of the
/// result with the region.
fn fit_quad(region: &[bool], w: usize, h: usize) -> Option<(Quad, f32)> {
    // Boundary points sit on the pixel edge between the region and its outside; points on the
    // frame border are kept for the hull but not used to fit the sides (they are the frame's
    // edge, not the film's).
    let mut pts: Vec<Pt> = Vec::new();
    let mut hull_pts: Vec<Pt> = Vec::new();
    let at = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && region[y as usize * w + x as usize]
    };
    for y in 0..h as isize {
        for x in 0..w as isize {
            if !at(x, y) {
                continue;
            }
            let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
            for (dx, dy) in [(-1isize, 0isize), (1, 0), (0, -1), (0, 1)] {
                if !at(x + dx, y + dy) {
                    let p = [cx + 0.5 * dx as f32, cy + 0.5 * dy as f32];
                    let (nx, ny) = (x + dx, y + dy);
                    let on_frame = nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize;
                    if !on_frame {
                        pts.push(p);
                    }
                    hull_pts.push(p);
                }
            }
        }
    }
    let hull = convex_hull(hull_pts);
    let q0 = order_corners(max_area_quad(&hull)?);
    let q = refine_sides(q0, &pts);
    let q = if angles_within(&q, 20.0, 160.0) {
        q
    } else {
        q0
    };
    let aq = signed_area(&q);
    let (mut inter, mut total) = (0usize, 0usize);
    for y in 0..h {
        for x in 0..w {
            if region[y * w + x] {
                total += 1;
                if in_quad(&q, [x as f32 + 0.5, y as f32 + 0.5]) {
                    inter += 1;
                }
            }
        }
    }
    let iou = inter as f32 / (total as f32 + aq - inter as f32).max(1.0);
    Some((q, iou))
}

/// Re-fit each side of `q` to the boundary points nearest to it: RANSAC first (a finger or a
/// glare bite is a minority of the side), then least squares on a tight band.
fn refine_sides(q: Quad, pts: &[Pt]) -> Quad {
    let mut q = q;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for pass in 0..2 {
        let mut lines = [None; 4];
        let mut groups: [Vec<Pt>; 4] = Default::default();
        for &p in pts {
            let mut best = (f32::MAX, 0);
            for i in 0..4 {
                let d = seg_dist(p, q[i], q[(i + 1) % 4]);
                if d < best.0 {
                    best = (d, i);
                }
            }
            let len = dist(q[best.1], q[(best.1 + 1) % 4]);
            let band = if pass == 0 { 0.12 * len + 2.0 } else { 2.0 };
            if best.0 < band {
                groups[best.1].push(p);
            }
        }
        for i in 0..4 {
            let g = &groups[i];
            let len = dist(q[i], q[(i + 1) % 4]);
            let need = (0.2 * len).max(6.0) as usize;
            if g.len() < need {
                continue;
            }
            let mut best: Option<(usize, Line)> = None;
            for _ in 0..60 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let (a, b) = (
                    g[(seed % g.len() as u64) as usize],
                    g[((seed >> 32) % g.len() as u64) as usize],
                );
                if dist(a, b) < 0.2 * len {
                    continue;
                }
                if let Some(l) = Line::through(a, b) {
                    let c = g.iter().filter(|&&p| l.dist(p).abs() < 1.0).count();
                    if best.as_ref().is_none_or(|b| c > b.0) {
                        best = Some((c, l));
                    }
                }
            }
            if let Some((c, l)) = best {
                if c >= need {
                    let inl: Vec<Pt> = g
                        .iter()
                        .copied()
                        .filter(|&p| l.dist(p).abs() < 1.5)
                        .collect();
                    lines[i] = Line::fit(&inl);
                }
            }
        }
        let mut nq = q;
        for (i, p) in corners_from_sides(&q, &lines).into_iter().enumerate() {
            if let Some(p) = p {
                nq[i] = p;
            }
        }
        let diag = dist(q[0], q[2]).max(dist(q[1], q[3]));
        if (0..4).any(|i| dist(nq[i], q[i]) > 0.25 * diag) {
            return q;
        }
        q = nq;
    }
    q
}

fn seg_dist(p: Pt, a: Pt, b: Pt) -> f32 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let t =
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy).max(1e-6)).clamp(0.0, 1.0);
    dist(p, [a[0] + t * dx, a[1] + t * dy])
}

/// Median over the four sides of the mean grey step across the side (2 px each way).
fn edge_contrast(img: &Frame, q: &Quad) -> f32 {
    let c = centroid(q);
    let mut per_side = Vec::new();
    for i in 0..4 {
        let (a, b) = (q[i], q[(i + 1) % 4]);
        let Some(l) = Line::through(a, b) else {
            continue;
        };
        let n = l.normal_away_from(c);
        let mut acc = 0.0;
        for k in 1..12 {
            let t = k as f32 / 12.0;
            let p = [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
            let out = sample_bilinear(img, p[0] + 2.0 * n[0], p[1] + 2.0 * n[1]);
            let inn = sample_bilinear(img, p[0] - 2.0 * n[0], p[1] - 2.0 * n[1]);
            acc += (out - inn).abs();
        }
        per_side.push(acc / 11.0);
    }
    per_side.sort_by(f32::total_cmp);
    let med = if per_side.len() == 4 {
        0.5 * (per_side[1] + per_side[2])
    } else {
        0.0
    };
    med
}

/// Binary erosion with a square window of radius `r` (summed-area table).
fn erode(m: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    let sat = summed(m, w, h);
    window_count(&sat, w, h, r)
        .into_iter()
        .map(|(c, full)| c == full)
        .collect()
}

fn dilate(m: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    let sat = summed(m, w, h);
    window_count(&sat, w, h, r)
        .into_iter()
        .map(|(c, _)| c > 0)
        .collect()
}

fn summed(m: &[bool], w: usize, h: usize) -> Vec<u32> {
    let mut s = vec![0u32; (w + 1) * (h + 1)];
    for y in 0..h {
        for x in 0..w {
            s[(y + 1) * (w + 1) + x + 1] =
                m[y * w + x] as u32 + s[y * (w + 1) + x + 1] + s[(y + 1) * (w + 1) + x]
                    - s[y * (w + 1) + x];
        }
    }
    s
}

/// (set pixels, window pixels) in the clipped window around each pixel.
fn window_count(s: &[u32], w: usize, h: usize, r: usize) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let c = s[y1 * (w + 1) + x1] + s[y0 * (w + 1) + x0]
                - s[y0 * (w + 1) + x1]
                - s[y1 * (w + 1) + x0];
            out.push((c, ((y1 - y0) * (x1 - x0)) as u32));
        }
    }
    out
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
            let min_iou = if c.cut {
                cfg.min_iou - 0.13
            } else {
                cfg.min_iou
            };
            c.iou >= min_iou
                && angles_within(&c.quad, 35.0, 145.0)
                && (0.35..=2.8).contains(&aspect)
                && c.texture >= cfg.min_texture.max(2.0 * work.noise_floor)
                && c.spread >= 30.0
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
        .filter(|a| {
            let grown = scale_about_centroid(&a.quad, 1.05);
            !valid.iter().any(|b| {
                !b.cut
                    && b.area < 0.85 * a.area
                    && b.quad.iter().all(|&p| in_quad(&grown, p))
                    && ring_is_background(work, a, b)
            })
        })
        .collect();
    let largest = keep
        .iter()
        .copied()
        .max_by(|a, b| a.area.total_cmp(&b.area))?;
    let diag = dist(largest.quad[0], largest.quad[2]);
    // Neighbouring thresholds see the same film slightly differently: take the best-fitting.
    keep.into_iter()
        .filter(|c| (0..4).all(|i| dist(c.quad[i], largest.quad[i]) < 0.08 * diag))
        .max_by(|a, b| a.iou.total_cmp(&b.iou))
}

/// True when the ring between an outer and an inner quad is plain background: smooth (median
/// texture, as a clip, a hand or a glare spot on the light box is textured but small) and of
/// nearly one brightness compared with the step to the inner quad. The rest of a film around a
/// lung field is neither.
fn ring_is_background(work: &Work, outer: &Candidate, inner: &Candidate) -> bool {
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
        // No measurable ring: the two quads are the same object at different thresholds.
        return false;
    }
    let tex = quantile(&mut band, 0.5);
    let spread = quantile(&mut ring, 0.9) - quantile(&mut ring, 0.1);
    let step = (quantile(&mut ring, 0.5) - quantile(&mut inside, 0.5)).abs();
    tex < 0.5 * inner.texture && spread < 0.5 * step
}
