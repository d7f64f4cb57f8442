//! Launching an execution environment's process tree: namespaces, the new root, limits,
//! privileges, seccomp. The process backend's `unsafe` lives in this module and its children.
//!
//! # Layout
//! - this file: the launch sequence ([`spawn`]).
//! - `tree`: the plan of the sandbox's file tree (mounts, folders, links).
//! - `netns`: the Runtime API socket inside the sandbox's network namespace.
//! - `scratch`: `/tmp` as disk (an ext4 image on a loop device per sandbox).
//! - `image`: the read-only images of `/var/lang`, `/var/runtime` and `/var/task`, attached
//!   and held mounted for sandboxes to mount; `loopdev`: attaching a loop device.
//! - `waiter`: the waiter that stays outside the sandbox and the helper it `exec`s.
//! - `fds`: descriptor hygiene (only 0–2 reach the runtime).
//! - `child`: the forked child's reports through the info pipe, and its file writes.
//!
//! # The sequence
//! 1. [`runtime_socket`]: the Runtime API's listening socket in a new network namespace.
//! 2. [`spawn`]: the `/tmp` disks are made and attached (`scratch`); then
//!    `std::process::Command` forks; in the child (before `exec`, so only async-signal-safe
//!    system calls on memory allocated beforehand):
//!    - join the sandbox's cgroups (write `0` to each `cgroup.procs`) and `unshare` the pid
//!      namespace;
//!    - `fork` again: the grandchild is PID 1 of the new pid namespace; the child stays outside
//!      it, in the host's other namespaces, as its waiter: it reports the grandchild's host
//!      pid, closes every other descriptor and `exec`s the waiter helper (see `waiter`);
//!    - the grandchild joins the sandbox's network namespace (`setns`), `unshare`s mount, ipc
//!      and uts namespaces, makes `/` private, mounts a tmpfs on the (shared, empty) root
//!      folder, builds the tree in it (folders, read-only bind mounts, the devices, `/tmp`,
//!      `/proc`), `pivot_root`s into it, detaches the old root, remounts `/` read-only, sets the
//!      host name and `RLIMIT_NOFILE`, drops every capability from the bounding set, becomes the
//!      unprivileged sandbox user, asks for `SIGKILL` if its parent dies, marks every
//!      descriptor from 3 up close-on-exec, installs the seccomp filters (which set
//!      `no_new_privs`) and `exec`s the runtime with only 0–2 open.
//!
//!    A step that fails writes its number and `errno` to the info pipe, which the host reads to
//!    the end (its last writer closes at `exec`).

// The one module of the process backend allowed `unsafe`; every block says why it is sound.
#![allow(unsafe_code)]

mod child;
mod fds;
pub(crate) mod image;
mod loopdev;
mod netns;
pub(crate) mod scratch;
mod tree;
mod waiter;

pub use fds::mark_inherited_cloexec;
pub(crate) use netns::runtime_socket;
pub(crate) use tree::Mount;
pub use waiter::{WAITER_ARG, waiter_main};

