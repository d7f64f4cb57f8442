//! The bounds of one sandbox's Runtime API: what a function can make the server hold through
//! it, whatever it sends. This file: the limits ([`RuntimeApiLimits`]) and the reading of a
//! body within them; `api_conn`: the connections and their timeouts.
//!
//! - **Connections**: at most [`RuntimeApiLimits::max_connections`] at once (the runtime needs
//!   one or two); one more is closed as soon as it is accepted.
//! - **Timeouts** (watched per connection, see `api_conn`): a request head must arrive within
//!   `header_timeout` of its first byte; a connection with no request in flight is closed after
//!   `idle_timeout`, except the one that took the call in progress, which stays open until the
//!   call's deadline (its runtime answers on it: `next` answered, the function runs, then
//!   `/response`); a request in flight (a `next` long poll waiting for an event) has no
//!   timeout; a body must arrive within `body_timeout` (else `408`).
//! - **Bytes**: a head is at most `max_head_bytes` (hyper's read buffer: `431` beyond); a body
//!   is streamed, capped at its operation's limit (6 MB `/response`, `max_error_bytes` for the
//!   errors; reading stops at the cap), and before a byte of it is read it reserves its room
//!   in the sandbox's `body_budget_bytes`, shared by all its connections: its declared length,
//!   or the operation's limit when it declares none. A body waits for room (within its
//!   timeout) rather than grow the server; one that holds room never waits for more, so bodies
//!   cannot hold each other up. In all, one sandbox can make the server hold at most
//!   `body_budget_bytes + max_connections × max_head_bytes`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt as _;
use tokio::sync::Semaphore;
use tokio::time::Instant;
/// Bounds of one sandbox's Runtime API.
#[derive(Debug, Clone)]
pub struct RuntimeApiLimits {
    /// Connections served at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// From the first byte of a request to the end of its head.
    pub header_timeout: Duration,
    /// How long a connection may stay open with no request in flight (the connection that
    /// took the call in progress stays open until the call's deadline).
    pub idle_timeout: Duration,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// The largest request head (AWS's runtime clients send an X-Ray error cause of up to
    /// 1 MiB in a header).
    pub max_head_bytes: usize,
    /// The largest `/error` or `/init/error` body.
    pub max_error_bytes: usize,
    /// Body bytes held at once over all of a sandbox's connections (never less than the
    /// largest response).
    pub body_budget_bytes: usize,
}

impl Default for RuntimeApiLimits {
    fn default() -> Self {
        Self {
            max_connections: 4,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(10),
            max_head_bytes: 1024 * 1024 + 16 * 1024,
            max_error_bytes: 1024 * 1024,
            // Two 6 MB responses and a little.
            body_budget_bytes: 13 * 1024 * 1024,
        }
    }
}

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Larger than the operation's limit (declared or sent).
    TooLarge,
    /// It did not arrive (or find room in the budget) in time.
    TimedOut,
    /// The connection broke.
    Broken,
}

/// Reads a body of at most `max` bytes within `timeout`, after reserving its room in `budget`
/// (its declared length, else `max`; waiting for room when there is none); the room is given
/// back when the result is handed on (dropped here).
pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    max: usize,
    budget: &Arc<Semaphore>,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX)) {
        return Err(BodyError::TooLarge);
    }
    let deadline = Instant::now() + timeout;
    let room = declared.map_or(max, |n| usize::try_from(n).unwrap_or(max));
    let room = u32::try_from(room).map_err(|_| BodyError::TooLarge)?;
    let _held = match tokio::time::timeout_at(deadline, Arc::clone(budget).acquire_many_owned(room))
        .await
    {
        Err(_) => return Err(BodyError::TimedOut),
        Ok(Err(_)) => return Err(BodyError::Broken),
        Ok(Ok(p)) => p,
    };
    let mut buf = BytesMut::with_capacity(if declared.is_some() { room as usize } else { 0 });
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::TimedOut),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len() + chunk.len() > room as usize {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
#[path = "api_bounds_tests.rs"]
mod tests;
