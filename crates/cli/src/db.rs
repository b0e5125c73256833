//! `latchkey db register|list|remove|set-password`: the databases behind
//! the gateway. They act on the data directory's store; a running server
//! picks changes up within seconds.

use std::io::Read;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use latchkey_server::bootstrap::{DataDir, load_vault};
use latchkey_store::{Database, Store};
use serde_json::json;
use zeroize::Zeroizing;

use crate::exit;
use crate::output::{OutputFormat, print_json, print_rows};
use crate::serve::ServerArgs;

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
    /// postgres (mysql comes with the MySQL gateway).
    #[arg(long, default_value = "postgres")]
    engine: String,
    /// How the gateway logs in upstream: password (stored sealed, see set-password) or trust (development only).
    #[arg(long, default_value = "password")]
    auth: String,
    /// Tag KEY=VALUE (repeatable); policies see it as aws:ResourceTag/KEY.
    #[arg(long = "tag")]
    tags: Vec<String>,
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
    let dir = DataDir::new(&config.data_dir);
    let vault = load_vault(&dir.master_key()).with_context(|| {
        format!(
            "no usable data directory at {} (run latchkey init)",
            dir.root.display()
        )
    })?;
    Ok((Store::open(&dir.store(), vault)?, config.region))
}

fn describe(db: &Database, account: &str, region: &str) -> serde_json::Value {
    json!({
        "name": db.name,
        "engine": db.engine,
        "endpoints": db.endpoints,
        "upstream": db.upstream,
        "auth": db.upstream_auth,
        "resourceId": db.resource_id,
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
                ("auth", s("auth")),
                ("resource id", s("resourceId")),
                ("connect ARN", format!("{}USER", s("connectArnPrefix"))),
            ]);
            Ok(())
        }
    }
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
            let db = store.register_database(
                &Database {
                    name: a.name.clone(),
                    engine: a.engine.clone(),
                    endpoints: a.endpoints.clone(),
                    upstream: a.upstream.clone(),
                    upstream_auth: a.auth.clone(),
                    resource_id: String::new(),
                    tags,
                },
                latchkey_server::state::now(),
            )?;
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
            let (store, _) = open(&a.server)?;
            let mut password = Zeroizing::new(String::new());
            std::io::stdin()
                .take(4096)
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!("no password on standard input");
            }
            store.set_database_password(&a.name, &a.user, password)?;
        }
    }
    Ok(exit::OK)
}
