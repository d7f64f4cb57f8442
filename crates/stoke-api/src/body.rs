//! Request bodies, bounded before they are buffered.
//!
//! SigV4 signs the hash of the body (boto3 sends no `x-amz-content-sha256`), so the signature
//! can only be checked once the body is in memory. What a caller can make the server hold
//! before that check is bounded three ways:
//! - by operation ([`Operation`]): CreateFunction and UpdateFunctionCode take Lambda's ~70 MB,
//!   a synchronous Invoke 6 MB, an event 1 MB, everything else 1 MB; a `Content-Length` over
//!   the limit is refused at once, with the error Lambda gives for that operation;
//! - by a global budget ([`Budget`]) of body bytes being buffered across all requests: a
//!   request waits briefly for its share, then gets 429 `TooManyRequestsException`, which every
//!   AWS SDK retries with backoff;
//! - per connection: HTTP/1.1 carries one request at a time, so a connection holds at most one
//!   operation's limit, and the listener caps connections per client address.
//!
//! A body that stops arriving gets 408 `RequestTimeoutException` once no byte has come for the
//! stall timeout. A request refused before its body is read has the rest of its body
//! [`drain`]ed (read and dropped, never kept, a bounded amount for a bounded time) so that a
//! client still sending sees the answer instead of a reset connection; past that bound the
//! connection is closed.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody as _};
use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http_body_util::BodyExt as _;
use stoke_core::LambdaError;
use stoke_core::function::limits;
use stoke_engine::async_invoke::MAX_ASYNC_PAYLOAD;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::invoke::MAX_SYNC_PAYLOAD;

/// The body limit of operations that carry no code and no payload.
pub const MAX_OTHER_BODY: usize = 1024 * 1024;

/// The budget is counted in units of this many bytes (a semaphore has at most `u32::MAX`
/// permits).
const UNIT: usize = 1024;

/// How the server bounds request bodies.
#[derive(Debug, Clone)]
pub struct BodyConfig {
    /// Body bytes that may be buffered at once, across all requests.
    pub budget_bytes: usize,
    /// How long a request waits for its share of the budget before 429.
    pub budget_wait: Duration,
    /// A body with no byte for this long gets 408.
    pub stall_timeout: Duration,
}

impl Default for BodyConfig {
    fn default() -> Self {
        Self {
            budget_bytes: 512 * 1024 * 1024,
            budget_wait: Duration::from_secs(2),
            stall_timeout: Duration::from_secs(10),
        }
    }
}

/// The global budget of buffered body bytes, and the timeouts of reading a body.
#[derive(Debug, Clone)]
pub struct Budget {
    config: BodyConfig,
    units: Arc<Semaphore>,
    total_units: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(BodyConfig::default())
    }
}

/// A share of the budget, given back when dropped.
#[derive(Debug, Default)]
pub struct Share {
    permits: Vec<OwnedSemaphorePermit>,
    units: u32,
}

impl Budget {
    pub fn new(config: BodyConfig) -> Self {
        let total_units = u32::try_from(config.budget_bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Self {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            config,
        }
    }

    pub fn config(&self) -> &BodyConfig {
        &self.config
    }

    /// Bytes of the budget not handed out.
    pub fn available_bytes(&self) -> usize {
        self.units.available_permits().saturating_mul(UNIT)
    }

    /// Grows `share` so that it covers `bytes`, waiting at most the budget wait.
    async fn reserve(&self, share: &mut Share, bytes: usize) -> Result<(), BodyError> {
        let want = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX);
        if want <= share.units {
            return Ok(());
        }
        let more = want - share.units;
        if more > self.total_units {
            return Err(BodyError::Budget);
        }
        let acquire = Arc::clone(&self.units).acquire_many_owned(more);
        match tokio::time::timeout(self.config.budget_wait, acquire).await {
            Ok(Ok(permit)) => {
                share.permits.push(permit);
                share.units = want;
                Ok(())
            }
            _ => Err(BodyError::Budget),
        }
    }
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is over the operation's limit")]
    TooLarge,
    #[error("no byte of the body arrived within the stall timeout")]
    Stalled,
    #[error("the body budget is spent")]
    Budget,
    #[error("the connection failed while reading the body")]
    Broken,
}

/// The operation a request is, as far as its body is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub name: &'static str,
    /// The largest body it takes.
    pub limit: usize,
    /// Invoke's limits are the payload's: `RequestTooLargeException`; the others'
    /// `RequestEntityTooLargeException`.
    payload: bool,
}

