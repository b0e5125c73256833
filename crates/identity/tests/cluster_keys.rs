#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Cluster-key rotation on a live state: new sessions are sealed with the
//! new key, sessions sealed before still open.

use latchkey_identity::AppState;
use latchkey_session::SessionClaims;
use latchkey_store::{Store, Vault};

const NOW: i64 = 1_700_000_000;
const DAY: i64 = 86_400;

fn claims(n: u8) -> SessionClaims {
    SessionClaims {
        token_id: [n; 16],
        issued: NOW,
        expires: NOW + 3600,
        ..SessionClaims::default()
    }
}

#[test]
fn rotation_keeps_older_sessions_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db"), Vault::new(1, &[4; 32])).unwrap();
    let keys = store.cluster_keys(NOW).unwrap();
    let state = AppState::new(store, keys).unwrap();
    let before = state
        .keyring
        .read()
        .unwrap()
        .seal(&claims(1), [0; 12])
        .unwrap();

    state.refresh_cluster_keys(NOW + DAY / 2, DAY).unwrap();
    assert_eq!(state.keyring.read().unwrap().current_id(), 1, "not due yet");
    state.refresh_cluster_keys(NOW + DAY, DAY).unwrap();
    let ring = state.keyring.read().unwrap();
    assert_eq!(ring.current_id(), 2);
    assert_eq!(ring.open(&before.session_token).unwrap().claims, claims(1));
    let after = ring.seal(&claims(2), [0; 12]).unwrap();
    assert!(ring.open(&after.session_token).is_ok());
    drop(ring);

    // Far enough on, key 1 is retired: its sessions no longer open.
    state.refresh_cluster_keys(NOW + 4 * DAY, 10 * DAY).unwrap();
    let ring = state.keyring.read().unwrap();
    assert!(ring.open(&before.session_token).is_err());
    assert!(ring.open(&after.session_token).is_ok());
}
