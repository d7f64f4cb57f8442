//! The SQLite side of policies ([`PolicyStore`]): one row per function and qualifier, its
//! statements as JSON; the function's row takes them with it (`ON DELETE CASCADE`).

use async_trait::async_trait;
use sqlx::Row;
use stoke_core::AccountId;
use stoke_core::policy::Policy;

use super::{decode, encode};
use crate::{PolicyStore, SqliteStore, StoreError};

#[async_trait]
impl PolicyStore for SqliteStore {
    async fn get_policy(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: &str,
    ) -> Result<Option<Policy>, StoreError> {
        let row = sqlx::query(
            "SELECT record FROM policies WHERE account_id = ? AND function_name = ? \
             AND qualifier = ?",
        )
        .bind(account.as_str())
        .bind(function)
        .bind(qualifier)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| decode::<Policy>(r.get::<&str, _>(0)))
            .transpose()
    }

    async fn put_policy(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: &str,
        policy: Option<&Policy>,
        expected: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        let changed = match (policy, expected) {
            (Some(p), None) => {
                let done = sqlx::query(
                    "INSERT INTO policies (account_id, function_name, qualifier, revision_id, \
                     record) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind(account.as_str())
                .bind(function)
                .bind(qualifier)
                .bind(&p.revision_id)
                .bind(encode(p)?)
                .execute(&mut *conn)
                .await;
                match done {
                    Ok(d) => d.rows_affected(),
                    Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                        return Err(StoreError::NotFound);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            (Some(p), Some(expected)) => sqlx::query(
                "UPDATE policies SET revision_id = ?, record = ? WHERE account_id = ? \
                 AND function_name = ? AND qualifier = ? AND revision_id = ?",
            )
            .bind(&p.revision_id)
            .bind(encode(p)?)
            .bind(account.as_str())
            .bind(function)
            .bind(qualifier)
            .bind(expected)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
            (None, Some(expected)) => sqlx::query(
                "DELETE FROM policies WHERE account_id = ? AND function_name = ? \
                 AND qualifier = ? AND revision_id = ?",
            )
            .bind(account.as_str())
            .bind(function)
            .bind(qualifier)
            .bind(expected)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
            (None, None) => return Ok(()),
        };
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::stale(expected.unwrap_or("")))
        }
    }

    async fn delete_policy(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM policies WHERE account_id = ? AND function_name = ? AND qualifier = ?",
        )
        .bind(account.as_str())
        .bind(function)
        .bind(qualifier)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }
}
