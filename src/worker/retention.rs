//! Retention (spec §1.3 `--retention-*`): every `--retention-period`, delete succeeded
//! deliveries older than `--retention-success-delay` and failed or cancelled ones older than
//! `--retention-failed-delay` (age = time since the row last changed), in bounded batches so no
//! transaction grows with the backlog; expire idempotency records after 24 h; drop soft-deleted
//! configs that nothing references. A zero delay keeps that class.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::delivery::DeliveryStatus;
use crate::domain::time::Timestamp;
use crate::store::{Store, StoreError};
use crate::telemetry::error_chain;

/// Rows deleted per transaction.
const BATCH: i64 = 1000;
/// How long a deleted config is kept when `--retention-failed-delay` is 0 (spec §3).
const DELETED_CONFIGS: Duration = Duration::from_secs(30 * 24 * 3600);
/// Idempotency records are honoured for 24 hours (spec §2.7).
const REPLAY_KEYS: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub period: Duration,
    pub success_delay: Duration,
    pub failed_delay: Duration,
}

/// What one purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub succeeded: usize,
    pub failed: usize,
    pub replay_requests: usize,
    pub configs: usize,
}

fn before(now: Timestamp, age: Duration) -> Timestamp {
    let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
    Timestamp::from_datetime(
        now.as_datetime()
            .checked_sub_signed(age)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
    )
}

async fn purge_class(
    store: &Store,
    statuses: &'static [DeliveryStatus],
    cutoff: Timestamp,
) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = store
            .run(move |q| Ok(q.purge_deliveries(statuses, cutoff, BATCH)?))
            .await?;
        total += n;
        if n < usize::try_from(BATCH).unwrap_or(usize::MAX) {
            return Ok(total);
        }
    }
}

impl Retention {
    /// One purge of every class, as of `now`.
    pub async fn purge_once(&self, store: &Store, now: Timestamp) -> Result<Purged, StoreError> {
        let mut purged = Purged::default();
        if !self.success_delay.is_zero() {
            purged.succeeded = purge_class(
                store,
                &[DeliveryStatus::Succeeded],
                before(now, self.success_delay),
            )
            .await?;
        }
        if !self.failed_delay.is_zero() {
            purged.failed = purge_class(
                store,
                &[DeliveryStatus::Failed, DeliveryStatus::Cancelled],
                before(now, self.failed_delay),
            )
            .await?;
        }
        let keys_before = before(now, REPLAY_KEYS);
        purged.replay_requests = store
            .run(move |q| Ok(q.purge_replay_requests(keys_before)?))
            .await?;
        // A config is kept for the failed-delay (30 days when that keeps failures forever) after
        // its deletion: long past any first attempt still in flight for it (spec §3).
        let config_age = if self.failed_delay.is_zero() {
            DELETED_CONFIGS
        } else {
            self.failed_delay
        };
        let deleted_before = before(now, config_age);
        purged.configs = store
            .run(move |q| Ok(q.purge_deleted_configs(deleted_before)?))
            .await?;
        Ok(purged)
    }

    /// Purges every `period` until `shutdown`; a zero period disables retention.
    pub async fn run(self, store: Store, shutdown: CancellationToken) {
        if self.period.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.period) => {}
            }
            match self.purge_once(&store, Timestamp::now()).await {
                Ok(p) => tracing::info!(
                    succeeded = p.succeeded,
                    failed = p.failed,
                    replay_requests = p.replay_requests,
                    configs = p.configs,
                    "retention purge"
                ),
                Err(e) => tracing::error!(error = %error_chain(&e), "retention purge failed"),
            }
        }
    }
}
