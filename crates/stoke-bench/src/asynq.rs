//! The async part of `stoke bench`: durable enqueues per second (closed-loop clients sending
//! `X-Amz-Invocation-Type: Event`, each waiting for its 202, which the server sends once the
//! event's commit is on disk), and the time from the 202 to the start of the event's run for an
//! idle function (events sent one at a time; the run's start is its START line's timestamp).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use http::StatusCode;
use serde_json::json;
use stoke_client::LambdaClient;

use crate::config::{Config, PAYLOAD};
use crate::functions::create_wasm;
use crate::load::{self, Conn, InvokeCall, LoadPlan, Signer};
use crate::results::{AsyncStart, Results};
use crate::server::StokeServer;
use crate::stats::{percentile, round1};

const ENQUEUE_FUNCTION: &str = "bench-async";
const IDLE_FUNCTION: &str = "bench-async-idle";
/// The pause between two latency samples: the function is idle when the next event comes.
const IDLE_GAP: Duration = Duration::from_millis(10);

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Runs both async measures and adds them to `results`.
pub async fn measure(
    args: &Config,
    server: &StokeServer,
    api: &LambdaClient,
    signer: &Arc<Signer>,
    zip: &[u8],
    results: &mut Results,
) -> anyhow::Result<()> {
    create_wasm(api, ENQUEUE_FUNCTION, zip).await?;
    let call = InvokeCall {
        event: true,
        ..InvokeCall::new(ENQUEUE_FUNCTION, PAYLOAD)
    };
    for &clients in &args.async_clients {
        let clients = usize::try_from(clients)?;
        eprintln!("async enqueue, {clients} clients");
        let r = load::run(
            &LoadPlan {
                addr: server.addr,
                clients,
                warmup: args.warmup,
                window: args.duration,
                call: call.clone(),
                expect_status: StatusCode::ACCEPTED,
                expect: Bytes::new(),
            },
            signer,
        )
        .await?;
        if let Some(e) = &r.first_error {
            eprintln!("  {} errors, the first: {e}", r.errors);
        }
        results.async_enqueue.push(r.summary());
        // Let the workers drain what was sent before the next run.
        drain(server).await;
    }

    if args.async_samples == 0 {
        return Ok(());
    }
    eprintln!(
        "async: 202 to execution start, {} events",
        args.async_samples
    );
    create_wasm(api, IDLE_FUNCTION, zip).await?;
    let idle = InvokeCall {
        function: IDLE_FUNCTION.to_owned(),
        event: false,
        ..call
    };
    let mut conn = Conn::open(server.addr).await?;
    // One synchronous call first: the sandbox is warm, then idle.
    let warm = conn.send(signer.invoke(server.addr, &idle)?).await?;
    ensure!(
        warm.status == StatusCode::OK,
        "the warm-up call answered {}",
        warm.status
    );
    let event = InvokeCall {
        event: true,
        ..idle
    };
    let mut acked: Vec<(String, f64)> = Vec::with_capacity(args.async_samples);
    for _ in 0..args.async_samples {
        tokio::time::sleep(IDLE_GAP).await;
        let a = conn.send(signer.invoke(server.addr, &event)?).await?;
        let at = now_ms();
        ensure!(
            a.status == StatusCode::ACCEPTED,
            "an event answered {}",
            a.status
        );
        let rid = a
            .header("x-amzn-requestid")
            .context("no x-amzn-RequestId on a 202")?
            .to_owned();
        acked.push((rid, at));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let starts = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let starts = start_times(api, IDLE_FUNCTION).await?;
        if acked.iter().all(|(rid, _)| starts.contains_key(rid))
            || tokio::time::Instant::now() > deadline
        {
            break starts;
        }
    };
    let mut deltas: Vec<f64> = acked
        .iter()
        .filter_map(|(rid, at)| starts.get(rid).map(|s| *s as f64 - at))
        .collect();
    deltas.sort_by(f64::total_cmp);
    ensure!(
        deltas.len() == acked.len(),
        "only {} of {} events showed a START line",
        deltas.len(),
        acked.len()
    );
    results.async_start = Some(AsyncStart {
        samples: deltas.len(),
        p50_ms: round1(percentile(&deltas, 50.0).unwrap_or(f64::NAN) * 10.0) / 10.0,
        p90_ms: round1(percentile(&deltas, 90.0).unwrap_or(f64::NAN) * 10.0) / 10.0,
        p99_ms: round1(percentile(&deltas, 99.0).unwrap_or(f64::NAN) * 10.0) / 10.0,
    });
    Ok(())
}

/// Waits (up to a minute) until `stoke_async_queue_depth` is 0.
async fn drain(server: &StokeServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let depth = server.metric("stoke_async_queue_depth").await;
        if depth.is_none_or(|d| d == 0.0) {
            return;
        }
    }
}

/// Request id → START timestamp (ms) of every run of `function`.
async fn start_times(
    api: &LambdaClient,
    function: &str,
) -> anyhow::Result<std::collections::HashMap<String, i64>> {
    let mut out = std::collections::HashMap::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({
            "logGroupName": format!("/aws/lambda/{function}"),
            "filterPattern": "\"START RequestId\"",
            "limit": 10000,
        });
        if let (Some(t), Some(o)) = (&token, req.as_object_mut()) {
            o.insert("nextToken".into(), json!(t));
        }
        let page = api
            .filter_log_events(&req)
            .await
            .context("reading the START lines")?;
        for e in &page.events {
            if let Some(rest) = e.message.strip_prefix("START RequestId: ")
                && let Some(rid) = rest.split_whitespace().next()
            {
                out.insert(rid.to_owned(), e.timestamp);
            }
        }
        match page.next_token {
            Some(t) if !page.events.is_empty() => token = Some(t),
            _ => break,
        }
    }
    Ok(out)
}
