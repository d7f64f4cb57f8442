//! What becomes of one attempt of an async event: [`decide`], a pure function of the event,
//! the [`Policy`] that applies to it, what the attempt gave ([`Attempt`]) and the time.
//!
//! - success: done, or the invocation record to the on-success destination;
//! - function error: a retry after the configured delay (Lambda: 1 min, then 2 min), or, past
//!   `MaximumRetryAttempts`, `RetriesExhausted`;
//! - throttle or platform error: a retry after an exponential backoff, which does not count
//!   against `MaximumRetryAttempts`; no retry is scheduled past the event's maximum age (the
//!   next attempt then finds it [`Attempt::Expired`]);
//! - expired (`EventAgeExceeded`) or the function gone (`FunctionNotFound`): failed for good;
//! - failed for good: the record to the on-failure destination, else a dead letter;
//! - a record to a destination is one hop more than its event; at [`MAX_HOPS`] it is dropped
//!   instead (a chain of destinations A → B → A ends there).

use stoke_store::queue::{EventInvokeConfig, QueuedEvent};

use super::config::{AsyncConfig, ms};
use crate::event_config::{
    DEFAULT_MAX_EVENT_AGE_SECONDS, DEFAULT_MAX_RETRY_ATTEMPTS, parse_function_destination,
};

/// The most hops of a chain of destinations: an event whose record would be its 16th hop is
/// not enqueued (Lambda's recursive loop detection stops a chain after about 16 calls).
pub const MAX_HOPS: u32 = 16;

/// A destination function, as its ARN names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub function_name: String,
    /// `$LATEST` when the ARN has none.
    pub qualifier: String,
}

impl Destination {
    /// The function an ARN names (`None` for anything else: no delivery).
    pub fn parse(arn: &str) -> Option<Self> {
        let (_, function_name, qualifier) = parse_function_destination(arn)?;
        Some(Self {
            function_name,
            qualifier,
        })
    }
}

/// Lambda's `condition` of an invocation record or a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Success,
    RetriesExhausted,
    EventAgeExceeded,
    FunctionNotFound,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::RetriesExhausted => "RetriesExhausted",
            Self::EventAgeExceeded => "EventAgeExceeded",
            Self::FunctionNotFound => "FunctionNotFound",
        }
    }
}

/// What applies to one event: the function's event-invoke configuration (Lambda's defaults
/// where it says nothing) and the queue's timing.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    pub timing: &'a AsyncConfig,
    pub max_retries: u32,
    pub max_age_ms: i64,
    pub on_success: Option<Destination>,
    pub on_failure: Option<Destination>,
    pub max_hops: u32,
}

impl<'a> Policy<'a> {
    pub fn new(timing: &'a AsyncConfig, config: Option<&EventInvokeConfig>) -> Self {
        Self {
            timing,
            max_retries: config
                .and_then(|c| c.maximum_retry_attempts)
                .unwrap_or(DEFAULT_MAX_RETRY_ATTEMPTS),
            max_age_ms: timing.max_age_ms(
                config
                    .and_then(|c| c.maximum_event_age_seconds)
                    .unwrap_or(DEFAULT_MAX_EVENT_AGE_SECONDS),
            ),
            on_success: config
                .and_then(|c| c.on_success.as_deref())
                .and_then(Destination::parse),
            on_failure: config
                .and_then(|c| c.on_failure.as_deref())
                .and_then(Destination::parse),
            max_hops: MAX_HOPS,
        }
    }

    /// Whether the event is past its maximum age at `now_ms` (it is not run then).
    pub fn expired(&self, ev: &QueuedEvent, now_ms: i64) -> bool {
        now_ms.saturating_sub(ev.enqueued_ms) > self.max_age_ms
    }
}

/// What one attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Not run: the event was past its maximum age.
    Expired,
    /// It ran and answered.
    Succeeded,
    /// It ran and failed with a function error of this type.
    FunctionError(String),
    /// The function (or its qualifier) is gone: nothing will ever run the event.
    FunctionGone,
    /// Throttled, or the platform failed: not the function's doing.
    Deferred,
}

/// What becomes of the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Done; nothing follows.
    Done,
    /// It runs again at `next_run_ms`.
    Retry {
        next_run_ms: i64,
        failures: u32,
        backoff_ms: i64,
    },
    /// Done; the invocation record goes to `to` as an event of `hops` hops.
    Deliver {
        to: Destination,
        condition: Condition,
        hops: u32,
    },
    /// Failed for good with no on-failure destination.
    DeadLetter {
        condition: Condition,
        error_type: Option<String>,
    },
    /// Done; the record for `to` would have been its `hops`-th hop, the limit: it is dropped.
    Dropped {
        to: Destination,
        condition: Condition,
        hops: u32,
    },
}

