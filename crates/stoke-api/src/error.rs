//! Errors on the wire, in Lambda's shape.
//!
//! Every error leaves as `{"Type": "User", "message": …}` with the type in `x-amzn-ErrorType`
//! (which boto3 reports as `Error.Code`) and the status AWS uses. [`LambdaJson`] is the JSON
//! extractor of this crate: a body that does not parse gets the same shape
//! (`InvalidRequestContentException`), never a plain-text framework error.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use stoke_core::LambdaError;
use stoke_engine::ControlError;

/// An error answered to an API caller.
#[derive(Debug)]
pub struct ApiError(pub LambdaError);

impl From<LambdaError> for ApiError {
    fn from(e: LambdaError) -> Self {
        Self(e)
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = serde_json::json!({ "Type": e.fault().to_string(), "message": e.message() });
        if let (Some(reason), Some(o)) = (e.reason(), body.as_object_mut()) {
            o.insert("Reason".into(), serde_json::json!(reason));
        }
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(e.type_name()));
        resp
    }
}

/// A JSON request body; parse failures are answered in Lambda's shape.
#[derive(Debug)]
pub struct LambdaJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for LambdaJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError(LambdaError::InvalidRequestContent(format!(
                "Could not read the request body: {e}"
            )))
        })?;
        parse_json(&bytes).map(LambdaJson)
    }
}

/// Parses a JSON body; an empty body is an empty object, as AWS takes it.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError(LambdaError::InvalidRequestContent(format!(
            "Could not parse request body into json: {e}"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_is_invalid_request_content() {
        let e = parse_json::<serde_json::Value>(b"{not json").unwrap_err();
        assert_eq!(e.0.type_name(), "InvalidRequestContentException");
        assert!(
            e.0.message()
                .starts_with("Could not parse request body into json")
        );
    }

    #[test]
    fn an_error_carries_its_type_header_and_lambdas_body() {
        let resp = ApiError(LambdaError::ResourceNotFound(
            "Function not found: x".into(),
        ))
        .into_response();
        assert_eq!(resp.status(), 404);
        assert_eq!(
            resp.headers()["x-amzn-ErrorType"],
            "ResourceNotFoundException"
        );
    }
}
