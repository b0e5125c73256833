//! Brute-force counting across the nodes sharing a store: each node
//! publishes how many counted failed logins it saw per source address and
//! failure kind (cumulative), and the failures other nodes saw fill this
//! node's windows as its own do, so an attacker who spreads attempts over
//! the nodes is caught at the cluster's count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::SystemTime;

use latchkey_audit::FailureKind;

use crate::config::parse_failure_kind;
use crate::rules::{Attempt, millis};
use crate::{Detector, Outcome};

/// Entries [`Detector::failure_tally`] gives at most: the busiest.
const TALLY_MAX: usize = 1_000;

/// Failures counted here, by (address, kind): how many, and when last.
#[derive(Default)]
pub(crate) struct Tally {
    counts: HashMap<(IpAddr, FailureKind), (u64, u64)>,
}

impl Tally {
    /// Counts one; past `cap` addresses new ones go uncounted (the
    /// node's own windows still count them).
    pub(crate) fn add(&mut self, ip: IpAddr, kind: FailureKind, ms: u64, cap: usize) {
        if self.counts.len() >= cap && !self.counts.contains_key(&(ip, kind)) {
            return;
        }
        let entry = self.counts.entry((ip, kind)).or_insert((0, ms));
        entry.0 += 1;
        entry.1 = ms;
    }
}

/// The key a tally is published under: `ADDRESS KIND`.
pub fn tally_key(ip: IpAddr, kind: FailureKind) -> String {
    format!("{ip} {}", kind.as_str())
}

/// The address and failure kind of a [`tally_key`].
pub fn parse_tally_key(key: &str) -> Option<(IpAddr, FailureKind)> {
    let (ip, kind) = key.split_once(' ')?;
    Some((ip.parse().ok()?, parse_failure_kind(kind)?))
}

impl Detector {
    /// This node's counted failures per (address, kind), cumulative, keyed
    /// by [`tally_key`]; addresses quiet for a window are dropped (their
    /// count is of no use to anyone any more).
    pub fn failure_tally(&mut self, now: SystemTime) -> Vec<(String, u64)> {
        let window_ms = self
            .config
            .brute_force
            .window_secs
            .max(1)
            .saturating_mul(1000);
        let now = millis(now);
        self.tally
            .counts
            .retain(|_, (_, last)| now.saturating_sub(*last) <= window_ms);
        let mut tally: Vec<(String, u64)> = self
            .tally
            .counts
            .iter()
            .map(|((ip, kind), (n, _))| (tally_key(*ip, *kind), *n))
            .collect();
        // The busiest only: many addresses must not swell the exchange.
        if tally.len() > TALLY_MAX {
            tally.sort_unstable_by_key(|t| std::cmp::Reverse(t.1));
            tally.truncate(TALLY_MAX);
        }
        tally
    }

    /// Failed logins other nodes counted (`key` as [`tally_key`] makes it,
    /// `n` of them since the last exchange), at `now`: they count towards
    /// this node's brute-force windows, and a full window makes the
    /// finding and its response here as a local one would.
    pub fn failures_elsewhere(&mut self, key: &str, n: u64, now: SystemTime) -> Vec<Outcome> {
        let mut out = Vec::new();
        let Some((ip, kind)) = parse_tally_key(key) else {
            return out;
        };
        if !self.config.brute_force.enabled || !self.counted[crate::kind_index(kind)] {
            return out;
        }
        let threshold = u64::from(self.config.brute_force.threshold.max(1));
        for _ in 0..n.min(threshold) {
            let attempt = Attempt {
                time: now,
                ip,
                kind,
                proven: false,
                principal: None,
                key: None,
                latest: format!(
                    "Failed logins ({}) were counted on other nodes.",
                    kind.as_str()
                ),
            };
            self.brute_force("another node", &attempt, &mut out);
        }
        out
    }
}
