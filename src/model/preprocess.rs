//! Preprocessing "cxr-area-v1", identical to `models/train/cxr/preprocess.py`.
//!
//! The film is squashed to the model's square input by exact area averaging (each output pixel
//! is the mean of the source area it covers, fractional pixels weighted by overlap), vertical
//! pass first, then normalised with the manifest's mean and std. Area averaging was chosen over
//! bilinear because it is trivially identical in numpy and Rust and aliases less when a large
//! camera frame is shrunk. `tests/parity.rs` proves the match against numbers exported by the
//! training pipeline.

use crate::capture::Frame;

/// Sparse resize weights for one axis: for each output index, the first source index and the
/// weights of the consecutive source pixels it covers.
#[derive(Clone, Debug)]
pub struct AxisWeights {
    taps: Vec<(usize, Vec<f32>)>,
}

impl AxisWeights {
    pub fn new(src: usize, dst: usize) -> Self {
        assert!(src > 0 && dst > 0);
        let scale = src as f64 / dst as f64;
        let taps = (0..dst)
            .map(|i| {
                let start = i as f64 * scale;
                let end = (i + 1) as f64 * scale;
                let first = start.floor() as usize;
                let last = ((end.ceil() as usize).max(first + 1)).min(src);
                let w = (first..last)
                    .map(|k| {
                        let overlap = end.min(k as f64 + 1.0) - start.max(k as f64);
                        (overlap.max(0.0) / scale) as f32
                    })
                    .collect();
                (first, w)
            })
            .collect();
        AxisWeights { taps }
    }
}

/// Area-average resize of a gray frame to `width` x `height`.
pub fn resize_area(frame: &Frame, width: usize, height: usize) -> Frame {
    let wy = AxisWeights::new(frame.height, height);
    let wx = AxisWeights::new(frame.width, width);
    // Vertical pass: rows of the output from rows of the input.
    let mut tmp = vec![0f32; height * frame.width];
    for (i, (first, ws)) in wy.taps.iter().enumerate() {
        let row = &mut tmp[i * frame.width..(i + 1) * frame.width];
        for (j, &w) in ws.iter().enumerate() {
            let src = &frame.data[(first + j) * frame.width..(first + j + 1) * frame.width];
            for (o, &s) in row.iter_mut().zip(src) {
                *o += w * s;
            }
        }
    }
    let mut out = vec![0f32; height * width];
    for y in 0..height {
        let src = &tmp[y * frame.width..(y + 1) * frame.width];
        for (x, (first, ws)) in wx.taps.iter().enumerate() {
            out[y * width + x] = ws.iter().zip(&src[*first..]).map(|(w, s)| w * s).sum();
        }
    }
    Frame::new(width, height, out)
}

/// The model input tensor data (NCHW, N = C = 1), flattened.
pub fn preprocess(frame: &Frame, width: usize, height: usize, mean: f32, std: f32) -> Vec<f32> {
    let small = resize_area(frame, width, height);
    small
        .data
        .into_iter()
        .map(|v| (v / 255.0 - mean) / std)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_cover_the_source_exactly() {
        for (src, dst) in [(320, 160), (224, 160), (7, 3), (3, 7), (1, 5), (1000, 160)] {
            let w = AxisWeights::new(src, dst);
            let mut coverage = vec![0f64; src];
            for (first, ws) in &w.taps {
                let sum: f32 = ws.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "{src}->{dst}: row sums to {sum}");
                for (j, &x) in ws.iter().enumerate() {
                    coverage[first + j] += x as f64 * src as f64 / dst as f64;
                }
            }
            // Every source pixel contributes exactly its own area once overall.
            for c in coverage {
                assert!((c - 1.0).abs() < 1e-4, "{src}->{dst}: coverage {c}");
            }
        }
    }

    #[test]
    fn constant_image_stays_constant_and_mean_is_preserved() {
        let f = Frame::new(300, 211, (0..300 * 211).map(|i| (i % 256) as f32).collect());
        let r = resize_area(&f, 160, 160);
        assert!(
            (r.mean() - f.mean()).abs() < 0.5,
            "{} vs {}",
            r.mean(),
            f.mean()
        );
        let c = Frame::new(50, 70, vec![128.0; 3500]);
        let r = resize_area(&c, 160, 160);
        assert!(r.data.iter().all(|&v| (v - 128.0).abs() < 1e-3));
    }

    #[test]
    fn halving_averages_two_by_two_blocks() {
        let f = Frame::new(4, 2, vec![0., 10., 20., 30., 40., 50., 60., 70.]);
        let r = resize_area(&f, 2, 1);
        assert_eq!(r.data, vec![25.0, 45.0]);
    }
}
