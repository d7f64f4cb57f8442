//! Accounts, their access keys and the server's settings: the [`AccountStore`] trait.
//!
//! The default account (the first start's, the admin) is made once; the admin makes the
//! others, each with a unique name. An access key's secret is handed out in clear only here,
//! in memory: an implementation stores it sealed under the store's master key (see
//! [`crate::seal`]) and never writes it in clear.

use async_trait::async_trait;
use stoke_core::AccountId;

use crate::StoreError;

/// The most active access keys an account may have at once (as IAM allows a user).
pub const MAX_KEYS_PER_ACCOUNT: usize = 2;

/// An access key and the account it signs for. Its `Debug` redacts the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret: String,
    pub account: AccountId,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret", &"<redacted>")
            .field("account", &self.account)
            .finish()
    }
}

/// An access key as listed: no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub access_key_id: String,
    pub account: AccountId,
    pub created_at: String,
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    /// Unique among accounts (the default account's is `admin`).
    pub name: String,
    /// The default account, made by the first start: the one that manages the others.
    pub is_admin: bool,
    pub created_at: String,
    /// Calls of the account's functions that may run at once; `None` is the server's default.
    pub concurrency: Option<u32>,
}

/// Why an account could not be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteRefused {
    /// The admin account is never deleted.
    Admin,
    /// The account still owns this many functions.
    OwnsFunctions(u64),
}

/// Accounts, access keys and settings.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// The default account and its first access key, created on the first call.
    /// The flag says whether they were created now.
    async fn ensure_default_account(&self) -> Result<(AccessKey, bool), StoreError>;

    /// The access key with this id, if any.
    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError>;

    /// A server setting, created with `init` on the first call (for secrets the server makes
    /// once and keeps, such as the key of presigned code URLs).
    async fn setting_or_init(&self, key: &str, init: &str) -> Result<String, StoreError>;

    /// A new account named `name` with its first access key; [`StoreError::Conflict`] if an
    /// account has that name.
    async fn create_account(&self, name: &str) -> Result<(Account, AccessKey), StoreError>;

    /// Every account, oldest first.
    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError>;

    /// The account with this id or, failing that, this name.
    async fn find_account(&self, id_or_name: &str) -> Result<Option<Account>, StoreError>;

    /// Deletes an account and its keys, unless it is the admin or still owns functions
    /// (`Ok(Err(..))` says which); [`StoreError::NotFound`] if there is no such account.
    /// Answers the ids of the keys that went.
    async fn delete_account(
        &self,
        account: &AccountId,
    ) -> Result<Result<Vec<String>, DeleteRefused>, StoreError>;

    /// Sets the account's concurrency limit (`None`: the server's default).
    async fn set_account_concurrency(
        &self,
        account: &AccountId,
        limit: Option<u32>,
    ) -> Result<(), StoreError>;

    /// A new access key for the account; [`StoreError::NotFound`] if there is no such
    /// account, `Ok(None)` if it has [`MAX_KEYS_PER_ACCOUNT`] already.
    async fn create_access_key(&self, account: &AccountId)
    -> Result<Option<AccessKey>, StoreError>;

    /// The account's access keys, oldest first.
    async fn list_access_keys(&self, account: &AccountId) -> Result<Vec<KeyInfo>, StoreError>;

    /// Deletes an access key of the account; answers whether there was one.
    async fn delete_access_key(
        &self,
        account: &AccountId,
        access_key_id: &str,
    ) -> Result<bool, StoreError>;
}
