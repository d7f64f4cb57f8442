//! Asynchronous invocation: the durable enqueue, the workers, retries, maximum event age,
//! destinations and dead letters.
//!
//! ```text
//! Invoke(Event) ─► enqueue writer: many events, one transaction, one fsync, then every 202
//!                   │ (an event that finds a free worker slot is leased to this process in the
//!                   │  same commit and goes straight to a worker: no second commit, no poll)
//!                   ▼
//!  dispatcher: claims due events with a lease (owner, expiry) when slots are free; wakes on
//!              enqueue or on a freed slot, polls as a fallback
//!                   ▼
//!  worker: too old? ─► EventAgeExceeded; else Invoker::invoke (same limits as sync calls,
//!          the event's request id) ─► success: done (+ OnSuccess destination)
//!                                   ─► function error: retry after the configured delays,
//!                                      or RetriesExhausted
//!                                   ─► throttle / platform error: exponential backoff
//!                   ▼
//!  finish writer: many finishes, one transaction: delete or reschedule the event, the
//!                 destination's event or the dead letter, the run's log lines and record
//! ```
//!
//! At least once: a crash keeps every committed event; at start-up the leases of the previous
//! process are released, so whatever was running runs again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use stoke_core::{AccountId, LambdaError};
use stoke_sandbox::Outcome;
use stoke_store::StoreError;
use stoke_store::queue::{
    DeadLetter, EventInvokeConfig, Finish, FinishKind, NewDeadLetter, NewEvent, Queue, QueuedEvent,
};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use crate::event_config::{
    self, DEFAULT_MAX_EVENT_AGE_SECONDS, DEFAULT_MAX_RETRY_ATTEMPTS, EventConfigInput,
};
use crate::invoke::{InvokeRequest, Invoker};
use crate::metrics::{FunctionLabels, Metrics};
use crate::record::{CallRecord, now_ms};

/// How long a cached event-invoke config is used before it is read again.
const CONFIG_TTL: Duration = Duration::from_secs(1);

/// (account, function, qualifier) → when it was read, and what.
type ConfigCache =
    HashMap<(String, String, String), (std::time::Instant, Option<EventInvokeConfig>)>;

/// Lambda's limit on an asynchronous payload.
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;

/// How the queue behaves; Lambda's figures by default.
#[derive(Debug, Clone)]
pub struct AsyncConfig {
    /// Delays before the retries after a function error (Lambda: 1 min, then 2 min).
    pub retry_delays: Vec<Duration>,
    /// Backoff after a throttle or a platform error: from `backoff_min`, doubling, up to
    /// `backoff_max` (Lambda: 1 s to 5 min).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long one second of `MaximumEventAgeInSeconds` lasts (1 s; tests shorten it).
    pub age_unit: Duration,
    /// Events running at once.
    pub workers: u32,
    /// How long a worker's lease lasts: past it, another worker may take the event. Longer
    /// than the longest function timeout (15 min).
    pub lease: Duration,
    /// How often the dispatcher looks for due events when nothing woke it.
    pub poll: Duration,
}

