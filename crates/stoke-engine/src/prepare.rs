//! What "checking the code" means for a runtime.
//!
//! After the API has stored a function's code it answers `Pending` (or `InProgress`) and a
//! background task prepares the code: the [`Preparer`] looks at the unpacked folder and either
//! accepts it or says why the function cannot run, in Lambda's words (`StateReason`,
//! `StateReasonCode`). [`BackendPreparer`] hands the work to the sandbox backend of the
//! function's runtime (for wasm: compile and cache the module).

use std::path::Path;

use stoke_core::{Function, Reason, Runtime, RuntimeFamily};
use stoke_sandbox::PrepareError;

use crate::target::{Backends, Runnable};

/// Readies a function's unpacked code for its sandboxes.
pub trait Preparer: Send + Sync + 'static {
    /// Blocking; runs on a blocking thread. `Err` carries the reason the function fails.
    fn prepare(&self, function: &Function, code_dir: &Path) -> Result<(), Reason>;

    /// `RuntimeVersionConfig.RuntimeVersionArn` for a function of `runtime`: the managed
    /// runtime's version that serves it here; `None` for `provided*`, wasm, or none.
    fn runtime_version_arn(&self, _runtime: &Runtime) -> Option<String> {
        None
    }

    /// A code blob was removed (nothing uses it): what preparing it made can go. Blocking.
    fn forget_code(&self, _code_sha256: &str) {}
}

fn invalid(message: String) -> Reason {
    Reason {
        message,
        code: "InvalidZipFileException".into(),
    }
}

/// The checks every runtime gets when no backend is there for it: the file the handler names
/// is there (for `wasm`: and it is a WebAssembly module).
#[derive(Debug, Default, Clone, Copy)]
pub struct HandlerCheck;

impl Preparer for HandlerCheck {
    fn prepare(&self, function: &Function, code_dir: &Path) -> Result<(), Reason> {
        let config = &function.config;
        match config.runtime.family() {
            RuntimeFamily::Wasm => {
                let path = code_dir.join(&config.handler);
                if config.handler.split('/').any(|p| p == "..") || !path.starts_with(code_dir) {
                    return Err(invalid(format!(
                        "The handler '{}' is not a path inside the deployment package.",
                        config.handler
                    )));
                }
                let mut magic = [0u8; 4];
                let read = std::fs::File::open(&path)
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic));
                match read {
                    Ok(()) if &magic == b"\0asm" => Ok(()),
                    Ok(()) => Err(invalid(format!(
                        "The handler file '{}' is not a WebAssembly module.",
                        config.handler
                    ))),
                    Err(_) => Err(invalid(format!(
                        "The handler file '{}' was not found in the deployment package.",
                        config.handler
                    ))),
                }
            }
            // Lambda reports a missing Python or Node handler when it is invoked, not here;
            // a missing bootstrap likewise (Runtime.InvalidEntrypoint).
            RuntimeFamily::Provided | RuntimeFamily::Python | RuntimeFamily::Nodejs => Ok(()),
        }
    }
}

/// Prepares code with the sandbox backend of its runtime, after the [`HandlerCheck`].
#[derive(Debug)]
pub struct BackendPreparer {
    pub backends: Backends,
    pub region: String,
}

/// The reason a function fails, for a backend's refusal: each kind has its `StateReasonCode`.
fn reason_of(e: PrepareError) -> Reason {
    let code = match &e {
        PrepareError::InvalidCode(_) => "InvalidZipFileException",
        PrepareError::RuntimeUnavailable(_) => "InvalidRuntime",
        PrepareError::Internal(_) => "InternalError",
    };
    Reason {
        message: e.to_string(),
        code: code.into(),
    }
}

impl Preparer for BackendPreparer {
    fn prepare(&self, function: &Function, code_dir: &Path) -> Result<(), Reason> {
        HandlerCheck.prepare(function, code_dir)?;
        // A runtime with no backend here is refused when invoked (InvalidRuntimeException).
        let Some(backend) = self.backends.for_family(function.config.runtime.family()) else {
            return Ok(());
        };
        let spec = Runnable::latest_of(function).spec(code_dir, &self.region);
        backend.prepare(&spec).map_err(reason_of)
    }

    fn runtime_version_arn(&self, runtime: &Runtime) -> Option<String> {
        let backend = self.backends.for_family(runtime.family())?;
        Some(backend.runtime_version(runtime)?.arn(&self.region))
    }

    fn forget_code(&self, code_sha256: &str) {
        self.backends.wasm.forget_code(code_sha256);
        if let Some(p) = &self.backends.process {
            p.forget_code(code_sha256);
        }
    }
}
