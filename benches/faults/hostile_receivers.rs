//! Receivers that hang, reset, answer slowly, answer 500 and 429 with `Retry-After`, or answer
//! with binary and gzip bodies full of NUL bytes, next to a healthy one, all on one worker
//! (spec §10.5 row 4; §4.7, §5, §10.1, §10.2).
//!
//! Every event matches every config. What must hold:
//! - the schedule of §5: no delivery gets more calls than the schedule allows within the retry
//!   window, call k comes no earlier than t0 + the schedule's offset for k, a `Retry-After`
//!   answer is honoured — no retry storm;
//! - outcomes: the slow and binary receivers' deliveries succeed with one call each; failing
//!   ones end `failed` with `retry window exceeded`; every call has its attempt row; no excerpt
//!   keeps a NUL;
//! - the healthy config is unaffected: every delivery succeeds with one call, quickly;
//! - the worker never crashes (health 200 at the end, SIGTERM exit 0).

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ctx::{consumer_args, wait_until, Ctx};
use crate::db::{Backend, Db};
use crate::kafka::{self, Outgoing, Paced};
use crate::process::metric;
use crate::receiver::{Behaviour, Call, Receiver};
use crate::report::Row;

const TOPIC: &str = "faults-hostile-receivers";
/// The worker's settings: short enough to watch whole schedules.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(4);
const ABORT_AFTER: Duration = Duration::from_secs(8);
const RETRY_AFTER_SECONDS: u64 = 3;
/// Calls may arrive this much earlier than their nominal offset from the first call (the
/// first call's own connection time).
const TOLERANCE: Duration = Duration::from_millis(100);
/// The healthy config's first-attempt latency bound (record acknowledged → call).
const HEALTHY_P99: Duration = Duration::from_secs(1);

/// The on-time due offsets from t0 of calls 1, 2, … within the window (spec §5.1, §5.2):
/// 0, 1, 3, 7 s with these settings; a later call's due time is never earlier.
fn schedule() -> Vec<Duration> {
    let mut offsets = vec![Duration::ZERO];
    let mut at = Duration::ZERO;
    for n in 0u32.. {
        let delay = (MIN_BACKOFF * 2u32.pow(n.min(20))).min(MAX_BACKOFF);
        at += delay;
        if at > ABORT_AFTER {
            break;
        }
        offsets.push(at);
    }
    offsets
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(bytes);
    e.finish().unwrap_or_default()
}

/// A receiver and what its deliveries must end as.
struct Hostile {
    name: &'static str,
    receiver: Receiver,
    config: String,
    succeeds: bool,
    retry_after: bool,
}

