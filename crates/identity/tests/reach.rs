#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Who may connect to a database, as the console shows it: computed from
//! every principal's policies by the engine a login goes through.

use std::sync::Arc;

use latchkey_identity::{AppState, ManualClock};
use latchkey_store::{Database, Engine, PrincipalKind, Store, Vault};

const NOW: i64 = 1_700_000_000;

fn allow(resource: &str, extra: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"rds-db:connect","Resource":"{resource}"{extra}}}]}}"#
    )
}

#[test]
fn grants_come_from_users_groups_and_roles_and_denies_take_them_away() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db"), Vault::new(1, &[4; 32])).unwrap();
    let orders = store
        .register_database(
            &Database {
                name: "orders".into(),
                engine: Engine::Postgres,
                endpoints: vec!["orders.db.internal".into()],
                upstream: "127.0.0.1:5432".into(),
                tags: vec![("env".into(), "prod".into())],
                ..Database::default()
            },
            NOW,
        )
        .unwrap();
    let rid = &orders.resource_id;
    let user = |name: &str, doc: Option<String>| {
        store.create_user(name, "/", &[], NOW).unwrap();
        if let Some(doc) = doc {
            store
                .put_inline_policy(PrincipalKind::User, name, "p", &doc)
                .unwrap();
        }
    };
    // One database user on this database.
    user(
        "app",
        Some(allow(
            &format!("arn:aws:rds-db:us-east-1:*:dbuser:{rid}/app"),
            "",
        )),
    );
    // Its own name, on any database.
    user(
        "carol",
        Some(allow("arn:aws:rds-db:*:*:dbuser:*/${aws:username}", "")),
    );
    // Another database only.
    user(
        "other",
        Some(allow("arn:aws:rds-db:*:*:dbuser:db-OTHER/app", "")),
    );
    // Only from one network: shown with the key it depends on.
    user(
        "vpn",
        Some(allow(
            "*",
            r#","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        )),
    );
    // Only databases tagged env=dev: not this one.
    user(
        "dev",
        Some(allow(
            "*",
            r#","Condition":{"StringEquals":{"aws:ResourceTag/env":"dev"}}"#,
        )),
    );
    // Allowed everything, but denied this database.
    user(
        "denied",
        Some(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*"}},{{"Effect":"Deny","Action":"rds-db:connect","Resource":"arn:aws:rds-db:*:*:dbuser:{rid}/*"}}]}}"#
        )),
    );
    // Allowed everything, narrowed to `app` by a guardrail (red team
    // round A: a Deny with NotResource).
    user(
        "guarded",
        Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"},{"Effect":"Deny","Action":"rds-db:connect","NotResource":"arn:aws:rds-db:*:*:dbuser:*/app"}]}"#
                .to_owned(),
        ),
    );
    // Through a group's managed policy.
    user("grouped", None);
    store.create_group("readers", "/", NOW).unwrap();
    store.add_user_to_group("readers", "grouped").unwrap();
    let (arn, _) = store
        .create_managed_policy(
            "read",
            "/",
            &allow("arn:aws:rds-db:*:*:dbuser:*/reader", ""),
            NOW,
        )
        .unwrap();
    store
        .attach_policy(PrincipalKind::Group, "readers", &arn)
        .unwrap();
    // By a tag of their own (red team F3): the user the tag names.
    store
        .create_user("tagged", "/", &[("dbuser".into(), "app".into())], NOW)
        .unwrap();
    store
        .put_inline_policy(
            PrincipalKind::User,
            "tagged",
            "p",
            &allow("arn:aws:rds-db:*:*:dbuser:*/${aws:PrincipalTag/dbuser}", ""),
        )
        .unwrap();
    // A role anyone may assume (and tag), with one inline policy.
    let role = |name: &str, tags: &[(String, String)], doc: String| {
        store
            .create_role(
                name,
                "/",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#,
                3600,
                "",
                tags,
                NOW,
            )
            .unwrap();
        store
            .put_inline_policy(PrincipalKind::Role, name, "p", &doc)
            .unwrap();
    };
    // A grant that hangs on a session tag (set at AssumeRole, not the
    // role's own): listed with what it depends on.
    role(
        "tagrole",
        &[("team".into(), "blue".into())],
        allow(
            "*",
            r#","Condition":{"StringEquals":{"aws:PrincipalTag/team":"red"}}"#,
        ),
    );
    // Red team G1: by the session's name (aws:userid is ROLEID:SESSION,
    // the name chosen at AssumeRole).
    role(
        "named",
        &[],
        allow(
            "*",
            r#","Condition":{"StringLike":{"aws:userid":"*:ops-*"}}"#,
        ),
    );
    // A wildcard.
    role("ops", &[], allow("arn:aws:rds-db:*:*:dbuser:*/*", ""));
    let keys = store.cluster_keys(NOW).unwrap();
    let state = AppState::new(store, keys)
        .unwrap()
        .with_clock(Arc::new(ManualClock::new(NOW)));
    let grants = state.who_may_connect(&orders).unwrap();
    type Seen<'a> = (PrincipalKind, &'a str, Vec<(&'a str, Vec<&'a str>)>);
    let seen: Vec<Seen> = grants
        .iter()
        .map(|g| {
            (
                g.kind,
                g.name.as_str(),
                g.db_users
                    .iter()
                    .map(|u| {
                        (
                            u.db_user.as_str(),
                            u.depends_on.iter().map(String::as_str).collect(),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (PrincipalKind::User, "app", vec![("app", vec![])]),
            (PrincipalKind::User, "carol", vec![("carol", vec![])]),
            (PrincipalKind::User, "grouped", vec![("reader", vec![])]),
            (PrincipalKind::User, "guarded", vec![("app", vec![])]),
            (PrincipalKind::User, "tagged", vec![("app", vec![])]),
            (
                PrincipalKind::User,
                "vpn",
                vec![("*", vec!["aws:SourceIp"])]
            ),
            (
                PrincipalKind::Role,
                "named",
                vec![("*", vec!["aws:userid"])]
            ),
            (PrincipalKind::Role, "ops", vec![("*", vec![])]),
            (
                PrincipalKind::Role,
                "tagrole",
                vec![("*", vec!["aws:PrincipalTag/team"])]
            ),
        ]
    );
    assert!(grants[0].arn.ends_with(":user/app"));
}
