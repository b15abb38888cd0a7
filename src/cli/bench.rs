//! `cxr-edge bench`: how long each stage of the device takes on this machine, for each shipped
//! model variant and thread count, as medians with their spread (10th-90th percentile) over
//! repeated runs. Timings never live in tests; this is where they are measured.
//!
//! Stages follow the data path: decode a JPEG film, find the film in a simulated 1280x720
//! camera frame and rectify it, preprocess, infer, draw the heatmap, render the 800x480 result
//! screen; then the whole digital path end to end. Model load (start-up) is timed separately,
//! and the camera preview's frame rate is measured while an analysis runs beside it.
//!
//! Threads: tract-onnx 0.23 runs one inference on one thread (its multi-threaded matrix
//! products sit behind tract-linalg's `multithread-mm` feature, which tract-onnx does not
//! forward). `--threads N` with N > 1 therefore runs N films at once, one per thread, and
//! reports the wall time per film: the throughput of `classify -j N`, not the latency of one.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use super::{BenchArgs, EXIT_OK};
use crate::capture::{decode_image, samples, Limits};
use crate::config::DisplaySpec;
use crate::explain::heatmap_image;
use crate::film::gates::check_photo;
use crate::film::simulate::{simulate, Placement, SimOptions};
use crate::film::{assess, find_film, rectify};
use crate::model::manifest::{locate_manifest_in, Search};
use crate::model::{label_words, Classifier, Manifest};
use crate::pixels::Frame;
use crate::record::Record;
use crate::ui::{render, PreviewView, ResultView, Screen};

mod choose;
mod preview;

/// The options `cxr-edge bench` adds to `--runs`, `--json` and the model selection.
#[derive(Args, Debug, Clone)]
pub struct BenchMore {
    /// Thread counts to time inference and the end-to-end path with (comma-separated). N > 1
    /// runs N films at once, one thread each, and reports ms per film (tract-onnx 0.23 runs one
    /// inference on one thread).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2",
        value_name = "N,.."
    )]
    pub threads: Vec<usize>,
    /// Analyses to run beside the 640x480 camera preview when measuring its frame rate
    /// (0 skips that measurement).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub preview_analyses: usize,
    /// Show the preview on this display instead of only drawing it (`drm`,
    /// `drm:/dev/dri/card0?mode=800x480`, `window`, `fb:/dev/fb0`, ...): the preview rows then
    /// measure that screen, and a row "preview shown on the display" gives its frame rate alone.
    #[arg(long, value_name = "DISPLAY")]
    pub display: Option<String>,
    /// Only the stages whose name contains this text (e.g. `inference`, `load`).
    #[arg(long, value_name = "TEXT")]
    pub only: Option<String>,
    /// Choose the model variant for this machine: time every variant of the manifest, keep
    /// those that give the reference's (f32) top label on every bundled film, print the fastest.
    #[arg(long)]
    pub choose: bool,
    /// With --choose: write the chosen variant as `variant` in the `[model]` table of this
    /// config file (every other line is kept).
    #[arg(long, value_name = "FILE", requires = "choose")]
    pub write_config: Option<std::path::PathBuf>,
}

#[derive(Serialize, Clone)]
pub(crate) struct Stage {
    pub variant: String,
    pub stage: &'static str,
    pub threads: usize,
    pub runs: usize,
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    /// Frames per second, for the preview row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
}

pub(crate) fn time_runs(runs: usize, mut f: impl FnMut()) -> Vec<f64> {
    f(); // warm-up: caches, lazy initialisation
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

/// `threads` copies of `f` at once, one per thread; milliseconds of wall time per copy.
fn time_parallel(runs: usize, threads: usize, f: impl Fn() + Sync) -> Vec<f64> {
    if threads <= 1 {
        return time_runs(runs, &f);
    }
    time_runs(runs, || {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(&f);
            }
        })
    })
    .into_iter()
    .map(|ms| ms / threads as f64)
    .collect()
}

pub(crate) fn stage(variant: &str, name: &'static str, threads: usize, mut ms: Vec<f64>) -> Stage {
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    Stage {
        variant: variant.to_string(),
        stage: name,
        threads,
        runs: ms.len(),
        median_ms: q(0.5),
        p10_ms: q(0.1),
        p90_ms: q(0.9),
        fps: None,
    }
}

/// The bundled film the bench uses (a JPEG, so decoding is timed on the common case).
fn bench_sample() -> Result<&'static samples::Sample> {
    samples::all()
        .iter()
        .find(|s| s.name.ends_with(".jpg"))
        .or_else(|| samples::all().first())
        .context("this build has no bundled sample film to benchmark with")
}

