//! Following a PostgreSQL conversation from its bytes, for a relay that
//! passes them on unchanged: where each message starts, which statements
//! are in flight and how they end (for the audit log), and whether the
//! server is idle between transactions (so its connection can be reused).
//!
//! One exception to "unchanged": a `Query` or `Parse` whose SQL
//! `latchkey-sqlguard` refuses (a password change or dynamic SQL the
//! session's policy does not allow, `pg_terminate_backend`) is replaced
//! by one that makes the server raise `42501 insufficient_privilege`
//! ([`refusal_statement`]). The server answering
//! with its own error keeps the session's state true: a refused
//! statement in a transaction block aborts it, as any error would. The
//! audit logs the statement the client sent.
//!
//! Pure: the gateway reads into a [`Buffer`], calls [`Buffer::scan`], and
//! writes on what it scanned. Message bodies are not copied: at most
//! [`INSPECT_PREFIX`] bytes of the messages the [`Tracker`] follows are
//! looked at in place; everything else (COPY data, rows) streams through.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use latchkey_audit::{
    AuditSink, Event, Protocol, SessionInfo, Statement, StatementCache, StatementEvent,
    rows_from_tag,
};
use latchkey_pgwire as wire;
use latchkey_sqlguard::{Refusal, Rules, Verdict as Guard};
use latchkey_sqlnorm::Dialect;

/// Each direction's buffer. Grown (to [`INSPECT_PREFIX`] and a header)
/// only while a long statement is being looked at.
pub const BUFFER: usize = 16 * 1024;
/// How much of a `Query` or `Parse` the audit sees; longer statements are
/// logged cut short and marked truncated.
pub const INSPECT_PREFIX: usize = 32 * 1024;
/// What a refused statement becomes: the server raises the error
/// itself (`DO` runs PL/pgSQL, installed in every database by default;
/// without it the statement still fails).
pub const REFUSAL: &str = "DO $latchkey$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', \
MESSAGE = 'permission denied to change a password or authentication through Latchkey', \
HINT = 'The principal needs the latchkey:ChangeDatabasePassword permission.'; END$latchkey$";
/// What refused dynamic SQL (PL/pgSQL `EXECUTE`, `dblink`) becomes.
pub const REFUSAL_DYNAMIC_SQL: &str = "DO $latchkey$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', \
MESSAGE = 'permission denied to run dynamic SQL (EXECUTE in PL/pgSQL, dblink) through Latchkey', \
HINT = 'The principal needs the latchkey:ExecuteDynamicSql permission.'; END$latchkey$";
/// What a call of `pg_terminate_backend` or `pg_cancel_backend`
/// becomes: gateway sessions share upstream roles, so it could end
/// another principal's session.
pub const REFUSAL_SIGNAL: &str = "DO $latchkey$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', \
MESSAGE = 'permission denied to signal server processes through Latchkey', \
HINT = 'Cancel your own query with the protocol''s cancel request (Ctrl-C in psql, cancel() in drivers).'; END$latchkey$";

/// The fixed OIDs of `pg_terminate_backend` and `pg_cancel_backend`, which
/// a `FunctionCall` message (libpq's `PQfn`) could name without SQL.
const SIGNAL_FUNCTIONS: [u32; 2] = [2096, 2171];
/// The fixed OIDs (PostgreSQL 15) of functions that run an SQL string:
/// `query_to_xml`, `query_to_xmlschema`, `query_to_xml_and_xmlschema`,
/// `ts_rewrite(tsquery, text)`, `ts_stat` (both forms). Extension
/// functions (`dblink*`) have no fixed OID.
const DYNAMIC_SQL_FUNCTIONS: [u32; 6] = [2924, 2927, 2930, 3685, 3689, 3690];
/// The fixed OIDs of server file access and configuration reload:
/// `lo_import` (both), `lo_export`, `pg_reload_conf`, `pg_read_file`
/// (three), `pg_read_binary_file` (three).
const SERVER_FILE_FUNCTIONS: [u32; 10] = [764, 767, 765, 2621, 2624, 3293, 3826, 3295, 3827, 3828];

/// A whole `Query` message.
fn query_message(sql: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(sql.len() + 6);
    out.push(b'Q');
    let len = u32::try_from(sql.len() + 5).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(sql.as_bytes());
    out.push(0);
    out
}

/// The statement that makes the server raise a refusal's error.
pub fn refusal_statement(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::DynamicSql => REFUSAL_DYNAMIC_SQL,
        Refusal::SignalBackend => REFUSAL_SIGNAL,
        Refusal::PasswordChange | Refusal::Kill => REFUSAL,
    }
}

/// Prepared statements and portals remembered per session (PostgreSQL has
/// no limit; a client that exceeds this gets its later statements logged
/// as unknown rather than the gateway's memory growing without bound).
const MAX_NAMES: usize = 10_000;

/// Why bytes could not be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("client message of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("malformed message header")]
    Malformed,
}

pub use latchkey_framing::Direction;

