//! Stoke's sandboxes: where a function's code runs.
//!
//! # Layout
//! - this file: the [`Backend`] and [`Sandbox`] traits every backend implements, and the types
//!   that cross them: [`FunctionSpec`] (what a sandbox runs), [`InvokeInput`] (one call),
//!   [`Execution`] (what came of it: output or a function error, the call's log, its peak
//!   memory), and [`HostCalls`] (what a guest may ask of the platform, such as invoking
//!   another function).
//! - [`wasm`]: the WebAssembly backend on wasmtime: modules compiled once and cached on disk,
//!   instances from the pooling allocator through an `InstancePre`, timeouts by epoch
//!   interruption, memory capped by a `ResourceLimiter`, the `stoke` host imports.
//! - [`process`]: the process backend: Linux process trees speaking the Lambda Runtime API
//!   (`provided*`, `python3.x`, `nodejs*`), isolated with namespaces, cgroups and seccomp.
//! - [`error`]: [`SandboxError`], the platform's failures (never the function's).
//!
//! A function's failure (a trap, a timeout, running out of memory, a non-zero exit) is an
//! [`Outcome::Error`] (the type lives in `stoke-core`): a normal result, reported to the caller as Lambda reports it. A
//! [`SandboxError`] is the platform failing.

pub mod error;
pub mod process;
pub mod wasm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use error::SandboxError;
/// How a call ended; these live in the domain crate, where the API reads them too.
pub use stoke_core::{FunctionError, Outcome};

/// Why [`Backend::prepare`] refused a function's code, in words for `StateReason`; each kind
/// is its own `StateReasonCode`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    /// The deployment package cannot run as it is (the handler file is missing, the module
    /// does not compile or link): `InvalidZipFileException`.
    #[error("{0}")]
    InvalidCode(String),
    /// The function's runtime is not available on this server (no interpreter for it):
    /// `InvalidRuntime`.
    #[error("{0}")]
    RuntimeUnavailable(String),
    /// The platform failed while preparing (an artifact could not be stored): not the code's
    /// fault, `InternalError`.
    #[error("{0}")]
    Internal(String),
}

/// Everything a sandbox needs to know about the function version it runs.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub account: String,
    pub function_name: String,
    /// `$LATEST` or a version number.
    pub version: String,
    /// The unqualified function ARN.
    pub function_arn: String,
    pub region: String,
    pub runtime: stoke_core::Runtime,
    pub handler: String,
    /// The unpacked code.
    pub code_dir: PathBuf,
    /// The zip's SHA-256 (hex): identifies the code.
    pub code_sha256: String,
    pub memory_mb: u32,
    /// `EphemeralStorage` in MB: the size of `/tmp` (process sandboxes).
    pub ephemeral_mb: u32,
    pub timeout: Duration,
    pub environment: BTreeMap<String, String>,
    /// The function's credentials for this sandbox's life (`None`: the function gets none).
    pub credentials: Option<Credentials>,
}

/// The AWS credentials a sandbox's code gets (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`), as Lambda's execution role gives them. The engine mints them; a
/// sandbox is retired before they expire.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// When they stop being accepted.
    pub expires: std::time::SystemTime,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl FunctionSpec {
    /// Lambda's log group name for the function.
    pub fn log_group(&self) -> String {
        format!("/aws/lambda/{}", self.function_name)
    }

    /// The environment variables Lambda gives every runtime about the function (both
    /// backends set them, in this order), for a sandbox whose log stream is `log_stream`:
    /// the function's own, then its credentials (if it has them).
    pub fn lambda_env(&self, log_stream: &str) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AWS_LAMBDA_FUNCTION_NAME", self.function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", self.version.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.memory_mb.to_string(),
            ),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", self.log_group()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_owned()),
        ];
        if let Some(c) = &self.credentials {
            env.extend([
                ("AWS_ACCESS_KEY_ID", c.access_key_id.clone()),
                ("AWS_SECRET_ACCESS_KEY", c.secret_access_key.clone()),
                ("AWS_SESSION_TOKEN", c.session_token.clone()),
            ]);
        }
        env
    }
}

/// A new log stream name for a sandbox of `spec`: `YYYY/MM/DD/[version]<32 hex>`, as Lambda's.
pub fn log_stream_name(spec: &FunctionSpec) -> String {
    use sha2::Digest;
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{}/[{}]{}",
        stoke_core::timefmt::lambda_timestamp(now)
            .get(..10)
            .unwrap_or("")
            .replace('-', "/"),
        spec.version,
        hex::encode(
            &sha2::Sha256::digest(format!(
                "{:?}{}{}",
                std::time::Instant::now(),
                now.unix_timestamp_nanos(),
                spec.function_arn
            ))[..16]
        )
    )
}

/// One call.
#[derive(Clone)]
pub struct InvokeInput {
    pub request_id: String,
    /// The event (JSON).
    pub payload: Bytes,
    /// When the call must be over.
    pub deadline: tokio::time::Instant,
    /// The same deadline as Unix milliseconds (what the guest sees).
    pub deadline_unix_ms: u64,
    /// `Root=…;Parent=…;Sampled=…`.
    pub trace_id: String,
    /// `X-Amz-Client-Context`, base64 JSON, as the caller sent it.
    pub client_context: Option<String>,
    /// The ARN the caller invoked (with its version or alias qualifier, if it named one);
    /// `None` means the spec's unqualified ARN.
    pub invoked_function_arn: Option<String>,
    /// What the guest may ask of the platform during this call.
    pub host: Option<Arc<dyn HostCalls>>,
}

