#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! SSM Parameter Store on `latchkey serve`'s endpoint, driven by the stock
//! AWS CLI and boto3: parameters and their versions, selectors, labels,
//! tiers and patterns, paths and filters, pagination, tags, SecureString
//! through KMS (readable only by a caller KMS lets decrypt), references to
//! Secrets Manager secrets, policies on paths, and the audit trail.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use common::api::ApiEnv;
use serde_json::Value;

static ENV: Mutex<Weak<ApiEnv>> = Mutex::new(Weak::new());

/// One server for the file's tests: each uses its own paths and users.
fn env() -> Arc<ApiEnv> {
    ApiEnv::shared(&ENV)
}

/// `aws ssm put-parameter` as the administrator.
fn put(env: &ApiEnv, name: &str, kind: &str, value: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "ssm",
        "put-parameter",
        "--name",
        name,
        "--type",
        kind,
        "--value",
        value,
    ];
    args.extend_from_slice(extra);
    env.admin(&args)
}

/// A boto3 script as the administrator (`ssm` and `kms` are ready
/// clients, `raw` an `ssm` client without botocore's own checks, and
/// `code(f)` gives a call's error code); the JSON it prints.
fn boto3(env: &ApiEnv, script: &str) -> Value {
    let mut cmd = Command::new("python3");
    env.server.env(&mut cmd, None);
    let prelude = r#"
import boto3, botocore, botocore.config, json, os
def client(name, **kw):
    return boto3.client(name, endpoint_url=os.environ['AWS_ENDPOINT_URL'], region_name='us-east-1', **kw)
ssm = client('ssm')
raw = client('ssm', config=botocore.config.Config(parameter_validation=False))
kms = client('kms')
def code(f):
    try:
        f()
        return 'no error'
    except botocore.exceptions.ClientError as e:
        return e.response['Error']['Code']
"#;
    let out = cmd
        .arg("-c")
        .arg(format!("{prelude}\n{script}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn names(v: &Value) -> Vec<String> {
    v["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn parameters_versions_labels_and_paths_with_the_aws_cli() {
    let env = env();
    let account = env.account();
    let first = put(&env, "/cli/db/host", "String", "db.internal", &[]);
    assert_eq!(first["Version"], 1);
    assert_eq!(first["Tier"], "Standard");
    put(&env, "/cli/db/ports", "StringList", "5432,5433", &[]);
    put(
        &env,
        "/cli/app/name",
        "String",
        "shop",
        &["--description", "app"],
    );
    put(&env, "/cli/top", "String", "t", &[]);

    let got = env.admin(&["ssm", "get-parameter", "--name", "/cli/db/host"])["Parameter"].clone();
    assert_eq!(got["Value"], "db.internal");
    assert_eq!(got["Type"], "String");
    assert_eq!(got["Version"], 1);
    assert_eq!(
        got["ARN"],
        format!("arn:aws:ssm:us-east-1:{account}:parameter/cli/db/host").as_str()
    );
    assert_eq!(got["DataType"], "text");
    assert!(got["LastModifiedDate"].is_number());

    // A second version needs --overwrite; selectors pick either.
    assert_eq!(
        env.fails(
            None,
            &[
                "ssm",
                "put-parameter",
                "--name",
                "/cli/db/host",
                "--type",
                "String",
                "--value",
                "x"
            ]
        ),
        "ParameterAlreadyExists"
    );
    let second = env.admin(&[
        "ssm",
        "put-parameter",
        "--name",
        "/cli/db/host",
        "--value",
        "db2.internal",
        "--overwrite",
    ]);
    assert_eq!(second["Version"], 2);
    let one = env.admin(&["ssm", "get-parameter", "--name", "/cli/db/host:1"])["Parameter"].clone();
    assert_eq!(
        (one["Value"].as_str(), one["Selector"].as_str()),
        (Some("db.internal"), Some(":1"))
    );
    let labelled = env.admin(&[
        "ssm",
        "label-parameter-version",
        "--name",
        "/cli/db/host",
        "--parameter-version",
        "1",
        "--labels",
        "stable",
        "1bad",
    ]);
    assert_eq!(labelled["ParameterVersion"], 1);
    assert_eq!(labelled["InvalidLabels"][0], "1bad");
    let stable = env.admin(&["ssm", "get-parameter", "--name", "/cli/db/host:stable"]);
    assert_eq!(stable["Parameter"]["Value"], "db.internal");
    assert_eq!(
        env.fails(None, &["ssm", "get-parameter", "--name", "/cli/db/host:9"]),
        "ParameterVersionNotFound"
    );
    assert_eq!(
        env.fails(None, &["ssm", "get-parameter", "--name", "/cli/db/none"]),
        "ParameterNotFound"
    );

    // Several at once; unknown ones are listed, not fatal.
    let many = env.admin(&[
        "ssm",
        "get-parameters",
        "--names",
        "/cli/db/host",
        "/cli/db/ports",
        "/cli/none",
        "/cli/db/host:stable",
    ]);
    assert_eq!(many["Parameters"].as_array().unwrap().len(), 3);
    assert_eq!(many["InvalidParameters"], serde_json::json!(["/cli/none"]));

    // Paths: one level or all, with filters.
    let one_level = env.admin(&["ssm", "get-parameters-by-path", "--path", "/cli"]);
    assert_eq!(names(&one_level), ["/cli/top"]);
    let all = env.admin(&[
        "ssm",
        "get-parameters-by-path",
        "--path",
        "/cli/",
        "--recursive",
    ]);
    assert_eq!(
        names(&all),
        ["/cli/app/name", "/cli/db/host", "/cli/db/ports", "/cli/top"]
    );
    let lists = env.admin(&[
        "ssm",
        "get-parameters-by-path",
        "--path",
        "/cli",
        "--recursive",
        "--parameter-filters",
        "Key=Type,Values=StringList",
    ]);
    assert_eq!(names(&lists), ["/cli/db/ports"]);
    let by_label = env.admin(&[
        "ssm",
        "get-parameters-by-path",
        "--path",
        "/cli/db",
        "--parameter-filters",
        "Key=Label,Values=stable",
    ]);
    assert_eq!(by_label["Parameters"][0]["Value"], "db.internal");
    assert_eq!(
        env.fails(
            None,
            &[
                "ssm",
                "get-parameters-by-path",
                "--path",
                "/cli",
                "--parameter-filters",
                "Key=Name,Values=/cli/top",
            ]
        ),
        "InvalidFilterKey"
    );

    // Metadata: descriptions, versions, history with labels.
    let described = env.admin(&[
        "ssm",
        "describe-parameters",
        "--parameter-filters",
        "Key=Name,Option=BeginsWith,Values=/cli/app",
    ]);
    assert_eq!(names(&described), ["/cli/app/name"]);
    assert_eq!(described["Parameters"][0]["Description"], "app");
    assert!(described["Parameters"][0].get("Value").is_none());
    let path_filtered = env.admin(&[
        "ssm",
        "describe-parameters",
        "--parameter-filters",
        "Key=Path,Option=Recursive,Values=/cli/db",
        "Key=Type,Values=String",
    ]);
    assert_eq!(names(&path_filtered), ["/cli/db/host"]);
    assert_eq!(path_filtered["Parameters"][0]["Version"], 2);
    let history = env.admin(&["ssm", "get-parameter-history", "--name", "/cli/db/host"]);
    let versions = history["Parameters"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["Labels"][0], "stable");
    assert_eq!(versions[1]["Value"], "db2.internal");
    assert!(
        versions[1]["LastModifiedUser"]
            .as_str()
            .unwrap()
            .ends_with(":user/admin")
    );

    // Tags, and their rules.
    env.admin(&[
        "ssm",
        "add-tags-to-resource",
        "--resource-type",
        "Parameter",
        "--resource-id",
        "/cli/top",
        "--tags",
        "Key=team,Value=core",
        "Key=env,Value=prod",
    ]);
    env.admin(&[
        "ssm",
        "remove-tags-from-resource",
        "--resource-type",
        "Parameter",
        "--resource-id",
        "/cli/top",
        "--tag-keys",
        "env",
    ]);
    let tags = env.admin(&[
        "ssm",
        "list-tags-for-resource",
        "--resource-type",
        "Parameter",
        "--resource-id",
        "/cli/top",
    ]);
    assert_eq!(
        tags["TagList"],
        serde_json::json!([{"Key": "team", "Value": "core"}])
    );
    let tagged = env.admin(&[
        "ssm",
        "describe-parameters",
        "--parameter-filters",
        "Key=tag:team,Values=core",
    ]);
    assert_eq!(names(&tagged), ["/cli/top"]);
    assert_eq!(
        env.fails(
            None,
            &[
                "ssm",
                "put-parameter",
                "--name",
                "/cli/top",
                "--value",
                "u",
                "--overwrite",
                "--tags",
                "Key=a,Value=b",
            ]
        ),
        "ValidationException"
    );

    // Names, patterns and tiers.
    for (name, code) in [
        ("/aws/mine", "ValidationException"),
        ("ssm-thing", "ValidationException"),
        ("no/slash", "ValidationException"),
        (&"/l".repeat(16), "HierarchyLevelLimitExceededException"),
    ] {
        assert_eq!(
            env.fails(
                None,
                &[
                    "ssm",
                    "put-parameter",
                    "--name",
                    name,
                    "--type",
                    "String",
                    "--value",
                    "v"
                ]
            ),
            code,
            "{name}"
        );
    }
    put(
        &env,
        "/cli/port",
        "String",
        "5432",
        &["--allowed-pattern", "^\\d+$"],
    );
    assert_eq!(
        env.fails(
            None,
            &[
                "ssm",
                "put-parameter",
                "--name",
                "/cli/port",
                "--value",
                "54x2",
                "--overwrite"
            ]
        ),
        "ParameterPatternMismatchException"
    );
    let big = "x".repeat(5000);
    assert_eq!(
        env.fails(
            None,
            &[
                "ssm",
                "put-parameter",
                "--name",
                "/cli/big",
                "--type",
                "String",
                "--value",
                &big
            ]
        ),
        "ValidationException"
    );
    let advanced = put(
        &env,
        "/cli/big",
        "String",
        &big,
        &["--tier", "Intelligent-Tiering"],
    );
    assert_eq!(advanced["Tier"], "Advanced");

    // Deletion, one and several.
    env.admin(&["ssm", "delete-parameter", "--name", "/cli/big"]);
    assert_eq!(
        env.fails(None, &["ssm", "delete-parameter", "--name", "/cli/big"]),
        "ParameterNotFound"
    );
    let deleted = env.admin(&[
        "ssm",
        "delete-parameters",
        "--names",
        "/cli/port",
        "/cli/never",
    ]);
    assert_eq!(
        deleted["DeletedParameters"],
        serde_json::json!(["/cli/port"])
    );
    assert_eq!(
        deleted["InvalidParameters"],
        serde_json::json!(["/cli/never"])
    );
}

#[test]
fn secure_strings_are_kms_ciphertexts_readable_only_with_kms_decrypt() {
    let env = env();
    let account = env.account();
    // The default key is AWS's managed alias/aws/ssm, made on first use.
    put(
        &env,
        "/sec/default",
        "SecureString",
        "default-secret-7d1e",
        &[],
    );
    let managed = env.admin(&["kms", "describe-key", "--key-id", "alias/aws/ssm"]);
    assert_eq!(managed["KeyMetadata"]["KeyManager"], "AWS");
    let described = env.admin(&[
        "ssm",
        "describe-parameters",
        "--parameter-filters",
        "Key=Name,Values=/sec/default",
    ]);
    assert_eq!(described["Parameters"][0]["KeyId"], "alias/aws/ssm");

    // A customer key, by alias.
    let key = env.admin(&["kms", "create-key", "--description", "ssm"])["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    env.admin(&[
        "kms",
        "create-alias",
        "--alias-name",
        "alias/params",
        "--target-key-id",
        &key,
    ]);
    let marker = "customer-secret-93ab";
    put(
        &env,
        "/sec/app/password",
        "SecureString",
        marker,
        &["--key-id", "alias/params"],
    );
    put(&env, "/sec/app/user", "String", "app", &[]);

    let plain = env.admin(&[
        "ssm",
        "get-parameter",
        "--name",
        "/sec/app/password",
        "--with-decryption",
    ]);
    assert_eq!(plain["Parameter"]["Value"], marker);
    // Without decryption: the ciphertext, a KMS blob bound to the
    // parameter's ARN.
    let sealed = env.admin(&["ssm", "get-parameter", "--name", "/sec/app/password"]);
    let blob = sealed["Parameter"]["Value"].as_str().unwrap().to_owned();
    assert_ne!(blob, marker);
    let blob_file = env.root.path().join("blob");
    std::fs::write(
        &blob_file,
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &blob).unwrap(),
    )
    .unwrap();
    let blob_arg = format!("fileb://{}", blob_file.display());
    let arn = format!("arn:aws:ssm:us-east-1:{account}:parameter/sec/app/password");
    let opened = env.admin(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &blob_arg,
        "--encryption-context",
        &format!("PARAMETER_ARN={arn}"),
    ]);
    assert_eq!(opened["KeyId"], key.as_str());
    assert_eq!(
        env.fails(None, &["kms", "decrypt", "--ciphertext-blob", &blob_arg]),
        "InvalidCiphertextException"
    );
    // A disabled key: the parameter cannot be read decrypted, nor written.
    env.admin(&["kms", "disable-key", "--key-id", &key]);
    assert_eq!(
        env.fails(
            None,
            &[
                "ssm",
                "get-parameter",
                "--name",
                "/sec/app/password",
                "--with-decryption"
            ]
        ),
        "InvalidKeyId"
    );
    assert_eq!(
        env.fails(
            None,
            &[
                "ssm",
                "put-parameter",
                "--name",
                "/sec/app/other",
                "--type",
                "SecureString",
                "--value",
                "v",
                "--key-id",
                "alias/params",
            ]
        ),
        "InvalidKeyId"
    );
    env.admin(&["kms", "enable-key", "--key-id", &key]);

    // A reader of the path without kms:Decrypt gets the ciphertext, and a
    // denial when it asks for the value.
    let reader = env.user(
        "sec-reader",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ssm:GetParameter","ssm:GetParameters","ssm:GetParametersByPath"],"Resource":"arn:aws:ssm:*:*:parameter/sec/app*"}]}"#,
    );
    let ciphertext = env.as_user(
        &reader,
        &["ssm", "get-parameter", "--name", "/sec/app/password"],
    );
    assert_eq!(ciphertext["Parameter"]["Value"], blob.as_str());
    assert_eq!(
        env.fails(
            Some(&reader),
            &[
                "ssm",
                "get-parameter",
                "--name",
                "/sec/app/password",
                "--with-decryption"
            ]
        ),
        "AccessDeniedException"
    );
    assert_eq!(
        env.fails(
            Some(&reader),
            &[
                "ssm",
                "get-parameters-by-path",
                "--path",
                "/sec/app",
                "--with-decryption"
            ]
        ),
        "AccessDeniedException"
    );
    let by_path = env.as_user(
        &reader,
        &["ssm", "get-parameters-by-path", "--path", "/sec/app"],
    );
    assert_eq!(names(&by_path), ["/sec/app/password", "/sec/app/user"]);

    // kms:Decrypt only through Parameter Store, and only for this path's
    // parameters: Parameter Store decrypts, a direct Decrypt is refused.
    let decryptor = env.user(
        "sec-decryptor",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[
{{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"arn:aws:ssm:*:*:parameter/sec/*"}},
{{"Effect":"Allow","Action":"kms:Decrypt","Resource":"{key}","Condition":{{
  "StringEquals":{{"kms:ViaService":"ssm.us-east-1.amazonaws.com"}},
  "StringLike":{{"kms:EncryptionContext:PARAMETER_ARN":"arn:aws:ssm:us-east-1:{account}:parameter/sec/app/*"}}}}}}]}}"#
        ),
    );
    let value = env.as_user(
        &decryptor,
        &[
            "ssm",
            "get-parameter",
            "--name",
            "/sec/app/password",
            "--with-decryption",
        ],
    );
    assert_eq!(value["Parameter"]["Value"], marker);
    assert_eq!(
        env.fails(
            Some(&decryptor),
            &[
                "kms",
                "decrypt",
                "--ciphertext-blob",
                &blob_arg,
                "--encryption-context",
                &format!("PARAMETER_ARN={arn}"),
            ]
        ),
        "AccessDeniedException"
    );
    // The same key elsewhere in the tree is not decrypted for it.
    put(
        &env,
        "/sec/other",
        "SecureString",
        "elsewhere",
        &["--key-id", &key],
    );
    assert_eq!(
        env.fails(
            Some(&decryptor),
            &[
                "ssm",
                "get-parameter",
                "--name",
                "/sec/other",
                "--with-decryption"
            ]
        ),
        "AccessDeniedException"
    );

    // A SecureString can't be written without kms:Encrypt on its key.
    let writer = env.user(
        "sec-writer",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:PutParameter","Resource":"*"}]}"#,
    );
    assert_eq!(
        env.fails(
            Some(&writer),
            &[
                "ssm",
                "put-parameter",
                "--name",
                "/sec/w",
                "--type",
                "SecureString",
                "--value",
                "v",
                "--key-id",
                &key,
            ]
        ),
        "AccessDeniedException"
    );
    assert_eq!(
        env.fails(None, &["ssm", "get-parameter", "--name", "/sec/w"]),
        "ParameterNotFound"
    );
}

