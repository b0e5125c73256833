#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Several `latchkey serve` nodes sharing one PostgreSQL store, reached
//! over TLS with its certificate and host name checked: what one node
//! writes, the others honour at once (the store's change feed), with the
//! stock AWS CLI and psql as the clients.

mod common;
use common::cluster::*;
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn nodes_sharing_a_postgres_store_act_as_one() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let cluster = Cluster::start(root, 3, &[]);

    // A user created through node 1 signs in through node 3 at once.
    cluster.user_with_policy(
        "dana",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["rds-db:connect","sts:GetSessionToken","sts:GetCallerIdentity"],"Resource":"*"}]}"#,
    );
    let key = cluster.aws_ok(1, &[], &["iam", "create-access-key", "--user-name", "dana"]);
    let dana = api::Creds::access_key(&key).env_vars();
    let me = cluster.aws_ok(3, &dana, &["sts", "get-caller-identity"]);
    assert!(me["Arn"].as_str().unwrap().ends_with(":user/dana"), "{me}");
    let creds: Vec<(&str, &str)> = dana.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let token = aws_token(&cluster.node(3).lk, &creds, "localhost", "app");
    let out = psql_on(cluster.node(3), &token, "select 'through node 3'")
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&out), "through node 3");

    // A revocation through node 2 ends a psql session on node 1 within 2 s.
    let session = session_credentials(&cluster.node(1).lk, cluster.node(1).api_port, &dana);
    let creds: Vec<(&str, &str)> = session
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let token = aws_token(&cluster.node(1).lk, &creds, "localhost", "app");
    let running = psql_on(cluster.node(1), &token, "select pg_sleep(60)")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // revoke strictly after the session's issue second
    latchkey_api(
        &cluster.node(2).lk,
        cluster.node(2).api_port,
        &["iam", "revoke-sessions", "--user-name", "dana"],
    );
    let revoked_at = Instant::now();
    let ended = running.wait_with_output().unwrap();
    let took = revoked_at.elapsed();
    assert!(!ended.status.success());
    assert!(
        took < Duration::from_secs(2),
        "the revoked session ran on for {took:?}"
    );
    let err = String::from_utf8_lossy(&ended.stderr);
    assert!(err.contains("was revoked"), "{err}");

    // A TOTP code used on node 1 is refused on node 3.
    let seed = seed_path(root);
    let serial = api::enable_virtual_mfa_with(|args| cluster.aws_ok(1, &[], args), "dana", &seed);
    api::next_totp_step();
    let code = api::totp(&seed, 0);
    let mfa = [
        "sts",
        "get-session-token",
        "--serial-number",
        &serial,
        "--token-code",
        &code,
    ];
    cluster.aws_ok(1, &dana, &mfa);
    let replay = cluster.aws(3, &dana, &mfa);
    assert!(!replay.status.success(), "a TOTP code was accepted twice");

    // A key deactivated through node 2 stops working on node 3 (which has
    // it cached) within a second.
    let key_id = key["AccessKey"]["AccessKeyId"].as_str().unwrap();
    cluster.aws_ok(3, &dana, &["sts", "get-caller-identity"]);
    cluster.aws_ok(
        2,
        &[],
        &[
            "iam",
            "update-access-key",
            "--user-name",
            "dana",
            "--access-key-id",
            key_id,
            "--status",
            "Inactive",
        ],
    );
    let changed = Instant::now();
    let refused = cluster.aws(3, &dana, &["sts", "get-caller-identity"]);
    assert!(
        !refused.status.success(),
        "node 3 still took a key deactivated {:?} ago",
        changed.elapsed()
    );

    // The store is in use now: migrating the embedded one again would roll
    // it back, and is refused.
    let again = latchkey(&["store", "migrate", "--from"])
        .arg(cluster.node(1).lk.data.as_os_str())
        .args(["--to", &cluster.store_url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && err.contains("not overwriting"),
        "{err}"
    );
}

/// HAProxy in TCP mode in front of the nodes' PostgreSQL gateways: each
/// node is checked on `/readyz` (so a draining node gets no new clients),
/// and a connection refused by a dead node is tried on another.
struct Haproxy {
    child: std::process::Child,
    port: u16,
}

impl Haproxy {
    fn start(root: &Path, port: u16, nodes: &[(u16, u16)]) -> Self {
        let mut cfg = format!(
            "global\n    maxconn 2000\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n    retries 3\n    option redispatch\nfrontend gateways\n    bind 127.0.0.1:{port}\n    default_backend nodes\nbackend nodes\n    balance roundrobin\n    option httpchk GET /readyz\n"
        );
        for (i, (pg, metrics)) in nodes.iter().enumerate() {
            cfg += &format!(
                "    server node{} 127.0.0.1:{pg} check port {metrics} inter 200ms fall 1 rise 1\n",
                i + 1
            );
        }
        let path = root.join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("haproxy.log")).unwrap())
            .spawn()
            .expect("haproxy (scripts/test installs it)");
        wait_for_port(port);
        Self { child, port }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Logins through HAProxy, one after the other on each of `threads`
/// threads, each retried until it succeeds: how many attempts failed and
/// how many logins succeeded, until `stop` is set.
fn retrying_clients(
    threads: usize,
    conninfo: String,
    token: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<(u64, u64)>> {
    (0..threads)
        .map(|_| {
            let (conninfo, token, stop) = (conninfo.clone(), token.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0, 0);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let out = Command::new("psql")
                        .arg(&conninfo)
                        .args(["-X", "-A", "-t", "-c", "select 1"])
                        .env("PGPASSWORD", &token)
                        .env("PGCONNECT_TIMEOUT", "5")
                        .output()
                        .unwrap();
                    if out.status.success() {
                        ok += 1;
                    } else {
                        failed += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                (ok, failed)
            })
        })
        .collect()
}

