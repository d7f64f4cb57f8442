//! The PostgreSQL side of published versions ([`VersionStore`]): versions reference their
//! function's row with `ON DELETE CASCADE`; a version's number comes from the function's
//! `last_version` counter, bumped in the transaction that inserts the version (the row lock of
//! that update orders publishers of one function across nodes).

use async_trait::async_trait;
use sqlx::Row;
use stoke_core::{AccountId, Function};

use super::big;
use crate::sqlite::{cas_outcome, decode, encode};
use crate::{PgStore, StoreError, VersionStore};

fn decoded(row: Option<sqlx::postgres::PgRow>) -> Result<Option<Function>, StoreError> {
    row.map(|r| decode::<Function>(r.get::<&str, _>(0)))
        .transpose()
}

#[async_trait]
impl VersionStore for PgStore {
    async fn publish_version(
        &self,
        version: &Function,
        expected_latest_revision: &str,
    ) -> Result<Function, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE functions SET last_version = last_version + 1 \
             WHERE account_id = $1 AND name = $2 AND revision_id = $3 RETURNING last_version",
        )
        .bind(version.account.as_str())
        .bind(version.name.as_str())
        .bind(expected_latest_revision)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let exists = sqlx::query("SELECT 1 FROM functions WHERE account_id = $1 AND name = $2")
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
             revision_id, record) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(v.account.as_str())
        .bind(v.name.as_str())
        .bind(number)
        .bind(&v.code.sha256_hex)
        .bind(big(v.code.size))
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
            "SELECT record FROM versions WHERE account_id = $1 AND function_name = $2 \
             AND version = $3",
        )
        .bind(account.as_str())
        .bind(name)
        .bind(big(version))
        .fetch_optional(&self.pool)
        .await?;
        decoded(row)
    }

    async fn last_version(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        let row = sqlx::query(
            "SELECT record FROM versions WHERE account_id = $1 AND function_name = $2 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(account.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        decoded(row)
    }

    async fn list_versions(
        &self,
        account: &AccountId,
        name: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Function>, StoreError> {
        let rows = sqlx::query(
            "SELECT record FROM versions WHERE account_id = $1 AND function_name = $2 \
             AND version > $3 ORDER BY version LIMIT $4",
        )
        .bind(account.as_str())
        .bind(name)
        .bind(big(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
            "UPDATE versions SET revision_id = $1, record = $2 WHERE account_id = $3 \
             AND function_name = $4 AND version = $5 AND revision_id = $6",
        )
        .bind(&v.revision_id)
        .bind(encode(v)?)
        .bind(v.account.as_str())
        .bind(v.name.as_str())
        .bind(big(number))
        .bind(expected_revision)
        .execute(&self.pool)
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
            "DELETE FROM versions WHERE account_id = $1 AND function_name = $2 AND version = $3 \
             RETURNING record",
        )
        .bind(account.as_str())
        .bind(name)
        .bind(big(version))
        .fetch_optional(&self.pool)
        .await?;
        decoded(row)
    }
}
