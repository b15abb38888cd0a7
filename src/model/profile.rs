//! Site profiles: a temperature and operating points fitted by `cxr-edge calibrate` on one
//! site's own labelled films, replacing the manifest's (fitted on the training collections'
//! validation split) for that site's device. A profile is data about one model file: it names
//! the file's sha256 and is refused for any other, never silently applied.
//!
//! A profile changes where the operating points sit; it does not make any result a diagnosis.
//! Every record names the profile it was scored with ([`ProfileId`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::manifest::{sha256_hex, Manifest};

/// Where the device looks for a site profile when its config names none.
pub const DEFAULT_SITE_PROFILE: &str = "/etc/cxr-edge/site-profile.toml";

/// The profile file format this build reads and writes.
pub const PROFILE_FORMAT: u32 = 1;

/// The name records give the manifest's own calibration.
pub const SHIPPED: &str = "shipped";

/// A profile file is a few kilobytes; anything much larger is not one.
const MAX_PROFILE_BYTES: u64 = 256 * 1024;

/// The calibration a result was scored with, as every record names it: `shipped` (the
/// manifest's), or a site profile's name with the first 12 hex digits of its file's sha256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileId {
    /// `shipped`, or the site profile's `name`.
    pub name: String,
    /// First 12 hex digits of the profile file's sha256; `null` for `shipped`.
    pub sha256: Option<String>,
}

impl Default for ProfileId {
    /// Records written before site profiles existed were scored with the shipped calibration.
    fn default() -> Self {
        ProfileId::shipped()
    }
}

impl ProfileId {
    /// The manifest's own temperature and operating points.
    pub fn shipped() -> ProfileId {
        ProfileId {
            name: SHIPPED.into(),
            sha256: None,
        }
    }

    /// Whether this names the manifest's own calibration.
    pub fn is_shipped(&self) -> bool {
        self.sha256.is_none() && self.name == SHIPPED
    }
}

/// Which calibration a face should use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProfileChoice {
    /// The manifest's own (`site_profile = "shipped"`, `--site-profile shipped`).
    Shipped,
    /// The profile in this file; it must exist and fit the model.
    File(PathBuf),
}

impl ProfileChoice {
    /// From a setting (`--site-profile`, `[model] site_profile`): `shipped`, a path, or
    /// nothing, which means [`DEFAULT_SITE_PROFILE`] when that file exists and the shipped
    /// calibration otherwise.
    pub fn from_setting(setting: Option<&str>) -> ProfileChoice {
        match setting.map(str::trim) {
            Some(SHIPPED) => ProfileChoice::Shipped,
            Some(p) if !p.is_empty() => ProfileChoice::File(PathBuf::from(p)),
            _ if Path::new(DEFAULT_SITE_PROFILE).is_file() => {
                ProfileChoice::File(PathBuf::from(DEFAULT_SITE_PROFILE))
            }
            _ => ProfileChoice::Shipped,
        }
    }
}

/// The model file a profile was fitted for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileModel {
    /// Manifest name (`cxr-net`).
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// Variant whose outputs were fitted (`int8`, `f32`).
    pub variant: String,
    /// Full sha256 of that variant's file: the profile is refused for any other file.
    pub sha256: String,
}

/// The fitted temperature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileCalibration {
    /// Probabilities are `softmax(logits / temperature)`.
    pub temperature: f32,
    /// How it was chosen.
    pub rule: String,
    /// The manifest's temperature, for comparison.
    pub shipped_temperature: f32,
    /// Patient-level bootstrap 95% interval of the fitted temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[f64; 2]>,
    /// Mean negative log-likelihood of the site's films at the shipped temperature.
    pub nll_shipped: f64,
    /// The same at the fitted temperature.
    pub nll_site: f64,
}

