//! Following statements and their results, and whether the server is
//! idle between transactions.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use latchkey_audit::{PolicyDecision, Protocol, Statement, StatementCache, rows_from_tag};
use latchkey_framing::{Audit, Direction, Finished, Guarded, Ruling, StatementGate, started};
use latchkey_pgwire as wire;
use latchkey_sqlguard::{
    Deallocation, PinCause, Rules, StatementNames, Verdict as Guard, session_effects,
    statement_names,
};
use latchkey_sqlnorm::Dialect;

use crate::prepared::{
    GATEWAY_PREFIX, Interned, NO_STATEMENT, NamedStatements, PARSE_COMPLETE, ServerStatements,
    StatementBook, close_nothing, close_statement, id_of, parse_message, renamed, server_name,
};

/// A client's `Bind` or `Describe` (`before` the name and `after` it) of
/// a statement it never prepared, sent to one that exists nowhere: a
/// `Close` of that name goes first (its answer dropped), since a function
/// could have prepared one under it with SQL.
fn unknown_statement(
    tag: u8,
    before: &[u8],
    after: &[u8],
    completions: &mut VecDeque<Completion>,
) -> Vec<u8> {
    completions.push_back(Completion::Drop);
    let mut out = close_statement(NO_STATEMENT);
    out.extend_from_slice(&renamed(tag, before, NO_STATEMENT, after));
    out
}

/// Groups in flight whose unknown statement name is kept to retell, and
/// how much of each name: a client that pipelines many cannot make the
/// gateway hold much for it.
const KEPT_UNKNOWN_NAMES: usize = 16;
const KEPT_NAME_BYTES: usize = 256;

use crate::{
    DYNAMIC_SQL_FUNCTIONS, MAX_NAMES, REFUSAL, REFUSAL_DYNAMIC_SQL, REFUSAL_SIGNAL,
    SERVER_FILE_FUNCTIONS, SIGNAL_FUNCTIONS, audited, policy_refusal, query_message,
    refusal_statement, refused_parse, server_key, statement_message,
};

/// A statement's decision by statement policy, when the database has it.
type Policy = Option<Arc<PolicyDecision>>;

/// A named statement or portal, as the audit reports its executions.
#[derive(Clone)]
struct Prepared {
    statement: Arc<Statement>,
    policy: Policy,
    /// Which `Parse` or `Bind` named it (see [`NameEdit`]).
    edit: u64,
    /// A portal: the edit of the statement it was bound from (0 for
    /// none), relabelled should that edit be undone.
    bound_from: u64,
    /// SQL `PREPARE`, `DEALLOCATE` or `DISCARD ALL`: the names each
    /// execution makes or drops.
    touches: Option<Arc<StatementNames>>,
}

/// What a message sent on does to the names the audit reports
/// statements by. Done at once (a `Bind` sent right behind its `Parse`
/// names what it prepared), undone if the server refuses or skips the
/// message, unless a later message has named the name since; a `Close`
/// takes effect when the server confirms it. Else the audit would report
/// the statement that runs under a name as SQL the server never took.
enum NameEdit {
    /// Named `name`, which stood for `before` until then.
    Named {
        portal: bool,
        name: Box<str>,
        edit: u64,
        before: Option<Prepared>,
    },
    /// Closes `name`, as edit `edit` named it.
    Closing {
        portal: bool,
        name: Box<str>,
        edit: u64,
    },
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

/// What transaction pooling sends instead of a `Query` or `Parse`.
enum SessionVerdict {
    /// A statement raising the refusal (for a `Parse`, with the `Bind`
    /// and `Execute` that run it: the client's messages up to `Sync` are
    /// then dropped).
    Refused(Vec<u8>),
    /// The same kind of message, doing what the client asked on the
    /// gateway's terms.
    Rewritten(Vec<u8>),
}

impl SessionVerdict {
    fn message(self) -> Vec<u8> {
        match self {
            SessionVerdict::Refused(m) | SessionVerdict::Rewritten(m) => m,
        }
    }
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
        /// A `Flush` or `Sync` followed it: the client waits for its
        /// answer.
        asked: bool,
        /// The edit of the statement its portal was bound from (see
        /// [`Prepared::bound_from`]).
        bound_from: u64,
    },
    /// A `Parse`: answered by `ParseComplete`, or by the error that is
    /// then the statement's only trace (`None` when not audited).
    Parse {
        statement: Option<Arc<Statement>>,
        started: Option<Instant>,
        edit: Option<NameEdit>,
        /// Of the unnamed statement.
        unnamed: bool,
    },
    /// A `Bind`, `Close` or `Describe`, answered by a message of its own.
    /// Every message that gets an answer is here, in order, so that an
    /// error is known to be a simple query's own (answered with
    /// `ReadyForQuery`) or an extended-protocol message's (the server then
    /// skips everything up to `Sync`, queries included).
    Answer(AnswerTo, Option<NameEdit>),
    Sync,
}

/// Which message a [`Pending::Answer`] waits on the answer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AnswerTo {
    /// `BindComplete`.
    Bind,
    /// `CloseComplete`.
    Close,
    /// `RowDescription` or `NoData` (after `ParameterDescription` for a
    /// statement).
    Describe,
}

/// What becomes of the server's answer to one `Parse`, `Bind` or `Close`
/// sent on (`ParseComplete`, `BindComplete`, `CloseComplete`), in the
/// order they were sent; `Sync` ends each group, so that an error can
/// drop what the server will skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Completion {
    /// The client's own message: its answer goes on.
    Pass,
    /// The gateway's own message: its answer is dropped.
    Drop,
    /// A client's `Parse` of a statement the server already had, sent as
    /// a `Close` of nothing: its `CloseComplete` goes on as the
    /// `ParseComplete` the client waits for.
    AsParseComplete,
    /// A `Parse` preparing the server statement `id` (the client's, or the
    /// gateway's own when `dropped`): if its group fails first, the server
    /// does not have it.
    Prepare {
        id: u64,
        dropped: bool,
    },
    Sync,
}

/// Large-object functions (`lo_create`, `lo_open`, `lo_close`, `loread`,
/// `lowrite`, `lo_lseek`, `lo_creat`, `lo_tell`, `lo_unlink`,
/// `lo_truncate`, `lo_lseek64`, `lo_tell64`, `lo_truncate64`), by their
/// built-in OIDs: what JDBC's large-object API calls by `FunctionCall`.
/// Their descriptors last only until the transaction ends, so they leave
/// nothing a transaction pool cannot carry.
const LARGE_OBJECT_FUNCTIONS: [u32; 13] = [
    715, 952, 953, 954, 955, 956, 957, 958, 964, 1004, 3170, 3171, 3172,
];

