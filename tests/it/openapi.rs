//! openapi.yaml ↔ route table: every route the server answers is documented, and every
//! documented route is answered.

use std::collections::BTreeSet;

use crate::harness::{Backend, TestApp};

/// (METHOD, path) pairs under `paths:`: path keys at two spaces, operations at four.
pub(crate) fn documented(doc: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut in_paths = false;
    let mut path = String::new();
    for line in doc.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line.trim_end() == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let key = line.trim().trim_end_matches(':');
        if indent == 2 && key.starts_with('/') {
            path = key.trim_matches(|c| c == '"' || c == '\'').to_owned();
        } else if indent == 4 && ["get", "post", "put", "delete", "patch", "head", "options"].contains(&key) {
            out.insert((key.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn document_lists_exactly_the_route_table() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let documented = documented(&doc);
    let served: BTreeSet<(String, String)> = webhooks::api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    assert!(extra.is_empty(), "documented but not served: {extra:?}");
}

/// The route table is the server's: each entry is answered (not `route not found`/405), and
/// other methods on those paths get 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_table_matches_the_live_server() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let paths: BTreeSet<&str> = webhooks::api::ROUTES.iter().map(|(_, p)| *p).collect();
    for path in paths {
        let concrete = path.replace("{id}", "some-id");
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let listed = webhooks::api::ROUTES.contains(&(method, path));
            let reply = app
                .request(method, &concrete, Some("{}"), Some("application/json"))
                .await;
            let unrouted = reply.status == 405
                || (reply.status == 404 && reply.body.contains("\"errorMessage\":\"route not found\""));
            assert_eq!(
                !unrouted, listed,
                "{method} {concrete}: {} {}",
                reply.status, reply.body
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_document_carries_the_running_version() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let reply = app.get("/openapi.yaml").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/yaml");
    assert!(
        reply.body.contains(&format!("version: {}", webhooks::VERSION)),
        "no version line"
    );
    assert_eq!(documented(&reply.body).len(), webhooks::api::ROUTES.len());
}

/// A 405 names the methods its path answers: RFC 9110 requires `Allow` (found by the API
/// fuzzing of ./scripts/faults.sh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_lists_the_allowed_methods() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (method, path, allow) in [
        ("TRACE", "/openapi.yaml", "GET"),
        ("PATCH", "/configs", "GET, POST"),
        ("POST", "/configs/some-id", "PUT, DELETE"),
        ("GET", "/deliveries/replay", "POST"),
        ("DELETE", "/_healthcheck", "GET"),
    ] {
        let resp = app
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{e}")),
                format!("{}{path}", app.base),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let allowed = resp
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let reply = crate::harness::Reply::read(resp).await;
        reply.assert_error(405, "VALIDATION", "method not allowed");
        assert_eq!(allowed.as_deref(), Some(allow), "{method} {path}");
    }
}

/// The document's error schema admits every `errorCode` the API answers (spec §2.1): the
/// fuzzing found 401s whose `UNAUTHORIZED` the schema refused.
#[test]
fn every_error_code_is_in_the_error_schema() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let enum_line = doc
        .lines()
        .skip_while(|l| l.trim() != "Error:")
        .find(|l| l.trim_start().starts_with("enum:"))
        .unwrap_or_else(|| panic!("no enum in the Error schema"));
    for code in [
        "VALIDATION",
        "UNAUTHORIZED",
        "FORBIDDEN",
        "NOT_FOUND",
        "CONFLICT",
        "INTERNAL",
    ] {
        assert!(enum_line.contains(code), "{code} missing from {enum_line}");
    }
}

/// `null` is "not set" wherever the API reads JSON (spec §2.1.1, §4.2), and the document says
/// so: the API fuzzing found the server accepting null where openapi.yaml refused it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_is_accepted_where_the_document_says_nullable() {
    let topic = crate::kafka::unique("nulls");
    crate::kafka::create_topic(&crate::kafka::bootstrap(), &topic, 1).await;
    let app = crate::delivery::worker_app_on(
        crate::harness::TestDb::new(Backend::Sqlite),
        &topic,
        &crate::kafka::unique("group"),
        &[],
    )
    .await;
    let config = app.create_config("https://example.com/h", &["t"]).await;
    let id = config["id"].as_str().unwrap_or_default().to_owned();
    let secret_change = app
        .send_json("PUT", &format!("/configs/{id}/secret/change"), "null")
        .await;
    assert_eq!(secret_change.status, 200, "{}", secret_change.body);
    let from = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let replay = app
        .post_with_key(
            "/deliveries/replay",
            Some("nulls"),
            Some(&format!(
                r#"{{"createdAtFrom":"{from}","createdAtTo":null,"statuses":null,"configIds":null,"cursor":null,"pageSize":null}}"#
            )),
        )
        .await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    let event = app
        .send_json(
            "POST",
            "/events",
            r#"{"type":"t","app":null,"version":null,"date":null,"idempotency_key":null,"payload":null}"#,
        )
        .await;
    assert_eq!(event.status, 200, "{}", event.body);

    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let schema = |name: &str| -> String {
        doc.lines()
            .skip_while(|l| l.trim() != format!("{name}:"))
            .skip(1)
            .take_while(|l| l.starts_with("      ") || l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(schema("ConfigChangeSecret").contains("nullable: true"));
    let bulk = schema("BulkReplayRequest");
    assert_eq!(bulk.matches("nullable: true").count(), 5, "{bulk}");
    let event = schema("Event");
    assert_eq!(event.matches("nullable: true").count(), 5, "{event}");
}