/// One direction's bytes: read, scanned up to a message boundary, and
/// written on.
pub struct Buffer {
    buf: Vec<u8>,
    /// Bytes before `start` are written.
    start: usize,
    /// Bytes before `scanned` may be written.
    scanned: usize,
    /// Bytes before `end` are read.
    end: usize,
    /// Bytes of the current message still to pass through unscanned.
    skip: usize,
    written: u64,
    terminated: bool,
}

impl latchkey_framing::Framing for Buffer {
    type Tracker = Tracker;
    type Taken = std::convert::Infallible;
    type Error = ScanError;

    fn writable(&self) -> &[u8] {
        Buffer::writable(self)
    }
    fn wrote(&mut self, n: usize) {
        Buffer::wrote(self, n)
    }
    fn terminated(&self) -> bool {
        Buffer::terminated(self)
    }
    fn make_room(&mut self) {
        Buffer::make_room(self)
    }
    fn space(&mut self) -> &mut [u8] {
        Buffer::space(self)
    }
    fn filled(&mut self, n: usize) {
        Buffer::filled(self, n)
    }
    fn scan(
        &mut self,
        direction: Direction,
        tracker: &mut Tracker,
        max_message: usize,
    ) -> Result<Option<std::convert::Infallible>, ScanError> {
        Buffer::scan(self, direction, tracker, max_message).map(|()| None)
    }
}

impl Default for Buffer {
    fn default() -> Self {
        Self::new()
    }
}

impl Buffer {
    pub fn new() -> Self {
        Self {
            buf: vec![0; BUFFER],
            start: 0,
            scanned: 0,
            end: 0,
            skip: 0,
            written: 0,
            terminated: false,
        }
    }

    /// Everything read has been written and no message is half sent.
    pub fn at_boundary(&self) -> bool {
        self.skip == 0 && self.start == self.end
    }

    /// Everything scanned has been written and no message is half sent
    /// (bytes read but not yet scanned were never passed on).
    pub fn nothing_in_flight(&self) -> bool {
        self.skip == 0 && self.start == self.scanned
    }

    /// Scanned bytes waiting to be written.
    pub fn writable(&self) -> &[u8] {
        &self.buf[self.start..self.scanned]
    }

    /// `n` bytes of [`Buffer::writable`] were written.
    pub fn wrote(&mut self, n: usize) {
        self.start += n;
        self.written += n as u64;
    }

    /// Bytes written on so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The client sent `Terminate`: nothing more is passed on.
    pub fn terminated(&self) -> bool {
        self.terminated
    }

    /// Room to read into (call [`Buffer::make_room`] first).
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`Buffer::space`].
    pub fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// Starts over when everything is written, or moves a partial message
    /// at the end to the front.
    pub fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.scanned = 0;
            self.end = 0;
            if self.buf.len() > BUFFER && self.skip == 0 {
                self.buf.truncate(BUFFER);
                self.buf.shrink_to_fit();
            }
        } else if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
    }

    /// Walks message headers in `scanned..end`, handing the messages the
    /// tracker wants to it.
    pub fn scan(
        &mut self,
        direction: Direction,
        tracker: &mut Tracker,
        max_message: usize,
    ) -> Result<(), ScanError> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.end - self.scanned);
                if n == 0 {
                    return Ok(());
                }
                self.scanned += n;
                self.skip -= n;
                continue;
            }
            let available = self.end - self.scanned;
            if available < 5 {
                return Ok(());
            }
            let at = self.scanned;
            let tag = self.buf[at];
            let len = u32::from_be_bytes([
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
                self.buf[at + 4],
            ]) as usize;
            let Some(body_len) = len.checked_sub(4) else {
                return Err(ScanError::Malformed);
            };
            if body_len > max_message {
                return Err(ScanError::TooLarge(body_len));
            }
            if !tracker.wants(direction, tag) {
                tracker.passed(direction, tag);
                self.scanned += 5;
                self.skip = body_len;
                continue;
            }
            // SQL is checked whole, so that nothing padded slips past.
            let look = if tracker.checks(direction, tag) {
                body_len
            } else {
                body_len.min(INSPECT_PREFIX)
            };
            if available < 5 + look {
                if self.buf.len() < 5 + look {
                    self.buf.resize(5 + look, 0);
                }
                return Ok(());
            }
            let body = &self.buf[at + 5..at + 5 + look];
            match tracker.message(direction, tag, body, look == body_len) {
                Verdict::Terminate => {
                    // Nothing from the client after Terminate is passed on.
                    self.terminated = true;
                    self.end = at;
                    return Ok(());
                }
                Verdict::Replace(message) => {
                    // The whole message is here (checked SQL is read
                    // whole); what follows it moves, unscanned.
                    let old = 5 + body_len;
                    self.buf.splice(at..at + old, message.iter().copied());
                    self.end = self.end - old + message.len();
                    if self.buf.len() < BUFFER {
                        self.buf.resize(BUFFER, 0);
                    }
                    self.scanned = at + message.len();
                }
                Verdict::Forward => {
                    self.scanned += 5 + look;
                    self.skip = body_len - look;
                }
            }
        }
    }
}

