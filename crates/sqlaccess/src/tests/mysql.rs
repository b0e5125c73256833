use proptest::prelude::*;

use crate::my_builtins::NATIVE_FUNCTIONS;
use crate::mysql::{IGNORE_SPACE_FUNCTIONS, PRIVILEGED_VARIABLES};
use crate::{
    Access, Classified, Dialect, Object, ObjectKind, Scope, ScopeChange, SqlAction, classify,
};

use SqlAction::*;

fn scope() -> Scope {
    Scope {
        database: Some("shop".into()),
        search_path: Vec::new(),
        overloaded_functions: Vec::new(),
        attribute_functions: Vec::new(),
    }
}

fn c(sql: &str) -> Classified {
    classify(sql, Dialect::MySql, &scope())
}

fn obj(kind: ObjectKind, db: &str, name: &str) -> Object {
    Object {
        kind,
        database: db.into(),
        schema: db.into(),
        name: name.into(),
    }
}

/// `action` on table `db.name`.
fn t(action: SqlAction, db: &str, name: &str) -> Access {
    Access {
        action,
        object: obj(ObjectKind::Table, db, name),
        where_clause: None,
    }
}

/// `action` on table `db.name` with a WHERE flag.
fn tw(action: SqlAction, db: &str, name: &str, where_clause: bool) -> Access {
    Access {
        where_clause: Some(where_clause),
        ..t(action, db, name)
    }
}

fn f(action: SqlAction, db: &str, name: &str) -> Access {
    Access {
        action,
        object: obj(ObjectKind::Function, db, name),
        where_clause: None,
    }
}

fn d(action: SqlAction, db: &str) -> Access {
    Access {
        action,
        object: Object::database(db),
        where_clause: None,
    }
}

#[track_caller]
fn expect(sql: &str, mut expected: Vec<Access>) {
    expected.sort();
    expected.dedup();
    assert_eq!(c(sql).accesses, expected, "{sql}");
}

#[track_caller]
fn unclassified(sql: &str) {
    let got = c(sql);
    assert!(
        got.accesses.iter().any(|a| a.action == Unclassified),
        "{sql}: {:?}",
        got.accesses
    );
}

#[test]
fn lists_are_sorted_for_binary_search() {
    assert!(NATIVE_FUNCTIONS.windows(2).all(|w| w[0] < w[1]));
    assert!(PRIVILEGED_VARIABLES.windows(2).all(|w| w[0] < w[1]));
    assert!(IGNORE_SPACE_FUNCTIONS.windows(2).all(|w| w[0] < w[1]));
    assert!(NATIVE_FUNCTIONS.contains(&"COUNT"));
    assert!(NATIVE_FUNCTIONS.contains(&"JSON_EXTRACT"));
}

#[test]
fn select_joins_subqueries_ctes() {
    expect(
        "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.cid \
         LEFT JOIN (SELECT x FROM stats) s ON s.x = o.id \
         WHERE o.y IN (SELECT y FROM other.z) AND EXISTS (SELECT 1 FROM audit) ORDER BY 1 LIMIT 5",
        vec![
            t(Select, "shop", "orders"),
            t(Select, "shop", "customers"),
            t(Select, "shop", "stats"),
            t(Select, "other", "z"),
            t(Select, "shop", "audit"),
        ],
    );
    // CTE names are not tables inside their WITH...
    expect(
        "WITH a AS (SELECT * FROM t1), b AS (SELECT * FROM a) SELECT * FROM b JOIN a USING (id)",
        vec![t(Select, "shop", "t1")],
    );
    // ...but a non-recursive CTE's own name in its body is the table.
    expect(
        "WITH a AS (SELECT * FROM a) SELECT * FROM a",
        vec![t(Select, "shop", "a")],
    );
    expect(
        "WITH RECURSIVE r AS (SELECT 1 n UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
        vec![],
    );
    // A CTE is out of scope outside its query.
    expect(
        "SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) d, x",
        vec![t(Select, "shop", "x")],
    );
    expect(
        "SELECT a FROM t1 UNION SELECT b FROM db2.t2",
        vec![t(Select, "shop", "t1"), t(Select, "db2", "t2")],
    );
    expect("SELECT 1 FROM dual", vec![]);
    expect(
        "SELECT (SELECT max(x) FROM m) + 1",
        vec![t(Select, "shop", "m")],
    );
    // Names are kept as written, backquotes removed.
    expect(
        "SELECT * FROM `My Db`.`Orders`",
        vec![t(Select, "My Db", "Orders")],
    );
}

