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
mod budget;
mod window;

pub use audit::{Audit, Clock, Finished, Now, started};
pub use budget::{
    LARGE_MESSAGE, Lease, MessageBudget, Share, Ticket, WORK_PER_BYTE, cost, read_within,
};

use std::sync::Arc;

use latchkey_audit::PolicyDecision;
use latchkey_sqlguard::Rules;
pub use window::{BUFFER, Window};

/// The server now reads backslashes in strings otherwise than by default
/// (PostgreSQL `standard_conforming_strings = off`, MySQL
/// `NO_BACKSLASH_ESCAPES`), or as by default again: statement policy and
/// the audit's normaliser follow, one change for both engines.
pub fn backslashes_differ(
    gate: Option<&mut (dyn StatementGate + 'static)>,
    normalised: Option<&mut latchkey_audit::StatementCache>,
    differ: bool,
) {
    if let Some(gate) = gate {
        gate.backslashes_differ(differ);
    }
    if let Some(normalised) = normalised {
        normalised.set_reading(if differ {
            latchkey_sqlnorm::Reading::OtherBackslash
        } else {
            latchkey_sqlnorm::Reading::Default
        });
    }
}

/// Statement policy for one session: decides each SQL string a client
/// sends (simple query, prepare) by the session's IAM policies. The
/// gateway implements it; followers call it with the whole SQL.
pub trait StatementGate: Send {
    /// Rules on one client message's SQL.
    fn rule(&mut self, sql: &str) -> Ruling;

    /// The server now reads a backslash in a string literal differently
    /// from the classifier (PostgreSQL `standard_conforming_strings =
    /// off`, MySQL `NO_BACKSLASH_ESCAPES`): SQL holding a backslash can
    /// no longer be classified and is unclassified.
    fn backslashes_differ(&mut self, differ: bool);

    /// The client's character set is not UTF-8 (PostgreSQL
    /// `client_encoding` LATIN1, say): the server reads bytes outside ASCII
    /// as other characters than the classifier does, so SQL holding one is
    /// unclassified.
    fn encoding_differs(&mut self, differs: bool);

    /// The client changed the current database outside SQL (MySQL
    /// `COM_INIT_DB`), which may fail: unqualified names are no longer
    /// resolved.
    fn database_changed(&mut self);

    /// Rules on a protocol-level `Parse` of the statement `name` (`""`
    /// for the unnamed one; MySQL's `COM_STMT_PREPARE` under a name the
    /// follower gives it), remembering it for [`Self::rule_bind`].
    /// `replaces`: nothing before it since the last `Sync` could make the
    /// server skip it, so it certainly replaces the unnamed statement.
    fn rule_parse(&mut self, name: &str, sql: &str, replaces: bool) -> Ruling {
        let _ = (name, replaces);
        self.rule(sql)
    }

    /// A `Bind` (MySQL: `COM_STMT_EXECUTE`) of the prepared statement
    /// `name`: `None` when it runs as it was decided; a new ruling when
    /// the session's scope changed since it was prepared (PostgreSQL
    /// resolves its names again when `search_path` changed), the SQL
    /// firewall's revision moved, or it was decided in an earlier second.
    fn rule_bind(&mut self, name: &str) -> Option<Ruling> {
        let _ = name;
        None
    }

    /// The SQL firewall's revision the session now follows (0: none). A
    /// statement prepared under another revision is ruled on again when
    /// it runs (MySQL `COM_STMT_EXECUTE`; PostgreSQL's `Bind` does this
    /// in [`Self::rule_bind`]).
    fn firewall_revision(&mut self) -> i64 {
        0
    }

    /// The second statement policy decides in now, or 0 when no decision
    /// depends on the time (statement policy off). A statement prepared in
    /// an earlier second is decided again when it runs (MySQL
    /// `COM_STMT_EXECUTE`; PostgreSQL's `Bind` in [`Self::rule_bind`]), so
    /// that conditions that lapse (`aws:MultiFactorAuthAge`) hold for it.
    fn policy_second(&mut self) -> i64 {
        0
    }

    /// The server confirmed that the prepared statement `name` is gone
    /// (PostgreSQL's `CloseComplete`, MySQL's `COM_STMT_CLOSE` or a
    /// failed prepare): whatever SQL it held, it holds none now.
    fn closed(&mut self, name: &str) {
        let _ = name;
    }
}

/// What a gate is given for SQL that is not UTF-8 (the server may read it
/// in another character set): it parses as nothing, so it is
/// unclassified.
pub const UNREADABLE_SQL: &str = "(statement not valid UTF-8)";

/// What a gate is given for a PostgreSQL `FunctionCall` message, which
/// names a function by OID (no catalogue to read it by): it parses as
/// nothing, so it is unclassified.
pub const FUNCTION_CALL_SQL: &str = "(FunctionCall message: a function named by OID)";

/// What a gate is given for a MySQL statement over 16 MiB, of which the
/// gateway sees only the first packet when it must decide: unclassified.
pub const PARTIAL_SQL: &str = "(statement over 16 MiB: only its first packet is seen)";

/// What statement policy says about one client message.
#[derive(Clone, Debug)]
pub enum Ruling {
    /// Send it on; the decision goes into its audit record.
    Pass(Arc<PolicyDecision>),
    /// Refuse it: the client gets the engine's permission error with
    /// `message`, which names only the action and the object.
    Refuse {
        message: Arc<str>,
        decision: Arc<PolicyDecision>,
    },
}

impl Ruling {
    pub fn decision(&self) -> &Arc<PolicyDecision> {
        match self {
            Ruling::Pass(d) | Ruling::Refuse { decision: d, .. } => d,
        }
    }
}

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

    /// Statements the tracker has followed so far (for a live session's
    /// figures).
    fn statements(tracker: &Self::Tracker) -> u64;
    /// The tracker awaits as many answers as its protocol lets a client
    /// run ahead by, all of which the server will send without hearing
    /// from the client: the relay reads no more from the client until
    /// some have come. A client that pipelines without reading would
    /// otherwise make the gateway keep a record of every request the
    /// kernel's socket buffers hold (megabytes of requests, tens of
    /// megabytes of records).
    fn backlogged(tracker: &Self::Tracker) -> bool;
    /// Ready while the audit takes the tracker's statements; otherwise
    /// `cx` is woken once it does ([`latchkey_audit::AuditSink::poll_room`]):
    /// the relay reads no more from the client meanwhile.
    fn poll_audit_room(
        tracker: &Self::Tracker,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()>;
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
    /// Gives the buffer up while nothing is in it (see
    /// [`Window::release`]).
    fn release(&mut self) -> bool {
        self.window_mut().release()
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
