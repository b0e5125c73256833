//! The relay loop both gateways share: bytes flow both ways unchanged,
//! but each direction's [`Framing`] knows where every message starts.
//! The engine's relay polls its two [`Half`]s in one future (as
//! `tokio::io::copy_bidirectional` does), so a session is one task.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime};

use latchkey_framing::{Direction, Framing, Now};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{Interrupt, LiveCounters, Relayed, SessionEnd};

/// The system clock: the followers stamp audited statements by the
/// [`Clock`](latchkey_framing::Clock) they are given, and read none.
pub fn system_clock() -> Now {
    Now {
        wall: SystemTime::now(),
        instant: Instant::now(),
    }
}

/// Why a relay stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RelayError<E> {
    #[error("client: {0}")]
    Client(io::Error),
    #[error("upstream: {0}")]
    Upstream(io::Error),
    /// The bytes could not be followed (the protocol's own reason).
    #[error("{0}")]
    Scan(E),
}

/// What a direction's poll ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfEnd {
    /// The reading side closed.
    Eof,
    /// The framing saw the client say goodbye.
    Terminated,
}

/// One direction of a relay.
pub struct Half<F: Framing> {
    pub buffer: F,
    /// Bytes written but not yet flushed.
    pub unflushed: bool,
    eof: bool,
    /// A message taken out of the stream, waiting for the gateway.
    pub taken: Option<F::Taken>,
}

impl<F: Framing> Default for Half<F> {
    fn default() -> Self {
        Self {
            buffer: F::default(),
            unflushed: false,
            eof: false,
            taken: None,
        }
    }
}

impl<F: Framing> Half<F> {
    /// Moves bytes from `src` to `dst` until one side ends or blocks.
    /// While a taken message waits, it writes out what came before and
    /// reads no further.
    pub fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut src: Pin<&mut R>,
        mut dst: Pin<&mut W>,
        tracker: &mut F::Tracker,
        max_message: usize,
    ) -> Poll<Result<HalfEnd, RelayError<F::Error>>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        type Side<E> = fn(io::Error) -> RelayError<E>;
        let (read_err, write_err): (Side<F::Error>, Side<F::Error>) = match direction {
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
            if self.taken.is_some() || self.buffer.terminated() || self.eof {
                if self.unflushed {
                    ready!(dst.as_mut().poll_flush(cx)).map_err(write_err)?;
                    self.unflushed = false;
                }
                if self.taken.is_some() {
                    // Reading resumes once the gateway has dealt with it.
                    return Poll::Pending;
                }
                return Poll::Ready(Ok(if self.buffer.terminated() {
                    HalfEnd::Terminated
                } else {
                    HalfEnd::Eof
                }));
            }
            if direction == Direction::ToUpstream
                && (F::backlogged(tracker) || F::poll_audit_room(tracker, cx).is_pending())
            {
                // The client is read again once answers have come (see
                // `poll_halves`), so that one which never reads them holds
                // what the socket buffers do, not a record of each; or
                // once the audit trail, behind, has room for its
                // statements again (it wakes the session).
                self.buffer.release();
                if self.unflushed {
                    ready!(dst.as_mut().poll_flush(cx)).map_err(write_err)?;
                    self.unflushed = false;
                }
                return Poll::Pending;
            }
            self.buffer.make_room();
            let mut read = ReadBuf::new(self.buffer.space());
            match src.as_mut().poll_read(cx, &mut read) {
                Poll::Pending => {
                    // Nothing to read: an empty window gives its buffer
                    // back, so an idle session holds none.
                    self.buffer.release();
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
            self.taken = self
                .buffer
                .scan(direction, tracker, max_message)
                .map_err(RelayError::Scan)?;
        }
    }
}

