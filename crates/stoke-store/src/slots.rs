//! Concurrency slots shared by every node: how a limit (a function's reserved concurrency,
//! an account's unreserved concurrency) holds across a cluster.
//!
//! A limit of N is N numbered slots of a scope (`scope` is the caller's name for the limit).
//! A call takes a free slot before it runs and gives it back after ([`SlotStore::acquire_slot`],
//! [`SlotStore::release_slot`]); a slot is held under the node's name with an expiry, which the
//! node renews while it lives ([`SlotStore::renew_slots`]). A node that dies stops renewing,
//! and its slots are free again once they expire. A node that starts gives back what its
//! previous run held ([`SlotStore::release_slots_of`]).

use async_trait::async_trait;

use crate::StoreError;

/// Slots of concurrency limits, held with an expiry.
#[async_trait]
pub trait SlotStore: Send + Sync + 'static {
    /// Takes a free slot of `scope` among its first `cap` for `owner`, under `token` (the
    /// call's own name, given back to release it), for `ttl_ms`: the slot's number, or `None`
    /// when all `cap` are held (an expired slot is free).
    async fn acquire_slot(
        &self,
        scope: &str,
        cap: u32,
        owner: &str,
        token: &str,
        ttl_ms: i64,
    ) -> Result<Option<u32>, StoreError>;

    /// Gives back the slot of `scope` held under `token` (nothing if it is not held).
    async fn release_slot(&self, scope: &str, token: &str) -> Result<(), StoreError>;

    /// Extends every slot `owner` holds to `ttl_ms` from now: how many. A slot that has
    /// expired stays expired (a slot whose release failed is not kept alive for ever).
    async fn renew_slots(&self, owner: &str, ttl_ms: i64) -> Result<u64, StoreError>;

    /// Gives back every slot `owner` holds (at start, or leaving): how many.
    async fn release_slots_of(&self, owner: &str) -> Result<u64, StoreError>;

    /// The slots of `scope` held now (not expired).
    async fn held_slots(&self, scope: &str) -> Result<u32, StoreError>;
}
