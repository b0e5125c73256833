#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The database side of credential rotation against real servers: the
//! rotation crate's steps driven through the gateways' engine impls
//! (`PgCredentialServer`, `MyCredentialServer`), checked with clients of
//! their own (tokio-postgres, the mariadb command) and against the
//! servers' statement logs.
//!
//! One PostgreSQL and one MariaDB serve every test of their engine: each
//! test uses users of its own. Tests are named by engine so that libtest,
//! which starts them in name order, finishes one engine's before the
//! other's; a server stops when no running test holds it.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};

use common::{MariaDb, PgOptions, Postgres};
use latchkey_identity::AppState;
use latchkey_my_gateway::rotation::MyCredentialServer;
use latchkey_pg_gateway::rotation::PgCredentialServer;
use latchkey_rotation::{
    CredentialServer, PasswordRules, Secret, ServerError, SetOutcome, Strategy, pending_secret,
    random, set_secret, test_secret,
};
use latchkey_store::{Database, Engine, StatementPolicy, Store, TlsMode, UpstreamAuth, Vault};
use tokio_postgres::error::SqlState;
use zeroize::Zeroizing;

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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A store with `db` registered and `master`'s password, and the state
/// the gateway's upstream logins read it through.
fn state_with(
    dir: &std::path::Path,
    db: Database,
    master: (&str, &str),
) -> (Arc<AppState>, Database) {
    let store = Store::open(&dir.join("store.db"), Vault::new(1, &[7; 32])).unwrap();
    let db = store.register_database(&db, 0).unwrap();
    store
        .set_database_password(&db.name, master.0, master.1)
        .unwrap();
    let keys = store.cluster_keys(0).unwrap();
    (Arc::new(AppState::new(store, keys).unwrap()), db)
}

fn database(name: &str, engine: Engine, port: u16) -> Database {
    Database {
        name: name.into(),
        engine,
        endpoints: vec!["localhost".into()],
        upstream: format!("127.0.0.1:{port}"),
        upstream_auth: UpstreamAuth::Password,
        upstream_tls: TlsMode::Disable,
        upstream_ca: None,
        resource_id: String::new(),
        tags: Vec::new(),
        statement_policy: StatementPolicy::Off,
    }
}

fn secret(engine: &str, port: u16, user: &str, password: &str, master: &str) -> Secret {
    let mut s = Secret::parse(&format!(
        r#"{{"engine":"{engine}","host":"127.0.0.1","port":{port},"username":"u","password":"p","master_username":"{master}"}}"#
    ))
    .unwrap();
    s.username = user.to_owned();
    s.password = Zeroizing::new(password.to_owned());
    s
}

fn new_password() -> Zeroizing<String> {
    random::password(&PasswordRules::default()).unwrap()
}

// ---------------------------------------------------------------- PostgreSQL

struct PgEnv {
    pg: Postgres,
    server: PgCredentialServer,
    _root: tempfile::TempDir,
}

static PG: Mutex<Weak<PgEnv>> = Mutex::new(Weak::new());

/// PostgreSQL logging every statement; `postgres` (a superuser) is the
/// privileged login.
fn pg_env() -> Arc<PgEnv> {
    shared(&PG, || {
        let root = tempfile::tempdir().unwrap();
        let options = PgOptions {
            hba: vec!["host all trusted 127.0.0.1/32 trust".into()],
            ..PgOptions::default()
        };
        let pg = Postgres::start_with_settings(root.path(), &options, &["log_statement=all"]);
        let (state, db) = state_with(
            root.path(),
            database("pg", Engine::Postgres, pg.port),
            ("postgres", "superuser-secret"),
        );
        PgEnv {
            server: PgCredentialServer::new(state, db, None).unwrap(),
            pg,
            _root: root,
        }
    })
}

impl PgEnv {
    fn secret(&self, user: &str, password: &str) -> Secret {
        secret("postgres", self.pg.port, user, password, "postgres")
    }

