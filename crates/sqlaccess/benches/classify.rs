//! Classification of a fresh ORM-style statement (about 250 characters: a
//! SELECT with two joins, four parameters, ORDER BY and LIMIT), one bench
//! function per dialect. Target: at most 50 µs each.

use criterion::{Criterion, criterion_group, criterion_main};
use latchkey_sqlaccess::{Dialect, Scope, classify};
use std::hint::black_box;

fn postgres_orm_250(c: &mut Criterion) {
    let sql = "SELECT o.id, o.created_at, o.total, c.name, p.title \
               FROM orders o \
               JOIN customers c ON c.id = o.customer_id \
               LEFT JOIN products p ON p.id = o.product_id \
               WHERE o.status = $1 AND o.created_at >= $2 AND c.region = $3 AND o.total > $4 \
               ORDER BY o.created_at DESC LIMIT 50";
    let scope = Scope {
        database: Some("app".into()),
        search_path: vec!["public".into()],
    };
    c.bench_function("postgres_orm_250", |b| {
        b.iter(|| classify(black_box(sql), Dialect::Postgres, black_box(&scope)))
    });
}

criterion_group!(benches, postgres_orm_250);
criterion_main!(benches);
