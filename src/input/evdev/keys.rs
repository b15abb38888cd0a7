//! Key names and the key map: which Linux key codes press which [`Button`].
//!
//! The config's `[buttons] keys` is a list of `BUTTON=KEY+KEY+...` items separated by commas,
//! e.g. `capture=ENTER+SPACE, next=RIGHT, back=LEFT`. Key names are the kernel's
//! (`include/uapi/linux/input-event-codes.h`), with or without the `KEY_` prefix and in any
//! case; see [`KEY_NAMES`] for the ones known here. A key the table lacks can be given by its
//! decimal code (`capture=183` is `KEY_F13`). When `keys` is set it replaces the whole default
//! map: a button it does not name has no keys.

use anyhow::{bail, Context, Result};

use crate::input::Button;

/// The default key map ([`KeyMap::default`]):
///
/// * capture: Enter, keypad Enter, Space, C (the stdin keyboard's `c`);
/// * next: Right, N, Page Down (presentation clickers), keypad + and keypad 6 (the arrow on a
///   numeric keypad's 6, whatever Num Lock says: evdev reports the physical key);
/// * back: Left, B, Page Up, keypad - and keypad 4.
pub const DEFAULT_KEYS: &str = "capture=ENTER+KPENTER+SPACE+C, \
    next=RIGHT+N+PAGEDOWN+KPPLUS+KP6, back=LEFT+B+PAGEUP+KPMINUS+KP4";

/// The key names [`KeyMap::parse`] knows, without the `KEY_` prefix, with their Linux codes.
/// Mouse-style buttons keep their `BTN_` prefix (some foot pedals send `BTN_0` or
/// `BTN_LEFT`).
pub const KEY_NAMES: &[(&str, u16)] = &[
    ("ESC", 1),
    ("1", 2),
    ("2", 3),
    ("3", 4),
    ("4", 5),
    ("5", 6),
    ("6", 7),
    ("7", 8),
    ("8", 9),
    ("9", 10),
    ("0", 11),
    ("MINUS", 12),
    ("EQUAL", 13),
    ("BACKSPACE", 14),
    ("TAB", 15),
    ("Q", 16),
    ("W", 17),
    ("E", 18),
    ("R", 19),
    ("T", 20),
    ("Y", 21),
    ("U", 22),
    ("I", 23),
    ("O", 24),
    ("P", 25),
    ("ENTER", 28),
    ("A", 30),
    ("S", 31),
    ("D", 32),
    ("F", 33),
    ("G", 34),
    ("H", 35),
    ("J", 36),
    ("K", 37),
    ("L", 38),
    ("Z", 44),
    ("X", 45),
    ("C", 46),
    ("V", 47),
    ("B", 48),
    ("N", 49),
    ("M", 50),
    ("COMMA", 51),
    ("DOT", 52),
    ("SLASH", 53),
    ("KPASTERISK", 55),
    ("SPACE", 57),
    ("F1", 59),
    ("F2", 60),
    ("F3", 61),
    ("F4", 62),
    ("F5", 63),
    ("F6", 64),
    ("F7", 65),
    ("F8", 66),
    ("F9", 67),
    ("F10", 68),
    ("KP7", 71),
    ("KP8", 72),
    ("KP9", 73),
    ("KPMINUS", 74),
    ("KP4", 75),
    ("KP5", 76),
    ("KP6", 77),
    ("KPPLUS", 78),
    ("KP1", 79),
    ("KP2", 80),
    ("KP3", 81),
    ("KP0", 82),
    ("KPDOT", 83),
    ("F11", 87),
    ("F12", 88),
    ("KPENTER", 96),
    ("KPSLASH", 98),
    ("HOME", 102),
    ("UP", 103),
    ("PAGEUP", 104),
    ("LEFT", 105),
    ("RIGHT", 106),
    ("END", 107),
    ("DOWN", 108),
    ("PAGEDOWN", 109),
    ("INSERT", 110),
    ("DELETE", 111),
    ("MUTE", 113),
    ("VOLUMEDOWN", 114),
    ("VOLUMEUP", 115),
    ("KPEQUAL", 117),
    ("NEXTSONG", 163),
    ("PLAYPAUSE", 164),
    ("PREVIOUSSONG", 165),
    ("F13", 183),
    ("F14", 184),
    ("F15", 185),
    ("F16", 186),
    ("F17", 187),
    ("F18", 188),
    ("F19", 189),
    ("F20", 190),
    ("F21", 191),
    ("F22", 192),
    ("F23", 193),
    ("F24", 194),
    ("BTN_0", 0x100),
    ("BTN_1", 0x101),
    ("BTN_2", 0x102),
    ("BTN_3", 0x103),
    ("BTN_LEFT", 0x110),
    ("BTN_RIGHT", 0x111),
    ("BTN_MIDDLE", 0x112),
    ("OK", 0x160),
    ("SELECT", 0x161),
];

