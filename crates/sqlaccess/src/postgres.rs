//! PostgreSQL: PostgreSQL's own grammar (libpg_query through `pg_query`),
//! walked statement by statement.
//!
//! # Mapping
//!
//! | Statement | Accesses |
//! |---|---|
//! | `SELECT`, `TABLE`, `VALUES` | `Select` on every relation read (FROM, JOIN, subqueries anywhere, CTEs, LATERAL, set operations); CTE names are scoped like the server scopes them |
//! | `SELECT … INTO t`, `CREATE TABLE t AS`, `CREATE MATERIALIZED VIEW` | `Create` on `t` plus the query's reads |
//! | `SELECT … FOR UPDATE/SHARE` | also `Update` on every relation of that query level's FROM |
//! | `INSERT` | `Insert` on the target; reads of its query; `ON CONFLICT DO UPDATE` also `Update` (and `Select` with a `WHERE`); `RETURNING` `Select` on the target |
//! | `UPDATE` | `Update` on the target; `Select` on FROM and subquery relations; `Select` on the target with WHERE, RETURNING or a SET that reads columns |
//! | `DELETE` | `Delete` on the target; `USING` relations `Select`; `Select` on the target with WHERE or RETURNING |
//! | `MERGE` | `Insert`/`Update`/`Delete` on the target per WHEN clause, `Select` on the target and on the source |
//! | data-modifying CTEs | their own actions |
//! | function calls anywhere (expressions, FROM, aggregates, windows, DDL defaults), `CALL` | `Execute` on the function |
//! | `nextval`/`setval('seq')`, `currval('seq')` | `Execute`, plus `Select` (and `Update` for `nextval`/`setval`) on the sequence the literal names |
//! | `'x'::regclass`/`regtype`, `to_regclass('x')`... | `Select` on the relation (type) the literal names; `regproc`/`regprocedure`: `Execute` on the function; other `reg*` casts, or a parameter: `Unclassified` |
//! | `COPY t FROM` / `COPY t TO` / `COPY (q) TO` | `CopyIn` / `CopyOut` on `t` / `q`'s accesses plus `CopyOut` on each relation of `q`; a server file or `PROGRAM` also `Admin` on the database |
//! | `DO` | `Execute` on the database (the body is not analysed) |
//! | `PREPARE n AS s` | `s`'s accesses, `prepares = n` |
//! | `EXECUTE n` | `executes = n` (the gateway adds `n`'s); its parameters' accesses |
//! | `DEALLOCATE` | `deallocates` |
//! | `EXPLAIN s` / `EXPLAIN ANALYZE s` | `s`'s accesses as `Select` / `s`'s accesses |
//! | `DECLARE c CURSOR FOR q` | `q`'s accesses |
//! | `CREATE …` | `Create` on the object (`OR REPLACE` also `Alter`); `CREATE INDEX`/`TRIGGER`/`RULE`/`POLICY`/statistics also `Alter` on the table; a view's query `Select`s; `REFERENCES`, `INHERITS`, `PARTITION OF` `Alter` on the other table; `LIKE` `Select`; `CREATE SCHEMA`/`EXTENSION`/`DATABASE`/casts/operators... `Create` on the database |
//! | `ALTER …`, `COMMENT ON`, `SECURITY LABEL`, `RENAME`, `SET SCHEMA` | `Alter` on the object (a rename or move also `Create` on the new name); `OWNER TO` also `Grant` on the database |
//! | `DROP …` | `Drop` on every object named (schemas, extensions... : on the database) |
//! | `TRUNCATE` | `Truncate` on each table |
//! | `GRANT`/`REVOKE`, roles, default privileges, `REASSIGN`/`DROP OWNED` | `Grant` on the database (and on each table or function granted on) |
//! | `VACUUM`, `ANALYZE`, `CLUSTER`, `REINDEX`, `LOCK`, `REFRESH MATERIALIZED VIEW` | `Admin` on each table named and the database (`LOCK`), or on the database |
//! | `CHECKPOINT`, `LISTEN`/`NOTIFY`/`UNLISTEN`, `LOAD`, `ALTER SYSTEM`, `SET ROLE`, `SET SESSION AUTHORIZATION`, `SET`/`RESET` of `role`, `session_authorization`, `session_replication_role`, `default_transaction_read_only`, `row_security`, `RESET ALL`, publications, subscriptions, tablespaces, FDWs, servers, user mappings, languages, access methods, event triggers | `Admin` on the database |
//! | `SET search_path` | no access; a [`ScopeChange`] |
//! | `SET standard_conforming_strings`/`backslash_quote` | `Unclassified` (later statements would lex differently) |
//! | other `SET`/`SHOW`/`RESET`, transactions, `DISCARD`, `FETCH`/`MOVE`/`CLOSE`, `SET CONSTRAINTS` | none (`DISCARD ALL` resets the path) |
//! | anything else, a parse error | `Unclassified` on the database |
//!
//! Names resolve as the server would: `db.schema.name` on that database,
//! `schema.name` in that schema; an unqualified name that is a
//! `pg_catalog` function or relation ([`crate::pg_builtins`]) in
//! `pg_catalog` only (and every schema listed before `pg_catalog` when the
//! path names it explicitly); any other unqualified name in every schema
//! on `search_path` (an empty path: `Unclassified`). Operators are not
//! reported.
//!
//! Fails closed: an expression or FROM node kind the walk does not know is
//! `Unclassified`, the walk is bounded in depth (`Unclassified` beyond
//! [`MAX_DEPTH`]), and every relation and function `pg_query`'s own
//! summary finds that the walk did not reach is reported (`Select` or
//! `Execute`) together with `Unclassified`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use pg_query::NodeEnum as N;
use pg_query::protobuf as pb;
use pg_query::protobuf::Node;

use crate::pg_builtins;
use crate::{Access, Classified, Object, ObjectKind, Scope, ScopeChange, SqlAction};

/// How deep the walk goes before giving up (`Unclassified`).
pub(crate) const MAX_DEPTH: usize = 200;

/// See [`crate::classify`].
pub(crate) fn classify(sql: &str, scope: &Scope) -> Classified {
    let parsed = match catch_unwind(AssertUnwindSafe(|| pg_query::parse(sql, 0))) {
        Ok(Ok(parsed)) => parsed,
        _ => {
            let statements = sql.split(';').filter(|s| !s.trim().is_empty()).count();
            let mut out = Classified::unclassified(scope, statements.max(1));
            out.signals.stacked = statements > 1;
            return out;
        }
    };
    let stmts = &parsed.protobuf.stmts;
    let mut w = Walker::new(scope);
    w.out.statements = stmts.len();
    w.out.signals.stacked = stmts.len() > 1;
    w.out.signals.comment = inner_comment(sql);
    for raw in stmts {
        w.depth = 0;
        w.ctes.clear();
        if !w.out.scope_changes.is_empty() {
            w.apply_scope_changes();
        }
        match raw.stmt.as_deref().and_then(|n| n.node.as_ref()) {
            Some(stmt) => w.stmt(stmt),
            None => w.unclassified(),
        }
    }
    w.cross_check(&parsed);
    if stmts.is_empty() {
        // An empty message (only comments or semicolons) does nothing.
        w.out.statements = 0;
    }
    w.out.finish()
}

/// Whether a comment sits between two tokens of `sql`.
fn inner_comment(sql: &str) -> bool {
    let base = sql.as_ptr() as usize;
    let mut prev_end: Option<usize> = None;
    for tok in latchkey_sqlnorm::tokens(sql, latchkey_sqlnorm::Dialect::Postgres) {
        let start = (tok.text.as_ptr() as usize).saturating_sub(base);
        if let Some(end) = prev_end {
            let gap = sql.get(end..start).unwrap_or_default();
            if gap.contains("--") || gap.contains("/*") {
                return true;
            }
        }
        prev_end = Some(start + tok.text.len());
    }
    false
}

fn s_val(n: &Node) -> Option<&str> {
    match n.node.as_ref()? {
        N::String(s) => Some(&s.sval),
        _ => None,
    }
}

/// The strings of a name list (`schema.name`), or `None` if one is not a
/// string.
fn name_parts(list: &[Node]) -> Option<Vec<&str>> {
    list.iter().map(s_val).collect()
}

fn obj_type(t: i32) -> pb::ObjectType {
    pb::ObjectType::try_from(t).unwrap_or(pb::ObjectType::Undefined)
}

/// Whether `n` is a constant (a literal, possibly cast).
fn is_const(n: &Node) -> bool {
    match n.node.as_ref() {
        Some(N::AConst(_)) => true,
        Some(N::TypeCast(c)) => c.arg.as_deref().is_some_and(is_const),
        _ => false,
    }
}

/// A comparison of two constants (`1=1`, `'a'='a'`, `2>1`) or a bare
/// constant (`true`, `1`): what an injected `OR …` looks like.
fn is_probe(n: &Node) -> bool {
    match n.node.as_ref() {
        Some(N::AConst(c)) => !c.isnull,
        Some(N::TypeCast(_)) => is_const(n),
        Some(N::AExpr(e)) => {
            let kind = pb::AExprKind::try_from(e.kind).unwrap_or(pb::AExprKind::Undefined);
            matches!(
                kind,
                pb::AExprKind::AexprOp
                    | pb::AExprKind::AexprLike
                    | pb::AExprKind::AexprIlike
                    | pb::AExprKind::AexprDistinct
                    | pb::AExprKind::AexprNotDistinct
            ) && e.lexpr.as_deref().is_some_and(is_const)
                && e.rexpr.as_deref().is_some_and(is_const)
        }
        _ => false,
    }
}

