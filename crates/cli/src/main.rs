//! `latchkey`: one binary, subcommands shaped like the AWS CLI where they do
//! the same job.

mod advisor;
mod api;
mod audit;
mod cluster_audit;
mod config;
mod connect;
mod db;
mod findings;
mod firewall;
mod output;
mod peers;
mod policy;
mod rotation;
mod scan;
mod serve;
mod ship;
mod store;
mod suggest;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// AWS-style IAM database authentication for any PostgreSQL or MySQL/MariaDB.
///
/// Applications sign a 15-minute token with their AWS-style credentials and
/// present it as the database password; no application holds a database
/// password.
#[derive(Parser, Debug)]
#[command(name = "latchkey", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate, inspect and verify database auth tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Validate IAM policies and simulate decisions.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Call the token service's STS API (AWS CLI names: get-caller-identity, assume-role, ...).
    Sts(api::ApiArgs),
    /// Call the token service's IAM API (AWS CLI names: create-user, put-role-policy, ...).
    Iam(api::ApiArgs),
    /// Connect a database client through the gateway with a fresh token.
    #[command(subcommand)]
    Connect(connect::ConnectCommand),
    /// Register the databases behind the gateway.
    #[command(subcommand)]
    Db(Box<db::DbCommand>),
    /// Verify and search the tamper-evident audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The SQL firewall: learned statement shapes per principal, alert and block modes.
    #[command(subcommand)]
    Firewall(firewall::FirewallCommand),
    /// The access advisor: last-accessed data, unused identities, keys and permissions.
    #[command(subcommand)]
    Advisor(advisor::AdvisorCommand),
    /// Find leaked credentials (files, git history, staged changes, stdin); verify and revoke keys.
    Scan(scan::ScanArgs),
    /// Threat findings from the detection rules (GuardDuty's names).
    #[command(subcommand)]
    Findings(findings::FindingsCommand),
    /// Run the token service (STS and IAM over HTTPS), creating the data directory on first start.
    #[command(after_help = DEPRECATED)]
    Serve(serve::ServeArgs),
    /// Create the data directory, certificates and administrator without serving.
    #[command(after_help = DEPRECATED)]
    Init(config::ServerArgs),
    /// Replace the master key that wraps every stored secret, with no downtime.
    RotateMasterKey(serve::RotateArgs),
    /// Move the store: an embedded installation onto PostgreSQL, for several nodes.
    #[command(subcommand)]
    Store(store::StoreCommand),
}

/// The deprecation note of `serve --help` and `init --help`.
const DEPRECATED: &str = "Settings are taken, lowest first, from defaults, latchkey.toml, LATCHKEY_* \
variables and flags.\n\nDeprecated (removed in the next release): the --pg-* flags (now \
--gateway-*, --postgres-listen and --postgres-allow-plaintext), the LATCHKEY_PG_* variables (now \
LATCHKEY_GATEWAY_* and LATCHKEY_POSTGRES_*) and latchkey.toml's flat top-level keys (now in \
[general], [api], [gateway], [gateway.postgres], [gateway.mysql], [audit], [detection] and \
[webhook]).";

/// Exit codes shared by every subcommand.
pub mod exit {
    /// Success, or "valid" for a verification.
    pub const OK: u8 = 0;
    /// A verification said "not valid", or the command failed.
    pub const FAILURE: u8 = 1;
    /// The command line or configuration is wrong (clap also uses 2).
    pub const USAGE: u8 = 2;
}

/// A reader that stops early (`latchkey audit lookup | head`) closes the
/// pipe: end quietly, as a shell tool does on SIGPIPE, instead of
/// reporting a panic (std ignores SIGPIPE, and `unsafe` is forbidden here).
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Token(cmd) => token::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Sts(args) => api::run("sts", &args),
        Command::Iam(args) => api::run("iam", &args),
        Command::Db(cmd) => db::run(*cmd),
        Command::Connect(cmd) => connect::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Findings(cmd) => findings::run(cmd),
        Command::Scan(args) => scan::run(&args),
        Command::Advisor(cmd) => advisor::run(cmd),
        Command::Firewall(cmd) => firewall::run(cmd),
        Command::Serve(args) => serve::run_serve(&args),
        Command::Init(args) => serve::run_init(&args),
        Command::RotateMasterKey(args) => serve::run_rotate_master_key(&args),
        Command::Store(cmd) => store::run(cmd),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("latchkey: {error:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks a command tree only when a subcommand runs (in debug
    /// builds): two argument groups of one name in one subcommand, say,
    /// panic at run time. Check the whole tree at once.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
