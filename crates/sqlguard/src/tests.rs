use super::*;
use proptest::prelude::*;

const STRICT: Rules = Rules {
    allow_password_changes: false,
};
const ALLOWED: Rules = Rules {
    allow_password_changes: true,
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
        "ALTER ROLE app SET search_path = public",
        "ALTER ROLE app CONNECTION LIMIT 5",
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
        let rules = Rules { allow_password_changes: allow };
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
