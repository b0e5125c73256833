//! Brute-force counting on the login path itself.
//!
//! Detection finds a brute force in the audit trail, after the fact: the
//! logins of a burst sent at once are all checked before the first
//! failure reaches the detector, let alone its block. The gate counts the
//! failures the brute-force rule counts, per source address, as each login
//! is decided, together with the checks under way from addresses that
//! failed already; once they reach the rule's threshold within its window
//! the address gets no more checks while the detector's block lands: until
//! the failures age out, the address is unblocked, or [`GateRule::hold_secs`]
//! pass without a block.
//!
//! An address with no failure in the window is never held back, however
//! many of its logins run at once: a fleet behind one NAT address logging
//! in together is normal. So a burst's first logins, up to one per
//! thread checking them, can all be checked before the first failure
//! counts; every later one is counted against the threshold.
//!
//! Pure: the caller holds it behind a lock and passes the time.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use latchkey_audit::FailureKind;

/// What the gate enforces: the detection rule's threshold, window and
/// counted failure kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRule {
    /// Failures within the window after which an address is held back.
    pub threshold: u32,
    /// Seconds over which failures count.
    pub window_secs: i64,
    /// The failure kinds that count.
    pub counted: Vec<FailureKind>,
    /// Addresses tracked at most; past it, addresses without failures in
    /// the window are dropped, then new addresses go uncounted (the
    /// detector still counts them).
    pub max_tracked: usize,
    /// Seconds an address that reached the threshold is held back for
    /// detection's block to land. Past it, the detector evidently chose
    /// not to block (it blocks an address again at most every 10 s): the
    /// address's failures are forgotten here, it is checked again, and
    /// its next failures bring the block (which an operator can see and
    /// lift, unlike this hold).
    pub hold_secs: i64,
}

/// [`GateRule::hold_secs`] that `serve` sets: longer than the detector's
/// 10 s between repeated blocks of one address, with room for the other
/// nodes' failures to arrive.
pub const HOLD_SECS: i64 = 15;

/// Seconds within which another node's failures reach this one (its
/// tallies are exchanged every half second): failures learned this soon
/// after an address was unblocked may be older than the unblock, which
/// forgave them.
pub const FAILURES_LEARNED_WITHIN: i64 = 2;

/// Whether a login may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The address has no failure in the window: nothing is counted.
    Unwatched,
    /// Counted as under way: end it with [`LoginGate::end`].
    Watched,
    /// The address's failures, with its checks under way, reach the
    /// threshold.
    Refused,
}

#[derive(Debug, Default)]
struct Entry {
    /// Times of the latest failures (at most `threshold`), oldest first.
    failures: VecDeque<i64>,
    /// Watched checks under way.
    in_flight: u32,
    /// Since when the failures reach the threshold.
    full_since: Option<i64>,
}

impl Entry {
    /// Whether the failures reach the threshold and the hold is not over;
    /// a hold that is over forgets the failures.
    fn held(&mut self, now: i64, threshold: u32, window: i64, hold: i64) -> bool {
        if self.recent(now, window) < threshold {
            self.full_since = None;
            return false;
        }
        let since = *self.full_since.get_or_insert(now);
        if now - since >= hold {
            self.failures.clear();
            self.full_since = None;
            return false;
        }
        true
    }

    fn recent(&self, now: i64, window: i64) -> u32 {
        let recent = self.failures.iter().filter(|t| now - **t < window).count();
        u32::try_from(recent).unwrap_or(u32::MAX)
    }

    fn idle(&self, now: i64, window: i64) -> bool {
        self.in_flight == 0 && self.recent(now, window) == 0
    }
}

/// Failed logins per source address, and the watched checks under way.
#[derive(Debug)]
pub struct LoginGate {
    rule: GateRule,
    entries: HashMap<IpAddr, Entry>,
    /// When addresses were unblocked, for [`FAILURES_LEARNED_WITHIN`].
    forgiven: HashMap<IpAddr, i64>,
}

