//! The network edge: a listener that bounds how many connections are open, how many one
//! address may hold, how long a client may take to send its request headers and how long it may
//! stay silent or connected; and the access-token check.
//!
//! Why below HTTP: hyper's own header timeout needs a timer that `axum::serve` does not set, and
//! a client that drips one header byte every few seconds must not keep a slot for minutes. The
//! rules, each against a way to starve the server before any token is checked:
//! - request headers must be complete within [`HEADER_DEADLINE`] of the connection opening (or
//!   of the last answer on a kept-alive connection); bytes arriving do not extend it;
//! - a connection silent for `idle` is dropped, and none lives past [`MAX_LIFETIME`];
//! - at most [`MAX_PER_ADDRESS`] connections per client address and [`MAX_CONNECTIONS`] in all;
//!   when either is reached, the oldest connection that has not yet sent a complete request
//!   (a slow or idle one, never one being answered) is dropped to make room.
//!
//! The upload body is bounded by the handler's own deadline (`body_timeout`), which progress does
//! not extend either.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::worker::lock;

/// Open connections at most; when all of them are busy answering, more wait in the kernel's
/// backlog until one closes.
pub const MAX_CONNECTIONS: usize = 64;
/// Open connections from one client address at most.
pub const MAX_PER_ADDRESS: usize = 16;
/// Time from opening a connection (or from the last answer on it) to the end of the request
/// headers. A browser sends them in one packet.
pub const HEADER_DEADLINE: Duration = Duration::from_secs(10);
/// No connection lives longer than this, however busy (slow-drip clients).
const MAX_LIFETIME: Duration = Duration::from_secs(300);

/// One open connection as the listener sees it.
struct Entry {
    id: u64,
    ip: IpAddr,
    /// When it last started waiting for a request (accepted, or answered).
    since: Instant,
    /// True while it has not sent a complete request: it may be dropped to make room.
    waiting: Arc<AtomicBool>,
    /// Sending (or dropping) this closes the connection.
    drop_it: oneshot::Sender<()>,
}

/// The open connections, shared by the listener and each connection (which leaves on drop).
#[derive(Default)]
struct Open {
    next_id: u64,
    entries: Vec<Entry>,
}

impl Open {
    fn count_from(&self, ip: IpAddr) -> usize {
        self.entries.iter().filter(|e| e.ip == ip).count()
    }

    /// Drop the connection that has waited longest without a complete request, from `ip` if
    /// given. False when every such connection is busy with a request.
    fn drop_oldest_waiting(&mut self, ip: Option<IpAddr>) -> bool {
        let oldest = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| ip.is_none_or(|ip| e.ip == ip) && e.waiting.load(Ordering::Acquire))
            .min_by_key(|(_, e)| e.since)
            .map(|(i, _)| i);
        match oldest {
            Some(i) => {
                let e = self.entries.swap_remove(i);
                let _ = e.drop_it.send(());
                true
            }
            None => false,
        }
    }
}

/// A TCP listener that enforces the rules in the module doc.
pub struct TimedListener {
    inner: TcpListener,
    idle: Duration,
    slots: Arc<Semaphore>,
    open: Arc<Mutex<Open>>,
}

impl TimedListener {
    /// Wrap `inner`; a client silent for `idle` is dropped.
    pub fn new(inner: TcpListener, idle: Duration) -> Self {
        TimedListener {
            inner,
            idle,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            open: Arc::new(Mutex::new(Open::default())),
        }
    }

    /// Make room for one more connection from `ip`: false when that address already holds
    /// [`MAX_PER_ADDRESS`] connections that are all being answered.
    fn make_room(&self, ip: IpAddr) -> bool {
        let mut open = lock(&self.open);
        if open.count_from(ip) >= MAX_PER_ADDRESS && !open.drop_oldest_waiting(Some(ip)) {
            return false;
        }
        if open.entries.len() >= MAX_CONNECTIONS {
            // None waiting: the new one waits below for a slot, as in the kernel's backlog.
            open.drop_oldest_waiting(None);
        }
        true
    }

    fn register(&self, ip: IpAddr) -> Registered {
        let (drop_it, dropped) = oneshot::channel();
        let waiting = Arc::new(AtomicBool::new(true));
        let mut open = lock(&self.open);
        open.next_id += 1;
        let id = open.next_id;
        open.entries.push(Entry {
            id,
            ip,
            since: Instant::now(),
            waiting: waiting.clone(),
            drop_it,
        });
        Registered {
            id,
            open: self.open.clone(),
            waiting,
            dropped,
            was_dropped: false,
        }
    }
}

