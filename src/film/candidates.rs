//! Candidate search for the film finder: every large connected region at a sweep of grey-level
//! thresholds (both polarities) becomes a quad hypothesis with the measures `select` needs.

use crate::pixels::Frame;

use super::filters::quantile;
use super::geometry::Quad;
use super::geometry::{
    angles_within, centroid, convex_hull, corners_from_sides, dist, in_quad, lerp, max_area_quad,
    offset_quad, order_corners, scale_about_centroid, signed_area, Line, Pt,
};
use super::rectify::sample_bilinear;
use super::regions::{components, fill_holes, index_bbox, open_region, signature};

/// One quad hypothesis at working scale.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub quad: Quad,
    pub iou: f32,
    pub area: f32,
    /// Part of the region (near the quad) lies on the frame border, or a corner is outside.
    pub cut: bool,
    pub texture: f32,
    pub contrast: f32,
    /// The weakest side's grey step: a quad with one side through the film's interior (a part
    /// of the film cut along a smooth stretch) has one weak side.
    pub min_side: f32,
    pub spread: f32,
    /// Segmented as brighter than its surroundings.
    pub bright: bool,
}

pub struct Work {
    pub w: usize,
    pub h: usize,
    pub img: Frame,
    /// |image - local mean|: structure at the scale of ribs and vessels, none on a light box.
    pub band: Vec<f32>,
    pub noise_floor: f32,
}

/// Every quad-like region at every threshold of the sweep, in both polarities. Regions smaller
/// than `detect_area_frac` of the frame are not candidates (the finder's
/// `FinderConfig::detect_area_frac`, the one setting the sweep reads).
pub fn candidates(work: &Work, detect_area_frac: f32) -> Vec<Candidate> {
    let mut sorted = work.img.data.clone();
    let lo = quantile(&mut sorted, 0.01);
    let hi = quantile(&mut sorted, 0.99);
    let mut seen = Vec::new();
    let mut out = Vec::new();
    sweep(work, detect_area_frac, (lo, hi), None, &mut seen, &mut out);
    // A hand or an arm on a back-lit film is as dark as the film and joins it to the dark room
    // or to the frame border, so that no region of the sweep is the film alone. Inside the light
    // box the arm ends at the box's edge: segment the dark regions again there. The box is the
    // largest bright quad that fits its region well, or, when the film and the arm bite deep
    // into the box's region, the largest that fits it at all.
    let n = (work.w * work.h) as f32;
    let largest_box = |min_iou: f32| largest_light_box(&out, n, min_iou).map(|c| (c.quad, c.area));
    let boxes = [largest_box(0.8), largest_box(0.4)];
    for (k, b) in boxes.iter().enumerate() {
        let Some((box_quad, box_area)) = *b else {
            continue;
        };
        let same = |o: &Option<(Quad, f32)>| {
            o.is_some_and(|(q, _)| (0..4).all(|i| dist(q[i], box_quad[i]) < 3.0))
        };
        if k == 1 && same(&boxes[0]) {
            continue;
        }
        // Each box from the regions of the first sweep: a region one box's ring test turned
        // away may still be a film in the other.
        let mut seen_here = seen.clone();
        sweep_light_box(
            work,
            detect_area_frac,
            &box_quad,
            box_area,
            &mut seen_here,
            &mut out,
        );
    }
    out
}

/// The light box among the candidates, if the sweep saw one: the largest bright region of at
/// least a fifth of the frame (`n` pixels) whose quad fits it with an overlap of `min_iou` or
/// more (it may run out of the frame).
pub fn largest_light_box(cands: &[Candidate], n: f32, min_iou: f32) -> Option<&Candidate> {
    cands
        .iter()
        .filter(|c| c.bright && c.area >= 0.2 * n && c.iou >= min_iou)
        .max_by(|a, b| a.area.total_cmp(&b.area))
}

