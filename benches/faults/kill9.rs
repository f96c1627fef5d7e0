//! `kill -9` the worker N times during a run; each restart rejoins the same consumer group
//! (spec §10.5, first row; §4.8).
//!
//! The broker is librdkafka's mock cluster hosted by this driver (the embedded broker's code),
//! not tansu: tansu 0.6 never gives partitions to a member that joins the group of a member
//! killed with SIGKILL (tests/it/kafka.rs). Killing the worker does not touch the broker, and
//! the mock cluster's group coordinator evicts the dead member after its session timeout, as
//! Kafka does. It keeps about 5 MiB per partition: the events are small and spread over its 32
//! partitions, and the low watermarks are checked never to have moved.
//!
//! While the run goes on, a sampler reads the group's committed offsets every 250 ms and checks,
//! for every record below a committed offset, that its delivery row holds a stored outcome
//! (spec §4.8: "when its record's offset is committed, the delivery exists with its outcome
//! durably stored"). Rows are never deleted here, so a row missing after the offset was seen
//! committed was missing when it was committed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use diesel::{Connection as _, RunQueryDsl as _};

use crate::ctx::{consumer_args, median_max, wait_until, Ctx};
use crate::db::{delivery_id, in_list, Backend, Db};
use crate::kafka::{self, Looker, Outgoing, Paced};
use crate::process::metric;
use crate::receiver::{ids_by_event, Behaviour, Receiver};
use crate::report::Row;
use webhooks::worker::embedded_broker::{EmbeddedBroker, PARTITIONS};

const TOPIC: &str = "faults-kill9";
const GROUP: &str = "faults-kill9";

/// One kill and the restart after it.
struct Restart {
    killed: Instant,
    spawned: Instant,
    /// The first call of the new process (its connection accepted after the kill).
    first_call: Instant,
    /// The group's committed offsets right after the kill.
    committed: Vec<i64>,
}

/// How long a restart takes to get its partitions back (the dead member's session timeout,
/// 30 s, and the rebalance): used only to pace publishing over the run.
const REJOIN_ESTIMATE: Duration = Duration::from_secs(35);

