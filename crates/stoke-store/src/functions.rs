//! Functions (`$LATEST`): the [`FunctionStore`] trait.

use async_trait::async_trait;
use stoke_core::{AccountId, Function};

use crate::StoreError;

/// What an account has stored: for GetAccountSettings' `AccountUsage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountUsage {
    pub function_count: u64,
    pub total_code_size: u64,
}

/// Functions, each under its account and name. A function's versions and aliases go with it
/// when it is deleted.
#[async_trait]
pub trait FunctionStore: Send + Sync + 'static {
    /// Adds a function; [`StoreError::Conflict`] if one of that name exists in the account.
    async fn insert_function(&self, f: &Function) -> Result<(), StoreError>;

    /// Replaces a function if its stored `RevisionId` is still `expected_revision`;
    /// [`StoreError::Stale`] if it changed, [`StoreError::NotFound`] if it is gone.
    async fn replace_function(
        &self,
        f: &Function,
        expected_revision: &str,
    ) -> Result<(), StoreError>;

    async fn get_function(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError>;

    /// Removes a function and answers what it was.
    async fn delete_function(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError>;

    /// Functions of an account in name order, starting after `after`, at most `limit`.
    async fn list_functions(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Function>, StoreError>;

    /// Every function of every account (for the start-up pass that resumes unfinished work).
    async fn all_functions(&self) -> Result<Vec<Function>, StoreError>;

    /// The account's functions and the code size of them and their versions.
    async fn account_usage(&self, account: &AccountId) -> Result<AccountUsage, StoreError>;

    /// Whether any function (its code or the code it serves) or version still uses the code
    /// blob with this SHA-256 (hex).
    async fn code_in_use(&self, sha256_hex: &str) -> Result<bool, StoreError>;
}