fn wait_ready(node: &Node, ready: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = std::net::TcpStream::connect(("127.0.0.1", node.metrics_port))
            .ok()
            .and_then(|mut tcp| {
                use std::io::{Read, Write};
                tcp.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").ok()?;
                let mut text = String::new();
                tcp.read_to_string(&mut text).ok()?;
                Some(text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200"))
            })
            .unwrap_or(false);
        if up == ready {
            return;
        }
        assert!(Instant::now() < deadline, "node never became ready={ready}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn behind_haproxy_a_killed_node_loses_only_its_sessions_and_a_rolling_restart_fails_no_login() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let lb_port = free_port();
    let extra = vec![
        "--postgres-token-port".to_owned(),
        lb_port.to_string(),
        "--drain-timeout".to_owned(),
        "5s".to_owned(),
        // HAProxy checks every 200 ms: it stops sending before the
        // listeners close.
        "--drain-delay".to_owned(),
        "600ms".to_owned(),
    ];
    let mut cluster = Cluster::start(root, 3, &extra);
    let lb = Haproxy::start(
        root,
        lb_port,
        &cluster
            .nodes
            .iter()
            .map(|n| (n.lk.pg_port, n.metrics_port))
            .collect::<Vec<_>>(),
    );
    // Tokens are signed for the load balancer's port, which every node takes.
    let token = aws_token_for_port(&cluster.node(1).lk, lb.port, &[], "localhost", "app");
    let ca = cluster.node(1).lk.data.join("ca.pem");
    let through_lb = format!(
        "host=localhost port={} user=app dbname=orders sslmode=verify-full sslrootcert={}",
        lb.port,
        ca.display()
    );
    let direct = |node: &Node| {
        format!(
            "host=localhost port={} user=app dbname=orders sslmode=verify-full sslrootcert={}",
            node.lk.pg_port,
            ca.display()
        )
    };
    let out = Command::new("psql")
        .arg(&through_lb)
        .args(["-X", "-A", "-t", "-c", "select 'through haproxy'"])
        .env("PGPASSWORD", &token)
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&out), "through haproxy");

    // pgbench -C through HAProxy, a long session on each node, and retrying
    // clients; then node 2 is killed with -9.
    let init = Command::new("pgbench")
        .args(["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p"])
        .arg(cluster.pg.port.to_string())
        .args(["-U", "app", "orders"])
        .env("PGPASSWORD", "app-secret")
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let pgbench = Command::new("pgbench")
        .args(["-C", "-n", "-T", "8", "-c", "4", "-j", "2", "-S"])
        .arg(&through_lb)
        .env("PGPASSWORD", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let long: Vec<_> = (1..=3)
        .map(|n| {
            Command::new("psql")
                .arg(direct(cluster.node(n)))
                .args([
                    "-X",
                    "-A",
                    "-t",
                    "-c",
                    "select pg_sleep(6); select 'survived'",
                ])
                .env("PGPASSWORD", &token)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients = retrying_clients(2, through_lb.clone(), token.clone(), stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    cluster.nodes[1].lk.child.kill().unwrap(); // SIGKILL
    cluster.nodes[1].lk.child.wait().unwrap();
    let outcomes: Vec<bool> = long
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("survived")
        })
        .collect();
    assert_eq!(
        outcomes,
        [true, false, true],
        "only node 2's session is lost"
    );
    let bench = pgbench.wait_with_output().unwrap();
    let bench_out = String::from_utf8_lossy(&bench.stdout);
    assert!(
        bench_out.contains("number of transactions actually processed"),
        "{bench_out}{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = clients
        .into_iter()
        .map(|c| c.join().unwrap())
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    assert!(ok > 10, "{ok} logins succeeded");
    // A login in flight on node 2 when it died is one of node 2's sessions,
    // lost with it (at most one per client); every other attempt goes to a
    // node that is up (HAProxy redispatches a refused connect).
    assert!(
        failed <= 2,
        "{failed} logins failed though HAProxy had other nodes"
    );

    // Node 2 comes back; then a rolling restart of all three (SIGTERM:
    // not ready, drain, exit; start; ready) fails no login.
    let restart = |cluster: &mut Cluster, i: usize| {
        let node = &cluster.nodes[i];
        let (root, api, ports) = (
            node.root.clone(),
            node.api_port,
            (node.lk.pg_port, node.lk.mysql_port, node.metrics_port),
        );
        let fresh = Node::spawn(&root, api, ports, &cluster.store_url, &extra);
        wait_ready(&fresh, true);
        let old = std::mem::replace(&mut cluster.nodes[i], fresh);
        drop(old);
    };
    restart(&mut cluster, 1);
    std::thread::sleep(Duration::from_millis(500)); // HAProxy's check sees it
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients = retrying_clients(2, through_lb.clone(), token.clone(), stop.clone());
    for i in 0..3 {
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
        restart(&mut cluster, i);
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = clients
        .into_iter()
        .map(|c| c.join().unwrap())
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    assert!(ok > 10, "{ok} logins succeeded");
    assert_eq!(failed, 0, "a login failed during the rolling restart");
}

/// `psql -c sql` as `app` on database `orders` through `node` (to the
/// registered database `inventory`, the one on the endpoint `localhost`).
fn inventory_on(node: &Node, token: &str, sql: &str) -> std::process::Output {
    let ca = node.lk.data.join("ca.pem");
    Command::new("psql")
        .arg(format!(
            "host=localhost port={} user=app dbname=orders sslmode=verify-full sslrootcert={}",
            node.lk.pg_port,
            ca.display()
        ))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap()
}

/// The store's PostgreSQL stops (as in a failover) while clients log in
/// through both nodes: within `--store-outage-grace` logins whose key and
/// policy were read lately still succeed and the nodes stay ready; past
/// it logins are refused and the nodes are not ready; once the store is
/// back everything works again and every node's trail verifies. Then the
/// change feed alone is cut (new store connections refused): a node falls
/// back to polling and still sees a key deactivated on another within a
/// second.
#[test]
fn a_store_outage_is_ridden_out_for_the_grace_then_fails_closed_and_a_lost_feed_falls_back_to_polling()
 {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let extra = vec!["--store-outage-grace".to_owned(), "6s".to_owned()];
    let mut cluster = Cluster::start(root, 2, &extra);
    // The upstream on a server of its own, so that stopping the store's
    // server stops only the store.
    let upstream = Postgres::start_with(
        root,
        &PgOptions {
            name: Some("upstream".into()),
            ..Default::default()
        },
    );
    let data = cluster.node(1).lk.data.clone();
    let d = data.to_str().unwrap();
    let out = cluster
        .latchkey(&["db", "remove", "--data-dir", d, "--name", "orders"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.register_db(&data, true, "inventory", upstream.port);

    cluster.aws_ok(1, &[], &["iam", "create-user", "--user-name", "erin"]);
    cluster.aws_ok(
        1,
        &[],
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "erin",
            "--policy-name",
            "db",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["rds-db:connect","sts:GetCallerIdentity"],"Resource":"*"}]}"#,
        ],
    );
    let key = cluster.aws_ok(1, &[], &["iam", "create-access-key", "--user-name", "erin"]);
    let erin = api::Creds::access_key(&key).env_vars();
    let creds: Vec<(&str, &str)> = erin.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let tokens: Vec<String> = (1..=2)
        .map(|n| aws_token(&cluster.node(n).lk, &creds, "localhost", "app"))
        .collect();
    for n in 1..=2 {
        let out = inventory_on(cluster.node(n), &tokens[n - 1], "select 'warm'");
        assert_eq!(stdout_ok(&out), "warm");
    }

    // Clients log in through node 2 all along.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ca = cluster.node(2).lk.data.join("ca.pem");
    let clients = retrying_clients(
        1,
        format!(
            "host=localhost port={} user=app dbname=orders sslmode=verify-full sslrootcert={}",
            cluster.node(2).lk.pg_port,
            ca.display()
        ),
        tokens[1].clone(),
        stop.clone(),
    );

    // A session in progress on node 1 spans the outage.
    let ca1 = cluster.node(1).lk.data.join("ca.pem");
    let long = Command::new("psql")
        .arg(format!(
            "host=localhost port={} user=app dbname=orders sslmode=verify-full sslrootcert={}",
            cluster.node(1).lk.pg_port,
            ca1.display()
        ))
        .args([
            "-X",
            "-A",
            "-t",
            "-c",
            "select pg_sleep(9); select 'survived'",
        ])
        .env("PGPASSWORD", &tokens[0])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    cluster.pg.stop();
    let stopped = Instant::now();
    // Within the grace: the key and policy read a moment ago serve, the
    // pooled upstream connection carries the session, and the node is ready.
    let out = inventory_on(cluster.node(1), &tokens[0], "select 'during the outage'");
    assert_eq!(stdout_ok(&out), "during the outage");
    assert!(
        stopped.elapsed() < Duration::from_secs(6),
        "too slow to test the grace"
    );
    wait_ready(cluster.node(1), true);
    // Past it: refused, and not ready.
    std::thread::sleep(Duration::from_secs(7).saturating_sub(stopped.elapsed()));
    let out = inventory_on(cluster.node(1), &tokens[0], "select 'too late'");
    assert!(
        !out.status.success(),
        "a login went on {:?} into the outage",
        stopped.elapsed()
    );
    // Refused as a server that cannot take connections now, not as bad
    // credentials (which would count towards brute force).
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not accepting connections"), "{err}");
    // What needs the store is refused with a clear error.
    let mut create = admin_aws(&cluster.node(1).lk.data);
    create
        .args([
            "--endpoint-url",
            &format!("https://localhost:{}", cluster.node(1).api_port),
        ])
        .args(["iam", "create-user", "--user-name", "during-outage"])
        .env("AWS_MAX_ATTEMPTS", "1");
    let out = create.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ServiceUnavailable"), "{err}");
    wait_ready(cluster.node(1), false);
    wait_ready(cluster.node(2), false);

    // The store comes back: ready, logins, and the trails verify.
    cluster.pg.start_again();
    let long = long.wait_with_output().unwrap();
    assert_eq!(stdout_ok(&long).lines().last(), Some("survived"));
    for n in 1..=2 {
        wait_ready(cluster.node(n), true);
    }
    for n in 1..=2 {
        let out = inventory_on(cluster.node(n), &tokens[n - 1], "select 'after'");
        assert_eq!(stdout_ok(&out), "after");
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, _failed) = clients
        .into_iter()
        .map(|c| c.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(ok > 0);
    for node in &mut cluster.nodes {
        assert!(node.lk.child.try_wait().unwrap().is_none(), "a node exited");
    }
    let refused = trail_text(&cluster.node(1).lk.data);
    assert!(
        refused.contains("\"failure\":\"store_unavailable\""),
        "no store_unavailable record"
    );
    assert!(!refused.contains("\"failure\":\"unknown_key\""));
    for n in 1..=2 {
        let data = cluster.node(n).lk.data.to_str().unwrap().to_owned();
        let out = cluster
            .latchkey(&["audit", "verify", "--data-dir", &data])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "node {n}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The change feed alone is cut: the store takes no new connection, and
    // the feed's is ended. Node 1 polls, and sees a key deactivated through
    // node 2 (on its pooled connections) within a second.
    let hba = cluster.pg.dir.join("data").join("pg_hba.conf");
    let original = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all latchkey 0.0.0.0/0 reject\n{original}"),
    )
    .unwrap();
    cluster.pg.sql("SELECT pg_reload_conf()");
    cluster.pg.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'latchkey change feed'",
    );
    let log = cluster.node(1).root.join("latchkey.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("change feed is down")
    {
        assert!(
            Instant::now() < deadline,
            "node 1 never noticed the feed was gone"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.aws_ok(1, &erin, &["sts", "get-caller-identity"]);
    let key_id = key["AccessKey"]["AccessKeyId"].as_str().unwrap();
    cluster.aws_ok(
        2,
        &[],
        &[
            "iam",
            "update-access-key",
            "--user-name",
            "erin",
            "--access-key-id",
            key_id,
            "--status",
            "Inactive",
        ],
    );
    let changed = Instant::now();
    loop {
        let sent = changed.elapsed();
        let out = cluster.aws(1, &erin, &["sts", "get-caller-identity"]);
        if !out.status.success() {
            break;
        }
        assert!(
            sent < Duration::from_secs(1),
            "node 1 took a key deactivated {sent:?} before"
        );
    }
    std::fs::write(&hba, original).unwrap();
    cluster.pg.sql("SELECT pg_reload_conf()");
}

/// `latchkey store nodes --output json` through node `n`'s data directory.
fn store_nodes(cluster: &Cluster, n: usize) -> serde_json::Value {
    let data = cluster.node(n).lk.data.to_str().unwrap().to_owned();
    let out = cluster
        .latchkey(&["store", "nodes", "--data-dir", &data, "--output", "json"])
        .output()
        .unwrap();
    serde_json::from_str(&stdout_ok(&out)).unwrap()
}

/// Waits until every node reports holding `keys` (ids) and sealing with `sealing`.
fn wait_for_keys(cluster: &Cluster, keys: &[u64], sealing: u64) {
    wait_for_keys_of(cluster, None, keys, sealing);
}

/// As [`wait_for_keys`], for node `n` alone (by its node id).
fn wait_for_keys_on(cluster: &Cluster, n: usize, keys: &[u64], sealing: u64) {
    wait_for_keys_of(cluster, Some(n), keys, sealing);
}

fn wait_for_keys_of(cluster: &Cluster, only: Option<usize>, keys: &[u64], sealing: u64) {
    let only = only.map(|n| {
        std::fs::read_to_string(cluster.node(n).lk.data.join("node.id"))
            .unwrap()
            .trim()
            .to_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = store_nodes(cluster, 1);
        let reports: Vec<&serde_json::Value> = nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| only.as_deref().is_none_or(|id| m["node"] == id))
            .collect();
        let settled = !reports.is_empty()
            && reports.iter().all(|n| {
                let held: Vec<u64> = n["masterKeys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k["id"].as_u64().unwrap())
                    .collect();
                held == keys && n["sealingKey"] == sealing
            });
        if settled {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes never settled: {nodes}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn copy_master_key(cluster: &Cluster, from: usize, to: usize) {
    let (from, to) = (
        cluster.node(from).lk.data.join("master.key"),
        cluster.node(to).lk.data.join("master.key"),
    );
    // Written aside and renamed, as an operator's tooling would.
    let aside = to.with_extension("key.new");
    std::fs::copy(&from, &aside).unwrap();
    std::fs::set_permissions(&aside, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::rename(&aside, &to).unwrap();
}

/// The master key rotated under two running nodes without stopping
/// either: staged on node 1 (both go on sealing with the old key, so node
/// 2 opens what node 1 seals), refused to commit while node 2 lacks it,
/// committed once it has it, then retired; every secret opens on both
/// nodes at every step.
#[test]
fn the_master_key_rotates_across_running_nodes() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let cluster = Cluster::start(root, 2, &[]);
    let rotate = |n: usize, extra: &[&str]| {
        let data = cluster.node(n).lk.data.to_str().unwrap().to_owned();
        let mut args = vec!["rotate-master-key", "--data-dir", &data];
        args.extend_from_slice(extra);
        cluster.latchkey(&args).output().unwrap()
    };
    let put = |n: usize, name: &str, value: &str| {
        cluster.aws_ok(
            n,
            &[],
            &[
                "secretsmanager",
                "create-secret",
                "--name",
                name,
                "--secret-string",
                value,
            ],
        );
    };
    let every_secret_opens = |names: &[(&str, &str)]| {
        for n in 1..=2 {
            for (name, value) in names {
                let got = cluster.aws_ok(
                    n,
                    &[],
                    &["secretsmanager", "get-secret-value", "--secret-id", name],
                );
                assert_eq!(got["SecretString"], *value, "node {n}, {name}");
            }
        }
    };
    put(1, "before", "one");
    wait_for_keys(&cluster, &[1], 1);

    let staged = rotate(1, &[]);
    let said = stdout_ok(&staged);
    assert!(said.contains("master key 2"), "{said}");
    // Node 1 holds key 2 but seals with key 1, as node 2 does.
    wait_for_keys_on(&cluster, 1, &[1, 2], 1);
    put(1, "staged", "two");
    every_secret_opens(&[("before", "one"), ("staged", "two")]);
    // Node 2 lacks key 2: no commit.
    let early = rotate(1, &["--commit", "--wait", "5s"]);
    assert!(!early.status.success());
    let node2 = std::fs::read_to_string(cluster.node(2).lk.data.join("node.id")).unwrap();
    let err = String::from_utf8_lossy(&early.stderr);
    assert!(err.contains(node2.trim()), "{err}");
    assert!(
        !err.contains(
            &std::fs::read_to_string(cluster.node(1).lk.data.join("node.id"))
                .unwrap()
                .trim()
                .to_owned()
        ),
        "{err}"
    );

    copy_master_key(&cluster, 1, 2);
    wait_for_keys(&cluster, &[1, 2], 1);
    let committed = rotate(1, &["--commit", "--wait", "30s"]);
    let said = stdout_ok(&committed);
    assert!(said.contains("every node seals with it"), "{said}");
    wait_for_keys(&cluster, &[1, 2], 2);
    put(2, "committed", "three");
    every_secret_opens(&[("before", "one"), ("staged", "two"), ("committed", "three")]);

    // Retired on node 1, then on node 2: each keeps key 2 alone.
    for n in 1..=2 {
        let retired = rotate(n, &["--retire"]);
        assert!(stdout_ok(&retired).contains(": 1"), "node {n}");
    }
    wait_for_keys(&cluster, &[2], 2);
    every_secret_opens(&[("before", "one"), ("staged", "two"), ("committed", "three")]);
    for n in 1..=2 {
        wait_ready(cluster.node(n), true);
    }
}

/// An address blocked by a detection response on one node is refused by
/// every node within moments (the blocklist lives in the store, and the
/// change feed wakes the others).
#[test]
fn an_address_blocked_on_one_node_is_refused_by_every_node() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let config = root.join("latchkey.toml");
    std::fs::write(
        &config,
        "[detection.brute_force]\nthreshold = 3\nwindow_secs = 60\naction = \"block_ip\"\nblock_secs = 600\n",
    )
    .unwrap();
    let extra = vec!["--config".to_owned(), config.to_str().unwrap().to_owned()];
    let cluster = Cluster::start(root, 2, &extra);
    let token = aws_token(&cluster.node(2).lk, &[], "localhost", "app");
    let out = psql_on(cluster.node(2), &token, "select 'before'")
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&out), "before");

    // Three bad tokens on node 1: a brute force from 127.0.0.1, blocked.
    for _ in 0..3 {
        let out = psql_on(cluster.node(1), "not-a-token", "select 1")
            .output()
            .unwrap();
        assert!(!out.status.success());
    }
    let failed = Instant::now();
    loop {
        let out = psql_on(cluster.node(2), &token, "select 'still in'")
            .output()
            .unwrap();
        if !out.status.success() {
            break;
        }
        assert!(
            failed.elapsed() < Duration::from_secs(5),
            "node 2 still takes logins from an address node 1 blocked"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = failed.elapsed();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !trail_text(&cluster.node(2).lk.data).contains("\"failure\":\"blocked\"") {
        assert!(
            Instant::now() < deadline,
            "node 2 did not record the refusal as blocked"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("blocked on node 2 {took:?} after the third failure on node 1");

    // The block is listed, and lifted early: both nodes take the address
    // again within a second or two, and stay that way (a node whose
    // detection fires late on the same failures does not block it again:
    // the unblock forgave them).
    let d2 = cluster.node(2).lk.data.to_str().unwrap().to_owned();
    let listed = cluster
        .latchkey(&["findings", "blocked", "--data-dir", &d2, "--output", "json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        listed["BlockedAddresses"][0]["SourceIp"], "127.0.0.1",
        "{listed}"
    );
    let out = cluster
        .latchkey(&["findings", "unblock", "--data-dir", &d2, "10.9.8.7"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "unblocked an address never blocked");
    let out = cluster
        .latchkey(&["findings", "unblock", "--data-dir", &d2, "127.0.0.1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lifted = Instant::now();
    for n in [2, 1] {
        let token = aws_token(&cluster.node(n).lk, &[], "localhost", "app");
        loop {
            let out = psql_on(cluster.node(n), &token, "select 'back'")
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            // Within a second here. Node 2 used to take 15 s in most runs:
            // node 1's failures reached its login gate (the nodes' tally
            // exchange) just after the unblock had forgiven them, and held
            // the address back for the gate's 15 s.
            assert!(
                lifted.elapsed() < Duration::from_secs(5),
                "node {n} still refuses an address unblocked {:?} ago: {}",
                lifted.elapsed(),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "node {n} took the address again {:?} after the unblock",
            lifted.elapsed()
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    for n in [1, 2] {
        let token = aws_token(&cluster.node(n).lk, &[], "localhost", "app");
        let out = psql_on(cluster.node(n), &token, "select 'still back'")
            .output()
            .unwrap();
        assert_eq!(stdout_ok(&out), "still back", "node {n}");
    }
}

/// Session limits hold for the cluster: with two sessions per principal
/// allowed, one held on each node fills the principal's share, a third on
/// either node is refused, and one ending frees a place again.
#[test]
fn a_per_principal_session_limit_holds_across_nodes() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let extra = vec![
        "--gateway-max-connections-per-principal".to_owned(),
        "2".to_owned(),
    ];
    let cluster = Cluster::start(root, 2, &extra);
    let tokens: Vec<String> = (1..=2)
        .map(|n| aws_token(&cluster.node(n).lk, &[], "localhost", "app"))
        .collect();
    let hold = |n: usize, secs: u32| {
        psql_on(
            cluster.node(n),
            &tokens[n - 1],
            &format!("select pg_sleep({secs}); select 'held'"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let mut long = hold(1, 30);
    let short = hold(2, 4);
    // Both sessions are in, and the nodes have exchanged their counts.
    std::thread::sleep(Duration::from_millis(2500));
    for n in 1..=2 {
        let out = psql_on(cluster.node(n), &tokens[n - 1], "select 'third'")
            .output()
            .unwrap();
        assert!(!out.status.success(), "node {n} let a third session in");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("too many connections"), "{err}");
    }
    // The short one ends: within a couple of exchanges a place is free.
    assert_eq!(
        stdout_ok(&short.wait_with_output().unwrap()).lines().last(),
        Some("held")
    );
    let ended = Instant::now();
    loop {
        let out = psql_on(cluster.node(1), &tokens[0], "select 'again'")
            .output()
            .unwrap();
        if out.status.success() {
            assert_eq!(stdout_ok(&out), "again");
            break;
        }
        assert!(
            ended.elapsed() < Duration::from_secs(5),
            "no place freed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    long.kill().unwrap();
    long.wait().unwrap();
}

/// New-connection rates hold for the cluster: a principal allowed one new
/// session per 20 s (a burst of one) that logs in on node 1 is refused on
/// node 2 once the nodes have exchanged what they took, though node 2's
/// own bucket was full.
#[test]
fn a_per_principal_connection_rate_holds_across_nodes() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let extra = vec![
        "--gateway-connection-rate-per-principal".to_owned(),
        "0.05".to_owned(),
    ];
    let cluster = Cluster::start(root, 2, &extra);
    let tokens: Vec<String> = (1..=2)
        .map(|n| aws_token(&cluster.node(n).lk, &[], "localhost", "app"))
        .collect();
    let out = psql_on(cluster.node(1), &tokens[0], "select 'first'")
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&out), "first");
    // Two exchanges (every 500 ms) later, node 2 knows.
    std::thread::sleep(Duration::from_millis(1500));
    let out = psql_on(cluster.node(2), &tokens[1], "select 'second'")
        .output()
        .unwrap();
    assert!(!out.status.success(), "node 2 let the second session in");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("too many new connections"), "{err}");
    // The refusal is recorded, with its reason.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = stdout_ok(
            &cluster
                .latchkey(&[
                    "audit",
                    "lookup",
                    "--data-dir",
                    cluster.node(2).lk.data.to_str().unwrap(),
                    "--errors-only",
                    "--output",
                    "json",
                ])
                .output()
                .unwrap(),
        );
        if found.contains("too many new connections for this principal") {
            break;
        }
        assert!(Instant::now() < deadline, "{found}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Brute-force counting holds for the cluster: four bad tokens allowed
/// per minute, two tried on node 1 and two on node 2 are a brute force
/// (neither node saw four), and the address is then refused by both.
#[test]
fn failed_logins_spread_over_the_nodes_count_together() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let config = root.join("latchkey.toml");
    std::fs::write(
        &config,
        "[detection.brute_force]\nthreshold = 4\nwindow_secs = 60\naction = \"block_ip\"\nblock_secs = 600\n",
    )
    .unwrap();
    let extra = vec!["--config".to_owned(), config.to_str().unwrap().to_owned()];
    let cluster = Cluster::start(root, 2, &extra);
    let bad = |n: usize| {
        let out = psql_on(cluster.node(n), "not-a-token", "select 1")
            .output()
            .unwrap();
        assert!(!out.status.success());
    };
    bad(1);
    bad(1);
    // The nodes exchange what they counted every half second.
    std::thread::sleep(Duration::from_millis(1500));
    bad(2);
    bad(2);
    let token = aws_token(&cluster.node(1).lk, &[], "localhost", "app");
    let deadline = Instant::now() + Duration::from_secs(5);
    for n in [2, 1] {
        loop {
            let out = psql_on(cluster.node(n), &token, "select 'in'")
                .output()
                .unwrap();
            if !out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {n} still takes logins after four failures across the nodes"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The login gates refuse at once; detection's finding (and block)
    // follows within moments.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = stdout_ok(
            &cluster
                .latchkey(&[
                    "findings",
                    "list",
                    "--data-dir",
                    cluster.node(2).lk.data.to_str().unwrap(),
                    "--output",
                    "json",
                ])
                .output()
                .unwrap(),
        );
        if found.contains("BruteForce.SourceIP") {
            break;
        }
        assert!(Instant::now() < deadline, "{found}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Console password lockouts hold for the cluster: five wrong passwords,
/// three through node 1 and two through node 2 (ChangePassword counts as
/// a sign-in), lock the name on both; an administrator's new password,
/// set through node 1, lifts it on node 2 too.
#[test]
fn a_password_lockout_holds_across_nodes() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let cluster = Cluster::start(root, 2, &[]);
    cluster.aws_ok(1, &[], &["iam", "create-user", "--user-name", "gina"]);
    cluster.aws_ok(
        1,
        &[],
        &[
            "iam",
            "update-account-password-policy",
            "--allow-users-to-change-password",
        ],
    );
    cluster.aws_ok(
        1,
        &[],
        &[
            "iam",
            "create-login-profile",
            "--user-name",
            "gina",
            "--password",
            "First-Passw0rd!!",
        ],
    );
    let key = cluster.aws_ok(1, &[], &["iam", "create-access-key", "--user-name", "gina"]);
    let gina = vec![
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            key["AccessKey"]["SecretAccessKey"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
    ];
    let change = |n: usize, old: &str| {
        let out = cluster.aws(
            n,
            &gina,
            &[
                "iam",
                "change-password",
                "--old-password",
                old,
                "--new-password",
                "Second-Passw0rd!",
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), err)
    };
    // The new key reaches node 2 (the change feed), then the guessing.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, err) = change(2, "Not-The-Passw0rd!");
        if err.contains("AccessDenied") {
            break;
        }
        assert!(Instant::now() < deadline, "{err}");
        std::thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..3 {
        let (ok, err) = change(1, "Not-The-Passw0rd!");
        assert!(!ok && err.contains("AccessDenied"), "{err}");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (ok, err) = change(2, "Not-The-Passw0rd!");
    assert!(!ok && err.contains("AccessDenied"), "{err}");
    std::thread::sleep(Duration::from_millis(1500));
    // Five in the cluster: the right password is refused on both nodes.
    for n in [1, 2] {
        let (ok, err) = change(n, "First-Passw0rd!!");
        assert!(!ok, "node {n} took the password of a locked name");
        assert!(
            err.contains("EntityTemporarilyUnmodifiable"),
            "node {n}: {err}"
        );
    }
    cluster.aws_ok(
        1,
        &[],
        &[
            "iam",
            "update-login-profile",
            "--user-name",
            "gina",
            "--password",
            "Admin-Set-Passw0rd!",
        ],
    );
    std::thread::sleep(Duration::from_millis(1100));
    let (ok, err) = change(2, "Admin-Set-Passw0rd!");
    assert!(ok, "the administrator's reset did not reach node 2: {err}");
}

/// The security checks judge every node sharing the store, each under its
/// id: node 2, restarted without statement audit and with a file in its
/// data directory open to others, is flagged by `advisor checks` run on
/// node 1's data directory (from node 2's report in the store); node 1,
/// sound in those respects, is not.
#[test]
fn the_security_checks_judge_every_node_sharing_the_store() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let mut cluster = Cluster::start(root, 2, &[]);
    let id = |node: &Node| {
        std::fs::read_to_string(node.lk.data.join("node.id"))
            .unwrap()
            .trim()
            .to_owned()
    };
    let (one, two) = (id(cluster.node(1)), id(cluster.node(2)));
    let old = cluster.nodes.pop().unwrap();
    let (node_root, api, ports) = (
        old.root.clone(),
        old.api_port,
        (old.lk.pg_port, old.lk.mysql_port, old.metrics_port),
    );
    let exposed = old.lk.data.join("dump.sql");
    drop(old);
    std::fs::write(&exposed, "-- a dump left behind\n").unwrap();
    std::fs::set_permissions(
        &exposed,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let fresh = Node::spawn(
        &node_root,
        api,
        ports,
        &cluster.store_url,
        &["--no-statement-audit".to_owned()],
    );
    cluster.nodes.push(fresh);

    let data_one = cluster.node(1).lk.data.clone();
    let checks = || {
        let out = cluster
            .latchkey(&["advisor", "checks", "--data-dir"])
            .arg(&data_one)
            .args(["--output", "json"])
            .output()
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&stdout_ok(&out)).unwrap()
    };
    let file_flag = format!("{two}:{} readable by the group", exposed.display());
    let audit_flag = format!("statement audit is off on node {two}");
    // Node 2 reports itself within seconds of starting.
    let deadline = Instant::now() + Duration::from_secs(15);
    let report = loop {
        let report = checks();
        let gateway = flagged(&report, "LK-GW-01");
        if gateway.iter().any(|f| f.starts_with(&file_flag)) {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "node 2's open file is not flagged: {gateway:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let gateway = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["checkId"] == "LK-GW-01")
        .unwrap();
    assert_eq!(gateway["status"], "error");
    assert_eq!(gateway["resourcesSummary"]["resourcesProcessed"], 2);
    let databases = flagged(&report, "LK-DB-01");
    assert!(
        databases
            .iter()
            .any(|f| f.starts_with("orders ") && f.contains(&audit_flag)),
        "{databases:?}"
    );
    // Node 1 keeps statement audit and a private data directory.
    assert!(
        !databases
            .iter()
            .any(|f| f.contains(&format!("on node {one}"))),
        "{databases:?}"
    );
    assert!(
        !flagged(&report, "LK-GW-01")
            .iter()
            .any(|f| f.starts_with(&format!("{one}:")) && f.contains("readable")),
        "{report}"
    );
}

/// A change feed that stalls without closing (its backends stopped, as a
/// hung server or a black-holed route leaves them) is noticed within its
/// ping: a key deactivated through node 1 is refused on node 2 within a
/// second, as with a working feed.
#[test]
fn a_stalled_change_feed_lets_a_deactivated_key_go_within_a_second() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let cluster = Cluster::start(root, 2, &[]);
    cluster.aws_ok(1, &[], &["iam", "create-user", "--user-name", "ida"]);
    cluster.aws_ok(
        1,
        &[],
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "ida",
            "--policy-name",
            "db",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#,
        ],
    );
    let key = cluster.aws_ok(1, &[], &["iam", "create-access-key", "--user-name", "ida"]);
    let ida = api::Creds::access_key(&key).env_vars();
    let creds: Vec<(&str, &str)> = ida.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let token = aws_token(&cluster.node(2).lk, &creds, "localhost", "app");
    let login = || {
        psql_on(cluster.node(2), &token, "select 1")
            .output()
            .unwrap()
    };
    assert_eq!(stdout_ok(&login()), "1");

    // Every node's feed backend stopped (continued however the test ends).
    struct Stopped(Vec<String>);
    impl Drop for Stopped {
        fn drop(&mut self) {
            for pid in &self.0 {
                let _ = Command::new("kill").args(["-CONT", pid]).status();
            }
        }
    }
    let pids: Vec<String> = cluster
        .pg
        .query("SELECT pid FROM pg_stat_activity WHERE application_name = 'latchkey change feed'")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(pids.len(), 2, "one feed a node: {pids:?}");
    let stopped = Stopped(pids);
    for pid in &stopped.0 {
        assert!(
            Command::new("kill")
                .args(["-STOP", pid])
                .status()
                .unwrap()
                .success()
        );
    }
    let id = key["AccessKey"]["AccessKeyId"].as_str().unwrap();
    cluster.aws_ok(
        1,
        &[],
        &[
            "iam",
            "update-access-key",
            "--user-name",
            "ida",
            "--access-key-id",
            id,
            "--status",
            "Inactive",
        ],
    );
    let deactivated = Instant::now();
    while login().status.success() {
        assert!(
            deactivated.elapsed() < Duration::from_millis(1500),
            "node 2 still admits a key deactivated {:?} ago through a stalled feed",
            deactivated.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("refused {:?} after the deactivation", deactivated.elapsed());
    drop(stopped);
}

/// Console sessions live in the shared store: a sign-in whose password
/// was given to node 1 takes its MFA code on node 2, wrong codes given to
/// both nodes count together, the session works on both, a sign-in still
/// waiting for its code is no session anywhere, and signing out on node 2
/// ends the session on node 1 at once. Node 2's Sessions page lists a psql
/// session running through node 1, and ends it: psql sees it end. Python
/// `requests` is the browser (cookies and CSRF tokens by hand, as a
/// browser sends them).
#[test]
fn a_console_session_is_one_session_on_every_node() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let cluster = Cluster::start(root, 2, &[]);
    cluster.user_with_policy(
        "hana",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["latchkey:DescribeSessions","latchkey:EndSession"],"Resource":"*"}]}"#,
    );
    // ivan's psql session runs through node 1 throughout.
    cluster.user_with_policy(
        "ivan",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#,
    );
    let key = cluster.aws_ok(1, &[], &["iam", "create-access-key", "--user-name", "ivan"]);
    let ivan = api::Creds::access_key(&key).env_vars();
    let creds: Vec<(&str, &str)> = ivan.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let token = aws_token(&cluster.node(1).lk, &creds, "localhost", "app");
    let node1 = std::fs::read_to_string(cluster.node(1).lk.data.join("node.id")).unwrap();
    cluster.aws_ok(
        1,
        &[],
        &[
            "iam",
            "create-login-profile",
            "--user-name",
            "hana",
            "--password",
            "Hana-Passw0rd!!",
        ],
    );
    let seed = root.join("hana.seed");
    common::api::enable_virtual_mfa_with(|args| cluster.aws_ok(1, &[], args), "hana", &seed);
    // Its code's step is spent by the enabling: the next one is ours.
    common::api::next_totp_step();
    let script = r#"
import base64, hashlib, hmac, re, struct, sys, time, requests
one, two, ca, seed_file, node1 = sys.argv[1:6]
def totp(offset=0):
    s = open(seed_file).read().strip()
    seed = base64.b32decode(s + "=" * (-len(s) % 8))
    h = hmac.new(seed, struct.pack(">Q", (int(time.time()) + offset) // 30), hashlib.sha1).digest()
    o = h[19] & 15
    return "%06d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7fffffff) % 1000000)
def wrong():
    return "%06d" % ((int(totp()) + 500000) % 1000000)
def cookie(r, name):
    m = re.search(name + r"=([^;]+)", r.headers.get("Set-Cookie", ""))
    assert m, (name, r.status_code, r.headers)
    return m.group(1)
def csrf(r):
    return re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
def post(base, path, cookies, data):
    return requests.post(base + path, verify=ca, allow_redirects=False, data=data,
                         headers={"Origin": base, "Cookie": "; ".join(cookies)})
def get(base, path, cookies):
    return requests.get(base + path, verify=ca, allow_redirects=False,
                        headers={"Cookie": "; ".join(cookies)})
def password_on(base):
    page = requests.get(base + "/console/signin", verify=ca)
    signin = "__Host-latchkey-signin=" + cookie(page, "__Host-latchkey-signin")
    r = post(base, "/console/signin", [signin],
             {"username": "hana", "password": "Hana-Passw0rd!!", "csrf": csrf(page)})
    assert r.status_code == 200 and 'name="code"' in r.text, (r.status_code, r.text[:300])
    return "__Host-latchkey-signin=" + cookie(r, "__Host-latchkey-signin"), csrf(r)

# Wrong codes through both nodes count together: the third ends the sign-in.
pending, token = password_on(one)
r = post(two, "/console/signin/mfa", [pending], {"code": wrong(), "csrf": token})
assert r.status_code == 401 and "incorrect" in r.text, (r.status_code, r.text[:300])
r = post(one, "/console/signin/mfa", [pending], {"code": wrong(), "csrf": token})
assert r.status_code == 401 and "incorrect" in r.text, (r.status_code, r.text[:300])
r = post(two, "/console/signin/mfa", [pending], {"code": wrong(), "csrf": token})
assert r.status_code == 401 and 'name="password"' in r.text, "a third wrong code did not end the sign-in"
r = post(one, "/console/signin/mfa", [pending], {"code": totp(), "csrf": token})
assert r.status_code in (302, 303) and r.headers["Location"] == "/console/signin", (r.status_code, r.text[:300])

# One sign-in awaiting its code per user: a second (node 2) replaces the
# first (node 1), whose code is then refused.
first, first_token = password_on(one)
pending, token = password_on(two)
r = post(two, "/console/signin/mfa", [first], {"code": totp(), "csrf": first_token})
assert r.status_code in (302, 303) and r.headers["Location"] == "/console/signin", ("a replaced sign-in took a code", r.status_code)

# The password on node 1, the code on node 2.
pending, token = password_on(one)
waiting = "__Host-latchkey-session=" + pending.split("=", 1)[1]
for base in (one, two):
    r = get(base, "/console", [waiting])
    assert r.status_code in (302, 303) and r.headers["Location"] == "/console/signin", "a sign-in waiting for its MFA code acted as a session"
r = post(two, "/console/signin/mfa", [pending], {"code": totp(), "csrf": token})
assert r.status_code in (302, 303) and r.headers["Location"] == "/console", (r.status_code, r.text[:300])
session = "__Host-latchkey-session=" + cookie(r, "__Host-latchkey-session")
# The same sign-in cannot be finished twice, on either node.
r = post(one, "/console/signin/mfa", [pending], {"code": totp(), "csrf": token})
assert r.status_code in (302, 303) and r.headers["Location"] == "/console/signin", r.status_code

for base in (one, two):
    r = get(base, "/console", [session])
    assert r.status_code == 200 and "user/hana" in r.text, (base, r.status_code, r.text[:300])
    form_token = csrf(r)

# Node 2 lists ivan's session on node 1 (published within a second or
# two), and ends it.
deadline = time.time() + 10
while True:
    r = get(two, "/console/sessions", [session])
    assert r.status_code == 200, (r.status_code, r.text[:300])
    m = re.search(r'<tr data-session="([0-9a-f]{16})">(.*?)</tr>', r.text, re.S)
    if m and "user/ivan" in m.group(2):
        break
    assert time.time() < deadline, "node 1's session never showed on node 2: " + r.text[-1500:]
    time.sleep(0.5)
assert node1 in m.group(2), "the row does not name node 1"
r = post(two, "/console/sessions/" + m.group(1) + "/end", [session], {"csrf": form_token})
assert r.status_code in (302, 303) and "done=ending" in r.headers["Location"], (r.status_code, r.text[:500])
# Signing out on node 2 ends the session on node 1 too.
r = post(two, "/console/signout", [session], {"csrf": form_token})
assert r.status_code in (302, 303) and r.headers["Location"] == "/console/signin", r.status_code
for base in (one, two):
    r = get(base, "/console", [session])
    assert r.status_code in (302, 303) and r.headers["Location"] == "/console/signin", (base, "still signed in after signing out", r.status_code)
print("ok")
"#;
    let one = format!("https://localhost:{}", cluster.node(1).api_port);
    let two = format!("https://localhost:{}", cluster.node(2).api_port);
    let ca = cluster.node(1).lk.data.join("ca.pem");
    let running = psql_on(cluster.node(1), &token, "select pg_sleep(60)")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let out = common::api::python(
        script,
        &[
            &one,
            &two,
            ca.to_str().unwrap(),
            seed.to_str().unwrap(),
            node1.trim(),
        ],
    );
    assert_eq!(out, "ok");
    let ended = running.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(50), "psql ran on");
    assert!(!ended.status.success());
    let err = String::from_utf8_lossy(&ended.stderr);
    assert!(err.contains("administrator command"), "{err}");
}
