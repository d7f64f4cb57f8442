//! The PostgreSQL side of functions ([`FunctionStore`]): one row per function, its record as
//! JSON text beside the columns that queries need; a write that changes a function checks its
//! `revision_id` in the same statement.

use async_trait::async_trait;
use sqlx::Row;
use stoke_core::{AccountId, Function};

use super::big;
use crate::sqlite::{cas_outcome, decode, encode};
use crate::{AccountUsage, FunctionStore, PgStore, StoreError};

/// What a failed insert means: a taken key is [`StoreError::Conflict`], a missing parent
/// [`StoreError::NotFound`].
pub(super) fn insert_outcome(
    result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>,
) -> Result<(), StoreError> {
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict),
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(StoreError::NotFound),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl FunctionStore for PgStore {
    async fn insert_function(&self, f: &Function) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO functions (account_id, name, revision_id, code_sha256, serving_sha256, \
             code_size, record) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(f.account.as_str())
        .bind(f.name.as_str())
        .bind(&f.revision_id)
        .bind(&f.code.sha256_hex)
        .bind(f.serving.as_ref().map(|s| s.code.sha256_hex.as_str()))
        .bind(big(f.code.size))
        .bind(encode(f)?)
        .execute(&self.pool)
        .await;
        insert_outcome(result)
    }

    async fn replace_function(
        &self,
        f: &Function,
        expected_revision: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE functions SET revision_id = $1, code_sha256 = $2, serving_sha256 = $3, \
             code_size = $4, record = $5 WHERE account_id = $6 AND name = $7 AND revision_id = $8",
        )
        .bind(&f.revision_id)
        .bind(&f.code.sha256_hex)
        .bind(f.serving.as_ref().map(|s| s.code.sha256_hex.as_str()))
        .bind(big(f.code.size))
        .bind(encode(f)?)
        .bind(f.account.as_str())
        .bind(f.name.as_str())
        .bind(expected_revision)
        .execute(&self.pool)
        .await?;
        let current = self.get_function(&f.account, f.name.as_str());
        cas_outcome(done.rows_affected(), expected_revision, current).await
    }

    async fn get_function(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        let row = sqlx::query("SELECT record FROM functions WHERE account_id = $1 AND name = $2")
            .bind(account.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode(r.get::<&str, _>(0))).transpose()
    }

    async fn delete_function(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM functions WHERE account_id = $1 AND name = $2 RETURNING record",
        )
        .bind(account.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| decode(r.get::<&str, _>(0))).transpose()
    }

    async fn list_functions(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Function>, StoreError> {
        // Names compare byte by byte (their columns are COLLATE "C"), as SQLite's do.
        let rows = sqlx::query(
            "SELECT record FROM functions WHERE account_id = $1 AND name > $2 \
             ORDER BY name LIMIT $3",
        )
        .bind(account.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| decode(r.get::<&str, _>(0))).collect()
    }

    async fn all_functions(&self) -> Result<Vec<Function>, StoreError> {
        let rows = sqlx::query("SELECT record FROM functions ORDER BY account_id, name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| decode(r.get::<&str, _>(0))).collect()
    }

    async fn account_usage(&self, account: &AccountId) -> Result<AccountUsage, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*), (COALESCE(SUM(code_size), 0) + (SELECT COALESCE(SUM(code_size), 0) \
             FROM versions WHERE account_id = $1))::BIGINT FROM functions WHERE account_id = $1",
        )
        .bind(account.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(AccountUsage {
            function_count: u64::try_from(row.get::<i64, _>(0)).unwrap_or(0),
            total_code_size: u64::try_from(row.get::<i64, _>(1)).unwrap_or(0),
        })
    }

    async fn code_in_use(&self, sha256_hex: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM functions WHERE code_sha256 = $1 OR serving_sha256 = $1 \
             UNION ALL SELECT 1 FROM versions WHERE code_sha256 = $1 LIMIT 1",
        )
        .bind(sha256_hex)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }
}
