//! Sends findings to a webhook: a JSON POST with
//! `X-Latchkey-Timestamp: <unix seconds>` and
//! `X-Latchkey-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`,
//! so the receiver can check both origin and freshness (as Stripe's and
//! GitHub's webhooks do). Deliveries run on a thread of their own and are
//! retried with exponential backoff; a full queue drops the newest and says
//! so (findings are in the trail and the store regardless).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook URL {0:?}: {1}")]
    Url(String, &'static str),
    #[error("webhook CA file {0}: {1}")]
    Ca(PathBuf, String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the receiver answered {0}")]
    Status(u16),
}

#[derive(Clone)]
pub struct WebhookConfig {
    /// `http://host:port/path` or `https://...`.
    pub url: String,
    pub secret: Zeroizing<Vec<u8>>,
    /// Deliveries tried per finding.
    pub max_attempts: u32,
    /// Wait after the first failure; doubles each time, up to a minute.
    pub first_backoff: Duration,
    pub timeout: Duration,
    /// PEM CA certificates for an HTTPS receiver [default: the system's].
    pub ca_file: Option<PathBuf>,
}

impl WebhookConfig {
    pub fn new(url: &str, secret: Zeroizing<Vec<u8>>) -> Self {
        Self {
            url: url.to_owned(),
            secret,
            max_attempts: 6,
            first_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, WebhookError> {
    let bad = |why| WebhookError::Url(url.to_owned(), why);
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("needs a host (and no user info)"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            let port = p.parse().map_err(|_| bad("the port is not a number"))?;
            (h, port)
        }
        _ => (authority, if tls { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(bad("malformed host or path"));
    }
    Ok(Target {
        tls,
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// The `X-Latchkey-Signature` value for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers in the background.
pub struct Webhook {
    tx: SyncSender<String>,
}

impl Webhook {
    pub fn start(config: WebhookConfig) -> Result<Self, WebhookError> {
        let target = parse_url(&config.url)?;
        let tls = if target.tls {
            Some(Arc::new(client_config(config.ca_file.as_ref())?))
        } else {
            None
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1000);
        std::thread::Builder::new()
            .name("webhook".into())
            .spawn(move || deliver_loop(rx, &config, &target, tls))?;
        Ok(Self { tx })
    }

    /// Queues a JSON body; false if the queue is full.
    pub fn send(&self, body: String) -> bool {
        match self.tx.try_send(body) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::warn!("webhook queue full: a finding was not sent");
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// Posts `body` once to `config.url`, signed as every delivery is, and
/// waits for the answer: for callers that need to know it arrived (the
/// rotation job's steps). Blocking: call it off async threads.
pub fn post_once(config: &WebhookConfig, body: &str) -> Result<(), WebhookError> {
    let target = parse_url(&config.url)?;
    let tls = if target.tls {
        Some(Arc::new(client_config(config.ca_file.as_ref())?))
    } else {
        None
    };
    post(config, &target, tls.as_ref(), body)
}

fn client_config(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig, WebhookError> {
    let path = ca_file
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    let pem = std::fs::read(&path).map_err(|e| WebhookError::Ca(path.clone(), e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| WebhookError::Ca(path.clone(), e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| WebhookError::Ca(path.clone(), e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn deliver_loop(
    rx: Receiver<String>,
    config: &WebhookConfig,
    target: &Target,
    tls: Option<Arc<rustls::ClientConfig>>,
) {
    while let Ok(body) = rx.recv() {
        let mut backoff = config.first_backoff;
        for attempt in 1..=config.max_attempts.max(1) {
            match post(config, target, tls.as_ref(), &body) {
                Ok(()) => break,
                Err(e) if attempt < config.max_attempts => {
                    tracing::warn!(attempt, error = %e, "webhook delivery failed; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
                Err(e) => {
                    tracing::error!(attempts = attempt, error = %e, "webhook delivery failed; giving up");
                }
            }
        }
    }
}

fn post(
    config: &WebhookConfig,
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
    body: &str,
) -> Result<(), WebhookError> {
    let deadline = std::time::Instant::now() + config.timeout;
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let host_header = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: latchkey-webhook\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Latchkey-Timestamp: {timestamp}\r\nX-Latchkey-Signature: {}\r\nConnection: close\r\n\r\n",
        target.path,
        body.len(),
        signature(&config.secret, timestamp, body.as_bytes()),
    );
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the webhook host has no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, config.timeout)?;
    tcp.set_read_timeout(Some(config.timeout))?;
    tcp.set_write_timeout(Some(config.timeout))?;
    let mut response = Vec::new();
    match tls {
        Some(tls) => {
            let name =
                rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|_| {
                    WebhookError::Url(config.url.clone(), "not a valid TLS server name")
                })?;
            let conn = rustls::ClientConnection::new(tls.clone(), name)?;
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            stream.write_all(request.as_bytes())?;
            stream.write_all(body.as_bytes())?;
            stream.flush()?;
            read_status(&mut stream, &mut response, deadline)?;
        }
        None => {
            let mut stream = tcp;
            stream.write_all(request.as_bytes())?;
            stream.write_all(body.as_bytes())?;
            read_status(&mut stream, &mut response, deadline)?;
        }
    }
    Ok(())
}

/// Reads up to the status line and checks for 2xx.
fn read_status(
    stream: &mut impl Read,
    buf: &mut Vec<u8>,
    deadline: std::time::Instant,
) -> Result<(), WebhookError> {
    let mut chunk = [0u8; 512];
    while !buf.contains(&b'\n') && buf.len() < 4096 {
        // The socket's timeout bounds each read; this bounds them all, so a
        // receiver that trickles a byte at a time cannot hold the caller.
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the receiver did not answer in time",
            )
            .into());
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let code = std::str::from_utf8(line)
        .ok()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other("the receiver did not answer HTTP"))?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(WebhookError::Status(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("https://hooks.example.com/latchkey?x=1").expect("url");
        assert!(t.tls);
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("hooks.example.com", 443, "/latchkey?x=1")
        );
        let t = parse_url("http://127.0.0.1:8080").expect("url");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/")
        );
        let t = parse_url("http://[::1]:9000/h").expect("url");
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        for bad in [
            "ftp://x",
            "http://",
            "http://u:p@host/",
            "http://h:port/",
            "http://h/a b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signatures_follow_the_documented_recipe() {
        // HMAC-SHA256("key", "1700000000.{}") computed with Python's hmac module.
        assert_eq!(
            signature(b"key", 1_700_000_000, b"{}"),
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }

    #[test]
    fn a_failing_receiver_is_retried_until_it_answers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (i, conn) in listener.incoming().take(3).enumerate() {
                let mut conn = conn.expect("conn");
                conn.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                while !String::from_utf8_lossy(&got).contains("\"finding\"") {
                    let n = conn.read(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let status = if i < 2 {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = conn.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                );
                seen.push(String::from_utf8_lossy(&got).into_owned());
            }
            seen
        });
        let mut config = WebhookConfig::new(
            &format!("http://127.0.0.1:{port}/hook"),
            Zeroizing::new(b"s3cret".to_vec()),
        );
        config.first_backoff = Duration::from_millis(50);
        let hook = Webhook::start(config).expect("start");
        assert!(hook.send(r#"{"finding":1}"#.into()));
        let seen = server.join().expect("server");
        assert_eq!(seen.len(), 3);
        let request = &seen[2];
        assert!(request.starts_with("POST /hook HTTP/1.1\r\n"), "{request}");
        let header = |name: &str| {
            request
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .map(str::to_owned)
                .unwrap_or_default()
        };
        let ts: u64 = header("X-Latchkey-Timestamp").parse().expect("timestamp");
        assert_eq!(
            header("X-Latchkey-Signature"),
            signature(b"s3cret", ts, br#"{"finding":1}"#)
        );
    }
}
