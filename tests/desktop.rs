//! The kiosk in a desktop window (`display = "window"`) on a real X server: Xvfb from Debian's
//! `xvfb` package at 800x480, as on a 7" HDMI screen. The binary runs as the desktop autostart
//! entry starts it, with a camera played from files; the test reads the screen back with `xwd`
//! (package `x11-apps`), types Enter and clicks the on-screen buttons with `xdotool`, and checks
//! what the screen shows and what was recorded. `scripts/setup --tests` installs all three.
//!
//! The screenshots are kept in `target/desktop-test/` (README links copies in `docs/screens/`).
#![cfg(all(feature = "window", target_os = "linux"))]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cxr_edge::capture::{decode_image, samples, Limits};
use cxr_edge::film::find_film;
use cxr_edge::film::simulate::{simulate, Placement, SimOptions};
use image::RgbImage;

const W: u32 = 800;
const H: u32 = 480;
/// Analyses run on the real model in a debug build beside a test suite on 2 cores.
const T: Duration = Duration::from_secs(120);

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn need(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "no {tool}: install Debian's `{package}` package (scripts/setup --tests does)"
    );
}

/// Start Xvfb on a display number it picks itself; returns it and `:N`.
fn start_xvfb() -> (Killed, String) {
    need("Xvfb", "xvfb");
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            &format!("{W}x{H}x24"),
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut num = String::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        num.push(byte[0] as char);
    }
    assert!(
        !num.trim().is_empty(),
        "Xvfb did not say which display it took"
    );
    (Killed(child), format!(":{}", num.trim()))
}

/// The X screen as an image, read with `xwd` (a ZPixmap of 24/32-bit pixels).
fn screenshot(display: &str) -> RgbImage {
    let out = Command::new("xwd")
        .args(["-root", "-silent", "-display", display])
        .output()
        .expect("xwd (package x11-apps)");
    assert!(out.status.success(), "xwd failed");
    parse_xwd(&out.stdout)
}

fn parse_xwd(b: &[u8]) -> RgbImage {
    let u = |i: usize| u32::from_be_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
    let (header, format, width, height) = (u(0) as usize, u(2), u(4), u(5));
    let (byte_order, bpp, line, ncolors) = (u(7), u(11), u(12) as usize, u(19) as usize);
    let (rmask, gmask, bmask) = (u(14), u(15), u(16));
    assert_eq!((format, bpp), (2, 32), "xwd: expected a 32-bit ZPixmap");
    let data = &b[header + ncolors * 12..];
    let shift = |m: u32| m.trailing_zeros();
    RgbImage::from_fn(width, height, |x, y| {
        let o = y as usize * line + x as usize * 4;
        let px: [u8; 4] = data[o..o + 4].try_into().unwrap();
        let v = if byte_order == 0 {
            u32::from_le_bytes(px)
        } else {
            u32::from_be_bytes(px)
        };
        image::Rgb([
            ((v & rmask) >> shift(rmask)) as u8,
            ((v & gmask) >> shift(gmask)) as u8,
            ((v & bmask) >> shift(bmask)) as u8,
        ])
    })
}

fn xdotool(display: &str, args: &[&str]) {
    need("xdotool", "xdotool");
    let ok = Command::new("xdotool")
        .args(args)
        .env("DISPLAY", display)
        .status()
        .unwrap()
        .success();
    assert!(ok, "xdotool {args:?} failed");
}

/// Photos of a sample film on the light box, as a camera would send them.
fn write_frames(dir: &Path) {
    let s = samples::all()
        .iter()
        .find(|s| s.name == "nih-normal-1.png")
        .unwrap();
    let film = decode_image(s.bytes, &Limits::default()).unwrap();
    let photo = (0..100)
        .map(|seed| {
            simulate(
                &film,
                &SimOptions::new(640, 480, 0.15, Placement::Inside, seed),
            )
        })
        .find(|p| find_film(&p.frame).is_ok())
        .unwrap();
    let grey = photo.frame.to_luma8();
    for i in 0..3 {
        grey.save(dir.join(format!("frame-{i}.png"))).unwrap();
    }
}

fn records(dir: &Path) -> usize {
    // Before the service has opened the folder there is nothing to read.
    cxr_edge::store::read_all(dir).map_or(0, |r| r.len())
}

