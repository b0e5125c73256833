#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Table cases drawn from the IAM User Guide (each cites its section in
//! `iam_cases.json`), and invalid policies that must be rejected at the
//! right JSON path (`iam_validation_cases.json`).

use latchkey_policy::{CompiledPolicy, Decision, PolicyKind, PolicySet, Request, parse};
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str::<Vec<Value>>(&text).unwrap()
}

fn compile(case: &str, label: &str, v: &Value, kind: PolicyKind) -> CompiledPolicy {
    let policy = parse(&v.to_string(), kind)
        .unwrap_or_else(|f| panic!("case {case}: {label} does not validate: {f:?}"));
    CompiledPolicy::compile(label, &policy)
}

pub fn request_from(case: &Value) -> Request {
    let mut req = Request::new(
        case["action"].as_str().unwrap(),
        case["resource"].as_str().unwrap_or("*"),
    );
    if let Some(caller) = case["callerArn"].as_str() {
        req = req.with_caller(caller);
    }
    if let Some(ctx) = case["context"].as_object() {
        for (key, values) in ctx {
            let values: Vec<String> = match values {
                Value::Array(a) => a
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect(),
                Value::String(s) => vec![s.clone()],
                other => vec![other.to_string()],
            };
            req.set_context(key, values);
        }
    }
    req
}

#[test]
fn iam_user_guide_cases() {
    let cases = load("iam_cases.json");
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        assert!(
            case["source"].as_str().is_some_and(|s| s.contains("IAM")),
            "{name}: cite a source"
        );
        let mut set = PolicySet::default();
        for (i, p) in case["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            set.identity
                .push(compile(name, &format!("policy{i}"), p, PolicyKind::Identity).into());
        }
        if !case["resourcePolicy"].is_null() {
            set.resource = Some(std::sync::Arc::new(compile(
                name,
                "resourcePolicy",
                &case["resourcePolicy"],
                PolicyKind::Resource,
            )));
        }
        if !case["permissionsBoundary"].is_null() {
            set.permissions_boundary = Some(compile(
                name,
                "permissionsBoundary",
                &case["permissionsBoundary"],
                PolicyKind::Identity,
            ));
        }
        if !case["sessionPolicy"].is_null() {
            set.session.push(compile(
                name,
                "sessionPolicy",
                &case["sessionPolicy"],
                PolicyKind::Identity,
            ));
        }
        let req = request_from(case);
        let want = case["expected"].as_str().unwrap();
        let got = set.decide(&req);
        let explained = set.explain(&req);
        assert_eq!(
            explained.decision, got,
            "{name}: explain and decide disagree"
        );
        if got.as_str() != want {
            failures.push(format!("{name}: expected {want}, got {}", got.as_str()));
        }
        match got {
            Decision::Allowed | Decision::ExplicitDeny => {
                assert!(
                    !explained.matched.is_empty(),
                    "{name}: no deciding statement"
                )
            }
            Decision::ImplicitDeny => assert!(explained.matched.is_empty()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_policies_are_rejected_at_the_right_path() {
    let cases = load("iam_validation_cases.json");
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let text = match &case["policy"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let kind = match case["kind"].as_str() {
            Some("resource") => PolicyKind::Resource,
            Some("trust") => PolicyKind::Trust,
            _ => PolicyKind::Identity,
        };
        match parse(&text, kind) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(findings) => {
                let path = case["path"].as_str().unwrap();
                let reason = case["reason"].as_str().unwrap().to_lowercase();
                // A finding at the expected element or inside it (we name
                // the exact key or list index when there is one).
                let at = |p: &str| {
                    p == path
                        || p.starts_with(&format!("{path}."))
                        || p.starts_with(&format!("{path}["))
                };
                let hit = findings.iter().any(|f| {
                    at(&f.path)
                        && reason
                            .split_whitespace()
                            .all(|w| f.message.to_lowercase().contains(w))
                });
                if !hit {
                    failures.push(format!("{name}: want {path} '{reason}', got {findings:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
