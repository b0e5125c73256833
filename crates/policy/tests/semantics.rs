#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Trust policies, combining rules and explanations.

use latchkey_policy::{CompiledPolicy, Decision, PolicyKind, PolicySet, Request, parse};
use serde_json::{Value, json};

fn compile(doc: Value, kind: PolicyKind) -> CompiledPolicy {
    CompiledPolicy::compile("p", &parse(&doc.to_string(), kind).unwrap())
}

fn trust(principal: Value, condition: Option<Value>) -> PolicySet {
    let mut s = json!({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"});
    if let Some(c) = condition {
        s["Condition"] = c;
    }
    PolicySet {
        resource: Some(std::sync::Arc::new(compile(
            json!({"Version": "2012-10-17", "Statement": [s]}),
            PolicyKind::Trust,
        ))),
        ..PolicySet::default()
    }
}

fn assume(caller: &str) -> Request {
    Request::new("sts:AssumeRole", "arn:aws:iam::123456789012:role/db-reader").with_caller(caller)
}

const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

#[test]
fn trust_policy_principals() {
    let by_user = trust(json!({"AWS": ALICE}), None);
    assert_eq!(
        by_user.decide_assume_role(&assume(ALICE)),
        Decision::Allowed
    );
    assert_eq!(
        by_user.decide_assume_role(&assume("arn:aws:iam::123456789012:user/bob")),
        Decision::ImplicitDeny
    );
    assert_eq!(
        by_user.decide_assume_role(&Request::new("sts:AssumeRole", "*")),
        Decision::ImplicitDeny
    );
    // An identity policy alone never gets past a trust policy that does
    // not name the caller.
    let mut gated = trust(json!({"AWS": "arn:aws:iam::123456789012:user/bob"}), None);
    gated.identity.push(compile(
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}),
        PolicyKind::Identity,
    ).into());
    assert_eq!(
        gated.decide_assume_role(&assume(ALICE)),
        Decision::ImplicitDeny
    );

    // Naming the account delegates to it: the caller's identity policy
    // must also allow sts:AssumeRole.
    for account in [
        json!({"AWS": "123456789012"}),
        json!({"AWS": "arn:aws:iam::123456789012:root"}),
    ] {
        let mut set = trust(account, None);
        assert_eq!(
            set.decide_assume_role(&assume(ALICE)),
            Decision::ImplicitDeny
        );
        set.identity.push(compile(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}),
            PolicyKind::Identity,
        ).into());
        assert_eq!(set.decide_assume_role(&assume(ALICE)), Decision::Allowed);
        assert_eq!(
            set.decide_assume_role(&assume("arn:aws:iam::999999999999:user/alice")),
            Decision::ImplicitDeny
        );
    }
    let anyone = trust(json!("*"), None);
    assert_eq!(
        anyone.decide_assume_role(&assume("arn:aws:iam::999999999999:user/x")),
        Decision::Allowed
    );

    // A role ARN matches the role's sessions (role chaining).
    let by_role = trust(
        json!({"AWS": "arn:aws:iam::123456789012:role/ops/deployer"}),
        None,
    );
    assert_eq!(
        by_role.decide_assume_role(&assume(
            "arn:aws:sts::123456789012:assumed-role/deployer/ci-42"
        )),
        Decision::Allowed
    );
    assert_eq!(
        by_role.decide_assume_role(&assume(
            "arn:aws:sts::123456789012:assumed-role/other/ci-42"
        )),
        Decision::ImplicitDeny
    );
    assert_eq!(
        by_role.decide_assume_role(&assume(
            "arn:aws:sts::999999999999:assumed-role/deployer/ci"
        )),
        Decision::ImplicitDeny
    );
}

#[test]
fn trust_policy_requires_mfa() {
    let set = trust(
        json!({"AWS": ALICE}),
        Some(json!({"Bool": {"aws:MultiFactorAuthPresent": "true"}})),
    );
    assert_eq!(
        set.decide_assume_role(&assume(ALICE)),
        Decision::ImplicitDeny
    );
    assert_eq!(
        set.decide_assume_role(
            &assume(ALICE).with_context("aws:MultiFactorAuthPresent", ["false"])
        ),
        Decision::ImplicitDeny
    );
    assert_eq!(
        set.decide_assume_role(&assume(ALICE).with_context("aws:MultiFactorAuthPresent", ["true"])),
        Decision::Allowed
    );
    let e = set.explain(&assume(ALICE));
    assert_eq!(e.missing_context_keys, ["aws:MultiFactorAuthPresent"]);
    assert_eq!(
        e.near_misses[0].failed_condition,
        "Bool aws:MultiFactorAuthPresent"
    );
}

