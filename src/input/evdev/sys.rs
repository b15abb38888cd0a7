//! The evdev ioctls: what a device is called and which keys and axes it has (`EVIOCGNAME`,
//! `EVIOCGBIT`, `EVIOCGABS`). Request numbers are built with the generic `_IOC` layout
//! (direction in bits 30-31, size in 16-29, type `'E'` in 8-15, number in 0-7), which x86,
//! ARM and AArch64 share.

use std::io;
use std::os::fd::RawFd;

use super::decode::{
    Axis, TouchAxes, ABS_MT_POSITION_X, ABS_MT_POSITION_Y, ABS_X, ABS_Y, BTN_LEFT, BTN_TOUCH,
    EV_ABS, EV_KEY,
};
use super::keys::KEY_MAX;
use super::Caps;

const IOC_READ: u32 = 2;
/// `ABS_MAX`: the highest axis code.
const ABS_MAX: u16 = 0x3f;
/// `EV_MAX`: the highest event type.
const EV_MAX: u16 = 0x1f;

const fn ior(nr: u32, size: usize) -> u32 {
    (IOC_READ << 30) | ((size as u32) << 16) | ((b'E' as u32) << 8) | nr
}

/// `ioctl(fd, request, buf)` for a read ioctl filling `buf`; the byte count it returns.
fn read_ioctl(fd: RawFd, nr: u32, buf: &mut [u8]) -> io::Result<usize> {
    let request = ior(nr, buf.len());
    // SAFETY: a read ioctl writes at most the size encoded in `request`, which is buf.len(),
    // into buf; fd is an open descriptor owned by the caller.
    let n = unsafe { libc::ioctl(fd, request as _, buf.as_mut_ptr()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The bit map of codes of event type `ev` (type 0: the event types themselves).
fn bits(fd: RawFd, ev: u16, max: u16) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; max as usize / 8 + 1];
    read_ioctl(fd, 0x20 + ev as u32, &mut buf)?;
    Ok(buf)
}

fn has(bits: &[u8], code: u16) -> bool {
    bits.get(code as usize / 8)
        .is_some_and(|b| b & (1 << (code % 8)) != 0)
}

/// `EVIOCGABS(code)`: the range of one axis.
fn axis(fd: RawFd, code: u16) -> io::Result<Axis> {
    // struct input_absinfo: value, minimum, maximum, fuzz, flat, resolution (six __s32).
    let mut buf = [0u8; 24];
    read_ioctl(fd, 0x40 + code as u32, &mut buf)?;
    let at = |i: usize| i32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    Ok(Axis {
        min: at(4),
        max: at(8),
    })
}

/// Name, keys and touch axes of the evdev device open on `fd`. ENOTTY: not an evdev device.
pub fn probe(fd: RawFd) -> io::Result<Caps> {
    let mut name = [0u8; 128];
    let n = read_ioctl(fd, 0x06, &mut name).unwrap_or(0).min(name.len());
    let name = String::from_utf8_lossy(&name[..n])
        .trim_end_matches('\0')
        .to_string();
    let types = bits(fd, 0, EV_MAX)?;
    let keys = if has(&types, EV_KEY) {
        bits(fd, EV_KEY, KEY_MAX)?
    } else {
        Vec::new()
    };
    let abs = if has(&types, EV_ABS) {
        bits(fd, EV_ABS, ABS_MAX)?
    } else {
        Vec::new()
    };
    let pair = if has(&abs, ABS_X) && has(&abs, ABS_Y) {
        Some((ABS_X, ABS_Y))
    } else if has(&abs, ABS_MT_POSITION_X) && has(&abs, ABS_MT_POSITION_Y) {
        Some((ABS_MT_POSITION_X, ABS_MT_POSITION_Y))
    } else {
        None
    };
    // A touch pad reports the same axes and BTN_TOUCH but also BTN_TOOL_FINGER and moves a
    // pointer; INPUT_PROP_DIRECT would tell them apart, but a kiosk has no touch pad. An
    // absolute pointer (a touch panel in mouse mode, QEMU's USB tablet) has ABS_X/ABS_Y and
    // BTN_LEFT instead of BTN_TOUCH: its button is the finger. A mouse moves by relative
    // steps (EV_REL), has no absolute axes and is not taken.
    let contact = if has(&keys, BTN_TOUCH) {
        Some(BTN_TOUCH)
    } else if pair == Some((ABS_X, ABS_Y)) && has(&keys, BTN_LEFT) {
        Some(BTN_LEFT)
    } else {
        None
    };
    let touch = match (pair, contact) {
        (Some((x_code, y_code)), Some(contact)) => Some(TouchAxes {
            x_code,
            y_code,
            contact,
            x: axis(fd, x_code)?,
            y: axis(fd, y_code)?,
        }),
        _ => None,
    };
    Ok(Caps {
        name,
        keys: (0..=KEY_MAX).filter(|&c| has(&keys, c)).collect(),
        touch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_the_kernel_macros() {
        // EVIOCGNAME(128), EVIOCGBIT(EV_KEY, 96), EVIOCGABS(ABS_Y) from <linux/input.h>.
        assert_eq!(ior(0x06, 128), 0x8080_4506);
        assert_eq!(ior(0x21, 96), 0x8060_4521);
        assert_eq!(ior(0x41, 24), 0x8018_4541);
    }

    #[test]
    fn bits_are_little_endian_per_byte() {
        let mut b = vec![0u8; 96];
        b[(BTN_TOUCH / 8) as usize] |= 1 << (BTN_TOUCH % 8);
        assert!(has(&b, BTN_TOUCH) && !has(&b, BTN_TOUCH + 1) && !has(&b, 2000));
    }

    #[test]
    fn a_file_that_is_no_device_is_refused() {
        use std::os::fd::AsRawFd;
        let f = tempfile::tempfile().unwrap();
        let e = probe(f.as_raw_fd()).unwrap_err();
        // The kernel answers ENOTTY; qemu-user (the ARM tests) answers ENOSYS for an evdev
        // ioctl on a file it cannot pass through. Either way the file is refused.
        let code = e.raw_os_error();
        assert!(
            code == Some(libc::ENOTTY)
                || (cfg!(not(target_arch = "x86_64")) && code == Some(libc::ENOSYS)),
            "{e}"
        );
    }
}
