//! The poll gate on PostgreSQL, kept in the database so that nodes agree, with this node's
//! memory in front of it. A poll that comes sooner than the interval after a poll this node
//! saw is too soon whatever the database says (the database's last poll is no older, its
//! interval no shorter), so it is answered `slow_down` from memory; the interval it adds is
//! written within [`FLUSH_EVERY`] by one statement for every request. Only a poll that may be
//! allowed asks the database, by one locked read-and-update that also carries what memory has
//! not yet written: two nodes never both allow a poll within an interval.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::{affected, one};
use crate::domain::model::{AuthRequest, AuthRequestState};
use crate::store::cache::lock;
use crate::store::rows::RowExt as _;
use crate::store::{PollGate, StoreResult};

const SHARDS: usize = 16;
/// How soon the intervals added by `slow_down` answered from memory reach the database.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The database's gate, with what this node has not written yet: allowed when the poll is the
/// first or comes at least the interval after the later of the database's and this node's last
/// poll; the interval grows by `$3` when it is not.
const RECORD_POLL: &str = "UPDATE auth_requests a SET last_polled_at = $2, \
    interval_secs = o.interval_secs + $4 + CASE WHEN GREATEST(o.last_polled_at, $5::int8) IS NULL \
    OR GREATEST(o.last_polled_at, $5::int8) + (o.interval_secs + $4) * 1000 <= $2 \
    THEN 0 ELSE $3 END \
    FROM (SELECT id, last_polled_at, interval_secs FROM auth_requests \
    WHERE id = $1 AND state = 'pending' FOR UPDATE) o \
    WHERE a.id = o.id \
    RETURNING a.interval_secs, a.expires_at, a.client_id, (GREATEST(o.last_polled_at, $5::int8) IS NULL \
    OR GREATEST(o.last_polled_at, $5::int8) + (o.interval_secs + $4) * 1000 <= $2) AS allowed";
/// Intervals grown in memory, for many requests at once.
const FLUSH: &str = "UPDATE auth_requests a SET interval_secs = a.interval_secs + f.added, \
    last_polled_at = GREATEST(a.last_polled_at, f.last) \
    FROM unnest($1::text[], $2::int8[], $3::int8[]) AS f(id, added, last) \
    WHERE a.id = f.id AND a.state = 'pending'";

#[derive(Debug, Clone)]
struct Entry {
    /// The client the request belongs to: only its polls are answered from memory.
    client_id: String,
    last_polled_at: i64,
    /// The interval as this node knows it, unwritten additions included.
    interval_secs: i64,
    /// Seconds added by `slow_down` answered from memory and not yet written.
    unwritten_secs: i64,
    expires_at: i64,
}

pub(super) struct PollGates {
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    hasher: RandomState,
    pool: sqlx::PgPool,
}

impl PollGates {
    /// The gates, and the task that writes their additions (it ends with them).
    pub(super) fn start(pool: sqlx::PgPool) -> Arc<PollGates> {
        let gates = Arc::new(PollGates {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            pool,
        });
        tokio::spawn(flush_forever(Arc::downgrade(&gates)));
        gates
    }

