//! Replay (spec §2.7): bulk replay paging and counts, its validation messages, idempotency
//! across both replay routes, and concurrent replays of one delivery. Rows are written through
//! the store; no worker runs, so what the API did stays visible.

use serde_json::Value;

use crate::both_backends;
use crate::harness::{config_row, first_attempt, refs, Reply, TestApp};
use webhooks::domain::time::Timestamp;
use webhooks::store::model::FirstAttempt;

fn minutes_ago(m: i64) -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::minutes(m))
}

/// Inserts configs and delivery rows through the store.
async fn seed(app: &TestApp, configs: Vec<webhooks::domain::config::Config>, rows: Vec<FirstAttempt>) {
    app.store()
        .run(move |q| {
            for c in &configs {
                q.insert_config(c)?;
            }
            q.record_first_attempts(&refs(&rows), Timestamp::now())?;
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn bulk(app: &TestApp, key: &str, body: &str) -> Reply {
    app.post_with_key("/deliveries/replay", Some(key), Some(body))
        .await
}

fn data(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["data"].clone()
}

/// `(replayed, expedited, skipped, hasMore)` of a bulk replay page.
fn counts(page: &Value) -> (i64, i64, i64, bool) {
    let n = |k: &str| page[k].as_i64().unwrap_or(-1);
    (
        n("replayed"),
        n("expedited"),
        n("skipped"),
        page["hasMore"] == true,
    )
}

both_backends!(bulk_replay_pages_through_a_mixed_set, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let (a, other) = (config_row(), config_row());
    let mut inactive = config_row();
    inactive.active = false;
    let from = minutes_ago(100);
    // In the window for config A, oldest first: failed, pending, succeeded, failed.
    let mixed = [
        first_attempt(&a.id, 0, "failed", minutes_ago(50)),
        first_attempt(&a.id, 1, "pending", minutes_ago(40)),
        first_attempt(&a.id, 2, "succeeded", minutes_ago(30)),
        first_attempt(&a.id, 3, "failed", minutes_ago(20)),
    ];
    let ids: Vec<String> = mixed.iter().map(|r| r.delivery.id.clone()).collect();
    let mut rows = mixed.to_vec();
    // Untouched: before the window, another config (filtered out), an inactive config.
    rows.push(first_attempt(&a.id, 4, "failed", minutes_ago(200)));
    rows.push(first_attempt(&other.id, 5, "failed", minutes_ago(45)));
    rows.push(first_attempt(&inactive.id, 6, "failed", minutes_ago(45)));
    let untouched: Vec<String> = rows[4..].iter().map(|r| r.delivery.id.clone()).collect();
    let a_id = a.id.clone();
    seed(&app, vec![a, other, inactive], rows).await;

    let first_request = format!(
        r#"{{"createdAtFrom":"{}","pageSize":2,"configIds":["{a_id}"]}}"#,
        from.to_rfc3339()
    );
    let first = bulk(&app, "page-1", &first_request).await;
    let page = data(&first);
    assert_eq!(counts(&page), (1, 1, 0, true), "{page}");
    let to = page["createdAtTo"].as_str().unwrap_or_default().to_owned();
    assert!(!to.is_empty(), "{page}");
    let cursor = page["nextCursor"].as_str().unwrap_or_default().to_owned();
    assert!(!cursor.is_empty(), "{page}");

    // The same page again under its key: the stored answer, nothing changes.
    assert_eq!(bulk(&app, "page-1", &first_request).await.body, first.body);
    // The key with another request, or with the single route: conflict.
    let conflict =
        r#"{"errorCode":"CONFLICT","errorMessage":"idempotency key already used with another request"}"#;
    let other_page = format!(r#"{{"createdAtFrom":"{}","pageSize":3}}"#, from.to_rfc3339());
    assert_eq!(bulk(&app, "page-1", &other_page).await.body.trim_end(), conflict);
    let single = app
        .post_with_key(&format!("/deliveries/{}/replay", ids[0]), Some("page-1"), None)
        .await;
    assert_eq!((single.status, single.body.trim_end()), (409, conflict));

    // The next page: same filters, the cursor, `createdAtTo` taken from the cursor.
    let second_request = format!(
        r#"{{"createdAtFrom":"{}","pageSize":2,"configIds":["{a_id}"],"cursor":"{cursor}"}}"#,
        from.to_rfc3339()
    );
    let page = data(&bulk(&app, "page-2", &second_request).await);
    assert_eq!(counts(&page), (1, 0, 0, false), "{page}");
    assert!(page.get("nextCursor").is_none(), "{page}");
    assert_eq!(page["createdAtTo"].as_str(), Some(to.as_str()));

    let store = app.store();
    let state = |id: String| {
        let store = store.clone();
        async move {
            store
                .run(move |q| Ok(q.get_delivery(&id)?))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("delivery gone"))
        }
    };
    let before = Timestamp::now();
    for (i, id) in ids.iter().enumerate() {
        let d = state(id.clone()).await;
        let expected = match i {
            // Replayed: a new generation with a fresh budget, due now.
            0 | 3 => ("pending", 1, 0),
            // Expedited: same generation and count.
            1 => ("pending", 0, 1),
            _ => ("succeeded", 0, 1),
        };
        assert_eq!(
            (d.status.as_str(), d.replay_generation, d.attempt_count),
            expected,
            "row {i}"
        );
        if i != 2 {
            let due = d.next_attempt_at.map(|t| t.0).unwrap_or(before);
            assert!(due <= before, "row {i} is not due now");
        }
    }
    for id in untouched {
        let d = state(id).await;
        assert_eq!((d.status.as_str(), d.replay_generation), ("failed", 0));
    }
});

both_backends!(bulk_replay_validation_messages, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let from = minutes_ago(60).to_rfc3339();
    let list_cursor = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"createdAt":"2024-05-01T10:00:00Z","id":"x"}"#)
    };
    let cases: Vec<(String, &str)> = vec![
        ("{}".into(), "createdAtFrom is required"),
        (r#"{"createdAtFrom":null}"#.into(), "createdAtFrom is required"),
        (
            r#"{"createdAtFrom":"0001-01-01T00:00:00Z"}"#.into(),
            "createdAtFrom is required",
        ),
        (
            format!(r#"{{"createdAtFrom":"{from}","pageSize":1001}}"#),
            "pageSize must be between 1 and 1000",
        ),
        (
            format!(r#"{{"createdAtFrom":"{from}","pageSize":-1}}"#),
            "pageSize must be between 1 and 1000",
        ),
        (
            format!(r#"{{"createdAtFrom":"{from}","statuses":["failed","succeeded"]}}"#),
            "bulk replay only accepts failed and pending statuses",
        ),
        (
            format!(r#"{{"createdAtFrom":"{from}","configIds":["not-a-uuid"]}}"#),
            "configIds must contain UUIDs",
        ),
        (
            format!(r#"{{"createdAtFrom":"{from}","cursor":"{list_cursor}"}}"#),
            "invalid replay cursor",
        ),
        (
            format!(
                r#"{{"createdAtFrom":"{from}","createdAtTo":"{}"}}"#,
                minutes_ago(61).to_rfc3339()
            ),
            "replay window must be positive and at most 90 days",
        ),
        (
            format!(
                r#"{{"createdAtFrom":"{}"}}"#,
                minutes_ago(91 * 24 * 60).to_rfc3339()
            ),
            "replay window must be positive and at most 90 days",
        ),
        (
            format!(r#"{{"createdAtFrom":"{}"}}"#, minutes_ago(-60).to_rfc3339()),
            "replay window must be positive and at most 90 days",
        ),
        (
            r#"{"createdAtFrom":"2024-05-01T10:00:00Z","foo":1}"#.into(),
            "Request body contains unknown field \"foo\"",
        ),
        (
            r#"{"createdAtFrom":1}"#.into(),
            "Request body contains an invalid value for the \"createdAtFrom\" field (at position 18)",
        ),
        (String::new(), "Request body must not be empty"),
        ("{".into(), "Request body contains badly-formed JSON"),
    ];
    for (i, (body, message)) in cases.iter().enumerate() {
        bulk(&app, &format!("k{i}"), body)
            .await
            .assert_error(400, "VALIDATION", message);
    }
    // Messages with a parser's detail: only the contract's part is checked.
    for (body, prefix) in [
        (
            r#"{"createdAtFrom":"yesterday"}"#.to_owned(),
            "timestamp must use RFC3339: ",
        ),
        (
            format!(r#"{{"createdAtFrom":"{from}","cursor":"!!"}}"#),
            "invalid replay cursor: ",
        ),
    ] {
        let reply = bulk(&app, "kd", &body).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        let message = reply.json()["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.starts_with(prefix), "{message}");
    }
    let no_key = app
        .post_with_key(
            "/deliveries/replay",
            None,
            Some(&format!(r#"{{"createdAtFrom":"{from}"}}"#)),
        )
        .await;
    no_key.assert_error(400, "VALIDATION", "Idempotency-Key header is required");
    let long = "k".repeat(256);
    bulk(&app, &long, "{}").await.assert_error(
        400,
        "VALIDATION",
        "Idempotency-Key must not exceed 255 characters",
    );
    let wrong_type = app
        .client
        .post(format!("{}/deliveries/replay", app.base))
        .header("Idempotency-Key", "ct")
        .header("content-type", "text/plain")
        .body(format!(r#"{{"createdAtFrom":"{from}"}}"#))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Reply::read(wrong_type).await.assert_error(
        400,
        "VALIDATION",
        "Content-Type header should be application/json",
    );

    // A cursor of other filters is refused; so is a `createdAtTo` other than the cursor's.
    let config = config_row();
    let rows = (0..3)
        .map(|i| {
            first_attempt(
                &config.id,
                i,
                "failed",
                minutes_ago(30 - i64::try_from(i).unwrap_or(0)),
            )
        })
        .collect();
    seed(&app, vec![config], rows).await;
    let page = data(
        &bulk(
            &app,
            "first",
            &format!(r#"{{"createdAtFrom":"{from}","pageSize":1}}"#),
        )
        .await,
    );
    let cursor = page["nextCursor"].as_str().unwrap_or_default().to_owned();
    let mismatch = "replay cursor does not match request filters";
    for body in [
        format!(r#"{{"createdAtFrom":"{from}","pageSize":1,"cursor":"{cursor}","statuses":["failed"]}}"#),
        format!(
            r#"{{"createdAtFrom":"{}","pageSize":1,"cursor":"{cursor}"}}"#,
            minutes_ago(59).to_rfc3339()
        ),
        format!(
            r#"{{"createdAtFrom":"{from}","createdAtTo":"{}","pageSize":1,"cursor":"{cursor}"}}"#,
            minutes_ago(1).to_rfc3339()
        ),
        format!(
            r#"{{"createdAtFrom":"{from}","pageSize":1,"cursor":"{cursor}","configIds":["{}"]}}"#,
            uuid::Uuid::new_v4()
        ),
    ] {
        bulk(&app, "mismatch", &body)
            .await
            .assert_error(400, "VALIDATION", mismatch);
    }
    // Statuses in another order are the same filter.
    let page = data(
        &bulk(
            &app,
            "second",
            &format!(
                r#"{{"createdAtFrom":"{from}","pageSize":1,"cursor":"{cursor}","statuses":["pending","failed"]}}"#
            ),
        )
        .await,
    );
    assert_eq!(page["replayed"], 1, "{page}");
});

// Many replays of one delivery at once: one new generation, whatever the keys.
both_backends!(concurrent_replays_apply_once, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let config = config_row();
    let (same_key, other_keys) = (
        first_attempt(&config.id, 0, "failed", minutes_ago(10)),
        first_attempt(&config.id, 1, "failed", minutes_ago(10)),
    );
    let (d1, d2) = (same_key.delivery.id.clone(), other_keys.delivery.id.clone());
    seed(&app, vec![config], vec![same_key, other_keys]).await;

    let path = format!("/deliveries/{d1}/replay");
    let replies =
        futures_util::future::join_all((0..10).map(|_| app.post_with_key(&path, Some("same"), None))).await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert!(
        replies.iter().all(|r| r.body == replies[0].body),
        "the stored answer differs"
    );

    let path = format!("/deliveries/{d2}/replay");
    let keys: Vec<String> = (0..10).map(|i| format!("key-{i}")).collect();
    let replies =
        futures_util::future::join_all(keys.iter().map(|k| app.post_with_key(&path, Some(k), None))).await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    // One replay started generation 1; the others found it pending and only made it due.
    let generations: Vec<i64> = replies
        .iter()
        .map(|r| r.json()["data"]["replayGeneration"].as_i64().unwrap_or(-1))
        .collect();
    assert!(generations.iter().all(|g| *g == 1), "{generations:?}");

    for id in [d1, d2] {
        let d = app
            .store()
            .run(move |q| Ok(q.get_delivery(&id)?))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("delivery gone"));
        assert_eq!(
            (d.status.as_str(), d.replay_generation, d.attempt_count),
            ("pending", 1, 0)
        );
    }
});
