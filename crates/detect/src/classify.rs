//! Which statements destroy data or change privileges.

use latchkey_audit::Severity;
use latchkey_sqlguard::{Dialect, Refusal, Rules, Verdict, check};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    /// A keyword or unquoted identifier.
    Word(&'a str),
    /// A quoted identifier: never a keyword.
    Quoted,
    Open,
    Close,
    Semi,
    /// Anything else: operators, `?`, numbers, literals, parameters.
    Other,
}

/// Splits SQL into tokens. Made for normalised text (literals already `?`,
/// no comments) but safe on any input: strings, quoted identifiers,
/// dollar quotes and comments are skipped, unterminated ones run to the
/// end.
fn tokens(sql: &str) -> Vec<Tok<'_>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // Finds `close` from `from`, returning the index after it (or the end).
    let skip_to = |from: usize, close: &[u8]| -> usize {
        b.get(from..)
            .and_then(|rest| rest.windows(close.len()).position(|w| w == close))
            .map_or(b.len(), |p| from + p + close.len())
    };
    while i < b.len() {
        let c = b[i];
        match c {
            c if c.is_ascii_whitespace() || c.is_ascii_control() => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| i + p + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // PostgreSQL nests block comments.
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'\'' | b'"' | b'`' => {
                // A doubled quote continues the string or identifier.
                let mut j = i + 1;
                loop {
                    match b[j.min(b.len())..].iter().position(|&x| x == c) {
                        None => {
                            j = b.len();
                            break;
                        }
                        Some(p) => {
                            j += p + 1;
                            if b.get(j) != Some(&c) {
                                break;
                            }
                            j += 1;
                        }
                    }
                }
                out.push(if c == b'\'' { Tok::Other } else { Tok::Quoted });
                i = j;
            }
            b'$' => {
                // `$tag$...$tag$` or `$$...$$`; otherwise a parameter `$1`.
                let tag_end = b[i + 1..]
                    .iter()
                    .position(|&x| !(x.is_ascii_alphanumeric() || x == b'_' || x >= 0x80))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(e) if b[e] == b'$' && !b[i + 1].is_ascii_digit() => {
                        let tag = &b[i..=e];
                        i = skip_to(e + 1, tag);
                    }
                    _ => {
                        i += 1;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Other);
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'$') || b[i] >= 0x80)
                {
                    i += 1;
                }
                // Both ends are at ASCII bytes or the end: char boundaries.
                out.push(Tok::Word(&sql[start..i]));
            }
            c if c.is_ascii_digit() => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                out.push(Tok::Other);
            }
            b'(' => {
                out.push(Tok::Open);
                i += 1;
            }
            b')' => {
                out.push(Tok::Close);
                i += 1;
            }
            b';' => {
                out.push(Tok::Semi);
                i += 1;
            }
            _ => {
                out.push(Tok::Other);
                i += 1;
            }
        }
    }
    out
}

