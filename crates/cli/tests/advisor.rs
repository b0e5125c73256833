#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The access advisor through the real `latchkey serve`: principals that
//! use the API (stock AWS CLI), a role session, and a PostgreSQL and a
//! MariaDB database through the gateway (botocore's token; psql and the
//! mariadb client) with statement policy on;
//! then what IAM's calls report (`ListPoliciesGrantingServiceAccess`,
//! `GetAccessKeyLastUsed`, `RoleLastUsed`,
//! `GenerateServiceLastAccessedDetails` for a user, a group and a managed
//! policy, the credential report read by Python's `csv`), who may ask, and
//! `latchkey advisor last-accessed|unused|rebuild` down to database users
//! and tables; then a policy generated from what one principal did, which
//! validates, simulates as expected and runs the workload for a new user.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::sql::*;
use common::*;
use serde_json::Value;

const ALICE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"rds-db:connect","Resource":[
    "arn:aws:rds-db:*:*:dbuser:*/app","arn:aws:rds-db:*:*:dbuser:*/admin"]},
  {"Effect":"Allow","Action":"sql:Select","Resource":[
    "arn:aws:sql:*:*:table/*/orders/public/orders","arn:aws:sql:*:*:table/*/orders/public/cards"]},
  {"Effect":"Allow","Action":"sql:Select","Resource":"arn:aws:sql:*:*:table/*/shop/shop/items"},
  {"Effect":"Allow","Action":"iam:ListUserTags","Resource":[
    "arn:aws:iam::*:user/alice","arn:aws:iam::*:user/bob"]},
  {"Effect":"Allow","Action":["iam:GetUser","sts:AssumeRole","kms:Decrypt"],"Resource":"*"}]}"#;

/// Runs the stock AWS CLI with `creds` against `lk`; (success, stdout JSON
/// or stderr text).
fn aws_as(lk: &Latchkey, creds: &[(String, String)], args: &[&str]) -> (bool, String) {
    let mut cmd = admin_aws(&lk.data);
    cmd.env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .envs(creds.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(args);
    let out = cmd.output().unwrap();
    let text = if out.status.success() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    (out.status.success(), text)
}

fn advisor(data: &Path, args: &[&str]) -> Value {
    let mut all = vec!["advisor"];
    all.extend_from_slice(args);
    advisor_cmd(data, &all)
}

/// `latchkey ARGS --data-dir DATA --output json`: its JSON.
fn advisor_cmd(data: &Path, args: &[&str]) -> Value {
    let out = latchkey(args)
        .args(["--data-dir", data.to_str().unwrap(), "--output", "json"])
        .output()
        .unwrap();
    serde_json::from_str(&stdout_ok(&out)).unwrap()
}

/// Polls `f` until it gives `Some` (the advisor is written once per batch
/// of audit records), or fails after 10 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The permission rows of `advisor last-accessed`, as (action, the
/// resource's last part, used?).
fn permission_rows(report: &Value) -> Vec<(String, String, bool)> {
    report["Permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let resource = p["Resource"].as_str().unwrap();
            (
                p["Action"].as_str().unwrap().to_owned(),
                resource.rsplit([':', '/']).next().unwrap().to_owned(),
                !p["LastAccessed"].is_null(),
            )
        })
        .collect()
}

