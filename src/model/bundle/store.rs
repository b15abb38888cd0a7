//! Installed bundles on a unit (`/var/lib/cxr-edge/models` by default, the service's own
//! folder) and the switch between them:
//!
//! ```text
//! bundles/<id>/       one folder per installed bundle: its members, index and signature
//! current -> bundles/<id>     the model the unit runs (none: the packaged model)
//! previous -> bundles/<id>    what `cxr-edge model rollback` goes back to
//! state.json          bundles rolled back here (never taken again) and the last attempt
//! ```
//!
//! A new bundle is written into a hidden folder, flushed, renamed to its id, checked on the
//! sample films ([`super::check`]) and only then made current by renaming a new symlink over
//! `current`: a rename is atomic, so after a power cut at any point `current` names either the
//! old bundle or the new, complete one. A bundle that fails its check is removed and noted in
//! `state.json`, so a retained MQTT message or a file left in the update folder is not tried
//! again at every poll.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::check::{self, Expected};
use super::{open, verified_index, Bundle, BundleError, Index, EXPECTED, INDEX, SIGNATURE};
use crate::model::manifest::sha256_hex;

/// Where bundles are installed unless configured otherwise.
pub const DEFAULT_ROOT: &str = "/var/lib/cxr-edge/models";

/// Bundles rolled back that `state.json` remembers (the oldest are forgotten).
const MAX_REJECTED: usize = 32;

/// The installed bundles of a unit.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// What an install did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Checked and made current; `compared` sample answers matched.
    Installed {
        /// The bundle's id.
        id: String,
        /// Its index.
        index: Index,
        /// Sample answers compared.
        compared: usize,
    },
    /// The bundle is already the current one; nothing changed.
    AlreadyCurrent {
        /// The bundle's id.
        id: String,
    },
}

/// An installed bundle.
#[derive(Clone, Debug)]
pub struct Installed {
    /// Its id.
    pub id: String,
    /// Its index.
    pub index: Index,
    /// Its folder.
    pub dir: PathBuf,
}

/// `state.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Bundles this unit rolled back, never installed again (unless forced).
    #[serde(default)]
    pub rejected: Vec<Attempt>,
    /// The last install or rollback, whatever its outcome.
    #[serde(default)]
    pub last: Option<Attempt>,
}

/// One install attempt or rollback.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attempt {
    /// When (RFC 3339, UTC).
    pub time: String,
    /// The bundle's id, when it got that far.
    pub id: Option<String>,
    /// Where it came from (a file, a URL, an MQTT topic) or `rollback`.
    pub source: String,
    /// `installed`, `already-current`, `refused`, `rolled-back`.
    pub outcome: String,
    /// Why, for the last two.
    pub reason: Option<String>,
}

fn now() -> String {
    crate::time::now_rfc3339()
}

impl Store {
    /// The store at `root` (created when something is installed).
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// The store's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The id a link (`current`, `previous`) points at: the link alone is read, which makes
    /// this cheap enough to poll.
    fn link_id(&self, name: &str) -> Option<String> {
        let target = std::fs::read_link(self.root.join(name)).ok()?;
        Some(target.file_name()?.to_str()?.to_string())
    }

    /// The current bundle's id, without reading its index (see [`Store::current`]).
    pub fn current_id(&self) -> Option<String> {
        self.link_id("current")
    }

    fn link(&self, name: &str) -> Option<Installed> {
        let id = self.link_id(name)?;
        let dir = self.root.join("bundles").join(&id);
        let text = std::fs::read_to_string(dir.join(INDEX)).ok()?;
        let index = toml::from_str(&text).ok()?;
        Some(Installed { id, index, dir })
    }

    /// The bundle the unit runs, if any (none: the packaged model).
    pub fn current(&self) -> Option<Installed> {
        self.link("current")
    }

    /// The bundle before it, if any.
    pub fn previous(&self) -> Option<Installed> {
        self.link("previous")
    }

