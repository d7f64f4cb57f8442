//! One run of one event: read the configuration that applies, skip the run if the event is
//! too old, invoke the function (the same limits as a synchronous call, the event's request
//! id), let [`decide`] say what becomes of it, and turn that into the [`Finish`] the writer
//! stores (with the run's log lines and record, the destination's event or the dead letter).

use std::sync::Arc;

use bytes::Bytes;
use stoke_core::LambdaError;
use stoke_sandbox::Outcome;
use stoke_store::queue::{Finish, FinishKind, NewDeadLetter, QueuedEvent};

use super::config::AsyncConfig;
use super::decide::{Attempt, Decision, Policy, decide};
use super::destinations::{self, Response};
use crate::event_config::EventConfigs;
use crate::invoke::{InvokeRequest, Invoker};
use crate::metrics::{FunctionLabels, Metrics};
use crate::record::{CallRecord, now_ms};

/// Runs events.
pub struct Worker {
    pub invoker: Arc<Invoker>,
    pub configs: Arc<EventConfigs>,
    pub config: AsyncConfig,
    pub region: String,
    pub metrics: Arc<Metrics>,
}

fn labels(account: &stoke_core::AccountId, function: &str) -> FunctionLabels {
    FunctionLabels {
        account: account.as_str().to_owned(),
        function: function.to_owned(),
    }
}

impl Worker {
    /// Runs one event and answers what becomes of it.
    pub async fn run(&self, ev: QueuedEvent) -> Finish {
        let cfg = self
            .configs
            .for_event(&ev.account, &ev.function_name, &ev.qualifier)
            .await;
        let policy = Policy::new(&self.config, cfg.as_ref());
        let now = now_ms();
        if policy.expired(&ev, now) {
            let decision = decide(&ev, &policy, &Attempt::Expired, now);
            return self.finish(&ev, decision, None, None);
        }
        let age = now.saturating_sub(ev.enqueued_ms);
        self.metrics
            .async_event_age_at_start_seconds
            .observe(age as f64 / 1000.0);
        let qualifier = (ev.qualifier != "$LATEST").then(|| ev.qualifier.clone());
        let result = self
            .invoker
            .invoke(
                &ev.account,
                InvokeRequest {
                    function: ev.function_name.clone(),
                    qualifier,
                    payload: Bytes::from(ev.payload.clone()),
                    log_tail: false,
                    client_context: None,
                    trace_id: ev.trace_id.clone(),
                    depth: 0,
                    request_id: Some(ev.request_id.clone()),
                    return_record: true,
                },
            )
            .await;
        let (attempt, response, call) = match result {
            Ok(resp) => {
                let (body, function_error) = match &resp.outcome {
                    Outcome::Success(b) => (b.clone(), None),
                    Outcome::Error(e) => (e.body.clone(), Some(e.error_type.clone())),
                };
                let attempt = match &function_error {
                    None => Attempt::Succeeded,
                    Some(t) => Attempt::FunctionError(t.clone()),
                };
                let response = Response {
                    executed_version: resp.executed_version.clone(),
                    function_error,
                    body: body.to_vec(),
                };
                // The run is the owner's; its record names who queued the event.
                let mut call = resp.record;
                if let (Some(c), Some(caller)) = (call.as_mut(), &ev.caller) {
                    c.record.caller_account = caller.clone();
                }
                (attempt, Some(response), call)
            }
            // The function (or its qualifier) is gone: nothing will ever run the event.
            Err(LambdaError::ResourceNotFound(_)) => (Attempt::FunctionGone, None, None),
            Err(e) => {
                // Throttled, or the platform failed: back off and try again until the age
                // runs out; these do not count against MaximumRetryAttempts.
                tracing::debug!(request_id = %ev.request_id, error = %e, "async event deferred");
                (Attempt::Deferred, None, None)
            }
        };
        let decision = decide(&ev, &policy, &attempt, now_ms());
        self.finish(&ev, decision, response.as_ref(), call)
    }

    /// The finish of a decision, with the run's lines and record.
    fn finish(
        &self,
        ev: &QueuedEvent,
        decision: Decision,
        response: Option<&Response>,
        call: Option<CallRecord>,
    ) -> Finish {
        let (mut logs, record) = match call {
            Some(CallRecord { logs, record }) => (logs, Some(record)),
            None => (vec![], None),
        };
        let now = now_ms();
        let mut finish = Finish {
            id: ev.id,
            kind: FinishKind::Delete,
            follow_up: None,
            dead_letter: None,
            logs: vec![],
            record,
        };
        match decision {
            Decision::Done => {}
            Decision::Retry {
                next_run_ms,
                failures,
                backoff_ms,
            } => {
                self.metrics
                    .async_retries
                    .get_or_create(&labels(&ev.account, &ev.function_name))
                    .inc();
                finish.kind = FinishKind::Retry {
                    next_run_ms,
                    failures,
                    backoff_ms,
                };
            }
            Decision::Deliver {
                to,
                condition,
                hops,
            } => {
                finish.follow_up = Some(destinations::destination_event(
                    ev,
                    &self.region,
                    &to,
                    condition,
                    response,
                    hops,
                    now,
                ));
            }
            Decision::DeadLetter {
                condition,
                error_type,
            } => {
                self.metrics
                    .async_dead_letters
                    .get_or_create(&labels(&ev.account, &ev.function_name))
                    .inc();
                finish.dead_letter = Some(NewDeadLetter {
                    request_id: ev.request_id.clone(),
                    account: ev.account.clone(),
                    function_name: ev.function_name.clone(),
                    qualifier: ev.qualifier.clone(),
                    payload: ev.payload.clone(),
                    trace_id: ev.trace_id.clone(),
                    enqueued_ms: ev.enqueued_ms,
                    failed_ms: now,
                    condition: condition.as_str().to_owned(),
                    runs: ev.runs,
                    error_type,
                    response: response.map(|r| r.body.clone()),
                });
            }
            Decision::Dropped {
                to,
                condition,
                hops,
            } => {
                // Lambda's RecursiveInvocationsDropped counts the function not invoked.
                self.metrics
                    .recursive_invocations_dropped
                    .get_or_create(&labels(&ev.account, &to.function_name))
                    .inc();
                tracing::warn!(
                    request_id = %ev.request_id,
                    function = %ev.function_name,
                    destination = %to.function_name,
                    hops,
                    "a destination chain reached its hop limit: the event was dropped"
                );
                let message = destinations::dropped_message(ev, &to, condition, hops);
                let line = destinations::dropped_line(ev, &logs, message, now);
                logs.push(line);
            }
        }
        finish.logs = logs;
        finish
    }
}
