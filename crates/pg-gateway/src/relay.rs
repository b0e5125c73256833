//! The framed relay: bytes flow both ways unchanged, but the relay knows
//! where every message starts. That lets it
//!
//! - follow statements and their results for the audit log,
//! - know when the upstream connection is idle and safe to reuse,
//! - refuse oversized client messages,
//! - end a session at a message boundary with an error the client can
//!   read.
//!
//! Message bodies are not copied: the relay looks at most
//! [`INSPECT_PREFIX`] bytes of the messages it cares about, in place, and
//! streams everything else (COPY data, rows) straight through.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime};

use latchkey_audit::{
    AuditSink, Event, Protocol, SessionInfo, Statement, StatementEvent, rows_from_tag,
};
use latchkey_pgwire as wire;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::upstream::Upstream;

/// Each direction's buffer. Grown (to [`INSPECT_PREFIX`] and a header)
/// only while a long statement is being looked at.
pub const BUFFER: usize = 16 * 1024;
/// How much of a `Query` or `Parse` the audit sees; longer statements are
/// logged cut short and marked truncated.
pub const INSPECT_PREFIX: usize = 32 * 1024;
/// Prepared statements and portals remembered per session (PostgreSQL has
/// no limit; a client that exceeds this gets its later statements logged
/// as unknown rather than the gateway's memory growing without bound).
const MAX_NAMES: usize = 10_000;

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

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("client: {0}")]
    Client(io::Error),
    #[error("upstream: {0}")]
    Upstream(io::Error),
    #[error("client message of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("client sent a malformed message header")]
    Malformed,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToUpstream,
    ToClient,
}

/// Which side an I/O error is blamed on.
type ErrorSide = fn(io::Error) -> RelayError;

/// What a direction's poll ended with.
enum HalfEnd {
    Eof,
    Terminated,
}

/// One direction: a buffer of bytes read, scanned up to a message
/// boundary, and written on.
struct Half {
    buf: Vec<u8>,
    /// Bytes before `start` are written.
    start: usize,
    /// Bytes before `scanned` may be written.
    scanned: usize,
    /// Bytes before `end` are read.
    end: usize,
    /// Bytes of the current message still to pass through unscanned.
    skip: usize,
    bytes: u64,
    unflushed: bool,
    eof: bool,
    terminated: bool,
}

impl Half {
    fn new() -> Self {
        Self {
            buf: vec![0; BUFFER],
            start: 0,
            scanned: 0,
            end: 0,
            skip: 0,
            bytes: 0,
            unflushed: false,
            eof: false,
            terminated: false,
        }
    }

    /// Everything read has been written and no message is half sent.
    fn at_boundary(&self) -> bool {
        self.skip == 0 && self.start == self.end
    }

    /// Walks message headers in `scanned..end`, handing the messages the
    /// tracker wants to it.
    fn scan(
        &mut self,
        direction: Direction,
        tracker: &mut Tracker,
        max_message: usize,
    ) -> Result<(), RelayError> {
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
                return Err(RelayError::Malformed);
            };
            if body_len > max_message {
                return Err(RelayError::TooLarge(body_len));
            }
            if !tracker.wants(direction, tag) {
                tracker.passed(direction, tag);
                self.scanned += 5;
                self.skip = body_len;
                continue;
            }
            let look = body_len.min(INSPECT_PREFIX);
            if available < 5 + look {
                if self.buf.len() < 5 + look {
                    self.buf.resize(5 + look, 0);
                }
                return Ok(());
            }
            let body = &self.buf[at + 5..at + 5 + look];
            if tracker.message(direction, tag, body, look == body_len) == Verdict::Terminate {
                // Nothing from the client after Terminate is passed on.
                self.terminated = true;
                self.end = at;
                return Ok(());
            }
            self.scanned += 5 + look;
            self.skip = body_len - look;
        }
    }

    /// Moves bytes from `src` to `dst` until one side ends or blocks.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut src: Pin<&mut R>,
        mut dst: Pin<&mut W>,
        tracker: &mut Tracker,
        max_message: usize,
    ) -> Poll<Result<HalfEnd, RelayError>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        let (read_err, write_err): (ErrorSide, ErrorSide) = match direction {
            Direction::ToUpstream => (RelayError::Client, RelayError::Upstream),
            Direction::ToClient => (RelayError::Upstream, RelayError::Client),
        };
        loop {
            while self.start < self.scanned {
                let n = ready!(
                    dst.as_mut()
                        .poll_write(cx, &self.buf[self.start..self.scanned])
                )
                .map_err(write_err)?;
                if n == 0 {
                    return Poll::Ready(Err(write_err(io::ErrorKind::WriteZero.into())));
                }
                self.start += n;
                self.bytes += n as u64;
                self.unflushed = true;
            }
            if self.terminated || self.eof {
                if self.unflushed {
                    ready!(dst.as_mut().poll_flush(cx)).map_err(write_err)?;
                    self.unflushed = false;
                }
                return Poll::Ready(Ok(if self.terminated {
                    HalfEnd::Terminated
                } else {
                    HalfEnd::Eof
                }));
            }
            // Make room: start over when everything is written, or move a
            // partial message at the end to the front.
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
            let mut read = ReadBuf::new(&mut self.buf[self.end..]);
            match src.as_mut().poll_read(cx, &mut read) {
                Poll::Pending => {
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
                    self.end += n;
                }
            }
            self.scan(direction, tracker, max_message)?;
        }
    }
}

/// What to do with a message the tracker looked at.
#[derive(PartialEq, Eq)]
enum Verdict {
    Forward,
    Terminate,
}