/// Follows the conversation: which statements are in flight, and whether
/// the server is idle between transactions.
pub struct Tracker {
    /// `Query`, `Sync` and `FunctionCall` messages not yet answered by
    /// `ReadyForQuery`.
    outstanding: u32,
    /// Extended-protocol messages sent since the last `Sync`.
    unsynced: bool,
    /// The server waits for `COPY FROM STDIN` data (after
    /// `CopyInResponse` or `CopyBothResponse`).
    copy_in: bool,
    /// The client sent `CopyDone` or `CopyFail` before `CopyInResponse`.
    copy_ended_early: bool,
    /// The client sent a `Sync` during COPY: the server answers it or not
    /// depending on whether the COPY had failed by the time it arrived,
    /// which the gateway cannot know. The server connection is never
    /// idle again (held by this client, closed after it).
    out_of_step: bool,
    /// An extended-protocol error with no `Sync` sent since: the server
    /// discards everything until the client's `Sync`, and answers nothing.
    discarding: bool,
    /// The transaction status in the last `ReadyForQuery`.
    transaction: u8,
    pending: VecDeque<Pending>,
    statements: HashMap<String, Prepared>,
    /// Edits of the audit's names so far (see [`NameEdit`]).
    edits: u64,
    /// The last edit that bound a portal.
    last_bound: u64,
    /// The client's encoding is not UTF-8 (or SQL_ASCII), and the
    /// server's, which names are converted between (see
    /// [`Tracker::uncertain_name`]).
    client_not_utf8: bool,
    server_not_utf8: bool,
    /// An `Execute` was sent since the last `Flush`.
    unasked: bool,
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
    /// The answers owed for `Parse`, `Bind` and `Close` sent on, when the
    /// gateway adds or rewrites any (statement policy, transaction
    /// pooling).
    completions: VecDeque<Completion>,
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
    /// Refuse session state (`0A000`) instead of pinning (the
    /// database's setting, or the pool's share of pins taken).
    pub refuse: bool,
    /// Why the session keeps its server connection for good.
    pub pinned: Option<PinCause>,
    /// A carried setting may have changed since the connection was lent:
    /// read them back before giving it back.
    pub carried_changed: bool,
    /// Shared statement ids (see [`crate::prepared`]).
    book: Arc<StatementBook>,
    /// The client's named statements.
    named: NamedStatements,
    /// What the lent server connection has prepared: swapped in when a
    /// connection is lent, out when it goes back.
    pub server: ServerStatements,
    /// Since the connection was lent, a group began with a well-formed
    /// `Parse` of the unnamed statement: the server dropped the previous
    /// client's then, so what it holds as the unnamed statement is this
    /// client's, or nothing. Before that it may be a previous client's: a
    /// `Parse` the server skipped, or refused before dropping it, leaves
    /// that in place.
    unnamed_here: bool,
    /// The client parsed the unnamed statement earlier in the group it is
    /// sending: a `Bind` of it in the same group is skipped along with that
    /// `Parse` if the server skips it.
    unnamed_in_group: bool,
    /// The client prepared statements of its own with SQL `PREPARE` (it
    /// is pinned); before that, SQL `EXECUTE` could only run another
    /// client's.
    sql_prepared: bool,
    /// Names the client used for statements it never prepared (sent on as
    /// [`NO_STATEMENT`]), each with the number of its `Sync` group: the
    /// server's "does not exist" is told in the client's own name.
    unknown_names: VecDeque<(u32, Box<[u8]>)>,
    /// `Sync`s the server will answer, and those it has (counting up,
    /// wrapping): groups are numbered by them, not by `ReadyForQuery`,
    /// which queries get too, and a query the server skips never does.
    syncs_sent: u32,
    syncs_answered: u32,
}

impl Pooling {
    /// `carried`: the settings carried between connections, lower case;
    /// `refuse`: refuse session state rather than pin.
    pub fn new(carried: &'static [&'static str], refuse: bool, book: Arc<StatementBook>) -> Self {
        Self {
            carried,
            refuse,
            pinned: None,
            carried_changed: false,
            book,
            named: NamedStatements::default(),
            server: ServerStatements::default(),
            unnamed_here: false,
            unnamed_in_group: false,
            sql_prepared: false,
            unknown_names: VecDeque::new(),
            syncs_sent: 0,
            syncs_answered: 0,
        }
    }

    /// `name` (as the server keys it) may be a statement the client
    /// prepared under its own name on its pinned connection: past the
    /// bound of statements the gateway carries, or by SQL `PREPARE`.
    /// Nothing else on the connection bears a name outside the gateway's:
    /// a pinned session's connection is reset before it goes back, and
    /// every other client's names are the gateway's.
    fn own_on_server(&self, name: &[u8]) -> bool {
        self.pinned.is_some() && !self.named.contains_key(name) && !name.starts_with(GATEWAY_PREFIX)
    }

    /// A `Parse` the gateway cannot carry (past the bound) goes to the
    /// server under the client's own name, which must not be one the
    /// gateway's names could take.
    fn reserved(&self, name: &[u8]) -> bool {
        let name = server_key(name);
        name.starts_with(GATEWAY_PREFIX) && self.named.full() && !self.named.contains_key(name)
    }

    /// A `Bind` or `Describe` names `name`, a statement the client never
    /// prepared, in the group the next `Sync` ends.
    fn unknown(&mut self, name: &[u8]) {
        // One per group is ever answered (the server skips the rest of a
        // group after an error), so a client cannot grow this past the
        // groups it has in flight.
        let group = self.syncs_sent;
        if self.unknown_names.back().is_some_and(|(g, _)| *g == group)
            || self.unknown_names.len() >= KEPT_UNKNOWN_NAMES
        {
            // Past the bound the server's own words go through.
            return;
        }
        let mut cut = name.len().min(KEPT_NAME_BYTES);
        while cut < name.len() && cut > 0 && name[cut] & 0xC0 == 0x80 {
            cut -= 1;
        }
        self.unknown_names.push_back((group, name[..cut].into()));
    }

    /// A `Sync` the server will answer was sent.
    fn sync_sent(&mut self) {
        self.syncs_sent = self.syncs_sent.wrapping_add(1);
        self.unnamed_in_group = false;
    }

    /// A `Sync` was answered (or will never be): names of its group are
    /// forgotten.
    fn sync_answered(&mut self) {
        self.syncs_answered = self.syncs_answered.wrapping_add(1);
        while let Some((group, _)) = self.unknown_names.front()
            && (group.wrapping_sub(self.syncs_answered) as i32) < 0
        {
            self.unknown_names.pop_front();
        }
    }

    /// The server's `26000` for a statement under a name the gateway
    /// gave, retold with the name the client used, as PostgreSQL would
    /// have told it: [`NO_STATEMENT`] for a name the client never
    /// prepared, or one of its own statements' server names (a function
    /// ran `DEALLOCATE ALL`).
    fn retell_unknown(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        let message = wire::error_field(body, b'M')?;
        let at = message.windows(5).position(|w| w == b"\"_lk_")?;
        let len = message[at + 1..].iter().position(|&c| c == b'"')?;
        let server = &message[at + 1..at + 1 + len];
        let name: Box<[u8]> = if server == NO_STATEMENT {
            match self.unknown_names.front() {
                Some((g, _)) if *g == self.syncs_answered => self.unknown_names.pop_front()?.1,
                _ => return None,
            }
        } else {
            // Only when one of the client's names stands for it: names
            // with the same text share a server statement, and which one
            // the failing message named is not kept.
            let id = id_of(server)?;
            let mut names = self.named.iter().filter(|(_, st)| st.id == id);
            let (name, _) = names.next()?;
            if names.next().is_some() {
                return None;
            }
            name.clone()
        };
        let after = &message[at + len + 2..];
        let mut told = Vec::with_capacity(message.len() + name.len());
        if name.is_empty() && message[..at] == *b"prepared statement " {
            // PostgreSQL's own words for the unnamed statement.
            told.extend_from_slice(b"unnamed prepared statement");
            told.extend_from_slice(after);
        } else {
            told.extend_from_slice(&message[..at]);
            told.push(b'"');
            told.extend_from_slice(&name);
            told.push(b'"');
            told.extend_from_slice(after);
        }
        let mut out = vec![b'E', 0, 0, 0, 0];
        for field in body.split(|&b| b == 0).take_while(|f| !f.is_empty()) {
            if field[0] == b'M' {
                out.push(b'M');
                out.extend_from_slice(&told);
            } else {
                out.extend_from_slice(field);
            }
            out.push(0);
        }
        out.push(0);
        let length = u32::try_from(out.len() - 1).ok()?;
        out[1..5].copy_from_slice(&length.to_be_bytes());
        Some(out)
    }

    /// A connection was lent: what it holds of the unnamed statement is
    /// someone else's.
    pub fn lent(&mut self) {
        self.unnamed_here = false;
        self.unnamed_in_group = false;
    }

    /// The messages that make sure the server has `st` prepared (a
    /// `Close` of its name first, so that a set that fell out of step with
    /// the server costs nothing, then the `Parse`), with their
    /// completions; the `Parse`'s answer is the client's unless `dropped`.
    fn prepare_on_server(
        &mut self,
        st: &Interned,
        out: &mut Vec<u8>,
        completions: &mut VecDeque<Completion>,
        dropped: bool,
    ) {
        if let Some(evicted) = self.server.insert(st.id) {
            out.extend_from_slice(&close_statement(&server_name(evicted)));
            completions.push_back(Completion::Drop);
        }
        let name = st.server_name();
        out.extend_from_slice(&close_statement(&name));
        completions.push_back(Completion::Drop);
        out.extend_from_slice(&parse_message(&name, &st.body));
        completions.push_back(Completion::Prepare { id: st.id, dropped });
    }
}

