//! A camera as a [`FrameSource`]: format negotiation, buffer handling, timeouts, unplug and
//! reconnect. The V4L2 calls themselves sit behind [`CameraDevice`], so all of this logic is
//! tested against a fake device (see the tests below), and the real backend
//! (`capture::v4l2`, feature `camera`) stays a thin translation of ioctls.

use std::collections::HashSet;
use std::io;
use std::time::{Duration, Instant};

use super::controls::{self, CameraControls, ControlInfo, ControlProblem};
use super::pixfmt::{fourcc_str, frame_from_buffer, PixelFormat, StreamFormat};
use super::source::{FrameSource, SourceError};
use super::Frame;

/// Frame sizes a camera offers for one pixel format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameSizes {
    /// One fixed size, width and height in pixels.
    Discrete(u32, u32),
    /// Any size from `min` to `max` in steps of `step`.
    Stepwise {
        /// Smallest (width, height) in pixels.
        min: (u32, u32),
        /// Largest (width, height) in pixels.
        max: (u32, u32),
        /// Size increments (width, height) in pixels.
        step: (u32, u32),
    },
}

/// One pixel format a camera offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatInfo {
    /// The format's FourCC code.
    pub fourcc: [u8; 4],
    /// The driver's description of the format.
    pub description: String,
    /// Frame sizes offered in this format; empty if the driver lists none.
    pub sizes: Vec<FrameSizes>,
}

/// The few device calls a camera source makes. The real one wraps V4L2 ioctls on an open
/// device node; tests use a scripted fake.
pub trait CameraDevice: Send {
    /// List the pixel formats the device offers (VIDIOC_ENUM_FMT), with their sizes.
    fn formats(&mut self) -> io::Result<Vec<FormatInfo>>;
    /// Ask for a format (VIDIOC_S_FMT) and return what the driver actually set (it may change
    /// any field); `bytes_per_line` 0 lets the driver choose the padding.
    fn set_format(&mut self, fourcc: [u8; 4], width: u32, height: u32) -> io::Result<RawFormat>;
    /// Allocate and map the buffers and start streaming.
    fn start(&mut self) -> io::Result<()>;
    /// Wait at most `timeout` for a filled buffer and hand `f` the whole mapped buffer and the
    /// driver's `bytesused`. A timeout is `io::ErrorKind::TimedOut`.
    fn dequeue(&mut self, timeout: Duration, f: &mut dyn FnMut(&[u8], usize)) -> io::Result<()>;
    /// List the device's controls (VIDIOC_QUERY_EXT_CTRL), with their ranges, menus and
    /// current values; a device without any lists none.
    fn controls(&mut self) -> io::Result<Vec<ControlInfo>>;
    /// Set one control (VIDIOC_S_EXT_CTRLS).
    fn set_control(&mut self, id: u32, value: i64) -> io::Result<()>;
}

/// A format as the driver reports it (the FourCC may be one we cannot read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFormat {
    /// FourCC code the driver set.
    pub fourcc: [u8; 4],
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Bytes per row, padding included; 0 means no padding.
    pub bytes_per_line: u32,
}

/// Opens the device, again after each unplug. Resolving the name happens here, so a camera
/// named by `/dev/v4l/by-id/...` is found again even if it comes back as another `/dev/videoN`.
pub trait Connector: Send {
    /// Open the device; called again after each unplug.
    fn connect(&mut self) -> io::Result<Box<dyn CameraDevice>>;
    /// The camera as the user named it, for messages.
    fn name(&self) -> String;
}

/// How a [`CameraSource`] opens and keeps its camera.
#[derive(Clone, Debug)]
pub struct CameraOptions {
    /// Wanted frame size; the nearest the camera offers at or above it is chosen.
    pub width: u32,
    /// Wanted frame height in pixels.
    pub height: u32,
    /// Force a pixel format; `None` picks MJPEG, then YUYV, then GREY.
    pub format: Option<PixelFormat>,
    /// Longest wait for one frame.
    pub timeout: Duration,
    /// Reconnect delays: doubling from `backoff_initial` up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest delay between reconnect attempts.
    pub backoff_max: Duration,
    /// Consecutive timeouts after which the stream is restarted (some UVC cameras stall).
    pub stall_after: u32,
    /// Controls set at open and again after every reconnect (a replugged camera has forgotten
    /// them).
    pub controls: CameraControls,
}

