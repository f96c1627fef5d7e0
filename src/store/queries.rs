//! The queries, written once and compiled for both backends by `backend_queries!`.
//!
//! Where the SQL must differ (write transactions, notifications), each backend passes its own
//! helper to the macro; everything else is one diesel expression checked against both backends.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use std::collections::HashSet;

use crate::domain::config::{Config, PreviousSecret};
use crate::domain::time::Timestamp;
use crate::store::model::{
    AttemptRow, Claimed, Completion, DeliveryRow, FirstAttempt, NewAttempt, NewDelivery,
};
use crate::store::schema::{attempts, configs, deliveries, replay_requests};
use crate::store::types::{DbList, DbTime, Ts};
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

/// Exact-match filters of `GET /configs`.
#[derive(Debug, Clone, Default)]
pub struct ConfigFilter {
    pub id: Option<String>,
    pub endpoint: Option<String>,
}

/// Everything the service asks of the database. Object-safe so one `&mut dyn Queries` serves
/// both connection types.
/// Filters and page of `GET /deliveries` (newest first, keyset on `(created_at, id)`).
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub config_id: Option<String>,
    pub status: Option<String>,
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
    /// Only rows strictly before this `(created_at, id)`.
    pub before: Option<(Timestamp, String)>,
    pub limit: i64,
}

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
    pub statuses: Vec<String>,
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

pub trait Queries {
    fn ping(&mut self) -> QueryResult<()>;
    /// Live (not deleted) configs, newest `updated_at` first.
    fn list_configs(&mut self, filter: &ConfigFilter) -> QueryResult<Vec<Config>>;
    /// A live config by id.
    fn get_config(&mut self, id: &str) -> QueryResult<Option<Config>>;
    fn insert_config(&mut self, config: &Config) -> QueryResult<()>;
    /// Replaces endpoint and event types (and the secret when given); false when unknown.
    fn update_config(
        &mut self,
        id: &str,
        endpoint: &str,
        event_types: &[String],
        secret: Option<&str>,
        now: Timestamp,
    ) -> QueryResult<bool>;
    /// Soft delete; cancels the config's pending deliveries in the same transaction.
    fn delete_config(&mut self, id: &str, now: Timestamp) -> QueryResult<bool>;
    /// Sets `active` unless already so; None when unknown.
    fn set_config_active(&mut self, id: &str, active: bool, now: Timestamp) -> QueryResult<Option<Config>>;
    /// Sets the secret unless it is already the current one; None when unknown. With
    /// `keep_previous_until`, the replaced secret keeps signing until then (spec §2.5), replacing
    /// any secret kept by an earlier change; without, no previous secret is kept.
    fn change_config_secret(
        &mut self,
        id: &str,
        secret: &str,
        keep_previous_until: Option<Timestamp>,
        now: Timestamp,
    ) -> QueryResult<Option<Config>>;

    /// Active, live configs: what the worker matches events against.
    fn active_configs(&mut self) -> QueryResult<Vec<Config>>;
    /// Changes whenever any config changes (latest `updated_at`, row count): a cheap poll.
    fn configs_fingerprint(&mut self) -> QueryResult<(Option<Timestamp>, i64)>;
    /// Writes deliveries with their first attempt in one transaction. A delivery that already
    /// exists (a re-consumed record) wins: neither it nor its history is touched.
    fn record_first_attempts(&mut self, batch: &[FirstAttempt], now: Timestamp) -> QueryResult<()>;
    /// Returns leases older than `cutoff` to `pending` (due now); cancels pending rows of
    /// deleted configs. Returns the number of leases recovered.
    fn recover_stale(&mut self, cutoff: Timestamp, now: Timestamp) -> QueryResult<usize>;
    /// Claims up to `limit` due deliveries of active configs (lease = `now`).
    fn claim_due(&mut self, limit: i64, now: Timestamp) -> QueryResult<Vec<Claimed>>;
    /// Applies completions whose lease is still theirs; returns how many applied.
    fn complete_claims(&mut self, batch: &[Completion], now: Timestamp) -> QueryResult<usize>;
    /// The earliest `next_attempt_at` among claimable rows.
    fn next_due(&mut self) -> QueryResult<Option<Timestamp>>;
    /// Deliveries of a config, oldest first.
    fn deliveries_of_config(&mut self, config_id: &str) -> QueryResult<Vec<DeliveryRow>>;
    /// Attempts of a delivery, in call order.
    fn attempts_of_delivery(&mut self, delivery_id: &str) -> QueryResult<Vec<AttemptRow>>;
    /// Deliveries in `status` (the pending gauge, the benchmark).
    fn count_with_status(&mut self, status: &str) -> QueryResult<i64>;
    /// A page of deliveries, newest first.
    fn list_deliveries(&mut self, filter: &DeliveryFilter) -> QueryResult<Vec<DeliveryRow>>;
    fn get_delivery(&mut self, id: &str) -> QueryResult<Option<DeliveryRow>>;
    /// A page of a delivery's attempts, newest first, strictly before `before`.
    fn list_attempts(
        &mut self,
        delivery_id: &str,
        before: Option<(Timestamp, String)>,
        limit: i64,
    ) -> QueryResult<Vec<AttemptRow>>;
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
    /// [`Queries::replay_delivery`]); never `NotFound` or `NotReplayable`.
    fn bulk_replay(
        &mut self,
        key: &str,
        request_hash: &str,
        request: &BulkReplay,
        now: Timestamp,
        render: &dyn Fn(&BulkReplayed) -> String,
    ) -> QueryResult<ReplayOutcome>;
    /// Deletes up to `limit` deliveries in one of `statuses` last updated before `before`
    /// (their attempts go with them); returns how many.
    fn purge_deliveries(&mut self, statuses: &[&str], before: Timestamp, limit: i64) -> QueryResult<usize>;
    /// Deletes idempotency records created before `before`.
    fn purge_replay_requests(&mut self, before: Timestamp) -> QueryResult<usize>;
    /// Deletes soft-deleted configs that no delivery references any more.
    fn purge_deleted_configs(&mut self) -> QueryResult<usize>;
}