    fn shard(&self, id: &str) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        let i = usize::try_from(self.hasher.hash_one(id) % SHARDS as u64).unwrap_or(0);
        lock(&self.shards[i])
    }

    /// `AuthRequestStore::early_poll`: a poll by the request's client, before its expiry,
    /// sooner than the interval after the last poll this node saw.
    pub(super) fn early(&self, id: &str, client_id: &str, now: i64, increment: i64) -> Option<i64> {
        let mut shard = self.shard(id);
        let e = shard.get_mut(id)?;
        if e.client_id != client_id
            || now >= e.expires_at
            || e.last_polled_at + e.interval_secs * 1000 <= now
        {
            return None;
        }
        e.interval_secs += increment;
        e.unwritten_secs += increment;
        e.last_polled_at = now;
        Some(e.interval_secs)
    }

    /// `AuthRequestStore::record_poll`.
    pub(super) async fn record(&self, id: &str, now: i64, increment: i64) -> StoreResult<PollGate> {
        // Too soon after a poll seen here: answered from memory.
        let (unwritten, last) = {
            let mut shard = self.shard(id);
            match shard.get_mut(id) {
                Some(e) if e.last_polled_at + e.interval_secs * 1000 > now => {
                    e.interval_secs += increment;
                    e.unwritten_secs += increment;
                    e.last_polled_at = now;
                    return Ok(PollGate::SlowDown {
                        interval_secs: e.interval_secs,
                    });
                }
                Some(e) => (
                    std::mem::take(&mut e.unwritten_secs),
                    Some(e.last_polled_at),
                ),
                None => (0, None),
            }
        };
        let q = sqlx::query(RECORD_POLL)
            .bind(id)
            .bind(now)
            .bind(increment)
            .bind(unwritten)
            .bind(last);
        let answered = one(&self.pool, q, |r| {
            Ok((
                r.flag("allowed")?,
                r.int("interval_secs")?,
                r.int("expires_at")?,
                r.text("client_id")?,
            ))
        })
        .await;
        let mut shard = self.shard(id);
        match answered {
            Err(e) => {
                if let Some(entry) = shard.get_mut(id) {
                    entry.unwritten_secs += unwritten;
                }
                Err(e)
            }
            // Gone or no longer pending: the domain, which checked its state first, answers
            // from the state.
            Ok(None) => {
                shard.remove(id);
                Ok(PollGate::Allowed)
            }
            Ok(Some((allowed, interval_secs, expires_at, client_id))) => {
                let entry = shard.entry(id.to_owned()).or_insert(Entry {
                    client_id,
                    last_polled_at: now,
                    interval_secs,
                    unwritten_secs: 0,
                    expires_at,
                });
                entry.last_polled_at = entry.last_polled_at.max(now);
                entry.interval_secs = interval_secs + entry.unwritten_secs;
                Ok(if allowed {
                    PollGate::Allowed
                } else {
                    PollGate::SlowDown {
                        interval_secs: entry.interval_secs,
                    }
                })
            }
        }
    }

    /// The request as the database has it, with what this node's gate has not written yet.
    pub(super) fn overlay(&self, mut request: AuthRequest) -> AuthRequest {
        if request.state == AuthRequestState::Pending
            && let Some(e) = self.shard(&request.id).get(&request.id)
        {
            request.interval_secs = request.interval_secs.max(e.interval_secs);
            request.last_polled_at = request.last_polled_at.max(Some(e.last_polled_at));
        }
        request
    }

    /// The request is no longer pending: its gate is no longer needed.
    pub(super) fn forget(&self, id: &str) {
        self.shard(id).remove(id);
    }

    /// A held poll answered at `now`: the next poll may come at once.
    pub(super) fn touch(&self, id: &str, now: i64) {
        if let Some(e) = self.shard(id).get_mut(id) {
            e.last_polled_at = now - e.interval_secs * 1000;
        }
    }

    /// Writes every unwritten addition; forgets requests that expired.
    async fn flush(&self, now: i64) -> StoreResult<()> {
        let mut taken = Vec::new();
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.retain(|_, e| e.expires_at > now || e.unwritten_secs > 0);
            for (id, e) in shard.iter_mut() {
                if e.unwritten_secs > 0 {
                    taken.push((
                        id.clone(),
                        std::mem::take(&mut e.unwritten_secs),
                        e.last_polled_at,
                    ));
                }
            }
        }
        if taken.is_empty() {
            return Ok(());
        }
        let q = sqlx::query(FLUSH)
            .bind(taken.iter().map(|t| t.0.as_str()).collect::<Vec<_>>())
            .bind(taken.iter().map(|t| t.1).collect::<Vec<_>>())
            .bind(taken.iter().map(|t| t.2).collect::<Vec<_>>());
        if let Err(e) = affected(&self.pool, q).await {
            for (id, added, _) in taken {
                if let Some(entry) = self.shard(&id).get_mut(&id) {
                    entry.unwritten_secs += added;
                }
            }
            return Err(e);
        }
        Ok(())
    }
}

async fn flush_forever(gates: Weak<PollGates>) {
    let mut every = tokio::time::interval(FLUSH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(gates) = gates.upgrade() else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        if let Err(e) = gates.flush(now).await {
            tracing::warn!(error = %e, "writing poll intervals failed; retried");
        }
    }
}
