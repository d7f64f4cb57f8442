//! The read-only file systems of a process sandbox: `/var/lang` (the interpreter),
//! `/var/runtime` (Stoke's runtime loop and the runtime libraries) and `/var/task` (the
//! function's code), each an ext4 image of its own, so that `/proc/self/mountinfo` inside the
//! sandbox shows `/` on `/dev/loopN` for each, never the host path the files came from.
//!
//! - **Made at deploy time** ([`Images::code`], [`Images::composed`], from `prepare`), once:
//!   a code image per code blob, named by its SHA-256 (`code/<sha256>.ext4`); a runtime image
//!   per composed folder, named by its content's key (`runtime/<key>.ext4`: the same
//!   interpreter, or the same runtime files and libraries, give the same key). A cold start
//!   whose image is missing (removed by hand, or a restart after a crash mid-build) makes it.
//! - **Kept** under the backend's folder (`<data dir>/process/images/`) across restarts, and
//!   bounded: a code image goes with its code ([`Images::forget_code`], when the engine removes
//!   a code blob nothing uses), runtime images whose key no interpreter or runtime of this
//!   start has any more are removed at start-up ([`Images::keep_runtime`]). Runtime images may
//!   instead be in a folder shared by the servers of one machine (`stoke serve
//!   --runtime-images`: the tests' servers make them once), which keeps the most recently used.
//! - **Attached** on first use ([`Images::attach`]: a read-only loop device, its ext4 held
//!   mounted outside every namespace, see `launch::image`), and kept attached for the next
//!   cold starts; at most [`MOST_ATTACHED`] at once (the least recently used is let go: its
//!   device detaches when the last sandbox that mounted it ends). Nothing outlives the server:
//!   dropping an attachment or a crash closes its descriptors, and the kernel detaches.
//!
//! Without `mkfs.ext4`, `debugfs`, ext4 or loop devices, [`Images::open`] says why and the
//! backend falls back to read-only binds of the host's paths (see docs/decisions.md).

mod build;
mod compose;

pub(crate) use compose::{Composed, Part};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::launch::image::Attached;

/// The most images kept attached at once, beyond those that running sandboxes still mount.
pub(crate) const MOST_ATTACHED: usize = 32;
/// The most runtime images kept in a folder shared by several servers (the least recently
/// used beyond are removed at start-up).
const MOST_SHARED: usize = 16;
/// A temporary image older than this in a shared folder is a crashed build's.
const STALE_BUILD: std::time::Duration = std::time::Duration::from_secs(3600);

