//! `stoke bench`: measures the platform on loopback, the way issue 3 asks, and prints a markdown
//! table (and JSON with `--json`).
//!
//! One run:
//! 1. starts `stoke serve` ([`server::StokeServer`]: a child process on a free port, a fresh
//!    temporary data dir, the access key from the credentials file it writes);
//! 2. deploys the echo guest (`tests/guests/echo.wat`, compiled at run time) and copies one real
//!    answer of it into a bare hyper server ([`server::BareServer`], in this process, on its
//!    own runtime and port);
//! 3. **warm**: for each `--clients` count, N closed-loop clients (one keep-alive HTTP/1.1
//!    connection each, every request SigV4-signed) call the function for `--duration` after a
//!    `--warmup`, then call the bare server the same way: p50/p99 latency and throughput of
//!    both, and the overhead as a difference and a ratio ([`load`]); with `--dry-run` the
//!    calls are DryRun (HTTP, SigV4, the function lookup, nothing run), which splits the
//!    overhead between the API and the execution;
//! 4. **cold start**: `--cold-starts` new functions with the same (already compiled) module;
//!    the first call of each is timed by the client, and its `REPORT` line (read from the log
//!    tail) gives the server's `Init Duration` and `Duration`;
//! 5. **process runtimes** ([`runtimes`], unless `--runtime-cold-starts 0`): cold start and
//!    warm calls of the Python and Node hello functions, with the floors measured in the same
//!    run (`python3 -c pass`, `node -e 0`, the bare round trip of step 3);
//! 6. **update**: `--updates` times, UpdateFunctionCode with a new module (a constant answer,
//!    new each round, so each is compiled), then calls until the answer is the new code's: the
//!    time from sending the update to that answer.
//!
//! 429 answers are counted apart from other errors; at the server's default concurrency (256)
//! there should be none.
//!
//! # Layout
//! 6. **async**: durable enqueues per second (`InvocationType: Event`, 202 once the event's
//!    commit is on disk) with `--async-clients` closed-loop clients, and the time from the 202
//!    to the run's start (its START line) for an idle, warm function ([`asynq`]).
//!
//! - [`guests`]: the modules and their zips.
//! - [`server`]: the Stoke child process and the bare server.
//! - [`load`]: connections, signing, the load loop, percentiles.
//! - [`report`]: the results, the markdown tables.

pub mod asynq;
pub mod guests;
pub mod load;
pub mod report;
pub mod runtimes;
pub mod server;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use bytes::Bytes;
use http::StatusCode;
use reqwest::Url;
use serde_json::json;

use super::client::LambdaClient;
use super::deploy::{self, DEFAULT_ROLE};
use super::logs::parse_span;
use load::{Conn, InvokeCall, LoadPlan, Signer};
use report::{ColdSample, Results, UpdateSample, WarmRow, round1};
use server::{BareServer, Canned, StokeServer};

/// The region the bench server runs in and requests are signed for.
const REGION: &str = "us-east-1";
/// The event of every call: a small JSON object, echoed back.
const PAYLOAD: &[u8] = br#"{"hello":"world"}"#;
/// The function of the warm runs.
const WARM_FUNCTION: &str = "bench-echo";
/// The function of the update runs.
const UPDATE_FUNCTION: &str = "bench-update";
/// How long an update may take to reach the first call.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause between two calls while waiting for the new code.
const UPDATE_POLL: Duration = Duration::from_millis(1);

/// Flags of `stoke bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The measured time of each warm run (one per client count and server), e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = parse_span)]
    pub duration: Duration,
    /// Calls before each measured window (warm sandboxes and connections), not counted.
    #[arg(long, default_value = "1s", value_parser = parse_span)]
    pub warmup: Duration,
    /// Concurrent clients of the warm runs, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = [1u32, 8, 64],
        value_parser = clap::value_parser!(u32).range(1..=4096)
    )]
    pub clients: Vec<u32>,
    /// New functions whose first call is measured.
    #[arg(long, default_value_t = 10)]
    pub cold_starts: usize,
    /// New Python and Node functions whose first call is measured (0: skip the process
    /// runtimes, e.g. on a server without process sandboxes).
    #[arg(long, default_value_t = 10)]
    pub runtime_cold_starts: usize,
    /// Warm calls of the Python and Node functions (one client, one after the other).
    #[arg(long, default_value_t = 500)]
    pub runtime_warm_calls: usize,
    /// Code updates whose time to the first new answer is measured.
    #[arg(long, default_value_t = 5)]
    pub updates: usize,
    /// The stoke binary that serves [default: this one]
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// Warm runs send DryRun calls (HTTP, SigV4 and the function lookup; nothing runs), to
    /// split the overhead between the API and the execution.
    #[arg(long)]
    pub dry_run: bool,
    /// Also print the results as JSON, after the tables.
    #[arg(long)]
    pub json: bool,
    /// Concurrent clients of the async enqueue runs, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = [1u32, 64],
        value_parser = clap::value_parser!(u32).range(1..=4096)
    )]
    pub async_clients: Vec<u32>,
    /// Async events, one at a time, whose time from 202 to the start of their run is measured.
    #[arg(long, default_value_t = 200)]
    pub async_samples: usize,
    /// Only the async measures (no warm, cold or update runs).
    #[arg(long)]
    pub async_only: bool,
}

/// Runs `stoke bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let bin = match &args.server_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("finding this executable")?,
    };
    eprintln!("starting {} serve", bin.display());
    let server = StokeServer::start(&bin, REGION).await?;
    let outcome = measure(&args, &server).await;
    server.stop().await;
    let results = outcome?;
    let mut text = report::markdown(&results);
    if args.json {
        text.push_str(&serde_json::to_string_pretty(&results)?);
        text.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the results")
        }
        _ => Ok(()),
    }
}

