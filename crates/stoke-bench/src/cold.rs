//! Cold starts: new functions with the same (already compiled) module; the first call of each
//! is timed by the client, and its `REPORT` line (read from the log tail) gives the server's
//! `Init Duration` and `Duration`; the call right after is the warm comparison.

use anyhow::{Context as _, ensure};
use base64::Engine as _;
use http::StatusCode;

use crate::config::PAYLOAD;
use crate::load::{Conn, InvokeCall, Signer};
use crate::parse::parse_report;
use crate::results::ColdSample;
use crate::server::StokeServer;
use crate::stats::micros;

/// The first call of a new function (with its log tail, for the REPORT line), then a second.
pub async fn cold_start(
    conn: &mut Conn,
    signer: &Signer,
    server: &StokeServer,
    name: &str,
) -> anyhow::Result<ColdSample> {
    let call = InvokeCall {
        log_tail: true,
        ..InvokeCall::new(name, PAYLOAD)
    };
    let first = conn.send(signer.invoke(server.addr, &call)?).await?;
    ensure!(
        first.status == StatusCode::OK && first.body == PAYLOAD,
        "the first call of {name} answered HTTP {}",
        first.status
    );
    let tail = first
        .header("x-amz-log-result")
        .context("no X-Amz-Log-Result on a Tail call")?;
    let log = base64::engine::general_purpose::STANDARD.decode(tail)?;
    let report =
        parse_report(&String::from_utf8_lossy(&log)).context("no REPORT line in the log tail")?;
    let second = conn
        .send(signer.invoke(
            server.addr,
            &InvokeCall {
                log_tail: false,
                ..call
            },
        )?)
        .await?;
    Ok(ColdSample {
        first_call_us: micros(first.latency),
        init_ms: report.init_ms,
        duration_ms: report.duration_ms,
        second_call_us: micros(second.latency),
    })
}
