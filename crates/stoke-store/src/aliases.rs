//! Aliases of functions: the [`AliasStore`] trait.

use async_trait::async_trait;
use stoke_core::{AccountId, Alias};

use crate::StoreError;

/// Aliases, each under its function; they go with the function when it is deleted.
#[async_trait]
pub trait AliasStore: Send + Sync + 'static {
    /// Adds an alias; [`StoreError::Conflict`] if the name is taken, [`StoreError::NotFound`]
    /// if the function is gone.
    async fn insert_alias(&self, a: &Alias) -> Result<(), StoreError>;

    async fn get_alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError>;

    /// Replaces an alias if its `RevisionId` is still `expected_revision`.
    async fn replace_alias(&self, a: &Alias, expected_revision: &str) -> Result<(), StoreError>;

    async fn delete_alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError>;

    /// Aliases in name order after `after`, at most `limit`; with `version`, only those that
    /// route calls to it.
    async fn list_aliases(
        &self,
        account: &AccountId,
        function: &str,
        version: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Alias>, StoreError>;
}
