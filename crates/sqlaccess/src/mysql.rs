//! MySQL and MariaDB statements classified (see [`crate::classify`]).
//!
//! The message is first cut into statements by the `latchkey-sqlnorm`
//! lexer (the gateway's own reading of MySQL quotes and comments). Each
//! statement is rebuilt without its comments: an executable comment
//! (`/*!NNNNN …*/`, `/*M!NNNNNN …*/`) keeps its content as SQL whatever the
//! version (the server may run it: more accesses than run is fine), every
//! other comment becomes a space. If a backslash or a double quote could be
//! read another way (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`, which a session
//! can turn on) and the statements then split or tokenise differently, the
//! message is unclassified.
//!
//! Statements sqlparser does not know (or gets wrong) are recognised from
//! their tokens; the rest go through sqlparser's `MySqlDialect` one
//! statement at a time (a piece that parses into anything but exactly one
//! statement is unclassified), and a visitor walks the whole tree, so that
//! every table named anywhere (`FROM`, joins, subqueries in any expression,
//! derived tables, `UNION` parts; CTE names are tables outside their
//! `WITH` only) is read, and every function not native to MySQL or MariaDB
//! ([`crate::my_builtins`]) is executed.
//!
//! Names: `db.t` is `table/RID/db/db/t`; an unqualified name is in the
//! current database (`Scope::database`, or the last `USE` earlier in the
//! same message), with none the access is `Unclassified`.
//!
//! | Statement | Accesses |
//! |---|---|
//! | `SELECT`, `TABLE t`, `VALUES`, `DO expr` | `Select` on each table read; `+Update` with `FOR UPDATE`; `+CopyOut` on each (or the database) with `INTO OUTFILE/DUMPFILE` |
//! | `INSERT` / `REPLACE` | `Insert` on the target (`+Delete` for `REPLACE`, `+Update` for `ON DUPLICATE KEY UPDATE`), `Select` on what it reads |
//! | `UPDATE` | `Update` on the tables assigned (all joined tables when a column is unqualified in a join), `Select` on the others |
//! | `DELETE` | `Delete` on the deleted tables, `Select` on the others |
//! | stored function anywhere, `CALL p` | `Execute` on the function (`LOAD_FILE()`: `CopyIn` on the database; MariaDB `NEXTVAL(s)`/`SETVAL(s, …)`: `Select` and `Update` on the sequence `s`, `LASTVAL(s)`: `Select`) |
//! | `CREATE TABLE/VIEW/INDEX/DATABASE/SCHEMA/SEQUENCE` | `Create` (`+Select` on a view's, `… SELECT`'s, `LIKE`'s sources; `+Alter` on an index's table) |
//! | `CREATE FUNCTION/PROCEDURE/TRIGGER/EVENT/PACKAGE` | `Create` (`+Alter` on a trigger's table) `+Unclassified`: the body is not analysed |
//! | `ALTER …` / `RENAME TABLE a TO b` | `Alter` (`RENAME`: `+Create` on the new name; `EXCHANGE PARTITION … WITH TABLE t`: `+Alter` on `t`; `REFERENCES t`: `+Select` on `t`) |
//! | `DROP …` / `TRUNCATE` | `Drop` on each object / `Truncate` |
//! | `GRANT`, `REVOKE`, users and roles, `SET ROLE|DEFAULT ROLE|PASSWORD` | `Grant` on the database |
//! | `ANALYZE/CHECK/OPTIMIZE/REPAIR/CHECKSUM TABLE` | `Admin` on each table (`CHECKSUM`: `+Select`) |
//! | `LOCK TABLES` | `Admin` and `Select` on each table, `+Update` for `WRITE` |
//! | `FLUSH`, `KILL`, `INSTALL/UNINSTALL`, replication (`CHANGE`, `START/STOP SLAVE|REPLICA`, `PURGE`, `RESET`), `SHUTDOWN`, `BINLOG`, `CACHE/LOAD INDEX`, `SET GLOBAL|PERSIST`, `SET` of a privileged session variable ([`PRIVILEGED_VARIABLES`]) | `Admin` on the database |
//! | `LOAD DATA|XML … INTO TABLE t` | `CopyIn` on `t` |
//! | `SHOW CREATE TABLE|VIEW`, `SHOW COLUMNS|INDEX`, `DESCRIBE t` | `Select` on the table |
//! | `SHOW GRANTS|PROCESSLIST|BINLOG…|MASTER|SLAVE|REPLICA…|ENGINE|RELAYLOG` | `Admin` on the database |
//! | other `SHOW` (without parentheses), `UNLOCK TABLES`, transactions, `XA`, `SET` of other variables, `HELP` | nothing |
//! | `EXPLAIN stmt` / `EXPLAIN ANALYZE stmt`, `ANALYZE stmt` | `Select` on each object of `stmt` / exactly `stmt`'s accesses |
//! | `USE db` | nothing; `ScopeChange::Database`, later statements resolve in `db` |
//! | `PREPARE s FROM '…'` | the literal's accesses, `prepares` |
//! | `EXECUTE s` / `DEALLOCATE|DROP PREPARE s` | `executes` / `deallocates` |
//!
//! Unclassified on purpose: whatever does not parse (sqlparser also
//! rejects some valid MySQL: `TABLE t`, `WITH … UPDATE|DELETE`, `NEXT
//! VALUE FOR s`, `FOR SYSTEM_TIME`, `RETURNING`); a piece that parses into
//! other than one statement; statement kinds not listed (`CREATE SERVER`,
//! `SIGNAL`, …); `PREPARE … FROM @var`, `EXECUTE IMMEDIATE`; routine,
//! trigger and event bodies (`CREATE FUNCTION|PROCEDURE|TRIGGER|EVENT`
//! adds an `Unclassified` access; `BEGIN NOT ATOMIC` is one); `SET
//! STATEMENT … FOR`; `SHOW … WHERE (…)`, `HANDLER … (…)`, `LOAD DATA … SET
//! c = (…)` and other token-level statements with parentheses where an
//! expression could hide a subquery; MERGE tables (`UNION = (…)`) and
//! FEDERATED `CONNECTION = '…'`; table functions; names with more than two
//! parts; `INTO` a table; nesting deeper than the parser's limit
//! ([`RECURSION_LIMIT`]) and more than [`MAX_OPERATORS`] operators or
//! [`MAX_SET_OPERATIONS`] `UNION`s in one statement (left-deep trees that
//! would otherwise overflow the stack); a message whose quotes another
//! reading (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`) would cut differently.
//!
//! Built-in functions are the union of MySQL's and MariaDB's (see
//! [`crate::my_builtins`]): a stored function named like a built-in of the
//! *other* server (`MEDIAN` on MySQL, say) and called unqualified is not
//! reported. A routine body that the server runs with its definer's
//! rights is not looked into: `Execute` on the routine is what is asked.
//!
//! `WHERE` on `UPDATE`/`DELETE` counts as present (`where_clause =
//! Some(true)`) only when it names a column or holds a subquery and no
//! operand of its top-level `OR`s is constant: `WHERE 1`, `WHERE 1=1`,
//! `WHERE 1=2`, `WHERE x=1 OR 1` all count as absent (literal values never
//! change a classification, so that `shape_only` holds).

use std::ops::ControlFlow;