/// A statement waiting for its result.
enum Pending {
    Query {
        /// `None` when statements are not audited.
        statement: Option<Arc<Statement>>,
        started: Instant,
        tag: Option<String>,
        error: Option<String>,
    },
    Execute {
        statement: Option<Arc<Statement>>,
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
    /// Parameters the server reported during the session.
    pub parameter_changes: Vec<(String, String)>,
    pub statement_count: u64,
}

impl Tracker {
    pub fn new(audit: Option<Audit>) -> Self {
        Self {
            outstanding: 0,
            unsynced: false,
            transaction: b'I',
            pending: VecDeque::new(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            audit,
            parameter_changes: Vec::new(),
            statement_count: 0,
        }
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
            Direction::ToUpstream => matches!(tag, b'Q' | b'P' | b'B' | b'E' | b'C' | b'S' | b'X'),
            Direction::ToClient => matches!(tag, b'C' | b'E' | b'Z' | b'S' | b'I' | b's'),
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

    fn statement(&self, sql: &str, complete: bool) -> Arc<Statement> {
        let n = latchkey_sqlnorm::normalize(sql, latchkey_sqlnorm::Dialect::Postgres);
        let keep = self.audit.as_ref().is_some_and(|a| a.keep_literals);
        Arc::new(Statement {
            text: if keep { sql.to_owned() } else { n.text },
            fingerprint: n.fingerprint,
            truncated: n.truncated || !complete,
        })
    }

    fn unknown() -> Arc<Statement> {
        Arc::new(Statement {
            text: "(statement not known to the gateway)".into(),
            fingerprint: 0,
            truncated: true,
        })
    }

    fn message(&mut self, direction: Direction, tag: u8, body: &[u8], complete: bool) -> Verdict {
        let auditing = self.audit.is_some();
        match (direction, tag) {
            (Direction::ToUpstream, b'X') => return Verdict::Terminate,
            (Direction::ToUpstream, b'Q') => {
                self.outstanding += 1;
                let statement = auditing.then(|| match wire::leading_str_prefix(body) {
                    Ok(sql) => self.statement(sql, complete),
                    Err(_) => Self::unknown(),
                });
                self.pending.push_back(Pending::Query {
                    statement,
                    started: Instant::now(),
                    tag: None,
                    error: None,
                });
            }
            (Direction::ToUpstream, b'S') => {
                self.outstanding += 1;
                self.unsynced = false;
                self.pending.push_back(Pending::Sync);
            }
            (Direction::ToUpstream, b'P') => {
                self.unsynced = true;
                if auditing && let Ok((name, sql)) = wire::parse_parse(body) {
                    let statement = self.statement(sql, complete);
                    if self.statements.len() < MAX_NAMES || self.statements.contains_key(name) {
                        self.statements.insert(name.to_owned(), statement);
                    }
                }
            }
            (Direction::ToUpstream, b'B') => {
                self.unsynced = true;
                if auditing && let Ok((portal, name)) = wire::parse_bind(body) {
                    let statement = self
                        .statements
                        .get(name)
                        .cloned()
                        .unwrap_or_else(Self::unknown);
                    if self.portals.len() < MAX_NAMES || self.portals.contains_key(portal) {
                        self.portals.insert(portal.to_owned(), statement);
                    }
                }
            }
            (Direction::ToUpstream, b'E') => {
                self.unsynced = true;
                let statement = auditing.then(|| {
                    wire::leading_str(body)
                        .ok()
                        .and_then(|portal| self.portals.get(portal).cloned())
                        .unwrap_or_else(Self::unknown)
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
                let tag_text = if tag == b'C' && auditing {
                    wire::leading_str(body).ok().map(str::to_owned)
                } else {
                    None
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
            (Direction::ToClient, b'E') => {
                let code = wire::error_code(body).map(str::to_owned);
                match self.pending.front_mut() {
                    Some(Pending::Query { error, .. }) if error.is_none() => {
                        *error = code;
                    }
                    Some(Pending::Execute { .. }) => {
                        if let Some(Pending::Execute { statement, started }) =
                            self.pending.pop_front()
                        {
                            self.report(statement, Protocol::Extended, started, None, code);
                        }
                        // The server skips the rest up to Sync.
                        while matches!(self.pending.front(), Some(Pending::Execute { .. })) {
                            self.pending.pop_front();
                        }
                    }
                    _ => {}
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
                        Pending::Execute { .. } => {}
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
        command_tag: Option<String>,
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

/// A client and its upstream, relayed.
pub struct Relay<C> {
    pub client: C,
    pub upstream: Upstream,
    pub tracker: Tracker,
    to_upstream: Half,
    to_client: Half,
    max_message: usize,
}

impl<C: AsyncRead + AsyncWrite + Unpin> Relay<C> {
    pub fn new(client: C, upstream: Upstream, tracker: Tracker, max_message: usize) -> Self {
        Self {
            client,
            upstream,
            tracker,
            to_upstream: Half::new(),
            to_client: Half::new(),
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
        self.to_client.at_boundary()
    }

    /// The upstream connection is between transactions with nothing in
    /// flight either way: it can be reset and reused.
    pub fn reusable(&self) -> bool {
        self.tracker.idle()
            && self.to_client.at_boundary()
            && self.to_upstream.skip == 0
            && self.to_upstream.start == self.to_upstream.scanned
    }

    /// Bytes (from the client, to the client).
    pub fn bytes(&self) -> (u64, u64) {
        (self.to_upstream.bytes, self.to_client.bytes)
    }
}
