"""Process sandboxes, with the real boto3: Stoke's python3.x and nodejs runtimes (examples/),
AWS's own runtime interface clients as `provided` bootstraps (awslambdaric from PyPI, a Rust
function on the `lambda_runtime` crate), warm reuse and Init Duration, init failures, crashes,
timeouts, and escape and abuse attempts, each of which must fail for the function and leave
the host untouched: no process, cgroup or mount left behind.

The tests use a server of their own (module scope), so that what it leaves behind can be
checked when it stops. Each expectation is what AWS Lambda answers for the same request."""

from __future__ import annotations

import base64
import glob
import io
import json
import os
import re
import socket
import time
import zipfile
from pathlib import Path

import pytest

from stoke_e2e import REPO_ROOT, ROLE, StokeServer, unique_name

FUNCTIONS = Path(__file__).parent / "functions"
EXAMPLES = REPO_ROOT / "examples"
SANDBOX_UID = 993


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def zip_files(files: dict[str, bytes | str], executable=("bootstrap",)) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if name in executable or name.endswith(".so") else 0o644
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, data)
    return buf.getvalue()


def tree(root: Path, prefix: str = "") -> dict[str, bytes]:
    """Every file under `root`, keyed by its path under `prefix`."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            out[prefix + str(p.relative_to(root))] = p.read_bytes()
    return out


def deploy(lam, runtime: str, handler: str, files: dict, **kw) -> str:
    name = unique_name(kw.pop("prefix", runtime.replace(".", "")))
    lam.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": zip_files(files)},
        **kw,
    )
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300}
    )
    return name


def call(lam, name: str, event=None, **kw):
    """Invoke with the log tail: (response, payload bytes, log text)."""
    resp = lam.invoke(
        FunctionName=name,
        Payload=json.dumps(event if event is not None else {}),
        LogType="Tail",
        **kw,
    )
    payload = resp["Payload"].read()
    log = base64.b64decode(resp.get("LogResult", "")).decode(errors="replace")
    return resp, payload, log


def ok(lam, name, event=None, **kw):
    resp, payload, log = call(lam, name, event, **kw)
    assert "FunctionError" not in resp, (payload, log)
    return json.loads(payload), log


def failed(lam, name, event=None, **kw):
    resp, payload, log = call(lam, name, event, **kw)
    assert resp.get("FunctionError") == "Unhandled", (payload, log)
    assert resp["StatusCode"] == 200
    return json.loads(payload), log


def abuse_result(body: dict) -> dict:
    assert body["errorType"] == "PermissionError", body
    return json.loads(body["errorMessage"])


def init_duration(log: str) -> str | None:
    m = re.search(r"Init Duration: ([0-9.]+) ms", log)
    return m.group(1) if m else None


# --------------------------------------------------------------------------------------------
# What a server leaves behind
# --------------------------------------------------------------------------------------------


def cgroup_dirs(pid: int) -> list[str]:
    return glob.glob(f"/sys/fs/cgroup/*/stoke/s{pid}") + glob.glob(f"/sys/fs/cgroup/stoke/s{pid}")


def sandbox_cgroups(pid: int) -> set[str]:
    out = set()
    for d in cgroup_dirs(pid):
        out.update(os.path.join(d, e) for e in os.listdir(d) if os.path.isdir(os.path.join(d, e)))
    return out


def sandbox_processes(pid: int) -> list[int]:
    """Host processes in a cgroup of server `pid`."""
    out = []
    for p in glob.glob("/proc/[0-9]*"):
        try:
            cg = Path(p, "cgroup").read_text()
        except OSError:
            continue
        if f"/stoke/s{pid}/" in cg:
            out.append(int(p.rsplit("/", 1)[1]))
    return out


def orphans(uid: int) -> list[tuple[int, str]]:
    """Processes of the sandbox user that are in no live sandbox's cgroup (there must be
    none): (pid, its pids cgroup)."""
    out = []
    for p in glob.glob("/proc/[0-9]*"):
        try:
            status = Path(p, "status").read_text()
            cgroups = Path(p, "cgroup").read_text()
        except OSError:
            continue
        uid_line = next((x for x in status.splitlines() if x.startswith("Uid:")), "Uid:\t-1")
        if int(uid_line.split()[1]) != uid or "State:\tZ" in status:
            continue
        groups = [line.split(":", 2)[2] for line in cgroups.splitlines() if line.count(":") >= 2]
        live = [g for g in groups if "/stoke/s" in g]
        if not live or not any(
            os.path.isdir(f"/sys/fs/cgroup/{c}{g}") for g in live for c in ("pids", "memory", "")
        ):
            out.append((int(p.rsplit("/", 1)[1]), ",".join(groups)))
    return out


def host_mounts(needle: str) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if needle in line]


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def psrv(tmp_path_factory):
    srv = StokeServer(tmp_path_factory.mktemp("stoke-process"))
    srv.start()
    pid = srv.proc.pid
    try:
        yield srv
    finally:
        if srv.alive():
            srv.stop()
        srv.kill()
    # Nothing is left behind once the server has stopped.
    assert cgroup_dirs(pid) == [], cgroup_dirs(pid)
    assert sandbox_processes(pid) == []
    assert orphans(SANDBOX_UID) == []
    assert host_mounts(str(srv.data_dir)) == []


@pytest.fixture(scope="module")
def plam(psrv):
    return psrv.client(read_timeout=120)


@pytest.fixture
def no_leak(psrv):
    """Checks that a call that kills its environment leaves no cgroup or process of it.

    The reply to a call that ended its environment waits about a second for the teardown; what
    is still busy then goes to the server's cgroup reaper, so this waits a few seconds for it
    (and for a dying process, which shows in the root cgroup for a moment after it left its own).
    """
    pid = psrv.proc.pid
    before = sandbox_cgroups(pid)
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sandbox_cgroups(pid) <= before and orphans(SANDBOX_UID) == []:
            break
        time.sleep(0.1)
    after = sandbox_cgroups(pid)
    assert after <= before, f"cgroups left behind: {after - before}"
    # Every process of the sandbox user belongs to a live sandbox.
    assert orphans(SANDBOX_UID) == []


@pytest.fixture(scope="module")
def hello_python(plam):
    return deploy(plam, "python3.12", "app.handler", tree(EXAMPLES / "hello-python"))


@pytest.fixture(scope="module")
def hello_node(plam):
    return deploy(plam, "nodejs20.x", "index.handler", tree(EXAMPLES / "hello-node"))


@pytest.fixture(scope="module")
def abuse(plam):
    return deploy(
        plam,
        "python3.11",
        "abuse.handler",
        {"abuse.py": (FUNCTIONS / "abuse.py").read_bytes()},
        MemorySize=512,
        Timeout=3,
        prefix="abuse",
    )


# --------------------------------------------------------------------------------------------
# Stoke's runtimes
# --------------------------------------------------------------------------------------------


def test_python_hello_context_and_warm_counter(plam, hello_python):
    cc = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    first, log1 = ok(plam, hello_python, {"name": "Ada"}, ClientContext=cc)
    assert first["message"] == "Hello, Ada!"
    assert first["function_name"] == hello_python
    assert first["function_version"] == "$LATEST"
    assert first["invoked_function_arn"].endswith(f":function:{hello_python}")
    assert first["memory_limit_in_mb"] == "128"
    assert re.fullmatch(r"[0-9a-f-]{36}", first["aws_request_id"])
    assert first["log_group_name"] == f"/aws/lambda/{hello_python}"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", first["log_stream_name"])
    assert 0 < first["remaining_ms"] <= 3000
    assert first["client_context_custom"] == {"k": "v"}
    assert first["trace_id"].startswith("Root=1-")
    assert first["region"] == "us-east-1"
    assert f"hello-python call {first['calls']}" in log1
    assert "START RequestId:" in log1 and "REPORT RequestId:" in log1
    second, log2 = ok(plam, hello_python, {})
    third, log3 = ok(plam, hello_python, {})
    # One environment, call after call: the module global rises; Init only on the cold call.
    assert second["calls"] == first["calls"] + 1 and third["calls"] == first["calls"] + 2
    assert second["log_stream_name"] == first["log_stream_name"]
    if first["calls"] == 1:
        assert init_duration(log1) is not None
    assert init_duration(log2) is None and init_duration(log3) is None


@pytest.mark.parametrize("runtime", ["python3.12", "nodejs20.x"])
def test_what_init_prints_is_logged_between_init_start_and_start(plam, runtime):
    """As on Lambda: a module's output at import is in the cold call's log after INIT_START
    and before START, and in no later call's."""
    if runtime.startswith("python"):
        files = {"app.py": "import sys\nprint('init says hi', file=sys.stderr, flush=True)\n"
                           "def handler(e, c):\n    print('call says hi')\n    return 1\n"}
        handler = "app.handler"
    else:
        files = {"index.js": "console.error('init says hi');\n"
                             "exports.handler = async () => { console.log('call says hi'); return 1; };\n"}
        handler = "index.handler"
    name = deploy(plam, runtime, handler, files, prefix="initlog")
    _, cold = ok(plam, name)
    lines = [ln for ln in cold.splitlines() if ln.strip()]
    assert lines[0].startswith("INIT_START Runtime Version: "), cold
    init_at = next(i for i, ln in enumerate(lines) if "init says hi" in ln)
    start_at = next(i for i, ln in enumerate(lines) if ln.startswith("START RequestId: "))
    call_at = next(i for i, ln in enumerate(lines) if "call says hi" in ln)
    assert 0 < init_at < start_at < call_at, cold
    _, warm = ok(plam, name)
    assert warm.startswith("START RequestId: ") and "init says hi" not in warm, warm