/// The highest key code the kernel has (`KEY_MAX`).
pub const KEY_MAX: u16 = 0x2ff;

/// The code of a key name: `ENTER`, `KEY_ENTER`, `key_enter`, `BTN_LEFT`, or a decimal code
/// (1 ..= [`KEY_MAX`]).
pub fn key_code(name: &str) -> Option<u16> {
    let name = name.trim();
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("KEY_").unwrap_or(&upper);
    if let Some(&(_, code)) = KEY_NAMES.iter().find(|(n, _)| *n == bare) {
        return Some(code);
    }
    // A digit key is `1`, so a number is a code only when it is not a key name.
    bare.parse::<u16>()
        .ok()
        .filter(|c| (1..=KEY_MAX).contains(c))
}

/// The name of a key code, as the table has it (`KEY_ENTER`), or `key 183` for others.
pub fn key_name(code: u16) -> String {
    match KEY_NAMES.iter().find(|(_, c)| *c == code) {
        Some((n, _)) if n.starts_with("BTN_") => (*n).to_string(),
        Some((n, _)) => format!("KEY_{n}"),
        None => format!("key {code}"),
    }
}

/// Which key codes press which button.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyMap {
    keys: Vec<(u16, Button)>,
    /// Case codes are typed: letter, digit and minus keys type (see [`typed_char`]) before the
    /// map is asked, and Backspace erases.
    typing: bool,
}

/// Backspace.
const KEY_BACKSPACE: u16 = 14;
/// Escape.
const KEY_ESC: u16 = 1;

/// The character a key types for a case code: letters (as capitals: no Shift is tracked),
/// the digits of the top row and of the keypad, and the minus of the main keyboard. The
/// keypad's minus and plus stay `back` and `next`, so a numeric keypad alone can still move
/// through the screens while a code is typed on it.
pub fn typed_char(code: u16) -> Option<char> {
    const TOP: &[u8] = b"1234567890-";
    const QWERTY: &[(u16, &[u8])] = &[(16, b"QWERTYUIOP"), (30, b"ASDFGHJKL"), (44, b"ZXCVBNM")];
    if (2..=12).contains(&code) {
        return Some(TOP[usize::from(code - 2)] as char);
    }
    for (first, row) in QWERTY {
        if let Some(i) = code.checked_sub(*first).map(usize::from) {
            if i < row.len() {
                return Some(row[i] as char);
            }
        }
    }
    // KP7 KP8 KP9 . KP4 KP5 KP6 . KP1 KP2 KP3 KP0 (71..=82; 74 and 78 are minus and plus)
    const KEYPAD: &[u8] = b"789_456_1230";
    match code {
        71..=82 => Some(KEYPAD[usize::from(code - 71)] as char).filter(|c| *c != '_'),
        _ => None,
    }
}

impl Default for KeyMap {
    fn default() -> Self {
        KeyMap::parse(DEFAULT_KEYS).expect("the default key map parses")
    }
}

