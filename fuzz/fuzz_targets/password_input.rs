//! What console passwords read from outside: a stored hash (the store is
//! on disk), a password and a user name checked against a policy. None
//! panics; a hash that parses is Argon2id within the work limits; a
//! refusal names at least one requirement.
#![no_main]

use latchkey_password::{PasswordHash, PasswordPolicy, PolicyRequest, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if which % 2 == 0 {
        if let Ok(hash) = PasswordHash::parse(&text) {
            assert!(hash.as_str().starts_with("$argon2id$v=19$"));
        }
        return;
    }
    let (password, user) = text.split_once('\n').unwrap_or((&text, "user"));
    let request = PolicyRequest {
        minimum_length: Some(i64::from(which % 130)),
        require_symbols: Some(which & 2 != 0),
        require_numbers: Some(which & 4 != 0),
        require_uppercase: Some(which & 8 != 0),
        require_lowercase: Some(which & 16 != 0),
        ..Default::default()
    };
    let policy = PasswordPolicy::from_request(&request).ok();
    if let Err(v) = check(policy.as_ref(), password, user) {
        assert!(!v.0.is_empty());
    }
});
