//! Connection limits: sessions at once (in all, per source address, per
//! principal) and token buckets on new connections.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Limits on sessions at once.
#[derive(Clone, Copy, Debug)]
pub struct ConcurrencyLimits {
    pub total: u32,
    pub per_ip: u32,
    pub per_principal: u32,
}

/// Live session counts: this node's, and the other nodes' sharing the
/// store as of the last exchange (see [`Counts::gauges`]).
#[derive(Default)]
pub struct Counts {
    total: u32,
    by_ip: HashMap<IpAddr, u32>,
    by_principal: HashMap<String, u32>,
    elsewhere: Elsewhere,
}

/// Sessions the other nodes hold.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Elsewhere {
    pub total: u32,
    pub by_ip: HashMap<IpAddr, u32>,
    pub by_principal: HashMap<String, u32>,
}

/// What a gauge counts, as exchanged through the store.
pub const GAUGE_TOTAL: &str = "total";
/// Tokens taken from the new-connection buckets (cumulative), per
/// address and per principal.
pub const GAUGE_RATE_IP: &str = "rate-ip";
pub const GAUGE_RATE_PRINCIPAL: &str = "rate-principal";
pub const GAUGE_IP: &str = "ip";
pub const GAUGE_PRINCIPAL: &str = "principal";

impl Counts {
    /// This node's live sessions as gauges: (what, key, count).
    pub fn gauges(&self) -> Vec<(&'static str, String, u32)> {
        let mut out = Vec::with_capacity(1 + self.by_ip.len() + self.by_principal.len());
        out.push((GAUGE_TOTAL, String::new(), self.total));
        out.extend(
            self.by_ip
                .iter()
                .map(|(ip, n)| (GAUGE_IP, ip.to_string(), *n)),
        );
        out.extend(
            self.by_principal
                .iter()
                .map(|(p, n)| (GAUGE_PRINCIPAL, p.clone(), *n)),
        );
        out
    }

    /// Takes up the other nodes' sessions.
    pub fn set_elsewhere(&mut self, elsewhere: Elsewhere) {
        self.elsewhere = elsewhere;
    }
}

impl Elsewhere {
    /// From the gauges the other nodes exchanged; what does not parse
    /// counts for nothing.
    pub fn of<'a>(gauges: impl IntoIterator<Item = (&'a str, &'a str, i64)>) -> Self {
        let mut e = Self::default();
        for (what, key, n) in gauges {
            let n = u32::try_from(n).unwrap_or(0);
            match what {
                GAUGE_TOTAL => e.total = e.total.saturating_add(n),
                GAUGE_IP => {
                    if let Ok(ip) = key.parse() {
                        let slot = e.by_ip.entry(ip).or_default();
                        *slot = slot.saturating_add(n);
                    }
                }
                GAUGE_PRINCIPAL => {
                    let slot = e.by_principal.entry(key.to_owned()).or_default();
                    *slot = slot.saturating_add(n);
                }
                _ => {}
            }
        }
        e
    }
}

/// A session's place in the counts, given back when it ends.
pub struct Slot<'a> {
    counts: &'a Mutex<Counts>,
    ip: IpAddr,
    principal: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        release(&mut c.by_ip, &self.ip);
        release(&mut c.by_principal, self.principal.as_str());
    }
}

/// Decrements a per-key count, dropping keys that reach zero.
fn release<K, Q>(map: &mut HashMap<K, u32>, key: &Q)
where
    K: Hash + Eq + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ?Sized,
{
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// Takes a session slot, or says which limit is full.
pub fn acquire<'a>(
    counts: &'a Mutex<Counts>,
    limits: ConcurrencyLimits,
    ip: IpAddr,
    principal: &str,
) -> Result<Slot<'a>, &'static str> {
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    // Here and on the other nodes sharing the store.
    let e = &c.elsewhere;
    if c.total.saturating_add(e.total) >= limits.total {
        return Err("too many connections");
    }
    let ip_count = |m: &HashMap<IpAddr, u32>| m.get(&ip).copied().unwrap_or(0);
    if ip_count(&c.by_ip).saturating_add(ip_count(&e.by_ip)) >= limits.per_ip {
        return Err("too many connections from this address");
    }
    let principal_count = |m: &HashMap<String, u32>| m.get(principal).copied().unwrap_or(0);
    if principal_count(&c.by_principal).saturating_add(principal_count(&e.by_principal))
        >= limits.per_principal
    {
        return Err("too many connections for this principal");
    }
    c.total += 1;
    *c.by_ip.entry(ip).or_default() += 1;
    *c.by_principal.entry(principal.to_owned()).or_default() += 1;
    Ok(Slot {
        counts,
        ip,
        principal: principal.to_owned(),
    })
}

/// A token bucket's shape: `per_second` tokens refill, up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

/// One token bucket per key (source address or principal).
pub struct Buckets<K> {
    limit: Option<RateLimit>,
    buckets: Mutex<HashMap<K, Bucket>>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    /// Tokens this node took from it since the bucket was made: what the
    /// other nodes sharing the store take from theirs in turn.
    taken: u64,
}

