//! The results log: one SQLite database in the storage folder (`results.sqlite`, see [`db`]),
//! one row per analysed film, committed to disk before the film counts as recorded, so a power
//! cut leaves whole records or none. The kept pictures are files beside it.
//!
//! No patient identifiers: a record names its input only by the SHA-256 of the file's bytes
//! (file names from a reader's export often carry the patient's name). Each record says where
//! its film came from ([`Origin`]: `inbox`, `samples`, `camera`, `upload` or `classify`; `retention` for the
//! note that records were removed before they were sent, [`retention`]). Every face writes
//! through [`ResultsLog::record`]; `cxr-edge history` reads them back with [`read_all`].
//!
//! Earlier versions kept one JSON file per record in the same folder. [`ResultsLog::open`]
//! imports such files once (idempotent: a record already in the database is not added again)
//! and moves them to `imported/`, so nothing is lost and nothing is counted twice.

pub mod db;
pub mod outbox;
pub mod retention;
pub mod unit;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use anyhow::{Context, Result};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::files::{remove_stale_partials, write_png_atomically};
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
    /// `cxr-edge classify --store`.
    Classify,
    /// A note of the retention rules (records removed before they were sent).
    Retention,
}

impl Origin {
    /// The name written in records and record paths (`inbox`, `samples`, `camera`, `upload`,
    /// `classify`).
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Inbox => "inbox",
            Origin::Samples => "samples",
            Origin::Camera => "camera",
            Origin::Upload => "upload",
            Origin::Classify => "classify",
            Origin::Retention => "retention",
        }
    }
}

/// One record of the results log: the record with where and when it was made.
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
    /// The record itself, its fields at the top level of the JSON.
    #[serde(flatten)]
    pub record: R,
}

/// A record as read back from the log.
pub type StoredRecord = Logged<Record>;

/// The results log of one storage folder: the database and the kept pictures.
pub struct ResultsLog {
    dir: PathBuf,
    // One connection, shared by the threads of one process (the upload server's workers);
    // SQLite itself serialises writers of different processes.
    db: Mutex<Connection>,
}

/// Where [`ResultsLog::record`] put a record.
#[derive(Debug)]
pub struct Recorded {
    /// The record's name in the log (`<time>-<hash>`), also the kept picture's stem.
    pub name: String,
}

