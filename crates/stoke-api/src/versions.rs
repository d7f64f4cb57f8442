//! Versions and aliases: PublishVersion, ListVersionsByFunction, CreateAlias, GetAlias,
//! UpdateAlias, DeleteAlias, ListAliases, and Stoke's own alias rollback
//! (`POST /stoke/2026-11-01/functions/{name}/aliases/{alias}/rollback`, used by
//! `stoke rollback`).
//!
//! As elsewhere, a handler decodes, calls the control plane and shapes the answer.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stoke_core::LambdaError;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, LambdaJson};
use crate::wire::{self, AliasIn, PublishVersionIn};

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// `POST /2015-03-31/functions/{name}/versions`
pub async fn publish(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    LambdaJson(body): LambdaJson<PublishVersionIn>,
) -> Result<Response> {
    let v = app
        .control
        .publish_version(
            &caller.account,
            &name,
            body.code_sha256.as_deref(),
            body.description.as_deref(),
            body.revision_id.as_deref(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(wire::configuration(&v, app.control.region())),
    )
        .into_response())
}

/// `GET /2015-03-31/functions/{name}/versions`
pub async fn list_versions(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let page = app
        .control
        .list_versions(
            &caller.account,
            &name,
            q.get("Marker").map(String::as_str),
            wire::capped_max_items(&q)?,
        )
        .await?;
    let region = app.control.region();
    let versions: Vec<_> = page
        .versions
        .iter()
        .map(|v| {
            // `$LATEST` is listed under its qualified ARN, as Lambda lists it.
            let q = v.is_latest().then_some("$LATEST");
            wire::list_item(crate::functions::qualified_configuration(
                v, &name, q, region,
            ))
        })
        .collect();
    let mut out = json!({ "Versions": versions });
    if let (Some(m), Some(o)) = (page.next_marker, out.as_object_mut()) {
        o.insert("NextMarker".into(), json!(m));
    }
    Ok(axum::Json(out).into_response())
}

/// `POST /2015-03-31/functions/{name}/aliases`
pub async fn create_alias(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    LambdaJson(body): LambdaJson<AliasIn>,
) -> Result<Response> {
    let alias_name = body.name.clone();
    let Some(alias_name) = alias_name else {
        return Err(LambdaError::Validation(
            "1 validation error detected: Value null at 'name' failed to satisfy constraint: \
             Member must not be null"
                .into(),
        )
        .into());
    };
    let a = app
        .control
        .create_alias(&caller.account, &name, body.input(alias_name))
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(wire::alias(&a, app.control.region())),
    )
        .into_response())
}

/// `GET /2015-03-31/functions/{name}/aliases`
pub async fn list_aliases(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let page = app
        .control
        .list_aliases(
            &caller.account,
            &name,
            q.get("FunctionVersion").map(String::as_str),
            q.get("Marker").map(String::as_str),
            wire::max_items(&q)?,
        )
        .await?;
    let region = app.control.region();
    let aliases: Vec<_> = page
        .aliases
        .iter()
        .map(|a| wire::alias(a, region))
        .collect();
    let mut out = json!({ "Aliases": aliases });
    if let (Some(m), Some(o)) = (page.next_marker, out.as_object_mut()) {
        o.insert("NextMarker".into(), json!(m));
    }
    Ok(axum::Json(out).into_response())
}

/// `GET /2015-03-31/functions/{name}/aliases/{alias}`
pub async fn get_alias(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response> {
    let a = app
        .control
        .get_alias(&caller.account, &name, &alias)
        .await?;
    Ok(axum::Json(wire::alias(&a, app.control.region())).into_response())
}

/// `PUT /2015-03-31/functions/{name}/aliases/{alias}`
pub async fn update_alias(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, alias)): Path<(String, String)>,
    LambdaJson(body): LambdaJson<AliasIn>,
) -> Result<Response> {
    let revision_id = body.revision_id.clone();
    let a = app
        .control
        .update_alias(
            &caller.account,
            &name,
            body.input(alias),
            revision_id.as_deref(),
        )
        .await?;
    Ok(axum::Json(wire::alias(&a, app.control.region())).into_response())
}

/// `DELETE /2015-03-31/functions/{name}/aliases/{alias}`
pub async fn delete_alias(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response> {
    app.control
        .delete_alias(&caller.account, &name, &alias)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /stoke/2026-11-01/functions/{name}/aliases/{alias}/rollback`
pub async fn rollback_alias(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response> {
    let a = app
        .control
        .rollback_alias(&caller.account, &name, &alias)
        .await?;
    Ok(axum::Json(wire::alias(&a, app.control.region())).into_response())
}
