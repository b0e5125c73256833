#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The red team's attacks on Secrets Manager, each as a regression test
//! against a real `latchkey serve` driven by boto3 and botocore's SigV4
//! signer: tag keys shadowing each other by case, full ARNs read as names,
//! open resource policies past `BlockPublicPolicy`, denials that reveal
//! whether a secret exists, `BatchGetSecretValue` enumerating what
//! `ListSecrets` may not, unsigned `X-Amz-*` headers, unbounded inputs,
//! `CreateSecret` as a value oracle, and writes to a deleted secret.

mod common;

use common::api::{ApiServer, python};
use serde_json::Value;

/// Runs `script` with boto3 against `server`. The prelude gives `sm`,
/// `iam`, `sts` (the administrator's clients), `acct`, `client(service,
/// creds)`, `user(name, policy)` (a new user's key), `err(f, ...)`
/// (`["OK", result]` or `[code, message]`), `raw(target, body, creds,
/// ...)` (a botocore-signed JSON call: `[status, body]`) and `out(...)`,
/// which prints one JSON line. Returns the lines.
fn run(server: &ApiServer, script: &str) -> Vec<Value> {
    let prelude = r#"
import configparser, http.client, json, ssl, sys, time
import boto3, botocore.auth, botocore.awsrequest, botocore.config, botocore.credentials, botocore.exceptions
url, ca, creds_file = sys.argv[1:4]
cfg = configparser.ConfigParser(); cfg.read(creds_file)
ak, sk = cfg["default"]["aws_access_key_id"], cfg["default"]["aws_secret_access_key"]
host = url.split("://", 1)[1]

def client(service="secretsmanager", creds=None):
    key, secret, token = (tuple(creds) + (None,))[:3] if creds else (ak, sk, None)
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", verify=ca,
                        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
                        config=botocore.config.Config(retries={"max_attempts": 0}))

sm, iam, sts = client(), client("iam"), client("sts")
acct = sts.get_caller_identity()["Account"]

def user(name, policy):
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    k = iam.create_access_key(UserName=name)["AccessKey"]
    return (k["AccessKeyId"], k["SecretAccessKey"])

def err(f, *a, **kw):
    try:
        return ["OK", f(*a, **kw)]
    except botocore.exceptions.ClientError as e:
        return [e.response["Error"]["Code"], e.response["Error"].get("Message", "")]

def out(*values):
    print(json.dumps(values, default=str))

def send(method, path, body, headers):
    conn = http.client.HTTPSConnection(host, context=ssl.create_default_context(cafile=ca), timeout=30)
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read().decode("utf-8", "replace")
    conn.close()
    try:
        return [r.status, json.loads(data)]
    except ValueError:
        return [r.status, data]

def signed(headers, body, service, creds=None):
    req = botocore.awsrequest.AWSRequest(method="POST", url=url + "/", data=body, headers=headers)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(*(creds or (ak, sk))), service, "us-east-1").add_auth(req)
    return dict(req.headers.items())

def raw(target, body, creds=None, unsigned=None):
    """A JSON call signed by botocore; `unsigned` headers are added after signing."""
    data = json.dumps(body)
    h = signed({"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}, data, "secretsmanager", creds)
    h.update(unsigned or {})
    return send("POST", "/", data, h)
"#;
    let out = python(
        &format!("{prelude}\n{script}"),
        &[
            &server.endpoint(),
            server.dir.join("ca.pem").to_str().unwrap(),
            server.dir.join("admin.credentials").to_str().unwrap(),
        ],
    );
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The line whose first element is `label`.
fn line<'a>(lines: &'a [Value], label: &str) -> &'a [Value] {
    lines
        .iter()
        .find(|l| l[0] == label)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("no line {label}: {lines:#?}"))
}

fn server() -> (tempfile::TempDir, ApiServer) {
    let tmp = tempfile::tempdir().unwrap();
    let server = ApiServer::start(&tmp.path().join("data"));
    (tmp, server)
}

/// F7: condition keys name tags without case, so a secret never holds two
/// keys that differ only in case: one could shadow the other in
/// `aws:ResourceTag/KEY` and undo an ABAC Allow or Deny.
#[test]
fn tag_keys_differing_only_in_case_cannot_shadow_each_other() {
    let (_tmp, server) = server();
    let lines = run(
        &server,
        r#"
sm.create_secret(Name="blue/db", SecretString="BLUE-TEAM-PASSWORD", Tags=[{"Key": "team", "Value": "blue"}])
eve = client(creds=user("eve", {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
     "Condition": {"StringEquals": {"aws:ResourceTag/team": "red"}}},
    {"Effect": "Allow", "Action": "secretsmanager:TagResource", "Resource": "*",
     "Condition": {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["team"]}}}]}))
