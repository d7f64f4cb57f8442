//! The SQLite side of log retention (the [`crate::LogStore`] trims delegate here).
//!
//! `log_usage` holds the bytes and lines each function's log lines take; triggers on
//! `log_events` keep it exact, whoever inserts or deletes (migration 0005). Every trim removes
//! the oldest lines (lowest ids) in statements of a bounded number of rows, each its own short
//! commit taken through the store's write gate, so a trim never holds SQLite's single write
//! lock for more than a few milliseconds and every other writer waiting gets in between two
//! batches. Trims commit with `synchronous = NORMAL`, as the log writer does: log
//! rows are not acknowledged data.

use sqlx::Row;
use stoke_core::AccountId;

use crate::trim::{Arg, TrimStep, to_i64, to_u64};
use crate::{LogUsage, SqliteStore, StoreError};

#[async_trait::async_trait]
impl TrimStep for SqliteStore {
    /// Runs one retention statement (a bounded `DELETE`) with the write gate, its commit not
    /// waiting for the disk (log rows are not acknowledged data), then lets the next writer in
    /// before the caller's next batch. Answers the rows removed.
    async fn trim_step(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let n = {
            let mut w = self.writer().await?;
            sqlx::query("PRAGMA synchronous = NORMAL")
                .execute(&mut *w)
                .await?;
            let mut q = sqlx::query(sql);
            for a in args {
                q = match *a {
                    Arg::Int(v) => q.bind(v),
                    Arg::Text(t) => q.bind(t),
                };
            }
            let result = q.execute(&mut *w).await;
            sqlx::query("PRAGMA synchronous = FULL")
                .execute(&mut *w)
                .await?;
            result?.rows_affected()
        };
        tokio::task::yield_now().await;
        Ok(n)
    }
}