#[test]
fn select_into_and_locking() {
    expect(
        "SELECT * FROM t INTO OUTFILE '/tmp/x' FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n'",
        vec![t(Select, "shop", "t"), t(CopyOut, "shop", "t")],
    );
    expect(
        "SELECT a INTO DUMPFILE '/tmp/x' FROM t JOIN u ON u.id = t.id",
        vec![
            t(Select, "shop", "t"),
            t(CopyOut, "shop", "t"),
            t(Select, "shop", "u"),
            t(CopyOut, "shop", "u"),
        ],
    );
    expect("SELECT 'x' INTO OUTFILE '/tmp/x'", vec![d(CopyOut, "shop")]);
    expect("SELECT a INTO @v FROM t", vec![t(Select, "shop", "t")]);
    expect(
        "SELECT * FROM t WHERE id = 1 FOR UPDATE",
        vec![t(Select, "shop", "t"), tw(Update, "shop", "t", true)],
    );
    expect("SELECT * FROM t FOR SHARE", vec![t(Select, "shop", "t")]);
    expect(
        "SELECT * FROM t LOCK IN SHARE MODE",
        vec![t(Select, "shop", "t")],
    );
}

#[test]
fn insert_replace() {
    expect(
        "INSERT INTO t (a, b) SELECT x, y FROM u JOIN v ON v.id = u.id",
        vec![
            t(Insert, "shop", "t"),
            t(Select, "shop", "u"),
            t(Select, "shop", "v"),
        ],
    );
    expect(
        "INSERT INTO db2.t VALUES (1, (SELECT max(id) FROM s))",
        vec![t(Insert, "db2", "t"), t(Select, "shop", "s")],
    );
    expect(
        "REPLACE INTO t VALUES (?, ?)",
        vec![t(Insert, "shop", "t"), t(Delete, "shop", "t")],
    );
    expect(
        "INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = a + 1",
        vec![t(Insert, "shop", "t"), t(Update, "shop", "t")],
    );
    expect(
        "INSERT IGNORE INTO t SET a = 1",
        vec![t(Insert, "shop", "t")],
    );
}

#[test]
fn update_single_and_multi() {
    expect(
        "UPDATE t SET a = 1 WHERE id = ?",
        vec![tw(Update, "shop", "t", true)],
    );
    expect(
        "UPDATE a JOIN b ON a.id = b.id SET a.x = b.y WHERE b.z = 1",
        vec![tw(Update, "shop", "a", true), t(Select, "shop", "b")],
    );
    expect(
        "UPDATE orders o JOIN db2.items i ON i.oid = o.id SET i.n = 0",
        vec![
            t(Select, "shop", "orders"),
            tw(Update, "db2", "items", false),
        ],
    );
    // Unqualified column in a join: every table may be the target.
    expect(
        "UPDATE a JOIN b ON a.id = b.id SET x = 1",
        vec![
            tw(Update, "shop", "a", false),
            tw(Update, "shop", "b", false),
        ],
    );
    expect(
        "UPDATE t SET a = (SELECT max(b) FROM u) WHERE 1 = 1",
        vec![tw(Update, "shop", "t", false), t(Select, "shop", "u")],
    );
}

#[test]
fn delete_single_and_multi() {
    expect("DELETE FROM t", vec![tw(Delete, "shop", "t", false)]);
    expect(
        "DELETE FROM t WHERE 1=1",
        vec![tw(Delete, "shop", "t", false)],
    );
    expect(
        "DELETE FROM t WHERE 1",
        vec![tw(Delete, "shop", "t", false)],
    );
    expect(
        "DELETE FROM t WHERE true",
        vec![tw(Delete, "shop", "t", false)],
    );
    expect(
        "DELETE FROM t WHERE 'a' = 'a'",
        vec![tw(Delete, "shop", "t", false)],
    );
    expect(
        "DELETE FROM t WHERE id = 1 OR 1 = 1",
        vec![tw(Delete, "shop", "t", false)],
    );
    expect(
        "DELETE FROM t LIMIT 1",
        vec![tw(Delete, "shop", "t", false)],
    );
    expect(
        "DELETE FROM t WHERE id = ? LIMIT 1",
        vec![tw(Delete, "shop", "t", true)],
    );
    expect(
        "DELETE a FROM a JOIN b ON a.id = b.id WHERE b.x = 1",
        vec![tw(Delete, "shop", "a", true), t(Select, "shop", "b")],
    );
    expect(
        "DELETE x FROM db2.a AS x JOIN b ON x.id = b.id",
        vec![tw(Delete, "db2", "a", false), t(Select, "shop", "b")],
    );
    expect(
        "DELETE FROM a USING a JOIN b ON a.id = b.id WHERE b.q > 3",
        vec![tw(Delete, "shop", "a", true), t(Select, "shop", "b")],
    );
    expect(
        "DELETE FROM t WHERE id IN (SELECT id FROM gone)",
        vec![tw(Delete, "shop", "t", true), t(Select, "shop", "gone")],
    );
}

