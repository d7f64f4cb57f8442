//! The node registry: the [`NodeStore`] trait and its [`NodeRecord`]. Each node of a cluster
//! keeps one row (its id, advertised address, start time) and refreshes it every heartbeat
//! with its warm sandboxes and calls in flight; a node whose last heartbeat is older than the
//! cluster's node timeout is dead (the reader decides, from the row's heartbeat time: the
//! store keeps times, not states). A node that stops cleanly removes its row. On SQLite the
//! registry holds one node (real rows all the same); on PostgreSQL, every node sharing the
//! database.
//!
//! Times are the writing node's clock in milliseconds since the epoch, as the queue's leases
//! are: the nodes of a cluster keep their clocks in step (NTP).

use async_trait::async_trait;

use crate::StoreError;

/// One node's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// `--node-id`, or the one kept in the node's data dir.
    pub node_id: String,
    /// Where the other nodes reach it (`host:port`).
    pub address: String,
    /// When this run of the node started (ms since the epoch).
    pub started_ms: i64,
    /// Its last heartbeat (ms since the epoch).
    pub heartbeat_ms: i64,
    /// Its warm sandboxes, idle or busy, at that heartbeat.
    pub warm: u32,
    /// Its calls in flight at that heartbeat.
    pub load: u32,
}

impl NodeRecord {
    /// Whether its last heartbeat is at most `timeout_ms` old at `now_ms`.
    pub fn alive_at(&self, now_ms: i64, timeout_ms: i64) -> bool {
        now_ms.saturating_sub(self.heartbeat_ms) <= timeout_ms
    }
}

/// The nodes of the cluster that shares this store.
#[async_trait]
pub trait NodeStore: Send + Sync + 'static {
    /// Writes `node`'s row whole (a start, or a heartbeat that found its row gone): a node
    /// that starts again under the same id replaces its old row.
    async fn register_node(&self, node: &NodeRecord) -> Result<(), StoreError>;

    /// A heartbeat of `node_id`: its time, warm sandboxes and load. `false` if the node has no
    /// row (removed meanwhile: register again).
    async fn heartbeat_node(
        &self,
        node_id: &str,
        heartbeat_ms: i64,
        warm: u32,
        load: u32,
    ) -> Result<bool, StoreError>;

    /// Every node's row, living or dead, in node id order.
    async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;

    /// Removes `node_id`'s row (a clean stop); `false` if it had none.
    async fn remove_node(&self, node_id: &str) -> Result<bool, StoreError>;
}
