//! SQL statements made fit for an audit log, as a pure library.
//!
//! The gateways log every statement a principal runs. The statement text
//! itself is what an auditor needs, but its literals are not: a `WHERE
//! password_hash = '...'`, an `INSERT` of card numbers or an `ALTER ROLE ...
//! PASSWORD '...'` would copy secrets into the log. [`normalize`] replaces
//! every literal (strings, numbers, bit strings, dollar-quoted bodies) with
//! `?`, drops comments and collapses whitespace, and fails closed: input that
//! ends inside a string, quoted identifier, dollar quote or comment has its
//! whole remainder redacted.
//!
//! [`Normalized::fingerprint`] hashes a case- and spacing-insensitive form of
//! the normalized text, so every execution of one statement shape (the same
//! query with other values, other spacing, other comments, other keyword
//! case) shares a fingerprint: the log can group, count and rate-limit by it.
//! [`leading_keyword`] classifies a statement (`SELECT`, `INSERT`, ...).
//!
//! Everything is one linear pass over the input with one allocation (the
//! output), no regular expressions, and no panics on any input.
//!
//! Lexical assumptions, where the servers depend on session settings:
//! PostgreSQL with `standard_conforming_strings = on` (the default since 9.1:
//! a backslash is ordinary in `'...'`, special in `E'...'`); MySQL without
//! `ANSI_QUOTES` (`"..."` is a string) and without `NO_BACKSLASH_ESCAPES`.
//! A session with other settings can make a literal's end fall elsewhere
//! than the lexer thinks, so the gateway should normalize with the dialect
//! and settings the server actually uses.
//!
//! Deliberate simplifications:
//! - MySQL `/*!NNNNN ... */` (and MariaDB `/*M!NNNNNN ... */`) executable
//!   comments keep their content as SQL, whatever the version number; only
//!   the markers go. Optimizer hints `/*+ ... */` are removed as comments.
//! - A number runs as far as it looks numeric and the rest is a new token:
//!   `1abc` (a MySQL identifier, PostgreSQL "trailing junk") gives `?abc`.
//! - `IN (?, ?, ?)` lists and `VALUES` rows are not collapsed; adjacent
//!   PostgreSQL strings (`'a'\n'b'`, one literal there) give `? ?`.
//! - Every ASCII control character counts as whitespace; every trailing `;`
//!   is removed, not just the last.

mod lex;

use lex::{Lexer, Tok};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
}

/// A statement ready for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    /// The statement with every literal replaced by `?`, comments removed,
    /// whitespace runs collapsed to one space, trimmed, and a trailing `;`
    /// removed. Keywords and identifiers keep their case as written.
    pub text: String,
    /// 64-bit FNV-1a of a case-folded form of `text` (ASCII
    /// keywords/identifiers lowercased, quoted identifiers kept as written),
    /// so `SELECT * FROM t WHERE id = 1` and `select *  from t where id=2`
    /// share a fingerprint. Spaces count only between two word-like
    /// characters (letters, digits, `_`, `$`, `?`, quotes, non-ASCII), so
    /// `id = ?` and `id=?` hash alike while `a b` and `ab` do not.
    pub fingerprint: u64,
    /// True when the input ended inside a string, quoted identifier, dollar
    /// quote or block comment; the rest of the input is then redacted
    /// entirely (fail closed: never leak a literal).
    pub truncated: bool,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(hash: u64, byte: u8) -> u64 {
    (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
}

/// Characters between which a space is significant to the fingerprint.
fn wordish(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'?' | b'"' | b'`' | b'\'') || c >= 0x80
}

/// The output text and its running fingerprint.
struct Out {
    text: String,
    mysql: bool,
    hash: u64,
    /// Whitespace or a comment was seen since the last token.
    pending_space: bool,
    /// The last byte written was [`wordish`].
    last_wordish: bool,
    /// Text length and hash before the current run of trailing `;`s (and
    /// the space before them), to drop them if nothing follows.
    before_semis: Option<(usize, u64)>,
}

impl Out {
    #[inline]
    fn space_before(&mut self, first: u8) {
        // In MySQL `-- ` starts a comment where `--` did not (`a--/**/ b`
        // is `a - - b`): keep the text saying what the input said.
        if self.pending_space && !self.text.is_empty() && !(self.mysql && self.text.ends_with("--"))
        {
            self.text.push(' ');
            if self.last_wordish && wordish(first) {
                self.hash = fnv(self.hash, b' ');
            }
        }
        self.pending_space = false;
    }

