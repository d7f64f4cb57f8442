//! The error types of the Lambda API.
//!
//! Each variant is one `x-amzn-ErrorType` that AWS Lambda answers, with the HTTP status AWS uses
//! for it. The API crate turns a [`LambdaError`] into Lambda's wire shape ([`wire_body`]);
//! domain crates keep their own error enums and convert into this one at their boundary.
//!
//! The shape of the body is AWS's, and it differs by type. A type the model defines carries
//! `Type` (`User` or `Service`) and its message in the member the model names for it:
//! `Message` for `ResourceNotFoundException`, `ServiceException`, … and `message` for
//! `InvalidParameterValueException`, `ResourceConflictException`, … (boto3 puts that member,
//! spelled so, at the top of `e.response`). A type the model does not define
//! (`ValidationException`, the signature errors, `UnknownOperationException`,
//! `RequestEntityTooLargeException`) is answered by AWS's front door as `{"message": …}`
//! with no `Type`; `AccessDeniedException` as `{"Message": …}`.

use std::fmt;

/// One error as the Lambda API reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LambdaError {
    /// A value breaks a constraint of the API model (pattern, length, range, enum).
    #[error("{0}")]
    Validation(String),
    /// A value is well-formed but not acceptable (unknown runtime, unusable zip, …).
    #[error("{0}")]
    InvalidParameterValue(String),
    /// The request body is not what the operation takes (for example malformed JSON).
    #[error("{0}")]
    InvalidRequestContent(String),
    /// The resource does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// The resource exists already, or is in a state that forbids the operation.
    #[error("{0}")]
    ResourceConflict(String),
    /// A `RevisionId` precondition did not hold.
    #[error("{0}")]
    PreconditionFailed(String),
    /// A function's resource-based policy would grow past its limit (20 KB).
    #[error("{0}")]
    PolicyLengthExceeded(String),
    /// The request or the code it carries is too large.
    #[error("{0}")]
    RequestEntityTooLarge(String),
    /// No `Authorization` header (or presigned query) at all.
    #[error("{0}")]
    MissingAuthenticationToken(String),
    /// An `Authorization` header that is not a well-formed SigV4 header.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The access key is not known.
    #[error("{0}")]
    UnrecognizedClient(String),
    /// The signature does not match, or it has expired.
    #[error("{0}")]
    InvalidSignature(String),
    /// A session token (a function's temporary credentials) past its expiry.
    #[error("{0}")]
    ExpiredToken(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    AccessDenied(String),
    /// The route exists but not with this method, or no route at all.
    #[error("{0}")]
    UnknownOperation(String),
    /// Invoke's payload is over the limit (6 MB sync, 1 MB async).
    #[error("{0}")]
    RequestTooLarge(String),
    /// Over a concurrency limit; `reason` is Lambda's `Reason` field.
    #[error("{message}")]
    TooManyRequests { reason: String, message: String },
    /// The function's runtime cannot run here.
    #[error("{0}")]
    InvalidRuntime(String),
    /// Functions invoking functions went too deep.
    #[error("{0}")]
    RecursiveInvocation(String),
    /// The platform failed; the message is safe to show and the details are in the server log.
    #[error("{0}")]
    Service(String),
}

