#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! KMS on `latchkey serve`'s endpoint, driven by the stock AWS CLI, boto3
//! and the AWS Encryption SDK for Python: keys and aliases, envelope
//! encryption, encryption contexts, key states, rotation, HMAC keys, key
//! policies evaluated with identity policies, and the audit trail.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};

use base64::Engine as _;
use common::api::ApiEnv;
use serde_json::Value;

static ENV: Mutex<Weak<ApiEnv>> = Mutex::new(Weak::new());

/// One server for the file's tests: each makes its own keys and users.
fn env() -> Arc<ApiEnv> {
    ApiEnv::shared(&ENV)
}

/// A file holding `bytes`, for `fileb://`.
fn file(env: &ApiEnv, name: &str, bytes: &[u8]) -> String {
    let path = env.root.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    format!("fileb://{}", path.display())
}

/// A new symmetric key's id.
fn key(env: &ApiEnv, description: &str) -> String {
    env.admin(&["kms", "create-key", "--description", description])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

fn context_arg(pairs: &[(&str, &str)]) -> String {
    serde_json::to_string(
        &pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect::<serde_json::Map<_, _>>(),
    )
    .unwrap()
}

#[test]
fn keys_aliases_and_encryption_with_the_aws_cli() {
    let env = env();
    let account = env.account();
    let created = env.admin(&[
        "kms",
        "create-key",
        "--description",
        "orders",
        "--tags",
        "TagKey=team,TagValue=payments",
    ])["KeyMetadata"]
        .clone();
    let id = created["KeyId"].as_str().unwrap().to_owned();
    let arn = format!("arn:aws:kms:us-east-1:{account}:key/{id}");
    assert_eq!(created["Arn"], arn.as_str());
    assert_eq!(created["KeyState"], "Enabled");
    assert_eq!(created["KeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(created["KeyUsage"], "ENCRYPT_DECRYPT");
    assert_eq!(created["KeyManager"], "CUSTOMER");
    assert_eq!(created["EncryptionAlgorithms"][0], "SYMMETRIC_DEFAULT");
    assert!(created["CreationDate"].is_number());

    env.admin(&[
        "kms",
        "create-alias",
        "--alias-name",
        "alias/orders",
        "--target-key-id",
        &id,
    ]);
    // Every way to name the key finds it.
    for name in [
        id.clone(),
        arn.clone(),
        "alias/orders".to_owned(),
        format!("arn:aws:kms:us-east-1:{account}:alias/orders"),
    ] {
        let d = env.admin(&["kms", "describe-key", "--key-id", &name]);
        assert_eq!(d["KeyMetadata"]["Arn"], arn.as_str(), "{name}");
    }
    let keys = env.admin(&["kms", "list-keys"]);
    assert!(
        keys["Keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["KeyId"] == id.as_str() && k["KeyArn"] == arn.as_str())
    );
    let aliases = env.admin(&["kms", "list-aliases", "--key-id", &id]);
    assert_eq!(aliases["Aliases"][0]["AliasName"], "alias/orders");
    assert_eq!(aliases["Aliases"][0]["TargetKeyId"], id.as_str());
    let tags = env.admin(&["kms", "list-resource-tags", "--key-id", &id]);
    assert_eq!(tags["Tags"][0]["TagKey"], "team");

    // Encrypt by alias; decrypt with no key id: the blob names its key.
    let secret = b"card 4111-1111-1111-1111 \x00\xff";
    let plaintext = file(&env, "plain.bin", secret);
    let ctx = context_arg(&[("tenant", "acme"), ("purpose", "orders")]);
    let enc = env.admin(&[
        "kms",
        "encrypt",
        "--key-id",
        "alias/orders",
        "--plaintext",
        &plaintext,
        "--encryption-context",
        &ctx,
    ]);
    assert_eq!(enc["KeyId"], arn.as_str());
    let blob = b64(&enc["CiphertextBlob"]);
    assert!(!blob.windows(4).any(|w| w == b"card"));
    let blob_file = file(&env, "blob.bin", &blob);
    let dec = env.admin(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &blob_file,
        "--encryption-context",
        &ctx,
    ]);
    assert_eq!(b64(&dec["Plaintext"]), secret);
    assert_eq!(dec["KeyId"], arn.as_str());
    assert_eq!(dec["EncryptionAlgorithm"], "SYMMETRIC_DEFAULT");

    // The wrong context, no context, one byte altered anywhere: refused.
    let wrong = context_arg(&[("tenant", "other"), ("purpose", "orders")]);
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "decrypt",
                "--ciphertext-blob",
                &blob_file,
                "--encryption-context",
                &wrong
            ]
        ),
        "InvalidCiphertextException"
    );
    assert_eq!(
        env.fails(None, &["kms", "decrypt", "--ciphertext-blob", &blob_file]),
        "InvalidCiphertextException"
    );
    for i in [0, 5, 20, 30, blob.len() - 1] {
        let mut altered = blob.clone();
        altered[i] ^= 0x01;
        let f = file(&env, "altered.bin", &altered);
        assert_eq!(
            env.fails(
                None,
                &[
                    "kms",
                    "decrypt",
                    "--ciphertext-blob",
                    &f,
                    "--encryption-context",
                    &ctx
                ]
            ),
            "InvalidCiphertextException",
            "byte {i}"
        );
    }
    // A key id that is not the blob's.
    let other = key(&env, "other");
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "decrypt",
                "--ciphertext-blob",
                &blob_file,
                "--encryption-context",
                &ctx,
                "--key-id",
                &other
            ]
        ),
        "IncorrectKeyException"
    );

    // Envelope encryption: a data key, and its ciphertext opens to it.
    let dk = env.admin(&[
        "kms",
        "generate-data-key",
        "--key-id",
        &id,
        "--key-spec",
        "AES_256",
        "--encryption-context",
        &ctx,
    ]);
    let data_key = b64(&dk["Plaintext"]);
    assert_eq!(data_key.len(), 32);
    let f = file(&env, "dk.bin", &b64(&dk["CiphertextBlob"]));
    let opened = env.admin(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &f,
        "--encryption-context",
        &ctx,
    ]);
    assert_eq!(b64(&opened["Plaintext"]), data_key);
    let dk = env.admin(&[
        "kms",
        "generate-data-key-without-plaintext",
        "--key-id",
        &id,
        "--number-of-bytes",
        "64",
    ]);
    assert!(dk.get("Plaintext").is_none());
    let f = file(&env, "dk2.bin", &b64(&dk["CiphertextBlob"]));
    let opened = env.admin(&["kms", "decrypt", "--ciphertext-blob", &f]);
    assert_eq!(b64(&opened["Plaintext"]).len(), 64);
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "generate-data-key",
                "--key-id",
                &id,
                "--key-spec",
                "AES_256",
                "--number-of-bytes",
                "16"
            ]
        ),
        "ValidationException"
    );
    assert_eq!(
        env.fails(None, &["kms", "generate-data-key", "--key-id", &id]),
        "ValidationException"
    );

    // ReEncrypt moves a ciphertext to another key and context.
    let re = env.admin(&[
        "kms",
        "re-encrypt",
        "--ciphertext-blob",
        &blob_file,
        "--source-encryption-context",
        &ctx,
        "--destination-key-id",
        &other,
    ]);
    assert_eq!(re["SourceKeyId"], arn.as_str());
    assert!(re["KeyId"].as_str().unwrap().ends_with(&other));
    let f = file(&env, "re.bin", &b64(&re["CiphertextBlob"]));
    let opened = env.admin(&["kms", "decrypt", "--ciphertext-blob", &f]);
    assert_eq!(b64(&opened["Plaintext"]), secret);

    let random = env.admin(&["kms", "generate-random", "--number-of-bytes", "48"]);
    assert_eq!(b64(&random["Plaintext"]).len(), 48);
    assert_eq!(
        env.fails(
            None,
            &["kms", "generate-random", "--number-of-bytes", "1025"]
        ),
        "ValidationException"
    );

    // Aliases: taken, reserved, malformed, moved, deleted.
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "create-alias",
                "--alias-name",
                "alias/orders",
                "--target-key-id",
                &other
            ]
        ),
        "AlreadyExistsException"
    );
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "create-alias",
                "--alias-name",
                "alias/aws/mine",
                "--target-key-id",
                &other
            ]
        ),
        "InvalidAliasNameException"
    );
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "create-alias",
                "--alias-name",
                "alias/a b",
                "--target-key-id",
                &other
            ]
        ),
        "InvalidAliasNameException"
    );
    env.admin(&[
        "kms",
        "update-alias",
        "--alias-name",
        "alias/orders",
        "--target-key-id",
        &other,
    ]);
    let d = env.admin(&["kms", "describe-key", "--key-id", "alias/orders"]);
    assert_eq!(d["KeyMetadata"]["KeyId"], other.as_str());
    env.admin(&["kms", "delete-alias", "--alias-name", "alias/orders"]);
    assert_eq!(
        env.fails(None, &["kms", "describe-key", "--key-id", "alias/orders"]),
        "NotFoundException"
    );
    for missing in [
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "not-a-key",
        "alias/none",
    ] {
        assert_eq!(
            env.fails(None, &["kms", "describe-key", "--key-id", missing]),
            "NotFoundException",
            "{missing}"
        );
    }
    let too_long = "x".repeat(4097);
    let f = file(&env, "long.bin", too_long.as_bytes());
    assert_eq!(
        env.fails(
            None,
            &["kms", "encrypt", "--key-id", &id, "--plaintext", &f]
        ),
        "ValidationException"
    );
}

