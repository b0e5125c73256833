//! The store's closed sets of values, typed once: principal kinds,
//! database engines, upstream authentication methods and upstream TLS
//! modes, and a registered [`Database`] built from them.
//!
//! Each parses from (`FromStr`) and prints as (`Display`, `as_str`)
//! exactly the strings used on the wire, on the command line, in
//! `latchkey.toml` and in the stored rows, so parsing happens once at the
//! boundary and the rest of the code matches on the enum.

use std::fmt;
use std::str::FromStr;

/// Implements `as_str`, `ALL`, `Display` and `FromStr` for a fieldless enum
/// from one table of (variant, string), so the two directions cannot drift.
macro_rules! string_enum {
    ($ty:ident, $err:ident, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in the order documentation lists them.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The wire, command-line and stored spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = $err;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    other => Err($err(other.to_owned())),
                }
            }
        }
    };
}

/// Whether a client holds a server connection for its whole session or
/// only for each transaction (see [`crate::Pooling`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// A server connection per client session; pooled between sessions
    /// after `DISCARD ALL`.
    #[default]
    Session,
    /// A server connection per transaction (or statement outside one),
    /// given back when the server is idle.
    Transaction,
}

/// A string that is not `session` or `transaction`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pool mode {0:?} is not session or transaction")]
pub struct UnknownPoolMode(pub String);

string_enum!(PoolMode, UnknownPoolMode, {
    Session => "session",
    Transaction => "transaction",
});

/// What a transaction-pooled client that leaves state in its session
/// (`SET`, `LISTEN`, a session advisory lock, a temporary table...) gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// It keeps its server connection for the rest of its session.
    #[default]
    Pin,
    /// The statement is refused (`0A000 feature_not_supported`).
    Refuse,
}

/// A string that is not `pin` or `refuse`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("session state handling {0:?} is not pin or refuse")]
pub struct UnknownSessionState(pub String);

string_enum!(SessionState, UnknownSessionState, {
    Pin => "pin",
    Refuse => "refuse",
});

/// A principal kind that policies attach to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    User,
    Role,
    Group,
}

/// A string that is not `user`, `role` or `group`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("principal kind {0:?} is not user, role or group")]
pub struct UnknownPrincipalKind(pub String);

string_enum!(PrincipalKind, UnknownPrincipalKind, {
    User => "user",
    Role => "role",
    Group => "group",
});

/// The database server behind the gateway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Engine {
    /// PostgreSQL.
    #[default]
    Postgres,
    /// MySQL and MariaDB.
    Mysql,
}

/// A string that is not `postgres` or `mysql`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("engine {0:?} is not postgres or mysql")]
pub struct UnknownEngine(pub String);

string_enum!(Engine, UnknownEngine, {
    Postgres => "postgres",
    Mysql => "mysql",
});

impl Engine {
    /// Whether the gateway of this engine can log in upstream with `auth`
    /// (client certificates are PostgreSQL's only).
    pub fn supports(self, auth: UpstreamAuth) -> bool {
        match self {
            Engine::Postgres => true,
            Engine::Mysql => auth != UpstreamAuth::Cert,
        }
    }
}

/// How the gateway logs in to the real server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UpstreamAuth {
    /// A password stored sealed in the store.
    #[default]
    Password,
    /// A client certificate from Latchkey's database CA.
    Cert,
    /// No credential (development only).
    Trust,
}

/// A string that is not `password`, `cert` or `trust`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("upstream auth {0} is not password, cert or trust")]
pub struct UnknownUpstreamAuth(pub String);

string_enum!(UpstreamAuth, UnknownUpstreamAuth, {
    Password => "password",
    Cert => "cert",
    Trust => "trust",
});

/// How the gateway protects its connection to the real server: libpq's
/// `sslmode` values, which the MySQL gateway shares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// Plaintext.
    Disable,
    /// TLS if the server offers it, plaintext if not; the certificate is
    /// not checked.
    #[default]
    Prefer,
    /// TLS, without checking the certificate (the handshake signature is
    /// still checked).
    Require,
    /// TLS; the certificate must chain to the database's CA.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the upstream host.
    VerifyFull,
}

/// A string that is not one of libpq's `sslmode` values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("upstream TLS mode {0:?} is not disable, prefer, require, verify-ca or verify-full")]
pub struct UnknownTlsMode(pub String);

string_enum!(TlsMode, UnknownTlsMode, {
    Disable => "disable",
    Prefer => "prefer",
    Require => "require",
    VerifyCa => "verify-ca",
    VerifyFull => "verify-full",
});

