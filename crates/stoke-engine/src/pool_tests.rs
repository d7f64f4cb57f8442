//! Tests of the warm pool: admission limits per function and account (reservations apart from
//! the unreserved rest), keep-alive and superseded generations, and that a sandbox's teardown never holds up admissions.

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

fn unreserved(function: u32, account: u32) -> Share {
    Share::Unreserved { function, account }
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
    let a = pools.admit(&key(1), 2, u32::MAX).unwrap();
    let _b = pools.admit(&key(1), 2, u32::MAX).unwrap();
    assert_eq!(
        pools.admit(&key(1), 2, u32::MAX).err(),
        Some(Throttle::Function)
    );
    drop(a);
    let _c = pools.admit(&key(1), 2, u32::MAX).unwrap();
    let _d = pools.admit(&key(2), 5, u32::MAX).unwrap();
    assert_eq!(
        pools.admit(&key(3), 5, u32::MAX).err(),
        Some(Throttle::Account)
    );
}

#[test]
fn a_functions_limit_counts_all_its_versions_and_generations() {
    let pools = Pools::new(10);
    let v1 = PoolKey {
        version: "1".into(),
        ..key(1)
    };
    let _a = pools.admit(&key(1), 2, u32::MAX).unwrap();
    let b = pools.admit(&v1, 2, u32::MAX).unwrap();
    assert_eq!(
        pools.admit(&key(2), 2, u32::MAX).err(),
        Some(Throttle::Function)
    );
    assert_eq!(
        pools.admit(&v1, 2, u32::MAX).err(),
        Some(Throttle::Function)
    );
    let other = PoolKey {
        function_name: "g".into(),
        ..key(1)
    };
    assert!(
        pools.admit(&other, 2, u32::MAX).is_ok(),
        "another function has its own count"
    );
    drop(b);
    assert!(pools.admit(&v1, 2, u32::MAX).is_ok());
}

#[test]
fn idle_sandboxes_go_after_their_keep_alive_and_when_superseded() {
    let pools = Pools::new(10);
    let lease = pools.admit(&key(1), 10, u32::MAX).unwrap();
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

    let old = pools.admit(&key(2), 10, u32::MAX).unwrap();
    old.pool.put_idle(Arc::new(Nothing));
    drop(old);
    // A deploy warms generation 3: generation 2 keeps its sandboxes until calls move.
    pools.put_warm(&key(3), Arc::new(Nothing));
    assert_eq!(
        pools.reap(&policy, Instant::now()),
        0,
        "calls still go to 2"
    );
    let _new = pools.admit(&key(3), 10, u32::MAX).unwrap();
    assert_eq!(
        pools.reap(&policy, Instant::now()),
        1,
        "generation 2 was replaced by 3"
    );
}

/// A sandbox whose teardown blocks (as a process sandbox's may, waiting for its tree).
struct SlowToDrop {
    drop_time: Duration,
    started: mpsc::Sender<()>,
    ended: Arc<AtomicBool>,
}

#[async_trait]
impl Sandbox for SlowToDrop {
    async fn invoke(&self, _input: InvokeInput) -> Result<Execution, SandboxError> {
        Err(SandboxError::Internal("not for running".into()))
    }
}

/// Keeps `g`'s sandboxes and lets every other function's go at once.
struct OnlyGStays;

impl KeepAlivePolicy for OnlyGStays {
    fn keep_alive(&self, key: &PoolKey) -> Duration {
        if key.function_name == "g" {
            Duration::from_secs(600)
        } else {
            Duration::ZERO
        }
    }
}

impl Drop for SlowToDrop {
    fn drop(&mut self) {
        let _ = self.started.send(());
        std::thread::sleep(self.drop_time);
        self.ended.store(true, Ordering::SeqCst);
    }
}

#[test]
fn admissions_and_placements_go_on_while_a_sandbox_is_being_killed() {
    let drop_time = Duration::from_secs(2);
    let pools = Arc::new(Pools::new(10));
    let (started, dropping) = mpsc::channel();
    let ended = Arc::new(AtomicBool::new(false));
    let lease = pools.admit(&key(1), 10, u32::MAX).unwrap();
    lease.pool.put_idle(Arc::new(SlowToDrop {
        drop_time,
        started,
        ended: Arc::clone(&ended),
    }));
    drop(lease);
    let other = PoolKey {
        function_name: "g".into(),
        ..key(1)
    };
    pools.put_warm(&other, Arc::new(Nothing));

    // The reaper lets the slow sandbox go (its keep-alive is over).
    let reaper = {
        let pools = Arc::clone(&pools);
        std::thread::spawn(move || {
            let t = Instant::now();
            let n = pools.reap(&OnlyGStays, Instant::now());
            (n, t.elapsed())
        })
    };
    dropping
        .recv_timeout(Duration::from_secs(10))
        .expect("the sandbox's teardown started");
    // While it is being torn down: an admission on another pool (which takes the pools'
    // lock), a warm placement there, a new pool made, and the same function admitted again.
    let t = Instant::now();
    let lease = pools.admit(&other, 10, u32::MAX).expect("admitted");
    let warm = lease.pool.take_idle().expect("the warm sandbox of g");
    lease.pool.put_idle(warm);
    drop(lease);
    let third = PoolKey {
        function_name: "h".into(),
        ..key(1)
    };
    drop(pools.admit(&third, 10, u32::MAX).expect("admitted"));
    drop(pools.admit(&key(1), 10, u32::MAX).expect("admitted"));
    assert_eq!(pools.idle_total(), 1);
    let took = t.elapsed();
    assert!(
        took < drop_time / 4,
        "admissions waited {took:?} for a teardown of {drop_time:?}"
    );
    assert!(
        !ended.load(Ordering::SeqCst),
        "the teardown was still going on meanwhile"
    );
    let (n, reap_took) = reaper.join().unwrap();
    assert_eq!(n, 1);
    assert!(reap_took < drop_time / 4, "the reaper waited {reap_took:?}");
    // The teardown ends on its own; dropping the pools waits for it.
    drop(Arc::into_inner(pools).expect("the last reference"));
    assert!(ended.load(Ordering::SeqCst), "gone with the pools");
}