impl ResultsLog {
    /// Open (creating if needed) the storage folder and its database, remove the temporaries a
    /// run killed mid-write left there, and import the record files of earlier versions. Fails
    /// now, rather than after the first film has been analysed, when the folder is not writable.
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
        let db = db::open(dir)?;
        let log = ResultsLog {
            dir: dir.to_path_buf(),
            db: Mutex::new(db),
        };
        log.import_json_records()?;
        Ok(log)
    }

    /// A second handle on a log another part of this process has opened (retention, beside
    /// the service's loop): the database only, none of [`ResultsLog::open`]'s clean-up, which
    /// could remove a picture the loop is writing at that moment.
    pub fn attach(dir: &Path) -> Result<ResultsLog> {
        Ok(ResultsLog {
            dir: dir.to_path_buf(),
            db: Mutex::new(db::open(dir)?),
        })
    }

    /// The log folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        // A thread that panicked while holding the lock cannot have left a half-written record:
        // every write is one SQLite transaction.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh name for the next record: `<UTC time>-<first 12 hex of the input hash>`, with
    /// `-2`, `-3`... if that name is already taken.
    pub fn next_name(&self, now: SystemTime, sha: Option<&str>) -> Result<String> {
        db::free_name(&self.db(), &base_name(now, sha))
    }

    /// The one way a film gets into the log. Names the record (`<origin>:<name>` becomes its
    /// `path`: the log names inputs by hash, never by a file name that may carry the patient's),
    /// keeps the heatmap picture beside the database as `<name>.png` when `keep_images` is set
    /// and there is one, and commits the record. A picture that cannot be written is reported
    /// and left out of the record; a record that cannot be committed is an error, also written
    /// into the analysis's record (so the screen says it was not recorded).
    pub fn record(&self, a: &mut Analysis, origin: Origin, keep_images: bool) -> Result<Recorded> {
        let result = self.try_record(a, origin, keep_images);
        if let Err(e) = &result {
            a.record
                .error
                .get_or_insert_with(|| format!("the result could not be recorded: {e:#}"));
        }
        result
    }

    fn try_record(&self, a: &mut Analysis, origin: Origin, keep_images: bool) -> Result<Recorded> {
        let now = SystemTime::now();
        // The name is chosen and the row inserted under one lock, so the threads of this
        // process never race for a name; another process can still take it in between, and
        // then the row gets the next free name while `image` keeps naming the real file.
        let db = self.db();
        let name = db::free_name(&db, &base_name(now, a.input_sha256.as_deref()))?;
        a.record.path = format!("{}:{name}", origin.as_str());
        let image = a.heatmap.as_ref().filter(|_| keep_images).and_then(|pic| {
            let file = format!("{name}.png");
            write_png_atomically(pic, &self.dir.join(&file))
                .inspect_err(|e| tracing::warn!("cannot keep the picture {file}: {e:#}"))
                .ok()
                .map(|()| file)
        });
        let logged = Logged {
            time: rfc3339(now),
            source: origin,
            input_sha256: a.input_sha256.clone(),
            image,
            record: &a.record,
        };
        let body = serde_json::to_string(&logged).context("cannot serialise the record")?;
        let row = db::NewRecord {
            time: &logged.time,
            source: origin.as_str(),
            input_sha256: logged.input_sha256.as_deref(),
            image: logged.image.as_deref(),
            model_sha256: &a.record.model.sha256,
            body: &body,
        };
        let name = db::insert(&db, &name, &row).with_context(|| {
            format!(
                "cannot write the record into {}",
                self.dir.join(db::FILE).display()
            )
        })?;
        Ok(Recorded { name })
    }

    /// The record of the input with this SHA-256 made at or after `since` (UTC, RFC 3339),
    /// with its name: how the watch folder learns, after a crash, that a film it was filing
    /// away had already been recorded.
    pub fn recorded_since(&self, sha256: &str, since: &str) -> Option<(String, StoredRecord)> {
        let found = db::newest_for_input(&self.db(), sha256, since)
            .inspect_err(|e| tracing::warn!("cannot look up earlier records: {e:#}"))
            .ok()??;
        let rec = serde_json::from_str(&found.1).ok()?;
        Some((found.0, rec))
    }

    /// Every record in the log, oldest first.
    pub fn records(&self) -> Result<Vec<(String, Result<StoredRecord>)>> {
        Ok(parse_rows(db::all(&self.db())?))
    }

    /// Import the JSON record files of earlier versions (`<name>.json` in the folder), oldest
    /// first, each under its own name, then move them to `imported/`. Run again after a crash
    /// between the two steps, it finds the names already there and only moves the files. A
    /// file that does not parse stays where it is, with a warning: nothing is thrown away.
    fn import_json_records(&self) -> Result<()> {
        let files = json_record_files(&self.dir)?;
        if files.is_empty() {
            return Ok(());
        }
        let done_dir = self.dir.join("imported");
        std::fs::create_dir_all(&done_dir)
            .with_context(|| format!("cannot create {}", done_dir.display()))?;
        let (mut added, mut kept) = (0usize, 0usize);
        let mut db = self.db();
        let tx = db.transaction()?;
        let mut moves = Vec::new();
        for path in files {
            let name = stem(&path);
            let parsed = std::fs::read_to_string(&path)
                .map_err(anyhow::Error::from)
                .and_then(|text| Ok((serde_json::from_str::<StoredRecord>(&text)?, text)));
            let (rec, text) = match parsed {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(
                        "record file {} does not parse and was not imported (left in place): {e:#}",
                        path.display()
                    );
                    kept += 1;
                    continue;
                }
            };
            if !db::has_name(&tx, &name)? {
                let row = db::NewRecord {
                    time: &rec.time,
                    source: rec.source.as_str(),
                    input_sha256: rec.input_sha256.as_deref(),
                    image: rec.image.as_deref(),
                    model_sha256: &rec.record.model.sha256,
                    body: text.trim_end(),
                };
                db::insert(&tx, &name, &row)?;
                added += 1;
            }
            moves.push(path);
        }
        tx.commit()
            .context("cannot commit the imported record files")?;
        drop(db);
        for path in moves {
            let to = done_dir.join(path.file_name().unwrap_or_default());
            if let Err(e) = std::fs::rename(&path, &to) {
                tracing::warn!("imported {} but cannot move it: {e}", path.display());
            }
        }
        tracing::info!(
            "imported {added} record file(s) of an earlier version into {}{}",
            self.dir.join(db::FILE).display(),
            if kept > 0 {
                format!("; {kept} that do not parse stay in the folder")
            } else {
                String::new()
            }
        );
        Ok(())
    }
}

