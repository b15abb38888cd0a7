//! Analysing one input: decode, quality checks, the model, the decision in words and
//! (optionally) the heatmap picture. `classify` and the kiosk loop both use this, so a film gets
//! the same record whichever way it came in.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::capture::{decode_image, is_grey_file, read_limited, Frame, Input, InputSource, Limits};
use crate::explain::heatmap_image;
use crate::film::gates::{auto_is_bare_film, check_photo, check_photo_at, Blocked, PhotoReport};
use crate::film::{self, Quad, Warning};
use crate::model::{label_words, not_chest, result_words, Classifier, Decision, ModelId};

/// What an input image is: a bare digital film (the whole image is the film), or a camera
/// photo of a film on a light box, which must be found, straightened and checked first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputMode {
    #[default]
    Digital,
    FilmPhoto,
    /// Decide per image: grey files are digital (exports); for colour files the picture
    /// decides (`film::gates::auto_is_bare_film`).
    Auto,
}

/// The JSON record of one input (also the row of the table).
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub path: String,
    /// How the image was taken: `digital` or `film-photo` (`null` if it could not be read).
    pub input: Option<&'static str>,
    /// Where the film was found in a photo: TL, TR, BR, BL corners in image pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub film_corners: Option<Quad>,
    /// A manifest label, or `null` when the input failed.
    pub label: Option<String>,
    /// The label in words (`other` reads "not a chest X-ray").
    pub result: Option<String>,
    /// Calibrated probability per label, in manifest order.
    pub probs: Option<serde_json::Map<String, serde_json::Value>>,
    pub decision: Option<Decision>,
    pub quality: Vec<Warning>,
    pub model: ModelId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heatmap: Option<String>,
    pub error: Option<String>,
    pub notice: &'static str,
    pub elapsed_ms: f64,
}

impl Record {
    /// An empty record for `path`: no result yet, the notice already on it.
    pub fn new(path: &str, model: ModelId) -> Record {
        Record {
            path: path.to_string(),
            input: None,
            film_corners: None,
            label: None,
            result: None,
            probs: None,
            decision: None,
            quality: Vec::new(),
            model,
            heatmap: None,
            error: None,
            notice: crate::NOTICE,
            elapsed_ms: 0.0,
        }
    }
}

impl Record {
    /// A record for `path` filled in by `work`, with its time; an error from `work` becomes the
    /// record's `error`. Every way an image is analysed (files, camera frames) goes through here.
    pub fn timed<T>(
        path: &str,
        model: ModelId,
        work: impl FnOnce(&mut Record) -> Result<T>,
    ) -> (Record, Option<T>) {
        let start = Instant::now();
        let mut rec = Record::new(path, model);
        let out = match work(&mut rec) {
            Ok(v) => Some(v),
            Err(e) => {
                rec.error = Some(format!("{e:#}"));
                None
            }
        };
        rec.elapsed_ms = (start.elapsed().as_secs_f64() * 1e4).round() / 10.0;
        (rec, out)
    }
}

pub struct BatchOptions {
    pub input: InputMode,
    pub limits: Limits,
    pub heatmap_dir: Option<PathBuf>,
    pub jobs: usize,
}

fn round4(p: f32) -> serde_json::Value {
    serde_json::json!(((p as f64) * 1e6).round() / 1e6)
}

pub fn process(
    input: &Input,
    clf: &Classifier,
    opts: &BatchOptions,
    heatmap_path: Option<&Path>,
) -> Record {
    Record::timed(&input.display, clf.id(), |rec| {
        analyse(input, clf, opts, heatmap_path, rec)
    })
    .0
}

