//! Screens as PNG files: `screen.png` in a folder, replaced atomically at every screen (and, for
//! scripted runs and demos, every screen kept as `NNNN-<kind>.png` too). Headless machines,
//! tests and the sample run use it; a person can open the file or serve it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{kind, Display};
use crate::files::write_png_atomically;
use crate::ui::{self, Screen};

/// A camera preview as PNG files at the camera's frame rate would wear out an SD card for
/// nothing; unless every screen is kept (scripted runs), it is rewritten at most this often.
const PREVIEW_EVERY: Duration = Duration::from_secs(1);

/// PNG files in a folder.
pub struct PngScreens {
    dir: PathBuf,
    size: (u32, u32),
    numbered: bool,
    shown: usize,
    last_preview: Option<Instant>,
}

impl PngScreens {
    /// Screens of `size` pixels into `dir` (created when the first screen is written).
    pub fn new(dir: PathBuf, size: (u32, u32), numbered: bool) -> PngScreens {
        PngScreens {
            dir,
            size,
            numbered,
            shown: 0,
            last_preview: None,
        }
    }
}

impl Display for PngScreens {
    fn show(&mut self, screen: &Screen) -> Result<()> {
        self.shown += 1;
        if matches!(screen.base(), Screen::Preview(_)) && !self.numbered {
            let now = Instant::now();
            if self
                .last_preview
                .is_some_and(|t| now.duration_since(t) < PREVIEW_EVERY)
            {
                return Ok(());
            }
            self.last_preview = Some(now);
        }
        let (w, h) = self.size;
        let img = ui::render(screen, w, h);
        std::fs::create_dir_all(&self.dir)?;
        if self.numbered {
            let name = format!("{:04}-{}.png", self.shown, kind(screen));
            write_png_atomically(&img, &self.dir.join(name))?;
        }
        write_png_atomically(&img, &self.dir.join("screen.png"))
    }
}
