//! What every procedure shares: the binary, the services, where logs go, and the list of
//! secrets that no log line may contain.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::process::{LogStyle, Process};
use crate::services::{Postgres, Tansu};
use crate::Sizes;

/// A value that must never reach a log line, and what it is.
#[derive(Debug, Clone)]
pub struct Secret {
    pub kind: &'static str,
    pub value: String,
}

pub struct Ctx {
    pub bin: PathBuf,
    /// target/faults: figures, logs, databases, reports.
    pub work: PathBuf,
    pub logs: PathBuf,
    pub pg: Postgres,
    pub tansu: tokio::sync::Mutex<Tansu>,
    pub sizes: Sizes,
    pub smoke: bool,
    pub schemathesis: PathBuf,
    pub openapi: PathBuf,
    /// Given to every process in the environment (`PUBLISHER_KAFKA_SASL_PASSWORD`) although SASL
    /// is off against these brokers: a password that is configured must not be logged either.
    pub sasl_password: String,
    secrets: Mutex<Vec<Secret>>,
    spawned: AtomicUsize,
    styles_used: Mutex<Vec<LogStyle>>,
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set: run the fault procedures with ./scripts/faults.sh"))
}

impl Ctx {
    pub async fn start(sizes: Sizes, smoke: bool) -> anyhow::Result<Ctx> {
        let work = PathBuf::from(var("FAULTS_DIR")?);
        let logs = work.join("logs");
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs)?;
        let pg_port: u16 = var("FAULTS_PG_PORT")?.parse()?;
        let kafka_port: u16 = var("FAULTS_KAFKA_PORT")?.parse()?;
        eprintln!("==> PostgreSQL on 127.0.0.1:{pg_port} (password roles), tansu on 127.0.0.1:{kafka_port}");
        let pg_dir = PathBuf::from(format!("/tmp/webhooks-faults-pg-{pg_port}"));
        let pg = {
            let bin = PathBuf::from(var("FAULTS_PG_BIN")?);
            tokio::task::spawn_blocking(move || Postgres::start_new(&bin, pg_port, &pg_dir)).await??
        };
        let tansu = Tansu::start_new(
            &PathBuf::from(var("FAULTS_TANSU")?),
            kafka_port,
            &PathBuf::from(format!("/tmp/webhooks-faults-kafka-{kafka_port}")),
        )
        .await?;
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let ctx = Ctx {
            bin: PathBuf::from(var("FAULTS_BIN")?),
            work,
            logs,
            pg,
            tansu: tokio::sync::Mutex::new(tansu),
            sizes,
            smoke,
            schemathesis: PathBuf::from(var("FAULTS_SCHEMATHESIS")?),
            openapi: root.join("openapi.yaml"),
            sasl_password: format!("sasl{}", uuid::Uuid::new_v4().simple()),
            secrets: Mutex::default(),
            spawned: AtomicUsize::new(0),
            styles_used: Mutex::default(),
        };
        for p in ctx.pg.passwords() {
            ctx.secret("PostgreSQL password", p);
        }
        ctx.secret("SASL password", &ctx.sasl_password.clone());
        Ok(ctx)
    }

    /// Remembers a value the logs must not contain.
    pub fn secret(&self, kind: &'static str, value: &str) {
        if value.is_empty() {
            return;
        }
        if let Ok(mut s) = self.secrets.lock() {
            s.push(Secret {
                kind,
                value: value.to_owned(),
            });
        }
    }

    pub fn secrets(&self) -> Vec<Secret> {
        self.secrets.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn styles_used(&self) -> Vec<LogStyle> {
        self.styles_used.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Starts `webhooks <args>` with the next log style in turn (text/JSON × info/debug) and
    /// waits until `/_healthcheck` answers 200.
    pub async fn spawn(&self, name: &str, args: &[String]) -> anyhow::Result<Process> {
        let p = self.spawn_unchecked(name, args)?;
        p.wait_healthy(Duration::from_secs(90)).await?;
        Ok(p)
    }

    /// Starts a process without waiting for its health.
    pub fn spawn_unchecked(&self, name: &str, args: &[String]) -> anyhow::Result<Process> {
        let n = self.spawned.fetch_add(1, Ordering::SeqCst);
        let style = LogStyle::ALL[n % LogStyle::ALL.len()];
        if let Ok(mut s) = self.styles_used.lock() {
            if !s.contains(&style) {
                s.push(style);
            }
        }
        let log = self.logs.join(format!("{n:03}-{name}.log"));
        Process::spawn(&self.bin, args, style, &log, &self.sasl_password, name)
    }

    /// `webhooks migrate` for a PostgreSQL URI (creates the database when missing).
    pub async fn migrate(&self, url: &str) -> anyhow::Result<()> {
        let n = self.spawned.fetch_add(1, Ordering::SeqCst);
        let style = LogStyle::ALL[n % LogStyle::ALL.len()];
        let log = self.logs.join(format!("{n:03}-migrate.log"));
        let mut p = Process::spawn_command(
            &self.bin,
            &["migrate".to_owned(), format!("--postgres-uri={url}")],
            style,
            &log,
            &self.sasl_password,
            "migrate",
        )?;
        match p.wait_exit(Duration::from_secs(120)).await? {
            Some(0) => Ok(()),
            code => bail!("webhooks migrate exited with {code:?}; see {}", log.display()),
        }
    }

    /// "2 cores, 23 GiB, <CPU model>; commit <sha>".
    pub fn machine(&self) -> String {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or_else(|| "?".to_owned(), |kb| format!("{:.0} GiB", kb / 1_048_576.0));
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "?".to_owned());
        let commit = std::env::var("FAULTS_COMMIT").unwrap_or_else(|_| "?".to_owned());
        format!("{cores} cores, {mem}, {cpu}; commit {commit}")
    }

    pub async fn stop(&self) {
        let _ = self.tansu.lock().await.stop().await;
    }
}

/// Polls `done` every 50 ms until it holds; fails after `deadline` naming `what`.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let end = std::time::Instant::now() + deadline;
    while !done().await? {
        if std::time::Instant::now() > end {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The median and the largest of some durations, in seconds.
pub fn median_max(values: &[Duration]) -> (f64, f64) {
    let mut v: Vec<f64> = values.iter().map(Duration::as_secs_f64).collect();
    v.sort_by(f64::total_cmp);
    let median = v.get(v.len() / 2).copied().unwrap_or(0.0);
    (median, v.last().copied().unwrap_or(0.0))
}

/// The arguments of a webhooks process (`command`: `serve --worker` or `worker`) consuming
/// `topic` on `bootstrap` as a member of `group`, loopback endpoints allowed; `extra` after them.
pub fn consumer_args(
    command: &[&str],
    bootstrap: &str,
    topic: &str,
    group: &str,
    extra: Vec<String>,
) -> Vec<String> {
    let mut args: Vec<String> = command.iter().map(|c| (*c).to_owned()).collect();
    args.extend([
        "--publisher-kafka-enabled".to_owned(),
        format!("--publisher-kafka-broker={bootstrap}"),
        format!("--kafka-topics={topic}"),
        format!("--publisher-queue-group={group}"),
        "--allow-private-endpoints".to_owned(),
    ]);
    args.extend(extra);
    args
}
