//! The SQLite side of published versions and aliases (the [`crate::Store`] methods delegate
//! here, to keep `sqlite.rs` about functions, accounts and logs).
//!
//! Versions and aliases reference their function's row with `ON DELETE CASCADE`, so deleting a
//! function deletes them in the same statement. A version's number comes from the function's
//! `last_version` counter, bumped in the same transaction that inserts the version, so numbers
//! are never reused.

use sqlx::Row;
use stoke_core::{AccountId, Alias, Function};

use crate::sqlite::{decode, encode};
use crate::{SqliteStore, StoreError};

fn size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn version_num(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The additional version of an alias (the column beside the record).
fn additional(a: &Alias) -> Option<&str> {
    a.target
        .additional_weights
        .keys()
        .next()
        .map(String::as_str)
}

impl SqliteStore {
    pub(crate) async fn publish_version_impl(
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

    pub(crate) async fn get_version_impl(
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

    pub(crate) async fn last_version_impl(
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

    pub(crate) async fn list_versions_impl(
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

    pub(crate) async fn replace_version_impl(
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
        if done.rows_affected() == 1 {
            return Ok(());
        }
        match self
            .get_version_impl(&v.account, v.name.as_str(), number)
            .await?
        {
            Some(_) => Err(StoreError::stale(expected_revision)),
            None => Err(StoreError::NotFound),
        }
    }

    pub(crate) async fn delete_version_impl(
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

    pub(crate) async fn insert_alias_impl(&self, a: &Alias) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO aliases (account_id, function_name, name, function_version, \
             additional_version, revision_id, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(a.account.as_str())
        .bind(&a.function_name)
        .bind(&a.name)
        .bind(&a.target.function_version)
        .bind(additional(a))
        .bind(&a.revision_id)
        .bind(encode(a)?)
        .execute(&mut *self.writer().await?)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict),
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(StoreError::NotFound)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn get_alias_impl(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError> {
        let row = sqlx::query(
            "SELECT record FROM aliases WHERE account_id = ? AND function_name = ? AND name = ?",
        )
        .bind(account.as_str())
        .bind(function)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| decode::<Alias>(r.get::<&str, _>(0)))
            .transpose()
    }

    pub(crate) async fn replace_alias_impl(
        &self,
        a: &Alias,
        expected_revision: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE aliases SET function_version = ?, additional_version = ?, revision_id = ?, \
             record = ? WHERE account_id = ? AND function_name = ? AND name = ? \
             AND revision_id = ?",
        )
        .bind(&a.target.function_version)
        .bind(additional(a))
        .bind(&a.revision_id)
        .bind(encode(a)?)
        .bind(a.account.as_str())
        .bind(&a.function_name)
        .bind(&a.name)
        .bind(expected_revision)
        .execute(&mut *self.writer().await?)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        match self
            .get_alias_impl(&a.account, &a.function_name, &a.name)
            .await?
        {
            Some(_) => Err(StoreError::stale(expected_revision)),
            None => Err(StoreError::NotFound),
        }
    }

    pub(crate) async fn delete_alias_impl(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM aliases WHERE account_id = ? AND function_name = ? AND name = ? \
             RETURNING record",
        )
        .bind(account.as_str())
        .bind(function)
        .bind(name)
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        row.map(|r| decode::<Alias>(r.get::<&str, _>(0)))
            .transpose()
    }

    pub(crate) async fn list_aliases_impl(
        &self,
        account: &AccountId,
        function: &str,
        version: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Alias>, StoreError> {
        let rows = sqlx::query(
            "SELECT record FROM aliases WHERE account_id = ?1 AND function_name = ?2 \
             AND name > ?3 AND (?4 IS NULL OR function_version = ?4 OR additional_version = ?4) \
             ORDER BY name LIMIT ?5",
        )
        .bind(account.as_str())
        .bind(function)
        .bind(after.unwrap_or(""))
        .bind(version)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| decode::<Alias>(r.get::<&str, _>(0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use stoke_core::{AliasTarget, CodeInfo, ConfigInput, FunctionName, State};

    use super::*;
    use crate::Store;

    fn function(account: &AccountId, name: &str) -> Function {
        Function {
            account: account.clone(),
            name: FunctionName::parse("functionName", name).unwrap(),
            config: ConfigInput {
                runtime: Some("wasm".into()),
                handler: Some("m.wasm".into()),
                ..Default::default()
            }
            .into_new_config()
            .unwrap(),
            code: CodeInfo {
                sha256_hex: "ab".repeat(32),
                size: 10,
                unzipped_size: 10,
            },
            state: State::Active,
            state_reason: None,
            last_update_status: None,
            last_update_reason: None,
            revision_id: "r1".into(),
            last_modified: String::new(),
            tags: BTreeMap::new(),
            generation: 1,
            version: "$LATEST".into(),
            serving: None,
            reserved_concurrency: None,
        }
    }

    fn alias(f: &Function, name: &str, version: &str) -> Alias {
        Alias {
            account: f.account.clone(),
            function_name: f.name.as_str().to_owned(),
            name: name.into(),
            target: AliasTarget {
                function_version: version.into(),
                additional_weights: BTreeMap::new(),
            },
            description: String::new(),
            revision_id: "a1".into(),
            previous: None,
        }
    }

    #[tokio::test]
    async fn version_numbers_are_never_reused_and_cascade_with_the_function() {
        let s = SqliteStore::in_memory().await.unwrap();
        let (key, _) = s.ensure_default_account().await.unwrap();
        let f = function(&key.account, "f");
        s.insert_function(&f).await.unwrap();
        let v1 = s.publish_version(&f, "r1").await.unwrap();
        let v2 = s.publish_version(&f, "r1").await.unwrap();
        assert_eq!((v1.version.as_str(), v2.version.as_str()), ("1", "2"));
        assert!(matches!(
            s.publish_version(&f, "stale").await,
            Err(StoreError::Stale { .. })
        ));
        s.delete_version(&key.account, "f", 2).await.unwrap();
        let v3 = s.publish_version(&f, "r1").await.unwrap();
        assert_eq!(v3.version, "3");
        assert_eq!(
            s.last_version(&key.account, "f")
                .await
                .unwrap()
                .unwrap()
                .version,
            "3"
        );
        let listed = s.list_versions(&key.account, "f", 0, 10).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(s.code_in_use(&f.code.sha256_hex).await.unwrap());

        s.insert_alias(&alias(&f, "live", "1")).await.unwrap();
        assert!(matches!(
            s.insert_alias(&alias(&f, "live", "3")).await,
            Err(StoreError::Conflict)
        ));
        let mut a = alias(&f, "canary", "3");
        a.target.additional_weights.insert("1".into(), 0.2);
        s.insert_alias(&a).await.unwrap();
        let to_1 = s
            .list_aliases(&key.account, "f", Some("1"), None, 10)
            .await
            .unwrap();
        assert_eq!(to_1.len(), 2);
        let all = s
            .list_aliases(&key.account, "f", None, Some("canary"), 10)
            .await
            .unwrap();
        assert_eq!(all.len(), 1);

        s.delete_function(&key.account, "f").await.unwrap();
        assert!(s.get_version(&key.account, "f", 1).await.unwrap().is_none());
        assert!(
            s.get_alias(&key.account, "f", "live")
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            s.insert_alias(&alias(&f, "x", "1")).await,
            Err(StoreError::NotFound)
        ));
    }
}
