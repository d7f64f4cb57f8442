//! `stoke serve`: check the configuration, open the store (the embedded one, or the one
//! `--store` names: see [`crate::store`]), bind, serve the Lambda API until SIGINT or SIGTERM,
//! then finish what is under way and close the store.
//!
//! The data dir holds everything: `stoke.db` (SQLite, WAL), `blobs/` (code zips by SHA-256;
//! with a PostgreSQL store, the state and blobs are in the database, and the data dir keeps
//! `blob-cache/` instead), `node-id` (this node's id unless `--node-id` gives one),
//! `code/` (unpacked code), `staging/` (unpacks in progress), `compiled/` (wasm artifacts),
//! `process/` (the process sandboxes' runtime files and root mount point), `credentials` (the
//! default account's access key, in the AWS shared-credentials format under the profile
//! `stoke`) and `master.key` (the key that seals the access keys' secrets in the store, unless
//! `STOKE_MASTER_KEY` gives it; see [`crate::keys`]).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use std::time::Duration;
use stoke_api::{AppState, BodyConfig, Budget, ListenConfig, Presigner};

use stoke_engine::credentials::FunctionCredentials;
use stoke_engine::pool::FixedKeepAlive;
use stoke_engine::record::Retention;
use stoke_engine::{AsyncConfig, Backends, Engine, EngineConfig, InvokerConfig};
use stoke_sandbox::process::{Network, ProcessBackend, ProcessConfig};
use stoke_sandbox::wasm::{WasmBackend, WasmConfig};
use stoke_store::Store;

use crate::keys::PROFILE;
use crate::units::{parse_duration, parse_size};

/// How long a concurrency slot of a PostgreSQL store outlives its node's last renewal: the
/// node timeout (issue 14's default, 10 s), so a dead node's slots are free within it.
const CLUSTER_SLOT_TTL: Duration = Duration::from_secs(10);

