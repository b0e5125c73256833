//! `connect-storm`: opens new authenticated TLS connections to a Latchkey
//! gateway as fast as it can, each running one query, and reports how many
//! per second. It measures the gateway's connection capacity with a client
//! whose own cost per connection is small (rustls with one shared config),
//! where `mysqlslap` and `pgbench` spend over a millisecond of CPU per
//! connection in OpenSSL set-up and bound the measurement on a small
//! machine. Every connection makes a full TLS handshake: session resumption
//! is off.
//!
//! The password (a token from `aws rds generate-db-auth-token`) comes from
//! `LATCHKEY_STORM_PASSWORD`, never the command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, ValueEnum};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Postgres,
    Mysql,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Text,
    Json,
}

/// New TLS connections per second through a Latchkey gateway.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[arg(long, value_enum)]
    engine: Engine,
    /// The endpoint the token was signed for; also the TLS server name.
    #[arg(long, default_value = "localhost")]
    host: String,
    #[arg(long)]
    port: u16,
    /// CA that signs the gateway's certificate.
    #[arg(long)]
    ca: PathBuf,
    #[arg(long)]
    user: String,
    /// PostgreSQL database, or MySQL schema (none if empty).
    #[arg(long, default_value = "")]
    database: String,
    /// Connections open at once.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds to run (with --hold: to hold the connections).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Instead of a storm: open --clients connections (PostgreSQL), each
    /// logging in and running one query, then hold them all idle for
    /// --duration seconds. Prints `held N` once every connection is idle,
    /// for a script to measure the gateway while they are held.
    #[arg(long)]
    hold: bool,
    /// Client runtime threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

struct Target {
    engine: Engine,
    host: String,
    port: u16,
    name: ServerName<'static>,
    user: String,
    database: String,
    password: String,
    tls: tokio_rustls::TlsConnector,
}

fn tls(ca: &std::path::Path) -> Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("a certificate in {}", ca.display()))?)?;
    }
    ensure!(!roots.is_empty(), "no certificates in {}", ca.display());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every connection pays for a whole handshake, as a new client would.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// One connection: TLS, login with the token, one query, goodbye.
async fn connect_once(t: &Target) -> Result<()> {
    match t.engine {
        Engine::Postgres => {
            let mut s = pg_open(t).await?;
            pg_goodbye(&mut s).await?;
            s.shutdown().await.ok();
        }
        Engine::Mysql => {
            let mut tcp = dial(t).await?;
            let (seq, _) = my_read(&mut tcp).await?;
            let caps = my_caps(!t.database.is_empty());
            let mut ssl_request = Vec::with_capacity(32);
            ssl_request.extend_from_slice(&caps.to_le_bytes());
            ssl_request.extend_from_slice(&(1u32 << 24).to_le_bytes());
            ssl_request.push(45); // utf8mb4_general_ci
            ssl_request.extend_from_slice(&[0; 23]);
            my_write(&mut tcp, seq.wrapping_add(1), &ssl_request).await?;
            let mut s = t.tls.connect(t.name.clone(), tcp).await?;
            my_session(&mut s, t, seq.wrapping_add(2), &ssl_request).await?;
            s.shutdown().await.ok();
        }
    }
    Ok(())
}

/// A TCP connection to the target, without Nagle's delay.
async fn dial(t: &Target) -> Result<TcpStream> {
    let tcp = TcpStream::connect((t.host.as_str(), t.port)).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// A PostgreSQL session over TLS, logged in and past its first query.
async fn pg_open(t: &Target) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut tcp = dial(t).await?;
    // SSLRequest.
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
    ensure!(tcp.read_u8().await? == b'S', "the server refused TLS");
    let mut s = t.tls.connect(t.name.clone(), tcp).await?;
    pg_session(&mut s, t).await?;
    Ok(s)
}

