#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Attacks on the authorisation layer (issue 14), each performed against a
//! real `latchkey serve` with a throwaway PostgreSQL and MariaDB behind it,
//! driven by the stock AWS CLI, psql and the mariadb client. One stack is
//! shared by every scenario; each scenario uses entities of its own.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::api::{enable_virtual_mfa_with, totp};
use common::*;
use serde_json::Value;

/// The servers every scenario shares.
struct Stack {
    _pg: Postgres,
    _my: MariaDb,
    lk: Latchkey,
    api_port: u16,
    account: String,
}

/// Environment-variable credentials (`AWS_ACCESS_KEY_ID`, ...).
type Creds = Vec<(String, String)>;

impl Stack {
    fn start(root: &Path) -> Self {
        let pg = Postgres::start(root);
        pg.sql("CREATE ROLE admin_role LOGIN SUPERUSER PASSWORD 'admin-secret'");
        let my = MariaDb::start(root);
        my.sql(
            "CREATE DATABASE shop;
             CREATE USER app@'%' IDENTIFIED BY 'app-secret';
             GRANT ALL ON shop.* TO app@'%';
             CREATE USER admin_role@'%' IDENTIFIED BY 'admin-secret';
             GRANT ALL ON *.* TO admin_role@'%' WITH GRANT OPTION;",
        );
        let (data, api) = init_latchkey(root, &[]);
        register_db(
            &data,
            &[
                "--name",
                "orders",
                "--endpoint",
                "localhost",
                "--upstream",
                &format!("127.0.0.1:{}", pg.port),
            ],
        );
        register_db(
            &data,
            &[
                "--name",
                "shop",
                "--engine",
                "mysql",
                "--endpoint",
                "localhost",
                "--upstream",
                &format!("127.0.0.1:{}", my.port),
                "--upstream-tls",
                "disable",
            ],
        );
        for (db, user, password) in [
            ("orders", "app", "app-secret"),
            ("orders", "admin_role", "admin-secret"),
            ("shop", "app", "app-secret"),
            ("shop", "admin_role", "admin-secret"),
        ] {
            set_db_password(&data, db, user, password);
        }
        let lk = serve_latchkey(root, &data, &api, &[]);
        let api_port = api.rsplit(':').next().unwrap().parse().unwrap();
        let mut stack = Self {
            _pg: pg,
            _my: my,
            lk,
            api_port,
            account: String::new(),
        };
        stack.account = stack.ok(None, &["sts", "get-caller-identity"])["Account"]
            .as_str()
            .unwrap()
            .to_owned();
        stack
    }

    /// The stock AWS CLI against this server: as the administrator, or
    /// with `creds`.
    fn aws(&self, creds: Option<&Creds>, args: &[&str]) -> Output {
        let mut c = aws_cli();
        c.env("AWS_CONFIG_FILE", self.lk.data.join("aws.config"))
            .env("AWS_CA_BUNDLE", self.lk.data.join("ca.pem"))
            .env("AWS_EC2_METADATA_DISABLED", "true");
        match creds {
            None => {
                c.env(
                    "AWS_SHARED_CREDENTIALS_FILE",
                    self.lk.data.join("admin.credentials"),
                );
            }
            Some(creds) => {
                c.env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
                for (k, v) in creds {
                    c.env(k, v);
                }
            }
        }
        c.args(["--output", "json"]).args(args).output().unwrap()
    }

