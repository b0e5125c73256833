//! The SQL firewall through the real `latchkey serve`, against a
//! throwaway PostgreSQL: a small vulnerable Python app (psycopg 3, a
//! botocore token) that builds its SQL by string concatenation runs while
//! its principal learns, then in `alert` mode an injected tautology raises
//! findings (and works), then in `block` mode it is refused with 42501
//! while normal input still works; a new shape approved from the CLI
//! passes. One PostgreSQL and one Latchkey for every step; then the same
//! injection refused with ERROR 1142 by the MySQL gateway (MariaDB).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::sql::{register_shop, shop_sql};
use common::*;

/// Looks up an order's total from user input, by concatenation: the
/// injection under test. One connection for every input given; prints
/// one JSON result per input.
const VULNERABLE_APP: &str = r#"
import json, os, sys
import boto3, psycopg

port = int(os.environ["LK_PORT"])
token = boto3.session.Session().client("rds", region_name="us-east-1").generate_db_auth_token(
    DBHostname="localhost", Port=port, DBUsername="app", Region="us-east-1")
conninfo = (f"host=localhost port={port} user=app dbname=orders sslmode=verify-full "
            f"sslrootcert={os.environ['LK_CA']} connect_timeout=10")
results = []
with psycopg.connect(conninfo, password=token, autocommit=True) as conn:
    for user_input in sys.argv[1:]:
        try:
            rows = conn.execute("SELECT total FROM orders WHERE id = " + user_input).fetchall()
            results.append({"rows": sorted(r[0] for r in rows)})
        except psycopg.Error as e:
            results.append({"sqlstate": e.sqlstate, "message": e.diag.message_primary})
print(json.dumps(results))
"#;

/// The same app, one session for its whole life: reads an input per line
/// from standard input, prints one JSON result per line. Its statements
/// are prepared on the server (psycopg's `prepare=True`), so a statement
/// run again is only bound and executed: the firewall must judge it again
/// when the profile changed, not only at its `Parse`.
const LIVE_APP: &str = r#"
import json, os, sys
import boto3, psycopg

port = int(os.environ["LK_PORT"])
token = boto3.session.Session().client("rds", region_name="us-east-1").generate_db_auth_token(
    DBHostname="localhost", Port=port, DBUsername="app", Region="us-east-1")
conninfo = (f"host=localhost port={port} user=app dbname=orders sslmode=verify-full "
            f"sslrootcert={os.environ['LK_CA']} connect_timeout=10")
with psycopg.connect(conninfo, password=token, autocommit=True) as conn:
    for line in sys.stdin:
        try:
            rows = conn.execute("SELECT total FROM orders WHERE id = " + line.strip(),
                                prepare=True).fetchall()
            print(json.dumps({"rows": sorted(r[0] for r in rows)}), flush=True)
        except psycopg.Error as e:
            print(json.dumps({"sqlstate": e.sqlstate}), flush=True)
"#;

const CONNECT_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#;

/// The normalised shape of the app's query, and of its injection.
const NORMAL_SHAPE: &str = "SELECT total FROM orders WHERE id = ?";
const INJECTED_SHAPE: &str = "SELECT total FROM orders WHERE id = ? OR ?=?";

struct App<'a> {
    lk: &'a Latchkey,
    script: std::path::PathBuf,
    creds: Vec<(String, String)>,
}

