//! Anything a KMS caller controls before a key is used: key ids, aliases,
//! encryption contexts and ciphertext blobs. Parsers return a reason and
//! never panic; a blob the fuzzer made never decrypts.
#![no_main]

use latchkey_kms::blob;
use latchkey_kms::context::EncryptionContext;
use latchkey_kms::key_id::{AliasName, KeyRef};
use libfuzzer_sys::fuzz_target;

const MATERIAL: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(key) = KeyRef::parse(&text, "us-east-1", "123456789012") {
                let _ = key.alias();
            }
            if let Ok(alias) = AliasName::parse(&text) {
                let _ = alias.arn("us-east-1", "123456789012");
            }
        }
        1 => {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) {
                if let Ok(context) = EncryptionContext::from_json(Some(&value)) {
                    let mut aad = Vec::new();
                    context.append_aad(&mut aad);
                }
            }
        }
        _ => {
            if blob::header(rest).is_ok() {
                let opened = blob::open(rest, &MATERIAL, &EncryptionContext::default());
                assert!(opened.is_err(), "a fuzzer-made blob decrypted");
            }
        }
    }
});
