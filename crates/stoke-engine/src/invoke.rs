//! Synchronous invocation: resolve, admit, place, run, record.
//!
//! ```text
//! resolve the function ($LATEST) ─► Active? ─► admit (account, function concurrency; 429 if
//! over) ─► an idle sandbox of this generation (warm) or a new one (cold: wait for a turn
//! among the inits in flight, then start, timed as Init Duration) ─► run with the deadline ─►
//! give the sandbox back (not after a timeout) ─► START/END/REPORT lines (long lines split
//! into 256 KB events), record and metrics to the recorder
//! ```
//!
//! Resolving is [`crate::route`]'s; starting sandboxes (and the fair turn of cold starts)
//! [`sandboxes`]'. The call's own timeout starts when it is handed to the sandbox, as Lambda
//! separates its init phase (10 s) from the invoke phase (the function's timeout).
//!
//! A guest that invokes another function (the `stoke.invoke` import) comes back here through
//! [`GuestHost`], one level deeper; past [`InvokerConfig::max_depth`] the call is refused, so a
//! function that calls itself cannot grow without bound.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use stoke_core::{AccountId, LambdaError, Outcome};
use stoke_sandbox::{InvokeInput, Sandbox};
use stoke_store::{InvocationRecord, LogEvent};

use crate::ControlPlane;
use crate::metrics::{CallOutcome, FunctionLabels, Metrics};
use crate::pool::Share;
use crate::record::{self, CallRecord, Recorder, Report};
use crate::route::{Route, Router};
use crate::slots::{ClusterSlots, SlotGuard};
use crate::target::Runnable;

mod host;
pub mod sandboxes;

use host::GuestHost;
use sandboxes::GaugeGuard;
pub use sandboxes::Sandboxes;

/// Limits of the invoker.
#[derive(Debug, Clone, Copy)]
pub struct InvokerConfig {
    /// Calls running at once in the whole server.
    pub account_concurrency: u32,
    /// Calls running at once of one account's functions, for accounts the admin gave no limit
    /// of their own (Lambda's account concurrency); `None`: the server's.
    pub default_account_concurrency: Option<u32>,
    /// Calls of one function at once.
    pub function_concurrency: u32,
    /// How deep functions may invoke functions.
    pub max_depth: u32,
    /// How often idle sandboxes are looked at.
    pub reap_every: Duration,
    /// Sandbox starts (inits) that may run at once; more wait their turn in arrival order.
    pub init_concurrency: u32,
    /// The longest Init (the process backend's limit): a reported Init Duration never exceeds
    /// it.
    pub init_timeout: Duration,
}

/// The default bound on inits at once: the cores this process may use.
pub fn default_init_concurrency() -> u32 {
    std::thread::available_parallelism()
        .map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .max(1)
}

impl Default for InvokerConfig {
    fn default() -> Self {
        Self {
            account_concurrency: 256,
            default_account_concurrency: None,
            function_concurrency: 256,
            max_depth: 16,
            reap_every: Duration::from_secs(1),
            init_concurrency: default_init_concurrency(),
            init_timeout: Duration::from_secs(10),
        }
    }
}

/// One synchronous call, as the API decoded it.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    /// The name or ARN, as sent.
    pub function: String,
    pub qualifier: Option<String>,
    pub payload: Bytes,
    pub log_tail: bool,
    pub client_context: Option<String>,
    pub trace_id: Option<String>,
    /// How many functions deep this call is (0 from outside).
    pub depth: u32,
    /// The call's request id when the caller chose it (an async event's, answered in its
    /// 202); a new one otherwise.
    pub request_id: Option<String>,
    /// Hand the call's log lines and record back in [`InvokeResponse::record`] instead of
    /// queueing them for the log writer (the async workers store them in the same commit as
    /// the event's end).
    pub return_record: bool,
}

/// The answer to a call.
#[derive(Debug, Clone)]
pub struct InvokeResponse {
    pub request_id: String,
    pub executed_version: String,
    pub outcome: Outcome,
    /// `X-Amz-Log-Result` when the caller asked for the tail.
    pub log_tail: Option<String>,
    /// The log lines and record, when the request asked for them back.
    pub record: Option<CallRecord>,
    /// Whether the call found a warm sandbox (no Init).
    pub warm: bool,
}