/// Opens `clients` sessions, 64 at a time, and holds them idle.
async fn hold(target: Arc<Target>, clients: usize, seconds: u64) -> Result<()> {
    ensure!(
        target.engine == Engine::Postgres,
        "--hold is for PostgreSQL"
    );
    let started = Instant::now();
    let mut held = Vec::with_capacity(clients);
    let mut opening = tokio::task::JoinSet::new();
    let mut next = 0;
    while held.len() < clients {
        while next < clients && opening.len() < 64 {
            let t = target.clone();
            opening.spawn(async move { pg_open(&t).await });
            next += 1;
        }
        match opening.join_next().await {
            Some(opened) => held.push(opened??),
            None => break,
        }
    }
    println!(
        "held {} in {:.1} s",
        held.len(),
        started.elapsed().as_secs_f64()
    );
    std::io::Write::flush(&mut std::io::stdout())?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    for s in &mut held {
        pg_goodbye(s).await.ok();
    }
    Ok(())
}

async fn pg_session<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, t: &Target) -> Result<()> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for (k, v) in [("user", &t.user), ("database", &t.database)] {
        if !v.is_empty() {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
    }
    body.push(0);
    s.write_all(&(body.len() as u32 + 4).to_be_bytes()).await?;
    s.write_all(&body).await?;
    let mut msg = Vec::new();
    loop {
        match pg_read(s, &mut msg).await? {
            b'R' if msg.get(..4) == Some(&[0, 0, 0, 3]) => {
                let mut p = vec![b'p'];
                p.extend_from_slice(&(t.password.len() as u32 + 5).to_be_bytes());
                p.extend_from_slice(t.password.as_bytes());
                p.push(0);
                s.write_all(&p).await?;
            }
            b'R' | b'S' | b'K' | b'N' => {}
            b'Z' => break,
            b'E' => bail!("login refused: {}", pg_error(&msg)),
            other => bail!("unexpected message {:?} during login", char::from(other)),
        }
    }
    s.write_all(b"Q\0\0\0\x0dSELECT 1\0").await?;
    loop {
        match pg_read(s, &mut msg).await? {
            b'Z' => break,
            b'E' => bail!("query failed: {}", pg_error(&msg)),
            _ => {}
        }
    }
    Ok(())
}

/// Says goodbye to a PostgreSQL session.
async fn pg_goodbye<S: AsyncWrite + Unpin>(s: &mut S) -> Result<()> {
    s.write_all(b"X\0\0\0\x04").await?;
    s.flush().await?;
    Ok(())
}

async fn pg_read<S: AsyncRead + Unpin>(s: &mut S, body: &mut Vec<u8>) -> Result<u8> {
    let tag = s.read_u8().await?;
    let len = s.read_u32().await? as usize;
    ensure!((4..1 << 20).contains(&len), "a message of {len} bytes");
    body.resize(len - 4, 0);
    s.read_exact(body).await?;
    Ok(tag)
}

/// The message field of an ErrorResponse.
fn pg_error(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find_map(|f| f.strip_prefix(b"M"))
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default()
}

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_CONNECT_WITH_DB: u32 = 8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;
const CLIENT_PLUGIN_AUTH_LENENC_DATA: u32 = 0x20_0000;

fn my_caps(with_db: bool) -> u32 {
    let caps = CLIENT_LONG_PASSWORD
        | CLIENT_PROTOCOL_41
        | CLIENT_SSL
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_PLUGIN_AUTH_LENENC_DATA;
    if with_db {
        caps | CLIENT_CONNECT_WITH_DB
    } else {
        caps
    }
}

