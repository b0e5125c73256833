#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Issue 14, item 7: an onlooker must not be able to fire the
//! `revoke_sessions` response. The session token is visible inside every
//! RDS token a role session signs, and an access key id is no secret: with
//! either, anyone can make failed logins that name the principal. Against
//! a real `latchkey serve` and PostgreSQL, with brute-force detection set
//! to revoke: twelve forged logins (the legitimate token with a wrong
//! signature; a token signed with the right key id and a wrong secret)
//! must leave the legitimate credentials working, block the attacker's
//! address instead, and say so in the finding and the audit trail.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const DETECTION: &str = r#"
[detection.brute_force]
threshold = 5
action = "revoke_sessions"
block_secs = 600
"#;

/// `latchkey serve` with the gateway and API on both stacks (::1 is the
/// attacker, 127.0.0.1 the legitimate client) and brute-force detection
/// set to revoke. Returns the server, its API port and the data directory.
fn serve(root: &Path, pg: &Postgres) -> (Latchkey, u16, PathBuf) {
    let (data, api) = init_latchkey(root, &[]);
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
    let config = root.join("latchkey.toml");
    std::fs::write(&config, DETECTION).unwrap();
    let pg_port = free_port();
    let log = std::fs::File::create(root.join("latchkey.log")).unwrap();
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
    ])
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .unwrap();
    wait_for_port(pg_port);
    wait_for_port(api_port);
    let lk = Latchkey {
        child,
        data: data.clone(),
        pg_port,
        mysql_port: 0,
    };
    (lk, api_port, data)
}

fn psql_from(host: &str, port: u16, token: &str) -> Output {
    Command::new("psql")
        .arg(format!(
            "host={host} port={port} user=app dbname=orders sslmode=require"
        ))
        .args(["-X", "-q", "-t", "-A", "-c", "SELECT 'in'"])
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap()
}

/// `token` with its signature replaced by another (valid hex, wrong).
fn forged(token: &str, n: usize) -> String {
    let at = token.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let end = token[at..].find('&').map_or(token.len(), |e| at + e);
    format!("{}{:064x}{}", &token[..at], n + 1, &token[end..])
}

/// The AWS CLI as the administrator against this server.
fn admin(data: &Path, args: &[&str]) -> serde_json::Value {
    let out = aws_cli()
        .env("AWS_CONFIG_FILE", data.join("aws.config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            data.join("admin.credentials"),
        )
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    serde_json::from_str(&stdout_ok(&out)).unwrap_or(serde_json::Value::Null)
}

/// Sends twelve forged logins from ::1, then checks what happened: the
/// legitimate `token` still logs in from 127.0.0.1, ::1 is blocked, the
/// finding says the revocation degraded, and the audit trail marks each
/// forged login as unproven.
fn attack_and_check(
    lk: &Latchkey,
    data: &Path,
    forgeries: &[String],
    fresh_token: impl Fn() -> String,
) {
    for token in forgeries {
        // Refused with RDS's answer, or, once the address is blocked,
        // before TLS.
        let out = psql_from("::1", lk.pg_port, token);
        assert!(!out.status.success());
    }
    let finding = wait_for_finding(data, "CredentialAccess:RDS/BruteForce.Principal");
    let actions: Vec<String> = finding["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert!(
        actions
            .iter()
            .all(|a| a.starts_with("block ::1 for 600s instead of revoking sessions of")),
        "{finding:#}"
    );
    assert!(!actions.is_empty(), "{finding:#}");
    assert!(
        finding["description"]
            .as_str()
            .unwrap()
            .contains("revoke_sessions degraded to block_ip"),
        "{finding:#}"
    );
    // Revocations are reloaded and enforced within 5 s: give a wrong one
    // its chance.
    std::thread::sleep(std::time::Duration::from_secs(6));

    // The legitimate credentials still work, with a fresh token too.
    assert_eq!(
        stdout_ok(&psql_from("127.0.0.1", lk.pg_port, &fresh_token())),
        "in"
    );
    // The attacker's address is blocked, even with a good token.
    let out = psql_from("::1", lk.pg_port, &fresh_token());
    assert!(!out.status.success());

    // Each forged login that got as far as its signature (the rest were
    // refused as blocked) is recorded as not proving possession.
    let events = audit_events(lk, |events| {
        events
            .iter()
            .filter(|e| e["database"]["failure"] == "bad_signature")
            .count()
            >= 5
            && events.iter().any(|e| e["database"]["failure"] == "blocked")
    });
    let forged: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["database"]["failure"] == "bad_signature")
        .collect();
    assert!((5..=forgeries.len()).contains(&forged.len()), "{forged:#?}");
    assert!(
        forged
            .iter()
            .all(|e| e["database"]["possessionProven"] == false),
        "{forged:#?}"
    );
    assert!(
        events.iter().any(|e| e["database"]["failure"] == "blocked"),
        "the blocked login is not in the trail"
    );
}

