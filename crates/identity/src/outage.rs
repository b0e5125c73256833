//! What a node read from the store lately, kept to serve while the store
//! does not answer (`store_outage_grace`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use latchkey_store::StoreError;

/// Values read from the store by key, each with when it was read. A read
/// that succeeds replaces the entry; one that fails because the store is
/// unavailable falls back on an entry read within the grace. Entries older
/// than the grace are dropped as others arrive, so that nothing is kept
/// longer than it could serve.
pub struct OutageCache<K, V> {
    entries: Mutex<HashMap<K, (V, i64)>>,
    /// Most entries kept: beyond it the oldest half goes.
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> OutageCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// `read()`, remembered at `now`; when it fails with
    /// [`StoreError::Unavailable`], the value read for `key` less than
    /// `grace` seconds before `now`, if there is one.
    pub fn read(
        &self,
        key: &K,
        now: i64,
        grace: i64,
        read: impl FnOnce() -> Result<V, StoreError>,
    ) -> Result<V, StoreError> {
        match read() {
            Ok(value) => {
                if grace > 0 {
                    let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
                    if entries.len() >= self.capacity {
                        entries.retain(|_, (_, at)| now - *at < grace);
                    }
                    if entries.len() < self.capacity {
                        entries.insert(key.clone(), (value.clone(), now));
                    }
                }
                Ok(value)
            }
            Err(StoreError::Unavailable(why)) => {
                let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
                entries.retain(|_, (_, at)| now - *at < grace);
                match entries.get(key) {
                    Some((value, _)) => Ok(value.clone()),
                    None => Err(StoreError::Unavailable(why)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets everything (after a change to what it holds).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> Result<u32, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }

    #[test]
    fn serves_what_was_read_within_the_grace_only_while_the_store_is_down() {
        let cache = OutageCache::new(10);
        assert_eq!(cache.read(&"a", 100, 30, || Ok(1)).unwrap(), 1);
        // The store answers: its answer, not the cache's.
        assert_eq!(cache.read(&"a", 101, 30, || Ok(2)).unwrap(), 2);
        assert_eq!(cache.read(&"a", 120, 30, down).unwrap(), 2);
        assert!(matches!(
            cache.read(&"a", 131, 30, down),
            Err(StoreError::Unavailable(_))
        ));
        // Other errors are never covered.
        cache.read(&"b", 200, 30, || Ok(3)).unwrap();
        assert!(matches!(
            cache.read(&"b", 201, 30, || Err(StoreError::Conflict)),
            Err(StoreError::Conflict)
        ));
        // Nothing unknown, nothing with no grace.
        assert!(cache.read(&"c", 201, 30, down).is_err());
        let none = OutageCache::new(10);
        none.read(&"a", 100, 0, || Ok(1)).unwrap();
        assert!(none.read(&"a", 100, 30, down).is_err());
        cache.clear();
        assert!(cache.read(&"b", 202, 30, down).is_err());
    }

    #[test]
    fn full_keeps_what_can_still_serve() {
        let cache = OutageCache::new(2);
        cache.read(&"a", 100, 10, || Ok(1)).unwrap();
        cache.read(&"b", 105, 10, || Ok(2)).unwrap();
        // Full: "a" is past the grace and goes; "c" takes its place.
        cache.read(&"c", 111, 10, || Ok(3)).unwrap();
        assert_eq!(cache.read(&"c", 112, 10, down).unwrap(), 3);
        assert_eq!(cache.read(&"b", 112, 10, down).unwrap(), 2);
        // Full of live entries: "d" is not kept.
        cache.read(&"d", 112, 10, || Ok(4)).unwrap();
        assert!(cache.read(&"d", 113, 10, down).is_err());
    }
}
