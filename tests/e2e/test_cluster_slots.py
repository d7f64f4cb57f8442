"""A dead node's concurrency slots (issue 14 item 3): a node killed with kill -9 while one of
its calls holds a function's only reserved slot stops renewing it, and the slot is free again
within the node timeout (the slots' expiry is the node timeout), so the other node runs the
function again without anyone tidying up. Until then the other node answers Lambda's 429.

Two nodes with forwarding off, so that each call runs on the node it was sent to.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from accounts import stoke_cli
from cluster import StokeCluster
from stoke_e2e import ROLE, make_zip, unique_name, wait_active

try:  # so that a failure attaches the nodes' logs too
    from conftest import _servers
except ImportError:  # pragma: no cover
    _servers = []

# Long enough that a renewal (every third of it) is never missed on a loaded machine.
NODE_TIMEOUT = 6.0

HOLD_PY = """
import time

def handler(event, context):
    time.sleep(event.get("hold", 0))
    return {"held": event.get("hold", 0)}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = StokeCluster(
        tmp_path_factory.mktemp("stoke-slots"),
        n=2,
        extra_args=["--forward", "false", "--node-timeout", f"{NODE_TIMEOUT:g}s"],
    )
    with c.running():
        _servers.extend(c.nodes)
        yield c


def _quick_call(lam, name: str) -> str:
    """`ok` if a short call ran, `throttled` if Lambda's 429 came back."""
    try:
        resp = lam.invoke(FunctionName=name, Payload=json.dumps({"hold": 0}))
    except lam.exceptions.TooManyRequestsException as e:
        assert e.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        return "throttled"
    assert "FunctionError" not in resp, resp["Payload"].read()
    return "ok"


def _load(cluster, i: int, node_id: str) -> int:
    """The calls in flight on `node_id` as node `i` lists them."""
    proc = stoke_cli(cluster.nodes[i], "nodes", "--json")
    assert proc.returncode == 0, proc.stderr
    return next((n["Load"] for n in json.loads(proc.stdout) if n["NodeId"] == node_id), 0)


def test_a_killed_nodes_slots_are_free_within_the_node_timeout(cluster):
    # No retries: a 429 is what the test looks for.
    first = cluster.client(0, retries={"max_attempts": 0})
    second = cluster.client(1, read_timeout=90, retries={"max_attempts": 0})
    name = unique_name("slots-dead")
    first.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": HOLD_PY})},
        Timeout=60,
    )
    wait_active(first, name)
    first.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    deadline = time.monotonic() + 5
    while second.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") != 1:
        assert time.monotonic() < deadline, "node 2 never saw the reservation"
        time.sleep(0.05)
    # Warm on node 1 first, so that node 2's long call is the one holding the slot.
    assert _quick_call(first, name) == "ok"

    # A long call on node 2 holds the only slot (tried again while node 1's last call still
    # holds it: a slot is given back just after its call answers).
    ended: list[object] = []

    def long_call() -> None:
        while True:
            try:
                resp = second.invoke(FunctionName=name, Payload=json.dumps({"hold": 45}))
                ended.append(resp["Payload"].read())
                return
            except second.exceptions.TooManyRequestsException:
                time.sleep(0.1)
            except Exception as e:  # noqa: BLE001 - its node is killed under it
                ended.append(e)
                return

    threading.Thread(target=long_call, daemon=True).start()
    # Running there: node 2's heartbeat counts it in flight.
    deadline = time.monotonic() + 30
    while _load(cluster, 0, "node2") < 1:
        assert not ended, ended
        assert time.monotonic() < deadline, "node 2's call never started"
        time.sleep(0.1)
    assert _quick_call(first, name) == "throttled"
    # Held for longer than its expiry while node 2 lives: the renewals keep it.
    held_until = time.monotonic() + NODE_TIMEOUT + 1
    while time.monotonic() < held_until:
        assert _quick_call(first, name) == "throttled", ended
        time.sleep(0.2)

    cluster.kill(1)
    killed = time.monotonic()
    while _quick_call(first, name) != "ok":
        assert time.monotonic() - killed < NODE_TIMEOUT + 4, "the dead node's slot was never freed"
        time.sleep(0.1)
    # Freed by its expiry (renewed every third of it until the kill), not by anything else.
    assert time.monotonic() - killed >= NODE_TIMEOUT / 3
    # The slot is node 1's now: it keeps answering (each call's slot is given back just after
    # its answer, so the next may meet it for a moment).
    for _ in range(3):
        deadline = time.monotonic() + 2
        while _quick_call(first, name) != "ok":
            assert time.monotonic() < deadline
            time.sleep(0.05)
