//! Function logs through the CloudWatch Logs API (JSON 1.1, `X-Amz-Target:
//! Logs_20140328.<Operation>` on `POST /`), so `aws logs filter-log-events --log-group-name
//! /aws/lambda/NAME` and boto3's `logs` client read Stoke's logs; `stoke logs` uses it too.
//!
//! Operations: `FilterLogEvents` (`logGroupName`, `startTime`, `endTime`, `filterPattern` as a
//! plain substring, `limit`, `nextToken`; a page holds at most 1 MB of events, as CloudWatch's)
//! and `DescribeLogGroups`. Event ids are increasing
//! numbers, and `nextToken` is the id to continue after, so a follower can poll with the id of
//! the last line it printed.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use stoke_core::LambdaError;
use stoke_engine::logs::LogQuery;

use crate::AppState;
use crate::auth::Caller;

const GROUP_PREFIX: &str = "/aws/lambda/";

/// The most bytes of events one `FilterLogEvents` answers, as CloudWatch Logs: "as many log
/// events as can fit in 1 MB (up to 10,000 log events)"; each event counts its message's bytes
/// plus 26, and the first event comes whatever its size.
const PAGE_BYTES: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterLogEventsIn {
    log_group_name: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    limit: Option<i64>,
    next_token: Option<String>,
}

/// A JSON 1.1 error: the type in `__type`, as botocore's JSON parser reads it.
fn error(e: LambdaError) -> Response {
    // CloudWatch Logs answers its client errors, a missing log group among them, with 400.
    let status = if e.status() == 404 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST)
    };
    let type_name = match &e {
        LambdaError::Validation(_) | LambdaError::InvalidRequestContent(_) => {
            "InvalidParameterException"
        }
        other => other.type_name(),
    };
    let mut r = (
        status,
        axum::Json(json!({ "__type": type_name, "message": e.message() })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(type_name) {
        r.headers_mut().insert("x-amzn-ErrorType", v);
    }
    r
}

fn json11(v: serde_json::Value) -> Response {
    let mut r = axum::Json(v).into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r
}

/// `POST /` with `X-Amz-Target`.
pub async fn dispatch(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match target {
        "Logs_20140328.FilterLogEvents" => match serde_json::from_slice(&body) {
            Ok(req) => filter_log_events(&app, &caller, req).await,
            Err(e) => error(LambdaError::InvalidRequestContent(format!("{e}"))),
        },
        "Logs_20140328.DescribeLogGroups" => describe_log_groups(&app, &caller).await,
        other => error(LambdaError::UnknownOperation(format!(
            "Unknown operation {other:?}"
        ))),
    }
}

async fn filter_log_events(app: &AppState, caller: &Caller, req: FilterLogEventsIn) -> Response {
    let Some(group) = req.log_group_name else {
        return error(LambdaError::Validation("logGroupName is required".into()));
    };
    let Some(function) = group.strip_prefix(GROUP_PREFIX) else {
        return error(LambdaError::ResourceNotFound(
            "The specified log group does not exist.".into(),
        ));
    };
    if let Err(e) = app
        .control
        .get_function(&caller.account, function, None)
        .await
    {
        return match LambdaError::from(e) {
            LambdaError::ResourceNotFound(_) | LambdaError::Validation(_) => error(
                LambdaError::ResourceNotFound("The specified log group does not exist.".into()),
            ),
            other => error(other),
        };
    }
    let limit = req.limit.unwrap_or(10_000).clamp(1, 10_000);
    let after_id = match req.next_token.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return error(LambdaError::Validation(
                "The nextToken is not valid.".into(),
            ));
        }
    };
    let query = LogQuery {
        after_id,
        since_ms: req.start_time,
        until_ms: req.end_time,
        contains: req
            .filter_pattern
            .filter(|p| !p.is_empty())
            .map(|p| p.trim_matches('"').to_owned()),
        limit: u32::try_from(limit).unwrap_or(10_000),
        max_bytes: Some(PAGE_BYTES),
    };
    match app.logs.read(&caller.account, function, &query).await {
        Ok(page) => {
            let next = page
                .more
                .then(|| page.events.last().map(|e| e.id.to_string()));
            let events: Vec<_> = page
                .events
                .iter()
                .map(|e| {
                    json!({
                        "logStreamName": e.log_stream,
                        "timestamp": e.timestamp_ms,
                        "message": e.message,
                        "ingestionTime": e.timestamp_ms,
                        "eventId": e.id.to_string(),
                    })
                })
                .collect();
            let mut out = json!({ "events": events, "searchedLogStreams": [] });
            if let (Some(Some(n)), Some(o)) = (next, out.as_object_mut()) {
                o.insert("nextToken".into(), json!(n));
            }
            json11(out)
        }
        Err(e) => error(e.into()),
    }
}

async fn describe_log_groups(app: &AppState, caller: &Caller) -> Response {
    match app
        .control
        .list_functions(&caller.account, None, None, Some(10_000))
        .await
    {
        Ok(page) => {
            let region = app.control.region();
            let groups: Vec<_> = page
                .functions
                .iter()
                .map(|f| {
                    let name = format!("{GROUP_PREFIX}{}", f.name);
                    json!({
                        "logGroupName": name,
                        "arn": format!("arn:aws:logs:{region}:{}:log-group:{name}:*", f.account),
                        "storedBytes": 0,
                    })
                })
                .collect();
            json11(json!({ "logGroups": groups }))
        }
        Err(e) => error(e.into()),
    }
}
