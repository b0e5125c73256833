//! The server's configuration, one section per concern (`[general]`,
//! `[api]`, `[gateway]` with `[gateway.postgres]` and `[gateway.mysql]`,
//! `[audit]`, `[detection]`, `[webhook]`, `[[databases]]`).
//!
//! Precedence, lowest first:
//!
//! 1. built-in defaults (each section's `Default`, the one place they live);
//! 2. `latchkey.toml` (`--config FILE`, `LATCHKEY_CONFIG`, else
//!    `./latchkey.toml` if it exists);
//! 3. environment variables (`LATCHKEY_*`);
//! 4. command-line flags.
//!
//! Each section is declared once with [`section!`], which makes the
//! effective struct (with its defaults) and an `*Args` struct of
//! `Option`s that is at once the file's table and clap's flags and
//! variables. A layer is applied with `apply`, which takes every value it
//! sets; the layers are applied in the order above, so no field is merged
//! by hand. clap itself reads a flag before its variable, which is the
//! same order.
//!
//! Deprecated for one release: the flat keys of earlier `latchkey.toml`s
//! (`pg_threads`, `api_metrics`, `audit_dir`, ... at the top level), the
//! `--pg-*` flags (clap aliases) and the `LATCHKEY_PG_*` variables.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use latchkey_server::bootstrap::{DataDir, load_vault};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess};
use serde::{Deserialize, Deserializer, Serialize};

/// What is wrong with the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The `toml` error names the key and shows its line.
    #[error("{path} is not a valid configuration: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("${var}: {message}")]
    Env { var: &'static str, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn invalid<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid(message.into()))
}

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

/// `true`/`false` and the usual spellings (`1`, `yes`, `on`...).
fn boolish(text: &str) -> Result<bool, String> {
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
    Dur => "DURATION", SocketAddr => "ADDR", PathBuf => "PATH", String => "TEXT",
    Vec<String> => "NAME", usize => "N", u32 => "N", u64 => "N", f64 => "RATE", bool => "BOOL",
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
        /// Serve Prometheus metrics in plain HTTP here [default: off].
        #[arg(long = "metrics-listen", env = "LATCHKEY_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr> = None,
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
    nested { postgres: Postgres / PostgresArgs, mysql: Mysql / MysqlArgs }
}

section! {
    /// `[gateway.postgres]`: what only the PostgreSQL gateway has.
    Postgres / PostgresArgs {
        /// Address of the PostgreSQL gateway [default: 127.0.0.1:6432].
        #[arg(long = "postgres-listen", visible_alias = "pg-listen", env = "LATCHKEY_POSTGRES_LISTEN")]
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 6432)),
        /// Development only: let PostgreSQL clients connect without TLS
        /// (MySQL clients never may) [default: false].
        #[arg(long = "postgres-allow-plaintext", visible_alias = "pg-allow-plaintext", env = "LATCHKEY_POSTGRES_ALLOW_PLAINTEXT", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = boolish)]
        allow_plaintext: bool = false,
    }
}

section! {
    /// `[gateway.mysql]`: what only the MySQL/MariaDB gateway has.
    Mysql / MysqlArgs {
        /// Address of the MySQL/MariaDB gateway [default: 127.0.0.1:3307].
        #[arg(long = "mysql-listen", env = "LATCHKEY_MYSQL_LISTEN")]
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 3307)),
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
        /// Keep accepting connections and API calls when the trail cannot
        /// write (by default they are refused until it can) [default: false].
        #[arg(long = "audit-fail-open", env = "LATCHKEY_AUDIT_FAIL_OPEN", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = boolish)]
        fail_open: bool = false,
        /// Audit individual statements (logins and sessions always are);
        /// the flag --no-statement-audit turns it off [default: true].
        #[arg(long = "no-statement-audit", env = "LATCHKEY_NO_STATEMENT_AUDIT", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = not)]
        statements: bool = true,
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
    /// `[webhook]`: where findings are sent.
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

