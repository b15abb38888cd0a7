//! The model's side of the server: one thread that owns the network and analyses uploads one at
//! a time from a bounded queue, so a burst of uploads waits in a fixed amount of memory or is
//! turned away at the door (503), never piles up.
//!
//! An upload that made it into the queue is always analysed and recorded, even if its client
//! has gone away or the server is shutting down: the queue is drained before the thread ends.

use std::collections::VecDeque;
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::analysis::{analyse, How, InputMode, Subject};
use crate::capture::Limits;
use crate::model::Classifier;
use crate::pixels::Frame;
use crate::record::Record;
use crate::store::{Origin, ResultsLog};

/// Pictures of the last results, for the page to fetch (film and heatmap as PNG bytes).
const KEPT_RESULTS: usize = 16;
/// The film is shown at most this many pixels on its longer side.
const FILM_SIDE: u32 = 1024;

pub struct Job {
    pub bytes: Vec<u8>,
    pub mode: InputMode,
    /// Already checked against the unit's case-code rule.
    pub case_code: Option<String>,
    pub reply: oneshot::Sender<Answer>,
}

#[derive(Default)]
pub struct Pictures {
    entries: VecDeque<(String, Vec<u8>, Vec<u8>)>,
}

impl Pictures {
    fn insert(&mut self, id: String, film: Vec<u8>, heatmap: Vec<u8>) {
        if self.entries.len() == KEPT_RESULTS {
            self.entries.pop_front();
        }
        self.entries.push_back((id, film, heatmap));
    }

    /// `which` is "film" or "heatmap".
    pub fn get(&self, id: &str, which: &str) -> Option<Vec<u8>> {
        let (_, film, heat) = self.entries.iter().find(|(i, _, _)| i == id)?;
        match which {
            "film" => Some(film.clone()),
            "heatmap" => Some(heat.clone()),
            _ => None,
        }
    }
}

/// What the model thread does with one upload: analyse it and record it. The real one is
/// [`Analyser`]; tests put a gate here to fill the queue deterministically.
pub trait Analyse: Send + 'static {
    fn analyse(&mut self, bytes: &[u8], mode: InputMode, case_code: Option<&str>) -> Record;
    /// The record sent (and written to the results log) when `analyse` panicked.
    fn failed(&mut self) -> Record;
}

/// What the model thread answers for one upload.
pub struct Answer {
    /// The record, with `error` set when there is no result.
    pub record: Record,
    /// The analysis itself broke (a panic, a bug): the server answers 500, not 422.
    pub internal: bool,
}

