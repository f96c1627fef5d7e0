//! Storage: one interface, two backends (PostgreSQL for production, embedded SQLite by default).
//!
//! Both backends share `schema.rs` and the queries in `queries/` (one file per concern); column
//! types that differ are hidden by the SQL types of `types.rs`. diesel is synchronous, so every
//! call runs on tokio's blocking pool through [`Store::run`], with an r2d2 pool bounding the
//! connections: no tokio worker thread ever waits on the database.
//!
//! Error policy: queries return `diesel` errors; [`StoreError`] adds the pool and task failures,
//! and tells a database that is unavailable (retry later) from one that refused what it was given
//! ([`StoreError::failure`], spec §4.8, §10.3). "Not found" is not an error here: lookups return
//! `Option`/`bool` and the API decides.

mod changes;
pub mod migrate;
pub mod model;
mod queries;
pub mod schema;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use diesel::pg::PgConnection;
// r2d2 would log every failed connection attempt on its own, over several lines; the
// errors reach callers through `get()` and are logged once there.
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, NopErrorHandler, Pool};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;

use crate::config::StorageSettings;
pub use changes::LISTENER_NAME;
pub use queries::{
    Applied, BulkReplay, BulkReplayed, ClaimLimits, ConfigFilter, ConfigHealth, DeliveryFilter, Queries,
    ReplayOutcome,
};

type PgPool = Pool<ConnectionManager<PgConnection>>;
type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database connection unavailable: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection failed: {0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("the database schema is not up to date: run `webhooks migrate` (or start with --auto-migrate)")]
    PendingMigrations,
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Why a statement failed, as far as what to do next is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The database cannot be reached or cannot take writes now: retry later (spec §4.8).
    Unavailable,
    /// The database refused what it was given (a constraint, a value): retrying the same thing
    /// fails the same way (spec §10.3).
    Refused,
    /// The error alone does not say; a probe of the database decides.
    Unclear,
}

impl StoreError {
    pub fn failure(&self) -> Failure {
        use diesel::result::{DatabaseErrorKind as Kind, Error as E};
        match self {
            StoreError::Pool(_)
            | StoreError::Connection(_)
            | StoreError::Task(_)
            | StoreError::Migration(_)
            | StoreError::PendingMigrations => Failure::Unavailable,
            StoreError::Query(e) => match e {
                E::DatabaseError(
                    Kind::UniqueViolation
                    | Kind::ForeignKeyViolation
                    | Kind::NotNullViolation
                    | Kind::CheckViolation,
                    _,
                ) => Failure::Refused,
                E::DatabaseError(
                    Kind::UnableToSendCommand
                    | Kind::SerializationFailure
                    | Kind::ReadOnlyTransaction
                    | Kind::ClosedConnection,
                    _,
                ) => Failure::Unavailable,
                E::SerializationError(_) | E::DeserializationError(_) | E::QueryBuilderError(_) => {
                    Failure::Refused
                }
                E::RollbackErrorOnCommit { .. } | E::BrokenTransactionManager => Failure::Unavailable,
                _ => Failure::Unclear,
            },
        }
    }

    /// What to log of a refusal: the backend's classification and the constraint, table and
    /// column it names — never the message, which may quote values (spec §10.3).
    pub fn refusal_code(&self) -> String {
        match self {
            StoreError::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                let mut code = format!("{kind:?}");
                for (name, value) in [
                    ("table", info.table_name()),
                    ("column", info.column_name()),
                    ("constraint", info.constraint_name()),
                ] {
                    if let Some(v) = value {
                        code.push_str(&format!(" {name}={v}"));
                    }
                }
                code
            }
            StoreError::Query(e) => match e {
                diesel::result::Error::SerializationError(_) => "SerializationError".to_owned(),
                diesel::result::Error::DeserializationError(_) => "DeserializationError".to_owned(),
                diesel::result::Error::QueryBuilderError(_) => "QueryBuilderError".to_owned(),
                _ => "QueryError".to_owned(),
            },
            _ => "Unavailable".to_owned(),
        }
    }
}

enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Whether to apply pending migrations when opening the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    Apply,
    RequireCurrent,
}

/// A cheap, cloneable handle on the database.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
    /// Signalled after every config change made through this handle (in-process cache refresh).
    config_changes_signal: Arc<tokio::sync::Notify>,
    /// Config changes counted for in-memory copies (see `changes.rs`).
    config_changes: Arc<changes::ConfigChanges>,
    /// Where the config change listener connects (PostgreSQL only).
    postgres_uri: Option<String>,
    /// Signalled when deliveries became due sooner than planned (new pending rows, replays):
    /// wakes the in-process retry sweep.
    deliveries_due: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