use child::{MSG_FAIL, MSG_PID, fail, ok_or, ok_unless_exists, send, write_file};
use tree::{Step, cstr, plan};

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use seccompiler::BpfProgram;

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Sends `SIGKILL` to a process.
pub(crate) fn kill(pid: i32) {
    if pid > 0 {
        // SAFETY: kill(2) has no memory effects; a stale pid at worst gets ESRCH.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Everything the launcher needs.
pub(crate) struct LaunchSpec {
    /// An empty folder on the host over which each sandbox mounts its own root (in its own
    /// mount namespace, so the host never sees it).
    pub root: PathBuf,
    pub mounts: Vec<Mount>,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    pub hostname: String,
    pub uid: u32,
    pub gid: u32,
    pub open_files: u64,
    pub netns: Option<OwnedFd>,
    pub cgroup_procs: Vec<PathBuf>,
    pub seccomp: Arc<Vec<BpfProgram>>,
    /// Where the process's stdout and stderr go.
    pub output: OwnedFd,
    /// The program the waiter `exec`s with [`WAITER_ARG`] (see `waiter`).
    pub waiter: PathBuf,
    /// A `/tmp` disk made ahead (see `spares`), used for the first [`Mount::Disk`] of its
    /// size instead of a new one.
    pub premade_disk: Option<scratch::Disk>,
}

/// A launched environment: the waiter process (outside the sandbox's pid namespace) and the
/// sandbox's PID 1.
#[derive(Debug)]
pub(crate) struct Launched {
    pub waiter: Child,
    /// PID 1 of the sandbox's pid namespace, as the host sees it; killing it ends every process
    /// of the namespace.
    pub init_pid: i32,
}

/// How a launch failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LaunchError {
    /// The platform could not set the sandbox up (a step failed).
    #[error("setting up the sandbox failed at step {step}: {source}")]
    Setup { step: i32, source: io::Error },
    /// The runtime's program could not be executed.
    #[error("the runtime could not be started: {0}")]
    Exec(io::Error),
    /// The sandbox's /tmp could not be made.
    #[error("making the sandbox's /tmp: {0}")]
    Scratch(scratch::ScratchError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

// Step numbers the child reports.
const S_SETNS: i32 = 1;
const S_CGROUP: i32 = 2;
const S_UNSHARE: i32 = 3;
const S_FORK: i32 = 4;
const S_PRIVATE: i32 = 10;
const S_ROOT: i32 = 11;
const S_TREE: i32 = 100; // + the index of the step
const S_PIVOT: i32 = 20;
const S_RDONLY: i32 = 21;
const S_HOST: i32 = 22;
const S_RLIMIT: i32 = 23;
const S_CAPS: i32 = 24;
const S_USER: i32 = 25;
const S_SECCOMP: i32 = 26;
const S_CHDIR: i32 = 27;

/// What the child needs, prepared before `fork` (nothing is allocated after it).
struct Child0 {
    steps: Vec<Step>,
    root: CString,
    slash: CString,
    dot: CString,
    tmpfs: CString,
    root_data: CString,
    proc_: CString,
    ext4: CString,
    workdir: CString,
    hostname: Vec<u8>,
    uid: u32,
    gid: u32,
    open_files: u64,
    /// The soft `RLIMIT_NOFILE` the server had at the fork (for the descriptor fallbacks).
    fd_limit: u64,
    netns: Option<OwnedFd>,
    cgroups: Vec<OwnedFd>,
    seccomp: Arc<Vec<BpfProgram>>,
    waiter: waiter::WaiterExec,
    info: RawFd,
}

impl Child0 {
    /// In the forked child: the cgroups and a new pid namespace, then fork the sandbox's
    /// PID 1 and become its waiter.
    fn run(&self) -> io::Result<()> {
        let info = self.info;
        for fd in &self.cgroups {
            // SAFETY: writes one byte from a static string to a descriptor we hold.
            let n = unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) };
            if n < 0 {
                return Err(fail(info, S_CGROUP));
            }
        }
        // Only the pid namespace here: it applies to children. The waiter stays in the host's
        // mount namespace (PID 1 makes its own), which `pivot_root` would otherwise change
        // the root of.
        // SAFETY: unshare(2) with a constant flag; no memory effects.
        ok_or(info, S_UNSHARE, unsafe {
            libc::unshare(libc::CLONE_NEWPID)
        })?;
        // SAFETY: fork(2) in a freshly forked single-threaded child; both sides below use only
        // async-signal-safe calls on memory prepared before the first fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(fail(info, S_FORK));
        }
        if pid > 0 {
            self.wait_and_exit(pid);
        }
        self.sandbox()
    }

    /// The waiter: reports PID 1's host pid, lets go of every other descriptor (the info
    /// pipe, std's exec-status pipe, the namespace and cgroup descriptors, whatever else the
    /// server holds) and `exec`s the helper that waits for PID 1; if that fails, waits itself.
    /// Either way it exits with PID 1's status.
    fn wait_and_exit(&self, pid: i32) -> ! {
        send(self.info, MSG_PID, pid, 0);
        fds::close_from(3, self.fd_limit);
        self.waiter.exec(pid);
        let code = waiter::wait_for(pid);
        // SAFETY: _exit(2) ends this process without running Rust or libc destructors, which
        // belong to the parent's copy of the address space.
        unsafe { libc::_exit(code) }
    }

    /// PID 1 of the sandbox: the new root, limits, privileges, seccomp.
    fn sandbox(&self) -> io::Result<()> {
        let info = self.info;
        let null = std::ptr::null::<libc::c_char>();
        if let Some(ns) = &self.netns {
            // SAFETY: setns(2) on a namespace descriptor we hold; no memory effects.
            ok_or(info, S_SETNS, unsafe {
                libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET)
            })?;
        }
        let flags = libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
        // SAFETY: unshare(2) with constant flags; no memory effects.
        ok_or(info, S_UNSHARE, unsafe { libc::unshare(flags) })?;
        // "See above" below refers to this: mount(2), mkdir(2), mknod(2), symlink(2),
        // pivot_root(2), umount2(2) and chdir(2) only read the NUL-terminated strings passed,
        // all owned by `self`, which outlives the calls; null pointers are allowed where given.
        // SAFETY: see above.
        ok_or(info, S_PRIVATE, unsafe {
            libc::mount(
                null,
                self.slash.as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        })?;
        // SAFETY: see above.
        ok_or(info, S_ROOT, unsafe {
            libc::mount(
                self.tmpfs.as_ptr(),
                self.root.as_ptr(),
                self.tmpfs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                self.root_data.as_ptr().cast(),
            )
        })?;
        for (i, step) in self.steps.iter().enumerate() {
            let n = S_TREE + i32::try_from(i).unwrap_or(0);
            match step {
                Step::Dir(p) => {
                    // SAFETY: see above.
                    let r = unsafe { libc::mkdir(p.as_ptr(), 0o755) };
                    ok_unless_exists(info, n, r)?;
                }
                Step::File(p) => {
                    // SAFETY: see above.
                    let r = unsafe { libc::mknod(p.as_ptr(), libc::S_IFREG | 0o644, 0) };
                    ok_unless_exists(info, n, r)?;
                }
                // SAFETY: see above.
                Step::Symlink { target, link } => ok_or(info, n, unsafe {
                    libc::symlink(target.as_ptr(), link.as_ptr())
                })?,
                Step::Bind { src, dst, writable } => {
                    // SAFETY: see above.
                    ok_or(info, n, unsafe {
                        libc::mount(
                            src.as_ptr(),
                            dst.as_ptr(),
                            null,
                            libc::MS_BIND,
                            std::ptr::null(),
                        )
                    })?;
                    let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID;
                    if !*writable {
                        flags |= libc::MS_RDONLY | libc::MS_NODEV;
                    }
                    // SAFETY: see above.
                    ok_or(info, n, unsafe {
                        libc::mount(null, dst.as_ptr(), null, flags, std::ptr::null())
                    })?;
                }
                // SAFETY: see above.
                Step::Tmpfs { dst, data } => ok_or(info, n, unsafe {
                    libc::mount(
                        self.tmpfs.as_ptr(),
                        dst.as_ptr(),
                        self.tmpfs.as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV,
                        data.as_ptr().cast(),
                    )
                })?,
                Step::Disk {
                    dev,
                    dst,
                    lost_found,
                } => {
                    // SAFETY: see above.
                    ok_or(info, n, unsafe {
                        libc::mount(
                            dev.as_ptr(),
                            dst.as_ptr(),
                            self.ext4.as_ptr(),
                            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOATIME,
                            std::ptr::null(),
                        )
                    })?;
                    // SAFETY: chmod(2) and rmdir(2) only read the strings passed (see above).
                    ok_or(info, n, unsafe { libc::chmod(dst.as_ptr(), 0o1777) })?;
                    // SAFETY: as above. A fresh ext4 has `lost+found`; /tmp starts empty.
                    unsafe {
                        libc::rmdir(lost_found.as_ptr());
                    }
                }
                // SAFETY: see above. The sandbox mounts the image again read-only (the
                // kernel answers with the superblock already mounted, see `image`).
                Step::Image { dev, dst } => ok_or(info, n, unsafe {
                    libc::mount(
                        dev.as_ptr(),
                        dst.as_ptr(),
                        self.ext4.as_ptr(),
                        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                        std::ptr::null(),
                    )
                })?,
                Step::Write { path, data } => write_file(info, n, path, data)?,
                // SAFETY: see above.
                Step::Proc(dst) => ok_or(info, n, unsafe {
                    libc::mount(
                        self.proc_.as_ptr(),
                        dst.as_ptr(),
                        self.proc_.as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        std::ptr::null(),
                    )
                })?,
            }
        }
        // SAFETY: see above. pivot_root(".", ".") stacks the old root on the new one; the
        // detach then leaves only the new tree.
        ok_or(info, S_PIVOT, unsafe { libc::chdir(self.root.as_ptr()) })?;
        // SAFETY: see above.
        ok_or(info, S_PIVOT, unsafe {
            libc::syscall(libc::SYS_pivot_root, self.dot.as_ptr(), self.dot.as_ptr()) as libc::c_int
        })?;
        // SAFETY: see above.
        ok_or(info, S_PIVOT, unsafe {
            libc::umount2(self.dot.as_ptr(), libc::MNT_DETACH)
        })?;
        // SAFETY: see above.
        ok_or(info, S_PIVOT, unsafe { libc::chdir(self.slash.as_ptr()) })?;
        // SAFETY: see above.
        ok_or(info, S_RDONLY, unsafe {
            libc::mount(
                null,
                self.slash.as_ptr(),
                null,
                libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                std::ptr::null(),
            )
        })?;
        // SAFETY: sethostname(2) reads `len` bytes of a buffer owned by `self`.
        ok_or(info, S_HOST, unsafe {
            libc::sethostname(self.hostname.as_ptr().cast(), self.hostname.len())
        })?;
        let limit = libc::rlimit {
            rlim_cur: self.open_files,
            rlim_max: self.open_files,
        };
        // SAFETY: setrlimit(2) reads `limit`, on this stack.
        ok_or(info, S_RLIMIT, unsafe {
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit)
        })?;
        // Every capability out of the bounding set (until the kernel says there are no more).
        for cap in 0..64 {
            // SAFETY: prctl(2) with integer arguments; no memory effects.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                    break;
                }
                return Err(fail(info, S_CAPS));
            }
        }
        // SAFETY: prctl(2) with integer arguments; no memory effects.
        ok_or(info, S_CAPS, unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        })?;
        // SAFETY: setgroups(2) with an empty list reads nothing.
        ok_or(info, S_USER, unsafe {
            libc::setgroups(0, std::ptr::null())
        })?;
        // SAFETY: integer arguments only. Changing every uid away from 0 clears the permitted
        // and effective capability sets.
        ok_or(info, S_USER, unsafe {
            libc::setresgid(self.gid, self.gid, self.gid)
        })?;
        // SAFETY: integer arguments only.
        ok_or(info, S_USER, unsafe {
            libc::setresuid(self.uid, self.uid, self.uid)
        })?;
        // SAFETY: prctl(2) with integer arguments. Set after the uid change, which clears it.
        ok_or(info, S_USER, unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0)
        })?;
        // SAFETY: see above (chdir).
        ok_or(info, S_CHDIR, unsafe { libc::chdir(self.workdir.as_ptr()) })?;
        // Only 0-2 reach the runtime: whatever the server holds without close-on-exec stops
        // here (std's exec-status pipe and the info pipe are close-on-exec already and keep
        // working until the exec).
        fds::cloexec_from(3, self.fd_limit);
        for f in self.seccomp.iter() {
            // Sets no_new_privs, then installs the filter; allocates nothing.
            seccompiler::apply_filter(f).map_err(|_| fail(info, S_SECCOMP))?;
        }
        Ok(())
    }
}

