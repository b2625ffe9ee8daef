//! `backchannel bench --scenario events`: how soon a connected device hears of a new
//! challenge. One enrolled device holds its event stream (`GET /device/v1/events`) open
//! through the authenticator library, which verifies every challenge as an authenticator app
//! would; a relying party (`client_secret_basic`) sends backchannel requests with limited
//! concurrency. Latency runs from the client receiving the `/bc-authorize` answer to the device
//! receiving the matching verified `challenge` event, matched by binding message. An event
//! that overtakes the answer counts as zero.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backchannel_authenticator::{Device, DeviceEvent};
use backchannel_server::app::RunningServer;
use backchannel_server::domain::admin::NewClient;
use tokio::sync::{Semaphore, oneshot};

use crate::BoxError;
use crate::bench::Latencies;
use crate::bench_notify::user_with_device;

/// How long a flow waits for its event before it counts as failed.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the answer and the event of one flow meet, whichever comes first.
enum Slot {
    /// The answer came first: the flow waits for the event's arrival time.
    Waiting(oneshot::Sender<Instant>),
    /// The event came first.
    Arrived(Instant),
}

type Arrivals = Arc<Mutex<HashMap<String, Slot>>>;

/// Reads the device's stream, recording when each challenge arrives (after verification).
/// Tells `ready` once the stream is open; ends with the stream.
async fn listen(
    device: Arc<Device>,
    arrivals: Arrivals,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let mut stream = match device.events(None).await {
        Ok(s) => {
            let _ = ready.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    while let Ok(Some(event)) = stream.next().await {
        let at = Instant::now();
        let DeviceEvent::Challenge(c) = event else {
            continue;
        };
        let Some(tag) = c.claims.binding_message else {
            continue;
        };
        let Ok(mut map) = arrivals.lock() else { return };
        match map.remove(&tag) {
            Some(Slot::Waiting(tx)) => {
                let _ = tx.send(at);
            }
            _ => {
                map.insert(tag, Slot::Arrived(at));
            }
        }
    }
}

struct Flow {
    http: reqwest::Client,
    url: String,
    client_id: String,
    secret: String,
    email: String,
    arrivals: Arrivals,
}

impl Flow {
    /// One backchannel request; the time from its answer to its challenge event.
    async fn run(&self, tag: String) -> Option<Duration> {
        let form = [
            ("scope", "openid"),
            ("login_hint", self.email.as_str()),
            ("binding_message", tag.as_str()),
        ];
        let r = self
            .http
            .post(&self.url)
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(&form)
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        r.bytes().await.ok()?;
        let answered = Instant::now();
        let rx = {
            let mut map = self.arrivals.lock().ok()?;
            match map.remove(&tag) {
                Some(Slot::Arrived(at)) => return Some(at.saturating_duration_since(answered)),
                _ => {
                    let (tx, rx) = oneshot::channel();
                    map.insert(tag, Slot::Waiting(tx));
                    rx
                }
            }
        };
        let arrived = tokio::time::timeout(EVENT_TIMEOUT, rx).await.ok()?.ok()?;
        Some(arrived.saturating_duration_since(answered))
    }
}

pub async fn run(
    server: &RunningServer,
    flows: usize,
    concurrency: usize,
) -> Result<Vec<Latencies>, BoxError> {
    let email = "bench-events@example.com".to_owned();
    let device = user_with_device(server, &email).await?;
    let created = server
        .domain
        .create_client(NewClient {
            name: "bench events".into(),
            ..Default::default()
        })
        .await?;
    let arrivals: Arrivals = Arc::default();
    let (ready_tx, ready_rx) = oneshot::channel();
    let listener = tokio::spawn(listen(device, arrivals.clone(), ready_tx));
    ready_rx.await??;
    let flow = Arc::new(Flow {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()?,
        url: format!("{}/bc-authorize", server.issuer),
        client_id: created.client_id,
        secret: created.client_secret.ok_or("no secret")?,
        email,
        arrivals,
    });
    // One flow outside the measurement: the device fetches the server's JWKS on its first
    // challenge, and connections warm up.
    flow.run("bench warm-up".into())
        .await
        .ok_or("the warm-up flow got no challenge event")?;

    let sem = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(flows);
    for i in 0..flows {
        let permit = sem.clone().acquire_owned().await?;
        let flow = flow.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            flow.run(format!("bench {i} events")).await
        }));
    }
    let mut millis = Vec::with_capacity(flows);
    let mut failures = 0;
    for t in tasks {
        match t.await {
            Ok(Some(d)) => millis.push(d.as_secs_f64() * 1000.0),
            _ => failures += 1,
        }
    }
    listener.abort();
    millis.sort_by(f64::total_cmp);
    Ok(vec![Latencies {
        name: "events: answer to challenge event",
        millis,
        failures,
    }])
}
