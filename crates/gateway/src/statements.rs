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

use latchkey_audit::PolicyDecision;
use latchkey_framing::{Ruling, StatementGate};
use latchkey_identity::{AppState, Caller};
use latchkey_policy::{Decision, Request};
use latchkey_sqlaccess::{Access, Classified, Dialect, ObjectKind, Scope, ScopeChange, SqlAction};
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
    /// MySQL: an object's tags are found whatever the case it is named in.
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

    /// The resource ARN of an access.
    pub fn arn(&self, access: &Access) -> String {
        format!(
            "{}{}",
            self.arn_prefix,
            access.object.arn_resource(&self.resource_id)
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
    enforced: bool,
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
    /// Bumped at every scope change, and part of every cache key.
    scope_generation: u64,
    scratch: String,
    shapes: HashMap<u64, Arc<Classified>>,
    decisions: HashMap<u64, (i64, Ruling)>,
    prepared: HashMap<String, Prepared>,
    prepared_bytes: usize,
}

impl SessionStatements {
    /// A session's statement policy; `None` when the database has it off.
    /// `search_path` is the server's at login (PostgreSQL); `database`
    /// the database the client connected to (MySQL: the current one,
    /// perhaps none).
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
    ) -> Option<Self> {
        let enforced = match db.statement_policy {
            StatementPolicy::Off => return None,
            StatementPolicy::Audit => false,
            StatementPolicy::Enforce => true,
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
            enforced,
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
            scope_generation: 0,
            scratch: String::new(),
            shapes: HashMap::new(),
            decisions: HashMap::new(),
            prepared: HashMap::new(),
            prepared_bytes: 0,
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

    /// Classifies `sql`, from the cache when its shape was seen.
    fn classify(&mut self, sql: &str, key: Option<u64>) -> Arc<Classified> {
        if let Some(key) = key
            && let Some(found) = self.shapes.get(&key)
        {
            return found.clone();
        }
        let classified = if self.backslashes_differ && sql.contains('\\') {
            Classified::unclassified(&self.scope, 1)
        } else {
            latchkey_sqlaccess::classify(sql, self.dialect, &self.scope)
        };
        let classified = Arc::new(classified);
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
            // Forgotten statements are unclassified if they run after a
            // scope change (fail closed).
            self.prepared.clear();
            self.prepared_bytes = 0;
        }
        match self.prepared.get_mut(name) {
            Some(prepared) => {
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
                self.prepared.insert(
                    name.to_owned(),
                    Prepared {
                        sqls: vec![sql.into()],
                        overflow: false,
                        generation: self.scope_generation,
                        classified,
                    },
                );
            }
        }
        self.prepared_bytes += sql.len();
    }

    /// What running the prepared statement `name` now accesses: as
    /// decided when it was prepared, or, when the scope has changed since
    /// (the server resolves its names again), as its SQL reads now. `None`
    /// when the gateway does not know the statement.
    fn prepared_accesses(&mut self, name: &str) -> Option<Arc<Classified>> {
        let prepared = self.prepared.get(name)?;
        // MySQL keeps a prepared statement's database when `USE` changes
        // the current one: only PostgreSQL resolves its names again.
        if (prepared.generation == self.scope_generation || self.dialect == Dialect::MySql)
            && let Some(classified) = &prepared.classified
        {
            return Some(classified.clone());
        }
        if prepared.overflow {
            return Some(Arc::new(Classified::unclassified(&self.scope, 1)));
        }
        let mut all = Classified::default();
        for sql in &prepared.sqls {
            let classified = if self.backslashes_differ && sql.contains('\\') {
                Classified::unclassified(&self.scope, 1)
            } else {
                latchkey_sqlaccess::classify(sql, self.dialect, &self.scope)
            };
            all.accesses.extend(classified.accesses);
        }
        all.accesses.sort();
        all.accesses.dedup();
        Some(Arc::new(all))
    }

    /// Decides every access; the first denied one decides the statement.
    fn decide(&self, accesses: &[Access], fingerprint: u64, now: i64) -> Ruling {
        let first = accesses.first();
        let mut decision = PolicyDecision {
            allowed: true,
            enforced: self.enforced,
            action: first.map(|a| a.action.as_str()),
            resource: first.map(|a| self.target.arn(a)).unwrap_or_default(),
            reason: String::new(),
            accesses: u32::try_from(accesses.len()).unwrap_or(u32::MAX),
        };
        if accesses.is_empty() {
            decision.reason = "the statement touches no object".into();
            return Ruling::Pass(Arc::new(decision));
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
            if decision.enforced {
                Ruling::Refuse {
                    message: message.into(),
                    decision: Arc::new(decision),
                }
            } else {
                Ruling::Pass(Arc::new(decision))
            }
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
        Ruling::Pass(Arc::new(decision))
    }
}

impl StatementGate for SessionStatements {
    fn rule(&mut self, sql: &str) -> Ruling {
        let now = self.state.now();
        let cacheable = shape_cacheable(sql, self.dialect);
        let shape = latchkey_sqlnorm::normalize_into(sql, self.dialect, &mut self.scratch);
        // The key is the normalised text as written: the fingerprint folds
        // case, and MySQL table names are case-sensitive.
        let key = cacheable.then(|| {
            text_hash(&self.scratch) ^ self.scope_generation.wrapping_mul(0x9E37_79B9_7F4A_7C15)
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
        let ruling = self.decide(&accesses, shape.fingerprint, now);
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

    fn database_changed(&mut self) {
        self.apply(&[ScopeChange::Database(String::new())]);
    }

    fn rule_parse(&mut self, name: &str, sql: &str, replaces: bool) -> Ruling {
        let ruling = self.rule(sql);
        if matches!(ruling, Ruling::Pass(_)) {
            // Classified again only if it runs after a scope change.
            self.remember(name, sql, None, replaces && name.is_empty());
        }
        ruling
    }

    fn rule_bind(&mut self, name: &str) -> Option<Ruling> {
        let classified = match self.prepared.get(name) {
            // Decided in this scope when it was prepared.
            Some(p) if p.generation == self.scope_generation => return None,
            Some(_) => self.prepared_accesses(name),
            // Never seen (forgotten, or named by a refused Parse, which the
            // server never got): only a statement prepared before any scope
            // change may run unchecked.
            None if self.scope_generation == 0 => return None,
            None => None,
        };
        let accesses = match &classified {
            Some(c) => c.accesses.clone(),
            None => Classified::unclassified(&self.scope, 1).accesses,
        };
        let ruling = self.decide(&accesses, 0, self.state.now());
        if let (Ruling::Pass(_), Some(prepared)) = (&ruling, self.prepared.get_mut(name)) {
            prepared.generation = self.scope_generation;
            prepared.classified = classified;
        }
        Some(ruling)
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
