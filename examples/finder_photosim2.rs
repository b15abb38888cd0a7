//! The film finder on renders of the second photo simulator (`models/eval/photosim2.py`), against
//! the true corners each render's `.json` records.
//!
//! cargo run --release --example finder_photosim2 -- DIR [--dump DIR] [--only NAME]
//!
//! For finder development on **val** renders only (`models/eval/README.md`: the test renders are
//! the yardstick and must not steer any choice). Prints, for the films fully in frame, how many
//! the finder refuses and why, and the worst-corner error of the quads it gives; `--dump` writes
//! a quarter-size picture of each miss (refusal or worst corner over 20 px) with the true corners
//! in green and the found ones in red, to look at.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cxr_edge::capture::{decode_image, read_limited, Limits};
use cxr_edge::film::filters::quantile;
use cxr_edge::film::{find_film, FindError};
use cxr_edge::pixels::Frame;
use image::{Rgb, RgbImage};

/// Largest corner distance after the best cyclic matching of the two corner orders.
fn worst_corner(truth: &[[f32; 2]; 4], found: &[[f32; 2]; 4]) -> f32 {
    (0..4)
        .map(|s| {
            (0..4)
                .map(|i| {
                    let (a, b) = (truth[i], found[(i + s) % 4]);
                    (a[0] - b[0]).hypot(a[1] - b[1])
                })
                .fold(0.0f32, f32::max)
        })
        .fold(f32::INFINITY, f32::min)
}

fn area(q: &[[f32; 2]; 4]) -> f32 {
    0.5 * (0..4)
        .map(|i| q[i][0] * q[(i + 1) % 4][1] - q[(i + 1) % 4][0] * q[i][1])
        .sum::<f32>()
        .abs()
}

fn dump(
    frame: &Frame,
    truth: &[[f32; 2]; 4],
    found: Option<&[[f32; 2]; 4]>,
    out: &Path,
) -> Result<()> {
    let s = 4usize;
    let (w, h) = (frame.width / s, frame.height / s);
    let mut img = RgbImage::new(w as u32, h as u32);
    for y in 0..h {
        for x in 0..w {
            let v = frame.pixel(x * s, y * s).clamp(0.0, 255.0) as u8;
            img.put_pixel(x as u32, y as u32, Rgb([v, v, v]));
        }
    }
    let mut line = |q: &[[f32; 2]; 4], c: Rgb<u8>| {
        for i in 0..4 {
            let (a, b) = (q[i], q[(i + 1) % 4]);
            for t in 0..=200 {
                let t = t as f32 / 200.0;
                let (x, y) = (
                    (a[0] + (b[0] - a[0]) * t) / s as f32,
                    (a[1] + (b[1] - a[1]) * t) / s as f32,
                );
                if x >= 0.0 && y >= 0.0 && (x as usize) < w && (y as usize) < h {
                    img.put_pixel(x as u32, y as u32, c);
                }
            }
        }
    };
    line(truth, Rgb([0, 255, 0]));
    if let Some(f) = found {
        line(f, Rgb([255, 0, 0]));
    }
    img.save(out)?;
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .with_target(false)
        .init();
    let mut args = std::env::args().skip(1);
    let (mut dir, mut dump_dir, mut only) = (None::<PathBuf>, None::<PathBuf>, None::<String>);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dump" => dump_dir = Some(args.next().context("--dump DIR")?.into()),
            "--only" => only = Some(args.next().context("--only NAME")?),
            _ => dir = Some(a.into()),
        }
    }
    let dir = dir.context("usage: finder_photosim2 DIR [--dump DIR] [--only NAME]")?;
    if let Some(d) = &dump_dir {
        std::fs::create_dir_all(d)?;
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .filter(|p| {
            only.as_ref()
                .is_none_or(|o| p.to_string_lossy().contains(o.as_str()))
        })
        .collect();
    names.sort();
    let (mut n_full, mut refused, mut errs) =
        (0usize, std::collections::BTreeMap::new(), Vec::new());
    let (mut n_cut, mut cut_taken) = (0usize, 0usize);
    for p in &names {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(p.with_extension("jpg.json"))?)?;
        if meta["fully_in_frame"] != serde_json::Value::Bool(true) {
            // A film with a corner outside the frame must be refused (cut off), never analysed
            // in part.
            if meta["corners_in_frame"] == serde_json::Value::Bool(false) {
                n_cut += 1;
                let frame = decode_image(&read_limited(p, 1 << 26)?, &Limits::default())?;
                if find_film(&frame).is_ok() {
                    cut_taken += 1;
                    println!("{} cut film taken", p.display());
                }
            }
            continue;
        }
        n_full += 1;
        let c = &meta["corners_px"];
        let truth: [[f32; 2]; 4] = std::array::from_fn(|i| {
            [
                c[i][0].as_f64().unwrap_or(0.0) as f32,
                c[i][1].as_f64().unwrap_or(0.0) as f32,
            ]
        });
        let frame = decode_image(&read_limited(p, 1 << 26)?, &Limits::default())?;
        let name = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let (found, miss) = match find_film(&frame) {
            Ok(f) => {
                let e = worst_corner(&truth, &f.corners);
                errs.push(e);
                // Found area over true area: above 1 the light box (or film plus box) was taken,
                // below 1 a part of the film.
                println!(
                    "{name} ok {e:.0}px area {:.2}",
                    area(&f.corners) / area(&truth)
                );
                (Some(f.corners), e > 20.0)
            }
            Err(e) => {
                let k = match e {
                    FindError::NoFilm => "no_film",
                    FindError::CutOff => "cut_off",
                    FindError::TooSmall { .. } => "too_small",
                };
                *refused.entry(k).or_insert(0usize) += 1;
                println!("{name} {k}");
                (None, true)
            }
        };
        if let (Some(d), true) = (&dump_dir, miss) {
            dump(
                &frame,
                &truth,
                found.as_ref(),
                &d.join(format!("{name}.png")),
            )?;
        }
    }
    // The finder's own quantile; NaN rather than its 0 when nothing was found.
    let q = |f: f32| {
        if errs.is_empty() {
            f32::NAN
        } else {
            quantile(&mut errs.clone(), f)
        }
    };
    let total_refused: usize = refused.values().sum();
    println!(
        "fully in frame {n_full}: refused {total_refused} ({:.1}%) {refused:?}; found {}: worst corner median {:.0} px, p90 {:.0} px, over 20 px {}",
        100.0 * total_refused as f32 / n_full.max(1) as f32,
        errs.len(),
        q(0.5),
        q(0.9),
        errs.iter().filter(|&&e| e > 20.0).count()
    );
    println!("a corner outside the frame {n_cut}: taken as a whole film {cut_taken}");
    Ok(())
}
