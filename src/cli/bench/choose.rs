//! `cxr-edge bench --choose`: which model variant to run on this device. Every variant of the
//! manifest is timed here (single-film inference, median), its answers on the bundled films are
//! compared with the reference variant's (`f32`, else the manifest's first), and the fastest
//! variant that gives the same top label on every film is chosen. `--write-config FILE` puts it
//! into the `[model]` table of a config file, keeping every other line (and comment) as it was.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{stage, time_runs};
use crate::capture::{decode_image, samples, Limits};
use crate::cli::{BenchArgs, EXIT_FATAL, EXIT_OK};
use crate::model::{Classifier, Manifest};
use crate::pixels::Frame;

#[derive(Serialize)]
struct Candidate {
    variant: String,
    inference_median_ms: f64,
    inference_p10_ms: f64,
    inference_p90_ms: f64,
    load_ms: f64,
    /// Bundled films whose top label matches the reference variant's.
    agree: usize,
    films: usize,
    /// Largest absolute difference of a calibrated probability from the reference's.
    max_prob_diff: f32,
    eligible: bool,
}

type Answers = Vec<(usize, Vec<f32>)>;

/// Top label and probabilities of `clf` for each film.
fn answers(clf: &Classifier, films: &[Frame]) -> Result<Answers> {
    films
        .iter()
        .map(|f| clf.classify(f).map(|p| (p.top, p.probs)))
        .collect()
}

/// Load and time one variant and compare its answers with the reference's; `None` (reported)
/// when it does not load on this machine.
fn measure(
    manifest_path: &Path,
    name: &str,
    films: &[Frame],
    reference: &Answers,
    runs: usize,
) -> Result<Option<Candidate>> {
    let t = std::time::Instant::now();
    let clf = match Classifier::load(manifest_path, Some(name)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cxr-edge bench: variant {name} does not load here: {e:#}");
            return Ok(None);
        }
    };
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let got = answers(&clf, films)?;
    let agree = got
        .iter()
        .zip(reference)
        .filter(|(a, b)| a.0 == b.0)
        .count();
    let max_prob_diff = got
        .iter()
        .zip(reference)
        .flat_map(|(a, b)| a.1.iter().zip(&b.1).map(|(x, y)| (x - y).abs()))
        .fold(0f32, f32::max);
    let tensor = clf.preprocess(&films[0]);
    let s = stage(
        name,
        "inference",
        1,
        time_runs(runs, || {
            clf.run_tensor(&tensor).unwrap();
        }),
    );
    Ok(Some(Candidate {
        variant: name.to_string(),
        inference_median_ms: s.median_ms,
        inference_p10_ms: s.p10_ms,
        inference_p90_ms: s.p90_ms,
        load_ms,
        agree,
        films: films.len(),
        max_prob_diff,
        eligible: agree == films.len(),
    }))
}

/// The candidates and the choice, as a table or JSON lines.
fn print(
    cands: &[Candidate],
    best: Option<&Candidate>,
    reference: &str,
    (runs, films): (usize, usize),
    json: bool,
) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        for c in cands {
            writeln!(out, "{}", serde_json::to_string(c)?)?;
        }
        writeln!(
            out,
            "{}",
            serde_json::json!({ "chosen": best.map(|b| b.variant.clone()), "reference": reference })
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "cxr-edge bench --choose: {runs} runs, reference {reference}, {films} bundled films ({})",
        crate::NOTICE
    )?;
    writeln!(
        out,
        "{:<12} {:>10} {:>19} {:>9} {:>7} {:>10}",
        "VARIANT", "MEDIAN ms", "p10-p90 ms", "LOAD ms", "AGREE", "MAX dPROB"
    )?;
    for c in cands {
        writeln!(
            out,
            "{:<12} {:>10.2} {:>9.2}-{:<9.2} {:>9.1} {:>3}/{:<3} {:>10.4}",
            c.variant,
            c.inference_median_ms,
            c.inference_p10_ms,
            c.inference_p90_ms,
            c.load_ms,
            c.agree,
            c.films,
            c.max_prob_diff
        )?;
    }
    match best {
        Some(b) => writeln!(out, "chosen: {}", b.variant)?,
        None => writeln!(out, "chosen: none (no variant agrees with {reference})")?,
    }
    Ok(())
}

