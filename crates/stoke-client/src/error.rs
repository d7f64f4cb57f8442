//! The errors of a call: [`ApiError`], an error answer of the API as the server sent it
//! (Lambda's `{"Type": …, "message": …}` or JSON 1.1's `{"__type": …}`, the type in
//! `x-amzn-ErrorType`), and [`ClientError`], everything that can make a call fail.

use std::fmt;

use serde_json::Value;

/// An error answer of the Lambda API, as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: u16,
    /// The Lambda error type (`ResourceNotFoundException`, …), from `x-amzn-ErrorType`.
    pub error_type: String,
    /// The human-readable message from the body.
    pub message: String,
}

impl ApiError {
    /// True for the error GetFunction answers for a function that does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status == 404 || self.error_type == "ResourceNotFoundException"
    }

    /// Reads an error answer: the type from `x-amzn-ErrorType` (dropping any `:…` suffix AWS
    /// sometimes appends), else from the body's `__type`/`code`; the message from the body's
    /// `message`/`Message`, else the body text itself.
    pub fn from_response(status: u16, error_type_header: Option<&str>, body: &[u8]) -> Self {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let field = |names: &[&str]| {
            names.iter().find_map(|n| {
                json.as_ref()
                    .and_then(|j| j.get(*n))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
        };
        let error_type = error_type_header
            .map(|h| h.split(':').next().unwrap_or(h).trim().to_owned())
            .filter(|t| !t.is_empty())
            .or_else(|| field(&["__type", "code", "Code"]))
            .unwrap_or_else(|| format!("HTTP {status}"));
        let message = field(&["message", "Message"]).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut short: String = text.chars().take(300).collect();
            if short.len() < text.len() {
                short.push('…');
            }
            short
        });
        Self {
            status,
            error_type,
            message,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{} (HTTP {})", self.error_type, self.status)
        } else {
            write!(f, "{}: {}", self.error_type, self.message)
        }
    }
}

/// What can go wrong in a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a Lambda error.
    #[error("{error}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Api {
        error: ApiError,
        /// Set on authentication errors: which key was used, so the user can tell it is the
        /// wrong one.
        hint: Option<String>,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the Stoke server at {endpoint}")]
    Http {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    /// The endpoint URL cannot be used.
    #[error("invalid endpoint URL {url}: {reason}")]
    Endpoint { url: String, reason: String },
    /// The request could not be signed.
    #[error("signing the request failed: {0}")]
    Signing(String),
    /// A 2xx answer whose body is not what the API promises.
    #[error("unexpected answer from the server")]
    Decode(#[source] serde_json::Error),
}

impl ClientError {
    /// The Lambda error, when the server sent one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api { error, .. } => Some(error),
            _ => None,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_reads_the_lambda_error_shape() {
        let e = ApiError::from_response(
            404,
            Some("ResourceNotFoundException"),
            br#"{"Type":"User","message":"Function not found: arn:aws:lambda:us-east-1:1:function:x"}"#,
        );
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "ResourceNotFoundException: Function not found: arn:aws:lambda:us-east-1:1:function:x"
        );

        let e = ApiError::from_response(
            400,
            Some("ValidationException:http://internal.amazon.com/"),
            br#"{"Message":"1 validation error detected"}"#,
        );
        assert_eq!(e.error_type, "ValidationException");
        assert_eq!(e.message, "1 validation error detected");

        let e = ApiError::from_response(502, None, b"<html>\n bad   gateway </html>");
        assert_eq!(e.to_string(), "HTTP 502: <html> bad gateway </html>");
    }
}
