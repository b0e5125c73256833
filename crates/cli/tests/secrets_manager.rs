//! Secrets Manager through the stock AWS CLI and boto3: the whole API
//! on a real server, staging labels, idempotency, deletion and restore,
//! resource policies and tag conditions, and nothing of a value in the
//! trail or the log.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::process::Output;

use common::*;
use serde_json::Value;

/// The AWS CLI against `lk` as the administrator (`creds` empty) or as
/// the user whose credentials `creds` holds.
fn sm(lk: &Latchkey, creds: &[(String, String)], args: &[&str]) -> Output {
    let mut c = aws_cli();
    c.env("AWS_CONFIG_FILE", lk.data.join("aws.config"))
        .env("AWS_CA_BUNDLE", lk.data.join("ca.pem"));
    if creds.is_empty() {
        c.env(
            "AWS_SHARED_CREDENTIALS_FILE",
            lk.data.join("admin.credentials"),
        );
    } else {
        c.env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        for (k, v) in creds {
            c.env(k, v);
        }
    }
    c.arg("secretsmanager").args(args).output().unwrap()
}

/// The JSON answer of a call that must succeed.
fn ok(out: Output) -> Value {
    let text = stdout_ok(&out);
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// The stderr of a call that must fail, with its error code.
fn fails(out: Output, code: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains(&format!("({code})")), "expected {code}: {err}");
    err
}

const READER: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:DescribeSecret"],"Resource":"*",
   "Condition":{"StringEquals":{"secretsmanager:ResourceTag/team":"payments"}}},
  {"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*",
   "Condition":{"ForAnyValue:StringEquals":{"secretsmanager:VersionStage":"AWSPENDING"}}}
]}"#;

const EVERYTHING: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}]}"#;