/// A lock that a panic elsewhere cannot wedge: the data behind these locks (a list of kept
/// pictures, a channel end, a join handle) is whole after any panic, so a poisoned lock is
/// taken as it is.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The queue in front of the model thread.
pub struct Queue {
    tx: Mutex<Option<SyncSender<Job>>>,
    waiting: Arc<AtomicUsize>,
    alive: Arc<AtomicBool>,
    /// When the analysis now running started (ms since `epoch`); 0 while idle.
    busy_since_ms: Arc<AtomicU64>,
    epoch: Instant,
    pub capacity: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

pub enum Refused {
    /// The queue is full: try again shortly.
    Full,
    /// The model thread is gone (shutting down, or it failed).
    Stopped,
}

impl Queue {
    /// Start the model thread with room for `capacity` uploads waiting besides the one being
    /// analysed.
    pub fn start(mut analyser: impl Analyse, capacity: usize) -> Queue {
        let (tx, rx) = sync_channel::<Job>(capacity);
        let waiting = Arc::new(AtomicUsize::new(0));
        let alive = Arc::new(AtomicBool::new(true));
        let (waiting2, alive2) = (waiting.clone(), alive.clone());
        let busy_since_ms = Arc::new(AtomicU64::new(0));
        let busy2 = busy_since_ms.clone();
        let epoch = Instant::now();
        let thread = std::thread::Builder::new()
            .name("cxr-model".into())
            .spawn(move || {
                for job in rx {
                    busy2.store(epoch.elapsed().as_millis().max(1) as u64, Ordering::SeqCst);
                    // A panic in one analysis must not take the server's model away.
                    let answer = match catch_unwind(AssertUnwindSafe(|| {
                        analyser.analyse(&job.bytes, job.mode, job.case_code.as_deref())
                    })) {
                        Ok(record) => Answer {
                            record,
                            internal: false,
                        },
                        Err(_) => Answer {
                            record: analyser.failed(),
                            internal: true,
                        },
                    };
                    busy2.store(0, Ordering::SeqCst);
                    waiting2.fetch_sub(1, Ordering::SeqCst);
                    // The client may have gone; the record was written either way.
                    let _ = job.reply.send(answer);
                }
                alive2.store(false, Ordering::SeqCst);
            })
            .expect("can start the model thread");
        Queue {
            tx: Mutex::new(Some(tx)),
            waiting,
            alive,
            busy_since_ms,
            epoch,
            capacity,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Put a job in the queue without waiting.
    pub fn try_submit(&self, job: Job) -> Result<(), Refused> {
        let guard = lock(&self.tx);
        let tx = guard.as_ref().ok_or(Refused::Stopped)?;
        // Counted before sending so the worker never finishes a job it was not counted for.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => Refused::Full,
                    TrySendError::Disconnected(_) => Refused::Stopped,
                })
            }
        }
    }

    /// Uploads accepted and not yet finished (queued or being analysed).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// How long the analysis now running has taken; `None` while the model thread is idle.
    pub fn busy_for(&self) -> Option<Duration> {
        match self.busy_since_ms.load(Ordering::SeqCst) {
            0 => None,
            ms => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms)),
            ),
        }
    }

    /// Stop taking jobs, let the thread finish the accepted ones, and wait for it.
    pub fn drain(&self) {
        lock(&self.tx).take();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

/// Asked between uploads whether another model should be used (a signed bundle was made
/// current); returns the new model, already loaded, or `None` to go on with this one.
pub type Reload = Box<dyn FnMut() -> Option<Classifier> + Send>;

/// How often [`Reload`] is asked.
const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The real analysis: the model, the results log and the pictures kept for the page.
pub struct Analyser {
    pub clf: Arc<Classifier>,
    pub log: ResultsLog,
    pub keep_images: bool,
    pub limits: Limits,
    pub pictures: Arc<Mutex<Pictures>>,
    /// The model named by `/api/health`, updated on a reload.
    pub model: Arc<Mutex<crate::model::ModelId>>,
    /// See [`Reload`]; with the time it was last asked.
    pub reload: Option<(Reload, std::time::Instant)>,
}

impl Analyser {
    /// Take a new model if one was made current since the last look.
    fn maybe_reload(&mut self) {
        let Some((reload, last)) = &mut self.reload else {
            return;
        };
        if last.elapsed() < RELOAD_EVERY {
            return;
        }
        *last = std::time::Instant::now();
        if let Some(clf) = reload() {
            let id = clf.id();
            tracing::info!(
                "model {} {} ({}, {}) loaded",
                id.name,
                id.version,
                id.variant,
                id.sha256
            );
            *lock(&self.model) = id;
            self.clf = Arc::new(clf);
        }
    }
}

fn png<P>(img: &image::ImageBuffer<P, Vec<u8>>) -> Vec<u8>
where
    P: image::PixelWithColorType<Subpixel = u8>,
{
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encoding into memory cannot fail");
    out.into_inner()
}

fn film_png(film: &Frame) -> Vec<u8> {
    let img = film.to_luma8();
    let longest = img.width().max(img.height());
    if longest <= FILM_SIDE {
        return png(&img);
    }
    let s = FILM_SIDE as f32 / longest as f32;
    let (w, h) = (
        ((img.width() as f32 * s).round() as u32).max(1),
        ((img.height() as f32 * s).round() as u32).max(1),
    );
    png(&image::imageops::resize(
        &img,
        w,
        h,
        image::imageops::FilterType::Triangle,
    ))
}

impl Analyse for Analyser {
    fn failed(&mut self) -> Record {
        // Recorded like any other upload, so the log shows that one came in and broke.
        let mut a = crate::analysis::Analysis::failed(
            "upload",
            self.clf.id(),
            "the analysis failed unexpectedly (a bug in cxr-edge); the upload was not analysed",
        );
        if let Err(e) = self.log.record(&mut a, Origin::Upload, false) {
            tracing::error!("{e:#}");
        }
        a.record
    }

    fn analyse(&mut self, bytes: &[u8], mode: InputMode, case_code: Option<&str>) -> Record {
        self.maybe_reload();
        let how = How {
            mode,
            limits: self.limits,
            heatmap: true,
        };
        let mut a = analyse(Subject::Bytes(bytes), &how, &self.clf);
        a.record.case_code = case_code.map(String::from);
        let recorded = self.log.record(&mut a, Origin::Upload, self.keep_images);
        match &recorded {
            Ok(_) => tracing::info!("{}", a.record.summary_line()),
            Err(e) => tracing::error!("{e:#}"),
        }
        // The page fetches the pictures by the record's name; the stored record names the kept
        // file instead, so the address is set only on the answer.
        let mut rec = a.record;
        if let (Some(name), Some(film), Some(heatmap)) =
            (rec.log_name().map(str::to_string), &a.film, &a.heatmap)
        {
            lock(&self.pictures).insert(name.clone(), film_png(film), png(heatmap));
            rec.heatmap = Some(format!("/api/results/{name}/heatmap.png"));
        }
        rec
    }
}
