//! Small image filters shared by the simulator, the finder and the gates.

use crate::pixels::Frame;

/// Box blur of radius `r` (window `2r+1`) along both axes, edges clamped. Running sums make the
/// cost independent of `r`.
pub fn box_blur(f: &Frame, r: usize) -> Frame {
    if r == 0 {
        return f.clone();
    }
    let (w, h) = (f.width, f.height);
    let mut tmp = vec![0f32; w * h];
    let mut line = Vec::new();
    for y in 0..h {
        line.clear();
        line.extend_from_slice(&f.data[y * w..(y + 1) * w]);
        blur_line(&line, r, &mut tmp[y * w..(y + 1) * w]);
    }
    let mut out = vec![0f32; w * h];
    for x in 0..w {
        line.clear();
        line.extend((0..h).map(|y| tmp[y * w + x]));
        let mut col = vec![0f32; h];
        blur_line(&line, r, &mut col);
        for y in 0..h {
            out[y * w + x] = col[y];
        }
    }
    Frame::new(w, h, out)
}

fn blur_line(src: &[f32], r: usize, dst: &mut [f32]) {
    let n = src.len();
    let at = |i: isize| src[i.clamp(0, n as isize - 1) as usize];
    let norm = 1.0 / (2 * r + 1) as f32;
    let mut acc: f32 = (-(r as isize)..=r as isize).map(at).sum();
    for (i, d) in dst.iter_mut().enumerate() {
        *d = acc * norm;
        let i = i as isize;
        acc += at(i + r as isize + 1) - at(i - r as isize);
    }
}

/// Gaussian blur approximated by three box blurs (Wells 1986); good enough for sigma >= 0.8.
pub fn gaussian_blur(f: &Frame, sigma: f32) -> Frame {
    if sigma < 0.3 {
        return f.clone();
    }
    if sigma < 1.2 {
        return gaussian_small(f, sigma);
    }
    // Three passes of width w have variance 3 * (w^2 - 1) / 12.
    let r = (((4.0 * sigma * sigma + 1.0).sqrt() - 1.0) / 2.0)
        .round()
        .max(1.0) as usize;
    box_blur(&box_blur(&box_blur(f, r), r), r)
}

/// Exact separable Gaussian for small sigmas, where box approximations are too coarse.
fn gaussian_small(f: &Frame, sigma: f32) -> Frame {
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / s).collect();
    let (w, h) = (f.width as isize, f.height as isize);
    let mut tmp = vec![0f32; f.data.len()];
    for y in 0..h {
        for x in 0..w {
            let mut a = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let xx = (x + j as isize - r).clamp(0, w - 1);
                a += kv * f.data[(y * w + xx) as usize];
            }
            tmp[(y * w + x) as usize] = a;
        }
    }
    let mut out = vec![0f32; f.data.len()];
    for y in 0..h {
        for x in 0..w {
            let mut a = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let yy = (y + j as isize - r).clamp(0, h - 1);
                a += kv * tmp[(yy * w + x) as usize];
            }
            out[(y * w + x) as usize] = a;
        }
    }
    Frame::new(f.width, f.height, out)
}

/// Value at quantile `q` in `[0, 1]` of `values` (reorders the slice).
pub fn quantile(values: &mut [f32], q: f32) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let i = ((values.len() - 1) as f32 * q.clamp(0.0, 1.0)).round() as usize;
    *values.select_nth_unstable_by(i, f32::total_cmp).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blurs_keep_constant_images_and_the_mean() {
        let c = Frame::new(30, 20, vec![77.0; 600]);
        for s in [0.5, 1.0, 2.0, 5.0] {
            assert!(gaussian_blur(&c, s)
                .data
                .iter()
                .all(|v| (v - 77.0).abs() < 1e-3));
        }
        let f = Frame::new(30, 20, (0..600).map(|i| ((i * 37) % 255) as f32).collect());
        let b = gaussian_blur(&f, 2.0);
        assert!((b.mean() - f.mean()).abs() < 3.0);
        let spread = |f: &Frame| f.data.iter().map(|v| (v - f.mean()).abs()).sum::<f32>();
        assert!(spread(&b) < 0.5 * spread(&f));
    }

    #[test]
    fn quantile_picks_order_statistics() {
        let mut v: Vec<f32> = (0..101).rev().map(|i| i as f32).collect();
        assert_eq!(quantile(&mut v, 0.5), 50.0);
        assert_eq!(quantile(&mut v, 0.0), 0.0);
        assert_eq!(quantile(&mut v, 1.0), 100.0);
    }
}