#[test]
fn policies_on_paths_hide_what_they_deny() {
    let env = env();
    put(&env, "/pol/app/a", "String", "a", &[]);
    put(&env, "/pol/app/secret", "String", "s", &[]);
    put(&env, "/pol/app/deep/b", "String", "b", &[]);
    put(&env, "/pol/other/c", "String", "c", &[]);
    let user = env.user(
        "pol-reader",
        r#"{"Version":"2012-10-17","Statement":[
{"Effect":"Allow","Action":["ssm:GetParameter","ssm:GetParameters","ssm:GetParametersByPath"],"Resource":["arn:aws:ssm:*:*:parameter/pol/app","arn:aws:ssm:*:*:parameter/pol/app/*"]},
{"Effect":"Deny","Action":"ssm:*","Resource":"arn:aws:ssm:*:*:parameter/pol/app/secret"},
{"Effect":"Allow","Action":"ssm:PutParameter","Resource":"arn:aws:ssm:*:*:parameter/pol/app/*","Condition":{"StringEquals":{"ssm:Overwrite":"false"}}}]}"#,
    );
    assert_eq!(
        env.as_user(&user, &["ssm", "get-parameter", "--name", "/pol/app/a"])["Parameter"]["Value"],
        "a"
    );
    // Denied whether or not the parameter exists: no existence oracle.
    for name in ["/pol/other/c", "/pol/other/missing", "/pol/app/secret"] {
        assert_eq!(
            env.fails(Some(&user), &["ssm", "get-parameter", "--name", name]),
            "AccessDeniedException",
            "{name}"
        );
    }
    assert_eq!(
        env.fails(
            Some(&user),
            &["ssm", "get-parameter", "--name", "/pol/app/missing"]
        ),
        "ParameterNotFound"
    );
    // One denied name refuses the whole batch.
    assert_eq!(
        env.fails(
            Some(&user),
            &[
                "ssm",
                "get-parameters",
                "--names",
                "/pol/app/a",
                "/pol/other/c"
            ]
        ),
        "AccessDeniedException"
    );
    // The path's grant covers its children; the explicitly denied one
    // stays hidden.
    let listed = env.as_user(
        &user,
        &[
            "ssm",
            "get-parameters-by-path",
            "--path",
            "/pol/app",
            "--recursive",
        ],
    );
    assert_eq!(names(&listed), ["/pol/app/a", "/pol/app/deep/b"]);
    assert_eq!(
        env.fails(
            Some(&user),
            &["ssm", "get-parameters-by-path", "--path", "/pol"]
        ),
        "AccessDeniedException"
    );
    // ssm:Overwrite: it may create, not overwrite.
    env.as_user(
        &user,
        &[
            "ssm",
            "put-parameter",
            "--name",
            "/pol/app/new",
            "--type",
            "String",
            "--value",
            "n",
        ],
    );
    assert_eq!(
        env.fails(
            Some(&user),
            &[
                "ssm",
                "put-parameter",
                "--name",
                "/pol/app/new",
                "--value",
                "m",
                "--overwrite"
            ]
        ),
        "AccessDeniedException"
    );
    assert_eq!(
        env.admin(&["ssm", "get-parameter", "--name", "/pol/app/new"])["Parameter"]["Version"],
        1
    );

    // What a red-team pass found, replayed. A Deny conditioned on the
    // request's own keys (`ssm:Recursive`) hides children too; so does a
    // Deny of reading a parameter directly.
    put(&env, "/rt/app/prod/db", "String", "prod-secret", &[]);
    put(&env, "/rt/app/prod/api", "String", "prod-api", &[]);
    put(&env, "/rt/app/dev/db", "String", "dev", &[]);
    let rt = env.user(
        "rt-ssm",
        r#"{"Version":"2012-10-17","Statement":[
{"Effect":"Allow","Action":"ssm:*","Resource":"arn:aws:ssm:*:*:parameter/*"},
{"Effect":"Deny","Action":"ssm:GetParametersByPath","Resource":"arn:aws:ssm:*:*:parameter/rt/app/prod/db","Condition":{"StringEquals":{"ssm:Recursive":"true"}}},
{"Effect":"Deny","Action":"ssm:GetParameter","Resource":"arn:aws:ssm:*:*:parameter/rt/app/prod/api"}]}"#,
    );
    let recursive = env.as_user(
        &rt,
        &[
            "ssm",
            "get-parameters-by-path",
            "--path",
            "/rt/app",
            "--recursive",
        ],
    );
    assert_eq!(names(&recursive), ["/rt/app/dev/db"]);
    let shallow = env.as_user(
        &rt,
        &["ssm", "get-parameters-by-path", "--path", "/rt/app/prod"],
    );
    assert_eq!(
        names(&shallow),
        ["/rt/app/prod/db"],
        "the Deny needs ssm:Recursive true"
    );
    // DescribeParameters is granted on `*` only (a grant on parameter/*
    // does not reach it), and never describes what the caller may not read.
    assert_eq!(
        env.fails(Some(&rt), &["ssm", "describe-parameters"]),
        "AccessDeniedException"
    );
    let describer = env.user(
        "rt-describer",
        r#"{"Version":"2012-10-17","Statement":[
{"Effect":"Allow","Action":"ssm:DescribeParameters","Resource":"*"},
{"Effect":"Deny","Action":"ssm:GetParameter","Resource":"arn:aws:ssm:*:*:parameter/rt/app/prod/*"}]}"#,
    );
    let described = env.as_user(
        &describer,
        &[
            "ssm",
            "describe-parameters",
            "--parameter-filters",
            "Key=Path,Option=Recursive,Values=/rt",
        ],
    );
    assert_eq!(names(&described), ["/rt/app/dev/db"]);
    // An AllowedPattern that would escape its anchors is refused.
    assert_eq!(
        env.fails(
            None,
            &[
                "ssm",
                "put-parameter",
                "--name",
                "/rt/pattern",
                "--type",
                "String",
                "--value",
                "1",
                "--allowed-pattern",
                "[0-9]+)|(.*"
            ]
        ),
        "InvalidAllowedPatternException"
    );
}

