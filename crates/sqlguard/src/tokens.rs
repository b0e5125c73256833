//! Reading tokens: word and punctuation tests, identifier names (quotes
//! removed, `U&` escapes decoded), and string literal bodies (PostgreSQL
//! `E'...'` and `U&'...'` escapes, MySQL backslash escapes, adjacent
//! literals joined as the server joins them). The lexer itself is
//! `latchkey-sqlnorm`'s; these are the helpers every rule reads with.

use std::borrow::Cow;

use latchkey_sqlnorm::{Reading, Token, TokenKind};

use crate::Dialect;

pub(crate) fn word_is(t: &Token<'_>, word: &str) -> bool {
    t.kind == TokenKind::Word && t.text.eq_ignore_ascii_case(word)
}

pub(crate) fn punct_is(t: &Token<'_>, p: &str) -> bool {
    t.kind == TokenKind::Punct && t.text == p
}

pub(crate) fn has_word(stmt: &[Token<'_>], word: &str) -> bool {
    stmt.iter().any(|t| word_is(t, word))
}

/// The name a word or quoted identifier stands for (quotes removed,
/// `U&` escapes decoded); None when it cannot be told (a `U&` name with
/// an escape the gateway does not decode), which callers take as any
/// name.
pub(crate) fn ident<'a>(t: &Token<'a>) -> Option<Cow<'a, str>> {
    match t.kind {
        TokenKind::Word => Some(Cow::Borrowed(t.text)),
        TokenKind::QuotedIdent => {
            let (unicode, text) = match t.text.get(..2) {
                Some(p) if p.eq_ignore_ascii_case("u&") => (true, &t.text[2..]),
                _ => (false, t.text),
            };
            let quote = text.chars().next()?;
            let inner = text.get(1..text.len().checked_sub(1)?)?;
            let doubled: String = [quote, quote].iter().collect();
            let name = if inner.contains(&doubled) {
                Cow::Owned(inner.replace(&doubled, &quote.to_string()))
            } else {
                Cow::Borrowed(inner)
            };
            if unicode && name.contains('\\') {
                return unicode_unescape(&name).map(Cow::Owned);
            }
            Some(name)
        }
        _ => Some(Cow::Borrowed("")),
    }
}

/// One PostgreSQL `E'...'` escape after its backslash: `\xHH`, octal
/// `\ooo`, `\uXXXX`, `\UXXXXXXXX`, `\n` and the like; None for an
/// invalid one.
pub(crate) fn pg_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    Some(match chars.next()? {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'b' | 'f' => ' ',
        'x' => return pg_number(chars, 0, 16, 2),
        'u' => return pg_number(chars, 0, 16, 4),
        'U' => return pg_number(chars, 0, 16, 8),
        d @ '0'..='7' => return pg_number(chars, d.to_digit(8)?, 8, 2),
        other => other,
    })
}

/// Up to `max` more digits in `radix` after `value`, as a character.
pub(crate) fn pg_number(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    mut value: u32,
    radix: u32,
    max: usize,
) -> Option<char> {
    for _ in 0..max {
        let Some(d) = chars.peek().and_then(|c| c.to_digit(radix)) else {
            break;
        };
        value = value.checked_mul(radix)?.checked_add(d)?;
        chars.next();
    }
    char::from_u32(value)
}

/// PostgreSQL's `U&` escapes with the default escape character (`\XXXX`,
/// `\+XXXXXX`, `\\`); None for anything else.
pub(crate) fn unicode_unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (len, skip) = match rest.as_bytes().first() {
            Some(b'\\') => {
                out.push('\\');
                rest = &rest[1..];
                continue;
            }
            Some(b'+') => (6, 1),
            _ => (4, 0),
        };
        let hex = rest.get(skip..skip + len)?;
        let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
        out.push(c);
        rest = &rest[skip + len..];
    }
    out.push_str(rest);
    Some(out)
}

/// Whether a token names one of `names` (any case); a name that cannot
/// be read counts as every name.
pub(crate) fn names_any(t: &Token<'_>, names: &[&str]) -> bool {
    match ident(t) {
        Some(n) => names.iter().any(|w| n.eq_ignore_ascii_case(w)),
        None => true,
    }
}

