//! `cxr-edge fleet`: the study's units as the broker knows them (their retained status).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use super::{EXIT_OK, EXIT_SOME_FAILED};
use crate::config::{check_topic_level, Config};

/// Options of `cxr-edge fleet`.
#[derive(Args, Debug)]
pub struct FleetArgs {
    /// The broker, mqtt://HOST[:PORT] or mqtts://; default: `[sync] mqtt` of the config, whose
    /// CA, client certificate or user are used in either case.
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// Config file (default: /etc/cxr-edge/config.toml if it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only this site's units.
    #[arg(long)]
    pub site: Option<String>,
    /// Mark units not heard from for longer than this many hours.
    #[arg(long, default_value_t = 24, value_name = "HOURS")]
    pub silent_hours: u64,
    /// One JSON object per unit instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Exit code: 0 every unit heard from in time, 1 some silent (or none known), 2 no broker.
pub fn run(args: FleetArgs) -> Result<i32> {
    let cfg = Config::find(args.config.as_deref())?;
    let url = match (&args.mqtt, cfg.sync.mqtt.as_str()) {
        (Some(u), _) => u.clone(),
        (None, "") => bail!("no broker: give --mqtt URL or set [sync] mqtt in the config"),
        (None, u) => u.to_string(),
    };
    if let Some(s) = &args.site {
        check_topic_level("site", s)?;
    }
    let broker = crate::sync::broker(&cfg.sync, &url)?;
    let silent_after = Duration::from_secs(args.silent_hours.saturating_mul(3600));
    let units = crate::sync::fleet::read(&broker, args.site.as_deref(), silent_after)?;
    let mut o = std::io::stdout().lock();
    if args.json {
        for u in &units {
            writeln!(o, "{}", serde_json::to_string(u)?)?;
        }
    } else {
        writeln!(
            o,
            "{:<16} {:<16} {:<8} {:<8} {:<12} {:<9} {:<20} {:<20} {:>6} {:>9}",
            "site",
            "device",
            "state",
            "version",
            "model",
            "camera",
            "last seen",
            "last result",
            "outbox",
            "disk MB"
        )?;
        let opt = |v: &Option<String>| v.as_deref().unwrap_or("-").escape_debug().to_string();
        let num = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
        for u in &units {
            writeln!(
                o,
                "{:<16} {:<16} {:<8} {:<8} {:<12} {:<9} {:<20} {:<20} {:>6} {:>9}{}",
                u.site,
                u.device,
                u.state,
                opt(&u.version),
                opt(&u
                    .model_sha256
                    .as_ref()
                    .map(|s| s.chars().take(12).collect())),
                opt(&u.camera),
                opt(&u.last_seen),
                opt(&u.last_result),
                num(u.outbox),
                num(u.disk_free_mb),
                if u.silent {
                    format!("  SILENT > {} h", args.silent_hours)
                } else {
                    String::new()
                }
            )?;
        }
        let silent = units.iter().filter(|u| u.silent).count();
        writeln!(
            o,
            "{} unit(s), {silent} silent for more than {} h",
            units.len(),
            args.silent_hours
        )?;
    }
    Ok(if units.is_empty() || units.iter().any(|u| u.silent) {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    })
}
