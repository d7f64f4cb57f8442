//! A schedule's record: the members of CreateSchedule/UpdateSchedule that Stoke keeps, in
//! EventBridge Scheduler's JSON names (the API reads and answers them as they are), and the
//! [`Timing`] they make.

use serde::{Deserialize, Serialize};
use stoke_core::schedule::{Expression, ScheduleError, Timing, time_zone};

/// `FlexibleTimeWindow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct FlexibleTimeWindow {
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_window_in_minutes: Option<i64>,
}

/// `Target.RetryPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RetryPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_event_age_in_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_retry_attempts: Option<i64>,
}

/// `Target.DeadLetterConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DeadLetterConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

/// `Target`: a Lambda function (Stoke's only kind of target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Target {
    pub arn: Option<String>,
    pub role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_config: Option<DeadLetterConfig>,
}

/// What a schedule is, as CreateSchedule and UpdateSchedule give it (dates in seconds since
/// the epoch, as the REST-JSON protocol carries timestamps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    pub schedule_expression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_expression_timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    pub target: Option<Target>,
    pub flexible_time_window: Option<FlexibleTimeWindow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_after_completion: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// Seconds (as the wire has them) to milliseconds.
pub fn seconds_to_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

impl ScheduleSpec {
    /// The ticks of this schedule, created at `created_ms`.
    pub fn timing(&self, created_ms: i64) -> Result<Timing, ScheduleError> {
        let expr = self.schedule_expression.as_deref().unwrap_or_default();
        Ok(Timing {
            expression: Expression::parse(expr)?,
            time_zone: time_zone(self.schedule_expression_timezone.as_deref())?,
            start_ms: self.start_date.map(seconds_to_ms),
            end_ms: self.end_date.map(seconds_to_ms),
            created_ms,
        })
    }

    /// The flexible window in milliseconds (0 when `OFF`).
    pub fn window_ms(&self) -> i64 {
        match &self.flexible_time_window {
            Some(FlexibleTimeWindow {
                mode: Some(m),
                maximum_window_in_minutes: Some(w),
            }) if m == "FLEXIBLE" => w.saturating_mul(60_000),
            _ => 0,
        }
    }

    /// How late a due tick may still fire: the flexible window, or `default_ms` without one,
    /// and never past the retry policy's `MaximumEventAgeInSeconds` when the caller set one
    /// (the time Scheduler keeps trying to deliver a tick).
    pub fn grace_ms(&self, default_ms: i64) -> i64 {
        let window = self.window_ms();
        let grace = if window > 0 { window } else { default_ms };
        match self
            .target
            .as_ref()
            .and_then(|t| t.retry_policy.as_ref())
            .and_then(|r| r.maximum_event_age_in_seconds)
        {
            Some(age) => grace.min(age.saturating_mul(1000)),
            None => grace,
        }
    }

    /// Whether a tick that cannot be delivered goes to the dead letters (`DeadLetterConfig`
    /// with an ARN) rather than being dropped.
    pub fn keeps_dead_letters(&self) -> bool {
        self.target
            .as_ref()
            .and_then(|t| t.dead_letter_config.as_ref())
            .is_some_and(|d| d.arn.is_some())
    }

    /// Whether the schedule goes once its last tick has fired.
    pub fn delete_after_completion(&self) -> bool {
        self.action_after_completion.as_deref() == Some("DELETE")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(window: Option<i64>, age: Option<i64>, dlq: Option<&str>) -> ScheduleSpec {
        ScheduleSpec {
            flexible_time_window: Some(FlexibleTimeWindow {
                mode: Some(if window.is_some() { "FLEXIBLE" } else { "OFF" }.into()),
                maximum_window_in_minutes: window,
            }),
            target: Some(Target {
                retry_policy: age.map(|a| RetryPolicy {
                    maximum_event_age_in_seconds: Some(a),
                    maximum_retry_attempts: None,
                }),
                dead_letter_config: dlq.map(|a| DeadLetterConfig {
                    arn: Some(a.into()),
                }),
                ..Target::default()
            }),
            ..ScheduleSpec::default()
        }
    }

    #[test]
    fn the_grace_is_the_window_or_the_default_narrowed_by_the_event_age() {
        let cases = [
            ("no window, no age", spec(None, None, None), 300_000),
            ("a window", spec(Some(10), None, None), 600_000),
            (
                "the age narrows the default",
                spec(None, Some(60), None),
                60_000,
            ),
            (
                "the age narrows a window",
                spec(Some(10), Some(120), None),
                120_000,
            ),
            (
                "an age past the window",
                spec(Some(1), Some(86_400), None),
                60_000,
            ),
        ];
        for (case, s, want) in cases {
            assert_eq!(s.grace_ms(300_000), want, "{case}");
        }
    }

    #[test]
    fn dead_letters_are_kept_only_with_a_queue_arn() {
        assert!(
            spec(None, None, Some("arn:aws:sqs:us-east-1:123456789012:q")).keeps_dead_letters()
        );
        assert!(!spec(None, None, None).keeps_dead_letters());
        let mut empty = spec(None, None, None);
        if let Some(t) = empty.target.as_mut() {
            t.dead_letter_config = Some(DeadLetterConfig { arn: None });
        }
        assert!(!empty.keeps_dead_letters());
    }
}
