"""Helpers shared by the end-to-end tests: the server under test, zips built in memory, waiters,
raw signed requests and error assertions.

The fixtures that use these live in conftest.py; the tests import the helpers directly
(`from stoke_e2e import make_zip, ...`).
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import datetime as dt
import hashlib
import http.client
import io
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

REGION = "us-east-1"
PROFILE = "stoke"
ROLE = "arn:aws:iam::123456789012:role/lambda-role"
# The smallest WASI command: `(module (memory (export "memory") 1) (func (export "_start")))`,
# written out by hand so the control-plane tests need no wasm toolchain. The server compiles
# it while the function is Pending; a module without `_start` would leave it Failed.
WASM_MODULE = bytes.fromhex(
    "0061736d01000000"  # magic, version
    "010401600000"  # type section: () -> ()
    "03020100"  # function section: one function of type 0
    "0503010001"  # memory section: one memory, 1 page
    "071302066d656d6f727902"  # export section: "memory" ...
    "00065f73746172740000"  # ... memory 0, "_start" func 0
    "0a040102000b"  # code section: an empty body
)
# Lambda's LastModified: 2019-10-23T18:22:30.293+0000
LAST_MODIFIED_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
ACCOUNT_RE = re.compile(r"^\d{12}$")
# Limits Lambda enforces and Stoke mirrors.
MAX_UNZIPPED = 262_144_000
MAX_ZIPPED = 52_428_800
# Waiters poll fast here: a local server settles in milliseconds.
FAST_WAITER = {"Delay": 0.1, "MaxAttempts": 300}

REPO_ROOT = Path(__file__).resolve().parents[2]

# The store every server of the run keeps its state in: `sqlite` (the default, the embedded
# file in the data dir) or `postgres` (STOKE_E2E_STORE=postgres: a database of its own per
# server in the session's throw-away PostgreSQL cluster, pg_cluster.py; scripts/test.sh e2e-pg).
E2E_STORE = os.environ.get("STOKE_E2E_STORE", "sqlite").strip().lower() or "sqlite"
if E2E_STORE not in ("sqlite", "postgres"):
    raise RuntimeError(f"STOKE_E2E_STORE={E2E_STORE!r}: expected sqlite or postgres")
ON_POSTGRES = E2E_STORE == "postgres"


def sqlite_only(reason: str):
    """Marks a test that cannot mean anything on the PostgreSQL store (it reads or corrupts the
    data dir's `stoke.db`, ...): skipped there, with the reason."""
    return pytest.mark.skipif(ON_POSTGRES, reason=f"SQLite store only: {reason}")


def stoke_bin() -> Path:
    """The binary under test: $STOKE_BIN, else $CARGO_TARGET_DIR/debug/stoke, else ./target."""
    if os.environ.get("STOKE_BIN"):
        return Path(os.environ["STOKE_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "stoke"


def runtime_libs_args() -> list[str]:
    """`--runtime-libs` for every server: the boto3 and botocore of the python3.x runtimes
    (scripts/runtime-libs.sh, which scripts/test.sh runs and names in STOKE_RUNTIME_LIBS)."""
    d = os.environ.get("STOKE_RUNTIME_LIBS")
    args = ["--runtime-libs", d] if d else []
    # The images of /var/lang and /var/runtime, made once for every server of the run (named
    # by their content; scripts/test.sh sets STOKE_RUNTIME_IMAGES).
    images = os.environ.get("STOKE_RUNTIME_IMAGES")
    return args + (["--runtime-images", images] if images else [])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# The server under test
# --------------------------------------------------------------------------------------------


class StokeServer:
    """One `stoke serve` process on a free loopback port with its own data dir.

    `start()` waits until the port accepts connections and DIR/credentials exists; `stop()`
    sends SIGTERM and asserts a clean exit (code 0) within 10 s; `restart()` does both on the
    same port and data dir.

    With STOKE_E2E_STORE=postgres, a server started without a `--store` flag of its own keeps
    its state in a new database of the session's PostgreSQL cluster (made at the first start,
    kept across restarts: `store_url`).
    """

    START_TIMEOUT = 30.0
    STOP_TIMEOUT = 10.0
    # Descriptors of the test process the server inherits (same numbers, without
    # close-on-exec), as from `stoke serve 7</ 8>>FILE`; set before start().
    pass_fds: tuple[int, ...] = ()

    def __init__(
        self,
        workdir: Path,
        binary: Path | None = None,
        extra_args: list[str] | None = None,
        nofile: tuple[int, int] | None = None,
    ):
        self.workdir = Path(workdir)
        # RLIMIT_NOFILE (soft, hard) to start the server under (the hardening tests).
        self.nofile = nofile
        # More `stoke serve` flags (the async tests shorten retry delays and event ages).
        self.extra_args = list(extra_args or [])
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The data dir does not exist yet: the server must create it, as on a first start.
        self.data_dir = self.workdir / "data"
        self.binary = Path(binary) if binary else stoke_bin()
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.exit_codes: list[int] = []
        self.store_url: str | None = None

    # -- process -------------------------------------------------------------------------

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials"

    def log_path(self, n: int | None = None) -> Path:
        return self.workdir / f"serve.{self.starts if n is None else n}.log"

    def log(self, n: int | None = None) -> str:
        p = self.log_path(n)
        return p.read_text(errors="replace") if p.exists() else ""

    def all_logs(self, tail_lines: int = 200) -> str:
        parts = []
        for n in range(1, self.starts + 1):
            lines = self.log(n).splitlines()
            shown = lines[-tail_lines:]
            head = f"--- serve run {n} ({self.endpoint}, data dir {self.data_dir})"
            if len(lines) > len(shown):
                head += f", last {len(shown)} of {len(lines)} lines"
            parts.append(head + " ---\n" + "\n".join(shown))
        return "\n".join(parts)

    def start(self) -> "StokeServer":
        if not self.binary.exists():
            pytest.fail(
                f"stoke binary not found at {self.binary}: run `cargo build -p stoke` "
                "or set STOKE_BIN",
                pytrace=False,
            )
        self.starts += 1
        store_args = []
        if ON_POSTGRES and "--store" not in self.extra_args:
            if self.store_url is None:
                from pg_cluster import new_database

                self.store_url = new_database()
            store_args = ["--store", self.store_url]
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOKE_")}
        env.setdefault("RUST_BACKTRACE", "1")
        logf = open(self.log_path(), "wb")
        try:
            self.proc = subprocess.Popen(
                [
                    str(self.binary),
                    "serve",
                    "--listen",
                    f"127.0.0.1:{self.port}",
                    "--data-dir",
                    str(self.data_dir),
                    "--region",
                    REGION,
                    *runtime_libs_args(),
                    *store_args,
                    *self.extra_args,
                ],
                pass_fds=self.pass_fds,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                preexec_fn=self._preexec if self.nofile else None,
            )
        finally:
            logf.close()
        deadline = time.monotonic() + self.START_TIMEOUT
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.exit_codes.append(rc)
                raise AssertionError(
                    f"stoke serve exited with code {rc} before it was ready\n{self.all_logs()}"
                )
            if self._port_open() and self.credentials_file.exists():
                # The file may be being written: wait until it parses with both keys.
                try:
                    self.credentials()
                    return self
                except (KeyError, configparser.Error):
                    pass
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"stoke serve not ready after {self.START_TIMEOUT}s (port open: "
                    f"{self._port_open()}, credentials file: {self.credentials_file.exists()})"
                    f"\n{self.all_logs()}"
                )
            time.sleep(0.05)

    @contextlib.contextmanager
    def running(self):
        """Starts the server; at the end stops it (asserting a clean exit) if it is still up,
        and kills whatever is left: the body of a module-scoped server fixture."""
        self.start()
        try:
            yield self
        finally:
            if self.alive():
                self.stop()
            self.kill()

    def _preexec(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)

    def rss_bytes(self) -> int:
        """The server process's resident set (VmRSS)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc/PID/status")

    def _port_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the server and assert that it exits with code 0 within 10 s."""
        assert self.proc is not None, "server was never started"
        rc = self.proc.poll()
        if rc is not None:
            self.exit_codes.append(rc)
            self.proc = None
            raise AssertionError(
                f"stoke serve had already exited (code {rc}) before it was stopped\n"
                f"{self.all_logs()}"
            )
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError(
                f"stoke serve did not exit within {self.STOP_TIMEOUT}s of "
                f"{signal.Signals(sig).name}\n{self.all_logs()}"
            ) from None
        self.exit_codes.append(rc)
        self.proc = None
        assert rc == 0, (
            f"stoke serve exited with code {rc} on {signal.Signals(sig).name}, expected 0\n"
            f"{self.all_logs()}"
        )
        return rc

    def restart(self) -> "StokeServer":
        self.stop()
        return self.start()

    def kill(self) -> None:
        """For teardown after a failure: no assertion."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    # -- the store -----------------------------------------------------------------------

    def store_rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of a read-only query of the server's store, whichever it is (`?` placeholders):
        the SQLite file read-only with sqlite3, or the PostgreSQL database with psql, whose
        values come back as text (callers convert with int(...) where they count)."""
        if self.store_url is None:
            import sqlite3

            db = sqlite3.connect(f"file:{self.data_dir / 'stoke.db'}?mode=ro", uri=True, timeout=30)
            try:
                return db.execute(sql, params).fetchall()
            finally:
                db.close()
        from pg_cluster import session_cluster

        return session_cluster().query(self.store_url, sql, params)

    def store_bytes(self) -> int:
        """The bytes the store takes: stoke.db and its WAL, or the PostgreSQL database."""
        if self.store_url is None:
            return sum(
                p.stat().st_size
                for p in (self.data_dir / "stoke.db", self.data_dir / "stoke.db-wal")
                if p.exists()
            )
        (size,) = self.store_rows("SELECT pg_database_size(current_database())")[0]
        return int(size)

    # -- clients -------------------------------------------------------------------------

    def credentials(self) -> tuple[str, str]:
        """(access key id, secret access key) from DIR/credentials, profile `stoke`."""
        cp = configparser.ConfigParser()
        with open(self.credentials_file, encoding="utf-8") as f:
            cp.read_file(f)
        sect = cp[PROFILE]
        return sect["aws_access_key_id"], sect["aws_secret_access_key"]

    def session(self) -> boto3.Session:
        """A boto3 session that reads DIR/credentials, profile `stoke`, and nothing else of
        the environment's AWS configuration (no ~/.aws/config, no AWS_* keys)."""
        core = botocore.session.Session()
        core.set_config_variable("credentials_file", str(self.credentials_file))
        core.set_config_variable("config_file", str(self.workdir / "no-aws-config"))
        core.set_config_variable("profile", PROFILE)
        return boto3.Session(botocore_session=core, region_name=REGION)

    @staticmethod
    def config(**overrides) -> Config:
        kw = dict(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=120,
        )
        kw.update(overrides)
        return Config(**kw)

    def client(self, **config_overrides):
        """A boto3 Lambda client signed with the credentials the server wrote. Pass Config
        fields to override, e.g. parameter_validation=False to reach the server's checks."""
        return self.session().client(
            "lambda", endpoint_url=self.endpoint, config=self.config(**config_overrides)
        )

    def client_with_keys(self, access_key: str, secret_key: str, **config_overrides):
        return boto3.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=REGION,
        ).client("lambda", endpoint_url=self.endpoint, config=self.config(**config_overrides))

    # -- raw HTTP ------------------------------------------------------------------------

    def signed_request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict | None = None,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str = REGION,
        service: str = "lambda",
        when: dt.datetime | None = None,
        tamper=None,
    ) -> "RawResponse":
        """Sign a request with botocore's SigV4 signer (header form) and send it.

        `when` signs with that clock instead of now; `tamper(AWSPreparedRequest)` may change
        the prepared request after signing.
        """
        key, secret = self.credentials()
        creds = botocore.credentials.Credentials(access_key or key, secret_key or secret)
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        req = botocore.awsrequest.AWSRequest(
            method=method, url=self.endpoint + path, data=body, headers=hdrs
        )
        signer = botocore.auth.SigV4Auth(creds, service, region)
        if when is None:
            signer.add_auth(req)
        else:
            naive_utc = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
            with mock.patch.object(botocore.auth, "get_current_datetime", return_value=naive_utc):
                signer.add_auth(req)
        prepared = req.prepare()
        if tamper is not None:
            tamper(prepared)
        return raw_request(prepared.method, prepared.url, prepared.body, dict(prepared.headers))

    def unsigned_request(
        self, method: str, path: str, body: bytes = b"", headers: dict | None = None
    ) -> "RawResponse":
        return raw_request(method, self.endpoint + path, body, headers or {})


