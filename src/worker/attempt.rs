//! One call of a delivery, first or retry: send, classify (spec §4.7), schedule (spec §5.2),
//! and the rows that record it.

use std::time::Duration;

use crate::domain::backoff::{self, CallTimes, FailReason, Next, Outcome, RetryPolicy};
use crate::domain::time::Timestamp;
use crate::metrics::{metrics, status_class};
use crate::outbound::{CallResult, Outbound, SignedRequest, Transport};
use crate::store::model::NewAttempt;
use crate::store::types::DbTime;

/// What one call of a delivery needs.
pub struct Call<'a> {
    pub delivery_id: &'a str,
    pub endpoint: &'a str,
    pub secret: &'a str,
    /// The replaced secret while its overlap lasts (spec §2.5), checked by the caller.
    pub previous_secret: Option<&'a str>,
    pub body: &'a [u8],
    pub idempotency_key: &'a str,
    /// 1-based within the replay generation.
    pub attempt_number: i64,
    pub replay_generation: i64,
    /// Start of the generation's first call (this call's start when it is the first).
    pub t0: Option<Timestamp>,
    /// When this call was due (its start when it is the first).
    pub due: Option<Timestamp>,
}

/// The delivery's state after the call, and the attempt row.
pub struct Made {
    pub status: &'static str,
    pub next_attempt_at: Option<Timestamp>,
    pub first_attempt_at: Timestamp,
    pub last_attempt_at: Timestamp,
    pub last_status_code: Option<i64>,
    pub last_error: String,
    pub attempt: NewAttempt,
}

fn classify(result: &CallResult) -> Outcome {
    match &result.response {
        Ok(r) => match r.status {
            200..=299 => Outcome::Succeeded,
            408 | 429 => Outcome::RetryableFailure,
            400..=499 => Outcome::PermanentFailure,
            _ => Outcome::RetryableFailure,
        },
        Err(Transport::AddressNotAllowed | Transport::InvalidEndpoint) => Outcome::PermanentFailure,
        Err(Transport::Failed(_)) => Outcome::RetryableFailure,
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::RetryableFailure => "retryable_failure",
        Outcome::PermanentFailure => "permanent_failure",
    }
}

pub fn fail_message(reason: FailReason, attempt_error: &str) -> String {
    match reason {
        FailReason::Permanent => attempt_error.to_owned(),
        FailReason::MaxAttempts => "max attempts reached".to_owned(),
        FailReason::WindowExceeded => "retry window exceeded".to_owned(),
    }
}

/// Sends the call and decides what happens next.
pub async fn make(outbound: &Outbound, policy: &RetryPolicy, call: Call<'_>) -> Made {
    let start = Timestamp::now();
    let result = outbound
        .send(SignedRequest {
            endpoint: call.endpoint,
            secret: call.secret,
            previous_secret: call.previous_secret,
            webhook_id: call.delivery_id,
            body: call.body,
            idempotency_key: call.idempotency_key,
            test: false,
        })
        .await;
    let done = Timestamp::now();
    let outcome = classify(&result);
    let status_code = result.status_code();
    let (error, excerpt, retry_after) = match &result.response {
        Ok(r) => (
            String::new(),
            r.excerpt.clone(),
            r.retry_after
                .as_deref()
                .and_then(|v| backoff::parse_retry_after(v, done.as_datetime())),
        ),
        Err(t) => (t.message().to_owned(), String::new(), None),
    };
    let t0 = call.t0.unwrap_or(start);
    let due = call.due.unwrap_or(start);
    let times = CallTimes {
        t0: t0.as_datetime(),
        due: due.as_datetime(),
        start: start.as_datetime(),
        done: done.as_datetime(),
    };
    let attempts_made = u64::try_from(call.attempt_number).unwrap_or(1);
    let next = backoff::after_call(policy, attempts_made, &times, outcome, retry_after);
    let (status, next_attempt_at, last_error) = match next {
        Next::Succeeded => ("succeeded", None, String::new()),
        Next::Retry { at } => ("pending", Some(Timestamp::from_datetime(at)), error.clone()),
        Next::Failed { reason } => ("failed", None, fail_message(reason, &error)),
    };
    let m = metrics();
    m.attempts
        .with_label_values(&[outcome_name(outcome), status_class(status_code)])
        .inc();
    m.attempt_duration.observe(result.duration.as_secs_f64());
    if status != "pending" {
        m.deliveries.with_label_values(&[status]).inc();
    }
    if status == "failed" {
        tracing::info!(
            delivery.id = call.delivery_id,
            last_status_code = status_code,
            last_error = %last_error,
            "delivery failed"
        );
    }
    Made {
        status,
        next_attempt_at,
        first_attempt_at: t0,
        last_attempt_at: start,
        last_status_code: (status_code != 0).then_some(i64::from(status_code)),
        last_error,
        attempt: NewAttempt {
            id: uuid::Uuid::new_v4().to_string(),
            delivery_id: call.delivery_id.to_owned(),
            attempt_number: call.attempt_number,
            replay_generation: call.replay_generation,
            endpoint: call.endpoint.to_owned(),
            outcome: outcome_name(outcome),
            status_code: i64::from(status_code),
            error,
            duration_ms: i64::try_from(result.duration.as_millis()).ok(),
            response_excerpt: excerpt,
            created_at: DbTime(done),
        },
    }
}

/// The lease after which a `delivering` row counts as abandoned (spec §5.4).
pub fn lease(http_timeout: Duration) -> Duration {
    (http_timeout * 2).max(Duration::from_secs(60))
}
