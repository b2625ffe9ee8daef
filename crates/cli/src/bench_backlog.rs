//! `backchannel bench --scenario backlog`: how the server copes with many pending requests.
//! For each pending count N, ascending, the store is filled up to N pending requests (through
//! the domain, not over HTTP: a million `/bc-authorize` calls would take too long), the
//! process's resident memory is read, and one pending request, created and polled once over
//! HTTP beforehand, is polled as fast as `concurrency` connections allow for a fixed time.
//! Every answer must be `authorization_pending` or `slow_down` (CIBA Core §11).

use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use backchannel_protocol::oauth::GRANT_TYPE_CIBA;
use backchannel_server::app::RunningServer;
use backchannel_server::config::Config;
use backchannel_server::domain::Domain;
use backchannel_server::domain::admin::NewClient;
use backchannel_server::domain::backchannel::Params;
use backchannel_server::domain::error::AuthError;
use backchannel_server::domain::model::Client;
use serde_json::json;

use crate::BoxError;
use crate::bench::{Expect, Prepared, Scenario, drive, summarize};
use crate::bench_notify::user_with_device;
use crate::output::Output;

/// `requested_expiry` of every backlog request: they must stay pending for the whole run.
const EXPIRY_SECS: i64 = 24 * 3600;
/// Domain calls in flight while filling.
const FILL_TASKS: usize = 64;
/// Unmeasured polls per connection before each run.
const WARM_UP_PER_CONNECTION: usize = 4;
/// How long the push worker may take to settle the fill's queued deliveries.
const SETTLE_LIMIT: Duration = Duration::from_secs(600);
/// The answers a pending request's poll may get.
const PENDING_ANSWERS: &[&str] = &["authorization_pending", "slow_down"];
/// Printed beside every memory figure.
const RSS_NOTE: &str = "RSS is the whole process, the bench's own HTTP client included: \
    an upper bound for the server";

/// Lets the backlog's requests live longer than the default bound (`ciba.max_expires_in`).
pub fn configure(config: &mut Config) {
    config.ciba.max_expires_in = config.ciba.max_expires_in.max(EXPIRY_SECS);
}

/// What to measure.
pub struct Plan {
    /// Pending counts, in any order (measured ascending, duplicates once).
    pub pending: Vec<usize>,
    /// Length of each poll run.
    pub duration: Duration,
    /// Connections polling at once.
    pub concurrency: usize,
}

/// Resident memory of this process, in MB of 2^20 bytes.
#[derive(Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_mb: f64,
    /// `VmHWM`: the peak so far.
    pub hwm_mb: f64,
}

/// The figures for one pending count.
pub struct Step {
    /// Pending requests in the store while polling (the polled ones included).
    pub pending: usize,
    /// Requests this step's fill created, and how long that took.
    pub filled: usize,
    pub fill: Duration,
    /// How long the push worker then took to settle the fill's queued deliveries.
    pub settle: Duration,
    pub after_fill: Memory,
    pub after_polls: Memory,
    pub polls: Scenario,
}

/// Reads `VmRSS` and `VmHWM` from `/proc/self/status`; zeros where that file does not exist.
fn memory() -> Memory {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Memory::default();
    };
    let mb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    Memory {
        rss_mb: mb("VmRSS:"),
        hwm_mb: mb("VmHWM:"),
    }
}