use latchkey_sqlnorm::{Dialect, Reading, TokenKind};
use sqlparser::ast::{
    AlterViewOperation, AssignmentTarget, BinaryOperator, CreateTableLikeKind, Expr, FromTable,
    FunctionArg, FunctionArgExpr, FunctionArguments, LockType, ObjectName, ObjectNamePart,
    OnInsert, Query, Select, SetExpr, Statement, TableFactor, TableObject, TableWithJoins,
    UnaryOperator, UpdateTableFromKind, Visit, Visitor,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

use crate::my_builtins::NATIVE_FUNCTIONS;
use crate::{Access, Classified, Object, ObjectKind, Scope, ScopeChange, SqlAction};

/// How deep sqlparser may nest (expressions, subqueries); deeper is
/// unclassified.
const RECURSION_LIMIT: usize = 200;

/// Operators (`+`, `=`, `OR`, …) and set operations (`UNION`, …) one
/// statement may hold; more is unclassified (see `too_deep`).
const MAX_OPERATORS: usize = 5000;
const MAX_SET_OPERATIONS: usize = 300;

/// Built-ins MySQL's lexer only takes as such when `(` follows at once
/// (the `IGNORE_SPACE` list); sorted.
pub(crate) const IGNORE_SPACE_FUNCTIONS: &[&str] = &[
    "ADDDATE",
    "BIT_AND",
    "BIT_OR",
    "BIT_XOR",
    "CAST",
    "COUNT",
    "CURDATE",
    "CURTIME",
    "DATE_ADD",
    "DATE_SUB",
    "EXTRACT",
    "GROUP_CONCAT",
    "MAX",
    "MID",
    "MIN",
    "NOW",
    "POSITION",
    "SESSION_USER",
    "STD",
    "STDDEV",
    "STDDEV_POP",
    "STDDEV_SAMP",
    "SUBDATE",
    "SUBSTR",
    "SUBSTRING",
    "SUM",
    "SYSDATE",
    "SYSTEM_USER",
    "TRIM",
    "VARIANCE",
    "VAR_POP",
    "VAR_SAMP",
];

/// How deep `EXPLAIN`/`PREPARE`/`ANALYZE` may nest statements.
const MAX_NESTING: usize = 4;

/// Session variables whose `SET` (even `SESSION`) is `Admin`: those MySQL
/// restricts to `SYSTEM_VARIABLES_ADMIN`/`SESSION_VARIABLES_ADMIN` or
/// `SUPER` (binary logging, replication identity, row format) and
/// `foreign_key_checks` (integrity). `sql_mode` is not here: its effect on
/// quoting is covered by checking every reading.
pub(crate) const PRIVILEGED_VARIABLES: &[&str] = &[
    "binlog_direct_non_transactional_updates",
    "binlog_format",
    "binlog_row_image",
    "binlog_row_value_options",
    "binlog_rows_query_log_events",
    "character_set_database",
    "default_collation_for_utf8mb4",
    "default_table_encryption",
    "explicit_defaults_for_timestamp",
    "foreign_key_checks",
    "gtid_domain_id",
    "gtid_next",
    "gtid_seq_no",
    "immediate_server_version",
    "original_commit_timestamp",
    "original_server_version",
    "pseudo_replica_mode",
    "pseudo_slave_mode",
    "pseudo_thread_id",
    "rbr_exec_mode",
    "require_row_format",
    "server_id",
    "skip_replication",
    "sql_generate_invisible_primary_key",
    "sql_log_bin",
    "sql_log_off",
    "sql_require_primary_key",
    "transaction_write_set_extraction",
    "wsrep_on",
    "xa_detach_on_prepare",
];

/// See [`crate::classify`].
pub(crate) fn classify(sql: &str, scope: &Scope) -> Classified {
    classify_nested(sql, scope, 0)
}

fn classify_nested(sql: &str, scope: &Scope, depth: usize) -> Classified {
    let Some(split) = split(sql) else {
        return Classified::unclassified(scope, 1);
    };
    let statements = split.statements.len();
    let mut cx = Cx {
        db: scope.database.clone(),
        out: Classified {
            statements,
            shape_only: true,
            ..Classified::default()
        },
        depth,
    };
    cx.out.signals.stacked = statements > 1;
    cx.out.signals.comment = split.comment;
    for text in &split.statements {
        if cx.statement(text).is_err() {
            cx.unclassified();
            cx.out.shape_only = false;
        }
    }
    cx.out.finish()
}

/// The message cut into statements, comments removed.
struct Split {
    statements: Vec<String>,
    /// A comment inside a statement, or an executable comment anywhere.
    comment: bool,
}

/// Where `part` (a token's text) starts in `whole`.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let off = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (off.checked_add(part.len())? <= whole.len()).then_some(off)
}

/// Token texts and their offsets under one reading, `None` if a token runs
/// to the end of the input.
fn token_spans(sql: &str, reading: Reading) -> Option<Vec<(TokenKind, usize, usize)>> {
    let mut spans = Vec::new();
    for tok in latchkey_sqlnorm::tokens_read(sql, Dialect::MySql, reading) {
        if tok.kind == TokenKind::Unterminated {
            return None;
        }
        let start = offset_in(sql, tok.text)?;
        spans.push((tok.kind, start, start + tok.text.len()));
    }
    Some(spans)
}

fn split(sql: &str) -> Option<Split> {
    let spans = token_spans(sql, Reading::Default)?;
    if sql.contains(['\\', '"']) {
        // Another reading of quotes must cut the same tokens.
        for reading in [Reading::OtherBackslash, Reading::AnsiQuotes] {
            let other = token_spans(sql, reading)?;
            if other.len() != spans.len()
                || other.iter().zip(&spans).any(|(a, b)| {
                    a.1 != b.1 || a.2 != b.2 || (a.0 == TokenKind::Semi) != (b.0 == TokenKind::Semi)
                })
            {
                return None;
            }
        }
    }
    let mut out = Split {
        statements: Vec::new(),
        comment: false,
    };
    let mut text = String::new();
    // Whether this statement has a token yet, and whether it was a `-`.
    let mut prev: Option<bool> = None;
    // End of the previous token (of any statement).
    let mut last_end = 0;
    for &(kind, start, end) in &spans {
        let gap = sql.get(last_end..start)?;
        last_end = end;
        // Executable comments count wherever they are.
        if gap.contains("/*!") || gap.contains("/*M!") {
            out.comment = true;
        }
        if kind == TokenKind::Semi {
            if !text.is_empty() {
                out.statements.push(std::mem::take(&mut text));
            }
            prev = None;
            continue;
        }
        let this_minus = sql.get(start..end) == Some("-");
        if let Some(prev_minus) = prev {
            if gap.chars().all(char::is_whitespace) {
                text.push_str(gap);
                // `- -1` must not read as a `--` comment to sqlparser.
                if gap.is_empty() && prev_minus && this_minus {
                    text.push(' ');
                }
            } else {
                // A comment inside the statement (leading ones do not
                // count).
                out.comment = true;
                text.push(' ');
            }
        }
        text.push_str(sql.get(start..end)?);
        prev = Some(this_minus);
    }
    let tail = sql.get(last_end..)?;
    if tail.contains("/*!") || tail.contains("/*M!") {
        out.comment = true;
    }
    if !text.is_empty() {
        out.statements.push(text);
    }
    Some(out)
}

/// A token of one rebuilt statement.
#[derive(Clone, Copy)]
struct T<'a> {
    kind: TokenKind,
    text: &'a str,
    start: usize,
    end: usize,
}

impl T<'_> {
    fn is(&self, word: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(word)
    }

    fn punct(&self, p: &str) -> bool {
        self.kind == TokenKind::Punct && self.text == p
    }
}

fn toks(text: &str) -> Result<Vec<T<'_>>, ()> {
    let mut out = Vec::new();
    for tok in latchkey_sqlnorm::tokens(text, Dialect::MySql) {
        if matches!(tok.kind, TokenKind::Unterminated | TokenKind::Semi) {
            return Err(());
        }
        let start = offset_in(text, tok.text).ok_or(())?;
        out.push(T {
            kind: tok.kind,
            text: tok.text,
            start,
            end: start + tok.text.len(),
        });
    }
    Ok(out)
}

/// The classification under way.
struct Cx {
    db: Option<String>,
    out: Classified,
    depth: usize,
}

type R = Result<(), ()>;

/// A name as written: `(Some(db), name)` or `(None, name)`.
type Name = (Option<String>, String);

impl Cx {
    fn unclassified(&mut self) {
        let db = self.db.clone().unwrap_or_default();
        self.push_access(SqlAction::Unclassified, Object::database(&db), None);
    }

    fn push_access(&mut self, action: SqlAction, object: Object, where_clause: Option<bool>) {
        self.out.accesses.push(Access {
            action,
            object,
            where_clause,
        });
    }

    /// `action` on `name` (a table or a function), resolved in the current
    /// database if unqualified.
    fn obj(
        &mut self,
        action: SqlAction,
        kind: ObjectKind,
        name: &Name,
        where_clause: Option<bool>,
    ) {
        let Some(db) = name.0.clone().or_else(|| self.db.clone()) else {
            self.unclassified();
            return;
        };
        let object = Object {
            kind,
            database: db.clone(),
            schema: db,
            name: name.1.clone(),
        };
        self.push_access(action, object, where_clause);
    }

    fn table(&mut self, action: SqlAction, name: &Name) {
        self.obj(action, ObjectKind::Table, name, None);
    }

    /// `action` on a database (`None`: the current one, or `""`).
    fn on_db(&mut self, action: SqlAction, db: Option<&str>) {
        let db = db
            .map(str::to_owned)
            .or_else(|| self.db.clone())
            .unwrap_or_default();
        self.push_access(action, Object::database(&db), None);
    }

