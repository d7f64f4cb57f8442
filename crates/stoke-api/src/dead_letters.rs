//! Stoke's own API for the dead letters of async invocation (not part of Lambda's), signed
//! with SigV4 as the rest:
//! - `GET  /stoke/2026-11-01/dead-letters?After=ID&MaxItems=N`: list, oldest first;
//! - `GET  /stoke/2026-11-01/dead-letters/{id}`: one, with its payload and last response;
//! - `POST /stoke/2026-11-01/dead-letters/{id}/redrive`: back to the queue for another run.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use stoke_store::queue::DeadLetter;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

type Result<T, E = ApiError> = std::result::Result<T, E>;

fn letter_json(d: &DeadLetter, full: bool) -> Value {
    let l = &d.letter;
    let mut v = json!({
        "Id": d.id,
        "RequestId": l.request_id,
        "FunctionName": l.function_name,
        "Qualifier": l.qualifier,
        "Condition": l.condition,
        "ApproximateInvokeCount": l.runs,
        "EnqueuedAt": l.enqueued_ms,
        "FailedAt": l.failed_ms,
        "ErrorType": l.error_type,
    });
    if full && let Some(o) = v.as_object_mut() {
        o.insert("Payload".into(), json!(String::from_utf8_lossy(&l.payload)));
        o.insert(
            "Response".into(),
            json!(l.response.as_deref().map(String::from_utf8_lossy)),
        );
    }
    v
}

/// A dead letter's id; anything else names none.
fn parse_id(id: &str) -> Result<i64> {
    id.parse().map_err(|_| {
        ApiError(stoke_core::LambdaError::ResourceNotFound(format!(
            "Dead letter not found: {id}"
        )))
    })
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(rename = "After")]
    after: Option<i64>,
    #[serde(rename = "MaxItems")]
    max_items: Option<u32>,
}

pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let limit = q.max_items.unwrap_or(100).clamp(1, 1000);
    let letters = app
        .asyncq
        .dead_letters()
        .list(&caller.account, q.after.unwrap_or(0), limit)
        .await?;
    let items: Vec<Value> = letters.iter().map(|d| letter_json(d, false)).collect();
    Ok(axum::Json(json!({ "DeadLetters": items })).into_response())
}

pub async fn show(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let d = app.asyncq.dead_letters().get(&caller.account, id).await?;
    Ok(axum::Json(letter_json(&d, true)).into_response())
}

pub async fn redrive(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let request_id = app
        .asyncq
        .dead_letters()
        .redrive(&caller.account, id)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "RequestId": request_id })),
    )
        .into_response())
}
