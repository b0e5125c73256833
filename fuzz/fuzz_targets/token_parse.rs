//! Any bytes presented as a password: parsing and verification must return
//! a reason, never panic, and never accept without the right secret.
#![no_main]

use latchkey_dbtoken::{DbAuthToken, TokenVerifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = DbAuthToken::parse_bytes(data) else {
        return;
    };
    let _ = token.canonical_host();
    let now = token.issued_at();
    // The fuzzer cannot forge an HMAC: a token it built must not verify.
    let verdict = TokenVerifier::new().verify(&token, b"fuzz-secret", now, None);
    assert!(verdict.is_err(), "a fuzzer-made token verified");
});
