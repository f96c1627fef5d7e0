//! The end-to-end benchmark: HTTP and broker ceilings, delivery throughput on both storage
//! backends and both brokers, first-attempt latency, the retry sweep, worker cost and the
//! config API — all in one run. Run it with `./scripts/bench.sh` (which provisions PostgreSQL
//! and tansu and builds the release binaries); `--smoke` runs tiny sizes to prove it works.
//!
//! The worker and the API run as child processes (the `webhooks` binary), so their CPU time and
//! peak RSS are read from /proc for them alone. The receiver, the producers and the load
//! generator run here, on the same two cores.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::Serialize;

use webhooks::config::{Settings, StorageSettings};
use webhooks::domain::config::Config;
use webhooks::domain::time::Timestamp;
use webhooks::kafka::KafkaSettings;
use webhooks::outbound::{Outbound, SignedRequest};
use webhooks::store::model::{FirstAttempt, NewAttempt, NewDelivery};
use webhooks::store::types::DbTime;
use webhooks::store::{Migrations, Store};
use webhooks::worker::embedded_broker::EmbeddedBroker;

/// Sizes of one run.
#[derive(Debug, Clone, Copy, Serialize)]
struct Sizes {
    events: usize,
    fanout_events: usize,
    fanout_configs: usize,
    sweep_rows: usize,
    http_requests: usize,
    latency_seconds: u64,
    api_seconds: u64,
}

const FULL: Sizes = Sizes {
    events: 200_000,
    fanout_events: 20_000,
    fanout_configs: 10,
    sweep_rows: 100_000,
    http_requests: 200_000,
    latency_seconds: 10,
    api_seconds: 5,
};

const SMOKE: Sizes = Sizes {
    events: 2_000,
    fanout_events: 200,
    fanout_configs: 10,
    sweep_rows: 1_000,
    http_requests: 2_000,
    latency_seconds: 1,
    api_seconds: 1,
};

/// Bytes of each event record.
const EVENT_BYTES: usize = 512;
/// Partitions of each benchmark topic, on both brokers: the embedded broker's count, which it
/// needs to hold a 200,000-event backlog (its partitions keep 5 MiB each).
const PARTITIONS: i32 = webhooks::worker::embedded_broker::PARTITIONS;
/// Concurrent calls of the HTTP ceiling: the worker's default `--delivery-concurrency`.
const HTTP_CONCURRENCY: usize = 1024;
/// Connections of the `GET /configs` load generator.
const API_CONNECTIONS: usize = 64;
/// The longest any phase may take before the run fails.
const PHASE_DEADLINE: Duration = Duration::from_secs(900);

fn main() -> anyhow::Result<()> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(if smoke { SMOKE } else { FULL }, smoke))
}

/// One line of the results table.
#[derive(Debug, Clone, Serialize)]
struct Row {
    metric: String,
    value: f64,
    unit: &'static str,
    /// `>= x` or `<= x`, when the issue sets a target.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    met: Option<bool>,
}

#[derive(Default)]
struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn add(&mut self, metric: impl Into<String>, value: f64, unit: &'static str) {
        self.push(metric, value, unit, None);
    }

    fn at_least(&mut self, metric: impl Into<String>, value: f64, unit: &'static str, target: f64) {
        self.push(
            metric,
            value,
            unit,
            Some((format!(">= {target}"), value >= target)),
        );
    }

    fn at_most(&mut self, metric: impl Into<String>, value: f64, unit: &'static str, target: f64) {
        self.push(
            metric,
            value,
            unit,
            Some((format!("<= {target}"), value <= target)),
        );
    }

    fn push(
        &mut self,
        metric: impl Into<String>,
        value: f64,
        unit: &'static str,
        target: Option<(String, bool)>,
    ) {
        let row = Row {
            metric: metric.into(),
            value,
            unit,
            target: target.as_ref().map(|t| t.0.clone()),
            met: target.map(|t| t.1),
        };
        eprintln!("    {:<58} {:>12.2} {}", row.metric, row.value, row.unit);
        self.rows.push(row);
    }

    fn print(&self) {
        println!("| metric | value | unit | target | met |");
        println!("|---|---:|---|---|---|");
        for r in &self.rows {
            let value = if r.value >= 100.0 {
                format!("{:.0}", r.value)
            } else {
                format!("{:.2}", r.value)
            };
            println!(
                "| {} | {} | {} | {} | {} |",
                r.metric,
                value,
                r.unit,
                r.target.as_deref().unwrap_or(""),
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                }
            );
        }
    }
}

