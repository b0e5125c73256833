#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The audit trail's signing key and anchor, on either backend, and
//! written by several PostgreSQL nodes at once (those tests run with
//! `LATCHKEY_TEST_STORE=postgres` and pass on SQLite).

#[allow(dead_code)]
mod backends;

use latchkey_store::{Store, Vault};

fn open(dir: &tempfile::TempDir) -> Store {
    backends::open(dir.path(), Vault::new(1, &[7; 32])).unwrap()
}

#[test]
fn the_anchor_only_moves_forward_within_its_trail() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.audit_anchor("n1").unwrap(), None);
    assert_eq!(store.forget_audit_anchor("n1").unwrap(), None);
    assert!(
        store
            .put_audit_anchor("n1", "00000000000000aa", 10, "ten", 1)
            .unwrap()
    );
    assert!(
        store
            .put_audit_anchor("n1", "00000000000000aa", 12, "twelve", 2)
            .unwrap()
    );
    assert!(
        store
            .put_audit_anchor("n1", "00000000000000aa", 12, "twelve again", 2)
            .unwrap()
    );
    assert!(
        !store
            .put_audit_anchor("n1", "00000000000000aa", 11, "eleven", 3)
            .unwrap()
    );
    assert!(
        !store
            .put_audit_anchor("n1", "00000000000000bb", 99, "other", 4)
            .unwrap()
    );
    assert!(
        store
            .put_audit_anchor("n1", "00000000000000aa", u64::MAX, "x", 5)
            .is_err()
    );
    assert_eq!(
        store.audit_anchor("n1").unwrap().as_deref(),
        Some("twelve again")
    );
    // Forgotten on purpose, another trail may be anchored.
    assert_eq!(
        store.forget_audit_anchor("n1").unwrap().as_deref(),
        Some("twelve again")
    );
    assert!(
        store
            .put_audit_anchor("n1", "00000000000000bb", 1, "new", 5)
            .unwrap()
    );
    assert_eq!(store.audit_anchor("n1").unwrap().as_deref(), Some("new"));
}

#[test]
fn nodes_creating_the_signing_key_at_once_end_up_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes(dir.path(), 4);
    if nodes.is_empty() {
        return;
    }
    assert_eq!(nodes[0].audit_signing_key().unwrap(), None);
    assert_eq!(nodes[0].audit_public_key().unwrap(), None);
    let stored: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                s.spawn(move || {
                    // Runs of a byte found nowhere else in a store.
                    let b = 0xa1 + u8::try_from(i).unwrap();
                    node.create_audit_signing_key(&[b; 48], &[b; 32], 1)
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(stored.iter().filter(|s| **s).count(), 1, "{stored:?}");
    let winner = 0xa1 + u8::try_from(stored.iter().position(|s| *s).unwrap()).unwrap();
    for node in &nodes {
        assert_eq!(
            node.audit_signing_key().unwrap().unwrap().as_slice(),
            [winner; 48]
        );
        assert_eq!(node.audit_public_key().unwrap().unwrap(), [winner; 32]);
    }
    // Sealed: the private key is not stored in clear.
    let raw = backends::raw(dir.path());
    assert!(!raw.windows(48).any(|w| w == [winner; 48]));
}

#[test]
fn anchors_put_at_once_keep_the_highest() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes(dir.path(), 4);
    if nodes.is_empty() {
        return;
    }
    std::thread::scope(|s| {
        for (i, node) in nodes.iter().enumerate() {
            s.spawn(move || {
                for seq in 0..20u64 {
                    let seq = seq * 4 + u64::try_from(i).unwrap();
                    node.put_audit_anchor("n1", "00000000000000aa", seq, &seq.to_string(), 1)
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(nodes[0].audit_anchor("n1").unwrap().as_deref(), Some("79"));
}

#[test]
fn each_node_keeps_its_own_anchor_and_the_legacy_one_is_claimed_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = backends::open(dir.path(), latchkey_store::Vault::new(1, &[9; 32])).unwrap();
    // A store from before per-node anchors: the single row.
    backends::sql(
        dir.path(),
        "INSERT INTO audit_anchor (id, trail_id, sequence, document, updated) VALUES (1, '00000000000000aa', 7, 'legacy', 1)",
    );
    assert!(store.claim_legacy_audit_anchor("n1").unwrap());
    assert!(!store.claim_legacy_audit_anchor("n2").unwrap());
    assert_eq!(store.audit_anchor("n1").unwrap().as_deref(), Some("legacy"));
    assert_eq!(store.audit_anchor("n2").unwrap(), None);
    // Each node's trail moves its own anchor only.
    assert!(
        store
            .put_audit_anchor("n1", "00000000000000aa", 8, "n1-8", 2)
            .unwrap()
    );
    assert!(
        store
            .put_audit_anchor("n2", "00000000000000bb", 3, "n2-3", 2)
            .unwrap()
    );
    assert!(
        !store
            .put_audit_anchor("n2", "00000000000000aa", 9, "n1's trail", 3)
            .unwrap()
    );
    assert_eq!(
        store.audit_anchors().unwrap(),
        [
            ("n1".to_owned(), "n1-8".to_owned()),
            ("n2".to_owned(), "n2-3".to_owned())
        ]
    );
}

#[test]
fn a_node_is_not_ready_once_a_newer_latchkey_upgraded_the_schema() {
    if !backends::is_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.ready().unwrap();
    backends::sql(
        dir.path(),
        "UPDATE meta SET value = '99' WHERE key = 'schema'",
    );
    assert!(matches!(
        store.ready(),
        Err(latchkey_store::StoreError::NewerSchema { found: 99, .. })
    ));
    // And a node starting now refuses it.
    assert!(matches!(
        backends::open(dir.path(), Vault::new(1, &[7; 32])),
        Err(latchkey_store::StoreError::NewerSchema { found: 99, .. })
    ));
}

#[test]
fn the_change_feed_reports_real_changes_only() {
    if !backends::is_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    assert!(
        store
            .watch_changes(std::sync::Arc::new(move |c| record.lock().unwrap().push(c)))
            .unwrap()
    );
    let settle = || std::thread::sleep(std::time::Duration::from_millis(700));
    store.cluster_keys(1_700_000_000).unwrap(); // key 1: a real change
    settle();
    seen.lock().unwrap().clear();
    // What every node's refresh does: statements that change nothing.
    for _ in 0..5 {
        store.cluster_keys(1_700_000_000).unwrap();
        store
            .rotate_cluster_keys(1_700_000_000, 86_400, 3600)
            .unwrap();
        store.revocations().unwrap();
    }
    settle();
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    store
        .revoke_sessions("arn:aws:iam::1:user/x", 1_700_000_000)
        .unwrap();
    settle();
    assert!(
        seen.lock()
            .unwrap()
            .contains(&latchkey_store::StoreChange::Revocations)
    );
}