    fn ok(&self, creds: Option<&Creds>, args: &[&str]) -> Value {
        let out = self.aws(creds, args);
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Runs a call that must fail; returns AWS's error code and the message.
    fn refused(&self, creds: Option<&Creds>, args: &[&str]) -> String {
        let out = self.aws(creds, args);
        assert!(
            !out.status.success(),
            "aws {args:?} should have been refused, got {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn arn(&self, resource: &str) -> String {
        format!("arn:aws:iam::{}:{resource}", self.account)
    }

    /// A user with an inline policy and an access key.
    fn user(&self, name: &str, policy: &str) -> Creds {
        self.ok(None, &["iam", "create-user", "--user-name", name]);
        self.ok(
            None,
            &[
                "iam",
                "put-user-policy",
                "--user-name",
                name,
                "--policy-name",
                "p",
                "--policy-document",
                policy,
            ],
        );
        let key = self.ok(None, &["iam", "create-access-key", "--user-name", name]);
        api::Creds::access_key(&key).env_vars()
    }

    /// A role with a trust policy and an inline policy.
    fn role(&self, name: &str, trust: &str, policy: &str) {
        self.ok(
            None,
            &[
                "iam",
                "create-role",
                "--role-name",
                name,
                "--assume-role-policy-document",
                trust,
            ],
        );
        self.ok(
            None,
            &[
                "iam",
                "put-role-policy",
                "--role-name",
                name,
                "--policy-name",
                "p",
                "--policy-document",
                policy,
            ],
        );
    }

    fn assume(&self, creds: &Creds, role: &str, extra: &[&str]) -> Result<Creds, String> {
        let arn = self.arn(&format!("role/{role}"));
        let mut args = vec![
            "sts",
            "assume-role",
            "--role-arn",
            &arn,
            "--role-session-name",
            "s1",
        ];
        args.extend(extra);
        let out = self.aws(Some(creds), &args);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        Ok(api::Creds::from_sts(&v["Credentials"]).env_vars())
    }

    fn pg_login(&self, creds: &Creds, user: &str) -> Output {
        let c: Vec<(&str, &str)> = creds
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let token = aws_token(&self.lk, &c, "localhost", user);
        psql(&self.lk, user, &token, "verify-full", "SELECT current_user")
    }

    fn my_login(&self, creds: &Creds, user: &str) -> Output {
        let c: Vec<(&str, &str)> = creds
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let token = aws_token_for_port(&self.lk, self.lk.mysql_port, &c, "localhost", user);
        mariadb(&self.lk, user, &token, &["-e", "SELECT current_user()"])
    }
}

fn allow(actions: &str, resource: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":{actions},"Resource":"{resource}"}}]}}"#
    )
}

/// A trust policy naming `principal` for `actions`.
fn trust(principal: &str, actions: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":{actions}}}]}}"#
    )
}

#[test]
fn authorisation_attacks_on_a_live_stack() {
    let root = tempfile::tempdir().unwrap();
    let s = Stack::start(root.path());
    session_tags_need_tag_session(&s);
    source_identity_needs_set_source_identity(&s);
    get_session_token_without_mfa_cannot_call_iam(&s, root.path());
    recreated_role_and_user_inherit_nothing(&s);
    revocation_follows_role_chains(&s);
    wrong_region_and_long_term_key_with_token_refused(&s);
    revoke_sessions_cannot_lock_out_or_probe(&s);
    names_are_one_entity_and_trust_binds_unique_ids(&s);
    tags_at_creation_need_the_tagging_permission(&s);
}

