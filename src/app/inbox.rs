//! The watch folder: every image file that appears in it (and has stopped changing) is analysed
//! once, recorded, shown, and then moved to `done/` (renamed after its record, which drops a
//! file name that may identify the patient) or to `failed/` with the reason beside it.
//!
//! A file is moved into `processing/` before it is analysed (the rename made durable with an
//! fsync of both folders), so a file that crashes, hangs or exhausts the analysis is never taken
//! again: at the next start whatever is still in `processing/` goes to `failed/`, "the service
//! stopped while analysing this file", and the films behind it are analysed. A hung analysis is
//! ended by systemd's watchdog, which is fed only for [`ANALYSIS_BUDGET`].
//!
//! A power cut or a kill can fall anywhere, so each step is safe to repeat: a film is always in
//! exactly one of the inbox, `processing/`, `done/` or `failed/` (renames), a record is written
//! whole or not at all (see [`crate::files`]), and a film found in `processing/` whose record
//! was already written (the stop came while it was being filed away) is filed under that record
//! instead of being quarantined, so no film ends with two records or a record and a
//! "stopped" note.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use super::{sleep_alive, stop, Kiosk};
use crate::capture::{self, Input, InputSource};
use crate::files::{sync_dir, write_atomically};
use crate::model::Classifier;
use crate::record::Record;
use crate::store::{rfc3339, Origin, ResultsLog};
use crate::ui::{Problem, Screen};

/// A file is taken once it has not changed for this long (and between two looks): a copy over
/// a slow network share or from a card reader stalls for seconds at a time, and a half-written
/// film analysed as a whole one ends up in `failed/` while its complete copy is lost.
pub const SETTLE: Duration = Duration::from_secs(10);

/// How long one analysis may take while systemd's watchdog is fed; after that the service is
/// left to the watchdog (restarted), and the file in `processing/` is quarantined at the start.
/// A film takes well under a second on a Pi 5; 60 s covers a 100-megapixel DICOM on a Pi 4.
pub const ANALYSIS_BUDGET: Duration = Duration::from_secs(60);

/// The folder a file sits in while it is analysed.
const PROCESSING: &str = "processing";

/// What the `.error.txt` of a file found in `processing/` at start says.
pub const STOPPED_WHILE_ANALYSING: &str = "the service stopped while analysing this file (it crashed, hung or ran out of memory on it); it is not analysed again";

/// Image files in a watch folder: by extension, because a half-copied file has no content to
/// sniff yet. Content is checked when the file is decoded.
fn is_image_name(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name.starts_with('.') {
        return false; // hidden, or a copy in progress (rsync's .name.XXXX)
    }
    capture::has_image_extension(p)
}

/// The watch folder: a file is taken once its size and modification time stayed the same
/// for one whole poll interval (so a film still being copied in is not read half-written).
pub(super) struct Inbox {
    dir: PathBuf,
    last_seen: HashMap<PathBuf, (u64, SystemTime)>,
    /// Files we could not move away; never analysed twice.
    stuck: HashSet<PathBuf>,
}

impl Inbox {
    fn new(dir: PathBuf) -> Inbox {
        Inbox {
            dir,
            last_seen: HashMap::new(),
            stuck: HashSet::new(),
        }
    }

