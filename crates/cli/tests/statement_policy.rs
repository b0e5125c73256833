//! Statement-level policy (`sql:` actions) through the real `latchkey
//! serve`, with stock clients (psql, tokio-postgres, the mariadb CLI,
//! mysql_async) against throwaway PostgreSQL and MariaDB servers: a
//! restricted table refused directly, through a view, a subquery, a CTE,
//! COPY, EXPLAIN ANALYZE, PREPARE and a multi-statement string; a
//! function the policy does not allow; DELETE without WHERE; the session
//! staying usable after refusals in and out of transactions; the extended
//! protocol with pipelining; `audit` mode refusing nothing; and DROP only
//! from a role assumed with MFA a short while ago.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;

use common::api::{enable_virtual_mfa_with, totp};
use std::process::Command;

use common::sql::*;
use common::*;
use mysql_async::prelude::*;

/// A PostgreSQL server with orders (ordinary) and cards (restricted), a
/// view over cards and a function reading it; Latchkey in front with
/// statement policy `mode`.
fn pg_stack(root: &Path, mode: &str) -> (Postgres, Latchkey, std::path::PathBuf, String) {
    let pg = Postgres::start(root);
    orders_sql(
        &pg,
        &format!(
            "{ORDERS_AND_CARDS} CREATE TABLE scratch1 (x int); CREATE TABLE scratch2 (x int);"
        ),
    );
    let (data, api) = init_latchkey(root, &[]);
    register_db(&data, &orders_registration(&pg, mode));
    set_db_password(&data, "orders", "app", "app-secret");
    classify_restricted(&data, "orders", "public.cards");
    let lk = serve_latchkey(root, &data, &api, &[]);
    (pg, lk, data, api)
}

