//! Recording calls: Lambda's `START`/`END`/`REPORT` log lines, invocation records, and the
//! background writer that stores them.
//!
//! The call path never waits for the store: a call's lines and record go into a channel
//! bounded in calls and in bytes, and one task writes them in batches (one transaction per
//! batch). If the writer falls behind, lines are dropped and counted (`stoke_logs_dropped`),
//! never the call.
//!
//! What is kept is bounded in bytes, not only in lines: an event is at most CloudWatch Logs'
//! 256 KB (a longer line is split into several events, as Lambda splits it), and each
//! function and each account has a byte budget ([`Retention`]). The writer makes room before
//! it writes a batch (removing the oldest lines of a function or account that the batch would
//! take over its budget), and a pass every second catches lines other writers stored (the
//! async queue commits its runs' lines itself). A slower pass keeps at most so many lines and
//! records per function and none older than the retention age. Every removal goes in small
//! batches, so the store's write lock is never held for long.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stoke_core::AccountId;
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

/// The most bytes of log lines in one batch (one transaction): a large transaction is as
/// large a step of the write-ahead log.
const BATCH_BYTES: u64 = 1024 * 1024;

/// The most bytes of log lines waiting for the writer; past it, calls' lines are dropped.
const QUEUED_BYTES: u64 = 64 * 1024 * 1024;

/// Lines per statement when the oldest lines go to keep a budget.
const TRIM_ROWS: u32 = 128;

/// CloudWatch Logs' per-event overhead, counted in an event's size (and in the budgets).
pub const EVENT_OVERHEAD: usize = 26;

/// The longest message of one log event: CloudWatch Logs' 256 KB event, less its overhead
/// (Lambda splits a longer line at 262,118 bytes).
pub const MAX_EVENT_BYTES: usize = 256 * 1024 - EVENT_OVERHEAD;

/// A line as log events: the line itself, or, when it is longer than [`MAX_EVENT_BYTES`],
/// consecutive pieces of at most that many bytes (cut at character boundaries), which put
/// together give the line back. Lambda splits long lines the same way; nothing is cut off.
pub fn split_line(line: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(line.len() / MAX_EVENT_BYTES + 1);
    let mut rest = line;
    while rest.len() > MAX_EVENT_BYTES {
        let mut at = MAX_EVENT_BYTES;
        while !rest.is_char_boundary(at) {
            at -= 1;
        }
        let (piece, tail) = rest.split_at(at);
        out.push(piece);
        rest = tail;
    }
    out.push(rest);
    out
}

/// An event's size as CloudWatch Logs counts it (and the budgets count it).
fn event_bytes(e: &LogEvent) -> u64 {
    (e.message.len() + EVENT_OVERHEAD) as u64
}

fn call_bytes(c: &CallRecord) -> u64 {
    c.logs.iter().map(event_bytes).sum()
}

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
    /// Bytes of log events kept per function (events counted as CloudWatch counts them).
    pub bytes_per_function: u64,
    /// Bytes of log events kept per account, all its functions together.
    pub bytes_per_account: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            lines_per_function: 100_000,
            records_per_function: 10_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            bytes_per_function: 64 * 1024 * 1024,
            bytes_per_account: 1024 * 1024 * 1024,
        }
    }
}

type Incoming = HashMap<(AccountId, String), u64>;

/// The bytes a batch of lines adds, per function.
fn incoming(logs: &[LogEvent]) -> Incoming {
    let mut m = Incoming::new();
    for e in logs {
        *m.entry((e.account.clone(), e.function_name.clone()))
            .or_default() += event_bytes(e);
    }
    m
}

/// Removes the oldest lines of every function and account that what is stored plus
/// `incoming` would take over its budget, so that writing `incoming` next keeps every budget.
/// Answers how many lines went.
async fn keep_budgets(
    store: &dyn Store,
    retention: &Retention,
    incoming: &Incoming,
) -> Result<u64, stoke_store::StoreError> {
    let mut used: Incoming = HashMap::new();
    let mut accounts: HashMap<AccountId, (u64, u64)> = HashMap::new();
    for u in store.log_usage().await? {
        accounts.entry(u.account.clone()).or_default().0 += u.bytes;
        used.insert((u.account, u.function_name), u.bytes);
    }
    for ((account, _), bytes) in incoming {
        let a = accounts.entry(account.clone()).or_default();
        a.1 += bytes;
    }
    let mut gone = 0;
    let mut functions: Vec<&(AccountId, String)> = used.keys().chain(incoming.keys()).collect();
    functions.sort();
    functions.dedup();
    for key in functions {
        let stored = used.get(key).copied().unwrap_or(0);
        let adding = incoming.get(key).copied().unwrap_or(0);
        if stored + adding <= retention.bytes_per_function {
            continue;
        }
        let keep = retention.bytes_per_function.saturating_sub(adding);
        gone += store
            .trim_log_bytes(&key.0, Some(&key.1), keep, TRIM_ROWS)
            .await?;
        if let Some(a) = accounts.get_mut(&key.0) {
            a.0 = a.0.saturating_sub(stored.saturating_sub(keep));
        }
    }
    for (account, (stored, adding)) in accounts {
        if stored + adding > retention.bytes_per_account {
            let keep = retention.bytes_per_account.saturating_sub(adding);
            gone += store
                .trim_log_bytes(&account, None, keep, TRIM_ROWS)
                .await?;
        }
    }
    Ok(gone)
}