pub async fn kill_9_in_the_same_group(ctx: &Ctx) -> anyhow::Result<Row> {
    let (n, kills) = (ctx.sizes.kill_events, ctx.sizes.kills);
    let mut row = Row::new(
        &format!("kill -9 ×{kills} in the same group"),
        "librdkafka mock cluster (hosted by the driver)",
        "PostgreSQL",
    );
    let broker = tokio::task::spawn_blocking(|| EmbeddedBroker::start(&[TOPIC.to_owned()])).await??;
    let bootstrap = broker.bootstrap().to_owned();
    let db = Db::new(ctx, Backend::Postgres, "faults_kill9").await?;
    let receiver = Receiver::start(Behaviour::Ok).await?;
    let api = ctx
        .spawn("kill9-serve", &["serve".to_owned(), db.flag.clone()])
        .await?;
    let (config, _) = api.create_config(&receiver.url(), &["kill9.t"]).await?;

    // Events are published all along the run, spread over the partitions; each carries its
    // event id, so the driver knows each delivery's id (spec §4.3).
    let event_ids: Arc<Vec<String>> = Arc::new((0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect());
    let delivery_ids: Arc<Vec<String>> =
        Arc::new(event_ids.iter().map(|e| delivery_id(e, &config)).collect());
    let partitions = usize::try_from(PARTITIONS)?;
    let planned = (REJOIN_ESTIMATE + ctx.sizes.kill_after) * u32::try_from(kills + 1)?;
    let rate = u32::try_from(n)? / u32::try_from(planned.as_secs().max(1))?;
    row.figure("publishing rate (events/s)", rate);
    let ids = Arc::clone(&event_ids);
    let paced = Paced::start_limited(
        Arc::new(kafka::producer(&bootstrap)?),
        TOPIC,
        rate.max(1),
        n,
        move |i| Outgoing {
            partition: i32::try_from(i % partitions).ok(),
            value: Some(format!(r#"{{"type":"kill9.t","payload":{{"i":{i}}}}}"#).into_bytes()),
            headers: vec![("_watermill_message_uuid".to_owned(), ids[i].clone().into_bytes())],
        },
    );
    let looker = Arc::new(Looker::new(&bootstrap, GROUP, TOPIC, PARTITIONS)?);
    let sampler = CommitSampler::start(
        Arc::clone(&looker),
        db.read_url().to_owned(),
        Arc::clone(&paced.landed),
        Arc::clone(&delivery_ids),
    );

    // --endpoint-concurrency = --delivery-concurrency: no first attempt is deferred to the
    // sweep, so every call after a restart comes from consuming records.
    let worker_args = consumer_args(
        &["worker"],
        &bootstrap,
        TOPIC,
        GROUP,
        vec![
            "--delivery-concurrency=1024".to_owned(),
            "--endpoint-concurrency=1024".to_owned(),
            db.flag.clone(),
        ],
    );
    let mut worker = ctx.spawn("kill9-worker-0", &worker_args).await?;
    let mut since = Instant::now();
    let mut restarts: Vec<Restart> = Vec::new();
    for k in 1..=kills {
        // The worker has its partitions (it calls) and has delivered for a while: its
        // auto-commits (every second) had time to run.
        wait_until(
            &format!("worker {} to deliver", k - 1),
            Duration::from_secs(180),
            || async { Ok(receiver.first_accepted_after(since).is_some()) },
        )
        .await?;
        tokio::time::sleep(ctx.sizes.kill_after).await;
        worker.kill_9()?;
        let killed = Instant::now();
        let committed = looker.committed().await?;
        let next = ctx.spawn_unchecked(&format!("kill9-worker-{k}"), &worker_args)?;
        let spawned = Instant::now();
        wait_until(
            &format!("a delivery after restart {k}"),
            Duration::from_secs(180),
            || async { Ok(receiver.first_accepted_after(killed).is_some()) },
        )
        .await?;
        let first_call = receiver
            .first_accepted_after(killed)
            .context("no call after the restart")?;
        eprintln!(
            "    kill {k}: {} records below the commit; first call of the new process {:.2} s after the kill",
            committed.iter().sum::<i64>(),
            first_call.duration_since(killed).as_secs_f64()
        );
        restarts.push(Restart {
            killed,
            spawned,
            first_call,
            committed,
        });
        worker = next;
        since = killed;
    }
    wait_until("every event published", Duration::from_secs(600), || async {
        Ok(paced.published() >= n)
    })
    .await?;
    let (landed, failed) = paced.finish().await?;
    if !failed.is_empty() || landed.iter().any(Option::is_none) {
        bail!(
            "{} events could not be published: {:?}",
            failed.len(),
            failed.iter().take(3).collect::<Vec<_>>()
        );
    }
    let landed: Vec<kafka::Landed> = landed.into_iter().flatten().collect();
    row.published = Some(n as u64);
    wait_until(
        "every event delivered and stored",
        Duration::from_secs(600),
        || async {
            Ok(receiver.distinct_events() == n
                && db.count("deliveries WHERE status = 'succeeded'").await? == n as i64)
        },
    )
    .await?;
    // Every record finished: the group commits up to the end of each partition.
    let ends: Vec<i64> = looker.watermarks().await?.iter().map(|w| w.1).collect();
    wait_until(
        "the group to commit every record",
        Duration::from_secs(60),
        || async { Ok(looker.committed().await? == ends) },
    )
    .await?;
    let metrics = worker.metrics().await.unwrap_or_default();
    let exit = worker.terminate(Duration::from_secs(60)).await?;
    row.check(
        "the last worker stops on SIGTERM with status 0",
        exit == Some(0),
        format!("exit {exit:?}"),
    );
    let _ = api.terminate(Duration::from_secs(30)).await?;
    let sampled = sampler.finish().await?;
    let watermarks = looker.watermarks().await?;
    db.remember_secrets(ctx).await?;

    // --- figures and checks -------------------------------------------------------------------
    let calls = receiver.calls();
    let ids_of = ids_by_event(&calls);
    let stored = db.succeeded_ids(&config).await?;
    let lost = (0..n)
        .filter(|&i| !ids_of.contains_key(&(i as u64)) || !stored.contains(&delivery_ids[i]))
        .count();
    let wrong_ids = ids_of
        .iter()
        .filter(|(i, ids)| {
            let want = usize::try_from(**i).ok().and_then(|i| delivery_ids.get(i));
            ids.iter().any(|id| Some(&(*id).to_owned()) != want)
        })
        .count();
    row.delivered = Some(ids_of.len() as u64);
    row.lost = Some(lost as u64);
    row.duplicated = Some((calls.len() - ids_of.len()) as u64);
    row.check(
        "0 events lost (each reached the receiver and is stored succeeded)",
        lost == 0 && ids_of.len() == n,
        format!(
            "{} of {n} delivered, {} stored, {lost} lost",
            ids_of.len(),
            stored.len()
        ),
    );
    row.check(
        "every call (duplicates included) carries its delivery's UUIDv5 formance-webhook-id",
        wrong_ids == 0,
        format!(
            "{wrong_ids} events with another id; {} duplicate calls",
            calls.len() - ids_of.len()
        ),
    );
    let deferred = metric(
        &metrics,
        "webhooks_deliveries_deferred_total{reason=\"endpoint_busy\"}",
    );
    row.check(
        "no first attempt was deferred to the sweep (every call after a restart is a consumed record)",
        deferred == 0.0,
        format!("{deferred} deferred by the last worker"),
    );

    let resume: Vec<Duration> = restarts.iter().map(|r| r.first_call - r.killed).collect();
    let rejoin: Vec<Duration> = restarts.iter().map(|r| r.first_call - r.spawned).collect();
    let (resume_median, resume_max) = median_max(&resume);
    let (_, rejoin_max) = median_max(&rejoin);
    row.resume_max_seconds = Some(resume_max);
    row.figure("kills", restarts.len());
    row.figure(
        "kill→first call median/max (s)",
        format!("{resume_median:.2}/{resume_max:.2}"),
    );
    row.figure("start→first call max (s)", format!("{rejoin_max:.2}"));
    let (first_accept, last_accept) = (
        calls.iter().map(|c| c.accepted).min(),
        calls.iter().map(|c| c.accepted).max(),
    );
    row.check(
        "all kills happened mid-run",
        restarts.len() == kills
            && restarts.iter().all(|r| {
                first_accept.is_some_and(|f| f < r.killed) && last_accept.is_some_and(|l| l > r.killed)
            }),
        format!("{} kills between the first and the last call", restarts.len()),
    );

    // Each restart resumes from the committed offsets: whatever it sends before the next kill
    // comes from at or after them, and it re-sends fewer records than the commit covered.
    let position: Vec<(i32, i64)> = landed.iter().map(|l| (l.partition, l.offset)).collect();
    let mut below_commit_total = 0i64;
    let mut resent_total = 0usize;
    let mut behind = Vec::new();
    let mut too_many = Vec::new();
    for (k, r) in restarts.iter().enumerate() {
        let until = restarts.get(k + 1).map(|next| next.killed);
        let before: HashSet<u64> = calls
            .iter()
            .filter(|c| c.accepted < r.killed)
            .filter_map(|c| c.event)
            .collect();
        let mut first = vec![i64::MAX; partitions];
        let mut resent = 0;
        for c in calls
            .iter()
            .filter(|c| c.accepted > r.killed && until.is_none_or(|u| c.accepted < u))
        {
            let Some(i) = c.event.and_then(|i| usize::try_from(i).ok()) else {
                continue;
            };
            let (p, o) = position[i];
            let slot = &mut first[usize::try_from(p)?];
            *slot = (*slot).min(o);
            if before.contains(&(i as u64)) {
                resent += 1;
            }
        }
        for (p, (&f, &c)) in first.iter().zip(&r.committed).enumerate() {
            if f != i64::MAX && f < c {
                behind.push(format!(
                    "restart {}: partition {p} read from {f} < committed {c}",
                    k + 1
                ));
            }
        }
        let below: i64 = r.committed.iter().sum();
        below_commit_total += below;
        resent_total += resent;
        if below == 0 || resent as i64 >= below {
            too_many.push(format!(
                "restart {}: re-sent {resent}, {below} below the commit",
                k + 1
            ));
        }
    }
    row.figure("records below the commit at the kills", below_commit_total);
    row.figure("records re-sent after the restarts", resent_total);
    row.check(
        "every restart consumed from at or after the committed offsets (same group, not from the start)",
        behind.is_empty(),
        if behind.is_empty() {
            format!("{} restarts × {partitions} partitions", restarts.len())
        } else {
            behind.join("; ")
        },
    );
    row.check(
        "each restart re-sent fewer records than its commit covered",
        too_many.is_empty(),
        if too_many.is_empty() {
            format!("{resent_total} re-sent in all, {below_commit_total} below the commits")
        } else {
            too_many.join("; ")
        },
    );
    row.figure("commit samples", sampled.samples);
    row.figure("committed records checked against the store", sampled.verified);
    row.figure("of which still leased (delivering) when checked", sampled.leased);
    row.check(
        "no committed offset ever passed a record whose delivery row did not exist",
        sampled.violations.is_empty() && sampled.verified == n as u64 && sampled.regressions == 0,
        format!(
            "{} samples, {} records checked, {} violations (e.g. {:?}), {} commits that went backwards",
            sampled.samples,
            sampled.verified,
            sampled.violations.len(),
            sampled.violations.iter().take(5).collect::<Vec<_>>(),
            sampled.regressions
        ),
    );
    let low_moved = watermarks.iter().filter(|w| w.0 != 0).count();
    row.check(
        "the mock cluster kept every record (low watermarks at 0)",
        low_moved == 0 && watermarks.iter().map(|w| w.1).sum::<i64>() == n as i64,
        format!("{low_moved} partitions with a moved low watermark"),
    );
    drop(broker);
    Ok(row)
}

/// What the commit sampler saw.
struct Sampled {
    samples: u64,
    verified: u64,
    /// Rows found `delivering` (leased by a worker, possibly a killed one: the lease expires and
    /// the sweep takes it over, spec §5.4).
    leased: u64,
    violations: Vec<(i32, i64)>,
    regressions: u64,
}

/// Reads the group's committed offsets every 250 ms and checks every newly committed record's
/// delivery row in the database.
struct CommitSampler {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<Sampled>>,
}

impl CommitSampler {
    fn start(
        looker: Arc<Looker>,
        url: String,
        landed: Arc<Mutex<Vec<Option<kafka::Landed>>>>,
        delivery_ids: Arc<Vec<String>>,
    ) -> CommitSampler {
        let stop = tokio_util::sync::CancellationToken::new();
        let st = stop.clone();
        let task = tokio::spawn(async move {
            let conn = Arc::new(Mutex::new(diesel::PgConnection::establish(&url)?));
            let mut verified = vec![0i64; usize::try_from(PARTITIONS)?];
            let mut at: HashMap<(i32, i64), usize> = HashMap::new();
            let mut indexed = 0;
            let mut out = Sampled {
                samples: 0,
                verified: 0,
                leased: 0,
                violations: Vec::new(),
                regressions: 0,
            };
            loop {
                let last = st.is_cancelled();
                // First the offsets, then the store: a row found now but absent at the commit
                // cannot happen, rows are never deleted during the run.
                if let Ok(committed) = looker.committed().await {
                    out.samples += 1;
                    // Records are acknowledged before anyone can consume them.
                    if let Ok(l) = landed.lock() {
                        for (i, l) in l.iter().enumerate().skip(indexed) {
                            match l {
                                Some(l) => {
                                    at.insert((l.partition, l.offset), i);
                                }
                                None => break,
                            }
                            indexed = i + 1;
                        }
                    }
                    let mut wanted: Vec<(i32, i64, String)> = Vec::new();
                    for (p, (&c, v)) in committed.iter().zip(verified.iter_mut()).enumerate() {
                        if c < *v {
                            out.regressions += 1;
                            continue;
                        }
                        for offset in *v..c {
                            let id = at
                                .get(&(i32::try_from(p)?, offset))
                                .map(|&i| delivery_ids[i].clone());
                            match id {
                                Some(id) => wanted.push((i32::try_from(p)?, offset, id)),
                                None => out.violations.push((i32::try_from(p)?, offset)),
                            }
                        }
                        *v = c;
                    }
                    let found = stored_outcomes(&conn, wanted.iter().map(|w| w.2.clone()).collect()).await?;
                    for (p, offset, id) in wanted {
                        out.verified += 1;
                        match found.get(&id).map(String::as_str) {
                            Some("delivering") => out.leased += 1,
                            Some(_) => {}
                            None => {
                                if out.violations.is_empty() {
                                    eprintln!(
                                    "    VIOLATION at {:?}: partition {p} offset {offset} ({id}) committed ({:?}) without a stored outcome",
                                    std::time::SystemTime::now(),
                                    committed.get(usize::try_from(p).unwrap_or(0))
                                );
                                }
                                out.violations.push((p, offset));
                            }
                        }
                    }
                }
                if last {
                    return Ok(out);
                }
                tokio::select! {
                    () = st.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        });
        CommitSampler { stop, task }
    }

    /// Takes one last sample and returns what all samples found.
    async fn finish(self) -> anyhow::Result<Sampled> {
        self.stop.cancel();
        self.task.await?
    }
}

/// The status of each of these deliveries that exists.
async fn stored_outcomes(
    conn: &Arc<Mutex<diesel::PgConnection>>,
    ids: Vec<String>,
) -> anyhow::Result<HashMap<String, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let conn = Arc::clone(conn);
    tokio::task::spawn_blocking(move || {
        let mut conn = conn.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let mut found = HashMap::new();
        for chunk in ids.chunks(2000) {
            let rows: Vec<Id> = diesel::sql_query(format!(
                "SELECT id, status FROM deliveries WHERE id IN ({})",
                in_list(chunk)
            ))
            .load(&mut *conn)?;
            found.extend(rows.into_iter().map(|r| (r.id, r.status)));
        }
        Ok(found)
    })
    .await?
}
