#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The audit trail with several nodes on one PostgreSQL store (issue 22):
//! every record names the node that sealed it, and `audit verify` on one
//! node names the other nodes the store knows instead of skipping them.

mod common;
use common::cluster::*;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn stop(cluster: &mut Cluster, i: usize) {
    let pid = cluster.nodes[i].lk.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.nodes[i].lk.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "node {} did not stop", i + 1);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every segment file under `dir`, found wherever the trail lives in it.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(segments(&path));
        } else if path.extension().is_some_and(|e| e == "jsonl")
            && path.parent().is_some_and(|p| p.ends_with("segments"))
        {
            out.push(path);
        }
    }
    out
}

#[test]
fn records_name_their_node_and_verify_names_the_other_nodes() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let mut cluster = Cluster::start(root, 2, &[]);
    for n in 1..=2 {
        cluster.aws_ok(
            n,
            &[],
            &["iam", "create-user", "--user-name", &format!("u{n}")],
        );
    }
    stop(&mut cluster, 0);
    stop(&mut cluster, 1);

    let ids: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| {
            std::fs::read_to_string(n.lk.data.join("node.id"))
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
    for (node, id) in cluster.nodes.iter().zip(&ids) {
        let files = segments(&node.lk.data);
        assert!(
            !files.is_empty(),
            "no trail under {}",
            node.lk.data.display()
        );
        let mut records = 0;
        for f in files {
            for line in std::fs::read_to_string(&f).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["latchkeyNodeId"].as_str(), Some(id.as_str()), "{line}");
                records += 1;
            }
        }
        assert!(records > 0);
    }

    let data = cluster.nodes[0].lk.data.to_str().unwrap().to_owned();
    let out = cluster
        .latchkey(&["audit", "verify", "--data-dir", &data, "--output", "json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");
    let others: Vec<&str> = report["otherNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(others, [ids[1].as_str()], "{report}");
    let warned = report["warnings"].to_string();
    assert!(warned.contains(&ids[1]), "{report}");
}