impl axum::serve::Listener for TimedListener {
    type Io = TimedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Closed unanswered: that address already has its share being answered. Not
            // logged: a flood of these would flood the journal too.
            if !self.make_room(addr.ip()) {
                continue;
            }
            let permit = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let _ = stream.set_nodelay(true);
            let registered = self.register(addr.ip());
            return (
                TimedStream::new(stream, self.idle, permit, registered),
                addr,
            );
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection's place in [`Open`]; leaves it on drop.
struct Registered {
    id: u64,
    open: Arc<Mutex<Open>>,
    waiting: Arc<AtomicBool>,
    dropped: oneshot::Receiver<()>,
    /// `dropped` has answered: the connection was dropped to make room.
    was_dropped: bool,
}

impl Registered {
    /// Set whether the connection is waiting for a request; a new wait starts its clock.
    fn set_waiting(&self, waiting: bool) {
        if self.waiting.swap(waiting, Ordering::AcqRel) != waiting && waiting {
            let mut open = lock(&self.open);
            if let Some(e) = open.entries.iter_mut().find(|e| e.id == self.id) {
                e.since = Instant::now();
            }
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.open).entries.retain(|e| e.id != self.id);
    }
}

/// Where a connection is in its request.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Phase {
    /// Reading request headers; `matched` bytes of "\r\n\r\n" seen so far.
    Headers { deadline: Instant, matched: u8 },
    /// Headers complete: reading the body, or being answered.
    Request,
}

/// A connection under the rules in the module doc.
pub struct TimedStream {
    inner: TcpStream,
    idle: Duration,
    lifetime_end: Instant,
    phase: Phase,
    /// Bytes were written since the last flush (an answer is going out).
    wrote: bool,
    timer: Pin<Box<Sleep>>,
    registered: Registered,
    _slot: OwnedSemaphorePermit,
}

impl TimedStream {
    fn new(
        inner: TcpStream,
        idle: Duration,
        slot: OwnedSemaphorePermit,
        registered: Registered,
    ) -> Self {
        let now = Instant::now();
        let mut s = TimedStream {
            inner,
            idle,
            lifetime_end: now + MAX_LIFETIME,
            phase: Phase::Headers {
                deadline: now + HEADER_DEADLINE,
                matched: 0,
            },
            wrote: false,
            timer: Box::pin(tokio::time::sleep_until(now)),
            registered,
            _slot: slot,
        };
        s.progressed();
        s
    }

    /// Progress was made: the client has `idle` again, never past the header deadline (while
    /// headers are due) or the connection's lifetime.
    fn progressed(&mut self) {
        let mut next = (Instant::now() + self.idle).min(self.lifetime_end);
        if let Phase::Headers { deadline, .. } = self.phase {
            next = next.min(deadline);
        }
        self.timer.as_mut().reset(next);
    }

    /// Follow the request headers through bytes the client sent.
    fn read_bytes(&mut self, data: &[u8]) {
        if let Phase::Headers { matched, .. } = &mut self.phase {
            if let Some(done) = end_of_headers(*matched, data) {
                *matched = done;
                if done == 4 {
                    self.phase = Phase::Request;
                    self.registered.set_waiting(false);
                }
            }
        }
    }

    /// The server finished an answer (wrote and flushed it): a kept-alive connection now waits
    /// for its next request.
    fn answered(&mut self) {
        if std::mem::take(&mut self.wrote) && self.phase == Phase::Request {
            self.phase = Phase::Headers {
                deadline: Instant::now() + HEADER_DEADLINE,
                matched: 0,
            };
            self.registered.set_waiting(true);
            self.progressed();
        }
    }

