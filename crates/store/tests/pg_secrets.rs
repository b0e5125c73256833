#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Secrets, KMS aliases, parameters, firewall shapes and last uses written
//! by several PostgreSQL nodes at once (these tests run with
//! `LATCHKEY_TEST_STORE=postgres` and pass on SQLite).

#[allow(dead_code)]
mod backends;

use latchkey_store::{CredentialLastUse, Fingerprint, LastAccess, LearnedShape, StoreError};

const NOW: i64 = 1_700_000_000;

/// Exactly one `Ok`, every other answer `EntityAlreadyExists`.
fn one_wins(got: &[Result<(), StoreError>]) {
    assert_eq!(got.iter().filter(|g| g.is_ok()).count(), 1, "{got:?}");
    assert!(
        got.iter()
            .all(|g| g.is_ok() || matches!(g, Err(StoreError::EntityAlreadyExists { .. }))),
        "{got:?}"
    );
}

#[test]
fn nodes_creating_the_same_secret_alias_or_parameter_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes_or_one(dir.path(), 4);
    one_wins(&backends::at_once(&nodes, |i, node| {
        node.create_secret(
            &format!("arn:aws:secretsmanager:us-east-1:1:secret:app-{i}"),
            "app",
            "{}",
            Some(("v1", format!("value {i}").as_bytes())),
        )
    }));
    let secret = nodes[0].secret_by_name("app").unwrap().unwrap();
    assert!(nodes[0].secret_value(&secret.arn, "v1").unwrap().is_some());
    assert_eq!(nodes[0].list_secrets().unwrap().len(), 1);

    one_wins(&backends::at_once(&nodes, |i, node| {
        node.create_kms_alias("alias/app", &format!("key-{i}"), NOW)
    }));
    assert_eq!(nodes[0].list_kms_aliases().unwrap().len(), 1);

    one_wins(&backends::at_once(&nodes, |i, node| {
        node.create_parameter("/app/url", "{}", 1, format!("value {i}").as_bytes())
    }));
    assert!(nodes[0].parameter_value("/app/url", 1).unwrap().is_some());
}

#[test]
fn nodes_learning_the_same_shape_count_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes_or_one(dir.path(), 4);
    let got = backends::at_once(&nodes, |i, node| {
        node.learn_shapes(&[LearnedShape {
            database: "orders".into(),
            principal: "arn:aws:iam::123456789012:user/alice".into(),
            fingerprint: Some(Fingerprint(u64::MAX - 3)),
            text: "SELECT ?".into(),
            stacked: i == 0,
            union: i == 1,
            at: NOW,
            learning_until: Some(NOW + 60),
        }])
        .unwrap()
    });
    assert_eq!(got.iter().sum::<usize>(), 1, "{got:?}");
    let profiles = nodes[0].firewall_profiles("orders", None).unwrap();
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].shapes.len(), 1);
    assert_eq!(profiles[0].shapes[0].fingerprint, Fingerprint(u64::MAX - 3));
    assert!(profiles[0].stacks);
    assert_eq!(profiles[0].unions, nodes.len() > 1);
    assert_eq!(
        nodes[0].firewall_configs().unwrap()[0].revision,
        i64::try_from(nodes.len()).unwrap()
    );
}

#[test]
fn last_uses_recorded_at_once_keep_the_latest_and_sort_as_nocase() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes_or_one(dir.path(), 4);
    let arn = "arn:aws:iam::123456789012:user/alice";
    backends::at_once(&nodes, |i, node| {
        let at = NOW + i64::try_from(i).unwrap();
        node.record_usage(
            &[LastAccess {
                principal: arn.into(),
                action: "iam:GetUser".into(),
                resource: "*".into(),
                at,
            }],
            &[CredentialLastUse {
                id: "AKIAEXAMPLE".into(),
                at,
                service: format!("svc{i}"),
            }],
        )
        .unwrap()
    });
    let latest = NOW + i64::try_from(nodes.len() - 1).unwrap();
    let uses = nodes[0].last_accesses(&[&arn.to_uppercase()]).unwrap();
    assert_eq!(uses.len(), 1);
    assert_eq!(uses[0].at, latest);
    let used = nodes[0]
        .credential_last_use("akiaexample")
        .unwrap()
        .unwrap();
    assert_eq!(
        (used.at, used.service),
        (latest, format!("svc{}", nodes.len() - 1))
    );

    // NOCASE: ASCII case folded to lower case, then bytes ('_' < 'a').
    let access = |action: &str, resource: &str| LastAccess {
        principal: arn.into(),
        action: action.into(),
        resource: resource.into(),
        at: NOW,
    };
    nodes[0]
        .record_usage(
            &[
                access("s3:b", "*"),
                access("S3:A", "z"),
                access("s3:_", "*"),
                access("s3:a", "Z"),
                access("s3:a", "_"),
            ],
            &[],
        )
        .unwrap();
    let order: Vec<(String, String)> = nodes[0]
        .last_accesses(&[arn])
        .unwrap()
        .into_iter()
        .filter(|u| u.action.starts_with("s3") || u.action.starts_with("S3"))
        .map(|u| (u.action, u.resource))
        .collect();
    let want = [
        ("s3:_", "*"),
        ("s3:a", "Z"),
        ("s3:a", "_"),
        ("S3:A", "z"),
        ("s3:b", "*"),
    ];
    assert_eq!(order, want.map(|(a, r)| (a.to_owned(), r.to_owned())),);
}

#[test]
fn secrets_and_keys_list_in_creation_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = &backends::nodes_or_one(dir.path(), 1)[0];
    for (i, name) in ["zeta", "alpha", "mid"].into_iter().enumerate() {
        let doc = format!("{{\"created\":{}}}", NOW + i64::try_from(i).unwrap());
        store
            .create_secret(&format!("arn:secret:{name}"), name, &doc, None)
            .unwrap();
        store.create_kms_key(name, &doc, b"material").unwrap();
    }
    let secrets: Vec<String> = store
        .list_secrets()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(secrets, ["zeta", "alpha", "mid"]);
    let keys: Vec<String> = store
        .list_kms_keys()
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(keys, ["zeta", "alpha", "mid"]);
}
