//! The loop that fires ticks: it sleeps until the earliest next tick of an enabled schedule
//! (at most [`ScheduleConfig::max_sleep_ms`], or until an API write wakes it), fires what is
//! due and sleeps again. No busy loop: an idle server with no schedule wakes every
//! `max_sleep_ms` for one indexed query.
//!
//! A due tick fires once: the latest tick not after now is enqueued if it is within the grace
//! (the flexible window, or [`ScheduleConfig::grace_ms`] without one, capped by the retry
//! policy's `MaximumEventAgeInSeconds` when given) and skipped otherwise; the ticks between it
//! and the one the store held (missed while the server was down) never run, so a restart runs
//! a missed tick once, not once per tick missed. With a flexible window the event's first run
//! is a random moment of what is left of the window after the tick.
//!
//! A tick that is not delivered (past its grace, or its function gone) goes to the dead
//! letters when the schedule has a `DeadLetterConfig`, in the fire's transaction, and is
//! dropped otherwise; a target that cannot be looked up now (the store) is tried again each
//! second while the tick is within its grace.

use std::sync::Arc;
use std::time::Duration;

use stoke_core::LambdaError;
use stoke_store::queue::{NewDeadLetter, NewEvent};
use stoke_store::schedules::{Fire, Schedule};
use tokio::sync::watch;

use super::{ScheduleConfig, ScheduleSpec, Schedules};
use crate::async_invoke::AsyncInvoker;
use crate::event_config::{event_qualifier, parse_function_destination};
use crate::invoke::Invoker;
use crate::record::now_ms;

/// Schedules fired per store read.
const BATCH: u32 = 100;

/// Fires the ticks of every account's schedules.
pub struct Ticker {
    pub schedules: Arc<Schedules>,
    pub invoker: Arc<Invoker>,
    pub asyncq: Arc<AsyncInvoker>,
}