/// Hands calls to the background writer.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<CallRecord>,
    metrics: Arc<Metrics>,
    /// Bytes of lines in the channel.
    queued: Arc<AtomicU64>,
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
        let queued = Arc::new(AtomicU64::new(0));
        let in_channel = Arc::clone(&queued);
        let m = Arc::clone(&metrics);
        let writer = tokio::spawn(async move {
            let store = store.as_ref();
            let evicted = |n: u64| {
                m.logs_evicted.inc_by(n);
            };
            let mut trim = tokio::time::interval(Duration::from_secs(60));
            let mut budgets = tokio::time::interval(Duration::from_secs(1));
            let take = |r: &CallRecord| {
                in_channel.fetch_sub(call_bytes(r), Ordering::AcqRel);
            };
            loop {
                let first = tokio::select! {
                    r = rx.recv() => match r { Some(r) => r, None => break },
                    _ = budgets.tick() => {
                        // Lines other writers stored (the async queue's commits).
                        match keep_budgets(store, &retention, &Incoming::new()).await {
                            Ok(n) => evicted(n),
                            Err(e) => tracing::warn!(error = %e, "keeping the log budgets failed"),
                        }
                        continue;
                    }
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
                take(&first);
                let mut bytes = call_bytes(&first);
                let mut logs = first.logs;
                let mut records = vec![first.record];
                // Gather what arrives in the next few milliseconds into the same transaction:
                // one commit per batch, not per call.
                let gather_until = tokio::time::Instant::now() + BATCH_WINDOW;
                while records.len() < 4096 && bytes < BATCH_BYTES {
                    match tokio::time::timeout_at(gather_until, rx.recv()).await {
                        Ok(Some(r)) => {
                            take(&r);
                            bytes += call_bytes(&r);
                            logs.extend(r.logs);
                            records.push(r.record);
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                // Room first, so the batch lands within every budget (and the space the oldest
                // lines leave is what the new ones reuse).
                let adding = incoming(&logs);
                match keep_budgets(store, &retention, &adding).await {
                    Ok(n) => evicted(n),
                    Err(e) => tracing::warn!(error = %e, "keeping the log budgets failed"),
                }
                if let Err(e) = store.append_calls(&logs, &records).await {
                    tracing::warn!(error = %e, lines = logs.len(), "storing logs failed");
                }
                if adding.values().any(|b| *b > retention.bytes_per_function) {
                    // One batch held more than a whole budget.
                    match keep_budgets(store, &retention, &Incoming::new()).await {
                        Ok(n) => evicted(n),
                        Err(e) => tracing::warn!(error = %e, "keeping the log budgets failed"),
                    }
                }
            }
        });
        (
            Self {
                tx,
                metrics,
                queued,
            },
            RecorderTask(writer),
        )
    }

    /// Queues a call's lines and record; drops them (and counts it) if the writer is behind
    /// (too many calls or too many bytes waiting).
    pub fn record(&self, call: CallRecord) {
        let lines = call.logs.len() as u64;
        let bytes = call_bytes(&call);
        let room = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q + bytes <= QUEUED_BYTES).then_some(q + bytes)
            })
            .is_ok();
        if !room {
            self.metrics.logs_dropped.inc_by(lines);
            return;
        }
        if self.tx.try_send(call).is_err() {
            self.queued.fetch_sub(bytes, Ordering::AcqRel);
            self.metrics.logs_dropped.inc_by(lines);
        }
    }
}

/// A new request id: a UUID v4 from the thread's generator (seeded from the OS, reseeded
/// now and then), not a getrandom syscall per call as `Uuid::new_v4` makes.
pub fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
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
    fn request_ids_are_distinct_uuid_v4s() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        for id in [a, b] {
            let u = uuid::Uuid::parse_str(&id).expect("a UUID");
            assert_eq!(u.get_version(), Some(uuid::Version::Random), "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
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
    fn a_long_line_is_split_into_events_of_at_most_256_kb() {
        let line = "é".repeat(600_000);
        let pieces = split_line(&line);
        assert_eq!(pieces.len(), 5);
        assert!(
            pieces
                .iter()
                .all(|p| p.len() <= MAX_EVENT_BYTES && !p.is_empty())
        );
        assert_eq!(pieces.concat(), line);
        assert_eq!(split_line("short"), ["short"]);
        assert_eq!(split_line(""), [""]);
        let exact = "x".repeat(MAX_EVENT_BYTES);
        assert_eq!(split_line(&exact).len(), 1);
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
