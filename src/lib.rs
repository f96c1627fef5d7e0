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

/// The version printed by `webhooks version` and served by `/_info` and `/openapi.yaml`: `v` +
/// the crate version unless `WEBHOOKS_VERSION` is given at build time (build.rs).
pub const VERSION: &str = env!("WEBHOOKS_VERSION");

/// Build date, UTC RFC 3339 (build.rs: `WEBHOOKS_BUILD_DATE`, else `SOURCE_DATE_EPOCH`, else the
/// time of the build), `-` when unknown.
pub const BUILD_DATE: &str = env!("WEBHOOKS_BUILD_DATE");

/// Short commit hash (build.rs: `WEBHOOKS_COMMIT`, else `git rev-parse --short HEAD`), `-` when
/// unknown.
pub const COMMIT: &str = env!("WEBHOOKS_COMMIT");