impl Operation {
    /// The operation of a request, from its method, path and headers.
    pub fn of(parts: &Parts) -> Self {
        let path = parts.uri.path();
        let trimmed = path.trim_end_matches('/');
        let method = parts.method.as_str();
        let (name, limit, payload) = match method {
            "POST" if trimmed == "/2015-03-31/functions" => {
                ("CreateFunction", limits::MAX_CREATE_REQUEST_BYTES, false)
            }
            "PUT" if trimmed.ends_with("/code") => (
                "UpdateFunctionCode",
                limits::MAX_CREATE_REQUEST_BYTES,
                false,
            ),
            "PUT" if trimmed.ends_with("/configuration") => {
                ("UpdateFunctionConfiguration", MAX_OTHER_BODY, false)
            }
            "POST" if trimmed.ends_with("/invocations") => {
                let event = parts
                    .headers
                    .get("x-amz-invocation-type")
                    .is_some_and(|v| v.as_bytes() == b"Event");
                if event {
                    ("Invoke", MAX_ASYNC_PAYLOAD, true)
                } else {
                    ("InvokeFunction", MAX_SYNC_PAYLOAD, true)
                }
            }
            "POST" if trimmed.ends_with("/invoke-async") => {
                ("InvokeAsync", MAX_ASYNC_PAYLOAD, true)
            }
            _ => ("requested", MAX_OTHER_BODY, false),
        };
        Self {
            name,
            limit,
            payload,
        }
    }

    /// Lambda's error for a body over this operation's limit.
    pub fn too_large(&self) -> LambdaError {
        let msg = format!(
            "Request must be smaller than {} bytes for the {} operation",
            self.limit, self.name
        );
        if self.payload {
            LambdaError::RequestTooLarge(msg)
        } else {
            LambdaError::RequestEntityTooLarge(msg)
        }
    }
}

/// The length the client declared (`Content-Length`, or what the body knows of itself).
pub fn declared_length(body: &Body) -> Option<u64> {
    let hint = body.size_hint();
    hint.exact().or(hint.upper())
}

