//! The framed relay: packets flow both ways unchanged, but the relay
//! knows where every packet starts (`latchkey-my-stream`). That lets it
//!
//! - follow commands and their results for the audit log,
//! - know when the upstream connection is idle and safe to reuse,
//! - refuse oversized client commands,
//! - take out the commands the gateway answers itself (`COM_CHANGE_USER`,
//!   `KILL`), once every response before them has reached the client.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use latchkey_my_stream::{Buffer, Direction, Intercepted, ScanError, Tracker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::upstream::Upstream;

/// Why the relay stopped.
#[derive(Debug)]
pub enum Stop {
    /// The client sent `COM_QUIT`.
    ClientQuit,
    /// The client closed the connection.
    ClientClosed,
    /// The server closed the connection (after anything it sent has been
    /// passed on).
    UpstreamClosed,
    /// A command for the gateway to answer; every earlier response has
    /// been delivered. Call [`Relay::run`] again afterwards.
    Intercepted(Intercepted),
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("client: {0}")]
    Client(io::Error),
    #[error("upstream: {0}")]
    Upstream(io::Error),
    #[error("{0}")]
    Scan(#[from] ScanError),
}

/// Which side an I/O error is blamed on.
type ErrorSide = fn(io::Error) -> RelayError;

/// What a direction's poll ended with.
enum HalfEnd {
    Eof,
    Quit,
}

/// One direction of the relay.
#[derive(Default)]
struct Half {
    buffer: Buffer,
    unflushed: bool,
    eof: bool,
    /// Taken out of the stream, waiting for the responses before it.
    intercepted: Option<Intercepted>,
}

impl Half {
    /// Moves bytes from `src` to `dst` until one side ends or blocks.
    #[allow(clippy::too_many_arguments)]
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut src: Pin<&mut R>,
        mut dst: Pin<&mut W>,
        tracker: &mut Tracker,
        max_payload: usize,
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
            if self.unflushed && (self.intercepted.is_some() || self.buffer.terminated()) {
                ready!(dst.as_mut().poll_flush(cx)).map_err(write_err)?;
                self.unflushed = false;
            }
            if self.intercepted.is_some() {
                // Reading stops until the gateway has dealt with it.
                return Poll::Pending;
            }
            if self.buffer.terminated() || self.eof {
                if self.unflushed {
                    ready!(dst.as_mut().poll_flush(cx)).map_err(write_err)?;
                    self.unflushed = false;
                }
                return Poll::Ready(Ok(if self.buffer.terminated() {
                    HalfEnd::Quit
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
            if let Some(taken) = self.buffer.scan(direction, tracker, max_payload)? {
                self.intercepted = Some(taken);
            }
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
    max_payload: usize,
}

impl<C: AsyncRead + AsyncWrite + Unpin> Relay<C> {
    pub fn new(client: C, upstream: Upstream, tracker: Tracker, max_payload: usize) -> Self {
        Self {
            client,
            upstream,
            tracker,
            to_upstream: Half::default(),
            to_client: Half::default(),
            max_payload,
        }
    }

    /// Relays until one side ends or a command is intercepted.
    pub fn poll_relay(&mut self, cx: &mut Context<'_>) -> Poll<Result<Stop, RelayError>> {
        let Self {
            client,
            upstream,
            tracker,
            to_upstream,
            to_client,
            max_payload,
        } = self;
        if let Poll::Ready(r) = to_upstream.poll_copy(
            cx,
            Direction::ToUpstream,
            Pin::new(&mut *client),
            Pin::new(&mut upstream.stream),
            tracker,
            *max_payload,
        ) {
            return Poll::Ready(r.map(|end| match end {
                HalfEnd::Quit => Stop::ClientQuit,
                HalfEnd::Eof => Stop::ClientClosed,
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
            return Poll::Ready(r.map(|_| Stop::UpstreamClosed));
        }
        // An intercepted command is handed over once every response
        // before it has reached the client, so that the gateway's answer
        // comes in its place.
        if to_upstream.intercepted.is_some()
            && to_upstream.buffer.writable().is_empty()
            && !to_upstream.unflushed
            && !tracker.busy()
            && !to_client.unflushed
            && to_client.buffer.at_boundary()
            && let Some(taken) = to_upstream.intercepted.take()
        {
            return Poll::Ready(Ok(Stop::Intercepted(taken)));
        }
        Poll::Pending
    }

    /// Relays until one side ends or a command is intercepted.
    pub async fn run(&mut self) -> Result<Stop, RelayError> {
        std::future::poll_fn(|cx| self.poll_relay(cx)).await
    }

    /// The client has been sent only whole packets and nothing is
    /// awaited, so the gateway may send one of its own.
    pub fn client_idle(&self) -> bool {
        self.to_client.buffer.at_boundary() && !self.tracker.busy()
    }

    /// The upstream connection is outside any transaction with nothing in
    /// flight either way: it can be reset and reused.
    pub fn reusable(&self) -> bool {
        self.tracker.idle()
            && self.to_upstream.intercepted.is_none()
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
