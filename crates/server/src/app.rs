//! Wiring: opens the store, loads the keys, binds the listener, serves the router until a
//! shutdown signal, and runs the background housekeeping and key-reload tasks with explicit
//! shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::error::AuthError;
use crate::domain::key_sealing::KeySealer;
use crate::domain::keys::{KeyPolicy, Keyring};
use crate::domain::wake::LocalNotifier;
use crate::domain::{Domain, Notifier};
use crate::http::{AppState, Shared, router};
use crate::notify::cluster::PgNotifier;
use crate::notify::devices::PushWorker;
use crate::notify::outbox::OutboxWorker;
use crate::notify::push::PushSenders;
use crate::outbound::{CachedJwksFetcher, Outbound};
use crate::store::{PurgeCutoffs, PurgeOutcome, Stores};

/// How often used `jti`s and long-expired requests are purged.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(30);
/// How often the signing keys are re-read, so that a key another node (or `admin`) stored is
/// served by this one within 5 s. One indexed read of a few rows; the keys are parsed again
/// only when the stored set changed.
const KEY_RELOAD_EVERY: Duration = Duration::from_secs(2);

/// A failure to start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

fn err(context: &str) -> impl Fn(&dyn std::fmt::Display) -> StartError + '_ {
    move |e| StartError(format!("{context}: {e}"))
}

/// The guarded outbound client, built once per process from `[outbound]`.
pub fn outbound(config: &Config) -> Result<Outbound, StartError> {
    Outbound::new(&config.outbound).map_err(|e| err("outbound")(&e))
}

/// Opens the configured store and builds the domain (no listener): used by `backchannel
/// admin`, which works on the store directly.
pub async fn open_domain(
    config: &Config,
    clock: Arc<dyn Clock>,
    issuer: String,
) -> Result<Domain, StartError> {
    open_domain_with(config, clock, issuer, outbound(config)?, Cluster::Alone).await
}

/// Whether a domain takes part in cross-node wake-ups (a serving node) or not (a one-off
/// `admin` command).
#[derive(Clone, Copy)]
enum Cluster {
    Join,
    Alone,
}

/// [`open_domain`] with the outbound client the rest of the process uses.
async fn open_domain_with(
    config: &Config,
    clock: Arc<dyn Clock>,
    issuer: String,
    outbound: Outbound,
    cluster: Cluster,
) -> Result<Domain, StartError> {
    let stores = Stores::open(&config.database_url())
        .await
        .map_err(|e| err("cannot open the database")(&e))?;
    let policy = KeyPolicy {
        retention_ms: KeyPolicy::retention_ms_for(config),
        sealer: match config.keys.encryption_key_file.as_str() {
            "" => None,
            path => Some(KeySealer::from_file(Path::new(path)).map_err(StartError)?),
        },
    };
    // The detail of a key failure is the operator's to read (a missing or wrong key file).
    let keys = Keyring::load_or_generate(stores.keys.as_ref(), clock.clone(), policy)
        .await
        .map_err(|e| match e {
            AuthError::Internal(detail) => {
                StartError(format!("cannot load signing keys: {detail}"))
            }
            other => err("cannot load signing keys")(&other),
        })?;
    // Nodes that share a PostgreSQL database wake each other; a SQLite node is alone.
    let notifier: Arc<dyn Notifier> = match (&stores.shared_pool, cluster) {
        (Some(pool), Cluster::Join) => PgNotifier::start(pool.clone()),
        _ => Arc::new(LocalNotifier::default()),
    };
    Ok(Domain {
        stores,
        clock,
        keys,
        config: Arc::new(config.clone()),
        issuer,
        jwks_fetcher: Arc::new(CachedJwksFetcher::new(outbound)),
        notifier,
    })
}

/// The admin token: configured, or read from / generated into `{data_dir}/admin-token`.
fn admin_token(config: &Config) -> Result<(String, bool), StartError> {
    if !config.admin.token.is_empty() {
        return Ok((config.admin.token.expose().to_owned(), false));
    }
    let path = Path::new(&config.server.data_dir).join("admin-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let t = existing.trim().to_owned();
        if !t.is_empty() {
            return Ok((t, false));
        }
    }
    let token = Domain::random_id(52).map_err(|e| err("admin token")(&e))?;
    std::fs::create_dir_all(&config.server.data_dir)
        .map_err(|e| err("cannot create the data directory")(&e))?;
    write_private(&path, &token).map_err(|e| err("cannot write the admin token")(&e))?;
    Ok((token, true))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .clone()
}

/// A server that is running.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub issuer: String,
    /// The admin token, if this start generated it (print it once).
    pub generated_admin_token: Option<String>,
    pub admin_token: String,
    pub domain: Domain,
    shutdown: watch::Sender<bool>,
    serve: JoinHandle<std::io::Result<()>>,
    housekeeping: JoinHandle<()>,
    key_reload: JoinHandle<()>,
    outbox: JoinHandle<()>,
    pushes: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, stops background work.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.serve.await;
        let _ = self.housekeeping.await;
        let _ = self.key_reload.await;
        let _ = self.outbox.await;
        let _ = self.pushes.await;
    }

    /// Runs until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Starts the server on the wall clock.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// Binds `server.listen` (port 0 picks a free port; an unset issuer then names the real one),
