//! The PostgreSQL side of policies ([`PolicyStore`]): one row per function and qualifier, its
//! statements as JSON text; the function's row takes them with it (`ON DELETE CASCADE`).

use async_trait::async_trait;
use sqlx::Row;
use stoke_core::AccountId;
use stoke_core::policy::Policy;

use crate::sqlite::{decode, encode};
use crate::{PgStore, PolicyStore, StoreError};

/// `sql` with the policy's key bound as `$1` (account), `$2` (function) and `$3` (qualifier);
/// further parameters are `$4` on.
fn keyed<'q>(
    sql: &'q str,
    account: &'q AccountId,
    function: &'q str,
    qualifier: &'q str,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(account.as_str())
        .bind(function)
        .bind(qualifier)
}

#[async_trait]
impl PolicyStore for PgStore {
    async fn get_policy(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: &str,
    ) -> Result<Option<Policy>, StoreError> {
        let row = keyed(
            "SELECT record FROM policies WHERE account_id = $1 AND function_name = $2 \
             AND qualifier = $3",
            account,
            function,
            qualifier,
        )
        .fetch_optional(&self.pool)
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
        let q = |sql| keyed(sql, account, function, qualifier);
        let changed = match (policy, expected) {
            (Some(p), None) => {
                let done = q(
                    "INSERT INTO policies (account_id, function_name, qualifier, \
                     revision_id, record) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&p.revision_id)
                .bind(encode(p)?)
                .execute(&self.pool)
                .await;
                match done {
                    Ok(d) => d.rows_affected(),
                    Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                        return Err(StoreError::NotFound);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            (Some(p), Some(expected)) => q("UPDATE policies SET revision_id = $5, record = $6 \
                 WHERE account_id = $1 AND function_name = $2 AND qualifier = $3 \
                 AND revision_id = $4")
            .bind(expected)
            .bind(&p.revision_id)
            .bind(encode(p)?)
            .execute(&self.pool)
            .await?
            .rows_affected(),
            (None, Some(expected)) => q("DELETE FROM policies WHERE account_id = $1 \
                 AND function_name = $2 AND qualifier = $3 AND revision_id = $4")
            .bind(expected)
            .execute(&self.pool)
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
        keyed(
            "DELETE FROM policies WHERE account_id = $1 AND function_name = $2 \
             AND qualifier = $3",
            account,
            function,
            qualifier,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