    /// Writes one ASCII byte (a `?`, an operator).
    #[inline]
    fn push_ascii(&mut self, c: u8) {
        debug_assert!(c.is_ascii());
        self.space_before(c);
        self.text.push(char::from(c));
        self.hash = fnv(self.hash, c);
        self.last_wordish = wordish(c);
    }

    #[inline]
    fn push(&mut self, s: &str, fold: bool) {
        let bytes = s.as_bytes();
        let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
            return;
        };
        self.space_before(first);
        self.text.push_str(s);
        for &c in bytes {
            self.hash = fnv(self.hash, if fold { c.to_ascii_lowercase() } else { c });
        }
        self.last_wordish = wordish(last);
    }
}

/// Normalizes one statement (or several separated by `;`) for the audit log.
/// See [`Normalized`] for what is done.
pub fn normalize(sql: &str, dialect: Dialect) -> Normalized {
    // Every token's output is no longer than its input, so this is the only
    // allocation.
    let mut text = String::with_capacity(sql.len());
    let Shape {
        fingerprint,
        truncated,
    } = normalize_into(sql, dialect, &mut text);
    Normalized {
        text,
        fingerprint,
        truncated,
    }
}

/// [`Normalized`] without its text, which [`normalize_into`] leaves in the
/// caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub fingerprint: u64,
    pub truncated: bool,
}

/// [`normalize`] into a buffer the caller reuses (it is cleared first), so
/// that a statement already seen costs no allocation.
pub fn normalize_into(sql: &str, dialect: Dialect, text: &mut String) -> Shape {
    normalize_read_into(sql, dialect, Reading::Default, text)
}

/// [`normalize_into`] under another [`Reading`]: as the server reads the
/// SQL under the session's settings (`standard_conforming_strings = off`,
/// MySQL's `NO_BACKSLASH_ESCAPES`), which decide where a literal ends and
/// so what is a statement.
pub fn normalize_read_into(
    sql: &str,
    dialect: Dialect,
    reading: Reading,
    text: &mut String,
) -> Shape {
    text.clear();
    text.reserve(sql.len());
    let mut out = Out {
        text: std::mem::take(text),
        mysql: dialect == Dialect::MySql,
        hash: FNV_OFFSET,
        pending_space: false,
        last_wordish: false,
        before_semis: None,
    };
    let mut truncated = false;
    for (spaced, tok) in lexer_read(sql, dialect, reading) {
        out.pending_space |= spaced;
        match tok {
            Tok::Semi => {
                if out.before_semis.is_none() {
                    out.before_semis = Some((out.text.len(), out.hash));
                }
                out.push_ascii(b';');
                continue;
            }
            Tok::Word(s) => out.push(s, true),
            Tok::Punct(c) => out.push_ascii(c),
            Tok::Quoted(s) | Tok::Param(s) => out.push(s, false),
            Tok::Literal => out.push_ascii(b'?'),
            Tok::Unterminated { redact } => {
                truncated = true;
                if !redact {
                    continue;
                }
                out.push_ascii(b'?');
            }
            // The lexer folds these into `spaced`.
            Tok::Space => continue,
        }
        out.before_semis = None;
    }
    if let Some((len, hash)) = out.before_semis {
        out.text.truncate(len);
        out.hash = hash;
    }
    *text = out.text;
    Shape {
        fingerprint: out.hash,
        truncated,
    }
}

/// What a [`Token`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// An unquoted keyword or identifier.
    Word,
    /// A quoted identifier (never a keyword).
    QuotedIdent,
    /// A string, number, bit-string or dollar-quoted literal.
    Literal,
    /// An operator or punctuation character.
    Punct,
    /// A PostgreSQL `$1` parameter.
    Param,
    /// `;`
    Semi,
    /// The input ended inside a string, quoted identifier, dollar quote,
    /// block comment or MySQL executable comment; nothing follows.
    Unterminated,
}

/// One token of SQL, comments and whitespace skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind,
    /// The token as written (a literal with its quotes and any prefix).
    pub text: &'a str,
}

/// The tokens of SQL, as [`tokens`] gives them.
pub struct Tokens<'a>(Lexer<'a>);

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let (_, tok) = self.0.next()?;
        let kind = match tok {
            Tok::Word(_) => TokenKind::Word,
            Tok::Quoted(_) => TokenKind::QuotedIdent,
            Tok::Literal => TokenKind::Literal,
            Tok::Punct(_) => TokenKind::Punct,
            Tok::Param(_) => TokenKind::Param,
            Tok::Semi => TokenKind::Semi,
            Tok::Unterminated { .. } => TokenKind::Unterminated,
            // The lexer never yields it.
            Tok::Space => TokenKind::Punct,
        };
        let start = self.0.token_start;
        let text = self
            .0
            .source()
            .get(start..self.0.position())
            .unwrap_or_default();
        Some(Token { kind, text })
    }
}

