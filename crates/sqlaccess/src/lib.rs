//! What a SQL statement does to which objects, for statement-level
//! policy (`sql:` actions in IAM documents).
//!
//! [`classify`] reads one client message's SQL (one statement or several)
//! and returns every [`Access`]: an [`SqlAction`] on an object (a table,
//! view or sequence; a function or procedure; a database). Every object a
//! statement touches counts: joins, subqueries, CTEs (data-modifying ones
//! too), `RETURNING`, `INSERT … SELECT`, views as their own objects,
//! functions called anywhere, `EXPLAIN ANALYZE` as the statement it runs,
//! `PREPARE` as the statement it prepares, `COPY`, `CALL`.
//!
//! Names resolve as the server would ([`Scope`]): PostgreSQL looks an
//! unqualified name up along `search_path`, so an unqualified name stands
//! for *every* schema on the path (the session's policy must allow each:
//! the gateway cannot know which one holds it, and must not guess in the
//! caller's favour). MySQL resolves an unqualified name in the current
//! database; with none, the access is [`SqlAction::Unclassified`].
//!
//! Fails closed: anything the parser rejects, or that the classifier
//! cannot fully account for, is an [`SqlAction::Unclassified`] access on
//! the database, which a policy must allow explicitly.
//!
//! Pure: no I/O, no clock.

mod my_builtins;
mod mysql;
mod pg_builtins;
mod postgres;
#[cfg(test)]
mod tests;

pub use latchkey_sqlnorm::Dialect;

/// What a statement does to an object: the `sql:` action a policy names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SqlAction {
    /// Reads rows: `SELECT`, a table read by `INSERT … SELECT`, a
    /// subquery, a join, `RETURNING`, a view, `nextval`/`currval` on a
    /// sequence, `TABLE t`, `SHOW CREATE TABLE`.
    Select,
    Insert,
    /// Changes rows: `UPDATE`, `INSERT … ON CONFLICT DO UPDATE`, `MERGE …
    /// UPDATE`; also what `SELECT … FOR UPDATE|SHARE` locks, and
    /// PostgreSQL `nextval`/`setval` on a sequence.
    Update,
    Delete,
    Truncate,
    /// `CREATE` of any object (tables, views, indexes, schemas, functions,
    /// triggers, databases...).
    Create,
    /// `ALTER` of any object but a role or user; `COMMENT ON`, `RENAME`;
    /// also the table a new index, trigger, rule or policy is on, and the
    /// table a `REFERENCES`, `INHERITS` or `PARTITION OF` names.
    Alter,
    /// `DROP` of any object but a role or user.
    Drop,
    /// `GRANT`, `REVOKE`, and role and user changes (`CREATE|ALTER|DROP
    /// ROLE|USER`, role membership, default privileges, `REASSIGN OWNED`).
    Grant,
    /// Running code: a function called anywhere, `CALL`, `DO`, PostgreSQL
    /// `EXECUTE` of a prepared statement is not this (it is the prepared
    /// statement's own actions).
    Execute,
    /// Data into a table from outside SQL: `COPY … FROM`, `LOAD DATA`.
    CopyIn,
    /// Data out of a table past SQL rows: `COPY … TO`, `SELECT … INTO
    /// OUTFILE|DUMPFILE`.
    CopyOut,
    /// Server administration: `VACUUM`, `ANALYZE`, `CLUSTER`, `REINDEX`,
    /// `CHECKPOINT`, `SET ROLE`, `SET SESSION AUTHORIZATION`, settings
    /// that change privileges, replication, `LOCK`, `LISTEN`/`NOTIFY`,
    /// `FLUSH`, `OPTIMIZE`, `KILL`...
    Admin,
    /// A statement (or a part of one) the classifier cannot name.
    Unclassified,
}

impl SqlAction {
    /// Every action, in documentation order.
    pub const ALL: [SqlAction; 14] = [
        Self::Select,
        Self::Insert,
        Self::Update,
        Self::Delete,
        Self::Truncate,
        Self::Create,
        Self::Alter,
        Self::Drop,
        Self::Grant,
        Self::Execute,
        Self::CopyIn,
        Self::CopyOut,
        Self::Admin,
        Self::Unclassified,
    ];

