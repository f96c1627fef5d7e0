//! Configs (spec §2.5, §3): the API's reads and writes, the worker's view of active configs, and
//! each config's health across processes (`failing_since`, auto-disable; spec §10.2).
//!
//! Every write that changes what matching sees notifies other processes (`configs_changed`,
//! inside the transaction, so only committed changes are announced).

use diesel::prelude::*;

use crate::domain::config::Config;
use crate::domain::time::Timestamp;

/// Exact-match filters of `GET /configs`.
#[derive(Debug, Clone, Default)]
pub struct ConfigFilter {
    pub id: Option<String>,
    pub endpoint: Option<String>,
}

/// What a batch of calls says about one config's health (spec §3 `failing_since`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigHealth {
    pub config_id: String,
    /// A call succeeded: what was stored before no longer holds.
    pub reset: bool,
    /// Completion of the first call without success after the batch's last success (or in the
    /// batch, when none succeeded); None when the last call succeeded.
    pub failing_from: Option<Timestamp>,
}

pub trait ConfigQueries {
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
    /// Soft delete; cancels the config's pending deliveries in the same transaction. None when
    /// unknown, else how many deliveries it cancelled.
    fn delete_config(&mut self, id: &str, now: Timestamp) -> QueryResult<Option<usize>>;
    /// Sets `active` unless already so (re-activation forgets `failing_since`); None when unknown.
    fn set_config_active(&mut self, id: &str, active: bool, now: Timestamp) -> QueryResult<Option<Config>>;
    /// Sets the secret unless it is already the current one; None when unknown. With
    /// `keep_previous_until`, the replaced secret keeps signing until then (spec §2.5), replacing
    /// any secret kept by an earlier change; without, no previous secret is kept.
    fn change_config_secret(
        &mut self,
        id: &str,
        secret: &str,
        keep_previous_until: Option<Timestamp>,
        now: Timestamp,
    ) -> QueryResult<Option<Config>>;

    /// Active, live configs: what the worker matches events against.
    fn active_configs(&mut self) -> QueryResult<Vec<Config>>;
    /// Changes whenever any config changes (latest `updated_at`, row count): a cheap poll.
    fn configs_fingerprint(&mut self) -> QueryResult<(Option<Timestamp>, i64)>;
    /// Records calls' effect on `failing_since`; with `disable_failing_since_before`, also
    /// deactivates the configs that are still failing and have been since before it. Returns
    /// the configs deactivated.
    fn record_health(
        &mut self,
        health: &[ConfigHealth],
        disable_failing_since_before: Option<Timestamp>,
        now: Timestamp,
    ) -> QueryResult<Vec<String>>;
    /// `failing_since` of a config (tests, the console of operators).
    fn failing_since(&mut self, id: &str) -> QueryResult<Option<Timestamp>>;
}