impl App<'_> {
    /// Runs the app with `inputs` in one session.
    fn run(&self, inputs: &[&str]) -> Vec<serde_json::Value> {
        let mut python = Command::new("python3");
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                python.env_remove(k);
            }
        }
        let out = python
            .arg(&self.script)
            .args(inputs)
            .envs(self.creds.iter().map(|(k, v)| (k, v)))
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("LK_PORT", self.lk.pg_port.to_string())
            .env("LK_CA", self.lk.data.join("ca.pem"))
            .output()
            .expect("python3 with boto3 and psycopg (scripts/test installs them)");
        serde_json::from_str::<serde_json::Value>(&stdout_ok(&out))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// The live app, connected: inputs go to its standard input.
    fn live(&self) -> LiveApp {
        let mut python = Command::new("python3");
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                python.env_remove(k);
            }
        }
        let script = self.script.with_file_name("live_app.py");
        std::fs::write(&script, LIVE_APP).unwrap();
        let mut child = python
            .arg(&script)
            .envs(self.creds.iter().map(|(k, v)| (k, v)))
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("LK_PORT", self.lk.pg_port.to_string())
            .env("LK_CA", self.lk.data.join("ca.pem"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        LiveApp {
            child,
            stdin,
            stdout,
        }
    }

    /// Runs the app with a normal input until its statement's audit
    /// record shows the firewall in `mode` (the server re-reads profiles
    /// every few seconds).
    fn until_mode(&self, mode: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert_eq!(self.run(&["1"])[0]["rows"], serde_json::json!([10]));
            let events = audit_events(self.lk, |events| {
                last_firewall(events, NORMAL_SHAPE).is_some_and(|f| f["mode"] == mode)
            });
            if last_firewall(&events, NORMAL_SHAPE).is_some_and(|f| f["mode"] == mode) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the firewall never reached {mode}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

struct LiveApp {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl LiveApp {
    fn send(&mut self, input: &str) -> serde_json::Value {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{input}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("the live app said {line:?}"))
    }
}

impl Drop for LiveApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `database.firewall` object of the last statement record of `shape`.
fn last_firewall(events: &[serde_json::Value], shape: &str) -> Option<serde_json::Value> {
    events
        .iter()
        .rev()
        .find(|e| e["eventName"] == "Statement" && e["database"]["statement"] == shape)
        .map(|e| e["database"]["firewall"].clone())
}

fn firewall(data: &Path, args: &[&str]) -> String {
    let out = latchkey(&["firewall"])
        .args(args)
        .args(["--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    stdout_ok(&out)
}

fn show(data: &Path, db: &str, principal: &str) -> serde_json::Value {
    serde_json::from_str(&firewall(
        data,
        &[
            "show",
            "--db",
            db,
            "--principal",
            principal,
            "--output",
            "json",
        ],
    ))
    .unwrap()
}

#[test]
fn the_firewall_learns_alerts_and_blocks_an_injected_tautology() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let out = as_pg_user(Path::new("/usr/bin/psql"))
        .arg("-h")
        .arg(&pg.dir)
        .args(["-p", &pg.port.to_string(), "-U", "postgres", "-d", "orders"])
        .args(["-v", "ON_ERROR_STOP=1", "-c"])
        .arg(
            "SET ROLE app; CREATE TABLE orders (id int PRIMARY KEY, total int);
             INSERT INTO orders VALUES (1, 10), (2, 20), (3, 30);",
        )
        .output()
        .unwrap();
    stdout_ok(&out);
    let (data, api) = init_latchkey(root.path(), &[]);
    register_db(
        &data,
        &[
            "--name",
            "orders",
            "--endpoint",
            "localhost",
            "--upstream",
            &format!("127.0.0.1:{}", pg.port),
        ],
    );
    set_db_password(&data, "orders", "app", "app-secret");
    // Alert after an hour's learning; the app's principal is also set to
    // learn until told otherwise, and then moved on explicitly.
    let configured: serde_json::Value = serde_json::from_str(&firewall(
        &data,
        &[
            "configure",
            "--db",
            "orders",
            "--mode",
            "alert",
            "--learning",
            "1h",
            "--output",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(configured["mode"], "alert");
    assert_eq!(configured["learningSecs"], 3600);
    let lk = serve_latchkey(root.path(), &data, &api, &[]);
    let account = admin_cli(&lk, &["sts", "get-caller-identity"])["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    let principal = format!("arn:aws:iam::{account}:user/shop");
    let script = root.path().join("vulnerable_app.py");
    std::fs::write(&script, VULNERABLE_APP).unwrap();
    let app = App {
        lk: &lk,
        script,
        creds: user_with_policy(&lk, "shop", CONNECT_ONLY),
    };

    // Learning.
    firewall(
        &data,
        &[
            "set-mode",
            "--db",
            "orders",
            "--principal",
            &principal,
            "--mode",
            "learn",
        ],
    );
    app.until_mode("learn");
    let r = app.run(&["2", "3"]);
    assert_eq!(r[0]["rows"], serde_json::json!([20]));
    assert_eq!(r[1]["rows"], serde_json::json!([30]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let profile = &show(&data, "orders", &principal)["profiles"][0];
        let shapes = profile["shapes"].as_array().unwrap();
        if shapes.iter().any(|s| s["statement"] == NORMAL_SHAPE) {
            assert_eq!(profile["mode"], "learn");
            assert!(shapes.iter().all(|s| s["source"] == "learned"));
            assert!(shapes.iter().all(|s| s["statement"] != INJECTED_SHAPE));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the shape was never learned: {profile}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Alert: the injection works, and is reported.
    firewall(
        &data,
        &[
            "set-mode",
            "--db",
            "orders",
            "--principal",
            &principal,
            "--mode",
            "alert",
        ],
    );
    app.until_mode("alert");
    let r = app.run(&["1 OR 1=1"]);
    assert_eq!(r[0]["rows"], serde_json::json!([10, 20, 30]), "{r:?}");
    let tautology = wait_for_finding(&data, "SQLInjection:Gateway/Tautology");
    assert_eq!(tautology["severity"], "High");
    assert_eq!(tautology["principal"], principal.as_str());
    let unseen = wait_for_finding(&data, "SQLInjection:Gateway/UnseenStatementShape");
    assert_eq!(unseen["severity"], "Medium");
    assert!(
        unseen["description"]
            .as_str()
            .unwrap()
            .contains(INJECTED_SHAPE),
        "{unseen}"
    );
    let events = audit_events(&lk, |e| last_firewall(e, INJECTED_SHAPE).is_some());
    assert_eq!(
        last_firewall(&events, INJECTED_SHAPE).unwrap(),
        serde_json::json!({"mode": "alert", "unseen": true, "signals": ["tautology"], "refused": false})
    );
    // The normal statements were not flagged.
    assert!(
        findings(&data, &[]).iter().all(|f| !f["description"]
            .as_str()
            .unwrap()
            .contains(&format!("`{NORMAL_SHAPE}`"))),
        "{:#?}",
        findings(&data, &[])
    );

    // A session that was open in alert mode is refused the injection once
    // the principal is set to block, without logging in again.
    let mut live = app.live();
    assert_eq!(
        live.send("1 OR 1=1")["rows"],
        serde_json::json!([10, 20, 30])
    );
    firewall(
        &data,
        &[
            "set-mode",
            "--db",
            "orders",
            "--principal",
            &principal,
            "--mode",
            "block",
        ],
    );
    // The server re-reads the firewall every few seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = live.send("1 OR 1=1");
        if r["sqlstate"] == "42501" {
            break;
        }
        assert_eq!(r["rows"], serde_json::json!([10, 20, 30]), "{r}");
        assert!(
            Instant::now() < deadline,
            "the open session never saw block mode: {:?} {}\nserver log:\n{}",
            last_firewall(&audit_events(&lk, |_| true), INJECTED_SHAPE),
            show(&data, "orders", &principal),
            std::fs::read_to_string(root.path().join("latchkey.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(live.send("2")["rows"], serde_json::json!([20]));
    drop(live);

    // Block: the injection (and a time probe, and an unseen shape) is
    // refused, the normal input still works, in one session.
    firewall(
        &data,
        &[
            "set-mode",
            "--db",
            "orders",
            "--principal",
            &principal,
            "--mode",
            "block",
        ],
    );
    app.until_mode("block");
    let r = app.run(&[
        "1",
        "1 OR 1=1",
        "2",
        "(SELECT 1 FROM pg_sleep(0))",
        "3 AND total > 5",
        "3",
    ]);
    assert_eq!(r[0]["rows"], serde_json::json!([10]), "{r:?}");
    assert_eq!(r[1]["sqlstate"], "42501", "{r:?}");
    assert_eq!(
        r[1]["message"],
        "statement refused by the SQL firewall: shape not seen while learning"
    );
    assert_eq!(r[2]["rows"], serde_json::json!([20]));
    assert_eq!(r[3]["sqlstate"], "42501", "{r:?}");
    assert_eq!(r[4]["sqlstate"], "42501", "{r:?}");
    assert_eq!(r[5]["rows"], serde_json::json!([30]));
    let events = audit_events(&lk, |e| {
        last_firewall(e, INJECTED_SHAPE).is_some_and(|f| f["refused"] == true)
    });
    let refused = last_firewall(&events, INJECTED_SHAPE).unwrap();
    assert_eq!(refused["mode"], "block");
    assert_eq!(refused["refused"], true);
    wait_for_finding(&data, "SQLInjection:Gateway/TimeBasedProbe");

    // Approve a new shape from an example statement: it passes.
    let approved = firewall(
        &data,
        &[
            "approve",
            "--db",
            "orders",
            "--principal",
            &principal,
            "--sql",
            "SELECT total FROM orders WHERE id = 7 AND total > 0",
            "--output",
            "json",
        ],
    );
    let approved: serde_json::Value = serde_json::from_str(&approved).unwrap();
    assert_eq!(
        approved["statement"],
        "SELECT total FROM orders WHERE id = ? AND total > ?"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = app.run(&["3 AND total > 5"]);
        if r[0]["rows"] == serde_json::json!([30]) {
            break;
        }
        assert_eq!(r[0]["sqlstate"], "42501", "{r:?}");
        assert!(
            Instant::now() < deadline,
            "the approved shape stays refused"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let profile = &show(&data, "orders", &principal)["profiles"][0];
    assert_eq!(profile["mode"], "block");
    assert!(
        profile["shapes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["source"] == "approved" && s["fingerprint"] == approved["fingerprint"]),
        "{profile}"
    );
    let text = firewall(&data, &["show", "--db", "orders"]);
    assert!(
        text.contains(&principal) && text.contains("approved"),
        "{text}"
    );

    // A session opened while the firewall is off cannot take it up halfway:
    // turned on, it ends the session (red team, issue 22).
    firewall(&data, &["configure", "--db", "orders", "--mode", "off"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut live = loop {
        // Once the server has read the change, a new session has no firewall.
        let mut live = app.live();
        if live.send("1 OR 1=1")["rows"] == serde_json::json!([10, 20, 30]) {
            break live;
        }
        assert!(Instant::now() < deadline, "the firewall never went off");
        std::thread::sleep(Duration::from_millis(500));
    };
    firewall(&data, &["configure", "--db", "orders", "--mode", "block"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = live.send("1 OR 1=1");
        if r.get("rows").is_none() {
            // Refused or cut off: never run.
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a session opened with the firewall off ran on after it was turned on: {r}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let ended = audit_events(&lk, |e| {
        e.iter()
            .any(|e| e.to_string().contains("the SQL firewall was turned on"))
    });
    assert!(
        ended
            .iter()
            .any(|e| e.to_string().contains("the SQL firewall was turned on")),
        "no session end record says why"
    );
}

/// MySQL (MariaDB) with the mariadb CLI: a principal new to a database
/// in `block` mode learns for the window; set to block, its injected
/// tautology (`OR 'a'='a'`) gets ERROR 1142 while its learned statement
/// runs before and after it, in one session, and is reported.
#[test]
fn mysql_injections_are_refused_in_block_mode() {
    let root = tempfile::tempdir().unwrap();
    let db = MariaDb::start(root.path());
    shop_sql(
        &db,
        "CREATE TABLE shop.orders (id int PRIMARY KEY, total int);
         INSERT INTO shop.orders VALUES (1, 10), (2, 20), (3, 30);",
    );
    let (data, api) = init_latchkey(root.path(), &[]);
    register_shop(&data, &db, &[]);
    firewall(
        &data,
        &[
            "configure",
            "--db",
            "shop",
            "--mode",
            "block",
            "--learning",
            "1h",
        ],
    );
    let lk = serve_latchkey(root.path(), &data, &api, &[]);
    let account = admin_cli(&lk, &["sts", "get-caller-identity"])["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    let principal = format!("arn:aws:iam::{account}:user/shop");
    let creds = user_with_policy(&lk, "shop", CONNECT_ONLY);
    let creds: Vec<(&str, &str)> = creds
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let token = aws_token_for_port(&lk, lk.mysql_port, &creds, "localhost", "app");
    // Statements on standard input, going on after errors: one session.
    let run = |sql: &str| {
        let out = mariadb_command(&lk, "app", &token)
            .args(["-N", "-B", "--force", "shop"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(sql.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    // Learning (the database's window): everything runs.
    assert_eq!(run("SELECT total FROM orders WHERE id = 1").trim(), "10");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all: serde_json::Value = serde_json::from_str(&firewall(
            &data,
            &["show", "--db", "shop", "--output", "json"],
        ))
        .unwrap();
        let learned = all["profiles"].as_array().unwrap().iter().any(|p| {
            p["principal"] == principal.as_str()
                && p["shapes"].as_array().is_some_and(|s| !s.is_empty())
        });
        if learned {
            break;
        }
        assert!(Instant::now() < deadline, "nothing learned: {all}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A session that prepared statements while learning (binary protocol,
    // COM_STMT_PREPARE) and runs them again after the switch to block:
    // the injected one is judged again and refused, the learned one runs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("localhost")
        .tcp_port(lk.mysql_port)
        .user(Some("app"))
        .pass(Some(token.clone()))
        .db_name(Some("shop"))
        .enable_cleartext_plugin(true)
        .ssl_opts(Some(
            mysql_async::SslOpts::default().with_root_certs(vec![lk.data.join("ca.pem").into()]),
        ))
        .into();
    let (mut conn, injected, learned) = runtime.block_on(async {
        use mysql_async::prelude::Queryable;
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        let injected = conn
            .prep("SELECT total FROM orders WHERE id = 2 OR 'a'='a'")
            .await
            .unwrap();
        let learned = conn
            .prep("SELECT total FROM orders WHERE id = ?")
            .await
            .unwrap();
        let all: Vec<i32> = conn.exec(&injected, ()).await.unwrap();
        assert_eq!(all.len(), 3);
        // The same through SQL-level PREPARE and EXECUTE.
        conn.query_drop("PREPARE s FROM 'SELECT total FROM orders WHERE id = 3 OR 1=1'")
            .await
            .unwrap();
        let all: Vec<i32> = conn.query("EXECUTE s").await.unwrap();
        assert_eq!(all.len(), 3);
        (conn, injected, learned)
    });

    firewall(
        &data,
        &[
            "set-mode",
            "--db",
            "shop",
            "--principal",
            &principal,
            "--mode",
            "block",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    runtime.block_on(async {
        use mysql_async::prelude::Queryable;
        loop {
            match conn.exec::<i32, _, _>(&injected, ()).await {
                Err(mysql_async::Error::Server(e)) => {
                    assert_eq!(e.code, 1142, "{e:?}");
                    break;
                }
                Ok(rows) => assert_eq!(rows.len(), 3),
                Err(other) => panic!("{other:?}"),
            }
            assert!(
                Instant::now() < deadline,
                "the prepared injection kept running in block mode"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let total: Option<i32> = conn.exec_first(&learned, (3,)).await.unwrap();
        assert_eq!(total, Some(30));
        match conn.query::<i32, _>("EXECUTE s").await {
            Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1142, "{e:?}"),
            other => panic!("EXECUTE of the injection prepared while learning: {other:?}"),
        }
        conn.disconnect().await.unwrap();
    });
    let out = loop {
        let out = run("SELECT total FROM orders WHERE id = 2; \
             SELECT total FROM orders WHERE id = 2 OR 'a'='a'; \
             SELECT total FROM orders WHERE id = 3");
        if out.contains("ERROR 1142") {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "block mode never took effect: {out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // The CLI sends each statement on its own: the first and last run.
    assert!(out.contains("20\n") && out.contains("30"), "{out}");
    assert_eq!(out.matches("ERROR 1142").count(), 1, "{out}");
    assert!(
        out.contains("statement refused by the SQL firewall: shape not seen while learning"),
        "{out}"
    );
    let tautology = wait_for_finding(&data, "SQLInjection:Gateway/Tautology");
    assert!(
        tautology["resource"].as_str().unwrap().starts_with("shop/"),
        "{tautology}"
    );
}
