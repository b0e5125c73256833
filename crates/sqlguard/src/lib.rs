//! Which client statements a gateway session may not send on, as a pure
//! library shared by both gateways (`latchkey-pg-stream` and
//! `latchkey-my-stream`).
//!
//! - **Password and authentication changes.** A principal that could run
//!   `ALTER ROLE app PASSWORD '...'` (PostgreSQL) or `SET PASSWORD` /
//!   `ALTER USER ... IDENTIFIED BY` (MySQL, MariaDB) through the gateway
//!   could then log in to the server directly, past IAM, the audit trail
//!   and revocation, and every gateway login for that user would fail.
//!   Refused unless the session's policy allows
//!   `latchkey:ChangeDatabasePassword` ([`Rules::allow_password_changes`]).
//!   The same permission covers role and account management (PostgreSQL
//!   `ALTER|CREATE|DROP ROLE|USER|GROUP` and role membership; MySQL
//!   `GRANT`, `REVOKE`, `CREATE|DROP ROLE`, `DROP|RENAME USER`, `SET
//!   DEFAULT ROLE`), writes to system catalogues (any `mysql.*` table,
//!   PostgreSQL `pg_catalog.*` and unqualified `pg_*` targets,
//!   `pg_authid`), `ALTER SYSTEM`, and PostgreSQL server files and reload
//!   (`COPY ... TO|FROM 'file'`, `lo_import`/`lo_export`, `pg_file_*`,
//!   `pg_read_file`, `pg_read_binary_file`, `pg_reload_conf`) and their
//!   MySQL and MariaDB siblings (`SELECT ... INTO OUTFILE|DUMPFILE`,
//!   `LOAD DATA|XML INFILE` without `LOCAL`, `LOAD_FILE()`, `INSTALL|
//!   UNINSTALL PLUGIN|SONAME`, `CREATE FUNCTION ... SONAME`). MySQL's
//!   `SET PASSWORD` is refused wherever a statement may start,
//!   routine, trigger and event bodies included; a
//!   `SET` is taken for a column list only after `UPDATE`, `INSERT`,
//!   `REPLACE` or `LOAD` with nothing between where a statement could
//!   start.
//! - **Dynamic SQL.** SQL built at run time cannot be checked by a lexer:
//!   PL/pgSQL `EXECUTE` in `DO` blocks and routine bodies, functions
//!   that run an SQL string (`query_to_xml*`, `ts_stat`, `ts_rewrite`,
//!   `dblink*`, `crosstab*`...), MySQL `EXECUTE IMMEDIATE`, `PREPARE name
//!   FROM` anything but one string literal, MariaDB's
//!   `sys.execute_prepared_stmt` and kin. Refused unless the policy allows
//!   `latchkey:ExecuteDynamicSql` ([`Rules::allow_dynamic_sql`]); with it,
//!   literals are still checked, expressions are not.
//! - **`pg_terminate_backend` / `pg_cancel_backend`, MySQL `SHUTDOWN`.**
//!   Gateway sessions share upstream roles; always refused (a client cancels through the
//!   protocol's CancelRequest, which the gateway scopes).
//! - **MySQL `KILL`.** Thread ids a client sees are the gateway's, so a
//!   `KILL` must be mapped by the gateway; one it cannot map (hidden in a
//!   multi-statement, prepared, padded with comments into a form the
//!   gateway does not take) would reach the server with a raw thread id,
//!   which may be another principal's session.
//!
//! The SQL is read with `latchkey-sqlnorm`'s lexer, so comments (and
//! MySQL's `/*! ... */` executable comments, whose content is SQL) and odd
//! spacing or case change nothing. Sessions can change how the server
//! reads quotes (`standard_conforming_strings`, `NO_BACKSLASH_ESCAPES`,
//! `ANSI_QUOTES`), so every reading is checked and any refusal wins.
//! Escapes are decoded (`E'\x41'`, `U&"\0041"`, MySQL's `\A`), adjacent
//! literals joined as the server joins them; what cannot be decoded, or
//! nests more than six strings deep, is refused. Multi-byte client
//! character sets (GBK, Big5, SJIS) can hide a backslash or backtick
//! inside a character; SQL where that could happen is refused when it
//! names anything this crate looks for.
//!
//! SQL written in strings that run is checked as SQL: `DO $$ ... $$`,
//! `CREATE FUNCTION ... AS '...'` and every literal inside those bodies
//! (`EXECUTE '...'`), `PREPARE s FROM '...'`, `EXECUTE IMMEDIATE '...'`.
//! This is a lexer, not the server: the robust defence against a changed
//! password is upstream authentication that needs no password (`--auth
//! cert`) with `pg_hba.conf` admitting the database user only from the
//! gateway (on MariaDB, an account for the gateway's host only).
//!
//! This file holds the public types and the checker that reads each
//! statement under every reading; `tokens` has the token and literal
//! helpers, `classify` the rules as the checker asks them, and
//! `postgres` and `mysql` the rules of each dialect.

