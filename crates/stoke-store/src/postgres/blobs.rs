//! Code blobs in PostgreSQL ([`PgBlobStore`]), so that every node of a cluster reads the same
//! zips: each stored once under the hex of its SHA-256, in chunks of [`CHUNK`] bytes
//! (`code_blob_chunks`), its row in `code_blobs` written in the same transaction as its chunks,
//! so an address never names a partial blob. Reads go one chunk at a time (no statement holds
//! a whole zip), hash as they go and check the digest before answering.
//!
//! Each node keeps a local cache folder of blobs it has read, keyed by SHA-256 (an
//! [`FsBlobStore`]). The database says whether a blob exists (a blob another node removed is
//! gone here too); a cached copy is used only if its bytes hash to its address, otherwise it
//! is dropped and read again from the database.
//!
//! [`BlobStore`]'s methods block (they are called from blocking threads): the store runs its
//! own small tokio runtime and waits for its queries there, so it works from any thread.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::postgres::PgPool;

use crate::blobs::{BlobStore, digest};
use crate::{FsBlobStore, StoreError};

/// The bytes of one stored chunk.
pub const CHUNK: usize = 1024 * 1024;

/// Code blobs in PostgreSQL with a local, verified cache.
#[derive(Clone)]
pub struct PgBlobStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PgBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBlobStore")
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Where the queries run; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    pool: PgPool,
    cache: FsBlobStore,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropped from async code too: never wait for the runtime's threads here.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Backend {
        message: "the blob store's runtime has stopped".into(),
        source: "runtime stopped".into(),
    }
}

/// Runs `fut` on `rt` and waits for it from this (blocking) thread.
fn wait<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| stopped())?
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl PgBlobStore {
    /// Connects to the database at `url` (migrating it if needed, as [`super::PgStore::open`]
    /// does) and keeps the local cache in `cache_dir`.
    pub fn open(url: &str, cache_dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let cache = FsBlobStore::open(cache_dir)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("stoke-blobs")
            .enable_all()
            .build()
            .map_err(StoreError::backend)?;
        let url = url.to_owned();
        let pool = wait(&runtime, async move {
            let pool = super::connect(&url, 4).await?;
            super::migrate(&pool).await?;
            Ok(pool)
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                runtime: Some(runtime),
                pool,
                cache,
            }),
        })
    }

    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let rt = self.inner.runtime.as_ref().ok_or_else(stopped)?;
        wait(rt, fut)
    }

    /// Whether the database holds the blob.
    fn stored(&self, sha: &str) -> Result<bool, StoreError> {
        let pool = self.inner.pool.clone();
        let sha = sha.to_owned();
        self.run(async move {
            let row = sqlx::query("SELECT 1 FROM code_blobs WHERE sha256 = $1")
                .bind(&sha)
                .fetch_optional(&pool)
                .await?;
            Ok(row.is_some())
        })
    }

    /// The blob read from the database chunk by chunk, its digest checked.
    fn fetch(&self, sha: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let pool = self.inner.pool.clone();
        let sha = sha.to_owned();
        self.run(async move {
            let mut bytes = Vec::new();
            let mut hash = Sha256::new();
            let mut seq = 0i32;
            loop {
                let chunk: Option<Vec<u8>> = sqlx::query_scalar(
                    "SELECT data FROM code_blob_chunks WHERE sha256 = $1 AND seq = $2",
                )
                .bind(&sha)
                .bind(seq)
                .fetch_optional(&pool)
                .await?;
                let Some(chunk) = chunk else { break };
                hash.update(&chunk);
                bytes.extend_from_slice(&chunk);
                seq += 1;
            }
            if seq == 0 {
                let exists = sqlx::query("SELECT 1 FROM code_blobs WHERE sha256 = $1")
                    .bind(&sha)
                    .fetch_optional(&pool)
                    .await?;
                if exists.is_none() {
                    return Ok(None);
                }
            }
            if hex::encode(hash.finalize()) != sha {
                return Err(StoreError::Corrupt(format!(
                    "code blob {sha}: the stored bytes do not hash to their address"
                )));
            }
            Ok(Some(bytes))
        })
    }
}

impl BlobStore for PgBlobStore {
    fn put(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let sha = digest(bytes);
        if !self.stored(&sha)? {
            let pool = self.inner.pool.clone();
            let owned = bytes.to_vec();
            let key = sha.clone();
            self.run(async move {
                let mut tx = pool.begin().await?;
                let size = i64::try_from(owned.len()).unwrap_or(i64::MAX);
                let fresh = sqlx::query(
                    "INSERT INTO code_blobs (sha256, size) VALUES ($1, $2) \
                     ON CONFLICT (sha256) DO NOTHING",
                )
                .bind(&key)
                .bind(size)
                .execute(&mut *tx)
                .await?;
                if fresh.rows_affected() == 0 {
                    // Another writer stored the same bytes first.
                    return Ok(());
                }
                for (seq, chunk) in owned.chunks(CHUNK).enumerate() {
                    sqlx::query(
                        "INSERT INTO code_blob_chunks (sha256, seq, data) VALUES ($1, $2, $3)",
                    )
                    .bind(&key)
                    .bind(i32::try_from(seq).unwrap_or(i32::MAX))
                    .bind(chunk)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            })?;
        }
        // The writer will read it soon (the code is prepared next): keep it at hand.
        self.inner.cache.put(bytes)?;
        Ok(sha)
    }

    fn get(&self, sha256_hex: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_digest(sha256_hex) {
            return Ok(None);
        }
        if !self.stored(sha256_hex)? {
            self.inner.cache.remove(sha256_hex)?;
            return Ok(None);
        }
        if let Some(bytes) = self.inner.cache.get(sha256_hex)? {
            if digest(&bytes) == sha256_hex {
                return Ok(Some(bytes));
            }
            tracing::warn!(
                sha256 = sha256_hex,
                "a cached code blob does not match its digest: reading it again"
            );
            self.inner.cache.remove(sha256_hex)?;
        }
        let fetched = self.fetch(sha256_hex)?;
        if let Some(bytes) = &fetched {
            self.inner.cache.put(bytes)?;
        }
        Ok(fetched)
    }

    fn remove(&self, sha256_hex: &str) -> Result<(), StoreError> {
        if !is_digest(sha256_hex) {
            return Ok(());
        }
        let pool = self.inner.pool.clone();
        let sha = sha256_hex.to_owned();
        self.run(async move {
            sqlx::query("DELETE FROM code_blobs WHERE sha256 = $1")
                .bind(&sha)
                .execute(&pool)
                .await?;
            Ok(())
        })?;
        self.inner.cache.remove(sha256_hex)
    }
}