#[test]
fn stored_and_native_functions() {
    expect(
        "SELECT myf(a), COUNT(*), NOW(), CONCAT(a, 'x'), json_extract(j, '$.a'), lib.g(1) FROM t",
        vec![
            t(Select, "shop", "t"),
            f(Execute, "shop", "myf"),
            f(Execute, "lib", "g"),
        ],
    );
    // A built-in's name qualified with a database is a stored function.
    expect("SELECT lib.now()", vec![f(Execute, "lib", "now")]);
    expect(
        "UPDATE t SET a = audit_fn(a) WHERE id = 1",
        vec![
            tw(Update, "shop", "t", true),
            f(Execute, "shop", "audit_fn"),
        ],
    );
    expect("CALL p(1, 2)", vec![f(Execute, "shop", "p")]);
    expect("CALL lib.now()", vec![f(Execute, "lib", "now")]);
    expect("DO myf(1)", vec![f(Execute, "shop", "myf")]);
    expect("DO 1 + 1", vec![]);
    expect("SELECT LOAD_FILE('/etc/passwd')", vec![d(CopyIn, "shop")]);
    // `NOW ()` with a space, or a backquoted name, is a stored function.
    expect("SELECT NOW ()", vec![f(Execute, "shop", "NOW")]);
    assert!(!c("SELECT NOW ()").shape_only);
    expect("SELECT `now`()", vec![f(Execute, "shop", "now")]);
    expect("SELECT CONCAT ('a', 'b'), NOW()", vec![]);
}

#[test]
fn ddl() {
    expect(
        "CREATE TABLE x (id INT PRIMARY KEY)",
        vec![t(Create, "shop", "x")],
    );
    expect(
        "CREATE TABLE x LIKE db2.y",
        vec![t(Create, "shop", "x"), t(Select, "db2", "y")],
    );
    expect(
        "CREATE TABLE x AS SELECT * FROM y",
        vec![t(Create, "shop", "x"), t(Select, "shop", "y")],
    );
    expect(
        "CREATE OR REPLACE ALGORITHM=MERGE DEFINER='a'@'%' SQL SECURITY DEFINER VIEW v AS SELECT * FROM y",
        vec![t(Create, "shop", "v"), t(Select, "shop", "y")],
    );
    expect(
        "CREATE UNIQUE INDEX i ON db2.t (a, b)",
        vec![t(Create, "db2", "i"), t(Alter, "db2", "t")],
    );
    expect(
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
        vec![
            t(Create, "shop", "tr"),
            t(Alter, "shop", "t"),
            d(Unclassified, "shop"),
        ],
    );
    expect(
        "CREATE FUNCTION lib.f(x INT) RETURNS INT DETERMINISTIC RETURN x + 1",
        vec![f(Create, "lib", "f"), d(Unclassified, "shop")],
    );
    expect(
        "CREATE TABLE c (id INT, pid INT, FOREIGN KEY (pid) REFERENCES db2.p (id))",
        vec![t(Create, "shop", "c"), t(Select, "db2", "p")],
    );
    expect(
        "CREATE VIEW v AS SELECT myf(a) FROM t WITH LOCAL CHECK OPTION",
        vec![
            t(Create, "shop", "v"),
            t(Select, "shop", "t"),
            f(Execute, "shop", "myf"),
        ],
    );
    expect("CREATE DATABASE IF NOT EXISTS d2", vec![d(Create, "d2")]);
    expect("CREATE SCHEMA d2", vec![d(Create, "d2")]);
    expect(
        "ALTER TABLE t ADD COLUMN c INT",
        vec![t(Alter, "shop", "t")],
    );
    expect(
        "ALTER TABLE t RENAME TO db2.u",
        vec![t(Alter, "shop", "t"), t(Create, "db2", "u")],
    );
    expect(
        "ALTER VIEW v AS SELECT * FROM y",
        vec![t(Alter, "shop", "v"), t(Select, "shop", "y")],
    );
    expect(
        "ALTER DATABASE d2 CHARACTER SET utf8mb4",
        vec![d(Alter, "d2")],
    );
    expect(
        "RENAME TABLE a TO b, db2.c TO db2.d",
        vec![
            t(Alter, "shop", "a"),
            t(Create, "shop", "b"),
            t(Alter, "db2", "c"),
            t(Create, "db2", "d"),
        ],
    );
    expect(
        "DROP TABLE a, db2.b",
        vec![t(Drop, "shop", "a"), t(Drop, "db2", "b")],
    );
    expect(
        "DROP TEMPORARY TABLE IF EXISTS a",
        vec![t(Drop, "shop", "a")],
    );
    expect("DROP VIEW v", vec![t(Drop, "shop", "v")]);
    expect("DROP DATABASE d2", vec![d(Drop, "d2")]);
    expect("DROP FUNCTION IF EXISTS lib.f", vec![f(Drop, "lib", "f")]);
    expect("DROP PROCEDURE p", vec![f(Drop, "shop", "p")]);
    expect(
        "DROP INDEX i ON t",
        vec![t(Drop, "shop", "i"), t(Alter, "shop", "t")],
    );
    expect("TRUNCATE TABLE t", vec![t(Truncate, "shop", "t")]);
    expect("TRUNCATE db2.t", vec![t(Truncate, "db2", "t")]);
}

