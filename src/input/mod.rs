//! Buttons: what the operator presses on the device. Three buttons drive the kiosk:
//! [`Button::Capture`] (analyse the film in front of the camera), [`Button::Next`] and
//! [`Button::Back`] (move through screens and results).
//!
//! * [`gpio`] (feature `gpio-buttons`, on by default): momentary switches on GPIO lines of the
//!   GPIO character device (`/dev/gpiochipN`), sampled every 5 ms and debounced;
//! * [`evdev`]: Linux input devices: USB keyboards, numeric keypads, foot pedals and
//!   presentation clickers (keys through a configurable key map), and touch screens (taps on
//!   the on-screen buttons); plugged in and out while the kiosk runs;
//! * [`keyboard`]: the same presses typed on stdin (`c`, `n`, `b` + Enter), for a bench setup
//!   over SSH;
//! * [`debounce`]: the debouncer both GPIO sampling and tests use.

pub mod debounce;
pub mod evdev;
#[cfg(feature = "gpio-buttons")]
pub mod gpio;
pub mod keyboard;

use anyhow::{bail, Context, Result};

/// One of the device's buttons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Button {
    /// Analyse the film in front of the camera.
    Capture,
    /// Leave the current result or problem screen.
    Next,
    /// Step back through earlier results.
    Back,
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

    /// The button's name in configs and scripts: `capture`, `next` or `back`.
    pub fn name(self) -> &'static str {
        match self {
            Button::Capture => "capture",
            Button::Next => "next",
            Button::Back => "back",
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

/// Parse the button lines of the config, `capture=17,next=27,back=22`: button name = GPIO
/// line offset on the chip (the BCM number on a Raspberry Pi). Each button and each line at
/// most once; any subset of the buttons.
pub fn parse_button_lines(spec: &str) -> Result<Vec<(Button, u32)>> {
    let mut out: Vec<(Button, u32)> = Vec::new();
    for (button, line) in button_items(spec, "button lines", "BUTTON=LINE, e.g. capture=17")? {
        let line: u32 = line.parse().with_context(|| {
            format!(
                "button lines '{spec}': '{line}' for {} is not a GPIO line number",
                button.name()
            )
        })?;
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
        bail!("button lines '{spec}': no buttons (e.g. capture=17,next=27,back=22)");
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
        assert_eq!(
            parse_button_lines("capture=17,next=27,back=22").unwrap(),
            [
                (Button::Capture, 17),
                (Button::Next, 27),
                (Button::Back, 22)
            ]
        );
        assert_eq!(
            parse_button_lines(" back = 5 , capture=6, ").unwrap(),
            [(Button::Back, 5), (Button::Capture, 6)]
        );
        let err = |s: &str| format!("{:#}", parse_button_lines(s).unwrap_err());
        let e = err("capture=17,select=4");
        assert!(e.contains("unknown button 'select'"), "{e}");
        let e = err("capture=GPIO17");
        assert!(e.contains("'GPIO17'") && e.contains("capture"), "{e}");
        let e = err("capture=-1");
        assert!(e.contains("'-1'"), "{e}");
        let e = err("capture=17,next=17");
        assert!(
            e.contains("line 17") && e.contains("capture") && e.contains("next"),
            "{e}"
        );
        let e = err("capture=17,capture=18");
        assert!(e.contains("capture is given twice"), "{e}");
        let e = err("capture");
        assert!(e.contains("not BUTTON=LINE"), "{e}");
        let e = err(" , ");
        assert!(e.contains("no buttons"), "{e}");
    }
}
