//! Typed settings built from the command line, with the cross-field rules of spec §1.2.
//!
//! Everything downstream takes these structs, never the raw clap types, so a rule checked here
//! holds everywhere.

use std::time::Duration;

use crate::cli::{LogArgs, Provenance, ServeArgs, StorageArgs, UsageError};
use crate::domain::ssrf::AddressPolicy;

/// Where configs and deliveries live.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageSettings {
    Postgres { uri: String },
    Sqlite { path: String },
}

impl StorageSettings {
    pub fn from_args(args: &StorageArgs) -> Self {
        let uri = [&args.postgres_uri.0, &args.storage_postgres_conn_string.0]
            .into_iter()
            .map(|s| s.trim())
            .find(|s| !s.is_empty());
        match uri {
            Some(uri) => StorageSettings::Postgres { uri: uri.to_owned() },
            None => StorageSettings::Sqlite {
                path: args.sqlite_path.clone(),
            },
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            StorageSettings::Postgres { .. } => "postgres",
            StorageSettings::Sqlite { .. } => "sqlite",
        }
    }

    /// A description safe for logs: the PostgreSQL URI without its password.
    pub fn redacted(&self) -> String {
        match self {
            StorageSettings::Postgres { uri } => redact_uri(uri),
            StorageSettings::Sqlite { path } => path.clone(),
        }
    }
}

impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.kind(), self.redacted())
    }
}

fn redact_uri(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("xxxxx"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable postgres uri>".to_owned(),
    }
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: tracing::Level,
    pub json: bool,
}

impl LogSettings {
    pub fn from_args(args: &LogArgs) -> Self {
        let level = if args.debug {
            tracing::Level::DEBUG
        } else {
            args.log_level.parse().unwrap_or(tracing::Level::INFO)
        };
        LogSettings {
            level,
            json: args.json_formatting_logger,
        }
    }
}

/// Outbound HTTP settings shared by deliveries and the test route.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub timeout: Duration,
    pub max_response_bytes: usize,
    pub address_policy: AddressPolicy,
    /// Which signature header set each call carries (spec §4.6).
    pub signature_headers: SignatureHeaders,
}

/// Retry schedule (spec §5).
#[derive(Debug, Clone, Copy)]
pub struct RetrySettings {
    pub retry_period: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub abort_after: Duration,
    pub max_attempts: u64,
}

/// Which signature header set a delivery carries (spec §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureHeaders {
    /// `formance-webhook-*` (the reference's).
    Formance,
    /// Standard Webhooks' `webhook-*`.
    Standard,
    Both,
}

/// Endpoint isolation and circuit breaking (spec §10.1, §10.2).
#[derive(Debug, Clone, Copy)]
pub struct IsolationSettings {
    /// Calls in flight per config per process.
    pub endpoint_concurrency: usize,
    /// Consecutive retryable failures that open a circuit; 0 = no breaker.
    pub breaker_failures: u32,
    /// First open period; doubles per failed probe up to `--max-backoff-delay`.
    pub breaker_cooldown: Duration,
    /// Deactivate a config failing for this long; None = never.
    pub auto_disable_after: Option<Duration>,
}

/// API authentication (spec §11); the keys never show in `Debug`.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub enabled: bool,
    /// Trusted OIDC issuers (`--auth-issuer` merged with `--auth-issuers`).
    pub issuers: Vec<String>,
    pub read_key_set_max_retries: u64,
    pub check_scopes: bool,
    pub service: String,
    pub api_keys: Vec<crate::cli::SecretString>,
}

