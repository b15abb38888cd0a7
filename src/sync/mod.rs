//! Store-and-forward of the results log to a study's servers (`[sync]` in the config; README
//! "Research network").
//!
//! The results database is the outbox ([`crate::store::outbox`]): nothing is queued in memory,
//! so records made while the network is down for days simply wait, and a unit switched off
//! mid-send sends again from the first record its destination has not acknowledged. Every
//! message carries the record's network-wide id ([`message::Sender::record_id`]), the same on
//! a resend, so "at least once" is safe for the receiver.
//!
//! Destinations: an MQTT broker ([`mqtt`]: one JSON message per record) and a DICOM archive
//! ([`dicomweb`]: STOW-RS of the record's [`instances`]); each has its own queue, so one that is
//! down never holds the other back.
//!
//! Two ways to run it: [`run_once`] (`cxr-edge sync --once`: drain and stop) and
//! [`spawn`] (a thread beside `cxr-edge run` and `serve`: drain, keep the connection, look
//! again every `interval_s`, reconnect with backoff).

pub mod dicomweb;
pub mod fleet;
pub mod instances;
pub mod message;
pub mod mqtt;
pub mod updates;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use crate::config::{check_topic_level, ArchiveUrl, BrokerUrl, SyncSection};
use crate::store::db::Waiting;
use crate::store::outbox::Outbox;
use crate::store::unit::UnitState;
use dicomweb::{Archive, Stow};
use message::Sender;
use mqtt::{Broker, Mqtt, Topics};

/// The destination name the database keeps MQTT deliveries under.
pub const MQTT: &str = "mqtt";
/// The destination name of the DICOM archive.
pub const DICOMWEB: &str = "dicomweb";

/// Records read from the database at a time while draining.
const BATCH: u32 = 64;

/// `[sync]` made ready: names checked, credential files read.
#[derive(Clone)]
pub struct Settings {
    /// Site and device.
    pub sender: Sender,
    /// The broker, when MQTT is configured.
    pub mqtt: Option<Broker>,
    /// The DICOM archive, when DICOMweb is configured.
    pub archive: Option<Arc<Archive>>,
    /// Seconds between looks while idle.
    pub interval: Duration,
    /// The storage folder whose records are sent.
    pub storage: PathBuf,
    /// The running service's camera and model, for the status (none for `cxr-edge sync`).
    pub unit: Option<Arc<UnitState>>,
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
        let mqtt = if s.mqtt.is_empty() {
            None
        } else {
            Some(broker(s, &s.mqtt)?)
        };
        let archive = if s.dicomweb.is_empty() {
            None
        } else {
            let authorization = match read_secret(&s.dicomweb_token_file, "archive token file")? {
                Some(token) => Some(format!("Bearer {token}")),
                None if !s.dicomweb_user.is_empty() => {
                    let pw = read_secret(&s.dicomweb_password_file, "archive password file")?
                        .unwrap_or_default();
                    Some(format!(
                        "Basic {}",
                        base64(format!("{}:{pw}", s.dicomweb_user).as_bytes())
                    ))
                }
                None => None,
            };
            Some(Arc::new(Archive::new(
                ArchiveUrl::parse(&s.dicomweb)?,
                read_file(&s.dicomweb_ca, "archive CA file")?,
                authorization,
            )?))
        };
        Ok(Some(Settings {
            sender: Sender {
                site: s.site.clone(),
                device,
            },
            mqtt,
            archive,
            interval: Duration::from_secs(s.interval_s),
            storage: storage.to_path_buf(),
            unit: None,
        }))
    }

    fn topics(&self) -> Topics {
        Topics::new(&self.sender.site, &self.sender.device)
    }

    fn client_id(&self) -> String {
        format!("cxr-edge-{}-{}", self.sender.site, self.sender.device)
    }
}

fn read_file(p: &Option<PathBuf>, what: &str) -> Result<Option<Vec<u8>>> {
    p.as_ref()
        .map(|p| {
            std::fs::read(p)
                .with_context(|| format!("[sync] cannot read the {what} {}", p.display()))
        })
        .transpose()
}

