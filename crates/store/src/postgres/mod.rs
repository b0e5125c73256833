//! The PostgreSQL backend, for several nodes sharing one store.
//!
//! The store's traits are synchronous and are called from async tasks as
//! well as from blocking threads, so no call may start a runtime of its
//! own. The connections' I/O runs on a small runtime this backend owns
//! ([`PgBackend::runtime`]); a call takes a pooled client (deadpool-postgres:
//! the pool the workspace already trusts for tokio-postgres, with recycling
//! that checks a connection before handing it out) and waits for its
//! queries with a plain executor, which needs no runtime on the calling
//! thread. Prepared statements are cached per connection.
//!
//! Every write runs in one `SERIALIZABLE` transaction ([`PgBackend::write`]),
//! retried when PostgreSQL reports a serialization failure: the SQLite
//! backend's single writer made each of its read-decide-write sequences
//! atomic, and this keeps that guarantee across nodes without reasoning
//! about each one. Reads take no transaction ([`PgBackend::read`]).
//!
//! The schema is versioned ([`SCHEMA_VERSION`] in `meta`): a node applies
//! what is missing under an advisory lock at start, and refuses a store
//! whose schema is newer than it knows. Names that IAM compares ignoring
//! case use the ICU collation `latchkey_nocase`, as SQLite's `NOCASE`.

mod audit;
mod classification;
mod console_sessions;
mod credentials;
mod databases;
mod findings;
mod firewall;
mod identities;
mod import;
mod kms;
mod location;
mod names;
mod nodes;
mod parameters;
mod passwords;
mod policies;
mod secrets;
mod session_keys;
mod shipping;
mod usage;

pub use import::TableCopy;
pub use location::{PgLocation, PgLocationError, SslMode};

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use futures_executor::block_on;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use zeroize::Zeroizing;

use crate::backend::Backend;
use crate::shared::{SEALED_COLUMNS, VAULT_CHECK};
use crate::{Result, StoreError, Vault, random};

/// The schema this build writes; a store at a higher version was written
/// by a newer Latchkey and is refused.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Each schema version and what takes a store from the one before to it,
/// in order. A store is brought up from its version one step at a time;
/// a step that is applied is never changed, only followed by another.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, SCHEMA_V1),
    (4, SCHEMA_V4),
    (5, SCHEMA_V5),
    (6, SCHEMA_V6),
    (7, SCHEMA_V7),
    (8, SCHEMA_V8),
    (9, SCHEMA_V9),
    (10, SCHEMA_V10),
    (11, SCHEMA_V11),
];

