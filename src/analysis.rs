//! One film from input to [`Record`]: read (once), hash, decode, find and straighten the film in a
//! photo, the quality checks, the model, the decision in words and the heatmap. Every face
//! (`classify`, `capture`, the watch folder, the camera kiosk, the upload page) calls
//! [`analyse`], so a film gets the same record whichever way it came in; what a face then does
//! with the [`Analysis`] (print it, write it to the results log, show it) is its own business.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use image::RgbImage;
use serde::Deserialize;

use crate::capture::{decode_image, is_grey_file, read_limited, Input, InputSource, Limits};
use crate::explain::{heatmap_image, map_words};
use crate::files::write_png_atomically;
use crate::film::gates::{auto_is_bare_film, check_photo, check_photo_at, Blocked, PhotoReport};
use crate::film::{self, Code, Quad, Warning};
use crate::model::manifest::sha256_hex;
use crate::model::{not_chest, result_words, Classifier, ModelId};
use crate::pixels::Frame;
use crate::record::{InputKind, Record};

/// What an input image is: a bare digital film (the whole image is the film), or a camera
/// photo of a film on a light box, which must be found, straightened and checked first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputMode {
    /// The whole image is the film.
    #[default]
    Digital,
    /// A camera photo of a film.
    FilmPhoto,
    /// Decide per image: grey files are digital (exports); for colour files the picture
    /// decides (`film::gates::auto_is_bare_film`).
    Auto,
}

impl InputMode {
    /// The mode for one file: `Auto` becomes `Digital` for a grey file, an export rather than
    /// a photo (see `is_grey_file`); only colour files need the picture-based decision.
    pub fn for_file(self, bytes: &[u8]) -> InputMode {
        match self {
            InputMode::Auto if is_grey_file(bytes) == Some(true) => InputMode::Digital,
            m => m,
        }
    }
}

