//! The listener under the server's HTTP endpoints: an accept loop and HTTP/1.1 connections
//! (hyper) that no client can hold open or pile up. A connection that opens with HTTP/2's
//! preface (h2c, prior knowledge: the cluster's internal channel, see `forward`) is served as
//! HTTP/2 on the same port, at most [`MAX_H2_STREAMS`] requests at once, under the same
//! timeouts and caps.
//!
//! - **Timeouts.** A connection with no request in flight is closed when a request head has
//!   been arriving for longer than the header-read timeout (a partial request line, a
//!   1-byte-per-second client) or when nothing has moved on it for the idle timeout (an idle
//!   connection, an idle keep-alive, a client that stopped reading its answer). A request in
//!   flight is never cut here: a body that stalls is the body reader's business (408) and a
//!   call runs as long as its function's timeout.
//! - **Caps.** At most `max_connections` connections at once (the caller derives it from
//!   `RLIMIT_NOFILE` minus a reserve, so that accepting never takes the descriptors that
//!   sandboxes, SQLite and blobs need). At the cap, a new client takes the place of the
//!   connection without a request in flight that has waited longest (since the first byte of
//!   a head still arriving, so dripping bytes does not help a dawdler; else since anything
//!   last moved), so that connections that merely sit there cannot lock clients out; when
//!   every connection has a request in flight, the new client waits until one ends (and
//!   those behind it in the kernel's backlog). At most `max_connections_per_ip` from one
//!   client address; past it a new connection is closed at once.
//! - **Accept errors** (`EMFILE` and the like) back off, from 10 ms doubling to 1 s, and are
//!   logged at most once every 10 s with a count, never as a flood.
//! - **Graceful shutdown**: when `shutdown` completes the loop stops accepting, idle
//!   connections close and requests under way finish.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;

/// The bounds of a listener.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// How long a request head (request line and headers) may take to arrive.
    pub header_read_timeout: Duration,
    /// How long a connection may sit with no request in flight and nothing moving.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_connections_per_ip: usize,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_connections_per_ip: 256,
        }
    }
}

/// The largest read buffer of a connection, which also bounds a request head.
const MAX_BUF: usize = 64 * 1024;
/// Requests at once on one HTTP/2 connection.
pub const MAX_H2_STREAMS: u32 = 256;
/// An HTTP/2 request's window, and its connection's (a 6 MB payload in few round trips).
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
const H2_CONN_WINDOW: u32 = 8 * 1024 * 1024;

/// Serves `app` on `listener` until `shutdown` completes, then lets the requests under way
/// finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: ListenConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let total = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let per_ip: PerIp = Arc::default();
    let open: Registry = Arc::default();
    let mut next_id = 0u64;
    let mut evicted = Throttle::default();
    // Connections hold a receiver each; the sender says "stop" and waits for them all to go.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .header_read_timeout(Option::<Duration>::None)
        .max_buf_size(MAX_BUF);
    builder
        .http2()
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_header_list_size(u32::try_from(MAX_BUF).unwrap_or(u32::MAX))
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONN_WINDOW);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut accept_errors = Throttle::default();
    let mut refused = Throttle::default();
    let mut backoff = MIN_BACKOFF;
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(accepted) => {
                    backoff = MIN_BACKOFF;
                    accepted
                }
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    if let Some(more) = accept_errors.hit() {
                        tracing::warn!(error = %e, repeated = more, backoff_ms = backoff.as_millis() as u64,
                            "accept failed; backing off");
                    }
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let Some(slot) = IpSlot::take(&per_ip, peer.ip(), config.max_connections_per_ip) else {
            if let Some(more) = refused.hit() {
                tracing::warn!(client = %peer.ip(), repeated = more,
                    cap = config.max_connections_per_ip,
                    "refused connections over the per-address cap");
            }
            drop(stream);
            continue;
        };
        // At the cap, the new client takes the place of the connection idle the longest.
        let permit = match Arc::clone(&total).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                biased;
                () = &mut shutdown => break,
                p = make_room(&total, &open, &mut evicted, config.max_connections) => match p {
                    Some(p) => p,
                    None => break,
                },
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let service = {
            let activity = Arc::clone(&activity);
            let app = app.clone();
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let in_flight = activity.begin();
                let app = app.clone();
                async move {
                    let resp = app.oneshot(req).await;
                    drop(in_flight);
                    resp.map_err(|e: Infallible| e)
                }
            })
        };
        let conn = builder.serve_connection(io, service).into_owned();
        next_id += 1;
        let handle = Open {
            activity: Arc::clone(&activity),
            peer,
            stop: stopping.clone(),
            _listed: Listed::new(&open, next_id, activity),
            _permit: permit,
            _slot: slot,
        };
        tokio::spawn(connection(
            conn,
            |c| c.graceful_shutdown(),
            handle,
            config.clone(),
        ));
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(true);
    stop.closed().await;
    Ok(())
}

