//! The shared store: one PostgreSQL database, [`PgStore`], implementing every trait of the
//! crate, so that several nodes can serve from one state (`stoke serve --store postgres://…`).
//!
//! The schema is `migrations/postgres/`, applied at open under a PostgreSQL advisory lock, so
//! nodes starting together migrate once; a database migrated by a newer Stoke (a migration
//! this build does not know) is refused before anything is written. Records (functions,
//! versions, aliases, policies) are kept as JSON text beside the columns queries need, as on
//! SQLite; docs/decisions.md says how each SQLite type maps.
//!
//! One submodule per concern, as `sqlite/`: `accounts`, `functions`, `versions`, `aliases`,
//! `policies`, `logs` (and `retention`), `queue`, `nodes` (the node registry), `changes` (the change feed: `LISTEN`/`NOTIFY`),
//! `slots` (concurrency slots), `schedules`; `blobs` is [`PgBlobStore`], the code zips in
//! the database with a verified local cache; `testing` starts a throw-away cluster for tests.

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::StoreError;
use crate::seal::MasterKey;

mod accounts;
mod aliases;
pub mod blobs;
mod changes;
#[cfg(test)]
mod conformance_tests;
mod functions;
mod logs;
mod mappings;
mod nodes;
mod policies;
mod queue;
mod retention;
mod schedules;
mod slots;
#[cfg(test)]
mod store_tests;
#[cfg(any(test, feature = "pg-testing"))]
pub mod testing;
mod versions;

pub use blobs::PgBlobStore;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key nodes take while they migrate (any constant of our own: "stoke" in
/// ASCII).
const MIGRATION_LOCK: i64 = 0x73_74_6f_6b_65;

/// How long a query waits for a connection of the pool (one busy, or the database away and
/// being reconnected to) before it fails: a request answers `ServiceException` after this
/// rather than hang while PostgreSQL is down; a restart shorter than this is only a delay.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the first connection at start-up may take (TCP, TLS, the login): a server that
/// accepts but never answers, or an address that drops packets, fails the start in one line
/// after this instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL implementation of [`crate::Store`] and [`crate::Queue`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// Seals and opens the access keys' secrets.
    master: MasterKey,
    /// The name this node's queue workers lease events under (one per node, kept by the
    /// node: the database is shared).
    owner: String,
}

/// `url` with its password (if any) replaced by `***`: for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:pass@host:port/db`), brings its
    /// schema up to date (once, whichever nodes start together) and checks that `master` is
    /// the key its secrets are sealed with. `owner` is this node's lease owner name.
    pub async fn open(url: &str, master: MasterKey, owner: &str) -> Result<Self, StoreError> {
        let pool = connect(url, 8).await?;
        migrate(&pool).await?;
        let store = Self {
            pool,
            master,
            owner: owner.to_owned(),
        };
        crate::sqlite::accounts::verify_master_key(&store, &store.master).await?;
        Ok(store)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A pool of at most `max` connections to `url`, its first connection made now: a wrong URL,
/// an unreachable server or a refused login is an error here, said in one line.
pub(crate) async fn connect(url: &str, max: u32) -> Result<PgPool, StoreError> {
    use sqlx::Connection as _;
    let failed = |what: &str, e: sqlx::Error| StoreError::Backend {
        message: format!("{what} {}", redact(url)),
        // The cause's own text, once (sqlx's database errors repeat it in their source).
        source: e.to_string().into(),
    };
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()
        .map_err(|e| failed("not a PostgreSQL URL:", e))?
        // Notices ("relation already exists, skipping") are not worth a log line.
        .options([("client_min_messages", "warning")]);
    // One connection first: its error says what is wrong (a pool's would only time out).
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(&options))
        .await
        .map_err(|_| StoreError::Backend {
            message: format!("cannot connect to {}", redact(url)),
            source: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()).into(),
        })?
        .map_err(|e| failed("cannot connect to", e))?;
    probe
        .close()
        .await
        .map_err(|e| failed("cannot connect to", e))?;
    PgPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| failed("cannot connect to", e))
}

/// Applies the migrations under the advisory lock, after refusing a database that a newer
/// Stoke migrated.
async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = async {
        refuse_newer(&mut conn).await?;
        // On another of the pool's connections (sqlx takes its own advisory lock there too):
        // a migration run on a borrowed connection makes a future that is not `Send`.
        MIGRATOR.run(pool).await?;
        Ok::<_, StoreError>(())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    result
}

/// [`StoreError::Backend`] if the database holds a migration this build does not know.
async fn refuse_newer(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    let recorded: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !recorded {
        return Ok(());
    }
    let newest: Option<i64> = sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut *conn)
        .await?
        .get(0);
    let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    match newest {
        Some(v) if v > known => Err(StoreError::newer_schema(v, known)),
        _ => Ok(()),
    }
}

/// `n` as PostgreSQL's BIGINT.
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(
            super::redact("postgres://stoke:s3cret@db:5432/stoke"),
            "postgres://stoke:***@db:5432/stoke"
        );
        assert_eq!(
            super::redact("postgres://stoke@db/stoke"),
            "postgres://stoke@db/stoke"
        );
        assert_eq!(
            super::redact("postgres://db/x?a=b@c"),
            "postgres://db/x?a=b@c"
        );
    }
}
