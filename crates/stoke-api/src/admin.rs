//! Stoke's admin API (not part of Lambda's): accounts, their access keys and their limits, and
//! the cluster's nodes.
//! Signed with SigV4 as the rest; only the admin account (the default account the first start
//! made) may call it, any other gets `AccessDeniedException` (403).
//!
//! - `POST   /stoke/admin/2026-11-01/accounts` `{"AccountName"}`: a new account and its first
//!   key (the only answer that carries a secret, besides CreateAccessKey's);
//! - `GET    /stoke/admin/2026-11-01/accounts`: every account;
//! - `GET    /stoke/admin/2026-11-01/accounts/{account}`: one (by id or name), with its keys
//!   (no secrets), limits and usage;
//! - `DELETE /stoke/admin/2026-11-01/accounts/{account}`: refused while it owns functions;
//! - `PUT    /stoke/admin/2026-11-01/accounts/{account}/limits` `{"ConcurrentExecutions"}`
//!   (`null`: back to the server's default);
//! - `POST   /stoke/admin/2026-11-01/accounts/{account}/keys`: a new key (at most 2);
//! - `GET    /stoke/admin/2026-11-01/accounts/{account}/keys`;
//! - `DELETE /stoke/admin/2026-11-01/accounts/{account}/keys/{key}`: revoked at once;
//! - `GET    /stoke/admin/2026-11-01/nodes`: the nodes of the cluster (the node registry),
//!   living or dead, with their warm sandboxes and load (`stoke nodes`).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use stoke_core::LambdaError;
use stoke_core::validate::Violations;
use stoke_store::{AccessKey, Account, KeyInfo};

use crate::AppState;
use crate::auth::{Caller, Principal};
use crate::error::{ApiError, LambdaJson};

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Refuses every caller but the admin account's own keys, in AWS's words: another account, or
/// a function's session credentials (even one of the admin's functions: code must not manage
/// accounts).
async fn admin_only(app: &AppState, caller: &Caller, action: &str) -> Result<()> {
    admin_only_to(app, caller, action, "manage accounts").await
}

/// [`admin_only`], saying what only the admin may do (`what`).
async fn admin_only_to(app: &AppState, caller: &Caller, action: &str, what: &str) -> Result<()> {
    let admin = app.accounts.admin().await?;
    if &caller.account == admin && caller.principal == Principal::AccountKey {
        return Ok(());
    }
    Err(ApiError(LambdaError::AccessDenied(format!(
        "User: {} is not authorized to perform: stoke:{action} because only the admin \
         account may {what}",
        crate::sts::identity(caller).0
    ))))
}

fn account_json(a: &Account, default_limit: u32) -> Value {
    json!({
        "AccountId": a.id.as_str(),
        "AccountName": a.name,
        "Admin": a.is_admin,
        "CreatedAt": a.created_at,
        "ConcurrentExecutions": a.concurrency.unwrap_or(default_limit),
        "ConcurrencyIsDefault": a.concurrency.is_none(),
    })
}

fn key_json(k: &KeyInfo) -> Value {
    json!({
        "AccessKeyId": k.access_key_id,
        "AccountId": k.account.as_str(),
        "Status": "Active",
        "CreateDate": k.created_at,
    })
}

fn secret_json(k: &AccessKey) -> Value {
    json!({
        "AccessKeyId": k.access_key_id,
        "SecretAccessKey": k.secret,
        "AccountId": k.account.as_str(),
        "Status": "Active",
    })
}

fn default_limit(app: &AppState) -> u32 {
    app.accounts.limits().default_concurrency()
}

#[derive(Debug, Deserialize, Default)]
pub struct CreateIn {
    #[serde(rename = "AccountName")]
    name: Option<String>,
}

/// CreateAccount.
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    LambdaJson(body): LambdaJson<CreateIn>,
) -> Result<Response> {
    admin_only(&app, &caller, "CreateAccount").await?;
    let mut v = Violations::new();
    v.not_null("accountName", body.name.as_ref());
    v.into_result()?;
    let (account, key) = app
        .accounts
        .create(body.name.as_deref().unwrap_or_default())
        .await?;
    tracing::info!(account = %account.id, name = %account.name, "created an account");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "Account": account_json(&account, default_limit(&app)),
            "AccessKey": secret_json(&key),
        })),
    )
        .into_response())
}

/// ListAccounts.
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    admin_only(&app, &caller, "ListAccounts").await?;
    let d = default_limit(&app);
    let all: Vec<Value> = app
        .accounts
        .list()
        .await?
        .iter()
        .map(|a| account_json(a, d))
        .collect();
    Ok(axum::Json(json!({ "Accounts": all })).into_response())
}