#[test]
fn the_advisor_reports_what_each_principal_used_down_to_tables() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    orders_sql(&pg, ORDERS_AND_CARDS);
    let (data, api) = init_latchkey(root.path(), &[]);
    common::register_db(
        &data,
        &[
            "--name",
            "orders",
            "--endpoint",
            "localhost",
            "--upstream",
            &format!("127.0.0.1:{}", pg.port),
            "--statement-policy",
            "enforce",
        ],
    );
    set_db_password(&data, "orders", "app", "app-secret");
    let my = MariaDb::start(root.path());
    my.sql(
        "CREATE DATABASE shop;
         CREATE USER app@'%' IDENTIFIED BY 'app-secret';
         GRANT ALL ON shop.* TO app@'%';
         CREATE TABLE shop.items (id int PRIMARY KEY, price int);
         INSERT INTO shop.items VALUES (1, 7);",
    );
    common::register_db(
        &data,
        &[
            "--name",
            "shop",
            "--engine",
            "mysql",
            "--endpoint",
            "localhost",
            "--upstream",
            &format!("127.0.0.1:{}", my.port),
            "--upstream-tls",
            "disable",
            "--statement-policy",
            "enforce",
        ],
    );
    set_db_password(&data, "shop", "app", "app-secret");
    let lk = serve_latchkey(root.path(), &data, &api, &[]);
    let account = admin_cli(&lk, &["sts", "get-caller-identity"])["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    let arn = |kind: &str, name: &str| format!("arn:aws:iam::{account}:{kind}/{name}");

    // alice uses some of what she is granted; bob, with the same policy,
    // uses nothing; both are in one group.
    let alice = user_with_policy(&lk, "alice", ALICE_POLICY);
    let bob = user_with_policy(&lk, "bob", ALICE_POLICY);
    // carol's key is never used at all.
    user_with_policy(&lk, "carol", ALICE_POLICY);
    admin_cli(&lk, &["iam", "create-group", "--group-name", "devs"]);
    admin_cli(
        &lk,
        &[
            "iam",
            "put-group-policy",
            "--group-name",
            "devs",
            "--policy-name",
            "db",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#,
        ],
    );
    for u in ["alice", "bob"] {
        admin_cli(
            &lk,
            &[
                "iam",
                "add-user-to-group",
                "--group-name",
                "devs",
                "--user-name",
                u,
            ],
        );
    }
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":"sts:AssumeRole"}}]}}"#,
        arn("user", "alice")
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "create-role",
            "--role-name",
            "ops",
            "--assume-role-policy-document",
            &trust,
        ],
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "create-role",
            "--role-name",
            "idle",
            "--assume-role-policy-document",
            &trust,
        ],
    );
    let listing = admin_cli(
        &lk,
        &["iam", "create-policy", "--policy-name", "listing", "--policy-document",
          r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:ListUsers","Resource":"*"}]}"#],
    )["Policy"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    admin_cli(
        &lk,
        &[
            "iam",
            "attach-role-policy",
            "--role-name",
            "ops",
            "--policy-arn",
            &listing,
        ],
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "attach-user-policy",
            "--user-name",
            "bob",
            "--policy-arn",
            &listing,
        ],
    );
    let roles = admin_cli(&lk, &["iam", "list-roles"]);
    assert!(
        roles["Roles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["RoleLastUsed"].get("LastUsedDate").is_none()),
        "no role used yet: {roles}"
    );

    // ListPoliciesGrantingServiceAccess: alice's own inline policy and her
    // group's; the role's managed policy; none for a service nothing
    // grants; refused for ARNs that name no stored identity (and, below,
    // to a caller without the permission).
    let granting = |arn: &str, namespaces: &[&str]| {
        let mut args = vec![
            "iam",
            "list-policies-granting-service-access",
            "--arn",
            arn,
            "--service-namespaces",
        ];
        args.extend_from_slice(namespaces);
        admin_cli(&lk, &args)["PoliciesGrantingServiceAccess"].clone()
    };
    let inline = |kind: &str, entity: &str| {
        serde_json::json!({"PolicyName": "db", "PolicyType": "INLINE",
                           "EntityType": kind, "EntityName": entity})
    };
    assert_eq!(
        granting(&arn("user", "alice"), &["rds-db", "IAM", "s3"]),
        serde_json::json!([
            {"ServiceNamespace": "rds-db",
             "Policies": [inline("USER", "alice"), inline("GROUP", "devs")]},
            {"ServiceNamespace": "iam", "Policies": [inline("USER", "alice")]},
            {"ServiceNamespace": "s3", "Policies": []},
        ])
    );
    assert_eq!(
        granting(&arn("group", "devs"), &["rds-db", "sql"]),
        serde_json::json!([
            {"ServiceNamespace": "rds-db", "Policies": [inline("GROUP", "devs")]},
            {"ServiceNamespace": "sql", "Policies": []},
        ])
    );
    // A managed policy attached to bob and to his group is listed once.
    let devs_listing = |verb: &str| {
        admin_cli(
            &lk,
            &[
                "iam",
                verb,
                "--group-name",
                "devs",
                "--policy-arn",
                &listing,
            ],
        )
    };
    devs_listing("attach-group-policy");
    assert_eq!(
        granting(&arn("user", "bob"), &["iam"]),
        serde_json::json!([{"ServiceNamespace": "iam", "Policies": [
            inline("USER", "bob"),
            {"PolicyName": "listing", "PolicyType": "MANAGED", "PolicyArn": listing}]}])
    );
    devs_listing("detach-group-policy");
    assert_eq!(
        granting(&arn("role", "ops"), &["iam"]),
        serde_json::json!([{"ServiceNamespace": "iam", "Policies": [
            {"PolicyName": "listing", "PolicyType": "MANAGED", "PolicyArn": listing}]}])
    );
    let admin = |args: &[&str]| {
        let out = admin_aws(&lk.data).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (asked, refusal) in [
        (arn("user", "nobody"), "NoSuchEntity"),
        (arn("role", "elsewhere/ops"), "NoSuchEntity"),
        (listing.clone(), "InvalidInput"),
        (
            "arn:aws:iam::999999999999:user/alice".to_owned(),
            "InvalidInput",
        ),
    ] {
        let (ok, err) = admin(&[
            "iam",
            "list-policies-granting-service-access",
            "--arn",
            &asked,
            "--service-namespaces",
            "iam",
        ]);
        assert!(!ok && err.contains(refusal), "{asked}: {err}");
    }
    let (ok, err) = admin(&[
        "iam",
        "list-policies-granting-service-access",
        "--arn",
        &arn("user", "alice"),
        "--service-namespaces",
        "not a namespace",
    ]);
    assert!(!ok && err.contains("ValidationError"), "{err}");

    // alice: the API (allowed calls, one on a resource her grant names,
    // and one refused), a role session, and both databases through the
    // gateway.
    assert!(aws_as(&lk, &alice, &["iam", "get-user", "--user-name", "alice"]).0);
    assert!(
        aws_as(
            &lk,
            &alice,
            &["iam", "list-user-tags", "--user-name", "alice"]
        )
        .0
    );
    let (ok, err) = aws_as(
        &lk,
        &alice,
        &["iam", "create-user", "--user-name", "mallory"],
    );
    assert!(!ok && err.contains("AccessDenied"), "{err}");
    // alice's session of a role: its credentials, as the CLI's variables.
    let assume = |role: &str| {
        let (ok, out) = aws_as(
            &lk,
            &alice,
            &[
                "sts",
                "assume-role",
                "--role-arn",
                &arn("role", role),
                "--role-session-name",
                role,
            ],
        );
        assert!(ok, "{out}");
        let session: Value = serde_json::from_str(&out).unwrap();
        common::api::Creds::from_sts(&session["Credentials"]).env_vars()
    };
    let role_creds = assume("ops");
    // A session of `idle`, whose every call is refused, does not make the
    // role used (its RoleLastUsed stays empty below).
    let idle_creds = assume("idle");
    let (ok, err) = aws_as(&lk, &idle_creds, &["iam", "list-users"]);
    assert!(!ok && err.contains("AccessDenied"), "{err}");
    let (ok, err) = aws_as(
        &lk,
        &idle_creds,
        &[
            "iam",
            "list-policies-granting-service-access",
            "--arn",
            &arn("role", "idle"),
            "--service-namespaces",
            "iam",
        ],
    );
    assert!(!ok && err.contains("AccessDenied"), "{err}");
    assert!(aws_as(&lk, &role_creds, &["iam", "list-users"]).0);
    let token = token_with(&lk, &alice);
    let out = psql(
        &lk,
        "app",
        &token,
        "verify-full",
        "SELECT total FROM orders WHERE id = 2",
    );
    assert_eq!(text(&out).trim(), "20", "{}", text(&out));
    let my_token = |creds: &[(String, String)]| {
        let creds: Vec<(&str, &str)> = creds
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        aws_token_for_port(&lk, lk.mysql_port, &creds, "localhost", "app")
    };
    let out = mariadb(
        &lk,
        "app",
        &my_token(&alice),
        &["shop", "-e", "SELECT price FROM items WHERE id = 1"],
    );
    assert_eq!(text(&out).trim(), "7", "{}", text(&out));

    // GetAccessKeyLastUsed: alice's key was last used with the database
    // (or IAM, whichever came last); bob's never.
    let alice_key = alice
        .iter()
        .find(|(k, _)| k == "AWS_ACCESS_KEY_ID")
        .unwrap()
        .1
        .clone();
    let bob_key = bob
        .iter()
        .find(|(k, _)| k == "AWS_ACCESS_KEY_ID")
        .unwrap()
        .1
        .clone();
    let used = eventually("alice's key used with the database", || {
        let v = admin_cli(
            &lk,
            &[
                "iam",
                "get-access-key-last-used",
                "--access-key-id",
                &alice_key,
            ],
        );
        (v["AccessKeyLastUsed"]["ServiceName"] == "rds-db").then_some(v)
    });
    assert_eq!(used["UserName"], "alice");
    assert_eq!(used["AccessKeyLastUsed"]["Region"], "us-east-1");
    assert!(used["AccessKeyLastUsed"]["LastUsedDate"].is_string());
    let unused = admin_cli(
        &lk,
        &[
            "iam",
            "get-access-key-last-used",
            "--access-key-id",
            &bob_key,
        ],
    );
    assert_eq!(
        unused["AccessKeyLastUsed"],
        serde_json::json!({"ServiceName": "N/A", "Region": "N/A"})
    );

    // RoleLastUsed, in GetRole and ListRoles.
    let role = eventually("the role used", || {
        let v = admin_cli(&lk, &["iam", "get-role", "--role-name", "ops"]);
        v["Role"]["RoleLastUsed"]["LastUsedDate"]
            .is_string()
            .then_some(v)
    });
    assert_eq!(role["Role"]["RoleLastUsed"]["Region"], "us-east-1");
    let roles = admin_cli(&lk, &["iam", "list-roles"]);
    let last_used = |name: &str| {
        roles["Roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["RoleName"] == name)
            .unwrap()["RoleLastUsed"]
            .clone()
    };
    assert!(last_used("ops")["LastUsedDate"].is_string());
    assert!(last_used("idle").get("LastUsedDate").is_none());

    // Service- and action-level details for alice.
    let job = admin_cli(
        &lk,
        &[
            "iam",
            "generate-service-last-accessed-details",
            "--arn",
            &arn("user", "alice"),
            "--granularity",
            "ACTION_LEVEL",
        ],
    )["JobId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(job.len(), 36);
    let details = admin_cli(
        &lk,
        &["iam", "get-service-last-accessed-details", "--job-id", &job],
    );
    assert_eq!(details["JobStatus"], "COMPLETED");
    assert_eq!(details["JobType"], "ACTION_LEVEL");
    let service = |ns: &str| {
        details["ServicesLastAccessed"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["ServiceNamespace"] == ns)
            .cloned()
    };
    let namespaces: Vec<&str> = details["ServicesLastAccessed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ServiceNamespace"].as_str().unwrap())
        .collect();
    assert_eq!(
        namespaces,
        ["iam", "kms", "rds-db", "sql", "sts"],
        "what alice is granted"
    );
    let iam = service("iam").unwrap();
    assert_eq!(iam["ServiceName"], "AWS Identity and Access Management");
    assert_eq!(iam["LastAuthenticatedEntity"], arn("user", "alice"));
    let actions = iam["TrackedActionsLastAccessed"].as_array().unwrap();
    let names: Vec<&str> = actions
        .iter()
        .map(|a| a["ActionName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["GetUser", "ListUserTags"],
        "CreateUser was refused and is not granted: {iam}"
    );
    assert!(actions.iter().all(|a| a["LastAccessedTime"].is_string()));
    let kms = service("kms").unwrap();
    assert!(kms.get("LastAuthenticated").is_none(), "never used: {kms}");
    assert_eq!(kms["TotalAuthenticatedEntities"], 0);
    let sql = service("sql").unwrap();
    assert_eq!(sql["ServiceName"], "Latchkey Statement Policy");
    assert!(sql["LastAuthenticated"].is_string(), "{sql}");
    assert!(service("rds-db").unwrap()["LastAuthenticated"].is_string());
    assert!(
        service("sts").unwrap()["LastAuthenticated"].is_string(),
        "AssumeRole"
    );

    // For the group: one of two members used the database.
    let job = admin_cli(
        &lk,
        &[
            "iam",
            "generate-service-last-accessed-details",
            "--arn",
            &arn("group", "devs"),
        ],
    )["JobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = admin_cli(
        &lk,
        &["iam", "get-service-last-accessed-details", "--job-id", &job],
    );
    assert_eq!(group["JobType"], "SERVICE_LEVEL");
    let rds = group["ServicesLastAccessed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ServiceNamespace"] == "rds-db")
        .unwrap()
        .clone();
    assert!(rds.get("TrackedActionsLastAccessed").is_none());
    assert_eq!(rds["TotalAuthenticatedEntities"], 1, "{rds}");
    let entities = admin_cli(
        &lk,
        &[
            "iam",
            "get-service-last-accessed-details-with-entities",
            "--job-id",
            &job,
            "--service-namespace",
            "rds-db",
        ],
    );
    let mut members: Vec<(String, String, bool)> = entities["EntityDetailsList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["EntityInfo"]["Name"].as_str().unwrap().to_owned(),
                e["EntityInfo"]["Type"].as_str().unwrap().to_owned(),
                e["LastAuthenticated"].is_string(),
            )
        })
        .collect();
    members.sort();
    assert_eq!(
        members,
        [
            ("alice".into(), "USER".into(), true),
            ("bob".into(), "USER".into(), false)
        ],
        "the group's members: {entities}"
    );

    // For the managed policy: attached to bob (never used) and the role
    // (used): both listed, one with a time.
    let job = admin_cli(
        &lk,
        &[
            "iam",
            "generate-service-last-accessed-details",
            "--arn",
            &listing,
        ],
    )["JobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let entities = admin_cli(
        &lk,
        &[
            "iam",
            "get-service-last-accessed-details-with-entities",
            "--job-id",
            &job,
            "--service-namespace",
            "iam",
        ],
    );
    let mut seen: Vec<(String, bool)> = entities["EntityDetailsList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["EntityInfo"]["Name"].as_str().unwrap().to_owned(),
                e["LastAuthenticated"].is_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, [("bob".to_owned(), false), ("ops".to_owned(), true)]);
    let mut paged = admin_aws(&lk.data);
    let out = paged
        .args([
            "iam",
            "get-service-last-accessed-details-with-entities",
            "--job-id",
            &job,
            "--service-namespace",
            "iam",
            "--max-items",
            "1",
        ])
        .output()
        .unwrap();
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["EntityDetailsList"].as_array().unwrap().len(), 1);
    assert_eq!(page["IsTruncated"], true, "{page}");
    let marker = page["Marker"].as_str().unwrap();
    let rest = admin_cli(
        &lk,
        &[
            "iam",
            "get-service-last-accessed-details-with-entities",
            "--job-id",
            &job,
            "--service-namespace",
            "iam",
            "--marker",
            marker,
        ],
    );
    assert_eq!(rest["EntityDetailsList"].as_array().unwrap().len(), 1);
    assert_eq!(rest["IsTruncated"], false);

    // Who may ask: bob may not read alice's details, and a refusal about a
    // key does not name its owner.
    let (ok, err) = aws_as(
        &lk,
        &bob,
        &[
            "iam",
            "generate-service-last-accessed-details",
            "--arn",
            &arn("user", "alice"),
        ],
    );
    assert!(!ok && err.contains("AccessDenied"), "{err}");
    let (ok, err) = aws_as(
        &lk,
        &bob,
        &[
            "iam",
            "get-access-key-last-used",
            "--access-key-id",
            &alice_key,
        ],
    );
    assert!(
        !ok && err.contains("AccessDenied") && !err.contains("alice"),
        "{err}"
    );
    let (ok, err) = aws_as(
        &lk,
        &bob,
        &[
            "iam",
            "get-access-key-last-used",
            "--access-key-id",
            "AKIAIOSFODNN7EXAMPLE",
        ],
    );
    assert!(
        !ok && err.contains("AccessDenied"),
        "an unknown key is refused alike: {err}"
    );
    let out = admin_aws(&lk.data)
        .args([
            "iam",
            "get-service-last-accessed-details",
            "--job-id",
            "00000000-0000-0000-0000-000000000000",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("NoSuchEntity"));
    let out = admin_aws(&lk.data)
        .args([
            "iam",
            "generate-service-last-accessed-details",
            "--arn",
            "arn:aws:iam::999999999999:user/alice",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidInput"));
    // Bad input is refused as IAM refuses it, and a request's text echoed
    // in an error keeps the XML readable (a control character in it would
    // make the whole answer unparseable).
    let refusal = |args: &[&str]| {
        let out = admin_aws(&lk.data).args(args).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let team_alice = arn("user", "team/alice");
    for (subject, code, why) in [
        (
            "arn:aws:iam::999999999999:user/a\u{1}\u{1b}[31mb",
            "(InvalidInput)",
            "another account's, with control characters echoed",
        ),
        (
            "arn:aws:iam::aws:policy/AdministratorAccess",
            "(NoSuchEntity)",
            "an AWS managed policy",
        ),
        (
            team_alice.as_str(),
            "(NoSuchEntity)",
            "the path is part of the ARN",
        ),
    ] {
        let err = refusal(&[
            "iam",
            "generate-service-last-accessed-details",
            "--arn",
            subject,
        ]);
        assert!(err.contains(code), "{why}: {err}");
    }
    let err = refusal(&[
        "iam",
        "get-service-last-accessed-details",
        "--job-id",
        "00000000-0000-0000-0000-0000000000000",
    ]);
    assert!(err.contains("(ValidationError)"), "{err}");
    let err = refusal(&[
        "iam",
        "get-service-last-accessed-details-with-entities",
        "--job-id",
        &job,
        "--service-namespace",
        "rds db",
    ]);
    assert!(err.contains("(ValidationError)"), "{err}");

    // The credential report, as Python's csv module reads it.
    let out = admin_aws(&lk.data)
        .args(["iam", "get-credential-report"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ReportNotPresent"));
    assert_eq!(
        admin_cli(&lk, &["iam", "generate-credential-report"])["State"],
        "COMPLETE"
    );
    let report = admin_cli(&lk, &["iam", "get-credential-report"]);
    assert_eq!(report["ReportFormat"], "text/csv");
    let script = r#"
import base64, csv, io, json, sys
report = json.loads(sys.stdin.read())
rows = list(csv.DictReader(io.StringIO(base64.b64decode(report['Content']).decode())))
print(json.dumps({'columns': list(rows[0].keys()), 'rows': {r['user']: r for r in rows}}))
"#;
    let mut python = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    python
        .stdin
        .take()
        .unwrap()
        .write_all(report.to_string().as_bytes())
        .unwrap();
    let parsed: Value = serde_json::from_slice(&python.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(parsed["columns"].as_array().unwrap().len(), 22);
    assert_eq!(parsed["columns"][10], "access_key_1_last_used_date");
    let row = |user: &str| parsed["rows"][user].clone();
    assert_eq!(
        row("<root_account>")["arn"],
        format!("arn:aws:iam::{account}:root")
    );
    assert_eq!(row("alice")["access_key_1_active"], "true");
    assert_eq!(row("alice")["access_key_1_last_used_service"], "rds-db");
    assert!(
        row("alice")["access_key_1_last_used_date"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );
    // bob's refused calls used his key (but none of his permissions).
    assert_eq!(row("bob")["access_key_1_last_used_service"], "iam");
    assert_eq!(row("carol")["access_key_1_last_used_date"], "N/A");
    assert_eq!(row("carol")["access_key_1_last_used_service"], "N/A");
    assert_eq!(row("carol")["access_key_2_active"], "false");
    assert_eq!(row("carol")["mfa_active"], "false");

    // Latchkey's depth: each granted database user and table, used or
    // never, from the live stream; and the same after a rebuild from the
    // trail.
    let depth = advisor(
        &lk.data,
        &["last-accessed", "--principal", &arn("user", "alice")],
    );
    let rows = permission_rows(&depth);
    for expected in [
        ("rds-db:connect", "app", true),
        ("rds-db:connect", "admin", false),
        ("sql:Select", "orders", true),
        ("sql:Select", "cards", false),
        ("sql:Select", "items", true),
        ("iam:ListUserTags", "alice", true),
        ("iam:ListUserTags", "bob", false),
        ("iam:GetUser", "alice", true),
        ("kms:Decrypt", "*", false),
    ] {
        assert!(
            rows.contains(&(expected.0.to_owned(), expected.1.to_owned(), expected.2)),
            "{expected:?} in {rows:?}"
        );
    }
    let live = rows;
    let rebuilt = advisor(
        &lk.data,
        &[
            "last-accessed",
            "--principal",
            &arn("user", "alice"),
            "--rebuild",
        ],
    );
    assert_eq!(
        permission_rows(&rebuilt),
        live,
        "the trail gives what the stream gave"
    );
    assert_eq!(rebuilt["Permissions"], depth["Permissions"]);

    // A user deleted and made again under the same name starts with no
    // uses: live, and after a rebuild from the trail, which holds the old
    // one's.
    let dave = user_with_policy(&lk, "dave", ALICE_POLICY);
    assert!(aws_as(&lk, &dave, &["iam", "get-user", "--user-name", "dave"]).0);
    let used_any = |report: &Value| permission_rows(report).iter().any(|r| r.2);
    eventually("dave's use recorded", || {
        used_any(&advisor(
            &lk.data,
            &["last-accessed", "--principal", &arn("user", "dave")],
        ))
        .then_some(())
    });
    let dave_key = dave
        .iter()
        .find(|(k, _)| k == "AWS_ACCESS_KEY_ID")
        .unwrap()
        .1
        .clone();
    for args in [
        vec![
            "iam",
            "delete-access-key",
            "--user-name",
            "dave",
            "--access-key-id",
            &dave_key,
        ],
        vec![
            "iam",
            "delete-user-policy",
            "--user-name",
            "dave",
            "--policy-name",
            "db",
        ],
        vec!["iam", "delete-user", "--user-name", "dave"],
    ] {
        admin_cli(&lk, &args);
    }
    user_with_policy(&lk, "dave", ALICE_POLICY);
    for args in [
        vec!["last-accessed", "--principal", &arn("user", "dave")],
        vec![
            "last-accessed",
            "--principal",
            &arn("user", "dave"),
            "--rebuild",
        ],
    ] {
        let report = advisor(&lk.data, &args);
        assert!(!used_any(&report), "{args:?}: {report}");
    }

    // Unused for 90 days: judged 89 days on, the keys used today are still
    // in use (and carol's, new, has had no time to be unused); 91 days on,
    // all are listed, carol's as never used.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = |days: u64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs(now + days * 86_400),
        )
        .to_string()
    };
    let keys = |report: &Value| -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = report["AccessKeys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["UserName"] != "admin")
            .map(|k| {
                (
                    k["UserName"].as_str().unwrap().to_owned(),
                    k["LastUsed"].is_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let soon = advisor(&lk.data, &["unused", "--days", "90", "--at", &at(89)]);
    assert_eq!(keys(&soon), []);
    let later = advisor(&lk.data, &["unused", "--days", "90", "--at", &at(91)]);
    assert_eq!(
        keys(&later),
        [
            ("alice".to_owned(), true),
            ("bob".to_owned(), true),
            ("carol".to_owned(), false),
            ("dave".to_owned(), false)
        ],
        "the second dave's key was never used"
    );
    let roles: Vec<&str> = later["Roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["RoleName"].as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"ops") && roles.contains(&"idle"),
        "{roles:?}"
    );
    let never: Vec<(&str, &str)> = soon["UnusedPermissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["Principal"] == arn("user", "alice"))
        .map(|p| {
            (
                p["Action"].as_str().unwrap(),
                p["Resource"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(never.contains(&("kms:Decrypt", "*")), "{never:?}");
    assert!(
        never
            .iter()
            .any(|(a, r)| *a == "sql:Select" && r.ends_with("/cards")),
        "{never:?}"
    );
    assert!(
        !never
            .iter()
            .any(|(a, r)| *a == "sql:Select" && r.ends_with("/orders")),
        "{never:?}"
    );

    // A policy generated from what alice did in the last hour: valid,
    // allowing each recorded use, refusing the grants she never used; and
    // a new user holding only it runs alice's workload end to end, and
    // nothing more.
    let file = root.path().join("generated.json");
    let generated = advisor_cmd(
        &lk.data,
        &[
            "policy",
            "generate",
            "--principal",
            &arn("user", "alice"),
            "--since",
            "1h",
            "--write",
            file.to_str().unwrap(),
        ],
    );
    let checks = &generated["Verification"];
    assert!(checks["UsesAllowed"].as_u64().unwrap() >= 4, "{generated}");
    assert_eq!(checks["UsesNotAllowed"], serde_json::json!([]));
    assert_eq!(
        checks["UnusedGrantsStillAllowed"],
        serde_json::json!([]),
        "{generated}"
    );
    assert!(
        checks["UnusedGrantsRefused"].as_u64().unwrap() >= 3,
        "{generated}"
    );
    let no_longer: Vec<&str> = checks["UsesNoLongerGranted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["Action"].as_str().unwrap())
        .collect();
    assert!(
        !no_longer.contains(&"iam:CreateUser"),
        "a refused call is no use at all"
    );
    let policy_text = std::fs::read_to_string(&file).unwrap();
    // The same through Access Analyzer's API with the stock CLI: the
    // generation job's policy is the one the command wrote.
    let an_hour_ago =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() - Duration::from_secs(3600))
            .to_string();
    let trail = format!(
        "trails=[{{cloudTrailArn=arn:aws:cloudtrail:us-east-1:{account}:trail/t}}],\
         accessRole=arn:aws:iam::{account}:role/ops,startTime={an_hour_ago}"
    );
    let generation = |creds: Option<&[(String, String)]>| {
        let args = [
            "accessanalyzer",
            "start-policy-generation",
            "--policy-generation-details",
            &format!("principalArn={}", arn("user", "alice")),
            "--cloud-trail-details",
            &trail,
        ];
        match creds {
            None => (true, admin_cli(&lk, &args).to_string()),
            Some(c) => aws_as(&lk, c, &args),
        }
    };
    let (ok, err) = generation(Some(&alice));
    assert!(!ok && err.contains("AccessDeniedException"), "{err}");
    let job: Value = serde_json::from_str(&generation(None).1).unwrap();
    let job = job["jobId"].as_str().unwrap();
    let result = admin_cli(
        &lk,
        &["accessanalyzer", "get-generated-policy", "--job-id", job],
    );
    assert_eq!(result["jobDetails"]["status"], "SUCCEEDED", "{result}");
    let properties = &result["generatedPolicyResult"]["properties"];
    assert_eq!(properties["principalArn"], arn("user", "alice"));
    assert_eq!(properties["isComplete"], true);
    let from_api: Value = serde_json::from_str(
        result["generatedPolicyResult"]["generatedPolicies"][0]["policy"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        from_api, generated["Policy"],
        "the API and the command agree"
    );
    let listed = admin_cli(
        &lk,
        &[
            "accessanalyzer",
            "list-policy-generations",
            "--principal-arn",
            &arn("user", "alice"),
        ],
    );
    let jobs: Vec<&str> = listed["policyGenerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, [job], "{listed}");
    // A generation shows what a principal did: Access Analyzer's rights
    // alone do not reach it. Eve may call every Access Analyzer action but
    // nothing of IAM: she cannot start one for alice (refused alike for a
    // principal that does not exist), read or cancel the administrator's
    // job, or see it listed; a group is no principal to generate for.
    let eve = user_with_policy(
        &lk,
        "eve",
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"access-analyzer:*","Resource":"*"},
          {"Effect":"Deny","Action":"iam:*","Resource":"*"}]}"#,
    );
    // `aws accessanalyzer start-policy-generation` for `principal`.
    let start_for = |principal: &str| {
        [
            "accessanalyzer".to_owned(),
            "start-policy-generation".to_owned(),
            "--policy-generation-details".to_owned(),
            format!("principalArn={principal}"),
        ]
    };
    fn as_strs(args: &[String; 4]) -> [&str; 4] {
        args.each_ref().map(String::as_str)
    }
    for principal in [arn("user", "alice"), arn("role", "no-such-role")] {
        let (ok, err) = aws_as(&lk, &eve, &as_strs(&start_for(&principal)));
        assert!(
            !ok && err.contains("AccessDeniedException"),
            "{principal}: {err}"
        );
    }
    for args in [
        &["get-generated-policy", "--job-id", job][..],
        &["cancel-policy-generation", "--job-id", job][..],
    ] {
        let mut all = vec!["accessanalyzer"];
        all.extend_from_slice(args);
        let (ok, err) = aws_as(&lk, &eve, &all);
        assert!(
            !ok && err.contains("AccessDeniedException"),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("alice"),
            "a refusal names no principal: {err}"
        );
    }
    let (ok, listed) = aws_as(&lk, &eve, &["accessanalyzer", "list-policy-generations"]);
    assert!(ok, "{listed}");
    assert!(!listed.contains(job), "eve sees no one's job: {listed}");
    // A job goes with its principal: fred of /prod/ deleted and a fred
    // made under /sandbox/, his job is no one's to read.
    let make_fred = |path: &str| {
        admin_cli(
            &lk,
            &["iam", "create-user", "--user-name", "fred", "--path", path],
        )
    };
    make_fred("/prod/");
    let fred_job = admin_cli(&lk, &as_strs(&start_for(&arn("user", "prod/fred"))))["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    admin_cli(
        &lk,
        &[
            "accessanalyzer",
            "get-generated-policy",
            "--job-id",
            &fred_job,
        ],
    );
    admin_cli(&lk, &["iam", "delete-user", "--user-name", "fred"]);
    make_fred("/sandbox/");
    let out = admin_aws(&lk.data)
        .args([
            "accessanalyzer",
            "get-generated-policy",
            "--job-id",
            &fred_job,
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ValidationException"),
        "{}",
        text(&out)
    );
    let listed = admin_cli(&lk, &["accessanalyzer", "list-policy-generations"]).to_string();
    assert!(!listed.contains(&fred_job), "{listed}");
    let out = admin_aws(&lk.data)
        .args(start_for(&arn("group", "readers")))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ValidationException"),
        "{}",
        text(&out)
    );
    // A window that ends before now cannot be kept apart from what came
    // after it (the advisor keeps each permission's last use): refused.
    let ten_minutes_ago =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() - Duration::from_secs(600))
            .to_string();
    let out = admin_aws(&lk.data)
        .args([
            "accessanalyzer",
            "start-policy-generation",
            "--policy-generation-details",
            &format!("principalArn={}", arn("user", "alice")),
            "--cloud-trail-details",
            &format!("{trail},endTime={ten_minutes_ago}"),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ValidationException"));
    let out = admin_aws(&lk.data)
        .args([
            "accessanalyzer",
            "get-generated-policy",
            "--job-id",
            "no-such-job",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ValidationException"));
    assert!(
        !policy_text.contains("kms:") && !policy_text.contains("cards"),
        "{policy_text}"
    );
    let out = latchkey(&["policy", "validate", "--strict", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // The ARN of `name` beside the first generated resource containing
    // `kind` (`:dbuser:`, `:table/`): the same database, another user or table.
    let sibling = |kind: &str, name: &str| {
        let used = generated["Policy"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Resource"].as_array().cloned().unwrap_or_default())
            .find_map(|r| r.as_str().filter(|r| r.contains(kind)).map(str::to_owned))
            .unwrap();
        format!("{}/{name}", used.rsplit_once('/').unwrap().0)
    };
    let dbuser = |u: &str| sibling(":dbuser:", u);
    let table = |t: &str| sibling("/orders/public/", t);
    let simulate = |action: &str, resource: &str| -> String {
        let out = latchkey(&[
            "policy",
            "simulate",
            "--policy",
            &format!("file://{}", file.display()),
            "--action",
            action,
            "--resource",
            resource,
            "--output",
            "json",
        ])
        .output()
        .unwrap();
        let v: Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
        v["results"][0]["decision"].as_str().unwrap().to_owned()
    };
    assert_eq!(simulate("rds-db:connect", &dbuser("app")), "allowed");
    assert_eq!(simulate("sql:Select", &table("orders")), "allowed");
    assert_eq!(simulate("rds-db:connect", &dbuser("admin")), "implicitDeny");
    assert_eq!(simulate("sql:Select", &table("cards")), "implicitDeny");
    assert_eq!(simulate("kms:Decrypt", "*"), "implicitDeny");
    let successor = user_with_policy(&lk, "alice2", &policy_text);
    let out = mariadb(
        &lk,
        "app",
        &my_token(&successor),
        &["shop", "-e", "SELECT price FROM items WHERE id = 1"],
    );
    assert_eq!(text(&out).trim(), "7", "{}", text(&out));
    assert!(
        aws_as(
            &lk,
            &successor,
            &["iam", "list-user-tags", "--user-name", "alice"]
        )
        .0,
        "a use on a named resource is generated"
    );
    let (ok, err) = aws_as(
        &lk,
        &successor,
        &["iam", "list-user-tags", "--user-name", "bob"],
    );
    assert!(!ok && err.contains("AccessDenied"), "never used: {err}");
    let token = token_with(&lk, &successor);
    let out = psql(
        &lk,
        "app",
        &token,
        "verify-full",
        "SELECT total FROM orders WHERE id = 2",
    );
    assert_eq!(text(&out).trim(), "20", "{}", text(&out));
    let out = psql(&lk, "app", &token, "verify-full", "SELECT pan FROM cards");
    assert!(
        text(&out).contains("permission denied by policy: sql:Select"),
        "{}",
        text(&out)
    );
    // Only a user's or role's use makes a policy.
    let out = latchkey(&[
        "policy",
        "generate",
        "--data-dir",
        lk.data.to_str().unwrap(),
        "--principal",
        &arn("group", "devs"),
    ])
    .output()
    .unwrap();
    assert!(
        !out.status.success() && text(&out).contains("user or role"),
        "{}",
        text(&out)
    );

    // The administrator signs a database token, then uses its key for
    // IAM: LK-IAM-01 still reports the database use (an error, on the
    // user), not only the key's latest use.
    let out = psql(
        &lk,
        "app",
        &aws_token(&lk, &[], "localhost", "app"),
        "verify-full",
        "SELECT 1",
    );
    assert_eq!(text(&out).trim(), "1", "{}", text(&out));
    // Last uses are kept to the second: the STS call comes in a later one.
    std::thread::sleep(Duration::from_millis(1100));
    let admin_arn = admin_cli(&lk, &["sts", "get-caller-identity"])["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut flags = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !flags
        .iter()
        .any(|f: &String| f.contains("administrator's key was used 0 days ago (sts)"))
    {
        assert!(
            Instant::now() < deadline,
            "never: the administrator's key used for STS after the database: {flags:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
        flags = flagged(&advisor(&lk.data, &["checks"]), "LK-IAM-01");
    }
    assert!(
        flags.contains(&format!(
            "{admin_arn} the administrator signed database tokens (0 days ago)"
        )),
        "{flags:?}"
    );
}

/// The value of `latchkey_security_check_status{check="ID"}` on /metrics.
fn check_gauge(metrics_port: u16, check: &str) -> Option<i64> {
    metric_at(
        metrics_port,
        &format!("latchkey_security_check_status{{check=\"{check}\"}}"),
    )
    .map(|v| v as i64)
}

#[test]
fn every_security_check_is_raised_by_a_planted_misconfiguration_and_cleared_by_its_fix() {
    let root = tempfile::tempdir().unwrap();
    let (data, api) = init_latchkey(root.path(), &[]);
    let metrics_port = free_port();
    let lk = serve_latchkey(
        root.path(),
        &data,
        &api,
        &[
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
            "--security-checks-every",
            "1s",
            "--security-check-findings",
            // Judged by `advisor checks`, which is not given them: the
            // server's own settings count.
            "--postgres-allow-plaintext",
            "--no-statement-audit",
        ],
    );
    let checks = || advisor(&lk.data, &["checks"]);
    let has = |list: &[String], what: &str| list.iter().any(|f| f.contains(what));
    let account = admin_cli(&lk, &["sts", "get-caller-identity"])["Account"]
        .as_str()
        .unwrap()
        .to_owned();

    // Plant one misconfiguration per check.
    admin_cli(&lk, &["iam", "create-user", "--user-name", "wide"]);
    admin_cli(
        &lk,
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
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "wide",
            "--policy-name",
            "risky",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:PassRole","Resource":"*"},
               {"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#,
        ],
    );
    admin_cli(&lk, &["iam", "create-access-key", "--user-name", "wide"]);
    let second = admin_cli(&lk, &["iam", "create-access-key", "--user-name", "wide"])["AccessKey"]
        ["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    // A console password without MFA, on a user with no permissions.
    admin_cli(&lk, &["iam", "create-user", "--user-name", "clicker"]);
    admin_cli(
        &lk,
        &[
            "iam",
            "create-login-profile",
            "--user-name",
            "clicker",
            "--password",
            "Clicker-Passw0rd!",
        ],
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "create-role",
            "--role-name",
            "open",
            "--assume-role-policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"},
               {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"sts:AssumeRole"}]}"#,
        ],
    );
    common::register_db(
        &lk.data,
        &[
            "--name",
            "loose",
            "--endpoint",
            "loose.local",
            "--upstream",
            "127.0.0.1:1",
            "--auth",
            "trust",
            "--tag",
            "classification=restricted",
        ],
    );
    admin_cli(
        &lk,
        &[
            "secretsmanager",
            "create-secret",
            "--name",
            "manual",
            "--secret-string",
            "s3cret-value",
        ],
    );
    let exposed = lk.data.join("ca.pem");
    std::fs::set_permissions(
        &exposed,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();

    let report = checks();
    assert!(
        has(
            &flagged(&report, "LK-IAM-01"),
            "administrator's key was used"
        ),
        "{report}"
    );
    assert!(has(&flagged(&report, "LK-IAM-02"), "2 active access keys"));
    assert!(has(
        &flagged(&report, "LK-IAM-03"),
        "wide has IAM permissions but no MFA"
    ));
    assert!(has(
        &flagged(&report, "LK-IAM-03"),
        "clicker has a console password but no MFA"
    ));
    let wide = flagged(&report, "LK-IAM-05");
    for what in [
        "every action on every resource",
        "iam:PassRole on every role",
        "Allow with NotAction",
    ] {
        assert!(has(&wide, what), "{what}: {wide:?}");
    }
    let trust = flagged(&report, "LK-IAM-06");
    assert!(has(&trust, "anyone may assume this role"), "{trust:?}");
    assert!(has(&trust, "without sts:ExternalId"), "{trust:?}");
    let db = flagged(&report, "LK-DB-01");
    assert!(
        has(&db, "loose the gateway logs in upstream with no credential"),
        "{db:?}"
    );
    assert!(has(&db, "weaker than verify-full"));
    assert!(has(&db, "statement audit is off"), "{db:?}");
    assert!(
        has(&db, "loose tagged restricted, but statement policy is off"),
        "{db:?}"
    );
    let gw = flagged(&report, "LK-GW-01");
    assert!(
        has(&gw, "ca.pem readable by the group or other users"),
        "{gw:?}"
    );
    assert!(has(&gw, "not been verified in 24 hours"));
    assert!(has(&gw, "gateway accepts plaintext connections"), "{gw:?}");
    assert!(has(&gw, "no webhook"));
    assert!(has(&flagged(&report, "LK-SM-01"), "manual rotation is off"));
    assert!(!has(&gw, "master key"), "a new master key: {gw:?}");
    // Judged this many days from now.
    let checks_in = |days: u64| {
        let at = humantime::format_rfc3339_seconds(
            std::time::SystemTime::now() + Duration::from_secs(days * 86_400),
        )
        .to_string();
        (advisor(&lk.data, &["checks", "--at", &at]), at)
    };
    // A year on, the master key is due for rotation.
    let (year_on, _) = checks_in(366);
    assert!(
        has(
            &flagged(&year_on, "LK-GW-01"),
            "master key has not been rotated in 365 days"
        ),
        "{year_on}"
    );
    // Judged 91 days on, nothing has been used since: LK-IAM-04 flags the
    // users, keys and roles; the administrator's key is no longer recent.
    let (future, later) = checks_in(91);
    assert!(
        has(
            &flagged(&future, "LK-IAM-04"),
            "user wide unused for 90 days"
        ),
        "{future}"
    );
    assert!(has(
        &flagged(&future, "LK-IAM-04"),
        "clicker's console password unused for 90 days"
    ));
    let unused = advisor(&lk.data, &["unused", "--days", "90", "--at", &later]);
    assert_eq!(unused["Passwords"][0]["UserName"], "clicker", "{unused}");
    assert!(flagged(&future, "LK-IAM-01").is_empty());
    assert!(has(
        &flagged(&future, "LK-IAM-02"),
        "active key is 91 days old"
    ));
    assert!(
        flagged(&report, "LK-IAM-04").is_empty(),
        "nothing unused today"
    );
    // --fail-on makes it a gate.
    let out = latchkey(&[
        "advisor",
        "checks",
        "--data-dir",
        lk.data.to_str().unwrap(),
        "--fail-on",
        "error",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // The running server: a gauge per check, and a finding per failing one.
    let gauge = eventually("the policy check's gauge", || {
        check_gauge(metrics_port, "LK-IAM-05").filter(|v| *v == 2)
    });
    assert_eq!(gauge, 2);
    let finding = eventually("the policy check's finding", || {
        findings(&lk.data, &[])
            .into_iter()
            .find(|f| f["id"] == "security-check-LK-IAM-05")
    });
    assert_eq!(finding["severity"], "High");
    assert_eq!(finding["type"], "Policy:Latchkey/SecurityCheck.LK-IAM-05");

    // Each fix clears what it fixed.
    admin_cli(
        &lk,
        &["iam", "delete-login-profile", "--user-name", "clicker"],
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "delete-user-policy",
            "--user-name",
            "wide",
            "--policy-name",
            "all",
        ],
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "delete-user-policy",
            "--user-name",
            "wide",
            "--policy-name",
            "risky",
        ],
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "delete-access-key",
            "--user-name",
            "wide",
            "--access-key-id",
            &second,
        ],
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "update-assume-role-policy",
            "--role-name",
            "open",
            "--policy-document",
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:user/wide"}},"Action":"sts:AssumeRole"}}]}}"#
            ),
        ],
    );
    let out = latchkey(&[
        "db",
        "remove",
        "--data-dir",
        lk.data.to_str().unwrap(),
        "--name",
        "loose",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    admin_cli(
        &lk,
        &[
            "secretsmanager",
            "delete-secret",
            "--secret-id",
            "manual",
            "--force-delete-without-recovery",
        ],
    );
    std::fs::set_permissions(
        &exposed,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = latchkey(&["audit", "verify", "--data-dir", lk.data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report = checks();
    assert!(
        !has(&flagged(&report, "LK-IAM-02"), "2 active access keys"),
        "{report}"
    );
    // wide has no permissions left; the administrator, without MFA, stays flagged.
    let mfa = flagged(&report, "LK-IAM-03");
    assert!(
        !has(&mfa, "wide")
            && !has(&mfa, "clicker")
            && has(&mfa, "admin has IAM permissions but no MFA"),
        "{mfa:?}"
    );
    assert!(flagged(&report, "LK-IAM-05").is_empty());
    assert!(flagged(&report, "LK-IAM-06").is_empty());
    assert!(!has(&flagged(&report, "LK-DB-01"), "loose"));
    let gw = flagged(&report, "LK-GW-01");
    assert!(
        !has(&gw, "ca.pem") && !has(&gw, "verified in 24 hours"),
        "{gw:?}"
    );
    assert!(flagged(&report, "LK-SM-01").is_empty());
    eventually("the gauge back to ok", || {
        check_gauge(metrics_port, "LK-IAM-05").filter(|v| *v == 0)
    });
    eventually("the finding archived", || {
        findings(&lk.data, &["--archived"])
            .into_iter()
            .find(|f| f["id"] == "security-check-LK-IAM-05")
    });
}
