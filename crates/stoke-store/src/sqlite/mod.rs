//! The embedded store: one SQLite file in WAL mode, [`SqliteStore`], implementing every trait
//! of the crate.
//!
//! Commits are synchronous (`synchronous = FULL`), so what the API acknowledged survives a
//! crash or a power cut. Records (functions, versions, aliases) are kept as JSON beside the
//! columns that queries need. Writers of one process take turns on a fair gate ([`Writer`])
//! before SQLite's lock, so a long run of short writes (retention) never keeps others out.
//!
//! One submodule per concern: `accounts`, `functions`, `versions`, `aliases`, `policies`, `logs` (and
//! `retention`), `queue`, `nodes` (the node registry), `changes` (the change feed), `slots` (concurrency slots), `schedules`; `error`
//! turns sqlx's errors into [`StoreError`]s. The schema is
//! `migrations/sqlite/`, applied at open.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::StoreError;
use crate::seal::MasterKey;

pub(crate) mod accounts;
mod aliases;
mod changes;
#[cfg(test)]
mod conformance_tests;
mod error;
mod functions;
pub(crate) mod logs;
mod mappings;
mod nodes;
mod policies;
mod queue;
mod retention;
mod schedules;
mod slots;
mod versions;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite implementation of [`crate::Store`] and [`crate::Queue`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// Writers take turns here, first come first served, before they take SQLite's lock.
    gate: Arc<tokio::sync::Mutex<()>>,
    /// Seals and opens the access keys' secrets.
    master: MasterKey,
    /// The change feed (one node: a broadcast in this process, shared by the store's clones).
    changes: tokio::sync::broadcast::Sender<crate::changes::Change>,
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
    /// Opens (creating if needed) the database file, brings its schema up to date and checks
    /// that `master` is the key its secrets are sealed with (a store sealed with another key
    /// is [`StoreError::MasterKey`]); secrets a database from before sealing holds in clear
    /// are sealed now.
    pub async fn open(path: &Path, master: MasterKey) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // A burst of large commits grows the WAL; once checkpointed, it goes back to this.
            .pragma("journal_size_limit", (16 * 1024 * 1024).to_string());
        let store = Self::connect(options, master).await?;
        store.check_master_key().await?;
        store.seal_legacy_secrets().await?;
        Ok(store)
    }

    /// A private in-memory database, for tests (sealed with a random master key).
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        let store = Self::connect_with(options, 1, MasterKey::generate()).await?;
        store.check_master_key().await?;
        Ok(store)
    }

    async fn connect(options: SqliteConnectOptions, master: MasterKey) -> Result<Self, StoreError> {
        // Bring the schema up to date on one connection before the pool opens others: a second
        // connection switching a brand-new file to WAL while the first migrates can meet
        // SQLITE_BUSY at once, whatever the busy timeout.
        {
            use sqlx::Connection as _;
            // What a migration deletes (the clear-text secrets 0008 moves) is overwritten, not
            // left in free pages. Only here and in the sealing pass: on every connection it
            // would slow the log trims, which delete a lot.
            let migrating = options.clone().pragma("secure_delete", "ON");
            let mut conn = sqlx::SqliteConnection::connect_with(&migrating).await?;
            refuse_newer(&mut conn).await?;
            MIGRATOR.run(&mut conn).await?;
            conn.close().await?;
        }
        Self::connect_with(options, 4, master).await
    }

    async fn connect_with(
        options: SqliteConnectOptions,
        max: u32,
        master: MasterKey,
    ) -> Result<Self, StoreError> {
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
            master,
            changes: tokio::sync::broadcast::channel(changes::BACKLOG).0,
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

pub(crate) fn now() -> String {
    stoke_core::timefmt::lambda_timestamp(time::OffsetDateTime::now_utc())
}

/// What a compare-and-swap that changed `changed` rows means: done if one; otherwise the record
/// is there under another revision ([`StoreError::Stale`]) or gone ([`StoreError::NotFound`]),
/// as `current` (awaited only then) says.
pub(crate) async fn cas_outcome<T>(
    changed: u64,
    expected: &str,
    current: impl std::future::Future<Output = Result<Option<T>, StoreError>>,
) -> Result<(), StoreError> {
    if changed == 1 {
        return Ok(());
    }
    match current.await? {
        Some(_) => Err(StoreError::stale(expected)),
        None => Err(StoreError::NotFound),
    }
}

/// A stored record (a function, a version, an alias) from its JSON.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(record: &str) -> Result<T, StoreError> {
    serde_json::from_str(record).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A record as stored.
pub(crate) fn encode<T: serde::Serialize>(f: &T) -> Result<String, StoreError> {
    serde_json::to_string(f).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// [`StoreError::newer_schema`] if the file holds a migration this build does not know (sqlx
/// alone would say only that a migration is "missing").
async fn refuse_newer(conn: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
    let recorded: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if recorded.is_none() {
        return Ok(());
    }
    let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut *conn)
        .await?;
    let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    match newest {
        Some(v) if v > known => Err(StoreError::newer_schema(v, known)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::function;
    use crate::{AccountStore, FunctionStore};

    #[tokio::test]
    async fn state_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stoke.db");
        let master = MasterKey::generate();
        let s = SqliteStore::open(&path, master.clone()).await.unwrap();
        let (k, _) = s.ensure_default_account().await.unwrap();
        s.insert_function(&function(&k.account, "kept", "r"))
            .await
            .unwrap();
        s.close().await;
        let s = SqliteStore::open(&path, master).await.unwrap();
        let (k2, created) = s.ensure_default_account().await.unwrap();
        assert!(!created);
        assert_eq!(k, k2);
        assert!(s.get_function(&k.account, "kept").await.unwrap().is_some());
    }

    /// The bytes of the database file and its WAL.
    fn file_bytes(path: &Path) -> Vec<u8> {
        let mut all = std::fs::read(path).unwrap();
        if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
            all.extend(wal);
        }
        all
    }

    #[tokio::test]
    async fn clear_text_secrets_of_an_old_database_are_sealed_at_open_and_leave_no_trace() {
        use sqlx::Connection as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stoke.db");
        const SECRET: &str = "LegacyClearTextSecretXXXXXXXXXXXXXXXXXXX";
        {
            // The schema as it was before sealing (migrations 1 to 7), and a key in clear.
            let before = sqlx::migrate::Migrator {
                migrations: std::borrow::Cow::Owned(MIGRATOR.iter().take(7).cloned().collect()),
                ignore_missing: false,
                locking: true,
                no_tx: false,
            };
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            before.run(&mut conn).await.unwrap();
            sqlx::raw_sql(&format!(
                "INSERT INTO accounts (id, is_default, created_at) VALUES ('111111111111', 1, 't');\
                 INSERT INTO access_keys (access_key_id, secret, account_id, created_at) \
                 VALUES ('AKIAOLDOLDOLDOLDOLD1', '{SECRET}', '111111111111', 't');"
            ))
            .execute(&mut conn)
            .await
            .unwrap();
            conn.close().await.unwrap();
        }
        assert!(
            file_bytes(&path)
                .windows(SECRET.len())
                .any(|w| w == SECRET.as_bytes())
        );

        let master = MasterKey::generate();
        let s = SqliteStore::open(&path, master.clone()).await.unwrap();
        let (k, created) = s.ensure_default_account().await.unwrap();
        assert!(!created);
        assert_eq!(
            (k.access_key_id.as_str(), k.secret.as_str()),
            ("AKIAOLDOLDOLDOLDOLD1", SECRET)
        );
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM access_keys WHERE legacy_secret IS NOT NULL")
                .fetch_one(s.pool())
                .await
                .unwrap();
        assert_eq!(left, 0);
        let (_, fresh) = s.create_account("fresh").await.unwrap();
        s.close().await;
        let bytes = file_bytes(&path);
        for secret in [SECRET, fresh.secret.as_str()] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret is in the database file in clear"
            );
        }

        let err = SqliteStore::open(&path, MasterKey::generate())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::MasterKey(_)), "{err}");
        assert!(err.to_string().contains("another master key"), "{err}");
        let s = SqliteStore::open(&path, master).await.unwrap();
        assert_eq!(
            s.access_key(&fresh.access_key_id).await.unwrap(),
            Some(fresh)
        );
    }

    #[test]
    fn the_migrations_are_the_ones_existing_databases_recorded() {
        // sqlx knows an applied migration by its version and the SHA-384 of its SQL, and
        // refuses to open a database whose recorded checksum differs. These are the checksums
        // the files had (in migrations/) when databases recorded them.
        const RECORDED: [(i64, &str); 6] = [
            (
                1,
                "3625f547b24dbb3d884d24f5b22813bcf562833f7df1855dd93521f32fa27c2bd4d96c94769d4be4c1237e2ad1f811c7",
            ),
            (
                2,
                "a14ab527692eba0287aa153d9b9a9ccd908b21f39c0b33ab146b2ac2f5ee9b13605ab6c5165528b7a89be02ac9226621",
            ),
            (
                3,
                "9294cda3ea27146b97693ce0dafa40dd9d94d0a4e433d53d1aeed55c9c6775d8793e695db48ba90e68beb8a7f6774ffa",
            ),
            (
                4,
                "35cd99a60e44dc051a59a564be68a755ec448e6ddd7d1f2416f652eede2fc191ff3f4cf9d8860f592e53f7c37e448090",
            ),
            (
                5,
                "b2a1a71aa0c871e51cd265eb4f3255de942f537ec0eccdec6940ba95b48f9ccc4fda5eb677556e15aa99ee9c8bb4a91e",
            ),
            (
                6,
                "a5510fd449dc7f7f72578af982c108f4e58b54eaffca6167fe8e5429c61ac45d21d38e290f00751542a212be9397c63f",
            ),
        ];
        let now: Vec<(i64, String)> = MIGRATOR
            .iter()
            .take(RECORDED.len())
            .map(|m| (m.version, hex::encode(&m.checksum)))
            .collect();
        let recorded: Vec<(i64, String)> = RECORDED
            .iter()
            .map(|(v, c)| (*v, (*c).to_owned()))
            .collect();
        assert_eq!(now, recorded);
    }
}
