//! The command line: one clap tree, every flag also read from its environment variable.
//!
//! Environment handling is done here rather than with clap's `env` attribute because the contract
//! (spec §1.2) differs from clap's: values are trimmed, blank means unset, list variables split on
//! commas *and* spaces, a list on the command line replaces the environment's, and a bad value
//! must name the variable it came from. So [`parse`] reads the environment itself and injects
//! `--flag=value` arguments for flags the command line did not give, remembering which it injected.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::domain::boolean::parse_bool;
use crate::domain::duration::parse_duration;

/// Self-hosted webhook delivery: Kafka events in, HMAC-signed HTTP POSTs out.
#[derive(Debug, Parser)]
#[command(name = "webhooks", arg_required_else_help = true, disable_version_flag = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (and, with --worker, run the delivery worker in the same process).
    #[command(alias = "server")]
    Serve(ServeArgs),
    /// Run the delivery worker: Kafka consumer, retry sweep and retention.
    Worker(ServeArgs),
    /// Apply pending database migrations, then exit.
    Migrate(MigrateArgs),
    /// Print version, build date and commit.
    Version,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// PostgreSQL connection URI; when empty, the embedded SQLite file is used.
    #[arg(long, value_name = "URI", default_value = "")]
    pub postgres_uri: SecretString,
    /// Alias of --postgres-uri (which wins when both are set).
    #[arg(long, value_name = "URI", default_value = "")]
    pub storage_postgres_conn_string: SecretString,
    /// Embedded SQLite database file, used when no PostgreSQL URI is set.
    #[arg(long, value_name = "PATH", default_value = "webhooks.db")]
    pub sqlite_path: String,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log at debug level, overriding --log-level.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub debug: bool,
    /// Minimum log level: trace, debug, info, warn or error.
    #[arg(long, value_name = "LEVEL", default_value = "info", value_parser = ["trace", "debug", "info", "warn", "error"])]
    pub log_level: String,
    /// Write one JSON object per log line instead of text.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub json_formatting_logger: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// HTTP bind address, host:port; an empty host means all interfaces, port 0 an ephemeral port.
    #[arg(long, value_name = "ADDR", default_value = ":8080")]
    pub listen: String,
    /// `serve` only: also run the delivery worker in this process.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub worker: bool,
    /// Kafka topics to consume (list); the first is the default topic of POST /events.
    #[arg(long, value_name = "TOPICS", value_delimiter = ',', default_value = "default", action = ArgAction::Append)]
    pub kafka_topics: Vec<String>,
    /// Longest idle wait of the retry sweep (duration, e.g. 30s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    pub retry_period: GoDuration,
    /// First retry delay (duration).
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    pub min_backoff_delay: GoDuration,
    /// Upper bound of a retry delay (duration).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub max_backoff_delay: GoDuration,
    /// Retry window, from the first attempt of a replay generation (duration).
    #[arg(long, value_name = "DURATION", default_value = "720h")]
    pub abort_after: GoDuration,
    /// Cap on HTTP calls per delivery per replay generation; 0 means no cap.
    #[arg(long, value_name = "COUNT", default_value = "0")]
    pub max_attempts: u64,
    /// Total budget of one outbound call, connect to end of body read (duration).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub http_timeout: GoDuration,
    /// Maximum outbound requests in flight per worker process (first attempts and retries).
    #[arg(long, value_name = "COUNT", default_value = "1024")]
    pub delivery_concurrency: u64,
    /// Bytes of a response body read and kept as the attempt's excerpt; 0 reads nothing.
    #[arg(long, value_name = "BYTES", default_value = "65536")]
    pub max_response_bytes: u64,
    /// Largest accepted API request body, in bytes (413 above).
    #[arg(long, value_name = "BYTES", default_value = "1048576")]
    pub max_request_bytes: u64,
    /// Largest Kafka record value delivered, in bytes; larger records are logged and skipped.
    #[arg(long, value_name = "BYTES", default_value = "8388608")]
    pub max_record_bytes: u64,
    /// Maximum outbound calls in flight per config per worker process; must be at least 1.
    #[arg(long, value_name = "COUNT", default_value = "256")]
    pub endpoint_concurrency: u64,
    /// Consecutive retryable failures of one config's calls that open its circuit; 0 disables the breaker.
    #[arg(long, value_name = "COUNT", default_value = "20")]
    pub circuit_breaker_failures: u64,
    /// First open period of a circuit (duration); doubles after each failed probe, capped at --max-backoff-delay.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub circuit_breaker_cooldown: GoDuration,
    /// Deactivate a config whose calls have all failed for this long (duration); 0 never does.
    #[arg(long, value_name = "DURATION", default_value = "0")]
    pub auto_disable_after: GoDuration,
    /// Upper bound of a graceful stop (duration); past it, what was not stored is logged and the process exits 1.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub shutdown_timeout: GoDuration,
    /// Signature headers a delivery carries: formance, standard (Standard Webhooks webhook-*) or both.
    #[arg(long, value_name = "SET", default_value = "formance", value_parser = ["formance", "standard", "both"])]
    pub signature_headers: String,
    /// `serve`: after a secret change, how long the previous secret keeps signing too (duration); 0 = immediate change.
    #[arg(long, value_name = "DURATION", default_value = "0")]
    pub secret_overlap: GoDuration,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Apply pending migrations at start (always on with SQLite).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub auto_migrate: bool,
    /// Use the Kafka cluster at --publisher-kafka-broker; when false the worker runs an in-process broker.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub publisher_kafka_enabled: bool,
    /// Kafka bootstrap servers (list of host:port).
    #[arg(long, value_name = "BROKERS", value_delimiter = ',', default_value = "localhost:9092", action = ArgAction::Append)]
    pub publisher_kafka_broker: Vec<String>,
    /// Authenticate to Kafka with SASL.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub publisher_kafka_sasl_enabled: bool,
    /// SASL mechanism: PLAIN (also when empty), SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, value_name = "MECHANISM", default_value = "", value_parser = sasl_mechanism)]
    pub publisher_kafka_sasl_mechanism: String,
    /// SASL user name.
    #[arg(long, value_name = "USER", default_value = "")]
    pub publisher_kafka_sasl_username: String,
    /// SASL password (never logged).
    #[arg(long, value_name = "PASSWORD", default_value = "")]
    pub publisher_kafka_sasl_password: SecretString,
    /// Accepted for compatibility: 256 or 512; the mechanism name decides the hash.
    #[arg(long, value_name = "BITS", default_value = "512", value_parser = clap::builder::PossibleValuesParser::new(["256", "512"]))]
    pub publisher_kafka_sasl_scram_sha_size: String,
    /// TLS to the Kafka brokers, certificates verified.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub publisher_kafka_tls_enabled: bool,
    /// Kafka consumer group id (also the client id).
    #[arg(long, value_name = "GROUP", default_value = "webhooks")]
    pub publisher_queue_group: String,
    /// Enable tracing (exporter stdout unless --otel-traces-exporter is set).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub otel_traces: bool,
    /// Trace exporter: stdout, otlp or jaeger (OTLP to a Jaeger collector); setting it enables tracing.
    #[arg(long, value_name = "EXPORTER", default_value = "", value_parser = ["", "stdout", "otlp", "jaeger"])]
    pub otel_traces_exporter: String,
    /// Export spans in batches.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub otel_traces_batch: bool,
    /// OTLP endpoint of the Jaeger collector; empty means the OTLP default.
    #[arg(long, value_name = "URL", default_value = "")]
    pub otel_traces_exporter_jaeger_endpoint: String,
    /// OTLP endpoint; empty means the OTLP default.
    #[arg(long, value_name = "URL", default_value = "")]
    pub otel_traces_exporter_otlp_endpoint: String,
    /// Plain-text (non-TLS) OTLP.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub otel_traces_exporter_otlp_insecure: bool,
    /// OTLP transport: grpc or http.
    #[arg(long, value_name = "MODE", default_value = "grpc", value_parser = ["grpc", "http"])]
    pub otel_traces_exporter_otlp_mode: String,
    /// Trace service name; empty means `webhooks`.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub otel_service_name: String,
    /// key=value attributes added to the trace resource (list).
    #[arg(long, value_name = "ATTRS", value_delimiter = ',', action = ArgAction::Append, value_parser = resource_attribute)]
    pub otel_resource_attributes: Vec<String>,
    /// How often the worker purges old rows (duration); 0 disables retention.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub retention_period: GoDuration,
    /// Age after which succeeded deliveries are deleted (duration); 0 keeps them.
    #[arg(long, value_name = "DURATION", default_value = "720h")]
    pub retention_success_delay: GoDuration,
    /// Age after which failed and cancelled deliveries are deleted (duration); 0 keeps them.
    #[arg(long, value_name = "DURATION", default_value = "2160h")]
    pub retention_failed_delay: GoDuration,
    /// Turn the SSRF guard off: allow endpoints on private, loopback and link-local addresses.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub allow_private_endpoints: bool,
    /// CIDR ranges exempted from the SSRF guard (list, e.g. 10.0.0.0/8).
    #[arg(long, value_name = "CIDRS", value_delimiter = ',', action = ArgAction::Append, value_parser = cidr)]
    pub allowed_endpoint_cidrs: Vec<ipnet::IpNet>,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// API authentication (spec §11), reference-compatible flags plus static API keys.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// Require a bearer credential on the API (every route but the operational ones).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub auth_enabled: bool,
    /// Trusted OIDC issuer URL (merged with --auth-issuers).
    #[arg(long, value_name = "URL", default_value = "")]
    pub auth_issuer: String,
    /// Trusted OIDC issuer URLs (list).
    #[arg(long, value_name = "URLS", value_delimiter = ',', action = ArgAction::Append)]
    pub auth_issuers: Vec<String>,
    /// Attempts to fetch an issuer's key set before a token is refused.
    #[arg(long, value_name = "COUNT", default_value = "10")]
    pub auth_read_key_set_max_retries: u64,
    /// Require <service>:read / <service>:write scopes.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = bool_value, action = ArgAction::Set)]
    pub auth_check_scopes: bool,
    /// Scope prefix.
    #[arg(long, value_name = "NAME", default_value = "webhooks")]
    pub auth_service: String,
    /// Static API keys (list), each sha256:<64 hex> (digest of the key) or the key itself; never logged.
    #[arg(long, value_name = "KEYS", value_delimiter = ',', action = ArgAction::Append, value_parser = api_key)]
    pub auth_api_keys: Vec<SecretString>,
}