    fn statement(&mut self, text: &str) -> R {
        let t = toks(text)?;
        let Some(first) = t.first() else {
            return Ok(());
        };
        too_deep(&t)?;
        let w = |i: usize| {
            t.get(i)
                .filter(|x| x.kind == TokenKind::Word)
                .map(|x| x.text.to_ascii_uppercase())
        };
        let kw = w(0).unwrap_or_default();
        match kw.as_str() {
            "SELECT" | "WITH" | "TABLE" | "VALUES" => self.query_text(text, &t),
            _ if first.punct("(") => self.query_text(text, &t),
            "UPDATE" | "DELETE" => self.parsed(&dml_rewrite(text, &t)?),
            "INSERT" | "REPLACE" | "CALL" => self.parsed(text),
            "DO" => {
                let rest = text.get(t.get(1).ok_or(())?.start..).ok_or(())?;
                self.parsed(&format!("SELECT {rest}"))
            }
            "CREATE" => self.create(text, &t),
            "ALTER" => self.alter(text, &t),
            "DROP" => self.drop(&t),
            "RENAME" => self.rename(&t),
            "TRUNCATE" => {
                let i = if t.get(1).is_some_and(|x| x.is("TABLE")) {
                    2
                } else {
                    1
                };
                let (name, i) = name_at(&t, i)?;
                end(&t, i)?;
                self.table(SqlAction::Truncate, &name);
                Ok(())
            }
            "GRANT" | "REVOKE" => {
                self.on_db(SqlAction::Grant, None);
                Ok(())
            }
            "SET" => self.set(text, &t),
            "USE" => {
                let (name, i) = ident_at(&t, 1)?;
                end(&t, i)?;
                self.db = Some(name.clone());
                self.out.scope_changes.push(ScopeChange::Database(name));
                self.out.shape_only = false;
                Ok(())
            }
            "SHOW" => self.show(&t),
            "EXPLAIN" | "DESC" | "DESCRIBE" => self.explain(text, &t),
            "ANALYZE" => {
                let mut i = 1;
                if t.get(1)
                    .is_some_and(|x| x.is("NO_WRITE_TO_BINLOG") || x.is("LOCAL"))
                {
                    i = 2;
                }
                if t.get(i).is_some_and(|x| x.is("TABLE") || x.is("TABLES")) {
                    return self.table_list_admin(&t, i + 1, false);
                }
                // MariaDB `ANALYZE [FORMAT=JSON] stmt` runs stmt.
                let i = skip_format(&t, 1);
                self.nested(text, &t, i, false)
            }
            "CHECK" | "OPTIMIZE" | "REPAIR" | "CHECKSUM" => {
                let mut i = 1;
                if t.get(1)
                    .is_some_and(|x| x.is("NO_WRITE_TO_BINLOG") || x.is("LOCAL"))
                {
                    i = 2;
                }
                if !t
                    .get(i)
                    .is_some_and(|x| x.is("TABLE") || x.is("TABLES") || x.is("VIEW"))
                {
                    return Err(());
                }
                self.table_list_admin(&t, i + 1, kw == "CHECKSUM")
            }
            "LOCK" => self.lock(&t),
            "UNLOCK" => {
                if t.get(1).is_some_and(|x| x.is("TABLES") || x.is("TABLE")) && t.len() == 2 {
                    Ok(())
                } else {
                    self.on_db(SqlAction::Admin, None);
                    Ok(())
                }
            }
            "FLUSH" | "KILL" | "INSTALL" | "UNINSTALL" | "CHANGE" | "PURGE" | "RESET"
            | "SHUTDOWN" | "BINLOG" | "CACHE" => {
                self.on_db(SqlAction::Admin, None);
                Ok(())
            }
            "START" | "STOP" => {
                if w(1).as_deref() == Some("TRANSACTION") && kw == "START" {
                    no_parens(&t)
                } else {
                    self.on_db(SqlAction::Admin, None);
                    Ok(())
                }
            }
            "BEGIN" => match t.len() {
                1 => Ok(()),
                2 if t[1].is("WORK") => Ok(()),
                _ => Err(()),
            },
            "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "XA" | "HELP" => no_parens(&t),
            "LOAD" => self.load(&t),
            "HANDLER" => {
                let (name, i) = name_at(&t, 1)?;
                if t.get(i).is_none() {
                    return Err(());
                }
                no_parens(&t)?;
                self.table(SqlAction::Select, &name);
                Ok(())
            }
            "PREPARE" => self.prepare(&t),
            "EXECUTE" => {
                if t.get(1).is_some_and(|x| x.is("IMMEDIATE")) {
                    return Err(());
                }
                let (name, i) = ident_at(&t, 1)?;
                if t.get(i).is_some_and(|x| !x.is("USING")) {
                    return Err(());
                }
                no_parens(&t)?;
                self.out.executes = Some(name);
                Ok(())
            }
            "DEALLOCATE" => {
                if !t.get(1).is_some_and(|x| x.is("PREPARE")) {
                    return Err(());
                }
                let (name, i) = ident_at(&t, 2)?;
                end(&t, i)?;
                self.out.deallocates = Some(Some(name));
                Ok(())
            }
            _ => Err(()),
        }
    }

