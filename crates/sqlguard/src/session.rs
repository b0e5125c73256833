//! What PostgreSQL SQL leaves behind in its session beyond its own
//! transaction, for transaction pooling: a server connection is shared by
//! many clients between their transactions, so a client that leaves state
//! on it (a setting, a listener, a lock, a temporary table) must keep that
//! connection for the rest of its session ("pinned"), and settings the
//! gateway carries from one connection to the next must be read back.
//!
//! Conservative by design: over-pinning costs a server connection, while
//! missing state would let one client's setting reach another client's
//! transaction. So words that could hide state (`set_config`, the session
//! advisory-lock functions) pin wherever they appear, even inside string
//! bodies, and a `DO` block pins whenever its body names anything that
//! could leave state. State changed by a function defined earlier cannot
//! be seen from the call; the documentation says so.

use latchkey_sqlnorm::{Dialect, Reading, Token, TokenKind, tokens, tokens_read};

use crate::tokens::{punct_is, word_is};

/// Why a client keeps its server connection for the rest of its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PinCause {
    /// `SET` (without `LOCAL`) or `RESET` of a setting the gateway does
    /// not carry, `set_config(…, false)`, `SET SESSION CHARACTERISTICS`.
    Setting,
    /// `SET ROLE`, `SET SESSION AUTHORIZATION`.
    Role,
    /// `LISTEN`.
    Listen,
    /// `pg_advisory_lock` and the other session-level advisory locks.
    AdvisoryLock,
    /// `CREATE TEMP TABLE` and other temporary objects.
    TemporaryObject,
    /// `DECLARE … WITH HOLD`: a cursor that outlives its transaction.
    HoldCursor,
    /// SQL-level `PREPARE`.
    Prepare,
    /// `LOAD` of a shared library.
    Load,
    /// A protocol-level named prepared statement the gateway does not
    /// carry between connections.
    NamedStatement,
    /// A `DO` block whose body may do any of the above.
    DoBlock,
    /// A `FunctionCall` message (a function named by OID, other than the
    /// large-object ones), which may do any of the above.
    FunctionCall,
}

impl PinCause {
    /// Every cause, in the order metrics list them.
    pub const ALL: [PinCause; 11] = [
        PinCause::Setting,
        PinCause::Role,
        PinCause::Listen,
        PinCause::AdvisoryLock,
        PinCause::TemporaryObject,
        PinCause::HoldCursor,
        PinCause::Prepare,
        PinCause::Load,
        PinCause::NamedStatement,
        PinCause::DoBlock,
        PinCause::FunctionCall,
    ];

    /// The metric label and the word in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PinCause::Setting => "set",
            PinCause::Role => "role",
            PinCause::Listen => "listen",
            PinCause::AdvisoryLock => "advisory_lock",
            PinCause::TemporaryObject => "temporary_object",
            PinCause::HoldCursor => "hold_cursor",
            PinCause::Prepare => "prepare",
            PinCause::Load => "load",
            PinCause::NamedStatement => "named_statement",
            PinCause::DoBlock => "do_block",
            PinCause::FunctionCall => "function_call",
        }
    }

    /// What the client is told when configuration refuses, rather than
    /// pins, session state.
    pub fn refusal(self) -> &'static str {
        match self {
            PinCause::Setting => {
                "SET of this parameter is not supported in transaction pooling mode (use SET LOCAL)"
            }
            PinCause::Role => "SET ROLE is not supported in transaction pooling mode",
            PinCause::Listen => "LISTEN is not supported in transaction pooling mode",
            PinCause::AdvisoryLock => {
                "session advisory locks are not supported in transaction pooling mode (use pg_advisory_xact_lock)"
            }
            PinCause::TemporaryObject => {
                "temporary objects are not supported in transaction pooling mode"
            }
            PinCause::HoldCursor => {
                "cursors WITH HOLD are not supported in transaction pooling mode"
            }
            PinCause::Prepare => {
                "SQL PREPARE is not supported in transaction pooling mode (use protocol-level prepared statements)"
            }
            PinCause::Load => "LOAD is not supported in transaction pooling mode",
            PinCause::NamedStatement => {
                "this prepared statement is not supported in transaction pooling mode"
            }
            PinCause::DoBlock => {
                "this DO block may change session state, which transaction pooling mode cannot carry"
            }
            PinCause::FunctionCall => {
                "a FunctionCall message may change session state, which transaction pooling mode cannot carry"
            }
        }
    }
}

