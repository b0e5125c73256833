//! The MySQL and MariaDB statements rotation sends.
//!
//! MariaDB writes statements to its general log as received, password
//! literals included (checked on 10.11: `ALTER USER … IDENTIFIED BY
//! 'x'` and `SET PASSWORD … = PASSWORD('x')` appear verbatim), so on
//! MariaDB the password goes as its `mysql_native_password` hash:
//! `SET PASSWORD = '*HASH'` for one's own account, `… IDENTIFIED BY
//! PASSWORD '*HASH'` for another's. MySQL 8 rewrites `IDENTIFIED BY
//! '…'` and `SET PASSWORD` in its general, slow and binary logs to the
//! stored hash (unless started with `--log-raw`), and its default plugin
//! (`caching_sha2_password`) hashes with a salt the server draws; so on
//! MySQL the clear-text form is sent and the account keeps its plugin.
//!
//! Account names are quoted with backticks (only a backtick is special
//! inside, whatever `sql_mode` says); arbitrary text in a condition goes
//! as a hex literal; no statement depends on `NO_BACKSLASH_ESCAPES` or
//! `ANSI_QUOTES`.

use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::plan::NameError;

/// Which server: they take different password statements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    MariaDb,
    Mysql,
}

impl Flavor {
    /// From the handshake's server version (`10.11.6-MariaDB-…`, or
    /// `5.5.5-10.…-MariaDB` from servers that pose as 5.5).
    pub fn of_version(version: &str) -> Self {
        if version.contains("MariaDB") {
            Flavor::MariaDb
        } else {
            Flavor::Mysql
        }
    }
}

/// `*` and the upper-case hex of SHA1(SHA1(password)): what
/// `mysql_native_password` stores and MariaDB's `PASSWORD()` returns.
/// Wiped on drop: with it and one observed login an attacker can log in.
pub fn native_password_hash(password: &str) -> Zeroizing<String> {
    let stage1 = Zeroizing::new(<[u8; 20]>::from(Sha1::digest(password.as_bytes())));
    let stage2: [u8; 20] = Sha1::digest(*stage1).into();
    Zeroizing::new(format!("*{}", hex::encode_upper(stage2)))
}

/// Why a password statement cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error(transparent)]
    Name(#[from] NameError),
    /// MySQL takes the clear text in a string literal, whose backslashes
    /// mean different things under different `sql_mode`s; generated
    /// passwords never have these characters.
    #[error("on MySQL the new password may not contain ', \\ or NUL")]
    PasswordNotQuotable,
}

/// `` `name` `` with inner backticks doubled.
pub fn quote_name(name: &str) -> Result<String, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.contains('\0') {
        return Err(NameError::Nul);
    }
    Ok(format!("`{}`", name.replace('`', "``")))
}

/// `` `user`@`host` ``.
pub fn account(user: &str, host: &str) -> Result<String, NameError> {
    Ok(format!("{}@{}", quote_name(user)?, quote_name(host)?))
}

/// `X'…'`: any bytes, with no escaping to get wrong.
pub fn hex_literal(text: &str) -> String {
    format!("X'{}'", hex::encode_upper(text))
}

fn clear_text(password: &str) -> Result<&str, StatementError> {
    if password.contains(['\'', '\\', '\0']) {
        return Err(StatementError::PasswordNotQuotable);
    }
    Ok(password)
}

/// Changes the password of the account the session logged in as: no
/// privilege needed. MariaDB: `SET PASSWORD = '*HASH'`; MySQL: `ALTER
/// USER CURRENT_USER() IDENTIFIED BY '…'`.
pub fn set_own_password(flavor: Flavor, new: &str) -> Result<Zeroizing<String>, StatementError> {
    Ok(Zeroizing::new(match flavor {
        Flavor::MariaDb => format!("SET PASSWORD = '{}'", native_password_hash(new).as_str()),
        Flavor::Mysql => format!(
            "ALTER USER CURRENT_USER() IDENTIFIED BY '{}'",
            clear_text(new)?
        ),
    }))
}

