//! The writer's storage contract (spec §4.3, §4.8): deliveries are stored with their first
//! attempt exactly as given, and a re-consumed record (same delivery id) is absorbed: the
//! existing row and its history win.

use crate::both_backends;
use crate::harness::{config_row, first_attempt, refs, TestDb};
use webhooks::domain::delivery::{AttemptOutcome, DeliveryStatus};
use webhooks::domain::time::Timestamp;
use webhooks::store::model::FirstAttempt;
use webhooks::store::{Migrations, Store};

both_backends!(
    first_attempts_round_trip_and_re_consumed_rows_are_absorbed,
    |backend| async move {
        let db = TestDb::new(backend);
        let store = Store::open(&db.storage, Migrations::Apply).unwrap_or_else(|e| panic!("{e}"));
        let config = config_row();
        let config_id = config.id.clone();
        let created = Timestamp::now();
        let mut first: Vec<FirstAttempt> = (0..3)
            .map(|i| first_attempt(&config_id, i, "pending", created))
            .collect();
        // Every column distinct from its neighbours, so a column written into another shows.
        first[2].delivery.status = DeliveryStatus::Succeeded;
        first[2].delivery.next_attempt_at = None;
        first[2].delivery.last_status_code = None;
        first[2].delivery.idempotency_key = "key-2".into();
        first[2].delivery.last_error = "an error".into();
        let attempt = first[2].attempt.as_mut().unwrap_or_else(|| panic!("no attempt"));
        attempt.outcome = AttemptOutcome::Succeeded;
        attempt.status_code = 204;
        attempt.duration_ms = None;
        attempt.error = "attempt error".into();
        attempt.response_excerpt = "excerpt".into();
        // The same delivery consumed again, with another outcome: absorbed.
        let mut again = first[1].clone();
        again.delivery.status = DeliveryStatus::Succeeded;
        again.delivery.next_attempt_at = None;
        if let Some(a) = again.attempt.as_mut() {
            a.id = uuid::Uuid::new_v4().to_string();
        }
        let fresh = first_attempt(&config_id, 3, "pending", created);
        let batches = (first.clone(), vec![again, fresh.clone()]);
        store
            .run(move |q| {
                q.insert_config(&config)?;
                q.record_first_attempts(&refs(&batches.0), Timestamp::now())?;
                q.record_first_attempts(&refs(&batches.1), Timestamp::now())?;
                Ok(())
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        for written in first.iter().chain([&fresh]) {
            let (id, want) = (written.delivery.id.clone(), written.clone());
            let (row, attempts) = store
                .run(move |q| Ok((q.get_delivery(&id)?, q.attempts_of_delivery(&id)?)))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let row = row.unwrap_or_else(|| panic!("{} was not stored", want.delivery.id));
            let d = &want.delivery;
            assert_eq!(
                (
                    row.event_id.as_str(),
                    row.idempotency_key.as_str(),
                    row.config_id.as_str(),
                    row.event_type.as_str(),
                    row.payload.as_str(),
                    row.status,
                    row.last_error.as_str()
                ),
                (
                    d.event_id.as_str(),
                    d.idempotency_key.as_str(),
                    d.config_id.as_str(),
                    d.event_type.as_str(),
                    d.payload.as_str(),
                    d.status,
                    d.last_error.as_str()
                )
            );
            assert_eq!(
                (row.attempt_count, row.replay_generation, row.last_status_code),
                (d.attempt_count, d.replay_generation, d.last_status_code)
            );
            assert_eq!(
                (
                    row.first_attempt_at,
                    row.next_attempt_at,
                    row.claimed_at,
                    row.last_attempt_at,
                    row.created_at,
                    row.updated_at
                ),
                (
                    d.first_attempt_at,
                    d.next_attempt_at,
                    d.claimed_at,
                    d.last_attempt_at,
                    d.created_at,
                    d.updated_at
                )
            );
            assert_eq!(attempts.len(), 1, "attempts of {}", d.id);
            let a = want.attempt.as_ref().unwrap_or_else(|| panic!("no attempt"));
            let got = &attempts[0];
            assert_eq!(
                (
                    got.id.as_str(),
                    got.endpoint.as_str(),
                    got.outcome,
                    got.error.as_str(),
                    got.response_excerpt.as_str()
                ),
                (
                    a.id.as_str(),
                    a.endpoint.as_str(),
                    a.outcome,
                    a.error.as_str(),
                    a.response_excerpt.as_str()
                )
            );
            assert_eq!(
                (
                    got.attempt_number,
                    got.replay_generation,
                    got.status_code,
                    got.duration_ms,
                    got.created_at
                ),
                (
                    a.attempt_number,
                    a.replay_generation,
                    a.status_code,
                    a.duration_ms,
                    a.created_at
                )
            );
        }
    }
);
