"""Bounds on what a function or a crash can make the server keep (issue 10, items 5, 6, 9).

- Log bytes: a function that logs ~1 MB per call, on a server with a 4 MB per-function log
  budget, grows the database (and its WAL) by about the budget, however many calls; a line
  longer than CloudWatch's 256 KB event comes back from FilterLogEvents as consecutive events
  of at most 256 KB that put together give the line (Lambda splits long lines the same way);
  the newest lines are kept and the oldest gone.
- Cold-start storms: 200 simultaneous first calls of a Python function all succeed, no REPORT
  says an Init Duration above Lambda's 10 s init limit, and /metrics shows that no more inits
  ran at once than `--init-concurrency` allows.
- A kill -9 while a 40 MB deploy is being written leaves temporary blob files and a staging
  folder; the next start removes them, and keeps every committed blob.

Each test runs its own server (they need flags, or a kill).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import threading
import time
import zipfile
from pathlib import Path

import pytest
from botocore.config import Config

from stoke_e2e import (
    ROLE,
    StokeServer,
    create_wasm,
    http_get,
    make_zip,
    unique_name,
    wait_active,
)
from stoke_guests import _leb128, _name, _section, log_events, request_id

try:  # so that a failure attaches these servers' logs too
    from conftest import _servers
except ImportError:  # pragma: no cover
    _servers = []

MB = 1024 * 1024
# CloudWatch Logs' largest event (256 KB) less its 26 bytes of per-event overhead.
MAX_EVENT = 256 * 1024 - 26


@pytest.fixture
def own_server(tmp_path_factory):
    """Starts servers with flags of a test's own; stops (or kills) them at the end."""
    started: list[StokeServer] = []

    def start(*flags: str) -> StokeServer:
        srv = StokeServer(tmp_path_factory.mktemp("stoke-limits"), extra_args=list(flags))
        _servers.append(srv)
        started.append(srv)
        return srv.start()

    try:
        yield start
        for srv in started:
            if srv.alive():
                srv.stop()
    finally:
        for srv in started:
            srv.kill()


def metric(srv: StokeServer, name: str) -> float:
    text = http_get(f"{srv.endpoint}/metrics").body.decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics:\n{text[:2000]}"
    return float(m.group(1))


# --------------------------------------------------------------------------------------------
# Item 5: log bytes
# --------------------------------------------------------------------------------------------


