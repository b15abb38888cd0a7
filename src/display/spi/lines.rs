//! The panel's DC, RESET and backlight lines: found by name or number and checked against the
//! board's GPIO controller ([`find_lines`], through [`crate::input::gpiochip`] as the buttons'
//! lines are), then driven as embedded-hal 1.0 output pins over gpiocdev (GPIO uAPI v2) line
//! requests ([`LinePin`]).

use std::fmt;

use anyhow::{anyhow, Context, Result};
use embedded_hal::digital::{ErrorKind, ErrorType, OutputPin};
use gpiocdev::line::Value;
use gpiocdev::Request;

use super::SpiConfig;
use crate::input::gpiochip::{self, access_hint, Chips, Found};

/// Where the panel's lines are.
#[derive(Debug)]
pub struct PanelLines {
    /// The data/command line.
    pub dc: Found,
    /// The reset line, if any.
    pub reset: Option<Found>,
    /// The backlight line, if any.
    pub backlight: Option<Found>,
}

/// Find the panel's lines on `chips` (names on every chip, numbers on `cfg.gpiochip`) and
/// check them against the expected GPIO controller.
pub fn find_lines(chips: &dyn Chips, cfg: &SpiConfig) -> Result<PanelLines> {
    let mut wanted = vec![("panel's DC line".to_string(), cfg.dc.clone())];
    wanted.extend(
        cfg.reset
            .clone()
            .map(|l| ("panel's RESET line".to_string(), l)),
    );
    wanted.extend(
        cfg.backlight
            .clone()
            .map(|l| ("panel's backlight".to_string(), l)),
    );
    let mut found = gpiochip::find_lines(
        chips,
        &wanted,
        &cfg.gpiochip,
        cfg.expected_gpio_controller(),
        "the panel's gpio= key or [buttons] controller",
    )?
    .into_iter();
    let mut next = || found.next().context("a panel line was not looked up");
    Ok(PanelLines {
        dc: next()?,
        reset: cfg.reset.as_ref().map(|_| next()).transpose()?,
        backlight: cfg.backlight.as_ref().map(|_| next()).transpose()?,
    })
}

/// One requested output line.
pub struct LinePin {
    request: Request,
    offset: u32,
}

impl LinePin {
    /// Request `line` as an output for the panel's `what` (DC, RESET, backlight), at first
    /// `high` or low.
    pub fn request(line: &Found, what: &str, high: bool) -> Result<LinePin> {
        let value = if high { Value::Active } else { Value::Inactive };
        let request = Request::builder()
            .on_chip(&line.chip)
            .with_consumer("cxr-edge panel")
            .with_line(line.offset)
            .as_output(value)
            .request()
            .map_err(|e| {
                let hint = match access_hint(&e) {
                    // A kernel overlay for the same panel holds its lines.
                    h if h.contains("in use") => {
                        " (the line is in use: another program, or a kernel overlay such as fbtft \
                         for this panel)"
                    }
                    h => h,
                };
                anyhow!("cannot use GPIO line {line} as the panel's {what} output: {e}{hint}")
            })?;
        Ok(LinePin {
            request,
            offset: line.offset,
        })
    }

    fn set(&mut self, value: Value) -> Result<(), PinError> {
        self.request
            .set_value(self.offset, value)
            .map_err(|e| PinError(format!("line {}: {e}", self.offset)))
    }
}

/// A failed write to a line; holds gpiocdev's message.
#[derive(Debug, Clone, PartialEq)]
pub struct PinError(String);

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PinError {}

impl embedded_hal::digital::Error for PinError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

impl ErrorType for LinePin {
    type Error = PinError;
}

impl OutputPin for LinePin {
    fn set_low(&mut self) -> Result<(), PinError> {
        self.set(Value::Inactive)
    }

    fn set_high(&mut self) -> Result<(), PinError> {
        self.set(Value::Active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::gpiochip::tests::{chip, pi5_old_kernel, FakeChips};
    use std::path::PathBuf;

    fn lines(chips: &FakeChips, spec: &str) -> Result<PanelLines> {
        find_lines(chips, &SpiConfig::parse(spec).unwrap())
    }

    #[test]
    fn names_are_found_on_the_expected_controller() {
        let l = lines(
            &pi5_old_kernel(),
            "spi:st7789:/dev/spidev0.0?dc=GPIO24&reset=GPIO25&bl=GPIO18&gpio=pinctrl-rp1",
        )
        .unwrap();
        assert_eq!(l.dc.chip, PathBuf::from("/dev/gpiochip4"));
        let offsets = (
            l.dc.offset,
            l.reset.map(|f| f.offset),
            l.backlight.map(|f| f.offset),
        );
        assert_eq!(offsets, (24, Some(25), Some(18)));
    }

    #[test]
    fn numbers_on_a_chip_with_another_label_are_refused() {
        let e = lines(
            &pi5_old_kernel(),
            "spi:st7789:/dev/spidev0.0?dc=24&chip=/dev/gpiochip0&gpio=pinctrl-rp1",
        )
        .err()
        .unwrap();
        let e = format!("{e:#}");
        assert!(
            e.contains("\"pinctrl-bcm2712\"") && e.contains("\"pinctrl-rp1\""),
            "{e}"
        );
        assert!(e.contains("DC"), "says which line: {e}");
        // gpio=none: no check, the number is taken on the chip given.
        let l = lines(
            &pi5_old_kernel(),
            "spi:st7789:/dev/spidev0.0?dc=24&chip=/dev/gpiochip0&gpio=none",
        )
        .unwrap();
        assert_eq!(
            (l.dc.label.as_str(), l.reset, l.backlight),
            ("pinctrl-bcm2712", None, None)
        );
    }

    #[test]
    fn one_line_for_two_roles_is_refused() {
        let c = FakeChips {
            chips: vec![chip("/dev/gpiochip0", "pinctrl-bcm2711", "GPIO", 58)],
            broken: vec![],
        };
        let e = lines(&c, "spi:st7789:/dev/spidev0.0?dc=GPIO24&bl=24")
            .err()
            .unwrap();
        let e = format!("{e:#}");
        assert!(e.contains("DC") && e.contains("backlight"), "{e}");
    }
}