    /// Files ready to analyse, oldest name first: seen unchanged at the last look and not
    /// modified for `settle` before `now`. `settle = None` takes everything at once (`--once`).
    fn ready(&mut self, settle: Option<Duration>, now: SystemTime) -> Result<Vec<PathBuf>> {
        if !self.dir.exists() {
            create_shared_dir(&self.dir)
                .with_context(|| format!("cannot create the inbox {}", self.dir.display()))?;
        }
        let mut now_seen = HashMap::new();
        let mut ready = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot read the inbox {}", self.dir.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() || !is_image_name(&p) || self.stuck.contains(&p) {
                continue;
            }
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let sig = (meta.len(), modified);
            let quiet = |d: Duration| {
                self.last_seen.get(&p) == Some(&sig)
                    && now.duration_since(modified).is_ok_and(|age| age >= d)
            };
            if settle.is_none_or(quiet) {
                ready.push(p.clone());
            }
            now_seen.insert(p, sig);
        }
        self.last_seen = now_seen;
        ready.sort();
        Ok(ready)
    }

    /// Move `path` into `processing/` before it is analysed, durably: after a crash the file is
    /// found there, not in the inbox again.
    fn take(&mut self, path: &Path) -> Result<PathBuf> {
        let dir = self.dir.join(PROCESSING);
        let name = path.file_name().context("an inbox file without a name")?;
        let to = dir.join(name);
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::rename(path, &to))
            .and_then(|_| sync_dir(&dir))
            .and_then(|_| sync_dir(&self.dir))
            .with_context(|| format!("cannot move {} to {}", path.display(), dir.display()))?;
        Ok(to)
    }

    /// Files left in `processing/` by a run that stopped: one already recorded (the stop came
    /// while it was filed away) is filed under its record; any other goes to `failed/` with the
    /// reason, never analysed again. Returns how many were quarantined.
    fn quarantine_leftovers(&mut self, log: &ResultsLog) -> usize {
        let dir = self.dir.join(PROCESSING);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        // Named by time and count, like records are named by hash: the file name may carry the
        // patient's name.
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut n = 0;
        for p in entries.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
            if let Some(rec) = recorded_leftover(&p, log) {
                self.file_away(&p, &rec);
                continue;
            }
            n += 1;
            let stem = format!("stopped-{secs}-{n}");
            self.move_to(&p, "failed", &stem, Some(STOPPED_WHILE_ANALYSING));
        }
        n
    }

    /// Move an analysed file to done/ or failed/ (with `<name>.error.txt` beside it), named
    /// after its record. A file that cannot be moved stays and is not analysed again until
    /// restart.
    fn file_away(&mut self, path: &Path, rec: &Record) {
        let sub = if rec.error.is_some() {
            "failed"
        } else {
            "done"
        };
        self.move_to(
            path,
            sub,
            rec.log_name().unwrap_or("film"),
            rec.error.as_deref(),
        );
    }

    /// Move `path` to `<inbox>/<sub>/<stem>.<ext>`, with `<stem>.error.txt` beside it when there
    /// is an error, and make the move durable.
    fn move_to(&mut self, path: &Path, sub: &str, stem: &str, error: Option<&str>) {
        let to_dir = self.dir.join(sub);
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let ext = ext.as_deref().unwrap_or("img");
        // Never over another film: a rename replaces its target silently, and two runs that
        // stop within the same second name their leftovers alike.
        let mut to = to_dir.join(format!("{stem}.{ext}"));
        let mut k = 1;
        while to.exists() || to.with_extension("error.txt").exists() {
            k += 1;
            to = to_dir.join(format!("{stem}-{k}.{ext}"));
        }
        let res = std::fs::create_dir_all(&to_dir)
            .and_then(|_| std::fs::rename(path, &to))
            .and_then(|_| sync_dir(&to_dir))
            .map_err(anyhow::Error::from)
            .and_then(|_| match error {
                Some(e) => {
                    write_atomically(&to.with_extension("error.txt"), format!("{e}\n").as_bytes())
                }
                None => Ok(()),
            })
            .and_then(|_| Ok(path.parent().map_or(Ok(()), sync_dir)?));
        if let Err(e) = res {
            tracing::warn!(
                "analysed {}, but cannot move it to {}: {e:#}; it stays and is not analysed again until restart",
                path.display(),
                to_dir.display()
            );
            self.stuck.insert(path.to_path_buf());
        }
    }
}

/// Create the inbox for the people who copy films into it: group members write there, so it is
/// 0770 whatever the service's umask (0027 under systemd would make it 0750). Only a folder made
/// here is changed; an existing one keeps what its owner chose.
fn create_shared_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o770))
}

/// The record a leftover in `processing/` already has: one for its bytes written since it was
/// moved there (the rename set its change time), so last week's record of the same film does
/// not count. Hashes the file as a stream: a leftover may be the huge file that killed the run.
fn recorded_leftover(path: &Path, log: &ResultsLog) -> Option<Record> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    let mut f = std::fs::File::open(path).ok()?;
    let moved = f.metadata().ok()?.ctime();
    let since = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(moved).ok()?);
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher).ok()?;
    let sha = crate::model::manifest::hex(&hasher.finalize());
    log.recorded_since(&sha, &rfc3339(since))
        .map(|(_, stored)| stored.record)
}

