//! Test harness: real PostgreSQL (a schema per test), real SQLite files, the API on port 0, a
//! receiver on 127.0.0.1 that records requests, and a proxy that can cut the database away.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use webhooks::config::{Settings, StorageSettings};
use webhooks::serve;

/// Where the tests find PostgreSQL: `WEBHOOKS_TEST_POSTGRES_URL`, default the local server.
pub fn postgres_base_url() -> String {
    std::env::var("WEBHOOKS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One isolated database: a fresh SQLite file, or a fresh PostgreSQL schema dropped at the end.
pub struct TestDb {
    pub storage: StorageSettings,
    pub schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
                let path = dir.path().join("webhooks.db").to_string_lossy().into_owned();
                TestDb {
                    storage: StorageSettings::Sqlite { path },
                    schema: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let base = postgres_base_url();
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut admin = admin_connection(&base);
                diesel::sql_query(format!("CREATE SCHEMA {schema}"))
                    .execute(&mut admin)
                    .unwrap_or_else(|e| panic!("CREATE SCHEMA: {e}"));
                TestDb {
                    storage: StorageSettings::Postgres {
                        uri: with_search_path(&base, &schema),
                    },
                    schema: Some(schema),
                    _dir: None,
                }
            }
        }
    }

    /// Another handle on the same database, for a second process; only the first removes it.
    pub fn handle(&self) -> TestDb {
        TestDb {
            storage: self.storage.clone(),
            schema: None,
            _dir: None,
        }
    }

    pub fn uri(&self) -> String {
        match &self.storage {
            StorageSettings::Postgres { uri } => uri.clone(),
            StorageSettings::Sqlite { path } => path.clone(),
        }
    }

    /// Runs a statement on the database directly, past the service (to provoke faults).
    pub fn execute(&self, sql: &str) {
        match &self.storage {
            StorageSettings::Postgres { uri } => {
                let mut conn = PgConnection::establish(uri).unwrap_or_else(|e| panic!("{e}"));
                diesel::sql_query(sql)
                    .execute(&mut conn)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            StorageSettings::Sqlite { path } => {
                let mut conn = diesel::SqliteConnection::establish(path).unwrap_or_else(|e| panic!("{e}"));
                diesel::sql_query(sql)
                    .execute(&mut conn)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// The command-line flag selecting this database.
    pub fn flag(&self) -> String {
        match &self.storage {
            StorageSettings::Postgres { uri } => format!("--postgres-uri={uri}"),
            StorageSettings::Sqlite { path } => format!("--sqlite-path={path}"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(schema) = &self.schema {
            if let Ok(mut admin) = PgConnection::establish(&postgres_base_url()) {
                let _ =
                    diesel::sql_query(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut admin);
            }
        }
    }
}

pub fn admin_connection(base: &str) -> PgConnection {
    PgConnection::establish(base).unwrap_or_else(|e| {
        panic!(
            "cannot reach PostgreSQL at {base}: {e}\n\
             Run the suite with ./scripts/test.sh (it starts a throwaway server), or point \
             WEBHOOKS_TEST_POSTGRES_URL at a server where you may create schemas."
        )
    })
}

/// libpq's `options` parameter pins every connection of the pool to the test's schema.
pub fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

/// Builds `serve` settings exactly as the binary would, from flags.
pub fn settings(args: &[&str]) -> Settings {
    Settings::from_flags(args).unwrap_or_else(|e| panic!("{e}"))
}

/// The API running in-process on 127.0.0.1:0 against its own database.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// Kept for the test's lifetime: dropping it removes the database.
    db: TestDb,
    running: Option<serve::Running>,
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = resp.text().await.unwrap_or_else(|e| panic!("{e}"));
        Reply {
            status,
            content_type,
            body,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Asserts the documented error shape, byte for byte.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, message: &str) {
        let want = format!(
            "{}\n",
            serde_json::json!({ "errorCode": code, "errorMessage": message })
        );
        assert_eq!((self.status, self.body.as_str()), (status, want.as_str()));
        assert_eq!(self.content_type, "application/json");
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, &[]).await
    }

    pub async fn spawn_with(backend: Backend, extra: &[&str]) -> TestApp {
        Self::spawn_on(TestDb::new(backend), extra).await
    }

    pub async fn spawn_on(db: TestDb, extra: &[&str]) -> TestApp {
        Self::spawn_as(serve::Role::Serve, db, extra).await
    }

    /// As `webhooks serve` or `webhooks worker`.
    pub async fn spawn_as(role: serve::Role, db: TestDb, extra: &[&str]) -> TestApp {
        let flag = db.flag();
        let mut args = vec!["--listen=127.0.0.1:0", "--auto-migrate", flag.as_str()];
        args.extend_from_slice(extra);
        let running = serve::start(&settings(&args), role)
            .await
            .unwrap_or_else(|e| panic!("serve::start: {e:#}"));
        TestApp {
            base: format!("http://{}", running.server.addr),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
            db,
            running: Some(running),
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        content_type: Option<&str>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(body) = body {
            req = req.body(body.to_owned());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        Reply::read(resp).await
    }

    /// A POST with an optional `Idempotency-Key` and an optional JSON body (the replay routes).
    pub async fn post_with_key(&self, path: &str, key: Option<&str>, body: Option<&str>) -> Reply {
        let mut req = self.client.post(format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        Reply::read(resp).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, None).await
    }

    pub async fn send_json(&self, method: &str, path: &str, body: &str) -> Reply {
        self.request(method, path, Some(body), Some("application/json"))
            .await
    }

    /// A second `serve` process on the same database.
    pub async fn beside(&self) -> TestApp {
        Self::spawn_on(self.db.handle(), &[]).await
    }

    /// The database, for a restart on the same data (after [`TestApp::stop`]).
    pub fn into_db(self) -> TestDb {
        self.db
    }

    /// Runs a statement on the database directly, past the service (to provoke faults).
    pub fn execute(&self, sql: &str) {
        self.db.execute(sql);
    }

    pub fn store(&self) -> webhooks::store::Store {
        match &self.running {
            Some(r) => r.store.clone(),
            None => panic!("stopped"),
        }
    }

    /// Stops like SIGTERM would: HTTP, then the worker (drain, flush, commit).
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    /// Deliveries of a config as stored.
    pub async fn deliveries(&self, config_id: &str) -> Vec<webhooks::store::model::DeliveryRow> {
        let id = config_id.to_owned();
        self.store()
            .run(move |q| Ok(q.deliveries_of_config(&id)?))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn attempts(&self, delivery_id: &str) -> Vec<webhooks::store::model::AttemptRow> {
        let id = delivery_id.to_owned();
        self.store()
            .run(move |q| Ok(q.attempts_of_delivery(&id)?))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates a config and returns its JSON.
    pub async fn create_config(&self, endpoint: &str, event_types: &[&str]) -> serde_json::Value {
        let body = serde_json::json!({ "endpoint": endpoint, "eventTypes": event_types }).to_string();
        let reply = self.send_json("POST", "/configs", &body).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["data"].clone()
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the request's body had arrived.
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Verifies the signature independently of the service's code: HMAC-SHA256 over
    /// `id.timestamp.body`, keyed with the secret string's own bytes, standard base64.
    pub fn signature_valid(&self, secret: &str) -> bool {
        use base64::Engine;
        use hmac::Mac;
        let (Some(id), Some(ts), Some(sig)) = (
            self.header("formance-webhook-id"),
            self.header("formance-webhook-timestamp"),
            self.header("formance-webhook-signature"),
        ) else {
            return false;
        };
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(&self.body);
        let expected = base64::engine::general_purpose::STANDARD.decode(sig.trim_start_matches("v1,"));
        sig.starts_with("v1,") && expected.is_ok_and(|e| mac.verify_slice(&e).is_ok())
    }
}

/// How the receiver misbehaves (by default it answers with the set status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Never answer (the caller's timeout fires).
    Hang = 1,
    /// Close the connection without a response.
    Reset = 2,
}

/// What the receiver answers, settable while it runs.
#[derive(Debug, Default)]
struct Behaviour {
    retry_after: Option<String>,
    body: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
    delay: Duration,
}

/// An HTTP receiver on 127.0.0.1:0 that records every request and answers a settable status.
pub struct Receiver {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    mode: Arc<std::sync::atomic::AtomicU8>,
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Receiver {
    pub async fn start(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let status = Arc::new(AtomicU16::new(status));
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour: Arc<Mutex<Behaviour>> = Arc::default();
        let mode: Arc<std::sync::atomic::AtomicU8> = Arc::default();
        let shared = (
            Arc::clone(&status),
            Arc::clone(&received),
            Arc::clone(&behaviour),
            Arc::clone(&mode),
        );
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<Incoming>| {
                        let (s, r, b, m) = shared.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let headers = parts
                                .headers
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        k.as_str().to_owned(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                })
                                .collect();
                            if let Ok(mut all) = r.lock() {
                                all.push(Received {
                                    method: parts.method.to_string(),
                                    path: parts.uri.path().to_owned(),
                                    headers,
                                    body,
                                    at: std::time::Instant::now(),
                                });
                            }
                            match m.load(Ordering::SeqCst) {
                                1 => std::future::pending::<()>().await,
                                2 => return Err(std::io::Error::other("reset by the test receiver")),
                                _ => {}
                            }
                            let (delay, body, extra, retry_after) = match b.lock() {
                                Ok(b) => (b.delay, b.body.clone(), b.headers.clone(), b.retry_after.clone()),
                                Err(_) => (Duration::ZERO, None, Vec::new(), None),
                            };
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            let body = body.map_or_else(|| Bytes::from_static(b"ok"), Bytes::from);
                            let mut resp = hyper::Response::new(Full::new(body));
                            *resp.status_mut() = hyper::StatusCode::from_u16(s.load(Ordering::SeqCst))
                                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                            let extra = retry_after
                                .map(|v| ("retry-after".to_owned(), v))
                                .into_iter()
                                .chain(extra);
                            for (k, v) in extra {
                                if let (Ok(k), Ok(v)) = (
                                    hyper::header::HeaderName::from_bytes(k.as_bytes()),
                                    hyper::header::HeaderValue::from_str(&v),
                                ) {
                                    resp.headers_mut().insert(k, v);
                                }
                            }
                            Ok::<_, std::io::Error>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            status,
            mode,
            behaviour,
            received,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn change(&self, f: impl FnOnce(&mut Behaviour)) {
        if let Ok(mut b) = self.behaviour.lock() {
            f(&mut b);
        }
    }

    pub fn set_retry_after(&self, value: &str) {
        self.change(|b| b.retry_after = Some(value.to_owned()));
    }

    /// Answers with these body bytes (and headers) instead of `ok`.
    pub fn set_body(&self, body: &[u8], headers: &[(&str, &str)]) {
        self.change(|b| {
            b.body = Some(body.to_vec());
            b.headers = headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        });
    }

    /// Answers only after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.change(|b| b.delay = delay);
    }

    pub fn count(&self) -> usize {
        self.received.lock().map(|r| r.len()).unwrap_or(0)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh PostgreSQL schema reached through a [`Proxy`], so a test can take storage away.
pub async fn postgres_behind_proxy() -> (TestDb, Proxy) {
    let base = url::Url::parse(&postgres_base_url()).unwrap_or_else(|e| panic!("{e}"));
    let target = format!(
        "{}:{}",
        base.host_str().unwrap_or("127.0.0.1"),
        base.port().unwrap_or(5432)
    );
    let target = tokio::net::lookup_host(&target)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve {target}"));
    let proxy = Proxy::start(target).await;
    let mut db = TestDb::new(Backend::Postgres);
    let mut via_proxy = base.clone();
    let _ = via_proxy.set_ip_host(proxy.addr.ip());
    let _ = via_proxy.set_port(Some(proxy.addr.port()));
    let schema = db.schema.clone().unwrap_or_default();
    db.storage = StorageSettings::Postgres {
        uri: with_search_path(via_proxy.as_str(), &schema),
    };
    (db, proxy)
}

/// A TCP proxy to PostgreSQL that the test can cut, to see the service with its storage gone.
pub struct Proxy {
    pub addr: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let down: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let (t, d) = (Arc::clone(&tasks), Arc::clone(&down));
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    continue;
                }
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut all) = t.lock() {
                    all.push(conn);
                }
            }
        });
        Proxy {
            addr,
            tasks,
            down,
            accept,
        }
    }

    /// Refuses new connections and drops every proxied one, until [`Proxy::restore`].
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        if let Ok(mut all) = self.tasks.lock() {
            for t in all.drain(..) {
                t.abort();
            }
        }
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Polls `check` until it returns Some or the deadline passes (then panics with `what`).
pub async fn eventually<T, F, Fut>(deadline: std::time::Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Declares one async test per backend: `both_backends!(name, |backend| async { … })`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::harness::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)($crate::harness::Backend::Postgres).await
            }
        }
    };
}

/// A config row to insert directly through the store (tests of storage-level behaviour).
pub fn config_row() -> webhooks::domain::config::Config {
    let now = webhooks::domain::time::Timestamp::now();
    webhooks::domain::config::Config {
        endpoint: "http://127.0.0.1:1/h".into(),
        secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX".into(),
        event_types: vec!["t".into()],
        id: uuid::Uuid::new_v4().to_string(),
        active: true,
        name: None,
        created_at: now,
        updated_at: now,
        previous_secret: None,
    }
}

/// A delivery of `config_id` with its first attempt (a 500), created at `created`; `pending`
/// rows are due 5 s before `created` + 5 s, i.e. due now-ish when `created` is in the past.
pub fn first_attempt(
    config_id: &str,
    index: usize,
    status: &str,
    created: webhooks::domain::time::Timestamp,
) -> webhooks::store::model::FirstAttempt {
    use webhooks::domain::delivery::{AttemptOutcome, DeliveryStatus};
    use webhooks::store::model::{FirstAttempt, NewAttempt, NewDelivery};
    use webhooks::store::types::DbTime;
    let status: DeliveryStatus = status.parse().unwrap_or_else(|e| panic!("{e}"));
    let id = uuid::Uuid::new_v4().to_string();
    let due = webhooks::domain::time::Timestamp::from_datetime(
        created.as_datetime() + chrono::Duration::seconds(5),
    );
    FirstAttempt {
        delivery: NewDelivery {
            id: id.clone(),
            event_id: format!("t/0/{index}"),
            idempotency_key: String::new(),
            config_id: config_id.to_owned(),
            event_type: "t".into(),
            payload: format!("{{\"n\":{index}}}"),
            status,
            attempt_count: 1,
            first_attempt_at: Some(DbTime(created)),
            next_attempt_at: (status == DeliveryStatus::Pending).then_some(DbTime(due)),
            claimed_at: None,
            last_attempt_at: Some(DbTime(created)),
            last_status_code: Some(500),
            last_error: String::new(),
            replay_generation: 0,
            created_at: DbTime(created),
            updated_at: DbTime(created),
        },
        attempt: Some(NewAttempt {
            id: uuid::Uuid::new_v4().to_string(),
            delivery_id: id,
            attempt_number: 1,
            replay_generation: 0,
            endpoint: "http://127.0.0.1:1/h".into(),
            outcome: AttemptOutcome::RetryableFailure,
            status_code: 500,
            error: String::new(),
            duration_ms: Some(1),
            response_excerpt: String::new(),
            created_at: DbTime(created),
        }),
    }
}

/// A slice's elements by reference (the store's write calls take references).
pub fn refs<T>(items: &[T]) -> Vec<&T> {
    items.iter().collect()
}

/// Claim limits with no per-config restriction.
pub fn claim_limits(total: i64) -> webhooks::store::ClaimLimits {
    webhooks::store::ClaimLimits {
        total,
        per_config: i64::MAX,
        capped: Vec::new(),
    }
}