/// Wait until `f` holds on two screenshots in a row that are the same (the screen has settled:
/// the preview's hint changes once the film is steady), taking screenshots; panics with the
/// last one saved when it does not come.
fn wait_for(display: &str, what: &str, mut f: impl FnMut(&RgbImage) -> bool) -> RgbImage {
    let start = Instant::now();
    let mut last: Option<RgbImage> = None;
    loop {
        let shot = screenshot(display);
        if f(&shot) && last.as_ref() == Some(&shot) {
            return shot;
        }
        last = Some(shot.clone());
        if start.elapsed() > T {
            let path = out_dir().join(format!("timeout-{}.png", what.replace(' ', "-")));
            shot.save(&path).unwrap();
            panic!(
                "{what}: not seen within {T:?} (last screen: {})",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn out_dir() -> PathBuf {
    let d = common::root().join("target/desktop-test");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Share of pixels that differ between two screenshots.
fn differ(a: &RgbImage, b: &RgbImage) -> f64 {
    let n = a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count();
    n as f64 / f64::from(a.width() * a.height())
}

/// The screen as the kiosk drew it: the same pixels `ui::render` gives for the bottom strip
/// (research-use banner and on-screen buttons do not depend on the camera).
fn bottom_matches_render(shot: &RgbImage, rows: u32) -> bool {
    let want = cxr_edge::ui::render(
        &cxr_edge::ui::Screen::WithTouchButtons(&cxr_edge::ui::Screen::Analysing),
        W,
        H,
    );
    let mut same = 0usize;
    for y in H - rows..H {
        for x in 0..W {
            if shot.get_pixel(x, y) == want.get_pixel(x, y) {
                same += 1;
            }
        }
    }
    same as f64 / f64::from(W * rows) > 0.98
}

#[test]
fn the_kiosk_runs_in_a_desktop_window_with_keys_and_clicks() {
    // Under qemu-user (scripts/test-arm) the ARM binary would load the ARM libxcb at run time,
    // which the cross sysroot does not have; the window code is the same on every target, and
    // on an ARM board (no runner) this test runs as it does here.
    if let Ok(runner) = std::env::var("CXR_EDGE_TEST_RUNNER") {
        if !runner.trim().is_empty() {
            eprintln!("skipped under {runner}: no X libraries for the emulated architecture");
            return;
        }
    }
    let (_x, display) = start_xvfb();
    let tmp = tempfile::tempdir().unwrap();
    let frames = tmp.path().join("frames");
    let results = tmp.path().join("results");
    std::fs::create_dir_all(&frames).unwrap();
    write_frames(&frames);
    let cfg = tmp.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "source = \"frames:{}\"\nauto_capture = false\ndisplay = \"auto\"\n\
             [model]\nmanifest = \"{}\"\nvariant = \"int8\"\n\
             [storage]\ndir = \"{}\"\nkeep_images = false\n\
             [buttons]\nkeyboard = false\nevdev = false\n",
            frames.display(),
            common::root().join("models/cxr-net.toml").display(),
            results.display()
        ),
    )
    .unwrap();
    // As the autostart entry starts it, but with `auto`: a desktop session must pick the window.
    let kiosk = common::command(Path::new(env!("CARGO_BIN_EXE_cxr-edge")))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("DISPLAY", &display)
        .env_remove("WAYLAND_DISPLAY")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut kiosk = Killed(kiosk);

    // The preview: the window covers the screen, with the on-screen buttons (a window has a
    // pointer) and the research-use banner along the bottom.
    let preview = wait_for(&display, "preview with buttons", |s| {
        bottom_matches_render(s, 90)
    });
    preview.save(out_dir().join("window-preview.png")).unwrap();
    assert_eq!(records(&results), 0);

    // Enter typed into the window is the capture key of the default key map.
    xdotool(&display, &["mousemove", "400", "100"]);
    xdotool(&display, &["key", "Return"]);
    let start = Instant::now();
    while records(&results) < 1 {
        assert!(start.elapsed() < T, "Enter in the window did not capture");
        std::thread::sleep(Duration::from_millis(200));
    }
    let result = wait_for(&display, "result screen", |s| differ(s, &preview) > 0.2);
    result.save(out_dir().join("window-result.png")).unwrap();

    // A click on Next (the right third of the on-screen buttons, the bottom quarter of the
    // screen) goes back to the preview; a click on Capture (the middle third) analyses again.
    let y = (H * 7 / 8).to_string();
    xdotool(&display, &["mousemove", "700", &y, "click", "1"]);
    wait_for(&display, "preview after Next", |s| {
        differ(s, &preview) < 0.05
    });
    xdotool(&display, &["mousemove", "400", &y, "click", "1"]);
    let start = Instant::now();
    while records(&results) < 2 {
        assert!(start.elapsed() < T, "a click on Capture did not capture");
        std::thread::sleep(Duration::from_millis(200));
    }

    // SIGTERM (logout, systemd) ends the kiosk cleanly.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(kiosk.0.id() as libc::pid_t, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = kiosk.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < T, "the kiosk did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut log = String::new();
    kiosk
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("display auto: a desktop window"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
    let _ = status;
}
