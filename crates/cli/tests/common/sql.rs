//! Helpers of the statement-policy, firewall and statement-guard tests:
//! the analyst's policy, scripts through the gateway, classification,
//! and TLS for tokio-postgres.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::{
    Latchkey, MariaDb, Postgres, as_pg_user, conninfo, latchkey, register_db, set_db_password,
};

/// What the analyst may do: connect, read and change `public` (and
/// `shop`), call PostgreSQL's built-in functions, never touch restricted
/// data, and never UPDATE or DELETE without a WHERE clause.
pub const ANALYST: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Connect","Effect":"Allow","Action":"rds-db:connect","Resource":"*"},
  {"Sid":"PublicData","Effect":"Allow",
   "Action":["sql:Select","sql:Insert","sql:Update","sql:Delete","sql:CopyOut"],
   "Resource":["arn:aws:sql:*:*:table/*/orders/public/*","arn:aws:sql:*:*:table/*/shop/shop/*"]},
  {"Sid":"BuiltIns","Effect":"Allow","Action":"sql:Execute",
   "Resource":"arn:aws:sql:*:*:function/*/*/pg_catalog/*"},
  {"Sid":"NoRestrictedData","Effect":"Deny","Action":"sql:*","Resource":"*",
   "Condition":{"StringEquals":{"sql:ObjectTag/classification":"restricted"}}},
  {"Sid":"WhereRequired","Effect":"Deny","Action":["sql:Update","sql:Delete"],"Resource":"*",
   "Condition":{"Bool":{"sql:WhereClausePresent":"false"}}}
]}"#;

/// The `orders` database's tables as app owns them: `orders`
/// (ordinary), `cards` (to be classified restricted), a view over cards
/// and a function reading it. Leaves the role set to app.
pub const ORDERS_AND_CARDS: &str = "SET ROLE app;
         CREATE TABLE orders (id int PRIMARY KEY, total int);
         INSERT INTO orders VALUES (1, 10), (2, 20), (3, 30);
         CREATE TABLE cards (id int, pan text);
         INSERT INTO cards VALUES (1, '4111111111111111');
         CREATE VIEW card_view AS SELECT id, pan FROM cards;
         CREATE FUNCTION secret_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM cards';";

/// Standard output and error, together.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// SQL as the superuser in the `orders` database.
pub fn orders_sql(pg: &Postgres, sql: &str) {
    let out = as_pg_user(Path::new("/usr/bin/psql"))
        .arg("-h")
        .arg(&pg.dir)
        .args(["-p", &pg.port.to_string(), "-U", "postgres", "-d", "orders"])
        .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// `command` with `script` on its standard input; what it printed.
pub fn script_output(mut command: Command, script: &str) -> String {
    let out = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(script.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    text(&out)
}

/// A psql script through the gateway as `app`, one statement at a time,
/// going on after errors.
pub fn psql_script(lk: &Latchkey, token: &str, script: &str) -> String {
    let mut psql = Command::new("psql");
    psql.arg(conninfo(lk, "app", "verify-full"))
        .args(["-X", "-A", "-t", "-f", "-"])
        .env("PGPASSWORD", token);
    script_output(psql, script)
}

/// `latchkey db classify … --tag classification=restricted`.
pub fn classify_restricted(data: &Path, db: &str, object: &str) {
    let out = latchkey(&[
        "db",
        "classify",
        "--data-dir",
        data.to_str().unwrap(),
        "--db",
        db,
        "--object",
        object,
        "--tag",
        "classification=restricted",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// TLS for tokio-postgres, trusting the gateway's CA.
pub fn pg_tls(lk: &Latchkey) -> tokio_postgres_rustls::MakeRustlsConnect {
    let pem = std::fs::read(lk.data.join("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// SQL run as root on a fresh MariaDB after making database `shop` and
/// user `app` (password `app-secret`) with every right on it.
pub fn shop_sql(db: &MariaDb, sql: &str) {
    db.sql(&format!(
        "CREATE DATABASE shop;
         CREATE USER app@'%' IDENTIFIED BY 'app-secret';
         GRANT ALL ON shop.* TO app@'%';
         {sql}"
    ));
}

/// `db register` of `shop` (MySQL, endpoint localhost, upstream TLS off)
/// with `extra` flags, and `app`'s upstream password.
pub fn register_shop(data: &Path, db: &MariaDb, extra: &[&str]) {
    let upstream = format!("127.0.0.1:{}", db.port);
    let mut args = vec![
        "--name",
        "shop",
        "--engine",
        "mysql",
        "--endpoint",
        "localhost",
        "--upstream",
        &upstream,
        "--upstream-tls",
        "disable",
    ];
    args.extend(extra);
    register_db(data, &args);
    set_db_password(data, "shop", "app", "app-secret");
}
