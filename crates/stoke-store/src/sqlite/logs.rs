//! The SQLite side of log lines and invocation records ([`LogStore`]): writes, reads, and the
//! retention methods (which live in `retention`).

use async_trait::async_trait;
use sqlx::Row;
use stoke_core::AccountId;

use crate::{
    InvocationRecord, LogEvent, LogPage, LogQuery, LogStore, LogUsage, SqliteStore, StoreError,
};

crate::backend::insert_calls!(sqlx::SqliteConnection);

/// The lines of a [`LogQuery`] up to an id, in id order, with a `LIMIT` left to bind.
macro_rules! lines_where {
    () => {
        " FROM log_events WHERE account_id = ? AND function_name = ? AND id > ? AND id <= ? \
         AND timestamp_ms >= ? AND timestamp_ms < ? AND instr(message, ?) > 0 ORDER BY id LIMIT ?"
    };
}

/// `sql` (a `lines_where!` query) with the query's bounds bound, all but its `LIMIT`.
fn filtered<'q>(
    sql: &'q str,
    (account, function_name): (&'q AccountId, &'q str),
    q: &'q LogQuery,
    until_id: i64,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    sqlx::query(sql)
        .bind(account.as_str())
        .bind(function_name)
        .bind(q.after_id.unwrap_or(0))
        .bind(until_id)
        .bind(q.since_ms.unwrap_or(i64::MIN))
        .bind(q.until_ms.unwrap_or(i64::MAX))
        .bind(q.contains.as_deref().unwrap_or(""))
}

/// How many of the lines (ids and sizes, in order) a page of `limit` lines and `max_bytes`
/// bytes holds: the first always, then each while the total fits.
pub(crate) fn lines_that_fit(sizes: &[(i64, i64)], limit: u32, max_bytes: Option<u64>) -> usize {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let Some(max) = max_bytes else {
        return sizes.len().min(limit);
    };
    let mut total = 0u64;
    sizes
        .iter()
        .take(limit)
        .take_while(|(_, size)| {
            total = total.saturating_add(u64::try_from(*size).unwrap_or(0));
            total <= max
        })
        .count()
        .max(usize::from(!sizes.is_empty() && limit > 0))
}

/// The most rows of one insert statement.
const MOST_ROWS: usize = 64;

