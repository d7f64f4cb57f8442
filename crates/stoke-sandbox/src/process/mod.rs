//! The process backend: Linux process trees that speak the Lambda Runtime API (`provided*`,
//! `python3.x`, `nodejs*`), isolated with namespaces, cgroups and seccomp.
//!
//! # Layout
//! - this file: the backend's settings ([`ProcessConfig`], [`Network`]).
//! - `backend`: [`ProcessBackend`]: start-up checks, deploy-time checks, cold starts (the
//!   mounts and environment of a sandbox, its launch and its Init).
//! - `sandbox`: one long-lived execution environment serving call after call: its calls,
//!   timeouts, crashes, out-of-memory kills, and its teardown; `failure`: how an Init or a
//!   runtime failed, in Lambda's words; `logs`: the per-call log.
//! - `api`: the Runtime API server and its state machine; `api_bounds`: what a sandbox can
//!   make it hold (capped and budgeted bodies); `api_conn`: its connections and their timeouts.
//! - `launch`: namespaces, the new root, privileges, seccomp, `exec` (all the `unsafe`).
//! - `cgroup`: memory, pids and CPU limits (cgroup v1 and v2), peak memory, OOM kills, the
//!   freeze-kill-thaw teardown; `reaper`: groups that could not be removed at once, retried;
//!   `cgroup_files`: the control files both of them write.
//! - `seccomp`: the system-call filter.
//! - `spares`: network namespaces and `/tmp` disks made ahead of the cold starts that use them.
//! - `e2fs`: running `mkfs.ext4` and `debugfs` (the `/tmp` disks and the images).
//! - `images`: the read-only ext4 images of `/var/lang`, `/var/runtime` and `/var/task` (made
//!   at deploy time, cached, attached), so that no host path shows inside a sandbox.
//! - [`runtimes`]: what runs for each runtime, Stoke's runtime files and the runtime
//!   libraries under `/var/runtime`, the sandbox user's `/etc/passwd`;
//!   [`interpreters`]: which interpreter serves each runtime, its version, its `/var/lang`.
//!
//! # On disk
//! Under the backend's folder (`<data dir>/process/`): `runtime/` (Stoke's runtime files,
//! `python/` and `node/`, the base of `/var/runtime` of each runtime), `images/` (the
//! read-only images of `/var/lang`, `/var/runtime` and `/var/task`, see [`images`]), `empty/`
//! (covers an interpreter's own `site-packages` in the binds of the fallback), `root/` (an
//! empty folder over which each sandbox mounts its own root in its own mount namespace) and
//! `tmp/` (each sandbox's `/tmp` image, for the moment between its creation and its
//! attachment to a loop device; swept at start-up).
//! cgroups: `/sys/fs/cgroup/<controller>/stoke/s<server pid>/<sandbox id>` (v1) or
//! `/sys/fs/cgroup/stoke/s<pid>/<id>` (v2).

mod api;
mod api_bounds;
mod api_conn;
mod backend;
mod cgroup;
mod cgroup_files;
mod e2fs;
mod failure;
mod images;
pub mod interpreters;
mod launch;
mod logs;
mod reaper;
mod runtimes;
mod sandbox;
mod seccomp;
mod spares;

pub use api_bounds::RuntimeApiLimits;
pub use backend::ProcessBackend;
pub use interpreters::{Interpreter, Interpreters};
// The waiter helper's entry and the descriptor hygiene of `main` (see `launch`).
pub use launch::{WAITER_ARG, mark_inherited_cloexec, waiter_main};

use std::path::PathBuf;
use std::time::Duration;

/// The network a sandbox gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// A network namespace of its own with only `lo` (the default).
    Isolated,
    /// The host's network: outbound access, but the Runtime API is on the host's loopback.
    Host,
}

/// Settings of the process backend.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// Where the backend keeps its files (`runtime/`, `root/`).
    pub dir: PathBuf,
    /// The Pythons for `python3.x` (resolved at start-up): each a command for any runtime
    /// or `python3.N=COMMAND` for one (see [`interpreters`]).
    pub python: Vec<String>,
    /// The Node.js interpreters for `nodejs*`, likewise (`nodejsN.x=COMMAND`).
    pub node: Vec<String>,
    /// Refuse (`Failed`) a runtime that only an interpreter of another version could serve,
    /// instead of serving it with the nearest version.
    pub strict_runtimes: bool,
    /// The runtime libraries (`python/`: boto3 and botocore installed by `pip install
    /// --target`; `node/node_modules/`), mounted under `/var/runtime`; `None` or a missing
    /// folder: none.
    pub runtime_libs: Option<PathBuf>,
    pub network: Network,
    /// The most a call may log.
    pub max_log_bytes: usize,
    /// The largest response (Lambda's 6 MB).
    pub max_response_bytes: usize,
    /// What one sandbox's Runtime API takes: connections, timeouts, bodies.
    pub runtime_api: RuntimeApiLimits,
    /// How long Init may take (Lambda: 10 s).
    pub init_timeout: Duration,
    /// The unprivileged user and group functions run as.
    pub uid: u32,
    pub gid: u32,
    /// The program each sandbox's waiter `exec`s with the hidden first argument
    /// [`WAITER_ARG`]; its `main` must start with [`waiter_main`]. Default: this program.
    pub waiter: PathBuf,
    /// How many network namespaces (with their Runtime API sockets) and `/tmp` disks of the
    /// default size are kept made ahead of cold starts (see `spares`); 0: each cold start
    /// makes its own.
    pub spare_environments: usize,
    /// `/var/lang`, `/var/runtime` and `/var/task` as read-only images of their own (see
    /// `images`), so that no host path shows inside a sandbox; `false`: read-only binds of
    /// the host's paths (also what happens when images cannot be made here).
    pub images: bool,
    /// Where the images of `/var/lang` and `/var/runtime` are kept, if not under `dir`: a
    /// folder the servers of one machine may share (see `images`).
    pub runtime_images: Option<PathBuf>,
}

impl ProcessConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            python: vec!["python3".into()],
            node: vec!["node".into()],
            strict_runtimes: false,
            runtime_libs: None,
            network: Network::Isolated,
            max_log_bytes: 1024 * 1024,
            max_response_bytes: 6 * 1024 * 1024,
            runtime_api: RuntimeApiLimits::default(),
            init_timeout: Duration::from_secs(10),
            uid: 993,
            gid: 990,
            waiter: "/proc/self/exe".into(),
            spare_environments: 2,
            images: true,
            runtime_images: None,
        }
    }
}
