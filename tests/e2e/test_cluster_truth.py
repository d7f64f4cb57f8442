"""One cluster, one truth (issue 14 item 3): three `stoke serve` nodes on one PostgreSQL behave
as one Lambda. A function made through one node runs on the others (its code fetched from the
store and prepared there on demand), an update through one node is what another runs next, an
alias moved through one node is obeyed by another within a second (the change feed: LISTEN /
NOTIFY), a revoked key is refused by every node, and a reserved concurrency holds across the
nodes (slots in the store), the calls over it answered 429 as Lambda answers them.

Every test shares one cluster (starting PostgreSQL and three nodes is the slow part); each makes
functions of its own.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from botocore.exceptions import ClientError

from accounts import create_account, stoke_cli
from cluster import StokeCluster
from stoke_e2e import (
    REPO_ROOT,
    ROLE,
    create_wasm,
    expect_error,
    make_zip,
    unique_name,
    wait_active,
    wait_updated,
)
from stoke_guests import constant_module

try:  # so that a failure attaches the nodes' logs too
    from conftest import _servers
except ImportError:  # pragma: no cover
    _servers = []

EXAMPLES = REPO_ROOT / "examples"
INVALID_TOKEN = "The security token included in the request is invalid."
RESERVED = "ReservedFunctionConcurrentInvocationLimitExceeded"

# Records its own start and end (the host's clock: sandboxes share it), so that the test can
# count how many calls overlapped, whichever node ran them.
OVERLAP_PY = """
import time

def handler(event, context):
    start = time.time()
    time.sleep(event.get("hold", 1.0))
    return {"start": start, "end": time.time()}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = StokeCluster(tmp_path_factory.mktemp("stoke-truth"), n=3)
    with c.running():
        _servers.extend(c.nodes)
        yield c


def _answer(lam, name: str, qualifier: str | None = None) -> str:
    kw = {"Qualifier": qualifier} if qualifier else {}
    resp = lam.invoke(FunctionName=name, Payload=b"{}", **kw)
    assert "FunctionError" not in resp, resp
    return resp["Payload"].read().decode()


def _python_zip(source: str) -> bytes:
    return make_zip({"app.py": source})


def test_a_function_made_on_one_node_is_invoked_on_the_others(cluster):
    first = cluster.client(0)
    wasm = unique_name("truth-wasm")
    create_wasm(first, wasm, make_zip({"hello.wasm": constant_module("made on node 1")}))
    wait_active(first, wasm)
    py = unique_name("truth-py")
    first.create_function(
        FunctionName=py,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": (EXAMPLES / "hello-python" / "app.py").read_text()})},
    )
    wait_active(first, py)
    for i in (1, 2):
        lam = cluster.client(i, read_timeout=60)
        assert _answer(lam, wasm) == "made on node 1"
        resp = lam.invoke(FunctionName=py, Payload=json.dumps({"name": f"node {i + 1}"}))
        assert "FunctionError" not in resp
        body = json.loads(resp["Payload"].read())
        assert body["message"] == f"Hello, node {i + 1}!"
        assert body["function_name"] == py
        assert resp["ExecutedVersion"] == "$LATEST"


def test_an_update_through_one_node_is_what_another_runs_next(cluster):
    second, third = cluster.client(1), cluster.client(2)
    name = unique_name("truth-update")
    create_wasm(second, name, make_zip({"hello.wasm": constant_module("v0")}))
    wait_active(second, name)
    # Node 3 has the function cached and a warm sandbox of it before each update.
    assert _answer(third, name) == "v0"
    for n in range(1, 4):
        second.update_function_code(
            FunctionName=name, ZipFile=make_zip({"hello.wasm": constant_module(f"v{n}")})
        )
        assert wait_updated(second, name)["Configuration"]["LastUpdateStatus"] == "Successful"
        assert _answer(third, name) == f"v{n}", f"node 3 ran old code after update {n}"


