//! AWS JSON 1.1 requests from untrusted clients: targets and bodies must
//! parse or be refused, never panic, and no secret member may survive
//! into the audit trail's request parameters.
#![no_main]

use latchkey_awsjson::{
    blob, bool_field, int_field, is_secret_field, parse_body, parse_target, request_parameters,
    string, string_list, tags,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SECRET_FIELDS: &[&str] = &[
    "SecretString",
    "SecretBinary",
    "RandomPassword",
    "Plaintext",
];

fn no_secret_keys(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .all(|(k, v)| !is_secret_field(k, SECRET_FIELDS) && no_secret_keys(v)),
        Value::Array(items) => items.iter().all(no_secret_keys),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    // The first line is the X-Amz-Target, the rest the body.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (target, body) = data.split_at(split);
    if let Ok(target) = std::str::from_utf8(target) {
        let _ = parse_target(target);
    }
    let Ok(input) = parse_body(body.get(1..).unwrap_or_default()) else {
        return;
    };
    for name in input.keys() {
        let _ = string(&input, name);
        let _ = bool_field(&input, name);
        let _ = int_field(&input, name, 1, 4096);
        let _ = string_list(&input, name);
        let _ = blob(&input, name);
        let _ = tags(&input, name);
    }
    if let Some(text) = request_parameters(&input, SECRET_FIELDS) {
        let v: Value = serde_json::from_str(&text).expect("request parameters are JSON");
        assert!(no_secret_keys(&v), "a secret member survived: {text}");
    }
});
