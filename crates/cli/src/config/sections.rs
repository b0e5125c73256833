//! The sections of the configuration, each declared once with `section!`
//! as its effective struct (with the built-in defaults) and its `*Args`
//! layer (the TOML table, the flags and the variables), together with
//! [`Layer`], every section's layer at once, and the value types and
//! parsers the flags use ([`Dur`], `boolish`, `not`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use serde::de;
use serde::{Deserialize, Deserializer, Serialize};

/// A duration written like `100ms`, `10s`, `5m` or `24h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
}

impl FromStr for Dur {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text)
            .map(Dur)
            .map_err(|e| format!("{text:?} is not a duration like 10s or 24h ({e})"))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// A PostgreSQL store's URL (`postgres://USER:PASSWORD@HOST/DB?sslrootcert=…`).
/// Shown, serialised and debugged without its password. Reading it never
/// fails here, where clap or toml would quote the text (and its password)
/// in their error: [`StoreUrl::location`] says what is wrong.
#[derive(Clone)]
pub struct StoreUrl(
    Result<latchkey_store::postgres::PgLocation, latchkey_store::postgres::PgLocationError>,
);

impl StoreUrl {
    /// The parsed location, or why the URL is refused (never quoting it).
    pub fn location(&self) -> Result<latchkey_store::postgres::PgLocation, String> {
        self.0.clone().map_err(|e| format!("store: {e}"))
    }
}

impl FromStr for StoreUrl {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(StoreUrl(text.parse()))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(location) => location.fmt(f),
            Err(_) => f.write_str("(invalid)"),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

impl PartialEq for StoreUrl {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Serialize for StoreUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StoreUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(StoreUrl(String::deserialize(d)?.parse()))
    }
}

/// `true`/`false` and the usual spellings (`1`, `yes`, `on`...).
pub(super) fn boolish(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "n" | "" => Ok(false),
        _ => Err(format!("{text:?} is neither true nor false")),
    }
}

/// For `--no-*` flags of a setting that is on by default.
fn not(text: &str) -> Result<bool, String> {
    boolish(text).map(|b| !b)
}

/// The placeholder of a flag's value in `--help`.
trait ValueName {
    const NAME: &'static str;
}

macro_rules! value_names {
    ($($ty:ty => $name:literal),* $(,)?) => {$(
        impl ValueName for $ty {
            const NAME: &'static str = $name;
        }
    )*};
}

value_names! {
    Dur => "DURATION", StoreUrl => "URL", SocketAddr => "ADDR", PathBuf => "PATH", String => "TEXT",
    Vec<String> => "NAME", usize => "N", u16 => "PORT", u32 => "N", u64 => "N", f64 => "RATE", bool => "BOOL",
}

impl<T: ValueName> ValueName for Option<T> {
    const NAME: &'static str = T::NAME;
}

/// Declares a section: the effective struct (every field with its
/// default) and its `Args` layer (the same fields as `Option`s, which are
/// the TOML table and the flags). Nested sections are sub-tables.
macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        $name:ident / $args:ident {
            $(
                $(#[doc = $doc:literal])*
                #[arg($($arg:tt)*)]
                $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
        $( nested { $($sub:ident : $subname:ident / $subargs:ident),* $(,)? } )?
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, PartialEq, Serialize)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
            $($( pub $sub: $subname, )*)?
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $( $field: $default, )*
                    $($( $sub: $subname::default(), )*)?
                }
            }
        }

        /// One layer of the section: `None` where the layer leaves a value alone.
        #[derive(Args, Clone, Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $args {
            $(
                $(#[doc = $doc])*
                // Ids unique across sections (several have a `listen`); one
                // value a flag (clap's Option<Option<T>> would take none).
                #[arg(
                    id = concat!(stringify!($name), "_", stringify!($field)),
                    value_name = <$ty as ValueName>::NAME,
                    num_args = 1,
                    $($arg)*
                )]
                #[serde(default)]
                pub $field: Option<$ty>,
            )*
            $($(
                #[command(flatten)]
                #[serde(default)]
                pub $sub: $subargs,
            )*)?
        }

        impl $name {
            /// Takes every value `layer` sets.
            pub fn apply(&mut self, layer: $args) {
                $( if let Some(v) = layer.$field { self.$field = v; } )*
                $($( self.$sub.apply(layer.$sub); )*)?
            }
        }
    };
}

fn threads_default() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