#[test]
fn an_account_that_exhausts_its_limit_leaves_the_others_theirs() {
    let pools = Pools::new(10);
    let of = |account: &str, function: &str| PoolKey {
        account: account.into(),
        function_name: function.into(),
        ..key(1)
    };
    let _a1 = pools.admit(&of("111111111111", "f"), 10, 2).unwrap();
    let a2 = pools.admit(&of("111111111111", "g"), 10, 2).unwrap();
    assert_eq!(
        pools.admit(&of("111111111111", "h"), 10, 2).err(),
        Some(Throttle::Account),
        "the account's limit counts all its functions"
    );
    let _b = pools.admit(&of("222222222222", "f"), 10, 2).unwrap();
    let _b2 = pools.admit(&of("222222222222", "f"), 10, 2).unwrap();
    drop(a2);
    assert!(pools.admit(&of("111111111111", "h"), 10, 2).is_ok());
    // A limit lowered while calls run admits none until they end.
    assert_eq!(
        pools.admit(&of("222222222222", "g"), 10, 1).err(),
        Some(Throttle::Account)
    );
}

#[test]
fn a_caller_of_another_accounts_function_counts_against_both() {
    let pools = Pools::new(10);
    let owners = key(1);
    let caller = "222222222222";
    let a = pools
        .admit_as(&owners, unreserved(10, 5), Some((caller, 1)))
        .unwrap();
    assert_eq!(
        pools
            .admit_as(&owners, unreserved(10, 5), Some((caller, 1)))
            .err(),
        Some(Throttle::Account),
        "the caller holds no more than its own limit of the owner's"
    );
    // The owner's own calls still get in, and the caller's share came back when refused.
    let _own = pools.admit(&owners, 10, 5).unwrap();
    drop(a);
    let _again = pools
        .admit_as(&owners, unreserved(10, 5), Some((caller, 1)))
        .unwrap();
    // The owner calling its own function is counted once.
    let _mine = pools
        .admit_as(
            &owners,
            unreserved(10, 5),
            Some((owners.account.as_str(), 1)),
        )
        .unwrap();
}

#[test]
fn a_reserved_function_draws_on_its_reservation_alone() {
    let pools = Pools::new(10);
    let of = |function: &str| PoolKey {
        function_name: function.into(),
        ..key(1)
    };
    let reserved = of("reserved");
    // The account's unreserved functions fill the unreserved rest (2 here)...
    let _u1 = pools.admit(&of("u1"), 10, 2).unwrap();
    let _u2 = pools.admit(&of("u2"), 10, 2).unwrap();
    assert_eq!(pools.admit(&of("u3"), 10, 2).err(), Some(Throttle::Account));
    // ...and the reserved function still runs its 2, and no more.
    let r1 = pools.admit_as(&reserved, Share::Reserved(2), None).unwrap();
    let _r2 = pools.admit_as(&reserved, Share::Reserved(2), None).unwrap();
    assert_eq!(
        pools.admit_as(&reserved, Share::Reserved(2), None).err(),
        Some(Throttle::Function),
        "a reservation is the function's limit too"
    );
    // Its calls never took any of the unreserved rest.
    drop(r1);
    assert_eq!(pools.admit(&of("u3"), 10, 2).err(), Some(Throttle::Account));
    let _r3 = pools.admit_as(&reserved, Share::Reserved(2), None).unwrap();
}

#[test]
fn a_change_of_reservation_counts_from_the_next_call() {
    let pools = Pools::new(10);
    let f = key(1);
    // Admitted unreserved, then the function gets a reservation of 1.
    let before = pools.admit(&f, 10, 1).unwrap();
    let reserved = pools.admit_as(&f, Share::Reserved(2), None).unwrap();
    assert_eq!(
        pools.admit_as(&f, Share::Reserved(2), None).err(),
        Some(Throttle::Function),
        "the calls running count against the new reservation"
    );
    // The unreserved call gives back the unreserved concurrency it took.
    drop(before);
    let other = PoolKey {
        function_name: "other".into(),
        ..key(1)
    };
    let _o = pools.admit(&other, 10, 1).unwrap();
    // The reservation removed: the function's next call is unreserved again.
    drop(reserved);
    assert_eq!(pools.admit(&f, 10, 1).err(), Some(Throttle::Account));
}

#[test]
fn a_caller_of_a_reserved_function_still_counts_against_its_own() {
    let pools = Pools::new(10);
    let owners = key(1);
    let caller = "222222222222";
    let _a = pools
        .admit_as(&owners, Share::Reserved(5), Some((caller, 1)))
        .unwrap();
    assert_eq!(
        pools
            .admit_as(&owners, Share::Reserved(5), Some((caller, 1)))
            .err(),
        Some(Throttle::Account),
        "the caller's limit holds whatever the owner reserved"
    );
    // The caller's refused call took nothing of the reservation.
    let own: Vec<Lease> = (0..4)
        .map(|_| pools.admit_as(&owners, Share::Reserved(5), None).unwrap())
        .collect();
    assert_eq!(own.len(), 4);
}
