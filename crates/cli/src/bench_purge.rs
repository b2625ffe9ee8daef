//! `backchannel bench --scenario purge`: how long one purge pass takes over a backlog of
//! expired requests. The store is filled through the domain (as `/bc-authorize` would, each
//! request with a challenge, a device event and a push delivery) on a clock set two days
//! back, then one pass runs at the real time with the default grace period, and the rows it
//! deleted, its rounds and its duration are printed.

use std::sync::Arc;
use std::time::Instant;

use backchannel_protocol::clock::{Clock, ManualClock, SystemClock};
use backchannel_protocol::device::PushRegistration;
use backchannel_protocol::jose::Jwk;
use backchannel_server::config::Config;
use backchannel_server::domain::Domain;
use backchannel_server::domain::admin::{NewClient, NewUser};
use backchannel_server::domain::backchannel::Params;
use backchannel_server::domain::model::Device;
use backchannel_server::store::{PurgeCutoffs, PurgeOutcome};
use serde_json::json;

use crate::BoxError;
use crate::output::Output;

/// How far back the backlog is made: well past the default grace period.
const BACKLOG_AGE_MS: i64 = 48 * 3600 * 1000;

/// Fills `count` expired requests into the configured store and times one purge pass.
pub async fn run(config: &Config, count: usize, out: Output) -> Result<(), BoxError> {
    let clock = ManualClock::new(SystemClock.now_ms() - BACKLOG_AGE_MS);
    let issuer = config.issuer();
    let domain =
        backchannel_server::app::open_domain(config, Arc::new(clock.clone()), issuer).await?;
    let created = domain
        .create_client(NewClient {
            name: "bench purge".into(),
            ..Default::default()
        })
        .await?;
    let client = domain
        .stores
        .clients
        .get_client(&created.client_id)
        .await?
        .ok_or("the bench client vanished")?;
    let email = "bench-purge@example.com";
    let user = domain
        .create_user(NewUser {
            email: Some(email.to_owned()),
            ..Default::default()
        })
        .await?;
    let device = Device {
        id: Domain::random_id(16)?,
        user_sub: user.sub,
        name: "bench".into(),
        public_jwk: Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some("bench".into()),
            ..Jwk::default()
        },
        push: PushRegistration {
            fcm_token: Some("bench".into()),
            ..PushRegistration::default()
        },
        disabled: false,
        created_at: clock.now_ms(),
    };
    domain.stores.devices.insert_device(&device).await?;
    let params: Params = [
        ("scope", "openid"),
        ("login_hint", email),
        ("binding_message", "purge"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();

    eprintln!("purge: filling {count} expired requests");
    let started = Instant::now();
    crate::bench_backlog::fill(&domain, &client, &params, count).await?;
    let fill = started.elapsed();

    let cutoffs = PurgeCutoffs::at(SystemClock.now_ms(), config.purge.retention_ms());
    let started = Instant::now();
    let outcome = domain.stores.purge.purge(&cutoffs).await?;
    let took = started.elapsed();
    let PurgeOutcome::Ran(p) = outcome else {
        return Err("another node holds the purge lock of this database".into());
    };
    let ms = took.as_secs_f64() * 1000.0;
    let report = json!({
        "scenario": "purge",
        "filled": count,
        "fill_ms": fill.as_secs_f64() * 1000.0,
        "purge_ms": ms,
        "rows": p.rows(),
        "rounds": p.rounds,
        "requests": p.requests,
        "challenges": p.challenges,
        "push_deliveries": p.push_deliveries,
        "device_events": p.device_events,
        "jtis": p.jtis,
        "batch_rows": cutoffs.batch_rows,
    });
    match out {
        Output::Json => println!("{report}"),
        Output::Human => println!(
            "purge of {count} expired requests: {} rows ({} requests, {} challenges, {} push \
             deliveries, {} device events) in {} rounds of at most {} rows, {ms:.0} ms \
             ({:.0} rows/s); fill took {:.1} s",
            p.rows(),
            p.requests,
            p.challenges,
            p.push_deliveries,
            p.device_events,
            p.rounds,
            cutoffs.batch_rows,
            p.rows() as f64 / took.as_secs_f64().max(1e-9),
            fill.as_secs_f64(),
        ),
    }
    Ok(())
}
