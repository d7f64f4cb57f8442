//! A read-only ext4 image (of `/var/lang`, `/var/runtime` or `/var/task`; made in
//! `process::images`) attached for sandboxes to mount: a loop device attached read-only with
//! autoclear (`loopdev`), and the file system itself held mounted by a detached mount (the
//! new mount API's `fsopen`/`fsmount`: a mount in no namespace, so no `mountinfo` shows it).
//! Each sandbox's PID 1 mounts the device again read-only in its own mount namespace, which
//! the kernel answers with the same superblock: one page cache, dentry and inode cache per
//! image, warm from one cold start to the next, as the host's files were when they were bound.
//!
//! Dropping an [`Attached`] closes both descriptors; the kernel then detaches the device once
//! the last sandbox that mounted it has gone (autoclear). A crash of the server closes them
//! too: no device stays attached to an image nobody uses.

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::cstr;
use super::loopdev::{self, LoopFlags};

/// Buffered, not direct I/O: the image file's pages stay in the host's page cache from one
/// attachment to the next (the first mount of a 200 MB image read its metadata in 3–5 ms so,
/// 14–110 ms with direct I/O on a busy disk); they are clean and reclaimable.
const FLAGS: LoopFlags = LoopFlags {
    read_only: true,
    name: b"stoke-sandbox-image",
    direct_io: false,
};

// The new mount API's constants (linux/mount.h), which `libc` does not all have.
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

/// An image attached to a loop device, its file system held mounted (see the module doc).
#[derive(Debug)]
pub(crate) struct Attached {
    device: PathBuf,
    /// The detached mount; `None` on a kernel without the new mount API (before 5.2), where
    /// the superblock lives only while a sandbox mounts it.
    _holder: Option<OwnedFd>,
    _dev: OwnedFd,
}

impl Attached {
    /// Attaches the image at `path` read-only and mounts its ext4 (detached). An error names
    /// what failed: no free loop device, or a file system the kernel refuses.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let (device, dev) = loopdev::attach(&file, FLAGS)?;
        // The device holds its own reference to the file.
        drop(file);
        let holder = match hold(&device) {
            Ok(fd) => Some(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => None,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("mounting the ext4 of {}: {e}", path.display()),
                ));
            }
        };
        Ok(Self {
            device,
            _holder: holder,
            _dev: dev,
        })
    }

    /// The loop device, e.g. `/dev/loop3`.
    pub(crate) fn device(&self) -> &Path {
        &self.device
    }

    /// Starts reading the file at `rel` (inside the image) into the image's page cache, so that
    /// the first cold start does not fault an executable in page by page through the loop
    /// device. Best effort: nothing happens without the held mount or the file.
    pub(crate) fn prefetch(&self, rel: &Path) {
        use std::os::fd::AsRawFd;
        let (Some(holder), Ok(rel)) = (&self._holder, cstr(rel)) else {
            return;
        };
        // SAFETY: openat(2) reads the NUL-terminated path, which outlives the call, relative
        // to the held mount's root (a descriptor we hold).
        let fd = unsafe {
            libc::openat(
                holder.as_raw_fd(),
                rel.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            )
        };
        if fd < 0 {
            return;
        }
        // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: posix_fadvise(2) takes a descriptor we hold and integers; no memory is read.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED);
        }
    }
}

fn fd_result(r: libc::c_long) -> io::Result<OwnedFd> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(r).map_err(|_| io::Error::other("bad descriptor"))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn zero_or_error(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A detached read-only mount of the ext4 on `device`.
fn hold(device: &Path) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let (ext4, source, ro, dev) = (cstr("ext4")?, cstr("source")?, cstr("ro")?, cstr(device)?);
    // SAFETY: fsopen(2) reads the NUL-terminated name, which outlives the call.
    let fs = fd_result(unsafe { libc::syscall(libc::SYS_fsopen, ext4.as_ptr(), FSOPEN_CLOEXEC) })?;
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: fsconfig(2) reads the NUL-terminated key and value (or none), which outlive the
    // call, on a file system context we hold.
    zero_or_error(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            source.as_ptr(),
            dev.as_ptr(),
            0,
        )
    })?;
    // SAFETY: as above.
    zero_or_error(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_FLAG,
            ro.as_ptr(),
            null,
            0,
        )
    })?;
    // SAFETY: as above (no key or value).
    zero_or_error(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            null,
            null,
            0,
        )
    })?;
    // SAFETY: fsmount(2) takes a context we hold and integer flags; no memory is read.
    fd_result(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )
    })
}
