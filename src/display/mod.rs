//! Where screens go. One seam, [`Display`]: a screen in, pixels out on one kind of output. The
//! kinds are an HDMI or DSI screen through DRM/KMS ([`drm`], feature `drm`: the kiosk's real
//! screen), a Linux framebuffer ([`fb`]), an SPI TFT panel ([`spi`], feature `spi-panel`:
//! ST7789, ILI9341 over spidev and GPIO lines), PNG files ([`png`]: headless, tests, the sample
//! run), or nothing. Screens themselves are drawn by [`crate::ui`] on any embedded-graphics
//! target; DRM and the framebuffer draw into a [`canvas::Canvas`] in the device's pixel format.
//!
//! [`Output`] is what the kiosk holds: it opens the configured display when the first screen
//! comes, reopens it after a failure on the next screen (a cable that came loose must not stop
//! the kiosk), and reports a display that stays broken once, not at every frame. `auto` is
//! made concrete there, once, when the first screen comes ([`DisplaySpec::resolve`]). Dropping
//! the [`Output`] gives the screen back (the console's mode and picture), so the service loop
//! drops it before the process exits, also on SIGTERM.

pub mod canvas;
pub mod console;
#[cfg(feature = "drm")]
pub mod drm;
pub mod fb;
pub mod png;
#[cfg(feature = "spi-panel")]
pub mod spi;
#[cfg(all(feature = "window", target_os = "linux"))]
pub mod window;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::input::evdev::KeyMap;
use crate::input::Button;
use crate::lang::Language;
use crate::ui::Screen;

/// One kind of screen output.
pub trait Display {
    /// Show `screen`. An error means this display needs opening again.
    fn show(&mut self, screen: &Screen) -> Result<()>;

    /// Presses made on the display itself since the last call (keys typed into a desktop
    /// window, clicks and touches on its on-screen buttons), keys through `keys`.
    fn presses(&mut self, _keys: &KeyMap) -> Vec<Button> {
        Vec::new()
    }

    /// The display has a pointer of its own (a desktop window: mouse or touch), so the screens
    /// draw the on-screen buttons.
    fn pointer(&self) -> bool {
        false
    }
}

/// Where screens go, as configured (`display = "..."`).
#[derive(Clone, Debug, PartialEq)]
pub enum DisplaySpec {
    /// An HDMI or DSI screen through DRM/KMS (`drm`, `drm:/dev/dri/cardN?mode=WxH`).
    #[cfg(feature = "drm")]
    Drm(drm::DrmConfig),
    /// The current screen as `screen.png` in this folder (replaced atomically).
    Png(PathBuf),
    /// A Linux framebuffer device such as `/dev/fb0` (its own size and pixel format).
    Framebuffer(PathBuf),
    /// An SPI TFT panel (ST7789, ILI9341) on spidev + GPIO lines.
    #[cfg(feature = "spi-panel")]
    Spi(spi::SpiConfig),
    /// A fullscreen window on the desktop (Wayland or X11), with its keys, mouse and touch.
    Window,
    /// No screen.
    None,
    /// A desktop window when a desktop session is running (`$WAYLAND_DISPLAY` or `$DISPLAY`),
    /// else DRM if a card has a screen connected when the display is opened, else `/dev/fb0`
    /// if there is one, else PNG files in `cxr-edge-screen`. Parsing never looks at the hardware;
    /// [`DisplaySpec::resolve`] does.
    Auto,
}

/// This build can open desktop windows.
const WINDOWS: bool = cfg!(all(feature = "window", target_os = "linux"));

/// The PNG folder `auto` falls back to.
const AUTO_PNG_DIR: &str = "cxr-edge-screen";

/// The framebuffer `auto` looks for.
const AUTO_FB: &str = "/dev/fb0";

