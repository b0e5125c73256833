//! Anchor documents (`latchkey audit export-anchor`, `audit verify
//! --anchor FILE`, the store's copy): the parser refuses anything malformed
//! with a reason and never panics, and whatever it accepts reads back the
//! same from its own JSON.
#![no_main]

use latchkey_audit::anchor::{self, Anchor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = [7u8; 32];
    let _ = anchor::open_anchor(data, &key);
    if let Ok(a) = Anchor::parse(data) {
        let again = Anchor::parse(a.to_json().as_bytes());
        assert_eq!(
            again.as_ref(),
            Ok(&a),
            "an accepted anchor reads back the same"
        );
        let _ = a.check(&key);
    }
});
