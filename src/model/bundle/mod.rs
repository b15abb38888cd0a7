//! Signed model bundles: how a study coordinator ships a new model to its units, and how a unit
//! decides whether to believe it.
//!
//! A bundle is one uncompressed tar file (`*.cxrb`), so that a folder, a retained MQTT message
//! and an HTTPS download all carry the same bytes. Its members, flat, no folders:
//!
//! - `bundle.toml`, the index: format, model name and version, a `serial` that grows with every
//!   bundle the study publishes, the name of the model manifest, and every other member with
//!   its size and sha256;
//! - `bundle.toml.minisig`, a minisign (Ed25519) signature of the index; the key that signed it
//!   must be the one in `/etc/cxr-edge/model-signing.pub` (root's, not the service's);
//! - the model manifest (`model.toml`), the ONNX files it names, and `expected.json`: what each
//!   variant answered on the sample films bundled in the program (see [`check`]).
//!
//! Nothing in a bundle is trusted before the signature of its index is checked, and nothing in
//! the index is used before each member is checked against it: a member missing, extra, of
//! another size or hash refuses the whole bundle. The reader works on bytes already in memory,
//! under a size budget, and never unpacks a tar onto the disk (no path in it is ever used as a
//! path; names are checked to be plain file names first).
//!
//! [`store`] installs verified bundles (check on the samples, atomic switch, rollback), [`sign`]
//! builds them on the coordinator's machine.

pub mod check;
pub mod sign;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::manifest::{sha256_hex, Manifest};

pub use store::{Outcome, Store};

/// Largest bundle accepted (all members together): today's model files are ~4 MB each.
pub const MAX_BUNDLE_BYTES: usize = 64 << 20;
/// Largest bundle file read, fetched or taken from the broker: the members and the tar's own
/// headers and padding.
pub const MAX_FILE_BYTES: usize = MAX_BUNDLE_BYTES + (1 << 20);
/// Most members a bundle may have.
const MAX_MEMBERS: usize = 16;
/// The index's name in the tar.
pub const INDEX: &str = "bundle.toml";
/// The signature's name in the tar.
pub const SIGNATURE: &str = "bundle.toml.minisig";
/// The expected outputs' name in the tar.
pub const EXPECTED: &str = "expected.json";
/// The format this program reads and writes.
pub const FORMAT: u32 = 1;
/// Where the study's public key is installed (root's folder: the service cannot replace it).
pub const DEFAULT_PUBLIC_KEY: &str = "/etc/cxr-edge/model-signing.pub";

/// The signed index of a bundle.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// [`FORMAT`].
    pub format: u32,
    /// The model's name (as in its manifest).
    pub name: String,
    /// The model's version (as in its manifest).
    pub version: String,
    /// Grows with every bundle the study publishes: a unit refuses one not newer than the
    /// bundle it runs, so an old, validly signed bundle cannot be replayed to downgrade it.
    pub serial: u64,
    /// When the bundle was made (RFC 3339, UTC); for people.
    pub created: String,
    /// The member that is the model manifest.
    pub manifest: String,
    /// Every member but the index and its signature.
    pub files: Vec<Member>,
}

/// One member of a bundle, as the index describes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Plain file name (letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256, lowercase hex.
    pub sha256: String,
}

/// A bundle whose signature, members and manifest have been checked.
#[derive(Debug)]
pub struct Bundle {
    /// The index, as signed.
    pub index: Index,
    /// The index's bytes, as signed.
    pub index_bytes: Vec<u8>,
    /// The signature file's text.
    pub signature: String,
    /// The members, by name (index and signature excluded).
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    /// The bundle's identity: the first 16 hex digits of its index's sha256 (the index names
    /// every member's hash, so two bundles with one id hold the same files).
    pub fn id(&self) -> String {
        sha256_hex(&self.index_bytes)[..16].to_string()
    }
}

