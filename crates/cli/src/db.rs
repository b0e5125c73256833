//! `latchkey db register|list|remove|set-password|ca`: the databases
//! behind the gateway. They act on the data directory's store; a running
//! server picks changes up within seconds. `[[databases]]` tables in
//! `latchkey.toml` register the same way ([`sync_databases`]).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use latchkey_gateway::dbca::{DbCa, pem_fingerprints};
use latchkey_gateway::net::{check_tls_settings, register_database};
use latchkey_store::{
    Database, ObjectKind, ObjectTag, RotationSchedule, StatementPolicy, Store, TlsMode,
    UpstreamAuth,
};
use serde_json::json;
use zeroize::Zeroizing;

use crate::config::{DatabaseConfig, ServerArgs};
use crate::exit;
use crate::output::{OutputFormat, print_json, print_rows};

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Register a database: the endpoint names tokens are signed for, and the real server.
    Register(RegisterArgs),
    /// List registered databases.
    List(ListArgs),
    /// Remove a registered database.
    Remove(NameArgs),
    /// Store (sealed) the password the gateway uses upstream for a database user; read from standard input.
    SetPassword(PasswordArgs),
    /// Print Latchkey's database CA certificate (made on first use), for PostgreSQL's ssl_ca_file.
    ///
    /// Databases registered with --auth cert are logged in to with client
    /// certificates from this CA whose common name is the database user.
    /// On the PostgreSQL server: ssl = on, ssl_ca_file = this certificate,
    /// and a pg_hba.conf line such as `hostssl all all 0.0.0.0/0 cert`.
    Ca(CaArgs),
    /// Tag a table, view, sequence or function (or one of its columns) with classification tags; policies see an object's tags as sql:ObjectTag/KEY.
    ///
    /// Tags go on one object (--object SCHEMA.NAME, for MySQL DATABASE.TABLE),
    /// or on many from a file (--from-file, CSV `object,column,key,value` with
    /// an optional header, or TOML `[[tag]]` tables with those keys).
    /// Column tags are kept for masking; statement policy reads object tags.
    Classify(ClassifyArgs),
    /// List the classification tags of a database's objects.
    Classification(ClassificationArgs),
}

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The registered database.
    #[arg(long = "db")]
    database: String,
    /// SCHEMA.NAME (PostgreSQL) or DATABASE.TABLE (MySQL).
    #[arg(long, required_unless_present_any = ["from_file", "suggest"])]
    object: Option<String>,
    /// A column of the object.
    #[arg(long)]
    column: Option<String>,
    /// table (tables, views, sequences) or function.
    #[arg(long, default_value = "table", value_parser = ["table", "function"])]
    kind: String,
    /// Tag KEY=VALUE (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Remove these tag keys instead (repeatable).
    #[arg(long = "remove", conflicts_with_all = ["tags", "from_file"])]
    remove: Vec<String>,
    /// Read many tags from a CSV or TOML file.
    #[arg(long, value_name = "FILE", conflicts_with = "object")]
    from_file: Option<std::path::PathBuf>,
    /// Propose tags from the database's column names and types (card
    /// numbers, e-mail addresses, phone numbers, national ids, dates of
    /// birth, stored credentials), read through the gateway's upstream
    /// login as --user. Nothing is tagged: review the proposals (--write
    /// FILE saves them as CSV) and import them with --from-file.
    #[arg(long, requires = "user", conflicts_with_all = ["object", "from_file", "tags", "remove"])]
    suggest: bool,
    /// The database user to read the catalogue as (with --suggest).
    #[arg(long)]
    user: Option<String>,
    /// The PostgreSQL database to read (with --suggest) [default: --db].
    #[arg(long = "database")]
    dbname: Option<String>,
    /// Write the proposals as a CSV file to review and import (with --suggest).
    #[arg(long, value_name = "FILE", requires = "suggest")]
    write: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct ClassificationArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Only this registered database.
    #[arg(long = "db")]
    database: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct RegisterArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// A name for the database.
    #[arg(long)]
    name: String,
    /// Host name clients sign tokens for (repeatable), e.g. orders.db.internal.
    #[arg(long = "endpoint", required = true)]
    endpoints: Vec<String>,
    /// The real server, host:port.
    #[arg(long)]
    upstream: String,
    /// postgres or mysql (MySQL and MariaDB).
    #[arg(long, default_value = "postgres", value_parser = ["postgres", "mysql"])]
    engine: String,
    /// How the gateway logs in upstream: password (stored sealed, see set-password), cert (a client certificate from Latchkey's database CA, see `db ca`; needs --upstream-tls require or stricter) or trust (development only).
    #[arg(long, default_value = "password", value_parser = ["password", "cert", "trust"])]
    auth: String,
    /// TLS to the real server, as libpq's sslmode: disable, prefer (TLS if offered), require (TLS, certificate not checked), verify-ca (certificate chains to --upstream-ca), verify-full (and names the upstream host).
    #[arg(long, default_value = "prefer", value_parser = ["disable", "prefer", "require", "verify-ca", "verify-full"])]
    upstream_tls: String,
    /// PEM file with the CA certificate(s) the real server's certificate must chain to (verify-ca, verify-full); stored, so every node has it.
    #[arg(long, value_name = "FILE")]
    upstream_ca: Option<std::path::PathBuf>,
    /// If the database is registered already, replace its settings (its resource id and stored passwords stay).
    #[arg(long)]
    update: bool,
    /// Tag KEY=VALUE (repeatable); policies see it as aws:ResourceTag/KEY.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Statement policy: off (no cost; the database's grants decide), audit (decide each statement by sql: actions and record it, refuse nothing) or enforce (refuse what policy denies).
    #[arg(long, default_value = "off", value_parser = ["off", "audit", "enforce"])]
    statement_policy: String,
    /// Rotate the upstream passwords Latchkey stores for this database (--auth password) this often, in whole days (e.g. 30d): `db set-password` then keeps each user's password in a Secrets Manager secret, latchkey/db/NAME/USER, which `serve` rotates on schedule (and `aws secretsmanager rotate-secret` at once).
    #[arg(long, value_name = "DAYS", value_parser = parse_days)]
    rotate_every: Option<u32>,
    /// With --rotate-every: rotate by alternating users (USER and USER_clone take turns, so there is never a moment without a valid password), creating the clone and setting passwords as this privileged login, whose password `db set-password` stores. Without it, each user's password is changed in place (single user).
    #[arg(long, value_name = "USER", requires = "rotate_every")]
    rotation_master_user: Option<String>,
    #[command(flatten)]
    pooling: PoolingArgs,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// How the gateway shares the database's server connections.
