//! The camera preview's frame rate while a film is being analysed: 640x480 frames go through
//! the kiosk ([`LiveKiosk`]) with its analysis thread, as in `cxr-edge run` with a camera, and
//! each frame's preview screen is rendered at 800x480 (without `--display` the kiosk's own
//! display is `none`, so the bench renders what a panel or framebuffer would be sent) or shown
//! on the display `--display` names (a DRM screen, a desktop window), which then sets the pace.
//! [`on_display`] measures that display alone: preview screens shown back to back.

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
pub(crate) fn during_analysis(
    clf: &Classifier,
    photo: &Frame,
    analyses: usize,
    display: Option<&DisplaySpec>,
) -> Result<Stage> {
    let dir = std::env::temp_dir().join(format!("cxr-edge-bench-{}", std::process::id()));
    let log = ResultsLog::open(&dir).context("bench: cannot open a scratch results folder")?;
    let mut out = Output::new(display.cloned().unwrap_or(DisplaySpec::None), (800, 480));
    let emulate = display.is_none();
    let pic = image::RgbImage::from_pixel(480, 360, image::Rgb([90, 90, 90]));
    let mut frame_ms = Vec::new();
    let (mut frames, mut busy_s) = (0usize, 0f64);
    std::thread::scope(|scope| {
        let mut kiosk = LiveKiosk::new(clf, &log, &mut out, false, false, 3)
            .quiet()
            .with_worker(Worker::spawn(scope, clf));
        let one = |kiosk: &mut LiveKiosk| {
            kiosk.on_frame(photo.clone());
            if !emulate {
                return; // the kiosk showed it on the real display
            }
            render(
                &Screen::Preview(PreviewView {
                    picture: &pic,
                    outline: None,
                    hint: "Analysing; keep the film in place.",
                    steady: true,
                    case: None,
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

/// Preview screens shown back to back on `spec` for `seconds` (after one to open it): the
/// display's own frame rate, drawing included. Each row entry is one screen's time.
pub(crate) fn on_display(spec: &DisplaySpec, name: &str, seconds: f64) -> Result<Stage> {
    let mut display =
        crate::display::open(spec, (800, 480), false).context("bench: cannot open the display")?;
    // A camera frame scaled as the kiosk scales it, with a moving bar so no layer can skip
    // an unchanged picture.
    let mut pic = image::RgbImage::from_pixel(480, 360, image::Rgb([90, 90, 90]));
    let mut frame_ms = Vec::new();
    let start = Instant::now();
    let mut i = 0u32;
    while start.elapsed().as_secs_f64() < seconds || frame_ms.len() < 3 {
        for y in 0..pic.height() {
            pic.put_pixel(i % pic.width(), y, image::Rgb([200, 200, 200]));
        }
        i += 1;
        let t = Instant::now();
        display.show(&Screen::Preview(PreviewView {
            picture: &pic,
            outline: None,
            hint: "Hold the film still.",
            steady: false,
            case: None,
        }))?;
        frame_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let fps = frame_ms.len() as f64 / start.elapsed().as_secs_f64();
    let mut row = stage(name, "preview shown on the display", 1, frame_ms);
    row.fps = Some(fps);
    Ok(row)
}
