//! Time as a parameter: the one place this library reads the wall clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The source of "now" (Unix seconds) for assertions and ID-token checks.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_secs(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_secs(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that says what it is told: for tests and replays.
#[derive(Debug, Clone, Default)]
pub struct FixedClock(Arc<AtomicI64>);

impl FixedClock {
    pub fn new(now_secs: i64) -> Self {
        FixedClock(Arc::new(AtomicI64::new(now_secs)))
    }

    pub fn set(&self, now_secs: i64) {
        self.0.store(now_secs, Ordering::SeqCst);
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_secs(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
