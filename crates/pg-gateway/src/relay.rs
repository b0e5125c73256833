//! The framed relay: bytes flow both ways unchanged, but the relay knows
//! where every message starts (`latchkey-pg-stream`, driven by the shared
//! loop in `latchkey_gateway::relay`). That lets it
//!
//! - follow statements and their results for the audit log,
//! - know when the upstream connection is idle and safe to reuse,
//! - refuse oversized client messages,
//! - end a session at a message boundary with an error the client can
//!   read.

use std::pin::Pin;
use std::task::{Context, Poll};

use latchkey_gateway::relay::{Half, HalfEnd};
use latchkey_pg_stream::{Buffer, Direction, ScanError, Tracker};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::upstream::Upstream;

pub type RelayError = latchkey_gateway::relay::RelayError<ScanError>;

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

/// A client and its upstream, relayed.
pub struct Relay<C> {
    pub client: C,
    pub upstream: Upstream,
    pub tracker: Tracker,
    to_upstream: Half<Buffer>,
    to_client: Half<Buffer>,
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
