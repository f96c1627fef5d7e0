//! `webhooks` child processes: every line they log goes to a file (searched for secrets at the
//! end), in one of four styles taken in turn, so the run covers text and JSON at info and debug.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// How a process logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LogStyle {
    TextInfo,
    JsonDebug,
    TextDebug,
    JsonInfo,
}

impl LogStyle {
    pub const ALL: [LogStyle; 4] = [
        LogStyle::TextInfo,
        LogStyle::JsonDebug,
        LogStyle::TextDebug,
        LogStyle::JsonInfo,
    ];

    fn flags(self) -> [&'static str; 2] {
        match self {
            LogStyle::TextInfo => ["--json-formatting-logger=false", "--log-level=info"],
            LogStyle::JsonDebug => ["--json-formatting-logger", "--debug"],
            LogStyle::TextDebug => ["--json-formatting-logger=false", "--debug"],
            LogStyle::JsonInfo => ["--json-formatting-logger", "--log-level=info"],
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// A running `webhooks` process (killed when dropped).
pub struct Process {
    child: Child,
    pub name: String,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub log: std::path::PathBuf,
    client: reqwest::Client,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Process {
    /// `webhooks <args> --listen=127.0.0.1:<free port>` with the style's log flags.
    pub fn spawn(
        bin: &Path,
        args: &[String],
        style: LogStyle,
        log: &Path,
        sasl_password: &str,
        name: &str,
    ) -> anyhow::Result<Process> {
        let port = free_port()?;
        let mut all = args.to_vec();
        all.push(format!("--listen=127.0.0.1:{port}"));
        let mut p = Process::spawn_command(bin, &all, style, log, sasl_password, name)?;
        p.base = format!("http://127.0.0.1:{port}");
        Ok(p)
    }

    /// `webhooks <args>` (no `--listen`: for `migrate`).
    pub fn spawn_command(
        bin: &Path,
        args: &[String],
        style: LogStyle,
        log: &Path,
        sasl_password: &str,
        name: &str,
    ) -> anyhow::Result<Process> {
        let file = std::fs::File::create(log)?;
        let child = Command::new(bin)
            .args(args)
            .args(style.flags())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PUBLISHER_KAFKA_SASL_PASSWORD", sasl_password)
            .env("PUBLISHER_KAFKA_SASL_USERNAME", "faults")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(Process {
            child,
            name: name.to_owned(),
            base: String::new(),
            log: log.to_owned(),
            client: client(),
        })
    }

    /// The status of `GET /_healthcheck`; 0 when no answer came within 5 s.
    pub async fn health(&self) -> u16 {
        match tokio::time::timeout(
            Duration::from_secs(5),
            self.client.get(format!("{}/_healthcheck", self.base)).send(),
        )
        .await
        {
            Ok(Ok(r)) => r.status().as_u16(),
            _ => 0,
        }
    }

    pub async fn wait_healthy(&self, deadline: Duration) -> anyhow::Result<()> {
        let end = Instant::now() + deadline;
        loop {
            if self.health().await == 200 {
                return Ok(());
            }
            if Instant::now() > end {
                bail!(
                    "{} did not become healthy within {deadline:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no chance to flush, store or commit anything.
    pub fn kill_9(&mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -9 {} failed", self.child.id());
        }
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then the exit code (None if killed by a signal); fails past `deadline`.
    pub async fn terminate(mut self, deadline: Duration) -> anyhow::Result<Option<i32>> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait_exit(deadline).await
    }

    pub async fn wait_exit(&mut self, deadline: Duration) -> anyhow::Result<Option<i32>> {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() > end {
                bail!("{} did not exit within {deadline:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?)
    }

    /// `POST /configs`; returns the config's id and secret.
    pub async fn create_config(
        &self,
        endpoint: &str,
        event_types: &[&str],
    ) -> anyhow::Result<(String, String)> {
        let body = serde_json::json!({ "endpoint": endpoint, "eventTypes": event_types });
        let resp = self
            .client
            .post(format!("{}/configs", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("POST /configs answered {status}: {text}");
        }
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let id = v["data"]["id"].as_str().unwrap_or_default().to_owned();
        let secret = v["data"]["secret"].as_str().unwrap_or_default().to_owned();
        if id.is_empty() || secret.is_empty() {
            bail!("POST /configs: no id or secret in {text}");
        }
        Ok((id, secret))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A series' value in Prometheus text (`name{labels}`), 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// One `/_healthcheck` answer: when it was asked, when it was answered, the status (0: none).
#[derive(Debug, Clone, Copy)]
pub struct HealthSample {
    pub asked: Instant,
    pub answered: Instant,
    pub status: u16,
}

/// Samples `/_healthcheck` of a process every 250 ms until stopped.
pub struct HealthSampler {
    samples: std::sync::Arc<std::sync::Mutex<Vec<HealthSample>>>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl HealthSampler {
    pub fn start(base: &str) -> HealthSampler {
        let samples: std::sync::Arc<std::sync::Mutex<Vec<HealthSample>>> = Default::default();
        let stop = tokio_util::sync::CancellationToken::new();
        let (s, st, url) = (samples.clone(), stop.clone(), format!("{base}/_healthcheck"));
        let task = tokio::spawn(async move {
            let client = client();
            while !st.is_cancelled() {
                let asked = Instant::now();
                let status = match tokio::time::timeout(Duration::from_secs(5), client.get(&url).send()).await
                {
                    Ok(Ok(r)) => r.status().as_u16(),
                    _ => 0,
                };
                if let Ok(mut v) = s.lock() {
                    v.push(HealthSample {
                        asked,
                        answered: Instant::now(),
                        status,
                    });
                }
                tokio::select! {
                    () = st.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        });
        HealthSampler { samples, stop, task }
    }

    pub async fn finish(self) -> Vec<HealthSample> {
        self.stop.cancel();
        let _ = self.task.await;
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }
}
