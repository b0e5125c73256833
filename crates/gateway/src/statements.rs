//! Statement policy: every SQL string a session sends, decided by the
//! session's IAM policies as `sql:` actions on the objects it touches
//! (`latchkey-sqlaccess` names them), for databases whose
//! `statement_policy` is `audit` or `enforce`.
//!
//! One [`SessionStatements`] per session, shared by both engines' relays
//! through [`latchkey_framing::StatementGate`]. Decisions are cached per
//! session:
//!
//! - a statement's classification by its fingerprint (literals removed),
//!   but only for SQL every lexer reads alike (no backslash, comment or
//!   dollar quote: [`shape_cacheable`]) and whose classification does not
//!   depend on a literal (`Classified::shape_only`);
//! - the decision on a classification for the rest of the second it was
//!   made in, so that time-bound conditions (`aws:MultiFactorAuthAge`,
//!   `aws:CurrentTime`) and policy changes (read through the identity
//!   core's caches) take effect within a second.
//!
//! Fail closed: a principal whose policies cannot be read, SQL the
//! classifier cannot account for (`sql:Unclassified`), and an unqualified
//! name the gateway cannot resolve are denied unless a policy allows them.

use std::collections::HashMap;
use std::sync::Arc;

use latchkey_audit::{FirewallState, FirewallVerdict, PolicyDecision};

use crate::firewall::SessionFirewall;
use latchkey_framing::{Ruling, StatementGate};
use latchkey_identity::{AppState, Caller};
use latchkey_policy::{Decision, Request};
use latchkey_sqlaccess::{
    Access, Classified, Dialect, Object, ObjectKind, Scope, ScopeChange, SqlAction,
};
use latchkey_store::{Database, Engine, ObjectTag, StatementPolicy};

/// Classifications and decisions kept per session (a session running more
/// distinct statement shapes starts over).
const CACHE_ENTRIES: usize = 4096;
/// Prepared statements remembered per session by name (SQL-level
/// `PREPARE` and protocol-level `Parse` share PostgreSQL's namespace), and
/// the bytes of SQL they may keep.
const PREPARED: usize = 10_000;
const PREPARED_BYTES: usize = 16 << 20;

/// SQL kept per prepared statement name (more: the name is unclassified).
const PREPARED_VERSIONS: usize = 8;

/// The longest SQL the classifier parses; longer is unclassified. A parse
/// tree takes hundreds of bytes per byte of SQL (about 700 for `SELECT
/// 1,1,1,…`), so this bounds what one message can make a session hold
/// (about 180 MB at worst).
const MAX_CLASSIFIED_SQL: usize = 256 * 1024;

/// Names of forgotten prepared statements remembered, hashed (about
/// 1 MiB of table); past it every name prepared is taken as one.
const FORGOTTEN_NAMES: usize = 1 << 16;

/// A statement the server keeps by name: the SQL it may be (every SQL
/// prepared under the name: a `PREPARE` of a name in use, a `DEALLOCATE`
/// or `Close` may fail or be skipped, so which one the server holds is not
/// known), and the scope they were decided in. PostgreSQL analyses a
/// prepared statement again when `search_path` has changed since it was
/// prepared, so after a scope change it is decided again before it runs.
struct Prepared {
    sqls: Vec<Arc<str>>,
    /// More SQL was prepared under the name than is kept.
    overflow: bool,
    generation: u64,
    /// What it was classified as when prepared (SQL-level `PREPARE` of a
    /// name first seen); `None`: classified from `sqls` when needed.
    classified: Option<Arc<Classified>>,
    /// The SQL firewall revision it was judged under: a change since (a
    /// profile moved to block, a shape approved) judges it again when it
    /// runs.
    firewall_revision: i64,
    /// The second statement policy last decided it in: decided again when
    /// it runs in a later one, as a query is, so that conditions that
    /// lapse (`aws:MultiFactorAuthAge`, `aws:CurrentTime`) hold for what
    /// was prepared before.
    decided_at: i64,
    /// When it was last prepared or run (see [`SessionStatements::uses`]):
    /// the least used are forgotten first.
    last_used: u64,
    /// Prepared under a name whose earlier SQL was forgotten: the server
    /// may hold that still (see `SessionStatements::forgotten_names`), so
    /// it is unclassified whenever it runs.
    may_hold_forgotten: bool,
}

/// Classification tags of one database's objects, as policies see them
/// (`sql:ObjectTag/KEY`).
#[derive(Default)]
pub struct ObjectTags {
    by_object: HashMap<(ObjectKind, String, String), Vec<(String, String)>>,
    /// The same by lower-cased schema and name, every case's tags merged
    /// (MySQL, see [`StatementTarget::object_tags`]).
    folded: HashMap<(ObjectKind, String, String), Vec<(String, String)>>,
}

impl ObjectTags {
    /// The object-level tags (column tags are kept for masking, not
    /// policy) of one database.
    pub fn of(database: &str, tags: &[ObjectTag]) -> Self {
        let mut by_object: HashMap<_, Vec<(String, String)>> = HashMap::new();
        for tag in tags
            .iter()
            .filter(|t| t.database == database && t.column.is_empty())
        {
            let kind = match tag.kind {
                latchkey_store::ObjectKind::Table => ObjectKind::Table,
                latchkey_store::ObjectKind::Function => ObjectKind::Function,
            };
            by_object
                .entry((kind, tag.schema.clone(), tag.object.clone()))
                .or_default()
                .push((tag.key.clone(), tag.value.clone()));
        }
        let mut folded: HashMap<_, Vec<(String, String)>> = HashMap::new();
        for ((kind, schema, name), tags) in &by_object {
            folded
                .entry((*kind, schema.to_lowercase(), name.to_lowercase()))
                .or_default()
                .extend(tags.iter().cloned());
        }
        Self { by_object, folded }
    }

    fn get_folded(&self, kind: &ObjectKind, schema: &str, name: &str) -> &[(String, String)] {
        self.folded
            .get(&(*kind, schema.to_lowercase(), name.to_lowercase()))
            .map_or(&[], Vec::as_slice)
    }

    fn get(&self, kind: &ObjectKind, schema: &str, name: &str) -> &[(String, String)] {
        // Allocation-free lookup would need a borrowed key type; tags are
        // read only when a decision is made, not from the cache.
        self.by_object
            .get(&(*kind, schema.to_owned(), name.to_owned()))
            .map_or(&[], Vec::as_slice)
    }
}

/// What the gateway reads of the server's catalogue when an upstream
/// session begins (PostgreSQL): where unqualified names resolve, and
/// which relations each view reads, so that a view carries the
/// classification of the tables behind it.
#[derive(Debug, Default)]
pub struct ServerCatalog {
    /// The session's effective `search_path`: existing schemas only,
    /// `$user` resolved, each quoted as `quote_ident` does.
    pub search_path: Option<String>,
    /// (schema, view) to the (schema, relation) pairs it reads.
    pub view_reads: HashMap<(String, String), Vec<(String, String)>>,
    /// Names of `pg_catalog` functions that another schema also has a
    /// function of ([`Scope::overloaded_functions`]).
    pub overloaded_functions: Vec<String>,
    /// Names of functions of one row argument
    /// ([`Scope::attribute_functions`]).
    pub attribute_functions: Vec<String>,
    /// MySQL: the server compares table and database names without case
    /// (`lower_case_table_names` is 1 or 2), so ARNs name them in
    /// lowercase.
    pub lower_case_table_names: bool,
}

