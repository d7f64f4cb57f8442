//! The process backend on real processes (needs root: namespaces, cgroups, mounts): the
//! launcher and the Runtime API end to end with a `provided` bootstrap written in shell and
//! Python, warm reuse, per-call logs, timeouts, crashes, init failures, that only 0-2 of the
//! launching process's descriptors reach the runtime, that `/tmp` is an ext4 disk of the
//! EphemeralStorage size, that the waiter is the small exec'd helper, that nothing is left
//! behind (processes, cgroups, loop devices, images) once a sandbox is dropped, and that the
//! environments made ahead of cold starts are used, made again, and gone at shutdown.

#![allow(clippy::unwrap_used)] // a test that cannot set up should stop loudly

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use std::os::fd::AsFd;
use std::path::Path;

use stoke_sandbox::process::{ProcessBackend, ProcessConfig, WAITER_ARG};
use stoke_sandbox::{Backend, Execution, FunctionSpec, InvokeInput, Outcome, Sandbox};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// A Python `bootstrap` speaking the Runtime API with urllib: counts calls, logs, exits or
/// sleeps on demand, and fails on `{"fail": …}`.
const BOOTSTRAP: &str = r#"#!/usr/bin/python3
import json, os, sys, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
calls = 0
def post(path, body):
    req = urllib.request.Request(api + path, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req).read()
if os.environ.get("INIT_FAIL"):
    post("/init/error", {"errorMessage": "init broke", "errorType": "Custom.InitError"})
    sys.exit(1)
while True:
    r = urllib.request.urlopen(api + "/invocation/next")
    rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.loads(r.read())
    calls += 1
    print("call", calls, "of", rid, flush=True)
    if "exit" in event:
        os._exit(event["exit"])
    if "sleep" in event:
        time.sleep(event["sleep"])
    if "probe" in event:
        fds = {}
        for n in os.listdir("/proc/self/fd"):
            try:
                fds[n] = os.readlink("/proc/self/fd/" + n)
            except OSError:
                pass
        st = os.statvfs("/tmp")
        tmp = [l.split()[2] for l in open("/proc/self/mounts") if l.split()[1] == "/tmp"]
        info = open("/proc/self/mountinfo").read()
        post(f"/invocation/{rid}/response", {"fds": fds, "tmp_fs": tmp,
            "tmp_bytes": st.f_blocks * st.f_frsize, "tmp_list": os.listdir("/tmp"),
            "mountinfo": info, "task_list": sorted(os.listdir("/var/task"))})
        continue
    if "fail" in event:
        post(f"/invocation/{rid}/error", {"errorMessage": event["fail"], "errorType": "Boom"})
        continue
    post(f"/invocation/{rid}/response", {"calls": calls, "uid": os.getuid(), "pid": os.getpid(),
        "cwd": os.getcwd(), "deadline": r.headers["Lambda-Runtime-Deadline-Ms"],
        "fn": os.environ["AWS_LAMBDA_FUNCTION_NAME"], "mine": os.environ.get("MINE")})
"#;

