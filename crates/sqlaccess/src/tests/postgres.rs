use crate::{
    Access, Classified, Dialect, Object, ObjectKind, Scope, ScopeChange, SqlAction, classify,
};
use SqlAction::*;

fn scope() -> Scope {
    Scope {
        database: Some("app".into()),
        search_path: vec!["public".into()],
        overloaded_functions: Vec::new(),
        attribute_functions: Vec::new(),
    }
}

fn two_schemas() -> Scope {
    Scope {
        database: Some("app".into()),
        search_path: vec!["s1".into(), "s2".into()],
        overloaded_functions: Vec::new(),
        attribute_functions: Vec::new(),
    }
}

fn c(sql: &str) -> Classified {
    classify(sql, Dialect::Postgres, &scope())
}

fn obj(kind: ObjectKind, schema: &str, name: &str) -> Object {
    Object {
        kind,
        database: "app".into(),
        schema: schema.into(),
        name: name.into(),
    }
}

/// An access on a table in `public` (`schema.name` if `name` has a dot).
fn t(action: SqlAction, name: &str) -> Access {
    let (schema, name) = name.split_once('.').unwrap_or(("public", name));
    Access {
        action,
        object: obj(ObjectKind::Table, schema, name),
        where_clause: None,
    }
}

/// An UPDATE/DELETE access with its where flag.
fn w(action: SqlAction, name: &str, present: bool) -> Access {
    Access {
        where_clause: Some(present),
        ..t(action, name)
    }
}

/// An access on a function (`schema.name`, default `public`).
fn f(action: SqlAction, name: &str) -> Access {
    let (schema, name) = name.split_once('.').unwrap_or(("public", name));
    Access {
        action,
        object: obj(ObjectKind::Function, schema, name),
        where_clause: None,
    }
}

fn db(action: SqlAction) -> Access {
    Access {
        action,
        object: Object::database("app"),
        where_clause: None,
    }
}

#[track_caller]
fn check_in(scope: &Scope, sql: &str, mut expected: Vec<Access>) -> Classified {
    let got = classify(sql, Dialect::Postgres, scope);
    expected.sort();
    expected.dedup();
    assert_eq!(got.accesses, expected, "{sql}");
    got
}

#[track_caller]
fn check(sql: &str, expected: Vec<Access>) -> Classified {
    check_in(&scope(), sql, expected)
}

#[test]
fn select_join_subquery_cte() {
    check(
        "WITH recent AS (SELECT * FROM orders WHERE at > now() - interval '1 day') \
         SELECT u.name FROM users u JOIN recent r ON r.user_id = u.id \
         LEFT JOIN LATERAL (SELECT 1 FROM items i WHERE i.order_id = r.id) x ON true \
         WHERE u.id IN (SELECT user_id FROM admins) AND EXISTS (SELECT 1 FROM audit.log)",
        vec![
            t(Select, "orders"),
            t(Select, "users"),
            t(Select, "items"),
            t(Select, "admins"),
            t(Select, "audit.log"),
            f(Execute, "pg_catalog.now"),
        ],
    );
}

#[test]
fn table_values_and_set_operations() {
    let out = check(
        "TABLE a UNION SELECT x FROM b INTERSECT VALUES ((SELECT 1 FROM c))",
        vec![t(Select, "a"), t(Select, "b"), t(Select, "c")],
    );
    assert!(out.signals.union);
    assert!(out.shape_only);
    assert!(!c("SELECT 1").signals.union);
}

#[test]
fn cte_scoping() {
    // A CTE name shadows the table only inside its WITH.
    check(
        "SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) x, t",
        vec![t(Select, "t")],
    );
    // Recursive CTEs see themselves; non-recursive ones do not.
    check(
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
        vec![],
    );
    check(
        "WITH r AS (SELECT * FROM r) SELECT * FROM r",
        vec![t(Select, "r")],
    );
    // Nested WITH: the inner name is visible only inside.
    check(
        "WITH a AS (WITH b AS (SELECT * FROM base) SELECT * FROM b) SELECT * FROM a, b",
        vec![t(Select, "base"), t(Select, "b")],
    );
    // A qualified name is never a CTE.
    check(
        "WITH t AS (SELECT 1) SELECT * FROM public.t, t",
        vec![t(Select, "t")],
    );
}

