//! `--signature-headers formance|standard|both` (spec §4.6): the same id, timestamp and
//! signature under the reference's names and/or Standard Webhooks' `webhook-*`, checked with a
//! Standard Webhooks verifier written here from that specification, not from our code.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::Mac as _;

use crate::delivery::worker_app_on;
use crate::harness::{eventually, Backend, Received, Receiver, TestApp, TestDb};
use crate::kafka::{self, Producer};

/// The secret a Standard Webhooks library is given for one of our configs: `whsec_` + base64
/// of the secret string (our HMAC key is the string's own bytes).
pub(crate) fn whsec(secret: &str) -> String {
    format!("whsec_{}", STANDARD.encode(secret))
}

/// Standard Webhooks verification: key = base64-decode of what follows `whsec_`; expected =
/// base64(HMAC-SHA256(key, `id.timestamp.body`)); accepted when any space-separated `v1,`
/// entry of the signature header equals it.
pub(crate) fn standard_webhooks_verify(
    whsec: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
) -> bool {
    let Some(key) = whsec.strip_prefix("whsec_").and_then(|k| STANDARD.decode(k).ok()) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| sig == expected)
}

/// Verifies a received request through its `webhook-*` headers.
pub(crate) fn standard_verifies(r: &Received, secret: &str) -> bool {
    let (Some(id), Some(ts), Some(sig)) = (
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
    ) else {
        return false;
    };
    standard_webhooks_verify(&whsec(secret), id, ts, &r.body, sig)
}

fn formance_headers(r: &Received) -> Vec<&str> {
    r.headers
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("formance-webhook-"))
        .collect()
}

#[test]
fn the_verifier_accepts_the_spec_vector() {
    let secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
    let whsec = whsec(secret);
    assert_eq!(whsec, "whsec_QUFFQ0F3UUZCZ2NJQ1FvTERBME9EeEFSRWhNVUZSWVg=");
    let (id, ts, body) = (
        "3b1e6a62-0f6e-4c35-9d2e-1b5a1c0f7d11",
        "1700000000",
        br#"{"data":"test"}"#,
    );
    let good = "v1,WjC9Q2cbdLPSi372EC3LSmgxPoSZisW7EDwkpREpjtA=";
    let decoded_key = "v1,BEBpgNwntTOjUyqTGmvsrvfCHbO4yuEgDOO/oXh+jvU=";
    assert!(standard_webhooks_verify(&whsec, id, ts, body, good));
    assert!(!standard_webhooks_verify(&whsec, id, ts, body, decoded_key));
    // Several signatures: any match verifies.
    assert!(standard_webhooks_verify(
        &whsec,
        id,
        ts,
        body,
        &format!("{decoded_key} {good}")
    ));
    assert!(!standard_webhooks_verify(&whsec, id, "1700000001", body, good));
}

async fn test_call(headers: &str) -> (serde_json::Value, Received) {
    let flag = format!("--signature-headers={headers}");
    let app = TestApp::spawn_with(Backend::Sqlite, &["--allow-private-endpoints", &flag]).await;
    let receiver = Receiver::start(200).await;
    let config = app.create_config(&receiver.url("/hook"), &["a"]).await;
    let id = config["id"].as_str().unwrap_or_default();
    let reply = app.get(&format!("/configs/{id}/test")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["data"]["status"], "success", "{}", reply.body);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    (config, got[0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_set_replaces_the_formance_headers() {
    let (config, r) = test_call("standard").await;
    let secret = config["secret"].as_str().unwrap_or_default();
    assert!(standard_verifies(&r, secret), "{:?}", r.headers);
    assert!(formance_headers(&r).is_empty(), "{:?}", r.headers);
    assert!(uuid::Uuid::parse_str(r.header("webhook-id").unwrap_or_default()).is_ok());
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sets_carry_the_same_values() {
    let (config, r) = test_call("both").await;
    let secret = config["secret"].as_str().unwrap_or_default();
    assert!(standard_verifies(&r, secret), "{:?}", r.headers);
    assert!(r.signature_valid(secret), "{:?}", r.headers);
    for name in ["id", "timestamp", "signature"] {
        let formance = r.header(&format!("formance-webhook-{name}"));
        assert!(formance.is_some(), "{name}");
        assert_eq!(formance, r.header(&format!("webhook-{name}")), "{name}");
    }
    assert_eq!(r.header("formance-webhook-test"), Some("true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formance_set_is_the_default() {
    let (config, r) = test_call("formance").await;
    assert!(r.signature_valid(config["secret"].as_str().unwrap_or_default()));
    assert!(
        r.headers.iter().all(|(k, _)| !k.starts_with("webhook-")),
        "{:?}",
        r.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_carry_the_standard_set() {
    let topic = kafka::unique("events");
    kafka::create_topic(&kafka::bootstrap(), &topic, 1).await;
    let app = worker_app_on(
        TestDb::new(Backend::Sqlite),
        &topic,
        &kafka::unique("group"),
        &["--signature-headers=standard"],
    )
    .await;
    let receiver = Receiver::start(200).await;
    let config = app.create_config(&receiver.url("/h"), &["t"]).await;
    Producer::new(&kafka::bootstrap())
        .send(&topic, br#"{"type":"t","idempotency_key":"k1"}"#, None)
        .await;
    let r = eventually(Duration::from_secs(30), "the delivery", || async {
        receiver.received().first().cloned()
    })
    .await;
    let secret = config["secret"].as_str().unwrap_or_default();
    assert!(standard_verifies(&r, secret), "{:?}", r.headers);
    assert!(formance_headers(&r).is_empty(), "{:?}", r.headers);
    // The outcome is stored after the call returns: wait for the row, not just the call.
    let config_id = config["id"].as_str().unwrap_or_default();
    let delivery = eventually(Duration::from_secs(30), "the delivery's row", || async {
        app.deliveries(config_id).await.into_iter().next()
    })
    .await;
    assert_eq!(r.header("webhook-id"), Some(delivery.id.as_str()));
}
