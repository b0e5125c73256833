//! Following a MySQL/MariaDB conversation from its bytes, for a relay
//! that passes them on: where each packet starts, which commands await
//! their responses and how those end (for the audit log), which commands
//! the gateway must answer itself (`COM_CHANGE_USER`, `KILL`, and
//! statements `latchkey-sqlguard` refuses: password changes, KILLs it
//! cannot map), and
//! whether the server is idle between transactions (so its connection
//! can be reused).
//!
//! Pure: the gateway reads into a [`Buffer`], calls [`Buffer::scan`], and
//! writes on what it scanned. Payloads are not copied: at most the first
//! [`INSPECT_PREFIX`] bytes of a command (or [`WHOLE_PAYLOAD`] bytes of
//! one the gateway may intercept, and of a server payload other than a
//! row) are looked at in place; everything else (rows, LOCAL INFILE
//! uploads, long data) streams through.
//!
//! The protocol is half duplex, but clients may pipeline commands; each
//! command awaiting its response is queued with its own
//! [`ResponseTracker`], and the server's packets are checked against the
//! sequence ids the command left off at.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use latchkey_audit::{
    AuditSink, Event, Protocol, SessionInfo, Statement, StatementCache, StatementEvent,
};
use latchkey_mywire::{
    CLIENT_MULTI_STATEMENTS, COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_CHANGE_USER, COM_DEBUG,
    COM_PROCESS_KILL, COM_QUERY, COM_QUIT, COM_REFRESH, COM_REGISTER_SLAVE, COM_RESET_CONNECTION,
    COM_SHUTDOWN, COM_SLEEP, COM_STMT_BULK_EXECUTE, COM_STMT_CLOSE, COM_STMT_EXECUTE,
    COM_STMT_PREPARE, COM_TABLE_DUMP, Command, ErrInfo, HEADER_LEN, MAX_PACKET_PAYLOAD, OkInfo,
    PrepareOk, Progress, ResponseTracker, SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_IN_TRANS,
    command_name, parse_command, utf8_prefix,
};
use latchkey_sqlguard::{Refusal, Rules, Verdict};
use latchkey_sqlnorm::{Dialect, leading_keyword_for};

pub use latchkey_sqlguard::{Kill, KillForce, KillScope};

#[cfg(test)]
mod tests;

/// Each direction's buffer. Grown (to [`WHOLE_PAYLOAD`] and a header)
/// only while a payload that must be looked at whole is arriving.
pub const BUFFER: usize = 16 * 1024;
/// How much of a command's SQL the audit sees; longer statements are
/// logged cut short and marked truncated.
pub const INSPECT_PREFIX: usize = 32 * 1024;
/// The largest payload held whole: a command the gateway may intercept,
/// and any server payload but a row. Always a single packet (splitting
/// starts at 16 MiB). SQL (`COM_QUERY`, `COM_STMT_PREPARE`) is held whole
/// whatever its size, up to the command limit, so that nothing padded
/// can slip past `latchkey-sqlguard`.
pub const WHOLE_PAYLOAD: usize = 64 * 1024;
/// Prepared statements remembered per session (the server's own limit is
/// `max_prepared_stmt_count`; a client that exceeds this gets its later
/// statements logged as unknown rather than the gateway's memory growing
/// without bound).
const MAX_STATEMENTS: usize = 10_000;
/// A command byte and a statement id: all the gateway reads of commands
/// other than SQL-carrying ones.
const ID_END: usize = 5;

/// Why bytes could not be followed. Every one ends the session: the
/// gateway can no longer tell where packets start or whose they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("client command of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("cannot follow the MySQL conversation: {0}")]
    Malformed(String),
    #[error("the server asked for a LOCAL INFILE upload, which this session may not make")]
    LocalInfileRefused,
    /// A statement over 16 MiB (several packets) that the gateway
    /// refuses, or cannot check because more statements may follow.
    #[error("a statement of several packets that the gateway refuses or cannot check")]
    Unchecked,
}

fn malformed(what: impl Into<String>) -> ScanError {
    ScanError::Malformed(what.into())
}

pub use latchkey_framing::Direction;

/// A whole client command taken out of the stream: the gateway answers
/// it itself (or forwards a rewritten one, see [`Tracker::forwarded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intercepted {
    pub payload: Vec<u8>,
    pub what: Interception,
}

/// What an intercepted command is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interception {
    ChangeUser,
    ProcessKill,
    /// A lone `KILL` statement, to be pointed at the server's thread id.
    Kill(Kill),
    /// SQL the session may not run: answer with an error (and audit it
    /// with [`Tracker::refused`]).
    Refused(Refusal),
}