#[test]
fn disabled_keys_and_keys_pending_deletion_are_refused() {
    let env = env();
    let id = key(&env, "states");
    let plaintext = file(&env, "states.bin", b"state test");
    let enc = env.admin(&["kms", "encrypt", "--key-id", &id, "--plaintext", &plaintext]);
    let blob = file(&env, "states-blob.bin", &b64(&enc["CiphertextBlob"]));
    let encrypt = ["kms", "encrypt", "--key-id", &id, "--plaintext", &plaintext];
    let decrypt = ["kms", "decrypt", "--ciphertext-blob", &blob];

    env.admin(&["kms", "disable-key", "--key-id", &id]);
    assert_eq!(
        env.admin(&["kms", "describe-key", "--key-id", &id])["KeyMetadata"]["KeyState"],
        "Disabled"
    );
    assert_eq!(env.fails(None, &encrypt), "DisabledException");
    assert_eq!(env.fails(None, &decrypt), "DisabledException");
    env.admin(&["kms", "enable-key", "--key-id", &id]);
    env.admin(&encrypt);
    env.admin(&decrypt);

    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "schedule-key-deletion",
                "--key-id",
                &id,
                "--pending-window-in-days",
                "6"
            ]
        ),
        "ValidationException"
    );
    let scheduled = env.admin(&[
        "kms",
        "schedule-key-deletion",
        "--key-id",
        &id,
        "--pending-window-in-days",
        "7",
    ]);
    assert_eq!(scheduled["KeyState"], "PendingDeletion");
    assert_eq!(scheduled["PendingWindowInDays"], 7);
    let days = (scheduled["DeletionDate"].as_f64().unwrap()
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64())
        / 86_400.0;
    assert!((6.9..7.1).contains(&days), "{days}");
    assert_eq!(env.fails(None, &encrypt), "KMSInvalidStateException");
    assert_eq!(env.fails(None, &decrypt), "KMSInvalidStateException");
    assert_eq!(
        env.fails(None, &["kms", "enable-key", "--key-id", &id]),
        "KMSInvalidStateException"
    );
    env.admin(&["kms", "cancel-key-deletion", "--key-id", &id]);
    // As in AWS, a key whose deletion is cancelled is disabled.
    assert_eq!(env.fails(None, &encrypt), "DisabledException");
    env.admin(&["kms", "enable-key", "--key-id", &id]);
    env.admin(&decrypt);
    assert_eq!(
        env.fails(None, &["kms", "cancel-key-deletion", "--key-id", &id]),
        "KMSInvalidStateException"
    );
}

