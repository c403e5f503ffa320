//! Read-through caches for the rows that nearly every request reads: the visit and the
//! caller's place in it. A clinician's app asks for room tokens, the queue and participants
//! all day; reading SQLite for each costs a hand-off to a database thread and back, which is
//! most of what a token request costs once its signature is made.
//!
//! The caches are only ever right or empty. Every write to a cached table goes through the
//! [`super::Store`] function that makes it, and that function calls [`RowCache::invalidate`]
//! after its statement. A read that raced a write cannot put the old row back: a read notes
//! the cache's generation before it queries, and [`RowCache::fill`] refuses its row if any
//! invalidation happened meanwhile. The cache belongs to one process: a deployment where
//! several servers write the same database must not share rows through it (Rounds runs one
//! writer per database; DESIGN §7).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub(crate) struct RowCache<K, V> {
    inner: Mutex<Inner<K, V>>,
    capacity: usize,
}

struct Inner<K, V> {
    rows: HashMap<K, V>,
    /// Bumped by every invalidation.
    generation: u64,
}

impl<K: Hash + Eq, V: Clone> RowCache<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                rows: HashMap::new(),
                generation: 0,
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached row, or the generation to hand to [`RowCache::fill`] after reading it.
    pub(crate) fn get(&self, key: &K) -> Result<V, u64> {
        let inner = self.lock();
        inner.rows.get(key).cloned().ok_or(inner.generation)
    }

    /// Keeps a row read from the database, unless an invalidation happened since `generation`
    /// was handed out (the row may predate that write).
    pub(crate) fn fill(&self, key: K, row: V, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.rows.len() >= self.capacity {
            // Forgetting is always correct; the busy rows come straight back.
            inner.rows.clear();
        }
        inner.rows.insert(key, row);
    }

    /// Forgets the row: call after every write to it.
    pub(crate) fn invalidate(&self, key: &K) {
        let mut inner = self.lock();
        inner.rows.remove(key);
        inner.generation = inner.generation.wrapping_add(1);
    }

    /// Forgets every row: for a write that cannot name the rows it changed.
    pub(crate) fn invalidate_all(&self) {
        let mut inner = self.lock();
        inner.rows.clear();
        inner.generation = inner.generation.wrapping_add(1);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().rows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let cache: RowCache<&str, u32> = RowCache::new(8);
        let generation = cache.get(&"v1").unwrap_err();
        // A write lands while the read is in flight.
        cache.invalidate(&"v1");
        cache.fill("v1", 1, generation);
        assert!(
            cache.get(&"v1").is_err(),
            "the possibly old row was refused"
        );

        let generation = cache.get(&"v1").unwrap_err();
        cache.fill("v1", 2, generation);
        assert_eq!(cache.get(&"v1"), Ok(2));
        cache.invalidate(&"v1");
        assert!(cache.get(&"v1").is_err());

        let generation = cache.get(&"v2").unwrap_err();
        cache.invalidate_all();
        cache.fill("v2", 3, generation);
        assert!(cache.get(&"v2").is_err());
    }

    #[test]
    fn it_stays_within_its_capacity() {
        let cache: RowCache<u32, u32> = RowCache::new(3);
        for k in 0..10 {
            let generation = cache.get(&k).unwrap_err();
            cache.fill(k, k, generation);
            assert!(cache.len() <= 3);
            assert_eq!(cache.get(&k), Ok(k));
        }
    }
}