/// A password or token file's text, without the line end an editor leaves.
fn read_secret(p: &Option<PathBuf>, what: &str) -> Result<Option<String>> {
    Ok(read_file(p, what)?.map(|b| {
        String::from_utf8_lossy(&b)
            .trim_end_matches(['\r', '\n'])
            .to_string()
    }))
}

/// The broker at `url` with the credentials `[sync]` names (read from their files now).
pub fn broker(s: &SyncSection, url: &str) -> Result<Broker> {
    let password = read_secret(&s.password_file, "password file")?;
    let client_auth = match (
        read_file(&s.client_cert, "client certificate")?,
        read_file(&s.client_key, "client key")?,
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => None,
    };
    Ok(Broker {
        url: BrokerUrl::parse(url)?,
        ca: read_file(&s.ca, "CA file")?,
        client_auth,
        login: (!s.username.is_empty()).then(|| (s.username.clone(), password.unwrap_or_default())),
    })
}

/// RFC 4648 base64, for a basic-authentication header.
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= c.len() {
                A[(n >> shift & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
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
    // The model the service runs now; without a service (`cxr-edge sync`), the newest record's.
    let (camera, running) = match &s.unit {
        Some(u) => {
            let (c, m, _) = u.snapshot();
            (Some(c), m)
        }
        None => (None, None),
    };
    let model_sha = running
        .as_ref()
        .map(|m| m.sha256.clone())
        .or_else(|| newest.as_ref().map(|n| n.1.clone()));
    json!({
        "schema": "cxr-edge/status/v1",
        "site": s.sender.site,
        "device": s.sender.device,
        "state": state,
        "time": crate::store::rfc3339(std::time::SystemTime::now()),
        "version": env!("CARGO_PKG_VERSION"),
        "model_sha256": model_sha,
        "model": running,
        "camera": camera,
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

/// How often a connected, idle unit says it is still there.
const HEARTBEAT: Duration = Duration::from_secs(15 * 60);

/// Publish the unit's status and the time it was last seen (both retained).
async fn publish_status(s: &Settings, m: &mut Mqtt, out: &Outbox, state: &str) -> Result<()> {
    let status = status_message(s, out, state);
    let (status_topic, seen_topic) = (m.topics.status.clone(), m.topics.seen.clone());
    m.publish(&status_topic, status, true).await?;
    let seen = json!({ "time": crate::store::rfc3339(std::time::SystemTime::now()) });
    m.publish(&seen_topic, seen.to_string().into_bytes(), true)
        .await
}

async fn connect_mqtt(s: &Settings, broker: &Broker, out: &Outbox) -> Result<Mqtt> {
    let will = status_message(s, out, "offline");
    let mut m = Mqtt::connect(broker, &s.client_id(), s.topics(), Some(will)).await?;
    publish_status(s, &mut m, out, "online").await?;
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
    Ok(())
}

/// The instances of one waiting record: its picture (when one was kept and is still there) and
/// its report, built from the same cleaned message that MQTT gets.
fn instances_of(s: &Settings, out: &Outbox, w: &Waiting) -> Result<Vec<Vec<u8>>> {
    let id = s.sender.record_id(&w.name);
    let msg = message::result_message(&s.sender, &w.name, &w.body)?;
    let mut v = Vec::new();
    if let Some(image) = &w.image {
        let path = out.dir().join(image);
        match image::open(&path) {
            Ok(pic) => v.push(instances::picture(
                &id,
                &s.sender.site,
                &msg,
                &pic.to_rgb8(),
            )?),
            // Removed by hand, or a record imported from another unit: the report still goes.
            Err(e) => tracing::warn!("sync: record {} is sent without its picture: {e}", w.name),
        }
    }
    v.push(instances::report(&id, &s.sender.site, &msg)?);
    Ok(v)
}

async fn drain_dicomweb(
    s: &Settings,
    archive: &Archive,
    out: &Outbox,
    stop: &AtomicBool,
    sum: &mut Summary,
) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let batch = out.waiting(DICOMWEB, BATCH)?;
        if batch.is_empty() {
            break;
        }
        for w in batch {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let parts = match instances_of(s, out, &w) {
                Ok(p) => p,
                Err(e) => {
                    out.parked(DICOMWEB, w.id, &format!("{e:#}"))?;
                    sum.parked += 1;
                    continue;
                }
            };
            match archive.store(&parts).await? {
                Stow::Stored => {
                    out.sent(DICOMWEB, w.id)?;
                    sum.sent += 1;
                }
                Stow::Refused(why) => {
                    tracing::warn!("sync: the archive refused record {}: {why}", w.name);
                    out.parked(DICOMWEB, w.id, &why)?;
                    sum.parked += 1;
                }
            }
        }
    }
    Ok(())
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
            drain_mqtt(s, &mut m, &out, &stop, &mut sum).await?;
            publish_status(s, &mut m, &out, "online").await?;
            m.disconnect().await;
            Ok::<_, anyhow::Error>(())
        });
        sum.error = r.err().map(|e| format!("{e:#}"));
        sum.waiting = out.tally(MQTT)?.waiting;
        sums.push(sum);
    }
    if let Some(archive) = &s.archive {
        let mut sum = Summary {
            destination: DICOMWEB,
            ..Summary::default()
        };
        let r = rt.block_on(drain_dicomweb(s, archive, &out, &stop, &mut sum));
        sum.error = r.err().map(|e| format!("{e:#}"));
        sum.waiting = out.tally(DICOMWEB)?.waiting;
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
            Ok(rt) => rt.block_on(async {
                tokio::join!(keep_mqtt(&s, &out, &stop), keep_archive(&s, &out, &stop));
            }),
            Err(e) => tracing::error!("sync stopped: {e:#}"),
        })
        .context("cannot start the sync thread")
}

