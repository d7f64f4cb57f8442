//! `stoke serve`'s flags of the cluster's forwarding (issue 14 item 4) and what they build:
//! the [`Forwarder`] with the cluster key derived from the master key, over the engine's
//! [`Membership`](stoke_engine::cluster::Membership), which the node registry's heartbeats
//! keep to the living nodes.

use std::sync::Arc;

use stoke_api::AppState;
use stoke_api::forward::{ClusterKey, Forwarder};
use stoke_engine::Engine;

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