/// The configuration in effect, section by section: what
/// `latchkey serve --print-config` prints.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Settings {
    pub general: General,
    pub api: Api,
    pub gateway: Gateway,
    pub audit: Audit,
    /// `enabled` and the rule thresholds given in the file (the others
    /// keep the defaults of `crates/detect`).
    pub detection: DetectionSettings,
    pub webhook: Webhook,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectionSettings {
    pub enabled: bool,
    #[serde(flatten)]
    pub rules: toml::Table,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        Self {
            enabled: Detection::default().enabled,
            rules: toml::Table::new(),
        }
    }
}

impl Settings {
    /// Takes every value `layer` sets.
    pub fn apply(&mut self, layer: Layer) {
        self.general.apply(layer.general);
        self.api.apply(layer.api);
        self.gateway.apply(layer.gateway);
        self.audit.apply(layer.audit);
        let mut detection = Detection {
            enabled: self.detection.enabled,
        };
        detection.apply(layer.detection);
        self.detection.enabled = detection.enabled;
        self.webhook.apply(layer.webhook);
    }

    /// The same with secrets hidden: a webhook URL keeps only its scheme
    /// and host (its path, query or user part often is the credential).
    /// Nothing else here is secret: passwords and keys live in the store,
    /// sealed, and `[[databases]]` only names the variables holding them.
    pub fn redacted(&self) -> Self {
        let mut s = self.clone();
        s.webhook.url = s.webhook.url.as_deref().map(redact_url);
        s
    }
}

fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let prefix = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    if host.len() == rest.len() {
        format!("{prefix}{host}")
    } else {
        format!("{prefix}{host}/<redacted>")
    }
}

/// Reads an environment variable (a parameter, for tests).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The deprecated `LATCHKEY_PG_*` variables, as a layer below the current
/// names (clap reads those, with the flags).
fn legacy_env(env: EnvLookup<'_>) -> Result<Layer, ConfigError> {
    fn parse<T: FromStr>(var: &'static str, text: &str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        text.parse().map_err(|e: T::Err| ConfigError::Env {
            var,
            message: e.to_string(),
        })
    }
    let mut layer = Layer::default();
    macro_rules! vars {
        ($($var:literal => $($path:ident).+ $(, $map:expr)?;)*) => {$(
            if let Some(text) = env($var) {
                $( let text = $map(&text).map_err(|message| ConfigError::Env { var: $var, message })?.to_string(); )?
                layer.$($path).+ = Some(parse($var, &text)?);
            }
        )*};
    }
    vars! {
        "LATCHKEY_PG_LISTEN" => gateway.postgres.listen;
        "LATCHKEY_PG_ALLOW_PLAINTEXT" => gateway.postgres.allow_plaintext, boolish;
        "LATCHKEY_PG_MAX_CONNECTIONS" => gateway.max_connections;
        "LATCHKEY_PG_MAX_CONNECTIONS_PER_IP" => gateway.max_connections_per_ip;
        "LATCHKEY_PG_MAX_CONNECTIONS_PER_PRINCIPAL" => gateway.max_connections_per_principal;
        "LATCHKEY_PG_CONNECTION_RATE_PER_IP" => gateway.connection_rate_per_ip;
        "LATCHKEY_PG_CONNECTION_RATE_PER_PRINCIPAL" => gateway.connection_rate_per_principal;
        "LATCHKEY_PG_STARTUP_TIMEOUT" => gateway.startup_timeout;
        "LATCHKEY_PG_MAX_MESSAGE_SIZE" => gateway.max_message_size;
        "LATCHKEY_PG_THREADS" => gateway.threads;
        "LATCHKEY_PG_POOL_SIZE" => gateway.pool_size;
        "LATCHKEY_PG_POOL_IDLE_TIMEOUT" => gateway.pool_idle_timeout;
        "LATCHKEY_PG_POOL_MAX_LIFETIME" => gateway.pool_max_lifetime;
    }
    Ok(layer)
}