/// Flags of `stoke serve`; each has an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "STOKE_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Folder that holds the embedded store, the code blobs and the credentials file.
    #[arg(long, env = "STOKE_DATA_DIR", default_value = "./.stoke")]
    pub data_dir: PathBuf,
    /// Where the state is kept: `sqlite://PATH`, or `postgres://user:pass@host:port/db` for
    /// a database several nodes can share (code blobs in it too, cached in the data dir).
    /// Default: the embedded SQLite file in the data dir.
    #[arg(long, env = "STOKE_STORE")]
    pub store: Option<String>,
    /// Region that ARNs carry.
    #[arg(long, env = "STOKE_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Calls that may run at once in the whole server (Lambda's account concurrency); more
    /// are throttled with 429.
    #[arg(long, env = "STOKE_CONCURRENCY", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// Calls of one account's functions that may run at once, for accounts the admin gave no
    /// limit of their own (`stoke accounts set-limits`). Default: `--concurrency`.
    #[arg(long, env = "STOKE_ACCOUNT_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub account_concurrency: Option<u32>,
    /// The least of an account's concurrency that reservations (PutFunctionConcurrency) must
    /// leave unreserved: Lambda's 100 (all of a smaller limit).
    #[arg(long, env = "STOKE_MIN_UNRESERVED_CONCURRENCY", default_value_t = stoke_core::function::limits::MIN_UNRESERVED_CONCURRENCY, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub min_unreserved_concurrency: u32,
    /// Calls of one function that may run at once.
    #[arg(long, env = "STOKE_FUNCTION_CONCURRENCY", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub function_concurrency: u32,
    /// Seconds an idle sandbox stays warm.
    #[arg(long, env = "STOKE_KEEP_ALIVE_SECS", default_value_t = 600)]
    pub keep_alive_secs: u64,
    /// Log lines kept per function.
    #[arg(long, env = "STOKE_LOG_RETENTION_LINES", default_value_t = 100_000)]
    pub log_retention_lines: u32,
    /// Megabytes of log events kept per function (events counted as CloudWatch counts them);
    /// the oldest lines go first.
    #[arg(long, env = "STOKE_LOG_MB_PER_FUNCTION", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub log_mb_per_function: u64,
    /// Megabytes of log events kept per account, all its functions together.
    #[arg(long, env = "STOKE_LOG_MB_PER_ACCOUNT", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub log_mb_per_account: u64,
    /// Sandbox starts (inits) that may run at once; more wait their turn in arrival order.
    /// Default: the number of cores.
    #[arg(long, env = "STOKE_INIT_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub init_concurrency: Option<u32>,
    /// Process sandboxes for `provided*`, `python3.x` and `nodejs*` (Linux, as root): `on`
    /// fails at start-up if the kernel refuses what they need; `auto` (the default) says why
    /// on stderr and serves only wasm; `off` serves only wasm.
    #[arg(long, env = "STOKE_PROCESS_RUNTIMES", value_enum, default_value_t = ProcessRuntimes::Auto)]
    pub process_runtimes: ProcessRuntimes,
    /// The Python that runs `python3.x` functions (a command on PATH or a path), or
    /// `python3.N=COMMAND` for one runtime; repeatable. A runtime is served by its own, else
    /// by one of its version, else by the nearest version (see `--strict-runtimes`); without
    /// a plain COMMAND, `python3` is one of them.
    #[arg(long, env = "STOKE_PYTHON", value_delimiter = ',')]
    pub python: Vec<String>,
    /// The Node.js that runs `nodejs*` functions, likewise (`nodejsN.x=COMMAND`); `node` when
    /// no plain COMMAND is given.
    #[arg(long, env = "STOKE_NODE", value_delimiter = ',')]
    pub node: Vec<String>,
    /// A `python3.x` or `nodejs*` function that only an interpreter of another version could
    /// serve goes `Failed` (InvalidRuntime) instead of running on the nearest version.
    #[arg(long, env = "STOKE_STRICT_RUNTIMES")]
    pub strict_runtimes: bool,
    /// The runtime's own libraries, mounted under `/var/runtime` as Lambda's: `python/` (boto3
    /// and botocore, `pip install --target`), `node/node_modules/`. Default: the data dir's
    /// `runtime-libs/` (scripts/serve.sh installs them).
    #[arg(long, env = "STOKE_RUNTIME_LIBS")]
    pub runtime_libs: Option<PathBuf>,
    /// `/var/lang`, `/var/runtime` and `/var/task` of process sandboxes as read-only ext4
    /// images of their own (made at deploy time under the data dir's `process/images/`), so
    /// that no host path shows in a sandbox's `/proc/self/mountinfo`; `false`: read-only binds
    /// of the host's paths (what a machine without mkfs.ext4 or loop devices gets anyway, with
    /// a warning at start-up).
    #[arg(long, env = "STOKE_SANDBOX_IMAGES", default_value_t = true, action = clap::ArgAction::Set)]
    pub sandbox_images: bool,
    /// Where the images of `/var/lang` and `/var/runtime` are kept (default: under the data
    /// dir). Several servers of one machine may share the folder: images are named by what
    /// they hold and written by rename; it keeps the 16 most recently used.
    #[arg(long, env = "STOKE_RUNTIME_IMAGES")]
    pub runtime_images: Option<PathBuf>,
    /// The network of process sandboxes: `isolated` (only loopback; the default) or `host`
    /// (outbound access; see docs/decisions.md for what that gives up).
    #[arg(long, env = "STOKE_SANDBOX_NETWORK", value_enum, default_value_t = SandboxNetwork::Isolated)]
    pub sandbox_network: SandboxNetwork,
    /// Async events that may run at once (they share the concurrency limits with sync calls).
    #[arg(long, env = "STOKE_ASYNC_WORKERS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub async_workers: u32,
    /// Delays before the retries of an async event after a function error, comma-separated
    /// (Lambda's: 1 min, then 2 min). Durations such as `60s`, `500ms`, `2m`.
    #[arg(long, env = "STOKE_ASYNC_RETRY_DELAYS", default_value = "60s,120s", value_parser = parse_delays)]
    pub async_retry_delays: Delays,
    /// First backoff after a throttle or a platform error (doubling up to the maximum).
    #[arg(long, env = "STOKE_ASYNC_BACKOFF_MIN", default_value = "1s", value_parser = parse_duration)]
    pub async_backoff_min: Duration,
    /// Longest backoff after a throttle or a platform error.
    #[arg(long, env = "STOKE_ASYNC_BACKOFF_MAX", default_value = "5m", value_parser = parse_duration)]
    pub async_backoff_max: Duration,
    /// How long one second of MaximumEventAgeInSeconds lasts (for tests: `10ms` makes the
    /// minimum age of 60 s last 0.6 s).
    #[arg(long, env = "STOKE_ASYNC_AGE_UNIT", default_value = "1s", value_parser = parse_duration, hide = true)]
    pub async_age_unit: Duration,
    /// How long the credentials each function's sandbox gets (AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) stay valid; a sandbox is retired before
    /// its credentials expire. From 5s (for tests) to 12h (STS's longest session).
    #[arg(long, env = "STOKE_FUNCTION_CREDENTIALS_TTL", default_value = "1h", value_parser = parse_credentials_ttl)]
    pub function_credentials_ttl: Duration,
    /// How long a request head (request line and headers) may take to arrive; a slower
    /// connection is closed.
    #[arg(long, env = "STOKE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight may sit with nothing moving
    /// (idle keep-alives included) before it is closed.
    #[arg(long, env = "STOKE_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// A request body with no byte for this long is answered 408.
    #[arg(long, env = "STOKE_BODY_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// Request-body bytes that may be buffered at once across all requests (`512MiB`, `64MB`,
    /// bytes); a request that cannot get its share within 2 s is answered 429.
    #[arg(long, env = "STOKE_BODY_BUDGET", default_value = "512MiB", value_parser = parse_size)]
    pub body_budget: usize,
    /// Connections open at once from one client address.
    #[arg(long, env = "STOKE_MAX_CONNECTIONS_PER_IP", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_ip: u32,
    /// Connections open at once in all; by default the descriptor limit (RLIMIT_NOFILE, raised
    /// to its hard limit at start) less `--fd-reserve`. Never more than that.
    #[arg(long, env = "STOKE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// Descriptors kept out of the connections' reach, for sandboxes, the store and blobs.
    #[arg(long, env = "STOKE_FD_RESERVE", default_value_t = 512)]
    pub fd_reserve: u32,
    #[command(flatten)]
    pub cluster: crate::node::NodeArgs,
    #[command(flatten)]
    pub forward: crate::forward::ForwardArgs,
}

