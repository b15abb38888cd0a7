//! Camera controls: what a camera offers (V4L2 controls, listed by `cxr-edge devices`) and the
//! three that cxr-edge sets itself, because a film on a light box needs them:
//!
//! - the power line frequency: fluorescent tubes flicker at twice the mains frequency, and a
//!   camera whose exposure is not a multiple of that period shows rolling bands over the film;
//! - exposure: automatic, or a fixed time when the auto exposure pumps with the film's contrast;
//! - focus: an autofocus webcam hunts on a flat, low-texture film, so it can be locked.
//!
//! Deciding what to set lives here, as plain functions over the listed controls and a setter,
//! so that tests drive it with a fake device and the V4L2 backend only translates ioctls.

use std::fmt;
use std::io;

/// V4L2_CID_POWER_LINE_FREQUENCY: menu 0 disabled, 1 = 50 Hz, 2 = 60 Hz, 3 auto.
pub const POWER_LINE_FREQUENCY: u32 = 0x0098_0918;
/// V4L2_CID_EXPOSURE_AUTO: menu 0 auto, 1 manual, 2 shutter priority, 3 aperture priority.
pub const EXPOSURE_AUTO: u32 = 0x009a_0901;
/// V4L2_CID_EXPOSURE_ABSOLUTE: exposure time in units of 100 µs.
pub const EXPOSURE_ABSOLUTE: u32 = 0x009a_0902;
/// V4L2_CID_FOCUS_ABSOLUTE: lens position, in the driver's units.
pub const FOCUS_ABSOLUTE: u32 = 0x009a_090a;
/// V4L2_CID_FOCUS_AUTO: continuous autofocus on (1) or off (0).
pub const FOCUS_AUTO: u32 = 0x009a_090c;

/// V4L2_EXPOSURE_AUTO.
const EXPOSURE_MODE_AUTO: i64 = 0;
/// V4L2_EXPOSURE_MANUAL.
const EXPOSURE_MODE_MANUAL: i64 = 1;
/// V4L2_EXPOSURE_APERTURE_PRIORITY: what UVC cameras offer as their automatic exposure (the
/// aperture is fixed, so "aperture priority" means the camera picks the time).
const EXPOSURE_MODE_APERTURE_PRIORITY: i64 = 3;

/// What kind of value a control takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    /// A number from `min` to `max` in steps of `step`.
    Integer,
    /// On (1) or off (0).
    Boolean,
    /// One of the named menu items.
    Menu,
    /// One of the numbered menu items.
    IntegerMenu,
    /// An action without a value.
    Button,
    /// Anything else (strings, compound values): listed, never set.
    Other,
}

/// One control as the camera describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlInfo {
    /// The V4L2 control id (`V4L2_CID_*`).
    pub id: u32,
    /// The driver's name for it, e.g. "Power Line Frequency".
    pub name: String,
    /// What kind of value it takes.
    pub kind: ControlKind,
    /// Smallest value.
    pub min: i64,
    /// Largest value.
    pub max: i64,
    /// Value increments (1 for menus).
    pub step: u64,
    /// The driver's default value.
    pub default: i64,
    /// The value now, when it can be read.
    pub value: Option<i64>,
    /// Menu items as (value, label); empty for controls that are not menus.
    pub menu: Vec<(i64, String)>,
    /// Present but without effect now, e.g. the exposure time while exposure is automatic.
    pub inactive: bool,
}

impl ControlInfo {
    /// Whether the control takes `value`: one of its menu items, or within its range.
    pub fn offers(&self, value: i64) -> bool {
        if matches!(self.kind, ControlKind::Menu | ControlKind::IntegerMenu)
            && !self.menu.is_empty()
        {
            return self.menu.iter().any(|(v, _)| *v == value);
        }
        (self.min..=self.max).contains(&value)
    }

    /// The menu item's label for `value`, if the control has one.
    fn label(&self, value: i64) -> Option<&str> {
        self.menu
            .iter()
            .find(|(v, _)| *v == value)
            .map(|(_, l)| l.as_str())
    }