/// Reads the body, at most `limit` bytes, taking each byte's share of the budget before it is
/// kept; a pause of more than the stall timeout between bytes fails.
pub async fn read(
    budget: &Budget,
    mut body: Body,
    limit: usize,
) -> Result<(Bytes, Share), BodyError> {
    let mut share = Share::default();
    let declared = declared_length(&body);
    if let Some(n) = declared {
        let n = usize::try_from(n).map_err(|_| BodyError::TooLarge)?;
        if n > limit {
            return Err(BodyError::TooLarge);
        }
        budget.reserve(&mut share, n).await?;
    }
    // A body that comes in one frame (a small request, read with its head) is kept as that
    // frame: no copy. Only a second frame gathers them into one buffer.
    let mut single: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(budget.config.stall_timeout, body.frame()).await {
            Err(_) => return Err(BodyError::Stalled),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let held = single.as_ref().map_or(buf.len(), Bytes::len);
        let len = held.saturating_add(data.len());
        if len > limit {
            return Err(BodyError::TooLarge);
        }
        budget.reserve(&mut share, len).await?;
        match single.take() {
            None if buf.is_empty() => single = Some(data),
            None => buf.extend_from_slice(&data),
            Some(first) => {
                let whole = declared.and_then(|n| usize::try_from(n).ok());
                buf.reserve(whole.unwrap_or(len).max(len));
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok((single.unwrap_or_else(|| buf.freeze()), share))
}

/// What may be drained of a refused body whose sender passed the header checks (a signed
/// request with too large a body, typically an SDK that must see the 413).
pub const DRAIN_SIGNED: u64 = 2 * limits::MAX_CREATE_REQUEST_BYTES as u64;
/// What may be drained of a body whose request failed the header checks.
pub const DRAIN_UNSIGNED: u64 = 1024 * 1024;
/// The longest a drain lasts.
const DRAIN_FOR: Duration = Duration::from_secs(30);

/// Whether the rest of a refused body can be drained: a known length within `max`, and no
/// `Expect: 100-continue` (a client that waits for the go-ahead sends nothing once refused).
pub fn drainable(parts: &Parts, body: &Body, max: u64) -> bool {
    let expects = parts
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    !expects && declared_length(body).is_some_and(|n| n <= max)
}

/// Whether a body has nothing left to read.
pub fn is_empty(body: &Body) -> bool {
    body.is_end_stream() || declared_length(body) == Some(0)
}

/// Reads and drops the rest of a refused body in the background, at most `max` bytes, for at
/// most 30 s, with the stall timeout between bytes; then drops it (which closes the
/// connection's read side).
pub fn drain(mut body: Body, max: u64, stall: Duration) {
    tokio::spawn(async move {
        let until = tokio::time::Instant::now() + DRAIN_FOR;
        let mut seen = 0u64;
        while seen <= max {
            let next = tokio::time::Instant::now() + stall;
            match tokio::time::timeout_at(next.min(until), body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(d) = frame.data_ref() {
                        seen = seen.saturating_add(d.len() as u64);
                    }
                }
                _ => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).map(|r| r.into_parts().0).expect("a request")
    }

    #[test]
    fn each_operation_has_lambdas_limit_and_error() {
        let create = Operation::of(&parts("POST", "/2015-03-31/functions/", &[]));
        assert_eq!(create.limit, limits::MAX_CREATE_REQUEST_BYTES);
        assert_eq!(
            create.too_large().type_name(),
            "RequestEntityTooLargeException"
        );
        let code = Operation::of(&parts("PUT", "/2015-03-31/functions/f/code", &[]));
        assert_eq!(code.name, "UpdateFunctionCode");
        let sync = Operation::of(&parts("POST", "/2015-03-31/functions/f/invocations", &[]));
        assert_eq!(
            (sync.limit, sync.name),
            (MAX_SYNC_PAYLOAD, "InvokeFunction")
        );
        assert_eq!(sync.too_large().type_name(), "RequestTooLargeException");
        assert_eq!(
            sync.too_large().message(),
            "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
        );
        let event = Operation::of(&parts(
            "POST",
            "/2015-03-31/functions/f/invocations",
            &[("x-amz-invocation-type", "Event")],
        ));
        assert_eq!(event.limit, MAX_ASYNC_PAYLOAD);
        let other = Operation::of(&parts("POST", "/2017-03-31/tags/arn", &[]));
        assert_eq!(other.limit, MAX_OTHER_BODY);
    }

    /// A body of the given frames, as a client that sends it in pieces.
    struct Frames(std::collections::VecDeque<Bytes>);

    impl axum::body::HttpBody for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn a_body_in_one_frame_is_kept_without_a_copy_and_pieces_are_joined() {
        let budget = Budget::default();
        let one = Bytes::from(vec![1u8; 4096]);
        let (bytes, _share) = read(&budget, Body::from(one.clone()), 1 << 20)
            .await
            .expect("read");
        assert_eq!(bytes, one);
        assert_eq!(bytes.as_ptr(), one.as_ptr(), "the frame itself, not a copy");

        let pieces = [&b""[..], b"{\"a\":", b"", b"1", b"}"].map(Bytes::from_static);
        let body = Body::new(Frames(pieces.into_iter().collect()));
        let (bytes, _share) = read(&budget, body, 1 << 20).await.expect("read");
        assert_eq!(&bytes[..], b"{\"a\":1}");
        let body = Body::new(Frames(
            std::iter::repeat_n(Bytes::from_static(b"abc"), 3).collect(),
        ));
        assert!(matches!(
            read(&budget, body, 8).await,
            Err(BodyError::TooLarge)
        ));
    }

    #[tokio::test]
    async fn a_body_takes_its_share_of_the_budget_and_gives_it_back() {
        let budget = Budget::new(BodyConfig {
            budget_bytes: 64 * 1024,
            budget_wait: Duration::from_millis(50),
            ..BodyConfig::default()
        });
        let (bytes, share) = read(&budget, Body::from(vec![7u8; 40 * 1024]), 1 << 20)
            .await
            .expect("read");
        assert_eq!(bytes.len(), 40 * 1024);
        assert_eq!(budget.available_bytes(), 24 * 1024);
        // A second body that does not fit waits, then is refused.
        let second = read(&budget, Body::from(vec![7u8; 40 * 1024]), 1 << 20).await;
        assert!(matches!(second, Err(BodyError::Budget)), "{second:?}");
        drop(share);
        assert_eq!(budget.available_bytes(), 64 * 1024);
        let over = read(&budget, Body::from(vec![7u8; 10]), 5).await;
        assert!(matches!(over, Err(BodyError::TooLarge)), "{over:?}");
    }
}
