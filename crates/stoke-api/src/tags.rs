//! TagResource, UntagResource and ListTags on a function's ARN.

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stoke_core::validate::Violations;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, LambdaJson};
use crate::wire::TagResourceIn;

/// `GET /2017-03-31/tags/{arn}`
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(arn): Path<String>,
) -> Result<Response, ApiError> {
    let tags = app.control.list_tags(&caller.account, &arn).await?;
    Ok(axum::Json(json!({ "Tags": tags })).into_response())
}

/// `POST /2017-03-31/tags/{arn}`
pub async fn tag(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(arn): Path<String>,
    LambdaJson(body): LambdaJson<TagResourceIn>,
) -> Result<Response, ApiError> {
    let mut v = Violations::new();
    v.not_null("tags", body.tags.as_ref());
    v.into_result()?;
    app.control
        .tag(&caller.account, &arn, body.tags.unwrap_or_default())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /2017-03-31/tags/{arn}?tagKeys=a&tagKeys=b`
pub async fn untag(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let keys: Vec<String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v.into_owned())
        .collect();
    let mut v = Violations::new();
    if keys.is_empty() {
        v.not_null::<()>("tagKeys", None);
    }
    v.into_result()?;
    app.control.untag(&caller.account, &arn, &keys).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
