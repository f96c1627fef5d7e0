//! The config API fixtures of spec §9.1, on both backends.

use serde_json::Value;

use crate::both_backends;
use std::time::Duration;

use crate::harness::{eventually, TestApp};

const VALID: &str =
    r#"{"endpoint":"https://example.com/hook","eventTypes":["LEDGER.Committed_Transactions"]}"#;

fn assert_config_shape(c: &Value) {
    let keys: Vec<&str> = c
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "active",
            "createdAt",
            "endpoint",
            "eventTypes",
            "id",
            "name",
            "secret",
            "updatedAt"
        ]
    );
    assert_eq!(c["secret"].as_str().map(str::len), Some(32));
    assert!(uuid::Uuid::parse_str(c["id"].as_str().unwrap_or_default()).is_ok());
    for t in ["createdAt", "updatedAt"] {
        let s = c[t].as_str().unwrap_or_default();
        assert!(
            s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            "{t}: {s}"
        );
    }
}

both_backends!(insert_returns_the_stored_config, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let reply = app.send_json("POST", "/configs", VALID).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type, "application/json");
    assert!(reply.body.ends_with("}\n"));
    // Keys in contract order, compared on the raw text.
    let order: Vec<usize> = [
        "\"endpoint\"",
        "\"secret\"",
        "\"eventTypes\"",
        "\"id\"",
        "\"active\"",
        "\"name\"",
        "\"createdAt\"",
        "\"updatedAt\"",
    ]
    .iter()
    .map(|k| reply.body.find(k).unwrap_or(usize::MAX))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "key order: {}", reply.body);
    let c = &reply.json()["data"];
    assert_config_shape(c);
    assert_eq!(c["endpoint"], "https://example.com/hook");
    assert_eq!(
        c["eventTypes"],
        serde_json::json!(["ledger.committed_transactions"])
    );
    assert_eq!(c["active"], true);
    assert_eq!(c["name"], "");
    assert_eq!(c["createdAt"], c["updatedAt"]);
    // What the insert returned is exactly what a later read returns (microsecond times).
    let listed = app.get("/configs").await.json();
    assert_eq!(&listed["cursor"]["data"][0], c);
});

