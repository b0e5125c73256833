#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The token service end to end: `latchkey serve` on a random port, driven
//! by the stock AWS CLI and boto3 (installed by scripts/test). TOTP codes
//! come from Python's hmac, not from our own TOTP code.

mod common;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::api::{
    ApiServer, Creds, aws, enable_virtual_mfa, error_code, next_totp_step, ok, python,
    settle_totp_window, totp,
};
use common::free_port;
use latchkey_session::{ClusterKey, KeyRing, SessionClaims};
use latchkey_store::Store;

/// A Query call signed by botocore with the administrator's key (for
/// actions the AWS CLI has no command for). Returns "STATUS BODY".
fn signed_query(server: &ApiServer, body: &str, service: &str) -> String {
    python(
        r#"
import configparser, ssl, sys, urllib.request, urllib.error
import botocore.auth, botocore.awsrequest, botocore.credentials
url, ca, creds_file, body, service = sys.argv[1:6]
cfg = configparser.ConfigParser(); cfg.read(creds_file)
ak, sk = cfg["default"]["aws_access_key_id"], cfg["default"]["aws_secret_access_key"]
req = botocore.awsrequest.AWSRequest(method="POST", url=url + "/", data=body, headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
botocore.auth.SigV4Auth(botocore.credentials.Credentials(ak, sk), service, "us-east-1").add_auth(req)
r = urllib.request.Request(url + "/", data=body.encode(), headers=dict(req.headers.items()), method="POST")
try:
    print("200", urllib.request.urlopen(r, context=ssl.create_default_context(cafile=ca)).read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"#,
        &[
            &server.endpoint(),
            server.dir.join("ca.pem").to_str().unwrap(),
            server.dir.join("admin.credentials").to_str().unwrap(),
            body,
            service,
        ],
    )
}

#[test]
fn token_service_with_the_aws_cli_and_boto3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let port = free_port();
    let mut server = ApiServer::start_on(&dir, port);

    // The generated files are private.
    use std::os::unix::fs::PermissionsExt;
    for f in ["master.key", "admin.credentials", "ca.key", "server.key"] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }

    // The administrator, straight from the generated credentials file.
    let me = ok(aws(&server, None, &["sts", "get-caller-identity"]));
    let account = me["Account"].as_str().unwrap().to_owned();
    assert_eq!(me["Arn"], format!("arn:aws:iam::{account}:user/admin"));

    // A user with a key, and a role whose trust policy requires MFA.
    ok(aws(
        &server,
        None,
        &["iam", "create-user", "--user-name", "alice"],
    ));
    let key = ok(aws(
        &server,
        None,
        &["iam", "create-access-key", "--user-name", "alice"],
    ));
    let alice = Creds::access_key(&key);
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:user/alice"}},"Action":"sts:AssumeRole","Condition":{{"Bool":{{"aws:MultiFactorAuthPresent":"true"}}}}}}]}}"#
    );
    let role = ok(aws(
        &server,
        None,
        &[
            "iam",
            "create-role",
            "--role-name",
            "db-reader",
            "--assume-role-policy-document",
            &trust,
        ],
    ));
    let role_arn = role["Role"]["Arn"].as_str().unwrap().to_owned();
    assert_eq!(
        role["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Action"],
        "sts:AssumeRole"
    );
    ok(aws(
        &server,
        None,
        &[
            "iam",
            "put-role-policy",
            "--role-name",
            "db-reader",
            "--policy-name",
            "connect",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#,
        ],
    ));

    // Register a virtual MFA device.
    let seed = tmp.path().join("seed.txt");
    let serial = enable_virtual_mfa(&server, "alice", &seed);
    assert_eq!(
        ok(aws(
            &server,
            None,
            &["iam", "list-mfa-devices", "--user-name", "alice"]
        ))["MFADevices"][0]["SerialNumber"],
        serial.as_str()
    );

    // Assume the role: no MFA, wrong, stale, good, then the same code again.
    let assume = |code: Option<&str>| {
        let mut args = vec![
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "alice-laptop",
        ];
        if let Some(c) = code {
            args.extend(["--serial-number", &serial, "--token-code", c]);
        }
        aws(&server, Some(&alice), &args)
    };
    assert_eq!(error_code(&assume(None)), "AccessDenied");
    assert_eq!(error_code(&assume(Some("000000"))), "AccessDenied");
    assert_eq!(
        error_code(&assume(Some(&totp(&seed, -90)))),
        "AccessDenied",
        "a stale code"
    );
    settle_totp_window();
    let code = totp(&seed, 30);
    let session = ok(assume(Some(&code)));
    assert_eq!(
        session["AssumedRoleUser"]["Arn"],
        format!("arn:aws:sts::{account}:assumed-role/db-reader/alice-laptop")
    );
    assert_eq!(
        error_code(&assume(Some(&code))),
        "AccessDenied",
        "a reused code"
    );
    let role_creds = Creds::from_sts(&session["Credentials"]);
    assert!(role_creds.key.starts_with("ASIA"));

    // The temporary credentials work; a tampered token does not; the role
    // may not administer IAM.
    let who = ok(aws(
        &server,
        Some(&role_creds),
        &["sts", "get-caller-identity"],
    ));
    assert_eq!(
        who["Arn"],
        format!("arn:aws:sts::{account}:assumed-role/db-reader/alice-laptop")
    );
    let mut tampered = role_creds.clone();
    let t = tampered.token.as_mut().unwrap();
    let mid = t.len() / 2;
    let flipped = if &t[mid..=mid] == "A" { "B" } else { "A" };
    t.replace_range(mid..=mid, flipped);
    assert_eq!(
        error_code(&aws(
            &server,
            Some(&tampered),
            &["sts", "get-caller-identity"]
        )),
        "InvalidClientTokenId"
    );
    let mut wrong_secret = role_creds.clone();
    wrong_secret.secret = "x".repeat(40);
    assert_eq!(
        error_code(&aws(
            &server,
            Some(&wrong_secret),
            &["sts", "get-caller-identity"]
        )),
        "SignatureDoesNotMatch"
    );
    assert_eq!(
        error_code(&aws(
            &server,
            Some(&role_creds),
            &["iam", "create-user", "--user-name", "mallory"]
        )),
        "AccessDenied"
    );
    assert_eq!(
        error_code(&aws(&server, Some(&alice), &["iam", "list-users"])),
        "AccessDenied"
    );

    // GetSessionToken with MFA (a code newer than the last one used, so
    // wait for the next step), and boto3 as a second client.
    next_totp_step();
    let st = ok(aws(
        &server,
        Some(&alice),
        &[
            "sts",
            "get-session-token",
            "--duration-seconds",
            "900",
            "--serial-number",
            &serial,
            "--token-code",
            &totp(&seed, 30),
        ],
    ));
    let st = Creds::from_sts(&st["Credentials"]);
    let boto = python(
        "import boto3,sys; c=boto3.client('sts', endpoint_url=sys.argv[1], verify=sys.argv[2], region_name='us-east-1', aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4], aws_session_token=sys.argv[5]); print(c.get_caller_identity()['Arn'])",
        &[
            &server.endpoint(),
            dir.join("ca.pem").to_str().unwrap(),
            &st.key,
            &st.secret,
            st.token.as_deref().unwrap(),
        ],
    );
    assert_eq!(boto, format!("arn:aws:iam::{account}:user/alice"));

    // An expired session (minted here with the cluster key, already past
    // its expiry): ExpiredToken.
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let expired = {
        let vault = latchkey_server::bootstrap::load_vault(&dir.join("master.key")).unwrap();
        let store = Store::open(&dir.join("latchkey.db"), vault).unwrap();
        let keys = store.cluster_keys(now).unwrap();
        let ring = KeyRing::new(ClusterKey::new(keys[0].0, &keys[0].1));
        let claims = SessionClaims {
            token_id: [3; 16],
            account: account.clone(),
            principal_arn: format!("arn:aws:iam::{account}:user/alice"),
            issued: now - 1000,
            expires: now - 100,
            ..SessionClaims::default()
        };
        let c = ring.seal(&claims, [5; 12]).unwrap();
        Creds {
            key: c.access_key_id,
            secret: c.secret_access_key.to_string(),
            token: Some(c.session_token),
        }
    };
    assert_eq!(
        error_code(&aws(
            &server,
            Some(&expired),
            &["sts", "get-caller-identity"]
        )),
        "ExpiredToken"
    );

    // A request signed 20 minutes ago (botocore with its clock moved back): RequestExpired.
    let skew = python(
        r#"
import datetime, ssl, sys, urllib.request, urllib.error
import botocore.auth, botocore.awsrequest, botocore.credentials
when = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
botocore.auth.get_current_datetime = lambda remove_tzinfo=True: when
url, ca, ak, sk = sys.argv[1:5]
body = "Action=GetCallerIdentity&Version=2011-06-15"
req = botocore.awsrequest.AWSRequest(method="POST", url=url + "/", data=body, headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
botocore.auth.SigV4Auth(botocore.credentials.Credentials(ak, sk), "sts", "us-east-1").add_auth(req)
r = urllib.request.Request(url + "/", data=body.encode(), headers=dict(req.headers.items()), method="POST")
try:
    urllib.request.urlopen(r, context=ssl.create_default_context(cafile=ca))
    print("200")
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"#,
        &[
            &server.endpoint(),
            dir.join("ca.pem").to_str().unwrap(),
            &alice.key,
            &alice.secret,
        ],
    );
    assert!(
        skew.starts_with("400") && skew.contains("<Code>RequestExpired</Code>"),
        "{skew}"
    );

    // Restart: nothing is lost, and credentials minted before still work.
    server.stop();
    let server = ApiServer::start_on(&dir, port);
    assert_eq!(
        ok(aws(
            &server,
            None,
            &["iam", "get-user", "--user-name", "alice"]
        ))["User"]["UserName"],
        "alice"
    );
    let who = ok(aws(
        &server,
        Some(&role_creds),
        &["sts", "get-caller-identity"],
    ));
    assert_eq!(
        who["Arn"],
        format!("arn:aws:sts::{account}:assumed-role/db-reader/alice-laptop")
    );
    let who = ok(aws(&server, Some(&alice), &["sts", "get-caller-identity"]));
    assert_eq!(
        who["UserId"].as_str().map(|s| s.starts_with("AIDA")),
        Some(true)
    );
    // Revoking the role's sessions stops the credentials minted before.
    let revoked = signed_query(
        &server,
        "Action=RevokeSessions&Version=2010-05-08&RoleName=db-reader",
        "iam",
    );
    assert!(
        revoked.starts_with("200") && revoked.contains("<RevokedBefore>"),
        "{revoked}"
    );
    assert_eq!(
        error_code(&aws(
            &server,
            Some(&role_creds),
            &["sts", "get-caller-identity"]
        )),
        "AccessDenied"
    );

    // Our own thin client speaks the same API with the same names.
    let latchkey = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", dir.join("admin.credentials"))
            .env("AWS_CA_BUNDLE", dir.join("ca.pem"))
            .env("AWS_ENDPOINT_URL", server.endpoint())
            .args(args)
            .output()
            .unwrap()
    };
    let me = ok(latchkey(&["sts", "get-caller-identity"]));
    assert_eq!(me["Account"], account.as_str());
    let user = ok(latchkey(&["iam", "get-user", "--user-name", "alice"]));
    assert_eq!(
        user["User"]["Arn"],
        format!("arn:aws:iam::{account}:user/alice")
    );
    let role = ok(latchkey(&["iam", "get-role", "--role-name", "db-reader"]));
    assert_eq!(
        role["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Effect"],
        "Allow"
    );
    let missing = latchkey(&["iam", "get-user", "--user-name", "nobody"]);
    assert_eq!(
        (missing.status.code(), error_code(&missing).as_str()),
        (Some(1), "NoSuchEntity")
    );

    // Deactivating a key takes effect at once.
    ok(aws(
        &server,
        None,
        &[
            "iam",
            "update-access-key",
            "--user-name",
            "alice",
            "--access-key-id",
            &alice.key,
            "--status",
            "Inactive",
        ],
    ));
    assert_eq!(
        error_code(&aws(&server, Some(&alice), &["sts", "get-caller-identity"])),
        "InvalidClientTokenId"
    );
    // Secrets never reach the log.
    let log = std::fs::read_to_string(dir.with_extension("log")).unwrap();
    for secret in [
        &alice.secret,
        &role_creds.secret,
        role_creds.token.as_ref().unwrap(),
    ] {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
    }
}

