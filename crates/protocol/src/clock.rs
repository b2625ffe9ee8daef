//! Time as a parameter: the workspace's one `Clock`, and the one place library code reads the
//! wall clock. The server, the client library and the authenticator library all take an
//! `Arc<dyn Clock>`; tests hand them a [`ManualClock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The source of "now" as Unix time. Implementations give milliseconds; JWT claims and
/// other second-granular rules read [`Clock::now_secs`].
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;

    /// Unix seconds (rounded down), the unit of JWT NumericDate claims (RFC 7519 §2).
    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that says what it is told, for tests and replays. Clones share one time, so a
/// test keeps a clone and moves the clock of the code under test.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock at `start_ms` Unix milliseconds.
    pub fn new(start_ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start_ms)))
    }

    /// A clock at `start_secs` Unix seconds.
    pub fn at_secs(start_secs: i64) -> Self {
        Self::new(start_secs.saturating_mul(1000))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn advance_secs(&self, secs: i64) {
        self.advance_ms(secs.saturating_mul(1000));
    }

    pub fn set_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    pub fn set_secs(&self, secs: i64) {
        self.set_ms(secs.saturating_mul(1000));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_down_and_clones_share_the_time() {
        let clock = ManualClock::new(1_999);
        assert_eq!(clock.now_secs(), 1);
        let seen_by_code = clock.clone();
        clock.advance_ms(1);
        assert_eq!(seen_by_code.now_secs(), 2);
        clock.set_secs(100);
        assert_eq!(seen_by_code.now_ms(), 100_000);
        // Before 1970 still rounds towards the past, not towards zero.
        clock.set_ms(-1);
        assert_eq!(seen_by_code.now_secs(), -1);
        assert_eq!(ManualClock::at_secs(7).now_ms(), 7_000);
    }

    #[test]
    fn the_system_clock_is_after_2020() {
        assert!(SystemClock.now_secs() > 1_577_836_800);
    }
}
