//! The retention rules of `[storage]` applied beside the service: a thread that runs one pass
//! ([`crate::store::retention`]) at start and then every hour, until the service stops.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{Config, SourceSpec};
use crate::store::retention::Policy;
use crate::store::ResultsLog;

/// How often the rules are applied.
const EVERY: Duration = Duration::from_secs(3600);

/// The retention thread; stopped when dropped.
pub struct Retention {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Retention {
    /// Start it when `keep_days` or `max_disk_mb` is set.
    pub fn start(cfg: &Config) -> Option<Retention> {
        let policy = Policy {
            keep_days: cfg.storage.keep_days,
            max_bytes: cfg.storage.max_disk_mb.saturating_mul(1 << 20),
        };
        if policy.keep_days == 0 && policy.max_bytes == 0 {
            return None;
        }
        let mut destinations = Vec::new();
        if !cfg.sync.mqtt.is_empty() {
            destinations.push("mqtt");
        }
        if !cfg.sync.dicomweb.is_empty() {
            destinations.push("dicomweb");
        }
        let done: Option<PathBuf> = match &cfg.source {
            SourceSpec::Inbox(dir) => Some(dir.join("done")),
            _ => None,
        };
        let dir = cfg.storage.dir.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("cxr-retention".into())
            .spawn(move || {
                let log = match ResultsLog::attach(&dir) {
                    Ok(l) => l,
                    Err(e) => return tracing::error!("retention not started: {e:#}"),
                };
                while !flag.load(Ordering::Relaxed) {
                    match log.prune(&destinations, &policy, done.as_deref(), SystemTime::now()) {
                        Ok(p) if p.sent + p.unsent + p.originals > 0 => tracing::info!(
                            "retention: removed {} sent record(s), {} not yet sent, {} original(s); {} MB in use",
                            p.sent,
                            p.unsent,
                            p.originals,
                            p.bytes >> 20
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!("retention: {e:#}"),
                    }
                    let until = Instant::now() + EVERY;
                    while Instant::now() < until && !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(250));
                    }
                }
            })
            .inspect_err(|e| tracing::error!("retention not started: {e}"))
            .ok()?;
        Some(Retention {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Retention {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
