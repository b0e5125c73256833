//! Secrets Manager rotation end to end: `latchkey serve`'s rotation job
//! driven by the stock AWS CLI (`rotate-secret`), against real servers,
//! while clients keep working through the gateway.
//!
//! - PostgreSQL, single user, made by `db register --rotate-every`:
//!   five rotations under pgbench (8 clients with `-C`, 8 without), no
//!   failed transaction, old passwords refused by the server, none in the
//!   server's statement log, the trail or Latchkey's log.
//! - PostgreSQL, `kill -9` (an abort) after each step's work and before
//!   it is recorded: the restarted server finishes the rotation and the
//!   secret and the database agree.
//! - MariaDB, alternating users, a secret made with the AWS CLI: five
//!   rotations under load; only the newest two credentials log in.
//! - A webhook rotation: four signed steps, then a failing one that
//!   raises a finding, leaves `AWSCURRENT` alone, and is cancelled.
//!
//! One PostgreSQL serves the PostgreSQL tests (each rotates a role of its
//! own); tests are named by engine so libtest finishes one engine first.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The rotation of `secret` that `rotate-secret` just started: waits
/// until its version is `AWSCURRENT`.
fn rotate(lk: &Latchkey, secret: &str) -> String {
    let started = admin_cli(
        lk,
        &["secretsmanager", "rotate-secret", "--secret-id", secret],
    );
    let version = started["VersionId"].as_str().unwrap().to_owned();
    wait_current(lk, secret, &version, Duration::from_secs(60));
    version
}

/// Waits until `version` of `secret` is `AWSCURRENT`.
fn wait_current(lk: &Latchkey, secret: &str, version: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let described = admin_cli(
            lk,
            &["secretsmanager", "describe-secret", "--secret-id", secret],
        );
        let stages = &described["VersionIdsToStages"][version];
        if stages
            .as_array()
            .is_some_and(|s| s.iter().any(|l| l == "AWSCURRENT"))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "version {version} never became AWSCURRENT: {described:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `times` rotations of `secret` with boto3, one after the other, each
/// timed from `RotateSecret` until its version is `AWSCURRENT`: the
/// version, the seconds it took, and the new `AWSCURRENT` value.
fn rotate_with_boto3(lk: &Latchkey, secret: &str, times: u32) -> Vec<(String, f64, Value)> {
    const SCRIPT: &str = r#"
import boto3, json, sys, time
sm = boto3.client("secretsmanager")
secret, times, out = sys.argv[1], int(sys.argv[2]), []
for _ in range(times):
    started = time.monotonic()
    version = sm.rotate_secret(SecretId=secret)["VersionId"]
    while "AWSCURRENT" not in sm.describe_secret(SecretId=secret)["VersionIdsToStages"].get(version, []):
        if time.monotonic() - started > 60:
            sys.exit("version %s never became AWSCURRENT" % version)
        time.sleep(0.01)
    took = time.monotonic() - started
    value = json.loads(sm.get_secret_value(SecretId=secret)["SecretString"])
    out.append([version, took, value])
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT, secret, &times.to_string()])
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            lk.data.join("admin.credentials"),
        )
        .env("AWS_CONFIG_FILE", lk.data.join("aws.config"))
        .env("AWS_CA_BUNDLE", lk.data.join("ca.pem"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    serde_json::from_str(&stdout_ok(&out)).unwrap()
}

/// The AWS CLI as the administrator, for a call that must fail with
/// `code`; its message.
fn admin_fails(lk: &Latchkey, args: &[&str], code: &str) -> String {
    let out = admin_aws(&lk.data).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains(&format!("({code})")), "expected {code}: {err}");
    err
}

/// The value of `secret` at `stage`, parsed.
fn secret_value(lk: &Latchkey, secret: &str, stage: &str) -> Value {
    let got = admin_cli(
        lk,
        &[
            "secretsmanager",
            "get-secret-value",
            "--secret-id",
            secret,
            "--version-stage",
            stage,
        ],
    );
    serde_json::from_str(got["SecretString"].as_str().unwrap()).unwrap()
}

fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().unwrap()
}

