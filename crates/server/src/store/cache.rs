//! The bounded, sharded record cache both stores keep in front of their database: clients,
//! users, hint lookups and device lists read on every backchannel request.
//!
//! A fill that raced with an invalidation is dropped: each shard counts its invalidations,
//! and a fill carries the count it saw before it read the database ([`Ticket`]). The embedded
//! store keeps entries until a write invalidates them (it sees every write to its file); the
//! PostgreSQL store, whose rows other nodes change too, gives every entry a maximum age.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::domain::model::UserLookup;
use crate::store::StoreResult;

const SHARDS: usize = 16;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Entry<V> {
    value: V,
    filled_at: Instant,
}

struct Shard<V> {
    map: HashMap<String, Entry<V>>,
    /// Invalidations so far: a fill that began before one is stale.
    generation: u64,
}

/// What a reader needs to fill a missed key: the shard's invalidation count when it missed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

/// A bounded, sharded map from a key to a record read from the database.
pub(crate) struct Cache<V> {
    shards: Vec<Mutex<Shard<V>>>,
    per_shard: usize,
    hasher: RandomState,
    max_age: Option<Duration>,
}

impl<V: Clone> Cache<V> {
    /// Entries live until invalidated (or evicted for room).
    pub(crate) fn new(capacity: usize) -> Self {
        Self::build(capacity, None)
    }

    /// Entries older than `max_age` count as absent: what another writer changed is seen
    /// within `max_age` even if no invalidation reaches this cache.
    pub(crate) fn with_max_age(capacity: usize, max_age: Duration) -> Self {
        Self::build(capacity, Some(max_age))
    }

    fn build(capacity: usize, max_age: Option<Duration>) -> Self {
        Cache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        generation: 0,
                    })
                })
                .collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            max_age,
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Shard<V>> {
        let i = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        &self.shards[i]
    }

    /// The cached record, or the ticket to fill it with.
    pub(crate) fn get(&self, key: &str) -> Result<V, Ticket> {
        let s = lock(self.shard(key));
        match s.map.get(key) {
            Some(e) if self.max_age.is_none_or(|age| e.filled_at.elapsed() < age) => {
                Ok(e.value.clone())
            }
            _ => Err(Ticket(s.generation)),
        }
    }

    /// Caches what a reader loaded after missing, unless `key`'s shard was invalidated since.
    pub(crate) fn fill(&self, key: &str, ticket: Ticket, value: &V) {
        let mut s = lock(self.shard(key));
        if s.generation != ticket.0 {
            return;
        }
        if s.map.len() >= self.per_shard
            && !s.map.contains_key(key)
            && let Some(victim) = s.map.keys().next().cloned()
        {
            s.map.remove(&victim);
        }
        s.map.insert(
            key.to_owned(),
            Entry {
                value: value.clone(),
                filled_at: Instant::now(),
            },
        );
    }

    /// The cached record, or loads it (not cached when absent: unknown keys cost no memory).
    pub(crate) fn get_or_load(
        &self,
        key: &str,
        load: impl FnOnce() -> StoreResult<Option<V>>,
    ) -> StoreResult<Option<V>> {
        let ticket = match self.get(key) {
            Ok(v) => return Ok(Some(v)),
            Err(ticket) => ticket,
        };
        let loaded = load()?;
        if let Some(v) = &loaded {
            self.fill(key, ticket, v);
        }
        Ok(loaded)
    }

    /// [`Cache::get_or_load`] with a load that awaits (a database round trip).
    pub(crate) async fn get_or_load_async<F>(&self, key: &str, load: F) -> StoreResult<Option<V>>
    where
        F: Future<Output = StoreResult<Option<V>>>,
    {
        let ticket = match self.get(key) {
            Ok(v) => return Ok(Some(v)),
            Err(ticket) => ticket,
        };
        let loaded = load.await?;
        if let Some(v) = &loaded {
            self.fill(key, ticket, v);
        }
        Ok(loaded)
    }

    /// Forgets `key`: called after a committed write that changed its record.
    pub(crate) fn invalidate(&self, key: &str) {
        let mut s = lock(self.shard(key));
        s.map.remove(key);
        s.generation += 1;
    }

    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            let mut s = lock(shard);
            s.map.clear();
            s.generation += 1;
        }
    }
}

/// The cache key of a login-hint lookup (`kind:value`).
pub(crate) fn hint_key(lookup: &UserLookup) -> String {
    match lookup {
        UserLookup::Sub(v) => format!("sub:{v}"),
        UserLookup::Nric(v) => format!("nric:{v}"),
        UserLookup::Email(v) => format!("email:{v}"),
        UserLookup::Username(v) => format!("username:{v}"),
        UserLookup::Phone(v) => format!("phone:{v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_that_raced_an_invalidation_is_dropped() {
        let cache: Cache<u32> = Cache::new(16);
        let ticket = cache.get("a").unwrap_err();
        cache.invalidate("a");
        cache.fill("a", ticket, &1);
        assert!(cache.get("a").is_err());
        let ticket = cache.get("a").unwrap_err();
        cache.fill("a", ticket, &2);
        assert_eq!(cache.get("a").ok(), Some(2));
    }

    #[test]
    fn entries_older_than_the_max_age_are_misses() {
        let cache: Cache<u32> = Cache::with_max_age(16, Duration::ZERO);
        let ticket = cache.get("a").unwrap_err();
        cache.fill("a", ticket, &1);
        assert!(cache.get("a").is_err());
        let lasting: Cache<u32> = Cache::with_max_age(16, Duration::from_secs(60));
        let ticket = lasting.get("a").unwrap_err();
        lasting.fill("a", ticket, &1);
        assert_eq!(lasting.get("a").ok(), Some(1));
    }

    #[test]
    fn a_full_shard_evicts_to_make_room() {
        let cache: Cache<u32> = Cache::new(1);
        for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
            let ticket = cache.get(key).unwrap_err();
            cache.fill(key, ticket, &u32::try_from(i).unwrap());
        }
        let held: usize = cache.shards.iter().map(|s| lock(s).map.len()).sum();
        assert!(held <= SHARDS);
    }
}
