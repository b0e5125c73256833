//! Metrics with labels.

use std::cmp::Ordering;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use crate::metric::Metric;

/// Every label value of the series that values past a family's cap fold
/// into.
pub const OVERFLOW_LABEL_VALUE: &str = "other";

/// One metric per set of label values, for `N` label names fixed when the
/// family is registered ([`Registry::counter_family`](crate::Registry::counter_family)
/// and its siblings).
///
/// [`get_or_create`](Family::get_or_create) takes a read lock to find an
/// existing series and a write lock only to make one; a hot path calls it
/// once per set of values and keeps the `Arc`.
///
/// At most `max_series` sets of values get a series of their own. Past
/// that, every new set shares one overflow series whose label values are
/// all [`OVERFLOW_LABEL_VALUE`]: a label fed by what a client sends (a
/// database name, a user) then costs bounded memory however many values
/// the client tries. Asking for that all-`"other"` set by name gives the
/// same series, and does not count against the cap.
pub struct Family<M, const N: usize> {
    label_names: [String; N],
    max_series: usize,
    /// Sorted by label values, so lookups are binary searches and rendering
    /// is in a stable order.
    series: RwLock<Vec<([String; N], Arc<M>)>>,
    make: Box<dyn Fn() -> M + Send + Sync>,
}

fn cmp_key<const N: usize>(key: &[String; N], values: &[&str; N]) -> Ordering {
    key.iter().map(String::as_str).cmp(values.iter().copied())
}

impl<M: Metric, const N: usize> Family<M, N> {
    /// Label names are checked by the registry before this is called.
    pub(crate) fn new(
        label_names: [&str; N],
        max_series: usize,
        make: impl Fn() -> M + Send + Sync + 'static,
    ) -> Self {
        Family {
            label_names: label_names.map(str::to_owned),
            max_series,
            series: RwLock::new(Vec::new()),
            make: Box::new(make),
        }
    }

    /// The metric for these label values (in the order of the label
    /// names), made on first use; past the cap, the overflow series.
    pub fn get_or_create(&self, values: &[&str; N]) -> Arc<M> {
        {
            // A panic elsewhere while a lock was held cannot leave the list
            // half-updated (an insert either happened or not), so a
            // poisoned lock is used as it is.
            let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Ok(i) = series.binary_search_by(|(k, _)| cmp_key(k, values)) {
                return Arc::clone(&series[i].1);
            }
        }
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let overflow = [OVERFLOW_LABEL_VALUE; N];
        let has_overflow = series
            .binary_search_by(|(k, _)| cmp_key(k, &overflow))
            .is_ok();
        let own_series = series.len() - usize::from(has_overflow);
        let key = if own_series < self.max_series || *values == overflow {
            values
        } else {
            &overflow
        };
        match series.binary_search_by(|(k, _)| cmp_key(k, key)) {
            // Made by another thread since the read lock, or the overflow.
            Ok(i) => Arc::clone(&series[i].1),
            Err(i) => {
                let metric = Arc::new((self.make)());
                series.insert(i, (key.map(str::to_owned), Arc::clone(&metric)));
                metric
            }
        }
    }

    /// The label names, as registered.
    pub fn label_names(&self) -> &[String; N] {
        &self.label_names
    }

    /// How many series exist, the overflow series included.
    pub fn len(&self) -> usize {
        self.series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends every series' lines, in label-value order.
    pub(crate) fn render(&self, out: &mut String, name: &str) {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        for (values, metric) in series.iter() {
            let labels: [(&str, &str); N] =
                std::array::from_fn(|i| (self.label_names[i].as_str(), values[i].as_str()));
            metric.render(out, name, &labels);
        }
    }
}

impl<M, const N: usize> fmt::Debug for Family<M, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Family")
            .field("label_names", &self.label_names)
            .field("max_series", &self.max_series)
            .field("series", &series.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Counter, Gauge, Histogram};

    fn counters<const N: usize>(names: [&str; N], max: usize) -> Family<Counter, N> {
        Family::new(names, max, Counter::new)
    }

    fn rendered<M: Metric, const N: usize>(f: &Family<M, N>) -> String {
        let mut out = String::new();
        f.render(&mut out, "m");
        out
    }

