//! Recording calls: Lambda's `START`/`END`/`REPORT` log lines, invocation records, and the
//! background writer that stores them.
//!
//! The call path never waits for the store: a call's lines and record go into a bounded
//! channel, and one task writes them in batches (one transaction per batch). If the writer
//! falls behind, lines are dropped and counted (`stoke_logs_dropped`), never the call. A
//! retention pass keeps at most so many lines and records per function, none older than the
//! retention age.

use std::sync::Arc;
use std::time::Duration;

use stoke_store::{InvocationRecord, LogEvent, Store};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Lambda's `REPORT` figures of one call.
#[derive(Debug, Clone)]
pub struct Report {
    pub request_id: String,
    pub version: String,
    pub duration: Duration,
    pub init: Option<Duration>,
    pub memory_size_mb: u32,
    pub max_memory_mb: u32,
    /// `Some("timeout")` and the like, for the REPORT line's `Status:`.
    pub status: Option<&'static str>,
}

impl Report {
    /// Billed duration: rounded up to the millisecond, as Lambda bills.
    pub fn billed_ms(&self) -> u64 {
        let micros = self.duration.as_micros();
        u64::try_from(micros.div_ceil(1000))
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// `START RequestId: … Version: …`
    pub fn start_line(&self) -> String {
        format!(
            "START RequestId: {} Version: {}",
            self.request_id, self.version
        )
    }

    /// `END RequestId: …`
    pub fn end_line(&self) -> String {
        format!("END RequestId: {}", self.request_id)
    }

    /// `REPORT RequestId: …\tDuration: … ms\tBilled Duration: … ms\t…`
    pub fn report_line(&self) -> String {
        let mut s = format!(
            "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} \
             MB\tMax Memory Used: {} MB\t",
            self.request_id,
            self.duration.as_secs_f64() * 1000.0,
            self.billed_ms(),
            self.memory_size_mb,
            self.max_memory_mb,
        );
        if let Some(init) = self.init {
            s.push_str(&format!(
                "Init Duration: {:.2} ms\t",
                init.as_secs_f64() * 1000.0
            ));
        }
        if let Some(status) = self.status {
            s.push_str(&format!("Status: {status}\t"));
        }
        s
    }
}

/// The log text answered in `X-Amz-Log-Result`: the last 4 KB, base64.
pub fn log_tail(lines: &[String]) -> String {
    use base64::Engine as _;
    let mut text = lines.join("\n");
    text.push('\n');
    let bytes = text.as_bytes();
    let mut start = bytes.len().saturating_sub(4096);
    while start < bytes.len() && !text.is_char_boundary(start) {
        start += 1;
    }
    base64::engine::general_purpose::STANDARD.encode(&bytes[start..])
}

/// How long the writer gathers calls into one batch.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// One call, as it goes to the writer.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub logs: Vec<LogEvent>,
    pub record: InvocationRecord,
}

/// How much of the calls' history is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub lines_per_function: u32,
    pub records_per_function: u32,
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            lines_per_function: 100_000,
            records_per_function: 10_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Hands calls to the background writer.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<CallRecord>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

/// The writer's task; await it (after dropping every [`Recorder`]) to flush what is left.
pub struct RecorderTask(tokio::task::JoinHandle<()>);

impl RecorderTask {
    pub async fn finish(self) {
        let _ = self.0.await;
    }
}

impl Recorder {
    /// Starts the writer and the retention pass.
    pub fn start(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        retention: Retention,
    ) -> (Self, RecorderTask) {
        let (tx, mut rx) = mpsc::channel::<CallRecord>(16_384);
        let writer = tokio::spawn(async move {
            let mut trim = tokio::time::interval(Duration::from_secs(60));
            loop {
                let first = tokio::select! {
                    r = rx.recv() => match r { Some(r) => r, None => break },
                    _ = trim.tick() => {
                        let cutoff = now_ms() - i64::try_from(retention.max_age.as_millis()).unwrap_or(i64::MAX);
                        if let Err(e) = store
                            .trim_calls(retention.lines_per_function, retention.records_per_function, cutoff)
                            .await
                        {
                            tracing::warn!(error = %e, "trimming logs failed");
                        }
                        continue;
                    }
                };
                let mut logs = first.logs;
                let mut records = vec![first.record];
                // Gather what arrives in the next few milliseconds into the same transaction:
                // one commit per batch, not per call.
                let gather_until = tokio::time::Instant::now() + BATCH_WINDOW;
                while records.len() < 4096 {
                    match tokio::time::timeout_at(gather_until, rx.recv()).await {
                        Ok(Some(r)) => {
                            logs.extend(r.logs);
                            records.push(r.record);
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                if let Err(e) = store.append_calls(&logs, &records).await {
                    tracing::warn!(error = %e, lines = logs.len(), "storing logs failed");
                }
            }
        });
        (Self { tx, metrics }, RecorderTask(writer))
    }

    /// Queues a call's lines and record; drops them (and counts it) if the writer is behind.
    pub fn record(&self, call: CallRecord) {
        let lines = call.logs.len() as u64;
        if self.tx.try_send(call).is_err() {
            self.metrics.logs_dropped.inc_by(lines);
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            request_id: "r-1".into(),
            version: "$LATEST".into(),
            duration: Duration::from_micros(1234),
            init: Some(Duration::from_micros(456)),
            memory_size_mb: 128,
            max_memory_mb: 2,
            status: None,
        }
    }

    #[test]
    fn report_lines_read_as_lambdas() {
        let r = report();
        assert_eq!(r.start_line(), "START RequestId: r-1 Version: $LATEST");
        assert_eq!(r.end_line(), "END RequestId: r-1");
        assert_eq!(
            r.report_line(),
            "REPORT RequestId: r-1\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 \
             MB\tMax Memory Used: 2 MB\tInit Duration: 0.46 ms\t"
        );
    }

    #[test]
    fn the_log_tail_is_the_last_4kb() {
        use base64::Engine as _;
        let lines: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
        let tail = base64::engine::general_purpose::STANDARD
            .decode(log_tail(&lines))
            .unwrap();
        assert_eq!(tail.len(), 4096);
        assert!(String::from_utf8(tail).unwrap().ends_with("line 999\n"));
    }
}