out("eve tags Team", err(eve.tag_resource, SecretId="blue/db", Tags=[{"Key": "Team", "Value": "red"}])[0])
out("tags", sm.describe_secret(SecretId="blue/db")["Tags"])
out("eve reads", err(eve.get_secret_value, SecretId="blue/db")[0])

sm.create_secret(Name="hr/payroll", SecretString="PAYROLL", Tags=[{"Key": "class", "Value": "restricted"}])
mal = client(creds=user("mal", {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:TagResource"], "Resource": "*"},
    {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
     "Condition": {"StringEquals": {"secretsmanager:ResourceTag/class": "restricted"}}},
    {"Effect": "Deny", "Action": ["secretsmanager:TagResource", "secretsmanager:UntagResource"], "Resource": "*",
     "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": ["class"]}}}]}))
out("mal tags CLASS", err(mal.tag_resource, SecretId="hr/payroll", Tags=[{"Key": "CLASS", "Value": "public"}]))
out("mal reads", err(mal.get_secret_value, SecretId="hr/payroll")[0])

# The exact key replaces the value; one request may not name a key twice.
sm.tag_resource(SecretId="blue/db", Tags=[{"Key": "team", "Value": "green"}])
out("after exact key", sm.describe_secret(SecretId="blue/db")["Tags"])
out("twice in a request", err(sm.tag_resource, SecretId="blue/db", Tags=[{"Key": "x", "Value": "1"}, {"Key": "X", "Value": "2"}])[0])

# CreateSecret: no duplicate keys, at most 50 tags.
out("create duplicate", err(sm.create_secret, Name="dup1", SecretString="x",
    Tags=[{"Key": "team", "Value": "blue"}, {"Key": "team", "Value": "red"}])[0])
out("create case duplicate", err(sm.create_secret, Name="dup2", SecretString="x",
    Tags=[{"Key": "team", "Value": "blue"}, {"Key": "TEAM", "Value": "red"}])[0])
out("create 51", err(sm.create_secret, Name="many51", SecretString="x",
    Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])[0])
out("create 50", err(sm.create_secret, Name="many50", SecretString="x",
    Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])[0])
out("names", sorted(s["Name"] for s in sm.list_secrets()["SecretList"]))
"#,
    );
    assert_eq!(
        line(&lines, "eve tags Team")[1],
        "InvalidParameterException"
    );
    assert_eq!(
        line(&lines, "tags")[1],
        serde_json::json!([{"Key": "team", "Value": "blue"}])
    );
    assert_eq!(line(&lines, "eve reads")[1], "AccessDeniedException");
    let mal = &line(&lines, "mal tags CLASS")[1];
    assert_eq!(mal[0], "InvalidParameterException", "{mal}");
    assert!(
        mal[1].as_str().unwrap().contains("class"),
        "the refusal names the existing key: {mal}"
    );
    assert_eq!(line(&lines, "mal reads")[1], "AccessDeniedException");
    assert_eq!(
        line(&lines, "after exact key")[1],
        serde_json::json!([{"Key": "team", "Value": "green"}])
    );
    assert_eq!(
        line(&lines, "twice in a request")[1],
        "InvalidParameterException"
    );
    assert_eq!(
        line(&lines, "create duplicate")[1],
        "InvalidParameterException"
    );
    assert_eq!(
        line(&lines, "create case duplicate")[1],
        "InvalidParameterException"
    );
    assert_eq!(line(&lines, "create 51")[1], "LimitExceededException");
    assert_eq!(line(&lines, "create 50")[1], "OK");
    assert_eq!(
        line(&lines, "names")[1],
        serde_json::json!(["blue/db", "hr/payroll", "many50"])
    );
}

