//! What one run measured, as plain data: serialised as is for `--json`, and read by
//! [`crate::markdown`] for the tables.

use serde::Serialize;

use crate::config::{Config, PAYLOAD};
use crate::load::LoadSummary;
use crate::stats::round1;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub machine: Machine,
    /// The measured window of each warm run, seconds.
    pub duration_s: f64,
    /// The warm-up before each window, seconds.
    pub warmup_s: f64,
    /// The event of every call.
    pub payload: String,
    /// `RequestResponse`, or `DryRun` with `--dry-run` (the warm runs only).
    pub warm_invocation_type: String,
    pub warm: Vec<WarmRow>,
    pub cold: Vec<ColdSample>,
    pub updates: Vec<UpdateSample>,
    /// Client-seen latency of calls of the update function with no update running (µs).
    pub calls_without_update_us: Vec<f64>,
    /// The process runtimes (Python, Node) against their floors.
    pub runtimes: Vec<RuntimeRow>,
    /// Log lines the server dropped under load (`stoke_logs_dropped`), if it said.
    pub logs_dropped: Option<f64>,
    /// Durable async enqueues (Invoke with `Event`), one row per client count.
    pub async_enqueue: Vec<LoadSummary>,
    /// From the 202 to the start of the event's run, for an idle function.
    pub async_start: Option<AsyncStart>,
    /// `wasmtime --version` of the `wasmtime serve` peer, when it ran.
    pub wasmtime_version: Option<String>,
    /// Why the `wasmtime serve` peer did not run, when it did not.
    pub wasmtime_skipped: Option<String>,
}

/// The time from an async event's 202 (as the client got it) to its run's START line (the
/// server's clock, millisecond resolution), for events sent one at a time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AsyncStart {
    pub samples: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

impl Results {
    /// Empty results for a run with `args`.
    pub fn new(args: &Config) -> Self {
        Self {
            machine: Machine::here(),
            duration_s: args.duration.as_secs_f64(),
            warmup_s: args.warmup.as_secs_f64(),
            payload: String::from_utf8_lossy(PAYLOAD).into_owned(),
            warm_invocation_type: if args.dry_run {
                "DryRun"
            } else {
                "RequestResponse"
            }
            .to_owned(),
            warm: Vec::new(),
            cold: Vec::new(),
            updates: Vec::new(),
            calls_without_update_us: Vec::new(),
            runtimes: Vec::new(),
            logs_dropped: None,
            async_enqueue: Vec::new(),
            async_start: None,
            wasmtime_version: None,
            wasmtime_skipped: None,
        }
    }
}

/// Where the bench ran.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub kernel: Option<String>,
}

impl Machine {
    fn here() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            });
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|k| k.trim().to_owned());
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            kernel,
        }
    }
}

/// One client count: Stoke against the bare server (and `wasmtime serve`, when it ran).
#[derive(Debug, Clone, Serialize)]
pub struct WarmRow {
    pub clients: usize,
    pub stoke: LoadSummary,
    pub bare: LoadSummary,
    /// Stoke's p50 minus the bare server's, µs (the target: at most 100).
    pub p50_overhead_us: f64,
    /// Stoke's p50 over the bare server's.
    pub p50_ratio: f64,
    /// Stoke's throughput over the bare server's (the target: at least 0.5).
    pub throughput_ratio: f64,
    /// `wasmtime serve` with the hello component, the same clients and calls.
    pub wasmtime: Option<PeerRow>,
}

/// A peer server of one client count, against the bare floor and against Stoke.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRow {
    pub load: LoadSummary,
    /// The peer's p50 minus the bare server's, µs.
    pub p50_overhead_us: f64,
    /// The peer's throughput over the bare server's.
    pub throughput_ratio: f64,
    /// Stoke's p50 minus the peer's, µs.
    pub stoke_p50_minus_peer_us: f64,
    /// Stoke's throughput over the peer's.
    pub stoke_throughput_over_peer: f64,
}

impl WarmRow {
    pub fn new(stoke: LoadSummary, bare: LoadSummary) -> Self {
        Self {
            clients: stoke.clients,
            p50_overhead_us: round1(stoke.p50_us - bare.p50_us),
            p50_ratio: ratio(stoke.p50_us, bare.p50_us),
            throughput_ratio: ratio(stoke.requests_per_sec, bare.requests_per_sec),
            stoke,
            bare,
            wasmtime: None,
        }
    }

    /// The row with `wasmtime serve`'s figures of the same client count.
    pub fn with_wasmtime(mut self, load: LoadSummary) -> Self {
        self.wasmtime = Some(PeerRow {
            p50_overhead_us: round1(load.p50_us - self.bare.p50_us),
            throughput_ratio: ratio(load.requests_per_sec, self.bare.requests_per_sec),
            stoke_p50_minus_peer_us: round1(self.stoke.p50_us - load.p50_us),
            stoke_throughput_over_peer: ratio(self.stoke.requests_per_sec, load.requests_per_sec),
            load,
        });
        self
    }
}

/// The first call of one new function.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ColdSample {
    /// Time to the whole answer, seen by the client.
    pub first_call_us: f64,
    /// The REPORT line's `Init Duration` (loading the compiled module, linking it).
    pub init_ms: Option<f64>,
    /// The REPORT line's `Duration` (instantiating and running).
    pub duration_ms: f64,
    /// The call right after, warm, seen by the client.
    pub second_call_us: f64,
}

/// One code update.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateSample {
    /// The UpdateFunctionCode request itself.
    pub update_call_ms: f64,
    /// From sending UpdateFunctionCode to the first answer of the new code.
    pub to_new_code_ms: f64,
    /// Calls answered by the old code meanwhile (none may fail).
    pub old_answers: u64,
    /// Client-seen latency of each of those calls (µs).
    pub during_us: Vec<f64>,
}

/// `a / b` to two decimals.
fn ratio(a: f64, b: f64) -> f64 {
    round1(a / b * 100.0) / 100.0
}

/// One runtime's numbers (medians, microseconds unless named otherwise).
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeRow {
    pub runtime: String,
    /// The floor: the interpreter starting and exiting (`python3 -S -c pass`, `node -e 0`).
    pub interpreter_start_us: f64,
    pub cold_samples: usize,
    /// The first call of a new function, seen by the client.
    pub cold_first_call_us: f64,
    /// The REPORT line's Init Duration of those calls, ms.
    pub cold_init_ms: f64,
    /// First call minus the interpreter's start-up.
    pub cold_overhead_us: f64,
    pub warm_calls: usize,
    pub warm_p50_us: f64,
    pub warm_p99_us: f64,
    /// The bare hyper server's p50 (1 client) of the same run.
    pub bare_p50_us: f64,
    /// Warm p50 minus the bare round trip.
    pub warm_overhead_us: f64,
    /// The handler's own time: the REPORT `Duration` of a warm call, ms.
    pub warm_duration_ms: f64,
}