impl TlsMode {
    /// Whether the server's certificate is checked against a CA.
    pub fn verifies(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyFull)
    }

    /// Whether the connection is TLS whatever the server offers.
    pub fn requires_tls(self) -> bool {
        !matches!(self, TlsMode::Disable | TlsMode::Prefer)
    }
}

/// Whether the gateway decides each statement by policy (`sql:` actions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StatementPolicy {
    /// Statements are not classified (no cost): the database's own grants
    /// decide, as before statement policy.
    #[default]
    Off,
    /// Each statement is decided and the decision recorded; nothing is
    /// refused.
    Audit,
    /// Each statement is decided; a denied one is refused.
    Enforce,
}

/// A string that is not `off`, `audit` or `enforce`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("statement policy {0:?} is not off, audit or enforce")]
pub struct UnknownStatementPolicy(pub String);

string_enum!(StatementPolicy, UnknownStatementPolicy, {
    Off => "off",
    Audit => "audit",
    Enforce => "enforce",
});

/// The kind of object a classification tag is on, as `sql:` ARNs name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// Tables, views, sequences.
    #[default]
    Table,
    /// Functions and procedures.
    Function,
}

/// A string that is not `table` or `function`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("object kind {0:?} is not table or function")]
pub struct UnknownObjectKind(pub String);

string_enum!(ObjectKind, UnknownObjectKind, {
    Table => "table",
    Function => "function",
});

/// A classification tag on a database object (or one of its columns):
/// policies see an object's tags as `sql:ObjectTag/KEY`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectTag {
    /// The registered database's name.
    pub database: String,
    pub kind: ObjectKind,
    /// The schema (PostgreSQL) or database (MySQL) holding the object.
    pub schema: String,
    pub object: String,
    /// Empty for the object itself; a column's tags are kept for masking.
    pub column: String,
    pub key: String,
    pub value: String,
}

/// The SQL firewall of a database, for principals without a mode of
/// their own (`latchkey firewall configure`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FirewallMode {
    /// No firewall (no cost): statements are not fingerprinted for it.
    #[default]
    Off,
    /// After its learning window, a principal's unseen statement shapes
    /// raise findings.
    Alert,
    /// As `alert`, and an unseen shape (or a tautology or time probe) is
    /// refused.
    Block,
}

/// A string that is not `off`, `alert` or `block`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("firewall mode {0:?} is not off, alert or block")]
pub struct UnknownFirewallMode(pub String);

string_enum!(FirewallMode, UnknownFirewallMode, {
    Off => "off",
    Alert => "alert",
    Block => "block",
});

/// One principal's firewall mode on one database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProfileMode {
    /// Learning: shapes it runs are remembered (until the profile's
    /// `learning_until`, or for good when it has none); then the
    /// database's mode applies.
    #[default]
    Learn,
    Alert,
    Block,
}

/// A string that is not `learn`, `alert` or `block`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("profile mode {0:?} is not learn, alert or block")]
pub struct UnknownProfileMode(pub String);

string_enum!(ProfileMode, UnknownProfileMode, {
    Learn => "learn",
    Alert => "alert",
    Block => "block",
});

/// How a statement shape became known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ShapeSource {
    /// Run while its principal was learning.
    #[default]
    Learned,
    /// Approved by an operator (`latchkey firewall approve`).
    Approved,
}

/// A string that is not `learned` or `approved`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("shape source {0:?} is not learned or approved")]
pub struct UnknownShapeSource(pub String);

string_enum!(ShapeSource, UnknownShapeSource, {
    Learned => "learned",
    Approved => "approved",
});

/// A statement fingerprint (`latchkey-sqlnorm`'s: literals, spacing and
/// keyword case ignored), written as 16 lowercase hex digits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

/// Not 1-16 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("fingerprint {0:?} is not 1-16 hex digits")]
pub struct BadFingerprint(pub String);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(BadFingerprint(s.to_owned()));
        }
        u64::from_str_radix(digits, 16)
            .map(Fingerprint)
            .map_err(|_| BadFingerprint(s.to_owned()))
    }
}

/// Normalised statement text kept per shape, at most (cut at a character
/// boundary).
pub const MAX_SHAPE_TEXT: usize = 1024;

