use super::*;
use proptest::prelude::*;

const STRICT: Rules = Rules {
    allow_password_changes: false,
    allow_dynamic_sql: false,
};
const ALLOWED: Rules = Rules {
    allow_password_changes: true,
    allow_dynamic_sql: false,
};
const DYNAMIC: Rules = Rules {
    allow_password_changes: false,
    allow_dynamic_sql: true,
};

fn pg(sql: &str) -> Verdict {
    check(sql.as_bytes(), Dialect::Postgres, STRICT, true)
}

fn my(sql: &str) -> Verdict {
    check(sql.as_bytes(), Dialect::MySql, STRICT, true)
}

const REFUSED: Verdict = Verdict::Refuse(Refusal::PasswordChange);
const NO_KILL: Verdict = Verdict::Refuse(Refusal::Kill);

fn kill(force: Option<KillForce>, scope: Option<KillScope>, id: u64) -> Verdict {
    Verdict::Kill(Kill { force, scope, id })
}

#[test]
fn postgres_password_changes_are_refused() {
    for sql in [
        "ALTER ROLE app PASSWORD 'x'",
        "alter user app with encrypted password 'x'",
        "ALTER USER app PASSWORD 'SCRAM-SHA-256$4096:abc$def:ghi'",
        "ALTER/**/ROLE app PASSWORD 'x'",
        "ALTER /* a /* nested */ comment */ ROLE app PASSWORD 'x'",
        "-- hi\nALTER\tROLE\n\"app\"\nPASSWORD\n'x'",
        "ALTER ROLE \"we;ird\" WITH LOGIN PASSWORD $$x$$",
        "ALTER ROLE CURRENT_USER PASSWORD NULL",
        "SELECT 1; ALTER ROLE app PASSWORD 'x'",
        "SELECT ';'; ALTER ROLE app PASSWORD 'x';",
        "CREATE ROLE evil LOGIN PASSWORD 'x'",
        "CREATE USER evil PASSWORD 'x'",
        "CREATE GROUP g PASSWORD 'x'",
        "(ALTER ROLE app PASSWORD 'x')",
        // In a DO block or a function body, as written.
        "DO $$BEGIN ALTER ROLE app PASSWORD 'x'; END$$",
        "DO $body$BEGIN EXECUTE 'SELECT 1'; ALTER ROLE app PASSWORD 'x'; END$body$",
        "DO 'BEGIN ALTER ROLE app PASSWORD ''x''; END'",
        "DO E'BEGIN ALTER ROLE app PASSWORD \\'x\\'; END'",
        "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'ALTER ROLE app PASSWORD ''x'''",
        "CREATE OR REPLACE PROCEDURE p() LANGUAGE plpgsql AS $$BEGIN ALTER USER app PASSWORD 'x'; END$$",
    ] {
        assert_eq!(pg(sql), REFUSED, "{sql}");
    }
}

#[test]
fn postgres_ordinary_statements_pass() {
    for sql in [
        "SELECT 1",
        "UPDATE users SET password = 'x' WHERE id = 1",
        "SELECT password FROM users",
        "SELECT 'ALTER ROLE app PASSWORD x'",
        "-- ALTER ROLE app PASSWORD 'x'\nSELECT 1",
        "/* ALTER ROLE app PASSWORD 'x' */ SELECT 1",
        "SELECT $$ALTER ROLE app PASSWORD 'x'$$",
        "INSERT INTO notes VALUES ('ALTER ROLE app PASSWORD ''x''')",
        "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u', password 'p')",
        "ALTER USER MAPPING FOR app SERVER s OPTIONS (SET password 'p')",
        "CREATE TABLE password (password text)",
    ] {
        assert_eq!(pg(sql), Verdict::Allow, "{sql}");
    }
}

#[test]
fn postgres_backslash_reading_is_checked_both_ways() {
    // With standard_conforming_strings off the first literal is `\'`, and
    // the ALTER runs; with it on, the lexer sees one long literal.
    let sql = "SELECT '\\''; ALTER ROLE app PASSWORD 'x' --'";
    assert_eq!(pg(sql), REFUSED);
}

#[test]
fn mysql_password_changes_are_refused() {
    for sql in [
        "SET PASSWORD = PASSWORD('x')",
        "set password for 'app'@'%' = 'x'",
        "SET PASSWORD FOR app = 'x'",
        "ALTER USER app IDENTIFIED BY 'x'",
        "ALTER USER 'app'@'%' IDENTIFIED WITH mysql_native_password BY 'x'",
        "ALTER USER app IDENTIFIED VIA ed25519 USING PASSWORD('x')",
        "alter user current_user() identified by 'x'",
        "ALTER USER app ACCOUNT LOCK",
        "CREATE USER evil IDENTIFIED BY 'x'",
        "CREATE USER evil@'%'",
        "GRANT ALL ON *.* TO app IDENTIFIED BY 'x'",
        "/*!ALTER USER app IDENTIFIED BY 'x'*/",
        "/*!50700 ALTER USER app IDENTIFIED BY 'x'*/",
        "/*M!100000 SET PASSWORD = 'x'*/",
        "ALTER/**/USER app IDENTIFIED BY 'x'",
        "# comment\nSET PASSWORD = 'x'",
        "-- comment\nSET PASSWORD = 'x'",
        "SELECT 1; SET PASSWORD = 'x'",
        "SELECT \";\"; SET PASSWORD = 'x'",
        "SET STATEMENT max_statement_time=10 FOR ALTER USER app IDENTIFIED BY 'x'",
        "SET STATEMENT max_statement_time=10 FOR SET PASSWORD = 'x'",
        "SET @a = 1, PASSWORD = 'x'",
        "CREATE PROCEDURE p() BEGIN SET PASSWORD = 'x'; END",
        "CREATE EVENT e ON SCHEDULE AT NOW() DO SET PASSWORD = 'x'",
        "PREPARE s FROM 'SET PASSWORD = ''x'''",
        "PREPARE s FROM 'ALTER USER app IDENTIFIED BY \\'x\\''",
        "EXECUTE IMMEDIATE 'ALTER USER app IDENTIFIED BY \"x\"'",
        "`x`; ALTER USER app IDENTIFIED BY 'x'",
    ] {
        assert_eq!(my(sql), REFUSED, "{sql}");
    }
}

