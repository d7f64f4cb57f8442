"""A python3.x function that tries to escape or abuse its sandbox (tests/e2e/test_process.py).

Each action raises an error whose message is a JSON object of what happened: every attempt
must fail for the function (the test checks the errno of each).
"""

import ctypes
import errno
import json
import os
import socket

libc = ctypes.CDLL(None, use_errno=True)


def _errno_name(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) else repr(e)


def _try(fn):
    try:
        fn()
        return "OK"
    except Exception as e:  # noqa: BLE001 - any failure is what we want to see
        return _errno_name(e)


def _libc(name, *args):
    ctypes.set_errno(0)
    r = getattr(libc, name)(*args)
    if r == -1:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    return "OK"


def _write(path):
    with open(path, "w") as f:
        f.write("x")


def _read(path):
    if os.path.isdir(path):
        os.listdir(path)
        with open(os.path.join(path, ".bashrc")) as f:
            f.read()
    else:
        with open(path, "rb") as f:
            f.read()


def _connect(host, port):
    with socket.create_connection((host, port), timeout=2):
        pass


def handler(event, context):
    a = event["action"]
    out = {}
    if a == "write_outside_tmp":
        for p in ["/var/task/x", "/etc/x", "/x", "/usr/x", "/var/runtime/x", "/proc/x", "/dev/x"]:
            out[p] = _try(lambda p=p: _write(p))
        out["/tmp/ok"] = _try(lambda: _write("/tmp/ok"))
    elif a == "read_host":
        for p in event["paths"]:
            out[p] = _try(lambda p=p: _read(p))
    elif a == "fork_bomb":
        while True:
            try:
                os.fork()
            except OSError:
                pass
    elif a == "memory_hog":
        hog = []
        while True:
            hog.append(bytearray(16 * 1024 * 1024))
    elif a == "infinite_loop":
        while True:
            pass
    elif a == "fill_tmp":
        written = 0
        chunk = b"\0" * (1024 * 1024)
        try:
            with open("/tmp/fill", "wb") as f:
                while True:
                    f.write(chunk)
                    f.flush()
                    written += len(chunk)
        except OSError as e:
            out["error"] = _errno_name(e)
        out["written_mb"] = written // (1024 * 1024)
    elif a == "connect":
        for host, port in event["targets"]:
            out[f"{host}:{port}"] = _try(lambda h=host, p=port: _connect(h, p))
        with open("/proc/net/tcp") as f:
            out["listening"] = [
                line.split()[1] for line in f.readlines()[1:] if line.split()[3] == "0A"
            ]
        out["runtime_api"] = os.environ["AWS_LAMBDA_RUNTIME_API"]
    elif a == "mount":
        out["mount"] = _libc("mount", b"tmpfs", b"/tmp", b"tmpfs", 0, None)
        out["umount"] = _libc("umount2", b"/var/task", 2)
        out["unshare_user"] = _libc("unshare", 0x10000000)
        out["unshare_mount"] = _libc("unshare", 0x00020000)
    elif a == "ptrace":
        out["traceme"] = _libc("ptrace", 0, 0, None, None)
        out["attach_1"] = _libc("ptrace", 16, 1, None, None)
    elif a == "privileges":
        out["setuid0"] = _try(lambda: os.setuid(0))
        out["setgid0"] = _try(lambda: os.setgid(0))
        out["chown"] = _try(lambda: os.chown("/tmp", 0, 0))
        out["chroot"] = _try(lambda: os.chroot("/tmp"))
        with open("/proc/self/status") as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        for k in ["Uid", "CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"]:
            out[k] = status.get(k, "").strip()
    else:
        return {"unknown": a}
    raise PermissionError(json.dumps(out))
