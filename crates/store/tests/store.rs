#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The store's contract, against a real SQLite file or (with
//! `LATCHKEY_TEST_STORE=postgres`) a throwaway PostgreSQL server.

#[allow(dead_code)] // the race helpers serve the pg_* tests
mod backends;

use latchkey_session::totp;
use latchkey_store::{Engine, PrincipalKind, Store, StoreError, TlsMode, UpstreamAuth, Vault};

const NOW: i64 = 1_700_000_000;

fn open(dir: &tempfile::TempDir) -> Store {
    backends::open(dir.path(), Vault::new(1, &[9; 32])).unwrap()
}

#[test]
fn users_and_access_keys_survive_reopen_and_secrets_are_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let (key_id, secret, account) = {
        let store = open(&dir);
        let user = store
            .create_user("alice", "/", &[("team".into(), "data".into())], NOW)
            .unwrap();
        assert!(user.id.starts_with("AIDA"));
        assert_eq!(
            user.arn,
            format!("arn:aws:iam::{}:user/alice", store.account_id())
        );
        assert!(matches!(
            store.create_user("ALICE", "/", &[], NOW),
            Err(StoreError::EntityAlreadyExists { .. })
        ));
        assert!(matches!(
            store.create_user("bad name", "/", &[], NOW),
            Err(StoreError::InvalidInput(_))
        ));
        let (key, secret) = store.create_access_key("alice", NOW).unwrap();
        assert!(key.id.starts_with("AKIA") && key.id.len() == 20);
        assert_eq!(secret.len(), 40);
        store.create_access_key("alice", NOW).unwrap();
        assert!(matches!(
            store.create_access_key("alice", NOW),
            Err(StoreError::LimitExceeded(_))
        ));
        (key.id, secret.to_string(), store.account_id().to_owned())
    };
    let raw = backends::raw(dir.path());
    assert!(
        !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "secret stored in clear"
    );
    let store = open(&dir);
    assert_eq!(store.account_id(), account);
    let (key, found) = store.access_key_secret(&key_id).unwrap().unwrap();
    assert_eq!(
        (key.user.as_str(), found.as_str()),
        ("alice", secret.as_str())
    );
    store.update_access_key(&key_id, false).unwrap();
    assert!(!store.access_key_secret(&key_id).unwrap().unwrap().0.active);
    assert!(matches!(
        store.delete_user("alice"),
        Err(StoreError::DeleteConflict(_))
    ));
    for k in store.list_access_keys("alice").unwrap() {
        store.delete_access_key(&k.id).unwrap();
    }
    store.delete_user("alice").unwrap();
    assert!(matches!(
        store.get_user("alice"),
        Err(StoreError::NoSuchEntity { .. })
    ));
    // A different master key is refused at open.
    let wrong = backends::open(dir.path(), Vault::new(1, &[8; 32]));
    assert!(matches!(wrong, Err(StoreError::Vault(_))));
}

#[test]
fn policies_from_user_groups_and_attachments() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.create_user("bob", "/", &[], NOW).unwrap();
    store.create_group("dba", "/", NOW).unwrap();
    store.add_user_to_group("dba", "bob").unwrap();
    store
        .put_inline_policy(PrincipalKind::User, "bob", "own", "{\"u\":1}")
        .unwrap();
    store
        .put_inline_policy(PrincipalKind::Group, "dba", "grp", "{\"g\":1}")
        .unwrap();
    let (arn, _) = store
        .create_managed_policy("ReadOnly", "/", "{\"m\":1}", NOW)
        .unwrap();
    store
        .attach_policy(PrincipalKind::Group, "dba", &arn)
        .unwrap();
    let docs: Vec<String> = store
        .identity_policies(PrincipalKind::User, "bob")
        .unwrap()
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(docs, ["{\"u\":1}", "{\"g\":1}", "{\"m\":1}"]);
    assert!(matches!(
        store.attach_policy(PrincipalKind::User, "bob", "arn:aws:iam::1:policy/none"),
        Err(StoreError::NoSuchEntity { .. })
    ));
    store
        .detach_policy(PrincipalKind::Group, "dba", &arn)
        .unwrap();
    assert_eq!(
        store
            .identity_policies(PrincipalKind::User, "bob")
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn roles_and_trust_policies() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let role = store
        .create_role("reader", "/app/", "{}", 3600, "reads", &[], NOW)
        .unwrap();
    assert!(role.id.starts_with("AROA"));
    assert_eq!(
        role.arn,
        format!("arn:aws:iam::{}:role/app/reader", store.account_id())
    );
    assert!(matches!(
        store.create_role("x", "/", "{}", 100, "", &[], NOW),
        Err(StoreError::InvalidInput(_))
    ));
    store
        .update_assume_role_policy("reader", "{\"v\":2}")
        .unwrap();
    store
        .tag_role("reader", &[("env".into(), "prod".into())])
        .unwrap();
    let role = store.get_role("reader").unwrap();
    assert_eq!(
        (role.trust_policy.as_str(), role.tags.len()),
        ("{\"v\":2}", 1)
    );
    store.delete_role("reader").unwrap();
    assert!(store.list_roles().unwrap().is_empty());
}

#[test]
fn mfa_devices_refuse_replayed_steps() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.create_user("carol", "/", &[], NOW).unwrap();
    let (serial, seed_b32) = store.create_virtual_mfa("carol", "/").unwrap();
    assert_eq!(seed_b32.len(), 32);
    // One device name per account, whatever its case and path.
    for (name, path) in [("carol", "/"), ("CAROL", "/"), ("Carol", "/phones/")] {
        assert!(
            matches!(
                store.create_virtual_mfa(name, path),
                Err(StoreError::EntityAlreadyExists { .. })
            ),
            "{name} at {path}"
        );
    }
    store.create_virtual_mfa("carol-2", "/phones/").unwrap();
    let (_, seed, last) = store.mfa_seed(&serial).unwrap();
    assert_eq!(last, None);
    assert_eq!(latchkey_session::base32(&seed), *seed_b32);
    let code = format!("{:06}", totp::totp(&seed, NOW));
    let step = totp::verify(&seed, &code, NOW, None).unwrap();
    store.enable_mfa(&serial, "carol", step, NOW).unwrap();
    assert!(
        !store.use_mfa_step(&serial, step).unwrap(),
        "the enabling code is used up"
    );
    assert!(store.use_mfa_step(&serial, step + 1).unwrap());
    assert!(!store.use_mfa_step(&serial, step + 1).unwrap());
    assert_eq!(store.list_mfa_devices("carol").unwrap().len(), 1);
    store.deactivate_mfa(&serial, "carol").unwrap();
    assert!(store.list_mfa_devices("carol").unwrap().is_empty());
}

#[test]
fn cluster_keys_revocations_and_master_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = open(&dir);
        store.create_user("dave", "/", &[], NOW).unwrap();
        let (key, secret) = store.create_access_key("dave", NOW).unwrap();
        store
            .revoke_sessions("arn:aws:iam::1:user/dave", NOW)
            .unwrap();
        store
            .revoke_sessions("arn:aws:iam::1:user/dave", NOW - 10)
            .unwrap();
        assert_eq!(
            store.revocations().unwrap(),
            [("arn:aws:iam::1:user/dave".to_owned(), NOW)]
        );
        let keys = store.cluster_keys(NOW).unwrap();
        assert_eq!(keys.len(), 1);
        (keys[0].1.clone(), key.id, secret.to_string())
    };
    // Rotate the master key: re-wrap everything, then only the new key is needed.
    let mut vault = Vault::new(1, &[9; 32]);
    vault.add(2, &[10; 32]);
    let store = backends::open(dir.path(), vault).unwrap();
    // One access key, one cluster key, the vault check value.
    assert_eq!(store.rewrap_all().unwrap(), 3);
    assert_eq!(store.rewrap_all().unwrap(), 0);
    drop(store);
    let store = backends::open(dir.path(), Vault::new(2, &[10; 32])).unwrap();
    assert_eq!(*store.cluster_keys(NOW).unwrap()[0].1, *first.0);
    assert_eq!(
        store
            .access_key_secret(&first.1)
            .unwrap()
            .unwrap()
            .1
            .as_str(),
        first.2
    );
}

#[test]
fn cluster_keys_rotate_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let first = store.cluster_keys(NOW).unwrap();
    assert_eq!(first.len(), 1);
    // Not due yet.
    assert!(!store.rotate_cluster_keys(NOW + 100, 3600, 10_000).unwrap());
    // Due: a second key; the first is kept while sessions it sealed may live.
    assert!(store.rotate_cluster_keys(NOW + 3600, 3600, 10_000).unwrap());
    let keys = store.cluster_keys(NOW + 3600).unwrap();
    assert_eq!(keys.iter().map(|k| k.0).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(*keys[0].1, *first[0].1);
    // Long after: the first key is dropped, the newest never is.
    assert!(
        store
            .rotate_cluster_keys(NOW + 3600 + 10_001, 100_000, 10_000)
            .unwrap()
    );
    let keys = store.cluster_keys(NOW).unwrap();
    assert_eq!(keys.iter().map(|k| k.0).collect::<Vec<_>>(), [2]);
    assert!(
        !store
            .rotate_cluster_keys(NOW + 1_000_000_000, 1_000_000_001, 1)
            .unwrap()
    );
    assert_eq!(store.cluster_keys(NOW).unwrap().len(), 1);
}

#[test]
fn databases_and_their_sealed_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let db = latchkey_store::Database {
        name: "orders".into(),
        engine: Engine::Postgres,
        endpoints: vec!["Orders.DB.local".into()],
        upstream: "127.0.0.1:5432".into(),
        upstream_auth: UpstreamAuth::Password,
        ..Default::default()
    };
    let registered = store.register_database(&db, NOW).unwrap();
    assert!(registered.resource_id.starts_with("db-") && registered.resource_id.len() == 29);
    assert!(
        registered.resource_id[3..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    assert_eq!(registered.endpoints, ["orders.db.local"]);
    assert!(matches!(
        store.register_database(&db, NOW),
        Err(StoreError::EntityAlreadyExists { .. })
    ));
    assert_eq!(store.list_databases().unwrap(), [registered]);
    store
        .set_database_password("orders", "app", "s3cret")
        .unwrap();
    assert_eq!(
        store
            .database_password("orders", "app")
            .unwrap()
            .unwrap()
            .as_str(),
        "s3cret"
    );
    assert!(
        store
            .database_password("orders", "other")
            .unwrap()
            .is_none()
    );
    assert!(store.set_database_password("nope", "app", "x").is_err());
    store.remove_database("orders").unwrap();
    assert!(store.list_databases().unwrap().is_empty());
}

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

fn orders() -> latchkey_store::Database {
    latchkey_store::Database {
        name: "orders".into(),
        engine: Engine::Postgres,
        endpoints: vec!["orders.db.local".into()],
        upstream: "127.0.0.1:5432".into(),
        upstream_auth: UpstreamAuth::Password,
        ..Default::default()
    }
}

#[test]
fn database_upstream_tls_settings_are_checked_and_updates_keep_the_resource_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // The default mode is prefer.
    let registered = store.register_database(&orders(), NOW).unwrap();
    assert_eq!(registered.upstream_tls, TlsMode::Prefer);
    assert_eq!(registered.upstream_ca, None);
    store
        .set_database_password("orders", "app", "s3cret")
        .unwrap();

    let refused = |db: latchkey_store::Database| {
        let err = store.register_database(
            &latchkey_store::Database {
                name: "other".into(),
                ..db
            },
            NOW,
        );
        match err {
            Err(StoreError::InvalidInput(why)) => why,
            other => panic!("{other:?}"),
        }
    };
    let with = |tls: &str, auth: &str, ca: Option<&str>| latchkey_store::Database {
        upstream_tls: tls.parse().unwrap(),
        upstream_auth: auth.parse().unwrap(),
        upstream_ca: ca.map(str::to_owned),
        ..orders()
    };
    // Unknown modes and methods cannot be stored: they do not parse.
    assert!("sometimes".parse::<TlsMode>().is_err());
    assert!("kerberos".parse::<UpstreamAuth>().is_err());
    assert!(refused(with("disable", "cert", None)).contains("cert needs upstream TLS"));
    assert!(refused(with("prefer", "cert", None)).contains("cert needs upstream TLS"));
    assert!(refused(with("verify-full", "password", None)).contains("needs the upstream CA"));
    assert!(refused(with("require", "password", Some(PEM))).contains("used only with"));
    assert!(refused(with("verify-ca", "password", Some("junk"))).contains("PEM"));
    assert!(
        refused(latchkey_store::Database {
            engine: Engine::Mysql,
            ..with("require", "cert", None)
        })
        .contains("not available for mysql")
    );

    // Update: new upstream, TLS, CA, auth and tags; same resource id and password.
    let changed = latchkey_store::Database {
        upstream: "10.0.0.5:5432".into(),
        upstream_tls: TlsMode::VerifyFull,
        upstream_ca: Some(PEM.into()),
        upstream_auth: UpstreamAuth::Cert,
        endpoints: vec!["Orders.Example".into()],
        tags: vec![("env".into(), "prod".into())],
        ..orders()
    };
    let updated = store.update_database(&changed).unwrap();
    assert_eq!(updated.resource_id, registered.resource_id);
    assert_eq!(updated.endpoints, ["orders.example"]);
    assert_eq!(store.get_database("orders").unwrap(), updated);
    assert_eq!(
        store
            .database_password("orders", "app")
            .unwrap()
            .unwrap()
            .as_str(),
        "s3cret"
    );
    assert!(matches!(
        store.update_database(&latchkey_store::Database {
            name: "nope".into(),
            ..orders()
        }),
        Err(StoreError::NoSuchEntity { .. })
    ));
    assert!(matches!(
        store.update_database(&with("disable", "cert", None)),
        Err(StoreError::InvalidInput(_))
    ));
}

