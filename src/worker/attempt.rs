//! One call of a delivery, first or retry: send it, then [`record_call`] turns its result into
//! the row changes (spec §4.7 classification, §5.2 schedule); and the rows of a first attempt
//! stored without a call (deferred, spec §10.1, §10.2).

use std::time::Duration;

use crate::domain::backoff::{self, CallTimes, FailReason, Next, RetryPolicy};
use crate::domain::delivery::{AttemptOutcome, DeliveryStatus};
use crate::domain::event::Event;
use crate::domain::time::Timestamp;
use crate::metrics::{metrics, status_class};
use crate::outbound::{CallResult, Outbound, SignedRequest, Transport};
use crate::store::model::{Completion, FirstAttempt, NewAttempt, NewDelivery};
use crate::store::types::DbTime;
use crate::telemetry::{traces, SPANS};
use tracing::Instrument as _;

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

/// What a call makes of its delivery: its next state and the attempt row.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub outcome: AttemptOutcome,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<Timestamp>,
    pub first_attempt_at: Timestamp,
    pub last_attempt_at: Timestamp,
    pub last_status_code: Option<i64>,
    pub last_error: String,
    pub attempt: NewAttempt,
}

impl CallRecord {
    /// The call's completion time.
    pub fn done(&self) -> Timestamp {
        self.attempt.created_at.0
    }
}

fn classify(result: &CallResult) -> AttemptOutcome {
    match &result.response {
        Ok(r) => AttemptOutcome::of_status(r.status),
        Err(Transport::AddressNotAllowed | Transport::InvalidEndpoint) => AttemptOutcome::PermanentFailure,
        Err(Transport::Failed(_)) => AttemptOutcome::RetryableFailure,
    }
}

pub fn fail_message(reason: FailReason, attempt_error: &str) -> String {
    reason.last_error(attempt_error).to_owned()
}

/// Turns a call's result into its row changes: classification, then schedule or give-up.
pub fn record_call(
    policy: &RetryPolicy,
    call: &Call<'_>,
    result: CallResult,
    start: Timestamp,
    done: Timestamp,
) -> CallRecord {
    let outcome = classify(&result);
    let status_code = result.status_code();
    let duration_ms = i64::try_from(result.duration.as_millis()).ok();
    let (error, excerpt, retry_after) = match result.response {
        Ok(r) => (
            String::new(),
            r.excerpt,
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
    let (status, next_attempt_at, last_error) =
        match backoff::after_call(policy, attempts_made, &times, outcome, retry_after) {
            Next::Succeeded => (DeliveryStatus::Succeeded, None, String::new()),
            Next::Retry { at } => (
                DeliveryStatus::Pending,
                Some(Timestamp::from_datetime(at)),
                error.clone(),
            ),
            Next::Failed { reason } => (DeliveryStatus::Failed, None, fail_message(reason, &error)),
        };
    CallRecord {
        outcome,
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
            outcome,
            status_code: i64::from(status_code),
            error,
            duration_ms,
            response_excerpt: excerpt,
            created_at: DbTime(done),
        },
    }
}

/// The span of one call (spec §8.2), child of `parent` (the record's span, or the sweep
/// iteration's); the call's facts are recorded on it as they become known.
pub fn span(
    parent: &tracing::Span,
    delivery_id: &str,
    config_id: &str,
    attempt_number: i64,
) -> tracing::Span {
    tracing::info_span!(
        target: SPANS,
        parent: parent,
        "webhooks.attempt",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        webhooks.delivery_id = delivery_id,
        webhooks.config_id = config_id,
        webhooks.attempt_number = attempt_number,
        server.address = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        webhooks.outcome = tracing::field::Empty,
        messaging.destination.name = tracing::field::Empty,
        messaging.kafka.destination.partition = tracing::field::Empty,
        messaging.kafka.message.offset = tracing::field::Empty,
    )
}

/// Sends the call within `span` and records what it makes of the delivery.
pub async fn make(
    outbound: &Outbound,
    policy: &RetryPolicy,
    call: Call<'_>,
    span: tracing::Span,
) -> CallRecord {
    let traceparent = traces::traceparent(&span);
    if !span.is_disabled() {
        // The host only: paths and queries may carry tokens (spec §7.3).
        if let Some(host) = url::Url::parse(call.endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
        {
            span.record("server.address", host);
        }
    }
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
            traceparent: traceparent.as_deref(),
        })
        .instrument(span.clone())
        .await;
    let done = Timestamp::now();
    let m = metrics();
    m.attempt_duration.observe(result.duration.as_secs_f64());
    let record = record_call(policy, &call, result, start, done);
    m.attempts
        .with_label_values(&[
            record.outcome.as_str(),
            status_class(u16::try_from(record.attempt.status_code).unwrap_or(0)),
        ])
        .inc();
    if record.attempt.status_code != 0 {
        span.record("http.response.status_code", record.attempt.status_code);
    }
    span.record("webhooks.outcome", record.outcome.as_str());
    if record.outcome != AttemptOutcome::Succeeded {
        span.record("otel.status_code", "error");
    }
    record
}

