//! What one run of the bench is asked to do ([`Config`], filled from `stoke bench`'s flags) and
//! the constants every part of a run shares (the region, the event of every call).

use std::path::PathBuf;
use std::time::Duration;

/// The region the bench server runs in and requests are signed for.
pub const REGION: &str = "us-east-1";
/// The event of every call: a small JSON object, echoed back.
pub const PAYLOAD: &[u8] = br#"{"hello":"world"}"#;

/// One run of the bench.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `stoke` binary that serves (run as `BIN serve`).
    pub server_bin: PathBuf,
    /// The measured time of each warm run (one per client count and server).
    pub duration: Duration,
    /// Calls before each measured window (warm sandboxes and connections), not counted.
    pub warmup: Duration,
    /// Concurrent clients of the warm runs.
    pub clients: Vec<u32>,
    /// New functions whose first call is measured.
    pub cold_starts: usize,
    /// New Python and Node functions whose first call is measured (0: skip the process runtimes).
    pub runtime_cold_starts: usize,
    /// Warm calls of the Python and Node functions (one client, one after the other).
    pub runtime_warm_calls: usize,
    /// Code updates whose time to the first new answer is measured.
    pub updates: usize,
    /// Warm runs send DryRun calls (HTTP, SigV4 and the function lookup; nothing runs).
    pub dry_run: bool,
    /// Concurrent clients of the async enqueue runs.
    pub async_clients: Vec<u32>,
    /// Async events, one at a time, whose time from 202 to the start of their run is measured.
    pub async_samples: usize,
    /// Only the async measures (no warm, cold or update runs).
    pub async_only: bool,
    /// The `wasmtime serve` peer of the warm runs.
    pub wasmtime: WasmtimeConfig,
}

/// Whether and how the warm runs measure `wasmtime serve` beside Stoke.
#[derive(Debug, Clone, Default)]
pub struct WasmtimeConfig {
    /// Skip the peer.
    pub off: bool,
    /// Install what is missing (wasmtime-cli 48 with `cargo install`, the hello component with
    /// `cargo build`) instead of only saying how.
    pub install: bool,
    /// The `wasmtime` executable [default: on PATH, else `$CARGO_HOME/bin`].
    pub bin: Option<PathBuf>,
    /// The wasi:http component it serves [default: `hello_http.wasm` in the guest target dir].
    pub component: Option<PathBuf>,
}
