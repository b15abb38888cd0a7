//! The panel's description: the controller, the spidev device, the GPIO lines and the
//! geometry, parsed from the `display = "spi:..."` spec string ([`SpiConfig::parse`]).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use mipidsi::{
    models::{ILI9341Rgb565, ST7789},
    options::Rotation,
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
    /// The controller named `s` (case-insensitive), e.g. `st7789` or `ili9341`.
    pub fn parse(s: &str) -> Option<Controller> {
        match s.to_ascii_lowercase().as_str() {
            "st7789" | "st7789v" | "st7789vw" => Some(Controller::St7789),
            "ili9341" => Some(Controller::Ili9341),
            _ => None,
        }
    }

    /// The controller's name for messages, e.g. `ST7789`.
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

    /// The default SPI clock for this controller, in Hz.
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

pub use crate::input::LineRef;

/// One SPI panel: which controller, which devices and lines, and its geometry.
#[derive(Clone, Debug, PartialEq)]
pub struct SpiConfig {
    /// The panel's controller chip.
    pub controller: Controller,
    /// The spidev node, e.g. `/dev/spidev0.0` (bus 0, chip select CE0).
    pub spidev: PathBuf,
    /// The GPIO character device of the lines given by number.
    pub gpiochip: PathBuf,
    /// The label of the GPIO controller the lines must be on (`pinctrl-rp1`); None: any.
    /// `gpio=` in the spec, else the config's `[buttons] controller`.
    pub gpio_controller: Option<String>,
    /// Data/command line: a name (`GPIO24`, found on any chip) or an offset on `gpiochip`
    /// (the BCM number on a Raspberry Pi).
    pub dc: LineRef,
    /// Reset line; without one the panel gets a software reset.
    pub reset: Option<LineRef>,
    /// Backlight line, switched on (high) once the panel is initialised.
    pub backlight: Option<LineRef>,
    /// Width and height as shown, after rotation: the size of the images given to `show`.
    pub width: u32,
    /// Height as shown, after rotation, in pixels.
    pub height: u32,
    /// 0, 90, 180 or 270 (clockwise, mipidsi's rotation).
    pub rotation_deg: u16,
    /// Turn colour inversion on (IPS panels need it).
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
    "dc, reset, bl, chip, gpio, size, rotate, invert, bgr, mirror, offset, hz, chunk, mode";

impl SpiConfig {
    /// A config with the controller's defaults and the given lines.
    pub fn new(controller: Controller, spidev: impl Into<PathBuf>, dc: LineRef) -> SpiConfig {
        let (width, height) = controller.default_size();
        SpiConfig {
            controller,
            spidev: spidev.into(),
            gpiochip: PathBuf::from("/dev/gpiochip0"),
            gpio_controller: None,
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
    /// * `dc=LINE` (required): the data/command GPIO line, by name (`GPIO24`, looked for on
    ///   every chip) or number (`24`, an offset on `chip`).
    /// * `reset=LINE` (or `rst`), `bl=LINE` (or `backlight`): optional lines; `none` for none.
    /// * `chip=/dev/gpiochipN`: the GPIO chip of lines given by number (default
    ///   `/dev/gpiochip0`).
    /// * `gpio=LABEL`: the GPIO controller the lines must be on, e.g. `pinctrl-rp1` (default:
    ///   the config's `[buttons] controller`; `gpio=none` skips the check).
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
                 e.g. spi:st7789:/dev/spidev0.0?dc=24)"
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

        let pairs = query_pairs(spec, query)?;
        let get = |k: &str| pairs.iter().find(|(seen, _)| *seen == k).map(|(_, v)| *v);
        let bad = |k: &str, v: &str, want: &str| {
            anyhow!("SPI panel '{spec}': bad value '{v}' for key '{k}': expected {want}")
        };
        let line = |k: &str| -> Result<Option<LineRef>> {
            match get(k) {
                None => Ok(None),
                Some(v) if v.eq_ignore_ascii_case("none") || v.is_empty() => Ok(None),
                Some(v) => LineRef::parse(v).map(Some).map_err(|_| {
                    bad(
                        k,
                        v,
                        "a GPIO line name or number (e.g. GPIO25 or 25) or 'none'",
                    )
                }),
            }
        };
        let flag = |k: &str, default: bool| -> Result<bool> {
            match get(k) {
                None => Ok(default),
                Some(v) => parse_bool(v).ok_or_else(|| bad(k, v, "0 or 1")),
            }
        };

        let dc = line("dc")?.with_context(|| {
            format!(
                "SPI panel '{spec}': missing dc=<GPIO line> (the data/command pin, e.g. dc=GPIO24)"
            )
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
        if let Some(label) = get("gpio") {
            if label.is_empty() || label.chars().any(char::is_control) {
                return Err(bad("gpio", label, "a GPIO controller's label or 'none'"));
            }
            // An explicit "none" is kept apart from an absent key: it is not replaced by
            // `[buttons] controller`.
            cfg.gpio_controller = Some(label.to_string());
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
        let mut lines = vec![("dc", &self.dc)];
        lines.extend(self.reset.as_ref().map(|l| ("reset", l)));
        lines.extend(self.backlight.as_ref().map(|l| ("bl", l)));
        for (i, (a, la)) in lines.iter().enumerate() {
            if let Some((b, _)) = lines[i + 1..].iter().find(|(_, lb)| lb == la) {
                bail!("GPIO line {la} is used for both {a} and {b}");
            }
        }
        Ok(())
    }

    /// The label of the GPIO controller the lines must be on; None: no check (`gpio=none`,
    /// or no `gpio=` and no `[buttons] controller`).
    pub fn expected_gpio_controller(&self) -> Option<&str> {
        self.gpio_controller
            .as_deref()
            .filter(|l| !l.trim().is_empty() && !l.eq_ignore_ascii_case("none"))
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

    pub(super) fn rotation(&self) -> Rotation {
        match self.rotation_deg {
            90 => Rotation::Deg90,
            180 => Rotation::Deg180,
            270 => Rotation::Deg270,
            _ => Rotation::Deg0,
        }
    }

    pub(super) fn label(&self) -> String {
        format!(
            "{} panel on {}",
            self.controller.name(),
            self.spidev.display()
        )
    }
}

/// The `key=value` pairs of a spec's query, keys in their canonical spelling, each at most once.
fn query_pairs<'a>(spec: &str, query: &'a str) -> Result<Vec<(&'static str, &'a str)>> {
    let mut pairs: Vec<(&'static str, &'a str)> = Vec::new();
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
    Ok(pairs)
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
        "gpio" => "gpio",
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
