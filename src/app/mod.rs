//! `cxr-edge run`: the unattended loop a board runs as a service.
//!
//! Films come from a [`SourceSpec`]: a watch folder ([`inbox`]), the bundled samples, or a
//! camera (or frames played as one) with a live preview ([`live`]). Each film is analysed
//! exactly as `classify` does it ([`crate::analysis`]), recorded through the one
//! [`ResultsLog::record`], and shown on the screen with what went wrong, if anything. The loop
//! never ends on a bad file, a missing folder or a model that will not load: it says so on the
//! screen and in the journal and tries again, while telling systemd it is alive ([`notify`]).
//! SIGTERM and Ctrl-C end it cleanly ([`stop`]): the film in hand is finished, and the display
//! is dropped (the screen given back to the console) before the process exits. Beside the
//! loop run the sync thread (`[sync]`, [`crate::sync`]) and the retention rules ([`retention`]).

pub mod inbox;
pub mod live;
pub mod notify;
pub mod retention;
pub mod stop;
mod updates;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::analysis::{analyse, Analysis, How, Subject};
use crate::capture::{self, Input};
use crate::config::locate_model;
use crate::config::{Config, SourceSpec};
use crate::display::Output;
use crate::input::{Button, Buttons};
use crate::model::manifest::Search;
use crate::model::Classifier;
use crate::record::Record;
use crate::store::unit::{Camera, RunningModel, UnitState};
use crate::store::{Origin, ResultsLog};
use crate::ui::{Problem, ResultView, Screen};
use notify::Notifier;

/// How long to wait before trying again to load a model that failed.
const MODEL_RETRY: Duration = Duration::from_secs(30);
/// How often a sleeping loop looks for a stop.
const STOP_POLL: Duration = Duration::from_millis(200);

/// What a run did: films analysed, and films that got no result.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Totals {
    /// Films with a result.
    pub analysed: usize,
    /// Films without one (unreadable, no film in the photo, not recorded).
    pub failed: usize,
}

/// How `run` is driven besides its config.
#[derive(Default)]
pub struct RunOptions {
    /// Watch folder and samples: analyse what is there now, then return.
    pub once: bool,
    /// Camera and frames: press these buttons (one frame before each), then return.
    pub script: Option<Vec<live::Step>>,
}

/// What every source mode shares: the config, the screen, the log and systemd.
struct Kiosk<'a> {
    cfg: &'a Config,
    out: Output,
    log: ResultsLog,
    notifier: Notifier,
    totals: Totals,
    /// The camera and the model, for the sync thread's status message.
    unit: Arc<UnitState>,
}

