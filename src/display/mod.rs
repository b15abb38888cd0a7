//! Where screens go. One seam, [`Display`]: a screen in, pixels out on one kind of output. The
//! kinds are PNG files ([`png`]: headless, tests, the sample run), a Linux framebuffer ([`fb`]),
//! an SPI TFT panel ([`spi`], feature `spi-panel`: ST7789, ILI9341 over spidev and GPIO lines),
//! or nothing. Screens themselves are drawn by [`crate::ui`] on any embedded-graphics target;
//! the framebuffer draws into a [`canvas::Canvas`] in the device's pixel format.
//!
//! [`Output`] is what the kiosk holds: it opens the configured display when the first screen
//! comes, reopens it after a failure on the next screen (a cable that came loose must not stop
//! the kiosk), and reports a display that stays broken once, not at every frame.

pub mod canvas;
pub mod console;
pub mod fb;
pub mod png;
#[cfg(feature = "spi-panel")]
pub mod spi;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::ui::Screen;

/// One kind of screen output.
pub trait Display {
    /// Show `screen`. An error means this display needs opening again.
    fn show(&mut self, screen: &Screen) -> Result<()>;
}

/// Where screens go, as configured (`display = "..."`).
#[derive(Clone, Debug, PartialEq)]
pub enum DisplaySpec {
    /// The current screen as `screen.png` in this folder (replaced atomically).
    Png(PathBuf),
    /// A Linux framebuffer device such as `/dev/fb0` (its own size and pixel format).
    Framebuffer(PathBuf),
    /// An SPI TFT panel (ST7789, ILI9341) on spidev + GPIO lines.
    #[cfg(feature = "spi-panel")]
    Spi(spi::SpiConfig),
    /// No screen.
    None,
    /// `/dev/fb0` if there is one when the display is opened, else PNG files in
    /// `cxr-edge-screen`. Parsing never looks at the hardware; [`DisplaySpec::resolve`] does.
    Auto,
}

impl DisplaySpec {
    /// `png:DIR`, `fb:/dev/fbN`, `spi:CONTROLLER:/dev/spidevB.C?dc=N...`, `none` or `auto`.
    pub fn parse(s: &str) -> Result<DisplaySpec> {
        match s.split_once(':') {
            _ if s == "none" => Ok(DisplaySpec::None),
            _ if s == "auto" => Ok(DisplaySpec::Auto),
            Some(("png", p)) if !p.is_empty() => Ok(DisplaySpec::Png(PathBuf::from(p))),
            Some(("fb", p)) if !p.is_empty() => Ok(DisplaySpec::Framebuffer(PathBuf::from(p))),
            #[cfg(feature = "spi-panel")]
            Some(("spi", _)) => Ok(DisplaySpec::Spi(spi::SpiConfig::parse(s)?)),
            _ => bail!(
                "unknown display '{s}': use 'png:DIR', 'fb:/dev/fbN', 'spi:CONTROLLER:/dev/spidevB.C?dc=N', 'none' or 'auto'"
            ),
        }
    }

    /// `auto` made concrete by looking at the machine now; any other spec is itself.
    pub fn resolve(self) -> DisplaySpec {
        match self {
            DisplaySpec::Auto if Path::new("/dev/fb0").exists() => {
                DisplaySpec::Framebuffer(PathBuf::from("/dev/fb0"))
            }
            DisplaySpec::Auto => DisplaySpec::Png(PathBuf::from("cxr-edge-screen")),
            s => s,
        }
    }
}

/// No screen at all.
struct Nothing;

impl Display for Nothing {
    fn show(&mut self, _: &Screen) -> Result<()> {
        Ok(())
    }
}

/// Open the display `spec` names. `size` is the drawing size for PNG output (framebuffers and
/// panels know their own); `numbered` keeps every PNG screen as a numbered file too.
pub fn open(spec: &DisplaySpec, size: (u32, u32), numbered: bool) -> Result<Box<dyn Display>> {
    Ok(match spec.clone().resolve() {
        DisplaySpec::None => Box::new(Nothing),
        DisplaySpec::Png(dir) => Box::new(png::PngScreens::new(dir, size, numbered)),
        DisplaySpec::Framebuffer(dev) => Box::new(fb::Framebuffer::open(&dev)?),
        #[cfg(feature = "spi-panel")]
        DisplaySpec::Spi(cfg) => Box::new(spi::SpiPanel::open(&cfg)?),
        DisplaySpec::Auto => unreachable!("resolve() leaves no auto"),
    })
}

/// The kiosk's screen: the configured display, opened when needed and reopened after a failure.
pub struct Output {
    spec: DisplaySpec,
    size: (u32, u32),
    numbered: bool,
    display: Option<Box<dyn Display>>,
    shown: usize,
    /// The last error, so a display that stays broken is reported once, not every frame.
    last_error: Option<String>,
}

impl Output {
    /// Screens for `spec`, drawn at `size` where the display does not know its own.
    pub fn new(spec: DisplaySpec, size: (u32, u32)) -> Output {
        Output {
            spec,
            size,
            numbered: false,
            display: None,
            shown: 0,
            last_error: None,
        }
    }

    /// PNG output: keep each screen as `NNNN-<kind>.png` beside `screen.png`.
    pub fn numbered(mut self, yes: bool) -> Output {
        self.numbered = yes;
        self
    }

    /// Screens shown so far.
    pub fn count(&self) -> usize {
        self.shown
    }

    /// Show `screen`; a failure is reported (once while it lasts) and the display reopened at
    /// the next screen.
    pub fn show(&mut self, screen: &Screen) {
        self.shown += 1;
        let res = match self.display.as_mut() {
            Some(d) => d.show(screen),
            None => open(&self.spec, self.size, self.numbered).and_then(|mut d| {
                let r = d.show(screen);
                self.display = Some(d);
                r
            }),
        };
        match res {
            Ok(()) => self.last_error = None,
            Err(e) => {
                self.display = None;
                let msg = format!("{e:#}");
                if self.last_error.as_deref() != Some(&msg) {
                    eprintln!("cxr-edge run: display: {msg}");
                    self.last_error = Some(msg);
                }
            }
        }
    }
}

/// A short name for a screen, for numbered PNG files.
pub fn kind(screen: &Screen) -> &'static str {
    match screen {
        Screen::Waiting { .. } => "waiting",
        Screen::Preview(_) => "preview",
        Screen::Analysing => "analysing",
        Screen::Result(_) => "result",
        Screen::Error { .. } => "error",
    }
}
