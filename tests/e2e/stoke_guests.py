"""The wasm guests of the end-to-end tests: modules built from `examples/` (see
examples/README.md) by scripts/build-guests.sh, deployed as Lambda functions of runtime `wasm`.

The .wasm files are read from $STOKE_GUESTS_DIR (scripts/test.sh sets it). When it is not set,
the default output folder of scripts/build-guests.sh is used, and the script is run once if a
guest is missing there, so `pytest tests/e2e` works on its own.

Guests (file name in the zip = the handler):

| guest | does |
|---|---|
| `hello.wasm` | `{"name": N}` → `{"message": "Hello, N!"}`; logs `saying hello to N (request R)` |
| `caller.wasm` | `{"function": F, "payload": P}` → F's answer to P (`stoke` host imports) |
| `fail.wasm` | fails with `{"errorType", "errorMessage"}` from the event (SDK `Err`) |
| `panic.wasm` | panics with the event's `message` |
| `context.wasm` | answers its event, its SDK `Context` and its whole environment |
| `misbehave.wasm` | `{"mode": ...}`: loops, allocates, exits, floods stdout or stderr |

`constant_module(text)` assembles, byte by byte, a module that answers `text` whatever the
event: two deployments whose answers differ, to tell which code served a call.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from stoke_e2e import REPO_ROOT, create_wasm, make_zip, unique_name, wait_active

BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-guests.sh"

REQUEST_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Lambda's REPORT line: fields separated by tabs; `Init Duration` only on a cold start.
REPORT_RE = re.compile(
    r"^REPORT RequestId: (?P<id>\S+)\tDuration: (?P<duration>\d+\.\d{2}) ms"
    r"\tBilled Duration: (?P<billed>\d+) ms\tMemory Size: (?P<memory>\d+) MB"
    r"\tMax Memory Used: (?P<used>\d+) MB\t?(?:Init Duration: (?P<init>\d+\.\d{2}) ms\t?)?"
)
LOG_STREAM_RE = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")


def _default_dir() -> Path:
    target = os.environ.get("STOKE_GUEST_TARGET_DIR") or "/var/tmp/stoke-guest-target"
    return Path(target) / "wasm32-wasip1" / "release"


@functools.cache
def _build() -> Path:
    proc = subprocess.run(
        [str(BUILD_SCRIPT)], capture_output=True, text=True, check=False, cwd=REPO_ROOT
    )
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/build-guests.sh failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return Path(proc.stdout.strip().splitlines()[-1])


@functools.cache
def guest_wasm(guest: str) -> bytes:
    """The bytes of `<guest>.wasm`."""
    explicit = os.environ.get("STOKE_GUESTS_DIR")
    folder = Path(explicit) if explicit else _default_dir()
    path = folder / f"{guest}.wasm"
    if not path.exists() and not explicit:
        path = _build() / f"{guest}.wasm"
    if not path.exists():
        pytest.fail(
            f"guest module {path} not found: run scripts/build-guests.sh "
            "(and set STOKE_GUESTS_DIR to the folder it prints last)",
            pytrace=False,
        )
    return path.read_bytes()


def _leb128(n: int) -> bytes:
    """Unsigned LEB128, as the wasm binary format writes sizes and indices."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _section(section_id: int, body: bytes) -> bytes:
    return bytes([section_id]) + _leb128(len(body)) + body


def _name(text: str) -> bytes:
    raw = text.encode()
    return _leb128(len(raw)) + raw


def constant_module(text: str) -> bytes:
    """A WASI preview 1 command that writes `text` (UTF-8) to stdout with one `fd_write` and
    ends: the module of
    `(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32)
    (result i32))) (memory (export "memory") 1) (data (i32.const 64) TEXT)
    (func (export "_start") ;; iovec {64, len} at 0, written count at 8
    (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const LEN))
    (drop (call 0 (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`,
    assembled by hand (no wasm toolchain needed)."""
    data = text.encode()
    assert len(data) <= 65536 - 64, "the text must fit in one page"

    def i32_const(v: int) -> bytes:
        # signed LEB128 of a non-negative value below 2**31
        out = bytearray()
        while True:
            byte = v & 0x7F
            v >>= 7
            if (v == 0 and not byte & 0x40) or (v == -1 and byte & 0x40):
                out.append(byte)
                return b"\x41" + bytes(out)
            out.append(byte | 0x80)

    types = _leb128(2) + (
        b"\x60" + _leb128(4) + b"\x7f" * 4 + _leb128(1) + b"\x7f"  # (i32 i32 i32 i32) -> i32
    ) + (b"\x60\x00\x00")  # () -> ()
    imports = _leb128(1) + _name("wasi_snapshot_preview1") + _name("fd_write") + b"\x00\x00"
    functions = _leb128(1) + _leb128(1)  # function 1 (after the import) has type 1
    memory = _leb128(1) + b"\x00\x01"  # one memory, min 1 page
    exports = (
        _leb128(2)
        + _name("memory") + b"\x02\x00"
        + _name("_start") + b"\x00\x01"
    )
    body = (
        b"\x00"  # no locals
        + i32_const(0) + i32_const(64) + b"\x36\x02\x00"  # i32.store align=2 offset=0
        + i32_const(4) + i32_const(len(data)) + b"\x36\x02\x00"
        + i32_const(1) + i32_const(0) + i32_const(1) + i32_const(8)
        + b"\x10\x00"  # call 0 (fd_write)
        + b"\x1a"  # drop
        + b"\x0b"  # end
    )
    code = _leb128(1) + _leb128(len(body)) + body
    segment = b"\x00" + i32_const(64) + b"\x0b" + _leb128(len(data)) + data
    datas = _leb128(1) + segment
    return (
        b"\x00asm\x01\x00\x00\x00"
        + _section(1, types)
        + _section(2, imports)
        + _section(3, functions)
        + _section(5, memory)
        + _section(7, exports)
        + _section(10, code)
        + _section(11, datas)
    )


