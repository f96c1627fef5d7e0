//! Replay (spec §2.7): one delivery or a page of them, under an idempotency key whose answer is
//! kept for 24 h. Both run in one write transaction serialised per key (`lock_key`), and lock the
//! rows they change, so concurrent replays apply once.

use diesel::prelude::*;

use crate::domain::delivery::DeliveryStatus;
use crate::domain::time::Timestamp;
use crate::store::model::DeliveryRow;

/// What a single replay did (spec §2.7); the caller renders the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// Same key and request within 24 h: the stored response, unchanged.
    Cached(String),
    /// Same key, another request, within 24 h.
    KeyConflict,
    NotFound,
    /// Succeeded, delivering or cancelled, or its config is inactive or deleted.
    NotReplayable,
    /// Applied; the rendered response was stored under the key.
    Replayed(String),
}

/// One page of a bulk replay (spec §2.7): oldest first, strictly after `after`.
#[derive(Debug, Clone)]
pub struct BulkReplay {
    pub from: Timestamp,
    pub to: Timestamp,
    pub statuses: Vec<DeliveryStatus>,
    /// Empty: every config.
    pub config_ids: Vec<String>,
    pub after: Option<(Timestamp, String)>,
    pub limit: i64,
}

/// What one bulk replay page did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkReplayed {
    pub replayed: usize,
    pub expedited: usize,
    pub skipped: usize,
    pub has_more: bool,
    /// `(created_at, id)` of the page's last row: where the next page starts.
    pub last: Option<(Timestamp, String)>,
}

pub trait Replay {
    /// Replays one delivery under an idempotency key, in one transaction serialised per key.
    /// `render` turns the updated delivery into the response stored for later calls.
    fn replay_delivery(
        &mut self,
        key: &str,
        request_hash: &str,
        id: &str,
        now: Timestamp,
        render: &dyn Fn(DeliveryRow) -> String,
    ) -> QueryResult<ReplayOutcome>;
    /// Replays one page of deliveries under an idempotency key (same key space and rules as
    /// [`Replay::replay_delivery`]); never `NotFound` or `NotReplayable`.
    fn bulk_replay(
        &mut self,
        key: &str,
        request_hash: &str,
        request: &BulkReplay,
        now: Timestamp,
        render: &dyn Fn(&BulkReplayed) -> String,
    ) -> QueryResult<ReplayOutcome>;
}

