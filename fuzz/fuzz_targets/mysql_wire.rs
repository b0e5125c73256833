//! Every MySQL/MariaDB protocol parser and the response tracker on
//! arbitrary bytes (`latchkey_mywire::fuzz_all`): no panics, and what
//! parses and can be written back parses again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| latchkey_mywire::fuzz_all(data));