/// Every step event of the trail for `secret`, as (step, error code).
fn step_events(lk: &Latchkey) -> Vec<(String, Option<String>)> {
    audit_text(lk)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["eventName"] == "RotationStep")
        .map(|e| {
            (
                e["requestParameters"]["step"].as_str().unwrap().to_owned(),
                e["errorCode"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Waits (45 s at most) for `step` to fail; its message.
fn wait_step_failure(lk: &Latchkey, step: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let failure = audit_text(lk)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["eventName"] == "RotationStep" && e["requestParameters"]["step"] == step)
            .find_map(|e| e["errorMessage"].as_str().map(str::to_owned));
        if let Some(failure) = failure {
            return failure;
        }
        assert!(
            Instant::now() < deadline,
            "{step} never failed: {:?}",
            step_events(lk)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Asserts no password of `passwords` appears in `text` (named `what`).
fn assert_absent(text: &str, passwords: &[String], what: &str) {
    for p in passwords {
        assert!(!text.contains(p.as_str()), "a password is in {what}");
    }
}

// ---------------------------------------------------------------- PostgreSQL

struct PgEnv {
    pg: Postgres,
    _root: tempfile::TempDir,
}

static PG: Mutex<Weak<PgEnv>> = Mutex::new(Weak::new());

/// PostgreSQL logging every statement, with role `app` owning `orders`.
fn pg_env() -> Arc<PgEnv> {
    shared(&PG, || {
        let root = tempfile::tempdir().unwrap();
        let pg = Postgres::start_with_settings(
            root.path(),
            &PgOptions::default(),
            &["log_statement=all", "max_connections=200"],
        );
        PgEnv { pg, _root: root }
    })
}

/// psql straight to the server (not the gateway) as `user`.
fn pg_direct(pg: &Postgres, user: &str, password: &str) -> Output {
    Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user={user} dbname=orders sslmode=disable connect_timeout=10",
            pg.port
        ))
        .args(["-XAtc", "SELECT current_user"])
        .env("PGPASSWORD", password)
        .output()
        .unwrap()
}

/// A Latchkey whose database `orders` rotates every 30 days (alternating
/// users with `master` as the privileged login, else single user), with
/// `user`'s password stored (and so its secret made).
fn rotating_latchkey(
    root: &Path,
    pg: &Postgres,
    (user, password): (&str, &str),
    master: Option<(&str, &str)>,
    extra: &[&str],
) -> (Latchkey, String, String) {
    let (data, api) = init_latchkey(root, &[]);
    let upstream = format!("127.0.0.1:{}", pg.port);
    let mut args = vec![
        "--name",
        "orders",
        "--endpoint",
        "localhost",
        "--upstream",
        &upstream,
        "--upstream-tls",
        "disable",
        "--rotate-every",
        "30d",
    ];
    if let Some((name, _)) = master {
        args.extend(["--rotation-master-user", name]);
    }
    let registered = register_db(&data, &args);
    assert_eq!(registered["rotateEveryDays"], 30);
    let strategy = if master.is_some() {
        "alternating-users"
    } else {
        "single-user"
    };
    assert_eq!(registered["rotationStrategy"], strategy);
    if let Some((name, password)) = master {
        set_db_password(&data, "orders", name, password);
    }
    set_db_password(&data, "orders", user, password);
    let lk = serve_latchkey(root, &data, &api, extra);
    (lk, format!("latchkey/db/orders/{user}"), api)
}

/// pgbench as `user` through the gateway for `seconds`, `-C` or not.
fn pgbench(
    lk: &Latchkey,
    user: &str,
    token: &str,
    script: &Path,
    reconnect: bool,
    seconds: u32,
) -> std::process::Child {
    let mut c = Command::new("pgbench");
    c.arg(conninfo(lk, user, "verify-full"))
        .args(["-n", "-c", "8", "-j", "2", "-T", &seconds.to_string(), "-f"])
        .arg(script)
        .env("PGPASSWORD", token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if reconnect {
        c.arg("-C");
    }
    c.spawn().unwrap()
}

/// Asserts a pgbench run finished with every transaction done.
fn assert_no_failures(run: std::process::Child, what: &str) -> u64 {
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench {what} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("aborted"), "pgbench {what}: {stdout}");
    let processed: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|n| n.split('/').next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("pgbench {what}: {stdout}"));
    if let Some(failed) = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of failed transactions: "))
    {
        assert!(failed.starts_with("0 "), "pgbench {what}: {stdout}");
    }
    assert!(processed > 0, "pgbench {what}: {stdout}");
    processed
}

/// Five rotations of `user` under pgbench (8 clients reconnecting for
/// every transaction, 8 staying), with pooling off so that every new
/// connection logs in upstream. No transaction fails; afterwards the
/// server takes only the newest password (single user) or the newest two
/// credentials (alternating), the gateway logs in as the current user,
/// and no new password is in the trail, Latchkey's log or the server's
/// statement log.
fn pg_rotates_under_pgbench(user: &str, master: Option<(&str, &str)>) {
    let env = pg_env();
    let pg = &env.pg;
    let initial = format!("{user}-initial-pw");
    pg.sql(&format!("CREATE ROLE {user} LOGIN PASSWORD '{initial}'"));
    let root = tempfile::tempdir().unwrap();
    let (lk, secret, _) = rotating_latchkey(
        root.path(),
        pg,
        (user, &initial),
        master,
        &["--gateway-pool-size", "0"],
    );
    let first = secret_value(&lk, &secret, "AWSCURRENT");
    assert_eq!(
        (
            field(&first, "engine"),
            field(&first, "username"),
            field(&first, "password")
        ),
        ("postgres", user, initial.as_str())
    );
    assert_eq!(field(&first, "dbInstanceIdentifier"), "orders");
    let described = admin_cli(
        &lk,
        &["secretsmanager", "describe-secret", "--secret-id", &secret],
    );
    assert_eq!(described["RotationEnabled"], true);
    assert_eq!(described["RotationRules"]["AutomaticallyAfterDays"], 30);
    let function = if master.is_some() {
        ":function:latchkey-rotation-alternating-users"
    } else {
        ":function:latchkey-rotation-single-user"
    };
    assert!(
        described["RotationLambdaARN"]
            .as_str()
            .unwrap()
            .ends_with(function)
    );

    let token = aws_token(&lk, &[], "localhost", user);
    let script = root.path().join("q.sql");
    std::fs::write(&script, "\\set n random(1, 1000)\nSELECT :n + 1;\n").unwrap();
    let reconnecting = pgbench(&lk, user, &token, &script, true, 25);
    let staying = pgbench(&lk, user, &token, &script, false, 25);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let rotations = rotate_with_boto3(&lk, &secret, 5);
    let times: Vec<String> = rotations.iter().map(|r| format!("{:.3}", r.1)).collect();
    eprintln!(
        "{function} rotation under pgbench, seconds each: {}",
        times.join(" ")
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the rotations outlasted the load"
    );
    let with_reconnects = assert_no_failures(reconnecting, "-C");
    let without = assert_no_failures(staying, "without -C");
    eprintln!("pgbench: {with_reconnects} transactions with -C, {without} without");

    let mut values = vec![first];
    values.extend(rotations.into_iter().map(|r| r.2));
    let n = values.len();
    let working = if master.is_some() { 2 } else { 1 };
    for (i, v) in values.iter().enumerate() {
        let out = pg_direct(pg, field(v, "username"), field(v, "password"));
        if i >= n - working {
            assert_eq!(stdout_ok(&out), field(v, "username"), "version {i}");
        } else {
            assert!(!out.status.success(), "version {i} still logs in");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("password authentication failed")
            );
        }
    }
    let current_user = field(&values[n - 1], "username");
    if master.is_some() {
        let users: Vec<&str> = values.iter().map(|v| field(v, "username")).collect();
        let clone = format!("{user}_clone");
        assert_eq!(users, [user, &clone, user, &clone, user, &clone]);
    }
    // The gateway logs in as the current user of the secret.
    let out = psql(
        &lk,
        user,
        &aws_token(&lk, &[], "localhost", user),
        "verify-full",
        "SELECT current_user",
    );
    assert_eq!(stdout_ok(&out), current_user);
    let previous = secret_value(&lk, &secret, "AWSPREVIOUS");
    assert_eq!(
        field(&previous, "password"),
        field(&values[n - 2], "password")
    );

    // Twenty steps recorded, none failed; no password anywhere.
    let steps = step_events(&lk);
    assert_eq!(steps.len(), 20, "{steps:?}");
    assert!(steps.iter().all(|(_, e)| e.is_none()), "{steps:?}");
    assert_eq!(
        steps[..4]
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>(),
        ["createSecret", "setSecret", "testSecret", "finishSecret"]
    );
    let generated: Vec<String> = values[1..]
        .iter()
        .map(|v| field(v, "password").to_owned())
        .collect();
    assert_absent(&audit_text(&lk), &generated, "the audit trail");
    assert_absent(
        &std::fs::read_to_string(root.path().join("latchkey.log")).unwrap(),
        &generated,
        "Latchkey's log",
    );
    assert_absent(
        &std::fs::read_to_string(pg.dir.join("log")).unwrap(),
        &generated,
        "PostgreSQL's statement log",
    );
}

#[test]
fn postgres_single_user_rotates_five_times_under_pgbench_with_no_failure() {
    pg_rotates_under_pgbench("solo", None);
}

#[test]
fn postgres_alternating_users_rotate_five_times_under_pgbench_with_no_failure() {
    pg_rotates_under_pgbench("pair", Some(("postgres", "superuser-secret")));
}

#[test]
fn postgres_rotation_resumes_after_a_crash_at_each_step() {
    let env = pg_env();
    let pg = &env.pg;
    pg.sql("CREATE ROLE crashy LOGIN PASSWORD 'crashy-secret'");
    let root = tempfile::tempdir().unwrap();
    let (mut lk, secret, api) =
        rotating_latchkey(root.path(), pg, ("crashy", "crashy-secret"), None, &[]);
    let data = lk.data.clone();
    let mut passwords = vec!["crashy-secret".to_owned()];
    for (n, step) in ["createSecret", "setSecret", "testSecret", "finishSecret"]
        .into_iter()
        .enumerate()
    {
        // A server that aborts once `step`'s work is done, before the job
        // records it: the worst moment to be killed.
        drop(lk);
        lk = serve_latchkey_env(
            root.path(),
            &data,
            &api,
            &[],
            &[("LATCHKEY_TEST_CRASH_AFTER_ROTATION_STEP", step)],
        );
        // The token is the caller's: the server may die before its answer
        // to RotateSecret is out (the job starts at once), so the answer
        // is not awaited as a success.
        let version = format!("00000000-0000-4000-8000-{n:012}");
        let _ = admin_aws(&data)
            .args([
                "secretsmanager",
                "rotate-secret",
                "--secret-id",
                &secret,
                "--client-request-token",
                &version,
                "--cli-read-timeout",
                "5",
                "--cli-connect-timeout",
                "5",
            ])
            .output()
            .unwrap();
        let status = {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = lk.child.try_wait().unwrap() {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "the server did not crash at {step}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        assert!(!status.success(), "{step}: {status}");
        // Restarted without the hook: the rotation resumes and finishes.
        lk = serve_latchkey(root.path(), &data, &api, &[]);
        wait_current(&lk, &secret, &version, Duration::from_secs(30));
        let current = secret_value(&lk, &secret, "AWSCURRENT");
        let password = field(&current, "password").to_owned();
        assert_eq!(
            stdout_ok(&pg_direct(pg, "crashy", &password)),
            "crashy",
            "{step}"
        );
        assert!(
            !pg_direct(pg, "crashy", passwords.last().unwrap())
                .status
                .success(),
            "{step}"
        );
        let out = psql(
            &lk,
            "crashy",
            &aws_token(&lk, &[], "localhost", "crashy"),
            "verify-full",
            "SELECT current_user",
        );
        assert_eq!(stdout_ok(&out), "crashy", "{step}");
        let described = admin_cli(
            &lk,
            &["secretsmanager", "describe-secret", "--secret-id", &secret],
        );
        let pending: Vec<&String> = described["VersionIdsToStages"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, s)| s.as_array().unwrap().iter().any(|l| l == "AWSPENDING"))
            .map(|(v, _)| v)
            .collect();
        assert!(pending.is_empty(), "{step}: {described:#}");
        passwords.push(password);
    }
    // A rotation without a crash still works after all that.
    rotate(&lk, &secret);
    let password = field(&secret_value(&lk, &secret, "AWSCURRENT"), "password").to_owned();
    assert_eq!(stdout_ok(&pg_direct(pg, "crashy", &password)), "crashy");
}

/// A step whose `ALTER ROLE` waits on a lock another session holds gives
/// up on the server (the session limits), not only in the job: once the
/// lock is let go, the role keeps its password, rather than taking a
/// password the job recorded as never set.
#[test]
fn postgres_a_step_stuck_on_a_lock_does_not_apply_after_it_failed() {
    let env = pg_env();
    let pg = &env.pg;
    pg.sql("CREATE ROLE stuck LOGIN PASSWORD 'stuck-secret'");
    let root = tempfile::tempdir().unwrap();
    let (lk, secret, _) = rotating_latchkey(root.path(), pg, ("stuck", "stuck-secret"), None, &[]);
    // Another session changes the role and keeps its transaction open for
    // 40 s: setSecret's ALTER ROLE waits on it.
    let mut holder = as_pg_user(Path::new("/usr/bin/psql"))
        .arg("-h")
        .arg(&pg.dir)
        .args([
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args([
            "-Xq",
            "-c",
            "BEGIN; ALTER ROLE stuck CONNECTION LIMIT 7; SELECT pg_sleep(40); ROLLBACK;",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    admin_cli(
        &lk,
        &["secretsmanager", "rotate-secret", "--secret-id", &secret],
    );
    // The step fails, recorded, on the server's lock timeout (55P03, at
    // 20 s), not the job's own (30 s).
    let failure = wait_step_failure(&lk, "setSecret");
    assert!(failure.contains("55P03"), "{failure}");
    assert!(holder.wait().unwrap().success());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        stdout_ok(&pg_direct(pg, "stuck", "stuck-secret")),
        "stuck",
        "the failed step's ALTER ROLE applied once the lock went"
    );
    let current = secret_value(&lk, &secret, "AWSCURRENT");
    assert_eq!(field(&current, "password"), "stuck-secret");
}

/// What the red team did to a managed secret, refused: a planted pending
/// version, a value naming another user, the other strategy, an alias of
/// the function past a Deny on its ARN; and after all that the gateway
/// still never logs a client in as another role.
#[test]
fn postgres_a_managed_secret_cannot_be_turned_against_another_login() {
    let env = pg_env();
    let pg = &env.pg;
    pg.sql("CREATE ROLE victim LOGIN PASSWORD 'victim-initial-pw'");
    pg.sql("CREATE ROLE lowly LOGIN PASSWORD 'lowly-known-pw'");
    let root = tempfile::tempdir().unwrap();
    let key_file = root.path().join("rotation.key");
    std::fs::write(&key_file, "rotation-signing-secret-0123456789").unwrap();
    let hook = "http://127.0.0.1:9/rotate";
    let (lk, secret, _) = rotating_latchkey(
        root.path(),
        pg,
        ("victim", "victim-initial-pw"),
        None,
        &[
            "--rotation-webhook-allow",
            hook,
            "--rotation-webhook-secret-file",
            key_file.to_str().unwrap(),
            // Every connection logs in upstream, so the last check below
            // sees the gateway's own login, not a pooled session.
            "--gateway-pool-size",
            "0",
        ],
    );
    // Latchkey's names are its own, and its logins rotate only built in.
    admin_fails(
        &lk,
        &[
            "secretsmanager",
            "create-secret",
            "--name",
            "latchkey/db/orders/newsvc",
            "--secret-string",
            "x",
        ],
        "InvalidParameterException",
    );
    let err = admin_fails(
        &lk,
        &[
            "secretsmanager",
            "rotate-secret",
            "--secret-id",
            &secret,
            "--rotation-lambda-arn",
            hook,
        ],
        "InvalidParameterException",
    );
    assert!(
        err.contains("rotates only by the built-in function"),
        "{err}"
    );
    let lowly = serde_json::json!({
        "engine": "postgres", "host": "127.0.0.1", "port": pg.port,
        "username": "lowly", "password": "lowly-known-pw", "dbInstanceIdentifier": "orders",
    })
    .to_string();
    let planted = "aaaaaaaa-1111-2222-3333-444444444444";
    admin_cli(
        &lk,
        &[
            "secretsmanager",
            "put-secret-value",
            "--secret-id",
            &secret,
            "--client-request-token",
            planted,
            "--secret-string",
            &lowly,
            "--version-stages",
            "AWSPENDING",
        ],
    );
    admin_fails(
        &lk,
        &[
            "secretsmanager",
            "rotate-secret",
            "--secret-id",
            &secret,
            "--client-request-token",
            planted,
        ],
        "InvalidRequestException",
    );
    admin_cli(
        &lk,
        &[
            "secretsmanager",
            "update-secret-version-stage",
            "--secret-id",
            &secret,
            "--version-stage",
            "AWSPENDING",
            "--remove-from-version-id",
            planted,
        ],
    );
    // The other strategy, and an alias past a Deny on the canonical ARN.
    admin_fails(
        &lk,
        &[
            "secretsmanager",
            "rotate-secret",
            "--secret-id",
            &secret,
            "--rotation-lambda-arn",
            "latchkey-rotation-multi-user",
        ],
        "InvalidParameterException",
    );
    let account = admin_cli(&lk, &["sts", "get-caller-identity"])["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    let canonical =
        format!("arn:aws:lambda:us-east-1:{account}:function:latchkey-rotation-single-user");
    let eve = user_with_policy(
        &lk,
        "eve",
        &serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "secretsmanager:RotateSecret", "Resource": "*",
             "Condition": {"StringEquals": {"secretsmanager:RotationLambdaARN": canonical}}}
        ]})
        .to_string(),
    );
    for alias in ["latchkey-rotation-single-user", canonical.as_str()] {
        let out = aws_cli()
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_CONFIG_FILE", lk.data.join("aws.config"))
            .env("AWS_CA_BUNDLE", lk.data.join("ca.pem"))
            .envs(eve.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args([
                "secretsmanager",
                "rotate-secret",
                "--secret-id",
                &secret,
                "--rotation-lambda-arn",
                alias,
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("(AccessDeniedException)"),
            "{alias}: {err}"
        );
    }

    // A current value naming another user: the rotation fails, and tells
    // the gateway of no other login.
    admin_cli(
        &lk,
        &[
            "secretsmanager",
            "put-secret-value",
            "--secret-id",
            &secret,
            "--secret-string",
            &lowly,
        ],
    );
    admin_cli(
        &lk,
        &["secretsmanager", "rotate-secret", "--secret-id", &secret],
    );
    let finding = wait_for_finding(&lk.data, "Rotation:SecretsManager/RotationFailed");
    assert!(
        finding["description"]
            .as_str()
            .unwrap()
            .contains("the value names user \"lowly\""),
        "{finding}"
    );
    // While it is under way, neither its function nor the password changes.
    let err = admin_fails(
        &lk,
        &[
            "secretsmanager",
            "rotate-secret",
            "--secret-id",
            &secret,
            "--rotation-lambda-arn",
            hook,
        ],
        "InvalidRequestException",
    );
    assert!(err.contains("in progress"), "{err}");
    let mut set = latchkey(&[
        "db",
        "set-password",
        "--data-dir",
        lk.data.to_str().unwrap(),
        "--name",
        "orders",
        "--user",
        "victim",
    ])
    .stdin(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    set.stdin
        .take()
        .unwrap()
        .write_all(b"changed-mid-rotation\n")
        .unwrap();
    let out = set.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is being rotated"),
        "{out:?}"
    );
    let token = aws_token(&lk, &[], "localhost", "victim");
    let out = psql(&lk, "victim", &token, "verify-full", "SELECT current_user");
    assert_eq!(stdout_ok(&out), "victim");
    assert_eq!(
        stdout_ok(&pg_direct(pg, "victim", "victim-initial-pw")),
        "victim"
    );
    assert_eq!(
        stdout_ok(&pg_direct(pg, "lowly", "lowly-known-pw")),
        "lowly"
    );
    // Even when the server refuses the gateway's own login (a password
    // changed behind Latchkey's back), no client lands as `lowly`.
    pg.sql("ALTER ROLE victim PASSWORD 'changed-out-of-band'");
    let token = aws_token(&lk, &[], "localhost", "victim");
    let out = psql(&lk, "victim", &token, "verify-full", "SELECT current_user");
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("lowly"));
    admin_cli(
        &lk,
        &[
            "secretsmanager",
            "cancel-rotate-secret",
            "--secret-id",
            &secret,
        ],
    );
}

// ------------------------------------------------------------------- MariaDB

struct MyEnv {
    my: MariaDb,
    _root: tempfile::TempDir,
}

static MY: Mutex<Weak<MyEnv>> = Mutex::new(Weak::new());

/// MariaDB with database `shop` and the privileged login `admin`.
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
            "CREATE DATABASE shop;
             CREATE TABLE shop.items (id INT PRIMARY KEY, name TEXT);
             INSERT INTO shop.items VALUES (1, 'pen');
             CREATE USER admin@'%' IDENTIFIED BY 'admin-secret';
             GRANT ALL ON *.* TO admin@'%' WITH GRANT OPTION;",
        );
        MyEnv { my, _root: root }
    })
}

