//! Hot-plug, permissions and touch through a scripted opener: a temp folder stands in for
//! `/dev/input` (empty files named `eventN`), and each node's events come from a queue.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::decode::{Axis, Event, ABS_X, ABS_Y, BTN_TOUCH, EV_ABS, EV_KEY, EV_SYN, SYN_REPORT};
use super::*;

/// What a read of a scripted device returns next.
enum Chunk {
    Bytes(Vec<u8>),
    Errno(i32),
}

type Queue = Arc<Mutex<VecDeque<Chunk>>>;

struct Scripted(Queue);

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.lock().unwrap().pop_front() {
            None => Err(ErrorKind::WouldBlock.into()),
            Some(Chunk::Errno(e)) => Err(io::Error::from_raw_os_error(e)),
            Some(Chunk::Bytes(b)) => {
                buf[..b.len()].copy_from_slice(&b);
                Ok(b.len())
            }
        }
    }
}

/// What opening a node gives: its caps and event queue, or an errno.
type Node = Result<(Caps, Queue), i32>;

/// Node name -> what opening it gives; shared with the test, which changes it on the fly.
#[derive(Clone, Default)]
struct Fake {
    nodes: Arc<Mutex<HashMap<String, Node>>>,
    opens: Arc<Mutex<Vec<String>>>,
}

impl Opener for Fake {
    fn open(&mut self, path: &Path) -> io::Result<(Reader, Caps)> {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        self.opens.lock().unwrap().push(name.clone());
        match self.nodes.lock().unwrap().get(&name) {
            None => Err(io::Error::from_raw_os_error(libc::ENOTTY)),
            Some(Err(e)) => Err(io::Error::from_raw_os_error(*e)),
            Some(Ok((caps, q))) => Ok((Box::new(Scripted(q.clone())), caps.clone())),
        }
    }
}

impl Fake {
    /// A node `name` in `dir` with `caps`; returns its event queue.
    fn plug(&self, dir: &Path, name: &str, caps: Caps) -> Queue {
        std::fs::write(dir.join(name), b"").unwrap();
        let q = Queue::default();
        self.nodes
            .lock()
            .unwrap()
            .insert(name.into(), Ok((caps, q.clone())));
        q
    }
    fn deny(&self, dir: &Path, name: &str, errno: i32) {
        std::fs::write(dir.join(name), b"").unwrap();
        self.nodes.lock().unwrap().insert(name.into(), Err(errno));
    }
    fn opens_of(&self, name: &str) -> usize {
        self.opens
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == name)
            .count()
    }
}

fn keyboard() -> Caps {
    Caps {
        name: "USB Keyboard".into(),
        keys: (1..=120).collect(),
        touch: None,
    }
}

fn send(q: &Queue, events: &[Event]) {
    let bytes = events.iter().flat_map(|e| e.to_bytes()).collect();
    q.lock().unwrap().push_back(Chunk::Bytes(bytes));
}

fn key(code: u16, value: i32) -> [Event; 2] {
    [
        Event {
            kind: EV_KEY,
            code,
            value,
        },
        Event {
            kind: EV_SYN,
            code: SYN_REPORT,
            value: 0,
        },
    ]
}

#[test]
fn keyboards_at_start_and_plugged_in_later() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let kb = fake.plug(dir.path(), "event0", keyboard());
    let mut ev = Evdev::with(dir.path(), fake.clone(), KeyMap::default());
    assert_eq!(ev.devices().len(), 1);
    assert!(!ev.touch_screen());
    send(
        &kb,
        &[key(28, 1), key(28, 2), key(28, 2), key(28, 0)].concat(),
    );
    assert_eq!(ev.poll(), [Button::Capture]);
    assert!(ev.poll().is_empty());
    // A keypad plugged in after start: found at the next scan.
    let pad = fake.plug(dir.path(), "event7", keyboard());
    send(&pad, &key(77, 1)); // KP6
    assert!(ev.poll().is_empty(), "not before the scan is due");
    ev.rescan();
    assert_eq!(ev.devices().len(), 2);
    assert_eq!(ev.poll(), [Button::Next]);
    send(&kb, &key(105, 1));
    send(&pad, &key(75, 1));
    assert_eq!(ev.poll(), [Button::Back, Button::Back]);
    assert!(ev.log.iter().any(|l| l.contains("using USB Keyboard")));
}

#[test]
fn an_unplugged_device_is_dropped_once_and_a_new_one_taken() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let kb = fake.plug(dir.path(), "event3", keyboard());
    let mut ev = Evdev::with(dir.path(), fake.clone(), KeyMap::default());
    kb.lock().unwrap().push_back(Chunk::Errno(libc::ENODEV));
    assert!(ev.poll().is_empty());
    assert!(ev.devices().is_empty());
    let before = ev.log.len();
    assert!(ev.log.last().unwrap().contains("unplugged"), "{:?}", ev.log);
    std::fs::remove_file(dir.path().join("event3")).unwrap();
    for _ in 0..5 {
        ev.rescan();
        assert!(ev.poll().is_empty());
    }
    assert_eq!(ev.log.len(), before, "no more lines: {:?}", ev.log);
    // Plugged back in under the same name.
    let kb = fake.plug(dir.path(), "event3", keyboard());
    ev.rescan();
    send(&kb, &key(49, 1));
    assert_eq!(ev.poll(), [Button::Next]);
}

