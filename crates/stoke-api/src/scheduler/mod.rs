//! EventBridge Scheduler's API (REST-JSON, signing name `scheduler`) at its own paths on the
//! same endpoint, so boto3's `scheduler` client works unchanged: CreateSchedule, GetSchedule,
//! UpdateSchedule, DeleteSchedule, ListSchedules (`/schedules[/{Name}]`) and
//! CreateScheduleGroup, GetScheduleGroup, DeleteScheduleGroup, ListScheduleGroups
//! (`/schedule-groups[/{Name}]`). A target is a Lambda function of the caller's account; a
//! tick enqueues it as an async invocation (the engine's `schedules`).
//!
//! - [`check`]: the model's constraints and the rules beyond them.
//! - [`error`]: Scheduler's error shape.
//! - [`wire`]: the answers' JSON and the page tokens.

pub mod check;
pub mod error;
pub mod wire;

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use stoke_core::validate::Violations;
use stoke_engine::schedules::ScheduleFilter;
use stoke_engine::schedules::ScheduleSpec;

use crate::AppState;
use crate::auth::Caller;
use error::SchedulerError;

type Result<T, E = SchedulerError> = std::result::Result<T, E>;

/// The most a list answers (the model's `MaxResults` maximum) and its default.
const MAX_RESULTS: u32 = 100;

fn parse_body(body: &[u8]) -> Result<ScheduleSpec> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        SchedulerError::Validation(format!("Could not parse request body into json: {e}"))
    })
}

fn violations(v: Violations) -> Result<()> {
    v.into_result()
        .map_err(|e| SchedulerError::Validation(e.message().to_owned()))
}

/// `MaxResults` of a list, checked as the model says (1 to 100).
fn max_results(q: &HashMap<String, String>, v: &mut Violations) -> u32 {
    let Some(raw) = q.get("MaxResults") else {
        return MAX_RESULTS;
    };
    match raw.parse::<i64>() {
        Ok(n) => {
            v.range("maxResults", n, 1, i64::from(MAX_RESULTS));
            u32::try_from(n.clamp(1, i64::from(MAX_RESULTS))).unwrap_or(MAX_RESULTS)
        }
        Err(_) => {
            v.range("maxResults", i64::MIN, 1, i64::from(MAX_RESULTS));
            MAX_RESULTS
        }
    }
}

/// `POST /schedules/{Name}`
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let spec = parse_body(&body)?;
    check::schedule(&caller.account, app.schedules.region(), &name, &spec)?;
    let arn = app.schedules.create(&caller.account, &name, &spec).await?;
    Ok(axum::Json(json!({ "ScheduleArn": arn })).into_response())
}

/// `PUT /schedules/{Name}`
pub async fn update(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let spec = parse_body(&body)?;
    check::schedule(&caller.account, app.schedules.region(), &name, &spec)?;
    let arn = app.schedules.update(&caller.account, &name, &spec).await?;
    Ok(axum::Json(json!({ "ScheduleArn": arn })).into_response())
}

/// The `groupName` query member of GetSchedule and DeleteSchedule, checked with the name.
fn name_and_group(name: &str, q: &HashMap<String, String>) -> Result<Option<String>> {
    let mut v = Violations::new();
    check::name(&mut v, "name", name);
    let group = q.get("groupName").cloned();
    if let Some(g) = &group {
        check::name(&mut v, "groupName", g);
    }
    check::client_token(&mut v, q.get("clientToken").map(String::as_str));
    violations(v)?;
    Ok(group)
}

/// `GET /schedules/{Name}`
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let group = name_and_group(&name, &q)?;
    let view = app
        .schedules
        .get(&caller.account, group.as_deref(), &name)
        .await?;
    Ok(axum::Json(wire::schedule(&view)).into_response())
}

/// `DELETE /schedules/{Name}`
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let group = name_and_group(&name, &q)?;
    app.schedules
        .delete(&caller.account, group.as_deref(), &name)
        .await?;
    Ok(axum::Json(json!({})).into_response())
}

/// `GET /schedules`
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let mut v = Violations::new();
    if let Some(g) = q.get("ScheduleGroup") {
        check::name(&mut v, "groupName", g);
    }
    if let Some(p) = q.get("NamePrefix") {
        check::name(&mut v, "namePrefix", p);
    }
    if let Some(s) = q.get("State") {
        v.one_of("state", s, &["ENABLED", "DISABLED"]);
    }
    if let Some(t) = q.get("NextToken") {
        v.length("nextToken", t, 1, 2048);
    }
    let limit = max_results(&q, &mut v);
    violations(v)?;
    let after = q
        .get("NextToken")
        .map(|t| wire::parse_schedule_token(t))
        .transpose()?;
    let filter = ScheduleFilter {
        group: q.get("ScheduleGroup").cloned(),
        name_prefix: q.get("NamePrefix").cloned(),
        state: q.get("State").cloned(),
        after,
        limit,
    };
    let (views, more) = app.schedules.list(&caller.account, filter).await?;
    Ok(axum::Json(wire::schedule_page(&views, more)).into_response())
}

/// `POST /schedule-groups/{Name}`
pub async fn create_group(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let raw: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body
    };
    let input: wire::CreateGroupIn = serde_json::from_slice(raw).map_err(|e| {
        SchedulerError::Validation(format!("Could not parse request body into json: {e}"))
    })?;
    let mut v = Violations::new();
    check::name(&mut v, "name", &name);
    if let Some(tags) = &input.tags {
        v.list_length("tags", "[…]", tags.len(), 0, 200);
    }
    check::client_token(&mut v, input.client_token.as_deref());
    violations(v)?;
    let arn = app.schedules.create_group(&caller.account, &name).await?;
    Ok(axum::Json(json!({ "ScheduleGroupArn": arn })).into_response())
}

/// `GET /schedule-groups/{Name}`
pub async fn get_group(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response> {
    let mut v = Violations::new();
    check::name(&mut v, "name", &name);
    violations(v)?;
    let g = app.schedules.get_group(&caller.account, &name).await?;
    Ok(axum::Json(wire::group(&app.schedules, &g)).into_response())
}

/// `DELETE /schedule-groups/{Name}`
pub async fn delete_group(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let mut v = Violations::new();
    check::name(&mut v, "name", &name);
    check::client_token(&mut v, q.get("clientToken").map(String::as_str));
    violations(v)?;
    app.schedules.delete_group(&caller.account, &name).await?;
    Ok(axum::Json(json!({})).into_response())
}

/// `GET /schedule-groups`
pub async fn list_groups(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let mut v = Violations::new();
    if let Some(p) = q.get("NamePrefix") {
        check::name(&mut v, "namePrefix", p);
    }
    if let Some(t) = q.get("NextToken") {
        v.length("nextToken", t, 1, 2048);
    }
    let limit = max_results(&q, &mut v);
    violations(v)?;
    let after = q
        .get("NextToken")
        .map(|t| wire::parse_group_token(t))
        .transpose()?;
    let (groups, more) = app
        .schedules
        .list_groups(
            &caller.account,
            q.get("NamePrefix").map(String::as_str),
            after.as_deref(),
            limit,
        )
        .await?;
    Ok(axum::Json(wire::group_page(&app.schedules, &groups, more)).into_response())
}
