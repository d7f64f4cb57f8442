//! What "checking the code" means for a runtime.
//!
//! After the API has stored a function's code it answers `Pending` (or `InProgress`) and a
//! background task prepares the code: the [`Preparer`] looks at the unpacked folder and either
//! accepts it or says why the function cannot run, in Lambda's words (`StateReason`,
//! `StateReasonCode`). The wasm backend adds compilation behind this same trait.

use std::path::Path;

use stoke_core::{FunctionConfig, Reason, RuntimeFamily};

/// Readies a function's unpacked code for its sandboxes.
pub trait Preparer: Send + Sync + 'static {
    /// Blocking; runs on a blocking thread. `Err` carries the reason the function fails.
    fn prepare(&self, config: &FunctionConfig, code_dir: &Path) -> Result<(), Reason>;
}

/// The checks every runtime gets before a sandbox backend exists for it: the file the handler
/// names is there (for `wasm`: and it is a WebAssembly module).
#[derive(Debug, Default, Clone, Copy)]
pub struct HandlerCheck;

impl Preparer for HandlerCheck {
    fn prepare(&self, config: &FunctionConfig, code_dir: &Path) -> Result<(), Reason> {
        match config.runtime.family() {
            RuntimeFamily::Wasm => {
                let path = code_dir.join(&config.handler);
                let invalid = |message: String| Reason {
                    message,
                    code: "InvalidZipFileException".into(),
                };
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
