//! What authorising one connection costs on the token service's shared
//! state, cached path: the unique-id check of the caller and its role
//! chain, the principal's compiled policies, the request context and the
//! decision (`AppState::authorize_with`, as the gateways call it for
//! `rds-db:connect`); and the seen-signature set that decides whether a
//! login proves possession.
//!
//! `cargo bench -p latchkey-identity --bench authorize`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use latchkey_identity::AppState;
use latchkey_identity::clock::system_now as now;
use latchkey_identity::replay::SeenSignatures;
use latchkey_session::{Ancestor, SessionClaims};
use latchkey_store::{PrincipalKind, Store, Vault};

fn role_session_state() -> (tempfile::TempDir, AppState, SessionClaims) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.db"), Vault::new(1, &[4; 32])).expect("store");
    let t = now();
    let user = store.create_user("alice", "/", &[], t).expect("user");
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":"sts:AssumeRole"}}]}}"#,
        user.arn
    );
    let role = store
        .create_role(
            "reader",
            "/",
            &trust,
            3600,
            "",
            &[("env".into(), "dev".into())],
            t,
        )
        .expect("role");
    store
        .put_inline_policy(
            PrincipalKind::Role,
            "reader",
            "connect",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:us-east-1:*:dbuser:*/app","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#,
        )
        .expect("policy");
    let keys = store.cluster_keys(t).expect("keys");
    let state = AppState::new(store, keys).expect("state");
    let claims = SessionClaims {
        token_id: [7; 16],
        account: state.store.account_id().to_owned(),
        principal_arn: user.arn.clone(),
        principal_id: user.id.clone(),
        role_arn: role.arn.clone(),
        role_id: role.id.clone(),
        session_name: "bench".into(),
        issued: t,
        expires: t + 3600,
        lineage: vec![Ancestor {
            arn: user.arn,
            id: user.id,
            issued: t,
        }],
        ..SessionClaims::default()
    };
    (dir, state, claims)
}

fn authorize(c: &mut Criterion) {
    let (_dir, state, claims) = role_session_state();
    let sealed = state
        .keyring
        .read()
        .expect("ring")
        .seal(&claims, [0; 12])
        .expect("seal");
    let (caller, _) = state
        .credentials(
            &sealed.access_key_id,
            Some(&sealed.session_token),
            now(),
            "10.0.0.1",
        )
        .expect("credentials");
    let resource = format!(
        "arn:aws:rds-db:us-east-1:{}:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXYZ/app",
        caller.account
    );
    let context = [("aws:SecureTransport".to_owned(), "true".to_owned())];
    c.bench_function("authorize rds-db:connect, role session, cached", |b| {
        b.iter(|| {
            state
                .authorize_with(
                    black_box(&caller),
                    "rds-db:connect",
                    &resource,
                    now(),
                    &context,
                )
                .expect("allowed")
        })
    });
    c.bench_function("check_bound, role session with lineage, cached", |b| {
        b.iter(|| state.check_bound(black_box(&caller)).expect("bound"))
    });
}

fn seen_signatures(c: &mut Criterion) {
    const BATCH: u64 = 10_000;
    let t = now();
    let mut group = c.benchmark_group("seen signatures");
    group.throughput(Throughput::Elements(BATCH));
    // Fresh signatures into a set that grows to BATCH entries, as logins
    // with new tokens fill it.
    group.bench_function("first sight", |b| {
        b.iter_batched(
            || SeenSignatures::new(1 << 19),
            |seen| {
                for n in 0..BATCH {
                    let mut signature = [0u8; 32];
                    signature[..8].copy_from_slice(&n.to_le_bytes());
                    black_box(seen.first_sight(&signature, t + 900, t));
                }
                seen
            },
            BatchSize::LargeInput,
        )
    });
    let seen = SeenSignatures::new(1 << 19);
    let signatures: Vec<[u8; 32]> = (0..BATCH)
        .map(|n| {
            let mut signature = [0u8; 32];
            signature[..8].copy_from_slice(&n.to_le_bytes());
            seen.first_sight(&signature, t + 900, t);
            signature
        })
        .collect();
    group.bench_function("repeat", |b| {
        b.iter(|| {
            for signature in &signatures {
                black_box(seen.first_sight(signature, t + 900, t));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, authorize, seen_signatures);
criterion_main!(benches);
