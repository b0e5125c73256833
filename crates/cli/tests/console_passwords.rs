#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Console passwords through the IAM API with the stock AWS CLI: login
//! profiles, the account password policy, `ChangePassword` with its
//! throttle, the credential report's password columns, and no password in
//! the audit trail or the store.

mod common;

use std::sync::{Mutex, Weak};

use common::api::{ApiEnv, python};
use serde_json::Value;

static ENV: Mutex<Weak<ApiEnv>> = Mutex::new(Weak::new());

const NOTHING: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#;

fn report_rows(env: &ApiEnv) -> Value {
    env.admin(&["iam", "generate-credential-report"]);
    let report = env.admin(&["iam", "get-credential-report"]);
    let script = r#"
import base64, csv, io, json, sys
rows = list(csv.DictReader(io.StringIO(base64.b64decode(sys.argv[1]).decode())))
print(json.dumps({r['user']: r for r in rows}))
"#;
    serde_json::from_str(&python(script, &[report["Content"].as_str().unwrap()])).unwrap()
}

/// Every file under `dir`, as bytes.
fn every_file(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            every_file(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
}

#[test]
fn login_profiles_and_the_password_policy_with_the_aws_cli() {
    let env = ApiEnv::shared(&ENV);
    let alice = env.user("pw-alice", NOTHING);
    let bob = env.user("pw-bob", NOTHING);

    // No policy yet: AWS's default (8 characters, three kinds) applies.
    assert_eq!(
        env.fails(None, &["iam", "get-account-password-policy"]),
        "NoSuchEntity"
    );
    let create = |password: &str| {
        common::api::aws(
            &env.server,
            None,
            &[
                "iam",
                "create-login-profile",
                "--user-name",
                "pw-alice",
                "--password",
                password,
            ],
        )
    };
    assert_eq!(
        common::api::error_code(&create("alllowercase")),
        "PasswordPolicyViolation"
    );
    let made = common::api::ok(create("First-Passw0rd"));
    assert_eq!(made["LoginProfile"]["UserName"], "pw-alice");
    assert_eq!(made["LoginProfile"]["PasswordResetRequired"], false);
    assert_eq!(
        common::api::error_code(&create("First-Passw0rd")),
        "EntityAlreadyExists"
    );
    assert_eq!(
        env.admin(&["iam", "get-login-profile", "--user-name", "PW-ALICE"])["LoginProfile"]["UserName"],
        "pw-alice"
    );
    assert_eq!(
        env.fails(None, &["iam", "get-login-profile", "--user-name", "pw-bob"]),
        "NoSuchEntity"
    );
    assert_eq!(
        env.fails(None, &["iam", "delete-user", "--user-name", "pw-alice"]),
        "DeleteConflict"
    );
    // Someone without permission can neither read nor set it.
    assert_eq!(
        env.fails(
            Some(&bob),
            &["iam", "get-login-profile", "--user-name", "pw-alice"]
        ),
        "AccessDenied"
    );
    assert_eq!(
        env.fails(
            Some(&bob),
            &[
                "iam",
                "update-login-profile",
                "--user-name",
                "pw-alice",
                "--password",
                "Bobs-Own-Passw0rd!"
            ]
        ),
        "AccessDenied"
    );

    // A strict policy. (botocore checks minimums itself; maximums are
    // the server's to refuse.)
    for (option, value) in [
        ("--minimum-password-length", "129"),
        ("--password-reuse-prevention", "25"),
        ("--max-password-age", "1096"),
    ] {
        assert_eq!(
            env.fails(
                None,
                &["iam", "update-account-password-policy", option, value]
            ),
            "ValidationError"
        );
    }
    env.admin(&[
        "iam",
        "update-account-password-policy",
        "--minimum-password-length",
        "14",
        "--require-symbols",
        "--require-numbers",
        "--require-uppercase-characters",
        "--require-lowercase-characters",
        "--allow-users-to-change-password",
        "--max-password-age",
        "90",
        "--password-reuse-prevention",
        "3",
    ]);
    let policy = &env.admin(&["iam", "get-account-password-policy"])["PasswordPolicy"];
    assert_eq!(policy["MinimumPasswordLength"], 14);
    assert_eq!(policy["RequireSymbols"], true);
    assert_eq!(policy["AllowUsersToChangePassword"], true);
    assert_eq!(policy["ExpirePasswords"], true);
    assert_eq!(policy["MaxPasswordAge"], 90);
    assert_eq!(policy["PasswordReusePrevention"], 3);
    assert_eq!(policy["HardExpiry"], false);

    // Alice changes her own password: her policy grants nothing, the
    // account policy lets every user.
    let change = |old: &str, new: &str| {
        common::api::aws(
            &env.server,
            Some(&alice),
            &[
                "iam",
                "change-password",
                "--old-password",
                old,
                "--new-password",
                new,
            ],
        )
    };
    assert_eq!(
        common::api::error_code(&change("wrong-old-Passw0rd", "Second-Passw0rd!")),
        "AccessDenied"
    );
    let weak = change("First-Passw0rd", "short");
    assert_eq!(common::api::error_code(&weak), "PasswordPolicyViolation");
    let said = String::from_utf8_lossy(&weak.stderr);
    assert!(said.contains("minimum length of 14"), "{said}");
    assert!(!said.contains("short"), "the password is echoed: {said}");
    assert_eq!(
        common::api::error_code(&change("First-Passw0rd", "First-Passw0rd")),
        "PasswordPolicyViolation"
    );
    common::api::ok(change("First-Passw0rd", "Second-Passw0rd!"));
    common::api::ok(change("Second-Passw0rd!", "Third-Passw0rd!!"));
    // The first is one of the last three: refused, also to an admin.
    assert_eq!(
        env.fails(
            None,
            &[
                "iam",
                "update-login-profile",
                "--user-name",
                "pw-alice",
                "--password",
                "First-Passw0rd"
            ]
        ),
        "PasswordPolicyViolation"
    );

    // Five wrong old passwords lock the name: the right one is refused
    // too until an administrator sets a new password.
    for _ in 0..5 {
        assert_eq!(
            common::api::error_code(&change("Not-The-Passw0rd!", "Fourth-Passw0rd!")),
            "AccessDenied"
        );
    }
    assert_eq!(
        common::api::error_code(&change("Third-Passw0rd!!", "Fourth-Passw0rd!")),
        "EntityTemporarilyUnmodifiable"
    );
    env.admin(&[
        "iam",
        "update-login-profile",
        "--user-name",
        "pw-alice",
        "--password",
        "Admin-Set-Passw0rd!",
        "--password-reset-required",
    ]);
    assert_eq!(
        env.admin(&["iam", "get-login-profile", "--user-name", "pw-alice"])["LoginProfile"]["PasswordResetRequired"],
        true
    );
    common::api::ok(change("Admin-Set-Passw0rd!", "Fourth-Passw0rd!"));
    assert_eq!(
        env.admin(&["iam", "get-login-profile", "--user-name", "pw-alice"])["LoginProfile"]["PasswordResetRequired"],
        false
    );

    // An explicit Deny wins over AllowUsersToChangePassword.
    env.admin(&[
        "iam",
        "put-user-policy",
        "--user-name",
        "pw-alice",
        "--policy-name",
        "no-change",
        "--policy-document",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:ChangePassword","Resource":"*"}]}"#,
    ]);
    assert_eq!(
        common::api::error_code(&change("Fourth-Passw0rd!", "Fifth-Passw0rd!!")),
        "AccessDenied"
    );
    // Without AllowUsersToChangePassword, a user needs the permission.
    env.admin(&[
        "iam",
        "delete-user-policy",
        "--user-name",
        "pw-alice",
        "--policy-name",
        "no-change",
    ]);
    env.admin(&[
        "iam",
        "update-account-password-policy",
        "--minimum-password-length",
        "14",
    ]);
    assert_eq!(
        common::api::error_code(&change("Fourth-Passw0rd!", "Fifth-Passw0rd!!")),
        "AccessDenied"
    );

    // The credential report shows the password.
    let rows = report_rows(&env);
    let row = &rows["pw-alice"];
    assert_eq!(row["password_enabled"], "true");
    assert_eq!(row["password_last_used"], "no_information");
    assert!(
        row["password_last_changed"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );
    assert_eq!(row["password_next_rotation"], "N/A");
    assert_eq!(rows["pw-bob"]["password_enabled"], "false");

    // Deleting the profile, then the policy.
    env.admin(&["iam", "delete-login-profile", "--user-name", "pw-alice"]);
    assert_eq!(
        env.fails(
            None,
            &["iam", "delete-login-profile", "--user-name", "pw-alice"]
        ),
        "NoSuchEntity"
    );
    env.admin(&["iam", "delete-account-password-policy"]);
    assert_eq!(
        env.fails(None, &["iam", "delete-account-password-policy"]),
        "NoSuchEntity"
    );

    // No password, old or new, is written anywhere in the data directory
    // (trail, store, logs), while the policy's settings are recorded.
    let mut files = Vec::new();
    every_file(&env.server.dir, &mut files);
    let log = env.server.dir.with_extension("log");
    files.push((log.clone(), std::fs::read(&log).unwrap_or_default()));
    let mut saw_policy_settings = false;
    for (path, bytes) in &files {
        for password in [
            "First-Passw0rd",
            "Second-Passw0rd!",
            "Admin-Set-Passw0rd!",
            "Not-The-Passw0rd!",
            "Fourth-Passw0rd!",
        ] {
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes()),
                "{password} is in {}",
                path.display()
            );
        }
        let setting = b"\"minimumPasswordLength\"";
        saw_policy_settings |= bytes.windows(setting.len()).any(|w| w == setting);
    }
    assert!(saw_policy_settings, "the policy's settings are audited");
}