    /// `value` in words: the menu label, on/off, or the number.
    fn show(&self, value: i64) -> String {
        match (self.kind, self.label(value)) {
            (ControlKind::Boolean, _) => if value != 0 { "on" } else { "off" }.into(),
            (_, Some(label)) => format!("{value} ({label})"),
            _ => value.to_string(),
        }
    }

    /// The menu items, as `value label` joined by commas.
    fn menu_words(&self) -> String {
        self.menu
            .iter()
            .map(|(v, l)| format!("{v} {l}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line for `cxr-edge devices`: name, what it takes, default and current value, and
    /// the config key that sets it, if any.
    pub fn summary(&self) -> String {
        let takes = match self.kind {
            ControlKind::Integer => format!("{} ..= {} (step {})", self.min, self.max, self.step),
            ControlKind::Boolean => "on/off".into(),
            ControlKind::Menu | ControlKind::IntegerMenu => format!("[{}]", self.menu_words()),
            ControlKind::Button => "button".into(),
            ControlKind::Other => "(not a number)".into(),
        };
        let mut line = format!("{}: {takes}", self.name);
        if !matches!(self.kind, ControlKind::Button | ControlKind::Other) {
            line += &format!(", default {}", self.show(self.default));
        }
        if let Some(v) = self.value {
            line += &format!(", now {}", self.show(v));
        }
        if self.inactive {
            line += " [inactive]";
        }
        if let Some(key) = config_key(self.id) {
            line += &format!("  <- {key} in the config");
        }
        line
    }
}

/// The config key that sets control `id`, if cxr-edge sets it.
fn config_key(id: u32) -> Option<&'static str> {
    match id {
        POWER_LINE_FREQUENCY => Some("mains_hz"),
        EXPOSURE_AUTO | EXPOSURE_ABSOLUTE => Some("exposure"),
        FOCUS_AUTO | FOCUS_ABSOLUTE => Some("focus"),
        _ => None,
    }
}

/// Words for the controls cxr-edge sets, for messages about a camera that lacks one (whose
/// driver name is then unknown).
fn control_words(id: u32) -> &'static str {
    match id {
        POWER_LINE_FREQUENCY => "power line frequency",
        EXPOSURE_AUTO => "auto exposure",
        EXPOSURE_ABSOLUTE => "exposure time",
        FOCUS_AUTO => "autofocus",
        FOCUS_ABSOLUTE => "focus position",
        _ => "such",
    }
}

/// The mains frequency where the light box is plugged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MainsHz {
    /// 50 Hz (Europe, Africa, most of Asia and South America, Australia).
    Fifty,
    /// 60 Hz (the Americas north of the equator, Korea, Taiwan, the Philippines, part of Japan).
    Sixty,
}

/// How the camera exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// The camera chooses.
    Auto,
    /// A fixed exposure time, in the control's units (100 µs for UVC cameras).
    Manual(i64),
}

/// How the camera focuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    /// Continuous autofocus.
    Auto,
    /// Autofocus off, the lens left where it is.
    Locked,
    /// Autofocus off, the lens at this position (the control's units).
    Manual(i64),
}

/// Why a value given for a camera control is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlValueError {
    /// `mains_hz` other than 50 or 60.
    #[error("mains_hz = {0}: use 50 or 60, the mains frequency where the light box is plugged in")]
    MainsHz(String),
    /// `exposure` neither "auto" nor a positive number.
    #[error("exposure = {0}: use \"auto\" or a fixed exposure time, a whole number from 1 (in the camera's units, 100 µs for USB cameras; `cxr-edge devices` shows the range)")]
    Exposure(String),
    /// `focus` neither "auto", "locked" nor a number.
    #[error("focus = {0}: use \"auto\", \"locked\" (autofocus off, the lens left where it is) or a lens position, a whole number (`cxr-edge devices` shows the range)")]
    Focus(String),
}

