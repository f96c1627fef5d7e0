//! The retry sweep's queries (spec §5.4): stale lease recovery, fair claims under the per-config
//! limits of endpoint isolation and circuits (§10.1, §10.2), and the next due time.
//!
//! A claim picks due rows oldest first, at most `total` of them and, per config, at most that
//! config's free slots; among the picked rows, the n-th row of every config comes before the
//! (n+1)-th row of any, so one config with a deep backlog never takes every slot. Configs with no
//! free slot (busy, circuit open, probe in flight) are left out entirely, so their due rows never
//! hide other configs' rows.
//!
//! PostgreSQL picks per active config, each from its own range of the partial index
//! `deliveries_pending_by_config`: a claim reads about what it takes, whatever the backlog
//! (a scan of the earliest due rows joined to the configs was planned as a sequential scan of
//! every pending row, 70 ms per claim with 100,000 due rows). SQLite, one process by design,
//! scans the earliest due rows of claimable configs and ranks them.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use diesel::sqlite::SqliteConnection;

use crate::domain::time::Timestamp;
use crate::store::model::Claimed;
use crate::store::types::{DbTime, Ts};

/// How many rows a claim may take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimLimits {
    /// Free global slots (`--delivery-concurrency` minus calls in flight).
    pub total: i64,
    /// Free slots of a config not listed in `capped` (`--endpoint-concurrency`).
    pub per_config: i64,
    /// Configs with fewer free slots than `per_config`; 0 leaves the config out.
    pub capped: Vec<(String, i64)>,
}

