#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Access keys and MFA steps written by several PostgreSQL nodes at once
//! (these tests run with `LATCHKEY_TEST_STORE=postgres` and pass on
//! SQLite).

#[allow(dead_code)]
mod backends;

use latchkey_store::StoreError;

const NOW: i64 = 1_700_000_000;

#[test]
fn a_totp_step_given_to_several_nodes_at_once_is_accepted_once() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes(dir.path(), 4);
    if nodes.is_empty() {
        return;
    }
    nodes[0].create_user("carol", "/", &[], NOW).unwrap();
    let (serial, _) = nodes[0].create_virtual_mfa("carol", "/").unwrap();
    nodes[0].enable_mfa(&serial, "carol", 100, NOW).unwrap();
    for step in 101..111 {
        let used = backends::at_once(&nodes, |_, node| node.use_mfa_step(&serial, step).unwrap());
        assert_eq!(used.iter().filter(|u| **u).count(), 1, "{used:?}");
    }
    // An older step than the last used one is refused.
    assert!(!nodes[1].use_mfa_step(&serial, 105).unwrap());
    assert_eq!(nodes[2].mfa_seed(&serial).unwrap().2, Some(110));
}

#[test]
fn nodes_creating_access_keys_at_once_keep_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes(dir.path(), 4);
    if nodes.is_empty() {
        return;
    }
    nodes[0].create_user("alice", "/", &[], NOW).unwrap();
    let made = backends::at_once(&nodes, |_, node| node.create_access_key("ALICE", NOW));
    let ok = made.iter().filter(|m| m.is_ok()).count();
    assert_eq!(ok, 2, "{made:?}");
    assert!(
        made.iter()
            .all(|m| m.is_ok() || matches!(m, Err(StoreError::LimitExceeded(_))))
    );
    let keys = nodes[0].list_access_keys("alice").unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.user == "alice"));
}
