//! What a browser sends the web console, parsed strictly and without I/O:
//! forms and query strings (`application/x-www-form-urlencoded`),
//! percent-encoded path segments, and `Cookie` headers. A bad escape or
//! invalid UTF-8 refuses the whole input with the reason; nothing is
//! guessed.

use thiserror::Error;

/// Why a form, query string or path segment was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormError {
    #[error("the form is not UTF-8")]
    NotUtf8,
    #[error("bad percent escape at byte {at}: `%` must be followed by two hex digits")]
    BadEscape { at: usize },
    #[error("the decoded text is not UTF-8")]
    DecodedNotUtf8,
}

/// A submitted form or query string, decoded: (name, value) pairs in
/// order, names repeated as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// `a=1&b=x+y&c=%C3%A9`: `+` is a space, `%XX` a byte; empty pairs
    /// (`&&`) are skipped and a pair without `=` has an empty value.
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        let text = std::str::from_utf8(body).map_err(|_| FormError::NotUtf8)?;
        let mut pairs = Vec::new();
        let mut offset = 0;
        for pair in text.split('&') {
            if !pair.is_empty() {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let value_at = offset + k.len() + 1;
                pairs.push((
                    decode_with(k, true, offset)?,
                    decode_with(v, true, value_at)?,
                ));
            }
            offset += pair.len() + 1;
        }
        Ok(Self { pairs })
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, trimmed, `""` when absent.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).map_or("", str::trim)
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The form without `name`, to build a link from.
    pub fn clone_without(&self, name: &str) -> Form {
        Form {
            pairs: self
                .pairs
                .iter()
                .filter(|(k, _)| k != name)
                .cloned()
                .collect(),
        }
    }

    pub fn push(&mut self, name: &str, value: &str) {
        self.pairs.push((name.to_owned(), value.to_owned()));
    }

    /// As a query string, empty values left out.
    pub fn to_query(&self) -> String {
        self.pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The pairs, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// A URL path segment, percent-decoded; `+` stays `+`.
pub fn decode_path(segment: &str) -> Result<String, FormError> {
    decode_with(segment, false, 0)
}

/// `s` decoded; `at` is where it starts in the input, for the reason.
fn decode_with(s: &str, plus_is_space: bool, at: usize) -> Result<String, FormError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                let hex = |c: u8| {
                    char::from(c)
                        .to_digit(16)
                        .and_then(|d| u8::try_from(d).ok())
                };
                let (Some(hi), Some(lo)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(FormError::BadEscape { at: at + i });
                };
                out.push(hi << 4 | lo);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::DecodedNotUtf8)
}

/// `value` percent-encoded for a URL's path segment or query value
/// (everything but `A-Z a-z 0-9 - _ . ~`).
pub fn encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// The value of cookie `name` across a request's `Cookie` headers, if it
/// is sent exactly once: two of one name (one planted by a sibling
/// domain, say) are trusted neither.
pub fn cookie<'a>(headers: impl IntoIterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    let mut found = None;
    for text in headers {
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == name
            {
                if found.is_some() {
                    return None;
                }
                found = Some(v);
            }
        }
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_strictly_with_the_reason() {
        let f = Form::parse(b"a=1+2&b=%C3%A9&&a=x&flag").unwrap();
        assert_eq!(f.get("a"), Some("1 2"));
        assert_eq!(f.all("a"), ["1 2", "x"]);
        assert_eq!(f.get("b"), Some("é"));
        assert_eq!(f.get("flag"), Some(""));
        assert_eq!(f.text("missing"), "");
        assert_eq!(Form::parse(b"a=%zz"), Err(FormError::BadEscape { at: 2 }));
        assert_eq!(
            Form::parse(b"ok=1&bad%4"),
            Err(FormError::BadEscape { at: 8 })
        );
        assert_eq!(Form::parse(b"a=%ff"), Err(FormError::DecodedNotUtf8));
        assert_eq!(Form::parse(b"a=\xff"), Err(FormError::NotUtf8));
        assert_eq!(decode_path(&encode("a b/é?&+")).unwrap(), "a b/é?&+");
        assert_eq!(decode_path("a+b").unwrap(), "a+b");
        let mut f = f.clone_without("a");
        f.push("c", "x y");
        assert_eq!(f.to_query(), "b=%C3%A9&c=x%20y");
        assert_eq!(
            Form::parse(f.to_query().as_bytes()).unwrap().get("c"),
            Some("x y")
        );
    }

    #[test]
    fn a_cookie_counts_only_when_sent_once() {
        let name = "__Host-latchkey-session";
        assert_eq!(
            cookie(["x=1; __Host-latchkey-session=abc"], name),
            Some("abc")
        );
        assert_eq!(
            cookie(
                [
                    "__Host-latchkey-session=abc",
                    "__Host-latchkey-session=evil"
                ],
                name
            ),
            None
        );
        assert_eq!(
            cookie(
                ["a=b; __Host-latchkey-session=x; __Host-latchkey-session=y"],
                name
            ),
            None
        );
        assert_eq!(
            cookie(["__host-latchkey-session=abc"], name),
            None,
            "names keep case"
        );
        assert_eq!(cookie(["x"], name), None);
    }
}
