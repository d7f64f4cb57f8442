//! `stoke bench`: its flags, and printing what the `stoke-bench` crate measured (the markdown
//! tables, then the JSON with `--json`). The benchmark itself (the server it starts, the load,
//! the peers, the report) lives in `stoke-bench`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use stoke_bench::{Config, WasmtimeConfig};

use super::logs::parse_span;

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
    /// Only the async measures, on the embedded SQLite store and then on PostgreSQL: the
    /// database $STOKE_BENCH_PG_URL names (empty), else a throw-away cluster (fsync on).
    #[arg(long)]
    pub store_compare: bool,
    /// Leave out the `wasmtime serve` peer of the warm runs.
    #[arg(long)]
    pub no_wasmtime: bool,
    /// Install what the `wasmtime serve` peer needs where it is missing: wasmtime-cli 48 (`cargo
    /// install --locked wasmtime-cli@^48`, a long build) and the hello-http component (`cargo
    /// build` for wasm32-wasip2). Without it, the bench says how and leaves the peer out.
    #[arg(long)]
    pub install_wasmtime: bool,
    /// The `wasmtime` executable of the peer [default: on PATH, else $CARGO_HOME/bin/wasmtime]
    #[arg(long, env = "STOKE_BENCH_WASMTIME", value_name = "PATH")]
    pub wasmtime_bin: Option<PathBuf>,
    /// The wasi:http component the peer serves [default:
    /// $STOKE_GUEST_TARGET_DIR/wasm32-wasip2/release/hello_http.wasm]
    #[arg(long, value_name = "PATH")]
    pub wasmtime_component: Option<PathBuf>,
    /// Only the cluster measures: three nodes on one PostgreSQL (`--cluster-store`), a warm
    /// call served locally vs forwarded, and the warm-hit share after a mixed load.
    #[arg(long)]
    pub cluster: bool,
    /// The PostgreSQL database the cluster's nodes share (`postgres://user@host:port/db`).
    #[arg(long, env = "STOKE_BENCH_PG_URL", value_name = "URL")]
    pub cluster_store: Option<String>,
    /// Warm calls of each kind (local, forwarded) the cluster part measures.
    #[arg(long, default_value_t = 2000)]
    pub cluster_calls: usize,
    /// Functions of the cluster's mixed load.
    #[arg(long, default_value_t = 50)]
    pub cluster_functions: usize,
    /// Calls of the cluster's mixed load.
    #[arg(long, default_value_t = 5000)]
    pub cluster_mixed_calls: usize,
    /// Only the event source measures: per broker, publish → function start at low load and
    /// one mapping's sustained events per second against the broker's own consumer.
    #[arg(long)]
    pub sources: bool,
    /// The brokers the event source part runs (each started on a free port), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["redis".to_owned(), "nats".to_owned()])]
    pub source_brokers: Vec<String>,
    /// Messages published one at a time whose publish → start is measured.
    #[arg(long, default_value_t = 200)]
    pub source_samples: usize,
    /// Messages of the throughput backlog (and of the broker's own consumer).
    #[arg(long, default_value_t = 50_000)]
    pub source_events: usize,
    /// The throughput mapping's batch size (and the broker's own consumer's).
    #[arg(long, default_value_t = 100)]
    pub source_batch_size: usize,
}

impl BenchArgs {
    /// The run these flags ask for.
    fn config(&self) -> anyhow::Result<Config> {
        let server_bin = match &self.server_bin {
            Some(path) => path.clone(),
            None => std::env::current_exe().context("finding this executable")?,
        };
        Ok(Config {
            server_bin,
            duration: self.duration,
            warmup: self.warmup,
            clients: self.clients.clone(),
            cold_starts: self.cold_starts,
            runtime_cold_starts: self.runtime_cold_starts,
            runtime_warm_calls: self.runtime_warm_calls,
            updates: self.updates,
            dry_run: self.dry_run,
            async_clients: self.async_clients.clone(),
            async_samples: self.async_samples,
            async_only: self.async_only,
            wasmtime: WasmtimeConfig {
                off: self.no_wasmtime,
                install: self.install_wasmtime,
                bin: self.wasmtime_bin.clone(),
                component: self.wasmtime_component.clone(),
            },
        })
    }
}

/// Runs `stoke bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let text = if args.cluster {
        cluster(&args).await?
    } else if args.store_compare {
        use stoke_bench::store_compare;
        let url = std::env::var(store_compare::PG_URL_ENV).ok();
        let r =
            store_compare::run(&args.config()?, url.as_deref().filter(|u| !u.is_empty())).await?;
        let mut text = store_compare::markdown(&r);
        if args.json {
            text.push_str(&serde_json::to_string_pretty(&r)?);
            text.push('\n');
        }
        text
    } else if args.sources {
        sources(&args).await?
    } else {
        let results = stoke_bench::run(&args.config()?).await?;
        let mut text = stoke_bench::markdown(&results);
        if args.json {
            text.push_str(&serde_json::to_string_pretty(&results)?);
            text.push('\n');
        }
        text
    };
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

/// `stoke bench --sources`: the event source part's table (and JSON).
async fn sources(args: &BenchArgs) -> anyhow::Result<String> {
    let results = stoke_bench::sources::run(&stoke_bench::sources::SourcesConfig {
        server_bin: args.config()?.server_bin,
        brokers: args.source_brokers.clone(),
        samples: args.source_samples,
        events: args.source_events,
        batch_size: args.source_batch_size,
    })
    .await?;
    let mut text = stoke_bench::sources::markdown(&results);
    if args.json {
        text.push_str(&serde_json::to_string_pretty(&results)?);
        text.push('\n');
    }
    Ok(text)
}

/// `stoke bench --cluster`: the cluster part's table (and JSON).
async fn cluster(args: &BenchArgs) -> anyhow::Result<String> {
    let store = args.cluster_store.clone().context(
        "--cluster needs a PostgreSQL database for the nodes to share: pass --cluster-store \
         postgres://user@host:port/db or set STOKE_BENCH_PG_URL",
    )?;
    let server_bin = args.config()?.server_bin;
    let results = stoke_bench::cluster::run(&stoke_bench::cluster::ClusterConfig {
        server_bin,
        store,
        calls: args.cluster_calls,
        functions: args.cluster_functions,
        mixed_calls: args.cluster_mixed_calls,
        clients: 8,
    })
    .await?;
    let mut text = stoke_bench::cluster::markdown(&results);
    if args.json {
        text.push_str(&serde_json::to_string_pretty(&results)?);
        text.push('\n');
    }
    Ok(text)
}
