//! `/deliveries` history routes (spec §2.7): list with filters and a keyset cursor, one
//! delivery with its payload, and its attempts.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::extract::{single_values, value};
use super::{cursor, data, ApiError, AppState, Cursor};
use crate::domain::delivery::{AttemptOutcome, DeliveryStatus};
use crate::domain::time::Timestamp;
use crate::store::model::{AttemptRow, DeliveryRow};
use crate::store::DeliveryFilter;

const DEFAULT_PAGE: i64 = 100;
const LIST_PARAMS: [&str; 6] = [
    "configId",
    "status",
    "createdAtFrom",
    "createdAtTo",
    "cursor",
    "pageSize",
];

/// A delivery as the API shows it; `payload` only on the single-delivery route.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeliveryOut {
    id: String,
    #[serde(rename = "eventID")]
    event_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    idempotency_key: String,
    #[serde(rename = "configID")]
    config_id: String,
    event_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
    status: DeliveryStatus,
    attempt_count: i64,
    replay_generation: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cycle_started_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claimed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_attempt_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_status_code: Option<i64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    last_error: String,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl DeliveryOut {
    pub(super) fn new(d: DeliveryRow, with_payload: bool) -> Self {
        DeliveryOut {
            id: d.id,
            event_id: d.event_id,
            idempotency_key: d.idempotency_key,
            config_id: d.config_id,
            event_type: d.event_type,
            payload: with_payload.then_some(d.payload),
            status: d.status,
            attempt_count: d.attempt_count,
            replay_generation: d.replay_generation,
            cycle_started_at: d.first_attempt_at.map(|t| t.0),
            next_attempt_at: d.next_attempt_at.map(|t| t.0),
            claimed_at: d.claimed_at.map(|t| t.0),
            last_attempt_at: d.last_attempt_at.map(|t| t.0),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: d.created_at.0,
            updated_at: d.updated_at.0,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptOut {
    id: String,
    #[serde(rename = "deliveryID")]
    delivery_id: String,
    attempt_number: i64,
    replay_generation: i64,
    endpoint: String,
    outcome: AttemptOutcome,
    status_code: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_millis: Option<i64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    response_excerpt: String,
    created_at: Timestamp,
}

impl From<AttemptRow> for AttemptOut {
    fn from(a: AttemptRow) -> Self {
        AttemptOut {
            id: a.id,
            delivery_id: a.delivery_id,
            attempt_number: a.attempt_number,
            replay_generation: a.replay_generation,
            endpoint: a.endpoint,
            outcome: a.outcome,
            status_code: a.status_code,
            error: a.error,
            duration_millis: a.duration_ms,
            response_excerpt: a.response_excerpt,
            created_at: a.created_at.0,
        }
    }
}

/// The list cursor: base64url (no padding) of `{"createdAt":…,"id":…}`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Position {
    created_at: String,
    id: String,
}

impl Position {
    pub(super) fn new(created_at: Timestamp, id: &str) -> Position {
        Position {
            created_at: created_at.to_rfc3339(),
            id: id.to_owned(),
        }
    }

    /// The row it points after; None unless a real time and an id (ids are UUIDs: one with a
    /// NUL was never issued, and could not be looked up, spec §3).
    pub(super) fn read(self) -> Option<(Timestamp, String)> {
        let at = parse_time(&self.created_at).ok().filter(|t| !is_zero_time(*t))?;
        (!self.id.is_empty() && !self.id.contains('\0')).then_some((at, self.id))
    }
}

fn encode_cursor(created_at: Timestamp, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Position::new(created_at, id)).unwrap_or_default())
}

fn decode_cursor(raw: &str) -> Result<(Timestamp, String), ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|e| ApiError::validation(format!("invalid cursor: {e}")))?;
    serde_json::from_slice::<Position>(&bytes)
        .ok()
        .and_then(Position::read)
        .ok_or_else(|| ApiError::validation("invalid cursor"))
}

/// `0001-01-01T00:00:00Z` (Go's zero time) or earlier: never a real time.
pub(super) fn is_zero_time(t: Timestamp) -> bool {
    const ZERO_TIME_SECONDS: i64 = -62_135_596_800;
    t.as_datetime().timestamp() <= ZERO_TIME_SECONDS
}

pub(super) fn parse_time(s: &str) -> Result<Timestamp, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| Timestamp::from_datetime(t.with_timezone(&chrono::Utc)))
        .map_err(|e| format!("parsing time {s:?}: {e}"))
}

