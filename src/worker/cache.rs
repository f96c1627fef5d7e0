//! The in-memory index of active configs that matching reads (no database query per event).
//!
//! It follows changes four ways: before each record is matched, a check that no config change
//! was learnt of since the last load (an atomic read; a change made through this process's API
//! is thus seen by the next record matched after the API answered); a signal from the API of
//! this process (`serve --worker`) or from the store's PostgreSQL listener (other processes'
//! changes, within milliseconds); a check every 250 ms of the store's config generation, or of
//! the configs table's fingerprint while the store does not follow every change; and a full
//! reload every minute as a safety net.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::domain::config::Config;
use crate::domain::time::Timestamp;
use crate::store::Store;

const POLL: Duration = Duration::from_millis(250);
const FULL_RELOAD: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Index {
    exact: HashMap<String, Vec<Arc<Config>>>,
    /// (prefix, config): `ledger.*` is stored as `ledger.`, `*` as the empty prefix.
    wildcards: Vec<(String, Arc<Config>)>,
}

impl Index {
    fn build(configs: Vec<Config>) -> Index {
        let mut index = Index::default();
        for config in configs {
            let config = Arc::new(config);
            for pattern in &config.event_types {
                if let Some(prefix) = pattern
                    .strip_suffix('*')
                    .filter(|p| p.is_empty() || p.ends_with('.'))
                {
                    index.wildcards.push((prefix.to_owned(), Arc::clone(&config)));
                } else {
                    index
                        .exact
                        .entry(pattern.clone())
                        .or_default()
                        .push(Arc::clone(&config));
                }
            }
        }
        index
    }
}

/// What the configs looked like at the last load: the store's count of config changes while it
/// follows every change (see `store/changes.rs`; no query), else the table's fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Generation(u64),
    Fingerprint((Option<Timestamp>, i64)),
}

/// Shared, cheaply readable index.
#[derive(Debug, Default)]
pub struct ConfigCache {
    index: RwLock<Arc<Index>>,
    /// [`Store::config_changes_seen`] when the index was last loaded.
    loaded_at_change: AtomicU64,
}

impl ConfigCache {
    /// Configs matching a normalised event type, one entry per config.
    pub fn matching(&self, event_type: &str) -> Vec<Arc<Config>> {
        let index = self.index.read().map(|i| Arc::clone(&i)).unwrap_or_default();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let exact = index.exact.get(event_type).into_iter().flatten();
        let wild = index
            .wildcards
            .iter()
            .filter(|(prefix, _)| event_type.starts_with(prefix.as_str()))
            .map(|(_, c)| c);
        for config in exact.chain(wild) {
            if seen.insert(config.id.as_str()) {
                out.push(Arc::clone(config));
            }
        }
        out
    }

    /// Ids of the configs in the index.
    pub fn ids(&self) -> HashSet<String> {
        let index = self.index.read().map(|i| Arc::clone(&i)).unwrap_or_default();
        index
            .exact
            .values()
            .flatten()
            .chain(index.wildcards.iter().map(|(_, c)| c))
            .map(|c| c.id.clone())
            .collect()
    }

    fn replace(&self, configs: Vec<Config>) {
        let index = Arc::new(Index::build(configs));
        if let Ok(mut slot) = self.index.write() {
            *slot = index;
        }
    }

    /// Loads once (errors propagate: the worker cannot match without configs).
    pub async fn load(&self, store: &Store) -> Result<(), crate::store::StoreError> {
        // Read before loading: a change after this point makes the next check reload again.
        let seen = store.config_changes_seen();
        let configs = store.run(|q| Ok(q.active_configs()?)).await?;
        self.replace(configs);
        self.loaded_at_change.store(seen, Ordering::SeqCst);
        Ok(())
    }

    /// Reloads first when this process learnt of a config change since the last load (spec
    /// §2.5, §4.4). A failed reload keeps the current index; it is tried again next time.
    pub async fn ensure_current(&self, store: &Store) {
        if store.config_changes_seen() == self.loaded_at_change.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = self.load(store).await {
            tracing::error!(error = %crate::telemetry::error_chain(&e), "config cache: reload failed");
        }
    }

    /// Keeps the index current until `shutdown`.
    pub async fn follow(self: Arc<Self>, store: Store, shutdown: CancellationToken) {
        let changes = store.config_changes();
        let mut last: Option<Seen> = None;
        let mut last_full = Instant::now();
        loop {
            let nudged = tokio::select! {
                () = shutdown.cancelled() => return,
                () = changes.notified() => true,
                () = tokio::time::sleep(POLL) => false,
            };
            // Read before loading: a change after this point shows at the next poll.
            let seen = match store.config_generation() {
                Some(generation) => Seen::Generation(generation),
                None => match store.run(|q| Ok(q.configs_fingerprint()?)).await {
                    Ok(f) => Seen::Fingerprint(f),
                    Err(e) => {
                        tracing::error!(error = %crate::telemetry::error_chain(&e), "config cache: cannot poll configs");
                        continue;
                    }
                },
            };
            let stale = nudged || last != Some(seen) || last_full.elapsed() >= FULL_RELOAD;
            if !stale {
                continue;
            }
            match self.load(&store).await {
                Ok(()) => {
                    last = Some(seen);
                    last_full = Instant::now();
                }
                Err(e) => {
                    tracing::error!(error = %crate::telemetry::error_chain(&e), "config cache: reload failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str, types: &[&str]) -> Config {
        let now = Timestamp::now();
        Config {
            endpoint: "https://x".into(),
            secret: "s".into(),
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            id: id.into(),
            active: true,
            name: None,
            created_at: now,
            updated_at: now,
            previous_secret: None,
        }
    }

    fn ids(cache: &ConfigCache, t: &str) -> Vec<String> {
        let mut v: Vec<String> = cache.matching(t).iter().map(|c| c.id.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn exact_and_wildcard_matches_one_per_config() {
        let cache = ConfigCache::default();
        cache.replace(vec![
            config("a", &["ledger.committed_transactions", "ledger.*"]),
            config("b", &["ledger.*"]),
            config("c", &["*"]),
            config("d", &["payments.x"]),
        ]);
        assert_eq!(ids(&cache, "ledger.committed_transactions"), ["a", "b", "c"]);
        assert_eq!(ids(&cache, "ledger.saved_metadata"), ["a", "b", "c"]);
        assert_eq!(ids(&cache, "ledger"), ["c"]);
        assert_eq!(ids(&cache, "payments.x"), ["c", "d"]);
        assert_eq!(ids(&cache, "payments.y"), ["c"]);
    }

    #[test]
    fn star_inside_a_type_is_literal() {
        let cache = ConfigCache::default();
        cache.replace(vec![config("a", &["led*"])]);
        assert!(ids(&cache, "ledger").is_empty());
        assert_eq!(ids(&cache, "led*"), ["a"]);
    }
}