    /// A login of tokio-postgres's own, and `sql` on it.
    async fn login(
        &self,
        user: &str,
        password: &str,
        sql: &str,
    ) -> Result<Vec<String>, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.pg.port)
            .user(user)
            .password(password)
            .dbname("postgres")
            .connect(tokio_postgres::NoTls)
            .await?;
        let conn = tokio::spawn(conn);
        let rows = client.simple_query(sql).await?;
        drop(client);
        let _ = conn.await;
        Ok(rows
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect())
    }

    async fn assert_logs_in(&self, user: &str, password: &str) {
        let rows = self.login(user, password, "SELECT current_user").await;
        assert_eq!(rows.unwrap(), [user], "{user} should log in");
    }

    async fn assert_refused(&self, user: &str, password: &str) {
        let err = self.login(user, password, "SELECT 1").await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(&SqlState::INVALID_PASSWORD),
            "{user}: {err}"
        );
    }

    async fn superuser(&self, sql: &str) -> Vec<String> {
        self.login("postgres", "superuser-secret", sql)
            .await
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.pg.dir.join("log")).unwrap()
    }

    fn assert_not_logged(&self, passwords: &[Zeroizing<String>]) {
        let log = self.log();
        for p in passwords {
            assert!(!log.contains(p.as_str()), "a password is in the server log");
        }
    }
}

/// Three single-user rotations: each new password logs in, the one
/// before is refused, and none reaches the statement log (the verifier
/// does, as documented).
#[test]
fn postgres_single_user_rotates_three_times() {
    let env = pg_env();
    env.pg.sql("CREATE ROLE solo LOGIN PASSWORD 'solo-0'");
    runtime().block_on(async {
        let mut current = env.secret("solo", "solo-0");
        let mut previous: Option<Secret> = None;
        let mut used = Vec::new();
        for _ in 0..3 {
            let pending = pending_secret(&current, Strategy::SingleUser, new_password()).unwrap();
            used.push(pending.password.clone());
            let outcome = set_secret(
                &env.server,
                Strategy::SingleUser,
                &current,
                &pending,
                previous.as_ref(),
            )
            .await
            .unwrap();
            assert_eq!(outcome, SetOutcome::Changed);
            test_secret(&env.server, &pending).await.unwrap();
            env.assert_logs_in("solo", &pending.password).await;
            env.assert_refused("solo", &current.password).await;
            // A retried setSecret finds the work done.
            let again = set_secret(&env.server, Strategy::SingleUser, &current, &pending, None);
            assert_eq!(again.await.unwrap(), SetOutcome::AlreadySet);
            previous = Some(std::mem::replace(&mut current, pending));
        }
        let log = env.log();
        assert_eq!(
            log.matches("statement: ALTER ROLE \"solo\" PASSWORD 'SCRAM-SHA-256$4096:")
                .count(),
            3,
            "the statement log shows each change, as a verifier"
        );
        env.assert_not_logged(&used);
    });
}

/// Alternating users: the first rotation creates `alt_clone` as a member
/// of `alt` (so it reads what `alt` reads); after each rotation exactly
/// the newest two credentials log in.
#[test]
fn postgres_alternating_users_keep_the_newest_two() {
    let env = pg_env();
    env.pg.sql(
        "CREATE ROLE alt LOGIN PASSWORD 'alt-0'; \
         CREATE TABLE alt_items (id int); INSERT INTO alt_items VALUES (1), (2); \
         GRANT SELECT ON alt_items TO alt",
    );
    runtime().block_on(async {
        let mut current = env.secret("alt", "alt-0");
        let mut older: Option<Secret> = None;
        let mut used = Vec::new();
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            let pending =
                pending_secret(&current, Strategy::AlternatingUsers, new_password()).unwrap();
            used.push(pending.password.clone());
            outcomes.push(
                set_secret(
                    &env.server,
                    Strategy::AlternatingUsers,
                    &current,
                    &pending,
                    None,
                )
                .await
                .unwrap(),
            );
            test_secret(&env.server, &pending).await.unwrap();
            env.assert_logs_in(&pending.username, &pending.password).await;
            env.assert_logs_in(&current.username, &current.password).await;
            if let Some(older) = &older {
                assert_eq!(older.username, pending.username);
                env.assert_refused(&older.username, &older.password).await;
            }
            // Both read the table only `alt` was granted.
            let count = env
                .login(&pending.username, &pending.password, "SELECT count(*) FROM alt_items")
                .await
                .unwrap();
            assert_eq!(count, ["2"]);
            older = Some(std::mem::replace(&mut current, pending));
        }
        assert_eq!(
            outcomes,
            [SetOutcome::CloneCreated, SetOutcome::Changed, SetOutcome::Changed]
        );
        assert_eq!(
            env.superuser(
                "SELECT r.rolcanlogin::text || ' ' || pg_has_role('alt_clone', 'alt', 'member')::text \
                 FROM pg_roles r WHERE rolname = 'alt_clone'"
            )
            .await,
            ["true true"]
        );
        env.assert_not_logged(&used);
    });
}

