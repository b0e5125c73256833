//! `latchkey store migrate`: moves an embedded installation onto a
//! PostgreSQL store shared by several nodes; `latchkey store nodes`: the
//! nodes sharing it, as each reports itself.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use latchkey_server::bootstrap::{DataDir, load_vault};
use latchkey_store::postgres::PgLocation;

use crate::exit;
use crate::output::{OutputFormat, print_json};

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy an embedded (SQLite) store into a PostgreSQL store, verified by a row count and a
    /// checksum per table; safe to run again (a second run changes nothing).
    Migrate(MigrateArgs),
    /// The nodes that use the store, as each reports itself every few seconds: when it was last
    /// seen, its version, the master keys it holds (by fingerprint) and the one it seals with.
    Nodes(Box<NodesArgs>),
}

#[derive(Args, Debug)]
pub struct NodesArgs {
    #[command(flatten)]
    server: crate::config::ServerArgs,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The data directory whose store is copied (its master key opens both stores).
    #[arg(long = "from", value_name = "DIR", default_value = "latchkey-data")]
    from: std::path::PathBuf,
    /// The PostgreSQL store: postgres://USER:PASSWORD@HOST:PORT/DB?sslrootcert=CA.pem
    /// (or sslmode=disable for a local socket).
    #[arg(
        long = "to",
        value_name = "URL",
        env = "LATCHKEY_STORE",
        hide_env_values = true
    )]
    to: String,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub fn run(command: StoreCommand) -> Result<u8> {
    match command {
        StoreCommand::Migrate(args) => migrate(&args),
        StoreCommand::Nodes(args) => nodes(&args),
    }
}

fn nodes(args: &NodesArgs) -> Result<u8> {
    let config = args.server.resolve()?;
    let store = config.open_store()?;
    let now = latchkey_identity::clock::system_now();
    let sealing = store.sealing_master_key()?;
    let nodes = store.nodes()?;
    let running = |seen: i64| now - seen <= latchkey_server::master_key::RUNNING_WITHIN_SECS;
    match args.output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "sealingMasterKey": sealing,
            "nodes": nodes.iter().map(|n| serde_json::json!({
                "node": n.node,
                "running": running(n.seen),
                "started": n.started,
                "lastSeen": n.seen,
                "version": n.version,
                "masterKeys": n.master_keys.iter()
                    .map(|(id, print)| serde_json::json!({"id": id, "fingerprint": print}))
                    .collect::<Vec<_>>(),
                "sealingKey": n.sealing_key,
                "auditRecordsSealed": n.sealed,
            })).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Text => {
            println!(
                "{:<16}  {:<8}  {:>9}  {:<8}  {:<7}  {:>10}  master keys (id:fingerprint)",
                "NODE", "STATE", "SEEN", "VERSION", "SEALS", "RECORDS"
            );
            for n in &nodes {
                println!(
                    "{:<16}  {:<8}  {:>8}s  {:<8}  {:<7}  {:>10}  {}",
                    n.node,
                    if running(n.seen) { "running" } else { "gone" },
                    now - n.seen,
                    n.version,
                    n.sealing_key,
                    n.sealed,
                    n.keys_text()
                );
            }
            if let Some(id) = sealing {
                println!("the nodes agreed to seal with master key {id}");
            }
        }
    }
    Ok(exit::OK)
}

fn migrate(args: &MigrateArgs) -> Result<u8> {
    // Parsed here, not by clap, whose error would quote the password.
    let to: PgLocation = args.to.parse().map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let dir = DataDir::new(&args.from);
    let vault = || {
        load_vault(&dir.master_key())
            .with_context(|| format!("no usable data directory at {}", dir.root.display()))
    };
    eprintln!("latchkey: copying {} into {}", dir.store().display(), to);
    let copies = latchkey_store::Store::migrate_to_postgres(
        &dir.store(),
        vault()?,
        &to,
        vault()?,
        |table, rows| eprintln!("latchkey: {table}: {rows} rows, checksums match"),
    )
    .context("copying the store")?;
    let rows: u64 = copies.iter().map(|c| c.rows).sum();
    match args.output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "target": to.to_string(),
            "rows": rows,
            "tables": copies.iter().map(|c| serde_json::json!({
                "table": c.table,
                "rows": c.rows,
                "sha256": c.checksum,
            })).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Text => {
            println!(
                "copied {rows} rows in {} tables into {}; every table verified",
                copies.len(),
                to
            );
        }
    }
    Ok(exit::OK)
}