/// Dark regions inside a light box's quad: whole films only, clear of the box's edge and of the
/// frame (the first sweep already says when a film is cut off).
fn sweep_light_box(
    work: &Work,
    detect_area_frac: f32,
    box_quad: &Quad,
    box_area: f32,
    seen: &mut Vec<Signature>,
    out: &mut Vec<Candidate>,
) {
    // Clear of the box's edge, which blur makes as dark as a film for a pixel or two.
    let q = offset_quad(box_quad, -3.0);
    let within: Vec<bool> = (0..work.w * work.h)
        .map(|k| in_quad(&q, [(k % work.w) as f32 + 0.5, (k / work.w) as f32 + 0.5]))
        .collect();
    let mut vals: Vec<f32> = work
        .img
        .data
        .iter()
        .zip(&within)
        .filter_map(|(&v, &i)| i.then_some(v))
        .collect();
    if vals.len() <= 16 {
        return;
    }
    let lo = quantile(&mut vals, 0.01);
    let hi = quantile(&mut vals, 0.99);
    let mut found = Vec::new();
    sweep(
        work,
        detect_area_frac,
        (lo, hi),
        Some((&within, &q)),
        seen,
        &mut found,
    );
    // The bright region may be a front-lit film rather than a light box: then what is dark
    // inside it is lungs, not a film. A film on a light box is surrounded by the box's smooth
    // glow; the box region itself at a high threshold is no new film.
    found.retain(|c| !c.cut && c.area <= 0.85 * box_area && ring_is_light_box(work, box_quad, c));
    out.extend(found);
}

/// The ring between a bright region's quad and a dark candidate inside it is the glow of a
/// light box: smooth (median band-pass level, measured clear of both edges by more than the
/// band-pass reach) and brighter than nearly all of the candidate, as light through a film is
/// always dimmer than the bare box. The rest of a front-lit film around its lungs is neither.
fn ring_is_light_box(work: &Work, outer: &Quad, inner: &Candidate) -> bool {
    let (o, i) = (offset_quad(outer, -6.0), offset_quad(&inner.quad, 6.0));
    let (o2, i2) = (offset_quad(outer, -2.0), offset_quad(&inner.quad, 2.0));
    let core = offset_quad(&inner.quad, -2.0);
    let (bx0, by0, bx1, by1) = bbox_px(&o2, work.w, work.h);
    let (mut band, mut ring, mut film) = (Vec::new(), Vec::new(), Vec::new());
    for y in by0..by1 {
        for x in bx0..bx1 {
            let p = [x as f32 + 0.5, y as f32 + 0.5];
            let k = y * work.w + x;
            if in_quad(&o, p) && !in_quad(&i, p) {
                band.push(work.band[k]);
            }
            if in_quad(&o2, p) && !in_quad(&i2, p) {
                ring.push(work.img.data[k]);
            } else if in_quad(&core, p) {
                film.push(work.img.data[k]);
            }
        }
    }
    if band.len() < 8 || ring.len() < 8 || film.is_empty() {
        return false;
    }
    quantile(&mut band, 0.5) < 0.5 * inner.texture
        && quantile(&mut ring, 0.5) > quantile(&mut film, 0.9)
}

type Signature = (usize, usize, usize, usize, usize);

/// One threshold sweep over `range`; with `within`, dark regions inside that mask only.
fn sweep(
    work: &Work,
    detect_area_frac: f32,
    (lo, hi): (f32, f32),
    within: Option<(&[bool], &Quad)>,
    seen: &mut Vec<Signature>,
    out: &mut Vec<Candidate>,
) {
    let (w, h) = (work.w, work.h);
    let n = w * h;
    let min_px = (detect_area_frac * n as f32) as usize;
    let within_quad = within.map(|(_, q)| q);
    let mut seen_raw: Vec<Signature> = Vec::new();
    // 13 thresholds: 15 found hardly more films (774 against 773 of 800 validation frames)
    // and each one costs a labelling of the frame (15: 11 ms to find the film in the benchmark
    // frame, 13: 9 ms); 11 lost a hand-held film in tests/film.rs.
    const STEPS: usize = 14;
    for k in 1..STEPS {
        let t = lo + (hi - lo) * k as f32 / STEPS as f32;
        for dark in [true, false] {
            if within.is_some() && !dark {
                continue;
            }
            let whole: Vec<bool> = work
                .img
                .data
                .iter()
                .map(|&v| if dark { v < t } else { v > t })
                .collect();
            let restricted: Option<Vec<bool>> =
                within.map(|(m, _)| whole.iter().zip(m).map(|(&a, &b)| a && b).collect());
            let mask = restricted.as_deref().unwrap_or(&whole);
            for comp in components(mask, w, h, min_px) {
                let (x0, y0, x1, y1) = index_bbox(&comp, w);
                let raw = (comp.len() / 8, x0, y0, x1, y1);
                if seen_raw.contains(&raw) {
                    continue;
                }
                seen_raw.push(raw);
                let filled = fill_holes(&comp, w, h);
                let key = signature(&filled, w, h);
                // Neighbouring thresholds often give the same region; fit it once.
                if key.0 > n * 92 / 100 || seen.contains(&key) {
                    continue;
                }
                seen.push(key);
                let mut pieces = Vec::new();
                // Inside the light box the region stops at the mask's edge, so its own pixels
                // cannot tell whether the frame cuts the film.
                let recut = |c: &mut Candidate| {
                    if within.is_some() {
                        // Inside the box a film's side may stop just short of the frame
                        // border where the box edge is cut off (a bright strip along a cut
                        // film's edge): near the border is cut, to be safe.
                        let near_border = c.quad.iter().any(|p| {
                            p[0] < 4.0
                                || p[1] < 4.0
                                || p[0] > w as f32 - 4.0
                                || p[1] > h as f32 - 4.0
                        });
                        // A corner or a side on the mask's edge: the region was cut there by
                        // the mask, and what lies beyond (a film running over the box's edge,
                        // or out of the frame) is unknown.
                        let on_mask_edge = within_quad.is_some_and(|m| {
                            let core = offset_quad(m, -1.5);
                            c.quad.iter().any(|&p| !in_quad(&core, p))
                        });
                        // And the frame's pixels at this threshold running out of the frame
                        // right at the quad (a film whose corner lies beyond the frame).
                        c.cut |= near_border
                            || on_mask_edge
                            || touches_frame_near(&whole, &c.quad, w, h);
                    }
                };
                if let Some(mut c) = fit_region(work, &filled, min_px, Some(&mut pieces)) {
                    c.bright = !dark;
                    recut(&mut c);
                    out.push(c);
                }
                // Pieces a neck (an arm) joined to a bigger region (the room around a light
                // box): each is a film hypothesis of its own.
                for piece in pieces {
                    let key = signature(&piece, w, h);
                    if seen.contains(&key) {
                        continue;
                    }
                    seen.push(key);
                    if let Some(mut c) = fit_region(work, &piece, min_px, None) {
                        c.bright = !dark;
                        recut(&mut c);
                        out.push(c);
                    }
                }
            }
        }
    }
}