#[test]
fn grants_users_roles() {
    for sql in [
        "GRANT SELECT ON shop.* TO 'u'@'%'",
        "REVOKE ALL PRIVILEGES ON *.* FROM u",
        "CREATE USER 'u'@'%' IDENTIFIED BY 'x'",
        "ALTER USER u IDENTIFIED BY 'y'",
        "DROP USER u",
        "RENAME USER a TO b",
        "CREATE ROLE r",
        "DROP ROLE r",
        "SET ROLE r",
        "SET DEFAULT ROLE r TO u",
        "SET PASSWORD = 'x'",
        "SET PASSWORD FOR u = 'x'",
    ] {
        expect(sql, vec![d(Grant, "shop")]);
    }
}

#[test]
fn admin() {
    expect(
        "ANALYZE TABLE a, db2.b",
        vec![t(Admin, "shop", "a"), t(Admin, "db2", "b")],
    );
    expect("OPTIMIZE TABLE a", vec![t(Admin, "shop", "a")]);
    expect("CHECK TABLE a QUICK", vec![t(Admin, "shop", "a")]);
    expect(
        "REPAIR NO_WRITE_TO_BINLOG TABLE a",
        vec![t(Admin, "shop", "a")],
    );
    expect(
        "LOCK TABLES a READ, db2.b AS x WRITE",
        vec![
            t(Admin, "shop", "a"),
            t(Select, "shop", "a"),
            t(Admin, "db2", "b"),
            t(Select, "db2", "b"),
            tw(Update, "db2", "b", false),
        ],
    );
    expect("UNLOCK TABLES", vec![]);
    for sql in [
        "FLUSH PRIVILEGES",
        "KILL 42",
        "KILL QUERY 42",
        "SET GLOBAL max_connections = 10",
        "SET PERSIST max_connections = 10",
        "SET @@global.max_connections = 10",
        "SET sql_log_bin = 0",
        "SET SESSION sql_log_bin = 0",
        "SET @@session.gtid_next = 'AUTOMATIC'",
        "SET pseudo_thread_id = 5",
        "SET foreign_key_checks = 0",
        "SET autocommit = 0, GLOBAL x = 1",
        "INSTALL PLUGIN p SONAME 'p.so'",
        "UNINSTALL PLUGIN p",
        "CHANGE MASTER TO MASTER_HOST = 'h'",
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST = 'h'",
        "START SLAVE",
        "STOP REPLICA",
        "PURGE BINARY LOGS TO 'mysql-bin.000010'",
        "RESET MASTER",
        "SHUTDOWN",
        "SHOW GRANTS",
        "SHOW GRANTS FOR u",
        "SHOW FULL PROCESSLIST",
        "SHOW BINLOG EVENTS",
        "SHOW BINARY LOGS",
        "SHOW MASTER STATUS",
        "SHOW SLAVE STATUS",
        "SHOW REPLICA STATUS",
        "EXPLAIN FOR CONNECTION 5",
    ] {
        expect(sql, vec![d(Admin, "shop")]);
    }
}

#[test]
fn use_then_unqualified_names() {
    let got = c("USE other; SELECT * FROM t; INSERT INTO shop.u SELECT * FROM v");
    assert_eq!(got.accesses, {
        let mut v = vec![
            t(Select, "other", "t"),
            t(Insert, "shop", "u"),
            t(Select, "other", "v"),
        ];
        v.sort();
        v
    });
    assert_eq!(
        got.scope_changes,
        vec![ScopeChange::Database("other".into())]
    );
    assert!(!got.shape_only);
    assert_eq!(got.statements, 3);
    assert!(got.signals.stacked);
    let got = c("USE `odd db`");
    assert!(got.accesses.is_empty());
    assert_eq!(
        got.scope_changes,
        vec![ScopeChange::Database("odd db".into())]
    );
}