impl Kiosk<'_> {
    fn show(&mut self, screen: &Screen) {
        self.out.show(screen);
    }

    fn show_problem(&mut self, problem: Problem, detail: &str) {
        self.notifier
            .status(&format!("{}: {detail}", problem.title()));
        self.show(&Screen::Error { problem, detail });
    }

    /// Analyse one file or sample, record it and show it. Returns the record.
    ///
    /// The file may be hostile: the analysis runs on its own thread, a panic there becomes an
    /// error record, and systemd's watchdog is fed while it runs, for at most
    /// [`inbox::ANALYSIS_BUDGET`]; an analysis that takes longer is left to the watchdog.
    fn analyse(&mut self, clf: &Classifier, input: &Input, origin: Origin) -> Record {
        self.analyse_coded(clf, input, origin, Ok(None))
    }

    /// [`Kiosk::analyse`] for a film with the study's case code (already checked), or, for
    /// `Err`, the reason it has none where one is required: then the film is not analysed and
    /// its record says why.
    fn analyse_coded(
        &mut self,
        clf: &Classifier,
        input: &Input,
        origin: Origin,
        case_code: Result<Option<String>, String>,
    ) -> Record {
        let case_code = match case_code {
            Ok(code) => code,
            Err(why) => {
                let a = Analysis::failed(&input.display, clf.id(), &why);
                return self.finish(a, origin);
            }
        };
        let how = How {
            mode: self.cfg.input,
            limits: self.cfg.limits(),
            heatmap: true,
        };
        let notifier = &self.notifier;
        let outcome = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel();
            scope.spawn(move || {
                let a = catch_unwind(AssertUnwindSafe(|| {
                    analyse(Subject::Input(input), &how, clf)
                }));
                let _ = tx.send(a);
            });
            let start = Instant::now();
            let mut over = false;
            loop {
                match rx.recv_timeout(Duration::from_millis(250)) {
                    Ok(a) => return a.ok(),
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return None,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                }
                if start.elapsed() < inbox::ANALYSIS_BUDGET {
                    notifier.watchdog();
                } else if !over {
                    over = true;
                    tracing::warn!(
                        "the analysis of {} has taken over {:?}; no longer telling the watchdog we are alive",
                        input.display,
                        inbox::ANALYSIS_BUDGET
                    );
                }
            }
        });
        let mut a = outcome.unwrap_or_else(|| {
            Analysis::failed(
                &input.display,
                clf.id(),
                "the analysis failed unexpectedly (a bug in cxr-edge); the file was not analysed",
            )
        });
        a.record.case_code = case_code;
        self.finish(a, origin)
    }

    /// Record an analysis, show it and return its record.
    fn finish(&mut self, mut a: Analysis, origin: Origin) -> Record {
        match self
            .log
            .record(&mut a, origin, self.cfg.storage.keep_images)
        {
            Ok(_) => tracing::info!("{}", a.record.summary_line()),
            Err(e) => tracing::error!("{e:#}"),
        }
        let rec = &a.record;
        if let Some(err) = &rec.error {
            self.totals.failed += 1;
            let err = err.clone();
            self.show_problem(Problem::BadImage, &err);
        } else {
            self.totals.analysed += 1;
            self.show(&Screen::Result(ResultView {
                record: rec,
                picture: a.heatmap.as_ref(),
            }));
        }
        a.record
    }
}

/// Load the model, retrying (with the reason on screen) until it works; `None` when a stop was
/// asked for meanwhile. In `once` mode the first failure is returned. A model bundle that does
/// not load (it loaded when it was checked at install: memory, a damaged card) is rolled back
/// at once, so the unit goes back to the model it ran before instead of showing an error.
fn load_model(k: &mut Kiosk, once: bool) -> Result<Option<Classifier>> {
    loop {
        let res = locate_model(
            k.cfg.model.manifest.as_deref(),
            &k.cfg.updates,
            Search::for_this_process(),
        )
        .and_then(|m| {
            let variant = k.cfg.model.variant.as_deref();
            let mut clf = match Classifier::load(&m, variant) {
                Err(e) if from_bundle(k.cfg, &m) => {
                    let why = format!("does not load: {e:#}");
                    tracing::error!("model bundle {}; rolling back", why);
                    k.cfg.updates.store().rollback(&why)?;
                    return Err(e.context("the model bundle was rolled back"));
                }
                r => r?,
            };
            clf.use_profile(&k.cfg.model.profile(None))?;
            Ok(clf)
        });
        match res {
            Ok(c) => return Ok(Some(c)),
            Err(e) if once => return Err(e),
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::error!("model failed to load: {msg}; retrying in {MODEL_RETRY:?}");
                k.show_problem(Problem::ModelFailed, &msg);
                sleep_alive(&k.notifier, MODEL_RETRY);
                if stop::signalled() {
                    return Ok(None);
                }
                stop::take_reload();
            }
        }
    }
}

/// Whether `manifest` is the installed bundle's.
fn from_bundle(cfg: &Config, manifest: &std::path::Path) -> bool {
    manifest.starts_with(cfg.updates.store().root().join("bundles"))
}

/// Sleep, but keep feeding the systemd watchdog; a stop ([`stop::requested`]) ends it early.
fn sleep_alive(n: &Notifier, total: Duration) {
    let beat = n
        .watchdog_interval()
        .unwrap_or(total)
        .max(Duration::from_millis(10));
    let end = Instant::now() + total;
    let mut next_beat = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_beat {
            n.watchdog();
            next_beat = now + beat;
        }
        if now >= end || stop::requested() {
            return;
        }
        let until = end.min(next_beat).saturating_duration_since(now);
        std::thread::sleep(until.min(STOP_POLL));
    }
}

