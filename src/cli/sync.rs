//! `cxr-edge sync`: forward the results log to the `[sync]` destinations now (`--once`), keep
//! doing so until stopped (no option: what `run` and `serve` do beside their work), or say
//! where each destination stands (`--status`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;

use super::{EXIT_OK, EXIT_SOME_FAILED};
use crate::config::Config;
use crate::store::outbox::Outbox;
use crate::sync::{Settings, DICOMWEB, MQTT};

/// Options of `cxr-edge sync`.
#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Config file (default: /etc/cxr-edge/config.toml if it exists); its `[sync]` table names
    /// the destinations.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override the config's results folder.
    #[arg(long, value_name = "DIR")]
    pub storage: Option<PathBuf>,
    /// Send everything waiting, then exit: 0 when every destination took or refused every
    /// record, 1 when some are still waiting (a destination could not be reached).
    #[arg(long, conflicts_with_all = ["status", "retry_parked"])]
    pub once: bool,
    /// Per destination: records sent, waiting and refused (with the reason), last delivery.
    #[arg(long, conflicts_with = "retry_parked")]
    pub status: bool,
    /// Put the records a destination refused back in its queue (after fixing the cause there).
    #[arg(long)]
    pub retry_parked: bool,
}

pub fn run(args: SyncArgs) -> Result<i32> {
    let mut cfg = Config::find(args.config.as_deref())?;
    if let Some(dir) = &args.storage {
        cfg.storage.dir = dir.clone();
    }
    let Some(settings) = Settings::from_config(&cfg.sync, &cfg.storage.dir)? else {
        bail!("no destination in the config's [sync] table (e.g. mqtt = \"mqtt://broker:1883\" and site = \"...\")");
    };
    if args.status || args.retry_parked {
        let out = Outbox::open(&cfg.storage.dir)?;
        if args.retry_parked {
            for d in destinations(&settings) {
                let n = out.unpark(d)?;
                println!("{d}: {n} refused record(s) back in the queue");
            }
            return Ok(EXIT_OK);
        }
        return status(&settings, &out);
    }
    if args.once {
        let sums = crate::sync::run_once(&settings)?;
        let mut waiting = false;
        for s in &sums {
            println!(
                "{}: {} sent, {} refused, {} waiting{}",
                s.destination,
                s.sent,
                s.parked,
                s.waiting,
                s.error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" ({e})"))
            );
            waiting |= s.waiting > 0;
        }
        return Ok(if waiting { EXIT_SOME_FAILED } else { EXIT_OK });
    }
    crate::app::stop::install();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = crate::sync::spawn(settings, stop.clone())?;
    while !handle.is_finished() {
        if crate::app::stop::requested() {
            stop.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = handle.join();
    crate::app::stop::exit_by_signal();
    Ok(EXIT_OK)
}

fn destinations(s: &Settings) -> Vec<&'static str> {
    let mut v = Vec::new();
    if s.mqtt.is_some() {
        v.push(MQTT);
    }
    if s.archive.is_some() {
        v.push(DICOMWEB);
    }
    v
}

fn status(s: &Settings, out: &Outbox) -> Result<i32> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "site {}, device {}", s.sender.site, s.sender.device)?;
    for d in destinations(s) {
        let t = out.tally(d)?;
        let place = match (d, &s.mqtt, &s.archive) {
            (MQTT, Some(b), _) => format!(
                "{}://{}:{}",
                if b.url.tls { "mqtts" } else { "mqtt" },
                b.url.host,
                b.url.port
            ),
            (_, _, Some(a)) => a.describe(),
            _ => String::new(),
        };
        writeln!(
            o,
            "{d} ({place}): {} sent, {} waiting, {} refused; last sent {}",
            t.sent,
            t.waiting,
            t.parked.len(),
            t.last_sent.as_deref().unwrap_or("never")
        )?;
        for (name, when, why) in &t.parked {
            writeln!(o, "  refused {name} at {when}: {why}")?;
        }
    }
    Ok(EXIT_OK)
}
