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

use common::sql::pg_tls;
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
        // The gateway's own id still works, comments and all, for the
        // same principal's sessions; another principal's is unknown.
        let victim_id = victim.id();
        let e = conn
            .query_drop(format!("/*!KILL QUERY*/ {victim_id}"))
            .await
            .unwrap_err();
        assert_eq!(server_code(&e), Some(1094), "{e}");
        let mut own = mysql_async::Conn::new(my_opts(&lk, &token, Some("shop")))
            .await
            .unwrap();
        let own_id = own.id();
        conn.query_drop(format!("/*!KILL QUERY*/ {own_id}"))
            .await
            .unwrap();
        let alive: Option<i64> = own.query_first("SELECT 8").await.unwrap();
        assert_eq!(alive, Some(8));
        let _ = own.disconnect().await;
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

const MAY_RUN_DYNAMIC_SQL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["rds-db:connect","latchkey:ExecuteDynamicSql"],"Resource":"*"}]}"#;

/// tokio-postgres through the gateway as `app`.
async fn pg_client(lk: &Latchkey, token: &str) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host("localhost")
        .port(lk.pg_port)
        .user("app")
        .dbname("orders")
        .password(token)
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let (client, connection) = config.connect(pg_tls(lk)).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The error is the gateway's refusal (42501, naming Latchkey), not the
/// server's own.
fn assert_refused_by_gateway(e: &tokio_postgres::Error, what: &str) {
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{what}: {e:?}"
    );
    let message = e.as_db_error().map(|d| d.message()).unwrap_or_default();
    assert!(message.contains("through Latchkey"), "{what}: {message}");
}

