//! The connections of one sandbox's Runtime API (see `api_bounds` for the bounds they keep):
//! at most `max_connections` at once, each watched for its timeouts ([`Watch`]: a head that
//! does not arrive, an idle connection, the exemption of the connection that took the call in
//! progress), served by hyper until it ends or a timeout falls.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::api_bounds::RuntimeApiLimits;

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
