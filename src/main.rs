//! Parse the command line, start logging, dispatch. Exit codes: 0 normal end, 1 runtime failure,
//! 2 usage error (spec §1.5).

use std::process::ExitCode;

use webhooks::cli::{self, Command, Parsed};
use webhooks::config::{LogSettings, Settings, StorageSettings};
use webhooks::{serve, store, telemetry};

fn main() -> ExitCode {
    let (cli, provenance) = match cli::parse(std::env::args_os(), |k| std::env::var(k).ok()) {
        Ok(Parsed::Run(cli, provenance)) => (cli, provenance),
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage(&e),
    };
    let (result, role) = match cli.command {
        Command::Version => {
            println!(
                "Version: {}\nDate: {}\nCommit: {}",
                webhooks::VERSION,
                webhooks::BUILD_DATE,
                webhooks::COMMIT
            );
            return ExitCode::SUCCESS;
        }
        Command::Migrate(args) => {
            let _ = telemetry::init(&LogSettings::from_args(&args.log), None);
            return outcome(migrate(&StorageSettings::from_args(&args.storage)));
        }
        Command::Serve(args) => (Settings::from_args(args, &provenance), serve::Role::Serve),
        Command::Worker(args) => (Settings::from_args(args, &provenance), serve::Role::Worker),
    };
    let settings = match result {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let result = runtime().and_then(|rt| {
        // Trace exporters connect through the runtime: set up inside it.
        let tracing = {
            let _inside = rt.enter();
            match telemetry::init(&settings.log, settings.traces.as_ref()) {
                Ok(t) => t,
                Err(e) => {
                    let _ = telemetry::init(&settings.log, None);
                    return Err(e.context("cannot set up trace export"));
                }
            }
        };
        let result = rt.block_on(serve::run(settings, role));
        if let Some(tracing) = tracing {
            tracing.shutdown();
        }
        // A stop cut short (deadline, second signal) leaves work behind, database calls on the
        // blocking pool among it: exit now rather than wait for them.
        rt.shutdown_background();
        result
    });
    outcome(result)
}

fn usage(e: &cli::UsageError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(2)
}

fn outcome(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the causes (libpq's messages span several).
            let message = format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ");
            tracing::error!("{message}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn migrate(storage: &StorageSettings) -> anyhow::Result<()> {
    match storage {
        StorageSettings::Postgres { uri } => store::migrate::migrate_postgres(uri)?,
        StorageSettings::Sqlite { .. } => {
            store::Store::open(storage, store::Migrations::Apply)?;
        }
    }
    tracing::info!(storage = storage.kind(), "migrations applied");
    Ok(())
}
