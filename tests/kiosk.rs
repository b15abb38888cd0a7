//! The camera kiosk's state machine, driven by scripted frames, camera failures and buttons,
//! with the real model: what is shown, what is recorded, and recovery from a lost camera.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use cxr_edge::app::live::{run_live, LiveKiosk, State, Step};
use cxr_edge::app::notify::Notifier;
use cxr_edge::capture::{decode_image, samples, FrameSource, Limits, SourceError};
use cxr_edge::config::DisplaySpec;
use cxr_edge::display::Output;
use cxr_edge::film::find_film;
use cxr_edge::film::simulate::{simulate, Placement, SimOptions};
use cxr_edge::input::{Button, Buttons};
use cxr_edge::model::Classifier;
use cxr_edge::pixels::Frame;
use cxr_edge::store::unit::{Camera, UnitState};
use cxr_edge::store::ResultsLog;
use cxr_edge::ui::Problem;

#[allow(dead_code)] // shared with the tests that start the binary
mod common;

fn classifier() -> Classifier {
    Classifier::load(&common::root().join("models/cxr-net.toml"), Some("int8")).unwrap()
}

fn film(name: &str) -> Frame {
    let s = samples::all().iter().find(|s| s.name == name).unwrap();
    decode_image(s.bytes, &Limits::default()).unwrap()
}

/// A photo of `name` in which the finder finds the film (first such seed from `from`).
fn photo(name: &str, from: u64) -> Frame {
    let f = film(name);
    (from..from + 100)
        .map(|seed| {
            simulate(
                &f,
                &SimOptions::new(480, 360, 0.15, Placement::Inside, seed),
            )
        })
        .find(|s| find_film(&s.frame).is_ok())
        .unwrap()
        .frame
}

fn empty_box() -> Frame {
    simulate(
        &film("nih-normal-1.png"),
        &SimOptions::new(480, 360, 0.1, Placement::Absent, 9),
    )
    .frame
}

fn lost() -> SourceError {
    SourceError::Unavailable {
        source_name: "cam".into(),
        reason: "the camera was unplugged or lost power".into(),
    }
}

fn timeout() -> SourceError {
    SourceError::Timeout {
        source_name: "cam".into(),
        waited: Duration::from_millis(2000),
    }
}

struct Scripted(VecDeque<Result<Frame, SourceError>>);

impl FrameSource for Scripted {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        self.0.pop_front().unwrap_or(Err(SourceError::Finished {
            source_name: "script".into(),
        }))
    }
    fn name(&self) -> String {
        "script".into()
    }
}

struct NoPresses;
impl Buttons for NoPresses {
    fn poll(&mut self) -> Vec<Button> {
        Vec::new()
    }
}

fn screens(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "screen.png")
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| n[5..n.len() - 4].to_string())
        .collect()
}

#[test]
fn auto_capture_result_camera_loss_recovery_and_a_second_film() {
    let clf = classifier();
    let tmp = tempfile::tempdir().unwrap();
    let log = ResultsLog::open(&tmp.path().join("results")).unwrap();
    let shots = tmp.path().join("screens");
    let mut out = Output::new(DisplaySpec::Png(shots.clone()), (320, 240)).numbered(true);
    // The camera's state, as the sync thread puts it into the unit's retained status.
    let unit = UnitState::new(Camera::None);
    let camera = || unit.snapshot().0;
    let mut k = LiveKiosk::new(&clf, &log, &mut out, true, true, 3).reporting_to(unit.clone());
    assert_eq!(camera(), Camera::Starting);

    let a = photo("nih-normal-1.png", 1);
    let b = photo("kermany-pneumonia-1.png", 40);
    k.on_frame(empty_box());
    assert_eq!(k.state(), &State::Live);
    assert_eq!(camera(), Camera::Streaming);
    for _ in 0..3 {
        k.on_frame(a.clone());
    }
    // Third still frame: analysed without a button.
    assert_eq!(k.state(), &State::Result(0));
    assert_eq!(k.totals.analysed, 1);
    // The same film stays: the result stays, and it is not analysed again.
    for _ in 0..4 {
        k.on_frame(a.clone());
    }
    assert_eq!(k.state(), &State::Result(0));
    assert_eq!(k.totals.analysed, 1);

    // The camera goes away while the result is up: the result stays.
    k.on_source_error(&lost());
    assert_eq!(k.state(), &State::Result(0));
    // Dismissed while the camera is still away; the next failure shows "no camera".
    k.on_button(Button::Next);
    assert_eq!(k.state(), &State::Live);
    k.on_source_error(&lost());
    assert!(matches!(k.state(), State::CameraLost(r) if r.contains("unplugged")));
    assert_eq!(camera(), Camera::Lost);
    // Back: the same film is in view, which was analysed, so no new analysis.
    k.on_frame(a.clone());
    assert_eq!(k.state(), &State::Live);
    assert_eq!(camera(), Camera::Streaming);
    for _ in 0..3 {
        k.on_frame(a.clone());
    }
    assert_eq!(k.state(), &State::Live);
    assert_eq!(k.totals.analysed, 1);

    // Film taken away, another one put up: analysed.
    k.on_frame(empty_box());
    for _ in 0..3 {
        k.on_frame(b.clone());
    }
    assert_eq!(k.state(), &State::Result(0));
    assert_eq!(k.totals.analysed, 2);
    // Back walks the history, Next returns to the camera.
    k.on_button(Button::Back);
    assert_eq!(k.state(), &State::Result(1));
    k.on_button(Button::Back);
    assert_eq!(k.state(), &State::Result(1));
    k.on_button(Button::Next);
    assert_eq!(k.state(), &State::Live);
    k.on_button(Button::Back);
    assert_eq!(k.state(), &State::Result(0));
    drop(k);

    let recs = common::records(log.dir());
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r["source"], "camera");
        assert_eq!(r["input"], "film-photo");
        assert!(r["label"].is_string());
        assert!(r["notice"].as_str().unwrap().contains("not a diagnosis"));
        assert_eq!(r["input_sha256"].as_str().unwrap().len(), 64);
        let image = log.dir().join(r["image"].as_str().unwrap());
        assert!(image.is_file(), "{}", image.display());
    }
    let kinds = screens(&shots);
    for want in ["preview", "analysing", "result", "error"] {
        assert!(
            kinds.iter().any(|k| k == want),
            "{want} missing in {kinds:?}"
        );
    }
}

