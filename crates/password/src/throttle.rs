//! Failed sign-ins, counted per user name and per address.
//!
//! Five failures for one user name within fifteen minutes lock that name
//! out for fifteen minutes, whether or not the user exists (so the lockout
//! tells nothing); twenty from one address lock the address out. IPv6
//! addresses count by their /64, which one client can fill at will. The
//! tables are bounded: a flood of names cannot grow them past
//! `max_tracked`.

use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    pub per_user: u32,
    pub per_address: u32,
    /// Seconds over which failures count.
    pub window: i64,
    /// Seconds a lockout lasts.
    pub lockout: i64,
    /// Entries kept per table.
    pub max_tracked: usize,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self {
            per_user: 5,
            per_address: 20,
            window: 900,
            lockout: 900,
            max_tracked: 100_000,
        }
    }
}

/// Why a sign-in is refused before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UserLocked {
        until: i64,
    },
    AddressLocked {
        until: i64,
    },
    /// As many sign-ins of this name or from this address are under way
    /// as it has failures left: try again in a moment.
    Busy {
        until: i64,
    },
}

impl Refusal {
    pub fn until(&self) -> i64 {
        match self {
            Refusal::UserLocked { until }
            | Refusal::AddressLocked { until }
            | Refusal::Busy { until } => *until,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    failures: u32,
    window_start: i64,
    locked_until: i64,
    /// Failures counted on this node (not those other nodes reported),
    /// cumulative: what this node tells the others.
    here: u64,
    /// Sign-ins begun and not yet ended: each may still fail, so they
    /// count against the limit ([`SignInThrottle::begin`]).
    in_flight: u32,
}

impl Counter {
    fn locked(&self, now: i64) -> bool {
        now < self.locked_until
    }

    /// Counts a failure; whether it started a lockout.
    fn fail(&mut self, now: i64, limit: u32, limits: &ThrottleLimits) -> bool {
        if now - self.window_start >= limits.window {
            self.failures = 0;
            self.window_start = now;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= limit && !self.locked(now) {
            self.locked_until = now + limits.lockout;
            self.failures = 0;
            self.window_start = now;
            return true;
        }
        false
    }

    fn stale(&self, now: i64, limits: &ThrottleLimits) -> bool {
        !self.locked(now) && self.in_flight == 0 && now - self.window_start >= limits.window
    }

    /// Failures in the current window, and sign-ins that may still fail.
    fn at_stake(&self, now: i64, limits: &ThrottleLimits) -> u32 {
        let failures = if now - self.window_start >= limits.window {
            0
        } else {
            self.failures
        };
        failures.saturating_add(self.in_flight)
    }
}

/// Entries [`SignInThrottle::tally`] gives at most.
pub const TALLY_MAX: usize = 1_000;

/// Failed sign-ins; the caller holds it behind a lock and passes the time.
#[derive(Debug, Default)]
pub struct SignInThrottle {
    limits: ThrottleLimits,
    users: HashMap<String, Counter>,
    addresses: HashMap<IpAddr, Counter>,
}

/// The address a client is counted by: IPv4 as is, IPv6 by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

fn insert_bounded<'a, K: std::hash::Hash + Eq + Clone>(
    map: &'a mut HashMap<K, Counter>,
    key: K,
    now: i64,
    limits: &ThrottleLimits,
) -> &'a mut Counter {
    if map.len() >= limits.max_tracked && !map.contains_key(&key) {
        map.retain(|_, c| !c.stale(now, limits));
        if map.len() >= limits.max_tracked {
            // Still full of live entries: drop counts that lock nothing
            // rather than grow (lockouts, and sign-ins under way, are
            // kept).
            map.retain(|_, c| c.locked(now) || c.in_flight > 0);
        }
    }
    map.entry(key).or_insert(Counter {
        window_start: now,
        ..Counter::default()
    })
}

impl SignInThrottle {
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    pub fn limits(&self) -> ThrottleLimits {
        self.limits
    }

    /// Whether a sign-in may be tried now.
    pub fn check(&self, user: &str, address: IpAddr, now: i64) -> Result<(), Refusal> {
        if let Some(c) = self.addresses.get(&address_key(address))
            && c.locked(now)
        {
            return Err(Refusal::AddressLocked {
                until: c.locked_until,
            });
        }
        if let Some(c) = self.users.get(&user.to_ascii_lowercase())
            && c.locked(now)
        {
            return Err(Refusal::UserLocked {
                until: c.locked_until,
            });
        }
        Ok(())
    }