impl SqliteStore {
    pub(crate) async fn log_usage_impl(&self) -> Result<Vec<LogUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT account_id, function_name, bytes, lines FROM log_usage WHERE lines > 0",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogUsage {
                    account: AccountId::try_from(r.get::<String, _>(0))
                        .map_err(StoreError::Corrupt)?,
                    function_name: r.get(1),
                    bytes: to_u64(r.get(2)),
                    lines: to_u64(r.get(3)),
                })
            })
            .collect()
    }

    pub(crate) async fn trim_log_bytes_impl(
        &self,
        account: &AccountId,
        function_name: Option<&str>,
        keep_bytes: u64,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let keep = to_i64(keep_bytes);
        let batch = i64::from(batch.max(1)).min(crate::trim::TRIM_BATCH);
        let (used_sql, oldest_sql, delete_sql) = match function_name {
            Some(_) => (
                "SELECT COALESCE(SUM(bytes), 0) FROM log_usage \
                 WHERE account_id = ? AND function_name = ?",
                "SELECT id, octet_length(message) + 26 FROM log_events \
                 WHERE account_id = ? AND function_name = ? ORDER BY id LIMIT ?",
                "DELETE FROM log_events WHERE account_id = ? AND function_name = ? AND id <= ?",
            ),
            None => (
                "SELECT COALESCE(SUM(bytes), 0) FROM log_usage WHERE account_id = ?",
                "SELECT id, octet_length(message) + 26 FROM log_events \
                 WHERE account_id = ? ORDER BY id LIMIT ?",
                "DELETE FROM log_events WHERE account_id = ? AND id <= ?",
            ),
        };
        let mut gone = 0;
        loop {
            // What is used and which lines are oldest are reads: they wait for no writer.
            let mut q = sqlx::query(used_sql).bind(account.as_str());
            if let Some(f) = function_name {
                q = q.bind(f);
            }
            let used: i64 = q.fetch_one(self.pool()).await?.get(0);
            let excess = used - keep;
            if excess <= 0 {
                return Ok(gone);
            }
            let mut q = sqlx::query(oldest_sql).bind(account.as_str());
            if let Some(f) = function_name {
                q = q.bind(f);
            }
            let rows = q.bind(batch).fetch_all(self.pool()).await?;
            // The oldest lines that, together, make up the excess (or the whole batch).
            let mut freed = 0i64;
            let mut last = None;
            for r in &rows {
                freed += r.get::<i64, _>(1);
                last = Some(r.get::<i64, _>(0));
                if freed >= excess {
                    break;
                }
            }
            let Some(last) = last else {
                // The usage says more than the lines hold: nothing left to remove.
                return Ok(gone);
            };
            // Ids only grow, so `id <= last` is the lines just read and no others.
            let mut args = vec![Arg::Text(account.as_str())];
            args.extend(function_name.map(Arg::Text));
            args.push(Arg::Int(last));
            let n = self.trim_step(delete_sql, &args).await?;
            gone += n;
            if n == 0 {
                return Ok(gone);
            }
        }
    }

    pub(crate) async fn trim_calls_impl(
        &self,
        max_lines: u32,
        max_records: u32,
        older_than_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut gone = 0;
        // Age. Ids grow with time, so the oldest lines are the first ids: look at the first
        // batch only (no scan of the table when nothing is old).
        gone += self
            .delete_in_batches(
                "DELETE FROM log_events WHERE id IN (SELECT id FROM (SELECT id, timestamp_ms \
                 FROM log_events ORDER BY id LIMIT ?2) WHERE timestamp_ms < ?1)",
                &[Arg::Int(older_than_ms)],
            )
            .await?;

        // Lines per function: the usage table says who is over.
        let over: Vec<(String, String, i64)> =
            sqlx::query("SELECT account_id, function_name, lines FROM log_usage WHERE lines > ?")
                .bind(i64::from(max_lines))
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
        for (account, function, lines) in over {
            gone += self
                .delete_oldest_of(
                    "DELETE FROM log_events WHERE id IN (SELECT id FROM log_events \
                     WHERE account_id = ? AND function_name = ? ORDER BY id LIMIT ?)",
                    (&account, &function),
                    lines - i64::from(max_lines),
                )
                .await?;
        }

        // Records per function, by age and by count. The functions' index finds both (a
        // delete by age alone would scan the table with the write lock held); finding who is
        // over is a read.
        let over: Vec<(String, String, i64, i64)> = sqlx::query(
            "SELECT account_id, function_name, COUNT(*), MIN(started_ms) FROM invocations \
             GROUP BY account_id, function_name HAVING COUNT(*) > ? OR MIN(started_ms) < ?",
        )
        .bind(i64::from(max_records))
        .bind(older_than_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
        for (account, function, mut records, oldest) in over {
            if oldest < older_than_ms {
                let old = self
                    .delete_in_batches(
                        "DELETE FROM invocations WHERE rowid IN (SELECT rowid FROM invocations \
                         WHERE account_id = ? AND function_name = ? AND started_ms < ? LIMIT ?)",
                        &[
                            Arg::Text(&account),
                            Arg::Text(&function),
                            Arg::Int(older_than_ms),
                        ],
                    )
                    .await?;
                gone += old;
                records -= to_i64(old);
            }
            gone += self
                .delete_oldest_of(
                    "DELETE FROM invocations WHERE rowid IN (SELECT rowid FROM \
                     invocations WHERE account_id = ? AND function_name = ? \
                     ORDER BY started_ms LIMIT ?)",
                    (&account, &function),
                    records - i64::from(max_records),
                )
                .await?;
        }
        self.trim_step("DELETE FROM log_usage WHERE lines <= 0", &[])
            .await?;
        Ok(gone)
    }
}

#[cfg(test)]
mod stall {
    //! How long retention keeps other writers waiting, measured under load.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use crate::queue::{NewEvent, Queue};
    use crate::{AccountStore, InvocationRecord, LogEvent, LogStore, SqliteStore};

