//! Counters and gauges, and the trait that lets a [`Family`](crate::Family)
//! hold any metric.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::text::{Kind, Value, push_sample};

/// A metric that a [`Family`](crate::Family) can hold: [`Counter`],
/// [`Gauge`] or [`Histogram`](crate::Histogram). Sealed.
pub trait Metric: sealed::Sealed + Send + Sync + 'static {}

pub(crate) mod sealed {
    use crate::text::Kind;

    pub trait Sealed {
        const KIND: Kind;
        /// Appends this metric's sample lines, with `labels` on each.
        fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]);
    }
}

/// A count that only goes up. Recording is one relaxed `fetch_add`.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    /// Wraps at `u64::MAX`, which counting cannot reach.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

impl Metric for Counter {}

impl sealed::Sealed for Counter {
    const KIND: Kind = Kind::Counter;
    fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        push_sample(out, name, "", labels, None, Value::U64(self.get()));
    }
}

/// A value that goes up and down (connections open, sessions pooled).
/// Each operation is one relaxed atomic instruction; `add` wraps.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Self {
        Gauge(AtomicI64::new(0))
    }

    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    #[inline]
    pub fn dec(&self) {
        self.0.fetch_sub(1, Relaxed);
    }

    #[inline]
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Relaxed);
    }

    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

impl Metric for Gauge {}

impl sealed::Sealed for Gauge {
    const KIND: Kind = Kind::Gauge;
    fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        push_sample(out, name, "", labels, None, Value::I64(self.get()));
    }
}

#[cfg(test)]
mod tests {
    use super::sealed::Sealed;
    use super::*;

    #[test]
    fn counter_counts() {
        let c = Counter::new();
        assert_eq!(c.get(), 0);
        c.inc();
        c.inc();
        c.add(40);
        assert_eq!(c.get(), 42);
        c.add(0);
        assert_eq!(c.get(), 42);
    }

    #[test]
    fn counter_can_be_a_static() {
        static C: Counter = Counter::new();
        C.add(7);
        assert_eq!(C.get(), 7);
    }

    #[test]
    fn gauge_goes_both_ways() {
        let g = Gauge::new();
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1);
        g.add(-5);
        assert_eq!(g.get(), -4);
        g.add(10);
        assert_eq!(g.get(), 6);
        g.set(-100);
        assert_eq!(g.get(), -100);
        g.set(i64::MAX);
        assert_eq!(g.get(), i64::MAX);
    }

    #[test]
    fn counter_and_gauge_render_one_line() {
        let c = Counter::new();
        c.add(3);
        let g = Gauge::new();
        g.set(-2);
        let mut out = String::new();
        c.render(&mut out, "c_total", &[]);
        g.render(&mut out, "g", &[("pool", "main")]);
        assert_eq!(out, "c_total 3\ng{pool=\"main\"} -2\n");
        assert_eq!(Counter::KIND, Kind::Counter);
        assert_eq!(Gauge::KIND, Kind::Gauge);
    }
}
