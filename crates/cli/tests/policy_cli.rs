#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! `latchkey policy validate|simulate` end to end.

use std::process::Command;

use serde_json::Value;

fn latchkey(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

const CONNECT: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Connect","Effect":"Allow","Action":"rds-db:connect",
   "Resource":"arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/${aws:username}",
   "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
  {"Sid":"NoAdmin","Effect":"Deny","Action":"rds-db:connect","Resource":"arn:aws:rds-db:*:*:dbuser:*/admin"}]}"#;

#[test]
fn simulate_decides_and_explains() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.json");
    std::fs::write(&file, CONNECT).unwrap();
    let policy = format!("file://{}", file.display());
    let resource = |u: &str| format!("arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/{u}");
    let (alice, admin) = (resource("alice"), resource("admin"));
    let (code, out) = latchkey(&[
        "policy",
        "simulate",
        "--policy",
        &policy,
        "--action",
        "rds-db:connect",
        "--resource",
        &alice,
        "--resource",
        &admin,
        "--context",
        "aws:username=alice",
        "--context",
        "aws:SourceIp=10.1.2.3",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results[0]["decision"], "allowed");
    assert_eq!(results[0]["matchedStatements"][0]["statement"], "Connect");
    assert_eq!(results[1]["decision"], "explicitDeny");
    assert_eq!(results[1]["matchedStatements"][0]["statement"], "NoAdmin");

    // Missing source IP: implicit deny, naming the failed condition and key.
    let (code, out) = latchkey(&[
        "policy",
        "simulate",
        "--policy",
        &policy,
        "--action",
        "rds-db:connect",
        "--resource",
        &alice,
        "--context",
        "aws:username=alice",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["results"][0]["decision"], "implicitDeny");
    assert_eq!(v["results"][0]["missingContextValues"][0], "aws:SourceIp");
    assert_eq!(
        v["results"][0]["nearMisses"][0]["failedCondition"],
        "IpAddress aws:SourceIp"
    );
}

#[test]
fn validate_reports_paths_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    let bad = dir.path().join("bad.json");
    std::fs::write(&good, CONNECT).unwrap();
    std::fs::write(&bad, r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"IpAddres":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#).unwrap();
    let (code, out) = latchkey(&["policy", "validate", good.to_str().unwrap()]);
    assert_eq!((code, out.ends_with("valid\n")), (0, true));
    let (code, out) = latchkey(&[
        "policy",
        "validate",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files"][0]["valid"], true);
    assert_eq!(
        v["files"][1]["findings"][0]["path"],
        "$.Statement[0].Condition.IpAddres"
    );
    assert!(
        v["files"][1]["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown condition operator")
    );
    // Errors (unreadable file) are not decisions: exit 2.
    let (code, _) = latchkey(&[
        "policy",
        "simulate",
        "--policy",
        "/nonexistent.json",
        "--action",
        "s3:GetObject",
    ]);
    assert_eq!(code, 2);
}

/// A condition key that none of the statement's actions carries is a
/// warning: printed, in the JSON report, and an exit code only with --strict.
#[test]
fn validate_warns_about_keys_the_action_never_carries() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.json");
    std::fs::write(
        &file,
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Deny","Action":["iam:AttachUserPolicy","iam:AttachRolePolicy"],"Resource":"*",
           "Condition":{"ArnEquals":{"iam:PolicyARN":"arn:aws:iam::123456789012:policy/admin"}}},
          {"Effect":"Deny","Action":"iam:CreateUser","Resource":"*",
           "Condition":{"ArnEquals":{"iam:PolicyARN":"arn:aws:iam::123456789012:policy/admin"}}},
          {"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"iam:PolicyARN":"x"}}}]}"#,
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, out) = latchkey(&["policy", "validate", path]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{path}: valid\n")), "{out}");
    assert!(
        out.contains(&format!(
            "{path}: warning: $.Statement[1].Condition.ArnEquals.iam:PolicyARN: condition key iam:PolicyARN is never in the request context of iam:CreateUser"
        )),
        "{out}"
    );
    assert_eq!(out.matches("warning:").count(), 1, "{out}");
    let (code, out) = latchkey(&["policy", "validate", path, "--output", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files"][0]["valid"], true);
    assert_eq!(
        v["files"][0]["warnings"][0]["path"],
        "$.Statement[1].Condition.ArnEquals.iam:PolicyARN"
    );
    assert_eq!(v["files"][0]["warnings"].as_array().unwrap().len(), 1);
    let (code, _) = latchkey(&["policy", "validate", "--strict", path]);
    assert_eq!(code, 1);
    // --strict on a policy without warnings still passes.
    let good = dir.path().join("good.json");
    std::fs::write(&good, CONNECT).unwrap();
    let (code, out) = latchkey(&["policy", "validate", "--strict", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

/// `latchkey policy simulate` gives the documented answer for every case
/// collected from the IAM User Guide (the policy crate's table).
#[test]
fn simulate_agrees_with_every_user_guide_case() {
    let table = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policy/tests/iam_cases.json"
    );
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(table).unwrap()).unwrap();
    assert!(cases.len() >= 100);
    let dir = tempfile::tempdir().unwrap();
    let mut disagreements = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let write = |label: &str, v: &Value| {
            let path = dir.path().join(format!("{n}-{label}.json"));
            std::fs::write(&path, v.to_string()).unwrap();
            path.display().to_string()
        };
        let mut args: Vec<String> = vec![
            "policy".into(),
            "simulate".into(),
            "--output".into(),
            "json".into(),
        ];
        for (i, p) in case["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            args.extend(["--policy".into(), write(&format!("p{i}"), p)]);
        }
        for (flag, key) in [
            ("--resource-policy", "resourcePolicy"),
            ("--permissions-boundary", "permissionsBoundary"),
            ("--session-policy", "sessionPolicy"),
        ] {
            if !case[key].is_null() {
                args.extend([flag.into(), write(key, &case[key])]);
            }
        }
        args.extend(["--action".into(), case["action"].as_str().unwrap().into()]);
        args.extend([
            "--resource".into(),
            case["resource"].as_str().unwrap_or("*").into(),
        ]);
        if let Some(caller) = case["callerArn"].as_str() {
            args.extend(["--caller-arn".into(), caller.into()]);
        }
        for (key, values) in case["context"].as_object().into_iter().flatten() {
            let values: Vec<String> = match values {
                Value::Array(a) => a
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect(),
                Value::String(s) => vec![s.clone()],
                other => vec![other.to_string()],
            };
            args.extend(["--context".into(), format!("{key}={}", values.join(","))]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out) = latchkey(&args);
        assert_eq!(code, 0, "{}", case["name"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        if v["results"][0]["decision"] != case["expected"] {
            disagreements.push(format!(
                "{}: {} != {}",
                case["name"], v["results"][0]["decision"], case["expected"]
            ));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

/// Access Analyzer's path elements as a JSON path (`$.Statement[0].Resource`).
fn json_path(elements: &Value) -> String {
    let mut out = "$".to_owned();
    for e in elements.as_array().unwrap() {
        match (e.get("value"), e.get("index")) {
            (Some(key), None) => out += &format!(".{}", key.as_str().unwrap()),
            (None, Some(i)) => out += &format!("[{i}]"),
            _ => panic!("not a path element: {e}"),
        }
    }
    out
}

#[test]
fn validate_gives_access_analyzers_findings() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let risky = write(
        "risky.json",
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":["iam:PassRole","iam:GetUser","iam:Get*"],"Resource":"*"},
          {"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:kms:us-east-1:123456789012:key/k"}]}"#,
    );
    let (code, out) = latchkey(&["policy", "validate", &risky, "--output", "json"]);
    assert_eq!(code, 0, "warnings alone pass without --strict: {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let found: Vec<(String, String, String)> = v["files"][0]["analyzerFindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["findingType"].as_str().unwrap().to_owned(),
                f["issueCode"].as_str().unwrap().to_owned(),
                json_path(&f["locations"][0]["path"]),
            )
        })
        .collect();
    for expected in [
        (
            "SECURITY_WARNING",
            "PASS_ROLE_WITH_STAR_IN_RESOURCE",
            "$.Statement[0].Resource",
        ),
        (
            "WARNING",
            "RESOURCE_DOES_NOT_MATCH_ACTION",
            "$.Statement[1].Resource",
        ),
        ("SUGGESTION", "REDUNDANT_ACTION", "$.Statement[0].Action[1]"),
    ] {
        let expected = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        assert!(found.contains(&expected), "{expected:?} in {found:?}");
    }
    let (code, out) = latchkey(&["policy", "validate", "--strict", &risky]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("SECURITY_WARNING PASS_ROLE_WITH_STAR_IN_RESOURCE $.Statement[0].Resource"),
        "{out}"
    );
    // An action no Latchkey service has is an error, --strict or not.
    let typo = write(
        "typo.json",
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sql:Selekt","Resource":"*"}}"#,
    );
    let (code, out) = latchkey(&["policy", "validate", &typo]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ERROR INVALID_ACTION $.Statement.Action[0]"),
        "{out}"
    );
    // A trust policy for another account without sts:ExternalId, when the
    // account is known.
    let trust = write(
        "trust.json",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"sts:AssumeRole"}]}"#,
    );
    let (_, out) = latchkey(&[
        "policy",
        "validate",
        "--kind",
        "trust",
        "--account",
        "123456789012",
        &trust,
    ]);
    assert!(
        out.contains("CROSS_ACCOUNT_ASSUME_ROLE_WITHOUT_EXTERNAL_ID"),
        "{out}"
    );
    let (_, out) = latchkey(&["policy", "validate", "--kind", "trust", &trust]);
    assert!(
        !out.contains("CROSS_ACCOUNT"),
        "no account, no judgement: {out}"
    );
}
