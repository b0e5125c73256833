//! Latchkey's store: the account's identities and policies, keys,
//! registered databases, findings and audit keys. Every secret (access-key
//! secrets, MFA seeds, cluster keys, upstream passwords) is sealed by the
//! [`Vault`] before it reaches storage.
//!
//! [`Store`] is the facade every caller holds. It owns one [`Backend`]
//! (the traits of [`backend`], one per concern, which say what any
//! backend must guarantee) and derefs to it, so `store.get_user(..)`
//! needs no trait in scope. [`Store::open`] opens the SQLite backend
//! ([`sqlite`]); [`Store::with_backend`] takes any other.
//!
//! The rest is backend-neutral: [`domain`]'s closed sets of values
//! (engines, upstream authentication and TLS modes, principal kinds) and
//! [`Database`]'s rules, [`model`]'s records and IAM's name, path and tag
//! rules, and the [`vault`].

pub mod backend;
mod domain;
mod model;
mod pooling;
pub mod postgres;
mod shared;
pub mod sqlite;
pub mod vault;

use std::path::Path;

pub use backend::{
    AdvisorJob, Audit, AuditQuery, AuditShipping, Backend, ChangeCallback, Classification,
    ConsoleSessionKind, ConsoleSessionRow, ConsoleSessions, CredentialLastUse, Credentials,
    Databases, Findings, Firewall, Identities, KmsAlias, KmsKeys, LastAccess, LoginPassword,
    NodeReport, Nodes, PASSWORD_HISTORY, Parameters, Passwords, Policies, PublishedSession,
    Secrets, SessionKeys, ShippedHead, ShippedRecord, ShippedTrail, StoreChange, StoredKmsKey,
    StoredParameter, StoredSecret, UpstreamLogin, UpstreamLogins, Usage,
};
pub use domain::{
    BadFingerprint, Database, DatabaseError, Engine, Fingerprint, FirewallConfig, FirewallMode,
    FirewallProfile, KnownShape, LearnedShape, MAX_ROTATION_DAYS, MAX_SHAPE_TEXT, ObjectKind,
    ObjectTag, PrincipalKind, ProfileMode, RotationSchedule, ShapeSource, StatementPolicy, TlsMode,
    UnknownEngine, UnknownFirewallMode, UnknownObjectKind, UnknownPrincipalKind,
    UnknownProfileMode, UnknownShapeSource, UnknownStatementPolicy, UnknownTlsMode,
    UnknownUpstreamAuth, UpstreamAuth, shape_text,
};
pub use domain::{PoolMode, SessionState, UnknownPoolMode, UnknownSessionState};
pub use latchkey_password::{PasswordHash, PasswordPolicy};
pub use model::{
    AccessKey, Group, LoginProfile, MAX_POLICY_VERSIONS, ManagedPolicy, MfaDevice, PolicyEntity,
    PolicyVersion, Role, User, replace_principal, valid_name,
};
pub use pooling::{Pooling, PoolingError};
pub use postgres::PgBackend;
pub use sqlite::SqliteBackend;
pub use vault::{Vault, VaultError, random};

/// The most advisor jobs kept about one subject, of one kind: a caller
/// generating jobs in a loop replaces only its own subject's, never
/// another's.
pub const MAX_ADVISOR_JOBS_PER_SUBJECT: i64 = 16;

/// The most advisor jobs kept in all: a backstop that only a caller
/// allowed to report on thousands of principals could reach.
pub const MAX_ADVISOR_JOBS: i64 = 100_000;

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
    /// A PostgreSQL store's error, in the server's words.
    #[error("store: {0}")]
    Postgres(String),
    /// The PostgreSQL store cannot be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A concurrent write got in the way too many times.
    #[error("store: too many concurrent changes, try again")]
    Conflict,
    /// A row with the same key was written at the same moment.
    #[error("store: a row with that key exists")]
    UniqueViolation,
    #[error(
        "the store's schema is version {found}, newer than this Latchkey's ({known}): upgrade Latchkey"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error("sealed data: {0}")]
    Vault(#[from] VaultError),
    /// The nodes sharing the store agreed to seal with a master key this
    /// node's `master.key` does not hold.
    #[error(
        "the nodes sharing this store seal with master key {0}, which this node's master.key lacks: copy master.key from a node that has it"
    )]
    SealingKeyMissing(u32),
    /// The store holds another trail of this node: the one shipped before
    /// was not forgotten when a new one started.
    #[error(
        "the store holds trail {held} of node {node}, not this one: run `latchkey audit forget-anchor` on that node to start a new trail on purpose"
    )]
    OtherTrail { node: String, held: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl From<DatabaseError> for StoreError {
    fn from(e: DatabaseError) -> Self {
        StoreError::InvalidInput(e.message())
    }
}

/// The store: a facade over one [`Backend`], whose operations it offers
/// directly (through `Deref`).
pub struct Store {
    backend: Box<dyn Backend>,
}

impl Store {
    /// Opens (creating if needed) the SQLite store at `path`. A new store
    /// gets a random 12-digit account id; a wrong master key is refused.
    pub fn open(path: &Path, vault: Vault) -> Result<Self> {
        Ok(Self::with_backend(SqliteBackend::open(path, vault)?))
    }

    /// Connects to the PostgreSQL store at `location` (see
    /// [`postgres::PgBackend::open`]).
    pub fn open_postgres(location: &postgres::PgLocation, vault: Vault) -> Result<Self> {
        Ok(Self::with_backend(postgres::PgBackend::open(
            location, vault,
        )?))
    }

    /// Copies the embedded store at `sqlite` into the PostgreSQL store at
    /// `target` (see [`postgres::PgBackend::import_sqlite`]), each opened
    /// with the same master keys; says each table's rows as it goes.
    pub fn migrate_to_postgres(
        sqlite: &Path,
        sqlite_vault: Vault,
        target: &postgres::PgLocation,
        target_vault: Vault,
        progress: impl FnMut(&str, u64),
    ) -> Result<Vec<postgres::TableCopy>> {
        if !sqlite.exists() {
            return Err(StoreError::InvalidInput(
                "there is no embedded store to copy",
            ));
        }
        // Brings it to the current schema and checks the master key.
        drop(SqliteBackend::open(sqlite, sqlite_vault)?);
        let source = rusqlite::Connection::open_with_flags(
            sqlite,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // One snapshot of every table, even if a node still writes.
        source.execute_batch("BEGIN")?;
        let pg = postgres::PgBackend::open(target, target_vault)?;
        pg.import_sqlite(&source, progress)
    }

    /// A store over another backend.
    pub fn with_backend(backend: impl Backend + 'static) -> Self {
        Self {
            backend: Box::new(backend),
        }
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}
