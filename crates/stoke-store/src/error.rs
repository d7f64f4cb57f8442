//! Errors of the store, the same whatever the implementation.

/// A backend's own error, kept as the source of [`StoreError::Backend`].
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("changed since it was read (revision {expected} is stale)")]
    Stale { expected: String },
    /// The database failed (it is unreachable, a statement failed, a migration did not
    /// apply): `message` says what, `source` is the backend's own error.
    #[error("the store failed: {message}")]
    Backend {
        message: String,
        #[source]
        source: BackendError,
    },
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
    /// The store's secrets are sealed with another master key than the one given (or the
    /// check value is damaged): nothing is served with the wrong key.
    #[error("{0}")]
    MasterKey(String),
}

impl StoreError {
    /// A backend's failure, its message kept beside it.
    pub fn backend(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend {
            message: source.to_string(),
            source: Box::new(source),
        }
    }

    /// The store holds schema version `found`, past the newest this build knows (`known`):
    /// a newer Stoke migrated it. Refused before anything is written, on either backend.
    pub fn newer_schema(found: i64, known: i64) -> Self {
        Self::Backend {
            message: format!(
                "the store was migrated by a newer Stoke (schema version {found}; this Stoke knows \
                 up to {known}): run that Stoke or a later one"
            ),
            source: "the store was left as it was".into(),
        }
    }

    /// A compare-and-swap that found another revision than `expected`.
    pub fn stale(expected: &str) -> Self {
        Self::Stale {
            expected: expected.to_owned(),
        }
    }

    /// A failed file operation on `path`; ENOSPC is [`StoreError::DiskFull`].
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
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
