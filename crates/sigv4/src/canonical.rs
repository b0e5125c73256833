//! The canonical request and the string to sign.
//!
//! Everything is streamed into the hash (or a buffer, for display) piece by
//! piece, so verification builds no intermediate strings when the sender
//! already encoded strictly, which every AWS SDK does.

use std::borrow::Cow;

use hmac::Mac;
use sha2::{Digest, Sha256};
use smallvec::SmallVec;

use crate::encoding::{self, canonicalize, is_unreserved};
use crate::error::Malformed;
use crate::key::{Scope, SigningKey};
use crate::time::AmzDate;

/// The only algorithm SigV4 defines for HMAC signatures.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// SHA-256 of the empty string: the payload hash of a presigned GET.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Query parameters beyond this are rejected: no real request needs more,
/// and it bounds the work an attacker can ask for.
pub const MAX_QUERY_PARAMETERS: usize = 64;

pub(crate) type QueryPairs<'a> = SmallVec<[(Cow<'a, str>, Cow<'a, str>); 16]>;
/// Raw `key=value` slices of a query string, in order, empty pairs skipped.
pub type RawPairs<'a> = SmallVec<[(&'a str, &'a str); 16]>;

/// Splits a raw query string once; every later stage works on the slices.
pub fn split_query(query: &str) -> Result<RawPairs<'_>, Malformed> {
    let mut pairs = RawPairs::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if pairs.len() == MAX_QUERY_PARAMETERS {
            return Err(Malformed::TooManyParameters(MAX_QUERY_PARAMETERS));
        }
        pairs.push(pair.split_once('=').unwrap_or((pair, "")));
    }
    Ok(pairs)
}
pub(crate) type HeaderPairs<'a> = SmallVec<[(&'a str, Cow<'a, str>); 8]>;

/// A canonical request, ready to be hashed.
pub struct CanonicalRequest<'a> {
    pub(crate) method: &'a str,
    pub(crate) uri: Cow<'a, str>,
    pub(crate) query: QueryPairs<'a>,
    /// Lowercase names, sorted, with canonical values.
    pub(crate) headers: HeaderPairs<'a>,
    pub(crate) payload_hash: &'a str,
}

impl<'a> CanonicalRequest<'a> {
    /// Builds the canonical form of a request.
    ///
    /// `path` is the request path as sent (already percent-encoded); `query`
    /// the raw query string without `?`; `signed` the lowercase names of the
    /// headers to sign, sorted; `header` looks a header up by lowercase name.
    pub fn new<'h: 'a>(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        signed: &'a str,
        header: impl Fn(&str) -> Option<&'h str>,
        payload_hash: &'a str,
    ) -> Result<Self, Malformed> {
        Self::from_pairs(
            method,
            path,
            &split_query(query)?,
            signed,
            header,
            payload_hash,
        )
    }

    /// As [`CanonicalRequest::new`], from a query already split.
    pub fn from_pairs<'h: 'a>(
        method: &'a str,
        path: &'a str,
        query: &[(&'a str, &'a str)],
        signed: &'a str,
        header: impl Fn(&str) -> Option<&'h str>,
        payload_hash: &'a str,
    ) -> Result<Self, Malformed> {
        Ok(Self {
            method,
            uri: canonical_uri(path),
            query: canonical_query(query)?,
            headers: canonical_headers(signed, header)?,
            payload_hash,
        })
    }

    fn write(&self, sink: &mut impl FnMut(&[u8])) {
        sink(self.method.as_bytes());
        sink(b"\n");
        sink(self.uri.as_bytes());
        sink(b"\n");
        for (i, (k, v)) in self.query.iter().enumerate() {
            if i > 0 {
                sink(b"&");
            }
            sink(k.as_bytes());
            sink(b"=");
            sink(v.as_bytes());
        }
        sink(b"\n");
        for (name, value) in &self.headers {
            sink(name.as_bytes());
            sink(b":");
            sink(value.as_bytes());
            sink(b"\n");
        }
        sink(b"\n");
        for (i, (name, _)) in self.headers.iter().enumerate() {
            if i > 0 {
                sink(b";");
            }
            sink(name.as_bytes());
        }
        sink(b"\n");
        sink(self.payload_hash.as_bytes());
    }

    /// The canonical request as text (for diagnostics and tests).
    pub fn to_text(&self) -> String {
        let mut out = Vec::with_capacity(512);
        self.write(&mut |b| out.extend_from_slice(b));
        String::from_utf8_lossy(&out).into_owned()
    }