/// How deep views over views are followed for their tags.
const VIEW_DEPTH: usize = 16;

/// What every `sql:` request on one database carries: its ARNs, its
/// tags and the classification of its objects. Shared by the gateway and
/// `latchkey policy simulate --sql`.
pub struct StatementTarget {
    /// `arn:aws:sql:REGION:ACCOUNT:`.
    arn_prefix: String,
    resource_id: String,
    /// `aws:ResourceTag/*` (the database's tags) and, for a session,
    /// `aws:SecureTransport`.
    context: Vec<(String, String)>,
    tags: Arc<ObjectTags>,
    catalog: Arc<ServerCatalog>,
    /// MySQL: an object's tags are found whatever the case it is named
    /// in, and routine names are always compared without case.
    fold_case: bool,
}

impl StatementTarget {
    pub fn new(
        region: &str,
        account: &str,
        db: &Database,
        tags: Arc<ObjectTags>,
        catalog: Arc<ServerCatalog>,
        secure: Option<bool>,
    ) -> Self {
        let mut context: Vec<(String, String)> = db
            .tags
            .iter()
            .map(|(k, v)| (format!("aws:ResourceTag/{k}"), v.clone()))
            .collect();
        if let Some(secure) = secure {
            context.push(("aws:SecureTransport".into(), secure.to_string()));
        }
        Self {
            arn_prefix: format!("arn:aws:sql:{region}:{account}:"),
            resource_id: db.resource_id.clone(),
            context,
            tags,
            catalog,
            fold_case: db.engine == Engine::Mysql,
        }
    }

    /// The resource ARN of an access. MySQL compares routine names
    /// without case, and table and database names too where
    /// `lower_case_table_names` is set; there ARNs name them in
    /// lowercase, so that `CARDS` is the ARN of `cards`.
    pub fn arn(&self, access: &Access) -> String {
        let object = &access.object;
        let fold_names = self.fold_case && self.catalog.lower_case_table_names;
        let fold_name = fold_names || (self.fold_case && object.kind == ObjectKind::Function);
        if !fold_names && !fold_name {
            return format!(
                "{}{}",
                self.arn_prefix,
                object.arn_resource(&self.resource_id)
            );
        }
        let fold = |name: &str, yes: bool| {
            if yes {
                name.to_lowercase()
            } else {
                name.to_owned()
            }
        };
        let folded = Object {
            kind: object.kind,
            database: fold(&object.database, fold_names),
            schema: fold(&object.schema, fold_names),
            name: fold(&object.name, fold_name),
        };
        format!(
            "{}{}",
            self.arn_prefix,
            folded.arn_resource(&self.resource_id)
        )
    }

    /// `base` (the caller's context) made into the request for one
    /// access of a statement with fingerprint `fingerprint` (hex).
    pub fn request(&self, base: &Request, access: &Access, fingerprint: &str) -> Request {
        let mut req = base.clone().with_action(access.action.as_str());
        req.set_resource(&self.arn(access));
        for (k, v) in &self.context {
            req.set_context(k, [v.as_str()]);
        }
        req.set_context("sql:StatementFingerprint", [fingerprint]);
        if let Some(present) = access.where_clause {
            req.set_context(
                "sql:WhereClausePresent",
                [if present { "true" } else { "false" }],
            );
        }
        for (k, values) in self.object_tags(access) {
            req.set_context(&format!("sql:ObjectTag/{k}"), values);
        }
        req
    }

    /// An object's classification tags, with those of every relation a
    /// view reads (views over views too): a view of restricted data is
    /// restricted. Several values of one key are all seen. MySQL compares
    /// routine names (always) and table and database names (with
    /// `lower_case_table_names`) without case, so there an object carries
    /// the tags of every object whose name differs from it only in case.
    pub fn object_tags(&self, access: &Access) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut add = |tags: &[(String, String)]| {
            for (k, v) in tags {
                match out.iter_mut().find(|(key, _)| key == k) {
                    Some((_, values)) if !values.contains(v) => values.push(v.clone()),
                    Some(_) => {}
                    None => out.push((k.clone(), vec![v.clone()])),
                }
            }
        };
        let (kind, schema, name) = (
            &access.object.kind,
            &access.object.schema,
            &access.object.name,
        );
        add(if self.fold_case {
            self.tags.get_folded(kind, schema, name)
        } else {
            self.tags.get(kind, schema, name)
        });
        if access.object.kind == ObjectKind::Table && !self.catalog.view_reads.is_empty() {
            let mut seen = vec![(access.object.schema.clone(), access.object.name.clone())];
            let mut next = 0;
            while next < seen.len() && seen.len() < VIEW_DEPTH * 16 {
                if let Some(reads) = self.catalog.view_reads.get(&seen[next]) {
                    for read in reads {
                        if !seen.contains(read) {
                            add(self.tags.get(&ObjectKind::Table, &read.0, &read.1));
                            seen.push(read.clone());
                        }
                    }
                }
                next += 1;
            }
        }
        out
    }
}

/// What a session's statements are decided with.
pub struct SessionStatements {
    state: Arc<AppState>,
    caller: Caller,
    /// Statement policy is on (`audit` or `enforce`); else only the SQL
    /// firewall rules.
    policy_on: bool,
    enforced: bool,
    firewall: Option<SessionFirewall>,
    dialect: Dialect,
    target: StatementTarget,
    scope: Scope,
    /// The server's `search_path` at login, `$user` resolved.
    default_path: Vec<String>,
    db_user: String,
    /// A `set_config('search_path', …)` was seen: unqualified names can
    /// no longer be resolved.
    path_unknown: bool,
    backslashes_differ: bool,
    /// The client's encoding is not UTF-8.
    encoding_differs: bool,
    /// Bumped at every scope change, and part of every cache key.
    scope_generation: u64,
    scratch: String,
    shapes: HashMap<u64, Arc<Classified>>,
    decisions: HashMap<u64, (i64, Ruling)>,
    prepared: HashMap<String, Prepared>,
    prepared_bytes: usize,
    /// Statements were forgotten to stay within the bounds: a name the
    /// gate does not know may be one of them, and is unclassified.
    prepared_forgotten: bool,
    /// The names forgotten (hashed): prepared again, such a name may still
    /// hold the forgotten SQL on the server (a `Parse` of a name in use
    /// fails with `42P05`), so it stands for SQL unknown. Past
    /// `FORGOTTEN_NAMES`, every name prepared is taken so.
    forgotten_names: std::collections::HashSet<u64>,
    /// Counts the uses of prepared statements, for [`Prepared::last_used`].
    uses: u64,
}