#[test]
fn rotation_keeps_old_ciphertexts_readable() {
    let env = env();
    let id = key(&env, "rotating");
    let status = env.admin(&["kms", "get-key-rotation-status", "--key-id", &id]);
    assert_eq!(status["KeyRotationEnabled"], false);
    env.admin(&[
        "kms",
        "enable-key-rotation",
        "--key-id",
        &id,
        "--rotation-period-in-days",
        "180",
    ]);
    let status = env.admin(&["kms", "get-key-rotation-status", "--key-id", &id]);
    assert_eq!(status["KeyRotationEnabled"], true);
    assert_eq!(status["RotationPeriodInDays"], 180);
    assert!(status["NextRotationDate"].is_number());

    let plaintext = file(&env, "rot.bin", b"before rotation");
    let before = b64(
        &env.admin(&["kms", "encrypt", "--key-id", &id, "--plaintext", &plaintext])["CiphertextBlob"],
    );
    env.admin(&["kms", "rotate-key-on-demand", "--key-id", &id]);
    let rotations = env.admin(&["kms", "list-key-rotations", "--key-id", &id]);
    assert_eq!(rotations["Rotations"][0]["RotationType"], "ON_DEMAND");
    let after = b64(
        &env.admin(&["kms", "encrypt", "--key-id", &id, "--plaintext", &plaintext])["CiphertextBlob"],
    );
    // The new ciphertext names the new key material version (bytes 17-20).
    assert_eq!(&before[17..21], &1u32.to_be_bytes());
    assert_eq!(&after[17..21], &2u32.to_be_bytes());
    for blob in [&before, &after] {
        let f = file(&env, "rot-blob.bin", blob);
        let opened = env.admin(&["kms", "decrypt", "--ciphertext-blob", &f]);
        assert_eq!(b64(&opened["Plaintext"]), b"before rotation");
    }
    // A version the key never had is not trusted from the blob.
    let mut forged = after.clone();
    forged[17..21].copy_from_slice(&9u32.to_be_bytes());
    let f = file(&env, "rot-forged.bin", &forged);
    assert_eq!(
        env.fails(None, &["kms", "decrypt", "--ciphertext-blob", &f]),
        "InvalidCiphertextException"
    );
    env.admin(&["kms", "disable-key-rotation", "--key-id", &id]);
    let status = env.admin(&["kms", "get-key-rotation-status", "--key-id", &id]);
    assert_eq!(status["KeyRotationEnabled"], false);
}

