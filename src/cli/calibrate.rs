//! `cxr-edge calibrate`: fit a site profile (temperature and operating points) on a site's own
//! labelled `classify --json` output, with patient-level bootstrap intervals, or refuse with the
//! reason. The profile is written atomically to `--out`; the device uses it once it is
//! installed where its config points (see README, "Site calibration").

mod read;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::{ModelArgs, EXIT_OK, EXIT_SOME_FAILED};
use crate::files::write_atomically;
use crate::model::fit::{self, Fit, FitInput};
use crate::model::manifest::{locate_manifest, Manifest};
use crate::model::profile::{
    valid_name, ProfileCalibration, ProfileData, ProfileModel, ProfileThreshold, PROFILE_FORMAT,
};
use crate::model::SiteProfile;

/// Options of `cxr-edge calibrate`.
#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// The site's `cxr-edge classify --json` output (one record a line), scored by the model
    /// installed here.
    pub results: PathBuf,
    /// CSV with a header naming `path` and `label` (covid, pneumonia, normal, other) and
    /// optionally `patient`. A row labels the result whose path equals its path or ends with
    /// it in whole folder names (`scans/a.png` labels `/data/scans/a.png`). Films of one
    /// patient are resampled together; without a patient id each film is its own patient.
    #[arg(long, value_name = "CSV")]
    pub labels: PathBuf,
    /// Where to write the profile (written atomically; the device reads it from its config's
    /// `[model] site_profile`, by default /etc/cxr-edge/site-profile.toml).
    #[arg(long, value_name = "PROFILE.toml", default_value = "site-profile.toml")]
    pub out: PathBuf,
    /// The profile's name, recorded with every result scored with it (letters, digits, `-`,
    /// `_`, `.`). Default: the file name of --out without `.toml`.
    #[arg(long)]
    pub name: Option<String>,
    /// Films needed of a label, and of the other labels, to fit its operating point. With 20
    /// positives a sensitivity of 0.90 rests on the two lowest-scored films and its 95%
    /// interval already spans about 0.70-0.97; fewer would make the point a guess.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(5..=100_000))]
    pub min_positives: u64,
    /// Keep the shipped operating point for this label instead of fitting it (repeatable).
    #[arg(long, value_name = "LABEL")]
    pub keep: Vec<String>,
    /// Bootstrap repetitions for the 95% intervals.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(50..=100_000))]
    pub reps: u64,
    /// Bootstrap seed (the same films and seed give the same profile).
    #[arg(long, default_value_t = 20_261_204)]
    pub seed: u64,
    /// The model the results were scored with (it must be the one installed here).
    #[command(flatten)]
    pub model: ModelArgs,
}

/// A file's name alone: folders may name a patient or a person.
fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().escape_debug().to_string())
        .unwrap_or_default()
}

/// Refuse results scored by another model file; name the variant when it is this model's.
fn check_model(site: &read::Site, m: &Manifest, variant: &str, sha: &str) -> Result<()> {
    for (got, lines) in &site.model_shas {
        if sha.starts_with(got.as_str()) && got.len() == 12 {
            continue;
        }
        let other = m
            .variants
            .iter()
            .find(|(_, v)| got.len() == 12 && v.sha256.to_ascii_lowercase().starts_with(got));
        match other {
            Some((name, _)) => bail!(
                "{lines} result line(s) were scored with variant `{name}` of {} and the profile \
                 would be for `{variant}`: run calibrate with --variant {name}, or classify \
                 again with `{variant}`",
                m.name
            ),
            None => bail!(
                "{lines} result line(s) were scored by a model file with sha256 {:?}, not the \
                 installed {} v{} {variant} ({}): classify the site's films again with the \
                 installed model",
                got.escape_debug().to_string(),
                m.name,
                m.version,
                &sha[..12]
            ),
        }
    }
    Ok(())
}

pub fn run(args: CalibrateArgs) -> Result<i32> {
    let manifest_path = locate_manifest(args.model.model.as_deref())?;
    let m = Manifest::load(&manifest_path)?;
    let (variant, v) = m.variant(args.model.variant.as_deref())?;
    let sha = v.sha256.to_ascii_lowercase();
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| valid_name(s))
            .unwrap_or_else(|| "site".into()),
    };
    anyhow::ensure!(
        valid_name(&name),
        "--name {:?}: use 1-64 letters, digits, '-', '_' or '.' (not `shipped`)",
        name.escape_debug().to_string()
    );
    let mut keep = vec![false; m.labels.len()];
    for k in &args.keep {
        let i = m.label_index(k).with_context(|| {
            format!(
                "--keep {:?}: not one of the model's labels ({})",
                k.escape_debug().to_string(),
                m.labels.join(", ")
            )
        })?;
        keep[i] = true;
    }
    let rows = read::read_labels(&args.labels, &m)?;
    let site = read::pair(&args.results, &rows, &m)?;
    check_model(&site, &m, variant, &sha)?;
    let input = FitInput {
        labels: &m.labels,
        z: site.z.clone(),
        y: site.y.clone(),
        group: site.group.clone(),
        n_groups: site.n_groups,
        shipped: m.labels.iter().map(|l| m.thresholds[l] as f64).collect(),
        keep,
        min_positives: args.min_positives as usize,
        reps: args.reps as usize,
        seed: args.seed,
    };
    let shipped_t = m.calibration.temperature as f64;
    let fitted = fit::fit(&input, shipped_t).map_err(|r| {
        anyhow::anyhow!(
            "no site profile written: {r}. Site films per label: {}; result lines left out: {}",
            per_label(&m, &site.y),
            left_out_words(&site)
        )
    })?;
    let profile = SiteProfile {
        format: PROFILE_FORMAT,
        name,
        created: crate::store::rfc3339(SystemTime::now()),
        notice: crate::NOTICE.into(),
        labels: m.labels.clone(),
        model: ProfileModel {
            name: m.name.clone(),
            version: m.version.clone(),
            variant: variant.to_string(),
            sha256: sha,
        },
        calibration: calibration(&fitted, shipped_t),
        thresholds: thresholds(&fitted, &m),
        data: ProfileData {
            results: file_name(&args.results),
            labels: file_name(&args.labels),
            films: site.y.len() as u64,
            patients: site.n_groups as u64,
            reps: args.reps,
            seed: args.seed,
            min_positives: args.min_positives,
            left_out: site.left_out.clone(),
        },
    };
    let text = profile.to_toml()?;
    // What is written must read back as a profile the device accepts.
    SiteProfile::parse(&text).context("the fitted profile does not check (a bug)")?;
    write_atomically(&args.out, text.as_bytes())?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    report(&mut out, &profile, &fitted, &site, &args.out)?;
    Ok(if site.left_out.is_empty() {
        EXIT_OK
    } else {
        EXIT_SOME_FAILED
    })
}

