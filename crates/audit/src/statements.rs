//! A session's statements, normalised and shared rather than allocated per
//! execution.

use std::sync::Arc;

use latchkey_sqlnorm::{Dialect, Reading, normalize_read_into, readings_agree};

use crate::Statement;

/// Statements and command tags a session produced last. Applications run
/// a handful of statement shapes over and over (`SELECT ... WHERE id = ?`)
/// and get the same few tags back (`SELECT 1`), so auditing a statement
/// usually allocates nothing: the normalised text goes into a buffer that
/// is reused, and a statement seen recently is shared by reference count.
/// The record of a statement the gateway does not know, shared by every
/// session rather than made for each.
static UNKNOWN: std::sync::LazyLock<Arc<Statement>> = std::sync::LazyLock::new(|| {
    Arc::new(Statement {
        text: "(statement not known to the gateway)".into(),
        fingerprint: 0,
        truncated: true,
    })
});

pub struct StatementCache {
    dialect: Dialect,
    /// How the server reads the session's SQL now (see
    /// [`StatementCache::set_reading`]).
    reading: Reading,
    /// Record statements as sent, literals and all.
    keep_literals: bool,
    statements: Recent<Arc<Statement>>,
    tags: Recent<Arc<str>>,
    unknown: Arc<Statement>,
    /// Reused: each statement's normalised text, each tag being formatted.
    scratch: String,
}

impl StatementCache {
    pub fn new(dialect: Dialect, keep_literals: bool) -> Self {
        Self {
            dialect,
            reading: Reading::Default,
            keep_literals,
            statements: Recent::default(),
            tags: Recent::default(),
            unknown: UNKNOWN.clone(),
            scratch: String::new(),
        }
    }

    /// `sql` as the audit records it: normalised with its literals
    /// redacted unless they are kept. `complete` is false when `sql` is
    /// only the start of a longer statement.
    pub fn statement(&mut self, sql: &str, complete: bool) -> Arc<Statement> {
        let shape = normalize_read_into(sql, self.dialect, self.reading, &mut self.scratch);
        if !self.keep_literals {
            self.other_readings(sql);
        }
        let text = if self.keep_literals {
            sql
        } else {
            self.scratch.as_str()
        };
        let truncated = shape.truncated || !complete;
        self.statements.find_or_add(
            |s| s.fingerprint == shape.fingerprint && s.truncated == truncated && s.text == text,
            || Statement {
                text: text.to_owned(),
                fingerprint: shape.fingerprint,
                truncated,
            },
        )
    }

    /// MySQL reads SQL under modes the gateway cannot always know:
    /// `ANSI_QUOTES`, which the server never reports, makes `"a\"` an
    /// identifier where it is otherwise the start of a string, and a
    /// `SET sql_mode` early in a message (or an `EXECUTE` of a statement
    /// that sets it) changes how its later statements read backslashes
    /// (MySQL reads a message statement by statement). Where another
    /// reading would split `sql` otherwise (it holds a backslash, and a
    /// double quote or a `;`), the record says what
    /// that reading would be, or a statement hidden in what one reading
    /// takes for a string would be missing from the audit's text.
    fn other_readings(&mut self, sql: &str) {
        if self.dialect != Dialect::MySql || !sql.contains('\\') {
            return;
        }
        // A mode set earlier in the message, by `SET sql_mode` or by a
        // statement prepared earlier and executed here: any message of
        // several statements may.
        let mode_set = sql.contains(';');
        let (other_backslash, other_name) = match self.reading {
            Reading::Default => (Reading::OtherBackslash, "NO_BACKSLASH_ESCAPES"),
            _ => (Reading::Default, "backslash escapes"),
        };
        let ansi = self.reading == Reading::Default && sql.contains('"');
        for (applies, reading, name) in [
            (ansi, Reading::AnsiQuotes, "ANSI_QUOTES"),
            (mode_set, other_backslash, other_name),
        ] {
            if !applies || readings_agree(sql, self.dialect, self.reading, reading) {
                continue;
            }
            let mut other = String::new();
            normalize_read_into(sql, self.dialect, reading, &mut other);
            self.scratch.push_str(" /* under ");
            self.scratch.push_str(name);
            self.scratch.push_str(": ");
            // What the comment holds cannot end it.
            self.scratch.push_str(&other.replace("*/", "* /"));
            self.scratch.push_str(" */");
        }
    }

    /// The session's settings changed how the server reads backslashes
    /// in strings (PostgreSQL's `standard_conforming_strings`, MySQL's
    /// `NO_BACKSLASH_ESCAPES`): statements are normalised as it reads
    /// them, or a statement hidden in what one reading takes for a string
    /// would be missing from the audit's text.
    pub fn set_reading(&mut self, reading: Reading) {
        self.reading = reading;
    }

    /// A statement the gateway did not see (an `Execute` of a portal it
    /// never saw bound, a query it could not decode).
    pub fn unknown(&self) -> Arc<Statement> {
        self.unknown.clone()
    }

    /// A command tag (`SELECT 1`, `INSERT 0 5`).
    pub fn tag(&mut self, tag: &str) -> Arc<str> {
        self.tags.find_or_add(|t| &**t == tag, || tag)
    }