/// Everything `serve` and `worker` need.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub worker: bool,
    pub kafka_topics: Vec<String>,
    pub retry: RetrySettings,
    pub http: HttpSettings,
    pub delivery_concurrency: usize,
    pub isolation: IsolationSettings,
    pub max_request_bytes: usize,
    /// Largest Kafka record value delivered (spec §4.2).
    pub max_record_bytes: usize,
    /// Upper bound of a graceful stop (spec §1.5).
    pub shutdown_timeout: Duration,
    /// How long a replaced secret keeps signing (spec §2.5); zero = not at all.
    pub secret_overlap: Duration,
    pub auth: AuthSettings,
    /// Trace export; None when tracing is off.
    pub traces: Option<crate::telemetry::TraceSettings>,
    pub auto_migrate: bool,
    pub publisher_kafka_enabled: bool,
    pub publisher_queue_group: String,
    pub storage: StorageSettings,
    pub log: LogSettings,
    pub args: ServeArgs,
}

impl Settings {
    /// `serve` settings from flags alone (the environment is not read), exactly as the binary
    /// builds them: for tests and the benchmark.
    pub fn from_flags(flags: &[&str]) -> Result<Self, String> {
        let mut argv = vec!["webhooks", "serve"];
        argv.extend_from_slice(flags);
        match crate::cli::parse(argv, |_| None) {
            Ok(crate::cli::Parsed::Run(cli, provenance)) => match cli.command {
                crate::cli::Command::Serve(args) => {
                    Settings::from_args(args, &provenance).map_err(|e| e.to_string())
                }
                other => Err(format!("not serve: {other:?}")),
            },
            Ok(crate::cli::Parsed::Print(text)) => Err(format!("printed instead: {text}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Applies the constraints of spec §1.2; a violation is a usage error naming the flag.
    pub fn from_args(args: ServeArgs, provenance: &Provenance) -> Result<Self, UsageError> {
        let bad = |long: &str, why: &str| {
            UsageError(format!(
                "error: invalid value for {}: {why}",
                provenance.describe(long)
            ))
        };
        if args.retry_period.0.is_zero() {
            return Err(bad("retry-period", "must be greater than 0"));
        }
        if args.min_backoff_delay.0.is_zero() {
            return Err(bad("min-backoff-delay", "must be greater than 0"));
        }
        if args.max_backoff_delay.0 < args.min_backoff_delay.0 {
            return Err(bad(
                "max-backoff-delay",
                "must not be less than --min-backoff-delay",
            ));
        }
        if args.http_timeout.0.is_zero() {
            return Err(bad("http-timeout", "must be greater than 0"));
        }
        if args.delivery_concurrency == 0 {
            return Err(bad("delivery-concurrency", "must be at least 1"));
        }
        if args.endpoint_concurrency == 0 {
            return Err(bad("endpoint-concurrency", "must be at least 1"));
        }
        if args.circuit_breaker_cooldown.0.is_zero() {
            return Err(bad("circuit-breaker-cooldown", "must be greater than 0"));
        }
        if args.shutdown_timeout.0.is_zero() {
            return Err(bad("shutdown-timeout", "must be greater than 0"));
        }
        if args.max_record_bytes == 0 {
            return Err(bad("max-record-bytes", "must be at least 1"));
        }
        let issuers: Vec<String> = std::iter::once(&args.auth.auth_issuer)
            .chain(&args.auth.auth_issuers)
            .map(|i| i.trim())
            .filter(|i| !i.is_empty())
            .map(str::to_owned)
            .collect();
        if args.auth.auth_enabled && issuers.is_empty() && args.auth.auth_api_keys.is_empty() {
            return Err(bad(
                "auth-enabled",
                "needs at least one of --auth-issuer, --auth-issuers or --auth-api-keys",
            ));
        }
        let signature_headers = match args.signature_headers.as_str() {
            "standard" => SignatureHeaders::Standard,
            "both" => SignatureHeaders::Both,
            _ => SignatureHeaders::Formance,
        };
        let traces = trace_settings(&args);
        let kafka_topics: Vec<String> = args
            .kafka_topics
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if kafka_topics.is_empty() {
            return Err(bad("kafka-topics", "must name at least one topic"));
        }
        let listen = normalize_listen(&args.listen).ok_or_else(|| bad("listen", "must be host:port"))?;
        let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(Settings {
            listen,
            worker: args.worker,
            kafka_topics,
            retry: RetrySettings {
                retry_period: args.retry_period.0,
                min_backoff: args.min_backoff_delay.0,
                max_backoff: args.max_backoff_delay.0,
                abort_after: args.abort_after.0,
                max_attempts: args.max_attempts,
            },
            http: HttpSettings {
                timeout: args.http_timeout.0,
                max_response_bytes: to_usize(args.max_response_bytes),
                address_policy: AddressPolicy::new(
                    args.allow_private_endpoints,
                    args.allowed_endpoint_cidrs.clone(),
                ),
                signature_headers,
            },
            delivery_concurrency: to_usize(args.delivery_concurrency),
            isolation: IsolationSettings {
                endpoint_concurrency: to_usize(args.endpoint_concurrency),
                breaker_failures: u32::try_from(args.circuit_breaker_failures).unwrap_or(u32::MAX),
                breaker_cooldown: args.circuit_breaker_cooldown.0,
                auto_disable_after: Some(args.auto_disable_after.0).filter(|d| !d.is_zero()),
            },
            max_request_bytes: to_usize(args.max_request_bytes),
            max_record_bytes: to_usize(args.max_record_bytes),
            shutdown_timeout: args.shutdown_timeout.0,
            secret_overlap: args.secret_overlap.0,
            auth: AuthSettings {
                enabled: args.auth.auth_enabled,
                issuers,
                read_key_set_max_retries: args.auth.auth_read_key_set_max_retries,
                check_scopes: args.auth.auth_check_scopes,
                service: args.auth.auth_service.clone(),
                api_keys: args.auth.auth_api_keys.clone(),
            },
            traces,
            auto_migrate: args.auto_migrate,
            publisher_kafka_enabled: args.publisher_kafka_enabled,
            publisher_queue_group: args.publisher_queue_group.clone(),
            storage: StorageSettings::from_args(&args.storage),
            log: LogSettings::from_args(&args.log),
            args,
        })
    }
}

/// Tracing is on with `--otel-traces` or any `--otel-traces-exporter` (spec §1.3, v2.5 rule);
/// without an exporter it is `stdout`; `jaeger` is OTLP to the Jaeger collector's endpoint.
fn trace_settings(args: &ServeArgs) -> Option<crate::telemetry::TraceSettings> {
    use crate::telemetry::traces::{Exporter, TraceSettings};
    if !args.otel_traces && args.otel_traces_exporter.is_empty() {
        return None;
    }
    let otlp = |endpoint: &str| Exporter::Otlp {
        http: args.otel_traces_exporter_otlp_mode == "http",
        endpoint: endpoint.trim().to_owned(),
        insecure: args.otel_traces_exporter_otlp_insecure,
    };
    let exporter = match args.otel_traces_exporter.as_str() {
        "otlp" => otlp(&args.otel_traces_exporter_otlp_endpoint),
        "jaeger" => otlp(&args.otel_traces_exporter_jaeger_endpoint),
        _ => Exporter::Stdout,
    };
    Some(TraceSettings {
        exporter,
        batch: args.otel_traces_batch,
        service_name: args.otel_service_name.trim().to_owned(),
        resource_attributes: args
            .otel_resource_attributes
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
    })
}

/// `:8080` means every interface, as in Go; anything else must be `host:port`.
fn normalize_listen(listen: &str) -> Option<String> {
    let (host, port) = listen.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_without_host_binds_all_interfaces() {
        assert_eq!(normalize_listen(":8080").as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(normalize_listen("127.0.0.1:0").as_deref(), Some("127.0.0.1:0"));
        assert_eq!(normalize_listen("[::1]:9000").as_deref(), Some("[::1]:9000"));
        assert_eq!(normalize_listen("8080"), None);
        assert_eq!(normalize_listen(":http"), None);
    }

    #[test]
    fn redacts_postgres_password() {
        let s = StorageSettings::Postgres {
            uri: "postgres://user:secret@db:5432/webhooks".to_owned(),
        };
        assert!(!format!("{s:?}").contains("secret"));
        assert!(s.redacted().contains("user"));
    }
}