/// Whose packets a split payload's later packets are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// A command; `queued` when it awaits a response.
    Command { queued: bool },
    /// LOCAL INFILE data.
    Upload,
    /// A server payload; `tracked` when it belongs to a queued command.
    Response { tracked: bool },
}

/// A payload of 0xFFFFFF bytes or more, whose next packet is still due.
#[derive(Clone, Copy, Debug)]
struct Split {
    next_seq: u8,
    total: usize,
    part: Part,
}

/// What scanning one packet came to.
enum Step {
    /// Wait for more bytes.
    More,
    /// Go on with the next packet.
    Next,
    Intercept(Intercepted),
}

/// One direction's bytes: read, scanned up to a packet boundary, and
/// written on.
pub struct Buffer {
    buf: Vec<u8>,
    /// Bytes before `start` are written.
    start: usize,
    /// Bytes before `scanned` may be written.
    scanned: usize,
    /// Bytes before `end` are read.
    end: usize,
    /// Bytes of the current packet still to pass through unscanned.
    skip: usize,
    /// A payload split over packets that has more to come.
    split: Option<Split>,
    written: u64,
    terminated: bool,
}

impl latchkey_framing::Framing for Buffer {
    type Tracker = Tracker;
    type Taken = Intercepted;
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
    ) -> Result<Option<Intercepted>, ScanError> {
        Buffer::scan(self, direction, tracker, max_message)
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
            split: None,
            written: 0,
            terminated: false,
        }
    }

    /// Everything read has been written and no payload is half sent.
    pub fn at_boundary(&self) -> bool {
        self.skip == 0 && self.split.is_none() && self.start == self.end
    }

    /// Everything scanned has been written and no payload is half sent
    /// (bytes read but not yet scanned were never passed on).
    pub fn nothing_in_flight(&self) -> bool {
        self.skip == 0 && self.split.is_none() && self.start == self.scanned
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

    /// The client sent `COM_QUIT`: nothing more is passed on (the
    /// upstream connection stays open, and may be reused).
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

    /// Starts over when everything is written, or moves a partial packet
    /// at the end to the front.
    pub fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.scanned = 0;
            self.end = 0;
            if self.buf.len() > BUFFER {
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

    /// Walks packet headers in `scanned..end`, handing the tracker what
    /// it follows. Stops at a command the gateway must answer itself and
    /// returns it, out of the stream (everything before it is writable);
    /// call again to go on. `max_payload` limits client commands (the
    /// sum of their packets); server payloads and upload data are not
    /// limited.
    pub fn scan(
        &mut self,
        direction: Direction,
        tracker: &mut Tracker,
        max_payload: usize,
    ) -> Result<Option<Intercepted>, ScanError> {
        loop {
            if self.terminated {
                return Ok(None);
            }
            if self.skip > 0 {
                let n = self.skip.min(self.end - self.scanned);
                if n == 0 {
                    return Ok(None);
                }
                self.scanned += n;
                self.skip -= n;
                continue;
            }
            if self.end - self.scanned < HEADER_LEN {
                return Ok(None);
            }
            let at = self.scanned;
            let h = &self.buf[at..at + HEADER_LEN];
            let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
            let seq = h[3];
            let step = match (self.split, direction) {
                (Some(split), _) => self.continued(split, len, seq, tracker, max_payload)?,
                (None, Direction::ToUpstream) => {
                    self.client_packet(at, len, seq, tracker, max_payload)?
                }
                (None, Direction::ToClient) => self.server_packet(at, len, seq, tracker)?,
            };
            match step {
                Step::More => return Ok(None),
                Step::Next => {}
                Step::Intercept(i) => return Ok(Some(i)),
            }
        }
    }

    /// Passes the header and the first `look` payload bytes of the packet
    /// at `scanned`, and streams the rest.
    fn pass(&mut self, look: usize, len: usize) {
        self.scanned += HEADER_LEN + look;
        self.skip = len - look;
    }

    /// Makes sure a packet of `len` payload bytes fits once the bytes
    /// before it are written and moved out.
    fn reserve(&mut self, len: usize) {
        if self.buf.len() < HEADER_LEN + len {
            self.buf.resize(HEADER_LEN + len, 0);
        }
    }

    /// A later packet of a split payload.
    fn continued(
        &mut self,
        split: Split,
        len: usize,
        seq: u8,
        tracker: &mut Tracker,
        max_payload: usize,
    ) -> Result<Step, ScanError> {
        if seq != split.next_seq {
            return Err(malformed(format!(
                "packet sequence id {seq} where {} was due",
                split.next_seq
            )));
        }
        let total = split.total.saturating_add(len);
        match split.part {
            Part::Command { queued } => {
                if total > max_payload {
                    return Err(ScanError::TooLarge(total));
                }
                if queued {
                    tracker.command_packet(seq);
                }
            }
            Part::Upload => tracker.upload_packet(seq, false),
            Part::Response { tracked } => {
                if tracked {
                    tracker.response_packet(seq);
                }
            }
        }
        self.split = (len == MAX_PACKET_PAYLOAD).then_some(Split {
            next_seq: seq.wrapping_add(1),
            total,
            part: split.part,
        });
        self.pass(0, len);
        Ok(Step::Next)
    }

    /// The first packet of a client payload: a command, or upload data.
    fn client_packet(
        &mut self,
        at: usize,
        len: usize,
        seq: u8,
        tracker: &mut Tracker,
        max_payload: usize,
    ) -> Result<Step, ScanError> {
        let last = len < MAX_PACKET_PAYLOAD;
        if let Some(due) = tracker.upload {
            if seq != due {
                return Err(malformed(format!(
                    "LOCAL INFILE data with sequence id {seq} where {due} was due"
                )));
            }
            // An empty payload ends the upload.
            tracker.upload_packet(seq, len == 0);
            self.split = (!last).then_some(Split {
                next_seq: seq.wrapping_add(1),
                total: len,
                part: Part::Upload,
            });
            self.pass(0, len);
            return Ok(Step::Next);
        }
        if seq != 0 {
            return Err(malformed(format!(
                "a command starting with sequence id {seq}"
            )));
        }
        if len > max_payload {
            return Err(ScanError::TooLarge(len));
        }
        let available = self.end - at - HEADER_LEN;
        // The server takes an empty payload for COM_SLEEP.
        let code = match len {
            0 => COM_SLEEP,
            _ if available == 0 => return Ok(Step::More),
            _ => self.buf[at + HEADER_LEN],
        };
        if code == COM_QUIT {
            // Nothing from the client after COM_QUIT is passed on.
            self.terminated = true;
            self.end = at;
            return Ok(Step::More);
        }
        let whole = last && len <= WHOLE_PAYLOAD;
        let sql = matches!(code, COM_QUERY | COM_STMT_PREPARE);
        if (matches!(code, COM_CHANGE_USER | COM_PROCESS_KILL) || admin_command(code)) && !whole {
            return Err(malformed(format!(
                "{} of {len} bytes is too large to intercept",
                command_name(code)
            )));
        }
        // SQL is checked whole (its first packet, for one over 16 MiB).
        let look =
            if sql || matches!(code, COM_CHANGE_USER | COM_PROCESS_KILL) || admin_command(code) {
                len
            } else {
                len.min(ID_END)
            };
        if available < look {
            self.reserve(look);
            return Ok(Step::More);
        }
        let payload = &self.buf[at + HEADER_LEN..at + HEADER_LEN + look];
        if let Some(what) = tracker.intercepts(payload, last) {
            if !last {
                // Its other packets would follow: refusing it in place is
                // not possible.
                return Err(ScanError::Unchecked);
            }
            let payload = payload.to_vec();
            // Out of the stream: what follows moves up, unscanned.
            self.buf.copy_within(at + HEADER_LEN + len..self.end, at);
            self.end -= HEADER_LEN + len;
            return Ok(Step::Intercept(Intercepted { payload, what }));
        }
        let inspected = &payload[..look.min(INSPECT_PREFIX)];
        let queued = tracker.command(inspected, last && inspected.len() == len, 1);
        self.split = (!last).then_some(Split {
            next_seq: 1,
            total: len,
            part: Part::Command { queued },
        });
        self.pass(look, len);
        Ok(Step::Next)
    }

    /// The first packet of a server payload.
    fn server_packet(
        &mut self,
        at: usize,
        len: usize,
        seq: u8,
        tracker: &mut Tracker,
    ) -> Result<Step, ScanError> {
        let last = len < MAX_PACKET_PAYLOAD;
        let tracked = tracker.response_header(seq)?;
        let available = self.end - at - HEADER_LEN;
        let look = if !tracked {
            0
        } else if last && len <= WHOLE_PAYLOAD {
            if available < len {
                self.reserve(len);
                return Ok(Step::More);
            }
            tracker.response(&self.buf[at + HEADER_LEN..at + HEADER_LEN + len], seq)?;
            len
        } else {
            // Only a row can be this large: count it from its first byte
            // and stream it.
            if available == 0 {
                return Ok(Step::More);
            }
            tracker.large_row(self.buf[at + HEADER_LEN], len, seq)?;
            0
        };
        self.split = (!last).then_some(Split {
            next_seq: seq.wrapping_add(1),
            total: len,
            part: Part::Response { tracked },
        });
        self.pass(look, len);
        Ok(Step::Next)
    }
}

/// Where statements are reported.
pub struct Audit {
    pub sink: Arc<dyn AuditSink>,
    pub session: Arc<SessionInfo>,
    /// Log statements with their literals (off by default: literals can
    /// hold personal data and secrets).
    pub keep_literals: bool,
}

/// A statement: as audited (`None` when statements are not), and the
/// keyword its command tag starts with.
#[derive(Clone)]
struct Sql {
    statement: Option<Arc<Statement>>,
    keyword: Option<Arc<str>>,
}

impl Sql {
    /// Whether the statement may run others (a `CALL`, or one the
    /// gateway cannot name).
    fn may_run_several(&self) -> bool {
        self.keyword.as_deref().is_none_or(|k| k == "CALL")
    }
}

/// What a command means for the audit and the prepared statements.
/// Statements are resolved as the server handles commands (in order, on
/// completion), not as they are sent: a client may pipeline a prepare,
/// its execution and its close.
enum Audited {
    Nothing,
    /// `COM_QUERY`: an event when it completes.
    Query(Sql),
    /// `COM_STMT_EXECUTE`: an event when it completes, for the statement
    /// prepared under this id (`0xFFFFFFFF`: MariaDB's "the last one").
    Execute(Option<u32>),
    /// `COM_STMT_PREPARE`: remembered when it succeeds, an event when it
    /// fails.
    Prepare(Sql),
    /// `COM_RESET_CONNECTION`: every statement is gone once it succeeds.
    Reset,
}

/// A command awaiting its response.
struct Outstanding {
    code: u8,
    response: ResponseTracker,
    /// The sequence id the server's next packet for it carries.
    next_seq: u8,
    started: Instant,
    /// Several statements may run (multi-statements, `CALL`), so an
    /// error does not say whether a transaction was left open.
    several: bool,
    audited: Audited,
    /// Statements the client closed after sending this command: the
    /// server closes them once it is done with it.
    closes: Vec<u32>,
}

/// Follows the conversation: which commands await responses, which
/// prepared statements exist, and whether the server is idle between
/// transactions.
pub struct Tracker {
    /// Capabilities negotiated with the upstream server.
    caps: u64,
    queue: VecDeque<Outstanding>,
    /// While a LOCAL INFILE upload is in progress: the sequence id of the
    /// client's next packet.
    upload: Option<u8>,
    local_infile_allowed: bool,
    /// What SQL the session may send (see `latchkey-sqlguard`).
    rules: Rules,
    /// Server status of the last OK or EOF; `None` after an error that
    /// may have left a transaction open.
    status: Option<u16>,
    /// The server sent packets when no command awaited them: whatever
    /// state it is in, it is not ours to reuse.
    unsolicited: bool,
    prepared: HashMap<u32, Sql>,
    /// The statement prepared last (what MariaDB's id `0xFFFFFFFF` means).
    last_prepared: Option<u32>,
    audit: Option<Audit>,
    /// Present when statements are audited.
    normalised: Option<StatementCache>,
    /// Statements run: the events the audit logs (or would, when off).
    pub statement_count: u64,
}

impl Tracker {
    /// `caps` are the capabilities negotiated with the upstream server
    /// (they decide how responses are laid out).
    pub fn new(caps: u64, audit: Option<Audit>, local_infile_allowed: bool) -> Self {
        Self {
            caps,
            queue: VecDeque::new(),
            upload: None,
            local_infile_allowed,
            rules: Rules::default(),
            // A fresh connection: autocommit on, no transaction.
            status: Some(SERVER_STATUS_AUTOCOMMIT),
            unsolicited: false,
            prepared: HashMap::new(),
            last_prepared: None,
            normalised: audit
                .as_ref()
                .map(|a| StatementCache::new(Dialect::MySql, a.keep_literals)),
            audit,
            statement_count: 0,
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

    /// The server has answered everything, no upload is in progress, and
    /// it is known to be outside a transaction: the connection can be
    /// reused. After an error that may have left a transaction open this
    /// stays false until the next OK (a `COM_PING` sent through
    /// [`Tracker::forwarded`] settles it).
    pub fn idle(&self) -> bool {
        self.queue.is_empty()
            && self.upload.is_none()
            && !self.unsolicited
            && self.status.is_some_and(|s| s & SERVER_STATUS_IN_TRANS == 0)
    }

    /// A command awaits its response.
    pub fn busy(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The client is sending a LOCAL INFILE file: its packets are data,
    /// not commands.
    pub fn uploading(&self) -> bool {
        self.upload.is_some()
    }

    /// The gateway itself sent `payload` upstream as a command (a
    /// rewritten `KILL`, a `COM_PING`), at a command boundary: its
    /// response is followed (and its statement audited) like a client's.
    pub fn forwarded(&mut self, payload: &[u8]) {
        let packets = payload.len() / MAX_PACKET_PAYLOAD + 1;
        let next_seq = (packets % 256) as u8;
        let inspected = &payload[..payload.len().min(INSPECT_PREFIX)];
        self.command(inspected, inspected.len() == payload.len(), next_seq);
    }

    /// The server answers and the client sends nothing until it has.
    fn awaits_server(&self) -> bool {
        !self.queue.is_empty() && self.upload.is_none()
    }

    /// Whether a command (whole, or the first packet of one over 16 MiB
    /// when `last` is false) is one the gateway answers itself.
    fn intercepts(&self, payload: &[u8], last: bool) -> Option<Interception> {
        let (sql, prepare) = match payload.first() {
            Some(&COM_CHANGE_USER) => return Some(Interception::ChangeUser),
            Some(&COM_PROCESS_KILL) => return Some(Interception::ProcessKill),
            // As `SHUTDOWN`: refused whatever the policy.
            Some(&code) if admin_command(code) => {
                return Some(Interception::Refused(Refusal::SignalBackend));
            }
            Some(&COM_QUERY) => (query_sql(payload, self.caps)?, false),
            Some(&COM_STMT_PREPARE) => (payload.get(1..)?, true),
            _ => return None,
        };
        match latchkey_sqlguard::check(sql, Dialect::MySql, self.rules, last) {
            Verdict::Allow if !last && self.caps & CLIENT_MULTI_STATEMENTS != 0 => {
                // More statements may follow in packets not yet seen.
                Some(Interception::Refused(Refusal::Kill))
            }
            Verdict::Allow => None,
            // A prepared KILL would run with a raw id.
            Verdict::Kill(_) if prepare => Some(Interception::Refused(Refusal::Kill)),
            Verdict::Kill(k) => Some(Interception::Kill(k)),
            Verdict::Refuse(r) => Some(Interception::Refused(r)),
        }
    }

    /// The gateway refused a command it intercepted (`payload`, whole)
    /// with `err`: audited as a statement that failed.
    pub fn refused(&mut self, payload: &[u8], err: ErrInfo) {
        let (sql, protocol) = match payload.first() {
            Some(&COM_QUERY) => (query_sql(payload, self.caps), Protocol::Simple),
            Some(&COM_STMT_PREPARE) => (payload.get(1..), Protocol::Extended),
            _ => (None, Protocol::Simple),
        };
        let sql = match sql {
            Some(sql) => {
                let inspected = &sql[..sql.len().min(INSPECT_PREFIX)];
                self.sql(&decode(inspected), inspected.len() == sql.len())
            }
            None => self.unknown(),
        };
        self.report(sql, protocol, Instant::now(), Err(err));
    }

    fn sql(&mut self, text: &str, complete: bool) -> Sql {
        Sql {
            statement: self
                .normalised
                .as_mut()
                .map(|n| n.statement(text, complete)),
            keyword: leading_keyword_for(text, Dialect::MySql).map(Arc::from),
        }
    }

    fn unknown(&self) -> Sql {
        Sql {
            statement: self.normalised.as_ref().map(StatementCache::unknown),
            keyword: None,
        }
    }

    /// A command sent upstream, from its first `INSPECT_PREFIX` bytes
    /// (`complete` when that is all of it). The server's first packet
    /// for it will carry `next_seq`. Returns whether it awaits a
    /// response.
    fn command(&mut self, payload: &[u8], complete: bool, next_seq: u8) -> bool {
        let code = payload.first().copied().unwrap_or(COM_SLEEP);
        let statement_id = payload
            .get(1..ID_END)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if code == COM_STMT_CLOSE {
            // No response; the server closes it after what was sent
            // before.
            if let Some(id) = statement_id {
                match self.queue.back_mut() {
                    Some(last) if last.closes.len() < MAX_STATEMENTS => last.closes.push(id),
                    Some(_) => {}
                    None => self.forget(id),
                }
            }
            return false;
        }
        let response = ResponseTracker::for_command(code, self.caps);
        if response.is_complete() {
            // COM_STMT_SEND_LONG_DATA: no response.
            return false;
        }
        let mut several = false;
        let audited = match code {
            COM_QUERY => {
                let sql = match query_sql(payload, self.caps) {
                    Some(sql) => self.sql(&decode(sql), complete),
                    None => self.unknown(),
                };
                several = self.caps & CLIENT_MULTI_STATEMENTS != 0 || sql.may_run_several();
                Audited::Query(sql)
            }
            COM_STMT_PREPARE => Audited::Prepare(self.sql(&decode(&payload[1..]), complete)),
            COM_STMT_EXECUTE | COM_STMT_BULK_EXECUTE => Audited::Execute(statement_id),
            COM_RESET_CONNECTION => Audited::Reset,
            _ => Audited::Nothing,
        };
        self.queue.push_back(Outstanding {
            code,
            response,
            next_seq,
            started: Instant::now(),
            several,
            audited,
            closes: Vec::new(),
        });
        true
    }

    fn forget(&mut self, id: u32) {
        self.prepared.remove(&id);
        if self.last_prepared == Some(id) {
            self.last_prepared = None;
        }
    }

    /// The statement prepared under `id`, as far as the gateway knows.
    fn resolve(&self, id: Option<u32>) -> Sql {
        let id = match id {
            Some(u32::MAX) => self.last_prepared,
            id => id,
        };
        id.and_then(|id| self.prepared.get(&id))
            .cloned()
            .unwrap_or_else(|| self.unknown())
    }

    /// A later packet of the command last queued.
    fn command_packet(&mut self, seq: u8) {
        if let Some(last) = self.queue.back_mut() {
            last.next_seq = seq.wrapping_add(1);
        }
    }

    /// A packet of LOCAL INFILE data; `end` for the empty payload that
    /// ends the file, after which the server answers.
    fn upload_packet(&mut self, seq: u8, end: bool) {
        let next = seq.wrapping_add(1);
        if end {
            self.upload = None;
            if let Some(front) = self.queue.front_mut() {
                front.next_seq = next;
            }
        } else {
            self.upload = Some(next);
        }
    }

    /// A server payload's first packet header: whether a command awaits
    /// it (and its sequence id follows on).
    fn response_header(&mut self, seq: u8) -> Result<bool, ScanError> {
        let Some(front) = self.queue.front() else {
            self.unsolicited = true;
            return Ok(false);
        };
        if self.upload.is_some() {
            return Err(malformed("a server packet during a LOCAL INFILE upload"));
        }
        if seq != front.next_seq {
            return Err(malformed(format!(
                "{} response packet with sequence id {seq} where {} was due",
                command_name(front.code),
                front.next_seq
            )));
        }
        Ok(true)
    }

    /// A later packet of a large server payload.
    fn response_packet(&mut self, seq: u8) {
        if let Some(front) = self.queue.front_mut() {
            front.next_seq = seq.wrapping_add(1);
        }
    }

    /// A payload too large to hold, from its first byte.
    fn large_row(&mut self, first: u8, len: usize, seq: u8) -> Result<(), ScanError> {
        let Some(front) = self.queue.front_mut() else {
            return Ok(());
        };
        front.next_seq = seq.wrapping_add(1);
        front
            .response
            .feed_large_row(first, len)
            .map_err(|e| malformed(format!("{} response: {e}", command_name(front.code))))
    }

    /// A whole server payload for the command at the front.
    fn response(&mut self, payload: &[u8], seq: u8) -> Result<(), ScanError> {
        let Some(front) = self.queue.front_mut() else {
            return Ok(());
        };
        front.next_seq = seq.wrapping_add(1);
        let progress = front
            .response
            .feed(payload)
            .map_err(|e| malformed(format!("{} response: {e}", command_name(front.code))))?;
        match progress {
            Progress::Pending => Ok(()),
            Progress::LocalInfile { .. } => {
                if !self.local_infile_allowed {
                    return Err(ScanError::LocalInfileRefused);
                }
                if self.queue.len() > 1 {
                    // The server would read those commands as file data.
                    return Err(malformed(
                        "commands pipelined after one answered with a LOCAL INFILE request",
                    ));
                }
                self.upload = Some(seq.wrapping_add(1));
                Ok(())
            }
            Progress::Complete { ok, err, prepared } => {
                if let Some(done) = self.queue.pop_front() {
                    self.finish(done, ok, err, prepared);
                }
                Ok(())
            }
        }
    }

    fn finish(
        &mut self,
        done: Outstanding,
        ok: Option<OkInfo>,
        err: Option<ErrInfo>,
        prepared: Option<PrepareOk>,
    ) {
        let (sql, protocol, several) = match done.audited {
            Audited::Nothing => (None, Protocol::Simple, false),
            Audited::Query(sql) => (Some(sql), Protocol::Simple, done.several),
            Audited::Execute(id) => {
                let sql = self.resolve(id);
                let several = sql.may_run_several();
                (Some(sql), Protocol::Extended, several)
            }
            Audited::Prepare(sql) => match prepared {
                Some(p) => {
                    if self.prepared.len() < MAX_STATEMENTS
                        || self.prepared.contains_key(&p.statement_id)
                    {
                        self.prepared.insert(p.statement_id, sql);
                    }
                    self.last_prepared = Some(p.statement_id);
                    (None, Protocol::Extended, false)
                }
                // A statement that failed to prepare is never executed:
                // its error is all the audit will see of it.
                None => (err.is_some().then_some(sql), Protocol::Extended, false),
            },
            Audited::Reset => {
                if err.is_none() {
                    self.prepared.clear();
                    self.last_prepared = None;
                }
                (None, Protocol::Simple, false)
            }
        };
        for id in done.closes {
            self.forget(id);
        }
        if let Some(ok) = &ok {
            self.status = Some(ok.status);
        }
        // A failed statement leaves the transaction as it was, unless
        // others ran before it in the same command, or autocommit is off
        // (the failed one may have opened a transaction).
        if err.is_some()
            && (several
                || self
                    .status
                    .is_none_or(|s| s & SERVER_STATUS_AUTOCOMMIT == 0))
        {
            self.status = None;
        }
        if let Some(sql) = sql {
            let result = match err {
                Some(e) => Err(e),
                None if done.response.result_sets() > 0 => Ok(done.response.rows()),
                None => Ok(ok.map_or(0, |o| o.affected_rows)),
            };
            self.report(sql, protocol, done.started, result);
        }
    }

    fn report(
        &mut self,
        sql: Sql,
        protocol: Protocol,
        started: Instant,
        result: Result<u64, ErrInfo>,
    ) {
        self.statement_count += 1;
        let (Some(audit), Some(normalised), Some(statement)) =
            (&self.audit, &mut self.normalised, sql.statement)
        else {
            return;
        };
        let (rows, command_tag, error_code) = match result {
            Ok(rows) => (
                Some(rows),
                sql.keyword.map(|k| normalised.tag_with_rows(&k, rows)),
                None,
            ),
            Err(e) => (
                None,
                None,
                Some(e.sqlstate.unwrap_or_else(|| e.code.to_string())),
            ),
        };
        audit.sink.record(Event::Statement(StatementEvent {
            session: audit.session.clone(),
            statement,
            protocol,
            time: SystemTime::now(),
            duration: started.elapsed(),
            command_tag,
            rows,
            error_code,
        }));
    }
}

/// Administrative command packets refused (ERR 1227) whatever the policy:
/// `COM_SHUTDOWN` (stops the server for every principal), `COM_DEBUG`
/// (dumps server state to its log), `COM_REFRESH` (`FLUSH` and `RESET
/// MASTER|SLAVE` by bit flags; the SQL statements are the route), and
/// the replication stream (`COM_BINLOG_DUMP`, `COM_BINLOG_DUMP_GTID`,
/// `COM_REGISTER_SLAVE`, `COM_TABLE_DUMP`), which carries every
/// principal's changes past the audit.
pub fn admin_command(code: u8) -> bool {
    matches!(
        code,
        COM_SHUTDOWN
            | COM_DEBUG
            | COM_REFRESH
            | COM_BINLOG_DUMP
            | COM_BINLOG_DUMP_GTID
            | COM_REGISTER_SLAVE
            | COM_TABLE_DUMP
    )
}

/// The SQL of a `COM_QUERY` payload (after any query attributes).
fn query_sql(payload: &[u8], caps: u64) -> Option<&[u8]> {
    match parse_command(payload, caps) {
        Ok(Command::Query { sql, .. }) => Some(sql),
        _ => None,
    }
}

/// SQL as text: UTF-8 cut short inside a character loses the partial
/// character; other bytes (a latin1 session) are decoded lossily, which
/// only touches literals and names.
fn decode(sql: &[u8]) -> Cow<'_, str> {
    match utf8_prefix(sql) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(sql),
    }
}

/// Recognises a lone `KILL [HARD | SOFT] [CONNECTION | QUERY] <decimal
/// id>` (comments, executable comments, spacing and case as the server
/// reads them; one trailing `;` allowed). Anything else, `KILL QUERY ID
/// <n>`, `KILL USER <name>`, an expression, an id over `u64`, another
/// statement beside it, is not one.
pub fn parse_kill(sql: &[u8]) -> Option<Kill> {
    let any = Rules {
        allow_password_changes: true,
        allow_dynamic_sql: true,
    };
    match latchkey_sqlguard::check(sql, Dialect::MySql, any, true) {
        Verdict::Kill(k) => Some(k),
        _ => None,
    }
}

/// What a replay wrote each way, and what it intercepted.
#[derive(Debug, Default)]
struct Transcript {
    to_upstream: Vec<u8>,
    to_client: Vec<u8>,
    intercepted: Vec<Vec<u8>>,
    /// The largest either buffer grew to.
    max_buffer: usize,
}

/// Runs bytes through the scanner and tracker as a relay would receive
/// them, `chunk` bytes per read, in an order the protocol allows: the
/// server's bytes while a command awaits its response (and the client
/// has nothing half sent), the client's otherwise. Intercepted commands
/// are dropped, as if the gateway answered them. Says whether the server
/// connection would be reusable afterwards. For the fuzz target and
/// tests.
pub fn replay(
    from_client: &[u8],
    from_server: &[u8],
    chunk: usize,
    tracker: &mut Tracker,
    max_payload: usize,
) -> Result<bool, ScanError> {
    drive(from_client, from_server, chunk, tracker, max_payload, None)
}

fn drive(
    from_client: &[u8],
    from_server: &[u8],
    chunk: usize,
    tracker: &mut Tracker,
    max_payload: usize,
    mut transcript: Option<&mut Transcript>,
) -> Result<bool, ScanError> {
    let mut up = Buffer::new();
    let mut down = Buffer::new();
    let (mut client, mut server) = (from_client, from_server);
    // Where reads stop so the other side can go: the server cannot
    // answer a command before it is sent, and a client sends a file only
    // when asked, after a query naming LOCAL.
    let server_stops = packet_ends(from_server, |_| true);
    let client_stops = packet_ends(from_client, |p| {
        p.first() == Some(&COM_QUERY) && p.windows(5).any(|w| w.eq_ignore_ascii_case(b"LOCAL"))
    });
    let stop = |stops: &[usize], consumed: usize| {
        stops
            .iter()
            .find(|&&s| s > consumed)
            .map_or(usize::MAX, |s| s - consumed)
    };
    loop {
        let client_ready = !client.is_empty() && !up.terminated;
        let server_ready = !server.is_empty();
        let server_turn =
            server_ready && (!client_ready || (tracker.awaits_server() && up.nothing_in_flight()));
        let limit = if !server_turn {
            stop(&client_stops, from_client.len() - client.len())
        } else if client_ready {
            stop(&server_stops, from_server.len() - server.len())
        } else {
            usize::MAX
        };
        let (half, rest, direction) = if server_turn {
            (&mut down, &mut server, Direction::ToClient)
        } else if client_ready {
            (&mut up, &mut client, Direction::ToUpstream)
        } else {
            break;
        };
        half.make_room();
        let n = chunk
            .max(1)
            .min(limit)
            .min(rest.len())
            .min(half.buf.len() - half.end);
        if n == 0 {
            return Err(malformed("replay: no room to read into"));
        }
        half.buf[half.end..half.end + n].copy_from_slice(&rest[..n]);
        if let Some(t) = transcript.as_deref_mut() {
            t.max_buffer = t.max_buffer.max(half.buf.len());
        }
        half.end += n;
        *rest = &rest[n..];
        loop {
            let intercepted = half.scan(direction, tracker, max_payload);
            // As if written on.
            let written = half.writable().len();
            if let Some(t) = transcript.as_deref_mut() {
                match direction {
                    Direction::ToUpstream => t.to_upstream.extend_from_slice(half.writable()),
                    Direction::ToClient => t.to_client.extend_from_slice(half.writable()),
                }
            }
            half.wrote(written);
            match intercepted? {
                Some(i) => {
                    if let Some(t) = transcript.as_deref_mut() {
                        t.intercepted.push(i.payload);
                    }
                }
                None => break,
            }
        }
    }
    Ok(tracker.idle() && down.at_boundary() && up.nothing_in_flight())
}

/// Offsets where the packets of `stream` that `wanted` picks (by the
/// first packet's payload) end.
fn packet_ends(stream: &[u8], wanted: impl Fn(&[u8]) -> bool) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while let Some(Ok(p)) = latchkey_mywire::next_packet(&stream[at..], MAX_PACKET_PAYLOAD) {
        if wanted(&stream[at + p.payload.start..at + p.payload.end]) {
            ends.push(at + p.consumed);
        }
        at += p.consumed;
    }
    ends
}
