//! The wasm backend on real modules (the WAT guests in `tests/guests/`): the contract, every
//! fault, and that a misbehaving guest disturbs no other.

#![allow(clippy::unwrap_used)] // a test that cannot set up should stop loudly

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stoke_sandbox::wasm::{WasmBackend, WasmConfig};
use stoke_sandbox::{Backend, Execution, FunctionSpec, InvokeInput, Outcome, SandboxError};

fn guest(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/guests/{name}.wat",
        env!("CARGO_MANIFEST_DIR")
    );
    wat::parse_file(&path).unwrap()
}

struct Fixture {
    backend: WasmBackend,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = WasmConfig::new(dir.path().join("compiled"));
        config.pool_slots = 16;
        config.max_log_bytes = 64 * 1024;
        Self {
            backend: WasmBackend::new(config).unwrap(),
            dir,
        }
    }

    fn spec(&self, name: &str, timeout: Duration, memory_mb: u32) -> FunctionSpec {
        let code_dir = self.dir.path().join("code").join(name);
        std::fs::create_dir_all(&code_dir).unwrap();
        std::fs::write(code_dir.join("f.wasm"), guest(name)).unwrap();
        FunctionSpec {
            account: "123456789012".into(),
            function_name: name.into(),
            version: "$LATEST".into(),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
            region: "us-east-1".into(),
            runtime: stoke_core::Runtime::parse("wasm").unwrap(),
            handler: "f.wasm".into(),
            code_dir,
            code_sha256: format!("{:0>64}", name.len()) + name,
            memory_mb,
            ephemeral_mb: 512,
            timeout,
            environment: BTreeMap::from([("GREETING".into(), "hello".into())]),
            credentials: None,
        }
    }

    async fn run(&self, name: &str, payload: &str, timeout: Duration) -> Execution {
        let spec = self.spec(name, timeout, 128);
        self.backend.prepare(&spec).unwrap();
        let sandbox = self.backend.start(&spec).await.unwrap();
        sandbox.invoke(input(payload, timeout)).await.unwrap()
    }
}