impl ClaimLimits {
    /// Configs whose rows cannot be claimed now.
    pub fn excluded(&self) -> Vec<String> {
        self.capped
            .iter()
            .filter(|(_, cap)| *cap <= 0)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// How many due rows SQLite scans to pick `total`: enough that configs at their cap leave
    /// room for others, bounded so a claim stays a short statement.
    fn scan(&self) -> i64 {
        self.total
            .saturating_mul(4)
            .clamp(self.total, self.total.max(8000))
    }
}

pub trait Claims {
    /// Returns leases older than `cutoff` to `pending` (due now); cancels pending rows of
    /// deleted configs. Returns (leases recovered, rows cancelled).
    fn recover_stale(&mut self, cutoff: Timestamp, now: Timestamp) -> QueryResult<(usize, usize)>;
    /// Claims due deliveries of active configs within `limits` (lease = `now`), with their
    /// config's current endpoint and secret.
    fn claim_due(&mut self, limits: &ClaimLimits, now: Timestamp) -> QueryResult<Vec<Claimed>>;
    /// The earliest `next_attempt_at` among pending rows of active configs not in `excluded`.
    fn next_due(&mut self, excluded: &[String]) -> QueryResult<Option<Timestamp>>;
    /// Deliveries in `status` (the pending gauge, the benchmark).
    fn count_with_status(&mut self, status: crate::domain::delivery::DeliveryStatus) -> QueryResult<i64>;
}

/// The claim's lease: `first_attempt_at` starts the generation's window at its first call.
/// `$1`/`?1` is `now`.
fn lease(mark: char) -> String {
    format!(
        "status = 'delivering', claimed_at = {mark}1, updated_at = {mark}1, \
         first_attempt_at = COALESCE(first_attempt_at, {mark}1)"
    )
}

/// PostgreSQL: one statement. `$1` now, `$2` total, `$3` the per-config default, `$4`/`$5` the
/// capped configs and their caps. Picked rows another worker has locked, or claimed meanwhile,
/// are skipped (only those are locked: a row lock is a write), and the update joins the configs
/// to return the endpoint and secrets of the call.
pub(super) fn claim_postgres(
    conn: &mut PgConnection,
    limits: &ClaimLimits,
    now: Timestamp,
) -> QueryResult<Vec<Claimed>> {
    let sql = format!(
        "WITH caps AS (SELECT * FROM unnest($4::text[], $5::bigint[]) AS c(config_id, cap)), \
         cfg AS (SELECT c.id, COALESCE(caps.cap, $3) AS cap FROM configs c \
           LEFT JOIN caps ON caps.config_id = c.id \
           WHERE c.active AND c.deleted_at IS NULL AND COALESCE(caps.cap, $3) > 0), \
         picked AS (SELECT x.id FROM cfg CROSS JOIN LATERAL ( \
             SELECT d.id, d.next_attempt_at, \
               row_number() OVER (ORDER BY d.next_attempt_at, d.id) AS rn \
             FROM deliveries d \
             WHERE d.config_id = cfg.id AND d.status = 'pending' AND d.next_attempt_at <= $1 \
             ORDER BY d.next_attempt_at, d.id LIMIT cfg.cap) x \
           ORDER BY x.rn, x.next_attempt_at, x.id LIMIT $2), \
         locked AS (SELECT id FROM deliveries WHERE id IN (SELECT id FROM picked) \
           AND status = 'pending' FOR UPDATE SKIP LOCKED) \
         UPDATE deliveries SET {} FROM locked, configs \
         WHERE deliveries.id = locked.id AND configs.id = deliveries.config_id \
         RETURNING deliveries.id, deliveries.idempotency_key, deliveries.payload, \
         deliveries.attempt_count, deliveries.replay_generation, deliveries.first_attempt_at, \
         deliveries.next_attempt_at, deliveries.claimed_at, deliveries.config_id, \
         configs.endpoint, configs.secret, configs.previous_secret, configs.previous_secret_expires_at",
        lease('$')
    );
    let (ids, caps): (Vec<&str>, Vec<i64>) =
        limits.capped.iter().map(|(id, cap)| (id.as_str(), *cap)).unzip();
    diesel::sql_query(sql)
        .bind::<Ts, _>(DbTime(now))
        .bind::<BigInt, _>(limits.total)
        .bind::<BigInt, _>(limits.per_config)
        .bind::<Array<Text>, _>(ids)
        .bind::<Array<BigInt>, _>(caps)
        .load::<Claimed>(conn)
}

/// SQLite: `?1` now, `?2` total, `?3` scan, `?4` the per-config default, `?5` the caps as one
/// JSON array. Since `RETURNING` may not name the joined configs, the claimed rows are read back
/// by id (inside the same write transaction).
pub(super) fn claim_sqlite(
    conn: &mut SqliteConnection,
    limits: &ClaimLimits,
    now: Timestamp,
) -> QueryResult<Vec<Claimed>> {
    use crate::store::schema::{configs, deliveries};
    let sql = format!(
        "WITH caps AS (SELECT json_extract(value, '$[0]') AS config_id, \
           json_extract(value, '$[1]') AS cap FROM json_each(?5)), \
         due AS (SELECT d.id, d.config_id, d.next_attempt_at FROM deliveries d \
           WHERE d.status = 'pending' AND d.next_attempt_at <= ?1 \
             AND d.config_id IN (SELECT id FROM configs WHERE active AND deleted_at IS NULL) \
             AND d.config_id NOT IN (SELECT config_id FROM caps WHERE cap <= 0) \
           ORDER BY d.next_attempt_at, d.id LIMIT ?3), \
         ranked AS (SELECT due.id, due.next_attempt_at, COALESCE(caps.cap, ?4) AS cap, \
             row_number() OVER (PARTITION BY due.config_id ORDER BY due.next_attempt_at, due.id) AS rn \
           FROM due LEFT JOIN caps ON caps.config_id = due.config_id), \
         picked AS (SELECT id FROM ranked WHERE rn <= cap ORDER BY rn, next_attempt_at, id LIMIT ?2) \
         UPDATE deliveries SET {} WHERE id IN (SELECT id FROM picked) RETURNING id",
        lease('?')
    );
    let caps = serde_json::to_string(&limits.capped)
        .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    let ids: Vec<String> = diesel::sql_query(sql)
        .bind::<Ts, _>(DbTime(now))
        .bind::<BigInt, _>(limits.total)
        .bind::<BigInt, _>(limits.scan())
        .bind::<BigInt, _>(limits.per_config)
        .bind::<Text, _>(caps)
        .load::<super::RowId>(conn)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
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
}

/// The next due time: the earliest pending row of each claimable config, read from the
/// partial index per config (one index descent each) rather than from every pending row.
const NEXT_DUE: &str = "SELECT MIN((SELECT MIN(d.next_attempt_at) FROM deliveries d \
      WHERE d.config_id = c.id AND d.status = 'pending')) AS due \
    FROM configs c WHERE c.active AND c.deleted_at IS NULL";

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = diesel::sql_types::Nullable<Ts>)]
    due: Option<DbTime>,
}