/// What a run needs from the environment (set by scripts/bench.sh).
struct Env {
    webhooks_bin: PathBuf,
    postgres_url: String,
    tansu: String,
    work_dir: PathBuf,
}

fn env() -> anyhow::Result<Env> {
    let var = |name: &str| {
        std::env::var(name)
            .with_context(|| format!("{name} is not set: run the benchmark with ./scripts/bench.sh"))
    };
    let work_dir = PathBuf::from(var("WEBHOOKS_BENCH_DIR")?);
    std::fs::create_dir_all(&work_dir)?;
    Ok(Env {
        webhooks_bin: PathBuf::from(var("WEBHOOKS_BENCH_BIN")?),
        postgres_url: var("WEBHOOKS_TEST_POSTGRES_URL")?,
        tansu: var("WEBHOOKS_TEST_KAFKA")?,
        work_dir,
    })
}

/// `WEBHOOKS_BENCH_ONLY`, when set, runs only the phases whose names contain it (for
/// profiling one scenario); a full table needs it unset.
fn only(phase: &str) -> bool {
    std::env::var("WEBHOOKS_BENCH_ONLY")
        .map_or(true, |wanted| phase.contains(&wanted) || wanted.contains(phase))
}

async fn run(sizes: Sizes, smoke: bool) -> anyhow::Result<()> {
    let env = env()?;
    let receiver = Receiver::start().await?;
    let mut table = Table::default();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    eprintln!("==> sizes {sizes:?}");

    eprintln!("==> HTTP ceiling");
    let http_ceiling = if only("http") {
        http_ceiling(&receiver, sizes.http_requests).await?
    } else {
        f64::NAN
    };
    table.add(
        "HTTP ceiling: signed POSTs/s (no Kafka, no database)",
        http_ceiling,
        "req/s",
    );

    let topic = |name: &str| format!("bench-{run_id}-{name}");
    let (events_topic, fanout_topic, latency_topic, idle_topic) =
        (topic("events"), topic("fanout"), topic("latency"), topic("idle"));
    let all_topics = [&events_topic, &fanout_topic, &latency_topic, &idle_topic].map(|t| t.to_string());
    let embedded = tokio::task::spawn_blocking(move || EmbeddedBroker::start(&all_topics)).await??;
    let brokers = [
        ("tansu", env.tansu.clone()),
        ("embedded", embedded.bootstrap().to_owned()),
    ];
    if only("tansu") {
        create_topics(
            &env.tansu,
            &[&events_topic, &fanout_topic, &latency_topic, &idle_topic],
        )
        .await?;
    }

    let mut peak_rss_mb: f64 = 0.0;
    let mut e2e_rates = HashMap::new();
    for (broker, bootstrap) in &brokers {
        if !only(broker) {
            continue;
        }
        eprintln!("==> preloading {broker}");
        preload(bootstrap, &events_topic, sizes.events).await?;
        preload(bootstrap, &fanout_topic, sizes.fanout_events).await?;
        eprintln!("==> {broker} ceiling");
        let ceiling = broker_ceiling(bootstrap, &events_topic, sizes.events).await?;
        table.add(
            format!("broker ceiling ({broker}): records/s, bare consumer"),
            ceiling,
            "rec/s",
        );
        let bound = ceiling.min(http_ceiling);
        for storage in [Storage::Postgres, Storage::Sqlite] {
            for (configs, topic, events) in [
                (1, &events_topic, sizes.events),
                (sizes.fanout_configs, &fanout_topic, sizes.fanout_events),
            ] {
                if !only(&format!("{broker}-{}-{configs}", storage.name())) {
                    continue;
                }
                eprintln!("==> end to end: {broker}, {storage:?}, {configs} config(s)");
                let run = end_to_end(&env, &receiver, storage, bootstrap, topic, configs, events).await?;
                peak_rss_mb = peak_rss_mb.max(run.peak_rss_mb);
                let name = format!(
                    "{} config{}, {broker}, {}",
                    configs,
                    if configs == 1 { "" } else { "s" },
                    storage.name()
                );
                let target = match (storage, configs, *broker) {
                    (Storage::Sqlite, _, _) => Some(10_000.0),
                    (Storage::Postgres, 1, "embedded") => Some(20_000.0),
                    (Storage::Postgres, c, "tansu") if c > 1 => Some(20_000.0),
                    _ => None,
                };
                match target {
                    Some(t) => {
                        table.at_least(format!("end to end: deliveries/s, {name}"), run.rate, "del/s", t)
                    }
                    None => table.add(format!("end to end: deliveries/s, {name}"), run.rate, "del/s"),
                }
                table.at_least(
                    format!("ratio end to end / min(HTTP, broker ceiling), {name}"),
                    run.rate / bound,
                    "",
                    0.5,
                );
                if storage == Storage::Postgres && configs == 1 {
                    table.add(
                        format!("worker CPU seconds per 1,000 deliveries, {name}"),
                        run.cpu_per_1000,
                        "s",
                    );
                    e2e_rates.insert(*broker, run.rate);
                }
            }
        }
    }

    if only("latency") {
        eprintln!("==> latency at 50 % of the end-to-end rate (PostgreSQL, embedded broker)");
        // `WEBHOOKS_BENCH_LATENCY_RATE` sets the offered load when the phase runs alone.
        let offered = match std::env::var("WEBHOOKS_BENCH_LATENCY_RATE")
            .ok()
            .and_then(|r| r.parse().ok())
        {
            Some(rate) => rate,
            None => e2e_rates.get("embedded").copied().unwrap_or(1000.0) * 0.5,
        };
        let latency = latency(
            &env,
            &receiver,
            &brokers[1].1,
            &latency_topic,
            offered,
            sizes.latency_seconds,
        )
        .await?;
        peak_rss_mb = peak_rss_mb.max(latency.peak_rss_mb);
        table.add("latency: offered load", offered, "events/s");
        table.add(
            "latency p50: record timestamp → request arrival",
            latency.p50_ms,
            "ms",
        );
        table.at_most(
            "latency p99: record timestamp → request arrival",
            latency.p99_ms,
            "ms",
            20.0,
        );
        table.add(
            "latency max: record timestamp → request arrival",
            latency.max_ms,
            "ms",
        );
    }

    if only("sweep") {
        eprintln!("==> retry sweep");
        let sweep = sweep(&env, &receiver, &brokers[1].1, &idle_topic, sizes.sweep_rows).await?;
        peak_rss_mb = peak_rss_mb.max(sweep.peak_rss_mb);
        table.at_least(
            "retry sweep: due pending deliveries re-sent/s (PostgreSQL)",
            sweep.rate,
            "del/s",
            5_000.0,
        );
    }

    table.at_most("worker peak RSS (largest of all runs)", peak_rss_mb, "MB", 150.0);

    if only("api") {
        eprintln!("==> GET /configs");
        let api = api_rate(&env, sizes.api_seconds).await?;
        table.at_least(
            "API: GET /configs requests/s, 100 configs (PostgreSQL)",
            api,
            "req/s",
            20_000.0,
        );
    }

    drop(embedded);
    table.print();
    let out = env
        .work_dir
        .join(if smoke { "bench-smoke.json" } else { "bench.json" });
    let json = serde_json::json!({
        "sizes": sizes,
        "eventBytes": EVENT_BYTES,
        "partitions": PARTITIONS,
        "rows": table.rows,
    });
    std::fs::write(&out, serde_json::to_vec_pretty(&json)?)?;
    eprintln!("==> results written to {}", out.display());
    Ok(())
}