/// Sleep `d` unless `stop` is set first.
async fn pause(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn keep_archive(s: &Settings, out: &Outbox, stop: &AtomicBool) {
    let Some(archive) = &s.archive else { return };
    let mut backoff = Duration::from_secs(2);
    while !stop.load(Ordering::Relaxed) {
        let mut sum = Summary::default();
        match drain_dicomweb(s, archive, out, stop, &mut sum).await {
            Ok(()) => {
                if sum.sent + sum.parked > 0 {
                    tracing::info!(
                        "sync: {} record(s) stored in the archive, {} refused",
                        sum.sent,
                        sum.parked
                    );
                }
                backoff = Duration::from_secs(2);
                pause(s.interval, stop).await;
            }
            Err(e) => {
                tracing::warn!(
                    "sync: archive {}: {e:#}; trying again in {} s",
                    archive.describe(),
                    backoff.as_secs()
                );
                pause(backoff, stop).await;
                backoff = (backoff * 2).min(Duration::from_secs(300));
            }
        }
    }
}

async fn keep_mqtt(s: &Settings, out: &Outbox, stop: &AtomicBool) {
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
            let mut said = Instant::now();
            let changes = || s.unit.as_ref().map_or(0, |u| u.changes());
            let mut said_changes = changes();
            loop {
                drain_mqtt(s, &mut m, out, stop, &mut sum).await?;
                // The status after records went out (the outbox shrank), when the camera or
                // the model changed, else every 15 min.
                if sum.sent + sum.parked > 0
                    || said.elapsed() >= HEARTBEAT
                    || changes() != said_changes
                {
                    said_changes = changes();
                    publish_status(s, &mut m, out, "online").await?;
                    said = Instant::now();
                }
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
                while Instant::now() < until && changes() == said_changes {
                    if stop.load(Ordering::Relaxed) {
                        let _ = publish_status(s, &mut m, out, "offline").await;
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
            pause(backoff, stop).await;
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
    pub fn start(cfg: &SyncSection, storage: &Path, unit: Arc<UnitState>) -> Option<Background> {
        let started = Settings::from_config(cfg, storage).and_then(|s| {
            let Some(mut s) = s else { return Ok(None) };
            s.unit = Some(unit);
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
