//! The text console out of the way of a framebuffer screen. The kernel's console draws its text
//! and blinking cursor into the same framebuffer (`/dev/fb0`) the kiosk draws into; switching
//! the active virtual terminal to graphics mode (`KDSETMODE KD_GRAPHICS`, what X servers do)
//! stops that until text mode is given back, which [`ConsoleGraphics`] does when dropped.
//!
//! Setting the mode needs the VT to be the process's controlling terminal or the capability
//! `CAP_SYS_TTY_CONFIG`, and write access to `/dev/tty0` (group tty) or `/dev/ttyN`. Without
//! them the framebuffer still works; the console may then draw over it, and a warning says so
//! once.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, Result};

// From <linux/kd.h> and <linux/vt.h>.
const KDSETMODE: libc::c_ulong = 0x4B3A;
const KDGETMODE: libc::c_ulong = 0x4B3B;
const VT_GETSTATE: libc::c_ulong = 0x5603;
const KD_TEXT: libc::c_int = 0;
const KD_GRAPHICS: libc::c_int = 1;

/// `struct vt_stat`.
#[repr(C)]
#[derive(Default)]
struct VtStat {
    v_active: libc::c_ushort,
    v_signal: libc::c_ushort,
    v_state: libc::c_ushort,
}

/// The active VT in graphics mode while this lives.
pub struct ConsoleGraphics {
    tty: File,
    path: PathBuf,
    previous: libc::c_int,
}

impl ConsoleGraphics {
    /// Switch the active VT to graphics mode.
    pub fn enter() -> Result<ConsoleGraphics> {
        let path = active_vt()?;
        let tty = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| anyhow!("cannot open {}: {e}", path.display()))?;
        let mut previous: libc::c_int = KD_TEXT;
        // SAFETY: KDGETMODE writes one int (the kernel's put_user of an unsigned int).
        if unsafe {
            libc::ioctl(
                tty.as_raw_fd(),
                KDGETMODE as _,
                &mut previous as *mut libc::c_int,
            )
        } < 0
        {
            return Err(anyhow!(
                "{} is not a virtual terminal: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: KDSETMODE takes its argument by value.
        if unsafe { libc::ioctl(tty.as_raw_fd(), KDSETMODE as _, KD_GRAPHICS) } < 0 {
            return Err(anyhow!(
                "cannot switch {} to graphics mode: {} (needs CAP_SYS_TTY_CONFIG or the VT as controlling terminal)",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(ConsoleGraphics {
            tty,
            path,
            previous,
        })
    }

    /// Graphics mode if it can be had; otherwise `None`, with a warning the first time.
    pub fn try_enter() -> Option<ConsoleGraphics> {
        static WARNED: AtomicBool = AtomicBool::new(false);
        match ConsoleGraphics::enter() {
            Ok(c) => Some(c),
            Err(e) => {
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!("the text console stays in text mode, so its text and cursor may show over the screen: {e:#}");
                }
                None
            }
        }
    }

    /// The VT switched to graphics mode.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ConsoleGraphics {
    fn drop(&mut self) {
        // SAFETY: as in `enter`.
        unsafe { libc::ioctl(self.tty.as_raw_fd(), KDSETMODE as _, self.previous) };
    }
}

/// `/dev/ttyN` of the active VT (asked through `/dev/tty0`), else `/dev/tty1`.
fn active_vt() -> Result<PathBuf> {
    let Ok(tty0) = OpenOptions::new().write(true).open("/dev/tty0") else {
        return Ok(PathBuf::from("/dev/tty1"));
    };
    let mut st = VtStat::default();
    // SAFETY: VT_GETSTATE fills one struct vt_stat.
    if unsafe { libc::ioctl(tty0.as_raw_fd(), VT_GETSTATE as _, &mut st as *mut VtStat) } < 0
        || st.v_active == 0
    {
        return Ok(PathBuf::from("/dev/tty1"));
    }
    Ok(vt_path(st.v_active))
}

/// The device of VT number `n`.
fn vt_path(n: u16) -> PathBuf {
    PathBuf::from(format!("/dev/tty{n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vt_paths_and_struct_layout() {
        assert_eq!(vt_path(2), PathBuf::from("/dev/tty2"));
        // struct vt_stat is three unsigned shorts.
        assert_eq!(std::mem::size_of::<VtStat>(), 6);
        assert_eq!(
            (KDSETMODE, KDGETMODE, VT_GETSTATE),
            (0x4B3A, 0x4B3B, 0x5603)
        );
    }
}