/// A `DEALLOCATE` of prepared statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deallocation {
    /// `DEALLOCATE ALL`, or `DISCARD ALL`.
    All,
    /// `DEALLOCATE name`, alone in its message: the name as the server
    /// reads it (unquoted names in lower case).
    Name(String),
    /// A `DEALLOCATE` among other statements, or one that cannot be read.
    Some,
}

/// What one client message's SQL does to its session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionEffects {
    /// The first thing that pins the client to its server connection.
    pub pins: Option<PinCause>,
    /// It may change a carried setting (`SET`/`RESET` of one, `RESET ALL`,
    /// `DISCARD ALL`): the gateway reads the carried settings back when
    /// the transaction ends.
    pub carried_changed: bool,
    /// It drops prepared statements.
    pub deallocates: Option<Deallocation>,
    /// SQL `PREPARE`: the session's own statements on its connection.
    pub prepares: bool,
    /// SQL `EXECUTE` of a prepared statement (not PL/pgSQL's, inside a
    /// body).
    pub executes: bool,
}

impl SessionEffects {
    fn pin(&mut self, cause: PinCause) {
        self.pins.get_or_insert(cause);
    }
}

/// Words whose presence anywhere (strings included) means the message
/// must be read: every statement that pins or changes a carried setting
/// holds one. `temp` covers `temporary`; `advisory_lock` and
/// `set_config` are looked for inside string bodies too.
const NEEDLES: [&[u8]; 14] = [
    b"deallocate",
    b"execute",
    b"set",
    b"listen",
    b"advisory_lock",
    b"temp",
    b"hold",
    b"prepare",
    b"load",
    b"do",
    b"discard",
    b"role",
    b"u&",
    b"pg_temp",
];

/// The largest SQL [`session_effects`] reads statement by statement.
pub const READ_AT_MOST: usize = 256 * 1024;

/// What `sql` (a whole `Query` or `Parse`, possibly several statements)
/// leaves in its session. `carried(name)` says whether the gateway carries
/// the (lower-case) setting `name` from one server connection to the
/// next.
pub fn session_effects(sql: &str, carried: impl Fn(&str) -> bool) -> SessionEffects {
    static FINDER: std::sync::LazyLock<Option<aho_corasick::AhoCorasick>> =
        std::sync::LazyLock::new(|| {
            aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(NEEDLES)
                .ok()
        });
    let mut effects = SessionEffects::default();
    let bytes = sql.as_bytes();
    let found = match FINDER.as_ref() {
        Some(finder) => finder.is_match(bytes),
        None => NEEDLES.iter().any(|n| contains_ci(bytes, n)),
    };
    if !found {
        return effects;
    }
    if bytes.len() > READ_AT_MOST {
        // Too large to read token by token at a token's cost in memory:
        // whatever it does, the client keeps its connection, and what it
        // may have changed is read back.
        effects.pin(PinCause::Setting);
        effects.carried_changed = true;
        effects.deallocates = Some(Deallocation::Some);
        effects.prepares = contains_ci(bytes, b"prepare");
        effects.executes = contains_ci(bytes, b"execute");
        return effects;
    }
    // Unicode escapes (`U&"set\005fconfig"`, `U&'…'`) spell names and
    // text this reading cannot see through: whatever they hide, the
    // client keeps its connection.
    if contains_ci(bytes, b"u&\"") || contains_ci(bytes, b"u&'") {
        effects.pin(PinCause::Setting);
    }
    // Inside string bodies too: a function call can hide in `DO`,
    // `EXECUTE '…'` or a rule.
    if contains_ci(bytes, b"advisory_lock") && advisory_lock_in(bytes) {
        effects.pin(PinCause::AdvisoryLock);
    }
    let toks: Vec<Token<'_>> = tokens(sql, Dialect::Postgres).collect();
    // A table or anything else made in the session's own schema,
    // `pg_temp.name`, is temporary however it was created (`CREATE
    // TABLE pg_temp.t`, `SELECT … INTO pg_temp.t`).
    if toks.windows(2).any(|w| {
        let schema = ident_lower(&w[0]);
        punct_is(&w[1], ".") && (schema == "pg_temp" || schema.starts_with("pg_temp_"))
    }) {
        effects.pin(PinCause::TemporaryObject);
    }
    if contains_ci(bytes, b"set_config") && !set_config_calls_local(&toks, &carried, &mut effects) {
        effects.pin(PinCause::Setting);
    }
    let statements: Vec<&[Token<'_>]> = toks
        .split(|t| t.kind == TokenKind::Semi)
        .filter(|s| !s.is_empty())
        .collect();
    for stmt in &statements {
        statement_effects(stmt, &carried, &mut effects);
    }
    if statements.len() > 1 && matches!(effects.deallocates, Some(Deallocation::Name(_))) {
        effects.deallocates = Some(Deallocation::Some);
    }
    effects
}

/// Which prepared statements a message's SQL may make, drop or replace,
/// for the audit, which names the statement a later `Bind` runs by what
/// the client prepared under the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatementNames {
    Untouched,
    /// `PREPARE name` or `DEALLOCATE name`: the names as the server reads
    /// them (unquoted names in lower case).
    Names(Vec<String>),
    /// `DEALLOCATE ALL`, `DISCARD ALL`, a `DEALLOCATE` that cannot be
    /// read, or a `DO` block whose body mentions any of these.
    All,
}

