//! The WebAssembly backend: WASI preview 1 modules on wasmtime.
//!
//! - **Deploy** ([`Backend::prepare`]): the handler's `.wasm` is compiled once, checked to link
//!   against what Stoke provides (WASI preview 1 and the `stoke` imports), and the artifact is
//!   written to `cache_dir/<code sha256>-<handler hash>-<engine hash>.cwasm`; a restart finds it
//!   there and compiles nothing. When the engine removes the code ([`Backend::forget_code`]:
//!   no function or version uses it any more), its artifacts go with it.
//! - **Cold start** ([`Backend::start`]): the artifact is mapped (`Module::deserialize_file`) and
//!   linked into an `InstancePre`: tens of microseconds.
//! - **A call** ([`Sandbox::invoke`]): a fresh instance from the pooling allocator (so no state
//!   leaks from one call to the next), the event on stdin, the result on stdout, logs on stderr,
//!   the context in environment variables (those that are the same for every call are made
//!   once per sandbox). Every epoch tick (1 ms) the guest yields to the
//!   async runtime, so a busy guest never holds a runtime thread for longer than a tick; past
//!   its deadline it is interrupted. A `ResourceLimiter` caps linear memory at `MemorySize`.
//!
//! # The guest contract
//! Exit code 0 (or returning from `_start`) is success, stdout is the result. A non-zero exit is
//! a function error: if stdout holds a JSON object with `errorMessage`, that object is the error
//! (the SDK writes one); otherwise `Runtime.ExitError`. A trap is an error whose `errorType` is
//! `Runtime.<trap kind>` (`Runtime.UnreachableCodeReached`, …); running out of the memory cap
//! is `Runtime.OutOfMemory`; the deadline is `Sandbox.Timedout`. Environment variables:
//! Lambda's (`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_VERSION`,
//! `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `AWS_REGION`, `AWS_DEFAULT_REGION`,
//! `AWS_LAMBDA_LOG_GROUP_NAME`, `AWS_LAMBDA_LOG_STREAM_NAME`, `AWS_EXECUTION_ENV`,
//! `AWS_LAMBDA_INITIALIZATION_TYPE`, `_HANDLER`, `_X_AMZN_TRACE_ID`, `TZ`) and, where Lambda passes
//! the value in the Runtime API's headers instead, Stoke's: `STOKE_REQUEST_ID`,
//! `STOKE_DEADLINE_MS` (Unix ms), `STOKE_INVOKED_FUNCTION_ARN`, `STOKE_CLIENT_CONTEXT`.
//!
//! # Host imports (module `stoke`, in `host.rs`)
//! - `invoke(name_ptr, name_len, payload_ptr, payload_len) -> i64`: calls another function
//!   synchronously. The answer is `status << 32 | len`, status 0 (success), 1 (the function
//!   failed; the bytes are its error JSON) or 2 (the call was refused; Lambda's error JSON);
//!   the `len` bytes are then fetched with `result`.
//! - `result(ptr, len) -> i32`: copies the last answer into guest memory; the number of bytes
//!   copied, or -1 if there is none.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};

use crate::{
    Backend, Execution, FunctionError, FunctionSpec, HostCalls, InvokeInput, Outcome, PrepareError,
    Sandbox, SandboxError,
};

mod host;

use host::add_stoke_imports;

/// Settings of the wasm backend.
#[derive(Debug, Clone)]
pub struct WasmConfig {
    /// Where compiled artifacts are kept.
    pub cache_dir: PathBuf,
    /// Instances (and linear memories) the pooling allocator holds: the most calls that can
    /// run at once.
    pub pool_slots: u32,
    /// The most a call may log (stderr); further writes fail.
    pub max_log_bytes: usize,
    /// The largest result (Lambda's 6 MB).
    pub max_response_bytes: usize,
    /// How often a running guest yields and its deadline is checked.
    pub epoch_tick: Duration,
}

impl WasmConfig {
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            pool_slots: 256,
            max_log_bytes: 1024 * 1024,
            max_response_bytes: 6 * 1024 * 1024,
            epoch_tick: Duration::from_millis(1),
        }
    }
}

/// The name prefix of an artifact being written (never of a finished one, whose name starts
/// with a hex digest).
const TMP_PREFIX: &str = ".tmp";

/// Removes the artifacts a crash left half-written (`.tmp*`; and `.<pid>.tmp`, as they were
/// named before).
fn sweep_temporary(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if (name.starts_with(TMP_PREFIX) || (name.starts_with('.') && name.ends_with(".tmp")))
            && let Err(e) = std::fs::remove_file(entry.path())
        {
            tracing::warn!(file = %entry.path().display(), error = %e, "removing a leftover artifact");
        }
    }
}

