//! Tests of [`ClusterSlots`]: idle slots used again without the store, given back after
//! their linger, kept only up to a node's share of a limit, never used again past a lowered
//! limit or a failed renewal; two nodes on one store.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use stoke_store::{SqliteStore, Store};

use super::ClusterSlots;

const TTL: Duration = Duration::from_secs(10);
const SCOPE: &str = "r/000000000000/f";

async fn two_nodes() -> (Arc<dyn Store>, Arc<ClusterSlots>, Arc<ClusterSlots>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let a = ClusterSlots::start(Arc::clone(&store), "a".into(), TTL)
        .await
        .unwrap();
    let b = ClusterSlots::start(Arc::clone(&store), "b".into(), TTL)
        .await
        .unwrap();
    (store, a, b)
}

/// Waits until the store holds `n` slots of [`SCOPE`] (releases run on tasks).
async fn held(store: &Arc<dyn Store>, n: u32) {
    for _ in 0..200 {
        if store.held_slots(SCOPE).await.unwrap() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the store never held {n} slots of {SCOPE}");
}

/// A limit of which a node may keep two slots idle.
const CAP: u32 = 2 * super::IDLE_SHARE;

#[tokio::test]
async fn a_slot_given_back_stays_with_its_node_until_it_lingers_out() {
    let (store, a, _b) = two_nodes().await;
    let first = a
        .acquire(SCOPE.into(), CAP)
        .await
        .unwrap()
        .expect("a free slot");
    let (slot, token) = (first.slot, first.token.clone());
    drop(first);
    // Still held in the store, by `a`, idle: `a`'s next call takes it without a new slot.
    held(&store, 1).await;
    let again = a.acquire(SCOPE.into(), CAP).await.unwrap().unwrap();
    assert_eq!((again.slot, &again.token), (slot, &token));
    held(&store, 1).await;
    drop(again);
    a.give_back_idle(Duration::ZERO).await;
    held(&store, 0).await;
    assert!(a.idle.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_small_limit_keeps_no_slot_idle() {
    let (store, a, b) = two_nodes().await;
    drop(a.acquire(SCOPE.into(), 1).await.unwrap().unwrap());
    held(&store, 0).await;
    // The other node's call gets in the moment the first ends, as on Lambda.
    assert!(b.acquire(SCOPE.into(), 1).await.unwrap().is_some());
}

#[tokio::test]
async fn a_node_keeps_its_share_idle_and_none_past_a_lowered_limit() {
    let (store, a, _b) = two_nodes().await;
    let mut all = Vec::new();
    for _ in 0..CAP {
        all.push(a.acquire(SCOPE.into(), CAP).await.unwrap().unwrap());
    }
    assert!(a.acquire(SCOPE.into(), CAP).await.unwrap().is_none());
    // Given back highest first: the two highest stay idle, the rest go to the store.
    all.sort_by_key(|g| std::cmp::Reverse(g.slot));
    drop(all);
    held(&store, 2).await;
    // The limit is lowered below both idle slots: a call takes a slot under it from the store.
    let low = a.acquire(SCOPE.into(), CAP / 2).await.unwrap().unwrap();
    assert!(low.slot < CAP / 2, "{}", low.slot);
    held(&store, 3).await;
    drop(low);
    a.give_back_idle(Duration::ZERO).await;
    held(&store, 0).await;
}

#[tokio::test]
async fn slots_held_across_a_failed_renewal_go_back_to_the_store() {
    let (store, a, b) = two_nodes().await;
    let running = a.acquire(SCOPE.into(), CAP).await.unwrap().unwrap();
    let idle = a.acquire(SCOPE.into(), CAP).await.unwrap().unwrap();
    drop(idle);
    // A renewal failed: the idle slot is given back at the next look, whatever its age…
    a.epoch.fetch_add(1, Ordering::SeqCst);
    a.give_back_idle(LONG).await;
    held(&store, 1).await;
    // …and the running call's slot when it ends, not kept idle.
    drop(running);
    held(&store, 0).await;
    assert!(a.idle.lock().unwrap().is_empty());
    assert!(b.acquire(SCOPE.into(), CAP).await.unwrap().is_some());
}

const LONG: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn leaving_gives_back_every_slot() {
    let (store, a, _b) = two_nodes().await;
    let running = a.acquire(SCOPE.into(), CAP).await.unwrap().unwrap();
    drop(a.acquire(SCOPE.into(), CAP).await.unwrap().unwrap());
    held(&store, 2).await;
    a.leave().await;
    held(&store, 0).await;
    // A call still running then gives its slot to the store, not to the idle set.
    drop(running);
    assert!(a.idle.lock().unwrap().is_empty());
}

#[tokio::test]
async fn calls_one_after_another_are_not_turned_away_by_their_own_releases() {
    let (_store, a, _b) = two_nodes().await;
    // Each slot goes back to the store by a task after its call; the next call of a limit of
    // one must not meet it there.
    for _ in 0..50 {
        let g = a.acquire(SCOPE.into(), 1).await.unwrap();
        assert!(g.is_some(), "a call was turned away by the one before it");
    }
}
