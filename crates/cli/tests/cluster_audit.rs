#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The audit trail with several nodes on one PostgreSQL store (issue 22):
//! every record names the node that sealed it, each node's trail is
//! copied to the store, and `audit verify` and `audit lookup` on any node
//! cover every node.

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

/// Signs in to node 1's console as a user allowed to read the trail
/// (Python `requests`, the sign-in form's CSRF token and cookie by hand)
/// and checks that the Audit page's export holds `node`'s CreateUser.
fn console_sees_node(cluster: &Cluster, node: &str) {
    let lookup = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"cloudtrail:LookupEvents","Resource":"*"}]}"#;
    cluster.aws_ok(1, &[], &["iam", "create-user", "--user-name", "auditor"]);
    cluster.aws_ok(
        1,
        &[],
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "auditor",
            "--policy-name",
            "lookup",
            "--policy-document",
            lookup,
        ],
    );
    cluster.aws_ok(
        1,
        &[],
        &[
            "iam",
            "create-login-profile",
            "--user-name",
            "auditor",
            "--password",
            "Auditor-Passw0rd!",
        ],
    );
    let script = r#"
import json, re, sys, requests
base, ca, node = sys.argv[1], sys.argv[2], sys.argv[3]
def cookie(r, name):
    m = re.search(name + r"=([^;]+)", r.headers.get("Set-Cookie", ""))
    assert m, r.headers
    return m.group(1)
page = requests.get(base + "/console/signin", verify=ca)
csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
signin = cookie(page, "__Host-latchkey-signin")
r = requests.post(base + "/console/signin", verify=ca, allow_redirects=False,
                  headers={"Origin": base, "Cookie": "__Host-latchkey-signin=" + signin},
                  data={"username": "auditor", "password": "Auditor-Passw0rd!", "csrf": csrf})
assert r.status_code in (302, 303), (r.status_code, r.text[:500])
session = cookie(r, "__Host-latchkey-session")
r = requests.get(base + "/console/audit?event-name=CreateUser&format=jsonl", verify=ca,
                 headers={"Cookie": "__Host-latchkey-session=" + session})
assert r.status_code == 200, r.status_code
records = [json.loads(l) for l in r.text.splitlines() if l]
print(json.dumps(sorted({e.get("latchkeyNodeId", "") for e in records})))
"#;
    let base = format!("https://localhost:{}", cluster.node(1).api_port);
    let ca = cluster.node(1).lk.data.join("ca.pem");
    let out = common::api::python(script, &[&base, ca.to_str().unwrap(), node]);
    let nodes: Vec<String> = serde_json::from_str(out.trim()).unwrap();
    assert!(nodes.iter().any(|n| n == node), "{nodes:?}");
    assert!(nodes.len() >= 2, "{nodes:?}");
}

const SHIPPED_TABLES: &[&str] = &[
    "audit_records",
    "audit_digests",
    "audit_trails",
    "audit_anchors",
];

fn backup(cluster: &Cluster, node: &str) {
    for t in SHIPPED_TABLES {
        store_sql(
            cluster,
            &format!(
                "DROP TABLE IF EXISTS bk_{t}; CREATE TABLE bk_{t} AS SELECT * FROM {t} WHERE node = '{node}'"
            ),
        );
    }
}

fn restore(cluster: &Cluster, node: &str) {
    let mut sql = String::from("BEGIN;");
    for t in SHIPPED_TABLES {
        sql.push_str(&format!(
            "DELETE FROM {t} WHERE node = '{node}'; INSERT INTO {t} SELECT * FROM bk_{t};"
        ));
    }
    sql.push_str("COMMIT;");
    store_sql(cluster, &sql);
}

/// `audit verify` from node 1 after `attack` on node 2's copy must fail,
/// and say which node's copy (`node`) is not intact.
fn refused(cluster: &Cluster, data1: &str, node: &str, attack: &str) -> serde_json::Value {
    let (ok, report) = verify_from(cluster, data1);
    assert!(!ok, "{attack}: verify passed: {report:#}");
    assert_eq!(
        node_in(&report, node)["intact"],
        false,
        "{attack}: {report:#}"
    );
    report
}

