//! The process backend: Linux process trees that speak the Lambda Runtime API (`provided*`,
//! `python3.x`, `nodejs*`), isolated with namespaces, cgroups and seccomp.
//!
//! # Layout
//! - this file: [`ProcessBackend`] (start-up checks, deploy-time checks, cold starts) and the
//!   sandbox: one long-lived execution environment serving call after call, its Init, its
//!   per-call logs, timeouts, crashes, out-of-memory kills, and its teardown.
//! - `api`: the Runtime API server and its state machine; `api_bounds`: what a sandbox can
//!   make it hold (connections, timeouts, capped and budgeted bodies).
//! - `launch`: namespaces, the new root, privileges, seccomp, `exec` (all the `unsafe`).
//! - `cgroup`: memory, pids and CPU limits (cgroup v1 and v2), peak memory, OOM kills, the
//!   freeze-kill-thaw teardown; `reaper`: groups that could not be removed at once, retried.
//! - `seccomp`: the system-call filter.
//! - [`runtimes`]: what runs for each runtime, the interpreters, Stoke's runtime files.
//!
//! # On disk
//! Under the backend's folder (`<data dir>/process/`): `runtime/` (Stoke's runtime files,
//! mounted at `/var/runtime`), `root/` (an empty folder over which each sandbox mounts its
//! own root in its own mount namespace) and `tmp/` (each sandbox's `/tmp` image, for the
//! moment between its creation and its attachment to a loop device; swept at start-up). cgroups: `/sys/fs/cgroup/<controller>/stoke/s<server
//! pid>/<sandbox id>` (v1) or `/sys/fs/cgroup/stoke/s<pid>/<id>` (v2).

mod api;
mod api_bounds;
mod cgroup;
mod launch;
mod reaper;
mod runtimes;
mod seccomp;

pub use api_bounds::RuntimeApiLimits;
pub use runtimes::{Interpreter, Interpreters};
// The waiter helper's entry and the descriptor hygiene of `main` (see `launch`).
pub use launch::{WAITER_ARG, mark_inherited_cloexec, waiter_main};

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use seccompiler::BpfProgram;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    Backend, Execution, FunctionError, FunctionSpec, InvokeInput, Outcome, PrepareError, Sandbox,
    SandboxError,
};
use api::{Event, InitState, Reply, RuntimeApi};
use launch::{LaunchError, LaunchSpec, Mount};

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
    /// The Python command for `python3.x` (resolved at start-up).
    pub python: String,
    /// The Node.js command for `nodejs*`.
    pub node: String,
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
}

impl ProcessConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            python: "python3".into(),
            node: "node".into(),
            network: Network::Isolated,
            max_log_bytes: 1024 * 1024,
            max_response_bytes: 6 * 1024 * 1024,
            runtime_api: RuntimeApiLimits::default(),
            init_timeout: Duration::from_secs(10),
            uid: 993,
            gid: 990,
            waiter: "/proc/self/exe".into(),
        }
    }
}

/// The process backend.
pub struct ProcessBackend {
    config: ProcessConfig,
    interpreters: Interpreters,
    hierarchy: cgroup::Hierarchy,
    seccomp: Arc<Vec<BpfProgram>>,
    runtime_dir: PathBuf,
    root_dir: PathBuf,
    /// Where sandboxes' `/tmp` disks are made; `None`: loop devices are unavailable and `/tmp`
    /// is a tmpfs.
    scratch: Option<Arc<launch::scratch::Scratch>>,
}

impl std::fmt::Debug for ProcessBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessBackend")
            .field("config", &self.config)
            .field("interpreters", &self.interpreters)
            .finish_non_exhaustive()
    }
}

fn internal(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Internal(e.to_string())
}

/// A random id for a sandbox.
fn new_id() -> String {
    use sha2::Digest;
    let seed = format!(
        "{:?}{}{:?}",
        std::time::SystemTime::now(),
        std::process::id(),
        std::thread::current().id()
    );
    hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..8])
}