/// `latchkey.toml`: the sections, plus the flat keys of earlier versions.
macro_rules! file_config {
    ($($old:ident : $ty:ty => $($path:ident).+ $(, $map:expr)?;)*) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileConfig {
            #[serde(default)]
            general: GeneralArgs,
            #[serde(default)]
            api: ApiArgs,
            #[serde(default)]
            gateway: GatewayArgs,
            #[serde(default)]
            audit: AuditArgs,
            #[serde(default)]
            detection: DetectionFile,
            #[serde(default)]
            webhook: WebhookArgs,
            #[serde(default)]
            databases: Vec<DatabaseConfig>,
            $( #[serde(default)] $old: Option<$ty>, )*
        }

        impl FileConfig {
            /// Moves the deprecated flat keys into their sections (a
            /// section's own key wins), saying which were used.
            fn lift_legacy(&mut self, warnings: &mut Vec<String>) {
                let mut layer = Layer {
                    general: std::mem::take(&mut self.general),
                    api: std::mem::take(&mut self.api),
                    gateway: std::mem::take(&mut self.gateway),
                    audit: std::mem::take(&mut self.audit),
                    detection: DetectionArgs { enabled: self.detection.enabled },
                    webhook: std::mem::take(&mut self.webhook),
                };
                $(
                    if let Some(v) = self.$old.take() {
                        warnings.push(format!(
                            "the top-level key {} is deprecated; use {}",
                            stringify!($old),
                            stringify!($($path).+),
                        ));
                        $( let v = $map(v); )?
                        layer.$($path).+.get_or_insert(v);
                    }
                )*
                self.general = layer.general;
                self.api = layer.api;
                self.gateway = layer.gateway;
                self.audit = layer.audit;
                self.detection.enabled = layer.detection.enabled;
                self.webhook = layer.webhook;
            }
        }
    };
}

file_config! {
    data_dir: PathBuf => general.data_dir;
    region: String => general.region;
    server_names: Vec<String> => general.server_names;
    cluster_key_rotation: Dur => general.cluster_key_rotation;
    metrics_listen: Option<SocketAddr> => general.metrics_listen;
    listen: SocketAddr => api.listen;
    api_metrics: bool => api.metrics;
    api_header_timeout: Dur => api.header_timeout;
    api_body_timeout: Dur => api.body_timeout;
    api_idle_timeout: Dur => api.idle_timeout;
    api_max_connections: usize => api.max_connections;
    api_max_connections_per_ip: usize => api.max_connections_per_ip;
    pg_listen: SocketAddr => gateway.postgres.listen;
    pg_allow_plaintext: bool => gateway.postgres.allow_plaintext;
    mysql_listen: SocketAddr => gateway.mysql.listen;
    pg_max_connections: u32 => gateway.max_connections;
    pg_max_connections_per_ip: u32 => gateway.max_connections_per_ip;
    pg_max_connections_per_principal: u32 => gateway.max_connections_per_principal;
    pg_connection_rate_per_ip: f64 => gateway.connection_rate_per_ip;
    pg_connection_rate_per_principal: f64 => gateway.connection_rate_per_principal;
    pg_startup_timeout: Dur => gateway.startup_timeout;
    pg_max_message_size: usize => gateway.max_message_size;
    pg_threads: usize => gateway.threads;
    pg_pool_size: usize => gateway.pool_size;
    pg_pool_idle_timeout: Dur => gateway.pool_idle_timeout;
    pg_pool_max_lifetime: Dur => gateway.pool_max_lifetime;
    max_session_duration: Option<Dur> => gateway.max_session_duration;
    end_sessions_at_credential_expiry: bool => gateway.end_sessions_at_credential_expiry;
    keep_revoked_sessions: bool => gateway.keep_revoked_sessions;
    audit_dir: Option<PathBuf> => audit.dir;
    audit_sync_interval: Dur => audit.sync_interval;
    audit_digest_interval: Dur => audit.digest_interval;
    audit_digest_every: u64 => audit.digest_every;
    audit_segment_size: u64 => audit.segment_size;
    audit_segment_age: Dur => audit.segment_age;
    audit_retention: Option<Dur> => audit.retention;
    audit_fail_open: bool => audit.fail_open;
    no_statement_audit: bool => audit.statements, |off: bool| !off;
    audit_literals: bool => audit.literals;
    no_detection: bool => detection.enabled, |off: bool| !off;
    webhook_url: Option<String> => webhook.url;
    webhook_secret_file: Option<PathBuf> => webhook.secret_file;
    webhook_ca: Option<PathBuf> => webhook.ca;
}

