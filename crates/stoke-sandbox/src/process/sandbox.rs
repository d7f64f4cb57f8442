//! One process execution environment ([`ProcessSandbox`]): the process tree and what serves
//! it ([`Environment`]), call after call (one at a time), with its timeouts, crashes and
//! out-of-memory kills, and its teardown (quick kills; a bounded wait; the cgroups to the
//! reaper when they cannot go at once).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use super::api::{Event, Reply};
use super::cgroup;
use super::failure::{InitFailure, exit_words, out_of_memory};
use super::logs::Logs;
use crate::{Execution, FunctionError, InvokeInput, Outcome, Sandbox, SandboxError};

/// Waits for the waiter process on a thread of its own; the watch gets its exit code.
pub(super) fn wait_in_thread(mut child: std::process::Child) -> watch::Receiver<Option<i32>> {
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

/// The process tree and what serves it.
pub(super) struct Environment {
    pub(super) events: mpsc::Sender<Event>,
    pub(super) server: tokio::task::JoinHandle<()>,
    pub(super) logs: Logs,
    pub(super) init_pid: i32,
    pub(super) waiter_pid: i32,
    /// The waiter's exit code, once it has exited.
    pub(super) exit: watch::Receiver<Option<i32>>,
    pub(super) cgroup: cgroup::Cgroup,
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
pub(super) struct ProcessSandbox {
    pub(super) timeout: Duration,
    pub(super) memory_mb: u32,
    pub(super) function_arn: String,
    pub(super) log_stream: String,
    /// The managed runtime's version (`INIT_START`); `None` for `provided*`.
    pub(super) runtime_version: Option<crate::RuntimeVersion>,
    pub(super) call: tokio::sync::Mutex<()>,
    pub(super) init_failure: std::sync::Mutex<Option<InitFailure>>,
    /// What the runtime wrote during a successful Init, until the first call takes it.
    pub(super) init_log: std::sync::Mutex<Option<(Bytes, bool)>>,
    /// The environment is gone (timeout, crash, out of memory, failed Init).
    pub(super) dead: AtomicBool,
    pub(super) env: Environment,
}

impl ProcessSandbox {
    pub(super) fn fail_init(&mut self, f: InitFailure) {
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
        let (init_log, init_truncated) = self
            .init_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        Execution {
            outcome,
            log: log.0,
            init_log,
            max_memory_bytes: peak,
            log_truncated: log.1 || init_truncated,
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
            let log = self.env.logs.take();
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
        let log = self.env.logs.take();
        let peak = self.env.cgroup.peak();
        if self.dead.load(Ordering::SeqCst) {
            self.release().await;
        }
        Ok(self.execution(outcome, log, peak))
    }

    fn reusable(&self) -> bool {
        !self.dead.load(Ordering::SeqCst)
    }

    fn retire(&self) {
        self.dead.store(true, Ordering::SeqCst);
        self.env.kill();
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

    fn runtime_version(&self) -> Option<crate::RuntimeVersion> {
        self.runtime_version.clone()
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
