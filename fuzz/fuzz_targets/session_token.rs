//! Session tokens from untrusted clients: opening must refuse anything the
//! key ring did not seal, and never panic.
#![no_main]

use latchkey_session::{ClusterKey, KeyRing, SessionClaims};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = SessionClaims::decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let ring = KeyRing::new(ClusterKey::new(1, &[7; 32]));
        assert!(ring.open(text).is_err(), "a fuzzer-made token opened");
    }
});
