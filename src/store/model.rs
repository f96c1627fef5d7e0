//! Rows the worker writes and reads: first outcomes, claims of the retry sweep, completions.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::domain::delivery::{AttemptOutcome, DeliveryStatus};
use crate::domain::text::storable;
use crate::domain::time::Timestamp;
use crate::store::schema::{attempts, deliveries};
use crate::store::types::{DbTime, Ts};

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
    #[diesel(serialize_as = String)]
    pub status: DeliveryStatus,
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
    #[diesel(serialize_as = String)]
    pub outcome: AttemptOutcome,
    pub status_code: i64,
    pub error: String,
    pub duration_ms: Option<i64>,
    pub response_excerpt: String,
    pub created_at: DbTime,
}

/// A delivery and its first attempt, written together; no attempt when the first call was
/// deferred (endpoint busy or circuit open, spec §10.1, §10.2).
#[derive(Debug, Clone)]
pub struct FirstAttempt {
    pub delivery: NewDelivery,
    pub attempt: Option<NewAttempt>,
}

/// A `pending` delivery the sweep claimed, with its config's current endpoint and secrets.
#[derive(Debug, Clone, Queryable, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub idempotency_key: String,
    #[diesel(sql_type = Text)]
    pub payload: String,
    #[diesel(sql_type = BigInt)]
    pub attempt_count: i64,
    #[diesel(sql_type = BigInt)]
    pub replay_generation: i64,
    #[diesel(sql_type = Nullable<Ts>)]
    pub first_attempt_at: Option<DbTime>,
    #[diesel(sql_type = Nullable<Ts>)]
    pub next_attempt_at: Option<DbTime>,
    #[diesel(sql_type = Nullable<Ts>)]
    pub claimed_at: Option<DbTime>,
    #[diesel(sql_type = Text)]
    pub config_id: String,
    #[diesel(sql_type = Text)]
    pub endpoint: String,
    #[diesel(sql_type = Text)]
    pub secret: String,
    /// The replaced secret and the end of its overlap (spec §2.5); the caller checks the time.
    #[diesel(sql_type = Nullable<Text>)]
    pub previous_secret: Option<String>,
    #[diesel(sql_type = Nullable<Ts>)]
    pub previous_secret_expires_at: Option<DbTime>,
}

/// The result of a claimed delivery's call (or of a pre-check that made none).
#[derive(Debug, Clone)]
pub struct Completion {
    pub delivery_id: String,
    /// Not written: the config whose health and circuit the call speaks for.
    pub config_id: String,
    /// The lease this completion belongs to; a newer claim wins.
    pub claimed_at: Timestamp,
    pub status: DeliveryStatus,
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
    #[diesel(deserialize_as = String)]
    pub status: DeliveryStatus,
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
    #[diesel(deserialize_as = String)]
    pub outcome: AttemptOutcome,
    pub status_code: i64,
    pub error: String,
    pub duration_ms: Option<i64>,
    pub response_excerpt: String,
    pub created_at: DbTime,
}

/// The one sanitising step every text value from outside takes before storage (spec §3): each
/// row kind lists all its text fields, so a new field cannot be forgotten.
impl NewDelivery {
    pub fn storable(self) -> Self {
        let NewDelivery {
            id,
            event_id,
            idempotency_key,
            config_id,
            event_type,
            payload,
            status,
            attempt_count,
            first_attempt_at,
            next_attempt_at,
            claimed_at,
            last_attempt_at,
            last_status_code,
            last_error,
            replay_generation,
            created_at,
            updated_at,
        } = self;
        NewDelivery {
            id: storable(id),
            event_id: storable(event_id),
            idempotency_key: storable(idempotency_key),
            config_id: storable(config_id),
            event_type: storable(event_type),
            payload: storable(payload),
            status,
            attempt_count,
            first_attempt_at,
            next_attempt_at,
            claimed_at,
            last_attempt_at,
            last_status_code,
            last_error: storable(last_error),
            replay_generation,
            created_at,
            updated_at,
        }
    }
}

impl NewAttempt {
    pub fn storable(self) -> Self {
        let NewAttempt {
            id,
            delivery_id,
            attempt_number,
            replay_generation,
            endpoint,
            outcome,
            status_code,
            error,
            duration_ms,
            response_excerpt,
            created_at,
        } = self;
        NewAttempt {
            id: storable(id),
            delivery_id: storable(delivery_id),
            attempt_number,
            replay_generation,
            endpoint: storable(endpoint),
            outcome,
            status_code,
            error: storable(error),
            duration_ms,
            response_excerpt: storable(response_excerpt),
            created_at,
        }
    }
}

impl FirstAttempt {
    pub fn storable(self) -> Self {
        FirstAttempt {
            delivery: self.delivery.storable(),
            attempt: self.attempt.map(NewAttempt::storable),
        }
    }
}

impl Completion {
    pub fn storable(self) -> Self {
        Completion {
            delivery_id: storable(self.delivery_id),
            last_error: storable(self.last_error),
            attempt: self.attempt.map(NewAttempt::storable),
            ..self
        }
    }
}
