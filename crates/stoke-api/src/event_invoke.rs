//! The event-invoke configuration operations (Put, Get, Update, Delete,
//! ListFunctionEventInvokeConfigs) under `/2019-09-25/functions/{name}/event-invoke-config`,
//! with Lambda's shapes: `LastModified` in epoch seconds, the qualified `FunctionArn`, and
//! `DestinationConfig {OnSuccess {Destination}, OnFailure {Destination}}`.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use stoke_core::LambdaError;
use stoke_core::validate::Violations;
use stoke_engine::event_config::{DestinationInput, EventConfigInput};
use stoke_store::queue::EventInvokeConfig;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, LambdaJson};
use crate::functions::QualifierQuery;

type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug, Deserialize, Default)]
pub struct DestinationIn {
    #[serde(rename = "Destination")]
    destination: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub struct DestinationConfigIn {
    #[serde(rename = "OnSuccess")]
    on_success: Option<DestinationIn>,
    #[serde(rename = "OnFailure")]
    on_failure: Option<DestinationIn>,
}

#[derive(Debug, Deserialize, Default)]
pub struct EventInvokeConfigIn {
    #[serde(rename = "MaximumRetryAttempts")]
    maximum_retry_attempts: Option<i64>,
    #[serde(rename = "MaximumEventAgeInSeconds")]
    maximum_event_age_in_seconds: Option<i64>,
    #[serde(rename = "DestinationConfig")]
    destination_config: Option<DestinationConfigIn>,
}

impl From<EventInvokeConfigIn> for EventConfigInput {
    fn from(b: EventInvokeConfigIn) -> Self {
        Self {
            maximum_retry_attempts: b.maximum_retry_attempts,
            maximum_event_age_in_seconds: b.maximum_event_age_in_seconds,
            destination_config: b.destination_config.map(|d| DestinationInput {
                on_success: d.on_success.map(|x| x.destination),
                on_failure: d.on_failure.map(|x| x.destination),
            }),
        }
    }
}

fn destination(d: Option<&String>) -> Value {
    match d {
        Some(a) => json!({ "Destination": a }),
        None => json!({}),
    }
}

/// A configuration in Lambda's shape.
pub fn config_json(c: &EventInvokeConfig, arn: &str) -> Value {
    let mut v = json!({
        "LastModified": c.last_modified,
        "FunctionArn": arn,
        "DestinationConfig": {
            "OnSuccess": destination(c.on_success.as_ref()),
            "OnFailure": destination(c.on_failure.as_ref()),
        },
    });
    if let Some(o) = v.as_object_mut() {
        if let Some(n) = c.maximum_retry_attempts {
            o.insert("MaximumRetryAttempts".into(), json!(n));
        }
        if let Some(n) = c.maximum_event_age_seconds {
            o.insert("MaximumEventAgeInSeconds".into(), json!(n));
        }
    }
    v
}

async fn put_or_update(
    app: &AppState,
    caller: &Caller,
    name: &str,
    q: QualifierQuery,
    body: EventInvokeConfigIn,
    replace: bool,
) -> Result<Response> {
    let (c, arn) = app
        .asyncq
        .configs()
        .put(
            &caller.account,
            name,
            q.qualifier.as_deref(),
            &body.into(),
            replace,
        )
        .await?;
    Ok((StatusCode::OK, axum::Json(config_json(&c, &arn))).into_response())
}

/// `PUT …/event-invoke-config`: PutFunctionEventInvokeConfig (replaces).
pub async fn put(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
    LambdaJson(body): LambdaJson<EventInvokeConfigIn>,
) -> Result<Response> {
    put_or_update(&app, &caller, &name, q, body, true).await
}

/// `POST …/event-invoke-config`: UpdateFunctionEventInvokeConfig (merges).
pub async fn update(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
    LambdaJson(body): LambdaJson<EventInvokeConfigIn>,
) -> Result<Response> {
    put_or_update(&app, &caller, &name, q, body, false).await
}

/// `GET …/event-invoke-config`
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Response> {
    let (c, arn) = app
        .asyncq
        .configs()
        .get(&caller.account, &name, q.qualifier.as_deref())
        .await?;
    Ok(axum::Json(config_json(&c, &arn)).into_response())
}

/// `DELETE …/event-invoke-config`
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Response> {
    app.asyncq
        .configs()
        .delete(&caller.account, &name, q.qualifier.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<i64>,
}

/// `GET …/event-invoke-config/list`
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let mut v = Violations::new();
    if let Some(m) = q.max_items {
        v.range("maxItems", m, 1, 50);
    }
    v.into_result()?;
    let all = app.asyncq.configs().list(&caller.account, &name).await?;
    let start = match q.marker.as_deref() {
        None | Some("") => 0,
        Some(m) => m.parse::<usize>().map_err(|_| {
            ApiError(LambdaError::InvalidParameterValue(
                "The marker is not valid.".into(),
            ))
        })?,
    };
    let limit = q
        .max_items
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(50);
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|(c, arn)| config_json(c, arn))
        .collect();
    let mut body = json!({ "FunctionEventInvokeConfigs": page });
    if start + limit < all.len()
        && let Some(o) = body.as_object_mut()
    {
        o.insert("NextMarker".into(), json!((start + limit).to_string()));
    }
    Ok(axum::Json(body).into_response())
}
