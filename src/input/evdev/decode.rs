//! Decoding one device's `struct input_event` stream into presses and taps. Pure: bytes in,
//! [`Input`]s out, so tests feed it synthetic streams.
//!
//! `struct input_event` is `{ struct timeval time; __u16 type; __u16 code; __s32 value; }`,
//! where the kernel's timeval is two `long`s: 16 bytes of time on 64-bit machines, 8 on 32-bit
//! ARM (armv7), so the event is 24 or 16 bytes. [`EVENT_SIZE`] follows `long` rather than
//! `libc::timeval`, which a 64-bit `time_t` build of a 32-bit target would make wrong.

use super::keys::KeyMap;
use crate::input::Button;

/// Size of one `struct input_event` on this machine.
pub const EVENT_SIZE: usize = 2 * std::mem::size_of::<libc::c_long>() + 8;

/// Synchronisation events (`EV_SYN`).
pub const EV_SYN: u16 = 0;
/// Keys and buttons (`EV_KEY`).
pub const EV_KEY: u16 = 1;
/// Absolute axes (`EV_ABS`): touch screens.
pub const EV_ABS: u16 = 3;
/// End of one batch of events that belong together (`SYN_REPORT`).
pub const SYN_REPORT: u16 = 0;
/// The kernel's buffer overflowed and events were lost (`SYN_DROPPED`).
pub const SYN_DROPPED: u16 = 3;
/// Touch screen axes (`ABS_X`, `ABS_Y`).
pub const ABS_X: u16 = 0;
/// See [`ABS_X`].
pub const ABS_Y: u16 = 1;
/// Multi-touch axes (`ABS_MT_POSITION_X`, `..._Y`), for screens without `ABS_X`/`ABS_Y`.
pub const ABS_MT_POSITION_X: u16 = 0x35;
/// See [`ABS_MT_POSITION_X`].
pub const ABS_MT_POSITION_Y: u16 = 0x36;
/// A finger is on the screen (`BTN_TOUCH`).
pub const BTN_TOUCH: u16 = 0x14a;
/// The primary button of a pointer (`BTN_LEFT`): the contact of an absolute pointer, such as a
/// touch panel in mouse mode or QEMU's USB tablet, which report `ABS_X`/`ABS_Y` and no
/// `BTN_TOUCH`.
pub const BTN_LEFT: u16 = 0x110;

/// A touch that moves further than this share of the screen (either axis) is a swipe, not a
/// tap.
pub const TAP_SLOP: f32 = 0.06;

/// One decoded `struct input_event` (the time stamp is not used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// `type`: [`EV_SYN`], [`EV_KEY`], [`EV_ABS`]...
    pub kind: u16,
    /// The key or axis.
    pub code: u16,
    /// Keys: 1 down, 0 up, 2 autorepeat. Axes: the position.
    pub value: i32,
}

impl Event {
    /// Decode one event from exactly [`EVENT_SIZE`] bytes in this machine's byte order.
    pub fn from_bytes(b: &[u8]) -> Event {
        let t = EVENT_SIZE - 8;
        Event {
            kind: u16::from_ne_bytes([b[t], b[t + 1]]),
            code: u16::from_ne_bytes([b[t + 2], b[t + 3]]),
            value: i32::from_ne_bytes([b[t + 4], b[t + 5], b[t + 6], b[t + 7]]),
        }
    }

    /// The event as the kernel would write it (time zero): for tests and virtual devices.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut b = vec![0u8; EVENT_SIZE - 8];
        b.extend_from_slice(&self.kind.to_ne_bytes());
        b.extend_from_slice(&self.code.to_ne_bytes());
        b.extend_from_slice(&self.value.to_ne_bytes());
        b
    }
}

/// The range of a touch screen axis (`struct input_absinfo` minimum and maximum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    /// The smallest value the axis reports.
    pub min: i32,
    /// The largest value the axis reports.
    pub max: i32,
}

impl Axis {
    /// `v` on a 0 ..= 1 scale (0.5 for a degenerate range).
    pub fn normalise(self, v: i32) -> f32 {
        let span = self.max as f64 - self.min as f64;
        if span <= 0.0 {
            return 0.5;
        }
        ((v as f64 - self.min as f64) / span).clamp(0.0, 1.0) as f32
    }
}