impl LoginGate {
    pub fn new(rule: GateRule) -> Self {
        Self {
            rule,
            entries: HashMap::new(),
            forgiven: HashMap::new(),
        }
    }

    pub fn rule(&self) -> &GateRule {
        &self.rule
    }

    /// Whether failures of this kind count.
    pub fn counts(&self, kind: FailureKind) -> bool {
        self.rule.counted.contains(&kind)
    }

    /// Whether no address is tracked (callers skip their lock then).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn threshold(&self) -> u32 {
        self.rule.threshold.max(1)
    }

    fn window(&self) -> i64 {
        self.rule.window_secs.max(1)
    }

    fn hold(&self) -> i64 {
        self.rule.hold_secs.max(1)
    }

    /// Whether the address's failures alone reach the threshold (within
    /// the hold): it can be turned away before anything is read from it.
    pub fn full(&mut self, ip: IpAddr, now: i64) -> bool {
        let (threshold, window, hold) = (self.threshold(), self.window(), self.hold());
        self.entries
            .get_mut(&ip)
            .is_some_and(|e| e.held(now, threshold, window, hold))
    }

    /// Asks to check a login from `ip`.
    pub fn begin(&mut self, ip: IpAddr, now: i64) -> Admission {
        let (threshold, window, hold) = (self.threshold(), self.window(), self.hold());
        let Some(entry) = self.entries.get_mut(&ip) else {
            return Admission::Unwatched;
        };
        if entry.held(now, threshold, window, hold) {
            return Admission::Refused;
        }
        let recent = entry.recent(now, window);
        if recent == 0 {
            return Admission::Unwatched;
        }
        if recent.saturating_add(entry.in_flight) >= threshold {
            return Admission::Refused;
        }
        entry.in_flight += 1;
        Admission::Watched
    }

    /// Ends a watched check (failed or not: a failure is counted by
    /// [`LoginGate::failed`] before it ends).
    pub fn end(&mut self, ip: IpAddr, now: i64) {
        let window = self.window();
        if let Some(entry) = self.entries.get_mut(&ip) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if entry.idle(now, window) {
                self.entries.remove(&ip);
            }
        }
    }

    /// Counts `n` failures from `ip` at `now` (several: another node's,
    /// learned together).
    pub fn failed(&mut self, ip: IpAddr, n: u64, now: i64) {
        let (threshold, window) = (self.threshold(), self.window());
        if !self.entries.contains_key(&ip) && self.entries.len() >= self.rule.max_tracked {
            self.entries.retain(|_, e| !e.idle(now, window));
            if self.entries.len() >= self.rule.max_tracked {
                return;
            }
        }
        let entry = self.entries.entry(ip).or_default();
        let keep = usize::try_from(threshold).unwrap_or(usize::MAX);
        for _ in 0..n.min(u64::from(threshold)) {
            if entry.failures.len() >= keep {
                entry.failures.pop_front();
            }
            entry.failures.push_back(now);
        }
    }

    /// Counts `n` failures from `ip` that another node saw, learned at
    /// `now`, unless the address was unblocked so recently that they may
    /// be older than that: a node that learned of them late would hold
    /// back an address just unblocked until [`HOLD_SECS`] passed.
    pub fn failed_elsewhere(&mut self, ip: IpAddr, n: u64, now: i64) {
        if self
            .forgiven
            .get(&ip)
            .is_some_and(|&at| now - at <= FAILURES_LEARNED_WITHIN)
        {
            return;
        }
        self.failed(ip, n, now);
    }

    /// Forgets the address's failures (it was unblocked at `now`); its
    /// checks under way stay counted.
    pub fn forgive(&mut self, ip: IpAddr, now: i64) {
        self.forgiven
            .retain(|_, at| now - *at <= FAILURES_LEARNED_WITHIN);
        if self.forgiven.len() < self.rule.max_tracked {
            self.forgiven.insert(ip, now);
        }
        if let Some(entry) = self.entries.get_mut(&ip) {
            entry.failures.clear();
            entry.full_since = None;
            if entry.in_flight == 0 {
                self.entries.remove(&ip);
            }
        }
    }
}

