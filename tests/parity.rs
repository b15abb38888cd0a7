//! The Rust preprocessing and inference must match the training pipeline exactly.
//!
//! `tests/fixtures/parity.json` is written by `models/train` from the shipped model files with
//! onnxruntime: decoded-pixel statistics, the preprocessed tensor (statistics and a strided
//! sample of values) and the expected probabilities per sample film.

use std::path::{Path, PathBuf};

use cxr_edge::capture::{decode_image, Limits};
use cxr_edge::model::Classifier;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parity() -> Value {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/parity.json")).expect("parity.json");
    serde_json::from_str(&text).expect("parity.json is JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn vecf(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(f).collect()
}

fn stats(t: &[f32]) -> (f64, f64, f64, f64, f64) {
    let n = t.len() as f64;
    let sum: f64 = t.iter().map(|&x| x as f64).sum();
    let mean = sum / n;
    let var = t.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let min = t.iter().cloned().fold(f32::INFINITY, f32::min) as f64;
    let max = t.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    (mean, var.sqrt(), min, max, sum)
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, want {want} (tolerance {tol})"
    );
}

#[test]
fn preprocessing_and_probabilities_match_the_python_pipeline() {
    let p = parity();
    let manifest = root().join(p["manifest"].as_str().unwrap());
    let f32_model = Classifier::load(&manifest, Some("f32")).expect("f32 model loads");
    // The fixtures were made with the preprocessing the manifest names (parity.py reads it
    // there), so the tensors below compare the same recipe on both sides.
    assert_eq!(
        p["preprocess"].as_str(),
        Some(f32_model.manifest.input.preprocess.as_str())
    );
    let int8_model = Classifier::load(&manifest, Some("int8")).expect("int8 model loads");
    let samples = p["samples"].as_array().unwrap();
    assert!(samples.len() >= 3, "parity file covers too few samples");
    let mut worst_prob = 0f64;
    for s in samples {
        let file = s["file"].as_str().unwrap();
        let bytes = std::fs::read(root().join("tests/fixtures").join(file)).unwrap();
        let frame = decode_image(&bytes, &Limits::default()).unwrap();
        let is_jpeg = Path::new(file)
            .extension()
            .is_some_and(|e| e == "jpg" || e == "jpeg");
        // Lossless fixtures decode to identical pixels; a JPEG may differ by a grey level
        // between libjpeg-turbo and the Rust decoder, so its tolerances are wider.
        let (px_tol, t_tol, p_tol) = if is_jpeg {
            (0.5, 0.02, 5e-3)
        } else {
            (1e-3, 1e-4, 1e-3)
        };
        assert_eq!(
            frame.width as u64,
            s["gray"]["width"].as_u64().unwrap(),
            "{file} width"
        );
        assert_eq!(
            frame.height as u64,
            s["gray"]["height"].as_u64().unwrap(),
            "{file} height"
        );
        close(
            &format!("{file} gray mean"),
            frame.mean() as f64,
            f(&s["gray"]["mean"]),
            px_tol,
        );

        let tensor = f32_model.preprocess(&frame);
        let t = &s["tensor"];
        let (mean, std, min, max, _sum) = stats(&tensor);
        close(&format!("{file} tensor mean"), mean, f(&t["mean"]), t_tol);
        close(&format!("{file} tensor std"), std, f(&t["std"]), t_tol);
        if !is_jpeg {
            close(&format!("{file} tensor min"), min, f(&t["min"]), t_tol);
            close(&format!("{file} tensor max"), max, f(&t["max"]), t_tol);
            let stride = t["stride"].as_u64().unwrap() as usize;
            for (k, want) in vecf(&t["values"]).into_iter().enumerate() {
                close(
                    &format!("{file} tensor[{}]", k * stride),
                    tensor[k * stride] as f64,
                    want,
                    t_tol,
                );
            }
        }

        let got = f32_model.run_tensor(&tensor).unwrap();
        for (i, want) in vecf(&s["f32"]["probs"]).into_iter().enumerate() {
            let d = (got.probs[i] as f64 - want).abs();
            worst_prob = worst_prob.max(d);
            close(
                &format!("{file} f32 prob[{i}]"),
                got.probs[i] as f64,
                want,
                p_tol,
            );
        }
        assert_eq!(
            f32_model.manifest.labels[got.top],
            s["f32"]["top1"].as_str().unwrap(),
            "{file} f32 top-1"
        );
        let cam_shape: Vec<u64> = s["f32"]["cam_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        // The file's own map (onnxruntime's shape), or twice its rows and columns when the
        // manifest asks for the dense map (`model::dense`).
        let k = if f32_model.manifest.outputs.dense_cam {
            2
        } else {
            1
        };
        assert_eq!(
            vec![
                cam_shape[0],
                cam_shape[1],
                k * cam_shape[2],
                k * cam_shape[3]
            ],
            vec![
                1,
                got.cam.classes as u64,
                got.cam.height as u64,
                got.cam.width as u64
            ]
        );

        let q = int8_model.run_tensor(&tensor).unwrap();
        assert_eq!(
            int8_model.manifest.labels[q.top],
            s["int8"]["top1"].as_str().unwrap(),
            "{file} int8 top-1"
        );
    }
    eprintln!("largest f32 probability difference to onnxruntime: {worst_prob:.2e}");
}

#[test]
fn jpeg_decoding_stays_within_a_grey_level_of_libjpeg() {
    // parity.json records a JPEG whose libjpeg-turbo (PIL) decode equals a committed PNG.
    // Decoders may round differently; the difference must be tiny and must not move the result.
    let p = parity();
    let j = &p["jpeg"];
    let read = |k: &str| {
        std::fs::read(root().join("tests/fixtures").join(j[k].as_str().unwrap())).unwrap()
    };
    let from_jpeg = decode_image(&read("file"), &Limits::default()).unwrap();
    let from_png = decode_image(&read("decoded_png"), &Limits::default()).unwrap();
    assert_eq!(
        (from_jpeg.width, from_jpeg.height),
        (from_png.width, from_png.height)
    );
    let diffs: Vec<f32> = from_jpeg
        .data
        .iter()
        .zip(&from_png.data)
        .map(|(a, b)| (a - b).abs())
        .collect();
    let max = diffs.iter().cloned().fold(0.0, f32::max);
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    eprintln!("JPEG decode vs libjpeg-turbo: max {max} grey levels, mean {mean:.4}");
    assert!(max <= 4.0 && mean <= 0.5, "max {max}, mean {mean}");
    let clf = Classifier::load(&root().join(p["manifest"].as_str().unwrap()), Some("f32")).unwrap();
    let (a, b) = (
        clf.classify(&from_jpeg).unwrap(),
        clf.classify(&from_png).unwrap(),
    );
    assert_eq!(a.top, b.top);
    for (x, y) in a.probs.iter().zip(&b.probs) {
        close("jpeg vs png prob", *x as f64, *y as f64, 5e-3);
    }
}

#[test]
fn logits_are_the_mean_of_the_cam() {
    // The heatmap is only honest if it is the map the decision was averaged from.
    let manifest = root().join("models/cxr-net.toml");
    let clf = Classifier::load(&manifest, Some("f32")).unwrap();
    let bytes = std::fs::read(
        root()
            .join("tests/fixtures/samples")
            .join(cxr_edge::capture::samples::all()[0].name),
    )
    .unwrap();
    let pred = clf
        .classify(&decode_image(&bytes, &Limits::default()).unwrap())
        .unwrap();
    // A dense map (`model::dense`) holds the network's own map at its even cells.
    let step = if clf.manifest.outputs.dense_cam { 2 } else { 1 };
    let (w, h) = (pred.cam.width, pred.cam.height);
    for c in 0..pred.cam.classes {
        let m = pred.cam.map(c);
        let cells: Vec<f64> = (0..h)
            .step_by(step)
            .flat_map(|y| (0..w).step_by(step).map(move |x| m[y * w + x] as f64))
            .collect();
        let mean = cells.iter().sum::<f64>() / cells.len() as f64;
        close(&format!("class {c}"), mean, pred.logits[c] as f64, 1e-3);
    }
}

/// "cxr-eq-v2" (rank equalisation after the area resize), checked against the Python reference
/// before any shipped model uses it: `models/train/eq_fixture.py` writes the fixture.
#[test]
fn equalised_preprocessing_matches_the_python_reference() {
    use cxr_edge::model::preprocess::{preprocess_with, Preprocess};
    let text = std::fs::read_to_string(root().join("tests/fixtures/preprocess-eq-v2.json"))
        .expect("preprocess-eq-v2.json");
    let p: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(p["preprocess"], "cxr-eq-v2");
    let (w, h) = (
        p["width"].as_u64().unwrap() as usize,
        p["height"].as_u64().unwrap() as usize,
    );
    let (mean, std) = (f(&p["mean"]) as f32, f(&p["std"]) as f32);
    for s in p["samples"].as_array().unwrap() {
        let file = s["file"].as_str().unwrap();
        let bytes = std::fs::read(root().join("tests/fixtures").join(file)).unwrap();
        let frame = decode_image(&bytes, &Limits::default()).unwrap();
        let t = preprocess_with(Preprocess::EqV2, &frame, w, h, mean, std);
        let (m, sd, min, max, _) = stats(&t);
        // ranks are taken on a 1/16-grey grid, so a resized value that differs by an ulp moves
        // only where it sits on a grid boundary, by one tie group
        close(&format!("{file} mean"), m, f(&s["mean"]), 1e-5);
        close(&format!("{file} std"), sd, f(&s["std"]), 1e-4);
        close(&format!("{file} min"), min, f(&s["min"]), 1e-6);
        close(&format!("{file} max"), max, f(&s["max"]), 1e-6);
        let stride = s["stride"].as_u64().unwrap() as usize;
        for (k, want) in vecf(&s["values"]).into_iter().enumerate() {
            close(
                &format!("{file} eq tensor[{}]", k * stride),
                t[k * stride] as f64,
                want,
                1e-3,
            );
        }
    }
}