/// One label's operating point and what the site's films say about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileThreshold {
    /// Operating point on calibrated probabilities: flagged when `p >= value`.
    pub value: f32,
    /// `site` (fitted here) or `shipped` (kept from the manifest, with the reason in `rule`).
    pub source: String,
    /// The rule that chose `value`, or why the shipped value was kept.
    pub rule: String,
    /// The manifest's operating point, for comparison.
    pub shipped: f32,
    /// Films of this label at the site.
    pub positives: u64,
    /// Films of the other labels.
    pub negatives: u64,
    /// Site sensitivity at `value` (none without positives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<f64>,
    /// Patient-level bootstrap 95% interval of `sensitivity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity_ci95: Option<[f64; 2]>,
    /// Site specificity at `value` (none without negatives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specificity: Option<f64>,
    /// Patient-level bootstrap 95% interval of `specificity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specificity_ci95: Option<[f64; 2]>,
    /// One-vs-rest ROC AUC at the site (none without positives and negatives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auc: Option<f64>,
    /// Patient-level bootstrap 95% interval of `auc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auc_ci95: Option<[f64; 2]>,
}

/// What the profile was fitted on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileData {
    /// File name of the `classify --json` output (no folders: they may name people).
    pub results: String,
    /// File name of the labels CSV.
    pub labels: String,
    /// Films used.
    pub films: u64,
    /// Distinct patients among them (the bootstrap's unit).
    pub patients: u64,
    /// Bootstrap repetitions.
    pub reps: u64,
    /// Bootstrap seed.
    pub seed: u64,
    /// Minimum positives (and negatives) for a label's operating point to be fitted.
    pub min_positives: u64,
    /// Result lines left out, by reason (no label, failed analysis, duplicate...).
    #[serde(default)]
    pub left_out: BTreeMap<String, u64>,
}

/// A site profile file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteProfile {
    /// [`PROFILE_FORMAT`].
    pub format: u32,
    /// Short name recorded with every result (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// When it was fitted (RFC 3339, UTC).
    pub created: String,
    /// Always [`crate::NOTICE`].
    pub notice: String,
    /// Labels, in the manifest's order.
    pub labels: Vec<String>,
    /// The model file it was fitted for.
    pub model: ProfileModel,
    /// The fitted temperature.
    pub calibration: ProfileCalibration,
    /// Operating point per label.
    pub thresholds: BTreeMap<String, ProfileThreshold>,
    /// What it was fitted on.
    pub data: ProfileData,
}

/// Whether `name` may name a profile: short, plain, and never `shipped`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name != SHIPPED
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn unit(x: Option<f64>) -> bool {
    x.is_none_or(|v| v.is_finite() && (0.0..=1.0).contains(&v))
}

fn unit_ci(ci: Option<[f64; 2]>) -> bool {
    ci.is_none_or(|[a, b]| unit(Some(a)) && unit(Some(b)) && a <= b)
}

