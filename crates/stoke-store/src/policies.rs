//! Functions' resource-based policies: the [`PolicyStore`] trait. A function has one policy
//! per qualifier (`""` for the function's own, a version number or an alias name otherwise);
//! writes compare the policy's `RevisionId`, so two writers never silently overwrite each
//! other, and a function's policies go with it when it is deleted.

use async_trait::async_trait;
use stoke_core::AccountId;
use stoke_core::policy::Policy;

use crate::StoreError;

/// Policies of functions, one per qualifier.
#[async_trait]
pub trait PolicyStore: Send + Sync + 'static {
    /// The policy of `function`'s `qualifier` (`""`: the function's own), if it has one.
    async fn get_policy(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: &str,
    ) -> Result<Option<Policy>, StoreError>;

    /// Writes the policy of `function`'s `qualifier` if its revision is still `expected`
    /// (`None`: it has none yet); `policy: None` removes it. [`StoreError::Stale`] if another
    /// writer came first, [`StoreError::NotFound`] if the function is gone.
    async fn put_policy(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: &str,
        policy: Option<&Policy>,
        expected: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Removes the policy of a version or alias that is being deleted (nothing if it had none).
    async fn delete_policy(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: &str,
    ) -> Result<(), StoreError>;
}
