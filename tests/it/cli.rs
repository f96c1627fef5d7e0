//! The binary as users run it: exit codes, one-line usage errors, help, environment, migrations.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use diesel::RunQueryDsl;

use crate::harness::{admin_connection, postgres_base_url, Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_webhooks");

/// A command with a clean environment: no variable of ours leaks in from the developer's shell.
pub(crate) fn webhooks(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

/// `webhooks serve --worker` on the test broker: `db`, `topic`, consumer group `group`, every
/// endpoint allowed; more flags may follow.
pub(crate) fn worker_command(db: &TestDb, topic: &str, group: &str) -> Command {
    let mut cmd = webhooks(&[
        "serve",
        "--worker",
        "--listen=127.0.0.1:0",
        "--auto-migrate",
        "--allow-private-endpoints",
        "--publisher-kafka-enabled",
    ]);
    cmd.arg(db.flag())
        .arg(format!("--publisher-kafka-broker={}", crate::kafka::bootstrap()))
        .arg(format!("--kafka-topics={topic}"))
        .arg(format!("--publisher-queue-group={group}"));
    cmd
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs to completion, killing the process if it outlives a generous deadline.
fn run(cmd: &mut Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    let pid = child.id();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let _ = done_tx.send(());
    let _ = watchdog.join();
    assert!(
        out.status.code().is_some(),
        "{BIN} did not exit within 60s and was killed"
    );
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A started server process, killed on drop.
pub(crate) struct Served {
    pub child: Child,
    pub addr: String,
    listening: serde_json::Value,
    /// Its log lines after `listening`, as they come.
    lines: mpsc::Receiver<String>,
}

impl Served {
    /// Waits (bounded) for a log line whose `message` is `message`.
    pub fn wait_for_log(&self, message: &str, deadline: Duration) -> serde_json::Value {
        let end = std::time::Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        if v["message"] == message {
                            return v;
                        }
                    }
                }
                Err(_) => panic!("no `{message}` log line within {deadline:?}"),
            }
        }
    }

    /// Creates a config for `event_types` on `endpoint` through the process's API (with extra
    /// request headers); the created config.
    pub async fn create_config(
        &self,
        endpoint: &str,
        event_types: &[&str],
        headers: &[(&str, &str)],
    ) -> serde_json::Value {
        let body = serde_json::json!({ "endpoint": endpoint, "eventTypes": event_types }).to_string();
        let mut req = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
            .post(format!("http://{}/configs", self.addr))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("POST /configs: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "{text}");
        let created: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        created["data"].clone()
    }

    /// Sends a signal (`TERM`, `INT`, …) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (bounded) for the process to exit; its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let end = std::time::Instant::now() + deadline;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.code(),
                Ok(None) if std::time::Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) => panic!("the process did not exit within {deadline:?}"),
                Err(e) => panic!("wait: {e}"),
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `webhooks serve` with JSON logs and waits (bounded) for its `listening` line.
pub(crate) fn serve(mut cmd: Command) -> Result<Served, String> {
    cmd.stdout(Stdio::null());
    serve_keeping_stdout(cmd)
}

/// As [`serve`], with stdout as the command set it up (e.g. piped, for the stdout exporter).
pub(crate) fn serve_keeping_stdout(mut cmd: Command) -> Result<Served, String> {
    cmd.arg("--json-formatting-logger").stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining after the receiver is gone: a closed pipe would fail the server's logging.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["message"] == "listening" {
                        let addr = v["addr"].as_str().unwrap_or_default().to_owned();
                        return Ok(Served {
                            child,
                            addr,
                            listening: v,
                            lines: rx,
                        });
                    }
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok().and_then(|s| s.code());
                return Err(format!("no `listening` line (exit {status:?}); stderr:\n{seen}"));
            }
        }
    }
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let url = format!("http://{addr}{path}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let r = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
            .get(&url)
            .send()
            .await;
        let r = r.unwrap_or_else(|e| panic!("{url}: {e}"));
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    })
}

