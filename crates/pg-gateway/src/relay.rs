//! The framed relay: bytes flow both ways unchanged, but the relay knows
//! where every message starts (`latchkey-pg-stream`, driven by the shared
//! `latchkey_gateway::relay::Relay`). That lets it
//!
//! - follow statements and their results for the audit log,
//! - know when the upstream connection is idle and safe to reuse,
//! - refuse oversized client messages,
//! - end a session at a message boundary with an error the client can
//!   read.

use std::future::Future;

use latchkey_gateway::net::UpstreamStream;
use latchkey_gateway::relay::UpstreamIo;
use latchkey_pg_stream::{Buffer, ScanError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::upstream::Upstream;

pub use latchkey_gateway::relay::Ended as End;

pub type RelayError = latchkey_gateway::relay::RelayError<ScanError>;

/// A PostgreSQL client and its upstream, relayed.
pub type Relay<C> = latchkey_gateway::relay::Relay<C, Upstream, Buffer>;

impl UpstreamIo for Upstream {
    type Stream = UpstreamStream;
    fn io(&mut self) -> &mut UpstreamStream {
        &mut self.stream
    }
}

/// What only a PostgreSQL relay knows.
pub trait PgRelay {
    /// Relays until one side ends.
    fn run(&mut self) -> impl Future<Output = Result<End, RelayError>> + Send;
    /// The client has been sent only whole messages, so the gateway may
    /// send one of its own.
    fn client_at_boundary(&self) -> bool;
    /// The upstream connection is between transactions with nothing in
    /// flight either way: it can be reset and reused.
    fn reusable(&self) -> bool;
}

impl<C: AsyncRead + AsyncWrite + Unpin + Send> PgRelay for Relay<C> {
    async fn run(&mut self) -> Result<End, RelayError> {
        std::future::poll_fn(|cx| self.poll_both(cx)).await
    }

    fn client_at_boundary(&self) -> bool {
        self.to_client.buffer.at_boundary()
    }

    fn reusable(&self) -> bool {
        self.tracker.idle()
            && self.to_client.buffer.at_boundary()
            && self.to_upstream.buffer.nothing_in_flight()
    }
}
