#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Console passwords through the identity core: one answer for every
//! wrong case, lockout by user name, and no forgiveness until the whole
//! sign-in (MFA included) went through.

use std::net::IpAddr;
use std::sync::Arc;

use latchkey_identity::{AppState, ManualClock, PasswordFailure};
use latchkey_password::{PasswordHash, Refusal};
use latchkey_store::{Store, Vault};

const NOW: i64 = 1_700_000_000;

fn state(dir: &tempfile::TempDir) -> AppState {
    let store = Store::open(&dir.path().join("s.db"), Vault::new(1, &[4; 32])).unwrap();
    store.create_user("dave", "/", &[], NOW).unwrap();
    store.create_user("erin", "/", &[], NOW).unwrap();
    let hash = PasswordHash::new("Dave-Passw0rd!1", &[1; 16]).unwrap();
    store
        .create_login_profile("dave", &hash, false, NOW)
        .unwrap();
    let keys = store.cluster_keys(NOW).unwrap();
    AppState::new(store, keys)
        .unwrap()
        .with_clock(Arc::new(ManualClock::new(NOW)))
}

fn ip(n: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, n])
}

#[test]
fn every_wrong_case_gets_one_answer_and_a_reason_for_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    let reason = |r: Result<_, PasswordFailure>| match r {
        Err(PasswordFailure::Incorrect { reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        reason(s.check_password("dave", "wrong", ip(1))),
        "wrong password"
    );
    let unknown = reason(s.check_password("nobody", "x", ip(1)));
    let no_profile = reason(s.check_password("erin", "x", ip(1)));
    assert_eq!(unknown, no_profile);
    let ok = s.check_password("DAVE", "Dave-Passw0rd!1", ip(1)).unwrap();
    assert_eq!(ok.user.name, "dave");
    assert!(!ok.must_change);
}

/// Red team F1: a right password followed by wrong MFA codes, again and
/// again from many addresses, must not reset the user name's count.
#[test]
fn wrong_mfa_codes_lock_the_user_however_often_the_password_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    for n in 0..5u8 {
        s.check_password("dave", "Dave-Passw0rd!1", ip(n)).unwrap();
        // The console counts the wrong code.
        s.sign_in_failed("dave", ip(n));
    }
    assert!(matches!(
        s.check_password("dave", "Dave-Passw0rd!1", ip(99)),
        Err(PasswordFailure::Throttled(Refusal::UserLocked { .. }))
    ));
    // A whole sign-in forgives the name (once the lockout has passed).
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    for n in 0..4u8 {
        s.sign_in_failed("dave", ip(n));
    }
    s.check_password("dave", "Dave-Passw0rd!1", ip(1)).unwrap();
    s.sign_in_succeeded("dave");
    for n in 0..4u8 {
        s.sign_in_failed("dave", ip(n));
    }
    assert!(s.check_password("dave", "Dave-Passw0rd!1", ip(1)).is_ok());
}

/// Red team (console, multi-node): guesses sent at once were all checked
/// before the first failure counted. Now at most as many are checked as
/// the user has failures left; the rest are refused unchecked, and a name
/// no user can have (a NUL) is a wrong guess like any other.
#[test]
fn guesses_sent_at_once_are_checked_no_more_than_the_lockout_allows() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    let outcomes: Vec<Result<_, PasswordFailure>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24u8)
            .map(|n| {
                let s = &s;
                scope.spawn(move || s.check_password("dave", "Wrong-Passw0rd!", ip(n)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = outcomes
        .iter()
        .filter(|o| matches!(o, Err(PasswordFailure::Incorrect { .. })))
        .count();
    assert!(checked <= 5, "{checked} guesses checked at once");
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Err(PasswordFailure::Incorrect { .. } | PasswordFailure::Throttled(_))
        )),
        "{outcomes:?}"
    );
    let nul = s.check_password("da\0ve", "x", ip(99));
    assert!(
        matches!(
            nul,
            Err(PasswordFailure::Incorrect { .. }) | Err(PasswordFailure::Throttled(_))
        ),
        "{nul:?}"
    );
}