/// opens everything and serves in the background.
pub async fn start_with_clock(
    config: Config,
    clock: Arc<dyn Clock>,
) -> Result<RunningServer, StartError> {
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .map_err(|e| err(&format!("cannot listen on {}", config.server.listen))(&e))?;
    let addr = listener.local_addr().map_err(|e| err("listener")(&e))?;
    let issuer = if config.server.issuer.is_empty() {
        format!("http://{addr}")
    } else {
        config.server.issuer.clone()
    };
    let outbound = outbound(&config)?;
    let domain = open_domain_with(
        &config,
        clock,
        issuer.clone(),
        outbound.clone(),
        Cluster::Join,
    )
    .await?;
    let (token, generated) = admin_token(&config)?;
    let (shutdown, mut rx) = watch::channel(false);
    let senders =
        PushSenders::from_config(&config.push, &outbound).map_err(|e| err("push senders")(&e))?;
    let state = AppState::new(Shared {
        domain: domain.clone(),
        admin_token_hash: Some(Domain::hash_hex(&token)),
        metrics: metrics_handle(),
        max_body: config.server.max_body_bytes,
        shutdown: rx.clone(),
        webpush_key: senders
            .webpush
            .as_ref()
            .map(|w| w.application_server_key().to_owned()),
    });
    let app = router(state);
    let mut serve_rx = rx.clone();
    let serve = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = serve_rx.wait_for(|stop| *stop).await;
            })
            .await
    });
    release_dead_leases(&domain).await?;
    let outbox = OutboxWorker::new(domain.clone(), outbound.clone()).spawn(rx.clone());
    let pushes = PushWorker::new(domain.clone(), senders, outbound).spawn(rx.clone());
    let key_reload = spawn_key_reload(domain.clone(), rx.clone());
    let hk_domain = domain.clone();
    let housekeeping = tokio::spawn(async move {
        loop {
            let stop = tokio::select! {
                _ = rx.wait_for(|stop| *stop) => true,
                () = tokio::time::sleep(HOUSEKEEPING_EVERY) => false,
            };
            if stop {
                break;
            }
            housekeep(&hk_domain).await;
        }
    });
    tracing::info!(%addr, %issuer, "listening");
    Ok(RunningServer {
        addr,
        issuer,
        generated_admin_token: generated.then(|| token.clone()),
        admin_token: token,
        domain,
        shutdown,
        serve,
        housekeeping,
        key_reload,
        outbox,
        pushes,
    })
}

/// Deliveries that the previous run of this node had in flight when it died go out now, not
/// when their leases would have run out (the store decides which leases it may release).
async fn release_dead_leases(domain: &Domain) -> Result<(), StartError> {
    let now = domain.now_ms();
    let stores = &domain.stores;
    let pushes = stores
        .pushes
        .release_push_leases_at_start(now)
        .await
        .map_err(|e| err("releasing push leases")(&e))?;
    let notifications = stores
        .outbox
        .release_notification_leases_at_start(now)
        .await
        .map_err(|e| err("releasing notification leases")(&e))?;
    if pushes + notifications > 0 {
        tracing::info!(
            pushes,
            notifications,
            "deliveries in flight when the last run stopped are due again"
        );
    }
    Ok(())
}

async fn housekeep(domain: &Domain) {
    purge(domain).await;
}

/// Re-reads the signing keys every [`KEY_RELOAD_EVERY`] until shutdown.
fn spawn_key_reload(domain: Domain, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                () = tokio::time::sleep(KEY_RELOAD_EVERY) => {}
            }
            if let Err(e) = domain.keys.reload(domain.stores.keys.as_ref()).await {
                tracing::warn!(error = ?e, "reloading signing keys failed");
            }
        }
    })
}

/// One purge pass ([`crate::store::PurgeStore`]): what expired more than
/// `[purge] retention_secs` ago, and used `jti`s past their expiry. On PostgreSQL one node
/// runs it at a time; the others skip.
async fn purge(domain: &Domain) {
    let cutoffs = PurgeCutoffs::at(domain.now_ms(), domain.config.purge.retention_ms());
    let started = tokio::time::Instant::now();
    match domain.stores.purge.purge(&cutoffs).await {
        Ok(PurgeOutcome::Ran(p)) if p.rows() > 0 => tracing::info!(
            requests = p.requests,
            challenges = p.challenges,
            notifications = p.notifications,
            push_deliveries = p.push_deliveries,
            device_events = p.device_events,
            jtis = p.jtis,
            rounds = p.rounds,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "purged"
        ),
        Ok(PurgeOutcome::Ran(_)) => {}
        Ok(PurgeOutcome::Skipped) => tracing::debug!("purge skipped: another node is purging"),
        Err(e) => tracing::warn!(error = %e, "purging failed"),
    }
}
