//! Write simulated 640x480 camera photos of a bundled film (a film on a light box, the finder
//! accepts each) as PNG frames, for `cxr-edge run --source frames:DIR` without a camera
//! (`scripts/bench-process` plays them for its memory run). Research use only; simulated
//! photos are not real photos.
//!
//! cargo run --release --example photo_frames -- OUT_DIR [--count 1] [--size 640x480]
//!     [--format png|yuyv|mjpeg]
//!
//! `yuyv` and `mjpeg` write what a USB camera sends for those formats (raw YUYV 4:2:2 with
//! BT.601 limited-range luma; a baseline colour JPEG per frame), for `scripts/system-test`, which
//! feeds them to a real V4L2 device (v4l2loopback) in a VM.

use anyhow::{Context, Result};
use cxr_edge::capture::{decode_image, samples, Limits};
use cxr_edge::film::gates::check_photo;
use cxr_edge::film::simulate::{simulate, Placement, SimOptions};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = std::path::PathBuf::from(args.first().context("usage: photo_frames OUT_DIR")?);
    let opt = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let count: usize = opt("--count").map_or(Ok(1), |s| s.parse())?;
    let (w, h) = opt("--size")
        .as_deref()
        .unwrap_or("640x480")
        .split_once('x')
        .map(|(w, h)| (w.parse::<usize>(), h.parse::<usize>()))
        .context("--size WxH")?;
    let (w, h) = (w?, h?);
    let format = opt("--format").unwrap_or_else(|| "png".into());
    anyhow::ensure!(
        matches!(format.as_str(), "png" | "yuyv" | "mjpeg"),
        "--format png, yuyv or mjpeg"
    );
    let s = samples::all()
        .iter()
        .find(|s| s.name == "nih-normal-1.png")
        .context("bundled film missing")?;
    let film = decode_image(s.bytes, &Limits::default())?;
    std::fs::create_dir_all(&out)?;
    let mut written = 0;
    for seed in 1..=1000u64 {
        if written == count {
            break;
        }
        let sim = simulate(&film, &SimOptions::new(w, h, 0.2, Placement::Inside, seed));
        if check_photo(&sim.frame).is_err() {
            continue;
        }
        let grey = sim.frame.to_luma8();
        match format.as_str() {
            "png" => grey.save(out.join(format!("frame-{written:04}.png")))?,
            "yuyv" => std::fs::write(out.join(format!("frame-{written:04}.yuyv")), yuyv(&grey))?,
            _ => std::fs::write(out.join(format!("frame-{written:04}.jpg")), mjpeg(&grey)?)?,
        }
        written += 1;
    }
    anyhow::ensure!(written == count, "only {written} usable frames");
    println!("{written} frames in {}", out.display());
    Ok(())
}

/// YUYV 4:2:2 as a UVC camera sends it: luma in BT.601 limited range (16..235), grey chroma.
fn yuyv(grey: &image::GrayImage) -> Vec<u8> {
    let mut out = Vec::with_capacity(grey.as_raw().len() * 2);
    for &v in grey.as_raw() {
        out.push((16 + (u32::from(v) * 219 + 127) / 255) as u8);
        out.push(128);
    }
    out
}

/// One MJPEG frame: a baseline colour JPEG, as webcams send (three components, not grey).
fn mjpeg(grey: &image::GrayImage) -> Result<Vec<u8>> {
    let rgb = image::DynamicImage::ImageLuma8(grey.clone()).to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(&rgb)?;
    Ok(out)
}
