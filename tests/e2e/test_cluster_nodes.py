"""The node registry (issue 14, item 2) and the async queue's per-node leases (item 3).

Nodes of one cluster (`StokeCluster`: n `stoke serve` on one throw-away PostgreSQL) register
themselves and heartbeat; `stoke nodes` on any of them lists every node with its state (`alive`
or `dead`), warm sandboxes and load. The tests shorten the node timeout (`--node-timeout 2s`),
the heartbeat (hidden `--heartbeat 200ms`) and the async lease (hidden `--async-lease 2s`).

- three nodes list each other alive, each one itself as `Self`, at the address it advertises;
  `--node-id` and `--advertise` name a node; kill -9 of one shows it `dead` on the others
  within the timeout; a clean stop (SIGTERM) removes its row at once;
- on the embedded store, `stoke nodes` lists the one node; only the admin may list them;
- kill -9 of a node holding async events: every event that got a 202 through it runs on the
  survivors within the node timeout plus one lease period, and the survivors answer new calls.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from accounts import create_account, stoke_cli
from cluster import StokeCluster
from stoke_e2e import ROLE, make_zip, unique_name, wait_active
from stoke_guests import log_events

NODE_TIMEOUT_S = 2.0
LEASE_S = 2.0
FAST = [
    "--node-timeout",
    f"{NODE_TIMEOUT_S}s",
    "--heartbeat",
    "200ms",
    "--async-lease",
    f"{LEASE_S}s",
]


def nodes_of(node) -> list[dict]:
    """`stoke nodes --json` through `node`, as the admin."""
    proc = stoke_cli(node, "nodes", "--json")
    assert proc.returncode == 0, f"stoke nodes: {proc.returncode}\n{proc.stderr}"
    return json.loads(proc.stdout)


def states(node) -> dict[str, str]:
    return {n["NodeId"]: n["State"] for n in nodes_of(node)}


def wait_for(what: str, cond, timeout: float):
    """Polls `cond()` every 0.1 s until it answers something true; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout}s (last: {got!r})")
        time.sleep(0.1)


def node_id(node) -> str:
    return (node.data_dir / "node-id").read_text().strip()


def test_nodes_list_each_other_and_a_killed_node_goes_dead(tmp_path):
    with StokeCluster(tmp_path, n=3, extra_args=FAST).running() as c:
        ids = [node_id(n) for n in c.nodes]
        assert len(set(ids)) == 3, ids
        for i, node in enumerate(c.nodes):
            listed = wait_for(
                f"node {i} lists three living nodes",
                lambda node=node: (
                    (ns := nodes_of(node))
                    and {n["NodeId"] for n in ns if n["State"] == "alive"} == set(ids)
                    and ns
                ),
                timeout=10,
            )
            assert [n["NodeId"] for n in listed] == sorted(ids), "in node id order"
            for n in listed:
                j = ids.index(n["NodeId"])
                assert n["Address"] == f"127.0.0.1:{c.nodes[j].port}", n
                assert n["Self"] is (j == i), n
                assert isinstance(n["Warm"], int) and isinstance(n["Load"], int), n
                assert 0 <= n["HeartbeatAgeMs"] < NODE_TIMEOUT_S * 1000, n

        # The table: one line per node, its id and state first, then warm and load.
        table = stoke_cli(c.nodes[0], "nodes")
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split()[:4] == ["NODE", "STATE", "WARM", "LOAD"], lines
        rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
        assert set(rows) == set(ids), lines
        for words in rows.values():
            assert words[1] == "alive" and words[2].isdigit() and words[3].isdigit(), words

        # kill -9: dead on the others within the node timeout (plus heartbeat and polling).
        c.kill(2)
        killed = time.monotonic()
        for i in (0, 1):
            wait_for(
                f"node {i} sees node 3 dead",
                lambda i=i: states(c.nodes[i]).get(ids[2]) == "dead",
                timeout=NODE_TIMEOUT_S + 5,
            )
        assert time.monotonic() - killed >= NODE_TIMEOUT_S - 0.5, "dead only after the timeout"
        assert states(c.nodes[0]) == {ids[0]: "alive", ids[1]: "alive", ids[2]: "dead"}

        # --node-id and --advertise name a node; a clean stop takes it out of the registry.
        named = c.new_node(
            "named", extra_args=["--node-id", "edge-7.a", "--advertise", "10.9.8.7:1234"]
        )
        c.nodes.append(named)
        named.start()
        seen = wait_for(
            "the named node is listed alive",
            lambda: next(
                (n for n in nodes_of(c.nodes[0]) if n["NodeId"] == "edge-7.a"), None
            ),
            timeout=10,
        )
        assert (seen["State"], seen["Address"]) == ("alive", "10.9.8.7:1234"), seen
        assert not (named.data_dir / "node-id").exists(), "--node-id is not kept"
        named.stop()
        assert "edge-7.a" not in states(c.nodes[0]), "a clean stop leaves the registry at once"


