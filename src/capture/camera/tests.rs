//! The camera source against a scripted fake device: negotiation, `bytesused`, padding,
//! timeouts, stalls, unplug and replug.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::super::pixfmt::encode_frame;
use super::*;

mod controls;

enum Step {
    Frame(Vec<u8>),
    Timeout,
    Errno(i32),
}

struct Shared {
    plugged: bool,
    connects: u32,
    formats: Vec<FormatInfo>,
    /// What the driver sets instead of what was asked, if anything.
    driver_sets: Option<RawFormat>,
    requested: Vec<([u8; 4], u32, u32)>,
    steps: VecDeque<Step>,
    buffer_len: usize,
    /// The controls the device lists; a fresh connect starts them from their defaults, as a
    /// replugged camera does.
    controls: Vec<ControlInfo>,
    /// Every `set_control` call, in order, refused ones too.
    set: Vec<(u32, i64)>,
    /// Controls the driver refuses, with the errno it answers.
    refuse: Vec<(u32, i32)>,
    /// The errno listing the controls fails with, if it does.
    list_error: Option<i32>,
}

#[derive(Clone)]
struct Fake(Arc<Mutex<Shared>>);

impl Fake {
    fn new(formats: Vec<FormatInfo>) -> Fake {
        Fake(Arc::new(Mutex::new(Shared {
            plugged: true,
            connects: 0,
            formats,
            driver_sets: None,
            requested: Vec::new(),
            steps: VecDeque::new(),
            buffer_len: 1 << 16,
            controls: Vec::new(),
            set: Vec::new(),
            refuse: Vec::new(),
            list_error: None,
        })))
    }
    fn with<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
    fn push(&self, step: Step) {
        self.with(|s| s.steps.push_back(step));
    }
    fn source(&self, opts: CameraOptions) -> CameraSource {
        CameraSource::new(Box::new(self.clone()), opts)
    }
}

impl Connector for Fake {
    fn connect(&mut self) -> io::Result<Box<dyn CameraDevice>> {
        self.with(|s| {
            if !s.plugged {
                return Err(io::Error::from_raw_os_error(ENOENT));
            }
            s.connects += 1;
            for c in &mut s.controls {
                c.value = Some(c.default);
            }
            Ok(())
        })?;
        Ok(Box::new(self.clone()))
    }
    fn name(&self) -> String {
        "fake0".into()
    }
}