impl Default for AsyncConfig {
    fn default() -> Self {
        Self {
            retry_delays: vec![Duration::from_secs(60), Duration::from_secs(120)],
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            age_unit: Duration::from_secs(1),
            workers: 256,
            lease: Duration::from_secs(16 * 60),
            poll: Duration::from_secs(1),
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl AsyncConfig {
    /// The delay before retry number `failures` (1-based) after a function error.
    pub fn retry_delay(&self, failures: u32) -> Duration {
        let i = usize::try_from(failures.saturating_sub(1)).unwrap_or(usize::MAX);
        self.retry_delays
            .get(i)
            .or(self.retry_delays.last())
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    /// The backoff after a throttle, given the previous one (0 if none).
    pub fn next_backoff_ms(&self, previous_ms: i64) -> i64 {
        let min = ms(self.backoff_min).max(1);
        let max = ms(self.backoff_max).max(min);
        if previous_ms <= 0 {
            min
        } else {
            previous_ms.saturating_mul(2).clamp(min, max)
        }
    }

    /// How long an event may wait, in milliseconds.
    pub fn max_age_ms(&self, seconds: u32) -> i64 {
        i64::from(seconds).saturating_mul(ms(self.age_unit))
    }
}

/// An event as the API hands it over.
#[derive(Debug, Clone, Default)]
pub struct EventRequest {
    pub function: String,
    pub qualifier: Option<String>,
    pub payload: Bytes,
    pub trace_id: Option<String>,
}

struct Pending {
    event: NewEvent,
    ack: oneshot::Sender<Result<(), StoreError>>,
}

/// The dispatcher asks the writer for due events.
struct Claim {
    limit: u32,
    reply: oneshot::Sender<Result<Vec<QueuedEvent>, StoreError>>,
}

type Slot = OwnedSemaphorePermit;

/// The async side of the engine.
pub struct AsyncInvoker {
    queue: Arc<dyn Queue>,
    invoker: Arc<Invoker>,
    region: String,
    config: AsyncConfig,
    owner: String,
    metrics: Arc<Metrics>,
    enqueue_tx: mpsc::Sender<Pending>,
    finish_tx: mpsc::UnboundedSender<Finish>,
    claim_tx: mpsc::Sender<Claim>,
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    starved: AtomicBool,
    /// Event-invoke configs read recently (for [`CONFIG_TTL`]: a deleted function takes its
    /// config with it in the store, which this cache does not hear about).
    configs: Mutex<ConfigCache>,
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
    /// Releases the previous process's leases and starts the writers and the dispatcher.
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
        let (enqueue_tx, enqueue_rx) = mpsc::channel::<Pending>(65_536);
        let (finish_tx, finish_rx) = mpsc::unbounded_channel::<Finish>();
        let (claim_tx, claim_rx) = mpsc::channel::<Claim>(4);
        let (direct_tx, direct_rx) = mpsc::unbounded_channel::<(QueuedEvent, Slot)>();
        let (stop, stop_rx) = watch::channel(false);
        let me = Arc::new(Self {
            queue: Arc::clone(&queue),
            invoker,
            region,
            owner,
            metrics,
            enqueue_tx,
            finish_tx,
            claim_tx,
            wake: Arc::new(Notify::new()),
            slots: Arc::new(Semaphore::new(config.workers.max(1) as usize)),
            starved: AtomicBool::new(false),
            configs: Mutex::new(HashMap::new()),
            stop,
            config,
        });
        let writer = tokio::spawn(queue_writer(
            Arc::clone(&queue),
            me.owner.clone(),
            me.config.lease,
            Arc::clone(&me.slots),
            Arc::clone(&me.wake),
            Arc::clone(&me.metrics),
            enqueue_rx,
            finish_rx,
            claim_rx,
            direct_tx,
        ));
        tokio::spawn(Arc::clone(&me).dispatch(direct_rx, stop_rx.clone()));
        tokio::spawn(stats_loop(Arc::downgrade(&me), stop_rx));
        Ok((
            me,
            AsyncTasks {
                writers: vec![writer],
            },
        ))
    }

    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
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
        // `resolve` checked that the version or alias exists (and is runnable).
        let qualifier = event_config::event_qualifier(req.qualifier.as_deref());
        let request_id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        self.submit(NewEvent {
            request_id: request_id.clone(),
            account: account.clone(),
            function_name: f.name.as_str().to_owned(),
            qualifier,
            payload: req.payload.to_vec(),
            trace_id: req.trace_id,
            enqueued_ms: now,
            next_run_ms: now,
        })
        .await?;
        Ok(request_id)
    }

    async fn submit(&self, event: NewEvent) -> Result<(), LambdaError> {
        let (ack, done) = oneshot::channel();
        let gone = || LambdaError::Service("The server is shutting down.".into());
        self.enqueue_tx
            .send(Pending { event, ack })
            .await
            .map_err(|_| gone())?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "storing an async event failed");
                Err(LambdaError::Service(
                    "The event could not be stored; it was not accepted. Try again.".into(),
                ))
            }
            Err(_) => Err(gone()),
        }
    }

    // ----- event-invoke configurations ---------------------------------------------------

    fn cache_key(account: &AccountId, name: &str, qualifier: &str) -> (String, String, String) {
        (
            account.as_str().to_owned(),
            name.to_owned(),
            qualifier.to_owned(),
        )
    }

    fn forget_config(&self, account: &AccountId, name: &str, qualifier: &str) {
        if let Ok(mut c) = self.configs.lock() {
            c.remove(&Self::cache_key(account, name, qualifier));
        }
    }

    /// The configuration that applies to an event (cached; every write goes through here).
    async fn config_for(&self, ev: &QueuedEvent) -> Option<EventInvokeConfig> {
        let key = Self::cache_key(&ev.account, &ev.function_name, &ev.qualifier);
        if let Some((at, c)) = self.configs.lock().ok().and_then(|c| c.get(&key).cloned())
            && at.elapsed() < CONFIG_TTL
        {
            return c;
        }
        match self
            .queue
            .get_event_config(&ev.account, &ev.function_name, &ev.qualifier)
            .await
        {
            Ok(c) => {
                if let Ok(mut m) = self.configs.lock() {
                    if m.len() > 10_000 {
                        m.clear();
                    }
                    m.insert(key, (std::time::Instant::now(), c.clone()));
                }
                c
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading an event-invoke config failed; defaults apply");
                None
            }
        }
    }

    /// Resolves the function a configuration operation names: (canonical name, qualifier,
    /// qualified ARN).
    async fn config_target(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<(String, String, String), LambdaError> {
        // Answers ResourceNotFoundException for a version or alias that does not exist.
        let f = self
            .invoker
            .control()
            .get_function(account, function, qualifier)
            .await?;
        let arn = f.arn(&self.region);
        let q = event_config::event_qualifier(qualifier);
        let qualified = format!("{arn}:{q}");
        Ok((f.name.as_str().to_owned(), q, qualified))
    }

    fn not_configured(arn: &str) -> LambdaError {
        LambdaError::ResourceNotFound(format!(
            "The function {arn} doesn't have an EventInvokeConfig"
        ))
    }

    /// PutFunctionEventInvokeConfig (`replace`) or UpdateFunctionEventInvokeConfig.
    pub async fn put_config(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: Option<&str>,
        input: &EventConfigInput,
        replace: bool,
    ) -> Result<(EventInvokeConfig, String), LambdaError> {
        event_config::validate(input, account.as_str(), &self.region)?;
        let (name, q, arn) = self.config_target(account, function, qualifier).await?;
        let old = self
            .queue
            .get_event_config(account, &name, &q)
            .await
            .map_err(store_error)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let base = EventInvokeConfig {
            account: account.clone(),
            function_name: name.clone(),
            qualifier: q.clone(),
            maximum_retry_attempts: None,
            maximum_event_age_seconds: None,
            on_success: None,
            on_failure: None,
            last_modified: now,
        };
        let mut c = match (replace, old) {
            (true, _) => event_config::put(base, input, &self.region)?,
            (false, Some(old)) => event_config::update(old, input, &self.region)?,
            (false, None) => return Err(Self::not_configured(&arn)),
        };
        c.last_modified = now;
        self.queue.put_event_config(&c).await.map_err(store_error)?;
        self.forget_config(account, &name, &q);
        Ok((c, arn))
    }

    pub async fn get_config(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<(EventInvokeConfig, String), LambdaError> {
        let (name, q, arn) = self.config_target(account, function, qualifier).await?;
        match self
            .queue
            .get_event_config(account, &name, &q)
            .await
            .map_err(store_error)?
        {
            Some(c) => Ok((c, arn)),
            None => Err(Self::not_configured(&arn)),
        }
    }

    pub async fn delete_config(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<(), LambdaError> {
        let (name, q, arn) = self.config_target(account, function, qualifier).await?;
        let existed = self
            .queue
            .delete_event_config(account, &name, &q)
            .await
            .map_err(store_error)?;
        self.forget_config(account, &name, &q);
        if existed {
            Ok(())
        } else {
            Err(Self::not_configured(&arn))
        }
    }

    /// A function's configurations with their qualified ARNs.
    pub async fn list_configs(
        &self,
        account: &AccountId,
        function: &str,
    ) -> Result<Vec<(EventInvokeConfig, String)>, LambdaError> {
        let f = self
            .invoker
            .control()
            .get_function(account, function, None)
            .await?;
        let arn = f.arn(&self.region);
        let list = self
            .queue
            .list_event_configs(account, f.name.as_str())
            .await
            .map_err(store_error)?;
        Ok(list
            .into_iter()
            .map(|c| {
                let a = format!("{arn}:{}", c.qualifier);
                (c, a)
            })
            .collect())
    }

    // ----- dead letters ------------------------------------------------------------------

    pub async fn dead_letters(
        &self,
        account: &AccountId,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, LambdaError> {
        self.queue
            .list_dead_letters(account, after_id, limit)
            .await
            .map_err(store_error)
    }

    pub async fn dead_letter(
        &self,
        account: &AccountId,
        id: i64,
    ) -> Result<DeadLetter, LambdaError> {
        self.queue
            .get_dead_letter(account, id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| dead_letter_not_found(id))
    }

    /// Sends a dead letter back to the queue for another run (same request id, counts reset,
    /// its age starting again). Answers the request id.
    pub async fn redrive(&self, account: &AccountId, id: i64) -> Result<String, LambdaError> {
        let d = self.dead_letter(account, id).await?;
        let now = now_ms();
        let l = d.letter;
        let event = NewEvent {
            request_id: l.request_id.clone(),
            account: l.account,
            function_name: l.function_name,
            qualifier: l.qualifier,
            payload: l.payload,
            trace_id: l.trace_id,
            enqueued_ms: now,
            next_run_ms: now,
        };
        let moved = self
            .queue
            .redrive(account, id, &event)
            .await
            .map_err(store_error)?;
        if !moved {
            return Err(dead_letter_not_found(id));
        }
        self.wake.notify_one();
        Ok(l.request_id)
    }

    // ----- the workers -------------------------------------------------------------------

    async fn dispatch(
        self: Arc<Self>,
        mut direct: mpsc::UnboundedReceiver<(QueuedEvent, Slot)>,
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
        let poll = tokio::time::Instant::now() + self.config.poll;
        loop {
            // The slots are taken before the claim, so that the dispatcher never waits for one
            // (the events the writer hands over hold theirs already).
            let free = self.slots.available_permits().min(512);
            let Some(mut slots) = (free > 0)
                .then(|| {
                    Arc::clone(&self.slots)
                        .try_acquire_many_owned(free as u32)
                        .ok()
                })
                .flatten()
            else {
                self.starved.store(true, Ordering::SeqCst);
                return poll;
            };
            // The claim goes through the queue's writer, so that it never waits on the
            // writer's lock (nor the writer on it).
            let (reply, answer) = oneshot::channel();
            let limit = u32::try_from(free).unwrap_or(512);
            if self.claim_tx.send(Claim { limit, reply }).await.is_err() {
                return poll;
            }
            let claimed = match answer.await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "claiming async events failed");
                    return poll;
                }
                Err(_) => return poll,
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
            let finish = me.run(ev).await;
            let _ = me.finish_tx.send(finish);
            drop(slot);
            if me.starved.swap(false, Ordering::SeqCst) {
                me.wake.notify_one();
            }
        });
    }

    /// Runs one event and decides what becomes of it.
    async fn run(&self, ev: QueuedEvent) -> Finish {
        let cfg = self.config_for(&ev).await;
        let max_age = self.config.max_age_ms(
            cfg.as_ref()
                .and_then(|c| c.maximum_event_age_seconds)
                .unwrap_or(DEFAULT_MAX_EVENT_AGE_SECONDS),
        );
        let max_retries = cfg
            .as_ref()
            .and_then(|c| c.maximum_retry_attempts)
            .unwrap_or(DEFAULT_MAX_RETRY_ATTEMPTS);
        let labels = FunctionLabels {
            account: ev.account.as_str().to_owned(),
            function: ev.function_name.clone(),
        };
        let now = now_ms();
        let age = now.saturating_sub(ev.enqueued_ms);
        let expires = ev.enqueued_ms.saturating_add(max_age);
        if age > max_age {
            return self.fail(&ev, cfg.as_ref(), "EventAgeExceeded", None, None);
        }
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
        match result {
            Ok(resp) => {
                let (body, function_error) = match &resp.outcome {
                    Outcome::Success(b) => (b.clone(), None),
                    Outcome::Error(e) => (e.body.clone(), Some(e.error_type.clone())),
                };
                let response = Response {
                    executed_version: resp.executed_version.clone(),
                    function_error: function_error.clone(),
                    body: body.to_vec(),
                };
                let mut finish = match function_error {
                    None => Finish {
                        id: ev.id,
                        kind: FinishKind::Delete,
                        follow_up: cfg.as_ref().and_then(|c| c.on_success.as_deref()).and_then(
                            |dest| self.destination_event(&ev, dest, "Success", Some(&response)),
                        ),
                        dead_letter: None,
                        logs: vec![],
                        record: None,
                    },
                    Some(_) => {
                        let failures = ev.failures.saturating_add(1);
                        if failures > max_retries {
                            self.fail(&ev, cfg.as_ref(), "RetriesExhausted", Some(&response), None)
                        } else {
                            self.metrics.async_retries.get_or_create(&labels).inc();
                            let delay = ms(self.config.retry_delay(failures));
                            Finish {
                                id: ev.id,
                                kind: FinishKind::Retry {
                                    next_run_ms: now_ms().saturating_add(delay).min(expires + 1),
                                    failures,
                                    backoff_ms: 0,
                                },
                                follow_up: None,
                                dead_letter: None,
                                logs: vec![],
                                record: None,
                            }
                        }
                    }
                };
                if let Some(CallRecord { logs, record }) = resp.record {
                    finish.logs = logs;
                    finish.record = Some(record);
                }
                finish
            }
            Err(LambdaError::ResourceNotFound(m)) => {
                // The function (or its qualifier) is gone: nothing will ever run the event.
                self.fail(&ev, cfg.as_ref(), "FunctionNotFound", None, Some(m))
            }
            Err(e) => {
                // Throttled, or the platform failed: back off and try again until the age
                // runs out; these do not count against MaximumRetryAttempts.
                self.metrics.async_retries.get_or_create(&labels).inc();
                let backoff = self.config.next_backoff_ms(ev.backoff_ms);
                tracing::debug!(request_id = %ev.request_id, error = %e, backoff, "async event deferred");
                Finish {
                    id: ev.id,
                    kind: FinishKind::Retry {
                        next_run_ms: now_ms().saturating_add(backoff).min(expires + 1),
                        failures: ev.failures,
                        backoff_ms: backoff,
                    },
                    follow_up: None,
                    dead_letter: None,
                    logs: vec![],
                    record: None,
                }
            }
        }
    }

    /// An event that failed for good: to the on-failure destination, else the dead letters.
    fn fail(
        &self,
        ev: &QueuedEvent,
        cfg: Option<&EventInvokeConfig>,
        condition: &str,
        response: Option<&Response>,
        error: Option<String>,
    ) -> Finish {
        let follow_up = cfg
            .and_then(|c| c.on_failure.as_deref())
            .and_then(|dest| self.destination_event(ev, dest, condition, response));
        let dead_letter = if follow_up.is_some() {
            None
        } else {
            self.metrics
                .async_dead_letters
                .get_or_create(&FunctionLabels {
                    account: ev.account.as_str().to_owned(),
                    function: ev.function_name.clone(),
                })
                .inc();
            Some(NewDeadLetter {
                request_id: ev.request_id.clone(),
                account: ev.account.clone(),
                function_name: ev.function_name.clone(),
                qualifier: ev.qualifier.clone(),
                payload: ev.payload.clone(),
                trace_id: ev.trace_id.clone(),
                enqueued_ms: ev.enqueued_ms,
                failed_ms: now_ms(),
                condition: condition.to_owned(),
                runs: ev.runs,
                error_type: response
                    .and_then(|r| r.function_error.clone())
                    .or(error.map(|_| "ResourceNotFoundException".to_owned())),
                response: response.map(|r| r.body.clone()),
            })
        };
        Finish {
            id: ev.id,
            kind: FinishKind::Delete,
            follow_up,
            dead_letter,
            logs: vec![],
            record: None,
        }
    }

    /// The event that delivers Lambda's invocation record to a destination function.
    fn destination_event(
        &self,
        ev: &QueuedEvent,
        destination: &str,
        condition: &str,
        response: Option<&Response>,
    ) -> Option<NewEvent> {
        let (_, name, qualifier) = event_config::parse_function_destination(destination)?;
        let function_arn = format!(
            "{}:{}",
            stoke_core::ids::function_arn(&self.region, &ev.account, &ev.function_name),
            ev.qualifier
        );
        let record = invocation_record(ev, &function_arn, condition, response);
        let now = now_ms();
        Some(NewEvent {
            request_id: uuid::Uuid::new_v4().to_string(),
            account: ev.account.clone(),
            function_name: name,
            qualifier,
            payload: record.into_bytes(),
            trace_id: ev.trace_id.clone(),
            enqueued_ms: now,
            next_run_ms: now,
        })
    }
}