/// Why a bundle was not installed. The caller branches on it: a refused bundle changed
/// nothing; a failed check was installed aside, tried and removed again.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not signed by the study's key, altered, malformed, or not newer than the current one.
    #[error("bundle refused: {0}")]
    Refused(String),
    /// Signed and whole, but its model does not load or does not answer as its signer
    /// measured on the sample films; the unit stayed on its model.
    #[error("bundle rolled back: {0}")]
    CheckFailed(String),
    /// Could not be written (disk full, permissions); nothing was switched.
    #[error("bundle not installed: {0}")]
    Io(String),
}

fn refused(msg: impl Into<String>) -> BundleError {
    BundleError::Refused(msg.into())
}

/// A member's name is a plain file name: no folder, nothing hidden, nothing a shell or a path
/// join would read as more than a name.
pub fn plain_name(name: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    (1..=64).contains(&name.len())
        && name.chars().all(ok_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// A bundle file's bytes, refused before reading when larger than [`MAX_FILE_BYTES`].
pub fn read_file(path: &Path) -> Result<Vec<u8>, crate::capture::DecodeError> {
    crate::capture::read_limited(path, MAX_FILE_BYTES as u64)
}

/// The study's public key, from its minisign `.pub` file.
pub fn load_public_key(path: &Path) -> Result<minisign_verify::PublicKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the model signing key {} (install the study's public key there, \
             made by `cxr-edge model keygen` or `minisign -G`)",
            path.display()
        )
    })?;
    minisign_verify::PublicKey::decode(text.trim())
        .map_err(|e| anyhow::anyhow!("{}: not a minisign public key ({e})", path.display()))
}

/// Split a tar held in memory into its members, refusing anything but plain files with plain
/// names, duplicates, more than [`MAX_MEMBERS`] members or more than [`MAX_BUNDLE_BYTES`].
fn members(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    if bytes.len() > MAX_BUNDLE_BYTES + (MAX_MEMBERS + 2) * 1024 {
        return Err(refused(format!(
            "{} bytes, more than the {} MiB a bundle may have",
            bytes.len(),
            MAX_BUNDLE_BYTES >> 20
        )));
    }
    let bad = |e: std::io::Error| refused(format!("not a readable tar file ({e})"));
    let mut archive = tar::Archive::new(bytes);
    let mut out = BTreeMap::new();
    let mut total: usize = 0;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if !entry.header().entry_type().is_file() {
            return Err(refused(format!("member {name:?} is not a plain file")));
        }
        if !plain_name(&name) {
            return Err(refused(format!(
                "member name {name:?} is not a plain file name"
            )));
        }
        if out.len() >= MAX_MEMBERS + 2 {
            return Err(refused(format!("more than {} members", MAX_MEMBERS + 2)));
        }
        // The header's size is the sender's claim: checked against what is left of the budget
        // before anything is allocated for it.
        let size = usize::try_from(entry.size()).unwrap_or(usize::MAX);
        total = total.saturating_add(size);
        if total > MAX_BUNDLE_BYTES {
            return Err(refused(format!(
                "members larger than the {} MiB a bundle may have",
                MAX_BUNDLE_BYTES >> 20
            )));
        }
        let mut data = Vec::with_capacity(size);
        std::io::Read::read_to_end(&mut entry, &mut data).map_err(bad)?;
        ensure_len(&name, data.len(), size)?;
        if out.insert(name.clone(), data).is_some() {
            return Err(refused(format!("member {name:?} appears twice")));
        }
    }
    Ok(out)
}

fn ensure_len(name: &str, got: usize, want: usize) -> Result<(), BundleError> {
    if got != want {
        return Err(refused(format!(
            "member {name:?} is cut short ({got} of {want} bytes)"
        )));
    }
    Ok(())
}