/// The wasm backend: one wasmtime engine and linker for every function.
pub struct WasmBackend {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    config: WasmConfig,
    /// Part of each artifact's name: artifacts of another engine build are never loaded.
    engine_hash: String,
    _ticker: Ticker,
}

impl std::fmt::Debug for WasmBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Advances the engine's epoch every tick, on its own thread, until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn internal(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Internal(e.to_string())
}

impl WasmBackend {
    pub fn new(config: WasmConfig) -> Result<Self, SandboxError> {
        std::fs::create_dir_all(&config.cache_dir)?;
        sweep_temporary(&config.cache_dir);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(config.pool_slots)
            .total_memories(config.pool_slots)
            .total_tables(config.pool_slots)
            .total_stacks(config.pool_slots)
            .max_memory_size(4 << 30);
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(internal)?;

        let mut linker: Linker<HostState> = Linker::new(&engine);
        p1::add_to_linker_async(&mut linker, |s: &mut HostState| &mut s.wasi).map_err(internal)?;
        add_stoke_imports(&mut linker).map_err(internal)?;

        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_hash = format!("{:016x}", h.finish());

        let stop = Arc::new(AtomicBool::new(false));
        let (e, s, tick) = (engine.clone(), Arc::clone(&stop), config.epoch_tick);
        std::thread::Builder::new()
            .name("stoke-wasm-epoch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    e.increment_epoch();
                }
            })?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            config,
            engine_hash,
            _ticker: Ticker { stop },
        })
    }

    /// The handler's module inside the code folder; never a path outside it.
    fn module_path(spec: &FunctionSpec) -> Result<PathBuf, String> {
        let rel = Path::new(&spec.handler);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "The handler '{}' is not a path inside the deployment package.",
                spec.handler
            ));
        }
        Ok(spec.code_dir.join(rel))
    }

    /// Where the compiled artifact of this code and handler lives.
    pub fn artifact_path(&self, spec: &FunctionSpec) -> PathBuf {
        let handler = hex::encode(&Sha256::digest(spec.handler.as_bytes())[..8]);
        self.config.cache_dir.join(format!(
            "{}-{handler}-{}.cwasm",
            spec.code_sha256, self.engine_hash
        ))
    }

    /// Maps an artifact this backend wrote.
    fn load(&self, path: &Path) -> Result<Module, SandboxError> {
        // SAFETY: `deserialize_file` trusts that the file is an artifact made by
        // `Engine::precompile_module` of a compatible engine. The file is one this backend
        // wrote (atomically, by rename) into its own cache folder under the data dir, named by
        // the engine's compatibility hash; nothing else writes there.
        #[allow(unsafe_code)]
        let module = unsafe { Module::deserialize_file(&self.engine, path) };
        module.map_err(|e| SandboxError::Load(e.to_string()))
    }
}

#[async_trait]
impl Backend for WasmBackend {
    fn prepare(&self, spec: &FunctionSpec) -> Result<(), PrepareError> {
        let artifact = self.artifact_path(spec);
        if artifact.exists() {
            return Ok(());
        }
        let path = Self::module_path(spec).map_err(PrepareError::InvalidCode)?;
        let bytes = std::fs::read(&path).map_err(|_| {
            PrepareError::InvalidCode(format!(
                "The handler file '{}' was not found in the deployment package.",
                spec.handler
            ))
        })?;
        let compiled = self.engine.precompile_module(&bytes).map_err(|e| {
            PrepareError::InvalidCode(format!(
                "The module '{}' does not compile: {e:#}",
                spec.handler
            ))
        })?;
        let dir = artifact
            .parent()
            .unwrap_or(&self.config.cache_dir)
            .to_path_buf();
        // A temporary file of its own (two deploys may compile at once), swept at start if a
        // crash leaves it.
        let write = || -> std::io::Result<()> {
            let mut f = tempfile::Builder::new()
                .prefix(TMP_PREFIX)
                .tempfile_in(&dir)?;
            std::io::Write::write_all(&mut f, &compiled)?;
            f.as_file().sync_all()?;
            f.persist(&artifact).map(|_| ()).map_err(|e| e.error)
        };
        write().map_err(|e| {
            PrepareError::Internal(format!("The compiled module could not be stored: {e}"))
        })?;
        // Link it now, so a module that imports what Stoke does not provide fails at deploy.
        let module = self
            .load(&artifact)
            .map_err(|e| PrepareError::Internal(e.to_string()))?;
        if let Err(e) = self.linker.instantiate_pre(&module) {
            let _ = std::fs::remove_file(&artifact);
            return Err(PrepareError::InvalidCode(format!(
                "The module '{}' cannot be linked: {e:#}",
                spec.handler
            )));
        }
        if module.get_export("_start").is_none() {
            let _ = std::fs::remove_file(&artifact);
            return Err(PrepareError::InvalidCode(format!(
                "The module '{}' exports no _start function (build it as a WASI command).",
                spec.handler
            )));
        }
        Ok(())
    }