/// The red team's attacks on a gone node's copy, by someone who holds the
/// store's role (each undone before the next).
fn tamper_with_node_2(cluster: &Cluster, data1: &str, id1: &str, id2: &str) {
    backup(cluster, id2);

    // The anchor deleted, with the newest digest and records: the copy
    // ends early and nothing vouches for its end.
    store_sql(
        cluster,
        &format!(
            "BEGIN;
             DELETE FROM audit_anchors WHERE node = '{id2}';
             DELETE FROM audit_digests WHERE node = '{id2}' AND sequence = (SELECT max(sequence) FROM audit_digests WHERE node = '{id2}');
             DELETE FROM audit_records WHERE node = '{id2}' AND sequence > (SELECT max(sequence) / 2 FROM audit_records WHERE node = '{id2}');
             COMMIT;"
        ),
    );
    let report = refused(cluster, data1, id2, "anchor deleted and the copy cut");
    assert!(
        node_in(&report, id2)["problems"]
            .to_string()
            .contains("anchorMissing"),
        "{report:#}"
    );
    restore(cluster, id2);
    store_sql(
        cluster,
        &format!("DELETE FROM audit_anchors WHERE node = '{id2}'"),
    );
    refused(cluster, data1, id2, "anchor deleted alone");
    restore(cluster, id2);

    // Every row of node 2 gone: it said it sealed records.
    store_sql(
        cluster,
        &format!(
            "BEGIN; DELETE FROM audit_records WHERE node = '{id2}'; DELETE FROM audit_digests WHERE node = '{id2}';
             DELETE FROM audit_trails WHERE node = '{id2}'; DELETE FROM audit_anchors WHERE node = '{id2}'; COMMIT;"
        ),
    );
    let report = refused(cluster, data1, id2, "node 2 erased");
    assert!(
        report.to_string().contains("nodeTrailMissing"),
        "{report:#}"
    );
    restore(cluster, id2);

    // Node 2's copy replaced by node 1's, anchor and all.
    store_sql(
        cluster,
        &format!(
            "BEGIN;
             DELETE FROM audit_records WHERE node = '{id2}'; DELETE FROM audit_digests WHERE node = '{id2}';
             DELETE FROM audit_trails WHERE node = '{id2}'; DELETE FROM audit_anchors WHERE node = '{id2}';
             INSERT INTO audit_records SELECT '{id2}', sequence, segment, time_ms, name, principal, access_key_id, database, source_ip, error, line FROM audit_records WHERE node = '{id1}';
             INSERT INTO audit_digests SELECT '{id2}', sequence, document FROM audit_digests WHERE node = '{id1}';
             INSERT INTO audit_trails SELECT '{id2}', trail_id FROM audit_trails WHERE node = '{id1}';
             INSERT INTO audit_anchors SELECT '{id2}', trail_id, sequence, document, updated FROM audit_anchors WHERE node = '{id1}';
             COMMIT;"
        ),
    );
    let report = refused(cluster, data1, id2, "node 2's copy replaced by node 1's");
    assert!(
        report.to_string().contains("recordOfAnotherNode"),
        "{report:#}"
    );
    restore(cluster, id2);

    // Node 2's records moved under node 1's name: node 1's copy says so.
    store_sql(
        cluster,
        &format!(
            "BEGIN; UPDATE audit_records SET node = '{id1}', sequence = sequence + 1000000 WHERE node = '{id2}'; COMMIT;"
        ),
    );
    refused(cluster, data1, id1, "node 2's records moved under node 1");
    store_sql(
        cluster,
        &format!("DELETE FROM audit_records WHERE node = '{id1}' AND sequence > 1000000"),
    );
    restore(cluster, id2);

    // Records copied under a node id no node has: that node is judged
    // too, and has no trail or anchor to stand on.
    let made_up = "feedfacecafe0001";
    store_sql(
        cluster,
        &format!(
            "INSERT INTO audit_records SELECT '{made_up}', sequence, segment, time_ms, name, principal, access_key_id, database, source_ip, error, line FROM audit_records WHERE node = '{id1}' LIMIT 20"
        ),
    );
    refused(cluster, data1, made_up, "records under a made-up node");
    store_sql(
        cluster,
        &format!("DELETE FROM audit_records WHERE node = '{made_up}'"),
    );

    // What lookups filter on altered, the lines untouched: hidden from
    // `audit lookup --event-name CreateUser`, but not from verify.
    store_sql(
        cluster,
        &format!(
            "UPDATE audit_records SET name = 'GetUser', principal = 'nobody', time_ms = 0 WHERE node = '{id2}' AND name = 'CreateUser'"
        ),
    );
    let report = refused(cluster, data1, id2, "lookup fields altered");
    assert!(
        report.to_string().contains("lookupFieldsAltered"),
        "{report:#}"
    );
    restore(cluster, id2);

    // A forged record chained after the last, past node 2's final anchor:
    // said in a warning (a node that died may leave such a tail).
    let last = store_sql(
        cluster,
        &format!(
            "SELECT sequence || E'\t' || segment || E'\t' || line FROM audit_records WHERE node = '{id2}' ORDER BY sequence DESC LIMIT 1"
        ),
    );
    let mut parts = last.splitn(3, '\t');
    let seq: u64 = parts.next().unwrap().parse().unwrap();
    let segment: u64 = parts.next().unwrap().parse().unwrap();
    let line = parts.next().unwrap().to_owned();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(line.as_bytes()));
    let forged = line
        .replacen(
            &format!("\"sequence\":{seq}"),
            &format!("\"sequence\":{}", seq + 1),
            1,
        )
        .replacen(v["previousHash"].as_str().unwrap(), &hash, 1);
    let (key, _, time_ms) = latchkey_trail_key(&forged);
    store_sql(
        cluster,
        &format!(
            "INSERT INTO audit_records (node, sequence, segment, time_ms, name, principal, error, line) VALUES ('{id2}', {}, {segment}, {time_ms}, '{}', {}, false, $lk${forged}$lk$)",
            seq + 1,
            key.0,
            key.1.map_or("NULL".to_owned(), |p| format!("'{p}'")),
        ),
    );
    let (_, report) = verify_from(cluster, data1);
    assert!(
        report["warnings"]
            .to_string()
            .contains("records after its last anchor"),
        "{report:#}"
    );
    restore(cluster, id2);

    let (ok, report) = verify_from(cluster, data1);
    assert!(ok, "restored: {report:#}");
}

