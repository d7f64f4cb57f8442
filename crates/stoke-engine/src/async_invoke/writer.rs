//! The queue's single writer (group commit): every enqueue and every finish waiting goes into
//! one transaction, one fsync; the enqueues are acknowledged after the commit. Events that find
//! a free worker slot are leased in the same commit and go straight to the dispatcher. The
//! dispatcher's claims go through the writer too, after its commit, so that no write of the
//! queue ever waits on another's lock.
//!
//! While the store fails (PostgreSQL away), no enqueue waits for more than one attempt: the
//! commit or claim in progress when it arrived, else its own. An enqueue that waited behind a
//! failed attempt is refused without another (its caller gets Lambda's `ServiceException`
//! within the store's connection wait, never an acknowledgement); claims are tried at most
//! every [`CLAIM_PROBE`] until something succeeds again, so that they do not hold the
//! enqueues behind them.
//!
//! [`QueueWriter`] is the writer with its settings; [`QueueWriter::start`] runs it and answers
//! the [`WriterHandle`] the rest of the engine talks to it through.

use std::sync::Arc;
use std::time::Duration;

use stoke_core::LambdaError;
use stoke_store::StoreError;
use stoke_store::queue::{Finish, FinishKind, NewEvent, Queue, QueuedEvent};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::ms;
use crate::metrics::Metrics;
use crate::record::now_ms;

/// A worker slot: held by an event from its lease until its finish is handed back.
pub type Slot = OwnedSemaphorePermit;

/// An event leased in its enqueue's commit, with the slot it holds.
pub type Leased = (QueuedEvent, Slot);

/// Enqueues in one commit at most.
const MAX_ENQUEUES: usize = 4096;
/// Finishes in one commit at most.
const MAX_FINISHES: usize = 8192;
/// While the store fails, how often a claim is tried at most.
const CLAIM_PROBE: Duration = Duration::from_secs(1);

struct Pending {
    event: NewEvent,
    /// When it reached the writer's inbox.
    arrived: Instant,
    /// Answered once its commit is on disk, or with why it was not stored.
    ack: oneshot::Sender<Result<(), String>>,
}

/// The dispatcher asks the writer for due events.
struct Claim {
    limit: u32,
    /// The claimed events, or the store's error (`None`: not tried, the store failed a
    /// moment ago).
    reply: oneshot::Sender<Result<Vec<QueuedEvent>, Option<StoreError>>>,
}

/// The writer and its settings.
pub struct QueueWriter {
    pub queue: Arc<dyn Queue>,
    /// This process's lease owner.
    pub owner: String,
    pub lease: Duration,
    /// The worker slots: an event that finds one free is leased in its enqueue's commit.
    pub slots: Arc<Semaphore>,
    /// Wakes the dispatcher when events wait for it (no free slot, a retry, a destination's
    /// event).
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

/// How the engine talks to a running writer. The writer ends once every handle is gone and
/// every finish handed to it is stored.
#[derive(Clone)]
pub struct WriterHandle {
    enqueues: mpsc::Sender<Pending>,
    finishes: mpsc::UnboundedSender<Finish>,
    claims: mpsc::Sender<Claim>,
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriterHandle")
    }
}

impl WriterHandle {
    /// Stores an event; answers once its commit is on disk.
    pub async fn enqueue(&self, event: NewEvent) -> Result<(), LambdaError> {
        let (ack, done) = oneshot::channel();
        let gone = || LambdaError::Service("The server is shutting down.".into());
        self.enqueues
            .send(Pending {
                event,
                arrived: Instant::now(),
                ack,
            })
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

    /// Hands over an event's finish (stored with the next commit).
    pub fn finish(&self, finish: Finish) {
        let _ = self.finishes.send(finish);
    }

    /// Leases up to `limit` due events to this process (after the writer's next commit);
    /// `None` if the claim failed or the writer is gone.
    pub async fn claim(&self, limit: u32) -> Option<Vec<QueuedEvent>> {
        let (reply, answer) = oneshot::channel();
        self.claims.send(Claim { limit, reply }).await.ok()?;
        match answer.await {
            Ok(Ok(c)) => Some(c),
            Ok(Err(Some(e))) => {
                tracing::warn!(error = %e, "claiming async events failed");
                None
            }
            Ok(Err(None)) => None,
            Err(_) => None,
        }
    }
}

/// What the writer receives, and which of its channels are still open.
struct Inbox {
    enqueues: mpsc::Receiver<Pending>,
    finishes: mpsc::UnboundedReceiver<Finish>,
    claims: mpsc::Receiver<Claim>,
    enqueues_open: bool,
    finishes_open: bool,
    claims_open: bool,
}

/// What one commit takes.
#[derive(Default)]
struct Round {
    batch: Vec<Pending>,
    done: Vec<Finish>,
    asked: Vec<Claim>,
}

impl Inbox {
    fn is_open(&self) -> bool {
        self.enqueues_open || self.finishes_open || self.claims_open
    }

