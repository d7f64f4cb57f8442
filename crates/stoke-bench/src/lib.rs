//! The benchmark behind `stoke bench`: it measures the platform on loopback, the way issue 3
//! asks, against a real `stoke serve` that it starts itself, and returns the [`Results`] that
//! [`markdown`] prints as tables (and `--json` as they are).
//!
//! One run:
//! 1. starts `stoke serve` ([`server::StokeServer`]: a child process on a free port, a fresh
//!    temporary data dir, the access key from the credentials file it writes);
//! 2. deploys the echo guest (`tests/guests/echo.wat`, compiled at run time) and copies one real
//!    answer of it into a bare hyper server ([`bare::BareServer`], in this process, on its own
//!    runtime and port);
//! 3. **warm** ([`warm`]): for each client count, N closed-loop clients (one keep-alive
//!    HTTP/1.1 connection each, every request SigV4-signed) call the function for the window
//!    after a warm-up, then call the bare server the same way, then `wasmtime serve` with a
//!    wasi:http hello component when it is there ([`wasmtime`]): p50/p99 latency and
//!    throughput of each, and the overhead as a difference and a ratio ([`load`]);
//! 4. **cold start** ([`cold`]): new functions with the same (already compiled) module, the
//!    first call of each timed by the client and its `REPORT` line read from the log tail;
//! 5. **process runtimes** ([`runtimes`], unless none are asked for): cold start and warm calls
//!    of the Python and Node hello functions, with the floors measured in the same run;
//! 6. **update** ([`update`]): UpdateFunctionCode with a new module, then calls until the answer
//!    is the new code's;
//! 7. **async** ([`asynq`]): durable enqueues per second and the time from the 202 to the run's
//!    start for an idle, warm function.
//!
//! 429 answers are counted apart from other errors; at the server's default concurrency (256)
//! there should be none.
//!
//! # Layout
//! - [`config`]: what a run is asked to do, and the constants of every call.
//! - [`server`]: the Stoke child process; [`bare`]: the bare hyper server; [`wasmtime`]: the
//!   `wasmtime serve` peer (found, or installed on request).
//! - [`guests`]: the modules and their zips; [`functions`]: creating the bench's functions.
//! - [`load`]: connections, signing, the closed-loop load.
//! - [`warm`], [`cold`], [`runtimes`], [`update`], [`asynq`]: the measures.
//! - [`cluster`]: `--cluster`: three nodes on one PostgreSQL, a warm call served locally vs
//!   forwarded, and the warm-hit share after a mixed load (its own results and table).
//! - [`sources`]: `--sources`: event source mappings per broker (publish → start, one
//!   mapping's sustained rate against the broker's own consumer; the [`sources::Broker`] seam).
//! - [`results`]: what was measured; [`markdown`]: the tables.
//! - [`stats`] (percentiles, medians, rounding) and [`parse`] (the REPORT line, a Prometheus
//!   sample): leaves that every other module may use.
//!
//! The API client and the credentials come from `stoke-client`; the bench knows the server only
//! through its HTTP API and its command line.

pub mod asynq;
pub mod bare;
pub mod cluster;
pub mod cold;
pub mod config;
pub mod functions;
pub mod guests;
pub mod load;
pub mod markdown;
pub mod parse;
pub mod results;
pub mod runtimes;
pub mod server;
pub mod sources;
pub mod stats;
pub mod update;
pub mod warm;
pub mod wasmtime;

use std::sync::Arc;

use anyhow::Context as _;
use reqwest::Url;
use stoke_client::LambdaClient;

pub use config::{Config, WasmtimeConfig};
pub use markdown::markdown;
pub use results::Results;

use config::REGION;
use functions::create_wasm;
use load::{Conn, Signer};
use server::StokeServer;

/// The function of the warm runs.
const WARM_FUNCTION: &str = "bench-echo";

/// Runs the bench: starts the server, measures, stops the server.
pub async fn run(config: &Config) -> anyhow::Result<Results> {
    eprintln!("starting {} serve", config.server_bin.display());
    let server = StokeServer::start(&config.server_bin, REGION).await?;
    let outcome = measure(config, &server).await;
    server.stop().await;
    outcome
}

/// Everything but starting and stopping the server.
async fn measure(args: &Config, server: &StokeServer) -> anyhow::Result<Results> {
    let endpoint = Url::parse(&format!("http://{}", server.addr))?;
    let api = LambdaClient::new(endpoint, REGION.to_owned(), server.credentials.clone())?;
    let signer = Arc::new(Signer {
        credentials: server.credentials.clone(),
        region: REGION.to_owned(),
    });
    let echo = guests::echo_zip()?;
    let mut results = Results::new(args);

    if args.async_only {
        asynq::measure(args, server, &api, &signer, &echo, &mut results).await?;
        return Ok(results);
    }
    create_wasm(&api, WARM_FUNCTION, &echo).await?;
    let mut conn = Conn::open(server.addr).await?;
    warm::measure(
        args,
        server,
        &mut conn,
        &signer,
        WARM_FUNCTION,
        &mut results,
    )
    .await?;

    eprintln!("cold starts: {} new functions", args.cold_starts);
    for i in 0..args.cold_starts {
        let name = format!("bench-cold-{i}");
        create_wasm(&api, &name, &echo).await?;
        results
            .cold
            .push(cold::cold_start(&mut conn, &signer, server, &name).await?);
    }

    if args.runtime_cold_starts > 0 {
        let bare_p50 = results.warm.first().map_or(f64::NAN, |w| w.bare.p50_us);
        results.runtimes = runtimes::measure(
            &api,
            &mut conn,
            &signer,
            server,
            bare_p50,
            args.runtime_cold_starts,
            args.runtime_warm_calls,
        )
        .await
        .context("measuring the process runtimes")?;
    }

    eprintln!("code updates: {}", args.updates);
    update::measure(
        &api,
        &mut conn,
        &signer,
        server,
        &echo,
        args.updates,
        &mut results,
    )
    .await?;

    asynq::measure(args, server, &api, &signer, &echo, &mut results).await?;
    // Log lines the recorder could not keep up with.
    results.logs_dropped = server.metric("stoke_logs_dropped").await;
    Ok(results)
}