#[test]
fn capture_button_timeouts_and_a_scripted_run() {
    let clf = classifier();
    let tmp = tempfile::tempdir().unwrap();
    let log = ResultsLog::open(&tmp.path().join("results")).unwrap();
    let mut out = Output::new(DisplaySpec::None, (320, 240));
    // No auto-capture: only the button analyses.
    let mut k = LiveKiosk::new(&clf, &log, &mut out, true, false, 2);
    let a = photo("nih-normal-1.png", 1);

    // Capture before any frame, and with no film in view: explained, nothing recorded.
    k.on_button(Button::Capture);
    assert!(matches!(k.state(), State::Problem(Problem::NoCamera, _)));
    k.on_frame(empty_box());
    k.on_button(Button::Capture);
    assert!(matches!(k.state(), State::Problem(Problem::NoFilm, _)));
    // The problem stays while there is still no film, and clears when one shows up.
    k.on_frame(empty_box());
    assert!(
        matches!(k.state(), State::Problem(Problem::NoFilm, _)),
        "{:?}",
        k.state()
    );
    for _ in 0..4 {
        k.on_frame(a.clone());
    }
    assert_eq!(k.state(), &State::Live, "steady, but waits for the button");
    k.on_button(Button::Capture);
    assert_eq!(k.state(), &State::Result(0));

    // Silence from the camera: three timeouts in a row say so; a frame recovers.
    k.on_button(Button::Next);
    k.on_source_error(&timeout());
    k.on_source_error(&timeout());
    assert_eq!(k.state(), &State::Live);
    k.on_source_error(&timeout());
    assert!(matches!(k.state(), State::CameraLost(r) if r.contains("no picture")));
    k.on_frame(a.clone());
    assert_eq!(k.state(), &State::Live);
    assert_eq!(k.totals.analysed, 1);
    drop(k);

    // The same through run_live with a script, the camera dropping out in the middle.
    let mut out = Output::new(DisplaySpec::None, (320, 240));
    let mut k = LiveKiosk::new(&clf, &log, &mut out, true, false, 2);
    let mut src = Scripted(
        vec![
            Ok(a.clone()),
            Ok(a.clone()),
            Err(lost()),
            Err(lost()),
            Ok(a.clone()),
            Ok(a.clone()),
            Ok(a.clone()),
        ]
        .into(),
    );
    let steps = [
        Step::Frames(2),
        Step::Press(Button::Capture), // camera lost: capture has no picture to use
        Step::Frames(1),
        Step::Frames(2),
        Step::Press(Button::Capture),
    ];
    run_live(
        &mut k,
        &mut src,
        &mut NoPresses,
        Some(&steps),
        &Notifier::from_env(),
    );
    assert_eq!(k.state(), &State::Result(0));
    assert_eq!(k.totals.analysed, 1);
    assert_eq!(common::records(log.dir()).len(), 2);
}

/// With the analysis on its own thread, frames keep coming and the preview keeps being drawn
/// while the model runs; the result is recorded when it arrives.
#[test]
fn the_preview_goes_on_while_the_worker_analyses() {
    use cxr_edge::app::live::Worker;
    let clf = classifier();
    let tmp = tempfile::tempdir().unwrap();
    let log = ResultsLog::open(&tmp.path().join("results")).unwrap();
    let shots = tmp.path().join("screens");
    let mut out = Output::new(DisplaySpec::Png(shots.clone()), (320, 240)).numbered(true);
    let a = photo("nih-normal-1.png", 1);
    std::thread::scope(|scope| {
        let mut k = LiveKiosk::new(&clf, &log, &mut out, true, true, 2)
            .with_worker(Worker::spawn(scope, &clf));
        k.on_frame(a.clone());
        k.on_frame(a.clone()); // steady: handed to the worker
        assert!(k.busy());
        assert_eq!(k.state(), &State::Live);
        // Buttons wait for the result; frames go on being shown.
        k.on_button(Button::Capture);
        k.on_frame(a.clone());
        k.poll(true);
        assert!(!k.busy());
        assert_eq!(k.state(), &State::Result(0));
        assert_eq!(k.totals.analysed, 1);
    });
    let kinds = screens(&shots);
    let analysing = kinds.iter().position(|k| k == "analysing").unwrap();
    let result = kinds.iter().position(|k| k == "result").unwrap();
    assert!(analysing < result, "{kinds:?}");
    // The frame that came in while the model ran was drawn (the preview did not freeze),
    // unless the worker had already finished by then.
    assert!(
        kinds[analysing + 1..result].iter().all(|k| k == "preview"),
        "{kinds:?}"
    );
    assert_eq!(common::records(log.dir()).len(), 1);
}
