//! The SQLite side of concurrency slots ([`SlotStore`]): one node, so its clock is the only
//! one; each acquisition is one write under the store's gate.

use async_trait::async_trait;
use sqlx::Row;

use crate::slots::SlotStore;
use crate::{SqliteStore, StoreError};

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
    )
    .unwrap_or(i64::MAX)
}

#[async_trait]
impl SlotStore for SqliteStore {
    async fn acquire_slot(
        &self,
        scope: &str,
        cap: u32,
        owner: &str,
        token: &str,
        ttl_ms: i64,
    ) -> Result<Option<u32>, StoreError> {
        let mut conn = self.writer().await?;
        let now = now_ms();
        let held: Vec<i64> = sqlx::query(
            "SELECT slot FROM concurrency_slots WHERE scope = ?1 AND expires_ms > ?2 \
             ORDER BY slot",
        )
        .bind(scope)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.get::<i64, _>(0))
        .collect();
        let Some(free) = (0..i64::from(cap)).find(|s| held.binary_search(s).is_err()) else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT OR REPLACE INTO concurrency_slots (scope, slot, owner, token, expires_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(scope)
        .bind(free)
        .bind(owner)
        .bind(token)
        .bind(now.saturating_add(ttl_ms))
        .execute(&mut *conn)
        .await?;
        Ok(u32::try_from(free).ok())
    }

    async fn release_slot(&self, scope: &str, token: &str) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        sqlx::query("DELETE FROM concurrency_slots WHERE scope = ?1 AND token = ?2")
            .bind(scope)
            .bind(token)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn renew_slots(&self, owner: &str, ttl_ms: i64) -> Result<u64, StoreError> {
        let mut conn = self.writer().await?;
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE concurrency_slots SET expires_ms = ?2 WHERE owner = ?1 AND expires_ms > ?3",
        )
        .bind(owner)
        .bind(now.saturating_add(ttl_ms))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected())
    }

    async fn release_slots_of(&self, owner: &str) -> Result<u64, StoreError> {
        let mut conn = self.writer().await?;
        let done = sqlx::query("DELETE FROM concurrency_slots WHERE owner = ?1")
            .bind(owner)
            .execute(&mut *conn)
            .await?;
        Ok(done.rows_affected())
    }

    async fn held_slots(&self, scope: &str) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM concurrency_slots WHERE scope = ?1 AND expires_ms > ?2",
        )
        .bind(scope)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}
