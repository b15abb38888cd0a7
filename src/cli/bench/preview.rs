//! The camera preview's frame rate while a film is being analysed: 640x480 frames go through
//! the kiosk ([`LiveKiosk`]) with its analysis thread, as in `cxr-edge run` with a camera, and
//! each frame's preview screen is rendered at 800x480 (the kiosk's own display is `none` here,
//! so the bench renders what a panel or framebuffer would be sent).

use std::time::Instant;

use anyhow::{Context, Result};

use super::{stage, Stage};
use crate::app::live::{LiveKiosk, Worker};
use crate::config::DisplaySpec;
use crate::display::Output;
use crate::input::Button;
use crate::model::Classifier;
use crate::pixels::Frame;
use crate::store::ResultsLog;
use crate::ui::{render, PreviewView, Screen};

/// Press capture `analyses` times on a still film; while each analysis runs, feed frames and
/// time each one (kiosk + preview render). The row's `fps` is frames shown over the time the
/// analyses took.
pub(crate) fn during_analysis(clf: &Classifier, photo: &Frame, analyses: usize) -> Result<Stage> {
    let dir = std::env::temp_dir().join(format!("cxr-edge-bench-{}", std::process::id()));
    let log = ResultsLog::open(&dir).context("bench: cannot open a scratch results folder")?;
    let mut out = Output::new(DisplaySpec::None, (800, 480));
    let pic = image::RgbImage::from_pixel(480, 360, image::Rgb([90, 90, 90]));
    let mut frame_ms = Vec::new();
    let (mut frames, mut busy_s) = (0usize, 0f64);
    std::thread::scope(|scope| {
        let mut kiosk = LiveKiosk::new(clf, &log, &mut out, false, false, 3)
            .quiet()
            .with_worker(Worker::spawn(scope, clf));
        let one = |kiosk: &mut LiveKiosk| {
            kiosk.on_frame(photo.clone());
            render(
                &Screen::Preview(PreviewView {
                    picture: &pic,
                    outline: None,
                    hint: "Analysing; keep the film in place.",
                    steady: true,
                }),
                800,
                480,
            );
        };
        for _ in 0..5 {
            one(&mut kiosk); // the film becomes steady
        }
        for _ in 0..analyses {
            kiosk.on_button(Button::Capture);
            let t0 = Instant::now();
            while kiosk.busy() {
                let t = Instant::now();
                one(&mut kiosk);
                frame_ms.push(t.elapsed().as_secs_f64() * 1e3);
                frames += 1;
            }
            busy_s += t0.elapsed().as_secs_f64();
            kiosk.on_button(Button::Next); // back to the preview
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(
        !frame_ms.is_empty(),
        "bench: no analysis ran beside the preview"
    );
    let mut row = stage(&clf.variant, "preview 640x480 during analysis", 2, frame_ms);
    row.fps = Some(frames as f64 / busy_s);
    Ok(row)
}