/// Whether a condition depends on the row (so that a WHERE with it limits
/// the rows touched). Conservative: a condition that references no column
/// (`1=1`, `1=2`, `$1`, `NOT false`), ORs one in, or compares a column
/// with itself, does not.
fn row_dependent(n: &Node, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let d = depth + 1;
    match n.node.as_ref() {
        Some(N::BoolExpr(b)) => {
            match pb::BoolExprType::try_from(b.boolop).unwrap_or(pb::BoolExprType::Undefined) {
                pb::BoolExprType::AndExpr => b.args.iter().any(|a| row_dependent(a, d)),
                pb::BoolExprType::OrExpr => b.args.iter().all(|a| row_dependent(a, d)),
                pb::BoolExprType::NotExpr => b.args.iter().any(|a| row_dependent(a, d)),
                pb::BoolExprType::Undefined => false,
            }
        }
        Some(N::CurrentOfExpr(_)) => true,
        Some(N::ColumnRef(_)) => true,
        Some(N::AExpr(e)) => {
            if let (Some(l), Some(r)) = (e.lexpr.as_deref(), e.rexpr.as_deref())
                && let (Some(N::ColumnRef(a)), Some(N::ColumnRef(b))) = (&l.node, &r.node)
                && a.fields == b.fields
            {
                return false;
            }
            e.lexpr.as_deref().is_some_and(|x| row_dependent(x, d))
                || e.rexpr.as_deref().is_some_and(|x| row_dependent(x, d))
        }
        Some(N::List(l)) => l.items.iter().any(|a| row_dependent(a, d)),
        Some(N::FuncCall(f)) => f.args.iter().any(|a| row_dependent(a, d)),
        Some(N::TypeCast(c)) => c.arg.as_deref().is_some_and(|x| row_dependent(x, d)),
        Some(N::NullTest(t)) => t.arg.as_deref().is_some_and(|x| row_dependent(x, d)),
        Some(N::BooleanTest(t)) => t.arg.as_deref().is_some_and(|x| row_dependent(x, d)),
        Some(N::SubLink(s)) => s.testexpr.as_deref().is_some_and(|x| row_dependent(x, d)),
        Some(N::CoalesceExpr(c)) => c.args.iter().any(|a| row_dependent(a, d)),
        Some(N::RowExpr(r)) => r.args.iter().any(|a| row_dependent(a, d)),
        Some(N::AIndirection(i)) => i.arg.as_deref().is_some_and(|x| row_dependent(x, d)),
        Some(N::CollateClause(c)) => c.arg.as_deref().is_some_and(|x| row_dependent(x, d)),
        _ => false,
    }
}

/// Splits the text of a `regclass`-style literal (`s."T"`) into its parts
/// as the server reads it: unquoted parts folded to lower case.
fn literal_name(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' || c == '(' || c.is_whitespace() {
                    break;
                }
                part.extend(c.to_lowercase());
                chars.next();
            }
            if part.is_empty() {
                return None;
            }
        }
        parts.push(part);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            Some('.') => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            // `f(int)` for regprocedure: the name ends at the parenthesis.
            None | Some('(') => break,
            Some(_) => return None,
        }
    }
    (!parts.is_empty() && parts.len() <= 3).then_some(parts)
}

/// What kind of catalogue an unqualified name is looked up in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lookup {
    Relation,
    Function,
    /// Types and other schema objects: `search_path` only.
    Other,
}

/// What a literal names (`nextval('s')`, `'t'::regclass`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum LiteralRole {
    Relation,
    Function,
}

struct Walker<'a> {
    scope: &'a Scope,
    out: Classified,
    /// CTE names in scope, innermost last.
    ctes: Vec<&'a str>,
    depth: usize,
    /// Names the walk resolved (schema or "", name), for the cross-check.
    seen: Vec<(&'a str, &'a str)>,
    /// Column references seen so far (to tell whether an UPDATE's SET
    /// reads columns).
    colrefs: usize,
    /// Paths set by earlier statements of the message.
    later_paths: Vec<Vec<String>>,
    /// An earlier statement set the path to something unknown.
    path_unknown: bool,
}

impl<'a> Walker<'a> {
    fn new(scope: &'a Scope) -> Self {
        Self {
            scope,
            out: Classified {
                shape_only: true,
                ..Classified::default()
            },
            ctes: Vec::new(),
            depth: 0,
            seen: Vec::new(),
            colrefs: 0,
            later_paths: Vec::new(),
            path_unknown: false,
        }
    }

    // ---- accesses -------------------------------------------------------

    fn db_access(&mut self, action: SqlAction) {
        match &self.scope.database {
            Some(db) => self.out.accesses.push(Access {
                action,
                object: Object::database(db),
                where_clause: None,
            }),
            None => self.push_unknown_db(),
        }
    }

    fn push_unknown_db(&mut self) {
        self.out.accesses.push(Access {
            action: SqlAction::Unclassified,
            object: Object::database(""),
            where_clause: None,
        });
    }

    fn unclassified(&mut self) {
        self.db_access(SqlAction::Unclassified);
    }

    /// An unclassified access because a literal decides (`shape_only`
    /// false).
    fn unclassified_literal(&mut self) {
        self.out.shape_only = false;
        self.unclassified();
    }

    fn push(
        &mut self,
        action: SqlAction,
        kind: ObjectKind,
        database: Option<&str>,
        schema: &str,
        name: &str,
        where_clause: Option<bool>,
    ) {
        let Some(current) = self.scope.database.as_deref() else {
            self.push_unknown_db();
            return;
        };
        self.out.accesses.push(Access {
            action,
            object: Object {
                kind,
                database: database.unwrap_or(current).to_owned(),
                schema: schema.to_owned(),
                name: name.to_owned(),
            },
            where_clause,
        });
    }

    /// `t.f`, `(t).f`: a call of `f(t)` when `f` is a function of one row
    /// argument ([`Scope::attribute_functions`]) and not a column of `t`
    /// (which the gateway cannot tell: it stands for the call).
    fn attribute_call(&mut self, field: &'a Node) {
        if let Some(name) = s_val(field)
            && self
                .scope
                .attribute_functions
                .binary_search_by(|f| f.as_str().cmp(name))
                .is_ok()
        {
            self.resolve(
                &[name],
                ObjectKind::Function,
                Lookup::Function,
                SqlAction::Execute,
                None,
            );
        }
    }

    /// Whether an unqualified name is `pg_catalog`'s, which the server finds
    /// first: a relation always; a function only when no other schema has
    /// one of the name ([`Scope::overloaded_functions`]), since a better
    /// match elsewhere on the path wins over it.
    fn builtin(&self, name: &str, lookup: Lookup) -> bool {
        match lookup {
            Lookup::Relation => pg_builtins::RELATIONS.binary_search(&name).is_ok(),
            Lookup::Function => {
                pg_builtins::FUNCTIONS.binary_search(&name).is_ok() && !self.overloaded(name)
            }
            Lookup::Other => false,
        }
    }

    fn overloaded(&self, name: &str) -> bool {
        self.scope
            .overloaded_functions
            .binary_search_by(|f| f.as_str().cmp(name))
            .is_ok()
    }