/// A `Parse`'s body as the server reads it whole before it drops the
/// unnamed statement the `Parse` replaces: name and SQL (valid UTF-8, the
/// encoding the gateway's clients speak), then exactly the parameter types
/// counted. A malformed one is refused with the old statement in place.
fn parse_well_formed(body: &[u8]) -> bool {
    let mut strings = body.splitn(3, |&c| c == 0);
    let (Some(name), Some(sql), Some(rest)) = (strings.next(), strings.next(), strings.next())
    else {
        return false;
    };
    std::str::from_utf8(name).is_ok()
        && std::str::from_utf8(sql).is_ok()
        && rest
            .get(..2)
            .is_some_and(|n| rest.len() == 2 + 4 * usize::from(u16::from_be_bytes([n[0], n[1]])))
}

/// The name a `Parse` (or `Close`, `Describe` after its kind) begins with.
fn leading_name(body: &[u8]) -> &[u8] {
    &body[..body.iter().position(|&c| c == 0).unwrap_or(body.len())]
}

/// What a `Parse` or `Bind` of an uncertain name becomes (see
/// [`Tracker::uncertain_name`]).
fn uncertain_name_refusal() -> String {
    crate::raised(
        "42602",
        "statement and portal names outside ASCII are refused under this client_encoding: the gateway cannot tell them apart as the server does",
    )
}

