//! Buttons on GPIO lines, through the GPIO character device (`/dev/gpiochipN`, not sysfs).
//!
//! Each button is a momentary switch between a GPIO line and GND (active low, the usual
//! wiring) or 3.3 V (active high). The lines are requested as inputs with a pull-up (active
//! low) or pull-down (active high) bias where the kernel supports bias flags (Linux 5.5 and
//! later); on older kernels the board must provide the pulls, e.g. `gpio=17,22,27=pu` in a
//! Raspberry Pi's `/boot/firmware/config.txt`, or external 10 kOhm resistors.
//!
//! A thread samples every line every [`SAMPLE_PERIOD`] and feeds one [`Debouncer`] per line;
//! presses go over a channel that [`GpioButtons::poll`] drains. A line that cannot be read
//! (chip unplugged, driver gone) is reported once on stderr and retried at every sample.
//!
//! The sampling loop reads lines through [`LineSource`] and waits through [`Ticker`], so the
//! tests run it on scripted levels and synthetic time.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use gpio_cdev::{Chip, LineHandle, LineRequestFlags};

use super::debounce::Debouncer;
use super::{Button, Buttons};

/// How often the lines are read.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(5);

/// The kernel's GPIO v1 request flags for bias (Linux 5.5+), which gpio-cdev 0.6 does not
/// name: `GPIOHANDLE_REQUEST_BIAS_PULL_UP` and `..._PULL_DOWN`.
const BIAS_PULL_UP: u32 = 1 << 5;
const BIAS_PULL_DOWN: u32 = 1 << 6;

/// Reads the button lines.
pub trait LineSource: Send + 'static {
    /// Whether the button at `index` (its place in the list given to [`GpioButtons`]) is
    /// pressed now. An error (the chip went away, EIO) is reported once and the line retried.
    fn pressed(&mut self, index: usize) -> Result<bool, std::io::Error>;
}

/// Paces the sampling loop.
pub trait Ticker: Send + 'static {
    /// Wait until the next sample is due and return its time in milliseconds (monotonic);
    /// None ends sampling.
    fn tick(&mut self) -> Option<u64>;
}

/// Real time: one tick every `period`, on a monotonic clock.
pub struct Periodic {
    start: Instant,
    next: Instant,
    period: Duration,
}

impl Periodic {
    /// A ticker whose first tick is due at once, then one every `period`.
    pub fn new(period: Duration) -> Periodic {
        let now = Instant::now();
        Periodic {
            start: now,
            next: now,
            period,
        }
    }
}

impl Ticker for Periodic {
    fn tick(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
        let now = Instant::now();
        // Skip missed ticks rather than sampling in a burst after a stall.
        self.next = (self.next + self.period).max(now);
        Some(u64::try_from((now - self.start).as_millis()).unwrap_or(u64::MAX))
    }
}

/// One debouncer per line, and the read-error state of each.
pub(crate) struct Sampler<S> {
    source: S,
    lines: Vec<(Button, u32)>,
    debouncers: Vec<Debouncer>,
    failing: Vec<bool>,
    /// Messages written to stderr (for the tests).
    pub(crate) reports: usize,
}

impl<S: LineSource> Sampler<S> {
    pub(crate) fn new(source: S, lines: &[(Button, u32)]) -> Sampler<S> {
        Sampler {
            source,
            lines: lines.to_vec(),
            debouncers: vec![Debouncer::default(); lines.len()],
            failing: vec![false; lines.len()],
            reports: 0,
        }
    }

    /// Read every line once at `now_ms`; the presses this sample completes.
    pub(crate) fn sample(&mut self, now_ms: u64) -> Vec<Button> {
        let mut presses = Vec::new();
        for (i, &(button, line)) in self.lines.iter().enumerate() {
            match self.source.pressed(i) {
                Ok(level) => {
                    if self.failing[i] {
                        self.failing[i] = false;
                        self.reports += 1;
                        tracing::info!("{} button (GPIO {line}) readable again", button.name());
                    }
                    if self.debouncers[i].update(now_ms, level) {
                        presses.push(button);
                    }
                }
                Err(e) if !self.failing[i] => {
                    self.failing[i] = true;
                    self.reports += 1;
                    tracing::warn!(
                        "cannot read the {} button (GPIO {line}): {e}; retrying",
                        button.name()
                    );
                }
                Err(_) => {}
            }
        }
        presses
    }
}

fn sample_loop<S: LineSource, T: Ticker>(
    mut sampler: Sampler<S>,
    mut ticker: T,
    tx: Sender<Button>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Some(now) = ticker.tick() else { break };
        for b in sampler.sample(now) {
            if tx.send(b).is_err() {
                return;
            }
        }
    }
}

