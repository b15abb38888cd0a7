//! Stopping `cxr-edge run` cleanly. systemd stops the service with SIGTERM, a person at a
//! terminal with Ctrl-C (SIGINT); by default either kills the process on the spot, and then no
//! destructor runs: the console would stay in graphics mode and a DRM screen would keep the
//! kiosk's last picture. [`install`] turns both into a flag the loops look at ([`requested`]),
//! so `run` returns, the display is dropped (giving the screen back) and the process exits.
//!
//! The handler resets itself (`SA_RESETHAND`): a second signal kills the process as before, so a
//! loop that does not notice the flag (an analysis that hangs) can still be stopped. Once
//! everything is dropped, [`exit_by_signal`] ends the process by the same signal, so systemd
//! and shells see the exit they saw before (a stop, not a failure with the run's exit code).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The signal caught, 0 for none.
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// A new model is current: the loops end as for a stop, and `run` loads it and goes on.
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    // An atomic store is async-signal-safe; nothing else is done here.
    CAUGHT.store(sig, Ordering::SeqCst);
}

/// Catch SIGTERM and SIGINT (once each) for [`requested`].
pub fn install() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is valid (no flags, empty mask) before the fields below
        // are set; the handler only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // Restart interrupted system calls: a camera read must not fail because of it.
            sa.sa_flags = libc::SA_RESTART | libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                tracing::warn!(
                    "cannot catch signal {sig}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// A stop (or a model reload) was asked for: finish what is in hand, then return.
pub fn requested() -> bool {
    CAUGHT.load(Ordering::SeqCst) != 0 || RELOAD.load(Ordering::SeqCst)
}

/// A signal asked for a stop (not a reload).
pub fn signalled() -> bool {
    CAUGHT.load(Ordering::SeqCst) != 0
}

/// Ask the kiosk's loops to return so that `run` reloads the model.
pub fn ask_reload() {
    RELOAD.store(true, Ordering::SeqCst);
}

/// Whether a reload was asked for since the last call (and forget it).
pub fn take_reload() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}

/// If a signal stopped the run, end the process by that signal now (its default action);
/// otherwise return. Call it once the display and everything else are dropped.
pub fn exit_by_signal() {
    let sig = CAUGHT.load(Ordering::SeqCst);
    if sig != 0 {
        // SAFETY: restoring the default action and raising a signal are plain libc calls.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}
