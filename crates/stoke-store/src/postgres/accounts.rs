//! The PostgreSQL side of accounts, access keys and settings ([`AccountStore`]).
//!
//! Secrets are written only sealed (`access_keys.sealed_secret`, see [`crate::seal`]); the
//! check value that proves which master key sealed the store is the same setting as SQLite's.
//! Where SQLite orders by rowid, these tables order by their identity column `seq`.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use stoke_core::AccountId;

use crate::accounts::{Account, DeleteRefused, KeyInfo, MAX_KEYS_PER_ACCOUNT};
use crate::sqlite::accounts::{ADMIN_NAME, account_id, new_access_key, open_secret, random_digits};
use crate::sqlite::now;
use crate::{AccessKey, AccountStore, PgStore, StoreError};

fn account_of(row: &PgRow) -> Result<Account, StoreError> {
    let limit: Option<i64> = row.get("concurrency_limit");
    Ok(Account {
        id: account_id(row.get("id"))?,
        name: row.get("name"),
        is_admin: row.get("is_default"),
        created_at: row.get("created_at"),
        concurrency: limit.and_then(|n| u32::try_from(n).ok()),
    })
}

const ACCOUNT_COLUMNS: &str = "id, name, is_default, created_at, concurrency_limit";

impl PgStore {
    fn key_of(&self, row: &PgRow) -> Result<AccessKey, StoreError> {
        let id: String = row.get(0);
        let sealed: Vec<u8> = row.get(1);
        Ok(AccessKey {
            secret: open_secret(&self.master, &id, &sealed)?,
            access_key_id: id,
            account: account_id(row.get(2))?,
        })
    }

    async fn insert_key(
        &self,
        conn: &mut sqlx::PgConnection,
        key: &AccessKey,
        at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, account_id, created_at, sealed_secret) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&key.access_key_id)
        .bind(key.account.as_str())
        .bind(at)
        .bind(self.master.seal(key.secret.as_bytes(), &key.access_key_id))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn insert_account(
        &self,
        conn: &mut sqlx::PgConnection,
        name: &str,
        is_default: bool,
    ) -> Result<(Account, AccessKey), StoreError> {
        let at = now();
        // A clash of random ids is retried; a clash of names is the caller's.
        for _ in 0..8 {
            let id = account_id(random_digits(12))?;
            let done = sqlx::query(
                "INSERT INTO accounts (id, name, is_default, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(name)
            .bind(is_default)
            .bind(&at)
            .execute(&mut *conn)
            .await;
            match done {
                Ok(d) if d.rows_affected() == 0 => continue,
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(StoreError::Conflict);
                }
                Err(e) => return Err(e.into()),
            }
            let key = new_access_key(id.clone());
            self.insert_key(conn, &key, &at).await?;
            let account = Account {
                id,
                name: name.to_owned(),
                is_admin: is_default,
                created_at: at,
                concurrency: None,
            };
            return Ok((account, key));
        }
        Err(StoreError::Conflict)
    }
}

#[async_trait]
impl AccountStore for PgStore {
    async fn ensure_default_account(&self) -> Result<(AccessKey, bool), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Nodes starting together: one makes the admin, the others wait here and read it.
        sqlx::query("LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let existing = sqlx::query(
            "SELECT k.access_key_id, k.sealed_secret, a.id FROM accounts a \
             JOIN access_keys k ON k.account_id = a.id \
             WHERE a.is_default ORDER BY k.created_at, k.seq LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Ok((self.key_of(&row)?, false));
        }
        // The admin without a key (a database edited by hand): a new key for it.
        let admin = sqlx::query("SELECT id FROM accounts WHERE is_default LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let key = match admin {
            Some(row) => {
                let key = new_access_key(account_id(row.get(0))?);
                self.insert_key(&mut tx, &key, &now()).await?;
                key
            }
            None => self.insert_account(&mut tx, ADMIN_NAME, true).await?.1,
        };
        tx.commit().await?;
        Ok((key, true))
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        let row = sqlx::query(
            "SELECT access_key_id, sealed_secret, account_id FROM access_keys \
             WHERE access_key_id = $1",
        )
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| self.key_of(&row)).transpose()
    }

    async fn setting_or_init(&self, key: &str, init: &str) -> Result<String, StoreError> {
        // One statement: the value that is there, or the one this call put.
        let row = sqlx::query(
            "WITH put AS (INSERT INTO settings (key, value) VALUES ($1, $2) \
               ON CONFLICT (key) DO NOTHING RETURNING value) \
             SELECT value FROM put UNION ALL SELECT value FROM settings WHERE key = $1 LIMIT 1",
        )
        .bind(key)
        .bind(init)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(row.get(0));
        }
        // Another node's insert committed after this statement's snapshot: read it now.
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get(0))
    }

    async fn create_account(&self, name: &str) -> Result<(Account, AccessKey), StoreError> {
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query("SELECT 1 FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict);
        }
        let made = self.insert_account(&mut tx, name, false).await?;
        tx.commit().await?;
        Ok(made)
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, seq"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account_of).collect()
    }

    async fn find_account(&self, id_or_name: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1 OR name = $1 \
             ORDER BY id = $1 DESC LIMIT 1"
        ))
        .bind(id_or_name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account_of).transpose()
    }

    async fn delete_account(
        &self,
        account: &AccountId,
    ) -> Result<Result<Vec<String>, DeleteRefused>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT is_default FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(account.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        if row.get::<bool, _>(0) {
            return Ok(Err(DeleteRefused::Admin));
        }
        let owned: i64 = sqlx::query("SELECT COUNT(*) FROM functions WHERE account_id = $1")
            .bind(account.as_str())
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        if owned > 0 {
            return Ok(Err(DeleteRefused::OwnsFunctions(
                u64::try_from(owned).unwrap_or(0),
            )));
        }
        let keys: Vec<String> =
            sqlx::query("DELETE FROM access_keys WHERE account_id = $1 RETURNING access_key_id")
                .bind(account.as_str())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(keys))
    }

    async fn set_account_concurrency(
        &self,
        account: &AccountId,
        limit: Option<u32>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE accounts SET concurrency_limit = $1 WHERE id = $2")
            .bind(limit.map(i64::from))
            .bind(account.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn create_access_key(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccessKey>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The account's row, locked: two creates at once count each other's key.
        sqlx::query("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(account.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM access_keys WHERE account_id = $1")
            .bind(account.as_str())
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_KEYS_PER_ACCOUNT {
            return Ok(None);
        }
        let key = new_access_key(account.clone());
        self.insert_key(&mut tx, &key, &now()).await?;
        tx.commit().await?;
        Ok(Some(key))
    }

    async fn list_access_keys(&self, account: &AccountId) -> Result<Vec<KeyInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT access_key_id, created_at FROM access_keys WHERE account_id = $1 \
             ORDER BY created_at, seq",
        )
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| KeyInfo {
                access_key_id: r.get(0),
                account: account.clone(),
                created_at: r.get(1),
            })
            .collect())
    }

    async fn delete_access_key(
        &self,
        account: &AccountId,
        access_key_id: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM access_keys WHERE account_id = $1 AND access_key_id = $2")
                .bind(account.as_str())
                .bind(access_key_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