/// What to do with a message the tracker looked at.
#[derive(PartialEq, Eq)]
enum Verdict {
    Forward,
    Terminate,
    /// Send this whole message (tag and length included) instead.
    Replace(Vec<u8>),
}

/// A statement waiting for its result.
enum Pending {
    Query {
        /// `None` when statements are not audited.
        statement: Option<Arc<Statement>>,
        started: Instant,
        tag: Option<Arc<str>>,
        error: Option<String>,
    },
    Execute {
        statement: Option<Arc<Statement>>,
        started: Instant,
    },
    /// A `Parse` (audited only): answered by `ParseComplete`, or by the
    /// error that is then the statement's only trace.
    Parse {
        statement: Arc<Statement>,
        started: Instant,
    },
    Sync,
}

/// Where statements are reported.
pub struct Audit {
    pub sink: Arc<dyn AuditSink>,
    pub session: Arc<SessionInfo>,
    /// Log statements with their literals (off by default: literals can
    /// hold personal data and secrets).
    pub keep_literals: bool,
}

/// Follows the conversation: which statements are in flight, and whether
/// the server is idle between transactions.
pub struct Tracker {
    /// `Query`, `Sync` and `FunctionCall` messages not yet answered by
    /// `ReadyForQuery`.
    outstanding: u32,
    /// Extended-protocol messages sent since the last `Sync`.
    unsynced: bool,
    /// The transaction status in the last `ReadyForQuery`.
    transaction: u8,
    pending: VecDeque<Pending>,
    statements: HashMap<String, Arc<Statement>>,
    portals: HashMap<String, Arc<Statement>>,
    audit: Option<Audit>,
    /// Present when statements are audited.
    normalised: Option<StatementCache>,
    /// Parameters the server reported during the session.
    pub parameter_changes: Vec<(String, String)>,
    pub statement_count: u64,
    /// What SQL the session may send (see `latchkey-sqlguard`).
    rules: Rules,
    /// Statements refused so far.
    pub refused: u64,
}

