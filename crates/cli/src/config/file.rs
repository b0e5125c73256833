//! `latchkey.toml`: its tables parsed into a [`Layer`] (lifting the flat
//! keys of earlier versions into their sections, with a warning each), the
//! `[detection]` table with the rule thresholds of `crates/detect`, and the
//! `[[databases]]` to register.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess};
use serde::{Deserialize, Deserializer, Serialize};

use super::ConfigError;
use super::sections::{
    ApiArgs, AuditArgs, DetectionArgs, Dur, GatewayArgs, GeneralArgs, Layer, WebhookArgs,
};

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
    audit_max_queue: usize => audit.max_queue;
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
    /// Statement policy: `off` (the default), `audit` or `enforce`.
    #[serde(default)]
    pub statement_policy: String,
    /// Upstream passwords to store: database user to the name of the
    /// environment variable holding that user's password (the name, not
    /// the password, is all the configuration holds).
    #[serde(default)]
    pub password_env: BTreeMap<String, String>,
    /// How server connections are shared (`[databases.pooling]`: `mode =
    /// "transaction"`, `size`, `reserve`, `reserve_after_ms`,
    /// `queue_timeout_ms`, `idle_timeout_s`, `lifetime_s`,
    /// `idle_transaction_timeout_s`,
    /// `session_state = "pin" | "refuse"`, `user_modes = { admin =
    /// "session" }`); session pooling when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<latchkey_store::Pooling>,
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
pub(super) struct File {
    pub(super) layer: Layer,
    pub(super) rules: Option<latchkey_detect::DetectConfig>,
    /// `[detection]` as written, for printing.
    pub(super) rules_table: toml::Table,
    pub(super) databases: Vec<DatabaseConfig>,
}

pub(super) fn parse_file(
    path: &Path,
    text: &str,
    warnings: &mut Vec<String>,
) -> Result<File, ConfigError> {
    let parse_error = |source: toml::de::Error| ConfigError::Parse {
        path: path.to_owned(),
        at: super::where_in(text, &source),
        source: Box::new(source),
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