    /// Removes every artifact of the code (of each handler, and of other engine builds): a
    /// sandbox started from one keeps its mapping.
    fn forget_code(&self, code_sha256: &str) {
        // A digest only, never a pattern or a path.
        if code_sha256.is_empty() || !code_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.config.cache_dir) else {
            return;
        };
        let prefix = format!("{code_sha256}-");
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix)
                && name.ends_with(".cwasm")
                && let Err(e) = std::fs::remove_file(entry.path())
            {
                tracing::warn!(file = %entry.path().display(), error = %e, "removing a compiled artifact");
            }
        }
    }

    async fn start(&self, spec: &FunctionSpec) -> Result<Arc<dyn Sandbox>, SandboxError> {
        let artifact = self.artifact_path(spec);
        if !artifact.exists() {
            return Err(SandboxError::NotPrepared(format!(
                "no compiled artifact at {}",
                artifact.display()
            )));
        }
        let module = self.load(&artifact)?;
        let pre = self.linker.instantiate_pre(&module).map_err(internal)?;
        let stream = crate::log_stream_name(spec);
        Ok(Arc::new(WasmSandbox {
            pre,
            env: constant_env(spec, &stream),
            spec: spec.clone(),
            config: self.config.clone(),
            log_stream: stream,
        }))
    }
}

/// What a store holds for one call.
pub struct HostState {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
    host: Option<Arc<dyn HostCalls>>,
    /// The answer of the last `stoke.invoke`, until `stoke.result` takes it.
    pending: Option<Bytes>,
}