#[test]
fn hmac_keys_generate_and_verify_macs() {
    let env = env();
    let hmac = env.admin(&[
        "kms",
        "create-key",
        "--key-spec",
        "HMAC_256",
        "--key-usage",
        "GENERATE_VERIFY_MAC",
    ])["KeyMetadata"]
        .clone();
    assert_eq!(hmac["MacAlgorithms"][0], "HMAC_SHA_256");
    let id = hmac["KeyId"].as_str().unwrap().to_owned();
    let message = file(&env, "msg.bin", b"transfer 100 to alice");
    let mac = env.admin(&[
        "kms",
        "generate-mac",
        "--key-id",
        &id,
        "--message",
        &message,
        "--mac-algorithm",
        "HMAC_SHA_256",
    ]);
    let tag = b64(&mac["Mac"]);
    assert_eq!(tag.len(), 32);
    let tag_file = file(&env, "mac.bin", &tag);
    let verified = env.admin(&[
        "kms",
        "verify-mac",
        "--key-id",
        &id,
        "--message",
        &message,
        "--mac",
        &tag_file,
        "--mac-algorithm",
        "HMAC_SHA_256",
    ]);
    assert_eq!(verified["MacValid"], true);
    let other = file(&env, "msg2.bin", b"transfer 900 to alice");
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "verify-mac",
                "--key-id",
                &id,
                "--message",
                &other,
                "--mac",
                &tag_file,
                "--mac-algorithm",
                "HMAC_SHA_256"
            ]
        ),
        "KMSInvalidMacException"
    );
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "generate-mac",
                "--key-id",
                &id,
                "--message",
                &message,
                "--mac-algorithm",
                "HMAC_SHA_512"
            ]
        ),
        "InvalidKeyUsageException"
    );
    assert_eq!(
        env.fails(
            None,
            &["kms", "encrypt", "--key-id", &id, "--plaintext", &message]
        ),
        "InvalidKeyUsageException"
    );
    let symmetric = key(&env, "not for macs");
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "generate-mac",
                "--key-id",
                &symmetric,
                "--message",
                &message,
                "--mac-algorithm",
                "HMAC_SHA_256"
            ]
        ),
        "InvalidKeyUsageException"
    );
    assert_eq!(
        env.fails(None, &["kms", "enable-key-rotation", "--key-id", &id]),
        "UnsupportedOperationException"
    );
}

