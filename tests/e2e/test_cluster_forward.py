"""Issue 14 item 4: a synchronous call entering node A for a version whose warm sandboxes are on
node B (its home by rendezvous hashing) is forwarded to B over the internal HTTP/2 channel and
answered through A with the same status, headers and body as a local call; the internal route
refuses requests without the cluster key's MAC; a home killed -9 mid-call gives the caller a clean
500 ServiceException, never a hang.

Three nodes on one throw-away PostgreSQL (cluster.py) that know each other through the node
registry. A function is created through its home node, which the test computes with the
server's formula (SHA-256 of node id NUL key); the other nodes have no sandbox of it, so they
forward its calls there, and the nodes' metrics show where each call ran.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from cluster import StokeCluster
from stoke_e2e import ROLE, http_get, make_zip, raw_request, wait_active

HANDLER = b"""
import json, time

def handler(event, context):
    print("serving", context.aws_request_id)
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"echo": event, "arn": context.invoked_function_arn}
"""
INTERNAL = "/stoke/internal/2026-11-01/invoke"


def score(node_id: str, key: str) -> int:
    d = hashlib.sha256(node_id.encode() + b"\0" + key.encode()).digest()
    return int.from_bytes(d[:8], "big")


def home(c: StokeCluster, account: str, function: str, version: str = "$LATEST") -> int:
    key = f"{account}\0{function}\0{version}"
    return max(range(c.n), key=lambda i: (score(c.node_id(i), key), -i))


def without_request_id(body):
    return {k: v for k, v in body.items() if k != "requestId"} if isinstance(body, dict) else body


def name_homed_at(c, account, i, versions=("$LATEST",)) -> str:
    while True:
        name = f"fwd-{uuid.uuid4().hex[:10]}"
        if all(home(c, account, name, v) == i for v in versions):
            return name


def account_of(c: StokeCluster) -> str:
    sts = c.nodes[0].session().client("sts", endpoint_url=c.nodes[0].endpoint)
    return sts.get_caller_identity()["Account"]


def create_python(lam, name: str, timeout: int = 10) -> None:
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": HANDLER})},
        Timeout=timeout,
    )
    assert wait_active(lam, name)["Configuration"]["State"] == "Active"


def metric(node, name: str, **labels) -> float:
    """The sum of `name`'s samples at `node`'s /metrics whose labels include `labels`."""
    text = http_get(f"{node.endpoint}/metrics").body.decode()
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not m:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def poll(condition, timeout: float = 15.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not hold within {timeout} s")


# Headers that differ between any two answers (values) or that the transport adds.
VARYING = {"date", "x-amzn-requestid", "content-length", "connection", "keep-alive"}


def shape(resp) -> dict:
    h = resp["ResponseMetadata"]["HTTPHeaders"]
    return {k: v for k, v in h.items() if k not in VARYING and k != "x-amz-log-result"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with StokeCluster(tmp_path_factory.mktemp("forward"), n=3).running() as c:
        yield c


def test_a_call_on_another_node_is_answered_by_the_home_nodes_warm_sandbox_as_a_local_call(
    cluster,
):
    c = cluster
    account = account_of(c)
    h = 1
    name = name_homed_at(c, account, h, versions=("$LATEST", "1"))
    lam_home = c.client(h)
    create_python(lam_home, name)
    v = lam_home.publish_version(FunctionName=name)
    assert v["Version"] == "1"
    lam_home.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam_home.get_waiter("published_version_active").wait(
        FunctionName=f"{name}:1", WaiterConfig={"Delay": 0.1, "MaxAttempts": 300}
    )

    cases = [
        ({"n": 1}, None),
        ({"n": 2, "fail": True}, None),
        ({"n": 3}, "live"),
        ({"n": 4}, "1"),
    ]
    for event, qualifier in cases:
        kw = {"Qualifier": qualifier} if qualifier else {}
        local = lam_home.invoke(
            FunctionName=name, Payload=json.dumps(event), LogType="Tail", **kw
        )
        local_body = json.loads(local["Payload"].read())
        for a in (0, 2):
            ran_before = metric(c.nodes[h], "stoke_invocations_total", function=name)
            fwd_before = metric(c.nodes[a], "stoke_sync_calls_total", served="forwarded")
            resp = c.client(a).invoke(
                FunctionName=name, Payload=json.dumps(event), LogType="Tail", **kw
            )
            body = json.loads(resp["Payload"].read())
            case = f"{event} {qualifier} through node {a}"
            assert resp["StatusCode"] == 200, case
            # A function error's body names the call's own request id; the rest is the same.
            assert without_request_id(body) == without_request_id(local_body), case
            assert shape(resp) == shape(local), case
            assert resp.get("FunctionError") == local.get("FunctionError"), case
            assert resp["ExecutedVersion"] == ("$LATEST" if qualifier is None else "1"), case
            # The tail is the call's own: its START line names the request id it answered with.
            rid = resp["ResponseMetadata"]["RequestId"]
            tail = base64.b64decode(resp["LogResult"]).decode()
            assert f"START RequestId: {rid}" in tail, (case, tail)
            assert f"REPORT RequestId: {rid}" in tail, (case, tail)
            assert f"serving {rid}" in tail, (case, tail)
            # It ran on the home node, and the entry node counts it forwarded (and warm).
            assert (
                metric(c.nodes[h], "stoke_invocations_total", function=name)
                == ran_before + 1
            ), case
            assert (
                metric(c.nodes[a], "stoke_sync_calls_total", served="forwarded")
                == fwd_before + 1
            ), case
            assert metric(c.nodes[a], "stoke_invocations_total", function=name) == 0, case
        if qualifier == "live":
            assert body["arn"].endswith(f":function:{name}:live"), body
        if event.get("fail"):
            assert local["FunctionError"] == "Unhandled"
            assert local_body["errorType"] == "ValueError"
            assert local_body["errorMessage"] == "asked to fail"
    # Every forwarded call found the home's sandbox warm: the share counts them.
    for a in (0, 2):
        assert metric(c.nodes[a], "stoke_sync_calls_total", served="forwarded", warm="true") >= 4
        assert metric(c.nodes[a], "stoke_warm_hit_share") > 0


def hkdf_cluster_key(master_hex: str) -> bytes:
    """The cluster key as the server derives it (HKDF-SHA-256, one block)."""
    prk = hmac.new(b"stoke master key", bytes.fromhex(master_hex), hashlib.sha256).digest()
    return hmac.new(prk, b"cluster\x01", hashlib.sha256).digest()


def signed(key: bytes, envelope: dict, body: bytes) -> dict:
    text = json.dumps(envelope)
    tag = hmac.new(key, b"stoke-forward-v1\n" + text.encode() + b"\n" + body, hashlib.sha256)
    return {"x-stoke-forward": text, "x-stoke-forward-mac": tag.hexdigest()}


def test_an_internal_request_without_the_clusters_mac_or_with_a_bad_one_is_refused(cluster):
    c = cluster
    account = account_of(c)
    h = 2
    name = name_homed_at(c, account, h)
    create_python(c.client(h), name)
    node = c.nodes[h]
    key = hkdf_cluster_key(c.master_key)
    body = b'{"n": 9}'

    def envelope(**over):
        e = {
            "from": c.node_id(0),
            "to": c.node_id(h),
            "at_ms": int(time.time() * 1000),
            "caller": account,
            "owner": account,
            "function": name,
            "version": "$LATEST",
            "qualifier": None,
            "log_tail": False,
            "client_context": None,
            "trace_id": None,
        }
        e.update(over)
        return e

    bad_mac = "the forward's MAC is not valid"
    cases = [
        ("no MAC", {}, body, "MissingAuthenticationTokenException", "Missing Authentication Token"),
        ("another key", signed(b"k" * 32, envelope(), body), body, "InvalidSignatureException", bad_mac),
        ("a body changed", signed(key, envelope(), body), b'{"n": 10}', "InvalidSignatureException", bad_mac),
        (
            "an envelope changed",
            {**signed(key, envelope(), body), "x-stoke-forward": json.dumps(envelope(caller="210987654321"))},
            body,
            "InvalidSignatureException",
            bad_mac,
        ),
        ("a garbled MAC", {**signed(key, envelope(), body), "x-stoke-forward-mac": "zz"}, body, "InvalidSignatureException", bad_mac),
        (
            "for another node",
            signed(key, envelope(to=c.node_id(0)), body),
            body,
            "InvalidSignatureException",
            "the forward is addressed to another node",
        ),
        (
            "stale",
            signed(key, envelope(at_ms=int(time.time() * 1000) - 120_000), body),
            body,
            "InvalidSignatureException",
            "the forward is older than the channel's clock skew allows",
        ),
    ]
    ran_before = metric(node, "stoke_invocations_total", function=name)
    for case, headers, sent, code, message in cases:
        r = raw_request("POST", f"{node.endpoint}{INTERNAL}", body=sent, headers=headers)
        assert r.status == 403, (case, r.status, r.body)
        assert r.error_type == code, (case, r.headers)
        assert message in r.json().get("message", r.json().get("Message", "")), (case, r.body)
    assert metric(node, "stoke_invocations_total", function=name) == ran_before, "nothing ran"

    # The same request, rightly signed, runs (the test holds the cluster's master key).
    r = raw_request("POST", f"{node.endpoint}{INTERNAL}", body=body, headers=signed(key, envelope(), body))
    assert r.status == 200, r.body
    assert r.json()["echo"] == {"n": 9}
    assert r.header("x-amz-executed-version") == "$LATEST"
    assert r.header("x-stoke-warm") in ("0", "1")
    assert metric(node, "stoke_invocations_total", function=name) == ran_before + 1


def call_in_thread(lam, name, event, out: dict) -> threading.Thread:
    def run():
        t0 = time.monotonic()
        try:
            out["resp"] = lam.invoke(FunctionName=name, Payload=json.dumps(event))
        except ClientError as e:
            out["error"] = e
        out["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_home_killed_mid_call_gives_the_caller_a_clean_500_not_a_hang(tmp_path):
    with StokeCluster(tmp_path, n=3).running() as c:
        account = account_of(c)
        h, a = 1, 0
        name = name_homed_at(c, account, h)
        create_python(c.client(h), name, timeout=30)
        out: dict = {}
        # The harness's clients never retry (botocore would send a 500 again).
        lam = c.client(a, read_timeout=60)
        t = call_in_thread(lam, name, {"sleep": 25}, out)
        poll(
            lambda: metric(c.nodes[h], "stoke_concurrent_executions", function=name) >= 1,
            what="the call running on its home",
        )
        killed = time.monotonic()
        c.kill(h)
        t.join(timeout=20)
        assert not t.is_alive(), "the caller still waits"
        assert time.monotonic() - killed < 10, "answered soon after the death"
        e = out.get("error")
        assert e is not None, out
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert e.response["Error"]["Code"] == "ServiceException"
        assert "went away before it answered" in e.response["Error"]["Message"]
        assert c.node_id(h) in e.response["Error"]["Message"]
        # The entry node still answers.
        assert c.client(a).get_function(FunctionName=name)["Configuration"]["FunctionName"] == name


def test_after_a_home_dies_the_next_call_is_served_by_a_living_node(tmp_path):
    with StokeCluster(tmp_path, n=3).running() as c:
        account = account_of(c)
        h, a = 1, 0
        name = name_homed_at(c, account, h)
        create_python(c.client(h), name)
        assert json.loads(c.client(a).invoke(FunctionName=name, Payload=b'{"n": 1}')["Payload"].read())["echo"] == {"n": 1}
        c.kill(h)
        # The home is still listed among the living (no registry yet): the forward to it fails
        # to connect and the call goes to the next node, this one last.
        resp = c.client(a).invoke(FunctionName=name, Payload=b'{"n": 2}')
        assert resp["StatusCode"] == 200
        assert json.loads(resp["Payload"].read())["echo"] == {"n": 2}
