//! The SQLite side of log retention (the [`crate::Store`] methods delegate here).
//!
//! `log_usage` holds the bytes and lines each function's log lines take; triggers on
//! `log_events` keep it exact, whoever inserts or deletes (migration 0005). Every trim removes
//! the oldest lines (lowest ids) in statements of a bounded number of rows, each its own short
//! commit, so a trim never holds SQLite's single write lock for long and calls' logs keep
//! flowing in between. Trims commit with `synchronous = NORMAL`, as the log writer does: log
//! rows are not acknowledged data.

use sqlx::Row;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::Sqlite;
use stoke_core::AccountId;

use crate::{LogUsage, SqliteStore, StoreError};

/// Rows per statement of the count and age trims.
const TRIM_BATCH: i64 = 1000;

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Runs one `DELETE` (of at most [`TRIM_BATCH`] rows, with one bound value) again and again
/// until it removes fewer than a batch. Answers the rows removed.
async fn delete_in_batches(
    conn: &mut PoolConnection<Sqlite>,
    sql: &str,
    value: i64,
) -> Result<u64, sqlx::Error> {
    let mut gone = 0;
    loop {
        let n = sqlx::query(sql)
            .bind(value)
            .execute(&mut **conn)
            .await?
            .rows_affected();
        gone += n;
        if n < u64::try_from(TRIM_BATCH).unwrap_or(u64::MAX) {
            return Ok(gone);
        }
    }
}

/// Removes `excess` of one function's oldest rows, [`TRIM_BATCH`] at a time: `sql` is a
/// `DELETE` bound to the account, the function name and the batch size. Answers the rows
/// removed.
async fn delete_oldest_of(
    conn: &mut PoolConnection<Sqlite>,
    sql: &str,
    (account, function): (&str, &str),
    mut excess: i64,
) -> Result<u64, sqlx::Error> {
    let mut gone = 0;
    while excess > 0 {
        let n = sqlx::query(sql)
            .bind(account)
            .bind(function)
            .bind(excess.min(TRIM_BATCH))
            .execute(&mut **conn)
            .await?
            .rows_affected();
        if n == 0 {
            break;
        }
        gone += n;
        excess -= i64::try_from(n).unwrap_or(i64::MAX);
    }
    Ok(gone)
}

impl SqliteStore {
    /// A pooled connection whose commits do not wait for the disk; [`Self::release`] puts it
    /// back to `synchronous = FULL`.
    async fn relaxed(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        Ok(conn)
    }

    async fn release(mut conn: PoolConnection<Sqlite>) -> Result<(), StoreError> {
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

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
        let mut conn = self.relaxed().await?;
        let result = self
            .trim_bytes_on(&mut conn, account, function_name, keep_bytes, batch)
            .await;
        Self::release(conn).await?;
        result
    }

    async fn trim_bytes_on(
        &self,
        conn: &mut PoolConnection<Sqlite>,
        account: &AccountId,
        function_name: Option<&str>,
        keep_bytes: u64,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let keep = to_i64(keep_bytes);
        let batch = i64::from(batch.max(1));
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
            let mut q = sqlx::query(used_sql).bind(account.as_str());
            if let Some(f) = function_name {
                q = q.bind(f);
            }
            let used: i64 = q.fetch_one(&mut **conn).await?.get(0);
            let excess = used - keep;
            if excess <= 0 {
                return Ok(gone);
            }
            let mut q = sqlx::query(oldest_sql).bind(account.as_str());
            if let Some(f) = function_name {
                q = q.bind(f);
            }
            let rows = q.bind(batch).fetch_all(&mut **conn).await?;
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
            let mut q = sqlx::query(delete_sql).bind(account.as_str());
            if let Some(f) = function_name {
                q = q.bind(f);
            }
            let n = q.bind(last).execute(&mut **conn).await?.rows_affected();
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
        let mut conn = self.relaxed().await?;
        let result = self
            .trim_calls_on(&mut conn, max_lines, max_records, older_than_ms)
            .await;
        Self::release(conn).await?;
        result
    }