#[test]
fn stores_from_before_upstream_tls_get_the_new_columns() {
    if backends::is_postgres() {
        return; // SQLite's additive migrations; PostgreSQL's schema is versioned.
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        // The databases table as first released.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE databases (name TEXT PRIMARY KEY, engine TEXT NOT NULL, endpoints TEXT NOT NULL, upstream TEXT NOT NULL, upstream_auth TEXT NOT NULL, resource_id TEXT NOT NULL UNIQUE, tags TEXT NOT NULL DEFAULT '[]', created INTEGER NOT NULL);
             INSERT INTO databases VALUES ('old', 'postgres', '[\"old.local\"]', '127.0.0.1:5432', 'password', 'db-OLD', '[]', 1);",
        )
        .unwrap();
    }
    let store = open(&dir);
    let old = store.get_database("old").unwrap();
    assert_eq!(old.upstream_tls, TlsMode::Prefer);
    assert_eq!(old.upstream_ca, None);
    assert_eq!(old.resource_id, "db-OLD");
    drop(store);
    // Opening again is a no-op.
    let store = open(&dir);
    assert_eq!(store.list_databases().unwrap().len(), 1);
}

#[test]
fn database_ca_key_is_sealed_made_once_and_rewrapped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        assert!(store.database_ca().unwrap().is_none());
        assert!(
            store
                .create_database_ca("CERT PEM", "KEY PEM secret", NOW)
                .unwrap()
        );
        // A second maker (another node) loses the race and keeps the first.
        assert!(!store.create_database_ca("OTHER", "OTHER KEY", NOW).unwrap());
        let (cert, key) = store.database_ca().unwrap().unwrap();
        assert_eq!(
            (cert.as_str(), key.as_str()),
            ("CERT PEM", "KEY PEM secret")
        );
    }
    let raw = backends::raw(dir.path());
    assert!(!raw.windows(14).any(|w| w == b"KEY PEM secret"));
    let mut vault = Vault::new(1, &[9; 32]);
    vault.add(2, &[10; 32]);
    let store = backends::open(dir.path(), vault).unwrap();
    // The CA key and the vault check value.
    assert_eq!(store.rewrap_all().unwrap(), 2);
    drop(store);
    let store = backends::open(dir.path(), Vault::new(2, &[10; 32])).unwrap();
    assert_eq!(
        store.database_ca().unwrap().unwrap().1.as_str(),
        "KEY PEM secret"
    );
}

#[test]
fn managed_policy_versions_decide_what_the_engine_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.create_user("eve", "/", &[], NOW).unwrap();
    let tags = [("team".to_owned(), "db".to_owned())];
    let p = store
        .create_policy("Conn", "/app/", "{\"v\":1}", "connect", &tags, NOW)
        .unwrap();
    assert_eq!(p.default_version, "v1");
    assert_eq!(p.description, "connect");
    assert_eq!(p.tags, tags);
    store
        .attach_policy(PrincipalKind::User, "eve", &p.arn)
        .unwrap();
    assert_eq!(store.get_policy(&p.arn).unwrap().attachment_count, 1);
    let docs = |s: &Store| -> Vec<String> {
        s.identity_policies(PrincipalKind::User, "eve")
            .unwrap()
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    };
    // A new version that is not the default changes nothing.
    let v2 = store
        .create_policy_version(&p.arn, "{\"v\":2}", false, NOW + 1)
        .unwrap();
    assert_eq!(v2.version_id, "v2");
    assert_eq!(docs(&store), ["{\"v\":1}"]);
    store
        .set_default_policy_version(&p.arn, "v2", NOW + 2)
        .unwrap();
    assert_eq!(docs(&store), ["{\"v\":2}"]);
    assert_eq!(store.managed_policy(&p.arn).unwrap(), "{\"v\":2}");
    let got = store.get_policy(&p.arn).unwrap();
    assert_eq!((got.default_version.as_str(), got.updated), ("v2", NOW + 2));
    // The default cannot be deleted; others can; ids are never reused.
    assert!(matches!(
        store.delete_policy_version(&p.arn, "v2"),
        Err(StoreError::DeleteConflict(_))
    ));
    store.delete_policy_version(&p.arn, "v1").unwrap();
    assert!(matches!(
        store.get_policy_version(&p.arn, "v1"),
        Err(StoreError::NoSuchEntity { .. })
    ));
    for n in 3..=6 {
        let v = store
            .create_policy_version(&p.arn, "{}", n == 6, NOW)
            .unwrap();
        assert_eq!(v.version_id, format!("v{n}"));
    }
    assert!(matches!(
        store.create_policy_version(&p.arn, "{}", false, NOW),
        Err(StoreError::LimitExceeded(_))
    ));
    let versions = store.list_policy_versions(&p.arn).unwrap();
    assert_eq!(versions.len(), 5);
    assert_eq!(versions.iter().filter(|v| v.is_default).count(), 1);
    assert!(
        versions
            .iter()
            .any(|v| v.version_id == "v6" && v.is_default)
    );
    assert_eq!(docs(&store), ["{}"]);
    // Deleting is refused while attached, then while versioned.
    assert!(matches!(
        store.delete_policy(&p.arn),
        Err(StoreError::DeleteConflict(_))
    ));
    store
        .detach_policy(PrincipalKind::User, "eve", &p.arn)
        .unwrap();
    assert!(matches!(
        store.delete_policy(&p.arn),
        Err(StoreError::DeleteConflict(_))
    ));
    for v in ["v2", "v3", "v4", "v5"] {
        store.delete_policy_version(&p.arn, v).unwrap();
    }
    store.delete_policy(&p.arn).unwrap();
    assert!(store.list_policies().unwrap().is_empty());
    // The version table survives reopening (and is not backfilled again).
    let q = store
        .create_policy("Other", "/", "{\"o\":1}", "", &[], NOW)
        .unwrap();
    store
        .create_policy_version(&q.arn, "{\"o\":2}", true, NOW)
        .unwrap();
    store.delete_policy_version(&q.arn, "v1").unwrap();
    drop(store);
    let store = open(&dir);
    let versions = store.list_policy_versions(&q.arn).unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].version_id, "v2");
}

#[test]
fn groups_members_tags_and_role_updates() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.create_user("ann", "/", &[], NOW).unwrap();
    store.create_group("ops", "/priv/", NOW).unwrap();
    store.create_group("dev", "/", NOW).unwrap();
    store.add_user_to_group("ops", "ann").unwrap();
    assert_eq!(
        store.get_group("ops").unwrap().arn,
        format!("arn:aws:iam::{}:group/priv/ops", store.account_id())
    );
    let names = |g: Vec<latchkey_store::Group>| g.into_iter().map(|g| g.name).collect::<Vec<_>>();
    assert_eq!(names(store.list_groups().unwrap()), ["dev", "ops"]);
    assert_eq!(names(store.groups_of_user("ann").unwrap()), ["ops"]);
    assert_eq!(store.group_members("ops").unwrap()[0].name, "ann");
    assert!(matches!(
        store.delete_group("ops"),
        Err(StoreError::DeleteConflict(_))
    ));
    store.remove_user_from_group("ops", "ann").unwrap();
    assert!(matches!(
        store.remove_user_from_group("ops", "ann"),
        Err(StoreError::NoSuchEntity { .. })
    ));
    store
        .put_inline_policy(PrincipalKind::Group, "ops", "p", "{}")
        .unwrap();
    assert!(store.delete_group("ops").is_err());
    assert_eq!(
        store.inline_policies(PrincipalKind::Group, "ops").unwrap(),
        [("p".to_owned(), "{}".to_owned())]
    );
    store
        .delete_inline_policy(PrincipalKind::Group, "ops", "p")
        .unwrap();
    store.delete_group("ops").unwrap();
    assert!(store.get_group("ops").is_err());

    store
        .tag_user("ann", &[("a".into(), "1".into()), ("b".into(), "2".into())])
        .unwrap();
    store.untag_user("ann", &["A"]).unwrap();
    assert_eq!(
        store.get_user("ann").unwrap().tags,
        [("b".to_owned(), "2".to_owned())]
    );

    store
        .create_role(
            "r",
            "/",
            "{}",
            3600,
            "old",
            &[("k".into(), "v".into())],
            NOW,
        )
        .unwrap();
    store.untag_role("r", &["k"]).unwrap();
    store.update_role("r", None, Some(7200)).unwrap();
    let r = store.get_role("r").unwrap();
    assert_eq!(
        (r.description.as_str(), r.max_session_duration),
        ("old", 7200)
    );
    assert!(r.tags.is_empty());
    store.update_role("r", Some("new"), None).unwrap();
    assert_eq!(store.get_role("r").unwrap().description, "new");
    assert!(store.update_role("r", None, Some(60)).is_err());
    assert!(store.update_role("nobody", None, None).is_err());

    store.create_virtual_mfa("ann", "/").unwrap();
    assert_eq!(store.list_virtual_mfa_devices().unwrap().len(), 1);
}

