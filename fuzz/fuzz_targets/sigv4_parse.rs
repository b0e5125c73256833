//! Presigned query strings and Authorization headers from untrusted clients.
#![no_main]

use latchkey_sigv4::{AuthorizationHeader, CanonicalRequest, PresignedQuery, canonical_uri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = PresignedQuery::parse(text);
    let _ = AuthorizationHeader::parse(text);
    let _ = canonical_uri(text);
    let (path, query) = text.split_once('?').unwrap_or((text, ""));
    if let Ok(cr) = CanonicalRequest::new("GET", path, query, "host", |_| Some("h"), "x") {
        let _ = cr.hash();
    }
});