impl Ticker {
    /// Runs until `stop` changes (or its sender is gone).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let wake = self.schedules.wake_handle();
        let config = self.schedules.config().clone();
        loop {
            let next = self.round(&config).await;
            let now = config.clock.now_ms();
            let wait = next
                .map_or(config.max_sleep_ms, |n| n.saturating_sub(now))
                .clamp(0, config.max_sleep_ms);
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))) => {}
            }
        }
    }

    /// Fires every due tick; answers the earliest next one (in a second when a tick must be
    /// tried again).
    async fn round(&self, config: &ScheduleConfig) -> Option<i64> {
        let store = self.schedules.store();
        loop {
            let now = config.clock.now_ms();
            let due = match store.due_schedules(now, BATCH).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the due schedules failed; retrying");
                    return Some(now + 1000);
                }
            };
            let n = due.len();
            let mut again = false;
            for s in due {
                match self.fire(config, s, now).await {
                    Ok(Fired::Done) => {}
                    Ok(Fired::Later) => again = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "firing a schedule's tick failed; retrying");
                        return Some(now + 1000);
                    }
                }
            }
            if again {
                return Some(now + 1000);
            }
            if n < BATCH as usize {
                break;
            }
        }
        store.next_schedule_ms().await.ok().flatten()
    }

    /// Fires (or skips) the due tick of `s`.
    async fn fire(
        &self,
        config: &ScheduleConfig,
        s: Schedule,
        now: i64,
    ) -> Result<Fired, stoke_store::StoreError> {
        let Some(expected) = s.next_ms else {
            return Ok(Fired::Done);
        };
        let spec: Result<ScheduleSpec, _> = serde_json::from_str(&s.spec);
        let timing = spec
            .as_ref()
            .ok()
            .and_then(|spec| spec.timing(s.created_ms).ok());
        let (Ok(spec), Some(timing)) = (spec, timing) else {
            // A record this build cannot read: park it rather than loop on it.
            tracing::warn!(schedule = %s.name, "a schedule's record does not parse; it stops");
            let f = fire_of(&s, expected, expected, None, Outcome::Skipped, false);
            self.schedules.store().fire(&f).await?;
            return Ok(Fired::Done);
        };
        let window = spec.window_ms();
        let grace = spec.grace_ms(config.grace_ms);
        // The latest tick not after now, from the one the store held.
        let mut tick = Some(expected);
        if expected < now - grace {
            tick = timing.first_at_or_after(now - grace).filter(|t| *t <= now);
        }
        let Some(mut tick) = tick else {
            // Every tick since the last fired is past its grace: move on without running (the
            // first missed to the dead letters, when the schedule keeps them).
            let next = timing.first_at_or_after(now + 1);
            let outcome = self.undelivered(
                &s,
                &spec,
                expected,
                "EventAgeExceeded",
                None,
                "The tick was not delivered within its window (the server was down).",
            );
            // A one-off whose only tick was missed is complete all the same.
            let delete = next.is_none() && spec.delete_after_completion();
            let f = fire_of(&s, expected, expected, next, outcome, delete);
            self.schedules.store().fire(&f).await?;
            tracing::info!(schedule = %s.name, "a missed tick is past its window; skipped");
            return Ok(Fired::Done);
        };
        while let Some(t) = timing.first_at_or_after(tick + 1).filter(|t| *t <= now) {
            tick = t;
        }
        let next = timing.first_at_or_after(tick + 1);
        let delete = next.is_none() && spec.delete_after_completion();
        // The run may come anywhere in what is left of the window after the tick.
        let left = if config.jitter {
            (tick + window - now).max(0)
        } else {
            0
        };
        let outcome = match self.event(&s, &spec, left).await {
            Delivery::Event(e) => Outcome::Event(Box::new(e)),
            Delivery::Undelivered(message) => self.undelivered(
                &s,
                &spec,
                tick,
                "FunctionNotFound",
                Some("ResourceNotFoundException"),
                &message,
            ),
            Delivery::Later(message) => {
                tracing::warn!(schedule = %s.name, error = %message,
                    "a schedule's target could not be looked up; trying again");
                return Ok(Fired::Later);
            }
        };
        let enqueued = matches!(outcome, Outcome::Event(_));
        let f = fire_of(&s, expected, tick, next, outcome, delete);
        // `false`: another node (or an update) moved the schedule first; nothing was written.
        if self.schedules.store().fire(&f).await? && enqueued {
            tracing::info!(account = %s.account.as_str(), group = %s.group, schedule = %s.name,
                tick_ms = tick, "a schedule's tick fired");
            self.asyncq.wake();
        }
        Ok(Fired::Done)
    }

    /// The async event of one tick of `s`, or why there is none: its target is not a function
    /// Stoke can run (gone since, or never there), or could not be looked up now (the store:
    /// tried again).
    async fn event(&self, s: &Schedule, spec: &ScheduleSpec, window: i64) -> Delivery {
        // `window`: how far past now the run may be put off.
        let arn = spec
            .target
            .as_ref()
            .and_then(|t| t.arn.as_deref())
            .unwrap_or_default();
        let Some((account, name, qualifier)) = parse_function_destination(arn) else {
            return Delivery::Undelivered(format!("The target {arn} is not a function."));
        };
        if account != s.account.as_str() {
            return Delivery::Undelivered(format!(
                "The target {arn} is not a function of the schedule's account."
            ));
        }
        let q = (qualifier != "$LATEST").then_some(qualifier.as_str());
        match self.invoker.resolve(&s.account, &name, q).await {
            Ok(_) => {}
            Err(LambdaError::ResourceNotFound(m)) => {
                tracing::warn!(schedule = %s.name, target = %arn, error = %m,
                    "a schedule's target cannot run; the tick is not delivered");
                return Delivery::Undelivered(m);
            }
            Err(e) => return Delivery::Later(e.message().to_owned()),
        }
        let payload = spec
            .target
            .as_ref()
            .and_then(|t| t.input.clone())
            .unwrap_or_else(|| "{}".into());
        let real_now = now_ms();
        let jitter = if window > 0 {
            rand::random_range(0..window)
        } else {
            0
        };
        Delivery::Event(NewEvent {
            request_id: uuid::Uuid::new_v4().to_string(),
            account: s.account.clone(),
            function_name: name,
            qualifier: event_qualifier(Some(&qualifier)),
            payload: payload.into_bytes(),
            trace_id: None,
            enqueued_ms: real_now,
            next_run_ms: real_now + jitter,
            hops: 0,
            caller: None,
        })
    }

    /// What becomes of a tick that was not delivered: a dead letter when the schedule has a
    /// `DeadLetterConfig` (Stoke's dead letters stand for its SQS queue; `stoke dead-letters`
    /// lists and redrives them), else nothing (dropped, as Scheduler drops it).
    fn undelivered(
        &self,
        s: &Schedule,
        spec: &ScheduleSpec,
        tick: i64,
        condition: &str,
        error_type: Option<&str>,
        message: &str,
    ) -> Outcome {
        if !spec.keeps_dead_letters() {
            return Outcome::Skipped;
        }
        let target = spec.target.as_ref();
        let arn = target.and_then(|t| t.arn.as_deref()).unwrap_or_default();
        let (function_name, qualifier) = match parse_function_destination(arn) {
            Some((_, name, qualifier)) => (name, event_qualifier(Some(&qualifier))),
            None => (arn.to_owned(), "$LATEST".to_owned()),
        };
        let response = serde_json::json!({
            "ScheduleArn": self.schedules.schedule_arn(&s.account, &s.group, &s.name),
            "TargetArn": arn,
            "ScheduledTimeMs": tick,
            "ErrorMessage": message,
        });
        Outcome::DeadLetter(Box::new(NewDeadLetter {
            request_id: uuid::Uuid::new_v4().to_string(),
            account: s.account.clone(),
            function_name,
            qualifier,
            payload: target
                .and_then(|t| t.input.clone())
                .unwrap_or_else(|| "{}".into())
                .into_bytes(),
            trace_id: None,
            enqueued_ms: tick,
            failed_ms: now_ms(),
            condition: condition.to_owned(),
            runs: 0,
            error_type: error_type.map(str::to_owned),
            response: Some(response.to_string().into_bytes()),
        }))
    }
}

/// How a due schedule was handled.
enum Fired {
    /// Fired, skipped, or moved by another node first.
    Done,
    /// Left due: try again in a moment.
    Later,
}

/// A tick's target, as looked up.
enum Delivery {
    Event(NewEvent),
    /// It will not run (the message says why).
    Undelivered(String),
    /// It could not be looked up now.
    Later(String),
}

/// What a fire writes beside moving the schedule.
enum Outcome {
    Event(Box<NewEvent>),
    DeadLetter(Box<NewDeadLetter>),
    Skipped,
}

fn fire_of(
    s: &Schedule,
    expected: i64,
    tick: i64,
    next: Option<i64>,
    outcome: Outcome,
    delete: bool,
) -> Fire {
    let (event, dead_letter) = match outcome {
        Outcome::Event(e) => (Some(*e), None),
        Outcome::DeadLetter(d) => (None, Some(*d)),
        Outcome::Skipped => (None, None),
    };
    Fire {
        account: s.account.clone(),
        group: s.group.clone(),
        name: s.name.clone(),
        expected_next_ms: expected,
        tick_ms: tick,
        next_ms: next,
        event,
        dead_letter,
        delete,
    }
}