/// GetAccount: the account, its keys, its limits and usage (as GetAccountSettings counts
/// them for the account itself).
pub async fn show(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(account): Path<String>,
) -> Result<Response> {
    admin_only(&app, &caller, "GetAccount").await?;
    let a = app.accounts.find(&account).await?;
    let keys: Vec<Value> = app
        .accounts
        .list_keys(a.id.as_str())
        .await?
        .iter()
        .map(key_json)
        .collect();
    let mut doc = crate::functions::settings_of(&app, &a.id).await?;
    if let Some(o) = doc.as_object_mut() {
        o.insert("Account".into(), account_json(&a, default_limit(&app)));
        o.insert("AccessKeys".into(), Value::Array(keys));
    }
    Ok(axum::Json(doc).into_response())
}

/// DeleteAccount.
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(account): Path<String>,
) -> Result<Response> {
    admin_only(&app, &caller, "DeleteAccount").await?;
    let gone = app.accounts.delete(&account).await?;
    tracing::info!(account = %gone.id, name = %gone.name, "deleted an account");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, Default)]
pub struct LimitsIn {
    /// Absent or `null`: back to the server's default.
    #[serde(rename = "ConcurrentExecutions")]
    concurrency: Option<i64>,
}

/// PutAccountLimits: the account's concurrency. Refused if the account's reservations would
/// leave less than Lambda's minimum unreserved.
pub async fn set_limits(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(account): Path<String>,
    LambdaJson(body): LambdaJson<LimitsIn>,
) -> Result<Response> {
    admin_only(&app, &caller, "PutAccountLimits").await?;
    let mut v = Violations::new();
    if let Some(n) = body.concurrency {
        v.range("concurrentExecutions", n, 1, 100_000);
    }
    v.into_result()?;
    let a = app.accounts.find(&account).await?;
    let limit = body.concurrency.and_then(|n| u32::try_from(n).ok());
    let effective = limit.unwrap_or_else(|| default_limit(&app));
    let reserved = app.control.reserved_concurrency_total(&a.id, None).await?;
    let minimum = app.accounts.limits().min_unreserved(effective);
    if i64::from(effective) - reserved < i64::from(minimum) {
        return Err(ApiError(LambdaError::InvalidParameterValue(format!(
            "Specified ConcurrentExecutions for account decreases account's \
             UnreservedConcurrentExecution below its minimum value of [{minimum}]: its \
             functions reserve {reserved}."
        ))));
    }
    app.accounts.set_concurrency(&a.id, limit).await?;
    let a = app.accounts.find(a.id.as_str()).await?;
    Ok(axum::Json(json!({ "Account": account_json(&a, default_limit(&app)) })).into_response())
}

/// CreateAccessKey.
pub async fn create_key(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(account): Path<String>,
) -> Result<Response> {
    admin_only(&app, &caller, "CreateAccessKey").await?;
    let key = app.accounts.create_key(&account).await?;
    tracing::info!(account = %key.account, access_key_id = %key.access_key_id, "created an access key");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "AccessKey": secret_json(&key) })),
    )
        .into_response())
}

/// ListAccessKeys.
pub async fn list_keys(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(account): Path<String>,
) -> Result<Response> {
    admin_only(&app, &caller, "ListAccessKeys").await?;
    let keys: Vec<Value> = app
        .accounts
        .list_keys(&account)
        .await?
        .iter()
        .map(key_json)
        .collect();
    Ok(axum::Json(json!({ "AccessKeys": keys })).into_response())
}

/// DeleteAccessKey: the key is refused from the next request on.
pub async fn revoke_key(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((account, key)): Path<(String, String)>,
) -> Result<Response> {
    admin_only(&app, &caller, "DeleteAccessKey").await?;
    app.accounts.revoke_key(&account, &key).await?;
    tracing::info!(access_key_id = %key, "revoked an access key");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// ListNodes: every node of the registry, in node id order, `alive` or `dead` as the node
/// timeout says.
pub async fn list_nodes(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    admin_only_to(&app, &caller, "ListNodes", "see the cluster's nodes").await?;
    let me = &app.nodes.membership().me().node_id;
    let nodes: Vec<Value> = app
        .nodes
        .list()
        .await
        .map_err(stoke_engine::error::ControlError::from)?
        .iter()
        .map(|n| {
            let state = if n.alive { "alive" } else { "dead" };
            json!({
                "NodeId": n.record.node_id,
                "Address": n.record.address,
                "State": state,
                "Warm": n.record.warm,
                "Load": n.record.load,
                "StartedMs": n.record.started_ms,
                "HeartbeatMs": n.record.heartbeat_ms,
                "HeartbeatAgeMs": n.heartbeat_age_ms,
                "Self": &n.record.node_id == me,
            })
        })
        .collect();
    let timeout = u64::try_from(app.nodes.timeout().as_millis()).unwrap_or(u64::MAX);
    Ok(axum::Json(json!({ "Nodes": nodes, "NodeTimeoutMs": timeout })).into_response())
}