def test_an_alias_moved_on_one_node_is_obeyed_by_another_within_a_second(cluster):
    first, third = cluster.client(0), cluster.client(2)
    name = unique_name("truth-alias")
    create_wasm(first, name, make_zip({"hello.wasm": constant_module("one")}))
    wait_active(first, name)
    first.publish_version(FunctionName=name)
    first.update_function_code(
        FunctionName=name, ZipFile=make_zip({"hello.wasm": constant_module("two")})
    )
    wait_updated(first, name)
    first.publish_version(FunctionName=name)
    first.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    # Node 1 reads the alias (and keeps it) before node 3 moves it.
    assert _answer(first, name, "live") == "one"
    assert _answer(first, name, "live") == "one"
    third.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    moved = time.monotonic()
    while _answer(first, name, "live") != "two":
        assert time.monotonic() - moved < 1.0, "node 1 still routes to version 1 after 1 s"
        time.sleep(0.02)
    assert first.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "2"


def test_a_revoked_key_is_refused_on_every_node(cluster):
    a = create_account(cluster.nodes[0], "truth-revoke")
    clients = [a.client(node) for node in cluster.nodes]
    for lam in clients:  # every node knows (and keeps) the key now
        assert lam.list_functions()["Functions"] == []
    proc = stoke_cli(cluster.nodes[1], "keys", "revoke", a.account_id, a.access_key_id)
    assert proc.returncode == 0, proc.stderr
    revoked = time.monotonic()
    for i, lam in enumerate(clients):
        while True:
            try:
                lam.list_functions()
            except ClientError as e:
                assert e.response["Error"]["Code"] == "UnrecognizedClientException"
                assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
                assert e.response["Error"]["Message"] == INVALID_TOKEN
                break
            assert time.monotonic() - revoked < 1.0, f"node {i + 1} still takes the key after 1 s"
            time.sleep(0.02)
    # Refused for good, on every node.
    for lam in clients:
        with expect_error("UnrecognizedClientException", 403, INVALID_TOKEN):
            lam.list_functions()


def test_reserved_concurrency_holds_across_the_nodes(cluster):
    first = cluster.client(0)
    name = unique_name("truth-reserved")
    first.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": _python_zip(OVERLAP_PY)},
        Timeout=30,
    )
    wait_active(first, name)
    first.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    clients = [cluster.client(i, read_timeout=60, retries={"max_attempts": 0}) for i in range(3)]
    # Each node knows the reservation before the burst (the change feed told the others).
    for lam in clients:
        deadline = time.monotonic() + 5
        while lam.get_function_concurrency(FunctionName=name).get(
            "ReservedConcurrentExecutions"
        ) != 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)

    runs: list[tuple[float, float]] = []
    throttles: list[dict] = []
    others: list[object] = []
    lock = threading.Lock()
    go = threading.Barrier(24)

    def caller(i: int) -> None:
        lam = clients[i % 3]
        go.wait()
        try:
            resp = lam.invoke(FunctionName=name, Payload=json.dumps({"hold": 1.5}))
            body = json.loads(resp["Payload"].read())
            with lock:
                if "FunctionError" in resp:
                    others.append(body)
                else:
                    runs.append((body["start"], body["end"]))
        except lam.exceptions.TooManyRequestsException as e:
            with lock:
                throttles.append(e.response)
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                others.append(repr(e))

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert others == []
    assert len(runs) + len(throttles) == 24
    assert 2 <= len(runs) <= 22, runs
    # At no instant did more than two calls run, on all the nodes together.
    # Ends before starts at the same instant: a call that ended is not counted with the next.
    edges = sorted([(s, 1) for s, _ in runs] + [(e, -1) for _, e in runs])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak <= 2, f"{peak} calls overlapped: {runs}"
    for r in throttles:
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert r["Error"]["Message"] == "Rate Exceeded."
        assert r.get("Reason") == RESERVED
    # The slots were given back: the function runs again on every node.
    for lam in clients:
        deadline = time.monotonic() + 10
        while True:
            try:
                resp = lam.invoke(FunctionName=name, Payload=json.dumps({"hold": 0}))
                assert "FunctionError" not in resp
                break
            except lam.exceptions.TooManyRequestsException:
                assert time.monotonic() < deadline, "the slots were never given back"
                time.sleep(0.1)
