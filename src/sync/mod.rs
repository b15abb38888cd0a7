//! Store-and-forward of the results log to a study's servers (`[sync]` in the config; README
//! "Research network").
//!
//! The results database is the outbox ([`crate::store::outbox`]): nothing is queued in memory,
//! so records made while the network is down for days simply wait, and a unit switched off
//! mid-send sends again from the first record its destination has not acknowledged. Every
//! message carries the record's network-wide id ([`message::Sender::record_id`]), the same on
//! a resend, so "at least once" is safe for the receiver.
//!
//! Two ways to run it: [`run_once`] (`cxr-edge sync --once`: drain and stop) and
//! [`spawn`] (a thread beside `cxr-edge run` and `serve`: drain, keep the connection, look
//! again every `interval_s`, reconnect with backoff).

pub mod message;
pub mod mqtt;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use crate::config::{check_topic_level, BrokerUrl, SyncSection};
use crate::store::outbox::Outbox;
use message::Sender;
use mqtt::{Broker, Mqtt, Topics};

/// The destination name the database keeps MQTT deliveries under.
pub const MQTT: &str = "mqtt";

/// Records read from the database at a time while draining.
const BATCH: u32 = 64;

/// `[sync]` made ready: names checked, credential files read.
#[derive(Clone)]
pub struct Settings {
    /// Site and device.
    pub sender: Sender,
    /// The broker, when MQTT is configured.
    pub mqtt: Option<Broker>,
    /// Seconds between looks while idle.
    pub interval: Duration,
    /// The storage folder whose records are sent.
    pub storage: PathBuf,
}

impl Settings {
    /// `None` when no destination is configured. Reads the CA, certificate, key and password
    /// files now, so a missing one is reported at start, not at the first send.
    pub fn from_config(s: &SyncSection, storage: &Path) -> Result<Option<Settings>> {
        if !s.enabled() {
            return Ok(None);
        }
        s.check()?;
        let device = if s.device.is_empty() {
            host_name()?
        } else {
            s.device.clone()
        };
        check_topic_level("device (the host name)", &device)?;
        let read = |p: &Option<PathBuf>, what: &str| -> Result<Option<Vec<u8>>> {
            p.as_ref()
                .map(|p| {
                    std::fs::read(p)
                        .with_context(|| format!("[sync] cannot read the {what} {}", p.display()))
                })
                .transpose()
        };
        let password = read(&s.password_file, "password file")?.map(|b| {
            String::from_utf8_lossy(&b)
                .trim_end_matches(['\r', '\n'])
                .to_string()
        });
        let broker = Broker {
            url: BrokerUrl::parse(&s.mqtt)?,
            ca: read(&s.ca, "CA file")?,
            client_auth: match (
                read(&s.client_cert, "client certificate")?,
                read(&s.client_key, "client key")?,
            ) {
                (Some(c), Some(k)) => Some((c, k)),
                _ => None,
            },
            login: (!s.username.is_empty())
                .then(|| (s.username.clone(), password.unwrap_or_default())),
        };
        Ok(Some(Settings {
            sender: Sender {
                site: s.site.clone(),
                device,
            },
            mqtt: Some(broker),
            interval: Duration::from_secs(s.interval_s),
            storage: storage.to_path_buf(),
        }))
    }

    fn topics(&self) -> Topics {
        Topics::new(&self.sender.site, &self.sender.device)
    }

    fn client_id(&self) -> String {
        format!("cxr-edge-{}-{}", self.sender.site, self.sender.device)
    }
}

fn host_name() -> Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("[sync] no device name given and cannot read the host name")?;
    Ok(name.trim().to_string())
}

/// What one drain did for one destination.
#[derive(Debug, Default)]
pub struct Summary {
    /// `mqtt` or `dicomweb`.
    pub destination: &'static str,
    /// Records delivered by this drain.
    pub sent: u64,
    /// Records the destination refused for good in this drain.
    pub parked: u64,
    /// Records still waiting afterwards.
    pub waiting: u64,
    /// Why the drain stopped early (destination unreachable, connection lost).
    pub error: Option<String>,
}

/// What the device says about itself on the retained status topic.
fn status_message(s: &Settings, out: &Outbox, state: &str) -> Vec<u8> {
    let newest = out.newest().ok().flatten();
    let waiting = out.tally(MQTT).map(|t| t.waiting).ok();
    json!({
        "schema": "cxr-edge/status/v1",
        "site": s.sender.site,
        "device": s.sender.device,
        "state": state,
        "time": crate::store::rfc3339(std::time::SystemTime::now()),
        "version": env!("CARGO_PKG_VERSION"),
        "model_sha256": newest.as_ref().map(|n| n.1.clone()),
        "last_result": newest.map(|n| n.0),
        "outbox": waiting,
        "disk_free_mb": disk_free_mb(out.dir()),
    })
    .to_string()
    .into_bytes()
}

/// Free space for this user on the file system of `dir`, in MiB.
pub fn disk_free_mb(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a zeroed struct of the right type.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64) >> 20)
}

async fn connect_mqtt(s: &Settings, broker: &Broker, out: &Outbox) -> Result<Mqtt> {
    let mut m = Mqtt::connect(
        broker,
        &s.client_id(),
        s.topics(),
        status_message(s, out, "offline"),
    )
    .await?;
    let status = status_message(s, out, "online");
    let topic = m.topics.status.clone();
    m.publish(&topic, status, true).await?;
    Ok(m)
}