// --- the receiver --------------------------------------------------------------------------------

/// A fast HTTP receiver on 127.0.0.1: answers 200 with an empty body, counts requests, and
/// when asked records each body's latency from the `"t"` (µs since the epoch) it carries.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
}

#[derive(Default)]
struct ReceiverState {
    count: AtomicU64,
    /// Nanoseconds since `epoch` of the first and the latest request of this phase.
    first: AtomicU64,
    last: AtomicU64,
    measure_latency: AtomicBool,
    latencies_us: Mutex<Vec<u64>>,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn since_epoch() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

impl Receiver {
    async fn start() -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ReceiverState::default());
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<Incoming>| {
                        let state = Arc::clone(&state);
                        async move {
                            use http_body_util::BodyExt as _;
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            state.record(&body);
                            Ok::<_, std::io::Error>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Receiver { addr, state })
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Starts a phase: counters to zero, latency recording on or off.
    fn reset(&self, measure_latency: bool) {
        let s = &self.state;
        s.count.store(0, Ordering::SeqCst);
        s.first.store(0, Ordering::SeqCst);
        s.last.store(0, Ordering::SeqCst);
        if let Ok(mut l) = s.latencies_us.lock() {
            l.clear();
        }
        s.measure_latency.store(measure_latency, Ordering::SeqCst);
    }

    fn count(&self) -> u64 {
        self.state.count.load(Ordering::SeqCst)
    }

    /// Seconds from the phase's first request to `until` (nanoseconds since the epoch).
    fn seconds_since_first(&self, until: u64) -> f64 {
        let first = self.state.first.load(Ordering::SeqCst);
        until.saturating_sub(first) as f64 / 1e9
    }

    async fn wait_for(&self, n: u64, what: &str) -> anyhow::Result<()> {
        wait_until(what, || async { Ok(self.count() >= n) }).await
    }
}

impl ReceiverState {
    fn record(&self, body: &[u8]) {
        let now = since_epoch();
        let _ = self
            .first
            .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        self.last.fetch_max(now, Ordering::SeqCst);
        self.count.fetch_add(1, Ordering::SeqCst);
        if self.measure_latency.load(Ordering::Relaxed) {
            if let Some(sent) = sent_at(body) {
                if let Ok(mut l) = self.latencies_us.lock() {
                    l.push(unix_micros().saturating_sub(sent));
                }
            }
        }
    }
}

/// The `"t":<µs>` a benchmark event carries in its payload.
fn sent_at(body: &[u8]) -> Option<u64> {
    let key = b"\"t\":";
    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: Vec<u8> = body[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// Polls `done` every 20 ms until it holds; fails after [`PHASE_DEADLINE`].
async fn wait_until<F, Fut>(what: &str, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + PHASE_DEADLINE;
    while !done().await? {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

// --- ceilings ------------------------------------------------------------------------------------

/// Signed POSTs/s through the worker's own client (same settings, same signing), no storage.
async fn http_ceiling(receiver: &Receiver, requests: usize) -> anyhow::Result<f64> {
    let settings = Settings::from_flags(&["--allow-private-endpoints"]).map_err(anyhow::Error::msg)?;
    let outbound = Outbound::new(&settings.http)?;
    let url = receiver.url();
    let body = event_value(0).into_bytes();
    receiver.reset(false);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..HTTP_CONCURRENCY)
        .map(|_| {
            let (outbound, url, body, next) =
                (outbound.clone(), url.clone(), body.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                let mut failures = 0u64;
                while next.fetch_add(1, Ordering::Relaxed) < requests as u64 {
                    let id = uuid::Uuid::new_v4().to_string();
                    let result = outbound
                        .send(SignedRequest {
                            traceparent: None,
                            endpoint: &url,
                            secret: SECRET,
                            previous_secret: None,
                            webhook_id: &id,
                            body: &body,
                            idempotency_key: "",
                            test: false,
                        })
                        .await;
                    if result.status_code() != 200 {
                        failures += 1;
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = 0;
    for t in tasks {
        failures += t.await?;
    }
    let rate = requests as f64 / started.elapsed().as_secs_f64();
    if failures > 0 {
        bail!("{failures} ceiling requests failed");
    }
    Ok(rate)
}

/// Records/s one bare consumer with the worker's settings reads from a pre-loaded topic.
async fn broker_ceiling(bootstrap: &str, topic: &str, records: usize) -> anyhow::Result<f64> {
    let consumer: StreamConsumer = kafka_settings(bootstrap)?.consumer_config().create()?;
    consumer.subscribe(&[topic])?;
    let mut first = None;
    let mut n = 0;
    let deadline = Instant::now() + PHASE_DEADLINE;
    while n < records {
        let message = match tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await {
            Ok(m) => m?,
            Err(_) if Instant::now() < deadline => {
                eprintln!("    no record for 10 s after {n}");
                continue;
            }
            Err(_) => bail!("broker ceiling: {n} of {records} records read"),
        };
        drop(message);
        first.get_or_insert_with(Instant::now);
        n += 1;
    }
    let elapsed = first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(1.0);
    Ok(records as f64 / elapsed)
}

/// The worker's Kafka settings for `bootstrap`, in a consumer group of its own.
fn kafka_settings(bootstrap: &str) -> anyhow::Result<KafkaSettings> {
    let group = format!("--publisher-queue-group=bench-{}", uuid::Uuid::new_v4().simple());
    let settings = Settings::from_flags(&[&group]).map_err(anyhow::Error::msg)?;
    Ok(KafkaSettings::new(&settings, Some(bootstrap)))
}

async fn create_topics(bootstrap: &str, topics: &[&str]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    for result in admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        if let Err((topic, code)) = result {
            bail!("create topic {topic}: {code}");
        }
    }
    Ok(())
}

/// A 512-byte event of type `bench.t` whose payload carries `t` = now in µs.
fn event_value(n: usize) -> String {
    let head = format!(
        r#"{{"app":"bench","type":"t","payload":{{"n":{n},"t":{},"pad":""#,
        unix_micros()
    );
    let pad = EVENT_BYTES.saturating_sub(head.len() + 3);
    format!("{head}{}\"}}}}", "x".repeat(pad))
}

fn producer(bootstrap: &str, linger_ms: &str) -> anyhow::Result<BaseProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", linger_ms)
        .set("queue.buffering.max.messages", "1000000")
        .set("batch.num.messages", "10000")
        .set("compression.type", "none")
        .set("message.timeout.ms", "120000")
        .create()?)
}

/// Sends a record to `partition`, or where librdkafka's partitioner puts it when None,
/// waiting while the producer queue is full.
fn produce(p: &BaseProducer, topic: &str, partition: Option<i32>, value: &str) -> anyhow::Result<()> {
    let mut record = BaseRecord::<(), str>::to(topic).payload(value);
    record.partition = partition;
    loop {
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                p.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Record `n` of a pre-load goes to partition `n mod PARTITIONS`: the embedded broker keeps
/// only 5 MiB per partition, and librdkafka's sticky partitioner would pile a fast burst onto a
/// few of them.
fn round_robin(n: usize) -> Option<i32> {
    i32::try_from(n % PARTITIONS as usize).ok()
}

/// Writes `n` events to `topic` and checks the broker holds them.
async fn preload(bootstrap: &str, topic: &str, n: usize) -> anyhow::Result<()> {
    let (_, before) = watermarks(bootstrap, topic).await?;
    let (b, t) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let p = producer(&b, "20")?;
        for i in 0..n {
            produce(&p, &t, round_robin(i), &event_value(i))?;
        }
        p.flush(Duration::from_secs(300))?;
        Ok(())
    })
    .await??;
    let (low, after) = watermarks(bootstrap, topic).await?;
    if low > before {
        bail!("{topic}: the broker dropped records of the backlog");
    }
    if after - before != n as i64 {
        bail!("{topic}: {} records written, {n} expected", after - before);
    }
    Ok(())
}

/// The sums over the topic's partitions of the low and the high watermarks.
async fn watermarks(bootstrap: &str, topic: &str) -> anyhow::Result<(i64, i64)> {
    let consumer: rdkafka::consumer::BaseConsumer = kafka_settings(bootstrap)?.consumer_config().create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let (mut low, mut high) = (0, 0);
        for p in 0..PARTITIONS {
            let (l, h) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(30))?;
            (low, high) = (low + l, high + h);
        }
        Ok((low, high))
    })
    .await?
}

// --- the worker ----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    Postgres,
    Sqlite,
}

impl Storage {
    fn name(self) -> &'static str {
        match self {
            Storage::Postgres => "PostgreSQL",
            Storage::Sqlite => "SQLite",
        }
    }
}

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";

/// A fresh database (a PostgreSQL schema or a SQLite file), migrated, with its flag; removed
/// when dropped.
struct Db {
    flag: String,
    store: Store,
    cleanup: Cleanup,
}

enum Cleanup {
    Schema { admin_url: String, name: String },
    Files(PathBuf),
}

impl Drop for Db {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Schema { admin_url, name } => {
                use diesel::RunQueryDsl as _;
                if let Ok(mut admin) = webhooks::store::connect_postgres(admin_url) {
                    let _ = diesel::sql_query(format!("DROP SCHEMA {name} CASCADE")).execute(&mut admin);
                }
            }
            Cleanup::Files(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
        }
    }
}