/// `[detection]`: `enabled`, and the rest of the table is
/// [`latchkey_detect::DetectConfig`] (parsed in place, so an error in it
/// still points at its line).
#[derive(Debug, Default)]
struct DetectionFile {
    enabled: Option<bool>,
    rules: Option<latchkey_detect::DetectConfig>,
}

impl<'de> Deserialize<'de> for DetectionFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = DetectionFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a [detection] table")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DetectionFile, A::Error> {
                let mut enabled = None;
                let rules = latchkey_detect::DetectConfig::deserialize(
                    de::value::MapAccessDeserializer::new(SkipEnabled {
                        map,
                        enabled: &mut enabled,
                    }),
                )?;
                Ok(DetectionFile {
                    enabled,
                    rules: Some(rules),
                })
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// The `[detection]` table without its `enabled` key, which it keeps.
struct SkipEnabled<'a, A> {
    map: A,
    enabled: &'a mut Option<bool>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkipEnabled<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<String>()? else {
                return Ok(None);
            };
            if key == "enabled" {
                *self.enabled = Some(self.map.next_value()?);
                continue;
            }
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// A `[[databases]]` table of `latchkey.toml`: a database registered (or
/// updated to match) when `latchkey serve` or `init` starts.
///
/// ```toml
/// [[databases]]
/// name = "orders"
/// endpoints = ["orders.db.internal"]
/// upstream = "10.0.0.5:5432"
/// upstream_tls = "verify-full"
/// upstream_ca = "/etc/latchkey/orders-ca.pem"
/// tags = { env = "prod" }
/// password_env = { app = "ORDERS_APP_PASSWORD" }
/// ```
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub name: String,
    /// `postgres` (the default) or `mysql` (MySQL and MariaDB).
    #[serde(default = "default_engine")]
    pub engine: String,
    /// Host names clients sign tokens for.
    pub endpoints: Vec<String>,
    /// The real server, `host:port`.
    pub upstream: String,
    /// `disable`, `prefer` (the default), `require`, `verify-ca` or `verify-full`.
    #[serde(default = "default_tls")]
    pub upstream_tls: String,
    /// A PEM file with the upstream CA certificate(s) (relative paths from
    /// the working directory), or the PEM text itself.
    #[serde(default)]
    pub upstream_ca: Option<String>,
    /// `password` (the default), `cert` or `trust`.
    #[serde(default = "default_auth")]
    pub auth: String,
    /// Resource tags (`aws:ResourceTag/KEY` in policies).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Upstream passwords to store: database user to the name of the
    /// environment variable holding that user's password (the name, not
    /// the password, is all the configuration holds).
    #[serde(default)]
    pub password_env: BTreeMap<String, String>,
}

fn default_engine() -> String {
    "postgres".into()
}

fn default_auth() -> String {
    "password".into()
}

fn default_tls() -> String {
    "prefer".into()
}

/// `latchkey.toml` parsed: a layer, and what only the file can hold.
struct File {
    layer: Layer,
    rules: Option<latchkey_detect::DetectConfig>,
    /// `[detection]` as written, for printing.
    rules_table: toml::Table,
    databases: Vec<DatabaseConfig>,
}

fn parse_file(path: &Path, text: &str, warnings: &mut Vec<String>) -> Result<File, ConfigError> {
    let parse_error = |source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    };
    let mut file: FileConfig = toml::from_str(text).map_err(parse_error)?;
    file.lift_legacy(warnings);
    let mut rules_table = match toml::from_str::<toml::Table>(text)
        .map_err(parse_error)?
        .remove("detection")
    {
        Some(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    };
    rules_table.remove("enabled");
    Ok(File {
        layer: Layer {
            general: file.general,
            api: file.api,
            gateway: file.gateway,
            audit: file.audit,
            detection: DetectionArgs {
                enabled: file.detection.enabled,
            },
            webhook: file.webhook,
        },
        rules: file.detection.rules,
        rules_table,
        databases: file.databases,
    })
}

