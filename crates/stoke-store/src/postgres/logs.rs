//! The PostgreSQL side of log lines and invocation records ([`LogStore`]): writes, reads, and
//! the retention methods (which live in `retention`).
//!
//! Log commits do not wait for the disk (`synchronous_commit = off` in their transaction):
//! log rows are not acknowledged data, as on SQLite (whose log commits are `NORMAL`).
//!
//! A function's lines become visible in id order: readers follow them by id (`after_id`),
//! and with several nodes writing, a line whose id was taken first could otherwise commit
//! after one with a higher id that a reader has already passed, and never be read. So each
//! write of lines first takes a transaction-scoped advisory lock per function it writes
//! ([`insert_calls_in_order`]): the writes of one function's lines take turns, ids and
//! commits in the same order; the writes of different functions do not wait for each other.

use async_trait::async_trait;
use sqlx::Row;
use stoke_core::AccountId;

use crate::sqlite::logs::{fixed_chunks, lines_that_fit};
use crate::{
    InvocationRecord, LogEvent, LogPage, LogQuery, LogStore, LogUsage, PgStore, StoreError,
};

crate::backend::insert_calls!(sqlx::PgConnection);

/// The first key of the advisory locks a function's log writes take (the second is a hash
/// of the function); the migration lock is a one-key lock, a space of its own.
const LOG_LOCK_CLASS: i32 = 0x6c6f_6773; // "logs"

/// [`insert_calls`] after this transaction has taken its turn at every function whose lines
/// it writes (in one order, so that two writes never wait for each other).
pub(crate) async fn insert_calls_in_order<L, R>(
    conn: &mut sqlx::PgConnection,
    logs: &[L],
    records: &[R],
) -> Result<(), sqlx::Error>
where
    L: std::borrow::Borrow<LogEvent>,
    R: std::borrow::Borrow<InvocationRecord>,
{
    let streams: std::collections::BTreeSet<String> = logs
        .iter()
        .map(|e| {
            let e = e.borrow();
            format!("{}/{}", e.account.as_str(), e.function_name)
        })
        .collect();
    if !streams.is_empty() {
        // The subquery's order is the order the locks are taken in.
        sqlx::query(
            "SELECT pg_advisory_xact_lock($1, h) FROM \
             (SELECT DISTINCT hashtext(s) AS h FROM unnest($2::text[]) AS s ORDER BY h) AS t",
        )
        .bind(LOG_LOCK_CLASS)
        .bind(streams.into_iter().collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    insert_calls(conn, logs, records).await
}

/// The lines of a [`LogQuery`] up to an id, in id order, with a `LIMIT` ($8) left to bind.
macro_rules! lines_where {
    () => {
        " FROM log_events WHERE account_id = $1 AND function_name = $2 AND id > $3 \
         AND id <= $4 AND timestamp_ms >= $5 AND timestamp_ms < $6 \
         AND strpos(message, $7) > 0 ORDER BY id LIMIT $8"
    };
}

/// `sql` (a `lines_where!` query) with the query's bounds bound, all but its `LIMIT`.
fn filtered<'q>(
    sql: &'q str,
    (account, function_name): (&'q AccountId, &'q str),
    q: &'q LogQuery,
    until_id: i64,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(account.as_str())
        .bind(function_name)
        .bind(q.after_id.unwrap_or(0))
        .bind(until_id)
        .bind(q.since_ms.unwrap_or(i64::MIN))
        .bind(q.until_ms.unwrap_or(i64::MAX))
        .bind(q.contains.as_deref().unwrap_or(""))
}

#[async_trait]
impl LogStore for PgStore {
    async fn append_calls(
        &self,
        logs: &[LogEvent],
        records: &[InvocationRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        insert_calls_in_order(&mut tx, logs, records).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn read_logs(
        &self,
        account: &AccountId,
        function_name: &str,
        q: &LogQuery,
    ) -> Result<LogPage, StoreError> {
        // Which lines fit, from their ids and sizes alone, then those lines; one more than the
        // limit says whether more follow.
        let sizes: Vec<(i64, i64)> = filtered(
            concat!(
                "SELECT id, (octet_length(message) + 26)::BIGINT",
                lines_where!()
            ),
            (account, function_name),
            q,
            i64::MAX,
        )
        .bind(i64::from(q.limit).saturating_add(1))
        .map(|r: sqlx::postgres::PgRow| (r.get(0), r.get(1)))
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
             FROM invocations WHERE account_id = $1 AND function_name = $2 \
             ORDER BY started_ms DESC, seq DESC LIMIT $3",
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
