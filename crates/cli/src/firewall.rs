//! `latchkey firewall configure|show|approve|set-mode`: the SQL firewall
//! of a registered database. Each principal (a role's sessions share the
//! role's) learns the statement shapes (fingerprints) it runs for a
//! window, then unseen shapes raise findings (`alert`) or are refused
//! (`block`). These act on the data directory's store; a running server
//! picks changes up within seconds.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use latchkey_sqlnorm::Dialect;
use latchkey_store::{
    Engine, Fingerprint, FirewallConfig, FirewallMode, FirewallProfile, ProfileMode, Store,
};
use serde_json::json;

use crate::config::ServerArgs;
use crate::exit;
use crate::output::{OutputFormat, print_json, print_rows};

/// The learning window when none is given.
const DEFAULT_LEARNING: &str = "7d";

#[derive(Subcommand, Debug)]
pub enum FirewallCommand {
    /// Turn a database's SQL firewall on (alert or block) or off, and set how long new principals learn.
    ///
    /// A principal's profile is made, in learn mode, at its first
    /// statement; for the learning window every statement shape it runs is
    /// remembered. After it, the database's mode applies: `alert` raises a
    /// finding (SQLInjection:Gateway/UnseenStatementShape) for a shape never
    /// seen, `block` also refuses it. Tautologies, time probes, comments
    /// inside statements, and stacking or UNION from principals that never
    /// did so are flagged in every mode; `block` refuses tautologies and
    /// time probes too.
    Configure(ConfigureArgs),
    /// Show a database's firewall settings, profiles and known shapes.
    Show(ShowArgs),
    /// Make a statement shape known for a principal, by fingerprint or by an example statement.
    Approve(ApproveArgs),
    /// Set one principal's mode: learn (again), alert or block.
    SetMode(SetModeArgs),
}

#[derive(Args, Debug)]
pub struct ConfigureArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The registered database.
    #[arg(long = "db")]
    database: String,
    /// off, alert (findings for unseen shapes) or block (refuse them too).
    #[arg(long, value_parser = ["off", "alert", "block"])]
    mode: String,
    /// How long a new principal learns from its first statement: 7d, 12h, 30m, 0s.
    #[arg(long, default_value = DEFAULT_LEARNING)]
    learning: String,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The registered database.
    #[arg(long = "db")]
    database: String,
    /// Only this principal (a user's ARN, or a role's: arn:aws:iam::ACCOUNT:role/NAME).
    #[arg(long)]
    principal: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("shape").required(true).args(["fingerprint", "sql"]))]
pub struct ApproveArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The registered database.
    #[arg(long = "db")]
    database: String,
    /// A user's ARN, or a role's (arn:aws:iam::ACCOUNT:role/NAME) for all its sessions.
    #[arg(long)]
    principal: String,
    /// The shape's fingerprint: 16 hex digits, as in audit records and findings.
    #[arg(long)]
    fingerprint: Option<String>,
    /// An example statement; its shape (literals removed) is approved.
    #[arg(long)]
    sql: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct SetModeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The registered database.
    #[arg(long = "db")]
    database: String,
    /// A user's ARN, or a role's (arn:aws:iam::ACCOUNT:role/NAME) for all its sessions.
    #[arg(long)]
    principal: String,
    /// learn, alert or block.
    #[arg(long, value_parser = ["learn", "alert", "block"])]
    mode: String,
    /// With learn: for how long (7d, 12h...); without, until the mode is set again.
    #[arg(long)]
    learning: Option<String>,
}

