//! Errors of the store.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("changed since it was read (revision {expected} is stale)")]
    Stale { expected: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("blob store {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the disk is full")]
    DiskFull,
}

impl StoreError {
    /// A compare-and-swap that found another revision than `expected`.
    pub(crate) fn stale(expected: &str) -> Self {
        Self::Stale {
            expected: expected.to_owned(),
        }
    }

    pub(crate) fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        if source.raw_os_error() == Some(28) {
            // ENOSPC: said plainly, so the API can answer it as such.
            return Self::DiskFull;
        }
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
