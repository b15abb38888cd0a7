//! The light-box edge stage of the film finder.
//!
//! The threshold sweep (`candidates.rs`) segments the film by grey level. On a light box that
//! fails in two common ways: the film lies close to the box's edge, so the strip of bare box
//! between film and room is two or three pixels at the sweep's 160-px scale and blurs into the
//! film; or the film's lower half (abdomen, diaphragm) lets through nearly as much light as the
//! box, so no grey level separates that half from it. The film's four sides are still straight
//! steps from the darker film to the brighter box along most of their length. This stage looks
//! for exactly that, at twice the sweep's resolution and inside the light box only: for each of
//! the box's sides, straight lines of pixels whose brightness rises outward in about that
//! direction (a Hough vote restricted to +-15 degrees of the box side's normal, since a film on a
//! box is never turned far against it), then the four lines whose quad has the best-supported
//! weakest side, checked against the bare box around it.
//!
//! Edges of the room, of the box itself and of a clip or hand on the box rise *inward* or are
//! short; lung outlines are curved and shorter than the film's sides. What is found is never
//! meant to be a film cut by the frame: every corner must keep [`BORDER`] pixels clear of it, and
//! a side through the film's interior has no bright box outside it. Developed on val renders of
//! both photo simulators; the figures are in the model card ("What goes wrong in the finder").

use crate::pixels::{resize_area, Frame};

use super::candidates::bbox_px;
use super::filters::{box_blur, quantile};
use super::geometry::{
    angles_within, centroid, in_quad, lerp, offset_quad, signed_area, Line, Pt, Quad,
};
use super::rectify::sample_bilinear;

/// Longest side of the image this stage works on: twice the sweep's, so that a strip of box
/// two or three sweep pixels wide is five or six here.
const EDGE_SIDE: usize = 320;
/// A film's side is within this many degrees of the box side it faces.
const SPREAD_DEG: i32 = 15;
/// Lines kept per side; the quad is chosen among all their combinations (at most 4^4).
const PEAKS: usize = 4;
/// Share of each side's length that must show the step up to the box.
const MIN_SUPPORT: f32 = 0.6;
/// Nearest a found corner may come to the frame border (pixels at this stage's scale).
const BORDER: f32 = 8.0;
/// Smallest step (grey levels) from film to box that counts as support for a side.
const MIN_STEP: f32 = 8.0;

/// The film on the light box `box_quad` (frame coordinates, TL TR BR BL; it may run out of the
/// frame), found by its straight edges, with the share of its weakest side that shows the step
/// up to the box; `None` when four well-supported sides are not there.
pub(super) fn film_on_light_box(frame: &Frame, box_quad: &Quad) -> Option<(Quad, f32)> {
    let s = (frame.width.max(frame.height) as f32 / EDGE_SIDE as f32).max(1.0);
    let (w, h) = (
        (frame.width as f32 / s).round() as usize,
        (frame.height as f32 / s).round() as usize,
    );
    if w < 32 || h < 32 {
        return None;
    }
    let img = box_blur(&resize_area(frame, w, h), 1);
    let bq = box_quad.map(|p| [p[0] / s, p[1] / s]);
    if !angles_within(&bq, 20.0, 160.0) {
        return None;
    }
    let normals = side_normals(&bq);
    let lines = hough_lines(&img, &offset_quad(&bq, -3.0), &normals);
    tracing::trace!(
        "edge stage: box {:?}, lines per side {:?}",
        bq.map(|p| [p[0].round(), p[1].round()]),
        lines.each_ref().map(|l| l.len())
    );
    let (quad, support) = best_quad(&img, &bq, &lines)?;
    let bare = film_inside_bare_box(&img, &bq, &quad);
    tracing::trace!(
        "edge stage: quad {:?}, bare box around it {bare}",
        quad.map(|p| [p[0].round(), p[1].round()])
    );
    bare.then(|| (quad.map(|p| [p[0] * s, p[1] * s]), support))
}

/// Outward normal angle (radians) of each side of a positively ordered quad.
fn side_normals(q: &Quad) -> [f32; 4] {
    let c = centroid(q);
    std::array::from_fn(|i| {
        Line::through(q[i], q[(i + 1) % 4]).map_or(0.0, |l| {
            let n = l.normal_away_from(c);
            n[1].atan2(n[0])
        })
    })
}

