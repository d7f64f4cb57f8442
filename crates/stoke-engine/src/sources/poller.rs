//! One mapping's poller: claims what a previous holder left pending, then reads batches (a
//! blocking read, filling up for `MaximumBatchingWindowInSeconds` when it is set), drops (and
//! acknowledges) the records `FilterCriteria` refuses, and runs batches through
//! [`super::deliver`] with as many in flight as the backlog asks ([`Scale`]): one more each time
//! a batch ends well while reads come back full, one fewer when a read is not full, back to one
//! when the function throttles (and no growth for a while after), never more than
//! `ScalingConfig.MaximumConcurrency`. With one in flight the stream's order is kept. A broker
//! that fails is retried with backoff, and after it the poller claims again what is pending
//! (records the broker delivered whose answer was lost with the connection), as it does every
//! [`CLAIM_EVERY`]; records of its own batches in flight are never claimed twice. The latest
//! outcome is the mapping's `LastProcessingResult`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stoke_core::filter::FilterCriteria;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::deliver::{Delivered, Deliverer};
use super::event;
use super::rules::DEFAULT_MAX_CONCURRENCY;
use super::source::{Message, SourceError};

/// How long a read blocks (a stop is noticed at once all the same).
const POLL_WAIT: Duration = Duration::from_secs(2);
/// How often the poller looks for records left pending (and not its own in flight).
const CLAIM_EVERY: Duration = Duration::from_secs(30);
const MAX_BROKER_BACKOFF: Duration = Duration::from_secs(5);
/// How often a busy poller asks the source for its lag (`/metrics`).
const LAG_EVERY: Duration = Duration::from_secs(1);

/// What the supervisor reads of a running poller.
#[derive(Debug, Default)]
pub struct Status {
    pub last_processing_result: Option<String>,
}

/// A running poller: stop it through `stop`.
pub struct Running {
    pub stop: watch::Sender<bool>,
    pub status: Arc<Mutex<Status>>,
    pub task: tokio::task::JoinHandle<()>,
}

fn set_result(status: &Mutex<Status>, r: &str) {
    if let Ok(mut s) = status.lock() {
        s.last_processing_result = Some(r.to_owned());
    }
}

/// Starts the poller of `d`'s mapping.
pub fn start(d: Deliverer, stop: watch::Sender<bool>) -> Running {
    let status = Arc::new(Mutex::new(Status::default()));
    let task = tokio::spawn(run(d, Arc::clone(&status)));
    Running { stop, status, task }
}

async fn run(d: Deliverer, status: Arc<Mutex<Status>>) {
    let m = Arc::clone(&d.mapping);
    let filters = FilterCriteria::parse(m.filters.iter().map(String::as_str)).unwrap_or_default();
    let batch = usize::try_from(m.batch_size.max(1)).unwrap_or(1);
    let max_in_flight = usize::try_from(m.maximum_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY))
        .unwrap_or(1)
        .max(1);
    let window = Duration::from_secs(u64::from(m.batching_window_seconds));
    let sources = &d.metrics.sources;
    let in_flight_gauge = sources.in_flight_batches.get_or_create(&d.labels).clone();
    let mut in_flight: JoinSet<Delivered> = JoinSet::new();
    let mut scale = Scale::new(max_in_flight);
    let mut recovering = true;
    let mut last_claim = Instant::now();
    let mut last_lag: Option<Instant> = None;
    let mut broker_backoff = Duration::from_millis(100);
    let mut stop = d.stop.clone();
    // The ids of the records in the batches in flight.
    let owned: Arc<Mutex<HashSet<String>>> = Arc::default();

    let settle = |res: Delivered, scale: &mut Scale| {
        set_result(&status, &res.result);
        scale.done(res.throttled, Instant::now());
    };
    loop {
        // Stopped, or the supervisor is gone.
        if *stop.borrow() || stop.has_changed().is_err() {
            break;
        }
        while let Some(done) = in_flight.try_join_next() {
            if let Ok(res) = done {
                settle(res, &mut scale);
            }
        }
        in_flight_gauge.set(i64::try_from(in_flight.len()).unwrap_or(i64::MAX));
        if in_flight.len() >= scale.target {
            tokio::select! {
                done = in_flight.join_next() => {
                    if let Some(Ok(res)) = done {
                        settle(res, &mut scale);
                    }
                }
                _ = stop.changed() => {}
            }
            continue;
        }
        let got: Result<Vec<Message>, SourceError> =
            if recovering || last_claim.elapsed() >= CLAIM_EVERY {
                last_claim = Instant::now();
                recovering = false;
                // Everything pending at once (bounded by what earlier reads took), less what
                // this poller is running.
                d.source
                    .claim_stale(Duration::ZERO, MAX_CLAIM)
                    .await
                    .map(|mut c| {
                        if let Ok(o) = owned.lock() {
                            c.retain(|r| !o.contains(&r.id));
                        }
                        c
                    })
            } else {
                tokio::select! {
                    r = fill(&d, batch, window) => r,
                    _ = stop.changed() => continue,
                }
            };
        let records = match got {
            Ok(r) => {
                broker_backoff = Duration::from_millis(100);
                r
            }
            Err(e) => {
                tracing::warn!(mapping = %m.uuid, error = %e, "the event source failed");
                recovering = true;
                set_result(&status, "PROBLEM: Connection error.");
                tokio::select! {
                    () = tokio::time::sleep(broker_backoff) => {}
                    _ = stop.changed() => {}
                }
                broker_backoff = (broker_backoff * 2).min(MAX_BROKER_BACKOFF);
                continue;
            }
        };
        // A full read says there is a backlog.
        scale.read(records.len() >= batch);
        // The lag (one more command) once a second at most, and whenever the source is idle.
        if records.is_empty() || last_lag.is_none_or(|t| t.elapsed() >= LAG_EVERY) {
            last_lag = Some(Instant::now());
            report_lag(&d).await;
        }
        if records.is_empty() {
            continue;
        }
        let now = crate::record::now_ms();
        if let Some(oldest) = records.iter().filter_map(|r| r.sent_ms).min() {
            let age = (now - oldest).max(0) as f64 / 1000.0;
            sources
                .oldest_record_age_seconds
                .get_or_create(&d.labels)
                .set(age);
        }
        let (keep, drop): (Vec<Message>, Vec<Message>) = records
            .into_iter()
            .partition(|r| filters.accepts(&event::filter_view(event::record(&m, &d.region, r))));
        if !drop.is_empty() {
            let ids: Vec<String> = drop.iter().map(|r| r.id.clone()).collect();
            sources.count(&d.labels, "filtered", ids.len());
            if let Err(e) = d.source.ack(&ids).await {
                tracing::warn!(mapping = %m.uuid, error = %e, "cannot acknowledge filtered records");
            }
        }
        if keep.is_empty() {
            continue;
        }
        sources
            .batch_size
            .get_or_create(&d.labels)
            .observe(keep.len() as f64);
        for chunk in chunks(keep, batch) {
            let ids: Vec<String> = chunk.iter().map(|r| r.id.clone()).collect();
            if let Ok(mut o) = owned.lock() {
                o.extend(ids.iter().cloned());
            }
            let worker = d.clone();
            let owned = Arc::clone(&owned);
            in_flight.spawn(async move {
                let res = worker.deliver(chunk).await;
                if let Ok(mut o) = owned.lock() {
                    for id in &ids {
                        o.remove(id);
                    }
                }
                res
            });
        }
    }
    // Stopping: the batches under way finish (each bounded by the function's timeout).
    while let Some(done) = in_flight.join_next().await {
        if let Ok(res) = done {
            set_result(&status, &res.result);
        }
    }
    in_flight_gauge.set(0);
}

