//! Reserved concurrency: PutFunctionConcurrency, GetFunctionConcurrency and
//! DeleteFunctionConcurrency, at Lambda's paths. The invoker admits at most
//! `ReservedConcurrentExecutions` calls of the function at once (0 throttles every call).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use stoke_core::validate::Violations;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, LambdaJson};

type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug, Deserialize, Default)]
pub struct ConcurrencyIn {
    #[serde(rename = "ReservedConcurrentExecutions")]
    reserved: Option<i64>,
}

/// `PUT /2017-10-31/functions/{name}/concurrency`
pub async fn put(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    LambdaJson(body): LambdaJson<ConcurrencyIn>,
) -> Result<Response> {
    let mut v = Violations::new();
    v.not_null("reservedConcurrentExecutions", body.reserved.as_ref());
    if let Some(n) = body.reserved {
        v.range("reservedConcurrentExecutions", n, 0, i64::from(u32::MAX));
    }
    v.into_result()?;
    let n = u32::try_from(body.reserved.unwrap_or(0)).unwrap_or(0);
    app.control
        .set_reserved_concurrency(&caller.account, &name, Some(n))
        .await?;
    Ok(axum::Json(json!({ "ReservedConcurrentExecutions": n })).into_response())
}

/// `GET /2019-09-30/functions/{name}/concurrency`
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response> {
    let f = app
        .control
        .get_function_as(
            &caller.account,
            &name,
            None,
            "lambda:GetFunctionConcurrency",
        )
        .await?;
    let body = match f.reserved_concurrency {
        Some(n) => json!({ "ReservedConcurrentExecutions": n }),
        None => json!({}),
    };
    Ok(axum::Json(body).into_response())
}

/// `DELETE /2017-10-31/functions/{name}/concurrency`
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response> {
    app.control
        .set_reserved_concurrency(&caller.account, &name, None)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