fn is_word(tok: Option<&Tok<'_>>, word: &str) -> bool {
    matches!(tok, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
}

/// The index after the `)` that closes the `(` at `open`.
fn matching_close(toks: &[Tok<'_>], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// A `WHERE` outside every parenthesis.
fn top_level_where(toks: &[Tok<'_>]) -> bool {
    let mut depth = 0usize;
    for t in toks {
        match t {
            Tok::Open => depth += 1,
            Tok::Close => depth = depth.saturating_sub(1),
            Tok::Word(w) if depth == 0 && w.eq_ignore_ascii_case("WHERE") => return true,
            _ => {}
        }
    }
    false
}

type Class = (&'static str, Severity);

fn worse(a: Option<Class>, b: Option<Class>) -> Option<Class> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.1 > x.1 { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// What `DROP <this>` is called.
fn drop_label(toks: &[Tok<'_>]) -> Class {
    const MEDIUM: &[(&str, &str)] = &[
        ("TABLE", "DROP TABLE"),
        ("VIEW", "DROP VIEW"),
        ("INDEX", "DROP INDEX"),
        ("SEQUENCE", "DROP SEQUENCE"),
        ("FUNCTION", "DROP FUNCTION"),
        ("PROCEDURE", "DROP PROCEDURE"),
        ("TRIGGER", "DROP TRIGGER"),
        ("TYPE", "DROP TYPE"),
        ("EXTENSION", "DROP EXTENSION"),
        ("ROLE", "DROP ROLE"),
        ("USER", "DROP USER"),
        ("OWNED", "DROP OWNED"),
        ("TABLESPACE", "DROP TABLESPACE"),
    ];
    let mut i = 1;
    // `DROP TEMPORARY TABLE` (MySQL), `DROP MATERIALIZED VIEW`, `DROP
    // FOREIGN TABLE`.
    if ["TEMPORARY", "MATERIALIZED", "FOREIGN"]
        .iter()
        .any(|w| is_word(toks.get(i), w))
    {
        i += 1;
    }
    // MySQL's DROP SCHEMA is DROP DATABASE; PostgreSQL's drops every
    // object in it.
    if is_word(toks.get(i), "DATABASE") {
        return ("DROP DATABASE", Severity::High);
    }
    if is_word(toks.get(i), "SCHEMA") {
        return ("DROP SCHEMA", Severity::High);
    }
    MEDIUM
        .iter()
        .find(|(w, _)| is_word(toks.get(i), w))
        .map_or(("DROP", Severity::Medium), |(_, label)| {
            (*label, Severity::Medium)
        })
}

/// One statement (no top-level `;`).
fn classify(toks: &[Tok<'_>]) -> Option<Class> {
    let start = toks.iter().position(|t| *t != Tok::Open)?;
    let toks = &toks[start..];
    let Tok::Word(first) = toks[0] else {
        return None;
    };
    let first = first.to_ascii_uppercase();
    match first.as_str() {
        "DROP" => Some(drop_label(toks)),
        "TRUNCATE" => Some(("TRUNCATE", Severity::High)),
        "DELETE" => (!top_level_where(toks)).then_some(("DELETE without WHERE", Severity::High)),
        "UPDATE" => (!top_level_where(toks)).then_some(("UPDATE without WHERE", Severity::Medium)),
        "GRANT" => Some(("GRANT", Severity::Medium)),
        "REVOKE" => Some(("REVOKE", Severity::Medium)),
        "ALTER" if is_word(toks.get(1), "ROLE") => Some(("ALTER ROLE", Severity::Medium)),
        "ALTER" if is_word(toks.get(1), "USER") => Some(("ALTER USER", Severity::Medium)),
        "CREATE" => {
            let label = if is_word(toks.get(1), "ROLE") {
                "CREATE ROLE ... SUPERUSER"
            } else if is_word(toks.get(1), "USER") {
                "CREATE USER ... SUPERUSER"
            } else {
                return None;
            };
            let mut depth = 0usize;
            toks.iter()
                .any(|t| match t {
                    Tok::Open => {
                        depth += 1;
                        false
                    }
                    Tok::Close => {
                        depth = depth.saturating_sub(1);
                        false
                    }
                    Tok::Word(w) => depth == 0 && w.eq_ignore_ascii_case("SUPERUSER"),
                    _ => false,
                })
                .then_some((label, Severity::Medium))
        }
        // EXPLAIN ANALYZE runs the statement.
        "EXPLAIN" => {
            let mut i = 1;
            let mut analyze = false;
            if toks.get(1) == Some(&Tok::Open) {
                let end = matching_close(toks, 1);
                analyze = toks[1..end]
                    .iter()
                    .any(|t| matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case("ANALYZE") || w.eq_ignore_ascii_case("ANALYSE")));
                i = end;
            } else {
                while let Some(Tok::Word(w)) = toks.get(i) {
                    if w.eq_ignore_ascii_case("ANALYZE") || w.eq_ignore_ascii_case("ANALYSE") {
                        analyze = true;
                    } else if !w.eq_ignore_ascii_case("VERBOSE") {
                        break;
                    }
                    i += 1;
                }
            }
            if analyze {
                classify(&toks[i.min(toks.len())..])
            } else {
                None
            }
        }
        // `WITH a AS (...), b AS (...) main`: data-modifying bodies and
        // the main statement both count.
        "WITH" => {
            let mut found = None;
            let mut i = 1;
            while i < toks.len() {
                match toks[i] {
                    Tok::Open => {
                        let end = matching_close(toks, i);
                        let inner = &toks[i + 1..end.saturating_sub(1).max(i + 1)];
                        found = worse(found, classify(inner));
                        i = end;
                        // The main statement follows a body's `)`.
                        if let Some(Tok::Word(w)) = toks.get(i)
                            && !w.eq_ignore_ascii_case("AS")
                        {
                            return worse(found, classify(&toks[i..]));
                        }
                    }
                    _ => i += 1,
                }
            }
            found
        }
        _ => None,
    }
}

/// Whether a statement destroys data or changes privileges, and how badly:
/// the label (`DROP TABLE`, `DELETE without WHERE`, `GRANT`...) and the
/// severity.
///
/// Meant for the normalised text the audit trail holds (literals `?`, no
/// comments), compared ignoring case; safe on any text. Several statements
/// separated by `;` give the most severe. A `WHERE` counts only outside
/// parentheses, so `DELETE FROM t WHERE id IN (...)` is fine but `UPDATE t
/// SET a = (SELECT b FROM u WHERE ...)` is not. `WITH` bodies and the
/// statement after them are each classified, and `EXPLAIN ANALYZE` looks
/// at the statement it runs.
///
/// High: password and authentication changes (`ALTER ROLE ... PASSWORD`,
/// `SET PASSWORD`, `ALTER USER ... IDENTIFIED BY`, `CREATE USER`: what
/// `latchkey-sqlguard` refuses), `DROP DATABASE`, `DROP SCHEMA`,
/// `TRUNCATE`, `DELETE` without `WHERE`. Medium: other `DROP`s, `UPDATE` without `WHERE`, `GRANT`,
/// `REVOKE`, `ALTER ROLE`, `ALTER USER`, `CREATE ROLE/USER ... SUPERUSER`.
pub fn is_destructive(statement: &str) -> Option<(&'static str, Severity)> {
    // What the gateways refuse by default: a changed password lets the
    // principal log in past the gateway.
    // (MySQL's refusals also cover every `ALTER USER`; here only those
    // naming a password or an authentication method count.)
    let refused = Verdict::Refuse(Refusal::PasswordChange);
    // Split once: this runs on every statement the trail writes.
    let toks = tokens(statement);
    let names_password = toks.iter().any(|t| {
        matches!(t, Tok::Word(x) if x.eq_ignore_ascii_case("PASSWORD") || x.eq_ignore_ascii_case("IDENTIFIED"))
    });
    if names_password
        && [Dialect::Postgres, Dialect::MySql]
            .into_iter()
            .any(|d| check(statement.as_bytes(), d, Rules::default(), true) == refused)
    {
        return Some(("password or authentication change", Severity::High));
    }
    let mut found = None;
    let mut depth = 0usize;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Open => depth += 1,
            Tok::Close => depth = depth.saturating_sub(1),
            Tok::Semi if depth == 0 => {
                found = worse(found, classify(&toks[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    worse(found, classify(&toks[start..]))
}

#[cfg(test)]
mod password_tests {
    use super::*;

    #[test]
    fn password_changes_are_destructive() {
        for sql in [
            "SET PASSWORD = ?",
            "SET PASSWORD FOR ?@? = ?",
            "ALTER USER app IDENTIFIED BY ?",
            "GRANT ALL ON *.* TO app IDENTIFIED BY ?",
            "ALTER ROLE app PASSWORD ?",
            "alter user app with encrypted password ?",
            "CREATE USER evil IDENTIFIED BY ?",
        ] {
            assert_eq!(
                is_destructive(sql),
                Some(("password or authentication change", Severity::High)),
                "{sql}"
            );
        }
        assert_eq!(
            is_destructive("UPDATE users SET password = ? WHERE id = ?"),
            None
        );
        assert_eq!(
            is_destructive("ALTER ROLE app SET search_path = ?"),
            Some(("ALTER ROLE", Severity::Medium))
        );
        assert_eq!(
            is_destructive("ALTER USER bob WITH SUPERUSER"),
            Some(("ALTER USER", Severity::Medium))
        );
    }
}
