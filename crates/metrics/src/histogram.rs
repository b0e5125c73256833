//! Histograms with fixed buckets.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::MetricsError;
use crate::metric::{Metric, sealed};
use crate::text::{Kind, Value, push_f64, push_sample};

/// Upper bounds, in seconds, for latencies from 10 µs to 10 s: a
/// transaction through the gateway on a local network takes from tens of
/// microseconds to a few milliseconds; connecting and authenticating, up to
/// seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Validated upper bounds, shared by every histogram of a family.
#[derive(Debug)]
pub(crate) struct Bounds {
    /// As given, for `le`.
    secs: Box<[f64]>,
    /// The same in nanoseconds, rounded: what observations are compared
    /// with.
    nanos: Box<[u64]>,
    /// Each `le` value, formatted once.
    labels: Box<[String]>,
}

impl Bounds {
    /// Bounds must be finite, at least 0, at most `u64::MAX` nanoseconds,
    /// and strictly increasing at nanosecond resolution. `+Inf` is implicit
    /// and must not be given.
    pub(crate) fn new(secs: &[f64]) -> Result<Arc<Bounds>, MetricsError> {
        let mut nanos: Vec<u64> = Vec::with_capacity(secs.len());
        for (index, &s) in secs.iter().enumerate() {
            let reason = if !s.is_finite() {
                Some("must be finite (+Inf is implicit)")
            } else if s < 0.0 {
                Some("must not be negative")
            } else if (s * 1e9).round() >= u64::MAX as f64 {
                Some("too large")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(MetricsError::InvalidBucket { index, reason });
            }
            // In range: checked above.
            let n = (s * 1e9).round() as u64;
            if let Some(&prev) = nanos.last()
                && n <= prev
            {
                return Err(MetricsError::InvalidBucket {
                    index,
                    reason: "must be greater than the one before (to the nanosecond)",
                });
            }
            nanos.push(n);
        }
        let labels = secs
            .iter()
            .map(|&s| {
                let mut l = String::new();
                push_f64(&mut l, s);
                l
            })
            .collect();
        Ok(Arc::new(Bounds {
            secs: secs.into(),
            nanos: nanos.into(),
            labels,
        }))
    }
}

/// Observations counted into fixed buckets, as Prometheus's histogram.
///
/// Recording is a binary search over the bounds and two relaxed
/// `fetch_add`s: one on the observation's bucket, one on the sum (kept in
/// nanoseconds, so it adds exactly; it wraps after 584 years of summed
/// time). The count is the sum of the buckets, so a render always shows
/// `_count` equal to the `+Inf` bucket.
pub struct Histogram {
    bounds: Arc<Bounds>,
    /// Not cumulative: `buckets[i]` counts observations in
    /// `(bound[i-1], bound[i]]`; the last one those above every bound.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// A histogram with these upper bounds, in seconds (see
    /// [`LATENCY_BUCKETS`]). They must be finite, at least 0 and strictly
    /// increasing to the nanosecond; `+Inf` is implicit.
    pub fn new(bounds: &[f64]) -> Result<Histogram, MetricsError> {
        Ok(Histogram::with_bounds(Bounds::new(bounds)?))
    }

    pub(crate) fn with_bounds(bounds: Arc<Bounds>) -> Histogram {
        let buckets = (0..=bounds.nanos.len())
            .map(|_| AtomicU64::new(0))
            .collect();
        Histogram {
            bounds,
            buckets,
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records a duration. Durations past `u64::MAX` nanoseconds count as
    /// that.
    #[inline]
    pub fn observe(&self, d: Duration) {
        self.observe_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records a value in seconds, rounded to the nanosecond. Negative
    /// values and NaN count as 0; values too large for `u64` nanoseconds,
    /// as the largest.
    #[inline]
    pub fn observe_secs(&self, secs: f64) {
        // `as` saturates, and turns NaN into 0.
        self.observe_nanos((secs * 1e9).round() as u64);
    }

    #[inline]
    fn observe_nanos(&self, nanos: u64) {
        let i = self.bounds.nanos.partition_point(|&b| b < nanos);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Relaxed);
        }
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// The upper bounds, in seconds, as given (without `+Inf`).
    pub fn bounds(&self) -> &[f64] {
        &self.bounds.secs
    }

    /// How many observations each bucket holds, cumulatively as Prometheus
    /// shows them: one per bound, then the `+Inf` bucket (the count).
    pub fn cumulative_counts(&self) -> Vec<u64> {
        let mut total = 0u64;
        self.buckets
            .iter()
            .map(|b| {
                total = total.wrapping_add(b.load(Relaxed));
                total
            })
            .collect()
    }

    /// How many observations have been recorded.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |t, b| t.wrapping_add(b.load(Relaxed)))
    }

    /// The sum of the observations.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos.load(Relaxed))
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("bounds", &self.bounds.secs)
            .field("cumulative_counts", &self.cumulative_counts())
            .field("sum", &self.sum())
            .finish()
    }
}

impl Metric for Histogram {}

impl sealed::Sealed for Histogram {
    const KIND: Kind = Kind::Histogram;

    fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let cumulative = self.cumulative_counts();
        let count = cumulative.last().copied().unwrap_or(0);
        for (le, n) in self.bounds.labels.iter().zip(&cumulative) {
            push_sample(
                out,
                name,
                "_bucket",
                labels,
                Some(("le", le)),
                Value::U64(*n),
            );
        }
        push_sample(
            out,
            name,
            "_bucket",
            labels,
            Some(("le", "+Inf")),
            Value::U64(count),
        );
        // Correctly rounded while the sum is under 2^53 ns (104 days).
        let secs = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        push_sample(out, name, "_sum", labels, None, Value::F64(secs));
        push_sample(out, name, "_count", labels, None, Value::U64(count));
    }
}

#[cfg(test)]
mod tests {
    use super::sealed::Sealed;
    use super::*;

    fn hist(bounds: &[f64]) -> Histogram {
        Histogram::new(bounds).expect("valid bounds")
    }

    #[test]
    fn latency_buckets_are_valid_and_span_10us_to_10s() {
        let h = hist(LATENCY_BUCKETS);
        assert_eq!(h.bounds().first(), Some(&0.00001));
        assert_eq!(h.bounds().last(), Some(&10.0));
        assert_eq!(h.cumulative_counts().len(), LATENCY_BUCKETS.len() + 1);
    }

    #[test]
    fn an_observation_on_a_bound_counts_in_that_bucket() {
        // le means "less than or equal".
        let h = hist(LATENCY_BUCKETS);
        h.observe(Duration::from_micros(10));
        assert_eq!(h.cumulative_counts()[0], 1);
        h.observe_secs(0.00001);
        assert_eq!(h.cumulative_counts()[0], 2);
        h.observe(Duration::from_nanos(10_001));
        assert_eq!(h.cumulative_counts()[..2], [2, 3]);
        h.observe_secs(0.001);
        assert_eq!(h.cumulative_counts()[5..7], [3, 4]);
    }

    #[test]
    fn buckets_are_cumulative() {
        let h = hist(&[0.001, 0.01, 0.1]);
        for ms in [0, 1, 1, 2, 10, 50, 100, 101, 5000] {
            h.observe(Duration::from_millis(ms));
        }
        // <=1ms: 0,1,1; <=10ms: +2,10; <=100ms: +50,100; +Inf: +101,5000.
        assert_eq!(h.cumulative_counts(), vec![3, 5, 7, 9]);
        assert_eq!(h.count(), 9);
        assert_eq!(h.sum(), Duration::from_millis(5265));
    }

    #[test]
    fn observe_secs_rounds_to_the_nanosecond_and_clamps() {
        let h = hist(&[0.0, 1.0]);
        h.observe_secs(-1.0);
        h.observe_secs(f64::NAN);
        h.observe_secs(0.4e-9); // rounds to 0
        assert_eq!(h.cumulative_counts(), vec![3, 3, 3]);
        assert_eq!(h.sum(), Duration::ZERO);
        h.observe_secs(0.25);
        h.observe_secs(1.5);
        assert_eq!(h.cumulative_counts(), vec![3, 4, 5]);
        assert_eq!(h.sum(), Duration::from_millis(1750));
        h.observe_secs(f64::INFINITY);
        assert_eq!(h.cumulative_counts(), vec![3, 4, 6]);
    }

    #[test]
    fn huge_durations_land_in_inf() {
        let h = hist(&[1.0]);
        h.observe(Duration::MAX);
        assert_eq!(h.cumulative_counts(), vec![0, 1]);
        assert_eq!(h.sum(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn no_bounds_means_only_inf() {
        let h = hist(&[]);
        h.observe(Duration::from_secs(3));
        assert_eq!(h.cumulative_counts(), vec![1]);
        let mut out = String::new();
        h.render(&mut out, "x", &[]);
        assert_eq!(
            out, "x_bucket{le=\"+Inf\"} 1\nx_sum 3\nx_count 1\n",
            "{out}"
        );
    }

    #[test]
    fn bounds_are_validated() {
        for (bounds, index) in [
            (&[1.0, f64::INFINITY][..], 1),
            (&[f64::NAN][..], 0),
            (&[-0.5, 1.0][..], 0),
            (&[1.0, 1.0][..], 1),
            (&[2.0, 1.0][..], 1),
            (&[1e-10, 2e-10][..], 1), // both round to 0 ns
            (&[1e11][..], 0),         // > u64::MAX ns
        ] {
            match Histogram::new(bounds) {
                Err(MetricsError::InvalidBucket { index: i, .. }) => {
                    assert_eq!(i, index, "{bounds:?}");
                }
                other => panic!("{bounds:?}: {other:?}"),
            }
        }
        assert!(Histogram::new(&[0.0, 1e-9, 1e10]).is_ok());
    }

    #[test]
    fn renders_cumulative_buckets_then_sum_and_count() {
        let h = hist(&[0.005, 0.25, 1.0]);
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(200));
        h.observe(Duration::from_millis(250));
        h.observe(Duration::from_secs(2));
        let mut out = String::new();
        h.render(&mut out, "latency_seconds", &[("route", "a")]);
        assert_eq!(
            out,
            "latency_seconds_bucket{route=\"a\",le=\"0.005\"} 1\n\
             latency_seconds_bucket{route=\"a\",le=\"0.25\"} 3\n\
             latency_seconds_bucket{route=\"a\",le=\"1\"} 3\n\
             latency_seconds_bucket{route=\"a\",le=\"+Inf\"} 4\n\
             latency_seconds_sum{route=\"a\"} 2.453\n\
             latency_seconds_count{route=\"a\"} 4\n"
        );
        assert_eq!(Histogram::KIND, Kind::Histogram);
    }
}
