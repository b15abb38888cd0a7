//! SPI TFT panels (ST7789, ILI9341) driven from user space: the bus through spidev
//! (`/dev/spidevB.C`), the DC, RESET and backlight lines through the GPIO character device
//! (`/dev/gpiochipN`), and the controller protocol from `mipidsi`. No kernel panel driver
//! (fbtft overlay) may claim the same panel.
//!
//! A panel is described by a spec string (the `display` key of the config):
//!
//! ```text
//! spi:st7789:/dev/spidev0.0?dc=25&reset=27&bl=18&size=240x240&rotate=0&invert=1
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

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use embedded_graphics::pixelcolor::Rgb565;
use embedded_hal::{delay::DelayNs, digital::OutputPin, spi::SpiDevice};
use linux_embedded_hal::gpio_cdev;
use mipidsi::{
    interface::{Interface, InterfaceKind},
    models::{ILI9341Rgb565, ST7789},
    options::{ColorInversion, ColorOrder, Orientation, Rotation},
    Builder, Display, InitError,
};

/// spidev's default `bufsiz` (bytes per transfer), and the default [`SpiConfig::chunk`].
pub const DEFAULT_CHUNK: usize = 4096;

/// Where spidev publishes its largest transfer in bytes.
pub const SPIDEV_BUFSIZ: &str = "/sys/module/spidev/parameters/bufsiz";

/// The panel controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Controller {
    /// Sitronix ST7789 (1.3"/1.54" 240x240, 2" 240x320, 1.14" 135x240, 1.69" 240x280 ...).
    St7789,
    /// Ilitek ILI9341 (2.2"-3.2" 240x320).
    Ili9341,
}

impl Controller {
    pub fn parse(s: &str) -> Option<Controller> {
        match s.to_ascii_lowercase().as_str() {
            "st7789" | "st7789v" | "st7789vw" => Some(Controller::St7789),
            "ili9341" => Some(Controller::Ili9341),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Controller::St7789 => "ST7789",
            Controller::Ili9341 => "ILI9341",
        }
    }

    /// The controller's frame memory, columns x rows, in its own (portrait) orientation.
    pub fn memory_size(self) -> (u32, u32) {
        let (w, h) = match self {
            Controller::St7789 => ST7789_MEMORY,
            Controller::Ili9341 => ILI9341_MEMORY,
        };
        (u32::from(w), u32::from(h))
    }

    /// The usual panel for this controller, as shown (after rotation).
    pub fn default_size(self) -> (u32, u32) {
        match self {
            Controller::St7789 => (240, 240),
            Controller::Ili9341 => (320, 240),
        }
    }

    /// IPS ST7789 panels need colour inversion on; ILI9341 (TN) panels do not.
    pub fn default_invert(self) -> bool {
        matches!(self, Controller::St7789)
    }

    /// ILI9341 modules are wired BGR; ST7789 modules RGB.
    pub fn default_bgr(self) -> bool {
        matches!(self, Controller::Ili9341)
    }

    /// ILI9341 modules need the column order reversed (MADCTL MX at 0 degrees, as the
    /// Adafruit and fbtft drivers do); ST7789 modules do not.
    pub fn default_mirror(self) -> bool {
        matches!(self, Controller::Ili9341)
    }

    pub fn default_hz(self) -> u32 {
        match self {
            Controller::St7789 => 40_000_000,
            Controller::Ili9341 => 32_000_000,
        }
    }
}

const ST7789_MEMORY: (u16, u16) = {
    use mipidsi::models::Model;
    ST7789::FRAMEBUFFER_SIZE
};
const ILI9341_MEMORY: (u16, u16) = {
    use mipidsi::models::Model;
    ILI9341Rgb565::FRAMEBUFFER_SIZE
};

