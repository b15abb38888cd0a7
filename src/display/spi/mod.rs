//! SPI TFT panels (ST7789, ILI9341) driven from user space: the bus through spidev
//! (`/dev/spidevB.C`), the DC, RESET and backlight lines through the GPIO character device
//! (`/dev/gpiochipN`, uAPI v2: found by name or number and checked against the board's GPIO
//! controller like the buttons' lines, see [`crate::input::gpiochip`]), and the controller
//! protocol from `mipidsi`. No kernel panel driver (fbtft overlay) may claim the same panel.
//!
//! A panel is described by a spec string (the `display` key of the config):
//!
//! ```text
//! spi:st7789:/dev/spidev0.0?dc=GPIO24&reset=GPIO25&bl=GPIO18&size=240x240&rotate=0&invert=1
//! spi:ili9341:/dev/spidev0.0?dc=24&reset=25&bl=18&chip=/dev/gpiochip0&gpio=pinctrl-rp1
//! ```
//!
//! See [`SpiConfig::parse`] for every key and the defaults of each controller.
//!
//! Every write to spidev is at most `min(chunk, /sys/module/spidev/parameters/bufsiz)` bytes:
//! spidev refuses larger transfers with EMSGSIZE ("Message too long").
//!
//! The driver itself ([`Driver`]) is generic over the embedded-hal 1.0 traits (`SpiDevice`,
//! `OutputPin`, `DelayNs`) so that it runs against fake devices in the tests; [`SpiPanel`] is
//! the same driver on the real spidev and GPIO devices.

mod bus;
mod config;
mod driver;
mod lines;

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use embedded_hal::digital::OutputPin;

pub use bus::{effective_chunk, Bus, BusError, OptionalPin};
pub use config::{Controller, LineRef, SpiConfig, DEFAULT_CHUNK, SPIDEV_BUFSIZ};
pub use driver::Driver;
pub use lines::{find_lines, LinePin, PanelLines, PinError};

type Spidev = linux_embedded_hal::SpidevDevice;
type Pin = LinePin;

/// An SPI panel on spidev and GPIO character-device lines.
pub struct SpiPanel {
    driver: Driver<Spidev, Pin, Pin>,
    /// Held so the backlight stays on (a released line may fall back to its default).
    _backlight: Option<Pin>,
    label: String,
}

impl SpiPanel {
    /// Open the spidev device and the GPIO lines, reset and initialise the panel, then
    /// switch the backlight on.
    pub fn open(cfg: &SpiConfig) -> Result<SpiPanel> {
        use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};

        cfg.validate()
            .with_context(|| format!("SPI panel {}", cfg.spidev.display()))?;
        let label = cfg.label();
        let chunk = effective_chunk(cfg.chunk, Path::new(SPIDEV_BUFSIZ));

        let mut spi = Spidev::open(&cfg.spidev).map_err(|e| {
            let io = e.inner();
            let hint = match io.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    " (add the user to the spi group: sudo usermod -aG spi $USER, then log in again)"
                }
                std::io::ErrorKind::NotFound => {
                    " (enable SPI: dtparam=spi=on in /boot/firmware/config.txt, then reboot)"
                }
                _ => "",
            };
            anyhow!("cannot open {}: {io}{hint}", cfg.spidev.display())
        })?;
        let mode = match cfg.spi_mode {
            1 => SpiModeFlags::SPI_MODE_1,
            2 => SpiModeFlags::SPI_MODE_2,
            3 => SpiModeFlags::SPI_MODE_3,
            _ => SpiModeFlags::SPI_MODE_0,
        };
        spi.configure(
            &SpidevOptions::new()
                .bits_per_word(8)
                .max_speed_hz(cfg.hz)
                .mode(mode)
                .build(),
        )
        .with_context(|| {
            format!(
                "cannot set {} to SPI mode {} at {} Hz",
                cfg.spidev.display(),
                cfg.spi_mode,
                cfg.hz
            )
        })?;

        let lines =
            find_lines(&crate::input::gpiochip::SystemChips, cfg).with_context(|| label.clone())?;
        let dc = Pin::request(&lines.dc, "DC", true)?;
        let reset = match &lines.reset {
            Some(l) => Some(Pin::request(l, "RESET", true)?),
            None => None,
        };
        // Off until the panel shows something sensible.
        let mut backlight = match &lines.backlight {
            Some(l) => Some(Pin::request(l, "backlight", false)?),
            None => None,
        };

        let driver = Driver::init(cfg, spi, dc, reset, chunk, &mut linux_embedded_hal::Delay)
            .with_context(|| format!("{label} (DC {})", lines.dc))?;
        if let (Some(pin), Some(l)) = (backlight.as_mut(), &lines.backlight) {
            pin.set_high()
                .map_err(|e| anyhow!("{label}: cannot switch the backlight ({l}) on: {e}"))?;
        }
        Ok(SpiPanel {
            driver,
            _backlight: backlight,
            label,
        })
    }

    /// Width and height of the images [`SpiPanel::show`] takes.
    pub fn size(&self) -> (u32, u32) {
        self.driver.size()
    }

    /// Show a whole screen (an image of exactly [`SpiPanel::size`]).
    pub fn show(&mut self, img: &image::RgbImage) -> Result<()> {
        self.driver.show(img).with_context(|| self.label.clone())
    }
}

impl crate::display::Display for SpiPanel {
    fn show(&mut self, screen: &crate::ui::Screen) -> Result<()> {
        let (w, h) = self.size();
        let img = crate::ui::render(screen, w, h);
        SpiPanel::show(self, &img)
    }
}

#[cfg(test)]
mod tests;