impl Default for CameraOptions {
    fn default() -> Self {
        CameraOptions {
            width: 1280,
            height: 720,
            format: None,
            timeout: Duration::from_secs(2),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            stall_after: 3,
            controls: CameraControls::default(),
        }
    }
}

/// The size to ask for within one format's offer: the smallest at or above the wanted size,
/// else the largest. `None` when the format lists no sizes at all.
pub fn best_size(sizes: &[FrameSizes], want: (u32, u32)) -> Option<(u32, u32)> {
    // The ranges come from the driver: a minimum above the maximum must not panic (`clamp`
    // would) and rounding near u32::MAX must not wrap, hence u64.
    let snap = |v: u32, lo: u32, hi: u32, step: u32| {
        let hi = hi.max(lo);
        let v = v.clamp(lo, hi);
        let (lo64, step) = (u64::from(lo), u64::from(step.max(1)));
        // Round up to the grid so that the size stays at or above what was wanted.
        let up = lo64 + (u64::from(v) - lo64).div_ceil(step) * step;
        up.min(u64::from(hi)) as u32
    };
    let offered: Vec<(u32, u32)> = sizes
        .iter()
        .map(|s| match *s {
            FrameSizes::Discrete(w, h) => (w, h),
            FrameSizes::Stepwise { min, max, step } => (
                snap(want.0, min.0, max.0, step.0),
                snap(want.1, min.1, max.1, step.1),
            ),
        })
        .filter(|&(w, h)| w > 0 && h > 0)
        .collect();
    let area = |s: &(u32, u32)| s.0 as u64 * s.1 as u64;
    offered
        .iter()
        .filter(|s| s.0 >= want.0 && s.1 >= want.1)
        .min_by_key(|s| area(s))
        .or_else(|| offered.iter().max_by_key(|s| area(s)))
        .copied()
}

/// Why a camera could not be opened and started. Each message is for the person at the device;
/// the source reports it as [`SourceError::Unavailable`] and retries.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// The device could not be opened.
    #[error("{}", describe_io_error(.0))]
    Open(io::Error),
    /// The device would not list its formats.
    #[error("listing formats: {}", describe_io_error(.0))]
    Formats(io::Error),
    /// The format asked for (`--format`) is not among the camera's.
    #[error("the camera does not offer {forced} (it offers: {listed})")]
    NotOffered {
        /// The format asked for.
        forced: PixelFormat,
        /// The formats the camera lists, as FourCC codes.
        listed: String,
    },
    /// None of the camera's formats is one cxr-edge decodes.
    #[error("the camera offers no format cxr-edge can read (it offers: {0}; MJPEG, YUYV or GREY needed)")]
    NoReadableFormat(String),
    /// The driver refused the chosen format and size.
    #[error("setting {format} {width}x{height}: {}", describe_io_error(.error))]
    SetFormat {
        /// The format asked for.
        format: PixelFormat,
        /// Width asked for, in pixels.
        width: u32,
        /// Height asked for, in pixels.
        height: u32,
        /// The driver's answer.
        error: io::Error,
    },
    /// The driver set a format other than the one asked for, and not one cxr-edge decodes.
    #[error("asked for {asked}, the driver set {set} which cxr-edge cannot read")]
    DriverFormat {
        /// The format asked for.
        asked: PixelFormat,
        /// The FourCC the driver set.
        set: String,
    },
    /// The driver set a frame of no pixels.
    #[error("the driver set an empty frame size {0}x{1}")]
    EmptySize(u32, u32),
    /// Streaming would not start.
    #[error("starting the stream: {}", describe_io_error(.0))]
    Start(io::Error),
}

