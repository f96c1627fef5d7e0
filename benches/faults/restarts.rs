//! A dependency goes away during a run and comes back (spec §10.5, rows 2 and 3): the broker
//! (tansu, stopped and started again on its data directory) or PostgreSQL (a fast stop, which
//! cuts every connection, then a start on the same data). Events are published at a steady rate
//! before, during and after the outage; `/_healthcheck` is sampled all along.
//!
//! Resume time: from the dependency's return (its port accepts connections again) to the
//! first delivery after it: the first call at the receiver (broker) or the first outcome
//! newly stored (PostgreSQL, where calls can go on while outcomes wait for the database).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::ctx::{consumer_args, wait_until, Ctx};
use crate::db::{delivery_id, Backend, Db};
use crate::kafka::{self, Landed, Outgoing, Paced};
use crate::process::HealthSampler;
use crate::receiver::{ids_by_event, Behaviour, Receiver};
use crate::report::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dependency {
    Broker,
    Postgres,
}

/// How long before the outage deliveries flow, and how long publishing goes on after it.
const BEFORE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(10);
/// The contract's bound on the resume time.
const RESUME_BOUND: Duration = Duration::from_secs(10);

pub async fn broker_restart(ctx: &Ctx) -> anyhow::Result<Row> {
    outage(ctx, Dependency::Broker).await
}

pub async fn postgres_restart(ctx: &Ctx) -> anyhow::Result<Row> {
    outage(ctx, Dependency::Postgres).await
}

/// Samples the number of stored outcomes every 100 ms: (when, count) while the database answers.
struct StoredSampler {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Vec<(Instant, i64)>>,
}

