//! `backchannel bench`: drives a real server over loopback and reports requests/s and p50/p99
//! latency for backchannel requests and polls, with `client_secret_basic` and with
//! `private_key_jwt` (ES256). The server runs in this process on a free port (SQLite in a
//! temporary directory unless `--database-url` names another store).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backchannel_protocol::jose::{self, Algorithm, Jwks, SigningKey};
use backchannel_protocol::oauth::{
    CLIENT_ASSERTION_TYPE_JWT_BEARER, ClientAuthMethod, GRANT_TYPE_CIBA,
};
use backchannel_server::config::Config;
use backchannel_server::domain::admin::{NewClient, NewUser};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::CmdResult;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    /// challenge event on a connected device.
    #[arg(long, value_parser = ["endpoints", "notify", "events"], default_value = "endpoints")]
    scenario: String,
    /// Flows per notify or events scenario.
    #[arg(long, default_value_t = 1000)]
    flows: usize,
}

#[derive(Clone)]
enum ClientAuth {
    Basic(String, String),
    Jwt(String, SigningKey),
}

/// A prepared request: its form and, for `client_secret_basic`, the Basic credentials.
type Prepared = (Vec<(&'static str, String)>, Option<(String, String)>);

struct Scenario {
    name: &'static str,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    failures: usize,
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
struct Run {
    latencies: Vec<Duration>,
    failures: usize,
    wall: Duration,
    /// Bodies of the answers that had the expected status.
    bodies: Vec<serde_json::Value>,
}

/// Sends every prepared request with `concurrency` in flight; latency counts until the whole
/// body has arrived.
async fn drive(
    http: &reqwest::Client,
    url: &str,
    prepared: Vec<Prepared>,
    expect: u16,
    concurrency: usize,
) -> Run {
    let sem = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(prepared.len());
    for (form, basic) in prepared {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let http = http.clone();
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let t = Instant::now();
            let mut req = http.post(&url).form(&form);
            if let Some((id, secret)) = basic {
                req = req.basic_auth(id, Some(secret));
            }
            let body = match req.send().await {
                Ok(r) if r.status().as_u16() == expect => r.json::<serde_json::Value>().await.ok(),
                Ok(r) => {
                    let _ = r.bytes().await;
                    None
                }
                Err(_) => None,
            };
            (t.elapsed(), body)
        }));
    }
    let mut run = Run {
        latencies: Vec::new(),
        failures: 0,
        wall: Duration::ZERO,
        bodies: Vec::new(),
    };
    for t in tasks {
        match t.await {
            Ok((d, Some(body))) => {
                run.latencies.push(d);
                run.bodies.push(body);
            }
            _ => run.failures += 1,
        }
    }
    run.wall = started.elapsed();
    run
}

fn summarize(name: &'static str, run: &mut Run) -> Scenario {
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
    as_json: bool,
) {
    if as_json {
        let rows: Vec<Value> = results
            .iter()
            .map(|r| json!({"scenario": r.name, "p50_ms": percentile(&r.millis, 0.5), "p99_ms": percentile(&r.millis, 0.99), "samples": r.millis.len(), "failures": r.failures}))
            .collect();
        println!(
            "{}",
            json!({"flows": flows, "concurrency": concurrency, "results": rows})
        );
        return;
    }
    println!("{flows} flows per scenario, {concurrency} at once; latency {measured}");
    println!(
        "{:<34} {:>9} {:>9} {:>8} {:>6}",
        "scenario", "p50 ms", "p99 ms", "samples", "fail"
    );
    for r in results {
        println!(
            "{:<34} {:>9.2} {:>9.2} {:>8} {:>6}",
            r.name,
            percentile(&r.millis, 0.5),
            percentile(&r.millis, 0.99),
            r.millis.len(),
            r.failures
        );
    }
}

pub async fn run(args: BenchArgs) -> CmdResult {
    let dir = std::env::temp_dir().join(format!("backchannel-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.data_dir = dir.to_string_lossy().into_owned();
    config.admin.token = jose::random_token(16)?;
    config.database.url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));
    // The notification receiver runs on loopback.
    config.outbound.allowed_private_networks = vec!["127.0.0.0/8".into()];
    config.outbound.allow_http = true;
    // The notify scenario measures held polls; elsewhere a poll of a pending request must
    // answer at once (authorization_pending), not be held.
    if args.scenario == "notify" {
        config.token.long_poll_seconds = 30;
    }
    let server = backchannel_server::app::start(config).await?;
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
        print_latencies(&results, args.flows, concurrency, measured, args.json);
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
        let mut started = drive(&http, &bc_url, prepared, 200, args.concurrency).await;
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
        let mut polled = drive(&http, &token_url, prepared, 400, args.concurrency).await;
        results.push(summarize(label_poll, &mut polled));
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|r| json!({"scenario": r.name, "requests_per_sec": r.requests_per_sec, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "failures": r.failures}))
            .collect();
        println!(
            "{}",
            json!({"requests": args.requests, "concurrency": args.concurrency, "results": rows})
        );
    } else {
        println!(
            "{} requests per scenario, {} in flight, server in-process on loopback",
            args.requests, args.concurrency
        );
        println!(
            "{:<44} {:>10} {:>9} {:>9} {:>6}",
            "scenario", "req/s", "p50 ms", "p99 ms", "fail"
        );
        for r in &results {
            println!(
                "{:<44} {:>10.0} {:>9.2} {:>9.2} {:>6}",
                r.name, r.requests_per_sec, r.p50_ms, r.p99_ms, r.failures
            );
        }
    }
    let failed = results.iter().any(|r| r.failures > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
