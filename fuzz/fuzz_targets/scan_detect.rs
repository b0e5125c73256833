//! What `latchkey scan` reads: any bytes at all (files, git blobs,
//! standard input). The detectors never panic, and each finding names
//! bytes that are in the input, on the line and column it gives, whether
//! the input is scanned whole or in pieces (`StreamScan`, with chunks
//! small enough that the input is cut many times).
#![no_main]

use latchkey_scan::{Finding, Scanner, StreamScan};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static SCANNER: OnceLock<Scanner> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let scanner = SCANNER.get_or_init(Scanner::new);
    check(data, scanner.scan(data));
    // In pieces: the first byte picks the chunk size.
    let chunk = 64 + usize::from(data.first().copied().unwrap_or(0)) * 8;
    let mut stream = StreamScan::with_sizes(scanner, chunk, chunk / 4);
    let mut found = Vec::new();
    for piece in data.chunks(37) {
        found.extend(stream.push(piece));
    }
    found.extend(stream.finish());
    check(data, found);
});

fn check(data: &[u8], found: Vec<Finding>) {
    for f in found {
        assert!(f.start <= f.end && f.end <= data.len(), "{f:?}");
        assert_eq!(
            f.secret.expose(),
            String::from_utf8_lossy(&data[f.start..f.end]),
            "{f:?}"
        );
        let line = data[..f.start].iter().filter(|b| **b == b'\n').count() + 1;
        assert_eq!(f.line, line, "{f:?}");
        assert!(f.column >= 1);
        // Debug shows no secret (a key id alone is its own "secret", and
        // is not one).
        if f.key_id.as_deref() != Some(f.secret.expose()) && f.secret.expose().len() >= 16 {
            assert!(!format!("{f:?}").contains(f.secret.expose()), "{f:?}");
        }
    }
}
