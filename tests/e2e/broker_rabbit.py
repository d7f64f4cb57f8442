"""A real `rabbitmq-server` node for the event source tests (see `brokers`): `RabbitServer` and
`RabbitClient` (through `pika`).
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
