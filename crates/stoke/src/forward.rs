//! `stoke serve`'s flags of the cluster's forwarding (issue 14 item 4) and what they build:
//! this node's [`Membership`] when peers are given by hand, and the [`Forwarder`] with the
//! cluster key derived from the master key.
//!
//! `--peer ID=ADDR` (repeatable, hidden) is a test and benchmark aid: it names the other living
//! nodes without a node registry, as the registry's heartbeats would (and they replace it once
//! they run). This node's id is the one kept in its data dir (`node-id`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use stoke_api::AppState;
use stoke_api::forward::{ClusterKey, Forwarder};
use stoke_engine::Engine;
use stoke_engine::cluster::{Membership, Peer};

/// The forwarding flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ForwardArgs {
    /// Forward synchronous calls to the node holding the version's warm sandboxes (in a
    /// cluster; a single node runs everything itself).
    #[arg(long, env = "STOKE_FORWARD", default_value_t = true, action = clap::ArgAction::Set)]
    pub forward: bool,
    /// Calls in flight at which a node counts as saturated: calls spill to the next home
    /// node (default: `--concurrency`).
    #[arg(long, env = "STOKE_FORWARD_SPILL_LOAD", value_parser = clap::value_parser!(u32).range(1..))]
    pub forward_spill_load: Option<u32>,
    /// Test and benchmark aid: another living node of the cluster, `NODE_ID=HOST:PORT`
    /// (repeatable), for when no node registry says so.
    #[arg(long = "peer", env = "STOKE_PEERS", value_delimiter = ',', value_parser = parse_peer, hide = true)]
    pub peers: Vec<Peer>,
}

/// `NODE_ID=HOST:PORT`.
fn parse_peer(s: &str) -> Result<Peer, String> {
    let (id, address) = s
        .split_once('=')
        .filter(|(id, a)| !id.is_empty() && !a.is_empty())
        .ok_or_else(|| format!("{s:?} is not NODE_ID=HOST:PORT"))?;
    Ok(Peer {
        node_id: id.to_owned(),
        address: address.to_owned(),
        warm: 0,
        load: 0,
    })
}

/// This node's membership when `--peer` names others (`None`: the engine's default).
pub fn membership(
    args: &ForwardArgs,
    data_dir: &Path,
    listen: SocketAddr,
) -> anyhow::Result<Option<Arc<Membership>>> {
    if args.peers.is_empty() {
        return Ok(None);
    }
    let address = if listen.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], listen.port()))
    } else {
        listen
    };
    let me = Peer {
        node_id: crate::store::node_id(data_dir)?,
        address: address.to_string(),
        warm: 0,
        load: 0,
    };
    let m = Membership::new(me);
    m.set_living(args.peers.clone());
    Ok(Some(Arc::new(m)))
}

/// `state` forwarding within `engine`'s cluster with the cluster key `key`, unless
/// `--forward false`.
pub fn wire(
    state: AppState,
    args: &ForwardArgs,
    key: [u8; 32],
    engine: &Engine,
    concurrency: u32,
) -> AppState {
    if !args.forward {
        return state;
    }
    state.with_forwarding(Forwarder::new(
        ClusterKey::new(key),
        Arc::clone(&engine.membership),
        args.forward_spill_load.unwrap_or(concurrency),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_id_equals_address() {
        let p = parse_peer("node-a=127.0.0.1:9001").unwrap();
        assert_eq!(p.node_id, "node-a");
        assert_eq!(p.address, "127.0.0.1:9001");
        for bad in ["", "node-a", "=127.0.0.1:1", "node-a="] {
            assert!(parse_peer(bad).is_err(), "{bad:?}");
        }
    }
}
