//! What the embedded store keeps in memory: hot records (clients, users, devices, requests)
//! read through to the file, and the poll book (when each pending request was last polled and
//! its grown interval), which lives only here: a crash loses at most the right to refuse one
//! early poll.
//!
//! A cache entry is never newer than the file and never stale after a write is acknowledged:
//! this process's writes invalidate the entries they touch once they have committed, other
//! processes' writes clear everything (the writer notices them by `PRAGMA data_version`), and
//! a fill that raced with an invalidation is dropped ([`crate::store::cache`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use crate::domain::model::{AuthRequest, AuthRequestState, Client, Device, User};
use crate::domain::policy::AccessPolicy;
use crate::store::PollGate;
use crate::store::cache::{Cache, lock};

const SHARDS: usize = 16;

/// Every cached record kind.
pub(super) struct Caches {
    pub(super) clients: Cache<Client>,
    /// A client's access policy, or `None` when it has none (absence is cached too).
    pub(super) policies: Cache<Option<AccessPolicy>>,
    pub(super) users: Cache<User>,
    /// A login-hint lookup (`kind:value`) to its user.
    pub(super) hints: Cache<User>,
    pub(super) devices: Cache<Device>,
    /// A user's devices, as `list_devices` returns them.
    pub(super) user_devices: Cache<Vec<Device>>,
    pub(super) requests: Cache<AuthRequest>,
    /// A "not me" block's end by `user\0client`, `None` when there is none (absence cached
    /// too: every backchannel request asks).
    pub(super) blocks: Cache<Option<i64>>,
}

impl Caches {
    pub(super) fn new() -> Self {
        Caches {
            clients: Cache::new(4096),
            policies: Cache::new(4096),
            users: Cache::new(65_536),
            hints: Cache::new(65_536),
            devices: Cache::new(65_536),
            user_devices: Cache::new(65_536),
            requests: Cache::new(65_536),
            blocks: Cache::new(65_536),
        }
    }

    /// Another process wrote to the file: nothing cached can be trusted.
    pub(super) fn clear_all(&self) {
        self.clients.clear();
        self.policies.clear();
        self.clear_users();
        self.clear_devices();
        self.requests.clear();
        self.blocks.clear();
    }

    pub(super) fn clear_users(&self) {
        self.users.clear();
        self.hints.clear();
    }

    pub(super) fn clear_devices(&self) {
        self.devices.clear();
        self.user_devices.clear();
    }
}

#[derive(Debug, Clone, Copy)]
struct PollEntry {
    last_polled_at: Option<i64>,
    interval_secs: i64,
    expires_at: i64,
}

/// When each pending request was last polled, and its interval as `slow_down` grew it
/// (CIBA Core §7.3, §11), kept in memory only.
pub(super) struct PollBook {
    shards: Vec<Mutex<HashMap<String, PollEntry>>>,
    hasher: RandomState,
}

impl PollBook {
    pub(super) fn new() -> Self {
        PollBook {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, PollEntry>> {
        let i = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        lock(&self.shards[i])
    }

    /// The poll gate of `AuthRequestStore::record_poll` for a request that is pending.
    pub(super) fn record(&self, request: &AuthRequest, now: i64, increment: i64) -> PollGate {
        let mut shard = self.shard(&request.id);
        // Amortised sweep: when a new entry would make a shard double past 1024 entries,
        // expired ones go first.
        if shard.len() >= 1024 && shard.len().is_power_of_two() && !shard.contains_key(&request.id)
        {
            shard.retain(|_, e| e.expires_at > now);
        }
        let entry = shard.entry(request.id.clone()).or_insert(PollEntry {
            last_polled_at: request.last_polled_at,
            interval_secs: request.interval_secs,
            expires_at: request.expires_at,
        });
        let allowed = entry
            .last_polled_at
            .is_none_or(|last| last + entry.interval_secs * 1000 <= now);
        entry.last_polled_at = Some(now);
        if allowed {
            PollGate::Allowed
        } else {
            entry.interval_secs += increment;
            PollGate::SlowDown {
                interval_secs: entry.interval_secs,
            }
        }
    }

    /// A held poll answered pending at `now` spaced the client's polls by itself: the next
    /// one may come at once (as if the last poll were an interval ago).
    pub(super) fn touch(&self, request: &AuthRequest, now: i64) {
        let mut shard = self.shard(&request.id);
        let entry = shard.entry(request.id.clone()).or_insert(PollEntry {
            last_polled_at: None,
            interval_secs: request.interval_secs,
            expires_at: request.expires_at,
        });
        entry.last_polled_at = Some(now - entry.interval_secs * 1000);
    }

    /// The request as the file has it, with the poll state only memory knows.
    pub(super) fn overlay(&self, mut request: AuthRequest) -> AuthRequest {
        if request.state == AuthRequestState::Pending
            && let Some(entry) = self.shard(&request.id).get(&request.id)
        {
            request.last_polled_at = entry.last_polled_at;
            request.interval_secs = entry.interval_secs;
        }
        request
    }

    /// The request is no longer pending: its poll state is no longer needed.
    pub(super) fn forget(&self, id: &str) {
        self.shard(id).remove(id);
    }

    /// Drops the entries of requests that expired before `before`.
    pub(super) fn sweep(&self, before: i64) {
        for shard in &self.shards {
            lock(shard).retain(|_, e| e.expires_at >= before);
        }
    }
}
