//! `latchkey connect psql`: mint a token with the caller's AWS credentials
//! and run psql against the gateway with `sslmode=verify-full`.

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

pub fn run(cmd: ConnectCommand) -> Result<u8> {
    let ConnectCommand::Psql(a) = cmd;
    let config = a.server.resolve()?;
    let host = match (&a.host, &a.db) {
        (Some(h), _) => h.clone(),
        (None, Some(db)) => registered_host(&a.server, db)?,
        (None, None) => bail!("give --db NAME or --host HOST"),
    };
    let port = a.port.unwrap_or(config.pg_listen.port());
    let env = Environment::from_process();
    let creds = resolve_credentials(&env, a.profile.as_deref())?.credentials;
    // The gateway accepts tokens signed for its own region only.
    let token = generate(
        &TokenRequest::rds(&host, port, &a.user, &config.region, now_or(None)?),
        &creds,
    )?;
    let ca = a
        .ca_bundle
        .clone()
        .unwrap_or_else(|| config.data_dir.join("ca.pem"));
    let ca = std::fs::canonicalize(&ca).with_context(|| format!("CA bundle {}", ca.display()))?;
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
