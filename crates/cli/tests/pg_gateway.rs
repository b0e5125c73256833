#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The PostgreSQL gateway end to end: a throwaway PostgreSQL (initdb,
//! random port, scram-sha-256), `latchkey serve`, tokens from the AWS CLI
//! (botocore), and psql as the client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pg_bin(tool: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (scripts/test installs postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(tool)))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("{tool} not found under /usr/lib/postgresql"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool as the `postgres` user when we are root (initdb
/// refuses root).
fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A throwaway PostgreSQL server.
struct Postgres {
    dir: PathBuf,
    port: u16,
}

impl Postgres {
    fn start(root: &Path) -> Self {
        let dir = root.join("pg");
        std::fs::create_dir_all(&dir).unwrap();
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, "superuser-secret\n").unwrap();
        if is_root() {
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(&dir)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let data = dir.join("data");
        let out = as_pg_user(&pg_bin("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let out = as_pg_user(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                dir.display()
            ))
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = Self { dir, port };
        pg.sql("CREATE ROLE app LOGIN PASSWORD 'app-secret'");
        pg.sql("CREATE DATABASE orders OWNER app");
        pg
    }

    /// Runs SQL as the superuser over the local socket.
    fn sql(&self, sql: &str) {
        let out = as_pg_user(Path::new("/usr/bin/psql"))
            .arg("-h")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_pg_user(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

struct Latchkey {
    child: Child,
    data: PathBuf,
    pg_port: u16,
}

impl Drop for Latchkey {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn latchkey(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    c.args(args).env_remove("LATCHKEY_CONFIG");
    c
}

fn start_latchkey(root: &Path, pg: &Postgres) -> Latchkey {
    let data = root.join("data");
    let api_port = free_port();
    let pg_port = free_port();
    let d = data.to_str().unwrap();
    let api = format!("127.0.0.1:{api_port}");
    assert!(
        latchkey(&["init", "--data-dir", d, "--listen", &api])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let out = latchkey(&[
        "db",
        "register",
        "--data-dir",
        d,
        "--name",
        "orders",
        "--endpoint",
        "localhost",
        "--upstream",
        &format!("127.0.0.1:{}", pg.port),
        "--tag",
        "env=dev",
        "--output",
        "json",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut set = latchkey(&[
        "db",
        "set-password",
        "--data-dir",
        d,
        "--name",
        "orders",
        "--user",
        "app",
    ])
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    std::io::Write::write_all(set.stdin.as_mut().unwrap(), b"app-secret\n").unwrap();
    assert!(set.wait().unwrap().success());
    let log = std::fs::File::create(root.join("latchkey.log")).unwrap();
    let child = latchkey(&[
        "serve",
        "--data-dir",
        d,
        "--listen",
        &api,
        "--pg-listen",
        &format!("127.0.0.1:{pg_port}"),
    ])
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .unwrap();
    wait_for_port(pg_port);
    Latchkey {
        child,
        data,
        pg_port,
    }
}

/// A token from the AWS CLI (botocore) with the given credentials.
fn aws_token(lk: &Latchkey, creds: &[(&str, &str)], host: &str, user: &str) -> String {
    let mut c = Command::new("aws");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        lk.data.join("admin.credentials"),
    )
    .env("AWS_CONFIG_FILE", "/dev/null");
    for (k, v) in creds {
        c.env(k, v);
    }
    let out = c
        .args([
            "rds",
            "generate-db-auth-token",
            "--hostname",
            host,
            "--port",
            &lk.pg_port.to_string(),
            "--username",
            user,
            "--region",
            "us-east-1",
        ])
        .output()
        .expect("the AWS CLI (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn psql(lk: &Latchkey, user: &str, token: &str, sslmode: &str, sql: &str) -> Output {
    let conn = format!(
        "host=localhost port={} user={user} dbname=orders sslmode={sslmode} sslrootcert={}",
        lk.pg_port,
        lk.data.join("ca.pem").display()
    );
    Command::new("psql")
        .arg(conn)
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap()
}

fn assert_denied(out: &Output, user: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "FATAL:  PAM authentication failed for user \"{user}\""
        )),
        "{err}"
    );
}

/// Credentials of a new IAM user with `policy` (via the stock AWS CLI).
fn user_with_policy(lk: &Latchkey, name: &str, policy: &str) -> Vec<(String, String)> {
    let api = |args: &[&str]| -> serde_json::Value {
        let mut c = Command::new("aws");
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        let out = c
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                lk.data.join("admin.credentials"),
            )
            .env("AWS_CONFIG_FILE", lk.data.join("aws.config"))
            .env("AWS_CA_BUNDLE", lk.data.join("ca.pem"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    api(&["iam", "create-user", "--user-name", name]);
    api(&[
        "iam",
        "put-user-policy",
        "--user-name",
        name,
        "--policy-name",
        "db",
        "--policy-document",
        policy,
    ]);
    let key = api(&["iam", "create-access-key", "--user-name", name]);
    vec![
        (
            "AWS_ACCESS_KEY_ID".into(),
            key["AccessKey"]["AccessKeyId"].as_str().unwrap().into(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            key["AccessKey"]["SecretAccessKey"].as_str().unwrap().into(),
        ),
    ]
}

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
    let creds: Vec<(&str, &str)> = nobody
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_denied(
        &psql(
            &lk,
            "app",
            &aws_token(&lk, &creds, "localhost", "app"),
            "verify-full",
            "select 1",
        ),
        "app",
    );
    let office = user_with_policy(
        &lk,
        "office",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
    );
    let creds: Vec<(&str, &str)> = office
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_denied(
        &psql(
            &lk,
            "app",
            &aws_token(&lk, &creds, "localhost", "app"),
            "verify-full",
            "select 1",
        ),
        "app",
    );
    let tagged = user_with_policy(
        &lk,
        "tagged",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:us-east-1:*:dbuser:*/app","Condition":{"StringEquals":{"aws:ResourceTag/env":"dev"}}}]}"#,
    );
    let creds: Vec<(&str, &str)> = tagged
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let out = psql(
        &lk,
        "app",
        &aws_token(&lk, &creds, "localhost", "app"),
        "verify-full",
        "select 42",
    );
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
