//! `[sync]`: where the results log is forwarded (README "Research network").
//!
//! ```toml
//! [sync]
//! site = "clinic-a"             # the study site; needed once a destination is set
//! device = "unit-7"             # default: this machine's host name
//! mqtt = "mqtts://broker.study.org:8883"   # or mqtt://host:1883 (port optional)
//! ca = "/etc/cxr-edge/study-ca.pem"        # mqtts: the CA of the broker's certificate
//! client_cert = "/etc/cxr-edge/unit-7.pem" # mqtts: this unit's certificate and key ...
//! client_key = "/etc/cxr-edge/unit-7.key"
//! username = "unit-7"           # ... or a user name and a password file (readable by the
//! password_file = "/etc/cxr-edge/mqtt-password"   # service only)
//! dicomweb = "https://pacs.study.org/dicom-web"   # STOW-RS; or http://HOST:PORT/PATH
//! dicomweb_ca = "/etc/cxr-edge/study-ca.pem"      # https: default, the system's CAs
//! dicomweb_token_file = "/etc/cxr-edge/archive-token"  # a bearer token, or
//! dicomweb_user = "unit-7"      # basic authentication with
//! dicomweb_password_file = "/etc/cxr-edge/archive-password"
//! interval_s = 30               # how often an idle unit looks for new records
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The `[sync]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// The study site this unit belongs to (a topic level: letters, digits, `.`, `_`, `-`).
    #[serde(default)]
    pub site: String,
    /// This unit's name (the same characters); default: the host name.
    #[serde(default)]
    pub device: String,
    /// The MQTT broker, `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`; empty: no MQTT.
    #[serde(default)]
    pub mqtt: String,
    /// PEM file of the CA that signed the broker's certificate (mqtts); default: the system's
    /// CA bundle.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM certificate of this unit, for brokers that ask for one (mqtts).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// MQTT user name.
    #[serde(default)]
    pub username: String,
    /// A file holding the MQTT password (kept out of the config, which more people read).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The DICOMweb base of a DICOM archive, `http(s)://HOST[:PORT]/PATH`; empty: none.
    #[serde(default)]
    pub dicomweb: String,
    /// PEM file of the CA of the archive's certificate (https); default: the system's CAs.
    #[serde(default)]
    pub dicomweb_ca: Option<PathBuf>,
    /// A file holding a bearer token for the archive.
    #[serde(default)]
    pub dicomweb_token_file: Option<PathBuf>,
    /// User name for the archive's basic authentication.
    #[serde(default)]
    pub dicomweb_user: String,
    /// A file holding that user's password.
    #[serde(default)]
    pub dicomweb_password_file: Option<PathBuf>,
    /// Seconds between looks for new records while everything is delivered (1 ..= 3600).
    #[serde(default = "default_interval")]
    pub interval_s: u64,
}

fn default_interval() -> u64 {
    30
}

impl Default for SyncSection {
    fn default() -> Self {
        toml::from_str("").expect("defaults are valid")
    }
}

/// A broker address, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct BrokerUrl {
    /// `mqtts://`: TLS.
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port (default 1883, or 8883 with TLS).
    pub port: u16,
}

impl BrokerUrl {
    /// `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`; IPv6 addresses in brackets.
    pub fn parse(s: &str) -> Result<BrokerUrl> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("mqtt://") {
            (false, r)
        } else {
            bail!(
                "mqtt = \"{}\": use mqtt://HOST[:PORT] or mqtts://HOST[:PORT]",
                s.escape_debug()
            );
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .with_context(|| format!("mqtt: bad port '{}'", p.escape_debug()))?,
            ),
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:_".contains(c))
        {
            bail!("mqtt: bad host '{}'", host.escape_debug());
        }
        Ok(BrokerUrl {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

/// A DICOMweb base address, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveUrl {
    /// `https://`.
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port (default 80, or 443 with TLS).
    pub port: u16,
    /// The path of the DICOMweb root, without a trailing `/` (may be empty).
    pub path: String,
}

impl ArchiveUrl {
    /// `http(s)://HOST[:PORT][/PATH]`.
    pub fn parse(s: &str) -> Result<ArchiveUrl> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            bail!(
                "dicomweb = \"{}\": use http://HOST[:PORT]/PATH or https://...",
                s.escape_debug()
            );
        };
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.contains('@') {
            bail!("dicomweb: put credentials in dicomweb_user/_password_file or _token_file, not the address");
        }
        let path = path.trim_end_matches('/');
        if !path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~/%".contains(c))
        {
            bail!("dicomweb: bad path '{}'", path.escape_debug());
        }
        // The host and port as an MQTT broker's are checked.
        let b = BrokerUrl::parse(&format!(
            "{}://{authority}",
            if tls { "mqtts" } else { "mqtt" }
        ))
        .map_err(|e| anyhow::anyhow!("dicomweb: {}", e.to_string().trim_start_matches("mqtt: ")))?;
        let explicit_port = authority
            .rsplit_once(':')
            .is_some_and(|(h, _)| !h.ends_with(':') && !authority.ends_with(']'));
        Ok(ArchiveUrl {
            tls,
            host: b.host,
            port: if explicit_port {
                b.port
            } else if tls {
                443
            } else {
                80
            },
            path: if path.is_empty() {
                String::new()
            } else {
                format!("/{path}")
            },
        })
    }
}

