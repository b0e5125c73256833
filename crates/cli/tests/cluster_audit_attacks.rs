#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Attacks on the audit copies in a shared store by someone who holds the
//! store's role (found by a red team on issue 22): each test asserts the
//! safe behaviour.

mod common;
use common::cluster::*;
use common::*;

use std::path::Path;
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

fn node_ids(cluster: &Cluster) -> Vec<String> {
    cluster
        .nodes
        .iter()
        .map(|n| {
            std::fs::read_to_string(n.lk.data.join("node.id"))
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect()
}

fn store_sql(cluster: &Cluster, sql: &str) -> String {
    let out = as_pg_user(Path::new("/usr/bin/psql"))
        .arg("-h")
        .arg(&cluster.pg.dir)
        .args(["-p", &cluster.pg.port.to_string(), "-U", "postgres"])
        .args([
            "-d",
            "latchkey",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    stdout_ok(&out)
}

fn verify_from(cluster: &Cluster, data: &str) -> (bool, serde_json::Value) {
    let out = cluster
        .latchkey(&["audit", "verify", "--data-dir", data, "--output", "json"])
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

fn lookup_from(cluster: &Cluster, data: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let out = cluster
        .latchkey(&["audit", "lookup", "--data-dir", data, "--output", "json"])
        .args(["--max-results", "1000"])
        .args(args)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
    v["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap())
        .collect()
}

/// Two nodes; node 2 seals some records, they reach the store, node 2 stops.
fn two_nodes_node_2_stopped(root: &Path) -> (Cluster, Vec<String>, String) {
    let mut cluster = Cluster::start(root, 2, &[]);
    let ids = node_ids(&cluster);
    cluster.aws_ok(2, &[], &["iam", "create-user", "--user-name", "u2"]);
    let data1 = cluster.nodes[0].lk.data.to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lookup_from(&cluster, &data1, &["--node", &ids[1]])
        .iter()
        .any(|e| e["eventName"] == "CreateUser")
    {
        assert!(
            Instant::now() < deadline,
            "node 2's CreateUser never shipped"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    stop(&mut cluster, 1);
    (cluster, ids, data1)
}

/// A stopped node erased from every table of the store, its `nodes` row
/// included: node 1 remembers it (`peers.json`), so verify reports it.
#[test]
fn a_node_erased_from_the_whole_store_is_still_reported() {
    let root = tempfile::tempdir().unwrap();
    let (mut cluster, ids, data1) = two_nodes_node_2_stopped(root.path());
    std::thread::sleep(Duration::from_secs(21));
    let (ok, report) = verify_from(&cluster, &data1);
    assert!(ok, "before the attack: {report:#}");
    let id2 = &ids[1];
    store_sql(
        &cluster,
        &format!(
            "BEGIN; DELETE FROM audit_records WHERE node = '{id2}'; DELETE FROM audit_digests WHERE node = '{id2}';
             DELETE FROM audit_trails WHERE node = '{id2}'; DELETE FROM audit_anchors WHERE node = '{id2}';
             DELETE FROM nodes WHERE node = '{id2}'; COMMIT;"
        ),
    );
    let (ok, report) = verify_from(&cluster, &data1);
    eprintln!("after erasing node 2 entirely: ok={ok} {report:#}");
    assert!(
        !ok,
        "node 2 erased with its nodes row, verify still intact: {report:#}"
    );
    assert!(
        report.to_string().contains("nodeTrailMissing")
            || report.to_string().contains("NodeTrailMissing")
            || report.to_string().contains(id2.as_str()),
        "{report:#}"
    );
    let _ = &mut cluster;
}

/// A stopped node made to look alive by a `seen` in the future, to hide a
/// record forged past its final anchor: it is treated as gone, and both the
/// date and the unanchored record are named.
#[test]
fn a_report_dated_in_the_future_keeps_no_dead_node_alive() {
    let root = tempfile::tempdir().unwrap();
    let (cluster, ids, data1) = two_nodes_node_2_stopped(root.path());
    let id2 = &ids[1];
    std::thread::sleep(Duration::from_secs(21));
    let last = store_sql(
        &cluster,
        &format!(
            "SELECT sequence || E'\t' || segment || E'\t' || line FROM audit_records WHERE node = '{id2}' ORDER BY sequence DESC LIMIT 1"
        ),
    );
    let mut parts = last.splitn(3, '\t');
    let seq: u64 = parts.next().unwrap().parse().unwrap();
    let _segment: u64 = parts.next().unwrap().parse().unwrap();
    let line = parts.next().unwrap().to_owned();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(line.as_bytes()));
    let forged = line
        .replacen(
            &format!("\"sequence\":{seq}"),
            &format!("\"sequence\":{}", seq + 1),
            1,
        )
        .replacen(v["previousHash"].as_str().unwrap(), &hash, 1)
        .replacen(v["eventName"].as_str().unwrap(), "DeleteUser", 1);
    let fv: serde_json::Value = serde_json::from_str(&forged).unwrap();
    let t = humantime::parse_rfc3339(fv["eventTime"].as_str().unwrap()).unwrap();
    let time_ms = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let principal = fv["userIdentity"]["arn"]
        .as_str()
        .map_or("NULL".to_owned(), |p| format!("'{p}'"));
    store_sql(
        &cluster,
        &format!(
            "INSERT INTO audit_records (node, sequence, segment, time_ms, name, principal, access_key_id, database, source_ip, error, line) SELECT node, {}, segment, {time_ms}, 'DeleteUser', {principal}, access_key_id, database, source_ip, error, $lk${forged}$lk$ FROM audit_records WHERE node = '{id2}' AND sequence = {seq}",
            seq + 1
        ),
    );
    let (_, control) = verify_from(&cluster, &data1);
    eprintln!("control (dead node, forged tail): {control:#}");
    store_sql(
        &cluster,
        &format!("UPDATE nodes SET seen = 4102444800 WHERE node = '{id2}'"),
    );
    let (ok, report) = verify_from(&cluster, &data1);
    eprintln!("with seen in 2100: ok={ok} {report:#}");
    assert!(
        report.to_string().contains("ahead of this clock"),
        "the future date is not named: {report:#}"
    );
    let found = lookup_from(
        &cluster,
        &data1,
        &["--node", id2, "--event-name", "DeleteUser"],
    );
    eprintln!("lookup finds the forged DeleteUser: {}", found.len());
    assert!(
        !ok || report["warnings"]
            .to_string()
            .contains("after its last anchor")
            || report.to_string().contains("records after its last anchor"),
        "forged tail past a dead node's final anchor went unmentioned once `seen` was set in the future: {report:#}"
    );
}
