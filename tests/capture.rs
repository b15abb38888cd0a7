//! Camera photos from the command line, without a camera: `capture --frames`, `classify
//! --input`, `devices`. The photos are simulated from the bundled sample films (fixed seeds).

use std::path::{Path, PathBuf};
use std::process::Output;

use cxr_edge::capture::{decode_image, samples, Limits};
use cxr_edge::film::find_film;
use cxr_edge::film::simulate::{simulate, Placement, SimOptions};
use cxr_edge::pixels::Frame;
use serde_json::Value;

mod common;
use common::{command, root};

fn run(args: &[&str]) -> Output {
    command(Path::new(env!("CARGO_BIN_EXE_cxr-edge")))
        .args(args)
        .current_dir(root())
        .output()
        .expect("binary runs")
}

fn film() -> Frame {
    let s = samples::all()
        .iter()
        .find(|s| s.name == "nih-normal-1.png")
        .expect("sample film");
    decode_image(s.bytes, &Limits::default()).unwrap()
}

fn save(f: &Frame, path: &Path) {
    f.to_luma8().save(path).unwrap();
}

/// A 640x480 photo of the film, whole and found by the finder (the first such seed, so the
/// test does not depend on the finder's accuracy, which tests/film.rs measures).
fn good_photo() -> Frame {
    let film = film();
    (1..100u64)
        .map(|seed| {
            simulate(
                &film,
                &SimOptions::new(640, 480, 0.2, Placement::Inside, seed),
            )
        })
        .find(|s| find_film(&s.frame).is_ok())
        .expect("a findable simulated photo")
        .frame
}

fn photo(placement: Placement, seed: u64) -> Frame {
    simulate(&film(), &SimOptions::new(640, 480, 0.2, placement, seed)).frame
}

/// As a phone or camera stores it: colour, even of a grey film.
fn save_rgb(f: &Frame, path: &Path) {
    let img = image::RgbImage::from_fn(f.width as u32, f.height as u32, |x, y| {
        let v = f.pixel(x as usize, y as usize).round().clamp(0.0, 255.0) as u8;
        image::Rgb([v, v, v.saturating_sub(3)])
    });
    img.save(path).unwrap();
}

fn stdout_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn capture_waits_for_a_steady_film_then_classifies_it_as_a_photo() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    // Two frames without a film, one with the film cut off, then the film held still.
    save(&photo(Placement::Absent, 3), &frames.join("00.png"));
    save(&photo(Placement::Absent, 4), &frames.join("01.png"));
    save(&photo(Placement::CutOff, 5), &frames.join("02.png"));
    let good = good_photo();
    for i in 3..7 {
        save(&good, &frames.join(format!("{i:02}.png")));
    }
    let keep = dir.path().join("keep");
    let out = run(&[
        "capture",
        "--frames",
        frames.to_str().unwrap(),
        "--steady",
        "3",
        "--json",
        "--save",
        keep.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let r = stdout_json(&out);
    assert_eq!(r["input"], "film-photo");
    assert!(r["label"].is_string(), "{r}");
    assert!(r["error"].is_null(), "{r}");
    assert_eq!(r["film_corners"].as_array().unwrap().len(), 4);
    assert!(r["notice"].as_str().unwrap().contains("not a diagnosis"));
    // It said what was wrong while waiting, once per change, and analysed the 3rd still frame.
    assert!(err.contains("No film found"), "{err}");
    assert!(err.contains("hold still"), "{err}");
    assert!(r["path"].as_str().unwrap().ends_with("(frame 6)"), "{r}");
    for f in ["frame.png", "film.heatmap.png"] {
        assert!(keep.join(f).is_file(), "{f} not saved");
    }
}

#[test]
fn capture_without_a_steady_film_fails_with_the_last_reason() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        save(
            &photo(Placement::CutOff, 20 + i),
            &dir.path().join(format!("{i}.png")),
        );
    }
    let out = run(&["capture", "--frames", dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ran out of frames before a film was held still"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn capture_of_a_missing_frames_folder_is_a_clear_error() {
    let out = run(&["capture", "--frames", "/nonexistent/frames"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/frames"), "{err}");
}

#[test]
fn classify_input_modes() {
    let dir = tempfile::tempdir().unwrap();
    let good: PathBuf = dir.path().join("photo.png");
    save_rgb(&good_photo(), &good);
    let grey_photo: PathBuf = dir.path().join("grey-photo.png");
    save(&good_photo(), &grey_photo);
    let cut = dir.path().join("cut.png");
    save(&photo(Placement::CutOff, 7), &cut);

    // auto: the grey sample films are digital, the colour photo is a photo; a photo saved as
    // a grey file is taken for an export (documented; --input film-photo is the way).
    let out = run(&[
        "classify",
        "--json",
        "--input",
        "auto",
        good.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = stdout_json(&out);
    assert_eq!(r["input"], "film-photo", "{r}");
    assert!(r["label"].is_string());
    let out = run(&["classify", "--json", "--input", "auto"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["input"], "digital", "{r}");
        assert!(r.get("film_corners").is_none());
    }

    // A cut-off photo is refused with the reason, not guessed at.
    let out = run(&[
        "classify",
        "--json",
        "--input",
        "film-photo",
        cut.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let r = stdout_json(&out);
    assert!(r["label"].is_null(), "{r}");
    assert!(r["error"].as_str().unwrap().contains("cut off"), "{r}");
    assert_eq!(r["quality"][0]["code"], "film_cut_off");

    // Forced digital: the photo is classified as it is, with no finder.
    let out = run(&[
        "classify",
        "--json",
        "--input",
        "digital",
        good.to_str().unwrap(),
    ]);
    let r = stdout_json(&out);
    assert_eq!(r["input"], "digital");
    assert!(r.get("film_corners").is_none());
}

#[test]
fn devices_answers_with_or_without_cameras() {
    let out = run(&["devices"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("No cameras found") || text.contains("/dev/video"),
        "{text}"
    );
}
