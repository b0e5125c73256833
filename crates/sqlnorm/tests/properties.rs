//! Properties: normalize never panics, never grows its input, and never
//! lets any part of a literal through.

use latchkey_sqlnorm::{
    Dialect, Shape, leading_keyword, leading_keyword_for, normalize, normalize_into,
};
use proptest::prelude::*;

const DIALECTS: [Dialect; 2] = [Dialect::Postgres, Dialect::MySql];

/// Characters a secret may hold: printable ASCII (quotes, backslashes, `$`,
/// `*`, `/`, `-`, `#` included), some non-ASCII and line breaks.
const SECRET: &str = "[ -~éß€😀\n\t]{4,40}";

/// Strings dense in the characters that open and close constructs.
const SQLISH: &str = "[-'\"`$/*#!\\\\eEuUxXbBnN_&01.9aZ;() \n\r\té]{0,80}";

fn check_invariants(sql: &str) {
    // A reused buffer holding another statement's text.
    let mut reused = String::from("SELECT leftover FROM an_earlier_statement");
    for dialect in DIALECTS {
        let n = normalize(sql, dialect);
        let shape = normalize_into(sql, dialect, &mut reused);
        assert_eq!(reused, n.text, "{dialect:?} {sql:?}");
        assert_eq!(
            shape,
            Shape {
                fingerprint: n.fingerprint,
                truncated: n.truncated
            }
        );
        assert!(
            n.text.len() <= sql.len(),
            "{dialect:?} {sql:?} grew to {:?}",
            n.text
        );
        assert_eq!(n.text.trim_ascii(), n.text, "{dialect:?} {sql:?}");
        assert!(!n.text.ends_with(';'), "{dialect:?} {sql:?}");
        let _ = leading_keyword_for(sql, dialect);
    }
    let _ = leading_keyword(sql);
}

/// Asserts `text` is exactly `expected` and holds no 4-character run of
/// `secret` that `expected` does not hold itself.
fn assert_redacted(text: &str, expected: &str, secret: &str, sql: &str) {
    let chars: Vec<char> = secret.chars().collect();
    for window in chars.windows(4) {
        let run: String = window.iter().collect();
        assert!(
            expected.contains(&run) || !text.contains(&run),
            "{run:?} of {secret:?} leaked: {sql:?} -> {text:?}"
        );
    }
    assert_eq!(text, expected, "{sql:?}");
}

fn single_quoted(secret: &str, backslash: bool, doubled: bool) -> String {
    let mut s = String::from("'");
    for c in secret.chars() {
        match c {
            '\'' if doubled => s.push_str("''"),
            '\'' | '\\' if backslash => {
                s.push('\\');
                s.push(c);
            }
            '\'' => s.push_str("''"),
            _ => s.push(c),
        }
    }
    s.push('\'');
    s
}

fn mysql_quoted(secret: &str, q: char, doubled: bool) -> String {
    let mut s = String::from(q);
    for c in secret.chars() {
        if c == q && doubled {
            s.push(q);
        } else if c == q || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push(q);
    s
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,18}",
        "[0-9]{1,8}\\.[0-9]{0,8}",
        "\\.[0-9]{1,10}",
        "[0-9]{1,6}(\\.[0-9]{1,4})?[eE][-+]?[0-9]{1,3}",
        "0[xX][0-9a-fA-F]{1,16}",
    ]
}

const SKELETON: &str = "SELECT * FROM t WHERE a = ? AND b = ?";

