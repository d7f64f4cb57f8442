//! Code blobs in a folder ([`FsBlobStore`]): each zip stored once, under the hex of its
//! SHA-256.
//!
//! `ROOT/sha256/ab/abcdef…` holds the zip whose digest is `abcdef…`. A blob is written to a
//! temporary file in the same folder, synced, and renamed into place (then the folder is
//! synced), so an address never names a partial file, and writing the same zip twice is a
//! no-op. A crash (kill -9) in the middle of a write leaves the temporary file (named
//! [`TEMP_PREFIX`]…): [`FsBlobStore::open`] removes such files, and only those, at start-up.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{BlobStore, digest};
use crate::StoreError;

/// How the names of blobs being written begin (a committed blob's name is its digest, which
/// never begins with a dot).
pub const TEMP_PREFIX: &str = ".tmp";

/// The folder of code blobs.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Uses (creating it if needed) `root` for blobs, and removes the temporary files of
    /// writes a crash interrupted. Open a folder from one server at a time.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into().join("sha256");
        std::fs::create_dir_all(&root).map_err(|e| StoreError::io(&root, e))?;
        let blobs = Self { root };
        let swept = blobs.sweep_temporary();
        if swept > 0 {
            tracing::info!(
                files = swept,
                "removed blob files a crash left half-written"
            );
        }
        Ok(blobs)
    }

    /// Removes `TEMP_PREFIX…` files under the fan-out folders. Answers how many went.
    fn sweep_temporary(&self) -> usize {
        let Ok(dirs) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        let mut gone = 0;
        for dir in dirs.flatten() {
            if !dir.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(files) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            for f in files.flatten() {
                let temporary = f
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(TEMP_PREFIX));
                if temporary && f.file_type().is_ok_and(|t| t.is_file()) {
                    match std::fs::remove_file(f.path()) {
                        Ok(()) => gone += 1,
                        Err(e) => {
                            tracing::warn!(path = %f.path().display(), error = %e, "could not remove a temporary blob file")
                        }
                    }
                }
            }
        }
        gone
    }

    /// Lowercase hex SHA-256 of `bytes`: a blob's address.
    pub fn digest(bytes: &[u8]) -> String {
        digest(bytes)
    }

    /// Where the blob with this address lives (whether or not it exists). The address is
    /// checked to be hex, so it can never name a path outside the folder.
    pub fn path(&self, sha256_hex: &str) -> Option<PathBuf> {
        if sha256_hex.len() != 64 || !sha256_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(self.root.join(&sha256_hex[..2]).join(sha256_hex))
    }
}

impl BlobStore for FsBlobStore {
    fn put(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let sha = digest(bytes);
        let path = self
            .path(&sha)
            .ok_or_else(|| StoreError::Corrupt("bad digest".into()))?;
        if path.exists() {
            return Ok(sha);
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&dir)
            .map_err(|e| StoreError::io(&dir, e))?;
        tmp.write_all(bytes)
            .map_err(|e| StoreError::io(tmp.path(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| StoreError::io(tmp.path(), e))?;
        tmp.persist(&path)
            .map_err(|e| StoreError::io(&path, e.error))?;
        sync_dir(&dir)?;
        Ok(sha)
    }

    fn get(&self, sha256_hex: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(path) = self.path(sha256_hex) else {
            return Ok(None);
        };
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    fn remove(&self, sha256_hex: &str) -> Result<(), StoreError> {
        let Some(path) = self.path(sha256_hex) else {
            return Ok(());
        };
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlobStore;

    #[test]
    fn opening_sweeps_half_written_files_and_keeps_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobStore::open(dir.path()).unwrap();
        let a = blobs.put(b"kept").unwrap();
        let fan = blobs.path(&a).unwrap().parent().unwrap().to_path_buf();
        // What a write cut by a crash leaves: a temporary file beside the blobs.
        let left = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&fan)
            .unwrap()
            .keep()
            .unwrap()
            .1;
        std::fs::write(&left, b"half a zip").unwrap();
        std::fs::create_dir_all(dir.path().join("sha256/zz")).unwrap();
        let other = dir.path().join("sha256/zz/.tmpOLD");
        std::fs::write(&other, b"x").unwrap();
        let blobs = FsBlobStore::open(dir.path()).unwrap();
        assert!(!left.exists() && !other.exists());
        assert_eq!(blobs.get(&a).unwrap().unwrap(), b"kept");
    }

    #[test]
    fn an_address_that_is_not_a_digest_names_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobStore::open(dir.path()).unwrap();
        assert!(blobs.path("../../etc/passwd").is_none());
        assert!(blobs.get("zz").unwrap().is_none());
    }
}
