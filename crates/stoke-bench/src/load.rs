//! The load side of `stoke bench`: keep-alive HTTP/1.1 connections (hyper's client, one
//! connection per client task), SigV4-signed Invoke requests, the closed-loop load of N
//! clients for a fixed time, and the percentiles of what they measured.
//!
//! Every request is signed afresh, as a real client does, by the CLI's own signer
//! ([`stoke_client::sign`]); the signing happens before the clock of a request starts,
//! but inside the load loop, so it costs the same against Stoke and against the bare server.
//! A request's latency runs from handing it to the connection to having read the whole answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use reqwest::Url;
use serde::Serialize;
use tokio::net::TcpStream;

use stoke_client::{Credentials, SigningScope};

use crate::stats::{percentile, round1};

/// Signs Invoke requests for one server.
#[derive(Debug, Clone)]
pub struct Signer {
    /// The key the server's credentials file holds.
    pub credentials: Credentials,
    /// The region of the credential scope.
    pub region: String,
}

/// An Invoke request to send.
#[derive(Debug, Clone)]
pub struct InvokeCall {
    /// The function to call.
    pub function: String,
    /// The event.
    pub payload: Bytes,
    /// Ask for the log tail (`X-Amz-Log-Type: Tail`).
    pub log_tail: bool,
    /// Send `DryRun` (checks only, nothing runs) instead of `RequestResponse`.
    pub dry_run: bool,
    /// Send `Event` (an async invocation: 202 once the event is durable).
    pub event: bool,
}

impl InvokeCall {
    /// A synchronous `RequestResponse` call of `function` with `payload`, no log tail.
    pub fn new(function: &str, payload: &'static [u8]) -> Self {
        Self {
            function: function.to_owned(),
            payload: Bytes::from_static(payload),
            log_tail: false,
            dry_run: false,
            event: false,
        }
    }
}

impl Signer {
    /// A signed `POST /2015-03-31/functions/{name}/invocations` for the server at `addr`.
    pub fn invoke(
        &self,
        addr: SocketAddr,
        call: &InvokeCall,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let path = stoke_client::invoke_path(&call.function, None);
        let url = Url::parse(&format!("http://{addr}{path}"))?;
        let mut headers = vec![
            ("content-type", "application/json"),
            (
                "x-amz-invocation-type",
                if call.dry_run {
                    "DryRun"
                } else if call.event {
                    "Event"
                } else {
                    "RequestResponse"
                },
            ),
        ];
        if call.log_tail {
            headers.push(("x-amz-log-type", "Tail"));
        }
        let scope = SigningScope {
            credentials: &self.credentials,
            region: &self.region,
            service: "lambda",
        };
        let signed = stoke_client::sign(
            "POST",
            &url,
            &headers,
            &call.payload,
            &scope,
            SystemTime::now(),
        )?;
        let mut request = Request::post(path);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        Ok(request.body(Full::new(call.payload.clone()))?)
    }
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// From handing the request to the connection to the end of the body.
    pub latency: Duration,
}

impl Answer {
    /// The header `name`, when it is there and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    /// Drives the connection; ends when the sender is dropped or the peer closes.
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Conn {
    /// Connects to `addr` (with `TCP_NODELAY`, as HTTP clients set it).
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { sender, driver })
    }

    /// Sends one request and reads its answer whole.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        self.sender.ready().await?;
        let started = Instant::now();
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
            latency: started.elapsed(),
        })
    }
}

/// What N clients measured against one server.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Clients (connections) that ran at once.
    pub clients: usize,
    /// The measured window.
    pub window: Duration,
    /// Latencies of the calls answered correctly in the window, sorted.
    pub latencies: Vec<Duration>,
    /// 429 answers (throttled) in the window.
    pub throttled: u64,
    /// Other failures in the window: another status, a function error, a wrong body, a broken
    /// connection.
    pub errors: u64,
    /// The first failure seen, to show.
    pub first_error: Option<String>,
}

/// The figures of a [`LoadResult`], for the tables and `--json`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LoadSummary {
    pub clients: usize,
    pub requests: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub requests_per_sec: f64,
    pub throttled: u64,
    pub errors: u64,
}