#[test]
fn a_failing_device_is_not_reopened_at_every_scan() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let kb = fake.plug(dir.path(), "event1", keyboard());
    let mut ev = Evdev::with(dir.path(), fake.clone(), KeyMap::default());
    kb.lock().unwrap().push_back(Chunk::Errno(libc::EIO));
    assert!(ev.poll().is_empty());
    for _ in 0..5 {
        ev.rescan();
    }
    assert_eq!(fake.opens_of("event1"), 1);
    assert_eq!(ev.log.len(), 2, "using, dropped: {:?}", ev.log);
}

#[test]
fn permission_denied_is_said_once_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    fake.deny(dir.path(), "event0", libc::EACCES);
    fake.deny(dir.path(), "event1", libc::EACCES);
    let mut ev = Evdev::with(dir.path(), fake.clone(), KeyMap::default());
    for _ in 0..5 {
        ev.rescan();
        ev.poll();
    }
    assert_eq!(ev.log.len(), 1, "{:?}", ev.log);
    assert!(ev.log[0].contains("group input"), "{}", ev.log[0]);
    // Not opened again until the node changes (udev giving it to the group does).
    assert_eq!(fake.opens_of("event0"), 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::Permissions::from_mode(0o640);
    std::fs::set_permissions(dir.path().join("event0"), mode).unwrap();
    let kb = fake.plug(dir.path(), "event0", keyboard());
    ev.rescan();
    send(&kb, &key(57, 1));
    assert_eq!(ev.poll(), [Button::Capture]);
    // The device cgroup (systemd's DevicePolicy) refuses with EPERM: its own hint.
    fake.deny(dir.path(), "event5", libc::EPERM);
    ev.rescan();
    assert!(ev.log.last().unwrap().contains("DeviceAllow=char-input"));
}

#[test]
fn devices_without_mapped_keys_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    fake.plug(
        dir.path(),
        "event0",
        Caps {
            name: "Power Button".into(),
            keys: vec![116],
            touch: None,
        },
    );
    std::fs::write(dir.path().join("mouse0"), b"").unwrap(); // not an event node
    std::fs::write(dir.path().join("event9"), b"").unwrap(); // ENOTTY: not a device
    let mut ev = Evdev::with(dir.path(), fake.clone(), KeyMap::default());
    for _ in 0..5 {
        ev.rescan();
    }
    assert!(ev.devices().is_empty());
    assert_eq!(fake.opens_of("event0"), 1);
    assert_eq!(fake.opens_of("event9"), 1);
    assert_eq!(fake.opens_of("mouse0"), 0);
    assert_eq!(ev.log.len(), 1, "{:?}", ev.log); // event9, once
                                                 // With a map that uses the power key, it is a button.
    let ev = Evdev::with(
        dir.path(),
        fake.clone(),
        KeyMap::parse("capture=116").unwrap(),
    );
    assert_eq!(ev.devices().len(), 1);
}

#[test]
fn a_missing_folder_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("input");
    let mut ev = Evdev::with(&gone, Fake::default(), KeyMap::default());
    for _ in 0..3 {
        ev.rescan();
        assert!(ev.poll().is_empty());
    }
    assert_eq!(ev.log.len(), 1, "{:?}", ev.log);
}

#[test]
fn taps_on_the_on_screen_buttons() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let axis = Axis { min: 0, max: 1000 };
    let screen = fake.plug(
        dir.path(),
        "event2",
        Caps {
            name: "Touch".into(),
            keys: vec![BTN_TOUCH],
            touch: Some(TouchAxes {
                x_code: ABS_X,
                y_code: ABS_Y,
                contact: BTN_TOUCH,
                x: axis,
                y: axis,
            }),
        },
    );
    let mut ev = Evdev::with(dir.path(), fake.clone(), KeyMap::default());
    assert!(ev.touch_screen());
    let tap = |x: i32, y: i32| {
        let abs = |code, value| Event {
            kind: EV_ABS,
            code,
            value,
        };
        [
            vec![abs(ABS_X, x), abs(ABS_Y, y)],
            key(BTN_TOUCH, 1).to_vec(),
            key(BTN_TOUCH, 0).to_vec(),
        ]
        .concat()
    };
    for (x, want) in [
        (100, Button::Back),
        (500, Button::Capture),
        (900, Button::Next),
    ] {
        send(&screen, &tap(x, 950));
        assert_eq!(ev.poll(), [want], "x {x}");
    }
    // A tap on the picture above the buttons presses nothing.
    send(&screen, &tap(500, 300));
    assert!(ev.poll().is_empty());
    screen.lock().unwrap().push_back(Chunk::Errno(libc::ENODEV));
    ev.poll();
    assert!(!ev.touch_screen());
}
