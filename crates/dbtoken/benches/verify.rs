//! Token verification throughput, one core.
//!
//! `cargo bench -p latchkey-dbtoken --bench verify`
//!
//! Targets (issue 2): at least 300,000 verifications/s with a cached signing
//! key and 100,000/s without. Each iteration parses and verifies one token,
//! as the gateway does for every login.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use latchkey_dbtoken::{DbAuthToken, TokenRequest, TokenVerifier, generate};
use latchkey_sigv4::{AmzDate, Credentials};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn token(session_token: Option<String>) -> (String, AmzDate) {
    let time = AmzDate::parse("20240826T220000Z").expect("valid date");
    let creds = Credentials::new("AKIDEXAMPLE", SECRET, session_token);
    let req = TokenRequest::rds(
        "prod-instance.us-east-1.rds.amazonaws.com",
        5432,
        "app_user",
        "us-east-1",
        time,
    );
    (
        generate(&req, &creds).expect("token"),
        time.saturating_add(60),
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("token_verify");
    group.throughput(Throughput::Elements(1));
    // A realistic STS session token is several hundred bytes.
    let session = Some("IQoJb3JpZ2luX2VjE".repeat(40));
    for (label, session_token) in [("long_term", None), ("session", session)] {
        let (token, now) = token(session_token);
        let cached = TokenVerifier::new();
        group.bench_function(format!("cached_key/{label}"), |b| {
            b.iter(|| {
                let parsed = DbAuthToken::parse(black_box(&token)).expect("parses");
                cached
                    .verify(&parsed, SECRET.as_bytes(), now, Some("us-east-1"))
                    .expect("valid")
            })
        });
        let uncached = TokenVerifier::uncached();
        group.bench_function(format!("uncached_key/{label}"), |b| {
            b.iter(|| {
                let parsed = DbAuthToken::parse(black_box(&token)).expect("parses");
                uncached
                    .verify(&parsed, SECRET.as_bytes(), now, Some("us-east-1"))
                    .expect("valid")
            })
        });
    }
    group.finish();

    let time = AmzDate::parse("20240826T220000Z").expect("valid date");
    let creds = Credentials::new("AKIDEXAMPLE", SECRET, None);
    c.bench_function("token_generate", |b| {
        b.iter(|| {
            let req = TokenRequest::rds("db.example.com", 5432, "app_user", "us-east-1", time);
            generate(black_box(&req), &creds).expect("token")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