fn new_db(env: &Env, storage: Storage) -> anyhow::Result<Db> {
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let settings = match storage {
        Storage::Postgres => {
            let mut admin = webhooks::store::connect_postgres(&env.postgres_url)?;
            use diesel::RunQueryDsl as _;
            diesel::sql_query(format!("CREATE SCHEMA {name}")).execute(&mut admin)?;
            let sep = if env.postgres_url.contains('?') { '&' } else { '?' };
            StorageSettings::Postgres {
                uri: format!("{}{sep}options=-csearch_path%3D{name}", env.postgres_url),
            }
        }
        Storage::Sqlite => StorageSettings::Sqlite {
            path: env.work_dir.join(format!("{name}.db")).display().to_string(),
        },
    };
    let store = Store::open(&settings, Migrations::Apply)?;
    let (flag, cleanup) = match &settings {
        StorageSettings::Postgres { uri } => (
            format!("--postgres-uri={uri}"),
            Cleanup::Schema {
                admin_url: env.postgres_url.clone(),
                name,
            },
        ),
        StorageSettings::Sqlite { path } => (
            format!("--sqlite-path={path}"),
            Cleanup::Files(PathBuf::from(path)),
        ),
    };
    Ok(Db { flag, store, cleanup })
}

async fn add_configs(db: &Db, endpoint: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let configs: Vec<Config> = (0..n)
        .map(|_| Config {
            endpoint: endpoint.to_owned(),
            secret: SECRET.to_owned(),
            event_types: vec!["bench.t".into()],
            id: uuid::Uuid::new_v4().to_string(),
            active: true,
            name: None,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
            previous_secret: None,
        })
        .collect();
    let ids = configs.iter().map(|c| c.id.clone()).collect();
    db.store
        .run(move |q| {
            for c in &configs {
                q.insert_config(c)?;
            }
            Ok(())
        })
        .await?;
    Ok(ids)
}