#[test]
fn show_and_describe() {
    for sql in [
        "SHOW TABLES",
        "SHOW DATABASES",
        "SHOW VARIABLES LIKE 'x%'",
        "SHOW STATUS",
        "SHOW WARNINGS",
        "SHOW CREATE DATABASE shop",
        "SHOW TABLE STATUS",
    ] {
        expect(sql, vec![]);
    }
    expect("SHOW CREATE TABLE t", vec![t(Select, "shop", "t")]);
    expect("SHOW CREATE VIEW db2.v", vec![t(Select, "db2", "v")]);
    expect("SHOW FULL COLUMNS FROM t", vec![t(Select, "shop", "t")]);
    expect("SHOW FIELDS IN t FROM db2", vec![t(Select, "db2", "t")]);
    expect("SHOW INDEX FROM db2.t", vec![t(Select, "db2", "t")]);
    expect("DESCRIBE t", vec![t(Select, "shop", "t")]);
    expect("DESC db2.t", vec![t(Select, "db2", "t")]);
    expect("EXPLAIN t", vec![t(Select, "shop", "t")]);
    expect("DESCRIBE t col", vec![t(Select, "shop", "t")]);
    // SHOW … WHERE can hide a subquery.
    unclassified("SHOW DATABASES WHERE (SELECT 1 FROM secret) = 1");
}

#[test]
fn explain_and_analyze() {
    // EXPLAIN does not run the statement: Select on what it touches.
    expect(
        "EXPLAIN DELETE FROM t WHERE id IN (SELECT id FROM u)",
        vec![t(Select, "shop", "t"), t(Select, "shop", "u")],
    );
    expect(
        "EXPLAIN FORMAT=JSON SELECT myf(a) FROM t",
        vec![t(Select, "shop", "t"), f(Select, "shop", "myf")],
    );
    // EXPLAIN ANALYZE and MariaDB ANALYZE run it.
    expect(
        "EXPLAIN ANALYZE DELETE FROM t WHERE id = 1",
        vec![tw(Delete, "shop", "t", true)],
    );
    expect(
        "ANALYZE FORMAT=JSON UPDATE t SET a = 1",
        vec![tw(Update, "shop", "t", false)],
    );
    expect("ANALYZE SELECT * FROM t", vec![t(Select, "shop", "t")]);
}

#[test]
fn prepare_execute_deallocate() {
    let got = c("PREPARE s FROM 'SELECT * FROM t WHERE id = ?'");
    assert_eq!(got.accesses, vec![t(Select, "shop", "t")]);
    assert_eq!(got.prepares.as_deref(), Some("s"));
    assert!(!got.shape_only);
    // The literal is unescaped.
    let got = c("PREPARE s FROM 'DELETE FROM `a''b` WHERE x = ''y'''");
    assert_eq!(got.accesses, vec![tw(Delete, "shop", "a'b", true)]);
    // With and without backslash escapes, the literal ends elsewhere.
    unclassified(r"PREPARE s FROM 'DELETE FROM `a\'b`'");
    // A backslash that does not move the literal's end: both readings
    // are classified.
    let got = c(r"PREPARE s FROM 'SELECT * FROM t WHERE a = ''\\n'''");
    assert_eq!(got.accesses, vec![t(Select, "shop", "t")]);
    let got = c("PREPARE s FROM \"DROP TABLE x\"");
    assert_eq!(got.accesses, vec![t(Drop, "shop", "x")]);
    unclassified("PREPARE s FROM @q");
    unclassified("PREPARE s FROM 'SELEC nonsense'");
    let got = c("EXECUTE s USING @a, @b");
    assert!(got.accesses.is_empty());
    assert_eq!(got.executes.as_deref(), Some("s"));
    let got = c("DEALLOCATE PREPARE s");
    assert!(got.accesses.is_empty());
    assert_eq!(got.deallocates, Some(Some("s".into())));
    let got = c("DROP PREPARE s");
    assert_eq!(got.deallocates, Some(Some("s".into())));
    unclassified("EXECUTE IMMEDIATE 'DROP TABLE t'");
}

#[test]
fn transactions_and_session_settings() {
    for sql in [
        "BEGIN",
        "BEGIN WORK",
        "START TRANSACTION READ ONLY",
        "COMMIT",
        "ROLLBACK",
        "ROLLBACK TO SAVEPOINT s",
        "SAVEPOINT s",
        "RELEASE SAVEPOINT s",
        "XA START 'x'",
        "XA COMMIT 'x'",
        "SET NAMES utf8mb4",
        "SET NAMES utf8mb4 COLLATE utf8mb4_bin",
        "SET CHARACTER SET utf8",
        "SET autocommit = 0",
        "SET @x = 1",
        "SET @x := 'a', @y = 2",
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SET TRANSACTION READ ONLY",
        "SET sql_mode = 'STRICT_ALL_TABLES'",
        "SET @@session.time_zone = '+00:00'",
    ] {
        expect(sql, vec![]);
    }
    expect(
        "SET @x = (SELECT secret FROM vault)",
        vec![t(Select, "shop", "vault")],
    );
    expect("SET @x = myf(1)", vec![f(Execute, "shop", "myf")]);
    unclassified("BEGIN NOT ATOMIC SELECT 1; END");
    expect("HANDLER t OPEN", vec![t(Select, "shop", "t")]);
}

