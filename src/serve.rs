//! `webhooks serve` (the API, with `--worker` the worker too) and `webhooks worker`.
//!
//! One shutdown path (spec §1.5): on SIGINT/SIGTERM, at once and concurrently, the HTTP server
//! stops accepting connections and the worker stops reading records and claiming retries; then
//! in-flight requests and calls finish, their outcomes are stored and offsets committed. The
//! whole stop is bounded by `--shutdown-timeout` (past it: what was left is logged, exit 1), and
//! a second signal ends the process at once (exit 1).

use anyhow::Context;

use std::sync::Arc;

use tokio_util::sync::{CancellationToken, DropGuard};

use crate::api::auth::Authenticator;
use crate::api::{self, AppState, Surface};
use crate::config::Settings;
use crate::kafka::{KafkaSettings, Publisher};
use crate::outbound::Outbound;
use crate::store::{Migrations, Store};
use crate::worker::Worker;

/// Opens the store as the contract says: SQLite always migrates; PostgreSQL only with
/// `--auto-migrate`, and otherwise refuses to run on an outdated schema.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let storage = settings.storage.clone();
    let migrations = if settings.auto_migrate {
        Migrations::Apply
    } else {
        Migrations::RequireCurrent
    };
    let store = tokio::task::spawn_blocking(move || Store::open(&storage, migrations))
        .await?
        .with_context(|| format!("cannot open {} storage", settings.storage.kind()))?;
    Ok(store)
}

/// A started process, for `run` and for tests.
pub struct Running {
    pub server: api::Server,
    pub store: Store,
    pub worker: Option<Worker>,
    /// Stops following other processes' config changes when the process stops (or is dropped).
    _follow_changes: DropGuard,
}

impl Running {
    /// The one shutdown path: stop accepting HTTP and stop the worker (drain, flush, commit),
    /// both at once.
    pub async fn stop(self) {
        let http = self.server.handle.stop(true);
        match self.worker {
            Some(worker) => {
                tokio::join!(http, worker.stop());
            }
            None => http.await,
        }
    }
}

/// Which process this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `webhooks serve`, with the worker when `--worker` is set.
    Serve,
    /// `webhooks worker`: the worker and the operational routes.
    Worker,
}

/// Opens storage, starts the worker when asked, and serves HTTP on `--listen`.
pub async fn start(settings: &Settings, role: Role) -> anyhow::Result<Running> {
    warn_unsupported_env();
    // The `--auth-*` flags concern the API, which `worker` does not serve.
    let auth = match role {
        Role::Serve => Authenticator::new(&settings.auth).context("cannot build the OIDC client")?,
        Role::Worker => None,
    };
    let store = open_store(settings).await?;
    let outbound = Outbound::new(&settings.http).context("cannot build the HTTP client")?;
    let worker = if role == Role::Worker || settings.worker {
        Some(Worker::start(settings, store.clone(), outbound.clone()).await?)
    } else {
        None
    };
    let publisher = match role {
        Role::Serve => publisher(settings, worker.as_ref())?,
        Role::Worker => None,
    };
    let state = AppState {
        store: store.clone(),
        outbound,
        max_request_bytes: settings.max_request_bytes,
        worker: worker.as_ref().map(|w| Arc::clone(&w.status)),
        publisher,
        config_list: Arc::default(),
        auth,
        secret_overlap: settings.secret_overlap,
    };
    let surface = match role {
        Role::Serve => Surface::Api,
        Role::Worker => Surface::Operations,
    };
    let follow_changes = CancellationToken::new();
    store.follow_config_changes(follow_changes.clone());
    let server = api::start(state, &settings.listen, surface, settings.shutdown_timeout)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    // Before `listening`, so a reader that saw that line has seen any warning of the start.
    if role == Role::Serve && !settings.auth.enabled && !server.addr.ip().is_loopback() {
        tracing::warn!(
            addr = %server.addr,
            "the API is open to the network without authentication: anyone who can reach it can \
             read every endpoint secret, change configs and publish events; set --auth-enabled \
             or listen on a loopback address"
        );
    }
    tracing::info!(
        addr = %server.addr,
        storage = store.kind(),
        kafka_topics = %settings.kafka_topics.join(","),
        "listening"
    );
    Ok(Running {
        server,
        store,
        worker,
        _follow_changes: follow_changes.drop_guard(),
    })
}

/// The producer of `POST /events`: to the configured cluster, else to the embedded broker of
/// this process's worker, else none (the route answers 503).
fn publisher(settings: &Settings, worker: Option<&Worker>) -> anyhow::Result<Option<Arc<Publisher>>> {
    let embedded = worker.and_then(|w| w.status.kafka_bootstrap.as_deref());
    if !settings.publisher_kafka_enabled && embedded.is_none() {
        return Ok(None);
    }
    let kafka = KafkaSettings::new(settings, embedded);
    let publisher =
        Publisher::new(&kafka, settings.kafka_topics.clone()).context("cannot create the Kafka producer")?;
    Ok(Some(Arc::new(publisher)))
}

/// Runs until SIGINT/SIGTERM, then stops within `--shutdown-timeout` (see the module comment).
pub async fn run(settings: Settings, role: Role) -> anyhow::Result<()> {
    let mut signals = crate::shutdown::Signals::new().context("cannot listen for signals")?;
    let running = start(&settings, role).await?;
    signals.recv().await;
    tracing::info!(timeout = ?settings.shutdown_timeout, "shutting down");
    let progress = running.worker.as_ref().map(Worker::progress);
    let stop = running.stop();
    tokio::select! {
        () = stop => Ok(()),
        () = tokio::time::sleep(settings.shutdown_timeout) => {
            let left = progress.map(|p| p.unfinished()).unwrap_or_default();
            tracing::error!(
                calls_in_flight = left.calls_in_flight,
                outcomes_unstored = left.outcomes_unstored,
                records_uncommitted = left.records_uncommitted,
                "the stop did not finish within --shutdown-timeout; these records will be consumed again by the next owner of their partitions"
            );
            Err(anyhow::anyhow!("shutdown timed out after {:?}", settings.shutdown_timeout))
        }
        () = signals.recv() => {
            Err(anyhow::anyhow!("second signal during shutdown: exiting at once"))
        }
    }
}

/// A feature of the reference that this service does not carry: say so instead of ignoring it.
fn warn_unsupported_env() {
    const VAR: &str = "PUBLISHER_NATS_ENABLED";
    let on = std::env::var(VAR)
        .ok()
        .and_then(|v| crate::domain::boolean::parse_bool(v.trim()).ok())
        .unwrap_or(false);
    if on {
        tracing::warn!(
            variable = VAR,
            "the NATS publisher is not supported by this version and is ignored"
        );
    }
}
