//! Frame sources: where the pixels come from.
//!
//! Files named on the command line and the bundled sample films ([`Input`]); and streams of
//! frames ([`FrameSource`]): a V4L2 camera ([`camera::CameraSource`] over `v4l2`, feature
//! `camera`) or image and raw frame files played as a camera ([`FileSource`]), so everything
//! downstream runs without hardware.

pub mod camera;
mod decode;
#[cfg(feature = "dicom")]
pub mod dicom;
mod inputs;
pub mod pixfmt;
pub mod samples;
mod source;
#[cfg(feature = "camera")]
pub mod v4l2;

pub use decode::{decode_image, is_grey_file, read_limited, DecodeError, Limits};
pub use inputs::{expand_inputs, has_image_extension, sample_inputs, Input, InputSource};
pub use source::{read_frame_file, FileSource, FrameSource, Playback, SourceError};

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

    pub fn mean(&self) -> f32 {
        if self.data.is_empty() {
            return 0.0;
        }
        (self.data.iter().map(|&v| v as f64).sum::<f64>() / self.data.len() as f64) as f32
    }
}

/// A camera by device name (`/dev/video0`, `0`, or a `/dev/v4l/by-id` name) as a frame source
/// that reconnects by itself. Opening never fails here: a missing camera shows up as
/// [`SourceError::Unavailable`] from `next_frame`, so a kiosk can show it and keep trying.
#[cfg(feature = "camera")]
pub fn open_camera(
    device: &str,
    opts: camera::CameraOptions,
) -> anyhow::Result<Box<dyn FrameSource>> {
    Ok(Box::new(camera::CameraSource::new(
        Box::new(v4l2::V4l2Connector::new(device)),
        opts,
    )))
}

#[cfg(not(feature = "camera"))]
pub fn open_camera(
    device: &str,
    _opts: camera::CameraOptions,
) -> anyhow::Result<Box<dyn FrameSource>> {
    anyhow::bail!("cannot use camera {device}: this build has no camera support (built without the `camera` feature)")
}

/// A DICOM Part 10 file: a 128-byte preamble, then "DICM" (checked in every build, so a build
/// without DICOM support can say why it refuses one). Files without the preamble (raw data
/// sets) are not DICOM here: readers and PACS exports write Part 10 files.
pub fn dicom_magic(bytes: &[u8]) -> bool {
    bytes.len() >= 132 && &bytes[128..132] == b"DICM"
}