/// The prepared statements `sql` (a whole `Query` or `Parse`, possibly
/// several statements) may make or drop. Cheap when it names none: one
/// case-insensitive scan. A function defined earlier that prepares or
/// deallocates cannot be seen from its call.
pub fn statement_names(sql: &str) -> StatementNames {
    const WORDS: [&[u8]; 3] = [b"prepare", b"deallocate", b"discard"];
    let bytes = sql.as_bytes();
    // One pass, for every simple query an audited session sends: only
    // where a `p` or `d` starts is a word compared.
    let mentioned = bytes.iter().enumerate().any(|(i, &c)| {
        matches!(c | 0x20, b'p' | b'd')
            && WORDS.iter().any(|w| {
                bytes
                    .get(i..i + w.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(w))
            })
    });
    if !mentioned {
        return StatementNames::Untouched;
    }
    // A backslash in a string ends it or not by a setting the session
    // can change (`standard_conforming_strings`): every reading counts.
    let mut names = Vec::new();
    for &reading in Reading::all(Dialect::Postgres) {
        if !names_read(sql, reading, &mut names) {
            return StatementNames::All;
        }
    }
    if names.is_empty() {
        StatementNames::Untouched
    } else {
        names.sort_unstable();
        names.dedup();
        StatementNames::Names(names)
    }
}

/// [`statement_names`] under one reading: adds the names to `names`, or
/// false for all. Token by token, keeping only each statement's first
/// few: a message can be as large as the gateway lets one be.
fn names_read(sql: &str, reading: Reading, names: &mut Vec<String>) -> bool {
    const WORDS: [&[u8]; 3] = [b"prepare", b"deallocate", b"discard"];
    // The first tokens of the statement being read (after any `(`), and
    // how many it has.
    let mut head: [Option<Token<'_>>; 4] = [None; 4];
    let mut len = 0usize;
    let mut do_mentions = false;
    let mut toks = tokens_read(sql, Dialect::Postgres, reading);
    loop {
        let tok = toks.next();
        match tok {
            Some(t) if t.kind == TokenKind::Unterminated => return false,
            Some(t) if t.kind != TokenKind::Semi => {
                if len == 0 && punct_is(&t, "(") {
                    continue;
                }
                if let Some(slot) = head.get_mut(len) {
                    *slot = Some(t);
                }
                len += 1;
                do_mentions |= head[0].is_some_and(|h| word_is(&h, "DO"))
                    && t.kind == TokenKind::Literal
                    && WORDS.iter().any(|w| contains_ci(t.text.as_bytes(), w));
                continue;
            }
            _ => {}
        }
        // A statement ended.
        let word = |i: usize, w: &str| {
            head.get(i)
                .copied()
                .flatten()
                .is_some_and(|t| word_is(&t, w))
        };
        let name_at = |i: usize| {
            head.get(i)
                .copied()
                .flatten()
                .filter(|t| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent))
                .map(|t| ident_lower(&t))
                .filter(|n| !n.is_empty())
        };
        if word(0, "PREPARE") && !word(1, "TRANSACTION") {
            match name_at(1) {
                Some(name) => names.push(name),
                None => return false,
            }
        } else if word(0, "DEALLOCATE") {
            let at = if word(1, "PREPARE") { 2 } else { 1 };
            match (len == at + 1, name_at(at)) {
                (true, Some(name)) if !word(at, "ALL") => names.push(name),
                _ => return false,
            }
        } else if (word(0, "DISCARD") && word(1, "ALL")) || do_mentions {
            return false;
        }
        if tok.is_none() {
            return true;
        }
        head = [None; 4];
        len = 0;
        do_mentions = false;
    }
}

