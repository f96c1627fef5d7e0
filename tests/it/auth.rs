//! API authentication (spec §11, §2.1): API keys, JWTs from a real OIDC issuer that the test
//! runs on 127.0.0.1 (discovery + JWKS, tokens signed with test keys), scopes, key rotation,
//! and credentials kept out of the logs of the real binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::KeyPair as _;
use serde_json::{json, Value};
use sha2::Digest as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::harness::{eventually, Backend, TestApp};

const PLAIN_KEY: &str = "plain-key-7f3a9c";
const HASHED_KEY: &str = "hashed-key-51d0e2";

fn sha256_hex(s: &str) -> String {
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn api_keys_flag() -> String {
    format!("--auth-api-keys={PLAIN_KEY},sha256:{}", sha256_hex(HASHED_KEY))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A key the test issuer signs with, and its public JWK.
struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

impl SigningKey {
    /// A fresh P-256 key.
    fn es256(kid: &str) -> SigningKey {
        use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("{e}"));
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap_or_else(|e| panic!("{e}"));
        // Uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        SigningKey {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
            }),
        }
    }

    /// The committed test-only RSA key (tests/fixtures/README.md).
    fn rs256(kid: &str) -> SigningKey {
        let der = rsa_test_key_der();
        let pair = ring::rsa::KeyPair::from_der(&der).unwrap_or_else(|e| panic!("{e}"));
        let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
        SigningKey {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(&der),
            jwk: json!({
                "kty": "RSA", "use": "sig", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e),
            }),
        }
    }

    fn token(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap_or_else(|e| panic!("{e}"))
    }
}

