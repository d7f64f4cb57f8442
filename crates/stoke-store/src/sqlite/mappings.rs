//! The SQLite side of event source mappings ([`MappingStore`]): one row per mapping, its record
//! as JSON, the statements of [`crate::mappings::sql`] (written once for both backends by
//! [`crate::mappings::mapping_store`]); writes through the write gate.

use async_trait::async_trait;
use sqlx::Row;
use stoke_core::AccountId;

use super::cas_outcome;
use crate::mappings::{Mapping, MappingStore, open_record, seal_record, sql};
use crate::seal::MasterKey;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccountStore;
    use crate::conformance::mappings::{SEALED_PASSWORD, mapping};
    use crate::mappings::BasicAuth;

    #[tokio::test]
    async fn a_row_holds_the_credentials_only_sealed() {
        let s = SqliteStore::in_memory().await.unwrap();
        let (k, _) = s.ensure_default_account().await.unwrap();
        let mut m = mapping(&k.account, "u1", "f", "orders");
        m.basic_auth = Some(BasicAuth {
            username: "alice".into(),
            password: SEALED_PASSWORD.to_owned().into(),
        });
        s.insert_mapping(&m).await.unwrap();
        let row: String = sqlx::query_scalar("SELECT record FROM event_source_mappings")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert!(!row.contains(SEALED_PASSWORD), "{row}");
        assert!(row.contains("sealed_auth"), "{row}");
    }
}
