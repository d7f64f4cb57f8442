//! The code store: a function's zip and its unpacked tree, from upload to removal.
//!
//! - **stage**: a zip is unpacked (and so checked for zip-slip, symlinks and bombs) into a
//!   fresh folder under `staging/` *before* anything is stored, so a refused zip leaves
//!   nothing behind;
//! - **commit**: the zip goes into the blob store by SHA-256 and its staged tree moves to
//!   `code/<sha256>/`, shared by every function with the same zip;
//! - **collect**: a blob and its tree that no function or version uses any more are removed;
//!   the tree a previous generation served is removed only once nothing can still run on it.
//!
//! [`CodeStore::lock`] orders "write blob, then reference it" against "unreference, then
//! remove", so removal never races a new reference. The control plane holds the same lock for
//! its other steps that must not interleave (publishing, moving aliases, deleting versions).

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use stoke_core::CodeInfo;
use stoke_store::{Blobs, Store};

use crate::ControlError;
use crate::code::{self, CodeError, UnpackLimits};
use crate::prepare::Preparer;
use crate::target::{CodeSource, Layout};

/// A zip unpacked into its staging folder, ready to commit.
#[derive(Debug)]
pub(super) struct Staged {
    dir: PathBuf,
    unpacked: code::Unpacked,
}

/// Code blobs and their unpacked trees.
pub(super) struct CodeStore {
    /// Asked whether a blob is still referenced before it is removed.
    store: Arc<dyn Store>,
    blobs: Blobs,
    layout: Layout,
    limits: UnpackLimits,
    /// Told when a blob is removed (a backend's images of it go too).
    preparer: Arc<dyn Preparer>,
    /// Orders blob writes and references against blob removal (see the module doc).
    lock: tokio::sync::Mutex<()>,
}