impl StoredSampler {
    fn start(db: Arc<Db>) -> StoredSampler {
        let stop = tokio_util::sync::CancellationToken::new();
        let st = stop.clone();
        let task = tokio::spawn(async move {
            let mut out = Vec::new();
            while !st.is_cancelled() {
                let at = Instant::now();
                if let Ok(n) = db.count("deliveries WHERE status <> 'delivering'").await {
                    out.push((at, n));
                }
                tokio::select! {
                    () = st.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            out
        });
        StoredSampler { stop, task }
    }

    async fn finish(self) -> Vec<(Instant, i64)> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

async fn outage(ctx: &Ctx, dependency: Dependency) -> anyhow::Result<Row> {
    let down = ctx.sizes.outage;
    let (name, db_name, topic) = match dependency {
        Dependency::Broker => ("broker restart", "faults_broker_restart", "faults-broker-restart"),
        Dependency::Postgres => ("PostgreSQL restart", "faults_pg_restart", "faults-pg-restart"),
    };
    let mut row = Row::new(
        &format!("{name} ({} s down)", down.as_secs()),
        "tansu 0.6 (restarted on its data)",
        "PostgreSQL",
    );
    if dependency == Dependency::Postgres {
        row.broker = "tansu 0.6".to_owned();
        row.storage = "PostgreSQL (fast stop, restarted on its data)".to_owned();
    }
    let bootstrap = ctx.tansu.lock().await.bootstrap();
    kafka::create_topic(&bootstrap, topic, 4).await?;
    let db = Arc::new(Db::new(ctx, Backend::Postgres, db_name).await?);
    let receiver = Receiver::start(Behaviour::Ok).await?;
    let worker = ctx
        .spawn(
            &format!("{}-serve-worker", db_name.trim_start_matches("faults_")),
            &consumer_args(
                &["serve", "--worker"],
                &bootstrap,
                topic,
                topic,
                vec![db.flag.clone()],
            ),
        )
        .await?;
    let (config, _) = worker.create_config(&receiver.url(), &["restart.t"]).await?;
    let health = HealthSampler::start(&worker.base);
    let stored_sampler = StoredSampler::start(Arc::clone(&db));
    // More ids than the run can publish (the warm-up wait is bounded by 60 s).
    let most =
        usize::try_from(ctx.sizes.restart_rate)? * usize::try_from((BEFORE + down + AFTER).as_secs() + 120)?;
    let event_ids: Arc<Vec<String>> = Arc::new((0..most).map(|_| uuid::Uuid::new_v4().to_string()).collect());
    let ids = Arc::clone(&event_ids);
    let producer = Arc::new(kafka::producer(&bootstrap)?);
    let paced = Paced::start(producer, topic, ctx.sizes.restart_rate, move |i| Outgoing {
        partition: None,
        value: Some(format!(r#"{{"type":"restart.t","payload":{{"i":{i}}}}}"#).into_bytes()),
        headers: vec![(
            "_watermill_message_uuid".to_owned(),
            ids.get(i).cloned().unwrap_or_default().into_bytes(),
        )],
    });
    wait_until(
        "deliveries before the outage",
        Duration::from_secs(60),
        || async { Ok(receiver.count() > 0) },
    )
    .await?;
    tokio::time::sleep(BEFORE).await;

    let stopped = Instant::now();
    let calls_at_stop = receiver.count();
    match dependency {
        Dependency::Broker => ctx.tansu.lock().await.stop().await?,
        Dependency::Postgres => {
            let pg = &ctx.pg;
            tokio::task::block_in_place(|| pg.stop())?;
        }
    }
    // The dependency is gone from here on (a killed broker, a stopped server).
    let gone = Instant::now();
    eprintln!("    {name}: stopped after {calls_at_stop} calls, down for {down:?}");
    tokio::time::sleep(down.saturating_sub(stopped.elapsed())).await;
    let returned = match dependency {
        Dependency::Broker => ctx.tansu.lock().await.start().await?,
        Dependency::Postgres => {
            // The return is the first query answered, polled every 10 ms while `pg_ctl start`
            // runs (it notices readiness later than clients do).
            let (url, polling) = (
                db.read_url().to_owned(),
                tokio_util::sync::CancellationToken::new(),
            );
            let stop_polling = polling.clone();
            let first_answer = tokio::task::spawn_blocking(move || {
                use diesel::Connection as _;
                while !stop_polling.is_cancelled() {
                    if diesel::PgConnection::establish(&url).is_ok() {
                        return Some(Instant::now());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                None
            });
            let pg = &ctx.pg;
            let started = tokio::task::block_in_place(|| pg.start());
            if started.is_err() {
                polling.cancel();
            }
            started?;
            first_answer
                .await?
                .context("PostgreSQL never answered after its start")?
        }
    };
    let calls_at_return = receiver.count();
    eprintln!(
        "    {name}: back after {:.1} s; {} calls meanwhile",
        returned.duration_since(stopped).as_secs_f64(),
        calls_at_return - calls_at_stop
    );
    tokio::time::sleep(AFTER).await;
    let resent = Arc::clone(&paced.resent);
    let (landed, failed) = paced.finish().await?;
    row.figure(
        "records re-sent by the publisher",
        resent.load(std::sync::atomic::Ordering::SeqCst),
    );
    let published: Vec<(usize, Landed)> = landed
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.map(|l| (i, l)))
        .collect();
    let n = published.len();
    wait_until(
        "every published event delivered and stored",
        Duration::from_secs(300),
        || async {
            let distinct: HashSet<u64> = receiver.calls().iter().filter_map(|c| c.event).collect();
            Ok(published.iter().all(|(i, _)| distinct.contains(&(*i as u64)))
                && db
                    .count(&format!(
                        "deliveries WHERE config_id = '{config}' AND status = 'succeeded'"
                    ))
                    .await?
                    >= n as i64)
        },
    )
    .await?;
    let samples = health.finish().await;
    let stored = stored_sampler.finish().await;
    let alive_health = worker.health().await;
    let exit = worker.terminate(Duration::from_secs(60)).await?;
    db.remember_secrets(ctx).await?;

    // --- figures and checks -------------------------------------------------------------------
    let calls = receiver.calls();
    let ids_of = ids_by_event(&calls);
    let succeeded = db.succeeded_ids(&config).await?;
    let lost = published
        .iter()
        .filter(|(i, _)| {
            !ids_of.contains_key(&(*i as u64)) || !succeeded.contains(&delivery_id(&event_ids[*i], &config))
        })
        .count();
    let wrong_ids = published
        .iter()
        .filter(|(i, _)| {
            let want = delivery_id(&event_ids[*i], &config);
            ids_of
                .get(&(*i as u64))
                .is_some_and(|ids| ids.iter().any(|id| *id != want))
        })
        .count();
    let delivered = published
        .iter()
        .filter(|(i, _)| ids_of.contains_key(&(*i as u64)))
        .count();
    row.published = Some(n as u64);
    row.delivered = Some(delivered as u64);
    row.lost = Some(lost as u64);
    row.duplicated = Some(
        published
            .iter()
            .map(|(i, _)| ids_of.get(&(*i as u64)).map_or(0, |v| v.len().saturating_sub(1)))
            .sum::<usize>() as u64,
    );
    row.figure("publish failures", failed.len());
    row.check(
        "every event was published (the producer waited the outage out)",
        failed.is_empty(),
        format!(
            "{} of {} refused: {:?}",
            failed.len(),
            landed.len(),
            failed.iter().take(3).collect::<Vec<_>>()
        ),
    );
    row.check(
        "0 events lost (each reached the receiver and is stored succeeded)",
        lost == 0,
        format!("{delivered} of {n} delivered, {lost} lost"),
    );
    row.check(
        "duplicates carry their delivery's formance-webhook-id",
        wrong_ids == 0,
        format!("{wrong_ids} events with another id"),
    );

    // Health while down: every sample asked once the dependency was gone and answered before
    // it was back answers 503.
    let during: Vec<u16> = samples
        .iter()
        .filter(|s| s.asked >= gone && s.answered < returned)
        .map(|s| s.status)
        .collect();
    let unavailable = during.iter().filter(|&&s| s == 503).count();
    let secs = |t: Instant| {
        t.saturating_duration_since(stopped).as_secs_f64()
            - stopped.saturating_duration_since(t).as_secs_f64()
    };
    eprintln!(
        "    health samples (asked, answered, status; s from the stop; back at {:.2}): {:?}",
        secs(returned),
        samples
            .iter()
            .filter(|s| s.answered + Duration::from_secs(1) >= stopped
                && s.asked <= returned + Duration::from_secs(2))
            .map(|s| format!("{:.2}/{:.2}/{}", secs(s.asked), secs(s.answered), s.status))
            .collect::<Vec<_>>()
    );

    row.health_503 = Some((unavailable as u64, during.len() as u64));
    row.check(
        "/_healthcheck answers 503 while the dependency is down",
        !during.is_empty() && unavailable == during.len(),
        format!(
            "{unavailable} of {} samples 503 (others: {:?})",
            during.len(),
            during.iter().filter(|&&s| s != 503).collect::<Vec<_>>()
        ),
    );
    let healthy_again = samples
        .iter()
        .find(|s| s.answered >= returned && s.status == 200)
        .map(|s| s.answered.duration_since(returned));
    row.figure(
        "health 200 again after (s)",
        healthy_again.map_or_else(|| "never".to_owned(), |d| format!("{:.2}", d.as_secs_f64())),
    );

    // Resume: the first call after the return (broker), the first outcome newly stored after
    // the return (PostgreSQL).
    let first_call = calls.iter().map(|c| c.at).find(|at| *at >= returned);
    let at_return = stored
        .iter()
        .rev()
        .find(|(at, _)| *at < stopped)
        .map_or(0, |(_, n)| *n);
    let first_stored = stored
        .iter()
        .find(|(at, count)| *at >= returned && *count > at_return)
        .map(|(at, _)| *at);
    let call_resume = first_call.map(|t| t.duration_since(returned));
    let store_resume = first_stored.map(|t| t.duration_since(returned));
    let resume = match dependency {
        Dependency::Broker => call_resume,
        Dependency::Postgres => store_resume,
    };
    row.resume_max_seconds = resume.map(|d| d.as_secs_f64());
    let secs =
        |d: Option<Duration>| d.map_or_else(|| "never".to_owned(), |d| format!("{:.2}", d.as_secs_f64()));
    row.figure("first call after the return (s)", secs(call_resume));
    row.figure("first outcome stored after the return (s)", secs(store_resume));
    row.figure("calls while down", calls_at_return - calls_at_stop);
    row.check(
        "delivery resumes within 10 s of the return",
        resume.is_some_and(|d| d <= RESUME_BOUND),
        format!("resumed after {} s", secs(resume)),
    );
    row.check(
        "the process stayed up (health 200 at the end, SIGTERM exit 0)",
        alive_health == 200 && exit == Some(0),
        format!("health {alive_health}, exit {exit:?}"),
    );
    Ok(row)
}