/// How long a throttle holds the batches in flight at one.
const CALM_AFTER_THROTTLE: Duration = Duration::from_secs(5);

/// How many batches may be in flight: the poller's answer to the backlog.
#[derive(Debug, Clone)]
pub struct Scale {
    pub target: usize,
    max: usize,
    backlog: bool,
    calm_until: Option<Instant>,
}

impl Scale {
    pub fn new(max: usize) -> Self {
        Self {
            target: 1,
            max: max.max(1),
            backlog: false,
            calm_until: None,
        }
    }

    /// A read came back (`full`: as many records as a batch holds, so more are waiting).
    pub fn read(&mut self, full: bool) {
        self.backlog = full;
        if !full {
            self.target = self.target.saturating_sub(1).max(1);
        }
    }

    /// A batch ended at `now`; `throttled` if the function refused a call of it.
    pub fn done(&mut self, throttled: bool, now: Instant) {
        if throttled {
            self.target = 1;
            self.calm_until = Some(now + CALM_AFTER_THROTTLE);
        } else if self.backlog && self.calm_until.is_none_or(|t| now >= t) {
            self.target = (self.target + 1).min(self.max);
        }
    }
}

/// The source's lag in `/metrics` (when the broker tells it).
async fn report_lag(d: &Deliverer) {
    if let Ok(Some(lag)) = d.source.lag().await {
        d.metrics
            .sources
            .lag
            .get_or_create(&d.labels)
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }
}

/// The most pending records one claim takes over.
const MAX_CLAIM: usize = 10_000;

/// `records` in batches of at most `size` (a claim can bring more than one batch).
fn chunks(mut records: Vec<Message>, size: usize) -> Vec<Vec<Message>> {
    let mut out = Vec::new();
    while records.len() > size {
        let rest = records.split_off(size);
        out.push(std::mem::replace(&mut records, rest));
    }
    out.push(records);
    out
}

/// A batch: the first read waits up to [`POLL_WAIT`]; with a batching window, more reads fill
/// it until it is full or the window has passed.
async fn fill(d: &Deliverer, batch: usize, window: Duration) -> Result<Vec<Message>, SourceError> {
    let mut got = d.source.poll(batch, POLL_WAIT).await?;
    if got.is_empty() || window.is_zero() {
        return Ok(got);
    }
    let until = Instant::now() + window;
    while got.len() < batch {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        got.extend(d.source.poll(batch - got.len(), left).await?);
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_in_flight_follow_the_backlog_and_back_off_after_a_throttle() {
        let t0 = Instant::now();
        let mut s = Scale::new(3);
        assert_eq!(s.target, 1);
        // Full reads and batches that end well: one more each time, up to the maximum.
        for want in [2, 3, 3] {
            s.read(true);
            s.done(false, t0);
            assert_eq!(s.target, want);
        }
        // The backlog drains: one fewer per read that is not full, never below one.
        s.read(false);
        assert_eq!(s.target, 2);
        s.read(false);
        s.read(false);
        assert_eq!(s.target, 1);
        // A throttle: back to one, and no growth until the calm has passed.
        s.read(true);
        s.done(false, t0);
        assert_eq!(s.target, 2);
        s.done(true, t0);
        assert_eq!(s.target, 1);
        s.read(true);
        s.done(false, t0 + Duration::from_secs(1));
        assert_eq!(s.target, 1);
        s.done(false, t0 + CALM_AFTER_THROTTLE);
        assert_eq!(s.target, 2);
    }
}