section! {
    /// `[general]`: the data directory, region and cluster keys.
    General / GeneralArgs {
        /// Data directory: store, master key, certificates, admin credentials [default: ./latchkey-data].
        #[arg(long = "data-dir", env = "LATCHKEY_DATA_DIR")]
        data_dir: PathBuf = PathBuf::from("latchkey-data"),
        /// A PostgreSQL store shared by several nodes, as a URL:
        /// postgres://USER:PASSWORD@HOST:PORT/DB?sslrootcert=CA.pem (TLS with the certificate and
        /// host name checked; sslmode=disable for a local socket) [default: the embedded SQLite
        /// store in the data directory].
        #[arg(long = "store", env = "LATCHKEY_STORE", hide_env_values = true)]
        store: Option<StoreUrl> = None,
        /// Region written to the generated AWS CLI config, and that tokens are signed for [default: us-east-1].
        #[arg(long = "region", env = "LATCHKEY_REGION")]
        region: String = "us-east-1".to_owned(),
        /// Extra DNS names or addresses for the server certificate (repeatable;
        /// localhost, 127.0.0.1 and ::1 are always included).
        #[arg(long = "server-name", env = "LATCHKEY_SERVER_NAMES", value_delimiter = ',')]
        server_names: Vec<String> = Vec::new(),
        /// How often the cluster key that seals session tokens is replaced [default: 24h].
        #[arg(long = "cluster-key-rotation", env = "LATCHKEY_CLUSTER_KEY_ROTATION")]
        cluster_key_rotation: Dur = Dur::secs(24 * 3600),
        /// On SIGTERM, how long live sessions may go on (the node is not ready and its gateways take
        /// no new connections meanwhile; the API answers until the end) before it ends them [default: 30s].
        #[arg(long = "drain-timeout", env = "LATCHKEY_DRAIN_TIMEOUT")]
        drain_timeout: Dur = Dur::secs(30),
        /// On SIGTERM, how long the node goes on taking connections after it stops being ready,
        /// so that a load balancer sees /readyz fail before the listeners close (set it above the
        /// balancer's health-check interval) [default: 0s].
        #[arg(long = "drain-delay", env = "LATCHKEY_DRAIN_DELAY")]
        drain_delay: Dur = Dur::secs(0),
        /// While the store does not answer, keys and policies read from it within this long
        /// still serve from memory, and /readyz stays ready this long; then logins are refused
        /// until it answers (0: refuse at once) [default: 30s].
        #[arg(long = "store-outage-grace", env = "LATCHKEY_STORE_OUTAGE_GRACE")]
        store_outage_grace: Dur = Dur::secs(30),
        /// Serve Prometheus metrics, /healthz and /readyz in plain HTTP here [default: off].
        #[arg(long = "metrics-listen", env = "LATCHKEY_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr> = None,
        /// How often the security checks run (`latchkey advisor checks`), setting a gauge per
        /// check and raising a finding for each failing one; the first run is at start [default: 10m].
        #[arg(long = "security-checks-every", env = "LATCHKEY_SECURITY_CHECKS_EVERY")]
        security_checks_every: Dur = Dur::secs(600),
        /// Also raise a finding (`latchkey findings`) for each check in error, archived once it
        /// passes; the gauges are always set [default: false].
        #[arg(long = "security-check-findings", env = "LATCHKEY_SECURITY_CHECK_FINDINGS", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = boolish)]
        security_check_findings: bool = false,
    }
}

section! {
    /// `[api]`: the HTTPS token service (STS and IAM).
    Api / ApiArgs {
        /// Address of the HTTPS token service [default: 127.0.0.1:7443].
        #[arg(long = "listen", env = "LATCHKEY_LISTEN")]
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 7443)),
        /// Also serve the metrics, unauthenticated, at https://LISTEN/metrics
        /// (by default the API port answers 404 there) [default: false].
        #[arg(long = "api-metrics", env = "LATCHKEY_API_METRICS", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = boolish)]
        metrics: bool = false,
        /// A request's headers must arrive within this, from their first byte [default: 10s].
        #[arg(long = "api-header-timeout", env = "LATCHKEY_API_HEADER_TIMEOUT")]
        header_timeout: Dur = Dur::secs(10),
        /// A request's whole body must arrive within this, from the end of
        /// its headers [default: 20s].
        #[arg(long = "api-body-timeout", env = "LATCHKEY_API_BODY_TIMEOUT")]
        body_timeout: Dur = Dur::secs(20),
        /// Connections with no request in progress (keep-alive, or before
        /// the first) are closed after this [default: 60s].
        #[arg(long = "api-idle-timeout", env = "LATCHKEY_API_IDLE_TIMEOUT")]
        idle_timeout: Dur = Dur::secs(60),
        /// Connections open at once, in all; more are closed at once [default: 1024].
        #[arg(long = "api-max-connections", env = "LATCHKEY_API_MAX_CONNECTIONS")]
        max_connections: usize = 1024,
        /// Connections open at once from one source address [default: 128].
        #[arg(long = "api-max-connections-per-ip", env = "LATCHKEY_API_MAX_CONNECTIONS_PER_IP")]
        max_connections_per_ip: usize = 128,
        /// Serve the web console at https://LISTEN/console [default: true].
        #[arg(long = "console", env = "LATCHKEY_CONSOLE", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = boolish)]
        console: bool = true,
        /// A console session with no request for this long ends [default: 30m].
        #[arg(long = "console-idle-timeout", env = "LATCHKEY_CONSOLE_IDLE_TIMEOUT")]
        console_idle_timeout: Dur = Dur::secs(30 * 60),
        /// A console session ends this long after sign-in, however used [default: 12h].
        #[arg(long = "console-session-duration", env = "LATCHKEY_CONSOLE_SESSION_DURATION")]
        console_session_duration: Dur = Dur::secs(12 * 3600),
    }
}

