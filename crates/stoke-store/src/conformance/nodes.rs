//! The node registry (rows registered, refreshed by heartbeats, removed at a clean stop) and
//! the renewal of a node's leases.

use super::Factory;
use super::queue::event;
use crate::nodes::{NodeRecord, NodeStore};
use crate::queue::Queue;

fn node(id: &str, started_ms: i64) -> NodeRecord {
    NodeRecord {
        node_id: id.into(),
        address: format!("127.0.0.1:{}", 9000 + id.len()),
        started_ms,
        heartbeat_ms: started_ms,
        warm: 0,
        load: 0,
    }
}

/// The node ids the store lists, in its order.
async fn ids<S: NodeStore>(s: &S) -> Vec<String> {
    s.list_nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.node_id)
        .collect()
}

pub async fn nodes_register_heartbeat_and_leave<F: Factory>(factory: &F) {
    let s = factory.store().await;
    assert!(s.list_nodes().await.unwrap().is_empty());
    s.register_node(&node("node-b", 100)).await.unwrap();
    s.register_node(&node("node-a", 200)).await.unwrap();
    assert_eq!(ids(&s).await, ["node-a", "node-b"], "in node id order");

    assert!(s.heartbeat_node("node-a", 1_200, 3, 2).await.unwrap());
    let all = s.list_nodes().await.unwrap();
    let a = all.iter().find(|n| n.node_id == "node-a").unwrap();
    assert_eq!(
        (a.heartbeat_ms, a.warm, a.load, a.started_ms),
        (1_200, 3, 2, 200),
        "a heartbeat keeps the start and the address"
    );
    assert_eq!(a.address, node("node-a", 0).address);
    let b = all.iter().find(|n| n.node_id == "node-b").unwrap();
    assert!(a.alive_at(1_500, 1_000));
    assert!(!b.alive_at(1_500, 1_000), "b's last heartbeat is 1.4 s old");
    assert!(!s.heartbeat_node("node-x", 1_200, 0, 0).await.unwrap());

    // A node that starts again under its id replaces its row.
    let mut again = node("node-b", 5_000);
    again.address = "10.0.0.2:9000".into();
    s.register_node(&again).await.unwrap();
    let all = s.list_nodes().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all.iter().find(|n| n.node_id == "node-b"), Some(&again));

    assert!(s.remove_node("node-b").await.unwrap());
    assert!(!s.remove_node("node-b").await.unwrap());
    assert!(!s.heartbeat_node("node-b", 6_000, 0, 0).await.unwrap());
    assert_eq!(ids(&s).await, ["node-a"]);
}

pub async fn a_node_renews_only_its_own_leases<F: Factory>(factory: &F) {
    let s = factory.store().await;
    s.enqueue(&[(event(1, 0), true), (event(2, 0), true)], "alive", 1_000)
        .await
        .unwrap();
    s.enqueue(&[(event(3, 0), true)], "dead", 1_000)
        .await
        .unwrap();
    assert_eq!(s.renew_leases("alive", 5_000).await.unwrap(), 2);
    assert_eq!(s.renew_leases("nobody", 5_000).await.unwrap(), 0);
    // Past the first expiry only the dead node's event is free: the living one kept its own.
    let taken = s.claim("survivor", 2_000, 10_000, 10).await.unwrap();
    let ids: Vec<_> = taken.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(ids, ["r-3"]);
    assert_eq!(taken[0].runs, 2, "taken over: its second run");
    // A renewal by the owner that lost a lease does not take it back.
    assert_eq!(s.renew_leases("dead", 20_000).await.unwrap(), 0);
    assert!(s.claim("other", 6_000, 10_000, 10).await.unwrap().len() == 2);
    assert_eq!(s.stats().await.unwrap().leased, 3);
}
