#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The gateways' upstream logins during a credential rotation, against
//! real servers: a client connects while the stored login is wrong and
//! the next one (a rotation in progress) is right; the gateway logs in as
//! another user than the client's (alternating-users rotation); both
//! wrong is refused as ever; and a credential change keeps pooled
//! connections from new sessions.
//!
//! Each engine has one server and one Latchkey data directory shared by
//! its tests (each test uses database users of its own): `latchkey
//! serve` on it, whose store this process changes as a rotation job on
//! another node would, and a gateway of the same code run in this
//! process over the same store, for the pool drain, which needs
//! [`AppState::bump_upstream_credentials_epoch`] of the serving process.
//! Tests are named by engine, as in `rotation_engine.rs`.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use common::*;
use latchkey_gateway::{Gateway, GatewayConfig, Protocol};
use latchkey_identity::AppState;
use latchkey_server::bootstrap::{DataDir, load_vault};
use latchkey_store::Store;

/// `latchkey serve` without session pooling: every client there logs in
/// upstream afresh, as the login tests need, since a change made by this
/// process cannot drain that process's pool (a rotation running in the
/// serving process does: the `_d_` tests, on the gateway in this process).
const NO_POOL: &[&str] = &["--gateway-pool-size", "0"];

/// Starts `start` once for every test that holds the result.
fn shared<T>(slot: &'static Mutex<Weak<T>>, start: impl FnOnce() -> T) -> Arc<T> {
    let mut held = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(running) = held.upgrade() {
        return running;
    }
    let started = Arc::new(start());
    *held = Arc::downgrade(&started);
    started
}