struct Fixture {
    backend: ProcessBackend,
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A backend that makes every environment at its cold start (so that what one sandbox
    /// leaves behind can be counted).
    fn new() -> Self {
        Self::with_spares(0)
    }

    /// A backend that keeps `spares` network namespaces and `/tmp` disks made ahead.
    fn with_spares(spares: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ProcessConfig::new(dir.path().join("process"));
        // The test binary is no waiter helper: the crate's own helper binary is.
        config.waiter = env!("CARGO_BIN_EXE_stoke-sandbox-waiter").into();
        config.spare_environments = spares;
        Self {
            backend: ProcessBackend::new(config).unwrap(),
            dir,
        }
    }

    fn spec(&self, name: &str, timeout: Duration, env: &[(&str, &str)]) -> FunctionSpec {
        let code_dir = self.dir.path().join("code").join(name);
        std::fs::create_dir_all(&code_dir).unwrap();
        std::fs::set_permissions(&code_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let boot = code_dir.join("bootstrap");
        std::fs::write(&boot, BOOTSTRAP).unwrap();
        std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o755)).unwrap();
        FunctionSpec {
            account: "123456789012".into(),
            function_name: name.into(),
            version: "$LATEST".into(),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
            region: "us-east-1".into(),
            runtime: stoke_core::Runtime::parse("provided.al2023").unwrap(),
            handler: "x".into(),
            code_dir,
            // Each name's code is a blob of its own (its image is named by this).
            code_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(name.as_bytes())),
            memory_mb: 256,
            ephemeral_mb: 512,
            timeout,
            environment: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            credentials: None,
        }
    }

    /// Where the `/tmp` disks' images are (the code's images are under `process/images`).
    fn tmp_disks(&self) -> std::path::PathBuf {
        self.dir.path().join("process/tmp")
    }

    /// The sandboxes' cgroups left after a drop: removed at once unless the kernel still
    /// counts a dying process in one (then the reaper retries, with backoff), so this waits
    /// up to 5 s for them to go.
    async fn groups_left(&self) -> usize {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let n = self.sandbox_groups();
            if n == 0 || std::time::Instant::now() >= until {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn sandbox_groups(&self) -> usize {
        self.backend
            .cgroup_dirs()
            .iter()
            .map(|d| {
                std::fs::read_dir(d)
                    .map(|r| r.flatten().filter(|e| e.path().is_dir()).count())
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// Loop devices whose backing file is under `dir`.
fn loop_devices_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/block").unwrap().flatten() {
        if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file"))
            && b.starts_with(&*dir.to_string_lossy())
        {
            out.push(b.trim().to_owned());
        }
    }
    out
}

/// Waits (up to 10 s) until `n` loop devices of `dir` are attached.
async fn loop_devices_become(dir: &Path, n: usize) {
    for _ in 0..1000 {
        if loop_devices_under(dir).len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("loop devices: {:?}, not {n}", loop_devices_under(dir));
}

/// Waits (up to 10 s) until no loop device whose image is under `devices` and no `/tmp`
/// image of `dir` is left.
async fn nothing_left_under(dir: &Path, devices: &Path) {
    let images = dir.join("process/tmp");
    let mut left = Vec::new();
    for _ in 0..1000 {
        left = loop_devices_under(devices);
        left.extend(
            std::fs::read_dir(&images)
                .unwrap()
                .flatten()
                .map(|e| e.path().display().to_string()),
        );
        if left.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("left behind: {left:?}");
}

/// The waiters among this process's children: (pid, argv, private kB).
fn waiters() -> Vec<(u32, Vec<String>, u64)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split_whitespace().nth(1).unwrap().parse().unwrap();
        let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if ppid != me || argv.get(1).map(String::as_str) != Some(WAITER_ARG) {
            continue;
        }
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
        let kb: u64 = rollup
            .lines()
            .filter(|l| l.starts_with("Private_Clean:") || l.starts_with("Private_Dirty:"))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
            .sum();
        out.push((pid, argv, kb));
    }
    out
}

async fn call(s: &Arc<dyn Sandbox>, payload: &str, timeout: Duration) -> Execution {
    let deadline = tokio::time::Instant::now() + timeout;
    s.invoke(InvokeInput {
        request_id: uuid_like(),
        payload: Bytes::from(payload.to_owned()),
        deadline,
        deadline_unix_ms: 1,
        trace_id: "Root=1-0-0".into(),
        client_context: None,
        invoked_function_arn: None,
        host: None,
    })
    .await
    .unwrap()
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "00000000-0000-0000-0000-{:012}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn success(e: &Execution) -> serde_json::Value {
    match &e.outcome {
        Outcome::Success(b) => serde_json::from_slice(b).unwrap(),
        Outcome::Error(err) => panic!("{err:?} log: {}", String::from_utf8_lossy(&e.log)),
    }
}

fn error_type(e: &Execution) -> String {
    match &e.outcome {
        Outcome::Error(err) => err.error_type.clone(),
        Outcome::Success(b) => panic!("expected an error, got {b:?}"),
    }
}

// One test, so that one backend (one set of server cgroups) is used at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_run_fail_and_leave_nothing_behind() {
    if !is_root() {
        eprintln!("skipped: process sandboxes need root");
        return;
    }
    let fx = Fixture::new();
    let t = Duration::from_secs(5);

    // A descriptor this process holds without close-on-exec (as a server started with
    // `8>>file` would) does not reach the runtime.
    let secret = fx.dir.path().join("secret");
    std::fs::write(&secret, "secret").unwrap();
    let inherited = std::fs::OpenOptions::new()
        .append(true)
        .open(&secret)
        .unwrap();
    rustix::io::fcntl_setfd(inherited.as_fd(), rustix::io::FdFlags::empty()).unwrap();

    // Warm reuse, the environment, per-call logs, peak memory.
    let spec = fx.spec("warm", t, &[("MINE", "yes")]);
    let s = fx.backend.start(&spec).await.unwrap();
    assert_eq!(
        fx.sandbox_groups(),
        4,
        "memory, pids, cpu and freezer groups"
    );
    let first = call(&s, "{}", t).await;
    let v = success(&first);
    assert_eq!(v["calls"], 1);
    assert_eq!(v["uid"], 993);
    assert_eq!(v["pid"], 1, "PID 1 of its own pid namespace");
    assert_eq!(v["cwd"], "/var/task");
    assert_eq!(v["fn"], "warm");
    assert_eq!(v["mine"], "yes");
    assert!(String::from_utf8_lossy(&first.log).contains("call 1 of"));
    assert!(first.max_memory_bytes > 0);
    let second = call(&s, "{}", t).await;
    assert_eq!(success(&second)["calls"], 2);
    assert!(!String::from_utf8_lossy(&second.log).contains("call 1 of"));
    let failed = call(&s, r#"{"fail":"nope"}"#, t).await;
    assert_eq!(error_type(&failed), "Boom");
    assert!(s.reusable());

    // Only 0-2 and the runtime's own socket; /tmp is an ext4 of the EphemeralStorage size.
    let probe = success(&call(&s, r#"{"probe":1}"#, t).await);
    let fds = probe["fds"].as_object().unwrap();
    for (n, target) in fds {
        let target = target.as_str().unwrap();
        assert!(
            n.parse::<u32>().unwrap() < 3 || target.starts_with("socket:"),
            "descriptor {n} -> {target} reached the runtime: {fds:?}"
        );
        assert!(!target.contains("secret"), "{fds:?}");
    }
    assert_eq!(probe["tmp_fs"], serde_json::json!(["ext4"]));
    let tmp = probe["tmp_bytes"].as_u64().unwrap();
    assert!((480 << 20..=512 << 20).contains(&tmp), "{tmp}");
    assert_eq!(probe["tmp_list"], serde_json::json!([]));
    assert!(!loop_devices_under(&fx.tmp_disks()).is_empty());
    // /var/task is an image of its own: `/` of an ext4 on a loop device, read-only, with only
    // the code in it; no mount names the backend's folder.
    let info = probe["mountinfo"].as_str().unwrap();
    let task: Vec<&str> = info
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f[4] == "/var/task")
        .unwrap();
    assert_eq!(task[3], "/", "{info}");
    assert!(task[5].split(',').any(|o| o == "ro"), "{info}");
    let dash = task.iter().position(|f| *f == "-").unwrap();
    assert_eq!(task[dash + 1], "ext4", "{info}");
    assert!(task[dash + 2].starts_with("/dev/loop"), "{info}");
    let dir = fx.dir.path().to_string_lossy().into_owned();
    assert!(!info.contains(&dir), "{info}");
    assert_eq!(probe["task_list"], serde_json::json!(["bootstrap"]));

    // The waiter is the exec'd helper, waiting for PID 1 by pid, and small.
    let w = waiters();
    assert_eq!(w.len(), 1, "{w:?}");
    let (_, argv, kb) = &w[0];
    assert_eq!(argv[0], "stoke-sandbox-waiter");
    assert!(argv[2].parse::<u32>().is_ok(), "{argv:?}");
    assert!(*kb < 8 * 1024, "the waiter holds {kb} kB of private memory");
    drop(s);
    assert_eq!(
        fx.groups_left().await,
        0,
        "a dropped sandbox leaves no cgroup"
    );
    assert!(waiters().is_empty());
    // (The code's image stays attached for the next cold start, until shutdown.)
    nothing_left_under(fx.dir.path(), &fx.tmp_disks()).await;
    drop(inherited);

    // A timeout kills the environment.
    let s = fx.backend.start(&fx.spec("slow", t, &[])).await.unwrap();
    let e = call(&s, r#"{"sleep":10}"#, Duration::from_millis(500)).await;
    assert_eq!(error_type(&e), "Sandbox.Timedout");
    assert!(!s.reusable());
    drop(s);
    assert_eq!(fx.groups_left().await, 0);

    // A crash is Runtime.ExitError with the status.
    let s = fx.backend.start(&fx.spec("crash", t, &[])).await.unwrap();
    let e = call(&s, r#"{"exit":9}"#, t).await;
    assert_eq!(error_type(&e), "Runtime.ExitError");
    match &e.outcome {
        Outcome::Error(err) => assert!(err.message.contains("exit status 9"), "{err:?}"),
        Outcome::Success(_) => unreachable!(),
    }
    assert!(!s.reusable());
    drop(s);

    // An init error is the error the runtime posted.
    let s = fx
        .backend
        .start(&fx.spec("initfail", t, &[("INIT_FAIL", "1")]))
        .await
        .unwrap();
    let e = call(&s, "{}", t).await;
    assert_eq!(error_type(&e), "Custom.InitError");
    assert!(!s.reusable());
    drop(s);
    assert_eq!(fx.groups_left().await, 0);

    fx.backend.shutdown();
    assert!(fx.backend.cgroup_dirs().iter().all(|d| !d.exists()));
    nothing_left_under(fx.dir.path(), fx.dir.path()).await;
    drop(fx);

    // Spare environments (network namespaces and /tmp disks made ahead): a cold start takes
    // one, which is as isolated and empty as one made for it, and another is made.
    let fx = Fixture::with_spares(2);
    loop_devices_become(&fx.tmp_disks(), 2).await;
    assert_eq!(fx.sandbox_groups(), 0, "spares hold no cgroup");
    let s = fx.backend.start(&fx.spec("spare", t, &[])).await.unwrap();
    let probe = success(&call(&s, r#"{"probe":1}"#, t).await);
    assert_eq!(probe["tmp_fs"], serde_json::json!(["ext4"]));
    let tmp = probe["tmp_bytes"].as_u64().unwrap();
    assert!((480 << 20..=512 << 20).contains(&tmp), "{tmp}");
    assert_eq!(probe["tmp_list"], serde_json::json!([]));
    let v = success(&call(&s, "{}", t).await);
    assert_eq!(v["pid"], 1);
    assert_eq!(v["uid"], 993);
    loop_devices_become(&fx.tmp_disks(), 3).await;
    drop(s);
    assert_eq!(fx.groups_left().await, 0);
    loop_devices_become(&fx.tmp_disks(), 2).await;
    fx.backend.shutdown();
    assert!(fx.backend.cgroup_dirs().iter().all(|d| !d.exists()));
    nothing_left_under(fx.dir.path(), fx.dir.path()).await;
}
