//! The PostgreSQL rules: role management and membership, writes to
//! `pg_catalog` and `pg_authid`, server-side files and configuration
//! reload, and signalling other backends.

use latchkey_sqlnorm::{Token, TokenKind};

use crate::Dialect;
use crate::tokens::{after, after_word, has_word, ident, is_string, names_any, punct_is, word_is};

/// Role management: `ALTER|CREATE|DROP ROLE|USER|GROUP` whatever follows
/// (a password, `RENAME`, `NOLOGIN`, `CONNECTION LIMIT 0`, `VALID UNTIL`
/// lock the gateway out; `SUPERUSER`, `SET search_path` change what every
/// principal sharing the role runs), and role membership (`GRANT|REVOKE
/// role TO|FROM user`, a `GRANT` with no `ON`); not `... USER MAPPING` (a
/// foreign server's credentials) or table privileges.
pub(crate) fn pg_changes_password(stmt: &[Token<'_>]) -> bool {
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
pub(crate) fn grants_membership(stmt: &[Token<'_>]) -> bool {
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

/// PostgreSQL server-side file access and configuration reload: `COPY
/// ... TO|FROM 'file'` (not `STDIN`/`STDOUT`, which is what psql's
/// `\copy` sends), `lo_import`/`lo_export` (server paths),
/// adminpack's `pg_file_*`, `pg_read_file`/`pg_read_binary_file` (which
/// read `pg_hba.conf`, keys, other databases' files), `pg_reload_conf`.
/// Written out, a superuser's `COPY (SELECT 'host all all ... trust') TO
/// '.../pg_hba.conf'; SELECT pg_reload_conf()` opens the server to
/// anyone.
pub(crate) fn server_files(stmt: &[Token<'_>], dialect: Dialect) -> bool {
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

/// PostgreSQL: a write to a system catalogue, `pg_catalog.*`,
/// `pg_toast.*` or an unqualified name starting `pg_` (PostgreSQL reserves
/// the prefix; `UPDATE pg_proc SET prosrc = ...` rewrites any function),
/// as the target of `INSERT INTO`, `UPDATE`, `DELETE FROM`, `MERGE INTO`,
/// `TRUNCATE`, `COPY ... FROM`, `ALTER|DROP TABLE|VIEW|INDEX|SEQUENCE|
/// FUNCTION|PROCEDURE|ROUTINE|TRIGGER|RULE|POLICY ...` (`ONLY`, `IF
/// EXISTS`, `ON` and comma lists followed), and `CREATE ... FUNCTION|
/// PROCEDURE pg_catalog.x` (replacing a catalogue function).
pub(crate) fn pg_writes_catalogue(stmt: &[Token<'_>]) -> bool {
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
pub(crate) fn pg_catalogue_name(stmt: &[Token<'_>], at: usize) -> bool {
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

/// PostgreSQL: a call (or any mention) of `pg_terminate_backend` or
/// `pg_cancel_backend`.
pub(crate) fn signals_backend(stmt: &[Token<'_>]) -> bool {
    const SIGNALS: [&str; 2] = ["pg_terminate_backend", "pg_cancel_backend"];
    stmt.iter().any(|t| match t.kind {
        TokenKind::Word => SIGNALS.iter().any(|w| word_is(t, w)),
        TokenKind::QuotedIdent => names_any(t, &SIGNALS),
        _ => false,
    })
}