/// A camera frame of `film` on a light box: the first seed (fixed order, so the same frame on
/// every machine) whose frame the finder accepts. Accuracy is measured elsewhere
/// (examples/finder_eval.rs); this only needs a frame that goes through every stage.
pub(crate) fn photo_of(film: &Frame, width: usize, height: usize) -> Result<Frame> {
    (1..=64u64)
        .find_map(|seed| {
            let sim = simulate(
                film,
                &SimOptions::new(width, height, 0.2, Placement::Inside, seed),
            );
            find_film(&sim.frame).ok()?;
            check_photo(&sim.frame).ok()?;
            Some(sim.frame)
        })
        .with_context(|| format!("the finder found the film in none of 64 {width}x{height} frames"))
}

/// The rows of one bench run, and which stages are wanted (`--only`).
struct Rows<'a> {
    runs: usize,
    only: Option<&'a str>,
    rows: Vec<Stage>,
}

impl Rows<'_> {
    fn wanted(&self, name: &str) -> bool {
        self.only.is_none_or(|o| name.contains(o))
    }

    /// Time `f` (once per run) as the stage `name`, if it is wanted.
    fn time(&mut self, variant: &str, name: &'static str, f: impl FnMut()) {
        if self.wanted(name) {
            let ms = time_runs(self.runs, f);
            self.rows.push(stage(variant, name, 1, ms));
        }
    }

    /// Time `threads` copies of `f` at once as the stage `name`, if it is wanted.
    fn time_threads(
        &mut self,
        variant: &str,
        name: &'static str,
        threads: usize,
        f: impl Fn() + Sync,
    ) {
        if self.wanted(name) {
            let ms = time_parallel(self.runs, threads, f);
            self.rows.push(stage(variant, name, threads, ms));
        }
    }
}

/// What every stage works on: the sample film, and camera frames of it.
struct Inputs {
    sample: &'static samples::Sample,
    limits: Limits,
    film: Frame,
    /// A 1280x720 camera frame of the film, and where the film is in it.
    frame: Frame,
    corners: crate::film::Quad,
    /// A 640x480 camera frame of the film.
    small: Frame,
}

impl Inputs {
    fn new() -> Result<Inputs> {
        let sample = bench_sample()?;
        let limits = Limits::default();
        let film = decode_image(sample.bytes, &limits)?;
        let frame = photo_of(&film, 1280, 720)?;
        let corners = find_film(&frame)?.corners;
        let small = photo_of(&film, 640, 480)?;
        Ok(Inputs {
            sample,
            limits,
            film,
            frame,
            corners,
            small,
        })
    }
}

/// The stages that do not depend on the model.
fn film_stages(r: &mut Rows, i: &Inputs) {
    let (rw, rh) = (i.film.width.min(512), i.film.height.min(512));
    r.time("-", "decode JPEG", || {
        decode_image(i.sample.bytes, &i.limits).unwrap();
    });
    r.time("-", "find film (1280x720)", || {
        find_film(&i.frame).unwrap();
    });
    r.time("-", "find film (640x480)", || {
        find_film(&i.small).unwrap();
    });
    r.time("-", "rectify", || {
        rectify(&i.frame, &i.corners, rw, rh).unwrap();
    });
    r.time("-", "quality checks", || {
        assess(&i.film);
    });
    let preview_pic = image::RgbImage::from_pixel(480, 360, image::Rgb([90, 90, 90]));
    r.time("-", "render preview screen 800x480", || {
        render(
            &Screen::Preview(PreviewView {
                picture: &preview_pic,
                outline: None,
                hint: "Hold still.",
                steady: true,
                case: None,
            }),
            800,
            480,
        );
    });
}

/// A record with `pred`'s result, for timing the result screen.
fn bench_record(clf: &Classifier, pred: &crate::model::Prediction) -> Record {
    let mut rec = Record::new("bench", clf.id());
    rec.result = Some(label_words(pred.label(&clf.manifest)).to_string());
    rec.label = Some(pred.label(&clf.manifest).to_string());
    rec.decision = Some(pred.decision.clone());
    rec.probs = Some(
        clf.manifest
            .labels
            .iter()
            .cloned()
            .zip(pred.probs.iter().map(|&p| serde_json::json!(p)))
            .collect(),
    );
    rec
}