#[test]
fn the_aws_cli_manages_secrets_versions_and_labels() {
    let root = tempfile::tempdir().unwrap();
    let (data, api) = init_latchkey(root.path(), &[]);
    let lk = serve_latchkey(root.path(), &data, &api, &[]);
    let admin: Vec<(String, String)> = Vec::new();

    // Create, then read by name, full ARN and partial ARN.
    let created = ok(sm(
        &lk,
        &admin,
        &[
            "create-secret",
            "--name",
            "prod/app/api-key",
            "--secret-string",
            "first-value-7Qx",
            "--tags",
            "Key=team,Value=payments",
            "--description",
            "The payments API key",
        ],
    ));
    let arn = created["ARN"].as_str().unwrap().to_owned();
    let (partial, suffix) = arn.rsplit_once('-').unwrap();
    assert!(
        partial.starts_with("arn:aws:secretsmanager:")
            && partial.ends_with(":secret:prod/app/api-key"),
        "{arn}"
    );
    assert!(
        suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()),
        "{arn}"
    );
    let v1 = created["VersionId"].as_str().unwrap().to_owned();
    for id in ["prod/app/api-key", arn.as_str(), partial] {
        let got = ok(sm(&lk, &admin, &["get-secret-value", "--secret-id", id]));
        assert_eq!(got["SecretString"], "first-value-7Qx", "{id}");
        assert_eq!(got["VersionStages"], serde_json::json!(["AWSCURRENT"]));
        assert!(got["CreatedDate"].is_number(), "{got}");
    }
    fails(
        sm(
            &lk,
            &admin,
            &[
                "create-secret",
                "--name",
                "prod/app/api-key",
                "--secret-string",
                "x",
            ],
        ),
        "ResourceExistsException",
    );
    fails(
        sm(
            &lk,
            &admin,
            &["get-secret-value", "--secret-id", "prod/app/nope"],
        ),
        "ResourceNotFoundException",
    );

    // A new value: the old one becomes AWSPREVIOUS. The same token and
    // value again succeeds; the same token with another value does not.
    let token = "11111111-2222-3333-4444-555555555555";
    let put = |value: &str| {
        sm(
            &lk,
            &admin,
            &[
                "put-secret-value",
                "--secret-id",
                "prod/app/api-key",
                "--client-request-token",
                token,
                "--secret-string",
                value,
            ],
        )
    };
    let second = ok(put("second-value-9Kd"));
    assert_eq!(second["VersionId"], token);
    assert_eq!(ok(put("second-value-9Kd"))["VersionId"], token);
    fails(put("another-value"), "ResourceExistsException");
    let described = ok(sm(&lk, &admin, &["describe-secret", "--secret-id", &arn]));
    assert_eq!(
        described["VersionIdsToStages"][token],
        serde_json::json!(["AWSCURRENT"])
    );
    assert_eq!(
        described["VersionIdsToStages"][&v1],
        serde_json::json!(["AWSPREVIOUS"])
    );
    assert_eq!(described["Description"], "The payments API key");
    assert_eq!(
        described["Tags"],
        serde_json::json!([{"Key": "team", "Value": "payments"}])
    );
    let previous = ok(sm(
        &lk,
        &admin,
        &[
            "get-secret-value",
            "--secret-id",
            &arn,
            "--version-stage",
            "AWSPREVIOUS",
        ],
    ));
    assert_eq!(previous["SecretString"], "first-value-7Qx");

    // Labels: AWSCURRENT moves only when its holder is named.
    fails(
        sm(
            &lk,
            &admin,
            &[
                "update-secret-version-stage",
                "--secret-id",
                &arn,
                "--version-stage",
                "AWSCURRENT",
                "--move-to-version-id",
                &v1,
            ],
        ),
        "InvalidParameterException",
    );
    ok(sm(
        &lk,
        &admin,
        &[
            "update-secret-version-stage",
            "--secret-id",
            &arn,
            "--version-stage",
            "AWSCURRENT",
            "--move-to-version-id",
            &v1,
            "--remove-from-version-id",
            token,
        ],
    ));
    let current = ok(sm(&lk, &admin, &["get-secret-value", "--secret-id", &arn]));
    assert_eq!(current["SecretString"], "first-value-7Qx");
    let versions = ok(sm(
        &lk,
        &admin,
        &["list-secret-version-ids", "--secret-id", &arn],
    ));
    let stages: Vec<(String, Value)> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["VersionId"].as_str().unwrap().to_owned(),
                v["VersionStages"].clone(),
            )
        })
        .collect();
    assert!(
        stages.contains(&(v1.clone(), serde_json::json!(["AWSCURRENT"]))),
        "{stages:?}"
    );
    assert!(
        stages.contains(&(token.to_owned(), serde_json::json!(["AWSPREVIOUS"]))),
        "{stages:?}"
    );

    // A binary secret, sent as bytes.
    let blob_path = root.path().join("blob.bin");
    let blob: Vec<u8> = (0..=255u8).rev().collect();
    std::fs::write(&blob_path, &blob).unwrap();
    ok(sm(
        &lk,
        &admin,
        &[
            "create-secret",
            "--name",
            "tls/key",
            "--secret-binary",
            &format!("fileb://{}", blob_path.display()),
        ],
    ));
    let got = ok(sm(
        &lk,
        &admin,
        &["get-secret-value", "--secret-id", "tls/key"],
    ));
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(got["SecretBinary"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, blob);

    // Lists, with a filter.
    let listed = ok(sm(
        &lk,
        &admin,
        &["list-secrets", "--filters", "Key=name,Values=prod/"],
    ));
    let names: Vec<&str> = listed["SecretList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["prod/app/api-key"]);
    let listed = ok(sm(
        &lk,
        &admin,
        &["list-secrets", "--filters", "Key=tag-key,Values=team"],
    ));
    assert_eq!(listed["SecretList"].as_array().unwrap().len(), 1);

    // Tags.
    ok(sm(
        &lk,
        &admin,
        &[
            "tag-resource",
            "--secret-id",
            "tls/key",
            "--tags",
            "Key=env,Value=prod",
        ],
    ));
    ok(sm(
        &lk,
        &admin,
        &[
            "untag-resource",
            "--secret-id",
            "tls/key",
            "--tag-keys",
            "env",
        ],
    ));
    let described = ok(sm(
        &lk,
        &admin,
        &["describe-secret", "--secret-id", "tls/key"],
    ));
    assert!(described.get("Tags").is_none(), "{described}");

    // Deletion with a recovery window, restore, and deletion at once.
    fails(
        sm(
            &lk,
            &admin,
            &[
                "delete-secret",
                "--secret-id",
                "tls/key",
                "--recovery-window-in-days",
                "6",
            ],
        ),
        "InvalidParameterException",
    );
    let deleted = ok(sm(
        &lk,
        &admin,
        &[
            "delete-secret",
            "--secret-id",
            "tls/key",
            "--recovery-window-in-days",
            "7",
        ],
    ));
    assert!(deleted["DeletionDate"].is_number(), "{deleted}");
    fails(
        sm(&lk, &admin, &["get-secret-value", "--secret-id", "tls/key"]),
        "InvalidRequestException",
    );
    fails(
        sm(
            &lk,
            &admin,
            &["create-secret", "--name", "tls/key", "--secret-string", "x"],
        ),
        "InvalidRequestException",
    );
    let listed = ok(sm(&lk, &admin, &["list-secrets"]));
    assert_eq!(listed["SecretList"].as_array().unwrap().len(), 1);
    let listed = ok(sm(
        &lk,
        &admin,
        &["list-secrets", "--include-planned-deletion"],
    ));
    assert_eq!(listed["SecretList"].as_array().unwrap().len(), 2);
    ok(sm(
        &lk,
        &admin,
        &["restore-secret", "--secret-id", "tls/key"],
    ));
    ok(sm(
        &lk,
        &admin,
        &["get-secret-value", "--secret-id", "tls/key"],
    ));
    ok(sm(
        &lk,
        &admin,
        &[
            "delete-secret",
            "--secret-id",
            "tls/key",
            "--force-delete-without-recovery",
        ],
    ));
    fails(
        sm(&lk, &admin, &["get-secret-value", "--secret-id", "tls/key"]),
        "ResourceNotFoundException",
    );
    // The name is free again.
    ok(sm(
        &lk,
        &admin,
        &[
            "create-secret",
            "--name",
            "tls/key",
            "--secret-string",
            "again",
        ],
    ));

    // Nothing of a value reached the trail or the log.
    let events = audit_events(&lk, |events| {
        events
            .iter()
            .filter(|e| e["eventName"] == "GetSecretValue")
            .count()
            >= 6
    });
    let get = events
        .iter()
        .find(|e| e["eventName"] == "GetSecretValue")
        .unwrap();
    assert_eq!(get["eventSource"], "secretsmanager.amazonaws.com", "{get}");
    let trail = audit_text(&lk);
    let log = std::fs::read_to_string(root.path().join("latchkey.log")).unwrap();
    for value in ["first-value-7Qx", "second-value-9Kd", "another-value"] {
        assert!(!trail.contains(value), "{value} in the trail");
        assert!(!log.contains(value), "{value} in the log");
    }
}

#[test]
fn policies_tags_and_resource_policies_decide_who_reads() {
    let root = tempfile::tempdir().unwrap();
    let (data, api) = init_latchkey(root.path(), &[]);
    let lk = serve_latchkey(root.path(), &data, &api, &[]);
    let admin: Vec<(String, String)> = Vec::new();
    let bob = user_with_policy(&lk, "bob", READER);
    let carol = user_with_policy(&lk, "carol", EVERYTHING);
    ok(sm(
        &lk,
        &admin,
        &[
            "create-secret",
            "--name",
            "pay",
            "--secret-string",
            "pay-value",
            "--tags",
            "Key=team,Value=payments",
        ],
    ));
    ok(sm(
        &lk,
        &admin,
        &[
            "create-secret",
            "--name",
            "ops",
            "--secret-string",
            "ops-value",
            "--tags",
            "Key=team,Value=ops",
        ],
    ));

    // A tag condition: bob reads payments' secret, not ops'.
    assert_eq!(
        ok(sm(&lk, &bob, &["get-secret-value", "--secret-id", "pay"]))["SecretString"],
        "pay-value"
    );
    let err = fails(
        sm(&lk, &bob, &["get-secret-value", "--secret-id", "ops"]),
        "AccessDeniedException",
    );
    assert!(!err.contains("ops-value"), "{err}");
    // A missing secret looks the same as a forbidden one to him.
    fails(
        sm(&lk, &bob, &["get-secret-value", "--secret-id", "nope"]),
        "AccessDeniedException",
    );
    // A Deny on AWSPENDING also stops reading that version by its id.
    let pending = "99999999-2222-3333-4444-555555555555";
    ok(sm(
        &lk,
        &admin,
        &[
            "put-secret-value",
            "--secret-id",
            "pay",
            "--secret-string",
            "pending-value",
            "--client-request-token",
            pending,
            "--version-stages",
            "AWSPENDING",
        ],
    ));
    fails(
        sm(
            &lk,
            &bob,
            &[
                "get-secret-value",
                "--secret-id",
                "pay",
                "--version-stage",
                "AWSPENDING",
            ],
        ),
        "AccessDeniedException",
    );
    fails(
        sm(
            &lk,
            &bob,
            &[
                "get-secret-value",
                "--secret-id",
                "pay",
                "--version-id",
                pending,
            ],
        ),
        "AccessDeniedException",
    );
    // bob may not write.
    fails(
        sm(
            &lk,
            &bob,
            &[
                "put-secret-value",
                "--secret-id",
                "pay",
                "--secret-string",
                "mine",
            ],
        ),
        "AccessDeniedException",
    );

    // The secret's own policy: denying carol wins over her identity
    // policy's Allow; removing it gives her access back.
    assert_eq!(
        ok(sm(&lk, &carol, &["get-secret-value", "--secret-id", "ops"]))["SecretString"],
        "ops-value"
    );
    let deny_carol = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":{{"AWS":"arn:aws:iam::{}:user/carol"}},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}]}}"#,
        account(&lk)
    );
    let validated = ok(sm(
        &lk,
        &admin,
        &["validate-resource-policy", "--resource-policy", &deny_carol],
    ));
    assert_eq!(validated["PolicyValidationPassed"], true, "{validated}");
    let invalid = ok(sm(
        &lk,
        &admin,
        &[
            "validate-resource-policy",
            "--resource-policy",
            r#"{"Statement":[{"Effect":"Allow"}]}"#,
        ],
    ));
    assert_eq!(invalid["PolicyValidationPassed"], false, "{invalid}");
    ok(sm(
        &lk,
        &admin,
        &[
            "put-resource-policy",
            "--secret-id",
            "ops",
            "--resource-policy",
            &deny_carol,
        ],
    ));
    let got = ok(sm(
        &lk,
        &admin,
        &["get-resource-policy", "--secret-id", "ops"],
    ));
    assert!(got["ResourcePolicy"].as_str().unwrap().contains("carol"));
    fails(
        sm(&lk, &carol, &["get-secret-value", "--secret-id", "ops"]),
        "AccessDeniedException",
    );
    // ... and a policy open to everyone is refused when asked to block it.
    let public = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    fails(
        sm(
            &lk,
            &admin,
            &[
                "put-resource-policy",
                "--secret-id",
                "ops",
                "--resource-policy",
                public,
                "--block-public-policy",
            ],
        ),
        "PublicPolicyException",
    );
    ok(sm(
        &lk,
        &admin,
        &["delete-resource-policy", "--secret-id", "ops"],
    ));
    assert_eq!(
        ok(sm(&lk, &carol, &["get-secret-value", "--secret-id", "ops"]))["SecretString"],
        "ops-value"
    );

    // A resource policy may grant on its own: bob, named in it, reads ops.
    let allow_bob = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{}:user/bob"}},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}]}}"#,
        account(&lk)
    );
    ok(sm(
        &lk,
        &admin,
        &[
            "put-resource-policy",
            "--secret-id",
            "ops",
            "--resource-policy",
            &allow_bob,
        ],
    ));
    assert_eq!(
        ok(sm(&lk, &bob, &["get-secret-value", "--secret-id", "ops"]))["SecretString"],
        "ops-value"
    );

    // Batch reads report each refusal in Errors.
    let batch = ok(sm(
        &lk,
        &carol,
        &[
            "batch-get-secret-value",
            "--secret-id-list",
            "pay",
            "ops",
            "nope",
        ],
    ));
    assert_eq!(
        batch["SecretValues"].as_array().unwrap().len(),
        2,
        "{batch}"
    );
    assert_eq!(
        batch["Errors"][0]["ErrorCode"], "ResourceNotFoundException",
        "{batch}"
    );
}