/// F7's sibling in IAM: a user's or role's tag keys are one key whatever
/// their case (IAM compares them so), on creation as on tagging.
#[test]
fn iam_tag_keys_are_one_key_whatever_their_case() {
    let (_tmp, server) = server();
    let lines = run(
        &server,
        r#"
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{acct}:root"}, "Action": "sts:AssumeRole"}]})
twice = [{"Key": "team", "Value": "blue"}, {"Key": "Team", "Value": "red"}]
out("create user", err(iam.create_user, UserName="u1", Tags=twice)[0])
out("create role", err(iam.create_role, RoleName="r1", AssumeRolePolicyDocument=trust, Tags=twice)[0])
out("create policy", err(iam.create_policy, PolicyName="p1", Tags=twice, PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))[0])
out("create user 51", err(iam.create_user, UserName="u51", Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])[0])
iam.create_user(UserName="u2", Tags=[{"Key": "team", "Value": "blue"}])
out("tag Team", err(iam.tag_user, UserName="u2", Tags=[{"Key": "Team", "Value": "red"}])[0])
out("user tags", iam.list_user_tags(UserName="u2")["Tags"])
out("tag twice", err(iam.tag_user, UserName="u2", Tags=[{"Key": "x", "Value": "1"}, {"Key": "X", "Value": "2"}])[0])
iam.create_role(RoleName="r2", AssumeRolePolicyDocument=trust, Tags=[{"Key": "team", "Value": "blue"}])
out("tag role TEAM", err(iam.tag_role, RoleName="r2", Tags=[{"Key": "TEAM", "Value": "red"}])[0])
out("role tags", iam.list_role_tags(RoleName="r2")["Tags"])
out("users", sorted(u["UserName"] for u in iam.list_users()["Users"]))
out("roles", sorted(r["RoleName"] for r in iam.list_roles()["Roles"]))
out("policies", sorted(p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]))
"#,
    );
    for label in ["create user", "create role", "create policy", "tag twice"] {
        assert_ne!(line(&lines, label)[1], "OK", "{label}: {lines:#?}");
    }
    assert_eq!(line(&lines, "create user 51")[1], "LimitExceeded");
    assert_eq!(line(&lines, "tag Team")[1], "OK");
    assert_eq!(
        line(&lines, "user tags")[1].as_array().unwrap().len(),
        1,
        "{lines:#?}"
    );
    assert_eq!(line(&lines, "user tags")[1][0]["Value"], "red");
    assert_eq!(line(&lines, "tag role TEAM")[1], "OK");
    assert_eq!(
        line(&lines, "role tags")[1].as_array().unwrap().len(),
        1,
        "{lines:#?}"
    );
    assert_eq!(
        line(&lines, "users")[1],
        serde_json::json!(["admin", "u2"]),
        "{lines:#?}"
    );
    assert!(
        !line(&lines, "roles")[1]
            .as_array()
            .unwrap()
            .contains(&Value::from("r1"))
    );
    assert_eq!(line(&lines, "policies")[1], serde_json::json!([]));
}

/// F8: a full ARN (a name ending in `-` and six characters) names that
/// ARN only. Once its secret is gone, a secret *named* like the ARN's tail
/// must not answer for it.
#[test]
fn a_full_arn_is_never_read_as_a_name() {
    let (_tmp, server) = server();
    let lines = run(
        &server,
        r#"
arn = sm.create_secret(Name="app/db", SecretString='{"password":"REAL"}')["ARN"]
tail = arn.split(":secret:")[1]
eve = client(creds=user("eve", {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["secretsmanager:CreateSecret", "secretsmanager:PutResourcePolicy", "secretsmanager:GetSecretValue"],
     "Resource": f"arn:aws:secretsmanager:*:*:secret:{tail}-*"}]}))
eve.create_secret(Name=tail, SecretString='{"password":"ATTACKER"}')
eve.put_resource_policy(SecretId=tail, ResourcePolicy=json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{acct}:root"},
     "Action": ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"], "Resource": "*"}]}))
out("while it exists", sm.get_secret_value(SecretId=arn)["SecretString"])
sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
out("get by full ARN", err(sm.get_secret_value, SecretId=arn)[0])
out("put by full ARN", err(sm.put_secret_value, SecretId=arn, SecretString='{"password":"NEW"}')[0])
out("describe by full ARN", err(sm.describe_secret, SecretId=arn)[0])
out("attacker's value", eve.get_secret_value(SecretId=tail)["SecretString"])
# A partial ARN (no suffix) still names a secret by its name.
plain = sm.create_secret(Name="app/plain", SecretString="P")["ARN"]
out("partial ARN", sm.get_secret_value(SecretId=plain.rsplit("-", 1)[0])["SecretString"])
out("full ARN", sm.get_secret_value(SecretId=plain)["SecretString"])
"#,
    );
    assert_eq!(line(&lines, "while it exists")[1], r#"{"password":"REAL"}"#);
    for label in ["get by full ARN", "put by full ARN", "describe by full ARN"] {
        assert_eq!(
            line(&lines, label)[1],
            "ResourceNotFoundException",
            "{label}"
        );
    }
    assert_eq!(
        line(&lines, "attacker's value")[1],
        r#"{"password":"ATTACKER"}"#
    );
    assert_eq!(line(&lines, "partial ARN")[1], "P");
    assert_eq!(line(&lines, "full ARN")[1], "P");
}

