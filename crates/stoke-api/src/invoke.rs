//! Invoke: `POST /2015-03-31/functions/{name}/invocations`.
//!
//! Headers as Lambda's: `X-Amz-Invocation-Type` (`RequestResponse`, `DryRun`, `Event`: 202 once
//! the event's commit is on disk, with the request id its run's logs will carry), `X-Amz-Log-Type: Tail`, `X-Amz-Client-Context`. The answer carries
//! `X-Amz-Executed-Version`, `X-Amz-Function-Error: Unhandled` when the function failed (still
//! 200, with Lambda's error JSON), `X-Amz-Log-Result` for a tail, and the call's request id in
//! `x-amzn-RequestId` (the id its START/REPORT lines carry).
//!
//! In a cluster a synchronous call may be forwarded to the node holding the version's warm
//! sandboxes (see `forward`) and its answer relayed with the same status, headers and body.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use stoke_core::validate::Violations;
use stoke_core::{LambdaError, Outcome};
use stoke_engine::async_invoke::MAX_ASYNC_PAYLOAD;
use stoke_engine::route::Placement;
use stoke_engine::{EventRequest, InvokeRequest, InvokeResponse};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::functions::QualifierQuery;

/// Lambda's limit on a synchronous request's payload.
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// The model's limit on `X-Amz-Client-Context`.
const MAX_CLIENT_CONTEXT: usize = 3583;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError(LambdaError::InvalidParameterValue(format!(
                    "{name} is not valid text"
                )))
            })
        })
        .transpose()
}

/// Checks that a payload is JSON, as Lambda does before it runs anything.
pub fn check_payload(body: &[u8]) -> Result<(), LambdaError> {
    if body.len() > MAX_SYNC_PAYLOAD {
        return Err(LambdaError::RequestTooLarge(format!(
            "Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the InvokeFunction operation"
        )));
    }
    // serde_json does not check the UTF-8 of strings it skips: check the whole body first.
    if let Err(e) = std::str::from_utf8(body) {
        return Err(LambdaError::InvalidRequestContent(format!(
            "Could not parse request body into json: Could not parse payload into json: \
             Invalid UTF-8 start byte at position {}",
            e.valid_up_to()
        )));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(|_| ())
        .map_err(|e| {
            LambdaError::InvalidRequestContent(format!(
                "Could not parse request body into json: Could not parse payload into json: {e}"
            ))
        })
}

/// `POST /2015-03-31/functions/{name}/invocations`
pub async fn invoke(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let invocation_type = header(&headers, "x-amz-invocation-type")?.unwrap_or("RequestResponse");
    let log_type = header(&headers, "x-amz-log-type")?.unwrap_or("None");
    let client_context = header(&headers, "x-amz-client-context")?.map(str::to_owned);
    let mut v = Violations::new();
    v.one_of(
        "invocationType",
        invocation_type,
        &["Event", "RequestResponse", "DryRun"],
    );
    v.one_of("logType", log_type, &["None", "Tail"]);
    if let Some(c) = &client_context {
        v.length("clientContext", c, 0, MAX_CLIENT_CONTEXT);
    }
    v.into_result()?;

    if invocation_type == "Event" && body.len() > MAX_ASYNC_PAYLOAD {
        return Err(async_too_large("Invoke").into());
    }
    let payload = if body.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        check_payload(&body)?;
        body
    };

    match invocation_type {
        "DryRun" => {
            app.invoker
                .resolve(&caller.account, &name, q.qualifier.as_deref())
                .await?;
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        "Event" => {
            let request_id = app
                .asyncq
                .enqueue(
                    &caller.account,
                    EventRequest {
                        function: name,
                        qualifier: q.qualifier,
                        payload,
                        trace_id: header(&headers, "x-amzn-trace-id")?.map(str::to_owned),
                    },
                )
                .await?;
            return Ok(accepted(&request_id, Bytes::new()));
        }
        _ => {}
    }

    let req = InvokeRequest {
        function: name,
        qualifier: q.qualifier,
        payload,
        log_tail: log_type == "Tail",
        client_context,
        trace_id: header(&headers, "x-amzn-trace-id")?.map(str::to_owned),
        depth: 0,
        request_id: None,
        return_record: false,
    };
    let route = app
        .invoker
        .route(&caller.account, &req.function, req.qualifier.as_deref())
        .await?;
    // In a cluster, the call may run on the node with the version's warm sandboxes.
    if let Placement::Forward(to) = app.forward.placement(&app.invoker, &route)
        && let Some((out, warm)) = app.forward.call(&to, &route, &caller.account, &req).await?
    {
        if out.status() == StatusCode::OK {
            app.invoker.metrics().count_sync(true, warm);
        }
        return Ok(out);
    }
    let resp = app
        .invoker
        .invoke_routed(&caller.account, route, req)
        .await?;
    app.invoker.metrics().count_sync(false, resp.warm);
    Ok(answer(resp))
}

/// A call's answer as Lambda shapes it: 200, the function's output (or its error's JSON with
/// `X-Amz-Function-Error: Unhandled`), the executed version, the request id and the log tail.
pub(crate) fn answer(resp: InvokeResponse) -> Response {
    let (body, function_error) = match resp.outcome {
        Outcome::Success(b) => (b, false),
        Outcome::Error(e) => (e.body, true),
    };
    let mut out = (StatusCode::OK, body).into_response();
    let h = out.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&resp.executed_version) {
        h.insert("X-Amz-Executed-Version", v);
    }
    if let Ok(v) = HeaderValue::from_str(&resp.request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    if function_error {
        h.insert(
            "X-Amz-Function-Error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    if let Some(tail) = resp.log_tail
        && let Ok(v) = HeaderValue::from_str(&tail)
    {
        h.insert("X-Amz-Log-Result", v);
    }
    out
}

fn async_too_large(operation: &str) -> LambdaError {
    LambdaError::RequestTooLarge(format!(
        "Request must be smaller than {MAX_ASYNC_PAYLOAD} bytes for the {operation} operation"
    ))
}

/// 202 with the event's request id.
fn accepted(request_id: &str, body: Bytes) -> Response {
    let mut out = (StatusCode::ACCEPTED, body).into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        out.headers_mut().insert("x-amzn-RequestId", v);
    }
    out
}

/// `POST /2014-11-13/functions/{name}/invoke-async/`: the old InvokeAsync operation; answers
/// 202 `{"Status": 202}`.
pub async fn invoke_async(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.len() > MAX_ASYNC_PAYLOAD {
        return Err(async_too_large("InvokeAsync").into());
    }
    let payload = if body.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        check_payload(&body)?;
        body
    };
    let request_id = app
        .asyncq
        .enqueue(
            &caller.account,
            EventRequest {
                function: name,
                qualifier: None,
                payload,
                trace_id: header(&headers, "x-amzn-trace-id")?.map(str::to_owned),
            },
        )
        .await?;
    let mut out = accepted(&request_id, Bytes::from_static(br#"{"Status":202}"#));
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(out)
}