#[test]
fn master_key_rotation_without_downtime() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let port = free_port();
    let mut server = ApiServer::start_on(&dir, port);
    ok(aws(
        &server,
        None,
        &["iam", "create-user", "--user-name", "carol"],
    ));
    let key = ok(aws(
        &server,
        None,
        &["iam", "create-access-key", "--user-name", "carol"],
    ));
    let carol = Creds::access_key(&key);
    let rotate = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["rotate-master-key", "--settle", "6s", "--data-dir"])
        .arg(&dir)
        .spawn()
        .unwrap();
    // The service keeps answering while the key changes under it.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        ok(aws(&server, None, &["iam", "list-users"]));
    }
    let out = rotate.wait_with_output().unwrap();
    assert!(out.status.success());
    let keys = std::fs::read_to_string(dir.join("master.key")).unwrap();
    let lines: Vec<&str> = keys.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("2 "), "{keys}");
    // A secret first read after the rotation (not cached) still opens.
    let who = ok(aws(&server, Some(&carol), &["sts", "get-caller-identity"]));
    assert_eq!(
        who["Arn"].as_str().map(|a| a.ends_with(":user/carol")),
        Some(true)
    );
    // And after a restart with only the new key.
    server.stop();
    let server = ApiServer::start_on(&dir, port);
    ok(aws(&server, None, &["sts", "get-caller-identity"]));
    ok(aws(&server, Some(&carol), &["sts", "get-caller-identity"]));
}