#[test]
fn data_modifying_cte() {
    check(
        "WITH d AS (DELETE FROM a WHERE id = $1 RETURNING *) INSERT INTO b SELECT * FROM d",
        vec![w(Delete, "a", true), t(Select, "a"), t(Insert, "b")],
    );
}

#[test]
fn insert_select_returning() {
    check(
        "INSERT INTO t (a, b) SELECT x, lower(y) FROM s WHERE z > (SELECT max(z) FROM u) RETURNING id",
        vec![
            t(Insert, "t"),
            t(Select, "t"),
            t(Select, "s"),
            t(Select, "u"),
            f(Execute, "pg_catalog.lower"),
            f(Execute, "pg_catalog.max"),
        ],
    );
    check("INSERT INTO t VALUES ($1, $2)", vec![t(Insert, "t")]);
    check(
        "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET n = t.n + 1",
        vec![t(Insert, "t"), w(Update, "t", false)],
    );
    check(
        "INSERT INTO t VALUES (1) ON CONFLICT (id) DO NOTHING",
        vec![t(Insert, "t")],
    );
}

#[test]
fn update_and_delete() {
    check(
        "UPDATE t SET a = s.b FROM s WHERE t.id = s.id",
        vec![w(Update, "t", true), t(Select, "t"), t(Select, "s")],
    );
    check("UPDATE t SET a = 1", vec![w(Update, "t", false)]);
    check(
        "UPDATE t SET a = a + 1",
        vec![w(Update, "t", false), t(Select, "t")],
    );
    check("DELETE FROM t", vec![w(Delete, "t", false)]);
    for tautology in ["1=1", "true", "'a'='a'", "NOT false", "id = 5 OR 1=1", "1"] {
        check(
            &format!("DELETE FROM t WHERE {tautology}"),
            vec![w(Delete, "t", false), t(Select, "t")],
        );
    }
    check(
        "DELETE FROM t USING s WHERE t.id = s.id RETURNING t.id",
        vec![w(Delete, "t", true), t(Select, "t"), t(Select, "s")],
    );
    check(
        "DELETE FROM t WHERE CURRENT OF c",
        vec![w(Delete, "t", true), t(Select, "t")],
    );
}

#[test]
fn merge() {
    check(
        "MERGE INTO t USING s ON t.id = s.id \
         WHEN MATCHED AND s.gone THEN DELETE \
         WHEN MATCHED THEN UPDATE SET v = s.v \
         WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)",
        vec![
            t(Select, "t"),
            t(Select, "s"),
            w(Delete, "t", true),
            w(Update, "t", true),
            t(Insert, "t"),
        ],
    );
}

#[test]
fn select_into_and_create_table_as() {
    check(
        "SELECT * INTO newt FROM old",
        vec![t(Create, "newt"), t(Select, "old")],
    );
    check(
        "CREATE TABLE s.newt AS SELECT * FROM old",
        vec![t(Create, "s.newt"), t(Select, "old")],
    );
    check(
        "CREATE MATERIALIZED VIEW mv AS SELECT * FROM old",
        vec![t(Create, "mv"), t(Select, "old")],
    );
}

#[test]
fn for_update_locks() {
    check(
        "SELECT * FROM a JOIN b ON a.id = b.id FOR UPDATE",
        vec![
            t(Select, "a"),
            t(Select, "b"),
            t(Update, "a"),
            t(Update, "b"),
        ],
    );
}