/// Runs calls.
pub struct Invoker {
    /// Where calls go.
    router: Router,
    /// What runs them.
    sandboxes: Arc<Sandboxes>,
    config: InvokerConfig,
    metrics: Arc<Metrics>,
    /// Where calls' log lines and records go.
    recorder: Recorder,
    /// For the guests' host calls, which come back here.
    me: Weak<Invoker>,
    /// The store's concurrency slots, when several nodes share the limits.
    cluster: std::sync::OnceLock<Arc<ClusterSlots>>,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn new_trace_id() -> String {
    // The thread's generator, not a getrandom syscall per call.
    let (root, parent): (u128, u64) = rand::random();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "Root=1-{secs:08x}-{:024x};Parent={parent:016x};Sampled=0",
        root >> 32
    )
}

impl Invoker {
    /// Runs calls that `router` resolves on `sandboxes` (the same the control plane warms).
    pub fn new(
        router: Router,
        sandboxes: Arc<Sandboxes>,
        config: InvokerConfig,
        metrics: Arc<Metrics>,
        recorder: Recorder,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            router,
            sandboxes,
            config,
            metrics,
            recorder,
            me: me.clone(),
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// This node's warm sandboxes and calls running, for its heartbeat.
    pub fn usage(&self) -> (u32, u32) {
        self.sandboxes.usage()
    }

    /// Makes every call also hold a slot of its limits in the store (several nodes share
    /// them); set once, at start.
    pub fn set_cluster_slots(&self, slots: Arc<ClusterSlots>) {
        let _ = self.cluster.set(slots);
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn control(&self) -> &Arc<ControlPlane> {
        self.router.control()
    }

    /// What a call names, if it can be invoked now (also DryRun's check). An alias chooses
    /// one of its versions by weight.
    pub async fn resolve(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<Runnable, LambdaError> {
        Ok(self
            .router
            .route(account, function, qualifier)
            .await?
            .target)
    }

    /// Admits a call by `account` of `target` into `pool`, or answers Lambda's 429: within the
    /// function's reservation if it has one, else within the server's limit per function and
    /// the owner's unreserved concurrency (its limit less its reservations); and within the
    /// caller's unreserved concurrency when another account calls.
    async fn admit(
        &self,
        account: &AccountId,
        pool: &crate::pool::PoolKey,
        target: &Runnable,
    ) -> Result<(crate::pool::Lease, Vec<SlotGuard>), LambdaError> {
        let share = match target.reserved_concurrency {
            Some(r) => Share::Reserved(r.min(self.config.function_concurrency)),
            None => Share::Unreserved {
                function: self.config.function_concurrency,
                account: self.unreserved(&target.account).await?,
            },
        };
        let caller = if account == &target.account {
            None
        } else {
            Some((account.as_str(), self.unreserved(account).await?))
        };
        let pools = &self.sandboxes.pools;
        let throttled = |t: crate::pool::Throttle| {
            let labels = FunctionLabels {
                account: pool.account.clone(),
                function: pool.function_name.clone(),
            };
            self.metrics.throttles.get_or_create(&labels).inc();
            LambdaError::TooManyRequests {
                reason: t.reason().to_owned(),
                message: "Rate Exceeded.".to_owned(),
            }
        };
        let lease = pools.admit_as(pool, share, caller).map_err(throttled)?;
        let Some(cluster) = self.cluster.get() else {
            return Ok((lease, Vec::new()));
        };
        // The same limits over every node: a slot of each in the store.
        let mut scopes = vec![match share {
            Share::Reserved(n) => (
                ClusterSlots::reserved_scope(&pool.account, &pool.function_name),
                n,
                crate::pool::Throttle::Function,
            ),
            Share::Unreserved { account, .. } => (
                ClusterSlots::unreserved_scope(&pool.account),
                account,
                crate::pool::Throttle::Account,
            ),
        }];
        if let Some((caller, limit)) = caller {
            scopes.push((
                ClusterSlots::unreserved_scope(caller),
                limit,
                crate::pool::Throttle::Account,
            ));
        }
        let mut held = Vec::with_capacity(scopes.len());
        for (scope, cap, throttle) in scopes {
            match cluster.acquire(scope, cap).await {
                Ok(Some(g)) => held.push(g),
                Ok(None) => return Err(throttled(throttle)),
                Err(e) => {
                    tracing::error!(error = %e, "the cluster's concurrency slots cannot be read");
                    return Err(LambdaError::Service(
                        "The cluster's concurrency limits cannot be checked now.".into(),
                    ));
                }
            }
        }
        Ok((lease, held))
    }

    /// `account`'s unreserved concurrency: its limit less its functions' reservations
    /// (GetAccountSettings' `UnreservedConcurrentExecutions`).
    async fn unreserved(&self, account: &AccountId) -> Result<u32, LambdaError> {
        let control = self.control();
        let reserved = control
            .reserved_concurrency_total(account, None)
            .await
            .map_err(LambdaError::from)?;
        let limit = i64::from(control.account_concurrency(account));
        Ok(u32::try_from(limit.saturating_sub(reserved).max(0)).unwrap_or(0))
    }

    /// Where a call by `caller` of `function` (with `qualifier`) goes (see [`Router::route`]).
    pub async fn route(
        &self,
        caller: &AccountId,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<Route, LambdaError> {
        self.router.route(caller, function, qualifier).await
    }

    /// The route of a call another node resolved (see [`Router::route_forwarded`]).
    pub async fn route_forwarded(
        &self,
        owner: &AccountId,
        function: &str,
        version: &str,
        qualifier: Option<&str>,
    ) -> Result<Route, LambdaError> {
        self.router
            .route_forwarded(owner, function, version, qualifier)
            .await
    }

    /// Whether `pool` has an idle sandbox on this node now.
    pub fn idle_here(&self, pool: &crate::pool::PoolKey) -> bool {
        self.sandboxes.pools.idle_of(pool) > 0
    }

    /// Runs one call synchronously for `caller`: of its own function, or of another account's
    /// that the owner's policy lets it call. The call runs, logs and is recorded as the
    /// owner's ([`Runnable::account`]); the record names the caller too.
    pub async fn invoke(
        &self,
        caller: &AccountId,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, LambdaError> {
        let route = self
            .router
            .route(caller, &req.function, req.qualifier.as_deref())
            .await?;
        self.invoke_routed(caller, route, req).await
    }

    /// Runs one call of an already resolved `route` on this node (`req`'s function and
    /// qualifier are not looked at again).
    pub async fn invoke_routed(
        &self,
        caller: &AccountId,
        route: Route,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, LambdaError> {
        let target = route.target;
        let account = &target.account;
        let config = &target.deployed.config;
        let version = target.version.clone();
        let (lease, _slots) = self.admit(caller, &route.pool, &target).await?;
        let request_id = req
            .request_id
            .clone()
            .unwrap_or_else(record::new_request_id);
        let started_ms = record::now_ms();
        let started = Instant::now();
        let timeout = Duration::from_secs(u64::from(config.timeout));
        let fm = &lease.pool.metrics;
        let concurrent = fm.concurrent_executions(&self.metrics).clone();
        concurrent.inc();
        let _running = GaugeGuard(concurrent);

        let (sandbox, init): (Arc<dyn Sandbox>, Option<Duration>) = match lease.pool.take_idle() {
            Some(s) => (s, None),
            None => {
                let (s, init) = self.sandboxes.start(&target, Some(&*lease.pool)).await?;
                if let Some(init) = init {
                    fm.cold_starts(&self.metrics).inc();
                    fm.init_duration_seconds(&self.metrics)
                        .observe(init.as_secs_f64());
                }
                (s, init)
            }
        };

        // Lambda's first line of a cold start on a managed runtime names its version.
        let init_start = init
            .and_then(|_| sandbox.runtime_version())
            .map(|v| v.init_start_line(self.control().region()));
        let trace_id = req.trace_id.clone().unwrap_or_else(new_trace_id);
        let run_start = Instant::now();
        let input = InvokeInput {
            request_id: request_id.clone(),
            payload: req.payload.clone(),
            deadline: tokio::time::Instant::now() + timeout,
            deadline_unix_ms: u64::try_from(record::now_ms()).unwrap_or(0)
                + u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            trace_id: trace_id.clone(),
            client_context: req.client_context.clone(),
            invoked_function_arn: target.qualifier.as_ref().map(|q| {
                format!(
                    "{}:{q}",
                    stoke_core::ids::function_arn(
                        self.control().region(),
                        account,
                        target.name.as_str()
                    )
                )
            }),
            host: Some(Arc::new(GuestHost {
                invoker: self.me.clone(),
                account: account.clone(),
                depth: req.depth,
                trace_id,
            })),
        };
        let execution = sandbox.invoke(input).await.map_err(|e| {
            tracing::error!(function = %target.name, error = %e, "a sandbox failed");
            LambdaError::Service(format!("The function's sandbox failed: {e}"))
        })?;
        let duration = run_start.elapsed();

        let (outcome, status) = match &execution.outcome {
            Outcome::Success(_) => (CallOutcome::Success, None),
            Outcome::Error(e) if e.is_timeout() => (CallOutcome::Timeout, Some("timeout")),
            Outcome::Error(_) => (CallOutcome::Error, None),
        };
        // A timed-out (or crashed) environment is not reused: the next call starts afresh, as
        // on Lambda.
        if status.is_none() && sandbox.reusable() {
            lease.pool.put_idle(sandbox);
        }
        fm.invocations(&self.metrics, outcome).inc();
        if outcome != CallOutcome::Success {
            fm.errors(&self.metrics).inc();
        }
        fm.duration_seconds(&self.metrics)
            .observe(duration.as_secs_f64());
        let function_name = fm.labels().function.clone();
        drop(lease);

        let report = Report {
            request_id: request_id.clone(),
            version: version.clone(),
            duration,
            init,
            memory_size_mb: config.memory_size,
            max_memory_mb: u32::try_from(execution.max_memory_bytes.div_ceil(1024 * 1024))
                .unwrap_or(u32::MAX),
            status,
        };
        let mut lines = Vec::with_capacity(8);
        lines.extend(init_start);
        // A line longer than a log event becomes several events, as on Lambda.
        let add_log = |lines: &mut Vec<String>, log: &[u8]| {
            let log = String::from_utf8_lossy(log);
            lines.extend(log.lines().flat_map(record::split_line).map(str::to_owned));
        };
        // What the runtime wrote during its Init comes before START, as on Lambda.
        add_log(&mut lines, &execution.init_log);
        lines.push(report.start_line());
        add_log(&mut lines, &execution.log);
        if execution.log_truncated {
            lines.push(format!(
                "[stoke] the function's log was cut at {} bytes",
                execution.log.len()
            ));
        }
        if let Outcome::Error(e) = &execution.outcome
            && e.is_timeout()
        {
            lines.push(format!(
                "{} {} Task timed out after {:.2} seconds",
                stoke_core::timefmt::lambda_timestamp(time::OffsetDateTime::now_utc()),
                request_id,
                timeout.as_secs_f64()
            ));
        }
        lines.push(report.end_line());
        lines.push(report.report_line());
        let log_tail = req.log_tail.then(|| record::log_tail(&lines));

        let ended_ms = record::now_ms();
        let stream = execution.log_stream.clone();
        let events = lines
            .into_iter()
            .enumerate()
            .map(|(i, message)| LogEvent {
                id: 0,
                account: account.clone(),
                function_name: function_name.clone(),
                log_stream: stream.clone(),
                timestamp_ms: if i == 0 { started_ms } else { ended_ms },
                request_id: request_id.clone(),
                message,
            })
            .collect();
        let error_type = match &execution.outcome {
            Outcome::Error(e) => Some(e.error_type.clone()),
            Outcome::Success(_) => None,
        };
        let call = CallRecord {
            logs: events,
            record: InvocationRecord {
                request_id: request_id.clone(),
                account: account.clone(),
                caller_account: caller.clone(),
                function_name: function_name.clone(),
                version: version.clone(),
                started_ms,
                cold: init.is_some(),
                init_ms: init.map(|d| d.as_secs_f64() * 1000.0),
                duration_ms: duration.as_secs_f64() * 1000.0,
                billed_ms: i64::try_from(report.billed_ms()).unwrap_or(i64::MAX),
                memory_size_mb: report.memory_size_mb,
                max_memory_mb: report.max_memory_mb,
                outcome: outcome.label().to_owned(),
                error_type,
            },
        };
        let record = if req.return_record {
            Some(call)
        } else {
            self.recorder.record(call);
            None
        };
        tracing::debug!(
            request_id,
            cold = init.is_some(),
            total_us = started.elapsed().as_micros() as u64,
            "invoked"
        );
        Ok(InvokeResponse {
            request_id,
            executed_version: version,
            outcome: execution.outcome,
            log_tail,
            record,
            warm: init.is_none(),
        })
    }
}
