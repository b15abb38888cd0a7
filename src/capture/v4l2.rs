//! The real camera: V4L2 through the `v4l` crate (feature `camera`, on by default).
//!
//! Only ioctl translation lives here; choosing formats, converting buffers, timeouts and
//! reconnecting are in `camera.rs`, where a fake device tests them.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use v4l::buffer::Type;
use v4l::capability::Flags;
use v4l::control::{self, Control, MenuItem, Value};
use v4l::framesize::FrameSizeEnum;
use v4l::io::traits::CaptureStream;
use v4l::prelude::*;
use v4l::video::Capture;
use v4l::FourCC;

use super::camera::{CameraDevice, Connector, FormatInfo, FrameSizes, RawFormat};
use super::controls::{ControlInfo, ControlKind};

/// Buffers in flight: enough that the driver never waits for us at 30 frames/s while a
/// frame is being searched, few enough to keep latency and memory low.
const BUFFERS: u32 = 4;

/// Where the stable names live (udev creates them).
const BY_ID: &str = "/dev/v4l/by-id";
const BY_PATH: &str = "/dev/v4l/by-path";

/// Turn what the user wrote into a device path: `/dev/video0`, `0` (index), a name under
/// `/dev/v4l/by-id` or `/dev/v4l/by-path`, or any path. Resolved again on every reconnect.
pub fn resolve(spec: &str) -> PathBuf {
    if spec.chars().all(|c| c.is_ascii_digit()) && !spec.is_empty() {
        return PathBuf::from(format!("/dev/video{spec}"));
    }
    let p = Path::new(spec);
    if p.is_absolute() || spec.starts_with('.') {
        return p.to_path_buf();
    }
    for dir in [BY_ID, BY_PATH] {
        let candidate = Path::new(dir).join(spec);
        if candidate.exists() {
            return candidate;
        }
    }
    Path::new("/dev").join(spec)
}

/// Opens a V4L2 camera by the name the user gave, resolving it again on each connect.
pub struct V4l2Connector {
    spec: String,
}

impl V4l2Connector {
    /// A connector for `spec` (see [`resolve`]); nothing is opened yet.
    pub fn new(spec: &str) -> V4l2Connector {
        V4l2Connector {
            spec: spec.to_string(),
        }
    }
}

impl Connector for V4l2Connector {
    fn connect(&mut self) -> io::Result<Box<dyn CameraDevice>> {
        let path = resolve(&self.spec);
        let dev = Device::with_path(&path)?;
        let caps = query_caps(&dev)?;
        if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
            return Err(io::Error::other(format!(
                "{} ({}) is not a video capture node (UVC cameras also create a metadata node; try the other /dev/videoN)",
                path.display(),
                caps.card
            )));
        }
        if !caps.capabilities.contains(Flags::STREAMING) {
            return Err(io::Error::other(format!(
                "{} cannot stream (no mmap streaming support)",
                path.display()
            )));
        }
        Ok(Box::new(V4l2Camera { dev, stream: None }))
    }

    fn name(&self) -> String {
        self.spec.clone()
    }
}

/// VIDIOC_QUERYCAP. `v4l` unwraps the card name as UTF-8 and panics on anything else; a
/// camera with an odd name must be an error, not a crash.
fn query_caps(dev: &Device) -> io::Result<v4l::Capabilities> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dev.query_caps())).unwrap_or_else(
        |_| {
            Err(io::Error::other(
                "the driver reports a name that is not UTF-8",
            ))
        },
    )
}

/// A `v4l` call that may panic on what a driver reports, as an error instead. Its control
/// calls unwrap names as UTF-8 and control types it does not know.
fn guarded<T>(what: &str, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(io::Error::other(format!(
            "{what}: the driver reports something the v4l crate cannot read"
        )))
    })
}

// Linux errno values the control calls answer with.
const EINVAL: i32 = 22;
const ENOTTY: i32 = 25;

