//! The event source mapping operations under `/2015-03-31/event-source-mappings`
//! (CreateEventSourceMapping, GetEventSourceMapping, UpdateEventSourceMapping,
//! DeleteEventSourceMapping, ListEventSourceMappings) with Lambda's shapes: 202 for Create,
//! Update and Delete, `LastModified` in epoch seconds, a self-managed source as
//! `SelfManagedEventSource.Endpoints` with `Topics` (or `Queues`), and the mapping's ARN.
//! Nothing secret is answered: an endpoint's password shows as `****`, a `BASIC_AUTH` as the
//! mapping's own secret ARN.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use stoke_engine::sources::access::redact_url;
use stoke_engine::sources::rules::{AMQP_URL, MappingInput};
use stoke_store::mappings::Mapping;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, LambdaJson};

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// A mapping in Lambda's shape (`EventSourceMappingConfiguration`).
pub fn mapping_json(m: &Mapping, region: &str) -> Value {
    let mut arn = stoke_core::ids::function_arn(region, &m.account, &m.function_name);
    if let Some(q) = &m.qualifier {
        arn = format!("{arn}:{q}");
    }
    let mut endpoints = serde_json::Map::new();
    let shown: Vec<String> = m.endpoints.iter().map(|u| redact_url(u)).collect();
    endpoints.insert(m.endpoint_kind.clone(), json!(shown));
    let mut v = json!({
        "UUID": m.uuid,
        "EventSourceMappingArn": format!(
            "arn:aws:lambda:{region}:{}:event-source-mapping:{}", m.account, m.uuid
        ),
        "FunctionArn": arn,
        "StartingPosition": m.starting_position,
        "BatchSize": m.batch_size,
        "MaximumBatchingWindowInSeconds": m.batching_window_seconds,
        "SelfManagedEventSource": {"Endpoints": endpoints},
        "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": m.consumer_group},
        "SourceAccessConfigurations": m.access.iter()
            .map(|a| json!({"Type": a.kind, "URI": a.uri}))
            .collect::<Vec<_>>(),
        "FunctionResponseTypes": if m.report_batch_item_failures {
            json!(["ReportBatchItemFailures"])
        } else {
            json!([])
        },
        "MaximumRetryAttempts": m.maximum_retry_attempts.unwrap_or(-1),
        "MaximumRecordAgeInSeconds": m.maximum_record_age_seconds.unwrap_or(-1),
        "BisectBatchOnFunctionError": m.bisect_batch_on_function_error.unwrap_or(false),
        "DestinationConfig": {
            "OnFailure": match &m.on_failure {
                Some(d) => json!({"Destination": d}),
                None => json!({}),
            },
        },
        "LastModified": m.last_modified,
        "LastProcessingResult": m.last_processing_result,
        "State": m.state,
        "StateTransitionReason": m.state_transition_reason,
    });
    if let Some(o) = v.as_object_mut() {
        let list = if m.endpoint_kind == AMQP_URL {
            "Queues"
        } else {
            "Topics"
        };
        o.insert(list.into(), json!([m.topic]));
        if !m.filters.is_empty() {
            o.insert(
                "FilterCriteria".into(),
                json!({"Filters": m.filters.iter().map(|p| json!({"Pattern": p})).collect::<Vec<_>>()}),
            );
        }
        if let Some(n) = m.maximum_concurrency {
            o.insert("ScalingConfig".into(), json!({"MaximumConcurrency": n}));
        }
    }
    v
}

fn answer(app: &AppState, status: StatusCode, m: &Mapping) -> Response {
    (status, axum::Json(mapping_json(m, app.mappings.region()))).into_response()
}

/// `POST /2015-03-31/event-source-mappings`
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    LambdaJson(body): LambdaJson<MappingInput>,
) -> Result<Response> {
    let m = app.mappings.create(&caller.account, &body).await?;
    Ok(answer(&app, StatusCode::ACCEPTED, &m))
}

/// `GET /2015-03-31/event-source-mappings/{UUID}`
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> Result<Response> {
    let m = app.mappings.get(&caller.account, &uuid).await?;
    Ok(answer(&app, StatusCode::OK, &m))
}

/// `PUT /2015-03-31/event-source-mappings/{UUID}`
pub async fn update(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
    LambdaJson(body): LambdaJson<MappingInput>,
) -> Result<Response> {
    let m = app.mappings.update(&caller.account, &uuid, &body).await?;
    Ok(answer(&app, StatusCode::ACCEPTED, &m))
}

/// `DELETE /2015-03-31/event-source-mappings/{UUID}`
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
) -> Result<Response> {
    let m = app.mappings.delete(&caller.account, &uuid).await?;
    Ok(answer(&app, StatusCode::ACCEPTED, &m))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(rename = "FunctionName")]
    function_name: Option<String>,
    #[serde(rename = "EventSourceArn")]
    event_source_arn: Option<String>,
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<i64>,
}

/// `GET /2015-03-31/event-source-mappings`
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let page = app
        .mappings
        .list(
            &caller.account,
            q.function_name.as_deref(),
            q.event_source_arn.as_deref(),
            q.marker.as_deref(),
            q.max_items,
        )
        .await?;
    let region = app.mappings.region();
    let mut body = json!({
        "EventSourceMappings": page.mappings.iter().map(|m| mapping_json(m, region)).collect::<Vec<_>>(),
    });
    if let (Some(next), Some(o)) = (page.next_marker, body.as_object_mut()) {
        o.insert("NextMarker".into(), json!(next));
    }
    Ok(axum::Json(body).into_response())
}