def constant_zip(text: str, handler: str = "main.wasm", extra: dict | None = None) -> bytes:
    """A zip whose `handler` module answers `text`; `extra` adds {file name: bytes}."""
    files = {handler: constant_module(text)}
    files.update(extra or {})
    return make_zip(files)


def code_answer(tag: str) -> dict:
    """What a function made by `deploy_constant(..., tag)` answers."""
    return {"code": tag}


def deploy_constant(lam, tag: str, prefix: str = "const", **kw) -> str:
    """Create a function whose module (`main.wasm`) answers `code_answer(tag)`, wait until it is
    Active, and return its name. Keyword arguments go to CreateFunction."""
    name = unique_name(prefix)
    kw.setdefault("Handler", "main.wasm")
    zip_bytes = constant_zip(json.dumps(code_answer(tag)), kw["Handler"])
    create_wasm(lam, name, zip_bytes=zip_bytes, **kw)
    cfg = wait_active(lam, name)["Configuration"]
    assert cfg["State"] == "Active", cfg
    return name


def guest_zip(guest: str, handler: str | None = None) -> bytes:
    return make_zip({handler or f"{guest}.wasm": guest_wasm(guest)})


def deploy(lam, guest: str, prefix: str | None = None, **kw) -> str:
    """Create a function running `<guest>.wasm` (handler `<guest>.wasm`), wait until it is
    Active, and return its name. Keyword arguments go to CreateFunction."""
    name = unique_name(prefix or f"inv-{guest}")
    kw.setdefault("Handler", f"{guest}.wasm")
    create_wasm(lam, name, zip_bytes=guest_zip(guest, kw["Handler"]), **kw)
    cfg = wait_active(lam, name)["Configuration"]
    assert cfg["State"] == "Active", cfg
    return name


def invoke(lam, name: str, payload=None, **kw) -> tuple[dict, object]:
    """boto3 invoke with a JSON payload (bytes are sent as they are); returns the response and
    the decoded JSON body (None for an empty body)."""
    if payload is not None and not isinstance(payload, (bytes, bytearray)):
        payload = json.dumps(payload).encode()
    if payload is not None:
        kw["Payload"] = payload
    resp = lam.invoke(FunctionName=name, **kw)
    raw = resp["Payload"].read()
    return resp, (json.loads(raw) if raw else None)


def log_tail(resp: dict) -> str:
    assert "LogResult" in resp, f"no LogResult in {sorted(resp)}"
    return base64.b64decode(resp["LogResult"]).decode()


def request_id(resp: dict) -> str:
    """The request id boto3 read from `x-amzn-RequestId`."""
    rid = resp["ResponseMetadata"].get("RequestId")
    assert rid, f"no x-amzn-RequestId header: {resp['ResponseMetadata']['HTTPHeaders']}"
    return rid


def logs_client(server):
    """boto3's CloudWatch Logs client for this server, with the same credentials."""
    return server.session().client("logs", endpoint_url=server.endpoint, config=server.config())


def log_events(server, name: str, until, timeout: float = 2.5) -> list[dict]:
    """FilterLogEvents on /aws/lambda/NAME (every page, with boto3's paginator), polled until
    `until(events)` holds or `timeout` seconds pass (the server writes logs in batches).
    Returns the events last read."""
    logs = logs_client(server)
    deadline = time.monotonic() + timeout
    while True:
        events: list[dict] = []
        paginator = logs.get_paginator("filter_log_events")
        for page in paginator.paginate(logGroupName=f"/aws/lambda/{name}"):
            events.extend(page.get("events", []))
        if until(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def report_of(tail: str) -> re.Match:
    lines = [ln for ln in tail.splitlines() if ln.startswith("REPORT ")]
    assert len(lines) == 1, f"expected one REPORT line in the tail:\n{tail}"
    m = REPORT_RE.match(lines[0])
    assert m, f"REPORT line not in Lambda's format: {lines[0]!r}"
    return m


def assert_call_log(tail: str, rid: str, *, contains: list[str] = ()) -> re.Match:
    """The tail of one call: START, the function's lines, END, REPORT, all of request `rid`."""
    lines = tail.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith("START ")]
    ends = [i for i, ln in enumerate(lines) if ln.startswith("END ")]
    reports = [i for i, ln in enumerate(lines) if ln.startswith("REPORT ")]
    assert len(starts) == len(ends) == len(reports) == 1, tail
    s, e, r = starts[0], ends[0], reports[0]
    assert lines[s] == f"START RequestId: {rid} Version: $LATEST", tail
    assert lines[e] == f"END RequestId: {rid}", tail
    assert s < e < r, f"START, END and REPORT out of order:\n{tail}"
    body = "\n".join(lines[s + 1 : e])
    for text in contains:
        assert text in body, f"{text!r} not between START and END:\n{tail}"
    m = report_of(tail)
    assert m["id"] == rid, tail
    return m
