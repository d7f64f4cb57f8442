"""What a function sees, as Lambda's (issue 12): its language runtime at /var/lang and no host
path, the runtime's own boto3 under /var/runtime, Lambda's environment variables, a sandbox
user with a passwd entry and a home folder, and the runtime version that really serves it, named
in the INIT_START line and in RuntimeVersionConfig, or refused with --strict-runtimes.

Real python3 and node functions on a server of their own (module scope), with the real boto3.
Each expectation is what AWS Lambda shows: the environment variables of "Defined runtime
environment variables" (the developer guide), sbx_user1051 with no HOME set, sys.path with
/var/task first, RuntimeVersionConfig for managed runtimes only."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from stoke_e2e import REGION, REPO_ROOT, ROLE, StokeServer, unique_name, wasm_zip
from test_process import FUNCTIONS, deploy, ok, zip_files

# What Lambda's root holds (and a Debian host's /usr merge links); nothing else may show.
ROOT_ENTRIES = {
    "bin", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "opt", "proc", "sbin",
    "tmp", "usr", "var",
}
# Where a python3.x function's modules may come from.
PY_DIRS = ("/var/task", "/var/runtime", "/var/lang/", "/opt/")
ARN = re.compile(rf"arn:aws:lambda:{REGION}::runtime:[0-9a-f]{{64}}")
LOG_STREAM = re.compile(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}")
LIBRARY_PATH = "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"


def pins() -> dict[str, str]:
    """The runtime libraries' pins (scripts/runtime-libs.txt)."""
    text = (REPO_ROOT / "scripts" / "runtime-libs.txt").read_text()
    return dict(line.split("==") for line in text.split() if "==" in line and not line.startswith("#"))


