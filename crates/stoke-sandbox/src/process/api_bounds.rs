//! The bounds of one sandbox's Runtime API: what a function can make the server hold through
//! it, whatever it sends.
//!
//! - **Connections**: at most [`RuntimeApiLimits::max_connections`] at once (the runtime needs
//!   one or two); one more is closed as soon as it is accepted.
//! - **Timeouts** (watched per connection, see [`Watch`]): a request head must arrive within
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

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

/// hyper's smallest read buffer.
const MIN_HEAD_BYTES: usize = 8192;
/// How often a connection's timeouts are looked at, at least.
const TICK: Duration = Duration::from_millis(500);
/// The exemption of the connection that took a call lasts this long past the call's deadline.
const HOLD_MARGIN: Duration = Duration::from_secs(1);

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request in flight, none started.
    Idle,
    /// The first bytes of a request have come, not yet its whole head.
    Head,
    /// A request is being handled (reading its body, waiting for an event, answering).
    Busy,
}

#[derive(Debug)]
struct WatchState {
    phase: Phase,
    since: Instant,
    /// No idle timeout before this (the connection took the call in progress).
    hold_until: Option<Instant>,
}

/// The timeouts of one connection: its IO and its requests report what happens.
#[derive(Debug)]
pub(crate) struct Watch {
    state: Mutex<WatchState>,
}

