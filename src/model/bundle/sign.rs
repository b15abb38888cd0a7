//! The study coordinator's side: a key pair (`cxr-edge model keygen`) and a signed bundle made
//! from a model manifest (`cxr-edge model sign`). Keys and signatures are minisign's own
//! formats, so `minisign -G` keys sign bundles here too and `minisign -V` checks an index by
//! hand.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

use super::check;
use super::{plain_name, Index, Member, EXPECTED, FORMAT, INDEX, SIGNATURE};
use crate::model::manifest::{sha256_hex, Manifest};

/// The manifest's name inside a bundle.
pub const MANIFEST: &str = "model.toml";

/// Make a key pair: `<stem>.key` (secret; protected by `password` when given) and `<stem>.pub`.
/// Existing files are never overwritten.
pub fn keygen(stem: &Path, password: Option<String>) -> Result<()> {
    let (sk_path, pk_path) = (stem.with_extension("key"), stem.with_extension("pub"));
    for p in [&sk_path, &pk_path] {
        ensure!(
            !p.exists(),
            "{} exists already; not overwriting a key",
            p.display()
        );
    }
    let err = |e: minisign::PError| anyhow::anyhow!("key generation failed: {e}");
    let kp = match password {
        Some(pw) => minisign::KeyPair::generate_encrypted_keypair(Some(pw)).map_err(err)?,
        None => minisign::KeyPair::generate_unencrypted_keypair().map_err(err)?,
    };
    let sk = kp
        .sk
        .to_box(Some("cxr-edge model signing key"))
        .map_err(err)?;
    let pk = kp.pk.to_box().map_err(err)?;
    write_new(&sk_path, &sk.to_bytes(), 0o600)?;
    write_new(&pk_path, &pk.to_bytes(), 0o644)?;
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Read a minisign secret key; `password` for a protected one.
pub fn load_secret_key(path: &Path, password: Option<String>) -> Result<minisign::SecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secret key {}", path.display()))?;
    let boxed = minisign::SecretKeyBox::from_string(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a minisign secret key ({e})", path.display()))?;
    let sk = match password {
        Some(pw) => boxed.into_secret_key(Some(pw)),
        None => boxed
            .into_unencrypted_secret_key()
            .or_else(|e| without_checksum(&text).ok_or(e)),
    };
    sk.map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot use the secret key ({e}); a password-protected key needs \
             --password-file",
            path.display()
        )
    })
}

/// An unprotected key as the C `minisign -G -W` writes it: no password, and a checksum of
/// zeros where the Rust crate expects one (it then calls the key corrupted). A key whose KDF
/// field says "none" and whose checksum is all zeros is taken as it is; a signature made with
/// a wrong key would simply not verify on the units.
fn without_checksum(text: &str) -> Option<minisign::SecretKey> {
    use ct_codecs::{Base64, Decoder};
    let line = text.lines().nth(1)?.trim();
    let bytes = Base64::decode_to_vec(line, None).ok()?;
    // sig_alg(2) kdf_alg(2) chk_alg(2) salt(32) ops(8) mem(8) keynum(8) sk(64) chk(32)
    if bytes.len() != 158 || bytes[2..4] != [0, 0] || bytes[126..].iter().any(|&b| b != 0) {
        return None;
    }
    minisign::SecretKey::from_bytes(&bytes).ok()
}

/// Build the signed bundle of the model at `manifest`: its files, the answers of each variant
/// on the sample films, the index with `serial`, signed with `sk`.
pub fn build(manifest: &Path, sk: &minisign::SecretKey, serial: u64) -> Result<Vec<u8>> {
    let m = Manifest::load(manifest)?;
    let mut members: Vec<(String, Vec<u8>)> = vec![(MANIFEST.into(), std::fs::read(manifest)?)];
    for (variant, v) in &m.variants {
        ensure!(
            plain_name(&v.file),
            "variant {variant}'s file {:?} must be a plain file name beside the manifest",
            v.file
        );
        members.push((v.file.clone(), m.read_verified(v)?));
    }
    let expected = check::measure(manifest)?;
    if expected.answers.is_empty() {
        bail!("no sample film could be classified; cannot write expected.json");
    }
    members.push((EXPECTED.into(), serde_json::to_vec_pretty(&expected)?));
    assemble(members, &m.name, &m.version, serial, sk)
}

/// Index, sign and tar `members` (name, bytes; one of them `model.toml`): what [`build`] does
/// once it has the files, open for tests that need a bundle no honest signer would make.
pub fn assemble(
    members: Vec<(String, Vec<u8>)>,
    name: &str,
    version: &str,
    serial: u64,
    sk: &minisign::SecretKey,
) -> Result<Vec<u8>> {
    let index = Index {
        format: FORMAT,
        name: name.to_string(),
        version: version.to_string(),
        serial,
        created: crate::time::now_rfc3339(),
        manifest: MANIFEST.into(),
        files: members
            .iter()
            .map(|(name, data)| Member {
                name: name.clone(),
                size: data.len() as u64,
                sha256: sha256_hex(data),
            })
            .collect(),
    };
    let index_bytes = toml::to_string(&index)?.into_bytes();
    let trusted = format!("cxr-edge bundle {name} {version} serial {serial}");
    let sig = minisign::sign(None, sk, &index_bytes[..], Some(&trusted), None)
        .map_err(|e| anyhow::anyhow!("signing failed: {e}"))?;
    let mut tar = tar::Builder::new(Vec::new());
    let all = [
        (INDEX.to_string(), index_bytes),
        (SIGNATURE.to_string(), sig.into_string().into_bytes()),
    ]
    .into_iter()
    .chain(members);
    for (name, data) in all {
        append(&mut tar, &name, &data)?;
    }
    Ok(tar.into_inner()?)
}

/// Add one member with fixed metadata, so the same files make the same tar.
pub fn append(tar: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data)?;
    Ok(())
}
