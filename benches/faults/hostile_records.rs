//! Malformed records (spec §10.5 row 5; §4.2, §3): each hostile record is followed by a valid
//! one on the same partition. A hostile record is skipped (warning with its offset and reason,
//! counted as `invalid`, never stored) or delivered with every NUL replaced in what is stored;
//! every valid record after it is delivered; the partition's committed offset reaches its end;
//! the worker never crashes.
//!
//! The 20 MiB record goes through librdkafka's mock cluster hosted here, the rest through tansu:
//! tansu 0.6 never serves a record larger than its 5 MiB fetch cap (its `record_fetch.sql` keeps
//! only records whose running size is under the request's `max_bytes`, capped at 5 MiB, where
//! Kafka returns the first batch whatever its size), so on tansu any larger record blocks its
//! partition for every consumer. The mock cluster serves it as Kafka does, but keeps only 5 MiB
//! per partition and drops its whole log when a record is appended after one that large: the
//! 20 MiB record is alone on its partition, and the valid record that follows goes to another
//! partition once the worker has committed past the big one.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;

use crate::ctx::{consumer_args, wait_until, Ctx};
use crate::db::{Backend, Db};
use crate::kafka::{self, Looker, Outgoing};
use crate::receiver::{Behaviour, Receiver};
use crate::report::Row;