/// Caps linear memory and remembers the peak.
struct MemoryLimiter {
    max_bytes: usize,
    peak: usize,
    denied: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.denied = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// A warm wasm function: its linked module, ready to instantiate.
struct WasmSandbox {
    pre: InstancePre<HostState>,
    spec: FunctionSpec,
    config: WasmConfig,
    log_stream: String,
    /// The calls' environment variables that are the same for every call.
    env: Vec<(String, String)>,
}

/// The environment variables of a sandbox's calls that are the same for every call: the
/// function's own, then Lambda's (made once per sandbox; the per-call ones follow them).
fn constant_env(spec: &FunctionSpec, log_stream: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = spec
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend(
        spec.lambda_env(log_stream)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    );
    let fixed: [(&str, String); 3] = [
        ("AWS_EXECUTION_ENV", "AWS_Lambda_wasm".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("_HANDLER", spec.handler.clone()),
    ];
    env.extend(fixed.into_iter().map(|(k, v)| (k.to_owned(), v)));
    env
}

impl WasmSandbox {
    fn wasi(
        &self,
        input: &InvokeInput,
        stdout: &MemoryOutputPipe,
        stderr: &MemoryOutputPipe,
    ) -> WasiP1Ctx {
        let s = &self.spec;
        let mut b = WasiCtxBuilder::new();
        b.stdin(MemoryInputPipe::new(input.payload.clone()))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .arg(&s.handler)
            .envs(&self.env);
        let deadline = input.deadline_unix_ms.to_string();
        let per_call: [(&str, &str); 6] = [
            ("_X_AMZN_TRACE_ID", &input.trace_id),
            ("TZ", ":UTC"),
            ("STOKE_REQUEST_ID", &input.request_id),
            ("STOKE_DEADLINE_MS", &deadline),
            (
                "STOKE_INVOKED_FUNCTION_ARN",
                input
                    .invoked_function_arn
                    .as_deref()
                    .unwrap_or(&s.function_arn),
            ),
            (
                "STOKE_CLIENT_CONTEXT",
                input.client_context.as_deref().unwrap_or(""),
            ),
        ];
        b.envs(&per_call);
        b.build_p1()
    }

    fn timed_out(&self, input: &InvokeInput) -> FunctionError {
        FunctionError::new(
            "Sandbox.Timedout",
            format!(
                "RequestId: {} Error: Task timed out after {:.2} seconds",
                input.request_id,
                self.spec.timeout.as_secs_f64()
            ),
        )
    }
}

#[async_trait]
impl Sandbox for WasmSandbox {
    async fn invoke(&self, input: InvokeInput) -> Result<Execution, SandboxError> {
        let stdout = MemoryOutputPipe::new(self.config.max_response_bytes + 1);
        let stderr = MemoryOutputPipe::new(self.config.max_log_bytes);
        let state = HostState {
            wasi: self.wasi(&input, &stdout, &stderr),
            limiter: MemoryLimiter {
                max_bytes: (self.spec.memory_mb as usize).saturating_mul(1024 * 1024),
                peak: 0,
                denied: false,
            },
            host: input.host.clone(),
            pending: None,
        };
        let mut store = Store::new(self.pre.module().engine(), state);
        store.limiter(|s| &mut s.limiter);
        let now = tokio::time::Instant::now();
        let deadline = Instant::now() + input.deadline.saturating_duration_since(now);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });

        enum Stage {
            Instantiate(wasmtime::Error),
            Run(wasmtime::Error),
        }
        let run = async {
            let instance = self
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(Stage::Instantiate)?;
            let start = instance
                .get_typed_func::<(), ()>(&mut store, "_start")
                .map_err(Stage::Instantiate)?;
            start.call_async(&mut store, ()).await.map_err(Stage::Run)
        };
        // The epoch callback interrupts a running guest; this also ends a guest that is
        // waiting in a host call (another function's invocation) past its deadline.
        let result = tokio::time::timeout_at(input.deadline + Duration::from_millis(20), run).await;

        let limiter = &store.data().limiter;
        let (peak, denied) = (limiter.peak, limiter.denied);
        drop(store);
        let out = stdout.contents();
        let log = stderr.contents();
        let log_truncated = log.len() >= self.config.max_log_bytes;

        let outcome = match result {
            Err(_elapsed) => Outcome::Error(self.timed_out(&input)),
            Ok(Err(Stage::Instantiate(e))) => {
                if denied {
                    Outcome::Error(out_of_memory(&input, self.spec.memory_mb))
                } else if let Some(trap) = e.downcast_ref::<Trap>() {
                    Outcome::Error(trap_error(*trap))
                } else {
                    return Err(internal(format!("instantiating: {e:#}")));
                }
            }
            Ok(result) => {
                let exit = match &result {
                    Ok(()) => Some(0),
                    Err(Stage::Run(e)) => e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|x| x.0),
                    Err(Stage::Instantiate(_)) => None,
                };
                if out.len() > self.config.max_response_bytes {
                    Outcome::Error(FunctionError::new(
                        "Function.ResponseSizeTooLarge",
                        format!(
                            "Response payload size exceeded maximum allowed payload size ({} bytes).",
                            self.config.max_response_bytes
                        ),
                    ))
                } else {
                    match (exit, result) {
                        (Some(0), _) => Outcome::Success(out),
                        (Some(code), _) => Outcome::Error(reported_error(&out).unwrap_or_else(|| {
                            FunctionError::new(
                                "Runtime.ExitError",
                                format!(
                                    "RequestId: {} Error: Runtime exited with error: exit status {code}",
                                    input.request_id
                                ),
                            )
                        })),
                        (None, Err(Stage::Run(e)) | Err(Stage::Instantiate(e))) => {
                            match e.downcast_ref::<Trap>() {
                                Some(Trap::Interrupt) => Outcome::Error(self.timed_out(&input)),
                                _ if denied => {
                                    Outcome::Error(out_of_memory(&input, self.spec.memory_mb))
                                }
                                Some(trap) => Outcome::Error(trap_error(*trap)),
                                None => Outcome::Error(FunctionError::new(
                                    "Runtime.Error",
                                    format!("{e:#}"),
                                )),
                            }
                        }
                        (None, Ok(())) => Outcome::Success(out),
                    }
                }
            }
        };
        Ok(Execution {
            outcome,
            log,
            init_log: Bytes::new(),
            max_memory_bytes: peak as u64,
            log_truncated,
            log_stream: self.log_stream.clone(),
        })
    }
}

fn out_of_memory(input: &InvokeInput, memory_mb: u32) -> FunctionError {
    FunctionError::new(
        "Runtime.OutOfMemory",
        format!(
            "RequestId: {} Error: Runtime exited with error: the function tried to use more \
             than its {memory_mb} MB of memory",
            input.request_id
        ),
    )
}

fn trap_error(trap: Trap) -> FunctionError {
    FunctionError::new(format!("Runtime.{trap:?}"), format!("wasm trap: {trap}"))
}

/// The error a function reported on stdout before exiting non-zero, if it did.
fn reported_error(out: &[u8]) -> Option<FunctionError> {
    let v: serde_json::Value = serde_json::from_slice(out).ok()?;
    let message = v.get("errorMessage")?.as_str()?.to_owned();
    let error_type = v
        .get("errorType")
        .and_then(|t| t.as_str())
        .unwrap_or("Error")
        .to_owned();
    Some(FunctionError {
        error_type,
        message,
        body: Bytes::copy_from_slice(out),
    })
}
