//! PostgreSQL startup packets and messages from untrusted clients, and the
//! message bodies the relay looks into.
#![no_main]

use latchkey_pgwire::{
    error_code, leading_str, leading_str_prefix, message_header, parse_auth, parse_bind,
    parse_close, parse_error, parse_parameter_status, parse_parse, parse_password, parse_startup,
    startup_length,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let _ = startup_length([data[0], data[1], data[2], data[3]]);
    }
    if data.len() >= 5 {
        let _ = message_header([data[0], data[1], data[2], data[3], data[4]], 1 << 20);
    }
    let _ = parse_startup(data);
    let _ = parse_password(data);
    let _ = parse_auth(data);
    let _ = parse_error(data);
    let _ = error_code(data);
    let _ = leading_str(data);
    let _ = leading_str_prefix(data);
    let _ = parse_parse(data);
    let _ = parse_bind(data);
    let _ = parse_close(data);
    let _ = parse_parameter_status(data);
});