/// Every control the device lists (class headings and disabled controls left out), with its
/// current value where it can be read.
fn controls_of(dev: &Device) -> io::Result<Vec<ControlInfo>> {
    let listed = match guarded("listing controls", || dev.query_controls()) {
        Ok(listed) => listed,
        // `v4l` answers a device without any control with the EINVAL that ends the list.
        Err(e) if matches!(e.raw_os_error(), Some(EINVAL | ENOTTY)) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(listed
        .into_iter()
        .filter(|d| d.typ != control::Type::CtrlClass)
        .filter(|d| !d.flags.contains(control::Flags::DISABLED))
        .map(|d| {
            let readable = !d.flags.contains(control::Flags::WRITE_ONLY)
                && !matches!(d.typ, control::Type::Button);
            let value = readable
                .then(|| guarded("reading a control", || dev.control(d.id)).ok())
                .flatten()
                .and_then(|c| match c.value {
                    Value::Integer(v) => Some(v),
                    Value::Boolean(b) => Some(i64::from(b)),
                    _ => None,
                });
            ControlInfo {
                id: d.id,
                kind: kind_of(d.typ),
                min: d.minimum,
                max: d.maximum,
                step: d.step,
                default: d.default,
                value,
                menu: d
                    .items
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(i, item)| match item {
                        MenuItem::Name(name) => (i64::from(i), name),
                        MenuItem::Value(v) => (i64::from(i), v.to_string()),
                    })
                    .collect(),
                inactive: d.flags.contains(control::Flags::INACTIVE),
                name: d.name,
            }
        })
        .collect())
}

fn kind_of(t: control::Type) -> ControlKind {
    match t {
        control::Type::Integer | control::Type::Integer64 => ControlKind::Integer,
        control::Type::Boolean => ControlKind::Boolean,
        control::Type::Menu => ControlKind::Menu,
        control::Type::IntegerMenu => ControlKind::IntegerMenu,
        control::Type::Button => ControlKind::Button,
        _ => ControlKind::Other,
    }
}

struct V4l2Camera {
    dev: Device,
    stream: Option<MmapStream<'static>>,
}

impl Drop for V4l2Camera {
    fn drop(&mut self) {
        // `v4l`'s stream panics in its destructor when STREAMOFF fails with anything but
        // ENODEV (e.g. EIO from a failing USB link). Losing a camera must not cost the process.
        if let Some(stream) = self.stream.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(stream)));
        }
    }
}

/// Every pixel format the device lists, with its frame sizes.
fn formats_of(dev: &Device) -> io::Result<Vec<FormatInfo>> {
    Ok(dev
        .enum_formats()?
        .into_iter()
        .map(|d| FormatInfo {
            fourcc: d.fourcc.repr,
            description: d.description,
            sizes: sizes_of(dev, d.fourcc),
        })
        .collect())
}

fn sizes_of(dev: &Device, fourcc: FourCC) -> Vec<FrameSizes> {
    let Ok(sizes) = dev.enum_framesizes(fourcc) else {
        return Vec::new();
    };
    sizes
        .into_iter()
        .map(|s| match s.size {
            FrameSizeEnum::Discrete(d) => FrameSizes::Discrete(d.width, d.height),
            FrameSizeEnum::Stepwise(s) => FrameSizes::Stepwise {
                min: (s.min_width, s.min_height),
                max: (s.max_width, s.max_height),
                step: (s.step_width, s.step_height),
            },
        })
        .collect()
}

impl CameraDevice for V4l2Camera {
    fn formats(&mut self) -> io::Result<Vec<FormatInfo>> {
        formats_of(&self.dev)
    }

    fn set_format(&mut self, fourcc: [u8; 4], width: u32, height: u32) -> io::Result<RawFormat> {
        let mut fmt = self.dev.format()?;
        fmt.fourcc = FourCC::new(&fourcc);
        fmt.width = width;
        fmt.height = height;
        fmt.stride = 0; // let the driver choose the padding
        fmt.size = 0;
        // set_format issues S_FMT and then reads the format back with G_FMT.
        let set = self.dev.set_format(&fmt)?;
        Ok(RawFormat {
            fourcc: set.fourcc.repr,
            width: set.width,
            height: set.height,
            bytes_per_line: set.stride,
        })
    }