fn my_direct(db: &MariaDb, user: &str, password: &str) -> Output {
    Command::new("mariadb")
        .args([
            "--protocol=TCP",
            "--host=127.0.0.1",
            &format!("--port={}", db.port),
            &format!("--user={user}"),
            "--skip-ssl",
            "-N",
            "-B",
            "-e",
            "SELECT CURRENT_USER()",
        ])
        .env("MYSQL_PWD", password)
        .output()
        .unwrap()
}

/// A Latchkey serving MariaDB's `shop`, rotating every 30 days (alternating
/// users with `admin`, else single user), `user`'s password stored.
fn rotating_shop(
    root: &Path,
    my: &MariaDb,
    (user, password): (&str, &str),
    alternating: bool,
) -> Latchkey {
    let (data, api) = init_latchkey(root, &[]);
    let upstream = format!("127.0.0.1:{}", my.port);
    let mut args = vec![
        "--name",
        "shop",
        "--engine",
        "mysql",
        "--endpoint",
        "localhost",
        "--upstream",
        &upstream,
        "--upstream-tls",
        "disable",
        "--rotate-every",
        "30d",
    ];
    if alternating {
        args.extend(["--rotation-master-user", "admin"]);
    }
    register_db(&data, &args);
    if alternating {
        set_db_password(&data, "shop", "admin", "admin-secret");
    }
    set_db_password(&data, "shop", user, password);
    serve_latchkey(root, &data, &api, &["--gateway-pool-size", "0"])
}

