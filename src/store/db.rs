//! The results database: `results.sqlite` in the storage folder.
//!
//! SQLite in WAL mode with `synchronous = FULL`: a record is on disk when its INSERT returns, and
//! a power cut leaves every committed record and none of a half-made one (SQLite's own
//! guarantee, tested there with simulated power failures; `scripts/system-test` pulls the power
//! on the whole appliance). WAL also lets `cxr-edge history` read while the service writes.
//!
//! The schema is versioned with `PRAGMA user_version`; [`open`] brings an older database up to
//! date inside one transaction, so a database is never half-migrated.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// The database's file name inside the storage folder.
pub const FILE: &str = "results.sqlite";

/// The schema this build writes. Version 1: the records, in the order they were made.
/// Version 2: what each sync destination has taken (`deliveries`).
const SCHEMA_VERSION: i64 = 2;

const SCHEMA_V1: &str = "
CREATE TABLE records (
    id            INTEGER PRIMARY KEY,  -- the order in which records were made
    name          TEXT NOT NULL UNIQUE, -- <UTC time>-<first 12 hex of the input hash>[-n]
    time          TEXT NOT NULL,        -- RFC 3339, UTC
    source        TEXT NOT NULL,        -- inbox, samples, camera, upload
    input_sha256  TEXT,
    image         TEXT,                 -- the kept picture, relative to the storage folder
    model_sha256  TEXT NOT NULL,
    body          TEXT NOT NULL         -- the whole record as JSON (what history prints)
);
CREATE INDEX records_by_input ON records (input_sha256, time);
";

// A record is in a destination's outbox until it has a row here: `sent` when the destination
// acknowledged it (an MQTT PUBACK, a STOW-RS 200), `parked` when it refused it for good (the
// reason kept, the queue going on without it). Committed right after the acknowledgement, so a
// power cut in between sends that record again, which the ids make harmless.
const SCHEMA_V2: &str = "
CREATE TABLE deliveries (
    record_id    INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    destination  TEXT NOT NULL,         -- mqtt, dicomweb
    state        TEXT NOT NULL CHECK (state IN ('sent', 'parked')),
    time         TEXT NOT NULL,         -- when it was sent or parked, RFC 3339, UTC
    reason       TEXT,                  -- why the destination refused it
    PRIMARY KEY (record_id, destination)
) WITHOUT ROWID;
";

/// Open (creating if needed) the database in `dir` for writing, with the settings above.
pub fn open(dir: &Path) -> Result<Connection> {
    let path = dir.join(FILE);
    let mut db = Connection::open(&path)
        .with_context(|| format!("cannot open the results database {}", path.display()))?;
    // Another process (history, a second service) may hold the lock for a moment.
    db.busy_timeout(Duration::from_secs(10))?;
    let mode: String = db
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .with_context(|| format!("cannot set up {}", path.display()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Some file systems (network mounts) cannot share memory between processes; the
        // rollback journal is as safe, only slower and without reads during writes.
        tracing::warn!(
            "{} stays in journal mode {mode}: WAL is not available there",
            path.display()
        );
    }
    share_with_group(dir, &path);
    db.pragma_update(None, "synchronous", "FULL")?;
    db.pragma_update(None, "foreign_keys", true)?;
    migrate(&mut db).with_context(|| format!("cannot set up {}", path.display()))?;
    Ok(db)
}

/// When the storage folder is group-writable (`board/common/desktop-kiosk` makes it so, for a
/// kiosk run by the desktop's user beside the service), the database must be too: SQLite gives
/// its `-wal` and `-shm` files the database file's permissions, and a writer that cannot write
/// them cannot record anything.
fn share_with_group(dir: &Path, db: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let group_writable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o020 != 0)
            .unwrap_or(false)
    };
    if group_writable(dir) && !group_writable(db) {
        if let Ok(m) = std::fs::metadata(db) {
            let mode = m.permissions().mode() | 0o060;
            if let Err(e) = std::fs::set_permissions(db, std::fs::Permissions::from_mode(mode)) {
                tracing::warn!("cannot let the group write {}: {e}", db.display());
            }
        }
    }
}

/// Open the database in `dir` only to read it (`cxr-edge history`), or `None` when there is
/// none. Never creates or changes anything, so it works for a user who may not write there.
pub fn open_read_only(dir: &Path) -> Result<Option<Connection>> {
    let path = dir.join(FILE);
    if !path.exists() {
        return Ok(None);
    }
    let db = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open the results database {}", path.display()))?;
    db.busy_timeout(Duration::from_secs(10))?;
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        bail!(
            "{} was written by a newer cxr-edge (schema {version}, this one reads up to {SCHEMA_VERSION})",
            path.display()
        );
    }
    Ok(Some(db))
}

fn migrate(db: &mut Connection) -> Result<()> {
    let tx = db.transaction()?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        bail!("it was written by a newer cxr-edge (schema {version}, this one knows up to {SCHEMA_VERSION}); refusing to change it");
    }
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)?;
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// One row to insert.
pub struct NewRecord<'a> {
    /// When it was made: UTC, RFC 3339.
    pub time: &'a str,
    /// Where the film came from (`Origin::as_str`).
    pub source: &'a str,
    /// SHA-256 of the input, when it could be read.
    pub input_sha256: Option<&'a str>,
    /// The kept picture, relative to the storage folder.
    pub image: Option<&'a str>,
    /// The model file the record was scored with.
    pub model_sha256: &'a str,
    /// The whole record as JSON.
    pub body: &'a str,
}