impl LambdaError {
    /// The value of `x-amzn-ErrorType`, which boto3 reports as `Error.Code`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Validation(_) => "ValidationException",
            Self::InvalidParameterValue(_) => "InvalidParameterValueException",
            Self::InvalidRequestContent(_) => "InvalidRequestContentException",
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::ResourceConflict(_) => "ResourceConflictException",
            Self::PreconditionFailed(_) => "PreconditionFailedException",
            Self::PolicyLengthExceeded(_) => "PolicyLengthExceededException",
            Self::RequestEntityTooLarge(_) => "RequestEntityTooLargeException",
            Self::MissingAuthenticationToken(_) => "MissingAuthenticationTokenException",
            Self::IncompleteSignature(_) => "IncompleteSignatureException",
            Self::UnrecognizedClient(_) => "UnrecognizedClientException",
            Self::InvalidSignature(_) => "InvalidSignatureException",
            Self::ExpiredToken(_) => "ExpiredTokenException",
            Self::AccessDenied(_) => "AccessDeniedException",
            Self::UnknownOperation(_) => "UnknownOperationException",
            Self::RequestTooLarge(_) => "RequestTooLargeException",
            Self::TooManyRequests { .. } => "TooManyRequestsException",
            Self::InvalidRuntime(_) => "InvalidRuntimeException",
            Self::RecursiveInvocation(_) => "RecursiveInvocationException",
            Self::Service(_) => "ServiceException",
        }
    }

    /// The HTTP status AWS answers with for this error type.
    pub fn status(&self) -> u16 {
        match self {
            Self::Validation(_)
            | Self::InvalidParameterValue(_)
            | Self::InvalidRequestContent(_)
            | Self::PolicyLengthExceeded(_) => 400,
            Self::ResourceNotFound(_) | Self::UnknownOperation(_) => 404,
            Self::ResourceConflict(_) => 409,
            Self::PreconditionFailed(_) => 412,
            Self::RequestEntityTooLarge(_) | Self::RequestTooLarge(_) => 413,
            Self::TooManyRequests { .. } => 429,
            Self::InvalidRuntime(_) => 502,
            Self::RecursiveInvocation(_) => 400,
            Self::MissingAuthenticationToken(_)
            | Self::IncompleteSignature(_)
            | Self::UnrecognizedClient(_)
            | Self::InvalidSignature(_)
            | Self::ExpiredToken(_)
            | Self::AccessDenied(_) => 403,
            Self::Service(_) => 500,
        }
    }

    /// `User` for errors the caller caused, `Service` for the platform's own; the `Type` field
    /// of Lambda's error body.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Service(_) | Self::InvalidRuntime(_) => Fault::Service,
            _ => Fault::User,
        }
    }

    /// The message, without the type.
    pub fn message(&self) -> &str {
        match self {
            Self::Validation(m)
            | Self::InvalidParameterValue(m)
            | Self::InvalidRequestContent(m)
            | Self::ResourceNotFound(m)
            | Self::ResourceConflict(m)
            | Self::PreconditionFailed(m)
            | Self::PolicyLengthExceeded(m)
            | Self::RequestEntityTooLarge(m)
            | Self::MissingAuthenticationToken(m)
            | Self::IncompleteSignature(m)
            | Self::UnrecognizedClient(m)
            | Self::InvalidSignature(m)
            | Self::ExpiredToken(m)
            | Self::AccessDenied(m)
            | Self::UnknownOperation(m)
            | Self::RequestTooLarge(m)
            | Self::InvalidRuntime(m)
            | Self::RecursiveInvocation(m)
            | Self::Service(m) => m,
            Self::TooManyRequests { message, .. } => message,
        }
    }

    /// Lambda's `Reason` field of a throttle, if this is one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::TooManyRequests { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The body AWS answers this error with (see the module's doc).
    pub fn wire_body(&self) -> serde_json::Value {
        wire_body(self.type_name(), self.message(), self.reason())
    }

    /// `Function not found: ARN`, as Lambda words it.
    pub fn function_not_found(arn: &str) -> Self {
        Self::ResourceNotFound(format!("Function not found: {arn}"))
    }
}

/// The body of an error of type `type_name` as AWS answers it: `Type` and the model's message
/// member for a type the model defines, `message` alone for one it does not (the front door's
/// errors), and a throttle's `Reason`.
pub fn wire_body(type_name: &str, message: &str, reason: Option<&str>) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    match crate::model::message_member(type_name) {
        Some((member, sender_fault)) => {
            let fault = if sender_fault {
                Fault::User
            } else {
                Fault::Service
            };
            body.insert("Type".into(), fault.to_string().into());
            body.insert(member.into(), message.into());
        }
        None if type_name == "AccessDeniedException" => {
            body.insert("Message".into(), message.into());
        }
        None => {
            body.insert("message".into(), message.into());
        }
    }
    if let Some(reason) = reason {
        body.insert("Reason".into(), reason.into());
    }
    serde_json::Value::Object(body)
}

/// Who is at fault for an error: Lambda's `Type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    User,
    Service,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::User => "User",
            Fault::Service => "Service",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_uses_lambdas_type_status_and_wording() {
        let e = LambdaError::function_not_found("arn:aws:lambda:us-east-1:123456789012:function:f");
        assert_eq!(e.type_name(), "ResourceNotFoundException");
        assert_eq!(e.status(), 404);
        assert_eq!(
            e.message(),
            "Function not found: arn:aws:lambda:us-east-1:123456789012:function:f"
        );
        assert_eq!(e.fault(), Fault::User);
    }

    #[test]
    fn each_type_has_the_body_aws_answers_it_with() {
        use serde_json::json;
        let cases = [
            (
                LambdaError::function_not_found("arn"),
                json!({"Type": "User", "Message": "Function not found: arn"}),
            ),
            (
                LambdaError::InvalidParameterValue("bad".into()),
                json!({"Type": "User", "message": "bad"}),
            ),
            (
                LambdaError::ResourceConflict("busy".into()),
                json!({"Type": "User", "message": "busy"}),
            ),
            (
                LambdaError::Service("down".into()),
                json!({"Type": "Service", "Message": "down"}),
            ),
            (
                LambdaError::Validation("1 validation error detected: x".into()),
                json!({"message": "1 validation error detected: x"}),
            ),
            (
                LambdaError::UnrecognizedClient("who".into()),
                json!({"message": "who"}),
            ),
            (
                LambdaError::TooManyRequests {
                    reason: "ReservedFunctionConcurrentInvocationLimitExceeded".into(),
                    message: "Rate Exceeded.".into(),
                },
                json!({"Type": "User", "message": "Rate Exceeded.",
                       "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}),
            ),
        ];
        for (e, body) in cases {
            assert_eq!(e.wire_body(), body, "{}", e.type_name());
        }
    }

    #[test]
    fn signature_errors_are_forbidden() {
        for e in [
            LambdaError::InvalidSignature(String::new()),
            LambdaError::UnrecognizedClient(String::new()),
            LambdaError::MissingAuthenticationToken(String::new()),
            LambdaError::ExpiredToken(String::new()),
        ] {
            assert_eq!(e.status(), 403);
        }
    }
}
