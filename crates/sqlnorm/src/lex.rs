//! A single-pass, allocation-free SQL tokenizer that knows just enough of
//! each dialect's lexical rules to find literals, comments and quoted
//! identifiers. It never fails: anything it does not recognise is passed
//! through one ASCII byte at a time, and an unterminated construct ends the
//! token stream with [`Tok::Unterminated`].
//!
//! Every token boundary falls on an ASCII byte or the end of the input
//! (bytes >= 0x80 only ever occur inside words, quoted identifiers, strings
//! and comments), so slicing the `&str` at those boundaries is always valid.

use crate::Dialect;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// Whitespace or a comment (or a MySQL `/*!` / `*/` marker).
    Space,
    /// An unquoted keyword or identifier.
    Word(&'a str),
    /// A quoted identifier, with its quotes and any `U&` prefix.
    Quoted(&'a str),
    /// A string, number, bit-string or dollar-quoted literal.
    Literal,
    /// An operator or punctuation character (always ASCII): kept as written.
    Punct(u8),
    /// A `$1` parameter: kept as written.
    Param(&'a str),
    /// `;`
    Semi,
    /// The input ended inside a construct; no tokens follow. `redact` is true
    /// when it was a string or quoted identifier (the rest is a literal),
    /// false for a block comment (the rest is a comment).
    Unterminated { redact: bool },
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    mysql: bool,
    /// Backslashes in plain strings mean the opposite of the dialect's
    /// default (PostgreSQL with `standard_conforming_strings = off`,
    /// MySQL with `NO_BACKSLASH_ESCAPES`).
    flip_backslash: bool,
    /// MySQL `ANSI_QUOTES`.
    ansi_quotes: bool,
    in_exec_comment: bool,
    done: bool,
    /// Where the token last returned began.
    pub(crate) token_start: usize,
}

/// Whitespace: PostgreSQL's space, tab, newline, CR and form feed, plus every
/// other ASCII control character (they are not valid SQL anyway and have no
/// place in a log line).
fn is_space(c: u8) -> bool {
    c <= b' '
}

fn is_ident_start(c: u8, mysql: bool) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 || (mysql && c == b'$')
}

/// Identifier characters after the first, as a table: words are most of a
/// statement, and this is their inner loop.
static IDENT_CHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        table[i] = c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
        i += 1;
    }
    table
};

fn is_ident_char(c: u8) -> bool {
    IDENT_CHAR[usize::from(c)]
}

