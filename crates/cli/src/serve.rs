//! `latchkey serve` and `latchkey init`: configuration from flags,
//! environment and `latchkey.toml`, in that order of precedence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use latchkey_identity::AppState;
use latchkey_server::bootstrap::{DataDir, InitReport, init, load_vault, rotate_master_key};
use serde::Deserialize;

use crate::exit;

/// How often each node re-reads revocations and cluster keys from the
/// store (and rotates the cluster key when due).
const REVOCATION_REFRESH_SECS: u64 = 5;

/// Options shared by `serve` and `init`. Each may also be set in
/// `latchkey.toml` (same names, snake_case) or by environment variable.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Configuration file [default: ./latchkey.toml if it exists].
    #[arg(long, env = "LATCHKEY_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: store, master key, certificates, admin credentials [default: ./latchkey-data].
    #[arg(long, env = "LATCHKEY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the HTTPS token service (STS and IAM) [default: 127.0.0.1:7443].
    #[arg(long, env = "LATCHKEY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Region written to the generated AWS CLI config [default: us-east-1].
    #[arg(long, env = "LATCHKEY_REGION")]
    region: Option<String>,
    /// Extra DNS names or addresses for the server certificate (repeatable;
    /// localhost, 127.0.0.1 and ::1 are always included).
    #[arg(
        long = "server-name",
        env = "LATCHKEY_SERVER_NAMES",
        value_delimiter = ','
    )]
    server_names: Vec<String>,
    /// How often the cluster key that seals session tokens is replaced, e.g. 24h [default: 24h].
    #[arg(long, env = "LATCHKEY_CLUSTER_KEY_ROTATION", value_parser = humantime::parse_duration)]
    cluster_key_rotation: Option<std::time::Duration>,
    /// Serve Prometheus metrics in plain HTTP here [default: off].
    #[arg(long, env = "LATCHKEY_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Also serve the metrics, unauthenticated, at https://LISTEN/metrics
    /// (by default the API port answers 404 there).
    #[arg(long, env = "LATCHKEY_API_METRICS")]
    api_metrics: bool,
    /// A token service request's headers must arrive within this, from
    /// their first byte [default: 10s].
    #[arg(long, env = "LATCHKEY_API_HEADER_TIMEOUT", value_parser = humantime::parse_duration)]
    api_header_timeout: Option<std::time::Duration>,
    /// A token service request's whole body must arrive within this, from
    /// the end of its headers [default: 20s].
    #[arg(long, env = "LATCHKEY_API_BODY_TIMEOUT", value_parser = humantime::parse_duration)]
    api_body_timeout: Option<std::time::Duration>,
    /// Token service connections with no request in progress (keep-alive,
    /// or before the first) are closed after this [default: 60s].
    #[arg(long, env = "LATCHKEY_API_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    api_idle_timeout: Option<std::time::Duration>,
    /// Token service connections open at once, in all; more are closed at
    /// once [default: 1024].
    #[arg(long, env = "LATCHKEY_API_MAX_CONNECTIONS")]
    api_max_connections: Option<usize>,
    /// Token service connections open at once from one source address [default: 128].
    #[arg(long, env = "LATCHKEY_API_MAX_CONNECTIONS_PER_IP")]
    api_max_connections_per_ip: Option<usize>,
    /// Address of the PostgreSQL gateway [default: 127.0.0.1:6432].
    #[arg(long, env = "LATCHKEY_PG_LISTEN")]
    pg_listen: Option<SocketAddr>,
    /// Address of the MySQL/MariaDB gateway [default: 127.0.0.1:3307]. The
    /// pg_* limits, pool and timeout settings apply to it as well.
    #[arg(long, env = "LATCHKEY_MYSQL_LISTEN")]
    mysql_listen: Option<SocketAddr>,
    /// Development only: let PostgreSQL clients connect without TLS.
    #[arg(long, env = "LATCHKEY_PG_ALLOW_PLAINTEXT")]
    pg_allow_plaintext: bool,
    /// PostgreSQL sessions at once, in all [default: 10000].
    #[arg(long, env = "LATCHKEY_PG_MAX_CONNECTIONS")]
    pg_max_connections: Option<u32>,
    /// PostgreSQL sessions at once from one source address [default: 1000].
    #[arg(long, env = "LATCHKEY_PG_MAX_CONNECTIONS_PER_IP")]
    pg_max_connections_per_ip: Option<u32>,
    /// PostgreSQL sessions at once for one principal [default: 1000].
    #[arg(long, env = "LATCHKEY_PG_MAX_CONNECTIONS_PER_PRINCIPAL")]
    pg_max_connections_per_principal: Option<u32>,
    /// New PostgreSQL connections per second from one source address
    /// (token bucket, bursts of twice this; 0 = unlimited) [default: 2000].
    #[arg(long, env = "LATCHKEY_PG_CONNECTION_RATE_PER_IP")]
    pg_connection_rate_per_ip: Option<f64>,
    /// New PostgreSQL sessions per second for one principal (token
    /// bucket, bursts of twice this; 0 = unlimited) [default: 2000].
    #[arg(long, env = "LATCHKEY_PG_CONNECTION_RATE_PER_PRINCIPAL")]
    pg_connection_rate_per_principal: Option<f64>,
    /// Time from TCP connect to a logged-in session, e.g. 10s [default: 10s].
    #[arg(long, env = "LATCHKEY_PG_STARTUP_TIMEOUT", value_parser = humantime::parse_duration)]
    pg_startup_timeout: Option<std::time::Duration>,
    /// Largest PostgreSQL client message after login, in bytes [default: 67108864].
    #[arg(long, env = "LATCHKEY_PG_MAX_MESSAGE_SIZE")]
    pg_max_message_size: Option<usize>,
    /// Threads serving PostgreSQL sessions [default: one per CPU].
    #[arg(long, env = "LATCHKEY_PG_THREADS")]
    pg_threads: Option<usize>,
    /// Idle upstream connections kept per database, user and startup
    /// parameters (session pooling; 0 turns it off) [default: 20].
    #[arg(long, env = "LATCHKEY_PG_POOL_SIZE")]
    pg_pool_size: Option<usize>,
    /// Pooled connections idle longer than this are closed [default: 60s].
    #[arg(long, env = "LATCHKEY_PG_POOL_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    pg_pool_idle_timeout: Option<std::time::Duration>,
    /// Upstream connections older than this are not reused [default: 1h].
    #[arg(long, env = "LATCHKEY_PG_POOL_MAX_LIFETIME", value_parser = humantime::parse_duration)]
    pg_pool_max_lifetime: Option<std::time::Duration>,
    /// End sessions this long after login, e.g. 8h [default: never].
    #[arg(long, env = "LATCHKEY_MAX_SESSION_DURATION", value_parser = humantime::parse_duration)]
    max_session_duration: Option<std::time::Duration>,
    /// End sessions when the temporary credentials they logged in with expire.
    #[arg(long, env = "LATCHKEY_END_SESSIONS_AT_CREDENTIAL_EXPIRY")]
    end_sessions_at_credential_expiry: bool,
    /// Keep sessions whose credential is revoked or disabled (by default they are ended within seconds).
    #[arg(long, env = "LATCHKEY_KEEP_REVOKED_SESSIONS")]
    keep_revoked_sessions: bool,
    /// Audit trail directory: hash-chained segments, signed digests, the lookup index [default: DATA_DIR/audit].
    #[arg(long, env = "LATCHKEY_AUDIT_DIR")]
    audit_dir: Option<PathBuf>,
    /// Audit records reach the disk (fsync) at least this often [default: 100ms].
    #[arg(long, env = "LATCHKEY_AUDIT_SYNC_INTERVAL", value_parser = humantime::parse_duration)]
    audit_sync_interval: Option<std::time::Duration>,
    /// A signed digest of the trail at least this often [default: 5m].
    #[arg(long, env = "LATCHKEY_AUDIT_DIGEST_INTERVAL", value_parser = humantime::parse_duration)]
    audit_digest_interval: Option<std::time::Duration>,
    /// ...and at least every this many records [default: 100000].
    #[arg(long, env = "LATCHKEY_AUDIT_DIGEST_EVERY")]
    audit_digest_every: Option<u64>,
    /// Start a new trail segment past this many bytes [default: 67108864].
    #[arg(long, env = "LATCHKEY_AUDIT_SEGMENT_SIZE")]
    audit_segment_size: Option<u64>,
    /// ...or past this age [default: 1h].
    #[arg(long, env = "LATCHKEY_AUDIT_SEGMENT_AGE", value_parser = humantime::parse_duration)]
    audit_segment_age: Option<std::time::Duration>,
    /// Delete trail segments older than this, e.g. 90days [default: keep everything].
    #[arg(long, env = "LATCHKEY_AUDIT_RETENTION", value_parser = humantime::parse_duration)]
    audit_retention: Option<std::time::Duration>,
    /// Keep accepting connections and API calls when the audit trail cannot write (by default they are refused until it can).
    #[arg(long, env = "LATCHKEY_AUDIT_FAIL_OPEN")]
    audit_fail_open: bool,
    /// Turn the threat detection rules off (their thresholds are set in latchkey.toml's [detection] table).
    #[arg(long, env = "LATCHKEY_NO_DETECTION")]
    no_detection: bool,
    /// POST every finding here as JSON, signed with HMAC-SHA256 (X-Latchkey-Signature).
    #[arg(long, env = "LATCHKEY_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// File holding the webhook's HMAC secret (or set LATCHKEY_WEBHOOK_SECRET).
    #[arg(long, env = "LATCHKEY_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// PEM CA certificates for an HTTPS webhook [default: the system's].
    #[arg(long, env = "LATCHKEY_WEBHOOK_CA", value_name = "FILE")]
    webhook_ca: Option<PathBuf>,
    /// Do not audit individual statements (logins and sessions still are).
    #[arg(long, env = "LATCHKEY_NO_STATEMENT_AUDIT")]
    no_statement_audit: bool,
    /// Audit statements with their literal values instead of `?`.
    #[arg(long, env = "LATCHKEY_AUDIT_LITERALS")]
    audit_literals: bool,
}