#[test]
fn views_are_objects() {
    check(
        "CREATE VIEW v AS SELECT * FROM t JOIN u USING (id)",
        vec![t(Create, "v"), t(Select, "t"), t(Select, "u")],
    );
    check("SELECT * FROM v", vec![t(Select, "v")]);
    check(
        "CREATE OR REPLACE VIEW v AS SELECT 1",
        vec![t(Create, "v"), t(Alter, "v")],
    );
}

#[test]
fn functions_anywhere() {
    check(
        "SELECT count(*) OVER (PARTITION BY f(x)) FROM t WHERE my_check(t.a) AND s.g(1) > 0",
        vec![
            t(Select, "t"),
            f(Execute, "pg_catalog.count"),
            f(Execute, "f"),
            f(Execute, "my_check"),
            f(Execute, "s.g"),
        ],
    );
    check(
        "SELECT * FROM generate_series(1, 3) g, my_srf() m",
        vec![
            f(Execute, "pg_catalog.generate_series"),
            f(Execute, "my_srf"),
        ],
    );
    check("CALL proc(1)", vec![f(Execute, "proc")]);
    // Operators are not reported.
    check("SELECT 1 + 2 * 3", vec![]);
    // A qualified built-in name is that schema.
    check(
        "SELECT pg_catalog.lower('A')",
        vec![f(Execute, "pg_catalog.lower")],
    );
}

#[test]
fn builtin_vs_user_functions_with_two_schemas() {
    check_in(
        &two_schemas(),
        "SELECT lower(x), mine(x) FROM t",
        vec![
            f(Execute, "pg_catalog.lower"),
            f(Execute, "s1.mine"),
            f(Execute, "s2.mine"),
            t(Select, "s1.t"),
            t(Select, "s2.t"),
        ],
    );
}

#[test]
fn search_path_resolution() {
    check_in(
        &two_schemas(),
        "SELECT * FROM t JOIN x.u ON true",
        vec![t(Select, "s1.t"), t(Select, "s2.t"), t(Select, "x.u")],
    );
    // pg_catalog relations resolve there only.
    check_in(
        &two_schemas(),
        "SELECT * FROM pg_class, pg_authid",
        vec![
            t(Select, "pg_catalog.pg_class"),
            t(Select, "pg_catalog.pg_authid"),
        ],
    );
    // A path that names pg_catalog later lets earlier schemas shadow it.
    let late = Scope {
        database: Some("app".into()),
        search_path: vec!["s1".into(), "pg_catalog".into(), "s2".into()],
        overloaded_functions: Vec::new(),
        attribute_functions: Vec::new(),
    };
    check_in(
        &late,
        "SELECT lower(x) FROM pg_class",
        vec![
            f(Execute, "s1.lower"),
            f(Execute, "pg_catalog.lower"),
            t(Select, "s1.pg_class"),
            t(Select, "pg_catalog.pg_class"),
        ],
    );
    // A built-in's name that another schema also has a function of: the
    // server picks the best match among all of them (public.lower(int)
    // for lower(1)), so the call stands for every schema on the path too.
    let overloaded = Scope {
        database: Some("app".into()),
        search_path: vec!["s1".into(), "s2".into()],
        overloaded_functions: vec!["lower".into()],
        attribute_functions: Vec::new(),
    };
    check_in(
        &overloaded,
        "SELECT lower(1), upper('a')",
        vec![
            f(Execute, "pg_catalog.lower"),
            f(Execute, "s1.lower"),
            f(Execute, "s2.lower"),
            f(Execute, "pg_catalog.upper"),
        ],
    );
    check_in(
        &overloaded,
        "SET search_path = s3; SELECT lower(1)",
        vec![
            f(Execute, "pg_catalog.lower"),
            f(Execute, "s1.lower"),
            f(Execute, "s2.lower"),
            f(Execute, "s3.lower"),
        ],
    );
    // A function of one row argument is called by `t.f` and `(t).f`.
    let computed = Scope {
        database: Some("app".into()),
        search_path: vec!["public".into()],
        overloaded_functions: Vec::new(),
        attribute_functions: vec!["leak".into()],
    };
    check_in(
        &computed,
        "SELECT o.leak, (o).leak, o.id FROM orders o",
        vec![t(Select, "orders"), f(Execute, "leak")],
    );
    // Unknown path: unqualified names are unclassified.
    let unknown = Scope {
        database: Some("app".into()),
        search_path: vec![],
        overloaded_functions: Vec::new(),
        attribute_functions: Vec::new(),
    };
    check_in(&unknown, "SELECT * FROM t", vec![db(Unclassified)]);
    check_in(&unknown, "SELECT * FROM s.t", vec![t(Select, "s.t")]);
    // No database: unclassified.
    let none = Scope::default();
    let out = classify("SELECT * FROM s.t", Dialect::Postgres, &none);
    assert!(out.accesses.iter().all(|a| a.action == Unclassified));
    // Another database, as written.
    let out = c("SELECT * FROM other.s.t");
    assert_eq!(out.accesses.len(), 1);
    assert_eq!(out.accesses[0].object.database, "other");
    // Quoted identifiers keep their case; unquoted ones fold.
    check(
        "SELECT * FROM \"MyT\", MyU",
        vec![t(Select, "MyT"), t(Select, "myu")],
    );
}