section! {
    /// `[gateway]`: what the PostgreSQL and MySQL/MariaDB gateways share
    /// (each has these limits, pools and timeouts of its own, set alike).
    Gateway / GatewayArgs {
        /// Sessions at once, in all, per gateway [default: 10000].
        #[arg(long = "gateway-max-connections", visible_alias = "pg-max-connections", env = "LATCHKEY_GATEWAY_MAX_CONNECTIONS")]
        max_connections: u32 = 10_000,
        /// Sessions at once from one source address [default: 1000].
        #[arg(long = "gateway-max-connections-per-ip", visible_alias = "pg-max-connections-per-ip", env = "LATCHKEY_GATEWAY_MAX_CONNECTIONS_PER_IP")]
        max_connections_per_ip: u32 = 1_000,
        /// Sessions at once for one principal [default: 1000].
        #[arg(long = "gateway-max-connections-per-principal", visible_alias = "pg-max-connections-per-principal", env = "LATCHKEY_GATEWAY_MAX_CONNECTIONS_PER_PRINCIPAL")]
        max_connections_per_principal: u32 = 1_000,
        /// New connections per second from one source address (token
        /// bucket, bursts of twice this; 0 = unlimited) [default: 2000].
        #[arg(long = "gateway-connection-rate-per-ip", visible_alias = "pg-connection-rate-per-ip", env = "LATCHKEY_GATEWAY_CONNECTION_RATE_PER_IP")]
        connection_rate_per_ip: f64 = 2_000.0,
        /// New sessions per second for one principal (token bucket, bursts
        /// of twice this; 0 = unlimited) [default: 2000].
        #[arg(long = "gateway-connection-rate-per-principal", visible_alias = "pg-connection-rate-per-principal", env = "LATCHKEY_GATEWAY_CONNECTION_RATE_PER_PRINCIPAL")]
        connection_rate_per_principal: f64 = 2_000.0,
        /// Time from TCP connect to a logged-in session [default: 10s].
        #[arg(long = "gateway-startup-timeout", visible_alias = "pg-startup-timeout", env = "LATCHKEY_GATEWAY_STARTUP_TIMEOUT")]
        startup_timeout: Dur = Dur::secs(10),
        /// Largest client message after login, in bytes [default: 67108864].
        #[arg(long = "gateway-max-message-size", visible_alias = "pg-max-message-size", env = "LATCHKEY_GATEWAY_MAX_MESSAGE_SIZE")]
        max_message_size: usize = 64 << 20,
        /// Memory client messages over 1 MiB may take at once, in bytes,
        /// shared by both gateways: each may cost 25 times its size (the
        /// SQL guard's tokens), a principal's sessions hold a quarter, and
        /// a session whose message does not fit is not read until room is
        /// given back [default: 2147483648].
        #[arg(long = "gateway-large-message-memory", env = "LATCHKEY_GATEWAY_LARGE_MESSAGE_MEMORY")]
        large_message_memory: usize = latchkey_gateway::LARGE_MESSAGE_MEMORY,
        /// Threads serving sessions, per gateway [default: one per CPU].
        #[arg(long = "gateway-threads", visible_alias = "pg-threads", env = "LATCHKEY_GATEWAY_THREADS")]
        threads: usize = threads_default(),
        /// Idle upstream connections kept per database, user and startup
        /// parameters (session pooling; 0 turns it off) [default: 20].
        #[arg(long = "gateway-pool-size", visible_alias = "pg-pool-size", env = "LATCHKEY_GATEWAY_POOL_SIZE")]
        pool_size: usize = 20,
        /// Pooled connections idle longer than this are closed [default: 60s].
        #[arg(long = "gateway-pool-idle-timeout", visible_alias = "pg-pool-idle-timeout", env = "LATCHKEY_GATEWAY_POOL_IDLE_TIMEOUT")]
        pool_idle_timeout: Dur = Dur::secs(60),
        /// Upstream connections older than this are not reused [default: 1h].
        #[arg(long = "gateway-pool-max-lifetime", visible_alias = "pg-pool-max-lifetime", env = "LATCHKEY_GATEWAY_POOL_MAX_LIFETIME")]
        pool_max_lifetime: Dur = Dur::secs(3600),
        /// End sessions this long after login, e.g. 8h [default: never].
        #[arg(long = "max-session-duration", env = "LATCHKEY_MAX_SESSION_DURATION")]
        max_session_duration: Option<Dur> = None,
        /// End sessions when the temporary credentials they logged in with expire [default: false].
        #[arg(long = "end-sessions-at-credential-expiry", env = "LATCHKEY_END_SESSIONS_AT_CREDENTIAL_EXPIRY", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = boolish)]
        end_sessions_at_credential_expiry: bool = false,
        /// Keep sessions whose credential is revoked or disabled (by default
        /// they are ended within seconds) [default: false].
        #[arg(long = "keep-revoked-sessions", env = "LATCHKEY_KEEP_REVOKED_SESSIONS", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = boolish)]
        keep_revoked_sessions: bool = false,
    }
    nested { postgres: Postgres / PostgresGatewayArgs, mysql: Mysql / MysqlGatewayArgs }
}

