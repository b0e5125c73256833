//! Following statements and their results, and whether the server is
//! idle between transactions.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use latchkey_audit::{PolicyDecision, Protocol, Statement, StatementCache, rows_from_tag};
use latchkey_framing::{Audit, Direction, Finished, Guarded, Ruling, StatementGate, started};
use latchkey_pgwire as wire;
use latchkey_sqlguard::{PinCause, Rules, Verdict as Guard, session_effects};
use latchkey_sqlnorm::Dialect;

use crate::{
    DYNAMIC_SQL_FUNCTIONS, MAX_NAMES, REFUSAL, REFUSAL_DYNAMIC_SQL, REFUSAL_SIGNAL,
    SERVER_FILE_FUNCTIONS, SIGNAL_FUNCTIONS, audited, policy_refusal, query_message,
    refusal_statement, refused_parse, statement_message,
};

/// A statement's decision by statement policy, when the database has it.
type Policy = Option<Arc<PolicyDecision>>;

/// A named statement or portal, as the audit reports its executions.
#[derive(Clone)]
struct Prepared {
    statement: Arc<Statement>,
    policy: Policy,
}

/// What the checks say about a `Query` or `Parse`.
#[derive(Default)]
struct Checked {
    /// Send this instead.
    replace: Option<Vec<u8>>,
    policy: Policy,
    /// Statement policy refused a `Parse`: its replacement raises the
    /// error, and the client's messages up to `Sync` are dropped.
    parse_refused: bool,
}

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
        policy: Policy,
    },
    Execute {
        statement: Option<Arc<Statement>>,
        started: Option<Instant>,
        policy: Policy,
    },
    /// A `Parse` (audited only): answered by `ParseComplete`, or by the
    /// error that is then the statement's only trace.
    Parse {
        statement: Arc<Statement>,
        started: Option<Instant>,
    },
    /// `injected`: the group holds the gateway's own `Parse` and `Bind`
    /// (standing for a refused `Parse`) after this many of the client's.
    Sync { injected: Option<(u32, u32)> },
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
    statements: HashMap<String, Prepared>,
    portals: HashMap<String, Prepared>,
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
    /// Statement policy, when the database has it on.
    gate: Option<Box<dyn StatementGate>>,
    /// A `Parse` was refused by statement policy: the client's messages
    /// are dropped up to its `Sync`.
    skipping_to_sync: bool,
    /// The client's `Parse` and `Bind` messages sent on since the last
    /// `Sync`, and where the gateway's own went in among them.
    group: (u32, u32),
    group_injected: Option<(u32, u32)>,
    /// Groups holding the gateway's own messages not yet answered, and the
    /// `ParseComplete`/`BindComplete` seen in the current group.
    injections: u32,
    seen: (u32, u32),
    /// Transaction pooling: what the session leaves on its server
    /// connection.
    pooling: Option<Pooling>,
}

/// What a transaction-pooled session leaves on its server connection
/// beyond its transactions (see `latchkey_sqlguard::session_effects`).
pub struct Pooling {
    /// The settings the gateway carries between server connections
    /// (lower case).
    carried: &'static [&'static str],
    /// Refuse session state (`0A000`) instead of pinning.
    refuse: bool,
    /// Why the session keeps its server connection for good.
    pub pinned: Option<PinCause>,
    /// A carried setting may have changed since the connection was lent:
    /// read them back before giving it back.
    pub carried_changed: bool,
    /// Statements refused as session state the pool cannot carry.
    pub refused: u64,
}

impl Pooling {
    /// `carried`: the settings carried between connections, lower case;
    /// `refuse`: refuse session state rather than pin.
    pub fn new(carried: &'static [&'static str], refuse: bool) -> Self {
        Self {
            carried,
            refuse,
            pinned: None,
            carried_changed: false,
            refused: 0,
        }
    }
}

