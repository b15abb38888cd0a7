//! Frame sources: a camera, or files played as if they were one.
//!
//! Everything after capture (the finder, the kiosk loop, `capture`) takes a `dyn FrameSource`,
//! so it runs the same on recorded frames as on a camera, and tests need no hardware.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::pixfmt::{frame_from_buffer, FrameError, PixelFormat, StreamFormat};
use super::{decode_image, has_image_extension, read_limited, DecodeError, Frame, Limits};

/// Why a frame file, or a folder of them, cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum FrameFileError {
    /// A raw frame's name must carry its size (`frame.1280x720.yuyv`).
    #[error("raw {format} frame {path} does not say its size: name it like frame.1280x720.{ext}")]
    RawSizeMissing {
        /// The raw pixel format the extension names.
        format: PixelFormat,
        /// The file.
        path: PathBuf,
        /// Its extension.
        ext: String,
    },
    /// The file or folder cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A folder without a single frame file.
    #[error("{} holds no frame files (PNG, JPEG, BMP, TIFF, or raw .yuyv/.grey named like frame.1280x720.yuyv)", .0.display())]
    NoFrames(PathBuf),
    /// A raw frame bigger than the pixel limit.
    #[error("raw frame of {0} pixels exceeds the limit")]
    TooManyPixels(u64),
    /// A raw frame whose bytes do not match its declared format.
    #[error(transparent)]
    Raw(#[from] FrameError),
    /// An image file that does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Why [`FrameSource::next_frame`] has no frame. Only `Finished` is final; after any other
/// error the caller may simply ask again.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The camera delivered nothing in time (stalled, or covered by a lens cap is not this:
    /// that still delivers frames).
    #[error("no frame from {source_name} within {}", fmt_duration(*.waited))]
    Timeout {
        /// The source's name, for messages.
        source_name: String,
        /// How long it waited for the frame.
        waited: Duration,
    },
    /// No camera right now: unplugged, not there yet, or not openable. The source keeps
    /// trying to reconnect on the following calls.
    #[error("camera {source_name} is not available: {reason}")]
    Unavailable {
        /// The source's name, for messages.
        source_name: String,
        /// Why the camera could not be used, in words.
        reason: String,
    },
    /// One bad frame (corrupt, truncated); the next is probably fine.
    #[error("bad frame from {source_name}: {reason}")]
    BadFrame {
        /// The source's name, for messages.
        source_name: String,
        /// What was wrong with the frame.
        reason: String,
    },
    /// A recording played once has no more frames.
    #[error("{source_name} has no more frames")]
    Finished {
        /// The source's name, for messages.
        source_name: String,
    },
}

fn fmt_duration(d: Duration) -> String {
    if d.as_millis() < 10_000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs())
    }
}

/// Anything that yields grayscale frames.
pub trait FrameSource: Send {
    /// The next frame. Blocks at most for the source's timeout.
    fn next_frame(&mut self) -> Result<Frame, SourceError>;
    /// A name for messages and the screen (`/dev/video0`, `frames/`).
    fn name(&self) -> String;
}

/// Raw frame files are named `anything.<W>x<H>.<fmt>`, e.g. `desk.1280x720.yuyv`, since
/// the bytes alone do not say the size.
const RAW_EXTENSIONS: &[(&str, PixelFormat)] = &[
    ("yuyv", PixelFormat::Yuyv),
    ("yuv422", PixelFormat::Yuyv),
    ("grey", PixelFormat::Grey),
    ("gray", PixelFormat::Grey),
    ("y8", PixelFormat::Grey),
];

/// The format and size a raw frame's name declares, or `None` for ordinary image files.
/// An error when the extension is raw but the size is missing or malformed.
pub fn raw_format(path: &Path) -> Option<Result<StreamFormat, FrameFileError>> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    let (_, format) = RAW_EXTENSIONS.iter().find(|(e, _)| *e == ext)?;
    let stem = path.file_stem()?.to_string_lossy().into_owned();
    let size = Path::new(&stem)
        .extension()
        .and_then(|s| s.to_str())
        .and_then(|s| s.split_once('x'))
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|&(w, h)| w > 0 && h > 0 && w <= 16_384 && h <= 16_384);
    Some(match size {
        Some((width, height)) => Ok(StreamFormat {
            format: *format,
            width,
            height,
            bytes_per_line: 0,
        }),
        None => Err(FrameFileError::RawSizeMissing {
            format: *format,
            path: path.to_path_buf(),
            ext,
        }),
    })
}

fn is_frame_file(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    // `.mjpg`: single frames saved from a motion-JPEG camera.
    has_image_extension(path) || ext == "mjpg" || RAW_EXTENSIONS.iter().any(|(e, _)| *e == ext)
}

/// Read one frame file: an image (PNG, JPEG, ...), or a raw YUYV/GREY frame.
pub fn read_frame_file(path: &Path, limits: &Limits) -> Result<Frame, FrameFileError> {
    let bytes = read_limited(path, limits.max_file_bytes)?;
    match raw_format(path) {
        Some(fmt) => {
            let fmt = fmt?;
            let px = fmt.width as u64 * fmt.height as u64;
            if px > limits.max_pixels {
                return Err(FrameFileError::TooManyPixels(px));
            }
            Ok(frame_from_buffer(&fmt, &bytes, bytes.len())?)
        }
        None => Ok(decode_image(&bytes, limits)?),
    }
}

