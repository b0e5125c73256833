//! The MySQL half of the classifier benchmark (kept apart so the
//! PostgreSQL half can be merged beside it).

use criterion::Criterion;
use latchkey_sqlaccess::{Dialect, Scope, classify};

/// A fresh ~250-character ORM-style statement: two joins, four `?`
/// parameters, ORDER BY, LIMIT. Target: at most 50 µs.
pub const MYSQL_ORM_250: &str = "SELECT o.id, o.total, c.email, p.name FROM orders o \
     JOIN customers c ON c.id = o.customer_id JOIN products p ON p.id = o.product_id \
     WHERE o.status = ? AND c.tenant_id = ? AND o.created_at >= ? AND p.price < ? \
     ORDER BY o.created_at DESC LIMIT 50";

pub fn mysql_orm_250(c: &mut Criterion) {
    let scope = Scope {
        database: Some("shop".into()),
        search_path: Vec::new(),
        overloaded_functions: Vec::new(),
        attribute_functions: Vec::new(),
    };
    c.bench_function("mysql_orm_250", |b| {
        b.iter(|| classify(std::hint::black_box(MYSQL_ORM_250), Dialect::MySql, &scope))
    });
}
