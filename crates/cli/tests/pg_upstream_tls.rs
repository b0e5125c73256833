#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The gateway's upstream TLS end to end: a PostgreSQL with TLS (server
//! certificate from a test CA made with the openssl CLI, `ssl_ca_file` =
//! Latchkey's database CA from `latchkey db ca`), one without, databases
//! registered with each `--upstream-tls` mode and `--auth cert`, tokens
//! from the AWS CLI (botocore) and psql as the client.

mod common;
use common::pki::test_pki;
use common::*;

use std::process::{Command, Output};

/// psql through the gateway to the database registered for `endpoint`
/// (the gateway's certificate names it; libpq connects to 127.0.0.1).
fn psql_to(lk: &Latchkey, endpoint: &str, user: &str, dbname: &str, sql: &str) -> Output {
    let token = aws_token(lk, &[], endpoint, user);
    Command::new("psql")
        .arg(format!(
            "host={endpoint} hostaddr=127.0.0.1 port={} user={user} dbname={dbname} sslmode=verify-full sslrootcert={}",
            lk.pg_port,
            lk.data.join("ca.pem").display()
        ))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap()
}

fn assert_upstream_refused(out: &Output) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not connect to the database server"),
        "{err}"
    );
}

const SSL_OF_SELF: &str =
    "select current_user || ' ' || ssl from pg_stat_ssl where pid = pg_backend_pid()";

