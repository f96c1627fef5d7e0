//! The queries, written once and compiled for both backends by `backend_queries!`.
//!
//! Where the SQL must differ (write transactions, notifications), each backend passes its own
//! helper to the macro; everything else is one diesel expression checked against both backends.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use crate::domain::config::Config;
use crate::domain::time::Timestamp;
use crate::store::schema::{configs, deliveries};
use crate::store::types::{DbList, DbTime};

/// Exact-match filters of `GET /configs`.
#[derive(Debug, Clone, Default)]
pub struct ConfigFilter {
    pub id: Option<String>,
    pub endpoint: Option<String>,
}

/// Everything the service asks of the database. Object-safe so one `&mut dyn Queries` serves
/// both connection types.
pub trait Queries {
    fn ping(&mut self) -> QueryResult<()>;
    /// Live (not deleted) configs, newest `updated_at` first.
    fn list_configs(&mut self, filter: &ConfigFilter) -> QueryResult<Vec<Config>>;
    /// A live config by id.
    fn get_config(&mut self, id: &str) -> QueryResult<Option<Config>>;
    fn insert_config(&mut self, config: &Config) -> QueryResult<()>;
    /// Replaces endpoint and event types (and the secret when given); false when unknown.
    fn update_config(
        &mut self,
        id: &str,
        endpoint: &str,
        event_types: &[String],
        secret: Option<&str>,
        now: Timestamp,
    ) -> QueryResult<bool>;
    /// Soft delete; cancels the config's pending deliveries in the same transaction.
    fn delete_config(&mut self, id: &str, now: Timestamp) -> QueryResult<bool>;
    /// Sets `active` unless already so; None when unknown.
    fn set_config_active(&mut self, id: &str, active: bool, now: Timestamp) -> QueryResult<Option<Config>>;
    /// Sets the secret unless it is already the current one; None when unknown.
    fn change_config_secret(&mut self, id: &str, secret: &str, now: Timestamp)
        -> QueryResult<Option<Config>>;
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = configs)]
struct ConfigRow {
    id: String,
    endpoint: String,
    secret: String,
    event_types: DbList,
    active: bool,
    name: Option<String>,
    created_at: DbTime,
    updated_at: DbTime,
}

impl From<ConfigRow> for Config {
    fn from(r: ConfigRow) -> Self {
        Config {
            endpoint: r.endpoint,
            secret: r.secret,
            event_types: r.event_types.0,
            id: r.id,
            active: r.active,
            name: r.name,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        }
    }
}