/// Debounced buttons on GPIO lines, sampled by a thread of their own.
pub struct GpioButtons {
    rx: Receiver<Button>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GpioButtons {
    /// Request `lines` (button, line offset on `chip`) as inputs and start sampling them.
    /// `active_low`: pressed reads 0 (button to GND, with a pull-up), else pressed reads 1.
    pub fn open(chip: &Path, lines: &[(Button, u32)], active_low: bool) -> Result<GpioButtons> {
        let source = CdevLines::open(chip, lines, active_low)?;
        GpioButtons::with_source(lines, source, Periodic::new(SAMPLE_PERIOD))
    }

    /// Sample `lines` through any line source, paced by `ticker`.
    pub fn with_source<S: LineSource, T: Ticker>(
        lines: &[(Button, u32)],
        source: S,
        ticker: T,
    ) -> Result<GpioButtons> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = Sampler::new(source, lines);
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("cxr-buttons".into())
                .spawn(move || sample_loop(sampler, ticker, tx, stop))
                .context("cannot start the button thread")?
        };
        Ok(GpioButtons {
            rx,
            stop,
            thread: Some(thread),
        })
    }

    /// Wait for the sampling thread to end (it ends by itself only when the ticker does).
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

/// The lines on a GPIO character device, requested as inputs (active-low when asked, so the
/// kernel reports 1 for pressed either way).
struct CdevLines {
    handles: Vec<LineHandle>,
}

impl CdevLines {
    fn open(chip_path: &Path, lines: &[(Button, u32)], active_low: bool) -> Result<CdevLines> {
        let mut chip = Chip::new(chip_path).map_err(|e| {
            let hint = access_hint(&e);
            anyhow!("cannot open GPIO chip {}: {e}{hint}", chip_path.display())
        })?;
        let mut flags = LineRequestFlags::INPUT;
        if active_low {
            flags |= LineRequestFlags::ACTIVE_LOW;
        }
        let bias = LineRequestFlags::from_bits_retain(if active_low {
            BIAS_PULL_UP
        } else {
            BIAS_PULL_DOWN
        });
        let mut warned = false;
        let chip_lines = chip.num_lines();
        let mut handles = Vec::with_capacity(lines.len());
        for &(button, offset) in lines {
            let fail = |e: gpio_cdev::Error| {
                let hint = access_hint(&e);
                anyhow!(
                    "cannot use GPIO line {offset} of {} for the {} button ({} lines on this \
                     chip): {e}{hint}",
                    chip_path.display(),
                    button.name(),
                    chip_lines
                )
            };
            let line = chip.get_line(offset).map_err(fail)?;
            let handle = match line.request(flags.clone() | bias.clone(), 0, "cxr-edge button") {
                Ok(h) => h,
                // Kernels before 5.5 refuse the bias flags (EINVAL): ask without them.
                Err(_) => {
                    let h = line
                        .request(flags.clone(), 0, "cxr-edge button")
                        .map_err(fail)?;
                    if !warned {
                        warned = true;
                        tracing::warn!(
                            "the kernel did not take a pull-{} request for the \
                             button lines of {}; the board must provide it (e.g. gpio=...=pu \
                             in /boot/firmware/config.txt, or resistors)",
                            if active_low { "up" } else { "down" },
                            chip_path.display()
                        );
                    }
                    h
                }
            };
            handles.push(handle);
        }
        Ok(CdevLines { handles })
    }
}

impl LineSource for CdevLines {
    fn pressed(&mut self, index: usize) -> Result<bool, std::io::Error> {
        self.handles[index]
            .get_value()
            .map(|v| v != 0)
            .map_err(std::io::Error::other)
    }
}

