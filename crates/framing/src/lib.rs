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
//!
//! Both protocols' buffers keep their bytes in a [`Window`]; statements
//! are reported through an [`Audit`], stamped by the caller's [`Clock`]
//! (the followers read no clock themselves).
//!
//! Pure: no I/O, no clock reads.

mod audit;
mod window;

pub use audit::{Audit, Clock, Finished, Now, started};

use latchkey_sqlguard::Rules;
pub use window::{BUFFER, Window};

/// A follower that checks the SQL a session sends (see
/// `latchkey-sqlguard`): what the session's policy does not allow is
/// refused, and by default that is everything the guard knows.
pub trait Guarded: Sized {
    /// The session's rules.
    fn rules_mut(&mut self) -> &mut Rules;

    /// Lets password and authentication changes through (the session's
    /// policy allows `latchkey:ChangeDatabasePassword`).
    fn allow_password_changes(mut self, allowed: bool) -> Self {
        self.rules_mut().allow_password_changes = allowed;
        self
    }

    /// Lets SQL built at run time through (the session's policy allows
    /// `latchkey:ExecuteDynamicSql`).
    fn allow_dynamic_sql(mut self, allowed: bool) -> Self {
        self.rules_mut().allow_dynamic_sql = allowed;
        self
    }
}

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

    /// The bytes.
    fn window(&self) -> &Window;
    /// The bytes, to read into and write from.
    fn window_mut(&mut self) -> &mut Window;

    /// Scanned bytes waiting to be written.
    fn writable(&self) -> &[u8] {
        self.window().writable()
    }
    /// `n` bytes of [`Framing::writable`] were written.
    fn wrote(&mut self, n: usize) {
        self.window_mut().wrote(n);
    }
    /// Nothing more is passed on (the client said goodbye).
    fn terminated(&self) -> bool {
        self.window().terminated()
    }
    /// Makes room to read into.
    fn make_room(&mut self) {
        self.window_mut().make_room(true);
    }
    /// Room to read into (call [`Framing::make_room`] first).
    fn space(&mut self) -> &mut [u8] {
        self.window_mut().space()
    }
    /// `n` bytes were read into [`Framing::space`].
    fn filled(&mut self, n: usize) {
        self.window_mut().filled(n);
    }
    /// Walks what was read; stops early with a message taken out of the
    /// stream (bytes before it are writable, it is not).
    fn scan(
        &mut self,
        direction: Direction,
        tracker: &mut Self::Tracker,
        max_message: usize,
    ) -> Result<Option<Self::Taken>, Self::Error>;
}
