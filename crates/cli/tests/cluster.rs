#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Several `latchkey serve` nodes sharing one PostgreSQL store, reached
//! over TLS with its certificate and host name checked: what one node
//! writes, the others honour at once (the store's change feed), with the
//! stock AWS CLI and psql as the clients.

mod common;
use common::pki::test_pki;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Cluster {
    /// Serves the store (database `latchkey`) and the upstream (`orders`).
    pg: Postgres,
    store_url: String,
    nodes: Vec<Node>,
}

struct Node {
    lk: Latchkey,
    api_port: u16,
}

const DATA_FILES: &[&str] = &[
    "master.key",
    "ca.pem",
    "ca.key",
    "server.pem",
    "server.key",
    "admin.credentials",
];

impl Cluster {
    fn start(root: &Path, count: usize) -> Self {
        let pki = test_pki(root);
        let pg = Postgres::start_with(
            root,
            &PgOptions {
                name: Some("pg".into()),
                tls: Some(PgTls {
                    cert: pki.cert.clone(),
                    key: pki.key.clone(),
                    ca: None,
                }),
                // The store only over TLS.
                hba: vec!["hostnossl latchkey all 0.0.0.0/0 reject".into()],
                ..Default::default()
            },
        );
        pg.sql("CREATE ROLE latchkey LOGIN PASSWORD 'store-secret'");
        pg.sql("CREATE DATABASE latchkey OWNER latchkey");
        let store_url = format!(
            "postgres://latchkey:store-secret@localhost:{}/latchkey?sslrootcert={}",
            pg.port,
            pki.ca.display()
        );
        let mut cluster = Self {
            pg,
            store_url,
            nodes: Vec::new(),
        };
        let first = root.join("node1").join("data");
        for n in 1..=count {
            let node_root = root.join(format!("node{n}"));
            std::fs::create_dir_all(&node_root).unwrap();
            let data = node_root.join("data");
            if n > 1 {
                // What an operator copies to a new node: the master key, the
                // certificates clients trust, the administrator's key.
                std::fs::create_dir_all(&data).unwrap();
                std::fs::set_permissions(
                    &data,
                    std::os::unix::fs::PermissionsExt::from_mode(0o700),
                )
                .unwrap();
                for file in DATA_FILES {
                    std::fs::copy(first.join(file), data.join(file)).unwrap();
                }
            }
            let api_port = free_port();
            let api = format!("127.0.0.1:{api_port}");
            let init = [
                "init",
                "--data-dir",
                data.to_str().unwrap(),
                "--listen",
                &api,
            ];
            if n == 1 {
                // The first node was an embedded installation: moved onto
                // the shared store, twice (a second run changes nothing).
                assert!(
                    latchkey(&init)
                        .stdout(Stdio::null())
                        .status()
                        .unwrap()
                        .success()
                );
                cluster.register_orders(&data, false);
                let first = cluster.migrate(&data);
                assert_eq!(cluster.migrate(&data), first);
                let tables = first["tables"].as_array().unwrap();
                let rows = |name: &str| {
                    tables.iter().find(|t| t["table"] == name).unwrap()["rows"]
                        .as_u64()
                        .unwrap()
                };
                assert_eq!(
                    (rows("users"), rows("access_keys"), rows("databases")),
                    (1, 1, 1)
                );
                assert!(
                    tables
                        .iter()
                        .all(|t| t["sha256"].as_str().unwrap().len() == 64)
                );
            } else {
                assert!(
                    cluster
                        .latchkey(&init)
                        .stdout(Stdio::null())
                        .status()
                        .unwrap()
                        .success()
                );
            }
            let lk = serve_latchkey_env(
                &node_root,
                &data,
                &api,
                &[],
                &[("LATCHKEY_STORE", &cluster.store_url)],
            );
            cluster.nodes.push(Node { lk, api_port });
        }
        cluster
    }

    /// `latchkey ARGS` against the shared store.
    fn latchkey(&self, args: &[&str]) -> Command {
        let mut c = latchkey(args);
        c.env("LATCHKEY_STORE", &self.store_url);
        c
    }

    /// `latchkey store migrate` from `data` into the shared store: its JSON.
    fn migrate(&self, data: &Path) -> serde_json::Value {
        let out = latchkey(&[
            "store",
            "migrate",
            "--from",
            data.to_str().unwrap(),
            "--output",
            "json",
        ])
        .args(["--to", &self.store_url])
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("store-secret"));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Registers the upstream `orders` in the shared store, or in `data`'s
    /// embedded one.
    fn register_orders(&self, data: &Path, shared: bool) {
        let d = data.to_str().unwrap();
        let cmd = |args: &[&str]| {
            if shared {
                self.latchkey(args)
            } else {
                latchkey(args)
            }
        };
        let out = cmd(&["db", "register", "--data-dir", d, "--name", "orders"])
            .args(["--endpoint", "localhost", "--upstream"])
            .arg(format!("127.0.0.1:{}", self.pg.port))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut set = cmd(&[
            "db",
            "set-password",
            "--data-dir",
            d,
            "--name",
            "orders",
            "--user",
            "app",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
        std::io::Write::write_all(set.stdin.as_mut().unwrap(), b"app-secret\n").unwrap();
        drop(set.stdin.take());
        assert!(set.wait().unwrap().success());
    }

    fn node(&self, n: usize) -> &Node {
        &self.nodes[n - 1]
    }

    /// The stock AWS CLI against node `n` with `creds` (the administrator's
    /// when empty).
    fn aws(&self, n: usize, creds: &[(String, String)], args: &[&str]) -> std::process::Output {
        let node = self.node(n);
        let mut c = admin_aws(&node.lk.data);
        c.args([
            "--endpoint-url",
            &format!("https://localhost:{}", node.api_port),
        ]);
        if !creds.is_empty() {
            c.env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
            for (k, v) in creds {
                c.env(k, v);
            }
        }
        c.args(args).output().unwrap()
    }

    fn aws_ok(&self, n: usize, creds: &[(String, String)], args: &[&str]) -> serde_json::Value {
        let out = self.aws(n, creds, args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }
}

fn psql_on(node: &Node, token: &str, sql: &str) -> Command {
    let mut c = Command::new("psql");
    c.arg(conninfo(&node.lk, "app", "verify-full"))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10");
    c
}

fn seed_path(root: &Path) -> PathBuf {
    root.join("mfa-seed")
}

#[test]
fn nodes_sharing_a_postgres_store_act_as_one() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let cluster = Cluster::start(root, 3);

    // A user created through node 1 signs in through node 3 at once.
    cluster.aws_ok(1, &[], &["iam", "create-user", "--user-name", "dana"]);
    cluster.aws_ok(
        1,
        &[],
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "dana",
            "--policy-name",
            "db",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["rds-db:connect","sts:GetSessionToken","sts:GetCallerIdentity"],"Resource":"*"}]}"#,
        ],
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
}
