//! The results log: one JSON file per analysed film in the storage folder, each written to a
//! temporary name, flushed to disk and renamed, so a power cut leaves whole records or none.
//!
//! No patient identifiers: a record names its input only by the SHA-256 of the file's bytes
//! (file names from a reader's export often carry the patient's name). Each record says where
//! its film came from ([`Origin`]: `inbox`, `samples`, `camera` or `upload`). Every face writes
//! through [`ResultsLog::record`]; `cxr-edge history` reads the files back as [`StoredRecord`].

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::files::{remove_stale_partials, write_atomically, write_png_atomically};
use crate::record::Record;

/// Where a logged film came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The watch folder of `cxr-edge run`.
    Inbox,
    /// The bundled sample films (`run` with `source = "samples"`).
    Samples,
    /// A frame of the camera kiosk.
    Camera,
    /// The upload page or API of `cxr-edge serve`.
    Upload,
}

impl Origin {
    /// The name written in records and record paths (`inbox`, `samples`, `camera`, `upload`).
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Inbox => "inbox",
            Origin::Samples => "samples",
            Origin::Camera => "camera",
            Origin::Upload => "upload",
        }
    }
}

/// One file of the results log: the record with where and when it was made.
#[derive(Debug, Serialize, Deserialize)]
pub struct Logged<R> {
    /// UTC, RFC 3339, second resolution.
    pub time: String,
    /// Where the film came from.
    pub source: Origin,
    /// SHA-256 of the input bytes, so a record can be matched to its file without naming it.
    pub input_sha256: Option<String>,
    /// The picture kept with the record (heatmap over the film), relative to the log folder.
    pub image: Option<String>,
    /// The record itself, its fields at the top level of the file.
    #[serde(flatten)]
    pub record: R,
}

/// A record as read back from the log.
pub type StoredRecord = Logged<Record>;

/// The log folder.
pub struct ResultsLog {
    dir: PathBuf,
}

/// Where [`ResultsLog::record`] put a record.
#[derive(Debug)]
pub struct Recorded {
    /// The record's base name in the log (`<time>-<hash>`), also the kept picture's stem.
    pub name: String,
    /// The record file.
    pub path: PathBuf,
}

impl ResultsLog {
    /// Open (creating if needed) the log folder, remove the temporaries a run killed mid-write
    /// left there, and check that we can write there now rather than after the first film has
    /// been analysed.
    pub fn open(dir: &Path) -> Result<ResultsLog> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create results folder {}", dir.display()))?;
        let stale = remove_stale_partials(dir);
        if stale > 0 {
            tracing::warn!(
                "removed {stale} half-written file(s) left in {} by a run that stopped mid-write",
                dir.display()
            );
        }
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"")
            .with_context(|| format!("results folder {} is not writable", dir.display()))?;
        let _ = std::fs::remove_file(&probe);
        Ok(ResultsLog {
            dir: dir.to_path_buf(),
        })
    }

    /// The log folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh base name for the next record: `<UTC time>-<first 12 hex of the input hash>`,
    /// with `-2`, `-3`... if that record already exists.
    pub fn next_name(&self, now: SystemTime, sha: Option<&str>) -> String {
        let stamp = rfc3339(now).replace([':', '-'], "");
        let base = format!("{stamp}-{}", sha.map_or("none", |s| &s[..12.min(s.len())]));
        let mut name = base.clone();
        let mut n = 1;
        while self.dir.join(format!("{name}.json")).exists() {
            n += 1;
            name = format!("{base}-{n}");
        }
        name
    }

    /// The one way a film gets into the log. Names the record (`<origin>:<name>` becomes its
    /// `path`: the log names inputs by hash, never by a file name that may carry the patient's),
    /// keeps the heatmap picture beside it as `<name>.png` when `keep_images` is set and there
    /// is one, and writes `<name>.json` atomically. A picture that cannot be written is reported
    /// and left out of the record; a record that cannot be written is an error, also written
    /// into the analysis's record (so the screen says it was not recorded).
    pub fn record(&self, a: &mut Analysis, origin: Origin, keep_images: bool) -> Result<Recorded> {
        let name = self.next_name(SystemTime::now(), a.input_sha256.as_deref());
        a.record.path = format!("{}:{name}", origin.as_str());
        let image = a.heatmap.as_ref().filter(|_| keep_images).and_then(|pic| {
            let file = format!("{name}.png");
            write_png_atomically(pic, &self.dir.join(&file))
                .inspect_err(|e| tracing::warn!("cannot keep the picture {file}: {e:#}"))
                .ok()
                .map(|()| file)
        });
        let logged = Logged {
            time: rfc3339(SystemTime::now()),
            source: origin,
            input_sha256: a.input_sha256.clone(),
            image,
            record: &a.record,
        };
        match self.write(&name, &logged) {
            Ok(path) => Ok(Recorded { name, path }),
            Err(e) => {
                a.record
                    .error
                    .get_or_insert_with(|| format!("the result could not be recorded: {e:#}"));
                Err(e)
            }
        }
    }

    /// The record of the input with this SHA-256 written at or after `since` (UTC, RFC 3339),
    /// with its base name: how the watch folder learns, after a crash, that a film it was
    /// filing away had already been recorded. Records are named `<time>-<first 12 hex>`, so only
    /// those names are read.
    pub fn recorded_since(&self, sha256: &str, since: &str) -> Option<(String, StoredRecord)> {
        let key = format!("-{}", &sha256[..12.min(sha256.len())]);
        let entries = std::fs::read_dir(&self.dir).ok()?;
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.') && n.ends_with(".json") && n.contains(&key))
            .collect();
        names.sort();
        names.into_iter().rev().find_map(|n| {
            let bytes = std::fs::read(self.dir.join(&n)).ok()?;
            let rec: StoredRecord = serde_json::from_slice(&bytes).ok()?;
            let same = rec.input_sha256.as_deref() == Some(sha256) && rec.time.as_str() >= since;
            same.then(|| (n.trim_end_matches(".json").to_string(), rec))
        })
    }

    /// Write `rec` as `<name>.json` atomically; returns its path.
    fn write(&self, name: &str, rec: &Logged<&Record>) -> Result<PathBuf> {
        let path = self.dir.join(format!("{name}.json"));
        let mut body = serde_json::to_vec_pretty(rec).context("cannot serialise the record")?;
        body.push(b'\n');
        write_atomically(&path, &body)
            .with_context(|| format!("cannot write record {}", path.display()))?;
        Ok(path)
    }
}

