//! Concurrency limits across a cluster: the slots of the store's [`SlotStore`], held by the
//! calls of this node.
//!
//! With several nodes on one store, each node's own counters (`pool`) see only its calls. A
//! call admitted there also takes a slot of its limit in the store before it runs
//! ([`ClusterSlots::acquire`]): of its function's reservation (`r/<account>/<function>`, as
//! many slots as it reserves) or of its account's unreserved concurrency (`u/<account>`), and
//! of the caller's when another account calls.
//!
//! A slot a call gives back ([`SlotGuard`]'s drop) stays with this node, idle, for
//! [`LINGER`]: the next call of the same limit here takes it without asking the store, so a
//! steady stream of calls costs the store nothing per call. A node keeps idle at most one
//! [`IDLE_SHARE`]th of a limit (none of a limit under that), so that the slots it keeps from
//! the other nodes are few: a small reservation is exact, each call asking the store, as
//! Lambda would let another call in the moment one ends. A slot idle longer is given back
//! to the store by a loop that also renews, every third of the expiry, every slot this node
//! holds (in use or idle): the slots of a node that dies are free again within the expiry.
//! A call that finds its limit full while this node is still giving back slots of it (calls
//! that have answered: the release is a task, the answer does not wait) waits for those
//! releases and asks again, so one client's calls one after another are never turned away.
//! An idle slot is only used again while the renewals hold: one renewal that fails (the store
//! unreachable) makes every slot held since suspect, and those go back to the store instead
//! of being used again (their rows may have expired and been taken by another node). At start
//! the node gives back what its previous run held; leaving, what it holds.
//!
//! [`SlotStore`]: stoke_store::SlotStore

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use stoke_store::{Store, StoreError};
use tokio::time::Instant;

/// How long a slot no call uses stays with this node before it goes back to the store.
pub const LINGER: Duration = Duration::from_secs(1);
/// A node keeps idle at most this fraction (one in so many) of a limit's slots.
pub const IDLE_SHARE: u32 = 16;
/// How often idle slots are looked at to give back.
const REAP_EVERY: Duration = Duration::from_millis(250);
/// How long a call that finds its limit full waits for this node's own slots of it that are
/// being given back (calls that have answered) before it is turned away.
const WAIT_FOR_RELEASES: Duration = Duration::from_secs(1);
/// How long a release that failed waits before it tries again.
const RELEASE_AGAIN: Duration = Duration::from_millis(500);

/// A slot this node holds that no call is using.
struct Idle {
    slot: u32,
    token: String,
    since: Instant,
    /// The renewal epoch it was held in (see [`ClusterSlots::epoch`]).
    epoch: u64,
}