def interpreter(cmd: str) -> tuple[str, str, list[int]]:
    """(real executable, install prefix, version) of the Python `cmd`, as the server finds it."""
    out = subprocess.run(
        [cmd, "-c", "import os,sys;print(os.path.realpath(sys.executable));"
         "print(os.path.realpath(sys.base_prefix));print(*sys.version_info[:3])"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")
    return out[0], out[1], [int(x) for x in out[2].split()]


def node_version() -> list[int]:
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.strip().lstrip("v").split(".")]


def host_paths(srv: StokeServer, python_cmd: str) -> list[str]:
    """Host paths that must not be visible inside a sandbox."""
    exe, prefix, _ = interpreter(python_cmd)
    paths = [
        "/root", "/root/.bashrc", os.path.expanduser("~"), exe, prefix, str(REPO_ROOT),
        str(srv.data_dir), str(srv.workdir), os.environ.get("STOKE_RUNTIME_LIBS") or "/var/tmp",
        "/var/lib", "/var/tmp", "/srv", "/mnt", "/media",
    ]
    node = shutil.which("node")
    if node:
        paths.append(os.path.realpath(node))
    # The host's /usr is the sandbox's too (as Lambda's image has one); anything else is not.
    return [p for p in paths if p != "/usr" and not p.startswith("/usr/")]


@pytest.fixture(scope="module")
def rsrv(tmp_path_factory):
    srv = StokeServer(tmp_path_factory.mktemp("stoke-runenv"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def rlam(rsrv):
    return rsrv.client(read_timeout=120)


def probe_py(lam, runtime: str, **kw) -> str:
    # boto3's first import and client take a second or two on a loaded machine.
    return deploy(lam, runtime, "env_probe.handler",
                  {"env_probe.py": (FUNCTIONS / "env_probe.py").read_bytes()}, Timeout=30, **kw)


def check_python_tree(out: dict, hidden: list[str], version: list[int]) -> None:
    """The file tree, search path and interpreter of a python3.x function are Lambda's."""
    assert set(out["root"]) <= ROOT_ENTRIES, out["root"]
    assert "root" not in out["root"]
    visible = {p: s for p, s in out["paths"].items() if s not in ("ENOENT", "EACCES")}
    assert visible == {}, f"host paths visible in the sandbox: {visible}"
    xy = f"python{version[0]}.{version[1]}"
    assert out["executable"] == f"/var/lang/bin/{xy}"
    assert out["prefixes"] == ["/var/lang"] * 3
    assert out["version"] == version
    path = out["sys_path"]
    assert path[:4] == ["/var/task", f"/opt/python/lib/{xy}/site-packages", "/opt/python",
                        "/var/runtime"], path
    assert f"/var/lang/lib/{xy}" in path
    assert all(p.startswith(PY_DIRS) for p in path), path
    # An interpreter's own site-packages never show the host's packages.
    assert all(v == [] for v in out["site_packages"].values()), out["site_packages"]
    assert all(d.startswith(PY_DIRS) for d in out["module_dirs"]), out["module_dirs"]
    libs = out["boto3"]
    assert isinstance(libs, dict), f"boto3 is not importable: {libs}"
    want = pins()
    assert libs["boto3"] == [want["boto3"], "/var/runtime/boto3/__init__.py"]
    assert libs["botocore"] == [want["botocore"], "/var/runtime/botocore/__init__.py"]
    assert libs["client"] == "lambda"
    # The sandbox user, as Lambda's: a passwd entry and a home folder, HOME not set.
    assert out["user"] == "sbx_user1051"
    assert out["home"] == "/home/sbx_user1051"
    assert "HOME" not in out["env"]
    # Stoke's passwd and group, not the host's.
    assert out["passwd"] == ("root:x:0:0:root:/root:/sbin/nologin\n"
                             "sbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\n")
    assert out["group"] == "root:x:0:\nsbx_user1051:x:990:\n"
    assert out["opt"] == []


def test_python_sees_lambdas_tree_and_its_own_boto3(rlam, rsrv):
    name = probe_py(rlam, "python3.12")
    hidden = host_paths(rsrv, "python3")
    out, _ = ok(rlam, name, {"paths": hidden})
    check_python_tree(out, hidden, interpreter("python3")[2])


def test_python_environment_is_lambdas(rlam):
    name = probe_py(rlam, "python3.12", MemorySize=256,
                    Environment={"Variables": {"MINE": "yes", "LANG": "C.UTF-8"}})
    out, _ = ok(rlam, name, {})
    env = out["env"]
    want = {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": "env_probe.handler",
        "TZ": ":UTC",
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": f"/var/lang/lib:{LIBRARY_PATH}",
        "PYTHONPATH": "/var/runtime",
        # The function's own variables; LANG is one Lambda lets a function replace.
        "MINE": "yes",
        "LANG": "C.UTF-8",
    }
    got = {k: env.get(k) for k in want}
    assert got == want
    assert LOG_STREAM.fullmatch(env["AWS_LAMBDA_LOG_STREAM_NAME"]), env
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"]), env
    # The function's credentials, as Lambda's execution role gives them (issue 13).
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", env["AWS_ACCESS_KEY_ID"]), env
    assert len(env["AWS_SECRET_ACCESS_KEY"]) == 40 and env["AWS_SESSION_TOKEN"], env
    # Nothing of the host's environment (the server's) reaches a function.
    extra = set(env) - set(want) - {
        "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_RUNTIME_API", "_X_AMZN_TRACE_ID",
        "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "LC_CTYPE",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    }
    assert extra == set(), extra


def test_node_sees_lambdas_tree_home_and_environment(rlam, rsrv):
    name = deploy(rlam, "nodejs20.x", "env_probe.handler",
                  {"env_probe.js": (FUNCTIONS / "env_probe.js").read_bytes()})
    out, _ = ok(rlam, name, {"paths": host_paths(rsrv, "python3")})
    assert set(out["root"]) <= ROOT_ENTRIES, out["root"]
    visible = {p: s for p, s in out["paths"].items() if s not in ("ENOENT", "EACCES")}
    assert visible == {}, f"host paths visible in the sandbox: {visible}"
    # uv_os_homedir works (the AWS SDK for JavaScript v3 needs it).
    assert out["homedir"] == "/home/sbx_user1051"
    assert out["user"] == "sbx_user1051"
    assert out["execPath"] == "/var/lang/bin/node"
    assert out["opt"] == []
    env = out["env"]
    want = {
        "AWS_EXECUTION_ENV": "AWS_Lambda_nodejs20.x",
        "NODE_PATH": "/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules:"
                     "/var/runtime/node_modules:/var/runtime:/var/task",
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": f"/var/lang/lib:{LIBRARY_PATH}",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": "env_probe.handler",
        "HOME": None,
        "PYTHONPATH": None,
    }
    assert {k: env.get(k) for k in want} == want


def test_init_start_and_runtime_version_config_name_the_real_version(rlam, rsrv):
    _, _, (a, b, c) = interpreter("python3")
    n = node_version()
    py = {}
    for runtime in ("python3.11", "python3.12"):
        name = unique_name("rv")
        created = rlam.create_function(
            FunctionName=name, Runtime=runtime, Role=ROLE, Handler="env_probe.handler", Timeout=30,
            Code={"ZipFile": zip_files({"env_probe.py": (FUNCTIONS / "env_probe.py").read_bytes()})},
        )
        arn = created["RuntimeVersionConfig"]["RuntimeVersionArn"]
        assert ARN.fullmatch(arn), created
        rlam.get_waiter("function_active_v2").wait(FunctionName=name,
                                                   WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
        assert rlam.get_function(FunctionName=name)["Configuration"]["RuntimeVersionConfig"] == {
            "RuntimeVersionArn": arn}
        assert rlam.get_function_configuration(FunctionName=name)["RuntimeVersionConfig"] == {
            "RuntimeVersionArn": arn}
        # The cold call's first line names the version that really runs; a warm call has none.
        _, log = ok(rlam, name, {})
        first = log.splitlines()[0]
        assert first == f"INIT_START Runtime Version: python:{a}.{b}.v{c}\tRuntime Version ARN: {arn}", log
        _, warm = ok(rlam, name, {})
        assert "INIT_START" not in warm and warm.startswith("START RequestId:"), warm
        updated = rlam.update_function_configuration(FunctionName=name, MemorySize=256)
        assert updated["RuntimeVersionConfig"] == {"RuntimeVersionArn": arn}
        py[runtime] = arn
    # One interpreter serves both (the nearest for the other): one runtime version.
    assert py["python3.11"] == py["python3.12"]

    node = deploy(rlam, "nodejs20.x", "env_probe.handler",
                  {"env_probe.js": (FUNCTIONS / "env_probe.js").read_bytes()})
    arn = rlam.get_function_configuration(FunctionName=node)["RuntimeVersionConfig"]["RuntimeVersionArn"]
    assert ARN.fullmatch(arn) and arn != py["python3.11"]
    _, log = ok(rlam, node, {})
    assert log.splitlines()[0] == (
        f"INIT_START Runtime Version: nodejs:{n[0]}.v{n[1]}\tRuntime Version ARN: {arn}"), log

    # Not for provided* or wasm (AWS answers RuntimeVersionConfig for managed runtimes only).
    provided = unique_name("rvprov")
    created = rlam.create_function(FunctionName=provided, Runtime="provided.al2023", Role=ROLE,
                                   Handler="x", Code={"ZipFile": zip_files({"bootstrap": "#!/bin/sh\n"})})
    assert "RuntimeVersionConfig" not in created
    assert "RuntimeVersionConfig" not in rlam.get_function_configuration(FunctionName=provided)
    wasm = unique_name("rvwasm")
    created = rlam.create_function(FunctionName=wasm, Runtime="wasm", Role=ROLE,
                                   Handler="hello.wasm", Code={"ZipFile": wasm_zip()})
    assert "RuntimeVersionConfig" not in created

    # `stoke serve` said at start which interpreter serves each runtime, the nearest included.
    log = rsrv.log()
    assert f"runtime python3.11 -> Python {a}.{b}.{c} (" in log, log
    if b != 12:
        assert re.search(rf"runtime python3\.12 -> Python {a}\.{b}\.{c} \(.*\) \(the nearest version", log), log


def test_strict_runtimes_refuse_another_version_and_debian_python_is_at_var_lang(tmp_path_factory):
    """--strict-runtimes: a function of a version no interpreter has goes Failed with the reason;
    one of the version served runs. The server is given Debian's /usr/bin/python3.11 where there
    is one (the machine of record's), whose /var/lang is composed from /usr."""
    debian = Path("/usr/bin/python3.11")
    cmd = str(debian) if debian.exists() else "python3"
    _, _, version = interpreter(cmd)
    have = f"python{version[0]}.{version[1]}"
    other = "python3.13" if have == "python3.12" else "python3.12"
    srv = StokeServer(tmp_path_factory.mktemp("stoke-strict"),
                      extra_args=["--strict-runtimes", "--python", cmd])
    srv.start()
    try:
        lam = srv.client(read_timeout=120)
        assert re.search(rf"runtime {other} -> not served: .*--strict-runtimes", srv.log()), srv.log()

        name = unique_name("strict")
        created = lam.create_function(
            FunctionName=name, Runtime=other, Role=ROLE, Handler="env_probe.handler",
            Code={"ZipFile": zip_files({"env_probe.py": (FUNCTIONS / "env_probe.py").read_bytes()})},
        )
        assert "RuntimeVersionConfig" not in created
        for _ in range(300):
            conf = lam.get_function_configuration(FunctionName=name)
            if conf["State"] != "Pending":
                break
            time.sleep(0.1)
        assert conf["State"] == "Failed", conf
        assert conf["StateReasonCode"] == "InvalidRuntime", conf
        v = ".".join(map(str, version))
        assert conf["StateReason"] == (
            f"The runtime {other} is not available on this Stoke server: it has Python {v} "
            f"({interpreter(cmd)[0]}) and no interpreter of the version {other} names, and "
            f"--strict-runtimes refuses to serve it with another version (add one with --python "
            f"{other}=PATH)."), conf
        assert "RuntimeVersionConfig" not in conf

        served = probe_py(lam, have)
        hidden = host_paths(srv, cmd)
        out, log = ok(lam, served, {"paths": hidden})
        check_python_tree(out, hidden, version)
        assert log.startswith(f"INIT_START Runtime Version: python:{version[0]}.{version[1]}.v{version[2]}\t")
        if cmd == str(debian):
            # Debian's own packages (dist-packages) stay out of the path.
            assert not any("dist-packages" in p for p in out["sys_path"]), out["sys_path"]
    finally:
        srv.stop()


def test_node_functions_find_the_aws_sdk_v3_under_var_runtime(rlam):
    """As Lambda's nodejs runtimes ship it: the AWS SDK for JavaScript v3 clients resolve from
    /var/runtime/node_modules at the pinned versions (scripts/runtime-libs-node), and a client
    is built from the function's environment alone."""
    pinned = json.loads((REPO_ROOT / "scripts/runtime-libs-node/package.json").read_text())
    probe = """
const fs = require("fs");
exports.handler = async () => {
  const out = {};
  for (const name of %s) {
    const entry = require.resolve(name);
    const root = entry.slice(0, entry.indexOf("/node_modules/") + "/node_modules/".length) + name;
    out[name] = [JSON.parse(fs.readFileSync(root + "/package.json", "utf8")).version, entry];
  }
  const { LambdaClient } = require("@aws-sdk/client-lambda");
  out.region = await new LambdaClient({}).config.region();
  return out;
};
""" % json.dumps(sorted(pinned["dependencies"]))
    name = deploy(rlam, "nodejs20.x", "index.handler", {"index.js": probe}, Timeout=30, MemorySize=256)
    out, log = ok(rlam, name)
    assert out.pop("region") == REGION, (out, log)
    for pkg, version in pinned["dependencies"].items():
        got_version, entry = out[pkg]
        assert got_version == version, (pkg, out[pkg])
        assert entry.startswith(f"/var/runtime/node_modules/{pkg}/"), (pkg, entry)


# Reads the sandbox's mount table, tries to write into each read-only tree, and imports the
# runtime's own SDK (so /var/runtime still works from its image).
MOUNTS_PY = r'''
import errno, os

def handler(event, context):
    out = {"mountinfo": open("/proc/self/mountinfo").read().splitlines(), "writes": {}}
    for d in ("/var/task", "/var/lang", "/var/runtime"):
        try:
            open(d + "/written", "w").close()
            out["writes"][d] = "written"
        except OSError as e:
            out["writes"][d] = errno.errorcode.get(e.errno, str(e.errno))
    import boto3
    out["sdk"] = boto3.__file__
    out["task"] = sorted(os.listdir("/var/task"))
    return out
'''

MOUNTS_JS = r'''
const fs = require("fs");
exports.handler = async () => {
  const out = {mountinfo: fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter(Boolean),
               writes: {}};
  for (const d of ["/var/task", "/var/lang", "/var/runtime"]) {
    try { fs.writeFileSync(d + "/written", "x"); out.writes[d] = "written"; } catch (e) { out.writes[d] = e.code; }
  }
  out.sdk = require.resolve("@aws-sdk/client-lambda");
  out.task = fs.readdirSync("/var/task").sort();
  return out;
};
'''


def loop_backing_files() -> list[str]:
    """The image file of every attached loop device of this machine."""
    out = []
    for dev in Path("/sys/block").glob("loop*"):
        try:
            out.append((dev / "loop" / "backing_file").read_text().strip())
        except OSError:
            pass
    return out


def check_mountinfo(out: dict, banned: list[str], handler_file: str, sdk_prefix: str) -> None:
    lines = out["mountinfo"]
    named = [line for line in lines if any(b in line for b in banned)]
    assert named == [], f"host paths in /proc/self/mountinfo: {named}"
    by_point = {}
    for line in lines:
        f = line.split(" ")
        dash = f.index("-")
        by_point[f[4]] = {"root": f[3], "options": f[5].split(","), "fs": f[dash + 1], "source": f[dash + 2]}
    for d in ("/var/task", "/var/lang", "/var/runtime"):
        m = by_point[d]
        # A file system of its own: its root is the mount's, on a loop device, read-only.
        assert m["root"] == "/" and m["fs"] == "ext4" and m["source"].startswith("/dev/loop"), (d, m)
        assert "ro" in m["options"], (d, m)
        assert out["writes"][d] == "EROFS", out["writes"]
    # /etc/passwd and /etc/group are files of the sandbox's root, not mounts of the host's.
    assert "/etc/passwd" not in by_point and "/etc/group" not in by_point, by_point
    assert out["task"] == [handler_file], out["task"]
    assert out["sdk"].startswith(sdk_prefix), out["sdk"]


def test_mountinfo_names_no_host_path_and_images_go_with_their_code(tmp_path_factory):
    """Issue 12: inside a Python and a Node sandbox, /proc/self/mountinfo names no host path:
    /var/lang, /var/runtime and /var/task are read-only ext4 images of their own (made at deploy
    time under the data dir), still working. A code image goes when its function is deleted, a
    missing one is made again at the next cold start after a restart, and a stopped server
    leaves no loop device attached to any of its images."""
    srv = StokeServer(tmp_path_factory.mktemp("stoke-mounts"))
    srv.start()
    try:
        lam = srv.client(read_timeout=120)
        py = deploy(lam, "python3.12", "mounts.handler", {"mounts.py": MOUNTS_PY}, Timeout=30)
        js = deploy(lam, "nodejs20.x", "mounts.handler", {"mounts.js": MOUNTS_JS}, Timeout=30)
        exe, prefix, _ = interpreter("python3")
        banned = ["/root", "/home", "/var/tmp", str(srv.data_dir), str(srv.workdir),
                  str(REPO_ROOT), prefix, os.path.dirname(exe)]
        if os.environ.get("STOKE_RUNTIME_LIBS"):
            banned.append(os.environ["STOKE_RUNTIME_LIBS"])
        out, log = ok(lam, py)
        check_mountinfo(out, banned, "mounts.py", "/var/runtime/boto3/")
        out, log = ok(lam, js)
        check_mountinfo(out, banned, "mounts.js", "/var/runtime/node_modules/@aws-sdk/client-lambda/")

        code = lam.get_function(FunctionName=py)["Configuration"]["CodeSha256"]
        image = srv.data_dir / "process" / "images" / "code" / f"{base64.b64decode(code).hex()}.ext4"
        assert image.is_file(), sorted((srv.data_dir / "process" / "images" / "code").iterdir())
        srv.stop()
        mine = [f for f in loop_backing_files() if f.startswith(str(srv.data_dir))]
        assert mine == [], mine

        # A restart finds the images again; one removed by hand is made again.
        image.unlink()
        srv.start()
        out, _ = ok(lam, py)
        check_mountinfo(out, banned, "mounts.py", "/var/runtime/boto3/")
        assert image.is_file()
        lam.delete_function(FunctionName=py)
        for _ in range(100):
            if not image.exists():
                break
            time.sleep(0.05)
        assert not image.exists(), "the deleted function's code image is still there"
    finally:
        if srv.alive():
            srv.stop()
        srv.kill()
    mine = [f for f in loop_backing_files() if f.startswith(str(srv.data_dir))]
    assert mine == [], mine