both_backends!(charset_parameter_is_accepted, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let reply = app
        .request(
            "POST",
            "/configs",
            Some(VALID),
            Some("application/json; charset=utf-8"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = app
        .request("POST", "/configs", Some(VALID), Some("Application/JSON"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
});

both_backends!(insert_validation_messages, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let cases: &[(&str, &str)] = &[
        (
            r#"{"endpoint":"https://example.com/hook","eventTypes":["a"],"name":"x"}"#,
            "Request body contains unknown field \"name\"",
        ),
        (
            r#"{"endpoint":"","eventTypes":["a"]}"#,
            "invalid config: endpoint should be a valid url",
        ),
        (
            r#"{"endpoint":"example.com","eventTypes":["a"]}"#,
            "invalid config: endpoint should be a valid url",
        ),
        (
            r#"{"endpoint":"ftp://x","eventTypes":["a"]}"#,
            "invalid config: endpoint should be a valid url",
        ),
        (
            r#"{"endpoint":"https://","eventTypes":["a"]}"#,
            "invalid config: endpoint should be a valid url",
        ),
        (
            r#"{"endpoint":" http://x","eventTypes":["a"]}"#,
            "invalid config: endpoint should be a valid url",
        ),
        (
            r#"{"endpoint":"https://x","eventTypes":[]}"#,
            "invalid config: eventTypes should be filled",
        ),
        (
            r#"{"endpoint":"https://x","eventTypes":[""]}"#,
            "invalid config: eventTypes should be filled",
        ),
        (
            r#"{"endpoint":"https://x","secret":"invalid","eventTypes":["a"]}"#,
            "invalid config: secret should be base64 encoded: illegal base64 data at input byte 4",
        ),
        (
            r#"{"endpoint":"https://x","secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRY=","eventTypes":["a"]}"#,
            "invalid config: decoded secret should be of size 24",
        ),
        (
            r#"{"endpoint":1,"eventTypes":["a"]}"#,
            "Request body contains an invalid value for the \"endpoint\" field (at position 13)",
        ),
        (
            r#"{"endpoint":}"#,
            "Request body contains badly-formed JSON (at position 13)",
        ),
        (
            r#"{"endpoint":"https://x""#,
            "Request body contains badly-formed JSON",
        ),
        ("", "Request body must not be empty"),
        (
            &format!("{VALID}{{}}"),
            "Request body must only contain a single JSON object",
        ),
    ];
    for (body, message) in cases {
        let reply = app.send_json("POST", "/configs", body).await;
        reply.assert_error(400, "VALIDATION", message);
        let reply = app.send_json("PUT", "/configs/whatever", body).await;
        reply.assert_error(400, "VALIDATION", message);
    }
    let reply = app
        .request("POST", "/configs", Some(VALID), Some("text/plain"))
        .await;
    reply.assert_error(
        400,
        "VALIDATION",
        "Content-Type header should be application/json",
    );
    let reply = app.request("POST", "/configs", Some(VALID), None).await;
    reply.assert_error(
        400,
        "VALIDATION",
        "Content-Type header should be application/json",
    );
    // Nothing was stored by any refused request.
    assert_eq!(
        app.get("/configs").await.json()["cursor"]["data"],
        serde_json::json!([])
    );
});

both_backends!(supplied_secret_is_kept, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let body = r#"{"endpoint":"https://x","secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX","eventTypes":["a"]}"#;
    let reply = app.send_json("POST", "/configs", body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["data"]["secret"], "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");
});

both_backends!(body_over_the_limit_is_413, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let body = "x".repeat(1_048_577);
    let reply = app.send_json("POST", "/configs", &body).await;
    reply.assert_error(
        413,
        "VALIDATION",
        "Request body must not be larger than 1048576 bytes",
    );
    // 2 MiB, the acceptance item's size.
    let body = " ".repeat(2 * 1024 * 1024);
    let reply = app.send_json("POST", "/configs", &body).await;
    reply.assert_error(
        413,
        "VALIDATION",
        "Request body must not be larger than 1048576 bytes",
    );
    // Exactly at the limit is parsed (and here refused as JSON, not as too large).
    let body = format!("{}{}", " ".repeat(1_048_576 - VALID.len()), VALID);
    assert_eq!(body.len(), 1_048_576);
    let reply = app.send_json("POST", "/configs", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
});

both_backends!(list_empty_and_ordering, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let reply = app.get("/configs").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "{\"cursor\":{\"hasMore\":false,\"data\":[]}}\n")
    );
    let first = app.create_config("https://one.example/h", &["a"]).await;
    let second = app.create_config("https://two.example/h", &["b"]).await;
    let list = app.get("/configs").await.json();
    let ids: Vec<&Value> = list["cursor"]["data"]
        .as_array()
        .map(|a| a.iter().map(|c| &c["id"]).collect())
        .unwrap_or_default();
    assert_eq!(ids, [&second["id"], &first["id"]]);
    assert_eq!(list["cursor"]["hasMore"], false);
});

both_backends!(list_filters, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let first = app.create_config("https://one.example/h?x=1", &["a"]).await;
    app.create_config("https://two.example/h", &["b"]).await;
    let only_first = |v: Value| {
        let data = v["cursor"]["data"].clone();
        assert_eq!(data.as_array().map(Vec::len), Some(1), "{data}");
        assert_eq!(data[0]["id"], first["id"]);
    };
    let id = first["id"].as_str().unwrap_or_default();
    only_first(app.get(&format!("/configs?id={id}")).await.json());
    only_first(
        app.get("/configs?endpoint=https%3A%2F%2Fone.example%2Fh%3Fx%3D1")
            .await
            .json(),
    );
    only_first(
        app.get(&format!(
            "/configs?endpoint=https%3A%2F%2Fone.example%2Fh%3Fx%3D1&id={id}"
        ))
        .await
        .json(),
    );
    let mismatch = format!("endpoint=https%3A%2F%2Ftwo.example%2Fh&id={id}");
    for q in ["id=unknown", "endpoint=https://nope.example/", mismatch.as_str()] {
        let reply = app.get(&format!("/configs?{q}")).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "{\"cursor\":{\"hasMore\":false,\"data\":[]}}\n"),
            "{q}"
        );
    }
    let bad = "invalid params: only 'id' and 'endpoint' with a valid URL are accepted";
    for q in [
        "foo=bar",
        "id=a&id=b",
        "endpoint=a&endpoint=b",
        "endpoint=http%3A%2F%2Fx%3Aabc",
        "endpoint=%25zz",
        "endpoint=%01",
    ] {
        app.get(&format!("/configs?{q}"))
            .await
            .assert_error(400, "VALIDATION", bad);
    }
});

