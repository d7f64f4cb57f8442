"""Hardening of process sandboxes (issue 10, items 1, 8 and 9), with the real boto3 against a
server of their own:

- descriptors the server was started with (the host's `/` as a directory, a root-only file
  opened for appending, a pipe of the launching process) reach no function: the server marks
  them close-on-exec at start and every sandbox starts its runtime with only 0-2 open;
- `/tmp` is disk of the function's EphemeralStorage size, not memory: 2 GB fit in /tmp of a
  function with 128 MB of memory, a full /tmp answers ENOSPC, and no image file or loop device
  outlives its sandbox or the server;
- each sandbox's waiter is a small exec'd helper outside the sandbox's mount namespace, not a
  copy of the server, and it ends its sandbox when the server dies (even by `kill -9`).
"""

from __future__ import annotations

import glob
import json
import os
import time
from pathlib import Path

import pytest

from stoke_e2e import StokeServer
from test_process import EXAMPLES, deploy, failed, ok, tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="process sandboxes need root")

WAITER_ARG = "__stoke-sandbox-waiter"
O_CLOEXEC = 0o2000000

# Lists every descriptor from 3 up and tries to use each one: list and create in a folder,
# read and write anything that is not a socket.
PROBE_FDS = r'''
import errno, os, stat

def _try(f):
    try:
        return ["ok", f()]
    except OSError as e:
        return [errno.errorcode.get(e.errno, str(e.errno)), None]

def handler(event, context):
    seen = []
    for name in sorted(os.listdir("/proc/self/fd"), key=int):
        fd = int(name)
        if fd < 3:
            continue
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            st = os.fstat(fd)
        except OSError:
            continue  # the listing's own descriptor, closed by now
        r = {"fd": fd, "target": target, "dev": st.st_dev, "ino": st.st_ino,
             "dir": stat.S_ISDIR(st.st_mode), "socket": stat.S_ISSOCK(st.st_mode)}
        if r["dir"]:
            r["list"] = _try(lambda: sorted(os.listdir(fd))[:50])
            r["create"] = _try(lambda: os.close(os.open(
                "escaped-from-a-sandbox", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)))
        elif not r["socket"]:
            os.set_blocking(fd, False)
            r["read"] = _try(lambda: len(os.read(fd, 64)))
            r["write"] = _try(lambda: os.write(fd, b"written from a sandbox\n"))
        seen.append(r)
    return seen
'''

# Writes `bytes` to /tmp/big in 8 MB chunks and fsyncs; says what /tmp is (and on which
# device). `{"exit": true}` ends the runtime, and with it the sandbox.
WRITE_TMP = r'''
import errno, os, time

def handler(event, context):
    if event.get("exit"):
        os._exit(3)
    mount = next(l.split() for l in open("/proc/self/mounts") if l.split()[1] == "/tmp")
    info = next(l.split() for l in open("/proc/self/mountinfo") if l.split()[4] == "/tmp")
    st = os.statvfs("/tmp")
    out = {"fs": mount[2], "options": mount[3], "tmp_bytes": st.f_blocks * st.f_frsize,
           "device": info[2],
           "listing": sorted(os.listdir("/tmp")), "mode": oct(os.stat("/tmp").st_mode & 0o7777),
           "written": 0, "error": None}
    chunk = b"\xa5" * (8 << 20)
    size = event["bytes"]
    t = time.monotonic()
    fd = os.open("/tmp/big", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while out["written"] < size:
            out["written"] += os.write(fd, chunk[: size - out["written"]])
        os.fsync(fd)
    except OSError as e:
        out["error"] = errno.errorcode.get(e.errno, str(e.errno))
    finally:
        os.close(fd)
    out["seconds"] = round(time.monotonic() - t, 2)
    out["size"] = os.stat("/tmp/big").st_size
    os.unlink("/tmp/big")
    return out
'''

# A `provided` runtime that does not end when its Runtime API goes away.
STUBBORN = r'''#!/usr/bin/python3
import json, os, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
while True:
    try:
        r = urllib.request.urlopen(api + "/invocation/next")
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        r.read()
        body = json.dumps({"pid": os.getpid()}).encode()
        urllib.request.urlopen(urllib.request.Request(
            api + f"/invocation/{rid}/response", data=body, method="POST")).read()
    except Exception:
        time.sleep(600)
'''

GB = 1 << 30
MB = 1 << 20


# --------------------------------------------------------------------------------------------
# What a server leaves behind
# --------------------------------------------------------------------------------------------


def loop_devices_of(data_dir: Path) -> list[str]:
    """Loop devices whose backing file is under `data_dir` (a deleted image shows its old
    path with " (deleted)")."""
    out = []
    for f in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            backing = Path(f).read_text().strip()
        except OSError:
            continue
        if backing.startswith(str(data_dir)):
            out.append(f"{f.split('/')[3]}: {backing}")
    return out