    /// The schemas an unqualified name may resolve to: `pg_catalog` alone
    /// (`None`), or these.
    fn schemas_for(&self, name: &str, lookup: Lookup) -> Option<&'a [String]> {
        let builtin = self.builtin(name, lookup);
        let path: &'a [String] = &self.scope.search_path;
        if builtin {
            // pg_catalog is searched first unless the path names it later.
            path.iter()
                .position(|s| s == "pg_catalog")
                .map(|i| &path[..=i])
        } else {
            Some(path)
        }
    }

    /// The schemas an unqualified name may resolve to once an earlier
    /// statement of the message set `search_path`: those of every path in
    /// force (the session's and each one set), as the server could not be
    /// narrowed to one (a `SET` may be rolled back). An empty result is
    /// unclassified.
    fn schemas_after_changes(&mut self, name: &str, lookup: Lookup) -> Vec<String> {
        let builtin = self.builtin(name, lookup);
        let mut schemas: Vec<String> = Vec::new();
        let mut unknown = false;
        for path in std::iter::once(&self.scope.search_path).chain(self.later_paths.iter()) {
            if builtin {
                match path.iter().position(|s| s == "pg_catalog") {
                    Some(i) => schemas.extend(path[..=i].iter().cloned()),
                    None => schemas.push("pg_catalog".to_owned()),
                }
            } else if path.is_empty() {
                unknown = true;
            } else {
                schemas.extend(path.iter().cloned());
            }
        }
        if unknown {
            self.unclassified();
        }
        schemas.sort();
        schemas.dedup();
        schemas
    }

    /// Takes in the scope changes of the statements so far: later
    /// statements resolve names along every path set, and not at all once
    /// the path is unknown (`$user`, the server's default, an expression).
    fn apply_scope_changes(&mut self) {
        for change in &self.out.scope_changes {
            match change {
                ScopeChange::SearchPath(path) => {
                    if path.iter().any(|s| s == "$user") {
                        self.path_unknown = true;
                    } else if !self.later_paths.contains(path) {
                        self.later_paths.push(path.clone());
                    }
                }
                ScopeChange::SearchPathDefault | ScopeChange::SearchPathUnknown => {
                    self.path_unknown = true
                }
                ScopeChange::Database(_) => self.path_unknown = true,
            }
        }
    }

    /// Reports `action` on the object named by `parts` (1 to 3 names).
    fn resolve(
        &mut self,
        parts: &[&str],
        kind: ObjectKind,
        lookup: Lookup,
        action: SqlAction,
        where_clause: Option<bool>,
    ) {
        if let [name] = *parts
            && lookup == Lookup::Function
            && self.overloaded(name)
        {
            // pg_catalog's, or one elsewhere on the path.
            self.push(action, kind, None, "pg_catalog", name, where_clause);
        }
        match *parts {
            [_] if self.path_unknown => self.unclassified(),
            [name] if !self.later_paths.is_empty() => {
                for schema in self.schemas_after_changes(name, lookup) {
                    self.push(action, kind, None, &schema, name, where_clause);
                }
            }
            [name] => match self.schemas_for(name, lookup) {
                None => self.push(action, kind, None, "pg_catalog", name, where_clause),
                Some([]) => self.unclassified(),
                Some(schemas) => {
                    for schema in schemas {
                        self.push(action, kind, None, schema, name, where_clause);
                    }
                }
            },
            [schema, name] => self.push(action, kind, None, schema, name, where_clause),
            [db, schema, name] => self.push(action, kind, Some(db), schema, name, where_clause),
            _ => self.unclassified(),
        }
    }

    /// The same as [`Self::resolve`] for names owned elsewhere.
    fn resolve_owned(
        &mut self,
        parts: &[String],
        kind: ObjectKind,
        lookup: Lookup,
        action: SqlAction,
    ) {
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        self.resolve(&parts, kind, lookup, action, None);
    }

    fn relation(&mut self, rv: &'a pb::RangeVar, action: SqlAction, where_clause: Option<bool>) {
        self.seen.push((&rv.schemaname, &rv.relname));
        match (rv.catalogname.is_empty(), rv.schemaname.is_empty()) {
            (true, true) => self.resolve(
                &[&rv.relname],
                ObjectKind::Table,
                Lookup::Relation,
                action,
                where_clause,
            ),
            (true, false) => self.resolve(
                &[&rv.schemaname, &rv.relname],
                ObjectKind::Table,
                Lookup::Relation,
                action,
                where_clause,
            ),
            (false, false) => self.resolve(
                &[&rv.catalogname, &rv.schemaname, &rv.relname],
                ObjectKind::Table,
                Lookup::Relation,
                action,
                where_clause,
            ),
            (false, true) => self.unclassified(),
        }
    }

    /// An object in the same schema as `table` (an index, a trigger).
    fn beside(&mut self, table: &'a pb::RangeVar, name: &str, action: SqlAction) {
        if name.is_empty() {
            return;
        }
        if !table.catalogname.is_empty() {
            let (db, schema) = (&table.catalogname, &table.schemaname);
            self.push(action, ObjectKind::Table, Some(db), schema, name, None);
        } else if !table.schemaname.is_empty() {
            let schema = &table.schemaname;
            self.push(action, ObjectKind::Table, None, schema, name, None);
        } else {
            self.resolve(&[name], ObjectKind::Table, Lookup::Other, action, None);
        }
    }

    /// A relation read in FROM: a CTE name in scope is no relation.
    fn read_relation(&mut self, rv: &'a pb::RangeVar) {
        if rv.catalogname.is_empty()
            && rv.schemaname.is_empty()
            && self.ctes.iter().any(|c| *c == rv.relname)
        {
            self.seen.push(("", &rv.relname));
            return;
        }
        self.relation(rv, SqlAction::Select, None);
    }

    /// A name list (`schema.name`) as an object.
    fn named(&mut self, names: &'a [Node], kind: ObjectKind, lookup: Lookup, action: SqlAction) {
        match name_parts(names) {
            Some(parts) => {
                if let Some((last, rest)) = parts.split_last() {
                    self.seen.push((rest.last().copied().unwrap_or(""), last));
                }
                self.resolve(&parts, kind, lookup, action, None);
            }
            None => self.unclassified(),
        }
    }

    /// Copies every access from `from` on with `action` as well (or
    /// instead, with `replace`), leaving `Unclassified` alone.
    fn also(&mut self, from: usize, action: SqlAction, tables_only: bool, replace: bool) {
        let end = self.out.accesses.len();
        for i in from..end {
            let a = &self.out.accesses[i];
            if a.action == SqlAction::Unclassified
                || (tables_only && a.object.kind != ObjectKind::Table)
            {
                continue;
            }
            if replace {
                let a = &mut self.out.accesses[i];
                a.action = action;
                a.where_clause = None;
            } else {
                let mut copy = a.clone();
                copy.action = action;
                copy.where_clause = None;
                self.out.accesses.push(copy);
            }
        }
    }

    // ---- statements -----------------------------------------------------

    fn enter(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.unclassified();
            return false;
        }
        true
    }

    fn stmt(&mut self, stmt: &'a N) {
        if !self.enter() {
            self.depth -= 1;
            return;
        }
        self.stmt_inner(stmt);
        self.depth -= 1;
    }

    fn stmt_node(&mut self, n: &'a Node) {
        match n.node.as_ref() {
            Some(s) => self.stmt(s),
            None => self.unclassified(),
        }
    }

    fn stmt_inner(&mut self, stmt: &'a N) {
        use SqlAction as A;
        match stmt {
            N::SelectStmt(_)
            | N::InsertStmt(_)
            | N::UpdateStmt(_)
            | N::DeleteStmt(_)
            | N::MergeStmt(_) => self.query_enum(stmt),
            N::CreateTableAsStmt(s) => {
                if let Some(rel) = s.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    self.relation(rel, A::Create, None);
                } else {
                    self.unclassified();
                }
                match s.query.as_deref() {
                    // CREATE TABLE … AS EXECUTE name
                    Some(Node {
                        node: Some(N::ExecuteStmt(e)),
                    }) => self.stmt_inner_execute(e),
                    Some(q) => self.query(q),
                    None => self.unclassified(),
                }
            }
            N::ExplainStmt(s) => {
                let mut analyze = false;
                for opt in &s.options {
                    if let Some(N::DefElem(d)) = opt.node.as_ref()
                        && d.defname == "analyze"
                    {
                        analyze = match d.arg.as_deref() {
                            None => true,
                            Some(arg) => {
                                self.out.shape_only = false;
                                !matches!(
                                    def_text(arg).as_deref(),
                                    Some("false" | "off" | "0" | "no")
                                )
                            }
                        };
                    }
                }
                let from = self.out.accesses.len();
                match s.query.as_deref() {
                    Some(q) => self.stmt_node(q),
                    None => self.unclassified(),
                }
                if !analyze {
                    self.also(from, A::Select, false, true);
                }
            }
            N::PrepareStmt(s) => {
                self.out.prepares = Some(s.name.clone());
                match s.query.as_deref() {
                    Some(q) => self.stmt_node(q),
                    None => self.unclassified(),
                }
            }
            N::ExecuteStmt(e) => self.stmt_inner_execute(e),
            N::DeallocateStmt(s) => {
                self.out.deallocates = Some((!s.isall).then(|| s.name.clone()));
            }
            N::DeclareCursorStmt(s) => match s.query.as_deref() {
                Some(q) => self.query(q),
                None => self.unclassified(),
            },
            N::ClosePortalStmt(_)
            | N::FetchStmt(_)
            | N::TransactionStmt(_)
            | N::VariableShowStmt(_)
            | N::ConstraintsSetStmt(_) => {}
            N::DiscardStmt(s) => {
                if pb::DiscardMode::try_from(s.target) == Ok(pb::DiscardMode::DiscardAll) {
                    self.scope_change(ScopeChange::SearchPathDefault);
                }
            }
            N::VariableSetStmt(s) => self.set(s),
            N::CopyStmt(s) => self.copy(s),
            N::CallStmt(s) => match s.funccall.as_deref() {
                Some(f) => self.func_call(f),
                None => self.unclassified(),
            },
            N::DoStmt(_) => {
                // The body is code in a literal: not analysed.
                self.out.shape_only = false;
                self.db_access(A::Execute);
            }
            N::CreateStmt(s) => self.create_table(s),
            N::CreateForeignTableStmt(s) => match s.base_stmt.as_ref() {
                Some(b) => self.create_table(b),
                None => self.unclassified(),
            },
            N::ViewStmt(s) => {
                match s.view.as_ref() {
                    Some(v) => {
                        self.relation(v, A::Create, None);
                        if s.replace {
                            self.relation(v, A::Alter, None);
                        }
                    }
                    None => self.unclassified(),
                }
                match s.query.as_deref() {
                    Some(q) => self.query(q),
                    None => self.unclassified(),
                }
            }
            N::IndexStmt(s) => match s.relation.as_ref() {
                Some(rel) => {
                    self.relation(rel, A::Alter, None);
                    if s.idxname.is_empty() {
                        // A generated name beside the table.
                        self.relation(rel, A::Create, None);
                    } else {
                        self.beside(rel, &s.idxname, A::Create);
                    }
                    self.exprs(&s.index_params);
                    self.exprs(&s.index_including_params);
                    self.opt_expr(s.where_clause.as_deref());
                }
                None => self.unclassified(),
            },
            N::CreateTrigStmt(s) => match s.relation.as_ref() {
                Some(rel) => {
                    self.relation(rel, A::Alter, None);
                    self.beside(rel, &s.trigname, A::Create);
                    if s.replace {
                        self.beside(rel, &s.trigname, A::Alter);
                    }
                    self.func_name(&s.funcname);
                    self.opt_expr(s.when_clause.as_deref());
                    if let Some(c) = s.constrrel.as_ref() {
                        self.relation(c, A::Alter, None);
                    }
                }
                None => self.unclassified(),
            },
            N::RuleStmt(s) => match s.relation.as_ref() {
                Some(rel) => {
                    self.relation(rel, A::Alter, None);
                    self.beside(rel, &s.rulename, A::Create);
                    self.opt_expr(s.where_clause.as_deref());
                    // The actions run later, as the rule's owner: their
                    // objects are reported now.
                    for a in &s.actions {
                        self.stmt_node(a);
                    }
                }
                None => self.unclassified(),
            },
            N::CreatePolicyStmt(s) => {
                self.policy(s.table.as_ref(), s.qual.as_deref(), s.with_check.as_deref())
            }
            N::AlterPolicyStmt(s) => {
                self.policy(s.table.as_ref(), s.qual.as_deref(), s.with_check.as_deref())
            }
            N::CreateSeqStmt(s) => match s.sequence.as_ref() {
                Some(seq) => self.relation(seq, A::Create, None),
                None => self.unclassified(),
            },
            N::AlterSeqStmt(s) => match s.sequence.as_ref() {
                Some(seq) => self.relation(seq, A::Alter, None),
                None => self.unclassified(),
            },
            N::CreateFunctionStmt(s) => {
                // The body is code (usually in a literal): not analysed.
                self.out.shape_only = false;
                self.named(&s.funcname, ObjectKind::Function, Lookup::Other, A::Create);
                if s.replace {
                    self.named(&s.funcname, ObjectKind::Function, Lookup::Other, A::Alter);
                }
                for p in &s.parameters {
                    if let Some(N::FunctionParameter(fp)) = p.node.as_ref() {
                        self.opt_expr(fp.defexpr.as_deref());
                    }
                }
            }
            N::AlterFunctionStmt(s) => match s.func.as_ref() {
                Some(f) => self.named(&f.objname, ObjectKind::Function, Lookup::Other, A::Alter),
                None => self.unclassified(),
            },
            N::DefineStmt(s) => {
                let kind = match obj_type(s.kind) {
                    pb::ObjectType::ObjectAggregate => ObjectKind::Function,
                    _ => ObjectKind::Table,
                };
                match obj_type(s.kind) {
                    pb::ObjectType::ObjectOperator => self.db_access(A::Create),
                    _ => {
                        self.named(&s.defnames, kind, Lookup::Other, A::Create);
                        if s.replace {
                            self.named(&s.defnames, kind, Lookup::Other, A::Alter);
                        }
                    }
                }
            }
            N::CreateDomainStmt(s) => {
                self.named(&s.domainname, ObjectKind::Table, Lookup::Other, A::Create);
                self.constraints(&s.constraints);
            }
            N::AlterDomainStmt(s) => {
                self.named(&s.type_name, ObjectKind::Table, Lookup::Other, A::Alter);
                if let Some(d) = s.def.as_deref() {
                    self.constraints(std::slice::from_ref(d));
                }
            }
            N::CompositeTypeStmt(s) => match s.typevar.as_ref() {
                Some(t) => self.relation(t, A::Create, None),
                None => self.unclassified(),
            },
            N::CreateEnumStmt(s) => {
                self.named(&s.type_name, ObjectKind::Table, Lookup::Other, A::Create)
            }
            N::CreateRangeStmt(s) => {
                self.named(&s.type_name, ObjectKind::Table, Lookup::Other, A::Create)
            }
            N::AlterEnumStmt(s) => {
                self.named(&s.type_name, ObjectKind::Table, Lookup::Other, A::Alter)
            }
            N::AlterTypeStmt(s) => {
                self.named(&s.type_name, ObjectKind::Table, Lookup::Other, A::Alter)
            }
            N::CreateStatsStmt(s) => {
                if s.defnames.is_empty() {
                    self.db_access(A::Create);
                } else {
                    self.named(&s.defnames, ObjectKind::Table, Lookup::Other, A::Create);
                }
                for r in &s.relations {
                    match r.node.as_ref() {
                        Some(N::RangeVar(rv)) => self.relation(rv, A::Alter, None),
                        _ => self.unclassified(),
                    }
                }
                for e in &s.exprs {
                    if let Some(N::StatsElem(se)) = e.node.as_ref() {
                        self.opt_expr(se.expr.as_deref());
                    }
                }
            }
            N::AlterStatsStmt(s) => {
                self.named(&s.defnames, ObjectKind::Table, Lookup::Other, A::Alter)
            }
            N::AlterTsdictionaryStmt(s) => {
                self.named(&s.dictname, ObjectKind::Table, Lookup::Other, A::Alter)
            }
            N::AlterTsconfigurationStmt(s) => {
                self.named(&s.cfgname, ObjectKind::Table, Lookup::Other, A::Alter)
            }
            N::AlterCollationStmt(s) => {
                self.named(&s.collname, ObjectKind::Table, Lookup::Other, A::Alter)
            }
            N::CreateSchemaStmt(s) => {
                self.db_access(A::Create);
                if !s.schema_elts.is_empty() {
                    // The elements resolve names in the new schema first.
                    self.unclassified();
                }
                for e in &s.schema_elts {
                    self.stmt_node(e);
                }
            }
            N::CreateExtensionStmt(_)
            | N::CreateCastStmt(_)
            | N::CreateTransformStmt(_)
            | N::CreateConversionStmt(_)
            | N::CreateOpClassStmt(_)
            | N::CreateOpFamilyStmt(_)
            | N::ImportForeignSchemaStmt(_) => self.db_access(A::Create),
            N::AlterExtensionStmt(_)
            | N::AlterExtensionContentsStmt(_)
            | N::AlterOpFamilyStmt(_)
            | N::AlterOperatorStmt(_) => self.db_access(A::Alter),
            N::CreatedbStmt(s) => {
                self.db_access(A::Create);
                self.other_db(&s.dbname, A::Create);
            }
            N::DropdbStmt(s) => {
                self.db_access(A::Drop);
                self.other_db(&s.dbname, A::Drop);
            }
            N::AlterDatabaseStmt(s) => self.other_db(&s.dbname, A::Alter),
            N::AlterDatabaseSetStmt(s) => self.other_db(&s.dbname, A::Alter),
            N::AlterDatabaseRefreshCollStmt(s) => self.other_db(&s.dbname, A::Alter),
            N::AlterTableStmt(s) => self.alter_table(s),
            N::RenameStmt(s) => {
                let ty = obj_type(s.rename_type);
                self.object(ty, s.relation.as_ref(), s.object.as_deref(), A::Alter);
                if !s.newname.is_empty()
                    && matches!(
                        ty,
                        pb::ObjectType::ObjectTable
                            | pb::ObjectType::ObjectView
                            | pb::ObjectType::ObjectMatview
                            | pb::ObjectType::ObjectSequence
                            | pb::ObjectType::ObjectIndex
                            | pb::ObjectType::ObjectForeignTable
                    )
                    && let Some(rel) = s.relation.as_ref()
                {
                    self.beside(rel, &s.newname, A::Create);
                }
            }
            N::AlterObjectSchemaStmt(s) => {
                let ty = obj_type(s.object_type);
                self.object(ty, s.relation.as_ref(), s.object.as_deref(), A::Alter);
                let name = match (s.relation.as_ref(), s.object.as_deref()) {
                    (Some(rel), _) => Some(rel.relname.as_str()),
                    (None, Some(o)) => object_last_name(o),
                    _ => None,
                };
                let kind = object_kind_of(ty);
                match name {
                    Some(name) => {
                        let schema = &s.newschema;
                        self.push(A::Create, kind, None, schema, name, None);
                    }
                    None => self.unclassified(),
                }
            }
            N::AlterOwnerStmt(s) => {
                let ty = obj_type(s.object_type);
                self.object(ty, s.relation.as_ref(), s.object.as_deref(), A::Alter);
                self.db_access(A::Grant);
            }
            N::AlterObjectDependsStmt(s) => {
                let ty = obj_type(s.object_type);
                self.object(ty, s.relation.as_ref(), s.object.as_deref(), A::Alter);
            }
            N::CommentStmt(s) => {
                self.object(obj_type(s.objtype), None, s.object.as_deref(), A::Alter)
            }
            N::SecLabelStmt(s) => {
                self.object(obj_type(s.objtype), None, s.object.as_deref(), A::Alter)
            }
            N::DropStmt(s) => {
                let ty = obj_type(s.remove_type);
                for o in &s.objects {
                    self.object(ty, None, Some(o), A::Drop);
                }
            }
            N::TruncateStmt(s) => {
                for r in &s.relations {
                    match r.node.as_ref() {
                        Some(N::RangeVar(rv)) => self.relation(rv, A::Truncate, None),
                        _ => self.unclassified(),
                    }
                }
            }
            N::GrantStmt(s) => {
                self.db_access(A::Grant);
                let target = pb::GrantTargetType::try_from(s.targtype)
                    .unwrap_or(pb::GrantTargetType::Undefined);
                if target == pb::GrantTargetType::AclTargetObject {
                    let ty = obj_type(s.objtype);
                    for o in &s.objects {
                        match o.node.as_ref() {
                            Some(N::RangeVar(rv)) => self.relation(rv, A::Grant, None),
                            Some(N::ObjectWithArgs(f)) => self.named(
                                &f.objname,
                                ObjectKind::Function,
                                Lookup::Function,
                                A::Grant,
                            ),
                            // Schemas, databases, languages...: the database.
                            _ if matches!(
                                ty,
                                pb::ObjectType::ObjectSchema
                                    | pb::ObjectType::ObjectDatabase
                                    | pb::ObjectType::ObjectLanguage
                                    | pb::ObjectType::ObjectTablespace
                                    | pb::ObjectType::ObjectFdw
                                    | pb::ObjectType::ObjectForeignServer
                                    | pb::ObjectType::ObjectLargeobject
                                    | pb::ObjectType::ObjectParameterAcl
                            ) => {}
                            _ => self.object(ty, None, Some(o), A::Grant),
                        }
                    }
                }
            }
            N::GrantRoleStmt(_)
            | N::CreateRoleStmt(_)
            | N::AlterRoleStmt(_)
            | N::AlterRoleSetStmt(_)
            | N::DropRoleStmt(_)
            | N::AlterDefaultPrivilegesStmt(_)
            | N::ReassignOwnedStmt(_)
            | N::DropOwnedStmt(_) => self.db_access(A::Grant),
            N::VacuumStmt(s) => {
                if s.rels.is_empty() {
                    self.db_access(A::Admin);
                }
                for r in &s.rels {
                    match r.node.as_ref() {
                        Some(N::VacuumRelation(v)) => match v.relation.as_ref() {
                            Some(rv) => self.relation(rv, A::Admin, None),
                            None => self.unclassified(),
                        },
                        _ => self.unclassified(),
                    }
                }
            }
            N::ClusterStmt(s) => match s.relation.as_ref() {
                Some(rv) => self.relation(rv, A::Admin, None),
                None => self.db_access(A::Admin),
            },
            N::ReindexStmt(s) => match s.relation.as_ref() {
                Some(rv) => self.relation(rv, A::Admin, None),
                None => self.db_access(A::Admin),
            },
            N::RefreshMatViewStmt(s) => match s.relation.as_ref() {
                Some(rv) => self.relation(rv, A::Admin, None),
                None => self.unclassified(),
            },
            N::LockStmt(s) => {
                self.db_access(A::Admin);
                for r in &s.relations {
                    match r.node.as_ref() {
                        Some(N::RangeVar(rv)) => self.relation(rv, A::Admin, None),
                        _ => self.unclassified(),
                    }
                }
            }
            N::CheckPointStmt(_)
            | N::ListenStmt(_)
            | N::NotifyStmt(_)
            | N::UnlistenStmt(_)
            | N::LoadStmt(_)
            | N::AlterSystemStmt(_)
            | N::CreatePublicationStmt(_)
            | N::AlterPublicationStmt(_)
            | N::CreateSubscriptionStmt(_)
            | N::AlterSubscriptionStmt(_)
            | N::DropSubscriptionStmt(_)
            | N::CreateTableSpaceStmt(_)
            | N::DropTableSpaceStmt(_)
            | N::AlterTableSpaceOptionsStmt(_)
            | N::AlterTableMoveAllStmt(_)
            | N::CreateFdwStmt(_)
            | N::AlterFdwStmt(_)
            | N::CreateForeignServerStmt(_)
            | N::AlterForeignServerStmt(_)
            | N::CreateUserMappingStmt(_)
            | N::AlterUserMappingStmt(_)
            | N::DropUserMappingStmt(_)
            | N::CreatePlangStmt(_)
            | N::CreateAmStmt(_)
            | N::CreateEventTrigStmt(_)
            | N::AlterEventTrigStmt(_) => self.db_access(A::Admin),
            _ => self.unclassified(),
        }
    }

    fn stmt_inner_execute(&mut self, e: &'a pb::ExecuteStmt) {
        self.out.executes = Some(e.name.clone());
        self.exprs(&e.params);
    }

    fn scope_change(&mut self, change: ScopeChange) {
        self.out.shape_only = false;
        self.out.scope_changes.push(change);
    }

    fn other_db(&mut self, name: &str, action: SqlAction) {
        if self.scope.database.is_none() {
            self.push_unknown_db();
            return;
        }
        self.out.accesses.push(Access {
            action,
            object: Object::database(name),
            where_clause: None,
        });
    }

    fn set(&mut self, s: &'a pb::VariableSetStmt) {
        let kind = pb::VariableSetKind::try_from(s.kind).unwrap_or(pb::VariableSetKind::Undefined);
        if kind == pb::VariableSetKind::VarResetAll {
            self.scope_change(ScopeChange::SearchPathDefault);
            self.db_access(SqlAction::Admin);
            return;
        }
        let name = s.name.to_ascii_lowercase();
        match name.as_str() {
            "search_path" => match kind {
                pb::VariableSetKind::VarSetValue => {
                    let mut path = Vec::with_capacity(s.args.len());
                    for a in &s.args {
                        match a.node.as_ref() {
                            Some(N::AConst(pb::AConst {
                                val: Some(pb::a_const::Val::Sval(v)),
                                ..
                            })) => path.push(v.sval.clone()),
                            _ => {
                                self.scope_change(ScopeChange::SearchPathUnknown);
                                return;
                            }
                        }
                    }
                    self.scope_change(ScopeChange::SearchPath(path));
                }
                pb::VariableSetKind::VarSetDefault | pb::VariableSetKind::VarReset => {
                    self.scope_change(ScopeChange::SearchPathDefault)
                }
                _ => self.scope_change(ScopeChange::SearchPathUnknown),
            },
            "role"
            | "session_authorization"
            | "session_replication_role"
            | "default_transaction_read_only"
            | "row_security" => self.db_access(SqlAction::Admin),
            // Later statements would lex differently from this parser.
            "standard_conforming_strings" | "backslash_quote" => self.unclassified(),
            _ => self.exprs(&s.args),
        }
    }

    fn copy(&mut self, s: &'a pb::CopyStmt) {
        if s.is_program || !s.filename.is_empty() {
            // A file on the server or a program run by it.
            self.db_access(SqlAction::Admin);
        }
        if let Some(rel) = s.relation.as_ref() {
            let action = if s.is_from {
                SqlAction::CopyIn
            } else {
                SqlAction::CopyOut
            };
            self.relation(rel, action, None);
            self.opt_expr(s.where_clause.as_deref());
        } else if let Some(q) = s.query.as_deref() {
            let from = self.out.accesses.len();
            self.query(q);
            self.also(from, SqlAction::CopyOut, true, false);
        } else {
            self.unclassified();
        }
    }

    fn create_table(&mut self, s: &'a pb::CreateStmt) {
        use SqlAction as A;
        match s.relation.as_ref() {
            Some(rel) => self.relation(rel, A::Create, None),
            None => self.unclassified(),
        }
        for e in &s.table_elts {
            match e.node.as_ref() {
                Some(N::ColumnDef(c)) => self.column_def(c),
                Some(N::Constraint(_)) => self.constraints(std::slice::from_ref(e)),
                Some(N::TableLikeClause(l)) => match l.relation.as_ref() {
                    Some(rv) => self.relation(rv, A::Select, None),
                    None => self.unclassified(),
                },
                _ => self.unclassified(),
            }
        }
        self.constraints(&s.constraints);
        for p in &s.inh_relations {
            match p.node.as_ref() {
                Some(N::RangeVar(rv)) => self.relation(rv, A::Alter, None),
                _ => self.unclassified(),
            }
        }
        if let Some(b) = s.partbound.as_ref() {
            self.exprs(&b.listdatums);
            self.exprs(&b.lowerdatums);
            self.exprs(&b.upperdatums);
        }
        if let Some(spec) = s.partspec.as_ref() {
            for p in &spec.part_params {
                if let Some(N::PartitionElem(pe)) = p.node.as_ref() {
                    self.opt_expr(pe.expr.as_deref());
                }
            }
        }
    }

    fn column_def(&mut self, c: &'a pb::ColumnDef) {
        self.opt_expr(c.raw_default.as_deref());
        self.opt_expr(c.cooked_default.as_deref());
        self.constraints(&c.constraints);
        if let Some(seq) = c.identity_sequence.as_ref() {
            self.relation(seq, SqlAction::Create, None);
        }
    }

    fn constraints(&mut self, list: &'a [Node]) {
        for n in list {
            match n.node.as_ref() {
                Some(N::Constraint(c)) => {
                    self.opt_expr(c.raw_expr.as_deref());
                    self.opt_expr(c.where_clause.as_deref());
                    for e in &c.exclusions {
                        self.expr(e);
                    }
                    if let Some(pk) = c.pktable.as_ref() {
                        // REFERENCES: constrains (and adds triggers to) the
                        // other table.
                        self.relation(pk, SqlAction::Alter, None);
                    }
                }
                _ => self.unclassified(),
            }
        }
    }

    fn alter_table(&mut self, s: &'a pb::AlterTableStmt) {
        match s.relation.as_ref() {
            Some(rel) => self.relation(rel, SqlAction::Alter, None),
            None => self.unclassified(),
        }
        for c in &s.cmds {
            let Some(N::AlterTableCmd(cmd)) = c.node.as_ref() else {
                self.unclassified();
                continue;
            };
            if pb::AlterTableType::try_from(cmd.subtype) == Ok(pb::AlterTableType::AtChangeOwner) {
                self.db_access(SqlAction::Grant);
            }
            let Some(def) = cmd.def.as_deref() else {
                continue;
            };
            match def.node.as_ref() {
                Some(N::ColumnDef(cd)) => self.column_def(cd),
                Some(N::Constraint(_)) => self.constraints(std::slice::from_ref(def)),
                Some(N::PartitionCmd(p)) => {
                    if let Some(rv) = p.name.as_ref() {
                        self.relation(rv, SqlAction::Alter, None);
                    }
                }
                Some(N::List(_))
                | Some(N::TypeName(_))
                | Some(N::RoleSpec(_))
                | Some(N::String(_))
                | Some(N::Integer(_))
                | Some(N::ReplicaIdentityStmt(_))
                | Some(N::DefElem(_)) => {}
                // SET DEFAULT expr, SET EXPRESSION AS (expr), USING expr.
                Some(_) if is_expr_cmd(cmd.subtype) => self.expr(def),
                _ => self.unclassified(),
            }
        }
    }

    fn policy(
        &mut self,
        table: Option<&'a pb::RangeVar>,
        qual: Option<&'a Node>,
        check: Option<&'a Node>,
    ) {
        match table {
            Some(t) => self.relation(t, SqlAction::Alter, None),
            None => self.unclassified(),
        }
        self.opt_expr(qual);
        self.opt_expr(check);
    }

    /// `action` on the object a DROP / COMMENT / RENAME... names.
    fn object(
        &mut self,
        ty: pb::ObjectType,
        relation: Option<&'a pb::RangeVar>,
        object: Option<&'a Node>,
        action: SqlAction,
    ) {
        use pb::ObjectType as T;
        match ty {
            // Sub-objects of a table: the table.
            T::ObjectColumn | T::ObjectTabconstraint | T::ObjectAttribute => {
                match (relation, object) {
                    (Some(rel), _) => self.relation(rel, action, None),
                    (None, Some(o)) => match o.node.as_ref() {
                        Some(N::List(l)) if l.items.len() > 1 => {
                            let table = &l.items[..l.items.len() - 1];
                            self.named(table, ObjectKind::Table, Lookup::Relation, action)
                        }
                        _ => self.unclassified(),
                    },
                    _ => self.unclassified(),
                }
                return;
            }
            // Named after their table: `name ON [schema.]table`.
            T::ObjectTrigger | T::ObjectRule | T::ObjectPolicy => {
                match (relation, object) {
                    (Some(rel), _) => self.relation(rel, SqlAction::Alter, None),
                    (None, Some(o)) => match o.node.as_ref() {
                        Some(N::List(l)) if l.items.len() > 1 => {
                            let table = &l.items[..l.items.len() - 1];
                            self.named(
                                table,
                                ObjectKind::Table,
                                Lookup::Relation,
                                SqlAction::Alter,
                            );
                            if let Some(parts) = name_parts(&l.items)
                                && let Some((name, table)) = parts.split_last()
                            {
                                // The object lives in its table's schema.
                                let mut path: Vec<&str> = table[..table.len() - 1].to_vec();
                                path.push(name);
                                self.resolve(&path, ObjectKind::Table, Lookup::Other, action, None);
                            }
                        }
                        _ => self.unclassified(),
                    },
                    _ => self.unclassified(),
                }
                return;
            }
            _ => {}
        }
        if let Some(rel) = relation {
            self.relation(rel, action, None);
            return;
        }
        let Some(o) = object else {
            self.unclassified();
            return;
        };
        let kind = object_kind_of(ty);
        match ty {
            T::ObjectTable
            | T::ObjectView
            | T::ObjectMatview
            | T::ObjectSequence
            | T::ObjectIndex
            | T::ObjectForeignTable
            | T::ObjectType
            | T::ObjectDomain
            | T::ObjectCollation
            | T::ObjectConversion
            | T::ObjectStatisticExt
            | T::ObjectTsconfiguration
            | T::ObjectTsdictionary
            | T::ObjectTsparser
            | T::ObjectTstemplate
            | T::ObjectFunction
            | T::ObjectProcedure
            | T::ObjectRoutine
            | T::ObjectAggregate => {
                let lookup = match kind {
                    ObjectKind::Function => Lookup::Function,
                    _ if matches!(
                        ty,
                        T::ObjectTable
                            | T::ObjectView
                            | T::ObjectMatview
                            | T::ObjectSequence
                            | T::ObjectForeignTable
                    ) =>
                    {
                        Lookup::Relation
                    }
                    _ => Lookup::Other,
                };
                match o.node.as_ref() {
                    Some(N::List(l)) => self.named(&l.items, kind, lookup, action),
                    Some(N::ObjectWithArgs(f)) => self.named(&f.objname, kind, lookup, action),
                    Some(N::TypeName(t)) => self.named(&t.names, kind, lookup, action),
                    Some(N::String(s)) => {
                        self.resolve(&[&s.sval], kind, lookup, action, None);
                    }
                    _ => self.unclassified(),
                }
            }
            T::Undefined => self.unclassified(),
            // Schemas, extensions, databases, roles, languages, casts,
            // operators, servers...: the database.
            T::ObjectDatabase => match o.node.as_ref() {
                Some(N::String(s)) => {
                    let name = &s.sval;
                    self.other_db(name, action);
                }
                _ => self.db_access(action),
            },
            _ => self.db_access(action),
        }
    }

    // ---- queries --------------------------------------------------------

    fn query(&mut self, n: &'a Node) {
        match n.node.as_ref() {
            Some(q) => self.query_enum(q),
            None => self.unclassified(),
        }
    }

    fn query_enum(&mut self, q: &'a N) {
        if !self.enter() {
            self.depth -= 1;
            return;
        }
        let ctes = self.ctes.len();
        match q {
            N::SelectStmt(s) => self.select(s),
            N::InsertStmt(s) => self.insert(s),
            N::UpdateStmt(s) => self.update(s),
            N::DeleteStmt(s) => self.delete(s),
            N::MergeStmt(s) => self.merge(s),
            _ => self.unclassified(),
        }
        self.ctes.truncate(ctes);
        self.depth -= 1;
    }

    /// Brings a WITH clause's names into scope (the caller truncates).
    fn with(&mut self, w: Option<&'a pb::WithClause>) {
        let Some(w) = w else { return };
        if w.recursive {
            for c in &w.ctes {
                if let Some(N::CommonTableExpr(cte)) = c.node.as_ref() {
                    self.ctes.push(&cte.ctename);
                }
            }
        }
        for c in &w.ctes {
            match c.node.as_ref() {
                Some(N::CommonTableExpr(cte)) => {
                    match cte.ctequery.as_deref() {
                        Some(q) => self.query(q),
                        None => self.unclassified(),
                    }
                    if let Some(cycle) = cte.cycle_clause.as_deref() {
                        self.opt_expr(cycle.cycle_mark_value.as_deref());
                        self.opt_expr(cycle.cycle_mark_default.as_deref());
                    }
                    if !w.recursive {
                        self.ctes.push(&cte.ctename);
                    }
                }
                _ => self.unclassified(),
            }
        }
    }

    fn select(&mut self, s: &'a pb::SelectStmt) {
        self.with(s.with_clause.as_ref());
        let op = pb::SetOperation::try_from(s.op).unwrap_or(pb::SetOperation::Undefined);
        let from = self.out.accesses.len();
        if op != pb::SetOperation::SetopNone && op != pb::SetOperation::Undefined {
            self.out.signals.union = true;
            for side in [s.larg.as_deref(), s.rarg.as_deref()] {
                match side {
                    Some(side) => {
                        if self.enter() {
                            let ctes = self.ctes.len();
                            self.select(side);
                            self.ctes.truncate(ctes);
                        }
                        self.depth -= 1;
                    }
                    None => self.unclassified(),
                }
            }
        }
        for f in &s.from_clause {
            self.range_item(f);
        }
        if !s.locking_clause.is_empty() {
            // FOR UPDATE/SHARE needs UPDATE privilege on what it locks.
            self.also(from, SqlAction::Update, true, false);
            for l in &s.locking_clause {
                if !matches!(l.node, Some(N::LockingClause(_))) {
                    self.unclassified();
                }
            }
        }
        for l in &s.values_lists {
            self.expr(l);
        }
        self.exprs(&s.distinct_clause);
        self.exprs(&s.target_list);
        self.condition(s.where_clause.as_deref());
        self.exprs(&s.group_clause);
        self.condition(s.having_clause.as_deref());
        self.exprs(&s.window_clause);
        self.exprs(&s.sort_clause);
        self.opt_expr(s.limit_offset.as_deref());
        self.opt_expr(s.limit_count.as_deref());
        if let Some(into) = s.into_clause.as_deref() {
            match into.rel.as_ref() {
                Some(rel) => self.relation(rel, SqlAction::Create, None),
                None => self.unclassified(),
            }
        }
    }

    /// A WHERE / HAVING condition: its accesses and the tautology signal.
    fn condition(&mut self, n: Option<&'a Node>) {
        if let Some(n) = n {
            if is_probe(n) && !matches!(n.node, Some(N::AConst(_))) {
                self.out.signals.tautology = true;
            }
            self.expr(n);
        }
    }

    /// Whether a WHERE limits the rows (for `where_clause`).
    fn where_present(n: Option<&Node>) -> bool {
        n.is_some_and(|n| row_dependent(n, 0))
    }

    fn returning(&mut self, target: Option<&'a pb::RangeVar>, r: Option<&'a pb::ReturningClause>) {
        if let Some(r) = r {
            if let Some(t) = target {
                self.relation(t, SqlAction::Select, None);
            }
            self.exprs(&r.exprs);
        }
    }

    fn insert(&mut self, s: &'a pb::InsertStmt) {
        self.with(s.with_clause.as_ref());
        let Some(target) = s.relation.as_ref() else {
            self.unclassified();
            return;
        };
        self.relation(target, SqlAction::Insert, None);
        self.exprs(&s.cols);
        if let Some(q) = s.select_stmt.as_deref() {
            self.query(q);
        }
        if let Some(oc) = s.on_conflict_clause.as_deref() {
            if pb::OnConflictAction::try_from(oc.action)
                == Ok(pb::OnConflictAction::OnconflictUpdate)
            {
                let limited = Self::where_present(oc.where_clause.as_deref());
                self.relation(target, SqlAction::Update, Some(limited));
                if oc.where_clause.is_some() {
                    self.relation(target, SqlAction::Select, None);
                }
            }
            if let Some(infer) = oc.infer.as_deref() {
                self.exprs(&infer.index_elems);
                self.opt_expr(infer.where_clause.as_deref());
            }
            self.exprs(&oc.target_list);
            self.condition(oc.where_clause.as_deref());
        }
        self.returning(Some(target), s.returning_clause.as_ref());
    }

    fn update(&mut self, s: &'a pb::UpdateStmt) {
        self.with(s.with_clause.as_ref());
        let Some(target) = s.relation.as_ref() else {
            self.unclassified();
            return;
        };
        let limited = Self::where_present(s.where_clause.as_deref());
        self.relation(target, SqlAction::Update, Some(limited));
        for f in &s.from_clause {
            self.range_item(f);
        }
        let before = self.colrefs;
        self.exprs(&s.target_list);
        let reads = self.colrefs != before;
        self.condition(s.where_clause.as_deref());
        if reads || s.where_clause.is_some() || s.returning_clause.is_some() {
            self.relation(target, SqlAction::Select, None);
        }
        self.returning(Some(target), s.returning_clause.as_ref());
    }

    fn delete(&mut self, s: &'a pb::DeleteStmt) {
        self.with(s.with_clause.as_ref());
        let Some(target) = s.relation.as_ref() else {
            self.unclassified();
            return;
        };
        let limited = Self::where_present(s.where_clause.as_deref());
        self.relation(target, SqlAction::Delete, Some(limited));
        for f in &s.using_clause {
            self.range_item(f);
        }
        self.condition(s.where_clause.as_deref());
        if s.where_clause.is_some() || s.returning_clause.is_some() {
            self.relation(target, SqlAction::Select, None);
        }
        self.returning(Some(target), s.returning_clause.as_ref());
    }

    fn merge(&mut self, s: &'a pb::MergeStmt) {
        self.with(s.with_clause.as_ref());
        let Some(target) = s.relation.as_ref() else {
            self.unclassified();
            return;
        };
        self.relation(target, SqlAction::Select, None);
        match s.source_relation.as_deref() {
            Some(src) => self.range_item(src),
            None => self.unclassified(),
        }
        self.condition(s.join_condition.as_deref());
        for w in &s.merge_when_clauses {
            let Some(N::MergeWhenClause(w)) = w.node.as_ref() else {
                self.unclassified();
                continue;
            };
            let limited = Self::where_present(s.join_condition.as_deref());
            match pb::CmdType::try_from(w.command_type).unwrap_or(pb::CmdType::Undefined) {
                pb::CmdType::CmdInsert => self.relation(target, SqlAction::Insert, None),
                pb::CmdType::CmdUpdate => self.relation(target, SqlAction::Update, Some(limited)),
                pb::CmdType::CmdDelete => self.relation(target, SqlAction::Delete, Some(limited)),
                pb::CmdType::CmdNothing => {}
                _ => self.unclassified(),
            }
            self.condition(w.condition.as_deref());
            self.exprs(&w.target_list);
            self.exprs(&w.values);
        }
        self.returning(Some(target), s.returning_clause.as_ref());
    }

    fn range_item(&mut self, n: &'a Node) {
        if !self.enter() {
            self.depth -= 1;
            return;
        }
        match n.node.as_ref() {
            Some(N::RangeVar(rv)) => self.read_relation(rv),
            Some(N::JoinExpr(j)) => {
                match j.larg.as_deref() {
                    Some(l) => self.range_item(l),
                    None => self.unclassified(),
                }
                match j.rarg.as_deref() {
                    Some(r) => self.range_item(r),
                    None => self.unclassified(),
                }
                self.condition(j.quals.as_deref());
            }
            Some(N::RangeSubselect(r)) => match r.subquery.as_deref() {
                Some(q) => self.query(q),
                None => self.unclassified(),
            },
            Some(N::RangeFunction(r)) => {
                for f in &r.functions {
                    // Each is a list: the call, then its column definitions.
                    match f.node.as_ref() {
                        Some(N::List(l)) => match l.items.first() {
                            Some(call) => self.expr(call),
                            None => self.unclassified(),
                        },
                        _ => self.expr(f),
                    }
                }
            }
            Some(N::RangeTableSample(r)) => {
                match r.relation.as_deref() {
                    Some(rel) => self.range_item(rel),
                    None => self.unclassified(),
                }
                self.func_name(&r.method);
                self.exprs(&r.args);
                self.opt_expr(r.repeatable.as_deref());
            }
            Some(N::RangeTableFunc(r)) => {
                self.opt_expr(r.docexpr.as_deref());
                self.opt_expr(r.rowexpr.as_deref());
                self.exprs(&r.namespaces);
                for c in &r.columns {
                    match c.node.as_ref() {
                        Some(N::RangeTableFuncCol(col)) => {
                            self.opt_expr(col.colexpr.as_deref());
                            self.opt_expr(col.coldefexpr.as_deref());
                        }
                        _ => self.unclassified(),
                    }
                }
            }
            _ => self.unclassified(),
        }
        self.depth -= 1;
    }

    // ---- expressions ----------------------------------------------------

    fn exprs(&mut self, list: &'a [Node]) {
        for n in list {
            self.expr(n);
        }
    }

    fn opt_expr(&mut self, n: Option<&'a Node>) {
        if let Some(n) = n {
            self.expr(n);
        }
    }

    fn expr(&mut self, n: &'a Node) {
        if !self.enter() {
            self.depth -= 1;
            return;
        }
        if let Some(e) = n.node.as_ref() {
            self.expr_enum(e);
        }
        self.depth -= 1;
    }

    fn expr_enum(&mut self, e: &'a N) {
        match e {
            N::ColumnRef(c) => {
                self.colrefs += 1;
                for field in c.fields.iter().skip(1) {
                    self.attribute_call(field);
                }
            }
            N::ParamRef(_)
            | N::AConst(_)
            | N::AStar(_)
            | N::SetToDefault(_)
            | N::SqlvalueFunction(_)
            | N::String(_)
            | N::Integer(_)
            | N::Float(_)
            | N::Boolean(_)
            | N::BitString(_)
            | N::CurrentOfExpr(_)
            | N::TypeName(_)
            | N::SortGroupClause(_)
            | N::DefElem(_) => {}
            N::AExpr(a) => {
                self.opt_expr(a.lexpr.as_deref());
                self.opt_expr(a.rexpr.as_deref());
            }
            N::BoolExpr(b) => {
                if pb::BoolExprType::try_from(b.boolop) == Ok(pb::BoolExprType::OrExpr)
                    && b.args.iter().any(is_probe)
                {
                    self.out.signals.tautology = true;
                }
                self.exprs(&b.args);
            }
            N::FuncCall(f) => self.func_call(f),
            N::SubLink(s) => {
                self.opt_expr(s.testexpr.as_deref());
                match s.subselect.as_deref() {
                    Some(q) => self.query(q),
                    None => self.unclassified(),
                }
            }
            N::TypeCast(c) => {
                if let Some(t) = c.type_name.as_ref() {
                    self.reg_cast(t, c.arg.as_deref());
                }
                self.opt_expr(c.arg.as_deref());
            }
            N::CollateClause(c) => self.opt_expr(c.arg.as_deref()),
            N::CaseExpr(c) => {
                self.opt_expr(c.arg.as_deref());
                self.exprs(&c.args);
                self.opt_expr(c.defresult.as_deref());
            }
            N::CaseWhen(w) => {
                self.opt_expr(w.expr.as_deref());
                self.opt_expr(w.result.as_deref());
            }
            N::AArrayExpr(a) => self.exprs(&a.elements),
            N::RowExpr(r) => self.exprs(&r.args),
            N::CoalesceExpr(c) => self.exprs(&c.args),
            N::MinMaxExpr(m) => self.exprs(&m.args),
            N::NullTest(t) => self.opt_expr(t.arg.as_deref()),
            N::BooleanTest(t) => self.opt_expr(t.arg.as_deref()),
            N::AIndirection(i) => {
                self.opt_expr(i.arg.as_deref());
                for field in &i.indirection {
                    self.attribute_call(field);
                }
                self.exprs(&i.indirection);
            }
            N::AIndices(i) => {
                self.opt_expr(i.lidx.as_deref());
                self.opt_expr(i.uidx.as_deref());
            }
            N::ResTarget(r) => {
                self.exprs(&r.indirection);
                self.opt_expr(r.val.as_deref());
            }
            N::MultiAssignRef(m) => self.opt_expr(m.source.as_deref()),
            N::List(l) => self.exprs(&l.items),
            N::SortBy(s) => self.opt_expr(s.node.as_deref()),
            N::WindowDef(w) => self.window(w),
            N::NamedArgExpr(a) => self.opt_expr(a.arg.as_deref()),
            N::XmlExpr(x) => {
                self.exprs(&x.named_args);
                self.exprs(&x.args);
            }
            N::XmlSerialize(x) => self.opt_expr(x.expr.as_deref()),
            N::GroupingSet(g) => self.exprs(&g.content),
            N::GroupingFunc(g) => self.exprs(&g.args),
            N::IndexElem(i) => self.opt_expr(i.expr.as_deref()),
            N::SelectStmt(_)
            | N::InsertStmt(_)
            | N::UpdateStmt(_)
            | N::DeleteStmt(_)
            | N::MergeStmt(_) => self.query_enum(e),
            // JSON constructors and functions, and anything else: not
            // followed, so not accounted for.
            _ => self.unclassified(),
        }
    }

    fn window(&mut self, w: &'a pb::WindowDef) {
        self.exprs(&w.partition_clause);
        self.exprs(&w.order_clause);
        self.opt_expr(w.start_offset.as_deref());
        self.opt_expr(w.end_offset.as_deref());
    }

    /// `Execute` on a function named by `names`.
    fn func_name(&mut self, names: &'a [Node]) {
        self.named(
            names,
            ObjectKind::Function,
            Lookup::Function,
            SqlAction::Execute,
        );
    }

    fn func_call(&mut self, f: &'a pb::FuncCall) {
        self.func_name(&f.funcname);
        let parts = name_parts(&f.funcname).unwrap_or_default();
        // Only what resolves to pg_catalog is the built-in.
        let builtin = match parts.as_slice() {
            [name] => Some(*name),
            ["pg_catalog", name] => Some(*name),
            _ => None,
        };
        if let Some(name) = builtin {
            self.builtin_call(name, &f.args);
        }
        self.exprs(&f.args);
        self.exprs(&f.agg_order);
        self.opt_expr(f.agg_filter.as_deref());
        if let Some(w) = f.over.as_deref() {
            self.window(w);
        }
    }

    /// What a built-in does beyond running: sequences named by literals,
    /// SQL in literals, settings, probes.
    fn builtin_call(&mut self, name: &str, args: &'a [Node]) {
        match name {
            "pg_sleep" | "pg_sleep_for" | "pg_sleep_until" => self.out.signals.time_probe = true,
            "nextval" | "setval" => self.literal_object(
                args.first(),
                LiteralRole::Relation,
                &[SqlAction::Select, SqlAction::Update],
            ),
            "currval" => {
                self.literal_object(args.first(), LiteralRole::Relation, &[SqlAction::Select])
            }
            "to_regclass" | "to_regtype" | "to_regtypemod" => {
                self.literal_object(args.first(), LiteralRole::Relation, &[SqlAction::Select])
            }
            "to_regproc" | "to_regprocedure" => {
                self.literal_object(args.first(), LiteralRole::Function, &[SqlAction::Execute])
            }
            "set_config" => {
                self.out.shape_only = false;
                let setting = args.first().and_then(literal_text);
                match setting.map(|s| s.to_ascii_lowercase()).as_deref() {
                    Some("search_path") => self.scope_change(ScopeChange::SearchPathUnknown),
                    Some(
                        "role"
                        | "session_authorization"
                        | "session_replication_role"
                        | "default_transaction_read_only"
                        | "row_security",
                    ) => self.db_access(SqlAction::Admin),
                    Some("standard_conforming_strings" | "backslash_quote") => self.unclassified(),
                    Some(_) => {}
                    None => {
                        self.scope_change(ScopeChange::SearchPathUnknown);
                        self.db_access(SqlAction::Admin);
                        self.unclassified();
                    }
                }
            }
            // SQL carried in a literal (or a table named by one) and run
            // by the server.
            "query_to_xml"
            | "query_to_xmlschema"
            | "query_to_xml_and_xmlschema"
            | "table_to_xml"
            | "table_to_xmlschema"
            | "table_to_xml_and_xmlschema"
            | "schema_to_xml"
            | "schema_to_xmlschema"
            | "schema_to_xml_and_xmlschema"
            | "database_to_xml"
            | "database_to_xmlschema"
            | "database_to_xml_and_xmlschema"
            | "cursor_to_xml"
            | "cursor_to_xmlschema"
            | "ts_stat"
            | "ts_rewrite" => self.unclassified_literal(),
            _ => {}
        }
    }

    /// `'x'::regclass` and friends.
    fn reg_cast(&mut self, t: &'a pb::TypeName, arg: Option<&'a Node>) {
        let Some(parts) = name_parts(&t.names) else {
            return;
        };
        let ty = match parts.as_slice() {
            [ty] | ["pg_catalog", ty] => *ty,
            _ => return,
        };
        if !ty.starts_with("reg") {
            return;
        }
        match ty {
            "regclass" | "regtype" => {
                self.reg_arg(arg, LiteralRole::Relation, &[SqlAction::Select])
            }
            "regproc" | "regprocedure" => {
                self.reg_arg(arg, LiteralRole::Function, &[SqlAction::Execute])
            }
            // regnamespace, regrole, regoper, regconfig...
            _ => self.unclassified_literal(),
        }
    }

    /// The argument of a `reg*` cast: a literal names an object; a column
    /// holds existing ones (no access); anything else is unclassified.
    fn reg_arg(&mut self, arg: Option<&'a Node>, role: LiteralRole, actions: &[SqlAction]) {
        match arg.and_then(|a| a.node.as_ref()) {
            Some(N::ColumnRef(_)) => {}
            Some(N::TypeCast(c)) => self.reg_arg(c.arg.as_deref(), role, actions),
            _ => self.literal_object(arg, role, actions),
        }
    }

    /// Reports `actions` on the object a literal argument names; a
    /// non-literal argument is unclassified.
    fn literal_object(&mut self, arg: Option<&'a Node>, role: LiteralRole, actions: &[SqlAction]) {
        self.out.shape_only = false;
        let name = arg.and_then(literal_text).and_then(|t| literal_name(&t));
        let Some(parts) = name else {
            self.unclassified();
            return;
        };
        let (kind, lookup) = match role {
            LiteralRole::Relation => (ObjectKind::Table, Lookup::Relation),
            LiteralRole::Function => (ObjectKind::Function, Lookup::Function),
        };
        for &action in actions {
            self.resolve_owned(&parts, kind, lookup, action);
        }
    }

    // ---- safety net -----------------------------------------------------

    /// Relations and functions `pg_query`'s own summary finds that the walk
    /// did not reach: reported, and the statement unclassified.
    fn cross_check(&mut self, parsed: &pg_query::ParseResult) {
        let known = |seen: &[(&str, &str)], entry: &str| {
            seen.iter().any(|(schema, name)| {
                entry == *name
                    || entry == *schema
                    || (entry.len() == schema.len() + 1 + name.len()
                        && entry.starts_with(schema)
                        && entry.ends_with(name)
                        && entry.as_bytes().get(schema.len()) == Some(&b'.'))
            })
        };
        let mut missed: Vec<(String, bool)> = Vec::new();
        for (table, _) in &parsed.tables {
            if !known(&self.seen, table) {
                missed.push((table.clone(), false));
            }
        }
        for (func, _) in &parsed.functions {
            if !known(&self.seen, func) {
                missed.push((func.clone(), true));
            }
        }
        for (name, is_func) in missed {
            self.unclassified();
            let parts: Vec<String> = name.split('.').map(str::to_owned).collect();
            if is_func {
                self.resolve_owned(
                    &parts,
                    ObjectKind::Function,
                    Lookup::Function,
                    SqlAction::Execute,
                );
            } else {
                self.resolve_owned(
                    &parts,
                    ObjectKind::Table,
                    Lookup::Relation,
                    SqlAction::Select,
                );
            }
        }
    }
}

