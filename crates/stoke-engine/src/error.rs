//! Errors of the control plane, and how they reach the caller.

use stoke_core::LambdaError;
use stoke_store::StoreError;

use crate::code::CodeError;

/// What went wrong in a control-plane operation.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The caller's request is at fault; answered as is.
    #[error(transparent)]
    Request(#[from] LambdaError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("code: {0}")]
    Code(#[from] CodeError),
    #[error("a background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// AWS's words for a zip it cannot use.
pub const UNUSABLE_ZIP: &str =
    "Could not unzip uploaded file. Please check your file, then try to upload again.";

impl From<ControlError> for LambdaError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Request(e) => e,
            ControlError::Code(CodeError::TooLarge { limit }) => {
                LambdaError::InvalidParameterValue(format!(
                    "Unzipped size must be smaller than {limit} bytes"
                ))
            }
            ControlError::Code(c) if c.is_callers_fault() => {
                LambdaError::InvalidParameterValue(format!("{UNUSABLE_ZIP} ({c})"))
            }
            ControlError::Store(StoreError::Stale { .. }) => LambdaError::PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. Call the \
                 GetFunction/GetAlias API to retrieve the latest Revision Id"
                    .into(),
            ),
            ControlError::Store(StoreError::DiskFull) => {
                tracing::error!("the disk is full");
                LambdaError::Service(
                    "The service could not store the request: no space left.".into(),
                )
            }
            other => {
                tracing::error!(error = %other, "control plane failure");
                LambdaError::Service("An internal error occurred. See the server's log.".into())
            }
        }
    }
}
