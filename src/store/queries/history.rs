//! The delivery history as the `/deliveries` API reads it (spec §2.7), plus the whole-history
//! reads tests and the benchmark use.

use diesel::prelude::*;

use crate::domain::delivery::DeliveryStatus;
use crate::domain::time::Timestamp;
use crate::store::model::{AttemptRow, DeliveryRow};

/// Filters and page of `GET /deliveries` (newest first, keyset on `(created_at, id)`).
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub config_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
    /// Only rows strictly before this `(created_at, id)`.
    pub before: Option<(Timestamp, String)>,
    pub limit: i64,
}

pub trait History {
    /// A page of deliveries, newest first.
    fn list_deliveries(&mut self, filter: &DeliveryFilter) -> QueryResult<Vec<DeliveryRow>>;
    fn get_delivery(&mut self, id: &str) -> QueryResult<Option<DeliveryRow>>;
    /// A page of a delivery's attempts, newest first, strictly before `before`.
    fn list_attempts(
        &mut self,
        delivery_id: &str,
        before: Option<(Timestamp, String)>,
        limit: i64,
    ) -> QueryResult<Vec<AttemptRow>>;
    /// Deliveries of a config, oldest first.
    fn deliveries_of_config(&mut self, config_id: &str) -> QueryResult<Vec<DeliveryRow>>;
    /// Attempts of a delivery, in call order.
    fn attempts_of_delivery(&mut self, delivery_id: &str) -> QueryResult<Vec<AttemptRow>>;
}

macro_rules! history_queries {
    () => {
        impl History for Conn {
            fn list_deliveries(&mut self, f: &DeliveryFilter) -> QueryResult<Vec<DeliveryRow>> {
                use crate::store::schema::deliveries;
                let keys = [
                    f.config_id.as_deref(),
                    f.before.as_ref().map(|(_, id)| id.as_str()),
                ];
                if keys.into_iter().flatten().any(unmatchable) {
                    return Ok(Vec::new());
                }
                let mut q = deliveries::table
                    .select(DeliveryRow::as_select())
                    .into_boxed();
                if let Some(c) = &f.config_id {
                    q = q.filter(deliveries::config_id.eq(c.clone()));
                }
                if let Some(s) = f.status {
                    q = q.filter(deliveries::status.eq(s.as_str()));
                }
                if let Some(t) = f.created_from {
                    q = q.filter(deliveries::created_at.ge(DbTime(t)));
                }
                if let Some(t) = f.created_to {
                    q = q.filter(deliveries::created_at.le(DbTime(t)));
                }
                if let Some((t, id)) = &f.before {
                    q = q.filter(
                        deliveries::created_at
                            .lt(DbTime(*t))
                            .or(deliveries::created_at
                                .eq(DbTime(*t))
                                .and(deliveries::id.lt(id.clone()))),
                    );
                }
                q.order((deliveries::created_at.desc(), deliveries::id.desc()))
                    .limit(f.limit)
                    .load(self)
            }

            fn get_delivery(&mut self, id: &str) -> QueryResult<Option<DeliveryRow>> {
                use crate::store::schema::deliveries;
                if unmatchable(id) {
                    return Ok(None);
                }
                deliveries::table
                    .filter(deliveries::id.eq(id))
                    .select(DeliveryRow::as_select())
                    .first(self)
                    .optional()
            }

            fn list_attempts(
                &mut self,
                delivery_id: &str,
                before: Option<(Timestamp, String)>,
                limit: i64,
            ) -> QueryResult<Vec<AttemptRow>> {
                use crate::store::schema::attempts;
                if unmatchable(delivery_id) || before.as_ref().is_some_and(|(_, id)| unmatchable(id)) {
                    return Ok(Vec::new());
                }
                let mut q = attempts::table
                    .filter(attempts::delivery_id.eq(delivery_id.to_owned()))
                    .select(AttemptRow::as_select())
                    .into_boxed();
                if let Some((t, id)) = before {
                    q = q.filter(
                        attempts::created_at
                            .lt(DbTime(t))
                            .or(attempts::created_at.eq(DbTime(t)).and(attempts::id.lt(id))),
                    );
                }
                q.order((attempts::created_at.desc(), attempts::id.desc()))
                    .limit(limit)
                    .load(self)
            }

            fn deliveries_of_config(&mut self, config_id: &str) -> QueryResult<Vec<DeliveryRow>> {
                use crate::store::schema::deliveries;
                deliveries::table
                    .filter(deliveries::config_id.eq(config_id))
                    .order((deliveries::created_at.asc(), deliveries::id.asc()))
                    .select(DeliveryRow::as_select())
                    .load(self)
            }

            fn attempts_of_delivery(&mut self, delivery_id: &str) -> QueryResult<Vec<AttemptRow>> {
                use crate::store::schema::attempts;
                attempts::table
                    .filter(attempts::delivery_id.eq(delivery_id))
                    .order((
                        attempts::replay_generation.asc(),
                        attempts::attempt_number.asc(),
                    ))
                    .select(AttemptRow::as_select())
                    .load(self)
            }
        }
    };
}
pub(super) use history_queries;