/// Difference of two angles in radians, wrapped to `(-pi, pi]`.
fn wrap(a: f32) -> f32 {
    let t = std::f32::consts::TAU;
    a - t * ((a + std::f32::consts::PI) / t).floor()
}

/// For each side of the box, up to [`PEAKS`] lines of pixels inside `mask` whose brightness
/// rises outward (towards that side), strongest first. Each line is returned with its outward
/// unit normal as `n` (so `Line::dist` is positive outside the film).
fn hough_lines(img: &Frame, mask: &Quad, normals: &[f32; 4]) -> [Vec<Line>; 4] {
    let (w, h) = (img.width, img.height);
    let at = |x: usize, y: usize| img.data[y * w + x];
    // Sobel gradients inside the mask, scaled to grey levels per pixel.
    let mut grads: Vec<(f32, f32, f32, f32)> = Vec::new();
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let p = [x as f32 + 0.5, y as f32 + 0.5];
            if !in_quad(mask, p) {
                continue;
            }
            let gx = (at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x - 1, y)
                - at(x - 1, y + 1))
                / 8.0;
            let gy = (at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x, y - 1)
                - at(x + 1, y - 1))
                / 8.0;
            grads.push((p[0], p[1], gx, gy));
        }
    }
    let mut mags: Vec<f32> = grads.iter().map(|g| g.2.hypot(g.3)).collect();
    if mags.len() < 64 {
        return Default::default();
    }
    // The strongest two fifths of the box's gradients (the step from a bright abdomen up to the
    // box is weaker than much of the lung texture), and never the box's own glow or noise.
    let t = quantile(&mut mags, 0.6).max(1.5);
    // Position and direction of each strong gradient, once for all four sides.
    let strong: Vec<(f32, f32, f32)> = grads
        .iter()
        .filter(|g| g.2.hypot(g.3) >= t)
        .map(|&(x, y, gx, gy)| (x, y, gy.atan2(gx)))
        .collect();
    let diag = ((w * w + h * h) as f32).sqrt().ceil() as usize;
    let (nt, nr) = ((2 * SPREAD_DEG + 1) as usize, 2 * diag + 1);
    std::array::from_fn(|side| {
        let phi = normals[side];
        let angle = |k: usize| phi + ((k as i32 - SPREAD_DEG) as f32).to_radians();
        let trig: Vec<(f32, f32)> = (0..nt).map(|k| (angle(k).cos(), angle(k).sin())).collect();
        let mut acc = vec![0u32; nt * nr];
        for &(x, y, psi) in &strong {
            // Only the angle bins within the tolerance of this pixel's own direction.
            let d = wrap(psi - phi).to_degrees() + SPREAD_DEG as f32;
            if !(-2.0..=nt as f32 + 1.0).contains(&d) {
                continue;
            }
            let (k0, k1) = (
                (d - 2.0).max(0.0) as usize,
                ((d + 2.0) as usize).min(nt - 1),
            );
            for (k, &(c, s)) in trig.iter().enumerate().take(k1 + 1).skip(k0) {
                if (k as f32 - d).abs() <= 2.0 {
                    let r = (x * c + y * s + diag as f32).round();
                    if r >= 0.0 && (r as usize) < nr {
                        acc[k * nr + r as usize] += 1;
                    }
                }
            }
        }
        peaks(&acc, nt, nr)
            .into_iter()
            .map(|(k, r)| Line {
                n: [trig[k].0, trig[k].1],
                c: r as f32 - diag as f32,
            })
            .collect()
    })
}

/// The strongest local maxima of a (angle, offset) accumulator, kept apart by a few degrees or
/// a few pixels so that the candidates are different lines rather than one line's neighbours.
fn peaks(acc: &[u32], nt: usize, nr: usize) -> Vec<(usize, usize)> {
    let mut all: Vec<(u32, usize, usize)> = Vec::new();
    for k in 0..nt {
        for r in 1..nr - 1 {
            let v = acc[k * nr + r];
            if v < 8 {
                continue;
            }
            let local = (k.saturating_sub(1)..(k + 2).min(nt))
                .all(|k2| (r - 1..=r + 1).all(|r2| (k2, r2) == (k, r) || acc[k2 * nr + r2] <= v));
            if local {
                all.push((v, k, r));
            }
        }
    }
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (_, k, r) in all {
        if out
            .iter()
            .all(|&(k2, r2)| k.abs_diff(k2) > 3 || r.abs_diff(r2) > 4)
        {
            out.push((k, r));
            if out.len() == PEAKS {
                break;
            }
        }
    }
    out
}

