#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! A node's operations: `/healthz` and `/readyz` on the metrics listener,
//! and a clean drain on SIGTERM (not ready at once, no new connections,
//! sessions finish up to the deadline, then are ended with PostgreSQL's
//! own message), with psql as the client.

mod common;
use common::*;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `GET path` on the plain-HTTP metrics listener: status and body.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn psql_in_background(lk: &Latchkey, token: &str, sql: &str) -> std::process::Child {
    Command::new("psql")
        .arg(conninfo(lk, "app", "verify-full"))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn readiness_probes_and_a_drain_on_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let metrics = free_port();
    let mut lk = start_latchkey_with(
        root.path(),
        &pg,
        &[
            "--metrics-listen",
            &format!("127.0.0.1:{metrics}"),
            "--drain-timeout",
            "4s",
        ],
    );
    wait_for_port(metrics);
    assert_eq!(get(metrics, "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(get(metrics, "/readyz"), (200, "ready\n".to_owned()));
    assert_eq!(get(metrics, "/nothing").0, 404);

    let token = aws_token(&lk, &[], "localhost", "app");
    // One session finishes within the deadline, one would not.
    let short = psql_in_background(&lk, &token, "SELECT pg_sleep(2); SELECT 'short done'");
    let long = psql_in_background(&lk, &token, "SELECT pg_sleep(60)");
    let started = Instant::now();
    while Instant::now() < started + Duration::from_secs(10) {
        let sessions = pg_count_sleeping(&pg);
        if sessions >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(pg_count_sleeping(&pg), 2, "both sessions started");

    let term = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &lk.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    // Not ready at once, with the reason; no new connections.
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = get(metrics, "/readyz");
    assert_eq!((status, body.as_str()), (503, "not ready: draining\n"));
    assert_eq!(get(metrics, "/healthz").0, 200);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", lk.pg_port)).is_err(),
        "the gateway still accepts connections while draining"
    );

    // The short session finishes normally.
    let short = short.wait_with_output().unwrap();
    assert!(
        short.status.success(),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
    assert!(String::from_utf8_lossy(&short.stdout).contains("short done"));
    // The long one is ended at the deadline, in PostgreSQL's words.
    let long = long.wait_with_output().unwrap();
    let ended_after = term.elapsed();
    assert!(!long.status.success());
    assert!(
        String::from_utf8_lossy(&long.stderr)
            .contains("terminating connection due to administrator command"),
        "{}",
        String::from_utf8_lossy(&long.stderr)
    );
    assert!(
        ended_after >= Duration::from_secs(3) && ended_after < Duration::from_secs(15),
        "ended after {ended_after:?}"
    );
    // The node then exits cleanly, and the trail says why the session ended.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = lk.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "latchkey did not exit after the drain"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "latchkey exited with {status}");
    let trail = trail_text(&lk.data);
    assert!(
        trail.contains("node shutting down"),
        "no drain end reason in the trail"
    );
}

/// Sessions of the test's client sleeping in the upstream server.
fn pg_count_sleeping(pg: &Postgres) -> usize {
    let out = as_pg_user(std::path::Path::new("/usr/bin/psql"))
        .arg("-h")
        .arg(&pg.dir)
        .args([
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
            "-tAc",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}