/// The outcome of one attempt of `ev` that ended at `now_ms`.
pub fn decide(ev: &QueuedEvent, policy: &Policy<'_>, attempt: &Attempt, now_ms: i64) -> Decision {
    // No retry is due after the event's age has run out: the attempt then finds it expired.
    let last_chance = ev
        .enqueued_ms
        .saturating_add(policy.max_age_ms)
        .saturating_add(1);
    match attempt {
        Attempt::Succeeded => match &policy.on_success {
            Some(to) => deliver(ev, policy, to, Condition::Success),
            None => Decision::Done,
        },
        Attempt::FunctionError(error_type) => {
            let failures = ev.failures.saturating_add(1);
            if failures > policy.max_retries {
                fail(
                    ev,
                    policy,
                    Condition::RetriesExhausted,
                    Some(error_type.clone()),
                )
            } else {
                let delay = ms(policy.timing.retry_delay(failures));
                Decision::Retry {
                    next_run_ms: now_ms.saturating_add(delay).min(last_chance),
                    failures,
                    backoff_ms: 0,
                }
            }
        }
        Attempt::Deferred => {
            let backoff = policy.timing.next_backoff_ms(ev.backoff_ms);
            Decision::Retry {
                next_run_ms: now_ms.saturating_add(backoff).min(last_chance),
                failures: ev.failures,
                backoff_ms: backoff,
            }
        }
        Attempt::Expired => fail(ev, policy, Condition::EventAgeExceeded, None),
        Attempt::FunctionGone => fail(
            ev,
            policy,
            Condition::FunctionNotFound,
            Some("ResourceNotFoundException".to_owned()),
        ),
    }
}

/// Failed for good: to the on-failure destination, else the dead letters.
fn fail(
    ev: &QueuedEvent,
    policy: &Policy<'_>,
    condition: Condition,
    error_type: Option<String>,
) -> Decision {
    match &policy.on_failure {
        Some(to) => deliver(ev, policy, to, condition),
        None => Decision::DeadLetter {
            condition,
            error_type,
        },
    }
}

