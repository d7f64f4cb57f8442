//! The durable queue of asynchronous events, the dead letters and the event-invoke
//! configurations: the [`Queue`] trait and its SQLite implementation.
//!
//! An event is a row of `async_events` from the moment its enqueue commits until it finishes.
//! A worker takes events with a lease (owner and expiry in the row); finishing an event (done,
//! scheduled for a retry, sent to a destination or to the dead letters) and the log lines and
//! record of the run that finished it are one transaction, so a crash either keeps the event
//! (it runs again: at least once) or keeps all of its effects. Writes take slices so that the
//! engine can group many events into one commit.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};
use stoke_core::AccountId;

use crate::{InvocationRecord, LogEvent, SqliteStore, StoreError};

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

    /// Drops every lease (at start-up, when no worker of a previous process can still run).
    async fn release_leases(&self) -> Result<u64, StoreError>;

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

fn account(s: String) -> Result<AccountId, StoreError> {
    AccountId::try_from(s).map_err(StoreError::Corrupt)
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn queued(r: &sqlx::sqlite::SqliteRow) -> Result<QueuedEvent, StoreError> {
    Ok(QueuedEvent {
        id: r.get("id"),
        request_id: r.get("request_id"),
        account: account(r.get("account_id"))?,
        function_name: r.get("function_name"),
        qualifier: r.get("qualifier"),
        payload: r.get("payload"),
        trace_id: r.get("trace_id"),
        enqueued_ms: r.get("enqueued_ms"),
        runs: u32_of(r.get("runs")),
        failures: u32_of(r.get("failures")),
        backoff_ms: r.get("backoff_ms"),
        hops: u32_of(r.get("hops")),
    })
}

fn dead_letter(r: &sqlx::sqlite::SqliteRow) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        id: r.get("id"),
        letter: NewDeadLetter {
            request_id: r.get("request_id"),
            account: account(r.get("account_id"))?,
            function_name: r.get("function_name"),
            qualifier: r.get("qualifier"),
            payload: r.get("payload"),
            trace_id: r.get("trace_id"),
            enqueued_ms: r.get("enqueued_ms"),
            failed_ms: r.get("failed_ms"),
            condition: r.get("condition"),
            runs: u32_of(r.get("runs")),
            error_type: r.get("error_type"),
            response: r.get("response"),
        },
    })
}

fn config(r: &sqlx::sqlite::SqliteRow) -> Result<EventInvokeConfig, StoreError> {
    Ok(EventInvokeConfig {
        account: account(r.get("account_id"))?,
        function_name: r.get("function_name"),
        qualifier: r.get("qualifier"),
        maximum_retry_attempts: r
            .get::<Option<i64>, _>("maximum_retry_attempts")
            .map(u32_of),
        maximum_event_age_seconds: r.get::<Option<i64>, _>("maximum_event_age").map(u32_of),
        on_success: r.get("on_success"),
        on_failure: r.get("on_failure"),
        last_modified: r.get("last_modified"),
    })
}