impl Bucket {
    fn refill(&mut self, limit: RateLimit, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_second).min(limit.burst);
        self.last = now;
    }
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// `None`: unlimited.
    pub fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn bucket<'a, Q>(
        buckets: &'a mut HashMap<K, Bucket>,
        key: &Q,
        limit: RateLimit,
        now: Instant,
    ) -> &'a mut Bucket
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !buckets.contains_key(key) {
            buckets.insert(
                key.to_owned(),
                Bucket {
                    tokens: limit.burst,
                    last: now,
                    taken: 0,
                },
            );
        }
        let bucket = buckets
            .get_mut(key)
            .expect("the bucket was just made if missing");
        bucket.refill(limit, now);
        bucket
    }

    /// Takes a token for `key`; false when its bucket is empty.
    pub fn allow<Q>(&self, key: &Q, now: Instant) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let Some(limit) = self.limit else {
            return true;
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = Self::bucket(&mut buckets, key, limit, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.taken += 1;
            true
        } else {
            false
        }
    }

    /// Tokens taken per key, for the other nodes: the [`EXCHANGED_KEYS`]
    /// busiest (keys with none left out), so that a flood of addresses
    /// cannot swell the exchange.
    pub fn taken(&self) -> Vec<(K, u64)> {
        let mut taken: Vec<(K, u64)> = self
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, b)| b.taken > 0)
            .map(|(k, b)| (k.clone(), b.taken))
            .collect();
        busiest(&mut taken);
        taken
    }

    /// Removes `n` tokens from `key`'s bucket: what other nodes took for
    /// it, so that the rate holds for the cluster. The bucket may go into
    /// debt, as far as one burst.
    pub fn drain(&self, key: K, n: f64, now: Instant) {
        let Some(limit) = self.limit else {
            return;
        };
        if n <= 0.0 {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = Self::bucket(&mut buckets, &key, limit, now);
        bucket.tokens = (bucket.tokens - n).max(-limit.burst);
    }

    /// Forgets buckets that have refilled: they hold nothing a new one
    /// would not.
    pub fn sweep(&self, now: Instant) {
        let Some(limit) = self.limit else {
            return;
        };
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * limit.per_second
                    < limit.burst
            });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or(0)
    }
}

/// Keys each kind of count sends to the other nodes at most: the busiest.
/// Past it a key's count drops out of the exchange and, should it come
/// back, counts whole again on the others (they err on the strict side).
pub const EXCHANGED_KEYS: usize = 1_000;

/// Keeps the [`EXCHANGED_KEYS`] largest counts of `counts`.
pub fn busiest<K>(counts: &mut Vec<(K, u64)>) {
    if counts.len() > EXCHANGED_KEYS {
        counts.sort_unstable_by_key(|c| std::cmp::Reverse(c.1));
        counts.truncate(EXCHANGED_KEYS);
    }
}

/// What the other nodes took from their buckets, from the cumulative
/// counts they publish: each exchange gives the counts' sums over the
/// other nodes, and what grew since the last is drained here (a key new
/// since then, all of it). The first exchange only notes where the sums
/// stand: what was taken before this node joined is not its business. A
/// sum that shrank (a node gone, a bucket swept) drains nothing.
#[derive(Default)]
pub struct TakenElsewhere {
    seen: HashMap<String, i64>,
    primed: bool,
}