fn page_size(raw: Option<&str>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(DEFAULT_PAGE),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::validation("pageSize must be between 1 and 1000")),
    }
}

/// One page of a keyset list: `rows` holds up to `limit + 1` rows, the extra one only telling
/// that more follow; `next` is the cursor of the page's last row.
fn page<R, T: Serialize>(
    mut rows: Vec<R>,
    limit: i64,
    position: impl Fn(&R) -> (Timestamp, &str),
    out: impl FnMut(R) -> T,
) -> HttpResponse {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let next = match (has_more, rows.last()) {
        (true, Some(last)) => {
            let (at, id) = position(last);
            encode_cursor(at, id)
        }
        _ => String::new(),
    };
    cursor(&Cursor {
        page_size: limit,
        has_more,
        previous: String::new(),
        next,
        data: rows.into_iter().map(out).collect(),
    })
}

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pairs = single_values(&req, &LIST_PARAMS, false)?;
    let config_id = value(&pairs, "configId");
    if config_id.is_some_and(|c| uuid::Uuid::parse_str(c).is_err()) {
        return Err(ApiError::validation("configId must be a UUID"));
    }
    let status = value(&pairs, "status")
        .map(|s| s.parse::<DeliveryStatus>())
        .transpose()
        .map_err(|_| ApiError::validation("invalid delivery status"))?;
    let time = |name| {
        value(&pairs, name)
            .map(parse_time)
            .transpose()
            .map_err(|e| ApiError::validation(format!("timestamp must use RFC3339: {e}")))
    };
    let (created_from, created_to) = (time("createdAtFrom")?, time("createdAtTo")?);
    let limit = page_size(value(&pairs, "pageSize"))?;
    let before = value(&pairs, "cursor").map(decode_cursor).transpose()?;
    let filter = DeliveryFilter {
        config_id: config_id.map(str::to_owned),
        status,
        created_from,
        created_to,
        before,
        limit: limit + 1,
    };
    let rows = state.store.run(move |q| Ok(q.list_deliveries(&filter)?)).await?;
    Ok(page(
        rows,
        limit,
        |d| (d.created_at.0, &d.id),
        |d| DeliveryOut::new(d, false),
    ))
}

pub async fn get(id: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let row = state
        .store
        .run(move |q| Ok(q.get_delivery(&id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("delivery not found"))?;
    Ok(data(&DeliveryOut::new(row, true)))
}

pub async fn attempts(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let pairs = single_values(&req, &["cursor", "pageSize"], true)?;
    let limit = page_size(value(&pairs, "pageSize"))?;
    let before = value(&pairs, "cursor").map(decode_cursor).transpose()?;
    let id = id.into_inner();
    let rows = state
        .store
        .run(move |q| {
            if q.get_delivery(&id)?.is_none() {
                return Ok(None);
            }
            Ok(Some(q.list_attempts(&id, before, limit + 1)?))
        })
        .await?;
    let rows = rows.ok_or_else(|| ApiError::not_found("delivery not found"))?;
    Ok(page(rows, limit, |a| (a.created_at.0, &a.id), AttemptOut::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let t =
            Timestamp::parse_storage_text("2024-05-01T10:00:00.123400Z").unwrap_or_else(|e| panic!("{e}"));
        let c = encode_cursor(t, "abc");
        assert!(!c.contains('=') && !c.contains('+') && !c.contains('/'));
        let (at, id) = decode_cursor(&c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((at, id.as_str()), (t, "abc"));
        let msg = |raw: &str| decode_cursor(raw).err().map(|e| e.message);
        assert!(msg("!!!").is_some_and(|m| m.starts_with("invalid cursor: ")));
        assert_eq!(
            msg(&URL_SAFE_NO_PAD.encode("not json")).as_deref(),
            Some("invalid cursor")
        );
        let empty_id = URL_SAFE_NO_PAD.encode(r#"{"createdAt":"2024-05-01T10:00:00Z","id":""}"#);
        assert_eq!(msg(&empty_id).as_deref(), Some("invalid cursor"));
        let zero = URL_SAFE_NO_PAD.encode(r#"{"createdAt":"0001-01-01T00:00:00Z","id":"x"}"#);
        assert_eq!(msg(&zero).as_deref(), Some("invalid cursor"));
    }
}
