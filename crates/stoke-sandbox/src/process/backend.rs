//! [`ProcessBackend`]: the start-up checks of what sandboxes need, the deploy-time checks of
//! a function's code, and cold starts: a sandbox's cgroups, its Runtime API socket, its file
//! tree and environment, its launch, and its Init (until the runtime's first `next`, an init
//! error, an exit or the init timeout).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use seccompiler::BpfProgram;
use tokio::sync::watch;

use super::api::{InitState, RuntimeApi};
use super::failure::InitFailure;
use super::images::{Composed, ImageError, Images};
use super::launch::{self, LaunchError, LaunchSpec, Mount};
use super::logs::Logs;
use super::runtimes::{Command0, RuntimeFiles};
use super::sandbox::{Environment, ProcessSandbox, wait_in_thread};
use super::spares::Spares;
use super::{Interpreters, Network, ProcessConfig, cgroup, runtimes, seccomp};
use crate::{Backend, FunctionSpec, PrepareError, RuntimeVersion, Sandbox, SandboxError};

/// The process backend.
pub struct ProcessBackend {
    config: ProcessConfig,
    interpreters: Interpreters,
    hierarchy: cgroup::Hierarchy,
    seccomp: Arc<Vec<BpfProgram>>,
    /// `/var/runtime`, `/etc/passwd` and the rest of the runtime's side of a sandbox.
    files: RuntimeFiles,
    root_dir: PathBuf,
    /// Where sandboxes' `/tmp` disks are made; `None`: loop devices are unavailable and `/tmp`
    /// is a tmpfs.
    scratch: Option<Arc<launch::scratch::Scratch>>,
    /// The images of `/var/lang`, `/var/runtime` and `/var/task`; `None`: they are read-only
    /// binds of the host's paths (images are off or cannot be made here).
    images: Option<Arc<Images>>,
    /// Network namespaces and `/tmp` disks made ahead.
    spares: Spares,
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

/// The size of a sandbox's `/tmp`: its `EphemeralStorage` (512 MB at least).
fn tmp_bytes(spec: &FunctionSpec) -> u64 {
    u64::from(spec.ephemeral_mb.max(512)) * 1024 * 1024
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

/// What a sandbox's `/var/lang`, `/var/runtime` and `/var/task` come from.
struct Sources {
    images: Option<Arc<Images>>,
    var_lang: Option<Composed>,
    /// `None`: an empty `/var/runtime` (`provided*`).
    var_runtime: Option<Composed>,
    code_sha256: String,
    code_dir: PathBuf,
}

impl Sources {
    /// Their mounts: images (made if missing, attached), or binds without them. Blocking.
    fn mounts(&self) -> Result<Vec<Mount>, ImageError> {
        let Some(images) = &self.images else {
            let mut m: Vec<Mount> = self.var_lang.iter().flat_map(Composed::binds).collect();
            match &self.var_runtime {
                Some(r) => m.extend(r.binds()),
                None => m.push(Mount::Dir {
                    dst: "/var/runtime".into(),
                }),
            }
            m.push(Mount::Bind {
                src: self.code_dir.clone(),
                dst: "/var/task".into(),
                writable: false,
            });
            return Ok(m);
        };
        let image = |c: &Composed| -> Result<Mount, ImageError> {
            Ok(Mount::Image {
                dst: c.root.clone(),
                image: images.attach_composed(c)?,
            })
        };
        let mut m = Vec::with_capacity(3);
        if let Some(lang) = &self.var_lang {
            m.push(image(lang)?);
        }
        m.push(match &self.var_runtime {
            Some(r) => image(r)?,
            None => Mount::Dir {
                dst: "/var/runtime".into(),
            },
        });
        let code = images.code(&self.code_sha256, &self.code_dir)?;
        m.push(Mount::Image {
            dst: "/var/task".into(),
            image: images.attach(&code)?,
        });
        Ok(m)
    }

    /// Makes the images that are missing and attaches them (at deploy time: the next cold
    /// start finds them ready, unless other images took their places meanwhile).
    fn make(&self) -> Result<(), ImageError> {
        let Some(images) = &self.images else {
            return Ok(());
        };
        for c in self.var_lang.iter().chain(&self.var_runtime) {
            images.attach_composed(c)?;
        }
        images.attach(&images.code(&self.code_sha256, &self.code_dir)?)?;
        Ok(())
    }
}

/// The images of sandboxes, unless they are off or cannot be made here (then sandboxes bind
/// the host's paths, and the warning says why). Removes runtime images of earlier starts that
/// this one has no use for.
fn open_images(
    config: &ProcessConfig,
    files: &RuntimeFiles,
    interpreters: &Interpreters,
) -> Option<Arc<Images>> {
    if !config.images {
        tracing::info!(
            "sandbox images are off: /var/lang, /var/runtime and /var/task are binds of host paths"
        );
        return None;
    }
    match Images::open(&config.dir.join("images"), config.runtime_images.as_deref()) {
        Ok(images) => {
            let mut keys: Vec<&str> = files.composed().iter().map(|c| c.key.as_str()).collect();
            keys.extend(interpreters.all().map(|i| i.var_lang.key.as_str()));
            images.keep_runtime(&keys);
            Some(Arc::new(images))
        }
        Err(e) => {
            tracing::warn!(
                "/var/lang, /var/runtime and /var/task of process sandboxes are read-only binds \
                 of host paths, which /proc/self/mountinfo shows inside them: their images \
                 cannot be made here: {e}"
            );
            None
        }
    }
}

impl ProcessBackend {
    /// What the sandboxes of `spec` mount at `/var/lang`, `/var/runtime` and `/var/task`.
    fn sources(&self, spec: &FunctionSpec, command: &Command0) -> Sources {
        Sources {
            images: self.images.clone(),
            var_lang: command.var_lang.clone(),
            var_runtime: self.files.runtime(spec.runtime.family()).cloned(),
            code_sha256: spec.code_sha256.clone(),
            code_dir: spec.code_dir.clone(),
        }
    }

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
        let root_dir = config.dir.join("root");
        std::fs::create_dir_all(&root_dir)?;
        let files = RuntimeFiles::write(
            &config.dir,
            config.runtime_libs.as_deref(),
            config.uid,
            config.gid,
        )?;
        if files.libs.is_empty() {
            tracing::warn!(
                libs = ?config.runtime_libs,
                "no runtime libraries: boto3 is not importable in python3.x functions (install \
                 them with `pip install --target DIR/python boto3 botocore` and pass \
                 --runtime-libs DIR; scripts/serve.sh does)"
            );
        } else {
            tracing::info!(libs = ?files.libs, "runtime libraries under /var/runtime");
        }
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
        let interpreters = Interpreters::resolve(
            &config.python,
            &config.node,
            config.strict_runtimes,
            &files.empty,
        );
        let images = open_images(&config, &files, &interpreters);
        let spares = Spares::start(
            config.spare_environments,
            config.network == Network::Isolated,
            scratch.clone(),
        );
        let backend = Self {
            config,
            interpreters,
            hierarchy,
            seccomp,
            files,
            root_dir,
            scratch,
            images,
            spares,
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

    /// Removes this server's cgroups and what was made ahead; call after the last sandbox has
    /// gone.
    pub fn shutdown(&self) {
        self.spares.stop();
        if let Some(images) = &self.images {
            images.detach_all();
        }
        self.hierarchy.remove();
    }

    fn mounts(&self, spec: &FunctionSpec, filesystems: Vec<Mount>) -> Vec<Mount> {
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
        // `/etc/passwd`, the home folder, `/opt`, then `/var/lang`, `/var/runtime`, `/var/task`.
        m.extend(self.files.common().iter().cloned());
        m.extend(filesystems);
        let bytes = tmp_bytes(spec);
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

    /// Lambda's environment: its defaults (which the function's variables may replace), the
    /// function's variables, then the reserved ones.
    fn environment(
        &self,
        spec: &FunctionSpec,
        api: &str,
        log_stream: &str,
        command: &Command0,
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![("LANG".into(), "en_US.UTF-8".into())];
        env.extend(command.defaults.iter().cloned());
        env.retain(|(k, _)| !spec.environment.contains_key(k));
        env.extend(spec.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut fixed: Vec<(&str, String)> = vec![
            ("AWS_LAMBDA_RUNTIME_API", api.to_owned()),
            ("_HANDLER", spec.handler.clone()),
            ("LAMBDA_TASK_ROOT", "/var/task".into()),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
        ];
        fixed.extend(spec.lambda_env(log_stream));
        fixed.extend([
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("TZ", ":UTC".into()),
        ]);
        fixed.extend(command.env.iter().map(|(k, v)| (k.as_str(), v.clone())));
        env.retain(|(k, _)| !fixed.iter().any(|(f, _)| f == k));
        env.extend(fixed.into_iter().map(|(k, v)| (k.to_owned(), v)));
        env
    }
}

#[async_trait]
impl Backend for ProcessBackend {
    fn prepare(&self, spec: &FunctionSpec) -> Result<(), PrepareError> {
        // What `check_code` refuses is a runtime this server cannot run.
        runtimes::check_code(spec, &self.interpreters).map_err(PrepareError::RuntimeUnavailable)?;
        let command = self
            .interpreters
            .command(spec)
            .map_err(PrepareError::RuntimeUnavailable)?;
        self.sources(spec, &command).make().map_err(|e| {
            PrepareError::Internal(format!("making the sandbox's file system images: {e}"))
        })
    }

    fn forget_code(&self, code_sha256: &str) {
        if let Some(images) = &self.images {
            images.forget_code(code_sha256);
        }
    }

    fn runtime_version(&self, runtime: &stoke_core::Runtime) -> Option<RuntimeVersion> {
        self.interpreters.runtime_version(runtime)
    }

    async fn start(&self, spec: &FunctionSpec) -> Result<Arc<dyn Sandbox>, SandboxError> {
        let command = self
            .interpreters
            .command(spec)
            .map_err(SandboxError::NotPrepared)?;
        let t0 = std::time::Instant::now();
        let sources = self.sources(spec, &command);
        let filesystems = tokio::task::spawn_blocking(move || sources.mounts())
            .await
            .map_err(internal)?
            .map_err(|e| internal(format!("the sandbox's file systems: {e}")))?;
        // Init's limit counts from here (the engine calls `start` when the init's turn comes).
        let init_deadline = tokio::time::Instant::now() + self.config.init_timeout;
        let id = new_id();
        let cgroup = self
            .hierarchy
            .create(&id, spec.memory_mb)
            .map_err(|e| internal(format!("creating the sandbox's cgroups: {e}")))?;
        let isolated = self.config.network == Network::Isolated;
        let spare = if isolated {
            self.spares.take_net()
        } else {
            None
        };
        let (netns, listener) = match spare {
            Some(net) => net,
            None => tokio::task::spawn_blocking(move || launch::runtime_socket(isolated))
                .await
                .map_err(internal)?
                .map_err(|e| internal(format!("creating the Runtime API socket: {e}")))?,
        };
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
            mounts: self.mounts(spec, filesystems),
            program: command.program.clone(),
            args: command.args.clone(),
            env: self.environment(spec, &api_addr, &log_stream, &command),
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
            premade_disk: self
                .scratch
                .as_ref()
                .and_then(|_| self.spares.take_disk(tmp_bytes(spec))),
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
            runtime_version: self.interpreters.runtime_version(&spec.runtime),
            call: tokio::sync::Mutex::new(()),
            init_failure: std::sync::Mutex::new(None),
            init_log: std::sync::Mutex::new(None),
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
            None => {
                sandbox.env.cgroup.cap_cpu();
                // The runtime wrote its Init's lines before its first `next`: all in the pipe.
                let init_log = sandbox.env.logs.take();
                *sandbox
                    .init_log
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(init_log);
            }
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
