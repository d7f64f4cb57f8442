//! What a call or a deploy runs, and what runs it: the leaf every other engine module builds on.
//!
//! - [`Runnable`]: one function version as it is ready to run now, and the [`FunctionSpec`]
//!   a sandbox of it is started with ([`Runnable::spec`]).
//! - [`Backends`]: the sandbox backends of this server, by runtime family.
//! - [`Warmer`]: what starts a sandbox of a new generation before calls move to it (the
//!   control plane's deploy asks it; the invoker's sandboxes implement it), and what came of
//!   it ([`WarmUp`]).
//! - [`Layout`]: where unpacked code lives on disk, which both the deploy and the sandboxes
//!   read.
//! - [`CodeSource`]: what brings a code blob's unpacked tree to this node when a sandbox
//!   needs it and another node deployed it (the control plane's code store implements it).
//!
//! This module imports no other module of the engine, so that `prepare`, `control`, `route`
//! and `invoke` can all use it without importing each other back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use stoke_core::{
    AccountId, Deployed, Function, FunctionError, FunctionName, Reason, RuntimeFamily,
};
use stoke_sandbox::{Backend, FunctionSpec};

/// Where the engine keeps files, under the data dir.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `code/<sha256>/`: unpacked code, shared by functions with the same zip.
    pub code_root: PathBuf,
    /// Where zips are unpacked before they move into `code_root`; emptied at start-up.
    pub staging_root: PathBuf,
}

impl Layout {
    pub fn under(data_dir: &Path) -> Self {
        Self {
            code_root: data_dir.join("code"),
            staging_root: data_dir.join("staging"),
        }
    }

    /// The folder of a code blob's unpacked tree.
    pub fn code_dir(&self, sha256_hex: &str) -> PathBuf {
        self.code_root.join(sha256_hex)
    }
}

/// What one call runs: a function version as it is ready to run now.
#[derive(Debug, Clone)]
pub struct Runnable {
    pub account: AccountId,
    pub name: FunctionName,
    /// `$LATEST` or a version number: `X-Amz-Executed-Version`.
    pub version: String,
    pub deployed: Deployed,
    /// The qualifier the caller named (a version, an alias or `$LATEST`), if any: the
    /// function sees it in its invoked ARN.
    pub qualifier: Option<String>,
    /// The function's reserved concurrency (PutFunctionConcurrency), for every version.
    pub reserved_concurrency: Option<u32>,
}

impl Runnable {
    /// `$LATEST` of `f` as its record stands (the generation a deploy prepares and warms),
    /// named by no qualifier.
    pub fn latest_of(f: &Function) -> Self {
        Self {
            account: f.account.clone(),
            name: f.name.clone(),
            version: stoke_core::LATEST.to_owned(),
            deployed: f.as_deployed(),
            qualifier: None,
            reserved_concurrency: f.reserved_concurrency,
        }
    }

    /// The [`FunctionSpec`] a sandbox of this target runs, with its code in `code_dir` and no
    /// credentials (the sandboxes add those when they start one).
    pub fn spec(&self, code_dir: &Path, region: &str) -> FunctionSpec {
        let c = &self.deployed.config;
        FunctionSpec {
            account: self.account.as_str().to_owned(),
            function_name: self.name.as_str().to_owned(),
            version: self.version.clone(),
            function_arn: stoke_core::ids::function_arn(region, &self.account, self.name.as_str()),
            region: region.to_owned(),
            runtime: c.runtime.clone(),
            handler: c.handler.clone(),
            code_dir: code_dir.to_path_buf(),
            code_sha256: self.deployed.code.sha256_hex.clone(),
            memory_mb: c.memory_size,
            ephemeral_mb: c.ephemeral_storage,
            timeout: Duration::from_secs(u64::from(c.timeout)),
            environment: c.environment.clone(),
            credentials: None,
        }
    }
}

/// The backends, by runtime family.
#[derive(Clone)]
pub struct Backends {
    pub wasm: Arc<dyn Backend>,
    /// Process sandboxes (`provided*`, `python3.x`, `nodejs*`), when this server has them.
    pub process: Option<Arc<dyn Backend>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("process", &self.process.is_some())
            .finish_non_exhaustive()
    }
}

impl Backends {
    /// The backend of a runtime family, if this server has one.
    pub fn for_family(&self, family: RuntimeFamily) -> Option<&Arc<dyn Backend>> {
        match family {
            RuntimeFamily::Wasm => Some(&self.wasm),
            RuntimeFamily::Provided | RuntimeFamily::Python | RuntimeFamily::Nodejs => {
                self.process.as_ref()
            }
        }
    }
}

/// Starts a sandbox of a new generation before calls move to it, so that an update never
/// makes a call wait for a compile or an init.
#[async_trait]
pub trait Warmer: Send + Sync {
    /// Starts one sandbox of `target` and keeps it warm if its Init succeeds. `Err` is why no
    /// sandbox could be started at all (the server's failure, not the code's), as the update's
    /// `LastUpdateStatusReason` and its code.
    async fn warm(&self, target: &Runnable) -> Result<WarmUp, Reason>;
}

/// What came of a deploy's warm-up.
#[derive(Debug, Clone)]
pub enum WarmUp {
    /// A sandbox of the new generation is idle in its pool (or nothing here can run the
    /// runtime, and calls will say so).
    Warm,
    /// The sandbox started and the function's own Init failed; the sandbox is not kept.
    InitFailed(FailedInit),
}

/// A warm-up whose Init failed: the error and what the Init wrote, for the function's logs.
#[derive(Debug, Clone)]
pub struct FailedInit {
    /// The error a call of that sandbox would have answered (`Runtime.ImportModuleError`,
    /// `Runtime.ExitError`, `Sandbox.Timedout`, what the runtime reported, ...).
    pub error: FunctionError,
    /// The Init's own output (the function's stderr and stdout).
    pub log: Bytes,
    /// The log stream the sandbox wrote to.
    pub log_stream: String,
    /// How long the Init ran.
    pub init: Duration,
}

/// Brings a code blob's unpacked tree to this node (from the store's blobs, checked as a
/// deploy checks an upload) when it is not here.
#[async_trait]
pub trait CodeSource: Send + Sync {
    /// Makes sure the tree of `sha256_hex` is unpacked under the layout's code folder:
    /// `false` if the blob is gone from the store. `Err` says why it could not be.
    async fn ensure(&self, sha256_hex: &str) -> Result<bool, String>;
}

/// A [`Warmer`] that warms nothing (a control plane with no sandboxes behind it: an update's
/// first call is cold).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoWarmer;

#[async_trait]
impl Warmer for NoWarmer {
    async fn warm(&self, _target: &Runnable) -> Result<WarmUp, Reason> {
        Ok(WarmUp::Warm)
    }
}