/// Keeps the queue gauges current.
async fn stats_loop(me: std::sync::Weak<AsyncInvoker>, mut stop: watch::Receiver<bool>) {
    {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => {}
            }
            let Some(me) = me.upgrade() else { break };
            if let Ok(s) = me.queue.stats().await {
                me.metrics
                    .async_queue_depth
                    .set(i64::try_from(s.depth).unwrap_or(i64::MAX));
                let oldest = s
                    .oldest_enqueued_ms
                    .map_or(0.0, |t| (now_ms().saturating_sub(t)).max(0) as f64 / 1000.0);
                me.metrics.async_oldest_event_age_seconds.set(oldest);
            }
        }
    }
}

/// What a run answered, for destinations and dead letters.
struct Response {
    executed_version: String,
    function_error: Option<String>,
    body: Vec<u8>,
}

fn store_error(e: StoreError) -> LambdaError {
    tracing::error!(error = %e, "the store failed");
    LambdaError::Service("The store failed; see the server log.".into())
}

fn dead_letter_not_found(id: i64) -> LambdaError {
    LambdaError::ResourceNotFound(format!("Dead letter not found: {id}"))
}

fn json_or_string(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Lambda's invocation record, as destinations receive it.
fn invocation_record(
    ev: &QueuedEvent,
    function_arn: &str,
    condition: &str,
    response: Option<&Response>,
) -> String {
    let ts = time::OffsetDateTime::now_utc();
    let timestamp = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        ts.millisecond()
    );
    let mut record = serde_json::json!({
        "version": "1.0",
        "timestamp": timestamp,
        "requestContext": {
            "requestId": ev.request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": ev.runs,
        },
        "requestPayload": json_or_string(&ev.payload),
    });
    if let (Some(r), Some(o)) = (response, record.as_object_mut()) {
        let mut ctx = serde_json::json!({
            "statusCode": 200,
            "executedVersion": r.executed_version,
        });
        if let (Some(fe), Some(c)) = (&r.function_error, ctx.as_object_mut()) {
            let _ = fe;
            c.insert("functionError".into(), serde_json::json!("Unhandled"));
        }
        o.insert("responseContext".into(), ctx);
        o.insert("responsePayload".into(), json_or_string(&r.body));
    }
    record.to_string()
}