/// Of all quads made of one candidate line per side, the one whose weakest side is best
/// supported (then the better-supported overall, then the larger); `None` below
/// [`MIN_SUPPORT`].
fn best_quad(img: &Frame, bq: &Quad, lines: &[Vec<Line>; 4]) -> Option<(Quad, f32)> {
    if lines.iter().any(|l| l.is_empty()) {
        return None;
    }
    let (w, h) = (img.width as f32, img.height as f32);
    let grown = offset_quad(bq, 2.0);
    let box_area = signed_area(bq);
    let mut best: Option<((f32, f32, f32), Quad)> = None;
    for a in &lines[0] {
        for b in &lines[1] {
            for c in &lines[2] {
                for d in &lines[3] {
                    let sides = [a, b, c, d];
                    let mut q = [[0f32; 2]; 4];
                    let mut ok = true;
                    for i in 0..4 {
                        match sides[(i + 3) % 4].intersect(sides[i]) {
                            Some(p) => q[i] = p,
                            None => ok = false,
                        }
                    }
                    // Whole, clear of the frame border by as much as the sweep asks of a film inside
                    // a light box (4 px at its scale), since a film whose corner is just outside
                    // still shows four straight sides; and on the box.
                    let area = signed_area(&q);
                    if !ok
                        || !angles_within(&q, 35.0, 145.0)
                        || !q.iter().all(|p| {
                            p[0] >= BORDER
                                && p[1] >= BORDER
                                && p[0] <= w - BORDER
                                && p[1] <= h - BORDER
                        })
                        || !q.iter().all(|&p| in_quad(&grown, p))
                        || area < 0.1 * box_area
                        || area > 0.95 * box_area
                    {
                        continue;
                    }
                    let sup: [f32; 4] = std::array::from_fn(|i| side_support(img, &q, i));
                    let weakest = sup.iter().copied().fold(f32::INFINITY, f32::min);
                    let key = (weakest, sup.iter().sum::<f32>(), area);
                    if weakest >= MIN_SUPPORT && best.as_ref().is_none_or(|(k, _)| key > *k) {
                        best = Some((key, q));
                    }
                }
            }
        }
    }
    best.map(|(k, q)| (q, k.0))
}

/// Share of side `i` of `q` (corner `i` to corner `i + 1`) along which the image is clearly
/// brighter just outside the quad than just inside.
fn side_support(img: &Frame, q: &Quad, i: usize) -> f32 {
    let (a, b) = (q[i], q[(i + 1) % 4]);
    let Some(l) = Line::through(a, b) else {
        return 0.0;
    };
    let n = l.normal_away_from(centroid(q));
    const N: usize = 40;
    let hits = (0..N)
        .filter(|&k| {
            let p = lerp(a, b, 0.05 + 0.9 * k as f32 / (N - 1) as f32);
            let out = sample_bilinear(img, p[0] + 2.5 * n[0], p[1] + 2.5 * n[1]);
            let inn = sample_bilinear(img, p[0] - 2.5 * n[0], p[1] - 2.5 * n[1]);
            out - inn >= MIN_STEP
        })
        .count();
    hits as f32 / N as f32
}

