//! The framed relay: bytes flow both ways unchanged, but the relay knows
//! where every message starts (`latchkey-pg-stream`). That lets it
//!
//! - follow statements and their results for the audit log,
//! - know when the upstream connection is idle and safe to reuse,
//! - refuse oversized client messages,
//! - end a session at a message boundary with an error the client can
//!   read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use latchkey_pg_stream::{Buffer, Direction, ScanError, Tracker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::upstream::Upstream;

/// Why the relay stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client sent `Terminate`.
    ClientTerminated,
    /// The client closed the connection.
    ClientClosed,
    /// The server closed the connection (after any error it sent has been
    /// passed on).
    UpstreamClosed,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("client: {0}")]
    Client(io::Error),
    #[error("upstream: {0}")]
    Upstream(io::Error),
    #[error("client message of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("client sent a malformed message header")]
    Malformed,
}

impl From<ScanError> for RelayError {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::TooLarge(n) => RelayError::TooLarge(n),
            ScanError::Malformed => RelayError::Malformed,
        }
    }
}

/// Which side an I/O error is blamed on.
type ErrorSide = fn(io::Error) -> RelayError;

/// What a direction's poll ended with.
enum HalfEnd {
    Eof,
    Terminated,
}

/// One direction of the relay.
#[derive(Default)]
struct Half {
    buffer: Buffer,
    unflushed: bool,
    eof: bool,
}

impl Half {
    /// Moves bytes from `src` to `dst` until one side ends or blocks.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut src: Pin<&mut R>,
        mut dst: Pin<&mut W>,
        tracker: &mut Tracker,
        max_message: usize,
    ) -> Poll<Result<HalfEnd, RelayError>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        let (read_err, write_err): (ErrorSide, ErrorSide) = match direction {
            Direction::ToUpstream => (RelayError::Client, RelayError::Upstream),
            Direction::ToClient => (RelayError::Upstream, RelayError::Client),
        };
        loop {
            while !self.buffer.writable().is_empty() {
                let n = ready!(dst.as_mut().poll_write(cx, self.buffer.writable()))
                    .map_err(write_err)?;
                if n == 0 {
                    return Poll::Ready(Err(write_err(io::ErrorKind::WriteZero.into())));
                }
                self.buffer.wrote(n);
                self.unflushed = true;
            }
            if self.buffer.terminated() || self.eof {
                if self.unflushed {
                    ready!(dst.as_mut().poll_flush(cx)).map_err(write_err)?;
                    self.unflushed = false;
                }
                return Poll::Ready(Ok(if self.buffer.terminated() {
                    HalfEnd::Terminated
                } else {
                    HalfEnd::Eof
                }));
            }
            self.buffer.make_room();
            let mut read = ReadBuf::new(self.buffer.space());
            match src.as_mut().poll_read(cx, &mut read) {
                Poll::Pending => {
                    if self.unflushed {
                        ready!(dst.as_mut().poll_flush(cx)).map_err(write_err)?;
                        self.unflushed = false;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(read_err(e))),
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    if n == 0 {
                        self.eof = true;
                        continue;
                    }
                    self.buffer.filled(n);
                }
            }
            self.buffer.scan(direction, tracker, max_message)?;
        }
    }
}

/// A client and its upstream, relayed.
pub struct Relay<C> {
    pub client: C,
    pub upstream: Upstream,
    pub tracker: Tracker,
    to_upstream: Half,
    to_client: Half,
    max_message: usize,
}

impl<C: AsyncRead + AsyncWrite + Unpin> Relay<C> {
    pub fn new(client: C, upstream: Upstream, tracker: Tracker, max_message: usize) -> Self {
        Self {
            client,
            upstream,
            tracker,
            to_upstream: Half::default(),
            to_client: Half::default(),
            max_message,
        }
    }

    /// Relays until one side ends.
    pub fn poll_relay(&mut self, cx: &mut Context<'_>) -> Poll<Result<End, RelayError>> {
        let Self {
            client,
            upstream,
            tracker,
            to_upstream,
            to_client,
            max_message,
        } = self;
        if let Poll::Ready(r) = to_upstream.poll_copy(
            cx,
            Direction::ToUpstream,
            Pin::new(&mut *client),
            Pin::new(&mut upstream.stream),
            tracker,
            *max_message,
        ) {
            return Poll::Ready(r.map(|end| match end {
                HalfEnd::Terminated => End::ClientTerminated,
                HalfEnd::Eof => End::ClientClosed,
            }));
        }
        if let Poll::Ready(r) = to_client.poll_copy(
            cx,
            Direction::ToClient,
            Pin::new(&mut upstream.stream),
            Pin::new(&mut *client),
            tracker,
            usize::MAX,
        ) {
            return Poll::Ready(r.map(|_| End::UpstreamClosed));
        }
        Poll::Pending
    }

    /// Relays until one side ends.
    pub async fn run(&mut self) -> Result<End, RelayError> {
        std::future::poll_fn(|cx| self.poll_relay(cx)).await
    }

    /// The client has been sent only whole messages, so the gateway may
    /// send one of its own.
    pub fn client_at_boundary(&self) -> bool {
        self.to_client.buffer.at_boundary()
    }

    /// The upstream connection is between transactions with nothing in
    /// flight either way: it can be reset and reused.
    pub fn reusable(&self) -> bool {
        self.tracker.idle()
            && self.to_client.buffer.at_boundary()
            && self.to_upstream.buffer.nothing_in_flight()
    }

    /// Bytes (from the client, to the client).
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.to_upstream.buffer.written(),
            self.to_client.buffer.written(),
        )
    }
}