/// Closes the connection idle the longest (see [`oldest_idle`]) until a slot is free; when
/// every connection has a request in flight, waits for one to end. `None`: the listener is
/// gone.
async fn make_room(
    total: &Arc<Semaphore>,
    open: &Registry,
    evicted: &mut Throttle,
    cap: usize,
) -> Option<OwnedSemaphorePermit> {
    loop {
        let victim = oldest_idle(open);
        if let Some(victim) = &victim {
            if let Some(more) = evicted.hit() {
                tracing::warn!(
                    cap,
                    repeated = more,
                    "at the connection cap: closing the connections idle the longest"
                );
            }
            victim.killed.store(true, Ordering::Relaxed);
            victim.kill.notify_one();
        }
        // A victim's slot comes back at once; if it does not, look again.
        let wait = if victim.is_some() {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        match tokio::time::timeout(wait, Arc::clone(total).acquire_owned()).await {
            Ok(Ok(p)) => return Some(p),
            Ok(Err(_)) => return None,
            Err(_) => {}
        }
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// An accept error that concerns one connection (gone before it was accepted), not the
/// listener.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

/// What a running connection holds: its activity, its slots (given back when it ends) and the
/// listener's stop signal.
struct Open {
    activity: Arc<Activity>,
    peer: SocketAddr,
    stop: tokio::sync::watch::Receiver<bool>,
    // Out of the registry before the permit goes back (fields drop in this order), so that a
    // closing connection is never chosen to make room.
    _listed: Listed,
    _permit: OwnedSemaphorePermit,
    _slot: IpSlot,
}

/// The open connections, for choosing whom to close at the cap.
type Registry = Arc<Mutex<HashMap<u64, Arc<Activity>>>>;

/// A connection's entry in the [`Registry`], removed when dropped.
struct Listed {
    registry: Registry,
    id: u64,
}

impl Listed {
    fn new(registry: &Registry, id: u64, activity: Arc<Activity>) -> Self {
        registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, activity);
        Self {
            registry: Arc::clone(registry),
            id,
        }
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// The connection without a request in flight that has waited longest: since the first byte
/// of its request head if one is arriving (a dawdler cannot look fresh by dripping bytes),
/// else since anything last moved.
fn oldest_idle(registry: &Registry) -> Option<Arc<Activity>> {
    let open = registry.lock().unwrap_or_else(PoisonError::into_inner);
    open.values()
        .filter(|a| a.in_flight.load(Ordering::Relaxed) == 0 && !a.killed.load(Ordering::Relaxed))
        .min_by_key(|a| a.waiting_since())
        .cloned()
}

/// Runs one connection, closing it when its timeouts say so, and gracefully (the request
/// under way finishes) once the listener stops.
async fn connection<C, E>(conn: C, graceful: fn(Pin<&mut C>), mut open: Open, config: ListenConfig)
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let tick = (config.header_read_timeout.min(config.idle_timeout) / 4)
        .clamp(Duration::from_millis(25), Duration::from_secs(1));
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(client = %open.peer, error = %e, "connection ended with an error");
                }
                return;
            }
            changed = open.stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    graceful(conn.as_mut());
                }
            }
            () = open.activity.kill.notified() => {
                tracing::debug!(client = %open.peer, "closing an idle connection at the connection cap");
                return;
            }
            () = tokio::time::sleep(tick) => {
                if let Some(why) = open.activity.expired(&config) {
                    tracing::debug!(client = %open.peer, why, "closing a connection");
                    return;
                }
            }
        }
    }
}

/// What a connection is doing, for its timeouts: written by its socket and its service.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Requests handed to the service and not answered yet.
    in_flight: AtomicU32,
    /// When the first byte of a request head came (ms since `start`, plus one; 0: none).
    head_since: AtomicU64,
    /// When a byte last moved, either way (ms since `start`).
    last: AtomicU64,
    /// Closes the connection (at the connection cap).
    kill: tokio::sync::Notify,
    /// Chosen to make room: closing.
    killed: std::sync::atomic::AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicU32::new(0),
            head_since: AtomicU64::new(0),
            last: AtomicU64::new(0),
            kill: tokio::sync::Notify::new(),
            killed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Since when it has waited without a request: the first byte of a request head still
    /// arriving, else the last byte that moved.
    fn waiting_since(&self) -> Instant {
        let head = self.head_since.load(Ordering::Relaxed);
        let ms = if head != 0 {
            head - 1
        } else {
            self.last.load(Ordering::Relaxed)
        };
        self.start + Duration::from_millis(ms)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn moved(&self, read: bool) {
        let now = self.now_ms();
        self.last.store(now, Ordering::Relaxed);
        if read && self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_since.compare_exchange(
                0,
                now.saturating_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    fn expired(&self, config: &ListenConfig) -> Option<&'static str> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let now = self.now_ms();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let head = self.head_since.load(Ordering::Relaxed);
        if head != 0 && now.saturating_sub(head - 1) >= ms(config.header_read_timeout) {
            return Some("the request head did not arrive within the header-read timeout");
        }
        if now.saturating_sub(self.last.load(Ordering::Relaxed)) >= ms(config.idle_timeout) {
            return Some("idle for the idle timeout");
        }
        None
    }
}

/// A request in flight on a connection; ends when dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.last.store(a.now_ms(), Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that tells its connection's [`Activity`] when bytes move.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.moved(true);
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved(false);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved(false);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One connection's place in its client address's count.
struct IpSlot {
    map: PerIp,
    ip: IpAddr,
}

impl IpSlot {
    fn take(map: &PerIp, ip: IpAddr, cap: usize) -> Option<Self> {
        let ip = ip.to_canonical();
        let mut m = map.lock().unwrap_or_else(PoisonError::into_inner);
        let n = m.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Self {
            map: Arc::clone(map),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Says when to log a repeated event: the first time, then at most once every 10 s, with
/// how many were not logged.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    unlogged: u64,
}

impl Throttle {
    fn hit(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(10))
        {
            self.unlogged += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
#[path = "listen_tests.rs"]
mod tests;