impl TakenElsewhere {
    /// The growth of each key's sum since the last call; keys absent now
    /// are forgotten.
    pub fn growth<'a>(
        &mut self,
        sums: impl Iterator<Item = (&'a str, i64)>,
    ) -> Vec<(&'a str, i64)> {
        let mut seen = HashMap::with_capacity(self.seen.len());
        let mut out = Vec::new();
        for (key, sum) in sums {
            let before = match self.seen.get(key) {
                Some(before) => *before,
                None if self.primed => 0,
                None => sum,
            };
            if sum > before {
                out.push((key, sum - before));
            }
            seen.insert(key.to_owned(), sum);
        }
        self.seen = seen;
        self.primed = true;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let b: Buckets<String> = Buckets::new(Some(RateLimit {
            per_second: 10.0,
            burst: 3.0,
        }));
        let t = Instant::now();
        assert!((0..3).all(|_| b.allow("a", t)));
        assert!(!b.allow("a", t));
        // Another key has its own bucket.
        assert!(b.allow("b", t));
        // 100 ms refills one token.
        let later = t + Duration::from_millis(100);
        assert!(b.allow("a", later));
        assert!(!b.allow("a", later));
        // Refilled buckets are forgotten ("b"); others are kept.
        b.sweep(later);
        assert_eq!(b.len(), 1);
        b.sweep(t + Duration::from_secs(10));
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn no_limit_allows_everything() {
        let b: Buckets<IpAddr> = Buckets::new(None);
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert!((0..10_000).all(|_| b.allow(&ip, Instant::now())));
    }

    #[test]
    fn slots_are_given_back() {
        let counts = Mutex::new(Counts::default());
        let limits = ConcurrencyLimits {
            total: 2,
            per_ip: 2,
            per_principal: 1,
        };
        let ip = IpAddr::from([10, 0, 0, 1]);
        let a = acquire(&counts, limits, ip, "p1").ok();
        assert!(a.is_some());
        assert_eq!(
            acquire(&counts, limits, ip, "p1").err(),
            Some("too many connections for this principal")
        );
        let b = acquire(&counts, limits, ip, "p2").ok();
        assert!(b.is_some());
        assert_eq!(
            acquire(&counts, limits, ip, "p3").err(),
            Some("too many connections")
        );
        drop(a);
        assert!(acquire(&counts, limits, ip, "p1").is_ok());
    }

    #[test]
    fn the_other_nodes_sessions_count_too() {
        let counts = Mutex::new(Counts::default());
        let limits = ConcurrencyLimits {
            total: 10,
            per_ip: 4,
            per_principal: 2,
        };
        let ip = IpAddr::from([10, 0, 0, 1]);
        let held = acquire(&counts, limits, ip, "p1").unwrap();
        let gauges = counts.lock().unwrap().gauges();
        assert!(gauges.contains(&(GAUGE_TOTAL, String::new(), 1)));
        assert!(gauges.contains(&(GAUGE_IP, "10.0.0.1".into(), 1)));
        assert!(gauges.contains(&(GAUGE_PRINCIPAL, "p1".into(), 1)));
        // Another node holds one session of p1, and two from this address
        // (one of p2); a key that does not parse counts for nothing.
        let elsewhere = Elsewhere::of([
            (GAUGE_TOTAL, "", 3),
            (GAUGE_PRINCIPAL, "p1", 1),
            (GAUGE_PRINCIPAL, "p2", 1),
            (GAUGE_IP, "10.0.0.1", 1),
            (GAUGE_IP, "10.0.0.1", 1),
            (GAUGE_IP, "not an address", 9),
            ("unknown", "x", 9),
        ]);
        assert_eq!(elsewhere.by_ip.len(), 1);
        counts.lock().unwrap().set_elsewhere(elsewhere);
        assert_eq!(
            acquire(&counts, limits, ip, "p1").err(),
            Some("too many connections for this principal")
        );
        // Two here and two there from this address: full.
        let _second = acquire(&counts, limits, ip, "p3").unwrap();
        assert_eq!(
            acquire(&counts, limits, ip, "p4").err(),
            Some("too many connections from this address")
        );
        let other = IpAddr::from([10, 0, 0, 2]);
        assert!(acquire(&counts, limits, other, "p4").is_ok());
        // The other node let go: this node's own count is all.
        counts.lock().unwrap().set_elsewhere(Elsewhere::default());
        drop(held);
        assert!(acquire(&counts, limits, ip, "p1").is_ok());
    }

    #[test]
    fn buckets_take_up_what_other_nodes_took() {
        let limit = RateLimit {
            per_second: 1.0,
            burst: 2.0,
        };
        let here: Buckets<String> = Buckets::new(Some(limit));
        let t = Instant::now();
        assert!(here.allow("p", t));
        assert_eq!(here.taken(), [("p".to_owned(), 1)]);
        // Another node took two for "p": this node's bucket is empty, and
        // in debt no deeper than a burst.
        here.drain("p".to_owned(), 2.0, t);
        assert!(!here.allow("p", t));
        here.drain("q".to_owned(), 10.0, t);
        assert!(!here.allow("q", t + Duration::from_millis(1500)));
        assert!(!here.allow("q", t + Duration::from_millis(2500)));
        assert!(here.allow("q", t + Duration::from_secs(5)));
        // Unlimited buckets ignore it.
        let free: Buckets<String> = Buckets::new(None);
        free.drain("p".to_owned(), 5.0, t);
        assert!(free.allow("p", t));
        assert!(free.taken().is_empty());
    }

    #[test]
    fn only_growth_since_the_last_exchange_is_drained() {
        let mut elsewhere = TakenElsewhere::default();
        // The first exchange: what was taken before is not drained.
        assert!(elsewhere.growth([("a", 40)].into_iter()).is_empty());
        // Then growth, and all of a key new since.
        assert_eq!(
            elsewhere.growth([("a", 43), ("b", 5)].into_iter()),
            [("a", 3), ("b", 5)]
        );
        // A sum that shrank drains nothing; a key gone is forgotten, and
        // counts from nothing when it comes back.
        assert!(elsewhere.growth([("a", 10)].into_iter()).is_empty());
        assert_eq!(elsewhere.growth([("a", 12)].into_iter()), [("a", 2)]);
        assert_eq!(elsewhere.growth([("b", 7)].into_iter()), [("b", 7)]);
    }

    #[test]
    fn only_the_busiest_keys_are_exchanged() {
        let mut counts: Vec<(u32, u64)> = (0..EXCHANGED_KEYS as u32 + 500)
            .map(|k| (k, u64::from(k)))
            .collect();
        busiest(&mut counts);
        assert_eq!(counts.len(), EXCHANGED_KEYS);
        assert!(counts.iter().all(|(_, n)| *n >= 500));
    }
}
