//! The warm pool: idle sandboxes per function version, admission, and keep-alive.
//!
//! A call takes an idle sandbox of its function version (warm) or starts one (cold), runs,
//! and gives it back. Admission happens first and never waits: a call over the account's or
//! the function's concurrency is throttled at once (429), so an overload never becomes a queue
//! of hung requests. How long an idle sandbox stays warm is a [`KeepAlivePolicy`]'s decision;
//! the reaper asks it on every pass. Predictive policies plug in here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stoke_sandbox::Sandbox;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::{FunctionLabels, FunctionMetrics};

/// Identifies the sandboxes that may serve a call: one function version as configured now.
/// A new generation (an update of code or configuration) gets new sandboxes.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct PoolKey {
    pub account: String,
    pub function_name: String,
    pub version: String,
    pub generation: u64,
}

impl PoolKey {
    fn same_function(&self, other: &PoolKey) -> bool {
        self.account == other.account
            && self.function_name == other.function_name
            && self.version == other.version
    }
}

/// Decides how long idle sandboxes stay warm.
pub trait KeepAlivePolicy: Send + Sync + 'static {
    /// How long an idle sandbox of `key` is kept after its last call.
    fn keep_alive(&self, key: &PoolKey) -> Duration;
}

/// The same keep-alive for every function.
#[derive(Debug, Clone, Copy)]
pub struct FixedKeepAlive(pub Duration);

impl KeepAlivePolicy for FixedKeepAlive {
    fn keep_alive(&self, _key: &PoolKey) -> Duration {
        self.0
    }
}

struct Idle {
    sandbox: Arc<dyn Sandbox>,
    since: Instant,
}

/// The sandboxes of one function version.
pub struct FunctionPool {
    pub key: PoolKey,
    /// Idle sandboxes, most recently used last (taken first: the warmest).
    idle: Mutex<Vec<Idle>>,
    /// Calls running now in this pool.
    in_flight: AtomicU32,
    /// Calls running now in every pool of the function (all versions and generations): what
    /// the function's concurrency limit counts.
    function_in_flight: Arc<AtomicU32>,
    /// Whether a call was ever admitted here (a pool warmed by a deploy has had none until
    /// calls move to it, and does not supersede the generation still serving them).
    called: AtomicBool,
    /// When a call last finished or started.
    last_used: Mutex<Instant>,
    /// The function's metric handles, looked up once per pool rather than per call.
    pub metrics: FunctionMetrics,
}

impl std::fmt::Debug for FunctionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionPool")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl FunctionPool {
    fn new(key: PoolKey, function_in_flight: Arc<AtomicU32>) -> Self {
        Self {
            metrics: FunctionMetrics::new(FunctionLabels {
                account: key.account.clone(),
                function: key.function_name.clone(),
            }),
            key,
            idle: Mutex::new(Vec::new()),
            in_flight: AtomicU32::new(0),
            function_in_flight,
            called: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
        }
    }

    /// An idle sandbox, if one is warm.
    pub fn take_idle(&self) -> Option<Arc<dyn Sandbox>> {
        self.idle.lock().ok()?.pop().map(|i| i.sandbox)
    }

    /// Gives a sandbox back after a call.
    pub fn put_idle(&self, sandbox: Arc<dyn Sandbox>) {
        let now = Instant::now();
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(Idle {
                sandbox,
                since: now,
            });
        }
        if let Ok(mut l) = self.last_used.lock() {
            *l = now;
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|i| i.len()).unwrap_or(0)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }
}

/// Why a call was refused admission (Lambda's `Reason` of a 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// The account (server) limit.
    Account,
    /// The function's own limit.
    Function,
}

impl Throttle {
    pub fn reason(self) -> &'static str {
        match self {
            Throttle::Account => "ConcurrentInvocationLimitExceeded",
            Throttle::Function => "ReservedFunctionConcurrentInvocationLimitExceeded",
        }
    }
}

/// A call's admission: holds its share of the account's and the function's concurrency.
pub struct Lease {
    pub pool: Arc<FunctionPool>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.pool.function_in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Ok(mut l) = self.pool.last_used.lock() {
            *l = Instant::now();
        }
    }
}

/// Every function's pool, and the account-wide concurrency.
pub struct Pools {
    pools: Mutex<HashMap<PoolKey, Arc<FunctionPool>>>,
    /// Calls running per (account, function), shared by that function's pools.
    functions: Mutex<HashMap<(String, String), Arc<AtomicU32>>>,
    account: Arc<Semaphore>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools").finish_non_exhaustive()
    }
}

impl Pools {
    pub fn new(account_concurrency: u32) -> Self {
        Self {
            pools: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            account: Arc::new(Semaphore::new(account_concurrency as usize)),
        }
    }

    /// `key`'s pool, made on first use.
    fn pool(&self, key: &PoolKey) -> Option<Arc<FunctionPool>> {
        let mut pools = self.pools.lock().ok()?;
        if let Some(p) = pools.get(key) {
            return Some(Arc::clone(p));
        }
        let counter = {
            let mut functions = self.functions.lock().ok()?;
            Arc::clone(
                functions
                    .entry((key.account.clone(), key.function_name.clone()))
                    .or_default(),
            )
        };
        let pool = Arc::new(FunctionPool::new(key.clone(), counter));
        pools.insert(key.clone(), Arc::clone(&pool));
        Some(pool)
    }