/// `--python`/`--node` values with `default` first unless a plain command is among them.
fn with_default(given: &[String], default: &str) -> Vec<String> {
    use stoke_sandbox::process::interpreters::split_spec;
    let mut all = Vec::with_capacity(given.len() + 1);
    if !given.iter().any(|g| split_spec(g).0.is_none()) {
        all.push(default.to_owned());
    }
    all.extend(given.iter().cloned());
    all
}

/// `--process-runtimes`: whether process sandboxes serve `provided*`, `python3.x`, `nodejs*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProcessRuntimes {
    /// Process sandboxes if the kernel allows them; otherwise say why and serve only wasm.
    Auto,
    /// Process sandboxes, or fail at start-up.
    On,
    /// Only wasm.
    Off,
}

/// `--sandbox-network`: the network of process sandboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxNetwork {
    /// Only loopback.
    Isolated,
    /// The host's network (outbound access).
    Host,
}

impl From<SandboxNetwork> for Network {
    fn from(n: SandboxNetwork) -> Self {
        match n {
            SandboxNetwork::Isolated => Network::Isolated,
            SandboxNetwork::Host => Network::Host,
        }
    }
}

/// Raises the soft descriptor limit to the hard one and answers how many connections the
/// listener may hold: the limit less the reserve (at least 16), or `asked` if lower. (Process
/// sandboxes set their own limit; they do not inherit this one.)
fn connection_cap(asked: Option<u32>, reserve: u32) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum)
        && soft < hard
    {
        let raised = rustix::process::Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit.current = Some(hard),
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "could not raise the descriptor limit")
            }
        }
    }
    let soft = limit.current.unwrap_or(u64::from(u32::MAX));
    let room = usize::try_from(soft.saturating_sub(u64::from(reserve)))
        .unwrap_or(usize::MAX)
        .max(16);
    let cap = asked.map_or(room, |a| (a as usize).min(room));
    tracing::info!(
        descriptors = soft,
        reserve,
        max_connections = cap,
        "connection cap"
    );
    cap
}

/// A list of durations.
#[derive(Debug, Clone)]
pub struct Delays(pub Vec<Duration>);

fn parse_credentials_ttl(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(5) || d > Duration::from_secs(12 * 3600) {
        return Err(format!("{s:?} is not between 5s and 12h"));
    }
    Ok(d)
}

fn parse_delays(s: &str) -> Result<Delays, String> {
    let v = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if v.is_empty() {
        return Err("give at least one delay".into());
    }
    Ok(Delays(v))
}

