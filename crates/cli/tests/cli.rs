#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report
//! The `latchkey` binary against software we did not write: the AWS CLI
//! makes tokens that `latchkey token verify` must accept, and botocore
//! re-signs `latchkey token generate` output at the same instant and must
//! get the same bytes. `scripts/test` installs both.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// A command with a clean AWS environment rooted in a temp dir, so nothing
/// on the machine (a real ~/.aws) leaks into the test.
fn command(program: &str, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") || key.starts_with("LATCHKEY_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"));
    cmd
}

fn latchkey(home: &Path) -> Command {
    command(env!("CARGO_BIN_EXE_latchkey"), home)
}

fn with_keys(mut cmd: Command, session: Option<&str>) -> Command {
    cmd.env("AWS_ACCESS_KEY_ID", AKID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    if let Some(token) = session {
        cmd.env("AWS_SESSION_TOKEN", token);
    }
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("command runs")
}

/// Runs a command that must succeed; returns its trimmed standard output.
fn run_ok(cmd: Command, what: &str) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out).trim().to_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

#[test]
fn aws_cli_tokens_pass_latchkey_verify() {
    let home = tempfile::tempdir().unwrap();
    let mut aws = with_keys(
        command("aws", home.path()),
        Some("FwoGZXIvYXdzEBYaDH+/session=="),
    );
    aws.args([
        "rds",
        "generate-db-auth-token",
        "--hostname",
        "Prod.cluster-abc.eu-west-1.rds.amazonaws.com",
        "--port",
        "5432",
        "--username",
        "app user é",
        "--region",
        "eu-west-1",
    ]);
    let token = run_ok(aws, "the AWS CLI (scripts/test installs it)");
    assert!(token.starts_with("Prod.cluster-abc.eu-west-1.rds.amazonaws.com:5432/?Action=connect&DBUser=app%20user%20%C3%A9&"));

    // Secret from the environment (access key id must match the token's).
    let mut verify = with_keys(latchkey(home.path()), None);
    verify.args(["token", "verify", &token, "--region", "eu-west-1"]);
    let out = run(verify);
    assert_eq!(
        stdout(&out),
        "valid\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(code(&out), 0);

    // Secret as a flag, token on standard input, JSON output.
    let mut verify = latchkey(home.path());
    verify
        .args([
            "token",
            "verify",
            "-",
            "--secret-access-key",
            SECRET,
            "--output",
            "json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = verify.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{token}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(code(&out), 0);

    // Wrong secret, wrong region, later than 15 minutes: each says why, exit 1.
    let mut verify = latchkey(home.path());
    verify.args(["token", "verify", &token, "--secret-access-key", "not-it"]);
    let out = run(verify);
    assert_eq!(
        (stdout(&out).as_str(), code(&out)),
        ("signature does not match\n", 1)
    );

    let mut verify = with_keys(latchkey(home.path()), None);
    verify.args(["token", "verify", &token, "--region", "us-east-1"]);
    let out = run(verify);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("region \"eu-west-1\", expected \"us-east-1\""));

    let mut verify = with_keys(latchkey(home.path()), None);
    verify.args([
        "token",
        "verify",
        &token,
        "--at",
        "2100-01-01T00:00:00Z",
        "--output",
        "json",
    ]);
    let out = run(verify);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json["valid"].clone(), json["code"].clone()),
        (Value::Bool(false), "Expired".into())
    );
    assert_eq!(code(&out), 1);

    // Inspect needs no secret.
    let mut inspect = latchkey(home.path());
    inspect.args(["token", "inspect", &token, "--output", "json"]);
    let out = run(inspect);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["dbUser"], "app user é");
    assert_eq!(json["port"], 5432);
    assert_eq!(json["accessKeyId"], AKID);
    assert_eq!(json["region"], "eu-west-1");
    assert_eq!(json["service"], "rds-db");
    assert_eq!(json["sessionToken"], true);
    assert_eq!(json["expiresInSeconds"], 900);
    assert!(json["timeLeftSeconds"].as_i64().unwrap() > 800);
}

/// Each case: generate flags, plus what botocore needs to re-sign.
fn generate_and_regenerate(cases: &[(Vec<&str>, Value)]) {
    let home = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for (args, case) in cases {
        let session = case["session_token"].as_str();
        let mut cmd = with_keys(latchkey(home.path()), session);
        cmd.args(["token", "generate"]).args(args);
        let out = run(cmd);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = stdout(&out);
        assert!(
            token.ends_with('\n') && token.lines().count() == 1,
            "prints only the token"
        );
        let mut case = case.clone();
        case["token"] = token.trim().into();
        case["access_key_id"] = AKID.into();
        case["secret_access_key"] = SECRET.into();
        lines.push_str(&case.to_string());
        lines.push('\n');
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/botocore_oracle.py"
    );
    let mut oracle = Command::new("python3")
        .args([script, "regenerate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    oracle
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = oracle.wait_with_output().unwrap();
    assert!(out.status.success(), "botocore oracle failed");
    let results: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), cases.len());
    for (result, line) in results.iter().zip(lines.lines()) {
        assert_eq!(
            result["match"], true,
            "ours {line}\nbotocore {}",
            result["botocore"]
        );
    }
}