/// F5: `BlockPublicPolicy` (and `ValidateResourcePolicy`) see every Allow
/// open to any principal: `NotPrincipal`, `*` in any form, and conditions
/// that restrict nothing.
#[test]
fn block_public_policy_refuses_every_open_grant() {
    let (_tmp, server) = server();
    let lines = run(
        &server,
        r#"
nobody = client(creds=user("nobody", {"Version": "2012-10-17", "Statement": [
    {"Effect": "Deny", "Action": "sts:GetFederationToken", "Resource": "*"}]}))
def stmt(**kw):
    s = {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
    s.update(kw)
    return {"Version": "2012-10-17", "Statement": [s]}
public = {
    "Principal *": stmt(Principal="*"),
    "AWS *": stmt(Principal={"AWS": "*"}),
    "AWS [*]": stmt(Principal={"AWS": ["*"]}),
    "AWS [me, *]": stmt(Principal={"AWS": [f"arn:aws:iam::{acct}:root", "*"]}),
    "NotPrincipal": stmt(NotPrincipal={"AWS": f"arn:aws:iam::{acct}:user/does-not-exist"}),
    "empty Condition": stmt(Principal="*", Condition={}),
    "StringLike *": stmt(Principal="*", Condition={"StringLike": {"aws:PrincipalArn": "*"}}),
    "Null false": stmt(Principal={"AWS": "*"}, Condition={"Null": {"aws:PrincipalArn": "false"}}),
    "wildcard value": stmt(Principal="*", Condition={"StringEquals": {"aws:PrincipalAccount": "*"}}),
    "ArnEquals wildcard": stmt(Principal="*", Condition={"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{acct}:*"}}),
    "IfExists": stmt(Principal="*", Condition={"StringEqualsIfExists": {"aws:PrincipalAccount": acct}}),
    "ForAllValues": stmt(Principal="*", Condition={"ForAllValues:StringEquals": {"aws:PrincipalAccount": [acct]}}),
    "variable": stmt(Principal="*", Condition={"StringEquals": {"aws:PrincipalAccount": "${aws:PrincipalAccount}"}}),
    "other key": stmt(Principal="*", Condition={"StringEquals": {"aws:username": "bob"}}),
}
restricted = {
    "account": stmt(Principal="*", Condition={"StringEquals": {"aws:PrincipalAccount": acct}}),
    "principal ARN": stmt(Principal={"AWS": "*"}, Condition={"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{acct}:user/bob"}}),
    "org": stmt(Principal="*", Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}, "Bool": {"aws:SecureTransport": "true"}}),
    "named principal": stmt(Principal={"AWS": f"arn:aws:iam::{acct}:root"}),
    "deny everyone": {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*",
        "Action": "secretsmanager:DeleteSecret", "Resource": "*"}]},
}
for kind, policies in [("public", public), ("restricted", restricted)]:
    for label, pol in policies.items():
        name = "s-" + str(abs(hash(label)))
        sm.create_secret(Name=name, SecretString="value-of-" + name)
        put = err(sm.put_resource_policy, SecretId=name, ResourcePolicy=json.dumps(pol), BlockPublicPolicy=True)
        v = sm.validate_resource_policy(ResourcePolicy=json.dumps(pol))
        read = err(nobody.get_secret_value, SecretId=name)
        out(kind, label, put[0], v["PolicyValidationPassed"],
            [e["CheckName"] for e in v["ValidationErrors"]], read[0])
"#,
    );
    let mut seen = 0;
    for l in &lines {
        let (kind, label, put, passed, checks, read) = (&l[0], &l[1], &l[2], &l[3], &l[4], &l[5]);
        if kind == "public" {
            assert_eq!(put, "PublicPolicyException", "{label}: {l}");
            assert_eq!(passed, false, "{label}: {l}");
            assert!(
                checks
                    .as_array()
                    .unwrap()
                    .contains(&Value::from("PUBLIC_ACCESS_CHECKING")),
                "{label}: {l}"
            );
            assert_eq!(read, "AccessDeniedException", "{label}: {l}");
        } else {
            assert_eq!(put, "OK", "{label}: {l}");
            assert_eq!(passed, true, "{label}: {l}");
        }
        seen += 1;
    }
    assert_eq!(seen, 19, "{lines:#?}");
}

/// F1: a refusal names the secret as the caller named it: never the
/// stored ARN with its random suffix, so a caller who may not act on a
/// secret cannot tell whether it exists. The audit record keeps the ARN.
#[test]
fn denials_do_not_reveal_whether_a_secret_exists() {
    let (_tmp, server) = server();
    let lines = run(
        &server,
        r#"
arn = sm.create_secret(Name="prod/db", SecretString="hunter2")["ARN"]
out("arn", arn)
eve = client(creds=user("eve", {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "arn:aws:secretsmanager:*:*:secret:public/*"},
    {"Effect": "Allow", "Action": "secretsmanager:CreateSecret", "Resource": "arn:aws:secretsmanager:*:*:secret:dev/*"},
    {"Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"}]}))
