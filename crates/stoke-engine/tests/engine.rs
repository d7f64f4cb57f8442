//! The engine as a server builds it ([`Engine::start`]), over SQLite in memory and a sandbox
//! backend written here: the control plane's state machine, its compare-and-swap, admission,
//! how a backend's refusal becomes the function's `StateReasonCode`, and what an update whose
//! new code fails its Init does (by default and under the `stoke:deploy-check` tag).

#![allow(clippy::unwrap_used)] // a test that cannot set up should stop loudly

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use stoke_core::{
    AccountId, ConfigInput, Function, FunctionError, LambdaError, LastUpdateStatus, Outcome, State,
};
use stoke_engine::control::DEPLOY_CHECK_TAG;
use stoke_engine::logs::LogQuery;
use stoke_engine::{
    Backends, ControlError, CreateFunction, Engine, EngineConfig, InvokeRequest, InvokerConfig,
};
use stoke_sandbox::{
    Backend, Execution, FunctionSpec, InvokeInput, PrepareError, Sandbox, SandboxError,
};
use stoke_store::{FsBlobStore, SqliteStore, Store};
use tokio::sync::{Notify, Semaphore};

/// A backend that runs no code: a call answers the memory size its sandbox was started with
/// (so a test sees which generation served it). What `prepare` answers, whether Init fails
/// (`errorType: errorMessage`; such a sandbox answers that error and is not reused, as a
/// process sandbox does) and whether calls wait are the test's to set.
#[derive(Default)]
struct Fake {
    refuse: Mutex<Option<PrepareError>>,
    init_failure: Mutex<Option<String>>,
    /// Held by a test to keep deploys in their prepare step.
    preparing: Mutex<()>,
    /// When set, each call waits for a permit.
    gate: Mutex<Option<Arc<Semaphore>>>,
    /// Signalled when a call has entered a sandbox.
    entered: Arc<Notify>,
    starts: AtomicUsize,
}

struct FakeSandbox {
    memory_mb: u32,
    init_failure: Option<String>,
    gate: Option<Arc<Semaphore>>,
    entered: Arc<Notify>,
}

#[async_trait]
impl Backend for Fake {
    fn prepare(&self, _spec: &FunctionSpec) -> Result<(), PrepareError> {
        let _held = self.preparing.lock().unwrap_or_else(|e| e.into_inner());
        match self.refuse.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn start(&self, spec: &FunctionSpec) -> Result<Arc<dyn Sandbox>, SandboxError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(FakeSandbox {
            memory_mb: spec.memory_mb,
            init_failure: self.init_failure.lock().unwrap().clone(),
            gate: self.gate.lock().unwrap().clone(),
            entered: Arc::clone(&self.entered),
        }))
    }
}

#[async_trait]
impl Sandbox for FakeSandbox {
    async fn invoke(&self, _input: InvokeInput) -> Result<Execution, SandboxError> {
        if let Some((kind, message)) = self
            .init_failure
            .as_deref()
            .and_then(|f| f.split_once(": "))
        {
            return Ok(Execution {
                outcome: Outcome::Error(FunctionError::new(kind, message)),
                log: Bytes::from_static(b"init output of the fake\n"),
                init_log: Bytes::new(),
                max_memory_bytes: 0,
                log_truncated: false,
                log_stream: "fake".into(),
            });
        }
        self.entered.notify_one();
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        Ok(Execution {
            outcome: Outcome::Success(Bytes::from(self.memory_mb.to_string())),
            log: Bytes::new(),
            init_log: Bytes::new(),
            max_memory_bytes: 0,
            log_truncated: false,
            log_stream: "fake".into(),
        })
    }

    fn reusable(&self) -> bool {
        self.init_failure.is_none()
    }

    fn init_failure(&self) -> Option<String> {
        self.init_failure.clone()
    }
}

struct Setup {
    engine: Engine,
    fake: Arc<Fake>,
    account: AccountId,
    _dir: tempfile::TempDir,
}

async fn setup(invoker: InvokerConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::in_memory().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    let (key, _) = store.ensure_default_account().await.unwrap();
    let fake = Arc::new(Fake::default());
    let backend: Arc<dyn Backend> = fake.clone();
    let mut config = EngineConfig::new(
        store,
        Arc::new(sqlite),
        Arc::new(FsBlobStore::open(dir.path().join("blobs")).unwrap()),
        Backends {
            wasm: Arc::clone(&backend),
            process: Some(backend),
        },
        dir.path(),
    );
    config.invoker = invoker;
    Setup {
        engine: Engine::start(config).await.unwrap(),
        fake,
        account: key.account,
        _dir: dir,
    }
}

fn zip() -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("bootstrap", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(b"#!/bin/sh\n").unwrap();
    w.finish().unwrap().into_inner()
}