macro_rules! backend_queries {
    ($conn:ty, $write_tx:ident, $configs_changed:path) => {
        fn live_config(conn: &mut $conn, id: &str) -> QueryResult<Option<Config>> {
            configs::table
                .filter(configs::id.eq(id))
                .filter(configs::deleted_at.is_null())
                .select(ConfigRow::as_select())
                .first::<ConfigRow>(conn)
                .optional()
                .map(|row| row.map(Config::from))
        }

        impl Queries for $conn {
            fn ping(&mut self) -> QueryResult<()> {
                configs::table
                    .select(configs::id)
                    .filter(configs::id.eq(""))
                    .first::<String>(self)
                    .optional()
                    .map(|_| ())
            }

            fn list_configs(&mut self, filter: &ConfigFilter) -> QueryResult<Vec<Config>> {
                let mut q = configs::table
                    .filter(configs::deleted_at.is_null())
                    .select(ConfigRow::as_select())
                    .order((configs::updated_at.desc(), configs::id.desc()))
                    .into_boxed();
                if let Some(id) = &filter.id {
                    q = q.filter(configs::id.eq(id.clone()));
                }
                if let Some(endpoint) = &filter.endpoint {
                    q = q.filter(configs::endpoint.eq(endpoint.clone()));
                }
                Ok(q.load::<ConfigRow>(self)?
                    .into_iter()
                    .map(Config::from)
                    .collect())
            }

            fn get_config(&mut self, id: &str) -> QueryResult<Option<Config>> {
                live_config(self, id)
            }

            fn insert_config(&mut self, c: &Config) -> QueryResult<()> {
                self.$write_tx(|conn| {
                    diesel::insert_into(configs::table)
                        .values((
                            configs::id.eq(&c.id),
                            configs::endpoint.eq(&c.endpoint),
                            configs::secret.eq(&c.secret),
                            configs::event_types.eq(DbList(c.event_types.clone())),
                            configs::active.eq(c.active),
                            configs::name.eq(&c.name),
                            configs::created_at.eq(DbTime(c.created_at)),
                            configs::updated_at.eq(DbTime(c.updated_at)),
                        ))
                        .execute(conn)?;
                    $configs_changed(conn)
                })
            }

            fn update_config(
                &mut self,
                id: &str,
                endpoint: &str,
                event_types: &[String],
                secret: Option<&str>,
                now: Timestamp,
            ) -> QueryResult<bool> {
                self.$write_tx(|conn| {
                    let target = configs::table
                        .filter(configs::id.eq(id))
                        .filter(configs::deleted_at.is_null());
                    let changes = (
                        configs::endpoint.eq(endpoint),
                        configs::event_types.eq(DbList(event_types.to_vec())),
                        configs::updated_at.eq(DbTime(now)),
                    );
                    let n = match secret {
                        Some(secret) => diesel::update(target)
                            .set((changes, configs::secret.eq(secret)))
                            .execute(conn)?,
                        None => diesel::update(target).set(changes).execute(conn)?,
                    };
                    if n > 0 {
                        $configs_changed(conn)?;
                    }
                    Ok(n > 0)
                })
            }

            fn delete_config(&mut self, id: &str, now: Timestamp) -> QueryResult<bool> {
                self.$write_tx(|conn| {
                    let n = diesel::update(
                        configs::table
                            .filter(configs::id.eq(id))
                            .filter(configs::deleted_at.is_null()),
                    )
                    .set((
                        configs::active.eq(false),
                        configs::deleted_at.eq(Some(DbTime(now))),
                        configs::updated_at.eq(DbTime(now)),
                    ))
                    .execute(conn)?;
                    if n == 0 {
                        return Ok(false);
                    }
                    diesel::update(
                        deliveries::table
                            .filter(deliveries::config_id.eq(id))
                            .filter(deliveries::status.eq("pending")),
                    )
                    .set((
                        deliveries::status.eq("cancelled"),
                        deliveries::next_attempt_at.eq(None::<DbTime>),
                        deliveries::updated_at.eq(DbTime(now)),
                    ))
                    .execute(conn)?;
                    $configs_changed(conn)?;
                    Ok(true)
                })
            }

            fn set_config_active(
                &mut self,
                id: &str,
                active: bool,
                now: Timestamp,
            ) -> QueryResult<Option<Config>> {
                self.$write_tx(|conn| {
                    let Some(mut config) = live_config(conn, id)? else {
                        return Ok(None);
                    };
                    if config.active == active {
                        return Ok(Some(config));
                    }
                    diesel::update(configs::table.filter(configs::id.eq(id)))
                        .set((
                            configs::active.eq(active),
                            configs::updated_at.eq(DbTime(now)),
                        ))
                        .execute(conn)?;
                    $configs_changed(conn)?;
                    config.active = active;
                    config.updated_at = now;
                    Ok(Some(config))
                })
            }

            fn change_config_secret(
                &mut self,
                id: &str,
                secret: &str,
                now: Timestamp,
            ) -> QueryResult<Option<Config>> {
                self.$write_tx(|conn| {
                    let Some(mut config) = live_config(conn, id)? else {
                        return Ok(None);
                    };
                    if config.secret == secret {
                        return Ok(Some(config));
                    }
                    diesel::update(configs::table.filter(configs::id.eq(id)))
                        .set((
                            configs::secret.eq(secret),
                            configs::updated_at.eq(DbTime(now)),
                        ))
                        .execute(conn)?;
                    $configs_changed(conn)?;
                    config.secret = secret.to_owned();
                    config.updated_at = now;
                    Ok(Some(config))
                })
            }
        }
    };
}

mod postgres {
    use super::*;

    /// Tells other processes (the workers' config caches) that configs changed; delivered only
    /// if the transaction commits.
    fn notify(conn: &mut PgConnection) -> QueryResult<()> {
        diesel::sql_query("SELECT pg_notify('webhooks_configs', '')").execute(conn)?;
        Ok(())
    }

    backend_queries!(PgConnection, transaction, notify);
}

mod sqlite {
    use super::*;

    /// SQLite serves one process, which is told in-process instead.
    fn notify(_conn: &mut SqliteConnection) -> QueryResult<()> {
        Ok(())
    }

    backend_queries!(SqliteConnection, immediate_transaction, notify);
}