def test_python_handler_error_is_unhandled_with_lambdas_body(plam, hello_python):
    body, log = failed(plam, hello_python, {"fail": "boom"})
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "boom"
    assert isinstance(body["stackTrace"], list) and any("app.py" in f for f in body["stackTrace"])
    assert not any("/var/runtime" in f for f in body["stackTrace"])
    assert "ValueError: boom" in log
    # The environment survives a handled error.
    again, _ = ok(plam, hello_python, {})
    assert again["calls"] >= 2


def test_python_import_error_and_retry(plam):
    name = deploy(plam, "python3.12", "missing.handler", {"app.py": "def handler(e, c): pass\n"})
    for _ in range(2):
        body, log = failed(plam, name)
        assert body["errorType"] == "Runtime.ImportModuleError", body
        assert "Unable to import module 'missing'" in body["errorMessage"]
        # Each call tries a fresh environment: each is a cold start.
        assert init_duration(log) is not None, log


def test_node_async_callback_and_esm_handlers(plam, hello_node):
    first, log = ok(plam, hello_node, {"name": "Node"})
    assert first["message"] == "Hello, Node!"
    assert first["functionName"] == hello_node
    assert first["memoryLimitInMB"] == "128"
    assert first["invokedFunctionArn"].endswith(f":function:{hello_node}")
    assert 0 < first["remainingMs"] <= 3000
    assert "hello-node call" in log
    second, _ = ok(plam, hello_node, {})
    assert second["calls"] == first["calls"] + 1

    files = tree(EXAMPLES / "hello-node")
    cb = deploy(plam, "nodejs20.x", "callback.handler", files)
    out, _ = ok(plam, cb, {})
    assert out["style"] == "callback" and re.fullmatch(r"[0-9a-f-]{36}", out["requestId"])
    body, _ = failed(plam, cb, {"fail": "nope"})
    assert body["errorType"] == "Error" and body["errorMessage"] == "nope"

    esm = deploy(plam, "nodejs22.x", "esm.handler", files)
    out, _ = ok(plam, esm, {"x": 1})
    assert out == {"style": "esm", "event": {"x": 1}}