/// A record line's event name, principal and time, as the store files it.
fn latchkey_trail_key(line: &str) -> ((String, Option<String>), u64, i64) {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let time = v["eventTime"].as_str().unwrap();
    let t = humantime::parse_rfc3339(time).unwrap();
    let ms = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    (
        (
            v["eventName"].as_str().unwrap().to_owned(),
            v["userIdentity"]["arn"].as_str().map(str::to_owned),
        ),
        v["sequence"].as_u64().unwrap(),
        i64::try_from(ms).unwrap(),
    )
}

/// What `audit verify --output json` says of `node`'s copy in the store.
fn node_in<'a>(report: &'a serde_json::Value, node: &str) -> &'a serde_json::Value {
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("no node {node}: {report:#}"))
}

/// Each node's id (`node.id` in its data directory).
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

/// SQL on the store's database, as the superuser (an attacker with the
/// store's rights, in the tampering steps).
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

/// The whole cluster's trail from any node: records name their node; each
/// node's trail is copied to the store as it is sealed, through a store
/// outage; `audit lookup` on node 1 finds node 2's logins and statements;
/// `audit verify` on node 1 verifies node 2's chain from the store, also
/// once node 2 and its disk are gone, and names node 2 when its copy was
/// tampered with (a record deleted, the newest ones cut off).
#[test]
fn every_node_s_trail_is_verified_and_searched_from_any_node() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let mut cluster = Cluster::start(root, 2, &[]);
    let ids = node_ids(&cluster);
    assert_ne!(ids[0], ids[1]);
    for n in 1..=2 {
        cluster.aws_ok(
            n,
            &[],
            &["iam", "create-user", "--user-name", &format!("u{n}")],
        );
        let token = aws_token(&cluster.node(n).lk, &[], "localhost", "app");
        for i in 1..=3 {
            let out = psql_on(cluster.node(n), &token, &format!("select 'mark-{n}-{i}'"))
                .output()
                .unwrap();
            assert_eq!(stdout_ok(&out), format!("mark-{n}-{i}"));
        }
    }
    // The store goes away (with the upstream: one server) while node 2
    // records refused logins; its records reach the store once it is back.
    cluster.pg.stop();
    let token = aws_token(&cluster.node(2).lk, &[], "localhost", "app");
    for _ in 0..3 {
        let out = psql_on(cluster.node(2), &token, "select 'during the outage'")
            .output()
            .unwrap();
        assert!(!out.status.success());
    }
    std::thread::sleep(Duration::from_secs(1));
    cluster.pg.start_again();

    let data1 = cluster.nodes[0].lk.data.to_str().unwrap().to_owned();
    // Node 1 finds node 2's logins and statements (and its own).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let statements = lookup_from(&cluster, &data1, &["--event-name", "Statement"]);
        let of = |id: &str| {
            statements
                .iter()
                .filter(|e| e["latchkeyNodeId"] == id)
                .count()
        };
        if of(&ids[0]) >= 3 && of(&ids[1]) >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "statements by node: {} {}",
            of(&ids[0]),
            of(&ids[1])
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // The console's Audit page on node 1 shows node 2's records too.
    console_sees_node(&cluster, &ids[1]);
    let node2 = lookup_from(&cluster, &data1, &["--node", &ids[1]]);
    assert!(node2.iter().all(|e| e["latchkeyNodeId"] == ids[1].as_str()));
    assert!(node2.iter().any(|e| e["eventName"] == "CreateUser"));
    let times: Vec<&str> = node2
        .iter()
        .map(|e| e["eventTime"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    // Node 2 stops (its last records and digest go to the store) and its
    // disk is lost: node 1 still verifies every record it ever sealed.
    stop(&mut cluster, 1);
    let sealed: usize = segments(&cluster.nodes[1].lk.data)
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum();
    std::fs::remove_dir_all(&cluster.nodes[1].lk.data).unwrap();
    // It counts as gone once it has not reported for 20 s.
    std::thread::sleep(Duration::from_secs(21));
    let (ok, report) = verify_from(&cluster, &data1);
    assert!(ok, "{report:#}");
    assert!(
        report["warnings"].to_string().contains("is gone"),
        "{report:#}"
    );
    let other = node_in(&report, &ids[1]);
    assert_eq!(other["node"], ids[1].as_str(), "{report:#}");
    assert_eq!(other["intact"], true, "{report:#}");
    assert_eq!(other["records"], sealed, "{report:#}");
    assert_eq!(other["recordsUnsigned"], 0, "{report:#}");
    // The logins refused while the store was down are there (node 2's
    // only failures), found from node 1 with its disk gone.
    let refused = lookup_from(&cluster, &data1, &["--node", &ids[1], "--errors-only"]);
    assert!(refused.len() >= 3, "{refused:#?}");

    tamper_with_node_2(&cluster, &data1, &ids[0], &ids[1]);

    // Tampering with node 2's copy: one record deleted, the newest cut off.
    let middle = sealed / 2;
    store_sql(
        &cluster,
        &format!(
            "DELETE FROM audit_records WHERE node = '{}' AND (sequence = {middle} OR sequence > {})",
            ids[1],
            sealed - 2
        ),
    );
    let (ok, report) = verify_from(&cluster, &data1);
    assert!(!ok, "{report:#}");
    assert_eq!(
        report["problems"].as_array().unwrap().len(),
        0,
        "node 1 is intact: {report:#}"
    );
    let other = node_in(&report, &ids[1]);
    assert_eq!(other["intact"], false, "{report:#}");
    let problems = other["problems"].to_string();
    assert!(problems.contains("recordsDeleted"), "{report:#}");
    assert!(problems.contains("trailTruncated"), "{report:#}");
    let text = cluster
        .latchkey(&["audit", "verify", "--data-dir", &data1])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("PROBLEM  node {}:", ids[1])),
        "{text}"
    );
    assert!(text.contains("The trail was tampered with."), "{text}");
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

    let ids = node_ids(&cluster);
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
    let (ok, report) = verify_from(&cluster, &data);
    assert!(ok, "{report:#}");
    let others: Vec<&str> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["thisNode"] == false)
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(others, [ids[1].as_str()], "{report}");
}