/// Names are case-insensitive, so every spelling reaches the one entity:
/// a Deny put, attached or inherited through a group under another
/// spelling is among the policies evaluation reads.
#[test]
fn policies_and_memberships_under_any_spelling_reach_the_entity() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let deny =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
    store.create_user("mallory", "/", &[], NOW).unwrap();
    store
        .put_inline_policy(PrincipalKind::User, "MALLORY", "deny", deny)
        .unwrap();
    store.create_group("denygroup", "/", NOW).unwrap();
    store
        .put_inline_policy(PrincipalKind::Group, "DENYGROUP", "deny", deny)
        .unwrap();
    store.add_user_to_group("DenyGroup", "Mallory").unwrap();
    let (arn, _) = store
        .create_managed_policy("DenyAll", "/", deny, NOW)
        .unwrap();
    store
        .attach_policy(PrincipalKind::User, "MaLLoRy", &arn)
        .unwrap();
    let labels = |name: &str| -> Vec<String> {
        store
            .identity_policies(PrincipalKind::User, name)
            .unwrap()
            .into_iter()
            .map(|(label, _)| label)
            .collect()
    };
    let expected = ["user/mallory/deny", arn.as_str(), "group/denygroup/deny"];
    for spelling in ["mallory", "MALLORY", "Mallory"] {
        let found = labels(spelling);
        assert_eq!(found.len(), 3, "{spelling}: {found:?}");
        for e in expected {
            assert!(found.iter().any(|f| f == e), "{spelling}: {found:?}");
        }
    }
    // Listings agree whatever the spelling.
    for spelling in ["mallory", "MALLORY"] {
        assert_eq!(
            store
                .inline_policies(PrincipalKind::User, spelling)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .attached_policies(PrincipalKind::User, spelling)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.groups_of_user(spelling).unwrap().len(), 1);
        assert_eq!(
            store
                .get_inline_policy(PrincipalKind::User, spelling, "deny")
                .unwrap(),
            deny
        );
    }
    assert_eq!(store.group_members("DENYgroup").unwrap()[0].name, "mallory");
    let entities = store.policy_entities(&arn).unwrap();
    assert_eq!((entities.len(), entities[0].name.as_str()), (1, "mallory"));
    // No spelling lets a user out of a policy or group another spelling put
    // it in: they are one row each.
    assert!(matches!(
        store.delete_user("MALLORY"),
        Err(StoreError::DeleteConflict(_))
    ));
    store
        .delete_inline_policy(PrincipalKind::User, "Mallory", "deny")
        .unwrap();
    store
        .detach_policy(PrincipalKind::User, "mallORY", &arn)
        .unwrap();
    store
        .remove_user_from_group("denyGROUP", "MALLORY")
        .unwrap();
    assert_eq!(labels("mallory"), Vec::<String>::new());
    // A name that is no entity is NoSuchEntity, not an orphan row.
    for result in [
        store.put_inline_policy(PrincipalKind::User, "nobody", "p", deny),
        store.attach_policy(PrincipalKind::Role, "nobody", &arn),
        store.add_user_to_group("denygroup", "nobody"),
    ] {
        assert!(matches!(result, Err(StoreError::NoSuchEntity { .. })));
    }
    assert!(matches!(
        store.identity_policies(PrincipalKind::User, "nobody"),
        Err(StoreError::NoSuchEntity { .. })
    ));
}

/// A deleted entity's memberships and policies never pass to a new entity
/// of the same name under another spelling.
#[test]
fn recreated_entities_under_another_spelling_inherit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let allow =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    store.create_group("admins", "/", NOW).unwrap();
    store
        .put_inline_policy(PrincipalKind::Group, "admins", "all", allow)
        .unwrap();
    store.create_user("Dave", "/", &[], NOW).unwrap();
    store.add_user_to_group("admins", "dave").unwrap();
    store.delete_user("Dave").unwrap();
    store.create_user("dave", "/", &[], NOW).unwrap();
    assert!(store.groups_of_user("dave").unwrap().is_empty());
    assert!(store.groups_for_user("DAVE").unwrap().is_empty());
    assert!(
        store
            .identity_policies(PrincipalKind::User, "dave")
            .unwrap()
            .is_empty()
    );
    assert!(store.group_members("admins").unwrap().is_empty());

    // A role's policies under another spelling are the role's: deleting it
    // is refused while they are there.
    let (arn, _) = store
        .create_managed_policy("AllowAll", "/", allow, NOW)
        .unwrap();
    store
        .create_role("Deploy", "/", "{}", 3600, "", &[], NOW)
        .unwrap();
    store
        .attach_policy(PrincipalKind::Role, "DEPLOY", &arn)
        .unwrap();
    store
        .put_inline_policy(PrincipalKind::Role, "deploy", "all", allow)
        .unwrap();
    assert_eq!(
        store
            .identity_policies(PrincipalKind::Role, "Deploy")
            .unwrap()
            .len(),
        2
    );
    assert!(matches!(
        store.delete_role("Deploy"),
        Err(StoreError::DeleteConflict(_))
    ));
    store
        .detach_policy(PrincipalKind::Role, "deploy", &arn)
        .unwrap();
    assert!(matches!(
        store.delete_role("deploy"),
        Err(StoreError::DeleteConflict(_))
    ));
    store
        .delete_inline_policy(PrincipalKind::Role, "DePloY", "all")
        .unwrap();
    store.delete_role("DEPLOY").unwrap();
    store
        .create_role("DEPLOY", "/", "{}", 3600, "", &[], NOW)
        .unwrap();
    assert!(
        store
            .identity_policies(PrincipalKind::Role, "DEPLOY")
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get_policy(&arn).unwrap().attachment_count, 0);

    // Groups too.
    store.create_group("Ops", "/", NOW).unwrap();
    store.add_user_to_group("OPS", "DAVE").unwrap();
    assert!(matches!(
        store.delete_group("ops"),
        Err(StoreError::DeleteConflict(_))
    ));
    store.remove_user_from_group("ops", "dave").unwrap();
    store.delete_group("ops").unwrap();
}

/// Stores written before names were resolved get their rows repaired on
/// open: another spelling becomes the entity's, and rows of entities that
/// no longer exist (which a new namesake would inherit) go.
#[test]
fn stores_with_misspelt_or_orphan_rows_are_repaired_on_open() {
    if backends::is_postgres() {
        return; // Rows written by old SQLite builds; none on PostgreSQL.
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let deny =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
    let arn = {
        let store = open(&dir);
        store.create_user("mallory", "/", &[], NOW).unwrap();
        store.create_group("denygroup", "/", NOW).unwrap();
        store.create_group("admins", "/", NOW).unwrap();
        store
            .create_role("Deploy", "/", "{}", 3600, "", &[], NOW)
            .unwrap();
        let (arn, _) = store.create_managed_policy("Pol", "/", deny, NOW).unwrap();
        arn
    };
    {
        // What the old code wrote for requests spelling names differently,
        // and the rows it left behind for deleted entities ('dave', 'Gone').
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO inline_policies VALUES ('user', 'MALLORY', 'deny', '{deny}');
             INSERT INTO inline_policies VALUES ('user', 'mallory', 'old', '{{}}');
             INSERT INTO inline_policies VALUES ('user', 'Mallory', 'old', '{{\"newer\":1}}');
             INSERT INTO inline_policies VALUES ('role', 'gone', 'p', '{{}}');
             INSERT INTO attachments VALUES ('user', 'Mallory', '{arn}');
             INSERT INTO attachments VALUES ('user', 'mallory', '{arn}');
             INSERT INTO attachments VALUES ('role', 'DEPLOY', '{arn}');
             INSERT INTO attachments VALUES ('role', 'Gone', '{arn}');
             INSERT INTO group_members VALUES ('DenyGroup', 'MALLORY');
             INSERT INTO group_members VALUES ('admins', 'dave');
             INSERT INTO group_members VALUES ('nogroup', 'mallory');"
        ))
        .unwrap();
    }
    for _ in 0..2 {
        // Twice: the repair is idempotent.
        let store = open(&dir);
        let inline = store
            .inline_policies(PrincipalKind::User, "mallory")
            .unwrap();
        assert_eq!(
            inline,
            [
                ("deny".to_owned(), deny.to_owned()),
                ("old".to_owned(), "{\"newer\":1}".to_owned())
            ]
        );
        let labels: Vec<String> = store
            .identity_policies(PrincipalKind::User, "mallory")
            .unwrap()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(labels.len(), 3, "{labels:?}");
        assert_eq!(store.groups_for_user("mallory").unwrap(), ["denygroup"]);
        assert_eq!(
            store
                .attached_policies(PrincipalKind::Role, "deploy")
                .unwrap()
                .len(),
            1
        );
        // 'mallory' once and 'Deploy': the orphan 'Gone' is gone.
        assert_eq!(store.get_policy(&arn).unwrap().attachment_count, 2);
        // A new 'Dave' does not inherit the deleted dave's membership.
        store.create_user("Dave", "/", &[], NOW).unwrap();
        assert!(store.groups_of_user("dave").unwrap().is_empty());
        store.delete_user("dave").unwrap();
        drop(store);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let raw: Vec<String> = conn
            .prepare(
                "SELECT principal FROM inline_policies UNION ALL SELECT principal FROM attachments
                 UNION ALL SELECT grp || '/' || user FROM group_members ORDER BY 1",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            raw,
            [
                "Deploy",
                "denygroup/mallory",
                "mallory",
                "mallory",
                "mallory"
            ]
        );
    }
}

/// AWS: a trust policy naming a user or role by ARN names its unique id
/// once the user or role is deleted, so a namesake is not trusted.
#[test]
fn deleting_a_user_or_role_binds_trust_policies_to_its_unique_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let acct = store.account_id().to_owned();
    let old = store.create_user("olduser", "/", &[], NOW).unwrap();
    let chain = store
        .create_role("chain", "/", "{}", 3600, "", &[], NOW)
        .unwrap();
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":["arn:aws:iam::{acct}:user/olduser","arn:aws:iam::{acct}:role/chain","arn:aws:iam::{acct}:user/keep"]}},"Action":"sts:AssumeRole"}}]}}"#
    );
    store
        .create_role("trustsold", "/", &trust, 3600, "", &[], NOW)
        .unwrap();
    let single = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{acct}:user/OldUser"}},"Action":"sts:AssumeRole"}}}}"#
    );
    store
        .create_role("single", "/", &single, 3600, "", &[], NOW)
        .unwrap();
    store.delete_user("OLDUSER").unwrap();
    store.delete_role("chain").unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&store.get_role("trustsold").unwrap().trust_policy).unwrap();
    assert_eq!(
        doc["Statement"][0]["Principal"]["AWS"],
        serde_json::json!([old.id, chain.id, format!("arn:aws:iam::{acct}:user/keep")])
    );
    let doc: serde_json::Value =
        serde_json::from_str(&store.get_role("single").unwrap().trust_policy).unwrap();
    assert_eq!(doc["Statement"]["Principal"]["AWS"], old.id.as_str());
    // A refused delete changes nothing.
    store.create_user("olduser", "/", &[], NOW).unwrap();
    store.create_access_key("olduser", NOW).unwrap();
    let before = store.get_role("single").unwrap().trust_policy;
    let again = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{acct}:user/olduser"}},"Action":"sts:AssumeRole"}}}}"#
    );
    store.update_assume_role_policy("single", &again).unwrap();
    assert!(matches!(
        store.delete_user("olduser"),
        Err(StoreError::DeleteConflict(_))
    ));
    assert_eq!(store.get_role("single").unwrap().trust_policy, again);
    assert_ne!(before, again);
}

