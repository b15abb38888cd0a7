//! `cxr-edge calibrate` on a synthetic site with known shifts, and the profile it writes used by
//! `classify`. The site is made here: films whose labels follow softmax(true logits), and a
//! device that reports those logits over-confident by a factor 1.6 (after the shipped
//! temperature), plus, at the "shifted" site, a bias of +0.8 on the COVID-19 logit (the model
//! over-calls COVID-19 there). Nothing below knows what the fit should give except through
//! those two shifts.

use std::path::Path;

use cxr_edge::model::fit::Rng;
use cxr_edge::model::manifest::sha256_hex;
use cxr_edge::model::{decide, softmax_t, Manifest, SiteProfile};
use serde_json::{json, Value};

use super::{json_lines, run};
use crate::common::root;

const OVERCONFIDENCE: f64 = 1.6;
const COVID_BIAS: f64 = 0.8;

fn manifest() -> Manifest {
    Manifest::load(&root().join("models/cxr-net.toml")).unwrap()
}

fn gauss(rng: &mut Rng) -> f64 {
    let u = rng.unit().max(1e-12);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.unit()).cos()
}

/// `n` films: (true logits, label), labels drawn from softmax(true logits). `other_share`
/// thins out `other` films (1: as drawn).
fn films(n: usize, other_share: f64, seed: u64) -> Vec<(Vec<f64>, usize)> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    while out.len() < n {
        let lean = rng.below(4);
        let z: Vec<f64> = (0..4)
            .map(|k| if k == lean { 2.0 } else { 0.0 } + gauss(&mut rng))
            .collect();
        let p = softmax_t(&z.iter().map(|&v| v as f32).collect::<Vec<_>>(), 1.0);
        let (mut u, mut y) = (rng.unit() as f32, 0);
        while y < 3 && u >= p[y] {
            u -= p[y];
            y += 1;
        }
        if y == 3 && rng.unit() >= other_share {
            continue;
        }
        out.push((z, y));
    }
    out
}

/// What the device reports for a film: logits whose shipped calibration is over-confident by
/// [`OVERCONFIDENCE`], with `bias` added to the COVID-19 logit.
fn device_logits(z: &[f64], t0: f64, bias: f64) -> Vec<f32> {
    z.iter()
        .enumerate()
        .map(|(k, v)| (v * OVERCONFIDENCE * t0 + if k == 0 { bias } else { 0.0 }) as f32)
        .collect()
}

/// A `classify --json` line for a film with these logits, scored with the shipped calibration.
fn record(path: &str, logits: &[f32], with_logits: bool, m: &Manifest, sha: &str) -> String {
    let probs = softmax_t(logits, m.calibration.temperature);
    let map = |v: &[f32]| -> serde_json::Map<String, Value> {
        m.labels
            .iter()
            .zip(v)
            .map(|(l, &x)| (l.clone(), json!(((x as f64) * 1e6).round() / 1e6)))
            .collect()
    };
    let mut r = json!({
        "path": path, "input": "digital", "label": "normal", "result": "no pneumonia pattern",
        "probs": map(&probs), "decision": {"flags": [], "summary": ""}, "quality": [],
        "model": {"name": m.name, "version": m.version, "variant": "int8", "sha256": &sha[..12],
                  "profile": {"name": "shipped", "sha256": null}},
        "error": null, "notice": cxr_edge::NOTICE, "elapsed_ms": 9.9
    });
    if with_logits {
        r["logits"] = Value::Object(map(logits));
    }
    r.to_string()
}

/// Write the site's files: the results of `fit` films (plus 3 unlabelled and 2 failed lines)
/// and the labels CSV (two films per patient).
fn write_site(
    dir: &Path,
    fit: &[(Vec<f64>, usize)],
    bias: f64,
    with_logits: bool,
    sha: &str,
) -> (String, String) {
    let m = manifest();
    let t0 = m.calibration.temperature as f64;
    let mut jsonl = String::new();
    let mut csv = String::from("path,label,patient\n");
    for (i, (z, y)) in fit.iter().enumerate() {
        let logits = device_logits(z, t0, bias);
        let line = record(
            &format!("/data/site/film-{i:04}.png"),
            &logits,
            with_logits,
            &m,
            sha,
        );
        jsonl.push_str(&line);
        jsonl.push('\n');
        csv.push_str(&format!(
            "site/film-{i:04}.png,{},p{}\n",
            m.labels[*y],
            i / 2
        ));
    }
    for i in 0..3 {
        let line = record(&format!("/data/other/x{i}.png"), &[0.0; 4], true, &m, sha);
        jsonl.push_str(&line);
        jsonl.push('\n');
    }
    for i in 0..2 {
        let r = json!({"path": format!("/data/site/bad-{i}.png"), "label": null, "probs": null,
            "model": {"name": m.name, "sha256": &sha[..12]}, "error": "not an image"});
        jsonl.push_str(&format!("{r}\n"));
        csv.push_str(&format!("site/bad-{i}.png,normal,\n"));
    }
    let (r, l) = (dir.join("results.jsonl"), dir.join("site.csv"));
    std::fs::write(&r, jsonl).unwrap();
    std::fs::write(&l, csv).unwrap();
    (
        r.to_string_lossy().into_owned(),
        l.to_string_lossy().into_owned(),
    )
}