    /// Admits a call to `key`'s pool, within `function_limit` calls of that function at once
    /// (counted over all its versions and generations, as Lambda counts a function's reserved
    /// concurrency).
    pub fn admit(&self, key: &PoolKey, function_limit: u32) -> Result<Lease, Throttle> {
        let permit = Arc::clone(&self.account)
            .try_acquire_owned()
            .map_err(|_| Throttle::Account)?;
        let pool = self.pool(key).ok_or(Throttle::Account)?;
        let admitted = pool
            .function_in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < function_limit).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            return Err(Throttle::Function);
        }
        pool.in_flight.fetch_add(1, Ordering::AcqRel);
        pool.called.store(true, Ordering::Release);
        Ok(Lease {
            pool,
            _permit: permit,
        })
    }

    /// Adds a sandbox started ahead of calls (a deploy's warm-up) to `key`'s idle set.
    pub fn put_warm(&self, key: &PoolKey, sandbox: Arc<dyn Sandbox>) {
        if let Some(pool) = self.pool(key) {
            pool.put_idle(sandbox);
        }
    }

    /// Drops idle sandboxes past their keep-alive, those of generations an update replaced,
    /// and pools with nothing left in them. Answers how many sandboxes went.
    pub fn reap(&self, policy: &dyn KeepAlivePolicy, now: Instant) -> usize {
        let Ok(mut pools) = self.pools.lock() else {
            return 0;
        };
        // A generation is superseded once calls have reached a newer one (not merely once a
        // deploy has warmed one: calls go on to the old one until the switch).
        let newest: Vec<PoolKey> = pools
            .iter()
            .filter(|(_, p)| p.called.load(Ordering::Acquire))
            .map(|(k, _)| k.clone())
            .collect();
        let superseded = |k: &PoolKey| {
            newest
                .iter()
                .any(|n| n.same_function(k) && n.generation > k.generation)
        };
        let mut gone = 0;
        pools.retain(|key, pool| {
            let keep_alive = if superseded(key) {
                Duration::ZERO
            } else {
                policy.keep_alive(key)
            };
            if let Ok(mut idle) = pool.idle.lock() {
                let before = idle.len();
                idle.retain(|i| now.saturating_duration_since(i.since) < keep_alive);
                gone += before - idle.len();
            }
            let last = pool.last_used.lock().map(|l| *l).unwrap_or(now);
            pool.in_flight() > 0
                || pool.idle_count() > 0
                || (now.saturating_duration_since(last) < keep_alive)
        });
        gone
    }

    /// Idle sandboxes of every pool (for tests and metrics).
    pub fn idle_total(&self) -> usize {
        self.pools
            .lock()
            .map(|p| p.values().map(|p| p.idle_count()).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use stoke_sandbox::{Execution, InvokeInput, SandboxError};

    use super::*;

    struct Nothing;

    #[async_trait]
    impl Sandbox for Nothing {
        async fn invoke(&self, _input: InvokeInput) -> Result<Execution, SandboxError> {
            Err(SandboxError::Internal("not for running".into()))
        }
    }

    fn key(generation: u64) -> PoolKey {
        PoolKey {
            account: "123456789012".into(),
            function_name: "f".into(),
            version: "$LATEST".into(),
            generation,
        }
    }

    #[test]
    fn admission_throttles_past_the_function_and_the_account_limit() {
        let pools = Pools::new(3);
        let a = pools.admit(&key(1), 2).unwrap();
        let _b = pools.admit(&key(1), 2).unwrap();
        assert_eq!(pools.admit(&key(1), 2).err(), Some(Throttle::Function));
        drop(a);
        let _c = pools.admit(&key(1), 2).unwrap();
        let _d = pools.admit(&key(2), 5).unwrap();
        assert_eq!(pools.admit(&key(3), 5).err(), Some(Throttle::Account));
    }

    #[test]
    fn a_functions_limit_counts_all_its_versions_and_generations() {
        let pools = Pools::new(10);
        let v1 = PoolKey {
            version: "1".into(),
            ..key(1)
        };
        let _a = pools.admit(&key(1), 2).unwrap();
        let b = pools.admit(&v1, 2).unwrap();
        assert_eq!(pools.admit(&key(2), 2).err(), Some(Throttle::Function));
        assert_eq!(pools.admit(&v1, 2).err(), Some(Throttle::Function));
        let other = PoolKey {
            function_name: "g".into(),
            ..key(1)
        };
        assert!(
            pools.admit(&other, 2).is_ok(),
            "another function has its own count"
        );
        drop(b);
        assert!(pools.admit(&v1, 2).is_ok());
    }

    #[test]
    fn idle_sandboxes_go_after_their_keep_alive_and_when_superseded() {
        let pools = Pools::new(10);
        let lease = pools.admit(&key(1), 10).unwrap();
        lease.pool.put_idle(Arc::new(Nothing));
        drop(lease);
        let policy = FixedKeepAlive(Duration::from_secs(60));
        assert_eq!(pools.reap(&policy, Instant::now()), 0);
        assert_eq!(pools.idle_total(), 1);
        assert_eq!(
            pools.reap(&policy, Instant::now() + Duration::from_secs(61)),
            1
        );
        assert_eq!(pools.idle_total(), 0);

        let old = pools.admit(&key(2), 10).unwrap();
        old.pool.put_idle(Arc::new(Nothing));
        drop(old);
        // A deploy warms generation 3: generation 2 keeps its sandboxes until calls move.
        pools.put_warm(&key(3), Arc::new(Nothing));
        assert_eq!(
            pools.reap(&policy, Instant::now()),
            0,
            "calls still go to 2"
        );
        let _new = pools.admit(&key(3), 10).unwrap();
        assert_eq!(
            pools.reap(&policy, Instant::now()),
            1,
            "generation 2 was replaced by 3"
        );
    }
}