#[derive(Args, Debug, Default)]
pub struct PoolingArgs {
    /// session (a server connection per client session, reset and pooled when it ends) or transaction (PostgreSQL: a server connection per transaction, so thousands of clients share a few; session state such as SET or LISTEN pins a client to its connection).
    #[arg(long, default_value = "session", value_parser = ["session", "transaction"])]
    pool_mode: String,
    /// USER=MODE (repeatable): this database user is pooled in MODE instead of --pool-mode.
    #[arg(long = "pool-user-mode", value_name = "USER=MODE")]
    user_modes: Vec<String>,
    /// Transaction mode: server connections per (database user, database, startup parameters).
    #[arg(long, default_value_t = 20)]
    pool_size: u32,
    /// Transaction mode: connections beyond --pool-size for clients that waited --reserve-pool-timeout.
    #[arg(long, default_value_t = 0)]
    reserve_pool: u32,
    /// Transaction mode: how long a client waits before the reserve opens (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    reserve_pool_timeout: std::time::Duration,
    /// Transaction mode: how long a client waits for a server connection before FATAL 53300.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pool_queue_timeout: std::time::Duration,
    /// Transaction mode: an idle server connection is closed after this.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    server_idle_timeout: std::time::Duration,
    /// Transaction mode: a server connection is closed after this, once idle.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    server_lifetime: std::time::Duration,
    /// Transaction mode: a client that keeps its server connection waiting this long inside a transaction (or a batch without Sync) is ended with FATAL 25P03 and the connection closed; 0 never (e.g. 60s).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    idle_transaction_timeout: std::time::Duration,
    /// Transaction mode: pin (a client that leaves session state keeps its server connection) or refuse (the statement fails with 0A000).
    #[arg(long, default_value = "pin", value_parser = ["pin", "refuse"])]
    session_state: String,
}

impl PoolingArgs {
    fn pooling(&self) -> Result<latchkey_store::Pooling> {
        let millis = |d: std::time::Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let secs = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        let user_modes = self
            .user_modes
            .iter()
            .map(|m| {
                let (user, mode) = m
                    .split_once('=')
                    .with_context(|| format!("--pool-user-mode {m:?} must be USER=MODE"))?;
                Ok((user.to_owned(), mode.parse()?))
            })
            .collect::<Result<_>>()?;
        Ok(latchkey_store::Pooling {
            mode: self.pool_mode.parse()?,
            user_modes,
            size: self.pool_size,
            reserve: self.reserve_pool,
            reserve_after_ms: millis(self.reserve_pool_timeout),
            queue_timeout_ms: millis(self.pool_queue_timeout),
            idle_timeout_s: secs(self.server_idle_timeout),
            lifetime_s: secs(self.server_lifetime),
            // Rounded up: 500ms is a timeout, not "off".
            idle_transaction_timeout_s: secs(self.idle_transaction_timeout)
                .saturating_add(u32::from(self.idle_transaction_timeout.subsec_nanos() > 0)),
            session_state: self.session_state.parse()?,
        })
    }
}

