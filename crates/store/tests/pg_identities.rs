#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Users, groups and login profiles written by several nodes at once: two
//! stores on one PostgreSQL database, several threads each. Runs with
//! `LATCHKEY_TEST_STORE=postgres` (SQLite has one writer per file).

#[allow(dead_code)] // shared with store.rs, which uses all of it
mod backends;

use std::sync::Barrier;

use latchkey_store::{PasswordHash, Store, StoreError, Vault};

const NOW: i64 = 1_700_000_000;
const THREADS: usize = 8;

/// Two nodes sharing `dir`'s store.
fn nodes(dir: &tempfile::TempDir) -> [Store; 2] {
    let open = || backends::open(dir.path(), Vault::new(1, &[9; 32])).unwrap();
    [open(), open()]
}

/// Runs `work(node, thread)` on [`THREADS`] threads at once, alternating
/// the nodes; returns the results in thread order.
fn race<T: Send>(nodes: &[Store; 2], work: impl Fn(&Store, usize) -> T + Sync) -> Vec<T> {
    let start = Barrier::new(THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (start, work) = (&start, &work);
                s.spawn(move || {
                    start.wait();
                    work(&nodes[i % 2], i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn creating_the_same_user_group_or_login_profile_at_once_creates_one() {
    if !backends::is_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nodes = nodes(&dir);
    let spell = |i: usize| if i.is_multiple_of(2) { "Dana" } else { "DANA" };

    let users = race(&nodes, |n, i| n.create_user(spell(i), "/", &[], NOW));
    let groups = race(&nodes, |n, i| n.create_group(spell(i), "/", NOW));
    let hash = PasswordHash::new("pass-Word1", &[1; 16]).unwrap();
    let profiles = race(&nodes, |n, i| {
        n.create_login_profile(spell(i), &hash, false, NOW)
    });
    for (what, outcomes) in [
        (
            "user",
            users
                .iter()
                .map(|r| r.as_ref().map(|_| ()))
                .collect::<Vec<_>>(),
        ),
        (
            "group",
            groups.iter().map(|r| r.as_ref().map(|_| ())).collect(),
        ),
        (
            "profile",
            profiles.iter().map(|r| r.as_ref().map(|_| ())).collect(),
        ),
    ] {
        assert_eq!(
            outcomes.iter().filter(|r| r.is_ok()).count(),
            1,
            "{what}: {outcomes:?}"
        );
        assert!(
            outcomes
                .iter()
                .all(|r| matches!(r, Ok(()) | Err(StoreError::EntityAlreadyExists { .. }))),
            "{what}: {outcomes:?}"
        );
    }
    assert_eq!(nodes[0].list_users().unwrap().len(), 1);
    assert_eq!(nodes[1].list_groups().unwrap().len(), 1);
}

#[test]
fn concurrent_tag_and_password_changes_are_not_lost() {
    if !backends::is_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nodes = nodes(&dir);
    nodes[0].create_user("Erin", "/", &[], NOW).unwrap();
    nodes[0]
        .create_role("Ops", "/", "{}", 3600, "", &[], NOW)
        .unwrap();
    race(&nodes, |n, i| {
        let tag = [(format!("k{i}"), format!("v{i}"))];
        n.tag_user("erin", &tag).unwrap();
        n.tag_role("OPS", &tag).unwrap();
    });
    assert_eq!(nodes[1].get_user("Erin").unwrap().tags.len(), THREADS);
    assert_eq!(nodes[1].get_role("ops").unwrap().tags.len(), THREADS);

    let hash = |i: usize| PasswordHash::new(&format!("pass-{i}"), &[1; 16]).unwrap();
    nodes[0]
        .create_login_profile("Erin", &hash(99), false, NOW)
        .unwrap();
    race(&nodes, |n, i| {
        n.update_login_profile("ERIN", Some(&hash(i)), None, NOW + 1)
            .unwrap();
    });
    // Every change pushed the password it replaced: the first and the
    // seven others, each once.
    let lp = nodes[0].login_password("erin", 24).unwrap().unwrap();
    assert_eq!(lp.previous.len(), THREADS);
    let mut seen: Vec<usize> = std::iter::once(&lp.hash)
        .chain(&lp.previous)
        .map(|h| {
            (0..THREADS)
                .chain([99])
                .find(|i| h.verify(&format!("pass-{i}")))
                .unwrap()
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), THREADS + 1);
}

/// A membership added while its user is deleted must not outlive the user
/// (it would block deleting the group forever).
#[test]
fn a_membership_added_during_a_user_s_deletion_does_not_outlive_it() {
    if !backends::is_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nodes = nodes(&dir);
    for round in 0..10 {
        let group = format!("g{round}");
        nodes[0].create_group(&group, "/", NOW).unwrap();
        nodes[0].create_user("Fay", "/", &[], NOW).unwrap();
        let outcomes = race(&nodes, |n, i| {
            if i == 0 {
                n.delete_user("fay").map(|_| "deleted")
            } else {
                n.add_user_to_group(&group, "FAY").map(|_| "added")
            }
        });
        assert!(
            outcomes
                .iter()
                .all(|r| matches!(r, Ok(_) | Err(StoreError::NoSuchEntity { .. }))),
            "{outcomes:?}"
        );
        // A membership never blocks a user's deletion.
        assert!(matches!(outcomes[0], Ok("deleted")), "{outcomes:?}");
        nodes[1].delete_group(&group).unwrap();
    }
}
