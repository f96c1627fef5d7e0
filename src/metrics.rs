//! Prometheus metrics (spec §8.1), served as text at `GET /metrics`. No label carries an id, an
//! endpoint or an event type, so cardinality stays fixed.

use std::sync::OnceLock;

use prometheus::{
    register_histogram_with_registry, register_int_counter_vec_with_registry,
    register_int_counter_with_registry, register_int_gauge_vec_with_registry,
    register_int_gauge_with_registry, Encoder, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub events_consumed: IntCounterVec,
    pub deliveries: IntCounterVec,
    pub attempts: IntCounterVec,
    pub attempt_duration: Histogram,
    pub deliveries_pending: IntGauge,
    pub deliveries_deferred: IntCounterVec,
    pub circuits_open: IntGauge,
    pub configs_auto_disabled: IntCounter,
    pub storage_rejected: IntCounter,
    pub kafka_consumer_lag: IntGaugeVec,
    pub http_requests: IntCounterVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    Ok(Metrics {
        events_consumed: register_int_counter_vec_with_registry!(
            "webhooks_events_consumed_total",
            "Records processed, by topic and outcome (matched, unmatched, invalid).",
            &["topic", "outcome"],
            registry
        )?,
        deliveries: register_int_counter_vec_with_registry!(
            "webhooks_deliveries_total",
            "Deliveries whose final state this process stored (counted once the write committed).",
            &["outcome"],
            registry
        )?,
        attempts: register_int_counter_vec_with_registry!(
            "webhooks_attempts_total",
            "Outbound delivery calls, by outcome and status class.",
            &["outcome", "status_class"],
            registry
        )?,
        attempt_duration: register_histogram_with_registry!(
            "webhooks_attempt_duration_seconds",
            "Duration of outbound delivery calls.",
            vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
            registry
        )?,
        deliveries_pending: register_int_gauge_with_registry!(
            "webhooks_deliveries_pending",
            "Deliveries in pending (whole database).",
            registry
        )?,
        deliveries_deferred: register_int_counter_vec_with_registry!(
            "webhooks_deliveries_deferred_total",
            "First attempts stored as pending without a call, by reason (endpoint_busy, circuit_open).",
            &["reason"],
            registry
        )?,
        circuits_open: register_int_gauge_with_registry!(
            "webhooks_circuits_open",
            "Configs whose circuit is open or half-open in this process.",
            registry
        )?,
        configs_auto_disabled: register_int_counter_with_registry!(
            "webhooks_configs_auto_disabled_total",
            "Configs deactivated because all their calls failed for longer than --auto-disable-after.",
            registry
        )?,
        storage_rejected: register_int_counter_with_registry!(
            "webhooks_storage_rejected_total",
            "Rows the database refused for a reason other than availability (dropped and logged).",
            registry
        )?,
        kafka_consumer_lag: register_int_gauge_vec_with_registry!(
            "webhooks_kafka_consumer_lag",
            "High watermark minus committed offset, for partitions this process owns.",
            &["topic", "partition"],
            registry
        )?,
        http_requests: register_int_counter_vec_with_registry!(
            "webhooks_http_requests_total",
            "API requests, by route template and status.",
            &["route", "status"],
            registry
        )?,
        registry,
    })
}

/// The process-wide metrics. Registration of these fixed names cannot fail twice, so a failure
/// is a programming error surfaced at the first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| match build() {
        Ok(m) => m,
        Err(e) => panic!("metric registration: {e}"),
    })
}

/// The status class label of an attempt: `error` when no response arrived.
pub fn status_class(status: u16) -> &'static str {
    match status {
        0 => "error",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "unknown",
    }
}

/// The text exposition format.
pub fn render() -> String {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&metrics().registry.gather(), &mut out) {
        tracing::error!(error = %e, "metrics encoding failed");
    }
    String::from_utf8_lossy(&out).into_owned()
}