/// At most [`MAX_SHAPE_TEXT`] bytes of `text`, cut at a character boundary.
pub fn shape_text(text: &str) -> &str {
    if text.len() <= MAX_SHAPE_TEXT {
        return text;
    }
    let mut end = MAX_SHAPE_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A database's firewall settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirewallConfig {
    /// The registered database's name.
    pub database: String,
    pub mode: FirewallMode,
    /// How long a new principal learns, in seconds from its first
    /// statement.
    pub learning_secs: u64,
    /// Bumped by every change to the database's firewall (settings,
    /// profiles, shapes), so that a gateway re-reads only what changed.
    pub revision: i64,
}

/// One principal's firewall profile on one database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirewallProfile {
    pub database: String,
    /// A user's ARN; a role's (`arn:aws:iam::ACCOUNT:role/NAME`) for all
    /// its sessions.
    pub principal: String,
    pub mode: ProfileMode,
    /// In `learn` mode, when learning ends (unix seconds); `None`: until
    /// the mode is changed.
    pub learning_until: Option<i64>,
    /// It has sent several statements in one message.
    pub stacks: bool,
    /// It has run a `UNION` (`INTERSECT`, `EXCEPT`).
    pub unions: bool,
    pub created: i64,
    /// Its known shapes, by fingerprint.
    pub shapes: Vec<KnownShape>,
}

/// A statement shape a principal is known to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownShape {
    pub fingerprint: Fingerprint,
    /// Normalised (literals are `?`), at most [`MAX_SHAPE_TEXT`] bytes.
    pub text: String,
    pub first_seen: i64,
    pub source: ShapeSource,
}

/// A shape a principal ran while learning, for [`crate::Firewall::learn_shapes`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LearnedShape {
    pub database: String,
    pub principal: String,
    /// `None`: only the principal's profile (its first statement came
    /// after a learning window of zero).
    pub fingerprint: Option<Fingerprint>,
    pub text: String,
    pub stacked: bool,
    pub union: bool,
    pub at: i64,
    /// The learning window's end, for a profile this creates.
    pub learning_until: Option<i64>,
}

/// A database registered behind the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Database {
    pub name: String,
    pub engine: Engine,
    /// Host names tokens are signed for (lowercase).
    pub endpoints: Vec<String>,
    /// `host:port` of the real server.
    pub upstream: String,
    pub upstream_auth: UpstreamAuth,
    pub upstream_tls: TlsMode,
    /// PEM certificates the real server's certificate must chain to
    /// (`verify-ca`, `verify-full`).
    pub upstream_ca: Option<String>,
    /// `db-` and 26 uppercase alphanumerics, in the connect ARN.
    pub resource_id: String,
    pub tags: Vec<(String, String)>,
    /// Whether statements are decided by policy.
    pub statement_policy: StatementPolicy,
    /// Whether Latchkey rotates the upstream passwords it stores for
    /// this database (`--rotate-every`), and how.
    pub rotation: Option<RotationSchedule>,
    /// How its server connections are shared between clients.
    pub pooling: crate::Pooling,
}

/// A registered database's credential rotation: every `every_days`
/// days, each user's password in place (single user), or, when
/// `master_user` is set, by two users taking turns with that privileged
/// login making the second (alternating users).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationSchedule {
    pub every_days: u32,
    pub master_user: Option<String>,
}

/// The longest `--rotate-every` (Secrets Manager's own limit).
pub const MAX_ROTATION_DAYS: u32 = 1000;

/// Why a database's settings are refused. The texts are those
/// `latchkey db register` has always shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseError {
    #[error("database names are 1-63 characters of [A-Za-z0-9_+=,.@-]")]
    Name,
    #[error("{0}")]
    Pooling(crate::PoolingError),
    #[error("give at least one endpoint host name (no port)")]
    Endpoints,
    #[error("upstream auth {auth} is not available for {engine} databases (use password or trust)")]
    AuthNotForEngine { engine: Engine, auth: UpstreamAuth },
    #[error("upstream auth cert needs upstream TLS require, verify-ca or verify-full")]
    CertNeedsTls,
    #[error("upstream TLS {0} needs the upstream CA certificate")]
    NeedsCa(TlsMode),
    #[error("an upstream CA certificate is used only with upstream TLS verify-ca or verify-full")]
    CaWithoutVerify,
    #[error("the upstream CA must be PEM certificates (at most 256 KiB)")]
    CaNotPem,
    #[error("a database's tag keys must differ in more than case")]
    DuplicateTag,
    #[error("tags are at most 50, keys 1-128 characters not starting with aws:, values up to 256")]
    Tag,
    #[error("the upstream is host:port (port 1-65535) or a Unix socket path")]
    Upstream,
    #[error(
        "rotation needs upstream auth password, every 1 to 1000 days, and a master user name of 1-63 characters"
    )]
    Rotation,
}

