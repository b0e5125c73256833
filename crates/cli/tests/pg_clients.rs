#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Real PostgreSQL client libraries through the gateway: psycopg 3 (libpq)
//! with a botocore token, tokio-postgres over rustls, a thousand sessions
//! at once, and databases registered from `latchkey.toml`.

mod common;
use common::*;

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;

/// psycopg 3 over libpq: the token from boto3 (botocore) with the
/// administrator's key, verify-full TLS, then parameters, server-side
/// prepared statements, a failed transaction, COPY and executemany
/// (pipeline mode). Prints one JSON object.
const PSYCOPG_SCRIPT: &str = r#"
import json, os, sys
import boto3, psycopg

port = int(os.environ["LK_PORT"])
token = boto3.session.Session().client("rds", region_name="us-east-1").generate_db_auth_token(
    DBHostname="localhost", Port=port, DBUsername="app", Region="us-east-1")
out = {"token_prefix": token.split("?")[0]}

conninfo = (f"host=localhost port={port} user=app dbname=orders sslmode=verify-full "
            f"sslrootcert={os.environ['LK_CA']} connect_timeout=10")
with psycopg.connect(conninfo, password=token) as conn:
    out["ssl_in_use"] = conn.pgconn.ssl_in_use
    out["user"] = conn.execute("SELECT current_user").fetchone()[0]
    cur = conn.cursor()

    cur.execute("SELECT %s::int + 1", (41,))
    out["param"] = cur.fetchone()[0]
    cur.execute("SELECT %s || '-' || %s", ("a\\b'c", "\u00e9t\u00e9"))
    out["text_param"] = cur.fetchone()[0]

    # prepare=True: Parse once into a named statement, then Bind/Execute.
    out["prepared"] = [cur.execute("SELECT %s::int * 2", (i,), prepare=True).fetchone()[0]
                       for i in range(5)]
    out["prepared_on_server"] = cur.execute(
        "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '\\_pg3\\_%%' "
        "AND statement LIKE '%%* 2%%'").fetchone()[0]
    conn.commit()

    # A transaction that fails half-way: the error, the aborted state, rollback.
    conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
    conn.execute("INSERT INTO items VALUES (1, 'kept')")
    conn.commit()
    conn.execute("INSERT INTO items VALUES (2, 'rolled back')")
    try:
        conn.execute("INSERT INTO items VALUES (1, 'duplicate')")
        out["duplicate_error"] = None
    except psycopg.errors.UniqueViolation as e:
        out["duplicate_error"] = e.sqlstate
    out["status_after_error"] = conn.info.transaction_status.name
    try:
        conn.execute("SELECT 1")
        out["in_failed_tx"] = None
    except psycopg.errors.InFailedSqlTransaction as e:
        out["in_failed_tx"] = e.sqlstate
    conn.rollback()
    out["status_after_rollback"] = conn.info.transaction_status.name
    out["items"] = conn.execute("SELECT id, name FROM items ORDER BY id").fetchall()

    # COPY FROM STDIN, 10,000 rows.
    conn.execute("CREATE TABLE bulk (id int, payload text)")
    with cur.copy("COPY bulk (id, payload) FROM STDIN") as copy:
        for i in range(10000):
            copy.write_row((i, f"row {i} " + "x" * (i % 50)))
    out["copy_rowcount"] = cur.rowcount
    conn.commit()
    out["bulk"] = list(conn.execute(
        "SELECT count(*), sum(id), count(DISTINCT payload) FROM bulk").fetchone())

    # executemany (libpq pipeline mode), with and without RETURNING.
    conn.execute("CREATE TABLE many (id int, label text)")
    cur.executemany("INSERT INTO many VALUES (%s, %s)", [(i, f"n{i}") for i in range(200)])
    out["executemany_rowcount"] = cur.rowcount
    cur.executemany("INSERT INTO many VALUES (%s, %s) RETURNING id * 10",
                    [(i, "r") for i in range(1000, 1003)], returning=True)
    returned = []
    while True:
        returned.append(cur.fetchone()[0])
        if not cur.nextset():
            break
    out["returning"] = returned
    conn.commit()
    out["many"] = list(conn.execute("SELECT count(*), sum(id) FROM many").fetchone())