/// Launches the environment. Blocking (until the runtime `exec`s or fails): call it from a
/// blocking thread.
pub(crate) fn spawn(spec: LaunchSpec) -> Result<Launched, LaunchError> {
    let (mut info_r, info_w) = std::io::pipe()?;
    let cgroups = spec
        .cgroup_procs
        .iter()
        .map(|p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map(OwnedFd::from)
        })
        .collect::<io::Result<Vec<_>>>()?;
    // The /tmp disks, attached; their descriptors keep them so until the sandbox has mounted
    // them (when this function returns, the sandbox's mounts are their only users).
    let mut premade = spec.premade_disk;
    let disks = spec
        .mounts
        .iter()
        .filter_map(|m| match m {
            Mount::Disk { bytes, scratch, .. } => {
                Some(match premade.take_if(|d| d.bytes() == *bytes) {
                    Some(d) => Ok(d),
                    None => scratch.create(*bytes),
                })
            }
            _ => None,
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(LaunchError::Scratch)?;
    drop(premade);
    let child = Child0 {
        steps: plan(&spec.root, &spec.mounts, &disks)?,
        root: cstr(&spec.root)?,
        slash: cstr("/")?,
        dot: cstr(".")?,
        tmpfs: cstr("tmpfs")?,
        root_data: cstr("size=1m,mode=0755")?,
        proc_: cstr("proc")?,
        ext4: cstr("ext4")?,
        workdir: cstr(&spec.workdir)?,
        hostname: spec.hostname.into_bytes(),
        uid: spec.uid,
        gid: spec.gid,
        open_files: spec.open_files,
        fd_limit: fds::soft_nofile_limit(),
        netns: spec.netns,
        cgroups,
        seccomp: spec.seccomp,
        waiter: waiter::WaiterExec::new(&spec.waiter)?,
        info: info_w.as_raw_fd(),
    };
    let err = spec.output.try_clone()?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(spec.output))
        .stderr(Stdio::from(err));
    // SAFETY: the closure runs in the forked child before exec. It uses only async-signal-safe
    // system calls (setns, write, unshare, fork, close_range, close, execve, waitpid, _exit,
    // mount, mkdir, mknod, open, symlink, chmod, rmdir, pivot_root, umount2, chdir, sethostname,
    // setrlimit, prctl, setgroups, setres[ug]id, fcntl, seccomp) on memory allocated before
    // the fork, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || child.run());
    }
    let spawned = cmd.spawn();
    // Our copy of the write end must go for the read below to reach the end.
    drop(cmd);
    drop(info_w);
    drop(disks);
    let mut buf = Vec::new();
    let _ = info_r.read_to_end(&mut buf);
    let mut init_pid = 0;
    let mut failure = None;
    for m in buf.chunks_exact(12) {
        let word = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&m[i * 4..i * 4 + 4]);
            i32::from_ne_bytes(b)
        };
        match word(0) {
            MSG_PID => init_pid = word(1),
            MSG_FAIL => failure = Some((word(1), word(2))),
            _ => {}
        }
    }
    match (spawned, failure) {
        (Ok(mut waiter), Some((step, errno))) => {
            kill(init_pid);
            let _ = waiter.kill();
            let _ = waiter.wait();
            Err(LaunchError::Setup {
                step,
                source: io::Error::from_raw_os_error(errno),
            })
        }
        (Err(e), Some((step, _))) => {
            kill(init_pid);
            Err(LaunchError::Setup { step, source: e })
        }
        (Err(e), None) => {
            // The exec itself failed (the grandchild's error came through std's pipe).
            kill(init_pid);
            Err(LaunchError::Exec(e))
        }
        (Ok(waiter), None) => Ok(Launched { waiter, init_pid }),
    }
}
