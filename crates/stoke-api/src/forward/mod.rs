//! Forwarding synchronous calls to the node that has the function's warm sandboxes (issue 14).
//!
//! ```text
//! caller ─SigV4─► node A: authenticate, authorize, resolve (alias → version)
//!                  │ placement (stoke_engine::route): here, or its home nodes in order
//!                  ├─► here: run, answer
//!                  └─► B ─h2c, MAC'd envelope + payload─► POST /stoke/internal/2026-11-01/invoke
//!                          B runs the resolved version, answers as a local call would;
//!                          A relays status, Lambda's headers and body
//! ```
//!
//! - [`mac`]: the envelope and its MAC (the cluster key, derived from the master key).
//! - [`channel`]: one HTTP/2 connection per peer, with its bounds.
//! - [`internal`]: the receiving side.
//!
//! A peer that cannot be reached (dead, not listening, the request never left) is skipped for
//! the next candidate, and this node runs the call when none answers: callers do not see a
//! death between calls. A peer that goes away while it holds the call gives the caller a 500
//! `ServiceException` (the call may have run there; it is never run twice), within the
//! function's timeout plus [`ANSWER_MARGIN`].

pub mod channel;
pub mod internal;
pub mod mac;

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use stoke_core::{AccountId, LambdaError};
use stoke_engine::cluster::{Membership, Peer};
use stoke_engine::route::{Placement, Route, placement};
use stoke_engine::{InvokeRequest, Invoker};

pub use channel::{Channel, SendError};
pub use mac::{ClusterKey, Envelope};

/// The internal route.
pub const INTERNAL_INVOKE: &str = "/stoke/internal/2026-11-01/invoke";
/// The header by which the node that ran a forwarded call says whether it found a warm
/// sandbox (`1`) or started one (`0`); never relayed to the caller.
pub const WARM_HEADER: &str = "x-stoke-warm";
/// How much longer than the function's timeout a node waits for a forwarded answer (the
/// other node's admission, a cold start's Init, the trip).
pub const ANSWER_MARGIN: Duration = Duration::from_secs(15);

/// The headers of an answer the first node relays, as a local call would have them.
const RELAYED: &[&str] = &[
    "content-type",
    "x-amz-executed-version",
    "x-amz-function-error",
    "x-amz-log-result",
    "x-amzn-requestid",
    "x-amzn-errortype",
    "retry-after",
];

/// Where this node's calls go, and the channel to the others.
#[derive(Debug)]
pub struct Forwarder {
    /// `None`: forwarding is off (no cluster key given), the internal route refuses all.
    key: Option<ClusterKey>,
    membership: Arc<Membership>,
    channel: Channel,
    /// A peer with this many calls in flight (its heartbeat's load, or this node's forwards
    /// to it) is saturated: calls spill to the next home.
    spill_load: u32,
}

impl Forwarder {
    /// Forwarding off: every call runs here.
    pub fn off(membership: Arc<Membership>) -> Self {
        Self {
            key: None,
            membership,
            channel: Channel::default(),
            spill_load: u32::MAX,
        }
    }

    /// Forwarding within `membership`'s living nodes, signed with `key`.
    pub fn new(key: ClusterKey, membership: Arc<Membership>, spill_load: u32) -> Self {
        Self {
            key: Some(key),
            membership,
            channel: Channel::default(),
            spill_load: spill_load.max(1),
        }
    }

    pub fn key(&self) -> Option<&ClusterKey> {
        self.key.as_ref()
    }

    /// This node's id.
    pub fn me(&self) -> &str {
        &self.membership.me().node_id
    }

    /// Where a call of `route` runs.
    pub fn placement(&self, invoker: &Invoker, route: &Route) -> Placement {
        if self.key.is_none() {
            return Placement::Here;
        }
        placement(
            &route.pool,
            &self.membership,
            invoker.idle_here(&route.pool),
            |p| p.load >= self.spill_load || self.channel.in_flight(&p.address) >= self.spill_load,
        )
    }

    /// Forwards a call of `route` by `caller` to the first of `to` that takes it: its answer
    /// (relayed as a local call's) and whether it was warm, or `None` when no node could be
    /// reached (the caller runs it here).
    pub async fn call(
        &self,
        to: &[Peer],
        route: &Route,
        caller: &AccountId,
        req: &InvokeRequest,
    ) -> Result<Option<(Response, bool)>, LambdaError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let target = &route.target;
        let timeout =
            Duration::from_secs(u64::from(target.deployed.config.timeout)) + ANSWER_MARGIN;
        for peer in to {
            let envelope = Envelope {
                from: self.me().to_owned(),
                to: peer.node_id.clone(),
                at_ms: mac::now_ms(),
                caller: caller.clone(),
                owner: target.account.clone(),
                function: target.name.as_str().to_owned(),
                version: target.version.clone(),
                qualifier: target.qualifier.clone(),
                log_tail: req.log_tail,
                client_context: req.client_context.clone(),
                trace_id: req.trace_id.clone(),
            };
            let Some((json, tag)) = key.sign(&envelope, &req.payload) else {
                return Ok(None);
            };
            let request = http::Request::post(format!("http://{}{INTERNAL_INVOKE}", peer.address))
                .header(mac::ENVELOPE_HEADER, json)
                .header(mac::MAC_HEADER, tag)
                .body(Full::new(req.payload.clone()))
                .map_err(|e| LambdaError::Service(format!("building a forward: {e}")))?;
            match self.channel.send(&peer.address, request, timeout).await {
                Ok(answer) => return Ok(Some(relay(answer))),
                Err(SendError::NotSent(why)) => {
                    tracing::debug!(peer = %peer.node_id, why = %why, "a forward target is unreachable; trying the next");
                }
                Err(e) => {
                    tracing::warn!(peer = %peer.node_id, error = %e, function = %target.name, "a forwarded call was lost");
                    return Err(LambdaError::Service(format!(
                        "The node running the call ({}) {}.",
                        peer.node_id,
                        match e {
                            SendError::TimedOut => "did not answer within the function's timeout",
                            _ => "went away before it answered",
                        }
                    )));
                }
            }
        }
        Ok(None)
    }
}

/// The first node's answer from the node that ran the call: its status, Lambda's headers and
/// body; and whether it was warm.
fn relay(answer: http::Response<Bytes>) -> (Response, bool) {
    let (parts, body) = answer.into_parts();
    let warm = parts
        .headers
        .get(WARM_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1");
    let mut out = (parts.status, body).into_response();
    let h = out.headers_mut();
    h.remove(http::header::CONTENT_TYPE);
    for name in RELAYED {
        for v in parts.headers.get_all(*name) {
            h.append(*name, v.clone());
        }
    }
    (out, warm && parts.status == http::StatusCode::OK)
}

/// `1` or `0` for [`WARM_HEADER`].
pub(crate) fn warm_value(warm: bool) -> HeaderValue {
    HeaderValue::from_static(if warm { "1" } else { "0" })
}