fn statement(first: &str, second: &str) -> String {
    format!("SELECT * FROM t WHERE a = {first} AND b = {second}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_any_string(sql in any::<String>()) {
        check_invariants(&sql);
    }

    #[test]
    fn never_panics_on_sqlish_strings(sql in SQLISH) {
        check_invariants(&sql);
    }

    /// Whatever follows an opened construct is either redacted or lexed as
    /// SQL; in particular an unterminated one never shows its content.
    #[test]
    fn unterminated_tails_are_redacted(
        open in prop_oneof![Just("'"), Just("E'"), Just("$$"), Just("$z$"), Just("/*"), Just("\"")],
        tail in "[a-z ]{0,10}QQQQ[a-z ]{0,10}",
    ) {
        let sql = format!("SELECT {open}{tail}");
        let n = normalize(&sql, Dialect::Postgres);
        prop_assert!(n.truncated);
        prop_assert!(!n.text.contains("QQQQ"), "{:?} -> {:?}", sql, n.text);
    }

    /// The text lexes as what it says: normalizing it again changes
    /// nothing. (One exception: MySQL text ending in `--`, from input ending
    /// in a dangling operator and a comment, reads back as a comment.)
    #[test]
    fn normalize_is_idempotent(sql in SQLISH) {
        for dialect in DIALECTS {
            let once = normalize(&sql, dialect);
            if dialect == Dialect::MySql && once.text.ends_with("--") {
                continue;
            }
            let twice = normalize(&once.text, dialect);
            prop_assert_eq!(&twice.text, &once.text, "{:?} {:?}", dialect, sql);
            prop_assert_eq!(twice.fingerprint, once.fingerprint);
        }
    }

    #[test]
    fn postgres_strings_are_redacted(
        secret in SECRET,
        other in SECRET,
        doubled in any::<bool>(),
    ) {
        // Standard strings ('' escapes) and E'' strings (\ escapes or '').
        let plain = single_quoted(&secret, false, true);
        let escaped = format!("E{}", single_quoted(&other, true, doubled));
        for sql in [statement(&plain, &escaped), statement(&escaped, &plain)] {
            let n = normalize(&sql, Dialect::Postgres);
            prop_assert!(!n.truncated);
            assert_redacted(&n.text, SKELETON, &secret, &sql);
            assert_redacted(&n.text, SKELETON, &other, &sql);
        }
    }

    #[test]
    fn postgres_dollar_quotes_are_redacted(secret in SECRET, tag in "([a-zA-Z_][a-zA-Z0-9_]{0,4})?") {
        let delimiter = format!("${tag}$");
        // A body must not close early: the delimiter first occurs at its end.
        let body = format!("{secret}{delimiter}");
        prop_assume!(body.find(&delimiter) == Some(secret.len()));
        let sql = statement(&format!("{delimiter}{secret}{delimiter}"), "$1");
        let n = normalize(&sql, Dialect::Postgres);
        prop_assert!(!n.truncated);
        assert_redacted(&n.text, "SELECT * FROM t WHERE a = ? AND b = $1", &secret, &sql);
    }

    #[test]
    fn mysql_strings_are_redacted(
        secret in SECRET,
        other in SECRET,
        doubled in any::<bool>(),
        introducer in prop_oneof![Just(""), Just("_utf8mb4"), Just("N"), Just("_binary")],
    ) {
        let single = format!("{introducer}{}", mysql_quoted(&secret, '\'', doubled));
        let double = mysql_quoted(&other, '"', !doubled);
        for sql in [statement(&single, &double), statement(&double, &single)] {
            let n = normalize(&sql, Dialect::MySql);
            prop_assert!(!n.truncated);
            assert_redacted(&n.text, SKELETON, &secret, &sql);
            assert_redacted(&n.text, SKELETON, &other, &sql);
        }
    }

    #[test]
    fn numbers_are_redacted(a in number(), b in number(), neg in any::<bool>()) {
        let b = if neg { format!("-{b}") } else { b };
        let expected = if neg { "SELECT * FROM t WHERE a = ? AND b = -?" } else { SKELETON };
        let sql = statement(&a, &b);
        for dialect in DIALECTS {
            let n = normalize(&sql, dialect);
            prop_assert_eq!(&n.text, expected, "{:?} {:?}", dialect, sql);
            prop_assert!(!n.text.bytes().any(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn postgres_underscored_numbers_are_redacted(n in "[1-9][0-9]{0,2}(_[0-9]{3}){1,4}(\\.[0-9]{1,3}(_[0-9]{3})?)?") {
        let sql = statement(&n, "1");
        prop_assert_eq!(normalize(&sql, Dialect::Postgres).text, SKELETON, "{:?}", sql);
    }

    #[test]
    fn comments_are_removed(secret in "[ -~]{4,40}") {
        let line = secret.replace(['\n', '\r'], " ");
        let block = secret.replace("*/", "* /").replace("/*", "/ *");
        for (dialect, sql) in [
            (Dialect::Postgres, format!("SELECT 1 -- {line}\nFROM t /* {block} */")),
            (Dialect::MySql, format!("SELECT 1 # {line}\nFROM t /* {block} */ -- {line}")),
        ] {
            let n = normalize(&sql, dialect);
            prop_assert!(!n.truncated);
            prop_assert_eq!(&n.text, "SELECT ? FROM t", "{:?}", sql);
        }
    }

    /// Statements differing only in literal values, spacing, comments and
    /// keyword case share a fingerprint.
    #[test]
    fn fingerprint_ignores_values(
        s1 in SECRET, s2 in SECRET, n1 in number(), n2 in number(),
        space in "[ \t\n]{1,3}", upper in any::<bool>(),
    ) {
        let select = if upper { "SELECT" } else { "select" };
        let a = format!("SELECT a FROM t WHERE x = {} AND y = {n1}", single_quoted(&s1, false, true));
        let b = format!(
            "{select}{space}a /* c */ FROM{space}t WHERE x={} AND y ={space}{n2} ;",
            single_quoted(&s2, false, true)
        );
        let (na, nb) = (normalize(&a, Dialect::Postgres), normalize(&b, Dialect::Postgres));
        prop_assert_eq!(na.fingerprint, nb.fingerprint, "{:?} vs {:?}", na.text, nb.text);
    }
}
