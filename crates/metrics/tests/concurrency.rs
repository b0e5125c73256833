//! Several threads recording into the same metrics: nothing is lost.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use latchkey_metrics::{LATENCY_BUCKETS, Registry};

const THREADS: u64 = 4;
const PER_THREAD: u64 = 50_000;

/// The latencies each thread cycles through: 0, each bound exactly and
/// 1 ns past it, and 13 s, so every bucket (`+Inf` included) gets some and
/// the edges are exercised.
fn latencies() -> Vec<Duration> {
    let mut v = vec![Duration::ZERO];
    for &le in LATENCY_BUCKETS {
        // Rounded as the histogram rounds its bounds: 10 µs is 10,000 ns.
        let d = Duration::from_nanos((le * 1e9).round() as u64);
        v.extend([d, d + Duration::from_nanos(1)]);
    }
    v.push(Duration::from_secs(13));
    v
}

#[test]
fn threads_recording_at_once_lose_nothing() {
    let r = Registry::new();
    let tx = r.counter("tx_total", "").expect("register tx_total");
    let open = r.gauge("open", "").expect("register open");
    let lat = r
        .histogram("tx_seconds", "", LATENCY_BUCKETS)
        .expect("register tx_seconds");
    let by_outcome = r
        .counter_family("outcomes_total", "", ["outcome"], 4)
        .expect("register outcomes_total");

    let latencies = latencies();
    let latency = |i: u64| latencies[usize::try_from(i).expect("small") % latencies.len()];
    thread::scope(|s| {
        for t in 0..THREADS {
            let (tx, open, lat) = (Arc::clone(&tx), Arc::clone(&open), Arc::clone(&lat));
            let by_outcome = Arc::clone(&by_outcome);
            s.spawn(move || {
                // Cached once, as a hot path does.
                let ok = by_outcome.get_or_create(&["ok"]);
                for i in 0..PER_THREAD {
                    open.inc();
                    tx.inc();
                    lat.observe(latency(i));
                    if i % 10 == 0 {
                        // Looked up each time, racing the other threads.
                        by_outcome.get_or_create(&[&format!("err{}", t % 2)]).add(2);
                    } else {
                        ok.inc();
                    }
                    open.dec();
                }
            });
        }
    });

    let n = THREADS * PER_THREAD;
    assert_eq!(tx.get(), n);
    assert_eq!(open.get(), 0);
    assert_eq!(lat.count(), n);

    // What each bucket should hold, counted here without the histogram.
    let mut expected = vec![0u64; LATENCY_BUCKETS.len() + 1];
    let mut sum = Duration::ZERO;
    for i in 0..PER_THREAD {
        let d = latency(i);
        sum += d;
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&le| d.as_secs_f64() <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        expected[bucket] += THREADS;
    }
    let cumulative: Vec<u64> = expected
        .iter()
        .scan(0, |acc, n| {
            *acc += n;
            Some(*acc)
        })
        .collect();
    assert_eq!(lat.cumulative_counts(), cumulative);
    assert_eq!(lat.sum(), sum * u32::try_from(THREADS).expect("small"));
    assert!(
        expected.iter().all(|&c| c > 0),
        "every bucket should be exercised: {expected:?}"
    );

    let errs = PER_THREAD.div_ceil(10);
    assert_eq!(by_outcome.len(), 3);
    assert_eq!(
        by_outcome.get_or_create(&["ok"]).get(),
        THREADS * (PER_THREAD - errs)
    );
    for e in ["err0", "err1"] {
        assert_eq!(by_outcome.get_or_create(&[e]).get(), 2 * 2 * errs, "{e}");
    }

    let text = r.render();
    assert!(text.contains(&format!("\ntx_total {n}\n")), "{text}");
    assert!(
        text.contains(&format!("\ntx_seconds_bucket{{le=\"+Inf\"}} {n}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\ntx_seconds_count {n}\n")),
        "{text}"
    );
}
