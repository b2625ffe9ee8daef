//! `backchannel bench`: drives a real server over loopback and reports requests/s and p50/p99
//! latency for backchannel requests and polls, with `client_secret_basic` and with
//! `private_key_jwt` (ES256). The server runs in this process on a free port (SQLite in a
//! temporary directory unless `--database-url` names another store). The other scenarios live
//! in `bench_notify`, `bench_events`, `bench_backlog` and `bench_purge`.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backchannel_protocol::jose::{self, Algorithm, Jwks, SigningKey};
use backchannel_protocol::oauth::{
    CLIENT_ASSERTION_TYPE_JWT_BEARER, ClientAuthMethod, GRANT_TYPE_CIBA,
};
use backchannel_server::config::{Config, LimitsConfig};
use backchannel_server::domain::admin::{NewClient, NewUser};
use serde_json::{Value, json};

use crate::output::Output;
use crate::{BoxError, CmdResult};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Requests per scenario.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Store to benchmark (default: SQLite in a temporary directory).
    #[arg(long)]
    database_url: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// `endpoints`: requests/s and latency of /bc-authorize and /token; `notify`: decision to
    /// ping/push notification and to held-poll answer; `events`: /bc-authorize answer to the
    /// challenge event on a connected device; `backlog`: memory and polls/s of one pending
    /// request as the store fills with pending requests; `purge`: one purge pass over
    /// `--requests` expired requests.
    #[arg(long, value_parser = ["endpoints", "notify", "events", "backlog", "purge"], default_value = "endpoints")]
    scenario: String,
    /// Flows per notify or events scenario.
    #[arg(long, default_value_t = 1000)]
    flows: usize,
    /// `backlog`: pending-request counts to measure at, comma-separated; the store grows
    /// from one to the next.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 100_000, 1_000_000])]
    pending: Vec<usize>,
    /// `backlog`: seconds each poll run lasts.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
}

#[derive(Clone)]
enum ClientAuth {
    Basic(String, String),
    Jwt(String, SigningKey),
}

/// A prepared request: its form and, for `client_secret_basic`, the Basic credentials.
pub type Prepared = (Vec<(&'static str, String)>, Option<(String, String)>);

pub struct Scenario {
    pub name: &'static str,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub failures: usize,
}

fn form_for(
    auth: &ClientAuth,
    aud: &str,
    mut form: Vec<(&'static str, String)>,
) -> Result<Prepared, jose::JoseError> {
    match auth {
        ClientAuth::Basic(id, secret) => Ok((form, Some((id.clone(), secret.clone())))),
        ClientAuth::Jwt(id, key) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let claims = json!({"iss": id, "sub": id, "aud": aud, "iat": now, "exp": now + 300, "jti": jose::random_token(16)?});
            form.push(("client_id", id.clone()));
            form.push((
                "client_assertion_type",
                CLIENT_ASSERTION_TYPE_JWT_BEARER.into(),
            ));
            form.push(("client_assertion", jose::sign_jwt(key, None, &claims)?));
            Ok((form, None))
        }
    }
}

/// What one scenario produced.
#[derive(Default)]
pub struct Run {
    latencies: Vec<Duration>,
    pub failures: usize,
    wall: Duration,
    /// Bodies of the successful answers, when [`Expect::keep_bodies`] asked for them.
    pub bodies: Vec<serde_json::Value>,
}

/// Which answers count as successes.
#[derive(Clone, Copy)]
pub struct Expect {
    pub status: u16,
    /// When not empty, the body's `error` must be one of these.
    pub errors: &'static [&'static str],
    /// Keep successful bodies in [`Run::bodies`]; off for long runs, whose bodies would
    /// only cost memory.
    pub keep_bodies: bool,
}

impl Expect {
    /// Any answer with `status`; bodies kept.
    pub const fn status(status: u16) -> Self {
        Expect {
            status,
            errors: &[],
            keep_bodies: true,
        }
    }
}

/// Sends every prepared request, `concurrency` workers each taking the next one as its
/// previous answer arrives; latency counts until the whole body has arrived. `prepared` may be
/// endless if it stops itself (e.g. at a deadline). Memory stays bounded by the workers, not
/// by the number of requests.
pub async fn drive<I>(
    http: &reqwest::Client,
    url: &str,
    prepared: I,
    expect: Expect,
    concurrency: usize,
) -> Run
where
    I: Iterator<Item = Prepared> + Send + 'static,
{
    let source = Arc::new(std::sync::Mutex::new(prepared));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency.max(1));
    for _ in 0..concurrency.max(1) {
        let (http, url, source) = (http.clone(), url.to_owned(), source.clone());
        workers.push(tokio::spawn(async move {
            let mut run = Run::default();
            loop {
                let next = source.lock().ok().and_then(|mut s| s.next());
                let Some((form, basic)) = next else { break };
                let t = Instant::now();
                match send(&http, &url, &form, basic, expect).await {
                    Some(body) => {
                        run.latencies.push(t.elapsed());
                        if expect.keep_bodies {
                            run.bodies.push(body);
                        }
                    }
                    None => run.failures += 1,
                }
            }
            run
        }));
    }
    let mut run = Run::default();
    for w in workers {
        match w.await {
            Ok(mut part) => {
                run.latencies.append(&mut part.latencies);
                run.bodies.append(&mut part.bodies);
                run.failures += part.failures;
            }
            Err(_) => run.failures += 1,
        }
    }
    run.wall = started.elapsed();
    run
}