#[test]
fn load_data() {
    expect(
        "LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t FIELDS TERMINATED BY ','",
        vec![t(CopyIn, "shop", "t")],
    );
    expect(
        "LOAD DATA LOW_PRIORITY INFILE '/x' REPLACE INTO TABLE db2.t (a, b)",
        vec![t(CopyIn, "db2", "t")],
    );
    expect(
        "LOAD XML LOCAL INFILE '/x.xml' INTO TABLE t ROWS IDENTIFIED BY '<row>'",
        vec![t(CopyIn, "shop", "t")],
    );
    unclassified("LOAD DATA INFILE '/x' INTO t");
    unclassified("LOAD DATA INFILE '/x' INTO TABLE t (a) SET b = (SELECT s FROM secret)");
}

#[test]
fn executable_comments_are_sql() {
    let got = c("SELECT 1 /*!50000 ; DROP TABLE t */");
    assert_eq!(got.accesses, vec![t(Drop, "shop", "t")]);
    assert_eq!(got.statements, 2);
    assert!(got.signals.comment);
    assert!(got.signals.stacked);
    let got = c("SELECT * FROM a /*M!100100 JOIN b ON b.id = a.id */");
    assert_eq!(
        got.accesses,
        vec![t(Select, "shop", "a"), t(Select, "shop", "b")]
    );
    assert!(got.signals.comment);
    // mysqldump's header.
    let got = c("/*!40101 SET NAMES utf8mb4 */");
    assert!(got.accesses.is_empty());
    assert!(got.signals.comment);
}

#[test]
fn signals() {
    let s = c("SELECT * FROM t WHERE a = 1 OR 1=1").signals;
    assert!(s.tautology && !s.union && !s.comment && !s.stacked && !s.time_probe);
    assert!(
        c("SELECT * FROM t WHERE a = 'x' OR 'a'='a'")
            .signals
            .tautology
    );
    assert!(
        c("SELECT * FROM t WHERE a = 'x' OR 2 > 1")
            .signals
            .tautology
    );
    assert!(c("SELECT * FROM t WHERE a = 'x' OR 1").signals.tautology);
    assert!(c("SELECT * FROM t WHERE 1=1").signals.tautology);
    assert!(c("DELETE FROM t WHERE a = ? OR TRUE").signals.tautology);
    assert!(!c("SELECT * FROM t WHERE a = ? OR b = ?").signals.tautology);
    assert!(!c("SELECT * FROM t WHERE 1=1 AND a = ?").signals.tautology);
    assert!(c("SELECT a FROM t UNION SELECT b FROM u").signals.union);
    assert!(
        c("SELECT * FROM t WHERE id IN (SELECT 1 UNION ALL SELECT 2)")
            .signals
            .union
    );
    assert!(c("SELECT SLEEP(5)").signals.time_probe);
    assert!(
        c("SELECT * FROM t WHERE id = 1 AND benchmark(1000000, md5('x'))")
            .signals
            .time_probe
    );
    assert!(
        c("SELECT * FROM t WHERE id = 1 OR sleep(3)")
            .signals
            .time_probe
    );
    assert!(c("SELECT * FROM t /* x */ WHERE id = 1").signals.comment);
    assert!(
        c("SELECT * FROM t WHERE id = 1 -- x\n AND b = 2")
            .signals
            .comment
    );
    assert!(
        c("SELECT * FROM t WHERE id = 1 # x\n AND b = 2")
            .signals
            .comment
    );
    // Leading and trailing comments do not count.
    assert!(!c("/* app */ SELECT 1 -- end").signals.comment);
    assert!(c("SELECT 1; SELECT 2").signals.stacked);
    assert!(!c("SELECT 1;").signals.stacked);
}