/// Options shared by `serve`, `init` and the commands that open the data
/// directory: the configuration file, and every setting as a flag.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Configuration file [default: ./latchkey.toml if it exists].
    #[arg(long, env = "LATCHKEY_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub flags: Layer,
}

/// The configuration in effect, as the runtime types that use it.
pub struct Config {
    /// Every setting, for `--print-config`.
    pub settings: Settings,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub region: String,
    pub server_names: Vec<String>,
    pub cluster_key_rotation: Duration,
    pub postgres_listen: SocketAddr,
    pub mysql_listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    /// The token service's timeouts, connection caps and `/metrics`.
    pub api: latchkey_server::http::ApiLimits,
    /// Detection rules; `None` when turned off.
    pub detection: Option<latchkey_detect::DetectConfig>,
    pub webhook: Option<latchkey_webhook::WebhookConfig>,
    /// The audit trail's settings (its account is filled in at start).
    pub audit: latchkey_trail::TrailConfig,
    pub postgres_gateway: latchkey_gateway::GatewayConfig,
    pub mysql_gateway: latchkey_gateway::GatewayConfig,
    /// Databases from `latchkey.toml`, registered or updated at start.
    pub databases: Vec<DatabaseConfig>,
}

impl Config {
    /// The data directory's store, for commands that act on it directly
    /// (a running server picks their changes up within seconds).
    pub fn open_store(&self) -> anyhow::Result<latchkey_store::Store> {
        use anyhow::Context;
        let dir = DataDir::new(&self.data_dir);
        let vault = load_vault(&dir.master_key()).with_context(|| {
            format!(
                "no usable data directory at {} (run latchkey init)",
                dir.root.display()
            )
        })?;
        Ok(latchkey_store::Store::open(&dir.store(), vault)?)
    }
}

impl ServerArgs {
    /// The configuration from the file, the environment and the flags;
    /// deprecation warnings go to stderr.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();
        let config = self.resolve_with(&|var| std::env::var(var).ok(), &mut warnings)?;
        for w in warnings {
            eprintln!("latchkey: warning: {w}");
        }
        Ok(config)
    }

    fn resolve_with(
        &self,
        env: EnvLookup<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Config, ConfigError> {
        let path = self.config.clone().or_else(|| {
            let default = PathBuf::from("latchkey.toml");
            default.exists().then_some(default)
        });
        let file = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                Some(parse_file(p, &text, warnings)?)
            }
            None => None,
        };
        let mut settings = Settings::default();
        let mut rules = None;
        if let Some(file) = file {
            settings.apply(file.layer);
            settings.detection.rules = file.rules_table;
            settings.databases = file.databases;
            rules = file.rules;
        }
        let legacy = legacy_env(env)?;
        settings.apply(legacy);
        settings.apply(self.flags.clone());
        build(settings, rules, env)
    }
}

/// A token bucket refilling `rate` per second with bursts of twice that;
/// 0 means no limit.
fn rate(
    per_second: f64,
    name: &str,
) -> Result<Option<latchkey_gateway::limits::RateLimit>, ConfigError> {
    if !per_second.is_finite() || per_second < 0.0 {
        return invalid(format!(
            "{name} must be a number of connections per second, 0 or more"
        ));
    }
    Ok(
        (per_second > 0.0).then_some(latchkey_gateway::limits::RateLimit {
            per_second,
            burst: (per_second * 2.0).max(1.0),
        }),
    )
}