/// A duration in Go syntax (`500ms`, `1m30s`, `720h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl FromStr for GoDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(GoDuration).map_err(|e| e.to_string())
    }
}

/// A string that never shows in `Debug` output (passwords, URIs carrying one).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(pub String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"<redacted>\"")
        }
    }
}

impl FromStr for SecretString {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretString(s.to_owned()))
    }
}

fn bool_value(s: &str) -> Result<bool, String> {
    parse_bool(s).map_err(|_| format!("{s:?} is not a boolean (use true or false)"))
}

fn sasl_mechanism(s: &str) -> Result<String, String> {
    let upper = s.to_ascii_uppercase();
    match upper.as_str() {
        "" | "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" => Ok(upper),
        _ => Err("must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512".to_owned()),
    }
}

fn resource_attribute(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((k, _)) if !k.trim().is_empty() => Ok(s.to_owned()),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

/// A `sha256:` key must carry a whole digest; the message never repeats the value (a key).
fn api_key(s: &str) -> Result<SecretString, String> {
    if let Some(digest) = s.strip_prefix("sha256:") {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a sha256: key must have exactly 64 hex digits after the prefix".to_owned());
        }
    }
    Ok(SecretString(s.to_owned()))
}

fn cidr(s: &str) -> Result<ipnet::IpNet, String> {
    crate::domain::ssrf::parse_cidr(s).map_err(|e| e.to_string())
}

