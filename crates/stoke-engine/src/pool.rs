//! The warm pool: idle sandboxes per function version, admission, and keep-alive.
//!
//! A call takes an idle sandbox of its function version (warm) or starts one (cold), runs,
//! and gives it back. Admission happens first and never waits: a call over its account's
//! concurrency, the function's, or the server's is throttled at once (429), so an overload
//! never becomes a queue of hung requests. Each account is counted apart, as Lambda counts it
//! ([`Share`]): a function with reserved concurrency draws on its reservation alone (it can
//! always run that many at once, whatever the account's other functions do), and the others
//! share what is left unreserved of the account's limit. When another account calls, the call
//! also takes one of the caller's own unreserved concurrency ([`Pools::admit_as`]), so an
//! account that exhausts its own limit leaves the others' untouched and a caller can never
//! hold more of an owner's concurrency than its own limit. How long an idle sandbox stays warm is a [`KeepAlivePolicy`]'s decision;
//! the reaper asks it on every pass. Predictive policies plug in here. An idle sandbox that is
//! no longer [`Sandbox::reusable`] (its credentials are about to expire) is never handed out:
//! taking or reaping lets it go.
//!
//! # Never a teardown under a lock
//! Ending a sandbox can block (a process sandbox kills its tree and waits, briefly, for it to
//! be gone). No sandbox is ever dropped while the pools' or a pool's lock is held: the reaper
//! takes what goes out of the idle sets under the locks and hands it to the [`Disposal`]
//! thread, which drops it afterwards; admissions and placements on every pool go on meanwhile.
//! A pool dropped with sandboxes still idle in it (a race with the reaper, shutdown) hands them
//! over the same way, and dropping [`Pools`] waits (bounded) for the disposals to end, so that
//! every sandbox has gone with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
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

/// How long dropping [`Pools`] waits for the sandboxes being disposed of.
const DISPOSAL_WAIT: Duration = Duration::from_secs(10);

enum Disposed {
    /// Sandboxes to drop.
    Drop(Vec<Arc<dyn Sandbox>>),
    /// Answered once everything sent before it has been dropped.
    Flush(mpsc::Sender<()>),
}

/// Drops sandboxes on a thread of its own, never under a pool's lock (see the module's
/// documentation). Clones share the thread, which ends when the last clone goes.
#[derive(Clone)]
struct Disposal {
    tx: mpsc::Sender<Disposed>,
}

impl std::fmt::Debug for Disposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disposal").finish_non_exhaustive()
    }
}

impl Disposal {
    fn start() -> Self {
        let (tx, rx) = mpsc::channel::<Disposed>();
        let spawned = std::thread::Builder::new()
            .name("stoke-sandbox-disposal".into())
            .spawn(move || {
                while let Ok(m) = rx.recv() {
                    match m {
                        Disposed::Drop(batch) => {
                            // Each sandbox starts its own teardown first, so that their waits
                            // overlap instead of adding up.
                            for s in &batch {
                                s.retire();
                            }
                            drop(batch);
                        }
                        Disposed::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            // The sends below then fail and the sandboxes are dropped where they are.
            tracing::error!(error = %e, "no thread could be started to end sandboxes");
        }
        Self { tx }
    }

    /// Hands sandboxes over to be dropped; call with no lock held (a send that fails drops
    /// them here).
    fn dispose(&self, batch: Vec<Arc<dyn Sandbox>>) {
        if !batch.is_empty() {
            let _ = self.tx.send(Disposed::Drop(batch));
        }
    }

    /// Waits, at most `within`, until everything handed over so far has been dropped.
    fn flush(&self, within: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        self.tx.send(Disposed::Flush(done)).is_ok() && wait.recv_timeout(within).is_ok()
    }
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
    /// Calls running now of the account's unreserved functions (and of the functions of
    /// others it calls): what its unreserved concurrency counts.
    account_in_flight: Arc<AtomicU32>,
    /// Whether a call was ever admitted here (a pool warmed by a deploy has had none until
    /// calls move to it, and does not supersede the generation still serving them).
    called: AtomicBool,
    /// When a call last finished or started.
    last_used: Mutex<Instant>,
    /// Where sandboxes go that leave the idle set.
    disposal: Disposal,
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
    fn new(
        key: PoolKey,
        function_in_flight: Arc<AtomicU32>,
        account_in_flight: Arc<AtomicU32>,
        disposal: Disposal,
    ) -> Self {
        Self {
            metrics: FunctionMetrics::new(FunctionLabels {
                account: key.account.clone(),
                function: key.function_name.clone(),
            }),
            key,
            idle: Mutex::new(Vec::new()),
            in_flight: AtomicU32::new(0),
            function_in_flight,
            account_in_flight,
            called: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
            disposal,
        }
    }

    /// Takes the idle sandboxes past `keep_alive` out of the idle set (to be dropped by the
    /// caller once it holds no lock).
    fn expire(&self, keep_alive: Duration, now: Instant, out: &mut Vec<Arc<dyn Sandbox>>) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let (gone, kept): (Vec<Idle>, Vec<Idle>) =
            std::mem::take(&mut *idle).into_iter().partition(|i| {
                now.saturating_duration_since(i.since) >= keep_alive || !i.sandbox.reusable()
            });
        *idle = kept;
        out.extend(gone.into_iter().map(|i| i.sandbox));
    }

    /// Takes every idle sandbox out of the idle set.
    fn take_all(&self) -> Vec<Arc<dyn Sandbox>> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *idle)
            .into_iter()
            .map(|i| i.sandbox)
            .collect()
    }