fn calibrate(results: &str, labels: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let out = out.to_string_lossy().into_owned();
    let mut args = vec![
        "calibrate",
        "--labels",
        labels,
        "--out",
        &out,
        "--reps",
        "200",
        results,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// Share of `films` whose COVID-19 probability under `m`'s calibration reaches its point.
fn covid_flag_rate(m: &Manifest, films: &[&(Vec<f64>, usize)], bias: f64, t0: f64) -> f64 {
    let flagged = films
        .iter()
        .filter(|(z, _)| {
            let p = softmax_t(&device_logits(z, t0, bias), m.calibration.temperature);
            p[0] >= m.thresholds["covid"]
        })
        .count();
    flagged as f64 / films.len() as f64
}

#[test]
fn calibrate_fits_a_synthetic_site_with_known_shifts() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest();
    let sha = m.variant(None).unwrap().1.sha256.to_ascii_lowercase();
    let t0 = m.calibration.temperature as f64;
    let all = films(2400, 1.0, 1);
    let (fit, held_out) = all.split_at(1600);
    let mut profiles = Vec::new();
    for (name, bias, with_logits) in [("control", 0.0, false), ("shifted", COVID_BIAS, true)] {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let (results, labels) = write_site(&dir, fit, bias, with_logits, &sha);
        let out = dir.join("profile.toml");
        let o = calibrate(&results, &labels, &out, &["--name", name]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        // Some result lines could not be used: reported, and the exit status says so.
        assert_eq!(
            o.status.code(),
            Some(1),
            "{stdout}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(stdout.contains("1600 films, 800 patients"), "{stdout}");
        assert!(stdout.contains("3 no label in the CSV"), "{stdout}");
        assert!(stdout.contains("2 failed analysis"), "{stdout}");
        let (p, _) = SiteProfile::load(&out).unwrap();
        assert_eq!(
            (p.name.as_str(), p.model.sha256.as_str()),
            (name, sha.as_str())
        );
        profiles.push((p, out));
    }
    let (control, shifted) = (&profiles[0].0, &profiles[1].0);
    // The control site is only over-confident: the fit finds the known factor.
    let tc = control.calibration.temperature as f64;
    assert!(
        (tc / (OVERCONFIDENCE * t0) - 1.0).abs() < 0.1,
        "control T {tc}"
    );
    for p in [control, shifted] {
        let c = &p.calibration;
        let [lo, hi] = c.ci95.unwrap();
        assert!(lo <= c.temperature as f64 && c.temperature as f64 <= hi);
        assert!(
            c.nll_site < c.nll_shipped,
            "the site's temperature fits better"
        );
        assert!(c.temperature as f64 > 1.2 * t0, "over-confidence raises T");
        for (l, t) in &p.thresholds {
            assert_eq!(t.source, "site", "{l}");
            let (s, [lo, hi]) = (t.sensitivity.unwrap(), t.sensitivity_ci95.unwrap());
            assert!(lo <= s && s <= hi, "{l}");
        }
        assert!(p.thresholds["covid"].sensitivity.unwrap() >= 0.90);
        assert!(p.thresholds["covid"].rule.contains("sensitivity >= 0.90"));
    }
    // The COVID-19 bias raises every COVID-19 probability: the point that keeps 90% of the
    // site's COVID-19 films moves up.
    let (cc, cs) = (
        control.thresholds["covid"].value,
        shifted.thresholds["covid"].value,
    );
    assert!(
        cs > cc + 0.02,
        "covid point {cc} (control) vs {cs} (shifted)"
    );
    // Held-out films of the shifted site: the shipped point misses the COVID-19 rule there
    // (the known shifts move every COVID-19 probability); the site's point meets it again,
    // and the films without COVID-19 that get flagged move with it, the price of that
    // sensitivity.
    let mut site_m = m.clone();
    shifted.apply(&mut site_m);
    let (covid, rest): (Vec<_>, Vec<_>) = held_out.iter().partition(|(_, y)| *y == 0);
    let rate =
        |m: &Manifest, films: &[&(Vec<f64>, usize)]| covid_flag_rate(m, films, COVID_BIAS, t0);
    let (shipped_sens, site_sens) = (rate(&m, &covid), rate(&site_m, &covid));
    let (shipped_false, site_false) = (rate(&m, &rest), rate(&site_m, &rest));
    let figures = format!(
        "held out: sensitivity shipped {shipped_sens:.3} site {site_sens:.3}; \
         films without COVID-19 flagged: shipped {shipped_false:.3} site {site_false:.3}"
    );
    assert!(
        (shipped_sens - 0.90).abs() > 0.03,
        "the shift changes nothing: {figures}"
    );
    assert!((site_sens - 0.90).abs() < 0.05, "{figures}");
    assert_eq!(
        site_sens > shipped_sens,
        site_false > shipped_false,
        "{figures}"
    );
    eprintln!("{figures}");

    classify_names_and_applies_the_profile(&profiles[1].1, &site_m, tmp.path());
}

/// The real films scored with the shifted site's profile: every record names it, and its
/// probabilities and flags are the profile's, recomputed here from the record's logits.
fn classify_names_and_applies_the_profile(profile: &Path, site_m: &Manifest, tmp: &Path) {
    let path = profile.to_string_lossy().into_owned();
    let o = run(&["classify", "--json", "--site-profile", &path]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let file_sha = sha256_hex(&std::fs::read(profile).unwrap());
    for r in json_lines(&o) {
        assert_eq!(r["model"]["profile"]["name"], "shifted");
        assert_eq!(r["model"]["profile"]["sha256"], file_sha[..12]);
        let logits: Vec<f32> = site_m
            .labels
            .iter()
            .map(|l| r["logits"][l].as_f64().unwrap() as f32)
            .collect();
        let probs = softmax_t(&logits, site_m.calibration.temperature);
        for (l, p) in site_m.labels.iter().zip(&probs) {
            let got = r["probs"][l].as_f64().unwrap();
            assert!((got - *p as f64).abs() < 2e-5, "{l}: {got} vs {p}");
        }
        let flags: Vec<&str> = r["decision"]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert_eq!(flags, decide(site_m, &probs).flags, "{r}");
    }
    let o = run(&["classify", "--json", "--site-profile", "shipped"]);
    for r in json_lines(&o) {
        assert_eq!(r["model"]["profile"]["name"], "shipped");
    }
    // The same profile said to be for another model file is refused at start.
    let text = std::fs::read_to_string(profile).unwrap();
    let sha = &site_m.variant(None).unwrap().1.sha256;
    let foreign = tmp.join("foreign.toml");
    std::fs::write(&foreign, text.replace(sha.as_str(), &"ab".repeat(32))).unwrap();
    let o = run(&[
        "classify",
        "--json",
        "--site-profile",
        &foreign.to_string_lossy(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("was fitted for model"), "{stderr}");
    assert!(
        o.stdout.is_empty(),
        "no record scored with a refused profile"
    );
}

#[test]
fn calibrate_refuses_too_few_films_and_foreign_results() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest();
    let sha = m.variant(None).unwrap().1.sha256.to_ascii_lowercase();
    // A site with a handful of `other` films.
    let few = films(600, 0.04, 2);
    let n_other = few.iter().filter(|f| f.1 == 3).count();
    assert!((1..20).contains(&n_other), "{n_other}");
    let (results, labels) = write_site(tmp.path(), &few, 0.0, true, &sha);
    let out = tmp.path().join("p.toml");
    let o = calibrate(&results, &labels, &out, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("`other` has {n_other} positive"))
            && stderr.contains("--keep other"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing written on a refusal");
    // Keeping the shipped point for `other` is a choice the profile records.
    let o = calibrate(&results, &labels, &out, &["--keep", "other"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (p, _) = SiteProfile::load(&out).unwrap();
    let other = &p.thresholds["other"];
    assert_eq!(
        (other.source.as_str(), other.value),
        ("shipped", m.thresholds["other"])
    );
    assert!(other.rule.contains("--keep"));
    // Results scored by another model file are refused, whatever their films.
    let (results, labels) = write_site(tmp.path(), &few, 0.0, true, &"f".repeat(64));
    let o = calibrate(
        &results,
        &labels,
        &tmp.path().join("q.toml"),
        &["--keep", "other"],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("scored by a model file"), "{stderr}");
}
