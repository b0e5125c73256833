//! Signatures already presented. A SigV4 signature that verifies proves
//! that whoever signed held the secret, not that whoever presents it
//! does: a database token is reusable for its 15 minutes, and a captured
//! header-signed request can be sent again while its date is within the
//! allowed clock skew. Only the first presentation of a signature can
//! count as proof of possession; a repeat is what an onlooker who saw the
//! token or the request can produce. Reuse itself is not refused (clients
//! legitimately open many connections with one token, as RDS allows);
//! only the proof changes.
//!
//! One set serves both gateways and the API (it lives in `AppState`), so
//! a token first presented to one cannot be replayed as fresh on another.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Signatures remembered at most, in all. Each costs 16 bytes plus the
/// hash table's overhead: at most about 18 MB when full. Entries leave
/// when their signature can no longer verify (about 15 minutes after
/// signing), so the set fills only under more than about 580 fresh
/// verified signatures a second, sustained; then new signatures go
/// unrecorded and count as unproven (see [`SeenSignatures::first_sight`]).
pub const DEFAULT_CAPACITY: usize = 1 << 19;

/// Independent locks: a login holds one for a hash lookup and insert, so
/// with this many, concurrent logins almost never wait on each other.
const SHARDS: usize = 64;

/// A full shard is swept for expired entries at most this often, so that
/// a shard kept full by live entries does not cost a scan per login.
const PURGE_EVERY_SECS: i64 = 10;

/// A full set is logged at most this often.
const WARN_EVERY_SECS: i64 = 60;

struct Shard {
    /// Keyed hash of the signature -> the last Unix second at which it can
    /// still verify.
    until: HashMap<u64, i64>,
    /// No sweep for expired entries before this time.
    next_purge: i64,
}

/// The verified signatures presented within their validity, bounded (see
/// [`DEFAULT_CAPACITY`]) and sharded.
pub struct SeenSignatures {
    shards: Box<[Mutex<Shard>]>,
    /// Keyed SipHash: nobody outside this process can predict which shard
    /// a signature lands in or make two collide.
    hasher: RandomState,
    per_shard: usize,
    last_warned: AtomicI64,
}

impl SeenSignatures {
    /// A set remembering at most about `capacity` signatures.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        until: HashMap::new(),
                        next_purge: i64::MIN,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            last_warned: AtomicI64::new(i64::MIN),
        }
    }

    /// Records a signature that just verified and says whether this is its
    /// first presentation: only then does it prove that the presenter
    /// holds the secret. `valid_until` is the last Unix second at which it
    /// can verify (after that it is refused as expired, proving nothing,
    /// so it need not be remembered).
    ///
    /// Call it only for verified signatures: anyone can send unverifiable
    /// ones, and recording them would let anyone fill the set.
    ///
    /// Errs towards "not first": a signature that cannot be recorded
    /// because its shard is full of live entries, or that shares its
    /// 64-bit keyed hash with another, counts as a repeat. Either way
    /// detection merely blocks an address where it would have revoked.
    pub fn first_sight(&self, signature: &[u8], valid_until: i64, now: i64) -> bool {
        let mut h = self.hasher.build_hasher();
        h.write(signature);
        let key = h.finish();
        // The high bits pick the shard; the map hashes the key again, so
        // its buckets do not all share the shard's bits.
        let shard = &self.shards[(key >> 58) as usize % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = shard.until.get_mut(&key) {
            // Kept even if past its time until a sweep: a signature that
            // verified again is a repeat whatever the clocks say.
            *until = (*until).max(valid_until);
            return false;
        }
        if shard.until.len() >= self.per_shard {
            if now >= shard.next_purge {
                shard.until.retain(|_, until| *until >= now);
                shard.next_purge = now.saturating_add(PURGE_EVERY_SECS);
            }
            if shard.until.len() >= self.per_shard {
                drop(shard);
                self.warn_full(now);
                return false;
            }
        }
        shard.until.insert(key, valid_until);
        true
    }

    fn warn_full(&self, now: i64) {
        let last = self.last_warned.load(Ordering::Relaxed);
        if now >= last.saturating_add(WARN_EVERY_SECS)
            && self
                .last_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                capacity = self.per_shard * SHARDS,
                "the set of seen signatures is full: new signatures count as not proving \
                 possession, so detection blocks addresses instead of revoking sessions"
            );
        }
    }

    /// Signatures remembered (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).until.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for SeenSignatures {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(n: u64) -> [u8; 32] {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&n.to_le_bytes());
        s
    }

    #[test]
    fn first_presentation_then_repeats() {
        let seen = SeenSignatures::default();
        assert!(seen.first_sight(&sig(1), 1_900, 1_000));
        assert!(!seen.first_sight(&sig(1), 1_900, 1_001));
        assert!(!seen.first_sight(&sig(1), 1_900, 1_899));
        // Another signature is its own first.
        assert!(seen.first_sight(&sig(2), 1_900, 1_001));
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn entries_expire_only_when_room_is_needed_and_then_make_room() {
        // One entry per shard at most.
        let seen = SeenSignatures::new(SHARDS);
        let mut n = 0;
        // Fill some shard: keep adding until one refuses (full of live
        // entries).
        let full_at = loop {
            n += 1;
            if !seen.first_sight(&sig(n), 2_000, 1_000) {
                break n;
            }
            assert!(n < 10_000, "never full");
        };
        // Refused for lack of room, and not recorded: still refused.
        assert!(!seen.first_sight(&sig(full_at), 2_000, 1_000));
        // Past the entries' validity a sweep makes room.
        assert!(seen.first_sight(&sig(full_at), 3_000, 2_001));
        // The swept ones are forgotten (they cannot verify any more, so
        // whether they are "seen" no longer matters) and it is remembered.
        assert!(!seen.first_sight(&sig(full_at), 3_000, 2_002));
    }

    #[test]
    fn the_bound_holds_and_sweeps_are_rate_limited() {
        let seen = SeenSignatures::new(640);
        // Every shard fills (and is swept, for nothing, at 1000).
        for n in 0..10_000 {
            seen.first_sight(&sig(n), 1_003, 1_000);
        }
        assert_eq!(seen.len(), 640);
        // Expired by 1005, but the next sweeps are due at 1010: until
        // then nothing new gets in, and no login pays for a scan.
        let early = (20_000..21_000)
            .filter(|&n| seen.first_sight(&sig(n), 2_000, 1_005))
            .count();
        assert_eq!(early, 0);
        // Then the sweeps make room.
        let late = (30_000..30_320)
            .filter(|&n| seen.first_sight(&sig(n), 2_000, 1_010))
            .count();
        assert!(late > 300, "{late}");
        assert!(seen.len() <= 640);
    }

    #[test]
    fn a_repeat_extends_the_entry() {
        let seen = SeenSignatures::new(SHARDS);
        assert!(seen.first_sight(&sig(7), 1_500, 1_000));
        // Presented again claiming a later validity (clocks moved): kept
        // until then.
        assert!(!seen.first_sight(&sig(7), 2_500, 1_400));
        assert!(!seen.first_sight(&sig(7), 2_500, 2_400));
    }

    #[test]
    fn shared_between_threads() {
        let seen = std::sync::Arc::new(SeenSignatures::default());
        let firsts: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let seen = seen.clone();
                    s.spawn(move || {
                        (0..1_000)
                            .filter(|&n| seen.first_sight(&sig(n), 2_000, 1_000))
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        // Each signature is first for exactly one presenter.
        assert_eq!(firsts, 1_000);
    }
}
