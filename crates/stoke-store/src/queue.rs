//! The durable queue of asynchronous events, the dead letters and the event-invoke
//! configurations: the [`Queue`] trait and its types (the SQLite implementation is
//! `sqlite::queue`).
//!
//! An event is a row of `async_events` from the moment its enqueue commits until it finishes.
//! A worker takes events with a lease (owner and expiry in the row); finishing an event (done,
//! scheduled for a retry, sent to a destination or to the dead letters) and the log lines and
//! record of the run that finished it are one transaction, so a crash either keeps the event
//! (it runs again: at least once) or keeps all of its effects. Writes take slices so that the
//! engine can group many events into one commit.
//!
//! Leases are per owner: a worker finishes and releases only the leases it holds. An owner
//! name is a node's ([`Queue::node_owner`]), the same across the node's restarts, so a node
//! that starts again releases what its previous run was holding and leaves other nodes' alone.
//! A node renews the leases it holds while it runs them ([`Queue::renew_leases`]), so a lease
//! can be short: a dead node's events are free one lease period after its last renewal.

use async_trait::async_trait;
use stoke_core::AccountId;

use crate::{InvocationRecord, LogEvent, StoreError};

/// An event to add to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub request_id: String,
    pub account: AccountId,
    pub function_name: String,
    /// As the caller gave it (`$LATEST` when none).
    pub qualifier: String,
    pub payload: Vec<u8>,
    pub trace_id: Option<String>,
    pub enqueued_ms: i64,
    /// When it may first run.
    pub next_run_ms: i64,
    /// Destination deliveries that led to it (0 for an event a caller enqueued).
    pub hops: u32,
    /// The account that asked for it when that is not the owner's (a call the owner's policy
    /// let in); `None`: the owner's own.
    pub caller: Option<AccountId>,
}

/// An event as a worker holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    pub id: i64,
    pub request_id: String,
    pub account: AccountId,
    pub function_name: String,
    pub qualifier: String,
    pub payload: Vec<u8>,
    pub trace_id: Option<String>,
    pub enqueued_ms: i64,
    /// Times a worker has taken it, this time included.
    pub runs: u32,
    /// Function errors so far.
    pub failures: u32,
    /// The last backoff after a throttle or platform error, 0 if none.
    pub backoff_ms: i64,
    /// Destination deliveries that led to it (0 for an event a caller enqueued).
    pub hops: u32,
    /// The account that asked for it when that is not the owner's (a call the owner's policy
    /// let in); `None`: the owner's own.
    pub caller: Option<AccountId>,
}

/// What happens to a leased event.
#[derive(Debug, Clone, PartialEq)]
pub enum FinishKind {
    /// It is done (ran, or went to a destination or the dead letters): the row goes.
    Delete,
    /// It runs again at `next_run_ms`.
    Retry {
        next_run_ms: i64,
        failures: u32,
        backoff_ms: i64,
    },
}

/// One event's end (or pause), written in one transaction with everything it caused.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub id: i64,
    pub kind: FinishKind,
    /// An event for a destination function.
    pub follow_up: Option<NewEvent>,
    pub dead_letter: Option<NewDeadLetter>,
    /// The log lines and record of the run that led here.
    pub logs: Vec<LogEvent>,
    pub record: Option<InvocationRecord>,
}

/// A failed event, as it goes to the dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    pub request_id: String,
    pub account: AccountId,
    pub function_name: String,
    pub qualifier: String,
    pub payload: Vec<u8>,
    pub trace_id: Option<String>,
    pub enqueued_ms: i64,
    pub failed_ms: i64,
    /// `RetriesExhausted`, `EventAgeExceeded`, `FunctionNotFound`.
    pub condition: String,
    pub runs: u32,
    pub error_type: Option<String>,
    pub response: Option<Vec<u8>>,
}

/// A dead letter, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub letter: NewDeadLetter,
}

