//! Named metrics, rendered in the text exposition format.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::MetricsError;
use crate::family::Family;
use crate::histogram::{Bounds, Histogram};
use crate::metric::{Counter, Gauge, Metric};
use crate::text::{Kind, Value, check_label_names, check_metric_name, escape_help, push_sample};

/// Something the registry renders under a name.
trait Collect: Send + Sync {
    fn collect(&self, out: &mut String, name: &str);
}

impl<M: Metric> Collect for M {
    fn collect(&self, out: &mut String, name: &str) {
        self.render(out, name, &[]);
    }
}

struct FamilyCollect<M, const N: usize>(Arc<Family<M, N>>);

impl<M: Metric, const N: usize> Collect for FamilyCollect<M, N> {
    fn collect(&self, out: &mut String, name: &str) {
        self.0.render(out, name);
    }
}

struct GaugeFn<F>(F);

impl<F: Fn() -> i64 + Send + Sync> Collect for GaugeFn<F> {
    fn collect(&self, out: &mut String, name: &str) {
        push_sample(out, name, "", &[], None, Value::I64((self.0)()));
    }
}

struct Entry {
    name: String,
    /// Escaped; empty for no `# HELP` line.
    help: String,
    kind: Kind,
    collector: Arc<dyn Collect>,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Arc<Entry>>,
    /// Every series name taken: each metric's name, and a histogram's
    /// `_bucket`, `_sum` and `_count` names.
    taken: HashSet<String>,
}