/// A delivery written with its first call's result.
pub fn first_attempt(
    event: &Event,
    event_id: &str,
    config_id: &str,
    id: String,
    made: CallRecord,
) -> FirstAttempt {
    let created = DbTime(made.first_attempt_at);
    FirstAttempt {
        delivery: NewDelivery {
            id,
            event_id: event_id.to_owned(),
            idempotency_key: event.idempotency_key.clone(),
            config_id: config_id.to_owned(),
            event_type: event.event_type.clone(),
            payload: String::from_utf8_lossy(&event.body).into_owned(),
            status: made.status,
            attempt_count: 1,
            first_attempt_at: Some(created),
            next_attempt_at: made.next_attempt_at.map(DbTime),
            claimed_at: None,
            last_attempt_at: Some(DbTime(made.last_attempt_at)),
            last_status_code: made.last_status_code,
            last_error: made.last_error,
            replay_generation: 0,
            created_at: created,
            updated_at: created,
        },
        attempt: Some(made.attempt),
    }
}

/// A delivery written `pending` without a call (spec §10.1, §10.2): due at `due`, no attempt,
/// its retry window not started (the sweep's first call starts it).
pub fn deferred(event: &Event, event_id: &str, config_id: &str, id: String, due: Timestamp) -> FirstAttempt {
    let now = DbTime(Timestamp::now());
    FirstAttempt {
        delivery: NewDelivery {
            id,
            event_id: event_id.to_owned(),
            idempotency_key: event.idempotency_key.clone(),
            config_id: config_id.to_owned(),
            event_type: event.event_type.clone(),
            payload: String::from_utf8_lossy(&event.body).into_owned(),
            status: DeliveryStatus::Pending,
            attempt_count: 0,
            first_attempt_at: None,
            next_attempt_at: Some(DbTime(due)),
            claimed_at: None,
            last_attempt_at: None,
            last_status_code: None,
            last_error: String::new(),
            replay_generation: 0,
            created_at: now,
            updated_at: now,
        },
        attempt: None,
    }
}

/// The completion of a claimed delivery's call.
pub fn completion(
    delivery_id: String,
    config_id: String,
    claimed_at: Timestamp,
    made_so_far: i64,
    made: CallRecord,
) -> Completion {
    Completion {
        delivery_id,
        config_id,
        claimed_at,
        status: made.status,
        attempt_count: made_so_far + 1,
        next_attempt_at: made.next_attempt_at,
        last_attempt_at: Some(made.last_attempt_at),
        last_status_code: made.last_status_code,
        last_error: made.last_error,
        attempt: Some(made.attempt),
    }
}

/// The lease after which a `delivering` row counts as abandoned (spec §5.4).
pub fn lease(http_timeout: Duration) -> Duration {
    (http_timeout * 2).max(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::Response;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            abort_after: Duration::from_secs(3),
            max_attempts: 0,
        }
    }

    fn call() -> Call<'static> {
        Call {
            delivery_id: "d",
            endpoint: "http://x/h",
            secret: "s",
            previous_secret: None,
            body: b"{}",
            idempotency_key: "",
            attempt_number: 1,
            replay_generation: 0,
            t0: None,
            due: None,
        }
    }

    fn result(response: Result<Response, Transport>) -> CallResult {
        CallResult {
            response,
            duration: Duration::from_millis(7),
        }
    }

    fn response(status: u16, excerpt: &str) -> Result<Response, Transport> {
        Ok(Response {
            status,
            excerpt: excerpt.to_owned(),
            retry_after: None,
        })
    }

    #[test]
    fn a_call_result_becomes_the_delivery_state_and_attempt_row() {
        let t = Timestamp::now();
        let ok = record_call(&policy(), &call(), result(response(204, "fine")), t, t);
        assert_eq!(
            (ok.outcome, ok.status, ok.next_attempt_at),
            (AttemptOutcome::Succeeded, DeliveryStatus::Succeeded, None)
        );
        assert_eq!(ok.attempt.response_excerpt, "fine");
        assert_eq!(ok.attempt.duration_ms, Some(7));
        let retry = record_call(&policy(), &call(), result(response(500, "")), t, t);
        assert_eq!(
            (retry.outcome, retry.status),
            (AttemptOutcome::RetryableFailure, DeliveryStatus::Pending)
        );
        assert!(retry.next_attempt_at.is_some_and(|n| n > t));
        assert_eq!(retry.last_status_code, Some(500));
        let gone = record_call(&policy(), &call(), result(response(410, "")), t, t);
        assert_eq!(
            (gone.outcome, gone.status),
            (AttemptOutcome::PermanentFailure, DeliveryStatus::Failed)
        );
        let ssrf = record_call(
            &policy(),
            &call(),
            result(Err(Transport::AddressNotAllowed)),
            t,
            t,
        );
        assert_eq!(
            (ssrf.outcome, ssrf.status, ssrf.last_status_code),
            (AttemptOutcome::PermanentFailure, DeliveryStatus::Failed, None)
        );
        assert_eq!(ssrf.last_error, "endpoint address not allowed");
        let reset = record_call(
            &policy(),
            &call(),
            result(Err(Transport::Failed("connect error: reset".into()))),
            t,
            t,
        );
        assert_eq!(
            (reset.outcome, reset.attempt.status_code),
            (AttemptOutcome::RetryableFailure, 0)
        );
        assert_eq!(reset.attempt.error, "connect error: reset");
    }
}