/// Extended-protocol messages the gateway drops while the server discards
/// up to a `Sync` (whole: [`Tracker::checks`] reads them so).
fn skipped_while_discarding(tag: u8) -> bool {
    matches!(tag, b'P' | b'B' | b'D' | b'E' | b'C')
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
            copy_in: false,
            copy_ended_early: false,
            out_of_step: false,
            discarding: false,
            transaction: b'I',
            pending: VecDeque::new(),
            statements: HashMap::new(),
            edits: 0,
            last_bound: 0,
            client_not_utf8: false,
            server_not_utf8: false,
            unasked: false,
            portals: HashMap::new(),
            audit,
            parameter_changes: Vec::new(),
            statement_count: 0,
            rules: Rules::default(),
            refused: 0,
            gate: None,
            skipping_to_sync: false,
            completions: VecDeque::new(),
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

    /// Transaction pooling: what a `Query` or `Parse` (whole SQL) leaves in
    /// the session. Returns the statement to send instead when session
    /// state is refused (or a `DEALLOCATE` of a carried statement).
    fn follow_session_state(&mut self, tag: u8, body: &[u8]) -> Option<SessionVerdict> {
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
                ..Default::default()
            },
        };
        pooling.carried_changed |= effects.carried_changed;
        pooling.sql_prepared |= effects.prepares;
        // The whole body: its SQL, in whatever encoding.
        let gateways = crate::prepared::may_execute_gateway_statement(body);
        if (effects.executes && !pooling.sql_prepared) || gateways {
            // Only another client's statement could run: as if it did not
            // exist.
            self.refused += 1;
            let refusal = "DO $latchkey$BEGIN RAISE EXCEPTION USING ERRCODE = '26000', MESSAGE = 'prepared statement does not exist (transaction pooling: use protocol-level prepared statements)'; END$latchkey$";
            return Some(SessionVerdict::Refused(match tag {
                b'P' => refused_parse(refusal),
                _ => query_message(refusal),
            }));
        }
        match effects.deallocates.take() {
            Some(Deallocation::Name(name))
                if pooling.named.remove(server_key(name.as_bytes())).is_some() =>
            {
                // The client's statement is the gateway's on the server
                // under another name: the server drops all it has, and
                // the others are prepared again where needed.
                pooling.server.clear();
                if effects.pins.is_none() {
                    return Some(SessionVerdict::Rewritten(match tag {
                        // Still a Parse, of the client's statement name.
                        b'P' => statement_message(b'P', Some(leading_name(body)), "DEALLOCATE ALL"),
                        _ => query_message("DEALLOCATE ALL"),
                    }));
                }
            }
            Some(Deallocation::All) => {
                pooling.named.clear();
                pooling.server.clear();
            }
            // Unknown to the gateway: whatever the server dropped is
            // prepared again where needed.
            Some(_) => pooling.server.clear(),
            _ => {}
        }
        let cause = effects.pins?;
        if pooling.refuse && cause != PinCause::NamedStatement {
            self.refused += 1;
            let refusal = session_state_refusal(cause);
            return Some(SessionVerdict::Refused(match tag {
                b'P' => refused_parse(&refusal),
                _ => query_message(&refusal),
            }));
        }
        pooling.pinned.get_or_insert(cause);
        None
    }

    /// What SQL `PREPARE`, `DEALLOCATE` or `DISCARD ALL` in `sql` (`None`
    /// when it cannot be read whole) does to the names of prepared
    /// statements: they share the server's namespace with the protocol's.
    /// Names as the server truncates SQL identifiers: to 63 bytes on a
    /// character boundary (then told apart as protocol names are); names
    /// outside ASCII where the server converts them count as all.
    fn sql_names(&self, sql: Option<&str>) -> StatementNames {
        let Some(sql) = sql else {
            return StatementNames::All;
        };
        match statement_names(sql) {
            StatementNames::Names(names) => {
                let converted = self.client_not_utf8 || self.server_not_utf8;
                if converted && names.iter().any(|n| !n.is_ascii()) {
                    return StatementNames::All;
                }
                StatementNames::Names(
                    names
                        .into_iter()
                        .map(|mut name| {
                            let mut cut = name.len().min(crate::NAME_BYTES);
                            while !name.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            name.truncate(cut);
                            name
                        })
                        .collect(),
                )
            }
            touched => touched,
        }
    }

    /// The names `touched` lose their label, so that a later `Bind` of one
    /// is audited as a statement the gateway does not know rather than as
    /// SQL the name no longer holds. The unnamed statement is never among
    /// them.
    fn forget_names(&mut self, touched: &StatementNames) {
        match touched {
            StatementNames::Untouched => {}
            StatementNames::Names(names) => {
                for name in names {
                    self.statements.remove(&*name_key(name.as_bytes()));
                }
            }
            StatementNames::All => self.statements.retain(|name, _| name.is_empty()),
        }
    }

    /// Decides statements by statement policy.
    pub fn with_gate(mut self, gate: Option<Box<dyn StatementGate>>) -> Self {
        self.gate = gate;
        self
    }

    /// The parameters the server reported when the session started.
    pub fn server_params<'p>(
        mut self,
        params: impl IntoIterator<Item = (&'p str, &'p str)>,
    ) -> Self {
        for (name, value) in params {
            self.follow_parameter(name, value);
        }
        self
    }

    /// A parameter the server reported (at the start, or by
    /// `ParameterStatus`) that changes how the session's SQL and names
    /// are read: by statement policy, by the audit, by the tracker.
    fn follow_parameter(&mut self, name: &str, value: &str) {
        match name {
            "standard_conforming_strings" => {
                latchkey_framing::backslashes_differ(
                    self.gate.as_deref_mut(),
                    self.normalised.as_mut(),
                    value != "on",
                );
            }
            "client_encoding" => {
                self.client_not_utf8 = !crate::reads_as_utf8(value);
                if let Some(gate) = self.gate.as_mut() {
                    gate.encoding_differs(self.client_not_utf8);
                }
            }
            "server_encoding" => self.server_not_utf8 = value != "UTF8",
            _ => {}
        }
    }

    /// The encodings at login: whether the client's is not UTF-8 (or
    /// SQL_ASCII), and whether the server's is not UTF-8.
    pub fn encodings(mut self, client_not_utf8: bool, server_not_utf8: bool) -> Self {
        self.client_not_utf8 = client_not_utf8;
        self.server_not_utf8 = server_not_utf8;
        self
    }

    /// Whether a message's SQL is checked (and so must be read whole):
    /// always, since `pg_terminate_backend` is refused whatever the
    /// policy.
    pub(crate) fn checks(&self, direction: Direction, tag: u8) -> bool {
        direction == Direction::ToUpstream
            && (matches!(tag, b'Q' | b'P' | b'F')
                || (tag == b'B' && self.gate.is_some())
                // Rewritten in transaction pooling.
                || (matches!(tag, b'B' | b'D' | b'C') && self.pooling.is_some())
                || self.skipping_to_sync
                || (self.discarding && skipped_while_discarding(tag)))
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
        let well_formed = tag == b'P' && parse_well_formed(body);
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
            Some(name) => gate.rule_parse(&name_key(name), sql, first_in_group && well_formed),
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
        self.inject_refusal();
        let statement = self.normalised.as_ref().map(|n| {
            wire::parse_bind(body)
                .ok()
                .and_then(|(_, name)| self.statements.get(&*name_key(name.as_bytes())))
                .map_or_else(|| n.unknown(), |p| p.statement.clone())
        });
        self.pending.push_back(Pending::Execute {
            statement,
            started: started(self.audit.as_ref()),
            policy: Some(decision),
            asked: false,
            bound_from: 0,
        });
        self.unasked = true;
        Some(Verdict::Replace(refused_parse(&policy_refusal(&message))))
    }

    /// The gateway's own `Parse`, `Bind` and `Execute` stand for a refused
    /// message: their answers are dropped (the `Execute` raises the
    /// error), and the client's messages up to `Sync` are not sent.
    fn inject_refusal(&mut self) {
        self.completions.push_back(Completion::Drop);
        self.completions.push_back(Completion::Drop);
        self.skipping_to_sync = true;
    }

    /// Whether the answers to `Parse`, `Bind` and `Close` are followed
    /// (the gateway may add or rewrite such messages).
    fn follows_completions(&self) -> bool {
        self.gate.is_some() || self.pooling.is_some()
    }

    /// The server has answered everything and is outside a transaction
    /// (and out of COPY, whose `Sync` may be answered before it ends).
    /// Anything still waiting for its answer also keeps it busy, however
    /// the counts stand.
    pub fn idle(&self) -> bool {
        self.outstanding == 0
            && !self.unsynced
            && self.transaction == b'I'
            && !self.copy_in
            && !self.out_of_step
            && self.pending.is_empty()
    }

    /// Frees the queues of answers awaited while none is (a transaction-
    /// pooled client between transactions): an idle client's memory is
    /// what thousands of them cost. The next transaction's first message
    /// allocates again, once.
    pub fn shrink_idle(&mut self) {
        if self.pending.is_empty() {
            self.pending = VecDeque::new();
        }
        if self.completions.is_empty() {
            self.completions = VecDeque::new();
        }
    }

    #[cfg(test)]
    pub(crate) fn queues_capacity(&self) -> usize {
        self.pending.capacity() + self.completions.capacity()
    }

    fn names_mut(&mut self, portal: bool) -> &mut HashMap<String, Prepared> {
        if portal {
            &mut self.portals
        } else {
            &mut self.statements
        }
    }

    /// Names `name` (`key`, as the server tells names apart) for
    /// `prepared`, within the bound; the edit to undo should the server
    /// refuse or skip the message. Kept inline, so that the unnamed
    /// statement and portal of every extended-protocol query cost no
    /// allocation.
    fn name(&mut self, portal: bool, key: String, prepared: Prepared) -> Option<NameEdit> {
        let names = self.names_mut(portal);
        if names.len() >= MAX_NAMES && !names.contains_key(&key) {
            return None;
        }
        self.edits += 1;
        let edit = self.edits;
        let name: Box<str> = key.as_str().into();
        let before = self
            .names_mut(portal)
            .insert(key, Prepared { edit, ..prepared });
        Some(NameEdit::Named {
            portal,
            name,
            edit,
            before,
        })
    }

    /// The server took the message: a `Close` takes effect, unless the
    /// name was named again since it was sent.
    fn confirm(&mut self, edit: Option<NameEdit>) {
        if let Some(NameEdit::Closing { portal, name, edit }) = edit {
            if !portal && let Some(gate) = self.gate.as_mut() {
                gate.closed(&name);
            }
            let names = self.names_mut(portal);
            if names.get(&*name).is_some_and(|p| p.edit == edit) {
                names.remove(&*name);
            }
        }
    }

    /// The server refused or skipped the messages that made `edits`, in
    /// the order they were sent: each name stands for what it did before,
    /// unless a later message has named it since.
    fn undo(&mut self, edits: Vec<NameEdit>) {
        // A statement the client named, in transaction pooling, is what
        // the gateway prepares wherever it lands, failed or skipped: the
        // audit names what runs.
        let statements_stand = self.pooling.is_some();
        for edit in edits.into_iter().rev() {
            if let NameEdit::Named {
                portal,
                name,
                edit,
                before,
            } = edit
            {
                if statements_stand && !portal {
                    continue;
                }
                if !portal && self.last_bound > edit {
                    self.relabel_bound_from(edit, before.as_ref());
                }
                let names = self.names_mut(portal);
                if names.get(&*name).is_some_and(|p| p.edit == edit) {
                    match before {
                        Some(before) => names.insert(name.into(), before),
                        None => names.remove(&*name),
                    };
                } else {
                    self.pass_on_before(portal, &name, edit, before);
                }
            }
        }
    }

    /// Edit `edit` of `name` was undone after a later message named the
    /// name again: should that one be undone too, the name stands for
    /// what it did before `edit` (`before`), not for what the server
    /// never took. The later message is still awaited (answered after).
    fn pass_on_before(&mut self, portal: bool, name: &str, edit: u64, before: Option<Prepared>) {
        for pending in &mut self.pending {
            if let Pending::Parse {
                edit: Some(later), ..
            }
            | Pending::Answer(_, Some(later)) = pending
                && let NameEdit::Named {
                    portal: later_portal,
                    name: later_name,
                    before: later_before,
                    ..
                } = later
                && *later_portal == portal
                && **later_name == *name
                && later_before.as_ref().is_some_and(|b| b.edit == edit)
            {
                *later_before = before;
                return;
            }
        }
    }

    /// A statement's edit `edit` was undone: portals bound from it since
    /// (a `Bind` pipelined behind the skipped `Parse`), and the
    /// executions of those portals still awaited, run what the name stood
    /// for before (`before`), or nothing the audit knows.
    fn relabel_bound_from(&mut self, edit: u64, before: Option<&Prepared>) {
        let Some(normalised) = &self.normalised else {
            return;
        };
        let (statement, policy, from, touches) = match before {
            Some(p) => (
                p.statement.clone(),
                p.policy.clone(),
                p.edit,
                p.touches.clone(),
            ),
            None => (normalised.unknown(), None, 0, None),
        };
        for portal in self.portals.values_mut() {
            if portal.bound_from == edit {
                portal.statement = statement.clone();
                portal.policy = policy.clone();
                portal.bound_from = from;
                portal.touches = touches.clone();
            }
        }
        for pending in &mut self.pending {
            if let Pending::Execute {
                statement: Some(s),
                policy: p,
                bound_from,
                ..
            } = pending
                && *bound_from == edit
            {
                *s = statement.clone();
                *p = policy.clone();
                *bound_from = from;
            }
        }
    }

    /// A statement or portal name the gateway cannot tell apart from others
    /// as the server does: outside ASCII within its first 63 bytes, while
    /// the server converts names from another client encoding before it
    /// keeps their first 63 bytes. Refused (fail closed).
    fn uncertain_name(&self, name: &[u8]) -> bool {
        (self.client_not_utf8 || self.server_not_utf8) && !server_key(name).is_ascii()
    }

    /// Transaction pooling: a `Parse` of the unnamed statement failed or
    /// was skipped, so what the server holds as the unnamed statement is
    /// nothing, or what the connection's previous client left: the
    /// client's `Bind` of it gets "does not exist" until it prepares one.
    fn unnamed_gone(&mut self) {
        if let Some(pooling) = self.pooling.as_mut() {
            pooling.unnamed_here = false;
        }
    }

    /// Takes the pending entry at the front, keeping its name edit for
    /// [`Tracker::undo`]: the server skipped it.
    fn skip_front(&mut self, skipped: &mut Vec<NameEdit>) -> Option<Pending> {
        let mut p = self.pending.pop_front()?;
        if let Pending::Parse { unnamed: true, .. } = p {
            self.unnamed_gone();
        }
        let edit = match &mut p {
            Pending::Parse { edit, .. } | Pending::Answer(_, edit) => edit.take(),
            _ => None,
        };
        skipped.extend(edit);
        Some(p)
    }

    /// Answers to [`MAX_AWAITED`](crate::MAX_AWAITED) messages or more
    /// are awaited, and the server owes them all without hearing from the
    /// client (outside `COPY FROM STDIN`, where it waits for the client's
    /// data).
    pub fn backlogged(&self) -> bool {
        self.pending.len() >= crate::MAX_AWAITED && !self.copy_in
    }

    /// Ready while the audit has room for the session's statements.
    pub fn poll_audit_room(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.audit
            .as_ref()
            .map_or(std::task::Poll::Ready(()), |a| a.poll_room(cx))
    }

    /// Something was sent that the server has not finished answering.
    pub fn busy(&self) -> bool {
        self.outstanding > 0
    }

    /// The server waits for the client inside a transaction or an unsynced
    /// batch: everything the client asked to be answered has been (a
    /// query, a `Sync`, `Execute`s followed by a `Flush`), or the server
    /// waits for `COPY FROM STDIN` data. An `Execute` never flushed counts
    /// as the client's wait: it has not asked for the answer.
    pub fn waits_on_client(&self) -> bool {
        if self.copy_in || self.discarding {
            return true;
        }
        let answering = self.outstanding > 0
            || self
                .pending
                .iter()
                .any(|p| matches!(p, Pending::Execute { asked: true, .. }));
        !answering && !self.idle()
    }

    /// `CopyInResponse` to the `Execute` first in line: a `Sync` the
    /// client sent after it without waiting (as libpq does) reached the
    /// server in copy-in mode, which ignores it, so it is owed nothing.
    fn copy_in_started(&mut self) {
        let ended_early = std::mem::take(&mut self.copy_ended_early);
        self.copy_in = !ended_early;
        // A client that ended the COPY blind may have sent its Sync before
        // or after the end: it stays owed (the safe side: the connection
        // is held, never lent while answers are on their way).
        if !ended_early
            && matches!(self.pending.front(), Some(Pending::Execute { .. }))
            && matches!(self.pending.get(1), Some(Pending::Sync))
        {
            self.pending.remove(1);
            self.outstanding = self.outstanding.saturating_sub(1);
            if let Some(at) = self.completions.iter().position(|c| *c == Completion::Sync) {
                self.completions.remove(at);
            }
            if let Some(pooling) = self.pooling.as_mut() {
                pooling.sync_answered();
            }
            // The COPY's group is open again: its CommandComplete (or
            // error) comes only after the client's next Sync.
            self.unsynced = true;
        }
    }

    /// A `Flush`: the client waits for the answers to every `Execute`
    /// sent so far.
    fn ask_for_answers(&mut self) {
        if !std::mem::take(&mut self.unasked) {
            return;
        }
        // Those asked for before are all ahead of the newest one asked
        // for: a client sending Flush after Flush walks nothing again.
        for p in self.pending.iter_mut().rev() {
            if let Pending::Execute { asked, .. } = p {
                if *asked {
                    break;
                }
                *asked = true;
            }
        }
    }

    pub(crate) fn wants(&self, direction: Direction, tag: u8) -> bool {
        match direction {
            Direction::ToUpstream => {
                matches!(
                    tag,
                    b'Q' | b'P' | b'B' | b'E' | b'C' | b'D' | b'S' | b'X' | b'F'
                ) || self.skipping_to_sync
            }
            Direction::ToClient => {
                matches!(
                    tag,
                    b'C' | b'E' | b'Z' | b'S' | b'I' | b's' | b'1' | b'2' | b'3'
                ) || (matches!(tag, b'T' | b'n')
                    // Every simple query's rows are described: only a
                    // Describe waiting for its answer needs to see these.
                    && matches!(
                        self.pending.front(),
                        Some(Pending::Answer(AnswerTo::Describe, _))
                    ))
            }
        }
    }

    /// A message passed through without being looked at.
    pub(crate) fn passed(&mut self, direction: Direction, tag: u8) {
        match (direction, tag) {
            // A function call is answered by ReadyForQuery (unless the
            // server discards it, waiting for a Sync).
            (Direction::ToUpstream, b'F') => {
                if !self.discarding {
                    self.outstanding += 1;
                    self.pending.push_back(Pending::Query {
                        statement: None,
                        started: None,
                        tag: None,
                        error: None,
                        policy: None,
                    });
                }
            }
            // COPY data belongs to a statement already in flight.
            (Direction::ToUpstream, b'd') => {}
            // Skipped by a server discarding up to a Sync.
            (Direction::ToUpstream, b'c' | b'f') if !self.discarding => {
                // Before the server said it waits for data: a client
                // sending blind, which has ended the COPY already.
                self.copy_ended_early = !self.copy_in;
                self.copy_in = false;
            }
            (Direction::ToUpstream, b'H') => {
                self.unsynced = true;
                self.ask_for_answers();
            }
            (Direction::ToUpstream, _) => self.unsynced = true,
            (Direction::ToClient, b'G') => self.copy_in_started(),
            (Direction::ToClient, b'W') => self.copy_in = true,
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
        // After an extended-protocol error the server skips everything up
        // to the client's Sync. The gateway does not send these at all:
        // nothing is kept for them, and nothing they would prepare, close
        // or rename is believed of the server (were it not skipping after
        // all, the client's messages would go unanswered, never run).
        if direction == Direction::ToUpstream && self.discarding && skipped_while_discarding(tag) {
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
                // A function named by OID may take a session advisory lock
                // or set a setting: it pins (or is refused, as session
                // state in SQL is), unless it is a large-object function,
                // whose descriptors end with the transaction.
                if let Some(pooling) = self.pooling.as_mut()
                    && !oid.is_some_and(|oid| LARGE_OBJECT_FUNCTIONS.contains(&oid))
                    && pooling.pinned.is_none()
                {
                    if pooling.refuse {
                        self.refused += 1;
                        return Verdict::Replace(query_message(&session_state_refusal(
                            PinCause::FunctionCall,
                        )));
                    }
                    pooling.pinned = Some(PinCause::FunctionCall);
                }
                // Audited as a statement naming the function's OID.
                if let Some(normalised) = self.normalised.as_mut()
                    && !self.discarding
                    && let Some(Pending::Query {
                        statement: None, ..
                    }) = self.pending.back()
                {
                    let text = format!(
                        "{} oid_{}",
                        latchkey_framing::FUNCTION_CALL_SQL,
                        oid.unwrap_or_default()
                    );
                    let statement = normalised.statement(&text, true);
                    if let Some(last) = self.pending.back_mut() {
                        *last = Pending::Query {
                            statement: Some(statement),
                            started: started(self.audit.as_ref()),
                            tag: None,
                            error: None,
                            policy: None,
                        };
                    }
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
                // While the server discards up to a Sync, a query is
                // checked as any other but never answered.
                let answered = !self.discarding;
                if answered {
                    self.outstanding += 1;
                }
                let Checked {
                    replace, policy, ..
                } = self.check(tag, body, complete, false);
                let replace = match replace {
                    Some(r) => Some(r),
                    None if complete => self
                        .follow_session_state(tag, body)
                        .map(SessionVerdict::message),
                    None => None,
                };
                if self.normalised.is_some() {
                    let sql = wire::leading_str(body).ok().filter(|_| complete);
                    let touched = self.sql_names(sql);
                    self.forget_names(&touched);
                }
                let (body, complete) = audited(body, complete);
                let statement =
                    self.normalised
                        .as_mut()
                        .map(|n| match wire::leading_str_prefix(body) {
                            Ok(sql) => n.statement(sql, complete),
                            Err(_) => n.unknown(),
                        });
                if answered {
                    self.pending.push_back(Pending::Query {
                        statement,
                        started: started(self.audit.as_ref()),
                        tag: None,
                        error: None,
                        policy,
                    });
                }
                if let Some(message) = replace {
                    return Verdict::Replace(message);
                }
            }
            // The server ignores a Sync while it waits for COPY data, and
            // answers one that arrives after the COPY failed.
            (Direction::ToUpstream, b'S') if self.copy_in => self.out_of_step = true,
            (Direction::ToUpstream, b'S') => {
                self.outstanding += 1;
                if let Some(pooling) = self.pooling.as_mut() {
                    pooling.sync_sent();
                }
                self.unsynced = false;
                self.discarding = false;
                self.skipping_to_sync = false;
                if self.follows_completions() {
                    self.completions.push_back(Completion::Sync);
                }
                self.pending.push_back(Pending::Sync);
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
                    None if self.uncertain_name(leading_name(body)) => {
                        self.refused += 1;
                        parse_refused = true;
                        Some(refused_parse(&uncertain_name_refusal()))
                    }
                    None if self
                        .pooling
                        .as_ref()
                        .is_some_and(|p| p.reserved(leading_name(body))) =>
                    {
                        self.refused += 1;
                        parse_refused = true;
                        Some(refused_parse(&crate::raised(
                            "42P05",
                            "statement names starting with _lk_ are reserved by the gateway in transaction pooling",
                        )))
                    }
                    None if complete => {
                        let verdict = self.follow_session_state(tag, body);
                        parse_refused = matches!(verdict, Some(SessionVerdict::Refused(_)));
                        verdict.map(SessionVerdict::message)
                    }
                    None => None,
                };
                let whole = body;
                // The whole message was read (it is cut below for the audit).
                let read_whole = complete;
                let (body, complete) = audited(body, complete);
                let parsed = wire::parse_parse(body).ok();
                if parse_refused {
                    // The gateway's Parse and Bind stand for it; its
                    // Execute raises the error, audited as this statement.
                    self.inject_refusal();
                    let statement = self.normalised.as_mut().map(|n| match parsed {
                        Some((_, sql)) => n.statement(sql, complete),
                        None => n.unknown(),
                    });
                    self.pending.push_back(Pending::Execute {
                        statement,
                        started: started(self.audit.as_ref()),
                        policy,
                        asked: false,
                        bound_from: 0,
                    });
                    self.unasked = true;
                    return match replace {
                        Some(message) => Verdict::Replace(message),
                        None => Verdict::Forward,
                    };
                }
                // What its SQL does to names is done when it is sent (so
                // that nothing bound since keeps a stale label) and again
                // at each execution, when the server does it.
                let mut touches = None;
                if self.normalised.is_some() {
                    let sql = wire::parse_parse(whole).ok().filter(|_| read_whole);
                    let touched = self.sql_names(sql.map(|(_, sql)| sql));
                    self.forget_names(&touched);
                    if touched != StatementNames::Untouched {
                        touches = Some(Arc::new(touched));
                    }
                }
                let mut audited_statement = None;
                let mut edit = None;
                if let Some(normalised) = self.normalised.as_mut()
                    && let Some((name, sql)) = parsed
                {
                    let statement = normalised.statement(sql, complete);
                    audited_statement = Some(statement.clone());
                    let prepared = Prepared {
                        statement,
                        policy,
                        edit: 0,
                        bound_from: 0,
                        touches,
                    };
                    edit = self.name(false, name_key(name.as_bytes()).into_owned(), prepared);
                }
                self.pending.push_back(Pending::Parse {
                    statement: audited_statement,
                    started: started(self.audit.as_ref()),
                    edit,
                    unnamed: whole.first() == Some(&0),
                });
                let drops_unnamed =
                    first_in_group && (replace.is_some() || parse_well_formed(whole));
                if read_whole
                    && let Some(carried) =
                        self.carry_parse(whole, replace.as_deref(), drops_unnamed)
                {
                    return Verdict::Replace(carried);
                }
                if self.follows_completions() {
                    self.completions.push_back(Completion::Pass);
                }
                if let Some(message) = replace {
                    return Verdict::Replace(message);
                }
            }
            (Direction::ToUpstream, b'B') => {
                self.unsynced = true;
                let mut names = body.splitn(3, |&c| c == 0);
                if names.by_ref().take(2).any(|name| self.uncertain_name(name)) {
                    self.refused += 1;
                    self.inject_refusal();
                    let statement = self.normalised.as_ref().map(StatementCache::unknown);
                    self.pending.push_back(Pending::Execute {
                        statement,
                        started: started(self.audit.as_ref()),
                        policy: None,
                        asked: false,
                        bound_from: 0,
                    });
                    self.unasked = true;
                    return Verdict::Replace(refused_parse(&uncertain_name_refusal()));
                }
                if let Some(refused) = self.check_bind(body) {
                    return refused;
                }
                let mut edit = None;
                if let Some(normalised) = &self.normalised
                    && let Ok((portal, name)) = wire::parse_bind(body)
                {
                    let prepared = self
                        .statements
                        .get(&*name_key(name.as_bytes()))
                        .map(|p| Prepared {
                            bound_from: p.edit,
                            ..p.clone()
                        })
                        .unwrap_or_else(|| Prepared {
                            statement: normalised.unknown(),
                            policy: None,
                            edit: 0,
                            bound_from: 0,
                            touches: None,
                        });
                    edit = self.name(true, name_key(portal.as_bytes()).into_owned(), prepared);
                    if edit.is_some() {
                        self.last_bound = self.edits;
                    }
                }
                let carried = if complete {
                    self.carry_named(tag, body)
                } else {
                    None
                };
                if self.follows_completions() {
                    self.completions.push_back(Completion::Pass);
                }
                self.pending
                    .push_back(Pending::Answer(AnswerTo::Bind, edit));
                if let Some(message) = carried {
                    return Verdict::Replace(message);
                }
            }
            (Direction::ToUpstream, b'D') => {
                self.unsynced = true;
                self.pending
                    .push_back(Pending::Answer(AnswerTo::Describe, None));
                if complete && let Some(message) = self.carry_named(tag, body) {
                    return Verdict::Replace(message);
                }
            }
            (Direction::ToUpstream, b'E') => {
                self.unsynced = true;
                let prepared = self.normalised.as_ref().map(|normalised| {
                    wire::leading_str(body)
                        .ok()
                        .and_then(|portal| self.portals.get(&*name_key(portal.as_bytes())).cloned())
                        .unwrap_or_else(|| Prepared {
                            statement: normalised.unknown(),
                            policy: None,
                            edit: 0,
                            bound_from: 0,
                            touches: None,
                        })
                });
                let (statement, policy, bound_from) = match prepared {
                    Some(p) => {
                        if let Some(touched) = &p.touches {
                            self.forget_names(touched);
                        }
                        (Some(p.statement), p.policy, p.bound_from)
                    }
                    None => (None, None, 0),
                };
                self.pending.push_back(Pending::Execute {
                    statement,
                    started: started(self.audit.as_ref()),
                    policy,
                    asked: false,
                    bound_from,
                });
                self.unasked = true;
            }
            (Direction::ToUpstream, b'C') => {
                self.unsynced = true;
                let edit = wire::parse_close(body).ok().and_then(|(kind, name)| {
                    let portal = kind != b'S';
                    let name = name_key(name.as_bytes()).into_owned();
                    // Statement policy hears of a statement's confirmed
                    // Close even where the audit has no name (edit 0 is
                    // none of the audit's).
                    let gated = !portal && self.gate.is_some();
                    let edit = match self.names_mut(portal).get(&name) {
                        Some(p) => p.edit,
                        None if gated => 0,
                        None => return None,
                    };
                    Some(NameEdit::Closing {
                        portal,
                        name: name.into(),
                        edit,
                    })
                });
                self.pending
                    .push_back(Pending::Answer(AnswerTo::Close, edit));
                if self.follows_completions() {
                    self.completions.push_back(Completion::Pass);
                }
                // A statement the gateway carries stays prepared on the
                // server for the other clients, and a name this client did
                // not prepare may be another's: either way the Close
                // becomes a Close of nothing, answered all the same.
                if let Some(pooling) = self.pooling.as_mut()
                    && let [b'S', name @ ..] = body
                    && let Some(name) = name.strip_suffix(&[0])
                    && !name.is_empty()
                    && !pooling.own_on_server(server_key(name))
                {
                    pooling.named.remove(server_key(name));
                    return Verdict::Replace(close_nothing());
                }
            }
            (Direction::ToClient, b'C' | b'I' | b's') => {
                self.copy_in = false;
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
                            ..
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
            (Direction::ToClient, b'1' | b'2' | b'3') => {
                let completion = if self.follows_completions() {
                    match self.completions.front() {
                        Some(Completion::Sync) | None => Completion::Pass,
                        Some(_) => self.completions.pop_front().unwrap_or(Completion::Pass),
                    }
                } else {
                    Completion::Pass
                };
                let verdict = match completion {
                    Completion::Drop | Completion::Prepare { dropped: true, .. } => {
                        return Verdict::Replace(Vec::new());
                    }
                    Completion::AsParseComplete => Verdict::Replace(PARSE_COMPLETE.to_vec()),
                    _ => Verdict::Forward,
                };
                // The client's own answer: its entry goes.
                let answered = match (tag, completion) {
                    (b'1', _) | (_, Completion::AsParseComplete) => {
                        matches!(self.pending.front(), Some(Pending::Parse { .. }))
                    }
                    (b'2', _) => {
                        matches!(
                            self.pending.front(),
                            Some(Pending::Answer(AnswerTo::Bind, _))
                        )
                    }
                    _ => matches!(
                        self.pending.front(),
                        Some(Pending::Answer(AnswerTo::Close, _))
                    ),
                };
                if answered {
                    let edit = match self.pending.pop_front() {
                        Some(Pending::Parse { edit, .. } | Pending::Answer(_, edit)) => edit,
                        _ => None,
                    };
                    self.confirm(edit);
                }
                return verdict;
            }
            (Direction::ToClient, b'T' | b'n') => {
                // A simple query's rows are described too: only a
                // Describe waiting first is answered by this.
                if matches!(
                    self.pending.front(),
                    Some(Pending::Answer(AnswerTo::Describe, _))
                ) {
                    self.pending.pop_front();
                }
            }
            (Direction::ToClient, b'E') => {
                self.copy_in = false;
                let code = wire::error_code(body).map(str::to_owned);
                // A prepared statement the gateway counted on is gone
                // (a function ran DEALLOCATE): it forgets what the
                // connection holds, and prepares again where needed.
                let mut retold = None;
                if code.as_deref() == Some("26000")
                    && let Some(pooling) = self.pooling.as_mut()
                {
                    pooling.server.clear();
                    retold = pooling.retell_unknown(body);
                }
                let verdict = retold.map_or(Verdict::Forward, Verdict::Replace);
                match self.pending.front_mut() {
                    Some(Pending::Query { error, .. }) => {
                        if error.is_none() {
                            *error = code;
                        }
                        return verdict;
                    }
                    Some(Pending::Execute { .. }) => {
                        if let Some(Pending::Execute {
                            statement,
                            started,
                            policy,
                            ..
                        }) = self.pending.pop_front()
                        {
                            self.report(statement, Protocol::Extended, started, None, code, policy);
                        }
                    }
                    // A statement that failed to parse is never executed:
                    // its error is all the audit will see of it.
                    Some(Pending::Parse { .. }) => {
                        let failed = self.pending.pop_front();
                        if let Some(Pending::Parse { unnamed: true, .. }) = failed {
                            self.unnamed_gone();
                        }
                        if let Some(Pending::Parse {
                            statement,
                            started,
                            edit,
                            ..
                        }) = failed
                            && let Some(statement) = statement
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
                            self.undo(edit.into_iter().collect());
                        }
                    }
                    Some(Pending::Answer(answer, _)) => {
                        // A Bind failed: the Execute of the portal it was
                        // making (after any Describe of it) failed with it:
                        // the statement is planned at Bind.
                        let bind = *answer == AnswerTo::Bind;
                        let mut refused = Vec::new();
                        self.skip_front(&mut refused);
                        self.undo(refused);
                        while bind
                            && let Some(Pending::Answer(AnswerTo::Describe, _)) =
                                self.pending.front()
                        {
                            self.pending.pop_front();
                        }
                        if bind
                            && let Some(Pending::Execute { .. }) = self.pending.front()
                            && let Some(Pending::Execute {
                                statement,
                                started,
                                policy,
                                ..
                            }) = self.pending.pop_front()
                        {
                            self.report(statement, Protocol::Extended, started, None, code, policy);
                        }
                    }
                    Some(Pending::Sync) => {
                        self.skip_completions_to_sync();
                        return verdict;
                    }
                    None => {
                        // An extended-protocol message failed (a Bind, a
                        // Describe): the server waits for the Sync.
                        self.discarding = self.unsynced;
                        self.skip_completions_to_sync();
                        return verdict;
                    }
                }
                // The server skips everything up to Sync, queries and
                // function calls included: they are never answered, and
                // name nothing.
                let mut skipped = Vec::new();
                while !matches!(self.pending.front(), Some(Pending::Sync) | None) {
                    if let Some(Pending::Query { .. }) = self.skip_front(&mut skipped) {
                        self.outstanding = self.outstanding.saturating_sub(1);
                    }
                }
                self.undo(skipped);
                // No Sync on its way: nothing is answered until one comes.
                self.discarding = self.pending.is_empty();
                self.skip_completions_to_sync();
                return verdict;
            }
            (Direction::ToClient, b'Z') => {
                self.copy_in = false;
                self.outstanding = self.outstanding.saturating_sub(1);
                self.transaction = body.first().copied().unwrap_or(b'E');
                let mut skipped = Vec::new();
                while let Some(p) = self.skip_front(&mut skipped) {
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
                        Pending::Sync => {
                            // The group's answers are all in: its Sync
                            // mark goes.
                            while let Some(c) = self.completions.pop_front() {
                                if c == Completion::Sync {
                                    break;
                                }
                            }
                            if let Some(pooling) = self.pooling.as_mut() {
                                pooling.sync_answered();
                            }
                            break;
                        }
                        // Skipped after an error.
                        Pending::Execute { .. } | Pending::Parse { .. } | Pending::Answer(..) => {}
                    }
                }
                self.undo(skipped);
            }
            (Direction::ToClient, b'S') => {
                if let Ok((name, value)) = wire::parse_parameter_status(body) {
                    self.follow_parameter(name, value);
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

    /// After an error the server skips the rest of the group: the answers
    /// owed for it never come, and statements it would have prepared are
    /// not there.
    fn skip_completions_to_sync(&mut self) {
        while let Some(&c) = self.completions.front() {
            if c == Completion::Sync {
                break;
            }
            self.completions.pop_front();
            if let (Completion::Prepare { id, .. }, Some(pooling)) = (c, self.pooling.as_mut()) {
                pooling.server.remove(id);
            }
        }
    }

    /// Transaction pooling: a client's named `Parse` (as sent on: `whole`,
    /// or the gateway's `replacement`) goes to the server under the
    /// gateway's name for the statement, or, when the server has it
    /// already, as a `Close` of nothing that stands for its
    /// `ParseComplete`. `None` when nothing changes (no pooling, the
    /// unnamed statement, a malformed message).
    /// `drops_unnamed`: the server drops the unnamed statement before
    /// anything of this `Parse` can fail (first in its group, well formed).
    fn carry_parse(
        &mut self,
        whole: &[u8],
        replacement: Option<&[u8]>,
        drops_unnamed: bool,
    ) -> Option<Vec<u8>> {
        let pooling = self.pooling.as_mut()?;
        let body = match replacement {
            // Tag and length first.
            Some(message) => message.get(5..)?,
            None => whole,
        };
        let end = body.iter().position(|&c| c == 0)?;
        let (name, rest) = (server_key(&body[..end]), &body[end + 1..]);
        if name.is_empty() {
            pooling.unnamed_in_group = true;
            pooling.unnamed_here |= drops_unnamed;
            return None;
        }
        if pooling.named.full() && !pooling.named.contains_key(name) {
            // Too many to carry: the client keeps this connection.
            pooling.pinned.get_or_insert(PinCause::NamedStatement);
            return None;
        }
        let st = pooling.book.intern(rest);
        pooling.named.insert(name.into(), st.clone());
        if pooling.server.contains(st.id) {
            pooling.server.touch(st.id);
            self.completions.push_back(Completion::AsParseComplete);
            return Some(close_nothing());
        }
        let mut out = Vec::new();
        pooling.prepare_on_server(&st, &mut out, &mut self.completions, false);
        Some(out)
    }

    /// Transaction pooling: a `Bind` or `Describe` (whole body) naming a
    /// statement the gateway carries names the server's statement, which
    /// is prepared first when the lent connection lacks it.
    fn carry_named(&mut self, tag: u8, body: &[u8]) -> Option<Vec<u8>> {
        let pooling = self.pooling.as_mut()?;
        // Bind: portal, then the statement's name. Describe: 'S', then the
        // name ('P' names a portal).
        let before = match tag {
            b'B' => body.iter().position(|&c| c == 0)? + 1,
            b'D' if body.first() == Some(&b'S') => 1,
            _ => return None,
        };
        let rest = &body[before..];
        let end = rest.iter().position(|&c| c == 0)?;
        let name = &rest[..end];
        if name.is_empty() {
            if pooling.unnamed_here || pooling.unnamed_in_group {
                return None;
            }
            // The unnamed statement left by the connection's previous
            // client.
            pooling.unknown(name);
            return Some(unknown_statement(
                tag,
                &body[..before],
                &rest[end + 1..],
                &mut self.completions,
            ));
        }
        if pooling.own_on_server(server_key(name)) {
            return None;
        }
        let Some(st) = pooling.named.get(server_key(name)).cloned() else {
            // Not one of this client's statements: on a shared connection
            // the name could be another client's (the gateway's `_lk_…`
            // names, or any other), which this client must not run or
            // describe. A name that exists nowhere gets the server's own
            // "does not exist".
            pooling.unknown(name);
            return Some(unknown_statement(
                tag,
                &body[..before],
                &rest[end + 1..],
                &mut self.completions,
            ));
        };
        let mut out = Vec::new();
        if pooling.server.contains(st.id) {
            pooling.server.touch(st.id);
        } else {
            pooling.prepare_on_server(&st, &mut out, &mut self.completions, true);
        }
        // The Bind's own completion follows the injected ones.
        out.extend_from_slice(&renamed(
            tag,
            &body[..before],
            &st.server_name(),
            &rest[end + 1..],
        ));
        Some(out)
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
    let name = server_key(name);
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