/// Flaw 1: a trust policy that allows only `sts:AssumeRole` lets nobody
/// tag the session; with `${aws:PrincipalTag/dbuser}` in the role's
/// policy, a tag `dbuser=admin_role` would log in as the superuser.
fn session_tags_need_tag_session(s: &Stack) {
    let mallory = s.user("mallory", &allow(r#""sts:AssumeRole""#, "*"));
    let mallory_arn = s.arn("user/mallory");
    let connect_by_tag = format!(
        "arn:aws:rds-db:us-east-1:{}:dbuser:*/${{aws:PrincipalTag/dbuser}}",
        s.account
    );
    s.role(
        "tagged",
        &trust(&mallory_arn, r#""sts:AssumeRole""#),
        &allow(r#""rds-db:connect""#, &connect_by_tag),
    );
    let err = s
        .assume(
            &mallory,
            "tagged",
            &["--tags", "Key=dbuser,Value=admin_role"],
        )
        .unwrap_err();
    assert!(
        err.contains("AccessDenied") && err.contains("sts:TagSession"),
        "{err}"
    );
    // Untagged, the session has no dbuser tag: it reaches no database user.
    let plain = s.assume(&mallory, "tagged", &[]).unwrap();
    assert_denied(&s.pg_login(&plain, "admin_role"), "admin_role");
    assert_mysql_denied(&s.my_login(&plain, "admin_role"), "admin_role");

    // The trust policy may grant tagging, limited by aws:RequestTag.
    let granted = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Principal":{{"AWS":"{mallory_arn}"}},"Action":"sts:AssumeRole"}},
            {{"Effect":"Allow","Principal":{{"AWS":"{mallory_arn}"}},"Action":"sts:TagSession",
              "Condition":{{"StringEquals":{{"aws:RequestTag/dbuser":"app"}},
                           "ForAllValues:StringEquals":{{"aws:TagKeys":["dbuser"]}}}}}}]}}"#
    );
    s.ok(
        None,
        &[
            "iam",
            "update-assume-role-policy",
            "--role-name",
            "tagged",
            "--policy-document",
            &granted,
        ],
    );
    let err = s
        .assume(
            &mallory,
            "tagged",
            &["--tags", "Key=dbuser,Value=admin_role"],
        )
        .unwrap_err();
    assert!(err.contains("sts:TagSession"), "{err}");
    let err = s
        .assume(
            &mallory,
            "tagged",
            &["--tags", "Key=dbuser,Value=app", "Key=team,Value=x"],
        )
        .unwrap_err();
    assert!(err.contains("sts:TagSession"), "{err}");
    let app = s
        .assume(
            &mallory,
            "tagged",
            &[
                "--tags",
                "Key=dbuser,Value=app",
                "--transitive-tag-keys",
                "dbuser",
            ],
        )
        .unwrap();
    assert_eq!(stdout_ok(&s.pg_login(&app, "app")), "app");
    assert_denied(&s.pg_login(&app, "admin_role"), "admin_role");
    assert!(stdout_ok(&s.my_login(&app, "app")).starts_with("app@"));
    assert_mysql_denied(&s.my_login(&app, "admin_role"), "admin_role");

    // Transitive tags pass on in a role chain: the next role's trust
    // policy must grant sts:TagSession for them too, and they cannot be
    // overridden.
    let tagged_arn = s.arn("role/tagged");
    s.role(
        "hop",
        &trust(&tagged_arn, r#""sts:AssumeRole""#),
        &allow(r#""rds-db:connect""#, &connect_by_tag),
    );
    let s1 = s.assume(&app, "hop", &[]).unwrap_err();
    assert!(s1.contains("sts:TagSession"), "{s1}");
    s.ok(
        None,
        &[
            "iam",
            "update-assume-role-policy",
            "--role-name",
            "hop",
            "--policy-document",
            &trust(&tagged_arn, r#"["sts:AssumeRole","sts:TagSession"]"#),
        ],
    );
    let err = s
        .assume(&app, "hop", &["--tags", "Key=dbuser,Value=admin_role"])
        .unwrap_err();
    assert!(err.contains("InvalidParameterValue"), "{err}");
    let hop = s.assume(&app, "hop", &[]).unwrap();
    assert_eq!(stdout_ok(&s.pg_login(&hop, "app")), "app");
    assert_denied(&s.pg_login(&hop, "admin_role"), "admin_role");
    // A tag key given twice, or in the reserved aws: space, is invalid.
    for tags in [
        ["Key=k,Value=1", "Key=K,Value=2"],
        ["Key=aws:x,Value=1", "Key=k,Value=1"],
    ] {
        let mut args = vec!["--tags"];
        args.extend(tags);
        let err = s.assume(&mallory, "tagged", &args).unwrap_err();
        assert!(err.contains("InvalidParameterValue"), "{err}");
    }
}

/// Flaw 1's sibling: `SourceIdentity` needs `sts:SetSourceIdentity`.
fn source_identity_needs_set_source_identity(s: &Stack) {
    let victor = s.user("victor", &allow(r#""sts:AssumeRole""#, "*"));
    let victor_arn = s.arn("user/victor");
    s.role(
        "audited",
        &trust(&victor_arn, r#""sts:AssumeRole""#),
        &allow(r#""iam:GetRole""#, "*"),
    );
    let err = s
        .assume(&victor, "audited", &["--source-identity", "someone-else"])
        .unwrap_err();
    assert!(err.contains("sts:SetSourceIdentity"), "{err}");
    s.ok(
        None,
        &[
            "iam",
            "update-assume-role-policy",
            "--role-name",
            "audited",
            "--policy-document",
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Principal":{{"AWS":"{victor_arn}"}},"Action":"sts:AssumeRole"}},
                {{"Effect":"Allow","Principal":{{"AWS":"{victor_arn}"}},"Action":"sts:SetSourceIdentity",
                  "Condition":{{"StringEquals":{{"sts:SourceIdentity":"${{aws:username}}"}}}}}}]}}"#
            ),
        ],
    );
    let err = s
        .assume(&victor, "audited", &["--source-identity", "someone-else"])
        .unwrap_err();
    assert!(err.contains("sts:SetSourceIdentity"), "{err}");
    s.assume(&victor, "audited", &["--source-identity", "victor"])
        .unwrap();
}

/// Flaw 4: credentials from `GetSessionToken` without MFA cannot call IAM
/// (with them, `CreateAccessKey` on oneself would turn a 15-minute
/// credential into a permanent one), nor STS beyond `AssumeRole` and
/// `GetCallerIdentity`; with MFA they can call IAM.
fn get_session_token_without_mfa_cannot_call_iam(s: &Stack, root: &Path) {
    let self_service = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["iam:*","sts:*"],"Resource":["{}","*"]}}]}}"#,
        s.arn("user/gst")
    );
    let gst = s.user("gst", &self_service);
    let session = |extra: &[&str]| {
        let mut args = vec!["sts", "get-session-token", "--duration-seconds", "900"];
        args.extend(extra);
        api::Creds::from_sts(&s.ok(Some(&gst), &args)["Credentials"]).env_vars()
    };
    let no_mfa = session(&[]);
    let err = s.refused(
        Some(&no_mfa),
        &["iam", "create-access-key", "--user-name", "gst"],
    );
    assert!(err.contains("InvalidClientTokenId"), "{err}");
    let err = s.refused(Some(&no_mfa), &["iam", "list-users"]);
    assert!(err.contains("InvalidClientTokenId"), "{err}");
    let err = s.refused(Some(&no_mfa), &["sts", "get-session-token"]);
    assert!(err.contains("AccessDenied"), "{err}");
    assert_eq!(
        s.ok(Some(&no_mfa), &["sts", "get-caller-identity"])["Arn"],
        s.arn("user/gst")
    );
    let keys = s.ok(None, &["iam", "list-access-keys", "--user-name", "gst"]);
    assert_eq!(keys["AccessKeyMetadata"].as_array().unwrap().len(), 1);

    // With MFA, IAM is open to the session (its policies permitting).
    let seed = root.join("gst-seed");
    let serial = enable_virtual_mfa_with(|args| s.ok(None, args), "gst", &seed);
    let with_mfa = session(&["--serial-number", &serial, "--token-code", &totp(&seed, 30)]);
    s.ok(Some(&with_mfa), &["iam", "get-user", "--user-name", "gst"]);
}