    #[test]
    fn same_values_same_series() {
        let f = counters(["outcome", "auth"], 10);
        let a = f.get_or_create(&["success", "none"]);
        let b = f.get_or_create(&["success", "none"]);
        assert!(Arc::ptr_eq(&a, &b));
        let c = f.get_or_create(&["success", "iam"]);
        assert!(!Arc::ptr_eq(&a, &c));
        a.inc();
        b.inc();
        c.add(5);
        assert_eq!(f.get_or_create(&["success", "none"]).get(), 2);
        assert_eq!(f.len(), 2);
        assert!(!f.is_empty());
    }

    #[test]
    fn renders_in_label_value_order() {
        let f = counters(["a", "b"], 10);
        f.get_or_create(&["z", "1"]).add(1);
        f.get_or_create(&["b", "2"]).add(2);
        f.get_or_create(&["b", "10"]).add(3);
        f.get_or_create(&["", "x"]).add(4);
        assert_eq!(
            rendered(&f),
            "m{a=\"\",b=\"x\"} 4\n\
             m{a=\"b\",b=\"10\"} 3\n\
             m{a=\"b\",b=\"2\"} 2\n\
             m{a=\"z\",b=\"1\"} 1\n"
        );
    }

    #[test]
    fn values_past_the_cap_fold_into_the_overflow_series() {
        let f = counters(["db", "user"], 2);
        f.get_or_create(&["a", "x"]).inc();
        f.get_or_create(&["b", "x"]).inc();
        // Over the cap: each new set lands in the same overflow series.
        let o1 = f.get_or_create(&["c", "x"]);
        let o2 = f.get_or_create(&["d", "y"]);
        assert!(Arc::ptr_eq(&o1, &o2));
        o1.inc();
        o2.inc();
        for i in 0..1000 {
            f.get_or_create(&[&format!("attacker{i}"), "x"]).inc();
        }
        assert_eq!(f.len(), 3);
        // Values that had a series before the cap keep it.
        f.get_or_create(&["a", "x"]).inc();
        assert_eq!(
            rendered(&f),
            "m{db=\"a\",user=\"x\"} 2\n\
             m{db=\"b\",user=\"x\"} 1\n\
             m{db=\"other\",user=\"other\"} 1002\n"
        );
        // The overflow set asked for by name is the same series.
        assert!(Arc::ptr_eq(&f.get_or_create(&["other", "other"]), &o1));
    }

    #[test]
    fn the_overflow_set_does_not_use_up_the_cap() {
        let f = counters(["a"], 1);
        f.get_or_create(&["other"]).inc();
        f.get_or_create(&["x"]).inc();
        f.get_or_create(&["y"]).inc();
        assert_eq!(rendered(&f), "m{a=\"other\"} 2\nm{a=\"x\"} 1\n");
    }

    #[test]
    fn a_cap_of_zero_sends_everything_to_overflow() {
        let f = counters(["a"], 0);
        f.get_or_create(&["x"]).inc();
        f.get_or_create(&["y"]).inc();
        assert_eq!(rendered(&f), "m{a=\"other\"} 2\n");
    }

    #[test]
    fn label_values_are_escaped() {
        let f: Family<Gauge, 1> = Family::new(["path"], 10, Gauge::new);
        f.get_or_create(&["C:\\x\n\"y\""]).set(1);
        assert_eq!(rendered(&f), "m{path=\"C:\\\\x\\n\\\"y\\\"\"} 1\n");
    }

    #[test]
    fn an_empty_family_renders_nothing() {
        let f = counters(["a"], 10);
        assert!(f.is_empty());
        assert_eq!(rendered(&f), "");
    }

    #[test]
    fn histogram_families_put_le_last() {
        let bounds = crate::histogram::Bounds::new(&[0.1]).expect("valid bounds");
        let f: Family<Histogram, 1> = Family::new(["op"], 10, move || {
            Histogram::with_bounds(Arc::clone(&bounds))
        });
        f.get_or_create(&["read"])
            .observe(Duration::from_millis(50));
        assert_eq!(
            rendered(&f),
            "m_bucket{op=\"read\",le=\"0.1\"} 1\n\
             m_bucket{op=\"read\",le=\"+Inf\"} 1\n\
             m_sum{op=\"read\"} 0.05\n\
             m_count{op=\"read\"} 1\n"
        );
    }

    #[test]
    fn concurrent_creation_makes_one_series_per_set() {
        let f = counters(["k"], 1000);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..100 {
                        f.get_or_create(&[&i.to_string()]).inc();
                    }
                });
            }
        });
        assert_eq!(f.len(), 100);
        for i in 0..100 {
            assert_eq!(f.get_or_create(&[&i.to_string()]).get(), 4, "{i}");
        }
    }
}