impl Tracker {
    pub fn new(audit: Option<Audit>) -> Self {
        let normalised = audit
            .as_ref()
            .map(|a| StatementCache::new(Dialect::Postgres, a.keep_literals));
        Self {
            normalised,
            outstanding: 0,
            unsynced: false,
            transaction: b'I',
            pending: VecDeque::new(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            audit,
            parameter_changes: Vec::new(),
            statement_count: 0,
            rules: Rules::default(),
            refused: 0,
        }
    }

    /// Lets password and authentication changes through (the session's
    /// policy allows `latchkey:ChangeDatabasePassword`); refused by
    /// default.
    pub fn allow_password_changes(mut self, allowed: bool) -> Self {
        self.rules.allow_password_changes = allowed;
        self
    }

    /// Lets SQL built at run time through (the session's policy allows
    /// `latchkey:ExecuteDynamicSql`); refused by default.
    pub fn allow_dynamic_sql(mut self, allowed: bool) -> Self {
        self.rules.allow_dynamic_sql = allowed;
        self
    }

    /// Whether a message's SQL is checked (and so must be read whole):
    /// always, since `pg_terminate_backend` is refused whatever the
    /// policy.
    fn checks(&self, direction: Direction, tag: u8) -> bool {
        direction == Direction::ToUpstream && matches!(tag, b'Q' | b'P' | b'F')
    }

    /// The message to send instead of a `Query` or `Parse` (whole body)
    /// whose SQL the session may not run, if it may not.
    fn replacement(&mut self, tag: u8, body: &[u8], complete: bool) -> Option<Vec<u8>> {
        if !complete || !self.checks(Direction::ToUpstream, tag) {
            return None;
        }
        let (name, sql) = match tag {
            b'P' => {
                let end = body.iter().position(|&c| c == 0)?;
                (Some(&body[..end]), &body[end + 1..])
            }
            _ => (None, body),
        };
        let sql = &sql[..sql.iter().position(|&c| c == 0).unwrap_or(sql.len())];
        let refusal = match latchkey_sqlguard::check(sql, Dialect::Postgres, self.rules, true) {
            Guard::Allow | Guard::Kill(_) => return None,
            Guard::Refuse(r) => refusal_statement(r),
        };
        self.refused += 1;
        let mut new = Vec::with_capacity(refusal.len() + 64);
        new.push(tag);
        new.extend_from_slice(&[0; 4]);
        if let Some(name) = name {
            new.extend_from_slice(name);
            new.push(0);
        }
        new.extend_from_slice(refusal.as_bytes());
        new.push(0);
        if name.is_some() {
            // No parameter types.
            new.extend_from_slice(&[0, 0]);
        }
        let len = u32::try_from(new.len() - 1).unwrap_or(u32::MAX);
        new[1..5].copy_from_slice(&len.to_be_bytes());
        Some(new)
    }

    /// The server has answered everything and is outside a transaction.
    pub fn idle(&self) -> bool {
        self.outstanding == 0 && !self.unsynced && self.transaction == b'I'
    }

    /// Something was sent that the server has not finished answering.
    pub fn busy(&self) -> bool {
        self.outstanding > 0
    }

    fn wants(&self, direction: Direction, tag: u8) -> bool {
        match direction {
            Direction::ToUpstream => {
                matches!(tag, b'Q' | b'P' | b'B' | b'E' | b'C' | b'S' | b'X' | b'F')
            }
            Direction::ToClient => {
                matches!(tag, b'C' | b'E' | b'Z' | b'S' | b'I' | b's')
                    || (tag == b'1' && self.audit.is_some())
            }
        }
    }

    /// A message passed through without being looked at.
    fn passed(&mut self, direction: Direction, tag: u8) {
        match (direction, tag) {
            // A function call is answered by ReadyForQuery.
            (Direction::ToUpstream, b'F') => {
                self.outstanding += 1;
                self.pending.push_back(Pending::Sync);
            }
            // COPY data belongs to a statement already in flight.
            (Direction::ToUpstream, b'd' | b'c' | b'f') => {}
            (Direction::ToUpstream, _) => self.unsynced = true,
            (Direction::ToClient, _) => {}
        }
    }

    fn message(&mut self, direction: Direction, tag: u8, body: &[u8], complete: bool) -> Verdict {
        match (direction, tag) {
            (Direction::ToUpstream, b'X') => return Verdict::Terminate,
            (Direction::ToUpstream, b'F') => {
                // A function call is answered by ReadyForQuery, after an
                // ErrorResponse when refused.
                self.passed(direction, tag);
                let oid = body
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                let refusal = oid.and_then(|oid| {
                    if SIGNAL_FUNCTIONS.contains(&oid) {
                        Some(REFUSAL_SIGNAL)
                    } else if DYNAMIC_SQL_FUNCTIONS.contains(&oid) && !self.rules.allow_dynamic_sql
                    {
                        Some(REFUSAL_DYNAMIC_SQL)
                    } else if SERVER_FILE_FUNCTIONS.contains(&oid)
                        && !self.rules.allow_password_changes
                    {
                        Some(REFUSAL)
                    } else {
                        None
                    }
                });
                if let Some(refusal) = refusal {
                    self.refused += 1;
                    return Verdict::Replace(query_message(refusal));
                }
                return Verdict::Forward;
            }
            (Direction::ToUpstream, b'Q') => {
                self.outstanding += 1;
                let replace = self.replacement(tag, body, complete);
                let (body, complete) = audited(body, complete);
                let statement =
                    self.normalised
                        .as_mut()
                        .map(|n| match wire::leading_str_prefix(body) {
                            Ok(sql) => n.statement(sql, complete),
                            Err(_) => n.unknown(),
                        });
                self.pending.push_back(Pending::Query {
                    statement,
                    started: Instant::now(),
                    tag: None,
                    error: None,
                });
                if let Some(message) = replace {
                    return Verdict::Replace(message);
                }
            }
            (Direction::ToUpstream, b'S') => {
                self.outstanding += 1;
                self.unsynced = false;
                self.pending.push_back(Pending::Sync);
            }
            (Direction::ToUpstream, b'P') => {
                self.unsynced = true;
                let replace = self.replacement(tag, body, complete);
                let (body, complete) = audited(body, complete);
                if let Some(normalised) = self.normalised.as_mut()
                    && let Ok((name, sql)) = wire::parse_parse(body)
                {
                    let statement = normalised.statement(sql, complete);
                    self.pending.push_back(Pending::Parse {
                        statement: statement.clone(),
                        started: Instant::now(),
                    });
                    if self.statements.len() < MAX_NAMES || self.statements.contains_key(name) {
                        self.statements.insert(name.to_owned(), statement);
                    }
                }
                if let Some(message) = replace {
                    return Verdict::Replace(message);
                }
            }
            (Direction::ToUpstream, b'B') => {
                self.unsynced = true;
                if let Some(normalised) = &self.normalised
                    && let Ok((portal, name)) = wire::parse_bind(body)
                {
                    let statement = self
                        .statements
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| normalised.unknown());
                    if self.portals.len() < MAX_NAMES || self.portals.contains_key(portal) {
                        self.portals.insert(portal.to_owned(), statement);
                    }
                }
            }
            (Direction::ToUpstream, b'E') => {
                self.unsynced = true;
                let statement = self.normalised.as_ref().map(|normalised| {
                    wire::leading_str(body)
                        .ok()
                        .and_then(|portal| self.portals.get(portal).cloned())
                        .unwrap_or_else(|| normalised.unknown())
                });
                self.pending.push_back(Pending::Execute {
                    statement,
                    started: Instant::now(),
                });
            }
            (Direction::ToUpstream, b'C') => {
                self.unsynced = true;
                if let Ok((kind, name)) = wire::parse_close(body) {
                    match kind {
                        b'S' => self.statements.remove(name),
                        _ => self.portals.remove(name),
                    };
                }
            }
            (Direction::ToClient, b'C' | b'I' | b's') => {
                let tag_text = match &mut self.normalised {
                    Some(normalised) if tag == b'C' => {
                        wire::leading_str(body).ok().map(|t| normalised.tag(t))
                    }
                    _ => None,
                };
                match self.pending.front_mut() {
                    Some(Pending::Query { tag: t, .. }) if tag_text.is_some() => {
                        *t = tag_text;
                    }
                    Some(Pending::Execute { .. }) => {
                        if let Some(Pending::Execute { statement, started }) =
                            self.pending.pop_front()
                        {
                            self.report(statement, Protocol::Extended, started, tag_text, None);
                        }
                    }
                    _ => {}
                }
            }
            (Direction::ToClient, b'1') => {
                if matches!(self.pending.front(), Some(Pending::Parse { .. })) {
                    self.pending.pop_front();
                }
            }
            (Direction::ToClient, b'E') => {
                let code = wire::error_code(body).map(str::to_owned);
                match self.pending.front_mut() {
                    Some(Pending::Query { error, .. }) => {
                        if error.is_none() {
                            *error = code;
                        }
                        return Verdict::Forward;
                    }
                    Some(Pending::Execute { .. }) => {
                        if let Some(Pending::Execute { statement, started }) =
                            self.pending.pop_front()
                        {
                            self.report(statement, Protocol::Extended, started, None, code);
                        }
                    }
                    // A statement that failed to parse is never executed:
                    // its error is all the audit will see of it.
                    Some(Pending::Parse { .. }) => {
                        if let Some(Pending::Parse { statement, started }) =
                            self.pending.pop_front()
                        {
                            self.report(Some(statement), Protocol::Extended, started, None, code);
                        }
                    }
                    Some(Pending::Sync) | None => return Verdict::Forward,
                }
                // The server skips everything up to Sync.
                while !matches!(self.pending.front(), Some(Pending::Sync) | None) {
                    self.pending.pop_front();
                }
            }
            (Direction::ToClient, b'Z') => {
                self.outstanding = self.outstanding.saturating_sub(1);
                self.transaction = body.first().copied().unwrap_or(b'E');
                while let Some(p) = self.pending.pop_front() {
                    match p {
                        Pending::Query {
                            statement,
                            started,
                            tag,
                            error,
                        } => {
                            self.report(statement, Protocol::Simple, started, tag, error);
                            break;
                        }
                        Pending::Sync => break,
                        // Skipped after an error.
                        Pending::Execute { .. } | Pending::Parse { .. } => {}
                    }
                }
            }
            (Direction::ToClient, b'S') => {
                if let Ok((name, value)) = wire::parse_parameter_status(body) {
                    self.parameter_changes
                        .push((name.to_owned(), value.to_owned()));
                }
            }
            _ => {}
        }
        Verdict::Forward
    }