/// Policy names are not distinguished by case (red team, pass 2): `Pwn`
/// and `pwn` cannot both exist, and an inline policy is one policy under
/// any spelling of its name.
#[test]
fn policy_names_are_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    s.create_policy("Pwn", "/", doc, "", &[], 1).unwrap();
    assert!(matches!(
        s.create_policy("pwn", "/", doc, "", &[], 2),
        Err(StoreError::EntityAlreadyExists { .. })
    ));
    s.create_user("rx", "/", &[], 1).unwrap();
    s.put_inline_policy(PrincipalKind::User, "rx", "a", doc)
        .unwrap();
    s.put_inline_policy(PrincipalKind::User, "rx", "A", doc)
        .unwrap();
    assert_eq!(
        s.identity_policies(PrincipalKind::User, "rx")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.get_inline_policy(PrincipalKind::User, "rx", "a").unwrap(),
        doc
    );
    s.delete_inline_policy(PrincipalKind::User, "rx", "a")
        .unwrap();
    assert!(
        s.identity_policies(PrincipalKind::User, "rx")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn pooling_is_kept_with_the_registration_and_checked() {
    use latchkey_store::{PoolMode, Pooling, SessionState};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let registered = store.register_database(&orders(), NOW).unwrap();
    assert_eq!(registered.pooling, Pooling::default());
    let pooling = Pooling {
        mode: PoolMode::Transaction,
        user_modes: [("admin".to_owned(), PoolMode::Session)].into(),
        size: 7,
        reserve: 2,
        queue_timeout_ms: 1_500,
        session_state: SessionState::Refuse,
        ..Pooling::default()
    };
    store
        .update_database(&latchkey_store::Database {
            pooling: pooling.clone(),
            ..registered.clone()
        })
        .unwrap();
    assert_eq!(store.get_database("orders").unwrap().pooling, pooling);
    // MySQL keeps session pooling; a size of 0 is no pool.
    for bad in [
        latchkey_store::Database {
            engine: latchkey_store::Engine::Mysql,
            pooling: pooling.clone(),
            ..registered.clone()
        },
        latchkey_store::Database {
            pooling: Pooling {
                size: 0,
                ..pooling.clone()
            },
            ..registered.clone()
        },
    ] {
        assert!(matches!(
            store.update_database(&bad),
            Err(StoreError::InvalidInput(_))
        ));
    }
    assert_eq!(store.get_database("orders").unwrap().pooling, pooling);
}

#[test]
fn statement_policy_and_object_classification_tags() {
    use latchkey_store::{ObjectKind, ObjectTag, StatementPolicy};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let registered = store.register_database(&orders(), NOW).unwrap();
    assert_eq!(registered.statement_policy, StatementPolicy::Off);
    store
        .update_database(&latchkey_store::Database {
            statement_policy: StatementPolicy::Enforce,
            ..registered
        })
        .unwrap();
    assert_eq!(
        store.get_database("orders").unwrap().statement_policy,
        StatementPolicy::Enforce
    );

    let tag = |object: &str, column: &str, key: &str, value: &str| ObjectTag {
        database: "orders".into(),
        kind: ObjectKind::Table,
        schema: "public".into(),
        object: object.into(),
        column: column.into(),
        key: key.into(),
        value: value.into(),
    };
    store
        .tag_objects(&[
            tag("cards", "", "classification", "internal"),
            tag("cards", "pan", "classification", "restricted"),
        ])
        .unwrap();
    // A key set again takes the new value.
    store
        .tag_objects(&[tag("cards", "", "classification", "restricted")])
        .unwrap();
    assert_eq!(
        store.object_tags(Some("orders")).unwrap(),
        [
            tag("cards", "", "classification", "restricted"),
            tag("cards", "pan", "classification", "restricted"),
        ]
    );
    assert!(matches!(
        store.tag_objects(&[ObjectTag {
            database: "nope".into(),
            ..tag("cards", "", "k", "v")
        }]),
        Err(StoreError::NoSuchEntity { .. })
    ));
    assert!(matches!(
        store.tag_objects(&[tag("", "", "k", "v")]),
        Err(StoreError::InvalidInput(_))
    ));
    assert_eq!(
        store
            .untag_object(&tag("cards", "pan", "", ""), &["classification"])
            .unwrap(),
        1
    );
    assert_eq!(store.object_tags(None).unwrap().len(), 1);
    // Tags go with their database.
    store.remove_database("orders").unwrap();
    assert!(store.object_tags(None).unwrap().is_empty());
}

#[test]
fn firewall_profiles_learn_approve_and_change_mode() {
    use latchkey_store::{Fingerprint, FirewallMode, LearnedShape, ProfileMode, ShapeSource};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(matches!(
        store.configure_firewall("orders", FirewallMode::Alert, 60),
        Err(StoreError::NoSuchEntity { .. })
    ));
    store.register_database(&orders(), NOW).unwrap();
    let config = store
        .configure_firewall("orders", FirewallMode::Alert, 60)
        .unwrap();
    assert_eq!(
        (config.mode, config.learning_secs),
        (FirewallMode::Alert, 60)
    );
    let alice = "arn:aws:iam::123456789012:user/alice";
    let shape = |fp: u64, stacked: bool| LearnedShape {
        database: "orders".into(),
        principal: alice.into(),
        fingerprint: Some(Fingerprint(fp)),
        text: format!("SELECT {fp} FROM t WHERE id = ?"),
        stacked,
        union: false,
        at: NOW,
        learning_until: Some(NOW + 60),
    };
    // A fingerprint above i64::MAX survives the round trip.
    assert_eq!(
        store
            .learn_shapes(&[shape(u64::MAX - 1, false), shape(2, true), shape(2, false)])
            .unwrap(),
        2
    );
    // A profile alone.
    store
        .learn_shapes(&[LearnedShape {
            principal: "arn:aws:iam::123456789012:user/bob".into(),
            fingerprint: None,
            ..shape(0, false)
        }])
        .unwrap();
    let bob = store
        .firewall_profiles("orders", Some("arn:aws:iam::123456789012:user/bob"))
        .unwrap();
    assert!(bob[0].shapes.is_empty());
    let revision = store.firewall_configs().unwrap()[0].revision;
    assert!(revision > config.revision);
    let profiles = store.firewall_profiles("orders", Some(alice)).unwrap();
    assert_eq!(profiles.len(), 1);
    let p = &profiles[0];
    assert_eq!(
        (p.mode, p.learning_until, p.stacks, p.unions),
        (ProfileMode::Learn, Some(NOW + 60), true, false)
    );
    let mut fps: Vec<u64> = p.shapes.iter().map(|s| s.fingerprint.0).collect();
    fps.sort_unstable();
    assert_eq!(fps, [2, u64::MAX - 1]);

    // Approving a known shape marks it approved; a new one is added; a
    // new principal gets a profile.
    assert!(
        !store
            .approve_shape("orders", alice, Fingerprint(2), "", NOW + 5, None)
            .unwrap()
    );
    assert!(
        store
            .approve_shape(
                "orders",
                "arn:aws:iam::123456789012:role/app",
                Fingerprint(7),
                &"x".repeat(5000),
                NOW + 5,
                Some(NOW)
            )
            .unwrap()
    );
    let app = &store
        .firewall_profiles("orders", Some("arn:aws:iam::123456789012:role/app"))
        .unwrap()[0];
    assert_eq!(app.shapes[0].source, ShapeSource::Approved);
    assert_eq!(app.shapes[0].text.len(), latchkey_store::MAX_SHAPE_TEXT);
    let alice_shapes = &store.firewall_profiles("orders", Some(alice)).unwrap()[0].shapes;
    let two = alice_shapes.iter().find(|s| s.fingerprint.0 == 2).unwrap();
    assert_eq!(two.source, ShapeSource::Approved);
    assert_eq!(two.text, "SELECT 2 FROM t WHERE id = ?");

    store
        .set_profile_mode("orders", alice, ProfileMode::Block, Some(NOW), NOW)
        .unwrap();
    let p = &store.firewall_profiles("orders", Some(alice)).unwrap()[0];
    assert_eq!((p.mode, p.learning_until), (ProfileMode::Block, None));
    store
        .set_profile_mode("orders", alice, ProfileMode::Learn, None, NOW)
        .unwrap();
    let p = &store.firewall_profiles("orders", Some(alice)).unwrap()[0];
    assert_eq!((p.mode, p.learning_until), (ProfileMode::Learn, None));

    store.remove_database("orders").unwrap();
    assert!(store.firewall_configs().unwrap().is_empty());
    assert!(store.firewall_profiles("orders", None).unwrap().is_empty());
}

#[test]
fn secrets_are_sealed_versioned_and_updated_by_revision() {
    let dir = tempfile::tempdir().unwrap();
    let arn = "arn:aws:secretsmanager:us-east-1:1:secret:app/key-AbCdEf";
    let value = b"\0the-api-key-4d1c9e";
    {
        let store = open(&dir);
        store
            .create_secret(arn, "app/key", "{\"v\":1}", Some(("v1", value)))
            .unwrap();
        assert!(matches!(
            store.create_secret("arn:other", "app/key", "{}", None),
            Err(StoreError::EntityAlreadyExists { .. })
        ));
        let found = store.secret_by_name("app/key").unwrap().unwrap();
        assert_eq!((found.arn.as_str(), found.revision), (arn, 1));
        // A writer with a stale revision changes nothing.
        assert!(
            store
                .update_secret(arn, 1, "{\"v\":2}", Some(("v2", b"\0next")), &[])
                .unwrap()
        );
        assert!(
            !store
                .update_secret(arn, 1, "{\"v\":3}", Some(("v3", b"\0lost")), &[])
                .unwrap()
        );
        assert!(store.secret_value(arn, "v3").unwrap().is_none());
        let found = store.secret_by_arn(arn).unwrap().unwrap();
        assert_eq!((found.revision, found.document.as_str()), (2, "{\"v\":2}"));
        store
            .update_secret(arn, 2, "{\"v\":4}", None, &["v2".to_owned()])
            .unwrap();
        assert!(store.secret_value(arn, "v2").unwrap().is_none());
        store.rewrap_all().unwrap();
    }
    let bytes = backends::raw(dir.path());
    assert!(
        !bytes.windows(value.len()).any(|w| w == value),
        "secret value stored in clear in the store"
    );
    let store = open(&dir);
    assert_eq!(&*store.secret_value(arn, "v1").unwrap().unwrap(), value);
    assert_eq!(store.list_secrets().unwrap().len(), 1);
    store.purge_secret(arn).unwrap();
    assert!(store.secret_by_name("app/key").unwrap().is_none());
    assert!(store.secret_value(arn, "v1").unwrap().is_none());
}

#[test]
fn upstream_logins_round_trip_with_a_next_login() {
    use latchkey_store::{UpstreamLogin, UpstreamLogins};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.register_database(&orders(), NOW).unwrap();
    let login = |user: &str, password: &str| UpstreamLogin {
        user: user.into(),
        password: zeroize::Zeroizing::new(password.into()),
    };
    assert_eq!(store.database_logins("orders", "app").unwrap(), None);

    // A password logs in as the client user itself.
    store
        .set_database_password("orders", "app", "first-pw")
        .unwrap();
    assert_eq!(
        store.database_logins("orders", "app").unwrap().unwrap(),
        UpstreamLogins {
            current: login("app", "first-pw"),
            next: None
        }
    );

    // A rotation in progress: a next login, then it becomes current.
    store
        .set_database_next_login("orders", "app", Some(("app_clone", "clone-pw")))
        .unwrap();
    let logins = store.database_logins("orders", "app").unwrap().unwrap();
    assert_eq!(logins.current, login("app", "first-pw"));
    assert_eq!(logins.next, Some(login("app_clone", "clone-pw")));
    assert_eq!(
        store
            .database_password("orders", "app")
            .unwrap()
            .unwrap()
            .as_str(),
        "first-pw"
    );
    store
        .set_database_login("orders", "app", "app_clone", "clone-pw")
        .unwrap();
    assert_eq!(
        store.database_logins("orders", "app").unwrap().unwrap(),
        UpstreamLogins {
            current: login("app_clone", "clone-pw"),
            next: None
        }
    );
    assert_eq!(
        store
            .database_password("orders", "app")
            .unwrap()
            .unwrap()
            .as_str(),
        "clone-pw"
    );

    // A next login set, then cleared (a rotation abandoned).
    store
        .set_database_next_login("orders", "app", Some(("app", "second-pw")))
        .unwrap();
    assert_eq!(
        store
            .database_logins("orders", "app")
            .unwrap()
            .unwrap()
            .next,
        Some(login("app", "second-pw"))
    );
    store
        .set_database_next_login("orders", "app", None)
        .unwrap();
    assert_eq!(
        store.database_logins("orders", "app").unwrap().unwrap(),
        UpstreamLogins {
            current: login("app_clone", "clone-pw"),
            next: None
        }
    );

    // set_database_password clears a next login and logs in as the user.
    store
        .set_database_next_login("orders", "app", Some(("app", "third-pw")))
        .unwrap();
    store
        .set_database_password("orders", "app", "fourth-pw")
        .unwrap();
    assert_eq!(
        store.database_logins("orders", "app").unwrap().unwrap(),
        UpstreamLogins {
            current: login("app", "fourth-pw"),
            next: None
        }
    );

    // With no row yet, a next login is the current one too; clearing
    // one that is not there changes nothing.
    store
        .set_database_next_login("orders", "fresh", None)
        .unwrap();
    assert_eq!(store.database_logins("orders", "fresh").unwrap(), None);
    store
        .set_database_next_login("orders", "fresh", Some(("fresh", "fresh-pw")))
        .unwrap();
    assert_eq!(
        store.database_logins("orders", "fresh").unwrap().unwrap(),
        UpstreamLogins {
            current: login("fresh", "fresh-pw"),
            next: Some(login("fresh", "fresh-pw"))
        }
    );

    // An unknown database is refused either way.
    for result in [
        store.set_database_login("nope", "app", "app", "x"),
        store.set_database_next_login("nope", "app", Some(("app", "x"))),
        store.set_database_next_login("nope", "app", None),
    ] {
        assert!(matches!(result, Err(StoreError::NoSuchEntity { .. })));
    }

    // Debug never shows a password.
    let shown = format!(
        "{:?}",
        store.database_logins("orders", "fresh").unwrap().unwrap()
    );
    assert!(
        shown.contains("fresh") && !shown.contains("fresh-pw"),
        "{shown}"
    );

    // Removing the database removes its logins.
    store.remove_database("orders").unwrap();
    store.register_database(&orders(), NOW).unwrap();
    assert_eq!(store.database_logins("orders", "app").unwrap(), None);
}

#[test]
fn upstream_logins_are_sealed_and_rewrapped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        store.register_database(&orders(), NOW).unwrap();
        store
            .set_database_login("orders", "app", "app_clone", "current-secret-1")
            .unwrap();
        store
            .set_database_next_login("orders", "app", Some(("app", "next-secret-22")))
            .unwrap();
    }
    let bytes = backends::raw(dir.path());
    for secret in [&b"current-secret-1"[..], b"next-secret-22"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "an upstream password stored in clear in the store"
        );
    }
    // A sealed next password does not open as the current one (its own
    // context): swapping the blobs in the file is noticed.
    backends::sql(
        dir.path(),
        "UPDATE database_passwords SET secret = next_secret, next_secret = secret",
    );
    assert!(open(&dir).database_logins("orders", "app").is_err());
    backends::sql(
        dir.path(),
        "UPDATE database_passwords SET secret = next_secret, next_secret = secret",
    );

    let mut vault = Vault::new(1, &[9; 32]);
    vault.add(2, &[10; 32]);
    let store = backends::open(dir.path(), vault).unwrap();
    // The current and next passwords and the vault check value.
    assert_eq!(store.rewrap_all().unwrap(), 3);
    drop(store);
    let store = backends::open(dir.path(), Vault::new(2, &[10; 32])).unwrap();
    let logins = store.database_logins("orders", "app").unwrap().unwrap();
    assert_eq!(
        (
            logins.current.user.as_str(),
            logins.current.password.as_str()
        ),
        ("app_clone", "current-secret-1")
    );
    let next = logins.next.unwrap();
    assert_eq!(
        (next.user.as_str(), next.password.as_str()),
        ("app", "next-secret-22")
    );
    // A row without a next login rewraps too (its NULL is skipped).
    store
        .set_database_next_login("orders", "app", None)
        .unwrap();
    let mut vault = Vault::new(2, &[10; 32]);
    vault.add(3, &[11; 32]);
    drop(store);
    let store = backends::open(dir.path(), vault).unwrap();
    assert_eq!(store.rewrap_all().unwrap(), 2);
}