#[test]
fn upstream_tls_modes_and_certificate_login() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let endpoints = [
        "scram.test",
        "cert.test",
        "verifyca.test",
        "wrongca.test",
        "wronghost.test",
        "require.test",
        "disable.test",
        "require-plain.test",
        "prefer-plain.test",
    ];
    let (data, api) = init_latchkey(root, &endpoints);
    let d = data.to_str().unwrap();

    // Latchkey's database CA, for the server's ssl_ca_file.
    let out = latchkey(&["db", "ca", "--data-dir", d]).output().unwrap();
    let db_ca_pem = stdout_ok(&out) + "\n";
    assert!(db_ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let json: serde_json::Value = serde_json::from_slice(
        &latchkey(&["db", "ca", "--data-dir", d, "--output", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["certificate"].as_str().unwrap(), db_ca_pem);
    assert_eq!(json["pgHba"], "hostssl all all 0.0.0.0/0 cert");
    let db_ca = root.join("latchkey-db-ca.pem");
    std::fs::write(&db_ca, &db_ca_pem).unwrap();

    // A PostgreSQL that takes tlsuser over TLS only (scram-sha-256) and
    // certuser by client certificate only; app as before, TLS or not.
    let pki = test_pki(root);
    let tls_pg = Postgres::start_with(
        root,
        &PgOptions {
            name: Some("pg-tls".into()),
            tls: Some(PgTls {
                cert: pki.cert.clone(),
                key: pki.key.clone(),
                ca: Some(db_ca.clone()),
            }),
            hba: vec![
                "hostnossl all tlsuser,certuser 127.0.0.0/8 reject".into(),
                "hostssl all tlsuser 127.0.0.0/8 scram-sha-256".into(),
                "hostssl all certuser 127.0.0.0/8 cert".into(),
                "host all all 127.0.0.0/8 scram-sha-256".into(),
            ],
            listen_addresses: Some("127.0.0.1,127.0.0.2".into()),
        },
    );
    tls_pg.sql("CREATE ROLE tlsuser LOGIN PASSWORD 'tls-secret'");
    tls_pg.sql("CREATE ROLE certuser LOGIN");
    let plain_pg = Postgres::start_with(
        root,
        &PgOptions {
            name: Some("pg-plain".into()),
            ..Default::default()
        },
    );

    let tls_at = |host: &str| format!("{host}:{}", tls_pg.port);
    let plain_at = format!("127.0.0.1:{}", plain_pg.port);
    let test_ca = pki.ca.to_str().unwrap();
    let wrong_ca = db_ca.to_str().unwrap();
    let register = |endpoint: &str, upstream: &str, extra: &[&str]| {
        let mut args = vec![
            "--name",
            endpoint,
            "--endpoint",
            endpoint,
            "--upstream",
            upstream,
        ];
        args.extend(extra);
        register_db(&data, &args)
    };
    let scram = register(
        "scram.test",
        &tls_at("127.0.0.1"),
        &["--upstream-tls", "verify-full", "--upstream-ca", test_ca],
    );
    assert_eq!(scram["upstreamTls"], "verify-full");
    let cert = register(
        "cert.test",
        &tls_at("127.0.0.1"),
        &[
            "--upstream-tls",
            "verify-full",
            "--upstream-ca",
            test_ca,
            "--auth",
            "cert",
        ],
    );
    assert_eq!(cert["auth"], "cert");
    // 127.0.0.2 is not in the server certificate: verify-ca does not care,
    // verify-full does.
    register(
        "verifyca.test",
        &tls_at("127.0.0.2"),
        &["--upstream-tls", "verify-ca", "--upstream-ca", test_ca],
    );
    register(
        "wronghost.test",
        &tls_at("127.0.0.2"),
        &["--upstream-tls", "verify-full", "--upstream-ca", test_ca],
    );
    register(
        "wrongca.test",
        &tls_at("127.0.0.1"),
        &["--upstream-tls", "verify-full", "--upstream-ca", wrong_ca],
    );
    register(
        "require.test",
        &tls_at("127.0.0.1"),
        &["--upstream-tls", "require"],
    );
    register(
        "disable.test",
        &tls_at("127.0.0.1"),
        &["--upstream-tls", "disable"],
    );
    register(
        "require-plain.test",
        &plain_at,
        &["--upstream-tls", "require"],
    );
    // Registered as require, then updated to prefer: same resource id.
    let before = register(
        "prefer-plain.test",
        &plain_at,
        &["--upstream-tls", "require"],
    );
    let after = register("prefer-plain.test", &plain_at, &["--update"]);
    assert_eq!(after["upstreamTls"], "prefer");
    assert_eq!(after["resourceId"], before["resourceId"]);
    for name in [
        "scram.test",
        "verifyca.test",
        "wronghost.test",
        "wrongca.test",
        "require.test",
    ] {
        set_db_password(&data, name, "tlsuser", "tls-secret");
    }
    for name in ["disable.test", "require-plain.test", "prefer-plain.test"] {
        set_db_password(&data, name, "app", "app-secret");
    }

    // Mistakes are refused at registration, with the reason.
    let refused = |args: &[&str]| {
        let out = latchkey(&[
            "db",
            "register",
            "--data-dir",
            d,
            "--name",
            "bad",
            "--endpoint",
            "bad.test",
            "--upstream",
            &plain_at,
        ])
        .args(args)
        .output()
        .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(
        refused(&["--auth", "cert", "--upstream-tls", "disable"])
            .contains("cert needs upstream TLS")
    );
    assert!(refused(&["--auth", "cert"]).contains("cert needs upstream TLS"));
    assert!(refused(&["--upstream-tls", "verify-full"]).contains("needs the upstream CA"));
    let junk = root.join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let err = refused(&[
        "--upstream-tls",
        "verify-ca",
        "--upstream-ca",
        junk.to_str().unwrap(),
    ]);
    assert!(err.contains("no PEM certificate"), "{err}");
    assert!(refused(&["--upstream-tls", "sometimes"]).contains("invalid value"));

    // `db list` shows the mode and the CA's fingerprint, as openssl prints it.
    let list: serde_json::Value = serde_json::from_slice(
        &latchkey(&["db", "list", "--data-dir", d, "--output", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let listed = list["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|db| db["name"] == "scram.test")
        .unwrap();
    assert_eq!(listed["upstreamTls"], "verify-full");
    let fingerprint = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", test_ca])
        .output()
        .unwrap();
    let fingerprint = String::from_utf8(fingerprint.stdout).unwrap();
    assert_eq!(
        listed["upstreamCaSha256"][0].as_str().unwrap(),
        fingerprint.trim().rsplit('=').next().unwrap()
    );
    let text = stdout_ok(&latchkey(&["db", "list", "--data-dir", d]).output().unwrap());
    assert!(text.contains("upstream TLS"), "{text}");
    assert!(text.contains("verify-full"), "{text}");

    // Two session threads: consecutive clients alternate between them, so
    // a pooled connection is taken on the other thread and moves there.
    let lk = serve_latchkey(root, &data, &api, &["--pg-threads", "2"]);

    // (a) A TLS-only scram user, upstream verify-full against the test CA.
    assert_eq!(
        stdout_ok(&psql_to(
            &lk,
            "scram.test",
            "tlsuser",
            "postgres",
            SSL_OF_SELF
        )),
        "tlsuser true"
    );
    // verify-ca skips the host name; require checks nothing but still uses TLS.
    assert_eq!(
        stdout_ok(&psql_to(
            &lk,
            "verifyca.test",
            "tlsuser",
            "postgres",
            SSL_OF_SELF
        )),
        "tlsuser true"
    );
    assert_eq!(
        stdout_ok(&psql_to(
            &lk,
            "require.test",
            "tlsuser",
            "postgres",
            SSL_OF_SELF
        )),
        "tlsuser true"
    );

    // (b) certuser logs in with a certificate Latchkey minted; no password
    // is stored for it anywhere.
    let out = stdout_ok(&psql_to(
        &lk,
        "cert.test",
        "certuser",
        "postgres",
        "select current_user, ssl, client_dn, pid from pg_stat_ssl where pid = pg_backend_pid()",
    ));
    let fields: Vec<&str> = out.split('|').collect();
    assert_eq!(fields[..2], ["certuser", "t"], "{out}");
    assert!(fields[2].contains("CN=certuser"), "{out}");
    // The next client gets the same TLS backend from the pool, on the other
    // session thread.
    std::thread::sleep(std::time::Duration::from_millis(300)); // DISCARD ALL
    assert_eq!(
        stdout_ok(&psql_to(
            &lk,
            "cert.test",
            "certuser",
            "postgres",
            "select pid || '|' || ssl from pg_stat_ssl where pid = pg_backend_pid()"
        )),
        format!("{}|true", fields[3])
    );

    // (c) A wrong CA or a host name the certificate lacks: the client
    // gets the usual error, the log the reason, the gateway stays up.
    assert_upstream_refused(&psql_to(
        &lk,
        "wrongca.test",
        "tlsuser",
        "postgres",
        "select 1",
    ));
    assert_upstream_refused(&psql_to(
        &lk,
        "wronghost.test",
        "tlsuser",
        "postgres",
        "select 1",
    ));
    assert_eq!(
        stdout_ok(&psql_to(
            &lk,
            "scram.test",
            "tlsuser",
            "postgres",
            SSL_OF_SELF
        )),
        "tlsuser true"
    );
    // Without TLS upstream the server refuses tlsuser itself.
    assert_upstream_refused(&psql_to(
        &lk,
        "disable.test",
        "tlsuser",
        "postgres",
        "select 1",
    ));
    assert_eq!(
        stdout_ok(&psql_to(&lk, "disable.test", "app", "orders", SSL_OF_SELF)),
        "app false"
    );

    // (d) require against a server without TLS fails; prefer falls back.
    assert_upstream_refused(&psql_to(
        &lk,
        "require-plain.test",
        "app",
        "orders",
        "select 1",
    ));
    assert_eq!(
        stdout_ok(&psql_to(
            &lk,
            "prefer-plain.test",
            "app",
            "orders",
            SSL_OF_SELF
        )),
        "app false"
    );

    let log = std::fs::read_to_string(root.join("latchkey.log")).unwrap();
    assert!(log.contains("UnknownIssuer"), "{log}");
    assert!(
        log.contains("certificate not valid for name \"127.0.0.2\""),
        "{log}"
    );
    assert!(
        log.contains("does not offer TLS, and upstream TLS is require"),
        "{log}"
    );
    assert!(log.contains("pg_hba.conf rejects connection"), "{log}");
}
