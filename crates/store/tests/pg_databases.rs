#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Databases and the database CA written by several PostgreSQL nodes at
//! once (these tests run with `LATCHKEY_TEST_STORE=postgres` and pass on
//! SQLite).

#[allow(dead_code)]
mod backends;

use latchkey_store::{Database, Engine, StoreError, UpstreamAuth};

const NOW: i64 = 1_700_000_000;

#[test]
fn nodes_making_the_database_ca_at_once_keep_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes(dir.path(), 4);
    if nodes.is_empty() {
        return;
    }
    let stored = backends::at_once(&nodes, |i, node| {
        node.create_database_ca(&format!("CERT {i}"), &format!("KEY {i}"), NOW)
            .unwrap()
    });
    assert_eq!(stored.iter().filter(|s| **s).count(), 1, "{stored:?}");
    let winner = stored.iter().position(|s| *s).unwrap();
    for node in &nodes {
        let (cert, key) = node.database_ca().unwrap().unwrap();
        assert_eq!(
            (cert.as_str(), key.as_str()),
            (&*format!("CERT {winner}"), &*format!("KEY {winner}"))
        );
    }
}

#[test]
fn an_endpoint_claimed_by_several_nodes_at_once_goes_to_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes(dir.path(), 4);
    if nodes.is_empty() {
        return;
    }
    let made = backends::at_once(&nodes, |i, node| {
        node.register_database(
            &Database {
                name: format!("db{i}"),
                engine: Engine::Postgres,
                endpoints: vec!["shared.db.local".into()],
                upstream: "127.0.0.1:5432".into(),
                upstream_auth: UpstreamAuth::Password,
                ..Default::default()
            },
            NOW,
        )
    });
    assert_eq!(made.iter().filter(|m| m.is_ok()).count(), 1, "{made:?}");
    assert!(
        made.iter()
            .all(|m| m.is_ok() || matches!(m, Err(StoreError::InvalidInput(_))))
    );
    assert_eq!(nodes[0].list_databases().unwrap().len(), 1);
}
