//! The node registry's side in the engine: [`Nodes`] registers this node in the store at
//! start (id, advertised address, start time), heartbeats every [`NodeConfig::heartbeat`] with
//! its warm sandboxes and calls in flight, reads every node's row back and keeps
//! [`Membership`] to the living ones (a heartbeat at most [`NodeConfig::timeout`] old), and
//! removes its row when the node stops cleanly. `stoke nodes` reads [`Nodes::list`].
//!
//! A round that cannot reach the store keeps the rows it read last: the nodes whose
//! heartbeats age past the timeout drop out of the living, this one excepted (a node always
//! counts itself among the living).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use stoke_store::{NodeRecord, Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{Membership, Peer};
use crate::invoke::Invoker;
use crate::record::now_ms;

/// How often a node heartbeats and how old a heartbeat may be before its node is dead.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub heartbeat: Duration,
    pub timeout: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A node's row with what it means now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub record: NodeRecord,
    /// Its last heartbeat is at most the node timeout old.
    pub alive: bool,
    /// How old its last heartbeat is, in milliseconds (0 if the clocks disagree).
    pub heartbeat_age_ms: i64,
}

/// This node's registration and heartbeat loop.
pub struct Nodes {
    store: Arc<dyn Store>,
    membership: Arc<Membership>,
    config: NodeConfig,
    started_ms: i64,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nodes")
            .field("me", self.membership.me())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Nodes {
    /// Registers this node (`membership`'s own) and starts its heartbeat loop, which reads
    /// the warm sandboxes and load from `invoker` while it lives.
    pub async fn start(
        store: Arc<dyn Store>,
        membership: Arc<Membership>,
        config: NodeConfig,
        invoker: Weak<Invoker>,
    ) -> Result<Arc<Self>, StoreError> {
        let started_ms = now_ms();
        let me = membership.me().clone();
        store
            .register_node(&NodeRecord {
                node_id: me.node_id.clone(),
                address: me.address.clone(),
                started_ms,
                heartbeat_ms: started_ms,
                warm: 0,
                load: 0,
            })
            .await?;
        let (stop, stop_rx) = watch::channel(false);
        let nodes = Arc::new(Self {
            store,
            membership,
            config,
            started_ms,
            stop,
            task: Mutex::new(None),
        });
        // The first round now, so that the node knows its cluster before it serves.
        let mut beat = Beat::default();
        nodes.round(&invoker, &mut beat).await;
        let task = tokio::spawn(Arc::clone(&nodes).run(invoker, beat, stop_rx));
        if let Ok(mut t) = nodes.task.lock() {
            *t = Some(task);
        }
        Ok(nodes)
    }

    /// The node timeout.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    /// This node and the living nodes of its cluster.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    /// Every registered node, living or dead, in node id order, as the store has them now.
    pub async fn list(&self) -> Result<Vec<NodeState>, StoreError> {
        let now = now_ms();
        Ok(self
            .store
            .list_nodes()
            .await?
            .into_iter()
            .map(|record| self.state_at(record, now))
            .collect())
    }

    fn state_at(&self, record: NodeRecord, now: i64) -> NodeState {
        NodeState {
            alive: record.alive_at(now, millis(self.config.timeout)),
            heartbeat_age_ms: now.saturating_sub(record.heartbeat_ms).max(0),
            record,
        }
    }

    /// Stops the heartbeats and removes this node's row (a clean stop: the others see it
    /// gone at once rather than dead after the timeout).
    pub async fn leave(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
        let me = &self.membership.me().node_id;
        match self.store.remove_node(me).await {
            Ok(_) => tracing::info!(node_id = %me, "left the node registry"),
            Err(e) => {
                tracing::warn!(node_id = %me, error = %e, "could not leave the node registry")
            }
        }
    }

    async fn run(
        self: Arc<Self>,
        invoker: Weak<Invoker>,
        mut beat: Beat,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.config.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => {}
            }
            self.round(&invoker, &mut beat).await;
        }
    }

    /// One heartbeat: this node's row, then every node's, then the living into `membership`.
    async fn round(&self, invoker: &Weak<Invoker>, beat: &mut Beat) {
        let me = self.membership.me();
        let (warm, load) = invoker.upgrade().map_or((0, 0), |i| i.usage());
        let now = now_ms();
        let written = match self
            .store
            .heartbeat_node(&me.node_id, now, warm, load)
            .await
        {
            // The row went (removed by hand, or a store restored from a backup): again.
            Ok(false) => {
                self.store
                    .register_node(&NodeRecord {
                        node_id: me.node_id.clone(),
                        address: me.address.clone(),
                        started_ms: self.started_ms,
                        heartbeat_ms: now,
                        warm,
                        load,
                    })
                    .await
            }
            Ok(true) => Ok(()),
            Err(e) => Err(e),
        };
        let read = match written {
            Ok(()) => self.store.list_nodes().await,
            Err(e) => Err(e),
        };
        match read {
            Ok(rows) => {
                if beat.failing {
                    tracing::info!("the node registry is reachable again");
                }
                beat.failing = false;
                beat.rows = rows;
            }
            Err(e) => {
                if !beat.failing {
                    tracing::warn!(error = %e, "a heartbeat could not reach the node registry");
                }
                beat.failing = true;
            }
        }
        let living: Vec<Peer> = beat
            .rows
            .iter()
            .filter(|r| r.alive_at(now, millis(self.config.timeout)))
            .map(|r| Peer {
                node_id: r.node_id.clone(),
                address: r.address.clone(),
                warm: r.warm,
                load: r.load,
            })
            .collect();
        let ids: BTreeSet<String> = living.iter().map(|p| p.node_id.clone()).collect();
        for gone in beat.living.difference(&ids) {
            tracing::warn!(node_id = %gone, "a node stopped heartbeating: it is dead or gone");
        }
        for came in ids.difference(&beat.living) {
            if *came != me.node_id {
                tracing::info!(node_id = %came, "a node is alive");
            }
        }
        beat.living = ids;
        self.membership.set_living(living);
    }
}

