//! The SQLite side of accounts, access keys and settings ([`AccountStore`]).
//!
//! Secrets are written only sealed (`access_keys.sealed_secret`, see [`crate::seal`]). At
//! open, the store checks that its master key is the one the database was sealed with (a
//! value sealed under the first key, in `settings`), and seals the clear-text secrets a
//! database from before sealing still holds (`legacy_secret`), clearing them.

use async_trait::async_trait;
use rand::Rng;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use stoke_core::AccountId;

use super::now;
use crate::accounts::{Account, DeleteRefused, KeyInfo, MAX_KEYS_PER_ACCOUNT};
use crate::{AccessKey, AccountStore, MasterKey, SqliteStore, StoreError};

/// The setting that proves which master key sealed this database.
pub(crate) const CHECK_SETTING: &str = "master-key-check";
/// What the check setting holds, sealed.
pub(crate) const CHECK_PLAIN: &[u8] = b"stoke master key check";

/// The default account's name.
pub(crate) const ADMIN_NAME: &str = "admin";

pub(crate) fn random_digits(n: usize) -> String {
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
pub(crate) fn new_access_key(account: AccountId) -> AccessKey {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    AccessKey {
        access_key_id: format!("AKIA{}", random_from(UPPER, 16)),
        secret: random_from(SECRET, 40),
        account,
    }
}

pub(crate) fn account_id(s: String) -> Result<AccountId, StoreError> {
    AccountId::try_from(s).map_err(StoreError::Corrupt)
}

fn account_of(row: &SqliteRow) -> Result<Account, StoreError> {
    let limit: Option<i64> = row.get("concurrency_limit");
    Ok(Account {
        id: account_id(row.get("id"))?,
        name: row.get("name"),
        is_admin: row.get::<i64, _>("is_default") == 1,
        created_at: row.get("created_at"),
        concurrency: limit.and_then(|n| u32::try_from(n).ok()),
    })
}

/// Checks that `master` sealed the store's secrets (the first open records a value sealed
/// with it in the settings); [`StoreError::MasterKey`] if another key did.
pub(crate) async fn verify_master_key<S: AccountStore + ?Sized>(
    store: &S,
    master: &MasterKey,
) -> Result<(), StoreError> {
    let fresh = hex::encode(master.seal(CHECK_PLAIN, CHECK_SETTING));
    let stored = store.setting_or_init(CHECK_SETTING, &fresh).await?;
    let opens = hex::decode(&stored)
        .ok()
        .and_then(|b| master.open(&b, CHECK_SETTING).ok())
        .is_some_and(|p| p.as_slice() == CHECK_PLAIN);
    if !opens {
        return Err(StoreError::MasterKey(
            "the store's secrets were sealed with another master key: start with the \
             master key this store was first started with (STOKE_MASTER_KEY or the \
             data dir's master.key)"
                .into(),
        ));
    }
    Ok(())
}

/// The secret of a stored key, opened with `master`.
pub(crate) fn open_secret(
    master: &MasterKey,
    id: &str,
    sealed: &[u8],
) -> Result<String, StoreError> {
    let plain = master
        .open(sealed, id)
        .map_err(|e| StoreError::MasterKey(format!("access key {id}: {e}")))?;
    String::from_utf8(plain.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("access key {id}: a secret is not text")))
}

const ACCOUNT_COLUMNS: &str = "id, name, is_default, created_at, concurrency_limit";

impl SqliteStore {
    /// Checks that this store's master key sealed the database (see [`verify_master_key`]).
    pub(crate) async fn check_master_key(&self) -> Result<(), StoreError> {
        verify_master_key(self, &self.master).await
    }

    /// Seals the secrets still held in clear (databases from before sealing) and clears them.
    pub(crate) async fn seal_legacy_secrets(&self) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let rows = sqlx::query(
            "SELECT access_key_id, legacy_secret FROM access_keys \
             WHERE legacy_secret IS NOT NULL",
        )
        .fetch_all(&mut *w)
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        // The clear text is overwritten where it was, not left in free space.
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(&mut *w)
            .await?;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
        for row in &rows {
            let id: String = row.get(0);
            let secret: String = row.get(1);
            sqlx::query(
                "UPDATE access_keys SET sealed_secret = ?, legacy_secret = NULL \
                 WHERE access_key_id = ?",
            )
            .bind(self.master.seal(secret.as_bytes(), &id))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        // The WAL still holds page images with the clear text: write them back (zeroed by
        // secure_delete) and empty it.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *w)
            .await?;
        sqlx::query("PRAGMA secure_delete = OFF")
            .execute(&mut *w)
            .await?;
        tracing::info!(
            keys = rows.len(),
            "sealed access key secrets stored in clear"
        );
        Ok(())
    }