#[test]
fn references_read_secrets_manager_with_both_permissions() {
    let env = env();
    let marker = "referenced-secret-c0ffee";
    env.admin(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "ref/db",
        "--secret-string",
        marker,
    ]);
    let reference = "/aws/reference/secretsmanager/ref/db";
    let got = env.admin(&[
        "ssm",
        "get-parameter",
        "--name",
        reference,
        "--with-decryption",
    ]);
    assert_eq!(got["Parameter"]["Value"], marker);
    assert_eq!(got["Parameter"]["Type"], "SecureString");
    assert!(
        got["Parameter"]["ARN"]
            .as_str()
            .unwrap()
            .contains(":secretsmanager:")
    );
    let current = env.admin(&[
        "ssm",
        "get-parameter",
        "--name",
        &format!("{reference}:AWSCURRENT"),
        "--with-decryption",
    ]);
    assert_eq!(current["Parameter"]["Value"], marker);
    assert_eq!(
        env.fails(None, &["ssm", "get-parameter", "--name", reference]),
        "ValidationException"
    );
    assert_eq!(
        env.fails(
            None,
            &[
                "ssm",
                "get-parameter",
                "--name",
                "/aws/reference/secretsmanager/ref/none",
                "--with-decryption"
            ]
        ),
        "ParameterNotFound"
    );
    let ssm_only = env.user(
        "ref-ssm-only",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"*"}]}"#,
    );
    assert_eq!(
        env.fails(
            Some(&ssm_only),
            &[
                "ssm",
                "get-parameter",
                "--name",
                reference,
                "--with-decryption"
            ]
        ),
        "AccessDeniedException"
    );
    let secrets_only = env.user(
        "ref-secrets-only",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#,
    );
    assert_eq!(
        env.fails(
            Some(&secrets_only),
            &[
                "ssm",
                "get-parameter",
                "--name",
                reference,
                "--with-decryption"
            ]
        ),
        "AccessDeniedException"
    );
    let both = env.user(
        "ref-both",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ssm:GetParameter","secretsmanager:GetSecretValue"],"Resource":"*"}]}"#,
    );
    let read = env.as_user(
        &both,
        &[
            "ssm",
            "get-parameter",
            "--name",
            reference,
            "--with-decryption",
        ],
    );
    assert_eq!(read["Parameter"]["Value"], marker);
    // Nobody writes under /aws.
    assert_eq!(
        env.fails(
            None,
            &[
                "ssm",
                "put-parameter",
                "--name",
                reference,
                "--type",
                "String",
                "--value",
                "x"
            ]
        ),
        "ValidationException"
    );
}

