//! Write simulated 640x480 camera photos of a bundled film (a film on a light box, the finder
//! accepts each) as PNG frames, for `cxr-edge run --source frames:DIR` without a camera
//! (`scripts/bench-process` plays them for its memory run). Research use only; simulated
//! photos are not real photos.
//!
//! cargo run --release --example photo_frames -- OUT_DIR [--count 1] [--size 640x480]

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
        let path = out.join(format!("frame-{written:04}.png"));
        sim.frame.to_luma8().save(&path)?;
        written += 1;
    }
    anyhow::ensure!(written == count, "only {written} usable frames");
    println!("{written} frames in {}", out.display());
    Ok(())
}
