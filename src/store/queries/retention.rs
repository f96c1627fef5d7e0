//! Retention (spec §1.3 `--retention-*`, §3): bounded deletes of old final deliveries with their
//! attempts, expired idempotency records, and soft-deleted configs nothing refers to any more.

use diesel::prelude::*;

use crate::domain::delivery::DeliveryStatus;
use crate::domain::time::Timestamp;

pub trait Retention {
    /// Deletes up to `limit` deliveries in one of `statuses` last updated before `before`
    /// (their attempts go with them); returns how many.
    fn purge_deliveries(
        &mut self,
        statuses: &[DeliveryStatus],
        before: Timestamp,
        limit: i64,
    ) -> QueryResult<usize>;
    /// Deletes idempotency records created before `before`.
    fn purge_replay_requests(&mut self, before: Timestamp) -> QueryResult<usize>;
    /// Deletes configs soft-deleted before `deleted_before` that no delivery references any
    /// more. The age matters: a first attempt in flight when its config was deleted writes its
    /// delivery afterwards, and must still find the config (spec §3).
    fn purge_deleted_configs(&mut self, deleted_before: Timestamp) -> QueryResult<usize>;
}

macro_rules! retention_queries {
    () => {
        impl Retention for Conn {
            fn purge_deliveries(
                &mut self,
                statuses: &[DeliveryStatus],
                before: Timestamp,
                limit: i64,
            ) -> QueryResult<usize> {
                use crate::store::schema::{attempts, deliveries};
                let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
                write_tx(self, |conn| {
                    let ids: Vec<String> = deliveries::table
                        .select(deliveries::id)
                        .filter(deliveries::status.eq_any(&statuses))
                        .filter(deliveries::updated_at.lt(DbTime(before)))
                        .limit(limit)
                        .load(conn)?;
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    diesel::delete(attempts::table.filter(attempts::delivery_id.eq_any(&ids)))
                        .execute(conn)?;
                    diesel::delete(deliveries::table.filter(deliveries::id.eq_any(&ids))).execute(conn)
                })
            }

            fn purge_replay_requests(&mut self, before: Timestamp) -> QueryResult<usize> {
                use crate::store::schema::replay_requests;
                diesel::delete(replay_requests::table.filter(replay_requests::created_at.lt(DbTime(before))))
                    .execute(self)
            }

            fn purge_deleted_configs(&mut self, deleted_before: Timestamp) -> QueryResult<usize> {
                use crate::store::schema::{configs, deliveries};
                diesel::delete(
                    configs::table
                        .filter(configs::deleted_at.lt(DbTime(deleted_before)))
                        .filter(diesel::dsl::not(diesel::dsl::exists(
                            deliveries::table.filter(deliveries::config_id.eq(configs::id)),
                        ))),
                )
                .execute(self)
            }
        }
    };
}
pub(super) use retention_queries;