impl MainsHz {
    /// 50 or 60.
    pub fn from_hz(hz: i64) -> Result<MainsHz, ControlValueError> {
        match hz {
            50 => Ok(MainsHz::Fifty),
            60 => Ok(MainsHz::Sixty),
            _ => Err(ControlValueError::MainsHz(hz.to_string())),
        }
    }

    /// The power line frequency menu item for it.
    fn menu_value(self) -> i64 {
        match self {
            MainsHz::Fifty => 1,
            MainsHz::Sixty => 2,
        }
    }
}

impl Exposure {
    /// `"auto"`.
    pub fn from_word(word: &str) -> Result<Exposure, ControlValueError> {
        match word {
            "auto" => Ok(Exposure::Auto),
            _ => Err(ControlValueError::Exposure(format!("{word:?}"))),
        }
    }

    /// A fixed exposure time: the control is 32 bits wide, and no time is no picture.
    pub fn from_number(time: i64) -> Result<Exposure, ControlValueError> {
        match time {
            1.. if i32::try_from(time).is_ok() => Ok(Exposure::Manual(time)),
            _ => Err(ControlValueError::Exposure(time.to_string())),
        }
    }
}

impl Focus {
    /// `"auto"` or `"locked"`.
    pub fn from_word(word: &str) -> Result<Focus, ControlValueError> {
        match word {
            "auto" => Ok(Focus::Auto),
            "locked" => Ok(Focus::Locked),
            _ => Err(ControlValueError::Focus(format!("{word:?}"))),
        }
    }

    /// A lens position; the control is 32 bits wide.
    pub fn from_number(position: i64) -> Result<Focus, ControlValueError> {
        match i32::try_from(position) {
            Ok(_) => Ok(Focus::Manual(position)),
            Err(_) => Err(ControlValueError::Focus(position.to_string())),
        }
    }
}

/// A config value that is a word or a whole number (`exposure`, `focus`), checked by `word`
/// and `number`; any other TOML type is refused with `other`'s message.
fn word_or_number<'de, D: serde::Deserializer<'de>, T>(
    d: D,
    word: fn(&str) -> Result<T, ControlValueError>,
    number: fn(i64) -> Result<T, ControlValueError>,
    other: fn(String) -> ControlValueError,
) -> Result<T, D::Error> {
    use serde::Deserialize;
    let parsed = match toml::Value::deserialize(d)? {
        toml::Value::String(s) => word(&s),
        toml::Value::Integer(n) => number(n),
        v => Err(other(v.to_string())),
    };
    parsed.map_err(serde::de::Error::custom)
}

impl<'de> serde::Deserialize<'de> for MainsHz {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        word_or_number(
            d,
            |w| Err(ControlValueError::MainsHz(format!("{w:?}"))),
            MainsHz::from_hz,
            ControlValueError::MainsHz,
        )
    }
}

impl<'de> serde::Deserialize<'de> for Exposure {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        word_or_number(
            d,
            Exposure::from_word,
            Exposure::from_number,
            ControlValueError::Exposure,
        )
    }
}

impl<'de> serde::Deserialize<'de> for Focus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        word_or_number(
            d,
            Focus::from_word,
            Focus::from_number,
            ControlValueError::Focus,
        )
    }
}

impl fmt::Display for MainsHz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MainsHz::Fifty => write!(f, "mains_hz = 50"),
            MainsHz::Sixty => write!(f, "mains_hz = 60"),
        }
    }
}

impl fmt::Display for Exposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exposure::Auto => write!(f, "exposure = \"auto\""),
            Exposure::Manual(n) => write!(f, "exposure = {n}"),
        }
    }
}

impl fmt::Display for Focus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Focus::Auto => write!(f, "focus = \"auto\""),
            Focus::Locked => write!(f, "focus = \"locked\""),
            Focus::Manual(n) => write!(f, "focus = {n}"),
        }
    }
}