#[test]
fn boto3_paginates_and_sees_parameter_store_error_codes() {
    let env = env();
    let v = boto3(
        &env,
        r#"
out = {}
for i in range(23):
    ssm.put_parameter(Name='/pages/p%02d' % i, Type='String', Value='v%d' % i)
pages = list(ssm.get_paginator('get_parameters_by_path').paginate(Path='/pages', PaginationConfig={'PageSize': 4}))
out['path_pages'] = len(pages)
out['path_names'] = [p['Name'] for page in pages for p in page['Parameters']]
described = list(ssm.get_paginator('describe_parameters').paginate(
    ParameterFilters=[{'Key': 'Path', 'Values': ['/pages']}], PaginationConfig={'PageSize': 5}))
out['describe_pages'] = len(described)
out['described'] = sum(len(p['Parameters']) for p in described)
# A hundred versions are kept; the oldest goes, unless it is labelled.
for i in range(2, 102):
    ssm.put_parameter(Name='/pages/p00', Value='w%d' % i, Overwrite=True)
history = list(ssm.get_paginator('get_parameter_history').paginate(Name='/pages/p00', PaginationConfig={'PageSize': 30}))
versions = [p['Version'] for page in history for p in page['Parameters']]
out['history'] = [len(history), len(versions), versions[0], versions[-1]]
out['gone'] = code(lambda: ssm.get_parameter(Name='/pages/p00:1'))
ssm.label_parameter_version(Name='/pages/p00', ParameterVersion=2, Labels=['keep'])
out['max_versions'] = code(lambda: ssm.put_parameter(Name='/pages/p00', Value='x', Overwrite=True))
out['label_limit'] = code(lambda: ssm.label_parameter_version(Name='/pages/p00', ParameterVersion=3,
    Labels=['l%d' % i for i in range(10)] + []) and ssm.label_parameter_version(Name='/pages/p00',
    ParameterVersion=3, Labels=['m']))
out['token'] = code(lambda: ssm.get_parameters_by_path(Path='/pages', NextToken='bm9wZQ'))
out['filter_key'] = code(lambda: ssm.describe_parameters(ParameterFilters=[{'Key': 'Colour', 'Values': ['x']}]))
out['filter_option'] = code(lambda: ssm.describe_parameters(ParameterFilters=[{'Key': 'Type', 'Option': 'BeginsWith', 'Values': ['S']}]))
out['type'] = code(lambda: raw.put_parameter(Name='/pages/t', Type='Blob', Value='x'))
out['pattern'] = code(lambda: ssm.put_parameter(Name='/pages/bad', Type='String', Value='x', AllowedPattern='('))
out['too_many'] = code(lambda: raw.get_parameters(Names=['/pages/p%02d' % i for i in range(11)]))
out['max_results'] = code(lambda: raw.get_parameters_by_path(Path='/pages', MaxResults=11))
out['selector'] = code(lambda: ssm.get_parameter(Name='/pages/p01:0'))
out['unknown'] = code(lambda: ssm.send_command(DocumentName='x', InstanceIds=['i-1']))
out['resource_type'] = code(lambda: ssm.list_tags_for_resource(ResourceType='Document', ResourceId='x'))
out['tag_missing'] = code(lambda: ssm.list_tags_for_resource(ResourceType='Parameter', ResourceId='/pages/none'))
out['string_list'] = ssm.put_parameter(Name='/pages/list', Type='StringList', Value='a,b')['Version']
out['key_on_string'] = code(lambda: ssm.put_parameter(Name='/pages/k', Type='String', Value='x', KeyId='alias/aws/ssm'))
print(json.dumps(out))
"#,
    );
    assert_eq!(v["path_pages"], 6, "{v}");
    let expected: Vec<String> = (0..23).map(|i| format!("/pages/p{i:02}")).collect();
    assert_eq!(v["path_names"], serde_json::json!(expected));
    assert_eq!(v["described"], 23);
    assert_eq!(v["describe_pages"], 5);
    assert_eq!(v["history"], serde_json::json!([4, 100, 2, 101]));
    assert_eq!(v["gone"], "ParameterVersionNotFound");
    assert_eq!(v["max_versions"], "ParameterMaxVersionLimitExceeded");
    assert_eq!(v["label_limit"], "ParameterVersionLabelLimitExceeded");
    assert_eq!(v["token"], "InvalidNextToken");
    assert_eq!(v["filter_key"], "InvalidFilterKey");
    assert_eq!(v["filter_option"], "InvalidFilterOption");
    assert_eq!(v["type"], "UnsupportedParameterType");
    assert_eq!(v["pattern"], "InvalidAllowedPatternException");
    assert_eq!(v["too_many"], "ValidationException");
    assert_eq!(v["max_results"], "ValidationException");
    assert_eq!(v["selector"], "ValidationException");
    assert_eq!(v["unknown"], "UnknownOperationException");
    assert_eq!(v["resource_type"], "InvalidResourceType");
    assert_eq!(v["tag_missing"], "InvalidResourceId");
    assert_eq!(v["string_list"], 1);
    assert_eq!(v["key_on_string"], "ValidationException");
}

