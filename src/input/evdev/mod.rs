//! Buttons from Linux input devices (`/dev/input/event*`): USB keyboards, numeric keypads,
//! foot pedals and presentation clickers (all keyboards to Linux), and touch screens.
//!
//! * Keys: a key going down (value 1) that the [`KeyMap`] knows is a press; autorepeat (value
//!   2) and the release are not, so holding a pedal is one press.
//! * Touch screens (`EV_ABS` with x/y axes and `BTN_TOUCH`, or absolute pointers with
//!   `BTN_LEFT`: touch panels in mouse mode, QEMU's USB tablet): a tap (down and up without
//!   moving more than [`decode::TAP_SLOP`]) is turned into a point on a 0..1 scale and into a
//!   button through the on-screen buttons of [`crate::ui`] ([`crate::ui::touch_key`]); the
//!   kiosk draws those buttons while [`Buttons::touch_screen`] says a touch screen is there.
//!
//! Devices are read without blocking from [`Buttons::poll`], so there is no thread. The folder
//! is scanned again every [`RESCAN`] from `poll` as well: a keyboard plugged in later is picked
//! up, and one that was unplugged (its reads fail with ENODEV) is dropped with one line in the
//! journal. A rescan is a readdir of a dozen names compared with the open set, and it also
//! retries a node that udev had not yet given to group `input` when it first appeared (a node
//! shows up before udev sets its owner, so an inotify watch would see it too early anyway).
//! Nodes that cannot be used are remembered by inode and mode and not opened again until they
//! change; a node that is not ours to open (EACCES, EPERM) is reported once, with the fix.

pub mod decode;
pub mod keys;
mod sys;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::Level;

use super::{Button, Buttons};
use decode::{Decoder, Input, Tap, TouchAxes, EVENT_SIZE};
pub use keys::KeyMap;

/// Where the kernel puts input device nodes.
pub const DEV_INPUT: &str = "/dev/input";

/// How often the folder is scanned for devices plugged in or out.
pub const RESCAN: Duration = Duration::from_secs(2);

/// Reads per device and poll at most, so a flood of events cannot stall the kiosk loop.
const MAX_READS: usize = 16;

/// What a device can do.
#[derive(Clone, Debug, PartialEq)]
pub struct Caps {
    /// The device's name (`EVIOCGNAME`), for the journal.
    pub name: String,
    /// Every key code it has.
    pub keys: Vec<u16>,
    /// Its axes, if it is a touch screen.
    pub touch: Option<TouchAxes>,
}

/// A source of events, read without blocking (`WouldBlock` when there is nothing).
pub type Reader = Box<dyn Read + Send>;

/// Opens device nodes: the real one uses the kernel; tests hand out scripted streams.
pub trait Opener: Send {
    /// Open `path` for non-blocking reading and say what it can do.
    fn open(&mut self, path: &Path) -> io::Result<(Reader, Caps)>;
}

/// The kernel's evdev nodes: opened read-only, non-blocking, and probed with ioctls.
pub struct DevInput;

impl Opener for DevInput {
    fn open(&mut self, path: &Path) -> io::Result<(Reader, Caps)> {
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let caps = sys::probe(file.as_raw_fd())?;
        Ok((Box::new(file), caps))
    }
}

/// What identifies a node between scans: a new device, or new permissions, change it.
type Ident = (u64, u64, u32, u32, u32);

fn ident(path: &Path) -> Option<Ident> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.rdev(), m.mode(), m.uid(), m.gid()))
}

struct Device {
    path: PathBuf,
    name: String,
    reader: Reader,
    decoder: Decoder,
    touch: bool,
}

/// Every keyboard, keypad, pedal and touch screen under a folder; see the module
/// documentation.
pub struct Evdev<O: Opener = DevInput> {
    dir: PathBuf,
    opener: O,
    keys: KeyMap,
    devices: Vec<Device>,
    /// Nodes not used (no mapped key, not a touch screen, or not ours to open), until they
    /// change.
    skipped: HashMap<PathBuf, Ident>,
    next_scan: Instant,
    /// Problems already reported (each once).
    said: HashSet<String>,
    /// Everything written to the journal (tests read it).
    #[cfg(test)]
    pub(crate) log: Vec<String>,
}

impl Evdev<DevInput> {
    /// The devices under `/dev/input`, with the key map `keys`.
    pub fn open(keys: KeyMap) -> Evdev<DevInput> {
        Evdev::with(Path::new(DEV_INPUT), DevInput, keys)
    }
}

impl<O: Opener> Evdev<O> {
    /// The `event*` nodes under `dir`, opened through `opener`; scans once at once.
    pub fn with(dir: &Path, opener: O, keys: KeyMap) -> Evdev<O> {
        let mut e = Evdev {
            dir: dir.to_path_buf(),
            opener,
            keys,
            devices: Vec::new(),
            skipped: HashMap::new(),
            next_scan: Instant::now(),
            said: HashSet::new(),
            #[cfg(test)]
            log: Vec::new(),
        };
        e.rescan();
        e
    }

    /// The paths of the devices in use, in scan order.
    pub fn devices(&self) -> Vec<&Path> {
        self.devices.iter().map(|d| d.path.as_path()).collect()
    }

    /// Log `msg` at `level`: warning (a device refused or dropped, no folder) or info.
    fn say(&mut self, level: Level, msg: String) {
        if level == Level::WARN {
            tracing::warn!("{msg}");
        } else {
            tracing::info!("{msg}");
        }
        #[cfg(test)]
        self.log.push(msg);
    }

