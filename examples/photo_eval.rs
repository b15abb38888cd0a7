//! Simulated camera photos of films vs the digital originals, through the shipped model.
//!
//! cargo run --release --example photo_eval -- /work/shared/cxr [--split test] [--limit N]
//!     [--model models/cxr-net.toml] [--variant int8] [--seed-base 20000] [--boot 1000]
//!
//! Every non-`other` film of the split is classified twice: as the digital image, and as a
//! simulated 640x480 camera photo (Placement::Inside, severity sweep 0..1, fixed seeds) that
//! goes through the gates (`check_photo`: find, rectify, invert back, stretch). Frames the gates
//! block are counted, not dropped silently. Reported: top-1 agreement, per-class one-vs-rest
//! AUC on digital and photo (accepted frames), and the AUC change with a 95% bootstrap CI
//! (patients resampled, paired). Research use only; simulated photos are not real photos.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use cxr_edge::capture::{decode_image, read_limited, Limits};
use cxr_edge::film::gates::check_photo;
use cxr_edge::film::simulate::{simulate, Placement, Rng, SimOptions};
use cxr_edge::model::Classifier;

#[path = "common/manifest.rs"]
mod manifest;

struct Item {
    label: usize,
    patient: String,
    digital: Vec<f32>,
    photo: Option<Vec<f32>>,
    blocked: Option<&'static str>,
}

/// Mann-Whitney AUC of `scores` for positives `pos`.
fn auc(scores: &[f32], pos: &[bool]) -> f32 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut np) = (0f64, 0f64);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if pos[k] {
                rank_sum += r;
                np += 1.0;
            }
        }
        i = j + 1;
    }
    let nn = scores.len() as f64 - np;
    if np == 0.0 || nn == 0.0 {
        return f32::NAN;
    }
    ((rank_sum - np * (np + 1.0) / 2.0) / (np * nn)) as f32
}

