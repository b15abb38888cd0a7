//! Frame sources: where the pixels come from.
//!
//! Today these are image files and the sample films bundled into the binary; camera sources
//! plug in here later behind the same [`Frame`] type, so everything downstream runs without
//! hardware.

mod decode;
mod inputs;
pub mod samples;

pub use decode::{decode_image, read_limited, DecodeError, Limits};
pub use inputs::{expand_inputs, sample_inputs, Input, InputSource};

/// A grayscale image as the rest of the pipeline sees it: row-major, one `f32` per pixel in
/// `[0, 255]`. Floats rather than `u8` because 16-bit films and colour conversion must not be
/// rounded before the resize (the training pipeline does not round either).
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Frame {
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

    pub fn pixel(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    pub fn mean(&self) -> f32 {
        if self.data.is_empty() {
            return 0.0;
        }
        (self.data.iter().map(|&v| v as f64).sum::<f64>() / self.data.len() as f64) as f32
    }
}
