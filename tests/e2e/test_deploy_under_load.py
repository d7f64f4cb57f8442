"""Deploys under load: 16 threads call a function without pause (synchronous Invoke, one boto3
client each) while its code and configuration are updated several times. Every call must
succeed, every answer must be exactly one deployment's answer, and a call that starts after an
update was seen `Successful` must be answered by that update's code (or a later one). A bad
update under the same load fails no call: the old code keeps serving and the function's
`LastUpdateStatus` ends `Failed` with a reason. For wasm the bad update is a module that does
not compile, which fails any update; for Python it is a module whose Init fails, which fails
the update only under the `stoke:deploy-check=init` tag (as on Lambda, it otherwise goes
through: tests/e2e/test_fidelity_updates.py), so that function is tagged.

The tests are parametrized over runtimes. Each runtime says how to write a handler that answers
a constant (`source`), where it lives in the zip (`file`) and how a Handler names it
(`handler`), and what a broken one is (`broken`). Both wasm and Python (a process sandbox)
run.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from stoke_e2e import ROLE, make_zip, unique_name, wait_active, wait_updated
from stoke_guests import code_answer, constant_module

WORKERS = 16
# Calls answered between two steps, so that every deployment really serves traffic.
CALLS_BETWEEN_STEPS = 150


# --------------------------------------------------------------------------------------------
# Runtimes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Runtime:
    runtime: str
    ext: str
    # Whether `broken()` fails its Init rather than its preparation: the bad update then fails
    # only under the deploy check.
    broken_fails_init: bool = False

    def file(self, stem: str) -> str:
        return f"{stem}.{self.ext}"

    def handler(self, stem: str) -> str:
        raise NotImplementedError

    def source(self, tag: str) -> bytes:
        raise NotImplementedError

    def broken(self) -> bytes:
        raise NotImplementedError

    def zip(self, files: dict[str, str]) -> bytes:
        """{stem: tag} → a zip where each `file(stem)` answers `code_answer(tag)`."""
        return make_zip({self.file(stem): self.source(tag) for stem, tag in files.items()})


class Wasm(Runtime):
    def handler(self, stem: str) -> str:
        return self.file(stem)

    def source(self, tag: str) -> bytes:
        return constant_module(json.dumps(code_answer(tag)))

    def broken(self) -> bytes:
        # The wasm magic and version, then a section that runs past the end: does not compile.
        return b"\x00asm\x01\x00\x00\x00\x01\xff\xff\xff\x0f"


class Python(Runtime):
    def handler(self, stem: str) -> str:
        return f"{stem}.handler"

    def source(self, tag: str) -> bytes:
        return f"def handler(event, context):\n    return {code_answer(tag)!r}\n".encode()

    def broken(self) -> bytes:
        return b"def handler(event, context)\n    return {}\n"  # a SyntaxError at import


RUNTIMES = [
    pytest.param(Wasm("wasm", "wasm"), id="wasm"),
    pytest.param(Python("python3.12", "py", broken_fails_init=True), id="python"),
]


# --------------------------------------------------------------------------------------------
# The load
# --------------------------------------------------------------------------------------------


@dataclass
class Call:
    start: float
    end: float
    tag: str | None  # the deployment that answered, when the answer was one
    problem: str | None  # an exception, a function error or an unknown answer


@dataclass
class Load:
    """WORKERS threads invoking `name` in a loop until `stop()`."""

    server: object
    name: str
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> "Load":
        clients = [self.server.client() for _ in range(WORKERS)]
        for client in clients:
            t = threading.Thread(target=self._run, args=(client,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _run(self, client) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            tag = problem = None
            try:
                resp = client.invoke(FunctionName=self.name, Payload=b"{}")
                raw = resp["Payload"].read()
                if resp.get("FunctionError"):
                    problem = f"FunctionError {resp['FunctionError']}: {raw[:300]!r}"
                else:
                    body = json.loads(raw)
                    if isinstance(body, dict) and set(body) == {"code"}:
                        tag = body["code"]
                    else:
                        problem = f"unexpected answer {raw[:300]!r}"
            except Exception as e:  # noqa: BLE001 - every failure is recorded and reported
                problem = repr(e)[:500]
            call = Call(start, time.monotonic(), tag, problem)
            with self._lock:
                self.calls.append(call)

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def wait_calls_started_after(self, t: float, count: int, timeout: float = 30.0) -> None:
        """Until `count` calls that started after `t` have been answered."""
        deadline = time.monotonic() + timeout
        while sum(c.start > t for c in self.snapshot()) < count:
            assert time.monotonic() < deadline, f"fewer than {count} calls in {timeout}s"
            assert any(t.is_alive() for t in self._threads), "the load threads died"
            time.sleep(0.02)

    def stop(self) -> list[Call]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in self._threads), "a load thread is stuck"
        return self.snapshot()


@dataclass
class Step:
    """One deployment: `index` is the number in the tag (`d{index}`) its code answers."""

    index: int
    requested: float = 0.0  # before the update was sent
    settled: float = 0.0  # after it was seen Successful (or Failed)


def tag_index(tag: str) -> int:
    assert tag.startswith("d") and tag[1:].isdigit(), tag
    return int(tag[1:])


def check_calls(calls: list[Call], steps: list[Step], known: set[str]) -> None:
    """No failed call; every answer a known deployment's; never older than the newest update
    seen Successful before the call started; never newer than the last update requested
    before the call ended."""
    assert calls, "no calls were made"
    problems = [c for c in calls if c.problem]
    assert not problems, (
        f"{len(problems)} of {len(calls)} calls failed, e.g.: "
        + "; ".join(f"{c.problem} (at {c.start:.3f})" for c in problems[:5])
    )
    unknown = [c.tag for c in calls if c.tag not in known]
    assert not unknown, f"answers from no deployment: {sorted(set(unknown))[:5]}"
    stale, early = [], []
    for c in calls:
        got = tag_index(c.tag)
        at_least = max((s.index for s in steps if s.settled and s.settled < c.start), default=0)
        at_most = max((s.index for s in steps if s.requested < c.end), default=0)
        if got < at_least:
            stale.append((c, at_least))
        elif got > at_most:
            early.append((c, at_most))
    assert not stale, (
        f"{len(stale)} calls started after an update was Successful got older code, e.g. "
        + "; ".join(f"d{tag_index(c.tag)} instead of d{n}+" for c, n in stale[:5])
    )
    assert not early, f"{len(early)} calls were answered by code not yet deployed: {early[:3]}"


def wait_settled(lam, name: str, timeout: float = 60.0) -> dict:
    """GetFunctionConfiguration until LastUpdateStatus is no longer InProgress."""
    deadline = time.monotonic() + timeout
    while True:
        cfg = lam.get_function_configuration(FunctionName=name)
        if cfg.get("LastUpdateStatus") != "InProgress":
            return cfg
        assert time.monotonic() < deadline, f"still InProgress after {timeout}s: {cfg}"
        time.sleep(0.05)


def create(lam, rt: Runtime, stem: str, tag: str, tags: dict | None = None) -> str:
    name = unique_name(f"load-{rt.runtime}")
    lam.create_function(
        FunctionName=name,
        Runtime=rt.runtime,
        Role=ROLE,
        Handler=rt.handler(stem),
        Code={"ZipFile": rt.zip({stem: tag})},
        Timeout=10,
        Tags=tags or {},
    )
    cfg = wait_active(lam, name)["Configuration"]
    assert cfg["State"] == "Active", cfg
    return name


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rt", RUNTIMES)
def test_updates_under_load_fail_no_call(server, lam, rt: Runtime):
    name = create(lam, rt, "main", "d0")
    # The deployments, in order; each answers d{index}.
    plan = [
        (1, "code", {"main": "d1"}),
        (2, "code", {"main": "d2", "alt": "d3"}),
        # A configuration update that changes the answer: the handler moves to the other file.
        (
            3,
            "config",
            {"Handler": rt.handler("alt"), "Environment": {"Variables": {"DEPLOY": "3"}}},
        ),
        (4, "code", {"alt": "d4"}),
        (5, "code", {"alt": "d5", "main": "d0"}),
    ]
    known = {f"d{i}" for i in range(6)}
    steps: list[Step] = []
    load = Load(server, name).start()
    try:
        load.wait_calls_started_after(0, CALLS_BETWEEN_STEPS)
        for index, kind, what in plan:
            step = Step(index, requested=time.monotonic())
            steps.append(step)
            if kind == "code":
                lam.update_function_code(FunctionName=name, ZipFile=rt.zip(what))
            else:
                lam.update_function_configuration(FunctionName=name, **what)
            cfg = wait_updated(lam, name)["Configuration"]
            step.settled = time.monotonic()
            assert cfg["LastUpdateStatus"] == "Successful", cfg
            assert cfg["State"] == "Active", cfg
            load.wait_calls_started_after(step.settled, CALLS_BETWEEN_STEPS)
    finally:
        calls = load.stop()

    check_calls(calls, steps, known)
    during = [
        c for c in calls if any(s.requested <= c.start <= s.settled for s in steps)
    ]
    assert during, "no call ran while an update was in progress: the test proved nothing"
    after = [c for c in calls if c.start > steps[-1].settled]
    assert after and {c.tag for c in after} == {"d5"}, Counter(c.tag for c in after)
    served = {c.tag for c in calls}
    assert served == known, f"some deployments never answered: {sorted(known - served)}"
    # And after the load, every answer is the last deployment's.
    for _ in range(20):
        resp = lam.invoke(FunctionName=name, Payload=b"{}")
        assert json.loads(resp["Payload"].read()) == code_answer("d5")


@pytest.mark.parametrize("rt", RUNTIMES)
def test_a_bad_update_under_load_keeps_the_old_code_serving(server, lam, rt: Runtime):
    strict = {"stoke:deploy-check": "init"} if rt.broken_fails_init else None
    name = create(lam, rt, "main", "d0", tags=strict)
    steps: list[Step] = []
    load = Load(server, name).start()
    try:
        load.wait_calls_started_after(0, CALLS_BETWEEN_STEPS)

        # The bad update: step 0 again, since its code must go on answering.
        bad = Step(0, requested=time.monotonic())
        lam.update_function_code(
            FunctionName=name, ZipFile=make_zip({rt.file("main"): rt.broken()})
        )
        cfg = wait_settled(lam, name)
        bad.settled = time.monotonic()
        steps.append(bad)
        assert cfg["LastUpdateStatus"] == "Failed", cfg
        assert cfg.get("LastUpdateStatusReason"), f"Failed without a reason: {cfg}"
        assert cfg["State"] == "Active", cfg
        codes = lam.meta.service_model.shape_for("LastUpdateStatusReasonCode").enum
        assert cfg.get("LastUpdateStatusReasonCode") in codes, cfg
        load.wait_calls_started_after(bad.settled, 2 * CALLS_BETWEEN_STEPS)

        # A good update afterwards takes over.
        good = Step(1, requested=time.monotonic())
        steps.append(good)
        lam.update_function_code(FunctionName=name, ZipFile=rt.zip({"main": "d1"}))
        cfg = wait_updated(lam, name)["Configuration"]
        good.settled = time.monotonic()
        assert cfg["LastUpdateStatus"] == "Successful", cfg
        load.wait_calls_started_after(good.settled, CALLS_BETWEEN_STEPS)
    finally:
        calls = load.stop()

    check_calls(calls, steps, {"d0", "d1"})
    before_good = [c for c in calls if c.end < steps[1].requested]
    assert before_good, "no calls before the good update"
    assert {c.tag for c in before_good} == {"d0"}, Counter(c.tag for c in before_good)
    after_bad = [c for c in before_good if c.start > steps[0].settled]
    assert len(after_bad) >= 2 * CALLS_BETWEEN_STEPS, len(after_bad)