/// Characters of a dollar-quote tag after the first (no `$`).
fn is_tag_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Position of `needle` (`$tag$`) in `hay`. Linear: the tag holds no `$`, so
/// the bytes compared after one `$` never overlap those after another.
fn find_delimiter(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + hay.get(from..)?.iter().position(|&c| c == b'$')?;
        if hay.get(at..)?.starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str, dialect: Dialect) -> Self {
        Lexer {
            src,
            b: src.as_bytes(),
            pos: 0,
            mysql: dialect == Dialect::MySql,
            flip_backslash: false,
            ansi_quotes: false,
            in_exec_comment: false,
            done: false,
            token_start: 0,
        }
    }

    /// The same lexer with backslashes in plain strings taken the other
    /// way from the dialect's default.
    pub(crate) fn flipped(mut self) -> Self {
        self.flip_backslash = true;
        self
    }

    /// MySQL with `ANSI_QUOTES`: `"..."` is an identifier.
    pub(crate) fn ansi_quotes(mut self) -> Self {
        self.ansi_quotes = true;
        self
    }

    /// The input the lexer reads.
    pub(crate) fn source(&self) -> &'a str {
        self.src
    }

    /// The position after the token last returned.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn peek(&self, k: usize) -> Option<u8> {
        self.b.get(self.pos.saturating_add(k)).copied()
    }

    fn bump(&mut self, k: usize) {
        self.pos = self.pos.saturating_add(k).min(self.b.len());
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.src.get(start..end).unwrap_or_default()
    }

    fn skip_while(&mut self, f: impl Fn(u8) -> bool) {
        let rest = self.b.get(self.pos..).unwrap_or_default();
        self.pos += rest.iter().position(|&c| !f(c)).unwrap_or(rest.len());
    }

    /// `--` or `#` comment: up to (not including) the end of the line.
    /// MySQL ends it at `\n` only; PostgreSQL at `\n` or `\r`.
    fn line_comment(&mut self) -> Tok<'a> {
        let mysql = self.mysql;
        self.skip_while(|c| c != b'\n' && (mysql || c != b'\r'));
        Tok::Space
    }

    /// At `/*`.
    fn block_comment(&mut self) -> Tok<'a> {
        self.bump(2);
        if self.mysql {
            // `/*!NNNNN ... */` (MySQL) and `/*M!NNNNNN ... */` (MariaDB):
            // executable comments. Drop the markers, lex the content as SQL.
            let exec = match (self.peek(0), self.peek(1)) {
                (Some(b'!'), _) => Some(1),
                (Some(b'M'), Some(b'!')) => Some(2),
                _ => None,
            };
            if let Some(marker) = exec {
                self.bump(marker);
                let mut digits = 0;
                while digits < 6 && self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                    digits += 1;
                }
                self.in_exec_comment = true;
                return Tok::Space;
            }
            // MySQL block comments do not nest.
            loop {
                match self.peek(0) {
                    None => return Tok::Unterminated { redact: false },
                    Some(b'*') if self.peek(1) == Some(b'/') => {
                        self.bump(2);
                        return Tok::Space;
                    }
                    Some(_) => self.pos += 1,
                }
            }
        }
        // PostgreSQL block comments nest.
        let mut depth = 1usize;
        loop {
            match (self.peek(0), self.peek(1)) {
                (None, _) => return Tok::Unterminated { redact: false },
                (Some(b'/'), Some(b'*')) => {
                    depth += 1;
                    self.bump(2);
                }
                (Some(b'*'), Some(b'/')) => {
                    depth -= 1;
                    self.bump(2);
                    if depth == 0 {
                        return Tok::Space;
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    /// At the opening quote `q` of a string literal. `backslash`: a `\`
    /// escapes the next byte. A doubled quote is always an escaped quote.
    fn string(&mut self, backslash: bool, q: u8) -> Tok<'a> {
        self.bump(1);
        loop {
            let rest = self.b.get(self.pos..).unwrap_or_default();
            let Some(k) = rest
                .iter()
                .position(|&c| c == q || (backslash && c == b'\\'))
            else {
                self.pos = self.b.len();
                return Tok::Unterminated { redact: true };
            };
            self.bump(k);
            if self.peek(0) == Some(q) {
                if self.peek(1) == Some(q) {
                    self.bump(2);
                } else {
                    self.bump(1);
                    return Tok::Literal;
                }
            } else {
                // A backslash: skip it and the byte it escapes. A trailing
                // backslash leaves the string unterminated.
                if self.peek(1).is_none() {
                    self.pos = self.b.len();
                    return Tok::Unterminated { redact: true };
                }
                self.bump(2);
            }
        }
    }

    /// At the opening quote `q` of a quoted identifier whose token (with any
    /// prefix) began at `start`. A doubled quote is an escaped quote.
    fn quoted_ident(&mut self, start: usize, q: u8) -> Tok<'a> {
        self.bump(1);
        loop {
            let rest = self.b.get(self.pos..).unwrap_or_default();
            let Some(k) = rest.iter().position(|&c| c == q) else {
                self.pos = self.b.len();
                return Tok::Unterminated { redact: true };
            };
            self.bump(k);
            if self.peek(1) == Some(q) {
                self.bump(2);
            } else {
                self.bump(1);
                return Tok::Quoted(self.slice(start, self.pos));
            }
        }
    }

    /// At a digit, or a `.` followed by a digit. Integers (with `_`
    /// separators), decimals, exponents and `0x`/`0o`/`0b` integers. Whatever
    /// follows (an identifier character, say) starts the next token, so a
    /// malformed number is redacted as far as it looks numeric and no
    /// further; nothing numeric is ever kept.
    fn number(&mut self) -> Tok<'a> {
        let digits = |c: u8| c.is_ascii_digit() || c == b'_';
        if self.peek(0) == Some(b'0')
            && matches!(self.peek(1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B'))
            && self
                .peek(2)
                .is_some_and(|c| c.is_ascii_hexdigit() || c == b'_')
        {
            self.bump(2);
            self.skip_while(|c| c.is_ascii_hexdigit() || c == b'_');
            return Tok::Literal;
        }
        self.skip_while(digits);
        // One decimal point, but not the first of `..` (PL/pgSQL `1..10`).
        if self.peek(0) == Some(b'.') && self.peek(1) != Some(b'.') {
            self.bump(1);
            self.skip_while(digits);
        }
        if matches!(self.peek(0), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.peek(1), Some(b'+' | b'-')));
            if self.peek(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                self.bump(1 + sign);
                self.skip_while(digits);
            }
        }
        Tok::Literal
    }

    /// PostgreSQL, at `$`: a `$1` parameter, a dollar-quoted string, or a
    /// lone `$`.
    fn dollar(&mut self) -> Tok<'a> {
        let start = self.pos;
        if self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            self.bump(1);
            self.skip_while(|c| c.is_ascii_digit());
            return Tok::Param(self.slice(start, self.pos));
        }
        let mut end = start + 1;
        if self
            .b
            .get(end)
            .is_some_and(|&c| is_tag_char(c) && !c.is_ascii_digit())
        {
            end += 1;
            while self.b.get(end).is_some_and(|&c| is_tag_char(c)) {
                end += 1;
            }
        }
        if self.b.get(end) != Some(&b'$') {
            self.bump(1);
            return Tok::Punct(b'$');
        }
        let delimiter = self.b.get(start..=end).unwrap_or_default();
        let body = end + 1;
        match find_delimiter(self.b.get(body..).unwrap_or_default(), delimiter) {
            Some(k) => {
                self.pos = (body + k + delimiter.len()).min(self.b.len());
                Tok::Literal
            }
            None => {
                self.pos = self.b.len();
                Tok::Unterminated { redact: true }
            }
        }
    }

    /// At an identifier start: a keyword or identifier, or the prefix of a
    /// prefixed string (`E'..'`, `X'..'`, `_utf8mb4'..'`...) or of a
    /// `U&"..."` identifier.
    fn word(&mut self) -> Tok<'a> {
        let start = self.pos;
        self.bump(1);
        self.skip_while(is_ident_char);
        // Most words are followed by a space or punctuation: one test.
        if matches!(self.peek(0), Some(b'\'' | b'"' | b'&'))
            && let Some(tok) = self.prefixed(start)
        {
            return tok;
        }
        Tok::Word(self.slice(start, self.pos))
    }

    /// After the word at `start`, at a quote or `&`: the prefixed string or
    /// identifier it begins, if any.
    fn prefixed(&mut self, start: usize) -> Option<Tok<'a>> {
        let word = self.b.get(start..self.pos).unwrap_or_default();
        let next = self.peek(0);
        if self.mysql {
            return match (word, next) {
                ([b'x' | b'X' | b'b' | b'B' | b'n' | b'N'], Some(b'\'')) => {
                    Some(self.string(true, b'\''))
                }
                // Character set introducer: _utf8mb4'..', _latin1"..".
                ([b'_', _, ..], Some(q @ (b'\'' | b'"'))) => Some(self.string(true, q)),
                _ => None,
            };
        }
        match (word, next, self.peek(1)) {
            ([b'e' | b'E'], Some(b'\''), _) => Some(self.string(true, b'\'')),
            ([b'b' | b'B' | b'x' | b'X' | b'n' | b'N'], Some(b'\''), _) => {
                Some(self.string(false, b'\''))
            }
            ([b'u' | b'U'], Some(b'&'), Some(b'\'')) => {
                self.bump(1);
                Some(self.string(false, b'\''))
            }
            ([b'u' | b'U'], Some(b'&'), Some(b'"')) => {
                self.bump(1);
                Some(self.quoted_ident(start, b'"'))
            }
            _ => None,
        }
    }

    #[inline(always)]
    fn token(&mut self, c: u8) -> Tok<'a> {
        let mysql = self.mysql;
        match c {
            c if is_space(c) => {
                self.skip_while(is_space);
                Tok::Space
            }
            // MySQL needs `-- ` (a space or control character after the
            // dashes, or the end of the input); `a--1` is `a - -1` there.
            b'-' if self.peek(1) == Some(b'-')
                && (!mysql || self.peek(2).is_none_or(|d| d <= b' ' || d == 0x7f)) =>
            {
                self.line_comment()
            }
            b'#' if mysql => self.line_comment(),
            b'/' if self.peek(1) == Some(b'*') => self.block_comment(),
            b'*' if self.in_exec_comment && self.peek(1) == Some(b'/') => {
                self.bump(2);
                self.in_exec_comment = false;
                Tok::Space
            }
            b'\'' => self.string(mysql != self.flip_backslash, b'\''),
            b'"' if mysql && !self.ansi_quotes => self.string(!self.flip_backslash, b'"'),
            b'"' => self.quoted_ident(self.pos, b'"'),
            b'`' if mysql => self.quoted_ident(self.pos, b'`'),
            b'0'..=b'9' => self.number(),
            // `.5`, but not the `.10` of `1..10`.
            b'.' if self.peek(1).is_some_and(|d| d.is_ascii_digit())
                && self.b.get(self.pos.wrapping_sub(1)) != Some(&b'.') =>
            {
                self.number()
            }
            b'$' if !mysql => self.dollar(),
            b';' => {
                self.bump(1);
                Tok::Semi
            }
            c if is_ident_start(c, mysql) => self.word(),
            // Any other ASCII byte (bytes >= 0x80 start words).
            c => {
                self.bump(1);
                Tok::Punct(c)
            }
        }
    }
}

impl<'a> Iterator for Lexer<'a> {
    /// A token other than [`Tok::Space`], and whether whitespace or a
    /// comment came before it.
    type Item = (bool, Tok<'a>);

    #[inline(always)]
    fn next(&mut self) -> Option<(bool, Tok<'a>)> {
        if self.done {
            return None;
        }
        let mut spaced = false;
        loop {
            let Some(c) = self.peek(0) else {
                self.done = true;
                // Ended inside a MySQL executable comment: its content was
                // lexed as SQL (literals redacted), but it never closed.
                return self
                    .in_exec_comment
                    .then_some((spaced, Tok::Unterminated { redact: false }));
            };
            self.token_start = self.pos;
            match self.token(c) {
                Tok::Space => spaced = true,
                tok => {
                    self.done = matches!(tok, Tok::Unterminated { .. });
                    return Some((spaced, tok));
                }
            }
        }
    }
}