fn create(name: &str) -> CreateFunction {
    CreateFunction {
        function_name: name.into(),
        config: ConfigInput {
            runtime: Some("provided.al2023".into()),
            handler: Some("bootstrap".into()),
            ..ConfigInput::default()
        },
        zip: zip(),
        ..CreateFunction::default()
    }
}

fn memory(mb: i64) -> ConfigInput {
    ConfigInput {
        memory_size: Some(mb),
        ..ConfigInput::default()
    }
}

fn call(name: &str) -> InvokeRequest {
    InvokeRequest {
        function: name.into(),
        payload: Bytes::from_static(b"{}"),
        ..InvokeRequest::default()
    }
}

fn lambda(e: ControlError) -> LambdaError {
    e.into()
}

impl Setup {
    async fn function(&self, name: &str) -> Function {
        self.engine
            .control
            .get_function(&self.account, name, None)
            .await
            .unwrap()
    }

    /// Creates `name` and waits for its deploy.
    async fn active(&self, name: &str) -> Function {
        self.engine
            .control
            .create_function(&self.account, create(name))
            .await
            .unwrap();
        self.engine.control.drain().await;
        self.function(name).await
    }

    async fn answer(&self, name: &str) -> Result<String, LambdaError> {
        match self.outcome(name).await? {
            Outcome::Success(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Outcome::Error(e) => panic!("the fake fails only its Init: {e:?}"),
        }
    }

    async fn outcome(&self, name: &str) -> Result<Outcome, LambdaError> {
        let r = self
            .engine
            .invoker
            .invoke(&self.account, call(name))
            .await?;
        Ok(r.outcome)
    }

    /// The function's stored log lines (the warm-up's are written before the deploy settles).
    async fn log_lines(&self, name: &str) -> Vec<String> {
        let query = LogQuery {
            limit: 1000,
            ..LogQuery::default()
        };
        let events = self.engine.logs.read(&self.account, name, &query).await;
        events
            .unwrap()
            .events
            .into_iter()
            .map(|e| e.message)
            .collect()
    }

    /// Makes the next sandboxes fail their Init with `failure` (`None`: succeed).
    fn fail_init(&self, failure: Option<&str>) {
        *self.fake.init_failure.lock().unwrap() = failure.map(str::to_owned);
    }

    /// Tags `name` with the strict deploy check.
    async fn strict(&self, name: &str) {
        let arn = self.function(name).await.arn("us-east-1");
        let tags = [(DEPLOY_CHECK_TAG.to_owned(), "init".to_owned())];
        let tags = tags.into_iter().collect();
        self.engine
            .control
            .tag(&self.account, &arn, tags)
            .await
            .unwrap();
    }

    async fn update_memory(&self, name: &str, mb: i64) -> Function {
        self.engine
            .control
            .update_configuration(&self.account, name, memory(mb), None)
            .await
            .unwrap();
        self.engine.control.drain().await;
        self.function(name).await
    }

    async fn publish(&self, name: &str) -> Result<Function, LambdaError> {
        let control = &self.engine.control;
        let published = control.publish_version(&self.account, name, None, None, None);
        published.await.map_err(lambda)
    }
}

#[tokio::test]
async fn a_new_function_is_pending_until_its_code_is_prepared_then_active() {
    let s = setup(InvokerConfig::default()).await;
    let created = s
        .engine
        .control
        .create_function(&s.account, create("f"))
        .await
        .unwrap();
    assert_eq!(created.state, State::Pending);
    assert_eq!(
        created.state_reason.as_ref().map(|r| r.code.as_str()),
        Some("Creating")
    );
    s.engine.control.drain().await;
    let f = s.function("f").await;
    assert_eq!(f.state, State::Active);
    assert_eq!(f.state_reason, None);
    assert_eq!(s.answer("f").await.unwrap(), "128");
}

#[tokio::test]
#[allow(clippy::await_holding_lock)] // the lock holds a blocking prepare, on another thread
async fn an_update_with_another_revision_is_refused_and_one_during_an_update_conflicts() {
    let s = setup(InvokerConfig::default()).await;
    let f = s.active("f").await;
    let stale = s
        .engine
        .control
        .update_configuration(&s.account, "f", memory(256), Some("not-the-revision"))
        .await
        .unwrap_err();
    assert_eq!(lambda(stale).status(), 412);

    // Keep the update's deploy in its prepare step: a second update must wait for it.
    let held = s.fake.preparing.lock().unwrap();
    let updating = s
        .engine
        .control
        .update_configuration(&s.account, "f", memory(256), Some(&f.revision_id))
        .await
        .unwrap();
    assert_eq!(
        updating.last_update_status,
        Some(LastUpdateStatus::InProgress)
    );
    let busy = s
        .engine
        .control
        .update_configuration(&s.account, "f", memory(512), None)
        .await
        .unwrap_err();
    let busy = lambda(busy);
    assert_eq!(
        (busy.type_name(), busy.status()),
        ("ResourceConflictException", 409)
    );
    drop(held);
    s.engine.control.drain().await;
    let f = s.function("f").await;
    assert_eq!(f.last_update_status, Some(LastUpdateStatus::Successful));
    assert_eq!(s.answer("f").await.unwrap(), "256");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_one_function_all_land_through_compare_and_swap() {
    let s = setup(InvokerConfig::default()).await;
    let f = s.active("f").await;
    let arn = f.arn("us-east-1");
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let control = Arc::clone(&s.engine.control);
        let (account, arn) = (s.account.clone(), arn.clone());
        let tags = [(format!("k{i}"), format!("v{i}"))].into_iter().collect();
        writers.spawn(async move { control.tag(&account, &arn, tags).await });
    }
    while let Some(r) = writers.join_next().await {
        r.unwrap().unwrap();
    }
    let tags = s.engine.control.list_tags(&s.account, &arn).await.unwrap();
    assert_eq!(tags.len(), 8, "{tags:?}");
    // Each write moved the revision on.
    assert_ne!(s.function("f").await.revision_id, f.revision_id);
}

#[tokio::test]
async fn a_call_over_the_functions_concurrency_is_throttled_with_429() {
    let s = setup(InvokerConfig {
        function_concurrency: 1,
        ..InvokerConfig::default()
    })
    .await;
    s.active("f").await;
    let gate = Arc::new(Semaphore::new(0));
    *s.fake.gate.lock().unwrap() = Some(Arc::clone(&gate));
    let invoker = Arc::clone(&s.engine.invoker);
    let account = s.account.clone();
    let first = tokio::spawn(async move { invoker.invoke(&account, call("f")).await });
    s.fake.entered.notified().await;

    let throttled = s.answer("f").await.unwrap_err();
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.type_name(), "TooManyRequestsException");
    assert_eq!(
        throttled.reason(),
        Some("ReservedFunctionConcurrentInvocationLimitExceeded")
    );