/// Sets another account's password and unlocks it (needs CREATE USER):
/// the last statement of a clone's setup, so a clone whose grants are
/// not all in cannot log in, and a retried setSecret finishes it.
pub fn set_password(
    flavor: Flavor,
    user: &str,
    host: &str,
    new: &str,
) -> Result<Zeroizing<String>, StatementError> {
    let account = account(user, host)?;
    Ok(Zeroizing::new(match flavor {
        Flavor::MariaDb => format!(
            "ALTER USER {account} IDENTIFIED BY PASSWORD '{}' ACCOUNT UNLOCK",
            native_password_hash(new).as_str()
        ),
        Flavor::Mysql => format!(
            "ALTER USER {account} IDENTIFIED BY '{}' ACCOUNT UNLOCK",
            clear_text(new)?
        ),
    }))
}

/// Creates an account, locked and without a password (needs CREATE
/// USER): [`set_password`] opens it once its grants are copied. Had it
/// a working password at once, a setSecret that failed while copying
/// grants would, on retry, find the pending login working and stop
/// there with grants missing.
pub fn create_locked_user(user: &str, host: &str) -> Result<String, NameError> {
    Ok(format!("CREATE USER {} ACCOUNT LOCK", account(user, host)?))
}

/// The host parts of `user`'s accounts, one per row (needs SELECT on
/// `mysql.user`).
pub fn hosts_of(user: &str) -> String {
    format!(
        "SELECT Host FROM mysql.user WHERE User = {}",
        hex_literal(user)
    )
}

/// `SHOW GRANTS FOR` the account.
pub fn show_grants(user: &str, host: &str) -> Result<String, NameError> {
    Ok(format!("SHOW GRANTS FOR {}", account(user, host)?))
}

/// What testSecret runs once logged in (the templates' check).
pub const TEST_QUERY: &str = "SELECT NOW()";

/// Run first on every rotation login: the server gives up on a lock wait
/// (and, on MariaDB, on any statement) itself, before the job's own
/// timeout (30 s) drops the connection. A dropped connection alone does
/// not stop a statement waiting on a lock: it would apply, unrecorded,
/// once the lock is let go. (MySQL's `max_execution_time` bounds only
/// `SELECT`.)
pub fn session_limits(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb => {
            "SET SESSION max_statement_time = 25, SESSION lock_wait_timeout = 25, SESSION innodb_lock_wait_timeout = 25"
        }
        Flavor::Mysql => {
            "SET SESSION lock_wait_timeout = 25, SESSION innodb_lock_wait_timeout = 25"
        }
    }
}

/// Why a `SHOW GRANTS` row is not copied. Never quotes the row, which can
/// hold the source account's password hash.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("a SHOW GRANTS row has a shape Latchkey does not copy: {0}")]
    Unrecognised(&'static str),
    #[error("a SHOW GRANTS row names another grantee than the account copied")]
    OtherGrantee,
}