    fn start(&mut self) -> io::Result<()> {
        self.stream = Some(MmapStream::with_buffers(
            &self.dev,
            Type::VideoCapture,
            BUFFERS,
        )?);
        Ok(())
    }

    fn dequeue(&mut self, timeout: Duration, f: &mut dyn FnMut(&[u8], usize)) -> io::Result<()> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| io::Error::other("stream not started"))?;
        stream.set_timeout(timeout.max(Duration::from_millis(1)));
        // `next` hands back the whole mapped buffer; only `bytesused` of it is this frame.
        let (buf, meta) = stream.next()?;
        f(buf, meta.bytesused as usize);
        Ok(())
    }

    fn controls(&mut self) -> io::Result<Vec<ControlInfo>> {
        controls_of(&self.dev)
    }

    fn set_control(&mut self, id: u32, value: i64) -> io::Result<()> {
        // `v4l` writes the 64-bit member of the value union; the kernel reads the 32-bit one of
        // an ordinary control, the same bytes on the little-endian machines cxr-edge runs on.
        self.dev.set_control(Control {
            id,
            value: Value::Integer(value),
        })
    }
}

/// One capture device as `cxr-edge devices` lists it.
#[derive(Clone, Debug)]
pub struct DeviceReport {
    /// The device node, e.g. `/dev/video0`.
    pub path: PathBuf,
    /// Stable names pointing at it (`/dev/v4l/by-id/...`), best to put in the config.
    pub stable_names: Vec<PathBuf>,
    /// The driver's name for the camera (VIDIOC_QUERYCAP card).
    pub card: String,
    /// Kernel driver name, e.g. `uvcvideo`.
    pub driver: String,
    /// Where the camera is attached (bus info), e.g. `usb-0000:01:00.0-1.4`.
    pub bus: String,
    /// Pixel formats and frame sizes the camera offers.
    pub formats: Vec<FormatInfo>,
    /// The camera's controls, with ranges and current values; empty if it lists none.
    pub controls: Vec<ControlInfo>,
}

/// The `/dev/video*` nodes, in numeric order.
fn video_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("video")?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

fn stable_names(target: &Path) -> Vec<PathBuf> {
    let target = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    let mut names = Vec::new();
    for dir in [BY_ID, BY_PATH] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if std::fs::canonicalize(e.path()).is_ok_and(|t| t == target) {
                names.push(e.path());
            }
        }
    }
    names.sort();
    names
}

/// Every video capture device, with what it offers; nodes that cannot be opened are listed
/// with the reason, since "permission denied" is the most common answer to "where is my camera".
pub fn list_devices() -> Vec<Result<DeviceReport, (PathBuf, String)>> {
    video_nodes()
        .into_iter()
        .filter_map(|path| {
            let dev = match Device::with_path(&path) {
                Ok(d) => d,
                Err(e) => return Some(Err((path, super::camera::describe_io_error(&e)))),
            };
            let caps = match query_caps(&dev) {
                Ok(c) => c,
                Err(e) => return Some(Err((path, super::camera::describe_io_error(&e)))),
            };
            // Metadata and output nodes are not cameras for us; leave them out.
            if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
                return None;
            }
            let formats = formats_of(&dev).unwrap_or_default();
            let controls = controls_of(&dev).unwrap_or_default();
            Some(Ok(DeviceReport {
                stable_names: stable_names(&path),
                path,
                card: caps.card,
                driver: caps.driver,
                bus: caps.bus,
                formats,
                controls,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_resolve() {
        assert_eq!(resolve("2"), PathBuf::from("/dev/video2"));
        assert_eq!(resolve("/dev/video0"), PathBuf::from("/dev/video0"));
        assert_eq!(resolve("video1"), PathBuf::from("/dev/video1"));
        assert_eq!(resolve("./frames/cam"), PathBuf::from("./frames/cam"));
    }

    #[test]
    fn a_missing_camera_is_an_error_with_advice_not_a_panic() {
        let mut c = V4l2Connector::new("/dev/video-cxr-edge-test-missing");
        let e = c.connect().err().expect("no such device");
        assert!(super::super::camera::describe_io_error(&e).contains("plugged in"));
    }
}