/// A usage error: exit code 2 and exactly one line on stderr.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// What parsing decided: run a command, or print text (help) and exit 0.
pub enum Parsed {
    Run(Box<Cli>, Provenance),
    Print(String),
}

/// Which flags were filled from the environment, so later validation can name the variable.
#[derive(Debug, Default, Clone)]
pub struct Provenance {
    from_env: HashMap<String, String>,
}

impl Provenance {
    /// `--flag` or `--flag (from FLAG)` for messages about a flag's value.
    pub fn describe(&self, long: &str) -> String {
        match self.from_env.get(long) {
            Some(var) => format!("--{long} (from environment variable {var})"),
            None => format!("--{long}"),
        }
    }
}

/// The environment variable of a flag: upper case, `-` → `_`, no prefix.
pub fn env_name(long: &str) -> String {
    long.to_ascii_uppercase().replace('-', "_")
}

/// The whole command tree, with each flag's environment variable appended to its help line.
pub fn command() -> clap::Command {
    Cli::command().mut_subcommands(|sub| {
        sub.mut_args(|arg| match arg.get_long().map(str::to_owned) {
            Some(long) if long != "help" => {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                arg.help(format!("{help} [env: {}]", env_name(&long)))
            }
            _ => arg,
        })
    })
}

/// Parses the command line, falling back to `env` for flags it does not give (spec §1.2).
pub fn parse<I, F>(args: I, env: F) -> Result<Parsed, UsageError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
    F: Fn(&str) -> Option<String>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cmd = command();
    let (args, provenance) = inject_env(&cmd, args, &env);
    match cmd.try_get_matches_from(args) {
        Ok(matches) => {
            let cli = Cli::from_arg_matches(&matches).map_err(|e| one_line(&e, &provenance))?;
            Ok(Parsed::Run(Box::new(cli), provenance))
        }
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                Ok(Parsed::Print(e.render().to_string()))
            }
            // No command at all: the whole usage, on stderr, exit 2 (spec §1.1).
            clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                Err(UsageError(e.render().to_string().trim_end().to_owned()))
            }
            _ => Err(one_line(&e, &provenance)),
        },
    }
}