/// Version 11: console sessions, shared by the nodes (a browser signed in
/// through one node is signed in on all); each node's running sessions,
/// published for the others' consoles, and the requests to end one; when
/// each address was last unblocked.
const SCHEMA_V11: &str = "
CREATE TABLE IF NOT EXISTS console_sessions (key BYTEA PRIMARY KEY, kind TEXT NOT NULL, user_name TEXT NOT NULL, created BIGINT NOT NULL, last_seen BIGINT NOT NULL, failures BIGINT NOT NULL DEFAULT 0, state BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS console_sessions_last_seen ON console_sessions (last_seen);
CREATE TABLE IF NOT EXISTS live_sessions (node TEXT NOT NULL, session_id TEXT NOT NULL, database TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (node, session_id));
CREATE TABLE IF NOT EXISTS session_end_requests (node TEXT NOT NULL, session_id TEXT NOT NULL, requested BIGINT NOT NULL, PRIMARY KEY (node, session_id));
CREATE TABLE IF NOT EXISTS unblocked_addresses (ip TEXT PRIMARY KEY, at BIGINT NOT NULL);
";

/// Version 10: how each node is set up, in its report (the security
/// checks judge every node).
const SCHEMA_V10: &str = "
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS posture TEXT NOT NULL DEFAULT '';
";

/// Version 9: how each database's server connections are shared (JSON;
/// NULL: the defaults, session pooling).
const SCHEMA_V9: &str = "
ALTER TABLE databases ADD COLUMN IF NOT EXISTS pooling TEXT;
";

/// Version 8: how far each node's trail reached, in its report.
const SCHEMA_V8: &str = "
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS sealed BIGINT NOT NULL DEFAULT 0;
";

/// Version 7: the nodes' audit trails, shipped (`AuditShipping`).
const SCHEMA_V7: &str = "
CREATE TABLE IF NOT EXISTS audit_trails (node TEXT PRIMARY KEY, trail_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_records (node TEXT NOT NULL, sequence BIGINT NOT NULL, segment BIGINT NOT NULL, time_ms BIGINT NOT NULL, name TEXT NOT NULL, principal TEXT, access_key_id TEXT, database TEXT, source_ip TEXT, error BOOLEAN NOT NULL, line TEXT NOT NULL, PRIMARY KEY (node, sequence));
CREATE INDEX IF NOT EXISTS audit_records_time ON audit_records (time_ms);
CREATE INDEX IF NOT EXISTS audit_records_principal ON audit_records (principal, time_ms);
CREATE TABLE IF NOT EXISTS audit_digests (node TEXT NOT NULL, sequence BIGINT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (node, sequence));
";

/// Version 6: each node's live-session gauges, so that session limits
/// hold for the cluster.
const SCHEMA_V6: &str = "
CREATE TABLE IF NOT EXISTS node_gauges (node TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, value BIGINT NOT NULL, PRIMARY KEY (node, kind, key));
CREATE TABLE IF NOT EXISTS gauge_nodes (node TEXT PRIMARY KEY, alive BIGINT NOT NULL);
";

/// Version 5: addresses a detection response blocked, for every node.
const SCHEMA_V5: &str = "
CREATE TABLE IF NOT EXISTS blocked_addresses (ip TEXT PRIMARY KEY, until BIGINT NOT NULL);
";

/// Version 4: the nodes' reports (a coordinated master-key rotation).
const SCHEMA_V4: &str = "
CREATE TABLE IF NOT EXISTS nodes (node TEXT PRIMARY KEY, started BIGINT NOT NULL, seen BIGINT NOT NULL, version TEXT NOT NULL, master_keys TEXT NOT NULL, sealing_key BIGINT NOT NULL);
";

/// Serialization failures retried before giving up: enough for bursts of
/// nodes writing the same rows, few enough to report a livelock.
const WRITE_ATTEMPTS: usize = 20;

/// Taken while a node creates or upgrades the schema, so that nodes
/// starting together do not race.
const SCHEMA_LOCK: i64 = 0x4c61_7463_686b_0001;

/// Version 1: everything the SQLite store holds, with PostgreSQL's types
/// (`BIGINT` for integers, `BYTEA` for sealed blobs, `BOOLEAN` for flags),
/// `user_name` where SQLite says `user` (a reserved word here), and `seq`
/// where SQLite's order of insertion (`rowid`) is part of the contract.
const SCHEMA_V1: &str = "
CREATE COLLATION IF NOT EXISTS latchkey_nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (name TEXT COLLATE latchkey_nocase PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL, created BIGINT NOT NULL, tags TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS access_keys (id TEXT PRIMARY KEY, user_name TEXT NOT NULL, secret BYTEA NOT NULL, active BOOLEAN NOT NULL, created BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS access_keys_by_user ON access_keys (user_name);
CREATE TABLE IF NOT EXISTS roles (name TEXT COLLATE latchkey_nocase PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL, created BIGINT NOT NULL, trust_policy TEXT NOT NULL, max_session BIGINT NOT NULL, description TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS groups (name TEXT COLLATE latchkey_nocase PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL, created BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS group_members (grp TEXT NOT NULL, user_name TEXT NOT NULL, PRIMARY KEY (grp, user_name));
CREATE TABLE IF NOT EXISTS inline_policies (kind TEXT NOT NULL, principal TEXT NOT NULL, name TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (kind, principal, name));
CREATE TABLE IF NOT EXISTS managed_policies (arn TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, id TEXT NOT NULL, path TEXT NOT NULL, document TEXT NOT NULL, created BIGINT NOT NULL, default_version BIGINT NOT NULL DEFAULT 1, next_version BIGINT NOT NULL DEFAULT 2, updated BIGINT NOT NULL DEFAULT 0, description TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS attachments (kind TEXT NOT NULL, principal TEXT NOT NULL, arn TEXT NOT NULL, PRIMARY KEY (kind, principal, arn));
CREATE TABLE IF NOT EXISTS mfa_devices (serial TEXT PRIMARY KEY, user_name TEXT, seed BYTEA NOT NULL, enabled_at BIGINT, last_step BIGINT);
CREATE TABLE IF NOT EXISTS revocations (arn TEXT PRIMARY KEY, not_before BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS vault_check (id BIGINT PRIMARY KEY CHECK (id = 1), value BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS databases (name TEXT PRIMARY KEY, engine TEXT NOT NULL, endpoints TEXT NOT NULL, upstream TEXT NOT NULL, upstream_auth TEXT NOT NULL, resource_id TEXT NOT NULL UNIQUE, tags TEXT NOT NULL DEFAULT '[]', created BIGINT NOT NULL, upstream_tls TEXT NOT NULL DEFAULT 'prefer', upstream_ca TEXT, statement_policy TEXT NOT NULL DEFAULT 'off', rotate_every_days BIGINT, rotation_master TEXT);
CREATE TABLE IF NOT EXISTS database_ca (id BIGINT PRIMARY KEY CHECK (id = 1), cert TEXT NOT NULL, key BYTEA NOT NULL, created BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS findings (id TEXT PRIMARY KEY, kind TEXT NOT NULL, severity TEXT NOT NULL, last_seen BIGINT NOT NULL, archived BOOLEAN NOT NULL DEFAULT FALSE, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_key (id BIGINT PRIMARY KEY CHECK (id = 1), public_key BYTEA NOT NULL, key BYTEA NOT NULL, created BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_anchor (id BIGINT PRIMARY KEY CHECK (id = 1), trail_id TEXT NOT NULL, sequence BIGINT NOT NULL, document TEXT NOT NULL, updated BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS database_passwords (database TEXT NOT NULL, user_name TEXT NOT NULL, secret BYTEA NOT NULL, login_user TEXT, next_user TEXT, next_secret BYTEA, secret_arn TEXT, PRIMARY KEY (database, user_name));
CREATE TABLE IF NOT EXISTS object_tags (database TEXT NOT NULL, kind TEXT NOT NULL, schema_name TEXT NOT NULL, object TEXT NOT NULL, col TEXT NOT NULL DEFAULT '', key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (database, kind, schema_name, object, col, key));
CREATE TABLE IF NOT EXISTS cluster_keys (id BIGINT PRIMARY KEY, material BYTEA NOT NULL, created BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS policy_versions (arn TEXT NOT NULL, version BIGINT NOT NULL, document TEXT NOT NULL, created BIGINT NOT NULL, PRIMARY KEY (arn, version));
CREATE TABLE IF NOT EXISTS firewall_config (database TEXT PRIMARY KEY, mode TEXT NOT NULL, learning_secs BIGINT NOT NULL, revision BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS firewall_profiles (database TEXT NOT NULL, principal TEXT NOT NULL, mode TEXT NOT NULL, learning_until BIGINT, stacks BIGINT NOT NULL, unions BIGINT NOT NULL, created BIGINT NOT NULL, PRIMARY KEY (database, principal));
CREATE TABLE IF NOT EXISTS firewall_shapes (database TEXT NOT NULL, principal TEXT NOT NULL, fingerprint BIGINT NOT NULL, text TEXT NOT NULL, first_seen BIGINT NOT NULL, source TEXT NOT NULL, PRIMARY KEY (database, principal, fingerprint));
CREATE TABLE IF NOT EXISTS secrets (arn TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, revision BIGINT NOT NULL, document TEXT NOT NULL, seq BIGSERIAL NOT NULL);
CREATE TABLE IF NOT EXISTS secret_values (arn TEXT NOT NULL, version TEXT NOT NULL, value BYTEA NOT NULL, PRIMARY KEY (arn, version));
CREATE TABLE IF NOT EXISTS kms_keys (id TEXT PRIMARY KEY, revision BIGINT NOT NULL, document TEXT NOT NULL, seq BIGSERIAL NOT NULL);
CREATE TABLE IF NOT EXISTS kms_key_materials (key_id TEXT NOT NULL, version BIGINT NOT NULL, material BYTEA NOT NULL, PRIMARY KEY (key_id, version));
CREATE TABLE IF NOT EXISTS kms_aliases (name TEXT PRIMARY KEY, key_id TEXT NOT NULL, created BIGINT NOT NULL, updated BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS kms_aliases_by_key ON kms_aliases (key_id);
CREATE TABLE IF NOT EXISTS parameters (name TEXT PRIMARY KEY, revision BIGINT NOT NULL, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parameter_values (name TEXT NOT NULL, version BIGINT NOT NULL, value BYTEA NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS last_accessed (principal TEXT COLLATE latchkey_nocase NOT NULL, action TEXT COLLATE latchkey_nocase NOT NULL, resource TEXT NOT NULL, at BIGINT NOT NULL, PRIMARY KEY (principal, action, resource));
CREATE TABLE IF NOT EXISTS credential_last_used (id TEXT COLLATE latchkey_nocase PRIMARY KEY, at BIGINT NOT NULL, service TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS advisor_jobs (id TEXT PRIMARY KEY, arn TEXT NOT NULL, granularity TEXT NOT NULL, created BIGINT NOT NULL, report TEXT NOT NULL, seq BIGSERIAL NOT NULL);
CREATE TABLE IF NOT EXISTS credential_report (id BIGINT PRIMARY KEY CHECK (id = 1), generated BIGINT NOT NULL, csv TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS login_profiles (user_name TEXT COLLATE latchkey_nocase PRIMARY KEY, hash BYTEA NOT NULL, created BIGINT NOT NULL, changed BIGINT NOT NULL, reset_required BOOLEAN NOT NULL, last_used BIGINT);
CREATE TABLE IF NOT EXISTS password_history (id BIGSERIAL PRIMARY KEY, user_name TEXT COLLATE latchkey_nocase NOT NULL, hash BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS password_policy (id BIGINT PRIMARY KEY CHECK (id = 1), minimum_length BIGINT NOT NULL, require_symbols BOOLEAN NOT NULL, require_numbers BOOLEAN NOT NULL, require_uppercase BOOLEAN NOT NULL, require_lowercase BOOLEAN NOT NULL, allow_users_to_change BOOLEAN NOT NULL, max_age_days BIGINT, reuse_prevention BIGINT, hard_expiry BOOLEAN NOT NULL);
CREATE TABLE IF NOT EXISTS deleted_access_keys (id TEXT PRIMARY KEY, user_name TEXT NOT NULL, deleted BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_anchors (node TEXT PRIMARY KEY, trail_id TEXT NOT NULL, sequence BIGINT NOT NULL, document TEXT NOT NULL, updated BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires BIGINT NOT NULL);
CREATE OR REPLACE FUNCTION latchkey_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_changes', TG_TABLE_NAME);
    RETURN NULL;
END $$;
";

/// Tables whose changes other nodes must act on at once: each changed row
/// notifies `latchkey_changes` with its table's name, delivered once per
/// transaction and table when it commits (PostgreSQL folds identical
/// notifications), and only when a row really changed: a statement that
/// touches none (a refresh's empty clean-up) must not wake every node,
/// whose refresh would wake them again (see [`crate::StoreChange::of_table`]).
const WATCHED_TABLES: &[&str] = &[
    "users",
    "roles",
    "groups",
    "group_members",
    "inline_policies",
    "attachments",
    "managed_policies",
    "policy_versions",
    "access_keys",
    "deleted_access_keys",
    "mfa_devices",
    "revocations",
    "blocked_addresses",
    "databases",
    "database_passwords",
    "object_tags",
    "firewall_config",
    "cluster_keys",
];

/// The channel of the change feed.
const CHANGES_CHANNEL: &str = "latchkey_changes";

/// One KMS key's unsealed key material, by version.
type MaterialVersions = HashMap<u32, Zeroizing<Vec<u8>>>;

/// Statements run on a pooled client or inside a transaction, waiting for
/// each on the calling thread. Every statement is prepared once per
/// connection and cached.
pub(crate) trait Sql {
    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>>;

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64>;

    /// Statements without parameters, separated by `;`, uncached.
    fn batch(&self, sql: &str) -> Result<()>;

    fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let mut rows = self.query(sql, params)?;
        if rows.len() > 1 {
            return Err(StoreError::Postgres(format!(
                "expected at most one row, got {}",
                rows.len()
            )));
        }
        Ok(rows.pop())
    }

    fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StoreError::Postgres("expected one row, got none".into()))
    }
}

/// The same three statements on a pooled client and on a transaction,
/// each through the underlying tokio-postgres type (`$inner`).
macro_rules! impl_sql {
    ($outer:ty, $inner:ty) => {
        impl Sql for $outer {
            fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
                let inner: &$inner = self;
                block_on(async {
                    let statement = self.prepare_cached(sql).await?;
                    inner.query(&statement, params).await
                })
                .map_err(StoreError::from)
            }

            fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
                let inner: &$inner = self;
                block_on(async {
                    let statement = self.prepare_cached(sql).await?;
                    inner.execute(&statement, params).await
                })
                .map_err(StoreError::from)
            }

            fn batch(&self, sql: &str) -> Result<()> {
                block_on(self.batch_execute(sql)).map_err(StoreError::from)
            }
        }
    };
}

impl_sql!(deadpool_postgres::Object, tokio_postgres::Client);
impl_sql!(
    deadpool_postgres::Transaction<'_>,
    tokio_postgres::Transaction<'_>
);

/// A transaction of [`PgBackend::write`].
pub(crate) type Tx<'a> = deadpool_postgres::Transaction<'a>;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE)
            | Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) => StoreError::Conflict,
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => StoreError::UniqueViolation,
            // The server's own words (constraint and column names; never a
            // value: sealed blobs are the only secrets and are not echoed).
            // The server going away (shut down, restarting, a standby
            // taking over): the store is unavailable, not broken.
            Some(code)
                if matches!(code.code(), "57P01" | "57P02" | "57P03")
                    || code.code().starts_with("08") =>
            {
                StoreError::Unavailable(e.to_string())
            }
            _ => match e.as_db_error() {
                Some(db) => StoreError::Postgres(format!("{}: {}", db.code().code(), db.message())),
                // No answer from the server at all: the connection.
                None if e.is_closed()
                    || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) =>
                {
                    StoreError::Unavailable(e.to_string())
                }
                None => StoreError::Postgres(e.to_string()),
            },
        }
    }
}

/// The PostgreSQL store.
pub struct PgBackend {
    pool: deadpool_postgres::Pool,
    /// For connections outside the pool (the change feed's).
    location: PgLocation,
    /// Drives the pooled connections; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    /// Behind a lock so that a running server can take up a new master key
    /// during rotation without a restart.
    vault: RwLock<Vault>,
    account: String,
    /// KMS key material already unsealed, by key id and version.
    materials: RwLock<HashMap<String, MaterialVersions>>,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async caller may not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl PgBackend {
    /// Connects to the store at `location`, creating or upgrading its
    /// schema. A new store gets a random 12-digit account id; a wrong
    /// master key, or a schema newer than this build's, is refused.
    pub fn open(location: &PgLocation, vault: Vault) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("latchkey-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Postgres(format!("starting the store's runtime: {e}")))?;
        let pool = location.pool(runtime.handle())?;
        let mut backend = Self {
            pool,
            location: location.clone(),
            runtime: Some(runtime),
            vault: RwLock::new(vault),
            account: String::new(),
            materials: RwLock::new(HashMap::new()),
        };
        backend.account = backend.prepare_schema()?;
        // What this node seals must open on every other.
        if let Some(id) = crate::backend::Nodes::sealing_master_key(&backend)? {
            let mut vault = backend.vault.write().unwrap_or_else(|p| p.into_inner());
            vault
                .seal_with(id)
                .map_err(|_| StoreError::SealingKeyMissing(id))?;
        }
        Ok(backend)
    }

    /// Applies the schema under an advisory lock, then reads (or makes)
    /// the account id and checks the master key.
    fn prepare_schema(&self) -> Result<String> {
        let client = self.client()?;
        client.batch(&format!("SELECT pg_advisory_lock({SCHEMA_LOCK})"))?;
        let prepared = self.prepare_schema_locked(&client);
        let unlocked = client.batch(&format!("SELECT pg_advisory_unlock({SCHEMA_LOCK})"));
        let account = prepared?;
        unlocked?;
        Ok(account)
    }

    fn prepare_schema_locked(&self, client: &deadpool_postgres::Object) -> Result<String> {
        let meta_exists: bool = client
            .query_one("SELECT to_regclass('meta') IS NOT NULL", &[])?
            .try_get(0)?;
        let version: i64 = if meta_exists {
            client
                .query_opt("SELECT value FROM meta WHERE key = 'schema'", &[])?
                .map(|r| r.try_get::<_, String>(0))
                .transpose()?
                .map(|v| {
                    v.parse()
                        .map_err(|_| StoreError::Postgres(format!("unreadable schema version {v}")))
                })
                .transpose()?
                .unwrap_or(0)
        } else {
            0
        };
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        for (step, sql) in MIGRATIONS.iter().filter(|(step, _)| *step > version) {
            // One transaction per step, its version included: a node that
            // dies halfway leaves the store at the step before.
            client.batch(&format!(
                "BEGIN;
                 {sql};
                 INSERT INTO meta (key, value) VALUES ('schema', '{step}')
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
                 COMMIT;"
            ))?;
        }
        // Every watched table (a step may have added some) has the change
        // feed's trigger; only missing ones are created, so that a node
        // starting beside running ones takes no table lock.
        for table in WATCHED_TABLES {
            let present: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_trigger
                     WHERE tgname = 'latchkey_changed' AND tgrelid = to_regclass($1))",
                    &[table],
                )?
                .try_get(0)?;
            if !present {
                client.batch(&format!(
                    "CREATE TRIGGER latchkey_changed AFTER INSERT OR UPDATE OR DELETE ON {table}
                     FOR EACH ROW EXECUTE FUNCTION latchkey_changed()"
                ))?;
            }
        }
        let account: Option<String> = client
            .query_opt("SELECT value FROM meta WHERE key = 'account'", &[])?
            .map(|r| r.try_get(0))
            .transpose()?;
        let account = match account {
            Some(a) => a,
            None => {
                let digits = random::<8>()?;
                let n = u64::from_be_bytes(digits) % 900_000_000_000 + 100_000_000_000;
                let a = n.to_string();
                client.execute(
                    "INSERT INTO meta (key, value) VALUES ('account', $1)",
                    &[&a],
                )?;
                a
            }
        };
        // A wrong master key must stop the node at start, not surface
        // later as unreadable secrets or, worse, a fresh set of keys.
        let check: Option<Vec<u8>> = client
            .query_opt("SELECT value FROM vault_check", &[])?
            .map(|r| r.try_get(0))
            .transpose()?;
        match check {
            Some(blob) => {
                self.vault().open(&blob, VAULT_CHECK)?;
            }
            None => {
                let blob = self.vault().seal(VAULT_CHECK, VAULT_CHECK)?;
                client.execute(
                    "INSERT INTO vault_check (id, value) VALUES (1, $1)",
                    &[&blob],
                )?;
            }
        }
        Ok(account)
    }

    pub(crate) fn vault(&self) -> std::sync::RwLockReadGuard<'_, Vault> {
        self.vault.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn account(&self) -> &str {
        &self.account
    }

    /// KMS key material already unsealed.
    pub(crate) fn materials(&self) -> &RwLock<HashMap<String, MaterialVersions>> {
        &self.materials
    }

    /// A pooled client, connected (or reconnected) on the store's runtime.
    fn client(&self) -> Result<deadpool_postgres::Object> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| StoreError::Postgres("the store is closing".into()))?;
        let pool = self.pool.clone();
        let got = block_on(runtime.spawn(async move { pool.get().await }))
            .map_err(|e| StoreError::Postgres(format!("store connection task: {e}")))?;
        got.map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Reads outside a transaction.
    pub(crate) fn read<T>(
        &self,
        work: impl FnOnce(&deadpool_postgres::Object) -> Result<T>,
    ) -> Result<T> {
        let client = self.client()?;
        work(&client)
    }

    /// Runs `work` in one `SERIALIZABLE` transaction and commits it,
    /// running it again (from the start) when PostgreSQL reports that a
    /// concurrent transaction got in the way. `work` must have no effect
    /// outside the transaction.
    pub(crate) fn write<T>(&self, mut work: impl FnMut(&Tx<'_>) -> Result<T>) -> Result<T> {
        let mut client = self.client()?;
        let mut pause = Duration::from_millis(1);
        for _ in 0..WRITE_ATTEMPTS {
            let tx = block_on(
                client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::Serializable)
                    .start(),
            )?;
            let outcome = work(&tx).and_then(|value| {
                block_on(tx.commit())?;
                Ok(value)
            });
            match outcome {
                Err(StoreError::Conflict) => {
                    std::thread::sleep(
                        pause + Duration::from_micros(u64::from(random::<1>()?[0]) * 20),
                    );
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }
}

/// The store crate has no logger: a lost change feed is reported on
/// stderr once per reconnection attempt.
fn tracing_free_warning(e: &StoreError) {
    eprintln!("latchkey: store change feed: {e}; listening again");
}

impl Backend for PgBackend {
    fn account_id(&self) -> &str {
        &self.account
    }

    fn set_vault(&self, vault: Vault) -> Result<()> {
        let vault = crate::shared::sealing_as_agreed(
            vault,
            crate::backend::Nodes::sealing_master_key(self)?,
        )?;
        let check: Vec<u8> = self.read(|c| {
            Ok(c.query_one("SELECT value FROM vault_check", &[])?
                .try_get(0)?)
        })?;
        vault.open(&check, VAULT_CHECK)?;
        *self.vault.write().unwrap_or_else(|p| p.into_inner()) = vault;
        Ok(())
    }

    fn watch_changes(&self, on_change: crate::backend::ChangeCallback) -> Result<bool> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| StoreError::Postgres("the store is closing".into()))?;
        let location = self.location.clone();
        runtime.spawn(async move {
            let mut pause = Duration::from_millis(100);
            loop {
                match location.listen(CHANGES_CHANNEL, &*on_change).await {
                    // It was listening: try again at once, from the start.
                    Ok(()) => pause = Duration::from_millis(100),
                    Err(e) => {
                        tracing_free_warning(&e);
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
                // Whatever happens while not listening goes unreported.
                on_change(crate::StoreChange::Lost);
                tokio::time::sleep(pause).await;
            }
        });
        Ok(true)
    }

    fn hold_lease(&self, name: &str, holder: &str, now: i64, ttl: i64) -> Result<bool> {
        let expires = now.saturating_add(ttl);
        let changed = self.write(|tx| {
            tx.execute(
                "INSERT INTO leases (name, holder, expires) VALUES ($1, $2, $4)
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires = EXCLUDED.expires
                 WHERE leases.holder = EXCLUDED.holder OR leases.expires <= $3",
                &[&name, &holder, &now, &expires],
            )
        })?;
        Ok(changed == 1)
    }

    fn ready(&self) -> Result<()> {
        // A newer Latchkey upgraded the schema under this node.
        let version: Option<String> = self.read(|c| {
            Ok(
                c.query_opt("SELECT value FROM meta WHERE key = 'schema'", &[])?
                    .map(|r| r.try_get(0))
                    .transpose()?,
            )
        })?;
        if let Some(found) = version.and_then(|v| v.parse::<i64>().ok())
            && found > SCHEMA_VERSION
        {
            return Err(StoreError::NewerSchema {
                found,
                known: SCHEMA_VERSION,
            });
        }
        // A standby (or a server set read-only) answers but takes no write.
        let read_only: String = self.read(|c| {
            Ok(
                c.query_one("SELECT current_setting('transaction_read_only')", &[])?
                    .try_get(0)?,
            )
        })?;
        if read_only == "on" {
            return Err(StoreError::Unavailable(
                "the store server is read-only".into(),
            ));
        }
        Ok(())
    }

    fn rewrap_all(&self) -> Result<usize> {
        self.write(|tx| {
            let mut count = 0;
            for (table, col) in SEALED_COLUMNS {
                let rows = tx.query(
                    &format!("SELECT ctid::text, {col} FROM {table} WHERE {col} IS NOT NULL"),
                    &[],
                )?;
                for row in rows {
                    let (place, blob): (String, Vec<u8>) = (row.try_get(0)?, row.try_get(1)?);
                    if Vault::wrapped_with(&blob) == Some(self.vault().current_id()) {
                        continue;
                    }
                    let rewrapped = self.vault().rewrap(&blob)?;
                    tx.execute(
                        &format!("UPDATE {table} SET {col} = $1 WHERE ctid = ($2::text)::tid"),
                        &[&rewrapped, &place],
                    )?;
                    count += 1;
                }
            }
            Ok(count)
        })
    }
}