fn input(payload: &str, timeout: Duration) -> InvokeInput {
    InvokeInput {
        request_id: "req-1".into(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        deadline: tokio::time::Instant::now() + timeout,
        deadline_unix_ms: 0,
        trace_id: "Root=1-0-0".into(),
        client_context: None,
        invoked_function_arn: None,
        host: None,
    }
}

fn error_type(e: &Execution) -> &str {
    match &e.outcome {
        Outcome::Error(e) => &e.error_type,
        Outcome::Success(_) => "success",
    }
}

#[tokio::test]
async fn the_event_goes_in_on_stdin_and_the_result_comes_out_on_stdout() {
    let f = Fixture::new();
    let e = f
        .run("echo", r#"{"hello":"world"}"#, Duration::from_secs(3))
        .await;
    assert_eq!(
        e.outcome,
        Outcome::Success(Bytes::from_static(br#"{"hello":"world"}"#))
    );
    assert_eq!(e.log.as_ref(), b"echo log line\n");
    assert!(e.max_memory_bytes >= 2 * 65536);
}

#[tokio::test]
async fn the_context_and_the_functions_environment_are_in_env() {
    let f = Fixture::new();
    let e = f.run("env", "{}", Duration::from_secs(3)).await;
    let Outcome::Success(out) = e.outcome else {
        panic!("{:?}", e.outcome)
    };
    let out = String::from_utf8(out.to_vec()).unwrap();
    for expected in [
        "GREETING=hello",
        "AWS_LAMBDA_FUNCTION_NAME=env",
        "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
        "AWS_REGION=us-east-1",
        "STOKE_REQUEST_ID=req-1",
        "_X_AMZN_TRACE_ID=Root=1-0-0",
    ] {
        assert!(
            out.lines().any(|l| l == expected),
            "{expected} missing from:\n{out}"
        );
    }
}

#[tokio::test]
async fn an_infinite_loop_ends_at_the_timeout() {
    let f = Fixture::new();
    let started = std::time::Instant::now();
    let e = f.run("loop", "{}", Duration::from_millis(300)).await;
    assert_eq!(error_type(&e), "Sandbox.Timedout");
    let Outcome::Error(err) = &e.outcome else {
        unreachable!()
    };
    assert!(
        err.message.contains("Task timed out after 0.30 seconds"),
        "{}",
        err.message
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_memory_bomb_is_out_of_memory_and_the_cap_holds() {
    let f = Fixture::new();
    let e = f.run("membomb", "{}", Duration::from_secs(5)).await;
    assert_eq!(error_type(&e), "Runtime.OutOfMemory");
    assert!(e.max_memory_bytes <= 128 * 1024 * 1024);
}

#[tokio::test]
async fn traps_and_exits_are_function_errors() {
    let f = Fixture::new();
    let e = f.run("trap", "{}", Duration::from_secs(3)).await;
    assert_eq!(error_type(&e), "Runtime.UnreachableCodeReached");
    let e = f.run("exit1", "{}", Duration::from_secs(3)).await;
    assert_eq!(error_type(&e), "Runtime.ExitError");
    let Outcome::Error(err) = &e.outcome else {
        unreachable!()
    };
    assert!(err.message.contains("exit status 1"));
    let body: serde_json::Value = serde_json::from_slice(&err.body).unwrap();
    assert_eq!(body["errorType"], "Runtime.ExitError");
}

#[tokio::test]
async fn output_past_the_limits_is_cut_off() {
    let f = Fixture::new();
    let e = f.run("bigout", "{}", Duration::from_secs(10)).await;
    assert_eq!(error_type(&e), "Function.ResponseSizeTooLarge");
    let e = f.run("logflood", "{}", Duration::from_secs(10)).await;
    assert_eq!(e.outcome, Outcome::Success(Bytes::from_static(b"{}")));
    assert!(e.log_truncated);
    assert!(e.log.len() <= 64 * 1024);
}

#[tokio::test]
async fn a_module_that_does_not_compile_or_link_is_refused_at_prepare() {
    let f = Fixture::new();
    let mut spec = f.spec("echo", Duration::from_secs(1), 128);
    std::fs::write(spec.code_dir.join("f.wasm"), b"\0asm\x01\0\0\0garbage").unwrap();
    assert!(
        f.backend
            .prepare(&spec)
            .unwrap_err()
            .to_string()
            .contains("does not compile")
    );
    let unknown = wat::parse_str(
        r#"(module (import "env" "nope" (func)) (memory (export "memory") 1) (func (export "_start")))"#,
    )
    .unwrap();
    spec.code_sha256 = "f".repeat(64);
    std::fs::write(spec.code_dir.join("f.wasm"), unknown).unwrap();
    assert!(
        f.backend
            .prepare(&spec)
            .unwrap_err()
            .to_string()
            .contains("cannot be linked")
    );
}

#[tokio::test]
async fn a_restart_loads_the_cached_artifact_without_compiling() {
    let f = Fixture::new();
    let spec = f.spec("echo", Duration::from_secs(1), 128);
    f.backend.prepare(&spec).unwrap();
    let artifact = f.backend.artifact_path(&spec);
    let written = std::fs::metadata(&artifact).unwrap().modified().unwrap();
    // The source goes away: a second backend (a restarted server) still starts from the cache.
    std::fs::remove_file(spec.code_dir.join("f.wasm")).unwrap();
    let mut config = WasmConfig::new(f.dir.path().join("compiled"));
    config.pool_slots = 4;
    let again = WasmBackend::new(config).unwrap();
    again.prepare(&spec).unwrap();
    assert_eq!(
        std::fs::metadata(&artifact).unwrap().modified().unwrap(),
        written
    );
    let sandbox = again.start(&spec).await.unwrap();
    let e = sandbox
        .invoke(input("[1]", Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(e.outcome, Outcome::Success(Bytes::from_static(b"[1]")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_guest_does_not_hold_up_other_calls() {
    let f = Arc::new(Fixture::new());
    let spin = f.spec("loop", Duration::from_secs(2), 128);
    f.backend.prepare(&spin).unwrap();
    let spinner = f.backend.start(&spin).await.unwrap();
    // As many spinning guests as there are runtime threads, and then some.
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&spinner);
            tokio::spawn(async move { s.invoke(input("{}", Duration::from_secs(2))).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let echo = f.spec("echo", Duration::from_secs(3), 128);
    f.backend.prepare(&echo).unwrap();
    let echoer = f.backend.start(&echo).await.unwrap();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let e = echoer
            .invoke(input("{}", Duration::from_secs(3)))
            .await
            .unwrap();
        assert_eq!(e.outcome, Outcome::Success(Bytes::from_static(b"{}")));
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "echo calls waited for the spinners: {:?}",
        started.elapsed()
    );
    for s in spinners {
        let e = s.await.unwrap().unwrap();
        assert_eq!(error_type(&e), "Sandbox.Timedout");
    }
}

#[test]
fn artifacts_half_written_by_a_crash_are_swept_at_start_and_finished_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("compiled");
    std::fs::create_dir_all(&cache).unwrap();
    for leftover in [".tmpAbC123", ".4242.tmp"] {
        std::fs::write(cache.join(leftover), b"half an artifact").unwrap();
    }
    let finished = cache.join("ab12-cd34-ef56.cwasm");
    std::fs::write(&finished, b"an artifact").unwrap();
    let _backend = WasmBackend::new(WasmConfig::new(&cache)).unwrap();
    let mut left: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["ab12-cd34-ef56.cwasm"]);
}

#[tokio::test]
async fn forgetting_code_removes_its_artifacts_and_only_its() {
    let f = Fixture::new();
    let mut gone = f.spec("echo", Duration::from_secs(1), 128);
    gone.code_sha256 = "ab".repeat(32);
    let mut other_handler = gone.clone();
    other_handler.handler = "g.wasm".into();
    std::fs::copy(gone.code_dir.join("f.wasm"), gone.code_dir.join("g.wasm")).unwrap();
    let mut kept = f.spec("echo", Duration::from_secs(1), 128);
    kept.code_sha256 = "cd".repeat(32);
    for s in [&gone, &other_handler, &kept] {
        f.backend.prepare(s).unwrap();
        assert!(f.backend.artifact_path(s).exists());
    }
    let running = f.backend.start(&gone).await.unwrap();
    f.backend.forget_code(&gone.code_sha256);
    assert!(
        !f.backend.artifact_path(&gone).exists(),
        "its artifact goes"
    );
    assert!(
        !f.backend.artifact_path(&other_handler).exists(),
        "of each handler"
    );
    assert!(
        f.backend.artifact_path(&kept).exists(),
        "another code's stays"
    );
    // A sandbox started before keeps running; a new start finds nothing prepared.
    let e = running
        .invoke(input("[2]", Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(e.outcome, Outcome::Success(Bytes::from_static(b"[2]")));
    assert!(matches!(
        f.backend.start(&gone).await.err(),
        Some(SandboxError::NotPrepared(_))
    ));
    // Nothing that is not a digest is taken for one.
    f.backend.forget_code("");
    f.backend.forget_code("../compiled");
    assert!(f.backend.artifact_path(&kept).exists());
}
