//! `latchkey-loadgen`: drives Latchkey's token service with SigV4-signed STS
//! calls over HTTPS keep-alive connections and reports throughput and
//! latency. Credentials come from the usual AWS environment variables or
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
use latchkey_sigv4::{AmzDate, SignRequest, encoding::encode, sign_request};
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Call {
    GetCallerIdentity,
    AssumeRole,
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

struct Target {
    host: String,
    port: u16,
    authority: String,
}

fn parse_endpoint(endpoint: &str) -> Result<Target> {
    let rest = endpoint
        .strip_prefix("https://")
        .context("endpoint must start with https://")?;
    let authority = rest.trim_end_matches('/').to_owned();
    let (host, port) = authority
        .rsplit_once(':')
        .context("endpoint needs a port")?;
    Ok(Target {
        host: host.to_owned(),
        port: port.parse()?,
        authority,
    })
}

/// A signed POST, ready to send again and again.
fn signed_request(
    target: &Target,
    call: Call,
    role_arn: Option<&str>,
    connection: usize,
) -> Result<hyper::Request<Full<Bytes>>> {
    let creds = resolve_credentials(&Environment::from_process(), None)?.credentials;
    let body = match call {
        Call::GetCallerIdentity => "Action=GetCallerIdentity&Version=2011-06-15".to_owned(),
        Call::AssumeRole => format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=load-{connection}&DurationSeconds=900",
            encode(role_arn.context("--role-arn is required for assume-role")?)
        ),
    };
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    let time = AmzDate::from_unix(now).context("clock")?;
    let date = time.to_string();
    let payload = hex::encode(Sha256::digest(body.as_bytes()));
    let mut headers = vec![
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("host", target.authority.as_str()),
        ("x-amz-date", date.as_str()),
    ];
    if let Some(t) = &creds.session_token {
        headers.push(("x-amz-security-token", t.as_str()));
    }
    let authorization = sign_request(
        &SignRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload_hash: &payload,
            region: "us-east-1",
            service: "sts",
            time,
        },
        &creds,
    )?;
    let mut builder = hyper::Request::post("/");
    for (k, v) in &headers {
        builder = builder.header(*k, *v);
    }
    Ok(builder
        .header("authorization", authorization)
        .body(Full::new(Bytes::from(body)))?)
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    latencies_us: Vec<u32>,
}

async fn connection(
    tls: tokio_rustls::TlsConnector,
    target: Arc<Target>,
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
    let target = Arc::new(parse_endpoint(&args.endpoint)?);
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&args.ca_bundle)?;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
    let requests: Vec<_> = (0..args.connections)
        .map(|i| signed_request(&target, args.call, args.role_arn.as_deref(), i))
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
