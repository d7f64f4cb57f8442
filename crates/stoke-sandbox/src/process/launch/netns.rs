//! The Runtime API's socket inside a sandbox's own network namespace: a short-lived thread
//! `unshare`s a new network namespace, brings `lo` up, binds `127.0.0.1:9001` and keeps a
//! handle on the namespace. The listening socket belongs to that namespace for good: nothing
//! outside it can connect. The sandbox's PID 1 joins the namespace through the handle.

use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};

use super::check;

/// Where the Runtime API listens inside an isolated sandbox.
pub(crate) const RUNTIME_API_PORT: u16 = 9001;

/// Brings the loopback interface of the calling thread's network namespace up.
fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd)?;
    // SAFETY: `fd` is a descriptor we just opened and own.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: `ifreq` is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of `req`, which lives here.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the kernel has just written the `ifru_flags` member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads `req`, which lives here.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// The Runtime API's listening socket and, when isolated, the network namespace it lives in
/// (only `lo`, up). Without isolation the socket is on the host's loopback, at a free port.
pub(crate) fn runtime_socket(isolated: bool) -> io::Result<(Option<OwnedFd>, TcpListener)> {
    if !isolated {
        return Ok((None, TcpListener::bind(("127.0.0.1", 0))?));
    }
    // A thread of its own: `unshare(CLONE_NEWNET)` moves only the calling thread, which then
    // ends; the namespace lives on through the socket and the handle.
    std::thread::Builder::new()
        .name("stoke-netns".into())
        .spawn(|| {
            // SAFETY: unshare(2) changes only this thread's namespaces; no memory effects.
            check(unsafe { libc::unshare(libc::CLONE_NEWNET) })?;
            loopback_up()?;
            let listener = TcpListener::bind(("127.0.0.1", RUNTIME_API_PORT))?;
            let ns = File::open("/proc/thread-self/ns/net")?;
            Ok((Some(OwnedFd::from(ns)), listener))
        })?
        .join()
        .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}
