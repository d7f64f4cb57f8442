//! Code that is the same on both backends but for sqlx's types (rows, connections), written
//! once as macros that each backend expands with its own: the decoders of the queue's rows, the
//! multi-row inserts of events, and of log lines and invocation records; the node registry's
//! row decoder. The SQL of these is
//! the same on SQLite and PostgreSQL (`QueryBuilder` numbers the parameters per database).

/// The queue's row decoders (`queued`, `dead_letter`, `config`) for rows of type `$row`, and
/// `insert_event` / `insert_events` on connections of type `$conn`. Expects a function
/// `account(String) -> Result<AccountId, StoreError>` in scope.
macro_rules! queue_rows {
    ($row:ty, $conn:ty) => {
        fn u32_of(v: i64) -> u32 {
            u32::try_from(v.max(0)).unwrap_or(u32::MAX)
        }

        fn queued(r: &$row) -> Result<QueuedEvent, StoreError> {
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
                caller: r
                    .get::<Option<String>, _>("caller_account_id")
                    .map(account)
                    .transpose()?,
            })
        }

        fn dead_letter(r: &$row) -> Result<DeadLetter, StoreError> {
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

        fn config(r: &$row) -> Result<EventInvokeConfig, StoreError> {
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

        /// Inserts one event, not leased (a follow-up or a redrive).
        async fn insert_event(conn: &mut $conn, e: &NewEvent) -> Result<(), StoreError> {
            insert_events(conn, &[(e, false)], "", 0).await.map(drop)
        }

        /// Inserts many events with one statement per 500; answers their ids in order.
        async fn insert_events<E: std::borrow::Borrow<NewEvent>>(
            conn: &mut $conn,
            events: &[(E, bool)],
            owner: &str,
            lease_until_ms: i64,
        ) -> Result<Vec<i64>, StoreError> {
            let mut ids = Vec::with_capacity(events.len());
            for chunk in events.chunks(500) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO async_events (request_id, account_id, function_name, qualifier, \
                     payload, trace_id, enqueued_ms, next_run_ms, hops, runs, lease_owner, \
                     lease_until_ms, caller_account_id) ",
                );
                q.push_values(chunk, |mut b, (e, leased)| {
                    let e = e.borrow();
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
                        .push_bind(leased.then_some(lease_until_ms))
                        .push_bind(e.caller.as_ref().map(AccountId::as_str));
                });
                q.push(" RETURNING id, request_id");
                let rows = q.build().fetch_all(&mut *conn).await?;
                let by_request: std::collections::HashMap<String, i64> = rows
                    .iter()
                    .map(|r| (r.get::<String, _>(1), r.get::<i64, _>(0)))
                    .collect();
                for (e, _) in chunk {
                    let e = e.borrow();
                    ids.push(*by_request.get(&e.request_id).ok_or_else(|| {
                        StoreError::Corrupt(format!("event {} was not inserted", e.request_id))
                    })?);
                }
            }
            Ok(ids)
        }
    };
}

/// `insert_calls` on connections of type `$conn`.
macro_rules! insert_calls {
    ($conn:ty) => {
        /// Inserts log lines and invocation records on `conn` (in the caller's transaction), in
        /// multi-row statements of a few fixed sizes (see [`fixed_chunks`]). Shared by the batched log
        /// writer and the async queue's finish commit.
        pub(crate) async fn insert_calls<L, R>(
            conn: &mut $conn,
            logs: &[L],
            records: &[R],
        ) -> Result<(), sqlx::Error>
        where
            L: std::borrow::Borrow<LogEvent>,
            R: std::borrow::Borrow<InvocationRecord>,
        {
            for chunk in fixed_chunks(logs) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO log_events (account_id, function_name, log_stream, \
                     timestamp_ms, request_id, message) ",
                );
                q.push_values(chunk, |mut b, e| {
                    let e = e.borrow();
                    b.push_bind(e.account.as_str())
                        .push_bind(&e.function_name)
                        .push_bind(&e.log_stream)
                        .push_bind(e.timestamp_ms)
                        .push_bind(&e.request_id)
                        .push_bind(&e.message);
                });
                q.build().execute(&mut *conn).await?;
            }
            for chunk in fixed_chunks(records) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO invocations (request_id, account_id, function_name, \
                     version, started_ms, cold, init_ms, duration_ms, billed_ms, memory_size_mb, \
                     max_memory_mb, outcome, error_type, caller_account_id) ",
                );
                q.push_values(chunk, |mut b, r| {
                    let r = r.borrow();
                    b.push_bind(&r.request_id)
                        .push_bind(r.account.as_str())
                        .push_bind(&r.function_name)
                        .push_bind(&r.version)
                        .push_bind(r.started_ms)
                        .push_bind(r.cold)
                        .push_bind(r.init_ms)
                        .push_bind(r.duration_ms)
                        .push_bind(r.billed_ms)
                        .push_bind(i64::from(r.memory_size_mb))
                        .push_bind(i64::from(r.max_memory_mb))
                        .push_bind(&r.outcome)
                        .push_bind(&r.error_type)
                        .push_bind(r.caller_account.as_str());
                });
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }
    };
}

/// `node(&$row) -> NodeRecord`, the decoder of the node registry's rows.
macro_rules! node_rows {
    ($row:ty) => {
        fn node(r: &$row) -> NodeRecord {
            let count = |c: &str| u32::try_from(r.get::<i64, _>(c).max(0)).unwrap_or(u32::MAX);
            NodeRecord {
                node_id: r.get("node_id"),
                address: r.get("address"),
                started_ms: r.get("started_ms"),
                heartbeat_ms: r.get("heartbeat_ms"),
                warm: count("warm"),
                load: count("in_flight"),
            }
        }
    };
}
pub(crate) use {insert_calls, node_rows, queue_rows};
