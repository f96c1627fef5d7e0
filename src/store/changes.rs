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
//! The follower proves its link to the database with a round trip every second (the PostgreSQL
//! listener's `SELECT 1`, SQLite's poll). When it has not for 3 s, or its connection failed,
//! changes of other processes are not followed and [`super::Store::config_generation`] says so
//! (None): copies must then read the database. So a copy is at most a few milliseconds behind
//! a commit elsewhere, and at most 3 s when the database silently stops answering.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::{Connection, RunQueryDsl};
use tokio_util::sync::CancellationToken;

use super::Store;
use crate::telemetry::error_chain;

/// The channel every config write notifies (see `queries.rs`).
pub(super) const CHANNEL: &str = "webhooks_configs";
/// How the listening connection shows in `pg_stat_activity`.
pub const LISTENER_NAME: &str = "webhooks config listener";
/// How often the listening connection is checked for notices (no round trip: a socket read).
const NOTICE_POLL: Duration = Duration::from_millis(2);
/// How often the listening connection proves it is alive with a query.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// How long a proof of the follower's link to the database holds.
const PROOF_HOLDS: Duration = Duration::from_secs(3);
/// Pause before connecting again after the listening connection failed.
const RECONNECT: Duration = Duration::from_secs(1);
/// The SQLite fingerprint poll.
const FINGERPRINT_POLL: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub(super) struct ConfigChanges {
    /// Bumped on every change this process learns of.
    generation: AtomicU64,
    /// Whether other processes' changes reach `generation`.
    followed: AtomicBool,
    /// When the follower last proved its link to the database, in ms since `epoch`.
    proven_ms: AtomicU64,
    epoch: Instant,
}

impl Default for ConfigChanges {
    fn default() -> Self {
        ConfigChanges {
            generation: AtomicU64::new(0),
            followed: AtomicBool::new(false),
            proven_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl ConfigChanges {
    pub(super) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn seen(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(super) fn current(&self) -> Option<u64> {
        let proven = Duration::from_millis(self.proven_ms.load(Ordering::SeqCst));
        let fresh = self.epoch.elapsed().saturating_sub(proven) <= PROOF_HOLDS;
        (fresh && self.followed.load(Ordering::SeqCst)).then(|| self.generation.load(Ordering::SeqCst))
    }

    /// The follower just completed a round trip to the database.
    fn proven(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.proven_ms.store(now, Ordering::SeqCst);
    }

    /// Changes of the followed state count as a change: whatever was copied before may be stale.
    fn set_followed(&self, followed: bool) {
        if followed {
            self.proven();
        }
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
    diesel::sql_query(format!("SET application_name = '{LISTENER_NAME}'")).execute(&mut conn)?;
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
            store.config_changes.proven();
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
                store.config_changes.proven();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_follow_transitions_move_the_generation() {
        let c = ConfigChanges::default();
        assert_eq!(c.current(), None, "followed before the follower started");
        c.set_followed(true);
        let first = c.current().unwrap_or_else(|| panic!("not followed"));
        assert_eq!(c.current(), Some(first), "moved without a change");
        c.bump();
        assert_eq!(c.current(), Some(first + 1));
        c.set_followed(false);
        assert_eq!(c.current(), None);
        c.set_followed(true);
        assert!(c.current().is_some_and(|g| g > first + 1));
    }

    #[test]
    fn an_old_proof_stops_following() {
        let c = ConfigChanges {
            epoch: Instant::now()
                .checked_sub(Duration::from_secs(10))
                .unwrap_or_else(Instant::now),
            ..ConfigChanges::default()
        };
        c.set_followed(true);
        assert!(c.current().is_some());
        // The last round trip was 10 s ago (the follower is stuck on a silent connection).
        c.proven_ms.store(0, Ordering::SeqCst);
        assert_eq!(c.current(), None);
        c.proven();
        assert!(c.current().is_some());
    }
}
