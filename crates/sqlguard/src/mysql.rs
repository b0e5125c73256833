//! The MySQL and MariaDB rules: password and account changes (`SET
//! PASSWORD` wherever a statement may start), `SHUTDOWN`, server-side
//! files and plugins, writes to the `mysql` schema, `KILL` parsing, and
//! the `sys` procedures and `PREPARE ... FROM` that run SQL text.

use latchkey_sqlnorm::{Token, TokenKind};

use crate::tokens::{after, after_word, is_string, names_any, punct_is, table_position, word_is};
use crate::{Kill, KillForce, KillScope};

/// MySQL and MariaDB: `ALTER USER`, `CREATE USER` (any: a new account
/// logs in directly), `... IDENTIFIED BY|WITH|VIA|USING` (`GRANT`
/// included), and a `SET` that starts a statement (anywhere: a routine,
/// trigger or event body, `SET STATEMENT ... FOR`, a handler) naming
/// `PASSWORD`.
pub(crate) fn my_changes_password(stmt: &[Token<'_>]) -> bool {
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
pub(crate) fn my_manages_accounts(stmt: &[Token<'_>]) -> bool {
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
pub(crate) fn shuts_down(stmt: &[Token<'_>]) -> bool {
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

/// MySQL and MariaDB server-side files and shared libraries, the
/// siblings of PostgreSQL's
/// [`server_files`](crate::postgres::server_files): `SELECT ... INTO
/// OUTFILE|DUMPFILE 'file'` (anywhere, routine bodies included; `INTO @var`
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
pub(crate) fn my_server_files(stmt: &[Token<'_>], versioned: bool) -> bool {
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
pub(crate) fn versioned_comment(sql: &str) -> bool {
    let b = sql.as_bytes();
    b.windows(3).enumerate().any(|(i, w)| {
        w == b"/*!" && b.get(i + 3).is_some_and(u8::is_ascii_digit)
            || (w == b"/*M" && b.get(i + 3) == Some(&b'!'))
    })
}

/// A `SET` that is part of something else: `CHARACTER SET`, a foreign
/// key's `ON DELETE|UPDATE SET NULL|DEFAULT`, `ALTER COLUMN ... SET
/// DEFAULT|VISIBLE|INVISIBLE`, the `SET(...)` column type.
pub(crate) fn not_a_statement(stmt: &[Token<'_>], at: usize) -> bool {
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
pub(crate) fn assigns_columns(stmt: &[Token<'_>], at: usize) -> bool {
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

/// MySQL and MariaDB: a write (`INSERT`, `UPDATE`, `REPLACE`, `DELETE`,
/// `LOAD`, `RENAME`, `ALTER`, `CREATE`, `DROP`, `TRUNCATE`) that names
/// any table of the `mysql` schema (`mysql.proc` holds routine bodies,
/// `mysql.event` events, `mysql.db` and `mysql.*_priv` privileges,
/// `mysql.servers` FEDERATED targets, `mysql.plugin` and `mysql.func`
/// shared libraries loaded at start), or one of those tables without a
/// schema where a table goes.
pub(crate) fn my_writes_catalogue(stmt: &[Token<'_>]) -> bool {
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
pub(crate) fn my_writes_accounts(stmt: &[Token<'_>]) -> bool {
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

/// `KILL [HARD | SOFT] [CONNECTION | QUERY] <decimal id>` and nothing else.
pub(crate) fn parse_kill(stmt: &[Token<'_>]) -> Option<Kill> {
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

/// MariaDB's `sys` schema routines that run SQL built from their
/// arguments: `execute_prepared_stmt` (any SQL text), and
/// `statement_performance_analyzer`, `table_exists`, `create_synonym_db`,
/// `diagnostics`, `ps_trace_thread`, `ps_trace_statement_digest`, which
/// `PREPARE` statements naming their table, schema or file arguments.
/// Named `sys.x` anywhere, or without a schema after `CALL` (the
/// session's database may be `sys`); `execute_prepared_stmt` anywhere.
pub(crate) fn my_sys_runs_sql(stmt: &[Token<'_>]) -> bool {
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
pub(crate) fn prepare_from<'s, 'a>(stmt: &'s [Token<'a>]) -> Option<&'s [Token<'a>]> {
    let at = stmt.iter().position(|t| word_is(t, "PREPARE"))?;
    let from = stmt[at..].iter().position(|t| word_is(t, "FROM"))?;
    Some(&stmt[at + from + 1..])
}
