//! Frame sources: where the pixels come from.
//!
//! Files named on the command line and the bundled sample films ([`Input`]); and streams of
//! frames ([`FrameSource`]): a V4L2 camera ([`camera::CameraSource`] over `v4l2`, feature
//! `camera`) or image and raw frame files played as a camera ([`FileSource`]), so everything
//! downstream runs without hardware.

pub mod camera;
pub mod controls;
mod decode;
#[cfg(feature = "dicom")]
pub mod dicom;
mod inputs;
mod limits;
mod orient;
pub mod pixfmt;
pub mod samples;
mod source;
#[cfg(feature = "camera")]
pub mod v4l2;

pub(crate) use crate::pixels::Frame;
pub use decode::{decode_image, is_grey_file, read_limited};
pub use inputs::{expand_inputs, has_image_extension, sample_inputs, Input, InputSource};
pub use limits::{DecodeError, Limits, DEFAULT_MEMORY_BUDGET};
pub use source::{read_frame_file, FileSource, FrameFileError, FrameSource, Playback, SourceError};

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

/// The first video capture device, if this build can use cameras and one is there: its stable
/// `/dev/v4l/by-id` name when it has one. Used to resolve `source = "auto"`.
pub fn first_camera() -> Option<String> {
    #[cfg(feature = "camera")]
    {
        v4l2::list_devices().into_iter().flatten().next().map(|d| {
            d.stable_names
                .iter()
                .find(|n| n.starts_with("/dev/v4l/by-id"))
                .unwrap_or(&d.path)
                .display()
                .to_string()
        })
    }
    #[cfg(not(feature = "camera"))]
    None
}

/// A DICOM Part 10 file: a 128-byte preamble, then "DICM" (checked in every build, so a build
/// without DICOM support can say why it refuses one). Files without the preamble (raw data
/// sets) are not DICOM here: readers and PACS exports write Part 10 files.
pub fn dicom_magic(bytes: &[u8]) -> bool {
    bytes.len() >= 132 && &bytes[128..132] == b"DICM"
}