/// Every record in `dir`, oldest first (names start with the time). Unreadable or broken
/// records are returned as errors beside the good ones, so one bad file hides nothing else.
pub fn read_all(dir: &Path) -> Result<Vec<(PathBuf, Result<StoredRecord>)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read results folder {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            !name.starts_with('.') && name.ends_with(".json")
        })
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| {
            let v = std::fs::read(&p)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<StoredRecord>(&b)?))
                .with_context(|| format!("bad record {}", p.display()));
            (p, v)
        })
        .collect())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time after 1970 (days to civil date: H. Hinnant's algorithm).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_matches_known_dates() {
        let at = |s| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_083_199), "2026-11-30T23:59:59Z");
    }

    #[test]
    fn records_are_whole_files_with_unique_names() {
        let dir = tempfile::tempdir().unwrap();
        let log = ResultsLog::open(&dir.path().join("log")).unwrap();
        let model = crate::model::ModelId {
            name: "m".into(),
            version: "1".into(),
            variant: "int8".into(),
            sha256: "0".repeat(12),
            profile: Default::default(),
        };
        let mut rec = Record::new("x", model);
        rec.error = Some("decode failed".into());
        let t = UNIX_EPOCH + Duration::from_secs(1_796_083_199);
        let sha = "ab".repeat(32);
        let a = log.next_name(t, Some(&sha));
        let stored = Logged {
            time: rfc3339(t),
            source: Origin::Inbox,
            input_sha256: Some(sha.clone()),
            image: None,
            record: &rec,
        };
        log.write(&a, &stored).unwrap();
        let b = log.next_name(t, Some(&sha));
        assert_eq!(a, "20261130T235959Z-abababababab");
        assert_eq!(b, format!("{a}-2"));
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(log.dir().join(format!("{a}.json"))).unwrap())
                .unwrap();
        assert_eq!(v["error"], "decode failed");
        assert_eq!(v["notice"], crate::NOTICE);
        assert_eq!(v["time"], "2026-11-30T23:59:59Z");
        assert_eq!(v["source"], "inbox");
        let names: Vec<_> = std::fs::read_dir(log.dir()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary files left behind");
        let back = read_all(log.dir()).unwrap();
        let got = back[0].1.as_ref().unwrap();
        assert_eq!(got.source, Origin::Inbox);
        assert_eq!(got.record.error.as_deref(), Some("decode failed"));
    }

    #[test]
    fn unwritable_folder_is_reported_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let e = ResultsLog::open(&file.join("log"))
            .err()
            .expect("must fail");
        assert!(format!("{e:#}").contains("cannot create results folder"));
    }
}
