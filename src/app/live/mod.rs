//! The camera kiosk: a live preview until a film is held still (or the capture button is
//! pressed), then the analysis, the result, and back to the preview when the film is taken
//! away or `next` is pressed.
//!
//! [`LiveKiosk`] is a state machine fed with events (a frame, a camera error, a button); it
//! draws through a display [`Output`] and writes each analysis to the results log. The loop that
//! feeds it ([`run_live`]) only moves events, so tests drive the state machine directly with
//! scripted frames, camera failures and presses.

use std::collections::VecDeque;
use std::sync::{mpsc, Arc};

use image::RgbImage;

use super::Totals;
use crate::analysis::{analyse, Analysis, How, Subject};
use crate::capture::SourceError;
use crate::case::{Entry, Mode as CaseMode, Policy};
use crate::display::Output;
use crate::film::steady::{corner_shift, Look, Steady};
use crate::film::Quad;
use crate::input::Button;
use crate::model::Classifier;
use crate::pixels::Frame;
use crate::record::Record;
use crate::store::unit::{Camera, UnitState};
use crate::store::{Origin, ResultsLog};
use crate::ui::{CaseLine, PreviewView, Problem, ResultView, Screen};

mod script;
pub use script::{parse_script, run_live, Step};

/// Results kept for `back`.
const HISTORY: usize = 20;
/// Consecutive frame timeouts before the screen says the camera stopped.
const TIMEOUTS_BEFORE_LOST: u32 = 3;
/// A film that moved this much (share of its diagonal) since it was analysed is a new film.
const NEW_FILM_MOVE: f32 = 0.05;
/// Longest side of the preview picture; the screen is smaller, and scaling a 1280x720 frame
/// once here is cheaper than drawing it full size.
const PREVIEW_SIDE: usize = 480;

/// What the kiosk is showing.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Showing the camera view.
    Live,
    /// Showing a result; the index counts back from the newest (0) for `back`.
    Result(usize),
    /// Showing a problem (no film at capture, not a chest X-ray) until the film changes or a
    /// button is pressed.
    Problem(Problem, String),
    /// The camera is gone or silent; the source keeps reconnecting.
    CameraLost(String),
}

struct Shown {
    record: Record,
    picture: Option<RgbImage>,
}

/// The camera kiosk's state machine; see the module documentation.
pub struct LiveKiosk<'a> {
    clf: &'a Classifier,
    log: &'a ResultsLog,
    out: &'a mut Output,
    keep_images: bool,
    /// Analyse as soon as a film is steady (no button needed).
    auto_capture: bool,
    steady: Steady,
    state: State,
    last: Option<(Frame, Look)>,
    history: VecDeque<Shown>,
    timeouts: u32,
    /// Where the last analysed film was; a new analysis waits until it is removed or moved.
    analysed: Option<Quad>,
    /// Analyses run here when `None` (deterministic: scripts, tests).
    worker: Option<Worker>,
    busy: bool,
    /// Do not print a line per record on stdout (`cxr-edge bench` drives a kiosk).
    quiet: bool,
    /// Films analysed and failed so far.
    pub totals: Totals,
    /// Where the camera's state is told (the sync thread's status message).
    unit: Option<Arc<UnitState>>,
    /// The study's case-code rule; off unless [`LiveKiosk::with_case_codes`].
    case: Policy,
    /// The case code typed or scanned for the next film.
    entry: Entry,
    /// The checked code of the film being analysed, for its record.
    pending_code: Option<String>,
    /// Frames seen, to look for a barcode in every [`SCAN_EVERY`]th.
    frames_seen: u64,
    /// The code the last film was recorded with: a card still in view is not taken again for
    /// the next film until a look finds no code (the card was taken away).
    last_code: Option<String>,
}

/// A barcode is looked for in one frame of this many (a look at a 720p frame takes tens of
/// milliseconds on a Pi 4; the preview keeps its pace).
const SCAN_EVERY: u64 = 6;

/// A grey frame as a small RGB picture, and the factor its coordinates were scaled by.
fn preview_picture(f: &Frame) -> (RgbImage, f32) {
    let s = (PREVIEW_SIDE as f32 / f.width.max(f.height) as f32).min(1.0);
    let (w, h) = (
        ((f.width as f32 * s) as u32).max(1),
        ((f.height as f32 * s) as u32).max(1),
    );
    let img = RgbImage::from_fn(w, h, |x, y| {
        let sx = ((x as f32 + 0.5) / s) as usize;
        let sy = ((y as f32 + 0.5) / s) as usize;
        let v = f
            .pixel(sx.min(f.width - 1), sy.min(f.height - 1))
            .clamp(0.0, 255.0) as u8;
        image::Rgb([v, v, v])
    });
    (img, s)
}

