"""Real brokers for the event source tests, each started on a free loopback port with a
temporary data folder and stopped after, so that no test depends on a service left running.

- `RedisServer(dir).start()` runs `redis-server` (Debian package `redis-server`) with an
  append-only file synced on every write (a kill -9 loses nothing it acknowledged), and
  with `user=(name, password)` one ACL user only (the default user off);
  `.stop()`, `.kill()` (SIGKILL), `.restart()` (same port and data), `.url`, and
  `.command(*args)` to speak to it (a small RESP client over one socket: tests need a handful
  of commands, and the Python environment carries no Redis package).
- `RabbitServer(dir).start()` runs `rabbitmq-server` (Debian package `rabbitmq-server`) as a
  node of its own: its AMQP, distribution and epmd ports free ones, its data, logs, config
  and Erlang cookie under `dir`, so nothing is shared with a system broker; `.stop()`,
  `.kill()` (SIGKILL), `.restart()` / `.start()` again (same ports and data), `.close()`
  (the node and its epmd gone), `.url`, and `.declare()`, `.bind()`, `.publish()`,
  `.count()` through `pika` (the test requirements' AMQP client) on a connection of its
  own, or `.client()` for another (one per thread).
- `NatsServer(dir).start()` runs `nats-server -js` (Debian package `nats-server`) with its
  JetStream store in the folder (file-backed streams: a kill -9 loses nothing it
  acknowledged); the same `.stop()`, `.kill()`, `.restart()`, `.url`, and `.client()`, a small
  NATS client (publish with headers, JetStream's API, publishing with acknowledgements).
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


RABBIT_DIR = Path("/usr/lib/rabbitmq/bin")


def rabbit_binaries() -> tuple[str, str]:
    """rabbitmq-server and rabbitmqctl themselves (Debian's /usr/sbin wrappers switch to the
    `rabbitmq` user and its system-wide data, which a test node must not touch)."""
    server, ctl = RABBIT_DIR / "rabbitmq-server", RABBIT_DIR / "rabbitmqctl"
    if server.exists() and ctl.exists():
        return str(server), str(ctl)
    found = shutil.which("rabbitmq-server"), shutil.which("rabbitmqctl")
    if all(found) and not str(found[0]).startswith("/usr/sbin"):
        return found[0], found[1]
    raise RuntimeError(
        "rabbitmq-server not found: install the Debian package `rabbitmq-server` "
        "(scripts/test.sh installs it)"
    )


def _pika():
    try:
        import pika  # noqa: PLC0415 - only the RabbitMQ tests need it
    except ImportError as e:
        raise RuntimeError(
            "the Python package `pika` is missing: scripts/test.sh installs it into the venv"
        ) from e
    return pika


class RabbitServer:
    """One RabbitMQ node on free loopback ports, its data under `workdir`.

    Durable queues and their committed persistent messages survive `kill()` once the queue
    itself is on disk. On Debian's RabbitMQ 3.10 a queue declared a second or two before a
    SIGKILL may not be: a classic one can be gone after the restart, a quorum one comes back
    empty under a new raft id (the registry naming its raft server was not written out yet).
    A clean `stop()` (or `restart()`) after declaring writes everything out."""

    START_TIMEOUT = 90.0

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"stoke-{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self.proc: subprocess.Popen | None = None
        self._client: RabbitClient | None = None
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "disk_free_limit.absolute = 50MB\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        (self.workdir / "advanced.config").write_text("[].\n")
        (self.workdir / "enabled_plugins").write_text("[].\n")
        (self.workdir / "rabbitmq-env.conf").write_text("")

    def env(self) -> dict:
        d = self.workdir
        return dict(
            os.environ,
            HOME=str(d),  # the Erlang cookie lives here, shared by the node and rabbitmqctl
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(d / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(d / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(d / "rabbitmq.pid"),
        )

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [rabbit_binaries()[1], "-n", self.node, *args],
            env=self.env(), capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def _log_tail(self) -> str:
        out = (self.workdir / "rabbitmq.out").read_text(errors="replace")[-3000:]
        return f"{out}\n(logs in {self.workdir / 'log'})"

    def start(self) -> "RabbitServer":
        (self.workdir / "rabbitmq.pid").unlink(missing_ok=True)
        log = open(self.workdir / "rabbitmq.out", "ab")  # noqa: SIM115 - kept by the process
        self.proc = subprocess.Popen(
            [rabbit_binaries()[0]],
            env=self.env(), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        # The node writes its pid file once it is up (distribution, epmd); `await_startup`
        # then waits for the broker's boot.
        deadline = time.monotonic() + self.START_TIMEOUT
        while not (self.workdir / "rabbitmq.pid").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rabbitmq-server did not start:\n{self._log_tail()}")
            time.sleep(0.1)
        while True:
            left = max(1.0, deadline - time.monotonic())
            r = self.ctl("await_startup", "--timeout", str(int(left)), timeout=left + 10)
            if r.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"rabbitmq-server did not start: {r.stdout}{r.stderr}\n{self._log_tail()}")
            time.sleep(0.2)
        return self

    def _signal(self, sig: int) -> None:
        self._close_client()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=60)
        self.proc = None

    def stop(self) -> None:
        """A clean stop (SIGTERM: the node shuts down in order)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the node dies at once (its epmd, a daemon of its own, stays)."""
        self._signal(signal.SIGKILL)

    def restart(self) -> "RabbitServer":
        self.stop()
        return self.start()

    def close(self) -> None:
        """Kills the node and stops its epmd."""
        self.kill()
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        if not Path(epmd).exists():
            return
        # epmd refuses while it still lists the node, which it drops once it sees it gone.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = subprocess.run([epmd, "-kill"], env=self.env(), capture_output=True, text=True,
                               timeout=10, stdin=subprocess.DEVNULL)
            if "Killed" in r.stdout or "Cannot connect" in r.stdout + r.stderr:
                return
            time.sleep(0.1)

    def __enter__(self) -> "RabbitServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- a client (pika) ---------------------------------------------------------------

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    def client(self) -> "RabbitClient":
        """A client of its own (one per thread: pika's connections are not thread-safe)."""
        return RabbitClient(self.port)

    def _default(self) -> "RabbitClient":
        if self._client is None or not self._client.is_open():
            self._close_client()
            self._client = self.client()
        return self._client

    def declare(self, queue: str, quorum: bool = False) -> str:
        return self._default().declare(queue, quorum)

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        self._default().bind(queue, exchange, routing_key)

    def publish(self, queue: str, bodies: list, **kw) -> None:
        self._default().publish(queue, bodies, **kw)

    def count(self, queue: str) -> tuple[int, int]:
        return self._default().count(queue)


class RabbitClient:
    """One pika connection with a transactional channel: a publish's commit returns once the
    broker has every message of it (persistent ones on disk)."""

    def __init__(self, port: int):
        pika = _pika()
        params = pika.ConnectionParameters(
            host="127.0.0.1", port=port, connection_attempts=1,
            socket_timeout=10, blocked_connection_timeout=30,
        )
        self._conn = pika.BlockingConnection(params)
        self._channel = self._conn.channel()
        self._channel.tx_select()

    def is_open(self) -> bool:
        return self._conn.is_open and self._channel.is_open

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001 - the broker may be gone already
            pass

    def declare(self, queue: str, quorum: bool = False) -> str:
        """A durable queue (a quorum queue with `quorum`)."""
        args = {"x-queue-type": "quorum"} if quorum else None
        self._channel.queue_declare(queue, durable=True, arguments=args)
        return queue

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        """A durable direct exchange, routing `routing_key` to `queue`."""
        self._channel.exchange_declare(exchange, exchange_type="direct", durable=True)
        self._channel.queue_bind(queue, exchange, routing_key=routing_key)

    def publish(self, queue: str, bodies: list, headers: dict | None = None,
                exchange: str = "", routing_key: str | None = None, chunk: int = 200) -> None:
        """Publishes each body (JSON-encoded unless bytes or str) persistently, committed
        `chunk` at a time; raises when the broker is away (what was committed before stays)."""
        pika = _pika()
        for i in range(0, len(bodies), chunk):
            for b in bodies[i : i + chunk]:
                body = b if isinstance(b, (bytes, str)) else json.dumps(b)
                props = pika.BasicProperties(delivery_mode=2, headers=headers,
                                             timestamp=int(time.time()))
                self._channel.basic_publish(
                    exchange, routing_key if routing_key is not None else queue, body,
                    properties=props)
            self._channel.tx_commit()

    def count(self, queue: str) -> tuple[int, int]:
        """(messages ready, consumers) of `queue` (a passive declare)."""
        ok = self._channel.queue_declare(queue, passive=True).method
        return ok.message_count, ok.consumer_count


# ---------------------------------------------------------------------------------------------
# NATS JetStream


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
