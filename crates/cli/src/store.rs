//! `latchkey store migrate`: moves an embedded installation onto a
//! PostgreSQL store shared by several nodes.

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
    }
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
