//! Buttons: what the operator presses on the device. Three buttons drive the kiosk:
//! [`Button::Capture`] (analyse the film in front of the camera), [`Button::Next`] and
//! [`Button::Back`] (move through screens and results).
//!
//! * [`gpio`] (feature `gpio-buttons`, on by default): momentary switches on GPIO lines of the
//!   GPIO character device (`/dev/gpiochipN`, uAPI v2): kernel-debounced edge events;
//! * [`gpiochip`]: finding GPIO lines by name or number and checking their controller, for the
//!   buttons and an SPI panel's lines;
//! * [`evdev`]: Linux input devices: USB keyboards, numeric keypads, foot pedals and
//!   presentation clickers (keys through a configurable key map), and touch screens (taps on
//!   the on-screen buttons); plugged in and out while the kiosk runs;
//! * [`keyboard`]: the same presses typed on stdin (`c`, `n`, `b` + Enter), for a bench setup
//!   over SSH;
//! * [`debounce`]: a debouncer for sampled switches (pure, tested on synthetic bounce).

pub mod debounce;
pub mod evdev;
#[cfg(feature = "gpio-buttons")]
pub mod gpio;
#[cfg(any(feature = "gpio-buttons", feature = "spi-panel"))]
pub mod gpiochip;
pub mod keyboard;

use std::fmt;

use anyhow::{anyhow, bail, Context, Result};

/// One of the device's buttons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Button {
    /// Analyse the film in front of the camera.
    Capture,
    /// Leave the current result or problem screen.
    Next,
    /// Step back through earlier results.
    Back,
    /// A character typed for the case code (keyboards and keypads, while case codes are on).
    Char(char),
    /// Erase the last character of the case code (Backspace).
    Erase,
    /// Forget the case code typed so far (Escape; `#` alone on the stdin keyboard).
    Clear,
}

impl Button {
    /// Every button, in the order they are listed.
    pub const ALL: [Button; 3] = [Button::Capture, Button::Next, Button::Back];

    /// `capture`, `next` or `back` (case-insensitive).
    pub fn parse(s: &str) -> Option<Button> {
        Button::ALL
            .into_iter()
            .find(|b| s.trim().eq_ignore_ascii_case(b.name()))
    }

    /// The button's name in configs and scripts: `capture`, `next` or `back` (`type` and
    /// `erase` for the case-code keys, which configs do not name).
    pub fn name(self) -> &'static str {
        match self {
            Button::Capture => "capture",
            Button::Next => "next",
            Button::Back => "back",
            Button::Char(_) => "type",
            Button::Erase => "erase",
            Button::Clear => "clear",
        }
    }
}

/// A source of button presses.
pub trait Buttons: Send {
    /// Non-blocking: presses since the last call, in order.
    fn poll(&mut self) -> Vec<Button>;

    /// A touch screen is attached now: the screens should draw their on-screen buttons
    /// ([`crate::ui::TOUCH_KEYS`]), which taps press.
    fn touch_screen(&self) -> bool {
        false
    }
}

/// No buttons: never a press.
pub struct NoButtons;

impl Buttons for NoButtons {
    fn poll(&mut self) -> Vec<Button> {
        Vec::new()
    }
}

/// The items of a `BUTTON=VALUE,...` list in the config (`[buttons] lines` and `keys`): each
/// button with its value text, each button at most once. `what` names the setting in errors
/// (`button lines`, `keys`) and `form` shows what an item looks like.
pub(crate) fn button_items<'a>(
    spec: &'a str,
    what: &str,
    form: &str,
) -> Result<Vec<(Button, &'a str)>> {
    let mut out: Vec<(Button, &str)> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = item
            .split_once('=')
            .with_context(|| format!("{what} '{spec}': '{item}' is not {form}"))?;
        let button = Button::parse(name).with_context(|| {
            format!(
                "{what} '{spec}': unknown button '{}' (use capture, next, back)",
                name.trim()
            )
        })?;
        if out.iter().any(|(b, _)| *b == button) {
            bail!("{what} '{spec}': {} is given twice", button.name());
        }
        out.push((button, value.trim()));
    }
    Ok(out)
}

/// A GPIO line as the config gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineRef {
    /// Found by name on any chip, e.g. `GPIO17`.
    Name(String),
    /// Offset on the configured chip, e.g. `17` (the BCM number on a Raspberry Pi).
    Offset(u32),
}

