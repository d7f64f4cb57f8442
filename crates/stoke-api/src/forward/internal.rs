//! The receiving side of the internal channel: `POST /stoke/internal/2026-11-01/invoke`, a call
//! another node of the cluster authenticated, authorized, resolved and forwarded here.
//!
//! Outside SigV4: a request is taken only with a valid MAC of the cluster key (see [`super::mac`]);
//! one without is answered 403 `MissingAuthenticationTokenException` before its body is read,
//! one with a wrong MAC (or for another node, or stale) 403 `InvalidSignatureException`, and
//! nothing runs. The body is read within the sync payload limit and the body budget (a
//! stalled body is cut as on the API). The call runs here, never forwarded again, and is
//! answered as a local call is, plus [`super::WARM_HEADER`].

use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use stoke_core::LambdaError;
use stoke_engine::InvokeRequest;

use super::mac::{ENVELOPE_HEADER, MAC_HEADER};
use crate::AppState;
use crate::body;
use crate::error::ApiError;
use crate::invoke::{MAX_SYNC_PAYLOAD, answer};

/// `POST /stoke/internal/2026-11-01/invoke`
pub async fn invoke(State(app): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(envelope), Some(tag), Some(key)) = (
        text(ENVELOPE_HEADER),
        text(MAC_HEADER),
        app.forward.key().cloned(),
    ) else {
        return ApiError(LambdaError::MissingAuthenticationToken(
            "Missing Authentication Token".into(),
        ))
        .into_response();
    };
    let (payload, _share) = match body::read(&app.bodies, body, MAX_SYNC_PAYLOAD).await {
        Ok(read) => read,
        Err(e) => {
            return ApiError(LambdaError::InvalidRequestContent(format!(
                "The forwarded request's body could not be read: {e}"
            )))
            .into_response();
        }
    };
    let e = match key.verify(
        &envelope,
        &tag,
        &payload,
        app.forward.me(),
        SystemTime::now(),
    ) {
        Ok(e) => e,
        Err(why) => {
            tracing::warn!(error = %why, "refused a forwarded call");
            return ApiError(LambdaError::InvalidSignature(format!(
                "The cluster's internal request was refused: {why}."
            )))
            .into_response();
        }
    };
    let run = async {
        let route = app
            .invoker
            .route_forwarded(&e.owner, &e.function, &e.version, e.qualifier.as_deref())
            .await?;
        app.invoker
            .invoke_routed(
                &e.caller,
                route,
                InvokeRequest {
                    function: e.function.clone(),
                    qualifier: e.qualifier.clone(),
                    payload,
                    log_tail: e.log_tail,
                    client_context: e.client_context.clone(),
                    trace_id: e.trace_id.clone(),
                    depth: 0,
                    request_id: None,
                    return_record: false,
                },
            )
            .await
    };
    match run.await {
        Ok(resp) => {
            let warm = resp.warm;
            let mut out = answer(resp);
            out.headers_mut()
                .insert(super::WARM_HEADER, super::warm_value(warm));
            out
        }
        Err(e) => ApiError(e).into_response(),
    }
}
