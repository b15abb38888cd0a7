//! Perspective correction: warp the film's quadrilateral in a camera frame to an upright
//! rectangle.
//!
//! Coordinates are continuous: pixel `(x, y)` covers `[x, x+1) x [y, y+1)`, so a corner of the
//! image is `(0, 0)`, not the centre of the first pixel. Corners are always ordered TL, TR, BR,
//! BL in the film's own orientation.

use crate::pixels::resize_area;
use crate::pixels::Frame;

use super::geometry::{dist, Quad};

/// A plane projective transform `p' ~ H p`, row-major, `h[8]` fixed to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Homography {
    /// The 3x3 matrix, row-major.
    pub h: [f64; 9],
}

impl Homography {
    /// The transform taking each `src[i]` to `dst[i]`; `None` when three points are collinear
    /// (the system is singular and no projective map exists).
    pub fn from_points(src: &[[f64; 2]; 4], dst: &[[f64; 2]; 4]) -> Option<Homography> {
        // Standard DLT with h33 = 1: two linear equations per correspondence.
        let mut a = [[0f64; 9]; 8];
        for i in 0..4 {
            let ([x, y], [u, v]) = (src[i], dst[i]);
            a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -x * u, -y * u, u];
            a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -x * v, -y * v, v];
        }
        let sol = solve8(a)?;
        let mut h = [0f64; 9];
        h[..8].copy_from_slice(&sol);
        h[8] = 1.0;
        Some(Homography { h })
    }

    /// The transform from the rectangle `[0,w] x [0,h]` onto `quad` (TL, TR, BR, BL).
    pub fn rect_to_quad(w: f64, h: f64, quad: &Quad) -> Option<Homography> {
        let src = [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]];
        let dst = quad.map(|p| [p[0] as f64, p[1] as f64]);
        Homography::from_points(&src, &dst)
    }

    /// Map the point `(x, y)`.
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let h = &self.h;
        let d = h[6] * x + h[7] * y + h[8];
        (
            (h[0] * x + h[1] * y + h[2]) / d,
            (h[3] * x + h[4] * y + h[5]) / d,
        )
    }

    /// The inverse transform; `None` when the matrix is singular.
    pub fn inverse(&self) -> Option<Homography> {
        let m = &self.h;
        let c = [
            m[4] * m[8] - m[5] * m[7],
            m[2] * m[7] - m[1] * m[8],
            m[1] * m[5] - m[2] * m[4],
            m[5] * m[6] - m[3] * m[8],
            m[0] * m[8] - m[2] * m[6],
            m[2] * m[3] - m[0] * m[5],
            m[3] * m[7] - m[4] * m[6],
            m[1] * m[6] - m[0] * m[7],
            m[0] * m[4] - m[1] * m[3],
        ];
        let det = m[0] * c[0] + m[1] * c[3] + m[2] * c[6];
        if det.abs() < 1e-12 || c[8].abs() < 1e-15 {
            return None;
        }
        // Any scalar multiple is the same map; normalise so h33 = 1 like `from_points`.
        Some(Homography {
            h: c.map(|v| v / c[8]),
        })
    }
}