    /// Begins a sign-in (a password or a code about to be checked): refused
    /// as [`Self::check`] refuses, and also while the failures so far and
    /// the sign-ins already under way could reach the limit, so that
    /// guesses sent at once cannot all be checked before the first
    /// failure is counted. Every begun sign-in must be ended
    /// ([`Self::end`]), failed or not.
    pub fn begin(&mut self, user: &str, address: IpAddr, now: i64) -> Result<(), Refusal> {
        self.check(user, address, now)?;
        let limits = self.limits;
        let name = user.to_ascii_lowercase();
        let key = address_key(address);
        if self
            .addresses
            .get(&key)
            .is_some_and(|c| c.at_stake(now, &limits) >= limits.per_address)
        {
            return Err(Refusal::Busy { until: now + 1 });
        }
        if self
            .users
            .get(&name)
            .is_some_and(|c| c.at_stake(now, &limits) >= limits.per_user)
        {
            return Err(Refusal::Busy { until: now + 1 });
        }
        let user = insert_bounded(&mut self.users, name, now, &limits);
        user.in_flight = user.in_flight.saturating_add(1);
        let address = insert_bounded(&mut self.addresses, key, now, &limits);
        address.in_flight = address.in_flight.saturating_add(1);
        Ok(())
    }

    /// Ends a sign-in [`Self::begin`] began (after [`Self::failed`] when it
    /// failed).
    pub fn end(&mut self, user: &str, address: IpAddr) {
        if let Some(c) = self.users.get_mut(&user.to_ascii_lowercase()) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
        if let Some(c) = self.addresses.get_mut(&address_key(address)) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
    }

    /// Counts a failed sign-in; the lockout it started, if any.
    pub fn failed(&mut self, user: &str, address: IpAddr, now: i64) -> Option<Refusal> {
        let limits = self.limits;
        let user = insert_bounded(&mut self.users, user.to_ascii_lowercase(), now, &limits);
        user.here += 1;
        let user_locked = user.fail(now, limits.per_user, &limits);
        let address = insert_bounded(&mut self.addresses, address_key(address), now, &limits);
        address.here += 1;
        let address_locked = address.fail(now, limits.per_address, &limits);
        if address_locked {
            Some(Refusal::AddressLocked {
                until: now + limits.lockout,
            })
        } else if user_locked {
            Some(Refusal::UserLocked {
                until: now + limits.lockout,
            })
        } else {
            None
        }
    }

    /// The failures counted on this node, cumulative, for the other nodes
    /// sharing the store: `u:NAME` per user name, `a:ADDRESS` per address
    /// (entries gone stale are left out).
    pub fn tally(&self, now: i64) -> Vec<(String, u64)> {
        let limits = &self.limits;
        let users = self
            .users
            .iter()
            .filter(|(_, c)| c.here > 0 && !c.stale(now, limits))
            .map(|(name, c)| (format!("u:{name}"), c.here));
        let addresses = self
            .addresses
            .iter()
            .filter(|(_, c)| c.here > 0 && !c.stale(now, limits))
            .map(|(ip, c)| (format!("a:{ip}"), c.here));
        let mut tally: Vec<(String, u64)> = users.chain(addresses).collect();
        // The busiest only: a spray of names must not swell the exchange.
        if tally.len() > TALLY_MAX {
            tally.sort_unstable_by_key(|t| std::cmp::Reverse(t.1));
            tally.truncate(TALLY_MAX);
        }
        tally
    }

    /// `n` failures another node counted under `key` (as [`Self::tally`]
    /// names them) count here too: a guesser spreading attempts over the
    /// nodes is locked out at the cluster's count.
    pub fn failed_elsewhere(&mut self, key: &str, n: u64, now: i64) {
        let limits = self.limits;
        let (counter, limit) = if let Some(name) = key.strip_prefix("u:") {
            (
                insert_bounded(&mut self.users, name.to_ascii_lowercase(), now, &limits),
                limits.per_user,
            )
        } else if let Some(ip) = key
            .strip_prefix("a:")
            .and_then(|a| a.parse::<IpAddr>().ok())
        {
            (
                insert_bounded(&mut self.addresses, address_key(ip), now, &limits),
                limits.per_address,
            )
        } else {
            return;
        };
        for _ in 0..n.min(u64::from(limit)) {
            counter.fail(now, limit, &limits);
        }
    }

    /// A successful sign-in clears its user's failures (not its address's:
    /// one good account must not reset a spray from that address).
    pub fn succeeded(&mut self, user: &str) {
        self.clear_user(user);
    }

    /// An administrator's reset (a new password) lifts the user's lockout.
    pub fn forgive(&mut self, user: &str) {
        self.clear_user(user);
    }