async fn my_session<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    t: &Target,
    seq: u8,
    ssl_request: &[u8],
) -> Result<()> {
    // HandshakeResponse41: the SSLRequest's fields, then the rest.
    let mut login = ssl_request.to_vec();
    login.extend_from_slice(t.user.as_bytes());
    login.push(0);
    let mut password = t.password.as_bytes().to_vec();
    password.push(0);
    // A length-encoded integer: tokens run to about a kilobyte.
    match u16::try_from(password.len()) {
        Ok(n) if n < 0xfb => login.push(n as u8),
        Ok(n) => {
            login.push(0xfc);
            login.extend_from_slice(&n.to_le_bytes());
        }
        Err(_) => bail!("the password is too long"),
    }
    login.extend_from_slice(&password);
    if !t.database.is_empty() {
        login.extend_from_slice(t.database.as_bytes());
        login.push(0);
    }
    login.extend_from_slice(b"mysql_clear_password\0");
    my_write(s, seq, &login).await?;
    loop {
        let (seq, packet) = my_read(s).await?;
        match packet.first() {
            Some(0x00) => break,
            // AuthSwitchRequest: to mysql_clear_password, as RDS asks.
            Some(0xfe) => my_write(s, seq.wrapping_add(1), &password).await?,
            Some(0xff) => bail!("login refused: {}", my_error(&packet)),
            _ => bail!("unexpected packet during login"),
        }
    }
    let mut query = vec![0x03];
    query.extend_from_slice(b"SELECT 1");
    my_write(s, 0, &query).await?;
    // Column count, column definition, EOF, row, EOF.
    let mut eofs = 0;
    while eofs < 2 {
        let (_, packet) = my_read(s).await?;
        match packet.first() {
            Some(0xff) => bail!("query failed: {}", my_error(&packet)),
            Some(0xfe) if packet.len() < 9 => eofs += 1,
            _ => {}
        }
    }
    my_write(s, 0, &[0x01]).await?;
    s.flush().await?;
    Ok(())
}

async fn my_read<S: AsyncRead + Unpin>(s: &mut S) -> Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    let mut packet = vec![0; len];
    s.read_exact(&mut packet).await?;
    Ok((head[3], packet))
}

async fn my_write<S: AsyncWrite + Unpin>(s: &mut S, seq: u8, payload: &[u8]) -> Result<()> {
    let len = u32::try_from(payload.len())?;
    ensure!(len < 1 << 24, "a packet of {len} bytes");
    let mut packet = Vec::with_capacity(4 + payload.len());
    packet.extend_from_slice(&len.to_le_bytes()[..3]);
    packet.push(seq);
    packet.extend_from_slice(payload);
    s.write_all(&packet).await?;
    Ok(())
}

/// The message of an ERR packet (after the code and SQLSTATE).
fn my_error(packet: &[u8]) -> String {
    String::from_utf8_lossy(packet.get(9..).unwrap_or_default()).into_owned()
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let password = std::env::var("LATCHKEY_STORM_PASSWORD")
        .context("set LATCHKEY_STORM_PASSWORD to the token")?;
    let target = Arc::new(Target {
        engine: args.engine,
        name: ServerName::try_from(args.host.clone())?,
        host: args.host,
        port: args.port,
        user: args.user,
        database: args.database,
        password,
        tls: tls(&args.ca)?,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    if args.hold {
        return runtime.block_on(hold(target, args.clients, args.duration));
    }
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let until = started + Duration::from_secs(args.duration);
    let first_error = runtime.block_on(async {
        let tasks: Vec<_> = (0..args.clients.max(1))
            .map(|_| {
                let (t, counts) = (target.clone(), counts.clone());
                tokio::spawn(async move {
                    let mut first_error = None;
                    while Instant::now() < until {
                        match connect_once(&t).await {
                            Ok(()) => counts.ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                first_error.get_or_insert_with(|| format!("{e:#}"));
                                counts.failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                    first_error
                })
            })
            .collect();
        let mut first = None;
        for task in tasks {
            if let Ok(Some(e)) = task.await {
                first.get_or_insert(e);
            }
        }
        first
    });
    let seconds = started.elapsed().as_secs_f64();
    let ok = counts.ok.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    let rate = ok as f64 / seconds;
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "connections": ok,
                "failed": failed,
                "seconds": seconds,
                "connectionsPerSecond": rate,
                "firstError": first_error,
            })
        ),
        Output::Text => {
            println!("{ok} connections in {seconds:.1} s: {rate:.0} per second, {failed} failed");
            if let Some(e) = &first_error {
                println!("first failure: {e}");
            }
        }
    }
    if ok == 0 {
        bail!("no connection succeeded");
    }
    Ok(())
}
