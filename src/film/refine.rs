//! Sub-pixel corner refinement on the full-resolution frame.
//!
//! The coarse quad comes from a ~160 px working image, so each side is only known to a few
//! full-resolution pixels. Each side is re-measured where the grey-level step across it is
//! steepest along its normal (with a parabola through the peak), a line is fitted to those edge
//! points with outliers trimmed (glare, a finger, the clip), and the corners are the
//! intersections of adjacent lines.

use crate::pixels::Frame;

use super::geometry::Quad;
use super::geometry::{centroid, corners_from_sides, dist, lerp, Line, Pt};
use super::rectify::sample_bilinear;

/// Refine `q` (TL, TR, BR, BL) on `frame`; `scale` is full-res pixels per working pixel and
/// sets the search range.
pub fn refine_corners(frame: &Frame, q: &Quad, scale: f32) -> Quad {
    let c = centroid(q);
    let reach = 1.5 * scale + 2.0;
    let mut lines: [Option<Line>; 4] = [None; 4];
    for i in 0..4 {
        let (a, b) = (q[i], q[(i + 1) % 4]);
        let Some(l) = Line::through(a, b) else {
            continue;
        };
        let n = l.normal_away_from(c);
        let len = dist(a, b);
        let tang = [(b[0] - a[0]) / len, (b[1] - a[1]) / len];
        // Averaging three samples along the side suppresses sensor noise without blurring
        // across the edge.
        let prof = |p: Pt, d: f32| {
            let base = [p[0] + d * n[0], p[1] + d * n[1]];
            (sample_bilinear(frame, base[0] - tang[0], base[1] - tang[1])
                + sample_bilinear(frame, base[0], base[1])
                + sample_bilinear(frame, base[0] + tang[0], base[1] + tang[1]))
                / 3.0
        };
        // Polarity: which side is brighter, measured well away from the edge.
        let samples = 32;
        let mut pol = 0.0;
        for k in 0..samples {
            let t = 0.1 + 0.8 * k as f32 / (samples - 1) as f32;
            let p = lerp(a, b, t);
            pol += prof(p, reach + 1.0) - prof(p, -reach - 1.0);
        }
        let pol = if pol >= 0.0 { 1.0 } else { -1.0 };
        let steps = (2.0 * reach / 0.5) as usize;
        let mut found: Vec<(Pt, f32)> = Vec::new();
        for k in 0..samples {
            let t = 0.08 + 0.84 * k as f32 / (samples - 1) as f32;
            let p = lerp(a, b, t);
            let vals: Vec<f32> = (0..=steps + 2)
                .map(|j| prof(p, -reach - 0.5 + 0.5 * j as f32))
                .collect();
            // Derivative at offsets -reach..reach (step 0.5), signed so the film edge is positive.
            let der: Vec<f32> = (1..=steps + 1)
                .map(|j| pol * (vals[j + 1] - vals[j - 1]))
                .collect();
            let (jm, &dm) = der
                .iter()
                .enumerate()
                .max_by(|x, y| x.1.total_cmp(y.1))
                .unwrap();
            if dm <= 0.0 {
                continue;
            }
            let mut off = jm as f32;
            if jm > 0 && jm + 1 < der.len() {
                let (l, r) = (der[jm - 1], der[jm + 1]);
                let den = l - 2.0 * dm + r;
                if den < 0.0 {
                    off += (0.5 * (l - r) / den).clamp(-0.5, 0.5);
                }
            }
            let d = -reach + 0.5 * off;
            found.push(([p[0] + d * n[0], p[1] + d * n[1]], dm));
        }
        if found.len() < 8 {
            continue;
        }
        // Weak steps are where glare or a hand hides the edge.
        let mut strengths: Vec<f32> = found.iter().map(|f| f.1).collect();
        strengths.sort_by(f32::total_cmp);
        let med = strengths[strengths.len() / 2];
        let mut pts: Vec<Pt> = found
            .iter()
            .filter(|f| f.1 > 0.4 * med)
            .map(|f| f.0)
            .collect();
        for _ in 0..2 {
            let Some(l) = Line::fit(&pts) else { break };
            let mut res: Vec<f32> = pts.iter().map(|&p| l.dist(p).abs()).collect();
            res.sort_by(f32::total_cmp);
            let tol = 2.5 * res[res.len() / 2] + 0.5;
            pts.retain(|&p| l.dist(p).abs() <= tol);
        }
        if pts.len() >= 8 {
            lines[i] = Line::fit(&pts);
        }
    }
    let mut out = *q;
    for (i, p) in corners_from_sides(q, &lines).into_iter().enumerate() {
        if let Some(p) = p {
            // A refined corner far from the coarse one means a side locked onto something
            // else; the coarse corner is the safer answer.
            if dist(p, q[i]) <= 3.0 * reach {
                out[i] = p;
            }
        }
    }
    out
}
