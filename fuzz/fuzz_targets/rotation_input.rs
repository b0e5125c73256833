//! What `RotateSecret` and the rotation job parse from callers: the
//! `RotationLambdaARN`, schedule expressions, and a database secret's
//! value. Each must parse or be refused, never panic; a value that parses
//! is written back (as the job writes the pending one) to text that
//! parses to the same value.
#![no_main]

use latchkey_secrets::{RotationFunction, Schedule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = RotationFunction::parse(text);
    if let Ok(Schedule::Cron(cron)) = Schedule::parse(text) {
        let _ = cron.next_after(1_800_000_000);
    }
    if let Ok(secret) = latchkey_rotation::Secret::parse(text) {
        let written = secret.to_json();
        let again = latchkey_rotation::Secret::parse(&written).expect("written value parses");
        assert!(again == secret, "the written value differs");
    }
});
