//! The client side of the internal channel: one HTTP/2 connection (h2c, prior knowledge) per
//! peer, on which every forward to that peer is a stream.
//!
//! Bounds: a connect gives up after [`CONNECT_TIMEOUT`]; a connection unused for
//! [`REUSE_FOR`] is replaced (before the peer's listener closes it as idle); the peer's
//! listener caps the streams at once on a connection; an answer's body is read up to
//! [`MAX_ANSWER`]; each call is bounded by the timeout its caller gives (the function's
//! timeout plus a margin). The connections kept are one per peer address, and a connection
//! that fails is dropped.
//!
//! A call fails in one of two ways, and the difference matters: [`SendError::NotSent`] (the
//! peer could not be reached, or the request never left: another node may take it) or
//! [`SendError::Lost`] / [`SendError::TimedOut`] (it may have run there: the caller gets a
//! 5xx, never a second run).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// How long connecting to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a connection is reused after its last request began: below the peer listener's
/// header-read timeout (10 s by default), which an idle HTTP/2 connection meets first (the
/// frames that follow an answer count as a request head arriving), so that a kept
/// connection is not closed under a new request.
pub const REUSE_FOR: Duration = Duration::from_secs(4);
/// The largest answer body read (a 6 MB response and its error shape).
pub const MAX_ANSWER: usize = 7 * 1024 * 1024;

type Sender = http2::SendRequest<Full<Bytes>>;

struct Conn {
    send: Sender,
    last_used: Instant,
}

/// Why a call through the channel failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request never reached the peer.
    #[error("the node could not be reached: {0}")]
    NotSent(String),
    /// The connection broke after the request was sent.
    #[error("the node went away before it answered: {0}")]
    Lost(String),
    /// No answer within the call's time.
    #[error("the node did not answer in time")]
    TimedOut,
}

/// The connections to the peers, and the forwards in flight to each.
#[derive(Default)]
pub struct Channel {
    conns: Mutex<HashMap<String, Conn>>,
    in_flight: Mutex<HashMap<String, Arc<AtomicU32>>>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").finish_non_exhaustive()
    }
}

impl Channel {
    /// Forwards from this node in flight to `address` now.
    pub fn in_flight(&self, address: &str) -> u32 {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(address)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    fn counter(&self, address: &str) -> Arc<AtomicU32> {
        let mut m = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(m.entry(address.to_owned()).or_default())
    }

    /// A kept connection to `address`, if one is open and recent.
    fn kept(&self, address: &str) -> Option<Sender> {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        let c = conns.get_mut(address)?;
        if c.send.is_closed() || c.last_used.elapsed() >= REUSE_FOR {
            conns.remove(address);
            return None;
        }
        c.last_used = Instant::now();
        Some(c.send.clone())
    }

    fn forget(&self, address: &str) {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(address);
    }

    async fn connect(&self, address: &str) -> Result<Sender, String> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| format!("connecting to {address} timed out"))?
            .map_err(|e| format!("connecting to {address}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (send, conn) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(1024 * 1024)
            .initial_connection_window_size(8 * 1024 * 1024)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("the HTTP/2 handshake with {address}: {e}"))?;
        let peer = address.to_owned();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer, error = %e, "a forward connection ended");
            }
        });
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                address.to_owned(),
                Conn {
                    send: send.clone(),
                    last_used: Instant::now(),
                },
            );
        Ok(send)
    }

    /// Sends `req` to `address` and reads the answer, within `timeout`. A kept connection
    /// that turns out closed before the request left is replaced once.
    pub async fn send(
        &self,
        address: &str,
        req: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, SendError> {
        let counter = self.counter(address);
        counter.fetch_add(1, Ordering::Relaxed);
        let _in_flight = Decrement(counter);
        match tokio::time::timeout(timeout, self.send_inner(address, req)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::TimedOut),
        }
    }

    async fn send_inner(
        &self,
        address: &str,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Bytes>, SendError> {
        let mut kept = self.kept(address);
        loop {
            let reused = kept.is_some();
            let mut send = match kept.take() {
                Some(s) => s,
                None => self.connect(address).await.map_err(SendError::NotSent)?,
            };
            let sent = match send.ready().await {
                Ok(()) => send.try_send_request(req).await,
                Err(e) => {
                    self.forget(address);
                    if reused {
                        continue;
                    }
                    return Err(SendError::NotSent(e.to_string()));
                }
            };
            let resp = match sent {
                Ok(resp) => resp,
                Err(mut e) => {
                    self.forget(address);
                    match e.take_message() {
                        Some(back) if reused => {
                            req = back;
                            continue;
                        }
                        Some(_) => return Err(SendError::NotSent(e.into_error().to_string())),
                        None => return Err(SendError::Lost(e.into_error().to_string())),
                    }
                }
            };
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| SendError::Lost(e.to_string()))?
                .to_bytes();
            return Ok(http::Response::from_parts(parts, body));
        }
    }
}

/// Counts a forward out of flight when dropped.
struct Decrement(Arc<AtomicU32>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