/// The queue's single writer (group commit): every enqueue and every finish waiting goes into
/// one transaction, one fsync; the enqueues are acknowledged after the commit. Events that find
/// a free worker slot are leased in the same commit and go straight to the dispatcher. One
/// writer also means the queue's writes never wait on each other's locks.
#[allow(clippy::too_many_arguments)]
async fn queue_writer(
    queue: Arc<dyn Queue>,
    owner: String,
    lease: Duration,
    slots: Arc<Semaphore>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    mut enqueues: mpsc::Receiver<Pending>,
    mut finishes: mpsc::UnboundedReceiver<Finish>,
    mut claims: mpsc::Receiver<Claim>,
    direct: mpsc::UnboundedSender<(QueuedEvent, Slot)>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(1024);
    let mut done: Vec<Finish> = Vec::with_capacity(1024);
    let mut asked: Vec<Claim> = Vec::new();
    let (mut enq_open, mut fin_open, mut claim_open) = (true, true, true);
    // After a failed commit, the finishes wait a moment before they are tried again.
    let mut pause = Duration::ZERO;
    while enq_open || fin_open || !done.is_empty() {
        if done.is_empty() || pause.is_zero() {
            tokio::select! {
                n = enqueues.recv_many(&mut batch, 4096), if enq_open => {
                    if n == 0 { enq_open = false; }
                }
                n = finishes.recv_many(&mut done, 4096), if fin_open => {
                    if n == 0 { fin_open = false; }
                }
                c = claims.recv(), if claim_open => match c {
                    Some(c) => asked.push(c),
                    None => claim_open = false,
                },
                () = std::future::ready(()), if !enq_open && !fin_open && !claim_open => {}
            }
        } else {
            tokio::time::sleep(pause).await;
        }
        // Whatever else is waiting joins this commit.
        while batch.len() < 4096 {
            match enqueues.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        while done.len() < 8192 {
            match finishes.try_recv() {
                Ok(f) => done.push(f),
                Err(_) => break,
            }
        }
        while let Ok(c) = claims.try_recv() {
            asked.push(c);
        }
        // Claims come after this round's commit (a retry it schedules may be claimable).
        let answer_claims = |asked: &mut Vec<Claim>| {
            let queue = Arc::clone(&queue);
            let owner = owner.clone();
            let asked = std::mem::take(asked);
            async move {
                for c in asked {
                    let now = now_ms();
                    let r = queue
                        .claim(&owner, now, now.saturating_add(ms(lease)), c.limit)
                        .await;
                    let _ = c.reply.send(r);
                }
            }
        };
        if batch.is_empty() && done.is_empty() {
            answer_claims(&mut asked).await;
            continue;
        }
        let mut held: Vec<Option<Slot>> = Vec::with_capacity(batch.len());
        let rows: Vec<(NewEvent, bool)> = batch
            .iter()
            .map(|p| {
                let slot = Arc::clone(&slots).try_acquire_owned().ok();
                let leased = slot.is_some();
                held.push(slot);
                (p.event.clone(), leased)
            })
            .collect();
        let lease_until = now_ms().saturating_add(ms(lease));
        let result = queue.commit(&rows, &owner, lease_until, &done).await;
        if !batch.is_empty() {
            metrics.async_enqueue_batches.observe(batch.len() as f64);
        }
        match result {
            Ok(ids) => {
                pause = Duration::ZERO;
                let mut parked = done
                    .iter()
                    .any(|f| matches!(f.kind, FinishKind::Retry { .. }) || f.follow_up.is_some());
                done.clear();
                for ((p, id), slot) in batch.drain(..).zip(ids).zip(held) {
                    let e = p.event;
                    let _ = p.ack.send(Ok(()));
                    match slot {
                        Some(slot) => {
                            let ev = QueuedEvent {
                                id,
                                request_id: e.request_id,
                                account: e.account,
                                function_name: e.function_name,
                                qualifier: e.qualifier,
                                payload: e.payload,
                                trace_id: e.trace_id,
                                enqueued_ms: e.enqueued_ms,
                                runs: 1,
                                failures: 0,
                                backoff_ms: 0,
                            };
                            let _ = direct.send((ev, slot));
                        }
                        None => parked = true,
                    }
                }
                if parked {
                    wake.notify_one();
                }
            }
            Err(e) => {
                // Nothing of this commit is stored: the enqueues are refused (never
                // acknowledged); the finishes are tried again (their events keep their
                // leases meanwhile, and a restart would run them again anyway).
                tracing::error!(
                    error = %e,
                    events = batch.len(),
                    finishes = done.len(),
                    "an async queue commit failed"
                );
                for p in batch.drain(..) {
                    let _ = p.ack.send(Err(StoreError::Corrupt(e.to_string())));
                }
                pause = (pause * 2).clamp(Duration::from_millis(50), Duration::from_secs(2));
            }
        }
        answer_claims(&mut asked).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_as_lambdas_and_backoff_doubles_to_its_cap() {
        let c = AsyncConfig::default();
        assert_eq!(c.retry_delay(1), Duration::from_secs(60));
        assert_eq!(c.retry_delay(2), Duration::from_secs(120));
        assert_eq!(c.next_backoff_ms(0), 1000);
        assert_eq!(c.next_backoff_ms(1000), 2000);
        assert_eq!(c.next_backoff_ms(200_000), 300_000);
        assert_eq!(c.max_age_ms(60), 60_000);
        let fast = AsyncConfig {
            age_unit: Duration::from_millis(10),
            ..AsyncConfig::default()
        };
        assert_eq!(fast.max_age_ms(60), 600);
    }

    #[test]
    fn the_invocation_record_reads_as_lambdas() {
        let ev = QueuedEvent {
            id: 1,
            request_id: "r".into(),
            account: AccountId::try_from("123456789012".to_owned())
                .unwrap_or_else(|_| unreachable!()),
            function_name: "f".into(),
            qualifier: "$LATEST".into(),
            payload: br#"{"a":1}"#.to_vec(),
            trace_id: None,
            enqueued_ms: 0,
            runs: 3,
            failures: 2,
            backoff_ms: 0,
        };
        let r = Response {
            executed_version: "$LATEST".into(),
            function_error: Some("Unhandled".into()),
            body: br#"{"errorMessage":"x"}"#.to_vec(),
        };
        let v: serde_json::Value = serde_json::from_str(&invocation_record(
            &ev,
            "arn:f:$LATEST",
            "RetriesExhausted",
            Some(&r),
        ))
        .unwrap_or_default();
        assert_eq!(v["version"], "1.0");
        assert_eq!(v["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(v["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(v["requestPayload"]["a"], 1);
        assert_eq!(v["responseContext"]["functionError"], "Unhandled");
        assert_eq!(v["responsePayload"]["errorMessage"], "x");
    }
}