fn deliver(
    ev: &QueuedEvent,
    policy: &Policy<'_>,
    to: &Destination,
    condition: Condition,
) -> Decision {
    let hops = ev.hops.saturating_add(1);
    let to = to.clone();
    if hops >= policy.max_hops {
        Decision::Dropped {
            to,
            condition,
            hops,
        }
    } else {
        Decision::Deliver {
            to,
            condition,
            hops,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use stoke_core::AccountId;

    const S: &str = "arn:aws:lambda:us-east-1:123456789012:function:s";
    const F: &str = "arn:aws:lambda:us-east-1:123456789012:function:f:prod";
    const NOW: i64 = 1_000;

    /// A case: its name, the event, its configuration, the attempt, when it ended, the answer.
    type Row<'a> = (
        &'a str,
        QueuedEvent,
        &'a Option<EventInvokeConfig>,
        Attempt,
        i64,
        Decision,
    );

    fn event(failures: u32, backoff_ms: i64, hops: u32) -> QueuedEvent {
        QueuedEvent {
            id: 1,
            request_id: "r".into(),
            account: AccountId::try_from("123456789012".to_owned()).unwrap(),
            function_name: "a".into(),
            qualifier: "$LATEST".into(),
            payload: b"{}".to_vec(),
            trace_id: None,
            enqueued_ms: 0,
            runs: failures + 1,
            failures,
            backoff_ms,
            hops,
            caller: None,
        }
    }

    /// An event-invoke configuration: retries, age (seconds), on-success, on-failure.
    fn config(
        retries: Option<u32>,
        age: Option<u32>,
        on_success: Option<&str>,
        on_failure: Option<&str>,
    ) -> EventInvokeConfig {
        EventInvokeConfig {
            account: AccountId::try_from("123456789012".to_owned()).unwrap(),
            function_name: "a".into(),
            qualifier: "$LATEST".into(),
            maximum_retry_attempts: retries,
            maximum_event_age_seconds: age,
            on_success: on_success.map(str::to_owned),
            on_failure: on_failure.map(str::to_owned),
            last_modified: 0.0,
        }
    }

    fn dest(name: &str, qualifier: &str) -> Destination {
        Destination {
            function_name: name.into(),
            qualifier: qualifier.into(),
        }
    }

    fn s() -> Destination {
        dest("s", "$LATEST")
    }

    fn f() -> Destination {
        dest("f", "prod")
    }

    fn error(t: &str) -> Attempt {
        Attempt::FunctionError(t.into())
    }

    fn retry(next_run_ms: i64, failures: u32, backoff_ms: i64) -> Decision {
        Decision::Retry {
            next_run_ms,
            failures,
            backoff_ms,
        }
    }

    fn deliver(to: Destination, condition: Condition, hops: u32) -> Decision {
        Decision::Deliver {
            to,
            condition,
            hops,
        }
    }

    fn dropped(to: Destination, condition: Condition, hops: u32) -> Decision {
        Decision::Dropped {
            to,
            condition,
            hops,
        }
    }

    fn dead(condition: Condition, error_type: Option<&str>) -> Decision {
        Decision::DeadLetter {
            condition,
            error_type: error_type.map(str::to_owned),
        }
    }

    #[test]
    fn every_branch_decides_as_lambda_does() {
        use Condition::*;
        let none = None;
        let on_success = Some(config(None, None, Some(S), None));
        let on_failure = Some(config(None, None, None, Some(F)));
        let both = Some(config(None, None, Some(S), Some(F)));
        let no_retries = Some(config(Some(0), None, None, None));
        let one_retry_to_f = Some(config(Some(1), None, None, Some(F)));
        let sqs = Some(config(
            None,
            None,
            Some("arn:aws:sqs:us-east-1:123456789012:q"),
            Some("arn:aws:sqs:us-east-1:123456789012:q"),
        ));
        let short_age = Some(config(None, Some(60), None, None));
        #[rustfmt::skip]
        let table: Vec<Row<'_>> = vec![
            // Success.
            ("success, no destination", event(0, 0, 0), &none, Attempt::Succeeded, NOW, Decision::Done),
            ("success after retries", event(2, 0, 0), &none, Attempt::Succeeded, NOW, Decision::Done),
            ("success to on-success", event(0, 0, 0), &on_success, Attempt::Succeeded, NOW, deliver(s(), Success, 1)),
            ("success, on-failure only", event(0, 0, 0), &on_failure, Attempt::Succeeded, NOW, Decision::Done),
            ("success, both destinations", event(1, 0, 0), &both, Attempt::Succeeded, NOW, deliver(s(), Success, 1)),
            ("success, a destination Stoke cannot reach", event(0, 0, 0), &sqs, Attempt::Succeeded, NOW, Decision::Done),
            ("success at hop 14", event(0, 0, 14), &on_success, Attempt::Succeeded, NOW, deliver(s(), Success, 15)),
            ("success at hop 15: the 16th hop is dropped", event(0, 0, 15), &on_success, Attempt::Succeeded, NOW, dropped(s(), Success, 16)),
            ("success at hop 15, no destination", event(0, 0, 15), &none, Attempt::Succeeded, NOW, Decision::Done),
            // Function errors: 1 min, then 2 min, then failed for good (Lambda's defaults).
            ("first function error", event(0, 0, 0), &none, error("Unhandled"), NOW, retry(NOW + 60_000, 1, 0)),
            ("second function error", event(1, 0, 0), &none, error("Unhandled"), NOW, retry(NOW + 120_000, 2, 0)),
            ("third function error", event(2, 0, 0), &none, error("Unhandled"), NOW, dead(RetriesExhausted, Some("Unhandled"))),
            ("a function error clears the backoff", event(0, 4_000, 0), &none, error("Unhandled"), NOW, retry(NOW + 60_000, 1, 0)),
            ("no retries allowed", event(0, 0, 0), &no_retries, error("Runtime.ExitError"), NOW, dead(RetriesExhausted, Some("Runtime.ExitError"))),
            ("retries exhausted to on-failure", event(1, 0, 0), &one_retry_to_f, error("Unhandled"), NOW, deliver(f(), RetriesExhausted, 1)),
            ("one retry left, with on-failure", event(0, 0, 0), &one_retry_to_f, error("Unhandled"), NOW, retry(NOW + 60_000, 1, 0)),
            ("retries exhausted, on-success only", event(2, 0, 0), &on_success, error("Unhandled"), NOW, dead(RetriesExhausted, Some("Unhandled"))),
            ("retries exhausted, unreachable on-failure", event(2, 0, 0), &sqs, error("Unhandled"), NOW, dead(RetriesExhausted, Some("Unhandled"))),
            ("retries exhausted at hop 15", event(2, 0, 15), &on_failure, error("Unhandled"), NOW, dropped(f(), RetriesExhausted, 16)),
            ("a retry is never due after the age runs out", event(0, 0, 0), &short_age, error("Unhandled"), 30_000, retry(60_001, 1, 0)),
            // Throttles and platform errors: 1 s doubling to 5 min, not counted as failures.
            ("first throttle", event(0, 0, 0), &none, Attempt::Deferred, NOW, retry(NOW + 1_000, 0, 1_000)),
            ("throttle after a backoff", event(1, 1_000, 0), &none, Attempt::Deferred, NOW, retry(NOW + 2_000, 1, 2_000)),
            ("throttle at the cap", event(0, 200_000, 0), &none, Attempt::Deferred, NOW, retry(NOW + 300_000, 0, 300_000)),
            ("throttle past the cap", event(0, 300_000, 0), &none, Attempt::Deferred, NOW, retry(NOW + 300_000, 0, 300_000)),
            ("throttles do not exhaust retries", event(2, 1_000, 0), &no_retries, Attempt::Deferred, NOW, retry(NOW + 2_000, 2, 2_000)),
            ("a backoff is never due after the age runs out", event(0, 0, 0), &short_age, Attempt::Deferred, 59_500, retry(60_001, 0, 1_000)),
            // Failed for good before running.
            ("expired", event(0, 8_000, 0), &none, Attempt::Expired, NOW, dead(EventAgeExceeded, None)),
            ("expired to on-failure", event(0, 0, 3), &on_failure, Attempt::Expired, NOW, deliver(f(), EventAgeExceeded, 4)),
            ("expired, on-success only", event(0, 0, 0), &on_success, Attempt::Expired, NOW, dead(EventAgeExceeded, None)),
            ("expired at hop 15", event(0, 0, 15), &on_failure, Attempt::Expired, NOW, dropped(f(), EventAgeExceeded, 16)),
            ("function gone", event(0, 0, 0), &none, Attempt::FunctionGone, NOW, dead(FunctionNotFound, Some("ResourceNotFoundException"))),
            ("function gone to on-failure", event(0, 0, 0), &both, Attempt::FunctionGone, NOW, deliver(f(), FunctionNotFound, 1)),
        ];
        let timing = AsyncConfig::default();
        for (name, ev, cfg, attempt, now, want) in table {
            let policy = Policy::new(&timing, cfg.as_ref());
            assert_eq!(decide(&ev, &policy, &attempt, now), want, "{name}");
        }
    }

    #[test]
    fn the_policy_takes_lambdas_defaults_and_the_configured_figures() {
        let timing = AsyncConfig {
            age_unit: std::time::Duration::from_millis(10),
            ..AsyncConfig::default()
        };
        let d = Policy::new(&timing, None);
        assert_eq!(d.max_retries, 2);
        assert_eq!(d.max_age_ms, 216_000);
        assert_eq!((d.on_success, d.on_failure), (None, None));
        assert_eq!(d.max_hops, 16);
        let c = config(Some(1), Some(60), Some(S), Some(F));
        let p = Policy::new(&timing, Some(&c));
        assert_eq!((p.max_retries, p.max_age_ms), (1, 600));
        assert_eq!((p.on_success, p.on_failure), (Some(s()), Some(f())));
    }

    #[test]
    fn an_event_expires_once_older_than_its_maximum_age() {
        let timing = AsyncConfig::default();
        let c = config(None, Some(60), None, None);
        let p = Policy::new(&timing, Some(&c));
        let ev = QueuedEvent {
            enqueued_ms: 5_000,
            ..event(0, 0, 0)
        };
        assert!(!p.expired(&ev, 5_000));
        assert!(!p.expired(&ev, 65_000));
        assert!(p.expired(&ev, 65_001));
        // A clock that went back does not expire anything.
        assert!(!p.expired(&ev, 0));
    }

    #[test]
    fn a_shorter_hop_limit_drops_sooner() {
        let timing = AsyncConfig::default();
        let c = config(None, None, Some(S), None);
        let p = Policy {
            max_hops: 2,
            ..Policy::new(&timing, Some(&c))
        };
        let first = decide(&event(0, 0, 0), &p, &Attempt::Succeeded, NOW);
        assert_eq!(first, deliver(s(), Condition::Success, 1));
        let second = decide(&event(0, 0, 1), &p, &Attempt::Succeeded, NOW);
        assert_eq!(second, dropped(s(), Condition::Success, 2));
    }

    #[test]
    fn conditions_read_as_lambdas() {
        let all = [
            Condition::Success,
            Condition::RetriesExhausted,
            Condition::EventAgeExceeded,
            Condition::FunctionNotFound,
        ];
        let names: Vec<&str> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "Success",
                "RetriesExhausted",
                "EventAgeExceeded",
                "FunctionNotFound"
            ]
        );
    }
}