/// One level of an MQTT topic we build: no `/`, `+`, `#`, spaces or control characters, so a
/// site or device name can never widen a subscription or reach another unit's topics.
pub fn check_topic_level(what: &str, s: &str) -> Result<()> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        bail!(
            "[sync] {what} = \"{}\": use 1 to 64 letters, digits, '.', '_' or '-'",
            s.escape_debug()
        );
    }
    Ok(())
}

impl SyncSection {
    /// Whether any destination is configured.
    pub fn enabled(&self) -> bool {
        !self.mqtt.is_empty() || !self.dicomweb.is_empty()
    }

    /// Check what can be checked without the network: the address, the names, the files
    /// named being given in pairs.
    pub fn check(&self) -> Result<()> {
        if !(1..=3600).contains(&self.interval_s) {
            bail!(
                "[sync] interval_s = {} is outside 1 ..= 3600",
                self.interval_s
            );
        }
        if !self.enabled() {
            return Ok(());
        }
        check_topic_level("site", &self.site)?;
        if !self.device.is_empty() {
            check_topic_level("device", &self.device)?;
        }
        if !self.mqtt.is_empty() {
            let url = BrokerUrl::parse(&self.mqtt)?;
            if self.client_cert.is_some() != self.client_key.is_some() {
                bail!("[sync] client_cert and client_key go together");
            }
            if !url.tls && (self.ca.is_some() || self.client_cert.is_some()) {
                bail!("[sync] ca, client_cert and client_key need an mqtts:// broker");
            }
            if self.password_file.is_some() && self.username.is_empty() {
                bail!("[sync] password_file needs a username");
            }
        }
        if !self.dicomweb.is_empty() {
            let url = ArchiveUrl::parse(&self.dicomweb)?;
            if !url.tls && self.dicomweb_ca.is_some() {
                bail!("[sync] dicomweb_ca needs an https:// archive");
            }
            if self.dicomweb_password_file.is_some() && self.dicomweb_user.is_empty() {
                bail!("[sync] dicomweb_password_file needs a dicomweb_user");
            }
            if self.dicomweb_token_file.is_some() && !self.dicomweb_user.is_empty() {
                bail!("[sync] give the archive a token or a user, not both");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses_parse_or_are_refused() {
        let u = BrokerUrl::parse("mqtt://127.0.0.1:18830").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (false, "127.0.0.1", 18830)
        );
        let u = BrokerUrl::parse("mqtts://broker.study.org").unwrap();
        assert_eq!((u.tls, u.port), (true, 8883));
        assert_eq!(BrokerUrl::parse("mqtt://h").unwrap().port, 1883);
        assert_eq!(BrokerUrl::parse("mqtt://[::1]:99").unwrap().host, "::1");
        for bad in [
            "http://h",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:x",
            "mqtt://a b",
            "mqtt://h/#",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn archive_addresses_parse_or_are_refused() {
        let u = ArchiveUrl::parse("http://127.0.0.1:8042/dicom-web/").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "127.0.0.1", 8042, "/dicom-web")
        );
        let u = ArchiveUrl::parse("https://pacs.org").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (true, 443, ""));
        assert_eq!(ArchiveUrl::parse("http://h/x").unwrap().port, 80);
        for bad in [
            "ftp://h",
            "http://",
            "http://u:p@h/x",
            "http://h/a b",
            "http://h:99999/",
        ] {
            assert!(ArchiveUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_that_could_reach_other_topics_are_refused() {
        for ok in ["clinic-a", "unit_7", "x.y"] {
            check_topic_level("site", ok).unwrap();
        }
        for bad in ["", "a/b", "+", "#", "a b", "é", &"x".repeat(65)] {
            assert!(check_topic_level("site", bad).is_err(), "{bad}");
        }
        let s: SyncSection = toml::from_str("mqtt = \"mqtt://h\"\nsite = \"a/#\"").unwrap();
        assert!(s.check().is_err());
        let s: SyncSection =
            toml::from_str("mqtt = \"mqtt://h\"\nsite = \"a\"\nca = \"/x\"").unwrap();
        assert!(format!("{:#}", s.check().unwrap_err()).contains("mqtts://"));
        let s: SyncSection = toml::from_str("").unwrap();
        assert!(!s.enabled());
        s.check().unwrap();
    }
}
