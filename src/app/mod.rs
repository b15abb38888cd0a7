//! `cxr-edge run`: the unattended loop a board runs as a service.
//!
//! Films come from a [`config::SourceSpec`] (a watch folder, or the bundled samples), each is
//! analysed exactly as `classify` does it ([`analyse`]), its record goes to the results log
//! ([`crate::store`]) and the screen shows the result or what went wrong. The loop never ends on
//! a bad file, a missing folder or a model that will not load: it says so on the screen and in
//! the journal and tries again, while telling systemd it is alive ([`notify`]).

pub mod analyse;
pub mod config;
pub mod live;
pub mod notify;
pub mod output;
pub mod steady;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::capture::{self, read_limited, Input, InputSource, Limits};
use crate::model::{manifest::locate_manifest, Classifier};
use crate::store::{rfc3339, ResultsLog, StoredRecord};
use crate::ui::{Problem, ResultView, Screen};
use analyse::{process, BatchOptions, Record};
use config::{Config, SourceSpec};
use notify::Notifier;

/// How long to wait before trying again to load a model that failed.
const MODEL_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Totals {
    pub analysed: usize,
    pub failed: usize,
}

/// Image files in a watch folder: by extension, because a half-copied file has no content to
/// sniff yet. Content is checked when the file is decoded.
fn is_image_name(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name.starts_with('.') {
        return false; // hidden, or a copy in progress (rsync's .name.XXXX)
    }
    capture::has_image_extension(p)
}

/// The watch folder: a file is taken once its size and modification time stayed the same
/// for one whole poll interval (so a film still being copied in is not read half-written).
struct Inbox {
    dir: PathBuf,
    last_seen: HashMap<PathBuf, (u64, SystemTime)>,
    /// Files we could not move away; never analysed twice.
    stuck: HashSet<PathBuf>,
}

impl Inbox {
    fn new(dir: PathBuf) -> Inbox {
        Inbox {
            dir,
            last_seen: HashMap::new(),
            stuck: HashSet::new(),
        }
    }

    /// Files ready to analyse, oldest name first. `settle = false` takes everything at once.
    fn ready(&mut self, settle: bool) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create the inbox {}", self.dir.display()))?;
        let mut now_seen = HashMap::new();
        let mut ready = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot read the inbox {}", self.dir.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() || !is_image_name(&p) || self.stuck.contains(&p) {
                continue;
            }
            let sig = (
                meta.len(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            );
            if !settle || self.last_seen.get(&p) == Some(&sig) {
                ready.push(p.clone());
            }
            now_seen.insert(p, sig);
        }
        self.last_seen = now_seen;
        ready.sort();
        Ok(ready)
    }
}

struct Kiosk<'a> {
    cfg: &'a Config,
    out: std::cell::RefCell<output::ScreenOut>,
    log: ResultsLog,
    notifier: Notifier,
    totals: Totals,
}

