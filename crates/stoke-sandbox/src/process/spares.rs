//! Pre-launched pieces of execution environments, made ahead of the cold starts that use them.
//!
//! Two parts of a sandbox are slow to make and do not depend on the function at all: its
//! network namespace with the Runtime API's listening socket in it (an `unshare` on a thread
//! of its own, `lo` brought up: ~2 ms, bimodal up to 4 ms) and its `/tmp` disk (a sparse image,
//! `mkfs.ext4`, a loop device: 10–40 ms, most of a cold start). A background thread keeps a few
//! of each ready ([`ProcessConfig::spare_environments`](super::ProcessConfig)); a cold start
//! takes one and the thread makes the next. Each is isolated and empty until it is taken: a
//! namespace with only `lo` and a socket nobody has connected to; a fresh file system that no
//! process has mounted, its image already unlinked. A disk is kept for the default size
//! (`EphemeralStorage` 512 MB); a function with more gets its own made at its cold start, as
//! does every sandbox when no spare is ready (a burst of cold starts, or spares turned off).
//!
//! What is left at claim time is what depends on the function: its cgroups (limits by its
//! memory), the fork, the mount namespace with its code bound in at `/var/task`, and the
//! runtime's `exec`. A spare holds nothing a crash would leave behind: its descriptors close
//! with the server, and the kernel then frees the namespace and detaches the device
//! (autoclear).

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::launch;
use super::launch::scratch::{Disk, Scratch};

/// The `/tmp` size spare disks are made for (the default and smallest `EphemeralStorage`).
pub(super) const SPARE_DISK_BYTES: u64 = launch::scratch::DEFAULT_DISK_BYTES;
/// How long the filler waits after a failure before it tries again.
const RETRY: Duration = Duration::from_secs(1);

/// A Runtime API socket and, when isolated, the network namespace it lives in.
pub(super) type Net = (Option<OwnedFd>, TcpListener);

#[derive(Default)]
struct State {
    nets: Vec<Net>,
    disks: Vec<Disk>,
    stopped: bool,
}

struct Inner {
    state: Mutex<State>,
    wake: Condvar,
    /// How many of each to keep ready.
    target: usize,
    /// Whether sandboxes get a network namespace of their own (else a socket is quick to make
    /// and none is kept).
    isolated: bool,
    scratch: Option<Arc<Scratch>>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wants_net(&self, st: &State) -> bool {
        self.isolated && st.nets.len() < self.target
    }

    fn wants_disk(&self, st: &State) -> bool {
        self.scratch.is_some() && st.disks.len() < self.target
    }
}

/// The spare pieces of one backend and the thread that makes them.
pub(super) struct Spares {
    inner: Arc<Inner>,
}

impl Spares {
    /// Keeps `target` of each ready (none: `target` is 0).
    pub(super) fn start(target: usize, isolated: bool, scratch: Option<Arc<Scratch>>) -> Self {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            target,
            isolated,
            scratch,
        });
        if target > 0 {
            let filler = Arc::clone(&inner);
            let spawned = std::thread::Builder::new()
                .name("stoke-sandbox-spares".into())
                .spawn(move || fill(&filler));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no thread for spare environments: every cold start makes its own");
            }
        }
        Self { inner }
    }

    /// A ready network namespace and Runtime API socket, if there is one.
    pub(super) fn take_net(&self) -> Option<Net> {
        let net = self.inner.lock().nets.pop();
        if net.is_some() {
            self.inner.wake.notify_all();
        }
        net
    }

    /// A ready `/tmp` disk of `bytes`, if there is one.
    pub(super) fn take_disk(&self, bytes: u64) -> Option<Disk> {
        if bytes != SPARE_DISK_BYTES {
            return None;
        }
        let disk = self.inner.lock().disks.pop();
        if disk.is_some() {
            self.inner.wake.notify_all();
        }
        disk
    }

    /// Drops what is ready and stops making more.
    pub(super) fn stop(&self) {
        let left = {
            let mut st = self.inner.lock();
            st.stopped = true;
            (std::mem::take(&mut st.nets), std::mem::take(&mut st.disks))
        };
        self.inner.wake.notify_all();
        drop(left);
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The filler: makes what is missing, one piece at a time, and sleeps while nothing is.
fn fill(inner: &Inner) {
    loop {
        let (net, disk) = {
            let mut st = inner.lock();
            loop {
                if st.stopped {
                    return;
                }
                let (n, d) = (inner.wants_net(&st), inner.wants_disk(&st));
                if n || d {
                    break (n, d);
                }
                st = inner.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let mut failed = false;
        if net {
            match launch::runtime_socket(true) {
                Ok(n) => inner.lock().nets.push(n),
                Err(e) => {
                    tracing::warn!(error = %e, "a spare network namespace could not be made");
                    failed = true;
                }
            }
        }
        if disk && let Some(scratch) = &inner.scratch {
            match scratch.create(SPARE_DISK_BYTES) {
                Ok(d) => inner.lock().disks.push(d),
                Err(e) => {
                    tracing::warn!(error = %e, "a spare /tmp disk could not be made");
                    failed = true;
                }
            }
        }
        if failed {
            let st = inner.lock();
            if st.stopped {
                return;
            }
            let _ = inner.wake.wait_timeout(st, RETRY);
        }
        // A piece made while `stop` ran is dropped here.
        let mut st = inner.lock();
        if st.stopped {
            let left = (std::mem::take(&mut st.nets), std::mem::take(&mut st.disks));
            drop(st);
            drop(left);
            return;
        }
    }
}