/// One SPI panel: which controller, which devices and lines, and its geometry.
#[derive(Clone, Debug, PartialEq)]
pub struct SpiConfig {
    pub controller: Controller,
    /// The spidev node, e.g. `/dev/spidev0.0` (bus 0, chip select CE0).
    pub spidev: PathBuf,
    /// The GPIO character device holding the DC/RESET/backlight lines.
    pub gpiochip: PathBuf,
    /// Data/command line (offset on `gpiochip`; BCM number on a Raspberry Pi).
    pub dc: u32,
    /// Reset line; without one the panel gets a software reset.
    pub reset: Option<u32>,
    /// Backlight line, switched on (high) once the panel is initialised.
    pub backlight: Option<u32>,
    /// Width and height as shown, after rotation: the size of the images given to `show`.
    pub width: u32,
    pub height: u32,
    /// 0, 90, 180 or 270 (clockwise, mipidsi's rotation).
    pub rotation_deg: u16,
    pub invert_colors: bool,
    /// Blue-green-red subpixel order.
    pub bgr: bool,
    /// SPI clock in Hz.
    pub hz: u32,
    /// Largest write to spidev in bytes (also capped by spidev's bufsiz).
    pub chunk: usize,
    /// Mirror the picture left-right (reverse the column order at 0 degrees).
    pub mirror: bool,
    /// Where the visible panel starts in the controller memory (column, row; unrotated).
    /// `None`: 0,0 for full-height panels and the 240x240 ST7789, centred otherwise.
    pub offset: Option<(u16, u16)>,
    /// SPI mode 0-3 (3 for ST7789 modules without a CS pin).
    pub spi_mode: u8,
}

const KEYS: &str =
    "dc, reset, bl, chip, size, rotate, invert, bgr, mirror, offset, hz, chunk, mode";

impl SpiConfig {
    /// A config with the controller's defaults and the given lines.
    pub fn new(controller: Controller, spidev: impl Into<PathBuf>, dc: u32) -> SpiConfig {
        let (width, height) = controller.default_size();
        SpiConfig {
            controller,
            spidev: spidev.into(),
            gpiochip: PathBuf::from("/dev/gpiochip0"),
            dc,
            reset: None,
            backlight: None,
            width,
            height,
            rotation_deg: default_rotation(controller, width, height),
            invert_colors: controller.default_invert(),
            bgr: controller.default_bgr(),
            hz: controller.default_hz(),
            chunk: DEFAULT_CHUNK,
            mirror: controller.default_mirror(),
            offset: None,
            spi_mode: 0,
        }
    }

    /// Parse `spi:CONTROLLER:SPIDEV?key=value&key=value...` (the leading `spi:` is optional).
    ///
    /// * CONTROLLER: `st7789` or `ili9341`.
    /// * SPIDEV: `/dev/spidevB.C` (`spidevB.C` alone means `/dev/spidevB.C`; empty:
    ///   `/dev/spidev0.0`).
    /// * `dc=N` (required): the data/command GPIO line.
    /// * `reset=N` (or `rst`), `bl=N` (or `backlight`): optional lines; `none` for none.
    /// * `chip=/dev/gpiochipN`: the GPIO chip of those lines (default `/dev/gpiochip0`).
    /// * `size=WxH`: as shown, after rotation (ST7789 240x240, ILI9341 320x240).
    /// * `rotate=0|90|180|270`: default 0 when WxH fits the controller's portrait memory
    ///   (240x320), else 90.
    /// * `invert=0|1` (ST7789 1, ILI9341 0), `bgr=0|1` (ST7789 0, ILI9341 1), `mirror=0|1`
    ///   (ST7789 0, ILI9341 1).
    /// * `offset=X,Y`: first visible column and row of the controller memory, unrotated
    ///   (default: 0,0 for 240x320 and 240x240 panels, centred for the rest, e.g. 52,40 for
    ///   135x240).
    /// * `hz=N` (also `40M`, `500k`): SPI clock (ST7789 40 MHz, ILI9341 32 MHz).
    /// * `chunk=N`: largest spidev write in bytes (default 4096, spidev's default bufsiz).
    /// * `mode=0..3`: SPI mode (default 0).
    pub fn parse(spec: &str) -> Result<SpiConfig> {
        let body = spec.strip_prefix("spi:").unwrap_or(spec);
        let (head, query) = match body.split_once('?') {
            Some((h, q)) => (h, q),
            None => (body, ""),
        };
        let (controller, device) = head.split_once(':').unwrap_or((head, ""));
        let controller = Controller::parse(controller.trim()).with_context(|| {
            format!(
                "SPI panel '{spec}': unknown controller '{controller}' (use st7789 or ili9341, \
                 e.g. spi:st7789:/dev/spidev0.0?dc=25)"
            )
        })?;
        let device = device.trim();
        let spidev = if device.is_empty() {
            PathBuf::from("/dev/spidev0.0")
        } else if device.starts_with("spidev") {
            Path::new("/dev").join(device)
        } else {
            PathBuf::from(device)
        };

        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for item in query.split('&').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item.split_once('=').with_context(|| {
                format!("SPI panel '{spec}': '{item}' is not key=value (keys: {KEYS})")
            })?;
            let k = canonical_key(k.trim()).with_context(|| {
                format!(
                    "SPI panel '{spec}': unknown key '{}' (keys: {KEYS})",
                    k.trim()
                )
            })?;
            if pairs.iter().any(|(seen, _)| *seen == k) {
                bail!("SPI panel '{spec}': key '{k}' given twice");
            }
            pairs.push((k, v.trim()));
        }
        let get = |k: &str| pairs.iter().find(|(seen, _)| *seen == k).map(|(_, v)| *v);
        let bad = |k: &str, v: &str, want: &str| {
            anyhow!("SPI panel '{spec}': bad value '{v}' for key '{k}': expected {want}")
        };
        let line = |k: &str| -> Result<Option<u32>> {
            match get(k) {
                None => Ok(None),
                Some(v) if v.eq_ignore_ascii_case("none") || v.is_empty() => Ok(None),
                Some(v) => v
                    .parse::<u32>()
                    .map(Some)
                    .map_err(|_| bad(k, v, "a GPIO line number (e.g. 25) or 'none'")),
            }
        };
        let flag = |k: &str, default: bool| -> Result<bool> {
            match get(k) {
                None => Ok(default),
                Some(v) => parse_bool(v).ok_or_else(|| bad(k, v, "0 or 1")),
            }
        };

