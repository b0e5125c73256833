#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! `latchkey scan` on a tree with planted credentials, against a running
//! `latchkey serve`: keys issued by it (live, deactivated, deleted) told
//! apart from a random string of the same shape; .gitignore, binaries and
//! `latchkey:allow` respected; JSON and SARIF output that never holds a
//! secret; a baseline that survives lines moving; standard input.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use common::*;
use serde_json::{Value, json};

/// (access key id, secret) of a new key for `user`.
fn new_key(data: &Path, user: &str) -> (String, String) {
    let key = admin_cli_in(data, &["iam", "create-access-key", "--user-name", user]);
    (
        key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
        key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

fn scan(args: &[&str]) -> Output {
    latchkey(&["scan"]).args(args).output().unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Validates a SARIF log against the SARIF 2.1.0 JSON schema with
/// Python's jsonschema (scripts/test fetches the schema and sets
/// LATCHKEY_SARIF_SCHEMA); a log made invalid on purpose must fail it.
fn validate_sarif(log: &[u8]) {
    let schema = std::env::var("LATCHKEY_SARIF_SCHEMA")
        .expect("LATCHKEY_SARIF_SCHEMA names the SARIF 2.1.0 schema (scripts/test fetches it)");
    let check = |log: &[u8]| {
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import json, sys, jsonschema\n\
                 schema = json.load(open(sys.argv[1]))\n\
                 jsonschema.Draft4Validator(schema).validate(json.load(sys.stdin))",
                &schema,
            ])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(log).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = check(log);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut broken: Value = serde_json::from_slice(log).unwrap();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(
        !check(broken.to_string().as_bytes()).status.success(),
        "the schema check can fail"
    );
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn scan_finds_verifies_and_reports_planted_credentials() {
    let root = tempfile::tempdir().unwrap();
    let (data, api) = init_latchkey(root.path(), &[]);
    let lk = serve_latchkey(root.path(), &data, &api, &[]);
    admin_cli(&lk, &["iam", "create-user", "--user-name", "ci"]);
    let live = new_key(&data, "ci");
    let inactive = new_key(&data, "ci");
    admin_cli(
        &lk,
        &[
            "iam",
            "update-access-key",
            "--user-name",
            "ci",
            "--access-key-id",
            &inactive.0,
            "--status",
            "Inactive",
        ],
    );
    admin_cli(&lk, &["iam", "create-user", "--user-name", "old"]);
    let deleted = new_key(&data, "old");
    admin_cli(
        &lk,
        &[
            "iam",
            "delete-access-key",
            "--user-name",
            "old",
            "--access-key-id",
            &deleted.0,
        ],
    );
    // The right shape, never issued.
    let random = (
        "AKIAQ3ZT7VN2K4XW5PLR",
        "tZ8pQ2mV9xK4bN7cR1wE5yH3jL6fG0aS2dT8uI4o",
    );

    let tree = root.path().join("repo");
    write(
        &tree,
        ".env",
        &format!(
            "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
            live.0, live.1
        ),
    );
    write(
        &tree,
        "config/old.ini",
        &format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            inactive.0, inactive.1
        ),
    );
    write(
        &tree,
        "deploy/run.sh",
        &format!(
            "#!/bin/sh\nexport AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}\nPGPASSWORD=Zq8pL2mK psql -h db\n",
            deleted.0, deleted.1
        ),
    );
    write(
        &tree,
        "src/settings.py",
        &format!(
            "KEY = '{}'\nSECRET = '{}'\nDATABASE_URL = 'postgres://app:S3cr3t-Pw9@db:5432/orders'\n",
            random.0, random.1
        ),
    );
    // Not reported: ignored by git, binary, allowed inline, placeholders.
    write(&tree, ".gitignore", "ignored/\n");
    write(
        &tree,
        "ignored/keys.txt",
        &format!("{}\n{}\n", live.0, live.1),
    );
    let mut binary = vec![0u8, 1, 2, 3];
    binary.extend(format!("{} {}", live.0, live.1).as_bytes());
    std::fs::write(tree.join("blob.bin"), &binary).unwrap();
    write(
        &tree,
        "docs/example.md",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n\
         password = ${DB_PASSWORD}\n",
    );
    write(
        &tree,
        "tests/fixture.txt",
        &format!("key = {}  # latchkey:allow\n", random.0),
    );
    write(&tree, ".latchkey-scan.toml", "exclude = [\"vendor/**\"]\n");
    write(
        &tree,
        "vendor/lib/conf.py",
        "URL = 'mysql://root:Vend0r-Pw99@db/x'\n",
    );

    let out = scan(&[
        tree.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "findings fail the scan");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for secret in [&live.1, &inactive.1, &deleted.1, &random.1.to_owned()] {
        assert!(!stdout.contains(secret.as_str()), "a secret in the output");
    }
    let report = json_of(&out);
    let findings = report["findings"].as_array().unwrap();
    let of = |path_end: &str, detector: &str| -> Value {
        findings
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(path_end) && f["detector"] == detector)
            .unwrap_or_else(|| panic!("{detector} in {path_end}: {report}"))
            .clone()
    };
    let env = of(".env", "aws-access-key");
    assert_eq!(env["verification"], "live");
    assert_eq!(env["severity"], "critical");
    assert_eq!(env["accessKeyId"], live.0.as_str());
    assert_eq!(env["line"], 2);
    assert!(env["masked"].as_str().unwrap().contains('…'));
    assert_eq!(
        of("old.ini", "credentials-file")["verification"],
        "inactive"
    );
    let deploy = of("run.sh", "aws-access-key");
    assert_eq!(deploy["verification"], "deleted");
    assert_eq!(of("run.sh", "env-password")["severity"], "high");
    assert_eq!(
        of("settings.py", "aws-access-key")["verification"],
        "unknown"
    );
    assert_eq!(of("settings.py", "database-url")["line"], 3);
    let paths: Vec<&str> = findings
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for absent in [
        "ignored/keys.txt",
        "blob.bin",
        "example.md",
        "fixture.txt",
        "conf.py",
    ] {
        assert!(
            paths.iter().all(|p| !p.ends_with(absent)),
            "{absent} in {paths:?}"
        );
    }
    assert_eq!(report["skipped"]["binary"], 1);
    assert!(report["filesScanned"].as_u64().unwrap() >= 6);

    // --revoke: the live key is deactivated through the token service
    // with the operator's credentials, and fails with the stock AWS CLI
    // right after; a finding says where it leaked; the call is audited.
    let leaked_cli = |args: &[&str]| {
        aws_cli()
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_CONFIG_FILE", data.join("aws.config"))
            .env("AWS_CA_BUNDLE", data.join("ca.pem"))
            .env("AWS_ACCESS_KEY_ID", &live.0)
            .env("AWS_SECRET_ACCESS_KEY", &live.1)
            .args(args)
            .output()
            .unwrap()
    };
    // `latchkey scan FILE --revoke --output json`, as the administrator or
    // with `creds`.
    let revoke_scan = |file: &Path, creds: Option<&Vec<(String, String)>>| {
        let mut c = latchkey(&[
            "scan",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--revoke",
            "--output",
            "json",
        ]);
        c.env("AWS_CONFIG_FILE", data.join("aws.config"))
            .env("AWS_CA_BUNDLE", data.join("ca.pem"));
        match creds {
            None => c.env(
                "AWS_SHARED_CREDENTIALS_FILE",
                data.join("admin.credentials"),
            ),
            Some(creds) => c
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .envs(creds.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        };
        c.output().unwrap()
    };
    assert!(leaked_cli(&["sts", "get-caller-identity"]).status.success());
    let out = revoke_scan(&tree.join(".env"), None);
    let report = json_of(&out);
    assert_eq!(report["findings"][0]["revoked"], true, "{report}");
    assert_eq!(out.status.code(), Some(1));
    let refused = leaked_cli(&["sts", "get-caller-identity"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("InvalidClientTokenId"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let leaked = common::findings(&data, &[]);
    let finding = leaked
        .iter()
        .find(|f| f["type"] == "CredentialAccess:Repository/LeakedKey")
        .unwrap_or_else(|| panic!("{leaked:?}"));
    assert_eq!(finding["severity"], "High");
    let description = finding["description"].as_str().unwrap();
    assert!(
        description.contains(".env:2") && description.contains(&live.0),
        "{description}"
    );
    assert!(!description.contains(&live.1));
    let trail = trail_text(&data);
    assert!(trail.contains("\"eventName\":\"RevokeLeakedAccessKey\""));
    assert!(!trail.contains(&live.1), "the secret is not in the trail");
    // Scanned again, the key is inactive.
    let report = json_of(&scan(&[
        tree.join(".env").to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--output",
        "json",
    ]));
    assert_eq!(report["findings"][0]["verification"], "inactive");
    // A temporary key found with its session token: the sessions of its
    // user are revoked, and the leaked session fails right after.
    let session = admin_cli(&lk, &["sts", "get-session-token"])["Credentials"].clone();
    let (sid, ssecret, stoken) = (
        session["AccessKeyId"].as_str().unwrap().to_owned(),
        session["SecretAccessKey"].as_str().unwrap().to_owned(),
        session["SessionToken"].as_str().unwrap().to_owned(),
    );
    let session_cli = || {
        aws_cli()
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_CONFIG_FILE", data.join("aws.config"))
            .env("AWS_CA_BUNDLE", data.join("ca.pem"))
            .env("AWS_ACCESS_KEY_ID", &sid)
            .env("AWS_SECRET_ACCESS_KEY", &ssecret)
            .env("AWS_SESSION_TOKEN", &stoken)
            .args(["sts", "get-caller-identity"])
            .output()
            .unwrap()
    };
    assert!(session_cli().status.success());
    write(
        &tree,
        "session.env",
        // A stale token nearer the key than its own: the service tells
        // which one opens.
        &format!(
            "AWS_ACCESS_KEY_ID={sid}\n# old: AWS_SESSION_TOKEN=AQAAAAE{}\n\
             AWS_SECRET_ACCESS_KEY={ssecret}\nAWS_SESSION_TOKEN={stoken}\n",
            "x9Kq_-Zb".repeat(20)
        ),
    );
    // One second on: a revocation reaches sessions issued before it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let report = json_of(&revoke_scan(&tree.join("session.env"), None));
    let pair = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["detector"] == "aws-access-key")
        .unwrap();
    assert_eq!(pair["revoked"], true, "{report}");
    assert!(!String::from_utf8_lossy(&report.to_string().into_bytes()).contains(&stoken));
    let refused = session_cli();
    assert!(!refused.status.success(), "the leaked session is revoked");
    assert!(
        common::findings(&data, &[])
            .iter()
            .any(|f| f["description"].as_str().unwrap().contains(&sid)),
        "a finding names the temporary key"
    );
    std::fs::remove_file(tree.join("session.env")).unwrap();

    // A role's session (AssumeRole through the stock AWS CLI) found in a
    // file: checked with the cluster keys, without a call; its token
    // alone names its key; the same key and token with another secret is
    // nothing that works.
    let assumer = user_with_policy(
        &lk,
        "assumer",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#,
    );
    let assumer_arn = admin_cli(&lk, &["iam", "get-user", "--user-name", "assumer"])["User"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{assumer_arn}"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let role_arn = admin_cli(
        &lk,
        &[
            "iam",
            "create-role",
            "--role-name",
            "deployer",
            "--assume-role-policy-document",
            &trust,
        ],
    )["Role"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_cli = |creds: &[(String, String)], args: &[&str]| {
        aws_cli()
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_CONFIG_FILE", data.join("aws.config"))
            .env("AWS_CA_BUNDLE", data.join("ca.pem"))
            .envs(creds.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .output()
            .unwrap()
    };
    let assume = |name: &str| -> Value {
        let out = as_cli(
            &assumer,
            &[
                "sts",
                "assume-role",
                "--role-arn",
                &role_arn,
                "--role-session-name",
                name,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let env_of = |v: &Value| common::api::Creds::from_sts(&v["Credentials"]).env_vars();
    let assumed = assume("leaky");
    let field = |name: &str| assumed["Credentials"][name].as_str().unwrap().to_owned();
    let (rid, rsecret, rtoken) = (
        field("AccessKeyId"),
        field("SecretAccessKey"),
        field("SessionToken"),
    );
    let role_session = env_of(&assumed);
    let role_works = || {
        as_cli(&role_session, &["sts", "get-caller-identity"])
            .status
            .success()
    };
    assert!(role_works());
    let sessions = root.path().join("sessions");
    write(
        &sessions,
        "role.json",
        &format!(
            "{{\"AccessKeyId\": \"{rid}\",\n \"SecretAccessKey\": \"{rsecret}\",\n \"SessionToken\": \"{rtoken}\"}}\n"
        ),
    );
    write(
        &sessions,
        "token.txt",
        &format!("AWS_SESSION_TOKEN={rtoken}\n"),
    );
    write(
        &sessions,
        "wrong.env",
        &format!(
            "AWS_ACCESS_KEY_ID={rid}\nAWS_SECRET_ACCESS_KEY={}\nAWS_SESSION_TOKEN={rtoken}\n",
            random.1
        ),
    );
    let session_report = || {
        json_of(&scan(&[
            sessions.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--output",
            "json",
        ]))
    };
    let report = session_report();
    let finding = |report: &Value, file: &str, detector: &str| -> Value {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(file) && f["detector"] == detector)
            .unwrap_or_else(|| panic!("{detector} in {file}: {report}"))
            .clone()
    };
    let pair = finding(&report, "role.json", "aws-access-key");
    assert_eq!(
        (&pair["verification"], &pair["severity"]),
        (&json!("live"), &json!("critical")),
        "{report}"
    );
    let alone = finding(&report, "token.txt", "session-token");
    assert_eq!(alone["verification"], "live", "{report}");
    assert_eq!(
        alone["accessKeyId"],
        rid.as_str(),
        "the token names its key"
    );
    assert_eq!(
        finding(&report, "wrong.env", "aws-access-key")["verification"],
        "unknown"
    );
    assert!(!report.to_string().contains(&rtoken) && !report.to_string().contains(&rsecret));
    // --revoke on the token alone, through the token service only (no
    // data directory: the service opens the token to find its key):
    // the role's sessions are revoked, and the leaked one fails at once.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // `--revoke` of a file through the token service only, as the
    // administrator.
    let revoke_remotely = |file: &Path| {
        latchkey(&[
            "scan",
            file.to_str().unwrap(),
            "--revoke",
            "--endpoint-url",
            &format!("https://localhost:{}", api.rsplit(':').next().unwrap()),
            "--ca-bundle",
            data.join("ca.pem").to_str().unwrap(),
            "--output",
            "json",
        ])
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            data.join("admin.credentials"),
        )
        .env("AWS_CONFIG_FILE", data.join("aws.config"))
        .output()
        .unwrap()
    };
    let out = revoke_remotely(&sessions.join("token.txt"));
    let report = json_of(&out);
    assert_eq!(report["findings"][0]["revoked"], true, "{report}");
    assert_eq!(report["findings"][0]["accessKeyId"], rid.as_str());
    assert!(!role_works(), "the leaked role session is revoked");
    assert!(
        common::findings(&data, &[]).iter().any(|f| {
            let d = f["description"].as_str().unwrap();
            d.contains(&rid) && d.contains("role/deployer") && d.contains("token.txt:1")
        }),
        "a finding names the role's key and where its token was"
    );
    // A session over already is not revoked again: doing so would end
    // only the role's live sessions, which did not leak. (A second on
    // from the revocation, which reaches sessions issued in its second.)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let fresh_env = env_of(&assume("fresh"));
    let report = json_of(&revoke_scan(&sessions.join("role.json"), None));
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["revoked"] != true),
        "{report}"
    );
    assert!(
        as_cli(&fresh_env, &["sts", "get-caller-identity"])
            .status
            .success(),
        "the role's new session still works"
    );
    // A role deleted and made again is another role: a session of the
    // first one is over, and revoking "its" role would end the new one's.
    let before = assume("before");
    admin_cli(&lk, &["iam", "delete-role", "--role-name", "deployer"]);
    admin_cli(
        &lk,
        &[
            "iam",
            "create-role",
            "--role-name",
            "deployer",
            "--assume-role-policy-document",
            &trust,
        ],
    );
    let after = assume("after");
    write(
        &sessions,
        "before.env",
        &format!(
            "aws_session_token = {}\n",
            before["Credentials"]["SessionToken"].as_str().unwrap()
        ),
    );
    let out = revoke_remotely(&sessions.join("before.env"));
    let report = json_of(&out);
    assert_ne!(report["findings"][0]["revoked"], true, "{report}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no longer valid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        as_cli(&env_of(&after), &["sts", "get-caller-identity"])
            .status
            .success(),
        "the new role's session still works"
    );
    std::fs::remove_file(sessions.join("before.env")).unwrap();
    // Scanned again, the session shows revoked.
    let report = session_report();
    assert_eq!(
        finding(&report, "role.json", "aws-access-key")["verification"],
        "revoked",
        "{report}"
    );
    assert_eq!(
        finding(&report, "token.txt", "session-token")["verification"],
        "revoked"
    );

    // A file's name is anyone's text: a newline in it revokes still.
    admin_cli(&lk, &["iam", "create-user", "--user-name", "ci3"]);
    let named = new_key(&data, "ci3");
    let odd = tree.join("odd\nname.env");
    std::fs::write(&odd, format!("id={}\nkey={}\n", named.0, named.1)).unwrap();
    let out = revoke_scan(&odd, None);
    assert_eq!(json_of(&out)["findings"][0]["revoked"], true);
    std::fs::remove_file(&odd).unwrap();

    // Who may revoke: a user without iam:UpdateAccessKey on the owner may not.
    let nobody = user_with_policy(
        &lk,
        "nobody",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"*"}]}"#,
    );
    admin_cli(&lk, &["iam", "create-user", "--user-name", "ci2"]);
    let other = new_key(&data, "ci2");
    write(
        &tree,
        "other.env",
        &format!("id={}\nkey={}\n", other.0, other.1),
    );
    let out = revoke_scan(&tree.join("other.env"), Some(&nobody));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AccessDenied"));
    // Verified by the token service instead of the store (--endpoint-url,
    // no data directory): a call signed with the found pair says live;
    // the same id with a wrong secret, unknown. No operator credentials
    // are needed for that.
    let endpoint = format!("https://localhost:{}", api.rsplit(':').next().unwrap());
    write(
        &tree,
        "wrong.env",
        &format!("id={}\nkey={}\n", other.0, random.1),
    );
    // From outside, an inactive key looks like one never issued.
    write(
        &tree,
        "inactive.env",
        &format!("id={}\nkey={}\n", inactive.0, inactive.1),
    );
    let remote = latchkey(&[
        "scan",
        tree.join("other.env").to_str().unwrap(),
        tree.join("wrong.env").to_str().unwrap(),
        tree.join("inactive.env").to_str().unwrap(),
        "--endpoint-url",
        &endpoint,
        "--ca-bundle",
        data.join("ca.pem").to_str().unwrap(),
        "--output",
        "json",
    ])
    .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    .env("AWS_CONFIG_FILE", "/dev/null")
    .output()
    .unwrap();
    let report = json_of(&remote);
    let status_of = |name: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(name))
            .unwrap()["verification"]
            .clone()
    };
    assert_eq!(status_of("other.env"), "live", "{report}");
    assert_eq!(status_of("wrong.env"), "unknown", "{report}");
    assert_eq!(status_of("inactive.env"), "unknown", "{report}");
    std::fs::remove_file(tree.join("inactive.env")).unwrap();
    std::fs::remove_file(tree.join("other.env")).unwrap();
    std::fs::remove_file(tree.join("wrong.env")).unwrap();

    // A secret that is not the key's own: nothing that works leaked.
    write(
        &tree,
        "wrong.txt",
        &format!("id={} secret={}\n", live.0, random.1),
    );
    let report = json_of(&scan(&[
        tree.join("wrong.txt").to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--output",
        "json",
    ]));
    assert_eq!(report["findings"][0]["verification"], "unknown", "{report}");
    std::fs::remove_file(tree.join("wrong.txt")).unwrap();
    // A decoy id nearer the secret than its own key: the store says whose
    // secret it is, and the finding names that key, live.
    write(
        &tree,
        "decoy.ini",
        &format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n# was AKIAQ3EXT7HG2N5PLM4R\n",
            other.0, other.1
        ),
    );
    let report = json_of(&scan(&[
        tree.join("decoy.ini").to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--output",
        "json",
    ]));
    let pair = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["severity"] == "critical")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(
        (&pair["accessKeyId"], &pair["verification"]),
        (&json!(other.0), &json!("live")),
        "{report}"
    );
    std::fs::remove_file(tree.join("decoy.ini")).unwrap();

    // Text for people: file:line:column, detector, severity, masked, status.
    let out = scan(&[tree.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains(".env")).unwrap();
    assert!(
        line.contains(":2:") && line.contains("aws-access-key") && line.contains("inactive"),
        "{line}"
    );
    assert!(!text.contains(live.1.as_str()));

    // SARIF 2.1.0: a rule per detector, a result per finding, located.
    let out = scan(&[
        tree.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--output",
        "sarif",
    ]);
    let sarif = json_of(&out);
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), findings.len());
    for r in results {
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], r["ruleId"]);
        let region = &r["locations"][0]["physicalLocation"]["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1);
        assert!(r["partialFingerprints"]["latchkeyFinding/v2"].is_string());
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains(live.1.as_str()));
    // For GitHub code scanning: a security-severity per rule, paths
    // relative to %SRCROOT% (given as a file:// URI), commits and keys as
    // properties; no made-up help address.
    for rule in rules {
        let score: f64 = rule["properties"]["security-severity"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((0.1..=10.0).contains(&score), "{rule}");
        assert!(rule["help"]["text"].as_str().is_some_and(|t| !t.is_empty()));
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains("example.invalid"));
    assert!(
        run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("file:///")
    );
    let located = &results[0]["locations"][0]["physicalLocation"]["artifactLocation"];
    assert_eq!(located["uriBaseId"], "%SRCROOT%");
    validate_sarif(&out.stdout);
    // A name with a space and a `#` is one path, percent-encoded.
    write(&tree, "odd dir/a#b.env", "PGPASSWORD=Sp4ce-Name9\n");
    let out = latchkey(&["scan", "odd dir", "--no-verify", "--output", "sarif"])
        .current_dir(&tree)
        .output()
        .unwrap();
    let sarif = json_of(&out);
    let location = &sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "odd%20dir/a%23b.env");
    validate_sarif(&out.stdout);
    std::fs::remove_dir_all(tree.join("odd dir")).unwrap();

    // A baseline accepts today's findings; they stay accepted when their
    // lines move, and a new leak is still reported.
    let baseline = root.path().join("baseline.json");
    let out = scan(&[
        tree.to_str().unwrap(),
        "--no-verify",
        "--baseline",
        baseline.to_str().unwrap(),
        "--update-baseline",
    ]);
    assert_eq!(out.status.code(), Some(0));
    // Its paths are the tree's own (relative to the scanned directory),
    // whatever directory the scan ran from.
    let accepted = std::fs::read_to_string(&baseline).unwrap();
    assert!(
        accepted.contains("\"config/old.ini\"") && accepted.contains("\"deploy/run.sh\""),
        "{accepted}"
    );
    let env_text = std::fs::read_to_string(tree.join(".env")).unwrap();
    write(&tree, ".env", &format!("# moved down\n\n{env_text}"));
    let args = [
        tree.to_str().unwrap(),
        "--no-verify",
        "--baseline",
        baseline.to_str().unwrap(),
        "--output",
        "json",
    ];
    let out = scan(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json_of(&out)["findings"], json!([]));
    write(&tree, "new.cfg", "db_password = \"Xk9mQ2vL8pR4zT7w\"\n");
    let out = scan(&args);
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    assert_eq!(report["findings"][0]["detector"], "generic-secret");
    // --fail-on: a medium finding does not fail a scan that fails on high.
    let mut high = args.to_vec();
    high.extend(["--fail-on", "high"]);
    assert_eq!(scan(&high).status.code(), Some(0));

    // Standard input.
    let mut child = latchkey(&["scan", "--stdin", "--no-verify", "--output", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("x\nmysql://root:{}@db/shop\n", random.1).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = json_of(&out);
    assert_eq!(report["findings"][0]["path"], "-");
    assert_eq!(report["findings"][0]["detector"], "database-url");
    assert_eq!(report["findings"][0]["line"], 2);
    assert_eq!(out.status.code(), Some(1));

    // Bad input is a clear error.
    let out = scan(&[root.path().join("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "an error, not a finding");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
    let out = scan(&["--fail-on", "severe", tree.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    drop(lk);
}

fn git(repo: &Path, args: &[&str]) -> Output {
    std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap()
}

fn git_ok(repo: &Path, args: &[&str]) {
    let out = git(repo, args);
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `git add .` and a commit.
fn commit_all(repo: &Path, message: &str) {
    git_ok(repo, &["add", "."]);
    git_ok(repo, &["commit", "-q", "-m", message]);
}

/// `latchkey scan install-hook REPO EXTRA...`.
fn install_hook(repo: &Path, extra: &[&str]) -> Output {
    latchkey(&["scan", "install-hook", repo.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

/// (detector, path, commit) of every finding of a JSON report.
fn places(report: &Value) -> Vec<(String, String, Option<String>)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["detector"].as_str().unwrap().to_owned(),
                f["path"].as_str().unwrap().to_owned(),
                f["commit"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn history_staged_changes_and_the_pre_commit_hook() {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git_ok(&repo, &["init", "-q", "-b", "main"]);
    // In history only: committed, then deleted.
    write(
        &repo,
        "old.env",
        "DATABASE_URL=postgres://app:H1story-Pw7@db/orders\n",
    );
    commit_all(&repo, "add env");
    let leak_commit = String::from_utf8(git(&repo, &["rev-parse", "HEAD"]).stdout).unwrap();
    git_ok(&repo, &["rm", "-q", "old.env"]);
    write(&repo, "README", "nothing here\n");
    commit_all(&repo, "remove env");
    // The same secret again on a branch: one blob, reported once.
    git_ok(&repo, &["checkout", "-q", "-b", "other"]);
    write(
        &repo,
        "again.env",
        "DATABASE_URL=postgres://app:H1story-Pw7@db/orders\n",
    );
    commit_all(&repo, "again");
    git_ok(&repo, &["checkout", "-q", "main"]);
    // Excluded by the repository's own settings, in history too.
    write(
        &repo,
        ".latchkey-scan.toml",
        "exclude = [\"third_party/**\"]\n",
    );
    write(&repo, "third_party/x.env", "PGPASSWORD=Th1rdParty-Pw\n");
    commit_all(&repo, "vendored");
    // Tracked although ignored (`git add -f`): committed, so scanned.
    write(&repo, ".gitignore", "*.secret\n");
    write(&repo, "prod.secret", "PGPASSWORD=F0rced-Add9\n");
    git_ok(&repo, &["add", ".gitignore"]);
    git_ok(&repo, &["add", "-f", "prod.secret"]);
    git_ok(&repo, &["commit", "-q", "-m", "forced"]);
    // A tag straight at a blob: in no commit, still in the repository.
    write(
        &root.path().join("loose"),
        "blob.txt",
        "mysql://root:T4gged-Blob7@db/shop\n",
    );
    let blob = git(
        &repo,
        &[
            "hash-object",
            "-w",
            root.path().join("loose/blob.txt").to_str().unwrap(),
        ],
    );
    let blob = String::from_utf8(blob.stdout).unwrap();
    git_ok(&repo, &["tag", "loose-blob", blob.trim()]);
    // An access key with its secret, in history only.
    write(
        &repo,
        "deploy/keys.sh",
        "export AWS_ACCESS_KEY_ID=AKIAQ3ZT7VN2K4XW5PLR\n\
         export AWS_SECRET_ACCESS_KEY=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\n",
    );
    commit_all(&repo, "keys");
    git_ok(&repo, &["rm", "-q", "deploy/keys.sh"]);
    commit_all(&repo, "no keys");
    // In the working tree only (untracked), and staged only.
    write(&repo, "local.sh", "export MYSQL_PWD='W0rkTree-Pw3'\n");
    write(&repo, "staged.py", "password = \"St4ged-Xq9mZ2vK\"\n");
    git_ok(&repo, &["add", "staged.py"]);

    let scan_json = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--no-verify", "--output", "json"]);
        json_of(&scan(&all))
    };
    let history = scan_json(&["--git", repo.to_str().unwrap()]);
    let found = places(&history);
    let old_env: Vec<_> = found
        .iter()
        .filter(|f| f.1 == "old.env" || f.1 == "again.env")
        .collect();
    assert_eq!(old_env.len(), 1, "one blob, once: {found:?}");
    assert_eq!(old_env[0].0, "database-url");
    assert_eq!(old_env[0].1, "old.env");
    assert_eq!(old_env[0].2.as_deref(), Some(leak_commit.trim()));
    assert!(
        found.iter().any(|f| f.1 == "refs/tags/loose-blob"),
        "a tagged blob: {found:?}"
    );
    assert!(found.iter().any(|f| f.1 == "prod.secret"), "{found:?}");
    let key = history["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "deploy/keys.sh")
        .unwrap_or_else(|| panic!("the key in history: {history}"));
    assert_eq!(key["detector"], "aws-access-key");
    assert_eq!(key["severity"], "critical");
    assert_eq!(key["accessKeyId"], "AKIAQ3ZT7VN2K4XW5PLR");
    // In text: where, when, which key, and the secret masked.
    let out = scan(&["--git", repo.to_str().unwrap(), "--no-verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("deploy/keys.sh:2:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(" @")
            && line.contains("Z  aws-access-key  critical  AKIAQ3ZT7VN2K4XW5PLR tZ…4o"),
        "commit, author date, key id and masked secret: {line}"
    );
    assert!(!text.contains("tZ8pQ2mV9xK4bN7cR1wE5yH3jL6fG0aS2dT8uI4o"));
    assert!(
        history["findings"][0]["authorDate"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let tree = places(&scan_json(&[repo.to_str().unwrap()]));
    let paths: Vec<&str> = tree.iter().map(|f| f.1.as_str()).collect();
    assert!(paths.iter().any(|p| p.ends_with("local.sh")), "{paths:?}");
    assert!(paths.iter().all(|p| !p.ends_with("old.env")), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.ends_with("prod.secret")),
        "tracked although ignored: {paths:?}"
    );
    // A file name with an escape sequence reaches the terminal escaped,
    // and so do the ends of a masked value.
    let evil = repo.join("e\x1b[2Kvil.env");
    std::fs::write(
        &evil,
        format!(
            "PGPASSWORD=Esc4ped-Name\ndb_password = \"\x1b[3A{}\x1b[0J\"\n",
            "Xk9mQ2vL8pR4zT7w".repeat(4)
        ),
    )
    .unwrap();
    let out = scan(&[evil.to_str().unwrap(), "--no-verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("e\\u{1b}[2Kvil.env") && !text.contains('\x1b'),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");
    std::fs::remove_file(&evil).unwrap();
    let staged = places(&scan_json(&["--staged", repo.to_str().unwrap()]));
    assert_eq!(
        staged,
        [("generic-secret".to_owned(), "staged.py".to_owned(), None)]
    );

    // The hook refuses the commit, names the file, and lets a clean one through.
    let out = install_hook(&repo, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = install_hook(&repo, &[]);
    assert_eq!(out.status.code(), Some(2), "an existing hook is kept");
    // By default the hook refuses what `latchkey scan` fails on (low and
    // up): the generic secret (medium) is refused...
    let out = git(&repo, &["commit", "-q", "-m", "generic is medium"]);
    assert!(!out.status.success(), "a medium finding refuses the commit");
    // ...and with --fail-on high it is let through.
    let out = install_hook(&repo, &["--fail-on", "high", "--force"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("repo: local")
            && said.contains("entry: latchkey scan --staged --fail-on high"),
        "the pre-commit framework's snippet: {said}"
    );
    git_ok(&repo, &["commit", "-q", "-m", "generic is medium"]);
    // Staged changes report the lines they add, not what the file held
    // already (prod.secret's committed password).
    let secret_file = std::fs::read_to_string(repo.join("prod.secret")).unwrap();
    write(&repo, "prod.secret", &format!("{secret_file}# a comment\n"));
    git_ok(&repo, &["add", "prod.secret"]);
    assert!(places(&scan_json(&["--staged", repo.to_str().unwrap()])).is_empty());
    write(
        &repo,
        "prod.secret",
        &format!("# top\n{secret_file}# a comment\nMYSQL_PWD=N3wLine-Pw42\n"),
    );
    git_ok(&repo, &["add", "prod.secret"]);
    let report = scan_json(&["--staged", repo.to_str().unwrap()]);
    assert_eq!(
        places(&report),
        [("env-password".to_owned(), "prod.secret".to_owned(), None)]
    );
    assert_eq!(report["findings"][0]["line"], 4);
    git_ok(&repo, &["reset", "-q", "prod.secret"]);
    git_ok(&repo, &["checkout", "-q", "prod.secret"]);
    // `git commit -a` stages into a temporary index (GIT_INDEX_FILE) that
    // the hook reads: a tracked file changed, not added, is refused too.
    write(
        &repo,
        "prod.secret",
        &format!(
            "{secret_file}AWS_ACCESS_KEY_ID=AKIAQ3ZT7VN2K4XW5PLR\nAWS_SECRET_ACCESS_KEY=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\n"
        ),
    );
    let out = git(&repo, &["commit", "-q", "-am", "keys with -a"]);
    assert!(
        !out.status.success(),
        "the hook refused `git commit -a`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = git(
        &repo,
        &["commit", "-q", "prod.secret", "-m", "keys by path"],
    );
    assert!(!out.status.success(), "and `git commit PATH`");
    git_ok(&repo, &["checkout", "-q", "prod.secret"]);
    // A secret committed bare (no finding alone), its id filled in by the
    // next commit: the pair is refused there.
    write(
        &repo,
        "app.env",
        "AWS_ACCESS_KEY_ID=\nAWS_SK=tZ8pQ2mV9xK4bN7cR1wE5yH3jL6fG0aS2dT8uI4o\n",
    );
    git_ok(&repo, &["add", "app.env"]);
    git_ok(&repo, &["commit", "-q", "-m", "bare secret"]);
    write(
        &repo,
        "app.env",
        "AWS_ACCESS_KEY_ID=AKIAQ3ZT7VN2K4XW5PLR\nAWS_SK=tZ8pQ2mV9xK4bN7cR1wE5yH3jL6fG0aS2dT8uI4o\n",
    );
    let out = git(&repo, &["commit", "-q", "-am", "its id"]);
    assert!(!out.status.success(), "the id's line makes the pair");
    git_ok(&repo, &["checkout", "-q", "app.env"]);
    // A merge commit runs pre-merge-commit, installed too.
    git_ok(&repo, &["checkout", "-q", "-b", "leaky"]);
    write(
        &repo,
        "merged.env",
        "AWS_ACCESS_KEY_ID=AKIAQ3ZT7VN2K4XW5PLR\nAWS_SECRET_ACCESS_KEY=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\n",
    );
    git_ok(&repo, &["add", "merged.env"]);
    git_ok(
        &repo,
        &["commit", "-q", "--no-verify", "-m", "skipped the hook"],
    );
    git_ok(&repo, &["checkout", "-q", "main"]);
    let out = git(&repo, &["merge", "-q", "--no-ff", "-m", "merge", "leaky"]);
    assert!(!out.status.success(), "the merge commit is refused");
    git_ok(&repo, &["merge", "--abort"]);
    // ...a database URL with its password (high) does, naming the file
    // and not the password.
    write(&repo, "db.txt", "mysql://root:Zq8pL2mKx7@db/shop\n");
    git_ok(&repo, &["add", "db.txt"]);
    let out = git(&repo, &["commit", "-q", "-m", "url"]);
    assert!(!out.status.success(), "the hook refused the commit");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("db.txt") && said.contains("database-url"),
        "{said}"
    );
    assert!(
        !said.contains("Zq8pL2mKx7"),
        "the secret is not shown: {said}"
    );
    git_ok(&repo, &["rm", "-q", "--cached", "db.txt"]);
    // Installed where git runs hooks: core.hooksPath (husky and friends)...
    let husky = root.path().join("husky");
    std::fs::create_dir_all(&husky).unwrap();
    git_ok(&husky, &["init", "-q", "-b", "main"]);
    git_ok(&husky, &["config", "core.hooksPath", ".husky"]);
    let out = install_hook(&husky, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(husky.join(".husky/pre-commit").exists());
    write(&husky, "db.txt", "mysql://root:Zq8pL2mKx7@db/shop\n");
    git_ok(&husky, &["add", "db.txt"]);
    assert!(!git(&husky, &["commit", "-q", "-m", "url"]).status.success());
    // ...and a linked worktree, whose hooks are the repository's.
    let worktree = root.path().join("wt");
    git_ok(
        &repo,
        &["worktree", "add", "-q", worktree.to_str().unwrap()],
    );
    let out = install_hook(&worktree, &["--force"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("repo/.git/hooks/pre-commit"),
        "installed for the repository, not inside .git/worktrees: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    write(&worktree, "db.txt", "mysql://root:Zq8pL2mKx7@db/shop\n");
    git_ok(&worktree, &["add", "db.txt"]);
    assert!(
        !git(&worktree, &["commit", "-q", "-m", "url"])
            .status
            .success(),
        "the repository's hook runs in its worktree"
    );
    write(&repo, "clean.txt", "hello\n");
    git_ok(&repo, &["add", "clean.txt"]);
    git_ok(&repo, &["commit", "-q", "-m", "clean"]);

    // The baseline lives at the repository's root, and its fingerprints
    // hold from any directory the scan runs in.
    let scan_in = |dir: &Path, args: &[&str]| {
        let mut all = vec!["scan", "--no-verify"];
        all.extend(args);
        latchkey(&all).current_dir(dir).output().unwrap()
    };
    let out = scan_in(&repo, &[".", "--update-baseline"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let baseline = repo.join(".latchkey-scan-baseline.json");
    let entries = |path: &Path| -> Vec<String> {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_owned())
            .collect()
    };
    let accepted = entries(&baseline);
    assert!(accepted.iter().any(|p| p == "local.sh"), "{accepted:?}");
    let out = scan_in(root.path(), &["repo", "--output", "json"]);
    assert_eq!(
        json_of(&out)["findings"],
        json!([]),
        "the repository's baseline, from its parent directory"
    );
    assert_eq!(out.status.code(), Some(0));
    // Updated from a part of the tree, it keeps the rest's entries.
    write(&repo, "sub/new.env", "PGPASSWORD=Sub-Dir-Pw77\n");
    let out = scan_in(root.path(), &["repo/sub", "--update-baseline"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kept from files this scan did not cover"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let updated = entries(&baseline);
    assert!(updated.contains(&"sub/new.env".to_owned()), "{updated:?}");
    assert!(updated.contains(&"local.sh".to_owned()), "{updated:?}");
    assert_eq!(scan_in(&repo.join("sub"), &[".."]).status.code(), Some(0));
    // Updated over the whole tree, the entries of a fixed file go.
    std::fs::remove_file(repo.join("local.sh")).unwrap();
    assert!(scan_in(&repo, &["--update-baseline"]).status.success());
    assert!(!entries(&baseline).contains(&"local.sh".to_owned()));
}

#[test]
fn large_and_binary_files_are_skipped_unless_asked_and_large_ones_streamed() {
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().join("t");
    // 20 MiB of text, beyond the 10 MiB default limit and read in pieces
    // (over 16 MiB; pieces cut across pairs are the scan crate's unit
    // tests): secrets at its start, past the first piece, and at its end,
    // each on its line.
    let filler = "    the order total is computed from items and a receipt is sent\n";
    let mut big = String::from("PGPASSWORD=F1rst-Line-Pw\n");
    let mut lines = 1;
    let mut line_of_pair = 0;
    while big.len() < 20 << 20 {
        if line_of_pair == 0 && big.len() > 12 << 20 {
            big.push_str("AWS_ACCESS_KEY_ID=AKIAQ3ZT7VN2K4XW5PLR\n");
            big.push_str(&filler.repeat(2));
            big.push_str("AWS_SECRET_ACCESS_KEY=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\n");
            lines += 4;
            line_of_pair = lines;
        } else {
            big.push_str(filler);
            lines += 1;
        }
    }
    big.push_str("url = mysql://root:L4st-Line-Pw@db/x\n");
    lines += 1;
    write(&tree, "big.log", &big);
    let mut binary = vec![0u8, 1, 2];
    binary.extend(b"\nPGPASSWORD=B1nary-Pw77\n");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("blob.bin"), &binary).unwrap();
    write(&tree, "small.env", "PGPASSWORD=Sm4ll-File-Pw\n");
    // ripgrep's `.ignore` does not hide files from a secret scan.
    write(&tree, ".ignore", "config/\n");
    write(&tree, "config/prod.env", "PGPASSWORD=Ign0red-By-Rg\n");

    let run = |extra: &[&str]| {
        let mut args = vec![tree.to_str().unwrap(), "--no-verify", "--output", "json"];
        args.extend(extra);
        json_of(&scan(&args))
    };
    let lines_of = |report: &Value, file: &str| -> Vec<u64> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["path"].as_str().unwrap().ends_with(file))
            .map(|f| f["line"].as_u64().unwrap())
            .collect()
    };
    let report = run(&[]);
    assert_eq!(report["skipped"]["large"], 1, "{report}");
    assert_eq!(report["skipped"]["binary"], 1);
    assert_eq!(lines_of(&report, "small.env"), [1]);
    assert_eq!(lines_of(&report, "prod.env"), [1], "{report}");
    assert!(lines_of(&report, "big.log").is_empty());
    // What was skipped is said on stderr too.
    let out = scan(&[tree.to_str().unwrap(), "--no-verify"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("1 skipped as large") && said.contains("1 skipped as binary"),
        "{said}"
    );
    let report = run(&["--include-large", "--include-binary"]);
    assert_eq!(
        lines_of(&report, "big.log"),
        [1, line_of_pair as u64, lines as u64],
        "{report}"
    );
    let pair = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["detector"] == "aws-access-key")
        .unwrap();
    assert_eq!(
        pair["accessKeyId"], "AKIAQ3ZT7VN2K4XW5PLR",
        "paired past the first piece"
    );
    assert_eq!(lines_of(&report, "blob.bin"), [2]);
    assert!(report["bytesScanned"].as_u64().unwrap() as usize > big.len());
    // --max-file-size lowers the limit: the small files are skipped too.
    let report = run(&["--max-file-size", "10"]);
    assert_eq!(report["skipped"]["large"], 4);
    assert_eq!(report["findings"], json!([]));
}
