#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! IAM's policy simulator (`SimulateCustomPolicy`, `SimulatePrincipalPolicy`,
//! `GetContextKeysFor*Policy`) end to end: one `latchkey serve` on a random
//! port, driven by the stock AWS CLI and a boto3 paginator.

mod common;

use common::api::{ApiServer, Creds, aws, error_code, ok, python};
use serde_json::Value;

fn decisions(v: &Value) -> Vec<(String, String)> {
    v["EvaluationResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["EvalActionName"].as_str().unwrap().to_owned(),
                r["EvalDecision"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, d)| ((*a).to_owned(), (*d).to_owned()))
        .collect()
}

const CUSTOM: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Create","Effect":"Allow","Action":["iam:CreateUser","iam:GetUser"],"Resource":"*"},
  {"Sid":"NoDelete","Effect":"Deny","Action":"iam:DeleteUser","Resource":"*"},
  {"Sid":"Connect","Effect":"Allow","Action":"rds-db:connect","Resource":"*",
   "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;

#[test]
fn simulator_with_the_aws_cli_and_boto3() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ApiServer::start(&tmp.path().join("data"));
    let me = ok(aws(&server, None, &["sts", "get-caller-identity"]));
    let account = me["Account"].as_str().unwrap().to_owned();

    // ---- SimulateCustomPolicy: the three decisions ----
    let v = ok(aws(
        &server,
        None,
        &[
            "iam",
            "simulate-custom-policy",
            "--policy-input-list",
            CUSTOM,
            "--action-names",
            "iam:CreateUser",
            "iam:DeleteUser",
            "s3:GetObject",
        ],
    ));
    assert_eq!(
        decisions(&v),
        pairs(&[
            ("iam:CreateUser", "allowed"),
            ("iam:DeleteUser", "explicitDeny"),
            ("s3:GetObject", "implicitDeny"),
        ])
    );
    let r = &v["EvaluationResults"];
    assert_eq!(r[0]["EvalResourceName"], "*");
    let m = &r[0]["MatchedStatements"][0];
    assert_eq!(m["SourcePolicyId"], "PolicyInputList.1");
    assert_eq!(m["StartPosition"]["Line"], 2);
    assert_eq!(r[1]["MatchedStatements"][0]["StartPosition"]["Line"], 3);
    assert_eq!(r[2]["MatchedStatements"], Value::Array(vec![]));

    // A condition: satisfied by a context entry, missing without one.
    let connect = |extra: &[&str]| {
        let mut args = vec![
            "iam",
            "simulate-custom-policy",
            "--policy-input-list",
            CUSTOM,
            "--action-names",
            "rds-db:connect",
            "--resource-arns",
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/app",
        ];
        args.extend_from_slice(extra);
        ok(aws(&server, None, &args))
    };
    let v = connect(&[
        "--context-entries",
        "ContextKeyName=aws:SourceIp,ContextKeyValues=10.1.2.3,ContextKeyType=ip",
    ]);
    let r = &v["EvaluationResults"][0];
    assert_eq!(r["EvalDecision"], "allowed", "{v}");
    assert_eq!(
        r["EvalResourceName"],
        "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/app"
    );
    assert_eq!(
        r["ResourceSpecificResults"][0]["EvalResourceDecision"],
        "allowed"
    );
    let v = connect(&[
        "--context-entries",
        "ContextKeyName=aws:SourceIp,ContextKeyValues=192.0.2.1,ContextKeyType=ip",
    ]);
    assert_eq!(v["EvaluationResults"][0]["EvalDecision"], "implicitDeny");
    assert_eq!(
        v["EvaluationResults"][0]["MissingContextValues"],
        Value::Array(vec![])
    );
    let v = connect(&[]);
    let r = &v["EvaluationResults"][0];
    assert_eq!(r["EvalDecision"], "implicitDeny");
    assert_eq!(r["MissingContextValues"][0], "aws:SourceIp");
    // A context value that is not of its type, and a malformed policy.
    let out = aws(
        &server,
        None,
        &[
            "iam",
            "simulate-custom-policy",
            "--policy-input-list",
            CUSTOM,
            "--action-names",
            "rds-db:connect",
            "--context-entries",
            "ContextKeyName=aws:SourceIp,ContextKeyValues=nowhere,ContextKeyType=ip",
        ],
    );
    assert_eq!(error_code(&out), "InvalidInput");
    let out = aws(
        &server,
        None,
        &[
            "iam",
            "simulate-custom-policy",
            "--policy-input-list",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:CreateUser"}]}"#,
            "--action-names",
            "iam:CreateUser",
        ],
    );
    assert_eq!(error_code(&out), "MalformedPolicyDocument");

    // ---- SimulatePrincipalPolicy: a user with a group policy and an attached managed policy ----
    ok(aws(
        &server,
        None,
        &[
            "iam",
            "create-user",
            "--user-name",
            "bob",
            "--path",
            "/eng/",
        ],
    ));
    let key = ok(aws(
        &server,
        None,
        &["iam", "create-access-key", "--user-name", "bob"],
    ));
    let bob = Creds::access_key(&key);
    ok(aws(
        &server,
        None,
        &["iam", "create-group", "--group-name", "devs"],
    ));
    ok(aws(
        &server,
        None,
        &[
            "iam",
            "add-user-to-group",
            "--group-name",
            "devs",
            "--user-name",
            "bob",
        ],
    ));
    ok(aws(
        &server,
        None,
        &[
            "iam",
            "put-group-policy",
            "--group-name",
            "devs",
            "--policy-name",
            "create-users",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"CreateUsers","Effect":"Allow","Action":"iam:CreateUser","Resource":"*"}]}"#,
        ],
    ));
    let managed = ok(aws(
        &server,
        None,
        &[
            "iam",
            "create-policy",
            "--policy-name",
            "read-self",
            "--policy-document",
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["iam:GetUser","iam:ListAccessKeys"],"Resource":"arn:aws:iam::{account}:user/eng/${{aws:username}}","Condition":{{"Bool":{{"aws:SecureTransport":"true"}}}}}},{{"Effect":"Allow","Action":"iam:GetUser","Resource":"*"}}]}}"#
            ),
        ],
    ));
    let policy_arn = managed["Policy"]["Arn"].as_str().unwrap().to_owned();
    ok(aws(
        &server,
        None,
        &[
            "iam",
            "attach-user-policy",
            "--user-name",
            "bob",
            "--policy-arn",
            &policy_arn,
        ],
    ));
    let bob_arn = format!("arn:aws:iam::{account}:user/eng/bob");
    let v = ok(aws(
        &server,
        None,
        &[
            "iam",
            "simulate-principal-policy",
            "--policy-source-arn",
            &bob_arn,
            "--action-names",
            "iam:CreateUser",
            "iam:GetUser",
            "iam:DeleteUser",
            "iam:ListAccessKeys",
        ],
    ));
    assert_eq!(
        decisions(&v),
        pairs(&[
            ("iam:CreateUser", "allowed"),
            ("iam:GetUser", "allowed"),
            ("iam:DeleteUser", "implicitDeny"),
            ("iam:ListAccessKeys", "implicitDeny"),
        ])
    );
    let r = &v["EvaluationResults"];
    assert_eq!(
        r[0]["MatchedStatements"][0]["SourcePolicyId"],
        "create-users"
    );
    assert_eq!(r[0]["MatchedStatements"][0]["SourcePolicyType"], "group");
    assert_eq!(r[1]["MatchedStatements"][0]["SourcePolicyId"], "read-self");
    assert_eq!(
        r[1]["MatchedStatements"][0]["SourcePolicyType"],
        "user-managed"
    );
    let mut missing: Vec<&str> = r[3]["MissingContextValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    missing.sort_unstable();
    assert_eq!(missing, ["aws:SecureTransport", "aws:username"], "{v}");
    // As AWS, the simulator invents no context: the variable and the
    // condition need entries.
    let v = ok(aws(
        &server,
        None,
        &[
            "iam",
            "simulate-principal-policy",
            "--policy-source-arn",
            &bob_arn,
            "--action-names",
            "iam:ListAccessKeys",
            "--resource-arns",
            &bob_arn,
            "--context-entries",
            "ContextKeyName=aws:username,ContextKeyValues=bob,ContextKeyType=string",
            "ContextKeyName=aws:SecureTransport,ContextKeyValues=true,ContextKeyType=boolean",
        ],
    ));
    assert_eq!(v["EvaluationResults"][0]["EvalDecision"], "allowed", "{v}");
    assert_eq!(
        v["EvaluationResults"][0]["MissingContextValues"],
        Value::Array(vec![])
    );

    // The simulated decisions are what the engine enforces on bob's real calls.
    ok(aws(
        &server,
        Some(&bob),
        &["iam", "create-user", "--user-name", "carol"],
    ));
    let out = aws(
        &server,
        Some(&bob),
        &["iam", "delete-user", "--user-name", "carol"],
    );
    assert_eq!(error_code(&out), "AccessDenied");
    ok(aws(
        &server,
        Some(&bob),
        &["iam", "list-access-keys", "--user-name", "bob"],
    ));

    // ---- GetContextKeysForPrincipalPolicy / CustomPolicy ----
    let v = ok(aws(
        &server,
        None,
        &[
            "iam",
            "get-context-keys-for-principal-policy",
            "--policy-source-arn",
            &bob_arn,
        ],
    ));
    let mut keys: Vec<&str> = v["ContextKeyNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["aws:SecureTransport", "aws:username"]);
    let v = ok(aws(
        &server,
        None,
        &[
            "iam",
            "get-context-keys-for-custom-policy",
            "--policy-input-list",
            CUSTOM,
        ],
    ));
    assert_eq!(v["ContextKeyNames"], serde_json::json!(["aws:SourceIp"]));

    // ---- Errors and authorisation ----
    let out = aws(
        &server,
        None,
        &[
            "iam",
            "simulate-principal-policy",
            "--policy-source-arn",
            &format!("arn:aws:iam::{account}:user/nobody"),
            "--action-names",
            "iam:GetUser",
        ],
    );
    assert_eq!(error_code(&out), "NoSuchEntity");
    // A user without the simulator's permissions is refused, about itself
    // too.
    for args in [
        vec![
            "iam",
            "simulate-principal-policy",
            "--policy-source-arn",
            &bob_arn,
            "--action-names",
            "iam:GetUser",
        ],
        vec![
            "iam",
            "get-context-keys-for-principal-policy",
            "--policy-source-arn",
            &bob_arn,
        ],
        vec![
            "iam",
            "simulate-custom-policy",
            "--policy-input-list",
            CUSTOM,
            "--action-names",
            "iam:GetUser",
        ],
    ] {
        let out = aws(&server, Some(&bob), &args);
        assert_eq!(error_code(&out), "AccessDenied", "{args:?}");
    }
    // Granted on bob's own ARN (path included), bob may simulate himself.
    ok(aws(
        &server,
        None,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "bob",
            "--policy-name",
            "simulate-self",
            "--policy-document",
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"iam:SimulatePrincipalPolicy","Resource":"arn:aws:iam::{account}:user/eng/bob"}}]}}"#
            ),
        ],
    ));
    let v = ok(aws(
        &server,
        Some(&bob),
        &[
            "iam",
            "simulate-principal-policy",
            "--policy-source-arn",
            &bob_arn,
            "--action-names",
            "iam:CreateUser",
        ],
    ));
    assert_eq!(v["EvaluationResults"][0]["EvalDecision"], "allowed");
    let out = aws(
        &server,
        Some(&bob),
        &[
            "iam",
            "simulate-principal-policy",
            "--policy-source-arn",
            &format!("arn:aws:iam::{account}:user/admin"),
            "--action-names",
            "iam:CreateUser",
        ],
    );
    assert_eq!(error_code(&out), "AccessDenied");

    // ---- boto3's paginator over the results (MaxItems/Marker) ----
    let out = python(
        r#"
import configparser, json, sys, boto3
url, ca, creds_file, policy = sys.argv[1:5]
cfg = configparser.ConfigParser(); cfg.read(creds_file)
iam = boto3.client("iam", endpoint_url=url, verify=ca, region_name="us-east-1",
    aws_access_key_id=cfg["default"]["aws_access_key_id"],
    aws_secret_access_key=cfg["default"]["aws_secret_access_key"])
pages = list(iam.get_paginator("simulate_custom_policy").paginate(
    PolicyInputList=[policy],
    ActionNames=["iam:CreateUser", "iam:DeleteUser", "s3:GetObject"],
    ResourceArns=["arn:aws:iam::123456789012:user/a", "arn:aws:iam::123456789012:user/b"],
    PaginationConfig={"PageSize": 4}))
print(json.dumps({
    "pages": len(pages),
    "truncated": [p["IsTruncated"] for p in pages],
    "results": [[r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"]] for p in pages for r in p["EvaluationResults"]],
}))
"#,
        &[
            server.endpoint().as_str(),
            server.dir.join("ca.pem").to_str().unwrap(),
            server.dir.join("admin.credentials").to_str().unwrap(),
            CUSTOM,
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pages"], 2, "{v}");
    assert_eq!(v["truncated"], serde_json::json!([true, false]));
    assert_eq!(
        v["results"],
        serde_json::json!([
            [
                "iam:CreateUser",
                "arn:aws:iam::123456789012:user/a",
                "allowed"
            ],
            [
                "iam:CreateUser",
                "arn:aws:iam::123456789012:user/b",
                "allowed"
            ],
            [
                "iam:DeleteUser",
                "arn:aws:iam::123456789012:user/a",
                "explicitDeny"
            ],
            [
                "iam:DeleteUser",
                "arn:aws:iam::123456789012:user/b",
                "explicitDeny"
            ],
            [
                "s3:GetObject",
                "arn:aws:iam::123456789012:user/a",
                "implicitDeny"
            ],
            [
                "s3:GetObject",
                "arn:aws:iam::123456789012:user/b",
                "implicitDeny"
            ],
        ])
    );
}