    async fn trim_calls_on(
        &self,
        conn: &mut PoolConnection<Sqlite>,
        max_lines: u32,
        max_records: u32,
        older_than_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut gone = 0;
        // Age. Ids grow with time, so the oldest lines are the first ids: look at the first
        // batch only (no scan of the table when nothing is old).
        gone += delete_in_batches(
            conn,
            "DELETE FROM log_events WHERE id IN (SELECT id FROM (SELECT id, timestamp_ms FROM \
             log_events ORDER BY id LIMIT 1000) WHERE timestamp_ms < ?)",
            older_than_ms,
        )
        .await?;
        gone += delete_in_batches(
            conn,
            "DELETE FROM invocations WHERE rowid IN (SELECT rowid FROM invocations \
             WHERE started_ms < ? LIMIT 1000)",
            older_than_ms,
        )
        .await?;

        // Lines per function: the usage table says who is over.
        let over: Vec<(String, String, i64)> =
            sqlx::query("SELECT account_id, function_name, lines FROM log_usage WHERE lines > ?")
                .bind(i64::from(max_lines))
                .fetch_all(&mut **conn)
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
        for (account, function, lines) in over {
            gone += delete_oldest_of(
                conn,
                "DELETE FROM log_events WHERE id IN (SELECT id FROM log_events \
                 WHERE account_id = ? AND function_name = ? ORDER BY id LIMIT ?)",
                (&account, &function),
                lines - i64::from(max_lines),
            )
            .await?;
        }

        // Records per function.
        let over: Vec<(String, String, i64)> = sqlx::query(
            "SELECT account_id, function_name, COUNT(*) FROM invocations \
             GROUP BY account_id, function_name HAVING COUNT(*) > ?",
        )
        .bind(i64::from(max_records))
        .fetch_all(&mut **conn)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        for (account, function, records) in over {
            gone += delete_oldest_of(
                conn,
                "DELETE FROM invocations WHERE request_id IN (SELECT request_id FROM \
                 invocations WHERE account_id = ? AND function_name = ? \
                 ORDER BY started_ms LIMIT ?)",
                (&account, &function),
                records - i64::from(max_records),
            )
            .await?;
        }
        sqlx::query("DELETE FROM log_usage WHERE lines <= 0")
            .execute(&mut **conn)
            .await?;
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use crate::{LogEvent, LogQuery, SqliteStore, Store};

    fn line(account: &stoke_core::AccountId, f: &str, m: &str) -> LogEvent {
        LogEvent {
            id: 0,
            account: account.clone(),
            function_name: f.into(),
            log_stream: "s".into(),
            timestamp_ms: 1000,
            request_id: "r".into(),
            message: m.into(),
        }
    }

    async fn messages(s: &SqliteStore, account: &stoke_core::AccountId, f: &str) -> Vec<String> {
        s.read_logs(
            account,
            f,
            &LogQuery {
                limit: 10_000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect()
    }

    #[tokio::test]
    async fn usage_counts_bytes_and_a_byte_trim_removes_the_oldest_first() {
        let s = SqliteStore::in_memory().await.unwrap();
        let (k, _) = s.ensure_default_account().await.unwrap();
        let a = &k.account;
        // Ten lines of 99 bytes ("é" is two bytes in UTF-8), one line of another function.
        let logs: Vec<_> = (0..10)
            .map(|i| line(a, "f", &format!("{i}{}", "é".repeat(49))))
            .collect();
        let sizes: Vec<usize> = logs.iter().map(|e| e.message.len()).collect();
        assert_eq!(sizes[0], 99);
        s.append_calls(&logs, &[]).await.unwrap();
        s.append_calls(&[line(a, "g", "other")], &[]).await.unwrap();
        let mut usage = s.log_usage().await.unwrap();
        usage.sort_by(|x, y| x.function_name.cmp(&y.function_name));
        let f_bytes: u64 = sizes.iter().map(|n| *n as u64 + 26).sum();
        assert_eq!(usage.len(), 2);
        assert_eq!((usage[0].bytes, usage[0].lines), (f_bytes, 10));
        assert_eq!((usage[1].bytes, usage[1].lines), (5 + 26, 1));

        // Keep the bytes of the newest four lines, in batches of three: six lines go.
        let keep: u64 = sizes[6..].iter().map(|n| *n as u64 + 26).sum();
        assert_eq!(s.trim_log_bytes(a, Some("f"), keep, 3).await.unwrap(), 6);
        let kept = messages(&s, a, "f").await;
        assert_eq!(kept.len(), 4);
        assert!(
            kept[0].starts_with('6') && kept[3].starts_with('9'),
            "{kept:?}"
        );
        let usage = s.log_usage().await.unwrap();
        let f = usage.iter().find(|u| u.function_name == "f").unwrap();
        assert_eq!((f.bytes, f.lines), (keep, 4));
        // Under the budget: nothing to do.
        assert_eq!(s.trim_log_bytes(a, Some("f"), keep, 3).await.unwrap(), 0);

        // The account's budget takes the oldest lines of any of its functions.
        assert_eq!(s.trim_log_bytes(a, None, 5 + 26, 100).await.unwrap(), 4);
        assert!(messages(&s, a, "f").await.is_empty());
        assert_eq!(messages(&s, a, "g").await, ["other"]);
    }

    #[tokio::test]
    async fn count_trims_go_in_batches_and_keep_the_newest() {
        let s = SqliteStore::in_memory().await.unwrap();
        let (k, _) = s.ensure_default_account().await.unwrap();
        let logs: Vec<_> = (0..2500)
            .map(|i| line(&k.account, "f", &format!("line {i}")))
            .collect();
        s.append_calls(&logs, &[]).await.unwrap();
        assert_eq!(s.trim_calls(100, 10, 0).await.unwrap(), 2400);
        let kept = messages(&s, &k.account, "f").await;
        assert_eq!(kept.len(), 100);
        assert_eq!(kept[0], "line 2400");
        let usage = s.log_usage().await.unwrap();
        assert_eq!(usage[0].lines, 100);
        // Everything older than the lines' time goes; the usage row goes with them.
        s.trim_calls(100, 10, 2000).await.unwrap();
        assert!(s.log_usage().await.unwrap().is_empty());
    }
}
