//! `GET /configs/{id}/test` (spec §2.6) against real receivers on 127.0.0.1.

use crate::both_backends;
use crate::harness::{Receiver, TestApp};

both_backends!(signed_test_request_reaches_the_receiver, |backend| async move {
    let app = TestApp::spawn_with(backend, &["--allow-private-endpoints"]).await;
    let receiver = Receiver::start(200).await;
    let c = app.create_config(&receiver.url("/hook"), &["a"]).await;
    let id = c["id"].as_str().unwrap_or_default();
    let reply = app.get(&format!("/configs/{id}/test")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let d = reply.json()["data"].clone();
    assert_eq!(d["status"], "success");
    assert_eq!(d["statusCode"], 200);
    assert_eq!(d["payload"], "{\"data\":\"test\"}");
    assert_eq!(d["config"]["id"], c["id"]);
    assert_eq!(d["retryAttempt"], 0);
    for t in ["createdAt", "updatedAt", "nextRetryAfter"] {
        assert_eq!(d[t], "0001-01-01T00:00:00Z");
    }
    let keys: Vec<&str> = [
        "\"id\"",
        "\"webhookID\"",
        "\"createdAt\"",
        "\"updatedAt\"",
        "\"config\"",
        "\"payload\"",
        "\"statusCode\"",
        "\"retryAttempt\"",
        "\"status\"",
        "\"nextRetryAfter\"",
    ]
    .to_vec();
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| reply.body.find(k).unwrap_or(usize::MAX))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{}", reply.body);

    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
    assert_eq!(r.body, b"{\"data\":\"test\"}");
    assert_eq!(r.header("formance-webhook-test"), Some("true"));
    assert_eq!(r.header("formance-webhook-idempotency-key"), Some("ik"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("user-agent"), Some("formance-webhooks/v0"));
    assert_eq!(r.header("formance-webhook-id"), d["webhookID"].as_str());
    assert!(uuid::Uuid::parse_str(d["webhookID"].as_str().unwrap_or_default()).is_ok());
    let ts: i64 = r
        .header("formance-webhook-timestamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    assert!(
        (chrono::Utc::now().timestamp() - ts).abs() < 300,
        "timestamp {ts}"
    );
    assert!(
        r.signature_valid(c["secret"].as_str().unwrap_or_default()),
        "signature does not verify: {r:?}"
    );
    assert!(!r.signature_valid("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"));

    // After a secret change the next test call signs with the new secret.
    let changed = app
        .request("PUT", &format!("/configs/{id}/secret/change"), None, None)
        .await
        .json()["data"]
        .clone();
    app.get(&format!("/configs/{id}/test")).await;
    let got = receiver.received();
    assert!(got[1].signature_valid(changed["secret"].as_str().unwrap_or_default()));
});

both_backends!(receiver_answering_404_fails_the_test, |backend| async move {
    let app = TestApp::spawn_with(backend, &["--allow-private-endpoints"]).await;
    let receiver = Receiver::start(404).await;
    let c = app.create_config(&receiver.url("/hook"), &["a"]).await;
    // Inactive configs can be tested too.
    let id = c["id"].as_str().unwrap_or_default();
    app.request("PUT", &format!("/configs/{id}/deactivate"), None, None)
        .await;
    let d = app.get(&format!("/configs/{id}/test")).await.json()["data"].clone();
    assert_eq!(
        (d["status"].as_str(), d["statusCode"].as_u64()),
        (Some("failed"), Some(404))
    );
    assert_eq!(receiver.received().len(), 1);
    receiver.set_status(204);
    let d = app.get(&format!("/configs/{id}/test")).await.json()["data"].clone();
    assert_eq!(
        (d["status"].as_str(), d["statusCode"].as_u64()),
        (Some("success"), Some(204))
    );
});

both_backends!(nothing_listening_is_status_0, |backend| async move {
    let app = TestApp::spawn_with(backend, &["--allow-private-endpoints"]).await;
    // Bind then drop: the port is known to be closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let c = app
        .create_config(&format!("http://127.0.0.1:{port}/hook"), &["a"])
        .await;
    let reply = app
        .get(&format!("/configs/{}/test", c["id"].as_str().unwrap_or_default()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let d = reply.json()["data"].clone();
    assert_eq!(
        (d["status"].as_str(), d["statusCode"].as_u64()),
        (Some("failed"), Some(0))
    );
});

both_backends!(ssrf_guard_refuses_private_endpoints, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(200).await;
    let port = receiver.addr.port();
    let endpoints = [
        receiver.url("/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ];
    for endpoint in endpoints {
        let c = app.create_config(&endpoint, &["a"]).await;
        let reply = app
            .get(&format!("/configs/{}/test", c["id"].as_str().unwrap_or_default()))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let d = reply.json()["data"].clone();
        assert_eq!(
            (d["status"].as_str(), d["statusCode"].as_u64()),
            (Some("failed"), Some(0)),
            "{endpoint}"
        );
    }
    assert_eq!(receiver.received().len(), 0);
    // An allow-listed range passes the guard.
    let app = TestApp::spawn_with(backend, &["--allowed-endpoint-cidrs=127.0.0.0/8"]).await;
    let c = app.create_config(&receiver.url("/hook"), &["a"]).await;
    let d = app
        .get(&format!("/configs/{}/test", c["id"].as_str().unwrap_or_default()))
        .await
        .json()["data"]
        .clone();
    assert_eq!(d["statusCode"], 200);
    assert_eq!(receiver.received().len(), 1);
});

both_backends!(unknown_config_test_is_404, |backend| async move {
    let app = TestApp::spawn(backend).await;
    app.get("/configs/unknown/test")
        .await
        .assert_error(404, "NOT_FOUND", "config not found");
});