/// The frame source for a camera or frames spec.
fn open_frames(cfg: &Config, source: &SourceSpec) -> Result<Box<dyn capture::FrameSource>> {
    Ok(match source {
        SourceSpec::Camera(dev) => capture::open_camera(
            dev,
            capture::camera::CameraOptions {
                width: cfg.camera_size.0,
                height: cfg.camera_size.1,
                controls: cfg.camera_controls,
                ..Default::default()
            },
        )?,
        SourceSpec::Frames(dir) => Box::new(
            capture::FileSource::open(dir, capture::Playback::Loop)
                .context("cannot play frames")?,
        ),
        _ => anyhow::bail!("not a camera source"),
    })
}

/// GPIO buttons from the config, plus input devices (keyboards, keypads, pedals, touch
/// screens) and the stdin keyboard unless switched off; a script run reads neither, so it
/// gives the same screens every time. A button line that cannot be opened is reported and the
/// kiosk runs on without it (it still has auto-capture).
fn open_buttons(cfg: &Config, script: bool) -> Vec<Box<dyn Buttons>> {
    let mut all: Vec<Box<dyn Buttons>> = Vec::new();
    if !cfg.buttons.lines.trim().is_empty() {
        #[cfg(feature = "gpio-buttons")]
        match crate::input::parse_button_lines(&cfg.buttons.lines).and_then(|lines| {
            crate::input::gpio::GpioButtons::open(
                &lines,
                &cfg.buttons.chip,
                cfg.buttons.controller(),
                cfg.buttons.active_low,
            )
        }) {
            Ok(b) => all.push(Box::new(b)),
            Err(e) => tracing::warn!("buttons not available: {e:#}"),
        }
        #[cfg(not(feature = "gpio-buttons"))]
        tracing::warn!("[buttons] lines are set, but this build has no GPIO support");
    }
    // A desktop window gets the keyboard's keys itself; reading the same keyboard through
    // /dev/input too (the desktop's user is often in group input) would press every button twice.
    if cfg.buttons.evdev && !script && !cfg.display.is_desktop_window() {
        // With case codes on, letter and digit keys type the code (module `input::evdev::keys`).
        let typing = cfg.case.mode != crate::case::Mode::Off;
        all.push(Box::new(crate::input::evdev::Evdev::open(
            cfg.buttons.keys.clone().typing(typing),
        )));
    }
    if cfg.buttons.keyboard && !script {
        all.push(Box::new(crate::input::keyboard::Keyboard::stdin()));
    }
    all
}

/// Every button source as one.
struct AllButtons(Vec<Box<dyn Buttons>>);

impl Buttons for AllButtons {
    fn poll(&mut self) -> Vec<Button> {
        self.0.iter_mut().flat_map(|b| b.poll()).collect()
    }

    fn touch_screen(&self) -> bool {
        self.0.iter().any(|b| b.touch_screen())
    }
}

