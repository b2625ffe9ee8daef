//! In-process wake-ups: held polls wait on their request's [`Notify`], device event streams on
//! their device's, and the outbox and push workers on their own, so a decision reaches them
//! within milliseconds on this node. Correctness never depends on a wake-up arriving: every
//! waiter also re-checks the store on a timer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use super::Notifier;
use super::model::Challenge;

/// Wake-up handles by auth request id. Entries are weak: a request nobody waits on costs
/// nothing, and dead entries are swept as new ones are made.
#[derive(Debug, Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Weak<Notify>>>,
}

impl Waiters {
    /// The handle for `id`, shared with every other waiter of the same request.
    pub fn handle(&self, id: &str) -> Arc<Notify> {
        let Ok(mut map) = self.map.lock() else {
            return Arc::new(Notify::new());
        };
        if let Some(existing) = map.get(id).and_then(Weak::upgrade) {
            return existing;
        }
        if map.len() > 1024 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let fresh = Arc::new(Notify::new());
        map.insert(id.to_owned(), Arc::downgrade(&fresh));
        fresh
    }

    /// Wakes every current waiter of every key: after signals may have been lost.
    pub fn wake_all(&self) {
        let handles: Vec<Arc<Notify>> = match self.map.lock() {
            Ok(map) => map.values().filter_map(Weak::upgrade).collect(),
            Err(_) => return,
        };
        for n in handles {
            n.notify_waiters();
        }
    }

    /// Wakes every current waiter of `id`.
    pub fn wake(&self, id: &str) {
        let handle = self
            .map
            .lock()
            .ok()
            .and_then(|m| m.get(id).and_then(Weak::upgrade));
        if let Some(n) = handle {
            n.notify_waiters();
        }
    }
}

/// The notifier of a single node: wakes held polls of the decided request, device event
/// streams, and the outbox and push workers.
#[derive(Debug, Default, Clone)]
pub struct LocalNotifier {
    waiters: Arc<Waiters>,
    outbox: Arc<Notify>,
    pushes: Arc<Notify>,
}

/// The wake-up key of a device's event streams (request ids never start with `device:`).
fn device_key(device_id: &str) -> String {
    format!("device:{device_id}")
}

impl LocalNotifier {
    /// Wakes the held polls of one request.
    pub fn wake_request(&self, auth_request_id: &str) {
        self.waiters.wake(auth_request_id);
    }

    /// Wakes the event streams of one device.
    pub fn wake_device(&self, device_id: &str) {
        self.waiters.wake(&device_key(device_id));
    }

    pub fn wake_outbox(&self) {
        self.outbox.notify_one();
    }

    pub fn wake_pushes(&self) {
        self.pushes.notify_one();
    }

    /// Wakes every waiter and both workers: signals may have been lost (a listener that
    /// reconnected), so everyone re-checks now rather than at their next timer.
    pub fn wake_all(&self) {
        self.waiters.wake_all();
        self.wake_outbox();
        self.wake_pushes();
    }
}

impl Notifier for LocalNotifier {
    fn challenges_created(&self, challenges: &[Challenge], pushed: bool) {
        for c in challenges {
            self.wake_device(&c.device_id);
        }
        if pushed {
            self.wake_pushes();
        }
    }

    fn request_decided(&self, auth_request_id: &str, devices: &[String]) {
        self.wake_request(auth_request_id);
        for d in devices {
            self.wake_device(d);
        }
        self.wake_outbox();
    }

    fn device_changed(&self, device_id: &str) {
        self.wake_device(device_id);
    }

    fn request_waiter(&self, auth_request_id: &str) -> Arc<Notify> {
        self.waiters.handle(auth_request_id)
    }

    fn device_waiter(&self, device_id: &str) -> Arc<Notify> {
        self.waiters.handle(&device_key(device_id))
    }

    fn outbox_waiter(&self) -> &Notify {
        &self.outbox
    }

    fn push_waiter(&self) -> &Notify {
        &self.pushes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_registered_waiter_is_woken_and_dead_entries_vanish() {
        let w = Waiters::default();
        let handle = w.handle("r1");
        {
            let notified = handle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            w.wake("r1");
            tokio::time::timeout(std::time::Duration::from_secs(1), notified)
                .await
                .unwrap();
        }
        drop(handle);
        assert!(
            w.map
                .lock()
                .unwrap()
                .get("r1")
                .and_then(Weak::upgrade)
                .is_none()
        );
        w.wake("nobody"); // no panic, nothing to do
    }
}