impl<'a> LiveKiosk<'a> {
    /// A kiosk in the live state that analyses in the frame loop; `steady_frames` is how many
    /// frames in a row the film must be still.
    pub fn new(
        clf: &'a Classifier,
        log: &'a ResultsLog,
        out: &'a mut Output,
        keep_images: bool,
        auto_capture: bool,
        steady_frames: usize,
    ) -> LiveKiosk<'a> {
        LiveKiosk {
            clf,
            log,
            out,
            keep_images,
            auto_capture,
            steady: Steady::new(steady_frames),
            state: State::Live,
            last: None,
            history: VecDeque::new(),
            timeouts: 0,
            analysed: None,
            worker: None,
            busy: false,
            quiet: false,
            totals: Totals::default(),
            unit: None,
            case: Policy::default(),
            entry: Entry::default(),
            pending_code: None,
            frames_seen: 0,
            last_code: None,
        }
    }

    /// Take case codes by `policy`: typed (keys arrive as [`Button::Char`]) or read from a
    /// barcode in view, shown on the preview, checked at capture, kept in the record.
    pub fn with_case_codes(mut self, policy: Policy) -> Self {
        self.case = policy;
        self
    }

    /// The case code typed or scanned so far.
    pub fn case_entry(&self) -> &Entry {
        &self.entry
    }

    /// Whether a capture may go ahead as far as the case code is concerned.
    fn case_ready(&self) -> bool {
        self.case.check(Some(self.entry.text())).is_ok()
    }

    /// While codes are on and none is typed yet, look for a barcode in some frames.
    fn scan_for_code(&mut self, frame: &Frame) {
        self.frames_seen = self.frames_seen.wrapping_add(1);
        if self.case.mode == CaseMode::Off
            || !self.entry.is_empty()
            || self.busy
            || self.frames_seen % SCAN_EVERY != 1
        {
            return;
        }
        match crate::film::barcode::read_code(frame) {
            // A code of another form (a product barcode on the light box) is not taken.
            Some(text) => {
                if let Ok(Some(code)) = self.case.check(Some(&text)) {
                    if self.last_code.as_deref() != Some(code.as_str()) {
                        self.entry.set_scanned(&code);
                    }
                }
            }
            None => self.last_code = None,
        }
    }

    /// Tell `unit` whether frames arrive or the camera is lost.
    pub fn reporting_to(mut self, unit: Arc<UnitState>) -> Self {
        unit.set_camera(Camera::Starting);
        self.unit = Some(unit);
        self
    }

    fn camera_is(&self, c: Camera) {
        if let Some(u) = &self.unit {
            u.set_camera(c);
        }
    }

    /// Run analyses on `worker` instead of in the frame loop.
    pub fn with_worker(mut self, worker: Worker) -> Self {
        self.worker = Some(worker);
        self
    }

    /// No line per record on stdout (the record is still written).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Presses made on the display itself (keys, clicks and touches in a desktop window).
    pub fn display_presses(&mut self) -> Vec<Button> {
        self.out.presses()
    }

    /// Draw the on-screen buttons (a touch screen is attached) from the next screen on.
    pub fn set_touch_buttons(&mut self, on: bool) {
        self.out.set_touch_buttons(on);
    }

    /// What the kiosk is showing now.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Is the film in view a different one from the last analysed (or none was analysed)?
    fn film_changed(&self, look: &Look) -> bool {
        match (&self.analysed, look.corners()) {
            (None, _) => true,
            (Some(_), None) => true, // taken away
            (Some(a), Some(c)) => corner_shift(a, c) > NEW_FILM_MOVE,
        }
    }

    /// Handle a new camera frame: update the preview, and capture when a film is held still
    /// and auto-capture is on.
    pub fn on_frame(&mut self, frame: Frame) {
        self.timeouts = 0;
        self.camera_is(Camera::Streaming);
        self.scan_for_code(&frame);
        self.poll(false);
        if self.busy {
            // The preview goes on while the worker analyses; nothing else changes meanwhile.
            let look = self.steady.observe(&frame);
            self.last = Some((frame, look));
            self.show_current();
            return;
        }
        let look = self.steady.observe(&frame);
        if self.film_changed(&look) {
            self.analysed = None;
        }
        let leave = match &self.state {
            State::Live | State::CameraLost(_) => true,
            // "No film" stays up until there is one to see.
            State::Problem(Problem::NoFilm | Problem::NoCamera, _) => look.corners().is_some(),
            // A result stays up until its film is taken away or replaced.
            State::Result(_) | State::Problem(..) => self.analysed.is_none(),
        };
        let ready = matches!(look, Look::Ready { .. });
        self.last = Some((frame, look));
        if !leave {
            return;
        }
        self.state = State::Live;
        if ready && self.auto_capture && self.analysed.is_none() && self.case_ready() {
            self.capture();
        } else {
            self.show_current();
        }
    }

    /// Handle a camera error; a lost camera or repeated timeouts show the camera-lost screen.
    pub fn on_source_error(&mut self, e: &SourceError) {
        let lost = match e {
            SourceError::Unavailable { reason, .. } => Some(reason.clone()),
            SourceError::Timeout { waited, .. } => {
                self.timeouts += 1;
                (self.timeouts >= TIMEOUTS_BEFORE_LOST).then(|| {
                    let words = &self.out.language().texts().hints;
                    (words.camera_silent)(waited.as_secs_f32() * self.timeouts as f32)
                })
            }
            // One bad frame is not worth a screen; the next one usually is fine.
            SourceError::BadFrame { .. } | SourceError::Finished { .. } => None,
        };
        if let Some(reason) = lost {
            self.camera_is(Camera::Lost);
            self.steady.reset();
            self.last = None;
            // A result on screen stays: losing the camera does not make it less true.
            if !matches!(self.state, State::Result(_)) {
                self.state = State::CameraLost(reason);
                self.show_current();
            }
        }
    }

    /// Handle a button press (ignored while an analysis is running).
    pub fn on_button(&mut self, b: Button) {
        if self.busy {
            return; // one analysis at a time; its result comes next
        }
        if let Button::Char(_) | Button::Erase | Button::Clear = b {
            if self.case.mode == CaseMode::Off {
                return;
            }
            match b {
                Button::Char(c) => self.entry.push(c),
                Button::Erase => self.entry.erase(),
                _ => self.entry.clear(),
            }
            // Typing the next film's code leaves a result or problem screen.
            if !matches!(self.state, State::CameraLost(_)) {
                self.state = State::Live;
            }
            self.show_current();
            return;
        }
        match (&self.state, b) {
            // Capture again from a problem screen is a retry.
            (State::Live | State::CameraLost(_) | State::Problem(..), Button::Capture) => {
                self.capture()
            }
            (State::Live, Button::Back) if !self.history.is_empty() => {
                self.state = State::Result(0);
                self.show_current();
            }
            (State::Result(i), Button::Back) => {
                self.state = State::Result((i + 1).min(self.history.len().saturating_sub(1)));
                self.show_current();
            }
            (State::Result(_) | State::Problem(..), _) => {
                // Dismissed: the same film may be analysed again only on purpose.
                self.state = State::Live;
                self.show_current();
            }
            _ => {}
        }
    }

    /// Analyse the last frame (when a film is in it), record it and show the outcome.
    fn capture(&mut self) {
        let Some((frame, look)) = self.last.take() else {
            let words = &self.out.language().texts().hints;
            self.state = State::Problem(Problem::NoCamera, words.no_picture_yet.into());
            self.show_current();
            return;
        };
        let corners = match &look {
            Look::NoFilm(w) => {
                let words = self.out.language().texts();
                let detail = words.warning(w.code.as_str(), &w.message).to_string();
                self.state = State::Problem(Problem::NoFilm, detail);
                self.last = Some((frame, look));
                self.show_current();
                return;
            }
            Look::Moving { corners }
            | Look::Steadying { corners, .. }
            | Look::Ready { corners } => *corners,
        };
        // The study's code before the film: nothing is analysed without a valid one where
        // one is required (the message says what is wrong, never the code).
        match self.case.check(Some(self.entry.text())) {
            Ok(code) => self.pending_code = code,
            Err(e) => {
                self.state = State::Problem(Problem::CaseCode, e.to_string());
                self.last = Some((frame, look));
                self.show_current();
                return;
            }
        }
        self.analysed = Some(corners);
        self.steady.reset();
        let mut frame = frame;
        if let Some(worker) = &self.worker {
            // Analysed beside the frame loop: the preview keeps moving meanwhile.
            match worker.jobs.send((frame, corners)) {
                Ok(()) => {
                    self.busy = true;
                    self.state = State::Live;
                    self.out.show(&Screen::Analysing);
                    return;
                }
                Err(mpsc::SendError((back, _))) => {
                    tracing::warn!("the analysis thread is gone; analysing here");
                    self.worker = None;
                    frame = back;
                }
            }
        }
        self.out.show(&Screen::Analysing);
        let done = analyse_camera_frame(self.clf, frame, corners);
        self.finish(done);
    }

    /// An analysis finished (here or on the worker): record it and show the outcome.
    fn finish(&mut self, mut done: Analysis) {
        self.busy = false;
        done.record.case_code = self.pending_code.take();
        self.last_code.clone_from(&done.record.case_code);
        self.entry.clear();
        match self.log.record(&mut done, Origin::Camera, self.keep_images) {
            Ok(_) if self.quiet => {}
            Ok(_) => tracing::info!("{}", done.record.summary_line()),
            Err(e) => tracing::error!("{e:#}"),
        }
        let rec = done.record;
        self.state = if let Some(err) = &rec.error {
            self.totals.failed += 1;
            let problem = if rec.blocked() {
                Problem::NoFilm
            } else {
                Problem::BadImage
            };
            State::Problem(problem, err.clone())
        } else {
            self.totals.analysed += 1;
            if rec.not_chest() {
                State::Problem(Problem::NotChest, String::new())
            } else {
                State::Result(0)
            }
        };
        if rec.error.is_none() {
            self.history.push_front(Shown {
                record: rec,
                picture: done.heatmap,
            });
            self.history.truncate(HISTORY);
        }
        self.show_current();
    }

    /// Take a finished background analysis, if there is one. `wait` blocks until the running
    /// one is done (end of a run, tests).
    pub fn poll(&mut self, wait: bool) {
        if !self.busy {
            return;
        }
        let got = match &self.worker {
            Some(w) if wait => w.done.recv().map_err(|_| mpsc::TryRecvError::Disconnected),
            Some(w) => w.done.try_recv(),
            None => Err(mpsc::TryRecvError::Disconnected),
        };
        match got {
            Ok(done) => self.finish(done),
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => {
                // The thread died mid-analysis: that frame is lost, the kiosk must not wait on it.
                tracing::warn!("the analysis thread stopped; analysing here from now on");
                self.worker = None;
                self.busy = false;
                self.show_current();
            }
        }
    }

    /// An analysis is running on the worker.
    pub fn busy(&self) -> bool {
        self.busy
    }

    /// Draw the screen for the current state.
    pub fn show_current(&mut self) {
        match &self.state {
            State::Live => match &self.last {
                Some((frame, look)) => {
                    let (pic, s) = preview_picture(frame);
                    let outline = look.corners().map(|q| q.map(|[x, y]| [x * s, y * s]));
                    let words = self.out.language().texts();
                    let hint = match look {
                        _ if self.busy => words.hints.busy.to_string(),
                        // Steady, but auto-capture waits for the study's code.
                        Look::Ready { .. } if !self.case_ready() => {
                            words.screen.case_code.title.to_string()
                        }
                        Look::Ready { .. } if !self.auto_capture => {
                            words.hints.press_capture.to_string()
                        }
                        Look::Ready { .. } if self.analysed.is_some() => {
                            words.hints.analysed.to_string()
                        }
                        _ => look.hint_in(words),
                    };
                    let steady = matches!(look, Look::Steadying { .. } | Look::Ready { .. });
                    let case = (self.case.mode != CaseMode::Off).then(|| CaseLine {
                        code: self.entry.text(),
                        scanned: self.entry.scanned,
                        required: self.case.mode == CaseMode::Required,
                    });
                    self.out.show(&Screen::Preview(PreviewView {
                        picture: &pic,
                        outline,
                        hint: &hint,
                        steady,
                        case,
                    }));
                }
                None => {
                    let hint = self.out.language().texts().hints.waiting_for_camera;
                    self.out.show(&Screen::Waiting { hint })
                }
            },
            State::Result(i) => {
                let shown = &self.history[*i.min(&(self.history.len() - 1))];
                self.out.show(&Screen::Result(ResultView {
                    record: &shown.record,
                    picture: shown.picture.as_ref(),
                }));
            }
            State::Problem(problem, detail) => self.out.show(&Screen::Error {
                problem: *problem,
                detail,
            }),
            State::CameraLost(reason) => self.out.show(&Screen::Error {
                problem: Problem::NoCamera,
                detail: reason,
            }),
        }
    }
}

/// `corners`: where the preview found the film in this frame (the finder is not run again).
fn analyse_camera_frame(clf: &Classifier, frame: Frame, corners: Quad) -> Analysis {
    let how = How {
        heatmap: true,
        ..How::default()
    };
    let subject = Subject::Photo {
        frame,
        corners: Some(corners),
    };
    analyse(subject, &how, clf)
}

/// The analysis thread: frames in, analyses out, so that capture, film finding and the preview
/// go on while the model runs. Lives inside a `std::thread::scope` that also holds the model.
pub struct Worker {
    jobs: mpsc::Sender<(Frame, Quad)>,
    done: mpsc::Receiver<Analysis>,
}

impl Worker {
    /// Start the analysis thread in `scope`, running `clf`.
    pub fn spawn<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        clf: &'env Classifier,
    ) -> Worker {
        let (jobs, job_rx) = mpsc::channel::<(Frame, Quad)>();
        let (done_tx, done) = mpsc::channel();
        scope.spawn(move || {
            for (frame, corners) in job_rx {
                if done_tx
                    .send(analyse_camera_frame(clf, frame, corners))
                    .is_err()
                {
                    break;
                }
            }
        });
        Worker { jobs, done }
    }
}