fn base_name(now: SystemTime, sha: Option<&str>) -> String {
    let stamp = rfc3339(now).replace([':', '-'], "");
    format!("{stamp}-{}", sha.map_or("none", |s| &s[..12.min(s.len())]))
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `<name>.json` record files of earlier versions in `dir`, sorted by name (= by time).
fn json_record_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read results folder {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            !name.starts_with('.') && name.ends_with(".json") && p.is_file()
        })
        .collect();
    paths.sort();
    Ok(paths)
}

fn parse_rows(rows: Vec<(String, String)>) -> Vec<(String, Result<StoredRecord>)> {
    rows.into_iter()
        .map(|(name, body)| {
            let r = serde_json::from_str::<StoredRecord>(&body)
                .with_context(|| format!("bad record {name}"));
            (name, r)
        })
        .collect()
}

/// Every record in the storage folder `dir`, oldest first, without changing anything there
/// (so `cxr-edge history` works for a user who may only read the folder): the database's
/// records, after any record files of an earlier version that the service has not imported
/// yet. Records that do not parse are returned as errors beside the good ones, so one bad
/// record hides nothing else.
pub fn read_all(dir: &Path) -> Result<Vec<(String, Result<StoredRecord>)>> {
    let mut out: Vec<(String, Result<StoredRecord>)> = json_record_files(dir)?
        .into_iter()
        .map(|p| {
            let r = std::fs::read(&p)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<StoredRecord>(&b)?))
                .with_context(|| format!("bad record {}", p.display()));
            (stem(&p), r)
        })
        .collect();
    if let Some(db) = db::open_read_only(dir)? {
        out.extend(parse_rows(db::all(&db)?));
    }
    Ok(out)
}