pub(super) fn next_due_postgres(
    conn: &mut PgConnection,
    excluded: &[String],
) -> QueryResult<Option<Timestamp>> {
    let due = diesel::sql_query(format!("{NEXT_DUE} AND NOT (c.id = ANY($1))"))
        .bind::<Array<Text>, _>(excluded)
        .get_result::<Due>(conn)?;
    Ok(due.due.map(|t| t.0))
}

pub(super) fn next_due_sqlite(
    conn: &mut SqliteConnection,
    excluded: &[String],
) -> QueryResult<Option<Timestamp>> {
    let excluded =
        serde_json::to_string(excluded).map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    let due = diesel::sql_query(format!(
        "{NEXT_DUE} AND c.id NOT IN (SELECT value FROM json_each(?1))"
    ))
    .bind::<Text, _>(excluded)
    .get_result::<Due>(conn)?;
    Ok(due.due.map(|t| t.0))
}

macro_rules! claim_queries {
    () => {
        impl Claims for Conn {
            fn recover_stale(&mut self, cutoff: Timestamp, now: Timestamp) -> QueryResult<(usize, usize)> {
                use crate::store::schema::{configs, deliveries};
                write_tx(self, |conn| {
                    let recovered = diesel::update(
                        deliveries::table
                            .filter(deliveries::status.eq(DeliveryStatus::Delivering.as_str()))
                            .filter(deliveries::claimed_at.lt(DbTime(cutoff))),
                    )
                    .set((
                        deliveries::status.eq(DeliveryStatus::Pending.as_str()),
                        deliveries::next_attempt_at.eq(Some(DbTime(now))),
                        deliveries::claimed_at.eq(None::<DbTime>),
                        deliveries::updated_at.eq(DbTime(now)),
                    ))
                    .execute(conn)?;
                    let cancelled = diesel::update(
                        deliveries::table
                            .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                            .filter(
                                deliveries::config_id.eq_any(
                                    configs::table
                                        .select(configs::id)
                                        .filter(configs::deleted_at.is_not_null()),
                                ),
                            ),
                    )
                    .set(cancelled(now))
                    .execute(conn)?;
                    Ok((recovered, cancelled))
                })
            }

            fn claim_due(&mut self, limits: &ClaimLimits, now: Timestamp) -> QueryResult<Vec<Claimed>> {
                if limits.total <= 0 {
                    return Ok(Vec::new());
                }
                write_tx(self, |conn| claim_rows(conn, limits, now))
            }

            fn next_due(&mut self, excluded: &[String]) -> QueryResult<Option<Timestamp>> {
                next_due_rows(self, excluded)
            }

            fn count_with_status(&mut self, status: DeliveryStatus) -> QueryResult<i64> {
                use crate::store::schema::deliveries;
                deliveries::table
                    .filter(deliveries::status.eq(status.as_str()))
                    .count()
                    .get_result(self)
            }
        }
    };
}
pub(super) use claim_queries;
