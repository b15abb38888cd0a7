//! `cxr-edge capture`: watch a camera (or recorded frames) until a film is found and held
//! still, then classify that one frame, as a photo of a film.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::output::{Summary, TableWriter};
use super::{CaptureArgs, EXIT_OK, EXIT_SOME_FAILED};
use crate::analysis::{analyse, How, Subject};
use crate::capture::camera::CameraOptions;
use crate::capture::pixfmt::PixelFormat;
use crate::capture::{open_camera, FileSource, FrameSource, Playback, SourceError};
use crate::files::write_png_atomically;
use crate::film::steady::{Look, Steady};
use crate::lang::Language;
use crate::model::{manifest::locate_manifest, Classifier};
use crate::pixels::Frame;

fn parse_format(s: &str) -> Result<PixelFormat> {
    match s.to_ascii_lowercase().as_str() {
        "mjpeg" | "mjpg" => Ok(PixelFormat::Mjpeg),
        "yuyv" => Ok(PixelFormat::Yuyv),
        "grey" | "gray" => Ok(PixelFormat::Grey),
        _ => bail!("unknown pixel format '{s}': mjpeg, yuyv or grey"),
    }
}

fn save_gray(f: &Frame, path: &Path) -> Result<()> {
    let rgb = image::DynamicImage::ImageLuma8(f.to_luma8()).to_rgb8();
    write_png_atomically(&rgb, path)
}

/// Progress on stderr, each hint once (not once per frame).
struct Hints {
    name: String,
    last: String,
}

impl Hints {
    fn say(&mut self, hint: String) {
        if hint != self.last {
            eprintln!("{}: {hint}", self.name);
            self.last = hint;
        }
    }
    fn last_or<'a>(&'a self, none: &'a str) -> &'a str {
        if self.last.is_empty() {
            none
        } else {
            &self.last
        }
    }
}

pub fn run(args: CaptureArgs) -> Result<i32> {
    let (w, h) = crate::config::parse_frame_size(&args.size)?;
    let mut source: Box<dyn FrameSource> = match (&args.camera, &args.frames) {
        (Some(_), Some(_)) => bail!("give either --camera or --frames, not both"),
        (_, Some(path)) => {
            Box::new(FileSource::open(path, Playback::Once).context("cannot play frames")?)
        }
        (camera, None) => {
            let opts = CameraOptions {
                width: w,
                height: h,
                format: args.format.as_deref().map(parse_format).transpose()?,
                ..CameraOptions::default()
            };
            open_camera(camera.as_deref().unwrap_or("0"), opts)?
        }
    };
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let manifest_path = locate_manifest(args.model.model.as_deref())?;
    let profile = crate::model::ProfileChoice::from_setting(args.profile.site_profile.as_deref());
    let clf =
        Classifier::load_with_profile(&manifest_path, args.model.variant.as_deref(), &profile)?;

    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    let mut steady = Steady::new(args.steady);
    let name = source.name();
    let mut hints = Hints {
        name: name.clone(),
        last: String::new(),
    };
    let (frame, corners, frames_seen) = {
        let mut seen = 0usize;
        loop {
            if Instant::now() >= deadline {
                eprintln!(
                    "cxr-edge capture: no steady film within {} s from {name}; last: {}",
                    args.timeout,
                    hints.last_or("no frames")
                );
                return Ok(EXIT_SOME_FAILED);
            }
            let frame = match source.next_frame() {
                Ok(f) => f,
                Err(SourceError::Finished { .. }) => {
                    eprintln!(
                        "cxr-edge capture: {name} ran out of frames before a film was held still ({seen} frames; last: {})",
                        hints.last_or("none readable")
                    );
                    return Ok(EXIT_SOME_FAILED);
                }
                Err(e) => {
                    hints.say(e.to_string());
                    continue;
                }
            };
            seen += 1;
            let look = steady.observe(&frame);
            hints.say(look.hint());
            if let Look::Ready { corners } = look {
                break (frame, corners, seen);
            }
        }
    };
    eprintln!("{name}: film steady after {frames_seen} frames; analysing");

    if let Some(dir) = &args.save {
        save_gray(&frame, &dir.join("frame.png"))?;
    }
    // The film is straightened at the corners the steadiness check found in this very frame.
    let how = How {
        heatmap: args.save.is_some(),
        ..How::default()
    };
    let subject = Subject::Photo {
        frame,
        corners: Some(corners),
    };
    let mut a = analyse(subject, &how, &clf);
    a.record.path = format!("{name} (frame {frames_seen})");
    if let Some(dir) = &args.save {
        a.save_heatmap(&dir.join("film.heatmap.png"));
    }
    let rec = a.record;

    let mut summary = Summary::new(&clf.manifest.labels, Language::En);
    summary.add(&rec);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&rec).expect("record serialises")
        )?;
    } else {
        let mut t = TableWriter::new(&clf.manifest.labels, &clf.id(), Language::En);
        t.header(&mut out)?;
        t.row(&mut out, &rec)?;
        writeln!(out, "\n{}", summary.render())?;
    }
    Ok(if rec.error.is_some() {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    })
}
