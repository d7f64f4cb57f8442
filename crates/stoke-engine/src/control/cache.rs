//! The control plane's read-through, write-through cache of what it keeps in the store
//! (functions, published versions, aliases), so that a call does not read the store.
//!
//! A write through this process's control plane keeps the cache in step: a successful write
//! puts the new value, a failed one forgets the key (someone else wrote it; read it afresh
//! next time). A write through another node reaches this one through the store's change feed
//! (`super::feed`), which forgets what it names ([`Cache::forget_where`]) or everything
//! ([`Cache::clear`]).
//!
//! A value read on a miss is kept only if nothing was forgotten while it was read (an epoch,
//! bumped by every forget): a change heard while the store answered the read could be newer
//! than what it answered, and keeping that would keep a stale value until the next change.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Values by key, as last read or written by this process.
#[derive(Debug)]
pub struct Cache<K, V> {
    map: RwLock<HashMap<K, V>>,
    /// Bumped (under the map's lock) by every forget: a read that began before is not kept.
    epoch: AtomicU64,
}

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// The cached value of `key`, if any.
    pub fn get(&self, key: &K) -> Option<V> {
        self.map.read().ok().and_then(|m| m.get(key).cloned())
    }

    /// The value of `key`: cached, or read by `load` (and cached if it exists).
    pub async fn get_or_load<E>(
        &self,
        key: K,
        load: impl Future<Output = Result<Option<V>, E>>,
    ) -> Result<Option<V>, E> {
        if let Some(v) = self.get(&key) {
            return Ok(Some(v));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let v = load.await?;
        if let Some(v) = &v
            && let Ok(mut m) = self.map.write()
            && self.epoch.load(Ordering::Acquire) == epoch
        {
            m.insert(key, v.clone());
        }
        Ok(v)
    }

    /// Remembers `value` as what `key` holds now.
    pub fn put(&self, key: K, value: V) {
        if let Ok(mut m) = self.map.write() {
            m.insert(key, value);
        }
    }

    /// Forgets `key`: the next read goes to the store.
    pub fn forget(&self, key: &K) {
        if let Ok(mut m) = self.map.write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            m.remove(key);
        }
    }

    /// Forgets every key for which `drop` answers true.
    pub fn forget_where(&self, mut drop: impl FnMut(&K) -> bool) {
        if let Ok(mut m) = self.map.write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            m.retain(|k, _| !drop(k));
        }
    }

    /// Forgets every key.
    pub fn clear(&self) {
        self.forget_where(|_| true);
    }

    /// Runs `write` (storing `value` under `key`) and keeps the cache in step with its
    /// result: the value on success, nothing on failure.
    pub async fn write_through<T, E>(
        &self,
        key: K,
        value: &V,
        write: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let r = write.await;
        match &r {
            Ok(_) => self.put(key, value.clone()),
            Err(_) => self.forget(&key),
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_loaded_value_is_served_from_the_cache_until_forgotten() {
        let cache: Cache<u32, String> = Cache::default();
        let v = cache
            .get_or_load(1, async { Ok::<_, ()>(Some("one".to_owned())) })
            .await;
        assert_eq!(v, Ok(Some("one".to_owned())));
        // Not read again: the cached value answers.
        let v = cache
            .get_or_load(1, async { Ok::<_, ()>(Some("other".to_owned())) })
            .await;
        assert_eq!(v, Ok(Some("one".to_owned())));
        cache.forget(&1);
        assert_eq!(cache.get(&1), None);
    }

    #[tokio::test]
    async fn a_value_read_while_a_change_was_heard_is_not_kept() {
        let cache: Cache<u32, String> = Cache::default();
        let v = cache
            .get_or_load(1, async {
                // A change heard while the store answered the read.
                cache.forget(&1);
                Ok::<_, ()>(Some("maybe stale".to_owned()))
            })
            .await;
        assert_eq!(v, Ok(Some("maybe stale".to_owned())), "answered");
        assert_eq!(cache.get(&1), None, "but not kept");
        let v = cache
            .get_or_load(1, async { Ok::<_, ()>(Some("fresh".to_owned())) })
            .await;
        assert_eq!(v, Ok(Some("fresh".to_owned())));
        assert_eq!(cache.get(&1).as_deref(), Some("fresh"));
        cache.clear();
        assert_eq!(cache.get(&1), None);
    }

    #[tokio::test]
    async fn an_absent_value_is_not_cached() {
        let cache: Cache<u32, String> = Cache::default();
        let v = cache.get_or_load(1, async { Ok::<_, ()>(None) }).await;
        assert_eq!(v, Ok(None));
        assert_eq!(cache.get(&1), None);
    }

    #[tokio::test]
    async fn a_failed_write_forgets_the_key_and_a_good_one_remembers_it() {
        let cache: Cache<u32, String> = Cache::default();
        cache.put(1, "old".into());
        let r = cache
            .write_through(1, &"new".to_owned(), async { Err::<(), _>("stale") })
            .await;
        assert_eq!(r, Err("stale"));
        assert_eq!(cache.get(&1), None);
        let r = cache
            .write_through(1, &"new".to_owned(), async { Ok::<_, ()>(()) })
            .await;
        assert_eq!(r, Ok(()));
        assert_eq!(cache.get(&1).as_deref(), Some("new"));
        cache.put(2, "two".into());
        cache.forget_where(|k| *k == 1);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&2).as_deref(), Some("two"));
    }
}