    fn report(
        &mut self,
        statement: Option<Arc<Statement>>,
        protocol: Protocol,
        started: Instant,
        command_tag: Option<Arc<str>>,
        error_code: Option<String>,
    ) {
        self.statement_count += 1;
        if let (Some(audit), Some(statement)) = (&self.audit, statement) {
            audit.sink.record(Event::Statement(StatementEvent {
                session: audit.session.clone(),
                statement,
                protocol,
                time: SystemTime::now(),
                duration: started.elapsed(),
                rows: command_tag.as_deref().and_then(rows_from_tag),
                command_tag,
                error_code,
            }));
        }
    }
}

/// The part of a message body the audit sees: at most [`INSPECT_PREFIX`]
/// bytes (checked SQL is read whole, but logged as before).
fn audited(body: &[u8], complete: bool) -> (&[u8], bool) {
    let cut = body.len().min(INSPECT_PREFIX);
    (&body[..cut], complete && cut == body.len())
}

/// Runs bytes through the scanner and tracker as a relay would receive
/// them, `chunk` bytes per read: the client's bytes, then the server's.
/// Says whether the server connection would be reusable afterwards. For
/// the fuzz target and tests.
pub fn replay(
    from_client: &[u8],
    from_server: &[u8],
    chunk: usize,
    tracker: &mut Tracker,
    max_message: usize,
) -> Result<bool, ScanError> {
    let mut halves = [Buffer::new(), Buffer::new()];
    for (half, direction, mut rest) in [
        (0, Direction::ToUpstream, from_client),
        (1, Direction::ToClient, from_server),
    ] {
        let half = &mut halves[half];
        while !rest.is_empty() && !half.terminated {
            half.make_room();
            let n = chunk.max(1).min(rest.len()).min(half.buf.len() - half.end);
            half.buf[half.end..half.end + n].copy_from_slice(&rest[..n]);
            half.end += n;
            rest = &rest[n..];
            half.scan(direction, tracker, max_message)?;
            // As if written on.
            half.start = half.scanned;
        }
    }
    let [to_upstream, to_client] = &halves;
    Ok(tracker.idle()
        && to_client.skip == 0
        && to_client.scanned == to_client.end
        && to_upstream.skip == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Collect(Mutex<Vec<Event>>);

    impl AuditSink for Collect {
        fn record(&self, event: Event) {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
        }
    }

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&u32::try_from(body.len() + 4).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn tracker() -> (Tracker, Arc<Collect>) {
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        let session = Arc::new(SessionInfo {
            session_id: "s".into(),
            engine: "postgres",
            identity: latchkey_audit::Identity {
                kind: latchkey_audit::IdentityKind::IamUser,
                arn: "arn:aws:iam::123456789012:user/app".into(),
                principal_id: "AIDA".into(),
                account_id: "123456789012".into(),
                access_key_id: "AKIA".into(),
                session: None,
            },
            source_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            user_agent: None,
            database: "orders".into(),
            resource_arn: "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-X/app".into(),
            database_name: "orders".into(),
            db_user: "app".into(),
            started: SystemTime::now(),
        });
        let t = Tracker::new(Some(Audit {
            sink: sink.clone(),
            session,
            keep_literals: false,
        }));
        (t, sink)
    }

    fn statements(sink: &Collect) -> Vec<(String, Option<String>, Option<String>)> {
        sink.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|e| match e {
                Event::Statement(s) => Some((
                    s.statement.text.clone(),
                    s.command_tag.as_deref().map(str::to_owned),
                    s.error_code.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    fn error(code: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for (f, v) in [(b'S', "ERROR"), (b'C', code), (b'M', "boom")] {
            body.push(f);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        msg(b'E', &body)
    }

    #[test]
    fn simple_queries_in_every_chunking() {
        let client = [msg(b'Q', b"SELECT 'secret', 42\0"), msg(b'X', b"")].concat();
        let server = [
            msg(b'T', b"\0\0"),
            msg(b'D', b"\0\0"),
            msg(b'C', b"SELECT 1\0"),
            msg(b'Z', b"I"),
        ]
        .concat();
        for chunk in [1, 2, 5, 7, 4096] {
            let (mut t, sink) = tracker();
            assert!(replay(&client, &server, chunk, &mut t, 1 << 20).unwrap_or(false));
            assert_eq!(
                statements(&sink),
                [("SELECT ?, ?".to_owned(), Some("SELECT 1".to_owned()), None)]
            );
        }
    }

    #[test]
    fn extended_protocol_and_errors() {
        let client = [
            msg(b'P', b"s1\0SELECT $1 FROM t WHERE x = 'a'\0\0\0"),
            msg(b'B', b"\0s1\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'B', b"\0s1\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
        ]
        .concat();
        // The first execute fails; the server skips the second.
        let server = [
            msg(b'1', b""),
            msg(b'2', b""),
            error("42P01"),
            msg(b'Z', b"I"),
        ]
        .concat();
        let (mut t, sink) = tracker();
        assert!(replay(&client, &server, 3, &mut t, 1 << 20).unwrap_or(false));
        assert_eq!(
            statements(&sink),
            [(
                "SELECT $1 FROM t WHERE x = ?".to_owned(),
                None,
                Some("42P01".to_owned())
            )]
        );
    }

    #[test]
    fn a_statement_that_fails_to_parse_is_audited() {
        let client = [
            msg(b'P', b"\0SELECT * FROM missing WHERE k = 'x'\0\0\0"),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
            // Then one that works, prepared once and executed.
            msg(b'P', b"\0SELECT 1\0\0\0"),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
        ]
        .concat();
        let server = [
            error("42P01"),
            msg(b'Z', b"I"),
            msg(b'1', b""),
            msg(b'2', b""),
            msg(b'D', b"\0\0"),
            msg(b'C', b"SELECT 1\0"),
            msg(b'Z', b"I"),
        ]
        .concat();
        for chunk in [3, 4096] {
            let (mut t, sink) = tracker();
            assert!(replay(&client, &server, chunk, &mut t, 1 << 20).unwrap_or(false));
            assert_eq!(
                statements(&sink),
                [
                    (
                        "SELECT * FROM missing WHERE k = ?".to_owned(),
                        None,
                        Some("42P01".to_owned())
                    ),
                    ("SELECT ?".to_owned(), Some("SELECT 1".to_owned()), None),
                ]
            );
        }
    }

    #[test]
    fn busy_or_in_a_transaction_is_not_reusable() {
        let (mut t, _) = tracker();
        // Two queries pipelined, one answered.
        let client = [msg(b'Q', b"SELECT 1\0"), msg(b'Q', b"SELECT 2\0")].concat();
        let one = [msg(b'C', b"SELECT 1\0"), msg(b'Z', b"I")].concat();
        assert!(!replay(&client, &one, 4096, &mut t, 1 << 20).unwrap_or(true));
        // Parse without Sync.
        let (mut t, _) = tracker();
        assert!(
            !replay(&msg(b'P', b"\0SELECT 1\0\0\0"), b"", 4096, &mut t, 1 << 20).unwrap_or(true)
        );
        // Inside a transaction.
        let (mut t, _) = tracker();
        let begin = [msg(b'C', b"BEGIN\0"), msg(b'Z', b"T")].concat();
        assert!(!replay(&msg(b'Q', b"BEGIN\0"), &begin, 4096, &mut t, 1 << 20).unwrap_or(true));
        // A server message cut short.
        let (mut t, _) = tracker();
        let cut = [
            msg(b'C', b"SELECT 1\0"),
            msg(b'Z', b"I"),
            msg(b'N', b"xyz")[..4].to_vec(),
        ]
        .concat();
        assert!(!replay(&msg(b'Q', b"SELECT 1\0"), &cut, 4096, &mut t, 1 << 20).unwrap_or(true));
    }

    #[test]
    fn limits_and_malformed_headers() {
        let (mut t, _) = tracker();
        let big = msg(b'Q', &[b'x'; 100]);
        assert!(matches!(
            replay(&big, b"", 4096, &mut t, 50),
            Err(ScanError::TooLarge(100))
        ));
        let (mut t, _) = tracker();
        assert!(matches!(
            replay(&[b'Q', 0, 0, 0, 3], b"", 4096, &mut t, 50),
            Err(ScanError::Malformed)
        ));
    }

    /// What a buffer passes on for `client`, read `chunk` bytes at a time.
    fn passed_on(client: &[u8], chunk: usize, t: &mut Tracker) -> Vec<u8> {
        let mut up = Buffer::new();
        let mut out = Vec::new();
        let mut rest = client;
        while !rest.is_empty() {
            up.make_room();
            let n = chunk.min(rest.len()).min(up.space().len());
            up.space()[..n].copy_from_slice(&rest[..n]);
            up.filled(n);
            rest = &rest[n..];
            assert!(up.scan(Direction::ToUpstream, t, 1 << 20).is_ok());
            out.extend_from_slice(up.writable());
            let w = up.writable().len();
            up.wrote(w);
        }
        out
    }

    #[test]
    fn password_changes_are_replaced_by_a_refusal() {
        let refusal = msg(b'Q', format!("{REFUSAL}\0").as_bytes());
        let padded = format!(
            "SELECT 1; /*{}*/ ALTER/**/ROLE app PASSWORD 'x'\0",
            " ".repeat(INSPECT_PREFIX * 2)
        );
        for sql in [
            "ALTER ROLE app PASSWORD 'secret'\0",
            "SELECT 1; alter user \"app\" with encrypted password 'x'\0",
            padded.as_str(),
        ] {
            let before = msg(b'Q', b"SELECT 1\0");
            let after = msg(b'Q', b"SELECT 2\0");
            let client = [before.clone(), msg(b'Q', sql.as_bytes()), after.clone()].concat();
            for chunk in [1, 7, 4096, 1 << 20] {
                let (mut t, sink) = tracker();
                let out = passed_on(&client, chunk, &mut t);
                assert_eq!(
                    out,
                    [before.clone(), refusal.clone(), after.clone()].concat()
                );
                assert_eq!(t.refused, 1);
                // The server's answer is audited against what was sent.
                let server = [
                    msg(b'C', b"SELECT 1\0"),
                    msg(b'Z', b"I"),
                    error("42501"),
                    msg(b'Z', b"I"),
                ]
                .concat();
                let mut down = Buffer::new();
                down.space()[..server.len()].copy_from_slice(&server);
                down.filled(server.len());
                assert!(down.scan(Direction::ToClient, &mut t, 1 << 20).is_ok());
                let logged = statements(&sink);
                assert_eq!(logged.len(), 2);
                if sql.len() < INSPECT_PREFIX {
                    assert!(
                        logged[1].0.to_ascii_uppercase().contains("PASSWORD ?"),
                        "{logged:?}"
                    );
                }
                assert_eq!(logged[1].2.as_deref(), Some("42501"));
            }
        }
        // Parse: the statement keeps its name and loses its parameter types.
        let parse = msg(b'P', b"s1\0ALTER ROLE app PASSWORD $1\0\0\x01\0\0\0\x19");
        let (mut t, _) = tracker();
        let out = passed_on(&parse, 3, &mut t);
        let mut want = b"s1\0".to_vec();
        want.extend_from_slice(REFUSAL.as_bytes());
        want.extend_from_slice(b"\0\0\0");
        assert_eq!(out, msg(b'P', &want));
        // With the policy's permission, nothing changes.
        let (t, _) = tracker();
        let mut t = t.allow_password_changes(true);
        let q = msg(b'Q', b"ALTER ROLE app PASSWORD 'x'\0");
        assert_eq!(passed_on(&q, 5, &mut t), q);
        // Ordinary statements pass unchanged.
        let (mut t, _) = tracker();
        let q = msg(b'Q', b"UPDATE users SET password = 'x' WHERE id = 1\0");
        assert_eq!(passed_on(&q, 5, &mut t), q);
    }

    #[test]
    fn red_team_dynamic_sql_catalogue_writes_and_signals_are_replaced() {
        let cases = [
            (
                "DO $$BEGIN EXECUTE 'ALTER ROLE app PASSWORD ''attacker-pw'''; END$$\0",
                REFUSAL,
            ),
            (
                // (`'ALTER ROLE app PASS'` alone is a role change, refused
                // as such.)
                "DO $$BEGIN EXECUTE 'ALTER RO'||'LE app PASSWORD ''x'''; END$$\0",
                REFUSAL_DYNAMIC_SQL,
            ),
            (
                "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $f$BEGIN EXECUTE format('SELECT %s', 1); END$f$\0",
                REFUSAL_DYNAMIC_SQL,
            ),
            ("UPDATE pg_authid SET rolpassword = NULL\0", REFUSAL),
            ("ALTER SYSTEM SET password_encryption = 'md5'\0", REFUSAL),
            (
                "select pg_terminate_backend(pid) from pg_stat_activity where usename='app'\0",
                REFUSAL_SIGNAL,
            ),
        ];
        for (sql, refusal) in cases {
            let q = msg(b'Q', sql.as_bytes());
            let (mut t, _) = tracker();
            let out = passed_on(&q, 7, &mut t);
            assert_eq!(out, msg(b'Q', format!("{refusal}\0").as_bytes()), "{sql}");
            assert_eq!(t.refused, 1);
        }
        // latchkey:ExecuteDynamicSql lets harmless dynamic SQL through;
        // signalling backends stays refused even with every permission.
        let (t, _) = tracker();
        let mut t = t.allow_dynamic_sql(true);
        let q = msg(b'Q', b"DO $$BEGIN EXECUTE 'SELECT ' || 1; END$$\0");
        assert_eq!(passed_on(&q, 5, &mut t), q);
        let (t, _) = tracker();
        let mut t = t.allow_dynamic_sql(true).allow_password_changes(true);
        let q = msg(b'Q', b"SELECT pg_cancel_backend(1)\0");
        assert_eq!(
            passed_on(&q, 5, &mut t),
            msg(b'Q', format!("{REFUSAL_SIGNAL}\0").as_bytes())
        );
    }

    #[test]
    fn function_calls_of_signal_functions_are_replaced() {
        // FunctionCall: oid, argument formats, arguments, result format.
        let call = |oid: u32| {
            let mut body = oid.to_be_bytes().to_vec();
            body.extend_from_slice(&[0, 1, 0, 1, 0, 1, 0, 0, 0, 4]);
            body.extend_from_slice(&4242u32.to_be_bytes());
            body.extend_from_slice(&[0, 1]);
            msg(b'F', &body)
        };
        for oid in [2096, 2171] {
            let (mut t, _) = tracker();
            let out = passed_on(&call(oid), 3, &mut t);
            assert_eq!(out, msg(b'Q', format!("{REFUSAL_SIGNAL}\0").as_bytes()));
            assert_eq!(t.refused, 1);
            assert!(t.busy());
            // The server's error and ReadyForQuery settle it.
            let server = [error("42501"), msg(b'Z', b"I")].concat();
            let mut down = Buffer::new();
            down.space()[..server.len()].copy_from_slice(&server);
            down.filled(server.len());
            assert!(down.scan(Direction::ToClient, &mut t, 1 << 20).is_ok());
            assert!(t.idle());
        }
        // Functions that run SQL text, and server file access and
        // reload, unless the policy allows them.
        for (oid, refusal) in [
            (2924, REFUSAL_DYNAMIC_SQL),
            (3689, REFUSAL_DYNAMIC_SQL),
            (764, REFUSAL),
            (765, REFUSAL),
            (2621, REFUSAL),
            (3826, REFUSAL),
        ] {
            let (mut t, _) = tracker();
            let out = passed_on(&call(oid), 3, &mut t);
            assert_eq!(out, msg(b'Q', format!("{refusal}\0").as_bytes()), "{oid}");
            let (t, _) = tracker();
            let mut t = t.allow_dynamic_sql(true).allow_password_changes(true);
            assert_eq!(passed_on(&call(oid), 3, &mut t), call(oid), "{oid}");
        }
        // Other functions (large objects, through libpq's PQfn) pass.
        let (mut t, _) = tracker();
        let other = call(952);
        assert_eq!(passed_on(&other, 3, &mut t), other);
        assert_eq!(t.refused, 0);
    }

    #[test]
    fn long_statements_are_cut_and_marked() {
        let sql = format!("SELECT '{}'\0", "y".repeat(INSPECT_PREFIX * 2));
        let client = msg(b'Q', sql.as_bytes());
        let server = [msg(b'C', b"SELECT 1\0"), msg(b'Z', b"I")].concat();
        let (mut t, sink) = tracker();
        assert!(replay(&client, &server, 1000, &mut t, 1 << 20).unwrap_or(false));
        let events = sink.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(Event::Statement(s)) = events.first() else {
            panic!("no statement event");
        };
        assert!(s.statement.truncated);
        assert!(!s.statement.text.contains("yyyy"));
    }
}