#[test]
fn sequences_named_by_literals() {
    let out = check(
        "SELECT nextval('s.seq'), currval('\"Other\"')",
        vec![
            f(Execute, "pg_catalog.nextval"),
            f(Execute, "pg_catalog.currval"),
            t(Select, "s.seq"),
            t(Update, "s.seq"),
            t(Select, "Other"),
        ],
    );
    assert!(!out.shape_only);
    check(
        "INSERT INTO t VALUES (nextval('seq'::regclass))",
        vec![
            t(Insert, "t"),
            f(Execute, "pg_catalog.nextval"),
            t(Select, "seq"),
            t(Update, "seq"),
        ],
    );
    check(
        "SELECT nextval($1)",
        vec![f(Execute, "pg_catalog.nextval"), db(Unclassified)],
    );
}

#[test]
fn reg_casts() {
    let out = check(
        "SELECT pg_relation_size('big'::regclass)",
        vec![f(Execute, "pg_catalog.pg_relation_size"), t(Select, "big")],
    );
    assert!(!out.shape_only);
    check("SELECT $1::regclass", vec![db(Unclassified)]);
    check("SELECT 'x'::regrole", vec![db(Unclassified)]);
    check(
        "SELECT c.oid::regclass FROM pg_class c",
        vec![t(Select, "pg_catalog.pg_class")],
    );
    check(
        "SELECT to_regclass('s.t')",
        vec![f(Execute, "pg_catalog.to_regclass"), t(Select, "s.t")],
    );
    check(
        "SELECT query_to_xml('select * from secret', true, true, '')",
        vec![f(Execute, "pg_catalog.query_to_xml"), db(Unclassified)],
    );
}

#[test]
fn copy_in_and_out() {
    check("COPY t FROM STDIN", vec![t(CopyIn, "t")]);
    check("COPY t (a, b) TO STDOUT", vec![t(CopyOut, "t")]);
    check(
        "COPY (SELECT * FROM a JOIN b USING (id)) TO STDOUT",
        vec![
            t(Select, "a"),
            t(Select, "b"),
            t(CopyOut, "a"),
            t(CopyOut, "b"),
        ],
    );
    check("COPY t TO '/tmp/x'", vec![t(CopyOut, "t"), db(Admin)]);
    check(
        "COPY t FROM PROGRAM 'cat /etc/passwd'",
        vec![t(CopyIn, "t"), db(Admin)],
    );
}

