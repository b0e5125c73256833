use super::*;

use Dialect::{MySql, Postgres};

/// (dialect, input, expected text, expected truncated)
const CASES: &[(Dialect, &str, &str, bool)] = &[
    // --- PostgreSQL ---
    (
        Postgres,
        "SELECT * FROM t WHERE id = 1",
        "SELECT * FROM t WHERE id = ?",
        false,
    ),
    (
        Postgres,
        "select name from users where email = 'a@b.c'",
        "select name from users where email = ?",
        false,
    ),
    (Postgres, "SELECT 'it''s', ''''", "SELECT ?, ?", false),
    // Standard strings: a backslash is an ordinary character.
    (Postgres, r"SELECT 'a\' , 'b'", "SELECT ? , ?", false),
    (Postgres, r"SELECT E'a\'b\\' , 1", "SELECT ? , ?", false),
    (Postgres, r"SELECT e'x\'' || 'y'", "SELECT ? || ?", false),
    (Postgres, r"SELECT E'it''s\n'", "SELECT ?", false),
    (
        Postgres,
        r"SELECT B'1010', b'1', X'1F', x'ff', N'nat', n'n', U&'d\0061t', u&'x'",
        "SELECT ?, ?, ?, ?, ?, ?, ?, ?",
        false,
    ),
    (
        Postgres,
        r"SELECT U&'d!0061t' UESCAPE '!'",
        "SELECT ? UESCAPE ?",
        false,
    ),
    (Postgres, "SELECT $$secret 'x' \"y\"$$", "SELECT ?", false),
    (
        Postgres,
        "SELECT $tag$ has $$ and $ta$ inside $tag$ FROM t",
        "SELECT ? FROM t",
        false,
    ),
    (
        Postgres,
        "SELECT $_t1$x$_t1$, $é$y$é$",
        "SELECT ?, ?",
        false,
    ),
    (
        Postgres,
        "SELECT * FROM t WHERE id = $1 AND x = $23",
        "SELECT * FROM t WHERE id = $1 AND x = $23",
        false,
    ),
    (
        Postgres,
        "SELECT foo$1, a$b$c FROM t",
        "SELECT foo$1, a$b$c FROM t",
        false,
    ),
    (
        Postgres,
        "SELECT 42, 3.14, .5, 1e10, 1.5E-3, 2e+7, 7., 0x1F, 0o17, 0b101, 1_000",
        "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?",
        false,
    ),
    (
        Postgres,
        "SELECT t1.col_2, \"x1\", _3 FROM t1",
        "SELECT t1.col_2, \"x1\", _3 FROM t1",
        false,
    ),
    (
        Postgres,
        "SELECT -1, a-2, b - -3.5",
        "SELECT -?, a-?, b - -?",
        false,
    ),
    (Postgres, "FOR i IN 1..10 LOOP", "FOR i IN ?..? LOOP", false),
    (
        Postgres,
        "SELECT \"we\"\"ird\", \"My Col\", U&\"d\\0061t\" FROM \"T\"",
        "SELECT \"we\"\"ird\", \"My Col\", U&\"d\\0061t\" FROM \"T\"",
        false,
    ),
    (
        Postgres,
        "SELECT \"  two  spaces  \"",
        "SELECT \"  two  spaces  \"",
        false,
    ),
    (
        Postgres,
        "SELECT 1 -- comment 'x'\nFROM t",
        "SELECT ? FROM t",
        false,
    ),
    (Postgres, "SELECT 1--x\r+2", "SELECT ? +?", false),
    (
        Postgres,
        "SELECT /* a /* nested 'x' */ still */ 1",
        "SELECT ?",
        false,
    ),
    (Postgres, "SELECT a/**/FROM t", "SELECT a FROM t", false),
    (
        Postgres,
        "SELECT 5 # 3, a */ b",
        "SELECT ? # ?, a */ b",
        false,
    ),
    (
        Postgres,
        "SELECT TRUE, false, NULL, null",
        "SELECT TRUE, false, NULL, null",
        false,
    ),
    (
        Postgres,
        "SELECT * FROM t WHERE id IN (1, 2,3)",
        "SELECT * FROM t WHERE id IN (?, ?,?)",
        false,
    ),
    (
        Postgres,
        "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO t VALUES (?, ?), (?, ?)",
        false,
    ),
    (
        Postgres,
        "SELECT '2024-01-01'::date, 1::int8",
        "SELECT ?::date, ?::int8",
        false,
    ),
    (Postgres, "  SELECT\n\t 1 ;  \n", "SELECT ?", false),
    (Postgres, "SELECT 1 ;; ; -- done", "SELECT ?", false),
    (Postgres, "SELECT 1; SELECT 2;", "SELECT ?; SELECT ?", false),
    (
        Postgres,
        "ALTER ROLE app PASSWORD 'hunter2'",
        "ALTER ROLE app PASSWORD ?",
        false,
    ),
    (
        Postgres,
        "SELECT data->>'k' FROM t WHERE j ? 'key'",
        "SELECT data->>? FROM t WHERE j ? ?",
        false,
    ),
    (
        Postgres,
        "SELECT 'héllo', größe FROM tëst",
        "SELECT ?, größe FROM tëst",
        false,
    ),
    (Postgres, "SELECT 'a'\n'b'", "SELECT ? ?", false),
    (Postgres, "SELECT`x`", "SELECT`x`", false),
    (Postgres, "", "", false),
    (Postgres, " -- only a comment", "", false),
    // Unterminated: the remainder is redacted.
    (Postgres, "SELECT 'abc", "SELECT ?", true),
    (Postgres, "SELECT 'ab''c", "SELECT ?", true),
    (Postgres, r"SELECT E'abc\'", "SELECT ?", true),
    (Postgres, r"SELECT E'abc\", "SELECT ?", true),
    (Postgres, "SELECT $$abc", "SELECT ?", true),
    (Postgres, "SELECT $q$abc$$", "SELECT ?", true),
    (Postgres, "SELECT 1 /* abc", "SELECT ?", true),
    (Postgres, "SELECT 1 /* a /* b */ abc", "SELECT ?", true),
    (Postgres, "SELECT \"abc", "SELECT ?", true),
    (Postgres, "SELECT 1; 'abc", "SELECT ?; ?", true),
    (Postgres, "SELECT 1; /* abc", "SELECT ?", true),
    // --- MySQL ---
    (
        MySql,
        r#"SELECT * FROM t WHERE a = 'x\'y' AND b = "q\"r""#,
        "SELECT * FROM t WHERE a = ? AND b = ?",
        false,
    ),
    (
        MySql,
        r#"SELECT 'it''s', "say ""hi""""#,
        "SELECT ?, ?",
        false,
    ),
    (MySql, r"SELECT 'a\\' , 'b'", "SELECT ? , ?", false),
    (
        MySql,
        "SELECT `a``b`, `c d`, `x1` FROM `t`",
        "SELECT `a``b`, `c d`, `x1` FROM `t`",
        false,
    ),
    (MySql, "SELECT 1 # comment 'x'\n, 2", "SELECT ? , ?", false),
    (MySql, "SELECT 1 -- c\r'x'\n", "SELECT ?", false),
    (MySql, "SELECT a --\tc\n FROM t", "SELECT a FROM t", false),
    (MySql, "SELECT a--1 FROM t", "SELECT a--? FROM t", false),
    (MySql, "SELECT 1 --", "SELECT ?", false),
    (
        MySql,
        "SELECT a--/**/ 1, b- -2",
        "SELECT a--?, b- -?",
        false,
    ),
    (
        MySql,
        "/*!40101 SET NAMES utf8mb4 */;",
        "SET NAMES utf8mb4",
        false,
    ),
    (
        MySql,
        "SELECT /*!50000 SQL_NO_CACHE */ a FROM t WHERE b = /*!80000 'x' */ 1",
        "SELECT SQL_NO_CACHE a FROM t WHERE b = ? ?",
        false,
    ),
    (MySql, "/*M!100100 SET x = 1 */", "SET x = ?", false),
    (
        MySql,
        "SELECT /*+ BKA(t) */ * FROM t",
        "SELECT * FROM t",
        false,
    ),
    (MySql, "SELECT /* a /* b */ c */ 1", "SELECT c */ ?", false),
    (
        MySql,
        "SELECT x'4D', X'4d', b'101', B'1', 0x1F, 0b101, N'nat', n'x'",
        "SELECT ?, ?, ?, ?, ?, ?, ?, ?",
        false,
    ),
    (
        MySql,
        r#"SELECT _utf8mb4'abc', _latin1"x\"y", _binary 'z'"#,
        "SELECT ?, ?, _binary ?",
        false,
    ),
    (
        MySql,
        "SELECT 42, 3.14, .5, 1e10, 1.5E-3, -7",
        "SELECT ?, ?, ?, ?, ?, -?",
        false,
    ),
    (
        MySql,
        "SELECT * FROM t WHERE a = ? AND b IN (?, ?)",
        "SELECT * FROM t WHERE a = ? AND b IN (?, ?)",
        false,
    ),
    (
        MySql,
        "SELECT $$x$$, $a, t1 FROM t",
        "SELECT $$x$$, $a, t1 FROM t",
        false,
    ),
    (
        MySql,
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, \"y\");",
        "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)",
        false,
    ),
    (
        MySql,
        "SELECT TRUE, FALSE, NULL",
        "SELECT TRUE, FALSE, NULL",
        false,
    ),
    (MySql, "SELECT 'abc", "SELECT ?", true),
    (MySql, r"SELECT 'abc\'", "SELECT ?", true),
    (MySql, "SELECT \"abc", "SELECT ?", true),
    (MySql, "SELECT `abc", "SELECT ?", true),
    (MySql, "SELECT 1 /* abc", "SELECT ?", true),
    (MySql, "/*!40101 SELECT 'x'", "SELECT ?", true),
];

#[test]
fn table() {
    let mut failures = Vec::new();
    for &(dialect, input, text, truncated) in CASES {
        let got = normalize(input, dialect);
        if got.text != text || got.truncated != truncated {
            failures.push(format!(
                "{dialect:?} {input:?}\n   want {text:?} truncated={truncated}\n    got {:?} truncated={}",
                got.text, got.truncated
            ));
        }
        assert!(got.text.len() <= input.len(), "{input:?} grew");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(CASES.len() >= 30);
}

#[test]
fn unterminated_redacts_everything_after() {
    for (dialect, input) in [
        (Postgres, "'abc"),
        (Postgres, "$$abc"),
        (Postgres, "$t$abc"),
        (Postgres, "/* abc"),
        (Postgres, "\"abc"),
        (Postgres, "E'abc"),
        (Postgres, "U&\"abc"),
        (MySql, "'abc"),
        (MySql, "\"abc"),
        (MySql, "`abc"),
        (MySql, "/* abc"),
        (MySql, "_utf8mb4'abc"),
    ] {
        for prefix in ["", "SELECT * FROM t WHERE a = ", "SELECT 1;\n"] {
            let sql = format!("{prefix}{input}");
            let n = normalize(&sql, dialect);
            assert!(n.truncated, "{dialect:?} {sql:?}");
            assert!(
                !n.text.contains("abc"),
                "{dialect:?} {sql:?} -> {:?}",
                n.text
            );
        }
    }
}

fn fp(sql: &str, dialect: Dialect) -> u64 {
    normalize(sql, dialect).fingerprint
}

#[test]
fn fingerprint_ignores_literals_space_comments_and_case() {
    let groups: &[(Dialect, &[&str])] = &[
        (
            Postgres,
            &[
                "SELECT * FROM t WHERE id = 1",
                "select *  from t where id=2",
                "Select * From T Where ID = 3.5;",
                "SELECT /* hint */ * FROM t -- trailing\n WHERE id = 'x'",
                "\n\tSELECT*FROM t WHERE id = $$dollar$$ ;",
                "SELECT * FROM t WHERE id = E'\\x'",
            ],
        ),
        (
            Postgres,
            &[
                "INSERT INTO \"Orders\" (a, b) VALUES (1, 'x')",
                "insert into \"Orders\"(a,b) values(2,'yy');",
                "INSERT  INTO \"Orders\" ( A , B ) VALUES ( 0x1F , B'101' )",
            ],
        ),
        (
            MySql,
            &[
                "SELECT a FROM `t` WHERE b = 'x' # c",
                "select A from `t` where B=\"y\"",
                "SELECT /*+ hint */ a FROM `t` WHERE b = 0x1F;",
            ],
        ),
    ];
    for (dialect, group) in groups {
        let first = fp(group[0], *dialect);
        for sql in *group {
            assert_eq!(fp(sql, *dialect), first, "{sql:?} vs {:?}", group[0]);
        }
    }
}

#[test]
fn fingerprint_distinguishes_shapes() {
    let distinct = [
        "SELECT * FROM t WHERE id = 1",
        "SELECT * FROM u WHERE id = 1",
        "SELECT * FROM t WHERE idx = 1",
        "SELECT * FROM t WHERE id = $1",
        "SELECT * FROM t WHERE id > 1",
        "SELECT a FROM t",
        "SELECT b FROM t",
        "SELECT a, b FROM t",
        "SELECT ab FROM t",
        "SELECT a b FROM t",
        "SELECT * FROM \"T\"",
        "SELECT * FROM \"t\"",
        "SELECT * FROM t; SELECT 1",
        "SELECT * FROM t WHERE id IN (1, 2)",
        "SELECT * FROM t WHERE id IN (1, 2, 3)",
    ];
    let mut seen = std::collections::HashMap::new();
    for sql in distinct {
        if let Some(other) = seen.insert(fp(sql, Postgres), sql) {
            panic!("{sql:?} and {other:?} share a fingerprint");
        }
    }
    // Quoted identifiers keep their case in MySQL too.
    assert_ne!(
        fp("SELECT `A` FROM t", MySql),
        fp("SELECT `a` FROM t", MySql)
    );
    assert_eq!(fp("SELECT A FROM t", MySql), fp("SELECT a FROM t", MySql));
}

#[test]
fn fingerprint_is_fnv1a_of_the_folded_text() {
    assert_eq!(fp("", Postgres), 0xcbf2_9ce4_8422_2325);
    // FNV-1a 64 test vectors: "a" and "foobar".
    assert_eq!(fp("a", Postgres), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fp("FOOBAR", Postgres), 0x8594_4171_f739_67e8);
    assert_eq!(fingerprint_hex(0x1f), "000000000000001f");
    assert_eq!(fingerprint_hex(0x8594_4171_f739_67e8), "85944171f73967e8");
}

#[test]
fn leading_keywords() {
    assert_eq!(leading_keyword("select 1").as_deref(), Some("SELECT"));
    assert_eq!(
        leading_keyword("  /* c /* nested */ */ -- x\n ((select 1) union (select 2))").as_deref(),
        Some("SELECT")
    );
    assert_eq!(
        leading_keyword("With x AS (SELECT 1) SELECT * FROM x").as_deref(),
        Some("WITH")
    );
    assert_eq!(
        leading_keyword("insert into t values (1)").as_deref(),
        Some("INSERT")
    );
    assert_eq!(
        leading_keyword("\tCOPY t FROM STDIN").as_deref(),
        Some("COPY")
    );
    assert_eq!(leading_keyword(""), None);
    assert_eq!(leading_keyword("  -- only a comment"), None);
    assert_eq!(leading_keyword("/* unterminated SELECT"), None);
    assert_eq!(leading_keyword("'select'"), None);
    assert_eq!(leading_keyword("\"select\" 1"), None);
    assert_eq!(leading_keyword("; SELECT 1"), None);
    assert_eq!(leading_keyword("1"), None);
    assert_eq!(leading_keyword("é"), None);
    // MySQL executable comments hold SQL; in PostgreSQL they are comments.
    let exec = "/*!40101 SET NAMES utf8mb4 */";
    assert_eq!(leading_keyword_for(exec, MySql).as_deref(), Some("SET"));
    assert_eq!(leading_keyword(exec), None);
    assert_eq!(
        leading_keyword_for("# c\nshow tables", MySql).as_deref(),
        Some("SHOW")
    );
}