#[test]
fn key_policies_gate_identity_policies_as_aws_does() {
    let env = env();
    let account = env.account();
    let allow_all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
    let alice = env.user("kms-alice", allow_all);
    let bob = env.user(
        "kms-bob",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#,
    );
    let plaintext = file(&env, "pol.bin", b"policy test");

    // The default key policy delegates to IAM: alice's policy allows.
    let delegated = key(&env, "delegated");
    let enc = [
        "kms",
        "encrypt",
        "--key-id",
        &delegated,
        "--plaintext",
        &plaintext,
    ];
    env.as_user(&alice, &enc);
    assert_eq!(env.fails(Some(&bob), &enc), "AccessDeniedException");

    // A key policy that names only the admin: alice's IAM Allow is not
    // enough, because the policy does not delegate to the account.
    let admin_arn = env.admin(&["sts", "get-caller-identity"])["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_arn = format!("arn:aws:iam::{account}:user/kms-bob");
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": bob_arn}, "Action": "kms:Encrypt", "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "bob"}}},
            {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "frozen"}}}
        ]
    })
    .to_string();
    let gated = env.admin(&["kms", "create-key", "--policy", &policy])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        env.fails(
            Some(&alice),
            &[
                "kms",
                "encrypt",
                "--key-id",
                &gated,
                "--plaintext",
                &plaintext
            ]
        ),
        "AccessDeniedException"
    );
    // Bob is named by the key policy: no IAM policy needed, but only with
    // his tenant's context.
    let bob_ctx = context_arg(&[("tenant", "bob")]);
    env.as_user(
        &bob,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &gated,
            "--plaintext",
            &plaintext,
            "--encryption-context",
            &bob_ctx,
        ],
    );
    assert_eq!(
        env.fails(
            Some(&bob),
            &[
                "kms",
                "encrypt",
                "--key-id",
                &gated,
                "--plaintext",
                &plaintext,
                "--encryption-context",
                &context_arg(&[("tenant", "alice")])
            ]
        ),
        "AccessDeniedException"
    );
    // The key policy's Deny holds even for the admin it allows.
    let frozen = context_arg(&[("tenant", "frozen")]);
    let enc = env.admin(&[
        "kms",
        "encrypt",
        "--key-id",
        &gated,
        "--plaintext",
        &plaintext,
        "--encryption-context",
        &frozen,
    ]);
    let f = file(&env, "frozen.bin", &b64(&enc["CiphertextBlob"]));
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "decrypt",
                "--ciphertext-blob",
                &f,
                "--encryption-context",
                &frozen
            ]
        ),
        "AccessDeniedException"
    );
    let got = env.admin(&[
        "kms",
        "get-key-policy",
        "--key-id",
        &gated,
        "--policy-name",
        "default",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(got["Policy"].as_str().unwrap()).unwrap(),
        serde_json::from_str::<Value>(&policy).unwrap()
    );

    // A policy that would lock its author out is refused, unless asked.
    let lockout = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": bob_arn}, "Action": "kms:*", "Resource": "*"}]
    })
    .to_string();
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "put-key-policy",
                "--key-id",
                &delegated,
                "--policy-name",
                "default",
                "--policy",
                &lockout
            ]
        ),
        "MalformedPolicyDocumentException"
    );
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "put-key-policy",
                "--key-id",
                &delegated,
                "--policy-name",
                "default",
                "--policy",
                "{\"Version\":\"2012-10-17\"}"
            ]
        ),
        "MalformedPolicyDocumentException"
    );
    // Alice's identity Deny on one key beats the key policy's delegation.
    let denied = env.user(
        "kms-carol",
        &serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": format!("arn:aws:kms:us-east-1:{account}:key/{delegated}")}
            ]
        })
        .to_string(),
    );
    let enc = env.as_user(
        &denied,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &delegated,
            "--plaintext",
            &plaintext,
        ],
    );
    let f = file(&env, "carol.bin", &b64(&enc["CiphertextBlob"]));
    assert_eq!(
        env.fails(Some(&denied), &["kms", "decrypt", "--ciphertext-blob", &f]),
        "AccessDeniedException"
    );
    // kms:RequestAlias: an Allow only through one alias.
    let via_alias = env.user(
        "kms-dave",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*","Condition":{"StringEquals":{"kms:RequestAlias":"alias/dave"}}}]}"#,
    );
    env.admin(&[
        "kms",
        "create-alias",
        "--alias-name",
        "alias/dave",
        "--target-key-id",
        &delegated,
    ]);
    env.as_user(
        &via_alias,
        &[
            "kms",
            "encrypt",
            "--key-id",
            "alias/dave",
            "--plaintext",
            &plaintext,
        ],
    );
    assert_eq!(
        env.fails(
            Some(&via_alias),
            &[
                "kms",
                "encrypt",
                "--key-id",
                &delegated,
                "--plaintext",
                &plaintext
            ]
        ),
        "AccessDeniedException"
    );
}

