#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Managed policies written by several PostgreSQL nodes at once: each test
//! runs with `LATCHKEY_TEST_STORE=postgres` and passes on SQLite.

#[allow(dead_code)]
mod backends;

use latchkey_store::{MAX_POLICY_VERSIONS, StoreError};

const DOC: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;

#[test]
fn one_of_names_differing_in_case_created_at_once_exists() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes(dir.path(), 4);
    if nodes.is_empty() {
        return;
    }
    for round in 0..5 {
        let names: Vec<String> = ["pwn", "Pwn", "PWN", "pWn"]
            .iter()
            .map(|n| format!("{n}{round}"))
            .collect();
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = nodes
                .iter()
                .zip(&names)
                .map(|(node, name)| s.spawn(move || node.create_policy(name, "/", DOC, "", &[], 1)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let created = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(created, 1, "{results:?}");
        for r in &results {
            assert!(
                matches!(r, Ok(_) | Err(StoreError::EntityAlreadyExists { .. })),
                "{r:?}"
            );
        }
    }
    assert_eq!(nodes[0].list_policies().unwrap().len(), 5);
}

#[test]
fn versions_added_at_once_get_distinct_numbers_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes(dir.path(), 4);
    if nodes.is_empty() {
        return;
    }
    let p = nodes[0].create_policy("p", "/", DOC, "", &[], 1).unwrap();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .flat_map(|node| [node, node])
            .enumerate()
            .map(|(i, node)| {
                let arn = p.arn.clone();
                s.spawn(move || node.create_policy_version(&arn, DOC, i % 2 == 0, 2))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let added = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(added, usize::try_from(MAX_POLICY_VERSIONS).unwrap() - 1);
    for r in &results {
        assert!(
            matches!(r, Ok(_) | Err(StoreError::LimitExceeded(_))),
            "{r:?}"
        );
    }
    let versions = nodes[0].list_policy_versions(&p.arn).unwrap();
    let ids: Vec<&str> = versions.iter().map(|v| v.version_id.as_str()).collect();
    assert_eq!(ids, ["v5", "v4", "v3", "v2", "v1"]);
    assert_eq!(versions.iter().filter(|v| v.is_default).count(), 1);
}

#[test]
fn tags_added_at_once_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = backends::nodes(dir.path(), 4);
    if nodes.is_empty() {
        return;
    }
    let p = nodes[0].create_policy("p", "/", DOC, "", &[], 1).unwrap();
    std::thread::scope(|s| {
        for (i, node) in nodes.iter().enumerate() {
            let arn = p.arn.clone();
            s.spawn(move || {
                node.tag_policy(&arn, &[(format!("k{i}"), "v".to_owned())])
                    .unwrap();
            });
        }
    });
    assert_eq!(nodes[0].get_policy(&p.arn).unwrap().tags.len(), 4);
}