/// Put `variant` into the `[model]` table of the config file at `path` (created if missing).
fn write_config(path: &Path, variant: &str) -> Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let new = set_model_variant(&old, variant);
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, &new).with_context(|| format!("cannot write {}", tmp.display()))?;
    // The config holds the serve token: the new file keeps the old one's mode and owner
    // (0640 root:cxr-edge as installed), and a new file is private to its owner.
    let keep = std::fs::metadata(path).ok();
    let res = keep_access(&tmp, keep.as_ref())
        .and_then(|()| std::fs::rename(&tmp, path))
        .and_then(|()| std::fs::File::open(path)?.sync_all());
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot replace {}", path.display()));
    }
    eprintln!(
        "cxr-edge bench: wrote variant = \"{variant}\" into {}",
        path.display()
    );
    Ok(())
}

/// `s` as a TOML basic string on one line: `"` and `\` escaped, every control character as
/// `\uXXXX`.
fn toml_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Give `file` the mode (and, when we may, the owner) of `like`; `0600` when there is no `like`.
fn keep_access(file: &Path, like: Option<&std::fs::Metadata>) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = like.map_or(0o600, |m| m.mode() & 0o7777);
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))?;
    if let Some(m) = like {
        let mine = std::fs::metadata(file)?;
        if (mine.uid(), mine.gid()) != (m.uid(), m.gid()) {
            // Only root may give a file away; then the owner is kept, else the mode suffices.
            let _ = std::os::unix::fs::chown(file, Some(m.uid()), Some(m.gid()));
        }
    }
    Ok(())
}

/// `cxr-edge bench --choose`.
pub(crate) fn run(manifest_path: &Path, args: &BenchArgs) -> Result<i32> {
    let manifest = Manifest::load(manifest_path)?;
    let names: Vec<String> = manifest.variants.keys().cloned().collect();
    let reference = if manifest.variants.contains_key("f32") {
        "f32".to_string()
    } else {
        names[0].clone()
    };
    let limits = Limits::default();
    let films: Vec<Frame> = samples::all()
        .iter()
        .filter_map(|s| decode_image(s.bytes, &limits).ok())
        .collect();
    anyhow::ensure!(
        !films.is_empty(),
        "this build has no bundled films to compare on"
    );
    let ref_answers = answers(&Classifier::load(manifest_path, Some(&reference))?, &films)?;
    let runs = args.runs.max(3);
    let mut cands = Vec::new();
    for name in &names {
        cands.extend(measure(manifest_path, name, &films, &ref_answers, runs)?);
    }
    let best = cands
        .iter()
        .filter(|c| c.eligible)
        .min_by(|a, b| a.inference_median_ms.total_cmp(&b.inference_median_ms));
    print(&cands, best, &reference, (runs, films.len()), args.json)?;
    let Some(best) = best else {
        return Ok(EXIT_FATAL);
    };
    if let Some(path) = &args.more.write_config {
        write_config(path, &best.variant)?;
    }
    Ok(EXIT_OK)
}

