//! `POST /events` (spec §2.8): producers without a Kafka client publish events over HTTP.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::extract::{read_body, require_json, single_values, value};
use super::{data, ApiError, AppState};
use crate::domain::event::{decode_record, SkipReason};
use crate::domain::json::{self, BodyError, Kind};

const MAX_EVENTS: usize = 1000;

pub async fn publish(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(publisher) = state.publisher.clone() else {
        return Err(ApiError::unavailable("event publishing unavailable"));
    };
    let pairs = single_values(&req, &["topic"], false)?;
    let topic = match value(&pairs, "topic") {
        Some(t) if publisher.topics().iter().any(|known| known == t) => t.to_owned(),
        Some(t) => return Err(ApiError::validation(format!("unknown topic: {t}"))),
        None => publisher.topics().first().cloned().unwrap_or_default(),
    };
    let body = read_body(&req, payload, state.max_request_bytes).await?;
    let events = split(&body).map_err(|e| ApiError::validation(e.to_string()))?;
    require_json(&req)?;
    let values = match events {
        Events::One(value) => {
            check(value).map_err(|reason| ApiError::validation(format!("invalid event: {reason}")))?;
            vec![value]
        }
        Events::Many(values) => {
            if values.is_empty() || values.len() > MAX_EVENTS {
                return Err(ApiError::validation(
                    "Request body must contain between 1 and 1000 events",
                ));
            }
            for (i, value) in values.iter().enumerate() {
                check(value).map_err(|reason| {
                    ApiError::validation(format!("invalid event at index {i}: {reason}"))
                })?;
            }
            values
        }
    };
    publisher.publish(&topic, &values).await.map_err(|e| {
        tracing::error!(error = %e, %topic, "publishing events failed");
        ApiError::internal()
    })?;
    #[derive(Serialize)]
    struct Accepted {
        accepted: usize,
    }
    Ok(data(&Accepted {
        accepted: values.len(),
    }))
}

enum Events<'a> {
    One(&'a [u8]),
    /// The elements' source text, without surrounding whitespace.
    Many(Vec<&'a [u8]>),
}

/// Rules 2, 3, 4 and 7 of §2.1.1 over the whole body, then its events' source bytes.
fn split(body: &[u8]) -> Result<Events<'_>, BodyError> {
    if json::rest_is_whitespace(body, 0) {
        return Err(BodyError::Empty);
    }
    let (mut root, end) = json::parse_first(body)?;
    if !json::rest_is_whitespace(body, end) {
        return Err(BodyError::NotSingle);
    }
    Ok(match std::mem::take(&mut root.kind) {
        Kind::Array(items) => Events::Many(items.iter().map(|item| item.raw(body)).collect()),
        other => {
            root.kind = other;
            Events::One(root.raw(body))
        }
    })
}

/// An event must be a record the worker would accept (§4.2); the reason in the API's words.
fn check(value: &[u8]) -> Result<(), String> {
    match decode_record(Some(value)) {
        Ok(_) => Ok(()),
        Err(SkipReason::MissingType) => Err("type is required".into()),
        Err(SkipReason::InvalidDate) => Err("date must use RFC3339".into()),
        Err(SkipReason::InvalidKey(key)) => Err(format!("{key} must be a string")),
        Err(SkipReason::NotObject | SkipReason::Empty | SkipReason::InvalidJson) => {
            Err("not a JSON object".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_the_source_text_of_each_element() {
        let body = b" [ {\"type\":\"a\"} ,\n\t{ \"type\" : \"b\" } ] ";
        let Ok(Events::Many(values)) = split(body) else {
            panic!("not split into events");
        };
        assert_eq!(values, [&b"{\"type\":\"a\"}"[..], &b"{ \"type\" : \"b\" }"[..]]);
        assert!(matches!(split(b" {\"type\":\"a\"} "), Ok(Events::One(v)) if v == b"{\"type\":\"a\"}"));
        assert!(matches!(split(b"{} {}"), Err(BodyError::NotSingle)));
        assert!(matches!(split(b"  "), Err(BodyError::Empty)));
    }

    #[test]
    fn reasons_are_the_contracts() {
        assert_eq!(check(b"{\"app\":\"x\"}"), Err("type is required".into()));
        assert_eq!(check(b"{\"type\":\"\"}"), Err("type is required".into()));
        assert_eq!(check(b"[1]"), Err("not a JSON object".into()));
        assert_eq!(check(b"\"s\""), Err("not a JSON object".into()));
        assert_eq!(
            check(b"{\"type\":\"t\",\"date\":\"yesterday\"}"),
            Err("date must use RFC3339".into())
        );
        assert_eq!(
            check(b"{\"type\":\"t\",\"app\":1}"),
            Err("app must be a string".into())
        );
        assert_eq!(check(b"{\"type\":\"t\",\"payload\":[1,{}]}"), Ok(()));
    }
}
