//! Buttons on GPIO lines, through the GPIO character device's uAPI v2 (`/dev/gpiochipN`, not
//! sysfs; Linux 5.10 or later).
//!
//! Each button is a momentary switch between a GPIO line and GND (active low, the usual
//! wiring) or 3.3 V (active high). The lines are found by name or number and checked against
//! the board's GPIO controller ([`super::gpiochip`]), then requested as inputs with a pull-up
//! (active low) or pull-down (active high) bias, edge detection on both edges and the kernel's
//! debounce ([`DEBOUNCE`]): the kernel reports a change only once the line has held the new
//! level that long, so there is no polling. Where a driver refuses the debounce setting the
//! lines are requested without it (with a warning) and [`Presses`] alone debounces.
//!
//! A press is the edge into the active level (falling for active low, rising for active high),
//! from a released line, at least [`DEBOUNCE`] after the line's previous edge. A button held
//! when the lines are requested is not a press until released and pressed again; a held button
//! counts once.
//!
//! A thread waits for the edge events and sends presses over a channel that
//! [`GpioButtons::poll`] drains. When the lines cannot be read (chip unplugged, driver gone)
//! that is reported once and the lines are looked up and requested again every
//! [`RETRY`] until they can; recovery is reported too. The thread reads events through
//! [`EdgeSource`], so the tests run it on scripted edges.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use gpiocdev::line::{Bias, EdgeDetection, EdgeKind};
use gpiocdev::Request;

use super::gpiochip::{self, Found, SystemChips};
use super::{Button, Buttons, LineRef};

/// How long a line must hold a level before the kernel reports the edge, and the shortest
/// time between two edges of one line that [`Presses`] accepts a press after.
pub const DEBOUNCE: Duration = Duration::from_millis(30);

/// The longest one wait for events lasts: how soon dropping [`GpioButtons`] ends the thread.
const WAIT: Duration = Duration::from_millis(100);

/// How often lines that cannot be read are looked up and requested again.
pub const RETRY: Duration = Duration::from_secs(1);

/// The setting that names the board's GPIO controller, for messages.
const SETTING: &str = "[buttons] controller";

/// A change of one button line's level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// The button's place in the list given to [`GpioButtons`].
    pub index: usize,
    /// The line went high (physical level), else low.
    pub rising: bool,
    /// When, in nanoseconds on a monotonic clock.
    pub time_ns: u64,
}

/// Where the edges of the button lines come from.
pub trait EdgeSource: Send + 'static {
    /// Wait up to `timeout` for edges; the edges that came (maybe none). An error (the chip
    /// went away) is reported once and `wait` called again: the source paces its own retries.
    /// None ends the thread (the tests' scripts end so).
    fn wait(&mut self, timeout: Duration) -> Option<Result<Vec<Edge>, std::io::Error>>;
}

/// Edges to presses; see the module documentation.
#[derive(Clone, Debug)]
pub(crate) struct Presses {
    buttons: Vec<Button>,
    active_low: bool,
    debounce_ns: u64,
    /// Per line: active now, and the time of its last edge.
    lines: Vec<(bool, Option<u64>)>,
}

impl Presses {
    pub(crate) fn new(buttons: &[Button], active_low: bool, debounce: Duration) -> Presses {
        Presses {
            buttons: buttons.to_vec(),
            active_low,
            debounce_ns: u64::try_from(debounce.as_nanos()).unwrap_or(u64::MAX),
            lines: vec![(false, None); buttons.len()],
        }
    }

    /// The press `edge` completes, if any.
    pub(crate) fn edge(&mut self, edge: Edge) -> Option<Button> {
        let (active, last) = self.lines.get_mut(edge.index)?;
        let now_active = edge.rising != self.active_low;
        // A bounce the kernel did not filter: too soon after the line's previous edge.
        let settled = last.is_none_or(|t| edge.time_ns.saturating_sub(t) >= self.debounce_ns);
        let press = now_active && !*active && settled;
        *active = now_active;
        *last = Some(edge.time_ns);
        press.then(|| self.buttons[edge.index])
    }
}

/// The event thread's state: the source, the press logic and whether the lines are failing.
pub(crate) struct Watcher<S> {
    source: S,
    presses: Presses,
    failing: bool,
    /// Messages written to the log (for the tests).
    pub(crate) reports: usize,
}

impl<S: EdgeSource> Watcher<S> {
    pub(crate) fn new(source: S, presses: Presses) -> Watcher<S> {
        Watcher {
            source,
            presses,
            failing: false,
            reports: 0,
        }
    }

