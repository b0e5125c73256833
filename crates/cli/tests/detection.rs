#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Threat detection end to end, against a real gateway and PostgreSQL with
//! psql and the AWS CLI: a benign workload raises nothing; then each
//! scripted attack raises its finding, the webhook receives it signed,
//! and the configured responses act (the brute-forcing address is blocked).

mod common;
use common::*;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};

const SECRET: &str = "webhook-secret-0123456789";

/// Deliveries a receiver took: (headers, body).
type Deliveries = Arc<Mutex<Vec<(String, String)>>>;

/// A webhook receiver that fails the first delivery (to be retried) and
/// records the rest.
fn receiver() -> (u16, Deliveries) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let (head, body) = loop {
                let n = conn.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        break (head.to_owned(), body.to_owned());
                    }
                }
            };
            let status = if i == 0 {
                "500 Internal Server Error"
            } else {
                "204 No Content"
            };
            let _ = conn
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
            if i > 0 {
                store.lock().unwrap().push((head, body));
            }
        }
    });
    (port, got)
}

fn aws(data: &Path, endpoint: &str, creds: &[(String, String)], args: &[&str]) -> Output {
    let mut c = aws_cli();
    if creds.is_empty() {
        c.env(
            "AWS_SHARED_CREDENTIALS_FILE",
            data.join("admin.credentials"),
        );
    }
    c.env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_CA_BUNDLE", data.join("ca.pem"))
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .envs(creds.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(["--endpoint-url", endpoint])
        .args(args)
        .output()
        .unwrap()
}

fn json_ok(out: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout_ok(out)).unwrap_or(serde_json::Value::Null)
}

fn psql_from(host: &str, port: u16, token: &str, sql: &str) -> Output {
    Command::new("psql")
        .arg(format!(
            "host={host} port={port} user=app dbname=orders sslmode=require"
        ))
        .args(["-X", "-q", "-t", "-A", "-c", sql])
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap()
}

