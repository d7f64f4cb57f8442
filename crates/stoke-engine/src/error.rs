//! Errors of the engine, and the one place they become Lambda's error types.
//!
//! The engine's operations answer [`ControlError`]: the caller's fault in Lambda's words
//! ([`ControlError::Request`]), or what failed underneath (the store, unpacking code, a
//! background task). `From<ControlError> for LambdaError` below is the only mapping of those
//! failures to Lambda's types, used by every path that answers a caller (the API, which puts
//! a `LambdaError` into the wire shape in `stoke-api`'s `error.rs`; a guest's host call; the
//! async queue). It matches the store's errors by kind and keeps a catch-all, so a new kind
//! of store failure is a `ServiceException`, never a caller's fault.

use stoke_core::LambdaError;
use stoke_store::StoreError;

use crate::code::CodeError;

/// What went wrong in an engine operation.
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

/// What a platform failure is answered with: the details go to the server's log.
const INTERNAL: &str = "An internal error occurred. See the server's log.";

fn store_error(e: StoreError) -> LambdaError {
    match e {
        // A write lost to another writer of the same record.
        StoreError::Stale { .. } => LambdaError::PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. Call the \
             GetFunction/GetAlias API to retrieve the latest Revision Id"
                .into(),
        ),
        // What the operation meant to create exists already (a concurrent create).
        StoreError::Conflict => LambdaError::ResourceConflict(
            "The resource already exists, or another operation is changing it. Try again.".into(),
        ),
        // What the operation meant to change went away meanwhile (a concurrent delete).
        StoreError::NotFound => {
            LambdaError::ResourceNotFound("The resource you requested does not exist.".into())
        }
        StoreError::DiskFull => {
            tracing::error!("the disk is full");
            LambdaError::Service("The service could not store the request: no space left.".into())
        }
        e @ (StoreError::Corrupt(_) | StoreError::Io { .. }) => {
            tracing::error!(error = %e, "the store failed");
            LambdaError::Service(INTERNAL.into())
        }
        #[allow(unreachable_patterns)] // the store's other kinds, present and future
        e => {
            tracing::error!(error = %e, "the store failed");
            LambdaError::Service(INTERNAL.into())
        }
    }
}

impl From<ControlError> for LambdaError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Request(e) => e,
            ControlError::Store(e) => store_error(e),
            ControlError::Code(CodeError::TooLarge { limit }) => {
                LambdaError::InvalidParameterValue(format!(
                    "Unzipped size must be smaller than {limit} bytes"
                ))
            }
            // What AWS says of a zip it cannot read, to the letter; the details are logged.
            ControlError::Code(c @ CodeError::NotAZip(_)) => {
                tracing::debug!(error = %c, "an uploaded zip is unreadable");
                LambdaError::InvalidParameterValue(UNUSABLE_ZIP.into())
            }
            // Refusals of Stoke's own (a link, a path out of the folder): AWS's words, and why.
            ControlError::Code(c) if c.is_callers_fault() => {
                LambdaError::InvalidParameterValue(format!("{UNUSABLE_ZIP} ({c})"))
            }
            other => {
                tracing::error!(error = %other, "engine failure");
                LambdaError::Service(INTERNAL.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(e: impl Into<ControlError>) -> (&'static str, u16) {
        let e = LambdaError::from(e.into());
        (e.type_name(), e.status())
    }

    #[test]
    fn store_failures_are_answered_as_aws_answers_them() {
        assert_eq!(
            answered(StoreError::Stale {
                expected: "r".into()
            }),
            ("PreconditionFailedException", 412)
        );
        assert_eq!(
            answered(StoreError::Conflict),
            ("ResourceConflictException", 409)
        );
        assert_eq!(
            answered(StoreError::NotFound),
            ("ResourceNotFoundException", 404)
        );
        assert_eq!(answered(StoreError::DiskFull), ("ServiceException", 500));
        assert_eq!(
            answered(StoreError::Corrupt("bad row".into())),
            ("ServiceException", 500)
        );
    }

    #[test]
    fn an_unreadable_zip_is_answered_in_aws_words() {
        let e = LambdaError::from(ControlError::from(CodeError::NotAZip("EOCD".into())));
        assert_eq!(e.message(), UNUSABLE_ZIP);
        let e = LambdaError::from(ControlError::from(CodeError::TooLarge {
            limit: 262_144_000,
        }));
        assert_eq!(
            e.message(),
            "Unzipped size must be smaller than 262144000 bytes"
        );
    }

    #[test]
    fn a_request_error_is_answered_as_it_is() {
        assert_eq!(
            answered(LambdaError::InvalidParameterValue("x".into())),
            ("InvalidParameterValueException", 400)
        );
    }
}