/// The tokens of `sql` under the dialect's lexical rules (the same lexer
/// that [`normalize`] uses), for code that must see statements as the
/// server will: comments and whitespace are skipped, MySQL executable
/// comments (`/*! ... */`) give their content as SQL.
pub fn tokens(sql: &str, dialect: Dialect) -> Tokens<'_> {
    Tokens(Lexer::new(sql, dialect))
}

/// How a session's settings make the server read quotes. A session can
/// change them (`SET standard_conforming_strings`, `SET sql_mode`), so
/// code that must not be fooled about where a literal ends checks every
/// reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// What [`normalize`] assumes (see the crate documentation).
    Default,
    /// Backslashes in plain strings taken the other way: as escapes in
    /// PostgreSQL (`standard_conforming_strings = off`), as ordinary
    /// characters in MySQL (`NO_BACKSLASH_ESCAPES`; with `ANSI_QUOTES`
    /// too, quotes end where they do in this reading).
    OtherBackslash,
    /// MySQL `ANSI_QUOTES`: `"..."` is an identifier, `'...'` keeps its
    /// backslash escapes. The same as `Default` for PostgreSQL.
    AnsiQuotes,
}

impl Reading {
    /// Every reading that differs for the dialect.
    pub fn all(dialect: Dialect) -> &'static [Reading] {
        match dialect {
            Dialect::Postgres => &[Reading::Default, Reading::OtherBackslash],
            Dialect::MySql => &[
                Reading::Default,
                Reading::OtherBackslash,
                Reading::AnsiQuotes,
            ],
        }
    }
}

/// [`tokens`] under another [`Reading`].
pub fn tokens_read(sql: &str, dialect: Dialect, reading: Reading) -> Tokens<'_> {
    Tokens(lexer_read(sql, dialect, reading))
}

/// Whether two readings of `sql` split it alike: the same tokens, where
/// a string in one may be a quoted identifier in the other (MySQL's
/// `"x"` with and without `ANSI_QUOTES`), but nothing ends elsewhere.
pub fn readings_agree(sql: &str, dialect: Dialect, a: Reading, b: Reading) -> bool {
    let quoted = |k: TokenKind| matches!(k, TokenKind::Literal | TokenKind::QuotedIdent);
    let mut x = tokens_read(sql, dialect, a);
    let mut y = tokens_read(sql, dialect, b);
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q))
                if p.text == q.text && (p.kind == q.kind || (quoted(p.kind) && quoted(q.kind))) => {
            }
            _ => return false,
        }
    }
}

fn lexer_read(sql: &str, dialect: Dialect, reading: Reading) -> Lexer<'_> {
    let lexer = Lexer::new(sql, dialect);
    match reading {
        Reading::Default => lexer,
        Reading::OtherBackslash => lexer.flipped(),
        Reading::AnsiQuotes => lexer.ansi_quotes(),
    }
}

/// Lowercase 16 hex digits of a fingerprint.
pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

/// The first keyword of the statement, uppercased (`SELECT`, `INSERT`,
/// `WITH`...), skipping comments and whitespace and leading '(' — for
/// classification. None if there is none.
///
/// Uses PostgreSQL's lexical rules (nested block comments); see
/// [`leading_keyword_for`] for MySQL, where `/*!...*/` content is SQL.
pub fn leading_keyword(sql: &str) -> Option<String> {
    leading_keyword_for(sql, Dialect::Postgres)
}

/// [`leading_keyword`] with the given dialect's lexical rules. The keyword
/// is an ASCII letter followed by ASCII letters, digits or `_`; anything
/// else first (a literal, a quoted identifier, an operator) gives None.
pub fn leading_keyword_for(sql: &str, dialect: Dialect) -> Option<String> {
    for (_, tok) in Lexer::new(sql, dialect) {
        match tok {
            Tok::Space | Tok::Punct(b'(') => {}
            Tok::Word(w) => {
                let b = w.as_bytes();
                let keyword = b.first().is_some_and(u8::is_ascii_alphabetic)
                    && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_');
                return keyword.then(|| w.to_ascii_uppercase());
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests;