/// The stages of one model variant: load, preprocess, inference per thread count, the camera
/// path to the model's input, heatmap, result screen, the whole digital path, and the preview
/// rate during analyses.
fn model_stages(
    r: &mut Rows,
    i: &Inputs,
    manifest_path: &std::path::Path,
    v: &str,
    threads: &[usize],
    preview_analyses: usize,
    display: Option<&DisplaySpec>,
) -> Result<()> {
    // Loading takes seconds: three runs say enough.
    if r.wanted("model load + optimise") {
        let ms = time_runs(3.min(r.runs), || {
            Classifier::load(manifest_path, Some(v)).unwrap();
        });
        r.rows.push(stage(v, "model load + optimise", 1, ms));
    }
    let clf = Classifier::load(manifest_path, Some(v))?;
    let tensor = clf.preprocess(&i.film);
    r.time(v, "preprocess", || {
        clf.preprocess(&i.film);
    });
    for &n in threads {
        r.time_threads(v, "inference", n, || {
            clf.run_tensor(&tensor).unwrap();
        });
    }
    // The camera path up to the model's input, as one figure: what a frame costs before
    // inference (issue aim: <= 15 ms at 1280x720 on the development machine).
    r.time(v, "photo to model input (1280x720)", || {
        let report = check_photo(&i.frame).unwrap();
        clf.preprocess(&report.film);
    });
    let pred = clf.run_tensor(&tensor)?;
    r.time(v, "heatmap", || {
        heatmap_image(&i.film, &pred.cam, pred.top, "map");
    });
    let rec = bench_record(&clf, &pred);
    let screen = |pic: &image::RgbImage| {
        render(
            &Screen::Result(ResultView {
                record: &rec,
                picture: Some(pic),
            }),
            800,
            480,
        )
    };
    let pic = heatmap_image(&i.film, &pred.cam, pred.top, "map");
    r.time(v, "render result screen 800x480", || {
        screen(&pic);
    });
    for &n in threads {
        r.time_threads(v, "end to end: JPEG to screen", n, || {
            let f = decode_image(i.sample.bytes, &i.limits).unwrap();
            assess(&f);
            let p = clf.classify(&f).unwrap();
            screen(&heatmap_image(&f, &p.cam, p.top, "map"));
        });
    }
    if preview_analyses > 0 && r.wanted("preview 640x480 during analysis") {
        r.rows.push(preview::during_analysis(
            &clf,
            &i.small,
            preview_analyses,
            display,
        )?);
    }
    Ok(())
}

/// The table (or JSON lines) on stdout.
fn print(rows: &[Stage], args: &BenchArgs, runs: usize, sample: &str) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        for r in rows {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "cxr-edge bench: {} runs per stage, sample {}, {} ({})",
        runs,
        sample,
        std::env::consts::ARCH,
        crate::NOTICE
    )?;
    writeln!(
        out,
        "THREADS N > 1: N films at once, one thread each, ms per film (tract runs one \
         inference on one thread)"
    )?;
    // The model column as wide as the longest variant name (`int8-qlinear`), at least 8.
    let w = rows
        .iter()
        .map(|r| r.variant.len())
        .max()
        .unwrap_or(0)
        .max(8);
    writeln!(
        out,
        "{:<w$} {:<34} {:>7} {:>10} {:>19}",
        "MODEL", "STAGE", "THREADS", "MEDIAN ms", "p10-p90 ms"
    )?;
    for r in rows {
        write!(
            out,
            "{:<w$} {:<34} {:>7} {:>10.2} {:>9.2}-{:<9.2}",
            r.variant, r.stage, r.threads, r.median_ms, r.p10_ms, r.p90_ms
        )?;
        match r.fps {
            Some(fps) => writeln!(out, " {fps:.1} frames/s")?,
            None => writeln!(out)?,
        }
    }
    Ok(())
}

/// `cxr-edge bench`: every stage, for every variant (or the chosen one) and thread count.
pub fn run(args: BenchArgs) -> Result<i32> {
    // A command that writes into a config file takes only an installed (or named) model.
    let search = if args.more.write_config.is_some() {
        Search::Installed
    } else {
        Search::Anywhere
    };
    let manifest_path = locate_manifest_in(args.model.model.as_deref(), search)?;
    if args.more.choose {
        return choose::run(&manifest_path, &args);
    }
    let manifest = Manifest::load(&manifest_path)?;
    let variants: Vec<String> = match &args.model.variant {
        Some(v) => vec![v.clone()],
        None => manifest.variants.keys().cloned().collect(),
    };
    let mut threads = args.more.threads.clone();
    threads.retain(|&n| n >= 1);
    threads.dedup();
    if threads.is_empty() {
        threads.push(1);
    }
    let inputs = Inputs::new()?;
    let mut rows = Rows {
        runs: args.runs.max(3),
        only: args.more.only.as_deref(),
        rows: Vec::new(),
    };
    let display = args
        .more
        .display
        .as_deref()
        .map(DisplaySpec::parse)
        .transpose()?;
    film_stages(&mut rows, &inputs);
    if let Some(spec) = &display {
        if rows.wanted("preview shown on the display") {
            let name = args.more.display.as_deref().unwrap_or_default();
            rows.rows.push(preview::on_display(spec, name, 10.0)?);
        }
    }
    for v in &variants {
        model_stages(
            &mut rows,
            &inputs,
            &manifest_path,
            v,
            &threads,
            args.more.preview_analyses,
            display.as_ref(),
        )?;
    }
    print(&rows.rows, &args, rows.runs, inputs.sample.name)?;
    Ok(EXIT_OK)
}
