//! The loop that fires ticks: it sleeps until the earliest next tick of an enabled schedule
//! (at most [`ScheduleConfig::max_sleep_ms`], or until an API write wakes it), fires what is
//! due and sleeps again. No busy loop: an idle server with no schedule wakes every
//! `max_sleep_ms` for one indexed query.
//!
//! A due tick fires once: the latest tick not after now is enqueued if it is within the grace
//! (the flexible window, or [`ScheduleConfig::grace_ms`] without one) and skipped otherwise;
//! the ticks between it and the one the store held (missed while the server was down) never
//! run, so a restart runs a missed tick once, not once per tick missed. With a flexible window
//! the event's first run is a random moment of what is left of the window after the tick.

use std::sync::Arc;
use std::time::Duration;

use stoke_store::queue::NewEvent;
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

    /// Fires every due tick; answers the earliest next one.
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
            for s in due {
                if let Err(e) = self.fire(config, s, now).await {
                    tracing::warn!(error = %e, "firing a schedule's tick failed; retrying");
                    return Some(now + 1000);
                }
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
    ) -> Result<(), stoke_store::StoreError> {
        let Some(expected) = s.next_ms else {
            return Ok(());
        };
        let spec: Result<ScheduleSpec, _> = serde_json::from_str(&s.spec);
        let timing = spec
            .as_ref()
            .ok()
            .and_then(|spec| spec.timing(s.created_ms).ok());
        let (Ok(spec), Some(timing)) = (spec, timing) else {
            // A record this build cannot read: park it rather than loop on it.
            tracing::warn!(schedule = %s.name, "a schedule's record does not parse; it stops");
            let f = fire_of(&s, expected, expected, None, None, false);
            self.schedules.store().fire(&f).await?;
            return Ok(());
        };
        let window = spec.window_ms();
        let grace = if window > 0 { window } else { config.grace_ms };
        // The latest tick not after now, from the one the store held.
        let mut tick = Some(expected);
        if expected < now - grace {
            tick = timing.first_at_or_after(now - grace).filter(|t| *t <= now);
        }
        let Some(mut tick) = tick else {
            // Every tick since the last fired is past its grace: move on without running.
            let next = timing.first_at_or_after(now + 1);
            let f = fire_of(&s, expected, expected, next, None, false);
            self.schedules.store().fire(&f).await?;
            tracing::info!(schedule = %s.name, "a missed tick is past its window; skipped");
            return Ok(());
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
        let event = self.event(&s, &spec, left).await;
        let enqueued = event.is_some();
        let f = fire_of(&s, expected, tick, next, event, delete);
        if self.schedules.store().fire(&f).await? && enqueued {
            self.asyncq.wake();
        }
        Ok(())
    }

    /// The async event of one tick of `s`, or `None` if its target is not a function Stoke
    /// can run (gone since, or never there): the tick is then dropped, with a warning.
    async fn event(&self, s: &Schedule, spec: &ScheduleSpec, window: i64) -> Option<NewEvent> {
        // `window`: how far past now the run may be put off.
        let arn = spec.target.as_ref()?.arn.as_deref()?;
        let (account, name, qualifier) = parse_function_destination(arn)?;
        if account != s.account.as_str() {
            return None;
        }
        let q = (qualifier != "$LATEST").then_some(qualifier.as_str());
        if let Err(e) = self.invoker.resolve(&s.account, &name, q).await {
            tracing::warn!(schedule = %s.name, target = %arn, error = %e.message(),
                "a schedule's target cannot run; the tick is dropped");
            return None;
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
        Some(NewEvent {
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
}

fn fire_of(
    s: &Schedule,
    expected: i64,
    tick: i64,
    next: Option<i64>,
    event: Option<NewEvent>,
    delete: bool,
) -> Fire {
    Fire {
        account: s.account.clone(),
        group: s.group.clone(),
        name: s.name.clone(),
        expected_next_ms: expected,
        tick_ms: tick,
        next_ms: next,
        event,
        delete,
    }
}