#[test]
fn explain_vs_explain_analyze() {
    check("EXPLAIN DELETE FROM t WHERE id = 1", vec![t(Select, "t")]);
    check(
        "EXPLAIN ANALYZE DELETE FROM t WHERE id = 1",
        vec![w(Delete, "t", true), t(Select, "t")],
    );
    check(
        "EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1",
        vec![w(Update, "t", false)],
    );
    check(
        "EXPLAIN (ANALYZE false) UPDATE t SET a = 1",
        vec![t(Select, "t")],
    );
}

#[test]
fn prepare_execute_deallocate() {
    let out = check(
        "PREPARE q(int) AS DELETE FROM t WHERE id = $1",
        vec![w(Delete, "t", true), t(Select, "t")],
    );
    assert_eq!(out.prepares.as_deref(), Some("q"));
    let out = check("EXECUTE q(1)", vec![]);
    assert_eq!(out.executes.as_deref(), Some("q"));
    assert_eq!(c("DEALLOCATE q").deallocates, Some(Some("q".into())));
    assert_eq!(c("DEALLOCATE ALL").deallocates, Some(None));
}

#[test]
fn multi_statement() {
    let out = check(
        "SELECT * FROM a; DELETE FROM b; DROP TABLE c",
        vec![t(Select, "a"), w(Delete, "b", false), t(Drop, "c")],
    );
    assert_eq!(out.statements, 3);
    assert!(out.signals.stacked);
    assert!(!c("SELECT 1;").signals.stacked);
    assert_eq!(c("SELECT 1;").statements, 1);
}

#[test]
fn ddl() {
    check("DROP TABLE a, s.b", vec![t(Drop, "a"), t(Drop, "s.b")]);
    check("DROP VIEW IF EXISTS v", vec![t(Drop, "v")]);
    check(
        "DROP FUNCTION f(int), s.g",
        vec![f(Drop, "f"), f(Drop, "s.g")],
    );
    check("DROP SCHEMA s CASCADE", vec![db(Drop)]);
    check(
        "CREATE TABLE t (id serial PRIMARY KEY, at timestamptz DEFAULT now(), \
         o int REFERENCES other(id), CHECK (valid(id)))",
        vec![
            t(Create, "t"),
            f(Execute, "pg_catalog.now"),
            t(Alter, "other"),
            f(Execute, "valid"),
        ],
    );
    check(
        "CREATE INDEX i ON s.t (lower(name))",
        vec![
            t(Create, "s.i"),
            t(Alter, "s.t"),
            f(Execute, "pg_catalog.lower"),
        ],
    );
    check(
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION trg()",
        vec![t(Create, "tr"), t(Alter, "t"), f(Execute, "trg")],
    );
    check("CREATE SEQUENCE s.q", vec![t(Create, "s.q")]);
    check("CREATE SCHEMA s", vec![db(Create)]);
    check("CREATE EXTENSION pgcrypto", vec![db(Create)]);
    let out = check(
        "CREATE FUNCTION s.f() RETURNS int LANGUAGE sql AS 'select 1'",
        vec![f(Create, "s.f")],
    );
    assert!(!out.shape_only);
    check(
        "ALTER TABLE t ADD COLUMN c int DEFAULT g()",
        vec![t(Alter, "t"), f(Execute, "g")],
    );
    check(
        "ALTER TABLE t RENAME TO u",
        vec![t(Alter, "t"), t(Create, "u")],
    );
    check(
        "ALTER FUNCTION s.f() OWNER TO bob",
        vec![f(Alter, "s.f"), db(Grant)],
    );
    check("COMMENT ON TABLE t IS 'x'", vec![t(Alter, "t")]);
    check(
        "TRUNCATE a, s.b",
        vec![t(Truncate, "a"), t(Truncate, "s.b")],
    );
}

