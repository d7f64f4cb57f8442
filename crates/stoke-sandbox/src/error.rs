//! The platform's failures in a sandbox (a function's own failures are `Outcome::Error`).

/// What went wrong in the platform while running a call.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the compiled code could not be loaded: {0}")]
    Load(String),
    #[error("the code is not ready: {0}")]
    NotPrepared(String),
    #[error("no sandbox slot is free (the pooling allocator is full)")]
    Exhausted,
    #[error("the sandbox failed: {0}")]
    Internal(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
