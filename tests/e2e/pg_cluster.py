"""A throw-away PostgreSQL cluster for the end-to-end tests (as the Rust tests' harness,
crates/stoke-store/src/postgres/testing.rs): `initdb` in a temporary folder, `postgres` on a
free loopback port with trust authentication and no Unix socket, stopped and removed after.

The binaries come from /usr/lib/postgresql/*/bin (Debian's `postgresql` package; newest first)
or PATH. initdb refuses root: as root, the cluster runs as `nobody`. Without PostgreSQL, the
test fails with a message naming the package to install.

`session_cluster()` is the one cluster of a pytest session run with `STOKE_E2E_STORE=postgres`
(started on first use, stopped by conftest.py at the end): every `StokeServer` the tests start
without a `--store` of their own gets a database of its own in it (`new_database()`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import itertools
import time
import uuid
from pathlib import Path

import pytest

from stoke_e2e import free_port

USER = "stoke"
NEEDED = ("initdb", "postgres", "pg_ctl", "pg_isready", "psql", "pg_dump")


def find_binaries() -> Path | None:
    versions = []
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        for d in root.iterdir():
            if d.name.isdigit():
                versions.append((int(d.name), d / "bin"))
    candidates = [p for _, p in sorted(versions, reverse=True)]
    candidates += [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    for d in candidates:
        if all((d / b).is_file() for b in NEEDED):
            return d
    return None


class PgCluster:
    """`settings`: more `postgres -c NAME=VALUE` settings (the session cluster raises
    max_connections and turns fsync off: its data is thrown away)."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.settings = dict(settings or {})
        bin_dir = find_binaries()
        if bin_dir is None:
            pytest.fail(
                "PostgreSQL is not installed: this test starts a PostgreSQL server of its own "
                "and needs its binaries (initdb, postgres, pg_ctl). Install the Debian package "
                "`postgresql` (apt-get install postgresql), or run scripts/test.sh, which "
                "installs it",
                pytrace=False,
            )
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="stoke-e2e-pg-"))
        self.data = self.dir / "data"
        self.data.mkdir()
        self.ids = None
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.ids = (nobody.pw_uid, nobody.pw_gid)
            os.chmod(self.dir, 0o755)
            os.chown(self.data, *self.ids)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def _preexec(self) -> None:
        if self.ids is not None:
            os.setgid(self.ids[1])
            os.setuid(self.ids[0])

    def _run(self, name: str, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin / name), *args],
            preexec_fn=self._preexec,
            capture_output=True,
            text=True,
            **kw,
        )

    def start(self) -> "PgCluster":
        self.init()
        self.port = free_port()
        return self.launch()

    def init(self) -> None:
        out = self._run(
            "initdb", "-D", str(self.data), "-U", USER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )
        assert out.returncode == 0, f"initdb failed: {out.stderr}"

    def launch(self) -> "PgCluster":
        """Starts `postgres` on `self.port` (again, after `halt()`) and waits until it accepts
        connections."""
        log = open(self.dir / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            [
                str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                *(a for k, v in self.settings.items() for a in ("-c", f"{k}={v}")),
            ],
            preexec_fn=self._preexec,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, (self.dir / "postgres.log").read_text()
            ready = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-q")
            if ready.returncode == 0:
                return self
            assert time.monotonic() < deadline, "postgres did not start within 30 s"
            time.sleep(0.05)

    def create_database(self, name: str) -> str:
        out = self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", "postgres",
            "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {name}",
        )
        assert out.returncode == 0, out.stderr
        return self.url(name)

    def query(self, url: str, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of `sql` on the database at `url` through psql, each value as text (NULL as
        None); `?` placeholders take `params` as quoted literals."""
        parts = sql.split("?")
        assert len(parts) == len(params) + 1, (sql, params)
        text = parts[0]
        for value, rest in zip(params, parts[1:]):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                lit = str(value)
            else:
                lit = "'" + str(value).replace("'", "''") + "'"
            text += lit + rest
        out = self._run(
            "psql", url, "-X", "-A", "-t", "-q", "-F", "\x1f", "-R", "\x1d", "-P", "null=\x1e",
            "-v", "ON_ERROR_STOP=1", "-c", text,
        )
        assert out.returncode == 0, f"psql: {out.stderr}"
        return [
            tuple(None if v == "\x1e" else v for v in line.split("\x1f"))
            for line in out.stdout.rstrip("\n").split("\x1d")
            if line
        ]

    def dump(self, url: str) -> bytes:
        """Every row of the database at `url` (pg_dump --data-only), to look for a secret."""
        out = subprocess.run(
            [str(self.bin / "pg_dump"), "--data-only", "-d", url],
            preexec_fn=self._preexec, capture_output=True,
        )
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        return out.stdout

    def url(self, db: str) -> str:
        return f"postgres://{USER}@127.0.0.1:{self.port}/{db}"

    def log(self) -> str:
        p = self.dir / "postgres.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def halt(self, mode: str = "fast") -> None:
        """Stops `postgres` (`pg_ctl stop -m MODE`: `fast` disconnects every client and
        checkpoints, `immediate` is a crash), keeping its data and port for `launch()`."""
        if self.proc is not None and self.proc.poll() is None:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "20", "stop")
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)


_session: PgCluster | None = None
_numbers = itertools.count(1)


def session_cluster() -> PgCluster:
    """The session's cluster (`STOKE_E2E_STORE=postgres`), started on first use."""
    global _session
    if _session is None:
        _session = PgCluster({"max_connections": "400", "fsync": "off"}).start()
    return _session


def new_database(prefix: str = "stoke") -> str:
    """A new, empty database in the session's cluster: its URL."""
    name = f"{prefix}_{next(_numbers)}_{uuid.uuid4().hex[:8]}"
    return session_cluster().create_database(name)


def stop_session_cluster() -> None:
    global _session
    if _session is not None:
        _session.stop()
        _session = None
