#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Sessions through the PostgreSQL gateway: pooling and reset, statement
//! audit, session lifetime and size and rate limits, against a throwaway
//! PostgreSQL with psql and pgbench.

mod common;
use common::*;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn pooled_sessions_are_reset_and_statements_audited() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey(root.path(), &pg);
    let token = aws_token(&lk, &[], "localhost", "app");

    // A session leaves state behind; the next client gets the same
    // backend, reset.
    let first = stdout_ok(&psql(
        &lk,
        "app",
        &token,
        "verify-full",
        "SET work_mem = '7MB'; CREATE TEMP TABLE scratch(x int); PREPARE p AS SELECT 1; SELECT pg_backend_pid()",
    ))
    .lines()
    .last()
    .unwrap()
    .to_owned();
    std::thread::sleep(Duration::from_millis(300)); // DISCARD ALL runs after the client leaves
    let second = stdout_ok(&psql(
        &lk,
        "app",
        &token,
        "verify-full",
        "SELECT pg_backend_pid() || ' ' || (SELECT count(*) FROM pg_prepared_statements) || ' ' || (SELECT count(*) FROM pg_class WHERE relname = 'scratch') || ' ' || current_setting('work_mem')",
    ));
    assert_eq!(
        second,
        format!("{first} 0 0 4MB"),
        "the pooled backend was not reused or not reset"
    );

    // A client that leaves inside a transaction takes its backend with it.
    let in_tx = stdout_ok(&psql(
        &lk,
        "app",
        &token,
        "verify-full",
        "BEGIN; SELECT pg_backend_pid()",
    ))
    .lines()
    .last()
    .unwrap()
    .to_owned();
    std::thread::sleep(Duration::from_millis(300));
    let after = stdout_ok(&psql(
        &lk,
        "app",
        &token,
        "verify-full",
        "SELECT pg_backend_pid()",
    ));
    assert_ne!(
        in_tx, after,
        "a backend left inside a transaction was reused"
    );

    // A backend killed while pooled is noticed and replaced.
    std::thread::sleep(Duration::from_millis(300));
    pg.sql(&format!("SELECT pg_terminate_backend({after})"));
    std::thread::sleep(Duration::from_millis(200));
    let replaced = stdout_ok(&psql(
        &lk,
        "app",
        &token,
        "verify-full",
        "SELECT pg_backend_pid()",
    ));
    assert_ne!(replaced, after);

    // Statements are audited with literals redacted, row counts and errors.
    stdout_ok(&psql(
        &lk,
        "app",
        &token,
        "verify-full",
        "SELECT 'hunter2-secret' AS s, 4242 FROM generate_series(1, 5)",
    ));
    let failed = psql(
        &lk,
        "app",
        &token,
        "verify-full",
        "SELECT * FROM no_such_table",
    );
    assert!(!failed.status.success());
    // The extended protocol: pgbench prepares once and executes three times.
    let script = root.path().join("script.sql");
    std::fs::write(&script, "\\set v 7\nSELECT :v::int + 1 AS v;\n").unwrap();
    let bench = Command::new("pgbench")
        .arg(conninfo(&lk, "app", "verify-full"))
        .args(["-n", "-t", "3", "-M", "prepared", "-f"])
        .arg(&script)
        .env("PGPASSWORD", &token)
        .output()
        .unwrap();
    stdout_ok(&bench);

    let events = audit_events(&lk, |e| {
        e.iter()
            .filter(|e| e["database"]["statement"] == "SELECT $1::int + ? AS v")
            .count()
            >= 3
    });
    let statements: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["eventName"] == "Statement")
        .collect();
    let redacted = statements
        .iter()
        .find(|e| e["database"]["statement"] == "SELECT ? AS s, ? FROM generate_series(?, ?)")
        .unwrap_or_else(|| panic!("no redacted statement in {statements:#?}"));
    let db = &redacted["database"];
    assert_eq!(db["rows"], 5);
    assert_eq!(db["commandTag"], "SELECT 5");
    assert_eq!(db["protocol"], "simple");
    assert_eq!(db["dbUser"], "app");
    assert_eq!(db["name"], "orders");
    assert_eq!(redacted["eventSource"], "rds-db.amazonaws.com");
    assert_eq!(redacted["userAgent"], "psql");
    assert_eq!(redacted["eventVersion"], "1.09");
    assert!(redacted["eventID"].as_str().unwrap().len() == 36);
    assert!(redacted["sequence"].as_u64().unwrap() > 0);
    assert!(
        redacted["userIdentity"]["arn"]
            .as_str()
            .unwrap()
            .ends_with(":user/admin")
    );
    assert_eq!(db["fingerprint"].as_str().unwrap().len(), 16);
    let missing = statements
        .iter()
        .find(|e| e["database"]["statement"] == "SELECT * FROM no_such_table")
        .unwrap();
    assert_eq!(missing["errorCode"], "42P01");
    let prepared: Vec<_> = statements
        .iter()
        .filter(|e| e["database"]["statement"] == "SELECT $1::int + ? AS v")
        .collect();
    assert_eq!(prepared.len(), 3);
    assert!(
        prepared
            .iter()
            .all(|e| e["database"]["protocol"] == "extended" && e["database"]["rows"] == 1)
    );
    // One fingerprint for statements that differ only in literals.
    assert_eq!(
        prepared[0]["database"]["fingerprint"],
        prepared[2]["database"]["fingerprint"]
    );
    let text = audit_text(&lk);
    assert!(!text.contains("hunter2"), "a literal reached the audit log");
    assert!(!text.contains(&token[token.find("X-Amz-Signature=").unwrap()..]));
    assert!(
        events
            .iter()
            .any(|e| e["eventName"] == "SessionEnd"
                && e["database"]["statements"].as_u64() >= Some(1))
    );

    // A denial's precise reason is in the audit log, not in the client's error.
    let mut tampered = token.clone();
    let at = tampered.find("X-Amz-Signature=").unwrap() + 20;
    let c = if &tampered[at..=at] == "0" { "1" } else { "0" };
    tampered.replace_range(at..=at, c);
    assert_denied(
        &psql(&lk, "app", &tampered, "verify-full", "select 1"),
        "app",
    );
    let events = audit_events(&lk, |e| {
        e.iter()
            .any(|e| e["eventName"] == "Connect" && e.get("errorMessage").is_some())
    });
    let denial = events
        .iter()
        .find(|e| e["eventName"] == "Connect" && e.get("errorMessage").is_some())
        .unwrap();
    assert!(
        denial["errorMessage"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{denial}"
    );
    assert_eq!(denial["requestParameters"]["endpoint"], "localhost");
    assert_eq!(denial["database"]["failure"], "bad_signature");
    assert_eq!(denial["errorCode"], "AccessDenied");

    // Once authenticated, the client reads the server's own refusal.
    let out = Command::new("psql")
        .arg(conninfo(&lk, "app", "verify-full").replace("dbname=orders", "dbname=nope"))
        .args(["-X", "-c", "select 1"])
        .env("PGPASSWORD", &token)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database \"nope\" does not exist"), "{err}");
}

