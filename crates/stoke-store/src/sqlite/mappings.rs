//! The SQLite side of event source mappings ([`MappingStore`]): one row per mapping, its record
//! as JSON, the statements of [`crate::mappings::sql`] (written once for both backends by
//! [`crate::mappings::mapping_store`]); writes through the write gate.

use async_trait::async_trait;
use sqlx::Row;
use stoke_core::AccountId;

use super::{cas_outcome, decode, encode};
use crate::mappings::{Mapping, MappingStore, sql};
use crate::{SqliteStore, StoreError};

impl SqliteStore {
    /// A connection of the pool to read with.
    async fn reader(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
        Ok(self.pool().acquire().await?)
    }
}

crate::mappings::mapping_store!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    sql::sqlite,
    writer,
    reader
);
