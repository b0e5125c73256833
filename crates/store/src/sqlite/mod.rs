//! The SQLite backend: one file, one connection behind a mutex (SQLite
//! serialises writers anyway; WAL lets readers of other processes go on),
//! `synchronous = FULL`. Schema changes are additive ([`ADDED_COLUMNS`]),
//! applied on open in one immediate transaction.
//!
//! One module per concern implements that concern's trait of
//! [`crate::backend`]; [`names`] keeps rows keyed by an entity's name in
//! the entity's own spelling.

mod audit;
mod classification;
mod console_sessions;
mod credentials;
mod databases;
mod findings;
mod firewall;
mod identities;
mod kms;
mod names;
mod nodes;
mod parameters;
mod passwords;
mod policies;
mod secrets;
mod session_keys;
mod shipping;
mod usage;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::backend::Backend;
pub(crate) use crate::shared::{
    AUDIT_KEY_CONTEXT, DATABASE_CA_CONTEXT, SEALED_COLUMNS, VAULT_CHECK,
};
use crate::{PrincipalKind, Result, Role, StoreError, User, Vault, random};

/// How long a statement waits for another process's lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Read-only connections beside the writer (see `SqliteBackend::readers`).
const READERS: usize = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY COLLATE NOCASE, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL, created INTEGER NOT NULL, tags TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS access_keys (id TEXT PRIMARY KEY, user TEXT NOT NULL, secret BLOB NOT NULL, active INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS roles (name TEXT PRIMARY KEY COLLATE NOCASE, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL, created INTEGER NOT NULL, trust_policy TEXT NOT NULL, max_session INTEGER NOT NULL, description TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS groups (name TEXT PRIMARY KEY COLLATE NOCASE, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS group_members (grp TEXT NOT NULL, user TEXT NOT NULL, PRIMARY KEY (grp, user));
CREATE TABLE IF NOT EXISTS inline_policies (kind TEXT NOT NULL, principal TEXT NOT NULL, name TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (kind, principal, name));
CREATE TABLE IF NOT EXISTS managed_policies (arn TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, id TEXT NOT NULL, path TEXT NOT NULL, document TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS attachments (kind TEXT NOT NULL, principal TEXT NOT NULL, arn TEXT NOT NULL, PRIMARY KEY (kind, principal, arn));
CREATE TABLE IF NOT EXISTS mfa_devices (serial TEXT PRIMARY KEY, user TEXT, seed BLOB NOT NULL, enabled_at INTEGER, last_step INTEGER);
CREATE TABLE IF NOT EXISTS revocations (arn TEXT PRIMARY KEY, not_before INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS vault_check (id INTEGER PRIMARY KEY CHECK (id = 1), value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS databases (name TEXT PRIMARY KEY, engine TEXT NOT NULL, endpoints TEXT NOT NULL, upstream TEXT NOT NULL, upstream_auth TEXT NOT NULL, resource_id TEXT NOT NULL UNIQUE, tags TEXT NOT NULL DEFAULT '[]', created INTEGER NOT NULL, upstream_tls TEXT NOT NULL DEFAULT 'prefer', upstream_ca TEXT);
CREATE TABLE IF NOT EXISTS database_ca (id INTEGER PRIMARY KEY CHECK (id = 1), cert TEXT NOT NULL, key BLOB NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS findings (id TEXT PRIMARY KEY, kind TEXT NOT NULL, severity TEXT NOT NULL, last_seen INTEGER NOT NULL, archived INTEGER NOT NULL DEFAULT 0, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_key (id INTEGER PRIMARY KEY CHECK (id = 1), public_key BLOB NOT NULL, key BLOB NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit_anchor (id INTEGER PRIMARY KEY CHECK (id = 1), trail_id TEXT NOT NULL, sequence INTEGER NOT NULL, document TEXT NOT NULL, updated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS database_passwords (database TEXT NOT NULL, user TEXT NOT NULL, secret BLOB NOT NULL, PRIMARY KEY (database, user));
CREATE TABLE IF NOT EXISTS object_tags (database TEXT NOT NULL, kind TEXT NOT NULL, schema_name TEXT NOT NULL, object TEXT NOT NULL, col TEXT NOT NULL DEFAULT '', key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (database, kind, schema_name, object, col, key));
CREATE TABLE IF NOT EXISTS cluster_keys (id INTEGER PRIMARY KEY, material BLOB NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS policy_versions (arn TEXT NOT NULL, version INTEGER NOT NULL, document TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (arn, version));
CREATE TABLE IF NOT EXISTS firewall_config (database TEXT PRIMARY KEY, mode TEXT NOT NULL, learning_secs INTEGER NOT NULL, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS firewall_profiles (database TEXT NOT NULL, principal TEXT NOT NULL, mode TEXT NOT NULL, learning_until INTEGER, stacks INTEGER NOT NULL, unions INTEGER NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (database, principal));
CREATE TABLE IF NOT EXISTS firewall_shapes (database TEXT NOT NULL, principal TEXT NOT NULL, fingerprint INTEGER NOT NULL, text TEXT NOT NULL, first_seen INTEGER NOT NULL, source TEXT NOT NULL, PRIMARY KEY (database, principal, fingerprint));
CREATE TABLE IF NOT EXISTS secrets (arn TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, revision INTEGER NOT NULL, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS secret_values (arn TEXT NOT NULL, version TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (arn, version));
CREATE TABLE IF NOT EXISTS kms_keys (id TEXT PRIMARY KEY, revision INTEGER NOT NULL, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kms_key_materials (key_id TEXT NOT NULL, version INTEGER NOT NULL, material BLOB NOT NULL, PRIMARY KEY (key_id, version));
CREATE TABLE IF NOT EXISTS kms_aliases (name TEXT PRIMARY KEY, key_id TEXT NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS kms_aliases_by_key ON kms_aliases (key_id);
CREATE TABLE IF NOT EXISTS parameters (name TEXT PRIMARY KEY, revision INTEGER NOT NULL, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parameter_values (name TEXT NOT NULL, version INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS last_accessed (principal TEXT NOT NULL COLLATE NOCASE, action TEXT NOT NULL COLLATE NOCASE, resource TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (principal, action, resource)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS credential_last_used (id TEXT PRIMARY KEY COLLATE NOCASE, at INTEGER NOT NULL, service TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS advisor_jobs (id TEXT PRIMARY KEY, arn TEXT NOT NULL, granularity TEXT NOT NULL, created INTEGER NOT NULL, report TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS credential_report (id INTEGER PRIMARY KEY CHECK (id = 1), generated INTEGER NOT NULL, csv TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS login_profiles (user TEXT PRIMARY KEY COLLATE NOCASE, hash BLOB NOT NULL, created INTEGER NOT NULL, changed INTEGER NOT NULL, reset_required INTEGER NOT NULL, last_used INTEGER);
CREATE TABLE IF NOT EXISTS password_history (id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL COLLATE NOCASE, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS password_policy (id INTEGER PRIMARY KEY CHECK (id = 1), minimum_length INTEGER NOT NULL, require_symbols INTEGER NOT NULL, require_numbers INTEGER NOT NULL, require_uppercase INTEGER NOT NULL, require_lowercase INTEGER NOT NULL, allow_users_to_change INTEGER NOT NULL, max_age_days INTEGER, reuse_prevention INTEGER, hard_expiry INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deleted_access_keys (id TEXT PRIMARY KEY, user TEXT NOT NULL, deleted INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_anchors (node TEXT PRIMARY KEY, trail_id TEXT NOT NULL, sequence INTEGER NOT NULL, document TEXT NOT NULL, updated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blocked_addresses (ip TEXT PRIMARY KEY, until INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS node_gauges (node TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (node, kind, key));
CREATE TABLE IF NOT EXISTS gauge_nodes (node TEXT PRIMARY KEY, alive INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (node TEXT PRIMARY KEY, started INTEGER NOT NULL, seen INTEGER NOT NULL, version TEXT NOT NULL, master_keys TEXT NOT NULL, sealing_key INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit_trails (node TEXT PRIMARY KEY, trail_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_records (node TEXT NOT NULL, sequence INTEGER NOT NULL, segment INTEGER NOT NULL, time_ms INTEGER NOT NULL, name TEXT NOT NULL, principal TEXT, access_key_id TEXT, database TEXT, source_ip TEXT, error INTEGER NOT NULL, line TEXT NOT NULL, PRIMARY KEY (node, sequence)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_records_time ON audit_records (time_ms);
CREATE INDEX IF NOT EXISTS audit_records_principal ON audit_records (principal, time_ms);
CREATE TABLE IF NOT EXISTS console_sessions (key BLOB PRIMARY KEY, kind TEXT NOT NULL, user TEXT NOT NULL, created INTEGER NOT NULL, last_seen INTEGER NOT NULL, failures INTEGER NOT NULL DEFAULT 0, state BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS console_sessions_last_seen ON console_sessions (last_seen);
CREATE TABLE IF NOT EXISTS live_sessions (node TEXT NOT NULL, session_id TEXT NOT NULL, database TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (node, session_id));
CREATE TABLE IF NOT EXISTS session_end_requests (node TEXT NOT NULL, session_id TEXT NOT NULL, requested INTEGER NOT NULL, PRIMARY KEY (node, session_id));
CREATE TABLE IF NOT EXISTS unblocked_addresses (ip TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit_digests (node TEXT NOT NULL, sequence INTEGER NOT NULL, document TEXT NOT NULL, PRIMARY KEY (node, sequence));
INSERT INTO policy_versions (arn, version, document, created) SELECT m.arn, 1, m.document, m.created FROM managed_policies m WHERE NOT EXISTS (SELECT 1 FROM policy_versions v WHERE v.arn = m.arn);
";

/// Columns added to tables after their first release: `(table, column,
/// definition)`. Stores made before get them on open.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("nodes", "sealed", "INTEGER NOT NULL DEFAULT 0"),
    ("nodes", "posture", "TEXT NOT NULL DEFAULT ''"),
    (
        "databases",
        "upstream_tls",
        "TEXT NOT NULL DEFAULT 'prefer'",
    ),
    ("databases", "upstream_ca", "TEXT"),
    (
        "databases",
        "statement_policy",
        "TEXT NOT NULL DEFAULT 'off'",
    ),
    // Managed policies' versions (`policy_versions`): the default one's
    // number (its document stays in `managed_policies.document`), the next
    // number to give, the last change, the description and tags.
    (
        "managed_policies",
        "default_version",
        "INTEGER NOT NULL DEFAULT 1",
    ),
    (
        "managed_policies",
        "next_version",
        "INTEGER NOT NULL DEFAULT 2",
    ),
    ("managed_policies", "updated", "INTEGER NOT NULL DEFAULT 0"),
    (
        "managed_policies",
        "description",
        "TEXT NOT NULL DEFAULT ''",
    ),
    ("managed_policies", "tags", "TEXT NOT NULL DEFAULT '[]'"),
    // Upstream logins: the user the gateway logs in as when it is not the
    // client's (NULL: the same), and the next login of a rotation in
    // progress (its password sealed with context `database/user/next`).
    ("database_passwords", "login_user", "TEXT"),
    ("database_passwords", "next_user", "TEXT"),
    ("database_passwords", "next_secret", "BLOB"),
    // The Secrets Manager secret that holds this login (`--rotate-every`):
    // the only one built-in rotation may rotate it with.
    ("database_passwords", "secret_arn", "TEXT"),
    // `--rotate-every`: days between rotations (NULL: none), and the
    // privileged login of alternating-users rotation (NULL: single user).
    ("databases", "rotate_every_days", "INTEGER"),
    ("databases", "rotation_master", "TEXT"),
    // How the database's server connections are shared (JSON; NULL: the
    // defaults, session pooling).
    ("databases", "pooling", "TEXT"),
];

/// The SQLite store. A mutex serialises SQLite access; callers keep hot
/// paths (signature checks on temporary credentials) off it entirely.
/// One KMS key's unsealed key material, by version.
type MaterialVersions = HashMap<u32, Zeroizing<Vec<u8>>>;

pub struct SqliteBackend {
    conn: Mutex<Connection>,
    /// Connections that only read, for the API's hot paths (a key, a
    /// secret, a parameter per call): WAL lets them read beside the writer
    /// and each other, so readers neither queue behind a write nor behind
    /// one another.
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
    /// Behind a lock so that a running server can take up a new master key
    /// during rotation without a restart.
    vault: RwLock<Vault>,
    account: String,
    /// KMS key material already unsealed, by key id and version (see
    /// `kms.rs`).
    materials: RwLock<HashMap<String, MaterialVersions>>,
}

pub(crate) fn unique_id(prefix: &str) -> Result<String> {
    Ok(format!(
        "{prefix}{}",
        latchkey_session::base32(&random::<10>()?)
    ))
}

pub(crate) fn tags_json(tags: &[(String, String)]) -> String {
    serde_json::Value::Array(
        tags.iter()
            .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
            .collect(),
    )
    .to_string()
}

pub(crate) fn parse_tags(text: &str) -> Vec<(String, String)> {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            Some((
                t["Key"].as_str()?.to_owned(),
                t["Value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Adds the columns of [`ADDED_COLUMNS`] a store lacks, in one immediate
/// transaction so that processes opening the store together do not race.
fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for (table, column, definition) in ADDED_COLUMNS {
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
            [table, column],
            |r| r.get(0),
        )?;
        if !exists {
            tx.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    // Rows keyed by a user's, role's or group's name take the entity's
    // spelling; rows of entities that no longer exist go.
    names::canonicalise(&tx)?;
    tx.commit()?;
    Ok(())
}

/// A text column holding one of a closed set of values; an unknown one
/// (written by hand) is a conversion error, not a guess.
fn parse_column<T>(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = r.get(i)?;
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// 40 characters of base64, the shape of an AWS secret access key.
pub(crate) fn base64_secret(bytes: &[u8; 30]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(40);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
        }
    }
    out
}

impl SqliteBackend {
    /// Opens (creating if needed) the store at `path`. A new store gets a
    /// random 12-digit account id.
    pub fn open(path: &Path, vault: Vault) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        // Other processes (nodes, CLI commands) may hold the write lock
        // for a moment: wait for it rather than fail.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // A write transaction takes the write lock at BEGIN, waiting its turn:
        // one begun as a reader cannot become a writer once another process
        // wrote since (SQLite answers "database is locked" at once).
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        migrate(&mut conn)?;
        let account: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'account'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let account = match account {
            Some(a) => a,
            None => {
                let digits = random::<8>()?;
                let n = u64::from_be_bytes(digits) % 900_000_000_000 + 100_000_000_000;
                let a = n.to_string();
                conn.execute("INSERT INTO meta (key, value) VALUES ('account', ?1)", [&a])?;
                a
            }
        };
        // A wrong master key must stop the server at start, not surface
        // later as unreadable secrets or, worse, a fresh set of keys.
        let check: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM vault_check", [], |r| r.get(0))
            .optional()?;
        match check {
            Some(blob) => {
                vault.open(&blob, VAULT_CHECK)?;
            }
            None => {
                let blob = vault.seal(VAULT_CHECK, VAULT_CHECK)?;
                conn.execute("INSERT INTO vault_check (id, value) VALUES (1, ?1)", [blob])?;
            }
        }
        // Room for every hot path's statements (prepare_cached).
        conn.set_prepared_statement_cache_capacity(64);
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open(path)?;
                reader.busy_timeout(BUSY_TIMEOUT)?;
                reader.pragma_update(None, "query_only", true)?;
                reader.set_prepared_statement_cache_capacity(64);
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>>>()?;
        // What this process seals must open on every node sharing the file.
        let designated: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'master_key_sealing'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let vault =
            crate::shared::sealing_as_agreed(vault, designated.and_then(|v| v.parse().ok()))?;
        Ok(Self {
            conn: Mutex::new(conn),
            readers,
            next_reader: std::sync::atomic::AtomicUsize::new(0),
            vault: RwLock::new(vault),
            account,
            materials: RwLock::new(HashMap::new()),
        })
    }

    fn vault(&self) -> std::sync::RwLockReadGuard<'_, Vault> {
        self.vault.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A read-only connection: the first free one, or else the next in
    /// turn. For single reads outside a transaction; anything that writes,
    /// or reads to decide a write, uses [`Self::db`].
    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        for reader in &self.readers {
            if let Ok(guard) = reader.try_lock() {
                return guard;
            }
        }
        let i = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % self.readers.len();
        self.readers[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every
        // change is one statement or one transaction), so keep going.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arn(&self, kind: &str, path: &str, name: &str) -> String {
        format!("arn:aws:iam::{}:{kind}{path}{name}", self.account)
    }

    fn row_to_user(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
        let name: String = r.get(0)?;
        let path: String = r.get(2)?;
        Ok(User {
            arn: self.arn("user", &path, &name),
            name,
            id: r.get(1)?,
            path,
            created: r.get(3)?,
            tags: parse_tags(&r.get::<_, String>(4)?),
        })
    }

    fn row_to_role(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<Role> {
        let name: String = r.get(0)?;
        let path: String = r.get(2)?;
        Ok(Role {
            arn: self.arn("role", &path, &name),
            name,
            id: r.get(1)?,
            path,
            created: r.get(3)?,
            trust_policy: r.get(4)?,
            max_session_duration: r.get(5)?,
            description: r.get(6)?,
            tags: parse_tags(&r.get::<_, String>(7)?),
        })
    }

    const ROLE_COLUMNS: &'static str =
        "name, id, path, created, trust_policy, max_session, description, tags";

    fn group_names(db: &Connection, user: &str) -> Result<Vec<String>> {
        let mut stmt = db.prepare(
            "SELECT g.name FROM group_members m JOIN groups g ON g.name = m.grp
             WHERE m.user = ?1 ORDER BY g.name",
        )?;
        let rows = stmt.query_map([user], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Reads a user's or role's tags, changes them and writes them back.
    pub(crate) fn change_tags(
        &self,
        kind: PrincipalKind,
        name: &str,
        change: impl FnOnce(&mut Vec<(String, String)>) -> Result<()>,
    ) -> Result<()> {
        if kind == PrincipalKind::Group {
            return Err(StoreError::InvalidInput("groups have no tags"));
        }
        // The writer throughout: concurrent tag changes all land.
        let db = self.db();
        let found: Option<(String, String)> = db
            .query_row(
                &format!(
                    "SELECT name, tags FROM {} WHERE name = ?1",
                    names::table(kind)
                ),
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (name, tags) = found.ok_or_else(|| StoreError::NoSuchEntity {
            kind: kind.as_str(),
            name: name.to_owned(),
        })?;
        let mut tags = parse_tags(&tags);
        change(&mut tags)?;
        db.execute(
            &format!(
                "UPDATE {} SET tags = ?1 WHERE name = ?2",
                names::table(kind)
            ),
            params![tags_json(&tags), name],
        )?;
        Ok(())
    }
}

impl Backend for SqliteBackend {
    fn account_id(&self) -> &str {
        &self.account
    }

    fn set_vault(&self, vault: Vault) -> Result<()> {
        let vault = crate::shared::sealing_as_agreed(
            vault,
            crate::backend::Nodes::sealing_master_key(self)?,
        )?;
        let check: Vec<u8> = self
            .db()
            .query_row("SELECT value FROM vault_check", [], |r| r.get(0))?;
        vault.open(&check, VAULT_CHECK)?;
        *self.vault.write().unwrap_or_else(|p| p.into_inner()) = vault;
        Ok(())
    }

    fn watch_changes(&self, _on_change: crate::backend::ChangeCallback) -> Result<bool> {
        // Nodes sharing one SQLite file see changes by reloading.
        Ok(false)
    }

    fn hold_lease(&self, name: &str, holder: &str, now: i64, ttl: i64) -> Result<bool> {
        let changed = self.db().execute(
            "INSERT INTO leases (name, holder, expires) VALUES (?1, ?2, ?4)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
             WHERE leases.holder = excluded.holder OR leases.expires <= ?3",
            params![name, holder, now, now.saturating_add(ttl)],
        )?;
        Ok(changed == 1)
    }

    fn ready(&self) -> Result<()> {
        // Takes the write lock and lets it go: a full disk or a read-only
        // file shows here.
        self.db().execute_batch("BEGIN IMMEDIATE; ROLLBACK")?;
        Ok(())
    }

    fn rewrap_all(&self) -> Result<usize> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let mut count = 0;
        // Every table holding sealed blobs, by rowid.
        for (table, col) in SEALED_COLUMNS {
            let rows: Vec<(i64, Vec<u8>)> = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT rowid, {col} FROM {table} WHERE {col} IS NOT NULL"
                ))?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for (rowid, blob) in rows {
                if Vault::wrapped_with(&blob) == Some(self.vault().current_id()) {
                    continue;
                }
                let rewrapped = self.vault().rewrap(&blob)?;
                tx.execute(
                    &format!("UPDATE {table} SET {col} = ?1 WHERE rowid = ?2"),
                    params![rewrapped, rowid],
                )?;
                count += 1;
            }
        }
        tx.commit()?;
        Ok(count)
    }
}