macro_rules! config_queries {
    () => {
        fn live_config(conn: &mut Conn, id: &str) -> QueryResult<Option<Config>> {
            use crate::store::schema::configs;
            if unmatchable(id) {
                return Ok(None);
            }
            configs::table
                .filter(configs::id.eq(id))
                .filter(configs::deleted_at.is_null())
                .select(ConfigRow::as_select())
                .first::<ConfigRow>(conn)
                .optional()
                .map(|row| row.map(Config::from))
        }

        /// Looks up a live config and, unless `unchanged`, writes and applies a change to it
        /// (in the caller's transaction). None when unknown.
        fn change_live_config(
            conn: &mut Conn,
            id: &str,
            unchanged: impl Fn(&Config) -> bool,
            write: impl FnOnce(&mut Conn) -> QueryResult<usize>,
            apply: impl FnOnce(&mut Config),
        ) -> QueryResult<Option<Config>> {
            let Some(mut config) = live_config(conn, id)? else {
                return Ok(None);
            };
            if unchanged(&config) {
                return Ok(Some(config));
            }
            write(conn)?;
            configs_changed(conn)?;
            apply(&mut config);
            Ok(Some(config))
        }

        impl ConfigQueries for Conn {
            fn ping(&mut self) -> QueryResult<()> {
                use crate::store::schema::configs;
                configs::table
                    .select(configs::id)
                    .filter(configs::id.eq(""))
                    .first::<String>(self)
                    .optional()
                    .map(|_| ())
            }

            fn list_configs(&mut self, filter: &ConfigFilter) -> QueryResult<Vec<Config>> {
                use crate::store::schema::configs;
                if [&filter.id, &filter.endpoint]
                    .into_iter()
                    .flatten()
                    .any(|k| unmatchable(k))
                {
                    return Ok(Vec::new());
                }
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
                use crate::store::schema::configs;
                write_tx(self, |conn| {
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
                    configs_changed(conn)
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
                use crate::store::schema::configs;
                if unmatchable(id) {
                    return Ok(false);
                }
                write_tx(self, |conn| {
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
                        configs_changed(conn)?;
                    }
                    Ok(n > 0)
                })
            }

            fn delete_config(&mut self, id: &str, now: Timestamp) -> QueryResult<Option<usize>> {
                use crate::store::schema::{configs, deliveries};
                if unmatchable(id) {
                    return Ok(None);
                }
                write_tx(self, |conn| {
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
                        return Ok(None);
                    }
                    let cancelled = diesel::update(
                        deliveries::table
                            .filter(deliveries::config_id.eq(id))
                            .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str())),
                    )
                    .set((
                        deliveries::status.eq(DeliveryStatus::Cancelled.as_str()),
                        deliveries::next_attempt_at.eq(None::<DbTime>),
                        deliveries::updated_at.eq(DbTime(now)),
                    ))
                    .execute(conn)?;
                    configs_changed(conn)?;
                    Ok(Some(cancelled))
                })
            }

            fn set_config_active(
                &mut self,
                id: &str,
                active: bool,
                now: Timestamp,
            ) -> QueryResult<Option<Config>> {
                use crate::store::schema::configs;
                write_tx(self, |conn| {
                    change_live_config(
                        conn,
                        id,
                        |c| c.active == active,
                        |conn| {
                            let target = configs::table.filter(configs::id.eq(id));
                            let changes = (
                                configs::active.eq(active),
                                configs::updated_at.eq(DbTime(now)),
                            );
                            if active {
                                // A fresh start: the failures that disabled it are history.
                                diesel::update(target)
                                    .set((changes, configs::failing_since.eq(None::<DbTime>)))
                                    .execute(conn)
                            } else {
                                diesel::update(target).set(changes).execute(conn)
                            }
                        },
                        |c| {
                            c.active = active;
                            c.updated_at = now;
                        },
                    )
                })
            }

            fn change_config_secret(
                &mut self,
                id: &str,
                secret: &str,
                keep_previous_until: Option<Timestamp>,
                now: Timestamp,
            ) -> QueryResult<Option<Config>> {
                use crate::store::schema::configs;
                write_tx(self, |conn| {
                    change_live_config(
                        conn,
                        id,
                        |c| c.secret == secret,
                        |conn| {
                            let target = diesel::update(configs::table.filter(configs::id.eq(id)));
                            let changes = (
                                configs::secret.eq(secret),
                                configs::updated_at.eq(DbTime(now)),
                            );
                            match keep_previous_until {
                                // The right-hand side reads the row as it was: the secret replaced.
                                Some(until) => target
                                    .set((
                                        changes,
                                        configs::previous_secret.eq(configs::secret.nullable()),
                                        configs::previous_secret_expires_at.eq(Some(DbTime(until))),
                                    ))
                                    .execute(conn),
                                None => target
                                    .set((
                                        changes,
                                        configs::previous_secret.eq(None::<String>),
                                        configs::previous_secret_expires_at.eq(None::<DbTime>),
                                    ))
                                    .execute(conn),
                            }
                        },
                        |c| {
                            let replaced = std::mem::replace(&mut c.secret, secret.to_owned());
                            c.previous_secret = keep_previous_until.map(|expires_at| PreviousSecret {
                                secret: replaced,
                                expires_at,
                            });
                            c.updated_at = now;
                        },
                    )
                })
            }

            fn active_configs(&mut self) -> QueryResult<Vec<Config>> {
                use crate::store::schema::configs;
                Ok(configs::table
                    .filter(configs::deleted_at.is_null())
                    .filter(configs::active.eq(true))
                    .select(ConfigRow::as_select())
                    .load::<ConfigRow>(self)?
                    .into_iter()
                    .map(Config::from)
                    .collect())
            }

            fn configs_fingerprint(&mut self) -> QueryResult<(Option<Timestamp>, i64)> {
                use crate::store::schema::configs;
                let (latest, count): (Option<DbTime>, i64) = configs::table
                    .select((
                        diesel::dsl::max(configs::updated_at),
                        diesel::dsl::count_star(),
                    ))
                    .first(self)?;
                Ok((latest.map(|t| t.0), count))
            }

            fn record_health(
                &mut self,
                health: &[ConfigHealth],
                disable_failing_since_before: Option<Timestamp>,
                now: Timestamp,
            ) -> QueryResult<Vec<String>> {
                use crate::store::schema::configs;
                let mut health: Vec<&ConfigHealth> = health
                    .iter()
                    .filter(|h| !unmatchable(&h.config_id))
                    .collect();
                // One order for every writer: two batches never wait on each other's rows in a cycle.
                health.sort_by(|a, b| a.config_id.cmp(&b.config_id));
                write_tx(self, |conn| {
                    for h in &health {
                        let target = configs::table.filter(configs::id.eq(&h.config_id));
                        match (h.reset, h.failing_from) {
                            (true, None) => {
                                diesel::update(target.filter(configs::failing_since.is_not_null()))
                                    .set(configs::failing_since.eq(None::<DbTime>))
                                    .execute(conn)?
                            }
                            (true, Some(from)) => diesel::update(target)
                                .set(configs::failing_since.eq(Some(DbTime(from))))
                                .execute(conn)?,
                            (false, Some(from)) => {
                                diesel::update(target.filter(configs::failing_since.is_null()))
                                    .set(configs::failing_since.eq(Some(DbTime(from))))
                                    .execute(conn)?
                            }
                            (false, None) => 0,
                        };
                    }
                    let Some(before) = disable_failing_since_before else {
                        return Ok(Vec::new());
                    };
                    let failing: Vec<&str> = health
                        .iter()
                        .filter(|h| h.failing_from.is_some())
                        .map(|h| h.config_id.as_str())
                        .collect();
                    if failing.is_empty() {
                        return Ok(Vec::new());
                    }
                    let disabled: Vec<String> = diesel::update(
                        configs::table
                            .filter(configs::id.eq_any(&failing))
                            .filter(configs::active.eq(true))
                            .filter(configs::deleted_at.is_null())
                            .filter(configs::failing_since.le(DbTime(before))),
                    )
                    .set((
                        configs::active.eq(false),
                        configs::updated_at.eq(DbTime(now)),
                    ))
                    .returning(configs::id)
                    .get_results(conn)?;
                    if !disabled.is_empty() {
                        configs_changed(conn)?;
                    }
                    Ok(disabled)
                })
            }

            fn failing_since(&mut self, id: &str) -> QueryResult<Option<Timestamp>> {
                use crate::store::schema::configs;
                if unmatchable(id) {
                    return Ok(None);
                }
                let since: Option<Option<DbTime>> = configs::table
                    .filter(configs::id.eq(id))
                    .select(configs::failing_since)
                    .first(self)
                    .optional()?;
                Ok(since.flatten().map(|t| t.0))
            }
        }
    };
}
pub(super) use config_queries;