pub use latchkey_sqlnorm::Dialect;
use latchkey_sqlnorm::{Reading, Token, TokenKind, tokens_read};

mod classify;
mod mysql;
mod postgres;
mod session;
mod tokens;

pub use session::{
    Deallocation, PinCause, SessionEffects, StatementNames, session_effects, statement_names,
};

use classify::{
    changes_accounts, changes_password, plainly_harmless, runs_dynamic_sql, runs_string_body,
};
use mysql::{my_server_files, parse_kill, shuts_down, versioned_comment};
use postgres::{server_files, signals_backend};
use tokens::{has_word, string_bodies};

/// The policy action a session needs, on its `rds-db:connect` resource,
/// for password and authentication changes to go through.
pub const CHANGE_PASSWORD_ACTION: &str = "latchkey:ChangeDatabasePassword";

/// The policy action a session needs, on its `rds-db:connect` resource,
/// for SQL built at run time: PL/pgSQL `EXECUTE` (in `DO` blocks and
/// function or procedure bodies), `dblink`, MySQL `EXECUTE IMMEDIATE` and
/// `PREPARE ... FROM` anything but one string literal.
pub const DYNAMIC_SQL_ACTION: &str = "latchkey:ExecuteDynamicSql";

/// How deep string bodies holding SQL are followed (`DO` in `EXECUTE` in
/// `DO`...); SQL nested deeper is refused unless nothing could be.
const MAX_DEPTH: usize = 6;

/// What a session may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Password and authentication changes go through (the policy allows
    /// `latchkey:ChangeDatabasePassword`): also writes to the account
    /// catalogues (`mysql.user`, `mysql.global_priv`, `pg_authid`),
    /// PostgreSQL's `ALTER SYSTEM`, and server-side files and shared
    /// libraries on both engines.
    pub allow_password_changes: bool,
    /// SQL built at run time goes through (the policy allows
    /// `latchkey:ExecuteDynamicSql`); what it builds cannot be checked.
    pub allow_dynamic_sql: bool,
}

/// What to do with a client's SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// A lone `KILL` the gateway maps to the server's thread id (MySQL).
    Kill(Kill),
    /// Refused: answer with a permission error, send nothing upstream.
    Refuse(Refusal),
}

/// Why SQL is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It changes a password or how an account logs in, or creates one
    /// that could log in directly.
    PasswordChange,
    /// A MySQL `KILL` the gateway cannot map to one of its sessions.
    Kill,
    /// SQL built at run time, which no lexer can check
    /// ([`DYNAMIC_SQL_ACTION`]).
    DynamicSql,
    /// PostgreSQL `pg_terminate_backend` / `pg_cancel_backend`: gateway
    /// sessions share upstream roles, so these could end another
    /// principal's session. Always refused; a client cancels its own
    /// query with the protocol's CancelRequest, which the gateway scopes.
    SignalBackend,
}

/// `HARD` or `SOFT` (MariaDB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillForce {
    Hard,
    Soft,
}

/// What a `KILL` ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillScope {
    Connection,
    Query,
}

/// `KILL [HARD | SOFT] [CONNECTION | QUERY] id`, the only `KILL` the
/// gateway passes on (with the id replaced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kill {
    pub force: Option<KillForce>,
    pub scope: Option<KillScope>,
    /// The connection id as the client gave it (the gateway's).
    pub id: u64,
}

impl Kill {
    /// Only the running statement is to be killed, not the connection.
    pub fn query_only(&self) -> bool {
        self.scope == Some(KillScope::Query)
    }

