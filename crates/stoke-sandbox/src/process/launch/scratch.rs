//! `/tmp` of a process sandbox as disk of the function's EphemeralStorage size, not memory.
//!
//! Per sandbox: a sparse image file of EphemeralStorage bytes in `<backend dir>/tmp/`, a copy
//! of a template formatted ext4 once per size by `mkfs.ext4` (no journal, lazy inode tables:
//! ~10–30 ms whatever the size, while the copy of its ~60 KB of written blocks takes well under
//! a millisecond), attached by the host to a free loop device (`loopdev`: autoclear and direct
//! I/O, so the image's pages are not cached twice) and
//! unlinked at once. The sandbox's PID 1 mounts the device at `/tmp` (nosuid, nodev, mode
//! 1777) in its own mount namespace, so the host never sees the mount; the host's descriptor
//! on the device closes as soon as the runtime has started. From then on the mount is the
//! device's only user: when the sandbox's last process ends, its mount namespace goes, the
//! file system is unmounted, the kernel detaches the device (autoclear) and frees the
//! unlinked image. That holds after a `kill -9` of the server too; the only thing a crash
//! can leave is an image between its creation and its attachment, which [`Scratch::open`]
//! sweeps at start-up.
//!
//! Written data sits in the page cache, which the memory cgroup reclaims by writing it to
//! the image: a function with 128 MB of memory can fill a 10 GB `/tmp`. A full disk answers
//! `ENOSPC`. The image is sparse: the host's disk holds what the function wrote, no more.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::loopdev::{self, LoopFlags};
use super::{check, cstr};
use crate::process::e2fs;

/// How a sandbox's `/tmp` device is attached.
const FLAGS: LoopFlags = LoopFlags {
    read_only: false,
    name: b"stoke-sandbox-tmp",
    direct_io: true,
};

/// The most templates kept at once (see [`Scratch::template`]).
const MOST_TEMPLATES: usize = 8;
/// The default (and smallest) `EphemeralStorage`: the size of the spare disks, whose template
/// is always kept.
pub(crate) const DEFAULT_DISK_BYTES: u64 = 512 * 1024 * 1024;

/// Why a disk could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScratchError {
    #[error("mkfs.ext4 was not found (install e2fsprogs)")]
    NoMkfs,
    #[error("the kernel has no ext4 file system")]
    NoExt4,
    #[error("mkfs.ext4 failed: {0}")]
    Mkfs(String),
    #[error("no loop device could be attached: {0}")]
    Attach(io::Error),
    #[error("mounting a loop device failed: {0}")]
    Mount(io::Error),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Where sandboxes' disks are made, once checked to work.
#[derive(Debug)]
pub(crate) struct Scratch {
    dir: PathBuf,
    mkfs: PathBuf,
    next: AtomicU64,
    /// A formatted image per size (its file already unlinked), that new disks copy.
    templates: Mutex<HashMap<u64, Arc<File>>>,
}

/// One sandbox's `/tmp`: an attached loop device (its image already unlinked). The
/// descriptor keeps the device attached until the sandbox has mounted it; dropping it leaves
/// the mount as the only user.
#[derive(Debug)]
pub(crate) struct Disk {
    device: PathBuf,
    bytes: u64,
    _dev: OwnedFd,
}

impl Disk {
    pub(crate) fn device(&self) -> &Path {
        &self.device
    }

    /// The size it was made with.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Scratch {
    /// Removes what an earlier run left in `dir` and checks, with a small disk mounted in a
    /// private mount namespace, that disks can be made here. An error says why not (the
    /// backend then falls back to a tmpfs).
    pub(crate) fn open(dir: &Path) -> Result<Self, ScratchError> {
        std::fs::create_dir_all(dir)?;
        for e in std::fs::read_dir(dir)?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        let mkfs = e2fs::find_tool("mkfs.ext4").ok_or(ScratchError::NoMkfs)?;
        let fs = std::fs::read_to_string("/proc/filesystems")?;
        if !fs
            .lines()
            .any(|l| l.split_whitespace().last() == Some("ext4"))
        {
            return Err(ScratchError::NoExt4);
        }
        let scratch = Self {
            dir: dir.to_owned(),
            mkfs,
            next: AtomicU64::new(0),
            templates: Mutex::new(HashMap::new()),
        };
        let probe = scratch.create(16 * 1024 * 1024)?;
        let (device, at) = (probe.device.clone(), dir.to_owned());
        std::thread::Builder::new()
            .name("stoke-tmp-probe".into())
            .spawn(move || mount_in_private_namespace(&device, &at))?
            .join()
            .map_err(|_| io::Error::other("the probe thread panicked"))?
            .map_err(ScratchError::Mount)?;
        Ok(scratch)
    }

    /// A fresh ext4 of `bytes`, attached to a loop device, its image unlinked.
    pub(crate) fn create(&self, bytes: u64) -> Result<Disk, ScratchError> {
        let template = self.template(bytes)?;
        let image = Image::create(&self.new_path(), bytes)?;
        copy_data(&template, &image.file)?;
        let (device, dev) = loopdev::attach(&image.file, FLAGS).map_err(ScratchError::Attach)?;
        drop(image);
        Ok(Disk {
            device,
            bytes,
            _dev: dev,
        })
    }

    fn new_path(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{}-{n}.img", std::process::id()))
    }