def test_node_handler_error(plam, hello_node):
    body, log = failed(plam, hello_node, {"fail": "bad input"})
    assert body["errorType"] == "TypeError"
    assert body["errorMessage"] == "bad input"
    assert isinstance(body["trace"], list)
    assert "Invoke Error" in log


def test_node_missing_handler_is_an_import_error(plam):
    name = deploy(plam, "nodejs20.x", "nothere.handler", {"index.js": "exports.handler=()=>1\n"})
    body, _ = failed(plam, name)
    assert body["errorType"] == "Runtime.ImportModuleError", body


# --------------------------------------------------------------------------------------------
# AWS's runtime interface clients as `provided` bootstraps
# --------------------------------------------------------------------------------------------


def ric_dir() -> Path:
    d = Path(os.environ.get("STOKE_RIC_DIR") or REPO_ROOT / ".venv" / "vendor" / "awslambdaric")
    if not (d / "awslambdaric").is_dir():
        pytest.fail(f"awslambdaric is not vendored at {d}: run scripts/test.sh (setup)")
    return d


def test_awslambdaric_as_provided_bootstrap(plam):
    files = tree(ric_dir())
    files["app.py"] = (FUNCTIONS / "ric_app.py").read_bytes()
    files["bootstrap"] = "#!/bin/sh\nexec /usr/bin/python3 -m awslambdaric app.handler\n"
    name = deploy(plam, "provided.al2023", "app.handler", files, prefix="ric")
    out, log = ok(plam, name, {"n": 1})
    assert out["via"] == "awslambdaric"
    assert out["event"] == {"n": 1}
    assert re.fullmatch(r"[0-9a-f-]{36}", out["request_id"])
    assert "awslambdaric handler called" in log
    assert init_duration(log) is not None
    body, _ = failed(plam, name, {"fail": "missing-key"})
    assert body["errorType"] == "KeyError", body
    assert "missing-key" in body["errorMessage"]
    out2, log2 = ok(plam, name, {"n": 2})
    assert out2["event"] == {"n": 2} and init_duration(log2) is None