    /// Waits for something to do.
    async fn wait(&mut self, round: &mut Round) {
        tokio::select! {
            n = self.enqueues.recv_many(&mut round.batch, MAX_ENQUEUES), if self.enqueues_open => {
                if n == 0 { self.enqueues_open = false; }
            }
            n = self.finishes.recv_many(&mut round.done, MAX_ENQUEUES), if self.finishes_open => {
                if n == 0 { self.finishes_open = false; }
            }
            c = self.claims.recv(), if self.claims_open => match c {
                Some(c) => round.asked.push(c),
                None => self.claims_open = false,
            },
            () = std::future::ready(()),
                if !self.enqueues_open && !self.finishes_open && !self.claims_open => {}
        }
    }

    /// Whatever else is waiting joins this commit.
    fn gather(&mut self, round: &mut Round) {
        while round.batch.len() < MAX_ENQUEUES {
            match self.enqueues.try_recv() {
                Ok(p) => round.batch.push(p),
                Err(_) => break,
            }
        }
        while round.done.len() < MAX_FINISHES {
            match self.finishes.try_recv() {
                Ok(f) => round.done.push(f),
                Err(_) => break,
            }
        }
        while let Ok(c) = self.claims.try_recv() {
            round.asked.push(c);
        }
    }
}

/// The event a worker holds, for one leased in its enqueue's commit.
fn leased(e: NewEvent, id: i64) -> QueuedEvent {
    QueuedEvent {
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
        hops: e.hops,
        caller: e.caller,
    }
}

impl QueueWriter {
    /// Starts the writer. Answers its handle, the events leased in their enqueue's commit
    /// (for the dispatcher), and the task (it ends when every handle is gone).
    pub fn start(
        self,
    ) -> (
        WriterHandle,
        mpsc::UnboundedReceiver<Leased>,
        JoinHandle<()>,
    ) {
        let (enqueue_tx, enqueues) = mpsc::channel::<Pending>(65_536);
        let (finish_tx, finishes) = mpsc::unbounded_channel::<Finish>();
        let (claim_tx, claims) = mpsc::channel::<Claim>(4);
        let (direct_tx, direct_rx) = mpsc::unbounded_channel::<Leased>();
        let inbox = Inbox {
            enqueues,
            finishes,
            claims,
            enqueues_open: true,
            finishes_open: true,
            claims_open: true,
        };
        let task = tokio::spawn(self.run(inbox, direct_tx));
        let handle = WriterHandle {
            enqueues: enqueue_tx,
            finishes: finish_tx,
            claims: claim_tx,
        };
        (handle, direct_rx, task)
    }

    async fn run(self, mut inbox: Inbox, direct: mpsc::UnboundedSender<Leased>) {
        let mut round = Round::default();
        let mut health = Health::default();
        // After a failed commit, the finishes wait a moment before they are tried again (or
        // until an enqueue or a claim comes: an enqueue never waits for the pause).
        let mut pause = Duration::ZERO;
        while inbox.enqueues_open || inbox.finishes_open || !round.done.is_empty() {
            if round.done.is_empty() || pause.is_zero() {
                inbox.wait(&mut round).await;
            } else if inbox.is_open() {
                let _ = tokio::time::timeout(pause, inbox.wait(&mut round)).await;
            } else {
                tokio::time::sleep(pause).await;
            }
            inbox.gather(&mut round);
            health.refuse_stale(&mut round.batch);
            if !round.batch.is_empty() || !round.done.is_empty() {
                pause = self.commit(&mut round, &direct, pause, &mut health).await;
            }
            // Claims come after this round's commit (a retry it schedules may be claimable).
            self.answer_claims(std::mem::take(&mut round.asked), &mut health)
                .await;
        }
    }