/// Choose format and size from what the camera lists: formats that reach the wanted size win,
/// then the preference order (or the forced format).
pub fn choose_format(
    formats: &[FormatInfo],
    want: (u32, u32),
    forced: Option<PixelFormat>,
) -> Result<(PixelFormat, u32, u32), CameraError> {
    let usable: Vec<(PixelFormat, (u32, u32))> = formats
        .iter()
        .filter_map(|f| {
            let pf = PixelFormat::from_fourcc(f.fourcc)?;
            if forced.is_some_and(|want| want != pf) {
                return None;
            }
            Some((pf, best_size(&f.sizes, want)?))
        })
        .collect();
    let rank = |pf: PixelFormat| PixelFormat::PREFERENCE.iter().position(|&p| p == pf);
    let pick = usable
        .iter()
        .min_by_key(|(pf, (w, h))| (!(*w >= want.0 && *h >= want.1), rank(*pf)))
        .copied();
    match pick {
        Some((pf, (w, h))) => Ok((pf, w, h)),
        None => {
            let listed: Vec<String> = formats.iter().map(|f| fourcc_str(f.fourcc)).collect();
            let listed = if listed.is_empty() {
                "none".to_string()
            } else {
                listed.join(", ")
            };
            Err(match forced {
                Some(forced) => CameraError::NotOffered { forced, listed },
                None => CameraError::NoReadableFormat(listed),
            })
        }
    }
}

/// Words for a device error, with what to do about the common ones.
pub fn describe_io_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(ENODEV) => "the camera was unplugged or lost power".to_string(),
        Some(ENOENT) => "no such device (is the camera plugged in?)".to_string(),
        Some(EACCES) | Some(EPERM) => {
            "permission denied (add the user to the `video` group)".to_string()
        }
        Some(EBUSY) => "the camera is in use by another program".to_string(),
        _ => e.to_string(),
    }
}

// Linux errno values; the same on every architecture Linux runs on.
const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EACCES: i32 = 13;
const EBUSY: i32 = 16;
const ENODEV: i32 = 19;

struct Live {
    dev: Box<dyn CameraDevice>,
    fmt: StreamFormat,
}

/// A camera that reconnects by itself. Each call to `next_frame` returns within about the
/// frame timeout, whatever the device does, so a caller can keep its screen and watchdog alive.
pub struct CameraSource {
    connector: Box<dyn Connector>,
    opts: CameraOptions,
    live: Option<Live>,
    retry_at: Option<Instant>,
    backoff: Duration,
    timeouts_in_row: u32,
    last_problem: String,
    /// Controls whose problem was reported already: a camera lacking one says so once, not
    /// at every reconnect.
    reported: HashSet<u32>,
    control_problems: Vec<ControlProblem>,
}

impl CameraSource {
    /// A source for the camera that `connector` opens; nothing is opened until the first frame
    /// is asked for.
    pub fn new(connector: Box<dyn Connector>, opts: CameraOptions) -> CameraSource {
        CameraSource {
            backoff: opts.backoff_initial,
            connector,
            opts,
            live: None,
            retry_at: None,
            timeouts_in_row: 0,
            last_problem: String::new(),
            reported: HashSet::new(),
            control_problems: Vec::new(),
        }
    }

    /// The controls that could not be set so far, each once (they are also logged).
    pub fn control_problems(&self) -> &[ControlProblem] {
        &self.control_problems
    }

    /// Set the wanted controls. Nothing here is fatal: a camera without power line frequency
    /// or focus control still gives pictures, so problems are logged once and the stream goes on.
    fn apply_controls(&mut self, dev: &mut dyn CameraDevice) {
        let want = self.opts.controls;
        if want.is_empty() {
            return;
        }
        let problems = match dev.controls() {
            Ok(listed) => controls::apply(&listed, &want, &mut |id, v| dev.set_control(id, v)),
            Err(e) => vec![ControlProblem::List(controls::describe_control_error(&e))],
        };
        for problem in problems {
            if self.reported.insert(problem.control()) {
                tracing::warn!("camera {}: {problem}", self.connector.name());
                self.control_problems.push(problem);
            }
        }
    }