impl Watch {
    fn new() -> Self {
        Self {
            state: Mutex::new(WatchState {
                phase: Phase::Idle,
                since: Instant::now(),
                hold_until: None,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut WatchState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn bytes_read(&self) {
        self.with(|s| {
            if s.phase == Phase::Idle {
                s.phase = Phase::Head;
                s.since = Instant::now();
            }
        });
    }

    fn request_started(&self) {
        self.with(|s| s.phase = Phase::Busy);
    }

    fn request_ended(&self) {
        self.with(|s| {
            s.phase = Phase::Idle;
            s.since = Instant::now();
        });
    }

    /// This connection took a call: no idle timeout until `deadline` (and a margin).
    pub fn hold_until(&self, deadline: Instant) {
        self.with(|s| s.hold_until = Some(deadline + HOLD_MARGIN));
    }

    /// When the connection's current timeout falls (`None`: no timeout now).
    fn deadline(&self, limits: &RuntimeApiLimits) -> Option<Instant> {
        self.with(|s| match s.phase {
            Phase::Busy => None,
            Phase::Head => Some(s.since + limits.header_timeout),
            Phase::Idle => {
                let idle = s.since + limits.idle_timeout;
                Some(s.hold_until.map_or(idle, |h| idle.max(h)))
            }
        })
    }
}

/// A connection's socket that tells its [`Watch`] when bytes come in.
struct Watched {
    tcp: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.watch.bytes_read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` within `limits` until the task is aborted (which ends every
/// connection with it).
pub(crate) fn serve(
    listener: TcpListener,
    router: Router,
    limits: RuntimeApiLimits,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                            // Over the cap: closed at once.
                            tracing::debug!("a runtime API connection over the cap was closed");
                            drop(tcp);
                            continue;
                        };
                        // Small requests and answers, one at a time: no Nagle delay.
                        let _ = tcp.set_nodelay(true);
                        conns.spawn(connection(tcp, router.clone(), limits.clone(), slot));
                    }
                    Err(e) => {
                        // Out of descriptors, most likely: wait a little rather than spin.
                        tracing::debug!(error = %e, "a runtime API accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    })
}

/// One connection, until it ends or one of its timeouts falls.
async fn connection(
    tcp: TcpStream,
    router: Router,
    limits: RuntimeApiLimits,
    _slot: OwnedSemaphorePermit,
) {
    use tower::ServiceExt as _;
    let watch = Arc::new(Watch::new());
    let io = hyper_util::rt::TokioIo::new(Watched {
        tcp,
        watch: Arc::clone(&watch),
    });
    let w = Arc::clone(&watch);
    let service =
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let router = router.clone();
            let watch = Arc::clone(&w);
            watch.request_started();
            async move {
                req.extensions_mut().insert(Arc::clone(&watch));
                let resp = router.oneshot(req).await;
                watch.request_ended();
                resp
            }
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(limits.max_head_bytes.max(MIN_HEAD_BYTES))
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    loop {
        let now = Instant::now();
        let due = watch.deadline(&limits);
        let wake = due.map_or(now + TICK, |d| d.min(now + TICK));
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "a runtime API connection ended");
                }
                return;
            }
            () = tokio::time::sleep_until(wake) => {
                if watch.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("a runtime API connection timed out");
                    return;
                }
            }
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
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::sync::oneshot;

    use super::super::api::{Event, Reply, RuntimeApi};
    use super::*;

    async fn start(limits: RuntimeApiLimits, max: usize) -> (RuntimeApi, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let api = RuntimeApi::new(max, limits);
        // Ends with the test's runtime.
        let _serving = api.serve(listener);
        (api, addr)
    }

    fn event(id: &str, in_ms: u64) -> (Event, oneshot::Receiver<Reply>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let (tx, rx) = oneshot::channel();
        let ev = Event {
            request_id: id.into(),
            payload: Bytes::from_static(b"{}"),
            deadline_ms: u64::try_from(now.as_millis()).unwrap() + in_ms,
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
            trace_id: "Root=1-2-3".into(),
            client_context: None,
            reply: tx,
        };
        (ev, rx)
    }

    async fn connect(addr: SocketAddr, head: &str) -> TcpStream {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(head.as_bytes()).await.unwrap();
        c
    }

    fn post(path: &str, length: usize) -> String {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n")
    }

    const NEXT: &str = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";

    /// One answer's head (and as much of its body as came with it), within `within`.
    async fn answer(c: &mut TcpStream, within: Duration) -> Option<String> {
        let mut buf = Vec::new();
        let read = async {
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut chunk).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            true
        };
        match tokio::time::timeout(within, read).await {
            Ok(true) => Some(String::from_utf8_lossy(&buf).into_owned()),
            _ => None,
        }
    }

    /// Whether the server closes the connection within `within`.
    async fn closed(c: &mut TcpStream, within: Duration) -> bool {
        let mut chunk = [0u8; 4096];
        let until = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(until, c.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    fn status(head: &str) -> &str {
        head.split(' ').nth(1).unwrap_or("")
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_at_once() {
        let limits = RuntimeApiLimits {
            max_connections: 2,
            ..RuntimeApiLimits::default()
        };
        let (_api, addr) = start(limits, 1024).await;
        let nope = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut a = connect(addr, nope).await;
        let mut b = connect(addr, nope).await;
        let s = Duration::from_secs(2);
        assert_eq!(status(&answer(&mut a, s).await.unwrap()), "404");
        assert_eq!(status(&answer(&mut b, s).await.unwrap()), "404");
        let mut c = connect(addr, nope).await;
        assert!(closed(&mut c, s).await, "a third connection is closed");
        // Once one goes, another is served.
        drop(a);
        let until = Instant::now() + Duration::from_secs(3);
        loop {
            let mut d = connect(addr, nope).await;
            if let Some(head) = answer(&mut d, s).await {
                assert_eq!(status(&head), "404");
                break;
            }
            assert!(Instant::now() < until, "no slot came free");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn partial_heads_and_idle_connections_time_out_but_a_pending_next_does_not() {
        let limits = RuntimeApiLimits {
            header_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(300),
            ..RuntimeApiLimits::default()
        };
        let (api, addr) = start(limits, 1024).await;
        let s = Duration::from_secs(3);
        let mut partial = connect(addr, "GET /2018-06-01/runt").await;
        let mut idle = connect(addr, "").await;
        let mut runtime = connect(addr, NEXT).await;
        assert!(closed(&mut partial, s).await, "a partial head times out");
        assert!(closed(&mut idle, s).await, "an idle connection times out");
        // The long poll outlived both timeouts; now an event comes.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (ev, rx) = event("id-1", 10_000);
        api.events.send(ev).await.unwrap();
        let head = answer(&mut runtime, s).await.unwrap();
        assert_eq!(status(&head), "200", "{head}");
        assert!(
            head.contains("lambda-runtime-aws-request-id: id-1"),
            "{head}"
        );
        // The function runs past the idle timeout: the runtime's connection stays open.
        tokio::time::sleep(Duration::from_millis(900)).await;
        let path = "/2018-06-01/runtime/invocation/id-1/response";
        runtime.write_all(post(path, 2).as_bytes()).await.unwrap();
        runtime.write_all(b"42").await.unwrap();
        let head = answer(&mut runtime, s).await.unwrap();
        assert_eq!(status(&head), "202", "{head}");
        match rx.await.unwrap() {
            Reply::Response(b) => assert_eq!(b, "42"),
            Reply::Error(e) => panic!("{e:?}"),
        }
    }

    #[tokio::test]
    async fn a_slow_body_is_408_and_leaves_the_call_unanswered() {
        let limits = RuntimeApiLimits {
            body_timeout: Duration::from_millis(300),
            ..RuntimeApiLimits::default()
        };
        let (api, addr) = start(limits, 1024).await;
        let s = Duration::from_secs(3);
        let (ev, rx) = event("id-2", 10_000);
        api.events.send(ev).await.unwrap();
        let mut runtime = connect(addr, NEXT).await;
        assert_eq!(status(&answer(&mut runtime, s).await.unwrap()), "200");
        let path = "/2018-06-01/runtime/invocation/id-2/response";
        let mut slow = connect(addr, &post(path, 100)).await;
        slow.write_all(b"0123456789").await.unwrap();
        let head = answer(&mut slow, s).await.unwrap();
        assert_eq!(status(&head), "408", "{head}");
        assert!(closed(&mut slow, s).await);
        // The call can still be answered.
        runtime.write_all(post(path, 1).as_bytes()).await.unwrap();
        runtime.write_all(b"7").await.unwrap();
        assert_eq!(status(&answer(&mut runtime, s).await.unwrap()), "202");
        assert!(matches!(rx.await.unwrap(), Reply::Response(b) if b == "7"));
    }

    #[tokio::test]
    async fn bodies_wait_for_room_in_the_sandboxs_budget() {
        let limits = RuntimeApiLimits {
            body_budget_bytes: 1500,
            max_error_bytes: 500,
            ..RuntimeApiLimits::default()
        };
        let (api, addr) = start(limits, 1000).await;
        let s = Duration::from_secs(3);
        let (ev, rx) = event("id-3", 10_000);
        api.events.send(ev).await.unwrap();
        let mut runtime = connect(addr, NEXT).await;
        assert_eq!(status(&answer(&mut runtime, s).await.unwrap()), "200");
        let path = "/2018-06-01/runtime/invocation/id-3/response";
        let mut hog = connect(addr, &post(path, 1000)).await;
        hog.write_all(&[b'x'; 999]).await.unwrap();
        let until = Instant::now() + s;
        while api.budget_available() != 500 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            api.budget_available(),
            500,
            "its declared 1000 bytes reserved"
        );
        // 600 more do not fit: the body waits.
        let mut second = connect(addr, &post(path, 600)).await;
        second.write_all(&[b'y'; 600]).await.unwrap();
        assert!(
            answer(&mut second, Duration::from_millis(300))
                .await
                .is_none()
        );
        assert!(api.budget_available() <= 500);
        // The hog goes: its room is given back and the second body goes through.
        drop(hog);
        assert_eq!(status(&answer(&mut second, s).await.unwrap()), "202");
        match rx.await.unwrap() {
            Reply::Response(b) => assert_eq!(b.len(), 600),
            Reply::Error(e) => panic!("{e:?}"),
        }
        assert_eq!(api.budget_available(), 1500, "handed on: nothing counted");
    }

    #[tokio::test]
    async fn oversized_and_refused_bodies_are_answered_unread() {
        let (api, addr) = start(RuntimeApiLimits::default(), 1000).await;
        let s = Duration::from_secs(3);
        let (ev, rx) = event("id-4", 10_000);
        api.events.send(ev).await.unwrap();
        let mut runtime = connect(addr, NEXT).await;
        assert_eq!(status(&answer(&mut runtime, s).await.unwrap()), "200");
        // Another id, with a large body that is never sent: refused at once.
        let other = "/2018-06-01/runtime/invocation/other/response";
        let mut c = connect(addr, &post(other, 5_000_000)).await;
        let head = answer(&mut c, s).await.unwrap();
        assert_eq!(status(&head), "400", "{head}");
        assert!(head.contains("connection: close"), "{head}");
        // Declared over the limit: 413 without reading, and the call fails as on Lambda.
        let path = "/2018-06-01/runtime/invocation/id-4/response";
        let mut c = connect(addr, &post(path, 7000)).await;
        assert_eq!(status(&answer(&mut c, s).await.unwrap()), "413");
        match rx.await.unwrap() {
            Reply::Error(e) => assert_eq!(e.error_type, "Function.ResponseSizeTooLarge"),
            Reply::Response(_) => panic!("expected an error"),
        }
        assert_eq!(api.budget_available(), 1024 * 1024 * 13);
    }
}
