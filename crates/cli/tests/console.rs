#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The web console in a real browser: Debian's Chromium, driven through
//! chromedriver by Selenium (`tests/browser/console.py`), against a real
//! `latchkey serve` set up with the stock AWS CLI; axe-core checks every
//! page. Then what the browser did is checked from outside: with the AWS
//! CLI, and in the audit trail.
//!
//! `LATCHKEY_CONSOLE_SCREENSHOTS=DIR` saves a screenshot of each page
//! there (`docs/console/` holds the README's).

mod common;

use std::path::Path;
use std::process::Command;

use common::api::{ApiServer, aws, enable_virtual_mfa, ok};
use serde_json::{Value, json};

fn admin(server: &ApiServer, args: &[&str]) -> Value {
    ok(aws(server, None, args))
}

fn user_with(server: &ApiServer, name: &str, policy: Option<&str>, password: &str, reset: bool) {
    admin(server, &["iam", "create-user", "--user-name", name]);
    if let Some(policy) = policy {
        admin(
            server,
            &[
                "iam",
                "put-user-policy",
                "--user-name",
                name,
                "--policy-name",
                &format!("{name}-db"),
                "--policy-document",
                policy,
            ],
        );
    }
    let mut args = vec![
        "iam",
        "create-login-profile",
        "--user-name",
        name,
        "--password",
        password,
    ];
    if reset {
        args.push("--password-reset-required");
    }
    admin(server, &args);
}