async fn succeeded(db: &Db) -> anyhow::Result<u64> {
    let n = db
        .store
        .run(|q| Ok(q.count_with_status(webhooks::domain::delivery::DeliveryStatus::Succeeded)?))
        .await?;
    Ok(u64::try_from(n).unwrap_or_default())
}

/// A `webhooks` child process.
struct Process {
    child: Child,
    base: String,
}

impl Process {
    async fn spawn(env: &Env, args: &[String], log: &str) -> anyhow::Result<Process> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(env.work_dir.join(log))?;
        let child = Command::new(&env.webhooks_bin)
            .args(args)
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg("--log-level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", env.webhooks_bin.display()))?;
        let process = Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let health = format!("{}/_healthcheck", process.base);
        wait_until("the process to be healthy", || async {
            Ok(client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()))
        })
        .await?;
        Ok(process)
    }

    /// CPU seconds (user + system) used so far; Linux reports them in 1/100 s.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 14 and 15 of stat(5), counted from the state (field 3) here.
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_default()
        };
        Ok((ticks(11) + ticks(12)) / 100.0)
    }

    fn peak_rss_mb(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or_default();
        Ok(kb / 1024.0)
    }

    /// SIGTERM, then wait for the clean exit.
    fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("process exited with {status}");
        }
        Ok(())
    }
}