/// The index in `index_bytes`, parsed only once `signature` (minisign text) verifies it with
/// `key`; the reason otherwise. Used for a bundle offered and for the installed one alike.
pub fn verified_index(
    index_bytes: &[u8],
    signature: &str,
    key: &minisign_verify::PublicKey,
) -> Result<Index, String> {
    let sig = minisign_verify::Signature::decode(signature)
        .map_err(|e| format!("the signature is not a minisign signature ({e})"))?;
    // Legacy (non-prehashed) signatures are accepted too: minisign before 0.10 wrote them, and
    // they are just as strong for a file of a few hundred bytes.
    key.verify(index_bytes, &sig, true).map_err(|e| {
        format!(
            "the signature does not verify with the study's public key ({e}): \
             altered, or signed with another key"
        )
    })?;
    let text =
        std::str::from_utf8(index_bytes).map_err(|_| "the index is not UTF-8".to_string())?;
    toml::from_str(text).map_err(|e| format!("the index is not valid ({e})"))
}

/// Read and verify a bundle: the index's signature against `key`, then every member against
/// the index, then the manifest (valid, its variant files among the members, their hashes the
/// index's). Nothing is written anywhere.
pub fn open(bytes: &[u8], key: &minisign_verify::PublicKey) -> Result<Bundle, BundleError> {
    let mut files = members(bytes)?;
    let index_bytes = files
        .remove(INDEX)
        .ok_or_else(|| refused(format!("no {INDEX} in the bundle")))?;
    let sig_bytes = files
        .remove(SIGNATURE)
        .ok_or_else(|| refused(format!("not signed: no {SIGNATURE} in the bundle")))?;
    let signature =
        String::from_utf8(sig_bytes).map_err(|_| refused("the signature is not text"))?;
    // From here on the index is the study's own words.
    let index = verified_index(&index_bytes, &signature, key).map_err(refused)?;
    check_members(&index, &files)?;
    check_manifest(&index, &files).map_err(|e| refused(format!("{e:#}")))?;
    Ok(Bundle {
        index,
        index_bytes,
        signature,
        files,
    })
}

/// Every member the index names is there, with its size and hash, and nothing else is.
fn check_members(index: &Index, files: &BTreeMap<String, Vec<u8>>) -> Result<(), BundleError> {
    if index.format != FORMAT {
        return Err(refused(format!(
            "format {} (this program reads format {FORMAT}; update cxr-edge first)",
            index.format
        )));
    }
    for m in &index.files {
        if !plain_name(&m.name) || m.name == INDEX || m.name == SIGNATURE {
            return Err(refused(format!("the index names {:?}", m.name)));
        }
        let data = files
            .get(&m.name)
            .ok_or_else(|| refused(format!("member {:?} is missing", m.name)))?;
        if data.len() as u64 != m.size || sha256_hex(data) != m.sha256.to_ascii_lowercase() {
            return Err(refused(format!(
                "member {:?} is not the one that was signed (size or sha256 differs)",
                m.name
            )));
        }
    }
    for name in files.keys() {
        if !index.files.iter().any(|m| &m.name == name) {
            return Err(refused(format!(
                "member {name:?} is not in the signed index"
            )));
        }
    }
    for need in [&index.manifest, &EXPECTED.to_string()] {
        if !files.contains_key(need) {
            return Err(refused(format!("no {need} in the bundle")));
        }
    }
    Ok(())
}

/// The manifest parses and validates; its name and version are the index's; each variant's file
/// is a member whose hash is the one the manifest states.
fn check_manifest(index: &Index, files: &BTreeMap<String, Vec<u8>>) -> Result<()> {
    let text = std::str::from_utf8(&files[&index.manifest]).context("the manifest is not UTF-8")?;
    let m = Manifest::parse(text, Path::new(".")).context("the bundle's manifest")?;
    ensure!(
        m.name == index.name && m.version == index.version,
        "the manifest says {} {}, the index {} {}",
        m.name,
        m.version,
        index.name,
        index.version
    );
    for (variant, v) in &m.variants {
        let Some(data) = files.get(&v.file) else {
            bail!("variant {variant}'s file {:?} is not in the bundle", v.file);
        };
        ensure!(
            sha256_hex(data).eq_ignore_ascii_case(&v.sha256),
            "variant {variant}'s file does not match the manifest's sha256"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