/// Fit a quad to a filled region and measure how film-like it is.
fn fit_region(
    work: &Work,
    filled: &[bool],
    min_px: usize,
    mut pieces: Option<&mut Vec<Vec<bool>>>,
) -> Option<Candidate> {
    let (w, h) = (work.w, work.h);
    let (mut quad, mut iou) = fit_quad(filled, w, h)?;
    let mut region = filled.to_vec();
    if iou < 0.92 {
        // A hand, an arm or a clip attached to the film: open the region with a window wider
        // than a finger (then wider than an arm) but much narrower than the film, and try again.
        let area = filled.iter().filter(|&&b| b).count() as f32;
        for k in [0.06f32, 0.14] {
            let r = (k * area.sqrt()).round().max(2.0) as usize;
            let opened = open_region(filled, w, h, r);
            // The opening may split off bits; keep only the largest piece.
            let mut parts = components(&opened, w, h, 1);
            parts.sort_by_key(|c| std::cmp::Reverse(c.len()));
            if let Some(pieces) = pieces.as_deref_mut() {
                // Other large pieces clear of the frame border are set aside for a fit of
                // their own.
                for part in parts.iter().skip(1) {
                    if part.len() < min_px.max(1) {
                        break;
                    }
                    let (x0, y0, x1, y1) = index_bbox(part, w);
                    if x0 > 0 && y0 > 0 && x1 + 1 < w && y1 + 1 < h {
                        pieces.push(fill_holes(part, w, h));
                    }
                }
            }
            let Some(main) = parts.into_iter().next() else {
                continue;
            };
            let main = fill_holes(&main, w, h);
            if let Some((q2, iou2)) = fit_quad(&main, w, h) {
                if iou2 > iou + 0.02 {
                    (quad, iou, region) = (q2, iou2, main);
                }
            }
            if iou >= 0.92 {
                break;
            }
        }
    }
    let area = signed_area(&quad);
    if area < 16.0 {
        return None;
    }
    // Cut off: a corner beyond the frame, or region pixels on the border right at the quad
    // (an arm reaching the border away from the film does not count).
    let corner_out = quad
        .iter()
        .any(|p| p[0] < -1.0 || p[1] < -1.0 || p[0] > w as f32 + 1.0 || p[1] > h as f32 + 1.0);
    let (hits, near) = border_hits(&region, &quad, w, h);
    // A region running out of the frame on three or four sides is the scene around the film
    // (the light box, the room), not a film that needs moving.
    if hits.iter().filter(|&&n| n >= 3).count() >= 3 {
        return None;
    }
    let touched = near.iter().filter(|&&n| n >= 3).count();
    // A side running along the frame border (both its corners within a pixel or two of the
    // same frame edge) is where the frame cut the film, even if the region stops just short.
    let on_edge = |p: Pt, k: usize| match k {
        0 => p[0] < 2.5,
        1 => p[0] > w as f32 - 2.5,
        2 => p[1] < 2.5,
        _ => p[1] > h as f32 - 2.5,
    };
    let side_on_border =
        (0..4).any(|i| (0..4).any(|k| on_edge(quad[i], k) && on_edge(quad[(i + 1) % 4], k)));
    let cut = corner_out || touched > 0 || side_on_border;

    // Texture and grey-level spread inside, over the bounding box only. Texture is the median
    // band-pass level: ribs and vessels run through the whole film, while a finger, a clip or a
    // glare spot on an empty light box is local. The spread: a film has dark lungs and bright
    // bones; an empty light box or a blank sheet is one brightness give or take its vignetting.
    let inner = scale_about_centroid(&quad, 0.85);
    let (mut bands, mut vals) = (Vec::new(), Vec::new());
    let (bx0, by0, bx1, by1) = bbox_px(&inner, w, h);
    for y in by0..by1 {
        for x in bx0..bx1 {
            if in_quad(&inner, [x as f32 + 0.5, y as f32 + 0.5]) {
                bands.push(work.band[y * w + x]);
                vals.push(work.img.data[y * w + x]);
            }
        }
    }
    let texture = quantile(&mut bands, 0.5);
    let spread = quantile(&mut vals, 0.9) - quantile(&mut vals, 0.1);
    let (contrast, min_side) = edge_contrast(&work.img, &quad);
    Some(Candidate {
        quad,
        iou,
        area,
        cut,
        texture,
        contrast,
        min_side,
        spread,
        bright: false,
    })
}