#[test]
fn mysql_ordinary_statements_pass() {
    for sql in [
        "SELECT 1",
        "SELECT * FROM users",
        "UPDATE users SET password = 'x' WHERE id = 1",
        "INSERT INTO users SET password = 'x'",
        "UPDATE users u SET u.password = 'x'",
        "SET @password = 'x'",
        "SELECT user FROM mysql.user",
        "SELECT 'ALTER USER app IDENTIFIED BY x'",
        "SELECT \"SET PASSWORD = 1\"",
        "/* ALTER USER app IDENTIFIED BY 'x' */ SELECT 1",
        "SELECT CURRENT_USER()",
        "SELECT identified FROM t",
    ] {
        assert_eq!(my(sql), Verdict::Allow, "{sql}");
    }
}

#[test]
fn mysql_quote_readings_are_all_checked() {
    // NO_BACKSLASH_ESCAPES: the first literal is `a\`.
    assert_eq!(
        my("SELECT 'a\\'; ALTER USER app IDENTIFIED BY 'x'; -- '"),
        REFUSED
    );
    // ANSI_QUOTES: `"a\"` is an identifier, then the ALTER runs.
    assert_eq!(
        my("SELECT \"a\\\"; ALTER USER app IDENTIFIED BY 'x'; -- \""),
        REFUSED
    );
}

#[test]
fn multibyte_character_sets_cannot_hide_a_quote() {
    // GBK: 0xBF 0x5C is one character, so the backslash escapes nothing.
    let mut sql = b"SELECT '".to_vec();
    sql.extend_from_slice(&[0xBF, b'\\']);
    sql.extend_from_slice(b"'; SET PASSWORD = 'x'; -- '");
    assert_eq!(check(&sql, Dialect::MySql, STRICT, true), REFUSED);
    // Not UTF-8 (a latin1 session) but nothing to refuse.
    assert_eq!(
        check(b"SELECT 'caf\xe9'", Dialect::MySql, STRICT, true),
        Verdict::Allow
    );
}

#[test]
fn the_policy_lets_password_changes_through() {
    for (sql, dialect) in [
        ("ALTER ROLE app PASSWORD 'x'", Dialect::Postgres),
        ("SET PASSWORD = 'x'", Dialect::MySql),
        ("ALTER USER app IDENTIFIED BY 'x'", Dialect::MySql),
    ] {
        assert_eq!(
            check(sql.as_bytes(), dialect, ALLOWED, true),
            Verdict::Allow
        );
    }
    // ...but never an unmappable KILL.
    assert_eq!(
        check(b"SELECT 1; KILL 5", Dialect::MySql, ALLOWED, true),
        NO_KILL
    );
}

#[test]
fn simple_kills_are_mapped() {
    use KillForce::*;
    use KillScope::*;
    assert_eq!(my("KILL 5"), kill(None, None, 5));
    assert_eq!(my("kill query 7;"), kill(None, Some(Query), 7));
    assert_eq!(
        my("KILL HARD CONNECTION 9"),
        kill(Some(Hard), Some(Connection), 9)
    );
    assert_eq!(my("KILL SOFT 9"), kill(Some(Soft), None, 9));
    // Comments and executable comments are stripped first.
    assert_eq!(my("KILL/**/5"), kill(None, None, 5));
    assert_eq!(my("KILL CONNECTION/*x*/5"), kill(None, Some(Connection), 5));
    assert_eq!(my("/*!KILL 5*/"), kill(None, None, 5));
    assert_eq!(my("/*!50000 KILL 5*/"), kill(None, None, 5));
    assert_eq!(my("  KILL\n\t5 -- bye"), kill(None, None, 5));
    let k = Kill {
        force: Some(Hard),
        scope: Some(Query),
        id: 1,
    };
    assert_eq!(k.statement(42), "KILL HARD QUERY 42");
    assert!(k.query_only());
}

#[test]
fn other_kills_are_refused() {
    for sql in [
        "KILL",
        "KILL 5 6",
        "KILL 1+4",
        "KILL -5",
        "KILL 0x5",
        "KILL '5'",
        "KILL QUERY ID 5",
        "KILL USER app",
        "KILL 99999999999999999999999",
        "SELECT 1; KILL 5",
        "KILL 5; SELECT 1",
        "KILL 5; KILL 6",
        "/*!KILL 5",
        "PREPARE s FROM 'KILL 5'",
        "EXECUTE IMMEDIATE 'KILL 5'",
        "CREATE PROCEDURE p() KILL 5",
        "SELECT '\\'; KILL 5; -- '",
    ] {
        assert_eq!(my(sql), NO_KILL, "{sql}");
    }
    // Not a KILL at all.
    assert_eq!(my("SELECT 'KILL 5'"), Verdict::Allow);
    assert_eq!(my("SELECT * FROM kill_log"), Verdict::Allow);
    // PostgreSQL has no KILL.
    assert_eq!(pg("KILL 5"), Verdict::Allow);
}