def test_the_embedded_store_lists_its_one_node_to_the_admin_only(server):
    listed = nodes_of(server)
    assert len(listed) == 1, listed
    (me,) = listed
    assert (me["NodeId"], me["State"], me["Self"]) == (node_id(server), "alive", True), me
    assert me["Address"] == f"127.0.0.1:{server.port}", me

    other = create_account(server, "nodes-reader")
    r = server.signed_request(
        "GET",
        "/stoke/admin/2026-11-01/nodes",
        b"",
        access_key=other.access_key_id,
        secret_key=other.secret_access_key,
    )
    assert (r.status, r.error_type) == (403, "AccessDeniedException"), r.body
    assert r.json()["Message"] == (
        f"User: arn:aws:iam::{other.account_id}:root is not authorized to perform: "
        "stoke:ListNodes because only the admin account may see the cluster's nodes"
    )
    refused = stoke_cli(
        server, "nodes", credentials=(other.access_key_id, other.secret_access_key)
    )
    assert refused.returncode == 1, refused.stderr
    assert "AccessDeniedException" in refused.stderr, refused.stderr
    assert [n["NodeId"] for n in nodes_of(server)] == [me["NodeId"]], "nothing changed"


# A slow Python function: each run logs `RAN <n>` once it has slept.
SLOW_APP = """
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    print(f"RAN {event['n']}")
    return {"n": event["n"]}
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="process sandboxes need root")
def test_a_killed_nodes_async_events_run_on_the_survivors(tmp_path):
    events = 8
    with StokeCluster(tmp_path, n=3, extra_args=[*FAST, "--async-workers", "4"]).running() as c:
        lam = c.client(0)
        name = unique_name("takeover")
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": SLOW_APP})},
            Timeout=10,
        )
        assert wait_active(lam, name)["Configuration"]["State"] == "Active"
        acked = {}
        for n in range(events):
            r = lam.invoke(
                FunctionName=name,
                InvocationType="Event",
                Payload=json.dumps({"n": n, "sleep": 1.5}).encode(),
            )
            assert r["StatusCode"] == 202, r
            acked[n] = r["ResponseMetadata"]["RequestId"]
        # Node 1 leased the first events in their enqueue's commit and is running them.
        c.kill(0)
        killed = time.monotonic()

        def ran(evs):
            return {int(e["message"].split()[1]) for e in evs if e["message"].startswith("RAN ")}

        # Lease period, then a run (1.5 s), with room for a loaded machine.
        bound = NODE_TIMEOUT_S + LEASE_S + 1.5 + 10
        got = log_events(c.nodes[1], name, until=lambda evs: ran(evs) >= set(acked), timeout=bound)
        assert ran(got) >= set(acked), f"events that never ran: {set(acked) - ran(got)}"
        assert time.monotonic() - killed <= bound

        # The survivors answer new calls.
        for i in (1, 2):
            r = c.client(i).invoke(FunctionName=name, Payload=json.dumps({"n": 100 + i}).encode())
            assert r["StatusCode"] == 200 and "FunctionError" not in r, r
            assert json.loads(r["Payload"].read()) == {"n": 100 + i}