    /// `state.json` (empty when missing or unreadable: it is advice, not a record).
    pub fn state(&self) -> State {
        std::fs::read(self.root.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_state(&self, s: &State) -> Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let json = serde_json::to_vec_pretty(s)?;
        crate::files::write_atomically(&self.root.join("state.json"), &json)
    }

    fn note(&self, attempt: Attempt, reject: bool) {
        let mut s = self.state();
        if reject {
            s.rejected.push(attempt.clone());
            let over = s.rejected.len().saturating_sub(MAX_REJECTED);
            s.rejected.drain(..over);
        }
        s.last = Some(attempt);
        if let Err(e) = self.save_state(&s) {
            tracing::warn!("cannot write the model store's state: {e:#}");
        }
    }

    /// The current bundle's manifest, after checking the installed files again against the
    /// signed index (the folder is the service's, so anything that can run as the service
    /// could have changed them). `Ok(None)`: no bundle installed.
    pub fn current_manifest(&self, key: &minisign_verify::PublicKey) -> Result<Option<PathBuf>> {
        let Some(id) = self.current_id() else {
            return Ok(None);
        };
        let dir = self.root.join("bundles").join(&id);
        let read = |n: &str| {
            std::fs::read(dir.join(n))
                .with_context(|| format!("installed bundle {id}: cannot read {n}"))
        };
        let index_bytes = read(INDEX)?;
        let sig = String::from_utf8(read(SIGNATURE)?).context("signature is not text")?;
        // The index used is the one just verified, not one read before.
        let index = verified_index(&index_bytes, &sig, key)
            .map_err(|e| anyhow::anyhow!("installed bundle {id} no longer verifies: {e}"))?;
        for m in &index.files {
            let data = read(&m.name)?;
            anyhow::ensure!(
                sha256_hex(&data) == m.sha256.to_ascii_lowercase(),
                "installed bundle {id}: {} was changed after it was installed",
                m.name
            );
        }
        Ok(Some(dir.join(&index.manifest)))
    }

    /// Verify `bytes` as a bundle, check it on the sample films and make it current. `source`
    /// says where it came from (for `model status`); `force` installs a bundle this unit rolled
    /// back before, or one not newer than the current one.
    pub fn install(
        &self,
        bytes: &[u8],
        key: &minisign_verify::PublicKey,
        source: &str,
        force: bool,
    ) -> Result<Outcome, BundleError> {
        let attempt = |id: Option<&str>, outcome: &str, reason: Option<String>| Attempt {
            time: now(),
            id: id.map(String::from),
            source: source.to_string(),
            outcome: outcome.to_string(),
            reason,
        };
        let bundle = match open(bytes, key) {
            Ok(b) => b,
            Err(e) => {
                self.note(attempt(None, "refused", Some(e.to_string())), false);
                return Err(e);
            }
        };
        let id = bundle.id();
        let current = self.current();
        if current.as_ref().is_some_and(|c| c.id == id) {
            return Ok(Outcome::AlreadyCurrent { id });
        }
        if let Err(e) = self.may_install(&bundle, &id, current.as_ref(), force) {
            self.note(attempt(Some(&id), "refused", Some(e.to_string())), false);
            return Err(e);
        }
        let dir = self
            .write(&bundle, &id)
            .map_err(|e| BundleError::Io(format!("{e:#}")))?;
        let compared = match self.check(&dir, &bundle) {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                let reason = format!("{e:#}");
                self.note(
                    attempt(Some(&id), "rolled-back", Some(reason.clone())),
                    true,
                );
                return Err(BundleError::CheckFailed(reason));
            }
        };
        self.switch(&id, current.map(|c| c.id))
            .map_err(|e| BundleError::Io(format!("{e:#}")))?;
        self.note(attempt(Some(&id), "installed", None), false);
        tracing::info!(
            "model bundle {id} ({} {}, serial {}) installed from {source}",
            bundle.index.name,
            bundle.index.version,
            bundle.index.serial
        );
        Ok(Outcome::Installed {
            id,
            index: bundle.index,
            compared,
        })
    }