#[test]
fn boundaries_and_session_policies_limit_but_never_grant() {
    let allow_s3 = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]});
    let allow_get = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]});
    let allow_all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let get = Request::new("s3:GetObject", "arn:aws:s3:::b/k");
    let put = Request::new("s3:PutObject", "arn:aws:s3:::b/k");

    let bounded = PolicySet {
        identity: vec![compile(allow_s3.clone(), PolicyKind::Identity).into()],
        permissions_boundary: Some(compile(allow_get.clone(), PolicyKind::Identity)),
        ..PolicySet::default()
    };
    assert_eq!(bounded.decide(&get), Decision::Allowed);
    assert_eq!(bounded.decide(&put), Decision::ImplicitDeny);

    // The boundary alone grants nothing.
    let boundary_only = PolicySet {
        permissions_boundary: Some(compile(allow_all.clone(), PolicyKind::Identity)),
        ..PolicySet::default()
    };
    assert_eq!(boundary_only.decide(&get), Decision::ImplicitDeny);

    let session = PolicySet {
        identity: vec![compile(allow_all, PolicyKind::Identity).into()],
        session: vec![compile(allow_get, PolicyKind::Identity)],
        ..PolicySet::default()
    };
    assert_eq!(session.decide(&get), Decision::Allowed);
    assert_eq!(session.decide(&put), Decision::ImplicitDeny);
}

#[test]
fn resource_policy_naming_the_caller_is_not_limited_by_a_boundary() {
    let bucket = |principal: &str| {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal},
               "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]})
    };
    let deny_nothing_boundary = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]});
    let get = Request::new("s3:GetObject", "arn:aws:s3:::b/k").with_caller(ALICE);
    let direct = PolicySet {
        resource: Some(std::sync::Arc::new(compile(
            bucket(ALICE),
            PolicyKind::Resource,
        ))),
        permissions_boundary: Some(compile(deny_nothing_boundary.clone(), PolicyKind::Identity)),
        ..PolicySet::default()
    };
    assert_eq!(direct.decide(&get), Decision::Allowed);
    let via_account = PolicySet {
        resource: Some(std::sync::Arc::new(compile(
            bucket("123456789012"),
            PolicyKind::Resource,
        ))),
        permissions_boundary: Some(compile(deny_nothing_boundary, PolicyKind::Identity)),
        ..PolicySet::default()
    };
    assert_eq!(via_account.decide(&get), Decision::ImplicitDeny);
}

