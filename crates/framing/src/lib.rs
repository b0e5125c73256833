//! What a relay needs from a protocol's stream follower, so that one relay
//! loop (`latchkey_gateway::relay`) serves PostgreSQL (`latchkey-pg-stream`)
//! and MySQL (`latchkey-my-stream`) alike.
//!
//! A [`Framing`] is one direction's buffer: the relay reads into
//! [`space`](Framing::space), reports what it read with
//! [`filled`](Framing::filled), asks the framing to
//! [`scan`](Framing::scan) it, then writes what became
//! [`writable`](Framing::writable). Scanning finds message boundaries in
//! place and hands the messages the protocol's tracker follows to it; it
//! may also take a whole client message out of the stream for the gateway
//! to answer itself.

/// Which way bytes flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    ToUpstream,
    ToClient,
}

/// One direction's bytes: read, scanned up to a message boundary, and
/// written on.
pub trait Framing: Default {
    /// Follows the conversation across both directions.
    type Tracker;
    /// A client message taken out of the stream for the gateway to answer.
    type Taken;
    /// Why the bytes cannot be followed.
    type Error;

    /// Scanned bytes waiting to be written.
    fn writable(&self) -> &[u8];
    /// `n` bytes of [`Framing::writable`] were written.
    fn wrote(&mut self, n: usize);
    /// Nothing more is passed on (the client said goodbye).
    fn terminated(&self) -> bool;
    /// Makes room to read into.
    fn make_room(&mut self);
    /// Room to read into (call [`Framing::make_room`] first).
    fn space(&mut self) -> &mut [u8];
    /// `n` bytes were read into [`Framing::space`].
    fn filled(&mut self, n: usize);
    /// Walks what was read; stops early with a message taken out of the
    /// stream (bytes before it are writable, it is not).
    fn scan(
        &mut self,
        direction: Direction,
        tracker: &mut Self::Tracker,
        max_message: usize,
    ) -> Result<Option<Self::Taken>, Self::Error>;
}