    /// A query, after `SELECT … INTO OUTFILE|DUMPFILE` and `LOCK IN SHARE
    /// MODE` (which sqlparser does not know) are taken out.
    fn query_text(&mut self, text: &str, t: &[T<'_>]) -> R {
        let mut keep: Vec<(usize, usize)> = Vec::new();
        let mut from = 0;
        let mut copy_out = false;
        let mut i = 0;
        while i < t.len() {
            if t[i].is("INTO")
                && t.get(i + 1)
                    .is_some_and(|x| x.is("OUTFILE") || x.is("DUMPFILE"))
            {
                copy_out = true;
                keep.push((from, t[i].start));
                // INTO OUTFILE 'file' [CHARACTER SET cs] [FIELDS|COLUMNS …]
                // [LINES …]: words and literals only.
                let mut j = i + 2;
                if !t.get(j).is_some_and(|x| x.kind == TokenKind::Literal) {
                    return Err(());
                }
                j += 1;
                while let Some(x) = t.get(j) {
                    let option = x.kind == TokenKind::Literal
                        || [
                            "CHARACTER",
                            "SET",
                            "CHARSET",
                            "FIELDS",
                            "COLUMNS",
                            "LINES",
                            "TERMINATED",
                            "OPTIONALLY",
                            "ENCLOSED",
                            "ESCAPED",
                            "STARTING",
                            "BY",
                        ]
                        .iter()
                        .any(|k| x.is(k))
                        || (x.kind == TokenKind::Word
                            && t.get(j - 1).is_some_and(|p| p.is("SET") || p.is("CHARSET")));
                    if !option {
                        break;
                    }
                    j += 1;
                }
                from = t.get(j).map_or(text.len(), |x| x.start);
                i = j;
                continue;
            }
            if t[i].is("LOCK")
                && t.get(i + 1).is_some_and(|x| x.is("IN"))
                && t.get(i + 2).is_some_and(|x| x.is("SHARE"))
                && t.get(i + 3).is_some_and(|x| x.is("MODE"))
            {
                keep.push((from, t[i].start));
                keep.push((0, 0));
                from = t.get(i + 4).map_or(text.len(), |x| x.start);
                i += 4;
                continue;
            }
            i += 1;
        }
        if keep.is_empty() {
            return self.parsed_with(text, copy_out);
        }
        keep.push((from, text.len()));
        let mut rebuilt = String::with_capacity(text.len());
        for (a, b) in keep {
            if (a, b) == (0, 0) {
                rebuilt.push_str(" FOR SHARE ");
            } else {
                rebuilt.push_str(text.get(a..b).ok_or(())?);
                rebuilt.push(' ');
            }
        }
        self.parsed_with(&rebuilt, copy_out)
    }

    fn parsed(&mut self, text: &str) -> R {
        self.parsed_with(text, false)
    }

    /// Parses one statement with sqlparser and classifies it.
    fn parsed_with(&mut self, text: &str, copy_out: bool) -> R {
        let dialect = MySqlDialect {};
        let mut parsed = Parser::new(&dialect)
            .with_recursion_limit(RECURSION_LIMIT)
            .try_with_sql(text)
            .and_then(|mut p| p.parse_statements())
            .map_err(|_| ())?;
        if parsed.len() != 1 {
            return Err(());
        }
        let stmt = parsed.pop().ok_or(())?;
        let mut c = Collector::default();
        let mut targets: Vec<(SqlAction, Name, Option<bool>)> = Vec::new();
        let mut functions: Vec<Name> = Vec::new();
        match &stmt {
            Statement::Query(_) => {}
            Statement::Insert(ins) => {
                let TableObject::TableName(name) = &ins.table else {
                    return Err(());
                };
                c.skip.push(name as *const ObjectName);
                let n = name2(name)?;
                targets.push((SqlAction::Insert, n.clone(), None));
                if ins.replace_into {
                    targets.push((SqlAction::Delete, n.clone(), None));
                }
                match &ins.on {
                    None => {}
                    Some(OnInsert::DuplicateKeyUpdate(_)) => {
                        targets.push((SqlAction::Update, n, None));
                    }
                    Some(_) => return Err(()),
                }
                if ins.returning.is_some() || ins.output.is_some() {
                    return Err(());
                }
            }
            Statement::Update(up) => {
                let wc = where_present(up.selection.as_ref());
                if up.selection.as_ref().is_some_and(const_comparison) {
                    c.tautology = true;
                }
                let mut tables = Vec::new();
                factors(&up.table, &mut tables);
                if let Some(UpdateTableFromKind::BeforeSet(f) | UpdateTableFromKind::AfterSet(f)) =
                    &up.from
                {
                    for twj in f {
                        factors(twj, &mut tables);
                    }
                }
                // Which tables get a column assigned.
                let mut all = false;
                let mut hit = vec![false; tables.len()];
                for a in &up.assignments {
                    let cols: Vec<&ObjectName> = match &a.target {
                        AssignmentTarget::ColumnName(n) => vec![n],
                        AssignmentTarget::Tuple(ns) => ns.iter().collect(),
                    };
                    for col in cols {
                        let parts = parts(col)?;
                        if parts.len() < 2 {
                            if tables.len() == 1 {
                                hit[0] = true;
                            } else {
                                all = true;
                            }
                            continue;
                        }
                        let q = &parts[..parts.len() - 1];
                        let mut found = false;
                        for (k, tf) in tables.iter().enumerate() {
                            if tf.matches(q) {
                                hit[k] = true;
                                found = true;
                            }
                        }
                        if !found {
                            all = true;
                        }
                    }
                }
                for (k, tf) in tables.iter().enumerate() {
                    if all || hit[k] {
                        c.skip.push(tf.ptr);
                        targets.push((SqlAction::Update, tf.name.clone(), Some(wc)));
                    }
                }
                if up.returning.is_some() || up.output.is_some() {
                    return Err(());
                }
            }
            Statement::Delete(del) => {
                let wc = where_present(del.selection.as_ref());
                if del.selection.as_ref().is_some_and(const_comparison) {
                    c.tautology = true;
                }
                let from = match &del.from {
                    FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => f,
                };
                let mut from_tables = Vec::new();
                for twj in from {
                    factors(twj, &mut from_tables);
                }
                // Which names are deleted from, and which tables they are.
                let (deleted, pool): (Vec<Vec<String>>, Vec<Factor>) = if !del.tables.is_empty() {
                    for n in &del.tables {
                        c.skip.push(n as *const ObjectName);
                    }
                    let names = del
                        .tables
                        .iter()
                        .map(parts)
                        .collect::<Result<Vec<_>, _>>()?;
                    (names, from_tables)
                } else if let Some(using) = &del.using {
                    let mut pool = Vec::new();
                    for twj in using {
                        factors(twj, &mut pool);
                    }
                    for tf in &from_tables {
                        c.skip.push(tf.ptr);
                    }
                    (
                        from_tables.iter().map(|tf| tf.written.clone()).collect(),
                        pool,
                    )
                } else {
                    // Single-table: the FROM tables are the targets.
                    for tf in &from_tables {
                        c.skip.push(tf.ptr);
                        targets.push((SqlAction::Delete, tf.name.clone(), Some(wc)));
                    }
                    (Vec::new(), Vec::new())
                };
                for d in &deleted {
                    // `DELETE a.* FROM …`
                    let d: &[String] = match d.last().map(String::as_str) {
                        Some("*") => &d[..d.len() - 1],
                        _ => d,
                    };
                    let mut found = false;
                    for tf in &pool {
                        if tf.matches(d) {
                            found = true;
                            c.skip.push(tf.ptr);
                            targets.push((SqlAction::Delete, tf.name.clone(), Some(wc)));
                        }
                    }
                    if !found {
                        targets.push((SqlAction::Delete, name_of(d)?, Some(wc)));
                    }
                }
                if del.returning.is_some() || del.output.is_some() {
                    return Err(());
                }
            }
            Statement::CreateTable(ct) => {
                c.skip.push(&ct.name as *const ObjectName);
                targets.push((SqlAction::Create, name2(&ct.name)?, None));
                match &ct.like {
                    None => {}
                    Some(CreateTableLikeKind::Parenthesized(l) | CreateTableLikeKind::Plain(l)) => {
                        c.skip.push(&l.name as *const ObjectName);
                        targets.push((SqlAction::Select, name2(&l.name)?, None));
                    }
                }
                if ct.clone.is_some() {
                    return Err(());
                }
            }
            Statement::CreateView(cv) => {
                c.skip.push(&cv.name as *const ObjectName);
                targets.push((SqlAction::Create, name2(&cv.name)?, None));
            }
            Statement::AlterView(av) => {
                if !matches!(av.operation, AlterViewOperation::As { .. }) {
                    return Err(());
                }
                c.skip.push(&av.name as *const ObjectName);
                targets.push((SqlAction::Alter, name2(&av.name)?, None));
            }
            Statement::Call(f) => {
                if !matches!(f.parameters, FunctionArguments::None) {
                    return Err(());
                }
                functions.push(name2(&f.name)?);
            }
            _ => return Err(()),
        }
        if stmt.visit(&mut c).is_break() || c.bad {
            return Err(());
        }
        let s = &mut self.out.signals;
        s.union |= c.union;
        s.tautology |= c.tautology;
        s.time_probe |= c.time_probe;
        let reads: Vec<Name> = c
            .tables
            .iter()
            .map(|p| name_of(p))
            .collect::<Result<_, _>>()?;
        for (action, name, wc) in &targets {
            self.obj(*action, ObjectKind::Table, name, *wc);
        }
        for name in &reads {
            self.table(SqlAction::Select, name);
            if c.for_update {
                self.obj(
                    SqlAction::Update,
                    ObjectKind::Table,
                    name,
                    Some(c.for_update_where),
                );
            }
            if copy_out {
                self.table(SqlAction::CopyOut, name);
            }
        }
        if copy_out && reads.is_empty() {
            self.on_db(SqlAction::CopyOut, None);
        }
        for name in functions {
            self.obj(SqlAction::Execute, ObjectKind::Function, &name, None);
        }
        for (parts, write) in &c.sequences {
            let name = name_of(parts)?;
            self.table(SqlAction::Select, &name);
            if *write {
                self.obj(SqlAction::Update, ObjectKind::Table, &name, Some(false));
            }
        }
        // `NOW ()`: with a space (and without IGNORE_SPACE) MySQL calls a
        // stored function of that name; so does `` `now`() ``.
        let mut spaced: Vec<String> = Vec::new();
        let tt = toks(text)?;
        for w in tt.windows(2) {
            if w[0].kind == TokenKind::Word && w[1].punct("(") && w[1].start > w[0].end {
                let upper = w[0].text.to_ascii_uppercase();
                if IGNORE_SPACE_FUNCTIONS
                    .binary_search(&upper.as_str())
                    .is_ok()
                {
                    spaced.push(upper);
                }
            }
        }
        for (parts, quoted) in &c.functions {
            if let [one] = parts.as_slice()
                && !quoted
            {
                let upper = one.to_ascii_uppercase();
                if spaced.contains(&upper) {
                    // The fingerprint ignores that space.
                    self.out.shape_only = false;
                    let name = name_of(parts)?;
                    self.obj(SqlAction::Execute, ObjectKind::Function, &name, None);
                    continue;
                }
                if upper == "LOAD_FILE" {
                    self.on_db(SqlAction::CopyIn, None);
                    continue;
                }
                if NATIVE_FUNCTIONS.binary_search(&upper.as_str()).is_ok() {
                    continue;
                }
            }
            let name = name_of(parts)?;
            self.obj(SqlAction::Execute, ObjectKind::Function, &name, None);
        }
        Ok(())
    }

    /// Classifies the statement that starts at token `i` (`EXPLAIN`,
    /// `ANALYZE`), as `Select` on each object unless `runs`.
    fn nested(&mut self, text: &str, t: &[T<'_>], i: usize, explain_only: bool) -> R {
        if self.depth >= MAX_NESTING {
            return Err(());
        }
        let start = t.get(i).ok_or(())?.start;
        let rest = text.get(start..).ok_or(())?;
        let first = t
            .get(i)
            .map(|x| x.text.to_ascii_uppercase())
            .unwrap_or_default();
        if !matches!(
            first.as_str(),
            "SELECT"
                | "WITH"
                | "TABLE"
                | "VALUES"
                | "INSERT"
                | "REPLACE"
                | "UPDATE"
                | "DELETE"
                | "("
        ) {
            return Err(());
        }
        let mut inner = Cx {
            db: self.db.clone(),
            out: Classified {
                shape_only: true,
                ..Classified::default()
            },
            depth: self.depth + 1,
        };
        if inner.statement(rest).is_err() {
            inner.unclassified();
        }
        let s = inner.out.signals;
        let o = &mut self.out.signals;
        o.union |= s.union;
        o.tautology |= s.tautology;
        o.time_probe |= s.time_probe;
        for mut a in inner.out.accesses {
            if explain_only && a.action != SqlAction::Unclassified {
                a.action = SqlAction::Select;
                a.where_clause = None;
            }
            self.out.accesses.push(a);
        }
        Ok(())
    }

    fn explain(&mut self, text: &str, t: &[T<'_>]) -> R {
        let mut i = 1;
        let mut analyze = false;
        loop {
            match t.get(i) {
                Some(x) if x.is("ANALYZE") => {
                    analyze = true;
                    i += 1;
                }
                Some(x) if x.is("EXTENDED") || x.is("PARTITIONS") => i += 1,
                Some(x) if x.is("FORMAT") => i = skip_format(t, i),
                _ => break,
            }
        }
        let Some(next) = t.get(i) else {
            return Err(());
        };
        if next.is("FOR") {
            self.on_db(SqlAction::Admin, None);
            return Ok(());
        }
        let statement_form = next.punct("(")
            || [
                "SELECT", "WITH", "TABLE", "VALUES", "INSERT", "REPLACE", "UPDATE", "DELETE",
            ]
            .iter()
            .any(|k| next.is(k));
        if statement_form {
            return self.nested(text, t, i, !analyze);
        }
        if analyze || i != 1 {
            return Err(());
        }
        // DESCRIBE t [column | 'wild']
        let (name, j) = name_at(t, 1)?;
        if j + 1 < t.len() {
            return Err(());
        }
        self.table(SqlAction::Select, &name);
        Ok(())
    }

    fn create(&mut self, text: &str, t: &[T<'_>]) -> R {
        let mut i = 1;
        let mut or_replace = false;
        loop {
            let Some(x) = t.get(i) else { return Err(()) };
            if x.is("OR") && t.get(i + 1).is_some_and(|y| y.is("REPLACE")) {
                or_replace = true;
                i += 2;
            } else if x.is("ALGORITHM") || x.is("DEFINER") {
                // ALGORITHM = w, DEFINER = user | 'u'@'h' | CURRENT_USER[()]
                if !t.get(i + 1).is_some_and(|y| y.punct("=")) {
                    return Err(());
                }
                i += 3;
                while t.get(i).is_some_and(|y| {
                    y.punct("@") || y.punct("(") || y.punct(")") || y.kind == TokenKind::Literal
                }) || (t.get(i - 1).is_some_and(|p| p.punct("@")))
                {
                    i += 1;
                }
            } else if x.is("SQL") && t.get(i + 1).is_some_and(|y| y.is("SECURITY")) {
                i += 3;
            } else if [
                "TEMPORARY",
                "UNIQUE",
                "FULLTEXT",
                "SPATIAL",
                "AGGREGATE",
                "ONLINE",
                "OFFLINE",
            ]
            .iter()
            .any(|k| x.is(k))
            {
                i += 1;
            } else {
                break;
            }
        }
        let kind = t.get(i).ok_or(())?.text.to_ascii_uppercase();
        let after = if t.get(i + 1).is_some_and(|x| x.is("IF")) {
            if !(t.get(i + 2).is_some_and(|x| x.is("NOT"))
                && t.get(i + 3).is_some_and(|x| x.is("EXISTS")))
            {
                return Err(());
            }
            i + 4
        } else {
            i + 1
        };
        match kind.as_str() {
            "TABLE" | "VIEW" => {
                merge_or_federated(t)?;
                // `WITH [CASCADED | LOCAL] CHECK OPTION` ends a view.
                let mut end = text.len();
                let n = t.len();
                if kind == "VIEW" && n >= 3 && t[n - 1].is("OPTION") && t[n - 2].is("CHECK") {
                    let w = if t[n - 3].is("CASCADED") || t[n - 3].is("LOCAL") {
                        n.checked_sub(4).ok_or(())?
                    } else {
                        n - 3
                    };
                    if !t[w].is("WITH") {
                        return Err(());
                    }
                    end = t[w].start;
                }
                let rest = text.get(t[i].start..end).ok_or(())?;
                let temporary = t[..i].iter().any(|x| x.is("TEMPORARY"));
                let prefix = match (or_replace, temporary) {
                    (true, _) => "CREATE OR REPLACE ",
                    (false, true) => "CREATE TEMPORARY ",
                    (false, false) => "CREATE ",
                };
                // A foreign key's parent table (`REFERENCES` privilege).
                for k in i..n {
                    if t[k].is("REFERENCES") {
                        let (parent, _) = name_at(t, k + 1)?;
                        self.table(SqlAction::Select, &parent);
                    }
                }
                self.parsed(&format!("{prefix}{rest}"))
            }
            "INDEX" => {
                let (index, j) = ident_at(t, after)?;
                let on = (j..t.len()).find(|&k| t[k].is("ON")).ok_or(())?;
                let (table, _) = name_at(t, on + 1)?;
                self.obj(
                    SqlAction::Create,
                    ObjectKind::Table,
                    &(table.0.clone(), index),
                    None,
                );
                self.table(SqlAction::Alter, &table);
                Ok(())
            }
            "DATABASE" | "SCHEMA" => {
                let (db, _) = ident_at(t, after)?;
                no_parens(t)?;
                self.on_db(SqlAction::Create, Some(&db));
                Ok(())
            }
            "USER" | "ROLE" => {
                self.on_db(SqlAction::Grant, None);
                Ok(())
            }
            "SEQUENCE" => {
                let (name, _) = name_at(t, after)?;
                self.table(SqlAction::Create, &name);
                Ok(())
            }
            "FUNCTION" | "PROCEDURE" | "PACKAGE" | "TRIGGER" | "EVENT" => {
                let (name, j) = name_at(t, after)?;
                let kind = if matches!(kind.as_str(), "TRIGGER" | "EVENT") {
                    ObjectKind::Table
                } else {
                    ObjectKind::Function
                };
                self.obj(SqlAction::Create, kind, &name, None);
                if t[i].is("TRIGGER") {
                    let on = (j..t.len()).find(|&k| t[k].is("ON")).ok_or(())?;
                    let (table, _) = name_at(t, on + 1)?;
                    self.table(SqlAction::Alter, &table);
                }
                // The body is not analysed.
                self.unclassified();
                Ok(())
            }
            _ => Err(()),
        }
    }

    fn alter(&mut self, text: &str, t: &[T<'_>]) -> R {
        let mut i = 1;
        while t.get(i).is_some_and(|x| {
            x.is("ONLINE") || x.is("IGNORE") || x.is("ALGORITHM") || x.is("DEFINER") || x.is("SQL")
        }) {
            if t[i].is("ALGORITHM") || t[i].is("DEFINER") || t[i].is("SQL") {
                // Only views take these; leave them to the view branch.
                break;
            }
            i += 1;
        }
        let kind = t.get(i).ok_or(())?.text.to_ascii_uppercase();
        match kind.as_str() {
            "TABLE" => {
                merge_or_federated(t)?;
                let (name, j) = name_at(t, i + 1)?;
                self.table(SqlAction::Alter, &name);
                let mut k = j;
                while k < t.len() {
                    if t[k].is("RENAME") {
                        let mut m = k + 1;
                        if t.get(m).is_some_and(|x| {
                            x.is("COLUMN") || x.is("INDEX") || x.is("KEY") || x.is("CONSTRAINT")
                        }) {
                            k = m;
                            continue;
                        }
                        if t.get(m).is_some_and(|x| x.is("TO") || x.is("AS")) {
                            m += 1;
                        }
                        let (new, _) = name_at(t, m)?;
                        self.table(SqlAction::Create, &new);
                    } else if t[k].is("TABLE") || t[k].is("REFERENCES") {
                        let (other, _) = name_at(t, k + 1)?;
                        let action = if t[k].is("TABLE") {
                            SqlAction::Alter
                        } else {
                            SqlAction::Select
                        };
                        self.table(action, &other);
                    } else if t[k].is("SELECT") {
                        return Err(());
                    }
                    k += 1;
                }
                Ok(())
            }
            "DATABASE" | "SCHEMA" => {
                no_parens(t)?;
                let named = t.get(i + 1).is_some_and(|x| {
                    x.kind == TokenKind::QuotedIdent
                        || (x.kind == TokenKind::Word
                            && ![
                                "CHARACTER",
                                "CHARSET",
                                "DEFAULT",
                                "COLLATE",
                                "ENCRYPTION",
                                "READ",
                                "COMMENT",
                            ]
                            .iter()
                            .any(|k| x.is(k)))
                });
                if named {
                    let (db, _) = ident_at(t, i + 1)?;
                    self.on_db(SqlAction::Alter, Some(&db));
                } else {
                    self.on_db(SqlAction::Alter, None);
                }
                Ok(())
            }
            "FUNCTION" | "PROCEDURE" | "PACKAGE" => {
                let (name, _) = name_at(t, i + 1)?;
                no_parens(t)?;
                self.obj(SqlAction::Alter, ObjectKind::Function, &name, None);
                Ok(())
            }
            "EVENT" | "SEQUENCE" => {
                let (name, _) = name_at(t, i + 1)?;
                self.table(SqlAction::Alter, &name);
                if t.iter().any(|x| x.is("DO") || x.is("RENAME")) {
                    self.unclassified();
                }
                Ok(())
            }
            "USER" | "ROLE" => {
                self.on_db(SqlAction::Grant, None);
                Ok(())
            }
            _ => {
                // ALTER [ALGORITHM=…] [DEFINER=…] [SQL SECURITY …] VIEW
                let v = (i..t.len()).find(|&k| t[k].is("VIEW")).ok_or(())?;
                let rest = text.get(t[v].start..).ok_or(())?;
                self.parsed(&format!("ALTER {rest}"))
            }
        }
    }

    fn drop(&mut self, t: &[T<'_>]) -> R {
        let mut i = 1;
        while t
            .get(i)
            .is_some_and(|x| x.is("TEMPORARY") || x.is("ONLINE") || x.is("OFFLINE"))
        {
            i += 1;
        }
        let kind = t.get(i).ok_or(())?.text.to_ascii_uppercase();
        let mut j = i + 1;
        if t.get(j).is_some_and(|x| x.is("IF")) {
            if !t.get(j + 1).is_some_and(|x| x.is("EXISTS")) {
                return Err(());
            }
            j += 2;
        }
        match kind.as_str() {
            "TABLE" | "TABLES" | "VIEW" | "SEQUENCE" => {
                loop {
                    let (name, k) = name_at(t, j)?;
                    self.table(SqlAction::Drop, &name);
                    j = k;
                    if t.get(j).is_some_and(|x| x.punct(",")) {
                        j += 1;
                    } else {
                        break;
                    }
                }
                // [WAIT n | NOWAIT] [RESTRICT | CASCADE]
                no_parens(t)?;
                Ok(())
            }
            "DATABASE" | "SCHEMA" => {
                let (db, k) = ident_at(t, j)?;
                end(t, k)?;
                self.on_db(SqlAction::Drop, Some(&db));
                Ok(())
            }
            "INDEX" => {
                let (index, k) = ident_at(t, j)?;
                if !t.get(k).is_some_and(|x| x.is("ON")) {
                    return Err(());
                }
                let (table, _) = name_at(t, k + 1)?;
                no_parens(t)?;
                self.obj(
                    SqlAction::Drop,
                    ObjectKind::Table,
                    &(table.0.clone(), index),
                    None,
                );
                self.table(SqlAction::Alter, &table);
                Ok(())
            }
            "FUNCTION" | "PROCEDURE" | "PACKAGE" | "TRIGGER" | "EVENT" => {
                let (name, k) = name_at(t, j)?;
                end(t, k)?;
                let kind = if matches!(kind.as_str(), "TRIGGER" | "EVENT") {
                    ObjectKind::Table
                } else {
                    ObjectKind::Function
                };
                self.obj(SqlAction::Drop, kind, &name, None);
                Ok(())
            }
            "USER" | "ROLE" => {
                self.on_db(SqlAction::Grant, None);
                Ok(())
            }
            "PREPARE" => {
                let (name, k) = ident_at(t, i + 1)?;
                end(t, k)?;
                self.out.deallocates = Some(Some(name));
                Ok(())
            }
            _ => Err(()),
        }
    }

    fn rename(&mut self, t: &[T<'_>]) -> R {
        if t.get(1).is_some_and(|x| x.is("USER")) {
            self.on_db(SqlAction::Grant, None);
            return Ok(());
        }
        if !t.get(1).is_some_and(|x| x.is("TABLE") || x.is("TABLES")) {
            return Err(());
        }
        let mut j = 2;
        if t.get(j).is_some_and(|x| x.is("IF")) && t.get(j + 1).is_some_and(|x| x.is("EXISTS")) {
            j += 2;
        }
        loop {
            let (old, k) = name_at(t, j)?;
            if t.get(k).is_some_and(|x| x.is("WAIT") || x.is("NOWAIT")) {
                return Err(());
            }
            if !t.get(k).is_some_and(|x| x.is("TO")) {
                return Err(());
            }
            let (new, k) = name_at(t, k + 1)?;
            self.table(SqlAction::Alter, &old);
            self.table(SqlAction::Create, &new);
            match t.get(k) {
                Some(x) if x.punct(",") => j = k + 1,
                None => return Ok(()),
                Some(_) => return Err(()),
            }
        }
    }

    fn show(&mut self, t: &[T<'_>]) -> R {
        no_parens(t)?;
        let mut i = 1;
        while t.get(i).is_some_and(|x| x.is("FULL") || x.is("EXTENDED")) {
            i += 1;
        }
        let Some(x) = t.get(i) else { return Err(()) };
        let word = x.text.to_ascii_uppercase();
        match word.as_str() {
            "CREATE" => {
                let what = t.get(i + 1).ok_or(())?.text.to_ascii_uppercase();
                match what.as_str() {
                    "TABLE" | "VIEW" | "TRIGGER" | "EVENT" | "SEQUENCE" => {
                        let (name, _) = name_at(t, i + 2)?;
                        self.table(SqlAction::Select, &name);
                    }
                    "FUNCTION" | "PROCEDURE" | "PACKAGE" => {
                        let (name, _) = name_at(t, i + 2)?;
                        self.obj(SqlAction::Select, ObjectKind::Function, &name, None);
                    }
                    "DATABASE" | "SCHEMA" => {}
                    _ => self.on_db(SqlAction::Admin, None),
                }
                Ok(())
            }
            "COLUMNS" | "FIELDS" | "INDEX" | "INDEXES" | "KEYS" => {
                if !t.get(i + 1).is_some_and(|x| x.is("FROM") || x.is("IN")) {
                    return Err(());
                }
                let (mut name, k) = name_at(t, i + 2)?;
                if t.get(k).is_some_and(|x| x.is("FROM") || x.is("IN")) {
                    let (db, _) = ident_at(t, k + 1)?;
                    name.0 = Some(db);
                }
                self.table(SqlAction::Select, &name);
                Ok(())
            }
            "GRANTS" | "PROCESSLIST" | "BINLOG" | "BINARY" | "MASTER" | "SLAVE" | "REPLICA"
            | "REPLICAS" | "RELAYLOG" | "ENGINE" | "ALL" | "PROFILE" | "PROFILES" | "USER" => {
                self.on_db(SqlAction::Admin, None);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn set(&mut self, text: &str, t: &[T<'_>]) -> R {
        let second = t
            .get(1)
            .map(|x| x.text.to_ascii_uppercase())
            .unwrap_or_default();
        match second.as_str() {
            "PASSWORD" | "ROLE" | "DEFAULT" => {
                self.on_db(SqlAction::Grant, None);
                return Ok(());
            }
            "NAMES" | "CHARSET" | "CHARACTER" | "TRANSACTION" => return no_parens(t),
            "STATEMENT" => return Err(()),
            _ => {}
        }
        // Assignments, split at top-level commas.
        let mut items: Vec<&[T<'_>]> = Vec::new();
        let mut depth = 0usize;
        let mut from = 1;
        for (k, x) in t.iter().enumerate().skip(1) {
            if x.punct("(") {
                depth += 1;
            } else if x.punct(")") {
                depth = depth.checked_sub(1).ok_or(())?;
            } else if x.punct(",") && depth == 0 {
                items.push(&t[from..k]);
                from = k + 1;
            }
        }
        items.push(t.get(from..).ok_or(())?);
        let mut global = false;
        let mut admin = false;
        let mut values: Vec<&str> = Vec::new();
        for item in items {
            let mut k = 0;
            let mut name = None;
            match item.first() {
                Some(x) if x.is("GLOBAL") || x.is("PERSIST") || x.is("PERSIST_ONLY") => {
                    global = true;
                    k = 1;
                }
                Some(x) if x.is("SESSION") || x.is("LOCAL") => k = 1,
                _ => {}
            }
            if item.get(k).is_some_and(|x| x.is("TRANSACTION")) {
                admin |= global;
                continue;
            }
            if item.get(k).is_some_and(|x| x.punct("@")) {
                if item.get(k + 1).is_some_and(|x| x.punct("@")) {
                    k += 2;
                    if item.get(k + 1).is_some_and(|x| x.punct(".")) {
                        let scope = item.get(k).ok_or(())?;
                        if scope.is("GLOBAL") || scope.is("PERSIST") || scope.is("PERSIST_ONLY") {
                            global = true;
                        } else if !(scope.is("SESSION") || scope.is("LOCAL")) {
                            return Err(());
                        }
                        k += 2;
                    }
                    name = Some(item.get(k).ok_or(())?.text);
                    k += 1;
                } else {
                    // A user variable: `@x`, `@'x'`, `@`x``.
                    k += 2;
                }
            } else {
                name = Some(item.get(k).ok_or(())?.text);
                k += 1;
                // `SET a.b = …` (structured variables) is left alone.
                if item.get(k).is_some_and(|x| x.punct(".")) {
                    return Err(());
                }
            }
            if let Some(n) = name {
                let n = n.trim_matches('`').to_ascii_lowercase();
                if PRIVILEGED_VARIABLES.binary_search(&n.as_str()).is_ok() {
                    admin = true;
                }
            }
            admin |= global;
            // `=` or `:=`
            if item.get(k).is_some_and(|x| x.punct(":")) {
                k += 1;
            }
            if !item.get(k).is_some_and(|x| x.punct("=")) {
                return Err(());
            }
            let value = item.get(k + 1..).ok_or(())?;
            if value.iter().any(|x| x.punct("(")) {
                let (a, b) = (value.first().ok_or(())?.start, value.last().ok_or(())?.end);
                values.push(text.get(a..b).ok_or(())?);
            }
        }
        if admin {
            self.on_db(SqlAction::Admin, None);
        }
        if !values.is_empty() {
            // Subqueries and functions in the values, read as a SELECT.
            self.parsed(&format!("SELECT {}", values.join(", ")))?;
        }
        Ok(())
    }

    fn table_list_admin(&mut self, t: &[T<'_>], mut j: usize, select: bool) -> R {
        loop {
            let (name, k) = name_at(t, j)?;
            self.table(SqlAction::Admin, &name);
            if select {
                self.table(SqlAction::Select, &name);
            }
            if t.get(k).is_some_and(|x| x.punct(",")) {
                j = k + 1;
            } else {
                return Ok(());
            }
        }
    }

    fn lock(&mut self, t: &[T<'_>]) -> R {
        if !t.get(1).is_some_and(|x| x.is("TABLES") || x.is("TABLE")) {
            self.on_db(SqlAction::Admin, None);
            return Ok(());
        }
        no_parens(t)?;
        let mut j = 2;
        loop {
            let (name, mut k) = name_at(t, j)?;
            if t.get(k).is_some_and(|x| x.is("AS")) {
                k += 1;
            }
            if t.get(k).is_some_and(|x| {
                (x.kind == TokenKind::Word || x.kind == TokenKind::QuotedIdent)
                    && !(x.is("READ") || x.is("WRITE") || x.is("LOW_PRIORITY"))
            }) {
                k += 1;
            }
            let mut write = false;
            let mut seen = false;
            while let Some(x) = t.get(k) {
                if x.is("WRITE") {
                    write = true;
                    seen = true;
                } else if x.is("READ") {
                    seen = true;
                } else if !(x.is("LOCAL") || x.is("LOW_PRIORITY") || x.is("CONCURRENT")) {
                    break;
                }
                k += 1;
            }
            if !seen {
                return Err(());
            }
            self.table(SqlAction::Admin, &name);
            self.table(SqlAction::Select, &name);
            if write {
                self.obj(SqlAction::Update, ObjectKind::Table, &name, Some(false));
            }
            match t.get(k) {
                Some(x) if x.punct(",") => j = k + 1,
                None => return Ok(()),
                Some(_) => return Err(()),
            }
        }
    }

    fn load(&mut self, t: &[T<'_>]) -> R {
        if t.get(1).is_some_and(|x| x.is("INDEX")) {
            self.on_db(SqlAction::Admin, None);
            return Ok(());
        }
        if !t.get(1).is_some_and(|x| x.is("DATA") || x.is("XML")) {
            return Err(());
        }
        let into = (2..t.len())
            .find(|&k| t[k].is("INTO") && t.get(k + 1).is_some_and(|x| x.is("TABLE")))
            .ok_or(())?;
        let (name, k) = name_at(t, into + 2)?;
        // Expressions in `SET col = expr` may read tables or call functions.
        if let Some(set) = (k..t.len()).find(|&m| t[m].is("SET"))
            && t[set..].iter().any(|x| x.punct("("))
        {
            return Err(());
        }
        self.table(SqlAction::CopyIn, &name);
        Ok(())
    }

    fn prepare(&mut self, t: &[T<'_>]) -> R {
        let (name, k) = ident_at(t, 1)?;
        if !t.get(k).is_some_and(|x| x.is("FROM")) {
            return Err(());
        }
        let lits = t.get(k + 1..).ok_or(())?;
        if lits.is_empty() || lits.iter().any(|x| x.kind != TokenKind::Literal) {
            return Err(());
        }
        if self.depth >= MAX_NESTING {
            return Err(());
        }
        // Adjacent strings concatenate; with a backslash, both readings.
        let mut escaped = String::new();
        let mut raw = String::new();
        for lit in lits {
            escaped.push_str(&unquote(lit.text, true)?);
            raw.push_str(&unquote(lit.text, false)?);
        }
        let scope = Scope {
            database: self.db.clone(),
            search_path: Vec::new(),
            overloaded_functions: Vec::new(),
            attribute_functions: Vec::new(),
        };
        let mut texts = vec![escaped];
        if texts[0] != raw {
            texts.push(raw);
        }
        for sql in texts {
            let inner = classify_nested(&sql, &scope, self.depth + 1);
            if inner.statements != 1
                || inner.prepares.is_some()
                || inner.executes.is_some()
                || inner.deallocates.is_some()
                || !inner.scope_changes.is_empty()
            {
                return Err(());
            }
            let s = inner.signals;
            let o = &mut self.out.signals;
            o.union |= s.union;
            o.tautology |= s.tautology;
            o.time_probe |= s.time_probe;
            o.comment |= s.comment;
            self.out.accesses.extend(inner.accesses);
        }
        self.out.prepares = Some(name);
        self.out.shape_only = false;
        Ok(())
    }
}

/// Operators chain into trees as deep as the chain is long (left-deep, so
/// sqlparser's recursion limit does not see them), and walking or dropping
/// such a tree recurses once per operator: long chains are unclassified.
fn too_deep(t: &[T<'_>]) -> R {
    let mut operators = 0usize;
    let mut set_operations = 0usize;
    for x in t {
        match x.kind {
            TokenKind::Word => {
                if x.is("UNION") || x.is("INTERSECT") || x.is("EXCEPT") {
                    set_operations += 1;
                } else if x.is("OR") || x.is("AND") || x.is("XOR") || x.is("NOT") {
                    operators += 1;
                }
            }
            TokenKind::Punct if !matches!(x.text, "(" | ")" | "," | "." | "@" | "?") => {
                operators += 1;
            }
            _ => {}
        }
    }
    if operators > MAX_OPERATORS || set_operations > MAX_SET_OPERATIONS {
        Err(())
    } else {
        Ok(())
    }
}

/// `UNION = (t1, t2)` (a MERGE table reads and writes other tables) and
/// `CONNECTION = '…'` (FEDERATED: another server) are not followed.
fn merge_or_federated(t: &[T<'_>]) -> R {
    for (k, x) in t.iter().enumerate() {
        if (x.is("UNION") || x.is("CONNECTION"))
            && t.get(k + 1)
                .is_some_and(|y| y.punct("=") || y.punct("(") || y.kind == TokenKind::Literal)
        {
            return Err(());
        }
    }
    Ok(())
}

/// `UPDATE`/`DELETE` as sqlparser reads them: modifiers (`LOW_PRIORITY`,
/// `QUICK`, `IGNORE`) dropped, `UPDATE a, b SET …` (a comma join) read
/// as `UPDATE a JOIN b SET …`, `DELETE a.* FROM …` as `DELETE a FROM …`.
fn dml_rewrite(text: &str, t: &[T<'_>]) -> Result<String, ()> {
    let mut out = String::with_capacity(text.len() + 16);
    let first = t.first().ok_or(())?;
    out.push_str(text.get(..first.end).ok_or(())?);
    let update = first.is("UPDATE");
    let mut i = 1;
    while t
        .get(i)
        .is_some_and(|x| x.is("LOW_PRIORITY") || x.is("QUICK") || x.is("IGNORE"))
    {
        i += 1;
    }
    let mut depth = 0usize;
    let mut before_set = update;
    out.push(' ');
    let mut last = t.get(i).map_or(text.len(), |x| x.start);
    let mut before_from = !update;
    let rest = t.get(i..).ok_or(())?;
    for (k, x) in rest.iter().enumerate() {
        if depth == 0 && x.is("FROM") {
            before_from = false;
        }
        // `DELETE t.* FROM …`: the `.*` goes.
        if before_from
            && ((x.punct(".") && rest.get(k + 1).is_some_and(|y| y.punct("*")))
                || (x.punct("*") && k > 0 && rest[k - 1].punct(".")))
        {
            last = x.end;
            continue;
        }
        if x.punct("(") {
            depth += 1;
        } else if x.punct(")") {
            depth = depth.saturating_sub(1);
        } else if depth == 0 && x.is("SET") {
            before_set = false;
        }
        if before_set && depth == 0 && x.punct(",") {
            out.push_str(" JOIN ");
        } else {
            out.push_str(text.get(last..x.start).ok_or(())?);
            out.push_str(x.text);
        }
        last = x.end;
    }
    Ok(out)
}

/// The statement must end at token `i`.
fn end(t: &[T<'_>], i: usize) -> R {
    if i == t.len() { Ok(()) } else { Err(()) }
}

fn no_parens(t: &[T<'_>]) -> R {
    if t.iter().any(|x| x.punct("(")) {
        Err(())
    } else {
        Ok(())
    }
}

/// Past `FORMAT = word` at `i`, if it is there.
fn skip_format(t: &[T<'_>], i: usize) -> usize {
    if t.get(i).is_some_and(|x| x.is("FORMAT")) && t.get(i + 1).is_some_and(|x| x.punct("=")) {
        i + 3
    } else {
        i
    }
}

/// An identifier at `i` (a word or a backquoted name), unquoted.
fn ident_at(t: &[T<'_>], i: usize) -> Result<(String, usize), ()> {
    let x = t.get(i).ok_or(())?;
    match x.kind {
        TokenKind::Word => Ok((x.text.to_owned(), i + 1)),
        TokenKind::QuotedIdent => {
            let inner = x
                .text
                .strip_prefix('`')
                .and_then(|s| s.strip_suffix('`'))
                .ok_or(())?;
            Ok((inner.replace("``", "`"), i + 1))
        }
        _ => Err(()),
    }
}

/// `name` or `db.name` at `i`.
fn name_at(t: &[T<'_>], i: usize) -> Result<(Name, usize), ()> {
    let (first, j) = ident_at(t, i)?;
    if t.get(j).is_some_and(|x| x.punct(".")) {
        let (second, k) = ident_at(t, j + 1)?;
        if t.get(k).is_some_and(|x| x.punct(".")) {
            return Err(());
        }
        return Ok(((Some(first), second), k));
    }
    Ok(((None, first), j))
}

/// A MySQL string literal's value (`escapes`: backslash escapes apply).
fn unquote(lit: &str, escapes: bool) -> Result<String, ()> {
    // A character set introducer (`_utf8mb4'…'`, `N'…'`).
    let body = lit.trim_start_matches(|c: char| c != '\'' && c != '"');
    let prefix = &lit[..lit.len() - body.len()];
    if !(prefix.is_empty()
        || prefix.eq_ignore_ascii_case("n")
        || (prefix.starts_with('_')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')))
    {
        return Err(());
    }
    let mut chars = body.chars();
    let quote = chars.next().ok_or(())?;
    let inner = chars.as_str().strip_suffix(quote).ok_or(())?;
    let mut out = String::with_capacity(inner.len());
    let mut it = inner.chars().peekable();
    while let Some(c) = it.next() {
        if c == quote {
            // A doubled quote.
            it.next();
            out.push(quote);
        } else if c == '\\' && escapes {
            match it.next() {
                Some('0') => out.push('\0'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('b') => out.push('\u{8}'),
                Some('Z') => out.push('\u{1a}'),
                Some(c @ ('%' | '_')) => {
                    out.push('\\');
                    out.push(c);
                }
                Some(c) => out.push(c),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn parts(name: &ObjectName) -> Result<Vec<String>, ()> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Ok(i.value.clone()),
            ObjectNamePart::Function(_) => Err(()),
        })
        .collect()
}

fn name_of(parts: &[String]) -> Result<Name, ()> {
    match parts {
        [name] => Ok((None, name.clone())),
        [db, name] => Ok((Some(db.clone()), name.clone())),
        _ => Err(()),
    }
}

fn name2(name: &ObjectName) -> Result<Name, ()> {
    name_of(&parts(name)?)
}

/// A table in a DML statement's table list.
struct Factor {
    ptr: *const ObjectName,
    name: Name,
    written: Vec<String>,
    alias: Option<String>,
}

impl Factor {
    /// Whether `q` (`alias`, `t` or `db.t`) names this table.
    fn matches(&self, q: &[String]) -> bool {
        match (q, &self.alias) {
            ([one], Some(alias)) => one.eq_ignore_ascii_case(alias),
            ([one], None) => *one == self.name.1,
            ([db, t], None) => *t == self.name.1 && self.name.0.as_deref().is_none_or(|d| d == db),
            _ => false,
        }
    }
}

fn factors(twj: &TableWithJoins, out: &mut Vec<Factor>) {
    factor(&twj.relation, out);
    for j in &twj.joins {
        factor(&j.relation, out);
    }
}

fn factor(tf: &TableFactor, out: &mut Vec<Factor>) {
    match tf {
        TableFactor::Table { name, alias, .. } => {
            if let Ok(written) = parts(name)
                && let Ok(n) = name_of(&written)
            {
                out.push(Factor {
                    ptr: name as *const ObjectName,
                    name: n,
                    written,
                    alias: alias.as_ref().map(|a| a.name.value.clone()),
                });
            }
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => factors(table_with_joins, out),
        _ => {}
    }
}

/// Whether `e` is a literal (through parentheses and a sign).
fn literal(e: &Expr) -> bool {
    match e {
        // `?` stands for a literal.
        Expr::Value(_) => true,
        Expr::Nested(inner) => literal(inner),
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => literal(expr),
        _ => false,
    }
}

/// A comparison of two literals, or a bare literal: an operand that makes
/// an `OR` constant.
fn const_comparison(e: &Expr) -> bool {
    match e {
        Expr::Nested(inner) => const_comparison(inner),
        Expr::BinaryOp { left, op, right } => {
            matches!(
                op,
                BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq
                    | BinaryOperator::Spaceship
            ) && literal(left)
                && literal(right)
        }
        e => literal(e),
    }
}

/// `sql:WhereClausePresent`: a WHERE that names a column (or holds a
/// subquery) and has no constant operand in its top-level `OR`s.
fn where_present(selection: Option<&Expr>) -> bool {
    let Some(e) = selection else { return false };
    has_column(e) && !or_has_constant(e)
}

fn or_has_constant(e: &Expr) -> bool {
    match e {
        Expr::Nested(inner) => or_has_constant(inner),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or | BinaryOperator::Xor,
            right,
        } => or_has_constant(left) || or_has_constant(right),
        e => const_comparison(e) || !has_column(e),
    }
}

fn has_column(e: &Expr) -> bool {
    sqlparser::ast::visit_expressions(e, |x| {
        if matches!(
            x,
            Expr::Identifier(_)
                | Expr::CompoundIdentifier(_)
                | Expr::Subquery(_)
                | Expr::Exists { .. }
                | Expr::In { .. }
        ) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// The sequence a `NEXTVAL(s)`-like call names.
fn sequence_arg(args: &FunctionArguments) -> Option<Vec<String>> {
    let FunctionArguments::List(list) = args else {
        return None;
    };
    match list.args.first()? {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(i))) => {
            Some(vec![i.value.clone()])
        }
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::CompoundIdentifier(ids))) => {
            Some(ids.iter().map(|i| i.value.clone()).collect())
        }
        _ => None,
    }
}

/// CTE names in scope of one `WITH`.
struct Frame {
    names: Vec<String>,
    bodies: Vec<*const Query>,
    /// How many of `names` are visible where the walk is.
    visible: usize,
    recursive: bool,
}

/// Walks a whole statement: tables read, functions called, signals.
#[derive(Default)]
struct Collector {
    /// Names that are not reads (a statement's targets).
    skip: Vec<*const ObjectName>,
    frames: Vec<Frame>,
    tables: Vec<Vec<String>>,
    /// Functions called, and whether the name was backquoted.
    functions: Vec<(Vec<String>, bool)>,
    bad: bool,
    union: bool,
    tautology: bool,
    time_probe: bool,
    for_update: bool,
    /// Sequences named by `NEXTVAL`/`SETVAL` (true) or `LASTVAL` (false).
    sequences: Vec<(Vec<String>, bool)>,
    /// Whether every `FOR UPDATE` query has a WHERE (see `where_present`).
    for_update_where: bool,
}

impl Collector {
    fn is_cte(&self, name: &str) -> bool {
        self.frames
            .iter()
            .any(|f| f.names.iter().take(f.visible).any(|n| n == name))
    }

    fn set_expr(&mut self, e: &SetExpr) {
        match e {
            SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::Values(_) => {}
            SetExpr::SetOperation { left, right, .. } => {
                self.union = true;
                self.set_expr(left);
                self.set_expr(right);
            }
            SetExpr::Table(t) => match (&t.schema_name, &t.table_name) {
                (Some(db), Some(name)) => self.relation(vec![db.value.clone(), name.value.clone()]),
                (None, Some(name)) => self.relation(vec![name.value.clone()]),
                _ => self.bad = true,
            },
            _ => self.bad = true,
        }
    }

    fn relation(&mut self, parts: Vec<String>) {
        if let [one] = parts.as_slice()
            && self.is_cte(one)
        {
            return;
        }
        if parts.is_empty() || parts.len() > 2 {
            self.bad = true;
            return;
        }
        self.tables.push(parts);
    }
}

impl Visitor for Collector {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        let p = q as *const Query;
        if let Some(f) = self.frames.last_mut()
            && let Some(i) = f.bodies.iter().position(|b| *b == p)
        {
            f.visible = if f.recursive { i + 1 } else { i };
        }
        if let Some(with) = &q.with {
            self.frames.push(Frame {
                names: with
                    .cte_tables
                    .iter()
                    .map(|c| c.alias.name.value.clone())
                    .collect(),
                bodies: with
                    .cte_tables
                    .iter()
                    .map(|c| &*c.query as *const Query)
                    .collect(),
                visible: 0,
                recursive: with.recursive,
            });
        }
        self.set_expr(&q.body);
        if q.locks.iter().any(|l| l.lock_type == LockType::Update) {
            let has_where = match &*q.body {
                SetExpr::Select(s) => where_present(s.selection.as_ref()),
                _ => false,
            };
            self.for_update_where = has_where && (self.for_update_where || !self.for_update);
            self.for_update = true;
        }
        if q.for_clause.is_some() || !q.pipe_operators.is_empty() || q.settings.is_some() {
            self.bad = true;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if q.with.is_some() {
            self.frames.pop();
        }
        let p = q as *const Query;
        if let Some(f) = self.frames.last_mut()
            && let Some(i) = f.bodies.iter().position(|b| *b == p)
        {
            f.visible = i + 1;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<()> {
        if let Some(w) = &s.selection
            && const_comparison(w)
        {
            self.tautology = true;
        }
        if let Some(into) = &s.into {
            // Only `INTO @var` (variables) is fine.
            if into.table || into.temporary || into.unlogged {
                self.bad = true;
            }
        }
        if !s.lateral_views.is_empty() || s.prewhere.is_some() || !s.connect_by.is_empty() {
            self.bad = true;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
        if self.skip.contains(&(r as *const ObjectName)) {
            return ControlFlow::Continue(());
        }
        // `FROM DUAL` is no table.
        if let [ObjectNamePart::Identifier(i)] = r.0.as_slice()
            && i.quote_style.is_none()
            && i.value.eq_ignore_ascii_case("dual")
        {
            return ControlFlow::Continue(());
        }
        match parts(r) {
            Ok(p) => self.relation(p),
            Err(()) => self.bad = true,
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        match t {
            TableFactor::Table { args, .. } => {
                if args.is_some() {
                    self.bad = true;
                }
            }
            TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. }
            | TableFactor::JsonTable { .. } => {}
            _ => self.bad = true,
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Function(f) => match parts(&f.name) {
                Ok(p) => {
                    if p.last().is_some_and(|n| {
                        n.eq_ignore_ascii_case("sleep") || n.eq_ignore_ascii_case("benchmark")
                    }) {
                        self.time_probe = true;
                    }
                    if let [one] = p.as_slice()
                        && ["nextval", "lastval", "setval"]
                            .iter()
                            .any(|n| one.eq_ignore_ascii_case(n))
                    {
                        // MariaDB sequences: the argument names one.
                        match sequence_arg(&f.args) {
                            Some(seq) => self
                                .sequences
                                .push((seq, !one.eq_ignore_ascii_case("lastval"))),
                            None => self.bad = true,
                        }
                    } else {
                        let quoted = f.name.0.iter().any(|part| {
                            matches!(part, ObjectNamePart::Identifier(i) if i.quote_style.is_some())
                        });
                        self.functions.push((p, quoted));
                    }
                }
                Err(()) => self.bad = true,
            },
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Or | BinaryOperator::Xor,
                right,
            } if (const_comparison(left) || const_comparison(right)) => {
                self.tautology = true;
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