impl SiteProfile {
    /// Parse and check a profile's text (from a file: hostile until checked).
    pub fn parse(text: &str) -> Result<SiteProfile> {
        let p: SiteProfile = toml::from_str(text).context("not a site profile (TOML)")?;
        p.validate()?;
        Ok(p)
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            self.format == PROFILE_FORMAT,
            "format {} is not the one this build reads ({PROFILE_FORMAT})",
            self.format
        );
        ensure!(
            valid_name(&self.name),
            "name {:?} must be 1-64 letters, digits, '-', '_' or '.', and not `{SHIPPED}`",
            self.name.escape_debug().to_string()
        );
        let sha = &self.model.sha256;
        ensure!(
            sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()),
            "model.sha256 must be 64 hex digits"
        );
        ensure!(
            !self.labels.is_empty() && self.labels.len() <= 64,
            "labels: 1 to 64 expected, {} found",
            self.labels.len()
        );
        let t = self.calibration.temperature;
        ensure!(
            t.is_finite() && (0.05..=20.0).contains(&t),
            "calibration.temperature {t} is outside 0.05 ..= 20"
        );
        for l in &self.labels {
            let th = self
                .thresholds
                .get(l)
                .with_context(|| format!("no threshold for label `{}`", l.escape_debug()))?;
            ensure!(
                th.value.is_finite() && (0.0..=1.0).contains(&th.value),
                "threshold for `{}` is {}, outside [0, 1]",
                l.escape_debug(),
                th.value
            );
            ensure!(
                unit(th.sensitivity)
                    && unit(th.specificity)
                    && unit(th.auc)
                    && unit_ci(th.sensitivity_ci95)
                    && unit_ci(th.specificity_ci95)
                    && unit_ci(th.auc_ci95),
                "figures for `{}` are not proportions in [0, 1]",
                l.escape_debug()
            );
        }
        ensure!(
            self.thresholds.len() == self.labels.len(),
            "thresholds for labels that are not in `labels`"
        );
        Ok(())
    }

    /// Read and check a profile file; also returns the sha256 of its bytes.
    pub fn load(path: &Path) -> Result<(SiteProfile, String)> {
        let len = std::fs::metadata(path)
            .with_context(|| format!("cannot read site profile {}", path.display()))?
            .len();
        ensure!(
            len <= MAX_PROFILE_BYTES,
            "site profile {} is {len} bytes, too large to be one",
            path.display()
        );
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read site profile {}", path.display()))?;
        let text = std::str::from_utf8(&bytes)
            .with_context(|| format!("site profile {} is not UTF-8 text", path.display()))?;
        let p = SiteProfile::parse(text)
            .with_context(|| format!("site profile {} is not usable", path.display()))?;
        Ok((p, sha256_hex(&bytes)))
    }

    /// Refuse a profile fitted for another model file or another set of labels.
    pub fn check_fits(&self, m: &Manifest, variant: &str, model_sha256: &str) -> Result<()> {
        if !self.model.sha256.eq_ignore_ascii_case(model_sha256) {
            bail!(
                "site profile `{}` was fitted for model {} v{} ({}, sha256 {}), not for the one \
                 loaded ({} v{} {variant}, sha256 {}): refit it with `cxr-edge calibrate` on \
                 this model's results, or use the shipped calibration (site_profile = \"shipped\")",
                self.name,
                self.model.name.escape_debug(),
                self.model.version.escape_debug(),
                self.model.variant.escape_debug(),
                &self.model.sha256[..12],
                m.name,
                m.version,
                &model_sha256[..12.min(model_sha256.len())]
            );
        }
        ensure!(
            self.labels == m.labels,
            "site profile `{}` has labels [{}], the model has [{}]",
            self.name,
            self.labels.join(", ").escape_debug(),
            m.labels.join(", ")
        );
        Ok(())
    }

    /// The manifest with this profile's temperature and operating points in place of its own.
    pub fn apply(&self, m: &mut Manifest) {
        m.calibration.temperature = self.calibration.temperature;
        for (l, t) in &self.thresholds {
            m.thresholds.insert(l.clone(), t.value);
        }
    }

    /// The profile as TOML text, with a heading comment that says what it is.
    pub fn to_toml(&self) -> Result<String> {
        let body = toml::to_string(self).context("cannot write the site profile as TOML")?;
        Ok(format!(
            "# cxr-edge site profile, written by `cxr-edge calibrate`. It replaces the model's\n\
             # temperature and operating points on this site's device; it is refused for any other\n\
             # model file. {}\n\n{body}",
            crate::NOTICE
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid profile for `m`'s default variant, every point from the site.
    pub(crate) fn profile_for(m: &Manifest, temperature: f32) -> SiteProfile {
        let (vname, v) = m.variant(None).unwrap();
        let thresholds = m
            .labels
            .iter()
            .map(|l| {
                let t = ProfileThreshold {
                    value: 0.5,
                    source: "site".into(),
                    rule: "test".into(),
                    shipped: m.thresholds[l],
                    positives: 30,
                    negatives: 90,
                    sensitivity: Some(0.9),
                    sensitivity_ci95: Some([0.8, 0.95]),
                    specificity: Some(0.7),
                    specificity_ci95: Some([0.6, 0.8]),
                    auc: Some(0.9),
                    auc_ci95: Some([0.85, 0.95]),
                };
                (l.clone(), t)
            })
            .collect();
        SiteProfile {
            format: PROFILE_FORMAT,
            name: "test-site".into(),
            created: "2026-12-04T00:00:00Z".into(),
            notice: crate::NOTICE.into(),
            labels: m.labels.clone(),
            model: ProfileModel {
                name: m.name.clone(),
                version: m.version.clone(),
                variant: vname.into(),
                sha256: v.sha256.clone(),
            },
            calibration: ProfileCalibration {
                temperature,
                rule: "test".into(),
                shipped_temperature: m.calibration.temperature,
                ci95: Some([1.0, 2.0]),
                nll_shipped: 0.5,
                nll_site: 0.4,
            },
            thresholds,
            data: ProfileData {
                results: "r.jsonl".into(),
                labels: "l.csv".into(),
                films: 120,
                patients: 100,
                reps: 10,
                seed: 1,
                min_positives: 20,
                left_out: BTreeMap::new(),
            },
        }
    }

    fn manifest() -> Manifest {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cxr-net.toml");
        Manifest::load(&path).unwrap()
    }

    #[test]
    fn a_profile_reads_back_and_replaces_the_manifest_calibration() {
        let mut m = manifest();
        let p = profile_for(&m, 1.5);
        let text = p.to_toml().unwrap();
        let back = SiteProfile::parse(&text).unwrap();
        assert_eq!(back, p);
        let (vname, v) = m.variant(None).unwrap();
        back.check_fits(&m, vname, &v.sha256.clone()).unwrap();
        back.apply(&mut m);
        assert_eq!(m.calibration.temperature, 1.5);
        assert!(m.thresholds.values().all(|&t| t == 0.5));
    }

    #[test]
    fn a_profile_for_another_model_file_or_hostile_values_is_refused() {
        let m = manifest();
        let p = profile_for(&m, 1.5);
        let other = "ab".repeat(32);
        let e = p.check_fits(&m, "int8", &other).unwrap_err();
        assert!(format!("{e:#}").contains("was fitted for model"), "{e:#}");
        let text = p.to_toml().unwrap();
        for (from, to) in [
            ("temperature = 1.5", "temperature = nan"),
            ("temperature = 1.5", "temperature = 0.0"),
            ("value = 0.5", "value = 1.5"),
            ("name = \"test-site\"", "name = \"shipped\""),
            ("name = \"test-site\"", "name = \"a\\nb\""),
            ("format = 1", "format = 2"),
            ("sensitivity = 0.9", "sensitivity = inf"),
        ] {
            let bad = text.replacen(from, to, 1);
            assert_ne!(bad, text, "{from} not in the profile text");
            assert!(SiteProfile::parse(&bad).is_err(), "{to} accepted");
        }
        let mut labels = p.clone();
        labels.labels.swap(0, 1);
        let (vname, v) = m.variant(None).unwrap();
        assert!(labels.check_fits(&m, vname, &v.sha256).is_err());
    }

    #[test]
    fn the_setting_chooses_shipped_or_a_file() {
        assert_eq!(
            ProfileChoice::from_setting(Some("shipped")),
            ProfileChoice::Shipped
        );
        assert_eq!(
            ProfileChoice::from_setting(Some("/x/p.toml")),
            ProfileChoice::File("/x/p.toml".into())
        );
        let none = ProfileChoice::from_setting(None);
        let expect = if Path::new(DEFAULT_SITE_PROFILE).is_file() {
            ProfileChoice::File(DEFAULT_SITE_PROFILE.into())
        } else {
            ProfileChoice::Shipped
        };
        assert_eq!(none, expect);
    }
}
