//! One batch's way through the function: the call (a synchronous invoke), what its answer
//! means (`ReportBatchItemFailures`), retries with backoff of what failed (throttles back off
//! and are not counted as attempts), `BisectBatchOnFunctionError`, `MaximumRecordAgeInSeconds`,
//! and, once a record's retries are spent, the on-failure destination (an async invocation of
//! a function) before it is acknowledged. Records are acknowledged only after the function
//! succeeded with them (or after they went to the destination).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use stoke_core::{LambdaError, Outcome};
use stoke_store::mappings::Mapping;
use tokio::sync::watch;

use super::event::{self, BatchOutcome};
use super::metrics::MappingLabels;
use super::source::{Message, Source};
use crate::async_invoke::{AsyncInvoker, EventRequest};
use crate::event_config::parse_function_destination;
use crate::invoke::{InvokeRequest, Invoker};
use crate::metrics::Metrics;

/// How a batch went, for the poller's scaling and the mapping's `LastProcessingResult`.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// The function throttled at least one call of it.
    pub throttled: bool,
    /// `OK` or Lambda's `PROBLEM: …`.
    pub result: String,
}

/// What a batch needs beside its records.
#[derive(Clone)]
pub struct Deliverer {
    pub mapping: Arc<Mapping>,
    pub source: Arc<dyn Source>,
    pub invoker: Arc<Invoker>,
    pub asyncq: Arc<AsyncInvoker>,
    pub metrics: Arc<Metrics>,
    pub labels: MappingLabels,
    pub region: String,
    pub stop: watch::Receiver<bool>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

fn now_ms() -> i64 {
    crate::record::now_ms()
}

impl Deliverer {
    /// Sleeps `d`, or less when the poller is stopping (answers whether it is).
    async fn pause(&self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        if *stop.borrow() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => *stop.borrow(),
            _ = stop.changed() => true,
        }
    }

