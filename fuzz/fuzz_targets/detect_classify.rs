//! The destructive-statement classifier and the detection config parser
//! on arbitrary text: no panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = latchkey_detect::is_destructive(text);
        let _ = serde_json::from_str::<latchkey_detect::DetectConfig>(text);
    }
});
