//! The PostgreSQL side of aliases ([`AliasStore`]): one row per alias, its record as JSON text
//! beside the versions it routes to (for ListAliases' FunctionVersion filter); the function's
//! row takes its aliases with it (`ON DELETE CASCADE`).

use async_trait::async_trait;
use sqlx::Row;
use stoke_core::{AccountId, Alias};

use super::functions::insert_outcome;
use crate::sqlite::{cas_outcome, decode, encode};
use crate::{AliasStore, PgStore, StoreError};

/// The additional version of an alias (the column beside the record).
fn additional(a: &Alias) -> Option<&str> {
    a.target
        .additional_weights
        .keys()
        .next()
        .map(String::as_str)
}

fn decoded(row: Option<sqlx::postgres::PgRow>) -> Result<Option<Alias>, StoreError> {
    row.map(|r| decode::<Alias>(r.get::<&str, _>(0)))
        .transpose()
}

#[async_trait]
impl AliasStore for PgStore {
    async fn insert_alias(&self, a: &Alias) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO aliases (account_id, function_name, name, function_version, \
             additional_version, revision_id, record) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(a.account.as_str())
        .bind(&a.function_name)
        .bind(&a.name)
        .bind(&a.target.function_version)
        .bind(additional(a))
        .bind(&a.revision_id)
        .bind(encode(a)?)
        .execute(&self.pool)
        .await;
        insert_outcome(result)
    }

    async fn get_alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError> {
        let row = sqlx::query(
            "SELECT record FROM aliases WHERE account_id = $1 AND function_name = $2 \
             AND name = $3",
        )
        .bind(account.as_str())
        .bind(function)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        decoded(row)
    }

    async fn replace_alias(&self, a: &Alias, expected_revision: &str) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE aliases SET function_version = $1, additional_version = $2, \
             revision_id = $3, record = $4 WHERE account_id = $5 AND function_name = $6 \
             AND name = $7 AND revision_id = $8",
        )
        .bind(&a.target.function_version)
        .bind(additional(a))
        .bind(&a.revision_id)
        .bind(encode(a)?)
        .bind(a.account.as_str())
        .bind(&a.function_name)
        .bind(&a.name)
        .bind(expected_revision)
        .execute(&self.pool)
        .await?;
        let current = self.get_alias(&a.account, &a.function_name, &a.name);
        cas_outcome(done.rows_affected(), expected_revision, current).await
    }

    async fn delete_alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM aliases WHERE account_id = $1 AND function_name = $2 AND name = $3 \
             RETURNING record",
        )
        .bind(account.as_str())
        .bind(function)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        decoded(row)
    }

    async fn list_aliases(
        &self,
        account: &AccountId,
        function: &str,
        version: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Alias>, StoreError> {
        let rows = sqlx::query(
            "SELECT record FROM aliases WHERE account_id = $1 AND function_name = $2 \
             AND name > $3 AND ($4::TEXT IS NULL OR function_version = $4 \
             OR additional_version = $4) ORDER BY name LIMIT $5",
        )
        .bind(account.as_str())
        .bind(function)
        .bind(after.unwrap_or(""))
        .bind(version)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| decode::<Alias>(r.get::<&str, _>(0)))
            .collect()
    }
}
