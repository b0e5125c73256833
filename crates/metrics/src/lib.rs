//! Prometheus metrics for the gateways' hot paths.
//!
//! Hand-rolled rather than built on the `metrics` crate: there every
//! `counter!("name", "label" => value)` call hashes its key to find the
//! series, on every transaction. Here a hot path records through a handle
//! it holds (an `Arc<Counter>`, or the `Arc` a [`Family`] handed out once for
//! a set of label values), and recording is one or two relaxed atomic
//! operations: no lock, no hashing, no allocation.
//!
//! - [`Counter`], [`Gauge`] and [`Histogram`] are plain atomics.
//! - [`Family`] holds one metric per set of label values, with a cap on how
//!   many sets it keeps: values past the cap fold into one series whose
//!   label values are all [`OVERFLOW_LABEL_VALUE`], so values a client
//!   chooses cannot grow memory without bound.
//! - [`Registry`] names them, checks names against Prometheus's grammar, and
//!   renders everything in the text exposition format, version 0.0.4
//!   ([`CONTENT_TYPE`]), on demand. Gauges read from elsewhere (a queue's
//!   depth) are callbacks evaluated at render time.
//!
//! Pure: no I/O. Serving the text is the caller's business.
//!
//! ```
//! use std::time::Duration;
//! use latchkey_metrics::{LATENCY_BUCKETS, Registry};
//!
//! let registry = Registry::new();
//! let tx = registry.counter_family("tx_total", "Transactions.", ["outcome"], 16)?;
//! let latency = registry.histogram("tx_seconds", "Transaction latency.", LATENCY_BUCKETS)?;
//!
//! // Once per connection or thread: look up the series, keep the handle.
//! let ok = tx.get_or_create(&["success"]);
//! // Per transaction: relaxed atomics only.
//! ok.inc();
//! latency.observe(Duration::from_micros(180));
//!
//! let text = registry.render();
//! assert!(text.contains("tx_total{outcome=\"success\"} 1\n"));
//! assert!(text.contains("tx_seconds_bucket{le=\"0.00025\"} 1\n"));
//! # Ok::<(), latchkey_metrics::MetricsError>(())
//! ```

mod family;
mod histogram;
mod metric;
mod registry;
mod text;

pub use family::{Family, OVERFLOW_LABEL_VALUE};
pub use histogram::{Histogram, LATENCY_BUCKETS};
pub use metric::{Counter, Gauge, Metric};
pub use registry::Registry;

/// The `Content-Type` of [`Registry::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why a metric could not be made or registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("invalid metric name {0:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidMetricName(String),
    #[error(
        "invalid label name {0:?}: must match [a-zA-Z_][a-zA-Z0-9_]* and not start with \"__\""
    )]
    InvalidLabelName(String),
    #[error("label name {0:?} appears twice")]
    DuplicateLabelName(String),
    #[error("label name \"le\" is reserved for a histogram's buckets")]
    ReservedLabelName,
    /// The name, or one of the series names a histogram adds (`_bucket`,
    /// `_sum`, `_count`), is already taken in this registry.
    #[error("metric name {0:?} is already registered")]
    DuplicateMetric(String),
    #[error("histogram bucket {index}: {reason}")]
    InvalidBucket { index: usize, reason: &'static str },
}
