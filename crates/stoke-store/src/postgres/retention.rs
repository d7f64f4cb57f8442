//! The PostgreSQL side of log retention (the [`crate::LogStore`] trims delegate here).
//!
//! `log_usage` holds the bytes and lines each function's log lines take, kept exact by
//! statement triggers on `log_events`. Every trim removes the oldest lines (lowest ids) in
//! statements of a bounded number of rows, each its own short transaction whose commit does not
//! wait for the disk (log rows are not acknowledged data), so that no trim holds row locks for
//! long. PostgreSQL has no rowid: invocation records go by their identity `seq`.

use sqlx::Row;
use stoke_core::AccountId;

use crate::trim::{Arg, TrimStep, to_i64, to_u64};
use crate::{LogUsage, PgStore, StoreError};

#[async_trait::async_trait]
impl TrimStep for PgStore {
    /// Runs one retention statement (a bounded `DELETE`) in a transaction of its own that does
    /// not wait for the disk. Answers the rows removed.
    async fn trim_step(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        let mut q = sqlx::query(sql);
        for a in args {
            q = match *a {
                Arg::Int(v) => q.bind(v),
                Arg::Text(t) => q.bind(t),
            };
        }
        let n = q.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}

impl PgStore {
    pub(super) async fn log_usage_impl(&self) -> Result<Vec<LogUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT account_id, function_name, bytes, lines FROM log_usage WHERE lines > 0",
        )
        .fetch_all(&self.pool)
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

    pub(super) async fn trim_log_bytes_impl(
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
                "SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM log_usage \
                 WHERE account_id = $1 AND function_name = $2",
                "SELECT id, (octet_length(message) + 26)::BIGINT FROM log_events \
                 WHERE account_id = $1 AND function_name = $2 ORDER BY id LIMIT $3",
                "DELETE FROM log_events WHERE account_id = $1 AND function_name = $2 \
                 AND id <= $3",
            ),
            None => (
                "SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM log_usage WHERE account_id = $1",
                "SELECT id, (octet_length(message) + 26)::BIGINT FROM log_events \
                 WHERE account_id = $1 ORDER BY id LIMIT $2",
                "DELETE FROM log_events WHERE account_id = $1 AND id <= $2",
            ),
        };
        let mut gone = 0;
        loop {
            let mut q = sqlx::query(used_sql).bind(account.as_str());
            if let Some(f) = function_name {
                q = q.bind(f);
            }
            let used: i64 = q.fetch_one(&self.pool).await?.get(0);
            let excess = used - keep;
            if excess <= 0 {
                return Ok(gone);
            }
            let mut q = sqlx::query(oldest_sql).bind(account.as_str());
            if let Some(f) = function_name {
                q = q.bind(f);
            }
            let rows = q.bind(batch).fetch_all(&self.pool).await?;
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
                return Ok(gone);
            };
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

    pub(super) async fn trim_calls_impl(
        &self,
        max_lines: u32,
        max_records: u32,
        older_than_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut gone = 0;
        // Age: ids grow with time, so the oldest lines are the first ids.
        gone += self
            .delete_in_batches(
                "DELETE FROM log_events WHERE id IN (SELECT id FROM (SELECT id, timestamp_ms \
                 FROM log_events ORDER BY id LIMIT $2) o WHERE timestamp_ms < $1)",
                &[Arg::Int(older_than_ms)],
            )
            .await?;

        // Lines per function: the usage table says who is over.
        let over: Vec<(String, String, i64)> =
            sqlx::query("SELECT account_id, function_name, lines FROM log_usage WHERE lines > $1")
                .bind(i64::from(max_lines))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
        for (account, function, lines) in over {
            gone += self
                .delete_oldest_of(
                    "DELETE FROM log_events WHERE id IN (SELECT id FROM log_events \
                     WHERE account_id = $1 AND function_name = $2 ORDER BY id LIMIT $3)",
                    (&account, &function),
                    lines - i64::from(max_lines),
                )
                .await?;
        }

        // Records per function, by age and by count.
        let over: Vec<(String, String, i64, i64)> = sqlx::query(
            "SELECT account_id, function_name, COUNT(*), MIN(started_ms) FROM invocations \
             GROUP BY account_id, function_name HAVING COUNT(*) > $1 OR MIN(started_ms) < $2",
        )
        .bind(i64::from(max_records))
        .bind(older_than_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
        for (account, function, mut records, oldest) in over {
            if oldest < older_than_ms {
                let old = self
                    .delete_in_batches(
                        "DELETE FROM invocations WHERE seq IN (SELECT seq FROM invocations \
                         WHERE account_id = $1 AND function_name = $2 AND started_ms < $3 \
                         LIMIT $4)",
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
                    "DELETE FROM invocations WHERE seq IN (SELECT seq FROM invocations \
                     WHERE account_id = $1 AND function_name = $2 \
                     ORDER BY started_ms, seq LIMIT $3)",
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
