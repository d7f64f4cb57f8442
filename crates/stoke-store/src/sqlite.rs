//! The embedded store: one SQLite file in WAL mode.
//!
//! Commits are synchronous (`synchronous = FULL`), so what the API acknowledged survives a
//! crash or a power cut. Function records are kept as JSON beside the columns that queries
//! need; a write that changes a function checks its `revision_id` in the same statement.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use sqlx::Row;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use stoke_core::{AccountId, Alias, Function};

use crate::{
    AccessKey, AccountUsage, InvocationRecord, LogEvent, LogQuery, LogUsage, Store, StoreError,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The SQLite implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// Writers take turns here, first come first served, before they take SQLite's lock.
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// A pooled connection that may write, held with the store's write gate.
///
/// SQLite lets one writer in at a time; a writer that finds the lock taken sleeps in its busy
/// handler (1, 2, 5 … 100 ms) and tries again, so a long run of short writes (a retention pass)
/// can keep it out for the whole run. Writers of this process queue on the gate instead (a fair
/// mutex): a writer that lets go between two batches hands the lock to the next in line at once.
/// Take the gate before the connection, never the other way round (an in-memory store has a
/// single connection).
pub(crate) struct Writer {
    conn: PoolConnection<Sqlite>,
    _gate: tokio::sync::OwnedMutexGuard<()>,
}

impl std::ops::Deref for Writer {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // A burst of large commits grows the WAL; once checkpointed, it goes back to this.
            .pragma("journal_size_limit", (16 * 1024 * 1024).to_string());
        Self::connect(options).await
    }

    /// A private in-memory database, for tests.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        Self::connect_with(options, 1).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        // Bring the schema up to date on one connection before the pool opens others: a second
        // connection switching a brand-new file to WAL while the first migrates can meet
        // SQLITE_BUSY at once, whatever the busy timeout.
        {
            use sqlx::Connection as _;
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
            MIGRATOR.run(&mut conn).await?;
            conn.close().await?;
        }
        Self::connect_with(options, 4).await
    }

    async fn connect_with(options: SqliteConnectOptions, max: u32) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            // An in-memory database lives as long as its connection: never let it go idle.
            .idle_timeout(None)
            .max_lifetime(None)
            // A ping before each use is a round trip to the connection's thread per query.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            gate: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The write gate and a connection (see [`Writer`]).
    pub(crate) async fn writer(&self) -> Result<Writer, StoreError> {
        let gate = Arc::clone(&self.gate).lock_owned().await;
        let conn = self.pool.acquire().await?;
        Ok(Writer { conn, _gate: gate })
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn now() -> String {
    stoke_core::timefmt::lambda_timestamp(time::OffsetDateTime::now_utc())
}

/// A stored record (a function, a version, an alias) from its JSON.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(record: &str) -> Result<T, StoreError> {
    serde_json::from_str(record).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A record as stored.
pub(crate) fn encode<T: serde::Serialize>(f: &T) -> Result<String, StoreError> {
    serde_json::to_string(f).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn random_digits(n: usize) -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(n);
    s.push(char::from(b'1' + rng.random_range(0..9u8)));
    while s.len() < n {
        s.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    s
}

fn random_from(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// A new access key in AWS's shape: `AKIA` and 16 upper-case characters, a 40-character secret.
fn new_access_key(account: AccountId) -> AccessKey {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    AccessKey {
        access_key_id: format!("AKIA{}", random_from(UPPER, 16)),
        secret: random_from(SECRET, 40),
        account,
    }
}

/// Inserts log lines and invocation records on `conn` (in the caller's transaction), in
/// multi-row statements of at most 1,000 rows. Shared by the batched log writer and the async
/// queue's finish commit.
pub(crate) async fn insert_calls<L, R>(
    conn: &mut sqlx::SqliteConnection,
    logs: &[L],
    records: &[R],
) -> Result<(), sqlx::Error>
where
    L: std::borrow::Borrow<LogEvent>,
    R: std::borrow::Borrow<InvocationRecord>,
{
    use sqlx::QueryBuilder;
    for chunk in logs.chunks(1000) {
        let mut q = QueryBuilder::new(
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
    for chunk in records.chunks(1000) {
        let mut q = QueryBuilder::new(
            "INSERT OR REPLACE INTO invocations (request_id, account_id, function_name, \
             version, started_ms, cold, init_ms, duration_ms, billed_ms, memory_size_mb, \
             max_memory_mb, outcome, error_type) ",
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
                .push_bind(&r.error_type);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_default_account(&self) -> Result<(AccessKey, bool), StoreError> {
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
        let existing = sqlx::query(
            "SELECT k.access_key_id, k.secret, a.id FROM accounts a \
             JOIN access_keys k ON k.account_id = a.id \
             WHERE a.is_default = 1 ORDER BY k.created_at LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let account: String = row.get(2);
            return Ok((
                AccessKey {
                    access_key_id: row.get(0),
                    secret: row.get(1),
                    account: AccountId::try_from(account).map_err(StoreError::Corrupt)?,
                },
                false,
            ));
        }
        let account = AccountId::try_from(random_digits(12)).map_err(StoreError::Corrupt)?;
        let key = new_access_key(account.clone());
        let at = now();
        sqlx::query("INSERT INTO accounts (id, is_default, created_at) VALUES (?, 1, ?)")
            .bind(account.as_str())
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, secret, account_id, created_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(&key.access_key_id)
        .bind(&key.secret)
        .bind(account.as_str())
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((key, true))
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        let row = sqlx::query(
            "SELECT access_key_id, secret, account_id FROM access_keys WHERE access_key_id = ?",
        )
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(AccessKey {
                access_key_id: row.get(0),
                secret: row.get(1),
                account: AccountId::try_from(row.get::<String, _>(2))
                    .map_err(StoreError::Corrupt)?,
            })
        })
        .transpose()
    }

    async fn setting_or_init(&self, key: &str, init: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING")
            .bind(key)
            .bind(init)
            .execute(&mut *self.writer().await?)
            .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get(0))
    }

    async fn insert_function(&self, f: &Function) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO functions (account_id, name, revision_id, code_sha256, serving_sha256, \
             code_size, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(f.account.as_str())
        .bind(f.name.as_str())
        .bind(&f.revision_id)
        .bind(&f.code.sha256_hex)
        .bind(f.serving.as_ref().map(|s| s.code.sha256_hex.as_str()))
        .bind(i64::try_from(f.code.size).unwrap_or(i64::MAX))
        .bind(encode(f)?)
        .execute(&mut *self.writer().await?)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    async fn replace_function(
        &self,
        f: &Function,
        expected_revision: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE functions SET revision_id = ?, code_sha256 = ?, serving_sha256 = ?, \
             code_size = ?, record = ? WHERE account_id = ? AND name = ? AND revision_id = ?",
        )
        .bind(&f.revision_id)
        .bind(&f.code.sha256_hex)
        .bind(f.serving.as_ref().map(|s| s.code.sha256_hex.as_str()))
        .bind(i64::try_from(f.code.size).unwrap_or(i64::MAX))
        .bind(encode(f)?)
        .bind(f.account.as_str())
        .bind(f.name.as_str())
        .bind(expected_revision)
        .execute(&mut *self.writer().await?)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        match self.get_function(&f.account, f.name.as_str()).await? {
            Some(_) => Err(StoreError::stale(expected_revision)),
            None => Err(StoreError::NotFound),
        }
    }

    async fn get_function(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        let row = sqlx::query("SELECT record FROM functions WHERE account_id = ? AND name = ?")
            .bind(account.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode(r.get::<&str, _>(0))).transpose()
    }

    async fn delete_function(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        let row =
            sqlx::query("DELETE FROM functions WHERE account_id = ? AND name = ? RETURNING record")
                .bind(account.as_str())
                .bind(name)
                .fetch_optional(&mut *self.writer().await?)
                .await?;
        row.map(|r| decode(r.get::<&str, _>(0))).transpose()
    }

    async fn list_functions(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Function>, StoreError> {
        let rows = sqlx::query(
            "SELECT record FROM functions WHERE account_id = ? AND name > ? \
             ORDER BY name LIMIT ?",
        )
        .bind(account.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| decode(r.get::<&str, _>(0))).collect()
    }

    async fn all_functions(&self) -> Result<Vec<Function>, StoreError> {
        let rows = sqlx::query("SELECT record FROM functions ORDER BY account_id, name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| decode(r.get::<&str, _>(0))).collect()
    }

    async fn account_usage(&self, account: &AccountId) -> Result<AccountUsage, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(code_size), 0) + (SELECT COALESCE(SUM(code_size), 0) \
             FROM versions WHERE account_id = ?1) FROM functions WHERE account_id = ?1",
        )
        .bind(account.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(AccountUsage {
            function_count: u64::try_from(row.get::<i64, _>(0)).unwrap_or(0),
            total_code_size: u64::try_from(row.get::<i64, _>(1)).unwrap_or(0),
        })
    }

    async fn code_in_use(&self, sha256_hex: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM functions WHERE code_sha256 = ?1 OR serving_sha256 = ?1 \
             UNION ALL SELECT 1 FROM versions WHERE code_sha256 = ?1 LIMIT 1",
        )
        .bind(sha256_hex)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    async fn publish_version(
        &self,
        version: &Function,
        expected_latest_revision: &str,
    ) -> Result<Function, StoreError> {
        self.publish_version_impl(version, expected_latest_revision)
            .await
    }

    async fn get_version(
        &self,
        account: &AccountId,
        name: &str,
        version: u64,
    ) -> Result<Option<Function>, StoreError> {
        self.get_version_impl(account, name, version).await
    }

    async fn last_version(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        self.last_version_impl(account, name).await
    }

    async fn list_versions(
        &self,
        account: &AccountId,
        name: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Function>, StoreError> {
        self.list_versions_impl(account, name, after, limit).await
    }

    async fn replace_version(
        &self,
        v: &Function,
        expected_revision: &str,
    ) -> Result<(), StoreError> {
        self.replace_version_impl(v, expected_revision).await
    }

    async fn delete_version(
        &self,
        account: &AccountId,
        name: &str,
        version: u64,
    ) -> Result<Option<Function>, StoreError> {
        self.delete_version_impl(account, name, version).await
    }

    async fn insert_alias(&self, a: &Alias) -> Result<(), StoreError> {
        self.insert_alias_impl(a).await
    }

    async fn get_alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError> {
        self.get_alias_impl(account, function, name).await
    }

    async fn replace_alias(&self, a: &Alias, expected_revision: &str) -> Result<(), StoreError> {
        self.replace_alias_impl(a, expected_revision).await
    }

    async fn delete_alias(
        &self,
        account: &AccountId,
        function: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError> {
        self.delete_alias_impl(account, function, name).await
    }

    async fn list_aliases(
        &self,
        account: &AccountId,
        function: &str,
        version: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Alias>, StoreError> {
        self.list_aliases_impl(account, function, version, after, limit)
            .await
    }

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
    ) -> Result<Vec<LogEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, log_stream, timestamp_ms, request_id, message FROM log_events \
             WHERE account_id = ? AND function_name = ? AND id > ? AND timestamp_ms >= ? \
             AND timestamp_ms < ? AND instr(message, ?) > 0 ORDER BY id LIMIT ?",
        )
        .bind(account.as_str())
        .bind(function_name)
        .bind(q.after_id.unwrap_or(0))
        .bind(q.since_ms.unwrap_or(i64::MIN))
        .bind(q.until_ms.unwrap_or(i64::MAX))
        .bind(q.contains.as_deref().unwrap_or(""))
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
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
            .collect())
    }

    async fn recent_invocations(
        &self,
        account: &AccountId,
        function_name: &str,
        limit: u32,
    ) -> Result<Vec<InvocationRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT request_id, version, started_ms, cold, init_ms, duration_ms, billed_ms, \
             memory_size_mb, max_memory_mb, outcome, error_type FROM invocations \
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
    use std::collections::BTreeMap;

    use stoke_core::{CodeInfo, ConfigInput, FunctionName, State};

    use super::*;

    fn function(account: &AccountId, name: &str, revision: &str) -> Function {
        Function {
            account: account.clone(),
            name: FunctionName::parse("functionName", name).unwrap(),
            config: ConfigInput {
                runtime: Some("wasm".into()),
                handler: Some("f.wasm".into()),
                ..Default::default()
            }
            .into_new_config()
            .unwrap(),
            code: CodeInfo {
                sha256_hex: "ab".repeat(32),
                size: 10,
                unzipped_size: 20,
            },
            state: State::Pending,
            state_reason: None,
            last_update_status: None,
            last_update_reason: None,
            revision_id: revision.into(),
            last_modified: now(),
            tags: BTreeMap::new(),
            generation: 1,
            version: stoke_core::LATEST.into(),
            serving: None,
            reserved_concurrency: None,
        }
    }

    #[tokio::test]
    async fn the_default_account_is_created_once() {
        let s = SqliteStore::in_memory().await.unwrap();
        let (k1, created) = s.ensure_default_account().await.unwrap();
        assert!(created);
        assert_eq!(k1.account.as_str().len(), 12);
        assert!(k1.access_key_id.starts_with("AKIA") && k1.access_key_id.len() == 20);
        let (k2, created) = s.ensure_default_account().await.unwrap();
        assert!(!created);
        assert_eq!(k1, k2);
        assert_eq!(s.access_key(&k1.access_key_id).await.unwrap(), Some(k1));
    }

    #[tokio::test]
    async fn a_duplicate_name_conflicts_and_a_stale_revision_is_refused() {
        let s = SqliteStore::in_memory().await.unwrap();
        let (k, _) = s.ensure_default_account().await.unwrap();
        let f = function(&k.account, "f", "r1");
        s.insert_function(&f).await.unwrap();
        assert!(matches!(
            s.insert_function(&f).await,
            Err(StoreError::Conflict)
        ));

        let mut g = f.clone();
        g.revision_id = "r2".into();
        s.replace_function(&g, "r1").await.unwrap();
        assert!(matches!(
            s.replace_function(&g, "r1").await,
            Err(StoreError::Stale { .. })
        ));
        assert_eq!(
            s.get_function(&k.account, "f")
                .await
                .unwrap()
                .unwrap()
                .revision_id,
            "r2"
        );
    }

    #[tokio::test]
    async fn listing_pages_in_name_order_and_usage_counts() {
        let s = SqliteStore::in_memory().await.unwrap();
        let (k, _) = s.ensure_default_account().await.unwrap();
        for n in ["c", "a", "b"] {
            s.insert_function(&function(&k.account, n, "r"))
                .await
                .unwrap();
        }
        let page = s.list_functions(&k.account, None, 2).await.unwrap();
        let names: Vec<_> = page.iter().map(|f| f.name.as_str().to_owned()).collect();
        assert_eq!(names, ["a", "b"]);
        let page = s.list_functions(&k.account, Some("b"), 2).await.unwrap();
        assert_eq!(page.len(), 1);
        let usage = s.account_usage(&k.account).await.unwrap();
        assert_eq!((usage.function_count, usage.total_code_size), (3, 30));
        assert!(s.code_in_use(&"ab".repeat(32)).await.unwrap());
        assert!(s.delete_function(&k.account, "a").await.unwrap().is_some());
        assert!(s.delete_function(&k.account, "a").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn logs_are_read_oldest_first_filtered_and_trimmed_per_function() {
        let s = SqliteStore::in_memory().await.unwrap();
        let (k, _) = s.ensure_default_account().await.unwrap();
        let line = |f: &str, t: i64, m: &str| LogEvent {
            id: 0,
            account: k.account.clone(),
            function_name: f.into(),
            log_stream: "s".into(),
            timestamp_ms: t,
            request_id: "r".into(),
            message: m.into(),
        };
        let logs: Vec<_> = (0..10)
            .map(|i| line("f", 1000 + i, &format!("line {i}")))
            .collect();
        s.append_calls(&logs, &[]).await.unwrap();
        s.append_calls(&[line("g", 5, "other")], &[]).await.unwrap();
        let all = s
            .read_logs(
                &k.account,
                "f",
                &LogQuery {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(all[0].message, "line 0");
        let after = s
            .read_logs(
                &k.account,
                "f",
                &LogQuery {
                    after_id: Some(all[7].id),
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(after.len(), 2);
        let since = s
            .read_logs(
                &k.account,
                "f",
                &LogQuery {
                    since_ms: Some(1005),
                    contains: Some("line 9".into()),
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(since.len(), 1);
        s.trim_calls(3, 10, 0).await.unwrap();
        let kept = s
            .read_logs(
                &k.account,
                "f",
                &LogQuery {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let kept: Vec<_> = kept.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(kept, ["line 7", "line 8", "line 9"]);
        assert_eq!(
            s.read_logs(
                &k.account,
                "g",
                &LogQuery {
                    limit: 9,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .len(),
            1
        );
    }

    #[tokio::test]
    async fn state_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stoke.db");
        let s = SqliteStore::open(&path).await.unwrap();
        let (k, _) = s.ensure_default_account().await.unwrap();
        s.insert_function(&function(&k.account, "kept", "r"))
            .await
            .unwrap();
        s.close().await;
        let s = SqliteStore::open(&path).await.unwrap();
        let (k2, created) = s.ensure_default_account().await.unwrap();
        assert!(!created);
        assert_eq!(k, k2);
        assert!(s.get_function(&k.account, "kept").await.unwrap().is_some());
    }
}