/// One `SHOW GRANTS` row of `from` (user, host), rewritten for `to`:
/// the grantee after the row's top-level `TO` (`FROM` in a partial
/// `REVOKE`, `FOR` in MariaDB's `SET DEFAULT ROLE`) replaced by `to`'s
/// quoted account, and an `IDENTIFIED …` clause (MariaDB shows the
/// account's password hash there) dropped, so that replaying it grants
/// the same and never copies the password. Everything else is replayed
/// as the server wrote it (`WITH GRANT OPTION`, `REQUIRE`, limits).
pub fn copy_grant(row: &str, from: (&str, &str), to: (&str, &str)) -> Result<String, GrantError> {
    let toks = lex(row)?;
    let word = |i: usize, w: &str| {
        toks.get(i)
            .is_some_and(|t| t.kind == Kind::Word && t.text.eq_ignore_ascii_case(w))
    };
    let keyword = if word(0, "GRANT") {
        "TO"
    } else if word(0, "REVOKE") {
        "FROM"
    } else if word(0, "SET") && word(1, "DEFAULT") && word(2, "ROLE") {
        "FOR"
    } else {
        return Err(GrantError::Unrecognised(
            "not GRANT, REVOKE or SET DEFAULT ROLE",
        ));
    };
    let mut depth = 0i32;
    let mut at = None;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            Kind::Open => depth += 1,
            Kind::Close => depth -= 1,
            Kind::Word if depth == 0 && t.text.eq_ignore_ascii_case(keyword) => {
                at = Some(i);
                break;
            }
            _ => {}
        }
    }
    let k = at.ok_or(GrantError::Unrecognised("no grantee"))?;
    let name = |i: usize| {
        toks.get(i)
            .filter(|t| matches!(t.kind, Kind::Word | Kind::Quoted))
    };
    let (Some(user), Some(sep), Some(host)) = (name(k + 1), toks.get(k + 2), name(k + 3)) else {
        return Err(GrantError::Unrecognised("the grantee is not user@host"));
    };
    if sep.kind != Kind::At {
        return Err(GrantError::Unrecognised("the grantee is not user@host"));
    }
    let host_value = unquote(host);
    if unquote(user) != from.0 || !(host_value == from.1 || host_value.eq_ignore_ascii_case(from.1))
    {
        return Err(GrantError::OtherGrantee);
    }
    let rest = k + 4;
    if toks.get(rest).is_some_and(|t| t.kind == Kind::Comma) {
        return Err(GrantError::Unrecognised("several grantees"));
    }
    let (cut_start, cut_end) = if word(rest, "IDENTIFIED") {
        let end = toks[rest..]
            .iter()
            .find(|t| {
                t.kind == Kind::Word
                    && (t.text.eq_ignore_ascii_case("REQUIRE")
                        || t.text.eq_ignore_ascii_case("WITH"))
            })
            .map_or(row.len(), |t| t.start);
        (toks[rest].start, end)
    } else {
        (host.end, host.end)
    };
    let mut out = String::with_capacity(row.len() + to.0.len() + to.1.len());
    out.push_str(&row[..user.start]);
    out.push_str(&account(to.0, to.1)?);
    out.push_str(&row[host.end..cut_start]);
    out.push_str(&row[cut_end..]);
    Ok(out.trim_end().to_owned())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Word,
    Quoted,
    At,
    Comma,
    Open,
    Close,
}

struct Tok<'a> {
    kind: Kind,
    start: usize,
    end: usize,
    text: &'a str,
}

/// Splits a row into words, quoted names and strings, and the
/// punctuation that shapes a grantee. Byte-wise: every delimiter is
/// ASCII, so no UTF-8 sequence is split.
fn lex(row: &str) -> Result<Vec<Tok<'_>>, GrantError> {
    let b = row.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'`' | b'\'' | b'"' => {
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None => return Err(GrantError::Unrecognised("an unterminated quote")),
                        Some(&q) if q == c && b.get(j + 1) == Some(&c) => j += 2,
                        Some(&q) if q == c => break,
                        Some(b'\\') if c != b'`' => j += 2,
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
                Kind::Quoted
            }
            b'@' | b',' | b'(' | b')' => {
                i += 1;
                match c {
                    b'@' => Kind::At,
                    b',' => Kind::Comma,
                    b'(' => Kind::Open,
                    _ => Kind::Close,
                }
            }
            _ => {
                while i < b.len() && !b[i].is_ascii_whitespace() && !b"`'\"@,()".contains(&b[i]) {
                    i += 1;
                }
                Kind::Word
            }
        };
        toks.push(Tok {
            kind,
            start,
            end: i,
            text: &row[start..i],
        });
    }
    Ok(toks)
}