/// `text` with `variant = "<name>"` in its `[model]` table: an existing `variant` line there is
/// replaced, otherwise the line goes right under `[model]`, and a file without that table gets
/// one at its end. Comments and every other line stay as they were.
pub(crate) fn set_model_variant(text: &str, name: &str) -> String {
    // The name comes from a manifest: written as a one-line TOML string (quoted, escaped), it
    // can only ever be the value of `variant`, never a line or a table of its own.
    let line = format!(
        "variant = {}   # chosen by `cxr-edge bench --choose`",
        toml_quote(name)
    );
    let mut out: Vec<String> = Vec::new();
    let (mut in_model, mut header_at, mut done) = (false, None, false);
    for l in text.lines() {
        let t = l.trim_start();
        if t.starts_with('[') {
            if in_model && !done {
                if let Some(i) = header_at {
                    out.insert(i + 1, line.clone());
                    done = true;
                }
            }
            in_model = t.starts_with("[model]");
            if in_model {
                header_at = Some(out.len());
            }
        } else if in_model && !done {
            let key = t.split('=').next().unwrap_or("").trim();
            if key == "variant" {
                out.push(line.clone());
                done = true;
                continue;
            }
        }
        out.push(l.to_string());
    }
    if !done {
        match header_at {
            Some(i) => out.insert(i + 1, line),
            None => {
                if out.last().is_some_and(|l| !l.trim().is_empty()) {
                    out.push(String::new());
                }
                out.push("[model]".into());
                out.push(line);
            }
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::{keep_access, set_model_variant};

    #[test]
    fn the_variant_goes_into_the_model_table_and_nothing_else_changes() {
        let cfg = "# top\nsource = \"samples\"\n\n[model]\n# why\nvariant = \"f32\"\n\n[storage]\ndir = \"x\"\n";
        let got = set_model_variant(cfg, "int8");
        assert_eq!(
            got,
            "# top\nsource = \"samples\"\n\n[model]\n# why\nvariant = \"int8\"   # chosen by `cxr-edge bench --choose`\n\n[storage]\ndir = \"x\"\n"
        );
        // No variant line: one under the header. No [model] table: one at the end.
        let got = set_model_variant("[model]\nmanifest = \"m\"\n[storage]\n", "f32");
        assert!(got.starts_with("[model]\nvariant = \"f32\""), "{got}");
        let got = set_model_variant("source = \"samples\"\n", "f32");
        assert!(
            got.ends_with(
                "\n\n[model]\nvariant = \"f32\"   # chosen by `cxr-edge bench --choose`\n"
            ),
            "{got}"
        );
        // A commented-out variant is left alone; the real key is added.
        let got = set_model_variant("[model]\n# variant = \"int8\"\n", "f32");
        assert!(got.contains("# variant = \"int8\"\n") && got.contains("\nvariant = \"f32\""));
        // The result parses as TOML with the chosen variant.
        let v: toml::Value = toml::from_str(&set_model_variant(cfg, "int8")).unwrap();
        assert_eq!(v["model"]["variant"].as_str(), Some("int8"));
    }

    /// A planted manifest with a hostile variant name once wrote `[serve] listen = "0.0.0.0"`
    /// and the attacker's token into the config; quoted, the name stays one string value.
    #[test]
    fn a_hostile_variant_name_stays_a_string() {
        let evil = "int8\"\n[serve]\nlisten = \"0.0.0.0:8080\"\ntoken = \"attacker-token-1234\"\n#";
        let got = set_model_variant("[model]\n[storage]\ndir = \"x\"\n", evil);
        let v: toml::Value = toml::from_str(&got).unwrap();
        assert_eq!(v["model"]["variant"].as_str(), Some(evil));
        assert!(v.get("serve").is_none(), "{got}");
        assert_eq!(got.lines().count(), 4, "{got}");
    }

    /// A rewritten config keeps its mode (it holds the serve token); a new one is private.
    #[test]
    fn a_rewritten_config_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("config.toml");
        std::fs::write(&old, "x").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o640)).unwrap();
        let new = d.path().join("new");
        std::fs::write(&new, "y").unwrap();
        keep_access(&new, Some(&std::fs::metadata(&old).unwrap())).unwrap();
        let mode = |p| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&new), 0o640);
        keep_access(&new, None).unwrap();
        assert_eq!(mode(&new), 0o600);
    }
}
