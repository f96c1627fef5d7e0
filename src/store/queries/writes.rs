//! The worker's durable write path (spec §4.8, §5.4 step 4): deliveries with their first
//! outcome, and the completions of the sweep's leases, many per transaction.
//!
//! Both report what they applied, so the caller counts final states once (spec §8.1): a
//! re-consumed record's delivery that exists already, or a completion whose lease was lost, is
//! not applied and not counted; a delivery whose config was deleted meanwhile is `cancelled`.

use std::collections::HashSet;

use diesel::prelude::*;

use crate::domain::time::Timestamp;
use crate::store::model::{Completion, FirstAttempt};

/// What one write changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Deliveries this write inserted (first attempts) or settled (completions).
    pub ids: HashSet<String>,
    /// Among them, those ended `cancelled` because their config was deleted meanwhile.
    pub cancelled: HashSet<String>,
}

pub trait Writes {
    /// Writes deliveries with their first attempt (if a call was made) in one transaction. A
    /// delivery that exists already (a re-consumed record) wins: neither it nor its history is
    /// touched, and it is not in the result.
    fn record_first_attempts(&mut self, batch: &[&FirstAttempt], now: Timestamp) -> QueryResult<Applied>;
    /// Applies completions whose lease is still theirs, in one transaction.
    fn complete_claims(&mut self, batch: &[&Completion], now: Timestamp) -> QueryResult<Applied>;
}

/// Leases settled per statement (9 parameters each): well under SQLite's and PostgreSQL's
/// bound-parameter limits.
pub(super) const SETTLE_CHUNK: usize = 500;

/// Settles a batch of leases in one statement: row i of the `VALUES` list carries
/// (id, claimed_at, status, next_attempt_at, last_error, attempt_count, last_attempt_at,
/// last_status_code, made a call); parameter 1 is `now`. A row changes only while its lease is
/// the one completed (`delivering`, same `claimed_at`); without a call the last call's facts stay
/// as they were. `mark` is the backend's numbered-parameter sign (`$` or `?`).
pub(super) fn settle_sql(rows: usize, mark: char) -> String {
    const COLUMNS: usize = 9;
    let values: Vec<String> = (0..rows)
        .map(|r| format!("({})", super::params(mark, 2 + r * COLUMNS, COLUMNS)))
        .collect();
    format!(
        "UPDATE deliveries SET status = v.column3, next_attempt_at = v.column4, claimed_at = NULL, \
         last_error = v.column5, updated_at = {mark}1, attempt_count = v.column6, \
         last_attempt_at = CASE WHEN v.column9 THEN v.column7 ELSE deliveries.last_attempt_at END, \
         last_status_code = CASE WHEN v.column9 THEN v.column8 ELSE deliveries.last_status_code END \
         FROM (VALUES {}) AS v \
         WHERE deliveries.id = v.column1 AND deliveries.status = 'delivering' \
         AND deliveries.claimed_at = v.column2 \
         RETURNING deliveries.id",
        values.join(", ")
    )
}

