//! Retention: old records and pictures leave the SD card before it fills (`[storage] keep_days`,
//! `max_disk_mb`).
//!
//! The rules, in order, each oldest first:
//! 1. a record older than `keep_days` goes once every sync destination has taken it (with no
//!    destination configured, there is nothing to wait for); an original in the watch folder's
//!    `done/` older than `keep_days` goes too;
//! 2. while the storage is over `max_disk_mb`: `done/` originals (their records hold the
//!    result), then records every destination has taken, with their pictures;
//! 3. only when nothing else is left and the storage is still over the limit: records not yet
//!    sent, and then a warning record says how many and of which times, so the study learns
//!    that data was lost rather than finding a gap.
//!
//! A refused (parked) record counts as not sent: a person has to look at it first.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use super::{db, rfc3339, Origin, ResultsLog};
use crate::analysis::Analysis;

/// What to keep.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Records (once sent) and `done/` originals older than this many days go; 0 keeps them.
    pub keep_days: u32,
    /// The storage folder and `done/` together stay under this many bytes; 0: no limit.
    pub max_bytes: u64,
}

/// What one pass removed.
#[derive(Debug, Default, PartialEq)]
pub struct Pruned {
    /// Records every destination had taken.
    pub sent: usize,
    /// Records not yet sent (the disk was full).
    pub unsent: usize,
    /// Originals in `done/`.
    pub originals: usize,
    /// Bytes in use afterwards (records, pictures, originals).
    pub bytes: u64,
}

