//! Polling until an outcome (CIBA Core §7.3, §11): every `interval` seconds, five more after
//! each `slow_down`, never sooner than the server's `Retry-After`, stopping once `expires_in`
//! has passed, cancellable. Time is read from the client's [`Clock`] and waited out by its
//! [`Sleeper`], so tests run the loop on a [`ManualClock`] without sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use backchannel_protocol::oauth::{BackchannelAuthResponse, TokenResponse};

use crate::{CibaClient, ClientError, Clock, ManualClock, PollOutcome};

/// CIBA Core §7.3: the polling interval when the server names none.
pub const DEFAULT_INTERVAL_SECS: u64 = 5;
/// CIBA Core §11: every `slow_down` adds five seconds to the interval for the rest of the
/// request's life.
pub const SLOW_DOWN_STEP_SECS: u64 = 5;

/// A boxed future, as [`Sleeper::sleep`] returns it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the polling loop waits. [`TokioSleeper`] (the default) sleeps on the Tokio timer;
/// [`ManualSleeper`] advances a [`ManualClock`] instead, for tests.
pub trait Sleeper: Send + Sync + std::fmt::Debug {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// Sleeps on the Tokio timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A sleeper for tests: each sleep moves its [`ManualClock`] forward by the duration and
/// returns at once; the durations are recorded.
#[derive(Debug, Default)]
pub struct ManualSleeper {
    clock: ManualClock,
    slept: Mutex<Vec<Duration>>,
}

impl ManualSleeper {
    pub fn new(clock: ManualClock) -> Self {
        ManualSleeper {
            clock,
            slept: Mutex::new(Vec::new()),
        }
    }

    /// Every duration slept so far.
    pub fn slept(&self) -> Vec<Duration> {
        self.slept.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Sleeper for ManualSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.slept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(duration);
        self.clock
            .advance_ms(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX));
        Box::pin(std::future::ready(()))
    }
}

/// Where polling stands, after each poll that did not end it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollProgress {
    /// Seconds since polling began.
    pub elapsed_secs: u64,
    /// Polls sent so far.
    pub polls: u32,
    /// The interval now in force (grown by `slow_down`).
    pub interval_secs: u64,
    /// Whether the last answer was `slow_down`.
    pub slowed_down: bool,
    /// Seconds until the next poll.
    pub next_poll_in_secs: u64,
}

type ProgressFn<'a> = Box<dyn FnMut(&PollProgress) + Send + 'a>;

/// Extras for [`CibaClient::poll_until_done_with`]: a progress callback and a cancellation
/// signal.
#[derive(Default)]
pub struct PollOptions<'a> {
    progress: Option<ProgressFn<'a>>,
    cancel: Option<BoxFuture<'a, ()>>,
}

