//! The PostgreSQL side of the durable queue ([`Queue`] for [`PgStore`]): events in
//! `async_events` with their lease (owner, expiry) in the row, dead letters, event-invoke
//! configurations.
//!
//! Several nodes claim from one table: a claim picks its rows with `FOR UPDATE SKIP LOCKED`,
//! so two claims never wait on each other nor take the same event, and an expired lease (a
//! dead node's) is free to the next claim. Each node leases under its own owner name, given at
//! open: a node that starts again releases its own leases and no one else's.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use stoke_core::AccountId;

use super::logs::insert_calls;
use crate::queue::{
    DeadLetter, EventInvokeConfig, Finish, FinishKind, NewDeadLetter, NewEvent, Queue, QueueStats,
    QueuedEvent,
};
use crate::sqlite::accounts::account_id as account;
use crate::{InvocationRecord, LogEvent, PgStore, StoreError};

crate::backend::queue_rows!(PgRow, sqlx::PgConnection);

async fn insert_dead_letter(
    conn: &mut sqlx::PgConnection,
    d: &NewDeadLetter,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dead_letters (request_id, account_id, function_name, qualifier, payload, \
         trace_id, enqueued_ms, failed_ms, condition, runs, error_type, response) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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

/// A finish with nothing after it: its row just goes.
fn plain(f: &Finish) -> bool {
    f.kind == FinishKind::Delete && f.follow_up.is_none() && f.dead_letter.is_none()
}

async fn finish_in(
    tx: &mut sqlx::PgConnection,
    owner: &str,
    finishes: &[Finish],
) -> Result<(), StoreError> {
    let mut logs: Vec<&LogEvent> = Vec::new();
    let mut records: Vec<&InvocationRecord> = Vec::new();
    // Plain deletes go in one statement.
    let ids: Vec<i64> = finishes.iter().filter(|f| plain(f)).map(|f| f.id).collect();
    if !ids.is_empty() {
        sqlx::query("DELETE FROM async_events WHERE lease_owner = $1 AND id = ANY($2)")
            .bind(owner)
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
    }
    for f in finishes {
        // The logs of the run stand whatever happened to the lease: it did run.
        logs.extend(f.logs.iter());
        records.extend(f.record.iter());
        if plain(f) {
            continue;
        }
        let changed = match &f.kind {
            FinishKind::Delete => {
                sqlx::query("DELETE FROM async_events WHERE id = $1 AND lease_owner = $2")
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
                    "UPDATE async_events SET next_run_ms = $1, failures = $2, backoff_ms = $3, \
                     lease_owner = NULL, lease_until_ms = NULL \
                     WHERE id = $4 AND lease_owner = $5",
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
        if changed.rows_affected() == 0 {
            continue;
        }
        if let Some(e) = &f.follow_up {
            insert_event(&mut *tx, e).await?;
        }
        if let Some(d) = &f.dead_letter {
            insert_dead_letter(&mut *tx, d).await?;
        }
    }
    insert_calls(&mut *tx, &logs, &records).await?;
    Ok(())
}

const EVENT_COLUMNS: &str = "e.id, e.request_id, e.account_id, e.function_name, e.qualifier, \
     e.payload, e.trace_id, e.enqueued_ms, e.runs, e.failures, e.backoff_ms, e.hops, \
     e.caller_account_id, e.next_run_ms";

#[async_trait]
impl Queue for PgStore {
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
        let rows = sqlx::query(&format!(
            "WITH picked AS (SELECT id FROM async_events WHERE next_run_ms <= $3 \
               AND (lease_owner IS NULL OR lease_until_ms < $3) ORDER BY next_run_ms, id \
               LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE async_events e SET lease_owner = $1, lease_until_ms = $2, runs = e.runs + 1 \
             FROM picked WHERE e.id = picked.id RETURNING {EVENT_COLUMNS}"
        ))
        .bind(owner)
        .bind(lease_until_ms)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows
            .iter()
            .map(|r| Ok((r.get::<i64, _>("next_run_ms"), queued(r)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Oldest due first (RETURNING keeps no order).
        events.sort_by_key(|(due, e)| (*due, e.id));
        Ok(events.into_iter().map(|(_, e)| e).collect())
    }

    async fn node_owner(&self) -> Result<String, StoreError> {
        Ok(self.owner.clone())
    }

    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE async_events SET lease_owner = NULL, lease_until_ms = NULL \
             WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn renew_leases(&self, owner: &str, lease_until_ms: i64) -> Result<u64, StoreError> {
        let done =
            sqlx::query("UPDATE async_events SET lease_until_ms = $1 WHERE lease_owner = $2")
                .bind(lease_until_ms)
                .bind(owner)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
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
            "SELECT * FROM dead_letters WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
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
        let row = sqlx::query("SELECT * FROM dead_letters WHERE account_id = $1 AND id = $2")
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
        let gone = sqlx::query("DELETE FROM dead_letters WHERE account_id = $1 AND id = $2")
            .bind(account.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn put_event_config(&self, c: &EventInvokeConfig) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO event_invoke_configs (account_id, function_name, qualifier, \
             maximum_retry_attempts, maximum_event_age, on_success, on_failure, last_modified) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (account_id, function_name, qualifier) DO UPDATE SET \
             maximum_retry_attempts = excluded.maximum_retry_attempts, \
             maximum_event_age = excluded.maximum_event_age, on_success = excluded.on_success, \
             on_failure = excluded.on_failure, last_modified = excluded.last_modified",
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
            "SELECT * FROM event_invoke_configs WHERE account_id = $1 AND function_name = $2 \
             AND qualifier = $3",
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
            "DELETE FROM event_invoke_configs WHERE account_id = $1 AND function_name = $2 \
             AND qualifier = $3",
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
            "SELECT * FROM event_invoke_configs WHERE account_id = $1 AND function_name = $2 \
             ORDER BY qualifier",
        )
        .bind(account.as_str())
        .bind(function_name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(config).collect()
    }
}
