#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Properties of evaluation over random policies built from a small
//! vocabulary (so that statements often overlap).

use latchkey_policy::{CompiledPolicy, Decision, PolicyKind, PolicySet, Request, parse};
use proptest::prelude::*;
use serde_json::{Value, json};

const ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:Get*",
    "s3:*",
    "*",
    "rds-db:connect",
    "ec2:RunInstances",
    "s3:PutObject",
];
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:s3:::b/*",
    "arn:aws:s3:::b/k",
    "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/*",
    "arn:aws:s3:::b/${aws:username}",
];

fn condition() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!({"StringEquals": {"aws:username": "alice"}}))),
        Just(Some(json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))),
        Just(Some(
            json!({"Bool": {"aws:MultiFactorAuthPresent": "true"}})
        )),
        Just(Some(
            json!({"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}})
        )),
        Just(Some(json!({"StringNotEquals": {"aws:username": "bob"}}))),
    ]
}

fn statement() -> impl Strategy<Value = Value> {
    (
        prop::bool::ANY,
        prop::bool::ANY,
        prop::sample::subsequence(ACTIONS, 1..3),
        prop::sample::subsequence(RESOURCES, 1..3),
        condition(),
    )
        .prop_map(|(allow, not_action, actions, resources, cond)| {
            let mut s = json!({"Effect": if allow { "Allow" } else { "Deny" }});
            s[if not_action { "NotAction" } else { "Action" }] = json!(actions);
            s["Resource"] = json!(resources);
            if let Some(c) = cond {
                s["Condition"] = c;
            }
            s
        })
}

fn policy() -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(statement(), 1..6)
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(
            &[
                "s3:GetObject",
                "s3:PutObject",
                "rds-db:connect",
                "ec2:RunInstances",
            ][..],
        ),
        prop::sample::select(
            &[
                "arn:aws:s3:::b/k",
                "arn:aws:s3:::b/alice",
                "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/app",
            ][..],
        ),
        prop::option::of(prop::sample::select(&["alice", "bob"][..])),
        prop::option::of(prop::sample::select(&["10.1.2.3", "192.0.2.1"][..])),
        prop::option::of(prop::sample::select(&["true", "false"][..])),
    )
        .prop_map(|(action, resource, user, ip, mfa)| {
            let mut r = Request::new(action, resource);
            for (k, v) in [
                ("aws:username", user),
                ("aws:SourceIp", ip),
                ("aws:MultiFactorAuthPresent", mfa),
            ] {
                if let Some(v) = v {
                    r.set_context(k, [v]);
                }
            }
            r
        })
}

fn compile(statements: &[Value]) -> CompiledPolicy {
    let doc = json!({"Version": "2012-10-17", "Statement": statements});
    CompiledPolicy::compile("p", &parse(&doc.to_string(), PolicyKind::Identity).unwrap())
}

fn decide(policies: &[Vec<Value>], req: &Request) -> Decision {
    let set = PolicySet {
        identity: policies.iter().map(|p| compile(p).into()).collect(),
        ..PolicySet::default()
    };
    set.decide(req)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn an_explicit_deny_always_wins(policies in prop::collection::vec(policy(), 1..3), req in request()) {
        let mut with_deny = policies.clone();
        with_deny[0].push(json!({"Effect": "Deny", "Action": "*", "Resource": "*"}));
        prop_assert_eq!(decide(&with_deny, &req), Decision::ExplicitDeny);
    }

    #[test]
    fn adding_an_allow_never_denies(policies in prop::collection::vec(policy(), 1..3), extra in statement(), req in request()) {
        let before = decide(&policies, &req);
        let mut more = policies.clone();
        let mut allow = extra;
        allow["Effect"] = json!("Allow");
        more[0].push(allow);
        let after = decide(&more, &req);
        if before == Decision::Allowed {
            prop_assert_eq!(after, Decision::Allowed);
        }
        if before == Decision::ExplicitDeny {
            prop_assert_eq!(after, Decision::ExplicitDeny);
        }
    }

    #[test]
    fn statement_order_never_matters(statements in policy(), req in request(), seed in any::<u64>()) {
        let mut shuffled = statements.clone();
        // Deterministic Fisher-Yates from the seed.
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(decide(&[statements], &req), decide(&[shuffled], &req));
    }

    #[test]
    fn canonical_json_round_trips(statements in policy()) {
        let doc = json!({"Version": "2012-10-17", "Statement": statements});
        let policy = parse(&doc.to_string(), PolicyKind::Identity).unwrap();
        let canonical = policy.to_canonical_json();
        let again = parse(&canonical.to_string(), PolicyKind::Identity).unwrap();
        prop_assert_eq!(&again, &policy);
        prop_assert_eq!(again.to_canonical_json(), canonical);
    }

    #[test]
    fn parser_never_panics(text in "\\PC{0,300}") {
        let _ = parse(&text, PolicyKind::Identity);
    }
}