/// What `display` accepts, for error messages.
const DISPLAY_FORMS: &str = "'window', 'drm', 'drm:/dev/dri/cardN?mode=WxH', 'fb:/dev/fbN', 'spi:CONTROLLER:/dev/spidevB.C?dc=N', 'png:DIR', 'none' or 'auto'";

impl DisplaySpec {
    /// `window`, `drm`, `drm:/dev/dri/cardN` (either with `?mode=WxH`), `fb:/dev/fbN`,
    /// `spi:CONTROLLER:/dev/spidevB.C?dc=N...`, `png:DIR`, `none` or `auto`.
    pub fn parse(s: &str) -> Result<DisplaySpec> {
        match s.split_once(':') {
            _ if s == "none" => Ok(DisplaySpec::None),
            _ if s == "auto" => Ok(DisplaySpec::Auto),
            #[cfg(all(feature = "window", target_os = "linux"))]
            _ if s == "window" => Ok(DisplaySpec::Window),
            #[cfg(not(all(feature = "window", target_os = "linux")))]
            _ if s == "window" => {
                bail!("display 'window': this build has no desktop window support (built without the window feature); use 'drm'")
            }
            #[cfg(feature = "drm")]
            _ if s == "drm" || s.starts_with("drm:") => {
                Ok(DisplaySpec::Drm(drm::DrmConfig::parse(s)?))
            }
            #[cfg(not(feature = "drm"))]
            _ if s == "drm" || s.starts_with("drm:") => {
                bail!("display '{s}': this build has no DRM support (built without the drm feature); use 'fb:/dev/fb0'")
            }
            Some(("png", p)) if !p.is_empty() => Ok(DisplaySpec::Png(PathBuf::from(p))),
            Some(("fb", p)) if !p.is_empty() => Ok(DisplaySpec::Framebuffer(PathBuf::from(p))),
            #[cfg(feature = "spi-panel")]
            Some(("spi", _)) => Ok(DisplaySpec::Spi(spi::SpiConfig::parse(s)?)),
            _ => bail!("unknown display '{s}': use {DISPLAY_FORMS}"),
        }
    }

    /// Screens go to a desktop window: `window`, or `auto` in a desktop session (in a build
    /// with window support). The window brings its own keys and pointer.
    pub fn is_desktop_window(&self) -> bool {
        match self {
            DisplaySpec::Window => true,
            DisplaySpec::Auto => WINDOWS && desktop_session().is_some(),
            _ => false,
        }
    }

    /// `auto` made concrete by looking at the machine now, with the choice and its reason
    /// logged; any other spec is itself.
    pub fn resolve(self) -> DisplaySpec {
        if self != DisplaySpec::Auto {
            return self;
        }
        let desktop = desktop_session();
        let (spec, why) = match desktop {
            Some(var) if WINDOWS => (
                DisplaySpec::Window,
                format!("a desktop window (a desktop session is running: ${var} is set)"),
            ),
            _ => {
                if let Some(var) = desktop {
                    tracing::warn!("display auto: a desktop session is running (${var} is set) but this build has no window support; the desktop may hold the screen, and DRM may then be refused");
                }
                auto_choice(drm_card(), Path::new(AUTO_FB).exists())
            }
        };
        tracing::info!("display auto: {why}");
        spec
    }
}

