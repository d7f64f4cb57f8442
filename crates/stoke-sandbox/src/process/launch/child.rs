//! What the forked child calls besides the system calls of the launch itself, all
//! async-signal-safe on memory allocated before the fork: its reports through the info pipe
//! (the host pid of PID 1; the step that failed and its `errno`) and the writing of a small
//! file into the new root (`/etc/passwd`, `/etc/group`).

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

pub(super) const MSG_PID: i32 = 1;
pub(super) const MSG_FAIL: i32 = 2;

/// Writes a 12-byte message to the info pipe (async-signal-safe).
pub(super) fn send(fd: RawFd, kind: i32, a: i32, b: i32) {
    let mut buf = [0u8; 12];
    buf[..4].copy_from_slice(&kind.to_ne_bytes());
    buf[4..8].copy_from_slice(&a.to_ne_bytes());
    buf[8..].copy_from_slice(&b.to_ne_bytes());
    // SAFETY: writes 12 bytes from a buffer on this stack to a descriptor we hold.
    unsafe {
        libc::write(fd, buf.as_ptr().cast(), buf.len());
    }
}

/// Reports a failed step and turns errno into the error `pre_exec` returns.
pub(super) fn fail(info: RawFd, step: i32) -> io::Error {
    let e = io::Error::last_os_error();
    send(info, MSG_FAIL, step, e.raw_os_error().unwrap_or(0));
    e
}

pub(super) fn ok_or(info: RawFd, step: i32, r: libc::c_int) -> io::Result<()> {
    if r < 0 { Err(fail(info, step)) } else { Ok(()) }
}

/// Like [`ok_or`], but a path that already exists is fine.
pub(super) fn ok_unless_exists(info: RawFd, step: i32, r: libc::c_int) -> io::Result<()> {
    if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
        return Err(fail(info, step));
    }
    Ok(())
}

/// Creates `path` (mode 644) holding `data`, in the forked child (async-signal-safe calls on
/// memory allocated before the fork).
pub(super) fn write_file(info: RawFd, step: i32, path: &CString, data: &[u8]) -> io::Result<()> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
    // SAFETY: open(2) reads the NUL-terminated path, owned by the caller for the call.
    let fd = unsafe { libc::open(path.as_ptr(), flags, 0o644 as libc::c_uint) };
    if fd < 0 {
        return Err(fail(info, step));
    }
    let mut at = 0;
    while at < data.len() {
        // SAFETY: write(2) reads at most `len - at` bytes of `data`, from offset `at`.
        let n = unsafe { libc::write(fd, data[at..].as_ptr().cast(), data.len() - at) };
        if n <= 0 {
            let e = fail(info, step);
            // SAFETY: close(2) of the descriptor opened above.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        at += n.unsigned_abs();
    }
    // SAFETY: close(2) of the descriptor opened above.
    ok_or(info, step, unsafe { libc::close(fd) })
}
