//! Wildcard patterns (`*`, `?`) with policy variables (`${aws:username}`),
//! matched without allocating.
//!
//! A pattern is a list of tokens. Text that came from an escape (`${*}`) or
//! a variable's value is literal: a `*` in a user name never acts as a
//! wildcard.

use std::str::Chars;

/// One piece of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// Literal text.
    Lit(String),
    /// `*`: any run of characters, including none and including `:` and `/`.
    Star,
    /// `?`: exactly one character.
    One,
    /// `${key}` or `${key, 'default'}`; the key is stored lowercase.
    Var {
        key: String,
        default: Option<String>,
    },
}

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Pattern {
    tokens: Vec<Token>,
    has_vars: bool,
    has_wildcards: bool,
}

/// Why a `${...}` could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    #[error("'${{' without a closing brace '}}'")]
    Unclosed,
    #[error("empty policy variable")]
    Empty,
    #[error("a default value must be in single quotes: ${{key, 'default'}}")]
    BadDefault,
}

impl Pattern {
    /// Compiles `text`. With `variables`, `${...}` are policy variables (only
    /// under `"Version": "2012-10-17"`); without, they are literal text.
    /// With `wildcards`, `*` and `?` are wildcards.
    pub fn compile(text: &str, variables: bool, wildcards: bool) -> Result<Self, VariableError> {
        let mut tokens = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if variables && rest.starts_with("${") {
                let close = rest.find('}').ok_or(VariableError::Unclosed)?;
                let inner = rest[2..close].trim();
                rest = &rest[close + 1..];
                match inner {
                    "*" | "?" | "$" => lit.push_str(inner),
                    "" => return Err(VariableError::Empty),
                    _ => {
                        let (key, default) = match inner.split_once(',') {
                            Some((key, default)) => {
                                let default = default.trim();
                                let quoted = default
                                    .strip_prefix('\'')
                                    .and_then(|d| d.strip_suffix('\''))
                                    .ok_or(VariableError::BadDefault)?;
                                (key.trim(), Some(quoted.to_owned()))
                            }
                            None => (inner, None),
                        };
                        if key.is_empty() {
                            return Err(VariableError::Empty);
                        }
                        if !lit.is_empty() {
                            tokens.push(Token::Lit(std::mem::take(&mut lit)));
                        }
                        tokens.push(Token::Var {
                            key: key.to_ascii_lowercase(),
                            default,
                        });
                    }
                }
                continue;
            }
            rest = &rest[c.len_utf8()..];
            match c {
                '*' | '?' if wildcards => {
                    if !lit.is_empty() {
                        tokens.push(Token::Lit(std::mem::take(&mut lit)));
                    }
                    tokens.push(if c == '*' { Token::Star } else { Token::One });
                }
                _ => lit.push(c),
            }
        }
        if !lit.is_empty() {
            tokens.push(Token::Lit(lit));
        }
        let has_vars = tokens.iter().any(|t| matches!(t, Token::Var { .. }));
        let has_wildcards = tokens.iter().any(|t| matches!(t, Token::Star | Token::One));
        Ok(Self {
            tokens,
            has_vars,
            has_wildcards,
        })
    }

    /// A pattern of literal text only.
    pub fn literal(text: &str) -> Self {
        Self {
            tokens: if text.is_empty() {
                Vec::new()
            } else {
                vec![Token::Lit(text.to_owned())]
            },
            has_vars: false,
            has_wildcards: false,
        }
    }

    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    pub fn has_variables(&self) -> bool {
        self.has_vars
    }

    pub fn has_wildcards(&self) -> bool {
        self.has_wildcards
    }

    /// The literal text, when the pattern has no wildcard or variable.
    pub fn as_literal(&self) -> Option<&str> {
        match self.tokens.as_slice() {
            [] => Some(""),
            [Token::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Whether `input` matches. `resolve` gives a variable's value; when a
    /// variable resolves to nothing and has no default, the pattern does not
    /// match (`None`: "unresolvable", which makes the statement not match).
    pub fn matches<'v>(
        &self,
        input: &str,
        resolve: &impl Fn(&str) -> Option<&'v str>,
        ignore_case: bool,
    ) -> Option<bool> {
        // Fast paths: most resources and actions are literal, or a literal
        // prefix then `*`; byte comparison beats the general matcher.
        if !ignore_case {
            if let Some(lit) = self.as_literal() {
                return Some(lit == input);
            }
            if let Some(Token::Lit(prefix)) = self.tokens.first()
                && !input.starts_with(prefix.as_str())
            {
                // Variables still decide "unresolvable" before "no match".
                if !self.has_vars {
                    return Some(false);
                }
            }
        }
        // Resolve variables up front (no allocation: borrowed values).
        let mut resolved: [&str; 8] = [""; 8];
        let mut n = 0;
        for t in &self.tokens {
            if let Token::Var { key, default } = t {
                let value = resolve(key).or(default.as_deref())?;
                if n == resolved.len() {
                    return None; // more variables than any real policy uses
                }
                resolved[n] = value;
                n += 1;
            }
        }
        Some(glob(&self.tokens, &resolved[..n], input, ignore_case))
    }
}

/// A position in the pattern: token index and a character iterator over
/// the literal text of that token (for `Lit` and resolved `Var`).
#[derive(Clone)]
struct Cursor<'p> {
    token: usize,
    var: usize,
    chars: Option<Chars<'p>>,
}