fn statement_effects(
    stmt: &[Token<'_>],
    carried: &impl Fn(&str) -> bool,
    effects: &mut SessionEffects,
) {
    let Some(first) = stmt.iter().position(|t| !punct_is(t, "(")) else {
        return;
    };
    let stmt = &stmt[first..];
    let word = |i: usize, w: &str| stmt.get(i).is_some_and(|t| word_is(t, w));
    if word(0, "EXPLAIN") {
        // `EXPLAIN ANALYZE` runs its statement: judged as that statement.
        let mut at = 1;
        if stmt.get(1).is_some_and(|t| punct_is(t, "(")) {
            let close = stmt.iter().position(|t| punct_is(t, ")"));
            at = close.map_or(stmt.len(), |c| c + 1);
        } else {
            while ["ANALYZE", "ANALYSE", "VERBOSE"]
                .iter()
                .any(|w| word(at, w))
            {
                at += 1;
            }
        }
        statement_effects(&stmt[at.min(stmt.len())..], carried, effects);
        return;
    }
    // `CREATE TABLE … AS EXECUTE name` runs a prepared statement as
    // `EXECUTE` does.
    if stmt
        .windows(2)
        .any(|w| word_is(&w[0], "AS") && word_is(&w[1], "EXECUTE"))
    {
        effects.executes = true;
    }
    if stmt.iter().any(|t| t.kind == TokenKind::Unterminated) {
        // Cut short or unreadable: the server may read more than the
        // lexer could.
        if !word(0, "SELECT") {
            effects.pin(PinCause::Setting);
        }
        return;
    }
    if word(0, "SET") {
        set_effects(&stmt[1..], carried, effects);
    } else if word(0, "RESET") {
        if word(1, "ALL") {
            effects.carried_changed = true;
        } else if word(1, "ROLE") || word(1, "SESSION") {
            effects.pin(PinCause::Role);
        } else {
            setting_effects(&stmt[1..], carried, effects);
        }
    } else if word(0, "DISCARD") {
        // Temporary objects, plans and sequences go with the connection's
        // other state; settings are read back.
        effects.carried_changed = true;
        if word(1, "ALL") {
            effects.deallocates = Some(Deallocation::All);
        }
    } else if word(0, "DEALLOCATE") {
        let at = if word(1, "PREPARE") { 2 } else { 1 };
        let dealloc = match stmt.get(at..) {
            Some([all]) if word_is(all, "ALL") => Deallocation::All,
            Some([name]) if matches!(name.kind, TokenKind::Word | TokenKind::QuotedIdent) => {
                Deallocation::Name(ident_lower(name))
            }
            _ => Deallocation::Some,
        };
        effects.deallocates = match (effects.deallocates.take(), dealloc) {
            (Some(Deallocation::All), _) | (_, Deallocation::All) => Some(Deallocation::All),
            (None, d) => Some(d),
            _ => Some(Deallocation::Some),
        };
    } else if word(0, "LISTEN") {
        effects.pin(PinCause::Listen);
    } else if word(0, "PREPARE") && !word(1, "TRANSACTION") {
        effects.pin(PinCause::Prepare);
        effects.prepares = true;
    } else if word(0, "EXECUTE") {
        effects.executes = true;
    } else if word(0, "LOAD") {
        effects.pin(PinCause::Load);
    } else if word(0, "DECLARE") {
        if stmt
            .windows(2)
            .any(|w| word_is(&w[0], "WITH") && word_is(&w[1], "HOLD"))
        {
            effects.pin(PinCause::HoldCursor);
        }
    } else if word(0, "DO") {
        do_effects(stmt, effects);
    }
    if (word(0, "CREATE") || word(0, "SELECT") || word(0, "WITH"))
        && stmt
            .iter()
            .any(|t| word_is(t, "TEMP") || word_is(t, "TEMPORARY"))
    {
        effects.pin(PinCause::TemporaryObject);
    }
}

/// After `SET`: `LOCAL` and `TRANSACTION` last one transaction; `ROLE`
/// and `SESSION AUTHORIZATION` change who runs the next client's
/// statements, so they always pin.
fn set_effects(rest: &[Token<'_>], carried: &impl Fn(&str) -> bool, effects: &mut SessionEffects) {
    let word = |i: usize, w: &str| rest.get(i).is_some_and(|t| word_is(t, w));
    if word(0, "LOCAL") || word(0, "TRANSACTION") {
        return;
    }
    let rest = if word(0, "SESSION") {
        if word(1, "CHARACTERISTICS") {
            effects.pin(PinCause::Setting);
            return;
        }
        if word(1, "AUTHORIZATION") {
            effects.pin(PinCause::Role);
            return;
        }
        &rest[1..]
    } else {
        rest
    };
    let word = |i: usize, w: &str| rest.get(i).is_some_and(|t| word_is(t, w));
    if word(0, "ROLE") {
        effects.pin(PinCause::Role);
    } else if word(0, "TIME") && word(1, "ZONE") {
        if carried("timezone") {
            effects.carried_changed = true;
        } else {
            effects.pin(PinCause::Setting);
        }
    } else {
        setting_effects(rest, carried, effects);
    }
}

/// `name [.name]` of a setting, then whatever follows.
fn setting_effects(
    rest: &[Token<'_>],
    carried: &impl Fn(&str) -> bool,
    effects: &mut SessionEffects,
) {
    let name = match rest {
        [first, dot, second, ..] if punct_is(dot, ".") => {
            format!("{}.{}", ident_lower(first), ident_lower(second))
        }
        [first, ..] => ident_lower(first),
        [] => String::new(),
    };
    if name == "role" || name == "session_authorization" {
        effects.pin(PinCause::Role);
    } else if !name.is_empty() && carried(&name) {
        effects.carried_changed = true;
    } else {
        effects.pin(PinCause::Setting);
    }
}

fn ident_lower(t: &Token<'_>) -> String {
    match t.kind {
        TokenKind::Word => t.text.to_ascii_lowercase(),
        // A quoted name keeps its case; an unreadable one matches nothing
        // carried, so it pins.
        TokenKind::QuotedIdent => crate::tokens::ident(t)
            .map(|n| n.into_owned())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// Whether every `set_config` the SQL names is a call the lexer can read
/// whose effect ends with the transaction (third argument `true`) or sets
/// a carried setting (then `carried_changed`). A mention inside a string
/// body is not readable: false.
fn set_config_calls_local(
    toks: &[Token<'_>],
    carried: &impl Fn(&str) -> bool,
    effects: &mut SessionEffects,
) -> bool {
    let mut seen = 0usize;
    for (i, t) in toks.iter().enumerate() {
        if !(t.kind == TokenKind::Word && t.text.eq_ignore_ascii_case("set_config")) {
            if t.text.to_ascii_lowercase().contains("set_config") {
                // In a literal or a quoted name: unreadable.
                return false;
            }
            continue;
        }
        seen += 1;
        let Some(args) = call_arguments(&toks[i + 1..]) else {
            return false;
        };
        match args.as_slice() {
            [_, _, [local]] if word_is(local, "true") => {}
            [name, _, _] => match name {
                [lit] if lit.kind == TokenKind::Literal && lit.text.starts_with('\'') => {
                    let setting = lit.text.trim_matches('\'').to_ascii_lowercase();
                    if setting == "role" || setting == "session_authorization" {
                        effects.pin(PinCause::Role);
                    } else if carried(&setting) {
                        effects.carried_changed = true;
                    } else {
                        return false;
                    }
                }
                _ => return false,
            },
            _ => return false,
        }
    }
    seen > 0
}

/// The arguments of a call, split at top-level commas, when the tokens
/// start with its `(`.
fn call_arguments<'t, 'a>(toks: &'t [Token<'a>]) -> Option<Vec<&'t [Token<'a>]>> {
    if !toks.first().is_some_and(|t| punct_is(t, "(")) {
        return None;
    }
    let mut depth = 0usize;
    let mut args = Vec::new();
    let mut start = 1;
    for (i, t) in toks.iter().enumerate() {
        if punct_is(t, "(") {
            depth += 1;
        } else if punct_is(t, ")") {
            depth -= 1;
            if depth == 0 {
                args.push(&toks[start..i]);
                return Some(args);
            }
        } else if depth == 1 && punct_is(t, ",") {
            args.push(&toks[start..i]);
            start = i + 1;
        }
    }
    None
}

/// A `DO` block's body can run anything, dynamic SQL included: it pins
/// when its text names anything that could leave state.
fn do_effects(stmt: &[Token<'_>], effects: &mut SessionEffects) {
    const RISKY: [&[u8]; 9] = [
        b"set",
        b"listen",
        b"temp",
        b"hold",
        b"prepare",
        b"load",
        b"execute",
        b"role",
        b"authorization",
    ];
    let risky = stmt
        .iter()
        .filter(|t| t.kind == TokenKind::Literal)
        .any(|t| RISKY.iter().any(|w| contains_ci(t.text.as_bytes(), w)));
    if risky {
        effects.pin(PinCause::DoBlock);
    }
}

/// `pg_advisory_lock`, `pg_advisory_lock_shared`, `pg_try_advisory_lock`
/// and `pg_try_advisory_lock_shared`: every mention of `advisory_lock`
/// that is not part of an `_xact_` name (`pg_advisory_xact_lock` holds
/// until the transaction ends).
fn advisory_lock_in(sql: &[u8]) -> bool {
    const WORD: &[u8] = b"advisory_lock";
    sql.windows(WORD.len())
        .enumerate()
        .any(|(i, w)| w.eq_ignore_ascii_case(WORD) && !ends_with_ci(&sql[..i], b"xact_"))
}

fn ends_with_ci(hay: &[u8], suffix: &[u8]) -> bool {
    hay.len() >= suffix.len() && hay[hay.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried(name: &str) -> bool {
        matches!(name, "application_name" | "timezone" | "search_path")
    }

    fn effects(sql: &str) -> SessionEffects {
        session_effects(sql, carried)
    }

    fn pins(sql: &str) -> Option<PinCause> {
        effects(sql).pins
    }

    #[test]
    fn plain_statements_leave_nothing() {
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1",
            "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 2",
            "BEGIN; SET LOCAL statement_timeout = 5; COMMIT",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SELECT pg_advisory_xact_lock(1)",
            "SELECT set_config('request.jwt', '{}', true)",
            "DECLARE c CURSOR FOR SELECT 1",
            "PREPARE TRANSACTION 'x'",
            "SELECT 'set role admin'",
            "DO $$BEGIN PERFORM 1; END$$",
            "",
        ] {
            assert_eq!(effects(sql), SessionEffects::default(), "{sql}");
        }
    }

    #[test]
    fn what_the_red_team_hid_pins_too() {
        for (sql, cause) in [
            (
                r#"SELECT U&"set\005fconfig"('role','other',false)"#,
                PinCause::Setting,
            ),
            (
                r#"SELECT u&"pg_advisory\005flock"(4242)"#,
                PinCause::Setting,
            ),
            (r"SELECT U&'\0073et'", PinCause::Setting),
            (
                "CREATE TABLE pg_temp.stolen AS SELECT 'private'",
                PinCause::TemporaryObject,
            ),
            ("SELECT 'x' INTO pg_temp.sel", PinCause::TemporaryObject),
            (
                r#"CREATE TABLE "pg_temp".accounts (n int)"#,
                PinCause::TemporaryObject,
            ),
            (
                "EXPLAIN ANALYZE CREATE TEMP TABLE t2 AS SELECT 1",
                PinCause::TemporaryObject,
            ),
            (
                "EXPLAIN (ANALYZE, BUFFERS) CREATE TEMPORARY TABLE t3 AS SELECT 1",
                PinCause::TemporaryObject,
            ),
            ("EXPLAIN ANALYZE LISTEN x", PinCause::Listen),
        ] {
            assert_eq!(pins(sql), Some(cause), "{sql}");
        }
        // Another client's protocol statement run through EXPLAIN or
        // CREATE TABLE AS is an EXECUTE too; GRANT EXECUTE is not.
        for sql in [
            "EXPLAIN ANALYZE EXECUTE _lk_1(1)",
            "CREATE TABLE pg_temp.z AS EXECUTE _lk_1(1)",
            "create table z as execute _lk_1",
        ] {
            assert!(effects(sql).executes, "{sql}");
        }
        assert!(!effects("GRANT EXECUTE ON FUNCTION f() TO app").executes);
        assert_eq!(pins("SELECT temp_c FROM pg_temperatures"), None);
        assert_eq!(pins("SELECT pg_temperatures.c FROM pg_temperatures"), None);
        assert_eq!(
            pins("SELECT * FROM pg_temp_3.t"),
            Some(PinCause::TemporaryObject)
        );
    }

    #[test]
    fn each_kind_of_session_state_pins() {
        for (sql, cause) in [
            ("SET statement_timeout = 5", PinCause::Setting),
            ("set session work_mem to '1MB'", PinCause::Setting),
            ("RESET work_mem", PinCause::Setting),
            (
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                PinCause::Setting,
            ),
            (
                "SELECT set_config('work_mem', '1MB', false)",
                PinCause::Setting,
            ),
            (
                "SELECT set_config('work_mem', '1MB', $1)",
                PinCause::Setting,
            ),
            ("SET ROLE admin", PinCause::Role),
            ("SET SESSION AUTHORIZATION bob", PinCause::Role),
            ("set \"role\" = 'admin'", PinCause::Role),
            ("SELECT set_config('role', 'admin', false)", PinCause::Role),
            ("RESET ROLE", PinCause::Role),
            ("LISTEN jobs", PinCause::Listen),
            ("SELECT pg_advisory_lock(42)", PinCause::AdvisoryLock),
            (
                "select PG_TRY_ADVISORY_LOCK_SHARED(1, 2)",
                PinCause::AdvisoryLock,
            ),
            ("CREATE TEMP TABLE t (a int)", PinCause::TemporaryObject),
            (
                "create global temporary table t (a int)",
                PinCause::TemporaryObject,
            ),
            ("SELECT * INTO TEMP t FROM x", PinCause::TemporaryObject),
            (
                "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
                PinCause::HoldCursor,
            ),
            ("PREPARE q AS SELECT 1", PinCause::Prepare),
            ("LOAD 'auto_explain'", PinCause::Load),
            (
                "DO $$BEGIN EXECUTE 'SET ROLE admin'; END$$",
                PinCause::DoBlock,
            ),
            ("SELECT 1; LISTEN x", PinCause::Listen),
            ("/* hi */ (SELECT 1); SET work_mem = 1", PinCause::Setting),
        ] {
            assert_eq!(pins(sql), Some(cause), "{sql}");
        }
    }

    #[test]
    fn hidden_state_changes_pin_conservatively() {
        // Inside a string body the call cannot be read: it pins.
        assert_eq!(
            pins("SELECT run('SELECT set_config(''role'', ''x'', true)')"),
            Some(PinCause::Setting)
        );
        assert_eq!(
            pins("DO $$BEGIN PERFORM pg_advisory_lock(1); END$$"),
            Some(PinCause::AdvisoryLock)
        );
        // Cut short (an unterminated string): the server may read more.
        assert_eq!(pins("UPDATE t SET a = 'x"), Some(PinCause::Setting));
    }

    #[test]
    fn sql_prepare_and_execute_are_seen() {
        let e = effects("PREPARE q AS SELECT 1; EXECUTE q");
        assert!(e.prepares && e.executes);
        assert!(effects("execute _lk_1").executes);
        assert!(!effects("DO $$BEGIN EXECUTE 'SELECT 1'; END$$").executes);
        assert!(!effects("SELECT 'execute'").executes);
    }

    #[test]
    fn deallocations_are_read() {
        assert_eq!(
            effects("DEALLOCATE ALL").deallocates,
            Some(Deallocation::All)
        );
        assert_eq!(effects("discard all").deallocates, Some(Deallocation::All));
        assert_eq!(
            effects("DEALLOCATE PREPARE _PG3_1").deallocates,
            Some(Deallocation::Name("_pg3_1".into()))
        );
        assert_eq!(
            effects("DEALLOCATE \"S_1\"").deallocates,
            Some(Deallocation::Name("S_1".into()))
        );
        assert_eq!(
            effects("DEALLOCATE a; SELECT 1").deallocates,
            Some(Deallocation::Some)
        );
        assert_eq!(effects("SELECT 1").deallocates, None);
    }

    #[test]
    fn sql_too_large_to_read_pins() {
        let large = format!("SELECT 1{}; SET work_mem = '1MB'", ";".repeat(READ_AT_MOST));
        let e = effects(&large);
        assert_eq!(e.pins, Some(PinCause::Setting));
        assert!(e.carried_changed && e.deallocates.is_some());
        let large = format!("SELECT 1{}", " ".repeat(READ_AT_MOST));
        assert_eq!(effects(&large), SessionEffects::default());
    }

    #[test]
    fn statement_names_made_or_dropped_by_sql_are_read() {
        use super::{StatementNames, statement_names};
        let names = |v: &[&str]| StatementNames::Names(v.iter().map(|s| s.to_string()).collect());
        for (sql, expected) in [
            ("SELECT 1", StatementNames::Untouched),
            ("SELECT 'prepare dinner'", StatementNames::Untouched),
            ("PREPARE TRANSACTION 'x'", StatementNames::Untouched),
            ("PREPARE S4 AS DELETE FROM victim", names(&["s4"])),
            ("prepare \"S4\" (int) AS SELECT $1", names(&["S4"])),
            (
                "DEALLOCATE s4; PREPARE s5 AS SELECT 1",
                names(&["s4", "s5"]),
            ),
            ("DEALLOCATE PREPARE s4", names(&["s4"])),
            ("DEALLOCATE ALL", StatementNames::All),
            ("DEALLOCATE", StatementNames::All),
            ("discard all", StatementNames::All),
            ("DISCARD PLANS", StatementNames::Untouched),
            (
                "DO $$BEGIN EXECUTE 'DEALLOCATE s4'; END$$",
                StatementNames::All,
            ),
            ("SELECT 1; PREPARE s4 AS SELECT 'x", StatementNames::All),
            // Hidden in a string unless standard_conforming_strings is off.
            (
                "SELECT 'a\\''; DEALLOCATE s4; SELECT 'z' --'",
                names(&["s4"]),
            ),
        ] {
            assert_eq!(statement_names(sql), expected, "{sql}");
        }
    }

    #[test]
    fn carried_settings_are_read_back_not_pinned() {
        for sql in [
            "SET application_name = 'web'",
            "SET SESSION search_path TO app, public",
            "SET TIME ZONE 'UTC'",
            "RESET search_path",
            "RESET ALL",
            "DISCARD ALL",
            "SELECT set_config('search_path', 'app', false)",
        ] {
            assert_eq!(
                effects(sql),
                SessionEffects {
                    pins: None,
                    carried_changed: true,
                    deallocates: (sql == "DISCARD ALL").then_some(Deallocation::All),
                    ..Default::default()
                },
                "{sql}"
            );
        }
        assert_eq!(
            session_effects("SET TIME ZONE 'UTC'", |_| false).pins,
            Some(PinCause::Setting)
        );
    }
}
