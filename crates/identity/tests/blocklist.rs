#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The blocklist: a block holds here at once and on other nodes at their
//! reload; lifted in the store, it is lifted everywhere at the next
//! reload, the node that made it included; a block the store did not
//! take stays on its node.

use std::net::IpAddr;

use latchkey_identity::AppState;
use latchkey_store::{Store, Vault};

fn state(dir: &std::path::Path) -> AppState {
    let store = Store::open(&dir.join("s.db"), Vault::new(1, &[4; 32])).unwrap();
    let keys = store.cluster_keys(0).unwrap();
    AppState::new(store, keys).unwrap()
}

#[test]
fn a_block_lifted_in_the_store_is_lifted_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let (here, there) = (state(dir.path()), state(dir.path()));
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    let now = here.now();
    assert!(here.block_ip(ip, now + 600, now).unwrap());
    assert!(here.is_blocked(ip, now));
    assert!(!there.is_blocked(ip, now), "before its reload");
    there.reload_blocklist().unwrap();
    here.reload_blocklist().unwrap();
    assert!(here.is_blocked(ip, now) && there.is_blocked(ip, now));
    assert!(here.store.unblock_address("192.0.2.7", now).unwrap());
    assert!(!here.store.unblock_address("192.0.2.7", now).unwrap());
    here.reload_blocklist().unwrap();
    there.reload_blocklist().unwrap();
    assert!(
        !here.is_blocked(ip, now),
        "the node that blocked it kept it"
    );
    assert!(!there.is_blocked(ip, now));
    // Another node's detection, firing late on the failures the unblock
    // forgave, blocks nothing; a failure after it does.
    assert!(!there.block_ip(ip, now + 600, now).unwrap());
    assert!(!there.is_blocked(ip, now));
    assert!(there.block_ip(ip, now + 600, now + 1).unwrap());
    assert!(there.is_blocked(ip, now));
}