fn orders_registration(pg: &Postgres, mode: &str) -> Vec<String> {
    [
        "--name",
        "orders",
        "--endpoint",
        "localhost",
        "--upstream",
        &format!("127.0.0.1:{}", pg.port),
        "--statement-policy",
        mode,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn register_db(data: &Path, args: &[String]) -> serde_json::Value {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::register_db(data, &args)
}

/// The statement records the audit trail holds for `sql` (normalised).
fn policy_records(lk: &Latchkey, statement: &str) -> Vec<serde_json::Value> {
    audit_events(lk, |events| {
        events
            .iter()
            .any(|e| e["database"]["statement"].as_str() == Some(statement))
    })
    .into_iter()
    .filter(|e| e["database"]["statement"].as_str() == Some(statement))
    .collect()
}

/// `db classify --suggest` through the gateway's upstream login: the
/// proposals, written for review, tag nothing until imported.
fn suggest_and_import(data: &Path, db: &str, extra: &[&str], expect: &str) {
    let file = data.join(format!("{db}-suggested.csv"));
    let dir = data.to_str().unwrap();
    let mut args = vec![
        "db",
        "classify",
        "--data-dir",
        dir,
        "--db",
        db,
        "--suggest",
        "--user",
        "app",
    ];
    args.extend(extra);
    args.extend(["--write", file.to_str().unwrap(), "--output", "json"]);
    let out = latchkey(&args).output().unwrap();
    let proposed: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
    let found = proposed["suggestions"].as_array().unwrap();
    assert!(
        found
            .iter()
            .any(|s| s["object"] == expect && s["column"] == "pan" && s["value"] == "payment-card"),
        "{proposed}"
    );
    let listed = |dir: &str| -> usize {
        let out = latchkey(&[
            "db",
            "classification",
            "--data-dir",
            dir,
            "--db",
            db,
            "--output",
            "json",
        ])
        .output()
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
        v["tags"].as_array().unwrap().len()
    };
    let before = listed(dir);
    assert_eq!(before, 1, "suggesting tags nothing");
    let out = latchkey(&[
        "db",
        "classify",
        "--data-dir",
        dir,
        "--db",
        db,
        "--from-file",
        file.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(listed(dir) > before);
}

#[test]
fn postgres_statements_are_decided_by_policy_in_enforce_and_audit_mode() {
    let root = tempfile::tempdir().unwrap();
    let (pg, lk, data, _) = pg_stack(root.path(), "enforce");
    let alice = user_with_policy(&lk, "alice", ANALYST);
    let token = token_with(&lk, &alice);

    let denied = |what: &str| format!("ERROR:  permission denied by policy: {what}");
    let script = "SELECT 'start', count(*) FROM orders;
SELECT * FROM cards;
SELECT * FROM card_view;
SELECT id FROM orders WHERE id IN (SELECT id FROM cards);
WITH c AS (SELECT * FROM cards) SELECT count(*) FROM c;
SELECT public.secret_count();
COPY cards TO STDOUT;
COPY orders TO STDOUT;
EXPLAIN ANALYZE SELECT * FROM cards;
PREPARE p AS SELECT * FROM cards;
PREPARE q AS SELECT total FROM orders WHERE id = $1;
EXECUTE q(2);
SELECT 1 \\; SELECT * FROM cards;
DELETE FROM orders;
UPDATE orders SET total = 0 WHERE 1 = 1;
DELETE FROM orders WHERE id = 3;
BEGIN;
SELECT * FROM cards;
SELECT 'in aborted transaction';
ROLLBACK;
SELECT 'alive', count(*) FROM orders;
";
    let out = psql_script(&lk, &token, script);
    assert!(out.contains("start|3"), "{out}");
    let on_cards = denied("sql:Select on table public.cards");
    // Directly, in a subquery, a CTE, EXPLAIN ANALYZE, PREPARE, a
    // multi-statement string and a transaction.
    assert_eq!(out.matches(&on_cards).count(), 7, "{out}");
    assert!(
        out.contains(&denied("sql:Select on table public.card_view")),
        "{out}"
    );
    assert!(
        out.contains(&denied("sql:Execute on function public.secret_count")),
        "{out}"
    );
    assert!(
        out.contains(&denied("sql:CopyOut on table public.cards")),
        "{out}"
    );
    assert!(out.contains("1\t10\n2\t20\n3\t30"), "COPY orders: {out}");
    assert!(out.contains("\n20\n"), "EXECUTE q: {out}");
    assert!(
        out.contains(&denied("sql:Delete on table public.orders")),
        "{out}"
    );
    assert!(
        out.contains(&denied("sql:Update on table public.orders")),
        "{out}"
    );
    assert!(out.contains("DELETE 1"), "{out}");
    assert!(
        out.contains("current transaction is aborted"),
        "the refusal aborted the transaction as PostgreSQL would: {out}"
    );
    assert!(out.contains("alive|2"), "{out}");
    assert!(!out.contains("4111"), "{out}");

    // The trail records the decision and the statement that made it.
    let records = policy_records(&lk, "SELECT * FROM cards");
    let policy = &records.first().expect("audited")["database"]["policy"];
    assert_eq!(policy["decision"], "deny", "{policy}");
    assert_eq!(policy["enforced"], true);
    assert_eq!(policy["action"], "sql:Select");
    assert!(
        policy["resource"]
            .as_str()
            .unwrap()
            .ends_with("/orders/public/cards"),
        "{policy}"
    );
    assert!(
        policy["reason"]
            .as_str()
            .unwrap()
            .contains("NoRestrictedData"),
        "{policy}"
    );
    let allowed = policy_records(&lk, "SELECT ?, count(*) FROM orders");
    assert_eq!(
        allowed.first().expect("audited")["database"]["policy"]["decision"],
        "allow"
    );

    extended_protocol(&lk, &token);

    // A role set at login is SET ROLE before the first statement: without
    // sql:Admin it is not passed on.
    orders_sql(&pg, "CREATE ROLE auditor; GRANT auditor TO app;");
    let out = Command::new("psql")
        .arg(conninfo(&lk, "app", "verify-full"))
        .args(["-X", "-A", "-t", "-c", "SELECT current_user"])
        .env("PGPASSWORD", &token)
        .env("PGOPTIONS", "-c role=auditor")
        .output()
        .unwrap();
    assert_eq!(text(&out).trim(), "app", "{}", text(&out));
    suggest_and_import(&data, "orders", &["--database", "orders"], "public.cards");

    // Audit mode: the same statement is decided and recorded, not refused.
    register_db(
        &data,
        &[orders_registration(&pg, "audit"), vec!["--update".into()]].concat(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = psql(&lk, "app", &token, "verify-full", "SELECT pan FROM cards");
        if out.status.success() {
            assert!(text(&out).contains("4111111111111111"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "audit mode never took effect: {}",
            text(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let audited = |e: &serde_json::Value| {
        e["database"]["statement"] == "SELECT pan FROM cards"
            && e["database"]["policy"]["enforced"] == false
    };
    let events = audit_events(&lk, |events| events.iter().any(audited));
    let audited = &events.iter().find(|e| audited(e)).expect("audited")["database"]["policy"];
    assert_eq!(audited["decision"], "deny", "{audited}");
}

/// Parse is decided once; a refused one never reaches the server, the
/// messages after it up to Sync are dropped, and the connection goes on
/// (with pipelined queries around it, and inside a transaction).
fn extended_protocol(lk: &Latchkey, token: &str) {
    let tls = pg_tls(lk);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = format!(
            "host=localhost port={} user=app dbname=orders sslmode=require password={token}",
            lk.pg_port
        );
        let (mut client, connection) = tokio_postgres::connect(&config, tls).await.unwrap();
        tokio::spawn(connection);
        let err = client
            .prepare("SELECT pan FROM cards WHERE id = $1")
            .await
            .unwrap_err();
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "42501");
        assert_eq!(
            db.message(),
            "permission denied by policy: sql:Select on table public.cards"
        );
        // Pipelined: the refusal in the middle leaves the others alone.
        let ok = "SELECT total FROM orders WHERE id = $1";
        let (a, b, c) = tokio::join!(
            client.query(ok, &[&1i32]),
            client.query("SELECT pan FROM cards WHERE id = $1", &[&1i32]),
            client.query(ok, &[&2i32]),
        );
        assert_eq!(a.unwrap()[0].get::<_, i32>(0), 10);
        assert_eq!(b.unwrap_err().code().unwrap().code(), "42501");
        assert_eq!(c.unwrap()[0].get::<_, i32>(0), 20);
        // In a transaction the refusal aborts it, as any error would.
        let tx = client.transaction().await.unwrap();
        assert!(tx.query("SELECT * FROM card_view", &[]).await.is_err());
        let aborted = tx.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(aborted.code().unwrap().code(), "25P02");
        tx.rollback().await.unwrap();
        let rows = client.query(ok, &[&1i32]).await.unwrap();
        assert_eq!(rows[0].get::<_, i32>(0), 10);
    });
}

/// "DROP only from the dba role, assumed with MFA in the last N seconds"
/// is one policy statement; here N is 30 rather than the README's 300,
/// so the test can outwait it.
#[test]
fn postgres_drop_needs_a_role_assumed_with_fresh_mfa() {
    let root = tempfile::tempdir().unwrap();
    let (_pg, lk, _data, _) = pg_stack(root.path(), "enforce");
    let account = admin_cli(&lk, &["sts", "get-caller-identity"])["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = user_with_policy(
        &lk,
        "bob",
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":["rds-db:connect","sts:AssumeRole"],"Resource":"*"},
          {"Effect":"Allow","Action":["sql:Select","sql:Execute"],"Resource":"*"}]}"#,
    );
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:user/bob"}},"Action":"sts:AssumeRole","Condition":{{"Bool":{{"aws:MultiFactorAuthPresent":"true"}}}}}}]}}"#
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "create-role",
            "--role-name",
            "dba",
            "--assume-role-policy-document",
            &trust,
        ],
    );
    admin_cli(
        &lk,
        &[
            "iam",
            "put-role-policy",
            "--role-name",
            "dba",
            "--policy-name",
            "dba",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":["rds-db:connect","sql:Select","sql:Execute"],"Resource":"*"},
              {"Sid":"DropWithFreshMfa","Effect":"Allow","Action":"sql:Drop","Resource":"*",
               "Condition":{"NumericLessThan":{"aws:MultiFactorAuthAge":"30"}}}]}"#,
        ],
    );
    // bob's MFA device.
    let seed = root.path().join("bob-seed");
    let serial = enable_virtual_mfa_with(|args| admin_cli(&lk, args), "bob", &seed);

    // As bob himself: no DROP.
    let out = psql(
        &lk,
        "app",
        &token_with(&lk, &bob),
        "verify-full",
        "DROP TABLE scratch1",
    );
    assert!(
        text(&out).contains("permission denied by policy: sql:Drop on table public.scratch1"),
        "{}",
        text(&out)
    );

    // As dba, assumed with MFA: DROP now, and not after 30 seconds of MFA
    // age, in the same session.
    let mut assume = aws_cli();
    for (k, v) in &bob {
        assume.env(k, v);
    }
    let assumed = assume
        .env("AWS_CONFIG_FILE", lk.data.join("aws.config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_CA_BUNDLE", lk.data.join("ca.pem"))
        .args([
            "sts",
            "assume-role",
            "--role-arn",
            &format!("arn:aws:iam::{account}:role/dba"),
            "--role-session-name",
            "drop",
            "--serial-number",
            &serial,
            "--token-code",
            &totp(&seed, 30),
        ])
        .output()
        .unwrap();
    let assumed: serde_json::Value = serde_json::from_str(&stdout_ok(&assumed)).unwrap();
    let dba = common::api::Creds::from_sts(&assumed["Credentials"]).env_vars();
    let out = psql_script(
        &lk,
        &token_with(&lk, &dba),
        "DROP TABLE scratch1;\nSELECT 'waiting', pg_sleep(31);\nDROP TABLE scratch2;\n",
    );
    assert!(out.contains("DROP TABLE"), "{out}");
    assert!(out.contains("waiting|"), "{out}");
    assert!(
        out.contains("permission denied by policy: sql:Drop on table public.scratch2"),
        "{out}"
    );
}

/// MySQL/MariaDB: refusals answer ERROR 1142, for COM_QUERY and
/// COM_STMT_PREPARE, and the session goes on.
#[test]
fn mysql_statements_are_decided_by_policy() {
    let root = tempfile::tempdir().unwrap();
    let db = MariaDb::start(root.path());
    shop_sql(
        &db,
        "CREATE TABLE shop.orders (id int PRIMARY KEY, total int);
         INSERT INTO shop.orders VALUES (1, 10), (2, 20), (3, 30);
         CREATE TABLE shop.cards (id int, pan text);
         INSERT INTO shop.cards VALUES (1, '4111111111111111');",
    );
    let (data, api) = init_latchkey(root.path(), &[]);
    register_shop(&data, &db, &["--statement-policy", "enforce"]);
    classify_restricted(&data, "shop", "shop.cards");
    let lk = serve_latchkey(root.path(), &data, &api, &[]);
    suggest_and_import(&data, "shop", &[], "shop.cards");
    let alice = user_with_policy(&lk, "alice", ANALYST);
    let creds: Vec<(&str, &str)> = alice
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let token = aws_token_for_port(&lk, lk.mysql_port, &creds, "localhost", "app");

    let script = "SELECT 'start', count(*) FROM orders;
SELECT * FROM cards;
SELECT id FROM orders WHERE id IN (SELECT id FROM cards);
DELETE FROM orders;
DELETE FROM orders WHERE id = 3;
BEGIN;
SELECT * FROM cards;
SELECT 'still in the transaction', @@in_transaction;
ROLLBACK;
SELECT 'alive', count(*) FROM orders;
";
    // Going on after errors (--force): one session.
    let mut client = mariadb_command(&lk, "app", &token);
    client.args(["-N", "-B", "--force", "shop"]);
    let out = script_output(client, script);
    assert!(out.contains("start\t3"), "{out}");
    assert_eq!(
        out.matches("ERROR 1142 (42000)").count(),
        4,
        "three reads of cards and a DELETE without WHERE: {out}"
    );
    assert!(
        out.contains("permission denied by policy: sql:Select on table shop.cards"),
        "{out}"
    );
    assert!(
        out.contains("permission denied by policy: sql:Delete on table shop.orders"),
        "{out}"
    );
    // MySQL keeps a transaction open after an error; so does the refusal.
    assert!(out.contains("still in the transaction\t1"), "{out}");
    assert!(out.contains("alive\t2"), "{out}");
    assert!(!out.contains("4111"), "{out}");

    // Prepared statements are decided at COM_STMT_PREPARE.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("localhost")
            .tcp_port(lk.mysql_port)
            .user(Some("app"))
            .pass(Some(token.clone()))
            .db_name(Some("shop"))
            .enable_cleartext_plugin(true)
            .ssl_opts(Some(
                mysql_async::SslOpts::default()
                    .with_root_certs(vec![lk.data.join("ca.pem").into()]),
            ))
            .into();
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        let err = conn
            .exec_drop("SELECT pan FROM cards WHERE id = ?", (1,))
            .await
            .unwrap_err();
        match err {
            mysql_async::Error::Server(e) => assert_eq!(e.code, 1142, "{e:?}"),
            other => panic!("{other:?}"),
        }
        let total: Option<i32> = conn
            .exec_first("SELECT total FROM orders WHERE id = ?", (2,))
            .await
            .unwrap();
        assert_eq!(total, Some(20));
        conn.disconnect().await.unwrap();
    });
}