#[test]
fn latchkey_generate_matches_botocore_at_the_same_instant() {
    let rds = |host: &'static str,
               port: &'static str,
               user: &'static str,
               region: &'static str,
               session: Option<&str>| {
        let mut case = serde_json::json!({
            "action": "connect", "hostname": host, "port": port.parse::<u16>().unwrap(),
            "username": user, "region": region,
        });
        if let Some(s) = session {
            case["session_token"] = s.into();
        }
        (
            vec![
                "--hostname",
                host,
                "--port",
                port,
                "--username",
                user,
                "--region",
                region,
            ],
            case,
        )
    };
    generate_and_regenerate(&[
        rds(
            "prod-instance.us-east-1.rds.amazonaws.com",
            "3306",
            "peccy",
            "us-east-1",
            None,
        ),
        rds(
            "DB.Example.COM",
            "443",
            "jane doe@x+y/z",
            "eu-west-1",
            Some("FQoG/+=session"),
        ),
        rds(
            "10.0.0.7",
            "5432",
            "日本語 ユーザー",
            "ap-northeast-1",
            None,
        ),
        (
            vec![
                "--hostname",
                "abc.dsql.us-east-1.on.aws",
                "--action",
                "DbConnectAdmin",
                "--region",
                "us-east-1",
            ],
            serde_json::json!({"action": "DbConnectAdmin", "hostname": "abc.dsql.us-east-1.on.aws", "region": "us-east-1"}),
        ),
    ]);
}

#[test]
fn credentials_and_region_from_profiles() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("credentials"),
        format!("[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = other\n\n[ci]\naws_access_key_id = {AKID}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    std::fs::write(
        home.path().join("config"),
        "[profile ci]\nregion = ca-central-1\n",
    )
    .unwrap();

    let mut cmd = latchkey(home.path());
    cmd.args([
        "token",
        "generate",
        "--hostname",
        "db",
        "--port",
        "5432",
        "--username",
        "u",
        "--profile",
        "ci",
    ]);
    let token = run_ok(cmd, "latchkey token generate --profile");
    assert!(token.contains(&format!("X-Amz-Credential={AKID}%2F")));
    assert!(token.contains("%2Fca-central-1%2Frds-db%2F"));

    // --profile beats AWS_* variables, as in the AWS CLI.
    let mut cmd = latchkey(home.path());
    cmd.env("AWS_ACCESS_KEY_ID", "AKIDENV")
        .env("AWS_SECRET_ACCESS_KEY", "x");
    cmd.args(["token", "verify", &token, "--profile", "ci"]);
    assert_eq!(stdout(&run(cmd)), "valid\n");

    // AWS_PROFILE picks the profile when no flag is given.
    let mut cmd = latchkey(home.path());
    cmd.env("AWS_PROFILE", "ci")
        .args(["token", "verify", &token]);
    assert_eq!(stdout(&run(cmd)), "valid\n");

    // The default profile holds a different key: a usage error, exit 2.
    let mut cmd = latchkey(home.path());
    cmd.args(["token", "verify", &token]);
    let out = run(cmd);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("signed by access key AKIDEXAMPLE"));
}

#[test]
fn usage_errors_exit_2_and_help_exists() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["token", "--help"],
        vec!["token", "generate", "--help"],
        vec!["token", "inspect", "--help"],
        vec!["token", "verify", "--help"],
    ] {
        let mut cmd = latchkey(home.path());
        cmd.args(&args);
        let out = run(cmd);
        assert_eq!(code(&out), 0, "{args:?}");
        assert!(stdout(&out).contains("Usage:"), "{args:?}");
    }
    let cases: &[&[&str]] = &[
        &["token", "verify"],
        &[
            "token",
            "generate",
            "--hostname",
            "h",
            "--port",
            "1",
            "--username",
            "u",
            "--region",
            "r",
            "--expires-in",
            "901",
        ],
        &["token", "generate", "--hostname", "h", "--region", "r"],
        &[
            "token",
            "verify",
            "db:5432/?Action=connect&DBUser=u",
            "--at",
            "yesterday",
        ],
        &["token", "bogus"],
    ];
    for args in cases {
        let mut cmd = with_keys(latchkey(home.path()), None);
        cmd.args(*args);
        assert_eq!(code(&run(cmd)), 2, "{args:?}");
    }
    // No credentials anywhere.
    let mut cmd = latchkey(home.path());
    cmd.args([
        "token",
        "generate",
        "--hostname",
        "h",
        "--port",
        "1",
        "--username",
        "u",
        "--region",
        "r",
    ]);
    let out = run(cmd);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unable to locate credentials"));
}

#[test]
fn malformed_tokens_are_invalid_not_crashes() {
    let home = tempfile::tempdir().unwrap();
    for token in [
        "",
        "garbage",
        "db:5432/?Action=connect&DBUser=u&X-Amz-Algorithm=MD5",
    ] {
        let mut cmd = latchkey(home.path());
        cmd.args(["token", "verify", token, "--secret-access-key", "s"]);
        let out = run(cmd);
        assert_eq!(code(&out), 1, "{token:?}");
        assert!(stdout(&out).contains("malformed") || stdout(&out).contains("unsupported"));
        let mut cmd = latchkey(home.path());
        cmd.args(["token", "inspect", token]);
        assert_eq!(code(&run(cmd)), 1);
    }
}
