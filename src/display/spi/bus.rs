//! The SPI bus as mipidsi's display interface: DC line handling and writes cut to spidev's
//! largest transfer.

use std::fmt;
use std::path::Path;

use anyhow::Result;
use embedded_hal::{digital::OutputPin, spi::SpiDevice};
use mipidsi::interface::{Interface, InterfaceKind};

/// The largest write to spidev: `min(configured, bufsiz)` where `bufsiz_file` (normally
/// [`SPIDEV_BUFSIZ`](super::SPIDEV_BUFSIZ)) holds spidev's limit, rounded down to whole RGB565 pixels.
pub fn effective_chunk(configured: usize, bufsiz_file: &Path) -> usize {
    let bufsiz = std::fs::read_to_string(bufsiz_file)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&b| b > 0);
    let chunk = bufsiz.map_or(configured, |b| configured.min(b));
    (chunk & !1).max(2)
}

/// An error of the panel's SPI bus or DC line.
#[derive(Debug, Clone, PartialEq)]
pub enum BusError {
    /// An SPI write failed; holds the driver's message.
    Spi(String),
    /// Setting the data/command line failed; holds the driver's message.
    Dc(String),
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::Spi(e) => write!(f, "SPI write failed: {e}"),
            BusError::Dc(e) => write!(f, "setting the DC line failed: {e}"),
        }
    }
}

impl std::error::Error for BusError {}

/// mipidsi's display interface over an SPI device and a DC line, with an owned pixel buffer.
/// Every SPI write is at most `chunk` bytes (mipidsi's own `SpiInterface` writes whatever
/// argument slices it is given and needs a borrowed buffer).
pub struct Bus<SPI, DC> {
    spi: SPI,
    dc: DC,
    chunk: usize,
    buf: Vec<u8>,
}

impl<SPI, DC> Bus<SPI, DC>
where
    SPI: SpiDevice,
    SPI::Error: fmt::Display,
    DC: OutputPin,
    DC::Error: fmt::Display,
{
    /// A bus writing at most `chunk` bytes (at least 1) per SPI transfer.
    pub fn new(spi: SPI, dc: DC, chunk: usize) -> Bus<SPI, DC> {
        let chunk = chunk.max(1);
        Bus {
            spi,
            dc,
            chunk,
            buf: Vec::with_capacity(chunk),
        }
    }

    fn write(spi: &mut SPI, chunk: usize, bytes: &[u8]) -> Result<(), BusError> {
        for part in bytes.chunks(chunk) {
            spi.write(part).map_err(|e| BusError::Spi(e.to_string()))?;
        }
        Ok(())
    }

    fn dc(&mut self, high: bool) -> Result<(), BusError> {
        let r = if high {
            self.dc.set_high()
        } else {
            self.dc.set_low()
        };
        r.map_err(|e| BusError::Dc(e.to_string()))
    }
}

impl<SPI, DC> Interface for Bus<SPI, DC>
where
    SPI: SpiDevice,
    SPI::Error: fmt::Display,
    DC: OutputPin,
    DC::Error: fmt::Display,
{
    type Word = u8;
    type Error = BusError;
    const KIND: InterfaceKind = InterfaceKind::Serial4Line;

    fn send_command(&mut self, command: u8, args: &[u8]) -> Result<(), BusError> {
        self.dc(false)?;
        Self::write(&mut self.spi, self.chunk, &[command])?;
        self.dc(true)?;
        Self::write(&mut self.spi, self.chunk, args)
    }

    fn send_pixels<const N: usize>(
        &mut self,
        pixels: impl IntoIterator<Item = [u8; N]>,
    ) -> Result<(), BusError> {
        self.dc(true)?;
        let cap = (self.chunk / N).max(1) * N;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut result = Ok(());
        for p in pixels {
            buf.extend_from_slice(&p);
            if buf.len() + N > cap {
                result = Self::write(&mut self.spi, self.chunk, &buf);
                buf.clear();
                if result.is_err() {
                    break;
                }
            }
        }
        if result.is_ok() && !buf.is_empty() {
            result = Self::write(&mut self.spi, self.chunk, &buf);
        }
        self.buf = buf;
        result
    }

    fn send_repeated_pixel<const N: usize>(
        &mut self,
        pixel: [u8; N],
        count: u32,
    ) -> Result<(), BusError> {
        self.send_pixels((0..count).map(|_| pixel))
    }
}

/// An optional output line (the reset line) as one pin type: no line, no effect.
pub struct OptionalPin<P>(pub Option<P>);

impl<P: OutputPin> embedded_hal::digital::ErrorType for OptionalPin<P> {
    type Error = P::Error;
}

impl<P: OutputPin> OutputPin for OptionalPin<P> {
    fn set_low(&mut self) -> Result<(), P::Error> {
        self.0.as_mut().map_or(Ok(()), |p| p.set_low())
    }

    fn set_high(&mut self) -> Result<(), P::Error> {
        self.0.as_mut().map_or(Ok(()), |p| p.set_high())
    }
}