pub async fn hostile_receivers(ctx: &Ctx) -> anyhow::Result<Row> {
    let n = ctx.sizes.hostile_events;
    let mut row = Row::new("hostile receivers", "tansu 0.6", "PostgreSQL");
    let bootstrap = ctx.tansu.lock().await.bootstrap();
    kafka::create_topic(&bootstrap, TOPIC, 2).await?;
    let db = Db::new(ctx, Backend::Postgres, "faults_hostile_receivers").await?;
    let worker = ctx
        .spawn(
            "hostile-receivers-serve-worker",
            &consumer_args(
                &["serve", "--worker"],
                &bootstrap,
                TOPIC,
                TOPIC,
                vec![
                    format!("--http-timeout={}s", HTTP_TIMEOUT.as_secs()),
                    format!("--min-backoff-delay={}s", MIN_BACKOFF.as_secs()),
                    format!("--max-backoff-delay={}s", MAX_BACKOFF.as_secs()),
                    format!("--abort-after={}s", ABORT_AFTER.as_secs()),
                    "--retry-period=250ms".to_owned(),
                    "--endpoint-concurrency=16".to_owned(),
                    // No circuit breaker: every failing delivery runs its whole §5 schedule, so the
                    // schedules and the final outcomes are what is checked (the breaker, which only
                    // removes calls, has its own tests: tests/it/liveness.rs).
                    "--circuit-breaker-failures=0".to_owned(),
                    db.flag.clone(),
                ],
            ),
        )
        .await?;
    let nul_body = b"binary\x00body\xff\xfe with NUL\x00 and invalid UTF-8".to_vec();
    let retry_after = Some(RETRY_AFTER_SECONDS.to_string());
    let specs: Vec<(&'static str, Behaviour, bool, bool)> = vec![
        ("healthy", Behaviour::Ok, true, false),
        (
            "slow (1.5 s)",
            Behaviour::Slow(Duration::from_millis(1500)),
            true,
            false,
        ),
        (
            "binary 200 with NUL",
            Behaviour::Body {
                status: 200,
                body: nul_body.clone(),
                headers: vec![("content-type".into(), "application/octet-stream".into())],
            },
            true,
            false,
        ),
        ("hang", Behaviour::Hang(Duration::from_secs(30)), false, false),
        ("reset", Behaviour::Reset, false, false),
        (
            "500 + Retry-After",
            Behaviour::Status {
                status: 500,
                retry_after: retry_after.clone(),
            },
            false,
            true,
        ),
        (
            "429 + Retry-After",
            Behaviour::Status {
                status: 429,
                retry_after,
            },
            false,
            true,
        ),
        (
            "gzip 500 with NUL",
            Behaviour::Body {
                status: 500,
                body: gzip(&nul_body),
                headers: vec![("content-encoding".into(), "gzip".into())],
            },
            false,
            false,
        ),
    ];
    let mut hostile = Vec::new();
    for (name, behaviour, succeeds, retry_after) in specs {
        let receiver = Receiver::start(behaviour).await?;
        let (config, _) = worker.create_config(&receiver.url(), &["hostile.t"]).await?;
        hostile.push(Hostile {
            name,
            receiver,
            config,
            succeeds,
            retry_after,
        });
    }

    // Publish n events over about 10 s (smoke: 4 s).
    let seconds = if ctx.smoke { 4 } else { 10 };
    let rate = u32::try_from(n / seconds).unwrap_or(1).max(1);
    let producer = Arc::new(kafka::producer(&bootstrap)?);
    let paced = Paced::start(producer, TOPIC, rate, |i| Outgoing {
        partition: None,
        value: Some(format!(r#"{{"type":"hostile.t","payload":{{"i":{i}}}}}"#).into_bytes()),
        headers: vec![(
            "_watermill_message_uuid".to_owned(),
            uuid::Uuid::new_v4().to_string().into_bytes(),
        )],
    });
    wait_until("the events to be published", Duration::from_secs(120), || async {
        Ok(paced.published() >= n)
    })
    .await?;
    let (landed, failed) = paced.finish().await?;
    let published = landed.iter().filter(|l| l.is_some()).count();
    row.published = Some(published as u64);
    row.check(
        "every event was published",
        failed.is_empty(),
        format!("{} failed", failed.len()),
    );
    // Every delivery reaches its final state: its schedule ends within the retry window.
    let healthy = &hostile[0];
    wait_until(
        "every delivery to reach its final state",
        Duration::from_secs(600),
        || async {
            Ok(db
                .count("deliveries WHERE status IN ('succeeded', 'failed')")
                .await?
                >= (published * hostile.len()) as i64)
        },
    )
    .await?;
    let metrics = worker.metrics().await.unwrap_or_default();
    let health = worker.health().await;
    let exit = worker.terminate(Duration::from_secs(60)).await?;
    row.check(
        "0 crashes: health 200 at the end, SIGTERM exit 0",
        health == 200 && exit == Some(0),
        format!("health {health}, exit {exit:?}"),
    );
    db.remember_secrets(ctx).await?;

    // --- figures and checks -------------------------------------------------------------------
    let offsets = schedule();
    let most_calls = offsets.len();
    row.figure(
        "schedule offsets (s)",
        format!("{:?}", offsets.iter().map(Duration::as_secs).collect::<Vec<_>>()),
    );
    let mut lost_total = 0;
    let mut most_seen = 0;
    for h in &hostile {
        let deliveries = db.deliveries(&format!("config_id = '{}'", h.config)).await?;
        let attempts = db.attempts_of_config(&h.config).await?;
        let calls = h.receiver.calls();
        let mut by_delivery: HashMap<&str, Vec<&Call>> = HashMap::new();
        for c in &calls {
            by_delivery.entry(c.webhook_id.as_str()).or_default().push(c);
        }
        let lost = published.saturating_sub(deliveries.len());
        lost_total += lost;
        let per_delivery_max = by_delivery.values().map(Vec::len).max().unwrap_or(0);
        most_seen = most_seen.max(per_delivery_max);
        let status_count = |s: &str| deliveries.iter().filter(|d| d.status == s).count();
        let (succeeded, failed_n, pending, delivering) = (
            status_count("succeeded"),
            status_count("failed"),
            status_count("pending"),
            status_count("delivering"),
        );
        row.figure(
            format!("{}: calls / deliveries / succeeded / failed / pending", h.name),
            format!(
                "{}/{}/{succeeded}/{failed_n}/{pending}",
                calls.len(),
                deliveries.len()
            ),
        );
        row.check(
            format!("{}: every event has its delivery, none left delivering", h.name),
            lost == 0 && delivering == 0,
            format!(
                "{} of {published} stored, {delivering} delivering",
                deliveries.len()
            ),
        );
        row.check(
            format!("{}: every call has its attempt row", h.name),
            attempts.len() == calls.len(),
            format!("{} calls, {} attempt rows", calls.len(), attempts.len()),
        );
        let nul = attempts
            .iter()
            .filter(|a| a.response_excerpt.contains('\0') || a.error.contains('\0'))
            .count();
        row.check(
            format!("{}: no stored excerpt or error keeps a NUL", h.name),
            nul == 0,
            format!("{nul} attempt rows with NUL"),
        );
        if h.succeeds {
            let extra = calls.len().saturating_sub(by_delivery.len());
            row.check(
                format!("{}: every delivery succeeded with one call", h.name),
                succeeded == published && extra == 0 && by_delivery.len() == published,
                format!("{succeeded} succeeded, {extra} extra calls"),
            );
            continue;
        }
        // Schedules: at most `most_calls` calls, call k no earlier than t0 + offset(k).
        let mut early = Vec::new();
        let mut ignored_retry_after = 0;
        for (id, calls) in &by_delivery {
            let t0 = calls[0].at;
            for (k, c) in calls.iter().enumerate() {
                let want = offsets.get(k).copied().unwrap_or(Duration::MAX);
                if c.at.duration_since(t0) + TOLERANCE < want {
                    early.push(format!("{id} call {} at +{:?}", k + 1, c.at.duration_since(t0)));
                }
                if h.retry_after && k > 0 {
                    let gap = c.at.duration_since(calls[k - 1].at);
                    if gap + TOLERANCE < Duration::from_secs(RETRY_AFTER_SECONDS) {
                        ignored_retry_after += 1;
                    }
                }
            }
        }
        row.check(
            format!(
                "{}: at most {most_calls} calls per delivery, none before its schedule",
                h.name
            ),
            per_delivery_max <= most_calls && early.is_empty(),
            format!(
                "most calls for one delivery {per_delivery_max}; {} early (e.g. {:?})",
                early.len(),
                early.iter().take(3).collect::<Vec<_>>()
            ),
        );
        if h.retry_after {
            row.check(
                format!("{}: Retry-After honoured between calls", h.name),
                ignored_retry_after == 0,
                format!("{ignored_retry_after} gaps shorter than {RETRY_AFTER_SECONDS} s"),
            );
        }
        let wrong_end = deliveries
            .iter()
            .filter(|d| d.status == "failed" && d.last_error != "retry window exceeded")
            .map(|d| d.last_error.clone())
            .collect::<Vec<_>>();
        row.check(
            format!("{}: every delivery failed with `retry window exceeded`", h.name),
            wrong_end.is_empty() && failed_n == published,
            format!(
                "{failed_n} failed, {pending} pending; other errors {:?}",
                wrong_end.iter().take(3).collect::<Vec<_>>()
            ),
        );
    }
    row.lost = Some(lost_total as u64);
    row.figure("most calls for one delivery", most_seen);

    // The healthy config, next to all that: first-attempt latency from the acknowledgement.
    let acked: HashMap<u64, Instant> = landed
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.map(|l| (i as u64, l.acked)))
        .collect();
    let mut latency: Vec<Duration> = healthy
        .receiver
        .calls()
        .iter()
        .filter_map(|c| {
            c.event
                .and_then(|i| acked.get(&i))
                .map(|a| c.at.saturating_duration_since(*a))
        })
        .collect();
    latency.sort();
    let at = |q: f64| {
        latency
            .get(((latency.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    row.delivered = Some(latency.len() as u64);
    row.figure(
        "healthy first-attempt latency p50/p99/max (ms)",
        format!(
            "{}/{}/{}",
            at(0.5).as_millis(),
            at(0.99).as_millis(),
            at(1.0).as_millis()
        ),
    );
    row.check(
        "the healthy config is unaffected: p99 first-attempt latency within 1 s",
        at(0.99) <= HEALTHY_P99 && latency.len() == published,
        format!("{} calls, p99 {} ms", latency.len(), at(0.99).as_millis()),
    );
    row.figure(
        "first attempts deferred (endpoint busy)",
        metric(
            &metrics,
            "webhooks_deliveries_deferred_total{reason=\"endpoint_busy\"}",
        ),
    );
    Ok(row)
}
