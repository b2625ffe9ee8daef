//! The in-memory retry loop ([`send_with_retries`]) on tokio's paused clock with a scripted
//! sender: how long it waited is read off the virtual clock, which moves only when the loop
//! sleeps, so no test waits in real time and "at once" means no sleep at all.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use backchannel_server::domain::clock::Clock;
use backchannel_server::notify::push::{
    PushMessage, PushOutcome, PushSender, PushTarget, send_with_retries,
};
use tokio::time::Instant;

use super::{clock, message};

/// Answers each attempt from its script (then `Delivered`), noting when on the virtual clock.
struct Scripted {
    outcomes: Mutex<VecDeque<PushOutcome>>,
    sent_at: Mutex<Vec<Instant>>,
}

impl Scripted {
    fn new(outcomes: &[PushOutcome]) -> Scripted {
        Scripted {
            outcomes: Mutex::new(outcomes.iter().cloned().collect()),
            sent_at: Mutex::new(Vec::new()),
        }
    }

    /// The waits between consecutive attempts.
    fn gaps(&self) -> Vec<Duration> {
        let at = self.sent_at.lock().unwrap();
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[async_trait::async_trait]
impl PushSender for Scripted {
    async fn send(&self, _: &PushTarget, _: &PushMessage) -> PushOutcome {
        self.sent_at.lock().unwrap().push(Instant::now());
        let next = self.outcomes.lock().unwrap().pop_front();
        next.unwrap_or(PushOutcome::Delivered)
    }
}

fn target() -> PushTarget {
    PushTarget::Apns {
        token: "0f".repeat(32),
    }
}

fn retry(after_secs: Option<u64>) -> PushOutcome {
    PushOutcome::Retry {
        after: after_secs.map(Duration::from_secs),
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_the_backoff_is_waited_out_then_the_backoff_doubles() {
    let clock = clock();
    let sender = Scripted::new(&[retry(Some(3)), retry(None)]);
    let msg = message(clock.now_secs(), 300);
    let outcome = send_with_retries(&sender, &target(), &msg, &clock, 5).await;
    assert_eq!(outcome, PushOutcome::Delivered);
    let gaps = sender.gaps();
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    // The first backoff is 1 s plus at most 20 % jitter: only Retry-After makes it 3 s.
    assert!(
        (Duration::from_secs(3)..Duration::from_millis(3_100)).contains(&gaps[0]),
        "Retry-After: 3 honoured: {gaps:?}"
    );
    // Then the backoff doubles: 2 s plus at most 20 %.
    assert!(
        (Duration::from_secs(2)..Duration::from_millis(2_410)).contains(&gaps[1]),
        "{gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_attempts_end_at_the_limit() {
    let clock = clock();
    let sender = Scripted::new(&[retry(None), retry(None), retry(None), retry(None)]);
    let msg = message(clock.now_secs(), 300);
    let outcome = send_with_retries(&sender, &target(), &msg, &clock, 3).await;
    assert_eq!(outcome, retry(None), "the last outcome: it gave up");
    assert_eq!(sender.sent_at.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_next_slot_past_the_expiry_ends_the_attempts_at_once() {
    let clock = clock();
    let started = Instant::now();
    // Retry-After past the request's expiry.
    let sender = Scripted::new(&[retry(Some(30))]);
    let short = message(clock.now_secs(), 5);
    let outcome = send_with_retries(&sender, &target(), &short, &clock, 10).await;
    assert_eq!(outcome, retry(Some(30)));
    // The first backoff (1 s) already at or past the expiry.
    let sender_backoff = Scripted::new(&[retry(None)]);
    let shorter = message(clock.now_secs(), 1);
    let outcome = send_with_retries(&sender_backoff, &target(), &shorter, &clock, 10).await;
    assert_eq!(outcome, retry(None));
    // One attempt each, and no sleep: the virtual clock never moved.
    assert_eq!(sender.sent_at.lock().unwrap().len(), 1);
    assert_eq!(sender_backoff.sent_at.lock().unwrap().len(), 1);
    assert_eq!(Instant::now(), started);
}
