//! SQL statements from untrusted clients on their way to the audit log:
//! normalizing must never panic and never blow up the output.
#![no_main]

use latchkey_sqlnorm::{
    Dialect, Reading, leading_keyword, leading_keyword_for, normalize, normalize_read_into,
    readings_agree,
};
use libfuzzer_sys::fuzz_target;

fn normalize_read(sql: &str, dialect: Dialect, reading: Reading) -> String {
    let mut text = String::new();
    normalize_read_into(sql, dialect, reading, &mut text);
    text
}

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data);
    for dialect in [Dialect::Postgres, Dialect::MySql] {
        let n = normalize(&sql, dialect);
        assert!(n.text.len() <= 2 * sql.len() + 16);
        let _ = leading_keyword_for(&sql, dialect);
        for &reading in Reading::all(dialect) {
            let n = normalize_read(&sql, dialect, reading);
            assert!(n.len() <= 2 * sql.len() + 16);
            // A reading agrees with itself.
            assert!(readings_agree(&sql, dialect, reading, reading));
        }
    }
    let _ = leading_keyword(&sql);
});
