//! The framed relay: packets flow both ways unchanged, but the relay
//! knows where every packet starts (`latchkey-my-stream`, driven by the
//! shared loop in `latchkey_gateway::relay`). That lets it
//!
//! - follow commands and their results for the audit log,
//! - know when the upstream connection is idle and safe to reuse,
//! - refuse oversized client commands,
//! - take out the commands the gateway answers itself (`COM_CHANGE_USER`,
//!   `KILL`), once every response before them has reached the client.

use std::pin::Pin;
use std::task::{Context, Poll};

use latchkey_gateway::relay::{Half, HalfEnd};
use latchkey_my_stream::{Buffer, Direction, Intercepted, ScanError, Tracker};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::upstream::Upstream;

pub type RelayError = latchkey_gateway::relay::RelayError<ScanError>;

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

/// A client and its upstream, relayed.
pub struct Relay<C> {
    pub client: C,
    pub upstream: Upstream,
    pub tracker: Tracker,
    to_upstream: Half<Buffer>,
    to_client: Half<Buffer>,
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
                HalfEnd::Terminated => Stop::ClientQuit,
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
        if to_upstream.taken.is_some()
            && to_upstream.buffer.writable().is_empty()
            && !to_upstream.unflushed
            && !tracker.busy()
            && !to_client.unflushed
            && to_client.buffer.at_boundary()
            && let Some(taken) = to_upstream.taken.take()
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
            && self.to_upstream.taken.is_none()
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