/// The token at `i` follows the word `w`.
pub(crate) fn after_word(stmt: &[Token<'_>], i: usize, w: &str) -> bool {
    i.checked_sub(1)
        .and_then(|at| stmt.get(at))
        .is_some_and(|t| word_is(t, w))
}

/// The token at `i` follows the punctuation `p`.
pub(crate) fn after(stmt: &[Token<'_>], i: usize, p: &str) -> bool {
    i.checked_sub(1)
        .and_then(|at| stmt.get(at))
        .is_some_and(|t| punct_is(t, p))
}

/// A string literal (not a number, a hex or a bit string).
pub(crate) fn is_string(t: &Token<'_>) -> bool {
    t.kind == TokenKind::Literal
        && match t.text.find(['\'', '"', '$']) {
            Some(0) => true,
            Some(q) => !["x", "b"]
                .iter()
                .any(|p| t.text[..q].eq_ignore_ascii_case(p)),
            None => false,
        }
}

/// The string literals of a statement as text, adjacent ones joined (the
/// server concatenates `'a' 'b'`, in PostgreSQL across a newline); None
/// for one the gateway cannot decode (`U&'...'` with escapes).
pub(crate) fn string_bodies<'a>(
    stmt: &[Token<'a>],
    dialect: Dialect,
    reading: Reading,
) -> Vec<Option<Cow<'a, str>>> {
    let mut out: Vec<Option<Cow<'a, str>>> = Vec::new();
    let mut joining = false;
    for t in stmt {
        if !is_string(t) {
            joining = false;
            continue;
        }
        let body = string_body(t, dialect, reading);
        match (joining, out.last_mut(), body) {
            (true, Some(Some(prev)), Some(body)) => prev.to_mut().push_str(&body),
            (true, Some(prev), None) => *prev = None,
            (true, Some(None), Some(_)) => {}
            (_, _, body) => out.push(body),
        }
        joining = true;
    }
    out
}

/// The text of a string literal, unescaped as far as keywords go; None
/// for one that cannot be read (`U&'...'` with escapes).
pub(crate) fn string_body<'a>(
    t: &Token<'a>,
    dialect: Dialect,
    reading: Reading,
) -> Option<Cow<'a, str>> {
    let text = t.text;
    if let Some(rest) = text.strip_prefix('$') {
        // `$tag$ ... $tag$`
        let tag_len = rest.find('$')? + 2;
        let body = text.get(tag_len..text.len().checked_sub(tag_len)?)?;
        return Some(Cow::Borrowed(body));
    }
    let q = text.find(['\'', '"'])?;
    let prefix = &text[..q];
    let quote = text[q..].chars().next()?;
    let body = text.get(q + 1..text.len().checked_sub(1)?)?;
    if !text.ends_with(quote) {
        return None;
    }
    let unicode = dialect == Dialect::Postgres && prefix.eq_ignore_ascii_case("u&");
    let backslash = match dialect {
        Dialect::Postgres => prefix.eq_ignore_ascii_case("e") || reading == Reading::OtherBackslash,
        Dialect::MySql => reading != Reading::OtherBackslash,
    };
    let escapes = backslash || (unicode && body.contains('\\'));
    let plain = !escapes;
    if plain && !body.contains(quote) {
        return Some(Cow::Borrowed(body));
    }
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote && chars.peek() == Some(&quote) {
            chars.next();
            out.push(quote);
        } else if c == '\\' && backslash && !unicode && dialect == Dialect::Postgres {
            out.push(pg_escape(&mut chars)?);
        } else if c == '\\' && backslash && !unicode {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0' | 'Z' | 'b') => out.push(' '),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    if unicode {
        return unicode_unescape(&out).map(Cow::Owned);
    }
    Some(Cow::Owned(out))
}

/// Whether the name at `i` stands where a table does: right after a
/// keyword that names one, or in a comma list that such a keyword starts.
pub(crate) fn table_position(stmt: &[Token<'_>], i: usize) -> bool {
    const TABLE: [&str; 16] = [
        "TO",
        "UPDATE",
        "INTO",
        "FROM",
        "JOIN",
        "TABLE",
        "INSERT",
        "REPLACE",
        "DELETE",
        "LOW_PRIORITY",
        "DELAYED",
        "HIGH_PRIORITY",
        "IGNORE",
        "QUICK",
        "USING",
        "STRAIGHT_JOIN",
    ];
    const NOT_TABLE: [&str; 10] = [
        "SET",
        "SELECT",
        "WHERE",
        "ON",
        "VALUES",
        "VALUE",
        "HAVING",
        "BY",
        "DUPLICATE",
        "AS",
    ];
    let Some(prev) = i.checked_sub(1).and_then(|p| stmt.get(p)) else {
        return false;
    };
    if TABLE.iter().any(|w| word_is(prev, w)) {
        return true;
    }
    if !punct_is(prev, ",") {
        return false;
    }
    let mut depth = 0usize;
    for t in stmt[..i - 1].iter().rev() {
        if punct_is(t, ")") {
            depth += 1;
        } else if punct_is(t, "(") {
            match depth.checked_sub(1) {
                Some(d) => depth = d,
                // Inside parentheses: a column list.
                None => return false,
            }
        } else if depth == 0 {
            if TABLE.iter().any(|w| word_is(t, w)) {
                return true;
            }
            if NOT_TABLE.iter().any(|w| word_is(t, w)) || punct_is(t, "=") {
                return false;
            }
        }
    }
    false
}