/// Moves what is ready both ways between `client` and `server`, through
/// `halves` (to the server, to the client); ready when one side ended.
/// When the client was not read because it awaited too many answers
/// ([`Framing::backlogged`]), and those that came brought it under, the
/// client is read again at once: nothing else would wake the session for
/// it.
pub fn poll_halves<F, C, S>(
    cx: &mut Context<'_>,
    (to_upstream, to_client): (&mut Half<F>, &mut Half<F>),
    client: &mut C,
    server: &mut S,
    tracker: &mut F::Tracker,
    max_message: usize,
) -> Poll<Result<Ended, RelayError<F::Error>>>
where
    F: Framing,
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        if let Poll::Ready(r) = to_upstream.poll_copy(
            cx,
            Direction::ToUpstream,
            Pin::new(&mut *client),
            Pin::new(&mut *server),
            tracker,
            max_message,
        ) {
            return Poll::Ready(r.map(|end| match end {
                HalfEnd::Terminated => Ended::ClientTerminated,
                HalfEnd::Eof => Ended::ClientClosed,
            }));
        }
        let paused = F::backlogged(tracker);
        if let Poll::Ready(r) = to_client.poll_copy(
            cx,
            Direction::ToClient,
            Pin::new(&mut *server),
            Pin::new(&mut *client),
            tracker,
            usize::MAX,
        ) {
            return Poll::Ready(r.map(|_| Ended::UpstreamClosed));
        }
        if !paused || F::backlogged(tracker) {
            return Poll::Pending;
        }
    }
}

/// The upstream connection a relay writes to, whatever else the engine's
/// connection record holds.
pub trait UpstreamIo {
    type Stream: AsyncRead + AsyncWrite + Unpin;
    fn io(&mut self) -> &mut Self::Stream;
}

/// How a relay's poll of both directions ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client said goodbye in its protocol (`Terminate`, `COM_QUIT`).
    ClientTerminated,
    /// The client closed the connection.
    ClientClosed,
    /// The server closed the connection (after anything it sent has been
    /// passed on).
    UpstreamClosed,
}

/// A client and its upstream connection, relayed both ways in one task:
/// the engine's relay is this with its own framing `F`.
pub struct Relay<C, U, F: Framing> {
    pub client: C,
    pub upstream: U,
    pub tracker: F::Tracker,
    pub to_upstream: Half<F>,
    pub to_client: Half<F>,
    max_message: usize,
    /// Where the session's running figures are published for the console.
    live: Arc<LiveCounters>,
}

impl<C, U, F> Relay<C, U, F>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: UpstreamIo,
    F: Framing,
{
    /// `live` receives the session's running figures (the watch's
    /// [`counters`](crate::Watch::counters)).
    pub fn new(
        client: C,
        upstream: U,
        tracker: F::Tracker,
        max_message: usize,
        live: Arc<LiveCounters>,
    ) -> Self {
        Self {
            client,
            upstream,
            tracker,
            to_upstream: Half::default(),
            to_client: Half::default(),
            max_message,
            live,
        }
    }

    /// Publishes the running figures each time the relay waits.
    fn publish(&self) {
        let (from_client, to_client) = self.bytes();
        self.live
            .publish(from_client, to_client, F::statements(&self.tracker));
    }

    /// Moves what is ready in both directions; ready when one side ended.
    /// Client messages over `max_message` bytes are refused by the
    /// framing; the server's are not limited.
    pub fn poll_both(&mut self, cx: &mut Context<'_>) -> Poll<Result<Ended, RelayError<F::Error>>> {
        let polled = self.poll_directions(cx);
        if polled.is_pending() {
            self.publish();
        }
        polled
    }

    fn poll_directions(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Ended, RelayError<F::Error>>> {
        let Self {
            client,
            upstream,
            tracker,
            to_upstream,
            to_client,
            max_message,
            ..
        } = self;
        poll_halves(
            cx,
            (to_upstream, to_client),
            client,
            upstream.io(),
            tracker,
            *max_message,
        )
    }

    /// Bytes (from the client, to the client).
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.to_upstream.buffer.window().written(),
            self.to_client.buffer.window().written(),
        )
    }

    /// Hands the upstream connection back with the session's totals for
    /// its audit record, and the client's stream for the caller to shut
    /// down (not awaited here: a future holding the whole relay would
    /// size every session's task).
    pub fn finish(
        self,
        reason: String,
        interrupted: Option<Interrupt>,
        statements: u64,
        reusable: bool,
    ) -> (C, Relayed<U>) {
        let (bytes_from_client, bytes_to_client) = self.bytes();
        let Self {
            client, upstream, ..
        } = self;
        let relayed = Relayed {
            upstream: Some(upstream),
            end: SessionEnd {
                reason,
                lifetime_reached: interrupted == Some(Interrupt::LifetimeReached),
                bytes_from_client,
                bytes_to_client,
                statements,
            },
            reusable,
        };
        (client, relayed)
    }
}