/// Flaw 6: deleting a role (or user) and creating another of the same name
/// gives the old sessions nothing: they are bound to the unique id.
fn recreated_role_and_user_inherit_nothing(s: &Stack) {
    let eve = s.user("eve", &allow(r#""sts:AssumeRole""#, "*"));
    let eve_arn = s.arn("user/eve");
    let narrow = allow(r#"["iam:GetRole","rds-db:connect"]"#, "*");
    s.role(
        "ephemeral",
        &trust(&eve_arn, r#""sts:AssumeRole""#),
        &narrow,
    );
    let old = s.assume(&eve, "ephemeral", &[]).unwrap();
    s.ok(Some(&old), &["iam", "get-role", "--role-name", "ephemeral"]);
    let err = s.refused(Some(&old), &["iam", "list-users"]);
    assert!(err.contains("AccessDenied"), "{err}");
    // A live database session of the old role, to be ended.
    let c: Vec<(&str, &str)> = old.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let token = aws_token(&s.lk, &c, "localhost", "app");
    let mut live = Command::new("psql")
        .arg(conninfo(&s.lk, "app", "verify-full"))
        .args(["-X", "-A", "-t", "-c", "SELECT pg_sleep(60)"])
        .env("PGPASSWORD", &token)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));

    s.ok(
        None,
        &[
            "iam",
            "delete-role-policy",
            "--role-name",
            "ephemeral",
            "--policy-name",
            "p",
        ],
    );
    s.ok(None, &["iam", "delete-role", "--role-name", "ephemeral"]);
    s.role(
        "ephemeral",
        &trust(&eve_arn, r#""sts:AssumeRole""#),
        &allow(r#"["iam:GetRole","iam:ListUsers","rds-db:connect"]"#, "*"),
    );
    let err = s.refused(Some(&old), &["iam", "list-users"]);
    assert!(err.contains("InvalidClientTokenId"), "{err}");
    assert_denied(&s.pg_login(&old, "app"), "app");
    let err = s.refused(Some(&old), &["sts", "get-caller-identity"]);
    assert!(err.contains("InvalidClientTokenId"), "{err}");
    assert_mysql_denied(&s.my_login(&old, "app"), "app");
    let fresh = s.assume(&eve, "ephemeral", &[]).unwrap();
    s.ok(Some(&fresh), &["iam", "list-users"]);
    // The revocation sweep ends the old role's live session.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = live.try_wait().unwrap() {
            assert!(!status.success(), "the session should have been ended");
            break;
        }
        assert!(Instant::now() < deadline, "the old role's session lives on");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The same for a user: a session of a deleted user does not pass to
    // a new user of the same name.
    let temp = s.user("temp", &allow(r#""rds-db:connect""#, "*"));
    let temp_session = api::Creds::from_sts(
        &s.ok(
            Some(&temp),
            &["sts", "get-session-token", "--duration-seconds", "900"],
        )["Credentials"],
    )
    .env_vars();
    assert_eq!(stdout_ok(&s.pg_login(&temp_session, "app")), "app");
    let key = &temp[0].1;
    s.ok(
        None,
        &[
            "iam",
            "delete-access-key",
            "--user-name",
            "temp",
            "--access-key-id",
            key,
        ],
    );
    s.ok(
        None,
        &[
            "iam",
            "delete-user-policy",
            "--user-name",
            "temp",
            "--policy-name",
            "p",
        ],
    );
    s.ok(None, &["iam", "delete-user", "--user-name", "temp"]);
    s.user("temp", &allow(r#""rds-db:connect""#, "*"));
    assert_denied(&s.pg_login(&temp_session, "app"), "app");
    let err = s.refused(Some(&temp_session), &["sts", "get-caller-identity"]);
    assert!(err.contains("InvalidClientTokenId"), "{err}");
}

/// Flaw 9: alice -> A -> B; revoking alice, or A, ends B's session too.
fn revocation_follows_role_chains(s: &Stack) {
    let alice = s.user("alice", &allow(r#""sts:AssumeRole""#, "*"));
    let alice_arn = s.arn("user/alice");
    let role_a = s.arn("role/chain-a");
    s.role(
        "chain-a",
        &trust(&alice_arn, r#""sts:AssumeRole""#),
        &allow(r#""sts:AssumeRole""#, "*"),
    );
    s.role(
        "chain-b",
        &trust(&role_a, r#""sts:AssumeRole""#),
        &allow(r#""rds-db:connect""#, "*"),
    );
    let revoke = |args: &[&str]| {
        let mut all = vec!["iam", "revoke-sessions"];
        all.extend(args);
        latchkey_api(&s.lk, s.api_port, &all);
    };
    let chain = || {
        let a = s.assume(&alice, "chain-a", &[]).unwrap();
        s.assume(&a, "chain-b", &[]).unwrap()
    };

    let b = chain();
    assert_eq!(stdout_ok(&s.pg_login(&b, "app")), "app");
    revoke(&["--user-name", "alice"]);
    let err = s.refused(Some(&b), &["sts", "get-caller-identity"]);
    assert!(
        err.contains("AccessDenied") || err.contains("revoked"),
        "{err}"
    );
    assert_denied(&s.pg_login(&b, "app"), "app");

    // Sessions issued after the revocation (a second later) work again.
    std::thread::sleep(Duration::from_millis(1100));
    let b = chain();
    assert_eq!(stdout_ok(&s.pg_login(&b, "app")), "app");
    revoke(&["--role-name", "chain-a"]);
    assert_denied(&s.pg_login(&b, "app"), "app");
    assert_mysql_denied(&s.my_login(&b, "app"), "app");
}

/// A request signed for another region, and a long-term key sent with a
/// session token, are refused, as AWS refuses them; on the API and the
/// gateways alike.
fn wrong_region_and_long_term_key_with_token_refused(s: &Stack) {
    let err = s.refused(
        None,
        &["sts", "get-caller-identity", "--region", "eu-west-1"],
    );
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");

    let admin = std::fs::read_to_string(s.lk.data.join("admin.credentials")).unwrap();
    let field = |k: &str| {
        admin
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} = ")))
            .unwrap()
            .to_owned()
    };
    let mut with_token: Creds = vec![
        ("AWS_ACCESS_KEY_ID".into(), field("aws_access_key_id")),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            field("aws_secret_access_key"),
        ),
    ];
    // A real session token of another session, to make it plausible.
    let other = s.ok(
        None,
        &["sts", "get-session-token", "--duration-seconds", "900"],
    );
    with_token.push((
        "AWS_SESSION_TOKEN".into(),
        other["Credentials"]["SessionToken"]
            .as_str()
            .unwrap()
            .into(),
    ));
    let err = s.refused(Some(&with_token), &["sts", "get-caller-identity"]);
    assert!(err.contains("InvalidClientTokenId"), "{err}");
    assert_denied(&s.pg_login(&with_token, "app"), "app");
    assert_mysql_denied(&s.my_login(&with_token, "app"), "app");
    // The administrator's key alone still works, everywhere.
    with_token.pop();
    assert_eq!(stdout_ok(&s.pg_login(&with_token, "app")), "app");

    // A database token signed for another region is refused.
    let c: Vec<(&str, &str)> = with_token
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut cmd = aws_cli();
    cmd.env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    for (k, v) in &c {
        cmd.env(k, v);
    }
    let token = stdout_ok(
        &cmd.args([
            "rds",
            "generate-db-auth-token",
            "--hostname",
            "localhost",
            "--port",
            &s.lk.pg_port.to_string(),
            "--username",
            "app",
            "--region",
            "eu-west-1",
        ])
        .output()
        .unwrap(),
    );
    assert_denied(
        &psql(&s.lk, "app", &token, "verify-full", "SELECT 1"),
        "app",
    );
}

/// `RevokeSessions` with a `Before` in the future would lock a user or role
/// out for good; and a caller who may not revoke learns nothing of what
/// exists (AccessDenied whether or not the entity does).
fn revoke_sessions_cannot_lock_out_or_probe(s: &Stack) {
    let zed = s.user("zed", &allow(r#""sts:AssumeRole""#, "*"));
    let revoke = |creds: &Creds, args: &[&str]| {
        let mut cmd = latchkey(&["iam", "revoke-sessions"]);
        cmd.args(args)
            .env("AWS_CA_BUNDLE", s.lk.data.join("ca.pem"))
            .env(
                "AWS_ENDPOINT_URL",
                format!("https://localhost:{}", s.api_port),
            )
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
        for (k, v) in creds {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    for name in ["zed", "no-such-user"] {
        let out = revoke(&zed, &["--user-name", name]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("AccessDenied"),
            "{name}: {err}"
        );
    }
    // A refusal names the resource as the request did: neither the stored
    // path nor the stored spelling of an entity the caller may not see.
    s.ok(
        None,
        &[
            "iam",
            "create-user",
            "--user-name",
            "Priya",
            "--path",
            "/secret/hr/",
        ],
    );
    for action in ["get-user", "list-user-tags"] {
        let seen = s.refused(Some(&zed), &["iam", action, "--user-name", "PRIYA"]);
        let unseen = s.refused(Some(&zed), &["iam", action, "--user-name", "nosuch"]);
        assert!(
            seen.contains("AccessDenied") && unseen.contains("AccessDenied"),
            "{seen} {unseen}"
        );
        assert!(
            !seen.contains("secret") && !seen.contains("Priya"),
            "{seen}"
        );
        assert!(seen.contains(&s.arn("user/PRIYA")), "{seen}");
    }
    let out = revoke(&zed, &["--user-name", "priya"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("secret") && err.contains("AccessDenied"),
        "{err}"
    );
    let admin = std::fs::read_to_string(s.lk.data.join("admin.credentials")).unwrap();
    let field = |k: &str| {
        admin
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} = ")))
            .unwrap()
            .to_owned()
    };
    let admin: Creds = vec![
        ("AWS_ACCESS_KEY_ID".into(), field("aws_access_key_id")),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            field("aws_secret_access_key"),
        ),
    ];
    let out = revoke(
        &admin,
        &["--user-name", "zed", "--before", "2099-01-01T00:00:00Z"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("ValidationError"),
        "{err}"
    );
    // zed's new sessions still work.
    let session = s.ok(
        Some(&zed),
        &["sts", "get-session-token", "--duration-seconds", "900"],
    );
    let session = api::Creds::from_sts(&session["Credentials"]).env_vars();
    s.ok(Some(&session), &["sts", "get-caller-identity"]);
}

/// F2: names are case-insensitive, so a policy, attachment or membership
/// given under any spelling is the entity's (and enforced), and what a
/// deleted entity had never passes to a new one of another spelling.
/// F6: a trust policy naming a deleted user trusts its unique id, not the
/// next user of the same name.
fn names_are_one_entity_and_trust_binds_unique_ids(s: &Stack) {
    let deny_all =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
    let allow_all = allow(r#""*""#, "*");
    let admin = |args: &[&str]| s.ok(None, args);

    // F6: role trustsold trusts olduser by ARN; olduser is deleted and a
    // namesake created.
    let old = s.user("olduser", &allow(r#""sts:AssumeRole""#, "*"));
    let old_id = admin(&["iam", "get-user", "--user-name", "olduser"])["User"]["UserId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(old_id.starts_with("AIDA"), "{old_id}");
    s.role(
        "trustsold",
        &trust(&s.arn("user/olduser"), r#""sts:AssumeRole""#),
        &allow(r#""iam:GetRole""#, "*"),
    );
    s.assume(&old, "trustsold", &[]).unwrap();
    admin(&[
        "iam",
        "delete-access-key",
        "--user-name",
        "olduser",
        "--access-key-id",
        &old[0].1,
    ]);
    admin(&[
        "iam",
        "delete-user-policy",
        "--user-name",
        "olduser",
        "--policy-name",
        "p",
    ]);
    admin(&["iam", "delete-user", "--user-name", "OldUser"]);
    let namesake = s.user("olduser", &allow(r#""sts:AssumeRole""#, "*"));
    let err = s.assume(&namesake, "trustsold", &[]).unwrap_err();
    assert!(err.contains("AccessDenied"), "{err}");
    let role = admin(&["iam", "get-role", "--role-name", "trustsold"]);
    assert_eq!(
        role["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"],
        old_id.as_str()
    );

    // F2 (a): a Deny under another spelling is enforced.
    let m = s.user(
        "mallory2",
        &allow(r#"["iam:GetUser","rds-db:connect"]"#, "*"),
    );
    let get_self = ["iam", "get-user", "--user-name", "mallory2"];
    s.ok(Some(&m), &get_self);
    let denied = |what: &str| {
        let err = s.refused(Some(&m), &get_self);
        assert!(err.contains("AccessDenied"), "{what}: {err}");
    };
    admin(&[
        "iam",
        "put-user-policy",
        "--user-name",
        "MALLORY2",
        "--policy-name",
        "deny",
        "--policy-document",
        deny_all,
    ]);
    denied("inline Deny put as MALLORY2");
    let listed = |name: &str| admin(&["iam", "list-user-policies", "--user-name", name]);
    assert_eq!(listed("mallory2"), listed("MALLORY2"));
    assert_eq!(
        listed("mallory2")["PolicyNames"],
        serde_json::json!(["deny", "p"])
    );
    admin(&[
        "iam",
        "delete-user-policy",
        "--user-name",
        "Mallory2",
        "--policy-name",
        "deny",
    ]);
    s.ok(Some(&m), &get_self);
    admin(&["iam", "create-group", "--group-name", "denygroup"]);
    admin(&[
        "iam",
        "put-group-policy",
        "--group-name",
        "denygroup",
        "--policy-name",
        "deny",
        "--policy-document",
        deny_all,
    ]);
    admin(&[
        "iam",
        "add-user-to-group",
        "--group-name",
        "DenyGroup",
        "--user-name",
        "Mallory2",
    ]);
    denied("member of DenyGroup as Mallory2");
    admin(&[
        "iam",
        "remove-user-from-group",
        "--group-name",
        "DENYGROUP",
        "--user-name",
        "mallory2",
    ]);
    s.ok(Some(&m), &get_self);
    let deny_arn = admin(&[
        "iam",
        "create-policy",
        "--policy-name",
        "f2-deny-all",
        "--policy-document",
        deny_all,
    ])["Policy"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(&[
        "iam",
        "attach-user-policy",
        "--user-name",
        "MALLORY2",
        "--policy-arn",
        &deny_arn,
    ]);
    denied("managed Deny attached as MALLORY2");
    assert_denied(&s.pg_login(&m, "app"), "app");

    // F2 (b): Dave's membership of admins (Allow *) does not pass to a new
    // dave.
    admin(&["iam", "create-group", "--group-name", "admins"]);
    admin(&[
        "iam",
        "put-group-policy",
        "--group-name",
        "admins",
        "--policy-name",
        "all",
        "--policy-document",
        &allow_all,
    ]);
    admin(&["iam", "create-user", "--user-name", "Dave"]);
    admin(&[
        "iam",
        "add-user-to-group",
        "--group-name",
        "admins",
        "--user-name",
        "dave",
    ]);
    let groups = admin(&["iam", "list-groups-for-user", "--user-name", "DAVE"]);
    assert_eq!(groups["Groups"][0]["GroupName"], "admins");
    admin(&["iam", "delete-user", "--user-name", "Dave"]);
    let dave = s.user(
        "dave",
        &allow(
            r#""rds-db:connect""#,
            &format!("arn:aws:rds-db:us-east-1:{}:dbuser:*/app", s.account),
        ),
    );
    let groups = admin(&["iam", "list-groups-for-user", "--user-name", "dave"]);
    assert_eq!(groups["Groups"], serde_json::json!([]));
    assert_eq!(stdout_ok(&s.pg_login(&dave, "app")), "app");
    assert_denied(&s.pg_login(&dave, "admin_role"), "admin_role");

    // Roles: policies given as DEPLOY and deploy are role Deploy's, so it
    // cannot be deleted with them, and a new DEPLOY inherits nothing.
    let deployer = s.user("deployer", &allow(r#""sts:AssumeRole""#, "*"));
    let deploy_trust = trust(&s.arn("user/deployer"), r#""sts:AssumeRole""#);
    admin(&[
        "iam",
        "create-role",
        "--role-name",
        "Deploy",
        "--assume-role-policy-document",
        &deploy_trust,
    ]);
    let all_arn = admin(&[
        "iam",
        "create-policy",
        "--policy-name",
        "f2-allow-all",
        "--policy-document",
        &allow_all,
    ])["Policy"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(&[
        "iam",
        "attach-role-policy",
        "--role-name",
        "DEPLOY",
        "--policy-arn",
        &all_arn,
    ]);
    admin(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "deploy",
        "--policy-name",
        "all",
        "--policy-document",
        &allow_all,
    ]);
    let attached = admin(&[
        "iam",
        "list-attached-role-policies",
        "--role-name",
        "Deploy",
    ]);
    assert_eq!(
        attached["AttachedPolicies"][0]["PolicyArn"],
        all_arn.as_str()
    );
    let inline = admin(&["iam", "list-role-policies", "--role-name", "Deploy"]);
    assert_eq!(inline["PolicyNames"], serde_json::json!(["all"]));
    let deploy = s.assume(&deployer, "Deploy", &[]).unwrap();
    assert_eq!(stdout_ok(&s.pg_login(&deploy, "admin_role")), "admin_role");
    let err = s.refused(None, &["iam", "delete-role", "--role-name", "Deploy"]);
    assert!(err.contains("DeleteConflict"), "{err}");
    admin(&[
        "iam",
        "detach-role-policy",
        "--role-name",
        "deploy",
        "--policy-arn",
        &all_arn,
    ]);
    let err = s.refused(None, &["iam", "delete-role", "--role-name", "DEPLOY"]);
    assert!(err.contains("DeleteConflict"), "{err}");
    admin(&[
        "iam",
        "delete-role-policy",
        "--role-name",
        "DEPLOY",
        "--policy-name",
        "all",
    ]);
    admin(&["iam", "delete-role", "--role-name", "Deploy"]);
    admin(&[
        "iam",
        "create-role",
        "--role-name",
        "DEPLOY",
        "--assume-role-policy-document",
        &deploy_trust,
    ]);
    let attached = admin(&[
        "iam",
        "list-attached-role-policies",
        "--role-name",
        "DEPLOY",
    ]);
    assert_eq!(attached["AttachedPolicies"], serde_json::json!([]));
    let inline = admin(&["iam", "list-role-policies", "--role-name", "deploy"]);
    assert_eq!(inline["PolicyNames"], serde_json::json!([]));
    let fresh = s.assume(&deployer, "DEPLOY", &[]).unwrap();
    assert_denied(&s.pg_login(&fresh, "admin_role"), "admin_role");
}

/// Red team (console round) F3: whoever may create a user, role, policy,
/// secret, key or parameter may not tag it at creation without the
/// tagging permission (AWS requires both), or tag-based policies could be
/// fed tags their authors never allowed.
fn tags_at_creation_need_the_tagging_permission(s: &Stack) {
    let creates = r#"["iam:CreateUser","iam:CreateRole","iam:CreatePolicy","secretsmanager:CreateSecret","kms:CreateKey","ssm:PutParameter"]"#;
    let maker = s.user("tagmaker", &allow(creates, "*"));
    let trust = trust(&s.arn("user/tagmaker"), r#""sts:AssumeRole""#);
    let doc = allow(r#""rds-db:connect""#, "*");
    let calls = |suffix: &str| -> Vec<Vec<String>> {
        let v = |args: &[&str]| {
            args.iter()
                .map(|a| (*a).to_owned())
                .collect::<Vec<String>>()
        };
        vec![
            v(&[
                "iam",
                "create-user",
                "--user-name",
                &format!("tm-u{suffix}"),
            ]),
            v(&[
                "iam",
                "create-role",
                "--role-name",
                &format!("tm-r{suffix}"),
                "--assume-role-policy-document",
                &trust,
            ]),
            v(&[
                "iam",
                "create-policy",
                "--policy-name",
                &format!("tm-p{suffix}"),
                "--policy-document",
                &doc,
            ]),
            v(&[
                "secretsmanager",
                "create-secret",
                "--name",
                &format!("tm-s{suffix}"),
                "--secret-string",
                "x",
            ]),
            v(&[
                "ssm",
                "put-parameter",
                "--name",
                &format!("/tm/p{suffix}"),
                "--value",
                "x",
                "--type",
                "String",
            ]),
        ]
    };
    let tagged = |mut args: Vec<String>| {
        args.extend(["--tags".to_owned(), "Key=team,Value=admins".to_owned()]);
        args
    };
    for args in calls("1") {
        let args = tagged(args);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = s.refused(Some(&maker), &refs);
        assert!(err.contains("AccessDenied"), "{args:?}: {err}");
    }
    let err = s.refused(
        Some(&maker),
        &["kms", "create-key", "--tags", "TagKey=team,TagValue=admins"],
    );
    assert!(err.contains("AccessDenied"), "{err}");
    // Without tags, creating is allowed.
    for args in calls("2") {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        s.ok(Some(&maker), &refs);
    }
    // (Bypassing the lockout check: the caller is not in the default key
    // policy's administrators.)
    s.ok(
        Some(&maker),
        &["kms", "create-key", "--bypass-policy-lockout-safety-check"],
    );
    // With the tagging permissions, so is tagging at creation.
    s.ok(
        None,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "tagmaker",
            "--policy-name",
            "tagging",
            "--policy-document",
            &allow(
                r#"["iam:TagUser","iam:TagRole","iam:TagPolicy","secretsmanager:TagResource","kms:TagResource","ssm:AddTagsToResource"]"#,
                "*",
            ),
        ],
    );
    for args in calls("3") {
        let args = tagged(args);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        s.ok(Some(&maker), &refs);
    }
    s.ok(
        Some(&maker),
        &[
            "kms",
            "create-key",
            "--bypass-policy-lockout-safety-check",
            "--tags",
            "TagKey=team,TagValue=admins",
        ],
    );
}