/// Leases settled per statement (9 parameters each): well under SQLite's and PostgreSQL's
/// bound-parameter limits.
const SETTLE_CHUNK: usize = 500;

/// Settles a batch of leases in one statement: row i of the `VALUES` list carries
/// (id, claimed_at, status, next_attempt_at, last_error, attempt_count, last_attempt_at,
/// last_status_code, made a call); parameter 1 is `now`. A row changes only while its lease is
/// the one completed (`delivering`, same `claimed_at`); without a call the last call's facts stay
/// as they were. `mark` is the backend's numbered-parameter sign (`$` or `?`).
fn settle_sql(rows: usize, mark: char) -> String {
    const COLUMNS: usize = 9;
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = (0..COLUMNS)
                .map(|c| format!("{mark}{}", 2 + r * COLUMNS + c))
                .collect();
            format!("({})", params.join(", "))
        })
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

/// A row id returned by a raw statement.
#[derive(QueryableByName)]
struct RowId {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = configs)]
struct ConfigRow {
    id: String,
    endpoint: String,
    secret: String,
    event_types: DbList,
    active: bool,
    name: Option<String>,
    created_at: DbTime,
    updated_at: DbTime,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<DbTime>,
}

impl From<ConfigRow> for Config {
    fn from(r: ConfigRow) -> Self {
        Config {
            endpoint: r.endpoint,
            secret: r.secret,
            event_types: r.event_types.0,
            id: r.id,
            active: r.active,
            name: r.name,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            previous_secret: PreviousSecret::from_columns(
                r.previous_secret,
                r.previous_secret_expires_at.map(|t| t.0),
            ),
        }
    }
}

