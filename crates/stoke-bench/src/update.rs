//! Code updates: UpdateFunctionCode with a new module (a constant answer, new each round, so
//! each is compiled), then calls until the answer is the new code's: the time from sending the
//! update to that answer, and the latency of the calls the old code answered meanwhile (none may
//! fail), against the same calls with no update running.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use http::StatusCode;
use serde_json::json;
use stoke_client::LambdaClient;

use crate::config::PAYLOAD;
use crate::functions::create_wasm;
use crate::guests;
use crate::load::{Conn, InvokeCall, Signer};
use crate::results::{Results, UpdateSample};
use crate::server::StokeServer;
use crate::stats::{micros, round1};

/// The function of the update runs.
const UPDATE_FUNCTION: &str = "bench-update";
/// How long an update may take to reach the first call.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause between two calls while waiting for the new code.
const UPDATE_POLL: Duration = Duration::from_millis(1);
/// Calls of the baseline, with no update running.
const BASELINE_CALLS: usize = 200;

/// Measures `updates` code updates of a new echo function (`echo` is its zip) and the baseline
/// they are compared with; adds them to `results`.
pub async fn measure(
    api: &LambdaClient,
    conn: &mut Conn,
    signer: &Signer,
    server: &StokeServer,
    echo: &[u8],
    updates: usize,
    results: &mut Results,
) -> anyhow::Result<()> {
    create_wasm(api, UPDATE_FUNCTION, echo).await?;
    let call = InvokeCall::new(UPDATE_FUNCTION, PAYLOAD);
    conn.send(signer.invoke(server.addr, &call)?).await?;
    // The same sequence of calls with no update running: what the calls during updates are
    // compared with.
    for _ in 0..BASELINE_CALLS {
        let answer = conn.send(signer.invoke(server.addr, &call)?).await?;
        ensure!(
            answer.status == StatusCode::OK,
            "a baseline call answered HTTP {}",
            answer.status
        );
        results.calls_without_update_us.push(micros(answer.latency));
        tokio::time::sleep(UPDATE_POLL).await;
    }
    for round in 0..updates {
        results.updates.push(
            update(api, conn, signer, server, round, &call)
                .await
                .with_context(|| format!("update round {round}"))?,
        );
    }
    Ok(())
}

/// One update: new code (a constant answer unique to the round), then calls until it answers.
async fn update(
    api: &LambdaClient,
    conn: &mut Conn,
    signer: &Signer,
    server: &StokeServer,
    round: usize,
    call: &InvokeCall,
) -> anyhow::Result<UpdateSample> {
    let text = format!(r#"{{"round":{round},"pid":{}}}"#, std::process::id());
    let zip = guests::constant_zip(&text)?;
    let body = json!({ "ZipFile": base64::engine::general_purpose::STANDARD.encode(&zip) });
    let started = Instant::now();
    api.update_function_code(&call.function, &body, None)
        .await
        .context("UpdateFunctionCode")?;
    let acknowledged = started.elapsed();
    let mut old = 0u64;
    let mut during_us = Vec::new();
    loop {
        if started.elapsed() > UPDATE_TIMEOUT {
            bail!(
                "the new code did not answer within {} s",
                UPDATE_TIMEOUT.as_secs()
            );
        }
        let answer = conn.send(signer.invoke(server.addr, call)?).await?;
        match answer.status {
            StatusCode::OK if answer.body == text.as_bytes() => break,
            StatusCode::OK => {
                old += 1;
                during_us.push(micros(answer.latency));
            }
            // No call may fail because a deploy is under way.
            other => bail!(
                "a call during the update answered HTTP {other}: {}",
                String::from_utf8_lossy(&answer.body)
            ),
        }
        tokio::time::sleep(UPDATE_POLL).await;
    }
    let to_new_code = started.elapsed();
    Ok(UpdateSample {
        update_call_ms: round1(acknowledged.as_secs_f64() * 1e4) / 10.0,
        to_new_code_ms: round1(to_new_code.as_secs_f64() * 1e4) / 10.0,
        old_answers: old,
        during_us,
    })
}