    /// The negotiated format, while connected.
    pub fn format(&self) -> Option<StreamFormat> {
        self.live.as_ref().map(|l| l.fmt)
    }

    fn connect(&mut self) -> Result<Live, CameraError> {
        let mut dev = self.connector.connect().map_err(CameraError::Open)?;
        let formats = dev.formats().map_err(CameraError::Formats)?;
        let (pf, w, h) = choose_format(
            &formats,
            (self.opts.width, self.opts.height),
            self.opts.format,
        )?;
        let set = dev
            .set_format(pf.fourcc(), w, h)
            .map_err(|error| CameraError::SetFormat {
                format: pf,
                width: w,
                height: h,
                error,
            })?;
        // Believe the driver, not the request: it may have picked another size or format.
        let format =
            PixelFormat::from_fourcc(set.fourcc).ok_or_else(|| CameraError::DriverFormat {
                asked: pf,
                set: fourcc_str(set.fourcc),
            })?;
        if set.width == 0 || set.height == 0 {
            return Err(CameraError::EmptySize(set.width, set.height));
        }
        dev.start().map_err(CameraError::Start)?;
        // Last, once the stream is set up, so that nothing in the format negotiation undoes them.
        self.apply_controls(dev.as_mut());
        Ok(Live {
            dev,
            fmt: StreamFormat {
                format,
                width: set.width,
                height: set.height,
                bytes_per_line: set.bytes_per_line,
            },
        })
    }

    fn unavailable(&self, reason: String) -> SourceError {
        SourceError::Unavailable {
            source_name: self.connector.name(),
            reason,
        }
    }

    fn schedule_retry(&mut self, problem: String) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.opts.backoff_max);
        self.last_problem = problem;
    }
}

impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        if self.live.is_none() {
            if let Some(at) = self.retry_at {
                let now = Instant::now();
                if at > now {
                    // Wait for the retry, but never longer than one frame timeout.
                    std::thread::sleep((at - now).min(self.opts.timeout));
                    if Instant::now() < at {
                        // The same words every time, so a caller can show them once.
                        return Err(self.unavailable(format!("{}; retrying", self.last_problem)));
                    }
                }
            }
            match self.connect() {
                Ok(live) => {
                    self.live = Some(live);
                    self.retry_at = None;
                    self.backoff = self.opts.backoff_initial;
                    self.timeouts_in_row = 0;
                }
                Err(problem) => {
                    let problem = problem.to_string();
                    self.schedule_retry(problem.clone());
                    return Err(self.unavailable(problem));
                }
            }
        }

        let live = self.live.as_mut().expect("connected above");
        let fmt = live.fmt;
        let mut converted = None;
        let got = live.dev.dequeue(self.opts.timeout, &mut |buf, used| {
            converted = Some(frame_from_buffer(&fmt, buf, used));
        });
        match got {
            Ok(()) => {
                self.timeouts_in_row = 0;
                match converted {
                    Some(Ok(frame)) => Ok(frame),
                    Some(Err(e)) => Err(SourceError::BadFrame {
                        source_name: self.connector.name(),
                        reason: e.to_string(),
                    }),
                    None => Err(SourceError::BadFrame {
                        source_name: self.connector.name(),
                        reason: "the device returned no buffer".into(),
                    }),
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock =>
            {
                self.timeouts_in_row += 1;
                if self.timeouts_in_row >= self.opts.stall_after {
                    // Restart the stream: close now, reopen on the next call.
                    self.live = None;
                    self.retry_at = None;
                    self.timeouts_in_row = 0;
                }
                Err(SourceError::Timeout {
                    source_name: self.connector.name(),
                    waited: self.opts.timeout,
                })
            }
            Err(e) => {
                let problem = describe_io_error(&e);
                self.live = None;
                self.backoff = self.opts.backoff_initial;
                self.schedule_retry(problem.clone());
                Err(self.unavailable(problem))
            }
        }
    }

    fn name(&self) -> String {
        self.connector.name()
    }
}

#[cfg(test)]
mod tests;