fn access_hint(e: &gpio_cdev::Error) -> &'static str {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let denied = err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied);
        let text = err.to_string();
        if denied || text.contains("EACCES") || text.contains("EPERM") {
            return " (add the user to the gpio group: sudo usermod -aG gpio $USER, then log in again)";
        }
        if text.contains("EBUSY") {
            return " (the line is in use by another program or a kernel driver)";
        }
        cur = err.source();
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Synthetic time: ticks every 5 ms up to `end`, without sleeping, publishing the time
    /// for the fake line source.
    struct Script {
        t: u64,
        end: u64,
        clock: Arc<AtomicU64>,
    }

    impl Ticker for Script {
        fn tick(&mut self) -> Option<u64> {
            if self.t > self.end {
                return None;
            }
            let t = self.t;
            self.clock.store(t, Ordering::SeqCst);
            self.t += 5;
            Some(t)
        }
    }

    /// Levels as a function of (line index, time).
    struct Levels<F> {
        clock: Arc<AtomicU64>,
        f: F,
    }

    impl<F> LineSource for Levels<F>
    where
        F: FnMut(usize, u64) -> Result<bool, std::io::Error> + Send + 'static,
    {
        fn pressed(&mut self, index: usize) -> Result<bool, std::io::Error> {
            (self.f)(index, self.clock.load(Ordering::SeqCst))
        }
    }

    const LINES: [(Button, u32); 3] = [
        (Button::Capture, 17),
        (Button::Next, 27),
        (Button::Back, 22),
    ];

    fn scripted<F>(end: u64, f: F) -> GpioButtons
    where
        F: FnMut(usize, u64) -> Result<bool, std::io::Error> + Send + 'static,
    {
        let clock = Arc::new(AtomicU64::new(0));
        let source = Levels {
            clock: clock.clone(),
            f,
        };
        GpioButtons::with_source(&LINES, source, Script { t: 0, end, clock }).unwrap()
    }

    /// Contact bounce: pressed with 1-4 ms gaps for the first 12 ms, then held.
    fn bouncy_press(t: u64, from: u64, to: u64) -> bool {
        if t < from || t >= to {
            return false;
        }
        let d = t - from;
        d >= 12 || d % 4 < 2
    }

    #[test]
    fn presses_arrive_in_order_through_the_channel() {
        let mut b = scripted(2000, |i, t| {
            Ok(match i {
                0 => bouncy_press(t, 100, 300) || bouncy_press(t, 1000, 1100),
                1 => bouncy_press(t, 500, 2000), // held to the end: one press
                _ => (700..703).contains(&t),    // a glitch: nothing
            })
        });
        b.join().expect("the sampling thread does not panic");
        assert_eq!(b.poll(), [Button::Capture, Button::Next, Button::Capture]);
        assert!(b.poll().is_empty(), "drained");
    }

    #[test]
    fn poll_does_not_block() {
        let mut b = scripted(100, |_, _| Ok(false));
        assert!(b.poll().is_empty());
        b.join().unwrap();
        assert!(b.poll().is_empty());
    }

    #[test]
    fn unreadable_lines_are_reported_once_and_retried() {
        let mut b = scripted(1000, |i, t| match i {
            0 if t < 400 => Err(std::io::Error::other("ENODEV: the chip went away")),
            0 => Ok(bouncy_press(t, 500, 700)),
            1 => Err(std::io::Error::other("always broken")),
            _ => Ok(false),
        });
        b.join().expect("no panic on read errors");
        assert_eq!(b.poll(), [Button::Capture]);

        let mut s = Sampler::new(
            Levels {
                clock: Arc::new(AtomicU64::new(0)),
                f: |_: usize, _: u64| -> Result<bool, std::io::Error> {
                    Err(std::io::Error::other("gone"))
                },
            },
            &LINES[..1],
        );
        for t in 0..50 {
            assert!(s.sample(t * 5).is_empty());
        }
        assert_eq!(s.reports, 1, "one message for a run of failures");
    }

    #[test]
    fn recovery_is_reported_and_failures_again_once_more() {
        let clock = Arc::new(AtomicU64::new(0));
        let mut s = Sampler::new(
            Levels {
                clock: clock.clone(),
                f: |_: usize, t: u64| -> Result<bool, std::io::Error> {
                    if (100..200).contains(&t) || (400..500).contains(&t) {
                        Err(std::io::Error::other("EIO"))
                    } else {
                        Ok(false)
                    }
                },
            },
            &LINES[..1],
        );
        for t in (0..600).step_by(5) {
            clock.store(t, Ordering::SeqCst);
            assert!(s.sample(t).is_empty());
        }
        // failed, readable again, failed, readable again
        assert_eq!(s.reports, 4);
    }

    /// A ticker that never ends: dropping the buttons stops and joins the thread.
    #[test]
    fn drop_stops_the_thread() {
        struct Forever;
        impl Ticker for Forever {
            fn tick(&mut self) -> Option<u64> {
                std::thread::sleep(Duration::from_millis(1));
                Some(0)
            }
        }
        struct Never;
        impl LineSource for Never {
            fn pressed(&mut self, _: usize) -> Result<bool, std::io::Error> {
                Ok(false)
            }
        }
        let b = GpioButtons::with_source(&LINES, Never, Forever).unwrap();
        let t = Instant::now();
        drop(b);
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn open_names_the_chip() {
        let e = GpioButtons::open(Path::new("/nonexistent/gpiochip9"), &LINES, true)
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/gpiochip9"), "{e}");
    }
}
