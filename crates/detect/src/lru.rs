//! A map with a size cap that forgets its least recently used entry.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Every lookup through [`Lru::touch`] or [`Lru::get_or_insert_with`]
/// makes the entry the most recent; inserting past the cap evicts the least
/// recent one. Recency is a counter, not a clock.
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    map: HashMap<K, (u64, V)>,
    /// Recency tick to key, oldest first.
    order: BTreeMap<u64, K>,
    tick: u64,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// A cap of 0 is taken as 1.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Without making it the most recent.
    pub(crate) fn peek(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(_, v)| v)
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The entry, made the most recent.
    pub(crate) fn touch(&mut self, key: &K) -> Option<&mut V> {
        let tick = self.next_tick();
        let (at, value) = self.map.get_mut(key)?;
        self.order.remove(at);
        *at = tick;
        self.order.insert(tick, key.clone());
        Some(value)
    }

    /// The entry, made the most recent, created by `make` (evicting the
    /// least recent entry if the map is full) when absent.
    pub(crate) fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        let tick = self.next_tick();
        if let Some((at, _)) = self.map.get_mut(key) {
            self.order.remove(at);
            *at = tick;
        } else {
            while self.map.len() >= self.cap && self.pop_oldest().is_some() {}
        }
        self.order.insert(tick, key.clone());
        &mut self
            .map
            .entry(key.clone())
            .or_insert_with(|| (tick, make()))
            .1
    }

    /// Inserts or replaces, as the most recent entry.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        match self.touch(&key) {
            Some(slot) => *slot = value,
            None => {
                self.get_or_insert_with(&key, || value);
            }
        }
    }

    pub(crate) fn oldest(&self) -> Option<&V> {
        let (_, key) = self.order.first_key_value()?;
        self.peek(key)
    }

    pub(crate) fn pop_oldest(&mut self) -> Option<(K, V)> {
        let (_, key) = self.order.pop_first()?;
        let (_, value) = self.map.remove(&key)?;
        Some((key, value))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values().map(|(_, v)| v)
    }

    /// Keys, most recent first.
    pub(crate) fn keys_recent_first(&self) -> impl Iterator<Item = &K> {
        self.order.values().rev()
    }
}