/// This node's hold on the store's concurrency slots.
pub struct ClusterSlots {
    store: Arc<dyn Store>,
    /// This node's id: the owner of its slots.
    owner: String,
    /// How long a slot outlives the node's last renewal.
    ttl: Duration,
    /// Idle slots by scope, the latest given back last.
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    /// Moves on each renewal that fails: a slot held across a move is not used again.
    epoch: AtomicU64,
    /// Slots being given back to the store now, by scope.
    releasing: Mutex<HashMap<String, u32>>,
    /// Told each time one of those is done.
    released: tokio::sync::Notify,
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
    /// Gives back what `owner`'s previous run held and starts the loop that renews this
    /// node's slots every third of `ttl` and gives back those idle past [`LINGER`], for as
    /// long as the answer lives.
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
        let me = Arc::new(Self {
            store,
            owner,
            ttl,
            idle: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            releasing: Mutex::new(HashMap::new()),
            released: tokio::sync::Notify::new(),
        });
        let weak: Weak<Self> = Arc::downgrade(&me);
        let renew_every = (ttl / 3).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REAP_EVERY.min(renew_every));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut renewed = Instant::now();
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { break };
                if renewed.elapsed() >= renew_every {
                    renewed = Instant::now();
                    if let Err(e) = me.store.renew_slots(&me.owner, millis(me.ttl)).await {
                        me.epoch.fetch_add(1, Ordering::SeqCst);
                        tracing::warn!(error = %e, "renewing this node's concurrency slots failed");
                    }
                }
                me.give_back_idle(LINGER).await;
            }
        });
        Ok(me)
    }

    /// A slot of `scope` among its first `cap` for one call, or `None` when all are held:
    /// one of this node's idle slots when it has one, else a slot from the store.
    pub async fn acquire(
        self: &Arc<Self>,
        scope: String,
        cap: u32,
    ) -> Result<Option<SlotGuard>, StoreError> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        if let Some(idle) = self.take_idle(&scope, cap, epoch) {
            return Ok(Some(self.guard(scope, cap, idle.slot, idle.token, epoch)));
        }
        let token = uuid::Uuid::new_v4().to_string();
        let give_up = Instant::now() + WAIT_FOR_RELEASES;
        loop {
            // Asked for before the count is read, so that a release ending in between wakes it.
            let released = self.released.notified();
            let got = self
                .store
                .acquire_slot(&scope, cap, &self.owner, &token, millis(self.ttl))
                .await?;
            if let Some(slot) = got {
                return Ok(Some(self.guard(scope, cap, slot, token, epoch)));
            }
            // Full. If this node is still giving slots of the limit back (calls that have
            // answered), the limit is not full: wait for them rather than turn a call away
            // that the calls before it made room for.
            if self.releasing(&scope) == 0 || Instant::now() >= give_up {
                return Ok(None);
            }
            let _ = tokio::time::timeout_at(give_up, released).await;
        }
    }

    /// How many of `scope`'s slots this node is giving back to the store now.
    fn releasing(&self, scope: &str) -> u32 {
        self.releasing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(scope)
            .copied()
            .unwrap_or(0)
    }

    /// Gives back to the store every slot idle for `linger` or longer, and every slot held
    /// across a failed renewal.
    async fn give_back_idle(self: &Arc<Self>, linger: Duration) {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.retain(|scope, slots| {
                slots.retain(|s| {
                    let keep = s.epoch == epoch && now.duration_since(s.since) < linger;
                    if !keep {
                        due.push((scope.clone(), s.token.clone()));
                    }
                    keep
                });
                !slots.is_empty()
            });
        }
        for (scope, token) in due {
            self.release(scope, token);
        }
    }

    /// Gives back every slot this node holds (it is leaving; calls still running lose theirs
    /// to the store's expiry only if this fails).
    pub async fn leave(&self) {
        // A slot given back from now on goes to the store, not to the idle set.
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        if let Err(e) = self.store.release_slots_of(&self.owner).await {
            tracing::warn!(error = %e, "giving back this node's concurrency slots failed; they expire");
        }
    }

    /// The latest idle slot of `scope` below `cap` held in `epoch`, taken out of the idle set.
    fn take_idle(&self, scope: &str, cap: u32, epoch: u64) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let slots = idle.get_mut(scope)?;
        let i = slots
            .iter()
            .rposition(|s| s.slot < cap && s.epoch == epoch)?;
        Some(slots.swap_remove(i))
    }

    fn guard(
        self: &Arc<Self>,
        scope: String,
        cap: u32,
        slot: u32,
        token: String,
        epoch: u64,
    ) -> SlotGuard {
        SlotGuard {
            slots: Arc::clone(self),
            scope,
            cap,
            slot,
            token,
            epoch,
        }
    }

    /// A slot no call uses, of a limit of `cap`: idle here when the renewals held since it was
    /// taken and this node keeps fewer than its share of the limit idle, else back to the
    /// store.
    fn put_back(self: &Arc<Self>, scope: String, cap: u32, slot: u32, token: String, epoch: u64) {
        if epoch == self.epoch.load(Ordering::SeqCst) {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let slots = idle.entry(scope.clone()).or_default();
            if slots.len() < (cap / IDLE_SHARE) as usize {
                slots.push(Idle {
                    slot,
                    token,
                    since: Instant::now(),
                    epoch,
                });
                return;
            }
            if slots.is_empty() {
                idle.remove(&scope);
            }
        }
        self.release(scope, token);
    }

    /// Gives `scope`'s slot held under `token` back to the store, by a task that tries again
    /// for twice the expiry (past it the slot has expired, whatever became of the store).
    fn release(self: &Arc<Self>, scope: String, token: String) {
        // Without a runtime (shutting down) the slot expires instead.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        *self
            .releasing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(scope.clone())
            .or_default() += 1;
        let me = Arc::clone(self);
        rt.spawn(async move {
            let give_up = Instant::now() + me.ttl * 2;
            while let Err(e) = me.store.release_slot(&scope, &token).await {
                if Instant::now() >= give_up {
                    tracing::warn!(error = %e, "giving back a concurrency slot failed; it expires");
                    break;
                }
                tokio::time::sleep(RELEASE_AGAIN).await;
            }
            {
                let mut releasing = me.releasing.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(n) = releasing.get_mut(&scope) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        releasing.remove(&scope);
                    }
                }
            }
            me.released.notify_waiters();
        });
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

/// One call's slot, kept idle by this node when dropped (see [`LINGER`]).
pub struct SlotGuard {
    slots: Arc<ClusterSlots>,
    scope: String,
    /// The limit it was taken under.
    cap: u32,
    slot: u32,
    token: String,
    epoch: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let scope = std::mem::take(&mut self.scope);
        let token = std::mem::take(&mut self.token);
        self.slots
            .put_back(scope, self.cap, self.slot, token, self.epoch);
    }
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
