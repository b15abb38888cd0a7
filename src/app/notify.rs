//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`), without linking libsystemd:
//! one datagram per message to the socket named in `$NOTIFY_SOCKET`.
//!
//! Outside systemd (no `$NOTIFY_SOCKET`) every call is a no-op, so the kiosk loop calls these
//! unconditionally.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

enum Target {
    Path(PathBuf),
    /// Linux abstract socket name (`@name` in `$NOTIFY_SOCKET`), without the leading `@`.
    Abstract(Vec<u8>),
}

/// Sends service state to systemd; does nothing outside systemd.
pub struct Notifier {
    target: Option<(UnixDatagram, Target)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Read `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` (systemd sets them).
    pub fn from_env() -> Notifier {
        Self::from_values(
            std::env::var_os("NOTIFY_SOCKET").map(PathBuf::from),
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        )
    }

    fn from_values(
        socket: Option<PathBuf>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        pid: u32,
    ) -> Notifier {
        let target = socket.and_then(|p| {
            let bytes = p.as_os_str().as_encoded_bytes();
            let target = match bytes.first() {
                Some(b'@') => Target::Abstract(bytes[1..].to_vec()),
                Some(b'/') => Target::Path(p.clone()),
                _ => return None, // vsock and other forms: not for a board service
            };
            UnixDatagram::unbound().ok().map(|s| (s, target))
        });
        // The watchdog applies to us only if systemd named our pid (or no pid at all).
        let ours = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>().ok() == Some(pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && ours)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// How often to send `WATCHDOG=1`: half the configured timeout, as systemd advises.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    /// Tell systemd the service is up (`READY=1`), with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// Update the status line `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// Reset systemd's watchdog timer (`WATCHDOG=1`), when a watchdog is set for this process.
    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send("WATCHDOG=1");
        }
    }

    /// Tell systemd the service is shutting down (`STOPPING=1`).
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// Best effort: if systemd is gone there is nobody to tell, and the kiosk must go on.
    fn send(&self, msg: &str) {
        let Some((sock, target)) = &self.target else {
            return;
        };
        let _ = match target {
            Target::Path(p) => sock.send_to(msg.as_bytes(), p),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                match std::os::unix::net::SocketAddr::from_abstract_name(name) {
                    Ok(addr) => sock.send_to_addr(msg.as_bytes(), &addr),
                    Err(e) => Err(e),
                }
            }
        };
    }
}

/// A status as one short line: every datagram line is an assignment to systemd, so text that
/// came from a file (an error message quoting its header) must not be able to add one, such as
/// `WATCHDOG_USEC=1`.
fn one_line(status: &str) -> String {
    const MAX: usize = 200;
    let flat: String = status
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(s: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = s.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_ready_status_and_watchdog_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::from_values(Some(path), Some("20000000"), None, 42);
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(10)));
        n.ready("model loaded");
        assert_eq!(recv(&server), "READY=1\nSTATUS=model loaded");
        n.watchdog();
        assert_eq!(recv(&server), "WATCHDOG=1");
        // Text from a file cannot add an assignment of its own.
        n.status("Not a radiograph: CT\nWATCHDOG_USEC=1\nX");
        let got = recv(&server);
        assert_eq!(got.lines().count(), 1, "{got:?}");
        assert!(
            got.starts_with("STATUS=Not a radiograph: CT WATCHDOG_USEC=1 X"),
            "{got}"
        );
        n.status(&"x".repeat(5000));
        assert!(recv(&server).len() < 220);
    }

    #[test]
    fn abstract_socket_names_work() {
        let name = format!("cxr-edge-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::from_values(Some(PathBuf::from(format!("@{name}"))), None, None, 1);
        n.status("idle");
        assert_eq!(recv(&server), "STATUS=idle");
    }

    #[test]
    fn watchdog_for_another_pid_or_no_socket_is_ignored() {
        let n = Notifier::from_values(None, Some("1000000"), Some("7"), 8);
        assert_eq!(n.watchdog_interval(), None);
        n.ready("nobody listens"); // no socket: must not panic
        let n = Notifier::from_values(None, Some("1000000"), Some("8"), 8);
        assert_eq!(n.watchdog_interval(), Some(Duration::from_millis(500)));
    }
}