/// Checks the settings and makes the runtime types from them.
fn build(
    settings: Settings,
    rules: Option<latchkey_detect::DetectConfig>,
    env: EnvLookup<'_>,
) -> Result<Config, ConfigError> {
    let (general, api, gw, audit_s) = (
        &settings.general,
        &settings.api,
        &settings.gateway,
        &settings.audit,
    );
    for (d, name) in [
        (api.header_timeout, "[api] header_timeout"),
        (api.body_timeout, "[api] body_timeout"),
        (api.idle_timeout, "[api] idle_timeout"),
    ] {
        if d.0.is_zero() {
            return invalid(format!("{name} must be longer than 0s"));
        }
    }
    for (n, name) in [
        (api.max_connections, "[api] max_connections"),
        (api.max_connections_per_ip, "[api] max_connections_per_ip"),
    ] {
        if n == 0 {
            return invalid(format!("{name} must be at least 1"));
        }
    }
    if gw.threads == 0 {
        return invalid("[gateway] threads must be 1 or more");
    }
    let api_limits = latchkey_server::http::ApiLimits {
        header_timeout: api.header_timeout.0,
        body_timeout: api.body_timeout.0,
        idle_timeout: api.idle_timeout.0,
        max_connections: api.max_connections,
        max_connections_per_ip: api.max_connections_per_ip,
        metrics: api.metrics,
    };
    let mut postgres =
        latchkey_gateway::GatewayConfig::new(&general.region, gw.postgres.listen.port());
    postgres.allow_plaintext = gw.postgres.allow_plaintext;
    postgres.limits.total = gw.max_connections;
    postgres.limits.per_ip = gw.max_connections_per_ip;
    postgres.limits.per_principal = gw.max_connections_per_principal;
    postgres.new_connections_per_ip = rate(
        gw.connection_rate_per_ip,
        "[gateway] connection_rate_per_ip",
    )?;
    postgres.new_connections_per_principal = rate(
        gw.connection_rate_per_principal,
        "[gateway] connection_rate_per_principal",
    )?;
    postgres.startup_timeout = gw.startup_timeout.0;
    postgres.max_message_size = gw.max_message_size;
    postgres.threads = gw.threads;
    postgres.pool.max_idle_per_key = gw.pool_size;
    postgres.pool.idle_timeout = gw.pool_idle_timeout.0;
    postgres.pool.max_lifetime = gw.pool_max_lifetime.0;
    postgres.max_session_duration = gw.max_session_duration.map(|d| d.0);
    postgres.end_sessions_at_credential_expiry = gw.end_sessions_at_credential_expiry;
    postgres.end_sessions_on_revocation = !gw.keep_revoked_sessions;
    postgres.audit_statements = audit_s.statements;
    postgres.audit_keep_literals = audit_s.literals;
    // MySQL's cleartext login would expose the token: never plaintext.
    let mut mysql = postgres.clone();
    mysql.port = gw.mysql.listen.port();
    mysql.allow_plaintext = false;

    let mut audit = latchkey_trail::TrailConfig::new(
        audit_s
            .dir
            .clone()
            .unwrap_or_else(|| general.data_dir.join("audit")),
        &general.region,
        "",
    );
    audit.sync_interval = audit_s.sync_interval.0;
    audit.digest_interval = audit_s.digest_interval.0;
    audit.digest_every = audit_s.digest_every.max(1);
    audit.segment_max_bytes = audit_s.segment_size;
    audit.segment_max_age = audit_s.segment_age.0;
    audit.retention = audit_s.retention.map(|d| d.0);
    audit.fail_open = audit_s.fail_open;

    let detection = settings
        .detection
        .enabled
        .then(|| rules.unwrap_or_default());
    let webhook = match &settings.webhook.url {
        Some(url) => {
            let secret = match &settings.webhook.secret_file {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read {
                        path: path.clone(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
                None => env("LATCHKEY_WEBHOOK_SECRET").ok_or_else(|| {
                    ConfigError::Invalid(
                        "a webhook needs a secret: --webhook-secret-file or LATCHKEY_WEBHOOK_SECRET"
                            .into(),
                    )
                })?,
            };
            if secret.len() < 16 {
                return invalid("the webhook secret must be at least 16 characters");
            }
            let mut w = latchkey_webhook::WebhookConfig::new(
                url,
                zeroize::Zeroizing::new(secret.into_bytes()),
            );
            w.ca_file = settings.webhook.ca.clone();
            Some(w)
        }
        None => None,
    };
    Ok(Config {
        data_dir: general.data_dir.clone(),
        listen: api.listen,
        region: general.region.clone(),
        server_names: general.server_names.clone(),
        cluster_key_rotation: general.cluster_key_rotation.0,
        postgres_listen: gw.postgres.listen,
        mysql_listen: gw.mysql.listen,
        metrics_listen: general.metrics_listen,
        api: api_limits,
        detection,
        webhook,
        audit,
        postgres_gateway: postgres,
        mysql_gateway: mysql,
        databases: settings.databases.clone(),
        settings,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }

    /// Resolves `toml` (as the file), `env` (the deprecated variables
    /// clap does not read) and `flags`, returning warnings too.
    fn resolve(
        toml: &str,
        env: &[(&str, &str)],
        flags: &[&str],
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.toml");
        std::fs::write(&path, toml).unwrap();
        let args = ["latchkey", "--config", path.to_str().unwrap()]
            .into_iter()
            .chain(flags.iter().copied());
        let server = Cli::try_parse_from(args).unwrap().server;
        let lookup = |var: &str| {
            env.iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| (*v).to_owned())
        };
        let mut warnings = Vec::new();
        let config = server.resolve_with(&lookup, &mut warnings)?;
        Ok((config, warnings))
    }

    #[test]
    fn defaults_are_the_runtime_defaults() {
        let (c, warnings) = resolve("", &[], &[]).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(c.api, latchkey_server::http::ApiLimits::default());
        assert_eq!(c.settings, Settings::default());
        assert!(c.settings.detection.enabled);
        let runtime = latchkey_gateway::GatewayConfig::new("us-east-1", 6432);
        let pg = &c.postgres_gateway;
        assert_eq!(pg.limits.total, runtime.limits.total);
        assert_eq!(pg.startup_timeout, runtime.startup_timeout);
        assert_eq!(pg.max_message_size, runtime.max_message_size);
        assert_eq!(pg.pool.max_lifetime, runtime.pool.max_lifetime);
        assert_eq!(pg.threads, runtime.threads);
        assert!(pg.audit_statements && pg.end_sessions_on_revocation);
        assert_eq!(c.audit.dir, PathBuf::from("latchkey-data/audit"));
        assert_eq!(c.mysql_gateway.port, 3307);
        assert!(c.detection.is_some() && c.webhook.is_none());
    }

    #[test]
    fn defaults_then_file_then_environment_then_flags() {
        let file = "[gateway]\nmax_connections = 3\nthreads = 2\npool_size = 1\n\
                    [api]\nmetrics = true\nmax_connections = 50\n";
        let env = [("LATCHKEY_PG_THREADS", "4"), ("LATCHKEY_PG_POOL_SIZE", "5")];
        let flags = ["--gateway-pool-size", "6", "--api-metrics=false"];
        let (c, _) = resolve(file, &env, &flags).unwrap();
        let g = &c.settings.gateway;
        assert_eq!(g.max_connections, 3, "file over default");
        assert_eq!(g.threads, 4, "environment over file");
        assert_eq!(g.pool_size, 6, "flag over environment");
        assert_eq!(g.max_connections_per_ip, 1_000, "default");
        assert!(!c.api.metrics, "a flag turns off what the file turned on");
        assert_eq!(c.api.max_connections, 50);
        assert_eq!(c.postgres_gateway.threads, 4);
        assert_eq!(c.mysql_gateway.pool.max_idle_per_key, 6);
    }

    #[test]
    fn old_names_still_work() {
        let file = "pg_threads = 3\npg_listen = \"127.0.0.1:7000\"\nno_detection = true\n\
                    no_statement_audit = true\napi_metrics = true\naudit_retention = \"90days\"\n\
                    pg_pool_size = 8\n[gateway]\npool_size = 9\n";
        let flags = [
            "--pg-max-message-size",
            "1024",
            "--pg-allow-plaintext",
            "--pg-connection-rate-per-ip",
            "0",
            "--no-detection=false",
        ];
        let (c, warnings) = resolve(file, &[], &flags).unwrap();
        assert_eq!(c.postgres_gateway.threads, 3);
        assert_eq!(c.postgres_listen.port(), 7000);
        assert_eq!(c.settings.gateway.pool_size, 9, "the section's key wins");
        assert!(!c.postgres_gateway.audit_statements);
        assert!(c.api.metrics);
        assert_eq!(c.audit.retention, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(c.postgres_gateway.max_message_size, 1024);
        assert!(c.postgres_gateway.allow_plaintext);
        assert!(!c.mysql_gateway.allow_plaintext, "never for MySQL");
        assert!(c.postgres_gateway.new_connections_per_ip.is_none());
        assert!(c.detection.is_some(), "the flag wins over the file");
        assert_eq!(warnings.len(), 7);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("pg_threads") && w.contains("gateway.threads")),
            "{warnings:?}"
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        for (text, key, line) in [
            ("[api]\nlisten = \"127.0.0.1:1\"\n\nbogus = 1\n", "bogus", 4),
            ("data_dir = \"d\"\npg_thread = 2\n", "pg_thread", 2),
            ("[gateway.postgres]\nthreads = 2\n", "threads", 2),
            (
                "[detection]\nenabled = true\n[detection.brute_force]\nthreshhold = 3\n",
                "threshhold",
                4,
            ),
        ] {
            let err = resolve(text, &[], &[]).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
            assert!(err.contains(&format!("line {line}")), "{err}");
        }
        let err = resolve("[gateway]\nstartup_timeout = \"soon\"\n", &[], &[])
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("not a duration"),
            "{err}"
        );
    }

    #[test]
    fn values_are_checked() {
        for (file, flags, want) in [
            (
                "[api]\nidle_timeout = \"0s\"\n",
                &[][..],
                "[api] idle_timeout",
            ),
            ("", &["--gateway-threads", "0"][..], "[gateway] threads"),
            (
                "",
                &["--pg-connection-rate-per-ip=-1"][..],
                "connection_rate_per_ip",
            ),
            (
                "[webhook]\nurl = \"http://h/x\"\n",
                &[][..],
                "needs a secret",
            ),
        ] {
            let err = resolve(file, &[], flags)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
        let err = resolve("", &[("LATCHKEY_PG_THREADS", "many")], &[])
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("LATCHKEY_PG_THREADS"), "{err}");
    }

    #[test]
    fn printed_configuration_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t-s3cr3t-s3cr3t\n").unwrap();
        let file = format!(
            "[webhook]\nurl = \"https://bob:hunter2@hooks.example.com/services/T0/XYZ?token=abc\"\n\
             secret_file = {:?}\n[detection.brute_force]\nthreshold = 5\n\
             [[databases]]\nname = \"orders\"\nendpoints = [\"o\"]\nupstream = \"10.0.0.5:5432\"\n\
             password_env = {{ app = \"ORDERS_PASSWORD\" }}\n",
            secret.to_str().unwrap()
        );
        let (c, _) = resolve(&file, &[], &[]).unwrap();
        assert_eq!(
            c.webhook.as_ref().unwrap().secret.as_slice(),
            b"s3cr3t-s3cr3t-s3cr3t"
        );
        let redacted = c.settings.redacted();
        let text = toml::to_string(&redacted).unwrap();
        for hidden in ["hunter2", "bob", "XYZ", "token", "s3cr3t"] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }
        assert_eq!(
            redacted.webhook.url.as_deref(),
            Some("https://hooks.example.com/<redacted>")
        );
        assert!(
            text.contains("[detection.brute_force]\nthreshold = 5"),
            "{text}"
        );
        assert!(text.contains("ORDERS_PASSWORD"), "{text}");
        // What is printed reads back as the same configuration.
        let again = resolve(&text, &[], &[]);
        assert!(
            matches!(again, Err(ConfigError::Invalid(ref e)) if e.contains("secret"))
                || again.is_ok()
        );
        assert_eq!(
            redact_url("http://hooks.example.com"),
            "http://hooks.example.com"
        );
    }
}