/// Metrics by name, rendered in registration order.
///
/// Registering takes `&self`, so a registry shared behind an `Arc` can gain
/// metrics at any time; each registration returns the handle to record
/// through.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    pub fn counter(&self, name: &str, help: &str) -> Result<Arc<Counter>, MetricsError> {
        let c = Arc::new(Counter::new());
        self.register(name, help, Kind::Counter, c.clone())?;
        Ok(c)
    }

    pub fn gauge(&self, name: &str, help: &str) -> Result<Arc<Gauge>, MetricsError> {
        let g = Arc::new(Gauge::new());
        self.register(name, help, Kind::Gauge, g.clone())?;
        Ok(g)
    }

    /// A gauge whose value `read` gives at each render: a queue's depth, a
    /// pool's size, kept elsewhere. `read` runs on the rendering thread
    /// while no lock of this registry is held, so it may not block for
    /// long but may use the registry.
    pub fn gauge_fn(
        &self,
        name: &str,
        help: &str,
        read: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> Result<(), MetricsError> {
        self.register(name, help, Kind::Gauge, Arc::new(GaugeFn(read)))
    }

    /// A histogram with these upper bounds in seconds (see
    /// [`Histogram::new`] and [`LATENCY_BUCKETS`](crate::LATENCY_BUCKETS)).
    /// Besides `name` it takes `name_bucket`, `name_sum` and `name_count`.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        bounds: &[f64],
    ) -> Result<Arc<Histogram>, MetricsError> {
        let h = Arc::new(Histogram::new(bounds)?);
        self.register(name, help, Kind::Histogram, h.clone())?;
        Ok(h)
    }

    /// Counters labelled by `label_names`, with at most `max_series` sets
    /// of values of their own (see [`Family`]).
    pub fn counter_family<const N: usize>(
        &self,
        name: &str,
        help: &str,
        label_names: [&str; N],
        max_series: usize,
    ) -> Result<Arc<Family<Counter, N>>, MetricsError> {
        check_label_names(&label_names, false)?;
        self.register_family(
            name,
            help,
            Family::new(label_names, max_series, Counter::new),
        )
    }

    /// Gauges labelled by `label_names`, with at most `max_series` sets of
    /// values of their own (see [`Family`]).
    pub fn gauge_family<const N: usize>(
        &self,
        name: &str,
        help: &str,
        label_names: [&str; N],
        max_series: usize,
    ) -> Result<Arc<Family<Gauge, N>>, MetricsError> {
        check_label_names(&label_names, false)?;
        self.register_family(name, help, Family::new(label_names, max_series, Gauge::new))
    }

    /// Histograms labelled by `label_names` (which cannot include `le`),
    /// all with these bounds, with at most `max_series` sets of values of
    /// their own (see [`Family`]).
    pub fn histogram_family<const N: usize>(
        &self,
        name: &str,
        help: &str,
        label_names: [&str; N],
        bounds: &[f64],
        max_series: usize,
    ) -> Result<Arc<Family<Histogram, N>>, MetricsError> {
        check_label_names(&label_names, true)?;
        let bounds = Bounds::new(bounds)?;
        let make = move || Histogram::with_bounds(Arc::clone(&bounds));
        self.register_family(name, help, Family::new(label_names, max_series, make))
    }

    fn register_family<M: Metric, const N: usize>(
        &self,
        name: &str,
        help: &str,
        family: Family<M, N>,
    ) -> Result<Arc<Family<M, N>>, MetricsError> {
        let family = Arc::new(family);
        let collector = Arc::new(FamilyCollect(Arc::clone(&family)));
        self.register(name, help, M::KIND, collector)?;
        Ok(family)
    }

    fn register(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        collector: Arc<dyn Collect>,
    ) -> Result<(), MetricsError> {
        check_metric_name(name)?;
        let names: Vec<String> = match kind {
            Kind::Histogram => ["", "_bucket", "_sum", "_count"]
                .iter()
                .map(|suffix| format!("{name}{suffix}"))
                .collect(),
            Kind::Counter | Kind::Gauge => vec![name.to_owned()],
        };
        let mut inner = self.lock();
        if names.iter().any(|n| inner.taken.contains(n)) {
            return Err(MetricsError::DuplicateMetric(name.to_owned()));
        }
        inner.taken.extend(names);
        inner.entries.push(Arc::new(Entry {
            name: name.to_owned(),
            help: escape_help(help),
            kind,
            collector,
        }));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Registration pushes only once everything is checked, so a panic
        // cannot leave `Inner` half-updated.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every metric in the text exposition format, version 0.0.4
    /// ([`CONTENT_TYPE`](crate::CONTENT_TYPE)): for each in registration
    /// order, `# HELP` (left out when the help is empty), `# TYPE`, then its
    /// samples.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    /// [`render`](Registry::render), appending to `out`.
    pub fn render_into(&self, out: &mut String) {
        // Collected without the registry's lock: callbacks may take time,
        // and may register.
        let entries = self.lock().entries.clone();
        for e in entries {
            if !e.help.is_empty() {
                out.push_str("# HELP ");
                out.push_str(&e.name);
                out.push(' ');
                out.push_str(&e.help);
                out.push('\n');
            }
            out.push_str("# TYPE ");
            out.push_str(&e.name);
            out.push(' ');
            out.push_str(e.kind.as_str());
            out.push('\n');
            e.collector.collect(out, &e.name);
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_list()
            .entries(inner.entries.iter().map(|e| (&e.name, e.kind.as_str())))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn renders_help_type_and_samples_in_registration_order() {
        let r = Registry::new();
        let b = r.counter("b_total", "B things.").expect("register b");
        let a = r.gauge("a", "").expect("register a");
        let h = r
            .histogram("lat_seconds", "Latency.", &[0.01, 0.1])
            .expect("register lat");
        b.add(7);
        a.set(-1);
        h.observe(Duration::from_millis(20));
        assert_eq!(
            r.render(),
            "# HELP b_total B things.\n\
             # TYPE b_total counter\n\
             b_total 7\n\
             # TYPE a gauge\n\
             a -1\n\
             # HELP lat_seconds Latency.\n\
             # TYPE lat_seconds histogram\n\
             lat_seconds_bucket{le=\"0.01\"} 0\n\
             lat_seconds_bucket{le=\"0.1\"} 1\n\
             lat_seconds_bucket{le=\"+Inf\"} 1\n\
             lat_seconds_sum 0.02\n\
             lat_seconds_count 1\n"
        );
    }

    #[test]
    fn help_is_escaped() {
        let r = Registry::new();
        r.counter("c", "line one\nback\\slash \"quoted\"")
            .expect("register c");
        assert!(
            r.render()
                .starts_with("# HELP c line one\\nback\\\\slash \"quoted\"\n# TYPE c counter\n"),
            "{}",
            r.render()
        );
    }

    #[test]
    fn families_render_with_labels() {
        let r = Registry::new();
        let f = r
            .counter_family("tx_total", "Transactions.", ["outcome", "auth"], 8)
            .expect("register family");
        f.get_or_create(&["success", "none"]).add(2);
        f.get_or_create(&["error", "iam"]).inc();
        let g = r
            .gauge_family("conns", "Connections.", ["db"], 8)
            .expect("register gauge family");
        g.get_or_create(&["main"]).set(4);
        let h = r
            .histogram_family("q_seconds", "Query time.", ["db"], &[1.0], 8)
            .expect("register histogram family");
        h.get_or_create(&["main"]).observe_secs(0.5);
        assert_eq!(
            r.render(),
            "# HELP tx_total Transactions.\n\
             # TYPE tx_total counter\n\
             tx_total{outcome=\"error\",auth=\"iam\"} 1\n\
             tx_total{outcome=\"success\",auth=\"none\"} 2\n\
             # HELP conns Connections.\n\
             # TYPE conns gauge\n\
             conns{db=\"main\"} 4\n\
             # HELP q_seconds Query time.\n\
             # TYPE q_seconds histogram\n\
             q_seconds_bucket{db=\"main\",le=\"1\"} 1\n\
             q_seconds_bucket{db=\"main\",le=\"+Inf\"} 1\n\
             q_seconds_sum{db=\"main\"} 0.5\n\
             q_seconds_count{db=\"main\"} 1\n"
        );
    }

    #[test]
    fn callback_gauges_are_read_at_render_time() {
        let r = Registry::new();
        let depth = Arc::new(AtomicI64::new(3));
        let d = Arc::clone(&depth);
        r.gauge_fn("queue_depth", "Queued.", move || d.load(Ordering::Relaxed))
            .expect("register gauge_fn");
        assert!(r.render().ends_with("\nqueue_depth 3\n"), "{}", r.render());
        depth.store(-9, Ordering::Relaxed);
        assert!(r.render().ends_with("\nqueue_depth -9\n"), "{}", r.render());
    }

    #[test]
    fn callbacks_run_without_the_registry_lock() {
        let r = Arc::new(Registry::new());
        let weak = Arc::downgrade(&r);
        // 1 when the callback could take the registry's lock (and so could
        // register or read metrics), 0 when render held it.
        r.gauge_fn("lock_free", "", move || {
            weak.upgrade()
                .map_or(-1, |r| i64::from(r.inner.try_lock().is_ok()))
        })
        .expect("register gauge_fn");
        assert_eq!(r.render(), "# TYPE lock_free gauge\nlock_free 1\n");
    }

    #[test]
    fn invalid_names_are_rejected() {
        let r = Registry::new();
        assert_eq!(
            r.counter("bad-name", "").map(|_| ()),
            Err(MetricsError::InvalidMetricName("bad-name".to_owned()))
        );
        assert_eq!(
            r.gauge("", "").map(|_| ()),
            Err(MetricsError::InvalidMetricName(String::new()))
        );
        assert_eq!(
            r.counter_family("ok", "", ["bad:label"], 1).map(|_| ()),
            Err(MetricsError::InvalidLabelName("bad:label".to_owned()))
        );
        assert_eq!(
            r.gauge_family("ok", "", ["__reserved"], 1).map(|_| ()),
            Err(MetricsError::InvalidLabelName("__reserved".to_owned()))
        );
        assert_eq!(
            r.counter_family("ok", "", ["a", "a"], 1).map(|_| ()),
            Err(MetricsError::DuplicateLabelName("a".to_owned()))
        );
        assert_eq!(
            r.histogram_family("ok", "", ["le"], &[1.0], 1).map(|_| ()),
            Err(MetricsError::ReservedLabelName)
        );
        assert!(matches!(
            r.histogram("ok", "", &[1.0, 0.5]),
            Err(MetricsError::InvalidBucket { index: 1, .. })
        ));
        // Nothing was registered by the failures: the name is still free.
        r.counter("ok", "").expect("ok is free");
        assert_eq!(r.render(), "# TYPE ok counter\nok 0\n");
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let r = Registry::new();
        r.counter("x", "").expect("register x");
        assert_eq!(
            r.gauge("x", "").map(|_| ()),
            Err(MetricsError::DuplicateMetric("x".to_owned()))
        );
        assert_eq!(
            r.counter_family("x", "", ["a"], 1).map(|_| ()),
            Err(MetricsError::DuplicateMetric("x".to_owned()))
        );
        // A histogram takes its series' names too, both ways round.
        r.histogram("h", "", &[]).expect("register h");
        assert_eq!(
            r.counter("h_count", "").map(|_| ()),
            Err(MetricsError::DuplicateMetric("h_count".to_owned()))
        );
        r.gauge("g_sum", "").expect("register g_sum");
        assert_eq!(
            r.histogram("g", "", &[]).map(|_| ()),
            Err(MetricsError::DuplicateMetric("g".to_owned()))
        );
        assert_eq!(
            r.gauge_fn("x", "", || 0),
            Err(MetricsError::DuplicateMetric("x".to_owned()))
        );
        assert_eq!(
            r.render(),
            "# TYPE x counter\nx 0\n\
             # TYPE h histogram\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n\
             # TYPE g_sum gauge\ng_sum 0\n"
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            MetricsError::InvalidMetricName("a-b".to_owned()).to_string(),
            "invalid metric name \"a-b\": must match [a-zA-Z_:][a-zA-Z0-9_:]*"
        );
        assert_eq!(
            MetricsError::InvalidBucket {
                index: 2,
                reason: "must not be negative"
            }
            .to_string(),
            "histogram bucket 2: must not be negative"
        );
    }
}
