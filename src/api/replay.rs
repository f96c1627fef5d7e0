//! Replay (spec §2.7): `POST /deliveries/{id}/replay` and the bulk `POST /deliveries/replay`,
//! both idempotent per `Idempotency-Key` for 24 h in one shared key space.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::deliveries::{is_zero_time, parse_time, DeliveryOut, Position};
use super::extract::{read_body, require_json};
use super::{ApiError, AppState};
use crate::domain::json::{decode_object, FieldKind, FieldSpec};
use crate::domain::time::Timestamp;
use crate::store::model::DeliveryRow;
use crate::store::{BulkReplay, BulkReplayed, ReplayOutcome};

/// `POST /deliveries/{id}/replay`: no body is read.
pub async fn one(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let id = id.into_inner();
    let request = serde_json::json!({ "route": "delivery", "request": id }).to_string();
    let hash = sha256_hex(request.as_bytes());
    let outcome = state
        .store
        .run(move |q| {
            let render =
                |row: DeliveryRow| serde_json::to_string(&DeliveryOut::new(row, true)).unwrap_or_default();
            Ok(q.replay_delivery(&key, &hash, &id, Timestamp::now(), &render)?)
        })
        .await?;
    respond(&state, outcome)
}

const BULK_FIELDS: &[FieldSpec] = &[
    FieldSpec {
        name: "createdAtFrom",
        kind: FieldKind::String,
    },
    FieldSpec {
        name: "createdAtTo",
        kind: FieldKind::String,
    },
    FieldSpec {
        name: "statuses",
        kind: FieldKind::StringList,
    },
    FieldSpec {
        name: "configIds",
        kind: FieldKind::StringList,
    },
    FieldSpec {
        name: "cursor",
        kind: FieldKind::String,
    },
    FieldSpec {
        name: "pageSize",
        kind: FieldKind::Integer,
    },
];

const MAX_PAGE: i64 = 1000;
const MAX_WINDOW_DAYS: i64 = 90;

/// `POST /deliveries/replay`: one page of a bulk replay.
pub async fn bulk(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let body = read_body(&req, payload, state.max_request_bytes).await?;
    let decoded = decode_object(&body, BULK_FIELDS).map_err(|e| ApiError::validation(e.to_string()))?;
    require_json(&req)?;
    let request = BulkRequest::validate(&decoded, Timestamp::now())?;
    let hash = sha256_hex(request.hash_input().as_bytes());
    let outcome = state
        .store
        .run(move |q| {
            let render = |done: &BulkReplayed| request.render(done);
            Ok(q.bulk_replay(&key, &hash, &request.page, Timestamp::now(), &render)?)
        })
        .await?;
    respond(&state, outcome)
}

/// The answer of either replay: `{"data":<stored or new response>}`.
fn respond(state: &AppState, outcome: ReplayOutcome) -> Result<HttpResponse, ApiError> {
    let body = match outcome {
        ReplayOutcome::Cached(body) => body,
        ReplayOutcome::Replayed(body) => {
            state.store.notify_due();
            body
        }
        ReplayOutcome::KeyConflict => {
            return Err(ApiError::conflict(
                "idempotency key already used with another request",
            ))
        }
        ReplayOutcome::NotFound => return Err(ApiError::not_found("delivery not found")),
        ReplayOutcome::NotReplayable => return Err(ApiError::conflict("delivery cannot be replayed")),
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(format!("{{\"data\":{body}}}\n")))
}

/// A validated bulk replay request.
#[derive(Debug)]
struct BulkRequest {
    /// The page to replay: `to` is the effective end (as sent, else the cursor's, else now);
    /// statuses and config ids sorted and deduplicated.
    page: BulkReplay,
    /// `createdAtTo` as sent (None when absent), for the request hash.
    to_sent: Option<Timestamp>,
    cursor: String,
}

/// The replay cursor: where the next page starts and the filters it belongs to.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReplayCursor {
    position: Position,
    created_at_from: String,
    created_at_to: String,
    statuses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    config_ids: Vec<String>,
}

/// A cursor as read back: times parsed, lists sorted.
struct ParsedCursor {
    after: (Timestamp, String),
    from: Timestamp,
    to: Timestamp,
    statuses: Vec<String>,
    config_ids: Vec<String>,
}

fn sorted(list: &[String]) -> Vec<String> {
    let mut list = list.to_vec();
    list.sort();
    list.dedup();
    list
}