def images_in(data_dir: Path) -> list[str]:
    d = data_dir / "process" / "tmp"
    return sorted(os.listdir(d)) if d.is_dir() else []


def backing_file(device: str) -> str | None:
    """The backing file of the loop device `major:minor`, if it is attached."""
    try:
        return Path(f"/sys/dev/block/{device}/loop/backing_file").read_text().strip()
    except OSError:
        return None


def eventually_detached(device: str, backing: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while backing_file(device) == backing:
        assert time.monotonic() < deadline, f"{device} still holds {backing}"
        time.sleep(0.05)


def eventually_nothing_left(data_dir: Path, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while loop_devices_of(data_dir) or images_in(data_dir):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"left behind: loop devices {loop_devices_of(data_dir)}, "
                f"images {images_in(data_dir)}"
            )
        time.sleep(0.1)


def children(pid: int) -> list[int]:
    out = []
    for t in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            out += [int(c) for c in Path(t).read_text().split()]
        except OSError:
            pass
    return out


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def private_kb(pid: int) -> int:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":"):
            fields[parts[0][:-1]] = parts[1]
    return int(fields["Private_Clean"]) + int(fields["Private_Dirty"])


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inherited(tmp_path_factory):
    """Descriptors without close-on-exec for the server: `/`, a root-only file in append
    mode, the write end of a pipe."""
    d = tmp_path_factory.mktemp("inherited")
    secret = d / "root-only"
    secret.write_text("secret\n")
    os.chmod(secret, 0o600)
    root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    file_fd = os.open(secret, os.O_WRONLY | os.O_APPEND)
    pipe_r, pipe_w = os.pipe()
    fds = {"root": root_fd, "file": file_fd, "pipe": pipe_w}
    ids = {k: (os.fstat(fd).st_dev, os.fstat(fd).st_ino) for k, fd in fds.items()}
    yield {"fds": fds, "ids": ids, "secret": secret, "pipe_r": pipe_r}
    for fd in (root_fd, file_fd, pipe_r, pipe_w):
        os.close(fd)


@pytest.fixture(scope="module")
def hsrv(tmp_path_factory, inherited):
    srv = StokeServer(tmp_path_factory.mktemp("stoke-hardening"))
    srv.pass_fds = tuple(inherited["fds"].values())
    srv.start()
    try:
        yield srv
    finally:
        if srv.alive():
            srv.stop()
        srv.kill()
    # Nothing of any sandbox's /tmp outlives the server.
    eventually_nothing_left(srv.data_dir)


@pytest.fixture(scope="module")
def hlam(hsrv):
    if "process sandboxes are off" in hsrv.log():
        pytest.skip("process sandboxes are off on this machine")
    return hsrv.client(read_timeout=120)


# --------------------------------------------------------------------------------------------
# Inherited descriptors
# --------------------------------------------------------------------------------------------


def test_the_server_marks_inherited_descriptors_close_on_exec(hsrv, inherited):
    for name, fd in inherited["fds"].items():
        info = Path(f"/proc/{hsrv.proc.pid}/fdinfo/{fd}").read_text()
        flags = int(next(x for x in info.splitlines() if x.startswith("flags:")).split()[1], 8)
        assert flags & O_CLOEXEC, f"{name} (fd {fd}) is not close-on-exec in the server: {info}"


def test_inherited_descriptors_do_not_reach_a_function(hlam, inherited):
    name = deploy(hlam, "python3.12", "probe.handler", {"probe.py": PROBE_FDS}, prefix="fds")
    seen, _ = ok(hlam, name)
    ids = {v: k for k, v in inherited["ids"].items()}
    leaked = [r for r in seen if (r["dev"], r["ino"]) in ids]
    assert not leaked, f"the host's descriptors reached the function: {leaked}"
    for r in seen:
        # What is left is the runtime's own: its Runtime API connection and the like.
        assert r["socket"] or r["target"].startswith(("anon_inode:", "/var/", "/usr/", "/dev/")), r
        assert r["target"] != "/" and str(inherited["secret"]) not in r["target"], r
    # Nothing reached the host through them.
    assert inherited["secret"].read_text() == "secret\n"
    assert not Path("/escaped-from-a-sandbox").exists()
    os.set_blocking(inherited["pipe_r"], False)
    with pytest.raises(BlockingIOError):
        os.read(inherited["pipe_r"], 64)


# --------------------------------------------------------------------------------------------
# /tmp is disk
# --------------------------------------------------------------------------------------------


