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
//! Multi-byte client character sets (GBK, Big5, SJIS) can hide a
//! backslash or backtick inside a character; SQL where that could happen
//! is refused when it names anything this crate looks for.
//!
//! Not caught, and cannot be by any lexer: SQL built at run time
//! (`EXECUTE 'ALTER ' || 'ROLE ...'` in PL/pgSQL, `PREPARE s FROM @v`,
//! procedures that build statements). String bodies that hold SQL as
//! written (`DO $$ ... $$`, `CREATE FUNCTION ... AS '...'`, `PREPARE s FROM
//! '...'`, `EXECUTE IMMEDIATE '...'`) are checked. The robust defence
//! against a changed password is upstream authentication that needs no
//! password (`--auth cert`) with `pg_hba.conf` admitting the database user
//! only from the gateway.

use std::borrow::Cow;

pub use latchkey_sqlnorm::Dialect;
use latchkey_sqlnorm::{Reading, Token, TokenKind, tokens_read};

/// The policy action a session needs, on its `rds-db:connect` resource,
/// for password and authentication changes to go through.
pub const CHANGE_PASSWORD_ACTION: &str = "latchkey:ChangeDatabasePassword";

/// How deep string bodies holding SQL are followed (`DO` in `DO`...).
const MAX_DEPTH: usize = 2;

/// What a session may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Password and authentication changes go through (the policy allows
    /// `latchkey:ChangeDatabasePassword`).
    pub allow_password_changes: bool,
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
    let verdict = check_text(&text, dialect, rules, complete, 0);
    if verdict == Verdict::Allow && complete && hidden_quote(sql, dialect) {
        // A multi-byte client character set may end a literal elsewhere
        // than the lexer thinks: anything that names what is refused is.
        return Verdict::Refuse(needles.refusal(sql));
    }
    verdict
}

/// Words that must appear, in any case, for SQL to be refused or
/// intercepted (a quick test that spares most statements the lexer).
struct Needles {
    password: &'static [&'static [u8]],
    kill: bool,
}

impl Needles {
    fn of(dialect: Dialect, rules: Rules) -> Self {
        let password: &'static [&'static [u8]] = match (rules.allow_password_changes, dialect) {
            (true, _) => &[],
            (false, Dialect::Postgres) => &[b"password"],
            (false, Dialect::MySql) => &[b"password", b"identified", b"user"],
        };
        Self {
            password,
            kill: dialect == Dialect::MySql,
        }
    }

    fn any_in(&self, sql: &[u8]) -> bool {
        self.password.iter().any(|n| contains_ci(sql, n))
            || (self.kill && contains_ci(sql, b"kill"))
    }

    fn refusal(&self, sql: &[u8]) -> Refusal {
        if self.password.iter().any(|n| contains_ci(sql, n)) {
            Refusal::PasswordChange
        } else {
            Refusal::Kill
        }
    }
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

