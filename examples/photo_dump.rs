//! Writes simulated camera photos of a split's films as the model would see them, for training
//! (models/train: `--photos DIR`). Research use only.
//!
//! cargo run --release --example photo_dump -- /work/shared/cxr OUT_DIR [--split train]
//!     [--variants 2] [--seed-base 700000] [--shard K/N] [--size 160]
//!
//! Every film of the split (all labels: a "not a chest film" image photographed on a light box
//! must stay "other") is rendered `--variants` times by `film::simulate` (640x480, film inside the
//! frame, severity drawn from the seed) and sent through the device's photo path
//! (`gates::check_photo`: find, rectify, invert back, stretch) and the model's area resize.
//! Output: OUT_DIR/photos-K.u16 (raw little-endian u16, value = pixel * 256, size x size per
//! record, pixels in [0, 255] before normalisation) and OUT_DIR/photos-K.csv (record, path,
//! variant, seed, severity, status): frames the gates block get status = the reason code and
//! no record. Seeds must not overlap the evaluation's (photo_eval uses 20000 + index).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cxr_edge::capture::{decode_image, read_limited, Limits};
use cxr_edge::film::gates::check_photo;
use cxr_edge::film::simulate::{simulate, Placement, Rng, SimOptions};
use cxr_edge::pixels::resize_area;

#[path = "common/manifest.rs"]
mod manifest;

fn main() -> Result<()> {
    let mut pos = Vec::new();
    let (mut split, mut variants, mut seed_base, mut size) =
        ("train".to_string(), 2usize, 700_000u64, 160usize);
    let (mut shard, mut shards) = (0usize, 1usize);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--split" => split = it.next().context("--split")?,
            "--variants" => variants = it.next().context("--variants")?.parse()?,
            "--seed-base" => seed_base = it.next().context("--seed-base")?.parse()?,
            "--size" => size = it.next().context("--size")?.parse()?,
            "--shard" => {
                let s = it.next().context("--shard K/N")?;
                let (k, n) = s.split_once('/').context("--shard K/N")?;
                (shard, shards) = (k.parse()?, n.parse()?);
            }
            _ => pos.push(PathBuf::from(a)),
        }
    }
    let [root, out] = &pos[..] else {
        bail!("usage: photo_dump DATA_DIR OUT_DIR [--split train] [--variants 2] [--shard K/N]");
    };
    if shards == 0 || shard >= shards {
        bail!("--shard K/N needs K < N");
    }
    std::fs::create_dir_all(out)?;
    let paths: Vec<String> = manifest::split_rows(root, &split)?
        .into_iter()
        .map(|r| r.path)
        .collect();
    let mut bin = std::io::BufWriter::new(std::fs::File::create(
        out.join(format!("photos-{shard}.u16")),
    )?);
    let mut csv = std::fs::File::create(out.join(format!("photos-{shard}.csv")))?;
    writeln!(csv, "record,path,variant,seed,severity,status")?;
    let limits = Limits::default();
    let mut record = 0usize;
    for (i, path) in paths.iter().enumerate() {
        if i % shards != shard {
            continue;
        }
        let film = decode_image(
            &read_limited(&root.join(path), limits.max_file_bytes)?,
            &limits,
        )
        .with_context(|| path.clone())?;
        for v in 0..variants {
            let seed = seed_base + (i * variants + v) as u64;
            let severity = Rng::new(seed ^ 0x5eed).f32();
            let sim = simulate(
                &film,
                &SimOptions::new(640, 480, severity, Placement::Inside, seed),
            );
            match check_photo(&sim.frame) {
                Ok(rep) => {
                    let small = resize_area(&rep.film, size, size);
                    for &p in &small.data {
                        let q = (p.clamp(0.0, 255.0) * 256.0).round() as u16;
                        bin.write_all(&q.to_le_bytes())?;
                    }
                    writeln!(csv, "{record},{path},{v},{seed},{severity:.3},ok")?;
                    record += 1;
                }
                Err(b) => writeln!(csv, ",{path},{v},{seed},{severity:.3},{}", b.reason.code)?,
            }
        }
        if i % 500 < shards {
            eprintln!("shard {shard}: {}/{}", i + 1, paths.len());
        }
    }
    bin.flush()?;
    eprintln!("shard {shard}: {record} records");
    Ok(())
}