impl DatabaseError {
    /// The same text, for [`crate::StoreError::InvalidInput`], which
    /// carries static messages.
    pub fn message(self) -> &'static str {
        match self {
            DatabaseError::Name => "database names are 1-63 characters of [A-Za-z0-9_+=,.@-]",
            DatabaseError::Pooling(e) => e.message(),
            DatabaseError::Endpoints => "give at least one endpoint host name (no port)",
            // The only pair `Engine::supports` refuses.
            DatabaseError::AuthNotForEngine { .. } => {
                "upstream auth cert is not available for mysql databases (use password or trust)"
            }
            DatabaseError::CertNeedsTls => {
                "upstream auth cert needs upstream TLS require, verify-ca or verify-full"
            }
            DatabaseError::NeedsCa(TlsMode::VerifyCa) => {
                "upstream TLS verify-ca needs the upstream CA certificate"
            }
            DatabaseError::NeedsCa(_) => {
                "upstream TLS verify-full needs the upstream CA certificate"
            }
            DatabaseError::CaWithoutVerify => {
                "an upstream CA certificate is used only with upstream TLS verify-ca or verify-full"
            }
            DatabaseError::CaNotPem => "the upstream CA must be PEM certificates (at most 256 KiB)",
            DatabaseError::DuplicateTag => "a database's tag keys must differ in more than case",
            DatabaseError::Tag => {
                "tags are at most 50, keys 1-128 characters not starting with aws:, values up to 256"
            }
            DatabaseError::Upstream => {
                "the upstream is host:port (port 1-65535) or a Unix socket path"
            }
            DatabaseError::Rotation => {
                "rotation needs upstream auth password, every 1 to 1000 days, and a master user name of 1-63 characters"
            }
        }
    }
}

impl Database {
    /// The rules joining engine, upstream authentication and TLS mode
    /// (the gateway checks these before its own TLS checks, so a
    /// registration's mistakes show before anything is stored).
    pub fn check_upstream(&self) -> Result<(), DatabaseError> {
        if !self.engine.supports(self.upstream_auth) {
            return Err(DatabaseError::AuthNotForEngine {
                engine: self.engine,
                auth: self.upstream_auth,
            });
        }
        if self.upstream_auth == UpstreamAuth::Cert && !self.upstream_tls.requires_tls() {
            return Err(DatabaseError::CertNeedsTls);
        }
        if self.upstream_tls.verifies() && self.upstream_ca.is_none() {
            return Err(DatabaseError::NeedsCa(self.upstream_tls));
        }
        Ok(())
    }