// Attacks by someone who holds the store's role (found by a red team):
// each test asserts the safe behaviour.

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
/// included: node 1 remembers it (`peers.json`), so verify reports it; and
/// so does a verifier without that record, from node 1's signed anchor in
/// the store, which names node 2 and its reach.
#[test]
fn a_node_erased_from_the_whole_store_is_still_reported() {
    let root = tempfile::tempdir().unwrap();
    let (mut cluster, ids, data1) = two_nodes_node_2_stopped(root.path());
    // Node 1 seals a record of its own: a node with none has no anchor.
    cluster.aws_ok(1, &[], &["iam", "create-user", "--user-name", "u1"]);
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
    // Node 1's data directory without its record of peers.
    let blind = root.path().join("blind");
    assert!(
        Command::new("cp")
            .args(["-a", &data1, blind.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    std::fs::remove_file(blind.join("peers.json")).unwrap();
    let (ok, report) = verify_from(&cluster, blind.to_str().unwrap());
    assert!(
        !ok,
        "node 2 erased, verified without peers.json: still intact: {report:#}"
    );
    assert!(
        report.to_string().contains("nodeTrailMissing")
            && report.to_string().contains(id2.as_str()),
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
    // A lookup does not show the forged record as evidence: it is past
    // the gone node's last anchor, and the lookup says so.
    let out = cluster
        .latchkey(&["audit", "lookup", "--data-dir", &data1, "--output", "json"])
        .args(["--node", id2, "--event-name", "DeleteUser"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
    assert_eq!(
        v["Events"],
        serde_json::json!([]),
        "the forged DeleteUser shown: {v}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("node {id2} is gone"))
            && stderr.contains("1 matching record(s)")
            && stderr.contains("vouched for by nothing"),
        "{stderr}"
    );
    // Its anchored records still show.
    assert!(!lookup_from(&cluster, &data1, &["--node", id2]).is_empty());
    assert!(
        !ok || report["warnings"]
            .to_string()
            .contains("after its last anchor")
            || report.to_string().contains("records after its last anchor"),
        "forged tail past a dead node's final anchor went unmentioned once `seen` was set in the future: {report:#}"
    );
}
