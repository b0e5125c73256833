//! The framed relay: packets flow both ways unchanged, but the relay
//! knows where every packet starts (`latchkey-my-stream`, driven by the
//! shared `latchkey_gateway::relay::Relay`). That lets it
//!
//! - follow commands and their results for the audit log,
//! - know when the upstream connection is idle and safe to reuse,
//! - refuse oversized client commands,
//! - take out the commands the gateway answers itself (`COM_CHANGE_USER`,
//!   `KILL`), once every response before them has reached the client.

use std::future::Future;
use std::task::{Context, Poll};

use latchkey_gateway::net::UpstreamStream;
use latchkey_gateway::relay::{Ended, UpstreamIo};
use latchkey_my_stream::{Buffer, Intercepted, ScanError};
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
    /// been delivered. Call [`MyRelay::run`] again afterwards.
    Intercepted(Intercepted),
}

/// A MySQL client and its upstream, relayed.
pub type Relay<C> = latchkey_gateway::relay::Relay<C, Upstream, Buffer>;

impl UpstreamIo for Upstream {
    type Stream = UpstreamStream;
    fn io(&mut self) -> &mut UpstreamStream {
        &mut self.stream
    }
}

/// What only a MySQL relay knows.
pub trait MyRelay {
    /// Relays until one side ends or a command is intercepted.
    fn poll_relay(&mut self, cx: &mut Context<'_>) -> Poll<Result<Stop, RelayError>>;
    /// Relays until one side ends or a command is intercepted.
    fn run(&mut self) -> impl Future<Output = Result<Stop, RelayError>> + Send;
    /// The client has been sent only whole packets and nothing is
    /// awaited, so the gateway may send one of its own.
    fn client_idle(&self) -> bool;
    /// The upstream connection is outside any transaction with nothing in
    /// flight either way: it can be reset and reused.
    fn reusable(&self) -> bool;
}

impl<C: AsyncRead + AsyncWrite + Unpin + Send> MyRelay for Relay<C> {
    fn poll_relay(&mut self, cx: &mut Context<'_>) -> Poll<Result<Stop, RelayError>> {
        if let Poll::Ready(r) = self.poll_both(cx) {
            return Poll::Ready(r.map(|ended| match ended {
                Ended::ClientTerminated => Stop::ClientQuit,
                Ended::ClientClosed => Stop::ClientClosed,
                Ended::UpstreamClosed => Stop::UpstreamClosed,
            }));
        }
        // An intercepted command is handed over once every response
        // before it has reached the client, so that the gateway's answer
        // comes in its place.
        let (to_upstream, to_client) = (&mut self.to_upstream, &self.to_client);
        if to_upstream.taken.is_some()
            && to_upstream.buffer.writable().is_empty()
            && !to_upstream.unflushed
            && !self.tracker.busy()
            && !to_client.unflushed
            && to_client.buffer.at_boundary()
            && let Some(taken) = to_upstream.taken.take()
        {
            return Poll::Ready(Ok(Stop::Intercepted(taken)));
        }
        Poll::Pending
    }

    async fn run(&mut self) -> Result<Stop, RelayError> {
        std::future::poll_fn(|cx| self.poll_relay(cx)).await
    }

    fn client_idle(&self) -> bool {
        self.to_client.buffer.at_boundary() && !self.tracker.busy()
    }

    fn reusable(&self) -> bool {
        self.tracker.idle()
            && self.to_upstream.taken.is_none()
            && self.to_client.buffer.at_boundary()
            && self.to_upstream.buffer.nothing_in_flight()
    }
}