/// A touch screen's axes: which codes carry the position, and their ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TouchAxes {
    /// `ABS_X` or `ABS_MT_POSITION_X`.
    pub x_code: u16,
    /// `ABS_Y` or `ABS_MT_POSITION_Y`.
    pub y_code: u16,
    /// The key that says the screen is being touched: [`BTN_TOUCH`], or [`BTN_LEFT`] for an
    /// absolute pointer.
    pub contact: u16,
    /// Range of x.
    pub x: Axis,
    /// Range of y.
    pub y: Axis,
}

/// A tap on a touch screen: where the finger came down, 0 ..= 1 from the top left.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tap {
    /// 0 at the left edge, 1 at the right.
    pub x: f32,
    /// 0 at the top edge, 1 at the bottom.
    pub y: f32,
}

/// What a device said.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Input {
    /// A mapped key went down.
    Press(Button),
    /// A finger touched the screen and was lifted without moving far.
    Tap(Tap),
}

/// The touch state of one touch screen.
#[derive(Debug)]
struct TouchState {
    axes: TouchAxes,
    /// The latest raw position (axes report only changes, so this outlives a touch).
    x: Option<i32>,
    y: Option<i32>,
    /// BTN_TOUCH changes seen in the batch being read (applied at SYN_REPORT).
    went_down: bool,
    went_up: bool,
    /// Where the current touch began, once its position is known; None when not touching.
    start: Option<Option<(f32, f32)>>,
    moved: bool,
}

impl TouchState {
    fn point(&self) -> Option<(f32, f32)> {
        Some((
            self.axes.x.normalise(self.x?),
            self.axes.y.normalise(self.y?),
        ))
    }

    fn on_event(&mut self, e: Event) {
        match (e.kind, e.code) {
            (EV_KEY, c) if c == self.axes.contact && e.value == 1 => self.went_down = true,
            (EV_KEY, c) if c == self.axes.contact && e.value == 0 => self.went_up = true,
            (EV_ABS, c) if c == self.axes.x_code => self.x = Some(e.value),
            (EV_ABS, c) if c == self.axes.y_code => self.y = Some(e.value),
            _ => {}
        }
    }

    /// The end of a batch: a touch begins, moves or ends; a tap when it ends near its start.
    fn on_report(&mut self) -> Option<Tap> {
        if std::mem::take(&mut self.went_down) {
            self.start = Some(None);
            self.moved = false;
        }
        let now = self.point();
        match self.start {
            Some(None) => self.start = Some(now),
            Some(Some((x0, y0))) => {
                if let Some((x, y)) = now {
                    self.moved |= (x - x0).abs() > TAP_SLOP || (y - y0).abs() > TAP_SLOP;
                }
            }
            None => {}
        }
        if !std::mem::take(&mut self.went_up) {
            return None;
        }
        match self.start.take() {
            Some(Some((x, y))) if !self.moved => Some(Tap { x, y }),
            _ => None,
        }
    }

    /// Events were lost: forget the touch in progress (its end may be among them).
    fn reset(&mut self) {
        self.went_down = false;
        self.went_up = false;
        self.start = None;
    }
}

/// Turns one device's bytes into presses and taps.
#[derive(Debug)]
pub struct Decoder {
    keys: KeyMap,
    touch: Option<TouchState>,
    /// After SYN_DROPPED: events up to the next SYN_REPORT are incomplete and skipped.
    dropping: bool,
    /// Bytes of an event not yet complete (a real device always gives whole events).
    partial: Vec<u8>,
}

impl Decoder {
    /// A decoder for a device with these keys, and these touch axes if it is a touch screen.
    pub fn new(keys: KeyMap, touch: Option<TouchAxes>) -> Decoder {
        Decoder {
            keys,
            touch: touch.map(|axes| TouchState {
                axes,
                x: None,
                y: None,
                went_down: false,
                went_up: false,
                start: None,
                moved: false,
            }),
            dropping: false,
            partial: Vec::new(),
        }
    }