/// As `postgres_a_step_stuck_on_a_lock_does_not_apply_after_it_failed`,
/// on MariaDB: setSecret's `SET PASSWORD` waits on the grant table another
/// session holds locked, and gives up on the server.
#[test]
fn zmariadb_a_step_stuck_on_a_lock_does_not_apply_after_it_failed() {
    let env = my_env();
    let my = &env.my;
    my.sql(
        "CREATE USER stuck@'%' IDENTIFIED BY 'stuck-secret'; GRANT SELECT ON shop.* TO stuck@'%';",
    );
    let root = tempfile::tempdir().unwrap();
    let lk = rotating_shop(root.path(), my, ("stuck", "stuck-secret"), false);
    let secret = "latchkey/db/shop/stuck";
    let mut holder = Command::new("mariadb")
        .arg(format!("--socket={}", my.socket().display()))
        .args([
            "-uroot",
            "-e",
            "LOCK TABLES mysql.global_priv WRITE; SELECT SLEEP(40); UNLOCK TABLES;",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    admin_cli(
        &lk,
        &["secretsmanager", "rotate-secret", "--secret-id", secret],
    );
    // 1969: the server's max_statement_time, not the job's timeout.
    let failure = wait_step_failure(&lk, "setSecret");
    assert!(failure.contains("1969"), "{failure}");
    assert!(holder.wait().unwrap().success());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        stdout_ok(&my_direct(my, "stuck", "stuck-secret")),
        "stuck@%",
        "the failed step's SET PASSWORD applied once the lock went"
    );
    let current = secret_value(&lk, secret, "AWSCURRENT");
    assert_eq!(field(&current, "password"), "stuck-secret");
}

/// New connections as `user` through the gateway, one after another on
/// `threads` threads until `stop`: each reads a row. Gives the number made
/// and the failures' messages.
fn connection_load(
    lk: &Latchkey,
    user: &str,
    token: &str,
    threads: usize,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<(u32, Vec<String>)>> {
    (0..threads)
        .map(|_| {
            let mut connect = mariadb_command(lk, user, token);
            connect.args(["-N", "-B", "-e", "SELECT name FROM shop.items WHERE id = 1"]);
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut made, mut failures) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let out = connect.output().unwrap();
                    if String::from_utf8_lossy(&out.stdout).trim() != "pen" {
                        failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
                    }
                    made += 1;
                }
                (made, failures)
            })
        })
        .collect()
}

