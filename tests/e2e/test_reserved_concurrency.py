"""Reserved concurrency as Lambda accounts for it (issue 13's follow-up): a function with a
reservation draws on it alone, so it runs its share however busy the account's other functions
are, and those share the unreserved rest (the account's limit less its reservations). Each
throttle names Lambda's reason: `ConcurrentInvocationLimitExceeded` when the unreserved rest is
used up, `ReservedFunctionConcurrentInvocationLimitExceeded` when a function is at its
reservation. A change of reservation counts from the next call.

The server here leaves at least 1 unreserved (`--min-unreserved-concurrency 1`) instead of
Lambda's 100, so that an account limit of 3 can be saturated by a few calls."""

from __future__ import annotations

import threading
import time

import pytest

from accounts import create_account, stoke_cli
from stoke_e2e import StokeServer, expect_error
from stoke_guests import deploy, invoke

try:  # so that a failure attaches this server's log too
    from conftest import _servers
except ImportError:  # pragma: no cover
    _servers = []

UNRESERVED = "ConcurrentInvocationLimitExceeded"
RESERVED = "ReservedFunctionConcurrentInvocationLimitExceeded"


@pytest.fixture
def small_server(tmp_path_factory):
    srv = StokeServer(
        tmp_path_factory.mktemp("stoke-reserved"),
        extra_args=["--min-unreserved-concurrency", "1"],
    )
    _servers.append(srv)
    with srv.running():
        yield srv


def _unreserved(lam) -> int:
    return lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]


def _throttle_reason(lam, name: str, payload: dict, until: float) -> str | None:
    """Calls `name` until it is throttled (the reason) or `until` passes (None)."""
    while time.monotonic() < until:
        try:
            invoke(lam, name, payload)
        except lam.exceptions.TooManyRequestsException as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            assert e.response["Error"]["Message"] == "Rate Exceeded."
            return e.response.get("Reason")
        time.sleep(0.05)
    return None


class _Spinner(threading.Thread):
    """Holds one call of `name` that spins until its timeout (retrying while throttled: the
    probes take a slot for a moment too)."""

    def __init__(self, lam, name: str):
        super().__init__(daemon=True)
        self.lam, self.name, self.result = lam, name, None

    def run(self):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.result = invoke(self.lam, self.name, {"mode": "spin"})[1]
                return
            except self.lam.exceptions.TooManyRequestsException:
                time.sleep(0.02)


def test_a_reserved_function_keeps_its_share_while_the_rest_is_saturated(small_server):
    srv = small_server
    a = create_account(srv, "reserver")
    lam = a.client(srv, read_timeout=30)
    out = stoke_cli(srv, "accounts", "set-limits", a.account_id, "--concurrency", "3")
    assert out.returncode == 0, out.stderr
    busy = deploy(lam, "misbehave", prefix="rsv-busy", Timeout=2)
    held = deploy(lam, "misbehave", prefix="rsv-held", Timeout=2)
    probe = deploy(lam, "hello", prefix="rsv-probe")
    assert _unreserved(lam) == 3

    # A reservation that would leave less than the server's minimum is refused.
    with expect_error(
        "InvalidParameterValueException",
        400,
        "Specified ReservedConcurrentExecutions for function decreases account's "
        "UnreservedConcurrentExecution below its minimum value of [1].",
    ):
        lam.put_function_concurrency(FunctionName=held, ReservedConcurrentExecutions=3)
    lam.put_function_concurrency(FunctionName=held, ReservedConcurrentExecutions=1)
    assert _unreserved(lam) == 2
    for name in (busy, held):  # warm, so that no call below waits for a cold start
        assert invoke(lam, name, {"mode": "fine"})[1] is not None
    assert invoke(lam, probe, {"name": "p"})[1] == {"message": "Hello, p!"}

    # Two spinning calls of an unreserved function take the whole unreserved rest.
    spinners = [_Spinner(lam, busy) for _ in range(2)]
    for s in spinners:
        s.start()
    try:
        reason = _throttle_reason(lam, probe, {"name": "p"}, time.monotonic() + 10)
        assert reason == UNRESERVED, "the unreserved rest was never used up"
        assert all(s.is_alive() for s in spinners), "the spinning calls should hold it still"
        # The reserved function runs all the same: its reservation is its own.
        resp, body = invoke(lam, held, {"mode": "fine"})
        assert resp["StatusCode"] == 200 and "FunctionError" not in resp, body
        # Held at its reservation, it is throttled with the reservation's reason.
        holder = _Spinner(lam, held)
        holder.start()
        spinners.append(holder)
        reason = _throttle_reason(lam, held, {"mode": "fine"}, time.monotonic() + 10)
        assert reason == RESERVED
    finally:
        for s in spinners:
            s.join(timeout=30)
    for s in spinners:
        assert s.result is not None and s.result.get("errorType") == "Sandbox.Timedout", s.result

    # A change of reservation counts from the next call: 0 throttles the probe at once, with
    # the reservation's reason; removed, the probe runs and the account is all unreserved.
    lam.put_function_concurrency(FunctionName=probe, ReservedConcurrentExecutions=0)
    with pytest.raises(lam.exceptions.TooManyRequestsException) as e:
        invoke(lam, probe, {"name": "p"})
    assert e.value.response.get("Reason") == RESERVED
    lam.delete_function_concurrency(FunctionName=probe)
    lam.delete_function_concurrency(FunctionName=held)
    assert _unreserved(lam) == 3
    assert invoke(lam, probe, {"name": "p"})[1] == {"message": "Hello, p!"}
    # A deleted function's reservation goes back to the unreserved rest.
    lam.put_function_concurrency(FunctionName=held, ReservedConcurrentExecutions=2)
    assert _unreserved(lam) == 1
    lam.delete_function(FunctionName=held)
    assert _unreserved(lam) == 3