/// `latchkey policy simulate --sql` answers per object and action, with
/// the objects' classification, as the gateway would decide.
#[test]
fn policy_simulate_decides_sql_per_object_and_action() {
    let root = tempfile::tempdir().unwrap();
    let (data, _) = init_latchkey(root.path(), &[]);
    common::register_db(
        &data,
        &[
            "--name",
            "orders",
            "--endpoint",
            "localhost",
            "--upstream",
            "127.0.0.1:5432",
            "--statement-policy",
            "enforce",
        ],
    );
    classify_restricted(&data, "orders", "public.cards");
    let policy = root.path().join("analyst.json");
    std::fs::write(&policy, ANALYST).unwrap();
    let simulate_on = |db: &str, sql: &str, extra: &[&str]| -> serde_json::Value {
        let out = latchkey(&[
            "policy",
            "simulate",
            "--data-dir",
            data.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--db",
            db,
            "--user",
            "app",
            "--sql",
            sql,
            "--output",
            "json",
        ])
        .args(extra)
        .output()
        .unwrap();
        serde_json::from_str(&stdout_ok(&out)).unwrap()
    };
    let simulate = |sql: &str, extra: &[&str]| simulate_on("orders", sql, extra);
    let decisions = |v: &serde_json::Value| -> Vec<(String, String, String)> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["object"].as_str().unwrap().to_owned(),
                    r["action"].as_str().unwrap().to_owned(),
                    r["decision"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let joined = simulate(
        "SELECT o.total FROM orders o JOIN public.cards c ON c.id = o.id",
        &[],
    );
    let found = decisions(&joined);
    assert!(
        found.contains(&(
            "table public.orders".into(),
            "sql:Select".into(),
            "allowed".into()
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            "table public.cards".into(),
            "sql:Select".into(),
            "explicitDeny".into()
        )),
        "{found:?}"
    );
    let cards = joined["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["object"] == "table public.cards")
        .unwrap();
    assert_eq!(
        cards["matchedStatements"][0]["statement"], "NoRestrictedData",
        "{cards}"
    );
    assert!(
        cards["resource"]
            .as_str()
            .unwrap()
            .ends_with("/orders/public/cards")
    );
    // An unqualified name stands for every schema on the path ("$user"
    // is app): each must allow it.
    let delete = |path: &[&str]| decisions(&simulate("DELETE FROM orders", path));
    let denied = |object: &str| {
        (
            object.to_owned(),
            "sql:Delete".to_owned(),
            "explicitDeny".to_owned(),
        )
    };
    assert_eq!(
        delete(&[]),
        [denied("table app.orders"), denied("table public.orders")]
    );
    assert_eq!(
        delete(&["--search-path", "public"]),
        [denied("table public.orders")]
    );

    // MySQL: names in ARNs as a server with lower_case_table_names
    // compares them, or as written.
    common::register_db(
        &data,
        &[
            "--name",
            "shop",
            "--engine",
            "mysql",
            "--endpoint",
            "localhost",
            "--upstream",
            "127.0.0.1:3306",
            "--statement-policy",
            "enforce",
        ],
    );
    let shop_arn = |extra: &[&str]| {
        let v = simulate_on("shop", "SELECT * FROM SHOP.Orders", extra);
        v["results"][0]["resource"].as_str().unwrap().to_owned()
    };
    assert!(
        shop_arn(&["--lower-case-table-names", "1"]).ends_with("/shop/shop/orders"),
        "{}",
        shop_arn(&["--lower-case-table-names", "1"])
    );
    assert!(
        shop_arn(&[]).ends_with("/SHOP/SHOP/Orders"),
        "{}",
        shop_arn(&[])
    );
}