def native_bootstrap() -> Path:
    p = os.environ.get("STOKE_NATIVE_BOOTSTRAP")
    path = Path(p) if p else Path("/var/tmp/stoke-guest-target/native/debug/bootstrap")
    if not path.is_file():
        pytest.fail(f"the lambda_runtime example is not built at {path}: run scripts/build-native.sh")
    return path


def test_rust_lambda_runtime_as_provided(plam):
    name = deploy(
        plam, "provided.al2", "bootstrap", {"bootstrap": native_bootstrap().read_bytes()}, prefix="rust"
    )
    out, log = ok(plam, name, {"hello": "rust"})
    assert out["runtime"] == "lambda_runtime"
    assert out["echo"] == {"hello": "rust"}
    assert out["function_arn"].endswith(f":function:{name}")
    assert "rust handler called" in log
    body, _ = failed(plam, name, {"fail": "rust says no"})
    assert body["errorMessage"] == "rust says no", body
    assert body["errorType"], body


# --------------------------------------------------------------------------------------------
# Execution environments: init failures, crashes, timeouts
# --------------------------------------------------------------------------------------------


def test_provided_bootstrap_exiting_during_init(plam, no_leak):
    name = deploy(plam, "provided", "x", {"bootstrap": "#!/bin/sh\necho dying >&2\nexit 3\n"})
    body, log = failed(plam, name)
    assert body["errorType"] == "Runtime.ExitError", body
    assert "Runtime exited with error: exit status 3" in body["errorMessage"]
    assert "dying" in log


def test_provided_without_bootstrap_is_an_invalid_entrypoint(plam):
    name = deploy(plam, "provided.al2023", "x", {"README": "no bootstrap here"})
    body, _ = failed(plam, name)
    assert body["errorType"] == "Runtime.InvalidEntrypoint", body


def test_crash_during_a_call_then_a_fresh_environment(plam, psrv):
    name = deploy(plam, "python3.12", "counter.handler", {"counter.py": (FUNCTIONS / "counter.py").read_bytes()})
    pid = psrv.proc.pid
    before = sandbox_cgroups(pid)
    assert ok(plam, name)[0]["calls"] == 1
    env = sandbox_cgroups(pid) - before
    assert env, "the call made an environment with cgroups"
    body, log = failed(plam, name, {"exit": 7})
    assert not env & sandbox_cgroups(pid), "the crashed environment's cgroups are gone"
    assert body["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: exit status 7" in body["errorMessage"]
    assert "exiting" in log
    out, log = ok(plam, name)
    assert out["calls"] == 1 and init_duration(log) is not None


def test_timeout_kills_the_environment(plam, psrv):
    name = deploy(
        plam, "python3.12", "counter.handler", {"counter.py": (FUNCTIONS / "counter.py").read_bytes()}, Timeout=1
    )
    pid = psrv.proc.pid
    before = sandbox_cgroups(pid)
    first = ok(plam, name)[0]
    assert first["calls"] == 1
    env = sandbox_cgroups(pid) - before
    body, log = failed(plam, name, {"sleep": 5})
    assert not env & sandbox_cgroups(pid), "the timed-out environment's cgroups are gone"
    assert not Path(f"/proc/{first['pid']}").exists() or first["pid"] == 1
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]
    assert "Status: timeout" in log
    out, _ = ok(plam, name)
    assert out["calls"] == 1


# --------------------------------------------------------------------------------------------
# Escape and abuse attempts
# --------------------------------------------------------------------------------------------


def test_cannot_write_outside_tmp(plam, abuse):
    body, _ = failed(plam, abuse, {"action": "write_outside_tmp"})
    r = abuse_result(body)
    assert r.pop("/tmp/ok") == "OK"
    assert all(v in ("EROFS", "EACCES", "ENOENT", "EPERM") for v in r.values()), r


