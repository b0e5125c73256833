//! Signing-key derivation and a cache of derived keys.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The credential scope: `YYYYMMDD/region/service/aws4_request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope<'a> {
    pub date: [u8; 8],
    pub region: &'a str,
    pub service: &'a str,
}

impl Scope<'_> {
    /// Feeds the scope string into a hash or MAC without allocating.
    pub(crate) fn feed(&self, sink: &mut impl FnMut(&[u8])) {
        sink(&self.date);
        sink(b"/");
        sink(self.region.as_bytes());
        sink(b"/");
        sink(self.service.as_bytes());
        sink(b"/aws4_request");
    }

    /// The scope as a string, e.g. for `X-Amz-Credential`.
    pub fn to_scope_string(&self) -> String {
        let mut out = Vec::with_capacity(32 + self.region.len() + self.service.len());
        self.feed(&mut |b| out.extend_from_slice(b));
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A derived SigV4 signing key, kept as a keyed HMAC state so that each
/// signature costs one HMAC without re-absorbing the key.
#[derive(Clone)]
pub struct SigningKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

impl SigningKey {
    /// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")`.
    pub fn derive(secret: &[u8], scope: &Scope<'_>) -> Self {
        let mut prefixed = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
        prefixed.extend_from_slice(b"AWS4");
        prefixed.extend_from_slice(secret);
        let k_date = hmac(&prefixed, &scope.date);
        let k_region = hmac(k_date.as_ref(), scope.region.as_bytes());
        let k_service = hmac(k_region.as_ref(), scope.service.as_bytes());
        let k_signing = hmac(k_service.as_ref(), b"aws4_request");
        Self::from_bytes(&k_signing)
    }

    /// A key from its 32 raw bytes.
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        Self {
            mac: HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!()),
        }
    }

    /// A MAC keyed with this signing key, ready for the string to sign.
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

struct CachedKey {
    secret: Zeroizing<Box<[u8]>>,
    date: [u8; 8],
    region: Box<str>,
    service: Box<str>,
    key: SigningKey,
}

impl CachedKey {
    fn matches(&self, secret: &[u8], scope: &Scope<'_>) -> bool {
        // The secret comparison is constant time; scope fields are public.
        let same_secret: bool = self.secret.as_ref().ct_eq(secret).into();
        same_secret
            && self.date == scope.date
            && *self.region == *scope.region
            && *self.service == *scope.service
    }
}

/// Derived signing keys per (secret, date, region, service), shared by all
/// threads of a verifier. A hit saves four HMACs.
///
/// Sharded `RwLock`s: hits take an uncontended read lock and allocate
/// nothing; only a miss takes a write lock. Each shard is bounded and simply
/// cleared when full, since keys roll over daily anyway.
pub struct SigningKeyCache {
    shards: Box<[RwLock<HashMap<u64, CachedKey>>]>,
    hasher: RandomState,
    per_shard: usize,
}

const SHARDS: usize = 16;

impl SigningKeyCache {
    /// A cache holding at most about `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn slot(&self, secret: &[u8], scope: &Scope<'_>) -> u64 {
        // Keyed SipHash: an attacker who can choose scopes cannot aim for
        // collisions, and the secret never leaves this process.
        let mut h = self.hasher.build_hasher();
        secret.hash(&mut h);
        scope.date.hash(&mut h);
        scope.region.hash(&mut h);
        scope.service.hash(&mut h);
        h.finish()
    }

    /// The signing key for this secret and scope, derived on a miss.
    pub fn get_or_derive(&self, secret: &[u8], scope: &Scope<'_>) -> SigningKey {
        let slot = self.slot(secret, scope);
        // `slot` is a uniformly distributed hash, so its low bits pick a shard.
        let shard = &self.shards[(slot as usize) % SHARDS];
        {
            let map = shard
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(hit) = map.get(&slot).filter(|c| c.matches(secret, scope)) {
                return hit.key.clone();
            }
        }
        let key = SigningKey::derive(secret, scope);
        let mut map = shard
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= self.per_shard {
            map.clear();
        }
        map.insert(
            slot,
            CachedKey {
                secret: Zeroizing::new(secret.into()),
                date: scope.date,
                region: scope.region.into(),
                service: scope.service.into(),
                key: key.clone(),
            },
        );
        key
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether the cache holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new(4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;

    fn sign(key: &SigningKey, msg: &[u8]) -> String {
        let mut mac = key.mac();
        mac.update(msg);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn cache_returns_the_derived_key() {
        let cache = SigningKeyCache::new(64);
        let scope = Scope {
            date: *b"20150830",
            region: "us-east-1",
            service: "iam",
        };
        let direct = SigningKey::derive(b"secret", &scope);
        let first = cache.get_or_derive(b"secret", &scope);
        let second = cache.get_or_derive(b"secret", &scope);
        assert_eq!(cache.len(), 1);
        assert_eq!(sign(&direct, b"x"), sign(&first, b"x"));
        assert_eq!(sign(&direct, b"x"), sign(&second, b"x"));
        let other = cache.get_or_derive(b"other", &scope);
        assert_ne!(sign(&direct, b"x"), sign(&other, b"x"));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn cache_stays_bounded() {
        let cache = SigningKeyCache::new(16);
        for i in 0..1000 {
            let region = format!("r{i}");
            let scope = Scope {
                date: *b"20150830",
                region: &region,
                service: "s",
            };
            cache.get_or_derive(b"k", &scope);
        }
        assert!(cache.len() <= 16);
    }
}
