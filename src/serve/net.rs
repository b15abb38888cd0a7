//! The network edge: a listener that bounds how many connections are open and how long a
//! client may stay silent or connected, and the access-token check.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Open connections at most; more wait in the kernel's backlog until one closes.
pub const MAX_CONNECTIONS: usize = 64;
/// No connection lives longer than this, however busy (slow-drip clients).
const MAX_LIFETIME: Duration = Duration::from_secs(300);

/// A TCP listener whose connections are dropped when the client sends or takes nothing for
/// `idle`, or after [`MAX_LIFETIME`]. hyper's own header timeout needs a timer that
/// `axum::serve` does not set, so the limit sits here, below HTTP, and covers bodies too.
pub struct TimedListener {
    inner: TcpListener,
    idle: Duration,
    slots: Arc<Semaphore>,
}

impl TimedListener {
    pub fn new(inner: TcpListener, idle: Duration) -> Self {
        TimedListener {
            inner,
            idle,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }
}

impl axum::serve::Listener for TimedListener {
    type Io = TimedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (TimedStream::new(stream, self.idle, permit), addr);
                }
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

pub struct TimedStream {
    inner: TcpStream,
    idle: Duration,
    deadline: Instant,
    timer: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl TimedStream {
    fn new(inner: TcpStream, idle: Duration, slot: OwnedSemaphorePermit) -> Self {
        let now = Instant::now();
        let deadline = now + MAX_LIFETIME;
        TimedStream {
            inner,
            idle,
            deadline,
            timer: Box::pin(tokio::time::sleep_until((now + idle).min(deadline))),
            _slot: slot,
        }
    }

    /// Progress was made: the client has `idle` again (never past the deadline).
    fn progressed(&mut self) {
        let next = (Instant::now() + self.idle).min(self.deadline);
        self.timer.as_mut().reset(next);
    }

    /// Pass on what the socket did; if it did nothing, fail once the client has been silent
    /// too long. Progress restarts the clock.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if self.timer.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client too slow: connection closed",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
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
        this.guard(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
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
    fn loopback_addresses() {
        assert!(is_loopback(&"127.0.0.1:8080".parse().unwrap()));
        assert!(is_loopback(&"[::1]:8080".parse().unwrap()));
        assert!(!is_loopback(&"0.0.0.0:8080".parse().unwrap()));
        assert!(!is_loopback(&"192.168.1.20:8080".parse().unwrap()));
    }
}
