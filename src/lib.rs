//! `webhooks`: a self-hosted webhook dispatcher compatible with formance's webhooks service.

pub mod api; // HTTP API: route table, handlers, JSON error envelope
pub mod cli; // clap command tree and the environment rules of the contract
pub mod config; // typed settings and cross-flag rules
pub mod domain; // pure rules: validation, signing, parsing, timestamps
pub mod kafka; // Kafka connection settings and the POST /events publisher
pub mod metrics; // Prometheus counters, gauges and histograms
pub mod outbound; // the one outbound HTTP client, signed requests, SSRF guard
pub mod serve; // `webhooks serve`
pub mod shutdown; // signals → shutdown
pub mod store; // storage interface, PostgreSQL and SQLite, migrations
pub mod telemetry; // logging
pub mod worker; // Kafka consumer, first attempts, durable writes, retry sweep

/// The version printed by `webhooks version` and served by `/_info`; set `WEBHOOKS_VERSION` at
/// build time to override.
pub const VERSION: &str = match option_env!("WEBHOOKS_VERSION") {
    Some(v) => v,
    None => concat!("v", env!("CARGO_PKG_VERSION")),
};

/// Build date (`WEBHOOKS_BUILD_DATE` at build time), `-` when unknown.
pub const BUILD_DATE: &str = match option_env!("WEBHOOKS_BUILD_DATE") {
    Some(v) => v,
    None => "-",
};

/// Commit (`WEBHOOKS_COMMIT` at build time), `-` when unknown.
pub const COMMIT: &str = match option_env!("WEBHOOKS_COMMIT") {
    Some(v) => v,
    None => "-",
};
