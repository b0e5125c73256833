//! Statements a gateway session may not send on, attacked through the
//! real `latchkey serve` with stock clients (psql, the mariadb CLI,
//! tokio-postgres, mysql_async) against a throwaway PostgreSQL and
//! MariaDB: password and authentication changes (refused unless the
//! policy allows `latchkey:ChangeDatabasePassword`), MySQL KILLs of raw
//! server thread ids hidden from the gateway's rewrite, and the finding
//! raised when the server refuses the gateway's stored credential.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use common::*;
use mysql_async::prelude::*;

const CONNECT_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#;
const MAY_CHANGE_PASSWORDS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["rds-db:connect","latchkey:ChangeDatabasePassword"],"Resource":"*"}]}"#;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// psql straight to the server, past the gateway.
fn psql_direct(pg: &Postgres, password: &str) -> Output {
    Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=app dbname=orders sslmode=disable",
            pg.port
        ))
        .args(["-X", "-A", "-t", "-c", "SELECT 'direct'"])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn pg_tls(lk: &Latchkey) -> tokio_postgres_rustls::MakeRustlsConnect {
    let pem = std::fs::read(lk.data.join("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

#[test]
fn postgres_password_changes_are_refused_and_a_refused_credential_is_a_finding() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let lk = start_latchkey(root.path(), &pg);
    let alice = user_with_policy(&lk, "alice", CONNECT_ONLY);
    let token = token_with(&lk, &alice);

    // Simple protocol, through psql: each attack in the same session,
    // which goes on after each refusal.
    let attacks = [
        "ALTER ROLE app PASSWORD 'hacked';",
        "ALTER USER app WITH ENCRYPTED PASSWORD 'hacked';",
        "ALTER/**/ROLE \"app\" PASSWORD 'hacked';",
        "alter /* a /* nested */ comment */ role\napp\npassword\n'hacked';",
        "SELECT 1; ALTER ROLE app PASSWORD 'hacked';",
        // What psql's \\password sends.
        "ALTER USER app PASSWORD 'SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$N1bgNQiWCvp4A0Qz4mOxXhkzJEzUBMdDiMZETALqDqw=:gvbR5CBz2YtTDqsp1/y6Xf2BZtmB7RDGd2FB/5V6M2k=';",
        "DO $$BEGIN ALTER ROLE app PASSWORD 'hacked'; END$$;",
        "BEGIN; ALTER ROLE app PASSWORD 'hacked'; COMMIT;",
    ];
    let mut script = String::new();
    for (i, attack) in attacks.iter().enumerate() {
        script += &format!("{attack}\nSELECT 'alive {i}';\n");
    }
    let out = Command::new("psql")
        .arg(conninfo(&lk, "app", "verify-full"))
        .args(["-X", "-A", "-t", "-f", "-"])
        .env("PGPASSWORD", &token)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(script.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let all = text(&out);
    for i in 0..attacks.len() {
        assert!(all.contains(&format!("alive {i}")), "{all}");
    }
    assert!(
        all.matches("permission denied to change a password or authentication through Latchkey")
            .count()
            >= attacks.len() - 1,
        "{all}"
    );

    // Extended protocol (Parse/Bind/Execute), through tokio-postgres.
    let tls = pg_tls(&lk);
    runtime().block_on(async {
        let mut config = tokio_postgres::Config::new();
        config
            .host("localhost")
            .port(lk.pg_port)
            .user("app")
            .dbname("orders")
            .password(token.as_str())
            .ssl_mode(tokio_postgres::config::SslMode::Require);
        let (client, connection) = config.connect(tls).await.unwrap();
        tokio::spawn(connection);
        let e = client
            .execute("ALTER ROLE app PASSWORD 'hacked'", &[])
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{e:?}"
        );
        let e = client
            .prepare("alter user app password 'hacked'")
            .await
            .map(|_| ());
        // Parsing may succeed; running it never does.
        if e.is_ok() {
            let e = client
                .execute("alter user app password 'hacked'", &[])
                .await
                .unwrap_err();
            assert_eq!(
                e.code(),
                Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
            );
        }
        let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
    });

    // The password is what it was: the old one logs in directly, the new
    // one does not, and the gateway still logs in.
    let direct = psql_direct(&pg, "app-secret");
    assert!(text(&direct).contains("direct"), "{}", text(&direct));
    assert!(!psql_direct(&pg, "hacked").status.success());
    let out = psql(&lk, "app", &token, "verify-full", "SELECT 'still'");
    assert_eq!(stdout_ok(&out), "still");

    // Refused statements are audited, and detection counts them.
    let f = wait_for_finding(&lk.data, "Impact:RDS/DestructiveStatement");
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .starts_with("password or authentication change (failed)"),
        "{f:#}"
    );
    let trail = audit_text(&lk);
    assert!(trail.contains(r#""errorCode":"42501""#), "{trail}");
    assert!(trail.contains("ALTER ROLE app PASSWORD ?"), "{trail}");

    // With latchkey:ChangeDatabasePassword the change goes through...
    let bob = user_with_policy(&lk, "bob", MAY_CHANGE_PASSWORDS);
    let bob_token = token_with(&lk, &bob);
    let out = psql(
        &lk,
        "app",
        &bob_token,
        "verify-full",
        "ALTER ROLE app PASSWORD 'changed'",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&psql_direct(&pg, "changed")).contains("direct"));
    // ...and the next fresh upstream login is refused by the server: a
    // finding, not an outage.
    let out = Command::new("psql")
        .arg(conninfo(&lk, "app", "verify-full"))
        .args(["-X", "-A", "-t", "-c", "SELECT 1"])
        .env("PGPASSWORD", &token)
        .env("PGAPPNAME", "not-pooled")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let f = wait_for_finding(&lk.data, "CredentialAccess:RDS/StoredCredentialRefused");
    assert_eq!(f["severity"], "High", "{f:#}");
    let trail = audit_text(&lk);
    assert!(trail.contains("upstream_credential_refused"), "{trail}");
}

/// MariaDB with a `shop` schema and an `app` account, registered as the
/// mysql database `shop`, and Latchkey serving it.
fn mysql_setup(root: &Path) -> (MariaDb, Latchkey) {
    let db = MariaDb::start(root);
    db.sql(
        "CREATE DATABASE shop;
         CREATE USER app@'%' IDENTIFIED BY 'app-secret';
         GRANT ALL ON shop.* TO app@'%';",
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
    let lk = serve_latchkey(root, &data, &api, &[]);
    (db, lk)
}

fn my_token(lk: &Latchkey, creds: &[(String, String)]) -> String {
    let creds: Vec<(&str, &str)> = creds
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    aws_token_for_port(lk, lk.mysql_port, &creds, "localhost", "app")
}

fn my_opts(lk: &Latchkey, token: &str, schema: Option<&str>) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("localhost")
        .tcp_port(lk.mysql_port)
        .user(Some("app"))
        .pass(Some(token))
        .db_name(schema)
        .enable_cleartext_plugin(true)
        .ssl_opts(Some(
            mysql_async::SslOpts::default().with_root_certs(vec![lk.data.join("ca.pem").into()]),
        ))
        .into()
}

/// The mariadb client straight to the server as app.
fn mariadb_direct(db: &MariaDb, password: &str) -> Output {
    Command::new("mariadb")
        .args([
            "--protocol=TCP",
            "--host=127.0.0.1",
            &format!("--port={}", db.port),
            "--user=app",
            "--skip-ssl",
            "-N",
            "-B",
            "-e",
            "SELECT 'direct'",
        ])
        .env("MYSQL_PWD", password)
        .output()
        .unwrap()
}

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

#[test]
fn mysql_password_changes_and_raw_kills_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let (db, lk) = mysql_setup(root.path());
    let alice = user_with_policy(&lk, "alice", CONNECT_ONLY);
    let token = my_token(&lk, &alice);

    // The mariadb CLI, keeping comments (-c) so that they reach the
    // gateway, and going on after errors (--force): one session.
    let attacks = [
        "SET PASSWORD = PASSWORD('hacked')",
        "SET PASSWORD FOR 'app'@'%' = PASSWORD('hacked')",
        "ALTER USER app IDENTIFIED BY 'hacked'",
        "ALTER/**/USER app IDENTIFIED BY 'hacked'",
        "/*!ALTER USER app IDENTIFIED BY 'hacked'*/",
        "/*!50000 ALTER USER `app`@'%' IDENTIFIED BY 'hacked'*/",
        "-- a comment\nalter user app identified by 'hacked'",
        "# a comment\nSet   Password = 'hacked'",
        "GRANT SELECT ON shop.* TO app IDENTIFIED BY 'hacked'",
        "PREPARE s FROM 'SET PASSWORD = PASSWORD(''hacked'')'",
        "EXECUTE IMMEDIATE 'ALTER USER app IDENTIFIED BY \"hacked\"'",
    ];
    let mut script = String::new();
    for (i, attack) in attacks.iter().enumerate() {
        script += &format!("{attack};\nSELECT 'alive {i}';\n");
    }
    let out = mariadb_command(&lk, "app", &token)
        .args(["-N", "-B", "-c", "--force", "shop"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(script.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let all = text(&out);
    for i in 0..attacks.len() {
        assert!(
            all.contains(&format!("alive {i}")),
            "{all}\n{}",
            std::fs::read_to_string(root.path().join("latchkey.log")).unwrap_or_default()
        );
    }
    assert_eq!(
        all.matches("ERROR 1227 (42000)").count(),
        attacks.len(),
        "{all}"
    );
    assert!(all.contains("latchkey:ChangeDatabasePassword"), "{all}");

    runtime().block_on(async {
        let mut conn = mysql_async::Conn::new(my_opts(&lk, &token, Some("shop")))
            .await
            .unwrap();
        // Several statements in one COM_QUERY, and COM_STMT_PREPARE.
        for sql in [
            "SELECT 1; ALTER USER app IDENTIFIED BY 'hacked'",
            "SELECT ';'; SET PASSWORD = PASSWORD('hacked')",
        ] {
            let e = conn.query_drop(sql).await.unwrap_err();
            assert_eq!(server_code(&e), Some(1227), "{sql}: {e}");
        }
        let e = conn
            .prep("ALTER USER app IDENTIFIED BY 'hacked'")
            .await
            .unwrap_err();
        assert_eq!(server_code(&e), Some(1227), "{e}");
        let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
        assert_eq!(one, Some(1));

        // KILL of a raw server thread id, hidden from the gateway's
        // rewrite: bob's session must survive.
        let bob = user_with_policy(&lk, "bob", CONNECT_ONLY);
        let bob_token = my_token(&lk, &bob);
        let mut victim = mysql_async::Conn::new(my_opts(&lk, &bob_token, Some("shop")))
            .await
            .unwrap();
        let raw: u32 = victim
            .query_first("SELECT CONNECTION_ID()")
            .await
            .unwrap()
            .unwrap();
        for attack in [
            format!("KILL/**/{raw}"),
            format!("KILL CONNECTION/*x*/{raw}"),
            format!("/*!KILL {raw}*/"),
            format!("/*!50000 KILL {raw}*/"),
            format!("KILL\n-- c\n{raw}"),
            format!("SELECT 1; KILL {raw}"),
            format!("SELECT 1; /*!KILL {raw}*/"),
            format!("KILL QUERY ID {raw}"),
        ] {
            let e = conn.query_drop(&attack).await.unwrap_err();
            assert!(
                matches!(server_code(&e), Some(1094 | 1227)),
                "{attack}: {e}"
            );
            let alive: Option<i64> = victim.query_first("SELECT 7").await.unwrap();
            assert_eq!(alive, Some(7), "{attack} killed the victim");
        }
        let e = conn.prep(format!("KILL {raw}")).await.unwrap_err();
        assert_eq!(server_code(&e), Some(1227), "{e}");
        let alive: Option<i64> = victim.query_first("SELECT 7").await.unwrap();
        assert_eq!(alive, Some(7));
        // The gateway's own id still works, comments and all.
        let victim_id = victim.id();
        conn.query_drop(format!("/*!KILL QUERY*/ {victim_id}"))
            .await
            .unwrap();
        let alive: Option<i64> = victim.query_first("SELECT 8").await.unwrap();
        assert_eq!(alive, Some(8));
        let _ = victim.disconnect().await;
        conn.disconnect().await.unwrap();
    });

    // The mariadb CLI too, with comments kept.
    let out = mariadb(&lk, "app", &token, &["-c", "-e", "/*!KILL 1*/; SELECT 1"]);
    assert!(!out.status.success(), "{}", text(&out));

    // The password is what it was.
    assert!(text(&mariadb_direct(&db, "app-secret")).contains("direct"));
    assert!(!mariadb_direct(&db, "hacked").status.success());
    let trail = audit_text(&lk);
    assert!(trail.contains(r#""errorCode":"42000""#), "{trail}");

    // With latchkey:ChangeDatabasePassword the change goes through, and
    // the next upstream login (no schema: never pooled) is refused by
    // the server: a finding.
    let carol = user_with_policy(&lk, "carol", MAY_CHANGE_PASSWORDS);
    let carol_token = my_token(&lk, &carol);
    let out = mariadb(
        &lk,
        "app",
        &carol_token,
        &["-e", "SET PASSWORD = PASSWORD('changed')"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&mariadb_direct(&db, "changed")).contains("direct"));
    let out = mariadb(&lk, "app", &token, &["-e", "SELECT 1"]);
    assert!(!out.status.success());
    let f = wait_for_finding(&lk.data, "CredentialAccess:RDS/StoredCredentialRefused");
    assert_eq!(f["severity"], "High", "{f:#}");
    let f = wait_for_finding(&lk.data, "Impact:RDS/DestructiveStatement");
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .starts_with("password or authentication change"),
        "{f:#}"
    );
}