impl CameraDevice for Fake {
    fn formats(&mut self) -> io::Result<Vec<FormatInfo>> {
        Ok(self.with(|s| s.formats.clone()))
    }
    fn set_format(&mut self, fourcc: [u8; 4], width: u32, height: u32) -> io::Result<RawFormat> {
        Ok(self.with(|s| {
            s.requested.push((fourcc, width, height));
            s.driver_sets.unwrap_or(RawFormat {
                fourcc,
                width,
                height,
                bytes_per_line: 0,
            })
        }))
    }
    fn start(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn controls(&mut self) -> io::Result<Vec<ControlInfo>> {
        self.with(|s| match s.list_error {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(s.controls.clone()),
        })
    }
    fn set_control(&mut self, id: u32, value: i64) -> io::Result<()> {
        self.with(|s| {
            s.set.push((id, value));
            if let Some(&(_, e)) = s.refuse.iter().find(|(r, _)| *r == id) {
                return Err(io::Error::from_raw_os_error(e));
            }
            match s.controls.iter_mut().find(|c| c.id == id) {
                Some(c) => {
                    c.value = Some(value);
                    Ok(())
                }
                None => Err(io::Error::from_raw_os_error(22)),
            }
        })
    }
    fn dequeue(&mut self, _timeout: Duration, f: &mut dyn FnMut(&[u8], usize)) -> io::Result<()> {
        let (step, len) = self.with(|s| {
            if !s.plugged {
                return (Some(Step::Errno(ENODEV)), 0);
            }
            (s.steps.pop_front(), s.buffer_len)
        });
        match step {
            Some(Step::Frame(bytes)) => {
                // A mapped buffer is bigger than the frame and holds stale bytes after it.
                let mut buf = vec![0xEE; len.max(bytes.len())];
                buf[..bytes.len()].copy_from_slice(&bytes);
                f(&buf, bytes.len());
                Ok(())
            }
            Some(Step::Errno(e)) => Err(io::Error::from_raw_os_error(e)),
            Some(Step::Timeout) | None => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

fn fmt(code: &[u8; 4], sizes: &[(u32, u32)]) -> FormatInfo {
    FormatInfo {
        fourcc: *code,
        description: String::from_utf8_lossy(code).into_owned(),
        sizes: sizes
            .iter()
            .map(|&(w, h)| FrameSizes::Discrete(w, h))
            .collect(),
    }
}

fn quick() -> CameraOptions {
    CameraOptions {
        width: 64,
        height: 48,
        format: None,
        timeout: Duration::from_millis(5),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(80),
        stall_after: 3,
        controls: CameraControls::default(),
    }
}

fn test_frame(w: usize, h: usize, seed: usize) -> Frame {
    Frame::new(
        w,
        h,
        (0..w * h).map(|i| ((i * 13 + seed) % 251) as f32).collect(),
    )
}

#[test]
fn chooses_a_readable_format_that_reaches_the_wanted_size() {
    let formats = vec![
        fmt(b"H264", &[(1920, 1080)]),
        fmt(b"YUYV", &[(640, 480), (1280, 720)]),
        fmt(b"MJPG", &[(640, 480), (1280, 720), (1920, 1080)]),
    ];
    assert_eq!(
        choose_format(&formats, (1280, 720), None).unwrap(),
        (PixelFormat::Mjpeg, 1280, 720)
    );
    // A format that only reaches the size loses to none that does not... and YUYV wins
    // when MJPEG is too small.
    let formats = vec![
        fmt(b"MJPG", &[(640, 480)]),
        fmt(b"YUYV", &[(1280, 720), (1920, 1080)]),
    ];
    assert_eq!(
        choose_format(&formats, (1280, 720), None).unwrap(),
        (PixelFormat::Yuyv, 1280, 720)
    );
    // Nothing reaches it: the largest.
    assert_eq!(
        choose_format(
            &[fmt(b"GREY", &[(320, 240), (752, 480)])],
            (1280, 720),
            None
        )
        .unwrap(),
        (PixelFormat::Grey, 752, 480)
    );
    let e = choose_format(&formats, (1280, 720), Some(PixelFormat::Grey))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "the camera does not offer GREY (it offers: MJPG, YUYV)");
    let e = choose_format(&[fmt(b"H264", &[(640, 480)])], (640, 480), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no format cxr-edge can read (it offers: H264"),
        "{e}"
    );
}

#[test]
fn stepwise_sizes_snap_to_the_grid_at_or_above_the_request() {
    let sizes = [FrameSizes::Stepwise {
        min: (32, 32),
        max: (2592, 1944),
        step: (16, 8),
    }];
    assert_eq!(best_size(&sizes, (1270, 717)), Some((1280, 720)));
    assert_eq!(best_size(&sizes, (4000, 3000)), Some((2592, 1944)));
    assert_eq!(best_size(&[], (640, 480)), None);
}

/// A driver's nonsense ranges give a size, not a panic or a wrapped one: a minimum above the
/// maximum (clamp panicked) and a grid rounding past u32::MAX (wrapped to a tiny size).
#[test]
fn nonsense_stepwise_ranges_neither_panic_nor_wrap() {
    let inverted = [FrameSizes::Stepwise {
        min: (1280, 720),
        max: (640, 480),
        step: (16, 8),
    }];
    assert_eq!(best_size(&inverted, (800, 600)), Some((1280, 720)));
    let huge_step = [FrameSizes::Stepwise {
        min: (16, 16),
        max: (u32::MAX, u32::MAX),
        step: (u32::MAX - 1, u32::MAX - 1),
    }];
    assert_eq!(
        best_size(&huge_step, (640, 480)),
        Some((u32::MAX, u32::MAX))
    );
}

#[test]
fn frames_use_bytesused_and_the_format_the_driver_set() {
    let fake = Fake::new(vec![fmt(b"YUYV", &[(64, 48)]), fmt(b"GREY", &[(64, 48)])]);
    // The driver answers with padded rows: 64 px of YUYV is 128 bytes, it uses 160.
    fake.with(|s| {
        s.driver_sets = Some(RawFormat {
            fourcc: *b"YUYV",
            width: 64,
            height: 48,
            bytes_per_line: 160,
        })
    });
    let f = test_frame(64, 48, 1);
    let mut padded = Vec::new();
    for row in encode_frame(&f, PixelFormat::Yuyv).chunks(128) {
        padded.extend_from_slice(row);
        padded.extend_from_slice(&[0x11; 32]);
    }
    fake.push(Step::Frame(padded));
    let mut src = fake.source(CameraOptions {
        format: Some(PixelFormat::Grey),
        ..quick()
    });
    assert_eq!(src.next_frame().unwrap(), f);
    assert_eq!(fake.with(|s| s.requested.clone()), vec![(*b"GREY", 64, 48)]);
    assert_eq!(src.format().unwrap().format, PixelFormat::Yuyv);
}

#[test]
fn mjpeg_frames_in_oversized_buffers_decode() {
    let fake = Fake::new(vec![fmt(b"MJPG", &[(64, 48)])]);
    let f = test_frame(64, 48, 2);
    fake.push(Step::Frame(encode_frame(&f, PixelFormat::Mjpeg)));
    let mut truncated = encode_frame(&f, PixelFormat::Mjpeg);
    truncated.truncate(truncated.len() / 4);
    fake.push(Step::Frame(truncated));
    fake.push(Step::Frame(encode_frame(&f, PixelFormat::Mjpeg)));
    let mut src = fake.source(quick());
    assert_eq!(src.next_frame().unwrap().width, 64);
    // A corrupt frame is one bad frame; the stream goes on.
    assert!(matches!(
        src.next_frame(),
        Err(SourceError::BadFrame { .. })
    ));
    assert_eq!(src.next_frame().unwrap().height, 48);
    assert_eq!(fake.with(|s| s.connects), 1);
}

#[test]
fn short_frames_are_bad_frames_not_panics() {
    let fake = Fake::new(vec![fmt(b"GREY", &[(64, 48)])]);
    fake.push(Step::Frame(vec![9; 64 * 47]));
    fake.push(Step::Frame(vec![9; 64 * 48]));
    let mut src = fake.source(quick());
    let e = src.next_frame().unwrap_err().to_string();
    assert!(
        e.contains("short GREY frame: 3008 bytes, 3072 needed"),
        "{e}"
    );
    assert_eq!(src.next_frame().unwrap().mean(), 9.0);
}

#[test]
fn timeouts_return_and_a_stalled_stream_is_restarted() {
    let fake = Fake::new(vec![fmt(b"GREY", &[(64, 48)])]);
    fake.push(Step::Timeout);
    let mut src = fake.source(quick());
    for _ in 0..2 {
        assert!(matches!(src.next_frame(), Err(SourceError::Timeout { .. })));
    }
    assert_eq!(fake.with(|s| s.connects), 1);
    assert!(matches!(src.next_frame(), Err(SourceError::Timeout { .. })));
    // Third timeout in a row: the stream was closed and is reopened at once.
    fake.push(Step::Frame(vec![5; 64 * 48]));
    assert_eq!(src.next_frame().unwrap().mean(), 5.0);
    assert_eq!(fake.with(|s| s.connects), 2);
}

#[test]
fn unplug_is_reported_and_the_camera_comes_back_after_replug() {
    let fake = Fake::new(vec![fmt(b"GREY", &[(64, 48)])]);
    fake.push(Step::Frame(vec![1; 64 * 48]));
    let mut src = fake.source(quick());
    assert_eq!(src.next_frame().unwrap().mean(), 1.0);

    fake.with(|s| s.plugged = false);
    let e = src.next_frame().unwrap_err();
    assert!(
        matches!(&e, SourceError::Unavailable { reason, .. } if reason.contains("unplugged")),
        "{e}"
    );
    // While it is away every call comes back within about one frame timeout (no hang), and
    // reconnect attempts are spaced out (backoff), not made on every call.
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < Duration::from_millis(150) {
        let t = Instant::now();
        assert!(matches!(
            src.next_frame(),
            Err(SourceError::Unavailable { .. })
        ));
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        calls += 1;
    }
    assert!(calls > 5, "{calls}");
    assert_eq!(
        fake.with(|s| s.connects),
        1,
        "no connect can succeed while unplugged"
    );

    fake.with(|s| {
        s.plugged = true;
        s.steps.push_back(Step::Frame(vec![2; 64 * 48]));
    });
    let deadline = Instant::now() + Duration::from_secs(2);
    let frame = loop {
        match src.next_frame() {
            Ok(f) => break f,
            Err(SourceError::Unavailable { .. }) if Instant::now() < deadline => continue,
            Err(e) => panic!("camera did not come back: {e}"),
        }
    };
    assert_eq!(frame.mean(), 2.0);
    assert_eq!(fake.with(|s| s.connects), 2);
}

#[test]
fn an_unreadable_driver_format_is_a_clear_error() {
    let fake = Fake::new(vec![fmt(b"YUYV", &[(64, 48)])]);
    fake.with(|s| {
        s.driver_sets = Some(RawFormat {
            fourcc: *b"NV12",
            width: 64,
            height: 48,
            bytes_per_line: 64,
        })
    });
    let mut src = fake.source(quick());
    let e = src.next_frame().unwrap_err().to_string();
    assert!(
        e.contains("asked for YUYV, the driver set NV12 which cxr-edge cannot read"),
        "{e}"
    );
}

#[test]
fn device_errors_read_as_advice() {
    let words = |n| describe_io_error(&io::Error::from_raw_os_error(n));
    assert!(words(EACCES).contains("video` group"));
    assert!(words(EBUSY).contains("another program"));
    assert!(words(ENODEV).contains("unplugged"));
}