    /// The IAM action name (`sql:Select`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Select => "sql:Select",
            Self::Insert => "sql:Insert",
            Self::Update => "sql:Update",
            Self::Delete => "sql:Delete",
            Self::Truncate => "sql:Truncate",
            Self::Create => "sql:Create",
            Self::Alter => "sql:Alter",
            Self::Drop => "sql:Drop",
            Self::Grant => "sql:Grant",
            Self::Execute => "sql:Execute",
            Self::CopyIn => "sql:CopyIn",
            Self::CopyOut => "sql:CopyOut",
            Self::Admin => "sql:Admin",
            Self::Unclassified => "sql:Unclassified",
        }
    }

    /// The verb a refusal names (`DROP`), as the engines word their own
    /// permission errors.
    pub fn verb(self) -> &'static str {
        match self {
            Self::Select => "SELECT",
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Truncate => "TRUNCATE",
            Self::Create => "CREATE",
            Self::Alter => "ALTER",
            Self::Drop => "DROP",
            Self::Grant => "GRANT",
            Self::Execute => "EXECUTE",
            Self::CopyIn => "COPY FROM",
            Self::CopyOut => "COPY TO",
            Self::Admin => "ADMIN",
            Self::Unclassified => "UNCLASSIFIED",
        }
    }
}

/// What kind of object an access is on, as its ARN names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// Tables, views, materialised views, sequences, indexes, types and
    /// every other schema-level object that is not a routine:
    /// `table/RESOURCE_ID/DATABASE/SCHEMA/NAME`.
    Table,
    /// Functions, procedures, aggregates:
    /// `function/RESOURCE_ID/DATABASE/SCHEMA/NAME`.
    Function,
    /// The database itself (a statement on no object, `CREATE SCHEMA`,
    /// `VACUUM` of everything, an unclassified statement):
    /// `database/RESOURCE_ID/DATABASE`.
    Database,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Function => "function",
            Self::Database => "database",
        }
    }
}

/// An object, fully qualified. For MySQL the schema is the database (one
/// level: `DATABASE/DATABASE/TABLE`). For [`ObjectKind::Database`],
/// `schema` and `name` are empty. Names are as the server stores them:
/// unquoted PostgreSQL identifiers folded to lower case, quoted ones kept;
/// MySQL names as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Object {
    pub kind: ObjectKind,
    pub database: String,
    pub schema: String,
    pub name: String,
}

impl Object {
    pub fn database(database: &str) -> Self {
        Self {
            kind: ObjectKind::Database,
            database: database.to_owned(),
            schema: String::new(),
            name: String::new(),
        }
    }

    /// `schema.name` (or the database's name), for messages.
    pub fn display_name(&self) -> String {
        match self.kind {
            ObjectKind::Database => self.database.clone(),
            _ => format!("{}.{}", self.schema, self.name),
        }
    }

    /// The resource part of its ARN after the region and account:
    /// `table/RESOURCE_ID/DATABASE/SCHEMA/NAME`.
    pub fn arn_resource(&self, resource_id: &str) -> String {
        match self.kind {
            ObjectKind::Database => format!("database/{resource_id}/{}", self.database),
            kind => format!(
                "{}/{resource_id}/{}/{}/{}",
                kind.as_str(),
                self.database,
                self.schema,
                self.name
            ),
        }
    }
}

/// One action on one object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Access {
    pub action: SqlAction,
    pub object: Object,
    /// For `UPDATE` and `DELETE` (`sql:WhereClausePresent`): whether the
    /// statement has a WHERE clause that is not constantly true (`WHERE
    /// true`, `WHERE 1=1` count as none). `None` for other actions.
    pub where_clause: Option<bool>,
}

/// Where unqualified names resolve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// The database the session is connected to (PostgreSQL), or the
    /// current database (MySQL `USE`; `None` before one is chosen).
    pub database: Option<String>,
    /// PostgreSQL: the schemas an unqualified name may resolve to,
    /// `$user` already replaced by the session's user. An unqualified
    /// name stands for each. `pg_catalog` is implicitly searched first
    /// by the server: a name that is a `pg_catalog` function or relation
    /// resolves there (and to the schemas before it, when the path names
    /// `pg_catalog` later). Empty: unknown (unqualified names are
    /// unclassified).
    pub search_path: Vec<String>,
    /// PostgreSQL: names of `pg_catalog` functions that some other schema
    /// also has a function of (sorted). The server resolves a function
    /// call by the best match among every function of the name it can
    /// see, not `pg_catalog` first, so an unqualified call of one of these
    /// may run either: it stands for `pg_catalog` and every schema on the
    /// path. Read from the server's catalogue by the gateway.
    pub overloaded_functions: Vec<String>,
    /// PostgreSQL: names of functions (outside `pg_catalog`) that take one
    /// row argument (sorted). `t.f` and `(t).f` call `f(t)` when `t` has no
    /// column `f`, so such a name after a dot is also an `Execute` of the
    /// function. Read from the server's catalogue by the gateway.
    pub attribute_functions: Vec<String>,
}

