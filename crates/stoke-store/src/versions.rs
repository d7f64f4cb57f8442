//! Published versions of functions: the [`VersionStore`] trait.

use async_trait::async_trait;
use stoke_core::{AccountId, Function};

use crate::StoreError;

/// Published versions. A version's number comes from a counter of its function, so numbers
/// are never reused, even after a delete.
#[async_trait]
pub trait VersionStore: Send + Sync + 'static {
    /// Publishes `version` (a copy of `$LATEST`) under the next version number, if `$LATEST`'s
    /// `RevisionId` is still `expected_latest_revision`. Answers the version as stored (with
    /// its number). [`StoreError::Stale`] or [`StoreError::NotFound`] as for replaces.
    async fn publish_version(
        &self,
        version: &Function,
        expected_latest_revision: &str,
    ) -> Result<Function, StoreError>;

    async fn get_version(
        &self,
        account: &AccountId,
        name: &str,
        version: u64,
    ) -> Result<Option<Function>, StoreError>;

    /// The highest-numbered version that exists.
    async fn last_version(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError>;

    /// Versions in number order, after `after`, at most `limit`.
    async fn list_versions(
        &self,
        account: &AccountId,
        name: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Function>, StoreError>;

    /// Replaces a version's record (its state) if its `RevisionId` is `expected_revision`.
    async fn replace_version(
        &self,
        v: &Function,
        expected_revision: &str,
    ) -> Result<(), StoreError>;

    async fn delete_version(
        &self,
        account: &AccountId,
        name: &str,
        version: u64,
    ) -> Result<Option<Function>, StoreError>;
}
