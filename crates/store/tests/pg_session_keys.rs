#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Cluster keys made and rotated by several PostgreSQL nodes at once
//! (these tests run with `LATCHKEY_TEST_STORE=postgres` and pass on
//! SQLite).

#[allow(dead_code)]
mod backends;

use latchkey_store::StoreError;

const NOW: i64 = 1_700_000_000;

#[test]
fn nodes_starting_on_an_empty_store_share_one_first_key() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes(dir.path(), 4);
    if nodes.is_empty() {
        return;
    }
    let got = backends::at_once(&nodes, |_, node| node.cluster_keys(NOW));
    // A node losing the race to make key 1 gets an error (a unique id).
    assert!(
        got.iter()
            .all(|g| g.is_ok() || matches!(g, Err(StoreError::UniqueViolation))),
        "{got:?}"
    );
    assert!(got.iter().any(Result::is_ok));
    // Asking again, every node has the same key 1.
    let first = nodes[0].cluster_keys(NOW).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, 1);
    for node in &nodes {
        let keys = node.cluster_keys(NOW).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(*keys[0].1, *first[0].1);
    }
}

#[test]
fn nodes_rotating_at_once_add_one_key_and_keep_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes(dir.path(), 4);
    if nodes.is_empty() {
        return;
    }
    let first = nodes[0].cluster_keys(NOW).unwrap();
    let rotated = backends::at_once(&nodes, |_, node| {
        node.rotate_cluster_keys(NOW + 3600, 3600, 10_000).unwrap()
    });
    assert_eq!(rotated.iter().filter(|r| **r).count(), 1, "{rotated:?}");
    let keys = nodes[1].cluster_keys(NOW).unwrap();
    assert_eq!(keys.iter().map(|k| k.0).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(*keys[0].1, *first[0].1);
    // Long after, every node retires key 1 at once: one delete, key 2 kept.
    let retired = backends::at_once(&nodes, |_, node| {
        node.rotate_cluster_keys(NOW + 3600 + 10_001, 100_000, 10_000)
            .unwrap()
    });
    assert_eq!(retired.iter().filter(|r| **r).count(), 1, "{retired:?}");
    let now = nodes[2].cluster_keys(NOW).unwrap();
    assert_eq!(now.iter().map(|k| k.0).collect::<Vec<_>>(), [2]);
    assert_eq!(*now[0].1, *keys[1].1);
}
