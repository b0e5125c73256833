//! Several `latchkey serve` nodes sharing one PostgreSQL store, reached
//! over TLS with its certificate and host name checked.

use super::pki::test_pki;
use super::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Cluster {
    /// Serves the store (database `latchkey`) and the upstream (`orders`).
    pub pg: Postgres,
    pub store_url: String,
    pub nodes: Vec<Node>,
}

pub struct Node {
    pub lk: Latchkey,
    pub api_port: u16,
    pub metrics_port: u16,
    pub root: PathBuf,
}

impl Node {
    /// `latchkey serve` for this node's data directory and ports, on the
    /// shared store.
    pub fn spawn(
        root: &Path,
        api_port: u16,
        ports: (u16, u16, u16),
        store_url: &str,
        extra: &[String],
    ) -> Self {
        let (pg_port, mysql_port, metrics_port) = ports;
        let data = root.join("data");
        let log_path = root.join("latchkey.log");
        let mut child = latchkey(&["serve", "--data-dir", data.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{api_port}")])
            .args(["--pg-listen", &format!("127.0.0.1:{pg_port}")])
            .args(["--mysql-listen", &format!("127.0.0.1:{mysql_port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(extra)
            .env("LATCHKEY_STORE", store_url)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        match wait_for_server(
            &mut child,
            &[pg_port, mysql_port, api_port, metrics_port],
            &log_path,
        ) {
            Started::Listening => {}
            Started::Exited(why) => panic!("latchkey serve exited: {why}"),
        }
        Self {
            lk: Latchkey {
                child,
                data,
                pg_port,
                mysql_port,
            },
            api_port,
            metrics_port,
            root: root.to_owned(),
        }
    }
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
    pub fn start(root: &Path, count: usize, extra: &[String]) -> Self {
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
            let ports = (free_port(), free_port(), free_port());
            let node = Node::spawn(&node_root, api_port, ports, &cluster.store_url, extra);
            cluster.nodes.push(node);
        }
        cluster
    }

    /// `latchkey ARGS` against the shared store.
    pub fn latchkey(&self, args: &[&str]) -> Command {
        let mut c = latchkey(args);
        c.env("LATCHKEY_STORE", &self.store_url);
        c
    }

    /// `latchkey store migrate` from `data` into the shared store: its JSON.
    pub fn migrate(&self, data: &Path) -> serde_json::Value {
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
    pub fn register_orders(&self, data: &Path, shared: bool) {
        self.register_db(data, shared, "orders", self.pg.port);
    }

    /// Registers `name` (endpoint `localhost`, upstream on `port`, `app`'s
    /// password stored) in the shared store, or in `data`'s embedded one.
    pub fn register_db(&self, data: &Path, shared: bool, name: &str, port: u16) {
        let d = data.to_str().unwrap();
        let cmd = |args: &[&str]| {
            if shared {
                self.latchkey(args)
            } else {
                latchkey(args)
            }
        };
        let out = cmd(&["db", "register", "--data-dir", d, "--name", name])
            .args(["--endpoint", "localhost", "--upstream"])
            .arg(format!("127.0.0.1:{port}"))
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
            name,
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

    pub fn node(&self, n: usize) -> &Node {
        &self.nodes[n - 1]
    }

    /// The stock AWS CLI against node `n` with `creds` (the administrator's
    /// when empty).
    pub fn aws(&self, n: usize, creds: &[(String, String)], args: &[&str]) -> std::process::Output {
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

    /// Creates user `name` through node 1 with the inline policy `policy`
    /// (its document).
    pub fn user_with_policy(&self, name: &str, policy: &str) {
        self.aws_ok(1, &[], &["iam", "create-user", "--user-name", name]);
        self.aws_ok(
            1,
            &[],
            &[
                "iam",
                "put-user-policy",
                "--user-name",
                name,
                "--policy-name",
                "inline",
                "--policy-document",
                policy,
            ],
        );
    }

    pub fn aws_ok(&self, n: usize, creds: &[(String, String)], args: &[&str]) -> serde_json::Value {
        let out = self.aws(n, creds, args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }
}

pub fn psql_on(node: &Node, token: &str, sql: &str) -> Command {
    let mut c = Command::new("psql");
    c.arg(conninfo(&node.lk, "app", "verify-full"))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10");
    c
}

pub fn seed_path(root: &Path) -> PathBuf {
    root.join("mfa-seed")
}
