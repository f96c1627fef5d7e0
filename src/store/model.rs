//! Rows the worker writes and reads: first outcomes, claims of the retry sweep, completions.

use diesel::prelude::*;

use crate::domain::time::Timestamp;
use crate::store::schema::{attempts, deliveries};
use crate::store::types::DbTime;

/// A delivery row as the first attempt leaves it (spec §4.8: written with its first outcome).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = deliveries)]
pub struct NewDelivery {
    pub id: String,
    pub event_id: String,
    pub idempotency_key: String,
    pub config_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: &'static str,
    pub attempt_count: i64,
    pub first_attempt_at: Option<DbTime>,
    pub next_attempt_at: Option<DbTime>,
    pub claimed_at: Option<DbTime>,
    pub last_attempt_at: Option<DbTime>,
    pub last_status_code: Option<i64>,
    pub last_error: String,
    pub replay_generation: i64,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

/// One outbound call of a delivery.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = attempts)]
pub struct NewAttempt {
    pub id: String,
    pub delivery_id: String,
    pub attempt_number: i64,
    pub replay_generation: i64,
    pub endpoint: String,
    pub outcome: &'static str,
    pub status_code: i64,
    pub error: String,
    pub duration_ms: Option<i64>,
    pub response_excerpt: String,
    pub created_at: DbTime,
}

/// A delivery and its first attempt, written together.
#[derive(Debug, Clone)]
pub struct FirstAttempt {
    pub delivery: NewDelivery,
    pub attempt: NewAttempt,
}

/// A `pending` delivery the sweep claimed, with its config's current endpoint and secrets.
#[derive(Debug, Clone, Queryable)]
pub struct Claimed {
    pub id: String,
    pub idempotency_key: String,
    pub payload: String,
    pub attempt_count: i64,
    pub replay_generation: i64,
    pub first_attempt_at: Option<DbTime>,
    pub next_attempt_at: Option<DbTime>,
    pub claimed_at: Option<DbTime>,
    pub config_id: String,
    pub endpoint: String,
    pub secret: String,
    /// The replaced secret and the end of its overlap (spec §2.5); the caller checks the time.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DbTime>,
}

/// The result of a claimed delivery's call (or of a pre-check that made none).
#[derive(Debug, Clone)]
pub struct Completion {
    pub delivery_id: String,
    /// The lease this completion belongs to; a newer claim wins.
    pub claimed_at: Timestamp,
    pub status: &'static str,
    pub attempt_count: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    pub last_status_code: Option<i64>,
    pub last_error: String,
    pub attempt: Option<NewAttempt>,
}

/// A delivery as stored (the `/deliveries` API and tests read these).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = deliveries)]
pub struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub idempotency_key: String,
    pub config_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempt_count: i64,
    pub first_attempt_at: Option<DbTime>,
    pub next_attempt_at: Option<DbTime>,
    pub claimed_at: Option<DbTime>,
    pub last_attempt_at: Option<DbTime>,
    pub last_status_code: Option<i64>,
    pub last_error: String,
    pub replay_generation: i64,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

/// An attempt as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = attempts)]
pub struct AttemptRow {
    pub id: String,
    pub delivery_id: String,
    pub attempt_number: i64,
    pub replay_generation: i64,
    pub endpoint: String,
    pub outcome: String,
    pub status_code: i64,
    pub error: String,
    pub duration_ms: Option<i64>,
    pub response_excerpt: String,
    pub created_at: DbTime,
}