    /// Pass on what the socket did; if it did nothing, fail once the client has been too slow
    /// or was dropped to make room. Progress restarts the idle clock.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        // A oneshot receiver must not be polled again once it has answered.
        if !self.registered.was_dropped
            && Pin::new(&mut self.registered.dropped).poll(cx).is_ready()
        {
            self.registered.was_dropped = true;
        }
        if self.registered.was_dropped {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "dropped to make room: no complete request yet",
            )));
        }
        match polled {
            Poll::Ready(r) => {
                self.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if self.timer.as_mut().poll(cx).is_ready() => {
                let why = match self.phase {
                    Phase::Headers { deadline, .. } if Instant::now() >= deadline => {
                        "request headers not complete in time: connection closed"
                    }
                    _ => "client too slow: connection closed",
                };
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Continue matching "\r\n\r\n" through `data` from `matched` bytes already seen; the new
/// count (4 when the headers ended), or None when `data` is empty.
fn end_of_headers(mut matched: u8, data: &[u8]) -> Option<u8> {
    if data.is_empty() {
        return None;
    }
    const END: &[u8; 4] = b"\r\n\r\n";
    for &b in data {
        matched = if b == END[matched as usize] {
            matched + 1
        } else if b == b'\r' {
            1
        } else {
            0
        };
        if matched == 4 {
            return Some(4);
        }
    }
    Some(matched)
}

impl AsyncRead for TimedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.read_bytes(&buf.filled()[before..]);
        }
        this.guard(cx, polled)
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.wrote |= n > 0;
        }
        this.guard(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = polled {
            self.answered();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Compare a presented token with the configured one in time that does not depend on where
/// they differ, nor on the presented token's length (both are hashed to 32 bytes first).
pub fn token_matches(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether `addr` can only be reached from this machine.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(token_matches(
            "correct horse battery",
            "correct horse battery"
        ));
        assert!(!token_matches(
            "correct horse batterz",
            "correct horse battery"
        ));
        assert!(!token_matches("", "correct horse battery"));
        assert!(!token_matches(
            "correct horse battery ",
            "correct horse battery"
        ));
    }

    #[test]
    fn the_end_of_headers_is_found_across_reads() {
        assert_eq!(end_of_headers(0, b""), None);
        assert_eq!(
            end_of_headers(0, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(4)
        );
        // Split anywhere, one byte at a time included.
        let whole = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..whole.len() {
            let m = end_of_headers(0, &whole[..cut]).unwrap_or(0);
            assert_eq!(end_of_headers(m, &whole[cut..]), Some(4), "cut at {cut}");
        }
        let mut m = 0;
        for b in whole.iter() {
            m = end_of_headers(m, std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(m, 4);
        // One line end, or "\r\r\n\n", is not the end.
        assert_eq!(end_of_headers(0, b"GET / HTTP/1.1\r\n"), Some(2));
        assert_eq!(end_of_headers(0, b"a\r\r\n\n"), Some(0));
        assert_eq!(end_of_headers(0, b"a\r\n\r\r\n\r\n"), Some(4));
    }

    #[test]
    fn the_oldest_waiting_connection_makes_room_never_a_busy_one() {
        let mut open = Open::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        let mut closed = Vec::new();
        for (id, ip, secs, waiting) in [
            (1, a, 0, false),
            (2, a, 1, true),
            (3, b, 2, true),
            (4, a, 3, true),
        ] {
            let (drop_it, dropped) = oneshot::channel();
            open.entries.push(Entry {
                id,
                ip,
                since: t0 + Duration::from_secs(secs),
                waiting: Arc::new(AtomicBool::new(waiting)),
                drop_it,
            });
            closed.push(dropped);
        }
        assert_eq!(open.count_from(a), 3);
        // From b: only 3 is b's.
        assert!(open.drop_oldest_waiting(Some(b)));
        assert!(closed[2].try_recv().is_ok());
        // Any address: 1 is older but busy, so 2 goes, then 4, then nothing is left to drop.
        assert!(open.drop_oldest_waiting(None));
        assert!(closed[1].try_recv().is_ok());
        assert!(open.drop_oldest_waiting(Some(a)));
        assert!(closed[3].try_recv().is_ok());
        assert!(!open.drop_oldest_waiting(None));
        assert!(closed[0].try_recv().is_err());
        assert_eq!(open.entries.len(), 1);
    }

    #[test]
    fn loopback_addresses() {
        assert!(is_loopback(&"127.0.0.1:8080".parse().unwrap()));
        assert!(is_loopback(&"[::1]:8080".parse().unwrap()));
        assert!(!is_loopback(&"0.0.0.0:8080".parse().unwrap()));
        assert!(!is_loopback(&"192.168.1.20:8080".parse().unwrap()));
    }
}