/// The variable that shows a desktop session is running in this process's environment
/// (`WAYLAND_DISPLAY` or `DISPLAY`), if one is set.
fn desktop_session() -> Option<&'static str> {
    ["WAYLAND_DISPLAY", "DISPLAY"]
        .into_iter()
        .find(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

/// The first DRM card with a screen connected, or why there is none.
#[cfg(feature = "drm")]
fn drm_card() -> std::result::Result<PathBuf, String> {
    drm::first_connected_card().map_err(|e| format!("{e:#}"))
}

#[cfg(not(feature = "drm"))]
fn drm_card() -> std::result::Result<PathBuf, String> {
    Err("this build has no DRM support".into())
}

/// What `auto` becomes, given the DRM card found (or why none) and whether `/dev/fb0` exists,
/// with the reason in words.
fn auto_choice(drm_card: std::result::Result<PathBuf, String>, fb0: bool) -> (DisplaySpec, String) {
    match drm_card {
        #[cfg(feature = "drm")]
        Ok(card) => {
            let why = format!("DRM on {} (a screen is connected)", card.display());
            (
                DisplaySpec::Drm(drm::DrmConfig {
                    card: Some(card),
                    mode: None,
                }),
                why,
            )
        }
        Err(no_drm) if fb0 => (
            DisplaySpec::Framebuffer(PathBuf::from(AUTO_FB)),
            format!("framebuffer {AUTO_FB} (no DRM screen: {no_drm})"),
        ),
        Err(no_drm) => (
            DisplaySpec::Png(PathBuf::from(AUTO_PNG_DIR)),
            format!("PNG files in {AUTO_PNG_DIR}/ (no DRM screen: {no_drm}; no {AUTO_FB})"),
        ),
        #[cfg(not(feature = "drm"))]
        Ok(_) => unreachable!("no DRM cards without the drm feature"),
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
        #[cfg(feature = "drm")]
        DisplaySpec::Drm(cfg) => Box::new(drm::DrmScreen::open(&cfg)?),
        #[cfg(feature = "spi-panel")]
        DisplaySpec::Spi(cfg) => Box::new(spi::SpiPanel::open(&cfg)?),
        #[cfg(all(feature = "window", target_os = "linux"))]
        DisplaySpec::Window => Box::new(window::WindowScreen::open()?),
        #[cfg(not(all(feature = "window", target_os = "linux")))]
        DisplaySpec::Window => bail!("this build has no desktop window support"),
        DisplaySpec::Auto => unreachable!("resolve() leaves no auto"),
    })
}

/// The kiosk's screen: the configured display, opened when needed and reopened after a failure.
pub struct Output {
    spec: DisplaySpec,
    size: (u32, u32),
    numbered: bool,
    display: Option<Box<dyn Display>>,
    /// Draw the on-screen buttons (a touch screen is attached).
    touch_buttons: bool,
    /// The key map for keys typed into the display itself (a desktop window).
    keys: KeyMap,
    /// The screens' language (the config's `language`).
    language: Language,
    shown: usize,
    /// The last error, so a display that stays broken is reported once, not every frame.
    last_error: Option<String>,
    /// After a failure, camera preview frames do not reopen the display before this.
    retry_at: Option<Instant>,
}

/// How often preview frames may try to reopen a failed display. Opening a DRM card probes its
/// connectors (reads EDID): at the camera's frame rate that would be most of the kiosk's time
/// while a desktop holds the screen. Other screens always try, so none is lost for this.
const PREVIEW_REOPEN_EVERY: Duration = Duration::from_secs(2);

impl Output {
    /// Screens for `spec`, drawn at `size` where the display does not know its own.
    pub fn new(spec: DisplaySpec, size: (u32, u32)) -> Output {
        Output {
            spec,
            size,
            numbered: false,
            display: None,
            touch_buttons: false,
            keys: KeyMap::default(),
            language: Language::En,
            shown: 0,
            last_error: None,
            retry_at: None,
        }
    }

    /// PNG output: keep each screen as `NNNN-<kind>.png` beside `screen.png`.
    pub fn numbered(mut self, yes: bool) -> Output {
        self.numbered = yes;
        self
    }

    /// Keys typed into the display itself (a desktop window) press buttons through `keys`, as
    /// those of the input devices do.
    pub fn keys(mut self, keys: KeyMap) -> Output {
        self.keys = keys;
        self
    }

    /// Draw every screen in `language` (the config's); screens are English otherwise.
    pub fn in_language(mut self, language: Language) -> Output {
        self.language = language;
        self
    }