    /// An idle sandbox, if one is warm and may still serve (one that may not, such as one
    /// whose credentials are about to expire, goes to the disposal).
    pub fn take_idle(&self) -> Option<Arc<dyn Sandbox>> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().ok()?;
            loop {
                match idle.pop() {
                    Some(i) if !i.sandbox.reusable() => stale.push(i.sandbox),
                    other => break other.map(|i| i.sandbox),
                }
            }
        };
        self.disposal.dispose(stale);
        found
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

impl Drop for FunctionPool {
    fn drop(&mut self) {
        // A pool that goes with sandboxes still idle in it (put back after the reaper let the
        // pool go; shutdown): they go to the disposal too.
        self.disposal.dispose(self.take_all());
    }
}

/// Why a call was refused admission (Lambda's `Reason` of a 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// The account's unreserved concurrency, the caller's, or the server's.
    Account,
    /// The function's reservation, or the server's limit per function.
    Function,
}

/// What concurrency a call of a function draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// The function's reserved concurrency: its own calls, at most this many at once (counted
    /// over all its versions and generations), and nothing of the account's unreserved.
    Reserved(u32),
    /// No reservation: at most `function` calls of the function at once, and one of the
    /// `account` calls its account's unreserved functions may run at once (the account's limit
    /// less its reservations).
    Unreserved { function: u32, account: u32 },
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
    /// One of the owner's unreserved concurrency, unless the function's reservation admitted
    /// the call (what the call took is given back, whatever the reservation is by then).
    _account: Option<Held>,
    /// The caller's share, when another account than the owner calls.
    _caller: Option<Held>,
}

/// One call counted on an account's counter, given back when dropped.
struct Held(Arc<AtomicU32>);

