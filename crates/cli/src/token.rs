//! `latchkey token generate|inspect|verify`.

use std::io::Read;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use latchkey_awsconfig::{Environment, resolve_credentials, resolve_region};
use latchkey_dbtoken::{
    DbAuthToken, EndpointForm, TokenAction, TokenRequest, TokenVerifier, generate,
};
use latchkey_sigv4::TokenPlacement;
use serde_json::json;
use zeroize::Zeroizing;

use crate::exit;
use crate::output::{OutputFormat, now_or, print_json, print_rows};

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Sign a database auth token; a drop-in for `aws rds generate-db-auth-token`.
    ///
    /// Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
    /// AWS_SESSION_TOKEN, then the profile (--profile, AWS_PROFILE) in the
    /// shared credentials file (AWS_SHARED_CREDENTIALS_FILE) and the config
    /// file (AWS_CONFIG_FILE). Prints only the token.
    Generate(GenerateArgs),
    /// Show what a token says: endpoint, user, key, scope and lifetime. Needs no secret.
    Inspect(InspectArgs),
    /// Check a token's signature and lifetime; prints `valid` or the precise reason.
    ///
    /// Exit code 0 when valid, 1 when not, 2 on usage errors.
    Verify(VerifyArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionArg {
    /// RDS `connect` (service rds-db): needs --port and --username.
    Connect,
    /// Aurora DSQL `DbConnect` (service dsql).
    #[value(name = "DbConnect")]
    DbConnect,
    /// Aurora DSQL `DbConnectAdmin` (service dsql).
    #[value(name = "DbConnectAdmin")]
    DbConnectAdmin,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The database endpoint host name the token is for.
    #[arg(long)]
    hostname: String,
    /// The database port (required for `connect` tokens).
    #[arg(long)]
    port: Option<u16>,
    /// The database user name (any UTF-8; required for `connect` tokens).
    #[arg(long)]
    username: Option<String>,
    /// Signing region [default: AWS_REGION, AWS_DEFAULT_REGION, then the profile's region].
    #[arg(long)]
    region: Option<String>,
    /// Token lifetime in seconds, at most 900.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=900))]
    expires_in: u64,
    /// Use this named profile, ignoring AWS_* credential variables.
    #[arg(long)]
    profile: Option<String>,
    /// What the token authorises.
    #[arg(long, value_enum, default_value = "connect")]
    action: ActionArg,
}

/// A token argument: the token itself, or `-` to read it from standard input
/// (keeps it out of the process list and shell history).
#[derive(Args, Debug)]
pub struct TokenArg {
    /// The token, or `-` to read it from standard input.
    token: String,
}

impl TokenArg {
    fn read(&self) -> Result<Zeroizing<String>> {
        if self.token != "-" {
            return Ok(Zeroizing::new(self.token.clone()));
        }
        let mut text = Zeroizing::new(String::new());
        std::io::stdin()
            .take(latchkey_dbtoken::MAX_TOKEN_LEN as u64 + 2)
            .read_to_string(&mut text)
            .context("reading the token from standard input")?;
        Ok(Zeroizing::new(
            text.trim_end_matches(['\r', '\n']).to_owned(),
        ))
    }
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    token: TokenArg,
    /// Compute the time left against this instant (RFC 3339 UTC) instead of now.
    #[arg(long)]
    at: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    token: TokenArg,
    /// The secret access key of the key that signed the token
    /// [default: from the environment or profile, whose access key id must match].
    #[arg(long, env = "LATCHKEY_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: Option<String>,
    /// Verify as of this instant (RFC 3339 UTC, or YYYYMMDDTHHMMSSZ) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Require the token to be signed for this region.
    #[arg(long)]
    region: Option<String>,
    /// Read the secret from this profile, ignoring AWS_* credential variables.
    #[arg(long)]
    profile: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub fn run(cmd: TokenCommand) -> Result<u8> {
    match cmd {
        TokenCommand::Generate(args) => run_generate(&args),
        TokenCommand::Inspect(args) => run_inspect(&args),
        TokenCommand::Verify(args) => run_verify(&args),
    }
}

fn run_generate(args: &GenerateArgs) -> Result<u8> {
    let env = Environment::from_process();
    let profile = args.profile.as_deref();
    let creds = resolve_credentials(&env, profile)?.credentials;
    let region = resolve_region(&env, args.region.as_deref(), profile)?;
    let action = match args.action {
        ActionArg::Connect => TokenAction::Connect,
        ActionArg::DbConnect => TokenAction::DsqlConnect,
        ActionArg::DbConnectAdmin => TokenAction::DsqlConnectAdmin,
    };
    if action == TokenAction::Connect && (args.port.is_none() || args.username.is_none()) {
        bail!("--port and --username are required for connect tokens");
    }
    let request = TokenRequest {
        host: &args.hostname,
        port: if action == TokenAction::Connect {
            args.port
        } else {
            None
        },
        action,
        db_user: args
            .username
            .as_deref()
            .filter(|_| action == TokenAction::Connect),
        region: &region,
        time: now_or(None)?,
        expires_in: args.expires_in,
        // botocore's form, so the output is byte-identical to the AWS CLI's.
        form: EndpointForm::Slash,
        token_placement: TokenPlacement::BeforeSignature,
    };
    println!("{}", generate(&request, &creds)?);
    Ok(exit::OK)
}

fn run_inspect(args: &InspectArgs) -> Result<u8> {
    let raw = args.token.read()?;
    let now = now_or(args.at.as_deref())?;
    let token = match DbAuthToken::parse(&raw) {
        Ok(token) => token,
        Err(error) => {
            match args.output {
                OutputFormat::Text => println!("invalid: {error}"),
                OutputFormat::Json => print_json(&json!({
                    "valid": false, "code": error.code(), "reason": error.to_string()
                }))?,
            }
            return Ok(exit::FAILURE);
        }
    };
    let issued = token.issued_at();
    let expires = token.expires_at();
    let left = expires.unix() - now.unix();
    let endpoint = match token.port {
        Some(port) => format!("{}:{port}", token.host),
        None => token.host.to_owned(),
    };
    match args.output {
        OutputFormat::Json => print_json(&json!({
            "endpoint": endpoint,
            "hostname": token.host,
            "port": token.port,
            "action": token.action.as_str(),
            "dbUser": token.db_user.as_deref(),
            "accessKeyId": token.access_key_id(),
            "region": token.region(),
            "service": token.presigned.service.as_ref(),
            "issued": issued.to_rfc3339(),
            "expires": expires.to_rfc3339(),
            "expiresInSeconds": token.presigned.expires,
            "timeLeftSeconds": left.max(0),
            "expired": left < 0,
            "sessionToken": token.presigned.security_token.is_some(),
        }))?,
        OutputFormat::Text => {
            let time_left = if left >= 0 {
                format!("{left}s")
            } else {
                format!(
                    "expired {} ago",
                    humantime::format_duration(std::time::Duration::from_secs(left.unsigned_abs()))
                )
            };
            print_rows(&[
                ("endpoint", endpoint),
                ("action", token.action.as_str().to_owned()),
                (
                    "db user",
                    token.db_user.as_deref().unwrap_or("-").to_owned(),
                ),
                ("access key id", token.access_key_id().to_owned()),
                ("region", token.region().to_owned()),
                ("service", token.presigned.service.to_string()),
                ("issued", issued.to_rfc3339()),
                ("expires", expires.to_rfc3339()),
                ("time left", time_left),
                (
                    "session token",
                    if token.presigned.security_token.is_some() {
                        "present"
                    } else {
                        "absent"
                    }
                    .to_owned(),
                ),
            ]);
        }
    }
    Ok(exit::OK)
}

/// The outcome of a verification, for both output formats.
struct Verdict {
    code: &'static str,
    reason: String,
}

fn run_verify(args: &VerifyArgs) -> Result<u8> {
    let raw = args.token.read()?;
    let now = now_or(args.at.as_deref())?;
    let verdict = match DbAuthToken::parse(&raw) {
        Err(error) => Some(Verdict {
            code: error.code(),
            reason: error.to_string(),
        }),
        Ok(token) => {
            let secret = match &args.secret_access_key {
                Some(secret) => Zeroizing::new(secret.clone()),
                None => {
                    let env = Environment::from_process();
                    let found = resolve_credentials(&env, args.profile.as_deref()).context(
                        "no secret to verify with: pass --secret-access-key or configure credentials",
                    )?;
                    if found.credentials.access_key_id != token.access_key_id() {
                        bail!(
                            "the token was signed by access key {}, but the credentials from {} are for {}; pass --secret-access-key",
                            token.access_key_id(),
                            found.source,
                            found.credentials.access_key_id
                        );
                    }
                    found.credentials.secret_access_key
                }
            };
            TokenVerifier::uncached()
                .verify(&token, secret.as_bytes(), now, args.region.as_deref())
                .err()
                .map(|error| Verdict {
                    code: error.code(),
                    reason: error.to_string(),
                })
        }
    };
    match (args.output, &verdict) {
        (OutputFormat::Text, None) => println!("valid"),
        (OutputFormat::Text, Some(v)) => println!("{}", v.reason),
        (OutputFormat::Json, None) => print_json(&json!({ "valid": true }))?,
        (OutputFormat::Json, Some(v)) => {
            print_json(&json!({ "valid": false, "code": v.code, "reason": v.reason }))?
        }
    }
    Ok(if verdict.is_none() {
        exit::OK
    } else {
        exit::FAILURE
    })
}