/// What a statement refused as session state becomes: the server raises
/// `0A000 feature_not_supported` with the reason.
fn session_state_refusal(cause: PinCause) -> String {
    format!(
        "DO $latchkey$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = '{}'; END$latchkey$",
        cause.refusal()
    )
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
            gate: None,
            skipping_to_sync: false,
            group: (0, 0),
            group_injected: None,
            injections: 0,
            seen: (0, 0),
            pooling: None,
        }
    }

    /// Follows what the session leaves on its server connection, for
    /// transaction pooling.
    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = Some(pooling);
        self
    }

    pub fn pooling(&self) -> Option<&Pooling> {
        self.pooling.as_ref()
    }

    pub fn pooling_mut(&mut self) -> Option<&mut Pooling> {
        self.pooling.as_mut()
    }

    /// Transaction pooling: what a `Query` or `Parse` (whole SQL; `named`
    /// for a named prepared statement) leaves in the session. Returns the
    /// statement to send instead when session state is refused.
    fn follow_session_state(&mut self, tag: u8, body: &[u8], named: bool) -> Option<Vec<u8>> {
        let pooling = self.pooling.as_mut()?;
        let sql = match tag {
            b'P' => wire::parse_parse(body).map(|(_, sql)| sql).ok(),
            _ => wire::leading_str(body).ok(),
        };
        let mut effects = match sql {
            Some(sql) => session_effects(sql, |name| pooling.carried.contains(&name)),
            // Not readable as UTF-8: the server may read it otherwise.
            None => latchkey_sqlguard::SessionEffects {
                pins: Some(PinCause::Setting),
                carried_changed: false,
            },
        };
        if named && effects.pins.is_none() {
            // Named statements are not carried between connections yet.
            effects.pins = Some(PinCause::NamedStatement);
        }
        pooling.carried_changed |= effects.carried_changed;
        let cause = effects.pins?;
        if pooling.refuse && cause != PinCause::NamedStatement {
            pooling.refused += 1;
            let refusal = session_state_refusal(cause);
            return Some(match tag {
                b'P' => refused_parse(&refusal),
                _ => query_message(&refusal),
            });
        }
        pooling.pinned.get_or_insert(cause);
        None
    }

    /// Decides statements by statement policy.
    pub fn with_gate(mut self, gate: Option<Box<dyn StatementGate>>) -> Self {
        self.gate = gate;
        self
    }

    /// Whether a message's SQL is checked (and so must be read whole):
    /// always, since `pg_terminate_backend` is refused whatever the
    /// policy.
    pub(crate) fn checks(&self, direction: Direction, tag: u8) -> bool {
        direction == Direction::ToUpstream
            && (matches!(tag, b'Q' | b'P' | b'F')
                || (tag == b'B' && self.gate.is_some())
                || self.skipping_to_sync)
    }

    /// What to send instead of a `Query` or `Parse` (whole body) whose
    /// SQL the session may not run, and statement policy's decision.
    /// `first_in_group`: nothing was sent since the last `Sync`.
    fn check(&mut self, tag: u8, body: &[u8], complete: bool, first_in_group: bool) -> Checked {
        if !complete || !self.checks(Direction::ToUpstream, tag) {
            return Checked::default();
        }
        let (name, sql) = match tag {
            b'P' => {
                let Some(end) = body.iter().position(|&c| c == 0) else {
                    return Checked::default();
                };
                (Some(&body[..end]), &body[end + 1..])
            }
            _ => (None, body),
        };
        let sql = &sql[..sql.iter().position(|&c| c == 0).unwrap_or(sql.len())];
        let refusal = match latchkey_sqlguard::check(sql, Dialect::Postgres, self.rules, true) {
            Guard::Allow | Guard::Kill(_) => None,
            Guard::Refuse(r) => Some(refusal_statement(r)),
        };
        if let Some(refusal) = refusal {
            self.refused += 1;
            return Checked {
                replace: Some(statement_message(tag, name, refusal)),
                ..Checked::default()
            };
        }
        let Some(gate) = self.gate.as_mut() else {
            return Checked::default();
        };
        // Not UTF-8: the server would refuse it too (client encodings are
        // converted to UTF-8 by the gateway's clients); fail closed.
        let sql = std::str::from_utf8(sql).unwrap_or(latchkey_framing::UNREADABLE_SQL);
        let ruling = match name {
            Some(name) => gate.rule_parse(&name_key(name), sql, first_in_group),
            None => gate.rule(sql),
        };
        match ruling {
            Ruling::Pass(policy) => Checked {
                policy: Some(policy),
                ..Checked::default()
            },
            Ruling::Refuse { message, decision } => {
                self.refused += 1;
                let refusal = policy_refusal(&message);
                match name {
                    None => Checked {
                        replace: Some(query_message(&refusal)),
                        policy: Some(decision),
                        parse_refused: false,
                    },
                    Some(_) => Checked {
                        replace: Some(refused_parse(&refusal)),
                        policy: Some(decision),
                        parse_refused: true,
                    },
                }
            }
        }
    }

    /// A `Bind` of a statement prepared before the session's scope changed
    /// (PostgreSQL analyses it again, with the new `search_path`), decided
    /// again: when refused, it is replaced as a refused `Parse` is, and the
    /// client's messages up to `Sync` are dropped.
    fn check_bind(&mut self, body: &[u8]) -> Option<Verdict> {
        let gate = self.gate.as_mut()?;
        // Portal, then statement: C strings (a malformed Bind is the
        // server's to refuse).
        let mut names = body.splitn(3, |&c| c == 0);
        let (Some(_), Some(name), Some(_)) = (names.next(), names.next(), names.next()) else {
            return None;
        };
        let ruling = gate.rule_bind(&name_key(name))?;
        let Ruling::Refuse { message, decision } = ruling else {
            return None;
        };
        self.refused += 1;
        self.group_injected = Some(self.group);
        self.skipping_to_sync = true;
        let statement = self.normalised.as_ref().map(|n| {
            wire::parse_bind(body)
                .ok()
                .and_then(|(_, name)| self.statements.get(name))
                .map_or_else(|| n.unknown(), |p| p.statement.clone())
        });
        self.pending.push_back(Pending::Execute {
            statement,
            started: started(self.audit.as_ref()),
            policy: Some(decision),
        });
        Some(Verdict::Replace(refused_parse(&policy_refusal(&message))))
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
                    || self.skipping_to_sync
            }
            Direction::ToClient => {
                matches!(tag, b'C' | b'E' | b'Z' | b'S' | b'I' | b's')
                    || (tag == b'1' && self.audit.is_some())
                    || (matches!(tag, b'1' | b'2') && self.gate.is_some())
            }
        }
    }

    /// A message passed through without being looked at.
    pub(crate) fn passed(&mut self, direction: Direction, tag: u8) {
        match (direction, tag) {
            // A function call is answered by ReadyForQuery.
            (Direction::ToUpstream, b'F') => {
                self.outstanding += 1;
                self.pending.push_back(Pending::Sync { injected: None });
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
        // After a refused Parse the server would skip to Sync; so does the
        // gateway, so that nothing bound to the refused statement reaches
        // the server.
        if direction == Direction::ToUpstream
            && self.skipping_to_sync
            && !matches!(tag, b'S' | b'X')
        {
            return Verdict::Replace(Vec::new());
        }
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
                // A function named by OID may be a session advisory lock or
                // a large object's descriptor: it pins.
                if let Some(pooling) = self.pooling.as_mut() {
                    pooling.pinned.get_or_insert(PinCause::Setting);
                }
                // Statement policy cannot name a function by its OID: the
                // call is `sql:Unclassified`.
                if let Some(gate) = self.gate.as_mut()
                    && let Ruling::Refuse { message, .. } =
                        gate.rule(latchkey_framing::FUNCTION_CALL_SQL)
                {
                    self.refused += 1;
                    return Verdict::Replace(query_message(&policy_refusal(&message)));
                }
                return Verdict::Forward;
            }
            (Direction::ToUpstream, b'Q') => {
                self.outstanding += 1;
                let Checked {
                    replace, policy, ..
                } = self.check(tag, body, complete, false);
                let replace = match replace {
                    Some(r) => Some(r),
                    None if complete => self.follow_session_state(tag, body, false),
                    None => None,
                };
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
                    policy,
                });
                if let Some(message) = replace {
                    return Verdict::Replace(message);
                }
            }
            (Direction::ToUpstream, b'S') => {
                self.outstanding += 1;
                self.unsynced = false;
                self.skipping_to_sync = false;
                self.group = (0, 0);
                let injected = self.group_injected.take();
                self.injections += u32::from(injected.is_some());
                self.pending.push_back(Pending::Sync { injected });
            }
            (Direction::ToUpstream, b'P') => {
                let first_in_group = !self.unsynced;
                self.unsynced = true;
                let Checked {
                    replace,
                    policy,
                    mut parse_refused,
                } = self.check(tag, body, complete, first_in_group);
                let replace = match replace {
                    Some(r) => Some(r),
                    None if complete => {
                        let named = body.first().is_some_and(|&c| c != 0);
                        let refused = self.follow_session_state(tag, body, named);
                        parse_refused = refused.is_some();
                        refused
                    }
                    None => None,
                };
                let (body, complete) = audited(body, complete);
                let parsed = wire::parse_parse(body).ok();
                if parse_refused {
                    // The gateway's Parse and Bind stand for it; its
                    // Execute raises the error, audited as this statement.
                    self.group_injected = Some(self.group);
                    self.skipping_to_sync = true;
                    let statement = self.normalised.as_mut().map(|n| match parsed {
                        Some((_, sql)) => n.statement(sql, complete),
                        None => n.unknown(),
                    });
                    self.pending.push_back(Pending::Execute {
                        statement,
                        started: started(self.audit.as_ref()),
                        policy,
                    });
                    return match replace {
                        Some(message) => Verdict::Replace(message),
                        None => Verdict::Forward,
                    };
                }
                self.group.0 += 1;
                if let Some(normalised) = self.normalised.as_mut()
                    && let Some((name, sql)) = parsed
                {
                    let statement = normalised.statement(sql, complete);
                    self.pending.push_back(Pending::Parse {
                        statement: statement.clone(),
                        started: started(self.audit.as_ref()),
                    });
                    if self.statements.len() < MAX_NAMES || self.statements.contains_key(name) {
                        self.statements
                            .insert(name.to_owned(), Prepared { statement, policy });
                    }
                }
                if let Some(message) = replace {
                    return Verdict::Replace(message);
                }
            }
            (Direction::ToUpstream, b'B') => {
                self.unsynced = true;
                if let Some(refused) = self.check_bind(body) {
                    return refused;
                }
                self.group.1 += 1;
                if let Some(normalised) = &self.normalised
                    && let Ok((portal, name)) = wire::parse_bind(body)
                {
                    let prepared = self
                        .statements
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| Prepared {
                            statement: normalised.unknown(),
                            policy: None,
                        });
                    if self.portals.len() < MAX_NAMES || self.portals.contains_key(portal) {
                        self.portals.insert(portal.to_owned(), prepared);
                    }
                }
            }
            (Direction::ToUpstream, b'E') => {
                self.unsynced = true;
                let prepared = self.normalised.as_ref().map(|normalised| {
                    wire::leading_str(body)
                        .ok()
                        .and_then(|portal| self.portals.get(portal).cloned())
                        .unwrap_or_else(|| Prepared {
                            statement: normalised.unknown(),
                            policy: None,
                        })
                });
                let (statement, policy) = match prepared {
                    Some(p) => (Some(p.statement), p.policy),
                    None => (None, None),
                };
                self.pending.push_back(Pending::Execute {
                    statement,
                    started: started(self.audit.as_ref()),
                    policy,
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
                        if let Some(Pending::Execute {
                            statement,
                            started,
                            policy,
                        }) = self.pending.pop_front()
                        {
                            self.report(
                                statement,
                                Protocol::Extended,
                                started,
                                tag_text,
                                None,
                                policy,
                            );
                        }
                    }
                    _ => {}
                }
            }
            (Direction::ToClient, b'1' | b'2') => {
                // The oldest group not yet answered: a synced one, or (the
                // server answers before Sync after a Flush) the current.
                let injected = match (self.injections, self.group_injected) {
                    (0, None) => None,
                    _ => self
                        .pending
                        .iter()
                        .find_map(|p| match p {
                            Pending::Sync { injected } => Some(*injected),
                            _ => None,
                        })
                        .unwrap_or(self.group_injected),
                };
                let (seen, at) = match tag {
                    b'1' => (&mut self.seen.0, injected.map(|i| i.0)),
                    _ => (&mut self.seen.1, injected.map(|i| i.1)),
                };
                *seen += 1;
                // The answer to the gateway's own Parse or Bind, which the
                // client never sent.
                if at.is_some_and(|at| *seen == at + 1) {
                    return Verdict::Replace(Vec::new());
                }
                if tag == b'1' && matches!(self.pending.front(), Some(Pending::Parse { .. })) {
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
                        if let Some(Pending::Execute {
                            statement,
                            started,
                            policy,
                        }) = self.pending.pop_front()
                        {
                            self.report(statement, Protocol::Extended, started, None, code, policy);
                        }
                    }
                    // A statement that failed to parse is never executed:
                    // its error is all the audit will see of it.
                    Some(Pending::Parse { .. }) => {
                        if let Some(Pending::Parse { statement, started }) =
                            self.pending.pop_front()
                        {
                            let policy = self
                                .statements
                                .values()
                                .find(|p| Arc::ptr_eq(&p.statement, &statement))
                                .and_then(|p| p.policy.clone());
                            self.report(
                                Some(statement),
                                Protocol::Extended,
                                started,
                                None,
                                code,
                                policy,
                            );
                        }
                    }
                    Some(Pending::Sync { .. }) | None => return Verdict::Forward,
                }
                // The server skips everything up to Sync.
                while !matches!(self.pending.front(), Some(Pending::Sync { .. }) | None) {
                    self.pending.pop_front();
                }
            }
            (Direction::ToClient, b'Z') => {
                self.outstanding = self.outstanding.saturating_sub(1);
                self.transaction = body.first().copied().unwrap_or(b'E');
                self.seen = (0, 0);
                while let Some(p) = self.pending.pop_front() {
                    match p {
                        Pending::Query {
                            statement,
                            started,
                            tag,
                            error,
                            policy,
                        } => {
                            self.report(statement, Protocol::Simple, started, tag, error, policy);
                            break;
                        }
                        Pending::Sync { injected } => {
                            self.injections -= u32::from(injected.is_some());
                            break;
                        }
                        // Skipped after an error.
                        Pending::Execute { .. } | Pending::Parse { .. } => {}
                    }
                }
            }
            (Direction::ToClient, b'S') => {
                if let Ok((name, value)) = wire::parse_parameter_status(body) {
                    if let Some(gate) = self.gate.as_mut() {
                        match name {
                            "standard_conforming_strings" => gate.backslashes_differ(value != "on"),
                            "client_encoding" => {
                                gate.encoding_differs(!crate::reads_as_utf8(value))
                            }
                            _ => {}
                        }
                    }
                    match self.parameter_changes.iter_mut().find(|(n, _)| n == name) {
                        Some(slot) => value.clone_into(&mut slot.1),
                        None => self
                            .parameter_changes
                            .push((name.to_owned(), value.to_owned())),
                    }
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
        policy: Policy,
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
                policy,
            });
        }
    }
}

/// A statement name as the gate keeps it: as sent when it is UTF-8,
/// otherwise its bytes in hex after a NUL (which no name holds), so that
/// names in other client encodings stay distinct.
fn name_key(name: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(name) {
        Ok(name) => name.into(),
        Err(_) => {
            let mut key = String::from("\0");
            for b in name {
                key.push_str(&format!("{b:02x}"));
            }
            key.into()
        }
    }
}
