"""Guests that misbehave (examples/guests/misbehave): an endless loop ends at the timeout, a
memory bomb fails alone, an exit without an answer, a response over 6 MB, a log flood. Each
ends as a function error in Lambda's words (200 with X-Amz-Function-Error: Unhandled), frees
its slot, and leaves calls to other functions undisturbed."""

from __future__ import annotations

import base64
import threading
import time

import pytest

from stoke_guests import assert_call_log, deploy, invoke, log_tail, request_id


@pytest.fixture(scope="module")
def misbehave(lam):
    return deploy(lam, "misbehave", Timeout=1, MemorySize=128)


@pytest.fixture(scope="module")
def hello(lam):
    return deploy(lam, "hello", prefix="inv-faults-hello")


def test_endless_loop_times_out_and_frees_its_slot(lam, misbehave):
    t0 = time.monotonic()
    resp, body = invoke(lam, misbehave, {"mode": "spin"}, LogType="Tail")
    took = time.monotonic() - t0
    rid = request_id(resp)
    assert resp["StatusCode"] == 200
    assert resp.get("FunctionError") == "Unhandled", body
    assert body.get("errorType") == "Sandbox.Timedout", body
    assert body.get("errorMessage") == f"RequestId: {rid} Error: Task timed out after 1.00 seconds"
    assert 0.9 <= took < 5, f"the call took {took:.2f}s with Timeout=1"
    tail = log_tail(resp)
    m = assert_call_log(tail, rid, contains=["spinning", "Task timed out after 1.00 seconds"])
    assert float(m["duration"]) >= 1000, m.group(0)
    assert "Status: timeout" in m.string, m.string
    # The function still serves calls.
    for _ in range(2):
        resp, body = invoke(lam, misbehave, {"mode": "fine"})
        assert ("FunctionError" not in resp, body) == (True, {"mode": "fine"})


def test_memory_bomb_fails_alone(lam, misbehave):
    resp, body = invoke(lam, misbehave, {"mode": "alloc", "mb": 1024})
    assert resp.get("FunctionError") == "Unhandled", body
    assert body.get("errorType") == "Runtime.OutOfMemory", body
    # Within its MemorySize it may allocate, and REPORT counts what it used.
    resp, body = invoke(lam, misbehave, {"mode": "alloc", "mb": 48}, LogType="Tail")
    assert ("FunctionError" not in resp, body) == (True, {"allocated_mb": 48})
    m = assert_call_log(log_tail(resp), request_id(resp))
    assert 48 <= int(m["used"]) <= 128, m.group(0)


def test_exit_without_an_answer_is_an_exit_error(lam, misbehave):
    resp, body = invoke(lam, misbehave, {"mode": "exit", "code": 3})
    rid = request_id(resp)
    assert resp.get("FunctionError") == "Unhandled", body
    assert body == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: exit status 3",
    }


def test_response_over_6_mb_is_a_function_error(lam, misbehave):
    resp, body = invoke(lam, misbehave, {"mode": "stdout", "mb": 7})
    assert resp["StatusCode"] == 200
    assert resp.get("FunctionError") == "Unhandled"
    assert body.get("errorType") == "Function.ResponseSizeTooLarge", str(body)[:300]


def test_log_flood_is_cut_and_the_call_ends(lam, misbehave):
    resp, body = invoke(lam, misbehave, {"mode": "stderr", "mb": 64}, LogType="Tail")
    assert ("FunctionError" not in resp, body) == (True, {"logged_mb": 64})
    raw = base64.b64decode(resp["LogResult"])
    assert len(raw) <= 4096, len(raw)
    last = raw.decode(errors="replace").rstrip("\n").splitlines()[-1]
    assert last.startswith(f"REPORT RequestId: {request_id(resp)}\t"), last


def test_a_spinning_function_does_not_disturb_others(server, lam, misbehave, hello):
    done = {}

    def spin():
        client = server.client()
        done["spin"] = invoke(client, misbehave, {"mode": "spin"})

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.2)
    try:
        for i in range(5):
            t0 = time.monotonic()
            resp, body = invoke(lam, hello, {"name": f"n{i}"})
            took = time.monotonic() - t0
            assert body == {"message": f"Hello, n{i}!"}
            assert took < 0.5, f"hello took {took:.2f}s while another function spun"
    finally:
        t.join(10)
    resp, body = done["spin"]
    assert body.get("errorType") == "Sandbox.Timedout", body
