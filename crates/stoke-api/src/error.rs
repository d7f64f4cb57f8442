//! Errors on the wire, in Lambda's shape.
//!
//! Every error leaves in AWS's shape for its type (`{"Type": "User", "Message": …}` for
//! `ResourceNotFoundException`, `{"Type": "User", "message": …}` for
//! `InvalidParameterValueException`, `{"message": …}` for `ValidationException`: see
//! [`stoke_core::error::wire_body`]) with the type in `x-amzn-ErrorType` (which boto3 reports
//! as `Error.Code`) and the status AWS uses. [`LambdaJson`] is the JSON
//! extractor of this crate: a body that does not parse gets the same shape
//! (`InvalidRequestContentException`), never a plain-text framework error. [`lambda_shape`]
//! puts whatever the framework answers by itself (a path that is not UTF-8, a query that does
//! not parse) into the same shape.
//!
//! The engine's own errors (`ControlError`) reach Lambda's types through the engine's one
//! mapping (`From<ControlError> for LambdaError` in `stoke-engine/src/error.rs`, which the async
//! queue and guests' host calls use too); this file only gives them the wire shape.

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
        shaped(status, e.type_name(), e.message(), e.reason())
    }
}

/// An error in Lambda's shape: `x-amzn-ErrorType` and the body AWS answers that type with.
fn shaped(
    status: StatusCode,
    type_name: &'static str,
    message: &str,
    reason: Option<&str>,
) -> Response {
    let body = stoke_core::error::wire_body(type_name, message, reason);
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert("x-amzn-ErrorType", HeaderValue::from_static(type_name));
    resp
}

/// 408 `RequestTimeoutException` (which the AWS SDKs retry): the body stopped arriving.
pub fn request_timeout(stall: std::time::Duration) -> Response {
    shaped(
        StatusCode::REQUEST_TIMEOUT,
        "RequestTimeoutException",
        &format!(
            "The request body did not arrive in time: no data for {} s.",
            stall.as_secs_f64()
        ),
        None,
    )
}

/// Answers a path that is not UTF-8 once percent-decoded with Lambda's shape, and puts any
/// error answer without `x-amzn-ErrorType` (a framework rejection: a path or a query that
/// does not deserialize) into Lambda's shape, keeping its status and its text.
pub async fn lambda_shape(req: Request, next: axum::middleware::Next) -> Response {
    if percent_encoding::percent_decode_str(req.uri().path())
        .decode_utf8()
        .is_err()
    {
        return ApiError(LambdaError::Validation(format!(
            "1 validation error detected: the request path is not valid UTF-8 once \
             percent-decoded: {}",
            req.uri().path()
        )))
        .into_response();
    }
    let resp = next.run(req).await;
    let status = resp.status();
    // STS's errors are XML in STS's own shape (see `sts.rs`).
    let xml = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/xml"));
    if !(status.is_client_error() || status.is_server_error())
        || resp.headers().contains_key("x-amzn-ErrorType")
        || xml
    {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let text = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("Bad request")
            .to_owned()
    } else {
        text
    };
    let type_name = match status.as_u16() {
        408 => "RequestTimeoutException",
        413 => "RequestEntityTooLargeException",
        415 => "UnsupportedMediaTypeException",
        429 => "TooManyRequestsException",
        s if s >= 500 => "ServiceException",
        _ => "ValidationException",
    };
    let mut out = shaped(status, type_name, &text, None);
    for (name, value) in &parts.headers {
        if name != http::header::CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
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

    #[tokio::test]
    async fn framework_rejections_get_lambdas_shape() {
        use tower::ServiceExt as _;
        let app = axum::Router::new()
            .route(
                "/f/{name}",
                axum::routing::get(
                    |axum::extract::Path(n): axum::extract::Path<u8>| async move { n.to_string() },
                ),
            )
            .layer(axum::middleware::from_fn(lambda_shape));
        for uri in ["/f/%FF", "/f/not-a-number"] {
            let req = http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), 400, "{uri}");
            assert_eq!(
                resp.headers()["x-amzn-ErrorType"],
                "ValidationException",
                "{uri}"
            );
            let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            // A ValidationException is the front door's: `message`, no `Type`.
            assert!(v.get("Type").is_none(), "{uri}: {v}");
            assert!(
                v["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{uri}"
            );
        }
    }

    #[tokio::test]
    async fn an_error_carries_its_type_header_and_lambdas_body() {
        let resp = ApiError(LambdaError::ResourceNotFound(
            "Function not found: x".into(),
        ))
        .into_response();
        assert_eq!(resp.status(), 404);
        assert_eq!(
            resp.headers()["x-amzn-ErrorType"],
            "ResourceNotFoundException"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Type": "User", "Message": "Function not found: x"})
        );
    }
}