/// `perf record` attached to a worker for one scenario, when `WEBHOOKS_BENCH_PERF` names it
/// (a substring of `<configs>-<storage>-<bootstrap>`, e.g. `1-PostgreSQL-127.0.0.1:59093`).
/// The profile lands in `target/bench/perf-<n>.data`; read it with `perf report -i …`.
struct Profiler {
    child: Child,
}

impl Profiler {
    fn attach(env: &Env, worker: &Process, scenario: &str) -> anyhow::Result<Option<Profiler>> {
        let Ok(wanted) = std::env::var("WEBHOOKS_BENCH_PERF") else {
            return Ok(None);
        };
        if !scenario.contains(&wanted) {
            return Ok(None);
        }
        let out = env.work_dir.join(format!("perf-{}.data", worker.child.id()));
        eprintln!("    profiling {scenario} into {}", out.display());
        let child = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "999", "-g", "-p"])
            .arg(worker.child.id().to_string())
            .arg("-o")
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start perf (apt-get install linux-perf)")?;
        Ok(Some(Profiler { child }))
    }

    /// SIGINT makes perf write its file and exit.
    fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

fn worker_args(db: &Db, bootstrap: &str, topic: &str) -> Vec<String> {
    vec![
        "worker".into(),
        "--publisher-kafka-enabled".into(),
        format!("--publisher-kafka-broker={bootstrap}"),
        format!("--kafka-topics={topic}"),
        format!("--publisher-queue-group=bench-{}", uuid::Uuid::new_v4().simple()),
        "--allow-private-endpoints".into(),
        db.flag.clone(),
    ]
}