/// `latchkey.toml`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    region: Option<String>,
    #[serde(default)]
    server_names: Vec<String>,
    /// e.g. "24h".
    cluster_key_rotation: Option<String>,
    pg_listen: Option<SocketAddr>,
    mysql_listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    #[serde(default)]
    api_metrics: bool,
    /// e.g. "10s".
    api_header_timeout: Option<String>,
    api_body_timeout: Option<String>,
    api_idle_timeout: Option<String>,
    api_max_connections: Option<usize>,
    api_max_connections_per_ip: Option<usize>,
    #[serde(default)]
    pg_allow_plaintext: bool,
    pg_max_connections: Option<u32>,
    pg_max_connections_per_ip: Option<u32>,
    pg_max_connections_per_principal: Option<u32>,
    pg_connection_rate_per_ip: Option<f64>,
    pg_connection_rate_per_principal: Option<f64>,
    /// e.g. "10s".
    pg_startup_timeout: Option<String>,
    pg_max_message_size: Option<usize>,
    pg_threads: Option<usize>,
    pg_pool_size: Option<usize>,
    pg_pool_idle_timeout: Option<String>,
    pg_pool_max_lifetime: Option<String>,
    max_session_duration: Option<String>,
    #[serde(default)]
    end_sessions_at_credential_expiry: bool,
    #[serde(default)]
    keep_revoked_sessions: bool,
    audit_dir: Option<PathBuf>,
    audit_sync_interval: Option<String>,
    audit_digest_interval: Option<String>,
    audit_digest_every: Option<u64>,
    audit_segment_size: Option<u64>,
    audit_segment_age: Option<String>,
    audit_retention: Option<String>,
    #[serde(default)]
    audit_fail_open: bool,
    #[serde(default)]
    no_statement_audit: bool,
    #[serde(default)]
    no_detection: bool,
    /// Detection rule thresholds and responses.
    detection: Option<latchkey_detect::DetectConfig>,
    webhook_url: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    webhook_ca: Option<PathBuf>,
    /// Registered databases (`[[databases]]` tables).
    #[serde(default)]
    databases: Vec<crate::db::DatabaseConfig>,
    #[serde(default)]
    audit_literals: bool,
}