/// Adds `--flag=value` right after the subcommand for every flag of that subcommand that the
/// command line does not mention and whose variable holds a non-blank value.
fn inject_env<F>(cmd: &clap::Command, args: Vec<OsString>, env: &F) -> (Vec<OsString>, Provenance)
where
    F: Fn(&str) -> Option<String>,
{
    let mut provenance = Provenance::default();
    let Some(pos) = args
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))
    else {
        return (args, provenance);
    };
    let pos = pos + 1;
    let name = args[pos].to_string_lossy().into_owned();
    let Some(sub) = cmd.find_subcommand(&name) else {
        return (args, provenance);
    };
    let given: Vec<String> = args[pos + 1..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut injected = Vec::new();
    for arg in sub.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" {
            continue;
        }
        let flag = format!("--{long}");
        let prefix = format!("{flag}=");
        if given.iter().any(|g| *g == flag || g.starts_with(&prefix)) {
            continue;
        }
        let var = env_name(long);
        let Some(value) = env(&var) else { continue };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if matches!(arg.get_action(), ArgAction::Append) {
            let items: Vec<&str> = value
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|item| !item.is_empty())
                .collect();
            // A list of nothing but separators is given, yet empty: pass one empty item so
            // the non-empty rules see it instead of the default silently applying.
            if items.is_empty() {
                injected.push(OsString::from(prefix.clone()));
            }
            for item in items {
                injected.push(OsString::from(format!("{prefix}{item}")));
            }
        } else {
            injected.push(OsString::from(format!("{prefix}{value}")));
        }
        provenance.from_env.insert(long.to_owned(), var);
    }
    let mut out = args[..=pos].to_vec();
    out.extend(injected);
    out.extend_from_slice(&args[pos + 1..]);
    (out, provenance)
}

/// Flags whose values are credentials: never repeated in a message.
const SECRET_FLAGS: &[&str] = &[
    "postgres-uri",
    "storage-postgres-conn-string",
    "publisher-kafka-sasl-password",
    "auth-api-keys",
];