#[test]
fn a_prefix_is_refused_unless_plainly_harmless() {
    let prefix = |sql: &str, d| check(sql.as_bytes(), d, STRICT, false);
    assert_eq!(
        prefix("INSERT INTO t VALUES (1), (2", Dialect::MySql),
        Verdict::Allow
    );
    assert_eq!(prefix("/* long comment", Dialect::MySql), REFUSED);
    assert_eq!(prefix("ALTER ROLE app", Dialect::Postgres), REFUSED);
    assert_eq!(prefix("SELECT 1; KILL", Dialect::MySql), NO_KILL);
    assert_eq!(
        prefix("INSERT INTO t VALUES ('unterminated", Dialect::MySql),
        REFUSED
    );
}

proptest! {
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), complete in any::<bool>(), allow in any::<bool>()) {
        let rules = Rules { allow_password_changes: allow, allow_dynamic_sql: !allow };
        let _ = check(&bytes, Dialect::Postgres, rules, complete);
        let _ = check(&bytes, Dialect::MySql, rules, complete);
    }

    #[test]
    fn comments_between_words_change_nothing(sep in prop::sample::select(vec![" ", "/**/", "\n", "/* x */", " -- c\n", "\t"])) {
        let sql = format!("ALTER{sep}ROLE{sep}app{sep}PASSWORD{sep}'x'");
        prop_assert_eq!(pg(&sql), REFUSED);
        let sql = format!("ALTER{sep}USER{sep}app{sep}IDENTIFIED{sep}BY{sep}'x'");
        prop_assert_eq!(my(&sql), REFUSED);
        let sql = format!("KILL{sep}QUERY{sep}5");
        prop_assert_eq!(my(&sql), kill(None, Some(KillScope::Query), 5));
    }
}

const DYNAMIC_REFUSED: Verdict = Verdict::Refuse(Refusal::DynamicSql);
const SIGNAL_REFUSED: Verdict = Verdict::Refuse(Refusal::SignalBackend);

#[test]
fn red_team_postgres_dynamic_sql_is_refused() {
    for sql in [
        // A plain literal under EXECUTE: dynamic, and its SQL is checked.
        "DO $$BEGIN EXECUTE 'ALTER ROLE app PASSWORD ''attacker-pw'''; END$$",
        "DO $$BEGIN EXECUTE 'ALTER ROLE app PASS'||'WORD ''x'''; END$$",
        "DO $$BEGIN EXECUTE format('ALTER ROLE %I PASS%s ''x''', 'app', 'WORD'); END$$",
        "DO $$BEGIN EXECUTE reverse('''x'' DROWSSAP ppa ELOR RETLA'); END$$",
        "DO $$BEGIN EXECUTE convert_from(decode('QUxURVIgUk9MRSBhcHAgUEFTU1dPUkQgJ3gn','base64'),'UTF8'); END$$",
        "DO $$BEGIN EXECUTE 'SELECT 1'; END$$",
        "do language plpgsql $x$ declare q text := 'sel'||'ect 1'; begin execute q; end $x$",
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN EXECUTE 'SELECT ' || 1; END$$",
        "CREATE OR REPLACE PROCEDURE p() LANGUAGE plpgsql AS 'BEGIN EXECUTE ''SELECT 1''; END'",
        "SELECT dblink_exec('dbname=orders', 'ALTER ROLE app PASS' || 'WORD ''x''')",
        "SELECT * FROM \"dblink\"('dbname=orders', 'SELECT 1') AS t(x int)",
        "COPY (SELECT 1) TO PROGRAM 'psql -c x'",
        "CREATE FUNCTION f() RETURNS void LANGUAGE plperl AS $$ spi_exec_query('SELECT ' . 1); $$",
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpython3u AS $$ plpy.execute('SELECT ' + '1') $$",
    ] {
        let v = pg(sql);
        assert!(v == DYNAMIC_REFUSED || v == REFUSED, "{sql}: {v:?}");
        assert!(matches!(pg(sql), Verdict::Refuse(_)), "{sql}");
    }
    // Only the policy's permission lets dynamic SQL through...
    let dynamic = |sql: &str| check(sql.as_bytes(), Dialect::Postgres, DYNAMIC, true);
    assert_eq!(
        dynamic("DO $$BEGIN EXECUTE 'SELECT 1'; END$$"),
        Verdict::Allow
    );
    assert_eq!(
        dynamic("DO $$BEGIN EXECUTE format('SELECT %s', 1); END$$"),
        Verdict::Allow
    );
    // ...and a password change written as a literal is still refused,
    // however deep.
    for sql in [
        "DO $$BEGIN EXECUTE 'ALTER ROLE app PASSWORD ''attacker-pw'''; END$$",
        "DO $$BEGIN EXECUTE 'DO ''BEGIN EXECUTE ''''ALTER ROLE app PASSWORD ''''''''x'''''''' ''''; END'''; END$$",
        "DO $a$BEGIN EXECUTE $b$ALTER ROLE app PASSWORD 'x'$b$; END$a$",
        "DO $$BEGIN EXECUTE 'ALTER ROLE app PASS'\n'WORD ''x'''; END$$",
        "DO 'BEGIN ALTER ROLE app PASS'\n'WORD ''x''; END'",
        "DO U&'BEGIN \\0041LTER ROLE app P\\0041SSWORD ''x''; END'",
        "DO E'BEGIN \\x41LTER ROLE app P\\101SSWORD \\'x\\'; END'",
        "DO E'BEGIN ALTER ROLE app P\\u0041SSWORD ''x''; END'",
        "DO $$BEGIN EXECUTE 'UPDATE pg_authid SET rolpassword = NULL'; END$$",
    ] {
        assert_eq!(dynamic(sql), REFUSED, "{sql}");
    }
    // PostgreSQL's own prepared statements, and trigger syntax, are not
    // dynamic SQL.
    for sql in [
        "PREPARE p AS SELECT 1",
        "EXECUTE p",
        "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW EXECUTE FUNCTION f()",
        "DO $$BEGIN RAISE NOTICE 'hello'; PERFORM 1; END$$",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ] {
        assert_eq!(pg(sql), Verdict::Allow, "{sql}");
    }
}