        let dc = line("dc")?.with_context(|| {
            format!("SPI panel '{spec}': missing dc=<GPIO line> (the data/command pin)")
        })?;
        let mut cfg = SpiConfig::new(controller, spidev, dc);
        cfg.reset = line("reset")?;
        cfg.backlight = line("bl")?;
        if let Some(chip) = get("chip") {
            if chip.is_empty() {
                return Err(bad("chip", chip, "a GPIO chip such as /dev/gpiochip0"));
            }
            cfg.gpiochip = if chip.starts_with("gpiochip") {
                Path::new("/dev").join(chip)
            } else {
                PathBuf::from(chip)
            };
        }
        if let Some(v) = get("size") {
            let (w, h) = parse_pair(v, 'x')
                .filter(|&(w, h)| w > 0 && h > 0)
                .ok_or_else(|| bad("size", v, "WIDTHxHEIGHT, e.g. 240x240"))?;
            cfg.width = w;
            cfg.height = h;
        }
        cfg.rotation_deg = match get("rotate") {
            None => default_rotation(controller, cfg.width, cfg.height),
            Some(v) => match v.parse::<u16>() {
                Ok(d @ (0 | 90 | 180 | 270)) => d,
                _ => return Err(bad("rotate", v, "0, 90, 180 or 270")),
            },
        };
        cfg.invert_colors = flag("invert", cfg.invert_colors)?;
        cfg.bgr = flag("bgr", cfg.bgr)?;
        cfg.mirror = flag("mirror", cfg.mirror)?;
        if let Some(v) = get("offset") {
            let (x, y) = parse_pair(v, ',')
                .or_else(|| parse_pair(v, 'x'))
                .and_then(|(x, y)| Some((u16::try_from(x).ok()?, u16::try_from(y).ok()?)))
                .ok_or_else(|| bad("offset", v, "COLUMN,ROW, e.g. 52,40"))?;
            cfg.offset = Some((x, y));
        }
        if let Some(v) = get("hz") {
            cfg.hz = parse_hz(v)
                .filter(|&hz| (100_000..=125_000_000).contains(&hz))
                .ok_or_else(|| bad("hz", v, "a clock of 100k to 125M Hz, e.g. 40000000 or 40M"))?;
        }
        if let Some(v) = get("chunk") {
            cfg.chunk = v
                .parse::<usize>()
                .ok()
                .filter(|&c| c >= 64)
                .ok_or_else(|| bad("chunk", v, "a byte count of at least 64, e.g. 4096"))?;
        }
        if let Some(v) = get("mode") {
            cfg.spi_mode = match v.parse::<u8>() {
                Ok(m @ 0..=3) => m,
                _ => return Err(bad("mode", v, "an SPI mode 0, 1, 2 or 3")),
            };
        }
        cfg.validate()
            .with_context(|| format!("SPI panel '{spec}'"))?;
        Ok(cfg)
    }

    /// Check the geometry against the controller memory and that no line is used twice.
    pub fn validate(&self) -> Result<()> {
        let (mw, mh) = self.controller.memory_size();
        let (nw, nh) = self.native_size();
        if nw > mw || nh > mh {
            let hint = if nh <= mw && nw <= mh {
                " (a landscape panel: use rotate=90 or rotate=270)"
            } else {
                ""
            };
            bail!(
                "size {}x{} at rotate={} does not fit the {}'s {mw}x{mh} memory{hint}",
                self.width,
                self.height,
                self.rotation_deg,
                self.controller.name()
            );
        }
        let (ox, oy) = self.offset_or_default();
        if u32::from(ox) + nw > mw || u32::from(oy) + nh > mh {
            bail!(
                "offset={ox},{oy} puts the {nw}x{nh} panel outside the {}'s {mw}x{mh} memory",
                self.controller.name()
            );
        }
        if !matches!(self.rotation_deg, 0 | 90 | 180 | 270) {
            bail!("rotate={} is not 0, 90, 180 or 270", self.rotation_deg);
        }
        if self.spi_mode > 3 {
            bail!("SPI mode {} is not 0-3", self.spi_mode);
        }
        if self.chunk < 2 {
            bail!("chunk={} is too small", self.chunk);
        }
        let mut lines = vec![("dc", self.dc)];
        lines.extend(self.reset.map(|l| ("reset", l)));
        lines.extend(self.backlight.map(|l| ("bl", l)));
        for (i, (a, la)) in lines.iter().enumerate() {
            if let Some((b, _)) = lines[i + 1..].iter().find(|(_, lb)| lb == la) {
                bail!("GPIO line {la} is used for both {a} and {b}");
            }
        }
        Ok(())
    }

    /// Width and height in the controller's own orientation (before rotation).
    pub fn native_size(&self) -> (u32, u32) {
        if matches!(self.rotation_deg, 90 | 270) {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }

    /// [`SpiConfig::offset`], or the default for this panel size.
    pub fn offset_or_default(&self) -> (u16, u16) {
        if let Some(o) = self.offset {
            return o;
        }
        let (mw, mh) = self.controller.memory_size();
        let (nw, nh) = self.native_size();
        if self.controller == Controller::St7789 && (nw, nh) == (240, 240) {
            // The 240x240 glass sits on rows 0-239 of the 240x320 memory.
            return (0, 0);
        }
        let centre = |m: u32, n: u32| u16::try_from(m.saturating_sub(n) / 2).unwrap_or(0);
        (centre(mw, nw), centre(mh, nh))
    }

    fn rotation(&self) -> Rotation {
        match self.rotation_deg {
            90 => Rotation::Deg90,
            180 => Rotation::Deg180,
            270 => Rotation::Deg270,
            _ => Rotation::Deg0,
        }
    }

    fn label(&self) -> String {
        format!(
            "{} panel on {}",
            self.controller.name(),
            self.spidev.display()
        )
    }
}