for sid in ["prod/db", "prod/nope"]:
    out("get", sid, err(eve.get_secret_value, SecretId=sid))
    out("describe", sid, err(eve.describe_secret, SecretId=sid))
    out("put", sid, err(eve.put_secret_value, SecretId=sid, SecretString="x"))
    out("create", sid, [err(eve.create_secret, Name=sid, SecretString="y") for _ in range(3)])
out("get by ARN", err(eve.get_secret_value, SecretId=arn))
out("batch", eve.batch_get_secret_value(SecretIdList=["prod/db", "prod/nope"])["Errors"])
"#,
    );
    let arn = line(&lines, "arn")[1].as_str().unwrap().to_owned();
    let (partial, suffix) = arn.rsplit_once('-').unwrap();
    let would_be = |name: &str| partial.replace("prod/db", name);
    let mut by_name: std::collections::HashMap<&str, Vec<String>> = Default::default();
    for l in &lines {
        let Some(op) = l[0]
            .as_str()
            .filter(|op| ["get", "describe", "put", "create"].contains(op))
        else {
            continue;
        };
        let sid = l[1].as_str().unwrap();
        let answers: Vec<&Value> = match &l[2] {
            Value::Array(a) if a[0].is_array() => a.iter().collect(),
            one => vec![one],
        };
        for a in answers {
            assert_eq!(a[0], "AccessDeniedException", "{op} {sid}: {a}");
            let message = a[1].as_str().unwrap();
            assert!(!message.contains(suffix), "{op} {sid}: {message}");
            assert!(
                message.contains(&format!("on resource: {} ", would_be(sid))),
                "{op} {sid}: {message}"
            );
            by_name
                .entry(sid)
                .or_default()
                .push(message.replace(sid, "NAME"));
        }
    }
    assert_eq!(by_name["prod/db"], by_name["prod/nope"]);
    assert_eq!(by_name["prod/db"].len(), 6);
    // Named by its full ARN, the refusal shows that ARN: the caller gave it.
    let by_arn = &line(&lines, "get by ARN")[1];
    assert!(
        by_arn[1]
            .as_str()
            .unwrap()
            .contains(&format!("on resource: {arn} ")),
        "{by_arn}"
    );
    let errors = line(&lines, "batch")[1].as_array().unwrap().clone();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert_eq!(e["ErrorCode"], "AccessDeniedException", "{e}");
        assert!(!e["Message"].as_str().unwrap().contains(suffix), "{e}");
    }
    // The trail keeps the precise resource.
    let (_, events) = common::trail_in(&server.dir, |events| {
        events.iter().any(|e| {
            e["eventName"] == "GetSecretValue"
                && e["errorMessage"].as_str().unwrap_or("").contains(&arn)
        })
    });
    assert!(
        events.iter().any(|e| e["eventName"] == "GetSecretValue"
            && e["errorCode"] == "AccessDeniedException"
            && e["errorMessage"].as_str().unwrap_or("").contains(&arn)),
        "no denial names {arn}"
    );
}

/// F2: `BatchGetSecretValue` with `Filters` lists secrets, so it needs
/// `secretsmanager:ListSecrets` too; its `Errors` use the JSON codes.
#[test]
fn batch_get_with_filters_needs_list_secrets() {
    let (_tmp, server) = server();
    let lines = run(
        &server,
        r#"
for n in ["hr/payroll", "prod/stripe-key", "prod/db-master"]:
    sm.create_secret(Name=n, SecretString="v-" + n, Description="desc of " + n)
eve = client(creds=user("eve", {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"},
    {"Effect": "Deny", "Action": ["secretsmanager:ListSecrets", "secretsmanager:DescribeSecret"], "Resource": "*"}]}))
out("eve lists", err(eve.list_secrets)[0])
out("eve filters", err(eve.batch_get_secret_value, Filters=[{"Key": "all", "Values": [""]}], MaxResults=20))
out("eve description oracle", err(eve.batch_get_secret_value, Filters=[{"Key": "description", "Values": ["desc of prod/str"]}])[0])
bob = client(creds=user("bob", {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets"], "Resource": "*"},
    {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "arn:aws:secretsmanager:*:*:secret:hr/*"}]}))
