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

/// The text `location`'s span covers in `text` (offsets in characters).
fn spanned(text: &str, location: &Value) -> String {
    let offset = |p: &str| location["span"][p]["offset"].as_u64().unwrap() as usize;
    text.chars()
        .skip(offset("start"))
        .take(offset("end") - offset("start"))
        .collect()
}

/// Access Analyzer's path elements as keys and indexes, joined by `/`.
fn path_of(location: &Value) -> String {
    location["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match (e.get("value"), e.get("index")) {
            (Some(k), None) => k.as_str().unwrap().to_owned(),
            (None, Some(i)) => i.to_string(),
            _ => panic!("not a path element: {e}"),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// IAM Access Analyzer's `ValidatePolicy` (REST-JSON) with the stock CLI
/// and a boto3 paginator: findings with their types, issue codes and
/// locations (path elements and a span that covers the offending text),
/// syntax errors located where parsing stopped, trust policies, who may
/// call it, and the call in the audit trail.
#[test]
fn validate_policy_with_the_aws_cli_and_boto3() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ApiServer::start(&tmp.path().join("data"));
    let validate = |creds: Option<&Creds>, args: &[&str]| {
        let mut all = vec!["accessanalyzer", "validate-policy"];
        all.extend_from_slice(args);
        aws(&server, creds, &all)
    };
    let risky = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Effect\": \"Allow\", \"Action\": [\"iam:PassRole\", \"sql:Selekt\"], \"Resource\": \"*\"},\n    {\"Effect\": \"Allow\", \"NotAction\": \"iam:*\", \"Resource\": \"*\"},\n    {\"Effect\": \"Allow\", \"Action\": \"iam:GetUser\", \"Resource\": [\"arn:aws:iam::123456789012:role/app\", \"arn:aws:rds-db:us-east-1:123456789012:dbusr:db-A/app\"]},\n    {\"Effect\": \"Allow\", \"Action\": \"IAM:passrole\", \"Resource\": \"arn:aws:iam::123456789012:role/app\"}\n  ]\n}";
    let v = ok(validate(
        None,
        &[
            "--policy-type",
            "IDENTITY_POLICY",
            "--policy-document",
            risky,
        ],
    ));
    let found: Vec<(String, String, String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(f["learnMoreLink"].as_str().unwrap().starts_with("https://"));
            let at = &f["locations"][0];
            (
                f["findingType"].as_str().unwrap().to_owned(),
                f["issueCode"].as_str().unwrap().to_owned(),
                path_of(at),
                spanned(risky, at),
            )
        })
        .collect();
    let has = |t: &str, code: &str, path: &str, text: &str| {
        let expected = (
            t.to_owned(),
            code.to_owned(),
            path.to_owned(),
            text.to_owned(),
        );
        assert!(found.contains(&expected), "{expected:?} in {found:?}");
    };
    has(
        "ERROR",
        "INVALID_ACTION",
        "Statement/0/Action/1",
        "\"sql:Selekt\"",
    );
    has(
        "SECURITY_WARNING",
        "PASS_ROLE_WITH_STAR_IN_RESOURCE",
        "Statement/0/Resource",
        "\"*\"",
    );
    let passrole = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["issueCode"] == "PASS_ROLE_WITH_STAR_IN_RESOURCE")
        .unwrap();
    let start = &passrole["locations"][0]["span"]["start"];
    assert_eq!(start["line"], 4, "lines count from 1: {start}");
    assert_eq!(
        start["column"],
        risky.lines().nth(3).unwrap().find("\"*\"").unwrap(),
        "columns count from 0"
    );
    assert!(
        found.iter().any(|f| f.2 == "Statement/1/NotAction"),
        "an Allow with NotAction: {found:?}"
    );
    // Resources of a type the actions never act on; a statement another
    // one already covers.
    has(
        "WARNING",
        "RESOURCE_DOES_NOT_MATCH_ACTION",
        "Statement/2/Resource/0",
        "\"arn:aws:iam::123456789012:role/app\"",
    );
    has(
        "ERROR",
        "INVALID_ARN_RESOURCE",
        "Statement/2/Resource/1",
        "\"arn:aws:rds-db:us-east-1:123456789012:dbusr:db-A/app\"",
    );
    let redundant = found
        .iter()
        .find(|f| f.1 == "REDUNDANT_STATEMENT")
        .expect("a redundant statement");
    assert_eq!(
        (redundant.0.as_str(), redundant.2.as_str()),
        ("SUGGESTION", "Statement/3")
    );
    assert!(redundant.3.starts_with('{') && redundant.3.ends_with('}'));

    // Broken JSON: one ERROR, located where parsing stopped.
    let broken = "{\"Version\": \"2012-10-17\",\n \"Statement\": [}";
    let v = ok(validate(
        None,
        &[
            "--policy-type",
            "IDENTITY_POLICY",
            "--policy-document",
            broken,
        ],
    ));
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v}");
    assert_eq!(findings[0]["findingType"], "ERROR");
    assert_eq!(findings[0]["issueCode"], "JSON_SYNTAX_ERROR");
    assert_eq!(spanned(broken, &findings[0]["locations"][0]), "}");
    assert_eq!(findings[0]["locations"][0]["span"]["start"]["line"], 2);
    // A policy the parser refuses: its errors, with Access Analyzer's codes.
    let v = ok(validate(
        None,
        &[
            "--policy-type",
            "IDENTITY_POLICY",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*","Principal":"*"}]}"#,
        ],
    ));
    let codes: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["issueCode"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"MISSING_ACTION") && codes.contains(&"UNSUPPORTED_PRINCIPAL"),
        "{codes:?}"
    );
    // A clean policy has no findings.
    let v = ok(validate(
        None,
        &[
            "--policy-type",
            "IDENTITY_POLICY",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::123456789012:user/a"}]}"#,
        ],
    ));
    assert_eq!(v["findings"], serde_json::json!([]), "{v}");
    // A misspelt global condition key is an error, located at the key: the
    // condition would never match, and a Deny on it would never apply.
    let misspelt = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresnt":"false"}}}]}"#;
    let v = ok(validate(
        None,
        &[
            "--policy-type",
            "IDENTITY_POLICY",
            "--policy-document",
            misspelt,
        ],
    ));
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v}");
    assert_eq!(findings[0]["findingType"], "ERROR");
    assert_eq!(findings[0]["issueCode"], "INVALID_GLOBAL_CONDITION_KEY");
    assert_eq!(
        path_of(&findings[0]["locations"][0]),
        "Statement/0/Condition/Bool/aws:MultiFactorAuthPresnt"
    );

    // A role's trust policy open to anyone.
    let v = ok(validate(
        None,
        &[
            "--policy-type",
            "RESOURCE_POLICY",
            "--validate-policy-resource-type",
            "AWS::IAM::AssumeRolePolicyDocument",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"}]}"#,
        ],
    ));
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["findingType"] == "SECURITY_WARNING"
                && path_of(&f["locations"][0]) == "Statement/0/Principal"),
        "{v}"
    );
    // A resource policy larger than an identity policy may be (a KMS key
    // policy may have 32,768 characters): no size error, and its own
    // mistakes reported.
    let mut statements: Vec<Value> = (0..60)
        .map(|i| {
            serde_json::json!({"Sid": format!("S{i}"), "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "kms:Decrypt", "Resource": "*"})
        })
        .collect();
    statements.push(serde_json::json!({"Effect": "Alow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:Decrypt", "Resource": "*"}));
    let big = serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    assert!(big.len() > 6144);
    let v = ok(validate(
        None,
        &[
            "--policy-type",
            "RESOURCE_POLICY",
            "--policy-document",
            &big,
        ],
    ));
    let codes: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["issueCode"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["INVALID_EFFECT"], "{v}");

    // Bad input: a clear error.
    let out = validate(
        None,
        &[
            "--policy-type",
            "SERVICE_CONTROL_POLICY",
            "--policy-document",
            "{}",
        ],
    );
    assert_eq!(error_code(&out), "ValidationException");

    // Who may call it: a user without access-analyzer:ValidatePolicy may
    // not; one with it may.
    let other = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"*"}]}"#;
    let nobody = common::api::user(&server, "nobody", other);
    let out = validate(
        Some(&nobody),
        &[
            "--policy-type",
            "IDENTITY_POLICY",
            "--policy-document",
            other,
        ],
    );
    assert_eq!(error_code(&out), "AccessDeniedException");
    let checker = common::api::user(
        &server,
        "checker",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"access-analyzer:ValidatePolicy","Resource":"*"}]}"#,
    );
    ok(validate(
        Some(&checker),
        &[
            "--policy-type",
            "IDENTITY_POLICY",
            "--policy-document",
            other,
        ],
    ));

    // boto3's paginator, one finding a page (maxResults and nextToken in
    // the query string), gives what one call gives.
    let out = python(
        r#"
import configparser, json, sys, boto3
url, ca, creds_file, policy = sys.argv[1:5]
cfg = configparser.ConfigParser(); cfg.read(creds_file)
aa = boto3.client("accessanalyzer", endpoint_url=url, verify=ca, region_name="us-east-1",
    aws_access_key_id=cfg["default"]["aws_access_key_id"],
    aws_secret_access_key=cfg["default"]["aws_secret_access_key"])
pages = list(aa.get_paginator("validate_policy").paginate(
    policyDocument=policy, policyType="IDENTITY_POLICY", PaginationConfig={"PageSize": 1}))
whole = aa.validate_policy(policyDocument=policy, policyType="IDENTITY_POLICY")
print(json.dumps({
    "pages": len(pages),
    "paged": [f["issueCode"] for p in pages for f in p["findings"]],
    "whole": [f["issueCode"] for f in whole["findings"]],
}))
"#,
        &[
            server.endpoint().as_str(),
            server.dir.join("ca.pem").to_str().unwrap(),
            server.dir.join("admin.credentials").to_str().unwrap(),
            risky,
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["pages"].as_u64().unwrap() >= 3, "{v}");
    assert_eq!(v["paged"], v["whole"]);

    // Each call is in the trail, under Access Analyzer's event source.
    let (_, records) = common::trail_in(&server.dir, |r| {
        r.iter()
            .any(|e| e["eventSource"] == "access-analyzer.amazonaws.com")
    });
    let calls: Vec<&Value> = records
        .iter()
        .filter(|e| e["eventSource"] == "access-analyzer.amazonaws.com")
        .collect();
    assert!(
        calls.iter().all(|e| e["eventName"] == "ValidatePolicy"),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|e| e["errorCode"] == "AccessDeniedException"),
        "the refusal is recorded: {calls:?}"
    );
}