#[test]
fn version_prints_three_lines_with_the_build_stamp() {
    let out = run(&mut webhooks(&["version"]));
    assert_eq!(out.code, Some(0));
    assert!(
        out.stdout.ends_with('\n') && !out.stdout.contains(" \n"),
        "{:?}",
        out.stdout
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert_eq!(lines[0], format!("Version: {}", webhooks::VERSION));
    let date = lines[1]
        .strip_prefix("Date: ")
        .unwrap_or_else(|| panic!("{}", out.stdout));
    let commit = lines[2]
        .strip_prefix("Commit: ")
        .unwrap_or_else(|| panic!("{}", out.stdout));
    // Cargo also hands the build script's variables to the test at run time, so the values are
    // checked against the clock and git here, not against the environment.
    let parsed = chrono::DateTime::parse_from_rfc3339(date)
        .map(|_| ())
        .or_else(|_| chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").map(|_| ()));
    assert!(
        parsed.is_ok(),
        "date {date:?} is neither an RFC 3339 date-time nor a date"
    );
    assert!(
        commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "commit {commit:?} is not a hash; build from a git checkout or set WEBHOOKS_COMMIT"
    );
    // In a checkout (not, e.g., an Earthly build context without .git), it is HEAD's.
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if let Some(head) = head {
        assert!(head.starts_with(commit), "commit {commit:?} is not HEAD {head:?}");
    }
}

#[test]
fn no_command_is_a_usage_error() {
    let out = run(&mut webhooks(&[]));
    assert_eq!(out.code, Some(2));
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("Usage"), "{}", out.stderr);
}

#[test]
fn help_goes_to_stdout_and_documents_every_flag() {
    let out = run(&mut webhooks(&["--help"]));
    assert_eq!(out.code, Some(0));
    for cmd in ["serve", "worker", "migrate", "version"] {
        assert!(out.stdout.contains(cmd), "{cmd}: {}", out.stdout);
    }
    let out = run(&mut webhooks(&["serve", "--help"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for needle in [
        "--listen",
        "[env: LISTEN]",
        "[default: :8080]",
        "--kafka-topics",
        "[env: KAFKA_TOPICS]",
        "--retry-period",
        "[default: 1m]",
        "--abort-after",
        "[default: 720h]",
        "--publisher-kafka-sasl-password",
        "--allowed-endpoint-cidrs",
        "--retention-failed-delay",
        "[default: 2160h]",
        "--sqlite-path",
        "[default: webhooks.db]",
    ] {
        assert!(out.stdout.contains(needle), "missing {needle}");
    }
    let out = run(&mut webhooks(&["migrate", "--help"]));
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("--postgres-uri") && !out.stdout.contains("--listen"));
}

#[test]
fn bad_flag_value_is_one_line_naming_the_flag() {
    let out = run(&mut webhooks(&["serve", "--retry-period=abc"]));
    assert_eq!(out.code, Some(2));
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("--retry-period") && !out.stderr.contains("RETRY_PERIOD"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_env_value_is_one_line_naming_flag_and_variable() {
    let out = run(webhooks(&["serve"]).env("RETRY_PERIOD", "abc"));
    assert_eq!(out.code, Some(2));
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("--retry-period") && out.stderr.contains("RETRY_PERIOD"),
        "{}",
        out.stderr
    );
    // Cross-flag constraints name their source too.
    let out = run(webhooks(&["serve"]).env("MAX_BACKOFF_DELAY", "1s"));
    assert_eq!(out.code, Some(2));
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("--max-backoff-delay") && out.stderr.contains("MAX_BACKOFF_DELAY"),
        "{}",
        out.stderr
    );
    let out = run(webhooks(&["serve"]).env("KAFKA_TOPICS", " , "));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("--kafka-topics") && out.stderr.contains("KAFKA_TOPICS"),
        "{}",
        out.stderr
    );
}

#[test]
fn auth_enabled_without_issuer_or_key_is_a_usage_error() {
    let out = run(&mut webhooks(&["serve", "--auth-enabled"]));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("--auth-enabled") && !out.stderr.contains("AUTH_ENABLED"),
        "{}",
        out.stderr
    );
    let out = run(webhooks(&["serve"]).env("AUTH_ENABLED", "true"));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("--auth-enabled") && out.stderr.contains("AUTH_ENABLED"),
        "{}",
        out.stderr
    );
    // A malformed key digest is refused without repeating the value.
    let out = run(&mut webhooks(&[
        "serve",
        "--auth-enabled",
        "--auth-api-keys=sha256:abc",
    ]));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains("abc"), "{}", out.stderr);
}

#[test]
fn bad_env_boolean_is_one_line_naming_flag_and_variable() {
    let out = run(webhooks(&["serve"]).env("AUTO_MIGRATE", "maybe"));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("--auto-migrate") && out.stderr.contains("AUTO_MIGRATE"),
        "{}",
        out.stderr
    );
}

