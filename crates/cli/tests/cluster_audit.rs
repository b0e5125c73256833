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
    let (ok, report) = verify_from(&cluster, &data1);
    assert!(ok, "{report:#}");
    let other = &report["otherNodes"][0];
    assert_eq!(other["node"], ids[1].as_str(), "{report:#}");
    assert_eq!(other["intact"], true, "{report:#}");
    assert_eq!(other["records"], sealed, "{report:#}");
    assert_eq!(other["recordsUnsigned"], 0, "{report:#}");
    // The logins refused while the store was down are there (node 2's
    // only failures), found from node 1 with its disk gone.
    let refused = lookup_from(&cluster, &data1, &["--node", &ids[1], "--errors-only"]);
    assert!(refused.len() >= 3, "{refused:#?}");

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
    let other = &report["otherNodes"][0];
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
    let others: Vec<&str> = report["otherNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(others, [ids[1].as_str()], "{report}");
}