/// The case code a watch-folder file carries as its name (`S01-0042.png`): with codes off, or
/// optional and a name that is no code, none; with codes required, a name that is no valid
/// code is the reason the film is not analysed (the message does not repeat the name).
fn code_from_name(policy: &crate::case::Policy, path: &Path) -> Result<Option<String>, String> {
    use crate::case::Mode;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    match (policy.mode, policy.check(stem.as_deref())) {
        (Mode::Off, _) => Ok(None),
        (_, Ok(code)) => Ok(code),
        (Mode::Optional, Err(_)) => Ok(None),
        (Mode::Required, Err(e)) => Err(format!(
            "{e}: the watch folder takes it from the file's name (the code, then .png, .jpg or .dcm)"
        )),
    }
}

/// Watch `dir` until stopped (`once`: take what is there now, then return).
pub(super) fn run_inbox(k: &mut Kiosk, clf: &Classifier, dir: &Path, once: bool) -> Result<()> {
    let poll = Duration::from_millis(k.cfg.poll_ms);
    let mut inbox = Inbox::new(dir.to_path_buf());
    let left = inbox.quarantine_leftovers(&k.log);
    if left > 0 {
        tracing::warn!("{left} file(s) left in {PROCESSING}/ by a run that stopped while analysing them: moved to failed/");
        k.totals.failed += left;
        k.show_problem(Problem::BadImage, STOPPED_WHILE_ANALYSING);
    }
    let mut waiting_shown = false;
    loop {
        k.notifier.watchdog();
        match inbox.ready((!once).then_some(SETTLE), SystemTime::now()) {
            Ok(files) => {
                if files.is_empty() && !waiting_shown {
                    let words = &k.cfg.language.texts().hints;
                    let hint = (words.copy_into)(&dir.display().to_string());
                    k.notifier.status("waiting for films");
                    k.show(&Screen::Waiting { hint: &hint });
                    waiting_shown = true;
                }
                for f in files {
                    if stop::requested() {
                        break;
                    }
                    k.notifier.watchdog();
                    let taken = match inbox.take(&f) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!("{e:#}; it stays and is not analysed until restart");
                            inbox.stuck.insert(f);
                            continue;
                        }
                    };
                    let input = Input {
                        display: f.display().to_string(),
                        source: InputSource::File(taken.clone()),
                    };
                    let code = code_from_name(&k.cfg.case, &f);
                    let rec = k.analyse_coded(clf, &input, Origin::Inbox, code);
                    inbox.file_away(&taken, &rec);
                    waiting_shown = false;
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::error!("{msg}");
                if once {
                    return Err(e);
                }
                let words = &k.cfg.language.texts().hints;
                k.show(&Screen::Waiting {
                    hint: &(words.inbox_unavailable)(&msg),
                });
                waiting_shown = false;
            }
        }
        if once {
            return Ok(());
        }
        sleep_alive(&k.notifier, poll);
        if stop::requested() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_takes_a_file_only_once_it_stopped_changing() {
        let d = tempfile::tempdir().unwrap();
        let mut inbox = Inbox::new(d.path().join("inbox"));
        let settle = Some(SETTLE);
        let now = SystemTime::now();
        let later = |s: u64| now + Duration::from_secs(s);
        assert!(
            inbox.ready(settle, now).unwrap().is_empty(),
            "creates the folder"
        );
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&inbox.dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o770, "group members copy films in");
        }
        let f = inbox.dir.join("a.png");
        std::fs::write(&f, b"half").unwrap();
        std::fs::write(inbox.dir.join(".b.png.partial"), b"x").unwrap();
        std::fs::write(inbox.dir.join("notes.txt"), b"x").unwrap();
        assert!(
            inbox.ready(settle, later(1)).unwrap().is_empty(),
            "first sighting"
        );
        std::fs::write(&f, b"half and the rest").unwrap();
        let written = std::fs::metadata(&f).unwrap().modified().unwrap();
        let after = |s: u64| written + Duration::from_secs(s);
        assert!(
            inbox.ready(settle, after(1)).unwrap().is_empty(),
            "still growing"
        );
        // A copy that stalls for 2.5 s looks finished to a one-poll rule; not to this one.
        assert!(
            inbox.ready(settle, after(3)).unwrap().is_empty(),
            "stalled, not done"
        );
        assert_eq!(
            inbox.ready(settle, after(11)).unwrap(),
            vec![f.clone()],
            "unchanged for the settle time"
        );
        inbox.stuck.insert(f.clone());
        assert!(
            inbox.ready(settle, after(12)).unwrap().is_empty(),
            "never twice"
        );
        inbox.stuck.clear();
        assert_eq!(
            inbox.ready(None, now).unwrap(),
            vec![f],
            "--once takes it at once"
        );
    }
}