/// A change a statement makes to where later names resolve. The gateway
/// applies it to the session's [`Scope`] (widening, never narrowing: a
/// `SET` in a transaction that rolls back leaves the old path in force).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeChange {
    /// `SET [SESSION|LOCAL] search_path TO …`, schemas as written
    /// (`$user` not yet replaced).
    SearchPath(Vec<String>),
    /// `RESET search_path`, `SET search_path TO DEFAULT`: back to the
    /// server's default, which the gateway takes from its configuration.
    SearchPathDefault,
    /// The path changed in a way that cannot be followed
    /// (`set_config('search_path', …)` with an expression): later
    /// unqualified names are unclassified.
    SearchPathUnknown,
    /// MySQL `USE db`.
    Database(String),
}

/// Shape signals the SQL firewall reads, whatever the policy says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// More than one statement in one message.
    pub stacked: bool,
    /// A `UNION` (or `INTERSECT`/`EXCEPT`) of queries.
    pub union: bool,
    /// A comparison of two constants, or a constant `TRUE`, ORed into a
    /// condition (`OR 1=1`, `OR 'a'='a'`, `OR 1=2`): injection probes.
    pub tautology: bool,
    /// A comment inside the statement (not only leading or trailing).
    pub comment: bool,
    /// A time-based probe: `pg_sleep*`, `SLEEP()`, `BENCHMARK()`.
    pub time_probe: bool,
}

/// What one client message's SQL does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classified {
    /// Every access, deduplicated and sorted.
    pub accesses: Vec<Access>,
    /// How many statements the message holds.
    pub statements: usize,
    pub signals: Signals,
    /// Changes to name resolution, in order.
    pub scope_changes: Vec<ScopeChange>,
    /// Whether the classification depends only on the statement's shape,
    /// so that a decision may be reused for another statement with the
    /// same fingerprint (literals removed). False when a literal names an
    /// object or carries SQL (`nextval('seq')`, `'t'::regclass`, MySQL
    /// `PREPARE s FROM '…'`), or the statement changes the scope.
    pub shape_only: bool,
    /// MySQL `PREPARE name FROM …` / PostgreSQL `PREPARE name AS …`: the
    /// name, whose accesses (these) a later `EXECUTE name` repeats.
    pub prepares: Option<String>,
    /// `EXECUTE name` (SQL level): the gateway adds the accesses it
    /// recorded for `name` at `PREPARE`; with none recorded, the gateway
    /// treats the statement as unclassified.
    pub executes: Option<String>,
    /// `DEALLOCATE [PREPARE] name` (`None` inside for `DEALLOCATE ALL`).
    pub deallocates: Option<Option<String>>,
}

impl Classified {
    /// One unclassified access on the database (`reason` for tests and
    /// debugging only; it never reaches a client).
    pub fn unclassified(scope: &Scope, statements: usize) -> Self {
        let database = scope.database.clone().unwrap_or_default();
        Self {
            accesses: vec![Access {
                action: SqlAction::Unclassified,
                object: Object::database(&database),
                where_clause: None,
            }],
            statements,
            shape_only: false,
            ..Self::default()
        }
    }

    /// Sorts and deduplicates the accesses.
    pub(crate) fn finish(mut self) -> Self {
        self.accesses.sort();
        self.accesses.dedup();
        self
    }
}

/// Classifies one client message's SQL (one statement or several) as the
/// server would run it, resolving names in `scope`.
pub fn classify(sql: &str, dialect: Dialect, scope: &Scope) -> Classified {
    match dialect {
        Dialect::Postgres => postgres::classify(sql, scope),
        Dialect::MySql => mysql::classify(sql, scope),
    }
}
