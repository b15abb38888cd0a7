//! Where the kiosk's screens go, whatever the display: PNG files, the Linux framebuffer, an SPI
//! panel, or nowhere. A display that fails is reopened on the next screen; the kiosk never
//! stops because a cable came loose.

use std::path::PathBuf;

use crate::ui::{self, Screen};

use super::analyse::write_png_atomically;
use super::config::DisplaySpec;

pub struct ScreenOut {
    spec: DisplaySpec,
    /// Panel size for PNG output (framebuffers and panels know their own).
    size: (u32, u32),
    fb: Option<crate::display::fb::Framebuffer>,
    #[cfg(feature = "spi-panel")]
    spi: Option<crate::display::spi::SpiPanel>,
    /// PNG output: also keep every screen as a numbered file (scripted runs, demos).
    numbered: bool,
    shown: usize,
    /// The last error, so a display that stays broken is reported once, not every frame.
    last_error: Option<String>,
    /// When the PNG preview was last written (see `PNG_PREVIEW_EVERY`).
    last_png_preview: Option<std::time::Instant>,
}

/// A camera preview as PNG files at the camera's frame rate would wear out an SD card for
/// nothing; unless every screen is kept (scripted runs), it is rewritten at most this often.
const PNG_PREVIEW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl ScreenOut {
    pub fn new(spec: DisplaySpec, size: (u32, u32)) -> ScreenOut {
        ScreenOut {
            spec,
            size,
            fb: None,
            #[cfg(feature = "spi-panel")]
            spi: None,
            numbered: false,
            shown: 0,
            last_error: None,
            last_png_preview: None,
        }
    }

    /// Keep each screen as `NNNN-<kind>.png` beside `screen.png`.
    pub fn numbered(mut self, yes: bool) -> ScreenOut {
        self.numbered = yes;
        self
    }

    /// Screens shown so far.
    pub fn count(&self) -> usize {
        self.shown
    }

    fn report(&mut self, e: anyhow::Error) {
        let msg = format!("{e:#}");
        if self.last_error.as_deref() != Some(&msg) {
            eprintln!("cxr-edge run: display: {msg}");
            self.last_error = Some(msg);
        }
    }

    pub fn show(&mut self, screen: &Screen) {
        self.shown += 1;
        let res = match self.spec.clone() {
            DisplaySpec::None => Ok(()),
            DisplaySpec::Png(dir) => self.show_png(dir, screen),
            DisplaySpec::Framebuffer(dev) => self.show_fb(dev, screen),
            #[cfg(feature = "spi-panel")]
            DisplaySpec::Spi(cfg) => self.show_spi(&cfg, screen),
        };
        match res {
            Ok(()) => self.last_error = None,
            Err(e) => self.report(e),
        }
    }

    fn show_png(&mut self, dir: PathBuf, screen: &Screen) -> anyhow::Result<()> {
        if matches!(screen, Screen::Preview(_)) && !self.numbered {
            let now = std::time::Instant::now();
            if self
                .last_png_preview
                .is_some_and(|t| now.duration_since(t) < PNG_PREVIEW_EVERY)
            {
                return Ok(());
            }
            self.last_png_preview = Some(now);
        }
        let (w, h) = self.size;
        let img = ui::render(screen, w, h);
        std::fs::create_dir_all(&dir)?;
        if self.numbered {
            let name = format!("{:04}-{}.png", self.shown, kind(screen));
            write_png_atomically(&img, &dir.join(name))?;
        }
        write_png_atomically(&img, &dir.join("screen.png"))
    }

    fn show_fb(&mut self, dev: PathBuf, screen: &Screen) -> anyhow::Result<()> {
        if self.fb.is_none() {
            self.fb = Some(crate::display::fb::Framebuffer::open(&dev)?);
        }
        let fb = self.fb.as_mut().expect("opened above");
        let _ = ui::draw(screen, fb);
        if let Err(e) = fb.flush() {
            self.fb = None; // reopen next time
            return Err(e);
        }
        Ok(())
    }

    #[cfg(feature = "spi-panel")]
    fn show_spi(
        &mut self,
        cfg: &crate::display::spi::SpiConfig,
        screen: &Screen,
    ) -> anyhow::Result<()> {
        if self.spi.is_none() {
            self.spi = Some(crate::display::spi::SpiPanel::open(cfg)?);
        }
        let panel = self.spi.as_mut().expect("opened above");
        let (w, h) = panel.size();
        let img = ui::render(screen, w, h);
        if let Err(e) = panel.show(&img) {
            self.spi = None;
            return Err(e);
        }
        Ok(())
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
