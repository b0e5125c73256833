//! Attacks on the gateways' login pipeline on a live stack (PostgreSQL and
//! MariaDB behind `latchkey serve`): every denial answers only what RDS
//! would and records its precise kind; pooling never crosses users,
//! schemas or startup parameters and never keeps a connection the gateway
//! ended; cancel keys and `KILL` stay within their principal; revocation
//! ends live sessions; plaintext, slow clients and limits.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sql::pg_tls;
use common::*;
use mysql_async::prelude::*;

const ALLOW_CONNECT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#;
const S3_ONLY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;

/// Deactivates `creds`' access key of IAM user `user`.
fn deactivate_key(lk: &Latchkey, user: &str, creds: &[(String, String)]) {
    admin_cli(
        lk,
        &[
            "iam",
            "update-access-key",
            "--user-name",
            user,
            "--access-key-id",
            &akid(creds),
            "--status",
            "Inactive",
        ],
    );
}

/// A psql session as `app` through the gateway, sleeping `seconds`.
fn sleeping_psql(lk: &Latchkey, token: &str, seconds: u32) -> std::process::Child {
    Command::new("psql")
        .arg(conninfo(lk, "app", "verify-full"))
        .args([
            "-X",
            "-A",
            "-t",
            "-c",
            &format!("SELECT pg_sleep({seconds})"),
        ])
        .env("PGPASSWORD", token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Deletes IAM user `name` (its key `key` and its `db` policy first) and
/// creates a user of the same name again, allowed to connect.
fn recreate_user(lk: &Latchkey, name: &str, key: &str) {
    admin_cli(
        lk,
        &[
            "iam",
            "delete-access-key",
            "--user-name",
            name,
            "--access-key-id",
            key,
        ],
    );
    admin_cli(
        lk,
        &[
            "iam",
            "delete-user-policy",
            "--user-name",
            name,
            "--policy-name",
            "db",
        ],
    );
    admin_cli(lk, &["iam", "delete-user", "--user-name", name]);
    let _ = user_with_policy(lk, name, ALLOW_CONNECT);
}

fn akid(creds: &[(String, String)]) -> String {
    creds
        .iter()
        .find(|(k, _)| k == "AWS_ACCESS_KEY_ID")
        .unwrap()
        .1
        .clone()
}

fn tamper(token: &str) -> String {
    let mut t = token.to_owned();
    let last = t.pop().unwrap();
    t.push(if last == '0' { '1' } else { '0' });
    t
}

fn setup_my(root: &Path, serve_flags: &[&str]) -> (MariaDb, Latchkey, u16) {
    let db = MariaDb::start(root);
    db.sql(
        "CREATE DATABASE shop; CREATE DATABASE other;
         CREATE USER app@'%' IDENTIFIED BY 'app-secret';
         GRANT ALL ON shop.* TO app@'%'; GRANT ALL ON other.* TO app@'%';
         CREATE USER ed@'%' IDENTIFIED BY 'ed-secret';
         GRANT ALL ON shop.* TO ed@'%';",
    );
    let (data, api) = init_latchkey(root, &[]);
    register_db(
        &data,
        &[
            "--name",
            "shop",
            "--engine",
            "mysql",
            "--endpoint",
            "localhost",
            "--upstream",
            &format!("127.0.0.1:{}", db.port),
            "--upstream-tls",
            "disable",
        ],
    );
    set_db_password(&data, "shop", "app", "app-secret");
    set_db_password(&data, "shop", "ed", "ed-secret");
    let flags: Vec<&str> = serve_flags
        .iter()
        .copied()
        .chain(["--api-metrics"])
        .collect();
    let lk = serve_latchkey(root, &data, &api, &flags);
    let api_port = api.rsplit(':').next().unwrap().parse().unwrap();
    (db, lk, api_port)
}

fn pooled(lk: &Latchkey, api_port: u16) -> u64 {
    let metrics = Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(lk.data.join("ca.pem"))
        .arg(format!("https://localhost:{api_port}/metrics"))
        .output()
        .unwrap();
    stdout_ok(&metrics)
        .lines()
        .find_map(|l| l.strip_prefix("latchkey_pool_idle_connections "))
        .unwrap()
        .parse()
        .unwrap()
}

fn wait_pooled(lk: &Latchkey, api_port: u16, before: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pooled(lk, api_port) <= before {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn mytoken(lk: &Latchkey, creds: &[(String, String)], host: &str, user: &str) -> String {
    let creds: Vec<(&str, &str)> = creds
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    aws_token_for_port(lk, lk.mysql_port, &creds, host, user)
}

fn opts(lk: &Latchkey, user: &str, token: &str, db: Option<&str>) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("localhost")
        .tcp_port(lk.mysql_port)
        .user(Some(user))
        .pass(Some(token))
        .db_name(db)
        .enable_cleartext_plugin(true)
        .ssl_opts(Some(
            mysql_async::SslOpts::default().with_root_certs(vec![lk.data.join("ca.pem").into()]),
        ))
        .into()
}

fn failures(lk: &Latchkey, engine: &str) -> Vec<String> {
    audit_text(lk)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["database"]["engine"] == engine)
        .filter_map(|e| e["database"]["failure"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn mysql_denials_pooling_kill_revocation() {
    let root = tempfile::tempdir().unwrap();
    let (db, lk, api_port) = setup_my(root.path(), &[]);
    let log = || std::fs::read_to_string(root.path().join("latchkey.log")).unwrap();
    let admin = mytoken(&lk, &[], "localhost", "app");
    assert_eq!(
        stdout_ok(&mariadb(&lk, "app", &admin, &["-e", "SELECT 1"])),
        "1"
    );

    // ---- Denials: each answered as RDS would, each recorded precisely.
    let alice = user_with_policy(&lk, "alice", ALLOW_CONNECT);
    let s3 = user_with_policy(&lk, "s3only", S3_ONLY);
    let inactive = user_with_policy(&lk, "inactive", ALLOW_CONNECT);
    deactivate_key(&lk, "inactive", &inactive);
    let bogus = vec![
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            "AKIAAAAAAAAAAAAAAAAA".to_owned(),
        ),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "x".repeat(40)),
    ];
    let cases: Vec<(&str, String, &str)> = vec![
        ("malformed", "not-a-token".to_owned(), "app"),
        ("wrong user", admin.clone(), "ed"),
        (
            "wrong endpoint",
            mytoken(&lk, &[], "elsewhere.example", "app"),
            "app",
        ),
        (
            "wrong port",
            aws_token_for_port(&lk, lk.pg_port, &[], "localhost", "app"),
            "app",
        ),
        ("expired", expired_token(&lk, lk.mysql_port, "app"), "app"),
        ("bad signature", tamper(&admin), "app"),
        (
            "unknown key",
            mytoken(&lk, &bogus, "localhost", "app"),
            "app",
        ),
        (
            "inactive key",
            mytoken(&lk, &inactive, "localhost", "app"),
            "app",
        ),
        ("policy deny", mytoken(&lk, &s3, "localhost", "app"), "app"),
    ];
    for (what, token, user) in &cases {
        let out = mariadb(&lk, user, token, &["-e", "SELECT 1"]);
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!("[my denial] {what}: {}", err.trim());
        assert!(!out.status.success(), "{what} got in");
        assert!(
            err.contains(&format!(
                "ERROR 1045 (28000): Access denied for user '{user}'@'127.0.0.1' (using password: YES)"
            )),
            "{what}: {err}"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    eprintln!("[my denial] audit kinds: {:?}", failures(&lk, "mysql"));

    // ---- Pooling: a client switches schema, sets state, leaves.
    let before = pooled(&lk, api_port);
    let first = mariadb(
        &lk,
        "app",
        &admin,
        &[
            "-D",
            "shop",
            "-e",
            "USE other; SET @leak='secret'; CREATE TEMPORARY TABLE tmp_leak(x int); SELECT DATABASE(), CONNECTION_ID()",
        ],
    );
    eprintln!("[pool] first: {}", stdout_ok(&first));
    let was_pooled = wait_pooled(&lk, api_port, before);
    eprintln!("[pool] pooled after first: {was_pooled}");
    let second = mariadb(
        &lk,
        "app",
        &mytoken(&lk, &alice, "localhost", "app"),
        &[
            "-D",
            "shop",
            "-e",
            "SELECT DATABASE(), IFNULL(@leak,'none'), CONNECTION_ID(), (SELECT COUNT(*) FROM information_schema.tables WHERE table_name='tmp_leak')",
        ],
    );
    let second = stdout_ok(&second);
    eprintln!("[pool] second (alice, -D shop): {second}");
    assert!(second.starts_with("shop\tnone\t"), "{second}");
    // A client asking for `other` is never handed a `shop` connection.
    let third = stdout_ok(&mariadb(
        &lk,
        "app",
        &admin,
        &["-D", "other", "-e", "SELECT DATABASE()"],
    ));
    assert_eq!(third, "other");
    // A different database user never gets app's connection.
    let ed = stdout_ok(&mariadb(
        &lk,
        "ed",
        &mytoken(&lk, &[], "localhost", "ed"),
        &["-D", "shop", "-e", "SELECT CURRENT_USER()"],
    ));
    assert_eq!(ed, "ed@%");

    // ---- KILL of another principal's connection.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let alice_token = mytoken(&lk, &alice, "localhost", "app");
    let mut victim = rt
        .block_on(mysql_async::Conn::new(opts(
            &lk,
            "app",
            &admin,
            Some("shop"),
        )))
        .unwrap();
    let victim_gateway_id = victim.id();
    let victim_server_id: u64 = rt
        .block_on(victim.query_first("SELECT CONNECTION_ID()"))
        .unwrap()
        .unwrap();
    eprintln!("[kill] victim gateway id {victim_gateway_id}, server id {victim_server_id}");
    for id in [victim_gateway_id as u64, victim_server_id] {
        for stmt in [format!("KILL {id}"), format!("KILL QUERY {id}")] {
            let out = mariadb(&lk, "app", &alice_token, &["-e", &stmt]);
            eprintln!(
                "[kill] alice `{stmt}`: ok={} {}",
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let alive: Result<Option<u8>, _> = rt.block_on(victim.query_first("SELECT 1"));
    eprintln!("[kill] victim after alice's kills: {alive:?}");
    assert!(
        alive.is_ok(),
        "another principal killed the admin's session"
    );

    // ---- Revocation sweep: deactivate alice's key while she is connected.
    let mut alice_conn = rt
        .block_on(mysql_async::Conn::new(opts(
            &lk,
            "app",
            &alice_token,
            Some("shop"),
        )))
        .unwrap();
    rt.block_on(alice_conn.query_drop("SELECT 1")).unwrap();
    let before = pooled(&lk, api_port);
    deactivate_key(&lk, "alice", &alice);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ended = false;
    while Instant::now() < deadline {
        if rt.block_on(alice_conn.query_drop("SELECT 1")).is_err() {
            ended = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("[revoke] mysql session of deactivated key ended: {ended}");
    std::thread::sleep(Duration::from_secs(1));
    eprintln!(
        "[revoke] pooled before {before}, after {}",
        pooled(&lk, api_port)
    );
    assert!(ended, "deactivated key's session lives on\n{}", log());
    drop(db);
}

fn pg_setup(root: &Path, extra: &[&str]) -> (Postgres, Latchkey, u16) {
    let pg = Postgres::start(root);
    let api_flags: Vec<&str> = extra.iter().copied().chain(["--api-metrics"]).collect();
    let lk = start_latchkey_with(root, &pg, &api_flags);
    let api = std::fs::read_to_string(lk.data.join("aws.config")).unwrap_or_default();
    let _ = api;
    (pg, lk, 0)
}

#[test]
fn pg_denials_and_revocation() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    pg.sql("CREATE ROLE other LOGIN PASSWORD 'other-secret'");
    let (data, api) = init_latchkey(root.path(), &[]);
    register_db(
        &data,
        &[
            "--name",
            "orders",
            "--endpoint",
            "localhost",
            "--upstream",
            &format!("127.0.0.1:{}", pg.port),
        ],
    );
    set_db_password(&data, "orders", "app", "app-secret");
    let lk = serve_latchkey(root.path(), &data, &api, &["--api-metrics"]);
    let api_port: u16 = api.rsplit(':').next().unwrap().parse().unwrap();
    let admin = aws_token(&lk, &[], "localhost", "app");
    assert_eq!(
        stdout_ok(&psql(&lk, "app", &admin, "verify-full", "SELECT 1")),
        "1"
    );

    let alice = user_with_policy(&lk, "alice", ALLOW_CONNECT);
    let s3 = user_with_policy(&lk, "s3only", S3_ONLY);
    let inactive = user_with_policy(&lk, "inactive", ALLOW_CONNECT);
    deactivate_key(&lk, "inactive", &inactive);
    let gone = user_with_policy(&lk, "gone", ALLOW_CONNECT);
    let gone_token = token_with(&lk, &gone);
    admin_cli(
        &lk,
        &[
            "iam",
            "delete-access-key",
            "--user-name",
            "gone",
            "--access-key-id",
            &akid(&gone),
        ],
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "delete-user-policy",
            "--user-name",
            "gone",
            "--policy-name",
            "db",
        ],
    );
    admin_cli(&lk, &["iam", "delete-user", "--user-name", "gone"]);
    let bogus = vec![
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            "AKIAAAAAAAAAAAAAAAAA".to_owned(),
        ),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "x".repeat(40)),
    ];
    let cases: Vec<(&str, String, &str)> = vec![
        ("malformed", "not-a-token".to_owned(), "app"),
        ("empty", String::new(), "app"),
        ("wrong user", admin.clone(), "other"),
        (
            "wrong endpoint",
            aws_token(&lk, &[], "elsewhere.example", "app"),
            "app",
        ),
        (
            "wrong port",
            aws_token_for_port(&lk, lk.mysql_port, &[], "localhost", "app"),
            "app",
        ),
        ("expired", expired_token(&lk, lk.pg_port, "app"), "app"),
        ("bad signature", tamper(&admin), "app"),
        ("unknown key", token_with(&lk, &bogus), "app"),
        ("inactive key", token_with(&lk, &inactive), "app"),
        ("deleted user", gone_token, "app"),
        ("policy deny", token_with(&lk, &s3), "app"),
        (
            "no stored upstream password",
            aws_token(&lk, &[], "localhost", "other"),
            "other",
        ),
    ];
    for (what, token, user) in &cases {
        let out = psql(&lk, user, token, "verify-full", "SELECT 1");
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "[pg denial] {what}: ok={} {}",
            out.status.success(),
            err.trim()
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    eprintln!("[pg denial] audit kinds: {:?}", failures(&lk, "postgres"));

    // Revocation sweep: deactivate a key with a live session; the ended
    // session must not be pooled.
    let alice_token = token_with(&lk, &alice);
    let mut running = sleeping_psql(&lk, &alice_token, 30);
    std::thread::sleep(Duration::from_secs(2));
    deactivate_key(&lk, "alice", &alice);
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut ended = false;
    while Instant::now() < deadline {
        if running.try_wait().unwrap().is_some() {
            ended = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("[pg revoke] ended={ended} after {:?}", started.elapsed());
    if !ended {
        let _ = running.kill();
    }
    let _ = running.wait();
    let _ = api_port;
    assert!(ended, "deactivated key's postgres session lives on");
}

/// Seconds until the gateway closes a connection that sends `send` and
/// then nothing.
fn slowloris(port: u16, send: &[u8]) -> Duration {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = Instant::now();
    s.write_all(send).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[test]
fn pg_plaintext_slowloris_pool_params_recreated_user() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    pg.sql("CREATE SCHEMA evil AUTHORIZATION app");
    let (data, api) = init_latchkey(root.path(), &[]);
    register_db(
        &data,
        &[
            "--name",
            "orders",
            "--endpoint",
            "localhost",
            "--upstream",
            &format!("127.0.0.1:{}", pg.port),
        ],
    );
    set_db_password(&data, "orders", "app", "app-secret");
    let lk = serve_latchkey(
        root.path(),
        &data,
        &api,
        &["--api-metrics", "--gateway-startup-timeout", "2s"],
    );
    let api_port: u16 = api.rsplit(':').next().unwrap().parse().unwrap();
    let admin = aws_token(&lk, &[], "localhost", "app");

    // Slowloris on both ports.
    let pg_idle = slowloris(lk.pg_port, b"");
    let pg_ssl_stall = slowloris(lk.pg_port, &[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]);
    let pg_partial = slowloris(lk.pg_port, &[0, 0, 0, 100, 0, 3]);
    let my_idle = slowloris(lk.mysql_port, b"");
    eprintln!(
        "[slowloris] pg idle {pg_idle:?}, pg after SSLRequest {pg_ssl_stall:?}, pg partial startup {pg_partial:?}, mysql idle {my_idle:?}"
    );
    for d in [pg_idle, pg_ssl_stall, pg_partial, my_idle] {
        assert!(d < Duration::from_secs(6), "{d:?}");
    }

    // Plaintext PostgreSQL is refused (not allowed).
    let out = psql(&lk, "app", &admin, "disable", "SELECT 1");
    eprintln!(
        "[plaintext] pg sslmode=disable: ok={} {}",
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    assert!(!out.status.success());
    // Plaintext MySQL is refused.
    let out = Command::new("mariadb")
        .args([
            "--protocol=TCP",
            "--host=127.0.0.1",
            &format!("--port={}", lk.mysql_port),
            "--user=app",
            "--skip-ssl",
            "--connect-timeout=5",
            "-e",
            "SELECT 1",
        ])
        .env("MYSQL_PWD", "x")
        .output()
        .unwrap();
    eprintln!(
        "[plaintext] mysql --skip-ssl: ok={} {}",
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    assert!(!out.status.success());

    // Pooling: startup parameters are part of the key.
    let before = {
        let m = Command::new("curl")
            .args(["-sf", "--cacert"])
            .arg(lk.data.join("ca.pem"))
            .arg(format!("https://localhost:{api_port}/metrics"))
            .output()
            .unwrap();
        stdout_ok(&m)
            .lines()
            .find_map(|l| l.strip_prefix("latchkey_pool_idle_connections "))
            .unwrap()
            .to_owned()
    };
    let first = Command::new("psql")
        .arg(conninfo(&lk, "app", "verify-full"))
        .args([
            "-X",
            "-A",
            "-t",
            "-c",
            "SET ROLE NONE; SELECT current_setting('search_path'), pg_backend_pid(); SELECT pg_advisory_lock(42); PREPARE p AS SELECT 1; SET statement_timeout = 1234",
        ])
        .env("PGPASSWORD", &admin)
        .env("PGOPTIONS", "-c search_path=evil")
        .output()
        .unwrap();
    eprintln!(
        "[pg pool] first (search_path=evil): {}",
        stdout_ok(&first).replace('\n', " | ")
    );
    std::thread::sleep(Duration::from_secs(1));
    let second = stdout_ok(&psql(
        &lk,
        "app",
        &admin,
        "verify-full",
        "SELECT current_setting('search_path') || ' ' || pg_backend_pid() || ' ' || current_setting('statement_timeout') || ' locks=' || (SELECT count(*) FROM pg_locks WHERE locktype='advisory') || ' prepared=' || (SELECT count(*) FROM pg_prepared_statements)",
    ));
    eprintln!("[pg pool] pooled before {before}; second (no options): {second}");
    assert!(!second.contains("evil"), "{second}");
    let third = stdout_ok(
        &Command::new("psql")
            .arg(conninfo(&lk, "app", "verify-full"))
            .args(["-X", "-A", "-t", "-c", "SELECT current_setting('search_path') || ' ' || pg_backend_pid() || ' ' || current_setting('statement_timeout') || ' locks=' || (SELECT count(*) FROM pg_locks WHERE locktype='advisory') || ' prepared=' || (SELECT count(*) FROM pg_prepared_statements)"])
            .env("PGPASSWORD", &admin)
            .env("PGOPTIONS", "-c search_path=evil")
            .output()
            .unwrap(),
    );
    eprintln!("[pg pool] third (search_path=evil again): {third}");
    assert!(
        third.contains("locks=0") && third.contains("prepared=0") && !third.contains("1234"),
        "{third}"
    );

    // A user deleted and re-created under the same name: its old
    // temporary credentials must not work.
    let bob = user_with_policy(&lk, "bob", ALLOW_CONNECT);
    let bob_session = session_credentials(&lk, api_port, &bob);
    assert_eq!(
        stdout_ok(&psql(
            &lk,
            "app",
            &token_with(&lk, &bob_session),
            "verify-full",
            "SELECT 1"
        )),
        "1"
    );
    recreate_user(&lk, "bob", &akid(&bob));
    let out = psql(
        &lk,
        "app",
        &token_with(&lk, &bob_session),
        "verify-full",
        "SELECT 1",
    );
    eprintln!(
        "[recreated] old session of re-created bob: ok={} {}",
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    assert_denied(&out, "app");
    std::thread::sleep(Duration::from_millis(500));
    eprintln!("[pg] audit kinds: {:?}", failures(&lk, "postgres"));
}

#[test]
fn pg_allow_plaintext_and_keep_revoked() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey_with(
        root.path(),
        &pg,
        &["--postgres-allow-plaintext", "--keep-revoked-sessions"],
    );
    let admin = aws_token(&lk, &[], "localhost", "app");
    let out = psql(&lk, "app", &admin, "disable", "SELECT 1");
    eprintln!(
        "[plaintext allowed] ok={} {} {}",
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    assert!(out.status.success());
    // SecureTransport-conditioned policy must deny the plaintext client.
    let tls_only = user_with_policy(
        &lk,
        "tlsonly",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#,
    );
    let t = token_with(&lk, &tls_only);
    let plain = psql(&lk, "app", &t, "disable", "SELECT 1");
    let tls = psql(&lk, "app", &t, "verify-full", "SELECT 1");
    eprintln!(
        "[securetransport] plaintext ok={} tls ok={}",
        plain.status.success(),
        tls.status.success()
    );
    assert!(!plain.status.success() && tls.status.success());

    let alice = user_with_policy(&lk, "alice", ALLOW_CONNECT);
    let alice_token = token_with(&lk, &alice);
    let mut running = sleeping_psql(&lk, &alice_token, 8);
    std::thread::sleep(Duration::from_secs(2));
    deactivate_key(&lk, "alice", &alice);
    let status = running.wait().unwrap();
    eprintln!("[keep-revoked] session status {status}");
    assert!(
        status.success(),
        "--keep-revoked-sessions did not keep the session"
    );
}

/// A cancel key from a finished session must not cancel the next client
/// of the same (pooled) backend.
#[test]
fn pg_stale_cancel_key_on_pooled_backend() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey(root.path(), &pg);
    let alice = user_with_policy(&lk, "alice", ALLOW_CONNECT);
    let alice_token = token_with(&lk, &alice);
    let admin = aws_token(&lk, &[], "localhost", "app");
    let tls = pg_tls(&lk);
    let cfg = |token: &str| {
        let mut c = tokio_postgres::Config::new();
        c.host("localhost")
            .port(lk.pg_port)
            .user("app")
            .dbname("orders")
            .password(token)
            .ssl_mode(tokio_postgres::config::SslMode::Require)
            .connect_timeout(Duration::from_secs(10));
        c
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (a, conn) = cfg(&alice_token).connect(tls.clone()).await.unwrap();
        let task = tokio::spawn(conn);
        let pid_a: i32 = a
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let stale = a.cancel_token();
        drop(a);
        let _ = task.await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let (b, conn) = cfg(&admin).connect(tls.clone()).await.unwrap();
        tokio::spawn(conn);
        let pid_b: i32 = b
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        eprintln!(
            "[cancel] alice backend {pid_a}, admin backend {pid_b} (pooled: {})",
            pid_a == pid_b
        );
        let sleeper = b.query("SELECT pg_sleep(3)", &[]);
        let canceller = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let r = stale.cancel_query(tls.clone()).await;
            eprintln!("[cancel] stale cancel sent: {r:?}");
        };
        let (slept, ()) = tokio::join!(sleeper, canceller);
        eprintln!(
            "[cancel] admin's query after alice's stale cancel: {:?}",
            slept.as_ref().map(|r| r.len()).map_err(|e| e.to_string())
        );
        assert!(
            slept.is_ok(),
            "a stale cancel key cancelled another client's query"
        );
    });
}

/// Another principal sharing the database user tries to reach the
/// admin's upstream thread with KILL in forms the interceptor may miss.
#[test]
fn mysql_kill_bypass_forms() {
    let root = tempfile::tempdir().unwrap();
    let (_db, lk, _api_port) = setup_my(root.path(), &[]);
    let admin = mytoken(&lk, &[], "localhost", "app");
    let alice = user_with_policy(&lk, "alice", ALLOW_CONNECT);
    let alice_token = mytoken(&lk, &alice, "localhost", "app");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut victim = rt
        .block_on(mysql_async::Conn::new(opts(
            &lk,
            "app",
            &admin,
            Some("shop"),
        )))
        .unwrap();
    let sid: u64 = rt
        .block_on(victim.query_first("SELECT CONNECTION_ID()"))
        .unwrap()
        .unwrap();
    let gid = victim.id();
    let forms = [
        format!("KILL /*x*/ {sid}"),
        format!("kill\tconnection\t{sid}"),
        format!("SELECT 1; KILL {sid}"),
        format!("DO 1; KILL QUERY {sid}"),
        format!("PREPARE s FROM 'KILL {sid}'; EXECUTE s"),
        format!("EXECUTE IMMEDIATE 'KILL {sid}'"),
        format!("KILL QUERY ID (SELECT {sid})"),
        "KILL USER app".to_owned(),
        "KILL CONNECTION USER 'app'".to_owned(),
        format!("KILL {gid}"),
        format!("/*!50000 KILL {sid} */"),
        format!("BEGIN NOT ATOMIC KILL {sid}; END"),
    ];
    for stmt in &forms {
        let out = mariadb(&lk, "app", &alice_token, &["-e", stmt]);
        let alive: Result<Option<u8>, _> = rt.block_on(victim.query_first("SELECT 1"));
        eprintln!(
            "[kill-bypass] `{stmt}`: ok={} {} | victim alive={}",
            out.status.success(),
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or(""),
            alive.is_ok()
        );
        if alive.is_err() {
            panic!("`{stmt}` by another principal killed the admin's session");
        }
    }
}

/// The same key twice: the second client must get the pooled connection
/// back on its login schema with no state of the first.
#[test]
fn mysql_pooled_schema_reset_same_key() {
    let root = tempfile::tempdir().unwrap();
    let (db, lk, api_port) = setup_my(root.path(), &[]);
    db.sql(
        "CREATE TABLE shop.t(x int); CREATE TABLE other.t(x int); INSERT INTO other.t VALUES (666)",
    );
    let alice = user_with_policy(&lk, "alice", ALLOW_CONNECT);
    for (who, creds) in [("admin", vec![]), ("alice", alice.clone())] {
        let token = mytoken(&lk, &creds, "localhost", "app");
        let before = pooled(&lk, api_port);
        let first = stdout_ok(&mariadb(
            &lk,
            "app",
            &token,
            &[
                "-D",
                "shop",
                "-e",
                "USE other; SET @leak='secret'; SET SESSION sql_mode='ANSI_QUOTES'; CREATE TEMPORARY TABLE tmp_leak(x int); SELECT CONNECTION_ID()",
            ],
        ));
        assert!(wait_pooled(&lk, api_port, before), "{who}: not pooled");
        let second = stdout_ok(&mariadb(
            &lk,
            "app",
            &mytoken(&lk, &creds, "localhost", "app"),
            &[
                "-D",
                "shop",
                "-e",
                "SELECT CONNECTION_ID(), DATABASE(), IFNULL(@leak,'none'), @@sql_mode LIKE '%ANSI_QUOTES%', (SELECT COUNT(*) FROM t), (SELECT COUNT(*) FROM information_schema.tables WHERE table_name='tmp_leak' AND table_type LIKE '%TEMPORARY%')",
            ],
        ));
        eprintln!("[my pool {who}] first conn {first}; second: {second}");
        let cols: Vec<&str> = second.split('\t').collect();
        assert_eq!(cols[0], first, "{who}: pooled connection not reused");
        assert_eq!(
            &cols[1..],
            ["shop", "none", "0", "0", "0"],
            "{who}: {second}"
        );
    }
    // A client with no default schema, USE shop, then leaves: not pooled,
    // or if pooled, never handed to a client of another schema.
    let token = mytoken(&lk, &[], "localhost", "app");
    let before = pooled(&lk, api_port);
    let _ = stdout_ok(&mariadb(&lk, "app", &token, &["-e", "USE other; SELECT 1"]));
    std::thread::sleep(Duration::from_secs(1));
    eprintln!(
        "[my pool] no-schema client pooled: {}",
        pooled(&lk, api_port) > before
    );
}

fn live_mysql_ends(
    lk: &Latchkey,
    creds: &[(String, String)],
    act: impl FnOnce(),
) -> Option<Duration> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let token = mytoken(lk, creds, "localhost", "app");
    let mut conn = rt
        .block_on(mysql_async::Conn::new(opts(
            lk,
            "app",
            &token,
            Some("shop"),
        )))
        .unwrap();
    rt.block_on(conn.query_drop("SELECT 1")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    act();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if rt.block_on(conn.query_drop("SELECT 1")).is_err() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

/// Live sessions of a re-created user's old temporary credentials and of
/// a role whose sessions are revoked end.
#[test]
fn mysql_live_recreated_user_and_role_revocation() {
    let root = tempfile::tempdir().unwrap();
    let (_db, lk, api_port) = setup_my(root.path(), &[]);
    let bob = user_with_policy(&lk, "bob", ALLOW_CONNECT);
    let bob_session = session_credentials(&lk, api_port, &bob);
    let ended = live_mysql_ends(&lk, &bob_session, || {
        recreate_user(&lk, "bob", &akid(&bob));
    });
    eprintln!("[live] re-created bob's old session ended: {ended:?}");

    let account = admin_cli(&lk, &["sts", "get-caller-identity"])["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    admin_cli(
        &lk,
        &[
            "iam",
            "create-role",
            "--role-name",
            "dbrole",
            "--assume-role-policy-document",
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"sts:AssumeRole"}}]}}"#
            ),
        ],
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "put-role-policy",
            "--role-name",
            "dbrole",
            "--policy-name",
            "p",
            "--policy-document",
            ALLOW_CONNECT,
        ],
    );
    let assumed = admin_cli(
        &lk,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &format!("arn:aws:iam::{account}:role/dbrole"),
            "--role-session-name",
            "s1",
        ],
    );
    let role_creds = common::api::Creds::from_sts(&assumed["Credentials"]).env_vars();
    let ended_role = live_mysql_ends(&lk, &role_creds, || {
        latchkey_api(
            &lk,
            api_port,
            &["iam", "revoke-sessions", "--role-name", "dbrole"],
        );
    });
    eprintln!("[live] role session after revoke-sessions ended: {ended_role:?}");
    std::thread::sleep(Duration::from_millis(500));
    eprintln!("[live] audit kinds: {:?}", failures(&lk, "mysql"));
    assert!(ended.is_some(), "re-created user's old session lives on");
    assert!(ended_role.is_some(), "revoked role session lives on");
}

/// Sessions the gateway ends (oversized message) are not pooled; the
/// per-principal limit answers without more than RDS would say.
#[test]
fn pg_oversized_not_pooled_and_limits() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey_with(
        root.path(),
        &pg,
        &[
            "--gateway-max-message-size",
            "65536",
            "--gateway-max-connections-per-principal",
            "1",
        ],
    );
    let admin = aws_token(&lk, &[], "localhost", "app");
    let pid = |out: &std::process::Output| stdout_ok(out);
    let first = psql(&lk, "app", &admin, "verify-full", "SELECT pg_backend_pid()");
    let first = pid(&first);
    std::thread::sleep(Duration::from_millis(500));
    let big = format!("SELECT pg_backend_pid(), length('{}')", "x".repeat(100_000));
    let out = psql(&lk, "app", &admin, "verify-full", &big);
    eprintln!(
        "[oversized] ok={} {}",
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    std::thread::sleep(Duration::from_millis(500));
    let after = psql(
        &lk,
        "app",
        &admin,
        "verify-full",
        "SELECT pg_backend_pid(), 'clean'",
    );
    eprintln!("[oversized] pids: first {first}, after {}", pid(&after));
    assert!(pid(&after).ends_with("clean"));

    // Per-principal limit of 1.
    let mut holder = sleeping_psql(&lk, &admin, 4);
    std::thread::sleep(Duration::from_millis(1500));
    let out = psql(&lk, "app", &admin, "verify-full", "SELECT 1");
    eprintln!(
        "[limit] second session: ok={} {}",
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let bad = psql(&lk, "app", "garbage", "verify-full", "SELECT 1");
    eprintln!(
        "[limit] bad token while at limit: {}",
        String::from_utf8_lossy(&bad.stderr).trim()
    );
    let _ = holder.wait();
    assert!(!out.status.success());
}

/// TLS server name against the token's endpoint; direct TLS.
#[test]
fn pg_sni_and_direct_tls() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey(root.path(), &pg);
    let run = |conn: &str, token: &str| {
        let out = Command::new("psql")
            .arg(conn)
            .args(["-X", "-A", "-t", "-c", "SELECT 'in'"])
            .env("PGPASSWORD", token)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap();
        format!(
            "ok={} {}{}",
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    };
    let base = format!(
        "port={} user=app dbname=orders hostaddr=127.0.0.1",
        lk.pg_port
    );
    let t_local = aws_token(&lk, &[], "localhost", "app");
    let t_other = aws_token(&lk, &[], "other.example", "app");
    eprintln!(
        "[sni] token localhost, SNI other.example: {}",
        run(
            &format!("{base} host=other.example sslmode=require"),
            &t_local
        )
    );
    eprintln!(
        "[sni] token localhost, SNI localhost: {}",
        run(&format!("{base} host=localhost sslmode=require"), &t_local)
    );
    eprintln!(
        "[sni] token localhost, no SNI (sslsni=0): {}",
        run(
            &format!("{base} host=localhost sslmode=require sslsni=0"),
            &t_local
        )
    );
    eprintln!(
        "[sni] token other.example, no SNI: {}",
        run(
            &format!("{base} host=localhost sslmode=require sslsni=0"),
            &t_other
        )
    );
    eprintln!(
        "[sni] token LOCALHOST case, SNI localhost: {}",
        run(
            &format!("{base} host=localhost sslmode=require"),
            &aws_token(&lk, &[], "LOCALHOST", "app")
        )
    );
    eprintln!(
        "[direct] sslnegotiation=direct: {}",
        run(
            &format!("{base} host=localhost sslmode=require sslnegotiation=direct"),
            &t_local
        )
    );
    std::thread::sleep(Duration::from_millis(500));
    eprintln!("[sni] audit kinds: {:?}", failures(&lk, "postgres"));
}
