//! `webhooks serve`: the API server, and (later) the worker in the same process.
//!
//! One shutdown path: SIGINT/SIGTERM stop accepting connections, let in-flight requests finish,
//! then return.

use anyhow::Context;

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::outbound::Outbound;
use crate::store::{Migrations, Store};

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

/// A started server, for `run` and for tests.
pub struct Running {
    pub server: api::Server,
    pub store: Store,
}

/// Opens storage and starts the API on `--listen`.
pub async fn start(settings: &Settings) -> anyhow::Result<Running> {
    warn_unsupported_env();
    let store = open_store(settings).await?;
    let outbound = Outbound::new(&settings.http).context("cannot build the HTTP client")?;
    let state = AppState {
        store: store.clone(),
        outbound,
        max_request_bytes: settings.max_request_bytes,
    };
    let server = api::start(state, &settings.listen)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    tracing::info!(
        addr = %server.addr,
        storage = store.kind(),
        kafka_topics = %settings.kafka_topics.join(","),
        "listening"
    );
    Ok(Running { server, store })
}

/// `webhooks serve` until a signal arrives.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    if settings.worker {
        anyhow::bail!("--worker is not implemented yet: run `webhooks serve` without it");
    }
    let running = start(&settings).await?;
    crate::shutdown::signal().await;
    tracing::info!("shutting down");
    running.server.handle.stop(true).await;
    running.server.task.await??;
    Ok(())
}

/// Features of the reference that this service does not carry: say so instead of ignoring them.
fn warn_unsupported_env() {
    for (var, feature) in [
        ("AUTH_ENABLED", "API authentication"),
        ("PUBLISHER_NATS_ENABLED", "the NATS publisher"),
    ] {
        let on = std::env::var(var)
            .ok()
            .and_then(|v| crate::domain::boolean::parse_bool(v.trim()).ok())
            .unwrap_or(false);
        if on {
            tracing::warn!(
                variable = var,
                "{feature} is not supported by this version and is ignored"
            );
        }
    }
}