#[test]
fn failures_are_unclassified() {
    unclassified("SELEC 1");
    unclassified("SELECT * FROM");
    unclassified("FROBNICATE t");
    unclassified("SELECT 'unterminated");
    unclassified("CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (HOST 'h')");
    unclassified("SELECT * FROM a.b.c");
    // A parse failure in one statement leaves the others classified.
    let got = c("SELECT * FROM t; SELEC 1");
    assert!(got.accesses.contains(&t(Select, "shop", "t")));
    assert!(got.accesses.contains(&d(Unclassified, "shop")));
    assert!(!got.shape_only);
    // Backslash readings that cut statements differently.
    unclassified(r#"SELECT 'a\'; DROP TABLE t; -- '"#);
    unclassified(r#"SELECT "a\"; DROP TABLE t; -- ""#);
    // Too deep.
    let deep = format!("SELECT {}1{}", "(".repeat(400), ")".repeat(400));
    unclassified(&deep);
    let deep = format!(
        "SELECT * FROM t WHERE a IN {}",
        "(SELECT a FROM t WHERE a IN ".repeat(300)
    );
    unclassified(&deep);
}

#[test]
fn no_current_database() {
    let none = Scope::default();
    let got = classify("SELECT * FROM t JOIN db2.u", Dialect::MySql, &none);
    assert_eq!(got.accesses, {
        let mut v = vec![t(Select, "db2", "u"), d(Unclassified, "")];
        v.sort();
        v
    });
    let got = classify("SELECT * FROM db2.u", Dialect::MySql, &none);
    assert_eq!(got.accesses, vec![t(Select, "db2", "u")]);
    let got = classify("USE db3; SELECT * FROM t", Dialect::MySql, &none);
    assert_eq!(got.accesses, vec![t(Select, "db3", "t")]);
    let got = classify("SELEC", Dialect::MySql, &none);
    assert_eq!(got.accesses, vec![d(Unclassified, "")]);
}

#[test]
fn empty_message() {
    let got = c("");
    assert_eq!(got.statements, 0);
    assert!(got.accesses.is_empty());
    let got = c(" ; -- nothing");
    assert_eq!(got.statements, 0);
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..1_000_000).prop_map(|n| n.to_string()),
        (0u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        "[a-zA-Z0-9 ;%_()*/#=-]{0,12}".prop_map(|s| format!("'{s}'")),
        "[a-zA-Z0-9 ;'_]{0,8}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
        Just("NULL".to_owned()),
        Just("?".to_owned()),
    ]
}

fn comment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(" ".to_owned()),
        Just(" /* c */ ".to_owned()),
        Just(" -- c\n".to_owned()),
        Just(" # c\n".to_owned()),
        "[a-z ;]{0,6}".prop_map(|s| format!(" /* {s} */ ")),
    ]
}

const TEMPLATES: &[&str] = &[
    "SELECT a, b FROM t JOIN u ON u.id = t.id{C}WHERE a = {L} AND b > {L} OR c = {L} ORDER BY a LIMIT {L}",
    "SELECT * FROM t WHERE a = {L} OR {L} = {L}",
    "SELECT * FROM t WHERE a = {L} OR {L}",
    "SELECT myf({L}), COUNT(*) FROM t WHERE x IN ({L}, {L}){C}",
    "INSERT INTO t (a, b) VALUES ({L}, {L}) ON DUPLICATE KEY UPDATE b = {L}",
    "UPDATE t SET a = {L} WHERE id = {L}",
    "UPDATE t SET a = {L} WHERE {L} = {L}",
    "DELETE FROM t WHERE {L}{C}",
    "DELETE FROM t WHERE id = {L} OR {L} = {L} LIMIT {L}",
    "SELECT {L}{C}UNION SELECT b FROM u WHERE c = {L}",
    "SELECT SLEEP({L}) FROM t",
    "SET @x = {L}, sql_log_bin = {L}",
    "DO myf({L})",
    "CALL p({L}, {L})",
    "SELECT * FROM t INTO OUTFILE {L}",
    "LOAD DATA LOCAL INFILE {L} INTO TABLE t",
    "KILL {L}",
    "EXPLAIN SELECT * FROM t WHERE a = {L}",
    "SHOW VARIABLES LIKE {L}",
    "SELECT {L}; DELETE FROM t WHERE a = {L}",
    "SELECT * FROM t LIMIT {L}, {L} FOR UPDATE",
    "PREPARE s FROM {L}",
];