    /// Decode `bytes` (any split), appending what they say to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Input>) {
        self.partial.extend_from_slice(bytes);
        let whole = self.partial.len() / EVENT_SIZE * EVENT_SIZE;
        let data = std::mem::take(&mut self.partial);
        for chunk in data[..whole].chunks_exact(EVENT_SIZE) {
            self.event(Event::from_bytes(chunk), out);
        }
        self.partial = data[whole..].to_vec();
    }

    /// Handle one event.
    pub fn event(&mut self, e: Event, out: &mut Vec<Input>) {
        if e.kind == EV_SYN && e.code == SYN_DROPPED {
            self.dropping = true;
            if let Some(t) = &mut self.touch {
                t.reset();
            }
            return;
        }
        if self.dropping {
            // Key presses lost here are lost; a press half seen is not made up.
            self.dropping = !(e.kind == EV_SYN && e.code == SYN_REPORT);
            return;
        }
        match e.kind {
            // Value 1 only: 0 is the release, 2 autorepeat while held (one press per push).
            // The touch contact is the touch's, even when the key map names it (BTN_LEFT).
            EV_KEY
                if e.value == 1 && self.touch.as_ref().map(|t| t.axes.contact) != Some(e.code) =>
            {
                if let Some(b) = self.keys.button(e.code) {
                    out.push(Input::Press(b));
                }
            }
            EV_SYN if e.code == SYN_REPORT => {
                if let Some(tap) = self.touch.as_mut().and_then(TouchState::on_report) {
                    out.push(Input::Tap(tap));
                }
                return;
            }
            _ => {}
        }
        if let Some(t) = &mut self.touch {
            t.on_event(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: u16, code: u16, value: i32) -> Event {
        Event { kind, code, value }
    }
    fn key(code: u16, value: i32) -> Event {
        ev(EV_KEY, code, value)
    }
    fn syn() -> Event {
        ev(EV_SYN, SYN_REPORT, 0)
    }
    fn bytes(events: &[Event]) -> Vec<u8> {
        events.iter().flat_map(|e| e.to_bytes()).collect()
    }
    fn run(d: &mut Decoder, events: &[Event]) -> Vec<Input> {
        let mut out = Vec::new();
        d.feed(&bytes(events), &mut out);
        out
    }

    #[test]
    fn event_size_matches_the_kernel_struct() {
        assert_eq!(EVENT_SIZE, std::mem::size_of::<libc::input_event>());
        let e = ev(EV_KEY, 28, -7);
        assert_eq!(Event::from_bytes(&e.to_bytes()), e);
    }

    #[test]
    fn key_downs_press_autorepeat_and_release_do_not() {
        let mut d = Decoder::new(KeyMap::default(), None);
        // Enter down, autorepeat x3, up; A (unmapped) down/up; Right down; KP4 down.
        let got = run(
            &mut d,
            &[
                ev(4, 4, 0x70028), // EV_MSC scan code, as keyboards send
                key(28, 1),
                syn(),
                key(28, 2),
                syn(),
                key(28, 2),
                key(28, 2),
                syn(),
                key(28, 0),
                syn(),
                key(30, 1),
                key(30, 0),
                syn(),
                key(106, 1),
                syn(),
                key(75, 1),
                syn(),
            ],
        );
        assert_eq!(
            got,
            [
                Input::Press(Button::Capture),
                Input::Press(Button::Next),
                Input::Press(Button::Back)
            ]
        );
    }

    #[test]
    fn events_split_anywhere_decode_the_same() {
        let stream = bytes(&[key(57, 1), syn(), key(57, 0), syn(), key(48, 1), syn()]);
        for step in [1, 3, 7, EVENT_SIZE - 1, EVENT_SIZE + 5] {
            let mut d = Decoder::new(KeyMap::default(), None);
            let mut out = Vec::new();
            for chunk in stream.chunks(step) {
                d.feed(chunk, &mut out);
            }
            assert_eq!(
                out,
                [Input::Press(Button::Capture), Input::Press(Button::Back)],
                "{step}"
            );
        }
    }

    #[test]
    fn a_dropped_batch_is_skipped() {
        let mut d = Decoder::new(KeyMap::default(), None);
        let got = run(
            &mut d,
            &[
                ev(EV_SYN, SYN_DROPPED, 0),
                key(28, 1),
                syn(),
                key(49, 1),
                syn(),
            ],
        );
        assert_eq!(got, [Input::Press(Button::Next)]);
    }

    fn screen() -> Decoder {
        let axes = TouchAxes {
            x_code: ABS_X,
            y_code: ABS_Y,
            contact: BTN_TOUCH,
            x: Axis { min: 0, max: 4095 },
            y: Axis {
                min: 100,
                max: 1100,
            },
        };
        Decoder::new(KeyMap::default(), Some(axes))
    }
    fn at(x: i32, y: i32) -> [Event; 2] {
        [ev(EV_ABS, ABS_X, x), ev(EV_ABS, ABS_Y, y)]
    }

    #[test]
    fn a_tap_is_down_then_up_near_the_start() {
        let mut d = screen();
        let mut events = vec![key(BTN_TOUCH, 1)];
        events.extend(at(2048, 1000));
        events.push(syn());
        events.extend(at(2060, 1010)); // a small wobble
        events.push(syn());
        events.extend([key(BTN_TOUCH, 0), syn()]);
        let got = run(&mut d, &events);
        let [Input::Tap(t)] = got[..] else {
            panic!("{got:?}")
        };
        assert!(
            (t.x - 0.5).abs() < 0.01 && (t.y - 0.9).abs() < 0.001,
            "{t:?}"
        );
        // The same spot again: the axes send nothing new, the last position holds.
        let got = run(
            &mut d,
            &[key(BTN_TOUCH, 1), syn(), key(BTN_TOUCH, 0), syn()],
        );
        assert!(matches!(got[..], [Input::Tap(_)]), "{got:?}");
    }

    #[test]
    fn swipes_and_lost_ends_are_not_taps() {
        let mut d = screen();
        let mut events = vec![key(BTN_TOUCH, 1)];
        events.extend(at(100, 500));
        events.push(syn());
        events.extend(at(1500, 500));
        events.extend([syn(), key(BTN_TOUCH, 0), syn()]);
        assert!(run(&mut d, &events).is_empty(), "a swipe");
        // Down, then the kernel dropped events (the up among them): no tap at the next up.
        let mut events = vec![key(BTN_TOUCH, 1)];
        events.extend(at(100, 500));
        events.extend([syn(), ev(EV_SYN, SYN_DROPPED, 0), syn()]);
        events.extend([key(BTN_TOUCH, 0), syn()]);
        assert!(run(&mut d, &events).is_empty(), "lost");
        // An up without a down, and a touch with no position ever: nothing.
        let mut fresh = screen();
        assert!(run(&mut fresh, &[key(BTN_TOUCH, 0), syn()]).is_empty());
        assert!(run(
            &mut fresh,
            &[key(BTN_TOUCH, 1), syn(), key(BTN_TOUCH, 0), syn()]
        )
        .is_empty());
    }

    #[test]
    fn multi_touch_axes_and_out_of_range_values() {
        let axes = TouchAxes {
            x_code: ABS_MT_POSITION_X,
            y_code: ABS_MT_POSITION_Y,
            contact: BTN_TOUCH,
            x: Axis { min: 0, max: 799 },
            y: Axis { min: 0, max: 479 },
        };
        let mut d = Decoder::new(KeyMap::default(), Some(axes));
        let got = run(
            &mut d,
            &[
                ev(EV_ABS, 0x39, 12), // ABS_MT_TRACKING_ID
                ev(EV_ABS, ABS_MT_POSITION_X, 900),
                ev(EV_ABS, ABS_MT_POSITION_Y, -5),
                key(BTN_TOUCH, 1),
                syn(),
                ev(EV_ABS, 0x39, -1),
                key(BTN_TOUCH, 0),
                syn(),
            ],
        );
        assert_eq!(got, [Input::Tap(Tap { x: 1.0, y: 0.0 })]);
        assert_eq!(Axis { min: 5, max: 5 }.normalise(5), 0.5);
    }

    /// QEMU's USB tablet and touch panels in mouse mode: the left button is the finger, and it
    /// is not also a key press, even when the key map names BTN_LEFT (a pedal that is a mouse).
    #[test]
    fn an_absolute_pointer_taps_with_its_left_button() {
        let axes = TouchAxes {
            x_code: ABS_X,
            y_code: ABS_Y,
            contact: BTN_LEFT,
            x: Axis { min: 0, max: 32767 },
            y: Axis { min: 0, max: 32767 },
        };
        let keys = KeyMap::parse("capture=BTN_LEFT").unwrap();
        let mut d = Decoder::new(keys, Some(axes));
        let mut events = at(16384, 29490).to_vec();
        events.extend([syn(), key(BTN_LEFT, 1), syn(), key(BTN_LEFT, 0), syn()]);
        let got = run(&mut d, &events);
        let [Input::Tap(t)] = got[..] else {
            panic!("{got:?}")
        };
        assert!(
            (t.x - 0.5).abs() < 0.001 && (t.y - 0.9).abs() < 0.001,
            "{t:?}"
        );
        // BTN_TOUCH means nothing to a pointer.
        assert!(run(
            &mut d,
            &[key(BTN_TOUCH, 1), syn(), key(BTN_TOUCH, 0), syn()]
        )
        .is_empty());
    }
}
