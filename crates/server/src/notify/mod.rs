//! Delivery to the outside world: client notifications (the ping/push outbox worker) and
//! authenticator push senders (APNs, FCM, Web Push).

use std::time::Duration;

use tokio::sync::{Notify, watch};

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