r = bob.batch_get_secret_value(Filters=[{"Key": "name", "Values": ["hr/", "prod/"]}])
out("bob filters", [v["Name"] for v in r["SecretValues"]], sorted(e["ErrorCode"] for e in r["Errors"]))
r = bob.batch_get_secret_value(SecretIdList=["hr/payroll", "prod/db-master", "hr/nope"])
out("bob list", [v["Name"] for v in r["SecretValues"]], sorted(e["ErrorCode"] for e in r["Errors"]))
"#,
    );
    assert_eq!(line(&lines, "eve lists")[1], "AccessDeniedException");
    let filters = &line(&lines, "eve filters")[1];
    assert_eq!(filters[0], "AccessDeniedException", "{filters}");
    assert!(
        filters[1]
            .as_str()
            .unwrap()
            .contains("secretsmanager:ListSecrets"),
        "{filters}"
    );
    assert_eq!(
        line(&lines, "eve description oracle")[1],
        "AccessDeniedException"
    );
    let bob = line(&lines, "bob filters");
    assert_eq!(bob[1], serde_json::json!(["hr/payroll"]));
    assert_eq!(
        bob[2],
        serde_json::json!(["AccessDeniedException", "AccessDeniedException"])
    );
    let bob = line(&lines, "bob list");
    assert_eq!(bob[1], serde_json::json!(["hr/payroll"]));
    // A missing secret the caller may read is reported as missing.
    assert_eq!(
        bob[2],
        serde_json::json!(["AccessDeniedException", "ResourceNotFoundException"])
    );
}

