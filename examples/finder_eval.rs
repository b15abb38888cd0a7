//! Film-finder evaluation on simulated camera photos of real test-split films.
//!
//! cargo run --release --example finder_eval -- /work/shared/cxr [N=200] [--split test|val]
//!     [--seed-base 1000] [--out DIR] [--dump DIR] [--size 640x480]
//!
//! Development happens on `--split val`; the acceptance figures are reported on `test` (the
//! default) with the default seed base 1000, and with a second seed base (e.g. 5000) as a check
//! that nothing was fitted to one set of frames.
//!
//! Every N-th film of the split (label `other` skipped, fixed order) is rendered by the simulator with
//! a fixed seed and a severity sweep; 80% of the frames hold the whole film, 10% a cut-off film
//! and 10% no film. `--out` writes the rectified films (for a later classification comparison),
//! `--dump` the simulated camera frames; `--one FILE` runs the finder on a single image.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cxr_edge::capture::{decode_image, read_limited, Limits};
use cxr_edge::film::gates::{auto_is_bare_film, check_photo, looks_inverted};
use cxr_edge::film::simulate::{simulate, Placement, SimOptions};
use cxr_edge::film::{find_film, rectify, FindError};
use cxr_edge::pixels::Frame;

#[path = "common/manifest.rs"]
mod manifest;
use manifest::Row;

/// `n` films of `split` (label `other` excluded), every k-th so that all classes and sources
/// appear.
fn split_rows(root: &Path, split: &str, n: usize) -> Result<Vec<Row>> {
    let mut rows = manifest::split_rows(root, split)?;
    rows.retain(|r| r.label != "other");
    if rows.is_empty() {
        bail!("no {split} rows in the manifest");
    }
    let stride = (rows.len() as f64 / n as f64).max(1.0);
    Ok((0..n.min(rows.len()))
        .map(|i| rows[(i as f64 * stride) as usize].clone())
        .collect())
}

fn save(f: &Frame, path: &Path) -> Result<()> {
    f.to_luma8().save(path)?;
    Ok(())
}

