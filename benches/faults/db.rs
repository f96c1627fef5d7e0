//! The procedures' databases, read directly (past the service) to check what was stored.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::Context as _;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection as _, QueryableByName, RunQueryDsl as _};

use crate::ctx::Ctx;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        }
    }
}

/// A fresh database for one procedure: a PostgreSQL database (created by `webhooks migrate`,
/// reached with the password role) or a SQLite file.
pub struct Db {
    pub backend: Backend,
    /// The flag that points a process at it.
    pub flag: String,
    /// How the driver reads it (PostgreSQL: the superuser).
    read_url: String,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct DeliveryRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = Text)]
    pub idempotency_key: String,
    #[diesel(sql_type = Text)]
    pub payload: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub last_error: String,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct AttemptRow {
    #[diesel(sql_type = Text)]
    pub error: String,
    #[diesel(sql_type = Text)]
    pub response_excerpt: String,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct Count {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct SecretRow {
    #[diesel(sql_type = Text)]
    pub secret: String,
    #[diesel(sql_type = Text)]
    pub previous: String,
}

const DELIVERY_COLUMNS: &str = "id, event_id, event_type, idempotency_key, payload, status, last_error";

impl Db {
    pub async fn new(ctx: &Ctx, backend: Backend, name: &str) -> anyhow::Result<Db> {
        match backend {
            Backend::Postgres => {
                let url = ctx.pg.url(name);
                ctx.migrate(&url).await?;
                Ok(Db {
                    backend,
                    flag: format!("--postgres-uri={url}"),
                    read_url: ctx.pg.admin_url(name),
                })
            }
            Backend::Sqlite => {
                let dir = ctx.work.join("db");
                std::fs::create_dir_all(&dir)?;
                let path: PathBuf = dir.join(format!("{name}.db"));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Ok(Db {
                    backend,
                    flag: format!("--sqlite-path={}", path.display()),
                    read_url: path.display().to_string(),
                })
            }
        }
    }

    /// The PostgreSQL URL the driver reads with (superuser).
    pub fn read_url(&self) -> &str {
        &self.read_url
    }

    /// Runs a read query on a fresh connection.
    pub async fn query<T>(&self, sql: String) -> anyhow::Result<Vec<T>>
    where
        T: QueryableByName<diesel::pg::Pg> + QueryableByName<diesel::sqlite::Sqlite> + Send + 'static,
    {
        let (backend, url) = (self.backend, self.read_url.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<T>> {
            match backend {
                Backend::Postgres => {
                    let mut c = diesel::PgConnection::establish(&url)?;
                    Ok(diesel::sql_query(&sql)
                        .load(&mut c)
                        .with_context(|| sql.clone())?)
                }
                Backend::Sqlite => {
                    let mut c = diesel::SqliteConnection::establish(&url)?;
                    diesel::sql_query("PRAGMA busy_timeout = 10000").execute(&mut c)?;
                    Ok(diesel::sql_query(&sql)
                        .load(&mut c)
                        .with_context(|| sql.clone())?)
                }
            }
        })
        .await?
    }

    pub async fn deliveries(&self, where_clause: &str) -> anyhow::Result<Vec<DeliveryRow>> {
        self.query(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {where_clause}"
        ))
        .await
    }

    /// The ids of the config's deliveries stored `succeeded`.
    pub async fn succeeded_ids(&self, config_id: &str) -> anyhow::Result<HashSet<String>> {
        let rows = self
            .deliveries(&format!("config_id = '{config_id}' AND status = 'succeeded'"))
            .await?;
        Ok(rows.into_iter().map(|d| d.id).collect())
    }

    pub async fn attempts_of_config(&self, config_id: &str) -> anyhow::Result<Vec<AttemptRow>> {
        self.query(format!(
            "SELECT a.error, a.response_excerpt \
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.config_id = '{config_id}'"
        ))
        .await
    }

    pub async fn count(&self, sql_from_where: &str) -> anyhow::Result<i64> {
        let rows: Vec<Count> = self
            .query(format!("SELECT COUNT(*) AS n FROM {sql_from_where}"))
            .await?;
        Ok(rows.first().map_or(0, |c| c.n))
    }

    /// Every config secret stored (current and overlapping previous ones).
    pub async fn secrets(&self) -> anyhow::Result<Vec<String>> {
        let rows: Vec<SecretRow> = self
            .query("SELECT secret, COALESCE(previous_secret, '') AS previous FROM configs".to_owned())
            .await?;
        Ok(rows
            .into_iter()
            .flat_map(|r| [r.secret, r.previous])
            .filter(|s| !s.is_empty())
            .collect())
    }

    /// Records every config secret of this database as a value the logs must not contain.
    pub async fn remember_secrets(&self, ctx: &Ctx) -> anyhow::Result<usize> {
        let secrets = self.secrets().await?;
        for s in &secrets {
            ctx.secret("config secret", s);
        }
        Ok(secrets.len())
    }
}

/// The delivery id of spec §4.3, computed here independently of the service's code.
pub fn delivery_id(event_id: &str, config_id: &str) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x9261fc23_d017_5136_8151_88dd792780bb);
    uuid::Uuid::new_v5(&NAMESPACE, format!("{event_id}/{config_id}").as_bytes()).to_string()
}

/// `'a', 'b', …` for an `IN (…)` list of ids (UUIDs: nothing to escape, checked).
pub fn in_list(ids: &[String]) -> String {
    ids.iter()
        .filter(|id| id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",")
}
