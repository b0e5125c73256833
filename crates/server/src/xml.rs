//! The AWS Query protocol's response side: `<{Op}Response>` envelopes and
//! `<ErrorResponse>`, as botocore's query parser reads them.

use std::fmt::Write;

pub const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
pub const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// Escapes text for element content and attribute values. A character
/// XML 1.0 cannot carry at all (a control character other than tab and
/// newline, U+FFFE, U+FFFF), even as a reference, becomes U+FFFD: a
/// request's text echoed in a message must not make the whole response
/// unreadable. A carriage return is kept as a reference, which parsers
/// do not fold into a newline.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                out.push('\u{FFFD}');
            }
            c => out.push(c),
        }
    }
    out
}

/// Builds the inside of a `<{Op}Result>`.
#[derive(Default)]
pub struct Xml {
    buf: String,
}

impl Xml {
    pub fn new() -> Self {
        Self::default()
    }

    /// `<name>text</name>`.
    pub fn text(&mut self, name: &str, text: &str) -> &mut Self {
        let _ = write!(self.buf, "<{name}>{}</{name}>", escape(text));
        self
    }

    /// `<name>...</name>` with children written by `f`.
    pub fn node(&mut self, name: &str, f: impl FnOnce(&mut Xml)) -> &mut Self {
        let _ = write!(self.buf, "<{name}>");
        f(self);
        let _ = write!(self.buf, "</{name}>");
        self
    }

    /// `<name><member>...</member>...</name>`.
    pub fn members<T>(
        &mut self,
        name: &str,
        items: &[T],
        mut f: impl FnMut(&mut Xml, &T),
    ) -> &mut Self {
        self.node(name, |x| {
            for item in items {
                x.node("member", |x| f(x, item));
            }
        })
    }

    pub fn into_string(self) -> String {
        self.buf
    }
}

/// A success envelope.
pub fn response(op: &str, ns: &str, result: Option<String>, request_id: &str) -> String {
    let result = match result {
        Some(r) => format!("<{op}Result>{r}</{op}Result>"),
        None => String::new(),
    };
    format!(
        "<{op}Response xmlns=\"{ns}\">{result}<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{op}Response>"
    )
}

/// An error envelope.
pub fn error(ns: &str, sender: bool, code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{ns}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
        if sender { "Sender" } else { "Receiver" },
        escape(code),
        escape(message)
    )
}

/// ISO 8601 with milliseconds, as AWS writes timestamps.
pub fn timestamp(unix: i64) -> String {
    latchkey_sigv4::AmzDate::from_unix(unix)
        .map(|d| d.to_rfc3339().replace('Z', ".000Z"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        let mut x = Xml::new();
        x.text("Arn", "a<b").node("Tags", |x| {
            x.text("K", "v");
        });
        assert_eq!(x.into_string(), "<Arn>a&lt;b</Arn><Tags><K>v</K></Tags>");
        assert_eq!(
            response("GetCallerIdentity", STS_NS, Some("<A>1</A>".into()), "r1"),
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><A>1</A></GetCallerIdentityResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        );
        assert!(
            error(STS_NS, true, "AccessDenied", "no & no", "r")
                .contains("<Message>no &amp; no</Message>")
        );
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn characters_xml_cannot_carry_are_replaced() {
        assert_eq!(
            escape("a\u{1}b\u{1b}[31m\tc\nd\re\u{FFFF}"),
            "a\u{FFFD}b\u{FFFD}[31m\tc\nd&#13;e\u{FFFD}"
        );
    }
}