/// Send every waiting record, oldest first, until none is left, `stop` is set, or the
/// connection fails (returned as the error, after the progress made is committed).
async fn drain_mqtt(
    s: &Settings,
    m: &mut Mqtt,
    out: &Outbox,
    stop: &AtomicBool,
    sum: &mut Summary,
) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let batch = out.waiting(MQTT, BATCH)?;
        if batch.is_empty() {
            break;
        }
        for w in batch {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let msg = match message::result_message(&s.sender, &w.name, &w.body) {
                Ok(m) => m.to_string().into_bytes(),
                Err(e) => {
                    // A record this build cannot read would block the queue for ever.
                    out.parked(MQTT, w.id, &format!("{e:#}"))?;
                    sum.parked += 1;
                    continue;
                }
            };
            let topic = m.topics.result.clone();
            m.publish(&topic, msg, false).await?;
            out.sent(MQTT, w.id)?;
            sum.sent += 1;
        }
    }
    let status = status_message(s, out, "online");
    let topic = m.topics.status.clone();
    m.publish(&topic, status, true).await
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the sync task's runtime")
}

/// `cxr-edge sync --once`: connect to each destination, send everything waiting, say goodbye.
pub fn run_once(s: &Settings) -> Result<Vec<Summary>> {
    let out = Outbox::open(&s.storage)?;
    let rt = runtime()?;
    let stop = AtomicBool::new(false);
    let mut sums = Vec::new();
    if let Some(broker) = &s.mqtt {
        let mut sum = Summary {
            destination: MQTT,
            ..Summary::default()
        };
        let r = rt.block_on(async {
            let mut m = connect_mqtt(s, broker, &out).await?;
            let r = drain_mqtt(s, &mut m, &out, &stop, &mut sum).await;
            if r.is_ok() {
                m.disconnect().await;
            }
            r
        });
        sum.error = r.err().map(|e| format!("{e:#}"));
        sum.waiting = out.tally(MQTT)?.waiting;
        sums.push(sum);
    }
    Ok(sums)
}

/// The background task of `run` and `serve`: a thread that keeps every destination fed until
/// `stop` is set. Never ends on a network error: it logs it and tries again after a backoff
/// (2 s doubling to 5 min).
pub fn spawn(s: Settings, stop: Arc<AtomicBool>) -> Result<std::thread::JoinHandle<()>> {
    let out = Outbox::open(&s.storage)?;
    std::thread::Builder::new()
        .name("cxr-sync".into())
        .spawn(move || match runtime() {
            Ok(rt) => rt.block_on(keep_synced(&s, &out, &stop)),
            Err(e) => tracing::error!("sync stopped: {e:#}"),
        })
        .context("cannot start the sync thread")
}

async fn keep_synced(s: &Settings, out: &Outbox, stop: &AtomicBool) {
    let Some(broker) = &s.mqtt else { return };
    let mut backoff = Duration::from_secs(2);
    while !stop.load(Ordering::Relaxed) {
        let mut sum = Summary::default();
        let r: Result<()> = async {
            let mut m = connect_mqtt(s, broker, out).await?;
            tracing::info!(
                "sync: connected to the MQTT broker {}:{}",
                broker.url.host,
                broker.url.port
            );
            backoff = Duration::from_secs(2);
            loop {
                drain_mqtt(s, &mut m, out, stop, &mut sum).await?;
                if sum.sent + sum.parked > 0 {
                    tracing::info!(
                        "sync: {} record(s) sent, {} refused by the broker",
                        sum.sent,
                        sum.parked
                    );
                    sum = Summary::default();
                }
                // Idle, a second at a time so a stop is seen promptly.
                let until = Instant::now() + s.interval;
                while Instant::now() < until {
                    if stop.load(Ordering::Relaxed) {
                        let bye = status_message(s, out, "offline");
                        let topic = m.topics.status.clone();
                        let _ = m.publish(&topic, bye, true).await;
                        m.disconnect().await;
                        return Ok(());
                    }
                    m.idle(Duration::from_secs(1)).await?;
                }
            }
        }
        .await;
        if let Err(e) = r {
            tracing::warn!("sync: {e:#}; trying again in {} s", backoff.as_secs());
            let until = Instant::now() + backoff;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            backoff = (backoff * 2).min(Duration::from_secs(300));
        }
    }
}

/// The sync thread of a service (`run`, `serve`): started with [`Background::start`], asked
/// to stop and given a few seconds to say goodbye when dropped.
pub struct Background {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Start forwarding the records of `storage` when `[sync]` names a destination. A sync
    /// that cannot start (an unreadable CA file) is logged as an error and the service goes
    /// on without it: the records wait in the database.
    pub fn start(cfg: &SyncSection, storage: &Path) -> Option<Background> {
        let started = Settings::from_config(cfg, storage).and_then(|s| {
            let Some(s) = s else { return Ok(None) };
            let stop = Arc::new(AtomicBool::new(false));
            let handle = spawn(s, stop.clone())?;
            Ok(Some(Background {
                stop,
                handle: Some(handle),
            }))
        });
        started
            .inspect_err(|e| tracing::error!("sync not started, records stay in the log: {e:#}"))
            .ok()
            .flatten()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let Some(h) = self.handle.take() else { return };
        let until = Instant::now() + Duration::from_secs(5);
        while !h.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        if h.is_finished() {
            let _ = h.join();
        }
    }
}
