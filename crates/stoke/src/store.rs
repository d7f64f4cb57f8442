//! Which store `stoke serve` keeps its state in (`--store URL`, env `STOKE_STORE`): the
//! embedded SQLite file (the default: `<data dir>/stoke.db`, or `sqlite://PATH`) or a shared
//! PostgreSQL database (`postgres://user:pass@host:port/db`), whose code blobs live in the same
//! database with a local cache in the data dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use stoke_store::{
    BlobStore, FsBlobStore, MasterKey, PgBlobStore, PgStore, Queue, SqliteStore, Store,
};

/// Where the store is, as `--store` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

/// The file in the data dir that holds this node's id (its lease owner name in a shared store).
const NODE_ID_FILE: &str = "node-id";

impl Location {
    /// `--store`'s value (`None`: the embedded file in the data dir).
    pub fn parse(url: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Self::Sqlite(data_dir.join("stoke.db")));
        };
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            anyhow::ensure!(
                !path.is_empty(),
                "--store {url}: sqlite:// needs a file path"
            );
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        anyhow::bail!(
            "--store {}: not a store URL (sqlite://PATH or postgres://user:pass@host:port/db)",
            stoke_store::postgres::redact(url)
        )
    }
}

/// The opened store, whichever it is.
pub enum Opened {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Opened {
    /// Opens the store at `location` with its blobs (`data_dir` holds the SQLite store's blob
    /// folder, or the PostgreSQL store's blob cache); `node_id` is this node's (its lease
    /// owner name in a shared store).
    pub async fn open(
        location: &Location,
        data_dir: &Path,
        master: MasterKey,
        node_id: &str,
    ) -> anyhow::Result<(Self, Arc<dyn BlobStore>)> {
        match location {
            Location::Sqlite(path) => {
                let sqlite = SqliteStore::open(path, master)
                    .await
                    .context("opening the store")?;
                let blobs =
                    FsBlobStore::open(data_dir.join("blobs")).context("opening the blob store")?;
                Ok((Self::Sqlite(sqlite), Arc::new(blobs)))
            }
            Location::Postgres(url) => {
                let pg = PgStore::open(url, master, node_id)
                    .await
                    .context("opening the store")?;
                let url = url.clone();
                let cache = data_dir.join("blob-cache");
                let blobs = tokio::task::spawn_blocking(move || PgBlobStore::open(&url, cache))
                    .await
                    .context("opening the blob store")?
                    .context("opening the blob store")?;
                Ok((Self::Postgres(pg), Arc::new(blobs)))
            }
        }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    pub fn queue(&self) -> Arc<dyn Queue> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

/// This node's id when `--node-id` gives none: made on the first start and kept in the data
/// dir, so the same after a restart (a restarted node releases the leases its previous run
/// held, and only those; it takes its own row of the node registry again).
pub fn kept_node_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let id = format!("node-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_sqlite_files_or_postgres_databases() {
        let dir = Path::new("/data");
        assert_eq!(
            Location::parse(None, dir).unwrap(),
            Location::Sqlite(dir.join("stoke.db"))
        );
        assert_eq!(
            Location::parse(Some("sqlite:///var/lib/stoke.db"), dir).unwrap(),
            Location::Sqlite("/var/lib/stoke.db".into())
        );
        assert_eq!(
            Location::parse(Some("postgres://u:p@h:5432/db"), dir).unwrap(),
            Location::Postgres("postgres://u:p@h:5432/db".into())
        );
        let err = Location::parse(Some("mysql://u:secret@h/db"), dir).unwrap_err();
        assert!(err.to_string().contains("not a store URL"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(Location::parse(Some("sqlite://"), dir).is_err());
    }
}
