//! The retry sweep's storage contract (spec §5.4): claims never overlap, leases expire, a stale
//! worker cannot overwrite a newer claim.

use std::collections::HashSet;

use crate::both_backends;
use crate::harness::{claim_limits, config_row, first_attempt, refs, TestDb};
use webhooks::domain::delivery::DeliveryStatus;
use webhooks::domain::time::Timestamp;
use webhooks::store::model::{Claimed, Completion, FirstAttempt};
use webhooks::store::{Migrations, Store};

fn open(db: &TestDb) -> Store {
    Store::open(&db.storage, Migrations::Apply).unwrap_or_else(|e| panic!("{e}"))
}

fn ago(seconds: i64) -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::seconds(seconds))
}

/// A config and `n` pending deliveries of it, all due.
async fn seed(store: &Store, n: usize) -> String {
    let config = config_row();
    let config_id = config.id.clone();
    let rows: Vec<FirstAttempt> = (0..n)
        .map(|i| first_attempt(&config_id, i, "pending", ago(10)))
        .collect();
    store
        .run(move |q| {
            q.insert_config(&config)?;
            q.record_first_attempts(&refs(&rows), Timestamp::now())?;
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    config_id
}

both_backends!(concurrent_claimers_never_share_a_row, |backend| async move {
    let db = TestDb::new(backend);
    let store = open(&db);
    seed(&store, 1000).await;
    let mut claimers = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .run(|q| Ok(q.claim_due(&claim_limits(37), Timestamp::now())?))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap_or_else(|e| panic!("{e}")));
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a row was claimed twice");
    assert_eq!(all.len(), 1000);
});

/// Seeds 3 due deliveries and claims them.
async fn three_claimed(store: &Store) -> Vec<Claimed> {
    seed(store, 3).await;
    let claimed = store
        .run(|q| Ok(q.claim_due(&claim_limits(10), Timestamp::now())?))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.len(), 3);
    claimed
}

both_backends!(stale_claims_return_to_pending, |backend| async move {
    let db = TestDb::new(backend);
    let store = open(&db);
    let claimed = three_claimed(&store).await;
    let again = store
        .run(|q| Ok(q.claim_due(&claim_limits(10), Timestamp::now())?))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.is_empty(), "leased rows were claimed again");
    // Leases younger than the cutoff stay; older ones come back.
    let kept = store
        .run(|q| Ok(q.recover_stale(ago(60), Timestamp::now())?))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kept, (0, 0));
    let cutoff = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(1));
    let recovered = store
        .run(move |q| Ok(q.recover_stale(cutoff, Timestamp::now())?))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recovered, (3, 0));
    let reclaimed = store
        .run(|q| Ok(q.claim_due(&claim_limits(10), Timestamp::now())?))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reclaimed.len(), 3);
    // The first worker's late completion no longer owns the lease: dropped, no attempt row.
    let stale = claimed[0].clone();
    let completion = Completion {
        delivery_id: stale.id.clone(),
        config_id: stale.config_id.clone(),
        claimed_at: stale.claimed_at.map(|t| t.0).unwrap_or_else(Timestamp::now),
        status: DeliveryStatus::Succeeded,
        attempt_count: 2,
        next_attempt_at: None,
        last_attempt_at: Some(Timestamp::now()),
        last_status_code: Some(200),
        last_error: String::new(),
        attempt: None,
    };
    let applied = store
        .run(move |q| Ok(q.complete_claims(&[&completion], Timestamp::now())?))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(applied.ids.is_empty(), "a stale lease overwrote a newer claim");
});

both_backends!(a_batch_of_completions_settles_each_lease, |backend| async move {
    let db = TestDb::new(backend);
    let store = open(&db);
    let claimed = three_claimed(&store).await;
    let lease = |i: usize| claimed[i].claimed_at.map(|t| t.0).unwrap_or_else(Timestamp::now);
    let called_at = Timestamp::now();
    let next = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(30));
    let mut retried_call = first_attempt(&claimed[0].config_id, 9, "pending", called_at)
        .attempt
        .unwrap_or_else(|| panic!("no attempt"));
    retried_call.delivery_id = claimed[0].id.clone();
    retried_call.attempt_number = 2;
    retried_call.status_code = 0;
    let batch = vec![
        // A call that failed without a response: retried later, no status code.
        Completion {
            delivery_id: claimed[0].id.clone(),
            config_id: claimed[0].config_id.clone(),
            claimed_at: lease(0),
            status: DeliveryStatus::Pending,
            attempt_count: 2,
            next_attempt_at: Some(next),
            last_attempt_at: Some(called_at),
            last_status_code: None,
            last_error: "connection refused".into(),
            attempt: Some(retried_call),
        },
        // Given up before calling: the last call's facts stay.
        Completion {
            delivery_id: claimed[1].id.clone(),
            config_id: claimed[1].config_id.clone(),
            claimed_at: lease(1),
            status: DeliveryStatus::Failed,
            attempt_count: 1,
            next_attempt_at: None,
            last_attempt_at: None,
            last_status_code: None,
            last_error: "abort-after elapsed".into(),
            attempt: None,
        },
        // Another worker's lease (a different claimed_at): ignored.
        Completion {
            delivery_id: claimed[2].id.clone(),
            config_id: claimed[2].config_id.clone(),
            claimed_at: ago(3600),
            status: DeliveryStatus::Succeeded,
            attempt_count: 2,
            next_attempt_at: None,
            last_attempt_at: Some(called_at),
            last_status_code: Some(200),
            last_error: String::new(),
            attempt: None,
        },
    ];
    let applied = store
        .run(move |q| Ok(q.complete_claims(&refs(&batch), Timestamp::now())?))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(applied.ids.len(), 2);
    let ids: Vec<String> = claimed.iter().map(|c| c.id.clone()).collect();
    let (rows, attempts) = store
        .run(move |q| {
            let mut rows = Vec::new();
            let mut attempts = Vec::new();
            for id in &ids {
                rows.push(q.get_delivery(id)?.unwrap_or_else(|| panic!("{id} is gone")));
                attempts.push(q.attempts_of_delivery(id)?.len());
            }
            Ok((rows, attempts))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let retried = &rows[0];
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert_eq!(retried.attempt_count, 2);
    assert_eq!(retried.next_attempt_at.map(|t| t.0), Some(next));
    assert_eq!(retried.last_attempt_at.map(|t| t.0), Some(called_at));
    assert_eq!(retried.last_status_code, None);
    assert_eq!(retried.last_error, "connection refused");
    assert_eq!(retried.claimed_at, None);

    let given_up = &rows[1];
    assert_eq!(given_up.status, DeliveryStatus::Failed);
    assert_eq!(given_up.attempt_count, 1);
    assert_eq!(given_up.next_attempt_at, None);
    assert_eq!(
        given_up.last_status_code,
        Some(500),
        "the last call's status was overwritten"
    );
    assert!(
        given_up.last_attempt_at.is_some(),
        "the last call's time was erased"
    );
    assert_eq!(given_up.last_error, "abort-after elapsed");

    let other = &rows[2];
    assert_eq!(
        other.status,
        DeliveryStatus::Delivering,
        "another worker's lease was settled"
    );
    assert_eq!(other.claimed_at.map(|t| t.0), Some(lease(2)));

    assert_eq!(attempts, vec![2, 1, 1], "attempt rows per delivery");
});