#[test]
fn kms_key_material_is_sealed_versioned_and_purged_with_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
    let v1 = b"\x01kms-material-version-one-32byte";
    let v2 = b"\x02kms-material-version-two-32byte";
    {
        let store = open(&dir);
        store.create_kms_key(id, "{\"v\":1}", v1).unwrap();
        assert!(matches!(
            store.create_kms_key(id, "{}", v2),
            Err(StoreError::EntityAlreadyExists { .. })
        ));
        assert!(
            store
                .update_kms_key(id, 1, "{\"v\":2}", Some((2, v2)))
                .unwrap()
        );
        // A stale writer changes nothing, its material included.
        assert!(
            !store
                .update_kms_key(id, 1, "{\"v\":3}", Some((3, b"lost")))
                .unwrap()
        );
        assert!(store.kms_key_material(id, 3).unwrap().is_none());
        let key = store.kms_key(id).unwrap().unwrap();
        assert_eq!((key.revision, key.document.as_str()), (2, "{\"v\":2}"));
        store.create_kms_alias("alias/app", id, NOW).unwrap();
        assert!(matches!(
            store.create_kms_alias("alias/app", "other", NOW),
            Err(StoreError::EntityAlreadyExists { .. })
        ));
        assert!(store.update_kms_alias("alias/app", id, NOW + 1).unwrap());
        assert!(!store.update_kms_alias("alias/none", id, NOW).unwrap());
        store.create_kms_alias("alias/other", id, NOW).unwrap();
        assert!(store.delete_kms_alias("alias/other").unwrap());
        assert!(!store.delete_kms_alias("alias/other").unwrap());
        assert_eq!(
            store.kms_alias("alias/app").unwrap().unwrap().updated,
            NOW + 1
        );
        store.rewrap_all().unwrap();
    }
    let bytes = backends::raw(dir.path());
    for m in [&v1[..], &v2[..]] {
        assert!(
            !bytes.windows(m.len()).any(|w| w == m),
            "key material stored in clear in the store"
        );
    }
    let store = open(&dir);
    assert_eq!(&*store.kms_key_material(id, 1).unwrap().unwrap(), v1);
    assert_eq!(&*store.kms_key_material(id, 2).unwrap().unwrap(), v2);
    assert_eq!(store.list_kms_keys().unwrap().len(), 1);
    assert_eq!(store.list_kms_aliases().unwrap().len(), 1);
    store.purge_kms_key(id).unwrap();
    assert!(store.kms_key(id).unwrap().is_none());
    assert!(store.kms_key_material(id, 1).unwrap().is_none());
    assert!(store.list_kms_aliases().unwrap().is_empty());
}

#[test]
fn parameter_values_are_sealed_versioned_and_written_by_one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = b"parameter-value-version-one-in-clear";
    let v2 = b"parameter-value-version-two-in-clear";
    {
        let store = open(&dir);
        store
            .create_parameter("/app/db/url", "{\"v\":1}", 1, v1)
            .unwrap();
        assert!(matches!(
            store.create_parameter("/app/db/url", "{}", 1, v2),
            Err(StoreError::EntityAlreadyExists { .. })
        ));
        assert!(
            store
                .update_parameter("/app/db/url", 1, "{\"v\":2}", Some((2, v2)), &[])
                .unwrap()
        );
        // A stale writer changes nothing, its value included.
        assert!(
            !store
                .update_parameter("/app/db/url", 1, "{\"v\":3}", Some((3, b"lost")), &[1])
                .unwrap()
        );
        assert!(store.parameter_value("/app/db/url", 3).unwrap().is_none());
        assert!(store.parameter_value("/app/db/url", 1).unwrap().is_some());
        store.create_parameter("/app/db", "{}", 1, b"x").unwrap();
        store.create_parameter("/apple", "{}", 1, b"x").unwrap();
        store.create_parameter("/App/x", "{}", 1, b"x").unwrap();
        let names = |prefix: &str| -> Vec<String> {
            store
                .list_parameters(prefix)
                .unwrap()
                .into_iter()
                .map(|p| p.name)
                .collect()
        };
        assert_eq!(names("/app/"), ["/app/db", "/app/db/url"]);
        assert_eq!(names("/app"), ["/app/db", "/app/db/url", "/apple"]);
        assert_eq!(names("").len(), 4);
        store.rewrap_all().unwrap();
    }
    let bytes = backends::raw(dir.path());
    for v in [&v1[..], &v2[..]] {
        assert!(
            !bytes.windows(v.len()).any(|w| w == v),
            "parameter value stored in clear in the store"
        );
    }
    let store = open(&dir);
    let p = store.parameter("/app/db/url").unwrap().unwrap();
    assert_eq!((p.revision, p.document.as_str()), (2, "{\"v\":2}"));
    assert_eq!(
        &*store.parameter_value("/app/db/url", 2).unwrap().unwrap(),
        v2
    );
    assert!(
        store
            .update_parameter("/app/db/url", 2, "{\"v\":4}", None, &[1])
            .unwrap()
    );
    assert!(store.parameter_value("/app/db/url", 1).unwrap().is_none());
    assert!(store.delete_parameter("/app/db/url").unwrap());
    assert!(!store.delete_parameter("/app/db/url").unwrap());
    assert!(store.parameter("/app/db/url").unwrap().is_none());
    assert!(store.parameter_value("/app/db/url", 2).unwrap().is_none());
}