/// Gaussian elimination with partial pivoting on an 8x8 system given as an augmented matrix.
fn solve8(mut a: [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for col in 0..8 {
        let piv = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-10 {
            return None;
        }
        a.swap(col, piv);
        for r in 0..8 {
            if r != col {
                let f = a[r][col] / a[col][col];
                if f != 0.0 {
                    let pivot = a[col];
                    for (x, p) in a[r][col..].iter_mut().zip(&pivot[col..]) {
                        *x -= f * p;
                    }
                }
            }
        }
    }
    let mut x = [0f64; 8];
    for i in 0..8 {
        x[i] = a[i][8] / a[i][i];
    }
    Some(x)
}

/// Bilinear sample at continuous coordinates (pixel centres at `i + 0.5`), edges clamped.
pub fn sample_bilinear(f: &Frame, x: f32, y: f32) -> f32 {
    let fx = (x - 0.5).clamp(0.0, (f.width - 1) as f32);
    let fy = (y - 0.5).clamp(0.0, (f.height - 1) as f32);
    let (x0, y0) = (fx as usize, fy as usize);
    let (x1, y1) = ((x0 + 1).min(f.width - 1), (y0 + 1).min(f.height - 1));
    let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
    let row0 = y0 * f.width;
    let row1 = y1 * f.width;
    let top = f.data[row0 + x0] * (1.0 - tx) + f.data[row0 + x1] * tx;
    let bot = f.data[row1 + x0] * (1.0 - tx) + f.data[row1 + x1] * tx;
    top * (1.0 - ty) + bot * ty
}

/// Natural output size for a quad: the mean lengths of its opposite sides.
pub fn natural_size(quad: &Quad) -> (usize, usize) {
    let w = 0.5 * (dist(quad[0], quad[1]) + dist(quad[3], quad[2]));
    let h = 0.5 * (dist(quad[0], quad[3]) + dist(quad[1], quad[2]));
    (w.round().max(1.0) as usize, h.round().max(1.0) as usize)
}

/// Warp the film inside `quad` to an upright `width x height` frame.
///
/// Bilinear sampling alone aliases when the quad is much larger than the output (each output
/// pixel would see one source pixel out of many), so the source is first shrunk by area
/// averaging by the integer part of the shrink factor.
pub fn rectify(frame: &Frame, quad: &Quad, width: usize, height: usize) -> Option<Frame> {
    assert!(width > 0 && height > 0);
    let (nw, nh) = natural_size(quad);
    let shrink = (nw as f32 / width as f32).min(nh as f32 / height as f32);
    let k = shrink.floor().max(1.0) as usize;
    let shrunk;
    let (src, q) = if k >= 2 && frame.width / k >= 2 && frame.height / k >= 2 {
        let (sw, sh) = (frame.width / k, frame.height / k);
        // Exact scale per axis: integer division drops a partial block at the far edges.
        let (fx, fy) = (
            sw as f32 / frame.width as f32,
            sh as f32 / frame.height as f32,
        );
        shrunk = resize_area(frame, sw, sh);
        (&shrunk, quad.map(|p| [p[0] * fx, p[1] * fy]))
    } else {
        (frame, *quad)
    };
    let hm = Homography::rect_to_quad(width as f64, height as f64, &q)?;
    let mut out = Vec::with_capacity(width * height);
    let h = &hm.h;
    for y in 0..height {
        // Numerators and denominator are linear along a row: step them instead of evaluating
        // the homography afresh at every pixel.
        let (x0, yc) = (0.5, y as f64 + 0.5);
        let mut nx = h[0] * x0 + h[1] * yc + h[2];
        let mut ny = h[3] * x0 + h[4] * yc + h[5];
        let mut d = h[6] * x0 + h[7] * yc + h[8];
        for _ in 0..width {
            let r = 1.0 / d;
            out.push(sample_bilinear(src, (nx * r) as f32, (ny * r) as f32));
            nx += h[0];
            ny += h[3];
            d += h[6];
        }
    }
    Some(Frame::new(width, height, out))
}

/// Stretch grey levels so the 0.5th..99.5th percentiles span 0..255. A film photographed on a
/// light box never reaches the light box's own brightness (the film base absorbs part of the
/// light) nor true black, while the model was trained on full-range digital films.
pub fn stretch_levels(frame: &Frame) -> Frame {
    let mut v: Vec<f32> = frame.data.clone();
    if v.is_empty() {
        return frame.clone();
    }
    let n = v.len();
    let lo_i = (n as f32 * 0.005) as usize;
    let hi_i = ((n as f32 * 0.995) as usize).min(n - 1);
    let lo = *v.select_nth_unstable_by(lo_i, f32::total_cmp).1;
    let hi = *v.select_nth_unstable_by(hi_i, f32::total_cmp).1;
    if hi - lo < 1.0 {
        return frame.clone();
    }
    let s = 255.0 / (hi - lo);
    Frame::new(
        frame.width,
        frame.height,
        frame
            .data
            .iter()
            .map(|&p| ((p - lo) * s).clamp(0.0, 255.0))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homography_maps_the_four_points_and_inverts() {
        let quad: Quad = [[10.0, 20.0], [110.0, 15.0], [130.0, 140.0], [5.0, 120.0]];
        let h = Homography::rect_to_quad(100.0, 80.0, &quad).unwrap();
        for (p, q) in [[0.0, 0.0], [100.0, 0.0], [100.0, 80.0], [0.0, 80.0]]
            .iter()
            .zip(quad)
        {
            let (x, y) = h.apply(p[0], p[1]);
            assert!((x - q[0] as f64).abs() < 1e-6 && (y - q[1] as f64).abs() < 1e-6);
        }
        let inv = h.inverse().unwrap();
        let (x, y) = h.apply(37.0, 51.0);
        let (u, v) = inv.apply(x, y);
        assert!((u - 37.0).abs() < 1e-6 && (v - 51.0).abs() < 1e-6);
    }

    #[test]
    fn degenerate_quad_has_no_homography() {
        let line: Quad = [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]];
        assert!(Homography::rect_to_quad(10.0, 10.0, &line).is_none());
    }

    #[test]
    fn axis_aligned_quad_is_a_crop() {
        let f = Frame::new(
            40,
            30,
            (0..1200)
                .map(|i| ((i % 40) * 3 + (i / 40) * 2) as f32)
                .collect(),
        );
        let quad: Quad = [[10.0, 5.0], [30.0, 5.0], [30.0, 25.0], [10.0, 25.0]];
        let r = rectify(&f, &quad, 20, 20).unwrap();
        for y in 0..20 {
            for x in 0..20 {
                assert!((r.pixel(x, y) - f.pixel(x + 10, y + 5)).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn shrinking_averages_instead_of_aliasing() {
        // A one-pixel checkerboard must come out mid-grey, not as a random pattern.
        let f = Frame::new(
            400,
            400,
            (0..160_000)
                .map(|i| {
                    if (i % 400 + i / 400) % 2 == 0 {
                        0.0
                    } else {
                        255.0
                    }
                })
                .collect(),
        );
        let quad: Quad = [[0.0, 0.0], [400.0, 0.0], [400.0, 400.0], [0.0, 400.0]];
        let r = rectify(&f, &quad, 50, 50).unwrap();
        assert!(r.data.iter().all(|&v| (v - 127.5).abs() < 20.0));
    }

    #[test]
    fn stretch_spans_full_range() {
        let f = Frame::new(100, 1, (0..100).map(|i| 50.0 + i as f32).collect());
        let s = stretch_levels(&f);
        assert!(s.data[0] <= 1.0 && s.data[99] >= 254.0);
    }
}
