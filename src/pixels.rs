//! The ground floor: the grey image every stage passes on ([`Frame`]) and the area resampler
//! that every stage uses to shrink one (the film finder, rectification, the quality gates, the
//! heatmap and the model's preprocessing). Nothing here knows about films or models, so any
//! module may import it.

/// A grayscale image as the rest of the pipeline sees it: row-major, one `f32` per pixel in
/// `[0, 255]`. Floats rather than `u8` because 16-bit films and colour conversion must not be
/// rounded before the resize (the training pipeline does not round either).
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Pixel values, row-major, `width * height` of them.
    pub data: Vec<f32>,
}

impl Frame {
    /// A frame from its pixels; panics when `data` does not hold `width * height` values.
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            width * height,
            data.len(),
            "frame buffer does not match its size"
        );
        Frame {
            width,
            height,
            data,
        }
    }

    /// The value at column `x`, row `y`; panics outside the frame.
    pub fn pixel(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// The frame as an 8-bit grey image (rounded, clamped to 0..=255): for saving and encoding.
    pub fn to_luma8(&self) -> image::GrayImage {
        let px: Vec<u8> = self
            .data
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect();
        image::GrayImage::from_raw(self.width as u32, self.height as u32, px)
            .expect("a frame's buffer matches its size")
    }

    /// Mean pixel value; 0 for an empty frame.
    pub fn mean(&self) -> f32 {
        if self.data.is_empty() {
            return 0.0;
        }
        (self.data.iter().map(|&v| v as f64).sum::<f64>() / self.data.len() as f64) as f32
    }
}

/// Sparse resize weights for one axis: for each output index, the first source index and the
/// weights of the consecutive source pixels it covers.
#[derive(Clone, Debug)]
pub struct AxisWeights {
    taps: Vec<(usize, Vec<f32>)>,
}

impl AxisWeights {
    /// Area weights for resizing `src` pixels to `dst` (both > 0).
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
