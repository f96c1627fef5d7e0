//! The retry sweep's queries (spec §5.4): stale lease recovery, fair claims under the per-config
//! limits of endpoint isolation and circuits (§10.1, §10.2), and the next due time.
//!
//! A claim picks due rows oldest first, at most `total` of them and, per config, at most that
//! config's free slots; among the picked rows, the n-th row of every config comes before the
//! (n+1)-th row of any, so one config with a deep backlog never takes every slot. Configs with no
//! free slot (busy, circuit open, probe in flight) are left out entirely, so their due rows never
//! hide other configs' rows from the scan.

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

    /// How many due rows are scanned to pick `total`: enough that configs at their cap leave
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

/// The claim's row selection over a read-only scan of the earliest due rows; only the rows
/// picked are then locked (PostgreSQL), since a row lock is a write. Parameters: 1 now,
/// 2 total, 3 scan, 4 per-config default; the backend's `caps` table of (config_id, cap).
const PICK: &str = "\
    due AS ( \
      SELECT d.id, d.config_id, d.next_attempt_at FROM deliveries d \
      WHERE d.status = 'pending' AND d.next_attempt_at <= {now} \
        AND d.config_id IN (SELECT id FROM configs WHERE active AND deleted_at IS NULL) \
        AND d.config_id NOT IN (SELECT config_id FROM caps WHERE cap <= 0) \
      ORDER BY d.next_attempt_at, d.id LIMIT {scan}), \
    ranked AS ( \
      SELECT due.id, due.next_attempt_at, COALESCE(caps.cap, {per_config}) AS cap, \
        row_number() OVER (PARTITION BY due.config_id ORDER BY due.next_attempt_at, due.id) AS rn \
      FROM due LEFT JOIN caps ON caps.config_id = due.config_id), \
    picked AS (SELECT id FROM ranked WHERE rn <= cap ORDER BY rn, next_attempt_at, id LIMIT {total})";

/// The claim's lease: `first_attempt_at` starts the generation's window at its first call.
const LEASE: &str = "status = 'delivering', claimed_at = {now}, updated_at = {now}, \
                     first_attempt_at = COALESCE(first_attempt_at, {now})";

fn claim_sql(caps: &str, mark: char, tail: &str) -> String {
    let fill = |s: &str| {
        s.replace("{now}", &format!("{mark}1"))
            .replace("{total}", &format!("{mark}2"))
            .replace("{scan}", &format!("{mark}3"))
            .replace("{per_config}", &format!("{mark}4"))
    };
    format!(
        "WITH caps AS ({caps}), {} {}",
        fill(PICK),
        fill(tail).replace("{lease}", &fill(LEASE))
    )
}

/// PostgreSQL: one statement. Picked rows another worker has locked, or claimed meanwhile, are
/// skipped, and the update joins the configs to return the endpoint and secret of the call.
pub(super) fn claim_postgres(
    conn: &mut PgConnection,
    limits: &ClaimLimits,
    now: Timestamp,
) -> QueryResult<Vec<Claimed>> {
    let sql = claim_sql(
        "SELECT * FROM unnest($5::text[], $6::bigint[]) AS c(config_id, cap)",
        '$',
        ", locked AS (SELECT id FROM deliveries WHERE id IN (SELECT id FROM picked) \
         AND status = 'pending' FOR UPDATE SKIP LOCKED) \
         UPDATE deliveries SET {lease} FROM locked, configs \
         WHERE deliveries.id = locked.id AND configs.id = deliveries.config_id \
         RETURNING deliveries.id, deliveries.idempotency_key, deliveries.payload, \
         deliveries.attempt_count, deliveries.replay_generation, deliveries.first_attempt_at, \
         deliveries.next_attempt_at, deliveries.claimed_at, deliveries.config_id, \
         configs.endpoint, configs.secret, configs.previous_secret, configs.previous_secret_expires_at",
    );
    let (ids, caps): (Vec<&str>, Vec<i64>) =
        limits.capped.iter().map(|(id, cap)| (id.as_str(), *cap)).unzip();
    diesel::sql_query(sql)
        .bind::<Ts, _>(DbTime(now))
        .bind::<BigInt, _>(limits.total)
        .bind::<BigInt, _>(limits.scan())
        .bind::<BigInt, _>(limits.per_config)
        .bind::<Array<Text>, _>(ids)
        .bind::<Array<BigInt>, _>(caps)
        .load::<Claimed>(conn)
}

/// SQLite: the caps travel as one JSON array, and since `RETURNING` may not name the joined
/// configs, the claimed rows are read back by id (inside the same write transaction).
pub(super) fn claim_sqlite(
    conn: &mut SqliteConnection,
    limits: &ClaimLimits,
    now: Timestamp,
) -> QueryResult<Vec<Claimed>> {
    use crate::store::schema::{configs, deliveries};
    let sql = claim_sql(
        "SELECT json_extract(value, '$[0]') AS config_id, json_extract(value, '$[1]') AS cap \
         FROM json_each(?5)",
        '?',
        "UPDATE deliveries SET {lease} WHERE id IN (SELECT id FROM picked) RETURNING id",
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
                use crate::store::schema::{configs, deliveries};
                let due: Option<DbTime> = deliveries::table
                    .select(diesel::dsl::min(deliveries::next_attempt_at))
                    .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                    .filter(
                        deliveries::config_id.eq_any(
                            configs::table
                                .select(configs::id)
                                .filter(configs::active.eq(true))
                                .filter(configs::deleted_at.is_null()),
                        ),
                    )
                    .filter(diesel::dsl::not(deliveries::config_id.eq_any(excluded)))
                    .first(self)?;
                Ok(due.map(|t| t.0))
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
