"""A real `nats-server -js` for the event source tests (see `brokers`): `NatsServer` and a small
NATS client, `NatsClient`.
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


def nats_binary() -> str:
    for candidate in (shutil.which("nats-server"), "/usr/bin/nats-server"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(
        "nats-server not found: install the Debian package `nats-server` "
        "(scripts/test.sh installs it)"
    )


class NatsError(Exception):
    """An `-ERR` of the server, or a JetStream API error."""


class NatsClient:
    """A small NATS client over one socket (the protocol is a handful of text lines; the
    Python environment carries no NATS package): publish with or without headers, request
    and reply, JetStream's API, and publishing to a stream with its acknowledgements."""

    def __init__(self, port: int, timeout: float = 10.0, user: str | None = None,
                 password: str | None = None):
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.inbox = f"_INBOX.{uuid.uuid4().hex}"
        self.replies: dict[str, tuple[dict, bytes]] = {}
        self.subs: dict[str, list] = {}
        self.next_sid = 2
        info = self._line()
        if not info.startswith(b"INFO "):
            raise ConnectionError(f"not a NATS server: {info!r}")
        connect = {"verbose": False, "pedantic": False, "headers": True,
                   "no_responders": True, "protocol": 1, "name": "stoke-e2e"}
        if user is not None:
            connect.update(user=user, **{"pass": password})
        self.sock.sendall(
            b"CONNECT " + json.dumps(connect).encode() + b"\r\nSUB "
            + self.inbox.encode() + b".* 1\r\nPING\r\n"
        )
        while self._read_one() != "PONG":
            pass

    def close(self) -> None:
        self.sock.close()

    # -- reading

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("nats closed the connection")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _frame_in(self) -> tuple[bytes, bytes, bytes]:
        """The next whole frame (verb, arguments, payload), taken from the buffer only once
        it is all there (a read that times out leaves the buffer whole)."""
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                verb, _, rest = self.buf[:i].partition(b" ")
                verb = verb.upper()
                size = int(rest.split()[-1]) if verb in (b"MSG", b"HMSG") else -2
                if len(self.buf) >= i + 2 + size + 2:
                    data = self.buf[i + 2 : i + 2 + size] if size >= 0 else b""
                    self.buf = self.buf[i + 2 + size + 2 :]
                    return verb, rest, data
            self._fill()

    def _read_one(self) -> str:
        """Reads one frame (answering a PING, keeping a message); answers its verb."""
        verb, rest, data = self._frame_in()
        if verb == b"PING":
            self.sock.sendall(b"PONG\r\n")
        elif verb == b"-ERR":
            raise NatsError(rest.decode())
        elif verb in (b"MSG", b"HMSG"):
            parts = rest.decode().split()
            hsize = int(parts[-2]) if verb == b"HMSG" else 0
            subject, sid = parts[0], parts[1]
            lines = data[:hsize].decode().split("\r\n")
            headers = {}
            for h in lines[1:]:
                if ":" in h:
                    k, v = h.split(":", 1)
                    headers[k.strip()] = v.strip()
            status = lines[0][len("NATS/1.0"):].strip() if hsize else ""
            if status:
                headers[":status"] = status
            if sid == "1":
                self.replies[subject] = (headers, data[hsize:])
            else:
                self.subs.setdefault(sid, []).append((headers, data[hsize:], subject))
        return verb.decode()

    def _wait(self, done, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from nats in time")
            self.sock.settimeout(left)
            try:
                self._read_one()
            finally:
                self.sock.settimeout(self.timeout)

    # -- writing

    @staticmethod
    def _frame(subject: str, reply: str | None, body: bytes, headers: dict | None) -> bytes:
        r = f" {reply}" if reply else ""
        if not headers:
            return f"PUB {subject}{r} {len(body)}\r\n".encode() + body + b"\r\n"
        h = ("NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
             + "\r\n").encode()
        return (f"HPUB {subject}{r} {len(h)} {len(h) + len(body)}\r\n".encode() + h + body
                + b"\r\n")

    def request(self, subject: str, body: bytes = b"", timeout: float = 10.0):
        reply = f"{self.inbox}.{uuid.uuid4().hex}"
        self.sock.sendall(self._frame(subject, reply, body, None))
        self._wait(lambda: reply in self.replies, timeout)
        return self.replies.pop(reply)

    def subscribe(self, subject: str) -> str:
        sid = str(self.next_sid)
        self.next_sid += 1
        self.subs[sid] = []
        self.sock.sendall(f"SUB {subject} {sid}\r\nPING\r\n".encode())
        return sid

    def received(self, sid: str, timeout: float = 0.0) -> list:
        """What came on subscription `sid` so far (reading for up to `timeout`)."""
        try:
            self._wait(lambda: False, timeout)
        except TimeoutError:
            pass
        return list(self.subs.get(sid, []))

    def js(self, api: str, payload: dict | None = None) -> dict:
        headers, body = self.request(f"$JS.API.{api}", json.dumps(payload or {}).encode())
        if headers.get(":status", "").startswith("503"):
            raise NatsError("JetStream is not ready")
        out = json.loads(body)
        if "error" in out:
            raise NatsError(out["error"].get("description", str(out["error"])))
        return out

    def publish(self, subject: str, bodies: list, headers: dict | None = None,
                timeout: float = 20.0) -> list[str]:
        """Publishes each of `bodies` (bytes, or JSON-encoded) to a stream's `subject` and
        waits for JetStream's acknowledgements; answers the stream sequences (as the records'
        `messageId`s)."""
        tag = uuid.uuid4().hex[:8]
        frames, replies = [], []
        for i, b in enumerate(bodies):
            data = b if isinstance(b, bytes) else json.dumps(b).encode()
            reply = f"{self.inbox}.{tag}{i}"
            replies.append(reply)
            frames.append(self._frame(subject, reply, data, headers))
        self.sock.sendall(b"".join(frames))
        self._wait(lambda: all(r in self.replies for r in replies), timeout)
        seqs = []
        for r in replies:
            headers_, body = self.replies.pop(r)
            ack = json.loads(body) if body else {}
            if "seq" not in ack:
                raise NatsError(f"not stored: {headers_} {ack}")
            seqs.append(str(ack["seq"]))
        return seqs


class NatsServer:
    """One `nats-server -js` on a free loopback port, its JetStream data under `workdir`.
    `.client()` is a connected [`NatsClient`] (made again after a restart); `.stream(name,
    subjects)` makes a file-backed stream, `.publish`, `.consumer(stream, name)` its info."""

    START_TIMEOUT = 15.0

    def __init__(self, workdir: Path, user: str | None = None, password: str | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        # With a user, the server asks every client for that user and password.
        self.user, self.password = user, password
        self.proc: subprocess.Popen | None = None
        self._client: NatsClient | None = None

    def start(self) -> "NatsServer":
        log = open(self.workdir / "nats.log", "ab")  # noqa: SIM115 - kept by the process
        self.proc = subprocess.Popen(
            [nats_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port),
             "-sd", str(self.workdir / "jetstream"), "-n", f"stoke-e2e-{self.port}",
             *(["--user", self.user, "--pass", self.password] if self.user else [])],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.START_TIMEOUT
        while True:
            try:
                self.client().js("INFO")
                return self
            except (OSError, ConnectionError, NatsError, TimeoutError):
                self._close()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"nats-server did not start: {(self.workdir / 'nats.log').read_text()}"
                )
            time.sleep(0.05)

    def client(self) -> NatsClient:
        if self._client is None:
            self._client = NatsClient(self.port, user=self.user, password=self.password)
        return self._client

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    def stream(self, name: str, subjects: list[str] | None = None) -> dict:
        return self.client().js(f"STREAM.CREATE.{name}", {
            "name": name, "subjects": subjects or [f"{name}.>"], "storage": "file",
            "retention": "limits", "num_replicas": 1,
        })

    def publish(self, subject: str, bodies: list, headers: dict | None = None) -> list[str]:
        out: list[str] = []
        for i in range(0, len(bodies), 500):
            try:
                out += self.client().publish(subject, bodies[i : i + 500], headers)
            except (OSError, ConnectionError, TimeoutError):
                self._close()
                raise
        return out

    def consumer(self, stream: str, name: str) -> dict:
        return self.client().js(f"CONSUMER.INFO.{stream}.{name}")

    def stop(self) -> None:
        self._close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)
        self.proc = None

    def kill(self) -> None:
        self._close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> "NatsServer":
        self.stop()
        return self.start()

    def __enter__(self) -> "NatsServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