    const LINES: usize = 200_000;
    const RECORDS: usize = 100_000;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_never_stalls_other_writers_for_long() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("stoke.db"), crate::MasterKey::generate())
            .await
            .unwrap();
        let (k, _) = s.ensure_default_account().await.unwrap();
        let a = k.account.clone();
        let filled = Instant::now();
        for chunk in 0..(LINES / 50_000) {
            let logs: Vec<LogEvent> = (0..50_000)
                .map(|i| LogEvent {
                    id: 0,
                    account: a.clone(),
                    function_name: if i % 2 == 0 { "f".into() } else { "g".into() },
                    log_stream: "s".into(),
                    timestamp_ms: i64::try_from(chunk * 50_000 + i).unwrap(),
                    request_id: "r".into(),
                    message: format!("line {i} of a function that logs a fair amount of text"),
                })
                .collect();
            let records: Vec<InvocationRecord> = (0..RECORDS / (LINES / 50_000))
                .map(|i| InvocationRecord {
                    request_id: format!("r-{chunk}-{i}"),
                    account: a.clone(),
                    caller_account: a.clone(),
                    function_name: "f".into(),
                    version: "$LATEST".into(),
                    started_ms: i64::try_from(chunk * 50_000 + i).unwrap(),
                    cold: false,
                    init_ms: None,
                    duration_ms: 1.0,
                    billed_ms: 1,
                    memory_size_mb: 128,
                    max_memory_mb: 10,
                    outcome: "Success".into(),
                    error_type: None,
                })
                .collect();
            s.append_calls(&logs, &records).await.unwrap();
        }
        // Checkpoint what the fill wrote, so that the first write measured does not copy it.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&s.pool)
            .await
            .unwrap();
        println!(
            "filled {LINES} lines and {RECORDS} records in {:?}",
            filled.elapsed()
        );

        // Small acknowledged writes in a loop (async enqueues, as the API makes them), each
        // timed, while retention removes nearly everything.
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let s = s.clone();
            let done = Arc::clone(&done);
            let a = a.clone();
            tokio::spawn(async move {
                let mut took = Vec::new();
                let mut n = 0u64;
                while !done.load(Ordering::Acquire) {
                    n += 1;
                    let e = NewEvent {
                        request_id: format!("e-{n}"),
                        account: a.clone(),
                        function_name: "f".into(),
                        qualifier: "$LATEST".into(),
                        payload: b"{}".to_vec(),
                        trace_id: None,
                        enqueued_ms: 0,
                        next_run_ms: 0,
                        hops: 0,
                        caller: None,
                    };
                    let t = Instant::now();
                    s.enqueue(&[(e, false)], "w", 0).await.unwrap();
                    took.push((t.elapsed(), t));
                }
                took
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let trimmed = Instant::now();
        let gone_lines = s.trim_calls(1_000, 1_000, 150_000).await.unwrap();
        let gone_bytes = s.trim_log_bytes(&a, None, 10_000, 128).await.unwrap();
        let trim_took = trimmed.elapsed();
        tokio::time::sleep(Duration::from_millis(50)).await;
        done.store(true, Ordering::Release);
        let took = writer.await.unwrap();
        let mut worst = took.clone();
        worst.sort();
        for (d, at) in worst.iter().rev().take(5) {
            println!(
                "  {d:?} at {:?} (trim started at 0)",
                at.saturating_duration_since(trimmed)
            );
        }
        let mut took: Vec<Duration> = took.into_iter().map(|(d, _)| d).collect();
        took.sort();
        let max = *took.last().unwrap();
        let p99 = took[took.len() * 99 / 100];
        let p50 = took[took.len() / 2];
        println!(
            "retention removed {} rows in {trim_took:?}; {} writes meanwhile: p50 {p50:?}, \
             p99 {p99:?}, max {max:?}",
            gone_lines + gone_bytes,
            took.len()
        );
        assert!(gone_lines + gone_bytes > u64::try_from(LINES).unwrap());
        assert!(took.len() > 10, "the writer barely ran: {}", took.len());
        assert!(
            max < Duration::from_millis(250),
            "a write waited {max:?} behind retention"
        );
    }
}