#[test]
fn red_team_postgres_catalogue_writes_and_signals_are_refused() {
    for sql in [
        "UPDATE pg_authid SET rolpassword = 'md5abc' WHERE rolname = 'app'",
        "update pg_catalog.pg_authid set rolpassword = null",
        "UPDATE \"pg_authid\" SET rolpassword = NULL",
        "UPDATE U&\"pg_\\0061uthid\" SET rolpassword = NULL",
        "INSERT INTO pg_authid SELECT * FROM pg_authid",
        "ALTER SYSTEM SET password_encryption = 'md5'",
        "alter system reset all",
        "DO $$BEGIN UPDATE pg_authid SET rolpassword = NULL; END$$",
    ] {
        assert_eq!(pg(sql), REFUSED, "{sql}");
    }
    assert_eq!(pg("SELECT rolname FROM pg_roles"), Verdict::Allow);
    for sql in [
        "select pg_terminate_backend(pid) from pg_stat_activity where usename='app'",
        "SELECT pg_catalog.pg_cancel_backend(42)",
        "SELECT \"pg_terminate_backend\"(42)",
        "SELECT U&\"pg_terminate_b\\0061ckend\"(42)",
        "DO $$BEGIN PERFORM pg_terminate_backend(42); END$$",
    ] {
        assert_eq!(pg(sql), SIGNAL_REFUSED, "{sql}");
        // Whatever the policy.
        let all = Rules {
            allow_password_changes: true,
            allow_dynamic_sql: true,
        };
        assert_eq!(
            check(sql.as_bytes(), Dialect::Postgres, all, true),
            SIGNAL_REFUSED,
            "{sql}"
        );
    }
    assert_eq!(pg("SELECT 'pg_terminate_backend(1)'"), Verdict::Allow);
    assert_eq!(pg("SELECT pg_backend_pid()"), Verdict::Allow);
}

#[test]
fn red_team_mysql_dynamic_sql_is_refused() {
    for sql in [
        "EXECUTE IMMEDIATE CONCAT('SET PASS','WORD = PASSWORD(''x'')')",
        "EXECUTE IMMEDIATE @q",
        "EXECUTE IMMEDIATE 'SELECT 1'",
        "PREPARE s FROM @q",
        "SET @q='SET PASSWORD = PASSWORD(\"x\")'; PREPARE s FROM @q; EXECUTE s",
        "EXECUTE IMMEDIATE CONCAT('KI','LL ', 5)",
        "SET @k=CONCAT('KILL ',5); PREPARE k FROM @k; EXECUTE k",
        "PREPARE s FROM CONCAT('SELECT ', 1)",
        "PREPARE s FROM 'SELECT 1' 'x'",
        "CREATE PROCEDURE p() BEGIN PREPARE s FROM @q; EXECUTE s; END",
        "/*!PREPARE s FROM @q*/",
    ] {
        assert_eq!(my(sql), DYNAMIC_REFUSED, "{sql}");
    }
    // A literal is checked as SQL, as before.
    assert_eq!(my("PREPARE s FROM 'SELECT ?'"), Verdict::Allow);
    assert_eq!(my("EXECUTE s USING @a"), Verdict::Allow);
    // Adjacent literals are joined before they are checked.
    let dynamic = |sql: &str| check(sql.as_bytes(), Dialect::MySql, DYNAMIC, true);
    assert_eq!(dynamic("PREPARE s FROM 'SET PASS' 'WORD = ''x'''"), REFUSED);
    assert_eq!(dynamic("PREPARE s FROM 'SET P\\ASSWORD = ''x'''"), REFUSED);
    assert_eq!(
        dynamic("PREPARE s FROM 'SET PASS' /* */ 'WORD = ''x'''"),
        REFUSED
    );
    assert_eq!(dynamic("EXECUTE IMMEDIATE 'SELECT 1'"), Verdict::Allow);
    assert_eq!(dynamic("EXECUTE IMMEDIATE @q"), Verdict::Allow);
}

#[test]
fn red_team_mysql_routine_bodies_are_statement_starts() {
    for sql in [
        "CREATE PROCEDURE pp() SET PASSWORD = PASSWORD('x')",
        "CREATE DEFINER=`app`@`%` PROCEDURE pp() SET PASSWORD = PASSWORD('x')",
        "CREATE OR REPLACE PROCEDURE pp() COMMENT 'x' SQL SECURITY INVOKER SET PASSWORD = 'x'",
        "CREATE PROCEDURE shop.update() SET PASSWORD = 'x'",
        "CREATE FUNCTION f() RETURNS INT DETERMINISTIC BEGIN SET PASSWORD = 'x'; RETURN 1; END",
        "CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW SET PASSWORD = 'x'",
        "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW FOLLOWS other SET PASSWORD = 'x'",
        "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SET PASSWORD = 'x'",
        "CREATE PROCEDURE p() BEGIN IF EXISTS (SELECT 1 FROM t FOR UPDATE) THEN SET PASSWORD = 'x'; END IF; END",
        "CREATE PROCEDURE p() BEGIN DECLARE CONTINUE HANDLER FOR SQLEXCEPTION SET PASSWORD = 'x'; END",
        "CREATE PROCEDURE p() l: LOOP SET PASSWORD = 'x'; END LOOP",
        "CREATE PROCEDURE p() BEGIN UPDATE t SET a = 1; SET PASSWORD = 'x'; END",
        "CREATE PROCEDURE p(a TEXT DEFAULT REPLACE('x', 'y', 'z')) SET PASSWORD = 'x'",
        "CREATE PROCEDURE p(a TEXT DEFAULT INSERT('x', 1, 1, 'z')) SET PASSWORD = 'x'",
    ] {
        assert_eq!(my(sql), REFUSED, "{sql}");
    }
    for sql in [
        "UPDATE t SET password = 'x' WHERE id = 1",
        "UPDATE LOW_PRIORITY t JOIN u ON t.id = u.id SET t.password = 'x'",
        "INSERT INTO t SET password = 'x'",
        "REPLACE INTO t SET password = 'x'",
        "CREATE PROCEDURE p() UPDATE t SET password = 'x'",
        "CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW UPDATE u SET password = 'x'",
        "CREATE TABLE t (a VARCHAR(5) CHARACTER SET utf8, password TEXT)",
        "CREATE TABLE t (a INT, FOREIGN KEY (a) REFERENCES p(a) ON DELETE SET NULL, password TEXT)",
        // (Without LOCAL, a server file: refused for that reason.)
        "LOAD DATA LOCAL INFILE 'f' INTO TABLE t (a) SET password = 'x'",
    ] {
        assert_eq!(my(sql), Verdict::Allow, "{sql}");
    }
}