/// `items` in chunks of [`MOST_ROWS`], the rest in chunks of falling powers of two (100 rows:
/// 64, 32, 4). A statement's text depends on its row count, and sqlx keeps a prepared
/// statement per text: with these sizes a handful of statements serve every batch, where one
/// statement per count made most batches parse and plan a statement anew.
pub(crate) fn fixed_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = if rest.len() >= MOST_ROWS {
            MOST_ROWS
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn append_calls(
        &self,
        logs: &[LogEvent],
        records: &[InvocationRecord],
    ) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        // Logs are not acknowledged data: their commits need not wait for the disk (WAL with
        // synchronous=NORMAL is still crash-consistent, it may lose the last commits on a power
        // cut). The connection goes back to FULL before anything else uses it.
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        let result = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            insert_calls(&mut tx, logs, records).await?;
            tx.commit().await
        }
        .await;
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await?;
        result?;
        Ok(())
    }

    async fn read_logs(
        &self,
        account: &AccountId,
        function_name: &str,
        q: &LogQuery,
    ) -> Result<LogPage, StoreError> {
        // Which lines fit, from their ids and sizes alone (the messages stay on disk), then
        // those lines; one more than the limit says whether more follow.
        let sizes: Vec<(i64, i64)> = filtered(
            concat!("SELECT id, octet_length(message) + 26", lines_where!()),
            (account, function_name),
            q,
            i64::MAX,
        )
        .bind(i64::from(q.limit).saturating_add(1))
        .map(|r: sqlx::sqlite::SqliteRow| (r.get(0), r.get(1)))
        .fetch_all(&self.pool)
        .await?;
        let fit = lines_that_fit(&sizes, q.limit, q.max_bytes);
        let Some(&(last_id, _)) = sizes.get(fit.wrapping_sub(1)) else {
            return Ok(LogPage::default());
        };
        let rows = filtered(
            concat!(
                "SELECT id, log_stream, timestamp_ms, request_id, message",
                lines_where!()
            ),
            (account, function_name),
            q,
            last_id,
        )
        .bind(i64::try_from(fit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let events = rows
            .iter()
            .map(|r| LogEvent {
                id: r.get(0),
                account: account.clone(),
                function_name: function_name.to_owned(),
                log_stream: r.get(1),
                timestamp_ms: r.get(2),
                request_id: r.get(3),
                message: r.get(4),
            })
            .collect();
        Ok(LogPage {
            events,
            more: sizes.len() > fit,
        })
    }

    async fn recent_invocations(
        &self,
        account: &AccountId,
        function_name: &str,
        limit: u32,
    ) -> Result<Vec<InvocationRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT request_id, version, started_ms, cold, init_ms, duration_ms, billed_ms, \
             memory_size_mb, max_memory_mb, outcome, error_type, caller_account_id \
             FROM invocations \
             WHERE account_id = ? AND function_name = ? ORDER BY started_ms DESC LIMIT ?",
        )
        .bind(account.as_str())
        .bind(function_name)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| InvocationRecord {
                request_id: r.get(0),
                account: account.clone(),
                function_name: function_name.to_owned(),
                version: r.get(1),
                started_ms: r.get(2),
                cold: r.get(3),
                init_ms: r.get(4),
                duration_ms: r.get(5),
                billed_ms: r.get(6),
                memory_size_mb: u32::try_from(r.get::<i64, _>(7)).unwrap_or(0),
                max_memory_mb: u32::try_from(r.get::<i64, _>(8)).unwrap_or(0),
                outcome: r.get(9),
                error_type: r.get(10),
                // Records from before callers were kept were all the owner's own calls.
                caller_account: r
                    .get::<Option<String>, _>(11)
                    .and_then(|c| AccountId::try_from(c).ok())
                    .unwrap_or_else(|| account.clone()),
            })
            .collect())
    }

    async fn log_usage(&self) -> Result<Vec<LogUsage>, StoreError> {
        self.log_usage_impl().await
    }

    async fn trim_log_bytes(
        &self,
        account: &AccountId,
        function_name: Option<&str>,
        keep_bytes: u64,
        batch: u32,
    ) -> Result<u64, StoreError> {
        self.trim_log_bytes_impl(account, function_name, keep_bytes, batch)
            .await
    }

    async fn trim_calls(
        &self,
        max_lines: u32,
        max_records: u32,
        older_than_ms: i64,
    ) -> Result<u64, StoreError> {
        self.trim_calls_impl(max_lines, max_records, older_than_ms)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::fixed_chunks;

    #[test]
    fn a_page_holds_the_lines_that_fit_and_always_the_first() {
        use super::lines_that_fit;
        let sizes = [(1, 100), (2, 100), (3, 5000), (4, 10)];
        assert_eq!(lines_that_fit(&sizes, 10, None), 4);
        assert_eq!(lines_that_fit(&sizes, 2, None), 2);
        assert_eq!(lines_that_fit(&sizes, 10, Some(200)), 2);
        assert_eq!(lines_that_fit(&sizes, 10, Some(199)), 1);
        assert_eq!(
            lines_that_fit(&sizes, 10, Some(10)),
            1,
            "the first line whatever its size"
        );
        assert_eq!(lines_that_fit(&sizes, 10, Some(5200)), 3);
        assert_eq!(lines_that_fit(&[], 10, Some(10)), 0);
        assert_eq!(lines_that_fit(&sizes, 0, Some(10)), 0);
    }

    #[test]
    fn batches_go_in_a_few_fixed_statement_sizes() {
        let sizes = |n: usize| -> Vec<usize> {
            let v = vec![0u8; n];
            fixed_chunks(&v).map(<[u8]>::len).collect()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(100), [64, 32, 4]);
        assert_eq!(sizes(200), [64, 64, 64, 8]);
        assert_eq!(sizes(63), [32, 16, 8, 4, 2, 1]);
        for n in 0..300 {
            let s = sizes(n);
            assert_eq!(s.iter().sum::<usize>(), n);
            assert!(s.iter().all(|k| k.is_power_of_two() && *k <= 64));
        }
    }
}
