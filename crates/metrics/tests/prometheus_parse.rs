//! The rendered text, read back by a parser we did not write
//! (`prometheus-parse`): every line is understood, and gives back the
//! values and labels that were recorded.
//!
//! That parser neither unescapes label values nor allows `,` `=` `}` in
//! them, so escaping is checked by the crate's own tests; here the values
//! are plain.

use std::collections::HashMap;
use std::time::Duration;

use latchkey_metrics::{LATENCY_BUCKETS, Registry};
use prometheus_parse::{HistogramCount, LineInfo, Sample, Scrape, Value};

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parse the rendered text")
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The one sample named `metric` with exactly these labels.
fn sample<'a>(scrape: &'a Scrape, metric: &str, want: &[(&str, &str)]) -> &'a Sample {
    let want = labels(want);
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && *s.labels == want)
        .collect();
    assert_eq!(found.len(), 1, "{metric} {want:?}: {:?}", scrape.samples);
    found[0]
}

fn buckets(bounds: &[f64], cumulative: &[u64]) -> Value {
    Value::Histogram(
        bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(cumulative)
            .map(|(less_than, &count)| HistogramCount {
                less_than,
                count: count as f64,
            })
            .collect(),
    )
}

#[test]
fn a_rendered_registry_parses_back_to_what_was_recorded() {
    let r = Registry::new();

    let tx = r
        .counter("latchkey_transactions_total", "Transactions relayed.")
        .expect("register counter");
    tx.add(30_000);

    let sessions = r
        .gauge("latchkey_sessions", "Sessions open.")
        .expect("register gauge");
    sessions.set(-3);

    r.gauge_fn("latchkey_queue_depth", "Queued audit events.", || 17)
        .expect("register gauge_fn");

    let auth = r
        .counter_family(
            "latchkey_auth_total",
            "Authentications by outcome and method.",
            ["outcome", "method"],
            3,
        )
        .expect("register counter family");
    auth.get_or_create(&["success", "iam"]).add(5);
    auth.get_or_create(&["failure", "iam"]).add(2);
    auth.get_or_create(&["success", "password"]).inc();
    // Past the cap of 3: these fold into the overflow series.
    auth.get_or_create(&["denied by policy", "iam"]).add(4);
    auth.get_or_create(&["x", "y"]).inc();

    let pool = r
        .gauge_family(
            "latchkey_pool_idle",
            "Idle upstream connections.",
            ["db"],
            10,
        )
        .expect("register gauge family");
    pool.get_or_create(&["orders"]).set(12);
    pool.get_or_create(&["users"]).set(0);

    let latency = r
        .histogram(
            "latchkey_transaction_seconds",
            "Transaction latency.",
            LATENCY_BUCKETS,
        )
        .expect("register histogram");
    for us in [5, 10, 80, 900, 900, 20_000, 3_000_000, 12_000_000] {
        latency.observe(Duration::from_micros(us));
    }

    let by_db = r
        .histogram_family(
            "latchkey_query_seconds",
            "Query latency by database.",
            ["db"],
            &[0.001, 0.1],
            10,
        )
        .expect("register histogram family");
    by_db.get_or_create(&["orders"]).observe_secs(0.0005);
    by_db.get_or_create(&["orders"]).observe_secs(0.05);
    by_db.get_or_create(&["users"]).observe_secs(0.5);

    let text = r.render();

    // Every line is one the parser understands: nothing skipped.
    for line in text.lines() {
        let info = LineInfo::parse(line);
        let ok = if line.starts_with("# HELP ") {
            matches!(info, LineInfo::Doc { .. })
        } else if line.starts_with("# TYPE ") {
            matches!(info, LineInfo::Type { .. })
        } else {
            matches!(info, LineInfo::Sample { .. })
        };
        assert!(ok, "{line:?} read as {info:?}");
    }

    let s = parse(&text);

    for (name, help) in [
        ("latchkey_transactions_total", "Transactions relayed."),
        ("latchkey_sessions", "Sessions open."),
        ("latchkey_queue_depth", "Queued audit events."),
        (
            "latchkey_auth_total",
            "Authentications by outcome and method.",
        ),
        ("latchkey_pool_idle", "Idle upstream connections."),
        ("latchkey_transaction_seconds", "Transaction latency."),
        ("latchkey_query_seconds", "Query latency by database."),
    ] {
        assert_eq!(s.docs.get(name).map(String::as_str), Some(help), "{name}");
    }

    assert_eq!(
        sample(&s, "latchkey_transactions_total", &[]).value,
        Value::Counter(30_000.0)
    );
    assert_eq!(
        sample(&s, "latchkey_sessions", &[]).value,
        Value::Gauge(-3.0)
    );
    assert_eq!(
        sample(&s, "latchkey_queue_depth", &[]).value,
        Value::Gauge(17.0)
    );

    for (outcome, method, n) in [
        ("success", "iam", 5.0),
        ("failure", "iam", 2.0),
        ("success", "password", 1.0),
        ("other", "other", 5.0),
    ] {
        assert_eq!(
            sample(
                &s,
                "latchkey_auth_total",
                &[("outcome", outcome), ("method", method)]
            )
            .value,
            Value::Counter(n),
            "{outcome} {method}"
        );
    }

    assert_eq!(
        sample(&s, "latchkey_pool_idle", &[("db", "orders")]).value,
        Value::Gauge(12.0)
    );
    assert_eq!(
        sample(&s, "latchkey_pool_idle", &[("db", "users")]).value,
        Value::Gauge(0.0)
    );

    // 5 µs, 10 µs (on the first bound), 80 µs, 900 µs twice, 20 ms, 3 s,
    // and 12 s (past the last bound).
    assert_eq!(
        sample(&s, "latchkey_transaction_seconds", &[]).value,
        buckets(
            LATENCY_BUCKETS,
            &[2, 2, 2, 3, 3, 3, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 7, 8]
        )
    );
    // The parser leaves _sum and _count as untyped samples.
    assert_eq!(
        sample(&s, "latchkey_transaction_seconds_sum", &[]).value,
        Value::Untyped(15.021895)
    );
    assert_eq!(
        sample(&s, "latchkey_transaction_seconds_count", &[]).value,
        Value::Untyped(8.0)
    );

    assert_eq!(
        sample(&s, "latchkey_query_seconds", &[("db", "orders")]).value,
        buckets(&[0.001, 0.1], &[1, 2, 2])
    );
    assert_eq!(
        sample(&s, "latchkey_query_seconds", &[("db", "users")]).value,
        buckets(&[0.001, 0.1], &[0, 0, 1])
    );
    assert_eq!(
        sample(&s, "latchkey_query_seconds_sum", &[("db", "orders")]).value,
        Value::Untyped(0.0505)
    );
    assert_eq!(
        sample(&s, "latchkey_query_seconds_count", &[("db", "users")]).value,
        Value::Untyped(1.0)
    );

    // Nothing more than that: 3 plain, 4 + 2 family series, and for the
    // three histogram series one grouped sample plus _sum and _count each.
    assert_eq!(s.samples.len(), 3 + 4 + 2 + 3 * 3, "{:?}", s.samples);
}

#[test]
fn an_empty_registry_and_empty_families_parse_to_nothing() {
    let r = Registry::new();
    assert_eq!(r.render(), "");
    r.counter_family("unused_total", "Never touched.", ["a"], 4)
        .expect("register family");
    let s = parse(&r.render());
    assert!(s.samples.is_empty(), "{:?}", s.samples);
    assert_eq!(
        s.docs.get("unused_total").map(String::as_str),
        Some("Never touched.")
    );
}
