//! Code blobs: each zip stored once, under the hex of its SHA-256 (its address). The
//! [`BlobStore`] trait; [`FsBlobStore`] keeps them in a folder.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::StoreError;

mod fs;

pub use fs::{FsBlobStore, TEMP_PREFIX};

/// Content-addressed blobs. The methods block (files, or a network round trip): call them
/// from a blocking thread. An address that is not 64 hex digits names no blob.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` durably (on disk before it answers) and answers their address. Storing
    /// the same bytes again is a no-op.
    fn put(&self, bytes: &[u8]) -> Result<String, StoreError>;

    /// The blob's bytes, or `None` if there is no such blob.
    fn get(&self, sha256_hex: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes a blob (absent is fine).
    fn remove(&self, sha256_hex: &str) -> Result<(), StoreError>;
}

/// The blob store as the engine holds it: shared, whatever the implementation.
pub type Blobs = Arc<dyn BlobStore>;

/// Lowercase hex SHA-256 of `bytes`: a blob's address.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