both_backends!(delete_is_soft_and_final, |backend| async move {
    let app = TestApp::spawn(backend).await;
    app.request("DELETE", "/configs/unknown", None, None)
        .await
        .assert_error(404, "NOT_FOUND", "config not found");
    let c = app.create_config("https://x.example/h", &["a"]).await;
    let id = c["id"].as_str().unwrap_or_default();
    let reply = app.request("DELETE", &format!("/configs/{id}"), None, None).await;
    assert_eq!(
        (reply.status, reply.body.as_str(), reply.content_type.as_str()),
        (200, "", "application/json")
    );
    app.request("DELETE", &format!("/configs/{id}"), None, None)
        .await
        .assert_error(404, "NOT_FOUND", "config not found");
    assert_eq!(
        app.get("/configs").await.json()["cursor"]["data"],
        serde_json::json!([])
    );
    // Every other route treats it as unknown too.
    for (method, path) in [
        ("PUT", "activate"),
        ("PUT", "deactivate"),
        ("PUT", "secret/change"),
        ("GET", "test"),
    ] {
        app.request(method, &format!("/configs/{id}/{path}"), None, None)
            .await
            .assert_error(404, "NOT_FOUND", "config not found");
    }
    app.send_json(
        "PUT",
        &format!("/configs/{id}"),
        r#"{"endpoint":"https://y","eventTypes":["a"]}"#,
    )
    .await
    .assert_error(404, "NOT_FOUND", "config not found");
});

both_backends!(update_replaces_endpoint_and_keeps_secret, |backend| async move {
    let app = TestApp::spawn(backend).await;
    app.send_json(
        "PUT",
        "/configs/unknown",
        r#"{"endpoint":"https://new.example/h","eventTypes":["a"]}"#,
    )
    .await
    .assert_error(404, "NOT_FOUND", "config not found");
    let c = app.create_config("https://old.example/h", &["x"]).await;
    let id = c["id"].as_str().unwrap_or_default();
    let reply = app
        .send_json(
            "PUT",
            &format!("/configs/{id}"),
            r#"{"endpoint":"https://new.example/h","eventTypes":["A"]}"#,
        )
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    let now = &app.get(&format!("/configs?id={id}")).await.json()["cursor"]["data"][0];
    assert_eq!(now["endpoint"], "https://new.example/h");
    assert_eq!(now["eventTypes"], serde_json::json!(["a"]));
    assert_eq!(now["secret"], c["secret"]);
    assert_eq!(now["active"], true);
    assert_eq!(now["createdAt"], c["createdAt"]);
    assert!(later(&now["updatedAt"], &c["updatedAt"]), "{now} vs {c}");
    // A secret in the body replaces it.
    let body = r#"{"endpoint":"https://new.example/h","eventTypes":["a"],"secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"}"#;
    assert_eq!(
        app.send_json("PUT", &format!("/configs/{id}"), body).await.status,
        200
    );
    let now = &app.get(&format!("/configs?id={id}")).await.json()["cursor"]["data"][0];
    assert_eq!(now["secret"], "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");
});

fn later(a: &Value, b: &Value) -> bool {
    let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default()).ok();
    matches!((parse(a), parse(b)), (Some(a), Some(b)) if a > b)
}

both_backends!(activate_and_deactivate, |backend| async move {
    let app = TestApp::spawn(backend).await;
    app.request("PUT", "/configs/unknown/deactivate", None, None)
        .await
        .assert_error(404, "NOT_FOUND", "config not found");
    app.request("PUT", "/configs/unknown/activate", None, None)
        .await
        .assert_error(404, "NOT_FOUND", "config not found");
    let c = app.create_config("https://x.example/h", &["a"]).await;
    let id = c["id"].as_str().unwrap_or_default();
    let first = app
        .request("PUT", &format!("/configs/{id}/deactivate"), None, None)
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json()["data"].clone();
    assert_eq!(first["active"], false);
    assert!(later(&first["updatedAt"], &c["updatedAt"]));
    let second = app
        .request("PUT", &format!("/configs/{id}/deactivate"), None, None)
        .await
        .json()["data"]
        .clone();
    assert_eq!(second, first);
    let listed = &app.get("/configs").await.json()["cursor"]["data"][0];
    assert_eq!(listed["active"], false);
    let active = app
        .request("PUT", &format!("/configs/{id}/activate"), None, None)
        .await
        .json()["data"]
        .clone();
    assert_eq!(active["active"], true);
    assert!(later(&active["updatedAt"], &first["updatedAt"]));
    assert_eq!(
        app.get("/configs").await.json()["cursor"]["data"][0]["active"],
        true
    );
});

