//! The SQLite side of accounts, access keys and settings ([`AccountStore`]).

use async_trait::async_trait;
use rand::Rng;
use sqlx::Row;
use stoke_core::AccountId;

use super::now;
use crate::{AccessKey, AccountStore, SqliteStore, StoreError};

fn random_digits(n: usize) -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(n);
    s.push(char::from(b'1' + rng.random_range(0..9u8)));
    while s.len() < n {
        s.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    s
}

fn random_from(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// A new access key in AWS's shape: `AKIA` and 16 upper-case characters, a 40-character secret.
fn new_access_key(account: AccountId) -> AccessKey {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    AccessKey {
        access_key_id: format!("AKIA{}", random_from(UPPER, 16)),
        secret: random_from(SECRET, 40),
        account,
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn ensure_default_account(&self) -> Result<(AccessKey, bool), StoreError> {
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
        let existing = sqlx::query(
            "SELECT k.access_key_id, k.secret, a.id FROM accounts a \
             JOIN access_keys k ON k.account_id = a.id \
             WHERE a.is_default = 1 ORDER BY k.created_at LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let account: String = row.get(2);
            return Ok((
                AccessKey {
                    access_key_id: row.get(0),
                    secret: row.get(1),
                    account: AccountId::try_from(account).map_err(StoreError::Corrupt)?,
                },
                false,
            ));
        }
        let account = AccountId::try_from(random_digits(12)).map_err(StoreError::Corrupt)?;
        let key = new_access_key(account.clone());
        let at = now();
        sqlx::query("INSERT INTO accounts (id, is_default, created_at) VALUES (?, 1, ?)")
            .bind(account.as_str())
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, secret, account_id, created_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(&key.access_key_id)
        .bind(&key.secret)
        .bind(account.as_str())
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((key, true))
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        let row = sqlx::query(
            "SELECT access_key_id, secret, account_id FROM access_keys WHERE access_key_id = ?",
        )
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(AccessKey {
                access_key_id: row.get(0),
                secret: row.get(1),
                account: AccountId::try_from(row.get::<String, _>(2))
                    .map_err(StoreError::Corrupt)?,
            })
        })
        .transpose()
    }

    async fn setting_or_init(&self, key: &str, init: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING")
            .bind(key)
            .bind(init)
            .execute(&mut *self.writer().await?)
            .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get(0))
    }
}
