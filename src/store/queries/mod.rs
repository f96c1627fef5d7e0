//! The queries, by concern, each written once and compiled for both backends.
//!
//! Every concern file (`config_rows.rs`, `writes.rs`, `claims.rs`, `history.rs`, `replay.rs`,
//! `retention.rs`) holds one trait and a macro implementing it; the macro is expanded inside
//! `postgres` and `sqlite` below, where `Conn`, `write_tx`, `configs_changed` and the other
//! per-backend helpers resolve to that backend's. Where the SQL must differ, the helper or the
//! statement text lives in the backend module, side by side with its twin. Everything else is one
//! diesel expression checked against both backends.
//!
//! Error policy: queries return `diesel` errors; "not found" is not an error (lookups return
//! `Option`/`bool`). A lookup key holding a NUL character matches nothing without asking the
//! database: no stored text holds one (spec §3), and PostgreSQL refuses such a parameter outright.

mod claims;
mod config_rows;
mod history;
mod replay;
mod retention;
mod writes;

use std::collections::HashSet;

use diesel::prelude::*;

use crate::domain::config::{Config, PreviousSecret};
use crate::domain::delivery::{DeliveryStatus, UnknownStatus};
use crate::domain::time::Timestamp;
use crate::store::model::{
    AttemptRow, Claimed, Completion, DeliveryRow, FirstAttempt, NewAttempt, NewDelivery,
};
use crate::store::schema::{configs, deliveries};
use crate::store::types::{DbList, DbTime};
use writes::{settle_sql, SETTLE_CHUNK};

pub use claims::{ClaimLimits, Claims};
pub use config_rows::{ConfigFilter, ConfigHealth, ConfigQueries};
pub use history::{DeliveryFilter, History};
pub use replay::{BulkReplay, BulkReplayed, Replay, ReplayOutcome};
pub use retention::Retention;
pub use writes::{Applied, Writes};

/// Everything the service asks of the database. Object-safe, so one `&mut dyn Queries` serves
/// both connection types.
pub trait Queries: ConfigQueries + Writes + Claims + History + Replay + Retention {}

impl<T: ConfigQueries + Writes + Claims + History + Replay + Retention> Queries for T {}

/// What cancelling a delivery writes (spec §5.5): final, nothing scheduled.
#[allow(clippy::type_complexity)]
fn cancelled(
    now: Timestamp,
) -> (
    diesel::dsl::Eq<deliveries::status, &'static str>,
    diesel::dsl::Eq<deliveries::next_attempt_at, Option<DbTime>>,
    diesel::dsl::Eq<deliveries::updated_at, DbTime>,
) {
    (
        deliveries::status.eq(DeliveryStatus::Cancelled.as_str()),
        deliveries::next_attempt_at.eq(None::<DbTime>),
        deliveries::updated_at.eq(DbTime(now)),
    )
}

/// A lookup key no stored row can match (see the module comment).
fn unmatchable(key: &str) -> bool {
    key.contains('\0')
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

/// `$1, $2, …` (PostgreSQL) or `?1, ?2, …` (SQLite): the numbered parameters from `first`.
fn params(mark: char, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("{mark}{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

mod postgres {
    use diesel::pg::PgConnection;
    use diesel::sql_types::{Array, BigInt, Nullable, Text};

    use super::claims::{claim_postgres as claim_rows, next_due_postgres as next_due_rows};
    use super::*;
    use crate::store::types::Ts;

    type Conn = PgConnection;
    const MARK: char = '$';

    fn write_tx<T>(conn: &mut Conn, f: impl FnOnce(&mut Conn) -> QueryResult<T>) -> QueryResult<T> {
        conn.transaction(f)
    }

    /// Tells other processes (the workers' config caches) that configs changed; delivered only
    /// if the transaction commits.
    fn configs_changed(conn: &mut Conn) -> QueryResult<()> {
        diesel::sql_query(format!(
            "SELECT pg_notify('{}', '')",
            crate::store::changes::CHANNEL
        ))
        .execute(conn)?;
        Ok(())
    }

    /// Serialises requests for one idempotency key until the transaction ends.
    fn lock_key(conn: &mut Conn, key: &str) -> QueryResult<()> {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind::<Text, _>(key)
            .execute(conn)?;
        Ok(())
    }

    /// One `INSERT … SELECT FROM unnest(<one array per column>)` per batch: the statement text
    /// is the same whatever the batch size, so PostgreSQL parses and plans a few lines instead
    /// of a `VALUES` list with one parameter per value (17 per row). A row that exists already
    /// (written earlier or by another worker) is absorbed: the conflict target is the primary
    /// key, which is derived from `(event_id, config_id)` (§4.3), so only one index is probed.
    /// Returns the ids actually inserted.
    fn insert_deliveries(conn: &mut Conn, rows: &[&NewDelivery]) -> QueryResult<HashSet<String>> {
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
        .bind::<Array<Text>, _>(text(|r| r.status.as_str()))
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
    fn insert_attempts(conn: &mut Conn, rows: &[&NewAttempt]) -> QueryResult<()> {
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
        .bind::<Array<Text>, _>(text(|r| r.outcome.as_str()))
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

    config_rows::config_queries!();
    writes::write_queries!();
    claims::claim_queries!();
    history::history_queries!();
    replay::replay_queries!([.for_update()]);
    retention::retention_queries!();
}

mod sqlite {
    use diesel::sqlite::SqliteConnection;

    use super::claims::{claim_sqlite as claim_rows, next_due_sqlite as next_due_rows};
    use super::*;

    type Conn = SqliteConnection;
    const MARK: char = '?';

    /// SQLite's write transaction (`BEGIN IMMEDIATE`) takes the write lock at once, so two
    /// writers queue in the busy handler instead of failing on an upgrade.
    fn write_tx<T>(conn: &mut Conn, f: impl FnOnce(&mut Conn) -> QueryResult<T>) -> QueryResult<T> {
        conn.immediate_transaction(f)
    }

    /// SQLite serves one process, which is told in-process instead.
    fn configs_changed(_conn: &mut Conn) -> QueryResult<()> {
        Ok(())
    }

    /// SQLite's write transaction already serialises every writer.
    fn lock_key(_conn: &mut Conn, _key: &str) -> QueryResult<()> {
        Ok(())
    }

    /// One prepared statement per row inside the caller's transaction: SQLite has no DEFAULT
    /// keyword for diesel's multi-row form, and single-row inserts in one transaction are cheap.
    fn insert_deliveries(conn: &mut Conn, rows: &[&NewDelivery]) -> QueryResult<HashSet<String>> {
        let mut inserted = HashSet::with_capacity(rows.len());
        for row in rows {
            let written = diesel::insert_into(crate::store::schema::deliveries::table)
                .values((*row).clone())
                .on_conflict_do_nothing()
                .execute(conn)?;
            if written > 0 {
                inserted.insert(row.id.clone());
            }
        }
        Ok(inserted)
    }

    fn insert_attempts(conn: &mut Conn, rows: &[&NewAttempt]) -> QueryResult<()> {
        for row in rows {
            diesel::insert_into(crate::store::schema::attempts::table)
                .values((*row).clone())
                .on_conflict_do_nothing()
                .execute(conn)?;
        }
        Ok(())
    }

    config_rows::config_queries!();
    writes::write_queries!();
    claims::claim_queries!();
    history::history_queries!();
    replay::replay_queries!([]);
    retention::retention_queries!();
}