/// Everything but starting and stopping the server.
async fn measure(args: &BenchArgs, server: &StokeServer) -> anyhow::Result<Results> {
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
    create(&api, WARM_FUNCTION, &echo).await?;
    let call = InvokeCall {
        function: WARM_FUNCTION.to_owned(),
        payload: Bytes::from_static(PAYLOAD),
        log_tail: false,
        dry_run: false,
        event: false,
    };
    // A dry run answers 204 and no body; a call, the event echoed.
    let warm_call = InvokeCall {
        dry_run: args.dry_run,
        ..call.clone()
    };
    let (expect_status, expect) = if args.dry_run {
        (StatusCode::NO_CONTENT, Bytes::new())
    } else {
        (StatusCode::OK, Bytes::from_static(PAYLOAD))
    };
    let mut conn = Conn::open(server.addr).await?;
    let answer = conn.send(signer.invoke(server.addr, &warm_call)?).await?;
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

    for &clients in &args.clients {
        let clients = usize::try_from(clients)?;
        let plan = LoadPlan {
            addr: server.addr,
            clients,
            warmup: args.warmup,
            window: args.duration,
            call: warm_call.clone(),
            expect_status,
            expect: expect.clone(),
        };
        eprintln!("warm invoke, {clients} clients: stoke");
        let stoke = load::run(&plan, &signer).await?;
        eprintln!("warm invoke, {clients} clients: bare hyper server");
        let bare_result = load::run(
            &LoadPlan {
                addr: bare.addr,
                ..plan
            },
            &signer,
        )
        .await?;
        for (who, r) in [("stoke", &stoke), ("bare", &bare_result)] {
            if let Some(e) = &r.first_error {
                eprintln!("  {who}: {} errors, the first: {e}", r.errors);
            }
            if r.throttled > 0 {
                eprintln!("  {who}: {} calls throttled (429)", r.throttled);
            }
        }
        results
            .warm
            .push(WarmRow::new(stoke.summary(), bare_result.summary()));
    }
    drop(bare);

    eprintln!("cold starts: {} new functions", args.cold_starts);
    for i in 0..args.cold_starts {
        let name = format!("bench-cold-{i}");
        create(&api, &name, &echo).await?;
        results
            .cold
            .push(cold_start(&mut conn, &signer, server, &name).await?);
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
    create(&api, UPDATE_FUNCTION, &echo).await?;
    let update_call = InvokeCall {
        function: UPDATE_FUNCTION.to_owned(),
        ..call
    };
    conn.send(signer.invoke(server.addr, &update_call)?).await?;
    // The same sequence of calls with no update running: what the calls during updates are
    // compared with.
    for _ in 0..200 {
        let answer = conn.send(signer.invoke(server.addr, &update_call)?).await?;
        ensure!(
            answer.status == StatusCode::OK,
            "a baseline call answered HTTP {}",
            answer.status
        );
        results
            .calls_without_update_us
            .push(round1(answer.latency.as_secs_f64() * 1e6));
        tokio::time::sleep(UPDATE_POLL).await;
    }
    for round in 0..args.updates {
        results.updates.push(
            update(&api, &mut conn, &signer, server, round, &update_call)
                .await
                .with_context(|| format!("update round {round}"))?,
        );
    }

    asynq::measure(args, server, &api, &signer, &echo, &mut results).await?;
    results.logs_dropped = logs_dropped(server).await;
    Ok(results)
}

/// Creates a wasm function from `zip` and waits until it is Active.
pub(crate) async fn create(api: &LambdaClient, name: &str, zip: &[u8]) -> anyhow::Result<()> {
    let request = json!({
        "FunctionName": name,
        "Runtime": "wasm",
        "Role": DEFAULT_ROLE,
        "Handler": guests::HANDLER,
        "MemorySize": 128,
        "Timeout": 3,
        "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
    });
    api.create_function(&request, None)
        .await
        .with_context(|| format!("creating {name}"))?;
    deploy::wait_ready(api, name).await?;
    Ok(())
}

/// The first call of a new function (with its log tail, for the REPORT line), then a second.
async fn cold_start(
    conn: &mut Conn,
    signer: &Signer,
    server: &StokeServer,
    name: &str,
) -> anyhow::Result<ColdSample> {
    let call = InvokeCall {
        function: name.to_owned(),
        payload: Bytes::from_static(PAYLOAD),
        log_tail: true,
        dry_run: false,
        event: false,
    };
    let first = conn.send(signer.invoke(server.addr, &call)?).await?;
    ensure!(
        first.status == StatusCode::OK && first.body == PAYLOAD,
        "the first call of {name} answered HTTP {}",
        first.status
    );
    let tail = first
        .headers
        .get("x-amz-log-result")
        .and_then(|v| v.to_str().ok())
        .context("no X-Amz-Log-Result on a Tail call")?;
    let log = base64::engine::general_purpose::STANDARD.decode(tail)?;
    let report = report::parse_report(&String::from_utf8_lossy(&log))
        .context("no REPORT line in the log tail")?;
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
        first_call_us: round1(first.latency.as_secs_f64() * 1e6),
        init_ms: report.init_ms,
        duration_ms: report.duration_ms,
        second_call_us: round1(second.latency.as_secs_f64() * 1e6),
    })
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
                during_us.push(round1(answer.latency.as_secs_f64() * 1e6));
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

/// `stoke_logs_dropped` from `/metrics`: log lines the recorder could not keep up with.
async fn logs_dropped(server: &StokeServer) -> Option<f64> {
    let text = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    report::metric_sum(&text, "stoke_logs_dropped")
}