    /// The statement with another id (the server's thread id).
    pub fn statement(&self, thread_id: u32) -> String {
        let force = match self.force {
            Some(KillForce::Hard) => " HARD",
            Some(KillForce::Soft) => " SOFT",
            None => "",
        };
        let scope = match self.scope {
            Some(KillScope::Connection) => " CONNECTION",
            Some(KillScope::Query) => " QUERY",
            None => "",
        };
        format!("KILL{force}{scope} {thread_id}")
    }
}

/// Classifies a client's SQL (a whole `Query`, `Parse`, `COM_QUERY` or
/// `COM_STMT_PREPARE`, possibly several statements). `complete` is false
/// when only a prefix is known: the statement cut short is then refused
/// unless it is plainly a query or data change.
pub fn check(sql: &[u8], dialect: Dialect, rules: Rules, complete: bool) -> Verdict {
    let needles = Needles::of(dialect, rules);
    if complete && !needles.any_in(sql) {
        return Verdict::Allow;
    }
    let text = String::from_utf8_lossy(sql);
    let scope = Scope {
        dialect,
        rules,
        depth: 0,
        in_body: false,
    };
    let verdict = check_text(&text, scope, complete);
    if verdict == Verdict::Allow && complete && hidden_quote(sql, dialect) {
        // A multi-byte client character set may end a literal elsewhere
        // than the lexer thinks: anything that names what is refused is.
        return Verdict::Refuse(needles.refusal(sql));
    }
    verdict
}

/// Where SQL text is being read.
#[derive(Clone, Copy)]
struct Scope {
    dialect: Dialect,
    rules: Rules,
    /// How many string bodies deep.
    depth: usize,
    /// The text is a PostgreSQL routine body (`DO`, `CREATE FUNCTION`):
    /// its `EXECUTE` runs a string, and each of its string literals may be
    /// SQL that runs.
    in_body: bool,
}

impl Scope {
    /// What SQL that cannot be read (nested too deep, escapes the lexer
    /// does not decode) gets: refused if anything could be.
    fn unreadable(self) -> Verdict {
        if !self.rules.allow_password_changes {
            Verdict::Refuse(Refusal::PasswordChange)
        } else if !self.rules.allow_dynamic_sql {
            Verdict::Refuse(Refusal::DynamicSql)
        } else {
            // `pg_terminate_backend`, MySQL `SHUTDOWN`: refused whatever
            // the policy.
            Verdict::Refuse(Refusal::SignalBackend)
        }
    }
}

/// Words that must appear, in any case, for SQL to be refused or
/// intercepted (a quick test that spares most statements the lexer).
struct Needles {
    password: &'static [&'static [u8]],
    dynamic: &'static [&'static [u8]],
    /// Refused whatever the policy (or intercepted, for `kill`).
    always: &'static [&'static [u8]],
}

