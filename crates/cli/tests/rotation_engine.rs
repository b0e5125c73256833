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

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};

use common::{MariaDb, PgOptions, Postgres, shared};
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

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A store with `db` registered and `master`'s password, and the state
/// the gateway's upstream logins read it through.
fn state_with(dir: &Path, db: Database, master: (&str, &str)) -> (Arc<AppState>, Database) {
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
        rotation: None,
        pooling: Default::default(),
    }
}

/// What a scenario needs of an engine's test setup: the server under
/// test, and a client of the test's own to check logins with.
trait Env {
    type Server: CredentialServer;
    fn server(&self) -> &Self::Server;
    /// The secret's engine, port and privileged login.
    fn fields(&self) -> (&'static str, u16, &'static str);
    /// `sql`'s first column as `user`, or the client's error text.
    async fn run_as(&self, user: &str, password: &str, sql: &str) -> Result<Vec<String>, String>;
    /// Whether an error text is the server refusing the password.
    fn refused(error: &str) -> bool;
    /// The server's statement log so far.
    fn log(&self) -> String;

    fn secret(&self, user: &str, password: &str) -> Secret {
        let (engine, port, master) = self.fields();
        let mut s = Secret::parse(&format!(
            r#"{{"engine":"{engine}","host":"127.0.0.1","port":{port},"username":"u","password":"p","master_username":"{master}"}}"#
        ))
        .unwrap();
        s.username = user.to_owned();
        s.password = Zeroizing::new(password.to_owned());
        s
    }

    async fn assert_logs_in(&self, user: &str, password: &str) {
        if let Err(e) = self.run_as(user, password, "SELECT 1").await {
            panic!("{user} should log in: {e}");
        }
    }

    async fn assert_refused(&self, user: &str, password: &str) {
        match self.run_as(user, password, "SELECT 1").await {
            Err(e) if Self::refused(&e) => {}
            other => panic!("{user} should be refused: {other:?}"),
        }
    }

    fn assert_not_logged(&self, passwords: &[Zeroizing<String>]) {
        let log = self.log();
        for p in passwords {
            assert!(!log.contains(p.as_str()), "a password is in the server log");
        }
    }
}

/// What a run of rotations did.
struct Rotated {
    current: Secret,
    outcomes: Vec<SetOutcome>,
    /// Every password set, to look for in the server's log.
    passwords: Vec<Zeroizing<String>>,
}

/// `times` rotations from `current` by `strategy`, as the job runs them
/// (createSecret, setSecret, testSecret, then the pending value becomes
/// current), checking after each with a client of the test's own: the
/// new credential logs in; single user: the one before is refused and a
/// retried setSecret finds the work done; alternating: the one before
/// still logs in, the one before that (same user) is refused, and the new
/// one gets `check.1` from `check.0` (what the first user was granted).
async fn rotate<E: Env>(
    env: &E,
    strategy: Strategy,
    mut current: Secret,
    times: usize,
    check: Option<(&str, &str)>,
) -> Rotated {
    let mut previous: Option<Secret> = None;
    let mut outcomes = Vec::new();
    let mut passwords = Vec::new();
    for _ in 0..times {
        let fresh = random::password(&PasswordRules::default()).unwrap();
        let pending = pending_secret(&current, strategy, fresh).unwrap();
        passwords.push(pending.password.clone());
        let single = strategy == Strategy::SingleUser;
        let prev = previous.as_ref().filter(|_| single);
        outcomes.push(
            set_secret(env.server(), strategy, &current, &pending, prev)
                .await
                .unwrap(),
        );
        test_secret(env.server(), &pending).await.unwrap();
        env.assert_logs_in(&pending.username, &pending.password)
            .await;
        if single {
            env.assert_refused(&current.username, &current.password)
                .await;
            let again = set_secret(env.server(), strategy, &current, &pending, None).await;
            assert_eq!(again.unwrap(), SetOutcome::AlreadySet);
        } else {
            env.assert_logs_in(&current.username, &current.password)
                .await;
            if let Some(older) = &previous {
                assert_eq!(older.username, pending.username);
                env.assert_refused(&older.username, &older.password).await;
            }
        }
        if let Some((sql, want)) = check {
            let got = env.run_as(&pending.username, &pending.password, sql).await;
            assert_eq!(got.unwrap(), [want]);
        }
        previous = Some(std::mem::replace(&mut current, pending));
    }
    Rotated {
        current,
        outcomes,
        passwords,
    }
}

const CREATED_THEN_CHANGED: [SetOutcome; 3] = [
    SetOutcome::CloneCreated,
    SetOutcome::Changed,
    SetOutcome::Changed,
];

// ---------------------------------------------------------------- PostgreSQL

struct PgEnv {
    pg: Postgres,
    server: PgCredentialServer,
    _root: tempfile::TempDir,
}