#[test]
fn last_uses_only_move_forward_and_go_with_their_entity() {
    use latchkey_store::{AdvisorJob, CredentialLastUse, LastAccess};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let user = store.create_user("Alice", "/", &[], 1).unwrap();
    let (key, _) = store.create_access_key("alice", 1).unwrap();
    let used = |principal: &str, action: &str, at: i64| LastAccess {
        principal: principal.into(),
        action: action.into(),
        resource: "*".into(),
        at,
    };
    let key_used = |id: &str, at: i64, service: &str| CredentialLastUse {
        id: id.into(),
        at,
        service: service.into(),
    };
    store
        .record_usage(
            &[
                used(&user.arn, "iam:GetUser", 200),
                used(&user.arn, "sts:AssumeRole", 50),
            ],
            &[
                key_used(&key.id, 200, "iam"),
                key_used(&user.arn, 200, "iam"),
            ],
        )
        .unwrap();
    // An older use (a rebuild racing the live stream) changes nothing; a
    // newer one moves the time and the service.
    let other_spelling = user.arn.replace("Alice", "ALICE");
    store
        .record_usage(
            &[
                used(&other_spelling, "IAM:GETUSER", 100),
                used(&user.arn, "sts:AssumeRole", 300),
            ],
            &[key_used(&key.id, 100, "sts"), key_used(&key.id, 250, "kms")],
        )
        .unwrap();
    let rows = store.last_accesses(&[&user.arn, &other_spelling]).unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.action.as_str(), r.at))
            .collect::<Vec<_>>(),
        [("iam:GetUser", 200), ("sts:AssumeRole", 300)]
    );
    assert_eq!(
        store.credential_last_use(&key.id).unwrap(),
        Some(key_used(&key.id, 250, "kms"))
    );
    assert_eq!(store.credential_last_uses().unwrap().len(), 2);
    // Deleting the key, then the user, forgets their uses.
    assert_eq!(store.deleted_access_key(&key.id).unwrap(), None);
    store.delete_access_key(&key.id).unwrap();
    assert_eq!(store.credential_last_use(&key.id).unwrap(), None);
    // A deleted key is remembered as deleted, not as never issued.
    let (owner, when) = store.deleted_access_key(&key.id).unwrap().unwrap();
    assert!(owner.eq_ignore_ascii_case("alice"), "{owner}");
    assert!(when > 1_700_000_000);
    assert_eq!(
        store.deleted_access_key("AKIANEVERISSUED00000").unwrap(),
        None
    );
    store.delete_user("alice").unwrap();
    assert!(store.last_accesses(&[&user.arn]).unwrap().is_empty());
    assert!(store.credential_last_uses().unwrap().is_empty());
    // Jobs expire; the credential report is one, replaced.
    let job = |id: &str, created: i64| AdvisorJob {
        id: id.into(),
        arn: user.arn.clone(),
        granularity: "SERVICE_LEVEL".into(),
        created,
        report: "{}".into(),
    };
    // A principal's jobs go with it (a new one of its name sees none).
    let dora = store.create_user("dora", "/prod/", &[], NOW).unwrap();
    let dora_job = AdvisorJob {
        arn: dora.arn.clone(),
        ..job("dora", 100)
    };
    store.put_advisor_job(&dora_job, 50).unwrap();
    assert!(store.advisor_job("dora").unwrap().is_some());
    store.delete_user("dora").unwrap();
    assert_eq!(store.advisor_job("dora").unwrap(), None);
    store.put_advisor_job(&job("old", 10), 0).unwrap();
    store.put_advisor_job(&job("new", 100), 50).unwrap();
    assert_eq!(store.advisor_job("old").unwrap(), None);
    assert_eq!(store.advisor_job("new").unwrap(), Some(job("new", 100)));
    // A flood of jobs about one subject replaces only that subject's
    // oldest; another subject's job and another kind of job stay.
    let about = |id: &str, arn: &str, kind: &str, created| latchkey_store::AdvisorJob {
        id: id.into(),
        arn: arn.into(),
        granularity: kind.into(),
        created,
        report: "{}".into(),
    };
    let other = "arn:aws:iam::123456789012:user/flooder";
    store
        .put_advisor_job(&about("gen", other, "POLICY_GENERATION", 100), 50)
        .unwrap();
    for n in 0..latchkey_store::MAX_ADVISOR_JOBS_PER_SUBJECT + 5 {
        store
            .put_advisor_job(
                &about(&format!("flood{n}"), other, "SERVICE_LEVEL", 101 + n),
                50,
            )
            .unwrap();
    }
    assert!(
        store.advisor_job("new").unwrap().is_some(),
        "another subject's job stays"
    );
    assert!(
        store.advisor_job("gen").unwrap().is_some(),
        "another kind stays"
    );
    assert!(
        store.advisor_job("flood0").unwrap().is_none(),
        "the flooder's oldest go"
    );
    let kept = store.advisor_jobs("SERVICE_LEVEL", Some(other)).unwrap();
    assert_eq!(
        kept.len() as i64,
        latchkey_store::MAX_ADVISOR_JOBS_PER_SUBJECT
    );
    assert_eq!(
        store.advisor_jobs("POLICY_GENERATION", None).unwrap(),
        [about("gen", other, "POLICY_GENERATION", 100)]
    );
    assert_eq!(store.credential_report().unwrap(), None);
    store.put_credential_report(5, "user,arn\n").unwrap();
    store.put_credential_report(6, "user,arn\nx,y\n").unwrap();
    assert_eq!(
        store.credential_report().unwrap(),
        Some((6, "user,arn\nx,y\n".into()))
    );
    store
        .record_usage(&[used(&user.arn, "iam:GetUser", 1)], &[])
        .unwrap();
    store.clear_usage().unwrap();
    assert!(store.last_accesses(&[&user.arn]).unwrap().is_empty());
}

#[test]
fn login_profiles_keep_sealed_hashes_a_bounded_history_and_block_user_deletion() {
    use latchkey_store::{PasswordHash, PasswordPolicy};
    let dir = tempfile::tempdir().unwrap();
    let hash = |pw: &str, salt: u8| PasswordHash::new(pw, &[salt; 16]).unwrap();
    {
        let store = open(&dir);
        store.create_user("Carol", "/", &[], NOW).unwrap();
        assert!(matches!(
            store.create_login_profile("nobody", &hash("x", 1), false, NOW),
            Err(StoreError::NoSuchEntity { .. })
        ));
        let p = store
            .create_login_profile("carol", &hash("first-Pass1", 1), true, NOW)
            .unwrap();
        assert_eq!((p.user.as_str(), p.reset_required), ("Carol", true));
        assert!(matches!(
            store.create_login_profile("CAROL", &hash("other", 2), false, NOW),
            Err(StoreError::EntityAlreadyExists { .. })
        ));
        assert!(matches!(
            store.delete_user("carol"),
            Err(StoreError::DeleteConflict("delete login profile"))
        ));
        // Thirty changes: the history keeps the newest 24 earlier ones.
        for i in 0..30u8 {
            store
                .update_login_profile(
                    "carol",
                    Some(&hash(&format!("pass-{i}"), i)),
                    Some(false),
                    NOW + i64::from(i) + 1,
                )
                .unwrap();
        }
        let lp = store.login_password("carol", 100).unwrap().unwrap();
        assert!(lp.hash.verify("pass-29"));
        assert_eq!(lp.previous.len(), 24);
        assert!(lp.previous[0].verify("pass-28"));
        assert!(lp.previous[23].verify("pass-5"));
        assert_eq!(lp.profile.changed, NOW + 30);
        assert!(!lp.profile.reset_required);
        assert_eq!(
            store
                .login_password("carol", 3)
                .unwrap()
                .unwrap()
                .previous
                .len(),
            3
        );
        // Only the flag: the password and its time stay.
        let p = store
            .update_login_profile("carol", None, Some(true), NOW + 99)
            .unwrap();
        assert_eq!((p.changed, p.reset_required), (NOW + 30, true));
        store.record_password_use("carol", NOW + 50).unwrap();
        store.record_password_use("carol", NOW + 40).unwrap();
        assert_eq!(
            store.login_profile("CAROL").unwrap().unwrap().last_used,
            Some(NOW + 50)
        );
        // No hash is stored in the clear.
        let raw = backends::raw(dir.path());
        assert!(!raw.windows(9).any(|w| w == b"$argon2id"));

        assert_eq!(store.password_policy().unwrap(), None);
        let policy = PasswordPolicy {
            minimum_length: 14,
            require_symbols: true,
            require_numbers: false,
            require_uppercase: true,
            require_lowercase: false,
            allow_users_to_change: true,
            max_age_days: Some(90),
            reuse_prevention: Some(24),
            hard_expiry: false,
        };
        store.put_password_policy(&policy).unwrap();
        assert_eq!(store.password_policy().unwrap(), Some(policy));
        assert!(store.delete_password_policy().unwrap());
        assert!(!store.delete_password_policy().unwrap());
    }
    // Master-key rotation re-wraps the hash and the history.
    let mut vault = Vault::new(1, &[9; 32]);
    vault.add(2, &[10; 32]);
    let store = backends::open(dir.path(), vault).unwrap();
    assert_eq!(store.rewrap_all().unwrap(), 1 + 1 + 24);
    drop(store);
    let store = backends::open(dir.path(), Vault::new(2, &[10; 32])).unwrap();
    let lp = store.login_password("carol", 24).unwrap().unwrap();
    assert!(lp.hash.verify("pass-29") && lp.previous[0].verify("pass-28"));
    store.delete_login_profile("carol").unwrap();
    assert!(store.login_password("carol", 24).unwrap().is_none());
    assert!(matches!(
        store.delete_login_profile("carol"),
        Err(StoreError::NoSuchEntity { .. })
    ));
    store.delete_user("carol").unwrap();
}

/// Red team (console round B): a second database claiming an endpoint
/// took its logins; tag keys differing only in case hid a protected tag;
/// `..` made a database no URL could name.
#[test]
fn endpoints_are_one_database_s_and_tag_keys_differ_in_more_than_case() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let registered = store.register_database(&orders(), NOW).unwrap();
    let invalid = |r: Result<latchkey_store::Database, StoreError>| match r {
        Err(StoreError::InvalidInput(why)) => why,
        other => panic!("{other:?}"),
    };
    let taken = registered.endpoints[0].to_ascii_uppercase();
    let thief = latchkey_store::Database {
        name: "aaa-evil".into(),
        endpoints: vec![taken.clone()],
        ..orders()
    };
    assert!(invalid(store.register_database(&thief, NOW)).contains("already another database's"));
    // Nor by editing another database to add it.
    store
        .register_database(
            &latchkey_store::Database {
                name: "billing".into(),
                endpoints: vec!["billing.internal".into()],
                ..orders()
            },
            NOW,
        )
        .unwrap();
    let edited = latchkey_store::Database {
        name: "billing".into(),
        endpoints: vec!["billing.internal".into(), taken],
        ..orders()
    };
    assert!(invalid(store.update_database(&edited)).contains("already another database's"));
    // A database keeps its own endpoints when edited.
    store.update_database(&orders()).unwrap();
    // Another engine may use the same host name (its own gateway port).
    store
        .register_database(
            &latchkey_store::Database {
                name: "orders-mysql".into(),
                engine: latchkey_store::Engine::Mysql,
                ..orders()
            },
            NOW,
        )
        .unwrap();
    let shadowed = latchkey_store::Database {
        tags: vec![
            ("team".into(), "blue".into()),
            ("Team".into(), "red".into()),
        ],
        ..orders()
    };
    assert!(invalid(store.update_database(&shadowed)).contains("differ in more than case"));
    // Red team round A: what AWS could not produce, or no server is.
    let with = |f: &dyn Fn(&mut latchkey_store::Database)| {
        let mut db = latchkey_store::Database {
            name: "checked".into(),
            endpoints: vec!["checked.internal".into()],
            ..orders()
        };
        f(&mut db);
        store.register_database(&db, NOW)
    };
    for endpoint in ["*", "*.example.com", "é.example", ".lead", "trail."] {
        assert!(invalid(with(&|d| d.endpoints = vec![endpoint.into()])).contains("endpoint"));
    }
    for (k, v) in [
        ("aws:team", "x"),
        ("", "x"),
        (&*"k".repeat(129), "x"),
        ("k", &*"v".repeat(257)),
    ] {
        assert!(invalid(with(&|d| d.tags = vec![(k.into(), v.into())])).contains("tags are"));
    }
    for upstream in ["127.0.0.1:0", "[::1]:99999", "host:", ":5432", "host"] {
        assert!(invalid(with(&|d| d.upstream = upstream.into())).contains("upstream"));
    }
    with(&|d| d.upstream = "/run/postgresql/.s.PGSQL.5432".into()).unwrap();
    for name in [".", ".."] {
        let dots = latchkey_store::Database {
            name: name.into(),
            endpoints: vec!["dots.internal".into()],
            ..orders()
        };
        assert!(invalid(store.register_database(&dots, NOW)).contains("database names"));
    }
}

