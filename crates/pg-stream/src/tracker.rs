//! Following statements and their results, and whether the server is
//! idle between transactions.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use latchkey_audit::{Protocol, Statement, StatementCache, rows_from_tag};
use latchkey_framing::{Audit, Direction, Finished, Guarded, started};
use latchkey_pgwire as wire;
use latchkey_sqlguard::{Rules, Verdict as Guard};
use latchkey_sqlnorm::Dialect;

use crate::{
    DYNAMIC_SQL_FUNCTIONS, MAX_NAMES, REFUSAL, REFUSAL_DYNAMIC_SQL, REFUSAL_SIGNAL,
    SERVER_FILE_FUNCTIONS, SIGNAL_FUNCTIONS, audited, query_message, refusal_statement,
};

/// What to do with a message the tracker looked at.
#[derive(PartialEq, Eq)]
pub(crate) enum Verdict {
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
        started: Option<Instant>,
        tag: Option<Arc<str>>,
        error: Option<String>,
    },
    Execute {
        statement: Option<Arc<Statement>>,
        started: Option<Instant>,
    },
    /// A `Parse` (audited only): answered by `ParseComplete`, or by the
    /// error that is then the statement's only trace.
    Parse {
        statement: Arc<Statement>,
        started: Option<Instant>,
    },
    Sync,
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

/// `Query` and `Parse` are checked; refused ones are replaced by a
/// statement that makes the server raise the error.
impl Guarded for Tracker {
    fn rules_mut(&mut self) -> &mut Rules {
        &mut self.rules
    }
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

    /// Whether a message's SQL is checked (and so must be read whole):
    /// always, since `pg_terminate_backend` is refused whatever the
    /// policy.
    pub(crate) fn checks(&self, direction: Direction, tag: u8) -> bool {
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

    pub(crate) fn wants(&self, direction: Direction, tag: u8) -> bool {
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
    pub(crate) fn passed(&mut self, direction: Direction, tag: u8) {
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

    pub(crate) fn message(
        &mut self,
        direction: Direction,
        tag: u8,
        body: &[u8],
        complete: bool,
    ) -> Verdict {
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
                    started: started(self.audit.as_ref()),
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
                        started: started(self.audit.as_ref()),
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
                    started: started(self.audit.as_ref()),
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
        started: Option<Instant>,
        command_tag: Option<Arc<str>>,
        error_code: Option<String>,
    ) {
        self.statement_count += 1;
        if let (Some(audit), Some(statement), Some(started)) = (&self.audit, statement, started) {
            audit.record(Finished {
                statement,
                protocol,
                started,
                rows: command_tag.as_deref().and_then(rows_from_tag),
                command_tag,
                error_code,
            });
        }
    }
}
