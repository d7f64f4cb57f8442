//! sqlx's errors as [`StoreError`]s: the only place the SQLite side's own error types meet the
//! crate's backend-neutral one.

use crate::StoreError;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::backend(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::backend(e)
    }
}