/// Region pixels on each frame side (left, right, top, bottom): all of them, and those right at
/// the quad (an arm reaching the border away from the film does not count).
fn border_hits(region: &[bool], quad: &Quad, w: usize, h: usize) -> ([usize; 4], [usize; 4]) {
    let grown = scale_about_centroid(quad, 1.0 + 3.0 / signed_area(quad).max(1.0).sqrt());
    let (mut hits, mut near) = ([0usize; 4], [0usize; 4]);
    let mut count = |k: usize, x: usize, y: usize| {
        if region[y * w + x] {
            hits[k] += 1;
            near[k] += in_quad(&grown, [x as f32 + 0.5, y as f32 + 0.5]) as usize;
        }
    };
    for y in 0..h {
        count(0, 0, y);
        count(1, w - 1, y);
    }
    for x in 0..w {
        count(2, x, 0);
        count(3, x, h - 1);
    }
    (hits, near)
}

/// The region runs out of the frame right at the quad.
fn touches_frame_near(region: &[bool], quad: &Quad, w: usize, h: usize) -> bool {
    border_hits(region, quad, w, h).1.iter().any(|&n| n >= 3)
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
    let sig = signature(region, w, h);
    let (bx0, by0, bx1, by1) = (sig.1, sig.2, sig.3 + 1, sig.4 + 1);
    for y in by0 as isize..by1 as isize {
        for x in bx0 as isize..bx1 as isize {
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
    for y in by0..by1 {
        for x in bx0..bx1 {
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

/// Median and minimum over the four sides of the mean grey step across the side (2 px each way).
fn edge_contrast(img: &Frame, q: &Quad) -> (f32, f32) {
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
            let p = lerp(a, b, t);
            let out = sample_bilinear(img, p[0] + 2.0 * n[0], p[1] + 2.0 * n[1]);
            let inn = sample_bilinear(img, p[0] - 2.0 * n[0], p[1] - 2.0 * n[1]);
            acc += (out - inn).abs();
        }
        per_side.push(acc / 11.0);
    }
    per_side.sort_by(f32::total_cmp);
    if per_side.len() == 4 {
        (0.5 * (per_side[1] + per_side[2]), per_side[0])
    } else {
        (0.0, 0.0)
    }
}

/// Pixel bounding box `[x0, x1) x [y0, y1)` of a quad, clipped to the image.
pub fn bbox_px(q: &Quad, w: usize, h: usize) -> (usize, usize, usize, usize) {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in q {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    let c = |v: f32, n: usize| (v.max(0.0) as usize).min(n);
    (
        c(x0.floor(), w),
        c(y0.floor(), h),
        c(x1.ceil() + 1.0, w),
        c(y1.ceil() + 1.0, h),
    )
}
