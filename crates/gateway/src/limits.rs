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
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// `None`: unlimited.
    pub fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
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
        let (tokens, last) = match buckets.get_mut(key) {
            Some(b) => b,
            None => buckets.entry(key.to_owned()).or_insert((limit.burst, now)),
        };
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * limit.per_second).min(limit.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
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
            .retain(|_, (tokens, last)| {
                *tokens + now.saturating_duration_since(*last).as_secs_f64() * limit.per_second
                    < limit.burst
            });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or(0)
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
}
