//! Where followers report statements, and the time they stamp them with.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use latchkey_audit::{
    AuditSink, Event, PolicyDecision, Protocol, SessionInfo, Statement, StatementEvent,
};

/// A reading of the caller's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// What events are stamped with.
    pub wall: SystemTime,
    /// What durations are measured by (monotonic).
    pub instant: Instant,
}

/// The caller's clock. Followers take the time from it rather than
/// reading one, so that they stay pure and tests can fix the time.
pub type Clock = fn() -> Now;

/// Where statements are reported.
pub struct Audit {
    pub sink: Arc<dyn AuditSink>,
    pub session: Arc<SessionInfo>,
    /// Log statements with their literals (off by default: literals can
    /// hold personal data and secrets).
    pub keep_literals: bool,
    pub clock: Clock,
}

/// A finished statement, as a follower saw it.
pub struct Finished {
    pub statement: Arc<Statement>,
    pub protocol: Protocol,
    /// When it was sent (from [`Audit::now`]).
    pub started: Instant,
    pub command_tag: Option<Arc<str>>,
    pub rows: Option<u64>,
    /// SQLSTATE (or the server's error code) when it failed.
    pub error_code: Option<String>,
    /// Statement policy's decision, when the database has it on.
    pub policy: Option<Arc<PolicyDecision>>,
}

/// When a statement starts, by the audit's clock; `None` when statements
/// are not audited (no time is needed then).
pub fn started(audit: Option<&Audit>) -> Option<Instant> {
    audit.map(|a| a.now().instant)
}

impl Audit {
    /// The time, by the caller's clock.
    pub fn now(&self) -> Now {
        (self.clock)()
    }

    /// Ready while the sink has room for more statements (see
    /// [`AuditSink::poll_room`]).
    pub fn poll_room(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.sink.poll_room(cx)
    }

    /// Records a finished statement, stamped now.
    pub fn record(&self, done: Finished) {
        let now = self.now();
        self.sink.record(Event::Statement(StatementEvent {
            session: self.session.clone(),
            statement: done.statement,
            protocol: done.protocol,
            time: now.wall,
            duration: now.instant.saturating_duration_since(done.started),
            command_tag: done.command_tag,
            rows: done.rows,
            error_code: done.error_code,
            policy: done.policy,
        }));
    }
}