both_backends!(change_secret, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let c = app.create_config("https://x.example/h", &["a"]).await;
    let id = c["id"].as_str().unwrap_or_default();
    let path = format!("/configs/{id}/secret/change");
    // No body, no content type: generate.
    let r1 = app.request("PUT", &path, None, None).await;
    assert_eq!(r1.status, 200, "{}", r1.body);
    let r1 = r1.json()["data"].clone();
    assert_eq!(r1["secret"].as_str().map(str::len), Some(32));
    assert_ne!(r1["secret"], c["secret"]);
    assert!(later(&r1["updatedAt"], &c["updatedAt"]));
    // `{"secret":""}`, `{}` and `null` generate too.
    let mut last = r1["secret"].clone();
    for body in [r#"{"secret":""}"#, "{}", "null"] {
        let r = app.send_json("PUT", &path, body).await;
        assert_eq!(r.status, 200, "{body}: {}", r.body);
        let s = r.json()["data"]["secret"].clone();
        assert_ne!(s, last, "{body}");
        assert_eq!(
            app.get(&format!("/configs?id={id}")).await.json()["cursor"]["data"][0]["secret"],
            s
        );
        // The unfiltered list too, which is served from memory between changes.
        assert_eq!(
            app.get("/configs").await.json()["cursor"]["data"][0]["secret"],
            s,
            "{body}"
        );
        last = s;
    }
    // A supplied secret is validated (without the `invalid config:` prefix) and used.
    app.send_json("PUT", &path, r#"{"secret":"invalid"}"#)
        .await
        .assert_error(
            400,
            "VALIDATION",
            "secret should be base64 encoded: illegal base64 data at input byte 4",
        );
    app.send_json("PUT", &path, r#"{"secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRY="}"#)
        .await
        .assert_error(400, "VALIDATION", "decoded secret should be of size 24");
    app.send_json(
        "PUT",
        &path,
        r#"{"secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX","x":1}"#,
    )
    .await
    .assert_error(400, "VALIDATION", "Request body contains unknown field \"x\"");
    app.request("PUT", &path, Some(r#"{"secret":""}"#), Some("text/plain"))
        .await
        .assert_error(
            400,
            "VALIDATION",
            "Content-Type header should be application/json",
        );
    let set = app
        .send_json("PUT", &path, r#"{"secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"}"#)
        .await
        .json()["data"]
        .clone();
    assert_eq!(set["secret"], "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");
    // The same secret again changes nothing.
    let again = app
        .send_json("PUT", &path, r#"{"secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"}"#)
        .await
        .json()["data"]
        .clone();
    assert_eq!(again, set);
    app.request("PUT", "/configs/unknown/secret/change", None, None)
        .await
        .assert_error(404, "NOT_FOUND", "config not found");
});

both_backends!(unknown_routes_and_methods, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let c = app.create_config("https://x.example/h", &["a"]).await;
    let id = c["id"].as_str().unwrap_or_default();
    app.get("/nope")
        .await
        .assert_error(404, "NOT_FOUND", "route not found");
    app.get("/configs/")
        .await
        .assert_error(404, "NOT_FOUND", "route not found");
    app.request("POST", &format!("/configs/{id}"), None, None)
        .await
        .assert_error(405, "VALIDATION", "method not allowed");
    app.request("DELETE", "/configs", None, None)
        .await
        .assert_error(405, "VALIDATION", "method not allowed");
    app.request("POST", &format!("/configs/{id}/test"), None, None)
        .await
        .assert_error(405, "VALIDATION", "method not allowed");
});

both_backends!(info_and_healthcheck, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let reply = app.get("/_info").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, format!("{{\"version\":\"{}\"}}\n", webhooks::VERSION));
    let reply = app.get("/_healthcheck").await;
    assert_eq!(
        (reply.status, reply.body.as_str(), reply.content_type.as_str()),
        (200, "", "application/json")
    );
});

/// Storage going away mid-flight: the API answers 500 with the fixed body and the healthcheck
/// 503. PostgreSQL only: the embedded SQLite file cannot be "stopped" under a running process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_stopped_postgres() {
    let (db, proxy) = crate::harness::postgres_behind_proxy().await;
    let app = TestApp::spawn_on(db, &[]).await;
    assert_eq!(app.get("/configs").await.status, 200);
    proxy.cut();
    // The list kept in memory is served until the process notices that its config change
    // listener lost the database (at most 3 s); then the list needs the database.
    let reply = eventually(
        Duration::from_secs(10),
        "GET /configs to need the database",
        || {
            let app = &app;
            async move {
                let reply = app.get("/configs").await;
                (reply.status != 200).then_some(reply)
            }
        },
    )
    .await;
    reply.assert_error(500, "INTERNAL", "internal error");
    app.get("/configs?id=x")
        .await
        .assert_error(500, "INTERNAL", "internal error");
    app.get("/_healthcheck")
        .await
        .assert_error(503, "INTERNAL", "storage unavailable");
}

/// `(id, endpoint)` of every config `GET /configs` lists.
async fn listed(app: &TestApp) -> Vec<(String, String)> {
    let reply = app.get("/configs").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["cursor"]["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap_or_default().to_owned(),
                        c["endpoint"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `app` lists exactly `want`.
async fn until_listed(app: &TestApp, want: &[(String, String)], what: &str) {
    eventually(Duration::from_secs(10), what, || async move {
        (listed(app).await == want).then_some(())
    })
    .await;
}

// What another process sees must follow: the list a process keeps rendered is dropped when a
// config changes anywhere (PostgreSQL: LISTEN/NOTIFY; SQLite: a fingerprint poll).
both_backends!(
    list_follows_changes_made_by_another_process,
    |backend| async move {
        let a = TestApp::spawn(backend).await;
        let b = a.beside().await;
        // Twice: the second answer is the kept one.
        assert_eq!(listed(&b).await, []);
        assert_eq!(listed(&b).await, []);

        let created = a.create_config("https://one.example/h", &["t"]).await;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        let want = [(id.clone(), "https://one.example/h".to_owned())];
        until_listed(&b, &want, "the other process to list the new config").await;

        let reply = a
            .send_json(
                "PUT",
                &format!("/configs/{id}"),
                r#"{"endpoint":"https://two.example/h","eventTypes":["t"]}"#,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let want = [(id.clone(), "https://two.example/h".to_owned())];
        until_listed(&b, &want, "the other process to list the new endpoint").await;

        let reply = a.request("DELETE", &format!("/configs/{id}"), None, None).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        until_listed(&b, &[], "the other process to drop the deleted config").await;

        // A process's own write shows in its next answer, without waiting.
        let own = b.create_config("https://three.example/h", &["t"]).await;
        let own_id = own["id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(listed(&b).await, [(own_id, "https://three.example/h".to_owned())]);
    }
);

/// Counts the config change listeners connected to the test server.
fn listeners(admin: &mut diesel::PgConnection, terminate: bool) -> i64 {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let what = if terminate {
        "count(pg_terminate_backend(pid))"
    } else {
        "count(*)"
    };
    diesel::sql_query(format!(
        "SELECT {what} AS n FROM pg_stat_activity WHERE application_name = $1"
    ))
    .bind::<diesel::sql_types::Text, _>(webhooks::store::LISTENER_NAME)
    .get_result::<Count>(admin)
    .unwrap_or_else(|e| panic!("{e}"))
    .n
}

/// A server restart or failover ends the listener's connection: the process must still show
/// other processes' changes (reading the database until it listens again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_follows_changes_after_the_listener_connection_ends_postgres() {
    let a = TestApp::spawn(crate::harness::Backend::Postgres).await;
    let b = a.beside().await;
    let mut admin = crate::harness::admin_connection(&crate::harness::postgres_base_url());
    eventually(Duration::from_secs(10), "both listeners to connect", || {
        let n = listeners(&mut admin, false);
        async move { (n >= 2).then_some(()) }
    })
    .await;
    assert_eq!(listed(&b).await, []);
    assert!(listeners(&mut admin, true) >= 2);

    let created = a.create_config("https://one.example/h", &["t"]).await;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let want = [(id, "https://one.example/h".to_owned())];
    until_listed(&b, &want, "the other process to list the new config").await;
}