struct Row {
    id: i64,
    time: String,
    image: Option<String>,
    body_len: u64,
    sent: bool,
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// The originals in `done/`, oldest first: (path, size, modified).
fn originals(done: Option<&Path>) -> Vec<(PathBuf, u64, SystemTime)> {
    let Some(dir) = done else { return Vec::new() };
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let m = e.metadata().ok().filter(|m| m.is_file())?;
                    Some((
                        e.path(),
                        m.len(),
                        m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
    v
}

impl ResultsLog {
    /// One retention pass at `now` (see the module's rules). `destinations` are the sync
    /// destinations configured (`mqtt`, `dicomweb`); `done` the watch folder's `done/`.
    pub fn prune(
        &self,
        destinations: &[&str],
        policy: &Policy,
        done: Option<&Path>,
        now: SystemTime,
    ) -> Result<Pruned> {
        let cutoff = (policy.keep_days > 0)
            .then(|| rfc3339(now - Duration::from_secs(u64::from(policy.keep_days) * 86_400)));
        let rows = self.rows(destinations)?;
        let mut out = Pruned::default();
        let picture = |r: &Row| r.image.as_ref().map_or(0, |i| file_size(&self.dir.join(i)));
        let mut used: u64 = self.db_bytes()?
            + rows.iter().map(picture).sum::<u64>()
            + originals(done).iter().map(|o| o.1).sum::<u64>();
        let mut gone = vec![false; rows.len()];
        // 1. Age.
        if let Some(cutoff) = &cutoff {
            for (i, r) in rows.iter().enumerate() {
                if r.sent && r.time < *cutoff {
                    used = used.saturating_sub(picture(r) + r.body_len);
                    self.remove(r)?;
                    gone[i] = true;
                    out.sent += 1;
                }
            }
        }
        let limit = (policy.max_bytes > 0).then_some(policy.max_bytes);
        for (path, size, modified) in originals(done) {
            let old = cutoff.is_some()
                && now.duration_since(modified).unwrap_or_default()
                    > Duration::from_secs(u64::from(policy.keep_days) * 86_400);
            // 2. Size: originals first.
            if (old || limit.is_some_and(|l| used > l)) && std::fs::remove_file(&path).is_ok() {
                used = used.saturating_sub(size);
                out.originals += 1;
            }
        }
        // 2. Size: then sent records; 3. then the rest.
        let mut lost: Vec<&Row> = Vec::new();
        for pass_sent in [true, false] {
            for (i, r) in rows.iter().enumerate() {
                if limit.is_none_or(|l| used <= l) {
                    break;
                }
                if gone[i] || r.sent != pass_sent {
                    continue;
                }
                used = used.saturating_sub(picture(r) + r.body_len);
                self.remove(r)?;
                gone[i] = true;
                if pass_sent {
                    out.sent += 1;
                } else {
                    lost.push(r);
                }
            }
        }
        out.unsent = lost.len();
        if let (Some(first), Some(last)) = (lost.first(), lost.last()) {
            let why = format!(
                "retention: {} record(s) not yet sent were removed (made {} to {}): the storage reached max_disk_mb",
                lost.len(),
                first.time,
                last.time
            );
            tracing::warn!("{why}");
            let mut a = Analysis::failed("retention", self.newest_model()?, &why);
            self.record(&mut a, Origin::Retention, false)?;
        }
        out.bytes = used;
        Ok(out)
    }

    fn rows(&self, destinations: &[&str]) -> Result<Vec<Row>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT id, time, image, length(body),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.record_id = r.id AND d.state = 'sent'
                     AND d.destination IN (SELECT value FROM json_each(?1)))
             FROM records r ORDER BY id",
        )?;
        let wanted = serde_json::to_string(destinations)?;
        let rows = stmt.query_map([wanted], |r| {
            let n: i64 = r.get(4)?;
            Ok(Row {
                id: r.get(0)?,
                time: r.get(1)?,
                image: r.get(2)?,
                body_len: r.get::<_, i64>(3)?.max(0) as u64,
                sent: n == destinations.len() as i64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The database's pages in use (freed pages are reused, never returned to the file system
    /// without a VACUUM, so the file's size would overstate what records take).
    fn db_bytes(&self) -> Result<u64> {
        let db = self.db();
        let q = |p: &str| -> Result<u64> {
            Ok(db
                .pragma_query_value(None, p, |r| r.get::<_, i64>(0))?
                .max(0) as u64)
        };
        Ok((q("page_count")?.saturating_sub(q("freelist_count")?)) * q("page_size")?)
    }

    fn remove(&self, r: &Row) -> Result<()> {
        // The row first: a power cut in between leaves a picture without a record (found and
        // removed by the next pass's size rule only as bytes), never a record without its picture
        // that history would show as broken.
        self.db()
            .execute("DELETE FROM records WHERE id = ?1", [r.id])
            .context("cannot remove an old record")?;
        if let Some(i) = &r.image {
            let _ = std::fs::remove_file(self.dir.join(i));
        }
        Ok(())
    }

    fn newest_model(&self) -> Result<crate::model::ModelId> {
        let body: Option<String> = db::newest_body(&self.db())?;
        Ok(body
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .and_then(|v| serde_json::from_value(v["model"].clone()).ok())
            .unwrap_or(crate::model::ModelId {
                name: "none".into(),
                version: String::new(),
                variant: String::new(),
                sha256: String::new(),
                profile: Default::default(),
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn model() -> crate::model::ModelId {
        crate::model::ModelId {
            name: "m".into(),
            version: "1".into(),
            variant: "int8".into(),
            sha256: "0".repeat(12),
            profile: Default::default(),
        }
    }

    /// `n` records with a 40 KB picture each; their ids, oldest first.
    fn fill(log: &ResultsLog, n: u32) -> Vec<i64> {
        (0..n)
            .map(|i| {
                let mut a = Analysis::failed("x", model(), "e");
                a.input_sha256 = Some(format!("{i:064x}"));
                // Noise, so the PNG does not compress away.
                let px: Vec<u8> = (0..120 * 110 * 3)
                    .map(|k| ((k * 7919 + i as usize * 31) % 251) as u8)
                    .collect();
                a.heatmap = Some(image::RgbImage::from_raw(120, 110, px).unwrap());
                log.record(&mut a, Origin::Inbox, true).unwrap();
                log.db().last_insert_rowid()
            })
            .collect()
    }

    #[test]
    fn a_full_disk_never_costs_an_unsent_record_while_a_sent_one_remains() {
        let dir = tempfile::tempdir().unwrap();
        let log = ResultsLog::open(dir.path()).unwrap();
        let ids = fill(&log, 20);
        // The oldest ten were sent to both destinations; of the rest, one only to MQTT.
        for id in &ids[..10] {
            for d in ["mqtt", "dicomweb"] {
                db::deliver(&log.db(), d, *id, "2026-12-01T00:00:00Z", None).unwrap();
            }
        }
        db::deliver(&log.db(), "mqtt", ids[12], "2026-12-01T00:00:00Z", None).unwrap();
        let dests = ["mqtt", "dicomweb"];
        let now = SystemTime::now();
        let before = log.prune(&dests, &Policy::default(), None, now).unwrap();
        assert_eq!(
            (before.sent, before.unsent),
            (0, 0),
            "no limits, nothing goes"
        );
        let per_record = before.bytes / 20;

        // Room for about 14 records: 6 of the sent ones go, oldest first, no unsent one.
        let p = Policy {
            keep_days: 0,
            max_bytes: per_record * 14,
        };
        let r = log.prune(&dests, &p, None, now).unwrap();
        assert!(r.sent >= 5 && r.sent <= 7 && r.unsent == 0, "{r:?}");
        let left: Vec<i64> = log.rows(&dests).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(left[0], ids[r.sent], "oldest first");
        assert!(
            ids[10..].iter().all(|id| left.contains(id)),
            "every unsent record is still there"
        );
        let pictures = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
            .count();
        assert_eq!(pictures, left.len(), "pictures go with their records");

        // Room for 5: every sent record goes first, then the oldest unsent, with a warning record.
        let sent_left = left.iter().filter(|id| ids[..10].contains(id)).count();
        let p = Policy {
            keep_days: 0,
            max_bytes: per_record * 5,
        };
        let r = log.prune(&dests, &p, None, now).unwrap();
        assert_eq!(r.sent, sent_left, "{r:?}");
        assert!(r.unsent > 0, "{r:?}");
        let kept: Vec<i64> = log.rows(&dests).unwrap().iter().map(|r| r.id).collect();
        assert!(kept.contains(&ids[19]), "the newest record stays");
        let all = log.records().unwrap();
        let warning = all.last().unwrap().1.as_ref().unwrap();
        assert_eq!(warning.source, Origin::Retention);
        assert!(warning
            .record
            .error
            .as_ref()
            .unwrap()
            .contains("not yet sent were removed"));
    }

    #[test]
    fn old_records_go_only_once_sent_and_old_originals_go() {
        let dir = tempfile::tempdir().unwrap();
        let log = ResultsLog::open(&dir.path().join("results")).unwrap();
        let ids = fill(&log, 3);
        // Made "40 days ago": rewrite their times.
        log.db()
            .execute("UPDATE records SET time = '2026-01-01T00:00:00Z'", [])
            .unwrap();
        db::deliver(&log.db(), "mqtt", ids[0], "2026-01-02T00:00:00Z", None).unwrap();
        let done = dir.path().join("done");
        std::fs::create_dir_all(&done).unwrap();
        std::fs::write(done.join("old.png"), b"x").unwrap();
        let old = std::fs::File::options()
            .write(true)
            .open(done.join("old.png"))
            .unwrap();
        old.set_modified(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
            .unwrap(); // 2026-01-01
        std::fs::write(done.join("new.png"), b"y").unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_770_681_600); // 2026-02-10
        let p = Policy {
            keep_days: 30,
            max_bytes: 0,
        };
        let r = log.prune(&["mqtt"], &p, Some(&done), now).unwrap();
        assert_eq!((r.sent, r.unsent, r.originals), (1, 0, 1));
        assert_eq!(
            log.records().unwrap().len(),
            2,
            "the unsent ones stay, however old"
        );
        assert!(!done.join("old.png").exists() && done.join("new.png").exists());
        // With no destination at all, old records simply go.
        let r = log.prune(&[], &p, Some(&done), now).unwrap();
        assert_eq!(r.sent, 2);
    }
}