@dataclass
class RawResponse:
    status: int
    headers: dict  # lower-cased names
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def error_type(self) -> str | None:
        """x-amzn-ErrorType without the optional `:…` suffix, as botocore reads it."""
        v = self.header("x-amzn-ErrorType")
        return v.split(":")[0] if v else v

    def json(self):
        import json

        return json.loads(self.body)


def raw_request(method: str, url: str, body=b"", headers: dict | None = None) -> RawResponse:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        path = u.path + (f"?{u.query}" if u.query else "")
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path or "/", body=body or None, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def http_get(url: str) -> RawResponse:
    """A plain GET with urllib: no signature, no AWS headers."""
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return RawResponse(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    except urllib.error.HTTPError as e:
        return RawResponse(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


# --------------------------------------------------------------------------------------------
# Zips
# --------------------------------------------------------------------------------------------


def make_zip(files: dict, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip built in memory from {name: bytes|str}. Names are stored as given (no
    normalisation), so '../evil' and '/etc/evil' end up in the archive verbatim."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = compression
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def make_symlink_zip(link_name: str, target: str, extra: dict | None = None) -> bytes:
    """A zip with a symlink entry (Unix mode 0120777 in the external attributes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in (extra or {}).items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
        info = zipfile.ZipInfo(link_name, date_time=(2020, 1, 1, 0, 0, 0))
        info.create_system = 3  # Unix, so the mode bits are meaningful
        info.external_attr = 0o120777 << 16
        zf.writestr(info, target)
    return buf.getvalue()


def make_zeros_zip(entries: dict[str, int]) -> bytes:
    """A zip whose entries are runs of zero bytes of the given sizes, deflated at level 9 and
    streamed (300 MB of zeros becomes ~300 KB of zip in about a second)."""
    buf = io.BytesIO()
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, size in entries.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                left = size
                while left > 0:
                    n = min(left, len(chunk))
                    f.write(chunk[:n] if n < len(chunk) else chunk)
                    left -= n
    return buf.getvalue()


def make_lying_zip(real_size: int, declared_size: int) -> bytes:
    """A one-entry zip of `real_size` zero bytes whose headers (local and central) declare
    `declared_size`: a bomb that a check of the declared sizes alone lets through."""
    assert real_size < 2**31 and declared_size < 2**31
    buf = io.BytesIO()
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        info = zipfile.ZipInfo("small.bin", date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as f:  # no zip64: plain 32-bit size fields
            left = real_size
            while left > 0:
                n = min(left, len(chunk))
                f.write(chunk[:n])
                left -= n
    data = bytearray(buf.getvalue())
    real = real_size.to_bytes(4, "little")
    fake = declared_size.to_bytes(4, "little")
    # Local file header: signature PK\3\4, uncompressed size at offset 22.
    assert data[0:4] == b"PK\x03\x04" and data[22:26] == real
    data[22:26] = fake
    # Central directory header: signature PK\1\2, uncompressed size at offset 24.
    cd = data.rfind(b"PK\x01\x02")
    assert cd > 0 and data[cd + 24 : cd + 28] == real
    data[cd + 24 : cd + 28] = fake
    return bytes(data)


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def wasm_zip(handler: str = "hello.wasm", module: bytes = WASM_MODULE, extra=None) -> bytes:
    files = {handler: module}
    files.update(extra or {})
    return make_zip(files)


# --------------------------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------------------------


def unique_name(prefix: str = "fn") -> str:
    prefix = re.sub(r"[^a-zA-Z0-9_-]", "-", prefix)[:40].strip("-_") or "fn"
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_wasm(client, name: str, zip_bytes: bytes | None = None, **kw):
    """CreateFunction for a runtime `wasm` function with valid code; kwargs override."""
    args = dict(
        FunctionName=name,
        Runtime="wasm",
        Role=ROLE,
        Handler="hello.wasm",
        Code={"ZipFile": zip_bytes if zip_bytes is not None else wasm_zip()},
    )
    args.update(kw)
    return client.create_function(**args)


def wait_active(client, name: str) -> dict:
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAITER)
    return client.get_function(FunctionName=name)


def wait_updated(client, name: str) -> dict:
    client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST_WAITER)
    return client.get_function(FunctionName=name)


def list_all_functions(client) -> list[dict]:
    out = []
    for page in client.get_paginator("list_functions").paginate():
        out.extend(page["Functions"])
    return out


def function_names(client) -> set[str]:
    return {f["FunctionName"] for f in list_all_functions(client)}


def assert_absent(client, name: str) -> None:
    """A failed create left nothing behind: not listed, and GetFunction is 404."""
    assert name not in function_names(client), f"{name} is listed after a failed create"
    with pytest.raises(ClientError) as ei:
        client.get_function(FunctionName=name)
    assert error_code(ei.value) == "ResourceNotFoundException", ei.value.response
    assert http_status(ei.value) == 404


def config_of(resp: dict) -> dict:
    """A FunctionConfiguration without boto3's ResponseMetadata."""
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}


def error_code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def error_message(e: ClientError) -> str:
    return e.response["Error"].get("Message", "")


def http_status(e: ClientError) -> int:
    return e.response["ResponseMetadata"]["HTTPStatusCode"]


@contextlib.contextmanager
def expect_error(code: str, status: int, message_contains: str | None = None):
    """Assert that the block raises a ClientError with this Error.Code and HTTP status.
    Yields a holder whose `.value` is the ClientError."""
    with pytest.raises(ClientError) as ei:
        yield ei
    e = ei.value
    got = (error_code(e), http_status(e))
    assert got == (code, status), (
        f"expected {code} ({status}), got {got[0]} ({got[1]}): {error_message(e)!r}"
    )
    if message_contains is not None:
        assert message_contains in error_message(e), (
            f"message {error_message(e)!r} lacks {message_contains!r}"
        )


def parse_last_modified(s: str) -> dt.datetime:
    assert LAST_MODIFIED_RE.match(s), f"LastModified {s!r} is not in Lambda's format"
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%f%z")
