//! `[updates]`: where a unit takes signed model bundles from (README "Research network").
//!
//! ```toml
//! [updates]
//! public_key = "/etc/cxr-edge/model-signing.pub"  # the study's key (the default); without
//!                               # this file no bundle is ever installed
//! dir = "/var/lib/cxr-edge/models"   # installed bundles, current and previous (the default)
//! folder = "/var/lib/cxr-edge/updates"  # *.cxrb files put here are installed, then moved
//!                               # to done/ or refused/ beside a note of the outcome
//! url = "https://study.org/cxr-edge/clinic-a.cxrb"  # fetched every interval (https only;
//!                               # If-None-Match when the server gives an ETag)
//! ca = "/etc/cxr-edge/study-ca.pem"  # the url's CA; default: the system's CAs
//! mqtt = true                   # the retained bundle on cxr-edge/v1/<site>/model, through
//!                               # the [sync] broker and its credentials
//! interval_s = 3600             # how often the url and the topic are looked at
//! ```

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Deserialize;

/// The `[updates]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatesSection {
    /// The study's minisign public key.
    #[serde(default = "default_key")]
    pub public_key: PathBuf,
    /// The model store.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// A folder watched for `*.cxrb` files.
    #[serde(default)]
    pub folder: Option<PathBuf>,
    /// An `https://` address of the bundle.
    #[serde(default)]
    pub url: String,
    /// PEM file of the CA of the update server's certificate; default: the system's CAs.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Take the retained bundle of the site's model topic on the `[sync]` broker.
    #[serde(default)]
    pub mqtt: bool,
    /// Seconds between looks at the url and the topic (60 ..= 604800).
    #[serde(default = "default_interval")]
    pub interval_s: u64,
}

fn default_key() -> PathBuf {
    PathBuf::from(crate::model::bundle::DEFAULT_PUBLIC_KEY)
}

fn default_dir() -> PathBuf {
    PathBuf::from(crate::model::bundle::store::DEFAULT_ROOT)
}

fn default_interval() -> u64 {
    3600
}

impl Default for UpdatesSection {
    fn default() -> Self {
        UpdatesSection {
            public_key: default_key(),
            dir: default_dir(),
            folder: None,
            url: String::new(),
            ca: None,
            mqtt: false,
            interval_s: default_interval(),
        }
    }
}

impl UpdatesSection {
    /// Check what can be checked without touching the disk or the network.
    pub fn check(&self, sync: &super::SyncSection) -> Result<()> {
        if !(60..=604_800).contains(&self.interval_s) {
            bail!(
                "[updates] interval_s = {} is outside 60 ..= 604800",
                self.interval_s
            );
        }
        if !self.url.is_empty() && !self.url.starts_with("https://") {
            bail!("[updates] url must be an https:// address (a bundle is only as safe as its key, but its download should not be readable on the way)");
        }
        if self.mqtt && (sync.mqtt.is_empty() || sync.site.is_empty()) {
            bail!("[updates] mqtt = true needs [sync] mqtt and site (the bundle's topic is cxr-edge/v1/<site>/model)");
        }
        Ok(())
    }
}

impl UpdatesSection {
    /// The store of installed bundles.
    pub fn store(&self) -> crate::model::bundle::Store {
        crate::model::bundle::Store::new(&self.dir)
    }

    /// The installed bundle's manifest, checked again against its signature; `None` when no
    /// bundle is installed.
    pub fn current_manifest(&self) -> Result<Option<PathBuf>> {
        let store = self.store();
        if store.current_id().is_none() {
            return Ok(None);
        }
        let key = crate::model::bundle::load_public_key(&self.public_key)?;
        store.current_manifest(&key)
    }
}

/// The model manifest to load: `explicit` (`--model` or `[model] manifest`), else
/// `$CXR_EDGE_MODEL`, else the installed bundle's (if it still verifies; otherwise the reason is
/// logged and the packaged model is used), else the usual search.
pub fn locate_model(
    explicit: Option<&std::path::Path>,
    updates: &UpdatesSection,
    search: crate::model::manifest::Search,
) -> Result<PathBuf> {
    if explicit.is_none() && std::env::var_os("CXR_EDGE_MODEL").is_none() {
        match updates.current_manifest() {
            Ok(Some(p)) => return Ok(p),
            Ok(None) => {}
            Err(e) => tracing::warn!("the installed model bundle is not used: {e:#}"),
        }
    }
    crate::model::manifest::locate_manifest_in(explicit, search)
}