impl KeyMap {
    /// Parse `capture=ENTER+SPACE, next=RIGHT, back=LEFT` (see the module documentation).
    /// Each key at most once; each button at most once; at least one key.
    pub fn parse(spec: &str) -> Result<KeyMap> {
        let mut keys: Vec<(u16, Button)> = Vec::new();
        let items =
            crate::input::button_items(spec, "keys", "BUTTON=KEY+KEY, e.g. capture=ENTER+SPACE")?;
        for (button, list) in items {
            for key in list.split('+').map(str::trim) {
                if key.is_empty() {
                    bail!("keys '{spec}': an empty key name for {}", button.name());
                }
                let code = key_code(key).with_context(|| {
                    format!(
                        "keys '{spec}': unknown key '{key}' for {}: use a Linux key name such as \
                         ENTER, KP6, PAGEDOWN, F13 (KEY_ prefix optional) or a decimal key code",
                        button.name()
                    )
                })?;
                if let Some((_, other)) = keys.iter().find(|(c, _)| *c == code) {
                    bail!(
                        "keys '{spec}': {} is given for both {} and {}",
                        key_name(code),
                        other.name(),
                        button.name()
                    );
                }
                keys.push((code, button));
            }
        }
        if keys.is_empty() {
            bail!("keys '{spec}': no keys (e.g. capture=ENTER+SPACE,next=RIGHT,back=LEFT)");
        }
        Ok(KeyMap {
            keys,
            typing: false,
        })
    }

    /// The button `code` presses, if any.
    pub fn button(&self, code: u16) -> Option<Button> {
        if self.typing {
            if let Some(c) = typed_char(code) {
                return Some(Button::Char(c));
            }
            if code == KEY_BACKSPACE {
                return Some(Button::Erase);
            }
            if code == KEY_ESC {
                return Some(Button::Clear);
            }
        }
        self.keys.iter().find(|(c, _)| *c == code).map(|(_, b)| *b)
    }

    /// The same map, with case-code typing on or off.
    pub fn typing(mut self, on: bool) -> KeyMap {
        self.typing = on;
        self
    }