fn default_rotation(controller: Controller, width: u32, height: u32) -> u16 {
    let (mw, mh) = controller.memory_size();
    if width <= mw && height <= mh {
        0
    } else {
        90
    }
}

fn canonical_key(k: &str) -> Option<&'static str> {
    Some(match k.to_ascii_lowercase().as_str() {
        "dc" => "dc",
        "reset" | "rst" => "reset",
        "bl" | "backlight" => "bl",
        "chip" | "gpiochip" => "chip",
        "size" => "size",
        "rotate" | "rotation" => "rotate",
        "invert" => "invert",
        "bgr" => "bgr",
        "mirror" => "mirror",
        "offset" => "offset",
        "hz" | "speed" => "hz",
        "chunk" => "chunk",
        "mode" => "mode",
        _ => return None,
    })
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_pair(v: &str, sep: char) -> Option<(u32, u32)> {
    let (a, b) = v.split_once(sep)?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

fn parse_hz(v: &str) -> Option<u32> {
    let v = v.trim();
    let (num, mult) = if let Some(n) = v.strip_suffix(['M', 'm']) {
        (n, 1_000_000)
    } else if let Some(n) = v.strip_suffix(['k', 'K']) {
        (n, 1_000)
    } else {
        (v, 1)
    };
    num.parse::<u32>().ok()?.checked_mul(mult)
}

/// The largest write to spidev: `min(configured, bufsiz)` where `bufsiz_file` (normally
/// [`SPIDEV_BUFSIZ`]) holds spidev's limit, rounded down to whole RGB565 pixels.
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
    Spi(String),
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
#[path = "spi_tests.rs"]
mod tests;
