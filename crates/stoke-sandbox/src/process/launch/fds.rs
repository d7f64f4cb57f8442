//! Descriptor hygiene: nothing but 0–2 crosses into a sandbox.
//!
//! A descriptor without close-on-exec survives `exec`: whatever the server was started with
//! (`stoke serve 7</ 8>>file`, the pipe of a launching shell) would be open inside every
//! function. Two defences: the server marks every descriptor it inherited close-on-exec first
//! thing ([`mark_inherited_cloexec`]), and a sandbox's PID 1 marks every descriptor from 3 up
//! close-on-exec just before it `exec`s the runtime ([`cloexec_from`]), whatever the server
//! holds at that moment. Every descriptor the server opens itself is close-on-exec already
//! (Rust's std opens, pipes, sockets and dups with `O_CLOEXEC`; the launcher's raw calls pass
//! `SOCK_CLOEXEC` / `O_CLOEXEC`).

use std::io;

/// The soft `RLIMIT_NOFILE`: no descriptor number of this process is above it, save ones
/// opened before the limit was lowered (the fallbacks below cannot see those).
pub(super) fn soft_nofile_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes `limit`, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } < 0 {
        return 1024;
    }
    // Infinity or absurd values: the kernel's own ceiling (fs.nr_open) is 2^30 at most.
    limit.rlim_cur.min(1 << 20)
}

/// close_range(2) of `first..` with `flags`; `false` when the kernel does not know it (before
/// 5.9, or before 5.11 for `CLOSE_RANGE_CLOEXEC`). Async-signal-safe.
fn close_range(first: u32, flags: libc::c_uint) -> bool {
    // SAFETY: close_range(2) only changes this process's descriptor table; callers own every
    // descriptor in the range (none is used again, or each may only gain close-on-exec).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, flags) };
    if r == 0 {
        return true;
    }
    !matches!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::ENOSYS | libc::EINVAL)
    )
}

/// Marks every descriptor from `first` up close-on-exec; where close_range(2) cannot, fcntl(2)
/// on every number below `limit`. Async-signal-safe: allocates nothing, so it may run between
/// `fork` and `exec`.
pub(super) fn cloexec_from(first: u32, limit: u64) {
    if !close_range(first, libc::CLOSE_RANGE_CLOEXEC) {
        cloexec_by_fcntl(first, limit);
    }
}

/// The fallback of [`cloexec_from`]. Async-signal-safe.
fn cloexec_by_fcntl(first: u32, limit: u64) {
    for fd in u64::from(first)..limit {
        let Ok(fd) = libc::c_int::try_from(fd) else {
            break;
        };
        // SAFETY: fcntl(2) on a number that is open or not (EBADF); F_GETFD/F_SETFD only read
        // and set the descriptor's flags.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Closes every descriptor from `first` up (close(2) on each number below `limit` where
/// close_range(2) cannot). Async-signal-safe.
pub(super) fn close_from(first: u32, limit: u64) {
    if close_range(first, 0) {
        return;
    }
    for fd in u64::from(first)..limit {
        let Ok(fd) = libc::c_int::try_from(fd) else {
            break;
        };
        // SAFETY: close(2) of a number the caller owns (or EBADF).
        unsafe {
            libc::close(fd);
        }
    }
}

/// Marks every descriptor this process inherited, from 3 up, close-on-exec, so that none of
/// them reaches a child process (a sandbox, `mkfs.ext4`). Call it first thing in `main`, before
/// anything of the process's own is open (a descriptor marked here still works in this
/// process; it only stops at `exec`).
pub fn mark_inherited_cloexec() {
    cloexec_from(3, soft_nofile_limit());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn is_cloexec(fd: libc::c_int) -> bool {
        // SAFETY: F_GETFD reads a descriptor's flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        flags >= 0 && flags & libc::FD_CLOEXEC != 0
    }

    #[test]
    fn inherited_descriptors_become_close_on_exec() {
        let f = std::fs::File::open("/").expect("opens /");
        let fd = f.as_raw_fd();
        // SAFETY: clears the flag of a descriptor this test owns.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, 0);
        }
        assert!(!is_cloexec(fd));
        mark_inherited_cloexec();
        assert!(is_cloexec(fd));
        // SAFETY: as above.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, 0);
        }
        // The fallback of old kernels does the same.
        cloexec_by_fcntl(3, soft_nofile_limit());
        assert!(is_cloexec(fd));
    }
}