/// Run the kiosk until stopped (or per `opts`).
pub fn run(cfg: &Config, opts: &RunOptions) -> Result<Totals> {
    stop::install();
    let log = ResultsLog::open(&cfg.storage.dir)?;
    // Resolved once (`auto` looks for a camera): the same source for every model loaded.
    let source = cfg.source.clone().resolve();
    let camera = match source {
        SourceSpec::Camera(_) | SourceSpec::Frames(_) => Camera::Starting,
        _ => Camera::None,
    };
    let unit = UnitState::new(camera);
    // Forwarding runs beside the loop from the start, so records of earlier runs leave even
    // while the model loads; stopped (and given a moment to say goodbye) when `run` returns.
    #[cfg(feature = "sync")]
    let _sync = crate::sync::Background::start(&cfg.sync, &cfg.storage.dir, unit.clone());
    let _retention = retention::Retention::start(cfg);
    let out = Output::new(cfg.display.clone(), cfg.screen_size)
        .numbered(opts.script.is_some())
        // A desktop window's keys type case codes too (see `input::evdev::keys`).
        .keys(
            cfg.buttons
                .keys
                .clone()
                .typing(cfg.case.mode != crate::case::Mode::Off),
        )
        .in_language(cfg.language);
    let mut k = Kiosk {
        cfg,
        out,
        log,
        notifier: Notifier::from_env(),
        totals: Totals::default(),
        unit,
    };
    // Ready before the model: a model that will not load is shown on the screen and retried,
    // which is "running" to systemd, not a start-up that never finishes.
    k.notifier.ready("loading the model");
    // Not for one pass or a script: they end before an update could matter, and a script's
    // screens must not depend on what the store holds.
    let _updates = (!opts.once && opts.script.is_none()).then(|| updates::Updates::start(cfg));
    // Once per model: a new bundle made current (module `updates`) ends the source's loop as a
    // stop would, and the model is loaded again.
    loop {
        let Some(clf) = load_model(&mut k, opts.once)? else {
            break;
        };
        announce(&k, &clf);
        match &source {
            SourceSpec::Camera(_) | SourceSpec::Frames(_) => {
                run_camera(&mut k, &clf, &source, opts)?
            }
            SourceSpec::Samples => run_samples(&mut k, &clf, opts.once),
            SourceSpec::Inbox(dir) => inbox::run_inbox(&mut k, &clf, dir, opts.once)?,
            SourceSpec::Auto => unreachable!("resolve() leaves no auto"),
        }
        if !stop::take_reload() || stop::signalled() || opts.once {
            break;
        }
    }
    k.notifier.stopping();
    // The screen is given back here, when `k` and its display are dropped.
    Ok(k.totals)
}

/// Say which model runs: systemd's status line, the log and the sync thread's status.
fn announce(k: &Kiosk, clf: &Classifier) {
    let id = clf.id();
    k.unit.set_model(RunningModel::from(&id));
    k.notifier.status(&format!(
        "model {} {} ({}) loaded",
        id.name, id.version, id.variant
    ));
    tracing::info!(
        "model {} {} ({}, {}), results in {}. {}",
        id.name,
        id.version,
        id.variant,
        id.sha256,
        k.cfg.storage.dir.display(),
        crate::NOTICE
    );
}

/// The camera kiosk: preview, capture, result, until the source ends or the script is done.
fn run_camera(
    k: &mut Kiosk,
    clf: &Classifier,
    source: &SourceSpec,
    opts: &RunOptions,
) -> Result<()> {
    let mut frames = open_frames(k.cfg, source)?;
    let mut buttons = AllButtons(open_buttons(k.cfg, opts.script.is_some()));
    k.notifier.status(&format!("watching {}", frames.name()));
    let cfg = k.cfg;
    let (log, out, notifier) = (&k.log, &mut k.out, &k.notifier);
    let unit = k.unit.clone();
    let totals = std::thread::scope(|scope| {
        let mut kiosk = live::LiveKiosk::new(
            clf,
            log,
            out,
            cfg.storage.keep_images,
            cfg.auto_capture,
            cfg.steady_frames,
        )
        .reporting_to(unit)
        .with_case_codes(cfg.case.clone());
        // A script must give the same screens every time, so it analyses in step.
        if opts.script.is_none() {
            kiosk = kiosk.with_worker(live::Worker::spawn(scope, clf));
        }
        kiosk.show_current();
        live::run_live(
            &mut kiosk,
            frames.as_mut(),
            &mut buttons,
            opts.script.as_deref(),
            notifier,
        );
        kiosk.totals
    });
    k.totals = totals;
    Ok(())
}

/// The bundled sample films, each analysed once; then idle (a demo that stays on screen).
fn run_samples(k: &mut Kiosk, clf: &Classifier, once: bool) {
    for s in &capture::sample_inputs() {
        if stop::requested() {
            return;
        }
        k.notifier.watchdog();
        k.analyse(clf, s, Origin::Samples);
    }
    if !once {
        k.notifier.status("all sample films analysed; idle");
        while !stop::requested() {
            sleep_alive(&k.notifier, Duration::from_secs(3600));
        }
    }
}