pub use crate::time::{parse_rfc3339, rfc3339};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_matches_known_dates() {
        let at = |s| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_083_199), "2026-11-30T23:59:59Z");
        for secs in [0, 951_782_400, 1_796_083_199, 4_102_444_800] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        for bad in [
            "",
            "2026-11-30 23:59:59Z",
            "2026-13-01T00:00:00Z",
            "+026-11-30T23:59:59Z",
            "2026-11-30T23:59:59+01",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    fn model() -> crate::model::ModelId {
        crate::model::ModelId {
            name: "m".into(),
            version: "1".into(),
            variant: "int8".into(),
            sha256: "0".repeat(12),
            profile: Default::default(),
        }
    }

    fn analysis(sha: &str, heatmap: bool) -> Analysis {
        let mut a = Analysis::failed("x", model(), "decode failed");
        a.input_sha256 = Some(sha.to_string());
        a.heatmap = heatmap.then(|| image::RgbImage::new(4, 3));
        a
    }

    #[test]
    fn records_are_committed_with_unique_names_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let log = ResultsLog::open(&dir.path().join("log")).unwrap();
        let sha = "ab".repeat(32);
        let t = UNIX_EPOCH + Duration::from_secs(1_796_083_199);
        assert_eq!(
            log.next_name(t, Some(&sha)).unwrap(),
            "20261130T235959Z-abababababab"
        );
        let mut a = analysis(&sha, true);
        let first = log.record(&mut a, Origin::Inbox, true).unwrap();
        assert_eq!(a.record.path, format!("inbox:{}", first.name));
        assert!(log.dir().join(format!("{}.png", first.name)).is_file());
        // The same film again within the same second gets the next name; no picture kept.
        let mut b = analysis(&sha, true);
        b.record.path = "y".into();
        let second = log.record(&mut b, Origin::Upload, false).unwrap();
        assert_ne!(first.name, second.name);
        // Names are unique: a taken one gets -2, -3...
        let row = db::NewRecord {
            time: "2026-11-30T23:59:59Z",
            source: "inbox",
            input_sha256: Some(&sha),
            image: None,
            model_sha256: "0",
            body: "{}",
        };
        let base = "20261130T235959Z-abababababab";
        assert_eq!(db::insert(&log.db(), base, &row).unwrap(), base);
        assert_eq!(
            db::insert(&log.db(), base, &row).unwrap(),
            format!("{base}-2")
        );
        assert_eq!(log.next_name(t, Some(&sha)).unwrap(), format!("{base}-3"));

        let back = read_all(log.dir()).unwrap();
        assert_eq!(back.len(), 4);
        let v = serde_json::to_value(back[0].1.as_ref().unwrap()).unwrap();
        assert_eq!(v["error"], "decode failed");
        assert_eq!(v["notice"], crate::NOTICE);
        assert_eq!(v["source"], "inbox");
        assert_eq!(v["image"], format!("{}.png", first.name));
        assert_eq!(v["input_sha256"], sha);
        let second_back = back[1].1.as_ref().unwrap();
        assert_eq!(second_back.source, Origin::Upload);
        assert!(second_back.image.is_none());
        // The watch folder's question after a crash: was this film recorded since then?
        let (name, _) = log.recorded_since(&sha, "2026-12-01T00:00:00Z").unwrap();
        assert_eq!(name, second.name);
        assert!(log.recorded_since(&sha, "2999-01-01T00:00:00Z").is_none());
        assert!(log
            .recorded_since(&"cd".repeat(32), "2000-01-01T00:00:00Z")
            .is_none());
        // Only the database, its WAL files and the picture: no temporaries.
        for e in std::fs::read_dir(log.dir()).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(n.starts_with(db::FILE) || n.ends_with(".png"), "{n}");
        }
    }

    #[test]
    fn record_files_of_earlier_versions_are_imported_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("log");
        std::fs::create_dir_all(&folder).unwrap();
        let mut rec = Record::new("inbox:20250101T000000Z-abababababab", model());
        rec.error = Some("old".into());
        let old = Logged {
            time: "2025-01-01T00:00:00Z".to_string(),
            source: Origin::Inbox,
            input_sha256: Some("ab".repeat(32)),
            image: None,
            record: &rec,
        };
        let good = folder.join("20250101T000000Z-abababababab.json");
        std::fs::write(&good, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
        let broken = folder.join("20250101T000001Z-cdcdcdcdcdcd.json");
        std::fs::write(&broken, b"{\"time\": ").unwrap();

        // Before the service has run: history reads the files as they are.
        let before = read_all(&folder).unwrap();
        assert_eq!(before.len(), 2);
        assert!(before[0].1.is_ok() && before[1].1.is_err());

        for _ in 0..2 {
            let log = ResultsLog::open(&folder).unwrap();
            let all = log.records().unwrap();
            assert_eq!(
                all.len(),
                1,
                "imported once, however often the log is opened"
            );
            assert_eq!(all[0].0, "20250101T000000Z-abababababab");
            assert_eq!(
                all[0].1.as_ref().unwrap().record.error.as_deref(),
                Some("old")
            );
        }
        assert!(!good.exists());
        assert!(folder
            .join("imported/20250101T000000Z-abababababab.json")
            .is_file());
        assert!(
            broken.is_file(),
            "a file that does not parse is left where it was"
        );
        // A crash between the commit and the move: the file is back, and still counted once.
        std::fs::copy(
            folder.join("imported/20250101T000000Z-abababababab.json"),
            &good,
        )
        .unwrap();
        let log = ResultsLog::open(&folder).unwrap();
        assert_eq!(log.records().unwrap().len(), 1);
        let after = read_all(&folder).unwrap();
        assert_eq!(after.len(), 2, "the broken file, then the imported record");
        assert!(format!("{:#}", after[0].1.as_ref().unwrap_err()).contains("bad record"));
    }

    #[test]
    fn a_database_from_a_newer_version_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        drop(ResultsLog::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join(db::FILE)).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let e = ResultsLog::open(dir.path()).err().expect("must refuse"); // ResultsLog is not Debug
        assert!(format!("{e:#}").contains("newer cxr-edge"), "{e:#}");
        let e = read_all(dir.path()).expect_err("must refuse");
        assert!(format!("{e:#}").contains("newer cxr-edge"), "{e:#}");
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
