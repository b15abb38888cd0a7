//! The results log: one JSON file per analysed film in the storage folder, each written to a
//! temporary name, flushed to disk and renamed, so a power cut leaves whole records or none.
//!
//! No patient identifiers: a record names its input only by the SHA-256 of the file's bytes
//! (file names from a reader's export often carry the patient's name).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::app::analyse::Record;

#[derive(Debug, Serialize)]
pub struct StoredRecord<'a> {
    /// UTC, RFC 3339, second resolution.
    pub time: String,
    /// Where the film came from: "inbox" or "samples".
    pub source: &'static str,
    /// SHA-256 of the input bytes, so a record can be matched to its file without naming it.
    pub input_sha256: Option<String>,
    /// The picture kept with the record (heatmap over the film), relative to the log folder.
    pub image: Option<String>,
    #[serde(flatten)]
    pub record: &'a Record,
}

pub struct ResultsLog {
    dir: PathBuf,
}

impl ResultsLog {
    /// Open (creating if needed) the log folder and check that we can write there now rather
    /// than after the first film has been analysed.
    pub fn open(dir: &Path) -> Result<ResultsLog> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create results folder {}", dir.display()))?;
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"")
            .with_context(|| format!("results folder {} is not writable", dir.display()))?;
        let _ = std::fs::remove_file(&probe);
        Ok(ResultsLog {
            dir: dir.to_path_buf(),
        })
    }

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

    /// Write `rec` as `<name>.json` atomically; returns its path.
    pub fn write(&self, name: &str, rec: &StoredRecord) -> Result<PathBuf> {
        let path = self.dir.join(format!("{name}.json"));
        let tmp = self.dir.join(format!(".{name}.json.partial"));
        let body = serde_json::to_vec_pretty(rec).expect("record serialises");
        let res = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("cannot write record {}", path.display()));
        }
        Ok(path)
    }
}

impl ResultsLog {
    /// Write `rec` as `<name>.json` with its `picture` kept beside it as `<name>.png` (when
    /// given). A picture that cannot be written is reported and left out of the record; the
    /// record itself is still written.
    pub fn write_with_picture(
        &self,
        name: &str,
        source: &'static str,
        sha: &str,
        picture: Option<&image::RgbImage>,
        rec: &Record,
    ) -> Result<PathBuf> {
        let image = picture.and_then(|pic| {
            let file = format!("{name}.png");
            crate::app::analyse::write_png_atomically(pic, &self.dir.join(&file))
                .inspect_err(|e| eprintln!("cxr-edge: cannot keep the picture {file}: {e:#}"))
                .ok()
                .map(|()| file)
        });
        let stored = StoredRecord {
            time: rfc3339(SystemTime::now()),
            source,
            input_sha256: Some(sha.to_string()),
            image,
            record: rec,
        };
        self.write(name, &stored)
    }
}

/// Every record in `dir`, oldest first (names start with the time). Unreadable or broken
/// records are returned as errors beside the good ones, so one bad file hides nothing else.
pub fn read_all(dir: &Path) -> Result<Vec<(PathBuf, Result<serde_json::Value>)>> {
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
                .and_then(|b| Ok(serde_json::from_slice(&b)?))
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
        };
        let mut rec = Record::new("x", model);
        rec.error = Some("decode failed".into());
        let t = UNIX_EPOCH + Duration::from_secs(1_796_083_199);
        let sha = "ab".repeat(32);
        let a = log.next_name(t, Some(&sha));
        let stored = StoredRecord {
            time: rfc3339(t),
            source: "inbox",
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
        let names: Vec<_> = std::fs::read_dir(log.dir()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary files left behind");
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