enum Elem {
    Char(char),
    Star,
    One,
    End,
}

impl<'p> Cursor<'p> {
    fn next(&mut self, tokens: &'p [Token], vars: &[&'p str]) -> Elem {
        loop {
            if let Some(chars) = &mut self.chars {
                if let Some(c) = chars.next() {
                    return Elem::Char(c);
                }
                self.chars = None;
                self.token += 1;
                continue;
            }
            let Some(t) = tokens.get(self.token) else {
                return Elem::End;
            };
            match t {
                Token::Lit(s) => self.chars = Some(s.chars()),
                Token::Var { .. } => {
                    self.chars = Some(vars[self.var].chars());
                    self.var += 1;
                }
                Token::Star => {
                    self.token += 1;
                    return Elem::Star;
                }
                Token::One => {
                    self.token += 1;
                    return Elem::One;
                }
            }
        }
    }
}

fn chars_equal(a: char, b: char, ignore_case: bool) -> bool {
    a == b || (ignore_case && a.to_lowercase().eq(b.to_lowercase()))
}

/// Iterative wildcard matching with single-star backtracking: linear in
/// practice, never exponential.
fn glob<'p>(tokens: &'p [Token], vars: &[&'p str], input: &str, ignore_case: bool) -> bool {
    let mut pat = Cursor {
        token: 0,
        var: 0,
        chars: None,
    };
    let mut text = input.chars();
    // Where to resume after the last star: pattern after it, text position.
    let mut backtrack: Option<(Cursor<'p>, Chars<'_>)> = None;
    loop {
        let elem = pat.next(tokens, vars);
        let mut text_next = text.clone();
        let c = text_next.next();
        let ok = match (&elem, c) {
            (Elem::End, None) => return true,
            (Elem::Star, _) => {
                backtrack = Some((pat.clone(), text.clone()));
                continue;
            }
            (Elem::One, Some(_)) => true,
            (Elem::Char(p), Some(c)) => chars_equal(*p, c, ignore_case),
            _ => false,
        };
        if ok {
            text = text_next;
            continue;
        }
        // Mismatch: let the last star swallow one more character.
        match &mut backtrack {
            Some((star_pat, star_text)) => {
                if star_text.next().is_none() {
                    return false;
                }
                pat = star_pat.clone();
                text = star_text.clone();
            }
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<&'static str> {
        None
    }

    fn m(pattern: &str, input: &str) -> bool {
        Pattern::compile(pattern, true, true)
            .unwrap()
            .matches(input, &none, false)
            .unwrap()
    }

    #[test]
    fn wildcards() {
        assert!(m("*", ""));
        assert!(m("*", "arn:aws:s3:::a/b"));
        assert!(m("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b:c"));
        assert!(!m("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket"));
        assert!(m("a?c", "abc"));
        assert!(m("a?c", "aéc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(m("a*b?c*", "aXXbYc"));
        assert!(!m("abc", "ABC"));
        assert!(
            Pattern::compile("s3:get*", false, true)
                .unwrap()
                .matches("S3:GetObject", &none, true)
                .unwrap()
        );
    }

    #[test]
    fn many_stars_stay_linear() {
        let p = "*a".repeat(50);
        let input = "a".repeat(49) + "b";
        assert!(!m(&p, &input));
    }

    #[test]
    fn variables_and_escapes() {
        let resolve = |k: &str| (k == "aws:username").then_some("al*ce");
        let p = Pattern::compile("home/${aws:username}/*", true, true).unwrap();
        assert_eq!(p.matches("home/al*ce/x", &resolve, false), Some(true));
        // The value's '*' is literal.
        assert_eq!(p.matches("home/alZZce/x", &resolve, false), Some(false));
        assert_eq!(p.matches("home/al*ce/x", &none, false), None);
        let d = Pattern::compile("a/${aws:x, 'def'}", true, true).unwrap();
        assert_eq!(d.matches("a/def", &none, false), Some(true));
        let e = Pattern::compile("${*}${?}${$}", true, true).unwrap();
        assert_eq!(e.as_literal(), Some("*?$"));
        assert_eq!(e.matches("*?$", &none, false), Some(true));
        assert_eq!(e.matches("x?$", &none, false), Some(false));
        let old = Pattern::compile("${aws:username}", false, true).unwrap();
        assert_eq!(old.as_literal(), Some("${aws:username}"));
        assert_eq!(
            Pattern::compile("${", true, true),
            Err(VariableError::Unclosed)
        );
        assert_eq!(
            Pattern::compile("${}", true, true),
            Err(VariableError::Empty)
        );
        assert_eq!(
            Pattern::compile("${a, def}", true, true),
            Err(VariableError::BadDefault)
        );
    }
}
