//! Asynchronous invocation: the durable enqueue, the workers, retries, maximum event age,
//! destinations and dead letters.
//!
//! ```text
//! Invoke(Event) ─► writer: many events, one transaction, one fsync, then every 202
//!                   │ (an event that finds a free worker slot is leased to this process in the
//!                   │  same commit and goes straight to a worker: no second commit, no poll)
//!                   ▼
//!  dispatcher: claims due events with a lease (owner, expiry) when slots are free; wakes on
//!              enqueue or on a freed slot, polls as a fallback
//!                   ▼
//!  worker: too old? ─► EventAgeExceeded; else Invoker::invoke (same limits as sync calls,
//!          the event's request id); decide():
//!                                   ─► success: done (+ OnSuccess destination)
//!                                   ─► function error: retry after the configured delays,
//!                                      or RetriesExhausted (+ OnFailure, or a dead letter)
//!                                   ─► throttle / platform error: exponential backoff
//!                                   ─► a destination's event past the hop limit: dropped
//!                   ▼
//!  writer: many finishes, one transaction: delete or reschedule the event, the
//!          destination's event or the dead letter, the run's log lines and record
//! ```
//!
//! - [`config`]: [`AsyncConfig`], the queue's figures.
//! - [`writer`]: the group-committed writer ([`writer::QueueWriter`]).
//! - [`dispatch`]: the dispatcher that leases events to workers; the queue gauges.
//! - [`worker`]: one run of one event, turned into its finish.
//! - [`decide`]: the pure retry / destination / dead-letter / hop-limit decision.
//! - [`destinations`]: the invocation record and the event that delivers it.
//!
//! At least once: a crash keeps every committed event; at start-up the leases of the previous
//! process are released (this node's own, never another node's), so whatever was running runs
//! again. Leases are short and renewed while their events run ([`dispatch::keep_leases`]):
//! the events of a node that died are taken by the living one lease period after its last
//! renewal. An event carries its hop count
//! (0 when a caller enqueued it, one more for each destination delivery): a chain of
//! destinations (A's destination is B, B's is A) ends at [`decide::MAX_HOPS`].

pub mod config;
pub mod decide;
pub mod destinations;
pub mod dispatch;
pub mod worker;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bytes::Bytes;
use stoke_core::{AccountId, LambdaError};
use stoke_store::StoreError;
use stoke_store::queue::{NewEvent, Queue};
use tokio::sync::{Notify, Semaphore, watch};

pub use config::{AsyncConfig, MAX_ASYNC_PAYLOAD};

use crate::dead_letters::DeadLetters;
use crate::event_config::{self, EventConfigs};
use crate::invoke::Invoker;
use crate::record::now_ms;
use dispatch::Dispatcher;
use worker::Worker;
use writer::{QueueWriter, WriterHandle};

/// An event as the API hands it over.
#[derive(Debug, Clone, Default)]
pub struct EventRequest {
    pub function: String,
    pub qualifier: Option<String>,
    pub payload: Bytes,
    pub trace_id: Option<String>,
}