fn analyse(
    input: &Input,
    clf: &Classifier,
    opts: &BatchOptions,
    heatmap_path: Option<&Path>,
    rec: &mut Record,
) -> Result<()> {
    let owned;
    let bytes: &[u8] = match &input.source {
        InputSource::Problem(why) => anyhow::bail!("{why}"),
        InputSource::File(p) => {
            owned = read_limited(p, opts.limits.max_file_bytes)?;
            &owned
        }
        InputSource::Sample(s) => s.bytes,
    };
    let frame = decode_image(bytes, &opts.limits)?;
    analyse_frame(frame, opts.input.for_file(bytes), clf, heatmap_path, rec)
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

/// The film in `frame`, ready for the model: the image itself when it is a digital film, or
/// the film found, straightened and checked when it is a photo. Records what was done and
/// the quality warnings; a photo that fails a blocking gate (no film, cut off, too small) is
/// an error with the reason for a person, and no result.
pub fn prepare_film(frame: Frame, mode: InputMode, rec: &mut Record) -> Result<Frame> {
    let photo = match mode {
        InputMode::Digital => false,
        InputMode::FilmPhoto => true,
        InputMode::Auto => !auto_is_bare_film(&frame),
    };
    if !photo {
        rec.input = Some("digital");
        rec.quality = film::assess(&frame);
        return Ok(frame);
    }
    rec.input = Some("film-photo");
    photo_outcome(check_photo(&frame), rec)
}

/// [`prepare_film`] for a camera photo whose film corners were already found in it.
pub fn prepare_photo_at(frame: &Frame, corners: Quad, rec: &mut Record) -> Result<Frame> {
    rec.input = Some("film-photo");
    photo_outcome(check_photo_at(frame, corners), rec)
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

/// Prepare and classify one image; fills `rec`.
pub fn analyse_frame(
    frame: Frame,
    mode: InputMode,
    clf: &Classifier,
    heatmap_path: Option<&Path>,
    rec: &mut Record,
) -> Result<()> {
    let picture = analyse_frame_picture(frame, mode, clf, heatmap_path.is_some(), rec)?;
    if let (Some(path), Some(img)) = (heatmap_path, picture) {
        write_png_atomically(&img, path).with_context(|| {
            format!(
                "result computed, but the heatmap could not be written to {}",
                path.display()
            )
        })?;
        rec.heatmap = Some(path.display().to_string());
    }
    Ok(())
}

/// [`analyse_frame`], handing back the film with its heatmap (when `picture` is set) instead
/// of writing it, for a screen that shows it at once.
pub fn analyse_frame_picture(
    frame: Frame,
    mode: InputMode,
    clf: &Classifier,
    picture: bool,
    rec: &mut Record,
) -> Result<Option<image::RgbImage>> {
    Ok(analyse_frame_film(frame, mode, clf, picture, rec)?.1)
}

/// [`analyse_frame_picture`], also handing back the film as the model saw it (straightened,
/// when the input was a photo), for the upload page.
pub fn analyse_frame_film(
    frame: Frame,
    mode: InputMode,
    clf: &Classifier,
    picture: bool,
    rec: &mut Record,
) -> Result<(Frame, Option<image::RgbImage>)> {
    let film = prepare_film(frame, mode, rec)?;
    classify_film(film, clf, picture, rec)
}

/// Classify a film that is ready for the model (digital, or straightened from a photo) and
/// fill `rec`; hands the film back with its heatmap when `picture` is set.
pub fn classify_film(
    frame: Frame,
    clf: &Classifier,
    picture: bool,
    rec: &mut Record,
) -> Result<(Frame, Option<image::RgbImage>)> {
    let pred = clf.classify(&frame).context("inference failed")?;
    let m = &clf.manifest;
    let label = pred.label(m).to_string();
    rec.probs = Some(
        m.labels
            .iter()
            .cloned()
            .zip(pred.probs.iter().map(|&p| round4(p)))
            .collect(),
    );
    if not_chest(&label, &pred.decision) {
        rec.quality.push(Warning::new(
            "not_chest_xray",
            "This does not look like a frontal chest X-ray; no result about the lungs is given.",
        ));
    }
    rec.result = Some(result_words(&label, &pred.decision));
    rec.label = Some(label);
    rec.decision = Some(pred.decision.clone());
    let heatmap = picture.then(|| {
        let caption = format!(
            "map: {} {:.0}%",
            label_words(&m.labels[pred.top]),
            100.0 * pred.probs[pred.top]
        );
        heatmap_image(&frame, &pred.cam, pred.top, &caption)
    });
    Ok((frame, heatmap))
}

/// Write to a temporary name in the same directory, then rename: a reader never sees half a PNG.
pub fn write_png_atomically(img: &image::RgbImage, path: &Path) -> Result<()> {
    let tmp = path.with_extension("png.partial");
    img.save_with_format(&tmp, image::ImageFormat::Png)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(())
}