print(json.dumps(out))
"#;

#[test]
fn psycopg_with_a_botocore_token() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey(root.path(), &pg);

    let script = root.path().join("psycopg_test.py");
    std::fs::write(&script, PSYCOPG_SCRIPT).unwrap();
    let mut python = Command::new("python3");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            python.env_remove(k);
        }
    }
    let out = python
        .arg(&script)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            lk.data.join("admin.credentials"),
        )
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("LK_PORT", lk.pg_port.to_string())
        .env("LK_CA", lk.data.join("ca.pem"))
        .output()
        .expect("python3 with boto3 and psycopg (scripts/test installs them)");
    let text = stdout_ok(&out);
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    println!("psycopg: {r}");

    assert_eq!(
        r["token_prefix"],
        format!("localhost:{}/", lk.pg_port),
        "botocore signed for the gateway"
    );
    assert_eq!(r["ssl_in_use"], true);
    assert_eq!(r["user"], "app");
    assert_eq!(r["param"], 42);
    assert_eq!(r["text_param"], "a\\b'c-\u{e9}t\u{e9}");
    assert_eq!(r["prepared"], serde_json::json!([0, 2, 4, 6, 8]));
    assert_eq!(
        r["prepared_on_server"], 1,
        "psycopg's named statement is prepared on the backend"
    );
    assert_eq!(r["duplicate_error"], "23505");
    assert_eq!(r["status_after_error"], "INERROR");
    assert_eq!(r["in_failed_tx"], "25P02");
    assert_eq!(r["status_after_rollback"], "IDLE");
    assert_eq!(r["items"], serde_json::json!([[1, "kept"]]));
    assert_eq!(r["copy_rowcount"], 10_000);
    assert_eq!(r["bulk"], serde_json::json!([10_000, 49_995_000, 10_000]));
    assert_eq!(r["executemany_rowcount"], 200);
    assert_eq!(r["returning"], serde_json::json!([10_000, 10_010, 10_020]));
    assert_eq!(r["many"], serde_json::json!([203, 19_900 + 3_003]));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// rustls with aws-lc-rs, trusting only Latchkey's CA.
fn tls(lk: &Latchkey) -> tokio_postgres_rustls::MakeRustlsConnect {
    let pem = std::fs::read(lk.data.join("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    assert!(!roots.is_empty(), "no certificate in ca.pem");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// An error with its SQLSTATE and message, or its cause.
fn explain(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => format!("{e}: {:?}", std::error::Error::source(e)),
    }
}

fn pg_config(lk: &Latchkey, token: &str) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host("localhost")
        .port(lk.pg_port)
        .user("app")
        .dbname("orders")
        .password(token)
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(Duration::from_secs(10));
    config
}

async fn connect(
    config: &tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
    let (client, connection) = config.connect(tls).await?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, task))
}