section! {
    /// `[gateway.postgres]`: what only the PostgreSQL gateway has.
    Postgres / PostgresGatewayArgs {
        /// Address of the PostgreSQL gateway [default: 127.0.0.1:6432].
        #[arg(long = "postgres-listen", visible_alias = "pg-listen", env = "LATCHKEY_POSTGRES_LISTEN")]
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 6432)),
        /// The port clients connect to and sign tokens for, when a load balancer in front of
        /// the nodes listens on another [default: the listen port].
        #[arg(long = "postgres-token-port", env = "LATCHKEY_POSTGRES_TOKEN_PORT")]
        token_port: Option<u16> = None,
        /// Development only: let PostgreSQL clients connect without TLS
        /// (MySQL clients never may) [default: false].
        #[arg(long = "postgres-allow-plaintext", visible_alias = "pg-allow-plaintext", env = "LATCHKEY_POSTGRES_ALLOW_PLAINTEXT", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = boolish)]
        allow_plaintext: bool = false,
    }
}

section! {
    /// `[gateway.mysql]`: what only the MySQL/MariaDB gateway has.
    Mysql / MysqlGatewayArgs {
        /// Address of the MySQL/MariaDB gateway [default: 127.0.0.1:3307].
        #[arg(long = "mysql-listen", env = "LATCHKEY_MYSQL_LISTEN")]
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 3307)),
        /// The port clients connect to and sign tokens for, when a load balancer in front of
        /// the nodes listens on another [default: the listen port].
        #[arg(long = "mysql-token-port", env = "LATCHKEY_MYSQL_TOKEN_PORT")]
        token_port: Option<u16> = None,
    }
}