    /// Every key code of the map.
    pub fn codes(&self) -> impl Iterator<Item = u16> + '_ {
        self.keys.iter().map(|(c, _)| *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_or_without_prefix_any_case() {
        assert_eq!(key_code("ENTER"), Some(28));
        assert_eq!(key_code("KEY_ENTER"), Some(28));
        assert_eq!(key_code(" key_kpEnter "), Some(96));
        assert_eq!(key_code("btn_left"), Some(0x110));
        assert_eq!(key_code("1"), Some(2), "the digit key, not code 1");
        assert_eq!(key_code("183"), Some(183));
        assert_eq!(key_code("0"), Some(11));
        assert_eq!(key_code("768"), None);
        assert_eq!(key_code("ENTRE"), None);
        assert_eq!(key_code("KEY_"), None);
        assert_eq!(key_name(28), "KEY_ENTER");
        assert_eq!(key_name(0x101), "BTN_1");
        assert_eq!(key_name(600), "key 600");
    }

    #[test]
    fn the_default_map() {
        let m = KeyMap::default();
        for (key, b) in [
            ("ENTER", Button::Capture),
            ("KPENTER", Button::Capture),
            ("SPACE", Button::Capture),
            ("C", Button::Capture),
            ("RIGHT", Button::Next),
            ("N", Button::Next),
            ("PAGEDOWN", Button::Next),
            ("KPPLUS", Button::Next),
            ("KP6", Button::Next),
            ("LEFT", Button::Back),
            ("B", Button::Back),
            ("PAGEUP", Button::Back),
            ("KPMINUS", Button::Back),
            ("KP4", Button::Back),
        ] {
            assert_eq!(m.button(key_code(key).unwrap()), Some(b), "{key}");
        }
        assert_eq!(m.button(key_code("A").unwrap()), None);
        assert_eq!(m.codes().count(), 14);
    }

    #[test]
    fn parse_and_errors() {
        let m = KeyMap::parse(" capture = KEY_F13 + key_space ,back=btn_0,").unwrap();
        assert_eq!(m.button(183), Some(Button::Capture));
        assert_eq!(m.button(57), Some(Button::Capture));
        assert_eq!(m.button(0x100), Some(Button::Back));
        assert_eq!(m.button(28), None, "keys replaces the whole default map");
        let err = |s: &str| format!("{:#}", KeyMap::parse(s).unwrap_err());
        let e = err("capture=ENTER+FOO");
        assert!(
            e.contains("unknown key 'FOO'") && e.contains("capture"),
            "{e}"
        );
        let e = err("select=ENTER");
        assert!(e.contains("unknown button 'select'"), "{e}");
        let e = err("capture=ENTER,next=KEY_ENTER");
        assert!(
            e.contains("KEY_ENTER is given for both capture and next"),
            "{e}"
        );
        let e = err("capture=ENTER,capture=SPACE");
        assert!(e.contains("capture is given twice"), "{e}");
        let e = err("capture=ENTER+");
        assert!(e.contains("empty key name"), "{e}");
        let e = err("ENTER");
        assert!(e.contains("not BUTTON=KEY+KEY"), "{e}");
        let e = err(" ,");
        assert!(e.contains("no keys"), "{e}");
    }

    /// The table agrees with the kernel's header, where this machine has it.
    #[test]
    fn codes_match_the_kernel_header() {
        let Ok(h) = std::fs::read_to_string("/usr/include/linux/input-event-codes.h") else {
            return;
        };
        for (name, code) in KEY_NAMES {
            let full = if name.starts_with("BTN_") {
                (*name).to_string()
            } else {
                format!("KEY_{name}")
            };
            let line = h
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(&full))
                .unwrap_or_else(|| panic!("{full} not in the header"));
            let v = line.split_whitespace().nth(2).unwrap();
            let v = match v.strip_prefix("0x") {
                Some(x) => u16::from_str_radix(x, 16).unwrap(),
                None => v.parse().unwrap(),
            };
            assert_eq!(v, *code, "{full}");
        }
    }

    #[test]
    fn with_case_codes_on_letters_and_digits_type_and_the_rest_stay_buttons() {
        let code = |n: &str| key_code(n).unwrap();
        for (name, c) in [
            ("A", 'A'),
            ("Q", 'Q'),
            ("M", 'M'),
            ("1", '1'),
            ("0", '0'),
            ("MINUS", '-'),
            ("KP7", '7'),
            ("KP0", '0'),
            ("KP5", '5'),
        ] {
            assert_eq!(typed_char(code(name)), Some(c), "{name}");
        }
        for name in [
            "ENTER",
            "KPENTER",
            "KPPLUS",
            "KPMINUS",
            "SPACE",
            "LEFT",
            "BACKSPACE",
        ] {
            assert_eq!(typed_char(code(name)), None, "{name}");
        }
        let plain = KeyMap::default();
        let typing = KeyMap::default().typing(true);
        // C and KP6 press capture and next when codes are off, type when they are on.
        assert_eq!(plain.button(code("C")), Some(Button::Capture));
        assert_eq!(typing.button(code("C")), Some(Button::Char('C')));
        assert_eq!(plain.button(code("KP6")), Some(Button::Next));
        assert_eq!(typing.button(code("KP6")), Some(Button::Char('6')));
        assert_eq!(typing.button(code("BACKSPACE")), Some(Button::Erase));
        assert_eq!(typing.button(code("ESC")), Some(Button::Clear));
        assert_eq!(plain.button(code("BACKSPACE")), None);
        for (name, b) in [
            ("ENTER", Button::Capture),
            ("KPPLUS", Button::Next),
            ("KPMINUS", Button::Back),
        ] {
            assert_eq!(typing.button(code(name)), Some(b), "{name}");
        }
    }
}