    /// One wait for events: the presses it brought; None when the source ended.
    pub(crate) fn step(&mut self, timeout: Duration) -> Option<Vec<Button>> {
        match self.source.wait(timeout)? {
            Ok(edges) => {
                if self.failing {
                    self.failing = false;
                    self.reports += 1;
                    tracing::info!("the GPIO buttons are readable again");
                }
                Some(
                    edges
                        .into_iter()
                        .filter_map(|e| self.presses.edge(e))
                        .collect(),
                )
            }
            Err(e) => {
                if !self.failing {
                    self.failing = true;
                    self.reports += 1;
                    tracing::warn!("cannot read the GPIO buttons: {e}; retrying");
                }
                Some(Vec::new())
            }
        }
    }
}

fn event_loop<S: EdgeSource>(mut watcher: Watcher<S>, tx: Sender<Button>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Some(presses) = watcher.step(WAIT) else {
            break;
        };
        for b in presses {
            if tx.send(b).is_err() {
                return;
            }
        }
    }
}

/// Debounced buttons on GPIO lines, watched by a thread of their own.
pub struct GpioButtons {
    rx: Receiver<Button>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GpioButtons {
    /// Find `lines` (by name on every chip, by number on `chip`), check they are on the
    /// `controller` (the chip label the board profile expects; None: any), request them and
    /// start watching. `active_low`: pressed pulls the line to GND (with a pull-up).
    pub fn open(
        lines: &[(Button, LineRef)],
        chip: &Path,
        controller: Option<&str>,
        active_low: bool,
    ) -> Result<GpioButtons> {
        let setup = Setup {
            lines: lines.to_vec(),
            chip: chip.to_path_buf(),
            controller: controller.map(String::from),
            active_low,
        };
        let source = CdevEdges::open(setup)?;
        let buttons: Vec<Button> = lines.iter().map(|(b, _)| *b).collect();
        GpioButtons::with_source(&buttons, active_low, source)
    }

    /// Watch `buttons` (in the order of the source's edge indices) through any edge source.
    pub fn with_source<S: EdgeSource>(
        buttons: &[Button],
        active_low: bool,
        source: S,
    ) -> Result<GpioButtons> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = Watcher::new(source, Presses::new(buttons, active_low, DEBOUNCE));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("cxr-buttons".into())
                .spawn(move || event_loop(watcher, tx, stop))
                .context("cannot start the button thread")?
        };
        Ok(GpioButtons {
            rx,
            stop,
            thread: Some(thread),
        })
    }

    /// Wait for the thread to end (it ends by itself only when the source does).
    #[cfg(test)]
    fn join(&mut self) -> std::thread::Result<()> {
        self.thread.take().map_or(Ok(()), |t| t.join())
    }
}

impl Buttons for GpioButtons {
    fn poll(&mut self) -> Vec<Button> {
        self.rx.try_iter().collect()
    }
}

