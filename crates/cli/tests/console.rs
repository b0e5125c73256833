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
    let everything = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:*","sts:AssumeRole","access-analyzer:ValidatePolicy","guardduty:ListFindings","rds:*","latchkey:*","cloudtrail:LookupEvents","secretsmanager:DescribeSecret","secretsmanager:ListSecrets","ssm:DescribeParameters","kms:ListKeys","kms:ListAliases","kms:DescribeKey"],"Resource":"*"}]}"#;
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
    // A real PostgreSQL behind the gateway, registered from the command
    // line (the browser registers another).
    let pg = common::Postgres::start(root.path());
    let orders = common::register_db(
        &data,
        &[
            "--name",
            "orders",
            "--endpoint",
            "localhost",
            "--upstream",
            &format!("127.0.0.1:{}", pg.port),
            "--rotate-every",
            "30d",
        ],
    );
    // Kept in a rotated secret, latchkey/db/orders/app.
    common::set_db_password(&data, "orders", "app", "app-secret");
    // A parameter and a key for their pages.
    admin(
        &server,
        &[
            "ssm",
            "put-parameter",
            "--name",
            "/orders/db-host",
            "--value",
            "orders.db.internal",
            "--type",
            "String",
        ],
    );
    let key = admin(
        &server,
        &["kms", "create-key", "--description", "console test key"],
    );
    admin(
        &server,
        &[
            "kms",
            "create-alias",
            "--alias-name",
            "alias/console-test",
            "--target-key-id",
            key["KeyMetadata"]["KeyId"].as_str().unwrap(),
        ],
    );
    let classified = common::latchkey(&[
        "db",
        "classify",
        "--db",
        "orders",
        "--object",
        "public.customers",
        "--tag",
        "class=pii",
        "--data-dir",
    ])
    .arg(&data)
    .output()
    .unwrap();
    assert!(
        classified.status.success(),
        "{}",
        String::from_utf8_lossy(&classified.stderr)
    );
    let orders_id = orders["resourceId"].as_str().unwrap();
    let carol_db = format!("arn:aws:rds-db:us-east-1:{account}:dbuser:{orders_id}/app");
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
    let carol_key = admin(
        &server,
        &["iam", "create-access-key", "--user-name", "carol"],
    );
    let carol_env = json!({
        "AWS_ACCESS_KEY_ID": carol_key["AccessKey"]["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": carol_key["AccessKey"]["SecretAccessKey"],
    });
    // Carol can log in through the gateway once it has read the
    // registration (within seconds).
    let conninfo = format!(
        "host=localhost port={} user=app dbname=orders sslmode=verify-full sslrootcert={}",
        server.pg_port,
        data.join("ca.pem").display()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let token = carol_token(&server, &carol_env);
        let out = Command::new("psql")
            .args([&conninfo, "-X", "-A", "-t", "-c", "SELECT 1"])
            .env("PGPASSWORD", &token)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "carol cannot log in: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
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
    // A role that wants an MFA code from the last 20 seconds: the console's
    // session is older, so switching asks for a code.
    admin(
        &server,
        &[
            "iam",
            "create-role",
            "--role-name",
            "fresh",
            "--assume-role-policy-document",
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:user/alice"}},"Action":"sts:AssumeRole","Condition":{{"NumericLessThan":{{"aws:MultiFactorAuthAge":"20"}}}}}}]}}"#
            ),
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
        "carol_env": carol_env,
        "psql": {"conninfo": conninfo, "port": server.pg_port},
        "upstream": format!("127.0.0.1:{}", pg.port),
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
    // Every page axe-core passed, by name: a page dropped from the walk
    // fails here.
    let checked: Vec<&str> = seen["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for page in [
        "signin",
        "mfa",
        "overview",
        "users",
        "user-new",
        "user",
        "groups",
        "group",
        "roles",
        "role",
        "role-new",
        "user-inactive-key",
        "policies",
        "policy-editor",
        "simulator",
        "databases",
        "database-new",
        "database",
        "secrets",
        "secret",
        "parameters",
        "keys",
        "sessions",
        "overview-live",
        "switch-role",
        "change-password",
        "refusal",
        "lockout",
        "findings",
        "finding",
        "audit",
        "audit-bad-filter",
    ] {
        assert!(checked.contains(&page), "{page} not checked: {checked:?}");
    }
    assert_eq!(seen["keyboard"], true, "signed in and skipped by keyboard");
    assert_eq!(
        seen["address_lockout"], true,
        "a spray from one address locks that address, not the user"
    );
    // psql was told its session ended, in PostgreSQL's own words.
    assert!(
        seen["psql_saw"]
            .as_str()
            .unwrap()
            .contains("FATAL:  terminating connection due to administrator command"),
        "{seen}"
    );

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
    let readers = admin(&server, &["iam", "get-group", "--group-name", "readers"]);
    assert_eq!(readers["Users"][0]["UserName"], "made-in-console");
    let group_policies = admin(
        &server,
        &[
            "iam",
            "list-attached-group-policies",
            "--group-name",
            "readers",
        ],
    );
    assert_eq!(
        group_policies["AttachedPolicies"][0]["PolicyArn"],
        policy_arn.as_str()
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
    // Databases registered and edited, sessions ended and a principal
    // revoked from the console: each recorded as the signed-in user's.
    let by_alice = |e: &Value| {
        e["userIdentity"]["arn"]
            .as_str()
            .unwrap_or("")
            .ends_with("user/alice")
    };
    let registered = common::audit_lookup(&data, &["--event-name", "CreateDBInstance"]);
    assert!(
        registered
            .iter()
            .any(|e| e["eventSource"] == "rds.amazonaws.com"
                && e["requestParameters"]["dBInstanceIdentifier"] == "billing"
                && e["errorCode"].is_null()
                && by_alice(e)),
        "{registered:?}"
    );
    assert!(
        registered
            .iter()
            .any(|e| e["errorCode"] == "InvalidParameterValue"),
        "the refused registration is recorded too: {registered:?}"
    );
    let listed = common::latchkey(&["db", "list", "--output", "json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let billing = listed["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "billing")
        .unwrap()
        .clone();
    assert_eq!(billing["statementPolicy"], "audit");
    assert_eq!(billing["tags"], json!([{"Key": "env", "Value": "prod"}]));
    let ended = common::audit_lookup(&data, &["--event-name", "EndSession"]);
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert!(ended.iter().all(|e| by_alice(e)
        && e["eventSource"] == "gateway.latchkey"
        && e["requestParameters"]["dbUser"] == "app"));
    let revoked = common::audit_lookup(&data, &["--event-name", "RevokeSessions"]);
    assert!(
        revoked
            .iter()
            .any(|e| e["requestParameters"]["userName"] == "carol" && by_alice(e)),
        "{revoked:?}"
    );
    let session_ends = common::audit_lookup(&data, &["--event-name", "SessionEnd"]);
    assert_eq!(
        session_ends
            .iter()
            .filter(|e| e["database"]["endReason"] == "ended by an administrator")
            .count(),
        2,
        "{session_ends:?}"
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

/// A database token for carol from the stock AWS CLI.
fn carol_token(server: &ApiServer, carol: &Value) -> String {
    let var = |k: &str| carol[k].as_str().unwrap().to_owned();
    let (id, secret) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"));
    common::aws_token_in(
        &server.dir,
        server.pg_port,
        &[
            ("AWS_ACCESS_KEY_ID", &id),
            ("AWS_SECRET_ACCESS_KEY", &secret),
        ],
        "localhost",
        "app",
    )
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
