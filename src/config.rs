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

/// Everything `serve` and `worker` need.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub worker: bool,
    pub kafka_topics: Vec<String>,
    pub retry: RetrySettings,
    pub http: HttpSettings,
    pub delivery_concurrency: usize,
    pub max_request_bytes: usize,
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
            },
            delivery_concurrency: to_usize(args.delivery_concurrency),
            max_request_bytes: to_usize(args.max_request_bytes),
            auto_migrate: args.auto_migrate,
            publisher_kafka_enabled: args.publisher_kafka_enabled,
            publisher_queue_group: args.publisher_queue_group.clone(),
            storage: StorageSettings::from_args(&args.storage),
            log: LogSettings::from_args(&args.log),
            args,
        })
    }
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
