//! The PostgreSQL side of the schedules ([`crate::schedules::ScheduleStore`] for [`PgStore`],
//! migration 0003): the shared SQL of `schedules::sql`. Nodes racing on one tick meet on the
//! schedule's row: the fire's `UPDATE … WHERE next_ms = $expected` waits for the other's
//! commit, then finds another `next_ms` and moves nothing.

use sqlx::Row;
use stoke_core::AccountId;

use crate::sqlite::accounts::account_id as account;
use crate::{PgStore, StoreError};

impl PgStore {
    /// A pooled connection to write on (PostgreSQL needs no gate).
    async fn schedule_writer(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        Ok(self.pool.acquire().await?)
    }
}

crate::schedules::sql::schedule_store!(
    PgStore,
    sqlx::postgres::PgRow,
    schedule_writer,
    super::queue::insert_event,
    super::queue::insert_dead_letter
);
