//! The control files of a cgroup that both a sandbox's groups (`cgroup`) and the reaper
//! (`reaper`) write: a group's processes, killing them, letting a frozen or throttled group
//! run to its end, and one attempt at removing a group.

use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

/// Writes a control file that must already exist (never creates one).
pub(super) fn write_existing(path: &Path, value: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

/// The pids in a group's `cgroup.procs`.
pub(super) fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

pub(super) fn kill_procs(dir: &Path) {
    for pid in procs(dir) {
        crate::process::launch::kill(pid);
    }
}

/// Lets whatever is in a group run to its end: thawed, no CPU quota (each only where the
/// group has the file: v1 `freezer.state`, `cpu.cfs_quota_us`; v2 `cgroup.freeze`, `cpu.max`).
pub(super) fn unleash(dir: &Path) {
    let _ = write_existing(&dir.join("cpu.cfs_quota_us"), "-1");
    let _ = write_existing(&dir.join("cpu.max"), "max");
    let _ = write_existing(&dir.join("freezer.state"), "THAWED");
    let _ = write_existing(&dir.join("cgroup.freeze"), "0");
}

/// One attempt at removing a group: thaws it, lifts its quota, kills what is left in it and
/// removes it; whether it is gone.
pub(super) fn try_remove(dir: &Path) -> bool {
    if !dir.exists() {
        return true;
    }
    unleash(dir);
    kill_procs(dir);
    match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}
