//! The operator console (`GET /console`, issue 14) in a real browser: Debian's Chromium driven
//! over WebDriver (chromedriver) against `serve --worker` and a receiver on 127.0.0.1. The
//! browser reaches the server through a recording proxy, so the test sees every request the page
//! made and checks each one against openapi.yaml: the console calls nothing undocumented.
//! Screenshots of each page are written to `target/console-screenshots/` for reviewers.

mod browser;
mod recorder;

use browser::{
    attr, click, color_scheme, console_problems, count_is, find, shot, text_when, type_into, with_browser,
    WAIT,
};
use recorder::{documented_operations, is_console_asset, op, Recorder, Seen};

use crate::harness::{eventually, Backend, Receiver, Reply, TestApp, TestDb};

// ---- the API, as the test checks it --------------------------------------------------------

async fn configs(app: &TestApp) -> Vec<serde_json::Value> {
    let reply = app.get("/configs").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["cursor"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn deliveries_in(app: &TestApp, status: &str) -> usize {
    let reply = app
        .get(&format!("/deliveries?status={status}&pageSize=1000"))
        .await;
    reply.json()["cursor"]["data"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default()
}

/// `n` events of type `orders.created`, published over HTTP.
async fn publish(app: &TestApp, n: usize) {
    let events: Vec<String> = (0..n)
        .map(|i| {
            format!(r#"{{"type":"orders.created","payload":{{"order":{i},"note":"<b>not markup</b>"}}}}"#)
        })
        .collect();
    let reply = app
        .send_json("POST", "/events", &format!("[{}]", events.join(",")))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

// ---- the scenarios --------------------------------------------------------------------------

/// `serve --worker` with the embedded broker, behind the recording proxy.
async fn worker_app() -> TestApp {
    let topics = format!("--kafka-topics={}", crate::kafka::unique("console"));
    TestApp::spawn_with(
        Backend::Sqlite,
        &["--worker", &topics, "--allow-private-endpoints"],
    )
    .await
}

/// Create an endpoint, watch failed deliveries appear, replay one and then the rest in bulk,
/// rotate the secret, test, edit, deactivate and delete the endpoint, read the overview — all
/// through the page, checked through the API and at the receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_drives_endpoints_and_deliveries() {
    let app = worker_app().await;
    let proxy = Recorder::start(&app.base).await;
    let receiver = Receiver::start(404).await;
    let console = format!("{}/console", proxy.base);
    let (app, receiver) = (&app, &receiver);
    with_browser("endpoints-and-deliveries", |b| async move {
        b.goto(&format!("{console}#/endpoints"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        text_when(&b, "main", "the empty endpoint list", |t| {
            t.contains("No endpoint yet")
        })
        .await;
        shot(&b, "01-endpoints-empty").await;

        // Create an endpoint in the console.
        click(&b, "a[href='#/endpoints/new']").await;
        type_into(&b, "#ep-endpoint", &receiver.url("/hook")).await;
        type_into(&b, "#ep-types", "orders.created").await;
        shot(&b, "02-endpoint-new").await;
        click(&b, "main form button[type=submit]").await;
        text_when(&b, "#endpoint-state", "the new endpoint's page", |t| {
            t == "active"
        })
        .await;
        let all = configs(app).await;
        assert_eq!(all.len(), 1, "{all:?}");
        let config = all[0].clone();
        assert_eq!(config["endpoint"], receiver.url("/hook"));
        assert_eq!(config["eventTypes"], serde_json::json!(["orders.created"]));
        let id = config["id"].as_str().unwrap_or_default().to_owned();
        let url = b.current_url().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(url.fragment(), Some(format!("/endpoints/{id}").as_str()));

        // The deliveries list picks up new deliveries by itself. The receiver answers 404, so
        // each delivery fails at its first attempt (a permanent failure).
        click(&b, "a[data-nav=deliveries]").await;
        text_when(&b, "main", "the empty deliveries list", |t| {
            t.contains("No delivery yet")
        })
        .await;
        let focused = b.active_element().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            focused.text().await.ok().as_deref(),
            Some("Deliveries"),
            "focus moves to the page heading"
        );
        publish(app, 60).await;
        count_is(&b, "tbody tr[data-status=failed]", 50).await;
        eventually(WAIT, "60 failed deliveries", || async {
            (deliveries_in(app, "failed").await == 60).then_some(())
        })
        .await;
        shot(&b, "03-deliveries").await;

        // Keyset paging: 50 newest, then the 10 older ones, and back.
        click(&b, "#page-older").await;
        count_is(&b, "tbody tr[data-status=failed]", 10).await;
        click(&b, "#page-newer").await;
        count_is(&b, "tbody tr[data-status=failed]", 50).await;

        // A failed delivery: the exact body sent, its headers, its attempt.
        let first = find(&b, "tbody a[data-delivery]").await;
        let delivery = attr(&first, "data-delivery").await;
        click(&b, "tbody a[data-delivery]").await;
        text_when(&b, "#delivery-status", "the failed delivery", |t| t == "failed").await;
        let sent = receiver
            .received()
            .into_iter()
            .find(|r| r.header("formance-webhook-id") == Some(delivery.as_str()))
            .unwrap_or_else(|| panic!("the receiver never saw {delivery}"));
        let payload = find(&b, "#payload").await.text().await.unwrap_or_default();
        assert_eq!(
            payload,
            String::from_utf8_lossy(&sent.body),
            "the body shown is the body sent"
        );
        let headers = find(&b, "table.headers").await.text().await.unwrap_or_default();
        assert!(
            headers.contains(&format!("formance-webhook-id {delivery}")),
            "{headers}"
        );
        assert!(headers.contains("formance-webhook-signature"), "{headers}");
        text_when(
            &b,
            "li[data-outcome=permanent_failure]",
            "the failed attempt",
            |t| t.contains("HTTP 404"),
        )
        .await;
        shot(&b, "04-delivery-failed").await;

        // Replay it once the receiver accepts: it succeeds.
        receiver.set_status(200);
        click(&b, "#replay").await;
        text_when(&b, "#delivery-status", "the replayed delivery to succeed", |t| {
            t == "succeeded"
        })
        .await;
        find(&b, "li[data-outcome=succeeded]").await;
        let api = app.get(&format!("/deliveries/{delivery}")).await.json();
        assert_eq!(api["data"]["status"], "succeeded");
        assert_eq!(api["data"]["replayGeneration"], 1);
        shot(&b, "05-delivery-replayed").await;

        // Replay the 59 others in bulk over the last hour: two pages of 50, with progress.
        click(&b, "a[data-nav=deliveries]").await;
        find(&b, "#f-window")
            .await
            .select_by_value("1h")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        click(&b, "#f-apply").await;
        click(&b, "#bulk-replay").await;
        find(&b, "#confirm-dialog[open]").await;
        click(&b, "#confirm-ok").await;
        let done = text_when(&b, "#bulk-status", "the bulk replay to finish", |t| {
            t.starts_with("Done")
        })
        .await;
        assert_eq!(done, "Done: 59 replayed, 0 skipped in 2 pages.");
        shot(&b, "06-bulk-replay").await;
        eventually(WAIT, "60 succeeded deliveries", || async {
            (deliveries_in(app, "succeeded").await == 60).then_some(())
        })
        .await;
        assert_eq!(receiver.count(), 120, "60 refused, then 60 accepted");

        // The endpoint list: state, event types, recent success rate.
        click(&b, "a[data-nav=endpoints]").await;
        text_when(
            &b,
            "tr[data-loaded=true]",
            "the endpoint's recent deliveries",
            |t| t.contains("100 % succeeded"),
        )
        .await;
        shot(&b, "07-endpoints").await;

        // Rotate the secret; the page shows what the API now has.
        click(&b, &format!("a[href='#/endpoints/{id}']")).await;
        let old = config["secret"].as_str().unwrap_or_default().to_owned();
        click(&b, "#rotate-secret").await;
        click(&b, "#confirm-ok").await;
        text_when(&b, ".result", "the rotation", |t| t.starts_with("Secret rotated")).await;
        let hidden = find(&b, "#secret-value").await.text().await.unwrap_or_default();
        assert!(
            !hidden.contains(&old) && hidden.chars().all(|c| c == '•'),
            "{hidden}"
        );
        click(&b, "#secret-reveal").await;
        let shown = text_when(&b, "#secret-value", "the revealed secret", |t| t.len() == 32).await;
        assert_ne!(shown, old);
        let now = configs(app).await;
        assert_eq!(
            now[0]["secret"].as_str(),
            Some(shown.as_str()),
            "the console shows the API's secret"
        );
        shot(&b, "08-endpoint-rotated").await;

        // A test request, signed with the new secret.
        click(&b, "#send-test").await;
        text_when(&b, ".result", "the test result", |t| {
            t.starts_with("Test request succeeded: HTTP 200")
        })
        .await;
        let test = receiver
            .received()
            .into_iter()
            .find(|r| r.header("formance-webhook-test") == Some("true"))
            .unwrap_or_else(|| panic!("no test request arrived"));
        assert!(test.signature_valid(&shown));

        // Edit the event types; deactivate and activate again.
        click(&b, "#edit-endpoint").await;
        type_into(&b, "#ep-types", "orders.created, orders.updated").await;
        click(&b, "#edit-area button[type=submit]").await;
        text_when(&b, ".result", "the edit", |t| t == "Endpoint saved.").await;
        assert_eq!(
            configs(app).await[0]["eventTypes"],
            serde_json::json!(["orders.created", "orders.updated"])
        );
        click(&b, "#toggle-active").await;
        text_when(&b, "#endpoint-state", "deactivation", |t| {
            t.starts_with("deactivated")
        })
        .await;
        assert_eq!(configs(app).await[0]["active"], false);
        click(&b, "#toggle-active").await;
        text_when(&b, "#endpoint-state", "activation", |t| t == "active").await;
        assert_eq!(configs(app).await[0]["active"], true);

        // The overview, sampled from /metrics since the page opened, in light and dark.
        click(&b, "a[data-nav=overview]").await;
        count_is(&b, "figure.chart", 4).await;
        // Every delivery failed once, then succeeded: the window counts at least 60 of each
        // (other tests of this process may add theirs when the suite runs in one process).
        text_when(&b, ".tiles", "the success split", |t| {
            let count = |what: &str| {
                t.split(what)
                    .next()
                    .and_then(|s| s.split_whitespace().last())
                    .and_then(|n| n.parse::<u64>().ok())
            };
            count(" succeeded,").is_some_and(|n| n >= 60) && count(" failed").is_some_and(|n| n >= 60)
        })
        .await;
        shot(&b, "09-overview").await;
        color_scheme(&b, "dark").await;
        shot(&b, "10-overview-dark").await;
        color_scheme(&b, "light").await;

        // Delete, after refusing once at the confirmation.
        b.goto(&format!("{console}#/endpoints/{id}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        click(&b, "#delete-endpoint").await;
        click(&b, "#confirm-cancel").await;
        assert_eq!(configs(app).await.len(), 1, "cancel deletes nothing");
        click(&b, "#delete-endpoint").await;
        click(&b, "#confirm-ok").await;
        text_when(&b, "main", "the list without it", |t| {
            t.contains("No endpoint yet")
        })
        .await;
        assert!(configs(app).await.is_empty());
        let problems = console_problems(&b).await;
        assert!(problems.is_empty(), "the browser reported: {problems:#?}");
    })
    .await;

    // Every request of the page was a documented operation, and none failed.
    let seen = proxy.seen();
    let used = documented_operations(&seen);
    for want in [
        op("GET", "/configs"),
        op("POST", "/configs"),
        op("PUT", "/configs/{id}"),
        op("DELETE", "/configs/{id}"),
        op("GET", "/configs/{id}/test"),
        op("PUT", "/configs/{id}/activate"),
        op("PUT", "/configs/{id}/deactivate"),
        op("PUT", "/configs/{id}/secret/change"),
        op("GET", "/deliveries"),
        op("GET", "/deliveries/{id}"),
        op("GET", "/deliveries/{id}/attempts"),
        op("POST", "/deliveries/{id}/replay"),
        op("POST", "/deliveries/replay"),
        op("GET", "/metrics"),
        op("GET", "/_info"),
    ] {
        assert!(used.contains(&want), "the console never called {want:?}");
    }
    let failed: Vec<&Seen> = seen
        .iter()
        .filter(|s| !(200..300).contains(&s.status) && s.status != 304)
        .collect();
    assert!(failed.is_empty(), "requests that failed: {failed:?}");
    assert!(
        seen.iter().all(|s| s.authorization.is_none()),
        "no credential is sent when none was entered"
    );
}

/// The page and its assets: types, a strict CSP, revalidation; only on `serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_assets_are_served_by_serve_only() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (path, content_type) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/style.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let resp = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status(), 200, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), content_type, "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("cache-control"), "no-cache");
        let etag = header("etag");
        let again = app
            .client
            .get(format!("{}{path}", app.base))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.status(), 304, "{path} revalidates with its ETag");
    }
    let page = app.get("/console").await.body;
    assert!(page.contains(r#"<script type="module" src="console/app.js"></script>"#));
    assert!(!page.contains("<script>"), "no inline script");
    app.get("/console/nothing.js")
        .await
        .assert_error(404, "NOT_FOUND", "route not found");
    app.request("POST", "/console", None, None)
        .await
        .assert_error(405, "VALIDATION", "method not allowed");
    let slash = app
        .client
        .get(format!("{}/console/", app.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(slash.url().path(), "/console", "/console/ redirects to the page");

    // `webhooks worker` serves no console.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let broker = format!("--publisher-kafka-broker={closed}");
    let worker = TestApp::spawn_as(
        webhooks::serve::Role::Worker,
        TestDb::new(Backend::Sqlite),
        &["--publisher-kafka-enabled", &broker],
    )
    .await;
    worker
        .get("/console")
        .await
        .assert_error(404, "NOT_FOUND", "route not found");
}

/// With authentication on (spec §11) the page itself loads without a credential, asks for an
/// API key at the first 401, refuses a wrong key, and works with the right one, which it sends
/// as a bearer token on every API call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_asks_for_an_api_key() {
    const KEY: &str = "console-test-key-5f0c2a";
    let keys = format!("--auth-api-keys={KEY}");
    let app = TestApp::spawn_with(Backend::Sqlite, &["--auth-enabled", &keys]).await;
    let proxy = Recorder::start(&app.base).await;
    let console = format!("{}/console", proxy.base);
    let app = &app;
    with_browser("api-key", |b| async move {
        b.goto(&format!("{console}#/endpoints"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        find(&b, "#key-dialog[open]").await;
        let focused = b.active_element().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            attr(&focused, "id").await,
            "key-input",
            "the key field has the focus"
        );
        type_into(&b, "#key-input", "not-the-key").await;
        click(&b, "#key-submit").await;
        text_when(&b, "#key-error", "the wrong key to be refused", |t| {
            t.starts_with("The server refused this key (401 UNAUTHORIZED")
        })
        .await;
        find(&b, "#key-dialog[open]").await;
        shot(&b, "11-api-key-refused").await;

        type_into(&b, "#key-input", KEY).await;
        click(&b, "#key-submit").await;
        text_when(&b, "main", "the endpoint list", |t| t.contains("No endpoint yet")).await;
        click(&b, "a[href='#/endpoints/new']").await;
        type_into(&b, "#ep-endpoint", "http://127.0.0.1:9/hook").await;
        type_into(&b, "#ep-types", "orders.created").await;
        click(&b, "main form button[type=submit]").await;
        text_when(&b, "#endpoint-state", "the new endpoint's page", |t| {
            t == "active"
        })
        .await;
        let listed = app
            .client
            .get(format!("{}/configs", app.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let listed = Reply::read(listed).await.json();
        assert_eq!(listed["cursor"]["data"][0]["endpoint"], "http://127.0.0.1:9/hook");

        // Forgetting the key: the next call is refused and the console asks again.
        click(&b, "#key-forget").await;
        find(&b, "#key-dialog[open]").await;
    })
    .await;

    // Only the page's own files are open: any other path under /console is refused like the
    // rest, so the route table stays hidden.
    assert_eq!(app.get("/console/app.js").await.status, 200);
    app.get("/console/nothing.js")
        .await
        .assert_error(401, "UNAUTHORIZED", "missing bearer token");

    let seen = proxy.seen();
    documented_operations(&seen);
    let right = format!("Bearer {KEY}");
    for s in &seen {
        let expected = if is_console_asset(&s.path) || s.path == "/_info" || s.path == "/metrics" {
            "open"
        } else if s.authorization.as_deref() == Some(right.as_str()) {
            "accepted"
        } else {
            "refused"
        };
        match expected {
            "open" => assert!(s.status == 200 || s.status == 304, "{s:?}"),
            "accepted" => assert!((200..300).contains(&s.status), "{s:?}"),
            _ => assert_eq!(s.status, 401, "{s:?}"),
        }
    }
    assert!(
        seen.iter()
            .any(|s| s.authorization.as_deref() == Some("Bearer not-the-key")),
        "the wrong key was tried"
    );
    assert!(
        seen.iter()
            .any(|s| s.method == "POST" && s.path == "/configs" && s.status == 200),
        "the endpoint was created with the key"
    );
}