    /// The formatted image of `bytes`, made by `mkfs.ext4` the first time a size is asked for.
    /// Copies of it are as fresh as a new file system: nothing has mounted the template, so
    /// its blocks hold what `mkfs` wrote and nothing else. (They share its UUID, which ext4
    /// does not require to be unique.)
    fn template(&self, bytes: u64) -> Result<Arc<File>, ScratchError> {
        let mut templates = self
            .templates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = templates.get(&bytes) {
            return Ok(Arc::clone(t));
        }
        let image = Image::create(&self.new_path(), bytes)?;
        self.format(&image.path)?;
        let file = image.file.try_clone()?;
        drop(image);
        let file = Arc::new(file);
        // Each size a function asks for has its template: keep a few, not one per size ever
        // asked for (a descriptor and a few blocks each).
        if templates.len() >= MOST_TEMPLATES {
            let other = templates
                .keys()
                .find(|&&k| k != DEFAULT_DISK_BYTES)
                .copied();
            if let Some(k) = other {
                templates.remove(&k);
            }
        }
        templates.insert(bytes, Arc::clone(&file));
        Ok(file)
    }

    /// Formats the image at `path` as ext4.
    fn format(&self, path: &Path) -> Result<(), ScratchError> {
        let mut args = e2fs::MKFS_COMMON.to_vec();
        args.extend([
            "-i",
            "16384",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
        ]);
        e2fs::run(&self.mkfs, &args, path).map_err(ScratchError::Mkfs)
    }
}

/// Copies the written ranges of the sparse file `from` into `to` (as long, and all holes), so
/// `to` stays as sparse as `from`.
fn copy_data(from: &File, to: &File) -> io::Result<()> {
    let len = from.metadata()?.len();
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    while at < len {
        let Some(start) = seek(from, at, libc::SEEK_DATA)? else {
            break;
        };
        let end = seek(from, start, libc::SEEK_HOLE)?.unwrap_or(len);
        let mut pos = start;
        while pos < end {
            let want = usize::try_from(end - pos).map_or(buf.len(), |n| n.min(buf.len()));
            let n = from.read_at(&mut buf[..want], pos)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "template shrank",
                ));
            }
            to.write_all_at(&buf[..n], pos)?;
            pos += n as u64;
        }
        at = end;
    }
    Ok(())
}

/// `lseek(fd, at, whence)` for `SEEK_DATA`/`SEEK_HOLE`: `None` where no data follows (`ENXIO`).
fn seek(file: &File, at: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let at = libc::off_t::try_from(at).map_err(|_| io::Error::other("offset out of range"))?;
    // SAFETY: lseek(2) on a descriptor this function borrows; it touches no memory.
    let r = unsafe { libc::lseek(file.as_raw_fd(), at, whence) };
    if r >= 0 {
        return Ok(u64::try_from(r).ok());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENXIO) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// An image file that is removed when it goes (attached, the loop device keeps it alive).
struct Image {
    path: PathBuf,
    file: File,
}

impl Image {
    fn create(path: &Path, bytes: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let image = Self {
            path: path.to_owned(),
            file,
        };
        image.file.set_len(bytes)?;
        Ok(image)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Mounts the ext4 on `device` at `at` and unmounts it again, in a mount namespace of the
/// calling thread's own (call it on a thread that ends afterwards): the start-up check that
/// sandboxes will be able to mount their `/tmp`.
fn mount_in_private_namespace(device: &Path, at: &Path) -> io::Result<()> {
    let (device, at, slash, ext4) = (cstr(device)?, cstr(at)?, cstr("/")?, cstr("ext4")?);
    // SAFETY: unshare(2) moves only the calling thread to a new mount namespace.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) })?;
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: mount(2) and umount2(2) only read the NUL-terminated strings passed, which live
    // in this function; null pointers are allowed where given.
    unsafe {
        check(libc::mount(
            null,
            slash.as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            device.as_ptr(),
            at.as_ptr(),
            ext4.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            std::ptr::null(),
        ))?;
        check(libc::umount2(at.as_ptr(), 0))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileExt, MetadataExt};

    #[test]
    fn a_copy_has_the_templates_bytes_and_its_holes() {
        let dir = tempfile::tempdir().unwrap();
        let (from_path, to_path) = (dir.path().join("from"), dir.path().join("to"));
        let from = std::fs::File::create_new(&from_path).unwrap();
        let len = 64 * 1024 * 1024;
        from.set_len(len).unwrap();
        // Written blocks at the start, in the middle (across a 64 KB buffer) and at the end.
        from.write_all_at(b"superblock", 1024).unwrap();
        from.write_all_at(&vec![7u8; 100_000], 20 << 20).unwrap();
        from.write_all_at(b"last", len - 4).unwrap();
        let to = std::fs::File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&to_path)
            .unwrap();
        to.set_len(len).unwrap();
        super::copy_data(&from, &to).unwrap();
        assert_eq!(
            std::fs::read(&from_path).unwrap(),
            std::fs::read(&to_path).unwrap()
        );
        // As sparse as the template: a few blocks, not 64 MB.
        let (a, b) = (from.metadata().unwrap(), to.metadata().unwrap());
        assert!(
            b.blocks() <= a.blocks() + 64,
            "{} vs {} blocks",
            b.blocks(),
            a.blocks()
        );
        assert!(b.blocks() * 512 < 1 << 20, "{} blocks", b.blocks());
    }
}
