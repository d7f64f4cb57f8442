//! The PostgreSQL side of event source mappings ([`MappingStore`]): one row per mapping, its
//! record as JSON text, the statements of [`crate::mappings::sql`] with `$N` placeholders
//! (written once for both backends by [`crate::mappings::mapping_store`]), on the shared pool.

use async_trait::async_trait;
use sqlx::Row;
use stoke_core::AccountId;

use crate::mappings::{Mapping, MappingStore, open_record, seal_record, sql};
use crate::seal::MasterKey;
use crate::sqlite::cas_outcome;
use crate::{PgStore, StoreError};

impl PgStore {
    /// A connection of the pool (to read or write with).
    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        Ok(self.pool.acquire().await?)
    }
}

crate::mappings::mapping_store!(PgStore, sqlx::postgres::PgRow, sql::pg, conn, conn);
