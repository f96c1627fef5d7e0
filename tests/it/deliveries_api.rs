//! `GET /deliveries`, `/deliveries/{id}` and `/deliveries/{id}/attempts` (spec §2.7), on both
//! backends, over rows written through the store.

use serde_json::Value;

use crate::both_backends;
use crate::harness::{config_row, first_attempt, refs, Backend, TestApp};
use webhooks::domain::time::Timestamp;

fn minutes_ago(m: i64) -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::minutes(m))
}

/// Two configs; config A gets 5 deliveries (statuses below, oldest first), B one.
async fn seeded(backend: Backend) -> (TestApp, String, String) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (config_row(), config_row());
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    let statuses = ["failed", "pending", "succeeded", "failed", "pending"];
    let mut rows: Vec<_> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| first_attempt(&a_id, i, s, minutes_ago(50 - i64::try_from(i).unwrap_or(0) * 10)))
        .collect();
    rows.push(first_attempt(&b_id, 99, "succeeded", minutes_ago(5)));
    app.store()
        .run(move |q| {
            q.insert_config(&a)?;
            q.insert_config(&b)?;
            q.record_first_attempts(&refs(&rows), Timestamp::now())?;
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (app, a_id, b_id)
}

fn items(v: &Value) -> Vec<Value> {
    v["cursor"]["data"].as_array().cloned().unwrap_or_default()
}

both_backends!(list_pages_newest_first_without_payload, |backend| async move {
    let (app, a, _) = seeded(backend).await;
    let mut seen = Vec::new();
    let mut path = format!("/deliveries?configId={a}&pageSize=2");
    loop {
        let reply = app.get(&path).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let page = reply.json();
        assert_eq!(page["cursor"]["pageSize"], 2);
        for item in items(&page) {
            assert!(item.get("payload").is_none(), "{item}");
            seen.push(item);
        }
        if page["cursor"]["hasMore"] == false {
            assert!(page["cursor"].get("next").is_none());
            break;
        }
        let next = page["cursor"]["next"].as_str().unwrap_or_default().to_owned();
        path = format!("/deliveries?configId={a}&pageSize=2&cursor={next}");
    }
    assert_eq!(seen.len(), 5);
    let statuses: Vec<&str> = seen
        .iter()
        .map(|d| d["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["pending", "failed", "succeeded", "pending", "failed"]);
    let created: Vec<&str> = seen
        .iter()
        .map(|d| d["createdAt"].as_str().unwrap_or_default())
        .collect();
    assert!(created.windows(2).all(|w| w[0] > w[1]), "{created:?}");
});

both_backends!(list_filters_by_status_config_and_time, |backend| async move {
    let (app, a, b) = seeded(backend).await;
    let failed = items(
        &app.get(&format!("/deliveries?configId={a}&status=failed"))
            .await
            .json(),
    );
    assert_eq!(failed.len(), 2);
    assert!(failed
        .iter()
        .all(|d| d["configID"] == a.as_str() && d["status"] == "failed"));
    let all = items(&app.get("/deliveries").await.json());
    assert_eq!(all.len(), 6);
    assert_eq!(all[0]["configID"], b.as_str());
    let from = minutes_ago(35).to_rfc3339();
    let to = minutes_ago(15).to_rfc3339();
    let window = items(
        &app.get(&format!("/deliveries?createdAtFrom={from}&createdAtTo={to}"))
            .await
            .json(),
    );
    assert_eq!(window.len(), 2, "{window:?}");
});

both_backends!(one_delivery_with_payload_and_its_attempts, |backend| async move {
    let (app, a, _) = seeded(backend).await;
    let first = items(
        &app.get(&format!("/deliveries?configId={a}&pageSize=1"))
            .await
            .json(),
    )[0]
    .clone();
    let id = first["id"].as_str().unwrap_or_default().to_owned();
    let reply = app.get(&format!("/deliveries/{id}")).await;
    assert_eq!(reply.status, 200);
    let d = reply.json()["data"].clone();
    assert_eq!(d["payload"], "{\"n\":4}");
    assert_eq!(d["eventID"], "t/0/4");
    assert_eq!(
        (d["attemptCount"].as_i64(), d["lastStatusCode"].as_i64()),
        (Some(1), Some(500))
    );
    assert!(
        d.get("idempotencyKey").is_none() && d.get("lastError").is_none() && d.get("claimedAt").is_none()
    );
    let keys = [
        "\"id\"",
        "\"eventID\"",
        "\"configID\"",
        "\"eventType\"",
        "\"payload\"",
        "\"status\"",
        "\"attemptCount\"",
        "\"replayGeneration\"",
        "\"cycleStartedAt\"",
        "\"nextAttemptAt\"",
        "\"lastAttemptAt\"",
        "\"lastStatusCode\"",
        "\"createdAt\"",
        "\"updatedAt\"",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| reply.body.find(k).unwrap_or(usize::MAX))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{}", reply.body);
    let attempts = app.get(&format!("/deliveries/{id}/attempts?foo=ignored")).await;
    assert_eq!(attempts.status, 200, "{}", attempts.body);
    let list = items(&attempts.json());
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0]["deliveryID"].as_str(), list[0]["outcome"].as_str()),
        (Some(id.as_str()), Some("retryable_failure"))
    );
    assert_eq!(
        (list[0]["attemptNumber"].as_i64(), list[0]["statusCode"].as_i64()),
        (Some(1), Some(500))
    );
    app.get("/deliveries/unknown")
        .await
        .assert_error(404, "NOT_FOUND", "delivery not found");
    app.get("/deliveries/unknown/attempts")
        .await
        .assert_error(404, "NOT_FOUND", "delivery not found");
    app.get(&format!("/deliveries/{id}/attempts?pageSize=0"))
        .await
        .assert_error(400, "VALIDATION", "pageSize must be between 1 and 1000");
});

both_backends!(list_validation_messages, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let cases = [
        ("foo=1", "unsupported query parameter: foo"),
        ("status=failed&foo=1", "unsupported query parameter: foo"),
        (
            "status=failed&status=pending",
            "query parameters must have one value",
        ),
        ("configId=x", "configId must be a UUID"),
        ("status=bogus", "invalid delivery status"),
        ("pageSize=0", "pageSize must be between 1 and 1000"),
        ("pageSize=1001", "pageSize must be between 1 and 1000"),
        ("pageSize=abc", "pageSize must be between 1 and 1000"),
        ("cursor=eyJ4Ijox", "invalid cursor"),
    ];
    for (query, message) in cases {
        app.get(&format!("/deliveries?{query}"))
            .await
            .assert_error(400, "VALIDATION", message);
    }
    let reply = app.get("/deliveries?createdAtFrom=yesterday").await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["errorMessage"]
        .as_str()
        .unwrap_or_default()
        .starts_with("timestamp must use RFC3339: "));
    let reply = app.get("/deliveries?cursor=%21%21").await;
    assert!(
        reply.json()["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .starts_with("invalid cursor: "),
        "{}",
        reply.body
    );
    // Checked in order: an unknown parameter wins over a bad value.
    app.get("/deliveries?configId=x&foo=1").await.assert_error(
        400,
        "VALIDATION",
        "unsupported query parameter: foo",
    );
    let empty = app.get("/deliveries").await;
    assert_eq!(
        empty.body,
        "{\"cursor\":{\"pageSize\":100,\"hasMore\":false,\"data\":[]}}\n"
    );
});