impl BulkRequest {
    /// The checks of §2.7, in the contract's order.
    fn validate(body: &crate::domain::json::Decoded, now: Timestamp) -> Result<BulkRequest, ApiError> {
        let time = |name| {
            body.string(name)
                .map(parse_time)
                .transpose()
                .map_err(|e| ApiError::validation(format!("timestamp must use RFC3339: {e}")))
        };
        let from = time("createdAtFrom")?
            .filter(|t| !is_zero_time(*t))
            .ok_or_else(|| ApiError::validation("createdAtFrom is required"))?;
        let to_sent = time("createdAtTo")?.filter(|t| !is_zero_time(*t));
        let page_size = match body.integer("pageSize") {
            None | Some(0) => MAX_PAGE,
            Some(n) if (1..=MAX_PAGE).contains(&n) => n,
            Some(_) => return Err(ApiError::validation("pageSize must be between 1 and 1000")),
        };
        let statuses = match body.string_list("statuses") {
            Some(list) if !list.is_empty() => sorted(list),
            _ => vec!["failed".to_owned(), "pending".to_owned()],
        };
        if statuses.iter().any(|s| s != "failed" && s != "pending") {
            return Err(ApiError::validation(
                "bulk replay only accepts failed and pending statuses",
            ));
        }
        let config_ids = sorted(body.string_list("configIds").unwrap_or_default());
        if config_ids.iter().any(|c| uuid::Uuid::parse_str(c).is_err()) {
            return Err(ApiError::validation("configIds must contain UUIDs"));
        }
        let cursor = body.string("cursor").unwrap_or_default().to_owned();
        let parsed = if cursor.is_empty() {
            None
        } else {
            Some(decode_replay_cursor(&cursor)?)
        };
        if let Some(c) = &parsed {
            if c.from != from
                || to_sent.is_some_and(|t| t != c.to)
                || c.statuses != statuses
                || c.config_ids != config_ids
            {
                return Err(ApiError::validation(
                    "replay cursor does not match request filters",
                ));
            }
        }
        let to = to_sent.or(parsed.as_ref().map(|c| c.to)).unwrap_or(now);
        let span = to.as_datetime() - from.as_datetime();
        if span < chrono::Duration::zero() || span > chrono::Duration::days(MAX_WINDOW_DAYS) {
            return Err(ApiError::validation(
                "replay window must be positive and at most 90 days",
            ));
        }
        Ok(BulkRequest {
            page: BulkReplay {
                from,
                to,
                statuses: statuses.iter().filter_map(|s| s.parse().ok()).collect(),
                config_ids,
                after: parsed.map(|c| c.after),
                limit: page_size,
            },
            to_sent,
            cursor,
        })
    }

    /// What the request hash covers: the normalised request.
    fn hash_input(&self) -> String {
        let zero = "0001-01-01T00:00:00Z".to_owned();
        serde_json::json!({
            "route": "deliveries",
            "request": {
                "createdAtFrom": self.page.from.to_rfc3339(),
                "createdAtTo": self.to_sent.map_or(zero, |t| t.to_rfc3339()),
                "statuses": self.page.statuses,
                "configIds": self.page.config_ids,
                "cursor": self.cursor,
                "pageSize": self.page.limit,
            }
        })
        .to_string()
    }

    /// The response object of one page (what is stored under the key).
    fn render(&self, done: &BulkReplayed) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out {
            replayed: usize,
            expedited: usize,
            skipped: usize,
            has_more: bool,
            #[serde(skip_serializing_if = "String::is_empty")]
            next_cursor: String,
            created_at_to: Timestamp,
        }
        let next_cursor = match (&done.last, done.has_more) {
            (Some((at, id)), true) => {
                let cursor = ReplayCursor {
                    position: Position::new(*at, id),
                    created_at_from: self.page.from.to_rfc3339(),
                    created_at_to: self.page.to.to_rfc3339(),
                    statuses: self.page.statuses.iter().map(|s| s.as_str().to_owned()).collect(),
                    config_ids: self.page.config_ids.clone(),
                };
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
            }
            _ => String::new(),
        };
        serde_json::to_string(&Out {
            replayed: done.replayed,
            expedited: done.expedited,
            skipped: done.skipped,
            has_more: done.has_more,
            next_cursor,
            created_at_to: self.page.to,
        })
        .unwrap_or_default()
    }
}

fn decode_replay_cursor(raw: &str) -> Result<ParsedCursor, ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|e| ApiError::validation(format!("invalid replay cursor: {e}")))?;
    let invalid = || ApiError::validation("invalid replay cursor");
    let c: ReplayCursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let time = |s: &str| {
        parse_time(s)
            .ok()
            .filter(|t| !is_zero_time(*t))
            .ok_or_else(invalid)
    };
    Ok(ParsedCursor {
        after: c.position.read().ok_or_else(invalid)?,
        from: time(&c.created_at_from)?,
        to: time(&c.created_at_to)?,
        statuses: sorted(&c.statuses),
        config_ids: sorted(&c.config_ids),
    })
}

fn idempotency_key(req: &HttpRequest) -> Result<String, ApiError> {
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if key.is_empty() {
        return Err(ApiError::validation("Idempotency-Key header is required"));
    }
    if key.chars().count() > 255 {
        return Err(ApiError::validation(
            "Idempotency-Key must not exceed 255 characters",
        ));
    }
    Ok(key.to_owned())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
