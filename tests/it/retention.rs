//! Retention deletes what it should and nothing else, on both backends (rows dated in the past).

use std::time::Duration;

use crate::both_backends;
use crate::harness::{config_row, first_attempt, refs, TestDb};
use webhooks::domain::time::Timestamp;
use webhooks::store::{Migrations, Store};
use webhooks::worker::retention::{Purged, Retention};

fn days_ago(d: i64) -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::days(d))
}

const HOUR: u64 = 3600;

both_backends!(purges_old_final_deliveries_only, |backend| async move {
    let db = TestDb::new(backend);
    let store = Store::open(&db.storage, Migrations::Apply).unwrap_or_else(|e| panic!("{e}"));
    let (live, gone) = (config_row(), config_row());
    let (live_id, gone_id) = (live.id.clone(), gone.id.clone());
    // (status, age in days, expected to survive with success 30 d / failed 90 d)
    let cases = [
        ("succeeded", 31, false),
        ("succeeded", 29, true),
        ("failed", 91, false),
        ("cancelled", 91, false),
        ("failed", 89, true),
        ("pending", 400, true),
    ];
    let rows: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (status, age, _))| first_attempt(&live_id, i, status, days_ago(*age)))
        .collect();
    let old_succeeded_of_deleted = vec![first_attempt(&gone_id, 100, "succeeded", days_ago(60))];
    store
        .run(move |q| {
            q.insert_config(&live)?;
            q.insert_config(&gone)?;
            q.record_first_attempts(&refs(&rows), Timestamp::now())?;
            q.record_first_attempts(&refs(&old_succeeded_of_deleted), Timestamp::now())?;
            Ok(q.delete_config(&gone_id, Timestamp::now())?)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let retention = Retention {
        period: Duration::from_secs(HOUR),
        success_delay: Duration::from_secs(720 * HOUR),
        failed_delay: Duration::from_secs(2160 * HOUR),
    };
    let purged = retention
        .purge_once(&store, Timestamp::now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The deleted config lost its last delivery, but was deleted just now: a first attempt
    // still in flight for it may yet write its delivery, so it stays (spec §3).
    assert_eq!(
        purged,
        Purged {
            succeeded: 2,
            failed: 2,
            replay_requests: 0,
            configs: 0
        }
    );
    let id = live_id.clone();
    let left = store
        .run(move |q| Ok(q.deliveries_of_config(&id)?))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut kept: Vec<String> = left.iter().map(|d| d.event_id.clone()).collect();
    kept.sort();
    let mut expected: Vec<String> = cases
        .iter()
        .enumerate()
        .filter(|(_, c)| c.2)
        .map(|(i, _)| format!("t/0/{i}"))
        .collect();
    expected.sort();
    assert_eq!(kept, expected);
    // Attempts went with their deliveries; the survivors keep theirs.
    for d in &left {
        let id = d.id.clone();
        let attempts = store
            .run(move |q| Ok(q.attempts_of_delivery(&id)?))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(attempts.len(), 1);
    }
    // Zero delays keep everything; a second pass has nothing left to do.
    let keep_all = Retention {
        success_delay: Duration::ZERO,
        failed_delay: Duration::ZERO,
        ..retention
    };
    let again = keep_all
        .purge_once(
            &store,
            Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::days(1000)),
        )
        .await;
    assert_eq!(
        again.map(|p| (p.succeeded + p.failed, p.configs)).ok(),
        Some((0, 1)),
        "once deleted for longer than 30 days (failed delay 0), an unreferenced config goes"
    );
});

both_backends!(
    a_deleted_config_is_kept_for_the_failed_delay,
    |backend| async move {
        let db = TestDb::new(backend);
        let store = Store::open(&db.storage, Migrations::Apply).unwrap_or_else(|e| panic!("{e}"));
        let config = config_row();
        let id = config.id.clone();
        store
            .run(move |q| {
                q.insert_config(&config)?;
                Ok(q.delete_config(&id, Timestamp::now())?)
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let retention = Retention {
            period: Duration::from_secs(HOUR),
            success_delay: Duration::from_secs(720 * HOUR),
            failed_delay: Duration::from_secs(48 * HOUR),
        };
        let at = |days: i64| Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::days(days));
        let purged = |days| {
            let store = store.clone();
            async move {
                retention
                    .purge_once(&store, at(days))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .configs
            }
        };
        assert_eq!(purged(1).await, 0, "deleted one day ago, failed delay two days");
        assert_eq!(purged(3).await, 1);
    }
);

both_backends!(idempotency_records_expire_after_a_day, |backend| async move {
    let db = TestDb::new(backend);
    let store = Store::open(&db.storage, Migrations::Apply).unwrap_or_else(|e| panic!("{e}"));
    let config = config_row();
    let row = first_attempt(&config.id, 0, "failed", days_ago(3));
    let id = row.delivery.id.clone();
    store
        .run(move |q| {
            q.insert_config(&config)?;
            Ok(q.record_first_attempts(&[&row], Timestamp::now())?)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let replay = |hash: &'static str, at: Timestamp| {
        let (store, id) = (store.clone(), id.clone());
        async move {
            store
                .run(move |q| Ok(q.replay_delivery("k", hash, &id, at, &|d| d.status.as_str().to_owned())?))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    use webhooks::store::ReplayOutcome;
    assert_eq!(
        replay("h1", days_ago(2)).await,
        ReplayOutcome::Replayed("pending".into())
    );
    // Within its day the key answers from the record; a day later it is gone and reusable.
    assert_eq!(
        replay("h1", days_ago(2)).await,
        ReplayOutcome::Cached("pending".into())
    );
    assert_eq!(replay("h2", days_ago(2)).await, ReplayOutcome::KeyConflict);
    let retention = Retention {
        period: Duration::from_secs(HOUR),
        success_delay: Duration::ZERO,
        failed_delay: Duration::ZERO,
    };
    let purged = retention
        .purge_once(&store, Timestamp::now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(purged.replay_requests, 1);
    assert_eq!(
        replay("h2", Timestamp::now()).await,
        ReplayOutcome::Replayed("pending".into())
    );
});
