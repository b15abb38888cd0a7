//! Preprocessing "cxr-area-v1", identical to `models/train/cxr/preprocess.py`.
//!
//! The film is squashed to the model's square input by exact area averaging (each output pixel
//! is the mean of the source area it covers, fractional pixels weighted by overlap), vertical
//! pass first, then normalised with the manifest's mean and std. Area averaging was chosen over
//! bilinear because it is trivially identical in numpy and Rust and aliases less when a large
//! camera frame is shrunk. `tests/parity.rs` proves the match against numbers exported by the
//! training pipeline.

use crate::pixels::{resize_area, Frame};

/// The model input tensor data (NCHW, N = C = 1), flattened.
pub fn preprocess(frame: &Frame, width: usize, height: usize, mean: f32, std: f32) -> Vec<f32> {
    let small = resize_area(frame, width, height);
    small
        .data
        .into_iter()
        .map(|v| (v / 255.0 - mean) / std)
        .collect()
}