#[test]
fn forged_role_session_tokens_do_not_revoke_the_role() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let (lk, _api_port, data) = serve(root.path(), &pg);

    // A role the administrator may assume, allowed to connect.
    let me = admin(&data, &["sts", "get-caller-identity"]);
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":"sts:AssumeRole"}}]}}"#,
        me["Arn"].as_str().unwrap()
    );
    admin(
        &data,
        &[
            "iam",
            "create-role",
            "--role-name",
            "db-app",
            "--assume-role-policy-document",
            &trust,
        ],
    );
    admin(
        &data,
        &[
            "iam",
            "put-role-policy",
            "--role-name",
            "db-app",
            "--policy-name",
            "connect",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#,
        ],
    );
    let role_arn = format!(
        "arn:aws:iam::{}:role/db-app",
        me["Account"].as_str().unwrap()
    );
    let session = admin(
        &data,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "worker",
        ],
    );
    let c = &session["Credentials"];
    let creds = [
        ("AWS_ACCESS_KEY_ID", c["AccessKeyId"].as_str().unwrap()),
        (
            "AWS_SECRET_ACCESS_KEY",
            c["SecretAccessKey"].as_str().unwrap(),
        ),
        ("AWS_SESSION_TOKEN", c["SessionToken"].as_str().unwrap()),
    ];
    let token = || aws_token(&lk, &creds, "localhost", "app");
    let leaked = token();
    assert_eq!(
        stdout_ok(&psql_from("127.0.0.1", lk.pg_port, &leaked)),
        "in"
    );

    // The leaked token's session token, with signatures of the attacker's.
    let forgeries: Vec<String> = (0..12).map(|n| forged(&leaked, n)).collect();
    attack_and_check(&lk, &data, &forgeries, token);
}

#[test]
fn a_bare_access_key_id_does_not_revoke_the_user() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let (lk, api_port, data) = serve(root.path(), &pg);
    let keys = user_with_policy(
        &lk,
        "reporter",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#,
    );
    // The user works with temporary credentials, which a revocation of
    // the user would end.
    let temporary = session_credentials(&lk, api_port, &keys);
    let token = || token_with(&lk, &temporary);
    assert_eq!(
        stdout_ok(&psql_from("127.0.0.1", lk.pg_port, &token())),
        "in"
    );

    // The attacker knows the key id only: tokens signed with a made-up
    // secret.
    let guessed = token_with(
        &lk,
        &[
            keys[0].clone(),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
            ),
        ],
    );
    let forgeries: Vec<String> = (0..12).map(|n| forged(&guessed, n)).collect();
    attack_and_check(&lk, &data, &forgeries, token);
}

/// `latchkey sts get-caller-identity` with `creds`, from 127.0.0.1 (the
/// attacker's ::1 may be blocked by then).
fn caller_identity(lk: &Latchkey, api_port: u16, creds: &[(String, String)]) -> serde_json::Value {
    let mut cmd = latchkey(&["sts", "get-caller-identity"]);
    for (k, v) in creds {
        cmd.env(k, v);
    }
    let out = cmd
        .env("AWS_CA_BUNDLE", lk.data.join("ca.pem"))
        .env("AWS_ENDPOINT_URL", format!("https://127.0.0.1:{api_port}"))
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .unwrap();
    serde_json::from_str(&stdout_ok(&out)).unwrap()
}

/// Red team F3: a captured, still valid database token that the victim's
/// policy refuses from the attacker's address. Its signature verifies, so
/// each replay used to count as proof of possession and twelve of them
/// revoked the victim's sessions. A signature seen before proves nothing:
/// the replays must block the attacker's address only, the victim's
/// credentials (and the reused token itself, from an allowed address)
/// must keep working, and the trail must mark the replays unproven.
#[test]
fn a_replayed_token_refused_by_policy_does_not_revoke_the_victim() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let (lk, api_port, data) = serve(root.path(), &pg);
    let keys = user_with_policy(
        &lk,
        "victim",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}]}"#,
    );
    // The victim works with temporary credentials, which a revocation of
    // the user would end.
    let temporary = session_credentials(&lk, api_port, &keys);
    let victim_arn = caller_identity(&lk, api_port, &temporary)["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = || token_with(&lk, &temporary);
    // The victim uses its token; the attacker captures it.
    let captured = token();
    assert_eq!(
        stdout_ok(&psql_from("127.0.0.1", lk.pg_port, &captured)),
        "in"
    );

    for _ in 0..12 {
        // Refused by the victim's policy, or, once the address is
        // blocked, before TLS.
        let out = psql_from("::1", lk.pg_port, &captured);
        assert!(!out.status.success());
    }
    let finding = wait_for_finding(&data, "CredentialAccess:RDS/BruteForce.Principal");
    let actions: Vec<String> = finding["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert!(!actions.is_empty(), "{finding:#}");
    assert!(
        actions
            .iter()
            .all(|a| a.starts_with("block ::1 for 600s instead of revoking sessions of")),
        "{finding:#}"
    );
    // Revocations are reloaded and enforced within 5 s: give a wrong one
    // its chance.
    std::thread::sleep(std::time::Duration::from_secs(6));

    // The victim's session credentials still work: at the API, with a
    // fresh token, and with the reused one (reuse is not refused).
    assert_eq!(
        caller_identity(&lk, api_port, &temporary)["Arn"],
        victim_arn.as_str()
    );
    assert_eq!(
        stdout_ok(&psql_from("127.0.0.1", lk.pg_port, &token())),
        "in"
    );
    assert_eq!(
        stdout_ok(&psql_from("127.0.0.1", lk.pg_port, &captured)),
        "in"
    );

    // The trail: every replay refused by policy (the rest were refused
    // as blocked) is marked as not proving possession, although its
    // signature verified.
    let events = audit_events(&lk, |events| {
        events
            .iter()
            .filter(|e| e["database"]["failure"] == "policy_denied")
            .count()
            >= 5
    });
    let replays: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["database"]["failure"] == "policy_denied")
        .collect();
    assert!((5..=12).contains(&replays.len()), "{replays:#?}");
    assert!(
        replays.iter().all(|e| e["sourceIPAddress"] == "::1"
            && e["database"]["possessionProven"] == false
            && e["errorMessage"]
                .as_str()
                .unwrap()
                .ends_with("(token presented before)")),
        "{replays:#?}"
    );
}
