//! The shipped model files: integrity, size, and a fixed-shape load in tract.

use std::path::PathBuf;

use cxr_edge::model::{manifest::sha256_hex, Classifier, Manifest};

fn manifest_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/cxr-net.toml")
}

#[test]
fn every_variant_matches_its_sha256_and_loads_with_a_fixed_shape() {
    let m = Manifest::load(&manifest_path()).unwrap();
    assert_eq!(m.labels, ["covid", "pneumonia", "normal", "other"]);
    for (name, v) in &m.variants {
        let bytes = std::fs::read(m.dir.join(&v.file)).unwrap();
        assert_eq!(sha256_hex(&bytes), v.sha256, "{name}");
        let clf = Classifier::load(&manifest_path(), Some(name)).unwrap();
        let input = vec![0.0; m.input.width * m.input.height];
        let pred = clf.run_tensor(&input).unwrap();
        assert_eq!(pred.probs.len(), 4);
        assert!((pred.probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
}

#[test]
fn int8_model_is_small_enough_for_the_board() {
    let m = Manifest::load(&manifest_path()).unwrap();
    let (_, v) = m.variant(Some("int8")).unwrap();
    let size = std::fs::metadata(m.dir.join(&v.file)).unwrap().len();
    assert!(
        size <= 4 * 1024 * 1024,
        "int8 model is {size} bytes, over 4 MiB"
    );
}

#[test]
fn a_corrupt_model_file_is_refused_with_a_clear_message() {
    let m = Manifest::load(&manifest_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for v in m.variants.values() {
        std::fs::copy(m.dir.join(&v.file), dir.path().join(&v.file)).unwrap();
    }
    std::fs::copy(manifest_path(), dir.path().join("cxr-net.toml")).unwrap();
    let (_, v) = m.variant(None).unwrap();
    let target = dir.path().join(&v.file);
    let mut bytes = std::fs::read(&target).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&target, bytes).unwrap();
    let err = Classifier::load(&dir.path().join("cxr-net.toml"), None)
        .err()
        .expect("refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("does not match its manifest"), "{msg}");
    // A truncated file is refused the same way, before tract ever parses it.
    std::fs::write(&target, b"").unwrap();
    assert!(Classifier::load(&dir.path().join("cxr-net.toml"), None).is_err());
}

#[test]
fn a_broken_manifest_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(manifest_path()).unwrap();
    let bad = text.replace("temperature =", "temperature = -1.0\n#");
    std::fs::write(dir.path().join("m.toml"), bad).unwrap();
    let msg = format!(
        "{:#}",
        Manifest::load(&dir.path().join("m.toml")).unwrap_err()
    );
    assert!(msg.contains("temperature"), "{msg}");
}

/// A signed model bundle carries what each variant answered on the sample films on the
/// coordinator's machine (an x86 PC), and a unit refuses the bundle when its own answers differ
/// by more than the tolerance (`model::bundle::check`). This runs that check for the shipped
/// model against answers measured on x86 (`tests/fixtures/bundle-expected.json`, the
/// `expected.json` of `cxr-edge model sign`), so under qemu (scripts/test-arm) it shows that both
/// ARM kernel families and armv7 stay inside the tolerance, and a bundle signed on a PC installs
/// on a Pi. After retraining, rewrite the fixture: sign a bundle and take its `expected.json`.
#[test]
fn the_samples_answer_within_a_bundles_tolerance_of_the_x86_answers() {
    use cxr_edge::model::bundle::check::{verify, Expected};
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundle-expected.json");
    let expected: Expected = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    let compared = verify(&manifest_path(), &expected).unwrap();
    assert_eq!(compared, expected.answers.len());
}

/// The dense map (`model::dense`) must not change a single answer: on every variant and every
/// bundled sample, its even cells are the shipped map and its logits the shipped logits, and it
/// has twice the rows and columns.
#[test]
fn the_dense_map_holds_the_shipped_map_and_keeps_every_answer() {
    use cxr_edge::capture::{decode_image, Limits};
    use cxr_edge::model::{Engine, Prediction};
    let plain = {
        let mut m = Manifest::load(&manifest_path()).unwrap();
        m.outputs.dense_cam = false;
        m
    };
    let mut dense = plain.clone();
    dense.outputs.dense_cam = true;
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples");
    let clf = Classifier::load(&manifest_path(), Some("f32")).unwrap();
    let tensors: Vec<Vec<f32>> = cxr_edge::capture::samples::all()
        .iter()
        .map(|s| {
            let bytes = std::fs::read(samples.join(s.name)).unwrap();
            clf.preprocess(&decode_image(&bytes, &Limits::default()).unwrap())
        })
        .collect();
    for (name, v) in &plain.variants {
        let bytes = std::fs::read(plain.dir.join(&v.file)).unwrap();
        let (a, b) = (
            Engine::load(&plain, &bytes).unwrap(),
            Engine::load(&dense, &bytes).unwrap(),
        );
        let (mut worst_map, mut worst_logit) = (0.0f32, 0.0f32);
        for t in &tensors {
            let (p, d) = (a.run(t).unwrap(), b.run(t).unwrap());
            assert_eq!(
                (d.cam.height, d.cam.width),
                (2 * p.cam.height, 2 * p.cam.width),
                "{name}"
            );
            for c in 0..p.cam.classes {
                let (pm, dm) = (p.cam.map(c), d.cam.map(c));
                for y in 0..p.cam.height {
                    for x in 0..p.cam.width {
                        let e = pm[y * p.cam.width + x] - dm[2 * y * d.cam.width + 2 * x];
                        worst_map = worst_map.max(e.abs());
                    }
                }
            }
            for (x, y) in p.logits.iter().zip(&d.logits) {
                worst_logit = worst_logit.max((x - y).abs());
            }
            // The device's own answer: top label and operating-point flags.
            let (p, d) = (
                Prediction::from_raw(&plain, p),
                Prediction::from_raw(&dense, d),
            );
            assert_eq!(p.top, d.top, "{name}: top-1");
            assert_eq!(p.decision.flags, d.decision.flags, "{name}: flags");
        }
        eprintln!("{name}: largest difference, map {worst_map:.2e}, logits {worst_logit:.2e}");
        assert!(worst_map <= 1e-4 && worst_logit <= 1e-4, "{name}");
    }
}
