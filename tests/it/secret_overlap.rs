//! Secret change with overlap (spec §2.5, §3, §4.6): after `PUT /configs/{id}/secret/change`
//! with `--secret-overlap`, attempts sign with the new secret and the replaced one (newest
//! first) until the overlap ends; the API only ever shows the current secret. Both backends,
//! a real broker, real receivers.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::Mac as _;

use crate::both_backends;
use crate::delivery::{worker_app_on, worker_only_on};
use crate::harness::{eventually, Received, Receiver, TestApp, TestDb};
use crate::kafka::{self, Producer};
use crate::signature_headers::{standard_webhooks_verify, whsec};

const WAIT: Duration = Duration::from_secs(30);
/// A valid secret to set explicitly (base64 of bytes 24..47).
const CHOSEN: &str = "GBkaGxwdHh8gISIjJCUmJygpKissLS4v";

/// `v1,<signature>` of a received request under `secret`, computed here independently.
fn expected(r: &Received, secret: &str) -> String {
    let id = r.header("formance-webhook-id").unwrap_or_default();
    let ts = r.header("formance-webhook-timestamp").unwrap_or_default();
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The space-separated entries of the signature header.
fn signatures(r: &Received) -> Vec<String> {
    r.header("formance-webhook-signature")
        .unwrap_or_default()
        .split(' ')
        .map(str::to_owned)
        .collect()
}

#[track_caller]
fn assert_signed_with(r: &Received, secrets: &[&str]) {
    let want: Vec<String> = secrets.iter().map(|s| expected(r, s)).collect();
    assert_eq!(signatures(r), want, "secrets {secrets:?}");
    // A receiver that holds any one of them, verifying with a Standard Webhooks library.
    for secret in secrets {
        assert!(standard_webhooks_verify(
            &whsec(secret),
            r.header("formance-webhook-id").unwrap_or_default(),
            r.header("formance-webhook-timestamp").unwrap_or_default(),
            &r.body,
            r.header("formance-webhook-signature").unwrap_or_default(),
        ));
    }
}

async fn new_topic() -> String {
    let topic = kafka::unique("events");
    kafka::create_topic(&kafka::bootstrap(), &topic, 1).await;
    topic
}

/// Publishes one `{"type":"t"}` record after another, each once the previous one reached
/// `receiver` (or did not within a few seconds: a config the worker does not know yet matches
/// nothing), until a delivery satisfies `check`. A config change reaches the worker's cache
/// within a second, so the first records after a change may still see the old config.
async fn deliver_until(
    topic: &str,
    receiver: &Receiver,
    what: &str,
    check: impl Fn(&Received) -> bool,
) -> Received {
    const PER_RECORD: Duration = Duration::from_secs(3);
    let producer = Producer::new(&kafka::bootstrap());
    let start = Instant::now();
    let mut last = None;
    loop {
        let before = receiver.count();
        producer.send(topic, br#"{"type":"t"}"#, None).await;
        let sent = Instant::now();
        while receiver.count() == before && sent.elapsed() < PER_RECORD {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(got) = receiver.received().get(before).cloned() {
            if check(&got) {
                return got;
            }
            last = got.header("formance-webhook-signature").map(str::to_owned);
        }
        assert!(
            start.elapsed() < WAIT,
            "timed out waiting for {what}; last signature {last:?}"
        );
    }
}

/// Changes the secret (generated when `secret` is None) and returns the new one, checking that
/// the answer is the plain Config object of spec §2.3.
async fn change_secret(app: &TestApp, id: &str, secret: Option<&str>) -> String {
    let path = format!("/configs/{id}/secret/change");
    let reply = match secret {
        Some(s) => {
            app.send_json("PUT", &path, &format!("{{\"secret\":\"{s}\"}}"))
                .await
        }
        None => app.request("PUT", &path, None, None).await,
    };
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = reply.json()["data"].clone();
    let keys: Vec<&String> = data.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    assert_eq!(
        keys,
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
    data["secret"].as_str().unwrap_or_default().to_owned()
}

/// The API shows `current` and none of `gone`, wherever it shows the config.
async fn assert_api_shows_only(app: &TestApp, id: &str, current: &str, gone: &[&str]) {
    for path in ["/configs".to_owned(), format!("/configs?id={id}")] {
        let reply = app.get(&path).await;
        assert_eq!(reply.json()["cursor"]["data"][0]["secret"], current, "{path}");
        for old in gone {
            assert!(
                !reply.body.contains(old),
                "{path} shows a previous secret: {}",
                reply.body
            );
        }
    }
    let reply = app
        .request("PUT", &format!("/configs/{id}/activate"), None, None)
        .await;
    for old in gone {
        assert!(
            !reply.body.contains(old),
            "activate shows a previous secret: {}",
            reply.body
        );
    }
}

both_backends!(
    overlap_signs_with_both_secrets_newest_first,
    |backend| async move {
        let topic = new_topic().await;
        let app = worker_app_on(
            TestDb::new(backend),
            &topic,
            &kafka::unique("group"),
            &[
                "--secret-overlap=1h",
                "--retry-period=100ms",
                "--min-backoff-delay=100ms",
            ],
        )
        .await;
        let receiver = Receiver::start(200).await;
        let config = app.create_config(&receiver.url("/h"), &["t"]).await;
        let id = config["id"].as_str().unwrap_or_default();
        let s0 = config["secret"].as_str().unwrap_or_default().to_owned();

        let s1 = change_secret(&app, id, None).await;
        assert_ne!(s1, s0);
        assert_api_shows_only(&app, id, &s1, &[&s0]).await;
        let got = deliver_until(&topic, &receiver, "both signatures", |r| signatures(r).len() == 2).await;
        assert_signed_with(&got, &[&s1, &s0]);

        // A second change during the overlap: the kept secret is now the one just replaced.
        let s2 = change_secret(&app, id, Some(CHOSEN)).await;
        assert_eq!(s2, CHOSEN);
        assert_api_shows_only(&app, id, &s2, &[&s0, &s1]).await;
        let got = deliver_until(&topic, &receiver, "the second change", |r| {
            signatures(r).first() == Some(&expected(r, &s2))
        })
        .await;
        assert_signed_with(&got, &[&s2, &s1]);

        // Retries (the sweep reads the secrets from the claimed rows) sign with both too.
        receiver.set_status(500);
        let before = receiver.count();
        Producer::new(&kafka::bootstrap())
            .send(&topic, br#"{"type":"t"}"#, None)
            .await;
        eventually(WAIT, "the first call", || async {
            (receiver.count() > before).then_some(())
        })
        .await;
        receiver.set_status(200);
        let retry = eventually(WAIT, "the retry", || async {
            receiver.received().get(before + 1).cloned()
        })
        .await;
        assert_eq!(
            retry.header("formance-webhook-id"),
            receiver.received()[before].header("formance-webhook-id")
        );
        assert_signed_with(&retry, &[&s2, &s1]);

        // So does the test route.
        let count = receiver.count();
        let reply = app.get(&format!("/configs/{id}/test")).await;
        assert_eq!(reply.json()["data"]["status"], "success", "{}", reply.body);
        assert!(!reply.body.contains(&s1), "{}", reply.body);
        let test_call = receiver.received()[count].clone();
        assert_eq!(test_call.header("formance-webhook-test"), Some("true"));
        assert_signed_with(&test_call, &[&s2, &s1]);
    }
);

both_backends!(
    a_separate_worker_honours_the_overlap_set_by_serve,
    |backend| async move {
        let topic = new_topic().await;
        let db = TestDb::new(backend);
        let (worker_db, plain_db) = (db.handle(), db.handle());
        // The API with an overlap, a worker process without the flag, an API without it.
        let api = TestApp::spawn_on(db, &["--secret-overlap=1h"]).await;
        let _worker = worker_only_on(worker_db, &topic, &kafka::unique("group"), &[]).await;
        let plain_api = TestApp::spawn_on(plain_db, &[]).await;

        let receiver = Receiver::start(200).await;
        let config = api.create_config(&receiver.url("/h"), &["t"]).await;
        let id = config["id"].as_str().unwrap_or_default();
        let s0 = config["secret"].as_str().unwrap_or_default().to_owned();
        deliver_until(&topic, &receiver, "the config at the worker", |r| {
            signatures(r) == [expected(r, &s0)]
        })
        .await;

        let s1 = change_secret(&api, id, None).await;
        let got = deliver_until(&topic, &receiver, "both signatures", |r| signatures(r).len() == 2).await;
        assert_signed_with(&got, &[&s1, &s0]);

        // A change without overlap clears the kept secret: only the new one signs.
        let s2 = change_secret(&plain_api, id, None).await;
        assert_api_shows_only(&api, id, &s2, &[&s0, &s1]).await;
        let got = deliver_until(&topic, &receiver, "the new secret alone", |r| {
            signatures(r).first() == Some(&expected(r, &s2))
        })
        .await;
        assert_signed_with(&got, &[&s2]);
    }
);

both_backends!(the_overlap_ends_on_time, |backend| async move {
    let topic = new_topic().await;
    let app = worker_app_on(
        TestDb::new(backend),
        &topic,
        &kafka::unique("group"),
        &["--secret-overlap=2s"],
    )
    .await;
    let receiver = Receiver::start(200).await;
    let config = app.create_config(&receiver.url("/h"), &["t"]).await;
    let id = config["id"].as_str().unwrap_or_default();
    let s0 = config["secret"].as_str().unwrap_or_default().to_owned();
    let changed = Instant::now();
    let s1 = change_secret(&app, id, None).await;
    let got = deliver_until(&topic, &receiver, "the overlap's end", |r| {
        signatures(r) == [expected(r, &s1)]
    })
    .await;
    assert_signed_with(&got, &[&s1]);
    // Not before the overlap's end (the converse bound depends on the machine's speed).
    assert!(
        changed.elapsed() >= Duration::from_secs(2),
        "{:?}",
        changed.elapsed()
    );
    assert_api_shows_only(&app, id, &s1, &[&s0]).await;
    // Every delivery after the change carried the new secret first.
    for r in receiver.received().iter().filter(|r| signatures(r).len() == 2) {
        assert_signed_with(r, &[&s1, &s0]);
    }
});