fn rsa_test_key_der() -> Vec<u8> {
    let pem = include_str!("../fixtures/test-only-rsa-key.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap_or_else(|e| panic!("{e}"))
}

/// A minimal OIDC issuer on 127.0.0.1: discovery and a JWKS the test can change, and a switch
/// that makes both answer 503.
struct Issuer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    discovery_hits: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Issuer {
    async fn start(keys: &[&SigningKey]) -> Issuer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr: SocketAddr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("http://{addr}/realms/test");
        let mut issuer = Issuer {
            url: url.clone(),
            keys: Arc::default(),
            discovery_hits: Arc::default(),
            down: Arc::default(),
            task: tokio::spawn(async {}),
        };
        issuer.publish(keys);
        let shared = (
            url,
            Arc::clone(&issuer.keys),
            Arc::clone(&issuer.discovery_hits),
            Arc::clone(&issuer.down),
        );
        issuer.task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<Incoming>| {
                        let (url, keys, hits, down) = shared.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let (status, body) = if down.load(Ordering::SeqCst) {
                                if path.ends_with("/openid-configuration") {
                                    hits.fetch_add(1, Ordering::SeqCst);
                                }
                                (503, String::new())
                            } else if path == "/realms/test/.well-known/openid-configuration" {
                                hits.fetch_add(1, Ordering::SeqCst);
                                let doc = json!({ "issuer": url, "jwks_uri": format!("{url}/certs") });
                                (200, doc.to_string())
                            } else if path == "/realms/test/certs" {
                                let keys = keys.lock().map(|k| k.clone()).unwrap_or_default();
                                (200, json!({ "keys": keys }).to_string())
                            } else {
                                (404, String::new())
                            };
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status)
                                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        issuer
    }

    /// Replaces the published key set (a key rotation at the issuer).
    fn publish(&self, keys: &[&SigningKey]) {
        if let Ok(mut k) = self.keys.lock() {
            *k = keys.iter().map(|k| k.jwk.clone()).collect();
        }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn discovery_hits(&self) -> usize {
        self.discovery_hits.load(Ordering::SeqCst)
    }

    /// Claims valid for five minutes, with `extra` merged in (a `null` removes a claim).
    fn claims(&self, extra: Value) -> Value {
        let mut claims = json!({ "iss": self.url, "sub": "client-1", "iat": now(), "exp": now() + 300 });
        if let (Some(c), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
        }
        claims
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One answer, with its `WWW-Authenticate` header.
struct Answer {
    status: u16,
    body: String,
    challenge: Option<String>,
}

impl Answer {
    #[track_caller]
    fn assert_refused(&self, status: u16, code: &str, message: &str, challenge: &str) {
        let want = format!("{}\n", json!({ "errorCode": code, "errorMessage": message }));
        assert_eq!((self.status, self.body.as_str()), (status, want.as_str()));
        assert_eq!(self.challenge.as_deref(), Some(challenge));
    }

    #[track_caller]
    fn assert_unauthorized(&self, message: &str) {
        let challenge = match message {
            "missing bearer token" | "authorization scheme must be Bearer" => "Bearer",
            _ => "Bearer error=\"invalid_token\"",
        };
        self.assert_refused(401, "UNAUTHORIZED", message, challenge);
    }

    #[track_caller]
    fn assert_let_through(&self) {
        assert!(
            self.status != 401 && self.status != 403,
            "{} {}",
            self.status,
            self.body
        );
    }
}

/// A request with an optional `Authorization` header (and a JSON body on writes).
async fn call(app: &TestApp, method: &str, path: &str, authorization: Option<&str>) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut req = app.client.request(method.clone(), format!("{}{path}", app.base));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    if method != reqwest::Method::GET {
        req = req.header("content-type", "application/json").body("{}");
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.text().await.unwrap_or_default();
    Answer {
        status,
        body,
        challenge,
    }
}

fn bearer(credential: &str) -> String {
    format!("Bearer {credential}")
}

const CONFIG: &str = r#"{"endpoint":"https://example.com/hook","eventTypes":["a"]}"#;

async fn create_config(app: &TestApp, authorization: &str) -> Answer {
    let resp = app
        .client
        .post(format!("{}/configs", app.base))
        .header("authorization", authorization)
        .header("content-type", "application/json")
        .body(CONFIG)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Answer {
        status,
        body: resp.text().await.unwrap_or_default(),
        challenge,
    }
}

fn is_open(method: &str, path: &str) -> bool {
    method == "GET" && ["/_healthcheck", "/_info", "/metrics", "/openapi.yaml"].contains(&path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_every_route_but_the_operational_ones() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--auth-enabled", &api_keys_flag()]).await;
    let digest = sha256_hex(HASHED_KEY);
    for &(method, path) in webhooks::api::ROUTES {
        let concrete = path.replace("{id}", "some-id");
        if is_open(method, path) {
            let open = call(&app, method, &concrete, None).await;
            assert_eq!(open.status, 200, "{method} {path} is open: {}", open.body);
            continue;
        }
        call(&app, method, &concrete, None)
            .await
            .assert_unauthorized("missing bearer token");
        for key in [PLAIN_KEY, HASHED_KEY] {
            call(&app, method, &concrete, Some(&bearer(key)))
                .await
                .assert_let_through();
        }
        for wrong in [
            "wrong-key".to_owned(),
            format!("{PLAIN_KEY}x"),
            format!("sha256:{digest}"),
            digest.clone(),
        ] {
            call(&app, method, &concrete, Some(&bearer(&wrong)))
                .await
                .assert_unauthorized("invalid token");
        }
    }
    // The scheme is case-insensitive; other schemes are refused.
    for header in [format!("bearer {PLAIN_KEY}"), format!("BEARER {PLAIN_KEY}")] {
        call(&app, "GET", "/configs", Some(&header))
            .await
            .assert_let_through();
    }
    for header in [
        format!("Basic {}", STANDARD.encode(format!("user:{PLAIN_KEY}"))),
        format!("Token {PLAIN_KEY}"),
        PLAIN_KEY.to_owned(),
    ] {
        call(&app, "GET", "/configs", Some(&header))
            .await
            .assert_unauthorized("authorization scheme must be Bearer");
    }
    call(&app, "GET", "/configs", Some("Bearer"))
        .await
        .assert_unauthorized("missing bearer token");
    // Checked before routing: the route table is not visible without a credential.
    call(&app, "GET", "/nope", None)
        .await
        .assert_unauthorized("missing bearer token");
    call(&app, "POST", "/_info", None)
        .await
        .assert_unauthorized("missing bearer token");
    let nope = call(&app, "GET", "/nope", Some(&bearer(PLAIN_KEY))).await;
    assert_eq!(nope.status, 404, "{}", nope.body);
    let wrong_method = call(&app, "POST", "/_info", Some(&bearer(PLAIN_KEY))).await;
    assert_eq!(wrong_method.status, 405, "{}", wrong_method.body);
    // A real round trip with a key.
    let created = create_config(&app, &bearer(HASHED_KEY)).await;
    assert_eq!(created.status, 200, "{}", created.body);
    // Refusals are counted like any answer.
    let metrics = call(&app, "GET", "/metrics", None).await;
    assert!(
        metrics
            .body
            .contains("webhooks_http_requests_total{route=\"/configs\",status=\"401\"}"),
        "{}",
        metrics.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_enabled_every_route_is_open() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[&api_keys_flag()]).await;
    let reply = call(&app, "GET", "/configs", None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.challenge, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_of_a_trusted_issuer_are_checked() {
    let (rsa, ec) = (SigningKey::rs256("rsa-1"), SigningKey::es256("ec-1"));
    let issuer = Issuer::start(&[&rsa, &ec]).await;
    let issuer_flag = format!("--auth-issuer={}", issuer.url);
    let app = &TestApp::spawn_with(Backend::Sqlite, &["--auth-enabled", &issuer_flag]).await;
    let ok = |token: String| async move {
        let a = call(app, "GET", "/configs", Some(&bearer(&token))).await;
        assert_eq!(a.status, 200, "{}", a.body);
    };
    let refused = |token: String, message: &'static str| async move {
        call(app, "GET", "/configs", Some(&bearer(&token)))
            .await
            .assert_unauthorized(message);
    };

    // Valid tokens, RS256 and ES256; 60 s of clock skew tolerated either way.
    ok(rsa.token(&issuer.claims(json!({})))).await;
    ok(ec.token(&issuer.claims(json!({})))).await;
    ok(ec.token(&issuer.claims(json!({ "exp": now() - 30 })))).await;
    ok(ec.token(&issuer.claims(json!({ "nbf": now() + 30 })))).await;
    assert_eq!(
        create_config(app, &bearer(&rsa.token(&issuer.claims(json!({})))))
            .await
            .status,
        200
    );

    // Time claims.
    refused(
        ec.token(&issuer.claims(json!({ "exp": now() - 120 }))),
        "token expired",
    )
    .await;
    refused(
        rsa.token(&issuer.claims(json!({ "nbf": now() + 300 }))),
        "token not yet valid",
    )
    .await;
    refused(ec.token(&issuer.claims(json!({ "exp": null }))), "invalid token").await;

    // Issuer: another one, a look-alike, none.
    refused(
        ec.token(&issuer.claims(json!({ "iss": "http://127.0.0.1:9/realms/other" }))),
        "untrusted token issuer",
    )
    .await;
    refused(
        ec.token(&issuer.claims(json!({ "iss": format!("{}/", issuer.url) }))),
        "untrusted token issuer",
    )
    .await;
    refused(ec.token(&issuer.claims(json!({ "iss": null }))), "invalid token").await;

    // A key the issuer never published, under a published kid and under its own.
    let mut forger = SigningKey::es256("ec-1");
    refused(forger.token(&issuer.claims(json!({}))), "invalid token").await;
    forger.kid = "ec-unknown".to_owned();
    refused(forger.token(&issuer.claims(json!({}))), "invalid token").await;

    // `alg: none`, and HMAC keyed with the RSA public key (the algorithm-confusion attack).
    let claims = URL_SAFE_NO_PAD.encode(issuer.claims(json!({})).to_string());
    let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#);
    refused(format!("{none}.{claims}."), "invalid token").await;
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("rsa-1".to_owned());
    let public_der = rsa_public_der();
    let hmac_token = jsonwebtoken::encode(
        &hs,
        &issuer.claims(json!({})),
        &EncodingKey::from_secret(&public_der),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    refused(hmac_token, "invalid token").await;

    // Not a JWT at all; a tampered one.
    refused("garbage".to_owned(), "invalid token").await;
    refused("a.b.c".to_owned(), "invalid token").await;
    let valid = ec.token(&issuer.claims(json!({})));
    let (head, _) = valid.rsplit_once('.').unwrap_or_default();
    let admin = URL_SAFE_NO_PAD.encode(issuer.claims(json!({ "sub": "admin" })).to_string());
    let (header_part, _) = head.split_once('.').unwrap_or_default();
    let signature = valid.rsplit('.').next().unwrap_or_default();
    refused(format!("{header_part}.{admin}.{signature}"), "invalid token").await;

    // A valid token under another scheme.
    call(app, "GET", "/configs", Some(&format!("Token {valid}")))
        .await
        .assert_unauthorized("authorization scheme must be Bearer");
}

fn rsa_public_der() -> Vec<u8> {
    let der = rsa_test_key_der();
    let pair = ring::rsa::KeyPair::from_der(&der).unwrap_or_else(|e| panic!("{e}"));
    pair.public_key().as_ref().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_split_reads_from_writes() {
    let key = SigningKey::es256("ec-1");
    let issuer = Issuer::start(&[&key]).await;
    let issuer_flag = format!("--auth-issuers={}", issuer.url);
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            "--auth-enabled",
            "--auth-check-scopes",
            &issuer_flag,
            &api_keys_flag(),
        ],
    )
    .await;
    let token = |scopes: Value| bearer(&key.token(&issuer.claims(scopes)));
    let forbidden = |scope: &str| {
        (
            format!("missing scope {scope}"),
            format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
        )
    };

    // Read: GETs only.
    let read = token(json!({ "scope": "openid webhooks:read" }));
    for path in ["/configs", "/deliveries", "/deliveries/x"] {
        call(&app, "GET", path, Some(&read)).await.assert_let_through();
    }
    let (message, challenge) = forbidden("webhooks:write");
    create_config(&app, &read)
        .await
        .assert_refused(403, "FORBIDDEN", &message, &challenge);
    for (method, path) in [
        ("PUT", "/configs/x/activate"),
        ("DELETE", "/configs/x"),
        ("POST", "/events"),
    ] {
        call(&app, method, path, Some(&read))
            .await
            .assert_refused(403, "FORBIDDEN", &message, &challenge);
    }

    // Write: everything, from `scp` (array) or `scope` (string).
    for write in [
        token(json!({ "scp": ["webhooks:write"] })),
        token(json!({ "scope": "webhooks:write email" })),
    ] {
        assert_eq!(create_config(&app, &write).await.status, 200);
        call(&app, "GET", "/configs", Some(&write))
            .await
            .assert_let_through();
    }
    call(
        &app,
        "GET",
        "/configs",
        Some(&token(json!({ "scp": ["webhooks:read"] }))),
    )
    .await
    .assert_let_through();

    // No scope, or another service's.
    let (message, challenge) = forbidden("webhooks:read");
    for none in [
        token(json!({})),
        token(json!({ "scope": "billing:write webhooks" })),
    ] {
        call(&app, "GET", "/configs", Some(&none)).await.assert_refused(
            403,
            "FORBIDDEN",
            &message,
            &challenge,
        );
    }

    // API keys carry every scope.
    assert_eq!(create_config(&app, &bearer(PLAIN_KEY)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_at_the_issuer_is_picked_up_without_restart() {
    let old = SigningKey::es256("2024-01");
    let issuer = Issuer::start(&[&old]).await;
    let issuer_flag = format!("--auth-issuer={}", issuer.url);
    let app = &TestApp::spawn_with(Backend::Sqlite, &["--auth-enabled", &issuer_flag]).await;
    let get = |token: String| async move { call(app, "GET", "/configs", Some(&bearer(&token))).await };
    assert_eq!(get(old.token(&issuer.claims(json!({})))).await.status, 200);
    let fetched = issuer.discovery_hits();
    assert_eq!(fetched, 1, "one discovery for the first token");
    // Cached: more tokens with a known key fetch nothing.
    assert_eq!(get(old.token(&issuer.claims(json!({})))).await.status, 200);
    assert_eq!(issuer.discovery_hits(), fetched);

    let new = SigningKey::rs256("2024-02");
    issuer.publish(&[&new]);
    assert_eq!(get(new.token(&issuer.claims(json!({})))).await.status, 200);
    assert_eq!(issuer.discovery_hits(), fetched + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_key_set_refuses_tokens_after_bounded_attempts() {
    let key = SigningKey::es256("ec-1");
    let issuer = Issuer::start(&[&key]).await;
    issuer.set_down(true);
    let issuer_flag = format!("--auth-issuer={}", issuer.url);
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            "--auth-enabled",
            &issuer_flag,
            "--auth-read-key-set-max-retries=3",
        ],
    )
    .await;
    let token = bearer(&key.token(&issuer.claims(json!({}))));
    call(&app, "GET", "/configs", Some(&token))
        .await
        .assert_unauthorized("token issuer's key set unavailable");
    assert_eq!(issuer.discovery_hits(), 3);
    // Once the issuer is back, the next token needing its keys is accepted.
    issuer.set_down(false);
    let a = call(&app, "GET", "/configs", Some(&token)).await;
    assert_eq!(a.status, 200, "{}", a.body);
}

/// `webhooks serve --debug` as a child process; every line it writes, kept.
struct Child {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Child {
    fn spawn(args: &[&str]) -> Child {
        let mut cmd = crate::cli::webhooks(args);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut readers = Vec::new();
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let lines = Arc::clone(&lines);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut all) = lines.lock() {
                        all.push(line);
                    }
                }
            }));
        }
        Child {
            child,
            lines,
            readers,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The address of the `listening` line (JSON logs).
    async fn listening(&self) -> String {
        eventually(Duration::from_secs(60), "the listening line", || async {
            self.lines().iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["message"] == "listening")
                    .then(|| v["addr"].as_str().map(str::to_owned))
                    .flatten()
            })
        })
        .await
    }

    /// Stops the process and returns everything it wrote.
    fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.lines().join("\n")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_the_logs() {
    let key = SigningKey::es256("ec-1");
    let issuer = Issuer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = format!("--sqlite-path={}", dir.path().join("w.db").display());
    let issuer_flag = format!("--auth-issuer={}", issuer.url);
    let keys_flag = api_keys_flag();
    let child = Child::spawn(&[
        "serve",
        "--listen=127.0.0.1:0",
        "--debug",
        "--json-formatting-logger",
        "--auth-enabled",
        "--auth-check-scopes",
        &db,
        &issuer_flag,
        &keys_flag,
    ]);
    let addr = child.listening().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let valid = key.token(&issuer.claims(json!({ "scope": "webhooks:read" })));
    let expired = key.token(&issuer.claims(json!({ "exp": now() - 600 })));
    let wrong_key = "wrong-key-9e81b4c2";
    let basic = STANDARD.encode("user:basic-password-44d1");
    let headers = [
        bearer(PLAIN_KEY),
        bearer(HASHED_KEY),
        bearer(wrong_key),
        bearer(&valid),
        bearer(&expired),
        format!("Basic {basic}"),
    ];
    let mut statuses = Vec::new();
    for header in &headers {
        for (method, path) in [("GET", "/configs"), ("POST", "/configs"), ("GET", "/nope")] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            let resp = client
                .request(method, format!("http://{addr}{path}"))
                .header("authorization", header)
                .header("content-type", "application/json")
                .body(CONFIG)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            statuses.push(resp.status().as_u16());
        }
    }
    // Every kind of answer happened: accepted, refused (401) and forbidden (403).
    for status in [200, 401, 403, 404] {
        assert!(statuses.contains(&status), "{status} in {statuses:?}");
    }
    let logs = child.finish();
    // The run was logged at debug, refusals included: the check below is not vacuous.
    assert!(logs.contains("request refused"), "{logs}");
    assert!(logs.contains("OIDC key set loaded"), "{logs}");
    let digest = sha256_hex(HASHED_KEY);
    let mut needles = vec![
        PLAIN_KEY.to_owned(),
        HASHED_KEY.to_owned(),
        digest,
        wrong_key.to_owned(),
        basic,
        "Bearer ".to_owned(),
        "authorization: ".to_owned(),
    ];
    for token in [&valid, &expired] {
        needles.push(token.clone());
        // Each part alone too (header, claims, signature).
        needles.extend(token.split('.').map(str::to_owned));
    }
    for needle in needles {
        assert!(!logs.contains(&needle), "the logs contain {needle:?}:\n{logs}");
    }
}

/// The start warning of spec §1.5: an API without authentication on a non-loopback address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_api_open_to_the_network_is_warned_about() {
    const WARNING: &str = "the API is open to the network without authentication";
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = format!("--sqlite-path={}", dir.path().join("w.db").display());
    let keys = api_keys_flag();
    for (listen, auth, warned) in [
        // Binding every interface sends no traffic anywhere; nothing is requested here.
        ("--listen=0.0.0.0:0", None, true),
        ("--listen=0.0.0.0:0", Some("--auth-enabled"), false),
        ("--listen=127.0.0.1:0", None, false),
    ] {
        let mut args = vec!["serve", listen, "--json-formatting-logger", &db];
        if let Some(flag) = auth {
            args.extend([flag, &keys]);
        }
        let child = Child::spawn(&args);
        // Logged before `listening`, so the start's lines are complete once that one shows.
        child.listening().await;
        let logs = child.finish();
        let warning = logs.lines().find(|l| l.contains(WARNING));
        assert_eq!(warning.is_some(), warned, "{listen} {auth:?}:\n{logs}");
        if let Some(line) = warning {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(v["level"], "WARN", "{line}");
        }
        // The reference's "not supported" warning is gone now that authentication is.
        assert!(!logs.contains("not supported"), "{logs}");
    }
}