macro_rules! backend_queries {
    ($conn:ty, $write_tx:ident, $configs_changed:path, $insert_deliveries:path, $insert_attempts:path, $lock_key:path, $mark:literal, [$($lock:tt)*], [$($row_lock:tt)*]) => {
        /// The stored answer for `key` when it is younger than 24 h: the response itself for
        /// the same request, a conflict for another. An expired record is removed. Call under
        /// `lock_key` in a write transaction.
        fn stored_replay(
            conn: &mut $conn,
            key: &str,
            request_hash: &str,
            now: Timestamp,
        ) -> QueryResult<Option<ReplayOutcome>> {
            let day_ago = Timestamp::from_datetime(now.as_datetime() - chrono::Duration::hours(24));
            let stored: Option<(String, String, DbTime)> = replay_requests::table
                .filter(replay_requests::key.eq(key))
                .select((replay_requests::request_hash, replay_requests::response, replay_requests::created_at))
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
            diesel::delete(replay_requests::table.filter(replay_requests::key.eq(key))).execute(conn)?;
            Ok(None)
        }

        fn store_replay(
            conn: &mut $conn,
            key: &str,
            request_hash: &str,
            response: String,
            now: Timestamp,
        ) -> QueryResult<ReplayOutcome> {
            diesel::insert_into(replay_requests::table)
                .values((
                    replay_requests::key.eq(key),
                    replay_requests::request_hash.eq(request_hash),
                    replay_requests::response.eq(&response),
                    replay_requests::created_at.eq(DbTime(now)),
                ))
                .execute(conn)?;
            Ok(ReplayOutcome::Replayed(response))
        }

        /// The replay transition of one delivery, applied only if the row still has the
        /// `status` and `updated_at` it was read with: `failed` starts a new generation due
        /// now, `pending` becomes due now. False when nothing changed.
        fn replay_row(
            conn: &mut $conn,
            id: &str,
            status: &str,
            generation: i64,
            updated_at: DbTime,
            now: Timestamp,
        ) -> QueryResult<bool> {
            let target = deliveries::table
                .filter(deliveries::id.eq(id))
                .filter(deliveries::status.eq(status))
                .filter(deliveries::updated_at.eq(updated_at));
            let changed = match status {
                "failed" => diesel::update(target)
                    .set((
                        deliveries::status.eq("pending"),
                        deliveries::replay_generation.eq(generation + 1),
                        deliveries::attempt_count.eq(0),
                        deliveries::first_attempt_at.eq(None::<DbTime>),
                        deliveries::claimed_at.eq(None::<DbTime>),
                        deliveries::next_attempt_at.eq(Some(DbTime(now))),
                        deliveries::updated_at.eq(DbTime(now)),
                    ))
                    .execute(conn)?,
                "pending" => diesel::update(target)
                    .set((
                        deliveries::next_attempt_at.eq(Some(DbTime(now))),
                        deliveries::updated_at.eq(DbTime(now)),
                    ))
                    .execute(conn)?,
                _ => 0,
            };
            Ok(changed > 0)
        }

        fn live_config(conn: &mut $conn, id: &str) -> QueryResult<Option<Config>> {
            configs::table
                .filter(configs::id.eq(id))
                .filter(configs::deleted_at.is_null())
                .select(ConfigRow::as_select())
                .first::<ConfigRow>(conn)
                .optional()
                .map(|row| row.map(Config::from))
        }

        /// Deliveries among `ids` that did not succeed and whose config was deleted meanwhile
        /// end `cancelled` (spec §2.5, §5.4).
        fn cancel_if_config_deleted(conn: &mut $conn, ids: &[&str], now: Timestamp) -> QueryResult<()> {
            // Checked on the small configs table first: the update below filters `deliveries`
            // by a list of ids, which PostgreSQL may plan as a scan of the whole table.
            let any_deleted = diesel::select(diesel::dsl::exists(
                configs::table.filter(configs::deleted_at.is_not_null()),
            ))
            .get_result::<bool>(conn)?;
            if ids.is_empty() || !any_deleted {
                return Ok(());
            }
            diesel::update(
                deliveries::table
                    .filter(deliveries::id.eq_any(ids))
                    .filter(deliveries::status.ne("succeeded"))
                    .filter(deliveries::config_id.eq_any(
                        configs::table.select(configs::id).filter(configs::deleted_at.is_not_null()),
                    )),
            )
            .set((
                deliveries::status.eq("cancelled"),
                deliveries::next_attempt_at.eq(None::<DbTime>),
                deliveries::updated_at.eq(DbTime(now)),
            ))
            .execute(conn)?;
            Ok(())
        }

        /// Looks up a live config and, unless `unchanged`, writes and applies a change to it
        /// (in the caller's transaction). None when unknown.
        fn change_live_config(
            conn: &mut $conn,
            id: &str,
            unchanged: impl Fn(&Config) -> bool,
            write: impl FnOnce(&mut $conn) -> QueryResult<usize>,
            apply: impl FnOnce(&mut Config),
        ) -> QueryResult<Option<Config>> {
            let Some(mut config) = live_config(conn, id)? else {
                return Ok(None);
            };
            if unchanged(&config) {
                return Ok(Some(config));
            }
            write(conn)?;
            $configs_changed(conn)?;
            apply(&mut config);
            Ok(Some(config))
        }

        impl Queries for $conn {
            fn ping(&mut self) -> QueryResult<()> {
                configs::table
                    .select(configs::id)
                    .filter(configs::id.eq(""))
                    .first::<String>(self)
                    .optional()
                    .map(|_| ())
            }

            fn list_configs(&mut self, filter: &ConfigFilter) -> QueryResult<Vec<Config>> {
                let mut q = configs::table
                    .filter(configs::deleted_at.is_null())
                    .select(ConfigRow::as_select())
                    .order((configs::updated_at.desc(), configs::id.desc()))
                    .into_boxed();
                if let Some(id) = &filter.id {
                    q = q.filter(configs::id.eq(id.clone()));
                }
                if let Some(endpoint) = &filter.endpoint {
                    q = q.filter(configs::endpoint.eq(endpoint.clone()));
                }
                Ok(q.load::<ConfigRow>(self)?
                    .into_iter()
                    .map(Config::from)
                    .collect())
            }

            fn get_config(&mut self, id: &str) -> QueryResult<Option<Config>> {
                live_config(self, id)
            }

            fn insert_config(&mut self, c: &Config) -> QueryResult<()> {
                self.$write_tx(|conn| {
                    diesel::insert_into(configs::table)
                        .values((
                            configs::id.eq(&c.id),
                            configs::endpoint.eq(&c.endpoint),
                            configs::secret.eq(&c.secret),
                            configs::event_types.eq(DbList(c.event_types.clone())),
                            configs::active.eq(c.active),
                            configs::name.eq(&c.name),
                            configs::created_at.eq(DbTime(c.created_at)),
                            configs::updated_at.eq(DbTime(c.updated_at)),
                        ))
                        .execute(conn)?;
                    $configs_changed(conn)
                })
            }

            fn update_config(
                &mut self,
                id: &str,
                endpoint: &str,
                event_types: &[String],
                secret: Option<&str>,
                now: Timestamp,
            ) -> QueryResult<bool> {
                self.$write_tx(|conn| {
                    let target = configs::table
                        .filter(configs::id.eq(id))
                        .filter(configs::deleted_at.is_null());
                    let changes = (
                        configs::endpoint.eq(endpoint),
                        configs::event_types.eq(DbList(event_types.to_vec())),
                        configs::updated_at.eq(DbTime(now)),
                    );
                    let n = match secret {
                        Some(secret) => diesel::update(target)
                            .set((changes, configs::secret.eq(secret)))
                            .execute(conn)?,
                        None => diesel::update(target).set(changes).execute(conn)?,
                    };
                    if n > 0 {
                        $configs_changed(conn)?;
                    }
                    Ok(n > 0)
                })
            }

            fn delete_config(&mut self, id: &str, now: Timestamp) -> QueryResult<bool> {
                self.$write_tx(|conn| {
                    let n = diesel::update(
                        configs::table
                            .filter(configs::id.eq(id))
                            .filter(configs::deleted_at.is_null()),
                    )
                    .set((
                        configs::active.eq(false),
                        configs::deleted_at.eq(Some(DbTime(now))),
                        configs::updated_at.eq(DbTime(now)),
                    ))
                    .execute(conn)?;
                    if n == 0 {
                        return Ok(false);
                    }
                    diesel::update(
                        deliveries::table
                            .filter(deliveries::config_id.eq(id))
                            .filter(deliveries::status.eq("pending")),
                    )
                    .set((
                        deliveries::status.eq("cancelled"),
                        deliveries::next_attempt_at.eq(None::<DbTime>),
                        deliveries::updated_at.eq(DbTime(now)),
                    ))
                    .execute(conn)?;
                    $configs_changed(conn)?;
                    Ok(true)
                })
            }

            fn set_config_active(
                &mut self,
                id: &str,
                active: bool,
                now: Timestamp,
            ) -> QueryResult<Option<Config>> {
                self.$write_tx(|conn| {
                    change_live_config(
                        conn,
                        id,
                        |c| c.active == active,
                        |conn| {
                            diesel::update(configs::table.filter(configs::id.eq(id)))
                                .set((configs::active.eq(active), configs::updated_at.eq(DbTime(now))))
                                .execute(conn)
                        },
                        |c| {
                            c.active = active;
                            c.updated_at = now;
                        },
                    )
                })
            }

            fn change_config_secret(
                &mut self,
                id: &str,
                secret: &str,
                keep_previous_until: Option<Timestamp>,
                now: Timestamp,
            ) -> QueryResult<Option<Config>> {
                self.$write_tx(|conn| {
                    change_live_config(
                        conn,
                        id,
                        |c| c.secret == secret,
                        |conn| {
                            let target = diesel::update(configs::table.filter(configs::id.eq(id)));
                            let changes = (configs::secret.eq(secret), configs::updated_at.eq(DbTime(now)));
                            match keep_previous_until {
                                // The right-hand side reads the row as it was: the secret replaced.
                                Some(until) => target
                                    .set((
                                        changes,
                                        configs::previous_secret.eq(configs::secret.nullable()),
                                        configs::previous_secret_expires_at.eq(Some(DbTime(until))),
                                    ))
                                    .execute(conn),
                                None => target
                                    .set((
                                        changes,
                                        configs::previous_secret.eq(None::<String>),
                                        configs::previous_secret_expires_at.eq(None::<DbTime>),
                                    ))
                                    .execute(conn),
                            }
                        },
                        |c| {
                            let replaced = std::mem::replace(&mut c.secret, secret.to_owned());
                            c.previous_secret = keep_previous_until.map(|expires_at| PreviousSecret {
                                secret: replaced,
                                expires_at,
                            });
                            c.updated_at = now;
                        },
                    )
                })
            }

            fn active_configs(&mut self) -> QueryResult<Vec<Config>> {
                Ok(configs::table
                    .filter(configs::deleted_at.is_null())
                    .filter(configs::active.eq(true))
                    .select(ConfigRow::as_select())
                    .load::<ConfigRow>(self)?
                    .into_iter()
                    .map(Config::from)
                    .collect())
            }

            fn configs_fingerprint(&mut self) -> QueryResult<(Option<Timestamp>, i64)> {
                let (latest, count): (Option<DbTime>, i64) = configs::table
                    .select((diesel::dsl::max(configs::updated_at), diesel::dsl::count_star()))
                    .first(self)?;
                Ok((latest.map(|t| t.0), count))
            }

            fn record_first_attempts(&mut self, batch: &[FirstAttempt], now: Timestamp) -> QueryResult<()> {
                self.$write_tx(|conn| {
                    // A delivery that exists already (a re-consumed record) keeps its row and
                    // history: only the attempts of rows inserted now are written.
                    let deliveries: Vec<&NewDelivery> = batch.iter().map(|f| &f.delivery).collect();
                    let inserted: HashSet<String> = $insert_deliveries(conn, &deliveries)?;
                    if inserted.is_empty() {
                        return Ok(());
                    }
                    let attempts: Vec<&NewAttempt> = batch
                        .iter()
                        .filter(|f| inserted.contains(&f.delivery.id))
                        .map(|f| &f.attempt)
                        .collect();
                    $insert_attempts(conn, &attempts)?;
                    // A config deleted while the first call was in flight: its delivery ends here.
                    let ids: Vec<&str> = inserted.iter().map(String::as_str).collect();
                    cancel_if_config_deleted(conn, &ids, now)
                })
            }

            fn recover_stale(&mut self, cutoff: Timestamp, now: Timestamp) -> QueryResult<usize> {
                self.$write_tx(|conn| {
                    let recovered = diesel::update(
                        deliveries::table
                            .filter(deliveries::status.eq("delivering"))
                            .filter(deliveries::claimed_at.lt(DbTime(cutoff))),
                    )
                    .set((
                        deliveries::status.eq("pending"),
                        deliveries::next_attempt_at.eq(Some(DbTime(now))),
                        deliveries::claimed_at.eq(None::<DbTime>),
                        deliveries::updated_at.eq(DbTime(now)),
                    ))
                    .execute(conn)?;
                    diesel::update(
                        deliveries::table.filter(deliveries::status.eq("pending")).filter(
                            deliveries::config_id.eq_any(
                                configs::table.select(configs::id).filter(configs::deleted_at.is_not_null()),
                            ),
                        ),
                    )
                    .set((
                        deliveries::status.eq("cancelled"),
                        deliveries::next_attempt_at.eq(None::<DbTime>),
                        deliveries::updated_at.eq(DbTime(now)),
                    ))
                    .execute(conn)?;
                    Ok(recovered)
                })
            }

            fn claim_due(&mut self, limit: i64, now: Timestamp) -> QueryResult<Vec<Claimed>> {
                self.$write_tx(|conn| {
                    let ids: Vec<String> = deliveries::table
                        .select(deliveries::id)
                        .filter(deliveries::status.eq("pending"))
                        .filter(deliveries::next_attempt_at.le(DbTime(now)))
                        .filter(deliveries::config_id.eq_any(
                            configs::table
                                .select(configs::id)
                                .filter(configs::active.eq(true))
                                .filter(configs::deleted_at.is_null()),
                        ))
                        .order((deliveries::next_attempt_at.asc(), deliveries::id.asc()))
                        .limit(limit)
                        $($lock)*
                        .load(conn)?;
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    diesel::update(deliveries::table.filter(deliveries::id.eq_any(&ids)))
                        .set((
                            deliveries::status.eq("delivering"),
                            deliveries::claimed_at.eq(Some(DbTime(now))),
                            deliveries::updated_at.eq(DbTime(now)),
                        ))
                        .execute(conn)?;
                    diesel::update(
                        deliveries::table
                            .filter(deliveries::id.eq_any(&ids))
                            .filter(deliveries::first_attempt_at.is_null()),
                    )
                    .set(deliveries::first_attempt_at.eq(Some(DbTime(now))))
                    .execute(conn)?;
                    deliveries::table
                        .inner_join(configs::table)
                        .filter(deliveries::id.eq_any(&ids))
                        .select((
                            deliveries::id,
                            deliveries::idempotency_key,
                            deliveries::payload,
                            deliveries::attempt_count,
                            deliveries::replay_generation,
                            deliveries::first_attempt_at,
                            deliveries::next_attempt_at,
                            deliveries::claimed_at,
                            deliveries::config_id,
                            configs::endpoint,
                            configs::secret,
                            configs::previous_secret,
                            configs::previous_secret_expires_at,
                        ))
                        .load::<Claimed>(conn)
                })
            }

            fn complete_claims(&mut self, batch: &[Completion], now: Timestamp) -> QueryResult<usize> {
                self.$write_tx(|conn| {
                    let mut applied: Vec<&str> = Vec::with_capacity(batch.len());
                    for chunk in batch.chunks(SETTLE_CHUNK) {
                        let mut q = diesel::sql_query(settle_sql(chunk.len(), $mark))
                            .into_boxed::<<$conn as diesel::Connection>::Backend>()
                            .bind::<Ts, _>(DbTime(now));
                        for c in chunk {
                            q = q
                                .bind::<Text, _>(&c.delivery_id)
                                .bind::<Ts, _>(DbTime(c.claimed_at))
                                .bind::<Text, _>(c.status)
                                .bind::<Nullable<Ts>, _>(c.next_attempt_at.map(DbTime))
                                .bind::<Text, _>(&c.last_error)
                                .bind::<BigInt, _>(c.attempt_count)
                                .bind::<Nullable<Ts>, _>(c.last_attempt_at.map(DbTime))
                                .bind::<Nullable<BigInt>, _>(c.last_status_code)
                                .bind::<Bool, _>(c.attempt.is_some());
                        }
                        let settled: HashSet<String> =
                            q.load::<RowId>(conn)?.into_iter().map(|r| r.id).collect();
                        let settled: Vec<&Completion> =
                            chunk.iter().filter(|c| settled.contains(&c.delivery_id)).collect();
                        let attempts: Vec<&NewAttempt> = settled.iter().filter_map(|c| c.attempt.as_ref()).collect();
                        $insert_attempts(conn, &attempts)?;
                        applied.extend(settled.iter().map(|c| c.delivery_id.as_str()));
                    }
                    cancel_if_config_deleted(conn, &applied, now)?;
                    Ok(applied.len())
                })
            }

            fn replay_delivery(
                &mut self,
                key: &str,
                request_hash: &str,
                id: &str,
                now: Timestamp,
                render: &dyn Fn(DeliveryRow) -> String,
            ) -> QueryResult<ReplayOutcome> {
                self.$write_tx(|conn| {
                    $lock_key(conn, key)?;
                    if let Some(stored) = stored_replay(conn, key, request_hash, now)? {
                        return Ok(stored);
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
                    if !live || !replay_row(conn, id, &row.status, row.replay_generation, row.updated_at, now)? {
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
                self.$write_tx(|conn| {
                    $lock_key(conn, key)?;
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
                        .filter(deliveries::status.eq_any(&r.statuses))
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
                        if !replay_row(conn, &id, &status, generation, updated_at, now)? {
                            done.skipped += 1;
                        } else if status == "failed" {
                            done.replayed += 1;
                        } else {
                            done.expedited += 1;
                        }
                        done.last = Some((created_at.0, id));
                    }
                    store_replay(conn, key, request_hash, render(&done), now)
                })
            }

            fn purge_deliveries(&mut self, statuses: &[&str], before: Timestamp, limit: i64) -> QueryResult<usize> {
                self.$write_tx(|conn| {
                    let ids: Vec<String> = deliveries::table
                        .select(deliveries::id)
                        .filter(deliveries::status.eq_any(statuses))
                        .filter(deliveries::updated_at.lt(DbTime(before)))
                        .limit(limit)
                        .load(conn)?;
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    diesel::delete(attempts::table.filter(attempts::delivery_id.eq_any(&ids))).execute(conn)?;
                    diesel::delete(deliveries::table.filter(deliveries::id.eq_any(&ids))).execute(conn)
                })
            }

            fn purge_replay_requests(&mut self, before: Timestamp) -> QueryResult<usize> {
                diesel::delete(replay_requests::table.filter(replay_requests::created_at.lt(DbTime(before))))
                    .execute(self)
            }

            fn purge_deleted_configs(&mut self) -> QueryResult<usize> {
                diesel::delete(
                    configs::table
                        .filter(configs::deleted_at.is_not_null())
                        .filter(diesel::dsl::not(diesel::dsl::exists(
                            deliveries::table.filter(deliveries::config_id.eq(configs::id)),
                        ))),
                )
                .execute(self)
            }

            fn list_deliveries(&mut self, f: &DeliveryFilter) -> QueryResult<Vec<DeliveryRow>> {
                let mut q = deliveries::table.select(DeliveryRow::as_select()).into_boxed();
                if let Some(c) = &f.config_id {
                    q = q.filter(deliveries::config_id.eq(c.clone()));
                }
                if let Some(s) = &f.status {
                    q = q.filter(deliveries::status.eq(s.clone()));
                }
                if let Some(t) = f.created_from {
                    q = q.filter(deliveries::created_at.ge(DbTime(t)));
                }
                if let Some(t) = f.created_to {
                    q = q.filter(deliveries::created_at.le(DbTime(t)));
                }
                if let Some((t, id)) = &f.before {
                    q = q.filter(
                        deliveries::created_at
                            .lt(DbTime(*t))
                            .or(deliveries::created_at.eq(DbTime(*t)).and(deliveries::id.lt(id.clone()))),
                    );
                }
                q.order((deliveries::created_at.desc(), deliveries::id.desc()))
                    .limit(f.limit)
                    .load(self)
            }

            fn get_delivery(&mut self, id: &str) -> QueryResult<Option<DeliveryRow>> {
                deliveries::table
                    .filter(deliveries::id.eq(id))
                    .select(DeliveryRow::as_select())
                    .first(self)
                    .optional()
            }

            fn list_attempts(
                &mut self,
                delivery_id: &str,
                before: Option<(Timestamp, String)>,
                limit: i64,
            ) -> QueryResult<Vec<AttemptRow>> {
                let mut q = attempts::table
                    .filter(attempts::delivery_id.eq(delivery_id.to_owned()))
                    .select(AttemptRow::as_select())
                    .into_boxed();
                if let Some((t, id)) = before {
                    q = q.filter(
                        attempts::created_at
                            .lt(DbTime(t))
                            .or(attempts::created_at.eq(DbTime(t)).and(attempts::id.lt(id))),
                    );
                }
                q.order((attempts::created_at.desc(), attempts::id.desc()))
                    .limit(limit)
                    .load(self)
            }

            fn count_with_status(&mut self, status: &str) -> QueryResult<i64> {
                deliveries::table
                    .filter(deliveries::status.eq(status))
                    .count()
                    .get_result(self)
            }

            fn deliveries_of_config(&mut self, config_id: &str) -> QueryResult<Vec<DeliveryRow>> {
                deliveries::table
                    .filter(deliveries::config_id.eq(config_id))
                    .order((deliveries::created_at.asc(), deliveries::id.asc()))
                    .select(DeliveryRow::as_select())
                    .load(self)
            }

            fn attempts_of_delivery(&mut self, delivery_id: &str) -> QueryResult<Vec<AttemptRow>> {
                attempts::table
                    .filter(attempts::delivery_id.eq(delivery_id))
                    .order((attempts::replay_generation.asc(), attempts::attempt_number.asc()))
                    .select(AttemptRow::as_select())
                    .load(self)
            }

            fn next_due(&mut self) -> QueryResult<Option<Timestamp>> {
                let due: Option<DbTime> = deliveries::table
                    .select(diesel::dsl::min(deliveries::next_attempt_at))
                    .filter(deliveries::status.eq("pending"))
                    .filter(deliveries::config_id.eq_any(
                        configs::table
                            .select(configs::id)
                            .filter(configs::active.eq(true))
                            .filter(configs::deleted_at.is_null()),
                    ))
                    .first(self)?;
                Ok(due.map(|t| t.0))
            }
        }
    };
}

mod postgres {
    use super::*;

    /// Tells other processes (the workers' config caches) that configs changed; delivered only
    /// if the transaction commits.
    fn notify(conn: &mut PgConnection) -> QueryResult<()> {
        diesel::sql_query(format!(
            "SELECT pg_notify('{}', '')",
            crate::store::changes::CHANNEL
        ))
        .execute(conn)?;
        Ok(())
    }

    /// Serialises requests for one idempotency key until the transaction ends.
    fn lock_key(conn: &mut PgConnection, key: &str) -> QueryResult<()> {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind::<diesel::sql_types::Text, _>(key)
            .execute(conn)?;
        Ok(())
    }

    /// One `INSERT … SELECT FROM unnest(<one array per column>)` per batch: the statement text
    /// is the same whatever the batch size, so PostgreSQL parses and plans a few lines instead
    /// of a `VALUES` list with one parameter per value (17 per row). A row that exists already
    /// (written earlier or by another worker) is absorbed: the conflict target is the primary
    /// key, which is derived from `(event_id, config_id)` (§4.3), so only one index is probed.
    /// Returns the ids actually inserted.
    fn insert_deliveries(conn: &mut PgConnection, rows: &[&NewDelivery]) -> QueryResult<HashSet<String>> {
        use diesel::sql_types::Array;
        if rows.is_empty() {
            return Ok(HashSet::new());
        }
        let text = |f: fn(&NewDelivery) -> &str| rows.iter().map(|r| f(r)).collect::<Vec<&str>>();
        let int = |f: fn(&NewDelivery) -> i64| rows.iter().map(|r| f(r)).collect::<Vec<i64>>();
        let time = |f: fn(&NewDelivery) -> Option<DbTime>| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
        let inserted = diesel::sql_query(
            "INSERT INTO deliveries (id, event_id, idempotency_key, config_id, event_type, payload, \
             status, last_error, attempt_count, replay_generation, last_status_code, \
             first_attempt_at, next_attempt_at, claimed_at, last_attempt_at, created_at, updated_at) \
             SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .bind::<Array<Text>, _>(text(|r| &r.id))
        .bind::<Array<Text>, _>(text(|r| &r.event_id))
        .bind::<Array<Text>, _>(text(|r| &r.idempotency_key))
        .bind::<Array<Text>, _>(text(|r| &r.config_id))
        .bind::<Array<Text>, _>(text(|r| &r.event_type))
        .bind::<Array<Text>, _>(text(|r| &r.payload))
        .bind::<Array<Text>, _>(text(|r| r.status))
        .bind::<Array<Text>, _>(text(|r| &r.last_error))
        .bind::<Array<BigInt>, _>(int(|r| r.attempt_count))
        .bind::<Array<BigInt>, _>(int(|r| r.replay_generation))
        .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.last_status_code).collect::<Vec<_>>())
        .bind::<Array<Nullable<Ts>>, _>(time(|r| r.first_attempt_at))
        .bind::<Array<Nullable<Ts>>, _>(time(|r| r.next_attempt_at))
        .bind::<Array<Nullable<Ts>>, _>(time(|r| r.claimed_at))
        .bind::<Array<Nullable<Ts>>, _>(time(|r| r.last_attempt_at))
        .bind::<Array<Ts>, _>(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind::<Array<Ts>, _>(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .load::<RowId>(conn)?;
        Ok(inserted.into_iter().map(|r| r.id).collect())
    }

    /// As [`insert_deliveries`]; an attempt already recorded under its natural key is absorbed.
    fn insert_attempts(conn: &mut PgConnection, rows: &[&NewAttempt]) -> QueryResult<()> {
        use diesel::sql_types::Array;
        if rows.is_empty() {
            return Ok(());
        }
        let text = |f: fn(&NewAttempt) -> &str| rows.iter().map(|r| f(r)).collect::<Vec<&str>>();
        let int = |f: fn(&NewAttempt) -> i64| rows.iter().map(|r| f(r)).collect::<Vec<i64>>();
        diesel::sql_query(
            "INSERT INTO attempts (id, delivery_id, endpoint, outcome, error, response_excerpt, \
             attempt_number, replay_generation, status_code, duration_ms, created_at) \
             SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (delivery_id, replay_generation, attempt_number) DO NOTHING",
        )
        .bind::<Array<Text>, _>(text(|r| &r.id))
        .bind::<Array<Text>, _>(text(|r| &r.delivery_id))
        .bind::<Array<Text>, _>(text(|r| &r.endpoint))
        .bind::<Array<Text>, _>(text(|r| r.outcome))
        .bind::<Array<Text>, _>(text(|r| &r.error))
        .bind::<Array<Text>, _>(text(|r| &r.response_excerpt))
        .bind::<Array<BigInt>, _>(int(|r| r.attempt_number))
        .bind::<Array<BigInt>, _>(int(|r| r.replay_generation))
        .bind::<Array<BigInt>, _>(int(|r| r.status_code))
        .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
        .bind::<Array<Ts>, _>(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .execute(conn)?;
        Ok(())
    }

    backend_queries!(
        PgConnection,
        transaction,
        notify,
        insert_deliveries,
        insert_attempts,
        lock_key,
        '$',
        [.for_update().skip_locked()],
        [.for_update()]
    );
}

mod sqlite {
    use super::*;

    /// SQLite serves one process, which is told in-process instead.
    fn notify(_conn: &mut SqliteConnection) -> QueryResult<()> {
        Ok(())
    }

    /// SQLite's write transaction (BEGIN IMMEDIATE) already serialises every writer.
    fn lock_key(_conn: &mut SqliteConnection, _key: &str) -> QueryResult<()> {
        Ok(())
    }

    /// One prepared statement per row inside the caller's transaction: SQLite has no DEFAULT
    /// keyword for diesel's multi-row form, and single-row inserts in one transaction are cheap.
    fn insert_deliveries(conn: &mut SqliteConnection, rows: &[&NewDelivery]) -> QueryResult<HashSet<String>> {
        let mut inserted = HashSet::with_capacity(rows.len());
        for row in rows {
            let written = diesel::insert_into(deliveries::table)
                .values(*row)
                .on_conflict_do_nothing()
                .execute(conn)?;
            if written > 0 {
                inserted.insert(row.id.clone());
            }
        }
        Ok(inserted)
    }

    fn insert_attempts(conn: &mut SqliteConnection, rows: &[&NewAttempt]) -> QueryResult<()> {
        for row in rows {
            diesel::insert_into(attempts::table)
                .values(*row)
                .on_conflict_do_nothing()
                .execute(conn)?;
        }
        Ok(())
    }

    backend_queries!(
        SqliteConnection,
        immediate_transaction,
        notify,
        insert_deliveries,
        insert_attempts,
        lock_key,
        '?',
        [],
        []
    );
}
