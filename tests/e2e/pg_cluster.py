"""A throw-away PostgreSQL cluster for the end-to-end tests (as the Rust tests' harness,
crates/stoke-store/src/postgres/testing.rs): `initdb` in a temporary folder, `postgres` on a
free loopback port with trust authentication and no Unix socket, stopped and removed after.

The binaries come from /usr/lib/postgresql/*/bin (Debian's `postgresql` package; newest first)
or PATH. initdb refuses root: as root, the cluster runs as `nobody`. Without PostgreSQL, the
test fails with a message naming the package to install.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from stoke_e2e import free_port

USER = "stoke"
NEEDED = ("initdb", "postgres", "pg_ctl", "pg_isready", "psql")


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
    def __init__(self) -> None:
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
        out = self._run(
            "initdb", "-D", str(self.data), "-U", USER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )
        assert out.returncode == 0, f"initdb failed: {out.stderr}"
        self.port = free_port()
        log = open(self.dir / "postgres.log", "wb")
        self.proc = subprocess.Popen(
            [
                str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
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

    def url(self, db: str) -> str:
        return f"postgres://{USER}@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "20", "stop")
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