impl Kiosk<'_> {
    fn show(&self, screen: &Screen) {
        self.out.borrow_mut().show(screen);
    }

    fn show_problem(&self, problem: Problem, detail: &str) {
        self.notifier
            .status(&format!("{}: {detail}", problem.title()));
        self.show(&Screen::Error { problem, detail });
    }

    /// Analyse one film, record it and show it. Returns the record.
    fn analyse(&mut self, clf: &Classifier, input: &Input, source: &'static str) -> Record {
        let sha = match &input.source {
            InputSource::File(p) => read_limited(p, Limits::default().max_file_bytes)
                .ok()
                .map(|b| hex(&Sha256::digest(&b))),
            InputSource::Sample(s) => Some(hex(&Sha256::digest(s.bytes))),
            InputSource::Problem(_) => None,
        };
        let name = self.log.next_name(SystemTime::now(), sha.as_deref());
        let image_path = self
            .cfg
            .storage
            .keep_images
            .then(|| self.log.dir().join(format!("{name}.png")));
        let opts = BatchOptions {
            input: self.cfg.input,
            limits: Limits::default(),
            heatmap_dir: None,
            jobs: 1,
        };
        let mut rec = process(input, clf, &opts, image_path.as_deref());
        // The record names its input by hash only; the heatmap path is relative to the log.
        rec.path = format!("{source}:{name}");
        let image = rec.heatmap.take().map(|_| format!("{name}.png"));
        let stored = StoredRecord {
            time: rfc3339(SystemTime::now()),
            source,
            input_sha256: sha,
            image: image.clone(),
            record: &rec,
        };
        match self.log.write(&name, &stored) {
            Ok(p) => println!("{} {}", summary_line(&rec), p.display()),
            Err(e) => {
                eprintln!("cxr-edge run: {e:#}");
                rec.error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
        if rec.error.is_some() {
            self.totals.failed += 1;
            self.show_problem(Problem::BadImage, rec.error.as_deref().unwrap_or_default());
        } else {
            self.totals.analysed += 1;
            let picture = image.map(|n| self.log.dir().join(n)).and_then(|p| {
                image::open(&p)
                    .inspect_err(|e| eprintln!("cxr-edge run: cannot show {}: {e}", p.display()))
                    .ok()
                    .map(|i| i.to_rgb8())
            });
            self.show(&Screen::Result(ResultView {
                record: &rec,
                picture: picture.as_ref(),
            }));
        }
        rec
    }

    /// Move an analysed inbox file to done/ (renamed after its record, which drops a file name
    /// that may identify the patient) or to failed/ with the reason beside it.
    fn file_away(&self, inbox: &mut Inbox, path: &Path, rec: &Record) {
        let sub = if rec.error.is_some() {
            "failed"
        } else {
            "done"
        };
        let to_dir = inbox.dir.join(sub);
        let stem = rec.path.split_once(':').map_or("film", |(_, n)| n);
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let to = to_dir.join(format!("{stem}.{}", ext.as_deref().unwrap_or("img")));
        let res = std::fs::create_dir_all(&to_dir)
            .and_then(|_| std::fs::rename(path, &to))
            .and_then(|_| match &rec.error {
                Some(e) => std::fs::write(to.with_extension("error.txt"), format!("{e}\n")),
                None => Ok(()),
            });
        if let Err(e) = res {
            eprintln!(
                "cxr-edge run: analysed {}, but cannot move it to {}: {e}; it stays and is not analysed again until restart",
                path.display(),
                to_dir.display()
            );
            inbox.stuck.insert(path.to_path_buf());
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn summary_line(rec: &Record) -> String {
    match (&rec.result, &rec.error) {
        (_, Some(e)) => format!("{}  failed: {e}", rec.path),
        (Some(r), None) => format!("{}  {r}  ({})", rec.path, crate::NOTICE),
        (None, None) => rec.path.clone(),
    }
}

/// Load the model, retrying (with the reason on screen) until it works. `None` only in `once`
/// mode, where the caller reports the failure.
fn load_model(k: &Kiosk, once: bool) -> Result<Classifier> {
    loop {
        let res = locate_manifest(k.cfg.model.manifest.as_deref())
            .and_then(|m| Classifier::load(&m, k.cfg.model.variant.as_deref()));
        match res {
            Ok(c) => return Ok(c),
            Err(e) if once => return Err(e),
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("cxr-edge run: model failed to load: {msg}; retrying in {MODEL_RETRY:?}");
                k.show_problem(Problem::ModelFailed, &msg);
                sleep_alive(&k.notifier, MODEL_RETRY);
            }
        }
    }
}

/// Sleep, but keep feeding the systemd watchdog.
fn sleep_alive(n: &Notifier, total: Duration) {
    let step = n
        .watchdog_interval()
        .unwrap_or(total)
        .min(total)
        .max(Duration::from_millis(10));
    let end = Instant::now() + total;
    loop {
        n.watchdog();
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(step));
    }
}

/// How `run` is driven besides its config.
#[derive(Default)]
pub struct RunOptions {
    /// Watch folder and samples: analyse what is there now, then return.
    pub once: bool,
    /// Camera and frames: press these buttons (one frame before each), then return.
    pub script: Option<Vec<live::Step>>,
}

/// The frame source for a camera or frames spec.
fn open_frames(cfg: &Config) -> Result<Box<dyn capture::FrameSource>> {
    Ok(match &cfg.source {
        SourceSpec::Camera(dev) => capture::open_camera(
            dev,
            capture::camera::CameraOptions {
                width: cfg.camera_size.0,
                height: cfg.camera_size.1,
                ..Default::default()
            },
        )?,
        SourceSpec::Frames(dir) => Box::new(
            capture::FileSource::open(dir, capture::Playback::Loop)
                .map_err(anyhow::Error::msg)
                .context("cannot play frames")?,
        ),
        _ => anyhow::bail!("not a camera source"),
    })
}

/// GPIO buttons from the config, plus the keyboard unless switched off. A button line that
/// cannot be opened is reported and the kiosk runs on without it (it still has auto-capture).
fn open_buttons(cfg: &Config, script: bool) -> Vec<Box<dyn crate::input::Buttons>> {
    let mut all: Vec<Box<dyn crate::input::Buttons>> = Vec::new();
    if !cfg.buttons.lines.trim().is_empty() {
        #[cfg(feature = "gpio-buttons")]
        match crate::input::parse_button_lines(&cfg.buttons.lines).and_then(|lines| {
            crate::input::gpio::GpioButtons::open(&cfg.buttons.chip, &lines, cfg.buttons.active_low)
        }) {
            Ok(b) => all.push(Box::new(b)),
            Err(e) => eprintln!("cxr-edge run: buttons not available: {e:#}"),
        }
        #[cfg(not(feature = "gpio-buttons"))]
        eprintln!("cxr-edge run: [buttons] lines are set, but this build has no GPIO support");
    }
    if cfg.buttons.keyboard && !script {
        all.push(Box::new(crate::input::keyboard::Keyboard::stdin()));
    }
    all
}

struct AllButtons(Vec<Box<dyn crate::input::Buttons>>);

impl crate::input::Buttons for AllButtons {
    fn poll(&mut self) -> Vec<crate::input::Button> {
        self.0.iter_mut().flat_map(|b| b.poll()).collect()
    }
}

/// Run the kiosk until stopped (or per `opts`).
pub fn run(cfg: &Config, opts: &RunOptions) -> Result<Totals> {
    let once = opts.once;
    let log = ResultsLog::open(&cfg.storage.dir)?;
    let out = output::ScreenOut::new(cfg.display.clone(), cfg.screen_size)
        .numbered(opts.script.is_some());
    let mut k = Kiosk {
        cfg,
        out: std::cell::RefCell::new(out),
        log,
        notifier: Notifier::from_env(),
        totals: Totals::default(),
    };
    // Ready before the model: a model that will not load is shown on the screen and retried,
    // which is "running" to systemd, not a start-up that never finishes.
    k.notifier.ready("loading the model");
    let clf = load_model(&k, once)?;
    let id = clf.id();
    k.notifier.status(&format!(
        "model {} {} ({}) loaded",
        id.name, id.version, id.variant
    ));
    eprintln!(
        "cxr-edge run: model {} {} ({}), results in {}. {}",
        id.name,
        id.version,
        id.variant,
        cfg.storage.dir.display(),
        crate::NOTICE
    );
    let poll = Duration::from_millis(cfg.poll_ms);
    match &cfg.source {
        SourceSpec::Camera(_) | SourceSpec::Frames(_) => {
            let mut source = open_frames(cfg)?;
            let mut buttons = AllButtons(open_buttons(cfg, opts.script.is_some()));
            k.notifier.status(&format!("watching {}", source.name()));
            let mut out = k.out.borrow_mut();
            let totals = std::thread::scope(|scope| {
                let mut kiosk = live::LiveKiosk::new(
                    &clf,
                    &k.log,
                    &mut out,
                    cfg.storage.keep_images,
                    cfg.auto_capture,
                    cfg.steady_frames,
                );
                // A script must give the same screens every time, so it analyses in step.
                if opts.script.is_none() {
                    kiosk = kiosk.with_worker(live::Worker::spawn(scope, &clf));
                }
                kiosk.show_current();
                live::run_live(
                    &mut kiosk,
                    source.as_mut(),
                    &mut buttons,
                    opts.script.as_deref(),
                    &k.notifier,
                );
                kiosk.totals
            });
            drop(out);
            k.totals = totals;
        }
        SourceSpec::Samples => {
            let samples = capture::sample_inputs();
            for s in &samples {
                k.notifier.watchdog();
                k.analyse(&clf, s, "samples");
            }
            if !once {
                k.notifier.status("all sample films analysed; idle");
                loop {
                    sleep_alive(&k.notifier, Duration::from_secs(3600));
                }
            }
        }
        SourceSpec::Inbox(dir) => {
            let mut inbox = Inbox::new(dir.clone());
            let mut waiting_shown = false;
            loop {
                k.notifier.watchdog();
                match inbox.ready(!once) {
                    Ok(files) => {
                        if files.is_empty() && !waiting_shown {
                            let hint = format!("Copy chest X-ray images into {}", dir.display());
                            k.notifier.status("waiting for films");
                            k.show(&Screen::Waiting { hint: &hint });
                            waiting_shown = true;
                        }
                        for f in files {
                            k.notifier.watchdog();
                            let input = Input {
                                display: f.display().to_string(),
                                source: InputSource::File(f.clone()),
                            };
                            let rec = k.analyse(&clf, &input, "inbox");
                            k.file_away(&mut inbox, &f, &rec);
                            waiting_shown = false;
                        }
                    }
                    Err(e) => {
                        let msg = format!("{e:#}");
                        eprintln!("cxr-edge run: {msg}");
                        if once {
                            return Err(e);
                        }
                        k.show(&Screen::Waiting {
                            hint: &format!("The inbox is not available: {msg}. Retrying."),
                        });
                        waiting_shown = false;
                    }
                }
                if once {
                    break;
                }
                sleep_alive(&k.notifier, poll);
            }
        }
    }
    k.notifier.stopping();
    Ok(k.totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_takes_a_file_only_once_it_stopped_changing() {
        let d = tempfile::tempdir().unwrap();
        let mut inbox = Inbox::new(d.path().join("inbox"));
        assert!(inbox.ready(true).unwrap().is_empty(), "creates the folder");
        let f = inbox.dir.join("a.png");
        std::fs::write(&f, b"half").unwrap();
        std::fs::write(inbox.dir.join(".b.png.partial"), b"x").unwrap();
        std::fs::write(inbox.dir.join("notes.txt"), b"x").unwrap();
        assert!(inbox.ready(true).unwrap().is_empty(), "first sighting");
        std::fs::write(&f, b"half and the rest").unwrap();
        assert!(inbox.ready(true).unwrap().is_empty(), "still growing");
        assert_eq!(
            inbox.ready(true).unwrap(),
            vec![f.clone()],
            "unchanged for a poll"
        );
        inbox.stuck.insert(f.clone());
        assert!(inbox.ready(true).unwrap().is_empty(), "never twice");
        inbox.stuck.clear();
        assert_eq!(
            inbox.ready(false).unwrap(),
            vec![f],
            "--once takes it at once"
        );
    }
}