#[test]
fn the_trail_records_parameter_store_and_its_kms_calls_without_values() {
    let env = env();
    let marker = "trail-value-4be2a9";
    put(&env, "/trail/secure", "SecureString", marker, &[]);
    put(&env, "/trail/plain", "String", marker, &[]);
    env.admin(&[
        "ssm",
        "get-parameter",
        "--name",
        "/trail/secure",
        "--with-decryption",
    ]);
    env.admin(&["ssm", "get-parameter", "--name", "/trail/plain"]);
    let (text, events) = common::trail_in(&env.server.dir, |events| {
        events.iter().any(|e| {
            e["eventSource"] == "kms.amazonaws.com"
                && e["eventName"] == "Decrypt"
                && e["userAgent"] == "ssm.amazonaws.com"
        }) && events
            .iter()
            .filter(|e| e["eventSource"] == "ssm.amazonaws.com" && e["eventName"] == "GetParameter")
            .count()
            >= 2
    });
    assert!(
        !text.contains(marker),
        "a parameter's value is in the trail"
    );
    let puts: Vec<&Value> = events
        .iter()
        .filter(|e| e["eventSource"] == "ssm.amazonaws.com" && e["eventName"] == "PutParameter")
        .collect();
    assert!(puts.iter().any(|e| {
        e["requestParameters"]["name"] == "/trail/secure"
            && e["resources"][0]["ARN"]
                .as_str()
                .is_some_and(|a| a.ends_with(":parameter/trail/secure"))
    }));
    assert!(events.iter().any(|e| {
        e["eventSource"] == "kms.amazonaws.com"
            && e["eventName"] == "Encrypt"
            && e["userAgent"] == "ssm.amazonaws.com"
            && e["requestParameters"]["encryptionContext"]["PARAMETER_ARN"]
                .as_str()
                .is_some_and(|a| a.ends_with(":parameter/trail/secure"))
    }));
}
