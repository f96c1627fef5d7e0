//! The services the procedures stop and start: a throwaway PostgreSQL server (password-protected
//! roles, so there is a password to look for in the logs) and the tansu broker, each on a data
//! directory that survives its restarts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// Whether this process runs as root (`id -u`: the crate forbids the unsafe libc call).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a command to completion; its output goes to `log`.
fn run_logged(mut cmd: Command, log: &Path, what: &str) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let status = cmd
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(20).collect();
        bail!(
            "{what} failed ({status}); last lines of {}:\n{}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`; returns when it first
/// did (polled every 10 ms). A connection to itself does not count: with nothing listening, a
/// client whose ephemeral port happens to be `port` connects to itself (TCP simultaneous open).
pub async fn wait_for_port(port: u16, deadline: Duration) -> anyhow::Result<Instant> {
    let end = Instant::now() + deadline;
    loop {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            if c.local_addr().ok() != c.peer_addr().ok() {
                return Ok(Instant::now());
            }
        }
        if Instant::now() > end {
            bail!("nothing listens on 127.0.0.1:{port} after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A PostgreSQL server in a directory of its own: the superuser `postgres` and the service's
/// role `webhooks` (CREATEDB, so `webhooks migrate` creates the databases) both log in over
/// TCP with a password (scram-sha-256).
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    admin_password: String,
    pub role_password: String,
}

impl Postgres {
    pub fn start_new(bin: &Path, port: u16, dir: &Path) -> anyhow::Result<Postgres> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let as_postgres = is_root();
        let pg = Postgres {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            port,
            as_postgres,
            admin_password: format!("pgadmin{}", uuid::Uuid::new_v4().simple()),
            role_password: format!("pgrole{}", uuid::Uuid::new_v4().simple()),
        };
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", pg.admin_password))?;
        if as_postgres {
            // PostgreSQL refuses to run as root.
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir)
                .status()?;
            if !status.success() {
                bail!("cannot hand {} to the postgres user", dir.display());
            }
        }
        let mut initdb = pg.command("initdb");
        initdb
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        run_logged(initdb, &dir.join("initdb.log"), "initdb")?;
        let _ = std::fs::remove_file(&pwfile);
        pg.start()?;
        let mut admin = pg.admin("postgres")?;
        use diesel::RunQueryDsl as _;
        diesel::sql_query(format!(
            "CREATE ROLE webhooks LOGIN CREATEDB PASSWORD '{}'",
            pg.role_password
        ))
        .execute(&mut admin)?;
        Ok(pg)
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// The server's own log (every process's lines are searched for secrets).
    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Starts on the existing data directory and returns once it accepts connections.
    pub fn start(&self) -> anyhow::Result<()> {
        let mut c = self.command("pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
                self.port,
                self.dir.display()
            ))
            .arg("start");
        run_logged(c, &self.dir.join("pg_ctl.log"), "pg_ctl start")
    }

    /// A fast stop: open connections are cut, as a crash or a failover would.
    pub fn stop(&self) -> anyhow::Result<()> {
        let mut c = self.command("pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        run_logged(c, &self.dir.join("pg_ctl.log"), "pg_ctl stop")
    }

    /// The service's URI for `database` (created by `webhooks migrate` when missing).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://webhooks:{}@127.0.0.1:{}/{database}",
            self.role_password, self.port
        )
    }

    pub fn admin_url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{database}",
            self.admin_password, self.port
        )
    }

    pub fn admin(&self, database: &str) -> anyhow::Result<diesel::PgConnection> {
        use diesel::Connection as _;
        diesel::PgConnection::establish(&self.admin_url(database))
            .with_context(|| format!("cannot connect to PostgreSQL database {database}"))
    }

    /// The passwords a log line must never contain.
    pub fn passwords(&self) -> [&str; 2] {
        [&self.admin_password, &self.role_password]
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut c = self.command("pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = c.status();
    }
}

/// The tansu broker on 127.0.0.1:`port`, storing its log in SQLite in `dir` (kept across
/// restarts: "started again on the same data").
pub struct Tansu {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Tansu {
    pub async fn start_new(bin: &Path, port: u16, dir: &Path) -> anyhow::Result<Tansu> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let mut t = Tansu {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            port,
            child: None,
        };
        t.start().await?;
        Ok(t)
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    /// Starts on the existing data directory; returns when the port first accepted a connection.
    pub async fn start(&mut self) -> anyhow::Result<Instant> {
        if self.child.is_some() {
            bail!("tansu is already running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())?;
        let url = format!("tcp://127.0.0.1:{}", self.port);
        // tansu resolves the sqlite:// path against its working directory.
        let child = Command::new(&self.bin)
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .env_remove("CLUSTER_ID")
            .env_remove("STORAGE_ENGINE")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.child = Some(child);
        let up = wait_for_port(self.port, Duration::from_secs(60)).await?;
        // It may have failed to bind (and panicked) while something else holds the port.
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(c) = self.child.as_mut() {
            if let Some(status) = c.try_wait()? {
                bail!("tansu exited ({status}); see {}", self.log().display());
            }
        }
        Ok(up)
    }

    /// Stops the broker at once: SIGKILL, as a crash or a lost host would. (tansu 0.6 answers
    /// a SIGTERM by closing its storage first and then refusing every request, with errors and
    /// a panic, for about 5 s before it exits.) Its SQLite log keeps what it acknowledged.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("tansu is not running");
        };
        child.kill()?;
        child.wait()?;
        Ok(())
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