/// The configuration in effect.
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub region: String,
    pub server_names: Vec<String>,
    pub cluster_key_rotation: std::time::Duration,
    pub pg_listen: SocketAddr,
    pub mysql_listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    /// The token service's timeouts, connection caps and `/metrics`.
    pub api: latchkey_server::http::ApiLimits,
    /// Detection rules; `None` when turned off.
    pub detection: Option<latchkey_detect::DetectConfig>,
    pub webhook: Option<latchkey_webhook::WebhookConfig>,
    /// The audit trail's settings (its account is filled in at start).
    pub audit: latchkey_trail::TrailConfig,
    /// The PostgreSQL gateway's settings; the MySQL gateway's are the
    /// same but for its port and plaintext (never allowed).
    pub gateway: latchkey_gateway::GatewayConfig,
    /// Databases from `latchkey.toml`, registered or updated at start.
    pub databases: Vec<crate::db::DatabaseConfig>,
}

impl Config {
    /// The data directory's store, for commands that act on it directly
    /// (a running server picks their changes up within seconds).
    pub fn open_store(&self) -> Result<latchkey_store::Store> {
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

/// A duration from a flag, else from the file (`name` for the error).
fn duration(
    flag: Option<std::time::Duration>,
    file: Option<&String>,
    name: &str,
) -> Result<Option<std::time::Duration>> {
    match (flag, file) {
        (Some(d), _) => Ok(Some(d)),
        (None, Some(text)) => humantime::parse_duration(text)
            .map(Some)
            .with_context(|| format!("{name} {text:?} is not a duration like 10s or 24h")),
        (None, None) => Ok(None),
    }
}

/// A token bucket refilling `rate` per second with bursts of twice that;
/// 0 means no limit.
fn rate(per_second: f64, name: &str) -> Result<Option<latchkey_gateway::limits::RateLimit>> {
    if !per_second.is_finite() || per_second < 0.0 {
        anyhow::bail!("{name} must be a number of connections per second, 0 or more");
    }
    Ok(
        (per_second > 0.0).then_some(latchkey_gateway::limits::RateLimit {
            per_second,
            burst: (per_second * 2.0).max(1.0),
        }),
    )
}

impl ServerArgs {
    pub fn resolve(&self) -> Result<Config> {
        let path = self.config.clone().or_else(|| {
            let default = PathBuf::from("latchkey.toml");
            default.exists().then_some(default)
        });
        let file: FileConfig = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("{} is not a valid configuration", p.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| "latchkey-data".into());
        let region = self
            .region
            .clone()
            .or(file.region)
            .unwrap_or_else(|| "us-east-1".into());
        let pg_listen = self
            .pg_listen
            .or(file.pg_listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 6432)));
        let mut api = latchkey_server::http::ApiLimits {
            metrics: self.api_metrics || file.api_metrics,
            ..latchkey_server::http::ApiLimits::default()
        };
        for (flag, text, name, slot) in [
            (
                self.api_header_timeout,
                file.api_header_timeout.as_ref(),
                "api_header_timeout",
                &mut api.header_timeout,
            ),
            (
                self.api_body_timeout,
                file.api_body_timeout.as_ref(),
                "api_body_timeout",
                &mut api.body_timeout,
            ),
            (
                self.api_idle_timeout,
                file.api_idle_timeout.as_ref(),
                "api_idle_timeout",
                &mut api.idle_timeout,
            ),
        ] {
            if let Some(d) = duration(flag, text, name)? {
                if d.is_zero() {
                    anyhow::bail!("{name} must be longer than 0s");
                }
                *slot = d;
            }
        }
        for (value, name, slot) in [
            (
                self.api_max_connections.or(file.api_max_connections),
                "api_max_connections",
                &mut api.max_connections,
            ),
            (
                self.api_max_connections_per_ip
                    .or(file.api_max_connections_per_ip),
                "api_max_connections_per_ip",
                &mut api.max_connections_per_ip,
            ),
        ] {
            if let Some(n) = value {
                if n == 0 {
                    anyhow::bail!("{name} must be at least 1");
                }
                *slot = n;
            }
        }
        let mut gateway = latchkey_gateway::GatewayConfig::new(&region, pg_listen.port());
        gateway.allow_plaintext = self.pg_allow_plaintext || file.pg_allow_plaintext;
        let limits = &mut gateway.limits;
        limits.total = self
            .pg_max_connections
            .or(file.pg_max_connections)
            .unwrap_or(limits.total);
        limits.per_ip = self
            .pg_max_connections_per_ip
            .or(file.pg_max_connections_per_ip)
            .unwrap_or(limits.per_ip);
        limits.per_principal = self
            .pg_max_connections_per_principal
            .or(file.pg_max_connections_per_principal)
            .unwrap_or(limits.per_principal);
        if let Some(r) = self
            .pg_connection_rate_per_ip
            .or(file.pg_connection_rate_per_ip)
        {
            gateway.new_connections_per_ip = rate(r, "pg_connection_rate_per_ip")?;
        }
        if let Some(r) = self
            .pg_connection_rate_per_principal
            .or(file.pg_connection_rate_per_principal)
        {
            gateway.new_connections_per_principal = rate(r, "pg_connection_rate_per_principal")?;
        }
        if let Some(d) = duration(
            self.pg_startup_timeout,
            file.pg_startup_timeout.as_ref(),
            "pg_startup_timeout",
        )? {
            gateway.startup_timeout = d;
        }
        if let Some(n) = self.pg_max_message_size.or(file.pg_max_message_size) {
            gateway.max_message_size = n;
        }
        if let Some(n) = self.pg_threads.or(file.pg_threads) {
            if n == 0 {
                anyhow::bail!("pg_threads must be 1 or more");
            }
            gateway.threads = n;
        }
        if let Some(n) = self.pg_pool_size.or(file.pg_pool_size) {
            gateway.pool.max_idle_per_key = n;
        }
        if let Some(d) = duration(
            self.pg_pool_idle_timeout,
            file.pg_pool_idle_timeout.as_ref(),
            "pg_pool_idle_timeout",
        )? {
            gateway.pool.idle_timeout = d;
        }
        if let Some(d) = duration(
            self.pg_pool_max_lifetime,
            file.pg_pool_max_lifetime.as_ref(),
            "pg_pool_max_lifetime",
        )? {
            gateway.pool.max_lifetime = d;
        }
        gateway.max_session_duration = duration(
            self.max_session_duration,
            file.max_session_duration.as_ref(),
            "max_session_duration",
        )?;
        gateway.end_sessions_at_credential_expiry =
            self.end_sessions_at_credential_expiry || file.end_sessions_at_credential_expiry;
        gateway.end_sessions_on_revocation =
            !(self.keep_revoked_sessions || file.keep_revoked_sessions);
        gateway.audit_statements = !(self.no_statement_audit || file.no_statement_audit);
        gateway.audit_keep_literals = self.audit_literals || file.audit_literals;
        let mut audit = latchkey_trail::TrailConfig::new(
            self.audit_dir
                .clone()
                .or(file.audit_dir)
                .unwrap_or_else(|| data_dir.join("audit")),
            &region,
            "",
        );
        if let Some(d) = duration(
            self.audit_sync_interval,
            file.audit_sync_interval.as_ref(),
            "audit_sync_interval",
        )? {
            audit.sync_interval = d;
        }
        if let Some(d) = duration(
            self.audit_digest_interval,
            file.audit_digest_interval.as_ref(),
            "audit_digest_interval",
        )? {
            audit.digest_interval = d;
        }
        if let Some(n) = self.audit_digest_every.or(file.audit_digest_every) {
            audit.digest_every = n.max(1);
        }
        if let Some(n) = self.audit_segment_size.or(file.audit_segment_size) {
            audit.segment_max_bytes = n;
        }
        if let Some(d) = duration(
            self.audit_segment_age,
            file.audit_segment_age.as_ref(),
            "audit_segment_age",
        )? {
            audit.segment_max_age = d;
        }
        audit.retention = duration(
            self.audit_retention,
            file.audit_retention.as_ref(),
            "audit_retention",
        )?;
        audit.fail_open = self.audit_fail_open || file.audit_fail_open;
        let detection =
            (!(self.no_detection || file.no_detection)).then(|| file.detection.unwrap_or_default());
        let webhook = match self.webhook_url.clone().or(file.webhook_url) {
            Some(url) => {
                let secret = match self.webhook_secret_file.clone().or(file.webhook_secret_file) {
                    Some(path) => std::fs::read_to_string(&path)
                        .with_context(|| format!("reading the webhook secret {}", path.display()))?
                        .trim()
                        .to_owned(),
                    None => std::env::var("LATCHKEY_WEBHOOK_SECRET").context(
                        "a webhook needs a secret: --webhook-secret-file or LATCHKEY_WEBHOOK_SECRET",
                    )?,
                };
                if secret.len() < 16 {
                    anyhow::bail!("the webhook secret must be at least 16 characters");
                }
                let mut w = latchkey_webhook::WebhookConfig::new(
                    &url,
                    zeroize::Zeroizing::new(secret.into_bytes()),
                );
                w.ca_file = self.webhook_ca.clone().or(file.webhook_ca);
                Some(w)
            }
            None => None,
        };
        Ok(Config {
            audit,
            detection,
            webhook,
            data_dir,
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7443))),
            region,
            cluster_key_rotation: match (self.cluster_key_rotation, &file.cluster_key_rotation) {
                (Some(d), _) => d,
                (None, Some(text)) => humantime::parse_duration(text).with_context(|| {
                    format!("cluster_key_rotation {text:?} is not a duration like 24h")
                })?,
                (None, None) => std::time::Duration::from_secs(24 * 3600),
            },
            pg_listen,
            mysql_listen: self
                .mysql_listen
                .or(file.mysql_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3307))),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            api,
            gateway,
            databases: file.databases,
            server_names: if self.server_names.is_empty() {
                file.server_names
            } else {
                self.server_names.clone()
            },
        })
    }
}