/// `30d` (or `30`): whole days, 1 to 1000.
fn parse_days(text: &str) -> std::result::Result<u32, String> {
    let days = match humantime::parse_duration(text) {
        Ok(d) if d.as_secs() % 86_400 == 0 => d.as_secs() / 86_400,
        Ok(_) => return Err("rotation is in whole days, e.g. 30d".into()),
        Err(_) => text
            .parse::<u64>()
            .map_err(|_| format!("{text:?} is not a number of days, e.g. 30d"))?,
    };
    u32::try_from(days)
        .ok()
        .filter(|d| (1..=latchkey_store::MAX_ROTATION_DAYS).contains(d))
        .ok_or_else(|| {
            format!(
                "rotation must be every 1 to {} days",
                latchkey_store::MAX_ROTATION_DAYS
            )
        })
}

#[derive(Args, Debug)]
pub struct CaArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// text prints the PEM certificate alone.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct NameArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[arg(long)]
    name: String,
}

#[derive(Args, Debug)]
pub struct PasswordArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The registered database.
    #[arg(long)]
    name: String,
    /// The database user.
    #[arg(long)]
    user: String,
}

fn open(server: &ServerArgs) -> Result<(Store, String)> {
    let config = server.resolve()?;
    Ok((config.open_store()?, config.region))
}

fn describe(db: &Database, account: &str, region: &str) -> serde_json::Value {
    json!({
        "name": db.name,
        "engine": db.engine.as_str(),
        "endpoints": db.endpoints,
        "upstream": db.upstream,
        "auth": db.upstream_auth.as_str(),
        "upstreamTls": db.upstream_tls.as_str(),
        "upstreamCaSha256": db.upstream_ca.as_deref().map(pem_fingerprints).unwrap_or_default(),
        "resourceId": db.resource_id,
        "statementPolicy": db.statement_policy.as_str(),
        "rotateEveryDays": db.rotation.as_ref().map(|r| r.every_days),
        "rotationStrategy": db.rotation.as_ref().map(|r| if r.master_user.is_some() { "alternating-users" } else { "single-user" }),
        "rotationMasterUser": db.rotation.as_ref().and_then(|r| r.master_user.as_deref()),
        "pooling": {
            "mode": db.pooling.mode.as_str(),
            "userModes": db.pooling.user_modes.iter().map(|(u, m)| (u.clone(), json!(m.as_str()))).collect::<serde_json::Map<_, _>>(),
            "size": db.pooling.size,
            "reserve": db.pooling.reserve,
            "reserveAfterMs": db.pooling.reserve_after_ms,
            "queueTimeoutMs": db.pooling.queue_timeout_ms,
            "serverIdleTimeoutS": db.pooling.idle_timeout_s,
            "serverLifetimeS": db.pooling.lifetime_s,
            "idleTransactionTimeoutS": db.pooling.idle_transaction_timeout_s,
            "sessionState": db.pooling.session_state.as_str(),
        },
        "sqlArnPrefix": format!("arn:aws:sql:{region}:{account}:table/{}/", db.resource_id),
        "connectArnPrefix": format!("arn:aws:rds-db:{region}:{account}:dbuser:{}/", db.resource_id),
        "tags": db.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
    })
}