static PG: Mutex<Weak<PgEnv>> = Mutex::new(Weak::new());

/// PostgreSQL logging every statement; `postgres` (a superuser) is the
/// privileged login; role `trusted` gets in without a password.
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

impl Env for PgEnv {
    type Server = PgCredentialServer;

    fn server(&self) -> &PgCredentialServer {
        &self.server
    }

    fn fields(&self) -> (&'static str, u16, &'static str) {
        ("postgres", self.pg.port, "postgres")
    }

    async fn run_as(&self, user: &str, password: &str, sql: &str) -> Result<Vec<String>, String> {
        let run = async {
            let (client, conn) = tokio_postgres::Config::new()
                .host("127.0.0.1")
                .port(self.pg.port)
                .user(user)
                .password(password)
                .dbname("postgres")
                .connect(tokio_postgres::NoTls)
                .await?;
            let conn = tokio::spawn(conn);
            let rows = client.simple_query(sql).await;
            drop(client);
            let _ = conn.await;
            rows
        };
        let rows = run.await.map_err(|e: tokio_postgres::Error| {
            format!("{:?} {e}", e.code().map(SqlState::code))
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect())
    }

    fn refused(error: &str) -> bool {
        error.starts_with("Some(\"28P01\")")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.pg.dir.join("log")).unwrap()
    }
}

impl PgEnv {
    async fn superuser(&self, sql: &str) -> Vec<String> {
        self.run_as("postgres", "superuser-secret", sql)
            .await
            .unwrap()
    }
}

/// Three single-user rotations; none of the passwords reaches the
/// statement log, which shows each change as a verifier.
#[test]
fn postgres_single_user_rotates_three_times() {
    let env = pg_env();
    env.pg.sql("CREATE ROLE solo LOGIN PASSWORD 'solo-0'");
    block_on(async {
        let done = rotate(
            &*env,
            Strategy::SingleUser,
            env.secret("solo", "solo-0"),
            3,
            None,
        )
        .await;
        assert_eq!(done.outcomes, [SetOutcome::Changed; 3]);
        let changes = env
            .log()
            .matches("statement: ALTER ROLE \"solo\" PASSWORD 'SCRAM-SHA-256$4096:")
            .count();
        assert_eq!(changes, 3);
        env.assert_not_logged(&done.passwords);
    });
}

/// Alternating users: the first rotation creates `alt_clone` as a member
/// of `alt`, so it reads the table only `alt` was granted; each rotation
/// leaves exactly the newest two credentials working.
#[test]
fn postgres_alternating_users_keep_the_newest_two() {
    let env = pg_env();
    env.pg.sql(
        "CREATE ROLE alt LOGIN PASSWORD 'alt-0'; \
         CREATE TABLE alt_items (id int); INSERT INTO alt_items VALUES (1), (2); \
         GRANT SELECT ON alt_items TO alt",
    );
    block_on(async {
        let check = ("SELECT count(*) FROM alt_items", "2");
        let start = env.secret("alt", "alt-0");
        let done = rotate(&*env, Strategy::AlternatingUsers, start, 3, Some(check)).await;
        assert_eq!(done.outcomes, CREATED_THEN_CHANGED);
        let clone = env
            .superuser(
                "SELECT rolcanlogin::text || ' ' || pg_has_role('alt_clone', 'alt', 'member')::text \
                 FROM pg_roles WHERE rolname = 'alt_clone'",
            )
            .await;
        assert_eq!(clone, ["true true"]);
        env.assert_not_logged(&done.passwords);
    });
}

/// A role whose name has both quotes: a single-user rotation changes it,
/// an alternating one creates its clone, and no other role appears.
#[test]
fn postgres_hostile_names_are_quoted() {
    let env = pg_env();
    env.pg
        .sql("CREATE ROLE \"we\"\"ird'user\" LOGIN PASSWORD 'h-0'");
    block_on(async {
        let start = env.secret("we\"ird'user", "h-0");
        let single = rotate(&*env, Strategy::SingleUser, start, 1, None).await;
        let alt = rotate(&*env, Strategy::AlternatingUsers, single.current, 2, None).await;
        assert_eq!(alt.current.username, "we\"ird'user");
        assert_eq!(alt.outcomes, CREATED_THEN_CHANGED[..2]);
        let roles = env
            .superuser("SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'we%'")
            .await;
        assert_eq!(roles, ["we\"ird'user,we\"ird'user_clone"]);
    });
}