    /// Checks every setting and normalises them (lowercase endpoints).
    pub fn checked(&self) -> Result<Database, DatabaseError> {
        // `.` and `..` are path steps to every URL that names a database.
        if !crate::valid_name(&self.name, 63) || self.name.bytes().all(|b| b == b'.') {
            return Err(DatabaseError::Name);
        }
        // Policies read `aws:ResourceTag/KEY` whatever its case: two keys
        // that differ only in case would let one hide the other.
        if self.tags.iter().enumerate().any(|(i, (k, _))| {
            self.tags[..i]
                .iter()
                .any(|(o, _)| o.eq_ignore_ascii_case(k))
        }) {
            return Err(DatabaseError::DuplicateTag);
        }
        // Host names as DNS writes them: a `*` or other character would
        // read like a pattern while matching only itself.
        let host_name = |e: &str| {
            !e.is_empty()
                && e.len() <= 253
                && !e.starts_with(['.', '-'])
                && !e.ends_with('.')
                && e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
        };
        if self.endpoints.is_empty() || !self.endpoints.iter().all(|e| host_name(e)) {
            return Err(DatabaseError::Endpoints);
        }
        if self.tags.len() > 50
            || self.tags.iter().any(|(k, v)| {
                k.is_empty()
                    || k.chars().count() > 128
                    || v.chars().count() > 256
                    || k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
            })
        {
            return Err(DatabaseError::Tag);
        }
        let upstream_ok = if self.upstream.starts_with('/') {
            self.upstream.len() <= 107 && !self.upstream.contains('\0')
        } else {
            self.upstream.len() <= 260
                && self.upstream.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty()
                        && !host.contains(char::is_whitespace)
                        && port.parse::<u16>().is_ok_and(|p| p > 0)
                })
        };
        if !upstream_ok {
            return Err(DatabaseError::Upstream);
        }
        self.check_upstream()?;
        match &self.upstream_ca {
            Some(_) if !self.upstream_tls.verifies() => return Err(DatabaseError::CaWithoutVerify),
            Some(pem) if !pem.contains("-----BEGIN CERTIFICATE-----") || pem.len() > 256 * 1024 => {
                return Err(DatabaseError::CaNotPem);
            }
            _ => {}
        }
        self.pooling
            .check(self.engine)
            .map_err(DatabaseError::Pooling)?;
        if let Some(r) = &self.rotation {
            let master_ok = r
                .master_user
                .as_deref()
                .is_none_or(|m| !m.is_empty() && m.len() <= 63 && !m.contains('\0'));
            if self.upstream_auth != UpstreamAuth::Password
                || !(1..=MAX_ROTATION_DAYS).contains(&r.every_days)
                || !master_ok
            {
                return Err(DatabaseError::Rotation);
            }
        }
        Ok(Database {
            endpoints: self
                .endpoints
                .iter()
                .map(|e| e.to_ascii_lowercase())
                .collect(),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for e in Engine::ALL {
            assert_eq!(e.as_str().parse::<Engine>(), Ok(*e));
        }
        for a in UpstreamAuth::ALL {
            assert_eq!(a.to_string().parse::<UpstreamAuth>(), Ok(*a));
        }
        for t in TlsMode::ALL {
            assert_eq!(t.as_str().parse::<TlsMode>(), Ok(*t));
        }
        for m in StatementPolicy::ALL {
            assert_eq!(m.as_str().parse::<StatementPolicy>(), Ok(*m));
        }
        for k in ObjectKind::ALL {
            assert_eq!(k.as_str().parse::<ObjectKind>(), Ok(*k));
        }
        for m in FirewallMode::ALL {
            assert_eq!(m.as_str().parse::<FirewallMode>(), Ok(*m));
        }
        for m in ProfileMode::ALL {
            assert_eq!(m.as_str().parse::<ProfileMode>(), Ok(*m));
        }
        for m in ShapeSource::ALL {
            assert_eq!(m.as_str().parse::<ShapeSource>(), Ok(*m));
        }
        let fp = Fingerprint(0x00ab_cdef_0123_4567);
        assert_eq!(fp.to_string(), "00abcdef01234567");
        assert_eq!("00abcdef01234567".parse::<Fingerprint>(), Ok(fp));
        assert_eq!("0xABCDEF01234567".parse::<Fingerprint>(), Ok(fp));
        assert!("".parse::<Fingerprint>().is_err());
        assert!("12345678901234567".parse::<Fingerprint>().is_err());
        assert!("+1".parse::<Fingerprint>().is_err());
        assert_eq!(shape_text(&"é".repeat(600)).len(), 1024);
        for k in PrincipalKind::ALL {
            assert_eq!(k.as_str().parse::<PrincipalKind>(), Ok(*k));
        }
        assert_eq!(
            TlsMode::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            ["disable", "prefer", "require", "verify-ca", "verify-full"]
        );
    }

    #[test]
    fn unknown_strings_say_what_is_allowed() {
        assert_eq!(
            "oracle".parse::<Engine>().map_err(|e| e.to_string()),
            Err("engine \"oracle\" is not postgres or mysql".to_owned())
        );
        assert_eq!(
            "kerberos"
                .parse::<UpstreamAuth>()
                .map_err(|e| e.to_string()),
            Err("upstream auth kerberos is not password, cert or trust".to_owned())
        );
        assert_eq!(
            "on".parse::<TlsMode>().map_err(|e| e.to_string()),
            Err(
                "upstream TLS mode \"on\" is not disable, prefer, require, verify-ca or verify-full"
                    .to_owned()
            )
        );
        // Case matters, as it always has.
        assert!("Postgres".parse::<Engine>().is_err());
    }

    #[test]
    fn error_messages_match_their_display() {
        let all = [
            DatabaseError::Name,
            DatabaseError::Endpoints,
            DatabaseError::AuthNotForEngine {
                engine: Engine::Mysql,
                auth: UpstreamAuth::Cert,
            },
            DatabaseError::CertNeedsTls,
            DatabaseError::NeedsCa(TlsMode::VerifyCa),
            DatabaseError::NeedsCa(TlsMode::VerifyFull),
            DatabaseError::CaWithoutVerify,
            DatabaseError::CaNotPem,
        ];
        for e in all {
            assert_eq!(e.message(), e.to_string());
        }
    }
}
