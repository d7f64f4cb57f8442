//! The nodes of a cluster as this node sees them: who it is, and which nodes are alive (itself
//! included) with their advertised address and how busy they are.
//!
//! [`Membership`] is the one seam between the node registry (heartbeats in the store, which
//! keep it up to date) and what uses it (forwarding a call to a node with a warm sandbox,
//! `stoke nodes`). A single node on the embedded store is a cluster of one: its membership
//! never changes.

use std::sync::{Arc, RwLock};

/// A living node, as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The node's id (`--node-id`, or the one kept in its data dir).
    pub node_id: String,
    /// Where the node is reached by the others (`--advertise`: `host:port` of its API
    /// listener, on which it also answers the cluster's internal channel).
    pub address: String,
    /// Its warm sandboxes, idle or busy.
    pub warm: u32,
    /// Its calls in flight.
    pub load: u32,
}

/// This node and the living nodes of its cluster.
#[derive(Debug)]
pub struct Membership {
    me: Peer,
    living: RwLock<Arc<Vec<Peer>>>,
}

impl Membership {
    /// A cluster of one: `me` alone, until [`Membership::set_living`] says otherwise.
    pub fn new(me: Peer) -> Self {
        let living = RwLock::new(Arc::new(vec![me.clone()]));
        Self { me, living }
    }

    /// This node.
    pub fn me(&self) -> &Peer {
        &self.me
    }

    /// The living nodes, this one included, as last set (ordered by node id).
    pub fn living(&self) -> Arc<Vec<Peer>> {
        self.living
            .read()
            .map(|l| Arc::clone(&l))
            .unwrap_or_else(|e| Arc::clone(&e.into_inner()))
    }

    /// Replaces the living nodes (the registry does this after each heartbeat round). This
    /// node is always among them, whatever `peers` says.
    pub fn set_living(&self, mut peers: Vec<Peer>) {
        if !peers.iter().any(|p| p.node_id == self.me.node_id) {
            peers.push(self.me.clone());
        }
        peers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        match self.living.write() {
            Ok(mut l) => *l = Arc::new(peers),
            Err(e) => *e.into_inner() = Arc::new(peers),
        }
    }

    /// Whether other nodes are alive beside this one.
    pub fn is_clustered(&self) -> bool {
        self.living().len() > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str) -> Peer {
        Peer {
            node_id: id.into(),
            address: format!("{id}:9000"),
            warm: 0,
            load: 0,
        }
    }

    #[test]
    fn a_node_is_always_among_the_living_it_sees() {
        let m = Membership::new(peer("b"));
        assert_eq!(*m.living(), vec![peer("b")]);
        assert!(!m.is_clustered());
        m.set_living(vec![peer("c"), peer("a")]);
        let ids: Vec<_> = m.living().iter().map(|p| p.node_id.clone()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(m.is_clustered());
        m.set_living(vec![]);
        assert_eq!(*m.living(), vec![peer("b")]);
    }
}