fn ci(mut v: Vec<f32>) -> (f32, f32) {
    v.retain(|x| x.is_finite());
    v.sort_by(f32::total_cmp);
    if v.is_empty() {
        return (f32::NAN, f32::NAN);
    }
    let q = |p: f32| v[((v.len() - 1) as f32 * p).round() as usize];
    (q(0.025), q(0.975))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut root = None::<PathBuf>;
    let (mut split, mut limit, mut variant) = ("test".to_string(), usize::MAX, "int8".to_string());
    let (mut model, mut seed_base, mut boot) =
        (PathBuf::from("models/cxr-net.toml"), 20000u64, 1000);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--split" => split = it.next().context("--split")?,
            "--limit" => limit = it.next().context("--limit")?.parse()?,
            "--variant" => variant = it.next().context("--variant")?,
            "--model" => model = it.next().context("--model")?.into(),
            "--seed-base" => seed_base = it.next().context("--seed-base")?.parse()?,
            "--boot" => boot = it.next().context("--boot")?.parse()?,
            _ => root = Some(a.into()),
        }
    }
    let root = root.context("usage: photo_eval DATA_DIR [--split test] [--limit N]")?;
    let clf = Classifier::load(&model, Some(&variant))?;
    let labels = clf.manifest.labels.clone();
    let mut rows = manifest::split_rows(&root, &split)?;
    rows.retain(|r| r.label != "other");
    if limit < rows.len() {
        // Every k-th film, so that a limited run still covers every class and source.
        let stride = rows.len() as f64 / limit as f64;
        rows = (0..limit)
            .map(|i| rows[(i as f64 * stride) as usize].clone())
            .collect();
    }
    let limits = Limits::default();
    let mut items = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let film = decode_image(
            &read_limited(&root.join(&row.path), limits.max_file_bytes)?,
            &limits,
        )?;
        let digital = clf.classify(&film)?.probs;
        let severity = (i % 11) as f32 / 10.0;
        let sim = simulate(
            &film,
            &SimOptions::new(640, 480, severity, Placement::Inside, seed_base + i as u64),
        );
        let (photo, blocked) = match check_photo(&sim.frame) {
            Ok(rep) => (Some(clf.classify(&rep.film)?.probs), None),
            Err(b) => (None, Some(b.reason.code.as_str())),
        };
        items.push(Item {
            label: labels
                .iter()
                .position(|l| *l == row.label)
                .context("label")?,
            patient: row.patient.clone(),
            digital,
            photo,
            blocked,
        });
        if (i + 1) % 100 == 0 {
            eprintln!("{}/{}", i + 1, rows.len());
        }
    }
    let acc: Vec<&Item> = items.iter().filter(|it| it.photo.is_some()).collect();
    let mut blocked: BTreeMap<&str, usize> = BTreeMap::new();
    for it in &items {
        if let Some(b) = it.blocked {
            *blocked.entry(b).or_default() += 1;
        }
    }
    let argmax = |p: &[f32]| (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
    let agree = acc
        .iter()
        .filter(|it| argmax(&it.digital) == argmax(it.photo.as_ref().unwrap()))
        .count();
    let top1 = |photo: bool| {
        acc.iter()
            .filter(|it| {
                let p = if photo {
                    it.photo.as_ref().unwrap()
                } else {
                    &it.digital
                };
                argmax(p) == it.label
            })
            .count() as f32
            / acc.len() as f32
    };
    println!(
        "{split}: {} films (label other excluded), variant {variant}, seeds {seed_base}..; photos blocked by the gates: {} {:?}; accepted {}",
        items.len(),
        items.len() - acc.len(),
        blocked,
        acc.len()
    );
    println!(
        "top-1 agreement photo vs digital (accepted): {agree}/{} = {:.3}; top-1 accuracy digital {:.3}, photo {:.3}",
        acc.len(),
        agree as f32 / acc.len() as f32,
        top1(false),
        top1(true)
    );
    // Patients for the bootstrap.
    let mut pid: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (k, it) in acc.iter().enumerate() {
        pid.entry(it.patient.as_str()).or_default().push(k);
    }
    let groups: Vec<&Vec<usize>> = pid.values().collect();
    let digital_all: Vec<usize> = (0..items.len()).collect();
    println!("| class | n+ / n- (accepted) | AUC digital, all films | AUC digital, accepted | AUC photo, accepted | change (95% CI) |");
    println!("|---|---|---|---|---|---|");
    for (c, name) in labels.iter().enumerate() {
        if !acc.iter().any(|it| it.label == c) {
            continue;
        }
        let measure = |sel: &[usize]| {
            let pos: Vec<bool> = sel.iter().map(|&k| acc[k].label == c).collect();
            let d: Vec<f32> = sel.iter().map(|&k| acc[k].digital[c]).collect();
            let p: Vec<f32> = sel
                .iter()
                .map(|&k| acc[k].photo.as_ref().unwrap()[c])
                .collect();
            (auc(&d, &pos), auc(&p, &pos))
        };
        let all: Vec<usize> = (0..acc.len()).collect();
        let (ad, ap) = measure(&all);
        let pos_all: Vec<bool> = digital_all.iter().map(|&k| items[k].label == c).collect();
        let d_all: Vec<f32> = items.iter().map(|it| it.digital[c]).collect();
        let mut rng = Rng::new(4242 + c as u64);
        let diffs: Vec<f32> = (0..boot)
            .map(|_| {
                let mut sel = Vec::with_capacity(acc.len());
                for _ in 0..groups.len() {
                    sel.extend(groups[(rng.next_u64() % groups.len() as u64) as usize]);
                }
                let (d, p) = measure(&sel);
                p - d
            })
            .collect();
        let (lo, hi) = ci(diffs);
        let npos = acc.iter().filter(|it| it.label == c).count();
        println!(
            "| {name} | {npos} / {} | {:.3} | {ad:.3} | {ap:.3} | {:+.3} ({lo:+.3} to {hi:+.3}) |",
            acc.len() - npos,
            auc(&d_all, &pos_all),
            ap - ad
        );
    }
    Ok(())
}
