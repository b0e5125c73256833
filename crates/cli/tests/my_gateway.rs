//! The MySQL gateway end to end: a throwaway MariaDB (native and ed25519
//! accounts), `latchkey serve`, tokens from the AWS CLI (botocore), and
//! clients we did not write: the mariadb CLI and mysql_async.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::*;

const ALLOW_CONNECT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#;

/// MariaDB with a `shop` schema and two accounts (native password and
/// ed25519), registered as the mysql database `shop`, and Latchkey
/// serving it. Returns the API port too.
fn setup(root: &Path) -> (MariaDb, Latchkey, u16) {
    setup_with(root, &[], &["--upstream-tls", "disable"], &[])
}

/// As [`setup`], with extra `mariadbd` options, the registration's
/// upstream TLS flags, and extra `latchkey serve` flags.
fn setup_with(
    root: &Path,
    mariadbd: &[&str],
    upstream_tls: &[&str],
    serve_flags: &[&str],
) -> (MariaDb, Latchkey, u16) {
    let db = MariaDb::start_with(root, mariadbd);
    db.sql(
        "CREATE DATABASE shop;
         CREATE USER app@'%' IDENTIFIED BY 'app-secret';
         GRANT ALL ON shop.* TO app@'%';
         CREATE USER ed@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-secret');
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
            "--tag",
            "env=dev",
        ]
        .iter()
        .chain(upstream_tls)
        .copied()
        .collect::<Vec<_>>(),
    );
    set_db_password(&data, "shop", "app", "app-secret");
    set_db_password(&data, "shop", "ed", "ed-secret");
    // The pooling checks read /metrics on the API port.
    let flags: Vec<&str> = serve_flags
        .iter()
        .copied()
        .chain(["--api-metrics"])
        .collect();
    let lk = serve_latchkey(root, &data, &api, &flags);
    let api_port = api.rsplit(':').next().unwrap().parse().unwrap();
    (db, lk, api_port)
}

fn token(lk: &Latchkey, creds: &[(String, String)], host: &str, user: &str) -> String {
    let creds: Vec<(&str, &str)> = creds
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    aws_token_for_port(lk, lk.mysql_port, &creds, host, user)
}

fn opts(lk: &Latchkey, user: &str, token: &str) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("localhost")
        .tcp_port(lk.mysql_port)
        .user(Some(user))
        .pass(Some(token))
        .db_name(Some("shop"))
        .enable_cleartext_plugin(true)
        .ssl_opts(Some(
            mysql_async::SslOpts::default().with_root_certs(vec![lk.data.join("ca.pem").into()]),
        ))
        .into()
}

/// Idle upstream connections the gateway keeps for pooling (its
/// `latchkey_pool_idle_connections` metric).
fn pooled(lk: &Latchkey, api_port: u16) -> u64 {
    gauge(lk, api_port, "latchkey_pool_idle_connections")
}