#[test]
fn leases_go_to_one_holder_and_move_when_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(store.hold_lease("rotation", "node-a", NOW, 60).unwrap());
    assert!(
        !store
            .hold_lease("rotation", "node-b", NOW + 10, 60)
            .unwrap()
    );
    // Renewed by its holder: now until NOW + 90.
    assert!(
        store
            .hold_lease("rotation", "node-a", NOW + 30, 60)
            .unwrap()
    );
    assert!(
        !store
            .hold_lease("rotation", "node-b", NOW + 89, 60)
            .unwrap()
    );
    // Its holder gone quiet, the lease moves.
    assert!(
        store
            .hold_lease("rotation", "node-b", NOW + 90, 60)
            .unwrap()
    );
    assert!(
        !store
            .hold_lease("rotation", "node-a", NOW + 100, 60)
            .unwrap()
    );
    // Leases are independent.
    assert!(store.hold_lease("other", "node-a", NOW + 100, 60).unwrap());
}

#[test]
fn nodes_report_themselves_and_the_agreed_sealing_key_holds_on_every_opening() {
    use latchkey_store::NodeReport;
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = ([9u8; 32], [10u8; 32]);
    let both = || {
        let mut v = Vault::new(1, &one);
        v.add(2, &two);
        v
    };
    let store = open(&dir);
    assert_eq!(store.sealing_master_key().unwrap(), None);
    let report = |node: &str, seen| NodeReport {
        node: node.into(),
        started: NOW,
        seen,
        version: "0.1.0".into(),
        master_keys: vec![
            (1, latchkey_store::vault::fingerprint(1, &one)),
            (2, latchkey_store::vault::fingerprint(2, &two)),
        ],
        sealing_key: 2,
        sealed: 7,
        posture: format!(r#"{{"node":"{node}","detection":true}}"#),
    };
    store.report_node(&report("b", NOW)).unwrap();
    store.report_node(&report("a", NOW)).unwrap();
    store.report_node(&report("a", NOW + 5)).unwrap();
    let nodes = store.nodes().unwrap();
    assert_eq!(nodes, [report("a", NOW + 5), report("b", NOW)]);
    assert!(store.forget_node("b").unwrap());
    assert!(!store.forget_node("b").unwrap());
    assert_eq!(store.nodes().unwrap().len(), 1);

    // Agreed on key 1: a node holding keys 1 and 2 seals with 1, so that
    // a node holding only key 1 opens what it seals.
    store.set_sealing_master_key(1).unwrap();
    assert_eq!(store.sealing_master_key().unwrap(), Some(1));
    store.set_vault(both()).unwrap();
    store.create_user("erin", "/", &[], NOW).unwrap();
    let (key, secret) = store.create_access_key("erin", NOW).unwrap();
    drop(store);
    let only_one = backends::open(dir.path(), Vault::new(1, &one)).unwrap();
    assert_eq!(
        only_one
            .access_key_secret(&key.id)
            .unwrap()
            .unwrap()
            .1
            .as_str(),
        secret.as_str()
    );
    drop(only_one);
    // Opening with both keys seals with the agreed one too.
    let reopened = backends::open(dir.path(), both()).unwrap();
    let (key, secret) = reopened.create_access_key("erin", NOW).unwrap();
    drop(reopened);
    let only_one = backends::open(dir.path(), Vault::new(1, &one)).unwrap();
    assert_eq!(
        only_one
            .access_key_secret(&key.id)
            .unwrap()
            .unwrap()
            .1
            .as_str(),
        secret.as_str()
    );
    // Agreed on key 2: a node without it cannot take the vault.
    only_one.set_sealing_master_key(2).unwrap();
    assert!(matches!(
        only_one.set_vault(Vault::new(1, &one)),
        Err(StoreError::SealingKeyMissing(2))
    ));
    drop(only_one);
    assert!(matches!(
        backends::open(dir.path(), Vault::new(1, &one)),
        Err(StoreError::SealingKeyMissing(2))
    ));
}

#[test]
fn blocked_addresses_extend_and_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(store.block_address("203.0.113.9", NOW + 60, NOW).unwrap());
    assert!(store.block_address("2001:db8::1", NOW + 10, NOW).unwrap());
    // A shorter block of the same address does not shorten it.
    assert!(store.block_address("203.0.113.9", NOW + 30, NOW).unwrap());
    assert_eq!(
        store.blocked_addresses(NOW).unwrap(),
        [
            ("2001:db8::1".to_owned(), NOW + 10),
            ("203.0.113.9".to_owned(), NOW + 60)
        ]
    );
    assert!(store.block_address("203.0.113.9", NOW + 90, NOW).unwrap());
    // Run out: forgotten.
    assert_eq!(
        store.blocked_addresses(NOW + 10).unwrap(),
        [("203.0.113.9".to_owned(), NOW + 90)]
    );
    assert!(store.blocked_addresses(NOW + 90).unwrap().is_empty());
    // Lifted early: gone, and the failures seen until then block no
    // more; a later failure blocks again.
    assert!(store.block_address("198.51.100.4", NOW + 600, NOW).unwrap());
    assert!(store.unblock_address("198.51.100.4", NOW + 5).unwrap());
    assert!(!store.unblock_address("198.51.100.4", NOW + 6).unwrap());
    assert!(store.blocked_addresses(NOW + 6).unwrap().is_empty());
    assert!(
        !store
            .block_address("198.51.100.4", NOW + 600, NOW + 5)
            .unwrap()
    );
    assert!(store.blocked_addresses(NOW + 6).unwrap().is_empty());
    assert!(
        store
            .block_address("198.51.100.4", NOW + 600, NOW + 7)
            .unwrap()
    );
    assert_eq!(
        store.blocked_addresses(NOW + 8).unwrap(),
        [("198.51.100.4".to_owned(), NOW + 600)]
    );
    drop(store);
    assert!(open(&dir).blocked_addresses(NOW + 600).unwrap().is_empty());
}

#[test]
fn nodes_exchange_session_gauges_and_the_dead_ones_stop_counting() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let g = |kind: &str, key: &str, n: i64| (kind.to_owned(), key.to_owned(), n);
    let sorted = |mut v: Vec<(String, String, i64)>| {
        v.sort();
        v
    };
    // Node a publishes; node b sees it, and b's own never comes back to b.
    assert!(
        store
            .exchange_gauges(
                "a",
                NOW,
                true,
                &[g("postgres/principal", "p1", 2), g("postgres/total", "", 2)],
                NOW - 5
            )
            .unwrap()
            .is_empty()
    );
    let seen_by_b = store
        .exchange_gauges("b", NOW, true, &[g("postgres/principal", "p1", 1)], NOW - 5)
        .unwrap();
    assert_eq!(
        sorted(seen_by_b),
        [g("postgres/principal", "p1", 2), g("postgres/total", "", 2)]
    );
    // a's change and removal; a and b summed for a third node.
    store
        .exchange_gauges(
            "a",
            NOW + 1,
            false,
            &[g("postgres/principal", "p1", 0), g("postgres/total", "", 1)],
            NOW - 4,
        )
        .unwrap();
    assert_eq!(
        sorted(
            store
                .exchange_gauges("c", NOW + 1, true, &[], NOW - 4)
                .unwrap()
        ),
        [g("postgres/principal", "p1", 1), g("postgres/total", "", 1)]
    );
    // a and b go quiet: past the window their sessions stop counting.
    assert_eq!(
        sorted(
            store
                .exchange_gauges("c", NOW + 10, false, &[], NOW + 5)
                .unwrap()
        ),
        []
    );
    // A fresh start replaces everything a node published before.
    store
        .exchange_gauges("a", NOW + 11, true, &[g("mysql/total", "", 4)], NOW + 5)
        .unwrap();
    assert_eq!(
        store
            .exchange_gauges("c", NOW + 11, false, &[], NOW + 5)
            .unwrap(),
        [g("mysql/total", "", 4)]
    );
}

#[test]
fn nodes_gone_for_an_hour_leave_the_gauges() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let total = |n: i64| vec![("postgres/total".to_owned(), String::new(), n)];
    store
        .exchange_gauges("old", NOW, true, &total(5), NOW - 5)
        .unwrap();
    // An hour later a node starts; the old node's rows go.
    store
        .exchange_gauges("new", NOW + 3601, true, &[], NOW + 3598)
        .unwrap();
    // Even were "old" counted alive again by a generous window, it is gone.
    assert!(
        store
            .exchange_gauges("other", NOW + 3601, true, &[], 0)
            .unwrap()
            .is_empty()
    );
}

fn shipped(
    sequence: u64,
    segment: u64,
    name: &str,
    principal: &str,
    error: bool,
) -> latchkey_store::ShippedRecord {
    latchkey_store::ShippedRecord {
        sequence,
        segment,
        time_ms: 1_000 * i64::try_from(sequence).unwrap(),
        name: name.to_owned(),
        principal: Some(principal.to_owned()),
        access_key_id: None,
        database: (name == "Statement").then(|| "orders".to_owned()),
        source_ip: Some("10.0.0.7".to_owned()),
        error,
        line: format!("{{\"sequence\":{sequence},\"x\":\"\\u0000é\"}}"),
    }
}

