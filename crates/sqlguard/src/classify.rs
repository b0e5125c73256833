//! The rules as the checker asks them, per statement and for either
//! dialect: password and account changes, catalogue writes, dynamic SQL,
//! statements whose string literals are SQL that runs, and whether a
//! statement cut short is plainly harmless. Each dispatches to the
//! `postgres` or `mysql` rules where the dialects differ.

use latchkey_sqlnorm::{Token, TokenKind};

use crate::Dialect;
use crate::mysql::{
    my_changes_password, my_sys_runs_sql, my_writes_accounts, my_writes_catalogue, prepare_from,
};
use crate::postgres::{pg_changes_password, pg_writes_catalogue};
use crate::tokens::{has_word, ident, is_string, names_any, punct_is, word_is};

/// A statement cut short that cannot become a password change or a KILL
/// whatever follows: a query or data change with no suspicious word so
/// far.
pub(crate) fn plainly_harmless(stmt: &[Token<'_>]) -> bool {
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
pub(crate) fn changes_password(stmt: &[Token<'_>], dialect: Dialect) -> bool {
    match dialect {
        Dialect::Postgres => pg_changes_password(stmt),
        Dialect::MySql => my_changes_password(stmt),
    }
}

/// Writes to where accounts and their credentials live: MySQL's
/// `mysql.user` and `mysql.global_priv` tables, PostgreSQL's `pg_authid`
/// catalogue, and PostgreSQL's `ALTER SYSTEM` (which can change
/// `password_encryption`, `hba_file`...).
pub(crate) fn changes_accounts(stmt: &[Token<'_>], dialect: Dialect) -> bool {
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

/// SQL built at run time. PostgreSQL: `EXECUTE` in a routine body
/// (PL/pgSQL's runs a string; `EXECUTE format(...)` too; PL/Perl's and
/// PL/Tcl's `spi_exec*`), `dblink` and `dblink_exec` anywhere, `COPY ...
/// PROGRAM`. MySQL: `EXECUTE IMMEDIATE` with anything, and
/// `PREPARE name FROM` anything but one string literal.
pub(crate) fn runs_dynamic_sql(stmt: &[Token<'_>], dialect: Dialect, in_body: bool) -> bool {
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
pub(crate) fn runs_sql_text(name: &str) -> bool {
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

/// Statements whose string literals hold SQL that runs: `DO`, `CREATE
/// FUNCTION|PROCEDURE` bodies (PostgreSQL), `PREPARE ... FROM '...'` and
/// `EXECUTE IMMEDIATE '...'` (MySQL, MariaDB).
pub(crate) fn runs_string_body(stmt: &[Token<'_>], dialect: Dialect) -> bool {
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