/// Five rotations of `user` (single user, or alternating users with
/// `admin`) while connections come and go through the gateway and one
/// session stays: none fails; afterwards only the newest credential
/// (single) or two (alternating) log in, and the gateway logs in as the
/// secret's current user.
fn mariadb_rotates_under_load(user: &str, alternating: bool) {
    let env = my_env();
    let my = &env.my;
    let initial = format!("{user}-initial-pw");
    my.sql(&format!(
        "CREATE USER {user}@'%' IDENTIFIED BY '{initial}'; GRANT SELECT ON shop.* TO {user}@'%';"
    ));
    let root = tempfile::tempdir().unwrap();
    let lk = rotating_shop(root.path(), my, (user, &initial), alternating);
    let name = format!("latchkey/db/shop/{user}");
    let value = secret_value(&lk, &name, "AWSCURRENT");
    assert_eq!(
        (
            field(&value, "engine"),
            field(&value, "username"),
            field(&value, "password")
        ),
        ("mysql", user, initial.as_str())
    );
    let function = admin_cli(
        &lk,
        &["secretsmanager", "describe-secret", "--secret-id", &name],
    )["RotationLambdaARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let strategy = if alternating {
        "alternating-users"
    } else {
        "single-user"
    };
    assert!(
        function.ends_with(&format!(":function:latchkey-rotation-{strategy}")),
        "{function}"
    );

    // Load: new connections on four threads, and one long session.
    let token = aws_token_for_port(&lk, lk.mysql_port, &[], "localhost", user);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = connection_load(&lk, user, &token, 4, &stop);
    let long_session = {
        let mut c = mariadb_command(&lk, user, &token);
        c.args(["-N", "-B"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            for _ in 0..150 {
                let query = b"SELECT name FROM shop.items WHERE id = 1; DO SLEEP(0.05);\n";
                if stdin.write_all(query).is_err() {
                    break;
                }
            }
        });
        child
    };

    // Five rotations (alternating: the first creates the clone with the
    // user's grants).
    std::thread::sleep(Duration::from_secs(1));
    let first = admin_cli(
        &lk,
        &["secretsmanager", "rotate-secret", "--secret-id", &name],
    );
    wait_current(
        &lk,
        &name,
        first["VersionId"].as_str().unwrap(),
        Duration::from_secs(60),
    );
    let mut values = vec![value.clone(), secret_value(&lk, &name, "AWSCURRENT")];
    let rotations = rotate_with_boto3(&lk, &name, 4);
    let times: Vec<String> = rotations.iter().map(|r| format!("{:.3}", r.1)).collect();
    eprintln!(
        "{function} rotation under load, seconds each (after the first): {}",
        times.join(" ")
    );
    values.extend(rotations.into_iter().map(|r| r.2));
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut connections, mut failures) = (0, Vec::new());
    for thread in load {
        let (made, failed) = thread.join().unwrap();
        connections += made;
        failures.extend(failed);
    }
    let session = long_session.wait_with_output().unwrap();
    assert!(session.status.success());
    let rows = String::from_utf8_lossy(&session.stdout)
        .lines()
        .filter(|l| *l == "pen")
        .count();
    assert_eq!(rows, 150);
    assert!(
        failures.is_empty(),
        "{} of {connections} connections failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(connections > 20, "only {connections} connections");
    eprintln!("{connections} new connections during the rotations, none failed");

    let n = values.len();
    let users: Vec<&str> = values.iter().map(|v| field(v, "username")).collect();
    if alternating {
        let clone = format!("{user}_clone");
        assert_eq!(users, [user, &clone, user, &clone, user, &clone]);
    } else {
        assert!(users.iter().all(|u| *u == user));
    }
    let working = if alternating { 2 } else { 1 };
    for (i, v) in values.iter().enumerate() {
        let out = my_direct(my, field(v, "username"), field(v, "password"));
        if i >= n - working {
            assert!(
                stdout_ok(&out).starts_with(&format!("{}@", field(v, "username"))),
                "version {i}"
            );
        } else {
            assert!(!out.status.success(), "version {i} still logs in");
        }
    }
    // The gateway logs in as the secret's current user, with the grants.
    let out = mariadb(
        &lk,
        user,
        &token,
        &["-e", "SELECT CURRENT_USER(), (SELECT name FROM shop.items)"],
    );
    assert_eq!(stdout_ok(&out), format!("{}@%\tpen", users[n - 1]));
    let generated: Vec<String> = values[1..]
        .iter()
        .map(|v| field(v, "password").to_owned())
        .collect();
    assert_absent(&audit_text(&lk), &generated, "the audit trail");
    assert_absent(
        &std::fs::read_to_string(root.path().join("latchkey.log")).unwrap(),
        &generated,
        "Latchkey's log",
    );
    assert_absent(
        &std::fs::read_to_string(env._root.path().join("general.log")).unwrap_or_default(),
        &generated,
        "MariaDB's general log",
    );
}

