//! The statement guard on arbitrary bytes, both dialects, whole and cut
//! short, with and without the password and dynamic-SQL permissions:
//! never a panic, and a permission only ever lets more through. Also what
//! transaction pooling reads of the same SQL (`session_effects`), and the
//! prepared statement names the audit reads (`statement_names`).
#![no_main]

use latchkey_sqlguard::{Dialect, Rules, Verdict, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sql) = std::str::from_utf8(data) {
        let effects = latchkey_sqlguard::session_effects(sql, |name| name == "search_path");
        // Carrying nothing only ever pins more.
        let strict = latchkey_sqlguard::session_effects(sql, |_| false);
        if effects.pins.is_some() {
            assert!(strict.pins.is_some());
        }
        // What the audit reads of prepared statement names: never a panic.
        let _ = latchkey_sqlguard::statement_names(sql);
    }
    for dialect in [Dialect::Postgres, Dialect::MySql] {
        for complete in [true, false] {
            let strict = check(data, dialect, Rules::default(), complete);
            for (password, dynamic) in [(true, false), (false, true), (true, true)] {
                let allowed = check(
                    data,
                    dialect,
                    Rules {
                        allow_password_changes: password,
                        allow_dynamic_sql: dynamic,
                    },
                    complete,
                );
                // A permission only ever lets more through.
                if strict == Verdict::Allow {
                    assert_eq!(allowed, Verdict::Allow);
                }
            }
        }
    }
});
