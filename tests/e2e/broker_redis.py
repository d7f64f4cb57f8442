"""A real `redis-server` for the event source tests (see `brokers`): `RedisServer` and its
small RESP client.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

from stoke_e2e import free_port


def redis_binary() -> str:
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(
        "redis-server not found: install the Debian package `redis-server` "
        "(scripts/test.sh installs it)"
    )


class RedisError(Exception):
    """An error reply of the server."""


def _encode(args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError(f"unexpected reply {line!r}")


class RedisServer:
    """One `redis-server` on a free loopback port, its data under `workdir`."""

    START_TIMEOUT = 10.0

    def __init__(self, workdir: Path, user: tuple[str, str] | None = None):
        """`user` = (name, password): the only user (ACL), the default user off; the
        tests' own client signs in as it."""
        self.workdir = Path(workdir)
        self.user = user
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._reader: _Reader | None = None
        # One socket for every caller: a test's producer thread and its start()'s PING must
        # not read each other's replies.
        self._lock = threading.RLock()

    def start(self) -> "RedisServer":
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - kept by the process
        self.proc = subprocess.Popen(
            [
                redis_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.workdir),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--daemonize", "no",
                "--protected-mode", "no",
                *self._acl(),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.START_TIMEOUT
        while True:
            try:
                if self.command("PING") == "PONG":
                    return self
            except (OSError, ConnectionError, RedisError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server did not start: {(self.workdir / 'redis.log').read_text()}"
                )
            time.sleep(0.05)

    def _acl(self) -> list[str]:
        if self.user is None:
            return []
        name, password = self.user
        return ["--user", "default", "off",
                "--user", name, "on", f">{password}", "~*", "&*", "+@all"]

    def _close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
            self._sock = self._reader = None

    def command(self, *args):
        """Sends one command; answers its reply (an error reply raises RedisError)."""
        return self.pipeline([args])[0]

    def pipeline(self, commands):
        """Sends many commands at once; answers their replies (the first error raises)."""
        with self._lock:
            return self._pipeline(commands)

    def _pipeline(self, commands):
        try:
            if self._sock is None:
                self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                self._reader = _Reader(self._sock)
                if self.user is not None:
                    self._sock.sendall(_encode(("AUTH", *self.user)))
                    if isinstance(self._reader.reply(), RedisError):
                        raise ConnectionError("redis refused the tests' credentials")
            self._sock.sendall(b"".join(_encode(c) for c in commands))
            replies = [self._reader.reply() for _ in commands]
        except (OSError, ConnectionError):
            self._close()
            raise
        for r in replies:
            if isinstance(r, RedisError):
                raise r
        return replies

    def stop(self) -> None:
        self._close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        self._close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> "RedisServer":
        self.stop()
        return self.start()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
