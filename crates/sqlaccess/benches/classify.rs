//! How long [`latchkey_sqlaccess::classify`] takes on a fresh ORM-style
//! statement of about 250 characters (target: at most 50 µs).

use criterion::{Criterion, criterion_group, criterion_main};
use latchkey_sqlaccess::{Dialect, Scope, classify};

#[path = "mysql/orm.rs"]
mod mysql;

/// The PostgreSQL statement equivalent to [`mysql::MYSQL_ORM_250`].
const POSTGRES_ORM_250: &str = "SELECT o.id, o.total, c.email, p.name FROM orders o \
     JOIN customers c ON c.id = o.customer_id JOIN products p ON p.id = o.product_id \
     WHERE o.status = $1 AND c.tenant_id = $2 AND o.created_at >= $3 AND p.price < $4 \
     ORDER BY o.created_at DESC LIMIT 50";

fn postgres_orm_250(c: &mut Criterion) {
    let scope = Scope {
        database: Some("shop".into()),
        search_path: vec!["public".into()],
        overloaded_functions: Vec::new(),
        attribute_functions: Vec::new(),
    };
    c.bench_function("postgres_orm_250", |b| {
        b.iter(|| {
            classify(
                std::hint::black_box(POSTGRES_ORM_250),
                Dialect::Postgres,
                &scope,
            )
        })
    });
}

criterion_group!(benches, postgres_orm_250, mysql::mysql_orm_250);
criterion_main!(benches);