/// The async side of the engine, as the API sees it: enqueue, event-invoke configurations,
/// dead letters.
pub struct AsyncInvoker {
    queue: Arc<dyn Queue>,
    invoker: Arc<Invoker>,
    config: AsyncConfig,
    owner: String,
    writer: WriterHandle,
    configs: Arc<EventConfigs>,
    dead_letters: DeadLetters,
    slots: Arc<Semaphore>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for AsyncInvoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncInvoker")
            .field("owner", &self.owner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The background writers; await [`AsyncTasks::finish`] after [`AsyncInvoker::shutdown`] and
/// after dropping every handle to the invoker, so that the last finishes reach the store.
pub struct AsyncTasks {
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl AsyncTasks {
    pub async fn finish(self) {
        for w in self.writers {
            let _ = w.await;
        }
    }
}

impl AsyncInvoker {
    /// Releases the previous process's leases and starts the writer and the dispatcher.
    pub async fn start(
        queue: Arc<dyn Queue>,
        invoker: Arc<Invoker>,
        region: String,
        config: AsyncConfig,
    ) -> Result<(Arc<Self>, AsyncTasks), StoreError> {
        // The node's owner name is kept by the store: what its previous run held goes.
        let owner = queue.node_owner().await?;
        let released = queue.release_leases(&owner).await?;
        if released > 0 {
            tracing::info!(
                released,
                "async events left running by the last run will run again"
            );
        }
        let metrics = Arc::clone(invoker.metrics());
        let slots = Arc::new(Semaphore::new(config.workers.max(1) as usize));
        let wake = Arc::new(Notify::new());
        let (writer, direct, writer_task) = QueueWriter {
            queue: Arc::clone(&queue),
            owner: owner.clone(),
            lease: config.lease,
            slots: Arc::clone(&slots),
            wake: Arc::clone(&wake),
            metrics: Arc::clone(&metrics),
        }
        .start();
        let configs = Arc::new(EventConfigs::new(
            Arc::clone(&queue),
            Arc::clone(&invoker),
            region.clone(),
        ));
        let dispatcher = Arc::new(Dispatcher {
            worker: Arc::new(Worker {
                invoker: Arc::clone(&invoker),
                configs: Arc::clone(&configs),
                config: config.clone(),
                region,
                metrics: Arc::clone(&metrics),
            }),
            writer: writer.clone(),
            queue: Arc::clone(&queue),
            slots: Arc::clone(&slots),
            wake: Arc::clone(&wake),
            poll: config.poll,
            starved: AtomicBool::new(false),
        });
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(dispatcher.run(direct, stop_rx.clone()));
        tokio::spawn(dispatch::keep_gauges(
            Arc::clone(&queue),
            metrics,
            stop_rx.clone(),
        ));
        tokio::spawn(dispatch::keep_leases(
            Arc::clone(&queue),
            owner.clone(),
            config.lease,
            config.renew_every(),
            stop_rx,
        ));
        let me = Arc::new(Self {
            dead_letters: DeadLetters::new(Arc::clone(&queue), wake),
            queue,
            invoker,
            config,
            owner,
            writer,
            configs,
            slots,
            stop,
        });
        Ok((
            me,
            AsyncTasks {
                writers: vec![writer_task],
            },
        ))
    }

    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
    }

    /// The owner name this node leases events under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Stops taking events and waits (a bounded time) for the running ones.
    pub async fn shutdown(&self, wait: Duration) {
        let _ = self.stop.send(true);
        let all = self.config.workers.max(1);
        let _ = tokio::time::timeout(wait, self.slots.acquire_many(all)).await;
    }

    /// Adds an event to the queue; answers its request id once its commit is on disk.
    pub async fn enqueue(
        &self,
        account: &AccountId,
        req: EventRequest,
    ) -> Result<String, LambdaError> {
        if req.payload.len() > MAX_ASYNC_PAYLOAD {
            return Err(LambdaError::RequestTooLarge(format!(
                "Request must be smaller than {MAX_ASYNC_PAYLOAD} bytes for the InvokeAsync \
                 operation"
            )));
        }
        let f = self
            .invoker
            .resolve(account, &req.function, req.qualifier.as_deref())
            .await?;
        // `resolve` checked that the version or alias exists (and is runnable), and that the
        // caller may call it: another account's event is queued, run and recorded as the
        // owner's.
        let qualifier = event_config::event_qualifier(req.qualifier.as_deref());
        let request_id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        self.writer
            .enqueue(NewEvent {
                request_id: request_id.clone(),
                account: f.account.clone(),
                function_name: f.name.as_str().to_owned(),
                qualifier,
                payload: req.payload.to_vec(),
                trace_id: req.trace_id,
                enqueued_ms: now,
                next_run_ms: now,
                // A caller's event starts a chain.
                hops: 0,
                caller: (*account != f.account).then(|| account.clone()),
            })
            .await?;
        Ok(request_id)
    }

    /// The event-invoke configurations (their API operations).
    pub fn configs(&self) -> &EventConfigs {
        &self.configs
    }

    /// The dead letters (list, show, redrive).
    pub fn dead_letters(&self) -> &DeadLetters {
        &self.dead_letters
    }
}
