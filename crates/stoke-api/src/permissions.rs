//! Resource-based policies: AddPermission (`POST …/functions/{name}/policy`), GetPolicy
//! (`GET …/policy`) and RemovePermission (`DELETE …/policy/{StatementId}`), each with Lambda's
//! `Qualifier` (the version's or alias's own policy) and `RevisionId`.
//!
//! The handlers decode and shape; what a policy may hold and who may change or read it is the
//! control plane's (`stoke-engine`'s `control/permissions.rs`).

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use stoke_core::policy::PermissionInput;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, LambdaJson};
use crate::functions::QualifierQuery;

/// AddPermission's body, as boto3 sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddPermissionIn {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    source_arn: Option<String>,
    source_account: Option<String>,
    #[serde(rename = "PrincipalOrgID")]
    principal_org_id: Option<String>,
    event_source_token: Option<String>,
    function_url_auth_type: Option<String>,
    invoked_via_function_url: Option<bool>,
    revision_id: Option<String>,
}

impl From<AddPermissionIn> for PermissionInput {
    fn from(b: AddPermissionIn) -> Self {
        PermissionInput {
            statement_id: b.statement_id,
            action: b.action,
            principal: b.principal,
            source_arn: b.source_arn,
            source_account: b.source_account,
            principal_org_id: b.principal_org_id,
            event_source_token: b.event_source_token,
            function_url_auth_type: b.function_url_auth_type,
            invoked_via_function_url: b.invoked_via_function_url,
            revision_id: b.revision_id,
        }
    }
}

/// RemovePermission's query.
#[derive(Debug, Deserialize)]
pub struct RemoveQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
    #[serde(rename = "RevisionId")]
    revision_id: Option<String>,
}

/// `POST /2015-03-31/functions/{name}/policy`: 201 with the statement added.
pub async fn add(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
    LambdaJson(body): LambdaJson<AddPermissionIn>,
) -> Result<Response, ApiError> {
    let statement = app
        .control
        .add_permission(&caller.account, &name, q.qualifier.as_deref(), body.into())
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "Statement": statement })),
    )
        .into_response())
}

/// `GET /2015-03-31/functions/{name}/policy`
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Response, ApiError> {
    let p = app
        .control
        .get_policy(&caller.account, &name, q.qualifier.as_deref())
        .await?;
    Ok(axum::Json(json!({ "Policy": p.document, "RevisionId": p.revision_id })).into_response())
}

/// `DELETE /2015-03-31/functions/{name}/policy/{sid}`: 204.
pub async fn remove(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, sid)): Path<(String, String)>,
    Query(q): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    app.control
        .remove_permission(
            &caller.account,
            &name,
            q.qualifier.as_deref(),
            &sid,
            q.revision_id.as_deref(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
