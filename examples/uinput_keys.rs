//! A real-device check of the evdev buttons: create a virtual USB keyboard through uinput,
//! press Enter (held, so it autorepeats), Right and Left on it, and print the buttons
//! cxr-edge reads from `/dev/input`. Needs root (or write access to `/dev/uinput`) and the
//! `uinput` module; exits 2 when that is not there, 1 when the presses do not come out as
//! capture, next, back.
//!
//! ```sh
//! sudo modprobe uinput
//! sudo cargo run --example uinput_keys
//! ```

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use cxr_edge::input::evdev::decode::{Event, EV_KEY, EV_SYN, SYN_REPORT};
use cxr_edge::input::evdev::{Evdev, KeyMap};
use cxr_edge::input::{Button, Buttons};

/// `_IOW('U', nr, int)` and `_IO('U', nr)`.
const fn iow_int(nr: u32) -> u32 {
    (1 << 30) | (4 << 16) | ((b'U' as u32) << 8) | nr
}
const UI_SET_EVBIT: u32 = iow_int(100);
const UI_SET_KEYBIT: u32 = iow_int(101);
const UI_DEV_CREATE: u32 = ((b'U' as u32) << 8) | 1;

fn ioctl(fd: i32, request: u32, arg: libc::c_ulong) -> std::io::Result<()> {
    // SAFETY: the uinput ioctls used here take an integer argument or none.
    if unsafe { libc::ioctl(fd, request as _, arg) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn main() {
    let mut dev = match std::fs::OpenOptions::new().write(true).open("/dev/uinput") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("uinput_keys: cannot open /dev/uinput ({e}); skipped");
            std::process::exit(2);
        }
    };
    let fd = dev.as_raw_fd();
    let keys = [28u16, 105, 106]; // Enter, Left, Right
    let setup = ioctl(fd, UI_SET_EVBIT, EV_KEY as _)
        .and_then(|_| {
            keys.iter()
                .try_for_each(|&k| ioctl(fd, UI_SET_KEYBIT, k as _))
        })
        .and_then(|_| {
            // struct uinput_user_dev: name[80], input_id (4 x u16), ff_effects_max, 4 x 64 axes.
            let mut user_dev = vec![0u8; 80 + 8 + 4 + 4 * 64 * 4];
            let name = b"cxr-edge test keyboard";
            user_dev[..name.len()].copy_from_slice(name);
            user_dev[80..82].copy_from_slice(&3u16.to_ne_bytes()); // BUS_USB
            dev.write_all(&user_dev)
        })
        .and_then(|_| ioctl(fd, UI_DEV_CREATE, 0));
    if let Err(e) = setup {
        eprintln!("uinput_keys: cannot create the virtual keyboard ({e}); skipped");
        std::process::exit(2);
    }
    std::thread::sleep(Duration::from_millis(500)); // udev makes the node
    let mut buttons = Evdev::open(KeyMap::default());
    let press = |dev: &mut std::fs::File, code: u16, values: &[i32]| {
        for &value in values {
            let key = Event {
                kind: EV_KEY,
                code,
                value,
            };
            let syn = Event {
                kind: EV_SYN,
                code: SYN_REPORT,
                value: 0,
            };
            dev.write_all(&[key.to_bytes(), syn.to_bytes()].concat())
                .expect("write to uinput");
        }
    };
    press(&mut dev, 28, &[1, 2, 2, 2, 0]);
    press(&mut dev, 106, &[1, 0]);
    press(&mut dev, 105, &[1, 0]);
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end && got.len() < 3 {
        got.extend(buttons.poll());
        std::thread::sleep(Duration::from_millis(20));
    }
    let names: Vec<&str> = got.iter().map(|b| b.name()).collect();
    println!("uinput_keys: read {}", names.join(", "));
    if got != [Button::Capture, Button::Next, Button::Back] {
        eprintln!("uinput_keys: expected capture, next, back");
        std::process::exit(1);
    }
}
