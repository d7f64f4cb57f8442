//! Accounts, their access keys and the server's settings: the [`AccountStore`] trait.

use async_trait::async_trait;
use stoke_core::AccountId;

use crate::StoreError;

/// An access key and the account it signs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret: String,
    pub account: AccountId,
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
}