struct Drained {
    rate: f64,
    cpu_per_1000: f64,
    peak_rss_mb: f64,
}

/// A worker drains `events` pre-loaded events for `configs` matching configs; the rate runs
/// from the first request's arrival until every outcome is durable.
async fn end_to_end(
    env: &Env,
    receiver: &Receiver,
    storage: Storage,
    bootstrap: &str,
    topic: &str,
    configs: usize,
    events: usize,
) -> anyhow::Result<Drained> {
    let db = new_db(env, storage)?;
    add_configs(&db, &receiver.url(), configs).await?;
    let expected = (events * configs) as u64;
    let scenario = format!("{configs}-{}-{bootstrap}", storage.name());
    let drained = drain(
        env,
        receiver,
        &db,
        bootstrap,
        topic,
        expected,
        "worker-e2e.log",
        &scenario,
    )
    .await?;
    if receiver.count() != expected {
        bail!("{} requests arrived, {expected} expected", receiver.count());
    }
    Ok(drained)
}

/// Starts a worker on `db` consuming `topic`, waits until `expected` requests arrived and as
/// many deliveries are durably `succeeded`, and stops it. The rate runs from the first
/// request's arrival until then. `scenario` is what `WEBHOOKS_BENCH_PERF` matches.
#[allow(clippy::too_many_arguments)]
async fn drain(
    env: &Env,
    receiver: &Receiver,
    db: &Db,
    bootstrap: &str,
    topic: &str,
    expected: u64,
    log: &str,
    scenario: &str,
) -> anyhow::Result<Drained> {
    receiver.reset(false);
    let worker = Process::spawn(env, &worker_args(db, bootstrap, topic), log).await?;
    let profile = Profiler::attach(env, &worker, scenario)?;
    receiver.wait_for(expected, "every delivery to arrive").await?;
    wait_until("every outcome to be durable", || async {
        Ok(succeeded(db).await? >= expected)
    })
    .await?;
    let rate = expected as f64 / receiver.seconds_since_first(since_epoch());
    let drained = Drained {
        rate,
        cpu_per_1000: worker.cpu_seconds()? / expected as f64 * 1000.0,
        peak_rss_mb: worker.peak_rss_mb()?,
    };
    if let Some(p) = profile {
        p.stop()?;
    }
    worker.stop()?;
    Ok(drained)
}

struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    peak_rss_mb: f64,
}

