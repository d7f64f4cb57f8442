//! Loop devices: attaching an image file to a free one (`/dev/loop-control`,
//! `LOOP_CONFIGURE`, else the older `LOOP_SET_FD` + `LOOP_SET_STATUS64`), always with
//! `LO_FLAGS_AUTOCLEAR`, so that the kernel detaches the device when its last user goes (the
//! descriptor returned, then the mounts of it): nothing is left attached after a crash.
//! Used by `scratch` (each sandbox's writable `/tmp`) and `image` (the read-only file systems
//! of `/var/lang`, `/var/runtime` and `/var/task`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use linux_raw_sys::loop_device as ld;

/// How a device is attached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoopFlags {
    /// The device refuses writes (`LO_FLAGS_READ_ONLY`); the image may be opened read-only.
    pub read_only: bool,
    /// The name the device reports (`lo_file_name`, at most 63 bytes).
    pub name: &'static [u8],
    /// Direct I/O (where the image's file system allows it): the image's pages are not cached
    /// twice, but every read the device's own cache misses goes to the disk.
    pub direct_io: bool,
}

fn ioctl_result(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Attaches `image` to a free loop device (autoclear): its path and an open descriptor on it.
pub(crate) fn attach(image: &File, flags: LoopFlags) -> io::Result<(PathBuf, OwnedFd)> {
    let ctl = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    let mut last = io::Error::other("every free loop device was taken meanwhile");
    // Another process may take the device between LOOP_CTL_GET_FREE and LOOP_CONFIGURE
    // (EBUSY): ask again.
    for _ in 0..64 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = ioctl_result(unsafe {
            libc::ioctl(ctl.as_raw_fd(), ld::LOOP_CTL_GET_FREE as libc::Ioctl)
        })?;
        let device = PathBuf::from(format!("/dev/loop{n}"));
        let dev = match open_device(&device, flags.read_only) {
            Ok(d) => d,
            Err(e) => {
                last = e;
                continue;
            }
        };
        match configure(&dev, image, flags) {
            Ok(()) => return Ok((device, OwnedFd::from(dev))),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Opens a loop device, waiting briefly for its node (devtmpfs makes it as the device appears).
fn open_device(path: &Path, read_only: bool) -> io::Result<File> {
    let mut tries = 0;
    loop {
        match OpenOptions::new().read(true).write(!read_only).open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            r => return r,
        }
    }
}

/// `LOOP_CONFIGURE` (Linux 5.8), else `LOOP_SET_FD` and `LOOP_SET_STATUS64` (without direct
/// I/O).
fn configure(dev: &File, image: &File, flags: LoopFlags) -> io::Result<()> {
    let fd = u32::try_from(image.as_raw_fd()).map_err(|_| io::Error::other("bad descriptor"))?;
    let mut base = ld::LO_FLAGS_AUTOCLEAR as u32;
    if flags.read_only {
        base |= ld::LO_FLAGS_READ_ONLY as u32;
    }
    // SAFETY: `loop_info64` is plain data; all-zero is a valid value.
    let mut info: ld::loop_info64 = unsafe { std::mem::zeroed() };
    info.lo_flags = base;
    if flags.direct_io {
        info.lo_flags |= ld::LO_FLAGS_DIRECT_IO as u32;
    }
    for (d, s) in info.lo_file_name.iter_mut().take(63).zip(flags.name) {
        *d = *s;
    }
    // SAFETY: as above.
    let mut config: ld::loop_config = unsafe { std::mem::zeroed() };
    config.fd = fd;
    config.info = info;
    for attempt in 0..2 {
        // SAFETY: LOOP_CONFIGURE reads a `loop_config` that lives on this stack.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), ld::LOOP_CONFIGURE as libc::Ioctl, &config) };
        match ioctl_result(r) {
            Ok(_) => return Ok(()),
            // Older kernels reject an unknown flag or ioctl: without direct I/O, then the
            // old pair of calls.
            Err(e) if attempt == 0 && e.raw_os_error() == Some(libc::EINVAL) => {
                config.info.lo_flags = base;
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL)) => break,
            Err(e) => return Err(e),
        }
    }
    // SAFETY: LOOP_SET_FD takes the backing file's descriptor as its argument.
    ioctl_result(unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            ld::LOOP_SET_FD as libc::Ioctl,
            libc::c_ulong::from(fd),
        )
    })?;
    // LOOP_SET_STATUS64 cannot set LO_FLAGS_READ_ONLY: LOOP_SET_FD took it from how the image
    // was opened (read-only images are).
    info.lo_flags = ld::LO_FLAGS_AUTOCLEAR as u32;
    // SAFETY: LOOP_SET_STATUS64 reads a `loop_info64` that lives on this stack.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), ld::LOOP_SET_STATUS64 as libc::Ioctl, &info) };
    if let Err(e) = ioctl_result(r) {
        // SAFETY: LOOP_CLR_FD takes no argument.
        unsafe {
            libc::ioctl(dev.as_raw_fd(), ld::LOOP_CLR_FD as libc::Ioctl, 0);
        }
        return Err(e);
    }
    Ok(())
}
