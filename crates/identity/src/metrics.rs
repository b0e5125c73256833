//! What the token service and the gateways count, for `/metrics`.

use std::sync::Arc;

use latchkey_audit::AuthResult;
use latchkey_metrics::{Counter, Family, Gauge, Histogram, LATENCY_BUCKETS, Registry};

/// Label sets a family keeps before folding the rest into `other`.
const MAX_SERIES: usize = 256;

pub struct Metrics {
    pub registry: Registry,
    auth_attempts: Arc<Family<Counter, 3>>,
    connections: Arc<Family<Counter, 1>>,
    active_sessions: Arc<Family<Gauge, 1>>,
    bytes_relayed: Arc<Family<Counter, 2>>,
    api_requests: Arc<Family<Counter, 3>>,
    findings: Arc<Family<Counter, 2>>,
    pinned_sessions: Arc<Family<Counter, 1>>,
    /// How long transaction-pooled clients waited for a server connection.
    pub pool_wait: Arc<Histogram>,
    /// Transaction-pooled clients that waited the whole queue timeout.
    pub pool_queue_timeouts: Arc<Counter>,
    pub pool_idle_transaction_timeouts: Arc<Counter>,
    /// Token service connections open now.
    pub api_connections_open: Arc<Gauge>,
    api_connections_refused: Arc<Family<Counter, 1>>,
    api_connections_timed_out: Arc<Family<Counter, 1>>,
    pub token_verify: Arc<Histogram>,
    pub policy_eval: Arc<Histogram>,
    pub upstream_connect: Arc<Histogram>,
    pub audit_records: Arc<Counter>,
    pub audit_write_failures: Arc<Counter>,
    pub audit_write: Arc<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    #[allow(clippy::expect_used)] // the names below are constants, checked by the tests
    pub fn new() -> Self {
        let r = Registry::new();
        let hist = |name: &str, help: &str| {
            r.histogram(name, help, LATENCY_BUCKETS)
                .expect("a valid histogram")
        };
        Self {
            auth_attempts: r
                .counter_family(
                    "latchkey_auth_attempts_total",
                    "Database logins, by engine, result and refusal reason.",
                    ["engine", "result", "reason"],
                    MAX_SERIES,
                )
                .expect("a valid family"),
            connections: r
                .counter_family(
                    "latchkey_connections_total",
                    "New client connections accepted by the gateways.",
                    ["engine"],
                    MAX_SERIES,
                )
                .expect("a valid family"),
            active_sessions: r
                .gauge_family(
                    "latchkey_active_sessions",
                    "Database sessions being relayed now.",
                    ["engine"],
                    MAX_SERIES,
                )
                .expect("a valid family"),
            bytes_relayed: r
                .counter_family(
                    "latchkey_bytes_relayed_total",
                    "Bytes relayed by ended sessions, by direction.",
                    ["engine", "direction"],
                    MAX_SERIES,
                )
                .expect("a valid family"),
            api_requests: r
                .counter_family(
                    "latchkey_api_requests_total",
                    "Token service calls (STS, IAM, Secrets Manager...), by service, action and result (an AWS error code or Success).",
                    ["service", "action", "result"],
                    MAX_SERIES,
                )
                .expect("a valid family"),
            pinned_sessions: r
                .counter_family(
                    "latchkey_pool_pinned_sessions_total",
                    "Transaction-pooled sessions pinned to their server connection, by what they left in the session.",
                    ["cause"],
                    MAX_SERIES,
                )
                .expect("a valid family"),
            pool_wait: hist(
                "latchkey_pool_wait_seconds",
                "Time a transaction-pooled client waited for a server connection.",
            ),
            pool_queue_timeouts: r
                .counter(
                    "latchkey_pool_queue_timeouts_total",
                    "Transaction-pooled clients that waited the pool's whole queue timeout (FATAL 53300).",
                )
                .expect("a valid counter"),
            pool_idle_transaction_timeouts: r
                .counter(
                    "latchkey_pool_idle_transaction_timeouts_total",
                    "Transaction-pooled clients ended for keeping a server connection idle in a transaction (FATAL 25P03).",
                )
                .expect("a valid counter"),
            findings: r
                .counter_family(
                    "latchkey_findings_total",
                    "Threat findings raised (or updated), by type and severity.",
                    ["type", "severity"],
                    MAX_SERIES,
                )
                .expect("a valid family"),
            api_connections_open: r
                .gauge(
                    "latchkey_api_connections_open",
                    "Token service (HTTPS) connections open now.",
                )
                .expect("a valid gauge"),
            api_connections_refused: r
                .counter_family(
                    "latchkey_api_connections_refused_total",
                    "Token service connections closed at once by a connection cap, by cap (total, per_ip).",
                    ["reason"],
                    MAX_SERIES,
                )
                .expect("a valid family"),
            api_connections_timed_out: r
                .counter_family(
                    "latchkey_api_connections_timed_out_total",
                    "Token service connections closed by a timeout, by which (handshake, header, body, idle).",
                    ["reason"],
                    MAX_SERIES,
                )
                .expect("a valid family"),
            token_verify: hist(
                "latchkey_token_verify_seconds",
                "Time to verify a database token's signature.",
            ),
            policy_eval: hist(
                "latchkey_policy_eval_seconds",
                "Time to decide rds-db:connect.",
            ),
            upstream_connect: hist(
                "latchkey_upstream_connect_seconds",
                "Time to log in to the real database (not counting pooled connections).",
            ),
            audit_records: r
                .counter(
                    "latchkey_audit_records_total",
                    "Records written to the audit trail.",
                )
                .expect("a valid counter"),
            audit_write_failures: r
                .counter(
                    "latchkey_audit_write_failures_total",
                    "Audit trail writes or syncs that failed (new work is refused meanwhile).",
                )
                .expect("a valid counter"),
            audit_write: hist(
                "latchkey_audit_write_seconds",
                "Time to write and fsync one batch of audit records.",
            ),
            registry: r,
        }
    }

