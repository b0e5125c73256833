//! `~/.aws/credentials` and `~/.aws/config` contents.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = latchkey_awsconfig::ini::parse(text);
    }
});
