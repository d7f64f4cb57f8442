//! Control groups of process sandboxes: memory (no swap), pids, CPU in proportion to memory,
//! and the freezer that makes a teardown quick.
//!
//! cgroup v1 (what this machine has: one hierarchy per controller under `/sys/fs/cgroup/<c>`)
//! and v2 (a unified hierarchy, when `/sys/fs/cgroup/cgroup.controllers` exists). Each server
//! gets `stoke/s<pid>` in each hierarchy and each sandbox `stoke/s<pid>/<id>` below it; a
//! sandbox's groups are removed when it ends, the server's when it stops, and at start-up the
//! groups of servers that are gone are emptied and removed.
//!
//! # Killing a sandbox ([`Cgroup::kill_all`])
//! Freeze the group (v1 `freezer.state`, v2 `cgroup.freeze`) so that nothing forks while it is
//! being killed, lift its CPU quota (a throttled group takes minutes to exit: a fork bomb's
//! hundreds of killed processes share the quota), send `SIGKILL` to every process in it (v2:
//! `cgroup.kill`), then thaw it so that they die. A group that cannot be removed yet (`EBUSY`
//! while the kernel finishes the exits) goes to the [`Reaper`], which retries with backoff
//! until it can. Both use the control-file helpers of `cgroup_files`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::cgroup_files::{kill_procs, procs, try_remove, unleash, write_existing};
use super::reaper::Reaper;

const ROOT: &str = "/sys/fs/cgroup";
/// Lambda's limit on processes and threads of one environment.
pub(crate) const PIDS_MAX: u32 = 1024;
/// Lambda gives one vCPU at 1769 MB.
const MB_PER_VCPU: u64 = 1769;
const CPU_PERIOD_US: u64 = 100_000;
/// How long shutdown keeps retrying groups that are still being reaped.
const SHUTDOWN_REAP: Duration = Duration::from_secs(3);

/// Which cgroup layout the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// The cgroups of one server: the parents of its sandboxes' groups.
#[derive(Debug, Clone)]
pub(crate) struct Hierarchy {
    pub version: Version,
    /// `memory`, `pids`, `cpu` and (when mounted) `freezer` parents (v1) or the one parent
    /// (v2).
    parents: Vec<(Controller, PathBuf)>,
    /// Removes the groups that could not go at once.
    reaper: Reaper,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Controller {
    Memory,
    Pids,
    Cpu,
    Freezer,
    Unified,
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Removes a group, killing what is left in it; retries while the kernel finishes exits.
fn remove_dir(dir: &Path, wait: Duration) -> bool {
    let until = Instant::now() + wait;
    loop {
        if try_remove(dir) {
            return true;
        }
        if Instant::now() >= until {
            tracing::warn!(group = %dir.display(), "a cgroup could not be removed");
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

impl Hierarchy {
    /// Finds the layout, creates this server's parents and removes what dead servers left.
    pub fn open() -> io::Result<Self> {
        let me = format!("s{}", std::process::id());
        let v2 = Path::new(ROOT).join("cgroup.controllers").exists();
        let parents = if v2 {
            let stoke = Path::new(ROOT).join("stoke");
            fs::create_dir_all(&stoke)?;
            // Controllers must be enabled at each level for the groups below.
            let _ = write(
                &Path::new(ROOT).join("cgroup.subtree_control"),
                "+memory +pids +cpu",
            );
            write(&stoke.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
            vec![(Controller::Unified, stoke)]
        } else {
            let mut p = Vec::new();
            for (c, name) in [
                (Controller::Memory, "memory"),
                (Controller::Pids, "pids"),
                (Controller::Cpu, "cpu"),
            ] {
                let dir = Path::new(ROOT).join(name);
                if !dir.join("cgroup.procs").exists() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "the cgroup v1 {name} controller is not mounted at {}",
                            dir.display()
                        ),
                    ));
                }
                p.push((c, dir.join("stoke")));
            }
            // The freezer makes teardowns quick; without it a kill still works, only slower.
            let freezer = Path::new(ROOT).join("freezer");
            if freezer.join("cgroup.procs").exists() {
                p.push((Controller::Freezer, freezer.join("stoke")));
            } else {
                tracing::warn!("the cgroup v1 freezer is not mounted: teardowns cannot freeze");
            }
            p
        };
        for (_, stoke) in &parents {
            fs::create_dir_all(stoke)?;
            // Groups of servers that are gone (killed before they could clean up).
            if let Ok(entries) = fs::read_dir(stoke) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let alive = name
                        .strip_prefix('s')
                        .and_then(|p| p.parse::<u32>().ok())
                        .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
                    if name.starts_with('s') && !alive && name != me {
                        remove_tree(&e.path());
                    }
                }
            }
        }
        let parents: Vec<_> = parents
            .into_iter()
            .map(|(c, stoke)| (c, stoke.join(&me)))
            .collect();
        for (_, p) in &parents {
            fs::create_dir_all(p)?;
            if v2 {
                write(&p.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
            }
        }
        Ok(Self {
            version: if v2 { Version::V2 } else { Version::V1 },
            parents,
            reaper: Reaper::default(),
        })
    }

    /// This server's group folders (one per hierarchy).
    pub fn server_dirs(&self) -> Vec<PathBuf> {
        self.parents.iter().map(|(_, p)| p.clone()).collect()
    }

    /// Creates a sandbox's groups with its limits.
    pub fn create(&self, id: &str, memory_mb: u32) -> io::Result<Cgroup> {
        let mut dirs = Vec::new();
        let cg = |dirs: &Vec<(Controller, PathBuf)>| Cgroup {
            version: self.version,
            dirs: dirs.clone(),
            memory_mb,
            reaper: self.reaper.clone(),
            released: AtomicBool::new(false),
            peak_file: None,
        };
        for (c, parent) in &self.parents {
            let dir = parent.join(id);
            if let Err(e) = fs::create_dir(&dir) {
                cg(&dirs).release();
                return Err(e);
            }
            dirs.push((*c, dir));
        }
        let mut group = cg(&dirs);
        if let Err(e) = group.limit() {
            group.release();
            return Err(e);
        }
        group.peak_file = group.open_peak_file();
        Ok(group)
    }

    /// Removes this server's groups (after its sandboxes have ended): a bounded last pass over
    /// the groups still being reaped, then the server's own.
    pub fn remove(&self) {
        self.reaper.finish(SHUTDOWN_REAP);
        for (_, p) in &self.parents {
            remove_tree(p);
        }
    }
}

/// Removes a group and the groups below it.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    remove_dir(dir, Duration::from_millis(500));
}