impl Needles {
    fn of(dialect: Dialect, rules: Rules) -> Self {
        let password: &'static [&'static [u8]] = match (rules.allow_password_changes, dialect) {
            (true, _) => &[],
            // `pg_` for catalogue writes and the file and reload
            // functions (`pg_read_file`, `pg_reload_conf`...).
            (false, Dialect::Postgres) => &[
                b"password",
                b"pg_",
                b"system",
                b"role",
                b"user",
                b"group",
                b"grant",
                b"revoke",
                b"copy",
                b"lo_import",
                b"lo_export",
            ],
            (false, Dialect::MySql) => &[
                b"password",
                b"identified",
                b"user",
                b"role",
                b"grant",
                b"revoke",
                b"mysql",
                b"_priv",
                b"proc",
                b"event",
                b"db",
                b"func",
                b"plugin",
                b"servers",
                b"roles_mapping",
                // Server files and shared libraries (`install` covers
                // `uninstall`).
                b"outfile",
                b"dumpfile",
                b"infile",
                b"load_file",
                b"soname",
                b"install",
            ],
        };
        let dynamic: &'static [&'static [u8]] = match (rules.allow_dynamic_sql, dialect) {
            (true, _) => &[],
            (false, Dialect::Postgres) => &[
                b"execute",
                b"dblink",
                b"spi_",
                b"program",
                b"query_to_xml",
                b"ts_stat",
                b"ts_rewrite",
                b"crosstab",
                b"connectby",
                b"xpath_table",
            ],
            (false, Dialect::MySql) => &[
                b"execute",
                b"prepare",
                b"statement_performance_analyzer",
                b"table_exists",
                b"create_synonym_db",
                b"diagnostics",
                b"ps_trace_",
            ],
        };
        let always: &'static [&'static [u8]] = match dialect {
            // `U&` names and strings can spell anything with escapes.
            Dialect::Postgres => &[b"_backend", b"u&"],
            Dialect::MySql => &[b"kill", b"shutdown", b"restart"],
        };
        Self {
            password,
            dynamic,
            always,
        }
    }

    fn any_in(&self, sql: &[u8]) -> bool {
        [self.password, self.dynamic, self.always]
            .iter()
            .any(|set| set.iter().any(|n| contains_ci(sql, n)))
            // Escapes (`P\ASSWORD`, `E'\x41'`) and literals the server
            // joins (`'PASS' 'WORD'`) can spell any word.
            || sql.contains(&b'\\')
            || adjacent_quotes(sql)
    }

    fn refusal(&self, sql: &[u8]) -> Refusal {
        let found = |set: &[&[u8]]| set.iter().any(|n| contains_ci(sql, n));
        if found(self.password) {
            Refusal::PasswordChange
        } else if found(self.dynamic) {
            Refusal::DynamicSql
        } else if found(&[b"kill"]) {
            Refusal::Kill
        } else {
            Refusal::SignalBackend
        }
    }
}

/// A quote, then only spaces or the start of a comment, then a quote or
/// a comment: where two string literals may be one.
fn adjacent_quotes(sql: &[u8]) -> bool {
    let quote = |c: &u8| matches!(c, b'\'' | b'"');
    sql.iter().enumerate().any(|(i, c)| {
        quote(c) && {
            let rest = &sql[i + 1..];
            let gap = rest.iter().take_while(|c| c.is_ascii_whitespace()).count();
            gap > 0
                && rest
                    .get(gap)
                    .is_some_and(|c| quote(c) || matches!(c, b'/' | b'-' | b'#'))
        }
    })
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    hay.iter().enumerate().any(|(i, &c)| {
        (c == lower || c == upper)
            && hay
                .get(i..i + needle.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(needle))
    })
}

/// A non-ASCII byte right before a backslash (or, in MySQL, a backtick):
/// in GBK, Big5 or SJIS the two are one character, so the server may
/// see no escape (or no quote) where the lexer does.
fn hidden_quote(sql: &[u8], dialect: Dialect) -> bool {
    sql.windows(2)
        .any(|w| w[0] >= 0x80 && (w[1] == b'\\' || (dialect == Dialect::MySql && w[1] == b'`')))
}

fn check_text(sql: &str, scope: Scope, complete: bool) -> Verdict {
    let mut first: Option<Verdict> = None;
    for &reading in Reading::all(scope.dialect) {
        if !reading_differs(sql, scope.dialect, reading) {
            continue;
        }
        let verdict = check_reading(sql, scope, reading, complete);
        match (&verdict, &first) {
            (Verdict::Refuse(_), _) => return verdict,
            (_, None) => first = Some(verdict),
            // A KILL that one reading maps and another does not (or maps
            // otherwise) is not one the gateway can be sure of.
            (_, Some(seen)) if *seen != verdict => return Verdict::Refuse(Refusal::Kill),
            _ => {}
        }
    }
    first.unwrap_or(Verdict::Allow)
}

/// Whether a reading can tokenise `sql` differently from the default one.
fn reading_differs(sql: &str, dialect: Dialect, reading: Reading) -> bool {
    match reading {
        Reading::Default => true,
        Reading::OtherBackslash => sql.contains('\\'),
        Reading::AnsiQuotes => dialect == Dialect::MySql && sql.contains('"'),
    }
}