/// A role whose name has both quotes: single-user and alternating
/// rotations change it and its clone, and nothing else.
#[test]
fn postgres_hostile_names_are_quoted() {
    let env = pg_env();
    let name = "we\"ird'user";
    env.pg
        .sql("CREATE ROLE \"we\"\"ird'user\" LOGIN PASSWORD 'h-0'");
    runtime().block_on(async {
        let first = env.secret(name, "h-0");
        let single = pending_secret(&first, Strategy::SingleUser, new_password()).unwrap();
        set_secret(&env.server, Strategy::SingleUser, &first, &single, None)
            .await
            .unwrap();
        env.assert_logs_in(name, &single.password).await;
        let clone = pending_secret(&single, Strategy::AlternatingUsers, new_password()).unwrap();
        assert_eq!(clone.username, "we\"ird'user_clone");
        let outcome = set_secret(
            &env.server,
            Strategy::AlternatingUsers,
            &single,
            &clone,
            None,
        );
        assert_eq!(outcome.await.unwrap(), SetOutcome::CloneCreated);
        env.assert_logs_in(&clone.username, &clone.password).await;
        env.assert_logs_in(name, &single.password).await;
        assert_eq!(
            env.superuser("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'we%'")
                .await,
            ["2"]
        );
    });
}

/// A server that lets a role in without asking for its password cannot
/// test one: the login is an error, not a success.
#[test]
fn postgres_login_without_a_password_is_not_a_test() {
    let env = pg_env();
    env.pg.sql("CREATE ROLE trusted LOGIN");
    runtime().block_on(async {
        let err = env
            .server
            .test_login("trusted", "anything")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ServerError::Unavailable(m) if m.contains("without a password")),
            "{err}"
        );
    });
}

/// The verifier for a password is the one the server computes itself
/// from the same salt (PostgreSQL's own SCRAM code as the reference).
#[test]
fn postgres_scram_verifier_matches_the_server() {
    let env = pg_env();
    runtime().block_on(async {
        let password = new_password();
        env.pg.sql(&format!(
            "SET password_encryption = 'scram-sha-256'; CREATE ROLE vcheck PASSWORD '{}'",
            password.as_str()
        ));
        let theirs = env
            .superuser("SELECT rolpassword FROM pg_authid WHERE rolname = 'vcheck'")
            .await;
        let theirs = &theirs[0];
        let salt = theirs.split(['$', ':']).nth(2).unwrap();
        use base64::Engine as _;
        let salt: [u8; 16] = base64::engine::general_purpose::STANDARD
            .decode(salt)
            .unwrap()
            .try_into()
            .unwrap();
        let ours = latchkey_rotation::scram::verifier(&password, &salt, 4096);
        assert_eq!(ours.as_str(), theirs);
    });
}

// ------------------------------------------------------------------- MariaDB

struct MyEnv {
    my: MariaDb,
    server: MyCredentialServer,
    general_log: PathBuf,
    _root: tempfile::TempDir,
}

static MY: Mutex<Weak<MyEnv>> = Mutex::new(Weak::new());

/// MariaDB writing its general log to a file; `master` (all privileges,
/// with grant option) is the privileged login.
fn my_env() -> Arc<MyEnv> {
    shared(&MY, || {
        let root = tempfile::tempdir().unwrap();
        let general_log = root.path().join("general.log");
        let my = MariaDb::start_with(
            root.path(),
            &[
                "--general-log=1",
                &format!("--general-log-file={}", general_log.display()),
            ],
        );
        my.sql(
            "CREATE USER master@'%' IDENTIFIED BY 'master-secret'; \
             GRANT ALL ON *.* TO master@'%' WITH GRANT OPTION",
        );
        let (state, db) = state_with(
            root.path(),
            database("my", Engine::Mysql, my.port),
            ("master", "master-secret"),
        );
        MyEnv {
            server: MyCredentialServer::new(state, db).unwrap(),
            my,
            general_log,
            _root: root,
        }
    })
}

