//! Model updates beside the kiosk: a thread that takes signed bundles from the `[updates]`
//! sources (a folder, an https address, the site's retained MQTT topic), installs them through
//! the bundle store, and asks the kiosk to reload its model whenever the current bundle changes,
//! whoever changed it (this thread, or a person running `cxr-edge model install` / `rollback`).
//!
//! The kiosk finishes the film in hand, loads the new model and carries on; every record names
//! the model file it was made with (its sha256), so results before and after the switch stay
//! apart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, UpdatesSection};
use crate::model::bundle::{self, BundleError, Outcome};

/// How often the folder and the current bundle are looked at.
const POLL: Duration = Duration::from_secs(2);
/// The first retry after a network source could not be reached.
const RETRY_FIRST: Duration = Duration::from_secs(30);

/// The update thread; stopped when dropped.
pub(super) struct Updates {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Updates {
    /// Start watching for new bundles. Nothing to install without the study's key, but the
    /// current bundle is still watched, so a rollback by hand takes effect.
    pub(super) fn start(cfg: &Config) -> Updates {
        let u = cfg.updates.clone();
        #[cfg(feature = "sync")]
        let network = match crate::sync::updates::Sources::from_config(cfg) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("model updates from the network are off: {e:#}");
                None
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("model-updates".into())
            .spawn(move || {
                #[cfg(feature = "sync")]
                let mut network = network;
                let store = u.store();
                let mut seen = store.current_id();
                let mut next_network = Instant::now();
                // After a source could not be reached: 30 s, doubling up to the interval.
                let mut retry = RETRY_FIRST;
                while !flag.load(Ordering::SeqCst) {
                    // Read only when something may need it (a folder to look at, a network look
                    // due), and each time, so a key installed later is taken.
                    let network_due = Instant::now() >= next_network;
                    let key = (u.folder.is_some() || network_due)
                        .then(|| bundle::load_public_key(&u.public_key).ok())
                        .flatten();
                    if let (Some(key), Some(folder)) = (&key, &u.folder) {
                        take_folder(&u, key, folder);
                    }
                    if network_due {
                        let interval = Duration::from_secs(u.interval_s);
                        next_network = Instant::now() + interval;
                        #[cfg(feature = "sync")]
                        if let (Some(key), Some(net)) = (&key, network.as_mut()) {
                            let (offers, failed) = net.fetch();
                            for (source, bytes) in offers {
                                report(&source, u.store().install(&bytes, key, &source, false));
                            }
                            if failed {
                                next_network = Instant::now() + retry.min(interval);
                                retry = (retry * 2).min(interval);
                            } else {
                                retry = RETRY_FIRST;
                            }
                        }
                    }
                    let now = store.current_id();
                    if now != seen {
                        tracing::info!(
                            "the current model bundle is now {}; reloading the model",
                            now.as_deref().unwrap_or("none (the packaged model)")
                        );
                        seen = now;
                        super::stop::ask_reload();
                    }
                    sleep_unless(&flag, POLL);
                }
            })
            .ok();
        Updates { stop, handle }
    }
}

impl Drop for Updates {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn sleep_unless(flag: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !flag.load(Ordering::SeqCst) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn report(source: &str, r: Result<Outcome, BundleError>) -> bool {
    match r {
        Ok(Outcome::Installed { id, index, .. }) => {
            tracing::info!(
                "model bundle {id} ({} {}) installed from {source}",
                index.name,
                index.version
            );
            true
        }
        Ok(Outcome::AlreadyCurrent { .. }) => true,
        // A retained topic or an address offers the same refused bundle at every look: said
        // once per process at warning level is enough, the store keeps the reason.
        Err(e) => {
            tracing::warn!("model bundle from {source}: {e}");
            false
        }
    }
}

/// Install every `*.cxrb` in the folder, oldest first, then move it to `done/` or `refused/`
/// with a note of the outcome beside it (`<name>.txt`), so the folder shows what happened.
pub(super) fn take_folder(u: &UpdatesSection, key: &minisign_verify::PublicKey, folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cxrb"))
        .map(|p| {
            let t = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, p)
        })
        .collect();
    files.sort();
    for (_, path) in files {
        let source = format!("folder {}", folder.display());
        let (ok, note) = match bundle::read_file(&path) {
            Ok(bytes) => {
                let r = u.store().install(&bytes, key, &source, false);
                let note = match &r {
                    Ok(Outcome::Installed { id, .. }) => format!("installed as bundle {id}"),
                    Ok(Outcome::AlreadyCurrent { id }) => {
                        format!("bundle {id} was already current")
                    }
                    Err(e) => e.to_string(),
                };
                (report(&source, r), note)
            }
            Err(e) => (false, format!("cannot read: {e}")),
        };
        let sub = folder.join(if ok { "done" } else { "refused" });
        let name = path.file_name().unwrap_or_default().to_os_string();
        let moved =
            std::fs::create_dir_all(&sub).and_then(|_| std::fs::rename(&path, sub.join(&name)));
        if let Err(e) = moved {
            // Left in place, it is looked at again at every poll (cheaply: the store remembers
            // what it refused or rolled back); never deleted, as it may be the only copy.
            tracing::warn!(
                "cannot move {} out of the update folder: {e}",
                path.display()
            );
        }
        let mut txt = name;
        txt.push(".txt");
        let _ = crate::files::write_atomically(&sub.join(txt), format!("{note}\n").as_bytes());
    }
}
