//! The statement classifier on arbitrary UTF-8, both dialects, with a
//! two-schema scope (and catalogue facts read at login): never a panic, and every access names a database when
//! the scope has one.
#![no_main]

use latchkey_sqlaccess::{Dialect, Scope, classify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    // `lower` overloaded outside pg_catalog, `leak` callable as `t.leak`.
    let scope = Scope {
        database: Some("app".into()),
        search_path: vec!["s1".into(), "s2".into()],
        overloaded_functions: vec!["lower".into()],
        attribute_functions: vec!["leak".into()],
    };
    for dialect in [Dialect::Postgres, Dialect::MySql] {
        let out = classify(sql, dialect, &scope);
        for access in &out.accesses {
            assert!(!access.object.database.is_empty(), "{sql:?}: {access:?}");
        }
        // Without a scope, nothing panics either.
        classify(sql, dialect, &Scope::default());
    }
});