fn print_db(db: &serde_json::Value, output: OutputFormat) -> Result<()> {
    match output {
        OutputFormat::Json => print_json(db),
        OutputFormat::Text => {
            let s = |k: &str| db[k].as_str().unwrap_or_default().to_owned();
            print_rows(&[
                ("name", s("name")),
                ("engine", s("engine")),
                (
                    "endpoints",
                    db["endpoints"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|e| e.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                ),
                ("upstream", s("upstream")),
                ("upstream TLS", s("upstreamTls")),
                (
                    "upstream CA",
                    db["upstreamCaSha256"]
                        .as_array()
                        .filter(|a| !a.is_empty())
                        .map_or_else(
                            || "-".to_owned(),
                            |a| {
                                a.iter()
                                    .filter_map(|f| f.as_str())
                                    .map(|f| format!("SHA256 {f}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            },
                        ),
                ),
                ("auth", s("auth")),
                (
                    "rotation",
                    match db["rotateEveryDays"].as_u64() {
                        Some(days) => format!("every {days} days, {}", s("rotationStrategy")),
                        None => "-".to_owned(),
                    },
                ),
                ("pooling", pooling_text(&db["pooling"])),
                ("resource id", s("resourceId")),
                ("connect ARN", format!("{}USER", s("connectArnPrefix"))),
            ]);
            Ok(())
        }
    }
}

/// `session`, or `transaction, 20 (+0 reserve), queue 30000 ms` and the
/// users pooled otherwise.
fn pooling_text(p: &serde_json::Value) -> String {
    let mode = p["mode"].as_str().unwrap_or_default();
    let mut text = if mode == "transaction" {
        format!(
            "transaction, {} connections (+{} reserve), queue {} ms, session state: {}",
            p["size"],
            p["reserve"],
            p["queueTimeoutMs"],
            p["sessionState"].as_str().unwrap_or_default()
        )
    } else {
        mode.to_owned()
    };
    if let Some(users) = p["userModes"].as_object().filter(|u| !u.is_empty()) {
        let users: Vec<String> = users
            .iter()
            .map(|(u, m)| format!("{u}={}", m.as_str().unwrap_or_default()))
            .collect();
        text.push_str(&format!("; users: {}", users.join(", ")));
    }
    text
}

pub fn run(cmd: DbCommand) -> Result<u8> {
    match cmd {
        DbCommand::Register(a) => {
            let (store, region) = open(&a.server)?;
            let tags = a
                .tags
                .iter()
                .map(|t| {
                    t.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .with_context(|| format!("--tag {t:?} must be KEY=VALUE"))
                })
                .collect::<Result<Vec<_>>>()?;
            let upstream_ca = a.upstream_ca.as_deref().map(read_ca).transpose()?;
            // clap allows only known values; parsing types them.
            let wanted = Database {
                name: a.name.clone(),
                engine: a.engine.parse()?,
                endpoints: a.endpoints.clone(),
                upstream: a.upstream.clone(),
                upstream_auth: a.auth.parse()?,
                upstream_tls: a.upstream_tls.parse()?,
                upstream_ca,
                resource_id: String::new(),
                tags,
                statement_policy: a.statement_policy.parse()?,
                rotation: a.rotate_every.map(|every_days| RotationSchedule {
                    every_days,
                    master_user: a.rotation_master_user.clone(),
                }),
                pooling: a.pooling.pooling()?,
            };
            let now = latchkey_identity::clock::system_now();
            let db = register_database(&store, &wanted, a.update, now)?;
            print_db(&describe(&db, store.account_id(), &region), a.output)?;
        }
        DbCommand::List(a) => {
            let (store, region) = open(&a.server)?;
            let dbs: Vec<_> = store
                .list_databases()?
                .iter()
                .map(|d| describe(d, store.account_id(), &region))
                .collect();
            match a.output {
                OutputFormat::Json => print_json(&json!({ "databases": dbs }))?,
                OutputFormat::Text => {
                    for d in &dbs {
                        print_db(d, OutputFormat::Text)?;
                        println!();
                    }
                }
            }
        }
        DbCommand::Remove(a) => {
            let (store, _) = open(&a.server)?;
            store.remove_database(&a.name)?;
        }
        DbCommand::SetPassword(a) => {
            let (store, region) = open(&a.server)?;
            let mut password = Zeroizing::new(String::new());
            std::io::stdin()
                .take(4096)
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!("no password on standard input");
            }
            // Checked before anything is written, so a refusal leaves the
            // gateway's login and the secret as they were.
            let db = store.get_database(&a.name)?;
            latchkey_rotator::managed::check_settable(&store, &db, &a.user)?;
            store.set_database_password(&a.name, &a.user, password)?;
            if let Some(schedule) = &db.rotation
                && schedule.master_user.as_deref() != Some(a.user.as_str())
            {
                let arn = latchkey_rotator::managed::put_database_secret(
                    &store,
                    &region,
                    &db,
                    &a.user,
                    password,
                    latchkey_identity::clock::system_now(),
                )?;
                eprintln!(
                    "latchkey: {}'s password is kept in secret {arn}, rotated every {} days",
                    a.user, schedule.every_days
                );
            }
        }
        DbCommand::Classify(a) => classify(a)?,
        DbCommand::Classification(a) => {
            let (store, _) = open(&a.server)?;
            if let Some(name) = &a.database {
                store.get_database(name)?;
            }
            let tags = store.object_tags(a.database.as_deref())?;
            print_tags(&tags, a.output)?;
        }
        DbCommand::Ca(a) => {
            let (store, _) = open(&a.server)?;
            let ca = DbCa::load_or_create(&store, latchkey_identity::clock::system_now())?;
            match a.output {
                OutputFormat::Text => print!("{}", ca.cert_pem()),
                OutputFormat::Json => print_json(&json!({
                    "certificate": ca.cert_pem(),
                    "sha256": pem_fingerprints(ca.cert_pem()).first(),
                    "pgHba": "hostssl all all 0.0.0.0/0 cert",
                }))?,
            }
        }
    }
    Ok(exit::OK)
}

/// A CA certificate file, checked.
fn read_ca(path: &Path) -> Result<String> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading the upstream CA {}", path.display()))?;
    latchkey_gateway::dbca::parse_pem_certs(&pem)
        .with_context(|| format!("upstream CA {}", path.display()))?;
    Ok(pem)
}

impl DatabaseConfig {
    /// The database this table describes (no resource id yet), checked.
    fn database(&self) -> Result<Database> {
        let upstream_ca = match &self.upstream_ca {
            None => None,
            Some(text) if text.contains("-----BEGIN") => {
                latchkey_gateway::dbca::parse_pem_certs(text).context("upstream_ca")?;
                Some(text.clone())
            }
            Some(path) => Some(read_ca(Path::new(path))?),
        };
        // Parsed in the order the settings were always checked in, so the
        // first mistake reported stays the same.
        let engine = self.engine.parse()?;
        let upstream_auth = self.auth.parse()?;
        // An empty mode has always meant the default.
        let upstream_tls = match self.upstream_tls.as_str() {
            "" => TlsMode::default(),
            mode => mode.parse()?,
        };
        let statement_policy = match self.statement_policy.as_str() {
            "" => StatementPolicy::default(),
            mode => mode.parse()?,
        };
        let db = Database {
            statement_policy,
            name: self.name.clone(),
            engine,
            endpoints: self
                .endpoints
                .iter()
                .map(|e| e.to_ascii_lowercase())
                .collect(),
            upstream: self.upstream.clone(),
            upstream_auth,
            upstream_tls,
            upstream_ca,
            resource_id: String::new(),
            tags: self
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            rotation: None,
            pooling: self.pooling.clone().unwrap_or_default(),
        };
        check_tls_settings(&db)?;
        Ok(db)
    }
}

/// The same settings, whatever the order of tags.
fn same_settings(a: &Database, b: &Database) -> bool {
    let sorted = |d: &Database| {
        let mut t = d.tags.clone();
        t.sort();
        t
    };
    Database {
        resource_id: String::new(),
        tags: sorted(a),
        ..a.clone()
    } == Database {
        resource_id: String::new(),
        tags: sorted(b),
        ..b.clone()
    }
}

/// Registers the databases of `latchkey.toml`, or updates registered
/// ones to match (keeping their resource ids, so connect ARNs stay, and
/// their stored passwords), and stores the passwords named by
/// `password_env`. Databases registered otherwise are left alone. Every
/// table is checked before anything changes.
/// Checks the `[[databases]]` tables as `sync_databases` would, storing
/// nothing (for `serve --print-config`).
pub fn check_databases(configs: &[DatabaseConfig]) -> Result<()> {
    for config in configs {
        config
            .database()
            .with_context(|| format!("[[databases]] {:?}", config.name))?;
    }
    Ok(())
}

pub fn sync_databases(store: &Store, configs: &[DatabaseConfig], now: i64) -> Result<()> {
    let mut wanted = Vec::with_capacity(configs.len());
    for config in configs {
        if configs.iter().filter(|c| c.name == config.name).count() > 1 {
            bail!("[[databases]] names {:?} more than once", config.name);
        }
        let db = config
            .database()
            .with_context(|| format!("[[databases]] {:?}", config.name))?;
        let mut passwords = Vec::new();
        for (user, var) in &config.password_env {
            let password = Zeroizing::new(std::env::var(var).with_context(|| {
                format!(
                    "[[databases]] {:?}: the password of {user} should be in ${var}, which is not set",
                    config.name
                )
            })?);
            if password.is_empty() {
                bail!(
                    "[[databases]] {:?}: ${var} (the password of {user}) is empty",
                    config.name
                );
            }
            passwords.push((user.clone(), password));
        }
        wanted.push((db, passwords));
    }
    let existing = store.list_databases()?;
    for (db, passwords) in &wanted {
        match existing.iter().find(|e| e.name == db.name) {
            Some(current) if same_settings(current, db) => {}
            Some(_) => {
                store.update_database(db)?;
                tracing::info!(database = %db.name, "updated from the configuration");
            }
            None => {
                store.register_database(db, now)?;
                tracing::info!(database = %db.name, "registered from the configuration");
            }
        }
        if db.upstream_auth == UpstreamAuth::Cert {
            DbCa::load_or_create(store, now)?;
        }
        for (user, password) in passwords {
            let stored = store.database_password(&db.name, user)?;
            if stored.as_deref().map(String::as_str) != Some(password.as_str()) {
                store.set_database_password(&db.name, user, password)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde::Deserialize;

    use super::*;

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(
            &dir.path().join("store.db"),
            latchkey_store::Vault::new(1, &[5; 32]),
        )
        .unwrap()
    }

    fn parse(text: &str) -> Vec<DatabaseConfig> {
        #[derive(Deserialize)]
        struct File {
            databases: Vec<DatabaseConfig>,
        }
        toml::from_str::<File>(text).unwrap().databases
    }

    #[test]
    fn databases_from_the_configuration_are_registered_then_updated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let ca = DbCa::load_or_create(&store, 1).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        // set_var is unsafe in edition 2024 (and this workspace forbids
        // unsafe code), so PATH, which is always set, stands in for a
        // password variable.
        let first = parse(&format!(
            r#"
[[databases]]
name = "orders"
endpoints = ["Orders.Internal"]
upstream = "db.internal:5432"
tags = {{ env = "dev", team = "a" }}
password_env = {{ app = "PATH" }}

[[databases]]
name = "billing"
endpoints = ["billing.internal"]
upstream = "10.0.0.9:5432"
upstream_tls = "verify-full"
upstream_ca = "{}"
auth = "cert"
"#,
            ca_file.display()
        ));
        sync_databases(&store, &first, 100).unwrap();
        let orders = store.get_database("orders").unwrap();
        assert_eq!(orders.engine, latchkey_store::Engine::Postgres);
        assert_eq!(orders.upstream_tls, TlsMode::Prefer);
        assert_eq!(orders.upstream_auth, UpstreamAuth::Password);
        assert_eq!(orders.endpoints, ["orders.internal"]);
        assert_eq!(
            store
                .database_password("orders", "app")
                .unwrap()
                .unwrap()
                .as_str(),
            std::env::var("PATH").unwrap()
        );
        let billing = store.get_database("billing").unwrap();
        assert_eq!(billing.upstream_tls, TlsMode::VerifyFull);
        assert_eq!(billing.upstream_ca.as_deref(), Some(ca.cert_pem()));
        assert_eq!(billing.upstream_auth, UpstreamAuth::Cert);

        // Unchanged: nothing happens. Changed: same resource id.
        sync_databases(&store, &first, 200).unwrap();
        assert_eq!(store.get_database("orders").unwrap(), orders);
        let second = parse(
            r#"
[[databases]]
name = "orders"
endpoints = ["orders.internal", "orders2.internal"]
upstream = "db2.internal:5432"
upstream_tls = "require"
tags = { env = "prod" }
"#,
        );
        sync_databases(&store, &second, 300).unwrap();
        let changed = store.get_database("orders").unwrap();
        assert_eq!(changed.resource_id, orders.resource_id);
        assert_eq!(changed.upstream, "db2.internal:5432");
        assert_eq!(changed.upstream_tls, TlsMode::Require);
        assert_eq!(changed.tags, [("env".to_owned(), "prod".to_owned())]);
        assert_eq!(changed.endpoints.len(), 2);
        // Not in the file any more: left alone.
        assert!(store.get_database("billing").is_ok());

        // Mistakes are refused before anything changes, with the table named.
        let err = |text: &str| {
            format!(
                "{:#}",
                sync_databases(&store, &parse(text), 400).unwrap_err()
            )
        };
        assert!(
            err(r#"
[[databases]]
name = "orders"
endpoints = ["orders.internal"]
upstream = "db.internal:5432"
auth = "cert"
"#)
            .contains("cert needs upstream TLS")
        );
        assert!(
            err(r#"
[[databases]]
name = "x"
endpoints = ["x"]
upstream = "x:1"
upstream_tls = "verify-ca"
upstream_ca = "/nonexistent/ca.pem"
"#)
            .contains("reading the upstream CA /nonexistent/ca.pem")
        );
        assert!(
            err(r#"
[[databases]]
name = "x"
endpoints = ["x"]
upstream = "x:1"
password_env = { app = "LATCHKEY_TEST_SURELY_UNSET" }
"#)
            .contains("LATCHKEY_TEST_SURELY_UNSET, which is not set")
        );
        assert_eq!(store.get_database("orders").unwrap(), changed);
        assert!(store.get_database("x").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct File {
            databases: Vec<DatabaseConfig>,
        }
        let err = toml::from_str::<File>(
            "[[databases]]\nname = \"a\"\nendpoints = []\nupstream = \"a:1\"\nupstream_ssl = \"require\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("upstream_ssl"), "{err}");
    }
}

/// `db classify`: tags from the command line or a file, or removals.
fn classify(a: ClassifyArgs) -> Result<()> {
    let (store, _) = open(&a.server)?;
    store.get_database(&a.database)?;
    let kind: ObjectKind = a.kind.parse()?;
    if a.suggest {
        return suggest(&store, &a);
    }
    if let Some(path) = &a.from_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let tags = parse_tag_file(&a.database, kind, &text)
            .with_context(|| format!("{}", path.display()))?;
        store.tag_objects(&tags)?;
        print_tags(&tags, a.output)?;
        return Ok(());
    }
    let object = a.object.as_deref().unwrap_or_default();
    let target = object_tag(&a.database, kind, object, a.column.as_deref().unwrap_or(""))?;
    if !a.remove.is_empty() {
        let keys: Vec<&str> = a.remove.iter().map(String::as_str).collect();
        let removed = store.untag_object(&target, &keys)?;
        if a.output == OutputFormat::Json {
            print_json(&json!({ "removed": removed }))?;
        }
        return Ok(());
    }
    if a.tags.is_empty() {
        bail!("give --tag KEY=VALUE (or --remove KEY)");
    }
    let tags = a
        .tags
        .iter()
        .map(|t| {
            let (key, value) = t
                .split_once('=')
                .with_context(|| format!("--tag {t:?} must be KEY=VALUE"))?;
            Ok(ObjectTag {
                key: key.to_owned(),
                value: value.to_owned(),
                ..target.clone()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    store.tag_objects(&tags)?;
    print_tags(&tags, a.output)
}

/// A tag target from `SCHEMA.NAME` (quotes allowed around either part).
fn object_tag(database: &str, kind: ObjectKind, object: &str, column: &str) -> Result<ObjectTag> {
    let unquote = |s: &str| {
        s.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| s.strip_prefix('`').and_then(|s| s.strip_suffix('`')))
            .unwrap_or(s)
            .to_owned()
    };
    let Some((schema, name)) = object.split_once('.') else {
        bail!("object {object:?} must be SCHEMA.NAME (for MySQL, DATABASE.TABLE)");
    };
    if schema.is_empty() || name.is_empty() {
        bail!("object {object:?} must be SCHEMA.NAME (for MySQL, DATABASE.TABLE)");
    }
    Ok(ObjectTag {
        database: database.to_owned(),
        kind,
        schema: unquote(schema),
        object: unquote(name),
        column: unquote(column),
        key: String::new(),
        value: String::new(),
    })
}

/// Tags from a CSV file (`object,column,key,value`, an optional header
/// line) or a TOML file (`[[tag]]` tables with `object`, `column`,
/// `key`, `value`, and optionally `kind`).
pub fn parse_tag_file(database: &str, kind: ObjectKind, text: &str) -> Result<Vec<ObjectTag>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        object: String,
        #[serde(default)]
        column: String,
        key: String,
        value: String,
        #[serde(default)]
        kind: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        tag: Vec<Entry>,
    }
    let entry = |e: Entry| -> Result<ObjectTag> {
        let kind = match &e.kind {
            Some(k) => k.parse()?,
            None => kind,
        };
        Ok(ObjectTag {
            key: e.key,
            value: e.value,
            ..object_tag(database, kind, &e.object, &e.column)?
        })
    };
    if text.trim_start().starts_with("[[") {
        let file: File = toml::from_str(text).context("not a TOML file of [[tag]] tables")?;
        return file.tag.into_iter().map(entry).collect();
    }
    let mut out = Vec::new();
    let mut first = true;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        // An optional header, as the first line that is not a comment.
        if std::mem::take(&mut first) && fields.first() == Some(&"object") {
            continue;
        }
        let [object, column, key, value] = fields[..] else {
            bail!(
                "line {}: expected 4 fields (object,column,key,value), found {}",
                i + 1,
                fields.len()
            );
        };
        out.push(
            entry(Entry {
                object: object.to_owned(),
                column: column.to_owned(),
                key: key.to_owned(),
                value: value.to_owned(),
                kind: None,
            })
            .with_context(|| format!("line {}", i + 1))?,
        );
    }
    Ok(out)
}

fn print_tags(tags: &[ObjectTag], output: OutputFormat) -> Result<()> {
    match output {
        OutputFormat::Json => print_json(&json!({
            "tags": tags.iter().map(|t| json!({
                "database": t.database,
                "kind": t.kind.as_str(),
                "object": format!("{}.{}", t.schema, t.object),
                "column": (!t.column.is_empty()).then_some(&t.column),
                "key": t.key,
                "value": t.value,
            })).collect::<Vec<_>>(),
        })),
        OutputFormat::Text => {
            for t in tags {
                let column = if t.column.is_empty() {
                    String::new()
                } else {
                    format!(".{}", t.column)
                };
                println!(
                    "{}\t{}\t{}.{}{column}\t{}={}",
                    t.database, t.kind, t.schema, t.object, t.key, t.value
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod classification_tests {
    use super::*;

    #[test]
    fn tag_files_in_csv_and_toml() {
        let csv = "object,column,key,value\npublic.cards,,classification,restricted\n\npublic.cards,pan,pii,card\n";
        let tags = parse_tag_file("shop", ObjectKind::Table, csv).unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(
            (tags[0].schema.as_str(), tags[0].object.as_str()),
            ("public", "cards")
        );
        assert_eq!(tags[1].column, "pan");
        let toml =
            "[[tag]]\nobject = \"public.f\"\nkey = \"k\"\nvalue = \"v\"\nkind = \"function\"\n";
        let tags = parse_tag_file("shop", ObjectKind::Table, toml).unwrap();
        assert_eq!(tags[0].kind, ObjectKind::Function);
        let err = parse_tag_file("shop", ObjectKind::Table, "a.b,c\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("line 1: expected 4 fields"),
            "{err:#}"
        );
        assert!(parse_tag_file("shop", ObjectKind::Table, "nodot,,k,v\n").is_err());
    }
}

/// `db classify --suggest`: the columns of the database's tables, read as
/// `--user` through the gateway's own upstream login, and the tags they
/// suggest. Nothing is stored.
fn suggest(store: &Store, a: &ClassifyArgs) -> Result<()> {
    use crate::suggest::{Column, suggest, to_csv};
    let db = store.get_database(&a.database)?;
    let user = a.user.as_deref().unwrap_or_default();
    let config = a.server.resolve()?;
    let clusters = store.cluster_keys(latchkey_identity::clock::system_now())?;
    // A second handle on the store for the identity core, which the
    // upstream login reads passwords and the database CA through.
    let state = std::sync::Arc::new(
        latchkey_identity::AppState::new(config.open_store()?, clusters)?
            .with_region(&config.region),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(async {
        match db.engine {
            latchkey_store::Engine::Postgres => {
                latchkey_pg_gateway::upstream::query_text(
                    &state,
                    &db,
                    user,
                    a.dbname.as_deref().unwrap_or(&db.name),
                    "SELECT table_schema, table_name, column_name, data_type \
                     FROM information_schema.columns \
                     WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
                     ORDER BY 1, 2, ordinal_position",
                )
                .await
            }
            latchkey_store::Engine::Mysql => {
                latchkey_my_gateway::upstream::query_text(
                    &state,
                    &db,
                    user,
                    "SELECT table_schema, table_name, column_name, data_type \
                     FROM information_schema.columns \
                     WHERE table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
                     ORDER BY 1, 2, ordinal_position",
                )
                .await
            }
        }
    })
    .context("reading the database's columns")?;
    let columns: Vec<Column> = rows
        .into_iter()
        .filter_map(|row| match row.as_slice() {
            [Some(schema), Some(table), Some(name), Some(data_type)] => Some(Column {
                schema: schema.clone(),
                table: table.clone(),
                name: name.clone(),
                data_type: data_type.clone(),
            }),
            _ => None,
        })
        .collect();
    let found = suggest(&columns);
    if let Some(path) = &a.write {
        std::fs::write(path, to_csv(&found))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match a.output {
        OutputFormat::Json => print_json(&json!({
            "columnsRead": columns.len(),
            "suggestions": found.iter().map(|s| json!({
                "object": format!("{}.{}", s.schema, s.table),
                "column": (!s.column.is_empty()).then_some(&s.column),
                "key": s.key,
                "value": s.value,
                "reason": s.reason,
            })).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Text => {
            for s in &found {
                let column = if s.column.is_empty() {
                    String::new()
                } else {
                    format!(".{}", s.column)
                };
                println!(
                    "{}.{}{column}\t{}={}\t({})",
                    s.schema, s.table, s.key, s.value, s.reason
                );
            }
            eprintln!(
                "{} suggestions from {} columns; nothing was tagged{}",
                found.len(),
                columns.len(),
                match &a.write {
                    Some(p) => format!(": review {} and import it with --from-file", p.display()),
                    None => " (--write FILE saves them for --from-file)".to_owned(),
                }
            );
        }
    }
    Ok(())
}
