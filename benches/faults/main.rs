//! The fault procedures of spec §10.5, run against the `webhooks` binary, a PostgreSQL server
//! and a tansu broker that this driver starts and stops itself, librdkafka's mock cluster
//! hosted here, and HTTP receivers on 127.0.0.1. Run it with `./scripts/faults.sh [--smoke]`,
//! which provisions everything and builds the binary.
//!
//! One function per procedure, each returning one row of the figures table:
//!
//! | procedure | module |
//! |---|---|
//! | `kill -9` ×N in the same consumer group | [`kill9::kill_9_in_the_same_group`] |
//! | broker stopped and restarted | [`restarts::broker_restart`] |
//! | PostgreSQL stopped and restarted | [`restarts::postgres_restart`] |
//! | hostile receivers | [`hostile_receivers::hostile_receivers`] |
//! | hostile records (both backends) | [`hostile_records::hostile_records`] |
//! | API fuzzing (both backends, auth off and on) | [`api_fuzz::api_fuzzing`] |
//! | secrets in every log line of the run | [`secrets::secrets_in_logs`] |
//!
//! Every figure that the contract bounds is a check: a run with any check failed prints the
//! table, writes it, and exits 1.

mod api_fuzz;
mod ctx;
mod db;
mod hostile_receivers;
mod hostile_records;
mod kafka;
mod kill9;
mod process;
mod receiver;
mod report;
mod restarts;
mod secrets;
mod services;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use ctx::Ctx;
use report::{Report, Row};

/// Sizes of one run.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Sizes {
    /// Events of the kill -9 run, the kills during it, and how long each worker delivers
    /// (after it got its partitions) before it is killed.
    pub kill_events: usize,
    pub kills: usize,
    pub kill_after: Duration,
    /// How long the broker and PostgreSQL stay down.
    pub outage: Duration,
    /// Events per second published during the restart procedures.
    pub restart_rate: u32,
    /// Events published to the hostile receivers.
    pub hostile_events: usize,
    /// Test cases per operation and per phase of the API fuzzing.
    pub fuzz_examples: usize,
}

const FULL: Sizes = Sizes {
    kill_events: 100_000,
    kills: 10,
    kill_after: Duration::from_secs(8),
    outage: Duration::from_secs(20),
    restart_rate: 400,
    hostile_events: 300,
    fuzz_examples: 100,
};

const SMOKE: Sizes = Sizes {
    kill_events: 5_000,
    kills: 3,
    kill_after: Duration::from_secs(4),
    outage: Duration::from_secs(6),
    restart_rate: 100,
    hostile_events: 40,
    fuzz_examples: 10,
};

fn main() -> ExitCode {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(smoke)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("==> FAILED: a figure of spec §10.5 does not hold (see the table)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("==> the fault procedures could not run: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `FAULTS_ONLY`, when set, runs only the procedures whose names contain it (to iterate on
/// one); a table for RELIABILITY.md needs it unset.
fn wanted(name: &str) -> bool {
    std::env::var("FAULTS_ONLY").map_or(true, |only| only.split(',').any(|o| name.contains(o)))
}

async fn run(smoke: bool) -> anyhow::Result<bool> {
    let sizes = if smoke { SMOKE } else { FULL };
    let started = Instant::now();
    let ctx = Ctx::start(sizes, smoke).await?;
    eprintln!("==> sizes {sizes:?}");
    let mut report = Report::default();
    if wanted("kill9") {
        report.add(guard("kill -9 in the same group", kill9::kill_9_in_the_same_group(&ctx)).await);
    }
    if wanted("broker") {
        report.add(guard("broker restart", restarts::broker_restart(&ctx)).await);
    }
    if wanted("postgres") {
        report.add(guard("PostgreSQL restart", restarts::postgres_restart(&ctx)).await);
    }
    if wanted("receivers") {
        report.add(guard("hostile receivers", hostile_receivers::hostile_receivers(&ctx)).await);
    }
    if wanted("records") {
        for backend in [db::Backend::Postgres, db::Backend::Sqlite] {
            let name = format!("hostile records ({})", backend.name());
            report.add(guard(&name, hostile_records::hostile_records(&ctx, backend)).await);
        }
    }
    if wanted("fuzz") {
        for backend in [db::Backend::Sqlite, db::Backend::Postgres] {
            for auth in [false, true] {
                let name = format!(
                    "API fuzzing ({}, auth {})",
                    backend.name(),
                    if auth { "on" } else { "off" }
                );
                report.add(guard(&name, api_fuzz::api_fuzzing(&ctx, backend, auth)).await);
            }
        }
    }
    // Last: it reads the logs of everything above.
    report.add(guard("secrets in logs", secrets::secrets_in_logs(&ctx)).await);
    ctx.stop().await;
    let ok = report.all_hold();
    report.print(&ctx.machine(), started.elapsed());
    let out = ctx
        .work
        .join(if smoke { "faults-smoke.json" } else { "faults.json" });
    std::fs::write(
        &out,
        serde_json::to_vec_pretty(&report.json(&ctx.machine(), sizes, smoke, started.elapsed()))?,
    )?;
    eprintln!("==> figures written to {}", out.display());
    Ok(ok)
}

/// A procedure that could not run to its end is a failed row, with the reason.
async fn guard(name: &str, procedure: impl std::future::Future<Output = anyhow::Result<Row>>) -> Row {
    eprintln!("==> {name}");
    let started = Instant::now();
    let mut row = match procedure.await {
        Ok(row) => row,
        Err(e) => {
            eprintln!("    ERROR: {e:#}");
            Row::failed(name, format!("{e:#}"))
        }
    };
    row.seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "    {} in {:.0} s",
        if row.holds() { "holds" } else { "DOES NOT HOLD" },
        row.seconds
    );
    row
}
