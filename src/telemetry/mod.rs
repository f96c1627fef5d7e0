//! Logging and traces. Logs: text or JSON lines on stderr, level from `--log-level`/`--debug`
//! (spec §8.3). Traces: see `traces.rs` (spec §8.2).
//!
//! Secrets and payloads never reach a log line at info or above, nor any span; that is the
//! callers' duty, and the types help (`SecretString`, `StorageSettings` redact themselves in
//! `Debug`).

pub mod traces;

use std::io::IsTerminal as _;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{fmt, Layer};

use crate::config::LogSettings;
pub use traces::{TraceSettings, SPANS};

/// Traces being exported; flushed by [`Tracing::shutdown`].
#[derive(Debug)]
pub struct Tracing {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

impl Tracing {
    /// Exports what is queued (bounded by the exporter's timeout) and stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "trace exporter shutdown");
        }
    }
}

/// Installs the global subscriber: logs, and with `traces` the span export (which must then run
/// inside the async runtime). A second call (tests) installs nothing.
pub fn init(settings: &LogSettings, traces: Option<&TraceSettings>) -> anyhow::Result<Option<Tracing>> {
    let level = LevelFilter::from_level(settings.level);
    // Exported spans never show in the logs.
    let logged = Targets::new()
        .with_default(level)
        .with_target(SPANS, LevelFilter::OFF);
    // Colours only for a person at a terminal: a file, a pipe, `docker logs` or `kubectl logs`
    // get plain text (and `NO_COLOR`, https://no-color.org, turns them off anywhere).
    let colours = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colours);
    let fmt = if settings.json {
        fmt.json().flatten_event(true).boxed()
    } else {
        fmt.boxed()
    };
    let registry = tracing_subscriber::registry().with(fmt.with_filter(logged));
    let Some(traces) = traces else {
        let _ = registry.try_init();
        return Ok(None);
    };
    let provider = traces::provider(traces)?;
    let exported = Targets::new().with_target(SPANS, LevelFilter::TRACE);
    let installed = registry
        .with(traces::layer(&provider).with_filter(exported))
        .try_init()
        .is_ok();
    Ok(installed.then_some(Tracing { provider }))
}

/// `outer: inner: innermost`, for logs: the one way an error and its causes are written.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