/// How long a caller waits for a pooled connection before the store counts as unavailable.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Connects (blocking) and checks or applies migrations. SQLite always migrates.
    pub fn open(settings: &StorageSettings, migrations: Migrations) -> Result<Store, StoreError> {
        let postgres_uri = match settings {
            StorageSettings::Postgres { uri } => Some(uri.clone()),
            StorageSettings::Sqlite { .. } => None,
        };
        let backend = match settings {
            StorageSettings::Postgres { uri } => {
                let pool = Pool::builder()
                    .max_size(16)
                    .min_idle(Some(1))
                    .connection_timeout(CONNECTION_TIMEOUT)
                    .error_handler(Box::new(NopErrorHandler))
                    .build(ConnectionManager::<PgConnection>::new(uri))?;
                let mut conn = pool.get()?;
                match migrations {
                    Migrations::Apply => migrate::run_postgres(&mut conn)?,
                    Migrations::RequireCurrent => {
                        if migrate::postgres_pending(&mut conn)? {
                            return Err(StoreError::PendingMigrations);
                        }
                    }
                }
                Backend::Postgres(pool)
            }
            StorageSettings::Sqlite { path } => {
                let pool = Pool::builder()
                    .max_size(8)
                    .connection_timeout(CONNECTION_TIMEOUT)
                    .connection_customizer(Box::new(SqlitePragmas))
                    .error_handler(Box::new(NopErrorHandler))
                    .build(ConnectionManager::<SqliteConnection>::new(path))?;
                migrate::run_sqlite(&mut *pool.get()?)?;
                Backend::Sqlite(pool)
            }
        };
        Ok(Store {
            backend: Arc::new(backend),
            config_changes_signal: Arc::default(),
            config_changes: Arc::default(),
            postgres_uri,
            deliveries_due: Arc::default(),
        })
    }

    pub fn kind(&self) -> &'static str {
        match &*self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// Write transactions worth running at once. PostgreSQL: two, so the server works on one
    /// while the other waits on a round trip or its commit. SQLite has one writer: a second
    /// transaction would only wait for the lock in its busy handler's sleeps.
    pub fn concurrent_writers(&self) -> usize {
        match &*self.backend {
            Backend::Postgres(_) => 2,
            Backend::Sqlite(_) => 1,
        }
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut dyn Queries) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let backend = Arc::clone(&self.backend);
        tokio::task::spawn_blocking(move || match &*backend {
            Backend::Postgres(pool) => f(&mut *pool.get()?),
            Backend::Sqlite(pool) => f(&mut *pool.get()?),
        })
        .await?
    }

    /// Runs a config write (the API's, auto-disable's) and then tells this process's copies of
    /// the configs at once, before the caller answers: its next match and its next
    /// `GET /configs` see the change (spec §2.5, §4.4).
    pub async fn change_configs<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut dyn Queries) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let result = self.run(f).await;
        // Also after a failure: the transaction's outcome is unknown when the link broke at commit.
        self.notify_config_change();
        result
    }

    /// How many config changes this process has learnt of, whether or not other processes'
    /// changes are followed: the worker compares it before matching, so a change this process
    /// made is seen by the next record it matches.
    pub fn config_changes_seen(&self) -> u64 {
        self.config_changes.seen()
    }

    /// Tells in-process config caches that configs changed.
    pub fn notify_config_change(&self) {
        self.config_changes.bump();
        self.config_changes_signal.notify_one();
    }

    /// Wakes the worker's config cache after a change made in this process.
    pub fn config_changes(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.config_changes_signal)
    }

    /// How many config changes this process has learnt of: equal values mean no change in
    /// between. None while changes made by other processes are not followed
    /// ([`Store::follow_config_changes`] not running, or its connection down).
    pub fn config_generation(&self) -> Option<u64> {
        self.config_changes.current()
    }

    /// Wakes the in-process retry sweep: something is due now.
    pub fn notify_due(&self) {
        self.deliveries_due.notify_one();
    }

    pub fn due_notifications(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.deliveries_due)
    }

    /// Probes the database with a query on the schema (used by `/_healthcheck`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|q| Ok(q.ping()?)).await
    }
}

/// Per-connection SQLite settings: WAL so readers never block the writer, a busy timeout so
/// writers queue instead of failing, and enforced foreign keys (spec §3). The WAL is copied
/// back into the database every 10,000 pages (40 MiB) instead of SQLite's 1,000: a commit that
/// checkpoints does it inline, and with the default that was 15 % of the worker's CPU, mostly
/// copying the same index pages again and again.
#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 10000;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens a single PostgreSQL connection (used by `migrate`, which may first create the database).
pub fn connect_postgres(uri: &str) -> Result<PgConnection, diesel::ConnectionError> {
    PgConnection::establish(uri)
}