#[test]
fn tokio_postgres_over_tls() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey(root.path(), &pg);
    let token = aws_token(&lk, &[], "localhost", "app");
    let tls = tls(&lk);
    let config = pg_config(&lk, &token);

    runtime().block_on(async {
        let (client, _task) = connect(&config, tls.clone()).await.unwrap();

        // Parameters, in binary.
        let row = client
            .query_one("SELECT $1::int4 + 1, $2::text || '!'", &[&41i32, &"hi"])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
        assert_eq!(row.get::<_, String>(1), "hi!");
        let user: String = client
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(user, "app");

        // One prepared statement, executed several times.
        let statement = client
            .prepare("SELECT $1::int8 * $1::int8, $2::text")
            .await
            .unwrap();
        for i in 0..10i64 {
            let row = client
                .query_one(&statement, &[&i, &format!("n{i}")])
                .await
                .unwrap();
            assert_eq!(row.get::<_, i64>(0), i * i);
            assert_eq!(row.get::<_, String>(1), format!("n{i}"));
        }
        let rows = client
            .query("SELECT generate_series(1, $1::int4)", &[&1000i32])
            .await
            .unwrap();
        assert_eq!(rows.len(), 1000);

        // An error carries its SQLSTATE, and the session goes on.
        let err = client
            .query("SELECT * FROM no_such_table", &[])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE), "{err}");
        let row = client.query_one("SELECT 7::int4", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 7);

        // A cancel request (its own TLS connection, the key the gateway
        // handed out) stops a long query.
        let cancel = client.cancel_token();
        let started = Instant::now();
        let sleeper = client.query("SELECT pg_sleep(30)", &[]);
        let canceller = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            cancel.cancel_query(tls.clone()).await.unwrap();
        };
        let (slept, ()) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(15), sleeper),
            canceller
        );
        let err = slept
            .expect("pg_sleep(30) was not cancelled within 15 s")
            .unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
        let took = started.elapsed();
        println!("cancelled after {took:?}");
        assert!(took < Duration::from_secs(5), "cancel took {took:?}");
        let row = client.query_one("SELECT 8::int4", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 8);

        // A wrong token is refused as RDS refuses it.
        let bad = pg_config(&lk, "not a token");
        let err = connect(&bad, tls.clone()).await.err().unwrap();
        assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    });
}

