//! The controller protocol (reset, initialisation, pixel writes) on any embedded-hal SPI device,
//! DC and reset line, so that the tests run it against fakes.

use std::fmt;

use anyhow::{anyhow, bail, Result};
use embedded_graphics::pixelcolor::Rgb565;
use embedded_hal::{delay::DelayNs, digital::OutputPin, spi::SpiDevice};
use mipidsi::{
    interface::Interface,
    models::{ILI9341Rgb565, ST7789},
    options::{ColorInversion, ColorOrder, Orientation},
    Builder, Display, InitError,
};

use super::bus::{Bus, BusError, OptionalPin};
use super::config::{Controller, SpiConfig};

enum Model<SPI, DC, RST>
where
    SPI: SpiDevice,
    SPI::Error: fmt::Display,
    DC: OutputPin,
    DC::Error: fmt::Display,
    RST: OutputPin,
{
    St7789(Display<Bus<SPI, DC>, ST7789, OptionalPin<RST>>),
    Ili9341(Display<Bus<SPI, DC>, ILI9341Rgb565, OptionalPin<RST>>),
}

/// The panel driver on any embedded-hal SPI device, DC and reset line.
pub struct Driver<SPI, DC, RST>
where
    SPI: SpiDevice,
    SPI::Error: fmt::Display,
    DC: OutputPin,
    DC::Error: fmt::Display,
    RST: OutputPin,
{
    model: Model<SPI, DC, RST>,
    width: u32,
    height: u32,
}

impl<SPI, DC, RST> Driver<SPI, DC, RST>
where
    SPI: SpiDevice,
    SPI::Error: fmt::Display,
    DC: OutputPin,
    DC::Error: fmt::Display,
    RST: OutputPin,
    RST::Error: fmt::Display,
{
    /// Reset (the reset line, else a software reset) and initialise the panel: sleep out,
    /// 16-bit pixels (COLMOD 0x55), orientation and colour order (MADCTL), inversion,
    /// display on. Writes are at most `chunk` bytes.
    pub fn init(
        cfg: &SpiConfig,
        spi: SPI,
        dc: DC,
        reset: Option<RST>,
        chunk: usize,
        delay: &mut impl DelayNs,
    ) -> Result<Self> {
        cfg.validate()?;
        let mut bus = Bus::new(spi, dc, chunk);
        if reset.is_none() {
            // SWRESET; mipidsi waits at least 5 ms (ILI9341) / 150 ms (ST7789) after it.
            bus.send_command(0x01, &[]).map_err(|e| anyhow!(e))?;
        }
        let rst = OptionalPin(reset);
        let (nw, nh) = cfg.native_size();
        let (ox, oy) = cfg.offset_or_default();
        let orientation = Orientation {
            rotation: cfg.rotation(),
            mirrored: cfg.mirror,
        };
        let inversion = if cfg.invert_colors {
            ColorInversion::Inverted
        } else {
            ColorInversion::Normal
        };
        let order = if cfg.bgr {
            ColorOrder::Bgr
        } else {
            ColorOrder::Rgb
        };
        // Checked by validate(): both fit the 240x320 memory.
        let (nw, nh) = (nw as u16, nh as u16);
        // The same settings for either controller; only the mipidsi model type differs.
        macro_rules! build {
            ($model:expr) => {
                Builder::new($model, bus)
                    .reset_pin(rst)
                    .display_size(nw, nh)
                    .display_offset(ox, oy)
                    .orientation(orientation)
                    .invert_colors(inversion)
                    .color_order(order)
                    .init(delay)
                    .map_err(init_error)?
            };
        }
        let model = match cfg.controller {
            Controller::St7789 => Model::St7789(build!(ST7789)),
            Controller::Ili9341 => Model::Ili9341(build!(ILI9341Rgb565)),
        };
        Ok(Driver {
            model,
            width: cfg.width,
            height: cfg.height,
        })
    }

    /// Width and height of the panel as shown, in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Write a whole screen: column/row address window, memory write, then
    /// width x height RGB565 pixels, big-endian.
    pub fn show(&mut self, img: &image::RgbImage) -> Result<()> {
        if img.dimensions() != (self.width, self.height) {
            bail!(
                "image is {}x{}, the panel shows {}x{}",
                img.width(),
                img.height(),
                self.width,
                self.height
            );
        }
        let (ex, ey) = ((self.width - 1) as u16, (self.height - 1) as u16);
        let pixels = img
            .pixels()
            .map(|p| Rgb565::new(p[0] >> 3, p[1] >> 2, p[2] >> 3));
        let r = match &mut self.model {
            Model::St7789(d) => d.set_pixels(0, 0, ex, ey, pixels),
            Model::Ili9341(d) => d.set_pixels(0, 0, ex, ey, pixels),
        };
        r.map_err(|e| anyhow!(e))
    }
}

fn init_error<P: fmt::Display>(e: InitError<BusError, P>) -> anyhow::Error {
    match e {
        InitError::Interface(e) => anyhow!(e).context("initialising the panel"),
        InitError::ResetPin(e) => anyhow!("setting the reset line failed: {e}"),
        InitError::InvalidConfiguration(c) => anyhow!("invalid panel configuration: {c:?}"),
    }
}