impl MyEnv {
    fn secret(&self, user: &str, password: &str) -> Secret {
        secret("mariadb", self.my.port, user, password, "master")
    }

    /// `sql` through the mariadb command as `user` (password by
    /// environment, not on the command line).
    fn login(&self, user: &str, password: &str, sql: &str) -> Output {
        Command::new("mariadb")
            .args([
                "--protocol=TCP",
                "--host=127.0.0.1",
                &format!("--port={}", self.my.port),
                &format!("--user={user}"),
                "--connect-timeout=10",
                "-N",
                "-B",
                "-e",
                sql,
            ])
            .env("MYSQL_PWD", password)
            .output()
            .unwrap()
    }

    fn assert_logs_in(&self, user: &str, password: &str) {
        let out = self.login(user, password, "SELECT 1");
        assert!(
            out.status.success(),
            "{user} should log in: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn assert_refused(&self, user: &str, password: &str) {
        let out = self.login(user, password, "SELECT 1");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("ERROR 1045"),
            "{user}: {err}"
        );
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.general_log).unwrap()).into_owned()
    }

    fn assert_not_logged(&self, passwords: &[Zeroizing<String>]) {
        let log = self.log();
        for p in passwords {
            assert!(
                !log.contains(p.as_str()),
                "a password is in the general log"
            );
        }
    }
}

/// Three single-user rotations: each new password logs in, the one
/// before is refused, and the general log shows hashes only.
#[test]
fn mariadb_single_user_rotates_three_times() {
    let env = my_env();
    env.my.sql("CREATE USER solo@'%' IDENTIFIED BY 'solo-0'");
    runtime().block_on(async {
        let mut current = env.secret("solo", "solo-0");
        let mut previous: Option<Secret> = None;
        let mut used = Vec::new();
        for _ in 0..3 {
            let pending = pending_secret(&current, Strategy::SingleUser, new_password()).unwrap();
            used.push(pending.password.clone());
            let outcome = set_secret(
                &env.server,
                Strategy::SingleUser,
                &current,
                &pending,
                previous.as_ref(),
            )
            .await
            .unwrap();
            assert_eq!(outcome, SetOutcome::Changed);
            test_secret(&env.server, &pending).await.unwrap();
            env.assert_logs_in("solo", &pending.password);
            env.assert_refused("solo", &current.password);
            previous = Some(std::mem::replace(&mut current, pending));
        }
        let log = env.log();
        for p in &used {
            let hash = latchkey_rotation::mysql::native_password_hash(p);
            assert!(
                log.contains(&format!("SET PASSWORD = '{}'", hash.as_str())),
                "the general log shows each change, as a hash"
            );
        }
        env.assert_not_logged(&used);
    });
}

/// Alternating users: the clone gets the source's host part and grants
/// (it reads the table), and after each rotation exactly the newest two
/// credentials log in.
#[test]
fn mariadb_alternating_users_keep_the_newest_two() {
    let env = my_env();
    env.my.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.items (id int); \
         INSERT INTO shop.items VALUES (1), (2), (3); \
         CREATE USER alt@'127.0.0.1' IDENTIFIED BY 'alt-0'; \
         GRANT SELECT ON shop.items TO alt@'127.0.0.1'",
    );
    runtime().block_on(async {
        let mut current = env.secret("alt", "alt-0");
        let mut older: Option<Secret> = None;
        let mut used = Vec::new();
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            let pending =
                pending_secret(&current, Strategy::AlternatingUsers, new_password()).unwrap();
            used.push(pending.password.clone());
            outcomes.push(
                set_secret(
                    &env.server,
                    Strategy::AlternatingUsers,
                    &current,
                    &pending,
                    None,
                )
                .await
                .unwrap(),
            );
            test_secret(&env.server, &pending).await.unwrap();
            env.assert_logs_in(&pending.username, &pending.password);
            env.assert_logs_in(&current.username, &current.password);
            if let Some(older) = &older {
                assert_eq!(older.username, pending.username);
                env.assert_refused(&older.username, &older.password);
            }
            let out = env.login(
                &pending.username,
                &pending.password,
                "SELECT COUNT(*) FROM shop.items",
            );
            assert_eq!(common::stdout_ok(&out), "3");
            older = Some(std::mem::replace(&mut current, pending));
        }
        assert_eq!(
            outcomes,
            [
                SetOutcome::CloneCreated,
                SetOutcome::Changed,
                SetOutcome::Changed
            ]
        );
        assert_eq!(
            env.my
                .sql("SELECT Host FROM mysql.user WHERE User = 'alt_clone'"),
            "127.0.0.1"
        );
        assert_eq!(
            env.my
                .sql("SHOW GRANTS FOR alt_clone@'127.0.0.1'")
                .lines()
                .nth(1),
            Some("GRANT SELECT ON `shop`.`items` TO `alt_clone`@`127.0.0.1`")
        );
        let log = env.log();
        assert!(log.contains("CREATE USER `alt_clone`@`127.0.0.1` ACCOUNT LOCK"));
        assert!(log.contains("ALTER USER `alt_clone`@`127.0.0.1` IDENTIFIED BY PASSWORD '*"));
        env.assert_not_logged(&used);
    });
}