/// A server that lets a role in without asking for its password cannot
/// test one: the login is an error, not a success.
#[test]
fn postgres_login_without_a_password_is_not_a_test() {
    let env = pg_env();
    env.pg.sql("CREATE ROLE trusted LOGIN");
    block_on(async {
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
    let password = random::password(&PasswordRules::default()).unwrap();
    env.pg.sql(&format!(
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE vcheck PASSWORD '{}'",
        password.as_str()
    ));
    let theirs =
        block_on(env.superuser("SELECT rolpassword FROM pg_authid WHERE rolname = 'vcheck'"));
    let salt = theirs[0].split(['$', ':']).nth(2).unwrap();
    use base64::Engine as _;
    let salt: [u8; 16] = base64::engine::general_purpose::STANDARD
        .decode(salt)
        .unwrap()
        .try_into()
        .unwrap();
    let ours = latchkey_rotation::scram::verifier(&password, &salt, 4096);
    assert_eq!(ours.as_str(), theirs[0]);
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

impl Env for MyEnv {
    type Server = MyCredentialServer;

    fn server(&self) -> &MyCredentialServer {
        &self.server
    }

    fn fields(&self) -> (&'static str, u16, &'static str) {
        ("mariadb", self.my.port, "master")
    }

    /// Through the mariadb command (password by environment, not on the
    /// command line).
    async fn run_as(&self, user: &str, password: &str, sql: &str) -> Result<Vec<String>, String> {
        let out: Output = Command::new("mariadb")
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
            .unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let rows = String::from_utf8_lossy(&out.stdout);
        Ok(rows
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
            .collect())
    }

    fn refused(error: &str) -> bool {
        error.contains("ERROR 1045")
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.general_log).unwrap()).into_owned()
    }
}

/// Three single-user rotations; the general log shows each change as
/// its hash and none of the passwords.
#[test]
fn mariadb_single_user_rotates_three_times() {
    let env = my_env();
    env.my.sql("CREATE USER solo@'%' IDENTIFIED BY 'solo-0'");
    block_on(async {
        let done = rotate(
            &*env,
            Strategy::SingleUser,
            env.secret("solo", "solo-0"),
            3,
            None,
        )
        .await;
        assert_eq!(done.outcomes, [SetOutcome::Changed; 3]);
        let log = env.log();
        for p in &done.passwords {
            let hash = latchkey_rotation::mysql::native_password_hash(p);
            assert!(log.contains(&format!("SET PASSWORD = '{}'", hash.as_str())));
        }
        env.assert_not_logged(&done.passwords);
    });
}

/// Alternating users: the clone gets the source's host part and grants
/// (it reads the table), and each rotation leaves exactly the newest two
/// credentials working.
#[test]
fn mariadb_alternating_users_keep_the_newest_two() {
    let env = my_env();
    env.my.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.items (id int); \
         INSERT INTO shop.items VALUES (1), (2), (3); \
         CREATE USER alt@'127.0.0.1' IDENTIFIED BY 'alt-0'; \
         GRANT SELECT ON shop.items TO alt@'127.0.0.1'",
    );
    block_on(async {
        let check = ("SELECT COUNT(*) FROM shop.items", "3");
        let start = env.secret("alt", "alt-0");
        let done = rotate(&*env, Strategy::AlternatingUsers, start, 3, Some(check)).await;
        assert_eq!(done.outcomes, CREATED_THEN_CHANGED);
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
        env.assert_not_logged(&done.passwords);
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
    block_on(async {
        let check = ("SELECT COUNT(*) FROM half.t", "0");
        let start = env.secret("half", "half-0");
        let done = rotate(&*env, Strategy::AlternatingUsers, start, 1, Some(check)).await;
        assert_eq!(done.outcomes, [SetOutcome::Changed]);
    });
}

/// A user whose name has both quotes: a single-user rotation changes it,
/// an alternating one creates its clone with its grants, and no other
/// account appears.
#[test]
fn mariadb_hostile_names_are_quoted() {
    let env = my_env();
    env.my.sql(
        "CREATE USER `we\"ird'user`@'%' IDENTIFIED BY 'h-0'; \
         CREATE DATABASE odd; GRANT SELECT ON odd.* TO `we\"ird'user`@'%'",
    );
    block_on(async {
        let start = env.secret("we\"ird'user", "h-0");
        let single = rotate(&*env, Strategy::SingleUser, start, 1, None).await;
        let alt = rotate(&*env, Strategy::AlternatingUsers, single.current, 2, None).await;
        assert_eq!(alt.current.username, "we\"ird'user");
        assert_eq!(alt.outcomes, CREATED_THEN_CHANGED[..2]);
        assert_eq!(
            env.my.sql(
                "SELECT GROUP_CONCAT(User ORDER BY User) FROM mysql.user WHERE User LIKE 'we%'"
            ),
            "we\"ird'user,we\"ird'user_clone"
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
    let password = random::password(&PasswordRules::default()).unwrap();
    let theirs = env
        .my
        .sql(&format!("SELECT PASSWORD('{}')", password.as_str()));
    assert_eq!(
        latchkey_rotation::mysql::native_password_hash(&password).as_str(),
        theirs
    );
}
