//! The cgroup reaper: a sandbox's groups that cannot be removed at once (the kernel still
//! finishes its processes' exits and answers `EBUSY`) are retried in the background, with
//! backoff, until they go.
//!
//! A background thread runs while something is pending and ends when nothing is; each attempt
//! thaws the group, lifts its CPU quota, kills what is left in it and removes it (see
//! [`super::cgroup_files::try_remove`]). At shutdown, [`Reaper::finish`] makes a bounded last pass.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::cgroup_files::try_remove;

/// The first retry comes quickly (exits usually finish within milliseconds)...
const FIRST_RETRY: Duration = Duration::from_millis(5);
/// ...and the backoff stops growing here.
const MAX_RETRY: Duration = Duration::from_secs(2);
/// A group still there after this long is worth a warning (once).
const WARN_AFTER: Duration = Duration::from_secs(30);

/// One sandbox's groups that are still there.
#[derive(Debug)]
struct Pending {
    dirs: Vec<PathBuf>,
    next: Instant,
    delay: Duration,
    since: Instant,
    warned: bool,
}

impl Pending {
    /// One attempt on each group; whether all are gone.
    fn attempt(&mut self) -> bool {
        self.dirs.retain(|d| !try_remove(d));
        self.dirs.is_empty()
    }

    fn back_off(&mut self, now: Instant) {
        self.delay = (self.delay * 2).min(MAX_RETRY);
        self.next = now + self.delay;
        if !self.warned && now.duration_since(self.since) > WARN_AFTER {
            self.warned = true;
            tracing::warn!(groups = ?self.dirs, "a sandbox's cgroups are still not removable; retrying");
        }
    }
}

#[derive(Debug, Default)]
struct State {
    pending: Vec<Pending>,
    /// Whether the background thread is running.
    running: bool,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    wake: Condvar,
}

/// Removes cgroups in the background until they go (shared by a hierarchy and its groups).
#[derive(Debug, Clone, Default)]
pub(crate) struct Reaper {
    inner: Arc<Inner>,
}

impl Reaper {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues groups that could not be removed yet.
    pub fn add(&self, dirs: Vec<PathBuf>) {
        if dirs.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut st = self.lock();
        st.pending.push(Pending {
            dirs,
            next: now + FIRST_RETRY,
            delay: FIRST_RETRY,
            since: now,
            warned: false,
        });
        if st.running {
            self.inner.wake.notify_all();
            return;
        }
        let inner = Arc::clone(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("stoke-cgroup-reaper".into())
            .spawn(move || run(&inner));
        match spawned {
            Ok(_) => st.running = true,
            // Left queued: the next add, or `finish` at shutdown, tries again.
            Err(e) => tracing::error!(error = %e, "no thread could be started to remove cgroups"),
        }
    }

    /// How many sandboxes' groups are still queued.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// A last pass (at shutdown): retries every few milliseconds until nothing is pending or
    /// `within` has passed; whether everything went.
    pub fn finish(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        loop {
            let mut batch = std::mem::take(&mut self.lock().pending);
            batch.retain_mut(|p| !p.attempt());
            let mut st = self.lock();
            st.pending.append(&mut batch);
            if st.pending.is_empty() {
                return true;
            }
            if Instant::now() >= until {
                for p in &st.pending {
                    tracing::warn!(groups = ?p.dirs, "cgroups left behind at shutdown");
                }
                return false;
            }
            drop(st);
            std::thread::sleep(FIRST_RETRY);
        }
    }
}

/// The background thread: attempts what is due, sleeps until the next is, ends when nothing
/// is left.
fn run(inner: &Inner) {
    let lock = || inner.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let mut st = lock();
        if st.pending.is_empty() {
            st.running = false;
            return;
        }
        let now = Instant::now();
        let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut st.pending)
            .into_iter()
            .partition(|p| p.next <= now);
        st.pending = later;
        if due.is_empty() {
            let wait = st
                .pending
                .iter()
                .map(|p| p.next.saturating_duration_since(now))
                .min()
                .unwrap_or(MAX_RETRY);
            let _ = inner.wake.wait_timeout(st, wait);
            continue;
        }
        drop(st);
        due.retain_mut(|p| !p.attempt());
        let now = Instant::now();
        for p in &mut due {
            p.back_off(now);
        }
        lock().pending.append(&mut due);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn gone_folders_are_done_at_once_and_the_thread_ends() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let r = Reaper::default();
        r.add(vec![a.clone(), dir.path().join("never-there")]);
        assert!(r.finish(Duration::from_secs(2)));
        assert!(!a.exists());
        assert_eq!(r.pending(), 0);
        // The thread notices the empty queue and ends.
        let until = Instant::now() + Duration::from_secs(2);
        while r.lock().running && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!r.lock().running);
    }

    #[test]
    fn a_folder_that_cannot_go_yet_is_retried_until_it_can() {
        let dir = tempfile::tempdir().unwrap();
        let busy = dir.path().join("busy");
        std::fs::create_dir(&busy).unwrap();
        // rmdir refuses a folder that is not empty: the stand-in for a cgroup's EBUSY.
        std::fs::write(busy.join("f"), "x").unwrap();
        let r = Reaper::default();
        r.add(vec![busy.clone()]);
        std::thread::sleep(Duration::from_millis(50));
        assert!(busy.exists());
        std::fs::remove_file(busy.join("f")).unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while busy.exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!busy.exists(), "the reaper removed it once it could");
        assert!(r.finish(Duration::from_secs(1)));
    }
}
