//! The SQLite side of published versions ([`VersionStore`]).
//!
//! Versions reference their function's row with `ON DELETE CASCADE`, so deleting a function
//! deletes them in the same statement. A version's number comes from the function's
//! `last_version` counter, bumped in the same transaction that inserts the version, so numbers
//! are never reused.

use async_trait::async_trait;
use sqlx::Row;
use stoke_core::{AccountId, Function};

use super::{cas_outcome, decode, encode};
use crate::{SqliteStore, StoreError, VersionStore};

fn size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn version_num(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl VersionStore for SqliteStore {
    async fn publish_version(
        &self,
        version: &Function,
        expected_latest_revision: &str,
    ) -> Result<Function, StoreError> {
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
        let row = sqlx::query(
            "UPDATE functions SET last_version = last_version + 1 \
             WHERE account_id = ? AND name = ? AND revision_id = ? RETURNING last_version",
        )
        .bind(version.account.as_str())
        .bind(version.name.as_str())
        .bind(expected_latest_revision)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let exists =
                sqlx::query("SELECT 1 FROM functions WHERE account_id = ? AND name = ? LIMIT 1")
                    .bind(version.account.as_str())
                    .bind(version.name.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match exists {
                Some(_) => StoreError::stale(expected_latest_revision),
                None => StoreError::NotFound,
            });
        };
        let number: i64 = row.get(0);
        let mut v = version.clone();
        v.version = number.to_string();
        sqlx::query(
            "INSERT INTO versions (account_id, function_name, version, code_sha256, code_size, \
             revision_id, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(v.account.as_str())
        .bind(v.name.as_str())
        .bind(number)
        .bind(&v.code.sha256_hex)
        .bind(size(v.code.size))
        .bind(&v.revision_id)
        .bind(encode(&v)?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn get_version(
        &self,
        account: &AccountId,
        name: &str,
        version: u64,
    ) -> Result<Option<Function>, StoreError> {
        let row = sqlx::query(
            "SELECT record FROM versions WHERE account_id = ? AND function_name = ? AND version = ?",
        )
        .bind(account.as_str())
        .bind(name)
        .bind(version_num(version))
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| decode::<Function>(r.get::<&str, _>(0)))
            .transpose()
    }

    async fn last_version(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        let row = sqlx::query(
            "SELECT record FROM versions WHERE account_id = ? AND function_name = ? \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(account.as_str())
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| decode::<Function>(r.get::<&str, _>(0)))
            .transpose()
    }

    async fn list_versions(
        &self,
        account: &AccountId,
        name: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Function>, StoreError> {
        let rows = sqlx::query(
            "SELECT record FROM versions WHERE account_id = ? AND function_name = ? AND version > ? \
             ORDER BY version LIMIT ?",
        )
        .bind(account.as_str())
        .bind(name)
        .bind(version_num(after))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| decode::<Function>(r.get::<&str, _>(0)))
            .collect()
    }

    async fn replace_version(
        &self,
        v: &Function,
        expected_revision: &str,
    ) -> Result<(), StoreError> {
        let number = v
            .version_number()
            .ok_or_else(|| StoreError::Corrupt(format!("not a version: {}", v.version)))?;
        let done = sqlx::query(
            "UPDATE versions SET revision_id = ?, record = ? \
             WHERE account_id = ? AND function_name = ? AND version = ? AND revision_id = ?",
        )
        .bind(&v.revision_id)
        .bind(encode(v)?)
        .bind(v.account.as_str())
        .bind(v.name.as_str())
        .bind(version_num(number))
        .bind(expected_revision)
        .execute(&mut *self.writer().await?)
        .await?;
        let current = self.get_version(&v.account, v.name.as_str(), number);
        cas_outcome(done.rows_affected(), expected_revision, current).await
    }

    async fn delete_version(
        &self,
        account: &AccountId,
        name: &str,
        version: u64,
    ) -> Result<Option<Function>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM versions WHERE account_id = ? AND function_name = ? AND version = ? \
             RETURNING record",
        )
        .bind(account.as_str())
        .bind(name)
        .bind(version_num(version))
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        row.map(|r| decode::<Function>(r.get::<&str, _>(0)))
            .transpose()
    }
}