/// The groups of one sandbox.
#[derive(Debug)]
pub(crate) struct Cgroup {
    version: Version,
    dirs: Vec<(Controller, PathBuf)>,
    memory_mb: u32,
    reaper: Reaper,
    /// The groups have been removed or handed to the reaper.
    released: AtomicBool,
    /// The peak-memory file (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`), open for the
    /// group's life: each call resets and reads it without opening it again (and on v2 a
    /// reset counts only for the descriptor it was written to).
    peak_file: Option<fs::File>,
}

impl Cgroup {
    fn dir(&self, c: Controller) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(k, _)| *k == c || *k == Controller::Unified)
            .map(|(_, p)| p.as_path())
    }

    fn limit(&self) -> io::Result<()> {
        let bytes = u64::from(self.memory_mb) * 1024 * 1024;
        let shares = (1024 * u64::from(self.memory_mb) / MB_PER_VCPU).max(2);
        match self.version {
            Version::V1 => {
                if let Some(m) = self.dir(Controller::Memory) {
                    write(&m.join("memory.limit_in_bytes"), &bytes.to_string())?;
                    let memsw = m.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write(&memsw, &bytes.to_string())?;
                    }
                    let _ = write(&m.join("memory.swappiness"), "0");
                }
                if let Some(p) = self.dir(Controller::Pids) {
                    write(&p.join("pids.max"), &PIDS_MAX.to_string())?;
                }
                if let Some(c) = self.dir(Controller::Cpu) {
                    write(&c.join("cpu.shares"), &shares.to_string())?;
                }
            }
            Version::V2 => {
                if let Some(d) = self.dir(Controller::Unified) {
                    write(&d.join("memory.max"), &bytes.to_string())?;
                    let swap = d.join("memory.swap.max");
                    if swap.exists() {
                        write(&swap, "0")?;
                    }
                    write(&d.join("pids.max"), &PIDS_MAX.to_string())?;
                    let weight = (100 * u64::from(self.memory_mb) / MB_PER_VCPU).clamp(1, 10_000);
                    write(&d.join("cpu.weight"), &weight.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Caps CPU time in proportion to memory (after Init, which runs unthrottled as Lambda's
    /// init boost does).
    pub fn cap_cpu(&self) {
        let quota = (CPU_PERIOD_US * u64::from(self.memory_mb) / MB_PER_VCPU).max(1000);
        let r = match self.version {
            Version::V1 => self.dir(Controller::Cpu).map(|c| {
                write(&c.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())
                    .and_then(|()| write(&c.join("cpu.cfs_quota_us"), &quota.to_string()))
            }),
            Version::V2 => self
                .dir(Controller::Unified)
                .map(|d| write(&d.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))),
        };
        if let Some(Err(e)) = r {
            tracing::warn!(error = %e, "the CPU quota could not be set");
        }
    }

    /// The files a process writes `0` into to join the groups.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect()
    }

    fn open_peak_file(&self) -> Option<fs::File> {
        let path = match self.version {
            Version::V1 => self
                .dir(Controller::Memory)?
                .join("memory.max_usage_in_bytes"),
            Version::V2 => self.dir(Controller::Unified)?.join("memory.peak"),
        };
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .ok()
    }

    /// Starts a new peak-memory measurement.
    pub fn reset_peak(&self) {
        use std::os::unix::fs::FileExt as _;
        if let Some(f) = &self.peak_file {
            let _ = f.write_at(b"0", 0);
        }
    }

    /// The peak memory since the last reset, in bytes.
    pub fn peak(&self) -> u64 {
        use std::os::unix::fs::FileExt as _;
        let Some(f) = &self.peak_file else {
            return 0;
        };
        let mut buf = [0u8; 32];
        let n = f.read_at(&mut buf, 0).unwrap_or(0);
        std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// How many times the kernel's OOM killer has killed a process of the group.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = match self.version {
            Version::V1 => ("memory.oom_control", "oom_kill "),
            Version::V2 => ("memory.events", "oom_kill "),
        };
        let Some(dir) = self.dir(Controller::Memory) else {
            return 0;
        };
        let text = fs::read_to_string(dir.join(file)).unwrap_or_default();
        let kills = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        if kills > 0 || self.version == Version::V2 {
            return kills;
        }
        // Kernels without the counter: the limit was hit.
        read_u64(&dir.join("memory.failcnt")).map_or(0, |f| u64::from(f > 0))
    }

    /// Kills every process in the groups and `also` (pids outside them, or that must die
    /// first): freezes the groups, lifts the CPU quota, kills (v2: `cgroup.kill`), thaws.
    /// Quick (a few writes and one `kill` per process); the exits finish afterwards.
    pub fn kill_all(&self, also: &[i32]) {
        let frozen = self.freeze();
        for pid in also {
            crate::process::launch::kill(*pid);
        }
        let killed = self.version == Version::V2
            && self
                .dir(Controller::Unified)
                .is_some_and(|d| write_existing(&d.join("cgroup.kill"), "1").is_ok());
        if !killed {
            // The same processes are in every hierarchy: one list is enough, but a group
            // whose list cannot be read must not stop the kill.
            for (_, d) in &self.dirs {
                let pids = procs(d);
                if !pids.is_empty() {
                    for pid in pids {
                        crate::process::launch::kill(pid);
                    }
                    break;
                }
            }
        }
        if !frozen {
            tracing::debug!("a sandbox's cgroup could not be frozen before the kill");
        }
        for (_, d) in &self.dirs {
            unleash(d);
        }
    }

    /// Freezes the groups: nothing in them runs (or forks) until they are thawed.
    fn freeze(&self) -> bool {
        match self.version {
            Version::V1 => self
                .dir(Controller::Freezer)
                .is_some_and(|f| write_existing(&f.join("freezer.state"), "FROZEN").is_ok()),
            Version::V2 => self
                .dir(Controller::Unified)
                .is_some_and(|d| write_existing(&d.join("cgroup.freeze"), "1").is_ok()),
        }
    }

    /// Whether no process is left in the groups.
    pub fn is_empty(&self) -> bool {
        self.dirs
            .iter()
            .all(|(_, d)| !d.exists() || procs(d).is_empty())
    }

    /// Kills what is still in the groups (a process forked while they were being frozen).
    pub fn kill_stragglers(&self) {
        if let Some((_, d)) = self.dirs.iter().find(|(_, d)| !procs(d).is_empty()) {
            kill_procs(d);
        }
    }

    /// Whether the groups have been removed or handed to the reaper.
    pub fn released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }

    /// One attempt at removing every group; whether all are gone (then they are released).
    pub fn try_release(&self) -> bool {
        if self.released() {
            return true;
        }
        let mut all = true;
        for (_, d) in &self.dirs {
            all &= try_remove(d);
        }
        if all {
            self.released.store(true, Ordering::SeqCst);
        }
        all
    }

    /// Removes the groups now if they can go (one attempt each) and hands the rest to the
    /// reaper; once. Call after the processes have been killed.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::SeqCst) {
            return;
        }
        let left: Vec<PathBuf> = self
            .dirs
            .iter()
            .map(|(_, d)| d.clone())
            .filter(|d| !try_remove(d))
            .collect();
        self.reaper.add(left);
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.released.load(Ordering::SeqCst) {
            self.kill_all(&[]);
            self.release();
        }
    }
}