/// A name token's value: quotes removed, doubled quotes and (in `'` and
/// `"` strings) backslash escapes undone.
fn unquote(t: &Tok<'_>) -> String {
    if t.kind != Kind::Quoted {
        return t.text.to_owned();
    }
    let q = t.text.chars().next().unwrap_or('`');
    let inner = &t.text[1..t.text.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == q {
            // Doubled: one quote.
            chars.next();
            out.push(q);
        } else if c == '\\' && q != '`' {
            match chars.next() {
                Some('0') => out.push('\0'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('b') => out.push('\u{8}'),
                Some('Z') => out.push('\u{1a}'),
                Some(e @ ('%' | '_')) => {
                    out.push('\\');
                    out.push(e);
                }
                Some(e) => out.push(e),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_hash_matches_mariadb() {
        // SELECT PASSWORD('x') on MariaDB 10.11.
        assert_eq!(
            native_password_hash("x").as_str(),
            "*B69027D44F6E5EDC07F1AEAD1477967B16F28227"
        );
        // The known value every MySQL manual shows for 'mypass'.
        assert_eq!(
            native_password_hash("mypass").as_str(),
            "*6C8989366EAF75BB670AD8EA7A7FC1176A95CEF4"
        );
    }

    #[test]
    fn flavors() {
        assert_eq!(
            Flavor::of_version("10.11.19-MariaDB-0+deb12u1"),
            Flavor::MariaDb
        );
        assert_eq!(
            Flavor::of_version("5.5.5-10.6.12-MariaDB-log"),
            Flavor::MariaDb
        );
        assert_eq!(Flavor::of_version("8.0.36"), Flavor::Mysql);
    }

    #[test]
    fn password_statements() {
        let hash = native_password_hash("n3w");
        assert_eq!(
            set_own_password(Flavor::MariaDb, "n3w").unwrap().as_str(),
            format!("SET PASSWORD = '{}'", hash.as_str())
        );
        assert_eq!(
            set_own_password(Flavor::Mysql, "n3w").unwrap().as_str(),
            "ALTER USER CURRENT_USER() IDENTIFIED BY 'n3w'"
        );
        assert_eq!(
            set_password(Flavor::MariaDb, "we\"ird'user", "%", "n3w")
                .unwrap()
                .as_str(),
            format!(
                "ALTER USER `we\"ird'user`@`%` IDENTIFIED BY PASSWORD '{}' ACCOUNT UNLOCK",
                hash.as_str()
            )
        );
        assert_eq!(
            set_password(Flavor::Mysql, "u", "%", "n3w")
                .unwrap()
                .as_str(),
            "ALTER USER `u`@`%` IDENTIFIED BY 'n3w' ACCOUNT UNLOCK"
        );
        assert_eq!(
            create_locked_user("a`b", "10.0.0.%").unwrap(),
            "CREATE USER `a``b`@`10.0.0.%` ACCOUNT LOCK"
        );
        for bad in ["it's", "back\\slash"] {
            assert_eq!(
                set_password(Flavor::Mysql, "u", "%", bad),
                Err(StatementError::PasswordNotQuotable)
            );
            // MariaDB gets only the hash, so any password goes.
            assert!(set_password(Flavor::MariaDb, "u", "%", bad).is_ok());
        }
        assert_eq!(
            set_password(Flavor::MariaDb, "u\0", "%", "x"),
            Err(StatementError::Name(NameError::Nul))
        );
        assert_eq!(
            hosts_of("o'k"),
            "SELECT Host FROM mysql.user WHERE User = X'6F276B'"
        );
        assert_eq!(
            show_grants("we\"ird'user", "%").unwrap(),
            "SHOW GRANTS FOR `we\"ird'user`@`%`"
        );
    }

    const FROM: (&str, &str) = ("app", "%");
    const TO: (&str, &str) = ("app_clone", "%");

    #[test]
    fn copies_grants_to_the_clone() {
        let cases = [
            // MariaDB shows the password hash on the USAGE row.
            (
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*3C9B62479902523B8B194E43935A9BFA65478A9E'",
                "GRANT USAGE ON *.* TO `app_clone`@`%`",
            ),
            (
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED VIA ed25519 USING 'abc' REQUIRE SSL WITH MAX_QUERIES_PER_HOUR 5",
                "GRANT USAGE ON *.* TO `app_clone`@`%` REQUIRE SSL WITH MAX_QUERIES_PER_HOUR 5",
            ),
            (
                "GRANT SELECT, INSERT ON `orders`.* TO `app`@`%` WITH GRANT OPTION",
                "GRANT SELECT, INSERT ON `orders`.* TO `app_clone`@`%` WITH GRANT OPTION",
            ),
            // Column lists, names that look like keywords, MySQL 5.7 quoting.
            (
                "GRANT SELECT (`to`, `id`), UPDATE (`to`) ON `to`.`t` TO 'app'@'%'",
                "GRANT SELECT (`to`, `id`), UPDATE (`to`) ON `to`.`t` TO `app_clone`@`%`",
            ),
            (
                "GRANT `reader` TO `app`@`%` WITH ADMIN OPTION",
                "GRANT `reader` TO `app_clone`@`%` WITH ADMIN OPTION",
            ),
            (
                "GRANT PROXY ON ''@'%' TO 'app'@'%'",
                "GRANT PROXY ON ''@'%' TO `app_clone`@`%`",
            ),
            (
                "SET DEFAULT ROLE `reader` FOR `app`@`%`",
                "SET DEFAULT ROLE `reader` FOR `app_clone`@`%`",
            ),
            (
                "REVOKE INSERT ON `mysql`.* FROM `app`@`%`",
                "REVOKE INSERT ON `mysql`.* FROM `app_clone`@`%`",
            ),
            (
                "GRANT EXECUTE ON PROCEDURE `db`.`p` TO `app`@`%`",
                "GRANT EXECUTE ON PROCEDURE `db`.`p` TO `app_clone`@`%`",
            ),
        ];
        for (row, want) in cases {
            assert_eq!(copy_grant(row, FROM, TO).unwrap(), want, "{row}");
        }
    }

    #[test]
    fn hostile_names_are_matched_and_quoted() {
        let from = ("we\"ird'user", "%");
        let to = ("we\"ird'user_clone", "%");
        assert_eq!(
            copy_grant("GRANT SELECT ON `orders`.* TO `we\"ird'user`@`%`", from, to).unwrap(),
            "GRANT SELECT ON `orders`.* TO `we\"ird'user_clone`@`%`"
        );
        // The same name as MySQL 5.7 wrote it, with backslash escapes.
        assert_eq!(
            copy_grant(
                "GRANT SELECT ON `orders`.* TO 'we\"ird\\'user'@'%'",
                from,
                to
            )
            .unwrap(),
            "GRANT SELECT ON `orders`.* TO `we\"ird'user_clone`@`%`"
        );
        // A clone name that tries to close the quote stays one name.
        let evil = ("x`@`%` IDENTIFIED BY 'p', `root", "%");
        assert_eq!(
            copy_grant("GRANT USAGE ON *.* TO `app`@`%`", FROM, evil).unwrap(),
            "GRANT USAGE ON *.* TO `x``@``%`` IDENTIFIED BY 'p', ``root`@`%`"
        );
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for (row, want) in [
            (
                "GRANT SELECT ON `db`.* TO `other`@`%`",
                GrantError::OtherGrantee,
            ),
            (
                "GRANT SELECT ON `db`.* TO `app`@`localhost`",
                GrantError::OtherGrantee,
            ),
            (
                "CREATE USER `app`@`%`",
                GrantError::Unrecognised("not GRANT, REVOKE or SET DEFAULT ROLE"),
            ),
            (
                "GRANT SELECT ON `db`.* TO `app`",
                GrantError::Unrecognised("the grantee is not user@host"),
            ),
            (
                "GRANT SELECT ON `db`.* TO `app`@`%`, `b`@`%`",
                GrantError::Unrecognised("several grantees"),
            ),
            (
                "GRANT SELECT ON `db`.* TO `app`@`%",
                GrantError::Unrecognised("an unterminated quote"),
            ),
            ("GRANT ALL", GrantError::Unrecognised("no grantee")),
        ] {
            let err = copy_grant(row, FROM, TO).unwrap_err();
            assert_eq!(err, want, "{row}");
        }
        // The error never quotes the row (it may hold a password hash).
        let err = copy_grant(
            "GRANT USAGE ON *.* TO `zed`@`%` IDENTIFIED BY PASSWORD '*SECRET'",
            FROM,
            TO,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("SECRET"));
    }

    proptest::proptest! {
        /// Whatever the names, the copy names exactly the clone account
        /// once and keeps the privileges part.
        #[test]
        fn any_names(user in "[^\\x00]{1,20}", host in "[^\\x00]{1,10}", clone in "[^\\x00]{1,20}") {
            let row = format!(
                "GRANT SELECT ON `db`.* TO {} IDENTIFIED BY PASSWORD '*AB'",
                account(&user, &host).unwrap()
            );
            let copied = copy_grant(&row, (&user, &host), (&clone, &host)).unwrap();
            proptest::prop_assert_eq!(
                copied,
                format!("GRANT SELECT ON `db`.* TO {}", account(&clone, &host).unwrap())
            );
        }
    }
}
