//! Cross-node wake-ups over PostgreSQL LISTEN/NOTIFY, for nodes that share one database: every
//! signal the domain gives (a request stored, decided, a device changed) wakes this node's
//! waiters at once and is sent, batched, as a `NOTIFY` that every other node's listener turns
//! into the same local wake-up. So a device streaming from node B hears of a request started on
//! node A, and a poll held on A is answered when B records the decision, without waiting for a
//! re-check. A lost notification or a dropped listener only costs latency: every waiter keeps
//! its periodic re-check, and a listener that (re)connects wakes everyone once, since it may
//! have missed signals.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, mpsc, watch};

use crate::domain::model::Challenge;
use crate::domain::wake::LocalNotifier;
use crate::domain::{Domain, Notifier};

/// The channel every node LISTENs on.
pub const CHANNEL: &str = "backchannel_wake";
/// Signals sent in one round trip at most.
const BATCH: usize = 256;
/// A listener that cannot connect tries again after this.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// One wake-up as it travels between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Signal {
    Request(String),
    Device(String),
    Outbox,
    Pushes,
}

impl Signal {
    fn encode(&self) -> String {
        match self {
            Signal::Request(id) => format!("r:{id}"),
            Signal::Device(id) => format!("d:{id}"),
            Signal::Outbox => "o".to_owned(),
            Signal::Pushes => "p".to_owned(),
        }
    }

    fn decode(text: &str) -> Option<Signal> {
        match text.split_once(':') {
            Some(("r", id)) if !id.is_empty() => Some(Signal::Request(id.to_owned())),
            Some(("d", id)) if !id.is_empty() => Some(Signal::Device(id.to_owned())),
            None if text == "o" => Some(Signal::Outbox),
            None if text == "p" => Some(Signal::Pushes),
            _ => None,
        }
    }

    fn wake(&self, local: &LocalNotifier) {
        match self {
            Signal::Request(id) => local.wake_request(id),
            Signal::Device(id) => local.wake_device(id),
            Signal::Outbox => local.wake_outbox(),
            Signal::Pushes => local.wake_pushes(),
        }
    }
}

/// A payload: the sending node's tag, `|`, the signal. A node skips its own.
fn payload(node: &str, signal: &Signal) -> String {
    format!("{node}|{}", signal.encode())
}

/// The notifier of a node that shares its PostgreSQL database with others.
pub struct PgNotifier {
    local: LocalNotifier,
    outgoing: mpsc::UnboundedSender<Signal>,
    /// Dropped with the notifier: the listener then ends.
    _alive: watch::Sender<()>,
}

impl PgNotifier {
    /// Starts the sending and the listening task on `pool`; both end when the notifier is
    /// dropped.
    pub fn start(pool: PgPool) -> Arc<PgNotifier> {
        let local = LocalNotifier::default();
        let node = Domain::random_id(12).unwrap_or_else(|_| "node".to_owned());
        let (outgoing, queued) = mpsc::unbounded_channel();
        let (alive, dropped) = watch::channel(());
        tokio::spawn(send(pool.clone(), node.clone(), queued));
        tokio::spawn(listen(pool, node, local.clone(), dropped));
        Arc::new(PgNotifier {
            local,
            outgoing,
            _alive: alive,
        })
    }

    fn broadcast(&self, signal: Signal) {
        // The sender task outlives every caller while the notifier exists.
        let _ = self.outgoing.send(signal);
    }
}

impl Notifier for PgNotifier {
    fn challenges_created(&self, challenges: &[Challenge], pushed: bool) {
        self.local.challenges_created(challenges, pushed);
        for c in challenges {
            self.broadcast(Signal::Device(c.device_id.clone()));
        }
        if pushed {
            self.broadcast(Signal::Pushes);
        }
    }

    fn request_decided(&self, auth_request_id: &str, devices: &[String]) {
        self.local.request_decided(auth_request_id, devices);
        self.broadcast(Signal::Request(auth_request_id.to_owned()));
        for d in devices {
            self.broadcast(Signal::Device(d.clone()));
        }
        self.broadcast(Signal::Outbox);
    }

    fn device_changed(&self, device_id: &str) {
        self.local.device_changed(device_id);
        self.broadcast(Signal::Device(device_id.to_owned()));
    }

    fn request_waiter(&self, auth_request_id: &str) -> Arc<Notify> {
        self.local.request_waiter(auth_request_id)
    }

    fn device_waiter(&self, device_id: &str) -> Arc<Notify> {
        self.local.device_waiter(device_id)
    }

    fn outbox_waiter(&self) -> &Notify {
        self.local.outbox_waiter()
    }

    fn push_waiter(&self) -> &Notify {
        self.local.push_waiter()
    }
}

/// Sends what the domain signalled, as many signals per round trip as have queued up.
async fn send(pool: PgPool, node: String, mut queued: mpsc::UnboundedReceiver<Signal>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queued.recv_many(&mut batch, BATCH).await > 0 {
        let mut payloads: Vec<String> = batch.drain(..).map(|s| payload(&node, &s)).collect();
        payloads.sort_unstable();
        payloads.dedup();
        let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(CHANNEL)
            .bind(&payloads)
            .execute(&pool)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, signals = payloads.len(), "cross-node wake-ups not sent; other nodes see the change at their next re-check");
        }
    }
}

/// Turns other nodes' notifications into local wake-ups, reconnecting when the connection
/// drops, until the notifier is dropped.
async fn listen(
    pool: PgPool,
    node: String,
    local: LocalNotifier,
    mut dropped: watch::Receiver<()>,
) {
    let own = format!("{node}|");
    loop {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for cross-node wake-ups; retrying");
                tokio::select! {
                    _ = dropped.changed() => return,
                    () = tokio::time::sleep(RECONNECT_AFTER) => continue,
                }
            }
        };
        // Signals sent while nobody listened are found by re-checking now.
        local.wake_all();
        loop {
            tokio::select! {
                _ = dropped.changed() => return,
                got = listener.try_recv() => match got {
                    Ok(Some(n)) => {
                        if let Some(signal) = n
                            .payload()
                            .split_once('|')
                            .filter(|_| !n.payload().starts_with(&own))
                            .and_then(|(_, s)| Signal::decode(s))
                        {
                            signal.wake(&local);
                        }
                    }
                    // The connection dropped (the next call reconnects): signals may be lost.
                    Ok(None) => local.wake_all(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cross-node listener failed; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_and_garbage_is_ignored() {
        for s in [
            Signal::Request("r-1".into()),
            Signal::Device("dev".into()),
            Signal::Outbox,
            Signal::Pushes,
        ] {
            assert_eq!(Signal::decode(&s.encode()), Some(s));
        }
        for bad in ["", "x", "r:", "d:", "q:1", "oo"] {
            assert_eq!(Signal::decode(bad), None, "{bad}");
        }
        assert_eq!(payload("n1", &Signal::Outbox), "n1|o");
    }
}