fn fill(template: &str, lits: &[String], comments: &[String]) -> String {
    let mut out = String::new();
    let (mut li, mut ci) = (0, 0);
    let mut rest = template;
    while let Some(pos) = rest.find('{') {
        out.push_str(&rest[..pos]);
        let tag = &rest[pos..pos + 3];
        if tag == "{L}" {
            out.push_str(&lits[li % lits.len()]);
            li += 1;
        } else {
            out.push_str(&comments[ci % comments.len()]);
            ci += 1;
        }
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    out
}

fn masked(mut c: Classified) -> Classified {
    c.signals.comment = false;
    c
}

proptest! {
    /// Two statements that differ only in literals and comments classify
    /// alike when both say they depend on shape only.
    #[test]
    fn shape_only_means_literals_do_not_matter(
        template in proptest::sample::select(TEMPLATES),
        a in proptest::collection::vec(literal(), 4),
        b in proptest::collection::vec(literal(), 4),
        ca in proptest::collection::vec(comment(), 2),
        cb in proptest::collection::vec(comment(), 2),
    ) {
        let x = c(&fill(template, &a, &ca));
        let y = c(&fill(template, &b, &cb));
        if x.shape_only && y.shape_only {
            prop_assert_eq!(masked(x), masked(y));
        }
    }

    /// No input panics.
    #[test]
    fn never_panics(sql in "[a-zA-Z0-9 ;'\"`()*/#=.,@!?\\\\-]{0,80}") {
        let _ = c(&sql);
    }

    #[test]
    fn never_panics_on_keywords(
        words in proptest::collection::vec(proptest::sample::select(&[
            "SELECT", "FROM", "t", "WHERE", "(", ")", ";", "INTO", "OUTFILE", "'x'", "SET",
            "@", "=", ",", "DROP", "TABLE", "PREPARE", "s", "EXECUTE", "USE", "db", ".",
            "LOCK", "IN", "SHARE", "MODE", "CREATE", "DEFINER", "ON", "/*!", "*/", "-",
            "EXPLAIN", "ANALYZE", "SHOW", "COLUMNS", "RENAME", "TO", "LOAD", "DATA",
        ][..]), 0..20),
    ) {
        let _ = c(&words.join(" "));
    }
}

#[test]
fn more_delete_and_ddl_shapes() {
    expect(
        "DELETE FROM t AS x WHERE x.id = 1",
        vec![tw(Delete, "shop", "t", true)],
    );
    expect(
        "DELETE a, b FROM a JOIN b ON a.id = b.id",
        vec![
            tw(Delete, "shop", "a", false),
            tw(Delete, "shop", "b", false),
        ],
    );
    unclassified("CREATE TABLE m (a INT) ENGINE=MERGE UNION=(t1, t2)");
    unclassified("ALTER TABLE m UNION=(t1, secret)");
    unclassified("CREATE TABLE f (a INT) ENGINE=FEDERATED CONNECTION='mysql://u@h/db/t'");
    // WITH before UPDATE/DELETE is not followed.
    unclassified("WITH x AS (SELECT id FROM s) DELETE FROM t WHERE id IN (SELECT id FROM x)");
}

#[test]
fn long_operator_chains_are_unclassified_not_a_crash() {
    for sql in [
        format!("SELECT * FROM t WHERE {}1", "a=1 OR ".repeat(200_000)),
        format!("SELECT 1{}", " UNION SELECT 1".repeat(20_000)),
        format!("SELECT {}1", "NOT ".repeat(50_000)),
        format!("SELECT {}1", "- ".repeat(50_000)),
        format!("SELECT {}1", "1+".repeat(200_000)),
    ] {
        unclassified(&sql);
    }
    // Long flat lists are fine.
    let values = vec!["(?, ?)"; 20_000].join(", ");
    expect(
        &format!("INSERT INTO t (a, b) VALUES {values}"),
        vec![t(Insert, "shop", "t")],
    );
}

#[test]
fn mariadb_sequences() {
    expect(
        "SELECT NEXTVAL(s), lastval(db2.q)",
        vec![
            t(Select, "shop", "s"),
            tw(Update, "shop", "s", false),
            t(Select, "db2", "q"),
        ],
    );
    expect(
        "SELECT SETVAL(s, 10)",
        vec![t(Select, "shop", "s"), tw(Update, "shop", "s", false)],
    );
    unclassified("SELECT NEXTVAL('s')");
    unclassified("SELECT NEXT VALUE FOR s");
    expect("CREATE SEQUENCE s", vec![t(Create, "shop", "s")]);
    expect("DROP SEQUENCE s", vec![t(Drop, "shop", "s")]);
}

#[test]
fn dml_modifiers_and_comma_joins() {
    expect(
        "UPDATE t1, t2 SET t1.a = t2.b WHERE t1.id = t2.id",
        vec![tw(Update, "shop", "t1", true), t(Select, "shop", "t2")],
    );
    expect(
        "UPDATE LOW_PRIORITY IGNORE t1 AS a, db.t2 AS b SET b.x = 1",
        vec![t(Select, "shop", "t1"), tw(Update, "db", "t2", false)],
    );
    expect(
        "UPDATE t SET a = (SELECT 1 FROM s, u)",
        vec![
            tw(Update, "shop", "t", false),
            t(Select, "shop", "s"),
            t(Select, "shop", "u"),
        ],
    );
    expect(
        "DELETE QUICK IGNORE FROM t WHERE a = 1",
        vec![tw(Delete, "shop", "t", true)],
    );
    expect(
        "DELETE LOW_PRIORITY t1.*, t2 FROM t1 JOIN t2 ON t1.id = t2.id JOIN t3",
        vec![
            tw(Delete, "shop", "t1", false),
            tw(Delete, "shop", "t2", false),
            t(Select, "shop", "t3"),
        ],
    );
    expect(
        "DELETE t1 FROM t1, t2 WHERE t1.id = t2.id",
        vec![tw(Delete, "shop", "t1", true), t(Select, "shop", "t2")],
    );
}