/// A function's event-invoke configuration; `None` members take Lambda's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInvokeConfig {
    pub account: AccountId,
    pub function_name: String,
    pub qualifier: String,
    pub maximum_retry_attempts: Option<u32>,
    pub maximum_event_age_seconds: Option<u32>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    /// Seconds since the epoch.
    pub last_modified: f64,
}

/// How full the queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    pub depth: u64,
    pub oldest_enqueued_ms: Option<i64>,
    pub leased: u64,
}

/// The durable queue.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Adds events in one transaction (one commit, on disk before it answers). Events of
    /// `leased` are taken by `owner` until `lease_until_ms` in the same transaction (their
    /// `runs` is 1). Answers the ids, in order.
    async fn enqueue(
        &self,
        events: &[(NewEvent, bool)],
        owner: &str,
        lease_until_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        self.commit(events, owner, lease_until_ms, &[]).await
    }

    /// [`Queue::enqueue`] and [`Queue::finish`] in one transaction: the engine's single
    /// writer groups every enqueue and finish waiting into one commit.
    async fn commit(
        &self,
        events: &[(NewEvent, bool)],
        owner: &str,
        lease_until_ms: i64,
        finishes: &[Finish],
    ) -> Result<Vec<i64>, StoreError>;

    /// Takes up to `limit` runnable events (due, and not leased or with an expired lease),
    /// oldest due first, for `owner` until `lease_until_ms`.
    async fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<QueuedEvent>, StoreError>;

    /// Finishes events leased by `owner`, all in one transaction. An event whose lease is no
    /// longer `owner`'s is left alone (with what its finish carried).
    async fn finish(&self, owner: &str, finishes: &[Finish]) -> Result<(), StoreError> {
        self.commit(&[], owner, 0, finishes).await.map(|_| ())
    }

    /// The owner name this node's workers lease events under: made once and kept by the
    /// store, so the same after a restart (a store that several nodes share keeps one per
    /// node).
    async fn node_owner(&self) -> Result<String, StoreError>;

    /// Drops the leases `owner` holds (at start-up, when no worker of its previous run can
    /// still be running). Leases of other owners stay. Answers how many went.
    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError>;

    /// Extends every lease `owner` holds to `lease_until_ms` (its workers are still running
    /// those events: a lease shorter than a function's timeout stays `owner`'s while it lives,
    /// and expires one lease period after it died). Answers how many were extended.
    async fn renew_leases(&self, owner: &str, lease_until_ms: i64) -> Result<u64, StoreError>;

    /// The earliest `next_run_ms` of an event nobody holds.
    async fn next_due_ms(&self) -> Result<Option<i64>, StoreError>;

    async fn stats(&self) -> Result<QueueStats, StoreError>;

    async fn list_dead_letters(
        &self,
        account: &AccountId,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    async fn get_dead_letter(
        &self,
        account: &AccountId,
        id: i64,
    ) -> Result<Option<DeadLetter>, StoreError>;

    /// Moves a dead letter back into the queue as `event`, in one transaction; `false` if
    /// there is no such dead letter.
    async fn redrive(
        &self,
        account: &AccountId,
        id: i64,
        event: &NewEvent,
    ) -> Result<bool, StoreError>;

    async fn put_event_config(&self, c: &EventInvokeConfig) -> Result<(), StoreError>;

    async fn get_event_config(
        &self,
        account: &AccountId,
        function_name: &str,
        qualifier: &str,
    ) -> Result<Option<EventInvokeConfig>, StoreError>;

    /// `true` if there was one.
    async fn delete_event_config(
        &self,
        account: &AccountId,
        function_name: &str,
        qualifier: &str,
    ) -> Result<bool, StoreError>;

    /// A function's configurations (one per qualifier), in qualifier order.
    async fn list_event_configs(
        &self,
        account: &AccountId,
        function_name: &str,
    ) -> Result<Vec<EventInvokeConfig>, StoreError>;
}