    /// SHA-256 of the canonical request.
    pub fn hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        self.write(&mut |b| hasher.update(b));
        hasher.finalize().into()
    }

    /// The signature of this request under `key` at `time` in `scope`.
    pub fn sign(&self, key: &SigningKey, time: AmzDate, scope: &Scope<'_>) -> [u8; 32] {
        let hash = self.hash();
        let mut mac = key.mac();
        let mut hex = [0u8; 64];
        // Hex of a 32-byte hash into a 64-byte buffer cannot fail.
        let _ = hex::encode_to_slice(hash, &mut hex);
        mac.update(ALGORITHM.as_bytes());
        mac.update(b"\n");
        mac.update(&time.to_bytes());
        mac.update(b"\n");
        scope.feed(&mut |b| mac.update(b));
        mac.update(b"\n");
        mac.update(&hex);
        mac.finalize().into_bytes().into()
    }

    /// The string to sign (for diagnostics and tests).
    pub fn string_to_sign(&self, time: AmzDate, scope: &Scope<'_>) -> String {
        format!(
            "{ALGORITHM}\n{time}\n{}\n{}",
            scope.to_scope_string(),
            hex::encode(self.hash())
        )
    }
}

/// Canonical URI for every service but S3: dot segments and empty segments
/// removed, then the (already encoded) path encoded once more.
pub fn canonical_uri(path: &str) -> Cow<'_, str> {
    if path == "/" || path.is_empty() {
        return Cow::Borrowed("/");
    }
    let mut segments: SmallVec<[&str; 16]> = SmallVec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 8);
    for s in &segments {
        out.push('/');
        for &b in s.as_bytes() {
            if is_unreserved(b) {
                out.push(char::from(b));
            } else {
                encoding::encode_into(&[b], &mut out);
            }
        }
    }
    if segments.is_empty() || path.ends_with('/') {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Canonical query: each pair strictly re-encoded, `X-Amz-Signature`
/// dropped, sorted by key then value.
fn canonical_query<'a>(raw: &[(&'a str, &'a str)]) -> Result<QueryPairs<'a>, Malformed> {
    let mut pairs = QueryPairs::new();
    for &(key, value) in raw {
        if key == "X-Amz-Signature" {
            continue;
        }
        let key = canonicalize(key).map_err(|_| Malformed::Encoding("a query parameter name"))?;
        let value =
            canonicalize(value).map_err(|_| Malformed::Encoding("a query parameter value"))?;
        pairs.push((key, value));
    }
    pairs.sort_unstable();
    Ok(pairs)
}

/// Canonical headers for the names in `signed` (`a;b;c`, lowercase, sorted).
fn canonical_headers<'a, 'h: 'a>(
    signed: &'a str,
    header: impl Fn(&str) -> Option<&'h str>,
) -> Result<HeaderPairs<'a>, Malformed> {
    let mut out = HeaderPairs::new();
    let mut previous: Option<&str> = None;
    for name in signed.split(';') {
        if name.is_empty() {
            return Err(Malformed::SignedHeaders("empty header name"));
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Malformed::SignedHeaders("header names must be lowercase"));
        }
        if previous.is_some_and(|p| p >= name) {
            return Err(Malformed::SignedHeaders(
                "header names must be sorted and unique",
            ));
        }
        if out.len() == MAX_QUERY_PARAMETERS {
            return Err(Malformed::SignedHeaders("too many signed headers"));
        }
        previous = Some(name);
        let value = header(name).ok_or(Malformed::SignedHeaders(
            "a header listed as signed is missing from the request",
        ))?;
        out.push((name, canonical_header_value(value)));
    }
    if !out.iter().any(|(n, _)| *n == "host") {
        return Err(Malformed::SignedHeaders("the host header must be signed"));
    }
    Ok(out)
}

/// Trims the value and collapses inner runs of spaces to one.
pub fn canonical_header_value(value: &str) -> Cow<'_, str> {
    let trimmed = value.trim_matches(|c| c == ' ' || c == '\t');
    if !trimmed.contains("  ") && !trimmed.contains('\t') {
        return Cow::Borrowed(trimmed);
    }
    let mut out = String::with_capacity(trimmed.len());
    let mut last_space = false;
    for c in trimmed.chars() {
        let space = c == ' ' || c == '\t';
        if space && last_space {
            continue;
        }
        out.push(if space { ' ' } else { c });
        last_space = space;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_normalisation() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a/./b/../c"), "/a/c");
        assert_eq!(canonical_uri("//a//b/"), "/a/b/");
        assert_eq!(canonical_uri("/a%20b"), "/a%2520b");
        assert_eq!(canonical_uri("/.."), "/");
    }

    #[test]
    fn query_is_sorted_and_reencoded() {
        let raw = split_query("b=2&a=x%2fy&X-Amz-Signature=abc&&a=1&c").unwrap();
        let q = canonical_query(&raw).unwrap();
        let text: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(text, ["a=1", "a=x%2Fy", "b=2", "c="]);
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        assert_eq!(canonical_header_value("  a   b  c "), "a b c");
        assert_eq!(canonical_header_value("plain"), "plain");
    }

    #[test]
    fn signed_headers_are_checked() {
        let get = |n: &str| (n == "host").then_some("h");
        assert!(canonical_headers("host", get).is_ok());
        assert!(canonical_headers("Host", get).is_err());
        assert!(canonical_headers("host;host", get).is_err());
        assert!(canonical_headers("x-amz-date", |_| Some("x")).is_err());
        assert!(canonical_headers("host;x-missing", get).is_err());
        assert!(canonical_headers("", get).is_err());
    }
}