/// Insert a record under `base`, or `base-2`, `base-3`... when that name is taken; returns the
/// name used. One statement, so one transaction: committed (and on disk) when this returns.
pub fn insert(db: &Connection, base: &str, r: &NewRecord) -> Result<String> {
    let mut stmt = db.prepare_cached(
        "INSERT INTO records (name, time, source, input_sha256, image, model_sha256, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (name) DO NOTHING",
    )?;
    for n in 1..=10_000u32 {
        let name = if n == 1 {
            base.to_string()
        } else {
            format!("{base}-{n}")
        };
        let added = stmt.execute(rusqlite::params![
            name,
            r.time,
            r.source,
            r.input_sha256,
            r.image,
            r.model_sha256,
            r.body
        ])?;
        if added == 1 {
            return Ok(name);
        }
    }
    bail!("10,000 records already carry the name {base}")
}

/// `base`, or `base-2`, `base-3`... : the first name no record carries yet.
pub fn free_name(db: &Connection, base: &str) -> Result<String> {
    let mut name = base.to_string();
    let mut n = 1;
    while has_name(db, &name)? {
        n += 1;
        name = format!("{base}-{n}");
    }
    Ok(name)
}

/// Whether a record of this name exists.
pub fn has_name(db: &Connection, name: &str) -> Result<bool> {
    Ok(db
        .query_row("SELECT 1 FROM records WHERE name = ?1", [name], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The newest record of the input with this SHA-256 made at or after `since`: (name, body).
pub fn newest_for_input(
    db: &Connection,
    sha256: &str,
    since: &str,
) -> Result<Option<(String, String)>> {
    Ok(db
        .query_row(
            "SELECT name, body FROM records WHERE input_sha256 = ?1 AND time >= ?2
             ORDER BY id DESC LIMIT 1",
            [sha256, since],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// The newest record's body.
pub fn newest_body(db: &Connection) -> Result<Option<String>> {
    Ok(db
        .query_row(
            "SELECT body FROM records ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// Every record, oldest first: (name, body).
pub fn all(db: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = db.prepare("SELECT name, body FROM records ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A record waiting for a destination.
#[derive(Debug)]
pub struct Waiting {
    /// Its place in the order records were made.
    pub id: i64,
    /// Its name in the log.
    pub name: String,
    /// The kept picture, relative to the storage folder.
    pub image: Option<String>,
    /// The whole record as JSON.
    pub body: String,
}

/// The oldest `limit` records `destination` has neither taken nor refused, oldest first.
pub fn waiting(db: &Connection, destination: &str, limit: u32) -> Result<Vec<Waiting>> {
    let mut stmt = db.prepare_cached(
        "SELECT r.id, r.name, r.image, r.body FROM records r
         WHERE NOT EXISTS (SELECT 1 FROM deliveries d
                           WHERE d.record_id = r.id AND d.destination = ?1)
         ORDER BY r.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![destination, limit], |r| {
        Ok(Waiting {
            id: r.get(0)?,
            name: r.get(1)?,
            image: r.get(2)?,
            body: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Note that `destination` took (`reason` None) or refused the record `id`. One statement, so
/// committed when this returns.
pub fn deliver(
    db: &Connection,
    destination: &str,
    id: i64,
    time: &str,
    refused: Option<&str>,
) -> Result<()> {
    db.prepare_cached(
        "INSERT OR REPLACE INTO deliveries (record_id, destination, state, time, reason)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(rusqlite::params![
        id,
        destination,
        if refused.is_some() { "parked" } else { "sent" },
        time,
        refused
    ])?;
    Ok(())
}

/// Where one destination stands.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    /// Records it took.
    pub sent: u64,
    /// Records it refused: (name, when, why), oldest first.
    pub parked: Vec<(String, String, String)>,
    /// Records not yet offered, or offered and not acknowledged.
    pub waiting: u64,
    /// When it last took one.
    pub last_sent: Option<String>,
}

/// Counts for `cxr-edge sync --status`.
pub fn tally(db: &Connection, destination: &str) -> Result<Tally> {
    let (sent, last_sent): (u64, Option<String>) = db.query_row(
        "SELECT COUNT(*), MAX(time) FROM deliveries WHERE destination = ?1 AND state = 'sent'",
        [destination],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let waiting: u64 = db.query_row(
        "SELECT COUNT(*) FROM records r WHERE NOT EXISTS (SELECT 1 FROM deliveries d
         WHERE d.record_id = r.id AND d.destination = ?1)",
        [destination],
        |r| r.get(0),
    )?;
    let mut stmt = db.prepare(
        "SELECT r.name, d.time, COALESCE(d.reason, '') FROM deliveries d
         JOIN records r ON r.id = d.record_id
         WHERE d.destination = ?1 AND d.state = 'parked' ORDER BY r.id",
    )?;
    let parked = stmt
        .query_map([destination], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Tally {
        sent,
        parked,
        waiting,
        last_sent,
    })
}

/// Put the records `destination` refused back in its outbox (`sync --retry-parked`, after the
/// cause was fixed at the destination). Returns how many.
pub fn unpark(db: &Connection, destination: &str) -> Result<usize> {
    Ok(db.execute(
        "DELETE FROM deliveries WHERE destination = ?1 AND state = 'parked'",
        [destination],
    )?)
}