/// What to analyse.
pub enum Subject<'a> {
    /// A file or a bundled sample: read once (within [`How::limits`]), hashed and decoded from
    /// the same bytes.
    Input(&'a Input),
    /// Image bytes already in memory (an upload).
    Bytes(&'a [u8]),
    /// A camera frame, a photo of a film. With `corners` (where the live preview found the film
    /// in this very frame) the film finder does not run again.
    Photo {
        /// The frame as the camera gave it.
        frame: Frame,
        /// The film's corners in `frame`, when already found.
        corners: Option<Quad>,
    },
}

/// How to analyse it.
#[derive(Clone, Copy, Debug, Default)]
pub struct How {
    /// Digital film, photo, or decide per image (files and bytes; a camera frame is a photo).
    pub mode: InputMode,
    /// Caps on reading and decoding.
    pub limits: Limits,
    /// Draw the heatmap picture (the film with the class-activation map and caption).
    pub heatmap: bool,
}

/// The outcome: the record, and what a screen or a page shows beside it.
pub struct Analysis {
    /// The record (its `path` names the input until the results log renames it).
    pub record: Record,
    /// SHA-256 of the input's bytes (of the 8-bit pixels for a camera frame); `None` when the
    /// input could not be read.
    pub input_sha256: Option<String>,
    /// The film as the model saw it (straightened, when the input was a photo).
    pub film: Option<Frame>,
    /// The film with its heatmap, when [`How::heatmap`] asked for it and there is a result.
    pub heatmap: Option<RgbImage>,
}

impl Analysis {
    /// The analysis of an input that could not be analysed at all (the analysis itself broke):
    /// only a record named `path` with the error `why`, nothing to hash or show.
    pub fn failed(path: &str, model: ModelId, why: &str) -> Analysis {
        let mut record = Record::new(path, model);
        record.error = Some(why.to_string());
        Analysis {
            record,
            input_sha256: None,
            film: None,
            heatmap: None,
        }
    }

    /// Write the heatmap picture (when there is one) to `path` and name it in the record
    /// (`classify --heatmap`, `capture --save`). The picture was asked for, so one that cannot
    /// be written makes the record an error, with the result still on it.
    pub fn save_heatmap(&mut self, path: &Path) {
        let Some(img) = &self.heatmap else { return };
        match write_png_atomically(img, path) {
            Ok(()) => self.record.heatmap = Some(path.display().to_string()),
            Err(e) => {
                self.record.error = Some(format!(
                    "result computed, but the heatmap could not be written to {}: {e:#}",
                    path.display()
                ))
            }
        }
    }
}

/// Analyse one input. Never fails: what went wrong is the record's `error`.
pub fn analyse(subject: Subject, how: &How, clf: &Classifier) -> Analysis {
    let start = Instant::now();
    let (path, mut sha) = match &subject {
        Subject::Input(i) => (i.display.clone(), None),
        Subject::Bytes(_) => ("upload".to_string(), None),
        Subject::Photo { .. } => ("camera".to_string(), None),
    };
    let mut record = Record::new(&path, clf.id());
    let outcome = work(subject, how, clf, &mut record, &mut sha);
    let (film, heatmap) = match outcome {
        Ok(v) => v,
        Err(e) => {
            record.error = Some(format!("{e:#}"));
            (None, None)
        }
    };
    record.elapsed_ms = (start.elapsed().as_secs_f64() * 1e4).round() / 10.0;
    Analysis {
        record,
        input_sha256: sha,
        film,
        heatmap,
    }
}

type Pictures = (Option<Frame>, Option<RgbImage>);

fn work(
    subject: Subject,
    how: &How,
    clf: &Classifier,
    rec: &mut Record,
    sha: &mut Option<String>,
) -> Result<Pictures> {
    let film = match subject {
        Subject::Photo { frame, corners } => {
            *sha = Some(frame_sha(&frame));
            rec.input = Some(InputKind::FilmPhoto);
            match corners {
                Some(c) => photo_outcome(check_photo_at(&frame, c), rec)?,
                None => photo_outcome(check_photo(&frame), rec)?,
            }
        }
        Subject::Input(input) => {
            let owned;
            let bytes: &[u8] = match &input.source {
                InputSource::Problem(why) => anyhow::bail!("{why}"),
                InputSource::File(p) => {
                    owned = read_limited(p, how.limits.max_file_bytes)?;
                    &owned
                }
                InputSource::Sample(s) => s.bytes,
            };
            *sha = Some(sha256_hex(bytes));
            film_of_bytes(bytes, how, rec)?
        }
        Subject::Bytes(bytes) => {
            *sha = Some(sha256_hex(bytes));
            film_of_bytes(bytes, how, rec)?
        }
    };
    classify_film(film, clf, how.heatmap, rec)
}

fn film_of_bytes(bytes: &[u8], how: &How, rec: &mut Record) -> Result<Frame> {
    let frame = decode_image(bytes, &how.limits)?;
    prepare_film(frame, how.mode.for_file(bytes), rec)
}

/// The film in `frame`, ready for the model: the image itself when it is a digital film, or
/// the film found, straightened and checked when it is a photo. Records what was done and
/// the quality warnings; a photo that fails a blocking gate (no film, cut off, too small) is
/// an error with the reason for a person, and no result.
fn prepare_film(frame: Frame, mode: InputMode, rec: &mut Record) -> Result<Frame> {
    let photo = match mode {
        InputMode::Digital => false,
        InputMode::FilmPhoto => true,
        InputMode::Auto => !auto_is_bare_film(&frame),
    };
    if !photo {
        rec.input = Some(InputKind::Digital);
        rec.quality = film::assess(&frame);
        return Ok(frame);
    }
    rec.input = Some(InputKind::FilmPhoto);
    photo_outcome(check_photo(&frame), rec)
}

fn photo_outcome(checked: Result<PhotoReport, Blocked>, rec: &mut Record) -> Result<Frame> {
    match checked {
        Ok(report) => {
            rec.film_corners = Some(report.corners.map(|[x, y]| [round1(x), round1(y)]));
            rec.quality = report.warnings;
            Ok(report.film)
        }
        Err(blocked) => {
            let msg = blocked.reason.message.clone();
            rec.quality = vec![blocked.reason];
            anyhow::bail!("{msg}")
        }
    }
}

fn round1(v: f32) -> f32 {
    (v * 10.0).round() / 10.0
}

fn round6(p: f32) -> serde_json::Value {
    serde_json::json!(((p as f64) * 1e6).round() / 1e6)
}

/// Classify a film that is ready for the model and fill `rec`; hands the film back with its
/// heatmap when `picture` is set.
fn classify_film(
    film: Frame,
    clf: &Classifier,
    picture: bool,
    rec: &mut Record,
) -> Result<Pictures> {
    let pred = clf.classify(&film).context("inference failed")?;
    // A result is only given for numbers: NaN or infinite outputs are indeterminate, never a
    // finding (no path should produce them once the decoders refuse non-finite pixels).
    anyhow::ensure!(
        pred.probs.iter().chain(&pred.logits).all(|p| p.is_finite()),
        "the model's output is not a number for this image; no result is given"
    );
    let m = &clf.manifest;
    let label = pred.label(m).to_string();
    rec.probs = Some(
        m.labels
            .iter()
            .cloned()
            .zip(pred.probs.iter().map(|&p| round6(p)))
            .collect(),
    );
    rec.logits = Some(
        m.labels
            .iter()
            .cloned()
            .zip(pred.logits.iter().map(|&z| round6(z)))
            .collect(),
    );
    // The one place "not a chest X-ray" is decided; everything downstream reads this warning.
    if not_chest(&label, &pred.decision) {
        rec.quality.push(Warning::new(
            Code::NotChestXray,
            "This does not look like a frontal chest X-ray; no result about the lungs is given.",
        ));
    }
    rec.result = Some(result_words(&label, &pred.decision));
    rec.label = Some(label);
    rec.decision = Some(pred.decision.clone());
    let heatmap = picture.then(|| {
        let caption = format!(
            "map: {}",
            map_words(&m.labels[pred.top], (100.0 * pred.probs[pred.top]).into())
        );
        heatmap_image(&film, &pred.cam, pred.top, &caption)
    });
    Ok((Some(film), heatmap))
}

/// A camera frame has no file; it is named by the hash of its size and 8-bit pixels.
fn frame_sha(f: &Frame) -> String {
    let mut bytes = Vec::with_capacity(8 + f.data.len());
    bytes.extend_from_slice(&(f.width as u32).to_le_bytes());
    bytes.extend_from_slice(&(f.height as u32).to_le_bytes());
    bytes.extend(f.data.iter().map(|v| v.clamp(0.0, 255.0) as u8));
    sha256_hex(&bytes)
}