/// The gate as the server holds it: off until armed with the rule
/// ([`SharedLoginGate::arm`]), behind a lock that logins skip while no
/// address has failed lately.
#[derive(Debug, Default)]
pub struct SharedLoginGate {
    gate: std::sync::Mutex<Option<LoginGate>>,
    /// Whether any address is tracked: a login from a quiet address on a
    /// quiet node takes no lock.
    tracking: std::sync::atomic::AtomicBool,
}

/// A login being checked; counted as under way until dropped.
#[must_use]
pub struct LoginCheck<'a> {
    gate: &'a SharedLoginGate,
    ip: IpAddr,
    watched: bool,
    now: i64,
}

impl Drop for LoginCheck<'_> {
    fn drop(&mut self) {
        if self.watched {
            self.gate.with(|g| g.end(self.ip, self.now));
        }
    }
}

impl SharedLoginGate {
    /// Turns the gate on (at start, from the detection rule).
    pub fn arm(&self, rule: GateRule) {
        *self.gate.lock().unwrap_or_else(|p| p.into_inner()) = Some(LoginGate::new(rule));
    }

    fn with<T: Default>(&self, f: impl FnOnce(&mut LoginGate) -> T) -> T {
        let mut guard = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let Some(gate) = guard.as_mut() else {
            return T::default();
        };
        let out = f(gate);
        self.tracking
            .store(!gate.is_empty(), std::sync::atomic::Ordering::Release);
        out
    }

    fn quiet(&self) -> bool {
        !self.tracking.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the address's failures reach the threshold (turn it away
    /// before reading from it).
    pub fn full(&self, ip: IpAddr, now: i64) -> bool {
        !self.quiet() && self.with(|g| g.full(ip, now))
    }

    /// Begins checking a login from `ip`; `None` when the address must
    /// wait.
    pub fn begin(&self, ip: IpAddr, now: i64) -> Option<LoginCheck<'_>> {
        let admission = if self.quiet() {
            Admission::Unwatched
        } else {
            self.with(|g| Some(g.begin(ip, now)))
                .unwrap_or(Admission::Unwatched)
        };
        match admission {
            Admission::Refused => None,
            admission => Some(LoginCheck {
                gate: self,
                ip,
                watched: admission == Admission::Watched,
                now,
            }),
        }
    }

    /// Counts a failed login of `kind` from `ip` (`n` of them: another
    /// node's, learned together), if the rule counts that kind.
    pub fn failed(&self, ip: IpAddr, kind: FailureKind, n: u64, now: i64) {
        self.with(|g| {
            if g.counts(kind) {
                g.failed(ip, n, now);
            }
        });
    }

    /// Counts another node's failed logins of `kind` from `ip`, learned
    /// at `now` (see [`LoginGate::failed_elsewhere`]).
    pub fn failed_elsewhere(&self, ip: IpAddr, kind: FailureKind, n: u64, now: i64) {
        self.with(|g| {
            if g.counts(kind) {
                g.failed_elsewhere(ip, n, now);
            }
        });
    }

