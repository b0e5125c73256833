//! Following commands and their responses: which await one, which
//! prepared statements exist, and whether the server is idle between
//! transactions.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use latchkey_audit::{PolicyDecision, Protocol, Statement, StatementCache};
use latchkey_framing::{Audit, Finished, Guarded, Ruling, StatementGate, started};
use latchkey_mywire::{
    CLIENT_MULTI_STATEMENTS, COM_CHANGE_USER, COM_INIT_DB, COM_PROCESS_KILL, COM_QUERY,
    COM_RESET_CONNECTION, COM_SLEEP, COM_STMT_BULK_EXECUTE, COM_STMT_CLOSE, COM_STMT_EXECUTE,
    COM_STMT_PREPARE, ErrInfo, MAX_PACKET_PAYLOAD, OkInfo, PrepareOk, Progress, ResponseTracker,
    SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_IN_TRANS, SERVER_STATUS_NO_BACKSLASH_ESCAPES,
    command_name,
};
use latchkey_sqlguard::{Refusal, Rules, Verdict};
use latchkey_sqlnorm::{Dialect, leading_keyword_for};

use crate::{
    ID_END, INSPECT_PREFIX, Interception, MAX_STATEMENTS, ScanError, admin_command, decode,
    malformed, query_sql,
};

/// A statement: as audited (`None` when statements are not), and the
/// keyword its command tag starts with.
#[derive(Clone)]
pub(crate) struct Sql {
    statement: Option<Arc<Statement>>,
    keyword: Option<Arc<str>>,
    /// Statement policy's decision, when the database has it on.
    policy: Option<Arc<PolicyDecision>>,
    /// A prepared statement: the name the gate keeps it under (see
    /// `StatementGate::rule_parse`), to rule on it again when it runs,
    /// and the firewall revision and policy second it was ruled on in.
    gate_name: Option<Arc<str>>,
    ruled_at: (i64, i64),
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
pub(crate) struct Outstanding {
    code: u8,
    response: ResponseTracker,
    /// The sequence id the server's next packet for it carries.
    next_seq: u8,
    /// When it was sent, when statements are audited.
    started: Option<Instant>,
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
    pub(crate) queue: VecDeque<Outstanding>,
    /// While a LOCAL INFILE upload is in progress: the sequence id of the
    /// client's next packet.
    pub(crate) upload: Option<u8>,
    local_infile_allowed: bool,
    /// What SQL the session may send (see `latchkey-sqlguard`).
    rules: Rules,
    /// Server status of the last OK or EOF; `None` after an error that
    /// may have left a transaction open.
    status: Option<u16>,
    /// The server sent packets when no command awaited them: whatever
    /// state it is in, it is not ours to reuse.
    unsolicited: bool,
    pub(crate) prepared: HashMap<u32, Sql>,
    /// The statement prepared last (what MariaDB's id `0xFFFFFFFF` means).
    pub(crate) last_prepared: Option<u32>,
    audit: Option<Audit>,
    /// Present when statements are audited.
    normalised: Option<StatementCache>,
    /// Statements run: the events the audit logs (or would, when off).
    pub statement_count: u64,
    /// Statement policy, when the database has it on.
    gate: Option<Box<dyn StatementGate>>,
    /// The decision on the SQL checked last, for its audit record.
    ruled: Option<Arc<PolicyDecision>>,
    /// The gate's name for the `COM_STMT_PREPARE` just ruled on, and the
    /// firewall revision and policy second then, for the statement it
    /// prepares.
    preparing: Option<(Arc<str>, (i64, i64))>,
    /// Prepares ruled on so far, numbering the gate's names.
    prepares: u64,
    /// The firewall revision and policy second when a prepared statement
    /// was first left untracked (past `MAX_STATEMENTS`): an unknown
    /// statement run once either moved is judged as unreadable.
    untracked_at: Option<(i64, i64)>,
    /// The server's `NO_BACKSLASH_ESCAPES` as last reported.
    no_backslash_escapes: bool,
}

/// `COM_QUERY` and `COM_STMT_PREPARE` are checked; refused ones are
/// intercepted and answered by the gateway.
impl Guarded for Tracker {
    fn rules_mut(&mut self) -> &mut Rules {
        &mut self.rules
    }
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
            gate: None,
            ruled: None,
            preparing: None,
            prepares: 0,
            untracked_at: None,
            no_backslash_escapes: false,
        }
    }

    /// Decides statements by statement policy.
    pub fn with_gate(mut self, gate: Option<Box<dyn StatementGate>>) -> Self {
        self.gate = gate;
        self
    }

    /// The status flags of the login's OK: the session may start with
    /// `NO_BACKSLASH_ESCAPES` (the server's `sql_mode`).
    pub fn server_status(mut self, status: u16) -> Self {
        self.follow_status(status);
        self
    }

    /// Status flags the server reported: `NO_BACKSLASH_ESCAPES` decides
    /// where a string ends, for statement policy and the audit alike.
    fn follow_status(&mut self, status: u16) {
        self.status = Some(status);
        let no_escapes = status & SERVER_STATUS_NO_BACKSLASH_ESCAPES != 0;
        if no_escapes != self.no_backslash_escapes {
            self.no_backslash_escapes = no_escapes;
            latchkey_framing::backslashes_differ(
                self.gate.as_deref_mut(),
                self.normalised.as_mut(),
                no_escapes,
            );
        }
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

    /// Responses to [`MAX_AWAITED`](crate::MAX_AWAITED) commands or more are awaited, and no
    /// upload is in progress (the server then waits for the client's
    /// file).
    pub fn backlogged(&self) -> bool {
        self.queue.len() >= crate::MAX_AWAITED && self.upload.is_none()
    }

    /// Ready while the audit has room for the session's statements.
    pub fn poll_audit_room(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.audit
            .as_ref()
            .map_or(std::task::Poll::Ready(()), |a| a.poll_room(cx))
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
    pub(crate) fn awaits_server(&self) -> bool {
        !self.queue.is_empty() && self.upload.is_none()
    }

    /// Whether a command (whole, or the first packet of one over 16 MiB
    /// when `last` is false) is one the gateway answers itself.
    pub(crate) fn intercepts(&mut self, payload: &[u8], last: bool) -> Option<Interception> {
        let (sql, prepare) = match payload.first() {
            Some(&COM_CHANGE_USER) => return Some(Interception::ChangeUser),
            Some(&COM_PROCESS_KILL) => return Some(Interception::ProcessKill),
            // As `SHUTDOWN`: refused whatever the policy.
            Some(&code) if admin_command(code) => {
                return Some(Interception::Refused(Refusal::SignalBackend));
            }
            Some(&COM_QUERY) => (query_sql(payload, self.caps)?, false),
            Some(&COM_STMT_PREPARE) => (payload.get(1..)?, true),
            Some(&(COM_STMT_EXECUTE | COM_STMT_BULK_EXECUTE)) => {
                return self.execute_again(payload);
            }
            _ => return None,
        };
        match latchkey_sqlguard::check(sql, Dialect::MySql, self.rules, last) {
            Verdict::Allow if !last && self.caps & CLIENT_MULTI_STATEMENTS != 0 => {
                // More statements may follow in packets not yet seen.
                Some(Interception::Refused(Refusal::Kill))
            }
            Verdict::Allow => {
                // A statement prepared is kept by the gate under a name of
                // its own (NUL first: no SQL name has one), as
                // PostgreSQL's are, to be ruled on again when it runs.
                let name: Option<Arc<str>> = (prepare && last && self.gate.is_some()).then(|| {
                    self.prepares += 1;
                    Arc::from(format!("\u{0}mysql-{}", self.prepares))
                });
                let gate = self.gate.as_mut()?;
                let sql = match std::str::from_utf8(sql) {
                    // Only the first packet of a longer statement is here:
                    // the rest could make it anything.
                    Ok(_) if !last => latchkey_framing::PARTIAL_SQL,
                    Ok(sql) => sql,
                    // The server may read another character set: fail
                    // closed.
                    Err(_) => latchkey_framing::UNREADABLE_SQL,
                };
                let ruling = match &name {
                    Some(name) => gate.rule_parse(name, sql, false),
                    None => gate.rule(sql),
                };
                if let Some(name) = name {
                    let at = (gate.firewall_revision(), gate.policy_second());
                    self.preparing = Some((name, at));
                }
                match ruling {
                    Ruling::Pass(decision) => {
                        self.ruled = Some(decision);
                        None
                    }
                    Ruling::Refuse { message, decision } => {
                        self.ruled = Some(decision);
                        Some(Interception::Denied(message))
                    }
                }
            }
            // A prepared KILL would run with a raw id.
            Verdict::Kill(_) if prepare => Some(Interception::Refused(Refusal::Kill)),
            Verdict::Kill(k) => Some(Interception::Kill(k)),
            Verdict::Refuse(r) => Some(Interception::Refused(r)),
        }
    }

    /// A prepared statement about to run, ruled on again when the SQL
    /// firewall changed since it was prepared (a profile moved to block
    /// must not let a statement prepared in alert mode keep running), or
    /// when statement policy last decided it in an earlier second (a
    /// condition such as `aws:MultiFactorAuthAge` may have lapsed).
    fn execute_again(&mut self, payload: &[u8]) -> Option<Interception> {
        let gate = self.gate.as_mut()?;
        let id = payload
            .get(1..ID_END)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))?;
        let id = match id {
            u32::MAX => self.last_prepared?,
            id => id,
        };
        let ruling = match self.prepared.get(&id) {
            // The gate rules again when the firewall or the second moved
            // since, on the statement as prepared (MySQL runs it against
            // the database current then, whatever `USE` came since).
            Some(p) => gate.rule_bind(p.gate_name.as_deref()?)?,
            // Past what is tracked: judged as unreadable once the firewall
            // or the second moved since the first of them was prepared.
            None if self
                .untracked_at
                .is_some_and(|at| at != (gate.firewall_revision(), gate.policy_second())) =>
            {
                gate.rule(latchkey_framing::UNREADABLE_SQL)
            }
            // Not prepared yet (pipelined after its prepare, ruled on
            // then), or no such statement (the server says so).
            None => return None,
        };
        match ruling {
            Ruling::Pass(_) => None,
            Ruling::Refuse { message, decision } => {
                self.ruled = Some(decision);
                Some(Interception::Denied(message))
            }
        }
    }

    /// The gateway refused a command it intercepted (`payload`, whole)
    /// with `err`: audited as a statement that failed.
    pub fn refused(&mut self, payload: &[u8], err: ErrInfo) {
        let (sql, protocol) = match payload.first() {
            Some(&COM_QUERY) => (query_sql(payload, self.caps), Protocol::Simple),
            Some(&COM_STMT_PREPARE) => (payload.get(1..), Protocol::Extended),
            Some(&(COM_STMT_EXECUTE | COM_STMT_BULK_EXECUTE)) => {
                // The prepared statement, with the decision that refused it.
                let id = payload
                    .get(1..ID_END)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                let mut sql = self.resolve(id);
                sql.policy = self.ruled.take();
                let started = started(self.audit.as_ref());
                self.report(sql, Protocol::Extended, started, Err(err));
                return;
            }
            _ => (None, Protocol::Simple),
        };
        let sql = match sql {
            Some(sql) => {
                let inspected = &sql[..sql.len().min(INSPECT_PREFIX)];
                self.sql(&decode(inspected), inspected.len() == sql.len())
            }
            None => self.unknown(),
        };
        let started = started(self.audit.as_ref());
        self.report(sql, protocol, started, Err(err));
    }

    fn sql(&mut self, text: &str, complete: bool) -> Sql {
        Sql {
            statement: self
                .normalised
                .as_mut()
                .map(|n| n.statement(text, complete)),
            keyword: leading_keyword_for(text, Dialect::MySql).map(Arc::from),
            policy: self.ruled.take(),
            gate_name: None,
            ruled_at: (0, 0),
        }
    }

    fn unknown(&self) -> Sql {
        Sql {
            statement: self.normalised.as_ref().map(StatementCache::unknown),
            keyword: None,
            policy: None,
            gate_name: None,
            ruled_at: (0, 0),
        }
    }

    /// A command sent upstream, from its first `INSPECT_PREFIX` bytes
    /// (`complete` when that is all of it). The server's first packet
    /// for it will carry `next_seq`. Returns whether it awaits a
    /// response.
    pub(crate) fn command(&mut self, payload: &[u8], complete: bool, next_seq: u8) -> bool {
        let code = payload.first().copied().unwrap_or(COM_SLEEP);
        if code == COM_INIT_DB
            && let Some(gate) = self.gate.as_mut()
        {
            gate.database_changed();
        }
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
            COM_STMT_PREPARE => {
                let mut sql = self.sql(&decode(&payload[1..]), complete);
                if let Some((name, at)) = self.preparing.take() {
                    sql.gate_name = Some(name);
                    sql.ruled_at = at;
                }
                Audited::Prepare(sql)
            }
            COM_STMT_EXECUTE | COM_STMT_BULK_EXECUTE => Audited::Execute(statement_id),
            COM_RESET_CONNECTION => Audited::Reset,
            _ => Audited::Nothing,
        };
        let started = started(self.audit.as_ref());
        self.queue.push_back(Outstanding {
            code,
            response,
            next_seq,
            started,
            several,
            audited,
            closes: Vec::new(),
        });
        true
    }

    fn forget(&mut self, id: u32) {
        if let Some(sql) = self.prepared.remove(&id) {
            self.gate_closed(sql.gate_name.as_deref());
        }
        if self.last_prepared == Some(id) {
            self.last_prepared = None;
        }
    }

    /// The gate's name for a statement the server no longer has (closed,
    /// never prepared, reset): released, so that churn does not push out
    /// the statements a client keeps.
    fn gate_closed(&mut self, name: Option<&str>) {
        if let (Some(gate), Some(name)) = (self.gate.as_mut(), name) {
            gate.closed(name);
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
    pub(crate) fn command_packet(&mut self, seq: u8) {
        if let Some(last) = self.queue.back_mut() {
            last.next_seq = seq.wrapping_add(1);
        }
    }

    /// A packet of LOCAL INFILE data; `end` for the empty payload that
    /// ends the file, after which the server answers.
    pub(crate) fn upload_packet(&mut self, seq: u8, end: bool) {
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
    pub(crate) fn response_header(&mut self, seq: u8) -> Result<bool, ScanError> {
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
    pub(crate) fn response_packet(&mut self, seq: u8) {
        if let Some(front) = self.queue.front_mut() {
            front.next_seq = seq.wrapping_add(1);
        }
    }

    /// A payload too large to hold, from its first byte.
    pub(crate) fn large_row(&mut self, first: u8, len: usize, seq: u8) -> Result<(), ScanError> {
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
    pub(crate) fn response(&mut self, payload: &[u8], seq: u8) -> Result<(), ScanError> {
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
                    } else if self.untracked_at.is_none() {
                        self.untracked_at = Some(sql.ruled_at);
                    }
                    self.last_prepared = Some(p.statement_id);
                    (None, Protocol::Extended, false)
                }
                // A statement that failed to prepare is never executed:
                // its error is all the audit will see of it.
                None => {
                    self.gate_closed(sql.gate_name.as_deref());
                    (err.is_some().then_some(sql), Protocol::Extended, false)
                }
            },
            Audited::Reset => {
                if err.is_none() {
                    for (_, sql) in std::mem::take(&mut self.prepared) {
                        self.gate_closed(sql.gate_name.as_deref());
                    }
                    self.last_prepared = None;
                }
                (None, Protocol::Simple, false)
            }
        };
        for id in done.closes {
            self.forget(id);
        }
        if let Some(ok) = &ok {
            self.follow_status(ok.status);
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
        started: Option<Instant>,
        result: Result<u64, ErrInfo>,
    ) {
        self.statement_count += 1;
        let (Some(audit), Some(normalised), Some(statement), Some(started)) =
            (&self.audit, &mut self.normalised, sql.statement, started)
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
        audit.record(Finished {
            statement,
            protocol,
            started,
            command_tag,
            rows,
            error_code,
            policy: sql.policy,
        });
    }
}