/// One request; its body if the answer is what `expect` asks for.
async fn send(
    http: &reqwest::Client,
    url: &str,
    form: &[(&'static str, String)],
    basic: Option<(String, String)>,
    expect: Expect,
) -> Option<Value> {
    let mut req = http.post(url).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let answer = req.send().await.ok()?;
    if answer.status().as_u16() != expect.status {
        let _ = answer.bytes().await;
        return None;
    }
    let body = answer.json::<Value>().await.ok()?;
    let error_ok = expect.errors.is_empty()
        || body["error"]
            .as_str()
            .is_some_and(|e| expect.errors.contains(&e));
    error_ok.then_some(body)
}

pub fn summarize(name: &'static str, run: &mut Run) -> Scenario {
    let mut millis: Vec<f64> = run
        .latencies
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    millis.sort_by(f64::total_cmp);
    Scenario {
        name,
        requests_per_sec: (millis.len() + run.failures) as f64 / run.wall.as_secs_f64(),
        p50_ms: percentile(&millis, 0.50),
        p99_ms: percentile(&millis, 0.99),
        failures: run.failures,
    }
}

/// Latencies of one flow-based scenario (`notify`, `events`), in milliseconds, sorted.
pub struct Latencies {
    pub name: &'static str,
    pub millis: Vec<f64>,
    pub failures: usize,
}

/// The `p` quantile (0..=1) of sorted samples, nearest rank; 0 without samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Prints flow-based results; `measured` says what the latency runs between.
fn print_latencies(
    results: &[Latencies],
    flows: usize,
    concurrency: usize,
    measured: &str,
    out: Output,
) -> Result<(), BoxError> {
    let rows: Vec<Value> = results
        .iter()
        .map(|r| json!({"scenario": r.name, "p50_ms": percentile(&r.millis, 0.5), "p99_ms": percentile(&r.millis, 0.99), "samples": r.millis.len(), "failures": r.failures}))
        .collect();
    let summary = json!({"flows": flows, "concurrency": concurrency, "results": rows});
    out.print(&summary, |w, _| {
        writeln!(
            w,
            "{flows} flows per scenario, {concurrency} at once; latency {measured}"
        )?;
        writeln!(
            w,
            "{:<34} {:>9} {:>9} {:>8} {:>6}",
            "scenario", "p50 ms", "p99 ms", "samples", "fail"
        )?;
        for r in results {
            writeln!(
                w,
                "{:<34} {:>9.2} {:>9.2} {:>8} {:>6}",
                r.name,
                percentile(&r.millis, 0.5),
                percentile(&r.millis, 0.99),
                r.millis.len(),
                r.failures
            )?;
        }
        Ok(())
    })
}

pub async fn run(args: BenchArgs) -> CmdResult {
    let dir = std::env::temp_dir().join(format!("backchannel-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.data_dir = dir.to_string_lossy().into_owned();
    config.admin.token = jose::random_token(16)?.into();
    config.database.url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));
    // The notification receiver runs on loopback.
    config.outbound.allowed_private_networks = vec!["127.0.0.0/8".into()];
    config.outbound.allow_http = true;
    // The load is one user's requests, many at once: the per-user limits would refuse it.
    config.limits = LimitsConfig {
        pending_per_user_client: 0,
        requests_per_user: 0,
        requests_per_client: 0,
        replace_undecided: false,
        ..LimitsConfig::default()
    };
    // The notify scenario measures held polls; elsewhere a poll of a pending request must
    // answer at once (authorization_pending), not be held.
    if args.scenario == "notify" {
        config.token.long_poll_seconds = 30;
    }
    if args.scenario == "backlog" {
        crate::bench_backlog::configure(&mut config);
    }
    if args.scenario == "purge" {
        let purged =
            crate::bench_purge::run(&config, args.requests, Output::from_flag(args.json)).await;
        let _ = std::fs::remove_dir_all(&dir);
        return purged.map(|()| ExitCode::SUCCESS);
    }
    let server = backchannel_server::app::start(config).await?;
    if args.scenario == "backlog" {
        let plan = crate::bench_backlog::Plan {
            pending: args.pending.clone(),
            duration: Duration::from_secs(args.duration_secs),
            concurrency: args.concurrency.max(1),
        };
        let steps = crate::bench_backlog::run(&server, &plan).await;
        server.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
        let steps = steps?;
        crate::bench_backlog::print(&steps, &plan, Output::from_flag(args.json))?;
        let failed = steps.iter().any(|s| s.polls.failures > 0);
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    if args.scenario == "notify" || args.scenario == "events" {
        let concurrency = args.concurrency.min(64);
        let (results, measured) = if args.scenario == "notify" {
            (
                crate::bench_notify::run(&server, args.flows, concurrency).await,
                "from the device sending its decision",
            )
        } else {
            (
                crate::bench_events::run(&server, args.flows, concurrency).await,
                "from the /bc-authorize answer to the device's challenge event",
            )
        };
        server.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
        let results = results?;
        let out = Output::from_flag(args.json);
        print_latencies(&results, args.flows, concurrency, measured, out)?;
        let failed = results.iter().any(|r| r.failures > 0);
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let domain = server.domain.clone();
    let issuer = server.issuer.clone();

    let basic = domain
        .create_client(NewClient {
            name: "bench basic".into(),
            ..Default::default()
        })
        .await?;
    let basic = ClientAuth::Basic(basic.client_id, basic.client_secret.ok_or("no secret")?);
    let key = SigningKey::generate(Algorithm::ES256)?;
    let jwt = domain
        .create_client(NewClient {
            name: "bench jwt".into(),
            auth_method: Some(ClientAuthMethod::PrivateKeyJwt),
            jwks: Some(Jwks {
                keys: vec![key.public_jwk()],
            }),
            ..Default::default()
        })
        .await?;
    let jwt = ClientAuth::Jwt(jwt.client_id, key);
    let email = format!(
        "bench-{}@example.com",
        jose::random_token(6)?
            .to_lowercase()
            .replace(['-', '_'], "x")
    );
    let user = domain
        .create_user(NewUser {
            email: Some(email.clone()),
            ..Default::default()
        })
        .await?;
    let code = domain.create_enrolment(&user.sub).await?.code;
    let device_key = SigningKey::generate(Algorithm::ES256)?;
    domain
        .enrol_device(backchannel_protocol::device::EnrolRequest {
            code,
            public_jwk: device_key.public_jwk(),
            name: None,
            push: None,
        })
        .await?;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let bc_url = format!("{issuer}/bc-authorize");
    let token_url = format!("{issuer}/token");
    let mut results = Vec::new();
    for (label_bc, label_poll, auth) in [
        (
            "backchannel request, client_secret_basic",
            "poll (pending), client_secret_basic",
            &basic,
        ),
        (
            "backchannel request, private_key_jwt ES256",
            "poll (pending), private_key_jwt ES256",
            &jwt,
        ),
    ] {
        // Assertions are signed before the clock starts: only the server is measured.
        let prepared = (0..args.requests)
            .map(|_| {
                form_for(
                    auth,
                    &issuer,
                    vec![
                        ("scope", "openid".into()),
                        ("login_hint", email.clone()),
                        ("binding_message", "bench".into()),
                    ],
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut started = drive(
            &http,
            &bc_url,
            prepared.into_iter(),
            Expect::status(200),
            args.concurrency,
        )
        .await;
        results.push(summarize(label_bc, &mut started));
        // Poll each pending request once: the authorization_pending path.
        let prepared = started
            .bodies
            .iter()
            .filter_map(|b| b["auth_req_id"].as_str())
            .map(|id| {
                form_for(
                    auth,
                    &issuer,
                    vec![
                        ("grant_type", GRANT_TYPE_CIBA.into()),
                        ("auth_req_id", id.to_owned()),
                    ],
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut polled = drive(
            &http,
            &token_url,
            prepared.into_iter(),
            Expect::status(400),
            args.concurrency,
        )
        .await;
        results.push(summarize(label_poll, &mut polled));
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    let rows: Vec<_> = results
        .iter()
        .map(|r| json!({"scenario": r.name, "requests_per_sec": r.requests_per_sec, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "failures": r.failures}))
        .collect();
    let summary =
        json!({"requests": args.requests, "concurrency": args.concurrency, "results": rows});
    Output::from_flag(args.json).print(&summary, |w, _| {
        writeln!(
            w,
            "{} requests per scenario, {} in flight, server in-process on loopback",
            args.requests, args.concurrency
        )?;
        writeln!(
            w,
            "{:<44} {:>10} {:>9} {:>9} {:>6}",
            "scenario", "req/s", "p50 ms", "p99 ms", "fail"
        )?;
        for r in &results {
            writeln!(
                w,
                "{:<44} {:>10.0} {:>9.2} {:>9.2} {:>6}",
                r.name, r.requests_per_sec, r.p50_ms, r.p99_ms, r.failures
            )?;
        }
        Ok(())
    })?;
    let failed = results.iter().any(|r| r.failures > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