/// The red team's PostgreSQL attacks, as a superuser `app` (so that the
/// server itself would have let each one through): dynamic SQL in `DO`
/// blocks and routines, catalogue writes, `ALTER SYSTEM`, and ending
/// another principal's session with `pg_terminate_backend`.
#[test]
fn red_team_postgres_dynamic_sql_catalogue_writes_and_signals_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    pg.sql("ALTER ROLE app SUPERUSER");
    let lk = start_latchkey(root.path(), &pg);
    let alice = token_with(&lk, &user_with_policy(&lk, "alice", CONNECT_ONLY));
    let bob = token_with(&lk, &user_with_policy(&lk, "bob", CONNECT_ONLY));
    let carol = token_with(&lk, &user_with_policy(&lk, "carol", MAY_RUN_DYNAMIC_SQL));
    let attacks = [
        "DO $$BEGIN EXECUTE 'ALTER ROLE app PASSWORD ''attacker-pw'''; END$$",
        "DO $$BEGIN EXECUTE 'ALTER ROLE app PASS'||'WORD ''attacker-pw'''; END$$",
        "DO $$BEGIN EXECUTE format('ALTER ROLE %I PASS%s %L', 'app', 'WORD', 'attacker-pw'); END$$",
        "DO $$BEGIN EXECUTE reverse('''wp-rekcatta'' DROWSSAP ppa ELOR RETLA'); END$$",
        "DO $$BEGIN EXECUTE convert_from(decode('QUxURVIgUk9MRSBhcHAgUEFTU1dPUkQgJ2F0dGFja2VyLXB3Jw==', 'base64'), 'UTF8'); END$$",
        "CREATE FUNCTION evil() RETURNS void LANGUAGE plpgsql AS $f$BEGIN EXECUTE 'ALTER ROLE app PASS' || 'WORD ''attacker-pw'''; END$f$",
        "CREATE PROCEDURE evilp() LANGUAGE plpgsql AS $f$BEGIN EXECUTE reverse('''wp-rekcatta'' DROWSSAP ppa ELOR RETLA'); END$f$",
        "UPDATE pg_authid SET rolpassword = NULL WHERE rolname = 'app'",
        "update pg_catalog.pg_authid set rolpassword = 'md5deadbeef' where rolname = 'app'",
        "ALTER SYSTEM SET password_encryption = 'md5'",
        "select pg_terminate_backend(pid) from pg_stat_activity where usename='app' and pid <> pg_backend_pid()",
        "select pg_cancel_backend(pid) from pg_stat_activity where usename='app' and pid <> pg_backend_pid()",
    ];
    runtime().block_on(async {
        let attacker = pg_client(&lk, &alice).await;
        let victim = pg_client(&lk, &bob).await;
        for attack in attacks {
            // Simple protocol, then extended.
            let e = attacker.batch_execute(attack).await.unwrap_err();
            assert_refused_by_gateway(&e, attack);
            let e = attacker.execute(attack, &[]).await.unwrap_err();
            assert_refused_by_gateway(&e, attack);
            // Both sessions go on.
            let one: i32 = attacker.query_one("SELECT 1", &[]).await.unwrap().get(0);
            assert_eq!(one, 1, "{attack}");
            let two: i32 = victim.query_one("SELECT 2", &[]).await.unwrap().get(0);
            assert_eq!(two, 2, "{attack} ended the victim");
        }
        // Second pass: functions that run an SQL string (the kill spelt
        // backwards, and as a Bind parameter), catalogue writes, server
        // files and reload, role changes.
        let kill = "select pg_terminate_backend(pid) from pg_stat_activity where usename='app' and pid <> pg_backend_pid()";
        let reversed: String = kill.chars().rev().collect();
        let hba = root.path().join("pg_hba.attack");
        let more = [
            format!("select query_to_xml(reverse('{}'), true, false, '')", reversed.replace('\'', "''")),
            format!("SELECT pg_catalog.\"query_to_xml\"('{}', true, false, '')", kill.replace('\'', "''")),
            "SELECT * FROM ts_stat('select to_tsvector(pg_terminate_backend(pid)::text) from pg_stat_activity')".to_owned(),
            "UPDATE pg_proc SET prosrc = 'select 1' WHERE proname = 'no_such_function'".to_owned(),
            "update pg_catalog.pg_proc set prosrc = prosrc where false".to_owned(),
            format!("COPY (SELECT 'host all all 127.0.0.1/32 trust') TO '{}'", hba.display()),
            "COPY (SELECT 1) TO '/tmp/latchkey-copy-attack'".to_owned(),
            "SELECT pg_reload_conf()".to_owned(),
            "SELECT pg_read_file('pg_hba.conf')".to_owned(),
            "SELECT lo_import('/etc/hostname')".to_owned(),
            "ALTER ROLE app CONNECTION LIMIT 0".to_owned(),
            "CREATE ROLE evil LOGIN SUPERUSER".to_owned(),
            "GRANT pg_write_server_files TO app".to_owned(),
        ];
        for attack in &more {
            let e = attacker.batch_execute(attack).await.unwrap_err();
            assert_refused_by_gateway(&e, attack);
            let e = attacker.execute(attack.as_str(), &[]).await.unwrap_err();
            assert_refused_by_gateway(&e, attack);
            let two: i32 = victim.query_one("SELECT 2", &[]).await.unwrap().get(0);
            assert_eq!(two, 2, "{attack} ended the victim");
        }
        let e = attacker
            .query_one("select query_to_xml($1::text, true, false, '')::text", &[&kill])
            .await
            .unwrap_err();
        // The Parse became the refusal, which takes no parameter: the
        // client refuses to bind one, or the server raises the refusal.
        if e.code().is_some() {
            assert_refused_by_gateway(&e, "query_to_xml with a Bind parameter");
        } else {
            assert!(e.to_string().contains("parameters"), "{e:?}");
        }
        let two: i32 = victim.query_one("SELECT 2", &[]).await.unwrap().get(0);
        assert_eq!(two, 2, "query_to_xml($1) ended the victim");
        assert!(!hba.exists());
        // Reading catalogues and table GRANTs pass (psql's \copy: pg_gateway).
        attacker
            .batch_execute(
                "CREATE TEMP TABLE cp(x int); \
                 SELECT count(*) FROM pg_proc; GRANT SELECT ON cp TO app",
            )
            .await
            .unwrap();

        // The routines were never created.
        for call in ["SELECT evil()", "CALL evilp()"] {
            let e = attacker.batch_execute(call).await.unwrap_err();
            assert_eq!(
                e.code(),
                Some(&tokio_postgres::error::SqlState::UNDEFINED_FUNCTION),
                "{call}: {e:?}"
            );
        }

        // With latchkey:ExecuteDynamicSql, a DO block with EXECUTE runs...
        let dynamic = pg_client(&lk, &carol).await;
        dynamic
            .batch_execute(
                "CREATE TEMP TABLE dyn(x int); \
                 DO $$BEGIN EXECUTE 'INSERT INTO dyn VALUES (1)'; \
                 EXECUTE format('INSERT INTO dyn VALUES (%s)', 41 + 1); END$$",
            )
            .await
            .unwrap();
        let sum: i64 = dynamic
            .query_one("SELECT sum(x) FROM dyn", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(sum, 43);
        // ...but a password change written in it is still refused, and
        // pg_terminate_backend whatever the policy.
        let e = dynamic.batch_execute(attacks[0]).await.unwrap_err();
        assert_refused_by_gateway(&e, attacks[0]);
        let e = dynamic.batch_execute(attacks[10]).await.unwrap_err();
        assert_refused_by_gateway(&e, attacks[10]);
        let two: i32 = victim.query_one("SELECT 2", &[]).await.unwrap().get(0);
        assert_eq!(two, 2);
    });

    // The password is what it was, and nothing else changed.
    let direct = psql_direct(&pg, "app-secret");
    assert!(text(&direct).contains("direct"), "{}", text(&direct));
    assert!(!psql_direct(&pg, "attacker-pw").status.success());
    let out = psql(
        &lk,
        "app",
        &alice,
        "verify-full",
        "SHOW password_encryption",
    );
    assert_eq!(stdout_ok(&out), "scram-sha-256");
    let out = psql(&lk, "app", &alice, "verify-full", "SELECT 'still'");
    assert_eq!(stdout_ok(&out), "still");
    let trail = audit_text(&lk);
    assert!(trail.contains(r#""errorCode":"42501""#), "{trail}");
}

/// The red team's MariaDB attacks, as an `app` with every privilege (so
/// that the server itself would have let each one through): dynamic SQL,
/// a routine body, catalogue writes, and KILLs of other principals'
/// sessions, mapped or raw.
#[test]
fn red_team_mysql_dynamic_sql_routines_catalogue_writes_and_kills_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let (db, lk) = mysql_setup(root.path());
    db.sql(
        "GRANT ALL ON *.* TO app@'%' WITH GRANT OPTION; FLUSH PRIVILEGES;
         CREATE TABLE shop.files (line TEXT);",
    );
    let alice = my_token(&lk, &user_with_policy(&lk, "alice", CONNECT_ONLY));
    let bob = my_token(&lk, &user_with_policy(&lk, "bob", CONNECT_ONLY));
    let carol = my_token(&lk, &user_with_policy(&lk, "carol", MAY_RUN_DYNAMIC_SQL));
    // Where the server (running as this user, no secure_file_priv) would
    // write files for the attacker.
    let victim_file = |name: &str| root.path().join(name).display().to_string();

    runtime().block_on(async {
        let mut attacker = mysql_async::Conn::new(my_opts(&lk, &alice, Some("shop")))
            .await
            .unwrap();
        let mut victim = mysql_async::Conn::new(my_opts(&lk, &bob, Some("shop")))
            .await
            .unwrap();
        let raw: u32 = victim
            .query_first("SELECT CONNECTION_ID()")
            .await
            .unwrap()
            .unwrap();
        let victim_id = victim.id();
        attacker
            .query_drop(r#"SET @q='SET PASSWORD = PASSWORD("attacker-pw")'"#)
            .await
            .unwrap();
        attacker
            .query_drop(format!("SET @k=CONCAT('KILL ', {raw})"))
            .await
            .unwrap();
        let attacks = [
            "EXECUTE IMMEDIATE CONCAT('SET PASS','WORD = PASSWORD(''attacker-pw'')')".to_owned(),
            "EXECUTE IMMEDIATE @q".to_owned(),
            "PREPARE s FROM @q".to_owned(),
            "SET @q2='SET PASSWORD = PASSWORD(\"attacker-pw\")'; PREPARE s FROM @q2; EXECUTE s"
                .to_owned(),
            "CREATE PROCEDURE pp() SET PASSWORD = PASSWORD('attacker-pw')".to_owned(),
            "CREATE PROCEDURE pq() BEGIN SELECT 1; SET PASSWORD = PASSWORD('attacker-pw'); END"
                .to_owned(),
            "UPDATE mysql.global_priv SET Priv = JSON_SET(Priv, '$.plugin', 'mysql_native_password', '$.authentication_string', PASSWORD('attacker-pw')) WHERE User = 'app'".to_owned(),
            "UPDATE `mysql`.`global_priv` SET Priv = '{}' WHERE User = 'app'".to_owned(),
            "UPDATE mysql.user SET authentication_string = PASSWORD('attacker-pw') WHERE User = 'app'".to_owned(),
            "UPDATE global_priv SET Priv = '{}' WHERE User = 'app'".to_owned(),
            format!("EXECUTE IMMEDIATE CONCAT('KI','LL ', {raw})"),
            "PREPARE k FROM @k".to_owned(),
        ];
        for attack in &attacks {
            let e = attacker.query_drop(attack).await.unwrap_err();
            assert_eq!(server_code(&e), Some(1227), "{attack}: {e}");
            assert!(e.to_string().contains("Latchkey"), "{attack}: {e}");
            let one: Option<i64> = attacker.query_first("SELECT 1").await.unwrap();
            assert_eq!(one, Some(1), "{attack}");
            let alive: Option<i64> = victim.query_first("SELECT 7").await.unwrap();
            assert_eq!(alive, Some(7), "{attack} killed the victim");
        }
        // Second pass: sys.execute_prepared_stmt, mysql.proc, account
        // management after clearing sql_mode, SHUTDOWN.
        attacker.query_drop("SET SESSION sql_mode = ''").await.unwrap();
        let more = [
            format!("CALL sys.execute_prepared_stmt(CONCAT('KI', 'LL ', {raw}))"),
            "CALL sys.execute_prepared_stmt(CONCAT('SET PASS', 'WORD = PASSWORD(''attacker-pw'')'))".to_owned(),
            "USE sys; CALL execute_prepared_stmt(@q)".to_owned(),
            "UPDATE mysql.proc SET body = 'SET PASSWORD = PASSWORD(''attacker-pw'')' WHERE name = 'no_such'".to_owned(),
            "UPDATE `mysql`.`db` SET Select_priv = 'Y' WHERE User = 'nobody'".to_owned(),
            "GRANT SELECT ON shop.* TO eve@'%'".to_owned(),
            "CREATE ROLE evil".to_owned(),
            "RENAME USER app@'%' TO x@'%'".to_owned(),
            "SHUTDOWN".to_owned(),
        ];
        for attack in &more {
            let e = attacker.query_drop(attack).await.unwrap_err();
            assert_eq!(server_code(&e), Some(1227), "{attack}: {e}");
            assert!(e.to_string().contains("Latchkey"), "{attack}: {e}");
            let alive: Option<i64> = victim.query_first("SELECT 7").await.unwrap();
            assert_eq!(alive, Some(7), "{attack} killed the victim");
        }

        // Third pass: server files and shared libraries (the app user
        // has FILE), under latchkey:ChangeDatabasePassword.
        let files = [
            format!("SELECT 'x' INTO OUTFILE '{}'", victim_file("outfile")),
            format!(
                "SELECT 'x' /* c */ INTO DUMPFILE '{}'",
                victim_file("dumpfile")
            ),
            format!(
                "SELECT 1 INTO @a; SELECT 'x' INTO OUTFILE '{}'",
                victim_file("second")
            ),
            format!(
                "CREATE PROCEDURE pf() SELECT 'x' INTO OUTFILE '{}'",
                victim_file("routine")
            ),
            format!(
                "PREPARE f FROM 'SELECT ''x'' INTO DUMPFILE ''{}'''",
                victim_file("prepared")
            ),
            "SELECT LOAD_FILE('/etc/hostname')".to_owned(),
            "SELECT `load_file`('/etc/hostname')".to_owned(),
            "INSERT INTO shop.files VALUES (LOAD_FILE('/etc/hostname'))".to_owned(),
            "LOAD DATA INFILE '/etc/hostname' INTO TABLE shop.files".to_owned(),
            "LOAD DATA /*!99999 LOCAL */ INFILE '/etc/hostname' INTO TABLE shop.files".to_owned(),
            "INSTALL SONAME 'ha_archive'".to_owned(),
            "INSTALL PLUGIN archive SONAME 'ha_archive.so'".to_owned(),
            "UNINSTALL SONAME 'auth_ed25519'".to_owned(),
            "CREATE FUNCTION evil RETURNS INTEGER SONAME 'ha_archive.so'".to_owned(),
        ];
        for attack in &files {
            let e = attacker.query_drop(attack).await.unwrap_err();
            assert_eq!(server_code(&e), Some(1227), "{attack}: {e}");
            assert!(
                e.to_string().contains("latchkey:ChangeDatabasePassword"),
                "{attack}: {e}"
            );
        }
        // A variable, a column named outfile and a string saying INTO
        // OUTFILE are not files.
        attacker
            .query_drop("SELECT 'INTO OUTFILE ''/tmp/x''' INTO @outfile")
            .await
            .unwrap();
        let x: Option<String> = attacker.query_first("SELECT @outfile").await.unwrap();
        assert_eq!(x.as_deref(), Some("INTO OUTFILE '/tmp/x'"));
        let n: Option<i64> = attacker
            .query_first("SELECT COUNT(`outfile`) FROM (SELECT 1 AS `outfile`) AS t")
            .await
            .unwrap();
        assert_eq!(n, Some(1));

        // Nothing was prepared or created.
        for follow_up in [
            "EXECUTE s",
            "EXECUTE k",
            "EXECUTE f",
            "CALL pp()",
            "CALL pq()",
            "CALL pf()",
        ] {
            let e = attacker.query_drop(follow_up).await.unwrap_err();
            assert!(
                matches!(server_code(&e), Some(1243 | 1305)),
                "{follow_up}: {e}"
            );
        }
        // After `USE mysql` the unqualified tables are the catalogue's.
        attacker.query_drop("USE mysql").await.unwrap();
        let e = attacker
            .query_drop("UPDATE user SET authentication_string = PASSWORD('attacker-pw') WHERE User = 'app'")
            .await
            .unwrap_err();
        assert_eq!(server_code(&e), Some(1227), "{e}");
        attacker.query_drop("USE shop").await.unwrap();
        // FLUSH PRIVILEGES alone is harmless, and goes through.
        attacker.query_drop("FLUSH PRIVILEGES").await.unwrap();

        // Another principal's gateway connection id is answered as a
        // nonexistent one.
        let nonexistent = victim_id.wrapping_add(100_000);
        for (attack, id) in [
            (format!("KILL {victim_id}"), victim_id),
            (format!("KILL QUERY {victim_id}"), victim_id),
            (format!("KILL CONNECTION {nonexistent}"), nonexistent),
        ] {
            let e = attacker.query_drop(&attack).await.unwrap_err();
            assert_eq!(server_code(&e), Some(1094), "{attack}: {e}");
            assert!(
                e.to_string().contains(&format!("Unknown thread id: {id}")),
                "{attack}: {e}"
            );
            let alive: Option<i64> = victim.query_first("SELECT 7").await.unwrap();
            assert_eq!(alive, Some(7), "{attack} killed the victim");
        }
        // The same principal's other session can still be killed.
        let mut own = mysql_async::Conn::new(my_opts(&lk, &alice, Some("shop")))
            .await
            .unwrap();
        let own_id = own.id();
        attacker
            .query_drop(format!("KILL {own_id}"))
            .await
            .unwrap();
        assert!(own.query_drop("SELECT 1").await.is_err());

        // With latchkey:ExecuteDynamicSql, harmless dynamic SQL runs...
        let mut dynamic = mysql_async::Conn::new(my_opts(&lk, &carol, Some("shop")))
            .await
            .unwrap();
        let answer: Option<i64> = dynamic
            .query_first("EXECUTE IMMEDIATE CONCAT('SELECT ', 41 + 1)")
            .await
            .unwrap();
        assert_eq!(answer, Some(42));
        dynamic
            .query_drop("SET @s = 'SELECT 5'; PREPARE s FROM @s")
            .await
            .unwrap();
        let five: Option<i64> = dynamic.query_first("EXECUTE s").await.unwrap();
        assert_eq!(five, Some(5));
        // ...but a password change written out is still refused.
        let e = dynamic
            .query_drop("EXECUTE IMMEDIATE 'SET PASSWORD = PASSWORD(''attacker-pw'')'")
            .await
            .unwrap_err();
        assert_eq!(server_code(&e), Some(1227), "{e}");
        let alive: Option<i64> = victim.query_first("SELECT 7").await.unwrap();
        assert_eq!(alive, Some(7));
        let _ = dynamic.disconnect().await;
        let _ = victim.disconnect().await;
        let _ = attacker.disconnect().await;
    });

    // The password is what it was.
    assert!(text(&mariadb_direct(&db, "app-secret")).contains("direct"));
    assert!(!mariadb_direct(&db, "attacker-pw").status.success());
    assert_eq!(
        db.sql(
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_NAME IN ('pp', 'pq')"
        ),
        "0"
    );
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM mysql.user WHERE User IN ('eve', 'evil', 'x')"),
        "0"
    );
    // No file was written or read, no library loaded or unloaded.
    for name in ["outfile", "dumpfile", "second", "routine", "prepared"] {
        assert!(!root.path().join(name).exists(), "{name} was written");
    }
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.files"), "0");
    assert_eq!(
        db.sql(
            "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ARCHIVE' OR (PLUGIN_NAME = 'ed25519' AND PLUGIN_STATUS = 'ACTIVE')"
        ),
        "1"
    );
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM mysql.func WHERE name = 'evil'"),
        "0"
    );

    // mariadb-admin's shutdown (COM_SHUTDOWN or the statement), refused
    // whatever the policy: the server stays up.
    let all = my_token(
        &lk,
        &user_with_policy(
            &lk,
            "dave",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["rds-db:connect","latchkey:ChangeDatabasePassword","latchkey:ExecuteDynamicSql"],"Resource":"*"}]}"#,
        ),
    );
    let out = Command::new("mariadb-admin")
        .args([
            "--protocol=TCP",
            "--host=localhost",
            &format!("--port={}", lk.mysql_port),
            "--user=app",
            "--ssl",
            &format!("--ssl-ca={}", lk.data.join("ca.pem").display()),
            "--ssl-verify-server-cert",
            "--connect-timeout=10",
            "shutdown",
        ])
        .env("MYSQL_PWD", &all)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Latchkey"), "{}", text(&out));
    let out = mariadb(&lk, "app", &all, &["-e", "SHUTDOWN"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&mariadb_direct(&db, "app-secret")).contains("direct"));

    // With latchkey:ChangeDatabasePassword, server files and libraries are
    // the server's business again.
    let erin = my_token(&lk, &user_with_policy(&lk, "erin", MAY_CHANGE_PASSWORDS));
    let written = victim_file("allowed");
    runtime().block_on(async {
        let mut trusted = mysql_async::Conn::new(my_opts(&lk, &erin, Some("shop")))
            .await
            .unwrap();
        trusted
            .query_drop(format!("SELECT 'x' INTO OUTFILE '{written}'"))
            .await
            .unwrap();
        let read: Option<Option<String>> = trusted
            .query_first(format!("SELECT LOAD_FILE('{written}')"))
            .await
            .unwrap();
        assert_eq!(read, Some(Some("x\n".to_owned())));
        trusted
            .query_drop(format!(
                "LOAD DATA INFILE '{written}' INTO TABLE shop.files"
            ))
            .await
            .unwrap();
        trusted
            .query_drop("INSTALL SONAME 'ha_archive'")
            .await
            .unwrap();
        trusted
            .query_drop("UNINSTALL SONAME 'ha_archive'")
            .await
            .unwrap();
        let _ = trusted.disconnect().await;
    });
    assert_eq!(
        std::fs::read_to_string(&written).ok().as_deref(),
        Some("x\n")
    );
    assert_eq!(db.sql("SELECT line FROM shop.files"), "x");
}