/// clap renders errors over several lines with usage and tips; the contract wants one line
/// naming the flag, and the variable when the value came from the environment.
fn one_line(err: &clap::Error, provenance: &Provenance) -> UsageError {
    use clap::error::{ContextKind, ContextValue};
    let rendered = err.render().to_string();
    let mut line = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("error: invalid command line")
        .trim()
        .to_owned();
    if let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) {
        // clap names an optional-value flag `--auto-migrate[=<BOOL>]`, others `--retry-period <DURATION>`.
        let long = arg
            .trim_start_matches("--")
            .split([' ', '=', '['])
            .next()
            .unwrap_or_default();
        // A refused password or key is not echoed back (spec §7.3).
        if SECRET_FLAGS.contains(&long) {
            if let Some(ContextValue::String(value)) = err.get(ContextKind::InvalidValue) {
                if !value.is_empty() {
                    line = line.replace(value.as_str(), "<redacted>");
                }
            }
        }
        if let Some(var) = provenance.from_env.get(long) {
            line.push_str(&format!(" (from environment variable {var})"));
        }
    }
    UsageError(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Parsed, UsageError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse(args.iter().copied(), |k| env.get(k).cloned())
    }

    fn serve_args(args: &[&str], env: &[(&str, &str)]) -> ServeArgs {
        match parse_with(args, env) {
            Ok(Parsed::Run(cli, _)) => match cli.command {
                Command::Serve(a) | Command::Worker(a) => a,
                other => panic!("unexpected command {other:?}"),
            },
            Ok(Parsed::Print(s)) => panic!("printed {s}"),
            Err(e) => panic!("usage error {e}"),
        }
    }

    #[test]
    fn command_tree_passes_clap_debug_asserts() {
        command().debug_assert();
    }

    #[test]
    fn env_list_splits_on_commas_and_spaces() {
        let a = serve_args(&["webhooks", "serve"], &[("KAFKA_TOPICS", " a b,c ,, ")]);
        assert_eq!(a.kafka_topics, ["a", "b", "c"]);
    }

    #[test]
    fn command_line_list_replaces_env_list() {
        let a = serve_args(
            &["webhooks", "serve", "--kafka-topics", "c"],
            &[("KAFKA_TOPICS", "a b")],
        );
        assert_eq!(a.kafka_topics, ["c"]);
        let a = serve_args(&["webhooks", "serve", "--kafka-topics=x,y"], &[]);
        assert_eq!(a.kafka_topics, ["x", "y"]);
    }

    #[test]
    fn defaults_apply_without_flags_or_env() {
        let a = serve_args(&["webhooks", "server"], &[]);
        assert_eq!(a.listen, ":8080");
        assert_eq!(a.kafka_topics, ["default"]);
        assert_eq!(a.retry_period.0, Duration::from_secs(60));
        assert_eq!(a.abort_after.0, Duration::from_secs(720 * 3600));
        assert_eq!(a.delivery_concurrency, 1024);
        assert!(!a.worker);
        assert_eq!(a.storage.sqlite_path, "webhooks.db");
    }

    #[test]
    fn blank_env_counts_as_unset_and_values_are_trimmed() {
        let a = serve_args(
            &["webhooks", "serve"],
            &[("RETRY_PERIOD", "   "), ("LISTEN", " 127.0.0.1:0 ")],
        );
        assert_eq!(a.retry_period.0, Duration::from_secs(60));
        assert_eq!(a.listen, "127.0.0.1:0");
    }

    #[test]
    fn flag_beats_env() {
        let a = serve_args(
            &["webhooks", "serve", "--retry-period", "5s"],
            &[("RETRY_PERIOD", "9s")],
        );
        assert_eq!(a.retry_period.0, Duration::from_secs(5));
    }

    #[test]
    fn booleans_take_go_spellings() {
        for (v, want) in [
            ("1", true),
            ("T", true),
            ("True", true),
            ("0", false),
            ("F", false),
            ("FALSE", false),
        ] {
            let a = serve_args(&["webhooks", "serve"], &[("WORKER", v)]);
            assert_eq!(a.worker, want, "{v}");
            let flag = format!("--worker={v}");
            let a = serve_args(&["webhooks", "serve", &flag], &[]);
            assert_eq!(a.worker, want, "{v}");
        }
        assert!(serve_args(&["webhooks", "serve", "--worker"], &[]).worker);
        assert!(parse_with(&["webhooks", "serve", "--worker=yes"], &[]).is_err());
    }

    #[test]
    fn bad_env_value_names_flag_and_variable_on_one_line() {
        let Err(e) = parse_with(&["webhooks", "serve"], &[("RETRY_PERIOD", "abc")]) else {
            panic!("accepted a bad duration");
        };
        assert!(e.0.contains("--retry-period"), "{e}");
        assert!(e.0.contains("RETRY_PERIOD"), "{e}");
        assert_eq!(e.0.lines().count(), 1, "{e}");
    }

    #[test]
    fn bad_env_boolean_names_flag_and_variable_on_one_line() {
        let Err(e) = parse_with(&["webhooks", "serve"], &[("AUTO_MIGRATE", "maybe")]) else {
            panic!("accepted a bad boolean");
        };
        assert!(e.0.contains("--auto-migrate"), "{e}");
        assert!(e.0.contains("AUTO_MIGRATE"), "{e}");
        assert_eq!(e.0.lines().count(), 1, "{e}");
    }

    #[test]
    fn bad_flag_value_names_flag_only() {
        let Err(e) = parse_with(&["webhooks", "serve", "--retry-period=abc"], &[]) else {
            panic!("accepted a bad duration");
        };
        assert!(e.0.contains("--retry-period"), "{e}");
        assert!(!e.0.contains("environment"), "{e}");
        assert_eq!(e.0.lines().count(), 1, "{e}");
    }

    #[test]
    fn unknown_and_dropped_flags_are_usage_errors() {
        assert!(parse_with(&["webhooks", "serve", "--no-such-flag"], &[]).is_err());
        assert!(parse_with(&["webhooks", "serve", "--publisher-nats-enabled"], &[]).is_err());
        assert!(parse_with(&["webhooks", "version", "--listen=:1"], &[]).is_err());
    }

    #[test]
    fn sasl_mechanism_is_case_insensitive() {
        let a = serve_args(
            &[
                "webhooks",
                "worker",
                "--publisher-kafka-sasl-mechanism=scram-sha-256",
            ],
            &[],
        );
        assert_eq!(a.publisher_kafka_sasl_mechanism, "SCRAM-SHA-256");
        assert!(parse_with(
            &["webhooks", "worker", "--publisher-kafka-sasl-mechanism=GSSAPI"],
            &[]
        )
        .is_err());
    }

    #[test]
    fn help_names_env_vars_and_defaults() {
        let Ok(Parsed::Print(help)) = parse_with(&["webhooks", "serve", "--help"], &[]) else {
            panic!("no help");
        };
        assert!(help.contains("[env: RETRY_PERIOD]"), "{help}");
        assert!(help.contains("[default: 1m]"), "{help}");
    }

    #[test]
    fn a_malformed_api_key_digest_is_refused_without_echoing_it() {
        let bad = "sha256:abc123";
        let Err(e) = parse_with(&["webhooks", "serve"], &[("AUTH_API_KEYS", bad)]) else {
            panic!("accepted a short digest");
        };
        assert!(
            e.0.contains("--auth-api-keys") && e.0.contains("AUTH_API_KEYS"),
            "{e}"
        );
        assert!(!e.0.contains("abc123"), "{e}");
        assert_eq!(e.0.lines().count(), 1, "{e}");
        let good = format!("sha256:{}", "a".repeat(64));
        let a = serve_args(
            &["webhooks", "serve", &format!("--auth-api-keys=plain,{good}")],
            &[],
        );
        assert_eq!(a.auth.auth_api_keys.len(), 2);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let a = serve_args(
            &["webhooks", "serve", "--publisher-kafka-sasl-password=hunter2"],
            &[("POSTGRES_URI", "postgres://u:pw@h/db")],
        );
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("pw@"), "{dbg}");
    }
}