impl CodeStore {
    /// Opens the code folders under `layout`, removing what a crash left in staging.
    pub(super) fn open(
        store: Arc<dyn Store>,
        blobs: Blobs,
        layout: Layout,
        preparer: Arc<dyn Preparer>,
    ) -> Result<Arc<Self>, ControlError> {
        for dir in [&layout.code_root, &layout.staging_root] {
            std::fs::create_dir_all(dir).map_err(|e| ControlError::Code(CodeError::Io(e)))?;
        }
        // Leftovers of unpacks that a crash interrupted.
        if let Ok(entries) = std::fs::read_dir(&layout.staging_root) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        Ok(Arc::new(Self {
            store,
            blobs,
            layout,
            limits: UnpackLimits::default(),
            preparer,
            lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// Takes the code lock (see the module doc).
    pub(super) async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    /// The folder of a code blob's unpacked tree.
    pub(super) fn dir(&self, sha256_hex: &str) -> PathBuf {
        self.layout.code_dir(sha256_hex)
    }

    /// The zip of a code blob.
    pub(super) async fn zip(&self, sha256_hex: &str) -> Result<Option<Vec<u8>>, ControlError> {
        let blobs = self.blobs.clone();
        let sha = sha256_hex.to_owned();
        Ok(tokio::task::spawn_blocking(move || blobs.get(&sha)).await??)
    }

    /// Unpacks a zip into a fresh staging folder (checking it on the way).
    pub(super) async fn stage(&self, zip: Vec<u8>) -> Result<Staged, ControlError> {
        let dir = self
            .layout
            .staging_root
            .join(uuid::Uuid::new_v4().to_string());
        let limits = self.limits;
        let d = dir.clone();
        let result = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&d)?;
            code::unpack(&zip, &d, limits)
        })
        .await?;
        match result {
            Ok(unpacked) => Ok(Staged { dir, unpacked }),
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&dir).await;
                Err(e.into())
            }
        }
    }

    /// Stores the zip and moves its staged tree to `code/<sha>`. Hold [`CodeStore::lock`].
    pub(super) async fn commit(
        &self,
        zip: Vec<u8>,
        staged: Staged,
    ) -> Result<CodeInfo, ControlError> {
        let blobs = self.blobs.clone();
        let code_root = self.layout.code_root.clone();
        let size = zip.len() as u64;
        let Staged { dir, unpacked } = staged;
        let sha = tokio::task::spawn_blocking(move || -> Result<String, ControlError> {
            let sha = blobs.put(&zip)?;
            let target = code_root.join(&sha);
            if target.exists() {
                let _ = std::fs::remove_dir_all(&dir);
            } else {
                std::fs::rename(&dir, &target).map_err(CodeError::Io)?;
            }
            Ok(sha)
        })
        .await??;
        Ok(CodeInfo {
            sha256_hex: sha,
            size,
            unzipped_size: unpacked.bytes,
        })
    }

    /// Unpacks a stored blob again when its tree is missing (a crash between storing the blob
    /// and moving its tree). Answers `false` if the blob is gone too.
    pub(super) async fn restore(&self, sha256_hex: &str) -> Result<bool, ControlError> {
        if self.dir(sha256_hex).exists() {
            return Ok(true);
        }
        let Some(zip) = self.zip(sha256_hex).await? else {
            return Ok(false);
        };
        let staged = self.stage(zip.clone()).await?;
        let _guard = self.lock().await;
        self.commit(zip, staged).await?;
        Ok(true)
    }

    /// Removes a blob and its tree if no function uses them. Hold [`CodeStore::lock`].
    pub(super) async fn collect(&self, sha: &str) {
        match self.store.code_in_use(sha).await {
            Ok(false) => {
                let blobs = self.blobs.clone();
                let tree = self.dir(sha);
                let sha = sha.to_owned();
                let preparer = Arc::clone(&self.preparer);
                let done = tokio::task::spawn_blocking(move || {
                    // What the backends made of it first: a crash after leaves the tree for
                    // the next start's sweep, which tells them again.
                    preparer.forget_code(&sha);
                    let _ = std::fs::remove_dir_all(tree);
                    blobs.remove(&sha)
                })
                .await;
                if let Ok(Err(e)) = done {
                    tracing::warn!(error = %e, "could not remove an unused code blob");
                }
            }
            Ok(true) => {}
            Err(e) => tracing::warn!(error = %e, "could not check whether code is in use"),
        }
    }

    /// Collects each of `shas` (deduplicated). Hold [`CodeStore::lock`].
    pub(super) async fn collect_all(&self, mut shas: Vec<String>) {
        shas.sort();
        shas.dedup();
        for sha in shas {
            self.collect(&sha).await;
        }
    }

    /// Collects every tree no function uses (those whose collection a previous run had put
    /// off, see [`CodeStore::collect_later`]).
    pub(super) async fn sweep(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.layout.code_root) {
            let _guard = self.lock().await;
            for e in entries.flatten() {
                if let Some(sha) = e.file_name().to_str() {
                    self.collect(sha).await;
                }
            }
        }
    }

    /// Collects the code a previous generation served, once nothing can still be using it:
    /// calls that were running on it have finished (its timeout) and a call that resolved to
    /// it just before the switch has started its sandbox (a margin). A process sandbox mounts
    /// the code folder itself, so removing it earlier would pull files from under it. A
    /// shutdown or a restart before then leaves the folder to the next start's
    /// [`CodeStore::sweep`].
    pub(super) fn collect_later(self: &Arc<Self>, sha: String, timeout_secs: u32) {
        let grace = std::time::Duration::from_secs(u64::from(timeout_secs) + 30);
        let this: Weak<Self> = Arc::downgrade(self);
        // Not a task shutdown waits for, and it keeps nothing alive while it sleeps.
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(this) = this.upgrade() {
                let _guard = this.lock().await;
                this.collect(&sha).await;
            }
        });
    }
}

/// A sandbox of code that another node deployed finds its tree here once [`CodeStore::restore`]
/// has fetched and unpacked the blob (PostgreSQL's blob store verifies its SHA-256).
#[async_trait::async_trait]
impl CodeSource for CodeStore {
    async fn ensure(&self, sha256_hex: &str) -> Result<bool, String> {
        self.restore(sha256_hex).await.map_err(|e| e.to_string())
    }
}
