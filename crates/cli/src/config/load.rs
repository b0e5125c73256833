//! Loading the configuration: the layers applied in order of precedence
//! (defaults, `latchkey.toml`, the deprecated `LATCHKEY_PG_*` variables,
//! then clap's variables and flags), checked and turned into the runtime
//! types of [`Config`].

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use latchkey_server::bootstrap::{DataDir, load_vault};

use super::file::{DatabaseConfig, parse_file};
use super::sections::{Layer, boolish};
use super::settings::Settings;
use super::{ConfigError, invalid};

/// Reads an environment variable (a parameter, for tests).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The deprecated `LATCHKEY_PG_*` variables, as a layer below the current
/// names (clap reads those, with the flags).
fn legacy_env(env: EnvLookup<'_>, warnings: &mut Vec<String>) -> Result<Layer, ConfigError> {
    fn parse<T: FromStr>(var: &'static str, text: &str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        text.parse().map_err(|e: T::Err| ConfigError::Env {
            var,
            message: e.to_string(),
        })
    }
    /// The deprecation warning: `LATCHKEY_PG_X` is now `LATCHKEY_GATEWAY_X`,
    /// or `LATCHKEY_POSTGRES_X` for PostgreSQL's own settings.
    fn renamed(var: &str, path: &str) -> String {
        let suffix = var.strip_prefix("LATCHKEY_PG_").unwrap_or(var);
        let section = if path.contains("postgres") {
            "POSTGRES"
        } else {
            "GATEWAY"
        };
        format!("${var} is deprecated; use $LATCHKEY_{section}_{suffix}")
    }
    let mut layer = Layer::default();
    macro_rules! vars {
        ($($var:literal => $($path:ident).+ $(, $map:expr)?;)*) => {$(
            if let Some(text) = env($var) {
                warnings.push(renamed($var, stringify!($($path).+)));
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
    /// A PostgreSQL store shared by several nodes (none: the embedded one).
    pub store: Option<latchkey_store::postgres::PgLocation>,
    pub listen: SocketAddr,
    pub region: String,
    pub server_names: Vec<String>,
    pub cluster_key_rotation: Duration,
    /// How long sessions may go on after SIGTERM.
    pub drain_timeout: Duration,
    /// How long a node takes connections after it stops being ready.
    pub drain_delay: Duration,
    /// How long cached keys and policies serve while the store does not answer.
    pub store_outage_grace: Duration,
    /// How often `serve` runs the security checks.
    pub security_checks_every: Duration,
    /// Whether a check in error raises a finding.
    pub security_check_findings: bool,
    /// How often `serve` verifies its own trail (zero: never).
    pub audit_verify_every: Duration,
    pub postgres_listen: SocketAddr,
    pub mysql_listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    /// The token service's timeouts, connection caps and `/metrics`.
    pub api: latchkey_server::http::ApiLimits,
    /// The web console's session limits; `None` when turned off.
    pub console: Option<latchkey_console::session::SessionLimits>,
    /// Detection rules; `None` when turned off.
    pub detection: Option<latchkey_detect::DetectConfig>,
    pub webhook: Option<latchkey_webhook::WebhookConfig>,
    /// Which rotation webhooks secrets may name, and the key that signs
    /// their steps; none: no rotation by webhook.
    pub rotation_webhooks: Option<RotationWebhooks>,
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
        let dir = self.data();
        let vault = load_vault(&dir.master_key()).with_context(|| {
            format!(
                "no usable data directory at {} (run latchkey init)",
                dir.root.display()
            )
        })?;
        Ok(dir.open_store(vault)?)
    }

    /// The data directory, with the shared store when there is one.
    pub fn data(&self) -> DataDir {
        DataDir::new(&self.data_dir).with_store(self.store.clone())
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

    pub(super) fn resolve_with(
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
        let legacy = legacy_env(env, warnings)?;
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
    let mut postgres = latchkey_gateway::GatewayConfig::new(
        &general.region,
        gw.postgres.token_port.unwrap_or(gw.postgres.listen.port()),
    );
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
    if gw.startup_timeout.0.is_zero() {
        // Every login would time out before its first byte.
        return invalid("[gateway] startup_timeout must be more than 0s");
    }
    postgres.startup_timeout = gw.startup_timeout.0;
    postgres.max_message_size = gw.max_message_size;
    if gw.large_message_memory == 0 {
        return invalid("[gateway] large_message_memory must be more than 0");
    }
    // One budget for both gateways (the clone below shares it).
    postgres.large_messages = latchkey_gateway::MessageBudget::new(gw.large_message_memory);
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
    mysql.port = gw.mysql.token_port.unwrap_or(gw.mysql.listen.port());
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
    audit.max_queue = audit_s.max_queue.max(1);

    let detection = settings
        .detection
        .enabled
        .then(|| rules.unwrap_or_default());
    let webhook = match &settings.webhook.url {
        Some(url) => {
            let secret = webhook_secret(
                env,
                settings.webhook.secret_file.as_ref(),
                "LATCHKEY_WEBHOOK_SECRET",
                "a webhook needs a secret: --webhook-secret-file or LATCHKEY_WEBHOOK_SECRET",
            )?;
            let mut w = latchkey_webhook::WebhookConfig::new(url, secret);
            w.ca_file = settings.webhook.ca.clone();
            Some(w)
        }
        None => None,
    };
    let rotation_webhooks = match &settings.webhook.rotation_allow {
        Some(list) => {
            let allow: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            if let Some(bad) = allow.iter().find(|p| {
                let rest = p
                    .strip_prefix("https://")
                    .or_else(|| p.strip_prefix("http://"))
                    .unwrap_or_default();
                rest.split(['/', '?', '#'])
                    .next()
                    .unwrap_or_default()
                    .is_empty()
            }) {
                return invalid(format!(
                    "--rotation-webhook-allow {bad:?}: each prefix is an http(s) URL with a host"
                ));
            }
            let secret = webhook_secret(
                env,
                settings.webhook.rotation_secret_file.as_ref(),
                "LATCHKEY_ROTATION_WEBHOOK_SECRET",
                "rotation webhooks need a signing secret of their own: --rotation-webhook-secret-file or LATCHKEY_ROTATION_WEBHOOK_SECRET",
            )?;
            Some(RotationWebhooks {
                allow,
                secret,
                ca: settings.webhook.ca.clone(),
            })
        }
        None => None,
    };
    Ok(Config {
        data_dir: general.data_dir.clone(),
        store: general
            .store
            .as_ref()
            .map(|url| url.location().map_err(ConfigError::Invalid))
            .transpose()?,
        listen: api.listen,
        region: general.region.clone(),
        server_names: general.server_names.clone(),
        cluster_key_rotation: general.cluster_key_rotation.0,
        drain_timeout: general.drain_timeout.0,
        drain_delay: general.drain_delay.0,
        store_outage_grace: general.store_outage_grace.0,
        security_checks_every: general.security_checks_every.0,
        audit_verify_every: audit_s.verify_every.0,
        security_check_findings: general.security_check_findings,
        postgres_listen: gw.postgres.listen,
        mysql_listen: gw.mysql.listen,
        metrics_listen: general.metrics_listen,
        api: api_limits,
        console: api
            .console
            .then(|| latchkey_console::session::SessionLimits {
                idle: i64::try_from(api.console_idle_timeout.0.as_secs()).unwrap_or(i64::MAX),
                absolute: i64::try_from(api.console_session_duration.0.as_secs())
                    .unwrap_or(i64::MAX),
                ..latchkey_console::session::SessionLimits::default()
            }),
        detection,
        webhook,
        rotation_webhooks,
        audit,
        postgres_gateway: postgres,
        mysql_gateway: mysql,
        databases: settings.databases.clone(),
        settings,
    })
}

/// `[webhook] rotation_allow` and its signing secret.
#[derive(Clone)]
pub struct RotationWebhooks {
    pub allow: Vec<String>,
    pub secret: zeroize::Zeroizing<Vec<u8>>,
    pub ca: Option<PathBuf>,
}

impl std::fmt::Debug for RotationWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationWebhooks")
            .field("allow", &self.allow)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A webhook signing secret from `file`, else the environment variable
/// `var`; at least 16 characters.
fn webhook_secret(
    env: EnvLookup<'_>,
    file: Option<&PathBuf>,
    var: &str,
    missing: &str,
) -> Result<zeroize::Zeroizing<Vec<u8>>, ConfigError> {
    let secret = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?
            .trim()
            .to_owned(),
        None => env(var).ok_or_else(|| ConfigError::Invalid(missing.into()))?,
    };
    if secret.len() < 16 {
        return Err(ConfigError::Invalid(
            "a webhook secret must be at least 16 characters".into(),
        ));
    }
    Ok(zeroize::Zeroizing::new(secret.into_bytes()))
}