fn check_reading(sql: &str, scope: Scope, reading: Reading, complete: bool) -> Verdict {
    // Statement by statement, one behind (the last is told apart), so
    // that SQL of many statements costs the tokens of two, not of all.
    let mut check = ReadingCheck {
        sql,
        scope,
        reading,
        complete,
        kills: 0,
        lone_kill: None,
        dynamic: false,
        statements: 0,
    };
    let mut held: Vec<Token<'_>> = Vec::new();
    let mut current: Vec<Token<'_>> = Vec::new();
    // A `;` after the last token ends the last statement like the others.
    let end = Token {
        kind: TokenKind::Semi,
        text: "",
    };
    for tok in tokens_read(sql, scope.dialect, reading).chain(std::iter::once(end)) {
        if tok.kind != TokenKind::Semi {
            current.push(tok);
            continue;
        }
        if current.is_empty() {
            continue;
        }
        if !held.is_empty()
            && let Some(verdict) = check.statement(&held, false)
        {
            return verdict;
        }
        std::mem::swap(&mut held, &mut current);
        current.clear();
    }
    if !held.is_empty()
        && let Some(verdict) = check.statement(&held, true)
    {
        return verdict;
    }
    check.verdict()
}

/// [`check_reading`]'s state across the statements of one reading.
struct ReadingCheck<'a> {
    sql: &'a str,
    scope: Scope,
    reading: Reading,
    complete: bool,
    kills: usize,
    lone_kill: Option<Kill>,
    /// Dynamic SQL is refused last, so that a password change or a KILL
    /// written out gets its own, more telling, refusal.
    dynamic: bool,
    statements: usize,
}

impl ReadingCheck<'_> {
    /// One statement (`last` of the SQL): a refusal ends the check.
    fn statement(&mut self, stmt: &[Token<'_>], last: bool) -> Option<Verdict> {
        let Scope {
            dialect,
            rules,
            depth,
            in_body,
        } = self.scope;
        self.statements += 1;
        if !self.complete && last && !plainly_harmless(stmt) {
            return Some(Verdict::Refuse(
                if has_word(stmt, "KILL") && dialect == Dialect::MySql {
                    Refusal::Kill
                } else {
                    Refusal::PasswordChange
                },
            ));
        }
        if !rules.allow_password_changes
            && (changes_password(stmt, dialect)
                || changes_accounts(stmt, dialect)
                || server_files(stmt, dialect)
                || (dialect == Dialect::MySql
                    && my_server_files(stmt, versioned_comment(self.sql))))
        {
            return Some(Verdict::Refuse(Refusal::PasswordChange));
        }
        if match dialect {
            Dialect::Postgres => signals_backend(stmt),
            Dialect::MySql => shuts_down(stmt),
        } {
            return Some(Verdict::Refuse(Refusal::SignalBackend));
        }
        self.dynamic |= !rules.allow_dynamic_sql && runs_dynamic_sql(stmt, dialect, in_body);
        if dialect == Dialect::MySql && has_word(stmt, "KILL") {
            self.kills += 1;
            self.lone_kill = parse_kill(stmt);
        }
        // SQL written in a string that the statement runs or stores: in
        // a routine body, any string may be SQL that runs (`EXECUTE '...'`).
        let runs = runs_string_body(stmt, dialect);
        if runs || in_body {
            let inner = Scope {
                depth: depth + 1,
                in_body: runs && dialect == Dialect::Postgres,
                ..self.scope
            };
            for body in string_bodies(stmt, dialect, self.reading) {
                let verdict = match body {
                    _ if inner.depth > MAX_DEPTH => inner.unreadable(),
                    None => inner.unreadable(),
                    Some(body) => check_text(&body, inner, true),
                };
                match verdict {
                    Verdict::Allow => {}
                    Verdict::Kill(_) => return Some(Verdict::Refuse(Refusal::Kill)),
                    Verdict::Refuse(Refusal::DynamicSql) => self.dynamic = true,
                    refused @ Verdict::Refuse(_) => return Some(refused),
                }
            }
        }
        None
    }

    fn verdict(self) -> Verdict {
        match (self.kills, self.lone_kill) {
            (0, _) if self.dynamic => Verdict::Refuse(Refusal::DynamicSql),
            (0, _) => Verdict::Allow,
            (1, Some(k))
                if self.statements == 1
                    && self.scope.depth == 0
                    && self.complete
                    && !self.dynamic =>
            {
                Verdict::Kill(k)
            }
            _ => Verdict::Refuse(Refusal::Kill),
        }
    }
}

#[cfg(test)]
mod tests;