def _sleb(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if (v == 0 and not byte & 0x40) or (v == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def long_line_module(n: int) -> bytes:
    """A WASI command that writes one line of `n` x's to stderr (its log) and answers `{}`,
    assembled by hand: `memory.fill` the line, `fd_write` it to fd 2, then `{}` to fd 1."""

    def c(v: int) -> bytes:
        return b"\x41" + _sleb(v)  # i32.const

    store32 = b"\x36\x02\x00"
    store8 = b"\x3a\x00\x00"
    pages = (64 + n + 1) // 65536 + 1
    types = _leb128(2) + (b"\x60" + _leb128(4) + b"\x7f" * 4 + _leb128(1) + b"\x7f") + b"\x60\x00\x00"
    imports = _leb128(1) + _name("wasi_snapshot_preview1") + _name("fd_write") + b"\x00\x00"
    functions = _leb128(1) + _leb128(1)
    memory = _leb128(1) + b"\x00" + _leb128(pages)
    exports = _leb128(2) + _name("memory") + b"\x02\x00" + _name("_start") + b"\x00\x01"
    body = (
        b"\x00"
        + c(64) + c(ord("x")) + c(n) + b"\xfc\x0b\x00"  # memory.fill(64, 'x', n)
        + c(64 + n) + c(10) + store8  # '\n'
        + c(0) + c(64) + store32 + c(4) + c(n + 1) + store32  # iovec {64, n + 1}
        + c(2) + c(0) + c(1) + c(8) + b"\x10\x00\x1a"  # fd_write(2, iovec, 1, &written)
        + c(32) + c(ord("{")) + store8 + c(33) + c(ord("}")) + store8
        + c(16) + c(32) + store32 + c(20) + c(2) + store32  # iovec {32, 2}
        + c(1) + c(16) + c(1) + c(24) + b"\x10\x00\x1a"  # fd_write(1, ...)
        + b"\x0b"
    )
    code = _leb128(1) + _leb128(len(body)) + body
    return (
        b"\x00asm\x01\x00\x00\x00"
        + _section(1, types)
        + _section(2, imports)
        + _section(3, functions)
        + _section(5, memory)
        + _section(7, exports)
        + _section(10, code)
    )


def db_bytes(srv: StokeServer) -> int:
    return srv.store_bytes()


def test_log_bytes_are_bounded_per_function_and_long_lines_are_split(own_server):
    budget_mb = 4
    srv = own_server("--log-mb-per-function", str(budget_mb))
    lam = srv.client()
    line = 1_000_000  # under the per-call log limit of 1 MiB
    name = unique_name("logbytes")
    create_wasm(
        lam, name, zip_bytes=make_zip({"log.wasm": long_line_module(line)}), Handler="log.wasm"
    )
    wait_active(lam, name)

    def call() -> str:
        resp = lam.invoke(FunctionName=name, Payload=b"{}")
        assert "FunctionError" not in resp, resp["Payload"].read()
        assert json.loads(resp["Payload"].read()) == {}
        return request_id(resp)

    first = call()
    log_events(srv, name, lambda ev: any(first in e["message"] for e in ev), timeout=10)
    before = db_bytes(srv)

    t0 = time.monotonic()
    rids = [call() for _ in range(200)]
    calls_s = time.monotonic() - t0
    # Calls that log faster than the store takes it have lines dropped (counted), never wait
    # for the store: the newest call to look for is one made once the writer has caught up.
    time.sleep(1.0)
    rids.append(call())
    last = f"REPORT RequestId: {rids[-1]}"
    log_events(srv, name, lambda ev: any(e["message"].startswith(last) for e in ev), timeout=15)
    # Read again, now that nothing more comes (the newest call's lines were the last in the
    # writer's queue): a read of several pages that a batch landed in the middle of holds lines
    # that batch's room-making removed (read on an earlier page) beside the batch's own.
    events = log_events(srv, name, lambda ev: True, timeout=0)
    grown = db_bytes(srv) - before
    sizes = {
        p.name: round(p.stat().st_size / MB, 1) for p in srv.data_dir.glob("stoke.db*")
    } or {"postgres": round(db_bytes(srv) / MB, 1)}
    dropped = metric(srv, "stoke_logs_dropped_total")
    print(
        f"200 calls of ~1 MB logs: {calls_s:.1f} s; database + WAL grew by {grown / MB:.1f} MB "
        f"(now {sizes} MB); {dropped:.0f} lines dropped while the writer was behind"
    )

    # The store holds about the budget, not 200 MB.
    assert grown < (budget_mb + 8) * MB, f"grew by {grown / MB:.1f} MB"
    kept = sum(len(e["message"].encode()) + 26 for e in events)
    assert kept <= budget_mb * MB, f"{kept} bytes of events kept"
    # Every event is within CloudWatch's 256 KB.
    assert all(len(e["message"].encode()) <= MAX_EVENT for e in events)

    # The newest call is all there: START, its line in pieces that give the line back, END.
    messages = [e["message"] for e in events]
    start = messages.index(f"START RequestId: {rids[-1]} Version: $LATEST")
    end = messages.index(f"END RequestId: {rids[-1]}")
    pieces = messages[start + 1 : end]
    assert len(pieces) == -(-line // MAX_EVENT), [len(p) for p in pieces]
    assert all(len(p) == MAX_EVENT for p in pieces[:-1])
    assert "".join(pieces) == "x" * line
    assert messages[-1].startswith(last)
    # The oldest are gone.
    for rid in [first, *rids[:100]]:
        assert not any(rid in m for m in messages), f"the lines of {rid} are still kept"
    assert metric(srv, "stoke_logs_evicted_total") > 0


# --------------------------------------------------------------------------------------------
# Item 6: cold-start storms
# --------------------------------------------------------------------------------------------

SLOW_PY = """
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"ok": True}
"""


def python_zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("app.py", source)
    return buf.getvalue()


@pytest.mark.skipif(os.geteuid() != 0, reason="process sandboxes need root")
def test_a_cold_start_storm_is_admitted_not_stormed(own_server):
    inits = 2
    srv = own_server("--process-runtimes", "on", "--init-concurrency", str(inits))
    lam = srv.client(max_pool_connections=256, read_timeout=120)
    name = unique_name("storm")
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": python_zip(SLOW_PY)},
        Timeout=30,
    )
    wait_active(lam, name)

    n = 200
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def one(i: int) -> None:
        barrier.wait()
        try:
            resp = lam.invoke(
                FunctionName=name, Payload=json.dumps({"sleep": 1.5}), LogType="Tail"
            )
            results[i] = (
                resp["StatusCode"],
                resp.get("FunctionError"),
                resp["Payload"].read(),
                base64.b64decode(resp.get("LogResult", "")).decode(errors="replace"),
            )
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = ("raised", repr(e), b"", "")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    took = time.monotonic() - t0

    failures = [r for r in results if r is None or r[0] != 200 or r[1]]
    assert not failures, f"{len(failures)} of {n} failed, e.g. {failures[:3]}"
    assert all(json.loads(r[2]) == {"ok": True} for r in results)
    init_ms = [
        float(m.group(1))
        for r in results
        if (m := re.search(r"Init Duration: ([0-9.]+) ms", r[3]))
    ]
    assert init_ms, "no call was a cold start"
    assert max(init_ms) <= 10_000, f"an Init Duration above the 10 s limit: {max(init_ms)}"
    most = metric(srv, "stoke_inits_in_flight_max")
    print(
        f"{n} simultaneous first calls: {took:.1f} s, {len(init_ms)} cold, longest init "
        f"{max(init_ms):.0f} ms, at most {most:.0f} inits at once"
    )
    assert 1 <= most <= inits, f"{most} inits ran at once; the bound is {inits}"
    assert metric(srv, "stoke_inits_in_flight") == 0
    # No more sandboxes than calls.
    assert len(init_ms) <= n


# --------------------------------------------------------------------------------------------
# Item 9: kill -9 during a deploy
# --------------------------------------------------------------------------------------------


def temporary_files(data_dir: Path) -> list[Path]:
    """What a cut deploy can leave: blob files being written (`.tmp…` beside the blobs) and
    unpacks in progress (`staging/*`). On PostgreSQL the blob folder is the local cache
    (`blob-cache/`, written after the database's transaction)."""
    out = []
    for blobs in (data_dir / "blobs" / "sha256", data_dir / "blob-cache" / "sha256"):
        out += [p for p in blobs.glob("*/.tmp*")] if blobs.exists() else []
    staging = data_dir / "staging"
    if staging.exists():
        out.extend(staging.iterdir())
    return out


def big_zip(size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("hello.wasm", b"\0asm\x01\0\0\0")
        zf.writestr("blob.bin", os.urandom(size))
    return buf.getvalue()


def test_kill_9_during_a_deploy_leaves_no_temporary_files_after_a_restart(own_server):
    srv = own_server()
    lam = srv.client()
    kept = unique_name("kept")
    create_wasm(lam, kept)
    wait_active(lam, kept)
    kept_sha = lam.get_function(FunctionName=kept)["Configuration"]["CodeSha256"]

    caught: list[Path] = []
    for attempt in range(6):
        body = json.dumps(
            {
                "FunctionName": unique_name("cut-deploy"),
                "Runtime": "wasm",
                "Role": ROLE,
                "Handler": "hello.wasm",
                "Code": {"ZipFile": base64.b64encode(big_zip(40 * MB)).decode()},
            }
        ).encode()
        sender = threading.Thread(
            target=lambda b=body: _ignore(
                lambda: srv.signed_request("POST", "/2015-03-31/functions", b)
            ),
            daemon=True,
        )
        sender.start()
        # Kill the server the moment a blob is being written (or, failing that, an unpack).
        deadline = time.monotonic() + 20
        seen: list[Path] = []
        while time.monotonic() < deadline and sender.is_alive():
            seen = temporary_files(srv.data_dir)
            if any(p.name.startswith(".tmp") for p in seen):
                break
            time.sleep(0.001)
        srv.proc.kill()
        srv.proc.wait()
        srv.proc = None
        sender.join(timeout=30)
        left = temporary_files(srv.data_dir)
        caught.extend(p for p in left if p.name.startswith(".tmp"))
        srv.start()
        assert temporary_files(srv.data_dir) == [], (attempt, temporary_files(srv.data_dir))
        if caught:
            break
    assert caught, "no kill landed while a blob was being written"
    print(f"temporary blob files left by kill -9 and swept at start: {[p.name for p in caught]}")

    # Committed blobs stay: the function deployed before still serves its code.
    lam = srv.client()
    got = lam.get_function(FunctionName=kept)
    assert got["Configuration"]["CodeSha256"] == kept_sha
    assert http_get(got["Code"]["Location"]).status == 200
    assert lam.invoke(FunctionName=kept, Payload=b'{"name": "x"}')["StatusCode"] == 200


def _ignore(f) -> None:
    try:
        f()
    except Exception:  # noqa: BLE001 - the server is killed under the request
        pass