/// What the heartbeat loop carries from one round to the next.
#[derive(Debug, Default)]
struct Beat {
    /// The rows read last.
    rows: Vec<NodeRecord>,
    /// The living node ids of the last round.
    living: BTreeSet<String>,
    /// The last round could not reach the store (said once per outage).
    failing: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use stoke_store::{NodeStore, SqliteStore};

    fn peer(id: &str) -> Peer {
        Peer {
            node_id: id.into(),
            address: format!("127.0.0.1:{}", 9000 + id.len()),
            warm: 0,
            load: 0,
        }
    }

    #[tokio::test]
    async fn a_node_registers_keeps_the_living_and_leaves() {
        let store = Arc::new(SqliteStore::in_memory().await.unwrap());
        let now = now_ms();
        // A living neighbour and one whose last heartbeat is a minute old.
        for (id, at) in [("node-b", now + 60_000), ("node-c", now - 60_000)] {
            store
                .register_node(&NodeRecord {
                    node_id: id.into(),
                    address: peer(id).address,
                    started_ms: at,
                    heartbeat_ms: at,
                    warm: 2,
                    load: 1,
                })
                .await
                .unwrap();
        }
        let membership = Arc::new(Membership::new(peer("node-a")));
        let config = NodeConfig {
            heartbeat: Duration::from_millis(20),
            timeout: Duration::from_secs(10),
        };
        let nodes = Nodes::start(
            Arc::clone(&store) as Arc<dyn Store>,
            Arc::clone(&membership),
            config,
            Weak::new(),
        )
        .await
        .unwrap();
        let ids: Vec<_> = membership
            .living()
            .iter()
            .map(|p| p.node_id.clone())
            .collect();
        assert_eq!(ids, ["node-a", "node-b"]);
        let listed = nodes.list().await.unwrap();
        let states: Vec<_> = listed
            .iter()
            .map(|n| (n.record.node_id.as_str(), n.alive))
            .collect();
        assert_eq!(
            states,
            [("node-a", true), ("node-b", true), ("node-c", false)]
        );
        assert_eq!(listed[0].record.address, peer("node-a").address);
        // Its row is rewritten if it goes, at the next heartbeat.
        store.remove_node("node-a").await.unwrap();
        let back = async {
            loop {
                if store.list_nodes().await.unwrap().len() == 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), back)
            .await
            .unwrap();
        nodes.leave().await;
        let left: Vec<_> = store
            .list_nodes()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.node_id)
            .collect();
        assert_eq!(left, ["node-b", "node-c"]);
    }
}
