//! `latchkey connect psql|mysql`: mint a token with the caller's AWS
//! credentials and run the database's own client against the gateway,
//! verifying its certificate against Latchkey's CA.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use latchkey_awsconfig::{Environment, resolve_credentials};
use latchkey_dbtoken::{TokenRequest, generate};

use crate::output::now_or;
use crate::serve::ServerArgs;

#[derive(Subcommand, Debug)]
pub enum ConnectCommand {
    /// Run psql through the gateway with a fresh token as the password.
    Psql(PsqlArgs),
    /// Run the mariadb (or mysql) client through the gateway with a fresh
    /// token as the password (TLS, server certificate verified, cleartext
    /// plugin).
    Mysql(MysqlArgs),
}

#[derive(Args, Debug)]
pub struct MysqlArgs {
    /// The registered database (its first endpoint is the host) [or give --host].
    #[arg(long)]
    db: Option<String>,
    /// The database user to connect as.
    #[arg(long)]
    user: String,
    /// The schema to use [default: none].
    #[arg(long)]
    database: Option<String>,
    /// Gateway host name (an endpoint the database is registered with).
    #[arg(long)]
    host: Option<String>,
    /// Gateway port [default: the configured MySQL gateway port].
    #[arg(long)]
    port: Option<u16>,
    /// CA bundle to verify the gateway with [default: the data directory's ca.pem].
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    /// Credentials from this profile.
    #[arg(long)]
    profile: Option<String>,
    /// The client to run [default: mariadb, else mysql].
    #[arg(long)]
    client: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    /// Extra arguments for the client (after --).
    #[arg(last = true)]
    client_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsqlArgs {
    /// The registered database (its first endpoint is the host) [or give --host].
    #[arg(long)]
    db: Option<String>,
    /// The database user to connect as.
    #[arg(long)]
    user: String,
    /// The PostgreSQL database name [default: the user name].
    #[arg(long)]
    dbname: Option<String>,
    /// Gateway host name (an endpoint the database is registered with).
    #[arg(long)]
    host: Option<String>,
    /// Gateway port [default: the configured PostgreSQL gateway port].
    #[arg(long)]
    port: Option<u16>,
    /// CA bundle for verify-full [default: the data directory's ca.pem].
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    /// Credentials from this profile.
    #[arg(long)]
    profile: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    /// Extra arguments for psql (after --).
    #[arg(last = true)]
    psql_args: Vec<String>,
}

fn registered_host(server: &ServerArgs, db: &str) -> Result<String> {
    let store = server
        .resolve()?
        .open_store()
        .context("give --host, or run where the Latchkey data directory is readable")?;
    let found = store.list_databases()?.into_iter().find(|d| d.name == db);
    match found.and_then(|d| d.endpoints.into_iter().next()) {
        Some(host) => Ok(host),
        None => bail!("no registered database named {db:?}"),
    }
}

/// Where to connect and a token for it: (host, token, CA bundle).
#[allow(clippy::too_many_arguments)]
fn mint(
    server: &ServerArgs,
    db: Option<&str>,
    host: Option<&str>,
    port: u16,
    user: &str,
    region: &str,
    profile: Option<&str>,
    ca_bundle: Option<&PathBuf>,
    data_dir: &std::path::Path,
) -> Result<(String, String, PathBuf)> {
    let host = match (host, db) {
        (Some(h), _) => h.to_owned(),
        (None, Some(db)) => registered_host(server, db)?,
        (None, None) => bail!("give --db NAME or --host HOST"),
    };
    let env = Environment::from_process();
    let creds = resolve_credentials(&env, profile)?.credentials;
    // The gateway accepts tokens signed for its own region only.
    let token = generate(
        &TokenRequest::rds(&host, port, user, region, now_or(None)?),
        &creds,
    )?;
    let ca = ca_bundle
        .cloned()
        .unwrap_or_else(|| data_dir.join("ca.pem"));
    let ca = std::fs::canonicalize(&ca).with_context(|| format!("CA bundle {}", ca.display()))?;
    Ok((host, token, ca))
}

pub fn run(cmd: ConnectCommand) -> Result<u8> {
    match cmd {
        ConnectCommand::Psql(a) => run_psql(a),
        ConnectCommand::Mysql(a) => run_mysql(a),
    }
}

fn run_mysql(a: MysqlArgs) -> Result<u8> {
    let config = a.server.resolve()?;
    let port = a.port.unwrap_or(config.mysql_listen.port());
    let (host, token, ca) = mint(
        &a.server,
        a.db.as_deref(),
        a.host.as_deref(),
        port,
        &a.user,
        &config.region,
        a.profile.as_deref(),
        a.ca_bundle.as_ref(),
        &config.data_dir,
    )?;
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
        .arg(format!("--user={}", a.user))
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
    let config = a.server.resolve()?;
    let port = a.port.unwrap_or(config.pg_listen.port());
    let (host, token, ca) = mint(
        &a.server,
        a.db.as_deref(),
        a.host.as_deref(),
        port,
        &a.user,
        &config.region,
        a.profile.as_deref(),
        a.ca_bundle.as_ref(),
        &config.data_dir,
    )?;
    let dbname = a.dbname.clone().unwrap_or_else(|| a.user.clone());
    let conninfo = format!(
        "host={host} port={port} user={} dbname={dbname} sslmode=verify-full sslrootcert={}",
        a.user,
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
