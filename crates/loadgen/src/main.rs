//! `latchkey-loadgen`: drives Latchkey's HTTPS endpoint with SigV4-signed
//! calls (STS; Secrets Manager's `GetSecretValue`; KMS's `Decrypt` and
//! `GenerateDataKey`; Parameter Store's `GetParameter`) over keep-alive
//! connections and reports throughput and latency. Credentials come from the usual AWS environment variables or
//! profile files.
//!
//! Each connection signs its request once and sends it repeatedly: SigV4
//! header signatures stay valid for 15 minutes, and signing on the client
//! would take CPU from the server on a small machine.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use latchkey_awsconfig::{Environment, resolve_credentials};
use latchkey_client::{Endpoint, form, signed_json, signed_post, tls_connector};
use latchkey_sigv4::AmzDate;
use rustls::pki_types::ServerName;

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Call {
    GetCallerIdentity,
    AssumeRole,
    GetSecretValue,
    Decrypt,
    GenerateDataKey,
    GetParameter,
}

/// Load generator for the token service.
#[derive(Parser, Debug)]
struct Args {
    /// e.g. https://localhost:7443
    #[arg(long)]
    endpoint: String,
    /// CA bundle that signs the server's certificate.
    #[arg(long)]
    ca_bundle: std::path::PathBuf,
    #[arg(long, value_enum)]
    call: Call,
    /// For assume-role.
    #[arg(long)]
    role_arn: Option<String>,
    /// For get-secret-value: the secret's name or ARN.
    #[arg(long)]
    secret_id: Option<String>,
    /// For decrypt: a ciphertext blob, base64 (as `aws kms encrypt` prints it).
    #[arg(long)]
    ciphertext_blob: Option<String>,
    /// For generate-data-key: the key id, ARN or alias.
    #[arg(long)]
    key_id: Option<String>,
    /// For get-parameter: the parameter's name (read with decryption).
    #[arg(long)]
    name: Option<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Client runtime threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// A signed POST, ready to send again and again.
fn signed_request(
    endpoint: &Endpoint,
    args: &Args,
    connection: usize,
) -> Result<hyper::Request<Full<Bytes>>> {
    let (call, role_arn) = (args.call, args.role_arn.as_deref());
    let creds = resolve_credentials(&Environment::from_process(), None)?.credentials;
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    let time = AmzDate::from_unix(now).context("clock")?;
    let required = |value: &Option<String>, flag: &str| {
        value
            .clone()
            .with_context(|| format!("--{flag} is required for {call:?}"))
    };
    let json_call = match call {
        Call::GetSecretValue => Some((
            "secretsmanager",
            "secretsmanager.GetSecretValue",
            serde_json::json!({ "SecretId": required(&args.secret_id, "secret-id")? }),
        )),
        Call::Decrypt => Some((
            "kms",
            "TrentService.Decrypt",
            serde_json::json!({ "CiphertextBlob": required(&args.ciphertext_blob, "ciphertext-blob")? }),
        )),
        Call::GenerateDataKey => Some((
            "kms",
            "TrentService.GenerateDataKey",
            serde_json::json!({ "KeyId": required(&args.key_id, "key-id")?, "KeySpec": "AES_256" }),
        )),
        Call::GetParameter => Some((
            "ssm",
            "AmazonSSM.GetParameter",
            serde_json::json!({ "Name": required(&args.name, "name")?, "WithDecryption": true }),
        )),
        Call::GetCallerIdentity | Call::AssumeRole => None,
    };
    if let Some((service, target, body)) = json_call {
        return Ok(signed_json(
            endpoint,
            service,
            "us-east-1",
            target,
            body.to_string(),
            &creds,
            time,
        )?);
    }
    let params = match call {
        Call::AssumeRole => vec![
            (
                "RoleArn".to_owned(),
                role_arn
                    .context("--role-arn is required for assume-role")?
                    .to_owned(),
            ),
            ("RoleSessionName".to_owned(), format!("load-{connection}")),
            ("DurationSeconds".to_owned(), "900".to_owned()),
        ],
        _ => Vec::new(),
    };
    let action = match call {
        Call::AssumeRole => "AssumeRole",
        _ => "GetCallerIdentity",
    };
    Ok(signed_post(
        endpoint,
        "sts",
        "us-east-1",
        form(action, "2011-06-15", &params),
        &creds,
        time,
    )?)
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    latencies_us: Vec<u32>,
}

async fn connection(
    tls: tokio_rustls::TlsConnector,
    target: Arc<Endpoint>,
    request: hyper::Request<Full<Bytes>>,
    until: Instant,
) -> Result<Tally> {
    let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(target.host.clone())?;
    let stream = tls.connect(name, tcp).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut tally = Tally::default();
    while Instant::now() < until {
        let req = request.clone();
        let start = Instant::now();
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        let us = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
        if status.is_success() {
            tally.ok += 1;
            tally.latencies_us.push(us);
        } else {
            tally.failed += 1;
            if tally.failed == 1 {
                eprintln!("first failure: {status} {}", String::from_utf8_lossy(&body));
            }
        }
    }
    Ok(tally)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let target = Arc::new(Endpoint::parse(&args.endpoint)?);
    let tls = tls_connector(&args.ca_bundle)?;
    let requests: Vec<_> = (0..args.connections)
        .map(|i| signed_request(&target, &args, i))
        .collect::<Result<_>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let until = started + Duration::from_secs(args.duration);
    let tallies = runtime.block_on(async {
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|r| tokio::spawn(connection(tls.clone(), target.clone(), r, until)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await?);
        }
        anyhow::Ok(out)
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut total = Tally::default();
    for t in tallies {
        let t = t?;
        total.ok += t.ok;
        total.failed += t.failed;
        total.latencies_us.extend(t.latencies_us);
    }
    if total.ok == 0 {
        bail!("no request succeeded ({} failed)", total.failed);
    }
    total.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let i = ((total.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(total.latencies_us[i]) / 1000.0
    };
    let report = serde_json::json!({
        "call": format!("{:?}", args.call),
        "connections": args.connections,
        "seconds": elapsed,
        "ok": total.ok,
        "failed": total.failed,
        "requestsPerSecond": (total.ok as f64 / elapsed).round(),
        "latencyMs": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