fn endpoint(listen: SocketAddr) -> String {
    let host = match listen.ip() {
        ip if ip.is_unspecified() || ip.is_loopback() => "localhost".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("https://{host}:{}", listen.port())
}

fn report(config: &Config, dir: &DataDir, r: &InitReport) {
    println!("Latchkey account {}", r.account);
    println!("  data directory   {}", dir.root.display());
    println!("  token service    {}", endpoint(config.listen));
    println!("  CA certificate   {}", dir.tls().ca_cert.display());
    if let Some((id, secret)) = &r.admin_key {
        println!();
        println!(
            "Administrator access key (shown once; also saved to {}):",
            dir.admin_credentials().display()
        );
        println!("  aws_access_key_id     = {id}");
        println!("  aws_secret_access_key = {}", secret.as_str());
    }
    println!();
    println!("Try it with the AWS CLI:");
    println!(
        "  AWS_CONFIG_FILE={} AWS_SHARED_CREDENTIALS_FILE={} aws sts get-caller-identity",
        dir.aws_config().display(),
        dir.admin_credentials().display()
    );
}

/// Creates what is missing in the data directory, says what there is,
/// and opens the store.
fn bootstrap(config: &Config) -> Result<(DataDir, latchkey_store::Store)> {
    let dir = DataDir::new(&config.data_dir);
    let (store, r) = init(
        &dir,
        &config.server_names,
        &endpoint(config.listen),
        &config.region,
    )?;
    crate::db::sync_databases(
        &store,
        &config.databases,
        latchkey_identity::clock::system_now(),
    )?;
    // The audit trail, when it lives in the data directory, is as private.
    if config.audit.dir.starts_with(&config.data_dir) {
        latchkey_server::bootstrap::private_tree(&config.audit.dir)
            .with_context(|| format!("making {} private", config.audit.dir.display()))?;
    }
    report(config, &dir, &r);
    Ok((dir, store))
}

pub fn run_init(args: &ServerArgs) -> Result<u8> {
    bootstrap(&args.resolve()?)?;
    Ok(exit::OK)
}

pub fn run_serve(args: &ServerArgs) -> Result<u8> {
    let config = args.resolve()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (dir, store) = bootstrap(&config)?;
    let clusters = store.cluster_keys(latchkey_identity::clock::system_now())?;
    let state = Arc::new(AppState::new(store, clusters)?.with_region(&config.region));
    let tls = latchkey_server::tls::server_config(&dir.tls())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        tracing::info!(address = %config.listen, "token service listening");
        let pg_listener = tokio::net::TcpListener::bind(config.pg_listen)
            .await
            .with_context(|| format!("listening on {}", config.pg_listen))?;
        let mysql_listener = tokio::net::TcpListener::bind(config.mysql_listen)
            .await
            .with_context(|| format!("listening on {}", config.mysql_listen))?;
        let mut trail_config = config.audit.clone();
        trail_config.account = state.store.account_id().to_owned();
        let metrics = &state.metrics;
        let mut observers: Vec<Box<dyn latchkey_trail::Observer>> = Vec::new();
        if let Some(rules) = config.detection.clone() {
            let webhook = match config.webhook.clone() {
                Some(w) => Some(latchkey_webhook::Webhook::start(w)?),
                None => None,
            };
            observers.push(Box::new(crate::findings::Detection {
                detector: latchkey_detect::Detector::try_new(rules)?,
                state: state.clone(),
                webhook,
            }));
        }
        let audit = crate::audit::open_trail(
            &state,
            trail_config,
            latchkey_trail::TrailMetrics {
                records_written: metrics.audit_records.clone(),
                write_failures: metrics.audit_write_failures.clone(),
                write_latency: metrics.audit_write.clone(),
            },
            observers,
        )?;
        state.set_audit(audit.clone());
        let weak = Arc::downgrade(&audit);
        metrics.registry.gauge_fn(
            "latchkey_audit_queue_depth",
            "Audit records waiting to be written.",
            move || {
                weak.upgrade()
                    .map_or(0, |t| i64::try_from(t.depth()).unwrap_or(i64::MAX))
            },
        )?;
        let gateway = Arc::new(latchkey_pg_gateway::gateway(
            state.clone(),
            tls.clone(),
            config.gateway.clone(),
            audit.clone(),
        )?);
        tracing::info!(address = %config.pg_listen, "postgres gateway listening");
        let mut mysql_config = config.gateway.clone();
        mysql_config.port = config.mysql_listen.port();
        mysql_config.allow_plaintext = false;
        let mysql = Arc::new(latchkey_my_gateway::gateway(
            state.clone(),
            tls.clone(),
            mysql_config,
            audit.clone(),
        )?);
        tracing::info!(address = %config.mysql_listen, "mysql gateway listening");
        let (weak_pg, weak_my) = (Arc::downgrade(&gateway), Arc::downgrade(&mysql));
        state.metrics.registry.gauge_fn(
            "latchkey_pool_idle_connections",
            "Idle upstream connections kept for session pooling.",
            move || {
                let pg = weak_pg.upgrade().map_or(0, |g| g.pooled_connections());
                let my = weak_my.upgrade().map_or(0, |g| g.pooled_connections());
                i64::try_from(pg + my).unwrap_or(i64::MAX)
            },
        )?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let pg = tokio::spawn(gateway.clone().serve(pg_listener, stopped(stop_rx.clone())));
        let my = tokio::spawn(
            mysql
                .clone()
                .serve(mysql_listener, stopped(stop_rx.clone())),
        );
        if let Some(addr) = config.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            tracing::info!(address = %addr, "metrics listening (plain HTTP)");
            tokio::spawn(latchkey_server::http::serve_metrics(
                state.clone(),
                listener,
                stopped(stop_rx.clone()),
            ));
        }
        let refresher = state.clone();
        let gateway_refresher = gateway.clone();
        let mysql_refresher = mysql.clone();
        let rotation = config.cluster_key_rotation;
        let master_key = dir.master_key();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(std::time::Duration::from_secs(REVOCATION_REFRESH_SECS));
            loop {
                tick.tick().await;
                let s = refresher.clone();
                let every = i64::try_from(rotation.as_secs())
                    .unwrap_or(i64::MAX)
                    .max(60);
                let master = master_key.clone();
                let gw = gateway_refresher.clone();
                let my = mysql_refresher.clone();
                let refreshed = move || -> anyhow::Result<()> {
                    gw.reload_databases()?;
                    my.reload_databases()?;
                    // A master key added by `latchkey rotate-master-key`.
                    s.store.set_vault(load_vault(&master)?)?;
                    s.reload_revocations()?;
                    // Ends sessions whose credential was just revoked.
                    gw.maintain();
                    my.maintain();
                    s.refresh_cluster_keys(latchkey_identity::clock::system_now(), every)?;
                    Ok(())
                };
                match tokio::task::spawn_blocking(refreshed).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "refreshing keys and revocations failed")
                    }
                    Err(e) => tracing::warn!(error = %e, "refreshing keys and revocations failed"),
                }
            }
        });
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        };
        latchkey_server::http::serve(state, listener, tls, config.api.clone(), shutdown).await?;
        pg.await??;
        my.await??;
        audit.close();
        anyhow::Ok(())
    })?;
    Ok(exit::OK)
}

/// `latchkey rotate-master-key`.
#[derive(Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// How long to give running servers to take up a key change (they
    /// re-read master.key every 5 seconds).
    #[arg(long, default_value = "11s", value_parser = humantime::parse_duration)]
    settle: std::time::Duration,
}

pub fn run_rotate_master_key(args: &RotateArgs) -> Result<u8> {
    let config = args.server.resolve()?;
    let dir = DataDir::new(&config.data_dir);
    let (id, count) = rotate_master_key(&dir, args.settle, |step| eprintln!("latchkey: {step}"))?;
    println!("master key {id}: {count} secrets re-wrapped");
    Ok(exit::OK)
}