    pub fn auth(&self, engine: &str, result: &AuthResult) {
        let labels = match result {
            AuthResult::Success => [engine, "success", "none"],
            AuthResult::Failure { kind, .. } => [engine, "failure", kind.as_str()],
        };
        self.auth_attempts.get_or_create(&labels).inc();
    }

    pub fn connection(&self, engine: &str) {
        self.connections.get_or_create(&[engine]).inc();
    }

    /// The active-sessions gauge for an engine (held by the gateway).
    pub fn sessions(&self, engine: &str) -> Arc<Gauge> {
        self.active_sessions.get_or_create(&[engine])
    }

    pub fn relayed(&self, engine: &str, from_client: u64, to_client: u64) {
        self.bytes_relayed
            .get_or_create(&[engine, "from_client"])
            .add(from_client);
        self.bytes_relayed
            .get_or_create(&[engine, "to_client"])
            .add(to_client);
    }

    pub fn api_request(&self, service: &str, action: &str, result: &str) {
        self.api_requests
            .get_or_create(&[service, action, result])
            .inc();
    }

    /// A token service connection refused by a cap (`total`, `per_ip`).
    pub fn api_connection_refused(&self, reason: &str) {
        self.api_connections_refused.get_or_create(&[reason]).inc();
    }

    /// A token service connection closed by a timeout (`handshake`,
    /// `header`, `body`, `idle`).
    pub fn api_connection_timed_out(&self, reason: &str) {
        self.api_connections_timed_out
            .get_or_create(&[reason])
            .inc();
    }

    /// A transaction-pooled session pinned to its server connection.
    pub fn pinned(&self, cause: &str) {
        self.pinned_sessions.get_or_create(&[cause]).inc();
    }

    pub fn finding(&self, kind: &str, severity: &str) {
        self.findings.get_or_create(&[kind, severity]).inc();
    }

    pub fn render(&self) -> String {
        self.registry.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders() {
        let m = Metrics::new();
        m.auth("postgres", &AuthResult::Success);
        m.auth(
            "postgres",
            &AuthResult::Failure {
                kind: latchkey_audit::FailureKind::PolicyDenied,
                reason: "x".into(),
            },
        );
        m.connection("postgres");
        m.sessions("postgres").inc();
        m.relayed("postgres", 10, 20);
        m.api_request("sts", "AssumeRole", "Success");
        m.finding("UnauthorizedAccess:IAMUser/MaliciousIPCaller", "High");
        m.api_connections_open.inc();
        m.api_connection_refused("per_ip");
        m.api_connection_timed_out("idle");
        m.token_verify.observe(std::time::Duration::from_micros(30));
        let text = m.render();
        for want in [
            "latchkey_auth_attempts_total{engine=\"postgres\",result=\"failure\",reason=\"policy_denied\"} 1",
            "latchkey_auth_attempts_total{engine=\"postgres\",result=\"success\",reason=\"none\"} 1",
            "latchkey_active_sessions{engine=\"postgres\"} 1",
            "latchkey_bytes_relayed_total{engine=\"postgres\",direction=\"to_client\"} 20",
            "latchkey_api_requests_total{service=\"sts\",action=\"AssumeRole\",result=\"Success\"} 1",
            "latchkey_token_verify_seconds_count 1",
            "latchkey_audit_write_seconds_count 0",
            "latchkey_api_connections_open 1",
            "latchkey_api_connections_refused_total{reason=\"per_ip\"} 1",
            "latchkey_api_connections_timed_out_total{reason=\"idle\"} 1",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }
}
