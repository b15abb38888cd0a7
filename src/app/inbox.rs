//! The watch folder: every image file that appears in it (and has stopped changing) is analysed
//! once, recorded, shown, and then moved to `done/` (renamed after its record, which drops a
//! file name that may identify the patient) or to `failed/` with the reason beside it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use super::{sleep_alive, Kiosk};
use crate::capture::{self, Input, InputSource};
use crate::model::Classifier;
use crate::record::Record;
use crate::store::Origin;
use crate::ui::Screen;

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

    /// Files ready to analyse, oldest name first. `settle = false` takes everything at once.
    fn ready(&mut self, settle: bool) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create the inbox {}", self.dir.display()))?;
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
            let sig = (
                meta.len(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            );
            if !settle || self.last_seen.get(&p) == Some(&sig) {
                ready.push(p.clone());
            }
            now_seen.insert(p, sig);
        }
        self.last_seen = now_seen;
        ready.sort();
        Ok(ready)
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
        let to_dir = self.dir.join(sub);
        let stem = rec.log_name().unwrap_or("film");
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let to = to_dir.join(format!("{stem}.{}", ext.as_deref().unwrap_or("img")));
        let res = std::fs::create_dir_all(&to_dir)
            .and_then(|_| std::fs::rename(path, &to))
            .and_then(|_| match &rec.error {
                Some(e) => std::fs::write(to.with_extension("error.txt"), format!("{e}\n")),
                None => Ok(()),
            });
        if let Err(e) = res {
            eprintln!(
                "cxr-edge run: analysed {}, but cannot move it to {}: {e}; it stays and is not analysed again until restart",
                path.display(),
                to_dir.display()
            );
            self.stuck.insert(path.to_path_buf());
        }
    }
}

/// Watch `dir` until stopped (`once`: take what is there now, then return).
pub(super) fn run_inbox(k: &mut Kiosk, clf: &Classifier, dir: &Path, once: bool) -> Result<()> {
    let poll = Duration::from_millis(k.cfg.poll_ms);
    let mut inbox = Inbox::new(dir.to_path_buf());
    let mut waiting_shown = false;
    loop {
        k.notifier.watchdog();
        match inbox.ready(!once) {
            Ok(files) => {
                if files.is_empty() && !waiting_shown {
                    let hint = format!("Copy chest X-ray images into {}", dir.display());
                    k.notifier.status("waiting for films");
                    k.show(&Screen::Waiting { hint: &hint });
                    waiting_shown = true;
                }
                for f in files {
                    k.notifier.watchdog();
                    let input = Input {
                        display: f.display().to_string(),
                        source: InputSource::File(f.clone()),
                    };
                    let rec = k.analyse(clf, &input, Origin::Inbox);
                    inbox.file_away(&f, &rec);
                    waiting_shown = false;
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("cxr-edge run: {msg}");
                if once {
                    return Err(e);
                }
                k.show(&Screen::Waiting {
                    hint: &format!("The inbox is not available: {msg}. Retrying."),
                });
                waiting_shown = false;
            }
        }
        if once {
            return Ok(());
        }
        sleep_alive(&k.notifier, poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_takes_a_file_only_once_it_stopped_changing() {
        let d = tempfile::tempdir().unwrap();
        let mut inbox = Inbox::new(d.path().join("inbox"));
        assert!(inbox.ready(true).unwrap().is_empty(), "creates the folder");
        let f = inbox.dir.join("a.png");
        std::fs::write(&f, b"half").unwrap();
        std::fs::write(inbox.dir.join(".b.png.partial"), b"x").unwrap();
        std::fs::write(inbox.dir.join("notes.txt"), b"x").unwrap();
        assert!(inbox.ready(true).unwrap().is_empty(), "first sighting");
        std::fs::write(&f, b"half and the rest").unwrap();
        assert!(inbox.ready(true).unwrap().is_empty(), "still growing");
        assert_eq!(
            inbox.ready(true).unwrap(),
            vec![f.clone()],
            "unchanged for a poll"
        );
        inbox.stuck.insert(f.clone());
        assert!(inbox.ready(true).unwrap().is_empty(), "never twice");
        inbox.stuck.clear();
        assert_eq!(
            inbox.ready(false).unwrap(),
            vec![f],
            "--once takes it at once"
        );
    }
}