#[test]
fn explanations_name_the_deciding_statements() {
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Read", "Effect": "Allow", "Action": "s3:Get*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::secret/*"},
        {"Sid": "FromOffice", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}}]});
    let set = PolicySet {
        identity: vec![compile(doc, PolicyKind::Identity).into()],
        ..PolicySet::default()
    };
    let e = set.explain(&Request::new("s3:GetObject", "arn:aws:s3:::public/x"));
    assert_eq!(e.decision, Decision::Allowed);
    assert_eq!(
        e.matched
            .iter()
            .map(|s| s.statement.as_str())
            .collect::<Vec<_>>(),
        ["Read"]
    );
    let e = set.explain(&Request::new("s3:GetObject", "arn:aws:s3:::secret/x"));
    assert_eq!(e.decision, Decision::ExplicitDeny);
    assert_eq!(e.matched[0].statement, "Statement[1]");
    let e = set.explain(
        &Request::new("s3:PutObject", "arn:aws:s3:::b/x")
            .with_context("aws:SourceIp", ["198.51.100.1"]),
    );
    assert_eq!(e.decision, Decision::ImplicitDeny);
    assert!(e.matched.is_empty());
    assert_eq!(e.near_misses[0].statement.statement, "FromOffice");
    assert_eq!(e.near_misses[0].failed_condition, "IpAddress aws:SourceIp");
    assert!(e.missing_context_keys.is_empty());
}

#[test]
fn rds_connect_with_variables() {
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
        "Resource": "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKL01234/${aws:username}"}]});
    let set = PolicySet {
        identity: vec![compile(doc, PolicyKind::Identity).into()],
        ..PolicySet::default()
    };
    let arn =
        |u: &str| format!("arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKL01234/{u}");
    let req = |u: &str, name: Option<&str>| {
        let r = Request::new("RDS-DB:Connect", &arn(u));
        match name {
            Some(n) => r.with_context("aws:username", [n]),
            None => r,
        }
    };
    assert_eq!(set.decide(&req("peccy", Some("peccy"))), Decision::Allowed);
    assert_eq!(
        set.decide(&req("admin", Some("peccy"))),
        Decision::ImplicitDeny
    );
    // Unresolvable variable: the statement does not match.
    assert_eq!(set.decide(&req("peccy", None)), Decision::ImplicitDeny);
    // A user name with a '*' cannot widen the match.
    assert_eq!(
        set.decide(&req("anything", Some("*"))),
        Decision::ImplicitDeny
    );
}

/// IAM replaces the ARN of a deleted user or role in a trust policy by its
/// unique id: the id matches only the caller with that id, never a new
/// user or role of the same name (whose ARN is the same).
#[test]
fn unique_id_principals_match_the_caller_id_only() {
    const OLD_ID: &str = "AIDAOLDUSER234567ABCDE";
    let policy = trust(
        json!({"AWS": [OLD_ID, "arn:aws:iam::123456789012:user/bob"]}),
        None,
    );
    // The namesake: same ARN, another id.
    let namesake = assume(ALICE).with_caller_id("AIDANEWUSER234567ABCDE");
    assert_eq!(policy.decide_assume_role(&namesake), Decision::ImplicitDeny);
    assert_eq!(
        policy.decide_assume_role(&assume(ALICE)),
        Decision::ImplicitDeny,
        "no caller id: an id principal matches nothing"
    );
    assert_eq!(
        policy.decide_assume_role(&assume(ALICE).with_caller_id(OLD_ID)),
        Decision::Allowed
    );
    // A role's id matches its sessions (the caller id of a role session is
    // the role's id).
    let by_role = trust(json!({"AWS": "AROAROLEID234567ABCDEF"}), None);
    let session = assume("arn:aws:sts::123456789012:assumed-role/deploy/s1");
    assert_eq!(
        by_role.decide_assume_role(&session.clone().with_caller_id("AROAROLEID234567ABCDEF")),
        Decision::Allowed
    );
    assert_eq!(
        by_role.decide_assume_role(&session.with_caller_id("AROAOTHER2345678ABCDEF")),
        Decision::ImplicitDeny
    );
    // Ids validate in Principal.AWS; other shapes do not.
    for good in ["AIDAOLDUSER234567ABCDE", "AROAROLEID234567ABCDEF"] {
        assert!(latchkey_policy::is_unique_id(good));
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": good}, "Action": "sts:AssumeRole"}]});
        assert!(parse(&doc.to_string(), PolicyKind::Trust).is_ok(), "{good}");
    }
    for bad in [
        "AIDA",
        "aidaolduser234567abcde",
        "AKIAOLDUSER234567ABCD",
        "AIDA-OLDUSER234567ABC",
    ] {
        assert!(!latchkey_policy::is_unique_id(bad), "{bad}");
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": bad}, "Action": "sts:AssumeRole"}]});
        assert!(parse(&doc.to_string(), PolicyKind::Trust).is_err(), "{bad}");
    }
}

/// A statement allowing one account's root to read one object.
fn read_statement(i: usize) -> Value {
    json!({"Sid": format!("S{i}"), "Effect": "Allow",
           "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
           "Action": "kms:Decrypt", "Resource": "*"})
}

#[test]
fn size_limits_are_the_kinds_and_do_not_hide_other_errors() {
    // 8,000-odd characters: over an identity policy's 6,144, well under a
    // resource policy's (a KMS key policy may be 32,768).
    let statements: Vec<Value> = (0..60).map(read_statement).collect();
    let doc = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    assert!(doc.len() > latchkey_policy::MAX_POLICY_CHARS);
    assert!(parse(&doc, PolicyKind::Resource).is_ok());
    // Over the limit, with a mistake as well: both reported, with their
    // issue codes.
    let mut statements: Vec<Value> = (0..300).map(read_statement).collect();
    statements.push(
        json!({"Effect": "Alow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}),
    );
    let doc = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    let errors = parse(&doc, PolicyKind::Resource).unwrap_err();
    let codes: Vec<&str> = errors.iter().map(|e| e.issue_code()).collect();
    assert!(
        codes.contains(&"POLICY_SIZE_EXCEEDS_RESOURCE_POLICY_QUOTA")
            && codes.contains(&"INVALID_EFFECT"),
        "{codes:?}"
    );
    let identity = parse(
        r#"{"Version":"2012-10-17","Statement":[]}"#,
        PolicyKind::Identity,
    );
    assert!(identity.is_err());
    let long_identity = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "kms:Decrypt", "Resource": (0..400).map(|i| format!("arn:aws:kms:us-east-1:123456789012:key/k{i}")).collect::<Vec<_>>()}]})
    .to_string();
    let codes: Vec<&str> = parse(&long_identity, PolicyKind::Identity)
        .unwrap_err()
        .iter()
        .map(|e| e.issue_code())
        .collect();
    assert_eq!(codes, ["POLICY_SIZE_EXCEEDS_IDENTITY_POLICY_QUOTA"]);
}