/// Why an image could not be made or attached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImageError {
    #[error("{0} was not found (install e2fsprogs)")]
    NoTool(&'static str),
    #[error("the kernel has no ext4 file system")]
    NoExt4,
    #[error("{name} failed: {why}")]
    Tool { name: &'static str, why: String },
    #[error("a path is not UTF-8")]
    Path,
    #[error("a code SHA-256 that is not 64 hex digits")]
    BadSha,
    #[error("attaching the image to a loop device: {0}")]
    Attach(std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The images of one backend (see the module doc).
#[derive(Debug)]
pub(crate) struct Images {
    dir: PathBuf,
    /// Where runtime images are (`<dir>/runtime`, or a folder shared by several servers).
    runtime: PathBuf,
    shared: bool,
    tools: build::Tools,
    /// Attached images, the most recently used last.
    attached: Mutex<Vec<(PathBuf, Arc<Attached>)>>,
    /// One lock per image being made, so that a deploy and a cold start make it once.
    building: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Images {
    /// Opens the images under `dir` (removing what an interrupted build left) and checks, with
    /// an image of an empty folder, that images can be made and attached here. Runtime images
    /// are in `shared` if given (a folder that several servers of this machine may use: images
    /// are named by their content and written by rename), else in `dir/runtime`.
    pub(crate) fn open(dir: &Path, shared: Option<&Path>) -> Result<Self, ImageError> {
        let tools = build::Tools::find()?;
        let fs = std::fs::read_to_string("/proc/filesystems")?;
        if !fs
            .lines()
            .any(|l| l.split_whitespace().last() == Some("ext4"))
        {
            return Err(ImageError::NoExt4);
        }
        let runtime = shared.map_or_else(|| dir.join("runtime"), Path::to_owned);
        for d in [dir.join("code"), runtime.clone()] {
            std::fs::create_dir_all(&d)?;
            for e in std::fs::read_dir(&d)?.flatten() {
                let name = e.file_name();
                let young = || {
                    e.metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < STALE_BUILD))
                };
                // Another server may be writing one in a shared folder.
                let keep = name.to_string_lossy().ends_with(".ext4") || shared.is_some() && young();
                if !keep {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let staging = dir.join("staging");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)?;
        let images = Self {
            dir: dir.to_owned(),
            runtime,
            shared: shared.is_some(),
            tools,
            attached: Mutex::new(Vec::new()),
            building: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        };
        let (empty, probe) = (staging.join("probe"), staging.join("probe.ext4"));
        std::fs::create_dir_all(&empty)?;
        images.tools.build(&empty, &probe)?;
        let attached = Attached::open(&probe).map_err(ImageError::Attach);
        let _ = std::fs::remove_file(&probe);
        let _ = std::fs::remove_dir(&empty);
        drop(attached?);
        Ok(images)
    }

    /// The image of a function's code (`code_dir`, whose blob is `sha256`), made if missing.
    pub(crate) fn code(&self, sha256: &str, code_dir: &Path) -> Result<PathBuf, ImageError> {
        let path = self.code_path(sha256)?;
        self.ensure(&path, |p| self.tools.build(code_dir, p))?;
        Ok(path)
    }

    fn code_path(&self, sha256: &str) -> Result<PathBuf, ImageError> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ImageError::BadSha);
        }
        Ok(self.dir.join("code").join(format!("{sha256}.ext4")))
    }

    /// The image of a composed folder, made (staged, then imaged) if missing.
    pub(crate) fn composed(&self, c: &Composed) -> Result<PathBuf, ImageError> {
        let path = self.runtime.join(format!("{}.ext4", c.key));
        self.ensure(&path, |p| {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let stage =
                self.dir
                    .join("staging")
                    .join(format!("{}-{}-{n}", c.key, std::process::id()));
            let made = std::fs::create_dir(&stage)
                .map_err(ImageError::from)
                .and_then(|()| c.stage(&stage).map_err(ImageError::from))
                .and_then(|()| self.tools.build(&stage, p));
            let _ = std::fs::remove_dir_all(&stage);
            made
        })?;
        Ok(path)
    }

    /// Makes the image at `path` with `make` unless it is there (once, whoever asks).
    fn ensure(
        &self,
        path: &Path,
        make: impl FnOnce(&Path) -> Result<(), ImageError>,
    ) -> Result<(), ImageError> {
        if path.is_file() {
            return Ok(());
        }
        let one = Arc::clone(lock(&self.building).entry(path.to_owned()).or_default());
        let _guard = lock(&one);
        if path.is_file() {
            return Ok(());
        }
        let t = std::time::Instant::now();
        let made = make(path);
        lock(&self.building).remove(path);
        made?;
        tracing::info!(
            image = %path.display(),
            ms = t.elapsed().as_millis(),
            "made a sandbox image"
        );
        Ok(())
    }

    /// The image of a composed folder, made if missing and attached; a new attachment starts
    /// reading its single files (the executable, `libpython`) into its cache.
    pub(crate) fn attach_composed(&self, c: &Composed) -> Result<Arc<Attached>, ImageError> {
        let (attached, new) = self.attach_new(&self.composed(c)?)?;
        if new {
            for part in &c.parts {
                if let Part::File { at, .. } = part {
                    attached.prefetch(at);
                }
            }
        }
        Ok(attached)
    }

    /// The image at `path`, attached (see the module doc).
    pub(crate) fn attach(&self, path: &Path) -> Result<Arc<Attached>, ImageError> {
        self.attach_new(path).map(|(a, _)| a)
    }

    /// The image at `path`, attached, and whether it was attached now.
    fn attach_new(&self, path: &Path) -> Result<(Arc<Attached>, bool), ImageError> {
        {
            let mut list = lock(&self.attached);
            if let Some(i) = list.iter().position(|(p, _)| p == path) {
                let entry = list.remove(i);
                let a = Arc::clone(&entry.1);
                list.push(entry);
                return Ok((a, false));
            }
        }
        let new = Arc::new(Attached::open(path).map_err(ImageError::Attach)?);
        let mut list = lock(&self.attached);
        // Another cold start may have attached it meanwhile: keep one.
        if let Some((_, a)) = list.iter().find(|(p, _)| p == path) {
            return Ok((Arc::clone(a), false));
        }
        list.push((path.to_owned(), Arc::clone(&new)));
        if list.len() > MOST_ATTACHED {
            list.remove(0);
        }
        Ok((new, true))
    }

    /// Lets go of a code blob's image (the engine removed the blob: nothing runs it any more).
    pub(crate) fn forget_code(&self, sha256: &str) {
        let Ok(path) = self.code_path(sha256) else {
            return;
        };
        lock(&self.attached).retain(|(p, _)| *p != path);
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::debug!(image = %path.display(), "removed a code image"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(image = %path.display(), error = %e, "could not remove a code image")
            }
        }
    }

    /// Removes the runtime images whose key is not one of `keys` (those of this start); in a
    /// shared folder, marks those as used and keeps the [`MOST_SHARED`] most recently used.
    pub(crate) fn keep_runtime(&self, keys: &[&str]) {
        let Ok(entries) = std::fs::read_dir(&self.runtime) else {
            return;
        };
        let mut others = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Some(key) = name.strip_suffix(".ext4") else {
                continue;
            };
            if keys.contains(&key) {
                if self.shared {
                    let now = std::time::SystemTime::now();
                    let _ = std::fs::File::open(e.path()).and_then(|f| f.set_modified(now));
                }
            } else if !self.shared {
                let _ = std::fs::remove_file(e.path());
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                others.push((t, e.path()));
            }
        }
        others.sort();
        let room = MOST_SHARED.saturating_sub(keys.len());
        let excess = others.len().saturating_sub(room);
        for (_, p) in others.into_iter().take(excess) {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Lets go of every attachment (at shutdown, once the last sandbox has gone).
    pub(crate) fn detach_all(&self) {
        let all = std::mem::take(&mut *lock(&self.attached));
        drop(all);
    }
}