/// A gauge's value on the API port's `/metrics`.
fn gauge(lk: &Latchkey, api_port: u16, name: &str) -> u64 {
    let metrics = Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(lk.data.join("ca.pem"))
        .arg(format!("https://localhost:{api_port}/metrics"))
        .output()
        .unwrap();
    let prefix = format!("{name} ");
    stdout_ok(&metrics)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits until the gateway keeps more than `before` idle upstream
/// connections: a client's connection is reset and pooled in the
/// background after it leaves.
fn wait_pooled(lk: &Latchkey, api_port: u16, before: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pooled(lk, api_port) <= before {
        assert!(Instant::now() < deadline, "the connection was not pooled");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

#[test]
fn mariadb_cli_and_mysql_async_with_botocore_tokens() {
    let root = tempfile::tempdir().unwrap();
    let (_db, lk, api_port) = setup(root.path());

    // The administrator (Action "*") connects as app and as ed; upstream
    // the gateway logs in with mysql_native_password and ed25519.
    let app_token = token(&lk, &[], "localhost", "app");
    let out = mariadb(
        &lk,
        "app",
        &app_token,
        &["shop", "-e", "SELECT CURRENT_USER()"],
    );
    assert_eq!(stdout_ok(&out), "app@%");
    let ed_token = token(&lk, &[], "localhost", "ed");
    let out = mariadb(
        &lk,
        "ed",
        &ed_token,
        &["shop", "-e", "SELECT CURRENT_USER()"],
    );
    assert_eq!(stdout_ok(&out), "ed@%");

    // Denials all look like RDS's.
    assert_mysql_denied(&mariadb(&lk, "ed", &app_token, &["-e", "SELECT 1"]), "ed");
    let mut tampered = app_token.clone();
    let at = tampered.find("X-Amz-Signature=").unwrap() + 20;
    let c = if &tampered[at..=at] == "0" { "1" } else { "0" };
    tampered.replace_range(at..=at, c);
    assert_mysql_denied(&mariadb(&lk, "app", &tampered, &["-e", "SELECT 1"]), "app");
    let elsewhere = token(&lk, &[], "other.example.com", "app");
    assert_mysql_denied(&mariadb(&lk, "app", &elsewhere, &["-e", "SELECT 1"]), "app");
    let pg_port_token = aws_token(&lk, &[], "localhost", "app");
    assert_mysql_denied(
        &mariadb(&lk, "app", &pg_port_token, &["-e", "SELECT 1"]),
        "app",
    );
    assert_mysql_denied(
        &mariadb(&lk, "app", "not a token", &["-e", "SELECT 1"]),
        "app",
    );
    let nobody = user_with_policy(
        &lk,
        "nobody",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
    );
    let t = token(&lk, &nobody, "localhost", "app");
    assert_mysql_denied(&mariadb(&lk, "app", &t, &["-e", "SELECT 1"]), "app");
    let office = user_with_policy(
        &lk,
        "office",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
    );
    let t = token(&lk, &office, "localhost", "app");
    assert_mysql_denied(&mariadb(&lk, "app", &t, &["-e", "SELECT 1"]), "app");
    let mfa_only = user_with_policy(
        &lk,
        "needsmfa",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}]}"#,
    );
    let t = token(&lk, &mfa_only, "localhost", "app");
    assert_mysql_denied(&mariadb(&lk, "app", &t, &["-e", "SELECT 1"]), "app");
    // A botocore token signed 20 minutes ago: expired.
    let expired = expired_token(&lk, lk.mysql_port, "app");
    assert_mysql_denied(&mariadb(&lk, "app", &expired, &["-e", "SELECT 1"]), "app");
    // Plaintext is refused before any password is sent.
    let plain = Command::new("mariadb")
        .args([
            "--protocol=TCP",
            "--host=127.0.0.1",
            &format!("--port={}", lk.mysql_port),
            "--user=app",
            "--skip-ssl",
            "-e",
            "SELECT 1",
        ])
        .env("MYSQL_PWD", &app_token)
        .output()
        .unwrap();
    assert!(!plain.status.success());
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(err.contains("ERROR 3159"), "{err}");
    // A policy on the resource tag lets its user in.
    let tagged = user_with_policy(
        &lk,
        "tagged",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:us-east-1:*:dbuser:*/app","Condition":{"StringEquals":{"aws:ResourceTag/env":"dev"}}}]}"#,
    );
    let t = token(&lk, &tagged, "localhost", "app");
    assert_eq!(
        stdout_ok(&mariadb(&lk, "app", &t, &["-e", "SELECT 42"])),
        "42"
    );

    // `latchkey connect mysql` mints the token itself and runs the client.
    let out = latchkey(&[
        "connect",
        "mysql",
        "--db",
        "shop",
        "--user",
        "app",
        "--database",
        "shop",
        "--port",
        &lk.mysql_port.to_string(),
        "--data-dir",
        lk.data.to_str().unwrap(),
        "--",
        "-N",
        "-B",
        "-e",
        "SELECT CONCAT('via connect ', CURRENT_USER())",
    ])
    .env(
        "AWS_SHARED_CREDENTIALS_FILE",
        lk.data.join("admin.credentials"),
    )
    .env("AWS_CONFIG_FILE", "/dev/null")
    .env_remove("AWS_ACCESS_KEY_ID")
    .env_remove("AWS_SECRET_ACCESS_KEY")
    .output()
    .unwrap();
    assert_eq!(stdout_ok(&out), "via connect app@%");

    // MariaDB Connector/J (JDBC), whose batches pipeline commands.
    let classes = root.path().join("classes");
    let jar = "/usr/share/java/mariadb-java-client.jar";
    let javac = Command::new("javac")
        .args(["-d", classes.to_str().unwrap(), "-cp", jar])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/java/JdbcThroughLatchkey.java"
        ))
        .output()
        .expect("javac (scripts/test installs a JDK and libmariadb-java)");
    stdout_ok(&javac);
    let java = Command::new("java")
        .args(["-cp", &format!("{jar}:{}", classes.display())])
        .args([
            "JdbcThroughLatchkey",
            &lk.mysql_port.to_string(),
            "app",
            &app_token,
            lk.data.join("ca.pem").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&java), "40 app@%");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // Prepared statements through mysql_async.
        let mut conn = mysql_async::Conn::new(opts(&lk, "app", &app_token))
            .await
            .unwrap();
        conn.query_drop("CREATE TABLE items (id INT PRIMARY KEY, name TEXT)")
            .await
            .unwrap();
        conn.exec_batch(
            "INSERT INTO items (id, name) VALUES (?, ?)",
            (1..=100).map(|i| (i, format!("item {i}"))),
        )
        .await
        .unwrap();
        let row: Option<(i64, String)> = conn
            .exec_first("SELECT COUNT(*), MAX(name) FROM items WHERE id > ?", (90,))
            .await
            .unwrap();
        assert_eq!(row, Some((10, "item 99".to_owned())));
        let upstream_id: u32 = conn
            .query_first("SELECT CONNECTION_ID()")
            .await
            .unwrap()
            .unwrap();
        conn.query_drop("SET @left_behind = 7").await.unwrap();
        let before = pooled(&lk, api_port);
        conn.disconnect().await.unwrap();
        wait_pooled(&lk, api_port, before);

        // Session pooling: the next session of app gets the same server
        // connection, reset.
        let mut conn = mysql_async::Conn::new(opts(&lk, "app", &app_token))
            .await
            .unwrap();
        let (id, left): (u32, Option<i64>) = conn
            .query_first("SELECT CONNECTION_ID(), @left_behind")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((id, left), (upstream_id, None));

        // KILL QUERY from a second session names the gateway's
        // connection id, as clients know it.
        let victim_id = conn.id();
        let victim = tokio::spawn(async move {
            // An interrupted SLEEP says 1, or ERR 1317.
            let r: Result<Option<i64>, _> = conn.query_first("SELECT SLEEP(60)").await;
            (r, conn)
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut killer = mysql_async::Conn::new(opts(&lk, "app", &app_token))
            .await
            .unwrap();
        let killed_at = Instant::now();
        killer
            .query_drop(format!("KILL QUERY {victim_id}"))
            .await
            .unwrap();
        let (r, mut conn) = victim.await.unwrap();
        match r {
            Ok(v) => assert_eq!(v, Some(1)),
            Err(e) => assert_eq!(server_code(&e), Some(1317)),
        }
        assert!(killed_at.elapsed() < Duration::from_secs(10));
        let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
        assert_eq!(one, Some(1));
        // An id the gateway did not give out kills nothing.
        let e = killer
            .query_drop("KILL QUERY 4000000000")
            .await
            .unwrap_err();
        assert_eq!(server_code(&e), Some(1094));
        // A session never becomes another user.
        let e = killer
            .change_user(
                mysql_async::ChangeUserOpts::default()
                    .with_user(Some("ed".into()))
                    .with_pass(Some(ed_token.clone())),
            )
            .await;
        assert!(e.is_err());
        conn.disconnect().await.unwrap();
    });

    // Detection sees MySQL statements as it sees PostgreSQL's: the JDBC
    // program's DELETE without WHERE.
    let delete = wait_for_finding(&lk.data, "Impact:RDS/DestructiveStatement");
    assert_eq!(delete["resource"], "shop");
    assert!(
        delete["description"]
            .as_str()
            .unwrap()
            .contains("DELETE FROM jdbc_items"),
        "{delete}"
    );

    // Statements are audited with literals redacted, as for PostgreSQL.
    let kill_audited = |e: &serde_json::Value| {
        e["database"]["statement"]
            .as_str()
            .is_some_and(|s| s.starts_with("KILL QUERY"))
    };
    let events = audit_events(&lk, |e| e.iter().any(kill_audited));
    let statements: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["eventName"] == "Statement" && e["database"]["engine"] == "mysql")
        .collect();
    let prepared = statements
        .iter()
        .find(|e| {
            e["database"]["statement"] == "SELECT COUNT(*), MAX(name) FROM items WHERE id > ?"
        })
        .unwrap_or_else(|| panic!("no prepared statement in {statements:#?}"));
    assert_eq!(prepared["database"]["protocol"], "extended");
    assert_eq!(prepared["database"]["rows"], 1);
    let inserts = statements
        .iter()
        .filter(|e| e["database"]["statement"] == "INSERT INTO items (id, name) VALUES (?, ?)")
        .count();
    assert!(inserts >= 100, "{inserts} inserts audited");
    assert!(statements.iter().any(|e| kill_audited(e)));
    let refused = events
        .iter()
        .filter(|e| e["eventName"] == "Connect" && e["database"]["engine"] == "mysql")
        .filter(|e| e["errorCode"].is_string())
        .count();
    assert!(refused >= 9, "{refused} refused mysql logins audited");
    let log = std::fs::read_to_string(root.path().join("latchkey.log")).unwrap();
    assert!(!log.contains(&app_token[..40]), "a token reached the log");
}