impl SessionStatements {
    /// A session's statement policy and SQL firewall; `None` when the
    /// database has both off. `catalog` is what was read of the server's
    /// catalogue at login (PostgreSQL: `search_path`, view dependencies,
    /// overloaded and row-argument functions); `database` the database
    /// the client connected to (MySQL: the current one, perhaps none).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        state: Arc<AppState>,
        caller: Caller,
        db: &Database,
        tags: Arc<ObjectTags>,
        secure: bool,
        database: Option<&str>,
        db_user: &str,
        catalog: Option<Arc<ServerCatalog>>,
        firewall: Option<SessionFirewall>,
    ) -> Option<Self> {
        let (policy_on, enforced) = match db.statement_policy {
            StatementPolicy::Off if firewall.is_none() => return None,
            StatementPolicy::Off => (false, false),
            StatementPolicy::Audit => (true, false),
            StatementPolicy::Enforce => (true, true),
        };
        let dialect = match db.engine {
            Engine::Postgres => Dialect::Postgres,
            Engine::Mysql => Dialect::MySql,
        };
        let catalog = catalog.unwrap_or_default();
        let mut overloaded_functions = catalog.overloaded_functions.clone();
        overloaded_functions.sort();
        overloaded_functions.dedup();
        let mut attribute_functions = catalog.attribute_functions.clone();
        attribute_functions.sort();
        attribute_functions.dedup();
        let default_path = match dialect {
            Dialect::Postgres => parse_search_path(
                catalog
                    .search_path
                    .as_deref()
                    .unwrap_or("\"$user\", public"),
            )
            .into_iter()
            .map(|s| if s == "$user" { db_user.to_owned() } else { s })
            .collect(),
            Dialect::MySql => Vec::new(),
        };
        let target = StatementTarget::new(
            state.region(),
            &caller.account,
            db,
            tags,
            catalog,
            Some(secure),
        );
        Some(Self {
            state,
            policy_on,
            enforced,
            firewall,
            dialect,
            target,
            scope: Scope {
                database: database.filter(|d| !d.is_empty()).map(str::to_owned),
                search_path: default_path.clone(),
                overloaded_functions,
                attribute_functions,
            },
            default_path,
            db_user: db_user.to_owned(),
            caller,
            path_unknown: false,
            backslashes_differ: false,
            encoding_differs: false,
            scope_generation: 0,
            scratch: String::new(),
            shapes: HashMap::new(),
            decisions: HashMap::new(),
            prepared: HashMap::new(),
            prepared_bytes: 0,
            prepared_forgotten: false,
            forgotten_names: std::collections::HashSet::new(),
            uses: 0,
        })
    }

    /// Widens the scope by a statement's changes: a `SET` may be rolled
    /// back with its transaction, so every path seen stays in force (an
    /// unqualified name must then be allowed in each).
    fn apply(&mut self, changes: &[ScopeChange]) {
        for change in changes {
            self.scope_generation += 1;
            match change {
                ScopeChange::SearchPath(path) => {
                    for schema in path {
                        let schema = if schema == "$user" {
                            self.db_user.clone()
                        } else {
                            schema.clone()
                        };
                        if !self.scope.search_path.contains(&schema) {
                            self.scope.search_path.push(schema);
                        }
                    }
                }
                ScopeChange::SearchPathDefault => {
                    for schema in self.default_path.clone() {
                        if !self.scope.search_path.contains(&schema) {
                            self.scope.search_path.push(schema);
                        }
                    }
                }
                ScopeChange::SearchPathUnknown => self.path_unknown = true,
                // `USE` may fail and leave the database as it was: the
                // current database is no longer known.
                ScopeChange::Database(_) => self.scope.database = None,
            }
        }
        if self.path_unknown {
            self.scope.search_path.clear();
        }
        self.shapes.clear();
        self.decisions.clear();
    }

    /// Classifies `sql` afresh; unclassified when the server would read it
    /// otherwise than the parser (backslashes under other quoting rules,
    /// bytes outside ASCII in another character set).
    fn classify_fresh(&self, sql: &str) -> Classified {
        if (self.backslashes_differ && sql.contains('\\'))
            || (self.encoding_differs && !sql.is_ascii())
            || sql.len() > MAX_CLASSIFIED_SQL
        {
            Classified::unclassified(&self.scope, 1)
        } else {
            latchkey_sqlaccess::classify(sql, self.dialect, &self.scope)
        }
    }

    /// Classifies `sql`, from the cache when its shape was seen.
    fn classify(&mut self, sql: &str, key: Option<u64>) -> Arc<Classified> {
        if let Some(key) = key
            && let Some(found) = self.shapes.get(&key)
        {
            return found.clone();
        }
        let classified = Arc::new(self.classify_fresh(sql));
        if let Some(key) = key
            && classified.shape_only
        {
            if self.shapes.len() >= CACHE_ENTRIES {
                self.shapes.clear();
            }
            self.shapes.insert(key, classified.clone());
        }
        classified
    }

    /// Keeps what a prepared statement was decided as, and in which scope.
    /// `replaces`: the server certainly drops what the name held (the
    /// unnamed statement, parsed first in its `Sync` group).
    fn remember(
        &mut self,
        name: &str,
        sql: &str,
        classified: Option<Arc<Classified>>,
        replaces: bool,
    ) {
        if replaces && let Some(old) = self.prepared.remove(name) {
            self.prepared_bytes -= old.sqls.iter().map(|s| s.len()).sum::<usize>();
        }
        if self.prepared.len() >= PREPARED || self.prepared_bytes + sql.len() > PREPARED_BYTES {
            self.forget_least_used(sql.len());
        }
        self.uses += 1;
        let uses = self.uses;
        match self.prepared.get_mut(name) {
            Some(prepared) => {
                prepared.last_used = uses;
                if prepared.sqls.iter().any(|s| &**s == sql) {
                    return;
                }
                // Decided again when it runs, with every SQL it may be;
                // in the scope the oldest was decided in.
                prepared.classified = None;
                if prepared.sqls.len() >= PREPARED_VERSIONS {
                    prepared.overflow = true;
                    return;
                }
                prepared.sqls.push(sql.into());
            }
            None => {
                // A name forgotten (or, past what is remembered of them,
                // any name once some were) may hold forgotten SQL still.
                let may_hold_forgotten = !replaces
                    && self.prepared_forgotten
                    && (self.forgotten_names.len() >= FORGOTTEN_NAMES
                        || self.forgotten_names.contains(&text_hash(name)));
                self.prepared.insert(
                    name.to_owned(),
                    Prepared {
                        sqls: vec![sql.into()],
                        overflow: false,
                        may_hold_forgotten,
                        generation: self.scope_generation,
                        classified,
                        firewall_revision: self
                            .firewall
                            .as_mut()
                            .map_or(0, SessionFirewall::current_revision),
                        decided_at: self.state.now(),
                        last_used: uses,
                    },
                );
            }
        }
        self.prepared_bytes += sql.len();
    }

    /// The firewall's verdict on running the prepared statement `name`,
    /// when its book changed since the statement was judged (`None`: it
    /// runs as judged at Parse). A statement the gateway no longer knows
    /// counts as unseen.
    /// Forgets the least used half of the prepared statements (more if
    /// `room` more bytes still do not fit): a client that closed its
    /// statements under ever new names (psycopg's `_pg3_N`) keeps the ones
    /// it runs. A forgotten name that runs again is unclassified (fail
    /// closed).
    fn forget_least_used(&mut self, room: usize) {
        let mut by_use: Vec<(u64, String)> = self
            .prepared
            .iter()
            .map(|(name, p)| (p.last_used, name.clone()))
            .collect();
        by_use.sort_unstable();
        let keep = self.prepared.len() / 2;
        for (_, name) in by_use {
            if self.prepared.len() <= keep && self.prepared_bytes + room <= PREPARED_BYTES {
                break;
            }
            if let Some(old) = self.prepared.remove(&name) {
                self.prepared_bytes -= old.sqls.iter().map(|s| s.len()).sum::<usize>();
                if self.forgotten_names.len() < FORGOTTEN_NAMES {
                    self.forgotten_names.insert(text_hash(&name));
                }
            }
        }
        self.prepared_forgotten = true;
    }

    /// A prepared statement runs: the least used are forgotten first.
    fn used(&mut self, name: &str) {
        if let Some(prepared) = self.prepared.get_mut(name) {
            self.uses += 1;
            prepared.last_used = self.uses;
        }
    }

    fn firewall_at_bind(&mut self, name: &str) -> Option<FirewallVerdict> {
        let firewall = self.firewall.as_mut()?;
        let revision = firewall.current_revision();
        let sqls: Vec<Arc<str>> = match self.prepared.get(name) {
            Some(p) if p.firewall_revision == revision => return None,
            Some(p) if !p.overflow => p.sqls.clone(),
            _ => Vec::new(),
        };
        let now = self.state.now();
        let mut worst: Option<FirewallVerdict> = None;
        for sql in &sqls {
            let shape = latchkey_sqlnorm::normalize_into(sql, self.dialect, &mut self.scratch);
            let signals = self.classify_fresh(sql).signals;
            let firewall = self.firewall.as_mut()?;
            let verdict = firewall.judge(shape.fingerprint, &self.scratch, &signals, now);
            if worst.is_none_or(|w| verdict.refused && !w.refused) {
                worst = Some(verdict);
            }
        }
        let verdict = match worst {
            Some(v) => v,
            // Unknown (forgotten, or several versions past what is kept):
            // judged as a shape never seen.
            None => {
                let firewall = self.firewall.as_mut()?;
                let state = firewall.state(now);
                FirewallVerdict {
                    mode: state,
                    unseen: state != FirewallState::Learn,
                    tautology: false,
                    time_probe: false,
                    comment: false,
                    stacked: false,
                    union: false,
                    refused: state == FirewallState::Block,
                }
            }
        };
        if !verdict.refused
            && let Some(prepared) = self.prepared.get_mut(name)
        {
            prepared.firewall_revision = revision;
        }
        Some(verdict)
    }

    /// Statement policy on running the prepared statement `name`: decided
    /// again when the scope changed since it was prepared, or when `again`
    /// (the firewall judged it anew); `None` when it runs as decided.
    fn policy_at_bind(
        &mut self,
        name: &str,
        again: bool,
    ) -> Option<(PolicyDecision, Option<Arc<str>>)> {
        if !self.policy_on {
            return None;
        }
        let now = self.state.now();
        let classified = match self.prepared.get(name) {
            // Decided in this scope, this second.
            Some(p)
                if p.generation == self.scope_generation
                    && p.decided_at == now
                    && !p.may_hold_forgotten
                    && !again =>
            {
                return None;
            }
            Some(_) => self.prepared_accesses(name),
            // Never seen (named by a refused Parse, which the server never
            // got): only a statement prepared before any scope change may
            // run unchecked, and none once statements were forgotten.
            None if self.scope_generation == 0 && !again && !self.prepared_forgotten => {
                return None;
            }
            None => None,
        };
        let accesses = match &classified {
            Some(c) => c.accesses.clone(),
            None => Classified::unclassified(&self.scope, 1).accesses,
        };
        let (decision, refusal) = self.decide(&accesses, 0, now);
        if refusal.is_none()
            && let Some(prepared) = self.prepared.get_mut(name)
        {
            prepared.generation = self.scope_generation;
            prepared.classified = classified;
            prepared.decided_at = now;
        }
        Some((decision, refusal))
    }

    /// What running the prepared statement `name` now accesses: as
    /// decided when it was prepared, or, when the scope has changed since
    /// (the server resolves its names again), as its SQL reads now. `None`
    /// when the gateway does not know the statement.
    fn prepared_accesses(&mut self, name: &str) -> Option<Arc<Classified>> {
        let prepared = self.prepared.get(name)?;
        // First: what the name holds may not be what was classified (a
        // SQL `PREPARE` of a name in use fails, leaving the forgotten SQL).
        if prepared.overflow || prepared.may_hold_forgotten {
            return Some(Arc::new(Classified::unclassified(&self.scope, 1)));
        }
        // MySQL keeps a prepared statement's database when `USE` changes
        // the current one: only PostgreSQL resolves its names again.
        if (prepared.generation == self.scope_generation || self.dialect == Dialect::MySql)
            && let Some(classified) = &prepared.classified
        {
            return Some(classified.clone());
        }
        let mut all = Classified::default();
        for sql in &prepared.sqls {
            let classified = self.classify_fresh(sql);
            all.accesses.extend(classified.accesses);
        }
        all.accesses.sort();
        all.accesses.dedup();
        Some(Arc::new(all))
    }

    /// Decides every access; the first denied one decides the statement.
    /// The message is the refusal's, when the statement is to be refused.
    fn decide(
        &self,
        accesses: &[Access],
        fingerprint: u64,
        now: i64,
    ) -> (PolicyDecision, Option<Arc<str>>) {
        let first = accesses.first();
        let mut decision = PolicyDecision {
            allowed: true,
            enforced: self.enforced,
            action: first.map(|a| a.action.as_str()),
            resource: first.map(|a| self.target.arn(a)).unwrap_or_default(),
            reason: String::new(),
            accesses: u32::try_from(accesses.len()).unwrap_or(u32::MAX),
            uses: Vec::new(),
            evaluated: true,
            firewall: None,
        };
        if accesses.is_empty() {
            decision.reason = "the statement touches no object".into();
            return (decision, None);
        }
        let refused = |decision: PolicyDecision, access: Option<&Access>| {
            let message = match access {
                Some(a) if a.action == SqlAction::Unclassified => {
                    "permission denied by policy: sql:Unclassified (a statement Latchkey cannot classify)".to_owned()
                }
                Some(a) => format!(
                    "permission denied by policy: {} on {} {}",
                    a.action.as_str(),
                    a.object.kind.as_str(),
                    a.object.display_name()
                ),
                None => "permission denied by policy".to_owned(),
            };
            let message = decision.enforced.then(|| Arc::from(message));
            (decision, message)
        };
        let (set, base) = match self
            .state
            .policy_set(&self.caller)
            .and_then(|set| Ok((set, self.state.request(&self.caller, "", "", now)?)))
        {
            Ok(found) => found,
            Err(e) => {
                decision.allowed = false;
                decision.reason = format!("policies could not be read: {e}");
                return refused(decision, first);
            }
        };
        let fingerprint = latchkey_sqlnorm::fingerprint_hex(fingerprint);
        let mut allowed_by = Vec::new();
        for access in accesses {
            let req = self.target.request(&base, access, &fingerprint);
            if set.decide(&req) == Decision::Allowed {
                let used = (access.action.as_str(), req.resource());
                if !decision.uses.iter().any(|(a, r)| (*a, r.as_str()) == used) {
                    decision.uses.push((used.0, used.1.to_owned()));
                }
                if allowed_by.is_empty() {
                    allowed_by = set
                        .explain(&req)
                        .matched
                        .iter()
                        .map(|m| format!("{}: {}", m.policy, m.statement))
                        .collect();
                }
                continue;
            }
            let explained = set.explain(&req);
            decision.allowed = false;
            decision.uses.clear();
            decision.action = Some(access.action.as_str());
            decision.resource = req.resource().to_owned();
            decision.reason = match explained.decision {
                Decision::ExplicitDeny => format!(
                    "explicitly denied by {}",
                    explained
                        .matched
                        .iter()
                        .map(|m| format!("{}: {}", m.policy, m.statement))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => "no statement allows it (implicit deny)".to_owned(),
            };
            return refused(decision, Some(access));
        }
        decision.reason = format!("allowed by {}", allowed_by.join(", "));
        (decision, None)
    }
}