    /// The language screens are drawn in; the texts a caller puts on a screen (hints) must be
    /// in it too.
    pub fn language(&self) -> Language {
        self.language
    }

    /// Draw the on-screen buttons ([`crate::ui::TOUCH_KEYS`]) on every screen from the next
    /// one on, or stop drawing them. A display with a pointer of its own (a desktop window)
    /// draws them anyway.
    pub fn set_touch_buttons(&mut self, on: bool) {
        self.touch_buttons = on;
    }

    /// Presses made on the display itself (a desktop window) since the last call.
    pub fn presses(&mut self) -> Vec<Button> {
        match self.display.as_mut() {
            Some(d) => d.presses(&self.keys),
            None => Vec::new(),
        }
    }

    /// Screens shown so far.
    pub fn count(&self) -> usize {
        self.shown
    }

    /// Show `screen`; a failure is reported (once while it lasts) and the display reopened at
    /// the next screen (by a camera preview frame, at most every [`PREVIEW_REOPEN_EVERY`]).
    pub fn show(&mut self, screen: &Screen) {
        let (with_buttons, in_language);
        let pointer = self.display.as_ref().is_some_and(|d| d.pointer());
        let screen = if self.touch_buttons || pointer {
            with_buttons = Screen::WithTouchButtons(screen);
            &with_buttons
        } else {
            screen
        };
        let screen = if self.language != Language::En {
            in_language = Screen::InLanguage(self.language, screen);
            &in_language
        } else {
            screen
        };
        self.shown += 1;
        if self.spec == DisplaySpec::Auto {
            // Once: a display that fails later is reopened as what auto chose, not chosen again.
            self.spec = self.spec.clone().resolve();
        }
        let waiting = self.retry_at.is_some_and(|t| Instant::now() < t);
        if self.display.is_none() && waiting && matches!(screen.base(), Screen::Preview(_)) {
            return;
        }
        let res = match self.display.as_mut() {
            Some(d) => d.show(screen),
            None => open(&self.spec, self.size, self.numbered).and_then(|mut d| {
                let r = d.show(screen);
                self.display = Some(d);
                r
            }),
        };
        match res {
            Ok(()) => {
                self.last_error = None;
                self.retry_at = None;
            }
            Err(e) => {
                self.display = None;
                self.retry_at = Some(Instant::now() + PREVIEW_REOPEN_EVERY);
                let msg = format!("{e:#}");
                if self.last_error.as_deref() != Some(&msg) {
                    tracing::warn!("display: {msg}");
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
        Screen::WithTouchButtons(s) | Screen::InLanguage(_, s) => kind(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_drm_then_fb0_then_png() {
        let none = || Err("no card".to_string());
        #[cfg(feature = "drm")]
        {
            let (spec, why) = auto_choice(Ok(PathBuf::from("/dev/dri/card1")), true);
            assert_eq!(
                spec,
                DisplaySpec::Drm(drm::DrmConfig {
                    card: Some("/dev/dri/card1".into()),
                    mode: None
                })
            );
            assert!(why.contains("DRM on /dev/dri/card1"), "{why}");
        }
        let (spec, why) = auto_choice(none(), true);
        assert_eq!(spec, DisplaySpec::Framebuffer("/dev/fb0".into()));
        assert!(why.contains("no DRM screen: no card"), "{why}");
        let (spec, why) = auto_choice(none(), false);
        assert_eq!(spec, DisplaySpec::Png("cxr-edge-screen".into()));
        assert!(why.contains("no /dev/fb0"), "{why}");
    }

    #[test]
    fn every_concrete_spec_resolves_to_itself() {
        for s in [
            "none",
            "fb:/dev/fb1",
            "png:out",
            "drm:/dev/dri/card0?mode=800x480",
        ] {
            let Ok(spec) = DisplaySpec::parse(s) else {
                continue; // drm without the feature
            };
            assert_eq!(spec.clone().resolve(), spec, "{s}");
        }
    }
}