#[test]
fn session_lifetime_message_size_and_connection_rate() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey_with(
        root.path(),
        &pg,
        &[
            "--max-session-duration",
            "3s",
            "--pg-max-message-size",
            "4096",
            "--pg-connection-rate-per-ip",
            "1",
            "--pg-allow-plaintext",
        ],
    );
    let token = aws_token(&lk, &[], "localhost", "app");

    // A session past its maximum duration is ended with a clear FATAL.
    let start = Instant::now();
    let out = psql(&lk, "app", &token, "verify-full", "SELECT pg_sleep(30)");
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(15));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maximum duration"), "{err}");
    std::thread::sleep(Duration::from_secs(1)); // refill the rate bucket

    // An oversized message is refused; the gateway carries on.
    let long = format!("SELECT '{}'", "x".repeat(5000));
    let out = psql(&lk, "app", &token, "verify-full", &long);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeds the gateway's limit"), "{err}");
    std::thread::sleep(Duration::from_secs(2));

    // One connection per second with bursts of two: a quick run of four
    // is cut off, and a second later there is room again.
    let results: Vec<bool> = (0..4)
        .map(|_| {
            psql(&lk, "app", &token, "verify-full", "SELECT 1")
                .status
                .success()
        })
        .collect();
    assert!(results[0] && results[1], "{results:?}");
    assert!(results.iter().any(|r| !r), "{results:?}");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        stdout_ok(&psql(&lk, "app", &token, "verify-full", "SELECT 1")),
        "1"
    );

    // With plaintext allowed (development), aws:SecureTransport is false
    // for a plaintext client, so a TLS-only policy still refuses it.
    let tls_only = user_with_policy(
        &lk,
        "tlsonly",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#,
    );
    let tls_token = token_with(&lk, &tls_only);
    std::thread::sleep(Duration::from_millis(2100));
    assert_denied(&psql(&lk, "app", &tls_token, "disable", "SELECT 1"), "app");
    assert_eq!(
        stdout_ok(&psql(&lk, "app", &tls_token, "verify-full", "SELECT 1")),
        "1"
    );

    // The upstream moved to the server's Unix socket (a gateway on the
    // database's machine): the running gateway picks the change up.
    let socket = pg.dir.join(format!(".s.PGSQL.{}", pg.port));
    register_db(
        &lk.data,
        &[
            "--update",
            "--name",
            "orders",
            "--endpoint",
            "localhost",
            "--upstream",
            socket.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_secs(6)); // the 5-second refresh
    assert_eq!(
        stdout_ok(&psql(
            &lk,
            "app",
            &token,
            "verify-full",
            "SELECT coalesce(host(inet_client_addr()), 'unix socket')"
        )),
        "unix socket"
    );
}
