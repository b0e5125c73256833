#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The token service's timeouts and connection caps (issue 14, item 8),
//! against the real binary with short settings: an idle TLS connection is
//! closed, half-sent headers and a trickled body are dropped, the (N+1)th
//! connection from one address is refused while N are open, the stock
//! AWS CLI still works, and `/metrics` is not served on the API port
//! unless asked for.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// rustls with aws-lc-rs, trusting only Latchkey's CA, HTTP/1.1.
fn client_config(data: &Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(data.join("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS connection with its handshake done, or the error that ended it.
fn open(port: u16, config: &Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let mut sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut conn = ClientConnection::new(config.clone(), "localhost".try_into().unwrap())
        .map_err(std::io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(StreamOwned::new(conn, sock))
}

/// Reads until the server closes the connection or `within` passes;
/// returns when it closed (None if it did not) and what it sent.
fn wait_closed(
    tls: &mut Tls,
    within: Duration,
    mut tick: impl FnMut(&mut Tls),
) -> (Option<Duration>, String) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < within {
        match tls.read(&mut buf) {
            Ok(0) => return (Some(start.elapsed()), String::from_utf8_lossy(&got).into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                tick(tls)
            }
            Err(_) => return (Some(start.elapsed()), String::from_utf8_lossy(&got).into()),
        }
    }
    (None, String::from_utf8_lossy(&got).into())
}

fn metrics(addr: &str) -> String {
    stdout_ok(
        &Command::new("curl")
            .args(["-sf", &format!("http://{addr}/metrics")])
            .output()
            .unwrap(),
    )
}

fn metric(text: &str, line: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn timeouts_and_caps_on_the_token_service() {
    let root = tempfile::tempdir().unwrap();
    let (data, api) = init_latchkey(root.path(), &[]);
    let api_port: u16 = api.rsplit(':').next().unwrap().parse().unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let _lk = serve_latchkey(
        root.path(),
        &data,
        &api,
        &[
            "--api-header-timeout",
            "1s",
            "--api-body-timeout",
            "1s",
            "--api-idle-timeout",
            "3s",
            "--api-max-connections-per-ip",
            "3",
            "--metrics-listen",
            &metrics_addr,
        ],
    );
    wait_for_port(api_port);
    let config = client_config(&data);

    // The stock AWS CLI works within the limits.
    let aws = || {
        aws_cli()
            .env("AWS_CONFIG_FILE", data.join("aws.config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                data.join("admin.credentials"),
            )
            .args(["sts", "get-caller-identity", "--output", "json"])
            .output()
            .unwrap()
    };
    let who: serde_json::Value = serde_json::from_str(&stdout_ok(&aws())).unwrap();
    assert!(
        who["Arn"].as_str().unwrap().ends_with(":user/admin"),
        "{who}"
    );

    // /metrics needs no authentication, so the API port does not serve it.
    let status = stdout_ok(
        &Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(data.join("ca.pem"))
            .arg(format!("https://localhost:{api_port}/metrics"))
            .output()
            .unwrap(),
    );
    assert_eq!(status, "404");

    // An idle TLS connection is closed after the idle timeout (3 s).
    let mut idle = open(api_port, &config).unwrap();
    let (closed, _) = wait_closed(&mut idle, Duration::from_secs(15), |_| {});
    let closed = closed.expect("an idle connection stayed open");
    assert!(closed >= Duration::from_secs(2), "closed after {closed:?}");

    // Half the headers: dropped after the header timeout (1 s), well
    // before the idle timeout.
    let mut half = open(api_port, &config).unwrap();
    half.write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-")
        .unwrap();
    half.flush().unwrap();
    let (closed, _) = wait_closed(&mut half, Duration::from_secs(15), |_| {});
    let closed = closed.expect("a client sending half its headers was kept");
    assert!(
        closed < Duration::from_millis(2800),
        "closed after {closed:?}"
    );

    // A body trickled a byte at a time: answered 408 and dropped after the
    // body timeout (1 s), although bytes keep coming.
    let mut slow = open(api_port, &config).unwrap();
    slow.write_all(
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\nA",
    )
    .unwrap();
    slow.flush().unwrap();
    let mut last = Instant::now();
    let (closed, answer) = wait_closed(&mut slow, Duration::from_secs(15), |tls| {
        if last.elapsed() >= Duration::from_millis(200) {
            last = Instant::now();
            let _ = tls.write_all(b"c").and_then(|()| tls.flush());
        }
    });
    let closed = closed.expect("a trickled body was read for ever");
    assert!(
        closed < Duration::from_millis(2800),
        "closed after {closed:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // Three connections from one address are allowed; a fourth is closed
    // at once; once one closes there is room again.
    let held: Vec<Tls> = (0..3).map(|_| open(api_port, &config).unwrap()).collect();
    assert!(
        open(api_port, &config).is_err(),
        "a fourth connection from one address was served"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match open(api_port, &config) {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no room after the others closed: {e}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    stdout_ok(&aws());

    // Each refusal and timeout is counted by reason.
    let text = metrics(&metrics_addr);
    for (line, at_least) in [
        (
            "latchkey_api_connections_timed_out_total{reason=\"idle\"} ",
            1,
        ),
        (
            "latchkey_api_connections_timed_out_total{reason=\"header\"} ",
            1,
        ),
        (
            "latchkey_api_connections_timed_out_total{reason=\"body\"} ",
            1,
        ),
        (
            "latchkey_api_connections_refused_total{reason=\"per_ip\"} ",
            1,
        ),
    ] {
        assert!(metric(&text, line) >= at_least, "{line} in\n{text}");
    }
    assert!(text.contains("latchkey_api_connections_open "), "{text}");
}

#[test]
fn metrics_on_the_api_port_only_when_configured() {
    let root = tempfile::tempdir().unwrap();
    let (data, api) = init_latchkey(root.path(), &[]);
    let api_port: u16 = api.rsplit(':').next().unwrap().parse().unwrap();
    let _lk = serve_latchkey(root.path(), &data, &api, &["--api-metrics"]);
    wait_for_port(api_port);
    let text = stdout_ok(
        &Command::new("curl")
            .args(["-sf", "--cacert"])
            .arg(data.join("ca.pem"))
            .arg(format!("https://localhost:{api_port}/metrics"))
            .output()
            .unwrap(),
    );
    assert!(text.contains("latchkey_api_connections_open 1"), "{text}");
}
