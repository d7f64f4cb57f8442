//! Concurrency limits across a cluster: the slots of the store's [`SlotStore`], held by the
//! calls of this node.
//!
//! With several nodes on one store, each node's own counters (`pool`) see only its calls. A
//! call admitted there also takes a slot of its limit in the store before it runs
//! ([`ClusterSlots::acquire`]): of its function's reservation (`r/<account>/<function>`, as
//! many slots as it reserves) or of its account's unreserved concurrency (`u/<account>`), and
//! of the caller's when another account calls. The slot is given back when the call ends
//! ([`SlotGuard`]'s drop). Slots are held under this node's id with an expiry that a loop
//! renews (every third of it) while the node lives: the slots of a node that dies are free
//! again within that time. At start the node gives back what its previous run held.

use std::sync::{Arc, Weak};
use std::time::Duration;

use stoke_store::{Store, StoreError};

/// How long a release that failed waits before it tries again.
const RELEASE_AGAIN: Duration = Duration::from_millis(500);

/// This node's hold on the store's concurrency slots.
pub struct ClusterSlots {
    store: Arc<dyn Store>,
    /// This node's id: the owner of its slots.
    owner: String,
    /// How long a slot outlives the node's last renewal.
    ttl: Duration,
}

impl std::fmt::Debug for ClusterSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSlots")
            .field("owner", &self.owner)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl ClusterSlots {
    /// Gives back what `owner`'s previous run held and starts renewing its slots every third
    /// of `ttl`, for as long as the answer lives.
    pub async fn start(
        store: Arc<dyn Store>,
        owner: String,
        ttl: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        let released = store.release_slots_of(&owner).await?;
        if released > 0 {
            tracing::info!(
                released,
                "gave back the concurrency slots of this node's last run"
            );
        }
        let me = Arc::new(Self { store, owner, ttl });
        let weak: Weak<Self> = Arc::downgrade(&me);
        let every = (ttl / 3).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { break };
                if let Err(e) = me.store.renew_slots(&me.owner, millis(me.ttl)).await {
                    tracing::warn!(error = %e, "renewing this node's concurrency slots failed");
                }
            }
        });
        Ok(me)
    }

    /// A slot of `scope` among its first `cap` for one call, or `None` when all are held.
    pub async fn acquire(
        self: &Arc<Self>,
        scope: String,
        cap: u32,
    ) -> Result<Option<SlotGuard>, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let got = self
            .store
            .acquire_slot(&scope, cap, &self.owner, &token, millis(self.ttl))
            .await?;
        Ok(got.map(|_| SlotGuard {
            slots: Arc::clone(self),
            scope,
            token,
        }))
    }

    /// The scope of a function's reservation.
    pub fn reserved_scope(account: &str, function: &str) -> String {
        format!("r/{account}/{function}")
    }

    /// The scope of an account's unreserved concurrency.
    pub fn unreserved_scope(account: &str) -> String {
        format!("u/{account}")
    }
}

/// One call's slot, given back when dropped (by a task: the call's answer does not wait).
pub struct SlotGuard {
    slots: Arc<ClusterSlots>,
    scope: String,
    token: String,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let slots = Arc::clone(&self.slots);
        let scope = std::mem::take(&mut self.scope);
        let token = std::mem::take(&mut self.token);
        // Without a runtime (shutting down) the slot expires instead.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                // Tried again for twice the expiry: past it the slot has expired (the renewal
                // keeps only live slots), whatever became of the store.
                let give_up = tokio::time::Instant::now() + slots.ttl * 2;
                while let Err(e) = slots.store.release_slot(&scope, &token).await {
                    if tokio::time::Instant::now() >= give_up {
                        tracing::warn!(error = %e, "giving back a concurrency slot failed; it expires");
                        return;
                    }
                    tokio::time::sleep(RELEASE_AGAIN).await;
                }
            });
        }
    }
}
