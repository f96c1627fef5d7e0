//! Logging: text or JSON lines on stderr, level from `--log-level`/`--debug` (spec §8.3).
//!
//! Secrets and payloads never reach a log line at info or above; that is the callers' duty, and
//! the types help (`SecretString`, `StorageSettings` redact themselves in `Debug`).

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt;

use crate::config::LogSettings;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(settings: &LogSettings) {
    let level = LevelFilter::from_level(settings.level);
    let builder = fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if settings.json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
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
