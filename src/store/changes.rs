//! What this process knows of config changes, so in-memory copies of the configs (the API's
//! rendered `GET /configs`) can tell whether they are current without asking the database.
//!
//! Changes arrive two ways:
//! - this process's own writes: [`super::Store::notify_config_change`], before the API answers;
//! - other processes' writes: on PostgreSQL every config write `NOTIFY`s `webhooks_configs` in
//!   its transaction, and a dedicated connection here `LISTEN`s, checking for notices every
//!   2 ms, so a change committed elsewhere is seen within a few milliseconds (and also wakes
//!   the worker's config cache). On SQLite (one process by design) a cheap fingerprint query
//!   every 250 ms catches a second process.
//!
//! While the listening connection is down, changes of other processes are not followed and
//! [`super::Store::config_generation`] says so (None): copies must then read the database.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::{Connection, RunQueryDsl};
use tokio_util::sync::CancellationToken;

use super::Store;
use crate::api::errors::error_chain;

/// The channel every config write notifies (see `queries.rs`).
pub(super) const CHANNEL: &str = "webhooks_configs";
/// How often the listening connection is checked for notices (no round trip: a socket read).
const NOTICE_POLL: Duration = Duration::from_millis(2);
/// How often the listening connection proves it is alive with a query.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// Pause before connecting again after the listening connection failed.
const RECONNECT: Duration = Duration::from_secs(1);
/// The SQLite fingerprint poll.
const FINGERPRINT_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
pub(super) struct ConfigChanges {
    /// Bumped on every change this process learns of.
    generation: AtomicU64,
    /// Whether other processes' changes reach `generation`.
    followed: AtomicBool,
}

impl ConfigChanges {
    pub(super) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn current(&self) -> Option<u64> {
        self.followed
            .load(Ordering::SeqCst)
            .then(|| self.generation.load(Ordering::SeqCst))
    }

    /// Changes of the followed state count as a change: whatever was copied before may be stale.
    fn set_followed(&self, followed: bool) {
        self.followed.store(followed, Ordering::SeqCst);
        self.bump();
    }
}

impl Store {
    /// Follows other processes' config changes until `shutdown` (see the module comment).
    pub fn follow_config_changes(&self, shutdown: CancellationToken) {
        match self.postgres_uri.clone() {
            Some(uri) => {
                let store = self.clone();
                let spawned = std::thread::Builder::new()
                    .name("config-listen".into())
                    .spawn(move || listen(&store, &uri, &shutdown));
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start the config change listener");
                }
            }
            None => {
                tokio::spawn(poll_fingerprint(self.clone(), shutdown));
            }
        }
    }
}

fn listen(store: &Store, uri: &str, shutdown: &CancellationToken) {
    while !shutdown.is_cancelled() {
        if let Err(e) = listen_until_error(store, uri, shutdown) {
            store.config_changes.set_followed(false);
            tracing::warn!(error = %error_chain(&*e), "config change listener lost its connection; reconnecting");
            let deadline = Instant::now() + RECONNECT;
            while Instant::now() < deadline && !shutdown.is_cancelled() {
                std::thread::sleep(NOTICE_POLL * 10);
            }
        }
    }
    store.config_changes.set_followed(false);
}

fn listen_until_error(
    store: &Store,
    uri: &str,
    shutdown: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut conn = PgConnection::establish(uri)?;
    diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn)?;
    // Changes made before LISTEN took effect were not seen: treat them as one.
    store.config_changes.set_followed(true);
    let mut proven = Instant::now();
    while !shutdown.is_cancelled() {
        let mut changed = false;
        for notice in conn.notifications_iter() {
            notice?;
            changed = true;
        }
        if changed {
            store.notify_config_change();
        }
        if proven.elapsed() >= KEEPALIVE {
            diesel::sql_query("SELECT 1").execute(&mut conn)?;
            proven = Instant::now();
        }
        std::thread::sleep(NOTICE_POLL);
    }
    Ok(())
}

async fn poll_fingerprint(store: Store, shutdown: CancellationToken) {
    let mut last = None;
    loop {
        match store.run(|q| Ok(q.configs_fingerprint()?)).await {
            Ok(fingerprint) => {
                if last != Some(fingerprint) {
                    last = Some(fingerprint);
                    store.config_changes.set_followed(true);
                }
            }
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "cannot poll configs for changes");
                last = None;
                store.config_changes.set_followed(false);
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(FINGERPRINT_POLL) => {}
        }
    }
    store.config_changes.set_followed(false);
}