fn check_text(sql: &str, dialect: Dialect, rules: Rules, complete: bool, depth: usize) -> Verdict {
    let mut first: Option<Verdict> = None;
    for &reading in Reading::all(dialect) {
        if !reading_differs(sql, dialect, reading) {
            continue;
        }
        let verdict = check_reading(sql, dialect, reading, rules, complete, depth);
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

fn check_reading(
    sql: &str,
    dialect: Dialect,
    reading: Reading,
    rules: Rules,
    complete: bool,
    depth: usize,
) -> Verdict {
    let toks: Vec<Token<'_>> = tokens_read(sql, dialect, reading).collect();
    let statements: Vec<&[Token<'_>]> = toks
        .split(|t| t.kind == TokenKind::Semi)
        .filter(|s| !s.is_empty())
        .collect();
    let mut kills = 0usize;
    let mut lone_kill = None;
    for (i, stmt) in statements.iter().enumerate() {
        let last = i + 1 == statements.len();
        if !complete && last && !plainly_harmless(stmt) {
            return Verdict::Refuse(if has_word(stmt, "KILL") && dialect == Dialect::MySql {
                Refusal::Kill
            } else {
                Refusal::PasswordChange
            });
        }
        if !rules.allow_password_changes && changes_password(stmt, dialect) {
            return Verdict::Refuse(Refusal::PasswordChange);
        }
        if dialect == Dialect::MySql && has_word(stmt, "KILL") {
            kills += 1;
            lone_kill = parse_kill(stmt);
        }
        // SQL written in a string that the statement runs or stores.
        if depth < MAX_DEPTH && runs_string_body(stmt, dialect) {
            for body in stmt.iter().filter_map(|t| string_body(t, dialect, reading)) {
                match check_text(&body, dialect, rules, true, depth + 1) {
                    Verdict::Allow => {}
                    Verdict::Kill(_) => return Verdict::Refuse(Refusal::Kill),
                    refused @ Verdict::Refuse(_) => return refused,
                }
            }
        }
    }
    match (kills, lone_kill) {
        (0, _) => Verdict::Allow,
        (1, Some(k)) if statements.len() == 1 && depth == 0 && complete => Verdict::Kill(k),
        _ => Verdict::Refuse(Refusal::Kill),
    }
}

fn word_is(t: &Token<'_>, word: &str) -> bool {
    t.kind == TokenKind::Word && t.text.eq_ignore_ascii_case(word)
}

fn has_word(stmt: &[Token<'_>], word: &str) -> bool {
    stmt.iter().any(|t| word_is(t, word))
}

/// A statement cut short that cannot become a password change or a KILL
/// whatever follows: a query or data change with no suspicious word so
/// far.
fn plainly_harmless(stmt: &[Token<'_>]) -> bool {
    const PLAIN: [&str; 8] = [
        "SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "VALUES", "COPY", "WITH",
    ];
    let Some(first) = stmt
        .iter()
        .find(|t| !(t.kind == TokenKind::Punct && t.text == "("))
    else {
        return false;
    };
    PLAIN.iter().any(|w| word_is(first, w))
        && !stmt.iter().any(|t| {
            [
                "KILL",
                "PASSWORD",
                "IDENTIFIED",
                "ROLE",
                "USER",
                "PREPARE",
                "EXECUTE",
                "DO",
            ]
            .iter()
            .any(|w| word_is(t, w))
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

/// `ALTER|CREATE ROLE|USER|GROUP ... PASSWORD` (also `ENCRYPTED
/// PASSWORD`, `PASSWORD NULL`); not `... USER MAPPING` (a foreign
/// server's credentials).
fn pg_changes_password(stmt: &[Token<'_>]) -> bool {
    let role_at = stmt.windows(2).position(|w| {
        (word_is(&w[0], "ALTER") || word_is(&w[0], "CREATE"))
            && ["ROLE", "USER", "GROUP"].iter().any(|r| word_is(&w[1], r))
    });
    let Some(at) = role_at else {
        return false;
    };
    let rest = &stmt[at + 2..];
    if word_is(&stmt[at + 1], "USER") && rest.first().is_some_and(|t| word_is(t, "MAPPING")) {
        return false;
    }
    has_word(rest, "PASSWORD")
}

/// MySQL and MariaDB: `ALTER USER`, `CREATE USER` (any: a new account
/// logs in directly), `... IDENTIFIED BY|WITH|VIA|USING` (`GRANT`
/// included), `SET PASSWORD` where a statement starts (also in a
/// procedure body or `SET STATEMENT ... FOR`).
fn my_changes_password(stmt: &[Token<'_>]) -> bool {
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
    // `SET` where a statement starts, then PASSWORD as a name that is not
    // a variable's (`@password`) or a column's (`t.password`).
    const STARTS: [&str; 7] = ["BEGIN", "THEN", "ELSE", "DO", "FOR", "LOOP", "REPEAT"];
    stmt.iter().enumerate().any(|(i, t)| {
        let at_start = match i.checked_sub(1).and_then(|p| stmt.get(p)) {
            None => true,
            Some(prev) => {
                STARTS.iter().any(|w| word_is(prev, w))
                    || (prev.kind == TokenKind::Punct && prev.text == ":")
            }
        };
        word_is(t, "SET")
            && at_start
            && stmt[i + 1..].iter().enumerate().any(|(j, p)| {
                let before = stmt.get(i + j);
                word_is(p, "PASSWORD")
                    && !before.is_some_and(|b| {
                        b.kind == TokenKind::Punct && (b.text == "@" || b.text == ".")
                    })
            })
    })
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

/// The text of a string literal, unescaped as far as keywords go; None
/// for numbers and hex or bit strings.
fn string_body<'a>(t: &Token<'a>, dialect: Dialect, reading: Reading) -> Option<Cow<'a, str>> {
    if t.kind != TokenKind::Literal {
        return None;
    }
    let text = t.text;
    if let Some(rest) = text.strip_prefix('$') {
        // `$tag$ ... $tag$`
        let tag_len = rest.find('$')? + 2;
        let body = text.get(tag_len..text.len().checked_sub(tag_len)?)?;
        return Some(Cow::Borrowed(body));
    }
    let q = text.find(['\'', '"'])?;
    let prefix = &text[..q];
    if ["x", "b", "X", "B"].contains(&prefix) {
        return None;
    }
    let quote = text[q..].chars().next()?;
    let body = text.get(q + 1..text.len().checked_sub(1)?)?;
    if !text.ends_with(quote) {
        return None;
    }
    let backslash = match dialect {
        Dialect::Postgres => prefix.eq_ignore_ascii_case("e") || reading == Reading::OtherBackslash,
        Dialect::MySql => reading != Reading::OtherBackslash,
    };
    if !backslash && !body.contains(quote) {
        return Some(Cow::Borrowed(body));
    }
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote && chars.peek() == Some(&quote) {
            chars.next();
            out.push(quote);
        } else if c == '\\' && backslash {
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
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests;