#[test]
fn red_team_mysql_catalogue_writes_are_refused() {
    for sql in [
        "UPDATE mysql.global_priv SET Priv=JSON_SET(Priv, '$.authentication_string', 'x') WHERE User='app'",
        "update `mysql`.`global_priv` set priv = '{}'",
        "UPDATE MySQL.User SET authentication_string = '' WHERE user = 'app'",
        "UPDATE mysql . user SET plugin = 'mysql_native_password'",
        "INSERT INTO mysql.user (Host, User) VALUES ('%', 'evil')",
        "REPLACE INTO mysql.global_priv VALUES ('%', 'evil', '{}')",
        "DELETE FROM mysql.global_priv WHERE User = 'app'",
        "UPDATE global_priv SET Priv = '{}'",
        "UPDATE user SET authentication_string = ''",
        "UPDATE t, user SET user.plugin = ''",
        "INSERT INTO t SELECT * FROM mysql.user",
        "CREATE PROCEDURE p() UPDATE mysql.global_priv SET Priv = '{}'",
        "SET @a = 1; UPDATE mysql.user SET plugin = ''",
        "/*!UPDATE mysql.global_priv SET Priv = '{}'*/",
        "RENAME TABLE mysql.global_priv TO shop.old, shop.gp TO mysql.global_priv",
        "RENAME TABLE gp TO global_priv",
        "RENAME TABLE gp TO user",
        "ALTER TABLE mysql.global_priv ENGINE = InnoDB",
        "DROP TABLE mysql.global_priv",
    ] {
        assert_eq!(my(sql), REFUSED, "{sql}");
    }
    for sql in [
        "SELECT user FROM mysql.user",
        "SELECT * FROM mysql.global_priv",
        "UPDATE shop.user SET name = 'x'",
        "UPDATE accounts SET user = 'x' WHERE id = 1",
        "UPDATE accounts SET a = 1, user = 'x'",
        "INSERT INTO accounts (a, user) VALUES (1, 'x')",
        "INSERT INTO log VALUES (USER())",
        "UPDATE users SET name = 'x'",
        "FLUSH PRIVILEGES",
        "CREATE TABLE t (id INT, user VARCHAR(5))",
        "ALTER TABLE t ADD COLUMN user INT",
        "CREATE TABLE shop.user (id INT)",
    ] {
        assert_eq!(my(sql), Verdict::Allow, "{sql}");
    }
    // With the password permission, catalogue writes go through.
    assert_eq!(
        check(
            b"UPDATE mysql.global_priv SET Priv = '{}'",
            Dialect::MySql,
            ALLOWED,
            true
        ),
        Verdict::Allow
    );
}

