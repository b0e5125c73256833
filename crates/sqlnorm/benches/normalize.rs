//! Statements normalised per second, one core: the gateways normalise every
//! audited statement on the session's thread, between the client's query
//! and its relay upstream.
//!
//! `cargo bench -p latchkey-sqlnorm --bench normalize`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use latchkey_sqlnorm::{Dialect, normalize};

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "pgbench_select",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 4242;",
        ),
        (
            "orm_update",
            "UPDATE \"orders\" SET \"status\" = 'shipped', \"updated_at\" = '2026-12-01 19:30:00+00', \
             \"note\" = E'left at the door\\nsigned' WHERE \"orders\".\"id\" = 918273 AND \"tenant_id\" IN (1, 2, 3) \
             /* app:checkout */ RETURNING \"id\", \"version\"",
        ),
    ];
    let mut group = c.benchmark_group("normalize");
    for (name, sql) in cases {
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| normalize(black_box(sql), Dialect::Postgres))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