#[test]
fn load_data_big_results_abandoned_statements_and_upstream_restart() {
    let root = tempfile::tempdir().unwrap();
    // A budget for large messages smaller than one 2 MiB statement may
    // cost: such a statement runs alone.
    let (mut db, lk, api) = setup_with(
        root.path(),
        &[],
        &["--upstream-tls", "disable"],
        &["--gateway-large-message-memory", "1000000"],
    );
    db.sql("CREATE TABLE shop.big (id INT AUTO_INCREMENT PRIMARY KEY, line VARCHAR(200) NOT NULL)");
    let loader = user_with_policy(
        &lk,
        "loader",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["rds-db:connect","latchkey:LoadDataLocalInfile"],"Resource":"*"}]}"#,
    );
    let reader = user_with_policy(&lk, "reader", ALLOW_CONNECT);
    let loader_token = token(&lk, &loader, "localhost", "app");
    let reader_token = token(&lk, &reader, "localhost", "app");

    // 100 MB of lines.
    let file = root.path().join("big.txt");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..1_000_000u32 {
            writeln!(w, "line {i:09} {}", "x".repeat(84)).unwrap();
        }
    }
    assert!(std::fs::metadata(&file).unwrap().len() >= 100_000_000);

    // A statement over 1 MiB takes room in the budget, and gives it back.
    let big = root.path().join("big.sql");
    std::fs::write(
        &big,
        format!("SELECT LENGTH('{}') AS n", "x".repeat(2 << 20)),
    )
    .unwrap();
    let out = mariadb_command(&lk, "app", &reader_token)
        .args(["--max-allowed-packet=64M", "-N"])
        .stdin(std::fs::File::open(&big).unwrap())
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&out), (2 << 20).to_string());
    assert_eq!(
        gauge(&lk, api, "latchkey_gateway_large_message_bytes"),
        0,
        "room given back"
    );
    let load = format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE big (line)",
        file.display()
    );

    // Without the policy action the server is never told the client can
    // upload, so it refuses LOAD DATA LOCAL itself.
    let refused = mariadb(
        &lk,
        "app",
        &reader_token,
        &["--local-infile=1", "shop", "-e", &load],
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("ERROR"), "{err}");
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.big"), "0");

    // With it, 100 MB go up and come back intact.
    stdout_ok(&mariadb(
        &lk,
        "app",
        &loader_token,
        &["--local-infile=1", "shop", "-e", &load],
    ));
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.big"), "1000000");
    let copy = root.path().join("copy.txt");
    let status = mariadb_command(&lk, "app", &reader_token)
        .args([
            "--quick",
            "-N",
            "-B",
            "-r",
            "shop",
            "-e",
            "SELECT line FROM big ORDER BY id",
        ])
        .stdout(std::fs::File::create(&copy).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(sha256_file(&copy), sha256_file(&file));

    // A client that vanishes mid-statement: the gateway stops the
    // statement upstream instead of leaving it running.
    let mut running = mariadb_command(&lk, "app", &reader_token)
        .args(["-e", "SELECT BENCHMARK(50000000000, MD5('abandoned'))"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running_query = || {
        db.sql("SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE '%abandoned%' AND info NOT LIKE '%processlist%'")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while running_query() != "1" {
        assert!(Instant::now() < deadline, "the statement never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    running.kill().unwrap();
    running.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running_query() != "0" {
        assert!(
            Instant::now() < deadline,
            "the abandoned statement still runs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The server restarts: a session gets a clear error, the gateway
    // stays up, and new sessions work once the server is back.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut conn = runtime
        .block_on(mysql_async::Conn::new(opts(&lk, "app", &reader_token)))
        .unwrap();
    db.kill();
    let e = runtime.block_on(conn.query_drop("SELECT 1")).unwrap_err();
    assert!(
        matches!(e, mysql_async::Error::Io(_) | mysql_async::Error::Driver(_)),
        "{e:?}"
    );
    let down = mariadb(&lk, "app", &reader_token, &["-e", "SELECT 1"]);
    assert!(!down.status.success());
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(
        err.contains("could not connect to the database server"),
        "{err}"
    );
    // ...and the audit log says why.
    let events = audit_events(&lk, |e| {
        e.iter()
            .any(|e| e["eventName"] == "Connect" && e["errorCode"] == "ServiceUnavailable")
    });
    let refused = events
        .iter()
        .find(|e| e["eventName"] == "Connect" && e["errorCode"] == "ServiceUnavailable")
        .expect("the refused login is audited");
    assert!(
        refused["errorMessage"]
            .as_str()
            .unwrap()
            .starts_with("upstream login:")
    );
    db.restart();
    assert_eq!(
        stdout_ok(&mariadb(
            &lk,
            "app",
            &reader_token,
            &["shop", "-e", "SELECT COUNT(*) FROM big"]
        )),
        "1000000"
    );
}

/// A CA and a server certificate for 127.0.0.1 it signed, by openssl:
/// (CA certificate, server certificate, server key).
fn server_certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-days",
                "2",
                "-subj",
                "/CN=test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &ec[..],
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        path("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "server.pem",
    ]);
    (path("ca.pem"), path("server.pem"), path("server.key"))
}

#[test]
fn upstream_tls_and_revoked_sessions() {
    let root = tempfile::tempdir().unwrap();
    // A server that takes TLS connections only, with a certificate for
    // 127.0.0.1 that the gateway checks (verify-full).
    let (ca, cert, key) = server_certificate(root.path());
    let (db, lk, api_port) = setup_with(
        root.path(),
        &[
            &format!("--ssl-cert={}", cert.display()),
            &format!("--ssl-key={}", key.display()),
            "--require-secure-transport=ON",
        ],
        &[
            "--upstream-tls",
            "verify-full",
            "--upstream-ca",
            ca.to_str().unwrap(),
        ],
        &[],
    );
    let data = lk.data.clone();
    let admin = token(&lk, &[], "localhost", "app");
    let tls = mariadb(
        &lk,
        "app",
        &admin,
        &["-e", "SHOW STATUS LIKE 'Ssl_version'"],
    );
    assert!(
        String::from_utf8_lossy(&tls.stdout).starts_with("Ssl_version\tTLSv1."),
        "{}\n{}",
        String::from_utf8_lossy(&tls.stderr),
        std::fs::read_to_string(root.path().join("latchkey.log")).unwrap()
    );
    // cert auth is PostgreSQL's; MySQL registrations refuse it.
    let out = latchkey(&["db", "register", "--data-dir", data.to_str().unwrap()])
        .args([
            "--name",
            "other",
            "--engine",
            "mysql",
            "--endpoint",
            "other",
        ])
        .args([
            "--upstream",
            "127.0.0.1:1",
            "--auth",
            "cert",
            "--upstream-tls",
            "require",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not available for mysql"));

    // Temporary credentials work until the user's sessions are revoked;
    // a session in progress then ends within seconds.
    let user = user_with_policy(&lk, "temp", ALLOW_CONNECT);
    let temp = session_credentials(&lk, api_port, &user);
    let temp_token = token(&lk, &temp, "localhost", "app");
    assert_eq!(
        stdout_ok(&mariadb(
            &lk,
            "app",
            &temp_token,
            &["-e", "SELECT 'temporary'"]
        )),
        "temporary"
    );
    let running = mariadb_command(&lk, "app", &temp_token)
        .args(["-e", "SELECT SLEEP(60)"])
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
    assert_mysql_denied(
        &mariadb(&lk, "app", &temp_token, &["-e", "SELECT 1"]),
        "app",
    );
    let ended = running.wait_with_output().unwrap();
    assert!(!ended.status.success());
    assert!(
        revoked_at.elapsed() < Duration::from_secs(15),
        "the revoked session ran on for {:?}",
        revoked_at.elapsed()
    );
    // ...and its statement does not run on upstream.
    let deadline = Instant::now() + Duration::from_secs(10);
    while db
        .sql("SELECT COUNT(*) FROM information_schema.processlist WHERE info = 'SELECT SLEEP(60)'")
        != "0"
    {
        assert!(
            Instant::now() < deadline,
            "the revoked session's statement still runs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let events = audit_events(&lk, |e| {
        e.iter().any(|e| e["eventName"] == "CredentialRevoked")
    });
    assert!(events.iter().any(|e| e["eventName"] == "CredentialRevoked"));
}

#[test]
fn startup_timeout_message_size_and_connection_limits() {
    let root = tempfile::tempdir().unwrap();
    let (_db, lk, _api) = setup_with(
        root.path(),
        &[],
        &["--upstream-tls", "disable"],
        &[
            "--pg-startup-timeout",
            "2s",
            "--pg-max-message-size",
            "1048576",
            "--pg-max-connections-per-principal",
            "2",
        ],
    );
    let admin = token(&lk, &[], "localhost", "app");

    // A client that never finishes logging in is cut off.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", lk.mysql_port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut idle, &mut sink);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );

    // A command over the size limit ends the session with a clear error.
    let big = format!("SELECT LENGTH('{}')", "x".repeat(2 << 20));
    let script = root.path().join("big.sql");
    std::fs::write(&script, &big).unwrap();
    let out = mariadb_command(&lk, "app", &admin)
        .args(["--max-allowed-packet=64M"])
        .stdin(std::fs::File::open(&script).unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The gateway closes the connection as MySQL does for a packet over
    // max_allowed_packet; clients report it as 1153, 2006 or 2013.
    let err = String::from_utf8_lossy(&out.stderr);
    let tail = &err[err.len().saturating_sub(300)..];
    assert!(
        ["1153", "2006", "2013"]
            .iter()
            .any(|code| tail.contains(code)),
        "{tail}"
    );
    assert_eq!(
        stdout_ok(&mariadb(&lk, "app", &admin, &["-e", "SELECT 'still up'"])),
        "still up"
    );

    // Two sessions at once for one principal; the third is refused.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let a = mysql_async::Conn::new(opts(&lk, "app", &admin))
            .await
            .unwrap();
        let b = mysql_async::Conn::new(opts(&lk, "app", &admin))
            .await
            .unwrap();
        let e = mysql_async::Conn::new(opts(&lk, "app", &admin))
            .await
            .expect_err("a third session");
        assert_eq!(server_code(&e), Some(1040), "{e:?}");
        a.disconnect().await.unwrap();
        b.disconnect().await.unwrap();
    });
}

/// A client by hand over TLS that writes `DO 1` commands without reading
/// their answers, then reads them all. Prints one JSON object.
const NEVER_READS: &str = concat!(
    include_str!("common/rawtls.py"),
    r#"
import json, socket, struct
token = os.environ["LK_TOKEN"].encode()
result = {}
def packet(seq, payload):
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload
sock = socket.create_connection(("127.0.0.1", int(os.environ["LK_PORT"])), timeout=10)
def recv_exactly(n):
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            raise EOFError("closed before TLS")
        data += more
    return data
header = recv_exactly(4)
recv_exactly(int.from_bytes(header[:3], "little"))
# PROTOCOL_41, SSL, TRANSACTIONS, SECURE_CONNECTION, PLUGIN_AUTH, CONNECT_WITH_DB
caps = 0x200 | 0x800 | 0x2000 | 0x8000 | 0x80000 | 0x8
hello = struct.pack("<IIB23x", caps, 1 << 24, 33)
sock.sendall(packet(1, hello))
raw = RawTls(sock, "localhost", os.environ["LK_CA"])
raw.write(packet(2, hello + b"app\0\0shop\0mysql_clear_password\0"))
answers = {"ok": 0, "error": 0}
def take(plain):
    # Counts whole packets by their first byte; answers an auth switch.
    at = 0
    while len(plain) - at >= 4:
        size = 4 + int.from_bytes(plain[at:at + 3], "little")
        if len(plain) - at < size:
            break
        first, seq = plain[at + 4], plain[at + 3]
        if first == 0xFE and size > 9:
            raw.write(packet(seq + 1, token + b"\0"))
        elif first == 0x00:
            answers["ok"] += 1
        elif first == 0xFF:
            answers["error"] += 1
            result["error_packet"] = bytes(plain[at + 4:at + size]).decode(errors="replace")
        at += size
    del plain[:at]
try:
    raw.until(lambda: answers["ok"] + answers["error"] == 1, take, 10)
    assert answers == {"ok": 1, "error": 0}, answers
    answers["ok"] = 0
    before = rss_kb(os.environ["LK_PID"])
    result["commands"] = commands = raw.flood(packet(0, b"\x03DO 1") * 1000, 1000, 1_000_000)
    result["rss_growth_kb"] = rss_kb(os.environ["LK_PID"]) - before
    raw.until(lambda: answers["ok"] + answers["error"] >= commands, take)
except Exception as e:
    result["exception"] = repr(e)
result["answers"] = answers
print(json.dumps(result))
"#
);

#[test]
fn a_client_that_never_reads_is_not_read_past_the_answers_it_awaits() {
    let root = tempfile::tempdir().unwrap();
    // Statement audit off: the trail's queue of records for what was
    // answered meanwhile would be measured with the relay.
    let (_db, lk, _) = setup_with(
        root.path(),
        &[],
        &["--upstream-tls", "disable"],
        &["--no-statement-audit"],
    );
    let token = token(&lk, &[], "localhost", "app");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("never_reads.py");
    std::fs::write(&script, NEVER_READS).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .env("LK_PORT", lk.mysql_port.to_string())
        .env("LK_TOKEN", &token)
        .env("LK_CA", lk.data.join("ca.pem"))
        .env("LK_PID", lk.child.id().to_string())
        .output()
        .unwrap();
    let r: serde_json::Value =
        serde_json::from_str(stdout_ok(&out).lines().last().unwrap()).unwrap();
    assert!(r.get("exception").is_none(), "{r}");
    // The gateway stopped reading: the client could not write them all,
    // and every one it wrote was answered.
    let commands = r["commands"].as_u64().unwrap();
    assert!(commands < 1_000_000, "{r}");
    assert_eq!(r["answers"]["ok"], commands, "{r}");
    assert_eq!(r["answers"]["error"], 0, "{r}");
    // Unbounded, it read all million (58 MB more).
    assert!(r["rss_growth_kb"].as_i64().unwrap() < 4_000, "{r}");
}
