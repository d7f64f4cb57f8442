//! What "checking the code" means for a runtime.
//!
//! After the API has stored a function's code it answers `Pending` (or `InProgress`) and a
//! background task prepares the code: the [`Preparer`] looks at the unpacked folder and either
//! accepts it or says why the function cannot run, in Lambda's words (`StateReason`,
//! `StateReasonCode`). [`BackendPreparer`] hands the work to the sandbox backend of the
//! function's runtime (for wasm: compile and cache the module).

use std::path::Path;
use std::sync::Arc;

use stoke_core::{Function, Reason, RuntimeFamily};
use stoke_sandbox::Backend;

/// Readies a function's unpacked code for its sandboxes.
pub trait Preparer: Send + Sync + 'static {
    /// Blocking; runs on a blocking thread. `Err` carries the reason the function fails.
    fn prepare(&self, function: &Function, code_dir: &Path) -> Result<(), Reason>;
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
pub struct BackendPreparer {
    pub wasm: Arc<dyn Backend>,
    /// The process backend, when the server has one.
    pub process: Option<Arc<dyn Backend>>,
    pub region: String,
}

impl std::fmt::Debug for BackendPreparer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendPreparer").finish_non_exhaustive()
    }
}

impl Preparer for BackendPreparer {
    fn prepare(&self, function: &Function, code_dir: &Path) -> Result<(), Reason> {
        HandlerCheck.prepare(function, code_dir)?;
        let target = crate::control::Runnable {
            account: function.account.clone(),
            name: function.name.clone(),
            version: function.version.clone(),
            deployed: function.as_deployed(),
            qualifier: None,
            reserved_concurrency: function.reserved_concurrency,
        };
        let spec = crate::invoke::spec_for(&target, code_dir, &self.region);
        match function.config.runtime.family() {
            RuntimeFamily::Wasm => self.wasm.prepare(&spec).map_err(invalid),
            RuntimeFamily::Provided | RuntimeFamily::Python | RuntimeFamily::Nodejs => {
                match &self.process {
                    Some(p) => p.prepare(&spec).map_err(|message| Reason {
                        code: if message.starts_with("The runtime") {
                            "InvalidRuntime".into()
                        } else {
                            "InvalidZipFileException".into()
                        },
                        message,
                    }),
                    // Refused when invoked (InvalidRuntimeException).
                    None => Ok(()),
                }
            }
        }
    }
}