fn pct(v: &[f32], q: f32) -> f32 {
    if v.is_empty() {
        return f32::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    s[((s.len() - 1) as f32 * q).round() as usize]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let (mut out, mut dump) = (None::<PathBuf>, None::<PathBuf>);
    let mut size = (640usize, 480usize);
    let mut split = "test".to_string();
    let mut seed_base = 1000u64;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = Some(it.next().context("--out DIR")?.into()),
            "--size" => {
                let v = it.next().context("--size WxH")?;
                let (a, b) = v.split_once('x').context("--size WxH")?;
                size = (a.parse()?, b.parse()?);
            }
            "--split" => split = it.next().context("--split test|val")?,
            "--seed-base" => seed_base = it.next().context("--seed-base N")?.parse()?,
            "--dump" => dump = Some(it.next().context("--dump DIR")?.into()),
            "--one" => {
                // Diagnose a single camera frame (e.g. one written by --dump).
                let p = PathBuf::from(it.next().context("--one FILE")?);
                let f = decode_image(&read_limited(&p, 1 << 26)?, &Limits::default())?;
                println!("{:?} bare={}", find_film(&f), auto_is_bare_film(&f));
                return Ok(());
            }
            _ => pos.push(a),
        }
    }
    let root = PathBuf::from(
        pos.first()
            .context("usage: finder_eval DATA_DIR [N] [--out DIR] [--dump DIR]")?,
    );
    let n: usize = pos.get(1).map(|s| s.parse()).transpose()?.unwrap_or(200);
    for d in out.iter().chain(dump.iter()) {
        std::fs::create_dir_all(d)?;
    }
    let rows = split_rows(&root, &split, n)?;
    let limits = Limits::default();
    let mut failures = Vec::new();

    let (mut errs, mut times) = (Vec::new(), Vec::new());
    let (
        mut good_n,
        mut good_rejected,
        mut cut_n,
        mut cut_rejected,
        mut cut_as_cut,
        mut absent_n,
        mut absent_rejected,
        mut absent_nofilm,
    ) = (0, 0, 0, 0, 0, 0, 0, 0);
    let (mut bare_ok, mut photo_ok, mut inv_fp, mut inv_tp, mut gate_warn) =
        (0, 0, 0, 0, std::collections::BTreeMap::<&str, usize>::new());
    let mut photo_by_kind = [(0usize, 0usize); 3];
    for (i, row) in rows.iter().enumerate() {
        let bytes = read_limited(&root.join(&row.path), limits.max_file_bytes)?;
        let film = decode_image(&bytes, &limits).with_context(|| row.path.clone())?;
        // Bare digital films: the auto mode must take them as films, and they are upright.
        let bare = auto_is_bare_film(&film);
        bare_ok += bare as usize;
        if !bare {
            failures.push(format!("{i} bare film taken as a photo: {}", row.path));
        }
        inv_fp += looks_inverted(&film) as usize;
        inv_tp += looks_inverted(&cxr_edge::film::simulate::invert(&film)) as usize;

        let placement = match i % 10 {
            8 => Placement::CutOff,
            9 => Placement::Absent,
            _ => Placement::Inside,
        };
        let severity = (i % 11) as f32 / 10.0;
        let sim = simulate(
            &film,
            &SimOptions::new(size.0, size.1, severity, placement, seed_base + i as u64),
        );
        let taken_as_photo = !auto_is_bare_film(&sim.frame);
        photo_ok += taken_as_photo as usize;
        let kind = match placement {
            Placement::Inside => 0,
            Placement::CutOff => 1,
            _ => 2,
        };
        photo_by_kind[kind].0 += taken_as_photo as usize;
        photo_by_kind[kind].1 += 1;
        if let Some(d) = &dump {
            save(
                &sim.frame,
                &d.join(format!("{i:04}-{:?}-s{severity:.1}.png", placement)),
            )?;
        }
        let t0 = Instant::now();
        let res = find_film(&sim.frame);
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        match placement {
            Placement::Inside => {
                good_n += 1;
                let truth = sim.corners.unwrap();
                let diag = ((truth[0][0] - truth[2][0]).hypot(truth[0][1] - truth[2][1]))
                    .max((truth[1][0] - truth[3][0]).hypot(truth[1][1] - truth[3][1]));
                match &res {
                    Ok(f) => {
                        let e = (0..4)
                            .map(|k| {
                                (f.corners[k][0] - truth[k][0]).hypot(f.corners[k][1] - truth[k][1])
                            })
                            .fold(0f32, f32::max)
                            / diag;
                        errs.push(e);
                        if e > 0.02 {
                            let r = |q: &[[f32; 2]; 4]| q.map(|p| [p[0].round(), p[1].round()]);
                            failures.push(format!(
                                "{i} sev {severity:.1} err {:.1}% {:?} hand={} glare={} found {:?} truth {:?}",
                                e * 100.0,
                                sim.scene,
                                sim.had_hand,
                                sim.had_glare,
                                r(&f.corners),
                                r(&truth)
                            ));
                        }
                        if let Some(o) = &out {
                            let (w, h) = (film.width.min(512), film.height.min(512));
                            if let Some(r) = rectify(&sim.frame, &f.corners, w, h) {
                                save(&r, &o.join(format!("{i:04}-{}.png", row.label)))?;
                            }
                        }
                        if let Ok(rep) = check_photo(&sim.frame) {
                            for w in rep.warnings {
                                *gate_warn.entry(w.code.as_str()).or_default() += 1;
                            }
                        }
                    }
                    Err(e) => {
                        good_rejected += 1;
                        failures.push(format!(
                            "{i} sev {severity:.1} rejected: {e} {:?} hand={} glare={}",
                            sim.scene, sim.had_hand, sim.had_glare
                        ));
                    }
                }
            }
            Placement::CutOff => {
                cut_n += 1;
                cut_rejected += res.is_err() as usize;
                cut_as_cut += matches!(res, Err(FindError::CutOff)) as usize;
                if res.is_ok() {
                    failures.push(format!(
                        "{i} sev {severity:.1} cut-off frame accepted {:?}",
                        sim.scene
                    ));
                }
            }
            _ => {
                absent_n += 1;
                absent_rejected += res.is_err() as usize;
                absent_nofilm += matches!(res, Err(FindError::NoFilm)) as usize;
                if res.is_ok() {
                    failures.push(format!(
                        "{i} sev {severity:.1} empty frame accepted {:?}",
                        sim.scene
                    ));
                }
            }
        }
    }
    let within = errs.iter().filter(|&&e| e <= 0.02).count();
    println!(
        "films: {} {split} images from {}, seeds {seed_base}..{}",
        rows.len(),
        root.display(),
        seed_base + rows.len() as u64
    );
    println!(
        "good frames: {good_n}; corner error <= 2% of diagonal: {within}/{good_n} = {:.1}%",
        100.0 * within as f32 / good_n.max(1) as f32
    );
    println!(
        "  corner error (max of 4, % of diagonal) on found films: median {:.2}%, p95 {:.2}%",
        100.0 * pct(&errs, 0.5),
        100.0 * pct(&errs, 0.95)
    );
    println!("  false rejections of good frames: {good_rejected}/{good_n}");
    println!("cut-off frames rejected: {cut_rejected}/{cut_n} ({cut_as_cut} as cut-off)");
    println!("no-film frames rejected: {absent_rejected}/{absent_n} ({absent_nofilm} as no film)");
    let mean_t = times.iter().sum::<f64>() / times.len().max(1) as f64;
    let ts: Vec<f32> = times.iter().map(|&t| t as f32).collect();
    println!(
        "finder time per {}x{} frame: mean {mean_t:.1} ms, p95 {:.1} ms",
        size.0,
        size.1,
        pct(&ts, 0.95)
    );
    println!("auto mode: bare films taken as bare {bare_ok}/{}, camera frames taken as photos {photo_ok}/{}", rows.len(), rows.len());
    println!(
        "  camera frames taken as photos by type: good {}/{}, cut-off {}/{}, no film {}/{}",
        photo_by_kind[0].0,
        photo_by_kind[0].1,
        photo_by_kind[1].0,
        photo_by_kind[1].1,
        photo_by_kind[2].0,
        photo_by_kind[2].1
    );
    println!(
        "inverted check: bare films flagged {inv_fp}/{}, inverted films flagged {inv_tp}/{}",
        rows.len(),
        rows.len()
    );
    println!("gate warnings on found films: {gate_warn:?}");
    for f in failures.iter().take(60) {
        println!("  {f}");
    }
    Ok(())
}
