//! A sandbox's waiter: the process that stays outside the sandbox's pid namespace as the
//! parent of its PID 1, waits for it, and exits with its status (the exit code, or 128 + the
//! signal), so that the server learns how the sandbox ended by waiting for a child of its own.
//!
//! The waiter is forked from the server; kept as that fork it would hold a private copy of
//! every page of the server the server writes afterwards (~20 MB each). So right after it has
//! forked the sandbox's PID 1 it `exec`s a small helper: by default the server's own binary
//! (`/proc/self/exe`, which works even when the file has been replaced on disk) with the
//! hidden first argument [`WAITER_ARG`] and PID 1's pid, which `main` hands to
//! [`waiter_main`] before it does anything else. Should that `exec` fail, the fork waits
//! itself (as before). The waiter never enters the sandbox's mount namespace (PID 1 unshares
//! it), so the sandbox's `pivot_root` cannot move the waiter's root.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The hidden first argument that makes a program a sandbox's waiter.
pub const WAITER_ARG: &str = "__stoke-sandbox-waiter";

/// The helper's `exec`, prepared before `fork` (nothing is allocated after it).
#[derive(Debug)]
pub(super) struct WaiterExec {
    program: CString,
    argv0: CString,
    arg: CString,
}

impl WaiterExec {
    pub(super) fn new(program: &Path) -> io::Result<Self> {
        let c = |s: &OsStr| {
            CString::new(s.as_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a path"))
        };
        Ok(Self {
            program: c(program.as_os_str())?,
            argv0: c(OsStr::new("stoke-sandbox-waiter"))?,
            arg: c(OsStr::new(WAITER_ARG))?,
        })
    }

    /// In the forked waiter: `exec`s the helper to wait for `pid` (and watch the server,
    /// its parent), with an empty environment. Returns only if the `exec` failed.
    /// Async-signal-safe (the numbers are written on the stack).
    pub(super) fn exec(&self, pid: i32) {
        // SAFETY: getppid(2) has no arguments and cannot fail.
        let server = unsafe { libc::getppid() };
        let (mut a, mut b) = ([0u8; 12], [0u8; 12]);
        let argv: [*const libc::c_char; 5] = [
            self.argv0.as_ptr(),
            self.arg.as_ptr(),
            decimal(pid, &mut a).as_ptr().cast(),
            decimal(server, &mut b).as_ptr().cast(),
            std::ptr::null(),
        ];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        // SAFETY: execve(2) reads NUL-terminated strings and NULL-terminated arrays that live
        // on this stack or in `self` for the duration of the call; on success it does not
        // return, on failure it changes nothing.
        unsafe {
            libc::execve(self.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        }
    }
}

/// `v` in decimal, NUL-terminated, in `buf` (up to 10 digits and the NUL, written backwards
/// from the end): the slice from the first digit. Async-signal-safe.
fn decimal(v: i32, buf: &mut [u8; 12]) -> &[u8] {
    let mut at = buf.len() - 1;
    let mut v = v.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + u8::try_from(v % 10).unwrap_or(0);
        v /= 10;
        if v == 0 || at == 0 {
            break;
        }
    }
    &buf[at..]
}

/// pidfd_open(2): a descriptor that becomes readable when `pid` has exited.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) with integer arguments returns a new descriptor or fails.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    let fd = libc::c_int::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Until the sandbox's PID 1 exits or the server does, whichever is first; when the server
/// goes first (even by `kill -9`), PID 1 is killed, and with it every process of the
/// sandbox's pid namespace, its mount namespace and its `/tmp` disk. Without pidfds (before
/// Linux 5.3) it only waits.
fn watch(pid: i32, server: i32) {
    let (Some(server_fd), Some(init_fd)) = (pidfd_open(server), pidfd_open(pid)) else {
        return;
    };
    // SAFETY: getppid(2) has no arguments and cannot fail.
    if unsafe { libc::getppid() } != server {
        // The server was gone before its pidfd was opened (this process has been reparented).
        super::kill(pid);
        return;
    }
    let mut fds = [server_fd.as_raw_fd(), init_fd.as_raw_fd()].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        // SAFETY: poll(2) reads and writes the two `pollfd`s of `fds`, which live here.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if r > 0 && fds[0].revents != 0 && fds[1].revents == 0 {
            super::kill(pid);
        }
        return;
    }
}

/// Waits for the child `pid` and returns its status as an exit code: the code it exited
/// with, or 128 + the signal that ended it (126 if waiting failed). Async-signal-safe.
pub(super) fn wait_for(pid: i32) -> i32 {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid(2) writes `status`, which lives on this stack.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                126
            };
        }
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 126;
        }
    }
}

/// The waiter helper's `main`: when this process was started as a sandbox's waiter (its first
/// argument is [`WAITER_ARG`], then PID 1's pid and the server's), waits for the sandbox's
/// PID 1 (killing it should the server end first) and returns the exit code to end with;
/// otherwise `None` at once. Call it first thing in `main`, before any thread or
/// runtime is started.
pub fn waiter_main() -> Option<u8> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != WAITER_ARG {
        return None;
    }
    let mut number = || {
        args.next()
            .and_then(|a| a.to_str()?.parse::<i32>().ok())
            .filter(|p| *p > 0)
    };
    let (pid, server) = (number(), number());
    let code = match pid {
        Some(pid) => {
            if let Some(server) = server {
                watch(pid, server);
            }
            wait_for(pid)
        }
        None => 126,
    };
    Some(u8::try_from(code).unwrap_or(126))
}