/// A clone whose setup stopped after CREATE USER (it is created locked,
/// without grants) is finished by the retried setSecret: its locked
/// login counts as refused, the grants are copied, then it opens.
#[test]
fn mariadb_half_made_clone_is_finished_on_retry() {
    let env = my_env();
    env.my.sql(
        "CREATE DATABASE half; CREATE TABLE half.t (id int); \
         CREATE USER half@'%' IDENTIFIED BY 'half-0'; GRANT SELECT ON half.t TO half@'%'; \
         CREATE USER half_clone@'%' ACCOUNT LOCK",
    );
    runtime().block_on(async {
        let current = env.secret("half", "half-0");
        let pending = pending_secret(&current, Strategy::AlternatingUsers, new_password()).unwrap();
        let outcome = set_secret(
            &env.server,
            Strategy::AlternatingUsers,
            &current,
            &pending,
            None,
        );
        assert_eq!(outcome.await.unwrap(), SetOutcome::Changed);
        let out = env.login(
            "half_clone",
            &pending.password,
            "SELECT COUNT(*) FROM half.t",
        );
        assert_eq!(common::stdout_ok(&out), "0");
    });
}

/// A user whose name has both quotes: single-user and alternating
/// rotations change it and its clone, and nothing else.
#[test]
fn mariadb_hostile_names_are_quoted() {
    let env = my_env();
    let name = "we\"ird'user";
    env.my.sql(
        "CREATE USER `we\"ird'user`@'%' IDENTIFIED BY 'h-0'; \
         CREATE DATABASE odd; GRANT SELECT ON odd.* TO `we\"ird'user`@'%'",
    );
    runtime().block_on(async {
        let first = env.secret(name, "h-0");
        let single = pending_secret(&first, Strategy::SingleUser, new_password()).unwrap();
        set_secret(&env.server, Strategy::SingleUser, &first, &single, None)
            .await
            .unwrap();
        env.assert_logs_in(name, &single.password);
        let clone = pending_secret(&single, Strategy::AlternatingUsers, new_password()).unwrap();
        let outcome = set_secret(
            &env.server,
            Strategy::AlternatingUsers,
            &single,
            &clone,
            None,
        );
        assert_eq!(outcome.await.unwrap(), SetOutcome::CloneCreated);
        env.assert_logs_in(&clone.username, &clone.password);
        env.assert_logs_in(name, &single.password);
        assert_eq!(
            env.my
                .sql("SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'we%'"),
            "2"
        );
        assert_eq!(
            env.my
                .sql("SHOW GRANTS FOR `we\"ird'user_clone`@'%'")
                .lines()
                .nth(1),
            Some("GRANT SELECT ON `odd`.* TO `we\"ird'user_clone`@`%`")
        );
    });
}

/// The native hash is the server's `PASSWORD()`.
#[test]
fn mariadb_native_hash_matches_the_server() {
    let env = my_env();
    let password = new_password();
    let theirs = env
        .my
        .sql(&format!("SELECT PASSWORD('{}')", password.as_str()));
    assert_eq!(
        latchkey_rotation::mysql::native_password_hash(&password).as_str(),
        theirs
    );
}