    /// Refuse a bundle rolled back here before, or not newer than the current one.
    fn may_install(
        &self,
        b: &Bundle,
        id: &str,
        current: Option<&Installed>,
        force: bool,
    ) -> Result<(), BundleError> {
        if force {
            return Ok(());
        }
        if let Some(r) = self
            .state()
            .rejected
            .iter()
            .find(|r| r.id.as_deref() == Some(id))
        {
            return Err(BundleError::Refused(format!(
                "bundle {id} was rolled back on this unit on {} ({}); `cxr-edge model install \
                 --force` takes it anyway",
                r.time,
                r.reason.as_deref().unwrap_or("by hand")
            )));
        }
        if let Some(c) = current {
            if b.index.serial <= c.index.serial {
                return Err(BundleError::Refused(format!(
                    "serial {} is not newer than the current bundle's {} (an old bundle \
                     replayed?); `cxr-edge model install --force` takes it anyway",
                    b.index.serial, c.index.serial
                )));
            }
        }
        Ok(())
    }

    /// Write the bundle's files into `bundles/<id>`, durably, through a hidden folder.
    fn write(&self, b: &Bundle, id: &str) -> Result<PathBuf> {
        let bundles = self.root.join("bundles");
        std::fs::create_dir_all(&bundles)
            .with_context(|| format!("cannot create {}", bundles.display()))?;
        let tmp = bundles.join(format!(".new-{id}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let members = b
            .files
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .chain([
                (INDEX, b.index_bytes.as_slice()),
                (SIGNATURE, b.signature.as_bytes()),
            ]);
        for (name, data) in members {
            write_synced(&tmp.join(name), data)?;
        }
        crate::files::sync_dir(&tmp)?;
        let dir = bundles.join(id);
        if dir.exists() {
            // Left from an install that died before its switch, or the previous bundle taken
            // again by force: same id, same files.
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::rename(&tmp, &dir)?;
        crate::files::sync_dir(&bundles)?;
        Ok(dir)
    }

    fn check(&self, dir: &Path, b: &Bundle) -> Result<usize> {
        let expected: Expected =
            serde_json::from_slice(&b.files[EXPECTED]).context("expected.json is not valid")?;
        check::verify(&dir.join(&b.index.manifest), &expected)
    }

    /// Point `name` at `bundles/<id>` (or remove it for `None`) by renaming a new link over it.
    fn set_link(&self, name: &str, id: Option<&str>) -> Result<()> {
        let link = self.root.join(name);
        match id {
            Some(id) => {
                let tmp = self.root.join(format!(".{name}.new"));
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(Path::new("bundles").join(id), &tmp)?;
                std::fs::rename(&tmp, &link)?;
            }
            None => match std::fs::remove_file(&link) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            },
        }
        crate::files::sync_dir(&self.root)?;
        Ok(())
    }

    /// `current` to `id`, `previous` to what was current; then only those two are kept.
    fn switch(&self, id: &str, was: Option<String>) -> Result<()> {
        // previous first: a power cut between the two leaves previous = current, harmless.
        if was.is_some() {
            self.set_link("previous", was.as_deref())?;
        }
        self.set_link("current", Some(id))?;
        self.prune();
        Ok(())
    }

    /// Remove bundle folders that are neither current nor previous.
    fn prune(&self) {
        let keep: Vec<String> = [self.current(), self.previous()]
            .into_iter()
            .flatten()
            .map(|b| b.id)
            .collect();
        let Ok(entries) = std::fs::read_dir(self.root.join("bundles")) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Go back to the previous bundle (or, with none, to the packaged model), noting the
    /// bundle left as rolled back so it is not taken again. Returns the id now current.
    pub fn rollback(&self, reason: &str) -> Result<Option<String>> {
        let cur = self
            .current()
            .context("no model bundle is installed: the unit runs its packaged model")?;
        let prev = self.previous().map(|p| p.id);
        self.set_link("current", prev.as_deref())?;
        self.set_link("previous", None)?;
        self.note(
            Attempt {
                time: now(),
                id: Some(cur.id.clone()),
                source: "rollback".into(),
                outcome: "rolled-back".into(),
                reason: Some(reason.to_string()),
            },
            true,
        );
        self.prune();
        tracing::warn!(
            "model bundle {} rolled back ({reason}); now {}",
            cur.id,
            prev.as_deref().unwrap_or("the packaged model")
        );
        Ok(prev)
    }
}

fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}
