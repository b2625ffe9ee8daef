//! Delivery to the outside world: client notifications (the ping/push outbox worker) and
//! authenticator push senders (APNs, FCM, Web Push).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::domain::error::AuthResult;

pub mod cluster;
pub mod devices;
pub mod outbox;
pub mod push;

/// The workers look at the store at least this often (decisions and expiries on other nodes).
pub(crate) const RECHECK: Duration = Duration::from_millis(500);

/// Waits until the next row falls due (at most [`RECHECK`]), a wake-up, or shutdown; true on
/// shutdown.
pub(crate) async fn idle(
    now: i64,
    next_due: Option<i64>,
    wake: &Notify,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let wait = next_due.map_or(RECHECK, |at| {
        Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(RECHECK)
    });
    tokio::select! {
        _ = shutdown.wait_for(|s| *s) => true,
        () = wake.notified() => false,
        () = tokio::time::sleep(wait) => false,
    }
}

/// Deliveries one worker sends at once.
pub(crate) const IN_FLIGHT: usize = 16;

/// How long one attempt may run, and how long its lease lasts: `sends` outbound timeouts,
/// then a margin. An attempt that overruns its budget is abandoned, so a lease never ends
/// while its attempt still runs, and another node (or this one after a crash) takes the row
/// again soon after the attempt's last possible send.
pub(crate) fn attempt_budget(timeout_ms: u64, sends: u64) -> (Duration, i64) {
    const MARGIN_MS: u64 = 5_000;
    let budget = timeout_ms.saturating_mul(sends);
    let lease = i64::try_from(budget.saturating_add(MARGIN_MS)).unwrap_or(i64::MAX);
    (Duration::from_millis(budget), lease)
}

/// Runs one delivery attempt within its send budget (see [`attempt_budget`]).
pub(crate) async fn within_budget(
    budget: Duration,
    attempt: impl std::future::Future<Output = AuthResult<()>>,
) -> AuthResult<()> {
    tokio::time::timeout(budget, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(crate::domain::error::AuthError::internal(
                "the attempt ran past its send budget",
            ))
        })
}

/// A worker that drains a leased queue: it makes a pass, then idles until the next row is due,
/// a wake-up, or shutdown.
#[async_trait::async_trait]
pub(crate) trait LeasedWorker: Send + Sync + 'static {
    /// For logs.
    const NAME: &'static str;
    fn now_ms(&self) -> i64;
    fn wake(&self) -> &Notify;
    /// Bounds the deliveries in flight; all are taken back before the worker ends.
    fn permits(&self) -> &Arc<Semaphore>;
    /// Leases and starts what is due now.
    async fn pass(&self) -> AuthResult<()>;
    /// When the next row falls due, if any.
    async fn next_due(&self) -> Option<i64>;
}

/// Runs `worker` until `shutdown` turns true; in-flight deliveries finish first.
pub(crate) fn run_worker<W: LeasedWorker>(
    worker: W,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = worker.pass().await {
                tracing::warn!(worker = W::NAME, error = %e, "delivery pass failed");
            }
            let next = worker.next_due().await;
            if idle(worker.now_ms(), next, worker.wake(), &mut shutdown).await {
                break;
            }
        }
        let _ = worker
            .permits()
            .acquire_many(u32::try_from(IN_FLIGHT).unwrap_or(1))
            .await;
    })
}