    gate.add_permits(1);
    let first = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first.outcome, Outcome::Success(_)));
    // Once the first call is over, the next one is admitted.
    gate.add_permits(1);
    assert_eq!(s.answer("f").await.unwrap(), "128");
}

#[tokio::test]
async fn a_backends_refusal_fails_the_function_with_its_reason_code() {
    let s = setup(InvokerConfig::default()).await;
    *s.fake.refuse.lock().unwrap() = Some(PrepareError::RuntimeUnavailable(
        "The runtime provided.al2023 is not available on this Stoke server: no bootstrap".into(),
    ));
    let f = s.active("no-runtime").await;
    assert_eq!(f.state, State::Failed);
    let reason = f.state_reason.unwrap();
    assert_eq!(reason.code, "InvalidRuntime");
    assert!(
        reason.message.contains("not available"),
        "{}",
        reason.message
    );
    let refused = s.answer("no-runtime").await.unwrap_err();
    assert_eq!(refused.status(), 409);

    *s.fake.refuse.lock().unwrap() = Some(PrepareError::InvalidCode(
        "The module 'f.wasm' does not compile".into(),
    ));
    let f = s.active("bad-code").await;
    assert_eq!(f.state, State::Failed);
    assert_eq!(f.state_reason.unwrap().code, "InvalidZipFileException");

    // Good code brings a failed function back.
    *s.fake.refuse.lock().unwrap() = None;
    s.engine
        .control
        .update_code(&s.account, "bad-code", zip(), None, false)
        .await
        .unwrap();
    s.engine.control.drain().await;
    assert_eq!(s.function("bad-code").await.state, State::Active);
}

const EXIT: &str =
    "Runtime.ExitError: RequestId: r Error: Runtime exited with error: exit status 1";

