//! SQL statements from untrusted clients on their way to the audit log:
//! normalizing must never panic and never blow up the output.
#![no_main]

use latchkey_sqlnorm::{Dialect, leading_keyword, leading_keyword_for, normalize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data);
    for dialect in [Dialect::Postgres, Dialect::MySql] {
        let n = normalize(&sql, dialect);
        assert!(n.text.len() <= 2 * sql.len() + 16);
        let _ = leading_keyword_for(&sql, dialect);
    }
    let _ = leading_keyword(&sql);
});