#[test]
fn zmariadb_single_user_rotates_five_times_under_load_with_no_failure() {
    mariadb_rotates_under_load("lone", false);
}

#[test]
fn zmariadb_alternating_users_rotate_five_times_under_load_with_no_failure() {
    mariadb_rotates_under_load("duo", true);
}

// ------------------------------------------------------------------- webhook

/// One request the webhook receiver got: its body and whether its
/// signature verified.
struct Received {
    body: Value,
    signed: bool,
}

/// A webhook receiver: answers `status` to every POST, and for a
/// createSecret step puts the pending value with the AWS CLI first, as a
/// rotation Lambda does.
fn receiver(lk_data: &Path, secret: &'static str, status: u16) -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let (record, data) = (got.clone(), lk_data.to_owned());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                headers.push(line.trim().to_owned());
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .find_map(|h| {
                        let (k, v) = h.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            let mut body = vec![0; header("content-length").parse().unwrap()];
            reader.read_exact(&mut body).unwrap();
            let timestamp = header("x-latchkey-timestamp");
            let expected = {
                use hmac::{Hmac, Mac};
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                mac.update(timestamp.as_bytes());
                mac.update(b".");
                mac.update(&body);
                format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
            };
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if body["Step"] == "createSecret" && status == 200 {
                admin_cli_in(
                    &data,
                    &[
                        "secretsmanager",
                        "put-secret-value",
                        "--secret-id",
                        body["SecretId"].as_str().unwrap(),
                        "--client-request-token",
                        body["ClientRequestToken"].as_str().unwrap(),
                        "--secret-string",
                        "rotated-by-webhook",
                        "--version-stages",
                        "AWSPENDING",
                    ],
                );
            }
            record.lock().unwrap().push(Received {
                signed: header("x-latchkey-signature") == expected,
                body,
            });
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (port, got)
}

#[test]
fn webhook_rotation_posts_four_signed_steps_and_a_failure_raises_a_finding() {
    const HOOK_SECRET: &str = "webhook-signing-secret-0123456789";
    let root = tempfile::tempdir().unwrap();
    let (data, api) = init_latchkey(root.path(), &[]);
    let key_file = root.path().join("hook.key");
    std::fs::write(&key_file, HOOK_SECRET).unwrap();
    let (ok_port, ok_got) = receiver(&data, HOOK_SECRET, 200);
    let (bad_port, bad_got) = receiver(&data, HOOK_SECRET, 500);
    // Findings go to a webhook with another key: rotation steps are signed
    // with a key of their own, which a findings receiver would refuse.
    let findings_key = root.path().join("findings.key");
    std::fs::write(&findings_key, "findings-signing-secret-98765").unwrap();
    let allowed = format!("http://127.0.0.1:{ok_port}/rotate,http://127.0.0.1:{bad_port}/rotate");
    let lk = serve_latchkey(
        root.path(),
        &data,
        &api,
        &[
            "--webhook-url",
            &format!("http://127.0.0.1:{bad_port}/findings"),
            "--webhook-secret-file",
            findings_key.to_str().unwrap(),
            "--rotation-webhook-allow",
            &allowed,
            "--rotation-webhook-secret-file",
            key_file.to_str().unwrap(),
        ],
    );
    let create = |name: &str| {
        admin_cli(
            &lk,
            &[
                "secretsmanager",
                "create-secret",
                "--name",
                name,
                "--secret-string",
                "original",
            ],
        )["VersionId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let original = create("api/key");
    let started = admin_cli(
        &lk,
        &[
            "secretsmanager",
            "rotate-secret",
            "--secret-id",
            "api/key",
            "--rotation-lambda-arn",
            &format!("http://127.0.0.1:{ok_port}/rotate"),
            "--rotation-rules",
            r#"{"ScheduleExpression": "rate(10 days)", "Duration": "2h"}"#,
        ],
    );
    let version = started["VersionId"].as_str().unwrap().to_owned();
    wait_current(&lk, "api/key", &version, Duration::from_secs(30));
    let value = admin_cli(
        &lk,
        &[
            "secretsmanager",
            "get-secret-value",
            "--secret-id",
            "api/key",
        ],
    );
    assert_eq!(value["SecretString"], "rotated-by-webhook");
    let previous = admin_cli(
        &lk,
        &[
            "secretsmanager",
            "get-secret-value",
            "--secret-id",
            "api/key",
            "--version-stage",
            "AWSPREVIOUS",
        ],
    );
    assert_eq!(previous["VersionId"], original.as_str());
    {
        let got = ok_got.lock().unwrap();
        let steps: Vec<&str> = got
            .iter()
            .map(|r| r.body["Step"].as_str().unwrap())
            .collect();
        assert_eq!(
            steps,
            ["createSecret", "setSecret", "testSecret", "finishSecret"]
        );
        assert!(
            got.iter().all(|r| r.signed),
            "a step was not signed with the webhook secret"
        );
        assert!(
            got.iter()
                .all(|r| r.body["ClientRequestToken"] == version.as_str())
        );
    }
    let described = admin_cli(
        &lk,
        &[
            "secretsmanager",
            "describe-secret",
            "--secret-id",
            "api/key",
        ],
    );
    assert_eq!(described["RotationEnabled"], true);
    assert_eq!(
        described["RotationRules"]["ScheduleExpression"],
        "rate(10 days)"
    );
    assert!(described["LastRotatedDate"].is_number() && described["NextRotationDate"].is_number());

    // Only URLs under an allowed prefix, with no credentials in them; no
    // built-in rotation of a secret that holds no login Latchkey keeps.
    for refused in [
        format!("http://127.0.0.1:{ok_port}/elsewhere"),
        format!("http://127.0.0.1:{ok_port}/rotatex"),
        format!("http://user:pw@127.0.0.1:{ok_port}/rotate"),
        "latchkey-rotation-single-user".to_owned(),
        "arn:aws:lambda:us-east-1:123456789012:function:latchkey-rotation-alternating-users"
            .to_owned(),
    ] {
        let err = admin_fails(
            &lk,
            &[
                "secretsmanager",
                "rotate-secret",
                "--secret-id",
                "api/key",
                "--rotation-lambda-arn",
                &refused,
            ],
            "InvalidParameterException",
        );
        assert!(!err.contains("pw@"), "{err}");
    }
    let described = admin_cli(
        &lk,
        &[
            "secretsmanager",
            "describe-secret",
            "--secret-id",
            "api/key",
        ],
    );
    assert_eq!(
        described["RotationLambdaARN"],
        format!("http://127.0.0.1:{ok_port}/rotate").as_str()
    );

    // A receiver that fails: a finding, AWSCURRENT unchanged, then cancelled.
    let kept = create("api/other");
    admin_cli(
        &lk,
        &[
            "secretsmanager",
            "rotate-secret",
            "--secret-id",
            "api/other",
            "--rotation-lambda-arn",
            &format!("http://127.0.0.1:{bad_port}/rotate"),
        ],
    );
    let finding = wait_for_finding(&data, "Rotation:SecretsManager/RotationFailed");
    assert_eq!(finding["severity"], "Medium");
    // Its function cannot change while it is under way.
    admin_fails(
        &lk,
        &[
            "secretsmanager",
            "rotate-secret",
            "--secret-id",
            "api/other",
            "--rotation-lambda-arn",
            &format!("http://127.0.0.1:{ok_port}/rotate"),
        ],
        "InvalidRequestException",
    );
    assert!(
        finding["resource"]
            .as_str()
            .unwrap()
            .contains(":secret:api/other-"),
        "{finding}"
    );
    let current = admin_cli(
        &lk,
        &[
            "secretsmanager",
            "get-secret-value",
            "--secret-id",
            "api/other",
        ],
    );
    assert_eq!(
        (
            current["VersionId"].as_str().unwrap(),
            current["SecretString"].as_str().unwrap()
        ),
        (kept.as_str(), "original")
    );
    assert!(
        step_events(&lk)
            .iter()
            .any(|(s, e)| s == "createSecret" && e.is_some())
    );
    let cancelled = admin_cli(
        &lk,
        &[
            "secretsmanager",
            "cancel-rotate-secret",
            "--secret-id",
            "api/other",
        ],
    );
    assert!(cancelled["VersionId"].is_string(), "{cancelled}");
    let described = admin_cli(
        &lk,
        &[
            "secretsmanager",
            "describe-secret",
            "--secret-id",
            "api/other",
        ],
    );
    assert_eq!(described["RotationEnabled"], false);
    // The failing receiver was asked for createSecret only (a retry waits
    // 30 s, so a slow run may see a second), each time signed.
    let got = bad_got.lock().unwrap();
    let steps: Vec<&Received> = got.iter().filter(|r| r.body["Step"].is_string()).collect();
    assert!((1..=2).contains(&steps.len()), "{} steps", steps.len());
    assert!(
        steps
            .iter()
            .all(|r| r.signed && r.body["Step"] == "createSecret")
    );
}
