//! The PostgreSQL side of concurrency slots ([`SlotStore`]): expiries by the database's clock,
//! and a slot taken with one `INSERT … ON CONFLICT` (two nodes that pick the same free slot:
//! the second finds it held and tries another).

use async_trait::async_trait;

use crate::slots::SlotStore;
use crate::{PgStore, StoreError};

/// The database's clock in milliseconds since the epoch, as SQL.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Tries of an acquisition that lost a slot to another node before it gives up (full).
const TRIES: usize = 8;

#[async_trait]
impl SlotStore for PgStore {
    async fn acquire_slot(
        &self,
        scope: &str,
        cap: u32,
        owner: &str,
        token: &str,
        ttl_ms: i64,
    ) -> Result<Option<u32>, StoreError> {
        let sql = format!(
            "WITH free AS ( \
                SELECT s FROM generate_series(0, $2::int - 1) AS s \
                WHERE NOT EXISTS (SELECT 1 FROM concurrency_slots c \
                    WHERE c.scope = $1 AND c.slot = s AND c.expires_ms > {NOW_MS}) \
                ORDER BY random() LIMIT 1) \
             INSERT INTO concurrency_slots (scope, slot, owner, token, expires_ms) \
             SELECT $1, s, $3, $4, {NOW_MS} + $5 FROM free \
             ON CONFLICT (scope, slot) DO UPDATE \
                SET owner = EXCLUDED.owner, token = EXCLUDED.token, \
                    expires_ms = EXCLUDED.expires_ms \
                WHERE concurrency_slots.expires_ms <= {NOW_MS} \
             RETURNING slot"
        );
        let cap_i = i32::try_from(cap).unwrap_or(i32::MAX);
        for _ in 0..TRIES {
            let got: Option<i32> = sqlx::query_scalar(&sql)
                .bind(scope)
                .bind(cap_i)
                .bind(owner)
                .bind(token)
                .bind(ttl_ms)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(s) = got {
                return Ok(u32::try_from(s).ok());
            }
            // None free, or the one chosen was taken meanwhile: only the latter tries again.
            let free: bool = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) < $2 FROM concurrency_slots \
                 WHERE scope = $1 AND slot < $2 AND expires_ms > {NOW_MS}"
            ))
            .bind(scope)
            .bind(cap_i)
            .fetch_one(&self.pool)
            .await?;
            if !free {
                return Ok(None);
            }
        }
        Ok(None)
    }

    async fn release_slot(&self, scope: &str, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM concurrency_slots WHERE scope = $1 AND token = $2")
            .bind(scope)
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn renew_slots(&self, owner: &str, ttl_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE concurrency_slots SET expires_ms = {NOW_MS} + $2 \
             WHERE owner = $1 AND expires_ms > {NOW_MS}"
        ))
        .bind(owner)
        .bind(ttl_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn release_slots_of(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM concurrency_slots WHERE owner = $1")
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn held_slots(&self, scope: &str) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM concurrency_slots WHERE scope = $1 AND expires_ms > {NOW_MS}"
        ))
        .bind(scope)
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}