/// The controls to set on the camera at open and after every reconnect; `None` leaves the
/// camera's own setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CameraControls {
    /// Power line frequency (`mains_hz`).
    pub mains_hz: Option<MainsHz>,
    /// Exposure (`exposure`).
    pub exposure: Option<Exposure>,
    /// Focus (`focus`).
    pub focus: Option<Focus>,
}

impl CameraControls {
    /// Nothing to set.
    pub fn is_empty(&self) -> bool {
        *self == CameraControls::default()
    }
}

/// Why a wanted control was not set. None of these stops the stream: the camera works, only
/// less well, so each is reported once and the frames go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlProblem {
    /// The camera would not list its controls.
    #[error(
        "cannot list the camera's controls ({0}), so mains_hz, exposure and focus are not applied"
    )]
    List(String),
    /// The camera has no such control.
    #[error("the camera has no {} control, so {setting} is not applied", control_words(*.id))]
    Missing {
        /// The control's id.
        id: u32,
        /// The config setting that wanted it.
        setting: String,
    },
    /// A menu control lacks the item needed.
    #[error("{setting} is not applied: the camera's {control} offers only [{offered}]")]
    NotOffered {
        /// The control's id.
        id: u32,
        /// The config setting that wanted it.
        setting: String,
        /// The driver's name for the control.
        control: String,
        /// The items it offers.
        offered: String,
    },
    /// A number outside the control's range.
    #[error("{setting} is outside this camera's range for {control}, {min} ..= {max} (see `cxr-edge devices`); not applied, the camera keeps its own setting")]
    OutOfRange {
        /// The control's id.
        id: u32,
        /// The config setting that wanted it.
        setting: String,
        /// The driver's name for the control.
        control: String,
        /// Smallest value the control takes.
        min: i64,
        /// Largest value the control takes.
        max: i64,
    },
    /// The driver refused the value.
    #[error("the camera refused {control} = {value} (for {setting}): {reason}")]
    Refused {
        /// The control's id.
        id: u32,
        /// The config setting that wanted it.
        setting: String,
        /// The driver's name for the control.
        control: String,
        /// The value refused.
        value: i64,
        /// The driver's answer, in words.
        reason: String,
    },
}

impl ControlProblem {
    /// The control it is about (0 when the controls could not be listed), so that each is
    /// reported once.
    pub fn control(&self) -> u32 {
        match self {
            ControlProblem::List(_) => 0,
            ControlProblem::Missing { id, .. }
            | ControlProblem::NotOffered { id, .. }
            | ControlProblem::OutOfRange { id, .. }
            | ControlProblem::Refused { id, .. } => *id,
        }
    }
}

/// Words for a driver's answer to setting a control. Not `camera::describe_io_error`: EACCES
/// here means an inactive or read-only control, not a missing `video` group.
pub fn describe_control_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(13) => "the control is read-only or inactive now".into(),
        Some(19) => "the camera was unplugged".into(),
        Some(22) | Some(34) => "the value is not one it takes".into(),
        _ => e.to_string(),
    }
}

/// Set the wanted controls on a camera that listed `listed`, through `set` (id, value). Order
/// matters: a manual exposure time or focus position is only taken once the automatic mode is
/// off, so the mode goes first. Returns what could not be set.
pub fn apply(
    listed: &[ControlInfo],
    want: &CameraControls,
    set: &mut dyn FnMut(u32, i64) -> io::Result<()>,
) -> Vec<ControlProblem> {
    let mut a = Applier {
        listed,
        set,
        problems: Vec::new(),
    };
    if let Some(hz) = want.mains_hz {
        a.put(POWER_LINE_FREQUENCY, hz.menu_value(), &hz.to_string());
    }
    if let Some(e) = want.exposure {
        a.exposure(e);
    }
    if let Some(f) = want.focus {
        a.focus(f);
    }
    a.problems
}