/// The quad is a film lying on bare box: the box just around it (inside the box) is brighter
/// than most of the film, since light through a film is always dimmer than the bare box, and
/// the inside has the grey-level spread of a film rather than one brightness.
fn film_inside_bare_box(img: &Frame, bq: &Quad, q: &Quad) -> bool {
    let (near, far) = (offset_quad(q, 2.0), offset_quad(q, 7.0));
    let inner_box = offset_quad(bq, -2.0);
    let core = offset_quad(q, -4.0);
    let (mut ring, mut film): (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());
    // Ring and core both lie inside `far`.
    let (x0, y0, x1, y1) = bbox_px(&far, img.width, img.height);
    for y in y0..y1 {
        for x in x0..x1 {
            let p: Pt = [x as f32 + 0.5, y as f32 + 0.5];
            let v = img.data[y * img.width + x];
            if in_quad(&far, p) && !in_quad(&near, p) && in_quad(&inner_box, p) {
                ring.push(v);
            } else if in_quad(&core, p) {
                film.push(v);
            }
        }
    }
    if ring.len() < 16 || film.len() < 64 {
        return false;
    }
    let spread = quantile(&mut film, 0.9) - quantile(&mut film, 0.1);
    quantile(&mut ring, 0.25) > quantile(&mut film, 0.5) && spread >= 12.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::film::{find_film, FindError};

    const W: usize = 640;
    const H: usize = 480;

    /// A dark room (grey 20), a light box (230) and a film on it: lung-like texture (90 +- 40)
    /// with its lower part almost as bright as the box (215), as abdomen and diaphragm are.
    fn scene(box_q: &Quad, film: &Quad) -> Frame {
        let mut data = vec![20.0f32; W * H];
        for y in 0..H {
            for x in 0..W {
                let p = [x as f32 + 0.5, y as f32 + 0.5];
                let v = &mut data[y * W + x];
                if in_quad(box_q, p) {
                    *v = 230.0;
                }
                if in_quad(film, p) {
                    let (top, bottom) = (
                        0.5 * (film[0][1] + film[1][1]),
                        0.5 * (film[2][1] + film[3][1]),
                    );
                    // Two domes of diaphragm: curved, as no straight line runs across a chest.
                    let u = (p[0] - film[0][0]) / (film[1][0] - film[0][0]);
                    let dome = 0.72 - 0.08 * (std::f32::consts::TAU * u).cos();
                    *v = if (p[1] - top) / (bottom - top) > dome {
                        215.0
                    } else {
                        90.0 + 40.0 * blobs(p)
                    };
                }
            }
        }
        Frame::new(W, H, data)
    }

    /// Smooth random texture in [-1, 1] at a 12-px grain (value noise from a hash), with no
    /// straight lines in it, as lungs have none.
    fn blobs(p: Pt) -> f32 {
        let hash = |i: i64, j: i64| {
            let mut z = (i.wrapping_mul(0x9E37_79B9) ^ j.wrapping_mul(0x85EB_CA6B)) as u64;
            z ^= z >> 15;
            z = z.wrapping_mul(0x2C1B_3C6D);
            z ^= z >> 12;
            (z % 2001) as f32 / 1000.0 - 1.0
        };
        let (gx, gy) = (p[0] / 12.0, p[1] / 12.0);
        let (i, j) = (gx.floor() as i64, gy.floor() as i64);
        let (tx, ty) = (gx - gx.floor(), gy - gy.floor());
        let top = hash(i, j) * (1.0 - tx) + hash(i + 1, j) * tx;
        let bottom = hash(i, j + 1) * (1.0 - tx) + hash(i + 1, j + 1) * tx;
        top * (1.0 - ty) + bottom * ty
    }

    fn worst(a: &Quad, b: &Quad) -> f32 {
        (0..4)
            .map(|i| (a[i][0] - b[i][0]).hypot(a[i][1] - b[i][1]))
            .fold(0.0, f32::max)
    }

    const BOX: Quad = [[60.0, 30.0], [600.0, 30.0], [600.0, 450.0], [60.0, 450.0]];

    #[test]
    fn finds_a_film_on_a_thin_strip_of_box_with_a_bright_lower_part() {
        // 8 px of box above the film: 2 px at the sweep's 160-px scale.
        let film = [[150.0, 38.0], [520.0, 48.0], [510.0, 430.0], [140.0, 420.0]];
        let frame = scene(&BOX, &film);
        let (q, support) = film_on_light_box(&frame, &BOX).expect("film found by its edges");
        // Hough lines are 1 degree and 1 px (2 frame px) apart; the finder refines them.
        assert!(worst(&q, &film) < 6.0, "{q:?}");
        assert!(support >= MIN_SUPPORT);
        let found = find_film(&frame).expect("the finder takes it");
        assert!(worst(&found.corners, &film) < 3.0, "{:?}", found.corners);
    }

    #[test]
    fn an_empty_light_box_has_no_film() {
        let frame = scene(&BOX, &[[0.0; 2]; 4]);
        assert_eq!(film_on_light_box(&frame, &BOX), None);
    }

    #[test]
    fn a_film_cut_by_the_frame_is_never_taken_whole() {
        // The box and the film run out of the top of the frame.
        let box_q = [[60.0, -80.0], [600.0, -80.0], [600.0, 450.0], [60.0, 450.0]];
        let film = [
            [150.0, -60.0],
            [520.0, -54.0],
            [515.0, 420.0],
            [145.0, 414.0],
        ];
        let frame = scene(&box_q, &film);
        assert_eq!(film_on_light_box(&frame, &box_q), None);
        assert_eq!(find_film(&frame), Err(FindError::CutOff));
    }
}
