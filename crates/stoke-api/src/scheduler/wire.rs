//! Scheduler's JSON answers (timestamps as seconds since the epoch, as the REST-JSON protocol
//! carries them) and the list tokens: base64 of the last item answered, so a page continues
//! after it whatever was created or deleted meanwhile.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use stoke_engine::schedules::ScheduleGroup;
use stoke_engine::schedules::{ScheduleView, Schedules};

use super::error::SchedulerError;

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// CreateScheduleGroup's body (tags are accepted and not kept).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateGroupIn {
    pub tags: Option<Vec<Value>>,
    pub client_token: Option<String>,
}

/// GetSchedule's answer.
pub fn schedule(v: &ScheduleView) -> Value {
    let mut out = serde_json::to_value(&v.spec).unwrap_or_else(|_| json!({}));
    if let Some(o) = out.as_object_mut() {
        // Kept for a create's retry; not a member of GetSchedule's answer.
        o.remove("ClientToken");
        o.insert("Arn".into(), json!(v.arn));
        o.insert("Name".into(), json!(v.row.name));
        o.insert("GroupName".into(), json!(v.row.group));
        o.insert("State".into(), json!(v.row.state));
        o.insert("CreationDate".into(), json!(seconds(v.row.created_ms)));
        o.insert(
            "LastModificationDate".into(),
            json!(seconds(v.row.modified_ms)),
        );
        // Scheduler answers the defaults it applied.
        o.entry("ActionAfterCompletion").or_insert(json!("NONE"));
        o.entry("ScheduleExpressionTimezone")
            .or_insert(json!("UTC"));
        if let Some(t) = o.get_mut("Target").and_then(Value::as_object_mut) {
            let retry = t.entry("RetryPolicy").or_insert(json!({}));
            if let Some(r) = retry.as_object_mut() {
                r.entry("MaximumEventAgeInSeconds").or_insert(json!(86400));
                r.entry("MaximumRetryAttempts").or_insert(json!(185));
            }
        }
    }
    out
}

/// A ListSchedules page.
pub fn schedule_page(views: &[ScheduleView], more: bool) -> Value {
    let items: Vec<Value> = views
        .iter()
        .map(|v| {
            json!({
                "Arn": v.arn,
                "Name": v.row.name,
                "GroupName": v.row.group,
                "State": v.row.state,
                "CreationDate": seconds(v.row.created_ms),
                "LastModificationDate": seconds(v.row.modified_ms),
                "Target": {"Arn": v.spec.target.as_ref().and_then(|t| t.arn.clone())},
            })
        })
        .collect();
    let mut out = json!({ "Schedules": items });
    if more && let Some(last) = views.last() {
        let token = URL_SAFE_NO_PAD.encode(format!("{}/{}", last.row.group, last.row.name));
        out["NextToken"] = json!(token);
    }
    out
}

fn bad_token() -> SchedulerError {
    SchedulerError::Validation("The NextToken is not valid.".into())
}

fn decode(token: &str) -> Result<String, SchedulerError> {
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad_token())?;
    String::from_utf8(raw).map_err(|_| bad_token())
}

/// The (group, name) a ListSchedules token continues after.
pub fn parse_schedule_token(token: &str) -> Result<(String, String), SchedulerError> {
    let s = decode(token)?;
    let (g, n) = s.split_once('/').ok_or_else(bad_token)?;
    Ok((g.to_owned(), n.to_owned()))
}

/// The group name a ListScheduleGroups token continues after.
pub fn parse_group_token(token: &str) -> Result<String, SchedulerError> {
    decode(token)
}

/// GetScheduleGroup's answer (and a list's item).
pub fn group(s: &Schedules, g: &ScheduleGroup) -> Value {
    json!({
        "Arn": s.group_arn(&g.account, &g.name),
        "Name": g.name,
        "State": "ACTIVE",
        "CreationDate": seconds(g.created_ms),
        "LastModificationDate": seconds(g.modified_ms),
    })
}

/// A ListScheduleGroups page.
pub fn group_page(s: &Schedules, groups: &[ScheduleGroup], more: bool) -> Value {
    let items: Vec<Value> = groups.iter().map(|g| group(s, g)).collect();
    let mut out = json!({ "ScheduleGroups": items });
    if more && let Some(last) = groups.last() {
        out["NextToken"] = json!(URL_SAFE_NO_PAD.encode(&last.name));
    }
    out
}