#[tokio::test]
async fn an_update_whose_new_code_fails_its_init_switches_and_calls_answer_the_init_error() {
    let s = setup(InvokerConfig::default()).await;
    s.active("f").await;
    assert_eq!(s.answer("f").await.unwrap(), "128");
    s.fail_init(Some(EXIT));
    let f = s.update_memory("f", 256).await;
    // As Lambda's: the update runs no code of the user's, so its Init does not fail it.
    assert_eq!(f.state, State::Active);
    assert_eq!(f.last_update_status, Some(LastUpdateStatus::Successful));
    assert_eq!(f.last_update_reason, None);
    let starts = s.fake.starts.load(Ordering::SeqCst);
    assert_eq!(starts, 2, "the deploy warmed the new generation");
    // The warm-up's error is in the function's logs once the update has settled.
    let lines = s.log_lines("f").await;
    assert!(
        lines.iter().any(|l| l == "init output of the fake"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("INIT_REPORT Init Duration: ")
                && l.ends_with("\tPhase: init\tStatus: error\tError Type: Runtime.ExitError")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(
            "failed its Init: Runtime.ExitError: Runtime exited \
                                          with error: exit status 1; the update went through"
        )),
        "{lines:?}"
    );
    // Calls moved to the new generation: no warm sandbox, so each starts one and answers
    // the Init's error, as Lambda does.
    for n in 1..=2 {
        match s.outcome("f").await.unwrap() {
            Outcome::Error(e) => assert_eq!(e.error_type, "Runtime.ExitError"),
            o @ Outcome::Success(_) => panic!("the new code failed its Init: {o:?}"),
        }
        assert_eq!(s.fake.starts.load(Ordering::SeqCst), starts + n);
    }
    // Publishing runs no code either.
    let v = s.publish("f").await.unwrap();
    assert_eq!((v.version.as_str(), v.state), ("1", State::Active));
    // A later fixed update works.
    s.fail_init(None);
    let f = s.update_memory("f", 512).await;
    assert_eq!(f.last_update_status, Some(LastUpdateStatus::Successful));
    assert_eq!(s.answer("f").await.unwrap(), "512");
}

#[tokio::test]
async fn under_the_deploy_check_tag_an_update_that_fails_its_init_fails_and_the_old_code_serves() {
    let s = setup(InvokerConfig::default()).await;
    s.active("f").await;
    s.strict("f").await;
    assert_eq!(s.answer("f").await.unwrap(), "128");
    s.fail_init(Some(EXIT));
    let f = s.update_memory("f", 256).await;
    assert_eq!(f.state, State::Active);
    assert_eq!(f.last_update_status, Some(LastUpdateStatus::Failed));
    let reason = f.last_update_reason.unwrap();
    assert_eq!(reason.code, "FunctionError.RuntimeInitError");
    assert_eq!(
        reason.message,
        "The function's new code failed its Init: Runtime.ExitError: Runtime exited with \
         error: exit status 1"
    );
    // The deploy tried a sandbox of the new generation; calls stay on the old one.
    assert!(s.fake.starts.load(Ordering::SeqCst) >= 2);
    assert_eq!(s.answer("f").await.unwrap(), "128");
    let lines = s.log_lines("f").await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the update failed (stoke:deploy-check = init)")),
        "{lines:?}"
    );
    // A failed update is not published.
    let refused = s.publish("f").await.unwrap_err();
    assert_eq!(refused.status(), 409, "{refused:?}");
    // An Init timeout is named as Lambda names it.
    s.fail_init(Some(
        "Sandbox.Timedout: RequestId: r Error: Init timed out after 3.00 seconds",
    ));
    let f = s.update_memory("f", 384).await;
    let code = f.last_update_reason.map(|r| r.code);
    assert_eq!(code.as_deref(), Some("FunctionError.InitTimeout"));
    // Fixed code goes through.
    s.fail_init(None);
    let f = s.update_memory("f", 512).await;
    assert_eq!(f.last_update_status, Some(LastUpdateStatus::Successful));
    assert_eq!(s.answer("f").await.unwrap(), "512");
}

#[tokio::test]
async fn an_update_whose_code_cannot_be_prepared_fails_with_its_reason_whatever_the_check() {
    let s = setup(InvokerConfig::default()).await;
    s.active("f").await;
    assert_eq!(s.answer("f").await.unwrap(), "128");
    *s.fake.refuse.lock().unwrap() = Some(PrepareError::InvalidCode(
        "The module 'f.wasm' does not compile".into(),
    ));
    let f = s.update_memory("f", 256).await;
    assert_eq!(f.state, State::Active);
    assert_eq!(f.last_update_status, Some(LastUpdateStatus::Failed));
    let reason = f.last_update_reason.unwrap();
    assert_eq!(reason.code, "InvalidZipFileException");
    assert!(
        reason.message.contains("does not compile"),
        "{}",
        reason.message
    );
    // Nothing was started for it, and the old generation serves.
    assert_eq!(s.fake.starts.load(Ordering::SeqCst), 1);
    assert_eq!(s.answer("f").await.unwrap(), "128");
}

#[tokio::test]
async fn an_engine_shuts_down_after_its_calls() {
    let s = setup(InvokerConfig::default()).await;
    s.active("f").await;
    assert_eq!(s.answer("f").await.unwrap(), "128");
    let Setup { engine, _dir, .. } = s;
    tokio::time::timeout(Duration::from_secs(20), engine.shutdown())
        .await
        .unwrap();
}