impl LoadResult {
    /// Percentiles and throughput.
    pub fn summary(&self) -> LoadSummary {
        let micros =
            |p| percentile(&self.latencies, p).map_or(f64::NAN, |d| round1(d.as_secs_f64() * 1e6));
        let requests = self.latencies.len() as u64;
        LoadSummary {
            clients: self.clients,
            requests,
            p50_us: micros(50.0),
            p99_us: micros(99.0),
            requests_per_sec: round1(requests as f64 / self.window.as_secs_f64().max(1e-9)),
            throttled: self.throttled,
            errors: self.errors,
        }
    }
}

/// How one load run goes.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The server.
    pub addr: SocketAddr,
    /// Clients at once, each with its own connection.
    pub clients: usize,
    /// Calls before the window (warm sandboxes, warm connections), not counted.
    pub warmup: Duration,
    /// The measured window.
    pub window: Duration,
    /// The call every client repeats.
    pub call: InvokeCall,
    /// The status of a correct answer (200, or 204 for DryRun).
    pub expect_status: StatusCode,
    /// The body a correct answer carries.
    pub expect: Bytes,
}

/// What one client counted.
#[derive(Debug, Default)]
struct ClientTally {
    latencies: Vec<Duration>,
    throttled: u64,
    errors: u64,
    first_error: Option<String>,
}

impl ClientTally {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

/// Runs `plan.clients` closed-loop clients (each sends its next call when the last one is
/// answered) through a warm-up and then the measured window.
pub async fn run(plan: &LoadPlan, signer: &Arc<Signer>) -> anyhow::Result<LoadResult> {
    let start = tokio::time::Instant::now();
    let window_start = start + plan.warmup;
    let window_end = window_start + plan.window;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.clients {
        let (plan, signer) = (plan.clone(), Arc::clone(signer));
        tasks.spawn(async move { one_client(&plan, &signer, window_start, window_end).await });
    }
    let mut result = LoadResult {
        clients: plan.clients,
        window: plan.window,
        ..LoadResult::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.context("a client task failed")??;
        result.latencies.extend(tally.latencies);
        result.throttled += tally.throttled;
        result.errors += tally.errors;
        if result.first_error.is_none() {
            result.first_error = tally.first_error;
        }
    }
    result.latencies.sort_unstable();
    Ok(result)
}

/// One client: its own connection, calls until `window_end`, tallies the ones answered in the
/// window. A broken connection is counted and replaced.
async fn one_client(
    plan: &LoadPlan,
    signer: &Signer,
    window_start: tokio::time::Instant,
    window_end: tokio::time::Instant,
) -> anyhow::Result<ClientTally> {
    let mut tally = ClientTally {
        latencies: Vec::with_capacity(4096),
        ..ClientTally::default()
    };
    let mut conn = Conn::open(plan.addr).await?;
    loop {
        let request = signer.invoke(plan.addr, &plan.call)?;
        let answer = conn.send(request).await;
        let now = tokio::time::Instant::now();
        if now >= window_end {
            break;
        }
        let counted = now >= window_start;
        match answer {
            Ok(a)
                if a.status == plan.expect_status
                    && !a.headers.contains_key("x-amz-function-error")
                    && a.body == plan.expect =>
            {
                if counted {
                    tally.latencies.push(a.latency);
                }
            }
            Ok(a) if a.status == StatusCode::TOO_MANY_REQUESTS => {
                if counted {
                    tally.throttled += 1;
                }
            }
            Ok(a) => {
                if counted {
                    tally.error(format!(
                        "HTTP {}: {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ));
                }
            }
            Err(e) => {
                if counted {
                    tally.error(format!("{e:#}"));
                }
                conn = Conn::open(plan.addr).await?;
            }
        }
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_throughput_over_the_window() {
        let result = LoadResult {
            clients: 2,
            window: Duration::from_secs(2),
            latencies: [1, 2, 3, 4].map(Duration::from_millis).to_vec(),
            throttled: 1,
            errors: 0,
            first_error: None,
        };
        let s = result.summary();
        assert_eq!(s.requests, 4);
        assert!((s.requests_per_sec - 2.0).abs() < 1e-9);
        assert!((s.p50_us - 2000.0).abs() < 1e-6);
        assert_eq!(s.throttled, 1);
    }
}