/// What must become of a hostile record.
enum Expect {
    /// Skipped with this reason (spec §4.2).
    Skip(&'static str),
    /// Delivered; the stored row's event type (NUL replaced by U+FFFD) and event id when given.
    Deliver {
        event_type: &'static str,
        event_id: Option<&'static str>,
    },
}

struct Hostile {
    name: &'static str,
    value: Option<Vec<u8>>,
    /// Headers besides the event id; `event_id_header` None means a fresh UUID.
    headers: Vec<(String, Vec<u8>)>,
    event_id_header: Option<Vec<u8>>,
    expect: Expect,
}

fn json(v: &str) -> Option<Vec<u8>> {
    Some(v.as_bytes().to_vec())
}

fn records() -> Vec<Hostile> {
    let skip = |name, value: Option<Vec<u8>>, reason| Hostile {
        name,
        value,
        headers: Vec::new(),
        event_id_header: None,
        expect: Expect::Skip(reason),
    };
    let deep = format!(
        r#"{{"type":"records.t","payload":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    vec![
        skip("tombstone (no value)", None, "empty record"),
        skip("empty value", Some(Vec::new()), "empty record"),
        skip("not JSON", json("not json"), "invalid JSON"),
        skip("JSON array", json("[1,2]"), "not a JSON object"),
        skip("JSON string", json(r#""text""#), "not a JSON object"),
        skip("JSON number", json("42"), "not a JSON object"),
        skip("no type", json(r#"{"app":"x","payload":{}}"#), "missing type"),
        skip("empty type", json(r#"{"type":""}"#), "missing type"),
        skip("null type", json(r#"{"type":null}"#), "missing type"),
        skip(
            "bad date",
            json(r#"{"type":"records.t","date":"yesterday"}"#),
            "invalid date",
        ),
        skip("type a number", json(r#"{"type":5}"#), "invalid type"),
        skip(
            "app an object",
            json(r#"{"type":"records.t","app":{}}"#),
            "invalid app",
        ),
        skip(
            "idempotency_key a number",
            json(r#"{"type":"records.t","idempotency_key":1}"#),
            "invalid idempotency_key",
        ),
        skip(
            "version an array",
            json(r#"{"type":"records.t","version":[]}"#),
            "invalid version",
        ),
        skip(
            "date a number",
            json(r#"{"type":"records.t","date":1}"#),
            "invalid date",
        ),
        skip(
            "invalid UTF-8",
            Some(b"{\"type\":\"records.t\",\"payload\":\"\xff\xfe\"}".to_vec()),
            "invalid JSON",
        ),
        skip(
            "raw NUL byte in a string",
            Some(b"{\"type\":\"records.t\x00\"}".to_vec()),
            "invalid JSON",
        ),
        skip(
            "two JSON values",
            json(r#"{"type":"records.t"} {"type":"records.t"}"#),
            "invalid JSON",
        ),
        skip(
            "payload nested 100,000 deep",
            Some(deep.into_bytes()),
            "invalid JSON",
        ),
        Hostile {
            name: "NUL escapes in every string",
            value: json(
                r#"{"type":"t\u0000x","app":"records\u0000","idempotency_key":"k\u0000","version":"v\u0000","date":"2024-05-01T10:00:00Z","payload":{"s":"\u0000","k\u0000":1}}"#,
            ),
            headers: Vec::new(),
            event_id_header: None,
            expect: Expect::Deliver {
                event_type: "records\u{FFFD}.t\u{FFFD}x",
                event_id: None,
            },
        },
        Hostile {
            name: "NUL in the event-id header",
            value: json(r#"{"type":"records.t"}"#),
            headers: Vec::new(),
            event_id_header: Some(b"event\x00id".to_vec()),
            expect: Expect::Deliver {
                event_type: "records.t",
                event_id: Some("event\u{FFFD}id"),
            },
        },
        Hostile {
            name: "NUL in another header's key and value",
            value: json(r#"{"type":"records.t"}"#),
            headers: vec![("x-\u{0}key".to_owned(), b"v\x00alue".to_vec())],
            event_id_header: None,
            expect: Expect::Deliver {
                event_type: "records.t",
                event_id: None,
            },
        },
        Hostile {
            name: "invalid UTF-8 event-id header",
            value: json(r#"{"type":"records.t"}"#),
            headers: Vec::new(),
            event_id_header: Some(b"\xff\xfe".to_vec()),
            expect: Expect::Deliver {
                event_type: "records.t",
                event_id: None,
            },
        },
        Hostile {
            name: "numbers beyond float64",
            value: json(r#"{"type":"records.t","payload":{"n":1e400,"big":123456789012345678901234567890}}"#),
            headers: Vec::new(),
            event_id_header: None,
            expect: Expect::Deliver {
                event_type: "records.t",
                event_id: None,
            },
        },
    ]
}

/// `(offset, reason)` of each "skipping record" warning in a log, text or JSON.
fn skip_warnings(log: &str) -> Vec<(i64, String)> {
    log.lines()
        .filter(|l| l.contains("skipping record"))
        .filter_map(|l| {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
                return Some((v["offset"].as_i64()?, v["reason"].as_str()?.to_owned()));
            }
            let offset = l
                .split("offset=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let reason = l.split("reason=").nth(1)?.trim().to_owned();
            Some((offset, reason))
        })
        .collect()
}

pub async fn hostile_records(ctx: &Ctx, backend: Backend) -> anyhow::Result<Row> {
    let tag = match backend {
        Backend::Postgres => "pg",
        Backend::Sqlite => "sqlite",
    };
    let topic = format!("faults-records-{tag}");
    let mut row = Row::new(
        &format!("hostile records ({})", backend.name()),
        "tansu 0.6",
        backend.name(),
    );
    let bootstrap = ctx.tansu.lock().await.bootstrap();
    kafka::create_topic(&bootstrap, &topic, 1).await?;
    let db = Db::new(ctx, backend, &format!("faults_records_{tag}")).await?;
    let receiver = Receiver::start(Behaviour::Ok).await?;
    let worker = ctx
        .spawn(
            &format!("records-{tag}-serve-worker"),
            &consumer_args(
                &["serve", "--worker"],
                &bootstrap,
                &topic,
                &topic,
                vec![db.flag.clone()],
            ),
        )
        .await?;
    let (config, _) = worker.create_config(&receiver.url(), &["*"]).await?;

    // Each hostile record, then a valid one; event ids are fresh UUIDs unless the record is
    // about its event-id header.
    let records = records();
    let mut outgoing = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for (k, h) in records.iter().enumerate() {
        let id = uuid::Uuid::new_v4().to_string();
        let mut headers = vec![(
            "_watermill_message_uuid".to_owned(),
            h.event_id_header
                .clone()
                .unwrap_or_else(|| id.clone().into_bytes()),
        )];
        headers.extend(h.headers.iter().cloned());
        outgoing.push(Outgoing {
            partition: Some(0),
            value: h.value.clone(),
            headers,
        });
        ids.push(id);
        let valid = uuid::Uuid::new_v4().to_string();
        outgoing.push(Outgoing {
            partition: Some(0),
            value: Some(format!(r#"{{"type":"records.valid","payload":{{"i":{k}}}}}"#).into_bytes()),
            headers: vec![("_watermill_message_uuid".to_owned(), valid.clone().into_bytes())],
        });
        ids.push(valid);
    }
    let producer = kafka::producer(&bootstrap)?;
    let landed = kafka::publish_all(&producer, &topic, outgoing).await?;
    row.published = Some(landed.len() as u64);
    let looker = Looker::new(&bootstrap, &topic, &topic, 1)?;
    let end = looker
        .watermarks()
        .await?
        .first()
        .map(|w| w.1)
        .context("no partition")?;
    wait_until(
        "the partition's commit to reach its end",
        Duration::from_secs(120),
        || async { Ok(looker.committed().await?.first().copied() == Some(end)) },
    )
    .await?;
    let delivered_expected = records
        .iter()
        .filter(|h| matches!(h.expect, Expect::Deliver { .. }))
        .count();
    wait_until("the deliveries to be stored", Duration::from_secs(60), || async {
        Ok(db.count("deliveries WHERE status = 'succeeded'").await?
            >= (records.len() + delivered_expected) as i64)
    })
    .await?;
    let metrics = worker.metrics().await?;
    let health = worker.health().await;
    let log = worker.log.clone();
    let exit = worker.terminate(Duration::from_secs(60)).await?;
    db.remember_secrets(ctx).await?;

    // --- checks ---------------------------------------------------------------------------------
    let rows = db.deliveries(&format!("config_id = '{config}'")).await?;
    let by_event: HashMap<&str, &crate::db::DeliveryRow> =
        rows.iter().map(|d| (d.event_id.as_str(), d)).collect();
    let warnings: HashMap<i64, String> = skip_warnings(&std::fs::read_to_string(&log)?)
        .into_iter()
        .collect();
    let mut wrong = Vec::new();
    let mut skipped = 0;
    let mut delivered = 0;
    for (k, h) in records.iter().enumerate() {
        let offset = landed[2 * k].offset;
        let coordinates = format!("{topic}/0/{offset}");
        match &h.expect {
            Expect::Skip(reason) => {
                skipped += 1;
                if by_event.contains_key(ids[2 * k].as_str()) {
                    wrong.push(format!("{}: stored", h.name));
                }
                if warnings.get(&offset).map(String::as_str) != Some(*reason) {
                    wrong.push(format!(
                        "{}: warning {:?}, expected {reason:?}",
                        h.name,
                        warnings.get(&offset)
                    ));
                }
            }
            Expect::Deliver { event_type, event_id } => {
                let want_id = match (event_id, &h.event_id_header) {
                    (Some(id), _) => (*id).to_owned(),
                    (None, Some(_)) => coordinates,
                    (None, None) => ids[2 * k].clone(),
                };
                match by_event.get(want_id.as_str()) {
                    Some(d) if d.status == "succeeded" && d.event_type == *event_type => delivered += 1,
                    Some(d) => wrong.push(format!("{}: stored {} as {:?}", h.name, d.status, d.event_type)),
                    None => wrong.push(format!("{}: no delivery for event id {want_id:?}", h.name)),
                }
                if warnings.contains_key(&offset) {
                    wrong.push(format!("{}: skipped", h.name));
                }
            }
        }
    }
    let nul = rows
        .iter()
        .filter(|d| {
            [&d.event_id, &d.event_type, &d.idempotency_key, &d.payload]
                .iter()
                .any(|s| s.contains('\0'))
        })
        .count();
    let valid_ok = (0..records.len())
        .filter(|k| {
            by_event
                .get(ids[2 * k + 1].as_str())
                .is_some_and(|d| d.status == "succeeded")
        })
        .count();
    let invalid = crate::process::metric(
        &metrics,
        &format!("webhooks_events_consumed_total{{outcome=\"invalid\",topic=\"{topic}\"}}"),
    );
    row.delivered = Some((valid_ok + delivered) as u64);
    row.lost = Some((records.len() - valid_ok) as u64);
    row.figure(
        "hostile records skipped / delivered",
        format!("{skipped}/{delivered}"),
    );
    row.check(
        "each hostile record skipped with its reason or delivered as §4.2 and §3 say",
        wrong.is_empty() && skipped + delivered == records.len(),
        if wrong.is_empty() {
            format!("{skipped} skipped with the right warning, {delivered} delivered")
        } else {
            wrong.join("; ")
        },
    );
    row.check(
        "skips counted: webhooks_events_consumed_total{outcome=\"invalid\"}",
        invalid == skipped as f64,
        format!("{invalid} counted, {skipped} skipped"),
    );
    row.check(
        "the valid record after each hostile one was delivered (the partition moved on)",
        valid_ok == records.len(),
        format!("{valid_ok} of {}", records.len()),
    );
    row.check(
        "no stored text keeps a NUL (replaced by U+FFFD)",
        nul == 0,
        format!("{nul} rows with NUL"),
    );
    row.check(
        "the committed offset reached the partition's end",
        true,
        format!("committed {end} = high watermark"),
    );
    let escapes_sent = receiver
        .calls()
        .iter()
        .any(|c| String::from_utf8_lossy(&c.body).contains(r#""type":"records\u0000.t\u0000x""#));
    row.check(
        "a record's NUL escapes reach the receiver as sent (only storage replaces them)",
        escapes_sent,
        format!("escaped body seen: {escapes_sent}"),
    );
    row.check(
        "0 crashes: health 200 at the end, SIGTERM exit 0",
        health == 200 && exit == Some(0),
        format!("health {health}, exit {exit:?}"),
    );
    twenty_mib_record(ctx, &db, &config, tag, &receiver, &mut row).await?;
    row.broker = "tansu 0.6; the 20 MiB record: librdkafka mock cluster".to_owned();
    Ok(row)
}

/// A 20 MiB record alone on a partition of the mock cluster, skipped (`record too large`, over
/// the default `--max-record-bytes` of 8 MiB) and committed past; then a valid record, delivered.
async fn twenty_mib_record(
    ctx: &Ctx,
    db: &Db,
    config: &str,
    tag: &str,
    receiver: &Receiver,
    row: &mut Row,
) -> anyhow::Result<()> {
    let topic = format!("faults-records-big-{tag}");
    let broker = {
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || {
            webhooks::worker::embedded_broker::EmbeddedBroker::start(&[topic])
        })
        .await??
    };
    let bootstrap = broker.bootstrap().to_owned();
    let worker = ctx
        .spawn(
            &format!("records-big-{tag}-serve-worker"),
            &consumer_args(
                &["serve", "--worker"],
                &bootstrap,
                &topic,
                &topic,
                vec![db.flag.clone()],
            ),
        )
        .await?;
    let calls_before = receiver.count();
    let (big_id, valid_id) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    let big = format!(
        r#"{{"type":"records.t","payload":"{}"}}"#,
        "x".repeat(20 * 1024 * 1024)
    );
    let producer = kafka::producer(&bootstrap)?;
    let landed = kafka::publish_all(
        &producer,
        &topic,
        [Outgoing {
            partition: Some(0),
            value: Some(big.into_bytes()),
            headers: vec![("_watermill_message_uuid".to_owned(), big_id.clone().into_bytes())],
        }],
    )
    .await?;
    let looker = Looker::new(
        &bootstrap,
        &topic,
        &topic,
        webhooks::worker::embedded_broker::PARTITIONS,
    )?;
    wait_until(
        "the big record's partition to be committed past it",
        Duration::from_secs(120),
        || async { Ok(looker.committed().await?.first().copied() == Some(1)) },
    )
    .await?;
    let low = looker.watermarks().await?.first().map_or(-1, |w| w.0);
    kafka::publish_all(
        &producer,
        &topic,
        [Outgoing {
            partition: Some(1),
            value: Some(br#"{"type":"records.valid","payload":{"i":-1}}"#.to_vec()),
            headers: vec![(
                "_watermill_message_uuid".to_owned(),
                valid_id.clone().into_bytes(),
            )],
        }],
    )
    .await?;
    wait_until(
        "the record after it to be delivered",
        Duration::from_secs(60),
        || async {
            Ok(db
                .count(&format!(
                    "deliveries WHERE event_id = '{valid_id}' AND status = 'succeeded'"
                ))
                .await?
                == 1)
        },
    )
    .await?;
    let metrics = worker.metrics().await?;
    let health = worker.health().await;
    let log = worker.log.clone();
    let exit = worker.terminate(Duration::from_secs(60)).await?;
    let warnings: HashMap<i64, String> = skip_warnings(&std::fs::read_to_string(&log)?)
        .into_iter()
        .collect();
    let stored = db
        .deliveries(&format!(
            "config_id = '{config}' AND event_id IN ('{big_id}', '{valid_id}')"
        ))
        .await?;
    let invalid = crate::process::metric(
        &metrics,
        &format!("webhooks_events_consumed_total{{outcome=\"invalid\",topic=\"{topic}\"}}"),
    );
    let skipped = warnings.get(&landed[0].offset).map(String::as_str) == Some("record too large");
    let valid = stored
        .iter()
        .any(|d| d.event_id == valid_id && d.status == "succeeded");
    row.check(
        "20 MiB record: skipped as `record too large` (counted, not stored), its partition committed past it, a later record delivered",
        skipped && valid && invalid == 1.0 && stored.len() == 1 && low == 0,
        format!(
            "warning {:?}, invalid counted {invalid}, {} rows stored, next record delivered {valid}, low watermark at the commit {low}, calls {}",
            warnings.get(&landed[0].offset),
            stored.len(),
            receiver.count() - calls_before
        ),
    );
    row.check(
        "20 MiB record: 0 crashes (health 200, SIGTERM exit 0)",
        health == 200 && exit == Some(0),
        format!("health {health}, exit {exit:?}"),
    );
    drop(broker);
    Ok(())
}
