#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The PostgreSQL gateway end to end: a throwaway PostgreSQL (initdb,
//! random port, scram-sha-256), `latchkey serve`, tokens from the AWS CLI
//! (botocore), and psql as the client.

mod common;
use common::*;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn psql_through_the_gateway_with_botocore_tokens() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey(root.path(), &pg);

    // The administrator (Action "*") connects as app with verify-full TLS;
    // upstream the gateway logs in with app's SCRAM password.
    let token = aws_token(&lk, &[], "localhost", "app");
    let out = psql(
        &lk,
        "app",
        &token,
        "verify-full",
        "select current_user || ' ' || (select ssl from pg_stat_ssl where pid = pg_backend_pid())",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The gateway's upstream connection is plain here; the client's is TLS.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "app false");

    // Denials all look like RDS's.
    assert_denied(
        &psql(&lk, "postgres", &token, "verify-full", "select 1"),
        "postgres",
    ); // token for another user
    let mut tampered = token.clone();
    let at = tampered.find("X-Amz-Signature=").unwrap() + 20;
    let c = if &tampered[at..=at] == "0" { "1" } else { "0" };
    tampered.replace_range(at..=at, c);
    assert_denied(
        &psql(&lk, "app", &tampered, "verify-full", "select 1"),
        "app",
    );
    let other_endpoint = aws_token(&lk, &[], "other.example.com", "app");
    assert_denied(
        &psql(&lk, "app", &other_endpoint, "require", "select 1"),
        "app",
    );
    assert_denied(
        &psql(&lk, "app", "not a token", "verify-full", "select 1"),
        "app",
    );

    // Policy: a user without rds-db:connect, and one allowed only from 10.0.0.0/8.
    let nobody = user_with_policy(
        &lk,
        "nobody",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
    );
    let user_token = token_with(&lk, &nobody);
    assert_denied(
        &psql(&lk, "app", &user_token, "verify-full", "select 1"),
        "app",
    );
    let office = user_with_policy(
        &lk,
        "office",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
    );
    let user_token = token_with(&lk, &office);
    assert_denied(
        &psql(&lk, "app", &user_token, "verify-full", "select 1"),
        "app",
    );
    let tagged = user_with_policy(
        &lk,
        "tagged",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:us-east-1:*:dbuser:*/app","Condition":{"StringEquals":{"aws:ResourceTag/env":"dev"}}}]}"#,
    );
    let user_token = token_with(&lk, &tagged);
    let out = psql(&lk, "app", &user_token, "verify-full", "select 42");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "42",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `latchkey connect psql` mints the token itself (administrator's key
    // from the environment) and runs psql with verify-full.
    let out = latchkey(&[
        "connect",
        "psql",
        "--db",
        "orders",
        "--user",
        "app",
        "--dbname",
        "orders",
        "--data-dir",
        lk.data.to_str().unwrap(),
        "--pg-listen",
        &format!("127.0.0.1:{}", lk.pg_port),
        "--",
        "-X",
        "-A",
        "-t",
        "-c",
        "select 'via connect'",
    ])
    .env(
        "AWS_SHARED_CREDENTIALS_FILE",
        lk.data.join("admin.credentials"),
    )
    .env_remove("AWS_ACCESS_KEY_ID")
    .env_remove("AWS_SECRET_ACCESS_KEY")
    .env_remove("AWS_PROFILE")
    .output()
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "via connect",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Plaintext is refused with a clear message.
    let out = psql(&lk, "app", &token, "disable", "select 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("SSL connection is required"));

    // The precise reasons are in the log; tokens are not.
    let log = std::fs::read_to_string(root.path().join("latchkey.log")).unwrap();
    assert!(log.contains("token is for database user"), "{log}");
    assert!(
        log.contains("token endpoint other.example.com does not match TLS server name localhost")
    );
    assert!(log.contains("policy: implicitDeny"));
    assert!(!log.contains(&token[token.find("X-Amz-Signature=").unwrap()..]));
}

#[test]
fn relay_copy_cancel_prepared_and_upstream_restart() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey(root.path(), &pg);
    let token = aws_token(&lk, &[], "localhost", "app");
    let conn = conninfo(&lk, "app", "verify-full");
    let run = |sql: &str| psql(&lk, "app", &token, "verify-full", sql);

    // Extended protocol (Parse/Bind/Execute) through pgbench -M prepared.
    let script = root.path().join("q.sql");
    std::fs::write(&script, "\\set n random(1, 1000)\nSELECT :n + 1;\n").unwrap();
    let out = Command::new("pgbench")
        .arg(&conn)
        .args(["-n", "-M", "prepared", "-c", "4", "-t", "200", "-f"])
        .arg(&script)
        .env("PGPASSWORD", &token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("number of transactions actually processed: 800/800")
    );

    // COPY in and out of 100 MB, intact by checksum.
    let src = root.path().join("in.csv");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let mut i = 0u64;
        let mut written = 0usize;
        while written < 100 * 1024 * 1024 {
            let line = format!(
                "{i},{:x}{:x}{:x}\n",
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                i ^ 0xdead_beef,
                i * 31
            );
            written += line.len();
            f.write_all(line.as_bytes()).unwrap();
            i += 1;
        }
    }
    assert!(
        run("CREATE TABLE blob (id bigint, data text)")
            .status
            .success()
    );
    let copy_in = run(&format!(
        "\\copy blob FROM '{}' WITH (FORMAT csv)",
        src.display()
    ));
    assert!(
        copy_in.status.success(),
        "{}",
        String::from_utf8_lossy(&copy_in.stderr)
    );
    let dst = root.path().join("out.csv");
    let copy_out = run(&format!(
        "\\copy (SELECT * FROM blob ORDER BY id) TO '{}' WITH (FORMAT csv)",
        dst.display()
    ));
    assert!(
        copy_out.status.success(),
        "{}",
        String::from_utf8_lossy(&copy_out.stderr)
    );
    assert_eq!(
        sha256_file(&src),
        sha256_file(&dst),
        "COPY round trip changed the data"
    );

    // Cancel: psql sends a CancelRequest with the gateway's key on Ctrl-C.
    let started = Instant::now();
    let sleeper = Command::new("psql")
        .arg(&conn)
        .args(["-X", "-c", "SELECT pg_sleep(60)"])
        .env("PGPASSWORD", &token)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        Command::new("kill")
            .args(["-INT", &sleeper.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = sleeper.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the cancel did not reach the server"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("canceling statement due to user request"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A client that vanishes mid-query leaves the gateway serving others.
    let mut vanishing = Command::new("psql")
        .arg(&conn)
        .args(["-X", "-c", "SELECT pg_sleep(3)"])
        .env("PGPASSWORD", &token)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    vanishing.kill().unwrap();
    let _ = vanishing.wait();
    assert_eq!(
        String::from_utf8_lossy(&run("SELECT 'still here'").stdout).trim(),
        "still here"
    );

    // Upstream down: a clear error, the gateway stays up; upstream back: it recovers.
    let data = pg.dir.join("data");
    assert!(
        as_pg_user(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let down = run("SELECT 1");
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("could not connect to the database server"),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let out = as_pg_user(&pg_bin("pg_ctl"))
        .arg("-D")
        .arg(&data)
        .arg("-o")
        .arg(format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            pg.port,
            pg.dir.display()
        ))
        .arg("-l")
        .arg(pg.dir.join("log"))
        .args(["-w", "start"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&run("SELECT count(*) FROM blob").stdout)
            .trim()
            .parse::<u64>()
            .map(|n| n > 1_000_000),
        Ok(true)
    );
}

#[test]
fn expired_mfa_and_revoked_denials() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey(root.path(), &pg);
    let api_port = {
        let cfg = std::fs::read_to_string(lk.data.join("aws.config")).unwrap();
        cfg.lines()
            .find_map(|l| l.strip_prefix("endpoint_url = https://localhost:"))
            .unwrap()
            .parse::<u16>()
            .unwrap()
    };

    // A botocore token signed 20 minutes ago: expired.
    let expired = expired_token(&lk, lk.pg_port, "app");
    assert_denied(
        &psql(&lk, "app", &expired, "verify-full", "select 1"),
        "app",
    );

    // A policy that requires MFA denies a long-term key.
    let mfa_only = user_with_policy(
        &lk,
        "needsmfa",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}]}"#,
    );
    let user_token = token_with(&lk, &mfa_only);
    assert_denied(
        &psql(&lk, "app", &user_token, "verify-full", "select 1"),
        "app",
    );

    // Temporary credentials work until the user's sessions are revoked.
    let user = user_with_policy(
        &lk,
        "temp",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#,
    );
    let temp = session_credentials(&lk, api_port, &user);
    let token = token_with(&lk, &temp);
    let ok = psql(&lk, "app", &token, "verify-full", "select 'temporary'");
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "temporary",
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // A session in progress when the credential is revoked is ended.
    let running = Command::new("psql")
        .arg(conninfo(&lk, "app", "verify-full"))
        .args(["-X", "-c", "select pg_sleep(60)"])
        .env("PGPASSWORD", &token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1)); // revoke strictly after the session's issue second
    latchkey_api(
        &lk,
        api_port,
        &["iam", "revoke-sessions", "--user-name", "temp"],
    );
    let revoked_at = Instant::now();
    assert_denied(&psql(&lk, "app", &token, "verify-full", "select 1"), "app");
    let ended = running.wait_with_output().unwrap();
    assert!(!ended.status.success());
    assert!(
        revoked_at.elapsed() < Duration::from_secs(15),
        "the revoked session ran on for {:?}",
        revoked_at.elapsed()
    );
    let err = String::from_utf8_lossy(&ended.stderr);
    assert!(err.contains("was revoked"), "{err}");
    let log = std::fs::read_to_string(root.path().join("latchkey.log")).unwrap();
    assert!(log.contains("expired at"), "{log}");
    assert!(log.contains("issued before the revocation time"), "{log}");
}

#[test]
fn connection_limit_per_principal() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey_with(
        root.path(),
        &pg,
        &["--pg-max-connections-per-principal", "2"],
    );
    let token = aws_token(&lk, &[], "localhost", "app");
    let conn = conninfo(&lk, "app", "verify-full");
    let busy: Vec<Child> = (0..2)
        .map(|_| {
            Command::new("psql")
                .arg(&conn)
                .args(["-X", "-c", "SELECT pg_sleep(4)"])
                .env("PGPASSWORD", &token)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2000));
    let third = psql(&lk, "app", &token, "verify-full", "select 1");
    assert!(
        String::from_utf8_lossy(&third.stderr).contains("too many connections for this principal"),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    for mut c in busy {
        assert!(c.wait().unwrap().success());
    }
    // Slots are given back when sessions end.
    assert_eq!(
        String::from_utf8_lossy(&psql(&lk, "app", &token, "verify-full", "select 'again'").stdout)
            .trim(),
        "again"
    );
}
