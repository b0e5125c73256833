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

use std::borrow::Cow;

pub use latchkey_sqlnorm::Dialect;
use latchkey_sqlnorm::{Reading, Token, TokenKind, tokens_read};

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
    let Scope {
        dialect,
        rules,
        depth,
        in_body,
    } = scope;
    let toks: Vec<Token<'_>> = tokens_read(sql, dialect, reading).collect();
    let statements: Vec<&[Token<'_>]> = toks
        .split(|t| t.kind == TokenKind::Semi)
        .filter(|s| !s.is_empty())
        .collect();
    let mut kills = 0usize;
    let mut lone_kill = None;
    // Dynamic SQL is refused last, so that a password change or a KILL
    // written out gets its own, more telling, refusal.
    let mut dynamic = false;
    for (i, stmt) in statements.iter().enumerate() {
        let last = i + 1 == statements.len();
        if !complete && last && !plainly_harmless(stmt) {
            return Verdict::Refuse(if has_word(stmt, "KILL") && dialect == Dialect::MySql {
                Refusal::Kill
            } else {
                Refusal::PasswordChange
            });
        }
        if !rules.allow_password_changes
            && (changes_password(stmt, dialect)
                || changes_accounts(stmt, dialect)
                || server_files(stmt, dialect)
                || (dialect == Dialect::MySql && my_server_files(stmt, versioned_comment(sql))))
        {
            return Verdict::Refuse(Refusal::PasswordChange);
        }
        if match dialect {
            Dialect::Postgres => signals_backend(stmt),
            Dialect::MySql => shuts_down(stmt),
        } {
            return Verdict::Refuse(Refusal::SignalBackend);
        }
        dynamic |= !rules.allow_dynamic_sql && runs_dynamic_sql(stmt, dialect, in_body);
        if dialect == Dialect::MySql && has_word(stmt, "KILL") {
            kills += 1;
            lone_kill = parse_kill(stmt);
        }
        // SQL written in a string that the statement runs or stores: in
        // a routine body, any string may be SQL that runs (`EXECUTE '...'`).
        let runs = runs_string_body(stmt, dialect);
        if runs || in_body {
            let inner = Scope {
                depth: depth + 1,
                in_body: runs && dialect == Dialect::Postgres,
                ..scope
            };
            for body in string_bodies(stmt, dialect, reading) {
                let verdict = match body {
                    _ if inner.depth > MAX_DEPTH => inner.unreadable(),
                    None => inner.unreadable(),
                    Some(body) => check_text(&body, inner, true),
                };
                match verdict {
                    Verdict::Allow => {}
                    Verdict::Kill(_) => return Verdict::Refuse(Refusal::Kill),
                    Verdict::Refuse(Refusal::DynamicSql) => dynamic = true,
                    refused @ Verdict::Refuse(_) => return refused,
                }
            }
        }
    }
    match (kills, lone_kill) {
        (0, _) if dynamic => Verdict::Refuse(Refusal::DynamicSql),
        (0, _) => Verdict::Allow,
        (1, Some(k)) if statements.len() == 1 && depth == 0 && complete && !dynamic => {
            Verdict::Kill(k)
        }
        _ => Verdict::Refuse(Refusal::Kill),
    }
}

fn word_is(t: &Token<'_>, word: &str) -> bool {
    t.kind == TokenKind::Word && t.text.eq_ignore_ascii_case(word)
}

fn punct_is(t: &Token<'_>, p: &str) -> bool {
    t.kind == TokenKind::Punct && t.text == p
}

fn has_word(stmt: &[Token<'_>], word: &str) -> bool {
    stmt.iter().any(|t| word_is(t, word))
}

/// The name a word or quoted identifier stands for (quotes removed,
/// `U&` escapes decoded); None when it cannot be told (a `U&` name with
/// an escape the gateway does not decode), which callers take as any
/// name.
fn ident<'a>(t: &Token<'a>) -> Option<Cow<'a, str>> {
    match t.kind {
        TokenKind::Word => Some(Cow::Borrowed(t.text)),
        TokenKind::QuotedIdent => {
            let (unicode, text) = match t.text.get(..2) {
                Some(p) if p.eq_ignore_ascii_case("u&") => (true, &t.text[2..]),
                _ => (false, t.text),
            };
            let quote = text.chars().next()?;
            let inner = text.get(1..text.len().checked_sub(1)?)?;
            let doubled: String = [quote, quote].iter().collect();
            let name = if inner.contains(&doubled) {
                Cow::Owned(inner.replace(&doubled, &quote.to_string()))
            } else {
                Cow::Borrowed(inner)
            };
            if unicode && name.contains('\\') {
                return unicode_unescape(&name).map(Cow::Owned);
            }
            Some(name)
        }
        _ => Some(Cow::Borrowed("")),
    }
}

/// One PostgreSQL `E'...'` escape after its backslash: `\xHH`, octal
/// `\ooo`, `\uXXXX`, `\UXXXXXXXX`, `\n` and the like; None for an
/// invalid one.
fn pg_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    Some(match chars.next()? {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'b' | 'f' => ' ',
        'x' => return pg_number(chars, 0, 16, 2),
        'u' => return pg_number(chars, 0, 16, 4),
        'U' => return pg_number(chars, 0, 16, 8),
        d @ '0'..='7' => return pg_number(chars, d.to_digit(8)?, 8, 2),
        other => other,
    })
}

/// Up to `max` more digits in `radix` after `value`, as a character.
fn pg_number(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    mut value: u32,
    radix: u32,
    max: usize,
) -> Option<char> {
    for _ in 0..max {
        let Some(d) = chars.peek().and_then(|c| c.to_digit(radix)) else {
            break;
        };
        value = value.checked_mul(radix)?.checked_add(d)?;
        chars.next();
    }
    char::from_u32(value)
}