impl Drop for GpioButtons {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the lines are, to look them up again after a failure (a chip that comes back may
/// have another number).
struct Setup {
    lines: Vec<(Button, LineRef)>,
    chip: PathBuf,
    controller: Option<String>,
    active_low: bool,
}

/// The requested lines of one chip, and which button each offset is.
struct ChipLines {
    request: Request,
    chip: PathBuf,
    buttons: Vec<(u32, usize)>,
}

/// The real edge source: the button lines requested through gpiocdev, one request per chip.
struct CdevEdges {
    setup: Setup,
    /// None after a failure, until the lines could be requested again.
    requests: Option<Vec<ChipLines>>,
    next_try: Instant,
    last_error: String,
    warned_debounce: bool,
}

impl CdevEdges {
    fn open(setup: Setup) -> Result<CdevEdges> {
        let mut source = CdevEdges {
            setup,
            requests: None,
            next_try: Instant::now(),
            last_error: String::new(),
            warned_debounce: false,
        };
        source.requests = Some(source.request()?);
        Ok(source)
    }

    fn request(&mut self) -> Result<Vec<ChipLines>> {
        let what: Vec<(String, LineRef)> = self
            .setup
            .lines
            .iter()
            .map(|(b, l)| (format!("{} button", b.name()), l.clone()))
            .collect();
        let found = gpiochip::find_lines(
            &SystemChips,
            &what,
            &self.setup.chip,
            self.setup.controller.as_deref(),
            SETTING,
        )?;
        let mut chips: Vec<ChipLines> = Vec::new();
        for (index, f) in found.iter().enumerate() {
            let at = chips.iter().position(|c| c.chip == f.chip);
            let offsets: Vec<u32> = found
                .iter()
                .filter(|o| o.chip == f.chip)
                .map(|o| o.offset)
                .collect();
            match at {
                Some(i) => chips[i].buttons.push((f.offset, index)),
                None => chips.push(ChipLines {
                    request: self.request_chip(f, &offsets)?,
                    chip: f.chip.clone(),
                    buttons: vec![(f.offset, index)],
                }),
            }
        }
        Ok(chips)
    }

    /// Request `offsets` of `first`'s chip; without the debounce where the driver refuses it.
    fn request_chip(&mut self, first: &Found, offsets: &[u32]) -> Result<Request> {
        let active_low = self.setup.active_low;
        let build = |debounce: bool| {
            let mut b = Request::builder();
            b.on_chip(&first.chip)
                .with_consumer("cxr-edge button")
                .as_input()
                .with_bias(if active_low {
                    Bias::PullUp
                } else {
                    Bias::PullDown
                })
                .with_edge_detection(EdgeDetection::BothEdges);
            if debounce {
                b.with_debounce_period(DEBOUNCE);
            }
            b.with_lines(offsets).request()
        };
        let e = match build(true) {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let r = build(false).map_err(|_| {
            anyhow!(
                "cannot request GPIO lines {offsets:?} of {} ({:?}) for the buttons: {e}{}",
                first.chip.display(),
                first.label,
                gpiochip::access_hint(&e)
            )
        })?;
        if !self.warned_debounce {
            self.warned_debounce = true;
            tracing::warn!(
                "{} ({:?}) did not take a debounce period ({e}); the buttons are debounced \
                 from the event times only",
                first.chip.display(),
                first.label
            );
        }
        Ok(r)
    }

    /// Read what `poll` says is waiting on every request.
    fn read(&self, fds: &[libc::pollfd]) -> Result<Vec<Edge>, String> {
        let requests = self.requests.as_deref().unwrap_or_default();
        let mut edges = Vec::new();
        for (pfd, lines) in fds.iter().zip(requests) {
            let gone =
                |e: &dyn std::fmt::Display| format!("GPIO chip {}: {e}", lines.chip.display());
            if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                return Err(gone(&"the chip went away"));
            }
            if pfd.revents & libc::POLLIN == 0 {
                continue;
            }
            // Bounded, so a line that chatters cannot keep the thread here.
            for _ in 0..64 {
                let ev = lines.request.read_edge_event().map_err(|e| gone(&e))?;
                if let Some(&(_, index)) = lines.buttons.iter().find(|(o, _)| *o == ev.offset) {
                    edges.push(Edge {
                        index,
                        rising: ev.kind == EdgeKind::Rising,
                        time_ns: ev.timestamp_ns,
                    });
                }
                if !lines.request.has_edge_event().map_err(|e| gone(&e))? {
                    break;
                }
            }
        }
        Ok(edges)
    }
}

impl EdgeSource for CdevEdges {
    fn wait(&mut self, timeout: Duration) -> Option<Result<Vec<Edge>, std::io::Error>> {
        if self.requests.is_none() {
            if Instant::now() < self.next_try {
                std::thread::sleep(timeout);
                return Some(Err(std::io::Error::other(self.last_error.clone())));
            }
            self.next_try = Instant::now() + RETRY;
            match self.request() {
                Ok(r) => self.requests = Some(r),
                Err(e) => {
                    self.last_error = format!("{e:#}");
                    return Some(Err(std::io::Error::other(self.last_error.clone())));
                }
            }
        }
        let mut fds: Vec<libc::pollfd> = self
            .requests
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| libc::pollfd {
                fd: c.request.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs, each holding the fd of a
        // request that `self` owns and keeps open during the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Some(Ok(Vec::new()));
            }
            self.requests = None;
            self.last_error = format!("waiting for GPIO events: {e}");
            return Some(Err(std::io::Error::other(self.last_error.clone())));
        }
        match self.read(&fds) {
            Ok(edges) => Some(Ok(edges)),
            Err(e) => {
                // Dropped, so the lines are looked up and requested again.
                self.requests = None;
                self.last_error = e;
                Some(Err(std::io::Error::other(self.last_error.clone())))
            }
        }
    }
}

#[cfg(test)]
mod tests;
