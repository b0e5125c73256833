#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The AWS JSON 1.1 front end to end: `latchkey serve` answering Secrets
//! Manager's `GetRandomPassword` to the stock AWS CLI, botocore's
//! refusals, raw requests signed by botocore's SigV4 signer, garbage
//! bodies, and the audit records of it all.

mod common;

use std::path::Path;

use common::api::{ApiServer, aws, error_code, ok, python, user};
use serde_json::Value;

fn secretsmanager_events(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["eventSource"] == "secretsmanager.amazonaws.com")
        .collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn get_random_password_with_the_aws_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ApiServer::start(&tmp.path().join("data"));
    let account = ok(aws(&server, None, &["sts", "get-caller-identity"]))["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut passwords = Vec::new();

    // As the administrator: 40 alphanumerics, each type at least once.
    let p = ok(aws(
        &server,
        None,
        &[
            "secretsmanager",
            "get-random-password",
            "--password-length",
            "40",
            "--exclude-punctuation",
        ],
    ))["RandomPassword"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(p.len(), 40, "{p}");
    assert!(p.bytes().all(|c| c.is_ascii_alphanumeric()), "{p}");
    assert!(p.bytes().any(|c| c.is_ascii_uppercase()), "{p}");
    assert!(p.bytes().any(|c| c.is_ascii_lowercase()), "{p}");
    assert!(p.bytes().any(|c| c.is_ascii_digit()), "{p}");
    passwords.push(p);

    // AWS's defaults: 32 characters, punctuation included.
    let p = ok(aws(
        &server,
        None,
        &["secretsmanager", "get-random-password"],
    ))["RandomPassword"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(p.len(), 32, "{p}");
    assert!(p.bytes().any(|c| c.is_ascii_punctuation()), "{p}");
    passwords.push(p);

    // Excluded characters never appear; the space only when asked for.
    let p = ok(aws(
        &server,
        None,
        &[
            "secretsmanager",
            "get-random-password",
            "--password-length",
            "4096",
            "--exclude-characters",
            "abcdefghijklmnopqrstuvwxyz0123456789",
            "--include-space",
        ],
    ))["RandomPassword"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(p.len(), 4096);
    assert!(
        !p.bytes()
            .any(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    assert!(p.contains(' ') && p.bytes().any(|c| c.is_ascii_uppercase()));
    passwords.push(p);

    // Four required types do not fit in three characters.
    let out = aws(
        &server,
        None,
        &[
            "secretsmanager",
            "get-random-password",
            "--password-length",
            "3",
        ],
    );
    assert_eq!(error_code(&out), "InvalidParameterException");
    // Nothing left to choose from.
    let out = aws(
        &server,
        None,
        &[
            "secretsmanager",
            "get-random-password",
            "--exclude-numbers",
            "--exclude-punctuation",
            "--exclude-uppercase",
            "--exclude-lowercase",
        ],
    );
    assert_eq!(error_code(&out), "InvalidParameterException");

    // A user whose policy allows something else is refused, in AWS's words.
    let bob = user(
        &server,
        "bob",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#,
    );
    let out = aws(
        &server,
        Some(&bob),
        &["secretsmanager", "get-random-password"],
    );
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert_eq!(error_code(&out), "AccessDeniedException");
    assert!(
        stderr(&out).contains(&format!(
            "An error occurred (AccessDeniedException) when calling the GetRandomPassword operation: User: arn:aws:iam::{account}:user/bob is not authorized to perform: secretsmanager:GetRandomPassword because no identity-based policy allows the secretsmanager:GetRandomPassword action"
        )),
        "{}",
        stderr(&out)
    );

    // One whose policy allows it gets a password; an explicit deny wins.
    let carol = user(
        &server,
        "carol",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetRandomPassword","Resource":"*"}]}"#,
    );
    let p = ok(aws(
        &server,
        Some(&carol),
        &["secretsmanager", "get-random-password"],
    ))["RandomPassword"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(p.len(), 32);
    passwords.push(p);
    let dave = user(
        &server,
        "dave",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"secretsmanager:Get*","Resource":"*"}]}"#,
    );
    let out = aws(
        &server,
        Some(&dave),
        &["secretsmanager", "get-random-password"],
    );
    assert_eq!(error_code(&out), "AccessDeniedException");
    assert!(
        stderr(&out).contains("with an explicit deny in an identity-based policy"),
        "{}",
        stderr(&out)
    );

    // The trail has every call, from secretsmanager.amazonaws.com, and no
    // password.
    let (text, events) = common::trail_in(&server.dir, |e| secretsmanager_events(e).len() >= 8);
    let sm = secretsmanager_events(&events);
    assert_eq!(sm.len(), 8, "{sm:#?}");
    for e in &sm {
        assert_eq!(e["eventName"], "GetRandomPassword");
        assert_eq!(e["readOnly"], true);
        assert!(e["responseElements"].is_null(), "{e}");
    }
    let first = sm[0];
    assert_eq!(
        first["userIdentity"]["arn"],
        format!("arn:aws:iam::{account}:user/admin")
    );
    assert_eq!(first["requestParameters"]["excludePunctuation"], true);
    assert!(
        first["requestParameters"].get("passwordLength").is_none(),
        "{first}"
    );
    assert!(first.get("errorCode").is_none());
    let denied: Vec<_> = sm
        .iter()
        .filter(|e| e["errorCode"] == "AccessDeniedException")
        .collect();
    assert_eq!(denied.len(), 2);
    assert_eq!(
        denied[0]["userIdentity"]["arn"],
        format!("arn:aws:iam::{account}:user/bob")
    );
    assert_eq!(
        sm.iter()
            .filter(|e| e["errorCode"] == "InvalidParameterException")
            .count(),
        2
    );
    for p in &passwords {
        assert!(!text.contains(p.as_str()), "a password is in the trail");
    }
}

/// Runs `script` with botocore; the endpoint, CA bundle and the
/// administrator's key as `url`, `ca`, `ak`, `sk`, and `call(target,
/// body, creds)` sending a raw request (signed when `creds` is given) and
/// returning `[status, headers, body]`. Prints what `script` prints.
fn botocore(server: &ApiServer, script: &str) -> Vec<Value> {
    let prelude = r#"
import configparser, http.client, json, ssl, sys
import boto3, botocore.auth, botocore.awsrequest, botocore.config, botocore.credentials, botocore.exceptions
url, ca, creds_file = sys.argv[1:4]
cfg = configparser.ConfigParser(); cfg.read(creds_file)
ak, sk = cfg["default"]["aws_access_key_id"], cfg["default"]["aws_secret_access_key"]
host = url.split("://", 1)[1]

def call(target, body, creds=None, content_type="application/x-amz-json-1.1"):
    headers = {"Content-Type": content_type, "X-Amz-Target": target}
    if creds is not None:
        req = botocore.awsrequest.AWSRequest(method="POST", url=url + "/", data=body, headers=headers)
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(*creds), "secretsmanager", "us-east-1").add_auth(req)
        headers = dict(req.headers.items())
    conn = http.client.HTTPSConnection(host, context=ssl.create_default_context(cafile=ca), timeout=30)
    conn.request("POST", "/", body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = data.decode("utf-8", "replace")
    return [r.status, {k.lower(): v for k, v in r.getheaders()}, parsed]

def client(key, secret):
    return boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1", verify=ca,
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=botocore.config.Config(retries={"max_attempts": 0}))

def error_of(f):
    try:
        f()
        return None
    except botocore.exceptions.ClientError as e:
        return [e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"], e.response["Error"]["Message"]]
    except botocore.exceptions.ParamValidationError as e:
        return [0, "ParamValidationError", str(e)]
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

fn admin_key(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("admin.credentials")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("aws_access_key_id"))
        .map(|v| v.trim_start_matches([' ', '=']).trim().to_owned())
        .unwrap()
}

#[test]
fn refusals_reach_botocore_with_the_json_services_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ApiServer::start(&tmp.path().join("data"));
    let results = botocore(
        &server,
        r#"
print(json.dumps(error_of(lambda: client(ak, "wrong" + sk[5:]).get_random_password())))
print(json.dumps(error_of(lambda: client("AKIA" + "Z" * 16, sk).get_random_password())))
print(json.dumps(call("secretsmanager.GetRandomPassword", "{}")))
print(json.dumps(call("secretsmanager.NoSuchOperation", "{}", (ak, sk))))
print(json.dumps(call("NoSuchService.GetRandomPassword", "{}", (ak, sk))))
print(json.dumps(call("secretsmanager.GetRandomPassword", '{"PasswordLength": 12}', (ak, sk))))
print(json.dumps(error_of(lambda: client(ak, sk).get_random_password(PasswordLength=5000))))
"#,
    );
    let [
        bad_signature,
        unknown_key,
        unsigned,
        unknown_operation,
        unknown_service,
        signed_ok,
        too_long,
    ] = results.as_slice()
    else {
        panic!("{results:?}");
    };
    assert_eq!(bad_signature[0], 400, "{bad_signature}");
    assert_eq!(bad_signature[1], "InvalidSignatureException");
    assert_eq!(unknown_key[0], 400, "{unknown_key}");
    assert_eq!(unknown_key[1], "UnrecognizedClientException");
    assert_eq!(
        unknown_key[2],
        "The security token included in the request is invalid."
    );
    assert_eq!(unsigned[0], 400, "{unsigned}");
    assert_eq!(unsigned[2]["__type"], "MissingAuthenticationTokenException");
    for (r, code) in [
        (unknown_operation, "UnknownOperationException"),
        (unknown_service, "UnknownOperationException"),
    ] {
        assert_eq!(r[0], 400, "{r}");
        assert_eq!(r[1]["content-type"], "application/x-amz-json-1.1");
        assert_eq!(r[1]["x-amzn-errortype"], code);
        assert_eq!(r[1]["x-amzn-requestid"].as_str().unwrap().len(), 36);
        assert_eq!(r[2]["__type"], code);
    }
    assert_eq!(signed_ok[0], 200, "{signed_ok}");
    assert_eq!(signed_ok[1]["content-type"], "application/x-amz-json-1.1");
    assert_eq!(signed_ok[2]["RandomPassword"].as_str().unwrap().len(), 12);
    // botocore checks only minimums: the server refuses the maximum.
    assert_eq!(too_long[0], 400, "{too_long}");
    assert_eq!(too_long[1], "InvalidParameterException");
    assert!(
        too_long[2]
            .as_str()
            .unwrap()
            .ends_with("Member must have value less than or equal to 4096"),
        "{too_long}"
    );

    // The refusals are audited; the unknown service has no source to be
    // recorded under.
    let key = admin_key(&server.dir);
    let (_, events) = common::trail_in(&server.dir, |e| secretsmanager_events(e).len() >= 6);
    let sm = secretsmanager_events(&events);
    let codes: Vec<&str> = sm
        .iter()
        .map(|e| e["errorCode"].as_str().unwrap_or("Success"))
        .collect();
    assert_eq!(
        codes,
        [
            "InvalidSignatureException",
            "UnrecognizedClientException",
            "MissingAuthenticationTokenException",
            "UnknownOperationException",
            "Success",
            "InvalidParameterException",
        ],
        "{sm:#?}"
    );
    assert_eq!(sm[0]["userIdentity"]["accessKeyId"], key.as_str());
    assert_eq!(sm[0]["additionalEventData"]["possessionProven"], false);
    assert_eq!(sm[3]["eventName"], "NoSuchOperation");
    assert_eq!(sm[3]["userIdentity"]["accessKeyId"], key.as_str());
}

#[test]
fn garbage_bodies_are_serialization_exceptions() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ApiServer::start(&tmp.path().join("data"));
    let results = botocore(
        &server,
        r#"
bodies = [
    b"not json",
    b"[]",
    b'"text"',
    b"42",
    b"null",
    b'{"PasswordLength":',
    b"\xff\xfe{}",
    b"[" * 100000 + b"]" * 100000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'"' + b"x" * (400 * 1024) + b'"',
]
for body in bodies:
    print(json.dumps(call("secretsmanager.GetRandomPassword", body)))
# Signed or not, the body is read first.
print(json.dumps(call("secretsmanager.GetRandomPassword", b"[1, 2", (ak, sk))))
print(json.dumps(call("secretsmanager.GetRandomPassword", b'"' + b"x" * (1024 * 1024) + b'"')))
# A wrong type is the handler's refusal, without the value.
print(json.dumps(call("secretsmanager.GetRandomPassword", b'{"ExcludeCharacters": ["hunter2"]}', (ak, sk))))
# And the server still answers.
print(json.dumps(call("secretsmanager.GetRandomPassword", b"", (ak, sk))))
"#,
    );
    assert_eq!(results.len(), 14, "{results:?}");
    for r in &results[..11] {
        assert_eq!(r[0], 400, "{r}");
        assert_eq!(r[1]["x-amzn-errortype"], "SerializationException");
        assert_eq!(r[2]["__type"], "SerializationException");
    }
    assert_eq!(results[11][0], 413, "{}", results[11]);
    assert_eq!(results[11][2]["__type"], "RequestEntityTooLargeException");
    assert_eq!(results[12][0], 400);
    assert_eq!(results[12][2]["__type"], "InvalidParameterException");
    let message = results[12][2]["message"].as_str().unwrap();
    assert!(
        message.contains("ExcludeCharacters") && !message.contains("hunter2"),
        "{message}"
    );
    assert_eq!(results[13][0], 200, "{}", results[13]);
    assert_eq!(results[13][2]["RandomPassword"].as_str().unwrap().len(), 32);
}