#[test]
fn grants_and_roles() {
    check(
        "GRANT SELECT ON t, s.u TO bob",
        vec![db(Grant), t(Grant, "t"), t(Grant, "s.u")],
    );
    check(
        "REVOKE ALL ON ALL TABLES IN SCHEMA s FROM bob",
        vec![db(Grant)],
    );
    check("CREATE ROLE r LOGIN", vec![db(Grant)]);
    check("ALTER USER r PASSWORD 'x'", vec![db(Grant)]);
    check("GRANT admin TO bob", vec![db(Grant)]);
    check(
        "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob",
        vec![db(Grant)],
    );
    check("DROP OWNED BY bob", vec![db(Grant)]);
}

#[test]
fn admin() {
    check("VACUUM", vec![db(Admin)]);
    check(
        "VACUUM ANALYZE t, s.u",
        vec![t(Admin, "t"), t(Admin, "s.u")],
    );
    check("CHECKPOINT", vec![db(Admin)]);
    check(
        "LOCK TABLE t IN EXCLUSIVE MODE",
        vec![db(Admin), t(Admin, "t")],
    );
    check("LISTEN ch", vec![db(Admin)]);
    check("NOTIFY ch", vec![db(Admin)]);
    check("SET ROLE admin", vec![db(Admin)]);
    check("SET SESSION AUTHORIZATION bob", vec![db(Admin)]);
    check("RESET ROLE", vec![db(Admin)]);
    check("SET session_replication_role = replica", vec![db(Admin)]);
    check("ALTER SYSTEM SET work_mem = '1GB'", vec![db(Admin)]);
    check("CREATE PUBLICATION p FOR ALL TABLES", vec![db(Admin)]);
    check("DO $$ BEGIN PERFORM 1; END $$", vec![db(Execute)]);
}

#[test]
fn settings_and_transactions() {
    for sql in [
        "SET work_mem = '64MB'",
        "SHOW work_mem",
        "RESET work_mem",
        "BEGIN",
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT s",
        "RELEASE SAVEPOINT s",
        "PREPARE TRANSACTION 'x'",
        "COMMIT PREPARED 'x'",
        "DISCARD PLANS",
        "FETCH 10 FROM c",
        "MOVE NEXT IN c",
        "CLOSE c",
    ] {
        check(sql, vec![]);
    }
    check("DECLARE c CURSOR FOR SELECT * FROM t", vec![t(Select, "t")]);
}

#[test]
fn search_path_changes() {
    let out = check("SET search_path TO a, \"$user\", public", vec![]);
    assert_eq!(
        out.scope_changes,
        vec![ScopeChange::SearchPath(vec![
            "a".into(),
            "$user".into(),
            "public".into()
        ])]
    );
    assert!(!out.shape_only);
    let out = c("SET LOCAL search_path = a");
    assert_eq!(
        out.scope_changes,
        vec![ScopeChange::SearchPath(vec!["a".into()])]
    );
    assert_eq!(
        c("RESET search_path").scope_changes,
        vec![ScopeChange::SearchPathDefault]
    );
    assert_eq!(
        c("SET search_path TO DEFAULT").scope_changes,
        vec![ScopeChange::SearchPathDefault]
    );
    let out = check(
        "SELECT set_config('search_path', 'evil', false)",
        vec![f(Execute, "pg_catalog.set_config")],
    );
    assert_eq!(out.scope_changes, vec![ScopeChange::SearchPathUnknown]);
    assert!(!out.shape_only);
}

#[test]
fn signals() {
    let s = c("SELECT * FROM t WHERE id = $1 OR 1=1").signals;
    assert!(s.tautology);
    assert!(
        c("SELECT * FROM t WHERE a = 'x' OR 'a'='a'")
            .signals
            .tautology
    );
    assert!(c("SELECT * FROM t WHERE a = 1 OR true").signals.tautology);
    assert!(c("SELECT * FROM t WHERE 2 > 1").signals.tautology);
    assert!(
        c("SELECT * FROM t JOIN u ON t.id = u.id OR 1 = 2")
            .signals
            .tautology
    );
    assert!(!c("SELECT * FROM t WHERE a = 1 OR b = 2").signals.tautology);
    assert!(c("SELECT pg_sleep(5)").signals.time_probe);
    assert!(
        c("SELECT 1 FROM t WHERE pg_catalog.pg_sleep_for('1s') IS NULL")
            .signals
            .time_probe
    );
    assert!(!c("SELECT 1").signals.time_probe);
    assert!(c("SELECT 1 /* x */ FROM t").signals.comment);
    assert!(c("SELECT * FROM t -- x\nWHERE a = 1").signals.comment);
    assert!(!c("/* lead */ SELECT 1 -- trailing").signals.comment);
    assert!(!c("SELECT '--not a comment'").signals.comment);
}

