//! The dispatcher: hands events to workers while worker slots are free. It takes the events
//! the writer leased in their enqueue's commit as they come, and claims due events (with a
//! lease, through the writer) when woken: by an enqueue that found no free slot, a retry or a
//! destination's event, a freed slot after it went without, a redrive, or, as a fallback, the
//! poll interval or the next event's due time. Also the loop that keeps the queue's gauges,
//! and the one that renews this node's leases while its workers run the events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stoke_store::queue::{Queue, QueuedEvent};
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use super::config::ms;
use super::worker::Worker;
use super::writer::{Leased, Slot, WriterHandle};
use crate::metrics::Metrics;
use crate::record::now_ms;

/// Events claimed in one go at most.
const MAX_CLAIM: usize = 512;

/// Leases events to workers.
pub struct Dispatcher {
    pub worker: Arc<Worker>,
    pub writer: WriterHandle,
    pub queue: Arc<dyn Queue>,
    pub slots: Arc<Semaphore>,
    pub wake: Arc<Notify>,
    /// How often to look for due events when nothing woke the dispatcher.
    pub poll: Duration,
    /// Set when a claim round found no free slot: the next freed slot wakes the dispatcher.
    pub starved: AtomicBool,
}

impl Dispatcher {
    /// Runs until `stop` (or until its sender is gone).
    pub async fn run(
        self: Arc<Self>,
        mut direct: mpsc::UnboundedReceiver<Leased>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut next_check = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                Some((ev, slot)) = direct.recv() => {
                    self.spawn_run(ev, slot);
                    continue;
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(next_check) => {}
            }
            next_check = self.claim_round().await;
        }
        // Events handed over but not started: their leases go at the next start.
        direct.close();
    }

    /// Claims due events while there are free slots; answers when to look again.
    async fn claim_round(self: &Arc<Self>) -> tokio::time::Instant {
        let poll = tokio::time::Instant::now() + self.poll;
        loop {
            // The slots are taken before the claim, so that the dispatcher never waits for one
            // (the events the writer hands over hold theirs already).
            let free = self.slots.available_permits().min(MAX_CLAIM);
            let Some(mut slots) = (free > 0)
                .then(|| {
                    Arc::clone(&self.slots)
                        .try_acquire_many_owned(u32::try_from(free).unwrap_or(1))
                        .ok()
                })
                .flatten()
            else {
                self.starved.store(true, Ordering::SeqCst);
                return poll;
            };
            let limit = u32::try_from(free).unwrap_or(1);
            let Some(claimed) = self.writer.claim(limit).await else {
                return poll;
            };
            let n = claimed.len();
            for ev in claimed {
                // `slots` holds `free` permits and at most `free` events came back.
                match slots.split(1) {
                    Some(slot) => self.spawn_run(ev, slot),
                    None => break,
                }
            }
            drop(slots);
            if n < free {
                break;
            }
        }
        match self.queue.next_due_ms().await {
            Ok(Some(due)) => {
                let wait = u64::try_from(due.saturating_sub(now_ms()).max(0)).unwrap_or(0);
                poll.min(tokio::time::Instant::now() + Duration::from_millis(wait))
            }
            _ => poll,
        }
    }

    fn spawn_run(self: &Arc<Self>, ev: QueuedEvent, slot: Slot) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let finish = me.worker.run(ev).await;
            me.writer.finish(finish);
            drop(slot);
            if me.starved.swap(false, Ordering::SeqCst) {
                me.wake.notify_one();
            }
        });
    }
}

/// Keeps the queue's gauges (depth, age of the oldest event) current until `stop`.
pub async fn keep_gauges(
    queue: Arc<dyn Queue>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        if let Ok(s) = queue.stats().await {
            metrics
                .async_queue_depth
                .set(i64::try_from(s.depth).unwrap_or(i64::MAX));
            let oldest = s
                .oldest_enqueued_ms
                .map_or(0.0, |t| (now_ms().saturating_sub(t)).max(0) as f64 / 1000.0);
            metrics.async_oldest_event_age_seconds.set(oldest);
        }
    }
}

/// Renews every lease `owner` holds, every `every`, to `lease` from now, until `stop`: the
/// events this node runs stay its own however long they run, and a dead node's leases run
/// out one lease period after its last renewal.
pub async fn keep_leases(
    queue: Arc<dyn Queue>,
    owner: String,
    lease: Duration,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        match queue
            .renew_leases(&owner, now_ms().saturating_add(ms(lease)))
            .await
        {
            Ok(_) => failing = false,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "could not renew this node's async event leases");
                }
                failing = true;
            }
        }
    }
}
