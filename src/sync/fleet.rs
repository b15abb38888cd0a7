//! `cxr-edge fleet`: every unit's retained status on a study's broker, read in one short
//! subscription (`cxr-edge/v1/+/+/status` and `.../seen`), one row per unit.
//!
//! Everything here came from the network, so every field is checked or shown escaped: a
//! payload that is not a status message is reported as such, a site or device name that is not
//! a plain topic level is skipped, and text reaches the terminal through `escape_debug`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use serde_json::Value;

use super::mqtt::{Broker, Mqtt, Topics};

/// One unit as the broker remembers it.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Unit {
    /// Its site.
    pub site: String,
    /// Its name.
    pub device: String,
    /// `online`, `offline` (said goodbye, or the broker published its last will), or `?` when
    /// the status message is missing or not one.
    pub state: String,
    /// cxr-edge version.
    pub version: Option<String>,
    /// SHA-256 of the model of its newest record.
    pub model_sha256: Option<String>,
    /// When it last spoke (`.../seen`), RFC 3339.
    pub last_seen: Option<String>,
    /// Its newest record's time.
    pub last_result: Option<String>,
    /// Records waiting to be sent when it last spoke.
    pub outbox: Option<u64>,
    /// Free disk space in MiB when it last spoke.
    pub disk_free_mb: Option<u64>,
    /// Its camera when it last spoke (`none`, `starting`, `streaming`, `lost`).
    pub camera: Option<String>,
    /// Not heard from for longer than the limit (or never said when).
    pub silent: bool,
}

/// Read the fleet's retained messages from `broker` and make one [`Unit`] per unit; units not
/// seen for longer than `silent_after` are marked.
pub fn read(broker: &Broker, site: Option<&str>, silent_after: Duration) -> Result<Vec<Unit>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let id = format!("cxr-edge-fleet-{}", std::process::id());
    let level = site.unwrap_or("+");
    let messages = rt.block_on(async {
        // The topics are only for the connection's options; this client publishes nothing.
        let mut m = Mqtt::connect(broker, &id, Topics::new("fleet", "reader"), None).await?;
        let got = m
            .retained(
                &format!("cxr-edge/v1/{level}/+/+"),
                Duration::from_millis(800),
            )
            .await?;
        m.disconnect().await;
        Ok::<_, anyhow::Error>(got)
    })?;
    Ok(units(&messages, SystemTime::now(), silent_after))
}

/// The rows for `messages` (topic, payload) as of `now`.
pub fn units(messages: &[(String, Vec<u8>)], now: SystemTime, silent_after: Duration) -> Vec<Unit> {
    let mut by_unit: BTreeMap<(String, String), Unit> = BTreeMap::new();
    for (topic, payload) in messages {
        let parts: Vec<&str> = topic.split('/').collect();
        let [_, _, site, device, kind] = parts[..] else {
            continue;
        };
        if crate::config::check_topic_level("site", site).is_err()
            || crate::config::check_topic_level("device", device).is_err()
        {
            continue;
        }
        let u = by_unit
            .entry((site.to_string(), device.to_string()))
            .or_insert_with(|| Unit {
                site: site.to_string(),
                device: device.to_string(),
                state: "?".into(),
                ..Unit::default()
            });
        let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        let text = |k: &str| {
            v[k].as_str()
                .map(|s| s.chars().take(80).collect::<String>())
        };
        match kind {
            "status" if v["schema"] == "cxr-edge/status/v1" => {
                u.state = match v["state"].as_str() {
                    Some(s @ ("online" | "offline")) => s.to_string(),
                    _ => "?".into(),
                };
                u.version = text("version");
                u.model_sha256 = text("model_sha256");
                u.last_result = text("last_result");
                u.outbox = v["outbox"].as_u64();
                u.disk_free_mb = v["disk_free_mb"].as_u64();
                u.camera = text("camera");
            }
            "seen" => {
                u.last_seen = text("time").filter(|t| crate::store::parse_rfc3339(t).is_some())
            }
            _ => {}
        }
    }
    let mut out: Vec<Unit> = by_unit.into_values().collect();
    for u in &mut out {
        let seen = u.last_seen.as_deref().and_then(crate::store::parse_rfc3339);
        u.silent = match seen {
            Some(t) => now.duration_since(t).unwrap_or_default() > silent_after,
            None => true,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn units_are_gathered_checked_and_marked_silent() {
        let now = UNIX_EPOCH + Duration::from_secs(1_796_083_199); // 2026-11-30T23:59:59Z
        let status = |state: &str| {
            serde_json::json!({"schema": "cxr-edge/status/v1", "state": state, "version": "0.1.0",
                               "outbox": 3, "disk_free_mb": 900})
            .to_string()
            .into_bytes()
        };
        let seen = |t: &str| format!("{{\"time\": \"{t}\"}}").into_bytes();
        let msgs = vec![
            ("cxr-edge/v1/a/u1/status".to_string(), status("online")),
            (
                "cxr-edge/v1/a/u1/seen".to_string(),
                seen("2026-11-30T23:50:00Z"),
            ),
            ("cxr-edge/v1/a/u2/status".to_string(), status("offline")),
            (
                "cxr-edge/v1/a/u2/seen".to_string(),
                seen("2026-11-28T10:00:00Z"),
            ),
            ("cxr-edge/v1/b/u3/status".to_string(), b"not json".to_vec()),
            ("cxr-edge/v1/b/u4/seen".to_string(), seen("yesterday")),
            (
                "cxr-edge/v1/b/bad name/status".to_string(),
                status("online"),
            ),
        ];
        let u = units(&msgs, now, Duration::from_secs(86_400));
        let names: Vec<&str> = u.iter().map(|u| u.device.as_str()).collect();
        assert_eq!(names, ["u1", "u2", "u3", "u4"]);
        assert_eq!(
            (u[0].state.as_str(), u[0].silent, u[0].outbox),
            ("online", false, Some(3))
        );
        assert_eq!((u[1].state.as_str(), u[1].silent), ("offline", true));
        assert_eq!((u[2].state.as_str(), u[2].silent), ("?", true));
        assert_eq!(
            u[3].last_seen, None,
            "a time that does not parse is dropped"
        );
    }
}