impl<'a> PollOptions<'a> {
    /// Calls `f` after every poll that did not end polling.
    pub fn on_progress(mut self, f: impl FnMut(&PollProgress) + Send + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Stops polling with [`ClientError::Cancelled`] when `signal` completes (a shutdown
    /// signal, the user closing the page). Dropping the polling future cancels it too.
    pub fn cancel_on(mut self, signal: impl Future<Output = ()> + Send + 'a) -> Self {
        self.cancel = Some(Box::pin(signal));
        self
    }
}

impl CibaClient {
    /// Polls until the request has an outcome and returns the tokens. A denial or an expiry
    /// the server reports is [`ClientError::OAuth`] with [`ErrorCode::AccessDenied`] or
    /// [`ErrorCode::ExpiredToken`]; a request still pending after its lifetime (and one last
    /// poll) is [`ClientError::Expired`].
    ///
    /// [`ErrorCode::AccessDenied`]: crate::ErrorCode::AccessDenied
    /// [`ErrorCode::ExpiredToken`]: crate::ErrorCode::ExpiredToken
    pub async fn poll_until_done(
        &self,
        started: &BackchannelAuthResponse,
    ) -> Result<TokenResponse, ClientError> {
        self.poll_until_done_with(started, PollOptions::default())
            .await
    }

    /// [`CibaClient::poll_until_done`] with a progress callback and a cancellation signal.
    ///
    /// ```no_run
    /// # async fn f(client: backchannel_client::CibaClient,
    /// #            started: backchannel_client::BackchannelAuthResponse) {
    /// use backchannel_client::PollOptions;
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let options = PollOptions::default()
    ///     .on_progress(|p| eprintln!("waiting for approval… {} s", p.elapsed_secs))
    ///     .cancel_on(async move { let _ = stopped.await; });
    /// # drop(stop);
    /// let outcome = client.poll_until_done_with(&started, options).await;
    /// # }
    /// ```
    pub async fn poll_until_done_with(
        &self,
        started: &BackchannelAuthResponse,
        options: PollOptions<'_>,
    ) -> Result<TokenResponse, ClientError> {
        let PollOptions { progress, cancel } = options;
        let id = started.auth_req_id.as_str();
        let polling = drive_polls(
            || self.poll_once(id),
            self.clock.as_ref(),
            self.sleeper.as_ref(),
            started.interval.unwrap_or(DEFAULT_INTERVAL_SECS),
            started.expires_in,
            progress,
        );
        match cancel {
            None => polling.await,
            Some(cancel) => tokio::select! {
                r = polling => r,
                () = cancel => Err(ClientError::Cancelled),
            },
        }
    }
}

/// The polling loop, apart from HTTP so that it can be tested with scripted answers.
pub(crate) async fn drive_polls<F, Fut>(
    mut poll: F,
    clock: &dyn Clock,
    sleeper: &dyn Sleeper,
    interval: u64,
    expires_in: u64,
    mut progress: Option<ProgressFn<'_>>,
) -> Result<TokenResponse, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<PollOutcome, ClientError>>,
{
    let secs_ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
    let start = clock.now_ms();
    let deadline = start.saturating_add(secs_ms(expires_in));
    let mut interval = if interval == 0 {
        DEFAULT_INTERVAL_SECS
    } else {
        interval
    };
    let mut last_chance = false;
    let mut polls = 0u32;
    loop {
        let polled_at = clock.now_ms();
        polls += 1;
        let (retry_after, slowed_down) = match poll().await? {
            PollOutcome::Tokens(t) => return Ok(t),
            PollOutcome::Failed(error) => return Err(ClientError::OAuth(error)),
            PollOutcome::Pending { retry_after } => (retry_after, false),
            PollOutcome::SlowDown { retry_after } => {
                interval += SLOW_DOWN_STEP_SECS;
                (retry_after, true)
            }
        };
        if last_chance {
            return Err(ClientError::Expired);
        }
        // The interval runs from the start of the poll (a long poll the server held has
        // already waited it out), and is honoured even at the end: the poll after the deadline
        // gets the server's own verdict (tokens or expired_token).
        let wait = interval.max(retry_after.unwrap_or(0));
        let next = polled_at.saturating_add(secs_ms(wait));
        if next >= deadline {
            last_chance = true;
        }
        let now = clock.now_ms();
        let sleep_ms = u64::try_from(next.saturating_sub(now)).unwrap_or(0);
        if let Some(report) = progress.as_mut() {
            report(&PollProgress {
                elapsed_secs: u64::try_from((now - start) / 1000).unwrap_or(0),
                polls,
                interval_secs: interval,
                slowed_down,
                next_poll_in_secs: sleep_ms.div_ceil(1000),
            });
        }
        if sleep_ms > 0 {
            sleeper.sleep(Duration::from_millis(sleep_ms)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorCode, OAuthError};
    use std::sync::Arc;

    fn tokens() -> TokenResponse {
        TokenResponse {
            access_token: "at".into(),
            token_type: "Bearer".into(),
            expires_in: 300,
            id_token: None,
            refresh_token: None,
            scope: Some("openid".into()),
            authorization_details: None,
        }
    }

    const PENDING: PollOutcome = PollOutcome::Pending { retry_after: None };
    const SLOW_DOWN: PollOutcome = PollOutcome::SlowDown { retry_after: None };

    struct Run {
        result: Result<TokenResponse, ClientError>,
        /// Seconds since start of each poll, on the injected clock.
        times: Vec<i64>,
        progress: Vec<PollProgress>,
    }

    /// Runs the loop over scripted outcomes on a manual clock.
    async fn run_script(script: Vec<PollOutcome>, interval: u64, expires_in: u64) -> Run {
        let clock = ManualClock::at_secs(1_700_000_000);
        let sleeper = ManualSleeper::new(clock.clone());
        let times = Mutex::new(Vec::new());
        let script = Mutex::new(script.into_iter());
        let progress = Arc::new(Mutex::new(Vec::new()));
        let seen = progress.clone();
        let result = drive_polls(
            || {
                times.lock().unwrap().push(clock.now_secs() - 1_700_000_000);
                let next = script.lock().unwrap().next().unwrap_or(PENDING);
                async move { Ok(next) }
            },
            &clock,
            &sleeper,
            interval,
            expires_in,
            Some(Box::new(move |p: &PollProgress| {
                seen.lock().unwrap().push(p.clone())
            })),
        )
        .await;
        let progress = progress.lock().unwrap().clone();
        Run {
            result,
            times: times.into_inner().unwrap(),
            progress,
        }
    }

    #[tokio::test]
    async fn polls_at_the_interval_until_tokens() {
        let run = run_script(
            vec![PENDING, PENDING, PollOutcome::Tokens(tokens())],
            5,
            300,
        )
        .await;
        assert_eq!(run.result.unwrap().access_token, "at");
        assert_eq!(run.times, vec![0, 5, 10]);
        assert_eq!(run.progress.len(), 2);
        assert_eq!(run.progress[1].elapsed_secs, 5);
        assert_eq!(run.progress[1].next_poll_in_secs, 5);
    }

    #[tokio::test]
    async fn no_interval_means_five_seconds() {
        let run = run_script(vec![PENDING, PollOutcome::Tokens(tokens())], 0, 300).await;
        assert_eq!(run.times, vec![0, 5]);
    }

    #[tokio::test]
    async fn slow_down_adds_five_seconds_for_good() {
        let run = run_script(
            vec![
                SLOW_DOWN,
                PENDING,
                SLOW_DOWN,
                PENDING,
                PollOutcome::Tokens(tokens()),
            ],
            2,
            300,
        )
        .await;
        assert!(run.result.is_ok());
        assert_eq!(run.times, vec![0, 7, 14, 26, 38]);
        assert!(run.progress[0].slowed_down);
        assert_eq!(run.progress[3].interval_secs, 12);
    }

    #[tokio::test]
    async fn retry_after_lengthens_one_wait_only() {
        let run = run_script(
            vec![
                PollOutcome::Pending {
                    retry_after: Some(30),
                },
                PENDING,
                PollOutcome::Tokens(tokens()),
            ],
            5,
            300,
        )
        .await;
        assert_eq!(run.times, vec![0, 30, 35]);
    }

    #[tokio::test]
    async fn denial_ends_polling_with_the_oauth_error() {
        let denied = OAuthError::new(ErrorCode::AccessDenied, 400);
        let run = run_script(vec![PENDING, PollOutcome::Failed(denied)], 5, 300).await;
        assert_eq!(
            run.result.unwrap_err().code(),
            Some(&ErrorCode::AccessDenied)
        );
        assert_eq!(run.times, vec![0, 5]);
    }

    #[tokio::test]
    async fn stops_after_expiry_with_one_last_poll() {
        let run = run_script(vec![], 5, 12).await;
        assert!(matches!(run.result, Err(ClientError::Expired)));
        // 0, 5, 10 within the lifetime; 15 is the last chance after it.
        assert_eq!(run.times, vec![0, 5, 10, 15]);
    }

    #[tokio::test]
    async fn the_last_poll_takes_the_servers_verdict() {
        let mut script = vec![PENDING; 3];
        script.push(PollOutcome::Failed(OAuthError::new(
            ErrorCode::ExpiredToken,
            400,
        )));
        let run = run_script(script, 5, 12).await;
        assert_eq!(
            run.result.unwrap_err().code(),
            Some(&ErrorCode::ExpiredToken)
        );
    }

    #[tokio::test]
    async fn a_poll_the_server_held_is_followed_at_once() {
        // The server held the second poll 20 s (long polling): the next one goes out at once.
        let clock = ManualClock::at_secs(0);
        let sleeper = ManualSleeper::new(clock.clone());
        let times = Mutex::new(Vec::new());
        let mut n = 0;
        let result = drive_polls(
            || {
                times.lock().unwrap().push(clock.now_secs());
                n += 1;
                let (hold, outcome) = match n {
                    1 => (0, PENDING),
                    2 => (20, PENDING),
                    _ => (0, PollOutcome::Tokens(tokens())),
                };
                clock.advance_secs(hold);
                async move { Ok(outcome) }
            },
            &clock,
            &sleeper,
            5,
            300,
            None,
        )
        .await;
        assert!(result.is_ok());
        assert_eq!(times.into_inner().unwrap(), vec![0, 5, 25]);
        assert_eq!(sleeper.slept(), vec![Duration::from_secs(5)]);
    }

    #[tokio::test]
    async fn an_error_of_the_call_ends_polling() {
        let clock = ManualClock::at_secs(0);
        let sleeper = ManualSleeper::new(clock.clone());
        let result = drive_polls(
            || async { Err(ClientError::Config("boom".into())) },
            &clock,
            &sleeper,
            5,
            300,
            None,
        )
        .await;
        assert!(matches!(result, Err(ClientError::Config(_))));
    }
}
