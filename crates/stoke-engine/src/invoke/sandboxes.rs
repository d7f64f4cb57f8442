//! The sandboxes of every function: the warm pools, the backends that start sandboxes, and
//! the fair turn every start (a cold start, or a deploy's warm-up) waits for.
//!
//! Cold starts are admitted, not stormed: at most [`InvokerConfig::init_concurrency`] sandbox
//! starts run at once, and the rest wait in arrival order (a fair semaphore). Neither the wait
//! nor anything before it counts as Init: the Init timer starts when the start does. A call
//! whose turn comes after a sandbox of its function went idle takes that one instead of
//! starting another.
//!
//! [`Sandboxes`] is the control plane's [`Warmer`]: a deploy warms its new generation here,
//! and the invoker's calls find that sandbox idle in the pool. A warm-up whose Init fails
//! keeps no sandbox: it answers the Init's error and output ([`FailedInit`]) for the deploy
//! to log.
//!
//! **Code on any node.** A cold start of code this node has not prepared since it started
//! first makes it ready here, once ([`Sandboxes::ready`]): the tree is fetched from the
//! store's blobs and unpacked if it is not on disk (another node deployed it), and the
//! backend prepares it (for wasm: compiles the module, or finds it compiled). Concurrent
//! starts of the same code wait for that one preparation; a failed one is tried again by the
//! next start.
//!
//! Every sandbox starts with credentials of its function's account, minted for it
//! ([`FunctionCredentials`]), and never outlives them: it is wrapped so that it stops being
//! [`Sandbox::reusable`] once a call given to it could still be running when they expire
//! (their expiry less the function's timeout and a margin); the pool then lets it go.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use stoke_core::{FunctionError, LambdaError, Outcome, Reason};
use stoke_sandbox::{Backend, Execution, InvokeInput, Sandbox};
use tokio::sync::{OnceCell, Semaphore};

use super::InvokerConfig;
use crate::credentials::FunctionCredentials;
use crate::metrics::{FunctionLabels, Metrics};
use crate::pool::{FunctionPool, KeepAlivePolicy, Pools};
use crate::route::Router;
use crate::target::{Backends, CodeSource, FailedInit, Layout, Runnable, WarmUp, Warmer};

/// Code as a backend prepares it: its blob, handler and runtime.
type CodeKey = (String, String, String);

/// Every function's sandboxes.
pub struct Sandboxes {
    pub(super) backends: Backends,
    pub(super) pools: Pools,
    /// Where sandboxes find their code.
    layout: Layout,
    /// The region the sandboxes' ARNs name.
    region: String,
    /// The longest Init (the process backend's limit): a reported Init Duration never
    /// exceeds it.
    init_timeout: Duration,
    metrics: Arc<Metrics>,
    /// How long idle sandboxes stay.
    policy: Arc<dyn KeepAlivePolicy>,
    /// Turns to start a sandbox (fair: first come, first served).
    inits: Arc<Semaphore>,
    /// Mints each sandbox's credentials.
    credentials: Arc<FunctionCredentials>,
    /// Where code another node deployed comes from (the control plane's code store, set once
    /// it exists).
    code: OnceLock<Arc<dyn CodeSource>>,
    /// Code made ready here since start (see the module doc), one preparation each.
    prepared: Mutex<HashMap<CodeKey, Arc<OnceCell<()>>>>,
}

impl std::fmt::Debug for Sandboxes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandboxes")
            .field("backends", &self.backends)
            .finish_non_exhaustive()
    }
}

impl Sandboxes {
    /// Warm sandboxes and calls running (see [`Pools::usage`]).
    pub fn usage(&self) -> (u32, u32) {
        self.pools.usage()
    }