fn check_region(region: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        && parts
            .last()
            .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()));
    anyhow::ensure!(
        ok,
        "--region {region:?} is not a region name such as us-east-1"
    );
    Ok(())
}

/// Runs the server until a shutdown signal.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Everything is checked and opened before the port is bound.
    check_region(&args.region)?;
    // First, so that the store, the sandboxes and the listener all get the raised limit.
    let max_connections = connection_cap(args.max_connections, args.fd_reserve);
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data dir {}", args.data_dir.display()))?;
    let data_dir = args
        .data_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", args.data_dir.display()))?;

    let master = crate::keys::load(std::env::var(crate::keys::ENV).ok(), &data_dir)?;
    // Keys derived from the master key, never stored: the one that tags the functions' session
    // tokens (every node sharing the master key verifies them) and the one of presigned code
    // URLs.
    let session_key = master.derive("function-credentials");
    let url_key = master.derive("code-urls");
    let cluster_key = master.derive("cluster");
    let location = crate::store::Location::parse(args.store.as_deref(), &data_dir)?;
    let node_id = match &args.cluster.node_id {
        Some(id) => id.clone(),
        None => crate::store::kept_node_id(&data_dir)?,
    };
    let (opened, blobs) =
        crate::store::Opened::open(&location, &data_dir, master, &node_id).await?;
    let store: Arc<dyn Store> = opened.store();

    let mut wasm_config = WasmConfig::new(data_dir.join("compiled"));
    // Every running call holds an instance, and a call that invokes another holds two: room
    // for twice the concurrency.
    wasm_config.pool_slots = args.concurrency.saturating_mul(2).max(16);
    let wasm: Arc<dyn stoke_sandbox::Backend> =
        Arc::new(WasmBackend::new(wasm_config).context("starting the wasm backend")?);
    let process = if args.process_runtimes == ProcessRuntimes::Off {
        None
    } else {
        let mut config = ProcessConfig::new(data_dir.join("process"));
        config.python = with_default(&args.python, "python3");
        config.node = with_default(&args.node, "node");
        config.strict_runtimes = args.strict_runtimes;
        config.runtime_libs = Some(
            args.runtime_libs
                .clone()
                .unwrap_or_else(|| data_dir.join("runtime-libs")),
        );
        config.network = args.sandbox_network.into();
        config.images = args.sandbox_images;
        config.runtime_images = args.runtime_images.clone();
        match ProcessBackend::new(config) {
            Ok(p) => {
                // Which interpreter serves each runtime, never silently another version.
                for line in p.interpreters().mapping() {
                    println!("runtime {line}");
                }
                Some(Arc::new(p))
            }
            Err(e) if args.process_runtimes == ProcessRuntimes::Auto => {
                eprintln!(
                    "process sandboxes are off: {e}. Python, Node and provided functions will \
                     answer InvalidRuntimeException; only wasm runs (pass --process-runtimes on \
                     to make this an error)"
                );
                None
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(
                    "starting the process sandboxes (pass --process-runtimes off to serve only \
                     wasm)",
                ));
            }
        }
    };
    let process_backend = process
        .as_ref()
        .map(|p| Arc::clone(p) as Arc<dyn stoke_sandbox::Backend>);
    let mut config = EngineConfig::new(
        Arc::clone(&store),
        opened.queue(),
        blobs,
        Backends {
            wasm,
            process: process_backend,
        },
        &data_dir,
    );
    config.region = args.region.clone();
    // Several nodes may share a PostgreSQL store: its limits hold across them (slots in the
    // store, free again within the node timeout of a node's death).
    if matches!(opened, crate::store::Opened::Postgres(_)) {
        config.cluster_slots = Some(CLUSTER_SLOT_TTL);
    }
    config.credentials = Arc::new(FunctionCredentials::new(
        session_key,
        args.function_credentials_ttl,
    ));
    config.invoker = InvokerConfig {
        account_concurrency: args.concurrency,
        default_account_concurrency: args.account_concurrency,
        function_concurrency: args.function_concurrency,
        init_concurrency: args
            .init_concurrency
            .unwrap_or_else(stoke_engine::invoke::default_init_concurrency),
        ..InvokerConfig::default()
    };
    config.keep_alive = Arc::new(FixedKeepAlive(Duration::from_secs(args.keep_alive_secs)));
    config.retention = Retention {
        lines_per_function: args.log_retention_lines,
        bytes_per_function: args.log_mb_per_function * 1024 * 1024,
        bytes_per_account: args.log_mb_per_account * 1024 * 1024,
        ..Retention::default()
    };
    config.async_queue = AsyncConfig {
        retry_delays: args.async_retry_delays.0.clone(),
        backoff_min: args.async_backoff_min,
        backoff_max: args.async_backoff_max,
        age_unit: args.async_age_unit,
        workers: args.async_workers,
        lease: args.cluster.async_lease,
        ..AsyncConfig::default()
    };
    config.membership = args.cluster.membership(&node_id, args.listen);
    config.nodes = args.cluster.config();
    let engine = Engine::start(config).await.context("starting the engine")?;
    engine
        .accounts
        .limits()
        .set_min_unreserved(args.min_unreserved_concurrency);
    let (key, created) = engine.accounts.ensure_admin().await?;
    let credentials = data_dir.join("credentials");
    crate::keys::write_credentials(&credentials, &key)?;
    if created {
        tracing::info!(account = %key.account, "created the default account");
    }
    if engine.resumed > 0 {
        tracing::info!(
            resumed = engine.resumed,
            "resuming functions left pending by the last run"
        );
    }
    let state = AppState::new(
        &engine,
        Presigner::new(url_key.to_vec()),
        Budget::new(BodyConfig {
            budget_bytes: args.body_budget,
            stall_timeout: args.body_read_timeout,
            ..BodyConfig::default()
        }),
    );
    let state = crate::forward::wire(state, &args.forward, cluster_key, &engine, args.concurrency);
    let listen = ListenConfig {
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        max_connections,
        max_connections_per_ip: args.max_connections_per_ip as usize,
    };

    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    let shown = if local.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], local.port()))
    } else {
        local
    };
    tracing::info!(
        listen = %local,
        account = %key.account,
        region = %args.region,
        data_dir = %data_dir.display(),
        node_id = %node_id,
        advertise = %engine.membership.me().address,
        "stoke is serving the Lambda API"
    );
    println!(
        "AWS_SHARED_CREDENTIALS_FILE={} AWS_PROFILE={PROFILE}",
        credentials.display()
    );
    println!(
        "AWS_ENDPOINT_URL=http://{shown} AWS_DEFAULT_REGION={}",
        args.region
    );
    let _ = std::io::stdout().flush();

    stoke_api::serve(listener, state, listen, shutdown).await?;
    tracing::info!("shutting down");
    // The router is gone with the server: the engine finishes what is under way.
    engine.shutdown().await;
    opened.close().await;
    // Every sandbox has gone with the invoker: remove this server's cgroups.
    if let Some(p) = process {
        p.shutdown();
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM. The handlers are installed at the call, not at the first
/// poll: called before the port is bound, a signal sent as soon as the server answers is never
/// met by the default action (death by the signal, no clean shutdown).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_are_checked() {
        assert!(check_region("us-east-1").is_ok());
        assert!(check_region("us-gov-west-1").is_ok());
        assert!(check_region("mars").is_err());
        assert!(check_region("us-east-x").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3x").is_err());
        assert_eq!(parse_delays("1s,2s").map(|d| d.0.len()), Ok(2));
    }

    /// `stoke serve`'s flags alone, as the binary parses them.
    #[derive(Debug, clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn choices(argv: &[&str]) -> Result<(ProcessRuntimes, SandboxNetwork), String> {
        use clap::Parser as _;
        Serve::try_parse_from(std::iter::once("serve").chain(argv.iter().copied()))
            .map(|s| (s.args.process_runtimes, s.args.sandbox_network))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn choice_flags_take_the_same_words_and_defaults() {
        assert_eq!(
            choices(&[]),
            Ok((ProcessRuntimes::Auto, SandboxNetwork::Isolated))
        );
        assert_eq!(
            choices(&["--process-runtimes", "off", "--sandbox-network", "host"]),
            Ok((ProcessRuntimes::Off, SandboxNetwork::Host))
        );
        assert_eq!(
            choices(&["--process-runtimes", "on"]).map(|c| c.0),
            Ok(ProcessRuntimes::On)
        );
        let refused = choices(&["--process-runtimes", "maybe"]).unwrap_err();
        assert!(refused.contains("auto, on, off"), "{refused}");
        assert!(choices(&["--sandbox-network", "bridge"]).is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
    }
}