    /// The secret of a stored key, opened.
    fn open_secret(&self, id: &str, sealed: &[u8]) -> Result<String, StoreError> {
        open_secret(&self.master, id, sealed)
    }

    async fn insert_key(
        &self,
        conn: &mut sqlx::SqliteConnection,
        key: &AccessKey,
        at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, account_id, created_at, sealed_secret) \
             VALUES (?, ?, ?, ?)",
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
        conn: &mut sqlx::SqliteConnection,
        name: &str,
        is_default: bool,
    ) -> Result<(Account, AccessKey), StoreError> {
        let at = now();
        // A clash of random ids is retried; a clash of names is the caller's.
        for _ in 0..8 {
            let id = account_id(random_digits(12))?;
            let done = sqlx::query(
                "INSERT INTO accounts (id, name, is_default, created_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT(id) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(name)
            .bind(i64::from(is_default))
            .bind(&at)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                continue;
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
impl AccountStore for SqliteStore {
    async fn ensure_default_account(&self) -> Result<(AccessKey, bool), StoreError> {
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
        let existing = sqlx::query(
            "SELECT k.access_key_id, k.sealed_secret, a.id FROM accounts a \
             JOIN access_keys k ON k.account_id = a.id \
             WHERE a.is_default = 1 ORDER BY k.created_at, k.rowid LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let id: String = row.get(0);
            let sealed: Vec<u8> = row.get(1);
            return Ok((
                AccessKey {
                    secret: self.open_secret(&id, &sealed)?,
                    access_key_id: id,
                    account: account_id(row.get(2))?,
                },
                false,
            ));
        }
        // The admin without a key (a database edited by hand): a new key for it.
        let admin = sqlx::query("SELECT id FROM accounts WHERE is_default = 1 LIMIT 1")
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
             WHERE access_key_id = ? AND sealed_secret IS NOT NULL",
        )
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let id: String = row.get(0);
            let sealed: Vec<u8> = row.get(1);
            Ok(AccessKey {
                secret: self.open_secret(&id, &sealed)?,
                access_key_id: id,
                account: account_id(row.get(2))?,
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

    async fn create_account(&self, name: &str) -> Result<(Account, AccessKey), StoreError> {
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
        let taken = sqlx::query("SELECT 1 FROM accounts WHERE name = ?")
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
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, rowid"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account_of).collect()
    }

    async fn find_account(&self, id_or_name: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1 OR name = ?1 \
             ORDER BY id = ?1 DESC LIMIT 1"
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
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
        let row = sqlx::query("SELECT is_default FROM accounts WHERE id = ?")
            .bind(account.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        if row.get::<i64, _>(0) == 1 {
            return Ok(Err(DeleteRefused::Admin));
        }
        let owned: i64 = sqlx::query("SELECT COUNT(*) FROM functions WHERE account_id = ?")
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
            sqlx::query("DELETE FROM access_keys WHERE account_id = ? RETURNING access_key_id")
                .bind(account.as_str())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
        sqlx::query("DELETE FROM accounts WHERE id = ?")
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
        let done = sqlx::query("UPDATE accounts SET concurrency_limit = ? WHERE id = ?")
            .bind(limit.map(i64::from))
            .bind(account.as_str())
            .execute(&mut *self.writer().await?)
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
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
        sqlx::query("SELECT 1 FROM accounts WHERE id = ?")
            .bind(account.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM access_keys WHERE account_id = ?")
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
            "SELECT access_key_id, created_at FROM access_keys WHERE account_id = ? \
             ORDER BY created_at, rowid",
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
            sqlx::query("DELETE FROM access_keys WHERE account_id = ? AND access_key_id = ?")
                .bind(account.as_str())
                .bind(access_key_id)
                .execute(&mut *self.writer().await?)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
