//! Policy decisions per second, one core.
//!
//! `cargo bench -p latchkey-policy --bench evaluate`
//!
//! Targets (issue 3): 2,000,000 decisions/s for a 10-statement policy with
//! conditions; 200,000/s against a 500-statement policy set. Each
//! iteration is one `PolicySet::decide` on a prepared request, as the
//! gateway makes per connection.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use latchkey_policy::{CompiledPolicy, PolicyKind, PolicySet, Request, parse};
use serde_json::{Value, json};

fn compile(statements: Vec<Value>) -> CompiledPolicy {
    let doc = json!({"Version": "2012-10-17", "Statement": statements});
    CompiledPolicy::compile(
        "bench",
        &parse(&doc.to_string(), PolicyKind::Identity).expect("valid"),
    )
}

/// Ten statements in the shape of a real database-access policy.
fn ten_statements() -> Vec<Value> {
    let mut s = vec![
        json!({"Sid": "Connect", "Effect": "Allow", "Action": "rds-db:connect",
               "Resource": "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXYZ/${aws:username}",
               "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]},
                             "Bool": {"aws:SecureTransport": "true"},
                             "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}),
        json!({"Sid": "DenyNoMfa", "Effect": "Deny", "Action": "rds-db:connect", "Resource": "*",
               "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}),
        json!({"Sid": "DenyOffHours", "Effect": "Deny", "Action": "rds-db:*", "Resource": "*",
               "Condition": {"StringEquals": {"aws:PrincipalTag/Suspended": "true"}}}),
    ];
    for i in 0..7 {
        s.push(
            json!({"Effect": "Allow", "Action": [format!("s3:Get{i}*"), "s3:List*"],
                      "Resource": format!("arn:aws:s3:::bucket-{i}/*"),
                      "Condition": {"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}}}),
        );
    }
    s
}

/// 500 statements across 50 policies: many services and users.
fn five_hundred() -> Vec<std::sync::Arc<CompiledPolicy>> {
    (0..50)
        .map(|p| {
            let mut s: Vec<Value> = (0..9)
                .map(|i| json!({"Effect": "Allow", "Action": [format!("svc{p}:Action{i}"), format!("svc{p}:Get*")],
                                "Resource": format!("arn:aws:svc{p}:us-east-1:123456789012:thing/{i}/*"),
                                "Condition": {"StringEquals": {"aws:PrincipalTag/team": format!("team{i}")}}}))
                .collect();
            s.push(json!({"Effect": "Allow", "Action": "rds-db:connect",
                          "Resource": format!("arn:aws:rds-db:us-east-1:123456789012:dbuser:db-{p:026}/app{p}"),
                          "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}));
            compile(s).into()
        })
        .collect()
}

fn request() -> Request {
    Request::new(
        "rds-db:connect",
        "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXYZ/alice",
    )
    .with_context("aws:username", ["alice"])
    .with_context("aws:SourceIp", ["10.1.2.3"])
    .with_context("aws:SecureTransport", ["true"])
    .with_context("aws:CurrentTime", ["2026-11-23T12:00:00Z"])
    .with_context("aws:MultiFactorAuthPresent", ["true"])
    .with_context("aws:PrincipalTag/team", ["team3"])
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_decide");
    group.throughput(Throughput::Elements(1));
    let ten = PolicySet {
        identity: vec![compile(ten_statements()).into()],
        ..PolicySet::default()
    };
    let req = request();
    assert_eq!(ten.decide(&req).as_str(), "allowed");
    group.bench_function("10_statements_allowed", |b| {
        b.iter(|| ten.decide(black_box(&req)))
    });

    let big = PolicySet {
        identity: five_hundred(),
        ..PolicySet::default()
    };
    let hit = Request::new(
        "rds-db:connect",
        &format!(
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-{:026}/app49",
            49
        ),
    )
    .with_context("aws:SourceIp", ["10.9.9.9"]);
    assert_eq!(big.decide(&hit).as_str(), "allowed");
    group.bench_function("500_statements_allowed", |b| {
        b.iter(|| big.decide(black_box(&hit)))
    });
    let miss = Request::new(
        "svc7:GetThing",
        "arn:aws:svc7:us-east-1:123456789012:thing/3/x",
    )
    .with_context("aws:PrincipalTag/team", ["team4"]);
    assert_eq!(big.decide(&miss).as_str(), "implicitDeny");
    group.bench_function("500_statements_implicit_deny", |b| {
        b.iter(|| big.decide(black_box(&miss)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