macro_rules! write_queries {
    () => {
        /// Deliveries among `ids` that did not succeed and whose config was deleted meanwhile
        /// end `cancelled` (spec §2.5, §5.4); returns those.
        fn cancel_if_config_deleted(
            conn: &mut Conn,
            ids: &[&str],
            now: Timestamp,
        ) -> QueryResult<HashSet<String>> {
            use crate::store::schema::{configs, deliveries};
            // Checked on the small configs table first: the update below filters `deliveries`
            // by a list of ids, which PostgreSQL may plan as a scan of the whole table.
            let any_deleted = diesel::select(diesel::dsl::exists(
                configs::table.filter(configs::deleted_at.is_not_null()),
            ))
            .get_result::<bool>(conn)?;
            if ids.is_empty() || !any_deleted {
                return Ok(HashSet::new());
            }
            let cancelled: Vec<String> = diesel::update(
                deliveries::table
                    .filter(deliveries::id.eq_any(ids))
                    .filter(deliveries::status.ne(DeliveryStatus::Succeeded.as_str()))
                    .filter(
                        deliveries::config_id.eq_any(
                            configs::table
                                .select(configs::id)
                                .filter(configs::deleted_at.is_not_null()),
                        ),
                    ),
            )
            .set((
                deliveries::status.eq(DeliveryStatus::Cancelled.as_str()),
                deliveries::next_attempt_at.eq(None::<DbTime>),
                deliveries::updated_at.eq(DbTime(now)),
            ))
            .returning(deliveries::id)
            .get_results(conn)?;
            Ok(cancelled.into_iter().collect())
        }

        impl Writes for Conn {
            fn record_first_attempts(
                &mut self,
                batch: &[&FirstAttempt],
                now: Timestamp,
            ) -> QueryResult<Applied> {
                write_tx(self, |conn| {
                    // A delivery that exists already (a re-consumed record) keeps its row and
                    // history: only the attempts of rows inserted now are written.
                    let deliveries: Vec<&NewDelivery> = batch.iter().map(|f| &f.delivery).collect();
                    let inserted: HashSet<String> = insert_deliveries(conn, &deliveries)?;
                    if inserted.is_empty() {
                        return Ok(Applied::default());
                    }
                    let attempts: Vec<&NewAttempt> = batch
                        .iter()
                        .filter(|f| inserted.contains(&f.delivery.id))
                        .filter_map(|f| f.attempt.as_ref())
                        .collect();
                    insert_attempts(conn, &attempts)?;
                    // A config deleted while the first call was in flight: its delivery ends here.
                    let ids: Vec<&str> = inserted.iter().map(String::as_str).collect();
                    let cancelled = cancel_if_config_deleted(conn, &ids, now)?;
                    Ok(Applied {
                        ids: inserted,
                        cancelled,
                    })
                })
            }

            fn complete_claims(&mut self, batch: &[&Completion], now: Timestamp) -> QueryResult<Applied> {
                use crate::store::types::Ts;
                use diesel::sql_types::{BigInt, Bool, Nullable, Text};
                write_tx(self, |conn| {
                    let mut applied: HashSet<String> = HashSet::with_capacity(batch.len());
                    for chunk in batch.chunks(SETTLE_CHUNK) {
                        let mut q = diesel::sql_query(settle_sql(chunk.len(), MARK))
                            .into_boxed::<<Conn as diesel::Connection>::Backend>()
                            .bind::<Ts, _>(DbTime(now));
                        for c in chunk {
                            q = q
                                .bind::<Text, _>(&c.delivery_id)
                                .bind::<Ts, _>(DbTime(c.claimed_at))
                                .bind::<Text, _>(c.status.as_str())
                                .bind::<Nullable<Ts>, _>(c.next_attempt_at.map(DbTime))
                                .bind::<Text, _>(&c.last_error)
                                .bind::<BigInt, _>(c.attempt_count)
                                .bind::<Nullable<Ts>, _>(c.last_attempt_at.map(DbTime))
                                .bind::<Nullable<BigInt>, _>(c.last_status_code)
                                .bind::<Bool, _>(c.attempt.is_some());
                        }
                        let settled: HashSet<String> =
                            q.load::<RowId>(conn)?.into_iter().map(|r| r.id).collect();
                        let attempts: Vec<&NewAttempt> = chunk
                            .iter()
                            .filter(|c| settled.contains(&c.delivery_id))
                            .filter_map(|c| c.attempt.as_ref())
                            .collect();
                        insert_attempts(conn, &attempts)?;
                        applied.extend(settled);
                    }
                    let ids: Vec<&str> = applied.iter().map(String::as_str).collect();
                    let cancelled = cancel_if_config_deleted(conn, &ids, now)?;
                    Ok(Applied {
                        ids: applied,
                        cancelled,
                    })
                })
            }
        }
    };
}
pub(super) use write_queries;