/// A gateway of `latchkey serve`'s code, run in this process on a
/// runtime of its own, until dropped.
struct InProcess<P: Protocol<Transport = tokio::net::TcpStream>> {
    gateway: Arc<Gateway<P>>,
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<P: Protocol<Transport = tokio::net::TcpStream>> InProcess<P> {
    fn start(protocol: P, state: Arc<AppState>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut config = GatewayConfig::new("us-east-1", port);
        config.threads = 1;
        let gateway = Arc::new(
            Gateway::new(protocol, state, config, Arc::new(latchkey_audit::NullSink)).unwrap(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = gateway.clone();
        let thread = std::thread::spawn(move || {
            runtime
                .block_on(serving.serve(listener, async {
                    let _ = stopped.await;
                }))
                .unwrap();
        });
        Self {
            gateway,
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Waits until the gateway keeps more than `before` idle upstream
    /// connections (a client's is reset and pooled after it leaves).
    fn wait_pooled(&self, before: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.gateway.pooled_connections() <= before {
            assert!(Instant::now() < deadline, "the connection was not pooled");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl<P: Protocol<Transport = tokio::net::TcpStream>> Drop for InProcess<P> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An initialised data directory's store, opened as `serve` opens it,
/// and the state a gateway reads it through.
fn open_state(data: &Path) -> Arc<AppState> {
    let dir = DataDir::new(data);
    let store = Store::open(&dir.store(), load_vault(&dir.master_key()).unwrap()).unwrap();
    let keys = store
        .cluster_keys(latchkey_identity::clock::system_now())
        .unwrap();
    Arc::new(AppState::new(store, keys).unwrap())
}

fn server_tls(data: &Path) -> Arc<rustls::ServerConfig> {
    latchkey_server::tls::server_config(&DataDir::new(data).tls()).unwrap()
}

/// A command's standard error.
fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The serving process's log holds no password of `passwords`.
fn assert_not_logged(root: &Path, passwords: &[&str]) {
    let log = std::fs::read_to_string(root.join("latchkey.log")).unwrap();
    for p in passwords {
        assert!(!log.contains(p), "a password is in latchkey's log");
    }
}

// ---------------------------------------------------------------- PostgreSQL

struct PgEnv {
    lk: Latchkey,
    /// The gateway in this process, over the same store.
    local: InProcess<latchkey_pg_gateway::Postgres>,
    state: Arc<AppState>,
    pg: Postgres,
    root: tempfile::TempDir,
}

static PG: Mutex<Weak<PgEnv>> = Mutex::new(Weak::new());

fn pg_env() -> Arc<PgEnv> {
    shared(&PG, || {
        let root = tempfile::tempdir().unwrap();
        let pg = Postgres::start(root.path());
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
                "--upstream-tls",
                "disable",
            ],
        );
        let lk = serve_latchkey(root.path(), &data, &api, NO_POOL);
        let state = open_state(&data);
        let local = InProcess::start(
            latchkey_pg_gateway::Postgres::new(server_tls(&data)),
            state.clone(),
        );
        PgEnv {
            lk,
            local,
            state,
            pg,
            root,
        }
    })
}

impl PgEnv {
    fn store(&self) -> &Store {
        &self.state.store
    }

    /// psql through `latchkey serve` as client user `user` (a token of
    /// the administrator's): `sql`'s output.
    fn psql(&self, user: &str, sql: &str) -> Output {
        self.psql_on(self.lk.pg_port, user, sql)
    }

    fn psql_on(&self, port: u16, user: &str, sql: &str) -> Output {
        let token = aws_token_for_port(&self.lk, port, &[], "localhost", user);
        Command::new("psql")
            .arg(format!(
                "host=localhost port={port} user={user} dbname=orders sslmode=verify-full sslrootcert={}",
                self.lk.data.join("ca.pem").display()
            ))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", token)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap()
    }
}

/// What a client gets today when the server refuses the gateway's login.
fn assert_pg_upstream_refused(out: &Output) {
    assert!(!out.status.success());
    assert!(
        stderr(out).contains("FATAL:  could not connect to the database server"),
        "{}",
        stderr(out)
    );
}

#[test]
fn pg_a_refused_current_login_falls_back_to_the_next_one() {
    let env = pg_env();
    env.pg
        .sql("CREATE ROLE pgt_next LOGIN PASSWORD 'pg-next-new'; GRANT CONNECT ON DATABASE orders TO pgt_next");
    env.store()
        .set_database_password("orders", "pgt_next", "pg-next-old")
        .unwrap();
    // The server's password changed and nothing else is stored: refused.
    assert_pg_upstream_refused(&env.psql("pgt_next", "SELECT current_user"));
    // A rotation in progress: its next login is tried, in a fresh
    // connection, and the client gets in.
    env.store()
        .set_database_next_login("orders", "pgt_next", Some(("pgt_next", "pg-next-new")))
        .unwrap();
    assert_eq!(
        stdout_ok(&env.psql("pgt_next", "SELECT current_user")),
        "pgt_next"
    );
    // Once the rotation finishes, the current login works on its own.
    env.store()
        .set_database_password("orders", "pgt_next", "pg-next-new")
        .unwrap();
    assert_eq!(stdout_ok(&env.psql("pgt_next", "SELECT 1 + 1")), "2");
    assert_not_logged(env.root.path(), &["pg-next-old", "pg-next-new"]);
}

#[test]
fn pg_b_the_gateway_logs_in_as_the_login_user() {
    let env = pg_env();
    env.pg.sql(
        "CREATE ROLE pgt_alt LOGIN PASSWORD 'pg-alt-pw'; CREATE ROLE pgt_alt_clone LOGIN PASSWORD 'pg-alt-clone-pw'",
    );
    env.store()
        .set_database_password("orders", "pgt_alt", "pg-alt-pw")
        .unwrap();
    assert_eq!(
        stdout_ok(&env.psql("pgt_alt", "SELECT current_user")),
        "pgt_alt"
    );
    // Alternating users: client user pgt_alt, upstream pgt_alt_clone.
    env.store()
        .set_database_login("orders", "pgt_alt", "pgt_alt_clone", "pg-alt-clone-pw")
        .unwrap();
    assert_eq!(
        stdout_ok(&env.psql("pgt_alt", "SELECT current_user, session_user")),
        "pgt_alt_clone|pgt_alt_clone"
    );
    // A next login as the other user of the pair, taken when the current
    // one is refused.
    env.pg.sql("ALTER ROLE pgt_alt_clone PASSWORD 'changed'");
    env.store()
        .set_database_next_login("orders", "pgt_alt", Some(("pgt_alt", "pg-alt-pw")))
        .unwrap();
    assert_eq!(
        stdout_ok(&env.psql("pgt_alt", "SELECT current_user")),
        "pgt_alt"
    );
}

#[test]
fn pg_c_both_logins_refused_is_refused_as_before() {
    let env = pg_env();
    env.pg
        .sql("CREATE ROLE pgt_wrong LOGIN PASSWORD 'pg-wrong-right'");
    env.store()
        .set_database_password("orders", "pgt_wrong", "pg-wrong-1")
        .unwrap();
    env.store()
        .set_database_next_login("orders", "pgt_wrong", Some(("pgt_wrong", "pg-wrong-2")))
        .unwrap();
    assert_pg_upstream_refused(&env.psql("pgt_wrong", "SELECT 1"));
    // A next login as a user the server does not know (class 28 too).
    env.store()
        .set_database_next_login("orders", "pgt_wrong", Some(("pgt_nobody", "pg-wrong-3")))
        .unwrap();
    assert_pg_upstream_refused(&env.psql("pgt_wrong", "SELECT 1"));
    assert_not_logged(env.root.path(), &["pg-wrong-1", "pg-wrong-2", "pg-wrong-3"]);
}

#[test]
fn pg_d_a_credential_change_drains_the_pool() {
    let env = pg_env();
    env.pg
        .sql("CREATE ROLE pgt_pooled LOGIN PASSWORD 'pg-pooled-pw'");
    env.store()
        .set_database_password("orders", "pgt_pooled", "pg-pooled-pw")
        .unwrap();
    let local = &env.local;
    let pid = |what: &str| {
        let out = env.psql_on(local.port, "pgt_pooled", "SELECT pg_backend_pid()");
        let pid = stdout_ok(&out);
        eprintln!("[pg pool] {what}: backend {pid}");
        pid
    };
    let before = local.gateway.pooled_connections();
    let first = pid("first");
    local.wait_pooled(before);
    // Nothing changed: the pooled connection is handed out again.
    assert_eq!(pid("second"), first);
    local.wait_pooled(before);
    env.state.bump_upstream_credentials_epoch();
    let third = pid("after the change");
    assert_ne!(
        third, first,
        "a connection from before the change was reused"
    );
    local.wait_pooled(before + 1);
    assert_eq!(pid("fourth"), third, "pooling goes on under the new epoch");
}

// ---------------------------------------------------------------- MariaDB

struct MyEnv {
    lk: Latchkey,
    local: InProcess<latchkey_my_gateway::Mysql>,
    state: Arc<AppState>,
    db: MariaDb,
    root: tempfile::TempDir,
}

static MY: Mutex<Weak<MyEnv>> = Mutex::new(Weak::new());

fn my_env() -> Arc<MyEnv> {
    shared(&MY, || {
        let root = tempfile::tempdir().unwrap();
        let db = MariaDb::start(root.path());
        db.sql("CREATE DATABASE shop");
        let (data, api) = init_latchkey(root.path(), &[]);
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
        let lk = serve_latchkey(root.path(), &data, &api, NO_POOL);
        let state = open_state(&data);
        let local = InProcess::start(
            latchkey_my_gateway::Mysql::new(server_tls(&data)).unwrap(),
            state.clone(),
        );
        MyEnv {
            lk,
            local,
            state,
            db,
            root,
        }
    })
}

impl MyEnv {
    fn store(&self) -> &Store {
        &self.state.store
    }

    /// Creates `user` with `password`, allowed everything in `shop`.
    fn create_user(&self, user: &str, password: &str) {
        self.db.sql(&format!(
            "CREATE USER {user}@'%' IDENTIFIED BY '{password}'; GRANT ALL ON shop.* TO {user}@'%'"
        ));
    }

    /// The mariadb client through `latchkey serve` as client user `user`
    /// (a token of the administrator's), in schema `shop`.
    fn mariadb(&self, user: &str, sql: &str) -> Output {
        self.mariadb_on(self.lk.mysql_port, user, sql)
    }

    fn mariadb_on(&self, port: u16, user: &str, sql: &str) -> Output {
        let token = aws_token_for_port(&self.lk, port, &[], "localhost", user);
        Command::new("mariadb")
            .args([
                "--protocol=TCP",
                "--host=localhost",
                &format!("--port={port}"),
                &format!("--user={user}"),
                "--ssl",
                &format!("--ssl-ca={}", self.lk.data.join("ca.pem").display()),
                "--ssl-verify-server-cert",
                "--connect-timeout=10",
                "-N",
                "-B",
                "-D",
                "shop",
                "-e",
                sql,
            ])
            .env("MYSQL_PWD", token)
            .output()
            .unwrap()
    }
}

fn assert_my_upstream_refused(out: &Output) {
    assert!(!out.status.success());
    assert!(
        stderr(out).contains("ERROR 1105 (08S01)")
            && stderr(out).contains("could not connect to the database server"),
        "{}",
        stderr(out)
    );
}

#[test]
fn mariadb_a_refused_current_login_falls_back_to_the_next_one() {
    let env = my_env();
    env.create_user("my_next", "my-next-new");
    env.store()
        .set_database_password("shop", "my_next", "my-next-old")
        .unwrap();
    assert_my_upstream_refused(&env.mariadb("my_next", "SELECT CURRENT_USER()"));
    env.store()
        .set_database_next_login("shop", "my_next", Some(("my_next", "my-next-new")))
        .unwrap();
    assert_eq!(
        stdout_ok(&env.mariadb("my_next", "SELECT CURRENT_USER()")),
        "my_next@%"
    );
    env.store()
        .set_database_password("shop", "my_next", "my-next-new")
        .unwrap();
    assert_eq!(stdout_ok(&env.mariadb("my_next", "SELECT 1 + 1")), "2");
    assert_not_logged(env.root.path(), &["my-next-old", "my-next-new"]);
}

#[test]
fn mariadb_b_the_gateway_logs_in_as_the_login_user() {
    let env = my_env();
    env.create_user("my_alt", "my-alt-pw");
    env.create_user("my_alt_clone", "my-alt-clone-pw");
    env.store()
        .set_database_password("shop", "my_alt", "my-alt-pw")
        .unwrap();
    assert_eq!(
        stdout_ok(&env.mariadb("my_alt", "SELECT CURRENT_USER()")),
        "my_alt@%"
    );
    env.store()
        .set_database_login("shop", "my_alt", "my_alt_clone", "my-alt-clone-pw")
        .unwrap();
    assert_eq!(
        stdout_ok(&env.mariadb(
            "my_alt",
            "SELECT CURRENT_USER(), USER() LIKE 'my_alt_clone@%'"
        )),
        "my_alt_clone@%\t1"
    );
    env.db
        .sql("ALTER USER my_alt_clone@'%' IDENTIFIED BY 'changed'");
    env.store()
        .set_database_next_login("shop", "my_alt", Some(("my_alt", "my-alt-pw")))
        .unwrap();
    assert_eq!(
        stdout_ok(&env.mariadb("my_alt", "SELECT CURRENT_USER()")),
        "my_alt@%"
    );
}

#[test]
fn mariadb_c_both_logins_refused_is_refused_as_before() {
    let env = my_env();
    env.create_user("my_wrong", "my-wrong-right");
    env.store()
        .set_database_password("shop", "my_wrong", "my-wrong-1")
        .unwrap();
    env.store()
        .set_database_next_login("shop", "my_wrong", Some(("my_wrong", "my-wrong-2")))
        .unwrap();
    assert_my_upstream_refused(&env.mariadb("my_wrong", "SELECT 1"));
    env.store()
        .set_database_next_login("shop", "my_wrong", Some(("my_nobody", "my-wrong-3")))
        .unwrap();
    assert_my_upstream_refused(&env.mariadb("my_wrong", "SELECT 1"));
    assert_not_logged(env.root.path(), &["my-wrong-1", "my-wrong-2", "my-wrong-3"]);
}

#[test]
fn mariadb_d_a_credential_change_drains_the_pool() {
    let env = my_env();
    env.create_user("my_pooled", "my-pooled-pw");
    env.store()
        .set_database_password("shop", "my_pooled", "my-pooled-pw")
        .unwrap();
    let local = &env.local;
    let id = |what: &str| {
        let out = env.mariadb_on(local.port, "my_pooled", "SELECT CONNECTION_ID()");
        let id = stdout_ok(&out);
        eprintln!("[my pool] {what}: connection {id}");
        id
    };
    let before = local.gateway.pooled_connections();
    let first = id("first");
    local.wait_pooled(before);
    assert_eq!(id("second"), first);
    local.wait_pooled(before);
    env.state.bump_upstream_credentials_epoch();
    let third = id("after the change");
    assert_ne!(
        third, first,
        "a connection from before the change was reused"
    );
    local.wait_pooled(before + 1);
    assert_eq!(id("fourth"), third, "pooling goes on under the new epoch");
}