#[test]
fn attacks_raise_findings_and_responses_act() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let (data, api) = init_latchkey(root.path(), &[]);
    let api_port: u16 = api.rsplit(':').next().unwrap().parse().unwrap();
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
    let (hook_port, hooks) = receiver();
    let config = root.path().join("latchkey.toml");
    std::fs::write(
        &config,
        format!(
            r#"
webhook_url = "http://127.0.0.1:{hook_port}/findings"
[detection.brute_force]
threshold = 5
action = "block_ip"
block_secs = 600
[detection.new_source_ip]
min_history = 2
[detection.token_from_other_ip]
action = "revoke_sessions"
[detection.connection_spike]
window_secs = 2
factor = 3.0
min_connections = 12
min_baseline_windows = 1
"#
        ),
    )
    .unwrap();
    // Gateway and API on both stacks: ::1 is "another host" than 127.0.0.1.
    let pg_port = free_port();
    let log = std::fs::File::create(root.path().join("latchkey.log")).unwrap();
    let child = latchkey(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        &format!("[::]:{api_port}"),
        "--pg-listen",
        &format!("[::]:{pg_port}"),
        "--api-metrics",
        "--security-checks-every",
        "1s",
        "--security-check-findings",
        "--gateway-threads",
        "2",
    ])
    .env("LATCHKEY_WEBHOOK_SECRET", SECRET)
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .unwrap();
    wait_for_port(pg_port);
    let lk = Latchkey {
        child,
        data: data.clone(),
        pg_port,
        mysql_port: 0,
    };
    let here = format!("https://127.0.0.1:{api_port}");
    let elsewhere = format!("https://[::1]:{api_port}");

    // A user allowed to connect, and a role.
    let allow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#;
    json_ok(&aws(
        &data,
        &here,
        &[],
        &["iam", "create-user", "--user-name", "reporter"],
    ));
    json_ok(&aws(
        &data,
        &here,
        &[],
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "reporter",
            "--policy-name",
            "db",
            "--policy-document",
            allow,
        ],
    ));
    let key = json_ok(&aws(
        &data,
        &here,
        &[],
        &["iam", "create-access-key", "--user-name", "reporter"],
    ));
    let key_id = key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned();
    let reporter = vec![
        ("AWS_ACCESS_KEY_ID".to_owned(), key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            key["AccessKey"]["SecretAccessKey"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
    ];

    // Benign: the reporter's usual work from its usual address.
    let token = token_with(&lk, &reporter);
    for sql in [
        "CREATE TABLE IF NOT EXISTS accounts(id int, balance int)",
        "INSERT INTO accounts VALUES (1, 10), (2, 20)",
        "UPDATE accounts SET balance = balance + 1 WHERE id = 1",
        "DELETE FROM accounts WHERE id IN (SELECT id FROM accounts WHERE balance > 100)",
        "SELECT sum(balance) FROM accounts",
    ] {
        stdout_ok(&psql_from("127.0.0.1", pg_port, &token, sql));
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        findings(&data, &[]),
        Vec::<serde_json::Value>::new(),
        "a benign workload raised findings"
    );

    // The administrator's key used for database access, running a DROP.
    let admin_token = aws_token(&lk, &[], "localhost", "app");
    stdout_ok(&psql_from(
        "127.0.0.1",
        pg_port,
        &admin_token,
        "CREATE TABLE scratch(x int); DROP TABLE scratch",
    ));
    let admin = wait_for_finding(&data, "Policy:RDS/AdminCredentialUsed");
    assert_eq!(admin["severity"], "Medium");
    assert!(
        admin["principal"]
            .as_str()
            .unwrap()
            .ends_with(":user/admin")
    );
    let drop = wait_for_finding(&data, "Impact:RDS/DestructiveStatement");
    assert!(
        drop["description"].as_str().unwrap().contains("DROP"),
        "{drop}"
    );
    // A DELETE without WHERE by the reporter.
    stdout_ok(&psql_from(
        "127.0.0.1",
        pg_port,
        &token,
        "DELETE FROM accounts",
    ));

    // The reporter from a new address.
    stdout_ok(&psql_from("::1", pg_port, &token, "SELECT 1"));
    let new_ip = wait_for_finding(&data, "UnauthorizedAccess:RDS/NewSourceIP");
    assert_eq!(new_ip["sourceIPAddress"], "::1");

    // Role credentials obtained from ::1, used from 127.0.0.1.
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
    json_ok(&aws(
        &data,
        &here,
        &[],
        &[
            "iam",
            "create-role",
            "--role-name",
            "etl",
            "--assume-role-policy-document",
            trust,
        ],
    ));
    json_ok(&aws(
        &data,
        &here,
        &[],
        &[
            "iam",
            "put-role-policy",
            "--role-name",
            "etl",
            "--policy-name",
            "db",
            "--policy-document",
            allow,
        ],
    ));
    let role = json_ok(&aws(
        &data,
        &elsewhere,
        &[],
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &format!(
                "arn:aws:iam::{}:role/etl",
                admin["principal"]
                    .as_str()
                    .unwrap()
                    .split(':')
                    .nth(4)
                    .unwrap()
            ),
            "--role-session-name",
            "nightly",
        ],
    ));
    let c = &role["Credentials"];
    let role_creds = vec![
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            c["AccessKeyId"].as_str().unwrap().to_owned(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            c["SecretAccessKey"].as_str().unwrap().to_owned(),
        ),
        (
            "AWS_SESSION_TOKEN".to_owned(),
            c["SessionToken"].as_str().unwrap().to_owned(),
        ),
    ];
    stdout_ok(&psql_from(
        "127.0.0.1",
        pg_port,
        &token_with(&lk, &role_creds),
        "SELECT 1",
    ));
    let moved = wait_for_finding(&data, "CredentialAccess:RDS/TokenFromOtherIP");
    assert_eq!(moved["severity"], "High");
    // The response revoked the role's sessions: the same credentials no
    // longer log in (revocations are re-read within 5 seconds).
    assert!(
        moved["actions"][0].as_str().unwrap().contains("revoke"),
        "{moved}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while psql_from(
        "127.0.0.1",
        pg_port,
        &token_with(&lk, &role_creds),
        "SELECT 1",
    )
    .status
    .success()
    {
        assert!(
            Instant::now() < deadline,
            "the role's sessions were not revoked"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // A disabled key presented.
    json_ok(&aws(
        &data,
        &here,
        &[],
        &[
            "iam",
            "update-access-key",
            "--user-name",
            "reporter",
            "--access-key-id",
            &key_id,
            "--status",
            "Inactive",
        ],
    ));
    assert_denied(
        &psql(
            &lk,
            "app",
            &token_with(&lk, &reporter),
            "verify-full",
            "select 1",
        ),
        "app",
    );
    let disabled = wait_for_finding(&data, "UnauthorizedAccess:RDS/DisabledKeyUsed");
    assert_eq!(disabled["severity"], "High");

    // A burst of new connections.
    std::thread::sleep(Duration::from_secs(3));
    let spike = Command::new("pgbench")
        .arg(format!(
            "host=127.0.0.1 port={pg_port} user=app dbname=orders sslmode=require"
        ))
        .args(["-n", "-C", "-c", "2", "-t", "15", "-f", "/dev/stdin"])
        .env("PGPASSWORD", &admin_token)
        .stdin(std::fs::File::open(write_script(root.path())).unwrap())
        .output()
        .unwrap();
    stdout_ok(&spike);
    wait_for_finding(&data, "Behavior:RDS/ConnectionSpike");

    // Brute force from ::1: forty bad tokens sent at once. The gateway
    // checks no more of them than the rule's threshold (give or take one
    // per session thread racing the first failure) before the block
    // lands; the rest are turned away unchecked. Then even a good token
    // is refused.
    let mut bad = token.clone();
    let at = bad.find("X-Amz-Signature=").unwrap() + 20;
    bad.replace_range(at..=at, if &bad[at..=at] == "0" { "1" } else { "0" });
    let burst: Vec<_> = (0..40)
        .map(|_| {
            let bad = bad.clone();
            std::thread::spawn(move || psql_from("::1", pg_port, &bad, "SELECT 1"))
        })
        .collect();
    for attempt in burst {
        assert!(!attempt.join().unwrap().status.success());
    }
    let brute = wait_for_finding(&data, "CredentialAccess:RDS/BruteForce.SourceIP");
    assert_eq!(brute["sourceIPAddress"], "::1");
    assert!(
        brute["actions"][0].as_str().unwrap().contains("::1"),
        "{brute}"
    );
    let evidence_count = brute["evidence"].as_array().unwrap().len();
    assert!((5..=6).contains(&evidence_count), "{brute}");
    // Every attempt is recorded, by the kind of its refusal (the trail
    // writes in batches: wait for the last of them). No login from ::1
    // failed before the burst.
    let refusals = || -> std::collections::BTreeMap<String, usize> {
        audit_text(&lk)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["sourceIPAddress"] == "::1" && r["eventName"] == "Connect")
            .filter_map(|r| r["database"]["failure"].as_str().map(str::to_owned))
            .fold(Default::default(), |mut kinds, kind| {
                *kinds.entry(kind).or_default() += 1;
                kinds
            })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let kinds = loop {
        let kinds = refusals();
        if kinds.values().sum::<usize>() >= 40 || std::time::Instant::now() > deadline {
            break kinds;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(kinds.values().sum::<usize>(), 40, "{kinds:?}");
    let turned_away =
        kinds.get("throttled").copied().unwrap_or(0) + kinds.get("blocked").copied().unwrap_or(0);
    let checked = 40 - turned_away;
    assert!(
        (5..=6).contains(&checked),
        "{checked} of 40 bad tokens sent at once were checked, with a threshold of 5 on 2 session threads: {kinds:?}"
    );
    let admin_again = aws_token(&lk, &[], "localhost", "app");
    assert!(
        !psql_from("::1", pg_port, &admin_again, "SELECT 1")
            .status
            .success()
    );
    stdout_ok(&psql_from("127.0.0.1", pg_port, &admin_again, "SELECT 1"));
    // The API refuses the blocked address too.
    assert!(
        !aws(&data, &elsewhere, &[], &["sts", "get-caller-identity"])
            .status
            .success()
    );

    // Each finding is in the trail, with its evidence.
    let evidence = brute["evidence"][0].as_str().unwrap();
    let trail = audit_text(&lk);
    assert!(trail.contains(&format!("\"eventID\":\"{evidence}\"")));
    assert!(trail.contains("\"eventName\":\"Finding\""));

    // The webhook got them, signed, after a failed first delivery; and a
    // failing security check's finding (a policy allowing * on *).
    json_ok(&aws(
        &data,
        &here,
        &[],
        &["iam", "create-user", "--user-name", "wide"],
    ));
    json_ok(&aws(
        &data,
        &here,
        &[],
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "wide",
            "--policy-name",
            "all",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        ],
    ));
    // And a leaked key's, reported by `latchkey scan --revoke`'s call.
    let wide_key = json_ok(&aws(
        &data,
        &here,
        &[],
        &["iam", "create-access-key", "--user-name", "wide"],
    ))["AccessKey"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = latchkey(&[
        "iam",
        "revoke-leaked-access-key",
        "--access-key-id",
        &wide_key,
        "--location",
        "app/.env:3",
    ])
    .env(
        "AWS_SHARED_CREDENTIALS_FILE",
        data.join("admin.credentials"),
    )
    .env("AWS_CONFIG_FILE", "/dev/null")
    .env("AWS_CA_BUNDLE", data.join("ca.pem"))
    .env("AWS_ENDPOINT_URL", &here)
    .env("AWS_DEFAULT_REGION", "us-east-1")
    .output()
    .unwrap();
    assert_eq!(json_ok(&out)["Status"], "Inactive");
    let deadline = Instant::now() + Duration::from_secs(20);
    for kind in [
        "BruteForce.SourceIP",
        "SecurityCheck.LK-IAM-05",
        "Repository/LeakedKey",
    ] {
        while hooks.lock().unwrap().iter().all(|(_, b)| !b.contains(kind)) {
            assert!(
                Instant::now() < deadline,
                "the webhook did not receive the {kind} finding"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for (head, body) in hooks.lock().unwrap().iter() {
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap()
                .to_owned()
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{}.{body}", header("X-Latchkey-Timestamp")).as_bytes());
        assert_eq!(
            header("X-Latchkey-Signature"),
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["type"].is_string() && v["id"].is_string());
    }

    // get and archive.
    let id = brute["id"].as_str().unwrap();
    let got = latchkey(&["findings", "get", id, "--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    let got: serde_json::Value = serde_json::from_str(&stdout_ok(&got)).unwrap();
    assert_eq!(got["type"], "CredentialAccess:RDS/BruteForce.SourceIP");
    assert!(
        latchkey(&[
            "findings",
            "archive",
            id,
            "--data-dir",
            data.to_str().unwrap()
        ])
        .status()
        .unwrap()
        .success()
    );
    assert!(findings(&data, &[]).iter().all(|f| f["id"] != id));
    assert!(
        findings(&data, &["--archived"])
            .iter()
            .any(|f| f["id"] == id)
    );
    assert!(!findings(&data, &["--severity", "High"]).is_empty());
    assert!(
        !latchkey(&[
            "findings",
            "archive",
            "no-such-id",
            "--data-dir",
            data.to_str().unwrap()
        ])
        .status()
        .unwrap()
        .success()
    );

    // Metrics count findings by type and severity.
    let metrics = Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(data.join("ca.pem"))
        .arg(format!("https://127.0.0.1:{api_port}/metrics"))
        .output()
        .unwrap();
    assert!(stdout_ok(&metrics).contains("latchkey_findings_total{type=\"CredentialAccess:RDS/BruteForce.SourceIP\",severity=\"High\"} 1"));
}

fn write_script(root: &Path) -> std::path::PathBuf {
    let p = root.join("select.sql");
    std::fs::write(&p, "SELECT 1;\n").unwrap();
    p
}