impl StatementGate for SessionStatements {
    fn rule(&mut self, sql: &str) -> Ruling {
        let now = self.state.now();
        let cacheable = shape_cacheable(sql, self.dialect);
        let shape = latchkey_sqlnorm::normalize_into(sql, self.dialect, &mut self.scratch);
        // The key is the normalised text as written: the fingerprint folds
        // case, and MySQL table names are case-sensitive.
        // The firewall's revision is part of the key: a ruling cached
        // just before a switch to block must not outlive it.
        let firewall_revision = self
            .firewall
            .as_mut()
            .map_or(0, SessionFirewall::current_revision);
        let key = cacheable.then(|| {
            text_hash(&self.scratch)
                ^ self.scope_generation.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (firewall_revision as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        });
        if let Some(key) = key
            && let Some((at, ruling)) = self.decisions.get(&key)
            && *at == now
        {
            return ruling.clone();
        }
        let classified = self.classify(sql, key);
        let mut accesses = classified.accesses.clone();
        if let Some(name) = &classified.executes {
            match self.prepared_accesses(name) {
                Some(prepared) => accesses.extend(prepared.accesses.iter().cloned()),
                None => accesses.extend(Classified::unclassified(&self.scope, 1).accesses),
            }
        }
        let (mut decision, mut refusal) = if self.policy_on {
            self.decide(&accesses, shape.fingerprint, now)
        } else {
            (
                PolicyDecision {
                    allowed: true,
                    enforced: false,
                    action: None,
                    resource: String::new(),
                    reason: String::new(),
                    accesses: 0,
                    uses: Vec::new(),
                    evaluated: false,
                    firewall: None,
                },
                None,
            )
        };
        if let Some(firewall) = &mut self.firewall {
            let verdict =
                firewall.judge(shape.fingerprint, &self.scratch, &classified.signals, now);
            if verdict.refused && refusal.is_none() {
                refusal = Some(Arc::from(SessionFirewall::refusal(&verdict)));
            }
            decision.firewall = Some(verdict);
        }
        // `EXECUTE name` runs what was prepared earlier: judged again, as
        // a protocol-level Bind is, when the firewall changed since.
        if let Some(name) = &classified.executes
            && let Some(verdict) = self.firewall_at_bind(name)
            && verdict.refused
        {
            if refusal.is_none() {
                refusal = Some(Arc::from(SessionFirewall::refusal(&verdict)));
            }
            decision.firewall = Some(verdict);
        }
        let decision = Arc::new(decision);
        let ruling = match refusal {
            Some(message) => Ruling::Refuse { message, decision },
            None => Ruling::Pass(decision),
        };
        let allowed = matches!(ruling, Ruling::Pass(_));
        if allowed {
            // A DEALLOCATE may fail (in an aborted transaction) and leave
            // the statement: what a name held is never forgotten.
            // MySQL replaces a statement of the name (dropping the old one
            // even when the new one fails).
            if let Some(name) = &classified.prepares {
                let replaces = self.dialect == Dialect::MySql;
                self.remember(name, sql, Some(classified.clone()), replaces);
            }
            if !classified.scope_changes.is_empty() {
                self.apply(&classified.scope_changes);
            }
        }
        // Statements that change the session's state are decided afresh.
        if let Some(key) = key
            && classified.shape_only
            && classified.executes.is_none()
            && classified.prepares.is_none()
            && classified.deallocates.is_none()
            && classified.scope_changes.is_empty()
        {
            if self.decisions.len() >= CACHE_ENTRIES {
                self.decisions.clear();
            }
            self.decisions.insert(key, (now, ruling.clone()));
        }
        ruling
    }

    fn backslashes_differ(&mut self, differ: bool) {
        if differ != self.backslashes_differ {
            self.backslashes_differ = differ;
            self.shapes.clear();
            self.decisions.clear();
        }
    }

    fn encoding_differs(&mut self, differs: bool) {
        if differs != self.encoding_differs {
            self.encoding_differs = differs;
            self.shapes.clear();
            self.decisions.clear();
        }
    }

    fn database_changed(&mut self) {
        self.apply(&[ScopeChange::Database(String::new())]);
    }

    fn rule_parse(&mut self, name: &str, sql: &str, replaces: bool) -> Ruling {
        let ruling = self.rule(sql);
        if matches!(ruling, Ruling::Pass(_)) {
            // PostgreSQL: classified again only if it runs after a scope
            // change (the server resolves its names again). MySQL runs a
            // prepared statement against the database current at its
            // prepare, whatever `USE` comes after: kept as classified now.
            let classified =
                (self.dialect == Dialect::MySql).then(|| Arc::new(self.classify_fresh(sql)));
            self.remember(name, sql, classified, replaces && name.is_empty());
        }
        ruling
    }

    fn firewall_revision(&mut self) -> i64 {
        self.firewall
            .as_mut()
            .map_or(0, SessionFirewall::current_revision)
    }

    fn policy_second(&mut self) -> i64 {
        if self.policy_on { self.state.now() } else { 0 }
    }

    fn closed(&mut self, name: &str) {
        if let Some(old) = self.prepared.remove(name) {
            self.prepared_bytes -= old.sqls.iter().map(|s| s.len()).sum::<usize>();
        }
        self.forgotten_names.remove(&text_hash(name));
    }

    fn rule_bind(&mut self, name: &str) -> Option<Ruling> {
        self.used(name);
        // The firewall judges a prepared statement again when its book
        // changed since (a client that prepared in alert mode must not
        // keep running it once the profile blocks); statement policy
        // decides again when the scope changed.
        let verdict = self.firewall_at_bind(name);
        let (mut decision, mut refusal) = match self.policy_at_bind(name, verdict.is_some()) {
            Some(decided) => decided,
            None => (PolicyDecision::firewall_only(verdict?), None),
        };
        if let Some(verdict) = verdict {
            if verdict.refused && refusal.is_none() {
                refusal = Some(Arc::from(SessionFirewall::refusal(&verdict)));
            }
            decision.firewall = Some(verdict);
        }
        let decision = Arc::new(decision);
        Some(match refusal {
            Some(message) => Ruling::Refuse { message, decision },
            None => Ruling::Pass(decision),
        })
    }
}

/// 64-bit FNV-1a of a normalised statement, as written.
fn text_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether every lexer (Latchkey's fingerprint, the classifier's parser,
/// the server under any setting) reads `sql` alike, so that a statement
/// with the same fingerprint may share a classification: no backslash
/// (escapes depend on settings), no comment (nesting and MySQL's
/// executable comments differ), no dollar quote (only `$1` parameters),
/// no PostgreSQL Unicode escape (`U&"..." UESCAPE '...'`: a literal
/// decides the name), no digits run into a word (a MySQL identifier such
/// as `1cards` normalises as `?cards`), and in MySQL no double quote (`ANSI_QUOTES` makes
/// it an identifier).
pub fn shape_cacheable(sql: &str, dialect: Dialect) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    let bytes = sql.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        let next = bytes.get(i + 1).copied();
        // Digits then a letter: a MySQL identifier (`1cards`), which
        // normalisation reads as a number and a word (`?cards`, as
        // `2cards` is); a hex, binary or exponent number anywhere.
        if c.is_ascii_digit() && (i == 0 || !word(bytes[i - 1])) {
            let end = bytes[i..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map_or(bytes.len(), |n| i + n);
            if bytes.get(end).is_some_and(|&b| word(b)) {
                return false;
            }
        }
        match c {
            b'\\' => return false,
            b'-' if next == Some(b'-') => return false,
            b'/' if next == Some(b'*') => return false,
            b'$' if !next.is_some_and(|n| n.is_ascii_digit()) => return false,
            b'#' | b'"' if dialect == Dialect::MySql => return false,
            // PostgreSQL `U&"..." UESCAPE '!'`: the escape character is a
            // literal, and it decides which name the identifier spells.
            b'&' if matches!(next, Some(b'"' | b'\'')) => return false,
            _ => {}
        }
    }
    true
}

/// Schemas of a `search_path` value as `SHOW search_path` prints it
/// (`"$user", public`): quoted names unquoted, unquoted ones folded.
pub fn parse_search_path(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => s.to_ascii_lowercase(),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use latchkey_identity::clock::ManualClock;
    use latchkey_session::{Ancestor, SessionClaims};
    use latchkey_store::{PrincipalKind, Store, Vault};

    use super::*;

    const T0: i64 = 1_790_000_000;

    /// The README's examples, in the role's policy: DROP only within 5
    /// minutes of MFA; DELETE/UPDATE only with a WHERE clause.
    const DBA: &str = r#"{"Version":"2012-10-17","Statement":[
      {"Effect":"Allow","Action":["sql:Select","sql:Delete","sql:Update"],"Resource":"*"},
      {"Sid":"DropWithFreshMfa","Effect":"Allow","Action":"sql:Drop","Resource":"*",
       "Condition":{"NumericLessThan":{"aws:MultiFactorAuthAge":"300"}}},
      {"Sid":"WhereRequired","Effect":"Deny","Action":["sql:Update","sql:Delete"],"Resource":"*",
       "Condition":{"Bool":{"sql:WhereClausePresent":"false"}}}]}"#;

    /// A role session assumed with MFA at `T0`, on a clock the test moves.
    fn dba_session(
        mode: StatementPolicy,
    ) -> (tempfile::TempDir, Arc<ManualClock>, SessionStatements) {
        dba_session_with(mode, |_| None)
    }

    /// As [`dba_session`], with the SQL firewall `firewall` makes (given
    /// the role's ARN).
    fn dba_session_with(
        mode: StatementPolicy,
        firewall: impl FnOnce(String) -> Option<SessionFirewall>,
    ) -> (tempfile::TempDir, Arc<ManualClock>, SessionStatements) {
        dba_session_on(Engine::Postgres, mode, firewall)
    }

    /// [`dba_session_with`] on a database of `engine`.
    fn dba_session_on(
        engine: Engine,
        mode: StatementPolicy,
        firewall: impl FnOnce(String) -> Option<SessionFirewall>,
    ) -> (tempfile::TempDir, Arc<ManualClock>, SessionStatements) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), Vault::new(1, &[4; 32])).unwrap();
        let user = store.create_user("bob", "/", &[], T0).unwrap();
        let role = store
            .create_role("dba", "/", "{}", 3600, "", &[], T0)
            .unwrap();
        store
            .put_inline_policy(PrincipalKind::Role, "dba", "sql", DBA)
            .unwrap();
        let keys = store.cluster_keys(T0).unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let state = Arc::new(
            AppState::new(store, keys)
                .unwrap()
                .with_clock(clock.clone()),
        );
        let claims = SessionClaims {
            token_id: [7; 16],
            account: state.store.account_id().to_owned(),
            principal_arn: user.arn.clone(),
            principal_id: user.id.clone(),
            role_arn: role.arn.clone(),
            role_id: role.id.clone(),
            session_name: "drop".into(),
            issued: T0,
            expires: T0 + 3600,
            mfa_authenticated: true,
            mfa_time: Some(T0),
            lineage: vec![Ancestor {
                arn: user.arn,
                id: user.id,
                issued: T0,
            }],
            ..SessionClaims::default()
        };
        let sealed = state
            .keyring
            .read()
            .unwrap()
            .seal(&claims, [0; 12])
            .unwrap();
        let caller = state
            .find_credentials(
                &sealed.access_key_id,
                Some(&sealed.session_token),
                T0,
                "127.0.0.1",
            )
            .unwrap()
            .caller;
        let db = Database {
            name: "orders".into(),
            engine,
            resource_id: "db-TEST".into(),
            statement_policy: mode,
            ..Database::default()
        };
        let catalog = ServerCatalog {
            search_path: Some("public".into()),
            ..ServerCatalog::default()
        };
        let gate = SessionStatements::new(
            state,
            caller,
            &db,
            Arc::new(ObjectTags::default()),
            true,
            Some("orders"),
            "app",
            Some(Arc::new(catalog)),
            firewall(role.arn.clone()),
        )
        .unwrap();
        (dir, clock, gate)
    }

    /// A firewall in `mode` whose profile for the role knows `known`.
    fn firewall_of(
        mode: latchkey_store::FirewallMode,
        known: &[&str],
    ) -> impl FnOnce(String) -> Option<SessionFirewall> {
        use crate::firewall::{FirewallBook, ProfileSnapshot};
        let known: std::collections::HashSet<u64> = known
            .iter()
            .map(|sql| latchkey_sqlnorm::normalize(sql, Dialect::Postgres).fingerprint)
            .collect();
        move |principal: String| {
            let book = FirewallBook {
                config: latchkey_store::FirewallConfig {
                    database: "orders".into(),
                    mode,
                    learning_secs: 0,
                    revision: 1,
                },
                profiles: [(
                    principal.clone(),
                    Arc::new(ProfileSnapshot {
                        mode: latchkey_store::ProfileMode::Learn,
                        learning_until: Some(T0),
                        known,
                        ..ProfileSnapshot::default()
                    }),
                )]
                .into_iter()
                .collect(),
            };
            let (tx, _rx) = std::sync::mpsc::sync_channel(1);
            SessionFirewall::new(&book, principal, T0, tx, Arc::default())
        }
    }

    #[test]
    fn mysql_arns_fold_names_as_the_server_compares_them() {
        let db = Database {
            name: "shop".into(),
            engine: Engine::Mysql,
            resource_id: "db-TEST".into(),
            ..Database::default()
        };
        let arn = |lower_case_table_names: bool, engine: Engine, sql: &str| {
            let target = StatementTarget::new(
                "us-east-1",
                "123456789012",
                &Database {
                    engine,
                    ..db.clone()
                },
                Arc::default(),
                Arc::new(ServerCatalog {
                    lower_case_table_names,
                    ..ServerCatalog::default()
                }),
                None,
            );
            let dialect = match engine {
                Engine::Mysql => Dialect::MySql,
                Engine::Postgres => Dialect::Postgres,
            };
            let scope = Scope {
                database: Some("shop".into()),
                search_path: vec!["public".into()],
                ..Scope::default()
            };
            let classified = latchkey_sqlaccess::classify(sql, dialect, &scope);
            target.arn(&classified.accesses[0])
        };
        let prefix = "arn:aws:sql:us-east-1:123456789012:";
        let mysql = Engine::Mysql;
        assert_eq!(
            arn(true, mysql, "SELECT * FROM SHOP.Cards"),
            format!("{prefix}table/db-TEST/shop/shop/cards")
        );
        assert_eq!(
            arn(false, mysql, "SELECT * FROM SHOP.Cards"),
            format!("{prefix}table/db-TEST/SHOP/SHOP/Cards")
        );
        // Routine names are compared without case on every MySQL server;
        // their database's name as tables' are.
        assert_eq!(
            arn(false, mysql, "SELECT SHOP.Leak()"),
            format!("{prefix}function/db-TEST/SHOP/SHOP/leak")
        );
        assert_eq!(
            arn(true, mysql, "SELECT SHOP.Leak()"),
            format!("{prefix}function/db-TEST/shop/shop/leak")
        );
        // PostgreSQL folds unquoted names itself and keeps quoted ones.
        assert_eq!(
            arn(true, Engine::Postgres, r#"SELECT * FROM "Cards""#),
            format!("{prefix}table/db-TEST/shop/public/Cards")
        );
    }

    #[test]
    fn the_firewall_alone_refuses_unseen_shapes_and_probes_in_block_mode() {
        use latchkey_audit::FirewallState;
        let (_dir, _clock, mut gate) = dba_session_with(
            StatementPolicy::Off,
            firewall_of(
                latchkey_store::FirewallMode::Block,
                &["SELECT total FROM orders WHERE id = 1"],
            ),
        );
        let ruling = gate.rule("SELECT total FROM orders WHERE id = 2");
        assert_eq!(refused(&ruling), None);
        let decision = ruling.decision();
        // Statement policy is off: only the firewall's verdict is recorded.
        assert!(!decision.evaluated && decision.allowed);
        let verdict = decision.firewall.unwrap();
        assert_eq!(verdict.mode, FirewallState::Block);
        assert!(!verdict.unseen && !verdict.refused);
        // The same statement again in the same second: the same decision.
        let again = gate.rule("SELECT total FROM orders WHERE id = 2");
        assert!(Arc::ptr_eq(again.decision(), decision));
        let injected = gate.rule("SELECT total FROM orders WHERE id = 2 OR 1=1");
        assert_eq!(refused(&injected), Some(crate::firewall::UNSEEN_MESSAGE));
        let verdict = injected.decision().firewall.unwrap();
        assert!(verdict.unseen && verdict.tautology && verdict.refused);
        // A known shape with a time probe is refused as such.
        let (_dir, _clock, mut gate) = dba_session_with(
            StatementPolicy::Off,
            firewall_of(
                latchkey_store::FirewallMode::Block,
                &["SELECT total FROM orders WHERE id = pg_sleep(1)"],
            ),
        );
        assert_eq!(
            refused(&gate.rule("SELECT total FROM orders WHERE id = pg_sleep(5)")),
            Some("statement refused by the SQL firewall: a time-based probe")
        );
    }

    #[test]
    fn policy_and_firewall_both_decide_and_policy_refusals_come_first() {
        let (_dir, clock, mut gate) = dba_session_with(
            StatementPolicy::Enforce,
            firewall_of(latchkey_store::FirewallMode::Alert, &[]),
        );
        // Alert: an unseen shape runs, with both decisions recorded.
        let ruling = gate.rule("SELECT total FROM orders WHERE id = 1");
        assert_eq!(refused(&ruling), None);
        let d = ruling.decision();
        assert!(d.evaluated && d.allowed);
        assert!(d.firewall.unwrap().unseen && !d.firewall.unwrap().refused);
        clock.set(T0 + 301);
        assert_eq!(
            refused(&gate.rule("DROP TABLE orders")),
            Some("permission denied by policy: sql:Drop on table public.orders")
        );
    }

    fn refused(r: &Ruling) -> Option<&str> {
        match r {
            Ruling::Refuse { message, .. } => Some(message),
            Ruling::Pass(_) => None,
        }
    }

    #[test]
    fn drop_needs_mfa_within_five_minutes_and_the_cache_keeps_no_decision_past_its_second() {
        let (_dir, clock, mut gate) = dba_session(StatementPolicy::Enforce);
        clock.set(T0 + 10);
        assert_eq!(refused(&gate.rule("DROP TABLE orders")), None);
        // The same shape again, from the cache.
        assert_eq!(refused(&gate.rule("DROP TABLE orders")), None);
        clock.set(T0 + 299);
        assert_eq!(refused(&gate.rule("DROP TABLE orders")), None);
        clock.set(T0 + 301);
        assert_eq!(
            refused(&gate.rule("DROP TABLE orders")),
            Some("permission denied by policy: sql:Drop on table public.orders")
        );
    }

    #[test]
    fn a_statement_prepared_while_mfa_was_fresh_is_decided_again_when_it_runs_later() {
        let (_dir, clock, mut gate) = dba_session(StatementPolicy::Enforce);
        clock.set(T0 + 10);
        assert_eq!(
            refused(&gate.rule_parse("d", "DROP TABLE orders", false)),
            None
        );
        // Within the second it was decided in: nothing to decide again.
        assert!(gate.rule_bind("d").is_none());
        clock.set(T0 + 299);
        assert_eq!(gate.rule_bind("d").as_ref().and_then(refused), None);
        clock.set(T0 + 301);
        assert_eq!(
            gate.rule_bind("d").as_ref().and_then(refused),
            Some("permission denied by policy: sql:Drop on table public.orders")
        );
    }

    #[test]
    fn a_mysql_prepared_statement_is_decided_again_in_the_database_it_was_prepared_in() {
        let (_dir, clock, mut gate) =
            dba_session_on(Engine::Mysql, StatementPolicy::Enforce, |_| None);
        clock.set(T0 + 10);
        assert_eq!(
            refused(&gate.rule_parse("\0mysql-1", "DROP TABLE cards", false)),
            None
        );
        // MySQL keeps running it against `orders`, whatever USE says.
        assert_eq!(refused(&gate.rule("USE other")), None);
        clock.set(T0 + 301);
        let ruling = gate.rule_bind("\0mysql-1");
        let message = ruling.as_ref().and_then(refused).unwrap_or_default();
        assert!(
            message.contains("sql:Drop on table orders.cards"),
            "{message}"
        );
    }

    #[test]
    fn sql_too_long_to_parse_is_unclassified() {
        let (_dir, clock, mut gate) = dba_session(StatementPolicy::Enforce);
        clock.set(T0 + 10);
        let long = format!("SELECT 1{}", ",1".repeat(MAX_CLASSIFIED_SQL / 2));
        assert_eq!(
            refused(&gate.rule(&long)),
            Some(
                "permission denied by policy: sql:Unclassified (a statement Latchkey cannot classify)"
            )
        );
        assert_eq!(refused(&gate.rule("SELECT 1,1")), None);
    }

    #[test]
    fn statements_forgotten_to_stay_in_bounds_are_unclassified_and_those_in_use_are_kept() {
        let (_dir, clock, mut gate) = dba_session(StatementPolicy::Enforce);
        clock.set(T0 + 10);
        assert_eq!(
            refused(&gate.rule_parse("d", "DROP TABLE orders", false)),
            None
        );
        assert_eq!(refused(&gate.rule_parse("kept", "SELECT 1", false)), None);
        for i in 0..PREPARED {
            assert_eq!(
                refused(&gate.rule_parse(&format!("f{i}"), "SELECT 2", false)),
                None
            );
            if i % 100 == 0 {
                assert!(gate.rule_bind("kept").is_none());
            }
        }
        // Still known, run as decided.
        assert!(gate.rule_bind("kept").is_none());
        // Forgotten: whatever it was, it is decided as unclassified,
        // before and after the MFA window (it ran unchecked before).
        assert_eq!(
            gate.rule_bind("d").as_ref().and_then(refused),
            Some(
                "permission denied by policy: sql:Unclassified (a statement Latchkey cannot classify)"
            )
        );
        // Prepared again under its name, it may still be the DROP (the
        // server answers 42P05 to a Parse of a name in use): unclassified
        // whenever it runs, while a name never used before runs as decided.
        assert_eq!(refused(&gate.rule_parse("d", "SELECT 3", false)), None);
        assert!(gate.rule_bind("d").as_ref().and_then(refused).is_some());
        assert_eq!(refused(&gate.rule_parse("new", "SELECT 3", false)), None);
        assert!(gate.rule_bind("new").is_none());
        // By SQL too.
        assert_eq!(refused(&gate.rule("PREPARE f7 AS SELECT 3")), None);
        assert_eq!(
            refused(&gate.rule("EXECUTE f7")),
            Some(
                "permission denied by policy: sql:Unclassified (a statement Latchkey cannot classify)"
            )
        );
        // Closed, as the server confirmed: the name is free again.
        gate.closed("f8");
        assert_eq!(refused(&gate.rule_parse("f8", "SELECT 3", false)), None);
        assert!(gate.rule_bind("f8").is_none());
        clock.set(T0 + 301);
        assert!(gate.rule_bind("d").as_ref().and_then(refused).is_some());
    }

    #[test]
    fn delete_and_update_need_a_where_clause() {
        let (_dir, _clock, mut gate) = dba_session(StatementPolicy::Enforce);
        assert_eq!(refused(&gate.rule("DELETE FROM orders WHERE id = 7")), None);
        assert_eq!(
            refused(&gate.rule("DELETE FROM orders")),
            Some("permission denied by policy: sql:Delete on table public.orders")
        );
        assert!(refused(&gate.rule("UPDATE orders SET total = 0 WHERE 1 = 1")).is_some());
        // The deciding statement is in the decision, for the audit record.
        let Ruling::Refuse { decision, .. } = gate.rule("DELETE FROM orders") else {
            panic!("refused above");
        };
        assert!(!decision.allowed && decision.enforced);
        assert_eq!(decision.action, Some("sql:Delete"));
        assert!(
            decision.reason.contains("WhereRequired"),
            "{}",
            decision.reason
        );
        assert!(
            decision
                .resource
                .ends_with(":table/db-TEST/orders/public/orders")
        );
    }

    #[test]
    fn audit_mode_decides_but_refuses_nothing() {
        let (_dir, _clock, mut gate) = dba_session(StatementPolicy::Audit);
        let Ruling::Pass(decision) = gate.rule("DELETE FROM orders") else {
            panic!("audit mode refuses nothing");
        };
        assert!(!decision.allowed && !decision.enforced);
        assert!(decision.uses.is_empty(), "a denied statement uses nothing");
        // Unclassifiable SQL is denied unless a policy allows it.
        let Ruling::Pass(decision) = gate.rule("SELEC garbage (") else {
            panic!("audit mode refuses nothing");
        };
        assert_eq!(decision.action, Some("sql:Unclassified"));
        assert!(!decision.allowed);
    }

    #[test]
    fn search_path_changes_widen_what_unqualified_names_stand_for() {
        let (_dir, _clock, mut gate) = dba_session(StatementPolicy::Enforce);
        assert_eq!(refused(&gate.rule("SELECT * FROM orders")), None);
        // Allowed (sql:Select on *), and now `orders` may be in either.
        assert_eq!(
            refused(&gate.rule("SET search_path TO sales, public")),
            None
        );
        let Ruling::Pass(d) = gate.rule("SELECT * FROM orders") else {
            panic!("allowed");
        };
        assert_eq!(d.accesses, 2, "sales.orders and public.orders");
        // Both are uses the access advisor counts, each once.
        let mut used: Vec<_> = d
            .uses
            .iter()
            .map(|(a, r)| (*a, r.rsplit(':').next().unwrap_or_default()))
            .collect();
        used.sort();
        assert_eq!(
            used,
            [
                ("sql:Select", "table/db-TEST/orders/public/orders"),
                ("sql:Select", "table/db-TEST/orders/sales/orders")
            ]
        );
    }

    #[test]
    fn sql_outside_ascii_is_unclassified_under_another_client_encoding() {
        let (_dir, _clock, mut gate) = dba_session(StatementPolicy::Enforce);
        let non_ascii = "SELECT * FROM \"c\u{e4}rds\"";
        assert_eq!(refused(&gate.rule(non_ascii)), None);
        // LATIN1: the server reads those two bytes as two other letters.
        gate.encoding_differs(true);
        assert_eq!(
            refused(&gate.rule(non_ascii)),
            Some(
                "permission denied by policy: sql:Unclassified (a statement Latchkey cannot classify)"
            )
        );
        assert_eq!(refused(&gate.rule("SELECT * FROM orders")), None);
        gate.encoding_differs(false);
        assert_eq!(refused(&gate.rule(non_ascii)), None);
    }

    #[test]
    fn only_sql_every_lexer_reads_alike_shares_a_cached_shape() {
        assert!(shape_cacheable(
            "SELECT * FROM t WHERE a = $1 AND b = 'x'",
            Dialect::Postgres
        ));
        for sql in [
            "SELECT 'a\\' FROM t",
            "SELECT 1 -- x",
            "SELECT /* x */ 1",
            "SELECT $$x$$",
        ] {
            assert!(!shape_cacheable(sql, Dialect::Postgres), "{sql}");
        }
        assert!(!shape_cacheable("SELECT \"x\" FROM t", Dialect::MySql));
        assert!(!shape_cacheable("SELECT 1 # x", Dialect::MySql));
        assert_eq!(
            parse_search_path("\"$user\", public, \"Sales\""),
            ["$user", "public", "Sales"]
        );
    }
}