macro_rules! replay_queries {
    ([$($row_lock:tt)*]) => {
        /// The stored answer for `key` when it is younger than 24 h: the response itself for
        /// the same request, a conflict for another. An expired record is removed. Call under
        /// `lock_key` in a write transaction.
        fn stored_replay(
            conn: &mut Conn,
            key: &str,
            request_hash: &str,
            now: Timestamp,
        ) -> QueryResult<Option<ReplayOutcome>> {
            let day_ago = Timestamp::from_datetime(now.as_datetime() - chrono::Duration::hours(24));
            let stored: Option<(String, String, DbTime)> = crate::store::schema::replay_requests::table
                .filter(crate::store::schema::replay_requests::key.eq(key))
                .select((crate::store::schema::replay_requests::request_hash, crate::store::schema::replay_requests::response, crate::store::schema::replay_requests::created_at))
                .first(conn)
                .optional()?;
            let Some((hash, response, created)) = stored else {
                return Ok(None);
            };
            if created.0 > day_ago {
                return Ok(Some(if hash == request_hash {
                    ReplayOutcome::Cached(response)
                } else {
                    ReplayOutcome::KeyConflict
                }));
            }
            diesel::delete(crate::store::schema::replay_requests::table.filter(crate::store::schema::replay_requests::key.eq(key))).execute(conn)?;
            Ok(None)
        }

        fn store_replay(
            conn: &mut Conn,
            key: &str,
            request_hash: &str,
            response: String,
            now: Timestamp,
        ) -> QueryResult<ReplayOutcome> {
            diesel::insert_into(crate::store::schema::replay_requests::table)
                .values((
                    crate::store::schema::replay_requests::key.eq(key),
                    crate::store::schema::replay_requests::request_hash.eq(request_hash),
                    crate::store::schema::replay_requests::response.eq(&response),
                    crate::store::schema::replay_requests::created_at.eq(DbTime(now)),
                ))
                .execute(conn)?;
            Ok(ReplayOutcome::Replayed(response))
        }

        /// The replay transition of one delivery, applied only if the row still has the
        /// `status` and `updated_at` it was read with: `failed` starts a new generation due
        /// now, `pending` becomes due now. False when nothing changed.
        fn replay_row(
            conn: &mut Conn,
            id: &str,
            status: DeliveryStatus,
            generation: i64,
            updated_at: DbTime,
            now: Timestamp,
        ) -> QueryResult<bool> {
            let target = crate::store::schema::deliveries::table
                .filter(deliveries::id.eq(id))
                .filter(deliveries::status.eq(status.as_str()))
                .filter(deliveries::updated_at.eq(updated_at));
            let changed = match status {
                DeliveryStatus::Failed => diesel::update(target)
                    .set((
                        deliveries::status.eq(DeliveryStatus::Pending.as_str()),
                        deliveries::replay_generation.eq(generation + 1),
                        deliveries::attempt_count.eq(0),
                        deliveries::first_attempt_at.eq(None::<DbTime>),
                        deliveries::claimed_at.eq(None::<DbTime>),
                        deliveries::next_attempt_at.eq(Some(DbTime(now))),
                        deliveries::updated_at.eq(DbTime(now)),
                    ))
                    .execute(conn)?,
                DeliveryStatus::Pending => diesel::update(target)
                    .set((
                        deliveries::next_attempt_at.eq(Some(DbTime(now))),
                        deliveries::updated_at.eq(DbTime(now)),
                    ))
                    .execute(conn)?,
                _ => 0,
            };
            Ok(changed > 0)
        }

        impl Replay for Conn {
            fn replay_delivery(
                &mut self,
                key: &str,
                request_hash: &str,
                id: &str,
                now: Timestamp,
                render: &dyn Fn(DeliveryRow) -> String,
            ) -> QueryResult<ReplayOutcome> {
                use crate::store::schema::{configs, deliveries};
                write_tx(self, |conn| {
                    lock_key(conn, key)?;
                    if let Some(stored) = stored_replay(conn, key, request_hash, now)? {
                        return Ok(stored);
                    }
                    if unmatchable(id) {
                        return Ok(ReplayOutcome::NotFound);
                    }
                    // Locked: a concurrent replay under another key waits and sees this one's result.
                    let Some(row) = deliveries::table
                        .filter(deliveries::id.eq(id))
                        .select(DeliveryRow::as_select())
                        $($row_lock)*
                        .first(conn)
                        .optional()?
                    else {
                        return Ok(ReplayOutcome::NotFound);
                    };
                    let live = configs::table
                        .filter(configs::id.eq(&row.config_id))
                        .filter(configs::active.eq(true))
                        .filter(configs::deleted_at.is_null())
                        .count()
                        .get_result::<i64>(conn)?
                        > 0;
                    if !live || !replay_row(conn, id, row.status, row.replay_generation, row.updated_at, now)? {
                        return Ok(ReplayOutcome::NotReplayable);
                    }
                    let row = deliveries::table
                        .filter(deliveries::id.eq(id))
                        .select(DeliveryRow::as_select())
                        .first(conn)?;
                    store_replay(conn, key, request_hash, render(row), now)
                })
            }

            fn bulk_replay(
                &mut self,
                key: &str,
                request_hash: &str,
                r: &BulkReplay,
                now: Timestamp,
                render: &dyn Fn(&BulkReplayed) -> String,
            ) -> QueryResult<ReplayOutcome> {
                use crate::store::schema::{configs, deliveries};
                write_tx(self, |conn| {
                    lock_key(conn, key)?;
                    if let Some(stored) = stored_replay(conn, key, request_hash, now)? {
                        return Ok(stored);
                    }
                    let mut live = configs::table
                        .select(configs::id)
                        .filter(configs::active.eq(true))
                        .filter(configs::deleted_at.is_null())
                        .into_boxed();
                    if !r.config_ids.is_empty() {
                        live = live.filter(configs::id.eq_any(r.config_ids.clone()));
                    }
                    // The first page starts before every row of the window (ids are never empty).
                    let (after_at, after_id) = r.after.clone().unwrap_or((r.from, String::new()));
                    let rows: Vec<(String, String, i64, DbTime, DbTime)> = deliveries::table
                        .select((
                            deliveries::id,
                            deliveries::status,
                            deliveries::replay_generation,
                            deliveries::created_at,
                            deliveries::updated_at,
                        ))
                        .filter(deliveries::config_id.eq_any(live))
                        .filter(deliveries::created_at.ge(DbTime(r.from)))
                        .filter(deliveries::created_at.le(DbTime(r.to)))
                        .filter(deliveries::status.eq_any(r.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>()))
                        .filter(
                            deliveries::created_at
                                .gt(DbTime(after_at))
                                .or(deliveries::created_at.eq(DbTime(after_at)).and(deliveries::id.gt(after_id))),
                        )
                        .order((deliveries::created_at.asc(), deliveries::id.asc()))
                        .limit(r.limit + 1)
                        $($row_lock)*
                        .load(conn)?;
                    let limit = usize::try_from(r.limit).unwrap_or(usize::MAX);
                    let mut done = BulkReplayed {
                        has_more: rows.len() > limit,
                        ..BulkReplayed::default()
                    };
                    for (id, status, generation, created_at, updated_at) in rows.into_iter().take(limit) {
                        let status: DeliveryStatus = status
                            .parse()
                            .map_err(|e: UnknownStatus| diesel::result::Error::DeserializationError(e.into()))?;
                        if !replay_row(conn, &id, status, generation, updated_at, now)? {
                            done.skipped += 1;
                        } else if status == DeliveryStatus::Failed {
                            done.replayed += 1;
                        } else {
                            done.expedited += 1;
                        }
                        done.last = Some((created_at.0, id));
                    }
                    store_replay(conn, key, request_hash, render(&done), now)
                })
            }

        }
    };
}
pub(super) use replay_queries;
