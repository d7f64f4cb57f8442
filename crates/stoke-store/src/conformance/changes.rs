//! The change feed (every listener hears what is published, in order) and concurrency slots
//! (at most `cap` held, expired ones free, given back by token or by owner, renewed by owner).

use std::time::Duration;

use super::Factory;
use crate::changes::{Change, ChangeFeed, ChangeListener};
use crate::slots::SlotStore;

async fn heard(l: &mut Box<dyn ChangeListener>) -> Change {
    tokio::time::timeout(Duration::from_secs(5), l.next())
        .await
        .expect("a change within 5 s")
        .unwrap()
}

pub async fn every_listener_hears_what_is_published_in_order<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let mut one = s.listen().await.unwrap();
    let mut two = s.listen().await.unwrap();
    let changes = [
        Change::Function {
            account: "123456789012".into(),
            name: "f".into(),
        },
        Change::Account {
            account: "123456789012".into(),
        },
        Change::Everything,
    ];
    for c in &changes {
        s.publish(c).await.unwrap();
    }
    for l in [&mut one, &mut two] {
        for c in &changes {
            assert_eq!(&heard(l).await, c);
        }
    }
    // A listener opened later hears only what follows.
    let mut late = s.listen().await.unwrap();
    let next = Change::Account {
        account: "210987654321".into(),
    };
    s.publish(&next).await.unwrap();
    assert_eq!(heard(&mut late).await, next);
}

pub async fn slots_hold_a_limit_expire_and_are_given_back<F: Factory>(factory: &F) {
    let s = factory.store().await;
    let long = 60_000;
    let a = s.acquire_slot("r/f", 2, "n1", "t1", long).await.unwrap();
    let b = s.acquire_slot("r/f", 2, "n2", "t2", long).await.unwrap();
    let (Some(a), Some(b)) = (a, b) else {
        panic!("two slots of two: {a:?} {b:?}")
    };
    assert_ne!(a, b);
    assert!(a < 2 && b < 2);
    assert_eq!(
        s.acquire_slot("r/f", 2, "n3", "t3", long).await.unwrap(),
        None
    );
    assert_eq!(s.held_slots("r/f").await.unwrap(), 2);
    // Another scope is apart.
    assert!(
        s.acquire_slot("u/a", 1, "n3", "t4", long)
            .await
            .unwrap()
            .is_some()
    );
    // Given back by its token (another token gives back nothing).
    s.release_slot("r/f", "nobody").await.unwrap();
    assert_eq!(s.held_slots("r/f").await.unwrap(), 2);
    s.release_slot("r/f", "t1").await.unwrap();
    assert_eq!(s.held_slots("r/f").await.unwrap(), 1);
    assert!(
        s.acquire_slot("r/f", 2, "n3", "t5", long)
            .await
            .unwrap()
            .is_some()
    );
    // Everything an owner holds goes at once.
    assert_eq!(s.release_slots_of("n3").await.unwrap(), 2);
    assert_eq!(s.held_slots("r/f").await.unwrap(), 1);
    assert_eq!(s.held_slots("u/a").await.unwrap(), 0);
    // A slot that expires is free again, unless its owner renewed it.
    assert!(
        s.acquire_slot("e", 2, "dies", "d1", 300)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.acquire_slot("e", 2, "lives", "l1", 300)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.acquire_slot("e", 2, "x", "x1", long).await.unwrap(), None);
    assert_eq!(s.renew_slots("lives", long).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.held_slots("e").await.unwrap(), 1);
    assert!(
        s.acquire_slot("e", 2, "x", "x1", long)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.acquire_slot("e", 2, "y", "y1", long).await.unwrap(), None);
    // An expired slot is not brought back by its owner's renewal.
    let late = s.acquire_slot("g", 1, "late", "g1", 100).await.unwrap();
    assert!(late.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.renew_slots("late", long).await.unwrap(), 0);
    assert_eq!(s.held_slots("g").await.unwrap(), 0);
}
