//! What statement policy costs the gateway per statement
//! (`SessionStatements::rule`, as both trackers call it):
//!
//! - `cached`: a statement whose shape the session has seen, with a new
//!   literal each time (pgbench `-S`): normalisation, one lookup, and the
//!   decision kept for the second;
//! - `normalise_only`: the normalisation alone, which statement audit does
//!   anyway, to read the increment;
//! - `fresh_orm_250`: a statement never seen (a 250-character ORM query):
//!   classification with libpg_query and one policy decision per access.
//!
//! `cargo bench -p latchkey-gateway --bench statements`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use latchkey_framing::{Ruling, StatementGate};
use latchkey_gateway::statements::{ObjectTags, ServerCatalog, SessionStatements};
use latchkey_identity::AppState;
use latchkey_identity::clock::system_now as now;
use latchkey_store::{Database, Engine, PrincipalKind, StatementPolicy, Store, Vault};

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"rds-db:connect","Resource":"*"},
  {"Effect":"Allow","Action":["sql:Select","sql:Update","sql:Insert"],"Resource":"arn:aws:sql:*:*:table/*/bench/public/*"},
  {"Effect":"Allow","Action":"sql:Execute","Resource":"arn:aws:sql:*:*:function/*/*/pg_catalog/*"},
  {"Effect":"Deny","Action":"sql:*","Resource":"*","Condition":{"StringEquals":{"sql:ObjectTag/classification":"restricted"}}},
  {"Effect":"Deny","Action":["sql:Update","sql:Delete"],"Resource":"*","Condition":{"Bool":{"sql:WhereClausePresent":"false"}}}
]}"#;

fn session() -> (tempfile::TempDir, SessionStatements) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.db"), Vault::new(1, &[4; 32])).expect("store");
    let t = now();
    store.create_user("alice", "/", &[], t).expect("user");
    store
        .put_inline_policy(PrincipalKind::User, "alice", "sql", POLICY)
        .expect("policy");
    let (key, _secret) = store.create_access_key("alice", t).expect("key");
    let keys = store.cluster_keys(t).expect("keys");
    let state = Arc::new(AppState::new(store, keys).expect("state"));
    let caller = state
        .find_credentials(&key.id, None, t, "127.0.0.1")
        .expect("credentials")
        .caller;
    let db = Database {
        name: "bench".into(),
        engine: Engine::Postgres,
        resource_id: "db-BENCH".into(),
        statement_policy: StatementPolicy::Enforce,
        ..Database::default()
    };
    let catalog = ServerCatalog {
        search_path: Some("public".into()),
        ..ServerCatalog::default()
    };
    let gate = SessionStatements::new(
        state,
        caller,
        &db,
        Arc::new(ObjectTags::default()),
        true,
        Some("bench"),
        "app",
        Some(Arc::new(catalog)),
    )
    .expect("statement policy is on");
    (dir, gate)
}

fn allowed(r: Ruling) -> bool {
    matches!(r, Ruling::Pass(d) if d.allowed)
}

fn statements(c: &mut Criterion) {
    let (_dir, mut gate) = session();
    let texts: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                "SELECT abalance FROM pgbench_accounts WHERE aid = {}",
                48_213 + i
            )
        })
        .collect();
    assert!(allowed(gate.rule(&texts[0])));
    let mut i = 0;
    c.bench_function("cached", |b| {
        b.iter(|| {
            i = (i + 1) % texts.len();
            black_box(gate.rule(black_box(&texts[i])))
        })
    });
    let mut scratch = String::new();
    c.bench_function("normalise_only", |b| {
        b.iter(|| {
            i = (i + 1) % texts.len();
            black_box(latchkey_sqlnorm::normalize_into(
                black_box(&texts[i]),
                latchkey_sqlnorm::Dialect::Postgres,
                &mut scratch,
            ))
        })
    });
    let mut n = 0u64;
    c.bench_function("fresh_orm_250", |b| {
        b.iter(|| {
            n += 1;
            // A new alias each time: never seen, so classified afresh.
            let sql = format!(
                "SELECT o{n}.id, o{n}.total, c.email, p.name FROM orders o{n} \
                 JOIN customers c ON c.id = o{n}.customer_id JOIN products p ON p.id = o{n}.product_id \
                 WHERE o{n}.status = $1 AND c.tenant_id = $2 AND o{n}.created_at >= $3 AND p.price < $4 \
                 ORDER BY o{n}.created_at DESC LIMIT 50"
            );
            black_box(gate.rule(black_box(&sql)))
        })
    });
}

criterion_group!(benches, statements);
criterion_main!(benches);