fn per_label(m: &Manifest, y: &[usize]) -> String {
    m.labels
        .iter()
        .enumerate()
        .map(|(k, l)| format!("{l} {}", y.iter().filter(|&&v| v == k).count()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn left_out_words(site: &read::Site) -> String {
    if site.left_out.is_empty() {
        return "none".into();
    }
    site.left_out
        .iter()
        .map(|(why, n)| format!("{n} {why}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn calibration(f: &Fit, shipped_t: f64) -> ProfileCalibration {
    let (lo, hi) = fit::T_RANGE;
    let mut rule =
        format!("negative log-likelihood minimum on the site's films, T in [{lo}, {hi}]");
    if f.at_bound {
        rule.push_str(" (at the bound: the site's films want a temperature outside the range)");
    }
    ProfileCalibration {
        temperature: f.temperature.0 as f32,
        rule,
        shipped_temperature: shipped_t as f32,
        ci95: f.temperature.1,
        nll_shipped: f.nll.0,
        nll_site: f.nll.1,
    }
}

fn thresholds(f: &Fit, m: &Manifest) -> std::collections::BTreeMap<String, ProfileThreshold> {
    m.labels
        .iter()
        .zip(&f.labels)
        .map(|(l, x)| {
            let t = ProfileThreshold {
                value: x.value as f32,
                source: if x.kept.is_some() { "shipped" } else { "site" }.into(),
                rule: x.rule.clone(),
                shipped: m.thresholds[l],
                positives: x.positives as u64,
                negatives: x.negatives as u64,
                sensitivity: x.sensitivity.0,
                sensitivity_ci95: x.sensitivity.1,
                specificity: x.specificity.0,
                specificity_ci95: x.specificity.1,
                auc: x.auc.0,
                auc_ci95: x.auc.1,
            };
            (l.clone(), t)
        })
        .collect()
}

fn with_ci(v: Option<f64>, ci: Option<[f64; 2]>) -> String {
    match (v, ci) {
        (Some(v), Some([a, b])) => format!("{v:.3} ({a:.3}-{b:.3})"),
        (Some(v), None) => format!("{v:.3}"),
        _ => "-".into(),
    }
}

fn report(
    out: &mut impl Write,
    p: &SiteProfile,
    f: &Fit,
    site: &read::Site,
    path: &Path,
) -> Result<()> {
    let c = &p.calibration;
    writeln!(out, "*** {} ***", crate::NOTICE.to_uppercase())?;
    writeln!(
        out,
        "site profile `{}` for {} v{} {} (sha256 {}) written to {}",
        p.name,
        p.model.name,
        p.model.version,
        p.model.variant,
        &p.model.sha256[..12],
        path.display()
    )?;
    writeln!(
        out,
        "{} films, {} patients; {} labelled films without a usable result line; result lines left out: {}",
        p.data.films,
        p.data.patients,
        site.labels_without_result,
        left_out_words(site)
    )?;
    let ci = c
        .ci95
        .map_or(String::new(), |[a, b]| format!(" (95% CI {a:.3}-{b:.3})"));
    writeln!(
        out,
        "temperature {:.4} -> {:.4}{ci}; mean NLL {:.4} -> {:.4}{}\n",
        c.shipped_temperature,
        c.temperature,
        c.nll_shipped,
        c.nll_site,
        if f.at_bound { "  AT THE BOUND" } else { "" }
    )?;
    writeln!(
        out,
        "{:<10} {:>7} {:>7} {:>5} {:>5}  {:<22} {:<22} {:<22} rule",
        "label",
        "shipped",
        "site",
        "pos",
        "neg",
        "sensitivity (95% CI)",
        "specificity (95% CI)",
        "AUC (95% CI)"
    )?;
    for l in &p.labels {
        let t = &p.thresholds[l];
        writeln!(
            out,
            "{:<10} {:>7.4} {:>7.4} {:>5} {:>5}  {:<22} {:<22} {:<22} {}",
            l,
            t.shipped,
            t.value,
            t.positives,
            t.negatives,
            with_ci(t.sensitivity, t.sensitivity_ci95),
            with_ci(t.specificity, t.specificity_ci95),
            with_ci(t.auc, t.auc_ci95),
            t.rule
        )?;
    }
    writeln!(
        out,
        "\nThe figures describe this site's labelled films only; a profile moves operating \
         points, it does not make a result a diagnosis."
    )?;
    Ok(())
}