def test_cannot_read_host_files(plam, abuse, psrv):
    data = str(psrv.data_dir)
    paths = [
        f"{data}/stoke.db",
        f"{data}/credentials",
        data,
        "/root/.bashrc",
        "/root/.ssh",
        "/home",
        "/etc/shadow",
        # /etc/passwd is there, but Stoke's own (the sandbox user's; test_runtime_env.py).
        "/var/lib",
        "/sys/fs/cgroup",
        str(REPO_ROOT),
    ]
    r = abuse_result(failed(plam, abuse, {"action": "read_host", "paths": paths})[0])
    assert all(v in ("ENOENT", "EACCES") for v in r.values()), r


def test_fork_bomb_is_contained(plam, abuse, no_leak):
    body, _ = failed(plam, abuse, {"action": "fork_bomb"})
    assert body["errorType"] in ("Sandbox.Timedout", "Runtime.OutOfMemory"), body


def test_memory_hog_runs_out_of_memory(plam, no_leak):
    name = deploy(
        plam, "python3.12", "abuse.handler", {"abuse.py": (FUNCTIONS / "abuse.py").read_bytes()},
        MemorySize=128, Timeout=10, prefix="hog",
    )
    body, log = failed(plam, name, {"action": "memory_hog"})
    assert body["errorType"] == "Runtime.OutOfMemory", body
    m = re.search(r"Max Memory Used: (\d+) MB", log)
    assert m and int(m.group(1)) <= 129, log


def test_infinite_loop_times_out(plam, abuse, no_leak):
    body, _ = failed(plam, abuse, {"action": "infinite_loop"})
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 3.00 seconds" in body["errorMessage"]


def test_tmp_cannot_grow_past_ephemeral_storage(plam):
    name = deploy(
        plam, "python3.12", "abuse.handler", {"abuse.py": (FUNCTIONS / "abuse.py").read_bytes()},
        MemorySize=1024, Timeout=30, EphemeralStorage={"Size": 512}, prefix="tmpfill",
    )
    r = abuse_result(failed(plam, name, {"action": "fill_tmp"})[0])
    assert r["error"] == "ENOSPC", r
    assert 400 <= r["written_mb"] <= 512, r


def _host_ip() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
    except OSError:
        return None


def test_network_is_loopback_only_and_runtime_apis_are_private(plam, abuse, psrv, hello_python):
    ok(plam, hello_python, {})  # another sandbox, warm, with its own Runtime API
    targets = [["127.0.0.1", psrv.port]]
    ip = _host_ip()
    if ip:
        targets.append([ip, psrv.port])
    targets.append(["8.8.8.8", 53])
    r = abuse_result(failed(plam, abuse, {"action": "connect", "targets": targets})[0])
    assert r.pop(f"127.0.0.1:{psrv.port}") == "ECONNREFUSED", r
    assert r.pop("runtime_api") == "127.0.0.1:9001"
    # The sandbox's network namespace holds one listening socket: its own Runtime API.
    assert r.pop("listening") == ["0100007F:2329"]
    assert all(v in ("ENETUNREACH", "EHOSTUNREACH", "timeout", "TimeoutError()") for v in r.values()), r
    # And from the host, no Runtime API is reachable.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 9001), timeout=1).close()


def test_mount_and_namespaces_are_refused(plam, abuse):
    r = abuse_result(failed(plam, abuse, {"action": "mount"})[0])
    assert r == {
        "mount": "EPERM",
        "umount": "EPERM",
        "unshare_user": "EPERM",
        "unshare_mount": "EPERM",
    }


def test_ptrace_is_refused(plam, abuse):
    r = abuse_result(failed(plam, abuse, {"action": "ptrace"})[0])
    assert r == {"traceme": "EPERM", "attach_1": "EPERM"}


def test_privileges_cannot_be_raised(plam, abuse):
    r = abuse_result(failed(plam, abuse, {"action": "privileges"})[0])
    assert r["setuid0"] == "EPERM" and r["setgid0"] == "EPERM"
    assert r["chown"] == "EPERM" and r["chroot"] == "EPERM"
    assert r["Uid"].split()[0] == str(SANDBOX_UID)
    for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(r[cap], 16) == 0, r
    assert r["NoNewPrivs"] == "1" and r["Seccomp"] == "2", r