    /// Report `msg` the first time `key` comes up.
    fn say_once(&mut self, key: &str, msg: String) {
        if self.said.insert(key.to_string()) {
            self.say(Level::WARN, msg);
        }
    }

    /// Look at the folder now: open new devices, forget nodes that are gone.
    pub fn rescan(&mut self) {
        self.next_scan = Instant::now() + RESCAN;
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) => {
                let dir = self.dir.display().to_string();
                return self.say_once(
                    "no dir",
                    format!(
                        "buttons: cannot read {dir} ({e}): no keyboards, keypads, \
                         pedals or touch screens until it appears"
                    ),
                );
            }
        };
        let mut nodes: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("event"))
            .map(|e| e.path())
            .collect();
        nodes.sort();
        self.devices.retain(|d| nodes.contains(&d.path));
        self.skipped.retain(|p, _| nodes.contains(p));
        for path in nodes {
            if self.devices.iter().any(|d| d.path == path) {
                continue;
            }
            let id = ident(&path);
            if id.is_some() && self.skipped.get(&path) == id.as_ref() {
                continue;
            }
            match self.opener.open(&path) {
                Ok((reader, caps)) => self.adopt(path, id, reader, caps),
                Err(e) => self.refused(path, id, &e),
            }
        }
    }

    fn adopt(&mut self, path: PathBuf, id: Option<Ident>, reader: Reader, caps: Caps) {
        let mapped = caps.keys.iter().any(|&c| self.keys.button(c).is_some());
        if !mapped && caps.touch.is_none() {
            if let Some(id) = id {
                self.skipped.insert(path, id);
            }
            return;
        }
        let what = match (mapped, caps.touch.is_some()) {
            (true, true) => "keys and touch screen",
            (false, true) => "touch screen",
            _ => "keys",
        };
        self.say(
            Level::INFO,
            format!("buttons: using {} ({}, {what})", caps.name, path.display()),
        );
        self.devices.push(Device {
            path,
            name: caps.name,
            reader,
            decoder: Decoder::new(self.keys.clone(), caps.touch),
            touch: caps.touch.is_some(),
        });
    }

    fn refused(&mut self, path: PathBuf, id: Option<Ident>, e: &io::Error) {
        let shown = path.display().to_string();
        match e.raw_os_error() {
            // Gone between the readdir and the open.
            Some(libc::ENOENT | libc::ENODEV | libc::ENXIO) => return,
            Some(libc::EACCES) => self.say_once(
                "EACCES",
                format!(
                    "buttons: cannot open {shown}: {e}. Add the service user to \
                     group input (usermod -a -G input cxr-edge) and restart the service; \
                     keyboards, keypads, pedals and touch screens are ignored until then"
                ),
            ),
            Some(libc::EPERM) => self.say_once(
                "EPERM",
                format!(
                    "buttons: cannot open {shown}: {e}. Under systemd the \
                     service needs DeviceAllow=char-input r"
                ),
            ),
            // Not an input device (ENOTTY) or a broken one: said once per node and message.
            _ => self.say_once(
                &format!("{shown}: {e}"),
                format!("buttons: {shown} not used: {e}"),
            ),
        }
        if let Some(id) = id {
            self.skipped.insert(path, id);
        }
    }

    /// Read what every device has, dropping devices that fail.
    fn read_all(&mut self) -> Vec<Input> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64 * EVENT_SIZE];
        let mut gone = Vec::new();
        for (i, d) in self.devices.iter_mut().enumerate() {
            for _ in 0..MAX_READS {
                match d.reader.read(&mut buf) {
                    // A device never ends; a test stream (or a FIFO) with nothing in it does.
                    Ok(0) => break,
                    Ok(n) => d.decoder.feed(&buf[..n], &mut out),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        gone.push((i, e));
                        break;
                    }
                }
            }
        }
        for (i, e) in gone.into_iter().rev() {
            let d = self.devices.remove(i);
            let msg = match e.raw_os_error() {
                Some(libc::ENODEV) => (
                    Level::INFO,
                    format!("buttons: {} ({}) unplugged", d.name, d.path.display()),
                ),
                _ => (
                    Level::WARN,
                    format!("buttons: {} ({}) dropped: {e}", d.name, d.path.display()),
                ),
            };
            self.say(msg.0, msg.1);
            // Unplugged: the node goes too, and a node of the same name is a new device for
            // the next scan. Failing: not opened again until the node changes, or the same
            // two lines would come back at every scan.
            if e.raw_os_error() != Some(libc::ENODEV) {
                if let Some(id) = ident(&d.path) {
                    self.skipped.insert(d.path, id);
                }
            }
        }
        out
    }
}

/// The button an on-screen button tap presses (see [`crate::ui::touch_key`]).
pub fn tap_button(t: Tap) -> Option<Button> {
    crate::ui::touch_key(t.x, t.y).and_then(|i| Button::parse(crate::ui::TOUCH_KEYS[i]))
}

impl<O: Opener> Buttons for Evdev<O> {
    fn poll(&mut self) -> Vec<Button> {
        if Instant::now() >= self.next_scan {
            self.rescan();
        }
        self.read_all()
            .into_iter()
            .filter_map(|i| match i {
                Input::Press(b) => Some(b),
                Input::Tap(t) => tap_button(t),
            })
            .collect()
    }

    fn touch_screen(&self) -> bool {
        self.devices.iter().any(|d| d.touch)
    }
}

#[cfg(test)]
mod tests;