/// How a recording is played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Playback {
    /// Start again after the last frame, like a camera that never stops.
    Loop,
    /// Each frame once, then [`SourceError::Finished`].
    Once,
}

/// Image or raw frame files played as a camera: one file (a still camera), or a directory
/// whose frame files are played in name order.
pub struct FileSource {
    name: String,
    files: Vec<PathBuf>,
    next: usize,
    playback: Playback,
    limits: Limits,
    /// Pause between frames, like a camera's frame interval (zero: as fast as asked).
    interval: Duration,
}

impl FileSource {
    /// A file or a directory of frames. An empty directory is an error now, not a source
    /// that never delivers.
    pub fn open(path: &Path, playback: Playback) -> Result<FileSource, FrameFileError> {
        if let Some(Err(e)) = raw_format(path) {
            return Err(e);
        }
        let io = |source| FrameFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let files = if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_frame_file(p))
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(FrameFileError::NoFrames(path.to_path_buf()));
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        Ok(FileSource {
            name: path.display().to_string(),
            files,
            next: 0,
            playback,
            limits: Limits::default(),
            interval: Duration::ZERO,
        })
    }

    /// Pause `interval` before each frame, like a camera's frame interval.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Number of frame files played.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no frame files (never true for an opened source).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl FrameSource for FileSource {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        if self.next >= self.files.len() {
            match self.playback {
                Playback::Once => {
                    return Err(SourceError::Finished {
                        source_name: self.name.clone(),
                    })
                }
                Playback::Loop => self.next = 0,
            }
        }
        let path = &self.files[self.next];
        self.next += 1;
        if !self.interval.is_zero() {
            std::thread::sleep(self.interval);
        }
        read_frame_file(path, &self.limits).map_err(|reason| SourceError::BadFrame {
            source_name: self.name.clone(),
            reason: format!("{}: {reason}", path.display()),
        })
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::pixfmt::encode_frame;
    use super::*;

    fn frame(v: f32) -> Frame {
        Frame::new(40, 40, vec![v; 1600])
    }

    fn write_png(path: &Path, f: &Frame) {
        let px: Vec<u8> = f.data.iter().map(|&v| v as u8).collect();
        image::GrayImage::from_raw(f.width as u32, f.height as u32, px)
            .unwrap()
            .save(path)
            .unwrap();
    }

    #[test]
    fn directory_plays_in_name_order_then_loops_or_finishes() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("b.png"), &frame(20.0));
        write_png(&dir.path().join("a.png"), &frame(10.0));
        std::fs::write(
            dir.path().join("c.40x40.yuyv"),
            encode_frame(&frame(30.0), PixelFormat::Yuyv),
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        std::fs::write(dir.path().join(".hidden.png"), "ignored").unwrap();

        let mut once = FileSource::open(dir.path(), Playback::Once).unwrap();
        let means: Vec<f32> = (0..3).map(|_| once.next_frame().unwrap().mean()).collect();
        assert_eq!(means, vec![10.0, 20.0, 30.0]);
        assert!(matches!(
            once.next_frame(),
            Err(SourceError::Finished { .. })
        ));

        let mut looped = FileSource::open(dir.path(), Playback::Loop).unwrap();
        let means: Vec<f32> = (0..4)
            .map(|_| looped.next_frame().unwrap().mean())
            .collect();
        assert_eq!(means, vec![10.0, 20.0, 30.0, 10.0]);
    }

    #[test]
    fn bad_frames_are_reported_and_playing_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"not a png").unwrap();
        std::fs::write(dir.path().join("b.40x40.grey"), vec![7u8; 100]).unwrap(); // short
        write_png(&dir.path().join("c.png"), &frame(50.0));
        let mut s = FileSource::open(dir.path(), Playback::Once).unwrap();
        assert!(matches!(s.next_frame(), Err(SourceError::BadFrame { .. })));
        let e = s.next_frame().unwrap_err().to_string();
        assert!(
            e.contains("short GREY frame: 100 bytes, 1600 needed"),
            "{e}"
        );
        assert_eq!(s.next_frame().unwrap().mean(), 50.0);
    }

    #[test]
    fn raw_names_must_carry_the_size() {
        assert_eq!(
            raw_format(Path::new("x/desk.1280x720.yuyv"))
                .unwrap()
                .unwrap(),
            StreamFormat {
                format: PixelFormat::Yuyv,
                width: 1280,
                height: 720,
                bytes_per_line: 0
            }
        );
        assert!(raw_format(Path::new("desk.png")).is_none());
        let e = FileSource::open(Path::new("desk.yuyv"), Playback::Once)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("frame.1280x720.yuyv"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = FileSource::open(dir.path(), Playback::Loop)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no frame files"), "{e}");
    }
}
