#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Revoking a principal's sessions: what was issued before the
//! revocation time, or in its second, stops working; what comes later
//! works.

use latchkey_identity::{AppState, CredentialFailure};
use latchkey_session::SessionClaims;
use latchkey_store::{Store, Vault};

const NOW: i64 = 1_700_000_000;
const USER: &str = "arn:aws:iam::123456789012:user/alice";

fn claims(n: u8, issued: i64) -> SessionClaims {
    SessionClaims {
        token_id: [n; 16],
        principal_arn: USER.into(),
        issued,
        expires: issued + 3600,
        ..SessionClaims::default()
    }
}

#[test]
fn sessions_issued_up_to_the_revocation_second_are_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db"), Vault::new(1, &[4; 32])).unwrap();
    let keys = store.cluster_keys(NOW).unwrap();
    let state = AppState::new(store, keys).unwrap();
    let seal = |c: &SessionClaims| state.keyring.read().unwrap().seal(c, [0; 12]).unwrap();
    let earlier = seal(&claims(1, NOW - 10));
    let same_second = seal(&claims(2, NOW));
    let later = seal(&claims(3, NOW + 1));
    let check = |c: &latchkey_session::TemporaryCredentials| {
        state
            .credentials(
                &c.access_key_id,
                Some(&c.session_token),
                NOW + 2,
                "192.0.2.1",
            )
            .map(|_| ())
            .map_err(|e| e.credential().map(|c| c.failure))
    };
    for c in [&earlier, &same_second, &later] {
        assert_eq!(check(c), Ok(()));
    }
    state.store.revoke_sessions(USER, NOW).unwrap();
    state.reload_revocations().unwrap();
    let revoked = Err(Some(CredentialFailure::SessionRevoked));
    assert_eq!(check(&earlier), revoked);
    assert_eq!(check(&same_second), revoked);
    assert_eq!(check(&later), Ok(()));
}

/// alice -> A (at NOW - 100) -> B (at NOW - 50): revoking alice or A at NOW
/// ends B, whose own principal is A's session and whose role is B.
#[test]
fn revocation_follows_the_role_chain() {
    use latchkey_session::Ancestor;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db"), Vault::new(1, &[4; 32])).unwrap();
    let keys = store.cluster_keys(NOW).unwrap();
    let state = AppState::new(store, keys).unwrap();
    let role_a = "arn:aws:iam::123456789012:role/A";
    let b = SessionClaims {
        token_id: [9; 16],
        principal_arn: "arn:aws:sts::123456789012:assumed-role/A/s".into(),
        role_arn: "arn:aws:iam::123456789012:role/B".into(),
        issued: NOW - 50,
        expires: NOW + 3600,
        lineage: vec![
            Ancestor {
                arn: USER.into(),
                id: "AIDAALICE".into(),
                issued: NOW - 100,
            },
            Ancestor {
                arn: role_a.into(),
                id: "AROAA".into(),
                issued: NOW - 100,
            },
        ],
        ..SessionClaims::default()
    };
    let sealed = state.keyring.read().unwrap().seal(&b, [0; 12]).unwrap();
    let check = || {
        state
            .credentials(
                &sealed.access_key_id,
                Some(&sealed.session_token),
                NOW,
                "192.0.2.1",
            )
            .map(|_| ())
            .map_err(|e| e.credential().map(|c| c.failure))
    };
    assert_eq!(check(), Ok(()));
    // A revocation older than the chain's start ends nothing.
    state.store.revoke_sessions(USER, NOW - 200).unwrap();
    state.reload_revocations().unwrap();
    assert_eq!(check(), Ok(()));
    for ancestor in [USER, role_a] {
        state.store.revoke_sessions(USER, NOW - 200).unwrap();
        state.store.revoke_sessions(role_a, NOW - 200).unwrap();
        state.store.revoke_sessions(ancestor, NOW).unwrap();
        state.reload_revocations().unwrap();
        assert_eq!(
            check(),
            Err(Some(CredentialFailure::SessionRevoked)),
            "{ancestor}"
        );
    }
}