#[test]
fn parse_errors_and_unknown() {
    let out = c("SELEC * FROM t");
    assert_eq!(out.accesses, vec![db(Unclassified)]);
    assert!(!out.shape_only);
    assert_eq!(c("SELECT 1\0").accesses, vec![db(Unclassified)]);
    // JSON constructors are not followed.
    check("SELECT JSON_OBJECT('a': 1)", vec![db(Unclassified)]);
    // Settings that change how later statements lex.
    check(
        "SET standard_conforming_strings = off",
        vec![db(Unclassified)],
    );
    // Deep nesting: pg_query's protobuf decoding gives up (at 100 message
    // levels) before the walk's own bound. Decoding that deep needs more
    // than a test thread's stack in a debug build (about 1 MiB in release).
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            for n in [20, 45, 100, 300, 3000] {
                let deep = format!("SELECT {}1{}", "(SELECT ".repeat(n), ")".repeat(n));
                let long = format!("SELECT {} FROM t", vec!["f(x)"; n].join(" + "));
                for sql in [deep, long] {
                    let out = c(&sql);
                    if n >= 100 {
                        assert!(out.accesses.contains(&db(Unclassified)), "{n}: {out:?}");
                    }
                }
            }
        })
        .expect("thread")
        .join()
        .expect("no panic");
    // Empty message.
    let out = c("");
    assert!(out.accesses.is_empty());
    assert_eq!(out.statements, 0);
}

mod shape {
    use super::*;
    use proptest::prelude::*;

    fn literal() -> impl Strategy<Value = String> {
        prop_oneof![
            (0i64..1000).prop_map(|n| n.to_string()),
            "[a-z ]{0,6}".prop_map(|s| format!("'{s}'")),
            Just("1.5".to_owned()),
        ]
    }

    fn statement() -> impl Strategy<Value = (String, String)> {
        let templates = prop_oneof![
            Just("SELECT * FROM t WHERE a = {} AND b > {}"),
            Just("SELECT * FROM t WHERE a = {} OR {} = 1"),
            Just("DELETE FROM t WHERE {} = {}"),
            Just("UPDATE t SET a = {} WHERE b = {}"),
            Just("UPDATE t SET a = {} WHERE {}"),
            Just("INSERT INTO t VALUES ({}, {}) RETURNING id"),
            Just("SELECT lower({}) FROM t LIMIT {}"),
            Just("SELECT x FROM a JOIN b ON a.id = b.id WHERE a.v IN ({}, {})"),
            Just("SELECT pg_sleep({}) -- c\n, {}"),
            Just("SELECT {} UNION SELECT {}"),
            Just("EXPLAIN (ANALYZE {}) DELETE FROM t WHERE a = {}"),
            Just("SELECT nextval({}), {}"),
            Just("SELECT {}::regclass, {}"),
            Just("SET search_path TO {}, {}"),
        ];
        (templates, literal(), literal(), literal(), literal()).prop_map(|(t, a, b, c, d)| {
            (
                t.replacen("{}", &a, 1).replacen("{}", &b, 1),
                t.replacen("{}", &c, 1).replacen("{}", &d, 1),
            )
        })
    }