    /// Commits the round's enqueues and finishes; answers the pause before the next try.
    async fn commit(
        &self,
        round: &mut Round,
        direct: &mpsc::UnboundedSender<Leased>,
        pause: Duration,
        health: &mut Health,
    ) -> Duration {
        let mut held: Vec<Option<Slot>> = Vec::with_capacity(round.batch.len());
        let rows: Vec<(NewEvent, bool)> = round
            .batch
            .iter()
            .map(|p| {
                let slot = Arc::clone(&self.slots).try_acquire_owned().ok();
                let leased = slot.is_some();
                held.push(slot);
                (p.event.clone(), leased)
            })
            .collect();
        let lease_until = now_ms().saturating_add(ms(self.lease));
        let result = self
            .queue
            .commit(&rows, &self.owner, lease_until, &round.done)
            .await;
        health.after(result.is_ok());
        if !round.batch.is_empty() {
            self.metrics
                .async_enqueue_batches
                .observe(round.batch.len() as f64);
        }
        match result {
            Ok(ids) => {
                let mut parked = round
                    .done
                    .iter()
                    .any(|f| matches!(f.kind, FinishKind::Retry { .. }) || f.follow_up.is_some());
                round.done.clear();
                for ((p, id), slot) in round.batch.drain(..).zip(ids).zip(held) {
                    let _ = p.ack.send(Ok(()));
                    match slot {
                        Some(slot) => {
                            let _ = direct.send((leased(p.event, id), slot));
                        }
                        None => parked = true,
                    }
                }
                if parked {
                    self.wake.notify_one();
                }
                Duration::ZERO
            }
            Err(e) => {
                // Nothing of this commit is stored: the enqueues are refused (never
                // acknowledged); the finishes are tried again (their events keep their
                // leases meanwhile, and a restart would run them again anyway).
                tracing::error!(
                    error = %e,
                    events = round.batch.len(),
                    finishes = round.done.len(),
                    "an async queue commit failed"
                );
                for p in round.batch.drain(..) {
                    let _ = p.ack.send(Err(e.to_string()));
                }
                (pause * 2).clamp(Duration::from_millis(50), Duration::from_secs(2))
            }
        }
    }

    async fn answer_claims(&self, asked: Vec<Claim>, health: &mut Health) {
        for c in asked {
            if !health.may_claim() {
                let _ = c.reply.send(Err(None));
                continue;
            }
            let now = now_ms();
            let r = self
                .queue
                .claim(
                    &self.owner,
                    now,
                    now.saturating_add(ms(self.lease)),
                    c.limit,
                )
                .await;
            health.after(r.is_ok());
            let _ = c.reply.send(r.map_err(Some));
        }
    }
}

/// Whether the store failed the writer's last attempt (a commit or a claim), and when.
#[derive(Debug, Default)]
struct Health {
    /// When the last failed attempt ended; `None` once one succeeded.
    failed_at: Option<Instant>,
}

impl Health {
    fn after(&mut self, ok: bool) {
        self.failed_at = (!ok).then(Instant::now);
    }

    /// Refuses the enqueues that arrived before the last failed attempt ended: they waited
    /// for it already, and another attempt would double their wait.
    fn refuse_stale(&self, batch: &mut Vec<Pending>) {
        let Some(at) = self.failed_at else { return };
        let (stale, fresh): (Vec<_>, Vec<_>) = std::mem::take(batch)
            .into_iter()
            .partition(|p| p.arrived < at);
        *batch = fresh;
        for p in stale {
            let _ = p.ack.send(Err(
                "not tried: it waited behind an attempt that the store failed".into(),
            ));
        }
    }

