//! Latchkey's embedded store: one SQLite file holding the account's
//! identities and policies. Every secret (access-key secrets, MFA seeds,
//! cluster keys) is sealed by the [`Vault`] before it reaches the disk.

mod anchor;
mod domain;
mod iam_extra;
mod names;
pub mod vault;

pub use domain::{
    Database, DatabaseError, Engine, PrincipalKind, TlsMode, UnknownEngine, UnknownPrincipalKind,
    UnknownTlsMode, UnknownUpstreamAuth, UpstreamAuth,
};
pub use iam_extra::{MAX_POLICY_VERSIONS, ManagedPolicy, PolicyEntity, PolicyVersion};
pub use names::replace_principal;

use std::path::Path;
use std::sync::{Mutex, RwLock};

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

pub use vault::{Vault, VaultError, random};

/// What went wrong, in IAM's vocabulary where one exists.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the {kind} with name {name} cannot be found")]
    NoSuchEntity { kind: &'static str, name: String },
    #[error("{kind} with name {name} already exists")]
    EntityAlreadyExists { kind: &'static str, name: String },
    #[error("cannot delete entity, must {0} first")]
    DeleteConflict(&'static str),
    #[error("{0}")]
    LimitExceeded(&'static str),
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("sealed data: {0}")]
    Vault(#[from] VaultError),
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl From<DatabaseError> for StoreError {
    fn from(e: DatabaseError) -> Self {
        StoreError::InvalidInput(e.message())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    pub created: i64,
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    pub created: i64,
    pub trust_policy: String,
    pub max_session_duration: i64,
    pub description: String,
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub user: String,
    pub active: bool,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MfaDevice {
    pub serial: String,
    pub user: Option<String>,
    pub enabled_at: Option<i64>,
}

const VAULT_CHECK: &[u8] = b"latchkey vault check";

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
CREATE TABLE IF NOT EXISTS cluster_keys (id INTEGER PRIMARY KEY, material BLOB NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS policy_versions (arn TEXT NOT NULL, version INTEGER NOT NULL, document TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (arn, version));
INSERT INTO policy_versions (arn, version, document, created) SELECT m.arn, 1, m.document, m.created FROM managed_policies m WHERE NOT EXISTS (SELECT 1 FROM policy_versions v WHERE v.arn = m.arn);
";

/// Columns added to tables after their first release: `(table, column,
/// definition)`. Stores made before get them on open.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    (
        "databases",
        "upstream_tls",
        "TEXT NOT NULL DEFAULT 'prefer'",
    ),
    ("databases", "upstream_ca", "TEXT"),
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
];

const DATABASE_CA_CONTEXT: &[u8] = b"latchkey database CA";
const AUDIT_KEY_CONTEXT: &[u8] = b"latchkey audit signing key";

/// The store. A mutex serialises SQLite access; callers keep hot paths
/// (signature checks on temporary credentials) off it entirely.
pub struct Store {
    conn: Mutex<Connection>,
    /// Behind a lock so that a running server can take up a new master key
    /// during rotation without a restart.
    vault: RwLock<Vault>,
    account: String,
}

fn unique_id(prefix: &str) -> Result<String> {
    Ok(format!(
        "{prefix}{}",
        latchkey_session::base32(&random::<10>()?)
    ))
}

fn tags_json(tags: &[(String, String)]) -> String {
    serde_json::Value::Array(
        tags.iter()
            .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
            .collect(),
    )
    .to_string()
}

fn parse_tags(text: &str) -> Vec<(String, String)> {
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

/// IAM names: 1-64 characters of `[\w+=,.@-]`.
pub fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

fn valid_path(path: &str) -> bool {
    path.starts_with('/') && path.ends_with('/') && path.len() <= 512 && !path.contains("//")
}

impl Store {
    /// Opens (creating if needed) the store at `path`. A new store gets a
    /// random 12-digit account id.
    pub fn open(path: &Path, vault: Vault) -> Result<Self> {
        let mut conn = Connection::open(path)?;
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
        Ok(Self {
            conn: Mutex::new(conn),
            vault: RwLock::new(vault),
            account,
        })
    }

    pub fn account_id(&self) -> &str {
        &self.account
    }

    fn vault(&self) -> std::sync::RwLockReadGuard<'_, Vault> {
        self.vault.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the master keys (during master-key rotation). The new vault
    /// must open what is stored: it is checked first.
    pub fn set_vault(&self, vault: Vault) -> Result<()> {
        let check: Vec<u8> = self
            .db()
            .query_row("SELECT value FROM vault_check", [], |r| r.get(0))?;
        vault.open(&check, VAULT_CHECK)?;
        *self.vault.write().unwrap_or_else(|p| p.into_inner()) = vault;
        Ok(())
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every
        // change is one statement or one transaction), so keep going.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arn(&self, kind: &str, path: &str, name: &str) -> String {
        format!("arn:aws:iam::{}:{kind}{path}{name}", self.account)
    }

    // ---- users ----

    pub fn create_user(
        &self,
        name: &str,
        path: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<User> {
        if !valid_name(name, 64) {
            return Err(StoreError::InvalidInput(
                "user names are 1-64 characters of [A-Za-z0-9_+=,.@-]",
            ));
        }
        if !valid_path(path) {
            return Err(StoreError::InvalidInput("a path must begin and end with /"));
        }
        let id = unique_id("AIDA")?;
        let n = self.db().execute(
            "INSERT OR IGNORE INTO users (name, id, path, created, tags) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, id, path, now, tags_json(tags)],
        )?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "user",
                name: name.to_owned(),
            });
        }
        self.get_user(name)
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

    pub fn get_user(&self, name: &str) -> Result<User> {
        self.db()
            .query_row(
                "SELECT name, id, path, created, tags FROM users WHERE name = ?1",
                [name],
                |r| self.row_to_user(r),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "user",
                name: name.to_owned(),
            })
    }

    pub fn list_users(&self) -> Result<Vec<User>> {
        let db = self.db();
        let mut stmt =
            db.prepare("SELECT name, id, path, created, tags FROM users ORDER BY name")?;
        let rows = stmt.query_map([], |r| self.row_to_user(r))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes a user that has no keys, policies or MFA devices (rows of
    /// any spelling of its name count); trust policies naming it then name
    /// its unique id, so a new user of the same name is not trusted.
    pub fn delete_user(&self, name: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let user = tx
            .query_row(
                "SELECT name, id, path, created, tags FROM users WHERE name = ?1",
                [name],
                |r| self.row_to_user(r),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "user",
                name: name.to_owned(),
            })?;
        let count =
            |sql: &str| -> rusqlite::Result<i64> { tx.query_row(sql, [&user.name], |r| r.get(0)) };
        if count("SELECT COUNT(*) FROM access_keys WHERE user = ?1 COLLATE NOCASE")? > 0 {
            return Err(StoreError::DeleteConflict("delete access keys"));
        }
        names::ensure_no_policies(&tx, PrincipalKind::User, &user.name)?;
        if count("SELECT COUNT(*) FROM mfa_devices WHERE user = ?1 COLLATE NOCASE")? > 0 {
            return Err(StoreError::DeleteConflict("remove MFA devices"));
        }
        tx.execute(
            "DELETE FROM group_members WHERE user = ?1 COLLATE NOCASE",
            [&user.name],
        )?;
        tx.execute("DELETE FROM users WHERE name = ?1", [&user.name])?;
        names::unbind_principal(&tx, &user.arn, &user.id)?;
        tx.commit()?;
        Ok(())
    }

    pub fn tag_user(&self, name: &str, tags: &[(String, String)]) -> Result<()> {
        self.change_tags(PrincipalKind::User, name, |t| merge_tags(t, tags))
    }

    /// Reads a user's or role's tags, changes them and writes them back.
    pub(crate) fn change_tags(
        &self,
        kind: PrincipalKind,
        name: &str,
        change: impl FnOnce(&mut Vec<(String, String)>) -> Result<()>,
    ) -> Result<()> {
        let (mut tags, name) = match kind {
            PrincipalKind::User => {
                let u = self.get_user(name)?;
                (u.tags, u.name)
            }
            PrincipalKind::Role => {
                let r = self.get_role(name)?;
                (r.tags, r.name)
            }
            PrincipalKind::Group => {
                return Err(StoreError::InvalidInput("groups have no tags"));
            }
        };
        change(&mut tags)?;
        self.db().execute(
            &format!(
                "UPDATE {} SET tags = ?1 WHERE name = ?2",
                names::table(kind)
            ),
            params![tags_json(&tags), name],
        )?;
        Ok(())
    }

    // ---- access keys ----

    /// Creates an access key; the secret is returned once and stored sealed.
    pub fn create_access_key(
        &self,
        user: &str,
        now: i64,
    ) -> Result<(AccessKey, Zeroizing<String>)> {
        let user = self.get_user(user)?;
        let existing: i64 = self.db().query_row(
            "SELECT COUNT(*) FROM access_keys WHERE user = ?1",
            [&user.name],
            |r| r.get(0),
        )?;
        if existing >= 2 {
            return Err(StoreError::LimitExceeded(
                "cannot exceed quota for AccessKeysPerUser: 2",
            ));
        }
        let id = unique_id("AKIA")?;
        let secret = Zeroizing::new(base64_secret(&random::<30>()?));
        let sealed = self.vault().seal(secret.as_bytes(), id.as_bytes())?;
        self.db().execute(
            "INSERT INTO access_keys (id, user, secret, active, created) VALUES (?1, ?2, ?3, 1, ?4)",
            params![id, user.name, sealed, now],
        )?;
        Ok((
            AccessKey {
                id,
                user: user.name,
                active: true,
                created: now,
            },
            secret,
        ))
    }

    pub fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>> {
        let db = self.db();
        let user = names::canonical_name(&db, PrincipalKind::User, user)?;
        let mut stmt = db.prepare(
            "SELECT id, user, active, created FROM access_keys WHERE user = ?1 COLLATE NOCASE ORDER BY created",
        )?;
        let rows = stmt.query_map([&user], |r| {
            Ok(AccessKey {
                id: r.get(0)?,
                user: r.get(1)?,
                active: r.get::<_, i64>(2)? != 0,
                created: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn update_access_key(&self, id: &str, active: bool) -> Result<()> {
        let n = self.db().execute(
            "UPDATE access_keys SET active = ?1 WHERE id = ?2",
            params![i64::from(active), id],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "access key",
                name: id.to_owned(),
            });
        }
        Ok(())
    }

    pub fn delete_access_key(&self, id: &str) -> Result<()> {
        if self
            .db()
            .execute("DELETE FROM access_keys WHERE id = ?1", [id])?
            == 0
        {
            return Err(StoreError::NoSuchEntity {
                kind: "access key",
                name: id.to_owned(),
            });
        }
        Ok(())
    }

    /// The key's owner and secret, for signature checks.
    pub fn access_key_secret(&self, id: &str) -> Result<Option<(AccessKey, Zeroizing<String>)>> {
        let row: Option<(String, Vec<u8>, i64, i64)> = self
            .db()
            .query_row(
                "SELECT user, secret, active, created FROM access_keys WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((user, sealed, active, created)) = row else {
            return Ok(None);
        };
        let secret = self.vault().open(&sealed, id.as_bytes())?;
        let secret = Zeroizing::new(String::from_utf8_lossy(&secret).into_owned());
        Ok(Some((
            AccessKey {
                id: id.to_owned(),
                user,
                active: active != 0,
                created,
            },
            secret,
        )))
    }

    // ---- roles ----

    #[allow(clippy::too_many_arguments)]
    pub fn create_role(
        &self,
        name: &str,
        path: &str,
        trust_policy: &str,
        max_session_duration: i64,
        description: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<Role> {
        if !valid_name(name, 64) {
            return Err(StoreError::InvalidInput(
                "role names are 1-64 characters of [A-Za-z0-9_+=,.@-]",
            ));
        }
        if !valid_path(path) {
            return Err(StoreError::InvalidInput("a path must begin and end with /"));
        }
        if !(3600..=43_200).contains(&max_session_duration) {
            return Err(StoreError::InvalidInput(
                "MaxSessionDuration must be 3600 to 43200 seconds",
            ));
        }
        let id = unique_id("AROA")?;
        let n = self.db().execute(
            "INSERT OR IGNORE INTO roles (name, id, path, created, trust_policy, max_session, description, tags)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![name, id, path, now, trust_policy, max_session_duration, description, tags_json(tags)],
        )?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "role",
                name: name.to_owned(),
            });
        }
        self.get_role(name)
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

    pub fn get_role(&self, name: &str) -> Result<Role> {
        self.db()
            .query_row(
                &format!("SELECT {} FROM roles WHERE name = ?1", Self::ROLE_COLUMNS),
                [name],
                |r| self.row_to_role(r),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "role",
                name: name.to_owned(),
            })
    }

    pub fn list_roles(&self) -> Result<Vec<Role>> {
        let db = self.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {} FROM roles ORDER BY name",
            Self::ROLE_COLUMNS
        ))?;
        let rows = stmt.query_map([], |r| self.row_to_role(r))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes a role that has no policies (rows of any spelling of its
    /// name count); other roles' trust policies naming it then name its
    /// unique id, so a new role of the same name is not trusted.
    pub fn delete_role(&self, name: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let role = tx
            .query_row(
                &format!("SELECT {} FROM roles WHERE name = ?1", Self::ROLE_COLUMNS),
                [name],
                |r| self.row_to_role(r),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "role",
                name: name.to_owned(),
            })?;
        names::ensure_no_policies(&tx, PrincipalKind::Role, &role.name)?;
        tx.execute("DELETE FROM roles WHERE name = ?1", [&role.name])?;
        names::unbind_principal(&tx, &role.arn, &role.id)?;
        tx.commit()?;
        Ok(())
    }

    pub fn update_assume_role_policy(&self, name: &str, document: &str) -> Result<()> {
        let n = self.db().execute(
            "UPDATE roles SET trust_policy = ?1 WHERE name = ?2",
            params![document, name],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "role",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    pub fn tag_role(&self, name: &str, tags: &[(String, String)]) -> Result<()> {
        self.change_tags(PrincipalKind::Role, name, |t| merge_tags(t, tags))
    }

    // ---- groups ----

    pub fn create_group(&self, name: &str, path: &str, now: i64) -> Result<(String, String)> {
        if !valid_name(name, 128) || !valid_path(path) {
            return Err(StoreError::InvalidInput(
                "group names are 1-128 characters of [A-Za-z0-9_+=,.@-]",
            ));
        }
        let id = unique_id("AGPA")?;
        let n = self.db().execute(
            "INSERT OR IGNORE INTO groups (name, id, path, created) VALUES (?1, ?2, ?3, ?4)",
            params![name, id, path, now],
        )?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "group",
                name: name.to_owned(),
            });
        }
        Ok((id, self.arn("group", path, name)))
    }

    pub fn get_group(&self, name: &str) -> Result<Group> {
        self.db()
            .query_row(
                "SELECT name, id, path, created FROM groups WHERE name = ?1",
                [name],
                |r| {
                    let (name, path): (String, String) = (r.get(0)?, r.get(2)?);
                    Ok(Group {
                        arn: self.arn("group", &path, &name),
                        name,
                        id: r.get(1)?,
                        path,
                        created: r.get(3)?,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "group",
                name: name.to_owned(),
            })
    }

    pub fn add_user_to_group(&self, group: &str, user: &str) -> Result<()> {
        let db = self.db();
        let group = names::canonical_name(&db, PrincipalKind::Group, group)?;
        let user = names::canonical_name(&db, PrincipalKind::User, user)?;
        db.execute(
            "INSERT OR IGNORE INTO group_members (grp, user) VALUES (?1, ?2)",
            [group, user],
        )?;
        Ok(())
    }

    /// The names of the groups a user belongs to.
    pub fn groups_for_user(&self, user: &str) -> Result<Vec<String>> {
        let db = self.db();
        let user = names::canonical_name(&db, PrincipalKind::User, user)?;
        Self::group_names(&db, &user)
    }

    fn group_names(db: &Connection, user: &str) -> Result<Vec<String>> {
        let mut stmt = db.prepare(
            "SELECT g.name FROM group_members m JOIN groups g ON g.name = m.grp
             WHERE m.user = ?1 ORDER BY g.name",
        )?;
        let rows = stmt.query_map([user], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ---- policies ----

    pub fn put_inline_policy(
        &self,
        kind: PrincipalKind,
        principal: &str,
        name: &str,
        document: &str,
    ) -> Result<()> {
        if !valid_name(name, 128) {
            return Err(StoreError::InvalidInput(
                "policy names are 1-128 characters of [A-Za-z0-9_+=,.@-]",
            ));
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        let principal = names::canonical_name(&tx, kind, principal)?;
        // Policy names are not distinguished by case: putting `A` replaces
        // `a`, as IAM has it.
        tx.execute(
            "DELETE FROM inline_policies WHERE kind = ?1 AND principal = ?2 AND name = ?3 COLLATE NOCASE",
            params![kind.as_str(), principal, name],
        )?;
        tx.execute(
            "INSERT INTO inline_policies (kind, principal, name, document) VALUES (?1, ?2, ?3, ?4)",
            params![kind.as_str(), principal, name, document],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn get_inline_policy(
        &self,
        kind: PrincipalKind,
        principal: &str,
        name: &str,
    ) -> Result<String> {
        let db = self.db();
        let principal = names::canonical_name(&db, kind, principal)?;
        db.query_row(
            "SELECT document FROM inline_policies WHERE kind = ?1 AND principal = ?2 AND name = ?3 COLLATE NOCASE",
            params![kind.as_str(), principal, name],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::NoSuchEntity {
            kind: "policy",
            name: name.to_owned(),
        })
    }

    pub fn delete_inline_policy(
        &self,
        kind: PrincipalKind,
        principal: &str,
        name: &str,
    ) -> Result<()> {
        let db = self.db();
        let principal = names::canonical_name(&db, kind, principal)?;
        let n = db.execute(
            "DELETE FROM inline_policies WHERE kind = ?1 AND principal = ?2 AND name = ?3 COLLATE NOCASE",
            params![kind.as_str(), principal, name],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "policy",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Creates a managed policy (version `v1`, the default); returns
    /// (arn, id).
    pub fn create_managed_policy(
        &self,
        name: &str,
        path: &str,
        document: &str,
        now: i64,
    ) -> Result<(String, String)> {
        self.create_policy(name, path, document, "", &[], now)
            .map(|p| (p.arn, p.id))
    }

    /// The default version's document of a managed policy (kept in
    /// `managed_policies.document` by every version change).
    pub fn managed_policy(&self, arn: &str) -> Result<String> {
        self.db()
            .query_row(
                "SELECT document FROM managed_policies WHERE arn = ?1",
                [arn],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "policy",
                name: arn.to_owned(),
            })
    }

    pub fn attach_policy(&self, kind: PrincipalKind, principal: &str, arn: &str) -> Result<()> {
        self.managed_policy(arn)?;
        let db = self.db();
        let principal = names::canonical_name(&db, kind, principal)?;
        db.execute(
            "INSERT OR IGNORE INTO attachments (kind, principal, arn) VALUES (?1, ?2, ?3)",
            params![kind.as_str(), principal, arn],
        )?;
        Ok(())
    }

    pub fn detach_policy(&self, kind: PrincipalKind, principal: &str, arn: &str) -> Result<()> {
        let db = self.db();
        let principal = names::canonical_name(&db, kind, principal)?;
        let n = db.execute(
            "DELETE FROM attachments WHERE kind = ?1 AND principal = ?2 AND arn = ?3",
            params![kind.as_str(), principal, arn],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "policy attachment",
                name: arn.to_owned(),
            });
        }
        Ok(())
    }

    /// (label, document) of every identity policy that applies to a
    /// principal: its inline and attached policies (the default version's
    /// document, which `managed_policies.document` always holds), and for a
    /// user those of its groups.
    pub fn identity_policies(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<(String, String)>> {
        let db = self.db();
        let principal = names::canonical_name(&db, kind, principal)?;
        let mut principals = vec![(kind, principal.clone())];
        if kind == PrincipalKind::User {
            for g in Self::group_names(&db, &principal)? {
                principals.push((PrincipalKind::Group, g));
            }
        }
        let mut out = Vec::new();
        let mut inline = db.prepare("SELECT name, document FROM inline_policies WHERE kind = ?1 AND principal = ?2 ORDER BY name")?;
        let mut attached = db.prepare(
            "SELECT m.arn, m.document FROM attachments a JOIN managed_policies m ON m.arn = a.arn
             WHERE a.kind = ?1 AND a.principal = ?2 ORDER BY m.arn",
        )?;
        for (k, p) in &principals {
            for row in inline.query_map(params![k.as_str(), p], |r| {
                Ok((r.get::<_, String>(0)?, r.get(1)?))
            })? {
                let (name, doc) = row?;
                out.push((format!("{}/{p}/{name}", k.as_str()), doc));
            }
            for row in attached.query_map(params![k.as_str(), p], |r| Ok((r.get(0)?, r.get(1)?)))? {
                out.push(row?);
            }
        }
        Ok(out)
    }

    // ---- MFA ----

    /// Creates a virtual MFA device; returns (serial, base32 seed) — the
    /// seed is shown once.
    pub fn create_virtual_mfa(
        &self,
        name: &str,
        path: &str,
    ) -> Result<(String, Zeroizing<String>)> {
        if !valid_name(name, 128) || !valid_path(path) {
            return Err(StoreError::InvalidInput(
                "MFA device names are 1-128 characters of [A-Za-z0-9_+=,.@-]",
            ));
        }
        let serial = format!("arn:aws:iam::{}:mfa{path}{name}", self.account);
        let seed = Zeroizing::new(random::<20>()?);
        let sealed = self.vault().seal(seed.as_ref(), serial.as_bytes())?;
        let n = self.db().execute(
            "INSERT OR IGNORE INTO mfa_devices (serial, user, seed, enabled_at, last_step) VALUES (?1, NULL, ?2, NULL, NULL)",
            params![serial, sealed],
        )?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "MFA device",
                name: name.to_owned(),
            });
        }
        Ok((
            serial,
            Zeroizing::new(latchkey_session::base32(seed.as_ref())),
        ))
    }

    /// A device's seed and last accepted time step.
    pub fn mfa_seed(&self, serial: &str) -> Result<(MfaDevice, Zeroizing<Vec<u8>>, Option<i64>)> {
        // (user, sealed seed, enabled at, last step)
        type MfaRow = (Option<String>, Vec<u8>, Option<i64>, Option<i64>);
        let row: Option<MfaRow> = self
            .db()
            .query_row(
                "SELECT user, seed, enabled_at, last_step FROM mfa_devices WHERE serial = ?1",
                [serial],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let (user, sealed, enabled_at, last_step) =
            row.ok_or_else(|| StoreError::NoSuchEntity {
                kind: "MFA device",
                name: serial.to_owned(),
            })?;
        let seed = self.vault().open(&sealed, serial.as_bytes())?;
        Ok((
            MfaDevice {
                serial: serial.to_owned(),
                user,
                enabled_at,
            },
            seed,
            last_step,
        ))
    }

    /// Records an accepted code's step, refusing a step at or before the
    /// last one (atomically, so two servers cannot both accept a code).
    pub fn use_mfa_step(&self, serial: &str, step: i64) -> Result<bool> {
        let n = self.db().execute(
            "UPDATE mfa_devices SET last_step = ?1 WHERE serial = ?2 AND (last_step IS NULL OR last_step < ?1)",
            params![step, serial],
        )?;
        Ok(n == 1)
    }

    pub fn enable_mfa(&self, serial: &str, user: &str, step: i64, now: i64) -> Result<()> {
        let db = self.db();
        let user = names::canonical_name(&db, PrincipalKind::User, user)?;
        let n = db.execute(
            "UPDATE mfa_devices SET user = ?1, enabled_at = ?2, last_step = ?3 WHERE serial = ?4 AND user IS NULL",
            params![user, now, step, serial],
        )?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "MFA device assignment",
                name: serial.to_owned(),
            });
        }
        Ok(())
    }

    pub fn deactivate_mfa(&self, serial: &str, user: &str) -> Result<()> {
        let n = self.db().execute(
            "UPDATE mfa_devices SET user = NULL, enabled_at = NULL WHERE serial = ?1 AND user = ?2 COLLATE NOCASE",
            params![serial, user],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "MFA device",
                name: serial.to_owned(),
            });
        }
        Ok(())
    }

    pub fn list_mfa_devices(&self, user: &str) -> Result<Vec<MfaDevice>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT serial, user, enabled_at FROM mfa_devices WHERE user = ?1 COLLATE NOCASE ORDER BY serial",
        )?;
        let rows = stmt.query_map([user], |r| {
            Ok(MfaDevice {
                serial: r.get(0)?,
                user: r.get(1)?,
                enabled_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ---- sessions ----

    /// Denies every session of `arn` (a user or role) issued before `before`.
    pub fn revoke_sessions(&self, arn: &str, before: i64) -> Result<()> {
        self.db().execute(
            "INSERT INTO revocations (arn, not_before) VALUES (?1, ?2)
             ON CONFLICT(arn) DO UPDATE SET not_before = MAX(not_before, excluded.not_before)",
            params![arn, before],
        )?;
        Ok(())
    }

    pub fn revocations(&self) -> Result<Vec<(String, i64)>> {
        let db = self.db();
        let mut stmt = db.prepare("SELECT arn, not_before FROM revocations")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The cluster keys (id, material), creating the first on a new store.
    pub fn cluster_keys(&self, now: i64) -> Result<Vec<(u32, Zeroizing<[u8; 32]>)>> {
        let rows: Vec<(i64, Vec<u8>)> = {
            let db = self.db();
            let mut stmt = db.prepare("SELECT id, material FROM cluster_keys ORDER BY id")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if rows.is_empty() {
            self.add_cluster_key(1, now)?;
            return self.cluster_keys(now);
        }
        let mut out = Vec::with_capacity(rows.len());
        for (id, sealed) in rows {
            let id = u32::try_from(id).map_err(|_| StoreError::InvalidInput("cluster key id"))?;
            let material = self.vault().open(&sealed, &id.to_be_bytes())?;
            let mut key = Zeroizing::new([0u8; 32]);
            if material.len() != 32 {
                return Err(VaultError::Malformed.into());
            }
            key.copy_from_slice(&material);
            out.push((id, key));
        }
        Ok(out)
    }

    pub fn add_cluster_key(&self, id: u32, now: i64) -> Result<()> {
        let material = Zeroizing::new(random::<32>()?);
        let sealed = self.vault().seal(material.as_ref(), &id.to_be_bytes())?;
        self.db().execute(
            "INSERT INTO cluster_keys (id, material, created) VALUES (?1, ?2, ?3)",
            params![i64::from(id), sealed, now],
        )?;
        Ok(())
    }

    /// Adds a new cluster key when the newest is `every` seconds old, and
    /// drops keys retired (replaced by a newer key) more than `keep`
    /// seconds ago; the newest is never dropped.
    /// Safe to run on every node: the insert is keyed by id, so two nodes
    /// rotating at once add one key. Returns whether anything changed.
    pub fn rotate_cluster_keys(&self, now: i64, every: i64, keep: i64) -> Result<bool> {
        let newest: Option<(i64, i64)> = self
            .db()
            .query_row(
                "SELECT id, created FROM cluster_keys ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let mut changed = false;
        let newest_id = match newest {
            Some((id, created)) if now - created < every => id,
            Some((id, _)) => {
                let next = u32::try_from(id + 1)
                    .map_err(|_| StoreError::InvalidInput("cluster key ids exhausted"))?;
                let material = Zeroizing::new(random::<32>()?);
                let sealed = self.vault().seal(material.as_ref(), &next.to_be_bytes())?;
                changed |= self.db().execute(
                    "INSERT OR IGNORE INTO cluster_keys (id, material, created) VALUES (?1, ?2, ?3)",
                    params![i64::from(next), sealed, now],
                )? == 1;
                i64::from(next)
            }
            None => return Ok(false),
        };
        // A key retires when its successor is created: sessions it sealed
        // may live `keep` seconds beyond that.
        changed |= self.db().execute(
            "DELETE FROM cluster_keys WHERE id < ?2 AND
               (SELECT created FROM cluster_keys n WHERE n.id > cluster_keys.id ORDER BY n.id LIMIT 1) < ?1",
            params![now - keep, newest_id],
        )? > 0;
        Ok(changed)
    }

    // ---- databases ----

    /// Registers a database behind the gateway.
    pub fn register_database(&self, db: &Database, now: i64) -> Result<Database> {
        let db = db.checked()?;
        let resource_id = format!(
            "db-{}",
            latchkey_session::base32(&random::<20>()?)[..26].to_owned()
        );
        let n = self.db().execute(
            "INSERT OR IGNORE INTO databases (name, engine, endpoints, upstream, upstream_auth, resource_id, tags, created, upstream_tls, upstream_ca)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![db.name, db.engine.as_str(), serde_json::to_string(&db.endpoints).unwrap_or_default(), db.upstream, db.upstream_auth.as_str(), resource_id, tags_json(&db.tags), now, db.upstream_tls.as_str(), db.upstream_ca],
        )?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "database",
                name: db.name.clone(),
            });
        }
        Ok(Database { resource_id, ..db })
    }

    /// Changes a registered database's settings (everything but its name
    /// and resource id, so connect ARNs stay the same). Stored upstream
    /// passwords are kept.
    pub fn update_database(&self, db: &Database) -> Result<Database> {
        let db = db.checked()?;
        let resource_id: Option<String> = {
            let conn = self.db();
            let n = conn.execute(
                "UPDATE databases SET engine = ?2, endpoints = ?3, upstream = ?4, upstream_auth = ?5, tags = ?6, upstream_tls = ?7, upstream_ca = ?8
                 WHERE name = ?1",
                params![db.name, db.engine.as_str(), serde_json::to_string(&db.endpoints).unwrap_or_default(), db.upstream, db.upstream_auth.as_str(), tags_json(&db.tags), db.upstream_tls.as_str(), db.upstream_ca],
            )?;
            if n == 0 {
                None
            } else {
                Some(conn.query_row(
                    "SELECT resource_id FROM databases WHERE name = ?1",
                    [&db.name],
                    |r| r.get(0),
                )?)
            }
        };
        match resource_id {
            Some(resource_id) => Ok(Database { resource_id, ..db }),
            None => Err(StoreError::NoSuchEntity {
                kind: "database",
                name: db.name,
            }),
        }
    }

    pub fn list_databases(&self) -> Result<Vec<Database>> {
        let db = self.db();
        let mut stmt = db.prepare("SELECT name, engine, endpoints, upstream, upstream_auth, resource_id, tags, upstream_tls, upstream_ca FROM databases ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(Database {
                name: r.get(0)?,
                engine: parse_column(r, 1)?,
                endpoints: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                upstream: r.get(3)?,
                upstream_auth: parse_column(r, 4)?,
                resource_id: r.get(5)?,
                tags: parse_tags(&r.get::<_, String>(6)?),
                upstream_tls: parse_column(r, 7)?,
                upstream_ca: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One registered database by name.
    pub fn get_database(&self, name: &str) -> Result<Database> {
        self.list_databases()?
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "database",
                name: name.to_owned(),
            })
    }

    pub fn remove_database(&self, name: &str) -> Result<()> {
        let db = self.db();
        db.execute("DELETE FROM database_passwords WHERE database = ?1", [name])?;
        if db.execute("DELETE FROM databases WHERE name = ?1", [name])? == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "database",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Stores (sealed) the password the gateway uses upstream for `user`.
    pub fn set_database_password(&self, database: &str, user: &str, password: &str) -> Result<()> {
        let context = format!("{database}/{user}");
        let sealed = self.vault().seal(password.as_bytes(), context.as_bytes())?;
        let n = self.db().execute(
            "INSERT INTO database_passwords (database, user, secret) SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM databases WHERE name = ?1)
             ON CONFLICT(database, user) DO UPDATE SET secret = excluded.secret",
            params![database, user, sealed],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "database",
                name: database.to_owned(),
            });
        }
        Ok(())
    }

    /// The upstream password for `user` on `database`, if one is stored.
    pub fn database_password(
        &self,
        database: &str,
        user: &str,
    ) -> Result<Option<Zeroizing<String>>> {
        let sealed: Option<Vec<u8>> = self
            .db()
            .query_row(
                "SELECT secret FROM database_passwords WHERE database = ?1 AND user = ?2",
                [database, user],
                |r| r.get(0),
            )
            .optional()?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let context = format!("{database}/{user}");
        let plain = self.vault().open(&sealed, context.as_bytes())?;
        Ok(Some(Zeroizing::new(
            String::from_utf8_lossy(&plain).into_owned(),
        )))
    }

    /// Latchkey's database CA, if made: its certificate and private key
    /// (PEM). The key is stored sealed.
    pub fn database_ca(&self) -> Result<Option<(String, Zeroizing<String>)>> {
        let row: Option<(String, Vec<u8>)> = self
            .db()
            .query_row("SELECT cert, key FROM database_ca WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((cert, sealed)) = row else {
            return Ok(None);
        };
        let key = self.vault().open(&sealed, DATABASE_CA_CONTEXT)?;
        Ok(Some((
            cert,
            Zeroizing::new(String::from_utf8_lossy(&key).into_owned()),
        )))
    }

    /// Stores the database CA unless one exists (another process may have
    /// made one first). Returns whether this one was stored.
    pub fn create_database_ca(&self, cert_pem: &str, key_pem: &str, now: i64) -> Result<bool> {
        let sealed = self.vault().seal(key_pem.as_bytes(), DATABASE_CA_CONTEXT)?;
        Ok(self.db().execute(
            "INSERT OR IGNORE INTO database_ca (id, cert, key, created) VALUES (1, ?1, ?2, ?3)",
            params![cert_pem, sealed, now],
        )? == 1)
    }

    /// Stores a finding (JSON `document`) or updates it; an archived finding
    /// stays archived.
    pub fn put_finding(
        &self,
        id: &str,
        kind: &str,
        severity: &str,
        last_seen: i64,
        document: &str,
    ) -> Result<()> {
        self.db().execute(
            "INSERT INTO findings (id, kind, severity, last_seen, document) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET kind = ?2, severity = ?3, last_seen = ?4, document = ?5",
            params![id, kind, severity, last_seen, document],
        )?;
        Ok(())
    }

    /// Findings, newest first: (document, archived).
    pub fn findings(
        &self,
        archived: bool,
        severity: Option<&str>,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, bool)>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT document, archived FROM findings WHERE archived = ?1
             AND (?2 IS NULL OR severity = ?2) AND (?3 IS NULL OR kind = ?3)
             ORDER BY last_seen DESC LIMIT ?4",
        )?;
        let rows = stmt.query_map(params![archived, severity, kind, limit], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn get_finding(&self, id: &str) -> Result<Option<(String, bool)>> {
        Ok(self
            .db()
            .query_row(
                "SELECT document, archived FROM findings WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Archives (or unarchives) findings; returns how many exist.
    pub fn archive_findings(&self, ids: &[String], archived: bool) -> Result<usize> {
        let db = self.db();
        let mut n = 0;
        for id in ids {
            n += db.execute(
                "UPDATE findings SET archived = ?1 WHERE id = ?2",
                params![archived, id],
            )?;
        }
        Ok(n)
    }

    /// The audit trail's Ed25519 signing key (PKCS#8), unsealed.
    pub fn audit_signing_key(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let sealed: Option<Vec<u8>> = self
            .db()
            .query_row("SELECT key FROM audit_key WHERE id = 1", [], |r| r.get(0))
            .optional()?;
        match sealed {
            Some(s) => Ok(Some(self.vault().open(&s, AUDIT_KEY_CONTEXT)?)),
            None => Ok(None),
        }
    }

    /// The audit trail's public key; needs no master key.
    pub fn audit_public_key(&self) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db()
            .query_row("SELECT public_key FROM audit_key WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Stores the audit signing key unless one exists. Returns whether
    /// this one was stored.
    pub fn create_audit_signing_key(
        &self,
        pkcs8: &[u8],
        public_key: &[u8],
        now: i64,
    ) -> Result<bool> {
        let sealed = self.vault().seal(pkcs8, AUDIT_KEY_CONTEXT)?;
        Ok(self.db().execute(
            "INSERT OR IGNORE INTO audit_key (id, public_key, key, created) VALUES (1, ?1, ?2, ?3)",
            params![public_key, sealed, now],
        )? == 1)
    }

    /// Re-wraps every sealed secret with the vault's current master key.
    /// Returns how many were re-wrapped.
    pub fn rewrap_all(&self) -> Result<usize> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let mut count = 0;
        // Every table holding sealed blobs, by rowid.
        for (table, col) in [
            ("access_keys", "secret"),
            ("mfa_devices", "seed"),
            ("cluster_keys", "material"),
            ("database_passwords", "secret"),
            ("database_ca", "key"),
            ("audit_key", "key"),
            ("vault_check", "value"),
        ] {
            let rows: Vec<(i64, Vec<u8>)> = {
                let mut stmt = tx.prepare(&format!("SELECT rowid, {col} FROM {table}"))?;
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

fn merge_tags(existing: &mut Vec<(String, String)>, new: &[(String, String)]) -> Result<()> {
    for (k, v) in new {
        if k.is_empty() || k.len() > 128 || v.len() > 256 {
            return Err(StoreError::InvalidInput(
                "tag keys are 1-128 characters, values up to 256",
            ));
        }
        match existing
            .iter_mut()
            .find(|(ek, _)| ek.eq_ignore_ascii_case(k))
        {
            Some(slot) => slot.1 = v.clone(),
            None => existing.push((k.clone(), v.clone())),
        }
    }
    if existing.len() > 50 {
        return Err(StoreError::LimitExceeded(
            "cannot exceed quota for TagsPerUser: 50",
        ));
    }
    Ok(())
}

/// 40 characters of base64, the shape of an AWS secret access key.
fn base64_secret(bytes: &[u8; 30]) -> String {
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