#[test]
fn the_console_in_chromium() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = ApiServer::start(&data);
    let account = admin(&server, &["sts", "get-caller-identity"])["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(
        &server,
        &[
            "iam",
            "update-account-password-policy",
            "--minimum-password-length",
            "12",
            "--require-symbols",
            "--require-numbers",
            "--require-uppercase-characters",
            "--require-lowercase-characters",
            "--allow-users-to-change-password",
        ],
    );
    let everything = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:*","sts:AssumeRole","access-analyzer:ValidatePolicy","guardduty:ListFindings"],"Resource":"*"}]}"#;
    let passwords = json!({
        "alice": {"password": "Alice-Console-1!"},
        "newbie": {"password": "Newbie-First-1!", "new_password": "Newbie-Second-2!"},
        "nobody": {"password": "Nobody-Console-1!"},
        "locked": {"password": "Locked-Console-1!"},
        "auditor": {"password": "Auditor-Console-1!"},
    });
    let pw = |u: &str| passwords[u]["password"].as_str().unwrap().to_owned();
    user_with(&server, "alice", Some(everything), &pw("alice"), false);
    user_with(&server, "newbie", None, &pw("newbie"), true);
    user_with(&server, "nobody", None, &pw("nobody"), false);
    user_with(&server, "locked", None, &pw("locked"), false);
    let auditor = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["guardduty:ListFindings","guardduty:GetFindings","guardduty:ArchiveFindings","cloudtrail:LookupEvents"],"Resource":"*"}]}"#;
    user_with(&server, "auditor", Some(auditor), &pw("auditor"), false);
    let carol_db = format!("arn:aws:rds-db:us-east-1:{account}:dbuser:db-ORDERS/app");
    admin(&server, &["iam", "create-user", "--user-name", "carol"]);
    admin(
        &server,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "carol",
            "--policy-name",
            "carol-db",
            "--policy-document",
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"rds-db:connect","Resource":"{carol_db}"}}]}}"#
            ),
        ],
    );
    let policy_arn = admin(
        &server,
        &[
            "iam",
            "create-policy",
            "--policy-name",
            "ConsoleTestPolicy",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#,
        ],
    )["Policy"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    // A role whose trust policy asks for MFA.
    admin(
        &server,
        &[
            "iam",
            "create-role",
            "--role-name",
            "elevated",
            "--assume-role-policy-document",
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":["arn:aws:iam::{account}:user/alice","arn:aws:iam::{account}:user/nobody"]}},"Action":"sts:AssumeRole","Condition":{{"Bool":{{"aws:MultiFactorAuthPresent":"true"}}}}}}]}}"#
            ),
        ],
    );
    admin(
        &server,
        &[
            "iam",
            "put-role-policy",
            "--role-name",
            "elevated",
            "--policy-name",
            "read",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:Get*","iam:List*"],"Resource":"*"}]}"#,
        ],
    );
    let nobody_may_assume = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#;
    admin(
        &server,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "nobody",
            "--policy-name",
            "assume-only",
            "--policy-document",
            nobody_may_assume,
        ],
    );
    // Alice's MFA device.
    let seed = root.path().join("alice-seed");
    enable_virtual_mfa(&server, "alice", &seed);

    let mut users = passwords.clone();
    users["alice"]["seed"] = json!(seed.to_str().unwrap());
    let config = json!({
        "endpoint": server.endpoint(),
        "ca": data.join("ca.pem"),
        "axe": std::env::var("LATCHKEY_AXE_JS").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/axe-core-4.10.3.min.js").to_owned()
        }),
        "screenshots": std::env::var("LATCHKEY_CONSOLE_SCREENSHOTS").ok(),
        "users": users,
        "policy_arn": policy_arn,
        "carol_arn": format!("arn:aws:iam::{account}:user/carol"),
        "carol_db_resource": carol_db,
        "aws_env": {
            "AWS_CONFIG_FILE": data.join("aws.config"),
            "AWS_SHARED_CREDENTIALS_FILE": data.join("admin.credentials"),
            "AWS_CA_BUNDLE": data.join("ca.pem"),
            "AWS_ENDPOINT_URL": server.endpoint(),
        },
    });
    let config_path = root.path().join("console.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/console.py"
        ))
        .arg(&config_path)
        .output()
        .expect("python3 with selenium (scripts/test installs it)");
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(seen["pages"].as_array().unwrap().len() >= 10, "{seen}");

    // What the browser did, seen with the AWS CLI.
    let attached = admin(
        &server,
        &[
            "iam",
            "list-attached-user-policies",
            "--user-name",
            "made-in-console",
        ],
    );
    assert_eq!(
        attached["AttachedPolicies"][0]["PolicyArn"],
        policy_arn.as_str()
    );
    let tags = admin(
        &server,
        &["iam", "list-user-tags", "--user-name", "made-in-console"],
    );
    assert_eq!(tags["Tags"].as_array().unwrap().len(), 2);
    assert_eq!(
        admin(
            &server,
            &["iam", "get-login-profile", "--user-name", "newbie"]
        )["LoginProfile"]["PasswordResetRequired"],
        false
    );
    let alice = admin(&server, &["iam", "get-user", "--user-name", "alice"]);
    assert!(alice["User"]["PasswordLastUsed"].is_string(), "{alice}");
    // The CSRF attempts made nothing.
    let refused = aws(
        &server,
        None,
        &["iam", "get-user", "--user-name", "csrf-victim"],
    );
    assert!(!refused.status.success());

    // And in the audit trail: sign-ins as CloudTrail records them, the
    // console's calls as the signed-in user's.
    let logins = common::audit_lookup(&data, &["--event-name", "ConsoleLogin"]);
    let outcome = |e: &Value| {
        e["responseElements"]["ConsoleLogin"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        logins
            .iter()
            .all(|e| e["eventSource"] == "signin.amazonaws.com")
    );
    assert!(logins.iter().any(|e| {
        outcome(e) == "Success"
            && e["userIdentity"]["arn"]
                .as_str()
                .unwrap_or("")
                .ends_with("user/alice")
            && e["responseElements"]["MFAUsed"] == "Yes"
    }));
    let failures: Vec<&Value> = logins.iter().filter(|e| outcome(e) == "Failure").collect();
    assert!(failures.len() >= 8, "{failures:?}");
    assert!(
        failures
            .iter()
            .all(|e| e["errorCode"] == "Failed authentication" && e["errorMessage"].is_string()),
        "{failures:?}"
    );
    // The precise reasons are for the trail only.
    assert!(
        failures
            .iter()
            .any(|e| e["errorMessage"] == "wrong password")
    );
    assert!(failures.iter().any(|e| {
        e["errorMessage"]
            .as_str()
            .unwrap_or("")
            .starts_with("wrong MFA code")
    }));
    let created = common::audit_lookup(&data, &["--event-name", "CreateUser"]);
    let by_console = created
        .iter()
        .find(|e| e["requestParameters"]["userName"] == "made-in-console")
        .expect("CreateUser from the console");
    assert_eq!(by_console["userAgent"], "latchkey-console");
    assert!(
        by_console["userIdentity"]["arn"]
            .as_str()
            .unwrap()
            .ends_with("user/alice")
    );
    let archived = common::audit_lookup(&data, &["--event-name", "ArchiveFindings"]);
    assert_eq!(archived.len(), 1, "{archived:?}");
    assert_eq!(archived[0]["eventSource"], "guardduty.amazonaws.com");
    assert!(
        archived[0]["userIdentity"]["arn"]
            .as_str()
            .unwrap()
            .ends_with("user/auditor")
    );
    // No password the browser typed is anywhere in the data directory.
    for entry in walk(&data) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        for secret in ["Alice-Console-1!", "Newbie-Second-2!", "Locked-Console-1!"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