    fn may_claim(&self) -> bool {
        self.failed_at.is_none_or(|at| at.elapsed() >= CLAIM_PROBE)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use stoke_core::AccountId;
    use stoke_store::SqliteStore;

    fn event(n: u32, hops: u32) -> NewEvent {
        let now = now_ms();
        NewEvent {
            request_id: format!("r-{n}"),
            account: AccountId::try_from("123456789012".to_owned()).unwrap(),
            function_name: "f".into(),
            qualifier: "$LATEST".into(),
            payload: b"{}".to_vec(),
            trace_id: None,
            enqueued_ms: now,
            next_run_ms: now,
            hops,
            caller: None,
        }
    }

    fn writer(queue: Arc<dyn Queue>, slots: usize) -> QueueWriter {
        QueueWriter {
            queue,
            owner: "me".into(),
            lease: Duration::from_secs(60),
            slots: Arc::new(Semaphore::new(slots)),
            wake: Arc::new(Notify::new()),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// While the store fails the writer (here SQLite's write lock, held by a connection of
    /// the test's own past the store's 10 s busy wait), an enqueue that arrived during the
    /// failing attempt is refused right after it, not after an attempt of its own; once the
    /// lock is gone the next enqueue is stored.
    #[tokio::test]
    async fn an_enqueue_that_waited_behind_a_failed_attempt_is_refused_without_another() {
        use sqlx::Connection as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stoke.db");
        let store = SqliteStore::open(&path, stoke_store::MasterKey::generate())
            .await
            .unwrap();
        let store = Arc::new(store);
        let (handle, _direct, _task) = writer(store.clone(), 4).start();
        handle.enqueue(event(0, 0)).await.unwrap();

        let url = format!("sqlite://{}", path.display());
        let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut locker)
            .await
            .unwrap();
        let first = tokio::spawn({
            let h = handle.clone();
            async move { h.enqueue(event(1, 0)).await }
        });
        // The second arrives while the first's commit waits for the lock.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let second = tokio::spawn({
            let h = handle.clone();
            async move { (h.enqueue(event(2, 0)).await, Instant::now()) }
        });
        assert!(first.await.unwrap().is_err(), "stored under another's lock");
        let first_done = Instant::now();
        let (second, second_done) = second.await.unwrap();
        assert!(second.is_err(), "stored under another's lock");
        let after = second_done.saturating_duration_since(first_done);
        assert!(
            after < Duration::from_secs(2),
            "refused {after:?} after the first"
        );

        sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
        handle.enqueue(event(3, 0)).await.unwrap();
        assert_eq!(store.stats().await.unwrap().depth, 2);
    }

    #[tokio::test]
    async fn events_with_a_free_slot_go_straight_to_a_worker_and_the_rest_wait_for_a_claim() {
        let store = Arc::new(SqliteStore::in_memory().await.unwrap());
        let w = writer(store.clone(), 1);
        let wake = Arc::clone(&w.wake);
        let (handle, mut direct, task) = w.start();
        // One commit for both (they are waiting together): one is leased, one parked.
        let (a, b) = tokio::join!(handle.enqueue(event(1, 0)), handle.enqueue(event(2, 7)));
        a.unwrap();
        b.unwrap();
        let (first, slot) = direct.recv().await.unwrap();
        assert_eq!((first.runs, first.failures), (1, 0));
        // The parked one woke the dispatcher, which claims it through the writer.
        tokio::time::timeout(Duration::from_secs(5), wake.notified())
            .await
            .unwrap();
        let claimed = handle.claim(10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let by_id = |r: &str| {
            if first.request_id == r {
                first.hops
            } else {
                claimed[0].hops
            }
        };
        assert_eq!((by_id("r-1"), by_id("r-2")), (0, 7), "hops are kept");
        // Finishing both deletes them; the writer ends once its handle is gone.
        for ev in [&first, &claimed[0]] {
            handle.finish(Finish {
                id: ev.id,
                kind: FinishKind::Delete,
                follow_up: None,
                dead_letter: None,
                logs: vec![],
                record: None,
            });
        }
        drop((handle, slot));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.stats().await.unwrap().depth, 0);
    }
}