#[test]
fn a_thousand_concurrent_connections() {
    const N: usize = 1000;
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start_with_settings(
        root.path(),
        &PgOptions::default(),
        &["max_connections=1100"],
    );
    let lk = start_latchkey_with(
        root.path(),
        &pg,
        &[
            "--pg-max-connections-per-ip",
            "2000",
            "--pg-max-connections-per-principal",
            "2000",
        ],
    );
    let token = aws_token(&lk, &[], "localhost", "app");
    let tls = tls(&lk);
    let config = Arc::new(pg_config(&lk, &token));

    runtime().block_on(async {
        let started = Instant::now();
        // At most 100 handshakes at a time; every session stays open.
        let connecting = Arc::new(tokio::sync::Semaphore::new(100));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..N {
            let (config, tls, connecting) = (config.clone(), tls.clone(), connecting.clone());
            set.spawn(async move {
                let permit = connecting.acquire_owned().await.unwrap();
                let (client, task) = connect(&config, tls).await?;
                drop(permit);
                let pid: i32 = client
                    .query_one("SELECT pg_backend_pid()", &[])
                    .await?
                    .get(0);
                Ok::<_, tokio_postgres::Error>((Arc::new(client), task, pid))
            });
        }
        let mut sessions = Vec::with_capacity(N);
        let mut errors = Vec::new();
        while let Some(done) = set.join_next().await {
            match done.unwrap() {
                Ok(session) => sessions.push(session),
                Err(e) => errors.push(explain(&e)),
            }
        }
        let connected = started.elapsed();
        println!(
            "{} of {N} sessions open in {connected:?}, {} failed",
            sessions.len(),
            errors.len()
        );
        assert!(
            errors.is_empty(),
            "{} connections failed, e.g. {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        );
        assert_eq!(sessions.len(), N);
        let pids: HashSet<i32> = sessions.iter().map(|(_, _, pid)| *pid).collect();
        assert_eq!(pids.len(), N, "backend pids are not all distinct");

        // All of them at once: PostgreSQL sees N sessions of app, and every
        // one still answers.
        let active: i64 = sessions[0]
            .0
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(active, i64::try_from(N).unwrap());
        let mut again = tokio::task::JoinSet::new();
        for (i, (client, _, pid)) in sessions.iter().enumerate() {
            let (client, pid) = (client.clone(), *pid);
            again.spawn(async move {
                let row = client
                    .query_one(&format!("SELECT pg_backend_pid(), {i}"), &[])
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, i32>(0), pid);
                assert_eq!(row.get::<_, i32>(1), i32::try_from(i).unwrap());
            });
        }
        while let Some(done) = again.join_next().await {
            done.unwrap();
        }
        let held = started.elapsed();

        let tasks: Vec<_> = sessions
            .into_iter()
            .map(|(client, task, _)| {
                assert_eq!(Arc::strong_count(&client), 1);
                drop(client);
                task
            })
            .collect();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("a connection did not close")
                .unwrap();
        }
        println!(
            "{N} sessions: connected in {connected:?}, checked by {held:?}, closed by {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn databases_from_latchkey_toml() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let config = root.path().join("latchkey.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[databases]]
name = "inventory"
endpoints = ["localhost"]
upstream = "127.0.0.1:{}"
upstream_tls = "disable"
tags = {{ env = "staging", team = "data" }}
password_env = {{ app = "LK_TEST_APP_PASSWORD" }}
"#,
            pg.port
        ),
    )
    .unwrap();
    let data = root.path().join("data");
    let api = format!("127.0.0.1:{}", free_port());
    let d = data.to_str().unwrap();
    let c = config.to_str().unwrap();

    // Without the password's variable the configuration is refused.
    let out = latchkey(&["init", "--config", c, "--data-dir", d, "--listen", &api])
        .env_remove("LK_TEST_APP_PASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LK_TEST_APP_PASSWORD"), "{err}");

    stdout_ok(
        &latchkey(&["init", "--config", c, "--data-dir", d, "--listen", &api])
            .env("LK_TEST_APP_PASSWORD", "app-secret")
            .output()
            .unwrap(),
    );
    let list: serde_json::Value = serde_json::from_str(&stdout_ok(
        &latchkey(&["db", "list", "--data-dir", d, "--output", "json"])
            .output()
            .unwrap(),
    ))
    .unwrap();
    let dbs = list["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), 1, "{list}");
    let db = &dbs[0];
    assert_eq!(db["name"], "inventory");
    assert_eq!(db["engine"], "postgres");
    assert_eq!(db["endpoints"], serde_json::json!(["localhost"]));
    assert_eq!(db["upstream"], format!("127.0.0.1:{}", pg.port));
    assert_eq!(db["upstreamTls"], "disable");
    let mut tags: Vec<(String, String)> = db["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().to_owned(),
                t["Value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            ("env".to_owned(), "staging".to_owned()),
            ("team".to_owned(), "data".to_owned())
        ]
    );

    // Served with the same file: the gateway logs in upstream with the
    // password from the environment, and policies see the tags.
    let lk = serve_latchkey_env(
        root.path(),
        &data,
        &api,
        &["--config", c],
        &[("LK_TEST_APP_PASSWORD", "app-secret")],
    );
    let token = aws_token(&lk, &[], "localhost", "app");
    let out = psql(&lk, "app", &token, "verify-full", "SELECT current_user");
    assert_eq!(stdout_ok(&out), "app");

    let policy = |team: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:us-east-1:*:dbuser:*/app","Condition":{{"StringEquals":{{"aws:ResourceTag/team":"{team}"}}}}}}]}}"#
        )
    };
    let data_team = user_with_policy(&lk, "data-team", &policy("data"));
    let out = psql(
        &lk,
        "app",
        &token_with(&lk, &data_team),
        "verify-full",
        "SELECT 'tagged ' || 42",
    );
    assert_eq!(stdout_ok(&out), "tagged 42");
    let web_team = user_with_policy(&lk, "web-team", &policy("web"));
    assert_denied(
        &psql(
            &lk,
            "app",
            &token_with(&lk, &web_team),
            "verify-full",
            "SELECT 1",
        ),
        "app",
    );
}
