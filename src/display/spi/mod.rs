//! SPI TFT panels (ST7789, ILI9341) driven from user space: the bus through spidev
//! (`/dev/spidevB.C`), the DC, RESET and backlight lines through the GPIO character device
//! (`/dev/gpiochipN`), and the controller protocol from `mipidsi`. No kernel panel driver
//! (fbtft overlay) may claim the same panel.
//!
//! A panel is described by a spec string (the `display` key of the config):
//!
//! ```text
//! spi:st7789:/dev/spidev0.0?dc=24&reset=25&bl=18&size=240x240&rotate=0&invert=1
//! spi:ili9341:/dev/spidev0.0?dc=24&reset=25&bl=18&chip=/dev/gpiochip0&hz=32000000
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

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use embedded_hal::digital::OutputPin;
use linux_embedded_hal::gpio_cdev;

pub use bus::{effective_chunk, Bus, BusError, OptionalPin};
pub use config::{Controller, SpiConfig, DEFAULT_CHUNK, SPIDEV_BUFSIZ};
pub use driver::Driver;

type Spidev = linux_embedded_hal::SpidevDevice;
type Pin = linux_embedded_hal::CdevPin;

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

        let mut chip = gpio_chip(&cfg.gpiochip)?;
        let dc = output_line(&mut chip, &cfg.gpiochip, cfg.dc, "DC", true)?;
        let reset = match cfg.reset {
            Some(l) => Some(output_line(&mut chip, &cfg.gpiochip, l, "RESET", true)?),
            None => None,
        };
        // Off until the panel shows something sensible.
        let mut backlight = match cfg.backlight {
            Some(l) => Some(output_line(
                &mut chip,
                &cfg.gpiochip,
                l,
                "backlight",
                false,
            )?),
            None => None,
        };

        let driver = Driver::init(cfg, spi, dc, reset, chunk, &mut linux_embedded_hal::Delay)
            .with_context(|| format!("{label} (dc={}, reset={:?})", cfg.dc, cfg.reset))?;
        if let (Some(pin), Some(l)) = (backlight.as_mut(), cfg.backlight) {
            pin.set_high().map_err(|e| {
                anyhow!("{label}: cannot switch the backlight (GPIO line {l}) on: {e}")
            })?;
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

fn permission_hint(e: &(dyn std::error::Error + 'static), group: &str) -> String {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return format!(
                    " (add the user to the {group} group: sudo usermod -aG {group} $USER, then log in again)"
                );
            }
        }
        let text = err.to_string();
        if text.contains("EACCES") || text.contains("EPERM") {
            return format!(
                " (add the user to the {group} group: sudo usermod -aG {group} $USER, then log in again)"
            );
        }
        if text.contains("EBUSY") {
            return " (the line is in use: another program, or a kernel overlay such as fbtft \
                    for this panel)"
                .to_string();
        }
        cur = err.source();
    }
    String::new()
}

fn gpio_chip(path: &Path) -> Result<gpio_cdev::Chip> {
    gpio_cdev::Chip::new(path).map_err(|e| {
        let hint = permission_hint(&e, "gpio");
        anyhow!("cannot open GPIO chip {}: {e}{hint}", path.display())
    })
}

fn output_line(
    chip: &mut gpio_cdev::Chip,
    chip_path: &Path,
    line: u32,
    what: &str,
    high: bool,
) -> Result<Pin> {
    use gpio_cdev::LineRequestFlags;
    let fail = |e: &gpio_cdev::Error| {
        let hint = permission_hint(e, "gpio");
        anyhow!(
            "cannot use GPIO line {line} of {} as the panel's {what} output: {e}{hint}",
            chip_path.display()
        )
    };
    let handle = chip
        .get_line(line)
        .and_then(|l| l.request(LineRequestFlags::OUTPUT, u8::from(high), "cxr-edge panel"))
        .map_err(|e| fail(&e))?;
    Pin::new(handle).map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests;
