//! The bundle reader against bundles no honest signer makes. The store (install, check,
//! switch, rollback) is tested end to end in tests/bundle.rs.

use super::sign::{append, assemble, MANIFEST};
use super::*;

fn keys() -> (minisign::SecretKey, minisign_verify::PublicKey) {
    let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let pk = minisign_verify::PublicKey::decode(&kp.pk.to_box().unwrap().into_string()).unwrap();
    (kp.sk, pk)
}

/// A manifest naming one small "model" file (the reader never runs it).
fn members() -> Vec<(String, Vec<u8>)> {
    let onnx = b"not really onnx".to_vec();
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/cxr-net.toml"))
            .unwrap();
    let (head, _) = manifest.split_once("[variants.int8]").unwrap();
    let manifest = format!(
        "{head}[variants.int8]\nfile = \"m.onnx\"\nsha256 = \"{}\"\n",
        sha256_hex(&onnx)
    );
    vec![
        (MANIFEST.into(), manifest.into_bytes()),
        ("m.onnx".into(), onnx),
        (EXPECTED.into(), b"{}".to_vec()),
    ]
}

fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (n, d) in members {
        append(&mut t, n, d).unwrap();
    }
    t.into_inner().unwrap()
}

/// The members of a bundle, as a list to alter.
fn split(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
            let mut d = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut d).unwrap();
            (name, d)
        })
        .collect()
}

fn join(m: &[(String, Vec<u8>)]) -> Vec<u8> {
    let v: Vec<(&str, &[u8])> = m.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    tar_of(&v)
}

fn refusal(bytes: &[u8], pk: &minisign_verify::PublicKey) -> String {
    match open(bytes, pk) {
        Err(BundleError::Refused(r)) => r,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_signed_bundle_opens_and_its_id_is_its_index_hash() {
    let (sk, pk) = keys();
    let bytes = assemble(members(), "cxr-net", "1", 7, &sk).unwrap();
    let b = open(&bytes, &pk).unwrap();
    assert_eq!(b.index.serial, 7);
    assert_eq!(b.files.len(), 3);
    assert_eq!(b.id(), sha256_hex(&b.index_bytes)[..16]);
}

#[test]
fn altered_unsigned_or_foreign_bundles_are_refused() {
    let (sk, pk) = keys();
    let good = split(&assemble(members(), "cxr-net", "1", 1, &sk).unwrap());
    // a member changed after signing
    let mut m = good.clone();
    m.iter_mut().find(|(n, _)| n == "m.onnx").unwrap().1[0] ^= 1;
    assert!(refusal(&join(&m), &pk).contains("not the one that was signed"));
    // the index changed after signing
    let mut m = good.clone();
    m[0].1.extend_from_slice(b"\n# more\n");
    assert!(refusal(&join(&m), &pk).contains("does not verify"));
    // no signature
    let m: Vec<_> = good
        .iter()
        .filter(|(n, _)| n != SIGNATURE)
        .cloned()
        .collect();
    assert!(refusal(&join(&m), &pk).contains("not signed"));
    // signed with another key
    let (_, other) = keys();
    assert!(refusal(&join(&good), &other).contains("does not verify"));
    // a member the index does not name
    let mut m = good.clone();
    m.push(("extra.sh".into(), b"rm -rf /".to_vec()));
    assert!(refusal(&join(&m), &pk).contains("not in the signed index"));
    // a member missing
    let m: Vec<_> = good
        .iter()
        .filter(|(n, _)| n != "m.onnx")
        .cloned()
        .collect();
    assert!(refusal(&join(&m), &pk).contains("missing"));
    // not a tar at all
    assert!(refusal(b"hello", &pk).contains("not a readable tar") || open(b"hello", &pk).is_err());
}

#[test]
fn names_that_are_paths_links_or_repeats_are_refused() {
    let (_, pk) = keys();
    for bad in ["../etc/passwd", "/etc/passwd", "a/b", ".hidden", ""] {
        assert!(!plain_name(bad), "{bad:?}");
    }
    assert!(plain_name("cxr-net.int8.onnx"));
    // A name written straight into the header (tar::Builder itself refuses `..`).
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..10].copy_from_slice(b"../escaped");
    h.set_size(1);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut t = tar::Builder::new(Vec::new());
    t.append(&h, &b"x"[..]).unwrap();
    let r = refusal(&t.into_inner().unwrap(), &pk);
    assert!(r.contains("not a plain file name"), "{r}");
    // a symbolic link
    let mut h = tar::Header::new_ustar();
    h.set_path("link").unwrap();
    h.set_link_name("/etc/shadow").unwrap();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_cksum();
    let mut t = tar::Builder::new(Vec::new());
    t.append(&h, std::io::empty()).unwrap();
    assert!(refusal(&t.into_inner().unwrap(), &pk).contains("not a plain file"));
    // twice the same name
    let twice = tar_of(&[("a", b"1"), ("a", b"2")]);
    assert!(refusal(&twice, &pk).contains("twice"));
}

#[test]
fn a_header_claiming_more_than_the_budget_is_refused_before_allocating() {
    let (_, pk) = keys();
    let mut h = tar::Header::new_ustar();
    h.set_path("big.onnx").unwrap();
    h.set_size(u64::MAX / 2);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 1024]);
    let r = refusal(&bytes, &pk);
    assert!(r.contains("MiB"), "{r}");
}

#[test]
fn a_manifest_naming_a_file_outside_the_bundle_is_refused() {
    let (sk, pk) = keys();
    let mut m = members();
    let text = String::from_utf8(m[0].1.clone()).unwrap();
    m[0].1 = text
        .replace(
            "file = \"m.onnx\"",
            "file = \"../../usr/share/cxr-edge/models/x.onnx\"",
        )
        .into_bytes();
    let r = refusal(&assemble(m, "cxr-net", "1", 1, &sk).unwrap(), &pk);
    assert!(r.contains("not in the bundle"), "{r}");
    // and the index must agree with the manifest on what the model is
    let r = refusal(&assemble(members(), "other", "1", 1, &sk).unwrap(), &pk);
    assert!(r.contains("the manifest says"), "{r}");
}
