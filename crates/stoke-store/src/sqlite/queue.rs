//! The SQLite side of the durable queue ([`Queue`] for [`SqliteStore`]): events in
//! `async_events` with their lease (owner, expiry) in the row, dead letters, event-invoke
//! configurations (migration 0004).

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};
use stoke_core::AccountId;

use crate::queue::{
    DeadLetter, EventInvokeConfig, Finish, FinishKind, NewDeadLetter, NewEvent, Queue, QueueStats,
    QueuedEvent,
};
use crate::{AccountStore, InvocationRecord, LogEvent, SqliteStore, StoreError};

/// The setting that holds this database's lease owner name.
const OWNER_SETTING: &str = "queue.lease-owner";

fn account(s: String) -> Result<AccountId, StoreError> {
    AccountId::try_from(s).map_err(StoreError::Corrupt)
}

crate::backend::queue_rows!(sqlx::sqlite::SqliteRow, sqlx::SqliteConnection);

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
            insert_event(&mut *tx, e).await?;
        }
        if let Some(d) = &f.dead_letter {
            insert_dead_letter(&mut *tx, d).await?;
        }
    }
    super::logs::insert_calls(&mut *tx, &logs, &records).await?;
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
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
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
               enqueued_ms, runs, failures, backoff_ms, hops, caller_account_id",
        )
        .bind(owner)
        .bind(lease_until_ms)
        .bind(now_ms)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.writer().await?)
        .await?;
        rows.iter().map(queued).collect()
    }

    async fn node_owner(&self) -> Result<String, StoreError> {
        // One database file, one node: the name is made with the file and kept in it.
        self.setting_or_init(OWNER_SETTING, &uuid::Uuid::new_v4().to_string())
            .await
    }

    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        // Which events are a read (through the owner index, without the write lock held); the
        // updates go 500 at a time.
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM async_events WHERE lease_owner = ?")
            .bind(owner)
            .fetch_all(self.pool())
            .await?;
        let mut released = 0;
        for chunk in ids.chunks(500) {
            let mut q = QueryBuilder::new(
                "UPDATE async_events SET lease_owner = NULL, lease_until_ms = NULL \
                 WHERE lease_owner = ",
            );
            q.push_bind(owner).push(" AND id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(")");
            released += q
                .build()
                .execute(&mut *self.writer().await?)
                .await?
                .rows_affected();
        }
        Ok(released)
    }

    async fn renew_leases(&self, owner: &str, lease_until_ms: i64) -> Result<u64, StoreError> {
        // A node holds at most its worker count of leases: one statement, through the index.
        let done = sqlx::query("UPDATE async_events SET lease_until_ms = ? WHERE lease_owner = ?")
            .bind(lease_until_ms)
            .bind(owner)
            .execute(&mut *self.writer().await?)
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
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
        let gone = sqlx::query("DELETE FROM dead_letters WHERE account_id = ? AND id = ?")
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
        .execute(&mut *self.writer().await?)
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
        .execute(&mut *self.writer().await?)
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