struct Applier<'a> {
    listed: &'a [ControlInfo],
    set: &'a mut dyn FnMut(u32, i64) -> io::Result<()>,
    problems: Vec<ControlProblem>,
}

impl<'a> Applier<'a> {
    fn find(&self, id: u32) -> Option<&'a ControlInfo> {
        self.listed.iter().find(|c| c.id == id)
    }

    fn missing(&mut self, id: u32, setting: &str) {
        self.problems.push(ControlProblem::Missing {
            id,
            setting: setting.into(),
        });
    }

    /// Set `id` to `value` if the camera has it and takes the value; whether it was set.
    fn put(&mut self, id: u32, value: i64, setting: &str) -> bool {
        let Some(c) = self.find(id) else {
            self.missing(id, setting);
            return false;
        };
        if !c.offers(value) {
            self.problems.push(self.not_taken(c, setting));
            return false;
        }
        match (self.set)(id, value) {
            Ok(()) => true,
            Err(e) => {
                self.problems.push(ControlProblem::Refused {
                    id,
                    setting: setting.into(),
                    control: c.name.clone(),
                    value,
                    reason: describe_control_error(&e),
                });
                false
            }
        }
    }

    /// The problem with a value `c` does not take: a missing menu item or a number out of range.
    fn not_taken(&self, c: &ControlInfo, setting: &str) -> ControlProblem {
        if c.menu.is_empty() {
            ControlProblem::OutOfRange {
                id: c.id,
                setting: setting.into(),
                control: c.name.clone(),
                min: c.min,
                max: c.max,
            }
        } else {
            ControlProblem::NotOffered {
                id: c.id,
                setting: setting.into(),
                control: c.name.clone(),
                offered: c.menu_words(),
            }
        }
    }

    /// Check that `id` exists and takes `value` before anything is switched to manual: a
    /// manual mode with the camera's old time or lens position would be worse than automatic.
    fn usable(&mut self, id: u32, value: i64, setting: &str) -> bool {
        match self.find(id) {
            None => self.missing(id, setting),
            Some(c) if !c.offers(value) => self.problems.push(self.not_taken(c, setting)),
            Some(_) => return true,
        }
        false
    }

    fn exposure(&mut self, e: Exposure) {
        let setting = e.to_string();
        match e {
            Exposure::Auto => {
                let Some(c) = self.find(EXPOSURE_AUTO) else {
                    return self.missing(EXPOSURE_AUTO, &setting);
                };
                // UVC cameras offer aperture priority as their automatic mode; others "auto".
                let mode = if c.offers(EXPOSURE_MODE_APERTURE_PRIORITY) {
                    EXPOSURE_MODE_APERTURE_PRIORITY
                } else {
                    EXPOSURE_MODE_AUTO
                };
                self.put(EXPOSURE_AUTO, mode, &setting);
            }
            Exposure::Manual(time) => {
                if !self.usable(EXPOSURE_ABSOLUTE, time, &setting) {
                    return;
                }
                // A camera without an exposure mode control takes the time as it is.
                if self.find(EXPOSURE_AUTO).is_some()
                    && !self.put(EXPOSURE_AUTO, EXPOSURE_MODE_MANUAL, &setting)
                {
                    return;
                }
                self.put(EXPOSURE_ABSOLUTE, time, &setting);
            }
        }
    }

    fn focus(&mut self, f: Focus) {
        let setting = f.to_string();
        match f {
            Focus::Auto => {
                self.put(FOCUS_AUTO, 1, &setting);
            }
            Focus::Locked => {
                self.put(FOCUS_AUTO, 0, &setting);
            }
            Focus::Manual(position) => {
                if !self.usable(FOCUS_ABSOLUTE, position, &setting) {
                    return;
                }
                // A manual-focus camera has no autofocus to switch off.
                if self.find(FOCUS_AUTO).is_some() && !self.put(FOCUS_AUTO, 0, &setting) {
                    return;
                }
                self.put(FOCUS_ABSOLUTE, position, &setting);
            }
        }
    }
}