/// The text of a string literal (possibly cast, `'s'::text`).
fn literal_text(n: &Node) -> Option<String> {
    match n.node.as_ref()? {
        N::AConst(pb::AConst {
            val: Some(pb::a_const::Val::Sval(s)),
            ..
        }) => Some(s.sval.clone()),
        N::TypeCast(c) => c.arg.as_deref().and_then(literal_text),
        _ => None,
    }
}

/// A DefElem argument as text (`false`, `off`, `0`).
fn def_text(n: &Node) -> Option<String> {
    match n.node.as_ref()? {
        N::String(s) => Some(s.sval.to_ascii_lowercase()),
        N::Boolean(b) => Some(if b.boolval { "true" } else { "false" }.to_owned()),
        N::Integer(i) => Some(i.ival.to_string()),
        N::AConst(c) => match c.val.as_ref()? {
            pb::a_const::Val::Sval(s) => Some(s.sval.to_ascii_lowercase()),
            pb::a_const::Val::Boolval(b) => {
                Some(if b.boolval { "true" } else { "false" }.to_owned())
            }
            pb::a_const::Val::Ival(i) => Some(i.ival.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The last name of an object node (`schema.name` list, function).
fn object_last_name(n: &Node) -> Option<&str> {
    match n.node.as_ref()? {
        N::List(l) => l.items.last().and_then(s_val),
        N::ObjectWithArgs(f) => f.objname.last().and_then(s_val),
        N::TypeName(t) => t.names.last().and_then(s_val),
        N::String(s) => Some(&s.sval),
        _ => None,
    }
}

fn object_kind_of(ty: pb::ObjectType) -> ObjectKind {
    match ty {
        pb::ObjectType::ObjectFunction
        | pb::ObjectType::ObjectProcedure
        | pb::ObjectType::ObjectRoutine
        | pb::ObjectType::ObjectAggregate => ObjectKind::Function,
        _ => ObjectKind::Table,
    }
}

/// ALTER TABLE subcommands whose `def` is an expression.
fn is_expr_cmd(subtype: i32) -> bool {
    matches!(
        pb::AlterTableType::try_from(subtype),
        Ok(pb::AlterTableType::AtColumnDefault
            | pb::AlterTableType::AtCookedColumnDefault
            | pb::AlterTableType::AtSetExpression
            | pb::AlterTableType::AtAlterColumnType
            | pb::AlterTableType::AtSetStatistics)
    )
}