/// Creates `count` pending requests for `client` through the domain's own entry point (what
/// `/bc-authorize` calls once the client is authenticated), `FILL_TASKS` at a time. The only
/// place that knows how a backlog is made (also the purge bench's).
pub(crate) async fn fill(
    domain: &Domain,
    client: &Client,
    params: &Params,
    count: usize,
) -> Result<(), BoxError> {
    let mut tasks = Vec::with_capacity(FILL_TASKS);
    for i in 0..FILL_TASKS {
        let share = count / FILL_TASKS + usize::from(i < count % FILL_TASKS);
        let (domain, client, params) = (domain.clone(), client.clone(), params.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                domain.start_backchannel_auth(&client, &params).await?;
            }
            Ok::<(), AuthError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Waits until the push worker has settled every queued delivery (the device has no push
/// channel, so each is closed at once): a real backlog builds up slowly enough for the worker
/// to keep up, and its catching up must not be measured as poll cost.
async fn settle(domain: &Domain) -> Result<Duration, BoxError> {
    let started = Instant::now();
    while domain
        .stores
        .pushes
        .next_push_delivery_at()
        .await?
        .is_some()
    {
        if started.elapsed() > SETTLE_LIMIT {
            return Err("the push worker did not settle the fill's deliveries in time".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

/// The request that is hammered: created over `/bc-authorize` and polled once, so that the
/// measured polls all take the `slow_down` path of a request polled too soon, or the
/// `authorization_pending` one when its interval has passed.
async fn polled_request(
    http: &reqwest::Client,
    issuer: &str,
    form: &[(&'static str, String)],
    basic: &(String, String),
) -> Result<Prepared, BoxError> {
    let created = drive(
        http,
        &format!("{issuer}/bc-authorize"),
        std::iter::once((form.to_vec(), Some(basic.clone()))),
        Expect::status(200),
        1,
    )
    .await;
    let auth_req_id = created
        .bodies
        .first()
        .and_then(|b| b["auth_req_id"].as_str())
        .ok_or("the polled request could not be created")?
        .to_owned();
    let poll: Prepared = (
        vec![
            ("grant_type", GRANT_TYPE_CIBA.into()),
            ("auth_req_id", auth_req_id),
        ],
        Some(basic.clone()),
    );
    let first = drive(
        http,
        &format!("{issuer}/token"),
        std::iter::once(poll.clone()),
        Expect {
            status: 400,
            errors: &["authorization_pending"],
            keep_bodies: false,
        },
        1,
    )
    .await;
    if first.failures > 0 {
        return Err(
            "the first poll of the polled request did not answer authorization_pending".into(),
        );
    }
    Ok(poll)
}

/// Fills and measures each pending count in turn.
pub async fn run(server: &RunningServer, plan: &Plan) -> Result<Vec<Step>, BoxError> {
    let domain = &server.domain;
    let created = domain
        .create_client(NewClient {
            name: "bench backlog".into(),
            ..Default::default()
        })
        .await?;
    let basic = (
        created.client_id.clone(),
        created.client_secret.ok_or("no secret")?,
    );
    let client = domain
        .stores
        .clients
        .get_client(&created.client_id)
        .await?
        .ok_or("the bench client vanished")?;
    let email = "bench-backlog@example.com";
    user_with_device(server, email).await?;
    // The same request parameters for the fill and for the polled request.
    let form: Vec<(&'static str, String)> = vec![
        ("scope", "openid".into()),
        ("login_hint", email.into()),
        ("binding_message", "backlog".into()),
        ("requested_expiry", EXPIRY_SECS.to_string()),
    ];
    let params: Params = form
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency)
        .build()?;
    let token_url = format!("{}/token", server.issuer);

    let mut counts = plan.pending.clone();
    counts.sort_unstable();
    counts.dedup();
    let mut pending = 0;
    let mut steps = Vec::new();
    for n in counts {
        // The polled request is one of the n.
        let filled = n.saturating_sub(pending + 1);
        eprintln!("backlog: filling {filled} requests (to {n} pending)");
        let started = Instant::now();
        fill(domain, &client, &params, filled).await?;
        let fill_time = started.elapsed();
        let settle_time = settle(domain).await?;
        let poll = polled_request(&http, &server.issuer, &form, &basic).await?;
        pending += filled + 1;
        let after_fill = memory();
        let expect = Expect {
            status: 400,
            errors: PENDING_ANSWERS,
            keep_bodies: false,
        };
        // Unmeasured: opens every connection, so no row pays for connection setup (idle
        // ones may have closed during a long fill).
        let warm_up = std::iter::repeat_n(poll.clone(), plan.concurrency * WARM_UP_PER_CONNECTION);
        drive(&http, &token_url, warm_up, expect, plan.concurrency).await;
        eprintln!("backlog: polling for {} s", plan.duration.as_secs());
        let deadline = Instant::now() + plan.duration;
        let hammer = std::iter::repeat(poll).take_while(move |_| Instant::now() < deadline);
        let mut polled = drive(&http, &token_url, hammer, expect, plan.concurrency).await;
        let polls = summarize("poll (pending), client_secret_basic", &mut polled);
        steps.push(Step {
            pending,
            filled,
            fill: fill_time,
            settle: settle_time,
            after_fill,
            after_polls: memory(),
            polls,
        });
    }
    Ok(steps)
}

fn per_sec(count: usize, time: Duration) -> f64 {
    if time.is_zero() {
        0.0
    } else {
        count as f64 / time.as_secs_f64()
    }
}

/// Polls/s at the largest pending count as a share of those at the smallest.
fn largest_to_smallest(steps: &[Step]) -> Option<f64> {
    let (first, last) = (steps.first()?, steps.last()?);
    (steps.len() > 1 && first.polls.requests_per_sec > 0.0)
        .then(|| last.polls.requests_per_sec / first.polls.requests_per_sec)
}

/// Prints a table for a person, or one JSON object.
pub fn print(steps: &[Step], plan: &Plan, out: Output) -> Result<(), BoxError> {
    let ratio = largest_to_smallest(steps);
    let rows: Vec<_> = steps
        .iter()
        .map(|s| {
            json!({
                "pending": s.pending,
                "filled": s.filled,
                "fill_secs": s.fill.as_secs_f64(),
                "fill_per_sec": per_sec(s.filled, s.fill),
                "settle_secs": s.settle.as_secs_f64(),
                "rss_after_fill_mb": s.after_fill.rss_mb,
                "hwm_after_fill_mb": s.after_fill.hwm_mb,
                "rss_after_polls_mb": s.after_polls.rss_mb,
                "hwm_after_polls_mb": s.after_polls.hwm_mb,
                "polls_per_sec": s.polls.requests_per_sec,
                "p50_ms": s.polls.p50_ms,
                "p99_ms": s.polls.p99_ms,
                "failures": s.polls.failures,
            })
        })
        .collect();
    let summary = json!({
        "scenario": "backlog",
        "concurrency": plan.concurrency,
        "duration_secs": plan.duration.as_secs_f64(),
        "memory_note": RSS_NOTE,
        "polls_largest_to_smallest": ratio,
        "results": rows,
    });
    out.print(&summary, |w, _| table(w, steps, plan, ratio))
}

/// The text of [`print`]: one row per pending count.
fn table(w: &mut String, steps: &[Step], plan: &Plan, ratio: Option<f64>) -> fmt::Result {
    writeln!(
        w,
        "one pending request polled (client_secret_basic) at {} connections for {} s per row, \
         server in-process on loopback",
        plan.concurrency,
        plan.duration.as_secs()
    )?;
    writeln!(w, "{RSS_NOTE}; MB = 2^20 bytes, HWM = peak")?;
    writeln!(
        w,
        "{:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>6}",
        "pending",
        "fill s",
        "fill/s",
        "settle s",
        "RSS fill",
        "HWM fill",
        "RSS poll",
        "HWM poll",
        "polls/s",
        "p50 ms",
        "p99 ms",
        "fail"
    )?;
    for s in steps {
        writeln!(
            w,
            "{:>9} {:>8.1} {:>8.0} {:>8.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.0} {:>8.2} {:>8.2} {:>6}",
            s.pending,
            s.fill.as_secs_f64(),
            per_sec(s.filled, s.fill),
            s.settle.as_secs_f64(),
            s.after_fill.rss_mb,
            s.after_fill.hwm_mb,
            s.after_polls.rss_mb,
            s.after_polls.hwm_mb,
            s.polls.requests_per_sec,
            s.polls.p50_ms,
            s.polls.p99_ms,
            s.polls.failures
        )?;
    }
    if let (Some(r), Some(first), Some(last)) = (ratio, steps.first(), steps.last()) {
        writeln!(
            w,
            "polls/s with {} pending: {:.0}% of those with {} pending",
            last.pending,
            r * 100.0,
            first.pending
        )?;
    }
    Ok(())
}