fn account(lk: &Latchkey) -> String {
    let id = ok(sm_sts(lk));
    id["Account"].as_str().unwrap().to_owned()
}

fn sm_sts(lk: &Latchkey) -> Output {
    aws_cli()
        .env("AWS_CONFIG_FILE", lk.data.join("aws.config"))
        .env("AWS_CA_BUNDLE", lk.data.join("ca.pem"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            lk.data.join("admin.credentials"),
        )
        .args(["sts", "get-caller-identity"])
        .output()
        .unwrap()
}

/// boto3: idempotent creation with a token, pagination with the SDK's
/// paginator, and the error codes botocore reads.
#[test]
fn boto3_creates_idempotently_and_pages() {
    let root = tempfile::tempdir().unwrap();
    let (data, api) = init_latchkey(root.path(), &[]);
    let lk = serve_latchkey(root.path(), &data, &api, &[]);
    let script = r#"
import boto3, botocore, json, os
sm = boto3.session.Session().client("secretsmanager")
token = "a" * 40
first = sm.create_secret(Name="svc/one", SecretString="v-one", ClientRequestToken=token)
again = sm.create_secret(Name="svc/one", SecretString="v-one", ClientRequestToken=token)
assert first["ARN"] == again["ARN"] and first["VersionId"] == again["VersionId"] == token, (first, again)
try:
    sm.create_secret(Name="svc/one", SecretString="v-other", ClientRequestToken=token)
    raise SystemExit("a different value under the same token was accepted")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "ResourceExistsException", e.response
for i in range(5):
    sm.create_secret(Name=f"svc/n{i}", SecretString=f"v{i}")
pages = sm.get_paginator("list_secrets").paginate(PaginationConfig={"PageSize": 2})
names = [s["Name"] for p in pages for s in p["SecretList"]]
assert sorted(names) == ["svc/n0", "svc/n1", "svc/n2", "svc/n3", "svc/n4", "svc/one"], names
assert sm.get_secret_value(SecretId="svc/n3")["SecretString"] == "v3"
big = "x" * 65536
sm.create_secret(Name="svc/big", SecretString=big)
assert sm.get_secret_value(SecretId="svc/big")["SecretString"] == big
try:
    sm.put_secret_value(SecretId="svc/big", SecretString=big + "y")
    raise SystemExit("a value over 65,536 bytes was accepted")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidParameterException", e.response
sm.delete_secret(SecretId="svc/big", ForceDeleteWithoutRecovery=True)
d = sm.describe_secret(SecretId="svc/one")
assert d["VersionIdsToStages"] == {token: ["AWSCURRENT"]}, d
print("ok")
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", lk.data.join("aws.config"))
        .env("AWS_CA_BUNDLE", lk.data.join("ca.pem"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            lk.data.join("admin.credentials"),
        )
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&out), "ok");
}