    /// The sandboxes of a server with `backends`; a background pass every
    /// [`InvokerConfig::reap_every`] drops idle ones that `policy` no longer keeps, for as
    /// long as this lives.
    pub fn new(
        backends: Backends,
        layout: Layout,
        region: impl Into<String>,
        config: &InvokerConfig,
        metrics: Arc<Metrics>,
        policy: Arc<dyn KeepAlivePolicy>,
        credentials: Arc<FunctionCredentials>,
    ) -> Arc<Self> {
        let me = Arc::new(Self {
            backends,
            pools: Pools::new(config.account_concurrency),
            layout,
            region: region.into(),
            init_timeout: config.init_timeout,
            metrics,
            policy,
            inits: Arc::new(Semaphore::new(config.init_concurrency.max(1) as usize)),
            credentials,
            code: OnceLock::new(),
            prepared: Mutex::default(),
        });
        let weak = Arc::downgrade(&me);
        let every = config.reap_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { break };
                me.pools.reap(me.policy.as_ref(), Instant::now());
            }
        });
        me
    }

    /// Where code this node does not have comes from (set once; later calls change nothing).
    pub fn set_code_source(&self, code: Arc<dyn CodeSource>) {
        let _ = self.code.set(code);
    }

    /// Makes `target`'s code ready on this node, once per code, handler and runtime (see the
    /// module doc): its tree fetched and unpacked if missing, then prepared by `backend`.
    async fn ready(
        &self,
        target: &Runnable,
        backend: &Arc<dyn Backend>,
    ) -> Result<(), LambdaError> {
        let sha = &target.deployed.code.sha256_hex;
        let config = &target.deployed.config;
        let key = (
            sha.clone(),
            config.handler.clone(),
            config.runtime.to_string(),
        );
        let cell = {
            let mut prepared = self
                .prepared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(prepared.entry(key).or_default())
        };
        let not_ready = |why: String| {
            tracing::error!(function = %target.name, code = %sha, error = %why, "code could not be made ready on this node");
            LambdaError::Service(format!(
                "The function's code could not be prepared on this node: {why}"
            ))
        };
        cell.get_or_try_init(|| async {
            if let Some(code) = self.code.get()
                && !code.ensure(sha).await.map_err(not_ready)?
            {
                return Err(not_ready("its code is missing from the store".into()));
            }
            let spec = target.spec(&self.layout.code_dir(sha), &self.region);
            let backend = Arc::clone(backend);
            tokio::task::spawn_blocking(move || backend.prepare(&spec))
                .await
                .map_err(|e| not_ready(e.to_string()))?
                .map_err(|e| not_ready(e.to_string()))
        })
        .await
        .map(|_| ())
    }

    /// The backend that runs `target`'s runtime.
    fn backend(&self, target: &Runnable) -> Result<&Arc<dyn Backend>, LambdaError> {
        self.backends
            .for_family(target.deployed.config.runtime.family())
            .ok_or_else(|| {
                LambdaError::InvalidRuntime(format!(
                    "The runtime {} is not served by this Stoke server.",
                    target.deployed.config.runtime
                ))
            })
    }

    /// Starts a sandbox of `target` (a cold start) when its turn comes, timed from then (the
    /// Init Duration, never above the init limit). If a sandbox of `pool` went idle while the
    /// call waited, that one is answered instead, with no Init.
    pub(super) async fn start(
        &self,
        target: &Runnable,
        pool: Option<&FunctionPool>,
    ) -> Result<(Arc<dyn Sandbox>, Option<Duration>), LambdaError> {
        let backend = self.backend(target)?;
        let waited = Instant::now();
        let _turn = Arc::clone(&self.inits)
            .acquire_owned()
            .await
            .map_err(|_| LambdaError::Service("The server is shutting down.".into()))?;
        self.metrics
            .init_wait_seconds
            .observe(waited.elapsed().as_secs_f64());
        if let Some(s) = pool.and_then(FunctionPool::take_idle) {
            return Ok((s, None));
        }
        // Not part of Init: the code as this node must have it before any start.
        self.ready(target, backend).await?;
        let now = self.metrics.inits_in_flight.inc() + 1;
        let _in_flight = GaugeGuard(self.metrics.inits_in_flight.clone());
        self.metrics
            .inits_in_flight_max
            .inner()
            .fetch_max(now, Ordering::AcqRel);
        let t = Instant::now();
        // Only a cold start needs the whole spec (a warm call must not pay for it).
        let mut spec = target.spec(
            &self.layout.code_dir(&target.deployed.code.sha256_hex),
            &self.region,
        );
        let minted = Instant::now();
        spec.credentials = Some(self.credentials.mint(
            &target.account,
            target.name.as_str(),
            &target.deployed.config.role,
            std::time::SystemTime::now(),
        ));
        let s = backend.start(&spec).await.map_err(|e| {
            tracing::error!(function = %target.name, error = %e, "starting a sandbox failed");
            LambdaError::Service(format!("The function's sandbox could not start: {e}"))
        })?;
        let s: Arc<dyn Sandbox> = Arc::new(Expiring {
            not_after: minted + usable_for(self.credentials.ttl(), spec.timeout),
            inner: s,
        });
        // A start that hit the init timeout ends a little after it: report the limit.
        Ok((s, Some(t.elapsed().min(self.init_timeout))))
    }
}