    /// Acknowledges `ids` (`poison`: discards them, [`Source::discard`]), trying again while
    /// the broker is away (until the poller stops: the records then come back to whoever
    /// consumes next, at least once).
    async fn ack(&self, ids: &[String], poison: bool) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let res = if poison {
                self.source.discard(ids).await
            } else {
                self.source.ack(ids).await
            };
            let Err(e) = res else { return };
            tracing::warn!(mapping = %self.mapping.uuid, error = %e, "cannot acknowledge yet");
            if self.pause(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Runs `batch` to its end.
    pub async fn deliver(&self, batch: Vec<Message>) -> Delivered {
        let mut out = Delivered {
            throttled: false,
            result: "OK".into(),
        };
        self.deliver_part(batch, &mut out).await;
        out
    }

    fn deliver_part<'a>(
        &'a self,
        batch: Vec<Message>,
        out: &'a mut Delivered,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let m = &*self.mapping;
            let mut pending = batch;
            let mut attempts: i64 = 0;
            let mut backoff = FIRST_BACKOFF;
            loop {
                if let Some(age) = m.maximum_record_age_seconds.filter(|a| *a >= 0) {
                    let cutoff = now_ms() - age * 1000;
                    let (old, young): (Vec<_>, Vec<_>) = pending
                        .into_iter()
                        .partition(|r| r.sent_ms.is_some_and(|t| t < cutoff));
                    pending = young;
                    if !old.is_empty() {
                        self.fail(old, "RecordAgeExceeded", attempts).await;
                    }
                }
                if pending.is_empty() {
                    return;
                }
                let ids: Vec<String> = pending.iter().map(|r| r.id.clone()).collect();
                let records: Vec<Value> = pending
                    .iter()
                    .map(|r| event::record(m, &self.region, r))
                    .collect();
                let call = self
                    .invoker
                    .invoke(
                        &m.account,
                        InvokeRequest {
                            function: m.function_name.clone(),
                            qualifier: m.qualifier.clone(),
                            payload: Bytes::from(event::event(&records)),
                            ..Default::default()
                        },
                    )
                    .await;
                let failed: Vec<String> = match call {
                    Err(LambdaError::TooManyRequests { .. }) => {
                        // Throttled: back off, not an attempt.
                        out.throttled = true;
                        if self.pause(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(mapping = %m.uuid, error = %e, "the batch's call failed");
                        out.result = "PROBLEM: Function call failed".into();
                        ids.clone()
                    }
                    Ok(resp) => match resp.outcome {
                        Outcome::Error(_) => {
                            out.result = "PROBLEM: Function call failed".into();
                            if m.bisect_batch_on_function_error == Some(true) && pending.len() > 1 {
                                let right = pending.split_off(pending.len() / 2);
                                self.deliver_part(pending, out).await;
                                self.deliver_part(right, out).await;
                                return;
                            }
                            ids.clone()
                        }
                        Outcome::Success(payload) if m.report_batch_item_failures => {
                            match event::batch_item_failures(&payload, &ids) {
                                BatchOutcome::AllDone => Vec::new(),
                                BatchOutcome::Failed(f) => f,
                                BatchOutcome::AllFailed => ids.clone(),
                            }
                        }
                        Outcome::Success(_) => Vec::new(),
                    },
                };
                let done: Vec<String> = ids
                    .iter()
                    .filter(|i| !failed.contains(*i))
                    .cloned()
                    .collect();
                if !done.is_empty() {
                    self.ack(&done, false).await;
                    self.metrics.sources.count(&self.labels, "done", done.len());
                }
                pending.retain(|r| failed.contains(&r.id));
                if pending.is_empty() {
                    return;
                }
                // Each retry is another delivery (`ApproximateReceiveCount`).
                for r in &mut pending {
                    r.delivery_count += 1;
                }
                attempts += 1;
                if let Some(max) = m.maximum_retry_attempts.filter(|n| *n >= 0)
                    && attempts > max
                {
                    self.fail(pending, "RetryAttemptsExhausted", attempts).await;
                    return;
                }
                self.metrics
                    .sources
                    .count(&self.labels, "retried", pending.len());
                let _ = self.source.nack(&failed).await;
                if self.pause(backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }

    /// Records that failed for good: to the on-failure destination (an async invocation of
    /// the destination function with the records and what happened), then acknowledged.
    async fn fail(&self, records: Vec<Message>, condition: &str, attempts: i64) {
        let m = &*self.mapping;
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        if let Some(dest) = &m.on_failure
            && let Some((_, name, qualifier)) = parse_function_destination(dest)
        {
            let records: Vec<Value> = records
                .iter()
                .map(|r| event::record(m, &self.region, r))
                .collect();
            let function_arn =
                stoke_core::ids::function_arn(&self.region, &m.account, &m.function_name);
            let mut payload = json!({
                "requestContext": {
                    "requestId": uuid::Uuid::new_v4().to_string(),
                    "functionArn": function_arn,
                    "condition": condition,
                    "approximateInvokeCount": attempts,
                },
                "responseContext": {"functionError": "Unhandled"},
                "version": "1.0",
                "timestamp": stoke_core::timefmt::lambda_timestamp(
                    time::OffsetDateTime::now_utc()
                ),
                "Records": records,
            });
            if let Some(o) = payload.as_object_mut() {
                let (name, info) = event::batch_info(m, &ids);
                o.insert(name.into(), info);
            }
            let req = EventRequest {
                function: name,
                qualifier: (qualifier != stoke_core::LATEST).then_some(qualifier),
                payload: Bytes::from(serde_json::to_vec(&payload).unwrap_or_default()),
                trace_id: None,
            };
            if let Err(e) = self.asyncq.enqueue(&m.account, req).await {
                tracing::error!(mapping = %m.uuid, error = %e,
                    "cannot send failed records to the on-failure destination");
            }
        }
        self.ack(&ids, true).await;
        self.metrics
            .sources
            .count(&self.labels, "failed", ids.len());
    }
}