/// The AWS Encryption SDK's output for `script`, run with admin
/// credentials against the server.
fn encryption_sdk(env: &ApiEnv, script: &str, args: &[&str]) -> String {
    let mut cmd = Command::new("python3");
    env.server.env(&mut cmd, None);
    cmd.env("AWS_DEFAULT_REGION", "us-east-1");
    let out: Output = cmd.arg("-c").arg(script).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "encryption SDK failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const ESDK: &str = r#"
import base64, sys
import botocore.session
import aws_encryption_sdk
from aws_encryption_sdk import CommitmentPolicy

mode, key_arn, path = sys.argv[1], sys.argv[2], sys.argv[3]
client = aws_encryption_sdk.EncryptionSDKClient(
    commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
    key_ids=[key_arn], botocore_session=botocore.session.Session())
if mode == "encrypt":
    record = b'{"order": 1042, "card": "4111111111111111"}'
    ciphertext, header = client.encrypt(
        source=record, key_provider=provider,
        encryption_context={"table": "orders", "field": "card"})
    open(path, "wb").write(ciphertext)
    print(len(header.encrypted_data_keys))
else:
    plaintext, header = client.decrypt(source=open(path, "rb").read(), key_provider=provider)
    assert header.encryption_context["table"] == "orders"
    print(plaintext.decode())
"#;

#[test]
fn the_aws_encryption_sdk_round_trips_across_a_rotation() {
    let env = env();
    let key = env.admin(&["kms", "create-key", "--description", "esdk"])["KeyMetadata"].clone();
    let arn = key["Arn"].as_str().unwrap().to_owned();
    let id = key["KeyId"].as_str().unwrap().to_owned();
    let before = env.root.path().join("esdk-before.bin");
    let path = |p: &PathBuf| p.display().to_string();
    assert_eq!(
        encryption_sdk(&env, ESDK, &["encrypt", &arn, &path(&before)]),
        "1"
    );
    let record = r#"{"order": 1042, "card": "4111111111111111"}"#;
    assert_eq!(
        encryption_sdk(&env, ESDK, &["decrypt", &arn, &path(&before)]),
        record
    );
    env.admin(&["kms", "enable-key-rotation", "--key-id", &id]);
    env.admin(&["kms", "rotate-key-on-demand", "--key-id", &id]);
    let after = env.root.path().join("esdk-after.bin");
    encryption_sdk(&env, ESDK, &["encrypt", &arn, &path(&after)]);
    for file in [&before, &after] {
        assert_eq!(
            encryption_sdk(&env, ESDK, &["decrypt", &arn, &path(file)]),
            record
        );
    }
    // The record is not in the SDK's message in clear.
    let bytes = std::fs::read(&before).unwrap();
    assert!(!bytes.windows(16).any(|w| w == b"4111111111111111"));
}

#[test]
fn boto3_sees_kms_error_codes_and_the_trail_holds_no_plaintext() {
    let env = env();
    let id = key(&env, "boto3");
    // A second key, so that paging by one has two pages whatever the
    // other tests have made yet.
    key(&env, "boto3-second");
    let marker = "plaintext-marker-5f1c2e";
    let mut cmd = Command::new("python3");
    env.server.env(&mut cmd, None);
    let script = format!(
        r#"
import boto3, json, os, botocore, botocore.config
kms = boto3.client('kms', endpoint_url=os.environ['AWS_ENDPOINT_URL'], region_name='us-east-1')
out = {{}}
c = kms.encrypt(KeyId='{id}', Plaintext=b'{marker}', EncryptionContext={{'a': 'b'}})['CiphertextBlob']
out['plain'] = kms.decrypt(CiphertextBlob=c, EncryptionContext={{'a': 'b'}})['Plaintext'].decode()
def code(f):
    try:
        f()
        return 'no error'
    except botocore.exceptions.ClientError as e:
        return e.response['Error']['Code']
out['context'] = code(lambda: kms.decrypt(CiphertextBlob=c, EncryptionContext={{'a': 'c'}}))
out['garbage'] = code(lambda: kms.decrypt(CiphertextBlob=b'\x01' + b'\x00' * 60))
out['short'] = code(lambda: kms.decrypt(CiphertextBlob=b'x'))
out['notfound'] = code(lambda: kms.describe_key(KeyId='alias/missing'))
out['arn'] = code(lambda: kms.describe_key(KeyId='arn:aws:s3:::bucket'))
out['unknown'] = code(lambda: kms.create_grant(KeyId='{id}', GranteePrincipal='x', Operations=['Decrypt']))
# Past botocore's own checks, the server's.
raw = boto3.client('kms', endpoint_url=os.environ['AWS_ENDPOINT_URL'], region_name='us-east-1',
                   config=botocore.config.Config(parameter_validation=False))
out['period'] = code(lambda: raw.enable_key_rotation(KeyId='{id}', RotationPeriodInDays=89))
out['deletion'] = code(lambda: raw.schedule_key_deletion(KeyId='{id}', PendingWindowInDays=6))
out['random'] = code(lambda: raw.generate_random(NumberOfBytes=1025))
pages = list(kms.get_paginator('list_keys').paginate(PaginationConfig={{'PageSize': 1}}))
out['pages'] = len(pages)
out['keys'] = sum(len(p['Keys']) for p in pages)
print(json.dumps(out))
"#
    );
    let out = cmd.arg("-c").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plain"], marker);
    assert_eq!(v["context"], "InvalidCiphertextException");
    assert_eq!(v["garbage"], "InvalidCiphertextException");
    assert_eq!(v["short"], "InvalidCiphertextException");
    assert_eq!(v["notfound"], "NotFoundException");
    assert_eq!(v["arn"], "InvalidArnException");
    assert_eq!(v["unknown"], "UnknownOperationException");
    assert_eq!(v["period"], "ValidationException");
    assert_eq!(v["deletion"], "ValidationException");
    assert_eq!(v["random"], "ValidationException");
    assert!(v["pages"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v["pages"], v["keys"]);

    // Every use is in the trail, with its key, and no plaintext.
    let (text, events) = common::trail_in(&env.server.dir, |events| {
        events
            .iter()
            .any(|e| e["eventName"] == "Decrypt" && e["errorCode"] == "InvalidCiphertextException")
    });
    assert!(!text.contains(marker), "plaintext in the trail");
    let encrypts: Vec<&Value> = events
        .iter()
        .filter(|e| e["eventSource"] == "kms.amazonaws.com" && e["eventName"] == "Encrypt")
        .collect();
    assert!(!encrypts.is_empty());
    assert!(encrypts.iter().any(|e| {
        e["resources"][0]["ARN"]
            .as_str()
            .is_some_and(|a| a.ends_with(&id))
    }));
    for e in &encrypts {
        assert!(e["requestParameters"].get("plaintext").is_none(), "{e}");
    }
}

/// What a red-team pass found, each attack replayed: a tag key's case
/// variant shadowing `aws:ResourceTag/KEY`, an encryption context key's
/// case variant shadowing `kms:EncryptionContext:KEY`, managed keys made
/// for any `alias/aws/` name by anyone, and a deleted user's key-policy
/// grant passing to a new user of the same name.
#[test]
fn case_variants_managed_aliases_and_reused_names_widen_nothing() {
    let env = env();
    let account = env.account();
    let plaintext = file(&env, "rt.bin", b"TOPSECRET-XYZZY");

    // Tags: a user who may not touch `team` cannot shadow it with `Team`.
    let tagger = env.user(
        "kms-tagger",
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/team":"red"}}},
          {"Effect":"Allow","Action":"kms:TagResource","Resource":"*","Condition":{"ForAllValues:StringNotEquals":{"aws:TagKeys":["team"]}}}]}"#,
    );
    // A new key made with `args`, and a file holding a ciphertext under it.
    let key_and_blob = |args: &[&str], name: &str| {
        let mut create = vec!["kms", "create-key"];
        create.extend_from_slice(args);
        let id = env.admin(&create)["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_owned();
        let enc = env.admin(&["kms", "encrypt", "--key-id", &id, "--plaintext", &plaintext]);
        (id, file(&env, name, &b64(&enc["CiphertextBlob"])))
    };
    let (blue, blob) = key_and_blob(&["--tags", "TagKey=team,TagValue=blue"], "rt-blob.bin");
    let decrypt = ["kms", "decrypt", "--ciphertext-blob", blob.as_str()];
    assert_eq!(env.fails(Some(&tagger), &decrypt), "AccessDeniedException");
    assert_eq!(
        env.fails(
            Some(&tagger),
            &[
                "kms",
                "tag-resource",
                "--key-id",
                &blue,
                "--tags",
                "TagKey=Team,TagValue=red"
            ]
        ),
        "TagException"
    );
    assert_eq!(env.fails(Some(&tagger), &decrypt), "AccessDeniedException");
    let tags = env.admin(&["kms", "list-resource-tags", "--key-id", &blue]);
    assert_eq!(
        tags["Tags"],
        serde_json::json!([{"TagKey": "team", "TagValue": "blue"}])
    );
    assert_eq!(
        env.fails(
            None,
            &[
                "kms",
                "create-key",
                "--tags",
                "TagKey=team,TagValue=a",
                "TagKey=TEAM,TagValue=b"
            ]
        ),
        "TagException"
    );

    // Encryption context: a Deny on Tenant=admin is not escaped by adding
    // `tenant`.
    let writer = env.user(
        "kms-writer",
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"},
          {"Effect":"Deny","Action":"kms:Encrypt","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:Tenant":"admin"}}}]}"#,
    );
    let enc = |context: &str| {
        env.fails(
            Some(&writer),
            &[
                "kms",
                "encrypt",
                "--key-id",
                &blue,
                "--plaintext",
                &plaintext,
                "--encryption-context",
                context,
            ],
        )
    };
    assert_eq!(enc("Tenant=admin"), "AccessDeniedException");
    assert_eq!(enc("Tenant=admin,tenant=x"), "ValidationException");

    // Managed keys exist only for the services Latchkey integrates, and
    // no one makes one by asking about another name.
    for name in ["alias/aws/zz0", "alias/aws/zz1"] {
        assert_eq!(
            env.fails(Some(&writer), &["kms", "describe-key", "--key-id", name]),
            "NotFoundException"
        );
        assert_eq!(
            env.fails(None, &["kms", "describe-key", "--key-id", name]),
            "NotFoundException"
        );
    }
    let aliases = env.admin(&["kms", "list-aliases"]);
    assert!(
        !aliases["Aliases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["AliasName"].as_str().unwrap().starts_with("alias/aws/zz")),
        "{aliases}"
    );

    // A key policy names a user; the user is deleted and another of the
    // same name made: the grant was the old user's.
    let reused = env.user("kms-reused", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:*","Resource":"*"}]}"#);
    let arn = format!("arn:aws:iam::{account}:user/kms-reused");
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": arn}, "Action": "kms:Decrypt", "Resource": "*"}
        ]
    })
    .to_string();
    let (granted, blob) = key_and_blob(&["--policy", &policy], "rt-granted.bin");
    let decrypt = ["kms", "decrypt", "--ciphertext-blob", blob.as_str()];
    env.as_user(&reused, &decrypt);
    env.admin(&[
        "iam",
        "delete-user-policy",
        "--user-name",
        "kms-reused",
        "--policy-name",
        "p",
    ]);
    env.admin(&[
        "iam",
        "delete-access-key",
        "--user-name",
        "kms-reused",
        "--access-key-id",
        &reused.key,
    ]);
    env.admin(&["iam", "delete-user", "--user-name", "kms-reused"]);
    let stored = env.admin(&[
        "kms",
        "get-key-policy",
        "--key-id",
        &granted,
        "--policy-name",
        "default",
    ]);
    let stored = stored["Policy"].as_str().unwrap();
    assert!(
        !stored.contains("user/kms-reused") && stored.contains("AIDA"),
        "{stored}"
    );
    let newcomer = env.user("kms-reused", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:*","Resource":"*"}]}"#);
    assert_eq!(
        env.fails(Some(&newcomer), &decrypt),
        "AccessDeniedException"
    );

    // A refusal by a key policy says so, as AWS's does.
    let admin_arn = env.admin(&["sts", "get-caller-identity"])["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let closed = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "kms:*", "Resource": "*"}]
    })
    .to_string();
    let closed = env.admin(&["kms", "create-key", "--policy", &closed])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let allowed = env.user("kms-allowed", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#);
    let out = common::api::aws(
        &env.server,
        Some(&allowed),
        &[
            "kms",
            "encrypt",
            "--key-id",
            &closed,
            "--plaintext",
            &plaintext,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AccessDeniedException")
            && err.contains("because no resource-based policy allows the kms:Encrypt action"),
        "{err}"
    );
}