    /// Forgets the failures of addresses unblocked at `now`.
    pub fn forgive(&self, ips: impl IntoIterator<Item = IpAddr>, now: i64) {
        let mut ips = ips.into_iter().peekable();
        if ips.peek().is_none() {
            return;
        }
        self.with(|g| ips.for_each(|ip| g.forgive(ip, now)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(threshold: u32) -> LoginGate {
        LoginGate::new(GateRule {
            threshold,
            window_secs: 60,
            counted: vec![FailureKind::BadSignature],
            max_tracked: 4,
            hold_secs: 15,
        })
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));

    #[test]
    fn an_address_without_failures_is_never_held_back() {
        let mut g = gate(3);
        for _ in 0..100 {
            assert_eq!(g.begin(IP, 0), Admission::Unwatched);
        }
        assert!(g.is_empty());
    }

    #[test]
    fn checks_under_way_count_against_the_threshold_once_an_address_failed() {
        let mut g = gate(3);
        g.failed(IP, 1, 0);
        assert_eq!(g.begin(IP, 1), Admission::Watched);
        assert_eq!(g.begin(IP, 1), Admission::Watched);
        // One failure and two checks under way: a third could make the
        // threshold's worth of checked guesses, so it waits.
        assert_eq!(g.begin(IP, 1), Admission::Refused);
        g.failed(IP, 1, 1);
        g.end(IP, 1);
        assert_eq!(g.begin(IP, 1), Admission::Refused);
        g.end(IP, 1);
        assert_eq!(g.begin(IP, 1), Admission::Watched);
        g.failed(IP, 1, 1);
        g.end(IP, 1);
        assert!(g.full(IP, 1));
        assert_eq!(g.begin(IP, 15), Admission::Refused);
        // The failures age out with the window.
        assert!(!g.full(IP, 60));
        assert_eq!(g.begin(IP, 61), Admission::Unwatched);
    }

    #[test]
    fn an_address_the_detector_does_not_block_is_held_back_no_longer_than_the_hold() {
        let mut g = gate(3);
        g.failed(IP, 3, 0);
        assert!(g.full(IP, 0));
        assert_eq!(g.begin(IP, 14), Admission::Refused);
        // No block came: its failures are forgotten, and it is checked
        // again; its next failures fill the gate (and bring the block).
        assert!(!g.full(IP, 15));
        assert_eq!(g.begin(IP, 15), Admission::Unwatched);
        g.failed(IP, 3, 16);
        assert!(g.full(IP, 16));
        assert!(g.full(IP, 30));
        assert!(!g.full(IP, 31));
    }

    #[test]
    fn the_window_slides_over_the_latest_failures() {
        let mut g = gate(3);
        g.failed(IP, 1, 0);
        g.failed(IP, 1, 30);
        g.failed(IP, 1, 59);
        assert!(g.full(IP, 59));
        // The first has aged out; the two later still count.
        assert!(!g.full(IP, 60));
        g.failed(IP, 1, 61);
        assert!(g.full(IP, 61));
        assert_eq!(g.entries[&IP].failures.len(), 3);
    }

    #[test]
    fn failures_learned_together_count_up_to_the_threshold() {
        let mut g = gate(3);
        g.failed(IP, u64::MAX, 5);
        assert!(g.full(IP, 5));
        assert_eq!(g.entries[&IP].failures.len(), 3);
    }

    #[test]
    fn an_unblocked_address_starts_afresh() {
        let mut g = gate(2);
        g.failed(IP, 2, 0);
        assert!(g.full(IP, 1));
        g.forgive(IP, 1);
        assert!(!g.full(IP, 1));
        assert_eq!(g.begin(IP, 1), Admission::Unwatched);
    }

    #[test]
    fn another_nodes_failures_learned_just_after_an_unblock_are_forgiven_too() {
        let mut g = gate(2);
        g.forgive(IP, 10);
        // Seen elsewhere before the unblock, learned here after it.
        g.failed_elsewhere(IP, 2, 10 + FAILURES_LEARNED_WITHIN);
        assert!(!g.full(IP, 12));
        // This node's own failures count at once.
        g.failed(IP, 2, 11);
        assert!(g.full(IP, 12));
        g.forgive(IP, 20);
        // Learned later than any exchange takes: new failures.
        g.failed_elsewhere(IP, 2, 21 + FAILURES_LEARNED_WITHIN);
        assert!(g.full(IP, 23));
    }

    #[test]
    fn the_table_is_bounded_and_keeps_addresses_with_failures() {
        let mut g = gate(2);
        let ip = |n: u8| IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, n));
        for n in 0..4 {
            g.failed(ip(n), 1, 0);
        }
        // Full of addresses with failures in the window: a new one goes
        // uncounted rather than push out one that is counting.
        g.failed(ip(9), 5, 1);
        assert_eq!(g.entries.len(), 4);
        assert!(!g.entries.contains_key(&ip(9)));
        // Once they age out, there is room again.
        g.failed(ip(9), 2, 100);
        assert!(g.full(ip(9), 100));
        assert_eq!(g.entries.len(), 1);
    }
}