#[async_trait]
impl Warmer for Sandboxes {
    async fn warm(&self, target: &Runnable) -> Result<WarmUp, Reason> {
        if self.backend(target).is_err() {
            // Nothing here can run it; calls will say so.
            return Ok(WarmUp::Warm);
        }
        let (sandbox, init) = self.start(target, None).await.map_err(|e| Reason {
            message: format!("The function's new code could not start: {}", e.message()),
            code: "InternalError".into(),
        })?;
        if sandbox.init_failure().is_some() {
            return Ok(WarmUp::InitFailed(
                failed_init(sandbox.as_ref(), init).await,
            ));
        }
        let labels = FunctionLabels {
            account: target.account.as_str().to_owned(),
            function: target.name.as_str().to_owned(),
        };
        self.metrics.cold_starts.get_or_create(&labels).inc();
        self.metrics
            .init_duration_seconds
            .get_or_create(&labels)
            .observe(init.unwrap_or_default().as_secs_f64());
        self.pools.put_warm(&Router::place(target), sandbox);
        Ok(WarmUp::Warm)
    }
}

/// A sandbox whose Init failed answers its one call with the Init's error and output without
/// running anything: that call takes them, for the function's logs. The sandbox goes.
async fn failed_init(sandbox: &dyn Sandbox, init: Option<Duration>) -> FailedInit {
    let request_id = crate::record::new_request_id();
    let input = InvokeInput {
        request_id,
        payload: bytes::Bytes::from_static(b"{}"),
        deadline: tokio::time::Instant::now() + Duration::from_secs(1),
        deadline_unix_ms: 0,
        trace_id: String::new(),
        client_context: None,
        invoked_function_arn: None,
        host: None,
    };
    let (error, log, log_stream) = match sandbox.invoke(input).await {
        Ok(Execution {
            outcome: Outcome::Error(e),
            log,
            log_stream,
            ..
        }) => (e, log, log_stream),
        _ => {
            let failure = sandbox.init_failure().unwrap_or_default();
            let (kind, message) = failure
                .split_once(": ")
                .unwrap_or(("Runtime.Unknown", &failure));
            (
                FunctionError::new(kind, message),
                bytes::Bytes::new(),
                String::new(),
            )
        }
    };
    sandbox.retire();
    FailedInit {
        error,
        log,
        log_stream,
        init: init.unwrap_or_default(),
    }
}

/// How long after its credentials were minted a sandbox may still take a call: until a call
/// that runs for the whole `timeout` would end a margin before they expire (a tenth of their
/// life, at most a minute). Credentials shorter than that allow one call per sandbox.
fn usable_for(ttl: Duration, timeout: Duration) -> Duration {
    let margin = (ttl / 10).min(Duration::from_secs(60));
    ttl.saturating_sub(timeout).saturating_sub(margin)
}

/// A sandbox that stops being reusable before its credentials expire.
struct Expiring {
    inner: Arc<dyn Sandbox>,
    not_after: Instant,
}

#[async_trait]
impl Sandbox for Expiring {
    async fn invoke(&self, input: InvokeInput) -> Result<Execution, stoke_sandbox::SandboxError> {
        self.inner.invoke(input).await
    }

    fn reusable(&self) -> bool {
        Instant::now() < self.not_after && self.inner.reusable()
    }

    fn retire(&self) {
        self.inner.retire();
    }

    fn init_failure(&self) -> Option<String> {
        self.inner.init_failure()
    }

    fn runtime_version(&self) -> Option<stoke_sandbox::RuntimeVersion> {
        self.inner.runtime_version()
    }
}

/// Decrements a gauge when dropped (the call's end, however it ends).
pub(super) struct GaugeGuard(pub(super) prometheus_client::metrics::gauge::Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_takes_calls_only_while_they_end_before_its_credentials() {
        let s = Duration::from_secs;
        // An hour's credentials and a 15-minute timeout: 44 minutes of calls.
        assert_eq!(usable_for(s(3600), s(900)), s(3600 - 900 - 60));
        // Ten seconds and a 2-second timeout: a tenth of the life as the margin.
        assert_eq!(usable_for(s(10), s(2)), s(7));
        // Credentials shorter than the timeout: no second call.
        assert_eq!(usable_for(s(5), s(900)), Duration::ZERO);
    }
}