#[test]
fn deep_nesting_is_refused_when_it_cannot_be_read() {
    let mut sql = "ALTER ROLE app PASSWORD 'x'".to_owned();
    for _ in 0..10 {
        sql = format!(
            "DO {}",
            quote(&format!("BEGIN EXECUTE {}; END", quote(&sql)))
        );
    }
    let dynamic = |sql: &str| check(sql.as_bytes(), Dialect::Postgres, DYNAMIC, true);
    assert_eq!(dynamic(&sql), REFUSED);
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Third red-team pass: functions that run an SQL string, sys routines,
/// catalogue writes, server files and reload, account management,
/// SHUTDOWN.
#[test]
fn red_team_postgres_functions_that_run_sql_text_are_dynamic() {
    for sql in [
        "SELECT query_to_xml(reverse('dtats_gp morf )dip(dnekcab_etanimret_gp tceles'), true, false, '')",
        "select query_to_xml($1::text, true, false, '')",
        "SELECT pg_catalog.query_to_xml('SELECT 1', true, false, '')",
        "SELECT \"pg_catalog\".\"query_to_xml\"('SELECT 1', true, false, '')",
        "SELECT Query_To_XmlSchema('SELECT 1', true, false, '')",
        "SELECT query_to_xml_and_xmlschema('SELECT 1', true, false, '')",
        "SELECT * FROM ts_stat('SELECT to_tsvector(x) FROM t')",
        "SELECT ts_rewrite('a & b'::tsquery, 'SELECT t, s FROM aliases')",
        "SELECT dblink_send_query('c', 'SELECT 1')",
        "SELECT dblink_open('c', 'SELECT 1')",
        "SELECT dblink_connect('dbname=orders')",
        "SELECT * FROM crosstab('SELECT 1, 2, 3') AS t(a int, b int)",
        "SELECT * FROM connectby('t', 'id', 'parent', '1', 0) AS t(a int)",
        "DO $$BEGIN PERFORM query_to_xml('SELECT 1', true, false, ''); END$$",
        "SELECT U&\"query_to_\\0078ml\"('SELECT 1', true, false, '')",
    ] {
        assert_eq!(pg(sql), DYNAMIC_REFUSED, "{sql}");
        let dynamic = check(sql.as_bytes(), Dialect::Postgres, DYNAMIC, true);
        assert_eq!(dynamic, Verdict::Allow, "{sql}");
    }
    for sql in [
        "SELECT table_to_xml('t', true, false, '')",
        "SELECT cursor_to_xml('c', 1, true, false, '')",
        "SELECT to_tsvector('a b'), 'query_to_xml'",
        "SELECT xpath('/a', '<a/>'::xml)",
    ] {
        assert_eq!(pg(sql), Verdict::Allow, "{sql}");
    }
}

#[test]
fn red_team_postgres_catalogue_writes_files_and_roles_are_refused() {
    for sql in [
        "UPDATE pg_proc SET prosrc = 'select 1' WHERE proname = 'f'",
        "update pg_catalog.pg_proc set prosrc = 'x'",
        "UPDATE ONLY \"pg_proc\" SET prosrc = 'x'",
        "UPDATE orders.pg_catalog.pg_proc SET prosrc = 'x'",
        "INSERT INTO pg_catalog.pg_namespace VALUES (1)",
        "DELETE FROM pg_class WHERE relname = 't'",
        "MERGE INTO pg_proc p USING t ON true WHEN MATCHED THEN DO NOTHING",
        "TRUNCATE a, pg_largeobject",
        "TRUNCATE TABLE ONLY pg_toast.pg_toast_1255",
        "ALTER TABLE IF EXISTS pg_catalog.pg_proc OWNER TO app",
        "DROP TABLE t, pg_statistic",
        "COPY pg_proc FROM STDIN",
        "CREATE OR REPLACE FUNCTION pg_catalog.now() RETURNS timestamptz LANGUAGE sql AS 'SELECT 1'",
        "CREATE TRIGGER t BEFORE UPDATE ON pg_catalog.pg_proc FOR EACH ROW EXECUTE FUNCTION f()",
        "WITH x AS (UPDATE pg_proc SET prosrc = 'x' RETURNING 1) SELECT * FROM x",
        "DO $$BEGIN UPDATE pg_proc SET prosrc = 'x'; END$$",
        // Server files and configuration.
        "COPY (SELECT 'host all all 127.0.0.1/32 trust') TO '/var/lib/postgresql/pg_hba.conf'",
        "copy t from '/etc/passwd'",
        "COPY t TO E'/tmp/x' WITH (FORMAT csv)",
        "COPY t FROM $$/tmp/x$$",
        "SELECT pg_reload_conf()",
        "SELECT pg_catalog.pg_reload_conf()",
        "SELECT pg_read_file('pg_hba.conf')",
        "SELECT pg_read_binary_file('server.key')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT lo_export(16384, '/tmp/x')",
        "SELECT pg_file_write('pg_hba.conf', 'host all all 0/0 trust', false)",
        "SELECT \"pg_file_rename\"('a', 'b')",
        "SELECT pg_file_unlink('a')",
        // Roles: whatever follows.
        "ALTER ROLE app SET search_path = public",
        "ALTER ROLE app CONNECTION LIMIT 0",
        "ALTER ROLE app RENAME TO x",
        "ALTER ROLE app NOLOGIN",
        "alter user app superuser",
        "ALTER GROUP g ADD USER app",
        "CREATE ROLE evil LOGIN",
        "CREATE USER evil",
        "DROP ROLE bob",
        "DROP USER IF EXISTS bob",
        "GRANT pg_write_server_files TO app",
        "REVOKE admins FROM bob",
    ] {
        assert_eq!(pg(sql), REFUSED, "{sql}");
        let allowed = check(sql.as_bytes(), Dialect::Postgres, ALLOWED, true);
        assert!(allowed != REFUSED, "{sql}: {allowed:?}");
    }
    for sql in [
        "SELECT * FROM pg_proc",
        "SELECT relname FROM pg_class WHERE relname LIKE 'pg_%'",
        "INSERT INTO t SELECT a, pg_backend_pid() FROM u",
        "INSERT INTO t (a, pg_b) VALUES (1, 2)",
        "UPDATE t SET a = pg_catalog.now()",
        "UPDATE t SET a = 1 FROM pg_class c WHERE c.oid = t.r",
        "INSERT INTO pg_temp.scratch VALUES (1)",
        "UPDATE public.pg_thing SET a = 1",
        "COPY pg_class TO STDOUT",
        "COPY t FROM STDIN",
        "COPY bulk (id, payload) FROM STDIN WITH (FORMAT csv)",
        "COPY (SELECT substring(a FROM 'x.') FROM t) TO STDOUT",
        "COPY (SELECT * FROM blob ORDER BY id) TO STDOUT WITH (FORMAT csv)",
        "GRANT SELECT ON t TO bob",
        "GRANT SELECT, UPDATE ON t TO bob WITH GRANT OPTION",
        "REVOKE GRANT OPTION FOR SELECT ON t FROM bob",
        "ALTER DEFAULT PRIVILEGES FOR ROLE app GRANT SELECT ON TABLES TO bob",
        "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u')",
        "DROP USER MAPPING FOR app SERVER s",
        "ALTER EXTENSION pg_trgm UPDATE",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        "SELECT 1 FROM t FOR UPDATE",
        "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 2",
    ] {
        assert_eq!(pg(sql), Verdict::Allow, "{sql}");
    }
}

#[test]
fn red_team_mysql_sys_routines_catalogue_accounts_and_shutdown() {
    // sys routines that run SQL text.
    for sql in [
        "CALL sys.execute_prepared_stmt(CONCAT('SET PASS', 'WORD = PASSWORD(''x'')'))",
        "call `sys`.`execute_prepared_stmt`(@q)",
        "CALL execute_prepared_stmt(@q)",
        "CALL sys.statement_performance_analyzer('snapshot', NULL, NULL)",
        "CALL sys.table_exists('shop', 't', @e)",
        "CALL sys.create_synonym_db('shop', 'x')",
        "CALL sys.diagnostics(10, 10, 'current')",
        "CALL ps_trace_thread(1, '/tmp/x', 1, 1, 1, 1, 1)",
        "CREATE PROCEDURE p() CALL sys.execute_prepared_stmt(@q)",
    ] {
        assert_eq!(my(sql), DYNAMIC_REFUSED, "{sql}");
    }
    for sql in [
        "CALL sys.ps_setup_show_enabled(TRUE, TRUE)",
        "SELECT sys.format_bytes(1024)",
        "GET DIAGNOSTICS @n = NUMBER",
        "CALL shop.table_exists_log()",
    ] {
        assert_eq!(my(sql), Verdict::Allow, "{sql}");
    }
    // The mysql schema, any table.
    for sql in [
        "UPDATE mysql.proc SET body = 'SET PASSWORD = ''x''' WHERE name = 'p'",
        "update `mysql`.`event` set body = 'x'",
        "INSERT INTO mysql.db VALUES ('%', 'shop', 'eve')",
        "REPLACE INTO mysql.tables_priv VALUES ('%', 'shop', 'eve', 't')",
        "DELETE FROM mysql.roles_mapping",
        "INSERT INTO mysql.servers VALUES ('s')",
        "LOAD DATA INFILE '/tmp/x' INTO TABLE mysql.plugin",
        "ALTER TABLE mysql.columns_priv ENGINE = Aria",
        "RENAME TABLE mysql.procs_priv TO shop.x",
        "TRUNCATE mysql.proxies_priv",
        "TRUNCATE TABLE mysql.func",
        "DROP TABLE mysql.event",
        "UPDATE proc SET body = 'x'",
        "INSERT INTO tables_priv VALUES (1)",
        "TRUNCATE roles_mapping",
        // Account management.
        "GRANT SELECT ON shop.* TO eve@'%'",
        "grant all on *.* to app",
        "REVOKE ALL ON *.* FROM bob",
        "RENAME USER bob TO eve",
        "DROP USER bob",
        "DROP USER IF EXISTS bob",
        "CREATE ROLE r",
        "CREATE OR REPLACE ROLE r",
        "CREATE OR REPLACE USER eve@'%'",
        "DROP ROLE r",
        "SET DEFAULT ROLE r FOR bob",
        "CREATE PROCEDURE p() GRANT ALL ON *.* TO eve",
        "EXECUTE IMMEDIATE 'GRANT ALL ON *.* TO eve'",
    ] {
        assert_eq!(my(sql), REFUSED, "{sql}");
        let allowed = check(sql.as_bytes(), Dialect::MySql, ALLOWED, true);
        assert!(allowed != REFUSED, "{sql}: {allowed:?}");
    }
    for sql in [
        "SELECT * FROM mysql.proc",
        "SELECT * FROM mysql.db WHERE Db = 'shop'",
        "UPDATE shop.proc SET a = 1",
        "INSERT INTO shop.event VALUES (1)",
        "UPDATE t SET db = 'x', event = 1",
        "INSERT INTO t (db, proc) VALUES (1, 2)",
        "SELECT mysql.f() FROM t",
        "SHOW GRANTS",
        "SET ROLE r",
        "UPDATE t SET `grant` = 1",
        "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1",
        "CREATE FUNCTION f() RETURNS INT RETURN 1",
    ] {
        assert_eq!(my(sql), Verdict::Allow, "{sql}");
    }
    // SHUTDOWN, whatever the policy.
    let all = Rules {
        allow_password_changes: true,
        allow_dynamic_sql: true,
    };
    for sql in [
        "SHUTDOWN",
        "shutdown;",
        "/*!SHUTDOWN*/",
        "SHUTDOWN WAIT FOR ALL REPLICAS",
        "SELECT 1; SHUTDOWN",
        "RESTART",
        "CREATE PROCEDURE p() SHUTDOWN",
        "CREATE PROCEDURE p() BEGIN SHUTDOWN; END",
        "EXECUTE IMMEDIATE 'SHUTDOWN'",
    ] {
        assert_eq!(my(sql), SIGNAL_REFUSED, "{sql}");
        assert_eq!(
            check(sql.as_bytes(), Dialect::MySql, all, true),
            SIGNAL_REFUSED,
            "{sql}"
        );
    }
    for sql in [
        "SELECT shutdown FROM t",
        "SELECT a, shutdown FROM t",
        "SELECT t.shutdown",
        "SELECT 'SHUTDOWN'",
        "ALTER SEQUENCE s RESTART",
    ] {
        assert_eq!(my(sql), Verdict::Allow, "{sql}");
    }
}

#[test]
fn red_team_mysql_server_files_and_shared_libraries_are_refused() {
    for sql in [
        // Files the server writes.
        "SELECT 'x' INTO OUTFILE '/tmp/x'",
        "select * from t into outfile '/tmp/x' fields terminated by ','",
        "SELECT a FROM t WHERE b = 1 INTO OUTFILE \"/tmp/x\"",
        "SELECT 'x' INTO DUMPFILE '/usr/lib/mysql/plugin/x.so'",
        "SELECT 'x' /* c */ INTO/**/DUMPFILE '/tmp/x'",
        "/*!SELECT 'x' INTO OUTFILE '/tmp/x'*/",
        "SELECT 1; SELECT 'x' INTO OUTFILE '/tmp/x'",
        "TABLE t INTO OUTFILE '/tmp/x'",
        "SELECT 'x' INTO /*!99999 @a, */ DUMPFILE /*!99999 b */ '/tmp/x'",
        "SELECT 'x' INTO /*!99999 t.*/OUTFILE '/tmp/x'",
        "CREATE PROCEDURE p() SELECT 'x' INTO OUTFILE '/tmp/x'",
        "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 'x' INTO DUMPFILE '/tmp/x'; END",
        "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 'x' INTO OUTFILE '/tmp/x'",
        "PREPARE s FROM 'SELECT ''x'' INTO OUTFILE ''/tmp/x'''",
        "EXECUTE IMMEDIATE 'SELECT 1 INTO DUMPFILE \"/tmp/x\"'",
        "PREPARE s FROM 'SELECT 1 INTO O\\UTFILE ''/tmp/x'''",
        // Files the server reads.
        "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
        "load data low_priority infile '/etc/passwd' into table t",
        "LOAD DATA CONCURRENT INFILE '/etc/passwd' REPLACE INTO TABLE t",
        "LOAD XML INFILE '/etc/x.xml' INTO TABLE t",
        "LOAD DATA /*!99999 LOCAL */ INFILE '/etc/passwd' INTO TABLE t",
        "SELECT LOAD_FILE('/etc/passwd')",
        "select load_file ('/etc/passwd')",
        "SELECT Load_File/**/('/etc/passwd')",
        "SELECT `load_file`('/etc/passwd')",
        "SELECT `LOAD_FILE`('/etc/passwd')",
        "INSERT INTO t VALUES (LOAD_FILE('/etc/shadow'))",
        "UPDATE t SET a = LOAD_FILE('/etc/passwd')",
        "SELECT LOAD_FILE /*!99999 x */ ('/etc/passwd')",
        "SELECT HEX(LOAD_FILE(CONCAT('/etc/', 'passwd')))",
        // Shared libraries.
        "INSTALL PLUGIN evil SONAME 'evil.so'",
        "INSTALL SONAME 'evil'",
        "install soname \"evil\"",
        "UNINSTALL PLUGIN server_audit",
        "UNINSTALL SONAME 'server_audit'",
        "INSTALL COMPONENT 'file://component_x'",
        "CREATE FUNCTION sys_exec RETURNS INTEGER SONAME 'lib_mysqludf_sys.so'",
        "CREATE OR REPLACE AGGREGATE FUNCTION f RETURNS STRING SONAME 'x.so'",
        "CREATE FUNCTION IF NOT EXISTS f RETURNS REAL SONAME 'x.so'",
    ] {
        assert_eq!(my(sql), REFUSED, "{sql}");
        // With latchkey:ChangeDatabasePassword they go through.
        let allowed = check(sql.as_bytes(), Dialect::MySql, ALLOWED, true);
        assert!(allowed != REFUSED, "{sql}: {allowed:?}");
    }
    for sql in [
        "SELECT outfile FROM t",
        "SELECT `outfile`, t.outfile FROM t",
        "UPDATE t SET `outfile` = 1",
        "SELECT a INTO @x FROM t",
        "SELECT a, b INTO @x, @outfile FROM t",
        "SELECT 'INTO OUTFILE ''/tmp/x''' AS a",
        "SELECT \"LOAD DATA INFILE '/etc/passwd'\"",
        "INSERT INTO t (note) VALUES ('SELECT LOAD_FILE(x) INTO DUMPFILE y')",
        "SELECT dumpfile FROM t",
        "UPDATE t SET dumpfile = 1 WHERE dumpfile = 2",
        "INSERT INTO dumpfile VALUES (1)",
        "SELECT load_file FROM t",
        "SELECT soname, plugin_name FROM information_schema.plugins",
        "SELECT * FROM information_schema.plugins WHERE plugin_library = 'x.so'",
        "SHOW PLUGINS",
        "CREATE FUNCTION f() RETURNS INT RETURN 1",
        "CREATE PROCEDURE p() BEGIN DECLARE x INT; SELECT 1 INTO x; END",
        "SELECT 1 INTO @x; SELECT @x",
        "/*!40101 SET NAMES utf8mb4 */",
    ] {
        assert_eq!(my(sql), Verdict::Allow, "{sql}");
    }
    // LOAD DATA LOCAL is the client's file, governed by
    // latchkey:LoadDataLocalInfile, not this.
    for sql in [
        "LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t",
        "load data low_priority local infile '/tmp/x.csv' into table t",
        "LOAD XML LOCAL INFILE '/tmp/x.xml' INTO TABLE t",
        "LOAD DATA LOCAL INFILE ? INTO TABLE t",
    ] {
        assert_eq!(my(sql), Verdict::Allow, "{sql}");
    }
    // PostgreSQL is not MySQL: nothing of this applies there.
    assert_eq!(pg("SELECT outfile, load_file FROM t"), Verdict::Allow);
    // A statement cut short that names them is not plainly harmless.
    for sql in [
        "SELECT 'x' INTO OUTFILE '/tmp/x' FIELDS TERMINATED BY '",
        "INSERT INTO t VALUES (LOAD_FILE('/etc/passwd'), '",
    ] {
        assert_eq!(
            check(sql.as_bytes(), Dialect::MySql, STRICT, false),
            REFUSED,
            "{sql}"
        );
    }
}
