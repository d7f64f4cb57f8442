//! The checks of EventBridge Scheduler's model on CreateSchedule and UpdateSchedule (lengths,
//! patterns, ranges, enums, required members, all reported in one `ValidationException` as
//! AWS reports them), then the rules the model does not say: the expression and time zone
//! parse, a flexible window has its maximum, the dates are in order, the target is a Lambda
//! function of the caller's account.

use stoke_core::AccountId;
use stoke_core::schedule::{Expression, time_zone};
use stoke_core::validate::{Violations, patterns};
use stoke_engine::event_config::parse_function_destination;
use stoke_engine::schedules::ScheduleSpec;

use super::error::SchedulerError;

/// A schedule or group name (`Name`, `GroupName`, `NamePrefix`).
pub fn name(v: &mut Violations, member: &str, value: &str) {
    if v.length(member, value, 1, 64) {
        v.pattern(member, value, patterns::SCHEDULE_NAME);
    }
}

/// A `ClientToken`.
pub fn client_token(v: &mut Violations, value: Option<&str>) {
    if let Some(t) = value
        && v.length("clientToken", t, 1, 64)
    {
        v.pattern("clientToken", t, patterns::CLIENT_TOKEN);
    }
}

fn model(v: &mut Violations, schedule_name: &str, s: &ScheduleSpec) {
    name(v, "name", schedule_name);
    if let Some(g) = &s.group_name {
        name(v, "groupName", g);
    }
    v.not_null("scheduleExpression", s.schedule_expression.as_ref());
    if let Some(e) = &s.schedule_expression {
        v.length("scheduleExpression", e, 1, 256);
    }
    if let Some(d) = &s.description {
        v.length("description", d, 0, 512);
    }
    if let Some(tz) = &s.schedule_expression_timezone {
        v.length("scheduleExpressionTimezone", tz, 1, 50);
    }
    if let Some(st) = &s.state {
        v.one_of("state", st, &["ENABLED", "DISABLED"]);
    }
    if let Some(k) = &s.kms_key_arn
        && v.length("kmsKeyArn", k, 1, 2048)
    {
        v.pattern("kmsKeyArn", k, patterns::SCHEDULE_KMS_KEY);
    }
    v.not_null("target", s.target.as_ref());
    if let Some(t) = &s.target {
        v.not_null("target.arn", t.arn.as_ref());
        if let Some(a) = &t.arn {
            v.length("target.arn", a, 1, 1600);
        }
        v.not_null("target.roleArn", t.role_arn.as_ref());
        if let Some(r) = &t.role_arn
            && v.length("target.roleArn", r, 1, 1600)
        {
            v.pattern("target.roleArn", r, patterns::SCHEDULE_ROLE);
        }
        if let Some(i) = &t.input {
            v.length("target.input", i, 1, usize::MAX);
        }
        if let Some(r) = &t.retry_policy {
            if let Some(a) = r.maximum_event_age_in_seconds {
                v.range("target.retryPolicy.maximumEventAgeInSeconds", a, 60, 86400);
            }
            if let Some(n) = r.maximum_retry_attempts {
                v.range("target.retryPolicy.maximumRetryAttempts", n, 0, 185);
            }
        }
        if let Some(a) = t.dead_letter_config.as_ref().and_then(|d| d.arn.as_ref())
            && v.length("target.deadLetterConfig.arn", a, 1, 1600)
        {
            v.pattern(
                "target.deadLetterConfig.arn",
                a,
                patterns::SCHEDULE_DEAD_LETTER,
            );
        }
    }
    v.not_null("flexibleTimeWindow", s.flexible_time_window.as_ref());
    if let Some(w) = &s.flexible_time_window {
        v.not_null("flexibleTimeWindow.mode", w.mode.as_ref());
        if let Some(m) = &w.mode {
            v.one_of("flexibleTimeWindow.mode", m, &["OFF", "FLEXIBLE"]);
        }
        if let Some(n) = w.maximum_window_in_minutes {
            v.range("flexibleTimeWindow.maximumWindowInMinutes", n, 1, 1440);
        }
    }
    client_token(v, s.client_token.as_deref());
    if let Some(a) = &s.action_after_completion {
        v.one_of("actionAfterCompletion", a, &["NONE", "DELETE"]);
    }
}

/// Checks a CreateSchedule or UpdateSchedule of `schedule_name` by `account` in `region`.
pub fn schedule(
    account: &AccountId,
    region: &str,
    schedule_name: &str,
    s: &ScheduleSpec,
) -> Result<(), SchedulerError> {
    let mut v = Violations::new();
    model(&mut v, schedule_name, s);
    v.into_result()
        .map_err(|e| SchedulerError::Validation(e.message().to_owned()))?;
    let bad = |m: String| Err(SchedulerError::Validation(m));
    let expr = s.schedule_expression.as_deref().unwrap_or_default();
    if let Err(e) = Expression::parse(expr) {
        return bad(e.to_string());
    }
    if let Err(e) = time_zone(s.schedule_expression_timezone.as_deref()) {
        return bad(e.to_string());
    }
    if let Some(w) = &s.flexible_time_window {
        match (w.mode.as_deref(), w.maximum_window_in_minutes) {
            (Some("FLEXIBLE"), None) => {
                return bad(
                    "MaximumWindowInMinutes must be provided when the FlexibleTimeWindow Mode \
                     is FLEXIBLE."
                        .into(),
                );
            }
            (Some("OFF"), Some(_)) => {
                return bad(
                    "MaximumWindowInMinutes can only be provided when the FlexibleTimeWindow \
                     Mode is FLEXIBLE."
                        .into(),
                );
            }
            _ => {}
        }
    }
    if let (Some(start), Some(end)) = (s.start_date, s.end_date)
        && start >= end
    {
        return bad("The StartDate must be earlier than the EndDate.".into());
    }
    let arn = s
        .target
        .as_ref()
        .and_then(|t| t.arn.as_deref())
        .unwrap_or_default();
    match parse_function_destination(arn) {
        Some((acct, _, _)) if arn.split(':').nth(3) == Some(region) && acct == account.as_str() => {
            Ok(())
        }
        Some(_) => bad(format!(
            "The target {arn} is not a function of account {} in {region}: Stoke runs a \
             schedule's target as its own account's function.",
            account.as_str()
        )),
        None => bad(format!(
            "Invalid target {arn}: Stoke's schedules target Lambda functions \
             (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER])."
        )),
    }
}