pub fn run(cmd: FirewallCommand) -> Result<u8> {
    match cmd {
        FirewallCommand::Configure(a) => {
            let store = open(&a.server)?;
            let mode: FirewallMode = a.mode.parse()?;
            let learning = parse_window(&a.learning)?;
            let config = store.configure_firewall(&a.database, mode, learning.as_secs())?;
            let value = config_json(&config);
            match a.output {
                OutputFormat::Json => print_json(&value)?,
                OutputFormat::Text => print_rows(&[
                    ("database", config.database.clone()),
                    ("mode", config.mode.to_string()),
                    ("learning", humantime::format_duration(learning).to_string()),
                ]),
            }
        }
        FirewallCommand::Show(a) => {
            let store = open(&a.server)?;
            store.get_database(&a.database)?;
            let config = store
                .firewall_configs()?
                .into_iter()
                .find(|c| c.database == a.database)
                .unwrap_or_else(|| FirewallConfig {
                    database: a.database.clone(),
                    ..FirewallConfig::default()
                });
            let profiles = store.firewall_profiles(&a.database, a.principal.as_deref())?;
            if let Some(p) = &a.principal
                && profiles.is_empty()
            {
                bail!("{p} has no firewall profile on {} yet", a.database);
            }
            show(&config, &profiles, a.output)?;
        }
        FirewallCommand::Approve(a) => {
            let store = open(&a.server)?;
            check_principal(&a.principal)?;
            let db = store.get_database(&a.database)?;
            let (fingerprint, text) = match (&a.fingerprint, &a.sql) {
                (Some(hex), _) => (hex.parse::<Fingerprint>()?, String::new()),
                (None, Some(sql)) => {
                    let dialect = match db.engine {
                        Engine::Postgres => Dialect::Postgres,
                        Engine::Mysql => Dialect::MySql,
                    };
                    let n = latchkey_sqlnorm::normalize(sql, dialect);
                    if n.text.trim().is_empty() {
                        bail!("--sql holds no statement");
                    }
                    (Fingerprint(n.fingerprint), n.text)
                }
                (None, None) => bail!("give --fingerprint or --sql"),
            };
            let now = latchkey_identity::clock::system_now();
            let learning_until = learning_until_for(&store, &a.database, now)?;
            let new = store.approve_shape(
                &a.database,
                &a.principal,
                fingerprint,
                &text,
                now,
                learning_until,
            )?;
            match a.output {
                OutputFormat::Json => print_json(&json!({
                    "database": a.database,
                    "principal": a.principal,
                    "fingerprint": fingerprint.to_string(),
                    "statement": text,
                    "new": new,
                }))?,
                OutputFormat::Text => print_rows(&[
                    ("principal", a.principal.clone()),
                    ("fingerprint", fingerprint.to_string()),
                    ("statement", text),
                    (
                        "approved",
                        if new {
                            "new shape"
                        } else {
                            "known shape, now approved"
                        }
                        .to_owned(),
                    ),
                ]),
            }
        }
        FirewallCommand::SetMode(a) => {
            let store = open(&a.server)?;
            check_principal(&a.principal)?;
            let mode: ProfileMode = a.mode.parse()?;
            let now = latchkey_identity::clock::system_now();
            let until =
                match (&a.learning, mode) {
                    (Some(_), ProfileMode::Alert | ProfileMode::Block) => {
                        bail!("--learning goes with --mode learn")
                    }
                    (Some(w), ProfileMode::Learn) => Some(now.saturating_add(
                        i64::try_from(parse_window(w)?.as_secs()).unwrap_or(i64::MAX),
                    )),
                    (None, _) => None,
                };
            store.set_profile_mode(&a.database, &a.principal, mode, until, now)?;
        }
    }
    Ok(exit::OK)
}

fn open(server: &ServerArgs) -> Result<Store> {
    server.resolve()?.open_store()
}

fn parse_window(text: &str) -> Result<Duration> {
    humantime::parse_duration(text.trim())
        .with_context(|| format!("--learning {text:?} is not a duration (7d, 12h, 30m, 0s)"))
}

fn check_principal(principal: &str) -> Result<()> {
    if !principal.starts_with("arn:") || principal.contains(":assumed-role/") {
        bail!(
            "--principal is a user's ARN or a role's (arn:aws:iam::ACCOUNT:role/NAME), not {principal:?}"
        );
    }
    Ok(())
}

/// When a profile made now stops learning: the database's window from now.
fn learning_until_for(store: &Store, database: &str, now: i64) -> Result<Option<i64>> {
    let secs = store
        .firewall_configs()?
        .into_iter()
        .find(|c| c.database == database)
        .map_or(0, |c| c.learning_secs);
    Ok(Some(
        now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
    ))
}

fn time(unix: i64) -> String {
    latchkey_audit::rfc3339(UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0)))
}

fn config_json(config: &FirewallConfig) -> serde_json::Value {
    json!({
        "database": config.database,
        "mode": config.mode.as_str(),
        "learningSecs": config.learning_secs,
    })
}

fn profile_json(p: &FirewallProfile) -> serde_json::Value {
    json!({
        "principal": p.principal,
        "mode": p.mode.as_str(),
        "learningUntil": p.learning_until.map(time),
        "stacks": p.stacks,
        "unions": p.unions,
        "created": time(p.created),
        "shapes": p.shapes.iter().map(|s| json!({
            "fingerprint": s.fingerprint.to_string(),
            "statement": s.text,
            "firstSeen": time(s.first_seen),
            "source": s.source.as_str(),
        })).collect::<Vec<_>>(),
    })
}

fn show(config: &FirewallConfig, profiles: &[FirewallProfile], output: OutputFormat) -> Result<()> {
    match output {
        OutputFormat::Json => {
            let mut value = config_json(config);
            value["profiles"] = profiles.iter().map(profile_json).collect();
            print_json(&value)?;
        }
        OutputFormat::Text => {
            print_rows(&[
                ("database", config.database.clone()),
                ("mode", config.mode.to_string()),
                (
                    "learning",
                    humantime::format_duration(Duration::from_secs(config.learning_secs))
                        .to_string(),
                ),
            ]);
            for p in profiles {
                println!();
                let mode = match (p.mode, p.learning_until) {
                    (ProfileMode::Learn, Some(until)) => format!("learn until {}", time(until)),
                    (ProfileMode::Learn, None) => "learn (until changed)".to_owned(),
                    (mode, _) => mode.to_string(),
                };
                print_rows(&[
                    ("principal", p.principal.clone()),
                    ("mode", mode),
                    ("stacks", p.stacks.to_string()),
                    ("unions", p.unions.to_string()),
                    ("shapes", p.shapes.len().to_string()),
                ]);
                for s in &p.shapes {
                    println!(
                        "  {}  {:<8}  {}  {}",
                        s.fingerprint,
                        s.source,
                        time(s.first_seen),
                        s.text
                    );
                }
            }
        }
    }
    Ok(())
}