    proptest! {
        #[test]
        fn same_shape_same_classification((x, y) in statement()) {
            let scope = two_schemas();
            let a = classify(&x, Dialect::Postgres, &scope);
            let b = classify(&y, Dialect::Postgres, &scope);
            if a.shape_only && b.shape_only {
                prop_assert_eq!(&a, &b, "{} / {}", x, y);
            }
        }
    }
}

#[test]
fn builtin_lists_are_sorted() {
    for list in [crate::pg_builtins::FUNCTIONS, crate::pg_builtins::RELATIONS] {
        assert!(list.windows(2).all(|w| w[0] < w[1]));
    }
}

#[test]
fn search_path_set_earlier_in_the_message() {
    // The SELECT runs under the new path: both paths are reported.
    check(
        "SET search_path TO evil; SELECT * FROM t",
        vec![t(Select, "t"), t(Select, "evil.t")],
    );
    check(
        "SET search_path TO evil, pg_catalog; SELECT lower(x) FROM pg_class",
        vec![
            f(Execute, "pg_catalog.lower"),
            f(Execute, "evil.lower"),
            t(Select, "pg_catalog.pg_class"),
            t(Select, "evil.pg_class"),
        ],
    );
    // An unknown path leaves later unqualified names unclassified.
    for first in [
        "RESET search_path",
        "SET search_path TO \"$user\"",
        "SELECT set_config('search_path', 'x', false)",
    ] {
        let out = c(&format!("{first}; SELECT * FROM t, s.u"));
        assert!(out.accesses.contains(&db(Unclassified)), "{first}");
        assert!(out.accesses.contains(&t(Select, "s.u")), "{first}");
        assert!(!out.accesses.contains(&t(Select, "t")), "{first}");
    }
    // Names in the statement that sets it resolve as before.
    check(
        "SELECT set_config('search_path', 'x', false), lower(a) FROM t",
        vec![
            f(Execute, "pg_catalog.set_config"),
            f(Execute, "pg_catalog.lower"),
            t(Select, "t"),
        ],
    );
}

mod robust {
    use super::*;
    use proptest::prelude::*;

    const WORDS: &[&str] = &[
        "SELECT",
        "*",
        "FROM",
        "t",
        "s.u",
        "WHERE",
        "a",
        "=",
        "1",
        "OR",
        "(",
        ")",
        ",",
        ";",
        "WITH",
        "x",
        "AS",
        "JOIN",
        "ON",
        "DELETE",
        "UPDATE",
        "SET",
        "INSERT",
        "INTO",
        "VALUES",
        "RETURNING",
        "f(",
        "'lit'",
        "$1",
        "::regclass",
        "nextval('q')",
        "UNION",
        "EXPLAIN",
        "ANALYZE",
        "COPY",
        "TO",
        "STDOUT",
        "DROP",
        "TABLE",
        "CREATE",
        "VIEW",
        "search_path",
        "--",
        "/*",
        "*/",
        "LATERAL",
        "RECURSIVE",
        "FOR",
        "UPDATE",
        "MERGE",
        "USING",
        "WHEN",
        "MATCHED",
        "THEN",
        "DO",
        "NOTHING",
        "PREPARE",
        "EXECUTE",
        "GRANT",
        "ALL",
        "ON",
        "CALL",
    ];

    proptest! {
        #[test]
        fn never_panics_and_names_the_database(words in prop::collection::vec(prop::sample::select(WORDS), 0..40)) {
            let sql = words.join(" ");
            for scope in [two_schemas(), scope()] {
                let out = classify(&sql, Dialect::Postgres, &scope);
                for a in &out.accesses {
                    prop_assert!(!a.object.database.is_empty(), "{}: {:?}", sql, a);
                }
            }
            classify(&sql, Dialect::Postgres, &Scope::default());
        }

        #[test]
        fn arbitrary_text_never_panics(sql in ".{0,200}") {
            let out = classify(&sql, Dialect::Postgres, &two_schemas());
            for a in &out.accesses {
                prop_assert!(!a.object.database.is_empty());
            }
        }
    }
}
