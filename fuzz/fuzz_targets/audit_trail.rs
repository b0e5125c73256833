//! The audit trail's readers: record lines, digests, public keys, times,
//! and the verifier over arbitrary segments and digests. None may panic.
#![no_main]

use latchkey_audit::trail::{self, SegmentInput, Window};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = trail::parse_record(data);
    let key = [7u8; 32];
    let _ = trail::open_digest(data, &key);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = trail::parse_public_key(text);
        let _ = trail::parse_time_ms(text);
    }
    // Split into a segment and a digest at the first 0xff.
    let split = data.iter().position(|b| *b == 0xff).unwrap_or(data.len());
    let (segment, digest) = data.split_at(split);
    let segments = [SegmentInput {
        name: "trail-00000000000000000001.jsonl",
        bytes: segment,
    }];
    let digests = vec![("digest-000000000001.json".to_owned(), digest.to_vec())];
    let _ = trail::verify(&segments, &digests, &key, Window::default());
});
