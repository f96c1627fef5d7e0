//! The driver's Kafka clients: a producer that records where and when each record landed, a
//! paced producer for the restart procedures, and read-only looks at a group's committed
//! offsets and a topic's watermarks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// A record to publish.
pub struct Outgoing {
    pub partition: Option<i32>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Where a record landed, and when the broker acknowledged it.
#[derive(Debug, Clone, Copy)]
pub struct Landed {
    pub partition: i32,
    pub offset: i64,
    pub acked: Instant,
}

pub fn producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("compression.type", "none")
        // Records wait out a 20 s broker outage in the producer's queue.
        .set("message.timeout.ms", "300000")
        .set("reconnect.backoff.max.ms", "500")
        .set("queue.buffering.max.messages", "1000000")
        // Room for the 20 MiB record of the hostile-records procedure.
        .set("message.max.bytes", "33554432")
        .create()?)
}

fn headers_of(headers: &[(String, Vec<u8>)]) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut h = OwnedHeaders::new();
    for (k, v) in headers {
        h = h.insert(Header {
            key: k.as_str(),
            value: Some(v.as_slice()),
        });
    }
    Some(h)
}

/// Publishes every record and waits for every acknowledgement; fails on the first refusal.
pub async fn publish_all(
    producer: &FutureProducer,
    topic: &str,
    records: impl IntoIterator<Item = Outgoing>,
) -> anyhow::Result<Vec<Landed>> {
    let mut pending = Vec::new();
    for r in records {
        let mut record: FutureRecord<'_, (), [u8]> = FutureRecord::to(topic);
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        record.partition = r.partition;
        if let Some(h) = headers_of(&r.headers) {
            record = record.headers(h);
        }
        loop {
            match producer.send_result(record) {
                Ok(ack) => {
                    pending.push(ack);
                    break;
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => bail!("publish to {topic}: {e}"),
            }
        }
    }
    let mut landed = Vec::with_capacity(pending.len());
    for ack in pending {
        match ack.await {
            Ok(Ok(d)) => landed.push(Landed {
                partition: d.partition,
                offset: d.offset,
                acked: Instant::now(),
            }),
            Ok(Err((e, _))) => bail!("publish to {topic}: {e}"),
            Err(_) => bail!("publish to {topic}: the producer went away"),
        }
    }
    Ok(landed)
}

/// Publishes `rate` records per second from `make(i)` until stopped; keeps each one's landing
/// by index. A record the broker refuses is sent again (same index, same event id), as a
/// publisher would, up to [`RESENDS`] times 100 ms apart.
pub struct Paced {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub landed: Arc<Mutex<Vec<Option<Landed>>>>,
    pub failed: Arc<Mutex<Vec<(usize, String)>>>,
    pub resent: Arc<std::sync::atomic::AtomicUsize>,
}

const RESENDS: usize = 600;

impl Paced {
    pub fn start(
        producer: Arc<FutureProducer>,
        topic: &str,
        rate: u32,
        make: impl Fn(usize) -> Outgoing + Send + Sync + 'static,
    ) -> Paced {
        Paced::start_limited(producer, topic, rate, usize::MAX, make)
    }

    /// As [`Paced::start`], stopping by itself after `limit` records.
    pub fn start_limited(
        producer: Arc<FutureProducer>,
        topic: &str,
        rate: u32,
        limit: usize,
        make: impl Fn(usize) -> Outgoing + Send + Sync + 'static,
    ) -> Paced {
        let stop = tokio_util::sync::CancellationToken::new();
        let landed: Arc<Mutex<Vec<Option<Landed>>>> = Arc::default();
        let failed: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
        let resent: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (st, l, f, r, topic) = (
            stop.clone(),
            Arc::clone(&landed),
            Arc::clone(&failed),
            Arc::clone(&resent),
            topic.to_owned(),
        );
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut acks = tokio::task::JoinSet::new();
            let (retry_tx, mut retry_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, usize)>();
            let mut sent = 0usize;
            let send = |i: usize, tries: usize, acks: &mut tokio::task::JoinSet<()>| {
                let out = make(i);
                let mut record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&topic);
                if let Some(v) = &out.value {
                    record = record.payload(v.as_slice());
                }
                record.partition = out.partition;
                if let Some(h) = headers_of(&out.headers) {
                    record = record.headers(h);
                }
                let (l, f, retry) = (Arc::clone(&l), Arc::clone(&f), retry_tx.clone());
                match producer.send_result(record) {
                    Ok(ack) => {
                        acks.spawn(async move {
                            let error = match ack.await {
                                Ok(Ok(d)) => {
                                    if let Ok(mut l) = l.lock() {
                                        l[i] = Some(Landed {
                                            partition: d.partition,
                                            offset: d.offset,
                                            acked: Instant::now(),
                                        });
                                    }
                                    return;
                                }
                                Ok(Err((e, _))) => e.to_string(),
                                Err(e) => e.to_string(),
                            };
                            if tries < RESENDS {
                                let _ = retry.send((i, tries + 1));
                            } else if let Ok(mut f) = f.lock() {
                                f.push((i, error));
                            }
                        });
                    }
                    Err((e, _)) => {
                        if tries < RESENDS {
                            let _ = retry.send((i, tries + 1));
                        } else if let Ok(mut f) = f.lock() {
                            f.push((i, e.to_string()));
                        }
                    }
                }
            };
            loop {
                let due = ((started.elapsed().as_secs_f64() * f64::from(rate)) as usize).min(limit);
                if st.is_cancelled() {
                    break;
                }
                while sent < due {
                    if let Ok(mut l) = l.lock() {
                        l.push(None);
                    }
                    send(sent, 0, &mut acks);
                    sent += 1;
                }
                let mut resends = Vec::new();
                while let Ok(r) = retry_rx.try_recv() {
                    resends.push(r);
                }
                if !resends.is_empty() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                for (i, tries) in resends {
                    r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    send(i, tries, &mut acks);
                }
                while acks.try_join_next().is_some() {}
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Outstanding records, resends included, until each landed or gave up.
            loop {
                while let Ok((i, tries)) = retry_rx.try_recv() {
                    r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    send(i, tries, &mut acks);
                }
                if acks.join_next().await.is_none() && retry_rx.is_empty() {
                    break;
                }
            }
            Ok(())
        });
        Paced {
            stop,
            task,
            landed,
            failed,
            resent,
        }
    }

    /// Stops publishing and waits for every outstanding acknowledgement.
    pub async fn finish(self) -> anyhow::Result<(Vec<Option<Landed>>, Vec<(usize, String)>)> {
        self.stop.cancel();
        self.task.await??;
        let landed = self.landed.lock().map(|l| l.clone()).unwrap_or_default();
        let failed = self.failed.lock().map(|f| f.clone()).unwrap_or_default();
        Ok((landed, failed))
    }

    pub fn published(&self) -> usize {
        self.landed.lock().map(|l| l.len()).unwrap_or(0)
    }
}

pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    for r in admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        if let Err((t, code)) = r {
            bail!("create topic {t}: {code}");
        }
    }
    Ok(())
}

/// Reads a group's committed offsets and a topic's watermarks without joining the group.
pub struct Looker {
    consumer: Arc<BaseConsumer>,
    topic: String,
    partitions: i32,
}

impl Looker {
    pub fn new(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> anyhow::Result<Looker> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        Ok(Looker {
            consumer: Arc::new(consumer),
            topic: topic.to_owned(),
            partitions,
        })
    }

    /// The next offset to read per partition as committed by the group (0 when none yet).
    pub async fn committed(&self) -> anyhow::Result<Vec<i64>> {
        let (consumer, topic, n) = (Arc::clone(&self.consumer), self.topic.clone(), self.partitions);
        tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for p in 0..n {
                tpl.add_partition(&topic, p);
            }
            let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
            let mut out = vec![0; usize::try_from(n).unwrap_or(0)];
            for e in committed.elements() {
                if let (Offset::Offset(o), Ok(p)) = (e.offset(), usize::try_from(e.partition())) {
                    if let Some(slot) = out.get_mut(p) {
                        *slot = o;
                    }
                }
            }
            Ok(out)
        })
        .await?
    }

    /// (low, high) watermarks per partition.
    pub async fn watermarks(&self) -> anyhow::Result<Vec<(i64, i64)>> {
        let (consumer, topic, n) = (Arc::clone(&self.consumer), self.topic.clone(), self.partitions);
        tokio::task::spawn_blocking(move || {
            (0..n)
                .map(|p| Ok(consumer.fetch_watermarks(&topic, p, Duration::from_secs(10))?))
                .collect()
        })
        .await?
    }
}