impl Held {
    /// One more on `counter`, if it is below `limit`.
    fn take(counter: Arc<AtomicU32>, limit: u32) -> Option<Self> {
        take_one(&counter, limit).then(|| Held(counter))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
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

/// Every function's pool, and the concurrency of each account and of the server.
pub struct Pools {
    pools: Mutex<HashMap<PoolKey, Arc<FunctionPool>>>,
    /// Calls running per (account, function), shared by that function's pools.
    functions: Mutex<HashMap<(String, String), Arc<AtomicU32>>>,
    /// Calls running per account, shared by its pools.
    accounts: Mutex<HashMap<String, Arc<AtomicU32>>>,
    /// Calls running in the whole server.
    server: Arc<Semaphore>,
    disposal: Disposal,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools").finish_non_exhaustive()
    }
}

impl Pools {
    /// Pools admitting at most `server_concurrency` calls at once in all.
    pub fn new(server_concurrency: u32) -> Self {
        Self {
            pools: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            server: Arc::new(Semaphore::new(server_concurrency as usize)),
            disposal: Disposal::start(),
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
        let account = self.account_counter(&key.account)?;
        let pool = Arc::new(FunctionPool::new(
            key.clone(),
            counter,
            account,
            self.disposal.clone(),
        ));
        pools.insert(key.clone(), Arc::clone(&pool));
        Some(pool)
    }

    /// The counter of calls running for `account`.
    fn account_counter(&self, account: &str) -> Option<Arc<AtomicU32>> {
        let mut accounts = self.accounts.lock().ok()?;
        Some(Arc::clone(accounts.entry(account.to_owned()).or_default()))
    }

    /// Admits a call to `key`'s pool of a function without a reservation, within
    /// `function_limit` calls of that function at once (counted over all its versions and
    /// generations) and `account_limit` calls of its account's unreserved functions at once.
    pub fn admit(
        &self,
        key: &PoolKey,
        function_limit: u32,
        account_limit: u32,
    ) -> Result<Lease, Throttle> {
        let share = Share::Unreserved {
            function: function_limit,
            account: account_limit,
        };
        self.admit_as(key, share, None)
    }

    /// Admits a call to `key`'s pool drawing on `share`, made by `caller` (its account and its
    /// unreserved limit): when that is another account than the owner, the call also takes one
    /// of the caller's own.
    pub fn admit_as(
        &self,
        key: &PoolKey,
        share: Share,
        caller: Option<(&str, u32)>,
    ) -> Result<Lease, Throttle> {
        let caller = match caller {
            Some((account, limit)) if account != key.account => {
                let counter = self.account_counter(account).ok_or(Throttle::Account)?;
                Some(Held::take(counter, limit).ok_or(Throttle::Account)?)
            }
            _ => None,
        };
        let pool = self.pool(key).ok_or(Throttle::Account)?;
        let (function_limit, account) = match share {
            Share::Reserved(n) => (n, None),
            Share::Unreserved { function, account } => {
                let counter = Arc::clone(&pool.account_in_flight);
                (
                    function,
                    Some(Held::take(counter, account).ok_or(Throttle::Account)?),
                )
            }
        };
        let Ok(permit) = Arc::clone(&self.server).try_acquire_owned() else {
            return Err(Throttle::Account);
        };
        if !take_one(&pool.function_in_flight, function_limit) {
            return Err(Throttle::Function);
        }
        pool.in_flight.fetch_add(1, Ordering::AcqRel);
        pool.called.store(true, Ordering::Release);
        Ok(Lease {
            pool,
            _permit: permit,
            _account: account,
            _caller: caller,
        })
    }

    /// Adds a sandbox started ahead of calls (a deploy's warm-up) to `key`'s idle set.
    pub fn put_warm(&self, key: &PoolKey, sandbox: Arc<dyn Sandbox>) {
        if let Some(pool) = self.pool(key) {
            pool.put_idle(sandbox);
        }
    }

    /// Drops idle sandboxes past their keep-alive, those of generations an update replaced,
    /// and pools with nothing left in them. Answers how many sandboxes went. The sandboxes
    /// are taken out under the locks and dropped after, on the disposal thread: a teardown
    /// never holds up admissions.
    pub fn reap(&self, policy: &dyn KeepAlivePolicy, now: Instant) -> usize {
        let mut gone: Vec<Arc<dyn Sandbox>> = Vec::new();
        let mut dropped_pools: Vec<Arc<FunctionPool>> = Vec::new();
        {
            let Ok(mut pools) = self.pools.lock() else {
                return 0;
            };
            // A generation is superseded once calls have reached a newer one (not merely once
            // a deploy has warmed one: calls go on to the old one until the switch).
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
            let mut kept = HashMap::with_capacity(pools.len());
            for (key, pool) in pools.drain() {
                let keep_alive = if superseded(&key) {
                    Duration::ZERO
                } else {
                    policy.keep_alive(&key)
                };
                pool.expire(keep_alive, now, &mut gone);
                let last = pool.last_used.lock().map(|l| *l).unwrap_or(now);
                if pool.in_flight() > 0
                    || pool.idle_count() > 0
                    || (now.saturating_duration_since(last) < keep_alive)
                {
                    kept.insert(key, pool);
                } else {
                    // Its last reference may be this one: it goes after the lock too.
                    dropped_pools.push(pool);
                }
            }
            *pools = kept;
        }
        let n = gone.len();
        self.disposal.dispose(gone);
        drop(dropped_pools);
        n
    }

    /// Waits, at most `within`, until every sandbox the pools have let go of has been
    /// dropped.
    pub fn flush_disposals(&self, within: Duration) -> bool {
        self.disposal.flush(within)
    }

    /// Warm sandboxes (idle, or running a call) and calls running, over every pool: what the
    /// node's heartbeat reports.
    pub fn usage(&self) -> (u32, u32) {
        let Ok(pools) = self.pools.lock() else {
            return (0, 0);
        };
        pools.values().fold((0u32, 0u32), |(warm, load), p| {
            let busy = p.in_flight();
            let idle = u32::try_from(p.idle_count()).unwrap_or(u32::MAX);
            (
                warm.saturating_add(idle).saturating_add(busy),
                load.saturating_add(busy),
            )
        })
    }

    /// Idle sandboxes of `key`'s pool (none if it has no pool yet; placement asks this).
    pub fn idle_of(&self, key: &PoolKey) -> usize {
        self.pools
            .lock()
            .ok()
            .and_then(|p| p.get(key).map(|p| p.idle_count()))
            .unwrap_or(0)
    }

    /// Idle sandboxes of every pool (for tests and metrics).
    pub fn idle_total(&self) -> usize {
        self.pools
            .lock()
            .map(|p| p.values().map(|p| p.idle_count()).sum())
            .unwrap_or(0)
    }
}

/// Counts one more on `counter` if it is below `limit`.
fn take_one(counter: &AtomicU32, limit: u32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

impl Drop for Pools {
    fn drop(&mut self) {
        // Every sandbox goes with the pools (the server removes its cgroups next): hand the
        // idle ones over and wait for the disposals to end.
        let pools = std::mem::take(
            self.pools
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let idle: Vec<Arc<dyn Sandbox>> = pools.values().flat_map(|p| p.take_all()).collect();
        drop(pools);
        self.disposal.dispose(idle);
        if !self.disposal.flush(DISPOSAL_WAIT) {
            tracing::warn!("some sandboxes were still ending when the pools went");
        }
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