impl LineRef {
    /// `17` is an offset, anything else a line name (`GPIO17`, `PH.00`). Text that looks like
    /// a number (`-1`, `99999999999`) must be a valid offset.
    pub fn parse(s: &str) -> Result<LineRef> {
        let s = s.trim();
        if s.is_empty() {
            bail!("no GPIO line given");
        }
        let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .ok()
                .filter(|_| digits.len() == s.len())
                .map(LineRef::Offset)
                .ok_or_else(|| anyhow!("'{s}' is not a GPIO line number"));
        }
        if s.len() > 31 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            bail!("{s:?} is not a GPIO line name (names are at most 31 characters, no spaces)");
        }
        Ok(LineRef::Name(s.to_string()))
    }
}

impl fmt::Display for LineRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineRef::Name(n) => write!(f, "{n}"),
            LineRef::Offset(o) => write!(f, "{o}"),
        }
    }
}

/// Parse the button lines of the config, `capture=GPIO17,next=GPIO27,back=GPIO22`: button name
/// = GPIO line, by name (found on every chip, see the `gpiochip` module) or by number (offset on
/// `[buttons] chip`; the BCM number on a Raspberry Pi). Each button and each line at most once;
/// any subset of the buttons.
pub fn parse_button_lines(spec: &str) -> Result<Vec<(Button, LineRef)>> {
    let mut out: Vec<(Button, LineRef)> = Vec::new();
    let form = "BUTTON=LINE, e.g. capture=GPIO17";
    for (button, line) in button_items(spec, "button lines", form)? {
        let line = LineRef::parse(line)
            .with_context(|| format!("button lines '{spec}': the {} line", button.name()))?;
        if let Some((other, _)) = out.iter().find(|(_, l)| *l == line) {
            bail!(
                "button lines '{spec}': GPIO line {line} is given for both {} and {}",
                other.name(),
                button.name()
            );
        }
        out.push((button, line));
    }
    if out.is_empty() {
        bail!("button lines '{spec}': no buttons (e.g. capture=GPIO17,next=GPIO27,back=GPIO22)");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Button::ALL {
            assert_eq!(Button::parse(b.name()), Some(b));
        }
        assert_eq!(Button::parse(" Capture "), Some(Button::Capture));
        assert_eq!(Button::parse("NEXT"), Some(Button::Next));
        assert_eq!(Button::parse("forward"), None);
    }

    #[test]
    fn no_buttons_never_press() {
        assert!(NoButtons.poll().is_empty());
    }

    #[test]
    fn button_lines() {
        let n = |s: &str| LineRef::Name(s.to_string());
        assert_eq!(
            parse_button_lines("capture=17,next=27,back=22").unwrap(),
            [
                (Button::Capture, LineRef::Offset(17)),
                (Button::Next, LineRef::Offset(27)),
                (Button::Back, LineRef::Offset(22))
            ]
        );
        assert_eq!(
            parse_button_lines(" back = 5 , capture=GPIO6, ").unwrap(),
            [
                (Button::Back, LineRef::Offset(5)),
                (Button::Capture, n("GPIO6"))
            ]
        );
        assert_eq!(
            parse_button_lines("capture=GPIO17,next=PH.00").unwrap(),
            [(Button::Capture, n("GPIO17")), (Button::Next, n("PH.00"))]
        );
        let err = |s: &str| format!("{:#}", parse_button_lines(s).unwrap_err());
        let e = err("capture=17,select=4");
        assert!(e.contains("unknown button 'select'"), "{e}");
        let e = err("capture=GPIO 17");
        assert!(e.contains("\"GPIO 17\"") && e.contains("capture"), "{e}");
        let e = err("capture=-1");
        assert!(e.contains("'-1'"), "{e}");
        let e = err("capture=17,next=17");
        assert!(
            e.contains("line 17") && e.contains("capture") && e.contains("next"),
            "{e}"
        );
        let e = err("capture=GPIO17,back=GPIO17");
        assert!(e.contains("line GPIO17") && e.contains("back"), "{e}");
        let e = err("capture=17,capture=18");
        assert!(e.contains("capture is given twice"), "{e}");
        let e = err("capture");
        assert!(e.contains("not BUTTON=LINE"), "{e}");
        let e = err(" , ");
        assert!(e.contains("no buttons"), "{e}");
    }
}