#[test]
fn shipped_trails_are_kept_per_node_in_order_and_found_by_filter() {
    use latchkey_store::{AuditQuery, ShippedTrail};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(store.shipped_head("a").unwrap().is_none());
    let batch: Vec<_> = (1..=3)
        .map(|n| shipped(n, 1, "Statement", "arn:p", n == 2))
        .collect();
    store
        .ship_audit("a", "00000000000000aa", &batch, &[(1, "digest one".into())])
        .unwrap();
    // Shipping again (a round that resumed) keeps what was there.
    let mut again = batch.clone();
    again[0].line = "changed".into();
    again.push(shipped(4, 4, "Connect", "arn:q", false));
    store
        .ship_audit("a", "00000000000000aa", &again, &[])
        .unwrap();
    store
        .ship_audit(
            "b",
            "00000000000000bb",
            &[shipped(1, 1, "Connect", "arn:p", false)],
            &[],
        )
        .unwrap();
    let head = store.shipped_head("a").unwrap().unwrap();
    assert_eq!(
        (
            head.trail_id.as_str(),
            head.first_sequence,
            head.last_sequence,
            head.last_digest
        ),
        ("00000000000000aa", 1, 4, 1)
    );
    assert_eq!(store.shipped_heads().unwrap().len(), 2);
    assert_eq!(store.shipped_record_nodes().unwrap(), ["a", "b"]);
    // Another trail of the same node is refused until the old is forgotten.
    assert!(matches!(
        store.ship_audit("a", "00000000000000cc", &batch, &[]),
        Err(StoreError::OtherTrail { .. })
    ));
    let trail = store.shipped_trail("a").unwrap();
    assert_eq!(trail.records.len(), 4);
    // Every field comes back as shipped (the first as first shipped).
    assert_eq!(trail.records[0], batch[0]);
    assert_eq!(trail.records[3], again[3]);
    assert_eq!(trail.digests, vec![(1, "digest one".to_owned())]);
    // A page at a time, after a sequence, in order.
    let sequences = |after, limit| -> Vec<u64> {
        store
            .shipped_records("a", after, limit)
            .unwrap()
            .iter()
            .map(|r| r.sequence)
            .collect()
    };
    assert_eq!(sequences(None, 3), [1, 2, 3]);
    assert_eq!(sequences(Some(2), 3), [3, 4]);
    assert_eq!(sequences(Some(4), 3), Vec::<u64>::new());
    assert!(store.shipped_records("nobody", None, 3).unwrap().is_empty());
    // Filters: errors, node, principal, event name; newest first.
    let find = |q: AuditQuery| -> Vec<(String, u64)> {
        store
            .find_shipped(&AuditQuery { limit: 50, ..q })
            .unwrap()
            .into_iter()
            .map(|(node, line)| {
                let n = line
                    .strip_prefix("{\"sequence\":")
                    .and_then(|r| r.split(',').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                (node, n)
            })
            .collect()
    };
    assert_eq!(
        find(AuditQuery {
            errors_only: true,
            ..AuditQuery::default()
        }),
        vec![("a".to_owned(), 2)]
    );
    assert_eq!(
        find(AuditQuery {
            except_node: Some("a".into()),
            ..AuditQuery::default()
        }),
        vec![("b".to_owned(), 1)]
    );
    assert_eq!(
        find(AuditQuery {
            node: Some("a".into()),
            event_name: Some("Statement".into()),
            principal: Some("arn:p".into()),
            since_ms: Some(2_000),
            ..AuditQuery::default()
        }),
        vec![("a".to_owned(), 3), ("a".to_owned(), 2)]
    );
    assert_eq!(
        find(AuditQuery {
            database: Some("orders".into()),
            source_ip: Some("10.0.0.7".into()),
            until_ms: Some(1_000),
            ..AuditQuery::default()
        }),
        vec![("a".to_owned(), 1)]
    );
    // Retention: the front goes, the rest stays.
    store.forget_shipped_before("a", 3, 1).unwrap();
    let head = store.shipped_head("a").unwrap().unwrap();
    assert_eq!((head.first_sequence, head.last_sequence), (3, 4));
    // A new trail on purpose: everything of the node goes, the other stays.
    assert_eq!(store.forget_shipped("a").unwrap(), 2);
    assert_eq!(store.shipped_trail("a").unwrap(), ShippedTrail::default());
    assert!(store.shipped_head("a").unwrap().is_none());
    store
        .ship_audit("a", "00000000000000cc", &batch, &[])
        .unwrap();
    assert_eq!(store.shipped_trail("b").unwrap().records.len(), 1);
}

#[test]
fn console_sessions_are_shared_sealed_bounded_and_end_everywhere() {
    use latchkey_store::{ConsoleSessionKind, ConsoleSessionRow};
    let dir = tempfile::tempdir().unwrap();
    // Two nodes on one store (SQLite: two connections to its file).
    let nodes: Vec<Store> = (0..2)
        .map(|_| backends::open(dir.path(), Vault::new(1, &[7; 32])).unwrap())
        .collect();
    let (one, two) = (&nodes[0], &nodes[1]);
    let row = |user: &str, at: i64, state: &str| ConsoleSessionRow {
        kind: ConsoleSessionKind::AwaitingMfa,
        user: user.into(),
        created: at,
        last_seen: at,
        failures: 0,
        state: zeroize::Zeroizing::new(state.as_bytes().to_vec()),
    };
    let put = |store: &Store, key: u8, r: &ConsoleSessionRow, now: i64, keep: usize| {
        store
            .put_console_session(&[key; 32], r, now - 100, now - 1000, keep)
            .unwrap();
    };
    put(one, 1, &row("alice", NOW, "secret-state-of-alice"), NOW, 10);
    // Another node finds it, counts its wrong codes with the first, and
    // sees it signed in once the first replaces it.
    let found = two.console_session(&[1; 32]).unwrap().unwrap();
    assert_eq!(
        (found.kind, found.user.as_str(), &found.state[..]),
        (
            ConsoleSessionKind::AwaitingMfa,
            "alice",
            &b"secret-state-of-alice"[..]
        )
    );
    assert_eq!(one.take_console_try(&[1; 32], 3).unwrap(), Some(1));
    assert_eq!(two.take_console_try(&[1; 32], 3).unwrap(), Some(2));
    assert_eq!(one.take_console_try(&[1; 32], 3).unwrap(), Some(3));
    assert_eq!(
        two.take_console_try(&[1; 32], 3).unwrap(),
        None,
        "a fourth try"
    );
    assert_eq!(two.take_console_try(&[9; 32], 3).unwrap(), None);
    // One sign-in awaiting its code per user: another of ALICE's replaces it.
    put(one, 8, &row("ALICE", NOW, "other"), NOW, 10);
    assert!(two.console_session(&[1; 32]).unwrap().is_none());
    assert!(two.console_session(&[8; 32]).unwrap().is_some());
    let mut signed = row("alice", NOW, "signed-in-state");
    signed.kind = ConsoleSessionKind::SignedIn;
    put(one, 1, &signed, NOW, 10);
    let found = two.console_session(&[1; 32]).unwrap().unwrap();
    assert_eq!(
        (found.kind, found.failures),
        (ConsoleSessionKind::SignedIn, 0)
    );
    let mut changed = row("alice", NOW, "role-state");
    changed.kind = ConsoleSessionKind::SignedIn;
    assert!(two.update_console_session(&[1; 32], &changed).unwrap());
    assert!(!two.update_console_session(&[2; 32], &changed).unwrap());
    // Only the stored session's own kind, user and start match.
    let mut other_user = row("mallory", NOW, "x");
    other_user.kind = ConsoleSessionKind::SignedIn;
    assert!(!two.update_console_session(&[1; 32], &other_user).unwrap());
    assert_eq!(
        &one.console_session(&[1; 32]).unwrap().unwrap().state[..],
        b"role-state"
    );
    // Use moves `last_seen` forward only.
    two.touch_console_session(&[1; 32], NOW + 50).unwrap();
    one.touch_console_session(&[1; 32], NOW + 20).unwrap();
    assert_eq!(
        one.console_session(&[1; 32]).unwrap().unwrap().last_seen,
        NOW + 50
    );
    // The state is sealed, bound to its row: moved to another key, it
    // does not open.
    let raw = backends::raw(dir.path());
    for clear in [
        &b"secret-state-of-alice"[..],
        b"signed-in-state",
        b"role-state",
    ] {
        assert!(
            !raw.windows(clear.len()).any(|w| w == clear),
            "state stored in clear"
        );
    }
    let moved = if backends::is_postgres() {
        "INSERT INTO console_sessions (key, kind, user_name, created, last_seen, failures, state) SELECT '\\x0303030303030303030303030303030303030303030303030303030303030303'::bytea, kind, user_name, created, last_seen, failures, state FROM console_sessions WHERE key = '\\x0101010101010101010101010101010101010101010101010101010101010101'::bytea"
    } else {
        "INSERT INTO console_sessions (key, kind, user, created, last_seen, failures, state) SELECT X'0303030303030303030303030303030303030303030303030303030303030303', kind, user, created, last_seen, failures, state FROM console_sessions WHERE key = X'0101010101010101010101010101010101010101010101010101010101010101'"
    };
    backends::sql(dir.path(), moved);
    assert!(
        one.console_session(&[3; 32]).unwrap().is_none(),
        "a moved state opened"
    );
    assert!(
        !one.end_console_session(&[3; 32]).unwrap(),
        "the forged row stayed"
    );
    // The user a row names changed in the store: it no longer opens.
    let renamed = if backends::is_postgres() {
        "UPDATE console_sessions SET user_name = 'root' WHERE key = '\\x0101010101010101010101010101010101010101010101010101010101010101'::bytea"
    } else {
        "UPDATE console_sessions SET user = 'root' WHERE key = X'0101010101010101010101010101010101010101010101010101010101010101'"
    };
    let before = one.console_session(&[1; 32]).unwrap().unwrap();
    backends::sql(dir.path(), renamed);
    assert!(
        two.console_session(&[1; 32]).unwrap().is_none(),
        "a renamed row opened"
    );
    put(one, 1, &before, NOW, 10);
    // Signing out on one node ends it on the other.
    assert!(two.end_console_session(&[1; 32]).unwrap());
    assert!(one.console_session(&[1; 32]).unwrap().is_none());
    assert!(!one.end_console_session(&[1; 32]).unwrap());
    // Idle and old sessions go when another is stored, then the least
    // recently used beyond the bound.
    put(one, 4, &row("idle", NOW, "s"), NOW, 10);
    put(one, 5, &row("busy", NOW + 90, "s"), NOW + 90, 10);
    put(one, 6, &row("new", NOW + 150, "s"), NOW + 150, 10);
    assert!(
        one.console_session(&[4; 32]).unwrap().is_none(),
        "idle for 150 s"
    );
    assert!(one.console_session(&[5; 32]).unwrap().is_some());
    put(one, 7, &row("newer", NOW + 160, "s"), NOW + 160, 2);
    assert!(
        one.console_session(&[5; 32]).unwrap().is_none(),
        "the least recently used went"
    );
    assert!(one.console_session(&[6; 32]).unwrap().is_some());
    assert!(one.console_session(&[7; 32]).unwrap().is_some());
    drop(nodes);
    // A master-key rotation re-wraps them too: with the old key gone they
    // still open.
    let mut vault = Vault::new(1, &[7; 32]);
    vault.add(2, &[10; 32]);
    let store = backends::open(dir.path(), vault).unwrap();
    // The vault check value and the two sessions.
    assert_eq!(store.rewrap_all().unwrap(), 3);
    drop(store);
    let store = backends::open(dir.path(), Vault::new(2, &[10; 32])).unwrap();
    assert_eq!(
        &store.console_session(&[6; 32]).unwrap().unwrap().state[..],
        b"s"
    );
}

#[test]
fn running_sessions_are_published_per_node_and_end_requests_reach_their_node() {
    use latchkey_store::PublishedSession;
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<Store> = (0..2)
        .map(|_| backends::open(dir.path(), Vault::new(1, &[7; 32])).unwrap())
        .collect();
    let (one, two) = (&nodes[0], &nodes[1]);
    let session = |id: &str, doc: &str| PublishedSession {
        node: String::new(),
        session_id: id.into(),
        database: "orders".into(),
        document: doc.into(),
    };
    // Node one is alive (it exchanged gauges) and publishes two sessions.
    one.exchange_gauges("one", NOW, true, &[], NOW - 3).unwrap();
    let asked = one
        .publish_live_sessions(
            "one",
            true,
            &[session("a1", "{}"), session("a2", "{}")],
            &[],
        )
        .unwrap();
    assert!(asked.is_empty());
    let seen = two.published_sessions("two", NOW - 3).unwrap();
    assert_eq!(
        seen.iter()
            .map(|s| (s.node.as_str(), s.session_id.as_str(), s.database.as_str()))
            .collect::<Vec<_>>(),
        [("one", "a1", "orders"), ("one", "a2", "orders")]
    );
    // A node does not see its own rows.
    assert!(one.published_sessions("one", NOW - 3).unwrap().is_empty());
    // Node two asks node one to end a1: node one takes the request once.
    two.request_session_end("one", "a1", NOW).unwrap();
    two.request_session_end("one", "a1", NOW).unwrap();
    let asked = one
        .publish_live_sessions(
            "one",
            false,
            &[session("a2", "{\"statements\":3}")],
            &["a1".into()],
        )
        .unwrap();
    assert_eq!(asked, ["a1"]);
    assert!(
        one.publish_live_sessions("one", false, &[], &[])
            .unwrap()
            .is_empty()
    );
    let seen = two.published_sessions("two", NOW - 3).unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].session_id.as_str(), seen[0].document.as_str()),
        ("a2", "{\"statements\":3}")
    );
    // A node that stopped exchanging shows no sessions; restarted, it
    // forgets what it published before.
    assert!(two.published_sessions("two", NOW + 10).unwrap().is_empty());
    one.exchange_gauges("one", NOW + 20, true, &[], NOW + 17)
        .unwrap();
    one.publish_live_sessions("one", true, &[session("b1", "{}")], &[])
        .unwrap();
    let seen = two.published_sessions("two", NOW + 17).unwrap();
    assert_eq!(
        seen.iter()
            .map(|s| s.session_id.as_str())
            .collect::<Vec<_>>(),
        ["b1"]
    );
}