#[test]
fn unknown_flags_are_usage_errors() {
    for flag in ["--no-such-flag", "--publisher-nats-enabled", "--audit-enabled"] {
        let out = run(&mut webhooks(&["serve", flag]));
        assert_eq!(out.code, Some(2), "{flag}");
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
}

#[test]
fn kafka_topics_from_env_and_command_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("w.db");
    let db = format!("--sqlite-path={}", db.display());
    let mut cmd = webhooks(&["serve", "--listen=127.0.0.1:0", &db]);
    cmd.env("KAFKA_TOPICS", "a b");
    let served = serve(cmd).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(served.listening["kafka_topics"], "a,b", "{}", served.listening);
    drop(served);
    let mut cmd = webhooks(&["serve", "--listen=127.0.0.1:0", &db, "--kafka-topics", "c"]);
    cmd.env("KAFKA_TOPICS", "a b");
    let served = serve(cmd).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(served.listening["kafka_topics"], "c", "{}", served.listening);
}

#[test]
fn without_storage_flags_serves_on_a_fresh_sqlite_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = webhooks(&["serve", "--listen=127.0.0.1:0"]);
    cmd.current_dir(dir.path());
    let served = serve(cmd).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(served.listening["storage"], "sqlite");
    assert!(dir.path().join("webhooks.db").exists());
    assert_eq!(
        get(&served.addr, "/configs"),
        (200, "{\"cursor\":{\"hasMore\":false,\"data\":[]}}\n".to_owned())
    );
}

#[test]
fn postgres_without_auto_migrate_refuses_an_unmigrated_schema() {
    let db = TestDb::new(Backend::Postgres);
    let out = run(&mut webhooks(&["serve", "--listen=127.0.0.1:0", &db.flag()]));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("webhooks migrate"), "{}", out.stderr);
    assert!(!out.stderr.contains("listening"), "{}", out.stderr);
    // With --auto-migrate the same schema serves.
    let cmd = webhooks(&["serve", "--listen=127.0.0.1:0", "--auto-migrate", &db.flag()]);
    let served = serve(cmd).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(served.listening["storage"], "postgres");
    assert_eq!(get(&served.addr, "/_healthcheck").0, 200);
}

#[test]
fn postgres_uri_is_never_logged_with_its_password() {
    let out = run(&mut webhooks(&[
        "serve",
        "--listen=127.0.0.1:0",
        "--postgres-uri=postgres://someone:s3cr3t-pw@127.0.0.1:1/nope",
    ]));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(!out.stderr.contains("s3cr3t-pw"), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
}

#[test]
fn migrate_creates_the_database_then_serve_accepts_it() {
    let base = url::Url::parse(&postgres_base_url()).unwrap_or_else(|e| panic!("{e}"));
    let name = format!("webhooks_it_{}", uuid::Uuid::new_v4().simple());
    let mut target = base.clone();
    target.set_path(&format!("/{name}"));
    let out = run(&mut webhooks(&["migrate", &format!("--postgres-uri={target}")]));
    let cleanup = || {
        let mut admin = admin_connection(base.as_str());
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin);
    };
    if out.code != Some(0) {
        cleanup();
        panic!("migrate failed: {}", out.stderr);
    }
    let served = serve(webhooks(&[
        "serve",
        "--listen=127.0.0.1:0",
        &format!("--postgres-uri={target}"),
    ]));
    let result = served.map(|s| get(&s.addr, "/configs").0);
    cleanup();
    assert_eq!(result, Ok(200));
    // Migrating again is a no-op.
}

/// `webhooks migrate` on a new SQLite file in a temporary directory (kept while the first
/// value lives).
fn migrate_a_new_sqlite_file() -> (tempfile::TempDir, std::path::PathBuf, Output) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("m.db");
    let out = run(&mut webhooks(&[
        "migrate",
        &format!("--sqlite-path={}", path.display()),
    ]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    (dir, path, out)
}

// Text logs read from a file, a pipe or a container runtime carry no terminal colour codes.
#[test]
fn text_logs_off_a_terminal_have_no_colour_codes() {
    let (_dir, _, out) = migrate_a_new_sqlite_file();
    assert!(out.stderr.contains("migrations applied"), "{}", out.stderr);
    assert!(
        !out.stderr.contains('\u{1b}'),
        "escape codes in: {:?}",
        out.stderr
    );
}

#[test]
fn migrate_creates_the_sqlite_file() {
    let (_dir, path, _) = migrate_a_new_sqlite_file();
    assert!(path.exists());
}
