//! `latchkey connect psql|mysql`: mint a token with the caller's AWS
//! credentials and run the database's own client against the gateway,
//! verifying its certificate against Latchkey's CA.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use latchkey_awsconfig::{Environment, resolve_credentials};
use latchkey_dbtoken::{TokenRequest, generate};

use crate::config::ServerArgs;
use crate::output::now_or;

#[derive(Subcommand, Debug)]
pub enum ConnectCommand {
    /// Run psql through the gateway with a fresh token as the password.
    Psql(PsqlArgs),
    /// Run the mariadb (or mysql) client through the gateway with a fresh
    /// token as the password (TLS, server certificate verified, cleartext
    /// plugin).
    Mysql(MysqlArgs),
}

/// Where to connect and with whose credentials; the same for every client.
#[derive(Args, Debug)]
pub struct Target {
    /// The registered database (its first endpoint is the host) [or give --host].
    #[arg(long)]
    db: Option<String>,
    /// The database user to connect as.
    #[arg(long)]
    user: String,
    /// Gateway host name (an endpoint the database is registered with).
    #[arg(long)]
    host: Option<String>,
    /// Gateway port [default: the configured port of this engine's gateway].
    #[arg(long)]
    port: Option<u16>,
    /// CA bundle to verify the gateway with [default: the data directory's ca.pem].
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    /// Credentials from this profile.
    #[arg(long)]
    profile: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args, Debug)]
pub struct MysqlArgs {
    #[command(flatten)]
    target: Target,
    /// The schema to use [default: none].
    #[arg(long)]
    database: Option<String>,
    /// The client to run [default: mariadb, else mysql].
    #[arg(long)]
    client: Option<String>,
    /// Extra arguments for the client (after --).
    #[arg(last = true)]
    client_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsqlArgs {
    #[command(flatten)]
    target: Target,
    /// The PostgreSQL database name [default: the user name].
    #[arg(long)]
    dbname: Option<String>,
    /// Extra arguments for psql (after --).
    #[arg(last = true)]
    psql_args: Vec<String>,
}

fn registered_host(config: &crate::config::Config, db: &str) -> Result<String> {
    let store = config
        .open_store()
        .context("give --host, or run where the Latchkey data directory is readable")?;
    let found = store.list_databases()?.into_iter().find(|d| d.name == db);
    match found.and_then(|d| d.endpoints.into_iter().next()) {
        Some(host) => Ok(host),
        None => bail!("no registered database named {db:?}"),
    }
}

/// A connection the client can make: gateway host and port, a fresh
/// token, and the CA bundle to verify the gateway with.
struct Minted {
    host: String,
    port: u16,
    token: String,
    ca: PathBuf,
}

impl Target {
    /// Resolves the target and mints a token for it; `default_port`
    /// picks the engine's gateway port from the configuration.
    fn mint(&self, default_port: impl Fn(&crate::config::Config) -> u16) -> Result<Minted> {
        let config = self.server.resolve()?;
        let port = self.port.unwrap_or_else(|| default_port(&config));
        let host = match (&self.host, &self.db) {
            (Some(h), _) => h.clone(),
            (None, Some(db)) => registered_host(&config, db)?,
            (None, None) => bail!("give --db NAME or --host HOST"),
        };
        let env = Environment::from_process();
        let creds = resolve_credentials(&env, self.profile.as_deref())?.credentials;
        // The gateway accepts tokens signed for its own region only.
        let token = generate(
            &TokenRequest::rds(&host, port, &self.user, &config.region, now_or(None)?),
            &creds,
        )?;
        let ca = self
            .ca_bundle
            .clone()
            .unwrap_or_else(|| config.data_dir.join("ca.pem"));
        let ca =
            std::fs::canonicalize(&ca).with_context(|| format!("CA bundle {}", ca.display()))?;
        Ok(Minted {
            host,
            port,
            token,
            ca,
        })
    }
}

pub fn run(cmd: ConnectCommand) -> Result<u8> {
    match cmd {
        ConnectCommand::Psql(a) => run_psql(a),
        ConnectCommand::Mysql(a) => run_mysql(a),
    }
}

fn run_mysql(a: MysqlArgs) -> Result<u8> {
    let Minted {
        host,
        port,
        token,
        ca,
    } = a.target.mint(|c| c.mysql_listen.port())?;
    let client = match &a.client {
        Some(c) => c.clone(),
        None if which("mariadb") => "mariadb".into(),
        None => "mysql".into(),
    };
    let mut cmd = std::process::Command::new(&client);
    // TCP even for localhost, which the client would take as its socket.
    cmd.arg("--protocol=TCP")
        .arg(format!("--host={host}"))
        .arg(format!("--port={port}"))
        .arg(format!("--user={}", a.target.user))
        .arg("--ssl")
        .arg(format!("--ssl-ca={}", ca.display()))
        .arg("--ssl-verify-server-cert");
    // MySQL's client sends cleartext passwords only when asked to;
    // MariaDB's always may (and warns that the option is obsolete).
    if !client.ends_with("mariadb") {
        cmd.arg("--enable-cleartext-plugin");
    }
    if let Some(database) = &a.database {
        cmd.arg(format!("--database={database}"));
    }
    // exec: the client takes over the terminal; the token lives only in
    // its environment (MYSQL_PWD), never on a command line.
    let err = cmd.args(&a.client_args).env("MYSQL_PWD", token).exec();
    Err(err).with_context(|| format!("running {client} (is it installed?)"))
}

/// Whether `program` is on the PATH.
fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn run_psql(a: PsqlArgs) -> Result<u8> {
    let Minted {
        host,
        port,
        token,
        ca,
    } = a.target.mint(|c| c.postgres_listen.port())?;
    let user = &a.target.user;
    let dbname = a.dbname.clone().unwrap_or_else(|| user.clone());
    let conninfo = format!(
        "host={host} port={port} user={user} dbname={dbname} sslmode=verify-full sslrootcert={}",
        ca.display()
    );
    // exec: psql takes over the terminal; the token lives only in its environment.
    let err = std::process::Command::new("psql")
        .arg(conninfo)
        .args(&a.psql_args)
        .env("PGPASSWORD", token)
        .exec();
    Err(err).context("running psql (is it installed?)")
}