/// F9: every `X-Amz-*` header a request carries must be signed: otherwise
/// a signature over a body can be replayed as another operation. Stock
/// clients sign them all, and keep working.
#[test]
fn unsigned_amz_headers_are_refused() {
    let (_tmp, server) = server();
    let lines = run(
        &server,
        r#"
sm.create_secret(Name="victim", SecretString="x")
body = json.dumps({"SecretId": "victim"})
h = signed({"Content-Type": "application/x-amz-json-1.1"}, body, "secretsmanager")
for op in ["DescribeSecret", "DeleteSecret"]:
    out("unsigned target " + op, send("POST", "/", body, dict(h, **{"X-Amz-Target": "secretsmanager." + op})))
out("still there", err(sm.describe_secret, SecretId="victim")[0])
h = signed({"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.DescribeSecret"}, body, "secretsmanager")
out("swapped target", send("POST", "/", body, dict(h, **{"X-Amz-Target": "secretsmanager.DeleteSecret"})))
out("extra header", send("POST", "/", body, dict(h, **{"X-Amz-Meta-Anything": "1"})))
out("signed", send("POST", "/", body, h)[0])
# The Query front (STS, IAM) too.
form = "Action=GetCallerIdentity&Version=2011-06-15"
q = signed({"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, form, "sts")
out("query unsigned", send("POST", "/", form, dict(q, **{"X-Amz-Extra": "1"})))
out("query signed", send("POST", "/", form, q)[0])
# Stock clients, with and without a session token.
out("boto3", err(sm.list_secrets)[0], err(sts.get_caller_identity)[0])
c = sts.get_session_token()["Credentials"]
temp = client(creds=(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]))
out("boto3 session", err(temp.describe_secret, SecretId="victim")[0])
"#,
    );
    for label in [
        "unsigned target DescribeSecret",
        "unsigned target DeleteSecret",
    ] {
        let r = &line(&lines, label)[1];
        assert_eq!(r[0], 400, "{label}: {r}");
        assert_eq!(
            r[1]["__type"], "IncompleteSignatureException",
            "{label}: {r}"
        );
        assert!(
            r[1]["message"].as_str().unwrap().contains("x-amz-target"),
            "{r}"
        );
    }
    assert_eq!(line(&lines, "still there")[1], "OK");
    assert_eq!(
        line(&lines, "swapped target")[1][1]["__type"],
        "InvalidSignatureException"
    );
    assert_eq!(
        line(&lines, "extra header")[1][1]["__type"],
        "IncompleteSignatureException"
    );
    assert_eq!(line(&lines, "signed")[1], 200);
    let query = &line(&lines, "query unsigned")[1];
    assert_eq!(query[0], 400, "{query}");
    assert!(
        query[1]
            .as_str()
            .unwrap()
            .contains("<Code>IncompleteSignature</Code>"),
        "{query}"
    );
    assert_eq!(line(&lines, "query signed")[1], 200);
    assert_eq!(line(&lines, "boto3")[1], "OK");
    assert_eq!(line(&lines, "boto3")[2], "OK");
    assert_eq!(line(&lines, "boto3 session")[1], "OK");
}

/// F10: free-text inputs are bounded as botocore's model bounds them
/// (botocore itself checks only minimums).
#[test]
fn free_text_inputs_are_bounded() {
    let (_tmp, server) = server();
    let lines = run(
        &server,
        r#"
out("create kms 2049", err(sm.create_secret, Name="a", KmsKeyId="k" * 2049)[0])
out("create kms 500k", raw("secretsmanager.CreateSecret", {"Name": "b", "KmsKeyId": "k" * 500000})[1].get("__type", "OK"))
out("create kms 2048", err(sm.create_secret, Name="c", KmsKeyId="k" * 2048)[0])
out("update kms 2049", err(sm.update_secret, SecretId="c", KmsKeyId="k" * 2049)[0])
out("update description 2049", err(sm.update_secret, SecretId="c", Description="d" * 2049)[0])
out("untag key 129", err(sm.untag_resource, SecretId="c", TagKeys=["k" * 129])[0])
out("tag key 129", err(sm.tag_resource, SecretId="c", Tags=[{"Key": "k" * 129, "Value": "v"}])[0])
out("names", sorted(s["Name"] for s in sm.list_secrets()["SecretList"]))
out("kms", sm.describe_secret(SecretId="c")["KmsKeyId"] == "k" * 2048)
"#,
    );
    for label in [
        "create kms 2049",
        "create kms 500k",
        "update kms 2049",
        "update description 2049",
        "untag key 129",
        "tag key 129",
    ] {
        assert_eq!(
            line(&lines, label)[1],
            "InvalidParameterException",
            "{label}"
        );
    }
    assert_eq!(line(&lines, "create kms 2048")[1], "OK");
    assert_eq!(line(&lines, "names")[1], serde_json::json!(["c"]));
    assert_eq!(line(&lines, "kms")[1], true);
}

/// F3: `CreateSecret` on an existing name with a version's token answers
/// "same value" only to a caller who may also `PutSecretValue` there: it
/// is no value oracle for a caller who may only create.
#[test]
fn create_secret_is_no_value_oracle() {
    let (_tmp, server) = server();
    let lines = run(
        &server,
        r#"
vid = sm.create_secret(Name="prod/pin", SecretString="4721")["VersionId"]
eve = client(creds=user("eve", {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["secretsmanager:CreateSecret", "secretsmanager:ListSecrets"], "Resource": "*"},
    {"Effect": "Deny", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue", "secretsmanager:PutSecretValue"], "Resource": "*"}]}))
token = [v for v, st in eve.list_secrets()["SecretList"][0]["SecretVersionsToStages"].items() if "AWSCURRENT" in st][0]
out("token", token == vid)
out("guesses", sorted({err(eve.create_secret, Name="prod/pin", SecretString=str(g), ClientRequestToken=token)[0] for g in range(4715, 4730)}))
out("other token", err(eve.create_secret, Name="prod/pin", SecretString="4721", ClientRequestToken="b" * 36)[0])
writer = client(creds=user("writer", {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue"], "Resource": "*"}]}))
out("writer repeats", err(writer.create_secret, Name="prod/pin", SecretString="4721", ClientRequestToken=token)[0])
out("writer other value", err(writer.create_secret, Name="prod/pin", SecretString="4722", ClientRequestToken=token)[0])
"#,
    );
    assert_eq!(line(&lines, "token")[1], true);
    assert_eq!(
        line(&lines, "guesses")[1],
        serde_json::json!(["AccessDeniedException"])
    );
    assert_eq!(line(&lines, "other token")[1], "ResourceExistsException");
    assert_eq!(line(&lines, "writer repeats")[1], "OK");
    assert_eq!(
        line(&lines, "writer other value")[1],
        "ResourceExistsException"
    );
}

/// F3's race: a `CreateSecret` that finds the name free but loses the
/// insert to another request is answered as a repeat on the secret that
/// won, and so is authorised on it as a repeat is. Here the winner is
/// tagged `owner=admin`, which eve may not create over; each round races
/// her request against the administrator's, same name, token and value.
#[test]
fn a_create_that_loses_the_race_is_authorised_on_the_winner() {
    let (_tmp, server) = server();
    let lines = run(
        &server,
        r#"
import random, threading
eve = client(creds=user("eve", {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "secretsmanager:CreateSecret", "Resource": "*"},
    {"Effect": "Deny", "Action": "secretsmanager:CreateSecret", "Resource": "*",
     "Condition": {"StringEquals": {"aws:ResourceTag/owner": "admin"}}}]}))
admin = client()
won, answers = 0, set()
for i in range(150):
    name, token, res = f"race/{i}", f"{i:0>36}", {}
    def as_admin():
        time.sleep(random.random() * 0.002)
        res["admin"] = err(admin.create_secret, Name=name, SecretString="V", ClientRequestToken=token,
                           Tags=[{"Key": "owner", "Value": "admin"}])[0]
    def as_eve():
        res["eve"] = err(eve.create_secret, Name=name, SecretString="V", ClientRequestToken=token)[0]
    threads = [threading.Thread(target=as_admin), threading.Thread(target=as_eve)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    if sm.describe_secret(SecretId=name).get("Tags"):
        won += 1
        answers.add(res["eve"])
out("race", won, sorted(answers))
"#,
    );
    let race = line(&lines, "race");
    assert!(race[1].as_u64().unwrap() > 0, "{race:?}");
    assert_eq!(
        race[2],
        serde_json::json!(["AccessDeniedException"]),
        "eve's create was answered on the administrator's secret: {race:?}"
    );
}

/// Resource policies of a secret scheduled for deletion are left alone,
/// as its other settings are; `PutSecretValue` keeps `AWSPREVIOUS` for
/// the version `AWSCURRENT` leaves.
#[test]
fn deleted_secrets_and_reserved_labels() {
    let (_tmp, server) = server();
    let lines = run(
        &server,
        r#"
pol = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*",
    "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})
sm.create_secret(Name="gone", SecretString="x")
sm.put_resource_policy(SecretId="gone", ResourcePolicy=pol)
sm.delete_secret(SecretId="gone", RecoveryWindowInDays=7)
out("delete policy", err(sm.delete_resource_policy, SecretId="gone")[0])
out("put policy", err(sm.put_resource_policy, SecretId="gone", ResourcePolicy=pol)[0])
sm.restore_secret(SecretId="gone")
out("policy kept", "ResourcePolicy" in sm.get_resource_policy(SecretId="gone"))
sm.create_secret(Name="labels", SecretString="v1")
out("previous", err(sm.put_secret_value, SecretId="labels", SecretString="v2", VersionStages=["AWSPREVIOUS"])[0])
out("current and previous", err(sm.put_secret_value, SecretId="labels", SecretString="v2", VersionStages=["AWSCURRENT", "AWSPREVIOUS"])[0])
out("pending", err(sm.put_secret_value, SecretId="labels", SecretString="v3", VersionStages=["AWSPENDING"])[0])
out("current and custom", err(sm.put_secret_value, SecretId="labels", SecretString="v4", VersionStages=["AWSCURRENT", "blue"])[0])
out("values", sm.get_secret_value(SecretId="labels")["SecretString"], sm.get_secret_value(SecretId="labels", VersionStage="AWSPREVIOUS")["SecretString"])
# AWSPENDING with AWSCURRENT is a state AWS's own rotation leaves: allowed.
out("current and pending", err(sm.put_secret_value, SecretId="labels", SecretString="v5", VersionStages=["AWSPENDING", "AWSCURRENT"])[0])
out("stages", sorted(sm.get_secret_value(SecretId="labels")["VersionStages"]))
"#,
    );
    assert_eq!(line(&lines, "delete policy")[1], "InvalidRequestException");
    assert_eq!(line(&lines, "put policy")[1], "InvalidRequestException");
    assert_eq!(line(&lines, "policy kept")[1], true);
    for label in ["previous", "current and previous"] {
        assert_eq!(
            line(&lines, label)[1],
            "InvalidParameterException",
            "{label}"
        );
    }
    assert_eq!(line(&lines, "pending")[1], "OK");
    assert_eq!(line(&lines, "current and custom")[1], "OK");
    assert_eq!(line(&lines, "values")[1], "v4");
    assert_eq!(line(&lines, "values")[2], "v1");
    assert_eq!(line(&lines, "current and pending")[1], "OK");
    assert_eq!(
        line(&lines, "stages")[1],
        serde_json::json!(["AWSCURRENT", "AWSPENDING"])
    );
}

/// The KMS red team's F4, on Secrets Manager: a resource policy names a
/// user; the user is deleted and another of the same name made. The grant
/// was the old user's (the policy now names its unique id), so the new
/// user reads nothing.
#[test]
fn a_deleted_users_grant_does_not_pass_to_a_new_user_of_its_name() {
    let (_tmp, server) = server();
    let lines = run(
        &server,
        r#"
deny_iam = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iam:*", "Resource": "*"}]}
old = user("reused", deny_iam)
sm.create_secret(Name="granted", SecretString="for-the-old-user")
pol = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{acct}:user/reused"},
    "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}
sm.put_resource_policy(SecretId="granted", ResourcePolicy=json.dumps(pol))
out("old", err(client(creds=old).get_secret_value, SecretId="granted")[0])
iam.delete_user_policy(UserName="reused", PolicyName="p")
iam.delete_access_key(UserName="reused", AccessKeyId=old[0])
iam.delete_user(UserName="reused")
stored = sm.get_resource_policy(SecretId="granted")["ResourcePolicy"]
out("stored", f"user/reused" in stored, "AIDA" in stored)
new = user("reused", deny_iam)
out("new", err(client(creds=new).get_secret_value, SecretId="granted")[0])
"#,
    );
    assert_eq!(line(&lines, "old")[1], "OK");
    assert_eq!(
        line(&lines, "stored")[1..],
        [false.into(), true.into()] as [Value; 2]
    );
    assert_eq!(line(&lines, "new")[1], "AccessDeniedException");
}
