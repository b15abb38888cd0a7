//! Preprocessing, identical to `models/train/cxr/preprocess.py`: "cxr-area-v1" (the shipped
//! model) and "cxr-eq-v2" (v1 plus a rank equalisation, for models trained without the
//! collections' brightness and contrast cues).
//!
//! The film is squashed to the model's square input by exact area averaging (each output pixel
//! is the mean of the source area it covers, fractional pixels weighted by overlap), vertical
//! pass first, then normalised with the manifest's mean and std. Area averaging was chosen over
//! bilinear because it is trivially identical in numpy and Rust and aliases less when a large
//! camera frame is shrunk. `tests/parity.rs` proves the match against numbers exported by the
//! training pipeline.

use crate::pixels::{resize_area, Frame};

/// A preprocessing this build implements, by its manifest id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preprocess {
    /// "cxr-area-v1": area resize, then `(v / 255 - mean) / std`.
    AreaV1,
    /// "cxr-eq-v2": area resize, then [`equalise01`], then `(e - mean) / std`.
    EqV2,
}

impl Preprocess {
    /// Every id this build implements, for error messages.
    pub const IDS: [&'static str; 2] = ["cxr-area-v1", "cxr-eq-v2"];

    /// The preprocessing named `id` in a manifest, if this build implements it.
    pub fn from_id(id: &str) -> Option<Preprocess> {
        match id {
            "cxr-area-v1" => Some(Preprocess::AreaV1),
            "cxr-eq-v2" => Some(Preprocess::EqV2),
            _ => None,
        }
    }
}

/// The model input tensor data (NCHW, N = C = 1), flattened: "cxr-area-v1".
pub fn preprocess(frame: &Frame, width: usize, height: usize, mean: f32, std: f32) -> Vec<f32> {
    preprocess_with(Preprocess::AreaV1, frame, width, height, mean, std)
}

/// The model input tensor data (NCHW, N = C = 1), flattened, in the given preprocessing.
pub fn preprocess_with(
    kind: Preprocess,
    frame: &Frame,
    width: usize,
    height: usize,
    mean: f32,
    std: f32,
) -> Vec<f32> {
    let small = resize_area(frame, width, height);
    match kind {
        Preprocess::AreaV1 => small
            .data
            .into_iter()
            .map(|v| (v / 255.0 - mean) / std)
            .collect(),
        Preprocess::EqV2 => equalise01(&small.data)
            .into_iter()
            .map(|e| (e - mean) / std)
            .collect(),
    }
}

/// Rank equalisation ("cxr-eq-v2" step 3): each value is put on a grid of 1/16 grey level,
/// `q = floor(16 v + 0.5)` (so that values differing only by the float rounding of the resize,
/// which is not bit-identical to numpy's, tie exactly instead of swapping places with many
/// near-equal neighbours), then becomes the mean rank of its q among all n values, scaled to
/// [0, 1]: `(first + last index in sorted order) / (2 (n - 1))`, an integer over an integer
/// computed in f64 and rounded once to f32, exactly as numpy does it.
/// The result depends only on the order of the values, so a collection's brightness, contrast,
/// gamma or bit depth leave no trace; equal values (flat borders, saturation) stay equal.
/// Fewer than two values give 0.5. Values are pixel means, never NaN.
pub fn equalise01(values: &[f32]) -> Vec<f32> {
    let n = values.len();
    if n < 2 {
        return vec![0.5; n];
    }
    let grid: Vec<f32> = values.iter().map(|&v| (v * 16.0 + 0.5).floor()).collect();
    let mut sorted = grid.clone();
    sorted.sort_unstable_by(f32::total_cmp);
    // n <= 2048 * 2048 (the manifest's size limit), so 2 n fits a u64 and an f64 exactly.
    let denom = 2.0 * (n as f64 - 1.0);
    grid.iter()
        .map(|&x| {
            let lo = sorted.partition_point(|&s| s < x) as u64;
            let hi = sorted.partition_point(|&s| s <= x) as u64 - 1;
            ((lo + hi) as f64 / denom) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equalise_gives_mean_ranks_with_ties_shared() {
        // Python: equalise01(np.array([[3, 1, 1], [2, 5, 3]], np.float32))
        let got = equalise01(&[3.0, 1.0, 1.0, 2.0, 5.0, 3.0]);
        assert_eq!(got, vec![0.7, 0.1, 0.1, 0.4, 1.0, 0.7]);
        // values closer than the 1/16 grid tie
        assert_eq!(equalise01(&[1.0, 1.001, 2.0]), vec![0.25, 0.25, 1.0]);
    }

    #[test]
    fn equalise_ignores_brightness_and_contrast() {
        let a: Vec<f32> = (0..400).map(|i| ((i * 37) % 101) as f32).collect();
        let b: Vec<f32> = a.iter().map(|v| 0.5 * v * v + 12.0).collect();
        assert_eq!(equalise01(&a), equalise01(&b));
    }

    #[test]
    fn equalise_of_tiny_and_flat_inputs() {
        assert_eq!(equalise01(&[]), Vec::<f32>::new());
        assert_eq!(equalise01(&[7.0]), vec![0.5]);
        assert_eq!(equalise01(&[2.0; 5]), vec![0.5; 5]);
    }

    #[test]
    fn ids_round_trip() {
        for id in Preprocess::IDS {
            assert!(Preprocess::from_id(id).is_some(), "{id}");
        }
        assert_eq!(Preprocess::from_id("cxr-area-v3"), None);
    }
}