section! {
    /// `[audit]`: the tamper-evident audit trail.
    Audit / AuditArgs {
        /// Trail directory: hash-chained segments, signed digests, the lookup index [default: DATA_DIR/audit].
        #[arg(long = "audit-dir", env = "LATCHKEY_AUDIT_DIR")]
        dir: Option<PathBuf> = None,
        /// Records reach the disk (fsync) at least this often [default: 100ms].
        #[arg(long = "audit-sync-interval", env = "LATCHKEY_AUDIT_SYNC_INTERVAL")]
        sync_interval: Dur = Dur(Duration::from_millis(100)),
        /// A signed digest of the trail at least this often [default: 5m].
        #[arg(long = "audit-digest-interval", env = "LATCHKEY_AUDIT_DIGEST_INTERVAL")]
        digest_interval: Dur = Dur::secs(300),
        /// ...and at least every this many records [default: 100000].
        #[arg(long = "audit-digest-every", env = "LATCHKEY_AUDIT_DIGEST_EVERY")]
        digest_every: u64 = 100_000,
        /// Start a new segment past this many bytes [default: 67108864].
        #[arg(long = "audit-segment-size", env = "LATCHKEY_AUDIT_SEGMENT_SIZE")]
        segment_size: u64 = 64 << 20,
        /// ...or past this age [default: 1h].
        #[arg(long = "audit-segment-age", env = "LATCHKEY_AUDIT_SEGMENT_AGE")]
        segment_age: Dur = Dur::secs(3600),
        /// Delete segments older than this, e.g. 90days [default: keep everything].
        #[arg(long = "audit-retention", env = "LATCHKEY_AUDIT_RETENTION")]
        retention: Option<Dur> = None,
        /// Records waiting to be written at most: past it, new connections
        /// and API calls are refused and sessions send no more statements
        /// until the trail has caught up [default: 1000000].
        #[arg(long = "audit-max-queue", env = "LATCHKEY_AUDIT_MAX_QUEUE")]
        max_queue: usize = 1_000_000,
        /// Keep accepting connections and API calls when the trail cannot
        /// write (by default they are refused until it can) [default: false].
        #[arg(long = "audit-fail-open", env = "LATCHKEY_AUDIT_FAIL_OPEN", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = boolish)]
        fail_open: bool = false,
        /// Audit individual statements (logins and sessions always are);
        /// the flag --no-statement-audit turns it off [default: true].
        #[arg(long = "no-statement-audit", env = "LATCHKEY_NO_STATEMENT_AUDIT", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = not)]
        statements: bool = true,
        /// How often `serve` verifies its own trail as `latchkey audit verify` does: when
        /// intact, the time is recorded (the Audit page and the security checks show it); when
        /// not, a High finding is raised. The first check is one interval after start; 0 turns
        /// it off [default: 24h].
        #[arg(long = "audit-verify-every", env = "LATCHKEY_AUDIT_VERIFY_EVERY")]
        verify_every: Dur = Dur::secs(24 * 3600),
        /// Audit statements with their literal values instead of `?` [default: false].
        #[arg(long = "audit-literals", env = "LATCHKEY_AUDIT_LITERALS", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = boolish)]
        literals: bool = false,
    }
}

section! {
    /// `[detection]`: whether the threat detection rules run (their
    /// thresholds are the rest of the table, see `crates/detect`).
    Detection / DetectionArgs {
        /// Run the detection rules; the flag --no-detection turns them off [default: true].
        #[arg(long = "no-detection", env = "LATCHKEY_NO_DETECTION", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = not)]
        enabled: bool = true,
    }
}

section! {
    /// `[webhook]`: where findings are sent, and which rotation webhooks
    /// secrets may name.
    Webhook / WebhookArgs {
        /// POST every finding here as JSON, signed with HMAC-SHA256
        /// (X-Latchkey-Signature) [default: none].
        #[arg(long = "webhook-url", env = "LATCHKEY_WEBHOOK_URL", value_name = "URL")]
        url: Option<String> = None,
        /// File holding the webhook's HMAC secret (or set LATCHKEY_WEBHOOK_SECRET).
        #[arg(long = "webhook-secret-file", env = "LATCHKEY_WEBHOOK_SECRET_FILE", value_name = "FILE")]
        secret_file: Option<PathBuf> = None,
        /// PEM CA certificates for an HTTPS webhook [default: the system's].
        #[arg(long = "webhook-ca", env = "LATCHKEY_WEBHOOK_CA", value_name = "FILE")]
        ca: Option<PathBuf> = None,
        /// URL prefixes a secret's rotation webhook (RotateSecret's RotationLambdaARN) may be under, comma-separated, e.g. https://hooks.internal/rotate/ [default: none: no rotation by webhook].
        #[arg(long = "rotation-webhook-allow", env = "LATCHKEY_ROTATION_WEBHOOK_ALLOW", value_name = "URLS")]
        rotation_allow: Option<String> = None,
        /// File holding the HMAC secret that signs rotation webhook steps, a key of their own (or set LATCHKEY_ROTATION_WEBHOOK_SECRET).
        #[arg(long = "rotation-webhook-secret-file", env = "LATCHKEY_ROTATION_WEBHOOK_SECRET_FILE", value_name = "FILE")]
        rotation_secret_file: Option<PathBuf> = None,
    }
}

/// Every section as one layer (the flags, or the file's tables).
#[derive(Args, Clone, Debug, Default)]
pub struct Layer {
    #[command(flatten)]
    pub general: GeneralArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub audit: AuditArgs,
    #[command(flatten)]
    pub detection: DetectionArgs,
    #[command(flatten)]
    pub webhook: WebhookArgs,
}
