//! The results log as the sync task sees it: for each destination, the records it has not yet
//! taken, oldest first, and a note of each one it takes or refuses.
//!
//! The outbox is not a second copy of the records: a record is waiting for a destination until
//! the `deliveries` table has a row for the two (see [`super::db`]). So a record made while the
//! network is down simply waits, a destination added later gets every record from the first
//! one, and a record that was sent but not noted (a power cut between the acknowledgement and
//! the commit) is sent again under the same id.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::Connection;

use super::db::{self, Tally, Waiting};

/// The sync task's own connection to the results database.
pub struct Outbox {
    dir: PathBuf,
    db: Connection,
}

impl Outbox {
    /// Open the results database of the storage folder `dir` (creating the folder and an empty
    /// database when there is none yet, as the service would).
    pub fn open(dir: &Path) -> Result<Outbox> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create results folder {}", dir.display()))?;
        Ok(Outbox {
            dir: dir.to_path_buf(),
            db: db::open(dir)?,
        })
    }

    /// The storage folder (the kept pictures are files in it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The oldest `limit` records `destination` has neither taken nor refused.
    pub fn waiting(&self, destination: &str, limit: u32) -> Result<Vec<Waiting>> {
        db::waiting(&self.db, destination, limit)
    }

    /// `destination` acknowledged record `id`: committed before this returns.
    pub fn sent(&self, destination: &str, id: i64) -> Result<()> {
        db::deliver(&self.db, destination, id, &now(), None)
    }

    /// `destination` refused record `id` for good: it leaves the queue, the reason is kept.
    pub fn parked(&self, destination: &str, id: i64, reason: &str) -> Result<()> {
        db::deliver(&self.db, destination, id, &now(), Some(reason))
    }

    /// Sent, waiting and parked records of `destination`.
    pub fn tally(&self, destination: &str) -> Result<Tally> {
        db::tally(&self.db, destination)
    }

    /// Put the records `destination` refused back in the queue; returns how many.
    pub fn unpark(&self, destination: &str) -> Result<usize> {
        db::unpark(&self.db, destination)
    }

    /// The newest record's time and model SHA-256, for the device's status message.
    pub fn newest(&self) -> Result<Option<(String, String)>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .db
            .query_row(
                "SELECT time, model_sha256 FROM records ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }
}

fn now() -> String {
    super::rfc3339(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analysis;
    use crate::store::{Origin, ResultsLog};

    fn record(log: &ResultsLog, n: u32) -> String {
        let model = crate::model::ModelId {
            name: "m".into(),
            version: "1".into(),
            variant: "int8".into(),
            sha256: "0".repeat(12),
            profile: Default::default(),
        };
        let mut a = Analysis::failed("x", model, "decode failed");
        a.input_sha256 = Some(format!("{n:064x}"));
        log.record(&mut a, Origin::Inbox, false).unwrap().name
    }

    #[test]
    fn each_destination_takes_every_record_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = ResultsLog::open(dir.path()).unwrap();
        let names: Vec<String> = (0..5).map(|n| record(&log, n)).collect();
        let out = Outbox::open(dir.path()).unwrap();

        let w = out.waiting("mqtt", 3).unwrap();
        let got: Vec<&str> = w.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            got,
            names[..3].iter().map(|s| s.as_str()).collect::<Vec<_>>()
        );
        out.sent("mqtt", w[0].id).unwrap();
        out.parked("mqtt", w[1].id, "413 too large").unwrap();
        // A refused record leaves the queue; the next one comes up.
        let w2 = out.waiting("mqtt", 10).unwrap();
        assert_eq!(w2.len(), 3);
        assert_eq!(w2[0].name, names[2]);
        // Another destination has its own queue.
        assert_eq!(out.waiting("dicomweb", 10).unwrap().len(), 5);

        let t = out.tally("mqtt").unwrap();
        assert_eq!((t.sent, t.waiting), (1, 3));
        assert_eq!(t.parked.len(), 1);
        assert_eq!(t.parked[0].0, names[1]);
        assert_eq!(t.parked[0].2, "413 too large");
        assert!(t.last_sent.is_some());

        // Sending again (a resend after a power cut) is harmless: still one row.
        out.sent("mqtt", w[0].id).unwrap();
        assert_eq!(out.tally("mqtt").unwrap().sent, 1);
        // Retrying the refused ones puts them back in order.
        assert_eq!(out.unpark("mqtt").unwrap(), 1);
        assert_eq!(out.waiting("mqtt", 1).unwrap()[0].name, names[1]);
        // A record made now joins the end of every queue.
        let late = record(&log, 99);
        assert_eq!(out.waiting("mqtt", 10).unwrap().last().unwrap().name, late);
        let (time, sha) = out.newest().unwrap().unwrap();
        assert_eq!(sha, "0".repeat(12));
        assert!(time.ends_with('Z'));
    }
}