    /// The command tag `VERB ROWS` (`SELECT 5`), for servers that report
    /// the row count alone (MySQL).
    pub fn tag_with_rows(&mut self, verb: &str, rows: u64) -> Arc<str> {
        let mut tag = std::mem::take(&mut self.scratch);
        tag.clear();
        tag.push_str(verb);
        tag.push(' ');
        tag.push_str(itoa::Buffer::new().format(rows));
        let shared = self.tag(&tag);
        self.scratch = tag;
        shared
    }
}

/// A few values, the least recently added replaced first.
struct Recent<T> {
    slots: [Option<T>; RECENT],
    next: usize,
}

/// Enough for an application's working set of statement shapes within
/// one session, few enough that a miss costs little to find out.
const RECENT: usize = 8;

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| None),
            next: 0,
        }
    }
}

impl<T: Clone> Recent<T> {
    fn find_or_add<V: Into<T>>(
        &mut self,
        matches: impl Fn(&T) -> bool,
        make: impl FnOnce() -> V,
    ) -> T {
        if let Some(hit) = self.slots.iter().flatten().find(|v| matches(v)) {
            return hit.clone();
        }
        let value: T = make().into();
        self.slots[self.next] = Some(value.clone());
        self.next = (self.next + 1) % RECENT;
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_statements_are_shared() {
        let mut cache = StatementCache::new(Dialect::Postgres, false);
        let a = cache.statement("SELECT abalance FROM t WHERE aid = 1;", true);
        let b = cache.statement("select abalance from t where aid = 2", true);
        let c = cache.statement("SELECT abalance FROM t WHERE aid = 3", true);
        assert_eq!(a.text, "SELECT abalance FROM t WHERE aid = ?");
        // Same fingerprint, other text: recorded as written.
        assert_eq!(b.text, "select abalance from t where aid = ?");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&a, &c));
        // Cut short: another statement, marked so.
        let d = cache.statement("SELECT abalance FROM t WHERE aid = 4", false);
        assert!(d.truncated && !Arc::ptr_eq(&a, &d));
    }

    #[test]
    fn literals_kept_only_when_asked() {
        let mut redacting = StatementCache::new(Dialect::MySql, false);
        let mut keeping = StatementCache::new(Dialect::MySql, true);
        let sql = "UPDATE users SET password_hash = 'secret' WHERE id = 7";
        assert_eq!(
            redacting.statement(sql, true).text,
            "UPDATE users SET password_hash = ? WHERE id = ?"
        );
        let kept = keeping.statement(sql, true);
        assert_eq!(kept.text, sql);
        assert_eq!(kept.fingerprint, redacting.statement(sql, true).fingerprint);
        let other = keeping.statement("UPDATE users SET password_hash = 'x' WHERE id = 8", true);
        assert_eq!(other.fingerprint, kept.fingerprint);
        assert!(!Arc::ptr_eq(&kept, &other));
    }

    #[test]
    fn mysql_sql_another_mode_reads_otherwise_says_both() {
        let mut cache = StatementCache::new(Dialect::MySql, false);
        let hiding = "SELECT \"a\\\"; DELETE FROM victim; SELECT \"";
        let text = cache.statement(hiding, true).text.clone();
        assert!(
            text.starts_with("SELECT ? /* under ANSI_QUOTES: ")
                && text.contains("DELETE FROM victim"),
            "{text}"
        );
        // Alike under both: as it is.
        let plain = "SELECT \"x\" FROM t WHERE a = 'b\\'c'";
        assert!(!cache.statement(plain, true).text.contains("ANSI_QUOTES"));
        // Under NO_BACKSLASH_ESCAPES a double quote ends where it does
        // with ANSI_QUOTES.
        cache.set_reading(Reading::OtherBackslash);
        assert!(!cache.statement(hiding, true).text.contains("ANSI_QUOTES"));
        // A message that sets sql_mode before what it hides, or executes
        // a statement that does.
        cache.set_reading(Reading::Default);
        let text = cache
            .statement(
                "EXECUTE sm; SELECT 'a\\'; DELETE FROM victim; SELECT '",
                true,
            )
            .text
            .clone();
        assert!(text.contains("DELETE FROM victim"), "{text}");
        let text = cache
            .statement(
                "SET sql_mode='NO_BACKSLASH_ESCAPES'; SELECT 'a\\'; DELETE FROM victim; SELECT '",
                true,
            )
            .text
            .clone();
        assert!(
            text.contains("/* under NO_BACKSLASH_ESCAPES: ") && text.contains("DELETE FROM victim"),
            "{text}"
        );
    }

    #[test]
    fn the_oldest_entry_makes_room() {
        let mut cache = StatementCache::new(Dialect::Postgres, false);
        let first = cache.statement("SELECT * FROM t0", true);
        for i in 1..RECENT {
            cache.statement(&format!("SELECT * FROM t{i}"), true);
        }
        assert!(Arc::ptr_eq(
            &first,
            &cache.statement("SELECT * FROM t0", true)
        ));
        cache.statement("SELECT * FROM another", true);
        assert!(!Arc::ptr_eq(
            &first,
            &cache.statement("SELECT * FROM t0", true)
        ));
        let tag = cache.tag("SELECT 1");
        assert!(Arc::ptr_eq(&tag, &cache.tag("SELECT 1")));
        assert!(Arc::ptr_eq(&tag, &cache.tag_with_rows("SELECT", 1)));
        assert_eq!(&*cache.tag("INSERT 0 5"), "INSERT 0 5");
    }
}