async fn insert_event(
    conn: &mut sqlx::SqliteConnection,
    e: &NewEvent,
    lease: Option<(&str, i64)>,
) -> Result<i64, StoreError> {
    let r = sqlx::query(
        "INSERT INTO async_events (request_id, account_id, function_name, qualifier, payload, \
         trace_id, enqueued_ms, next_run_ms, hops, runs, lease_owner, lease_until_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&e.request_id)
    .bind(e.account.as_str())
    .bind(&e.function_name)
    .bind(&e.qualifier)
    .bind(&e.payload)
    .bind(&e.trace_id)
    .bind(e.enqueued_ms)
    .bind(e.next_run_ms)
    .bind(i64::from(e.hops))
    .bind(i64::from(lease.is_some()))
    .bind(lease.map(|l| l.0))
    .bind(lease.map(|l| l.1))
    .execute(&mut *conn)
    .await?;
    Ok(r.last_insert_rowid())
}

/// Inserts many events with one statement per 500; answers their ids in order.
async fn insert_events(
    conn: &mut sqlx::SqliteConnection,
    events: &[(NewEvent, bool)],
    owner: &str,
    lease_until_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(events.len());
    for chunk in events.chunks(500) {
        let mut q = QueryBuilder::new(
            "INSERT INTO async_events (request_id, account_id, function_name, qualifier, \
             payload, trace_id, enqueued_ms, next_run_ms, hops, runs, lease_owner, \
             lease_until_ms) ",
        );
        q.push_values(chunk, |mut b, (e, leased)| {
            b.push_bind(&e.request_id)
                .push_bind(e.account.as_str())
                .push_bind(&e.function_name)
                .push_bind(&e.qualifier)
                .push_bind(&e.payload)
                .push_bind(&e.trace_id)
                .push_bind(e.enqueued_ms)
                .push_bind(e.next_run_ms)
                .push_bind(i64::from(e.hops))
                .push_bind(i64::from(*leased))
                .push_bind(leased.then_some(owner))
                .push_bind(leased.then_some(lease_until_ms));
        });
        q.push(" RETURNING id, request_id");
        let rows = q.build().fetch_all(&mut *conn).await?;
        let by_request: std::collections::HashMap<String, i64> = rows
            .iter()
            .map(|r| (r.get::<String, _>(1), r.get::<i64, _>(0)))
            .collect();
        for (e, _) in chunk {
            ids.push(*by_request.get(&e.request_id).ok_or_else(|| {
                StoreError::Corrupt(format!("event {} was not inserted", e.request_id))
            })?);
        }
    }
    Ok(ids)
}

async fn insert_dead_letter(
    conn: &mut sqlx::SqliteConnection,
    d: &NewDeadLetter,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dead_letters (request_id, account_id, function_name, qualifier, payload, \
         trace_id, enqueued_ms, failed_ms, condition, runs, error_type, response) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&d.request_id)
    .bind(d.account.as_str())
    .bind(&d.function_name)
    .bind(&d.qualifier)
    .bind(&d.payload)
    .bind(&d.trace_id)
    .bind(d.enqueued_ms)
    .bind(d.failed_ms)
    .bind(&d.condition)
    .bind(i64::from(d.runs))
    .bind(&d.error_type)
    .bind(&d.response)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn finish_in(
    tx: &mut sqlx::SqliteConnection,
    owner: &str,
    finishes: &[Finish],
) -> Result<(), StoreError> {
    let mut logs: Vec<&LogEvent> = Vec::new();
    let mut records: Vec<&InvocationRecord> = Vec::new();
    // Plain deletes (nothing follows them) go in one statement per 900.
    let plain: Vec<&Finish> = finishes
        .iter()
        .filter(|f| {
            f.kind == FinishKind::Delete && f.follow_up.is_none() && f.dead_letter.is_none()
        })
        .collect();
    for chunk in plain.chunks(900) {
        let mut q = QueryBuilder::new("DELETE FROM async_events WHERE lease_owner = ");
        q.push_bind(owner).push(" AND id IN (");
        let mut ids = q.separated(", ");
        for f in chunk {
            ids.push_bind(f.id);
        }
        q.push(")");
        q.build().execute(&mut *tx).await?;
        for f in chunk {
            logs.extend(f.logs.iter());
            records.extend(f.record.iter());
        }
    }
    for f in finishes.iter().filter(|f| {
        !(f.kind == FinishKind::Delete && f.follow_up.is_none() && f.dead_letter.is_none())
    }) {
        let changed = match &f.kind {
            FinishKind::Delete => {
                sqlx::query("DELETE FROM async_events WHERE id = ? AND lease_owner = ?")
                    .bind(f.id)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?
            }
            FinishKind::Retry {
                next_run_ms,
                failures,
                backoff_ms,
            } => {
                sqlx::query(
                    "UPDATE async_events SET next_run_ms = ?, failures = ?, backoff_ms = ?, \
                     lease_owner = NULL, lease_until_ms = NULL \
                     WHERE id = ? AND lease_owner = ?",
                )
                .bind(next_run_ms)
                .bind(i64::from(*failures))
                .bind(backoff_ms)
                .bind(f.id)
                .bind(owner)
                .execute(&mut *tx)
                .await?
            }
        };
        // The logs of the run stand whatever happened to the lease: it did run.
        logs.extend(f.logs.iter());
        records.extend(f.record.iter());
        if changed.rows_affected() == 0 {
            continue;
        }
        if let Some(e) = &f.follow_up {
            insert_event(&mut *tx, e, None).await?;
        }
        if let Some(d) = &f.dead_letter {
            insert_dead_letter(&mut *tx, d).await?;
        }
    }
    crate::sqlite::insert_calls(&mut *tx, &logs, &records).await?;
    Ok(())
}

#[async_trait]
impl Queue for SqliteStore {
    async fn commit(
        &self,
        events: &[(NewEvent, bool)],
        owner: &str,
        lease_until_ms: i64,
        finishes: &[Finish],
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids = insert_events(&mut tx, events, owner, lease_until_ms).await?;
        finish_in(&mut tx, owner, finishes).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<QueuedEvent>, StoreError> {
        let rows = sqlx::query(
            "UPDATE async_events SET lease_owner = ?, lease_until_ms = ?, runs = runs + 1 \
             WHERE id IN (SELECT id FROM async_events WHERE next_run_ms <= ? \
               AND (lease_owner IS NULL OR lease_until_ms < ?) ORDER BY next_run_ms LIMIT ?) \
             RETURNING id, request_id, account_id, function_name, qualifier, payload, trace_id, \
               enqueued_ms, runs, failures, backoff_ms, hops",
        )
        .bind(owner)
        .bind(lease_until_ms)
        .bind(now_ms)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(queued).collect()
    }

    async fn release_leases(&self) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE async_events SET lease_owner = NULL, lease_until_ms = NULL \
             WHERE lease_owner IS NOT NULL",
        )
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        let row =
            sqlx::query("SELECT MIN(next_run_ms) FROM async_events WHERE lease_owner IS NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.get(0))
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*), MIN(enqueued_ms), COUNT(lease_owner) FROM async_events")
                .fetch_one(&self.pool)
                .await?;
        Ok(QueueStats {
            depth: u64::try_from(row.get::<i64, _>(0)).unwrap_or(0),
            oldest_enqueued_ms: row.get(1),
            leased: u64::try_from(row.get::<i64, _>(2)).unwrap_or(0),
        })
    }

    async fn list_dead_letters(
        &self,
        account: &AccountId,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM dead_letters WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(account.as_str())
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(dead_letter).collect()
    }

    async fn get_dead_letter(
        &self,
        account: &AccountId,
        id: i64,
    ) -> Result<Option<DeadLetter>, StoreError> {
        let row = sqlx::query("SELECT * FROM dead_letters WHERE account_id = ? AND id = ?")
            .bind(account.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(dead_letter).transpose()
    }

    async fn redrive(
        &self,
        account: &AccountId,
        id: i64,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM dead_letters WHERE account_id = ? AND id = ?")
            .bind(account.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, event, None).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn put_event_config(&self, c: &EventInvokeConfig) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO event_invoke_configs (account_id, function_name, qualifier, \
             maximum_retry_attempts, maximum_event_age, on_success, on_failure, last_modified) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.account.as_str())
        .bind(&c.function_name)
        .bind(&c.qualifier)
        .bind(c.maximum_retry_attempts.map(i64::from))
        .bind(c.maximum_event_age_seconds.map(i64::from))
        .bind(&c.on_success)
        .bind(&c.on_failure)
        .bind(c.last_modified)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_event_config(
        &self,
        account: &AccountId,
        function_name: &str,
        qualifier: &str,
    ) -> Result<Option<EventInvokeConfig>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM event_invoke_configs WHERE account_id = ? AND function_name = ? \
             AND qualifier = ?",
        )
        .bind(account.as_str())
        .bind(function_name)
        .bind(qualifier)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(config).transpose()
    }

    async fn delete_event_config(
        &self,
        account: &AccountId,
        function_name: &str,
        qualifier: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "DELETE FROM event_invoke_configs WHERE account_id = ? AND function_name = ? \
             AND qualifier = ?",
        )
        .bind(account.as_str())
        .bind(function_name)
        .bind(qualifier)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn list_event_configs(
        &self,
        account: &AccountId,
        function_name: &str,
    ) -> Result<Vec<EventInvokeConfig>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM event_invoke_configs WHERE account_id = ? AND function_name = ? \
             ORDER BY qualifier",
        )
        .bind(account.as_str())
        .bind(function_name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(config).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn acct() -> AccountId {
        AccountId::try_from("123456789012".to_owned()).unwrap()
    }

    fn event(n: u32, now: i64) -> NewEvent {
        NewEvent {
            request_id: format!("r-{n}"),
            account: acct(),
            function_name: "f".into(),
            qualifier: "$LATEST".into(),
            payload: b"{}".to_vec(),
            trace_id: None,
            enqueued_ms: now,
            next_run_ms: now,
            hops: 0,
        }
    }

    fn finish(id: i64, kind: FinishKind) -> Finish {
        Finish {
            id,
            kind,
            follow_up: None,
            dead_letter: None,
            logs: vec![],
            record: None,
        }
    }

    #[tokio::test]
    async fn a_lease_hides_an_event_until_it_expires() {
        let s = SqliteStore::in_memory().await.unwrap();
        s.enqueue(&[(event(1, 0), false)], "a", 0).await.unwrap();
        let got = s.claim("a", 10, 1000, 10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].runs, 1);
        // Leased: nobody else sees it until the lease ends.
        assert!(s.claim("b", 500, 2000, 10).await.unwrap().is_empty());
        let again = s.claim("b", 1001, 2000, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].runs, 2);
        // The old owner's finish no longer counts; the new owner's does.
        s.finish("a", &[finish(again[0].id, FinishKind::Delete)])
            .await
            .unwrap();
        assert_eq!(s.stats().await.unwrap().depth, 1);
        s.finish("b", &[finish(again[0].id, FinishKind::Delete)])
            .await
            .unwrap();
        assert_eq!(s.stats().await.unwrap().depth, 0);
    }

    #[tokio::test]
    async fn a_retry_waits_for_its_time_and_start_up_releases_leases() {
        let s = SqliteStore::in_memory().await.unwrap();
        let ids = s
            .enqueue(&[(event(1, 0), true), (event(2, 0), false)], "a", 10_000)
            .await
            .unwrap();
        assert_eq!(ids.len(), 2);
        let got = s.claim("a", 0, 10_000, 10).await.unwrap();
        assert_eq!(got.len(), 1, "the leased one is not claimed twice");
        s.finish(
            "a",
            &[finish(
                got[0].id,
                FinishKind::Retry {
                    next_run_ms: 60_000,
                    failures: 1,
                    backoff_ms: 0,
                },
            )],
        )
        .await
        .unwrap();
        assert_eq!(s.next_due_ms().await.unwrap(), Some(60_000));
        assert!(s.claim("a", 5_000, 70_000, 10).await.unwrap().is_empty());
        // A new process releases the first event's lease.
        assert_eq!(s.release_leases().await.unwrap(), 1);
        let now = s.claim("c", 1, 10_000, 10).await.unwrap();
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].request_id, "r-1");
        let later = s.claim("c", 60_000, 70_000, 10).await.unwrap();
        let r2 = later.iter().find(|e| e.request_id == "r-2").unwrap();
        assert_eq!(r2.failures, 1);
    }

    #[tokio::test]
    async fn an_events_hops_are_kept_by_enqueue_and_follow_up() {
        let s = SqliteStore::in_memory().await.unwrap();
        let mut first = event(1, 0);
        first.hops = 3;
        let ids = s.enqueue(&[(first, true)], "a", 10).await.unwrap();
        let mut f = finish(ids[0], FinishKind::Delete);
        let mut next = event(2, 0);
        next.hops = 4;
        f.follow_up = Some(next);
        s.finish("a", &[f]).await.unwrap();
        let got = s.claim("a", 0, 10, 10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].request_id.as_str(), got[0].hops), ("r-2", 4));
    }

    #[tokio::test]
    async fn dead_letters_redrive_into_the_queue() {
        let s = SqliteStore::in_memory().await.unwrap();
        let ids = s.enqueue(&[(event(1, 0), true)], "a", 10).await.unwrap();
        let e = event(1, 0);
        let mut f = finish(ids[0], FinishKind::Delete);
        f.dead_letter = Some(NewDeadLetter {
            request_id: e.request_id.clone(),
            account: acct(),
            function_name: "f".into(),
            qualifier: "$LATEST".into(),
            payload: e.payload.clone(),
            trace_id: None,
            enqueued_ms: 0,
            failed_ms: 5,
            condition: "EventAgeExceeded".into(),
            runs: 1,
            error_type: None,
            response: None,
        });
        s.finish("a", &[f]).await.unwrap();
        let list = s.list_dead_letters(&acct(), 0, 10).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].letter.condition, "EventAgeExceeded");
        assert!(s.redrive(&acct(), list[0].id, &e).await.unwrap());
        assert!(!s.redrive(&acct(), list[0].id, &e).await.unwrap());
        assert_eq!(s.stats().await.unwrap().depth, 1);
        assert!(
            s.list_dead_letters(&acct(), 0, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
