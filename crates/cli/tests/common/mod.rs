//! Helpers shared by the gateway integration tests: throwaway PostgreSQL
//! servers, `latchkey serve`, tokens from the AWS CLI (botocore), psql.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a subset; a panic is the failure report

pub mod api;
pub mod cluster;
pub mod pki;
pub mod sql;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Starts `start` once for every test that holds the result: a server
/// the tests of one file share. It stops when no running test holds it.
pub fn shared<T>(slot: &'static Mutex<Weak<T>>, start: impl FnOnce() -> T) -> Arc<T> {
    let mut held = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(running) = held.upgrade() {
        return running;
    }
    let started = Arc::new(start());
    *held = Arc::downgrade(&started);
    started
}

/// A port nothing listens on, for a server a test is about to start.
///
/// Chosen below the kernel's ephemeral range: a port from `bind(0)` is
/// one the kernel also hands to outgoing connections, so while a busy
/// test opens a thousand of them one could take the port before the
/// server binds it (seen in CI: "nothing listening on 43225").
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    for attempt in 0u32..1000 {
        let port = low + (RandomState::new().hash_one(attempt) % u64::from(high - low)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How a server a test started came up.
pub enum Started {
    Listening,
    /// It exited first: its log says why.
    Exited(String),
}

impl Started {
    /// Whether it exited because a port was taken between [`free_port`]
    /// choosing it and the server binding it (another test's server or
    /// an outgoing connection took it): worth a retry on fresh ports.
    pub fn lost_a_port(&self) -> bool {
        matches!(self, Started::Exited(log) if log.contains("in use"))
    }
}

/// Waits until `child` listens on every one of `ports`, or exits; its
/// standard error went to `log`. A server slow to start on a loaded
/// machine gets 60 s.
pub fn wait_for_server(child: &mut Child, ports: &[u16], log: &Path) -> Started {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Started::Exited(format!("{status}: {text}"));
        }
        if ports
            .iter()
            .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
        {
            return Started::Listening;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("nothing listening on {ports:?} after 60 s; its log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn pg_bin(tool: &str) -> PathBuf {
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

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool as the `postgres` user when we are root (initdb
/// refuses root).
pub fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A throwaway PostgreSQL server.
pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    /// The server's options, to start it again after [`Postgres::stop`].
    options: String,
}

/// TLS for a throwaway PostgreSQL server (PEM files; copied into its
/// directory for the `postgres` user).
pub struct PgTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `ssl_ca_file`: CAs client certificates must chain to.
    pub ca: Option<PathBuf>,
}

/// How to start a throwaway PostgreSQL server.
#[derive(Default)]
pub struct PgOptions {
    /// Directory under the root [default: `pg`].
    pub name: Option<String>,
    pub tls: Option<PgTls>,
    /// pg_hba.conf lines put before initdb's (the first match wins).
    pub hba: Vec<String>,
    /// [default: `127.0.0.1`].
    pub listen_addresses: Option<String>,
}

fn chown_postgres(path: &Path) {
    if is_root() {
        assert!(
            Command::new("chown")
                .args(["-R", "postgres"])
                .arg(path)
                .status()
                .unwrap()
                .success()
        );
    }
}

impl Postgres {
    /// Plain (no TLS), scram-sha-256 over TCP, role `app` (password
    /// `app-secret`) owning database `orders`.
    pub fn start(root: &Path) -> Self {
        Self::start_with(root, &PgOptions::default())
    }

    pub fn start_with(root: &Path, options: &PgOptions) -> Self {
        Self::start_with_settings(root, options, &[])
    }

    /// As [`Postgres::start_with`], with extra server settings
    /// (`name=value`, each passed as `-c`), e.g. `max_connections=1100`.
    pub fn start_with_settings(root: &Path, options: &PgOptions, extra: &[&str]) -> Self {
        let dir = root.join(options.name.as_deref().unwrap_or("pg"));
        std::fs::create_dir_all(&dir).unwrap();
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, "superuser-secret\n").unwrap();
        chown_postgres(&dir);
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
        if !options.hba.is_empty() {
            let path = data.join("pg_hba.conf");
            let initial = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, format!("{}\n{initial}", options.hba.join("\n"))).unwrap();
        }
        let mut settings = format!(
            "-c listen_addresses={}",
            options.listen_addresses.as_deref().unwrap_or("127.0.0.1")
        );
        if let Some(tls) = &options.tls {
            let tls_dir = dir.join("tls");
            std::fs::create_dir_all(&tls_dir).unwrap();
            let copy = |from: &Path, name: &str| {
                let to = tls_dir.join(name);
                std::fs::copy(from, &to).unwrap();
                to
            };
            let cert = copy(&tls.cert, "server.pem");
            let key = copy(&tls.key, "server.key");
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            settings += &format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            );
            if let Some(ca) = &tls.ca {
                settings += &format!(" -c ssl_ca_file={}", copy(ca, "ca.pem").display());
            }
            chown_postgres(&tls_dir);
        }
        for setting in extra {
            settings += &format!(" -c {setting}");
        }
        let port = free_port();
        let pg = Self {
            options: format!("-p {port} -k {} {settings}", dir.display()),
            dir,
            port,
        };
        pg.start_again();
        pg.sql("CREATE ROLE app LOGIN PASSWORD 'app-secret'");
        pg.sql("CREATE DATABASE orders OWNER app");
        pg
    }

    /// Starts the server (again, after [`Postgres::stop`]) on its port
    /// and data.
    pub fn start_again(&self) {
        let out = as_pg_user(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-o")
            .arg(&self.options)
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    /// Stops the server, ending every connection at once (`-m immediate`,
    /// as a crash or a failover would).
    pub fn stop(&self) {
        let out = as_pg_user(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL as the superuser over the local socket.
    pub fn sql(&self, sql: &str) {
        self.query(sql);
    }

    /// Runs SQL as the superuser over the local socket; its rows, one a
    /// line, columns `|`-separated.
    pub fn query(&self, sql: &str) -> String {
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
                "-At",
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
        String::from_utf8_lossy(&out.stdout).into_owned()
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

pub struct Latchkey {
    pub child: Child,
    pub data: PathBuf,
    pub pg_port: u16,
    pub mysql_port: u16,
}

impl Drop for Latchkey {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn latchkey(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    // Tests run in parallel: a server's MySQL gateway gets a free port
    // unless the test names one.
    c.args(args).env_remove("LATCHKEY_CONFIG").env(
        "LATCHKEY_MYSQL_LISTEN",
        format!("127.0.0.1:{}", free_port()),
    );
    c
}

pub fn start_latchkey(root: &Path, pg: &Postgres) -> Latchkey {
    start_latchkey_with(root, pg, &[])
}

pub fn start_latchkey_with(root: &Path, pg: &Postgres, extra: &[&str]) -> Latchkey {
    let (data, api) = init_latchkey(root, &[]);
    register_db(
        &data,
        &[
            "--name",
            "orders",
            "--endpoint",
            "localhost",
            "--upstream",
            &format!("127.0.0.1:{}", pg.port),
            "--tag",
            "env=dev",
        ],
    );
    set_db_password(&data, "orders", "app", "app-secret");
    serve_latchkey(root, &data, &api, extra)
}

/// `latchkey init` in `root/data` with the API on a free port; extra
/// names for the server certificate. Returns the data directory and the
/// API address.
pub fn init_latchkey(root: &Path, server_names: &[&str]) -> (PathBuf, String) {
    let data = root.join("data");
    let api = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "init",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        &api,
    ];
    for name in server_names {
        args.extend(["--server-name", name]);
    }
    assert!(
        latchkey(&args)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    (data, api)
}

/// `latchkey db register` with `args`; its JSON output.
pub fn register_db(data: &Path, args: &[&str]) -> serde_json::Value {
    let out = latchkey(&["db", "register", "--data-dir", data.to_str().unwrap()])
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `latchkey db set-password`.
pub fn set_db_password(data: &Path, name: &str, user: &str, password: &str) {
    let mut set = latchkey(&[
        "db",
        "set-password",
        "--data-dir",
        data.to_str().unwrap(),
        "--name",
        name,
        "--user",
        user,
    ])
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    std::io::Write::write_all(
        set.stdin.as_mut().unwrap(),
        format!("{password}\n").as_bytes(),
    )
    .unwrap();
    drop(set.stdin.take());
    assert!(set.wait().unwrap().success());
}

/// `latchkey serve` on an initialised data directory, the gateway on a
/// free port, logging to `root/latchkey.log`.
pub fn serve_latchkey(root: &Path, data: &Path, api: &str, extra: &[&str]) -> Latchkey {
    serve_latchkey_env(root, data, api, extra, &[])
}

/// As [`serve_latchkey`], with extra environment variables for the server
/// (e.g. the upstream passwords a `latchkey.toml` names in `password_env`).
pub fn serve_latchkey_env(
    root: &Path,
    data: &Path,
    api: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Latchkey {
    let log_path = root.join("latchkey.log");
    for _attempt in 0..3 {
        let pg_port = free_port();
        let mysql_port = free_port();
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = latchkey(&[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            api,
            "--pg-listen",
            &format!("127.0.0.1:{pg_port}"),
            "--mysql-listen",
            &format!("127.0.0.1:{mysql_port}"),
        ])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
        match wait_for_server(&mut child, &[pg_port, mysql_port], &log_path) {
            Started::Listening => {
                return Latchkey {
                    child,
                    data: data.to_owned(),
                    pg_port,
                    mysql_port,
                };
            }
            started if started.lost_a_port() => continue,
            Started::Exited(why) => panic!("latchkey serve exited: {why}"),
        }
    }
    panic!("latchkey serve lost its ports three times running");
}

/// The AWS CLI with no AWS_* variables from the machine.
pub fn aws_cli() -> Command {
    let mut c = Command::new("aws");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c
}

/// A token from the AWS CLI (botocore) with the given credentials, for
/// the PostgreSQL gateway.
pub fn aws_token(lk: &Latchkey, creds: &[(&str, &str)], host: &str, user: &str) -> String {
    aws_token_for_port(lk, lk.pg_port, creds, host, user)
}

/// A token from the AWS CLI (botocore) for `host:port`.
pub fn aws_token_for_port(
    lk: &Latchkey,
    port: u16,
    creds: &[(&str, &str)],
    host: &str,
    user: &str,
) -> String {
    aws_token_in(&lk.data, port, creds, host, user)
}

/// A token from the AWS CLI (botocore) for `host:port`, signed with
/// `creds` (or the administrator's credentials in `data`).
pub fn aws_token_in(
    data: &Path,
    port: u16,
    creds: &[(&str, &str)],
    host: &str,
    user: &str,
) -> String {
    let mut c = aws_cli();
    c.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        data.join("admin.credentials"),
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
            &port.to_string(),
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

/// libpq connection string for the gateway.
pub fn conninfo(lk: &Latchkey, user: &str, sslmode: &str) -> String {
    format!(
        "host=localhost port={} user={user} dbname=orders sslmode={sslmode} sslrootcert={}",
        lk.pg_port,
        lk.data.join("ca.pem").display()
    )
}

pub fn psql(lk: &Latchkey, user: &str, token: &str, sslmode: &str, sql: &str) -> Output {
    Command::new("psql")
        .arg(conninfo(lk, user, sslmode))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap()
}

pub fn assert_denied(out: &Output, user: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "FATAL:  PAM authentication failed for user \"{user}\""
        )),
        "{err}"
    );
}

/// A token for `app` on localhost signed with the given credentials.
pub fn token_with(lk: &Latchkey, creds: &[(String, String)]) -> String {
    let creds: Vec<(&str, &str)> = creds
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    aws_token(lk, &creds, "localhost", "app")
}

/// The stock AWS CLI as the administrator, against `lk`'s token service;
/// its JSON output (`null` when there is none). Panics on failure.
pub fn admin_cli(lk: &Latchkey, args: &[&str]) -> serde_json::Value {
    admin_cli_in(&lk.data, args)
}

/// The stock AWS CLI set up as the administrator of the Latchkey whose
/// data directory is `data`, for calls whose outcome the caller judges.
pub fn admin_aws(data: &Path) -> Command {
    let mut c = aws_cli();
    c.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        data.join("admin.credentials"),
    )
    .env("AWS_CONFIG_FILE", data.join("aws.config"))
    .env("AWS_CA_BUNDLE", data.join("ca.pem"));
    c
}

/// [`admin_cli`] with the data directory `data` (where a `Latchkey` is
/// not at hand, e.g. on another thread).
pub fn admin_cli_in(data: &Path, args: &[&str]) -> serde_json::Value {
    let out = admin_aws(data).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Credentials of a new IAM user with `policy` (via the stock AWS CLI).
pub fn user_with_policy(lk: &Latchkey, name: &str, policy: &str) -> Vec<(String, String)> {
    let api = |args: &[&str]| admin_cli(lk, args);
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
    api::Creds::access_key(&key).env_vars()
}

pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Runs `latchkey iam|sts ...` as the administrator against this server.
pub fn latchkey_api(lk: &Latchkey, api_port: u16, args: &[&str]) -> serde_json::Value {
    let out = latchkey(args)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            lk.data.join("admin.credentials"),
        )
        .env("AWS_CA_BUNDLE", lk.data.join("ca.pem"))
        .env("AWS_ENDPOINT_URL", format!("https://localhost:{api_port}"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// A command's trimmed standard output, after asserting it succeeded.
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Every audit trail record written so far, in order.
pub fn audit_text(lk: &Latchkey) -> String {
    trail_text(&lk.data)
}

/// Every audit trail record the server on `data` has written so far.
pub fn trail_text(data: &Path) -> String {
    let dir = data.join("audit").join("segments");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

/// Audit records written so far, once the trail has caught up with
/// `until` (or after 5 s).
pub fn audit_events(
    lk: &Latchkey,
    until: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    trail_in(&lk.data, until).1
}

/// The trail of the server on `data` (its text and its records), once
/// `until` holds (or after 5 s).
pub fn trail_in(
    data: &Path,
    until: impl Fn(&[serde_json::Value]) -> bool,
) -> (String, Vec<serde_json::Value>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = trail_text(data);
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if until(&events) || std::time::Instant::now() > deadline {
            return (text, events);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A throwaway MariaDB: its own data directory under `root`, TCP on a
/// free loopback port and a Unix socket for the root account, which the
/// harness uses to set things up.
pub struct MariaDb {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    extra: Vec<String>,
}

impl MariaDb {
    pub fn start(root: &Path) -> Self {
        Self::start_with(root, &[])
    }

    /// With extra `mariadbd` options.
    pub fn start_with(root: &Path, extra: &[&str]) -> Self {
        const INSTALL_DB: &str = "/usr/bin/mariadb-install-db";
        assert!(
            Path::new(INSTALL_DB).exists(),
            "no MariaDB server binaries (scripts/test installs mariadb-server)"
        );
        let dir = root.join("mariadb");
        std::fs::create_dir_all(&dir).unwrap();
        // Bootstrapping failed once in CI, with four servers starting at
        // once and its output thrown away. A second try on a fresh
        // directory rides out a transient failure, and the output of a
        // failed one is printed so the next failure says why.
        let mut failures = Vec::new();
        for _ in 0..2 {
            let data = dir.join("data");
            let _ = std::fs::remove_dir_all(&data);
            let out = Command::new(INSTALL_DB)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg("--user=root")
                .arg("--auth-root-authentication-method=normal")
                .arg("--skip-test-db")
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!("mariadb-install-db failed ({}):\n{log}", out.status);
            failures.push(log);
        }
        assert!(failures.len() < 2, "mariadb-install-db failed twice");
        let mut db = MariaDb {
            child: None,
            dir,
            port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        db.launch();
        db
    }

    fn launch(&mut self) {
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", self.dir.join("pid").display()))
            .arg(format!(
                "--log-error={}",
                self.dir.join("err.log").display()
            ))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg("--user=root")
            .arg("--plugin-load-add=auth_ed25519")
            .arg("--max-allowed-packet=256M")
            .arg("--innodb-buffer-pool-size=64M")
            .arg("--innodb-log-file-size=256M")
            .arg("--local-infile=1")
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "mariadbd did not start:\n{}",
                std::fs::read_to_string(self.dir.join("err.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Runs SQL as root over the socket; tab-separated rows.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .output()
            .unwrap();
        stdout_ok(&out)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The mariadb client set up for the MySQL gateway (TLS, certificate
/// verified) with `token` as the password.
pub fn mariadb_command(lk: &Latchkey, user: &str, token: &str) -> Command {
    let mut c = Command::new("mariadb");
    c.args([
        "--protocol=TCP",
        "--host=localhost",
        &format!("--port={}", lk.mysql_port),
        &format!("--user={user}"),
        "--ssl",
        &format!("--ssl-ca={}", lk.data.join("ca.pem").display()),
        "--ssl-verify-server-cert",
        "--connect-timeout=10",
    ])
    .env("MYSQL_PWD", token);
    c
}

/// Runs the mariadb client through the gateway, batch mode without
/// column names; extra arguments after.
pub fn mariadb(lk: &Latchkey, user: &str, token: &str, args: &[&str]) -> Output {
    mariadb_command(lk, user, token)
        .args(["-N", "-B"])
        .args(args)
        .output()
        .unwrap()
}

/// A database auth token signed 20 minutes ago by botocore (so expired)
/// with the administrator's key, for `localhost:port` and `user`.
pub fn expired_token(lk: &Latchkey, port: u16, user: &str) -> String {
    let admin = std::fs::read_to_string(lk.data.join("admin.credentials")).unwrap();
    let field = |k: &str| {
        admin
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} = ")))
            .unwrap()
            .to_owned()
    };
    let out = Command::new("python3")
        .args(["-c", r#"
import datetime, sys, botocore.auth, botocore.session
botocore.auth.get_current_datetime = lambda remove_tzinfo=True: datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
c = botocore.session.get_session().create_client("rds", region_name="us-east-1", aws_access_key_id=sys.argv[1], aws_secret_access_key=sys.argv[2])
print(c.generate_db_auth_token("localhost", int(sys.argv[3]), sys.argv[4]))
"#, &field("aws_access_key_id"), &field("aws_secret_access_key"), &port.to_string(), user])
        .output()
        .unwrap();
    stdout_ok(&out)
}

/// What RDS tells a client it refuses.
pub fn assert_mysql_denied(out: &Output, user: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "ERROR 1045 (28000): Access denied for user '{user}'@'127.0.0.1' (using password: YES)"
        )),
        "{err}"
    );
}

/// `latchkey findings list` (JSON) on a data directory, with extra flags.
pub fn findings(data: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = latchkey(&[
        "findings",
        "list",
        "--output",
        "json",
        "--data-dir",
        data.to_str().unwrap(),
    ])
    .args(extra)
    .output()
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
    v["Findings"].as_array().unwrap().clone()
}

/// The first finding of `kind`, waiting up to 10 s for it.
pub fn wait_for_finding(data: &Path, kind: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(f) = findings(data, &[]).into_iter().find(|f| f["type"] == kind) {
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} finding; have {:#?}",
            findings(data, &[])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Temporary credentials for `creds` from `latchkey sts get-session-token`
/// (15 minutes) against the server's API on `api_port`, as environment
/// variables.
pub fn session_credentials(
    lk: &Latchkey,
    api_port: u16,
    creds: &[(String, String)],
) -> Vec<(String, String)> {
    let mut cmd = latchkey(&["sts", "get-session-token", "--duration-seconds", "900"]);
    for (k, v) in creds {
        cmd.env(k, v);
    }
    let out = cmd
        .env("AWS_CA_BUNDLE", lk.data.join("ca.pem"))
        .env("AWS_ENDPOINT_URL", format!("https://localhost:{api_port}"))
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .unwrap();
    let session: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
    api::Creds::from_sts(&session["Credentials"]).env_vars()
}

/// `latchkey audit lookup --output json` on the trail of `data`, with
/// `args` as filters: the CloudTrail records found, newest first.
pub fn audit_lookup(data: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = latchkey(&[
        "audit",
        "lookup",
        "--output",
        "json",
        "--max-results",
        "1000",
    ])
    .args(args)
    .args(["--data-dir", data.to_str().unwrap()])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "audit lookup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap())
        .collect()
}

/// What the metrics listener at 127.0.0.1:`port` exposes now.
pub fn metrics_text(port: u16) -> String {
    let out = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of a series (`name{labels}`, as exposed) on the metrics
/// listener at 127.0.0.1:`port`; `None` when it is not there.
pub fn metric_at(port: u16, series: &str) -> Option<f64> {
    metrics_text(port).lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The flagged resources of one check in `advisor checks --output json`.
pub fn flagged(report: &serde_json::Value, check: &str) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["checkId"] == check)
        .unwrap_or_else(|| panic!("no check {check}: {report}"))["flaggedResources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["resourceId"].as_str().unwrap(),
                f["metadata"][1].as_str().unwrap()
            )
        })
        .collect()
}