/// PostgreSQL's `U&` escapes with the default escape character (`\XXXX`,
/// `\+XXXXXX`, `\\`); None for anything else.
fn unicode_unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (len, skip) = match rest.as_bytes().first() {
            Some(b'\\') => {
                out.push('\\');
                rest = &rest[1..];
                continue;
            }
            Some(b'+') => (6, 1),
            _ => (4, 0),
        };
        let hex = rest.get(skip..skip + len)?;
        let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
        out.push(c);
        rest = &rest[skip + len..];
    }
    out.push_str(rest);
    Some(out)
}

/// Whether a token names one of `names` (any case); a name that cannot
/// be read counts as every name.
fn names_any(t: &Token<'_>, names: &[&str]) -> bool {
    match ident(t) {
        Some(n) => names.iter().any(|w| n.eq_ignore_ascii_case(w)),
        None => true,
    }
}

/// A statement cut short that cannot become a password change or a KILL
/// whatever follows: a query or data change with no suspicious word so
/// far.
fn plainly_harmless(stmt: &[Token<'_>]) -> bool {
    const PLAIN: [&str; 8] = [
        "SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "VALUES", "COPY", "WITH",
    ];
    const SUSPICIOUS: [&str; 34] = [
        "KILL",
        "PASSWORD",
        "IDENTIFIED",
        "ROLE",
        "USER",
        "PREPARE",
        "EXECUTE",
        "DO",
        "GLOBAL_PRIV",
        "PG_AUTHID",
        "PG_TERMINATE_BACKEND",
        "PG_CANCEL_BACKEND",
        "DBLINK",
        "DBLINK_EXEC",
        "SYSTEM",
        "GRANT",
        "REVOKE",
        "SHUTDOWN",
        "RESTART",
        "MYSQL",
        "SYS",
        "PROC",
        "EVENT",
        "DB",
        "FUNC",
        "PLUGIN",
        "SERVERS",
        "LO_IMPORT",
        "LO_EXPORT",
        "OUTFILE",
        "DUMPFILE",
        "INFILE",
        "LOAD_FILE",
        "SONAME",
    ];
    let Some(first) = stmt.iter().find(|t| !punct_is(t, "(")) else {
        return false;
    };
    PLAIN.iter().any(|w| word_is(first, w))
        && !stmt.iter().any(|t| {
            t.kind == TokenKind::QuotedIdent
                || SUSPICIOUS.iter().any(|w| word_is(t, w))
                || (t.kind == TokenKind::Word
                    && (t
                        .text
                        .get(..3)
                        .is_some_and(|p| p.eq_ignore_ascii_case("pg_"))
                        || t.text.ends_with("_priv")
                        || runs_sql_text(t.text)))
        })
        && stmt.iter().all(|t| t.kind != TokenKind::Unterminated)
}

/// Whether one statement changes a password or authentication.
fn changes_password(stmt: &[Token<'_>], dialect: Dialect) -> bool {
    match dialect {
        Dialect::Postgres => pg_changes_password(stmt),
        Dialect::MySql => my_changes_password(stmt),
    }
}

/// Role management: `ALTER|CREATE|DROP ROLE|USER|GROUP` whatever follows
/// (a password, `RENAME`, `NOLOGIN`, `CONNECTION LIMIT 0`, `VALID UNTIL`
/// lock the gateway out; `SUPERUSER`, `SET search_path` change what every
/// principal sharing the role runs), and role membership (`GRANT|REVOKE
/// role TO|FROM user`, a `GRANT` with no `ON`); not `... USER MAPPING` (a
/// foreign server's credentials) or table privileges.
fn pg_changes_password(stmt: &[Token<'_>]) -> bool {
    let roles = stmt.windows(2).enumerate().any(|(i, w)| {
        ["ALTER", "CREATE", "DROP"]
            .iter()
            .any(|v| word_is(&w[0], v))
            && ["ROLE", "USER", "GROUP"].iter().any(|r| word_is(&w[1], r))
            && !(word_is(&w[1], "USER") && stmt.get(i + 2).is_some_and(|t| word_is(t, "MAPPING")))
    });
    roles || grants_membership(stmt)
}

/// PostgreSQL `GRANT role TO user` / `REVOKE role FROM user`: a `GRANT`
/// or `REVOKE` (not `WITH GRANT OPTION`, `GRANT OPTION FOR`) with no `ON`
/// after it outside parentheses.
fn grants_membership(stmt: &[Token<'_>]) -> bool {
    stmt.iter().enumerate().any(|(i, t)| {
        (word_is(t, "GRANT") || word_is(t, "REVOKE"))
            && !after_word(stmt, i, "WITH")
            && !stmt.get(i + 1).is_some_and(|n| word_is(n, "OPTION"))
            && !after(stmt, i, ".")
            && {
                let mut depth = 0usize;
                !stmt[i + 1..].iter().any(|t| {
                    if punct_is(t, "(") {
                        depth += 1;
                    } else if punct_is(t, ")") {
                        depth = depth.saturating_sub(1);
                    }
                    depth == 0 && word_is(t, "ON")
                })
            }
    })
}

/// The token at `i` follows the word `w`.
fn after_word(stmt: &[Token<'_>], i: usize, w: &str) -> bool {
    i.checked_sub(1)
        .and_then(|at| stmt.get(at))
        .is_some_and(|t| word_is(t, w))
}

/// MySQL and MariaDB: `ALTER USER`, `CREATE USER` (any: a new account
/// logs in directly), `... IDENTIFIED BY|WITH|VIA|USING` (`GRANT`
/// included), and a `SET` that starts a statement (anywhere: a routine,
/// trigger or event body, `SET STATEMENT ... FOR`, a handler) naming
/// `PASSWORD`.
fn my_changes_password(stmt: &[Token<'_>]) -> bool {
    if my_manages_accounts(stmt) {
        return true;
    }
    let pairs = stmt.windows(2).any(|w| {
        ((word_is(&w[0], "ALTER") || word_is(&w[0], "CREATE")) && word_is(&w[1], "USER"))
            || (word_is(&w[0], "IDENTIFIED")
                && ["BY", "WITH", "VIA", "USING"]
                    .iter()
                    .any(|k| word_is(&w[1], k)))
    });
    if pairs {
        return true;
    }
    // A `SET` is a statement unless it is the `SET` clause of an
    // `UPDATE` or `INSERT`; then PASSWORD as a name that is not a
    // variable's (`@password`) or a column's (`t.password`).
    stmt.iter().enumerate().any(|(i, t)| {
        word_is(t, "SET")
            && !after(stmt, i, ".")
            && !not_a_statement(stmt, i)
            && !assigns_columns(stmt, i)
            && stmt[i + 1..].iter().enumerate().any(|(j, p)| {
                word_is(p, "PASSWORD")
                    && !after(stmt, i + 1 + j, "@")
                    && !after(stmt, i + 1 + j, ".")
            })
    })
}

/// MySQL and MariaDB account management: `GRANT` and `REVOKE` (with
/// `NO_AUTO_CREATE_USER` off, a `GRANT` creates a passwordless account;
/// any grants privileges to logins), `CREATE [OR REPLACE] ROLE`, `DROP
/// USER|ROLE`, `RENAME USER`, `SET DEFAULT ROLE`.
fn my_manages_accounts(stmt: &[Token<'_>]) -> bool {
    stmt.iter().enumerate().any(|(i, t)| {
        let keyword = !after(stmt, i, ".") && !after(stmt, i, "@");
        let object = |at: usize| {
            // `CREATE OR REPLACE ROLE`
            let at = if stmt.get(at).is_some_and(|t| word_is(t, "OR"))
                && stmt.get(at + 1).is_some_and(|t| word_is(t, "REPLACE"))
            {
                at + 2
            } else {
                at
            };
            stmt.get(at)
                .is_some_and(|t| word_is(t, "USER") || word_is(t, "ROLE"))
        };
        keyword
            && ((word_is(t, "GRANT") || word_is(t, "REVOKE"))
                || ((word_is(t, "CREATE") || word_is(t, "DROP") || word_is(t, "RENAME"))
                    && object(i + 1))
                || (word_is(t, "DEFAULT") && stmt.get(i + 1).is_some_and(|n| word_is(n, "ROLE"))))
    })
}

/// MySQL and MariaDB `SHUTDOWN` (it stops the server for every
/// principal) and MySQL's `RESTART`, as statements: not a column or an
/// alias of that name.
fn shuts_down(stmt: &[Token<'_>]) -> bool {
    stmt.first().is_some_and(|t| word_is(t, "RESTART"))
        || stmt.iter().enumerate().any(|(i, t)| {
            word_is(t, "SHUTDOWN")
                && !after(stmt, i, ".")
                && !after(stmt, i, "@")
                && !after(stmt, i, ",")
                && !after(stmt, i, "(")
                && !["SELECT", "AS", "BY", "DISTINCT"]
                    .iter()
                    .any(|w| after_word(stmt, i, w))
                && stmt
                    .get(i + 1)
                    .is_none_or(|n| word_is(n, "WAIT") || punct_is(n, ")"))
        })
}

/// PostgreSQL server-side file access and configuration reload: `COPY
/// ... TO|FROM 'file'` (not `STDIN`/`STDOUT`, which is what psql's
/// `\copy` sends), `lo_import`/`lo_export` (server paths),
/// adminpack's `pg_file_*`, `pg_read_file`/`pg_read_binary_file` (which
/// read `pg_hba.conf`, keys, other databases' files), `pg_reload_conf`.
/// Written out, a superuser's `COPY (SELECT 'host all all ... trust') TO
/// '.../pg_hba.conf'; SELECT pg_reload_conf()` opens the server to
/// anyone.
fn server_files(stmt: &[Token<'_>], dialect: Dialect) -> bool {
    if dialect != Dialect::Postgres {
        return false;
    }
    const FILES: [&str; 10] = [
        "lo_import",
        "lo_export",
        "pg_file_write",
        "pg_file_rename",
        "pg_file_unlink",
        "pg_file_sync",
        "pg_logdir_ls",
        "pg_reload_conf",
        "pg_read_file",
        "pg_read_binary_file",
    ];
    let named = stmt.iter().any(|t| match t.kind {
        TokenKind::Word => FILES.iter().any(|w| word_is(t, w)),
        TokenKind::QuotedIdent => names_any(t, &FILES),
        _ => false,
    });
    named
        || stmt.iter().enumerate().any(|(at, t)| {
            if !word_is(t, "COPY") {
                return false;
            }
            let mut depth = 0usize;
            stmt[at + 1..].windows(2).any(|w| {
                if punct_is(&w[0], "(") {
                    depth += 1;
                } else if punct_is(&w[0], ")") {
                    depth = depth.saturating_sub(1);
                }
                depth == 0
                    && (word_is(&w[0], "TO") || word_is(&w[0], "FROM"))
                    && (is_string(&w[1]) || w[1].kind == TokenKind::Unterminated)
            })
        })
}

/// MySQL and MariaDB server-side files and shared libraries, the
/// siblings of PostgreSQL's [`server_files`]: `SELECT ... INTO OUTFILE|
/// DUMPFILE 'file'` (anywhere, routine bodies included; `INTO @var`
/// passes), `LOAD DATA|XML INFILE` without `LOCAL` (a server file; `LOCAL`
/// is the client's, governed by `latchkey:LoadDataLocalInfile`),
/// `LOAD_FILE(...)`, `INSTALL|UNINSTALL PLUGIN|SONAME|COMPONENT` and
/// `CREATE [AGGREGATE] FUNCTION ... SONAME`. A user with `FILE` writes
/// into the plugin directory, then loads what it wrote.
///
/// `INFILE` is a reserved word (a column of that name is quoted or
/// follows a dot); `OUTFILE` and `DUMPFILE` count before a file name, `LOAD_FILE` before `(`, `SONAME` before a name, so
/// that columns of those names pass. `versioned`: the
/// SQL has a `/*!NNNNN ... */` or `/*M!NNNNNN ... */` comment, whose
/// content the server may skip where the lexer reads it (`LOAD DATA
/// /*!99999 LOCAL */ INFILE`, `DUMPFILE /*!99999 x */ 'f'`): then any of
/// those words counts, and `LOCAL` does not excuse `INFILE`.
fn my_server_files(stmt: &[Token<'_>], versioned: bool) -> bool {
    let keyword = |i: usize| !after(stmt, i, ".") && !after(stmt, i, "@");
    // What the server takes as a file or library name: a string (or one
    // the lexer could not end), or nothing yet.
    let file_next = |i: usize| {
        versioned
            || stmt
                .get(i + 1)
                .is_none_or(|n| is_string(n) || n.kind == TokenKind::Unterminated)
    };
    stmt.iter().enumerate().any(|(i, t)| {
        if !matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent) {
            return false;
        }
        if t.kind == TokenKind::QuotedIdent {
            // `load_file`(...) and "load_file"(...) under ANSI_QUOTES.
            return names_any(t, &["load_file"])
                && (versioned || stmt.get(i + 1).is_some_and(|n| punct_is(n, "(")));
        }
        let word = |w: &str| word_is(t, w);
        // `t.outfile`, `@outfile` are names, unless a comment the server
        // may skip holds the `t.`.
        if !versioned && !keyword(i) {
            return false;
        }
        ((word("OUTFILE") || word("DUMPFILE"))
            && (file_next(i)
                // `INTO OUTFILE` before anything but a table's name
                // (`INSERT INTO dumpfile VALUES ...`, `(a)`, `.t`).
                || (after_word(stmt, i, "INTO")
                    && !stmt.get(i + 1).is_some_and(|n| {
                        matches!(n.kind, TokenKind::Word | TokenKind::QuotedIdent)
                            || punct_is(n, "(")
                            || punct_is(n, ".")
                    }))))
            || (word("INFILE") && (versioned || !after_word(stmt, i, "LOCAL")))
            || (word("LOAD_FILE")
                && (versioned || stmt.get(i + 1).is_some_and(|n| punct_is(n, "("))))
            || (word("SONAME") && file_next(i))
            || ((word("INSTALL") || word("UNINSTALL"))
                && (versioned
                    || stmt.get(i + 1).is_some_and(|n| {
                        ["PLUGIN", "SONAME", "COMPONENT"]
                            .iter()
                            .any(|w| word_is(n, w))
                    })))
    })
}

/// MySQL SQL with a versioned executable comment (`/*!NNNNN`,
/// `/*M!NNNNNN`), whose content a server older than the version skips.
fn versioned_comment(sql: &str) -> bool {
    let b = sql.as_bytes();
    b.windows(3).enumerate().any(|(i, w)| {
        w == b"/*!" && b.get(i + 3).is_some_and(u8::is_ascii_digit)
            || (w == b"/*M" && b.get(i + 3) == Some(&b'!'))
    })
}

/// The token at `i` follows the punctuation `p`.
fn after(stmt: &[Token<'_>], i: usize, p: &str) -> bool {
    i.checked_sub(1)
        .and_then(|at| stmt.get(at))
        .is_some_and(|t| punct_is(t, p))
}

/// A `SET` that is part of something else: `CHARACTER SET`, a foreign
/// key's `ON DELETE|UPDATE SET NULL|DEFAULT`, `ALTER COLUMN ... SET
/// DEFAULT|VISIBLE|INVISIBLE`, the `SET(...)` column type.
fn not_a_statement(stmt: &[Token<'_>], at: usize) -> bool {
    let prev = at.checked_sub(1).and_then(|p| stmt.get(p));
    let next = stmt.get(at + 1);
    prev.is_some_and(|p| {
        ["CHARACTER", "CHARSET"].iter().any(|w| word_is(p, w))
            || ((word_is(p, "DELETE") || word_is(p, "UPDATE"))
                && at
                    .checked_sub(2)
                    .and_then(|q| stmt.get(q))
                    .is_some_and(|q| word_is(q, "ON")))
    }) || next.is_some_and(|n| {
        ["DEFAULT", "VISIBLE", "INVISIBLE"]
            .iter()
            .any(|w| word_is(n, w))
            || punct_is(n, "(")
    })
}

/// Whether the `SET` at `at` is the column list of an `UPDATE`, `INSERT`
/// or `REPLACE`: going back, one of those (not a trigger's event, not
/// `FOR UPDATE`, not a name after a dot, not the `REPLACE()` function)
/// comes before anything where a statement may start.
fn assigns_columns(stmt: &[Token<'_>], at: usize) -> bool {
    const STARTS: [&str; 14] = [
        "BEGIN",
        "THEN",
        "ELSE",
        "DO",
        "LOOP",
        "REPEAT",
        "ROW",
        "FOR",
        "SET",
        "CREATE",
        "DECLARE",
        "HANDLER",
        "SQLEXCEPTION",
        "SQLWARNING",
    ];
    for j in (0..at).rev() {
        let t = &stmt[j];
        if punct_is(t, ":") || STARTS.iter().any(|w| word_is(t, w)) {
            return false;
        }
        if ["UPDATE", "INSERT", "REPLACE", "LOAD"]
            .iter()
            .any(|w| word_is(t, w))
        {
            let prev = j.checked_sub(1).and_then(|p| stmt.get(p));
            let event_or_name = prev.is_some_and(|p| {
                ["BEFORE", "AFTER", "FOR", "KEY", "OR"]
                    .iter()
                    .any(|w| word_is(p, w))
                    || punct_is(p, ".")
                    || punct_is(p, "@")
            });
            // `REPLACE(...)` and `INSERT(...)` are string functions.
            let function = stmt.get(j + 1).is_some_and(|n| punct_is(n, "("));
            if !event_or_name && !function {
                return true;
            }
        }
    }
    false
}

/// Writes to where accounts and their credentials live: MySQL's
/// `mysql.user` and `mysql.global_priv` tables, PostgreSQL's `pg_authid`
/// catalogue, and PostgreSQL's `ALTER SYSTEM` (which can change
/// `password_encryption`, `hba_file`...).
fn changes_accounts(stmt: &[Token<'_>], dialect: Dialect) -> bool {
    match dialect {
        Dialect::Postgres => {
            const WRITES: [&str; 10] = [
                "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "TRUNCATE", "ALTER", "DROP",
                "CREATE", "GRANT",
            ];
            stmt.windows(2)
                .any(|w| word_is(&w[0], "ALTER") && word_is(&w[1], "SYSTEM"))
                || pg_writes_catalogue(stmt)
                || (WRITES.iter().any(|w| has_word(stmt, w))
                    && stmt.iter().any(|t| {
                        (t.kind == TokenKind::QuotedIdent && names_any(t, &["pg_authid"]))
                            || word_is(t, "pg_authid")
                    }))
        }
        Dialect::MySql => my_writes_accounts(stmt) || my_writes_catalogue(stmt),
    }
}

/// PostgreSQL: a write to a system catalogue, `pg_catalog.*`,
/// `pg_toast.*` or an unqualified name starting `pg_` (PostgreSQL reserves
/// the prefix; `UPDATE pg_proc SET prosrc = ...` rewrites any function),
/// as the target of `INSERT INTO`, `UPDATE`, `DELETE FROM`, `MERGE INTO`,
/// `TRUNCATE`, `COPY ... FROM`, `ALTER|DROP TABLE|VIEW|INDEX|SEQUENCE|
/// FUNCTION|PROCEDURE|ROUTINE|TRIGGER|RULE|POLICY ...` (`ONLY`, `IF
/// EXISTS`, `ON` and comma lists followed), and `CREATE ... FUNCTION|
/// PROCEDURE pg_catalog.x` (replacing a catalogue function).
fn pg_writes_catalogue(stmt: &[Token<'_>]) -> bool {
    const SKIP: [&str; 7] = ["ONLY", "IF", "EXISTS", "NOT", "TABLE", "INTO", "FROM"];
    const KINDS: [&str; 11] = [
        "TABLE",
        "VIEW",
        "INDEX",
        "SEQUENCE",
        "FUNCTION",
        "PROCEDURE",
        "ROUTINE",
        "TRIGGER",
        "RULE",
        "POLICY",
        "AGGREGATE",
    ];
    // Whether a catalogue is named from `at` on, past `SKIP` words (and,
    // for a trigger, rule or policy, its name and `ON`), through a comma
    // list.
    let target = |mut at: usize, on: bool| -> bool {
        while stmt
            .get(at)
            .is_some_and(|t| SKIP.iter().any(|w| word_is(t, w)))
        {
            at += 1;
        }
        if on {
            let Some(o) = stmt[at.min(stmt.len())..]
                .iter()
                .position(|t| word_is(t, "ON"))
            else {
                return false;
            };
            at += o + 1;
            while stmt.get(at).is_some_and(|t| word_is(t, "ONLY")) {
                at += 1;
            }
        }
        loop {
            if pg_catalogue_name(stmt, at) {
                return true;
            }
            // The next name of a comma list of names: `TRUNCATE a,
            // pg_x` (not `SELECT a, pg_f()`).
            let name = |n: usize| {
                stmt.get(n)
                    .is_some_and(|t| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent))
            };
            if !name(at) {
                return false;
            }
            let mut next = at + 1;
            while stmt.get(next).is_some_and(|t| punct_is(t, ".")) && name(next + 1) {
                next += 2;
            }
            if stmt.get(next).is_some_and(|t| punct_is(t, ",")) {
                at = next + 1;
            } else {
                return false;
            }
        }
    };
    stmt.iter().enumerate().any(|(i, t)| {
        if after(stmt, i, ".") || t.kind != TokenKind::Word {
            return false;
        }
        let upper = t.text.to_ascii_uppercase();
        match upper.as_str() {
            "INSERT" | "MERGE" | "DELETE" | "UPDATE" | "TRUNCATE" => target(i + 1, false),
            "COPY" => has_word(stmt, "FROM") && target(i + 1, false),
            "ALTER" | "DROP" | "CREATE" | "COMMENT" => {
                // `CREATE OR REPLACE FUNCTION`, `DROP MATERIALIZED VIEW`,
                // `ALTER FOREIGN TABLE`, `CREATE CONSTRAINT TRIGGER`.
                let mut k = i + 1;
                while stmt.get(k).is_some_and(|t| {
                    [
                        "OR",
                        "REPLACE",
                        "MATERIALIZED",
                        "FOREIGN",
                        "CONSTRAINT",
                        "ON",
                    ]
                    .iter()
                    .any(|w| word_is(t, w))
                }) {
                    k += 1;
                }
                let Some(kind) = stmt.get(k) else {
                    return false;
                };
                let on = ["TRIGGER", "RULE", "POLICY"]
                    .iter()
                    .any(|w| word_is(kind, w));
                KINDS.iter().any(|w| word_is(kind, w)) && target(k + 1, on)
            }
            _ => false,
        }
    })
}

/// Whether the name starting at `at` is a PostgreSQL system catalogue:
/// `pg_catalog.x`, `pg_toast.x`, or unqualified `pg_...` (quoted or not;
/// a name that cannot be read counts).
fn pg_catalogue_name(stmt: &[Token<'_>], at: usize) -> bool {
    let Some(t) = stmt.get(at) else {
        return false;
    };
    if !matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent) {
        return false;
    }
    let Some(name) = ident(t) else {
        return true;
    };
    let lower = name.to_ascii_lowercase();
    if stmt.get(at + 1).is_some_and(|n| punct_is(n, ".")) {
        // A schema (or a database, then a schema).
        return lower == "pg_catalog"
            || lower == "pg_toast"
            || (stmt.get(at + 3).is_some_and(|n| punct_is(n, "."))
                && pg_catalogue_name(stmt, at + 2));
    }
    lower.starts_with("pg_")
}

/// MySQL and MariaDB: a write (`INSERT`, `UPDATE`, `REPLACE`, `DELETE`,
/// `LOAD`, `RENAME`, `ALTER`, `CREATE`, `DROP`, `TRUNCATE`) that names
/// any table of the `mysql` schema (`mysql.proc` holds routine bodies,
/// `mysql.event` events, `mysql.db` and `mysql.*_priv` privileges,
/// `mysql.servers` FEDERATED targets, `mysql.plugin` and `mysql.func`
/// shared libraries loaded at start), or one of those tables without a
/// schema where a table goes.
fn my_writes_catalogue(stmt: &[Token<'_>]) -> bool {
    const WRITES: [&str; 10] = [
        "INSERT", "UPDATE", "REPLACE", "DELETE", "LOAD", "RENAME", "ALTER", "CREATE", "DROP",
        "TRUNCATE",
    ];
    const TABLES: [&str; 11] = [
        "proc",
        "event",
        "db",
        "tables_priv",
        "columns_priv",
        "procs_priv",
        "proxies_priv",
        "roles_mapping",
        "servers",
        "plugin",
        "func",
    ];
    let writes = stmt
        .iter()
        .enumerate()
        .any(|(i, t)| WRITES.iter().any(|w| word_is(t, w)) && !after(stmt, i, "."));
    writes
        && stmt.iter().enumerate().any(|(i, t)| {
            if !matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent) || after(stmt, i, ".") {
                return false;
            }
            let next = stmt.get(i + 1);
            if next.is_some_and(|n| punct_is(n, ".")) {
                // `mysql.anything`; not `t.mysql` or `mysql.f()`.
                return names_any(t, &["mysql"])
                    && !stmt.get(i + 3).is_some_and(|n| punct_is(n, "("));
            }
            names_any(t, &TABLES)
                && !next.is_some_and(|n| punct_is(n, "("))
                && !after(stmt, i, "@")
                && (table_position(stmt, i) || after_word(stmt, i, "TRUNCATE"))
        })
}

/// An `INSERT`, `UPDATE`, `REPLACE`, `DELETE` or `LOAD` that names
/// `mysql.user` or `mysql.global_priv` anywhere, `global_priv` without
/// a schema anywhere, or `user` without a schema where a table goes (the
/// session's database may be `mysql`: an application's own `user` table
/// must be written as `schema.user`).
fn my_writes_accounts(stmt: &[Token<'_>]) -> bool {
    const WRITES: [&str; 10] = [
        "INSERT", "UPDATE", "REPLACE", "DELETE", "LOAD", "RENAME", "ALTER", "CREATE", "DROP",
        "TRUNCATE",
    ];
    let writes = stmt
        .iter()
        .enumerate()
        .any(|(i, t)| WRITES.iter().any(|w| word_is(t, w)) && !after(stmt, i, "."));
    if !writes {
        return false;
    }
    stmt.iter().enumerate().any(|(i, t)| {
        if !matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent) {
            return false;
        }
        let (user, global_priv) = (names_any(t, &["user"]), names_any(t, &["global_priv"]));
        if !user && !global_priv {
            return false;
        }
        if after(stmt, i, ".") {
            return i
                .checked_sub(2)
                .and_then(|q| stmt.get(q))
                .is_some_and(|q| names_any(q, &["mysql"]));
        }
        let next = stmt.get(i + 1);
        if next.is_some_and(|n| punct_is(n, ".") || punct_is(n, "(")) || after(stmt, i, "@") {
            return false;
        }
        global_priv || table_position(stmt, i)
    })
}

/// Whether the name at `i` stands where a table does: right after a
/// keyword that names one, or in a comma list that such a keyword starts.
fn table_position(stmt: &[Token<'_>], i: usize) -> bool {
    const TABLE: [&str; 16] = [
        "TO",
        "UPDATE",
        "INTO",
        "FROM",
        "JOIN",
        "TABLE",
        "INSERT",
        "REPLACE",
        "DELETE",
        "LOW_PRIORITY",
        "DELAYED",
        "HIGH_PRIORITY",
        "IGNORE",
        "QUICK",
        "USING",
        "STRAIGHT_JOIN",
    ];
    const NOT_TABLE: [&str; 10] = [
        "SET",
        "SELECT",
        "WHERE",
        "ON",
        "VALUES",
        "VALUE",
        "HAVING",
        "BY",
        "DUPLICATE",
        "AS",
    ];
    let Some(prev) = i.checked_sub(1).and_then(|p| stmt.get(p)) else {
        return false;
    };
    if TABLE.iter().any(|w| word_is(prev, w)) {
        return true;
    }
    if !punct_is(prev, ",") {
        return false;
    }
    let mut depth = 0usize;
    for t in stmt[..i - 1].iter().rev() {
        if punct_is(t, ")") {
            depth += 1;
        } else if punct_is(t, "(") {
            match depth.checked_sub(1) {
                Some(d) => depth = d,
                // Inside parentheses: a column list.
                None => return false,
            }
        } else if depth == 0 {
            if TABLE.iter().any(|w| word_is(t, w)) {
                return true;
            }
            if NOT_TABLE.iter().any(|w| word_is(t, w)) || punct_is(t, "=") {
                return false;
            }
        }
    }
    false
}

/// `KILL [HARD | SOFT] [CONNECTION | QUERY] <decimal id>` and nothing else.
fn parse_kill(stmt: &[Token<'_>]) -> Option<Kill> {
    let mut it = stmt.iter();
    if !word_is(it.next()?, "KILL") {
        return None;
    }
    let mut next = it.next()?;
    let mut force = None;
    if word_is(next, "HARD") || word_is(next, "SOFT") {
        force = Some(if word_is(next, "HARD") {
            KillForce::Hard
        } else {
            KillForce::Soft
        });
        next = it.next()?;
    }
    let mut scope = None;
    if word_is(next, "CONNECTION") || word_is(next, "QUERY") {
        scope = Some(if word_is(next, "QUERY") {
            KillScope::Query
        } else {
            KillScope::Connection
        });
        next = it.next()?;
    }
    if it.next().is_some()
        || next.kind != TokenKind::Literal
        || next.text.is_empty()
        || !next.text.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let id = next.text.parse().ok()?;
    Some(Kill { force, scope, id })
}

/// PostgreSQL: a call (or any mention) of `pg_terminate_backend` or
/// `pg_cancel_backend`.
fn signals_backend(stmt: &[Token<'_>]) -> bool {
    const SIGNALS: [&str; 2] = ["pg_terminate_backend", "pg_cancel_backend"];
    stmt.iter().any(|t| match t.kind {
        TokenKind::Word => SIGNALS.iter().any(|w| word_is(t, w)),
        TokenKind::QuotedIdent => names_any(t, &SIGNALS),
        _ => false,
    })
}

/// SQL built at run time. PostgreSQL: `EXECUTE` in a routine body
/// (PL/pgSQL's runs a string; `EXECUTE format(...)` too; PL/Perl's and
/// PL/Tcl's `spi_exec*`), `dblink` and `dblink_exec` anywhere, `COPY ...
/// PROGRAM`. MySQL: `EXECUTE IMMEDIATE` with anything, and
/// `PREPARE name FROM` anything but one string literal.
fn runs_dynamic_sql(stmt: &[Token<'_>], dialect: Dialect, in_body: bool) -> bool {
    match dialect {
        Dialect::Postgres => {
            // What runs a string in PL/pgSQL, PL/Perl, PL/Tcl and
            // PL/Python (`plpy.execute`).
            const RUNS: [&str; 5] = [
                "EXECUTE",
                "spi_exec_query",
                "spi_exec",
                "spi_prepare",
                "spi_query",
            ];
            (in_body && RUNS.iter().any(|w| has_word(stmt, w)))
                // A server program, which may run anything.
                || (has_word(stmt, "COPY") && has_word(stmt, "PROGRAM"))
                || stmt.iter().any(|t| {
                    matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent)
                        && ident(t).is_none_or(|n| runs_sql_text(&n))
                })
        }
        Dialect::MySql => {
            stmt.windows(2)
                .any(|w| word_is(&w[0], "EXECUTE") && word_is(&w[1], "IMMEDIATE"))
                || my_sys_runs_sql(stmt)
                || prepare_from(stmt)
                    .is_some_and(|source| !(source.len() == 1 && is_string(&source[0])))
        }
    }
}

/// PostgreSQL functions that run an SQL string they are given, whatever
/// builds it (`query_to_xml(reverse('...'), ...)`, a `Bind` parameter):
/// `query_to_xml`, `query_to_xmlschema`, `query_to_xml_and_xmlschema`,
/// `ts_stat`, `ts_rewrite` (its query form), every `dblink*` function
/// (`dblink_send_query`, `dblink_open`...), and contrib's `crosstab*`,
/// `connectby` and `xml2`'s `xpath_table`, which build SQL from their
/// text arguments. `cursor_to_xml` takes a cursor already opened by SQL
/// the guard saw; `table_to_xml` a table name.
fn runs_sql_text(name: &str) -> bool {
    const RUNS: [&str; 7] = [
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "ts_stat",
        "ts_rewrite",
        "connectby",
        "xpath_table",
    ];
    let lower = name.to_ascii_lowercase();
    RUNS.contains(&lower.as_str()) || lower.starts_with("dblink") || lower.starts_with("crosstab")
}

/// MariaDB's `sys` schema routines that run SQL built from their
/// arguments: `execute_prepared_stmt` (any SQL text), and
/// `statement_performance_analyzer`, `table_exists`, `create_synonym_db`,
/// `diagnostics`, `ps_trace_thread`, `ps_trace_statement_digest`, which
/// `PREPARE` statements naming their table, schema or file arguments.
/// Named `sys.x` anywhere, or without a schema after `CALL` (the
/// session's database may be `sys`); `execute_prepared_stmt` anywhere.
fn my_sys_runs_sql(stmt: &[Token<'_>]) -> bool {
    const RUNS: [&str; 7] = [
        "execute_prepared_stmt",
        "statement_performance_analyzer",
        "table_exists",
        "create_synonym_db",
        "diagnostics",
        "ps_trace_thread",
        "ps_trace_statement_digest",
    ];
    stmt.iter().enumerate().any(|(i, t)| {
        matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent)
            && (names_any(t, &["execute_prepared_stmt"])
                || (names_any(t, &RUNS)
                    && (after_word(stmt, i, "CALL")
                        || (after(stmt, i, ".")
                            && i.checked_sub(2)
                                .and_then(|q| stmt.get(q))
                                .is_some_and(|q| names_any(q, &["sys"]))))))
    })
}

/// MySQL: what follows `PREPARE name FROM`, when the statement has one.
fn prepare_from<'s, 'a>(stmt: &'s [Token<'a>]) -> Option<&'s [Token<'a>]> {
    let at = stmt.iter().position(|t| word_is(t, "PREPARE"))?;
    let from = stmt[at..].iter().position(|t| word_is(t, "FROM"))?;
    Some(&stmt[at + from + 1..])
}

/// A string literal (not a number, a hex or a bit string).
fn is_string(t: &Token<'_>) -> bool {
    t.kind == TokenKind::Literal
        && match t.text.find(['\'', '"', '$']) {
            Some(0) => true,
            Some(q) => !["x", "b"]
                .iter()
                .any(|p| t.text[..q].eq_ignore_ascii_case(p)),
            None => false,
        }
}

/// Statements whose string literals hold SQL that runs: `DO`, `CREATE
/// FUNCTION|PROCEDURE` bodies (PostgreSQL), `PREPARE ... FROM '...'` and
/// `EXECUTE IMMEDIATE '...'` (MySQL, MariaDB).
fn runs_string_body(stmt: &[Token<'_>], dialect: Dialect) -> bool {
    let has_literal = stmt.iter().any(|t| t.kind == TokenKind::Literal);
    has_literal
        && match dialect {
            Dialect::Postgres => {
                stmt.first().is_some_and(|t| word_is(t, "DO"))
                    || (has_word(stmt, "CREATE")
                        && (has_word(stmt, "FUNCTION") || has_word(stmt, "PROCEDURE")))
            }
            Dialect::MySql => {
                has_word(stmt, "PREPARE")
                    || stmt
                        .windows(2)
                        .any(|w| word_is(&w[0], "EXECUTE") && word_is(&w[1], "IMMEDIATE"))
            }
        }
}

/// The string literals of a statement as text, adjacent ones joined (the
/// server concatenates `'a' 'b'`, in PostgreSQL across a newline); None
/// for one the gateway cannot decode (`U&'...'` with escapes).
fn string_bodies<'a>(
    stmt: &[Token<'a>],
    dialect: Dialect,
    reading: Reading,
) -> Vec<Option<Cow<'a, str>>> {
    let mut out: Vec<Option<Cow<'a, str>>> = Vec::new();
    let mut joining = false;
    for t in stmt {
        if !is_string(t) {
            joining = false;
            continue;
        }
        let body = string_body(t, dialect, reading);
        match (joining, out.last_mut(), body) {
            (true, Some(Some(prev)), Some(body)) => prev.to_mut().push_str(&body),
            (true, Some(prev), None) => *prev = None,
            (true, Some(None), Some(_)) => {}
            (_, _, body) => out.push(body),
        }
        joining = true;
    }
    out
}

/// The text of a string literal, unescaped as far as keywords go; None
/// for one that cannot be read (`U&'...'` with escapes).
fn string_body<'a>(t: &Token<'a>, dialect: Dialect, reading: Reading) -> Option<Cow<'a, str>> {
    let text = t.text;
    if let Some(rest) = text.strip_prefix('$') {
        // `$tag$ ... $tag$`
        let tag_len = rest.find('$')? + 2;
        let body = text.get(tag_len..text.len().checked_sub(tag_len)?)?;
        return Some(Cow::Borrowed(body));
    }
    let q = text.find(['\'', '"'])?;
    let prefix = &text[..q];
    let quote = text[q..].chars().next()?;
    let body = text.get(q + 1..text.len().checked_sub(1)?)?;
    if !text.ends_with(quote) {
        return None;
    }
    let unicode = dialect == Dialect::Postgres && prefix.eq_ignore_ascii_case("u&");
    let backslash = match dialect {
        Dialect::Postgres => prefix.eq_ignore_ascii_case("e") || reading == Reading::OtherBackslash,
        Dialect::MySql => reading != Reading::OtherBackslash,
    };
    let escapes = backslash || (unicode && body.contains('\\'));
    let plain = !escapes;
    if plain && !body.contains(quote) {
        return Some(Cow::Borrowed(body));
    }
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote && chars.peek() == Some(&quote) {
            chars.next();
            out.push(quote);
        } else if c == '\\' && backslash && !unicode && dialect == Dialect::Postgres {
            out.push(pg_escape(&mut chars)?);
        } else if c == '\\' && backslash && !unicode {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0' | 'Z' | 'b') => out.push(' '),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    if unicode {
        return unicode_unescape(&out).map(Cow::Owned);
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests;