/// Events produced at `rate`/s for `seconds` to a running worker; latency from each record's
/// creation (its timestamp, also carried in the payload) to the request's arrival.
async fn latency(
    env: &Env,
    receiver: &Receiver,
    bootstrap: &str,
    topic: &str,
    rate: f64,
    seconds: u64,
) -> anyhow::Result<Latency> {
    let db = new_db(env, Storage::Postgres)?;
    add_configs(&db, &receiver.url(), 1).await?;
    receiver.reset(false);
    let worker = Process::spawn(env, &worker_args(&db, bootstrap, topic), "worker-latency.log").await?;
    // A producer as services run one: librdkafka's default linger (5 ms, counted in the
    // latency) and sticky partitioner. Sending each record alone to the next partition instead
    // makes the embedded broker (librdkafka's mock cluster) scan a list of one-record sets on
    // every fetch: it then tops out near 8,000 records/s.
    let p = producer(bootstrap, "5")?;
    // Warm up: the group is joined and a first delivery went through.
    produce(&p, topic, None, &event_value(0))?;
    p.flush(Duration::from_secs(30))?;
    receiver.wait_for(1, "the warm-up delivery").await?;
    receiver.reset(true);
    let total = (rate * seconds as f64) as u64;
    let t = topic.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < total {
            let due = ((started.elapsed().as_secs_f64() * rate) as u64).min(total);
            while sent < due {
                produce(&p, &t, None, &event_value(sent as usize))?;
                sent += 1;
            }
            p.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_micros(500));
        }
        p.flush(Duration::from_secs(30))?;
        Ok(())
    })
    .await??;
    receiver.wait_for(total, "every latency event").await?;
    let peak_rss_mb = worker.peak_rss_mb()?;
    worker.stop()?;
    let mut l = receiver
        .state
        .latencies_us
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    l.sort_unstable();
    let at = |q: f64| {
        l.get(((l.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default() as f64
            / 1000.0
    };
    Ok(Latency {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: at(1.0),
        peak_rss_mb,
    })
}

/// `rows` due `pending` deliveries re-sent by the sweep of a worker with nothing to consume.
async fn sweep(
    env: &Env,
    receiver: &Receiver,
    bootstrap: &str,
    topic: &str,
    rows: usize,
) -> anyhow::Result<Drained> {
    let db = new_db(env, Storage::Postgres)?;
    let config = add_configs(&db, &receiver.url(), 1).await?.remove(0);
    let now = Timestamp::now();
    let due = Timestamp::from_datetime(now.as_datetime() - chrono::Duration::seconds(1));
    for chunk in (0..rows).collect::<Vec<_>>().chunks(5_000) {
        let batch: Vec<FirstAttempt> = chunk.iter().map(|&i| pending_row(&config, i, now, due)).collect();
        db.store
            .run(move |q| Ok(q.record_first_attempts(&batch.iter().collect::<Vec<_>>(), Timestamp::now())?))
            .await?;
    }
    drain(
        env,
        receiver,
        &db,
        bootstrap,
        topic,
        rows as u64,
        "worker-sweep.log",
        "sweep",
    )
    .await
}

/// A delivery whose first attempt failed with a 500 and whose retry is due.
fn pending_row(config_id: &str, i: usize, now: Timestamp, due: Timestamp) -> FirstAttempt {
    let id = uuid::Uuid::new_v4().to_string();
    FirstAttempt {
        delivery: NewDelivery {
            id: id.clone(),
            event_id: format!("bench/0/{i}"),
            idempotency_key: String::new(),
            config_id: config_id.to_owned(),
            event_type: "bench.t".into(),
            payload: event_value(i),
            status: webhooks::domain::delivery::DeliveryStatus::Pending,
            attempt_count: 1,
            first_attempt_at: Some(DbTime(now)),
            next_attempt_at: Some(DbTime(due)),
            claimed_at: None,
            last_attempt_at: Some(DbTime(now)),
            last_status_code: Some(500),
            last_error: String::new(),
            replay_generation: 0,
            created_at: DbTime(now),
            updated_at: DbTime(now),
        },
        attempt: Some(NewAttempt {
            id: uuid::Uuid::new_v4().to_string(),
            delivery_id: id,
            attempt_number: 1,
            replay_generation: 0,
            endpoint: "http://127.0.0.1:1/hook".into(),
            outcome: webhooks::domain::delivery::AttemptOutcome::RetryableFailure,
            status_code: 500,
            error: String::new(),
            duration_ms: Some(1),
            response_excerpt: String::new(),
            created_at: DbTime(now),
        }),
    }
}

/// `GET /configs` requests/s against `webhooks serve` on PostgreSQL with 100 configs.
async fn api_rate(env: &Env, seconds: u64) -> anyhow::Result<f64> {
    let db = new_db(env, Storage::Postgres)?;
    add_configs(&db, "http://127.0.0.1:9/hook", 100).await?;
    let serve = Process::spawn(env, &["serve".to_owned(), db.flag.clone()], "serve-api.log").await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(API_CONNECTIONS)
        .build()?;
    let url = format!("{}/configs", serve.base);
    let first = client.get(&url).send().await?.text().await?;
    if !first.contains("\"hasMore\":false") || first.matches("\"endpoint\"").count() != 100 {
        bail!(
            "GET /configs did not list the 100 configs: {}",
            &first[..first.len().min(200)]
        );
    }
    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..API_CONNECTIONS)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut ok = 0u64;
                while Instant::now() < stop_at {
                    let resp = client.get(&url).send().await?;
                    if !resp.status().is_success() {
                        bail!("GET /configs answered {}", resp.status());
                    }
                    resp.bytes().await?;
                    ok += 1;
                }
                Ok(ok)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    serve.stop()?;
    Ok(rate)
}