impl ProcessBackend {
    /// Checks what sandboxes need (root, cgroups, namespaces, seccomp) and says clearly what
    /// is missing.
    pub fn new(config: ProcessConfig) -> Result<Self, SandboxError> {
        if !launch::is_root() {
            return Err(SandboxError::Internal(
                "process sandboxes need root (namespaces, cgroups and mounts); run stoke serve \
                 as root or with --process-runtimes off"
                    .into(),
            ));
        }
        let hierarchy = cgroup::Hierarchy::open().map_err(|e| {
            SandboxError::Internal(format!(
                "the cgroups of process sandboxes could not be created under /sys/fs/cgroup: {e}"
            ))
        })?;
        if config.network == Network::Isolated {
            launch::runtime_socket(true).map_err(|e| {
                SandboxError::Internal(format!(
                    "the kernel refused a network namespace for process sandboxes: {e}"
                ))
            })?;
        }
        let seccomp = Arc::new(seccomp::filters().map_err(|e| {
            SandboxError::Internal(format!("the seccomp filter could not be built: {e}"))
        })?);
        let runtime_dir = config.dir.join("runtime");
        let root_dir = config.dir.join("root");
        std::fs::create_dir_all(&root_dir)?;
        runtimes::write_runtime_files(&runtime_dir)?;
        let scratch = match launch::scratch::Scratch::open(&config.dir.join("tmp")) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                tracing::warn!(
                    "/tmp of process sandboxes is a tmpfs charged to the function's memory, not \
                     disk of its EphemeralStorage size: {e}"
                );
                None
            }
        };
        let interpreters = Interpreters::resolve(&config.python, &config.node);
        for (name, i) in [
            ("python", &interpreters.python),
            ("node", &interpreters.node),
        ] {
            match i {
                Ok(i) => tracing::info!(runtime = name, exe = %i.exe.display(), "interpreter"),
                Err(e) => tracing::warn!(runtime = name, "{e}"),
            }
        }
        let backend = Self {
            config,
            interpreters,
            hierarchy,
            seccomp,
            runtime_dir,
            root_dir,
            scratch,
        };
        Ok(backend)
    }

    /// The interpreters found at start-up.
    pub fn interpreters(&self) -> &Interpreters {
        &self.interpreters
    }

    /// This server's cgroup folders (tests look there for leftovers).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.hierarchy.server_dirs()
    }

    /// Removes this server's cgroups; call after the last sandbox has gone.
    pub fn shutdown(&self) {
        self.hierarchy.remove();
    }

    fn mounts(&self, spec: &FunctionSpec, extra: &[PathBuf]) -> Vec<Mount> {
        let ro = |p: &str| Mount::Bind {
            src: p.into(),
            dst: p.into(),
            writable: false,
        };
        let mut m = vec![ro("/usr")];
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            let p = Path::new(top);
            match std::fs::symlink_metadata(p) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(p) {
                        m.push(Mount::Symlink {
                            target,
                            link: p.into(),
                        });
                    }
                }
                Ok(meta) if meta.is_dir() => m.push(ro(top)),
                _ => {}
            }
        }
        for etc in [
            "/etc/ld.so.cache",
            "/etc/ld.so.conf",
            "/etc/ld.so.conf.d",
            "/etc/nsswitch.conf",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/localtime",
            "/etc/ssl",
            "/etc/ca-certificates",
            "/etc/mime.types",
        ] {
            // Only what exists, and never a symlink pointing elsewhere (resolved here).
            if let Ok(real) = std::fs::canonicalize(etc) {
                m.push(Mount::Bind {
                    src: real,
                    dst: etc.into(),
                    writable: false,
                });
            }
        }
        for p in extra {
            m.push(Mount::Bind {
                src: p.clone(),
                dst: p.clone(),
                writable: false,
            });
        }
        m.push(Mount::Bind {
            src: self.runtime_dir.clone(),
            dst: "/var/runtime".into(),
            writable: false,
        });
        m.push(Mount::Bind {
            src: spec.code_dir.clone(),
            dst: "/var/task".into(),
            writable: false,
        });
        let bytes = u64::from(spec.ephemeral_mb.max(512)) * 1024 * 1024;
        m.push(match &self.scratch {
            Some(scratch) => Mount::Disk {
                dst: "/tmp".into(),
                bytes,
                scratch: Arc::clone(scratch),
            },
            None => Mount::Tmpfs {
                dst: "/tmp".into(),
                bytes,
            },
        });
        for dev in ["null", "zero", "random", "urandom"] {
            m.push(Mount::Bind {
                src: format!("/dev/{dev}").into(),
                dst: format!("/dev/{dev}").into(),
                writable: true,
            });
        }
        for (link, target) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
        ] {
            m.push(Mount::Symlink {
                target: target.into(),
                link: link.into(),
            });
        }
        m.push(Mount::Proc {
            dst: "/proc".into(),
        });
        m
    }

    fn environment(
        &self,
        spec: &FunctionSpec,
        api: &str,
        log_stream: &str,
        extra: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = spec
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let fixed = [
            ("AWS_LAMBDA_RUNTIME_API", api.to_owned()),
            ("_HANDLER", spec.handler.clone()),
            ("LAMBDA_TASK_ROOT", "/var/task".into()),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
            ("AWS_LAMBDA_FUNCTION_NAME", spec.function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", spec.version.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            ),
            ("AWS_REGION", spec.region.clone()),
            ("AWS_DEFAULT_REGION", spec.region.clone()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", spec.log_group()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_owned()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("TZ", ":UTC".into()),
            ("LANG", "en_US.UTF-8".into()),
            (
                "PATH",
                "/usr/local/bin:/usr/bin:/bin:/opt/bin:/var/task".into(),
            ),
            (
                "LD_LIBRARY_PATH",
                "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"
                    .into(),
            ),
        ];
        env.retain(|(k, _)| !fixed.iter().any(|(f, _)| f == k));
        env.extend(fixed.into_iter().map(|(k, v)| (k.to_owned(), v)));
        env.extend(extra.iter().cloned());
        env
    }
}

#[async_trait]
impl Backend for ProcessBackend {
    fn prepare(&self, spec: &FunctionSpec) -> Result<(), PrepareError> {
        // What `check_code` refuses is a runtime this server cannot run.
        runtimes::check_code(spec, &self.interpreters).map_err(PrepareError::RuntimeUnavailable)
    }

    async fn start(&self, spec: &FunctionSpec) -> Result<Arc<dyn Sandbox>, SandboxError> {
        let command = self
            .interpreters
            .command(spec)
            .map_err(SandboxError::NotPrepared)?;
        let t0 = std::time::Instant::now();
        // Init's limit counts from here (the engine calls `start` when the init's turn comes).
        let init_deadline = tokio::time::Instant::now() + self.config.init_timeout;
        let id = new_id();
        let cgroup = self
            .hierarchy
            .create(&id, spec.memory_mb)
            .map_err(|e| internal(format!("creating the sandbox's cgroups: {e}")))?;
        let isolated = self.config.network == Network::Isolated;
        let (netns, listener) =
            tokio::task::spawn_blocking(move || launch::runtime_socket(isolated))
                .await
                .map_err(internal)?
                .map_err(|e| internal(format!("creating the Runtime API socket: {e}")))?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let api_addr = format!("127.0.0.1:{}", listener.local_addr()?.port());
        let api = RuntimeApi::new(
            self.config.max_response_bytes,
            self.config.runtime_api.clone(),
        );
        let server = api.serve(listener);

        let (log_r, log_w) = std::io::pipe()?;
        let logs = Logs::collect(OwnedFd::from(log_r), self.config.max_log_bytes)?;
        let log_stream = crate::log_stream_name(spec);
        let launch = LaunchSpec {
            root: self.root_dir.clone(),
            mounts: self.mounts(spec, &command.mounts),
            program: command.program.clone(),
            args: command.args.clone(),
            env: self.environment(spec, &api_addr, &log_stream, &command.env),
            workdir: "/var/task".into(),
            hostname: "stoke".into(),
            uid: self.config.uid,
            gid: self.config.gid,
            open_files: 1024,
            netns,
            cgroup_procs: cgroup.procs_files(),
            seccomp: Arc::clone(&self.seccomp),
            output: OwnedFd::from(log_w),
            waiter: self.config.waiter.clone(),
        };
        let t_setup = t0.elapsed();
        let launched = tokio::task::spawn_blocking(move || launch::spawn(launch))
            .await
            .map_err(internal)?;
        let t_exec = t0.elapsed();
        let (init_pid, waiter_pid, exit, failure) = match launched {
            Ok(l) => (
                l.init_pid,
                i32::try_from(l.waiter.id()).unwrap_or(0),
                wait_in_thread(l.waiter),
                None,
            ),
            Err(LaunchError::Exec(e)) => {
                tracing::debug!(error = %e, "the runtime could not be executed");
                let exited = watch::channel(Some(127)).1;
                (0, 0, exited, Some(InitFailure::Entrypoint))
            }
            Err(e) => return Err(internal(e)),
        };
        let mut sandbox = ProcessSandbox {
            timeout: spec.timeout,
            memory_mb: spec.memory_mb,
            function_arn: spec.function_arn.clone(),
            log_stream,
            call: tokio::sync::Mutex::new(()),
            init_failure: std::sync::Mutex::new(None),
            dead: AtomicBool::new(false),
            env: Environment {
                events: api.events.clone(),
                server,
                logs,
                init_pid,
                waiter_pid,
                exit,
                cgroup,
            },
        };
        if let Some(f) = failure {
            sandbox.fail_init(f);
            return Ok(Arc::new(sandbox));
        }

        // Init: until the first `next`, an init error, an exit, or the init timeout.
        let mut init = api.init.clone();
        let mut exit = sandbox.env.exit.clone();
        let outcome = tokio::select! {
            r = init.wait_for(|s| *s != InitState::Running) => match r.map(|s| s.clone()) {
                Ok(InitState::Failed(e)) => Some(InitFailure::Reported(e)),
                _ => None,
            },
            r = exit.wait_for(Option::is_some) => {
                let code = r.ok().and_then(|c| *c).unwrap_or(-1);
                Some(InitFailure::Exited(code))
            }
            () = tokio::time::sleep_until(init_deadline) => Some(InitFailure::Timeout(self.config.init_timeout)),
        };
        tracing::debug!(
            setup_us = u64::try_from(t_setup.as_micros()).unwrap_or(0),
            exec_us = u64::try_from(t_exec.as_micros()).unwrap_or(0),
            init_us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(0),
            "cold start"
        );
        match outcome {
            None => sandbox.env.cgroup.cap_cpu(),
            Some(f) => {
                // Lambda reports the failure and starts afresh on the next call.
                if matches!(f, InitFailure::Exited(_)) && sandbox.env.cgroup.oom_kills() > 0 {
                    sandbox.fail_init(InitFailure::OutOfMemory);
                } else {
                    sandbox.fail_init(f);
                }
            }
        }
        Ok(Arc::new(sandbox))
    }
}

/// Waits for the waiter process on a thread of its own; the watch gets its exit code.
fn wait_in_thread(mut child: std::process::Child) -> watch::Receiver<Option<i32>> {
    let (tx, rx) = watch::channel(None);
    let spawned = std::thread::Builder::new()
        .name("stoke-sandbox-wait".into())
        .spawn(move || {
            let code = child.wait().ok().and_then(|s| {
                use std::os::unix::process::ExitStatusExt;
                s.code().or_else(|| s.signal().map(|n| 128 + n))
            });
            tx.send_replace(Some(code.unwrap_or(-1)));
        });
    if spawned.is_err() {
        tracing::error!("no thread could be started to wait for a sandbox");
    }
    rx
}

/// Why Init failed (the message needs the call's request id).
#[derive(Debug, Clone)]
enum InitFailure {
    Reported(FunctionError),
    Exited(i32),
    Entrypoint,
    OutOfMemory,
    Timeout(Duration),
}

/// Lambda's words for a runtime that exited with `code` (128 + n: killed by signal n).
fn exit_words(code: i32) -> String {
    match code {
        137 => "signal: killed".into(),
        c if c > 128 => format!("signal: {}", c - 128),
        c => format!("exit status {c}"),
    }
}

impl InitFailure {
    fn error(&self, request_id: &str, memory_mb: u32) -> FunctionError {
        match self {
            Self::Reported(e) => e.clone(),
            Self::Exited(code) => FunctionError::new(
                "Runtime.ExitError",
                format!(
                    "RequestId: {request_id} Error: Runtime exited with error: {}",
                    exit_words(*code)
                ),
            ),
            Self::Entrypoint => FunctionError::new(
                "Runtime.InvalidEntrypoint",
                format!(
                    "RequestId: {request_id} Error: Couldn't find valid bootstrap(s): \
                     [/var/task/bootstrap /opt/bootstrap]"
                ),
            ),
            Self::OutOfMemory => out_of_memory(request_id, memory_mb),
            Self::Timeout(d) => FunctionError::new(
                "Sandbox.Timedout",
                format!(
                    "RequestId: {request_id} Error: Init timed out after {:.2} seconds",
                    d.as_secs_f64()
                ),
            ),
        }
    }
}

fn out_of_memory(request_id: &str, memory_mb: u32) -> FunctionError {
    FunctionError::new(
        "Runtime.OutOfMemory",
        format!(
            "RequestId: {request_id} Error: Runtime exited with error: signal: killed \
             (the function tried to use more than its {memory_mb} MB of memory)"
        ),
    )
}

/// The process tree and what serves it.
struct Environment {
    events: mpsc::Sender<Event>,
    server: tokio::task::JoinHandle<()>,
    logs: Logs,
    init_pid: i32,
    waiter_pid: i32,
    /// The waiter's exit code, once it has exited.
    exit: watch::Receiver<Option<i32>>,
    cgroup: cgroup::Cgroup,
}

impl Environment {
    /// Kills every process of the environment (frozen, quota lifted, killed, thawed: see
    /// `cgroup`). Quick; the exits finish afterwards.
    fn kill(&self) {
        // Once the waiter has been reaped, its pid (and PID 1's) may belong to someone else.
        let pids = if self.exit.borrow().is_none() {
            vec![self.init_pid, self.waiter_pid]
        } else {
            Vec::new()
        };
        self.cgroup.kill_all(&pids);
    }

    /// Whether every process of the environment has exited.
    fn gone(&self) -> bool {
        self.exit.borrow().is_some() && self.cgroup.is_empty()
    }
}

/// How long a call that ended its environment (timeout, crash) waits for the teardown before
/// it answers; the rest of the teardown goes on in the background.
const TEARDOWN_GRACE: Duration = Duration::from_millis(500);
/// How long dropping a sandbox waits (blocking) for its processes before its cgroups go to
/// the reaper.
const DROP_GRACE: Duration = Duration::from_millis(250);

/// A process execution environment.
struct ProcessSandbox {
    timeout: Duration,
    memory_mb: u32,
    function_arn: String,
    log_stream: String,
    call: tokio::sync::Mutex<()>,
    init_failure: std::sync::Mutex<Option<InitFailure>>,
    /// The environment is gone (timeout, crash, out of memory, failed Init).
    dead: AtomicBool,
    env: Environment,
}

impl ProcessSandbox {
    fn fail_init(&mut self, f: InitFailure) {
        self.env.kill();
        self.dead.store(true, Ordering::SeqCst);
        *self
            .init_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(f);
    }

    fn timed_out(&self, request_id: &str) -> FunctionError {
        FunctionError::new(
            "Sandbox.Timedout",
            format!(
                "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                self.timeout.as_secs_f64()
            ),
        )
    }

    /// Kills the environment and waits, at most [`TEARDOWN_GRACE`], for its processes to be
    /// gone (a process forked while the group was being frozen is killed again).
    async fn kill_and_wait(&self) {
        self.dead.store(true, Ordering::SeqCst);
        self.env.kill();
        let until = tokio::time::Instant::now() + TEARDOWN_GRACE;
        while !self.env.gone() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.env.cgroup.kill_stragglers();
        }
    }

    /// After a call that ended the environment: removes its cgroups if they can go (within
    /// what is left of the grace), else leaves them to the reaper.
    async fn release(&self) {
        let until = tokio::time::Instant::now() + TEARDOWN_GRACE;
        while self.env.gone() && !self.env.cgroup.try_release() {
            if tokio::time::Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.env.cgroup.release();
    }

    fn execution(&self, outcome: Outcome, log: (Bytes, bool), peak: u64) -> Execution {
        Execution {
            outcome,
            log: log.0,
            max_memory_bytes: peak,
            log_truncated: log.1,
            log_stream: self.log_stream.clone(),
        }
    }
}

#[async_trait]
impl Sandbox for ProcessSandbox {
    async fn invoke(&self, input: InvokeInput) -> Result<Execution, SandboxError> {
        let _one = self.call.lock().await;
        let failed = self
            .init_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(f) = failed {
            let log = self.env.logs.take().await;
            let e = f.error(&input.request_id, self.memory_mb);
            return Ok(self.execution(Outcome::Error(e), log, self.env.cgroup.peak()));
        }
        if self.dead.load(Ordering::SeqCst) {
            let e = FunctionError::new(
                "Runtime.ExitError",
                format!(
                    "RequestId: {} Error: Runtime exited without providing a reason",
                    input.request_id
                ),
            );
            return Ok(self.execution(Outcome::Error(e), (Bytes::new(), false), 0));
        }
        self.env.cgroup.reset_peak();
        let (tx, rx) = oneshot::channel();
        let event = Event {
            request_id: input.request_id.clone(),
            payload: input.payload.clone(),
            deadline_ms: input.deadline_unix_ms,
            function_arn: input
                .invoked_function_arn
                .clone()
                .unwrap_or_else(|| self.function_arn.clone()),
            trace_id: input.trace_id.clone(),
            client_context: input.client_context.clone(),
            reply: tx,
        };
        let mut exit = self.env.exit.clone();
        let run = async {
            if self.env.events.send(event).await.is_err() {
                return None;
            }
            rx.await.ok()
        };
        let exited = async {
            let r = exit.wait_for(Option::is_some).await;
            r.ok().and_then(|c| *c).unwrap_or(-1)
        };
        let outcome = tokio::select! {
            reply = run => match reply {
                Some(Reply::Response(b)) => Outcome::Success(b),
                Some(Reply::Error(e)) => Outcome::Error(e),
                None => Outcome::Error(FunctionError::new(
                    "Runtime.ExitError",
                    format!("RequestId: {} Error: Runtime exited without providing a reason", input.request_id),
                )),
            },
            code = exited => {
                self.kill_and_wait().await;
                if self.env.cgroup.oom_kills() > 0 {
                    Outcome::Error(out_of_memory(&input.request_id, self.memory_mb))
                } else {
                    Outcome::Error(FunctionError::new(
                        "Runtime.ExitError",
                        format!(
                            "RequestId: {} Error: Runtime exited with error: {}",
                            input.request_id,
                            exit_words(code)
                        ),
                    ))
                }
            }
            () = tokio::time::sleep_until(input.deadline) => {
                self.kill_and_wait().await;
                Outcome::Error(self.timed_out(&input.request_id))
            }
        };
        // An OOM kill of a child process (the runtime survived): still Lambda's error.
        let outcome = match outcome {
            Outcome::Error(e)
                if e.error_type == "Runtime.ExitError" && self.env.cgroup.oom_kills() > 0 =>
            {
                Outcome::Error(out_of_memory(&input.request_id, self.memory_mb))
            }
            o => o,
        };
        let log = self.env.logs.take().await;
        let peak = self.env.cgroup.peak();
        if self.dead.load(Ordering::SeqCst) {
            self.release().await;
        }
        Ok(self.execution(outcome, log, peak))
    }

    fn reusable(&self) -> bool {
        !self.dead.load(Ordering::SeqCst)
    }

    fn init_failure(&self) -> Option<String> {
        let failed = self
            .init_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        let e = failed.error("(warm-up)", self.memory_mb);
        Some(format!("{}: {}", e.error_type, e.message))
    }
}

impl Drop for ProcessSandbox {
    fn drop(&mut self) {
        self.env.server.abort();
        if self.env.cgroup.released() {
            return;
        }
        self.env.kill();
        // Wait (briefly) for the tree to be gone, so that the cgroups can go with it; what is
        // left then goes to the reaper (the cgroup's own Drop).
        let until = std::time::Instant::now() + DROP_GRACE;
        while !(self.env.gone() && self.env.cgroup.try_release())
            && std::time::Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The per-call log: everything the process writes to stdout and stderr, gathered by a task.
struct Logs {
    take: mpsc::Sender<oneshot::Sender<(Bytes, bool)>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Logs {
    fn collect(fd: OwnedFd, max: usize) -> std::io::Result<Self> {
        let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
        let (take, mut requests) = mpsc::channel::<oneshot::Sender<(Bytes, bool)>>(1);
        let task = tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::new();
            let mut truncated = false;
            let mut eof = false;
            let drain = |buf: &mut Vec<u8>, truncated: &mut bool, eof: &mut bool| {
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    match rx.try_read(&mut chunk) {
                        Ok(0) => {
                            *eof = true;
                            break;
                        }
                        Ok(n) => {
                            let room = max.saturating_sub(buf.len());
                            if n > room {
                                *truncated = true;
                            }
                            buf.extend_from_slice(&chunk[..n.min(room)]);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            *eof = true;
                            break;
                        }
                    }
                }
            };
            loop {
                tokio::select! {
                    r = rx.readable(), if !eof => {
                        if r.is_err() { eof = true; } else { drain(&mut buf, &mut truncated, &mut eof); }
                    }
                    req = requests.recv() => {
                        let Some(reply) = req else { break };
                        if !eof {
                            drain(&mut buf, &mut truncated, &mut eof);
                        }
                        let _ = reply.send((Bytes::from(std::mem::take(&mut buf)), truncated));
                        truncated = false;
                    }
                }
            }
        });
        Ok(Self {
            take,
            task: Some(task),
        })
    }

    /// What was written since the last take, and whether some was dropped at the limit.
    async fn take(&self) -> (Bytes, bool) {
        let (tx, rx) = oneshot::channel();
        if self.take.send(tx).await.is_err() {
            return (Bytes::new(), false);
        }
        rx.await.unwrap_or_default()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}