impl std::fmt::Debug for InvokeInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvokeInput")
            .field("request_id", &self.request_id)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// What came of one call.
#[derive(Debug, Clone)]
pub struct Execution {
    pub outcome: Outcome,
    /// The function's own log lines for this call (its stderr), without Lambda's
    /// START/END/REPORT lines, which the engine adds.
    pub log: Bytes,
    /// What the runtime wrote during its Init, for the first call after a cold start (Lambda
    /// logs it between INIT_START and START); empty for every other call.
    pub init_log: Bytes,
    /// Peak memory of the call, in bytes.
    pub max_memory_bytes: u64,
    /// Whether the log was cut at the limit.
    pub log_truncated: bool,
    /// The log stream of the sandbox that ran the call (what the function was told in
    /// `AWS_LAMBDA_LOG_STREAM_NAME`).
    pub log_stream: String,
}

/// The answer to a guest's call of another function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostInvokeResult {
    /// The function ran and answered this.
    Success(Bytes),
    /// The function ran and failed with this error body.
    FunctionError(Bytes),
    /// The call could not be made (no such function, throttled, …): Lambda's error JSON.
    Refused(Bytes),
}

/// What a guest may ask of the platform. The engine implements it; a sandbox calls it.
#[async_trait]
pub trait HostCalls: Send + Sync {
    /// Invokes `function` (a name or ARN, optionally qualified) synchronously with `payload`,
    /// on behalf of the calling function.
    async fn invoke(&self, function: &str, payload: Bytes) -> HostInvokeResult;
}

/// A warm execution environment of one function version.
#[async_trait]
pub trait Sandbox: Send + Sync {
    /// Runs one call. The engine gives a sandbox one call at a time.
    async fn invoke(&self, input: InvokeInput) -> Result<Execution, SandboxError>;

    /// Whether the sandbox may serve another call (a process environment that crashed, ran
    /// out of memory or failed its Init may not: the next call starts afresh).
    fn reusable(&self) -> bool {
        true
    }

    /// Starts ending the sandbox without waiting (a process sandbox kills its tree); the drop
    /// that follows finishes the teardown. Lets whoever drops several sandboxes overlap their
    /// teardowns. A retired sandbox serves no more calls.
    fn retire(&self) {}

    /// Why the sandbox's Init failed, if it did (`errorType: errorMessage`). Such a sandbox
    /// answers its call with the error and the Init's output, as Lambda does; a deploy's
    /// warm-up takes them for the function's logs.
    fn init_failure(&self) -> Option<String> {
        None
    }

    /// The managed runtime's version that runs in this sandbox (the `INIT_START` line's).
    fn runtime_version(&self) -> Option<RuntimeVersion> {
        None
    }
}

/// The version of a managed runtime (`python3.x`, `nodejs*`) that really serves a function, as
/// Lambda names one in `INIT_START` (`python:3.12.v38`) and in `RuntimeVersionConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeVersion {
    /// `python:3.11.v7` for Python 3.11.7, `nodejs:20.v20` for Node.js 20.20.x.
    pub name: String,
    /// 64 hex digits, derived from the full version (the same on every machine).
    pub hash: String,
}

impl RuntimeVersion {
    /// `arn:aws:lambda:REGION::runtime:HASH`, Lambda's runtime version ARN.
    pub fn arn(&self, region: &str) -> String {
        format!("arn:aws:lambda:{region}::runtime:{}", self.hash)
    }

    /// Lambda's `INIT_START` log line of a cold start on this version.
    pub fn init_start_line(&self, region: &str) -> String {
        format!(
            "INIT_START Runtime Version: {}\tRuntime Version ARN: {}",
            self.name,
            self.arn(region)
        )
    }
}

/// A kind of sandbox (wasm, process).
#[async_trait]
pub trait Backend: Send + Sync {
    /// Readies code at deploy time (for wasm: compiles it and caches the artifact), so that
    /// [`Backend::start`] has nothing slow left to do. Blocking; `Err` is why the code cannot
    /// run.
    fn prepare(&self, spec: &FunctionSpec) -> Result<(), PrepareError>;

    /// The version of `runtime` that this backend's sandboxes run, for a managed runtime
    /// (`RuntimeVersionConfig`); `None` for `provided*`, wasm, or a runtime not served.
    fn runtime_version(&self, _runtime: &stoke_core::Runtime) -> Option<RuntimeVersion> {
        None
    }

    /// Starts a sandbox: a cold start.
    async fn start(&self, spec: &FunctionSpec) -> Result<Arc<dyn Sandbox>, SandboxError>;

    /// The engine removed a code blob (no function or version uses it): what this backend
    /// made of it at [`Backend::prepare`] can go. Blocking.
    fn forget_code(&self, _code_sha256: &str) {}
}
