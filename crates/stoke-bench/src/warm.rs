//! Warm calls: for each client count, N closed-loop clients call the warm echo function for
//! the measured window after a warm-up, then the bare hyper server the same way, then (when it
//! is there) `wasmtime serve` with the hello component: p50/p99 latency and throughput of each,
//! and Stoke's overhead as a difference and a ratio. With `--dry-run` the calls are DryRun
//! (HTTP, SigV4, the function lookup, nothing run), which splits the overhead between the API
//! and the execution; the `wasmtime serve` peer, which always runs its component, is left out
//! then.

use std::sync::Arc;

use anyhow::ensure;
use bytes::Bytes;
use http::StatusCode;

use crate::bare::{BareServer, Canned};
use crate::config::{Config, PAYLOAD};
use crate::load::{self, Conn, InvokeCall, LoadPlan, LoadResult, Signer};
use crate::results::{Results, WarmRow};
use crate::server::StokeServer;
use crate::wasmtime::{self, WasmtimeServer};

/// Measures the warm rows of `results`; `conn` is a connection to `server`, and `function`
/// an Active echo function.
pub async fn measure(
    args: &Config,
    server: &StokeServer,
    conn: &mut Conn,
    signer: &Arc<Signer>,
    function: &str,
    results: &mut Results,
) -> anyhow::Result<()> {
    // A dry run answers 204 and no body; a call, the event echoed.
    let call = InvokeCall {
        dry_run: args.dry_run,
        ..InvokeCall::new(function, PAYLOAD)
    };
    let (expect_status, expect) = if args.dry_run {
        (StatusCode::NO_CONTENT, Bytes::new())
    } else {
        (StatusCode::OK, Bytes::from_static(PAYLOAD))
    };
    let answer = conn.send(signer.invoke(server.addr, &call)?).await?;
    ensure!(
        answer.status == expect_status && answer.body == expect,
        "the echo function answered HTTP {} {:?}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let bare = BareServer::start(
        Canned::from_answer(answer.status, &answer.headers, answer.body.clone()),
        threads,
    )?;
    let peer = wasmtime_peer(args, results).await;

    for &clients in &args.clients {
        let clients = usize::try_from(clients)?;
        let plan = LoadPlan {
            addr: server.addr,
            clients,
            warmup: args.warmup,
            window: args.duration,
            call: call.clone(),
            expect_status,
            expect: expect.clone(),
        };
        eprintln!("warm invoke, {clients} clients: stoke");
        let stoke = load::run(&plan, signer).await?;
        report_failures("stoke", &stoke);
        eprintln!("warm invoke, {clients} clients: bare hyper server");
        let bare_plan = LoadPlan {
            addr: bare.addr,
            ..plan.clone()
        };
        let bare_result = load::run(&bare_plan, signer).await?;
        report_failures("bare", &bare_result);
        let mut row = WarmRow::new(stoke.summary(), bare_result.summary());
        if let Some(peer) = &peer {
            eprintln!("warm invoke, {clients} clients: wasmtime serve");
            // The component answers the event, with a 200, as the echo function does.
            let peer_plan = LoadPlan {
                addr: peer.addr,
                ..plan
            };
            let peer_result = load::run(&peer_plan, signer).await?;
            report_failures("wasmtime", &peer_result);
            row = row.with_wasmtime(peer_result.summary());
        }
        results.warm.push(row);
    }
    Ok(())
}

/// Starts `wasmtime serve` when it can; otherwise notes in `results` why not.
async fn wasmtime_peer(args: &Config, results: &mut Results) -> Option<WasmtimeServer> {
    let why = if args.wasmtime.off {
        "--no-wasmtime".to_owned()
    } else if args.dry_run {
        "--dry-run (the component always runs)".to_owned()
    } else {
        match wasmtime::locate(&args.wasmtime).await {
            Ok(Ok(found)) => match WasmtimeServer::start(&found).await {
                Ok(server) => {
                    eprintln!(
                        "wasmtime serve: {} ({}) on {}",
                        found.version,
                        found.component.display(),
                        server.addr
                    );
                    results.wasmtime_version = Some(found.version);
                    return Some(server);
                }
                Err(e) => format!("{e:#}"),
            },
            Ok(Err(why)) => why,
            Err(e) => format!("{e:#}"),
        }
    };
    eprintln!("wasmtime serve peer skipped: {why}");
    results.wasmtime_skipped = Some(why);
    None
}

/// Prints the errors and 429s a load run counted.
fn report_failures(who: &str, r: &LoadResult) {
    if let Some(e) = &r.first_error {
        eprintln!("  {who}: {} errors, the first: {e}", r.errors);
    }
    if r.throttled > 0 {
        eprintln!("  {who}: {} calls throttled (429)", r.throttled);
    }
}