    /// Forgets a user's failures and lockout; the sign-ins under way still
    /// count until they end.
    fn clear_user(&mut self, user: &str) {
        let name = user.to_ascii_lowercase();
        match self.users.get(&name).map(|c| c.in_flight) {
            Some(0) | None => {
                self.users.remove(&name);
            }
            Some(in_flight) => {
                self.users.insert(
                    name,
                    Counter {
                        in_flight,
                        ..Counter::default()
                    },
                );
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sign_ins_under_way_count_against_the_limit() {
        let mut t = SignInThrottle::default();
        let a = ip("192.0.2.1");
        // Five guesses at once: all may be checked (each could fail and
        // the fifth locks); a sixth must wait for one to end.
        for _ in 0..5 {
            assert!(t.begin("Eve", a, 0).is_ok());
        }
        assert!(matches!(t.begin("eve", a, 0), Err(Refusal::Busy { .. })));
        // A success or a reset forgives failures, not guesses under way.
        t.succeeded("EVE");
        t.forgive("eve");
        assert!(matches!(t.begin("eve", a, 0), Err(Refusal::Busy { .. })));
        // Two fail, three end well.
        for _ in 0..2 {
            t.failed("eve", a, 0);
            t.end("eve", a);
        }
        for _ in 0..3 {
            t.end("eve", a);
        }
        // Two failures counted, none under way: three more may begin.
        for _ in 0..3 {
            assert!(t.begin("eve", a, 1).is_ok());
        }
        assert!(t.begin("eve", a, 1).is_err());
        // Twenty from one address under way, across names.
        let mut t = SignInThrottle::default();
        for n in 0..20 {
            assert!(t.begin(&format!("u{n}"), a, 0).is_ok());
        }
        assert!(matches!(t.begin("u99", a, 0), Err(Refusal::Busy { .. })));
        t.end("u0", a);
        assert!(t.begin("u99", a, 0).is_ok());
    }

    #[test]
    fn five_failures_lock_a_name_for_fifteen_minutes() {
        let mut t = SignInThrottle::default();
        let a = ip("192.0.2.1");
        for i in 0..4 {
            assert_eq!(t.failed("Alice", a, 100 + i), None);
            assert!(t.check("alice", a, 100 + i).is_ok());
        }
        assert_eq!(
            t.failed("ALICE", a, 104),
            Some(Refusal::UserLocked { until: 1004 })
        );
        assert_eq!(
            t.check("alice", ip("198.51.100.7"), 500),
            Err(Refusal::UserLocked { until: 1004 })
        );
        assert!(t.check("bob", a, 500).is_ok());
        assert!(t.check("alice", a, 1004).is_ok());
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut t = SignInThrottle::default();
        let a = ip("192.0.2.1");
        for i in 0..4 {
            t.failed("alice", a, i * 1000);
        }
        assert!(t.check("alice", a, 4000).is_ok());
        t.succeeded("alice");
        assert!(t.users.is_empty());
    }

    #[test]
    fn a_spray_over_many_names_locks_the_address_and_its_v6_neighbours() {
        let mut t = SignInThrottle::default();
        for i in 0..19 {
            assert_eq!(
                t.failed(&format!("user{i}"), ip("2001:db8:1:2::1"), 10),
                None
            );
        }
        assert_eq!(
            t.failed("user19", ip("2001:db8:1:2:ffff::9"), 10),
            Some(Refusal::AddressLocked { until: 910 })
        );
        assert!(matches!(
            t.check("someone", ip("2001:db8:1:2:aaaa::1"), 11),
            Err(Refusal::AddressLocked { .. })
        ));
        assert!(t.check("someone", ip("2001:db8:1:3::1"), 11).is_ok());
        // IPv4-mapped and plain IPv4 are one address.
        for i in 0..20 {
            t.failed(&format!("v4-{i}"), ip("::ffff:192.0.2.9"), 10);
        }
        assert!(t.check("x", ip("192.0.2.9"), 11).is_err());
    }

    #[test]
    fn the_tables_stay_bounded_and_keep_lockouts() {
        let mut t = SignInThrottle::new(ThrottleLimits {
            max_tracked: 10,
            per_address: u32::MAX,
            ..ThrottleLimits::default()
        });
        for _ in 0..5 {
            t.failed("victim", ip("192.0.2.1"), 0);
        }
        for i in 0..1000 {
            t.failed(&format!("flood{i}"), ip("192.0.2.1"), 1);
        }
        assert!(t.users.len() <= 10);
        assert!(t.check("victim", ip("192.0.2.2"), 2).is_err());
    }

    #[test]
    fn failures_on_other_nodes_count_towards_the_lockout() {
        let mut here = SignInThrottle::default();
        let mut there = SignInThrottle::default();
        let a = ip("192.0.2.1");
        for i in 0..3 {
            there.failed("Alice", a, 100 + i);
        }
        let tally = there.tally(103);
        assert_eq!(tally.len(), 2);
        assert!(tally.contains(&("u:alice".to_owned(), 3)));
        assert!(tally.contains(&("a:192.0.2.1".to_owned(), 3)));
        for (key, n) in &tally {
            here.failed_elsewhere(key, *n, 104);
        }
        // Only this node's own failures go out again.
        assert!(here.tally(104).is_empty());
        assert_eq!(here.failed("alice", ip("198.51.100.7"), 105), None);
        assert_eq!(
            here.failed("alice", ip("198.51.100.7"), 106),
            Some(Refusal::UserLocked { until: 1006 })
        );
        here.failed_elsewhere("x:nonsense", 100, 107);
        here.failed_elsewhere("a:not-an-address", 100, 107);
        assert!(here.check("bob", ip("203.0.113.1"), 107).is_ok());
        // Stale entries are not told.
        assert!(there.tally(100 + 900).is_empty());
    }
}
