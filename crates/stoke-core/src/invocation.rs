//! How an invocation ended, as the caller hears it: the function's result, or the function's
//! own failure in the shape Lambda answers it.
//!
//! A function's failure (a trap, a timeout, running out of memory, a non-zero exit, an error
//! it reported) is a normal [`Outcome`], answered `200` with `X-Amz-Function-Error`; the
//! platform failing is not an outcome but an error of whoever failed.

use bytes::Bytes;

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function's result.
    Success(Bytes),
    /// The function failed; the caller gets `X-Amz-Function-Error: Unhandled` and this body.
    Error(FunctionError),
}

/// A function's failure, in the shape Lambda answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// `errorType`: `Runtime.ExitError`, `Sandbox.Timedout`, `Runtime.OutOfMemory`, a trap's
    /// kind (`Runtime.UnreachableCodeReached`, …), or what the function reported.
    pub error_type: String,
    pub message: String,
    /// The JSON body answered to the caller (`{"errorMessage", "errorType", …}`).
    pub body: Bytes,
}

impl FunctionError {
    /// An error whose body is Lambda's `{"errorMessage", "errorType"}`.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        let error_type = error_type.into();
        let message = message.into();
        let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
        Self {
            error_type,
            message,
            body: Bytes::from(body.to_string()),
        }
    }

    /// Whether the error is a timeout (the sandbox is gone and must not be reused).
    pub fn is_timeout(&self) -> bool {
        self.error_type == "Sandbox.Timedout"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_error_carries_lambdas_error_body() {
        let e = FunctionError::new("Runtime.ExitError", "exit status 3");
        let body: serde_json::Value = serde_json::from_slice(&e.body).unwrap_or_default();
        assert_eq!(body["errorType"], "Runtime.ExitError");
        assert_eq!(body["errorMessage"], "exit status 3");
        assert!(!e.is_timeout());
        assert!(FunctionError::new("Sandbox.Timedout", "late").is_timeout());
    }
}
