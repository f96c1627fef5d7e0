//! Stamps the build with what `webhooks version`, `/_info` and the OpenAPI document print
//! (spec §1.1): `WEBHOOKS_VERSION`, `WEBHOOKS_BUILD_DATE` and `WEBHOOKS_COMMIT`.
//!
//! A non-blank value in the environment wins (the Dockerfile passes its build arguments this way,
//! since its build context has no `.git`). Otherwise the version is `v` + the crate version, the
//! commit is `git rev-parse --short HEAD`, and the date is `SOURCE_DATE_EPOCH` when set, else the
//! time this script runs, in UTC (RFC 3339). Unknown values are `-`.
//!
//! The script reruns only when one of those variables changes or `HEAD` moves (the files of
//! `HEAD` and of the branch it points to), so an edit of the sources does not restamp the date.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    for var in [
        "WEBHOOKS_VERSION",
        "WEBHOOKS_BUILD_DATE",
        "WEBHOOKS_COMMIT",
        "SOURCE_DATE_EPOCH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    let version = given("WEBHOOKS_VERSION").unwrap_or_else(|| format!("v{}", env!("CARGO_PKG_VERSION")));
    let commit = given("WEBHOOKS_COMMIT")
        .or_else(git_commit)
        .unwrap_or_else(|| "-".to_owned());
    let date = given("WEBHOOKS_BUILD_DATE")
        .or_else(|| {
            given("SOURCE_DATE_EPOCH")
                .and_then(|s| s.parse::<u64>().ok())
                .map(rfc3339)
        })
        .or_else(|| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
            Some(rfc3339(now.as_secs()))
        })
        .unwrap_or_else(|| "-".to_owned());

    // Set even when the environment already holds the value: a blank variable would otherwise
    // reach `option_env!` as an empty string.
    println!("cargo:rustc-env=WEBHOOKS_VERSION={version}");
    println!("cargo:rustc-env=WEBHOOKS_BUILD_DATE={date}");
    println!("cargo:rustc-env=WEBHOOKS_COMMIT={commit}");
}

/// The variable's trimmed value, when it is set and not blank.
fn given(var: &str) -> Option<String> {
    let value = std::env::var(var).ok()?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The short hash of `HEAD`, and a rerun whenever `HEAD` moves. Works in a worktree too: the
/// paths come from `git rev-parse --git-path`, which knows where each file lives.
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    let mut watched = vec!["HEAD".to_owned()];
    if let Some(branch) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]) {
        if branch.starts_with("refs/") {
            watched.push(branch);
        }
    }
    // A branch whose loose ref was packed lives in packed-refs.
    watched.push("packed-refs".to_owned());
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            // A path that does not exist would make cargo rerun this script on every build.
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    Some(commit)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch (UTC; civil-from-days by
/// Howard Hinnant's algorithm, to keep the build script free of dependencies).
fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}