def test_tmp_holds_2_gb_with_128_mb_of_memory(hlam, hsrv):
    name = deploy(
        hlam, "python3.12", "writer.handler", {"writer.py": WRITE_TMP},
        MemorySize=128, Timeout=60, EphemeralStorage={"Size": 10240}, prefix="tmp2g",
    )
    out, log = ok(hlam, name, {"bytes": 2 * GB})
    assert out["error"] is None, (out, log)
    assert out["written"] == out["size"] == 2 * GB, out
    assert out["fs"] == "ext4", out
    assert "nosuid" in out["options"] and "nodev" in out["options"], out
    assert out["mode"] == "0o1777" and out["listing"] == [], out
    # 10240 MB of disk, less the file system's own metadata.
    assert 9.5 * GB <= out["tmp_bytes"] <= 10 * GB, out
    print(f"2 GB written to /tmp and fsynced in {out['seconds']} s")
    # While the sandbox lives, its disk is a loop device whose image has left the data dir.
    backing = backing_file(out["device"])
    assert backing and backing.startswith(str(hsrv.data_dir)), (out["device"], backing)
    assert backing.endswith(" (deleted)"), backing
    assert images_in(hsrv.data_dir) == []
    # When the sandbox ends, so does its disk (the file system, the device, the image).
    failed(hlam, name, {"exit": True})
    eventually_detached(out["device"], backing)
    assert images_in(hsrv.data_dir) == []


def test_tmp_beyond_ephemeral_storage_is_enospc(hlam):
    name = deploy(
        hlam, "python3.12", "writer.handler", {"writer.py": WRITE_TMP},
        MemorySize=128, Timeout=30, EphemeralStorage={"Size": 512}, prefix="tmpfull",
    )
    out, log = ok(hlam, name, {"bytes": 600 * MB})
    assert out["error"] == "ENOSPC", (out, log)
    assert 400 * MB <= out["written"] <= 512 * MB, out
    assert 480 * MB <= out["tmp_bytes"] <= 512 * MB, out
    # The same sandbox goes on (nothing was killed for memory), with its /tmp empty again.
    again, _ = ok(hlam, name, {"bytes": 8 * MB})
    assert again["error"] is None and again["size"] == 8 * MB, again


# --------------------------------------------------------------------------------------------
# The waiter
# --------------------------------------------------------------------------------------------


def test_the_waiter_is_a_small_exec_helper_outside_the_sandbox(hlam, hsrv):
    name = deploy(hlam, "python3.12", "app.handler", tree(EXAMPLES / "hello-python"), prefix="waiter")
    first, _ = ok(hlam, name)
    server = hsrv.proc.pid
    waiters = [p for p in children(server) if cmdline(p)[1:2] == [WAITER_ARG]]
    assert waiters, f"no waiter among the server's children: {[cmdline(p) for p in children(server)]}"
    for w in waiters:
        init = children(w)
        assert len(init) == 1, (w, init)
        # PID 1 of the sandbox, waited for by pid.
        assert cmdline(w)[2] == str(init[0]), cmdline(w)
        # In the host's mount namespace and root, not the sandbox's.
        assert os.readlink(f"/proc/{w}/ns/mnt") == os.readlink(f"/proc/{server}/ns/mnt")
        assert os.readlink(f"/proc/{w}/root") == "/"
        assert os.readlink(f"/proc/{init[0]}/ns/mnt") != os.readlink(f"/proc/{server}/ns/mnt")
        kb = private_kb(w)
        assert kb < 8 * 1024, f"waiter {w} holds {kb} kB of private memory"
    # The sandbox still serves calls.
    again, _ = ok(hlam, name)
    assert again["calls"] == first["calls"] + 1


def test_a_sandbox_does_not_outlive_a_killed_server(tmp_path_factory):
    srv = StokeServer(tmp_path_factory.mktemp("stoke-kill9"))
    srv.start()
    try:
        if "process sandboxes are off" in srv.log():
            pytest.skip("process sandboxes are off on this machine")
        lam = srv.client(read_timeout=60)
        name = deploy(lam, "provided.al2023", "x", {"bootstrap": STUBBORN}, prefix="stubborn")
        assert ok(lam, name)[0]["pid"] == 1
        waiters = [p for p in children(srv.proc.pid) if cmdline(p)[1:2] == [WAITER_ARG]]
        tree_ = waiters + [c for w in waiters for c in children(w)]
        assert len(tree_) == 2, tree_
        assert loop_devices_of(srv.data_dir)
        srv.proc.kill()
        srv.proc.wait()
        # The waiter sees its server go and kills the sandbox's PID 1: the whole sandbox, its
        # mounts and its /tmp disk go with it, although the runtime would sleep on.
        deadline = time.monotonic() + 10
        while any(alive(p) for p in tree_) or loop_devices_of(srv.data_dir):
            assert time.monotonic() < deadline, (
                [p for p in tree_ if alive(p)], loop_devices_of(srv.data_dir))
            time.sleep(0.05)
    finally:
        srv.kill()
